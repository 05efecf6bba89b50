# SPDX-License-Identifier: MIT
"""The database file the daemon trusts: one daemon per database whatever the path's spelling (an
flock on the file itself: symlinks, hard links, a deleted lock file), a database renamed over while
the daemon runs (refused with database_replaced, nothing written to either file), and the mode of a
database the daemon creates (never world-readable; owner, group and mode configurable).

The directory attack runs as a user the test creates (useradd), who owns the database's directory
as a service's user would; without root those tests are skipped."""

import grp
import os
import pwd
import secrets
import shutil
import sqlite3
import stat
import subprocess
import sys
import unittest

import harness
from harness import applied_versions

THREE = {
    1: ("one", "CREATE TABLE one (id INTEGER PRIMARY KEY);\n", "DROP TABLE one;\n"),
    2: ("two", "CREATE TABLE two (id INTEGER PRIMARY KEY);\n", "DROP TABLE two;\n"),
    3: ("three", "CREATE TABLE three (id INTEGER PRIMARY KEY);\n", "DROP TABLE three;\n"),
}

USER = "migt-%s-svc" % secrets.token_hex(3)
_created = []


def setUpModule():
    harness.create_system_users([USER], _created)


def tearDownModule():
    harness.remove_system_users(_created)


def need_user(test):
    if not _created:
        test.skipTest("needs root to create the service user (useradd)")
    os.chmod(test.tmp, 0o711)  # the user may pass through the test's directory
    return pwd.getpwnam(USER)


def as_user(pw, fn):
    """Runs fn() in a child process with the user's uid and gid; returns its exit status."""
    pid = os.fork()
    if pid == 0:
        try:
            os.setgroups([])
            os.setgid(pw.pw_gid)
            os.setuid(pw.pw_uid)
            fn()
            os._exit(0)
        except BaseException as e:
            sys.stderr.write("as_user: %r\n" % (e,))
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def flock_holders(path):
    """The pids with an flock write lock on path's file, from /proc/locks."""
    st = os.stat(path)
    want = (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino)
    pids = []
    with open("/proc/locks") as f:
        for line in f:
            fields = line.split()
            if "->" in fields or len(fields) < 6 or fields[1] != "FLOCK" or fields[3] != "WRITE":
                continue
            major, minor, inode = fields[5].split(":")
            if (int(major, 16), int(minor, 16), int(inode)) == want:
                pids.append(int(fields[4]))
    return pids


def mode_of(path):
    return stat.S_IMODE(os.stat(path).st_mode)


class OneDaemonPerDatabase(harness.TestCase):

    def assertRefused(self, d1, database, mig):
        d2 = self.daemon(database, mig, start=False)
        d2.start(wait=False)
        self.assertNotEqual(d2.wait(), 0, "a second migrated on %s must refuse to run" % database)
        self.assertIn("pid %d" % d1.pid, d2.log(), "the refusal must name the holder")
        self.assertFalse(os.path.exists(d2.socket))
        self.assertTrue(d1.alive())

    def test_lock_is_an_flock_on_the_database_file(self):
        mig = harness.write_migrations(self.path("migrations"), THREE)
        db = self.path("db.sqlite")
        d1 = self.daemon(db, mig)
        self.assertEqual(flock_holders(db), [d1.pid])
        self.assertEqual([n for n in os.listdir(self.tmp) if n.endswith(".lock")], [])
        # another spelling of the same file: a hard link, a symlink to it, a symlinked directory
        os.link(db, self.path("hard.sqlite"))
        self.assertRefused(d1, self.path("hard.sqlite"), mig)
        os.symlink(db, self.path("soft.sqlite"))
        self.assertRefused(d1, self.path("soft.sqlite"), mig)
        os.symlink(self.tmp, self.path("dirlink"))
        self.assertRefused(d1, os.path.join(self.path("dirlink"), "db.sqlite"), mig)
        # the first daemon still works, on the file it locked
        self.assertEqual(d1.ctl("up").rc, 0)
        self.assertEqual(applied_versions(db), [1, 2, 3])

    def test_lock_check_does_not_mistake_it_for_a_sqlite_lock(self):
        mig = harness.write_migrations(self.path("migrations"), THREE)
        db = self.path("db.sqlite")
        d = self.daemon(db, mig)
        self.assertEqual(d.ctl("up", "--to", "1").rc, 0)
        r = harness.ctl("lock-check", "--database", db, json_out=True)
        report = r.json
        self.assertEqual(r.rc, 0, report)
        self.assertTrue(report["migration_possible"], report)
        mine = [l for l in report["locks"] if l["kind"] == "FLOCK"]
        self.assertEqual([(l["pid"], l["sqlite_lock"]) for l in mine], [(d.pid, None)], report["locks"])

    def test_lock_check_finds_the_daemons_flock_while_other_locks_come_and_go(self):
        # /proc/locks is printed a page per read(), and a lock released earlier in the list
        # between two reads made a still-held one vanish from that scan: three processes take and
        # release POSIX locks on 200 files each (as busy SQLite connections do) while lock-check
        # looks for the daemon's flock again and again.
        mig = harness.write_migrations(self.path("migrations"), THREE)
        db = self.path("db.sqlite")
        d = self.daemon(db, mig)
        churn = os.path.join(self.tmp, "churn")
        os.mkdir(churn)
        script = ("import fcntl, os, sys\n"
                  "files = [open(os.path.join(sys.argv[1], sys.argv[2] + str(i)), 'w') for i in range(200)]\n"
                  "print('ready', flush=True)\n"
                  "while True:\n"
                  "    for f in files: fcntl.lockf(f, fcntl.LOCK_EX)\n"
                  "    for f in files: fcntl.lockf(f, fcntl.LOCK_UN)\n")
        for k in range(3):
            proc = subprocess.Popen([sys.executable, "-c", script, churn, "c%d-" % k], stdout=subprocess.PIPE,
                                    text=True)
            self.addCleanup(lambda proc=proc: (proc.kill(), proc.wait(), proc.stdout.close()))
            self.assertEqual(proc.stdout.readline().strip(), "ready")
        for _ in range(200):
            r = harness.ctl("lock-check", "--database", db, json_out=True)
            self.assertEqual(r.rc, 0, r.json)
            mine = [l["pid"] for l in r.json["locks"] if l["kind"] == "FLOCK"]
            self.assertEqual(mine, [d.pid], r.json["locks"])

    def test_deleting_lock_files_does_not_admit_a_second_daemon(self):
        # The database's directory belongs to the service's user, who deletes whatever lock
        # file migrated keeps there.
        pw = need_user(self)
        mig = harness.write_migrations(self.path("migrations"), THREE)
        data = self.path("data")
        os.mkdir(data)
        os.chown(data, pw.pw_uid, pw.pw_gid)
        db = os.path.join(data, "db.sqlite")
        d1 = self.daemon(db, mig)

        def delete_locks():
            for name in os.listdir(data):
                if name.endswith(".lock"):
                    os.unlink(os.path.join(data, name))

        self.assertEqual(as_user(pw, delete_locks), 0)
        self.assertRefused(d1, db, mig)


