# SPDX-License-Identifier: MIT
"""Concurrency: other writers on the database, many simultaneous clients, and status answered
from memory while a slow migration runs."""

import json
import os
import threading
import time

import harness
from harness import Conn, applied_versions, current_version, schema

SIMPLE = {
    1: ("one", "CREATE TABLE one (id INTEGER PRIMARY KEY);\n", "DROP TABLE one;\n"),
    2: ("two", "CREATE TABLE two (id INTEGER PRIMARY KEY);\n", "DROP TABLE two;\n"),
}


def read_ids(path):
    with open(path) as f:
        return [int(line) for line in f if line.strip()]


class WriterTest(harness.TestCase):
    """A separate process writing continuously, and one holding the write lock."""

    def test_up_and_down_while_another_process_writes(self):
        examples = harness.example_migrations()
        db = self.path("db.sqlite")
        d = self.daemon(db, harness.MIGRATIONS_DIR)
        log, stop = self.path("writer.log"), self.path("writer.stop")
        w = self.helper(harness.WRITER_SCRIPT, [db, log, stop], "writer")
        w.expect_line("ready")
        harness.wait_until(lambda: len(read_ids(log)) >= 20, 10, what="writer to commit 20 rows")

        r = d.ctl("up")
        self.assertCtl(r, 0)
        self.assertEqual(r.json["status"], "applied")
        self.assertEqual(current_version(db), examples[-1][0])
        n = len(read_ids(log))
        harness.wait_until(lambda: len(read_ids(log)) >= n + 20, 10, what="writer to go on after up")

        r = d.ctl("down", "--steps", 2)
        self.assertCtl(r, 0)
        n = len(read_ids(log))
        harness.wait_until(lambda: len(read_ids(log)) >= n + 20, 10, what="writer to go on after down")
        r = d.ctl("up")
        self.assertCtl(r, 0)
        self.assertEqual(current_version(db), examples[-1][0])

        with open(stop, "w"):
            pass
        w.expect_line("done", 10)
        self.assertEqual(w.proc.wait(10), 0, w.stderr())

        logged = read_ids(log)
        self.assertGreater(len(logged), 60)
        c = harness.db_connect(db)
        in_db = {r[0] for r in c.execute("SELECT id FROM writer_rows")}
        c.close()
        lost = sorted(set(logged) - in_db)
        self.assertEqual(lost, [], "rows the writer committed are missing")
        self.assertEqual(harness.journal_mode(db), "wal")

    def test_writer_holding_lock_makes_up_busy(self):
        mig = harness.write_migrations(self.path("migrations"), SIMPLE)
        db = self.path("db.sqlite")
        d = self.daemon(db, mig, extra_args=["--busy-timeout", "500"])
        h = self.helper(harness.HOLDER_SCRIPT, [db, 3600], "holder")
        h.expect_line("locked")
        before = schema(db)

        r = d.ctl("up")
        self.assertCtl(r, 6)
        self.assertEqual(r.json["error"]["code"], "busy", r)

        _, final = d.rpc("up")
        self.assertError(final, "busy")
        self.assertCtl(d.ctl("up", json_out=False), 6)

        self.assertEqual(applied_versions(db), [])
        self.assertEqual(schema(db), before)
        self.assertEqual(d.status()["state"], "idle")

        h.kill()
        r = d.ctl("up")
        self.assertCtl(r, 0)
        self.assertEqual(applied_versions(db), [1, 2])

    def daemon_behind_holder(self, busy_timeout_ms):
        """A daemon on a database whose write lock another process holds (until killed)."""
        mig = harness.write_migrations(self.path("migrations"), SIMPLE)
        db = self.path("db.sqlite")
        d = self.daemon(db, mig, extra_args=["--busy-timeout", str(busy_timeout_ms)])
        h = self.helper(harness.HOLDER_SCRIPT, [db, 3600], "holder")
        h.expect_line("locked")
        return db, d, h

    def test_cancel_while_job_waits_for_lock_is_cancelled_and_recorded(self):
        """A job waiting for a locked database: status names what it waits for (not "up 0/0 ?");
        cancel ends it as cancelled (not interrupted), and history shows the attempt, although the
        database's own history could not be written (the lock is still held)."""
        db, d, h = self.daemon_behind_holder(600000)
        p = self.spawn([harness.MIGRATECTL_BIN, "--socket", d.socket, "--json", "up"])
        harness.wait_until(lambda: (d.status().get("job") or {}).get("step") == "waiting for the database's write lock",
                           10, what="the job to wait for the lock")
        text = d.ctl("status", json_out=False).out
        self.assertRegex(text, r"running job \d+: up, waiting for the database's write lock", text)
        self.assertNotIn("0/0", text)
        job_id = d.status()["job"]["id"]
        self.assertCtl(d.ctl("cancel"), 0)
        out, err = p.communicate(timeout=20)
        self.assertEqual(p.returncode, 1, (out, err))
        self.assertEqual(json.loads(out)["error"]["code"], "cancelled", out)
        attempts = d.rpc("history")[1]["result"]["attempts"]
        mine = [a for a in attempts if a["job_id"] == job_id]
        self.assertEqual([a["status"] for a in mine], ["cancelled"], attempts)
        self.assertEqual(mine[0]["versions"], [1, 2], mine)
        self.assertEqual(d.status()["state"], "idle")
        h.kill()
        self.assertCtl(d.ctl("up"), 0)
        self.assertEqual(applied_versions(db), [1, 2])
        # the kept attempt is still listed, before the one that succeeded
        statuses = [a["status"] for a in d.rpc("history")[1]["result"]["attempts"]]
        self.assertEqual(statuses[:2], ["succeeded", "cancelled"], statuses)

    def test_status_answered_while_job_waits_for_lock(self):
        """Each status reply says "running": answered while the job waits, not after it (the round
        trips are printed; their speed is measured by tests/bench, status row)."""
        db, d, h = self.daemon_behind_holder(3000)
        p = self.spawn([harness.MIGRATECTL_BIN, "--socket", d.socket, "--json", "up"])
        harness.wait_until(lambda: d.status()["state"] == "running", 5, what="the job to start")
        times = []
        with Conn(d.socket, 5) as c:
            for i in range(10):
                t0 = time.perf_counter()
                _, final = c.call("status", id=i, timeout=5)
                times.append(time.perf_counter() - t0)
                self.assertEqual(final["result"]["state"], "running")
        self.extra_logs.append(("status round trips (ms)", " ".join("%.2f" % (x * 1000) for x in times)))
        out, err = p.communicate(timeout=20)
        self.assertEqual(p.returncode, 6, (out, err))
        self.assertEqual(json.loads(out)["error"]["code"], "busy")

    def test_default_busy_timeout_outlasts_a_short_lock(self):
        """Without --busy-timeout, up waits out a writer that holds the lock for 2 s (the default is
        5000 ms), and a writer that never lets go makes it fail with busy, nothing changed."""
        mig = harness.write_migrations(self.path("migrations"), SIMPLE)
        db = self.path("db.sqlite")
        d = self.daemon(db, mig)
        h = self.helper(harness.HOLDER_SCRIPT, [db, 3600], "holder")
        h.expect_line("locked")
        r = d.ctl("up")
        self.assertCtl(r, 6)
        self.assertEqual(r.json["error"]["code"], "busy", r)
        self.assertEqual(applied_versions(db), [])
        h.kill()
        h = self.helper(harness.HOLDER_SCRIPT, [db, 2.0], "short holder")
        h.expect_line("locked")
        r = d.ctl("up")
        self.assertCtl(r, 0)
        self.assertEqual(applied_versions(db), [1, 2])

    def test_up_waits_for_a_short_lock(self):
        # The lock is released after 1 s, well within the busy timeout: up gets in.
        mig = harness.write_migrations(self.path("migrations"), SIMPLE)
        db = self.path("db.sqlite")
        d = self.daemon(db, mig, extra_args=["--busy-timeout", "4000"])
        h = self.helper(harness.HOLDER_SCRIPT, [db, 1.0], "holder")
        h.expect_line("locked")
        r = d.ctl("up")
        self.assertCtl(r, 0)
        self.assertEqual(applied_versions(db), [1, 2])
        c = harness.db_connect(db)
        self.assertEqual(c.execute("SELECT count(*) FROM holder_rows").fetchone()[0], 1)
        c.close()


