# SPDX-License-Identifier: MIT
"""Jobs interrupted while the dependent units are down: migrated SIGKILLed in the middle of a long
migration (systemd restarts it, it must start the units again from its state file), a SIGTERM
while the next start-up is still starting them, and a cancel from a second client."""

import json
import os
import signal
import time

import sdharness as S
from sdharness import H


def slow_migrations(directory):
    """v1 quick; v2 a data migration of several seconds (a recursive CTE inserting 1.5M rows)."""
    return H.write_migrations(directory, {
        1: ("base", "CREATE TABLE devices (id INTEGER PRIMARY KEY, serial TEXT);\n", "DROP TABLE devices;\n"),
        2: ("slow_fill", H.slow_sql("big"), "DROP TABLE big;\n"),
    })


class InterruptTest(S.TestCase):

    def setup_writers(self):
        mig = slow_migrations(self.path("migrations"))
        self.create_db()
        ws = [self.writer(t, start=False) for t in "ab"]
        self.migrated(mig, units=[w.unit for w in ws])
        self.assertCtl(self.ctl("up", "--to", "1"), 0)
        for w in ws:
            w.start()
            w.wait_acks(5)
        return ws

    def start_slow_job(self, ws):
        """Sends up and returns (conn, events) once the slow migration is running, with the units
        down and the state file naming them."""
        c = self.conn()
        c.send("up", {})
        events = S.read_until(c, S.is_applying(2), 60, "the slow migration's applying event")
        for w in ws:
            self.assertIn(w.state(), ("inactive", "failed"), "%s still up while migrating" % w.unit)
        self.assertTrue(os.path.exists(self.state_file), "no state file while the units are down")
        with open(self.state_file) as f:
            state = json.load(f)
        self.assertEqual(sorted(state.get("units", [])), sorted(w.unit for w in ws), state)
        st = self.call("status", timeout=5)  # the applying event: inside the SQL
        self.assertEqual(st.get("state"), "running", st)
        return c, events

    # 4 ------------------------------------------------------------------------------------------
    def test_sigkill_mid_migration_restarted_by_systemd_recovers_units(self):
        ws = self.setup_writers()
        pids = {w: w.pid() for w in ws}
        before = H.schema(self.db)
        mpid = S.main_pid(S.MIGRATED_UNIT)
        restarts = S.show_int(S.MIGRATED_UNIT, "NRestarts")

        c, _ = self.start_slow_job(ws)
        os.kill(mpid, signal.SIGKILL)
        while True:   # events already sent may come first; then EOF, never a final line
            msg = c.read_json(10)
            if msg is None:
                break
            self.assertNotIn("result", msg, "a result from a SIGKILLed daemon: %r" % msg)
            self.assertNotIn("error", msg, "an error from a SIGKILLed daemon: %r" % msg)

        # Restart=on-failure brings it back; Type=notify: active means it serves requests
        def back():
            d = S.show(S.MIGRATED_UNIT, "ActiveState", "MainPID", "NRestarts")
            return d if (d["ActiveState"] == "active" and int(d["MainPID"] or 0) not in (0, mpid)
                         and int(d["NRestarts"] or 0) > restarts) else None
        st = S.wait_until(back, 20, interval=0.05, what="migrated-test.service restarted by systemd")
        # recovery comes before serving: no state file once it is ready
        self.assertNoStateFile()
        self.wait_socket()
        hist = self.history()
        self.assertEqual(hist[0].get("status"), "interrupted", hist[:2])
        self.assertEqual(H.attempts(self.db)[-1]["status"], "interrupted")

        for w in ws:
            self.assertRestarted(w, pids[w])
            w.wait_acks(3)
        self.assertEqual(H.applied_versions(self.db), [1])
        self.assertEqual(H.schema(self.db), before)
        self.assertNotIn("big", H.tables(self.db))
        self.assertAllAckedInDb(ws)
        self.assertNoStateFile()
        self.assertGreater(int(st["MainPID"]), 0)

        # and it can do the job now
        r = self.ctl("up", timeout=90)
        self.assertCtl(r, 0)
        self.assertEqual(H.applied_versions(self.db), [1, 2])

    def test_sigterm_during_recovery_finishes_it_and_exits_cleanly(self):
        # The units a killed migrated left stopped take a while to start (their ExecStartPre
        # waits for a gate file); a SIGTERM meanwhile must neither kill the next migrated outright
        # nor leave them stopped: it finishes the recovery and exits 0 before listening.
        gate = self.path("gate")
        open(gate, "w").close()
        mig = slow_migrations(self.path("migrations"))
        self.create_db()
        w = self.writer("a", start=False,
                        extra_service="ExecStartPre=/bin/sh -c 'while [ ! -e %s ]; do sleep 0.05; done'" % gate)
        self.migrated(mig, units=[w.unit], service_extra="Restart=no")
        self.assertCtl(self.ctl("up", "--to", "1"), 0)
        w.start()
        w.wait_acks(3)
        c, _ = self.start_slow_job([w])
        os.kill(S.main_pid(S.MIGRATED_UNIT), signal.SIGKILL)
        S.wait_state(S.MIGRATED_UNIT, ("failed", "inactive"))
        c.close()
        os.unlink(gate)

        S.systemctl("start", "--no-block", S.MIGRATED_UNIT)
        S.wait_state(w.unit, "activating")  # the recovery's start job waits at the gate
        mpid = S.main_pid(S.MIGRATED_UNIT)
        self.assertGreater(mpid, 0)
        os.kill(mpid, signal.SIGTERM)
        S.wait_until(lambda: "during start-up" in self.read_migrated_log() or not os.path.exists("/proc/%d" % mpid),
                     20, what="migrated to take the SIGTERM")
        open(gate, "w").close()
        S.wait_state(S.MIGRATED_UNIT, ("failed", "inactive"))
        st = S.show(S.MIGRATED_UNIT, "ExecMainCode", "ExecMainStatus")
        self.assertEqual((st["ExecMainCode"], st["ExecMainStatus"]), ("1", "0"),
                         "migrated did not exit 0 (code 1 = exited, 2 = killed): %r\n%s" % (st, self.read_migrated_log()))
        self.assertIn("Stopped during start-up", self.read_migrated_log())
        S.wait_state(w.unit, "active")
        self.assertNoStateFile()

    # 8 ------------------------------------------------------------------------------------------
    def test_cancel_from_second_client_rolls_back_and_restarts_units(self):
        ws = self.setup_writers()
        pids = {w: w.pid() for w in ws}
        before = H.schema(self.db)

        c, _ = self.start_slow_job(ws)
        t0 = time.monotonic()
        r = self.ctl("cancel", json_out=False, timeout=30)
        self.assertCtl(r, 0)
        events, final = c.read_reply(timeout=60)
        latency = time.monotonic() - t0
        err = self.assertError(final, "cancelled")
        self.assertFalse([e for e in events if e.get("event") == "committed"], events)
        self.assertJobReport(err, [w.unit for w in ws])
        S.print_figure("CANCEL: up answered 'cancelled' %.2f s after migratectl cancel was started" % latency)

        for w in ws:
            self.assertRestarted(w, pids[w])
            w.wait_acks(3)
        self.assertEqual(H.applied_versions(self.db), [1])
        self.assertEqual(H.schema(self.db), before)
        self.assertNotIn("big", H.tables(self.db))
        self.assertEqual(self.history()[0].get("status"), "cancelled")
        self.assertEqual(H.attempts(self.db)[-1]["status"], "cancelled")
        self.assertAllAckedInDb(ws)
        self.assertNoStateFile()
        self.assertEqual(S.active_state(S.MIGRATED_UNIT), "active")

    def test_cancel_by_job_id_over_protocol(self):
        ws = self.setup_writers()
        pids = {w: w.pid() for w in ws}
        c, events = self.start_slow_job(ws)
        job_ids = {e.get("job_id") for e in events if e.get("event") in ("queued", "started")} - {None}
        self.assertEqual(len(job_ids), 1, events)
        job_id = job_ids.pop()
        _, final = self.rpc("cancel", {"job_id": job_id}, timeout=30)
        self.assertResult(final)
        _, final = c.read_reply(timeout=60)
        self.assertError(final, "cancelled")
        for w in ws:
            self.assertRestarted(w, pids[w])
        self.assertEqual(H.applied_versions(self.db), [1])
        self.assertEqual(H.attempts(self.db)[-1]["status"], "cancelled")
        self.assertNoStateFile()


if __name__ == "__main__":
    S.main()
