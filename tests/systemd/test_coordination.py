# SPDX-License-Identifier: MIT
"""migrated coordinating real dependent units: stop, migrate, start again (README "Coordinating the
services"). The writers are real processes run by real units of a real systemd user manager; every
insert they acknowledge must survive."""

import json
import os
import statistics
import time

import sdharness as S
from sdharness import H


class CoordinationTest(S.TestCase):

    def two_writers_at_v1(self, migrations, modes=("write", "write"), **kw):
        """Database at version 1 (devices), migrated-test running with both writers as its units,
        both writers active and writing."""
        self.create_db()
        ws = [self.writer(tag, mode=m, start=False) for tag, m in zip("ab", modes)]
        self.migrated(migrations, units=[w.unit for w in ws], **kw)
        r = self.ctl("up", "--to", "1")
        self.assertCtl(r, 0)
        for w in ws:
            self.assertEqual(w.state(), "inactive", "a unit that was not running must stay stopped")
        for w in ws:
            w.start()
        for w in ws:
            w.wait_acks(10)
        return ws

    # 1 ------------------------------------------------------------------------------------------
    def test_writers_stopped_migrated_restarted_no_ack_lost(self):
        mig = S.devices_migrations(self.path("migrations"))
        a, b = self.two_writers_at_v1(mig)
        pids = {w: w.pid() for w in (a, b)}

        r = self.ctl("up")
        self.assertCtl(r, 0)
        res = r.json
        self.assertEqual((res.get("status"), res.get("from_version"), res.get("to_version")), ("applied", 1, 3), res)

        # both writers run again, as new processes, and write
        for w in (a, b):
            self.assertRestarted(w, pids[w])
            self.assertIn(("stop", pids[w]), [(k, v) for k, v, _ in w.records()],
                          "%s was not stopped cleanly (SIGTERM)" % w.unit)
        for w in (a, b):
            w.wait_acks(5)

        # the schema is at the target: devices rebuilt (1000 rows kept), settings added
        self.assertEqual(H.applied_versions(self.db), [1, 2, 3])
        self.assertEqual(S.columns(self.db, "devices"), ["id", "serial", "temp_c"])
        self.assertEqual(S.scalar(self.db, "SELECT count(*) FROM devices"), 1000)
        self.assertEqual(S.scalar(self.db, "SELECT v FROM settings WHERE k = 'units'"), "celsius")

        # every acknowledged insert, before and after, is in the database
        acked = self.assertAllAckedInDb([a, b])
        self.assertGreaterEqual(len(acked), 30)

        self.assertJobReport(res, [a.unit, b.unit])
        self.assertNoStateFile()

    # 2 ------------------------------------------------------------------------------------------
    def test_unit_ignoring_sigterm_is_killed_after_stop_timeout(self):
        mig = S.devices_migrations(self.path("migrations"))
        stubborn, polite = self.two_writers_at_v1(mig, modes=("ignore-term", "write"), stop_timeout=2)
        pids = {w: w.pid() for w in (stubborn, polite)}

        c = self.conn()
        c.send("up", {})
        events, final = c.read_reply(timeout=60)
        res = self.assertResult(final)
        self.assertEqual(res.get("to_version"), 3, res)
        self.assertEqual(H.applied_versions(self.db), [1, 2, 3])

        stopped = {o["unit"]: o for o in res["units"]["stopped"]}
        self.assertIs(stopped[stubborn.unit]["killed"], True, stopped)
        self.assertIs(stopped[stubborn.unit]["ok"], True, stopped)
        self.assertIs(stopped[polite.unit]["killed"], False, stopped)
        self.assertJobReport(res, [stubborn.unit, polite.unit], killed=(stubborn.unit,))

        ev = [e for e in events if e.get("event") == "unit" and e.get("action") == "stopped"]
        self.assertEqual({e["unit"]: e.get("killed") for e in ev}, {stubborn.unit: True, polite.unit: False}, events)

        # it really ignored SIGTERM (no clean stop logged), died of SIGKILL, and runs again
        self.assertNotIn("stop", [k for k, _, _ in stubborn.records()])
        with self.assertRaises(ProcessLookupError):
            os.kill(pids[stubborn], 0)
        for w in (stubborn, polite):
            self.assertRestarted(w, pids[w])
            w.wait_acks(3)
        self.assertAllAckedInDb([stubborn, polite])
        self.assertNoStateFile()

    # 9 ------------------------------------------------------------------------------------------
    def test_units_not_running_stay_stopped(self):
        mig = S.devices_migrations(self.path("migrations"))
        self.create_db()
        running = self.writer("run", start=False)
        idle = self.writer("idle", start=False)
        self.migrated(mig, units=[running.unit, idle.unit])
        self.assertCtl(self.ctl("up", "--to", "1"), 0)
        running.start()
        running.wait_acks(5)
        pid = running.pid()

        c = self.conn()
        c.send("up", {})
        events, final = c.read_reply(timeout=60)
        res = self.assertResult(final)
        self.assertEqual(H.applied_versions(self.db), [1, 2, 3])

        self.assertRestarted(running, pid)
        self.assertEqual(idle.state(), "inactive")
        self.assertEqual(idle.starts(), [], "a unit that was not running was started")
        self.assertJobReport(res, [running.unit])
        phases = [(e.get("phase"), e.get("units")) for e in events if e.get("event") == "units"]
        self.assertEqual(phases, [("stopping", [running.unit]), ("starting", [running.unit])], events)
        self.assertNoStateFile()

    def test_failed_unit_stays_failed_three_units(self):
        """Three dependent units: one running, one inactive, one failed (it exits 1 at start).
        Only the running one is stopped and started again."""
        mig = S.devices_migrations(self.path("migrations"))
        self.create_db()
        running = self.writer("run", start=False)
        idle = self.writer("idle", start=False)
        broken = self.writer("broken", mode="fail", start=False)
        self.migrated(mig, units=[running.unit, idle.unit, broken.unit])
        self.assertCtl(self.ctl("up", "--to", "1"), 0)
        running.start()
        running.wait_acks(5)
        S.systemctl("start", broken.unit, check=False, timeout=30)
        self.assertEqual(broken.state(), "failed")
        pid = running.pid()

        r = self.ctl("up")
        self.assertCtl(r, 0)
        self.assertEqual(H.applied_versions(self.db), [1, 2, 3])
        self.assertRestarted(running, pid)
        self.assertEqual(idle.state(), "inactive")
        self.assertEqual(idle.starts(), [], "a unit that was not running was started")
        self.assertEqual(broken.state(), "failed")
        self.assertEqual(len(broken.starts()), 1, "a failed unit was started again")
        self.assertJobReport(r.json, [running.unit])
        self.assertNoStateFile()

    def test_nothing_to_apply_leaves_units_alone(self):
        mig = S.devices_migrations(self.path("migrations"))
        a, b = self.two_writers_at_v1(mig)
        self.assertCtl(self.ctl("up"), 0)
        pids = {w: w.pid() for w in (a, b)}
        starts = {w: len(w.starts()) for w in (a, b)}

        c = self.conn()
        c.send("up", {})
        events, final = c.read_reply(timeout=30)
        res = self.assertResult(final)
        self.assertEqual(res.get("status"), "current", res)
        self.assertEqual([e for e in events if e.get("event") in ("units", "unit")], [], events)
        stopped = (res.get("units") or {}).get("stopped") or []
        self.assertEqual(stopped, [], res)
        for w in (a, b):
            self.assertEqual((w.state(), w.pid(), len(w.starts())), ("active", pids[w], starts[w]),
                             "%s was touched by a job with nothing to apply" % w.unit)
        self.assertNoStateFile()

    def test_units_from_config_file(self):
        """[units] in the config file instead of flags: same coordination."""
        mig = S.devices_migrations(self.path("migrations"))
        self.create_db()
        a = self.writer("a", start=False)
        conf = self.path("migrated.conf")
        with open(conf, "w") as f:
            f.write("[database]\npath = %s\n\n[migrations]\ndirectory = %s\n\n[daemon]\nsocket = %s\n\n"
                    "[units]\nunits = %s\nmanager = user\nstop_timeout = 5\nstart_timeout = 30\nholder_timeout = 3\n"
                    % (self.db, mig, self.sock, a.unit))
        argv = [H.MIGRATED_BIN, "--config", conf]
        self.write_unit(S.MIGRATED_UNIT, self.migrated_unit_text(argv))
        self.start_migrated()
        self.assertCtl(self.ctl("up", "--to", "1"), 0)
        a.start()
        a.wait_acks(5)
        pid = a.pid()
        r = self.ctl("up")
        self.assertCtl(r, 0)
        self.assertRestarted(a, pid)
        self.assertJobReport(r.json, [a.unit])
        self.assertEqual(H.applied_versions(self.db), [1, 2, 3])

    # the event stream of a job with units ---------------------------------------------------------
    def test_unit_events_on_requesting_connection(self):
        mig = S.devices_migrations(self.path("migrations"))
        a, b = self.two_writers_at_v1(mig)
        c = self.conn()
        c.send("up", {"to": 2})
        events, final = c.read_reply(timeout=60)
        res = self.assertResult(final)
        names = sorted([a.unit, b.unit])
        kinds = [(e["event"], e.get("phase") or e.get("action")) for e in events if e["event"] in ("units", "unit")]
        self.assertEqual(kinds, [("units", "stopping"), ("unit", "stopped"), ("unit", "stopped"),
                                 ("units", "starting"), ("unit", "started"), ("unit", "started")], events)
        unit_events = [e for e in events if e["event"] in ("units", "unit")]
        self.assertEqual(sorted(unit_events[0]["units"]), names)
        self.assertEqual(sorted(unit_events[3]["units"]), names)
        for e in unit_events[1:3] + unit_events[4:6]:
            self.assertIn(e["unit"], names, e)
            self.assertEqual(e.get("outcome"), "done", e)
            self.assertIs(e.get("ok"), True, e)
        # each unit event is the result's outcome for that unit, field for field
        for e, key in [(e, "stopped") for e in unit_events[1:3]] + [(e, "started") for e in unit_events[4:6]]:
            outcome = {o["unit"]: o for o in res["units"][key]}[e["unit"]]
            self.assertEqual({k: e[k] for k in outcome}, outcome, (e, res["units"]))
        for e in unit_events[1:3]:
            self.assertIs(e.get("killed"), False, e)
        # stopping precedes the SQL, the commit precedes the starting
        order = [(e["event"], e.get("phase") or e.get("action")) for e in events]
        self.assertLess(order.index(("units", "stopping")), order.index(("migration", "applying")), order)
        self.assertLess(order.index(("committed", None)), order.index(("units", "starting")), order)

    # downtime figure (printed, not asserted) ------------------------------------------------------
    def test_downtime_window(self):
        """One-migration jobs (up 1→2, down 2→1), three of each, with two writer units; prints the
        window seen by systemd and by the writers, split into parts."""
        mig = H.write_migrations(self.path("migrations"), {
            1: ("base", "CREATE TABLE t1 (id INTEGER PRIMARY KEY);\n", "DROP TABLE t1;\n"),
            2: ("add_t2", "CREATE TABLE t2 (id INTEGER PRIMARY KEY, v TEXT);\n", "DROP TABLE t2;\n"),
        })
        a, b = self.two_writers_at_v1(mig)
        rows = []
        for i in range(6):
            method, params = ("up", {}) if i % 2 == 0 else ("down", {"steps": 1})
            for w in (a, b):
                w.wait_acks(5)
            t0 = time.monotonic()
            c = H.Conn(self.sock, 60)
            try:
                c.send(method, params)
                events, final = c.read_reply(timeout=60)
            finally:
                c.close()
            client_ms = (time.monotonic() - t0) * 1000
            self.assertIn("result", final, "%s failed: %r" % (method, final))
            for w in (a, b):
                S.wait_state(w.unit, "active")
                w.wait_acks(1)
            rows.append(self.downtime_row(method, final["result"], client_ms, (a, b), t0))

        def med(key):
            vals = [r[key] for r in rows if r.get(key) is not None]
            return statistics.median(vals) if vals else float("nan")

        for r in rows:
            S.print_figure("DOWNTIME: run " + json.dumps(r, sort_keys=True))
        S.print_figure(
            "DOWNTIME: median of %d one-migration jobs, 2 writer units (Type=notify): "
            "units down (first writer gets SIGTERM -> last unit active again, systemd) %.0f ms = "
            "stop phase %.0f ms + all units down %.0f ms + start phase %.0f ms; "
            "of the all-down gap: SQL %.0f ms (sql_ms), holder checks %.0f ms (checks_ms), "
            "migrated's own share %.0f ms (gap - sql_ms - checks_ms: state file, bus round trips, backup, "
            "integrity, bookkeeping); "
            "daemon report: downtime_ms %.0f, stopping_ms %.0f, checks_ms %.0f, sql_ms %.0f, starting_ms %.0f, "
            "unaccounted %.0f ms (downtime_ms - sum of timings); "
            "writers' own gap (last ack before -> first ack after) %.0f ms; client round trip %.0f ms"
            % (len(rows), med("units_window_ms"), med("units_stop_ms"), med("all_down_ms"), med("units_start_ms"),
               med("sql_ms"), med("checks_ms"), med("own_share_ms"),
               med("downtime_ms"), med("stopping_ms"), med("checks_ms"), med("sql_ms"), med("starting_ms"),
               med("unaccounted_ms"), med("writer_gap_ms"), med("client_ms")))
        for r in rows:
            self.assertIsNotNone(r.get("downtime_ms"), "no downtime_ms in the result: %r" % r)

    def downtime_row(self, method, res, client_ms, writers, t0):
        """One job's figures. The stop side comes from the writers' logs (systemd resets a unit's
        exit timestamps when it starts again): when SIGTERM arrived, when the process exited. The
        start side from systemd: InactiveExitTimestampMonotonic (start job began) and
        ActiveEnterTimestampMonotonic (READY=1 received). All CLOCK_MONOTONIC, in ms."""
        t = res.get("timings") or {}
        row = {"job": method, "client_ms": round(client_ms, 1), "downtime_ms": res.get("downtime_ms")}
        for k in ("stopping_ms", "checks_ms", "sql_ms", "starting_ms"):
            row[k] = t.get(k)
        since = t0 * 1000.0
        terms, exits, begins, actives, gaps = [], [], [], [], []
        for w in writers:
            recs = [(k, v, tt * 1000.0) for k, v, tt in w.records()]
            term = [tt for k, _, tt in recs if k == "term" and tt >= since]
            stop = [tt for k, _, tt in recs if k == "stop" and tt >= since]
            if not term or not stop:
                return row
            terms.append(min(term))
            exits.append(min(stop))
            begins.append(S.unit_ms(w.unit, "InactiveExitTimestampMonotonic"))
            actives.append(S.unit_ms(w.unit, "ActiveEnterTimestampMonotonic"))
            before = [tt for k, _, tt in recs if k == "ack" and tt < min(term)]
            after = [tt for k, _, tt in recs if k == "ack" and tt > min(stop)]
            if before and after:
                gaps.append(min(after) - max(before))
        row["units_window_ms"] = round(max(actives) - min(terms), 1)
        row["units_stop_ms"] = round(max(exits) - min(terms), 1)
        row["all_down_ms"] = round(min(begins) - max(exits), 1)
        row["units_start_ms"] = round(max(actives) - min(begins), 1)
        if row["sql_ms"] is not None and row["checks_ms"] is not None:
            row["own_share_ms"] = round(row["all_down_ms"] - row["sql_ms"] - row["checks_ms"], 1)
        if None not in (row["downtime_ms"], row["stopping_ms"], row["checks_ms"], row["sql_ms"], row["starting_ms"]):
            row["unaccounted_ms"] = row["downtime_ms"] - (row["stopping_ms"] + row["checks_ms"] + row["sql_ms"] +
                                                         row["starting_ms"])
        row["writer_gap_ms"] = round(max(gaps), 1) if gaps else None
        return row

if __name__ == "__main__":
    S.main()
