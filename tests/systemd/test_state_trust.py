# SPDX-License-Identifier: MIT
"""State the daemon trusts cannot be planted: the database's directory belongs to the service's
own, less privileged user (SQLite needs it for -wal and -shm), and files that user leaves there
must not make the daemon (root) start a unit or write through a symlink. A real unprivileged user
(created here) plants them; a unit that touches a file when started reveals a start. Prints one
ATTACK line per attack: what it did before and what the daemon does now."""

import json
import os
import subprocess
import time
import unittest

import sdharness as S
from sdharness import H

V1 = {1: ("create_devices", "CREATE TABLE devices (id INTEGER PRIMARY KEY, serial TEXT);\n", "DROP TABLE devices;\n")}
V2 = {2: ("add_settings", "CREATE TABLE settings (k TEXT PRIMARY KEY, v TEXT);\n", "DROP TABLE settings;\n")}
SVC_USER = "migt-%d-svc" % os.getpid()
_created = []


def setUpModule():
    if os.geteuid() != 0:
        raise unittest.SkipTest("needs root for useradd")
    subprocess.run(["useradd", "--system", "--no-create-home", "--no-user-group", "--gid", "nogroup",
                    "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", SVC_USER], check=True)
    _created.append(SVC_USER)


def tearDownModule():
    for u in _created:
        subprocess.run(["userdel", u], check=False)


def as_svc(*argv):
    """Runs argv as the service's user (not root)."""
    p = subprocess.run(["setpriv", "--reuid=" + SVC_USER, "--regid=nogroup", "--clear-groups"] + list(argv),
                       capture_output=True, text=True, timeout=30)
    if p.returncode != 0:
        raise H.HarnessError("%s as %s failed: %s" % (argv, SVC_USER, p.stderr))


class StateTrustTest(S.TestCase):

    def setUp(self):
        super().setUp()
        # the database lives in a directory its service's user owns, as on a real system
        self.data = self.path("data")
        os.makedirs(self.data)
        os.chmod(self.path(""), 0o755)
        os.chown(self.data, int(subprocess.check_output(["id", "-u", SVC_USER])), -1)
        self.db = os.path.join(self.data, "db.sqlite")
        self.reveal_file = self.path("revealed")
        self.reveal = "w%d-reveal.service" % self.n
        self.write_unit(self.reveal, "[Service]\nExecStart=/bin/sh -c 'touch %s; exec sleep 600'\n" % self.reveal_file)

    def test_forged_legacy_state_file_starts_nothing(self):
        mig = H.write_migrations(self.path("migrations"), V1)
        self.create_db()
        legacy = self.db + "-migrated.state"
        doc = json.dumps({"job_id": 1, "units": [self.reveal], "since": "x", "pid": 1})
        as_svc("/bin/sh", "-c", "printf '%%s' '%s' > %s" % (doc, legacy))
        w = self.writer("a", start=False)
        self.migrated(mig, units=[w.unit])   # returns once migrated serves: after its recovery
        state = S.active_state(self.reveal)
        S.print_figure("ATTACK forged %s naming %s: before, root started it; now: %s, %s" % (
            os.path.basename(legacy), self.reveal, state,
            "revealed" if os.path.exists(self.reveal_file) else "never started"))
        self.assertEqual(state, "inactive")
        self.assertFalse(os.path.exists(self.reveal_file), "the forged state file made root start a unit")
        self.assertIn("Ignoring %s" % legacy, self.read_migrated_log())
        self.assertCtl(self.ctl("up"), 0)
        self.assertEqual(S.active_state(self.reveal), "inactive")

    def test_units_file_starts_only_configured_units(self):
        mig = H.write_migrations(self.path("migrations"), V1)
        self.create_db()
        w = self.writer("a", start=False)
        os.makedirs(self.state_dir, mode=0o700)
        with open(self.state_file, "w") as f:
            json.dump({"job_id": 3, "database": self.db, "units": [w.unit, self.reveal], "since": "x", "pid": 1}, f)
        self.migrated(mig, units=[w.unit])
        S.wait_state(w.unit, "active")    # configured and listed: started again
        self.assertIn("%s, which is not a configured unit" % self.reveal, self.read_migrated_log())
        self.assertEqual(S.active_state(self.reveal), "inactive")
        self.assertFalse(os.path.exists(self.reveal_file))
        self.assertNoStateFile()

    def test_planted_symlink_at_the_old_temporary_name_is_not_followed(self):
        mig = H.write_migrations(self.path("migrations"), V1)
        self.create_db()
        victim = self.path("victim")
        with open(victim, "w") as f:
            f.write("precious\n")
        as_svc("ln", "-s", victim, self.db + "-migrated.state.tmp")
        w = self.writer("a", start=False)
        self.migrated(mig, units=[w.unit])
        self.assertCtl(self.ctl("up"), 0)
        w.start()
        H.write_migrations(mig, V2)
        self.assertCtl(self.ctl("up"), 0)   # stops and starts w: the units state is written
        with open(victim) as f:
            content = f.read()
        S.print_figure("ATTACK symlink at <database>-migrated.state.tmp: before, root overwrote its target; "
                       "now the target holds %r" % content)
        self.assertEqual(content, "precious\n")
        self.assertTrue(os.path.islink(self.db + "-migrated.state.tmp"))

    def test_state_directory_writable_by_others_is_refused(self):
        mig = H.write_migrations(self.path("migrations"), V1)
        self.create_db()
        os.makedirs(self.state_dir, mode=0o700)
        os.chmod(self.state_dir, 0o777)
        argv = self.migrated_argv(mig)
        p = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("writable by group or others; chmod 0700 it", p.stderr)
        os.chmod(self.state_dir, 0o700)
        os.chown(self.state_dir, int(subprocess.check_output(["id", "-u", SVC_USER])), -1)
        p = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("owned by another user", p.stderr)


if __name__ == "__main__":
    S.main()