class ManyClientsTest(harness.TestCase):
    N = 50

    def setUp(self):
        super().setUp()
        self.examples = harness.example_migrations()
        self.versions = [m[0] for m in self.examples]
        self.db = self.path("db.sqlite")
        self.d = self.daemon(self.db, harness.MIGRATIONS_DIR)

    def assertAppliedOnce(self, results):
        self.assertEqual(applied_versions(self.db), self.versions)
        ok = [a for a in harness.attempts(self.db)
              if a["direction"] == "up" and a["status"] == "succeeded" and a["from_version"] != a["to_version"]]
        self.assertEqual(len(ok), 1, harness.attempts(self.db))
        self.assertEqual((ok[0]["from_version"], ok[0]["to_version"]), (0, self.versions[-1]))
        self.assertFalse([a for a in harness.attempts(self.db) if a["status"] != "succeeded"])
        statuses = [r["status"] for r in results]
        self.assertTrue(set(statuses) <= {"applied", "current"}, statuses)
        applied = [r for r in results if r["status"] == "applied"]
        self.assertGreaterEqual(len(applied), 1)
        self.assertEqual({r["job_id"] for r in applied}, {ok[0]["job_id"]},
                         "every 'applied' answer must come from the one job that applied")
        for r in applied:
            self.assertEqual([a["version"] for a in r["applied"]], self.versions)
        self.assertEqual(self.d.status()["state"], "idle")
        self.assertTrue(self.d.alive())

    def test_fifty_raw_clients_at_once(self):
        barrier = threading.Barrier(self.N, timeout=30)
        finals = [None] * self.N
        errors = [None] * self.N

        def client(i):
            try:
                with Conn(self.d.socket, 120) as c:
                    barrier.wait()
                    c.send("up", {}, id=i)
                    finals[i] = c.read_reply(i, 120)[1]
            except BaseException as e:  # reported below
                errors[i] = repr(e)

        threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(self.N)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 150
        for t in threads:
            t.join(max(0.1, deadline - time.monotonic()))
        self.assertFalse([t for t in threads if t.is_alive()], "some clients hung")
        self.assertEqual([e for e in errors if e], [])
        for i, f in enumerate(finals):
            self.assertEqual(f["id"], i)
            self.assertIn("result", f, f)
        self.assertAppliedOnce([f["result"] for f in finals])

    def test_fifty_migratectl_processes_at_once(self):
        go = self.path("go")
        ready = self.path("ready")
        os.mkdir(ready)
        # each process says it is ready, then waits for the go file (2000 polls as a safety net)
        wrapper = (': > "$2/$$"; i=0; while [ ! -e "$1" ] && [ $i -lt 2000 ]; do sleep 0.01; i=$((i+1)); done; '
                   'shift 2; exec "$@"')
        procs = [self.spawn(["sh", "-c", wrapper, "sh", go, ready, harness.MIGRATECTL_BIN, "--socket",
                             self.d.socket, "--json", "up"]) for _ in range(self.N)]
        harness.wait_until(lambda: len(os.listdir(ready)) == self.N, 20, what="every migratectl ready to start")
        with open(go, "w"):
            pass
        results = []
        deadline = time.monotonic() + 150
        for p in procs:
            out, err = p.communicate(timeout=max(1, deadline - time.monotonic()))
            self.assertEqual(p.returncode, 0, "migratectl failed: %s %s" % (out, err))
            results.append(json.loads(out))
        self.assertAppliedOnce(results)


