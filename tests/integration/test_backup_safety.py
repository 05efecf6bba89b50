# SPDX-License-Identifier: MIT
"""What makes a backup trustworthy on the worst day: a real daemon on real SQLite files.

A listed backup is always complete (never a file a crash cut short), and a crash inside a backup
(the kernel killing the daemon at a file size limit) leaves nothing under a backup's name and no
leftover after the restart; restoring one never deletes it; retention never drops the backup that
undoes an irreversible migration, and neither manual backups nor jobs that fail "busy" rotate
backups out; every attempt survives any restore, and attempt and job ids are never reused, also
across restarts and when the backups are gone; the backup directory and its entries are trusted
only when nobody else could have put them there (the trust tests create a real user, so they need
root and are skipped otherwise)."""

import datetime
import os
import pwd
import resource
import shutil
import signal
import sqlite3
import struct
import subprocess
import sys
import time
import unittest
import uuid

import harness
from harness import applied_versions, db_connect

SUFFIX = uuid.uuid4().hex[:6]
OTHER_USER = "migb-%s" % SUFFIX
_created_users = []


def listdir(path):
    try:
        return sorted(os.listdir(path))
    except FileNotFoundError:
        return []


def backup_files(bdir, base="db.sqlite"):
    return [f for f in listdir(bdir) if f.startswith(base + "-")]


