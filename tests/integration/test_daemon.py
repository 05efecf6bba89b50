# SPDX-License-Identifier: MIT
"""Daemon behaviour: the database lock, signals (SIGTERM during a migration, SIGHUP rescans),
clients that go away, --auto-up."""

import os
import select
import signal
import sqlite3
import subprocess
import sys
import threading

import harness
from harness import Conn, Daemon, applied_versions, current_version


HOLDER = os.path.join(harness.HERE, "holder.py")


class ExclusiveHolder:
    """holder.py in exclusive mode on a rollback-journal database: every reader and writer of
    the database waits (busy handler) until release()."""

    def __init__(self, test, db):
        self.proc = subprocess.Popen([sys.executable, HOLDER, db, "exclusive"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        test.addCleanup(self.kill)
        self.expect("ready")

    def expect(self, word, timeout=30):
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline().decode() if ready else ""
        if not line.startswith(word):
            raise harness.HarnessError("holder: expected %r, got %r; stderr: %s"
                                       % (word, line, self.proc.stderr.read1(65536).decode(errors="replace")))

    def release(self):
        self.proc.stdin.write(b"\n")
        self.proc.stdin.flush()
        self.expect("released")

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            f.close()


def rollback_journal_db(path):
    c = sqlite3.connect(path, isolation_level=None)
    c.execute("CREATE TABLE app (id INTEGER PRIMARY KEY)")
    c.close()
    return path


def has_open(pid, path):
    try:
        return any(os.readlink("/proc/%d/fd/%s" % (pid, fd)) == path for fd in os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return False


def slow_set(directory):
    return harness.write_migrations(directory, {
        1: ("quick", "CREATE TABLE quick (id INTEGER PRIMARY KEY);\n", "DROP TABLE quick;\n"),
        2: ("slow_fill", harness.slow_sql(), "DROP TABLE big;\n"),
    })


class DaemonTest(harness.TestCase):

    def wait_running_version(self, d, version, timeout=15):
        def check():
            st = d.status()
            return st if st["state"] == "running" and (st.get("job") or {}).get("version") == version else None
        return harness.wait_until(check, timeout, what="job to run version %d" % version)

    def test_second_daemon_on_same_database_refuses(self):
        mig = slow_set(self.path("migrations"))
        db = self.path("db.sqlite")
        d1 = self.daemon(db, mig)
        d2 = self.daemon(db, mig, start=False)
        d2.start(wait=False)
        rc = d2.wait(30)  # it exits by itself, while the first one still runs
        self.assertNotEqual(rc, 0, "a second migrated on the same database must refuse to run")
        self.assertIn(str(d1.pid), d2.log(), "the message must name the holder's pid")
        self.assertFalse(os.path.exists(d2.socket) and d2.socket != d1.socket)
        # The first one is unharmed.
        self.assertTrue(d1.alive())
        self.assertEqual(d1.call("hello")["protocol"], 1)
        # Same database through another path (a symlink to its directory): still refused.
        link = self.path("link")
        os.symlink(self.tmp, link)
        d3 = self.daemon(os.path.join(link, "db.sqlite"), mig, start=False)
        d3.start(wait=False)
        self.assertNotEqual(d3.wait(10), 0)
        self.assertIn(str(d1.pid), d3.log())

    def test_sigterm_during_startup_exits_cleanly(self):
        # Start-up blocked on the database (another process holds an exclusive lock): a SIGTERM
        # then must not kill the daemon outright; it ends the step and exits 0 without listening.
        mig = slow_set(self.path("migrations"))
        db = rollback_journal_db(self.path("db.sqlite"))
        holder = ExclusiveHolder(self, db)
        d = self.daemon(db, mig, extra_args=["--busy-timeout", "60000"], start=False)
        d.start(wait=False)
        harness.wait_until(lambda: has_open(d.pid, db), 30, what="migrated to open the database")
        d.signal(signal.SIGTERM)
        holder.release()
        self.assertEqual(d.wait(), 0, d.log())
        self.assertIn("Stopped during start-up", d.log())
        self.assertFalse(os.path.exists(d.socket))
        # nothing was left behind: the next daemon starts and serves
        d2 = self.daemon(db, mig)
        self.assertEqual(d2.call("hello")["protocol"], 1)

    def test_sighup_storm_is_coalesced(self):
        # Rescans run on the reader, which the holder blocks: a storm of SIGHUPs meanwhile must
        # cost one running rescan and one pending, not one queued rescan per signal.
        mig = slow_set(self.path("migrations"))
        db = rollback_journal_db(self.path("db.sqlite"))
        d = self.daemon(db, mig, extra_args=["--busy-timeout", "60000"])
        holder = ExclusiveHolder(self, db)
        # paced by round trips through the loop, so that the kernel cannot merge them into one
        # pending signal: each is delivered and handled while the first rescan still waits
        with harness.Conn(d.socket) as c:
            for i in range(50):
                d.signal(signal.SIGHUP)
                for _ in range(2):
                    _, final = c.call("hello", id=i)
                    self.assertIn("result", final)
        holder.release()
        self.assertIsNone(d.status()["current_version"])
        self.assertEqual(d.stop(), 0)
        rescans = d.log().count("SIGHUP: rescanning")
        self.assertGreaterEqual(rescans, 1, d.log())
        self.assertLessEqual(rescans, 2, "a SIGHUP storm queued %d rescans" % rescans)

    def test_lock_released_at_exit(self):
        mig = slow_set(self.path("migrations"))
        db = self.path("db.sqlite")
        d1 = self.daemon(db, mig)
        self.assertEqual(d1.stop(), 0)
        d2 = self.daemon(db, mig)
        self.assertEqual(d2.call("hello")["protocol"], 1)
        # After a crash (SIGKILL) too, on the same socket path.
        d2.kill()
        d3 = self.daemon(db, mig, socket_path=d2.socket)
        self.assertEqual(d3.call("hello")["protocol"], 1)

    def test_sigterm_during_slow_migration_rolls_back(self):
        mig = slow_set(self.path("migrations"))
        db = self.path("db.sqlite")
        d = self.daemon(db, mig)
        self.assertCtl(d.ctl("up", "--to", 1), 0)
        n_before = len(harness.attempts(db))

        running = Conn(d.socket, 60)
        self.addCleanup(running.close)
        running.send("up", {}, id="running")
        self.wait_running_version(d, 2)
        waiting = Conn(d.socket, 60)
        self.addCleanup(waiting.close)
        waiting.send("down", {"steps": 1}, id="waiting")
        harness.wait_until(lambda: d.status()["queue_length"] == 1, 5, what="the down to wait")

        d.signal(signal.SIGTERM)
        rc = d.wait(20)
        self.assertEqual(rc, 0, "SIGTERM must end the daemon with status 0")

        # The database is where it started, the attempt interrupted.
        self.assertEqual(applied_versions(db), [1])
        self.assertNotIn("big", harness.tables(db))
        rows = harness.attempts(db)[n_before:]
        self.assertEqual([a["status"] for a in rows], ["interrupted"], rows)
        self.assertEqual(rows[0]["direction"], "up")
        self.assertEqual(rows[0]["from_version"], 1)
        self.assertTrue(rows[0]["finished_at"])

        # Both clients got an error line: the running job interrupted (rolled back, not waited
        # for: no "big" table above), the waiting one never started.
        _, final = running.read_reply("running", 10)
        self.assertEqual(final["id"], "running")
        self.assertError(final, "interrupted")
        _, final = waiting.read_reply("waiting", 10)
        self.assertEqual(final["id"], "waiting")
        self.assertError(final, "shutting_down")

        # A new daemon reports it in history, and can do the job.
        d2 = self.daemon(db, mig)
        hist = d2.call("history")["attempts"]
        self.assertEqual(hist[0]["status"], "interrupted")
        self.assertEqual(d2.status()["current_version"], 1)
        self.assertEqual(d2.status()["state"], "idle")

    def test_sigterm_while_job_waits_for_the_write_lock(self):
        mig = harness.write_migrations(self.path("migrations"), {
            1: ("one", "CREATE TABLE one (id INTEGER PRIMARY KEY);\n", "DROP TABLE one;\n"),
        })
        db = self.path("db.sqlite")
        d = self.daemon(db, mig, extra_args=["--busy-timeout", "60000"])
        h = self.helper(harness.HOLDER_SCRIPT, [db, 3600], "holder")
        h.expect_line("locked")
        c = Conn(d.socket, 30)
        self.addCleanup(c.close)
        c.send("up", {}, id=1)
        # the job probes the write lock before its backup: SIGTERM once it says it waits for it
        while True:
            ev = c.read_json(30)
            self.assertIsNotNone(ev, "connection closed before the job waited for the write lock")
            self.assertIn("event", ev, ev)
            if ev["event"] == "lock" and ev.get("phase") == "waiting":
                break
        d.signal(signal.SIGTERM)
        self.assertEqual(d.wait(30), 0, "SIGTERM must not wait out the 60 s busy timeout")
        _, final = c.read_reply(1, 10)
        self.assertIn("error", final)
        h.kill()
        # No attempt row is asserted: the holder kept the database locked, so none could be written.
        self.assertEqual(applied_versions(db), [])

    def test_sighup_during_job(self):
        mig = slow_set(self.path("migrations"))
        db = self.path("db.sqlite")
        d = self.daemon(db, mig)
        c = Conn(d.socket, 60)
        self.addCleanup(c.close)
        c.send("up", {}, id=1)
        self.wait_running_version(d, 2)
        harness.write_migrations(mig, {3: ("three", "CREATE TABLE three (id INTEGER);\n", "DROP TABLE three;\n")})
        d.signal(signal.SIGHUP)
        _, final = c.read_reply(1, 60)
        res = self.assertResult(final)
        self.assertEqual([a["version"] for a in res["applied"]], [1, 2])
        st = harness.wait_until(lambda: (lambda s: s if s["pending"] else None)(d.status()), 5,
                                what="0003 to show as pending")
        self.assertEqual([p["version"] for p in st["pending"]], [3])
        self.assertCtl(d.ctl("up"), 0)
        self.assertEqual(applied_versions(db), [1, 2, 3])

    def test_sigterm_when_idle_exits_zero(self):
        mig = slow_set(self.path("migrations"))
        d = self.daemon(self.path("db.sqlite"), mig)
        self.assertEqual(d.call("hello")["protocol"], 1)
        self.assertEqual(d.stop(5), 0)

    def test_client_disconnect_during_job(self):
        mig = slow_set(self.path("migrations"))
        db = self.path("db.sqlite")
        d = self.daemon(db, mig)
        c = Conn(d.socket, 30)
        c.send("up", {}, id=1)
        self.wait_running_version(d, 2)
        c.close()
        # Others keep being served during the job, and the job completes.
        self.assertEqual(d.call("hello")["protocol"], 1)
        st = d.wait_idle(120)
        self.assertTrue(d.alive(), d.log())
        self.assertEqual(st["current_version"], 2)
        self.assertEqual(st["pending"], [])
        self.assertEqual(applied_versions(db), [1, 2])
        self.assertEqual(harness.attempts(db)[-1]["status"], "succeeded")
        self.assertEqual(d.call("hello")["protocol"], 1)

    def test_client_disconnect_right_after_request_and_reset(self):
        mig = slow_set(self.path("migrations"))
        db = self.path("db.sqlite")
        d = self.daemon(db, mig)
        # A client that sends up and leaves at once, with unread data (RST on close).
        import socket as socketmod
        s = socketmod.socket(socketmod.AF_UNIX, socketmod.SOCK_STREAM)
        s.settimeout(5)
        s.connect(d.socket)
        s.sendall(b'{"id":1,"method":"up","params":{"to":1}}\n')
        s.close()
        # Many clients reading events slowly: never reading at all while the job streams.
        idle_clients = []
        for i in range(5):
            c = Conn(d.socket, 30)
            self.addCleanup(c.close)
            c.send("status", id=i)
            idle_clients.append(c)
        st = d.wait_idle(60)
        self.assertTrue(d.alive(), d.log())
        self.assertEqual(d.call("hello")["protocol"], 1)
        # The up either ran or did not; it did not crash anything, and the DB is coherent.
        self.assertIn(applied_versions(db), ([], [1]))
        self.assertEqual(st["current_version"] or 0, current_version(db))

    def test_status_sees_a_commit_made_outside_the_daemon(self):
        # status may be answered from what the daemon built before: a commit by another process
        # (a history row removed by hand) and a new file must still show in the next status.
        mig = harness.write_migrations(self.path("migrations"), {
            1: ("one", "CREATE TABLE one (id INTEGER PRIMARY KEY);\n", None),
            2: ("two", "CREATE TABLE two (id INTEGER PRIMARY KEY);\n", None),
        })
        db = self.path("db.sqlite")
        d = self.daemon(db, mig)
        self.assertCtl(d.ctl("up"), 0)
        self.assertEqual(d.status()["pending"], [])
        self.assertEqual(d.status()["current_version"], 2)
        c = sqlite3.connect(db)
        c.execute("DELETE FROM migrated_schema WHERE version = 2")
        c.execute("DROP TABLE two")
        c.commit()
        c.close()
        st = d.status()
        self.assertEqual(st["current_version"], 1)
        self.assertEqual([p["version"] for p in st["pending"]], [2])
        harness.write_migrations(mig, {3: ("three", "CREATE TABLE three (id INTEGER PRIMARY KEY);\n", None)})
        self.assertEqual([p["version"] for p in d.status()["pending"]], [2, 3])
        self.assertCtl(d.ctl("up"), 0)
        st = d.status()
        self.assertEqual((st["current_version"], st["pending"]), (3, []))

    def test_text_status_lists_the_last_applied_and_all_with_all(self):
        mig = harness.write_migrations(self.path("migrations"), {
            v: ("step%d" % v, "CREATE TABLE t%d (id INTEGER PRIMARY KEY);\n" % v, None) for v in range(1, 15)
        })
        db = self.path("db.sqlite")
        d = self.daemon(db, mig)
        self.assertCtl(d.ctl("up", "--to", 12), 0)
        r = d.ctl("status", json_out=False)
        self.assertCtl(r, 0)
        self.assertIn("Applied (12; the last 10, --all lists every one):", r.out)
        self.assertNotIn("step2 ", r.out)
        self.assertIn("step3 ", r.out)
        self.assertIn("step12 ", r.out)
        self.assertIn("step13", r.out)   # every pending one
        self.assertIn("step14", r.out)
        r = d.ctl("status", "--all", json_out=False)
        self.assertCtl(r, 0)
        self.assertIn("Applied (12):", r.out)
        self.assertIn("step1 ", r.out)
        self.assertEqual(len(d.ctl("status").json["applied"]), 12)
        # what a person's status asks for: the newest applied only, with the whole count
        st = d.call("status", {"applied_last": 3})
        self.assertEqual(([m["version"] for m in st["applied"]], st["applied_count"]), ([10, 11, 12], 12))
        self.assertEqual((st["state"], st["gate"]["latest"], len(st["pending"])), ("idle", 14, 2))
        self.assertEqual(d.call("status", {"applied_last": 3}), st)
        full = d.call("status")
        self.assertEqual(([m["version"] for m in full["applied"]], full["applied_count"]), (list(range(1, 13)), 12))
        # a change answers anew, in every variant
        self.assertCtl(d.ctl("up"), 0)
        st = d.call("status", {"applied_last": 3})
        self.assertEqual(([m["version"] for m in st["applied"]], st["applied_count"]), ([12, 13, 14], 14))
        self.assertEqual((st["pending"], st["gate"]["pending"]), ([], 0))
        self.assertEqual(len(d.call("status")["applied"]), 14)

    def test_sqlite_daemon_and_client_load_no_postgresql_or_systemd_client_library(self):
        # libpq (and what it brings: TLS, Kerberos, LDAP) is loaded only for a PostgreSQL
        # database, libpg_query only for a PostgreSQL plan to classify; migratectl loads SQLite and libsystemd only for lock-check --database.
        mig = harness.write_migrations(self.path("migrations"), {
            1: ("one", "CREATE TABLE one (id INTEGER PRIMARY KEY);\n", None)})
        d = self.daemon(self.path("db.sqlite"), mig)
        self.assertCtl(d.ctl("up"), 0)
        with open("/proc/%d/maps" % d.pid) as f:
            maps = f.read()
        self.assertFalse("libpq" in maps, "a SQLite daemon mapped libpq")
        self.assertFalse("libpg_query" in maps, "a SQLite daemon mapped PostgreSQL's parser")
        self.assertTrue("libsqlite3" in maps, "no libsqlite3 in the daemon's maps")
        r = subprocess.run(["ldd", harness.MIGRATECTL_BIN], capture_output=True, text=True)
        if r.returncode == 0:
            for lib in ("libpq", "libsystemd", "libsqlite3"):
                self.assertNotIn(lib, r.stdout)

    def test_sighup_rescans_directory(self):
        mig = harness.write_migrations(self.path("migrations"), {
            1: ("one", "CREATE TABLE one (id INTEGER PRIMARY KEY);\n", "DROP TABLE one;\n"),
        })
        db = self.path("db.sqlite")
        d = self.daemon(db, mig)
        self.assertCtl(d.ctl("up"), 0)
        self.assertEqual(d.status()["pending"], [])

        harness.write_migrations(mig, {2: ("two", "CREATE TABLE two (id INTEGER PRIMARY KEY);\n", None)})
        d.signal(signal.SIGHUP)
        st = harness.wait_until(lambda: (lambda s: s if s["pending"] else None)(d.status()), 5,
                                what="the new migration to show as pending")
        self.assertEqual([(p["version"], p["name"], p["reversible"]) for p in st["pending"]], [(2, "two", False)])
        self.assertEqual(st["latest_version"], 2)
        self.assertCtl(d.ctl("status", "--check"), 4)
        self.assertCtl(d.ctl("up"), 0)
        self.assertEqual(applied_versions(db), [1, 2])

        # A broken directory after SIGHUP: reported, the daemon lives on, jobs refused.
        with open(os.path.join(mig, "0003-Bad Name.sql"), "w") as f:
            f.write("SELECT 1;\n")
        harness.write_migrations(mig, {4: ("four", "CREATE TABLE four (id INTEGER);\n", None)})
        d.signal(signal.SIGHUP)

        def directory_problem():
            st = d.status()
            probs = [p for p in st["problems"] if p.get("kind") == "directory"]
            return probs or None
        probs = harness.wait_until(directory_problem, 5, what="a directory problem")
        self.assertIn("0003-Bad Name.sql", str(probs))
        self.assertTrue(d.alive())
        _, final = d.rpc("up")
        self.assertError(final, "directory_invalid")
        self.assertNotIn("four", harness.tables(db))

        os.unlink(os.path.join(mig, "0003-Bad Name.sql"))
        d.signal(signal.SIGHUP)
        harness.wait_until(lambda: not d.status()["problems"], 5, what="problems to clear")
        self.assertCtl(d.ctl("up"), 0)
        self.assertEqual(applied_versions(db), [1, 2, 4])

    def test_auto_up(self):
        examples = harness.example_migrations()
        db = self.path("db.sqlite")
        d = self.daemon(db, harness.MIGRATIONS_DIR, extra_args=["--auto-up"])
        st = harness.wait_until(lambda: (lambda s: s if s["state"] == "idle" and s["current_version"] ==
                                         examples[-1][0] else None)(d.status()), 30,
                                what="auto-up to reach the latest version")
        self.assertEqual(st["pending"], [])
        self.assertEqual(applied_versions(db), [m[0] for m in examples])
        rows = harness.attempts(db)
        self.assertEqual([(a["direction"], a["status"]) for a in rows], [("up", "succeeded")])
        self.assertEqual(harness.journal_mode(db), "wal")
        # Restarting with --auto-up on a current database changes nothing.
        self.assertEqual(d.stop(), 0)
        d2 = self.daemon(db, harness.MIGRATIONS_DIR, extra_args=["--auto-up"])
        d2.wait_idle(30)
        self.assertEqual(len([a for a in harness.attempts(db) if a["from_version"] != a["to_version"]]), 1)

    def test_auto_up_is_the_first_job(self):
        # A client connecting right away with a down sees the auto-up's result first: the down
        # runs after it and reverts the last migration.
        mig = slow_set(self.path("migrations"))
        db = self.path("db.sqlite")
        d = self.daemon(db, mig, extra_args=["--auto-up"])
        _, final = d.rpc("down", {"steps": 1}, timeout=120)
        res = self.assertResult(final)
        self.assertEqual(res["status"], "reverted")
        self.assertEqual(res["from_version"], 2)
        self.assertEqual(applied_versions(db), [1])

    def test_database_created_in_missing_file(self):
        mig = slow_set(self.path("migrations"))
        db = self.path("fresh.sqlite")
        self.assertFalse(os.path.exists(db))
        d = self.daemon(db, mig)
        self.assertTrue(os.path.exists(db))
        self.assertEqual(harness.journal_mode(db), "wal")
        self.assertEqual(d.status()["journal_mode"], "wal")

    def test_bad_command_line_exits_2(self):
        d = self.daemon(start=False, args=["--no-such-flag"])
        d.start(wait=False)
        self.assertEqual(d.wait(10), 2, d.log())
        d = self.daemon(start=False, args=["--migrations", self.path()])
        d.start(wait=False)
        self.assertNotEqual(d.wait(10), 0, "no database given: must refuse")
        for bad in ("soon", "-1"):
            d = self.daemon(self.path("db.sqlite"), self.path(), extra_args=["--busy-timeout", bad], start=False)
            d.start(wait=False)
            self.assertEqual(d.wait(10), 2, d.log())

    def test_unusable_migrations_directory(self):
        d = self.daemon(self.path("db.sqlite"), self.path("does-not-exist"), start=False)
        d.start(wait=False)
        try:
            rc = d.wait(10)
        except AssertionError:
            # Still running: then it must report the problem rather than pretend all is well.
            d.wait_ready()
            st = d.status()
            self.assertTrue(st["problems"], st)
            return
        self.assertNotEqual(rc, 0)
        self.assertIn("does-not-exist", d.log())


if __name__ == "__main__":
    harness.main()