class SlowJobTest(harness.TestCase):
    """Status from memory during a slow migration, and coalescing of waiting ups."""

    def setUp(self):
        super().setUp()
        self.mig = harness.write_migrations(self.path("migrations"), {
            1: ("quick", "CREATE TABLE quick (id INTEGER PRIMARY KEY);\n", "DROP TABLE quick;\n"),
            2: ("slow_fill", harness.slow_sql(), "DROP TABLE big;\n"),
            3: ("after", "CREATE TABLE after_slow (id INTEGER PRIMARY KEY);\n", "DROP TABLE after_slow;\n"),
        })
        self.db = self.path("db.sqlite")
        self.d = self.daemon(self.db, self.mig)

    def start_up(self, params, id=1):
        """Sends up on its own connection from a thread; returns (thread, box) with box['final']."""
        box = {"events": [], "queued": threading.Event()}
        conn = Conn(self.d.socket, 120)
        self.addCleanup(conn.close)
        conn.send("up", params, id=id)

        def on_event(ev):
            if ev.get("event") == "queued":
                box["queued_event"] = ev
                box["queued"].set()

        def run():
            try:
                box["events"], box["final"] = conn.read_reply(id, 120, on_event=on_event)
            except BaseException as e:
                box["exc"] = e
            box["done_at"] = time.monotonic()

        t = threading.Thread(target=run, daemon=True)
        t.start()
        return t, box

    def wait_running_version(self, version, timeout=15):
        def check():
            st = self.d.status()
            return st if st["state"] == "running" and (st.get("job") or {}).get("version") == version else None
        return harness.wait_until(check, timeout, what="job to run version %d" % version)

    def test_status_answered_while_slow_migration_runs(self):
        t, box = self.start_up({"to": 2})
        st = self.wait_running_version(2)
        job = st["job"]
        self.assertEqual(job["kind"], "up")
        self.assertEqual(job["name"], "slow_fill")
        self.assertEqual(job["total"], 2)
        self.assertEqual(job["index"], 2)
        self.assertIsInstance(job["id"], int)

        times = []
        with Conn(self.d.socket, 5) as c:
            for i in range(30):
                t0 = time.perf_counter()
                _, final = c.call("status", id=i, timeout=5)
                times.append(time.perf_counter() - t0)
                res = self.assertResult(final)
                self.assertEqual(res["state"], "running", "the slow migration ended during the measurement; "
                                 "raise MIGRATED_TEST_SLOW_N")
                self.assertEqual(res["job"]["version"], 2)
        # Fresh connections too, as a script would do.
        for i in range(5):
            t0 = time.perf_counter()
            _, final = self.d.rpc("status", timeout=5)
            times.append(time.perf_counter() - t0)
            self.assertEqual(final["result"]["state"], "running")
        self.assertNotIn("final", box, "the job finished during the measurement")
        # answered while the job runs (each reply says so); their speed is tests/bench's status row
        self.extra_logs.append(("status round trips (ms)", " ".join("%.2f" % (x * 1000) for x in times)))

        t.join(120)
        self.assertFalse(t.is_alive())
        self.assertNotIn("exc", box)
        res = self.assertResult(box["final"])
        self.assertEqual(res["status"], "applied")
        self.assertEqual([a["version"] for a in res["applied"]], [1, 2])
        phases = [(e.get("event"), e.get("phase"), e.get("version")) for e in box["events"]]
        self.assertIn(("migration", "applying", 2), phases)
        self.assertIn(("migration", "applied", 2), phases)
        self.assertIn("committed", [p[0] for p in phases])
        self.assertEqual(applied_versions(self.db), [1, 2])
        self.assertEqual(self.d.status()["state"], "idle")

    def test_other_requests_during_job_do_not_delay_status(self):
        t, box = self.start_up({"to": 2})
        self.wait_running_version(2)
        # Requests that read the database, sent and not awaited.
        others = []
        for i, (method, params) in enumerate((("history", {}), ("verify", {}), ("plan", {"direction": "up"}),
                                              ("history", {"limit": 1}))):
            c = Conn(self.d.socket, 120)
            self.addCleanup(c.close)
            c.send(method, params, id=i)
            others.append((method, c, i))
        times = []
        with Conn(self.d.socket, 5) as c:
            for i in range(10):
                t0 = time.perf_counter()
                _, final = c.call("status", id=i, timeout=5)
                times.append(time.perf_counter() - t0)
                self.assertEqual(final["result"]["state"], "running")
        self.extra_logs.append(("status round trips (ms)", " ".join("%.2f" % (x * 1000) for x in times)))
        for method, c, i in others:
            _, final = c.read_reply(i, 120)
            self.assertIn("result", final, (method, final))
        t.join(120)
        self.assertEqual(self.assertResult(box["final"])["status"], "applied")

    def test_identical_waiting_ups_coalesce(self):
        t, box = self.start_up({"to": 2})
        self.wait_running_version(2)
        waiting = [self.start_up({}, id=100 + i) for i in range(10)]
        for i, (_, b) in enumerate(waiting):  # each request has arrived once its queued event has
            self.assertTrue(b["queued"].wait(30), "no queued event for waiting up #%d" % i)
        st = self.d.status()
        self.assertEqual(st["state"], "running")
        self.assertEqual(st["queue_length"], 1, "ten identical waiting ups must be one job: %r" % st)

        t.join(120)
        for wt, _ in waiting:
            wt.join(60)
        self.assertEqual(self.assertResult(box["final"])["status"], "applied")
        results = [self.assertResult(b["final"]) for _, b in waiting]
        self.assertEqual({r["status"] for r in results}, {"applied"})
        self.assertEqual(len({r["job_id"] for r in results}), 1, results)
        self.assertNotEqual(results[0]["job_id"], box["final"]["result"]["job_id"])
        self.assertEqual([a["version"] for a in results[0]["applied"]], [3])
        queued_events = [e for _, b in waiting for e in b["events"] if e.get("event") == "queued"]
        self.assertEqual({e["job_id"] for e in queued_events} - {results[0]["job_id"]}, set())
        self.assertEqual(applied_versions(self.db), [1, 2, 3])
        ok = [a for a in harness.attempts(self.db) if a["status"] == "succeeded"]
        self.assertEqual(len(ok), 2, harness.attempts(self.db))

    def test_jobs_run_in_fifo_order(self):
        t, box = self.start_up({"to": 2})
        self.wait_running_version(2)
        conns = []
        order = []
        lock = threading.Lock()

        positions = []

        def send(method, params, id):
            """Sends, then returns once the daemon has queued the request (its queued event), so
            that the next request arrives after it."""
            c = Conn(self.d.socket, 120)
            self.addCleanup(c.close)
            c.send(method, params, id=id)
            conns.append(c)
            queued = threading.Event()

            def on_event(ev):
                if ev.get("event") == "queued":
                    positions.append(ev.get("position"))
                    queued.set()

            def run():
                _, final = c.read_reply(id, 120, on_event=on_event)
                with lock:
                    order.append((id, final))
            th = threading.Thread(target=run, daemon=True)
            th.start()
            self.assertTrue(queued.wait(30), "no queued event for request %d" % id)
            return th

        ths = [send("up", {"to": 3}, 1)]
        ths.append(send("down", {"steps": 1}, 2))
        ths.append(send("down", {"steps": 1}, 3))
        self.assertEqual(positions, [2, 3, 4], "queue positions (the running job is position 1)")
        t.join(120)
        for th in ths:
            th.join(60)
        self.assertEqual(len(order), 3, order)
        by_job = sorted(order, key=lambda o: o[1]["result"]["job_id"])
        self.assertEqual([i for i, _ in by_job], [1, 2, 3], "jobs must run in the order they arrived")
        self.assertEqual([f["result"]["to_version"] for _, f in by_job], [3, 2, 1])
        self.assertEqual(applied_versions(self.db), [1])


if __name__ == "__main__":
    harness.main()
