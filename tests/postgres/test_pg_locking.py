#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Locking on a shared PostgreSQL server: migrated's advisory lock held by another session, a
table lock that outlasts lock_timeout, two daemons racing, a daemon killed mid-migration, CREATE
INDEX CONCURRENTLY with daemons waiting for the lock."""

import os
import signal
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from pgharness import PgTestCase, harness  # noqa: E402
from test_postgres import BASIC, write  # noqa: E402

LOCK_KEYS = "1835624306, 1"


class TestLocking(PgTestCase):
    def test_advisory_lock_holder_is_named_then_the_job_runs(self):
        write(self.migrations, BASIC)
        d = self.daemon()
        other = self.cluster.session(self.dbname)
        self.addCleanup(other.close)
        pid = int(other.run("SELECT 'pid:' || pg_backend_pid();", "pid:").split(":")[1])
        other.run("SELECT pg_advisory_lock(%s); SELECT 'locked';" % LOCK_KEYS, "locked")
        seen = []

        def on_event(ev):
            if ev["event"] == "lock" and ev.get("phase") == "waiting" and "holder" in ev and not seen:
                seen.append(ev["holder"])
                other.run("SELECT pg_advisory_unlock(%s); SELECT 'released';" % LOCK_KEYS, "released")

        with harness.Conn(d.socket, 120) as c:
            c.send("up")
            _, final = c.read_reply(on_event=on_event, timeout=120)
        self.assertEqual(len(seen), 1)
        self.assertEqual(seen[0]["pid"], pid)
        self.assertEqual(seen[0]["application_name"], "pgharness-session")
        self.assertEqual(seen[0]["client_addr"], "local")
        self.assertIn("query", seen[0])
        self.assertEqual(harness.result_of(final)["status"], "applied", final)
        self.assertEqual(self.sql("SELECT max(version) FROM migrated_schema"), [["2"]])

    def test_table_lock_outlasting_lock_timeout_retries_then_fails_cleanly(self):
        write(self.migrations, BASIC[:1])
        d = self.daemon(extra=["--busy-timeout", "100", "--skip-backup"])
        self.assertEqual(d.call("up")["to_version"], 1)
        write(self.migrations, [(2, "email", "ALTER TABLE users ADD COLUMN email text;\n", None)])
        other = self.cluster.session(self.dbname)
        self.addCleanup(other.close)
        other.run("BEGIN; LOCK TABLE users IN ACCESS EXCLUSIVE MODE; SELECT 'locked';", "locked")
        events, final = d.rpc("up", timeout=120)
        err = harness.error_of(final)
        self.assertEqual(err["code"], "busy", err)
        self.assertIn("55P03", err["message"])
        self.assertIn("gave up after 5 attempts", err["message"])
        retries = [e for e in events if e["event"] == "lock" and e.get("phase") == "retrying"]
        self.assertEqual(len(retries), 4, events)
        # migratectl tells each retry and the failure
        r = harness.ctl("up", sock=d.socket, timeout=120)
        self.assertEqual(r.rc, 6, r)
        self.assertEqual(r.err.count("running the plan again"), 4, r.err)
        other.run("ROLLBACK; SELECT 'done';", "done")
        # unchanged: no column, no record; then the same job succeeds once the lock is gone
        self.assertEqual(self.sql("SELECT count(*) FROM information_schema.columns "
                                  "WHERE table_name = 'users' AND column_name = 'email'"), [["0"]])
        self.assertEqual(self.sql("SELECT max(version) FROM migrated_schema"), [["1"]])
        self.assertEqual(d.call("up")["to_version"], 2)

    def test_lock_check_names_the_sessions_holding_table_locks(self):
        write(self.migrations, BASIC[:1])
        d = self.daemon()
        d.call("up")
        self.assertEqual(d.call("lock_check")["relation_locks"], [])
        other = self.cluster.session(self.dbname)
        self.addCleanup(other.close)
        pid = int(other.run("SELECT 'pid:' || pg_backend_pid();", "pid:").split(":")[1])
        other.run("BEGIN; LOCK TABLE users IN ACCESS EXCLUSIVE MODE; SELECT 'locked';", "locked")
        report = d.call("lock_check")
        self.assertEqual(report["backend"], "postgresql")
        held = [r for r in report["relation_locks"] if r["relation"] == "users"]
        self.assertEqual([(r["pid"], r["mode"], r["granted"]) for r in held], [(pid, "AccessExclusiveLock", True)])
        self.assertIn("lock_timeout", report["action"])
        self.assertFalse(report["migration_possible"])
        r = harness.ctl("lock-check", sock=d.socket)
        self.assertEqual(r.rc, 6, r)  # busy
        self.assertIn("AccessExclusiveLock", r.out)
        self.assertIn("pgharness-session", r.out)
        other.run("ROLLBACK; SELECT 'done';", "done")
        r = harness.ctl("lock-check", sock=d.socket)
        self.assertEqual(r.rc, 0, r)
        self.assertIn("Writer lock: free", r.out)

    def test_two_daemons_concurrent_up_apply_once(self):
        write(self.migrations, BASIC + [(3, "slow", "SELECT pg_sleep(1);\nCREATE TABLE t3 (x int);\n", None)])
        a = self.daemon(name="a")
        b = self.daemon(name="b")
        results = {}

        def up(name, d):
            results[name] = d.rpc("up", timeout=120)[1]

        threads = [threading.Thread(target=up, args=(n, d)) for n, d in (("a", a), ("b", b))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        statuses = sorted(harness.result_of(results[n])["status"] for n in ("a", "b"))
        self.assertEqual(statuses, ["applied", "current"], results)
        self.assertEqual(self.sql("SELECT count(*) FROM migrated_schema"), [["3"]])
        self.assertEqual(self.sql("SELECT count(*) FROM migrated_attempts WHERE status = 'succeeded'"), [["1"]])

    def test_kill_9_mid_migration_rolls_back_and_another_daemon_completes(self):
        write(self.migrations, BASIC[:1] + [
            (2, "slow", "CREATE TABLE t2 (x int);\nSELECT pg_sleep(600);\n", None)])
        a = self.daemon(name="a")
        with harness.Conn(a.socket, 120) as c:
            c.send("up")
            while True:
                ev = c.read_json(60)
                if ev.get("event") == "migration" and ev.get("phase") == "applying" and ev.get("version") == 2:
                    break
            # the statement runs on the server now
            while not self.sql("SELECT 1 FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(600)%'"):
                pass
            a.kill()
        # the server ends the dead client's session (client_connection_check_interval): rolled back
        while self.sql("SELECT 1 FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(600)%'"):
            pass
        self.assertEqual(self.sql("SELECT count(*) FROM pg_tables WHERE tablename IN ('users', 't2')"), [["0"]])
        with open(os.path.join(self.migrations, "0002_slow.up.sql"), "w") as f:
            f.write("CREATE TABLE t2 (x int);\n")
        b = self.daemon(name="b")
        res = b.call("up")
        self.assertEqual(res["to_version"], 2, res)
        statuses = [a["status"] for a in b.call("history")["attempts"]]
        self.assertEqual(statuses, ["succeeded", "interrupted"], statuses)

    def test_create_index_concurrently_with_two_daemons_waiting_does_not_deadlock(self):
        # CREATE INDEX CONCURRENTLY waits for every transaction holding an older snapshot: a daemon
        # waiting for the writer lock must hold none, or the build and the waiter wait for each other
        write(self.migrations, BASIC[:1] + [
            (2, "idx", "-- migrated: no-transaction\nCREATE INDEX CONCURRENTLY users_name ON users (name);\n",
             None)])
        a, b, c = self.daemon(name="a"), self.daemon(name="b"), self.daemon(name="c")
        self.assertEqual(a.call("up", {"to": 1})["to_version"], 1)
        self.sql("INSERT INTO users SELECT g, 'n' || g FROM generate_series(1, 1000) g")
        # an application transaction with a snapshot holds the build in its wait phase meanwhile
        app = self.cluster.session(self.dbname)
        self.addCleanup(app.close)
        app.run("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT 'snap:' || count(*) FROM users;", "snap:")
        conns = [harness.Conn(d.socket, 120) for d in (a, b, c)]
        for conn in conns:
            self.addCleanup(conn.close)
        conns[0].send("up")
        while not self.sql("SELECT 1 FROM pg_stat_activity WHERE query LIKE 'CREATE INDEX CONCURRENTLY%' "
                           "AND wait_event_type = 'Lock'"):
            pass
        for conn in conns[1:]:
            conn.send("up")
            while True:
                ev = conn.read_json(60)
                if ev.get("event") == "lock" and ev.get("phase") == "waiting":
                    break
        # the waiters poll with pg_try_advisory_lock between transactions: no snapshot, no xid. A
        # client statement of ours may hold one for its own instant (a host's row update), and
        # autovacuum may visit the table: wait until none of our client sessions holds one, which
        # a waiter polling inside a transaction never reaches
        snapshots = ("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                     "AND backend_type = 'client backend' "
                     "AND application_name NOT IN ('pgharness-session', 'psql') "
                     "AND pid <> pg_backend_pid() AND backend_xmin IS NOT NULL "
                     "AND query NOT LIKE 'CREATE INDEX CONCURRENTLY%'")
        deadline = time.monotonic() + 30
        while self.sql(snapshots) != [["0"]] and time.monotonic() < deadline:
            time.sleep(0.05)  # polling the server's view: it sends no event for this
        self.assertEqual(self.sql(snapshots), [["0"]])
        app.run("COMMIT; SELECT 'done';", "done")
        finals = [conn.read_reply(timeout=120)[1] for conn in conns]
        statuses = [harness.result_of(f)["status"] for f in finals]
        self.assertEqual(statuses, ["applied", "current", "current"], finals)
        self.assertEqual(self.sql("SELECT indisvalid FROM pg_index WHERE indexrelid = 'users_name'::regclass"),
                         [["t"]])
        self.assertEqual(self.sql("SELECT max(version) FROM migrated_schema"), [["2"]])

    def test_a_daemon_starting_while_another_migrates_leaves_its_attempt_alone(self):
        write(self.migrations, BASIC[:1] + [(2, "slow", "CREATE TABLE t2 (x int);\nSELECT pg_sleep(600);\n", None)])
        a = self.daemon(name="a")
        with harness.Conn(a.socket, 120) as c:
            c.send("up")
            while not self.sql("SELECT 1 FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(600)%'"):
                pass
            # b starts and serves at once; a's attempt is a's, still running
            b = self.daemon(name="b")
            self.assertIn("its running attempts are left as they are", b.log())
            self.assertEqual(b.status()["state"], "idle")
            self.assertEqual(self.sql("SELECT status FROM migrated_attempts"), [["running"]])
            a.signal(signal.SIGTERM)
            _, final = c.read_reply(timeout=60)
        self.assertEqual(harness.error_of(final)["code"], "interrupted", final)
        self.assertEqual(self.sql("SELECT status FROM migrated_attempts"), [["interrupted"]])

    def test_sigterm_cancels_the_running_statement_and_rolls_back(self):
        write(self.migrations, BASIC[:1] + [(2, "slow", "CREATE TABLE t2 (x int);\nSELECT pg_sleep(600);\n", None)])
        d = self.daemon()
        with harness.Conn(d.socket, 120) as c:
            c.send("up")
            while not self.sql("SELECT 1 FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(600)%'"):
                pass
            d.signal(signal.SIGTERM)
            _, final = c.read_reply(timeout=60)
        self.assertEqual(harness.error_of(final)["code"], "interrupted", final)
        self.assertEqual(d.wait(), 0)
        self.assertEqual(self.sql("SELECT count(*) FROM pg_tables WHERE tablename IN ('users', 't2')"), [["0"]])
        self.assertEqual(self.sql("SELECT status FROM migrated_attempts"), [["interrupted"]])


if __name__ == "__main__":
    harness.main()