def tables_of(path):
    c = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
    try:
        return sorted(r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type = 'table'"))
    finally:
        c.close()


def history(db):
    c = db_connect(db)
    try:
        return c.execute("SELECT id, job_id, direction, status FROM migrated_attempts ORDER BY id").fetchall()
    finally:
        c.close()


def problem_of(path):
    """Why the file at path is not a complete SQLite database (None when it is): its header must
    describe exactly its size, and SQLite's own check must pass."""
    with open(path, "rb") as f:
        h = f.read(100)
    size = os.path.getsize(path)
    if len(h) < 100 or h[:16] != b"SQLite format 3\0":
        return "no SQLite header (%d bytes)" % size
    page_size = struct.unpack(">H", h[16:18])[0]
    page_size = 65536 if page_size == 1 else page_size
    (change, pages), (valid_for,) = struct.unpack_from(">II", h, 24), struct.unpack_from(">I", h, 92)
    if valid_for != change or pages * page_size != size:
        return "header says %d pages of %d bytes, the file has %d bytes" % (pages, page_size, size)
    c = sqlite3.connect("file:%s?mode=ro&immutable=1" % path, uri=True)
    try:
        check = c.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        c.close()
    return None if check == "ok" else "integrity_check: %s" % check


def row_count(db, table):
    c = db_connect(db)
    try:
        return c.execute('SELECT count(*) FROM "%s"' % table).fetchone()[0]
    finally:
        c.close()


def stamp(t):
    d = datetime.datetime.fromtimestamp(t, datetime.timezone.utc)
    return d.strftime("%Y%m%dT%H%M%S") + ".%03dZ" % (d.microsecond // 1000)


class SafetyCase(harness.TestCase):

    def examples_daemon(self, db=None, extra=()):
        db = db or self.path("db.sqlite")
        return db, db + "-backups", self.daemon(db, self.copy_examples(), extra_args=list(extra))


class IncompleteBackupTest(SafetyCase):

    def test_incomplete_backups_are_never_listed_counted_or_restored(self):
        db, bdir, d = self.examples_daemon(extra=["--keep", "2"])
        self.assertCtl(d.ctl("up", "--to", 2), 0)                   # auto backup at v0
        good = d.call("backup")["backup"]                             # v2
        d.stop()
        # What a kill during a backup used to leave under valid names, newer than any real backup:
        # an empty file (a valid, empty SQLite database) and a copy cut short; and a temporary.
        empty = "db.sqlite-29990101T000000.000Z-v2-job900.sqlite"
        short = "db.sqlite-29990101T000000.001Z-v2-job901.sqlite"
        temp = ".db.sqlite-29990101T000000.002Z-v2-job902.sqlite.partial"
        with open(good["path"], "rb") as f:
            data = f.read()
        for name, content in ((empty, b""), (short, data[:len(data) // 2]), (temp, data)):
            with open(os.path.join(bdir, name), "wb") as f:
                f.write(content)
            os.chmod(os.path.join(bdir, name), 0o600)
        d.start()

        self.assertNotIn(temp, listdir(bdir), "a temporary left by a killed daemon must be removed at start")
        listed = [b["file"] for b in d.call("backups")["backups"]]
        self.assertNotIn(empty, listed)
        self.assertNotIn(short, listed)
        self.assertIn(good["file"], listed)
        # They do not count towards keep either: two more automatic backups keep the good ones.
        self.assertCtl(d.ctl("up", "--to", 3), 0)
        self.assertCtl(d.ctl("up", "--to", 4), 0)
        self.assertIn(good["file"], [b["file"] for b in d.call("backups")["backups"]])
        # The default restore takes the newest complete backup, never the empty file.
        r = d.ctl("restore")
        self.assertCtl(r, 0)
        self.assertNotIn(r.json["restored_from"], (empty, short))
        self.assertIn("devices", tables_of(db), "the restore installed an empty database")
        _, final = d.rpc("restore", {"backup": empty})
        self.assertError(final, "unknown_backup")
        # And job ids continue after the highest one recorded, not after a stray name.
        self.assertLess(r.json["job_id"], 900)

    def test_a_crash_inside_a_backup_leaves_no_backup_under_a_final_name(self):
        db = self.path("db.sqlite")
        c = db_connect(db)
        c.execute("PRAGMA journal_mode = WAL")
        c.execute("CREATE TABLE filler (b BLOB)")
        c.execute("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 64) "
                  "INSERT INTO filler SELECT randomblob(32768) FROM n")
        c.close()
        db, bdir, d = self.examples_daemon(db)
        self.assertCtl(d.ctl("up", "--to", 1), 0)                   # one complete backup, at v0
        good = listdir(bdir)
        self.assertEqual(len(good), 1, good)
        # The daemon may write no file past 512 KiB: the next backup (2 MiB) gets it killed by
        # the kernel (SIGXFSZ) in the middle of the copy, the crash the backup must survive.
        resource.prlimit(d.pid, resource.RLIMIT_CORE, (0, 0))
        resource.prlimit(d.pid, resource.RLIMIT_FSIZE, (512 * 1024, 512 * 1024))
        r = d.ctl("backup")
        self.assertNotEqual(r.rc, 0, r)
        self.assertEqual(d.wait(), -signal.SIGXFSZ, "migrated was not killed writing the backup:\n" + d.log())
        left = [f for f in listdir(bdir) if f not in good]
        self.assertTrue(any(f.startswith(".") and f.endswith(".partial") for f in left),
                        "the copy was not cut short in its temporary: %r" % left)
        # Nothing under a backup's name is ever incomplete, not even before the restart.
        for f in backup_files(bdir):
            self.assertIsNone(problem_of(os.path.join(bdir, f)), "%s is named as a backup" % f)

        d.start()
        self.assertEqual(listdir(bdir), good, "the crash left files behind after the restart")
        self.assertEqual([b["file"] for b in d.call("backups")["backups"]], good)
        self.assertEqual(d.call("backup")["status"], "backed_up")
        self.assertCtl(d.ctl("up"), 0)
        self.assertEqual(row_count(db, "filler"), 64)


class RestoreKeepsItsSourceTest(SafetyCase):

    def test_restore_the_oldest_backup_when_keep_is_reached(self):
        db, bdir, d = self.examples_daemon(extra=["--keep", "3"])
        for v in (1, 2, 3):
            self.assertCtl(d.ctl("up", "--to", v), 0)               # backups at v0, v1, v2
        listed = d.call("backups")["backups"]
        self.assertEqual([b["version"] for b in listed], [2, 1, 0])
        oldest = listed[-1]
        r = d.ctl("restore", oldest["file"])
        self.assertCtl(r, 0)
        self.assertEqual((r.json["from_version"], r.json["to_version"]), (3, 0), r.json)
        self.assertEqual(applied_versions(db), [])
        # The pre-restore backup joined the rotation after the restore: the newest three remain.
        self.assertEqual([b["version"] for b in d.call("backups")["backups"]], [3, 2, 1])


class RetentionTest(SafetyCase):

    def test_a_busy_job_takes_no_backup(self):
        db, bdir, d = self.examples_daemon(extra=["--keep", "2", "--busy-timeout", "300"])
        self.assertCtl(d.ctl("up", "--to", 1), 0)
        before = backup_files(bdir)
        h = self.helper(harness.HOLDER_SCRIPT, [db, 3600], "holder")
        h.expect_line("locked")
        for _ in range(3):
            r = d.ctl("up")
            self.assertCtl(r, 6)
            self.assertEqual(r.json["error"]["code"], "busy", r.json)
        self.assertEqual(backup_files(bdir), before, "a job that failed busy took or pruned a backup")

    def test_the_restore_point_of_an_irreversible_migration_is_never_rotated_out(self):
        db, bdir, d = self.examples_daemon(extra=["--keep", "2"])
        self.assertCtl(d.ctl("up", "--to", 5), 0)
        res = d.call("up")                                           # backup at v5: undoes 0006
        point = res["backup"]
        self.assertEqual(point["version"], 5)
        for _ in range(10):                                          # a backup cron job
            self.assertEqual(d.call("backup")["status"], "backed_up")
        for _ in range(3):                                           # deploys going back and forth
            self.assertCtl(d.ctl("down"), 0)
            self.assertCtl(d.ctl("up"), 0)
        _, final = d.rpc("down", {"to": 4})
        err = self.assertError(final, "irreversible")
        self.assertEqual(err.get("backup", {}).get("file"), point["file"], err)
        auto = [b for b in d.call("backups")["backups"] if b.get("kind") == "auto"]
        self.assertIn(point["file"], [b["file"] for b in auto])
        self.assertEqual(len(auto), 3, auto)                         # keep 2, plus the restore point
        r = d.ctl("restore", point["file"])
        self.assertCtl(r, 0)
        self.assertEqual(r.json["to_version"], 5)


class HistoryTest(SafetyCase):

    def test_every_attempt_survives_restores_and_ids_are_never_reused(self):
        db, bdir, d = self.examples_daemon()
        self.assertCtl(d.ctl("up", "--to", 2), 0)
        b2 = d.call("backup")["backup"]
        self.assertCtl(d.ctl("up"), 0)
        self.assertCtl(d.ctl("restore", b2["file"]), 0)
        self.assertCtl(d.ctl("up", "--to", 3), 0)
        self.assertCtl(d.ctl("restore", b2["file"]), 0)
        rows = history(db)
        self.assertEqual([r[2] for r in rows], ["up", "up", "restore", "up", "restore"], rows)
        ids = [r[0] for r in rows]
        self.assertEqual(len(set(ids)), len(ids), rows)
        self.assertEqual(len(set(r[1] for r in rows)), len(rows), "job ids repeat: %r" % rows)
        last_job = max(r[1] for r in rows)

        # Across a restart, job ids continue after the highest recorded one.
        d.stop()
        d.start()
        res = d.call("backup")
        self.assertGreater(res["job_id"], last_job, res)
        self.assertCtl(d.ctl("up", "--to", 3), 0)
        rows = history(db)
        self.assertGreater(rows[-1][1], res["job_id"], rows)
        self.assertEqual(len(set(r[0] for r in rows)), len(rows), rows)

        # The history alone carries them: an operator who clears the backup directory and the
        # reserved ids of the daemon's state directory gets no repeated job id either.
        last_job = rows[-1][1]
        d.stop()
        shutil.rmtree(bdir)
        os.unlink(os.path.join(d.state_dir(), "job-ids.json"))
        d.start()
        res = d.call("backup")
        self.assertGreater(res["job_id"], last_job, res)

    def test_job_ids_handed_out_before_a_kill_are_never_handed_out_again(self):
        """Jobs that never reach the history (nothing to do) still used their ids; after a SIGKILL
        and a restart, the next job's id comes after every one handed out before."""
        db, bdir, d = self.examples_daemon()
        self.assertCtl(d.ctl("up"), 0)
        seen = []
        for _ in range(3):
            res = d.call("up")
            self.assertEqual(res["status"], "current", res)
            seen.append(res["job_id"])
        self.assertGreater(min(seen), max(r[1] for r in history(db)), "these jobs are not in the history")
        d.kill()
        d.start()
        res = d.call("backup")
        self.assertGreater(res["job_id"], max(seen), res)


def run_admin(argv):
    deadline = time.monotonic() + 30
    while True:
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
        if p.returncode == 0:
            return
        if b"lock" in p.stderr.lower() and time.monotonic() < deadline:
            time.sleep(0.3)
            continue
        raise harness.HarnessError("%s failed: %s" % (" ".join(argv), p.stderr.decode(errors="replace")))


def setUpModule():
    if os.geteuid() == 0:
        run_admin(["useradd", "--system", "--no-create-home", "--no-user-group", "--gid", "nogroup", "--home-dir",
                   "/nonexistent", "--shell", "/usr/sbin/nologin", OTHER_USER])
        _created_users.append(OTHER_USER)


def tearDownModule():
    for u in _created_users:
        run_admin(["userdel", u])
    _created_users.clear()


class TrustTest(SafetyCase):

    def setUp(self):
        super().setUp()
        if not _created_users:
            if os.environ.get("CI") == "true":
                self.fail("the backup directory trust tests need root (useradd) under CI")
            self.skipTest("needs root to create a user")

    def as_other(self, argv):
        pw = pwd.getpwnam(OTHER_USER)

        def drop():
            os.setgroups([])
            os.setgid(pw.pw_gid)
            os.setuid(pw.pw_uid)
        return subprocess.run(argv, preexec_fn=drop, capture_output=True, timeout=30)

    def test_a_symlink_named_like_a_backup_is_neither_listed_nor_restored(self):
        db, bdir, d = self.examples_daemon()
        self.assertCtl(d.ctl("up", "--to", 2), 0)
        planted = self.path("planted.sqlite")
        c = sqlite3.connect(planted)
        c.execute("CREATE TABLE planted (x)")
        c.close()
        name = "db.sqlite-29990101T000000.000Z-v1-job999.sqlite"
        os.symlink(planted, os.path.join(bdir, name))
        self.assertNotIn(name, [b["file"] for b in d.call("backups")["backups"]])
        _, final = d.rpc("restore", {"backup": name})
        self.assertError(final, "unknown_backup")
        self.assertNotIn("planted", tables_of(db))
        self.assertEqual(applied_versions(db), [1, 2])

    def test_a_backup_directory_that_is_a_symlink_is_refused(self):
        db = self.path("db.sqlite")
        real = self.path("elsewhere")
        os.mkdir(real, 0o700)
        os.symlink(real, db + "-backups")
        d = self.daemon(db, self.copy_examples())
        _, final = d.rpc("up")
        err = self.assertError(final, "backup_failed")
        self.assertIn("symbolic link", err["message"])
        self.assertEqual(listdir(real), [])
        self.assertEqual(applied_versions(db), [])

    def test_a_backup_directory_of_another_user_is_refused(self):
        db = self.path("db.sqlite")
        bdir = db + "-backups"
        os.mkdir(bdir, 0o700)
        pw = pwd.getpwnam(OTHER_USER)
        os.chown(bdir, pw.pw_uid, pw.pw_gid)
        os.chmod(self.tmp, 0o711)
        # That user can plant what it likes in its own directory.
        p = self.as_other(["sh", "-c", 'printf x > "$0/db.sqlite-29990101T000000.000Z-v1-job1.sqlite"', bdir])
        self.assertEqual(p.returncode, 0, p.stderr)
        d = self.daemon(db, self.copy_examples())
        for method in ("up", "backup", "backups", "restore"):
            _, final = d.rpc(method)
            self.assertIn("error", final, final)
            self.assertIn("owned by uid %d" % pw.pw_uid, final["error"]["message"], final)
        self.assertEqual(os.stat(bdir).st_uid, pw.pw_uid)
        self.assertEqual(len(listdir(bdir)), 1)
        self.assertEqual(applied_versions(db), [])

    def test_a_group_writable_backup_directory_is_refused(self):
        db = self.path("db.sqlite")
        bdir = db + "-backups"
        os.mkdir(bdir)
        os.chmod(bdir, 0o770)
        d = self.daemon(db, self.copy_examples())
        _, final = d.rpc("backup")
        err = self.assertError(final, "backup_failed")
        self.assertIn("writable by its group", err["message"])
        self.assertEqual(listdir(bdir), [])

    def test_a_planted_symlink_at_the_backup_name_is_not_followed(self):
        db, bdir, d = self.examples_daemon()
        os.mkdir(bdir, 0o700)
        victim = self.path("victim.conf")
        with open(victim, "w") as f:
            f.write("precious\n")
        os.chmod(victim, 0o644)
        # The next job is job 1 at version 0: plant its name for every millisecond of a window.
        now = time.time()
        for ms in range(-500, 6000):
            t = stamp(now + ms / 1000.0)
            for suffix in ("", "-manual"):
                os.symlink(victim, os.path.join(bdir, "db.sqlite-%s-v0-job1%s.sqlite" % (t, suffix)))
        _, final = d.rpc("backup")
        with open(victim) as f:
            self.assertEqual(f.read(), "precious\n", "the backup wrote through a planted symlink")
        self.assertEqual(os.stat(victim).st_mode & 0o777, 0o644, "the backup changed a file through a symlink")
        self.assertNotIn(victim, [b["path"] for b in d.call("backups")["backups"]])


if __name__ == "__main__":
    harness.main()
