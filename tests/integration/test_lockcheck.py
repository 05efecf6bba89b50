# SPDX-License-Identifier: MIT
"""migratectl lock-check --database: real processes holding real SQLite files, no daemon.

Each holder is a separate process (holder.py, or a small inline script) that reaches its state,
prints "ready PID" and waits on its stdin pipe until the test tells it to let go. For each case the
verdict, the pid, the SQLite lock and the exit code are checked, and that lock-check changed
nothing: no file created, the journal mode and the rows as they were.
"""

import fcntl
import hashlib
import json
import os
import re
import struct
import subprocess
import sys
import threading

import harness
from harness import ctl

HOLDER = os.path.join(harness.HERE, "holder.py")
READY_TIMEOUT = 15.0
LOCKCHECK_TIMEOUT = 30.0  # one lock-check run; it never waits for a lock, so it takes well under 1 s

# An OFD write lock over the database's PENDING byte, RESERVED byte and shared range: what an
# EXCLUSIVE lock looks like, but owned by an open file description (/proc/locks shows pid -1).
OFD_SCRIPT = r'''
import fcntl, os, struct, sys
fd = os.open(sys.argv[1], os.O_RDWR)
lock = struct.pack("hhqqi", fcntl.F_WRLCK, os.SEEK_SET, 0x40000000, 512, 0)
fcntl.fcntl(fd, fcntl.F_OFD_SETLK, lock)
print("ready %d" % os.getpid(), flush=True)
sys.stdin.readline()
print("released", flush=True)
'''

# A WAL database with committed frames that no checkpoint has copied back, kept open (the last
# connection to close would checkpoint them).
FRAMES_SCRIPT = r'''
import sqlite3, sys
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute("PRAGMA wal_autocheckpoint=0")
for i in range(3):
    c.execute("INSERT INTO t (x) VALUES (?)", (i,))
c.execute("SELECT count(*) FROM t").fetchall()
print("ready", flush=True)
sys.stdin.readline()
print("released", flush=True)
'''


