# SPDX-License-Identifier: MIT
"""packaging/examples/install-migrations.sh against a real daemon.

The script is what a release's installer does: it copies new migrations into the daemon's
migrations directory (atomically, through a hidden staging directory), sends
{"id":"install-1","method":"up","params":{}} over the socket with socat, prints the job's events
as progress and acts on its final line. These tests run it as an installer would, on a real
daemon, a real socket and a real SQLite database, and check the database and the directory
afterwards."""

import os
import shutil
import subprocess
import time

import harness
from harness import applied_versions, current_version, schema

SCRIPT = os.path.join(harness.SRC_ROOT, "packaging", "examples", "install-migrations.sh")
SCRIPT_TIMEOUT = 120.0
EXAMPLE_LATEST = 8

BROKEN_UP = "CREATE TABLE installer_probe (a INTEGER);\nINSERT INTO no_such_table VALUES (1);\n"


def needs_tools():
    missing = [t for t in ("socat", "jq", "timeout") if shutil.which(t) is None]
    if missing:
        raise harness.unittest.SkipTest("install-migrations.sh needs %s (packaging/install-deps.sh test)"
                                        % ", ".join(missing))


class InstallScriptTest(harness.TestCase):

    def setUp(self):
        super().setUp()
        needs_tools()
        examples = harness.example_migrations()
        # The daemon starts with the first three examples applied; the "release" has all of them.
        self.live = self.path("live-migrations")
        os.makedirs(self.live)
        for version, _, up, down in examples:
            if version <= 3:
                for f in (up, down):
                    if f:
                        shutil.copy(os.path.join(harness.MIGRATIONS_DIR, f), self.live)
        self.release = self.path("release")
        shutil.copytree(harness.MIGRATIONS_DIR, self.release)
        self.db = self.path("db.sqlite")

    def start_daemon(self):
        d = self.daemon(database=self.db, migrations=self.live, extra_args=["--auto-up"])
        d.wait_idle()
        self.assertEqual(current_version(self.db), 3)
        return d

    def run_script(self, *args, timeout=SCRIPT_TIMEOUT):
        argv = ["sh", SCRIPT] + [str(a) for a in args]
        env = dict(os.environ)
        env.pop("MIGRATED_SOCKET", None)
        t0 = time.monotonic()
        try:
            p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               timeout=timeout, env=env)
        except subprocess.TimeoutExpired as e:
            self.fail("install-migrations.sh did not finish within %ss; stdout %r stderr %r"
                      % (timeout, e.stdout, e.stderr))
        r = harness.CtlResult(argv[1:], p.returncode, p.stdout.decode(errors="replace"),
                              p.stderr.decode(errors="replace"), time.monotonic() - t0)
        self.extra_logs.append(("install-migrations.sh %s" % " ".join(argv[2:]), repr(r)))
        return r

    def assertNoStaging(self, directory):
        leftovers = [f for f in os.listdir(directory) if f.startswith(".")]
        self.assertEqual(leftovers, [], "staging directories left in %s" % directory)

    # -----------------------------------------------------------------------------------------

    def test_installs_and_applies_new_migrations(self):
        d = self.start_daemon()
        r = self.run_script("-s", d.socket, self.release)
        self.assertEqual(r.rc, 0, r)

        # the database is at the release's latest version, every migration recorded
        self.assertEqual(current_version(self.db), EXAMPLE_LATEST)
        self.assertEqual(applied_versions(self.db), list(range(1, EXAMPLE_LATEST + 1)))
        st = d.status()
        self.assertEqual(st["pending"], [])
        self.assertEqual(st["problems"], [])
        # every release file is in the live directory, byte for byte, and nothing else was left
        for f in os.listdir(self.release):
            with open(os.path.join(self.release, f), "rb") as a, open(os.path.join(self.live, f), "rb") as b:
                self.assertEqual(a.read(), b.read(), f)
        self.assertNoStaging(self.live)

        # it showed the job's progress and its outcome
        self.assertIn("installed 9 new file(s)", r.out)
        self.assertIn("queued as job", r.out)
        self.assertIn("version 3 -> %d, 5 migration(s), all or nothing" % EXAMPLE_LATEST, r.out)
        self.assertIn("backup taken:", r.out)
        for i, version in enumerate(range(4, EXAMPLE_LATEST + 1), 1):
            self.assertRegex(r.out, r"\[%d/5\] applied %d \w+ \(\d+ ms\)" % (i, version))
        self.assertIn("committed at version %d" % EXAMPLE_LATEST, r.out)
        self.assertRegex(r.out, r"done: version 3 -> %d, 5 migration\(s\) applied in \d+ ms" % EXAMPLE_LATEST)
        self.assertEqual(r.err, "")

        # the attempt is in the history like any other
        attempts = harness.attempts(self.db)
        self.assertEqual(attempts[-1]["status"], "succeeded")
        self.assertEqual((attempts[-1]["from_version"], attempts[-1]["to_version"]), (3, EXAMPLE_LATEST))

    def test_already_current(self):
        d = self.start_daemon()
        self.assertEqual(self.run_script("-s", d.socket, self.release).rc, 0)
        before = schema(self.db), applied_versions(self.db), len(harness.attempts(self.db))

        r = self.run_script("-s", d.socket, self.release)
        self.assertEqual(r.rc, 0, r)
        self.assertIn("no new migration files", r.out)
        self.assertIn("nothing to apply: the schema is current at version %d" % EXAMPLE_LATEST, r.out)
        self.assertEqual((schema(self.db), applied_versions(self.db), len(harness.attempts(self.db))), before)
        self.assertNoStaging(self.live)

    def test_failing_migration_leaves_database_and_directory_unchanged(self):
        d = self.start_daemon()
        with open(os.path.join(self.release, "0009_broken.up.sql"), "w") as f:
            f.write(BROKEN_UP)
        before_schema, before_versions = schema(self.db), applied_versions(self.db)
        before_files = sorted(os.listdir(self.live))

        r = self.run_script("-s", d.socket, self.release)
        self.assertEqual(r.rc, 1, r)
        # the error's code and SQLite's message, naming the file and line
        self.assertIn("(code migration_failed)", r.err)
        self.assertIn("0009_broken.up.sql:2: no such table: no_such_table", r.err)
        self.assertIn("the database is unchanged", r.err)
        self.assertIn("rolled back: the database is at version 3", r.out)

        # all or nothing: not even the good migrations 4..8 of the same plan were kept
        self.assertEqual(schema(self.db), before_schema)
        self.assertEqual(applied_versions(self.db), before_versions)
        self.assertEqual(harness.attempts(self.db)[-1]["status"], "failed")
        # the files it installed are taken out again, so that nothing is left pending
        self.assertIn("took 10 new file(s) out", r.out)
        self.assertEqual(sorted(os.listdir(self.live)), before_files)
        self.assertEqual(d.status()["pending"], [])
        self.assertNoStaging(self.live)

    def test_failing_migration_with_keep_leaves_files_pending(self):
        d = self.start_daemon()
        with open(os.path.join(self.release, "0009_broken.up.sql"), "w") as f:
            f.write(BROKEN_UP)

        r = self.run_script("-k", "-s", d.socket, self.release)
        self.assertEqual(r.rc, 1, r)
        self.assertEqual(current_version(self.db), 3)
        self.assertEqual([p["version"] for p in d.status()["pending"]], [4, 5, 6, 7, 8, 9])

    def test_daemon_not_running(self):
        sock = self.path("nobody-listens.sock")
        before_files = sorted(os.listdir(self.live))
        r = self.run_script("-s", sock, "-d", self.live, self.release)
        self.assertEqual(r.rc, 3, r)
        self.assertIn("cannot reach migrated at %s" % sock, r.err)
        self.assertIn("No such file or directory", r.err)
        self.assertIn("Is it running?", r.err)
        # it asks the daemon before it copies anything
        self.assertEqual(sorted(os.listdir(self.live)), before_files)
        self.assertNoStaging(self.live)

    def test_daemon_stopped_socket_left_behind(self):
        d = self.start_daemon()
        d.kill()  # SIGKILL: the socket file stays, nobody listens
        self.assertTrue(os.path.exists(d.socket))
        r = self.run_script("-s", d.socket, self.release)
        self.assertEqual(r.rc, 3, r)
        self.assertIn("Connection refused", r.err)
        self.assertFalse(os.path.exists(os.path.join(self.live, "0004_index_sessions_and_vitals.up.sql")))

    def test_conflicting_file_installs_nothing(self):
        d = self.start_daemon()
        with open(os.path.join(self.release, "0003_add_water_tank.up.sql"), "a") as f:
            f.write("-- edited after it was applied\n")
        before_files = sorted(os.listdir(self.live))

        r = self.run_script("-s", d.socket, self.release)
        self.assertEqual(r.rc, 4, r)
        self.assertIn("0003_add_water_tank.up.sql exists with other content", r.err)
        self.assertEqual(sorted(os.listdir(self.live)), before_files)
        self.assertEqual(current_version(self.db), 3)
        self.assertNoStaging(self.live)

    def test_timeout_leaves_the_job_running(self):
        d = self.start_daemon()
        with open(os.path.join(self.release, "0009_slow.up.sql"), "w") as f:
            f.write(harness.slow_sql())

        r = self.run_script("-t", "1", "-s", d.socket, self.release)
        self.assertEqual(r.rc, 7, r)
        self.assertIn("no answer within 1s", r.err)
        self.assertIn("the job may still be running", r.err)
        # the client went away, the job did not: it finishes and applies everything
        st = d.wait_idle(timeout=120)
        self.assertEqual(st["current_version"], 9)
        self.assertEqual(st["pending"], [])


if __name__ == "__main__":
    harness.main()