class DatabaseReplaced(harness.TestCase):

    def make_replacement(self, path, rows):
        """A database of our own, as an operator would restore it: version 1 and rows of its own."""
        c = sqlite3.connect(path, isolation_level=None)
        c.execute("PRAGMA journal_mode=WAL")
        c.execute("CREATE TABLE one (id INTEGER PRIMARY KEY)")
        c.executemany("INSERT INTO one (id) VALUES (?)", [(i,) for i in range(rows)])
        c.close()
        return harness.sha256_file(path)

    def test_renamed_over_is_refused_and_nothing_is_written(self):
        mig = harness.write_migrations(self.path("migrations"), THREE)
        db = self.path("db.sqlite")
        d = self.daemon(db, mig)
        self.assertEqual(d.ctl("up", "--to", "1").rc, 0)
        old_inode = os.stat(db).st_ino
        new = self.path("restored.sqlite")
        digest = self.make_replacement(new, 5)
        os.rename(new, db)  # mv restored.sqlite db.sqlite
        self.assertNotEqual(os.stat(db).st_ino, old_inode)

        _, final = d.rpc("up", {})
        self.assertError(final, "database_replaced")
        self.assertIn(db, final["error"]["message"])
        self.assertIn("restart", final["error"]["message"])
        _, final = d.rpc("status")
        self.assertError(final, "database_replaced")
        _, final = d.rpc("history")
        self.assertError(final, "database_replaced")
        r = d.ctl("up")
        self.assertEqual(r.rc, 1, r)
        self.assertIn("database_replaced", r.out)
        # the replacement is untouched: its rows are all there, no migration went into it (read
        # from a copy: the old -wal still lies beside the path, and SQLite would apply it)
        self.assertEqual(harness.sha256_file(db), digest)
        shutil.copyfile(db, self.path("check.sqlite"))
        c = sqlite3.connect(self.path("check.sqlite"))
        self.assertEqual(c.execute("SELECT count(*) FROM one").fetchone()[0], 5)
        self.assertEqual(c.execute("SELECT name FROM sqlite_master WHERE name = 'two'").fetchall(), [])
        c.close()
        # a restarted daemon serves the new file
        self.assertEqual(d.stop(), 0)
        self.assertEqual(harness.sha256_file(db), digest)
        # as the message says: the old -wal and -shm (SQLite keeps them when the file has moved)
        # belong to the replaced file; moved aside, a restarted daemon serves the new file
        self.assertIn("move those aside", final["error"]["message"])
        for suffix in ("-wal", "-shm"):
            if os.path.exists(db + suffix):
                os.rename(db + suffix, self.path("old" + suffix))
        d2 = self.daemon(db, mig)
        self.assertIsNone(d2.status()["current_version"])

    def test_renamed_over_during_a_migration_is_rolled_back(self):
        mig = harness.write_migrations(self.path("migrations"), {
            1: THREE[1],
            # long enough for the rename to land before the commit (a quarter of the usual)
            2: ("slow_fill", harness.slow_sql(n=harness.SLOW_N // 4), "DROP TABLE big;\n"),
        })
        db = self.path("db.sqlite")
        d = self.daemon(db, mig)
        self.assertEqual(d.ctl("up", "--to", "1").rc, 0)
        new = self.path("restored.sqlite")
        digest = self.make_replacement(new, 5)
        moved = []

        def on_event(ev):
            if ev.get("phase") == "applying" and ev.get("version") == 2 and not moved:
                os.rename(new, db)
                moved.append(True)

        with harness.Conn(d.socket, 120) as c:
            c.send("up", {})
            _, final = c.read_reply(1, on_event=on_event)
        self.assertTrue(moved)
        self.assertError(final, "database_replaced")
        self.assertEqual(harness.sha256_file(db), digest)

    def test_removed_is_refused(self):
        mig = harness.write_migrations(self.path("migrations"), THREE)
        db = self.path("db.sqlite")
        d = self.daemon(db, mig)
        os.unlink(db)
        _, final = d.rpc("up", {})
        self.assertError(final, "database_replaced")
        self.assertFalse(os.path.exists(db))

    def test_wal_renamed_over_is_refused(self):
        mig = harness.write_migrations(self.path("migrations"), THREE)
        db = self.path("db.sqlite")
        d = self.daemon(db, mig)
        self.assertEqual(d.ctl("up", "--to", "1").rc, 0)
        self.assertTrue(os.path.exists(db + "-wal"))
        other = self.path("other.sqlite")
        self.make_replacement(other, 1)
        c = sqlite3.connect(other, isolation_level=None)
        c.execute("PRAGMA wal_autocheckpoint=0")
        c.execute("INSERT INTO one (id) VALUES (100)")
        shutil.copyfile(other + "-wal", self.path("planted-wal"))
        c.close()
        os.rename(self.path("planted-wal"), db + "-wal")
        _, final = d.rpc("up", {})
        self.assertError(final, "database_replaced")
        self.assertIn(db + "-wal", final["error"]["message"])


class CreatedDatabaseMode(harness.TestCase):

    def start_with_umask(self, db, mig, extra_args=()):
        old = os.umask(0o022)
        try:
            return self.daemon(db, mig, extra_args=extra_args)
        finally:
            os.umask(old)

    def test_created_database_is_not_world_readable(self):
        mig = harness.write_migrations(self.path("migrations"), THREE)
        db = self.path("db.sqlite")
        d = self.start_with_umask(db, mig)
        self.assertEqual(d.ctl("up").rc, 0)
        for p in (db, db + "-wal", db + "-shm"):
            self.assertEqual(mode_of(p), 0o640, "%s: %o" % (p, mode_of(p)))

    def test_owner_group_and_mode_are_configurable(self):
        pw = need_user(self)
        group = grp.getgrgid(pw.pw_gid).gr_name
        mig = harness.write_migrations(self.path("migrations"), THREE)
        db = self.path("db.sqlite")
        conf = self.path("migrated.conf")
        with open(conf, "w") as f:
            f.write("[database]\nowner = %s\ngroup = %s\nmode = 0660\n" % (USER, group))
        d = self.start_with_umask(db, mig, extra_args=["--config", conf])
        self.assertEqual(d.ctl("up").rc, 0)
        for p in (db, db + "-wal", db + "-shm"):
            st = os.stat(p)
            self.assertEqual((stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid), (0o660, pw.pw_uid, pw.pw_gid), p)
        # the service's user can write it
        self.assertEqual(as_user(pw, lambda: sqlite3.connect(db, isolation_level=None).execute(
            "INSERT INTO one (id) VALUES (1)")), 0)
        # flags win over the file
        d.stop()
        db2 = self.path("db2.sqlite")
        d2 = self.start_with_umask(db2, mig, extra_args=["--config", conf, "--database-mode", "0600",
                                                         "--database-owner", "root", "--database-group", "root"])
        self.assertEqual(d2.ctl("up").rc, 0)
        st = os.stat(db2)
        self.assertEqual((stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid), (0o600, 0, 0))

    def test_existing_database_keeps_its_mode(self):
        mig = harness.write_migrations(self.path("migrations"), THREE)
        db = self.path("db.sqlite")
        harness.create_wal_db(db)
        os.chmod(db, 0o644)
        d = self.daemon(db, mig)
        self.assertEqual(d.ctl("up").rc, 0)
        self.assertEqual(mode_of(db), 0o644)
        self.assertIn("readable by every user", d.log())

    def test_bad_mode_is_a_usage_error(self):
        mig = harness.write_migrations(self.path("migrations"), THREE)
        d = self.daemon(self.path("db.sqlite"), mig, extra_args=["--database-mode", "1777"], start=False)
        d.start(wait=False)
        self.assertEqual(d.wait(), 2)
        self.assertFalse(os.path.exists(self.path("db.sqlite")))


if __name__ == "__main__":
    harness.main()