class HolderProc:
    """A holder process: started, waited for until ready, released or killed at cleanup."""

    def __init__(self, test, argv, name):
        self.name = name
        self.err_path = test.path(name + ".stderr")
        self._err = open(self.err_path, "wb")
        self.proc = subprocess.Popen([sys.executable] + [str(a) for a in argv], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self._err, start_new_session=True)
        self.pid = self.proc.pid
        test.addCleanup(self.kill)
        line = self.readline(READY_TIMEOUT)
        if not line.startswith("ready"):
            raise harness.HarnessError("%s printed %r, not ready; stderr:\n%s" % (name, line, self.stderr()))

    def readline(self, timeout):
        box = []
        t = threading.Thread(target=lambda: box.append(self.proc.stdout.readline()), daemon=True)
        t.start()
        t.join(timeout)
        if not box:
            raise harness.HarnessError("%s printed nothing within %ss; stderr:\n%s" % (self.name, timeout, self.stderr()))
        return box[0].decode().strip()

    def stderr(self):
        try:
            with open(self.err_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def release(self):
        """Tells it to let go, and waits until it did."""
        self.proc.stdin.write(b"\n")
        self.proc.stdin.flush()
        line = self.readline(READY_TIMEOUT)
        if line != "released":
            raise harness.HarnessError("%s printed %r; stderr:\n%s" % (self.name, line, self.stderr()))
        self.proc.wait(READY_TIMEOUT)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        for f in (self.proc.stdin, self.proc.stdout, self._err):
            try:
                f.close()
            except (OSError, ValueError):
                pass


class LockCheckTest(harness.TestCase):

    # helpers

    def make_db(self, name="db.sqlite", journal_mode="wal"):
        db = self.path(name)
        c = harness.db_connect(db)
        try:
            self.assertEqual(c.execute("PRAGMA journal_mode=%s" % journal_mode).fetchone()[0], journal_mode)
            c.executescript("CREATE TABLE t (id INTEGER PRIMARY KEY, x INTEGER);"
                            "CREATE TABLE holder_rows (id INTEGER PRIMARY KEY, pid INTEGER);"
                            "INSERT INTO t (x) VALUES (1), (2);")
        finally:
            c.close()
        return db

    def holder(self, db, mode):
        return HolderProc(self, [HOLDER, db, mode], "holder-" + mode)

    def lockcheck(self, db, json_out=True):
        args = ["lock-check", "--database", db] + (["--json"] if json_out else [])
        r = ctl(*args, timeout=LOCKCHECK_TIMEOUT)
        if json_out:
            report = r.json
            self.extra_logs.append(("lock-check report", json.dumps(report, indent=2)))
            return r, report
        return r, None

    def locks_of(self, report, pid=None, file=None):
        return [l for l in report["locks"]
                if (pid is None or l["pid"] == pid or l.get("owner_pid") == pid)
                and (file is None or l["file"] == file) and not l["waiting"]]

    def holder_entry(self, report, pid):
        for h in report["holders"]:
            if h["pid"] == pid:
                return h
        self.fail("pid %d is not among the holders: %r" % (pid, report["holders"]))

    def rows(self, db):
        c = harness.db_connect(db)
        try:
            return c.execute("SELECT id, x FROM t ORDER BY id").fetchall()
        finally:
            c.close()

    def assertReportShape(self, report):
        for key in ("database", "wal", "shm", "holders", "locks", "probe", "verdict", "action",
                    "migration_possible"):
            self.assertIn(key, report)
        for key in ("path", "size", "owner_uid", "mode", "journal_mode", "page_size"):
            self.assertIn(key, report["database"])
        for key in ("present", "size", "frames_not_checkpointed"):
            self.assertIn(key, report["wal"])
        for key in ("present", "size"):
            self.assertIn(key, report["shm"])
        for key in ("write_ok", "write_error", "checkpoint_ok", "checkpoint_log_frames", "checkpoint_done_frames"):
            self.assertIn(key, report["probe"])
        for h in report["holders"]:
            for key in ("pid", "uid", "user", "cmdline", "command", "unit", "files", "writable"):
                self.assertIn(key, h)
        for l in report["locks"]:
            for key in ("pid", "file", "kind", "range_start", "range_end", "type", "sqlite_lock"):
                self.assertIn(key, l)
            self.assertIn(l["type"], ("read", "write"))
        self.assertIsInstance(report["action"], str)
        self.assertTrue(report["action"])

    # the cases

    def test_wal_reader_is_readers_only(self):
        db = self.make_db()
        h = self.holder(db, "read")
        r, report = self.lockcheck(db)
        self.assertReportShape(report)
        self.assertEqual(report["verdict"], "readers_only", r)
        self.assertEqual(r.rc, 0, r)
        self.assertIs(report["migration_possible"], True)
        self.assertEqual(report["database"]["journal_mode"], "wal")
        self.assertTrue(report["wal"]["present"])
        self.assertTrue(report["shm"]["present"])
        marks = [l for l in self.locks_of(report, h.pid, "shm") if re.fullmatch(r"WAL_READ[0-4]", l["sqlite_lock"] or "")]
        self.assertEqual(len(marks), 1, report["locks"])
        self.assertEqual(marks[0]["type"], "read")
        self.assertEqual(marks[0]["pid"], h.pid)
        self.assertEqual(marks[0]["kind"], "POSIX")
        self.assertEqual(marks[0]["range_start"], 123 + int(marks[0]["sqlite_lock"][-1]))
        self.assertIn("SHARED", [l["sqlite_lock"] for l in self.locks_of(report, h.pid, "db")])
        self.assertEqual(sorted(self.holder_entry(report, h.pid)["files"]), ["db", "shm", "wal"])
        self.assertIs(report["probe"]["write_ok"], True)
        self.assertIsNone(report["probe"]["write_error"])
        self.assertIs(report["probe"]["checkpoint_ok"], True)
        h.release()

    def test_wal_writer_is_writer_active(self):
        db = self.make_db()
        h = self.holder(db, "write")
        r, report = self.lockcheck(db)
        self.assertReportShape(report)
        self.assertEqual(report["verdict"], "writer_active", r)
        self.assertEqual(r.rc, 6, r)
        self.assertIs(report["migration_possible"], False)
        writes = [l for l in self.locks_of(report, h.pid, "shm") if l["sqlite_lock"] == "WAL_WRITE"]
        self.assertEqual(len(writes), 1, report["locks"])
        self.assertEqual(writes[0]["type"], "write")
        self.assertEqual(writes[0]["pid"], h.pid)
        self.assertEqual((writes[0]["range_start"], writes[0]["range_end"]), (120, 120))
        self.assertIs(report["probe"]["write_ok"], False)
        self.assertIn("locked", report["probe"]["write_error"])
        self.assertEqual(report["blocker"]["pid"], h.pid)
        self.assertIn("(pid %d)" % h.pid, report["action"])
        self.assertIn("write lock", report["action"])
        self.assertTrue(self.holder_entry(report, h.pid)["writable"])
        h.release()
        # let go: a migration could run now
        r, report = self.lockcheck(db)
        self.assertEqual(report["verdict"], "free", r)
        self.assertEqual(r.rc, 0, r)

    def test_rollback_exclusive_lock(self):
        db = self.make_db(journal_mode="delete")
        before = self.rows(db)
        h = self.holder(db, "exclusive")
        r, report = self.lockcheck(db)
        self.assertReportShape(report)
        self.assertEqual(report["verdict"], "exclusive_lock_held", r)
        self.assertEqual(r.rc, 6, r)
        self.assertEqual(report["database"]["journal_mode"], "delete")
        self.assertFalse(report["wal"]["present"])
        self.assertIsNone(report["probe"]["checkpoint_ok"])
        excl = [l for l in self.locks_of(report, h.pid, "db") if l["sqlite_lock"] == "EXCLUSIVE"]
        self.assertEqual(len(excl), 1, report["locks"])
        self.assertEqual(excl[0]["type"], "write")
        self.assertEqual(excl[0]["pid"], h.pid)
        self.assertLessEqual(excl[0]["range_start"], 0x40000002)
        self.assertEqual(excl[0]["range_end"], 0x400001FF)
        self.assertEqual(report["blocker"]["pid"], h.pid)
        self.assertIn("EXCLUSIVE", report["action"])
        self.assertIn("(pid %d)" % h.pid, report["action"])
        h.release()
        self.assertEqual(self.rows(db), before)
        self.assertEqual(harness.journal_mode(db), "delete")
        self.assertFalse(os.path.exists(db + "-wal"))

    def test_rollback_writer_holds_reserved(self):
        db = self.make_db(journal_mode="delete")
        h = self.holder(db, "write")
        r, report = self.lockcheck(db)
        self.assertEqual(report["verdict"], "writer_active", r)
        self.assertEqual(r.rc, 6, r)
        reserved = [l for l in self.locks_of(report, h.pid, "db") if l["sqlite_lock"] in ("RESERVED", "PENDING")]
        self.assertEqual(len(reserved), 1, report["locks"])
        self.assertEqual(reserved[0]["type"], "write")
        self.assertEqual(reserved[0]["range_start"], 0x40000001)
        h.release()

    def test_rollback_reader_is_readers_only(self):
        db = self.make_db(journal_mode="delete")
        h = self.holder(db, "read")
        r, report = self.lockcheck(db)
        self.assertEqual(report["verdict"], "readers_only", r)
        self.assertEqual(r.rc, 0, r)
        shared = [l for l in self.locks_of(report, h.pid, "db") if l["sqlite_lock"] == "SHARED"]
        self.assertEqual(len(shared), 1, report["locks"])
        self.assertEqual(shared[0]["type"], "read")
        h.release()

    def test_plain_open_is_a_holder_without_locks(self):
        db = self.make_db()
        h = self.holder(db, "open")
        r, report = self.lockcheck(db)
        self.assertReportShape(report)
        self.assertEqual(report["verdict"], "free", r)
        self.assertEqual(r.rc, 0, r)
        entry = self.holder_entry(report, h.pid)
        self.assertEqual(entry["files"], ["db"])
        self.assertFalse(entry["writable"])
        self.assertIn("holder.py", entry["cmdline"])
        self.assertEqual(entry["uid"], os.getuid())
        self.assertEqual(self.locks_of(report, h.pid), [])
        self.assertIn("1 process has it open", report["action"])
        h.release()

    def test_ofd_lock_shows_pid_minus_one_and_its_owner(self):
        if not hasattr(fcntl, "F_OFD_SETLK"):
            self.skipTest("this Python has no F_OFD_SETLK")
        db = self.make_db(journal_mode="delete")
        h = HolderProc(self, ["-c", OFD_SCRIPT, db], "ofd")
        r, report = self.lockcheck(db)
        self.assertEqual(report["verdict"], "exclusive_lock_held", r)
        self.assertEqual(r.rc, 6, r)
        ofd = [l for l in report["locks"] if l["kind"] == "OFDLCK"]
        self.assertEqual(len(ofd), 1, report["locks"])
        self.assertEqual(ofd[0]["pid"], -1)
        self.assertEqual(ofd[0]["owner_pid"], h.pid)  # found through the holder's fdinfo
        self.assertEqual(ofd[0]["sqlite_lock"], "EXCLUSIVE")
        self.assertEqual(report["blocker"]["pid"], h.pid)
        h.release()

    def test_frames_not_checkpointed_from_the_wal_index(self):
        db = self.make_db()
        h = HolderProc(self, ["-c", FRAMES_SCRIPT, db], "frames")
        rows = self.rows(db)
        r, report = self.lockcheck(db)
        self.assertEqual(report["verdict"], "readers_only", r)
        wal = report["wal"]
        self.assertTrue(wal["index_valid"], wal)
        self.assertGreaterEqual(wal["frames_not_checkpointed"], 3, wal)
        self.assertEqual(wal["frames_not_checkpointed"], wal["frames"] - wal["checkpointed"])
        self.assertGreater(wal["size"], 32)
        # a diagnostic changes nothing: no checkpoint copies the frames into the database
        self.assertIs(report["probe"]["checkpoint_ok"], True)
        self.assertEqual(report["probe"]["checkpoint_log_frames"], wal["frames"])
        self.assertEqual(report["probe"]["checkpoint_done_frames"], wal["checkpointed"])
        self.assertEqual(self.rows(db), rows)
        r, again = self.lockcheck(db)
        self.assertEqual(again["wal"], wal)
        self.assertEqual(again["database"]["size"], report["database"]["size"])
        h.release()
        self.assertEqual(harness.journal_mode(db), "wal")

    def test_probe_does_not_checkpoint(self):
        # A WAL with committed frames, kept open by another process: lock-check (the client's and
        # the daemon's) leaves the database file, the -wal file and the wal-index as they were.
        db = self.make_db()
        h = HolderProc(self, ["-c", FRAMES_SCRIPT, db], "frames")

        def files():
            with open(db, "rb") as f:
                main = hashlib.sha256(f.read()).hexdigest()
            with open(db + "-shm", "rb") as f:
                index = f.read(136)
            return main, os.path.getsize(db), os.path.getsize(db + "-wal"), index

        before = files()
        r, report = self.lockcheck(db)
        self.assertGreaterEqual(report["wal"]["frames_not_checkpointed"], 3, report["wal"])
        self.assertEqual(files(), before, "lock-check changed the database or its WAL")
        r, again = self.lockcheck(db)
        self.assertEqual(again["wal"]["frames_not_checkpointed"], report["wal"]["frames_not_checkpointed"])
        self.assertEqual(files(), before)
        h.release()

    def test_free_database_left_as_found(self):
        db = self.make_db()
        self.assertFalse(os.path.exists(db + "-wal"))
        digest = harness.sha256_file(db)
        r, report = self.lockcheck(db)
        self.assertReportShape(report)
        self.assertEqual(report["verdict"], "free", r)
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(report["holders"], [])
        self.assertEqual(report["locks"], [])
        self.assertIsNone(report["blocker"])
        self.assertEqual(report["database"]["path"], os.path.realpath(db))
        self.assertEqual(report["database"]["page_size"], 4096)
        self.assertEqual(report["database"]["mode"], "%04o" % (os.stat(db).st_mode & 0o7777))
        # the probe wrote nothing, and removed the -wal and -shm its connection made
        self.assertEqual(harness.sha256_file(db), digest)
        self.assertFalse(os.path.exists(db + "-wal"))
        self.assertFalse(os.path.exists(db + "-shm"))
        self.assertFalse(os.path.exists(db + "-journal"))

    def test_missing_database_is_an_error_and_not_created(self):
        db = self.path("nope.sqlite")
        r = ctl("lock-check", "--database", db, "--json", timeout=LOCKCHECK_TIMEOUT)
        self.assertEqual(r.rc, 1, r)
        self.assertEqual(r.json["error"]["code"], "database_error")
        self.assertIn("does not exist", r.json["error"]["message"])
        r = ctl("lock-check", "--database", db, timeout=LOCKCHECK_TIMEOUT)
        self.assertEqual(r.rc, 1, r)
        self.assertIn("does not exist", r.err)
        for suffix in ("", "-wal", "-shm", "-journal"):
            self.assertFalse(os.path.exists(db + suffix), suffix)

    def test_not_a_database(self):
        path = self.path("notes.txt")
        with open(path, "w") as f:
            f.write("not a database\n" * 20)
        r = ctl("lock-check", "--database", path, timeout=LOCKCHECK_TIMEOUT)
        self.assertEqual(r.rc, 1, r)
        self.assertIn("not an SQLite database", r.err)

    def test_human_output(self):
        db = self.make_db()
        h = self.holder(db, "write")
        r, _ = self.lockcheck(db, json_out=False)
        self.assertEqual(r.rc, 6, r)
        for text in ("Database %s" % os.path.realpath(db), "journal mode wal", "Processes with the database open",
                     "Locks", "WAL_WRITE", "Probe", "write: refused", "Verdict: writer_active",
                     "(pid %d) holds the write lock" % h.pid):
            self.assertIn(text, r.out, r)
        self.assertRegex(r.out, r"\n  %d +root|\n  %d +\S+" % (h.pid, h.pid))
        h.release()
        r, _ = self.lockcheck(db, json_out=False)
        self.assertEqual(r.rc, 0, r)
        self.assertIn("Verdict: free", r.out)


if __name__ == "__main__":
    harness.main()
