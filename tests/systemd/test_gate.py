# SPDX-License-Identifier: MIT
"""Services gated on the schema: `ExecStartPre=migratectl wait`. The gate must open when the job
commits, before the job starts the units again; otherwise job and unit wait on each other."""

import os
import platform

import sdharness as S
from sdharness import H

V1 = {1: ("create_devices", "CREATE TABLE devices (id INTEGER PRIMARY KEY, serial TEXT);\n", "DROP TABLE devices;\n")}
V2 = {2: ("add_settings", "CREATE TABLE settings (k TEXT PRIMARY KEY, v TEXT);\n", "DROP TABLE settings;\n")}


# nanosleep and clock_nanosleep, by machine: what /proc/PID/syscall shows while a process pauses
SLEEP_SYSCALLS = {"x86_64": (35, 230), "aarch64": (101, 115)}


def in_sleep_syscall(pid):
    """Whether pid is blocked in a sleep system call; True where the numbers are not known here
    (then the test only checks that wait does not give up)."""
    numbers = SLEEP_SYSCALLS.get(platform.machine())
    if numbers is None:
        return True
    try:
        with open("/proc/%d/syscall" % pid) as f:
            first = f.read().split()[0]
    except (OSError, IndexError):
        return False
    return first.isdigit() and int(first) in numbers


class GateTest(S.TestCase):

    def gated_writer(self, tag="gated", wait_timeout=60):
        pre = S.exec_line([H.MIGRATECTL_BIN, "--socket", self.sock, "wait", "--timeout", str(wait_timeout)])
        return self.writer(tag, start=False, extra_service="ExecStartPre=" + pre)

    # 5 ------------------------------------------------------------------------------------------
    def test_gated_unit_no_deadlock(self):
        mig = H.write_migrations(self.path("migrations"), V1)
        self.create_db()
        g = self.gated_writer()
        plain = self.writer("plain", start=False)
        self.migrated(mig, units=[g.unit, plain.unit])
        self.assertCtl(self.ctl("up"), 0)
        g.start()            # schema current: the gate opens at once
        plain.start()
        g.wait_acks(5)
        pids = {w: w.pid() for w in (g, plain)}

        # a new migration appears; migrated rescans on SIGHUP
        H.write_migrations(mig, V2)
        S.systemctl("kill", "--kill-whom=main", "--signal=SIGHUP", S.MIGRATED_UNIT)
        S.wait_until(lambda: [p["version"] for p in self.call("status", timeout=5)["pending"]] == [2], 10,
                     what="migration 2 pending after SIGHUP")

        r = self.ctl("up", timeout=30)      # far below the gate's 60 s: a deadlock fails here
        self.assertCtl(r, 0)
        self.assertEqual(H.applied_versions(self.db), [1, 2])
        for w in (g, plain):
            self.assertRestarted(w, pids[w])
        started = {o["unit"]: o for o in r.json["units"]["started"]}
        self.assertIs(started[g.unit]["ok"], True, started)
        # the gate really ran, and passed
        pre = S.show(g.unit, "ExecStartPre")["ExecStartPre"]
        self.assertIn("wait", pre)
        self.assertRegex(pre, r"code=exited ?; ?status=0\b|status=0/SUCCESS", pre)
        g.wait_acks(3)
        self.assertAllAckedInDb([g, plain])

    def test_failed_migration_gated_unit_runs_again_unless_strict(self):
        """Units are never left down: after a failed, rolled-back migration the daemon starts the
        units on the previous schema, and the default gate lets a gated unit through (saying why).
        A --strict gate keeps its unit out until the schema is really current."""
        bad = {2: ("broken", "CREATE TABLE ok_part (x);\nINSERT INTO no_such_table VALUES (1);\n", None)}
        mig = H.write_migrations(self.path("migrations"), V1)
        self.create_db()
        g = self.gated_writer("lenient", wait_timeout=30)
        pre = S.exec_line([H.MIGRATECTL_BIN, "--socket", self.sock, "wait", "--strict", "--timeout", "3"])
        strict = self.writer("strict", start=False, extra_service="ExecStartPre=" + pre)
        self.migrated(mig, units=[g.unit, strict.unit])
        self.assertCtl(self.ctl("up"), 0)
        g.start()            # current: the gate opens
        g.wait_acks(3)
        H.write_migrations(mig, bad)
        S.systemctl("kill", "--kill-whom=main", "--signal=SIGHUP", S.MIGRATED_UNIT)
        S.wait_until(lambda: [p["version"] for p in self.call("status", timeout=5)["pending"]] == [2], 10,
                     what="migration 2 pending after SIGHUP")
        p = S.systemctl("start", strict.unit, check=False, timeout=30)
        self.assertNotEqual(p.returncode, 0, "the strict gate let a unit start with a migration pending")
        pid = g.pid()

        r = self.ctl("up", timeout=60)
        self.assertCtl(r, 1)
        self.assertEqual(H.applied_versions(self.db), [1], "the failed migration must be rolled back")
        self.assertRestarted(g, pid)            # the lenient gate opened for the previous schema
        g.wait_acks(3)
        _, final = self.rpc("wait", {"timeout_ms": 1000}, timeout=10)
        res = self.assertResult(final)
        self.assertIs(res.get("schema_current"), False, res)
        self.assertIn("rolled back", res.get("reason", ""))
        _, final = self.rpc("wait", {"timeout_ms": 500, "strict": True}, timeout=10)
        self.assertError(final, "timeout")

    def test_gate_blocks_while_pending_and_times_out(self):
        mig = H.write_migrations(self.path("migrations"), {**V1, **V2})
        self.create_db()
        self.migrated(mig)
        self.assertCtl(self.ctl("up", "--to", "1"), 0)

        # migratectl wait: exit 7 with a message at its timeout
        r = self.ctl("wait", "--timeout", "2", json_out=False, timeout=20)
        self.assertCtl(r, 7)
        self.assertTrue((r.out + r.err).strip(), "exit 7 without a message")

        # the protocol: error code timeout
        _, final = self.rpc("wait", {"timeout_ms": 300}, timeout=10)
        self.assertError(final, "timeout")

        # a unit gated on it fails to start (its ExecStartPre times out)
        g = self.gated_writer(wait_timeout=1)
        p = S.systemctl("start", g.unit, check=False, timeout=30)
        self.assertNotEqual(p.returncode, 0)
        self.assertEqual(g.starts(), [], "the service ran although the gate was closed")

        # once current, wait answers at once
        self.assertCtl(self.ctl("up"), 0)
        _, final = self.rpc("wait", {"timeout_ms": 5000}, timeout=10)
        self.assertEqual(self.assertResult(final).get("current_version"), 2, final)
        self.assertCtl(self.ctl("wait", "--timeout", "5", json_out=False, timeout=20), 0)

    def test_wait_opens_when_a_running_job_commits(self):
        """wait sent during a job answers at the commit, not at the end of the job: the unit the
        job starts afterwards takes 2 s to start (ExecStartPre=sleep 2), and the job ends only once
        it is active, so an answer at the end would find the unit active."""
        slow = {2: ("slow_fill", H.slow_sql("big", 10000000), "DROP TABLE big;\n")}
        mig = H.write_migrations(self.path("migrations"), {**V1, **slow})
        self.create_db()
        w = self.writer("a", start=False, extra_service="ExecStartPre=/bin/sleep 2")
        self.migrated(mig, units=[w.unit])
        self.assertCtl(self.ctl("up", "--to", "1"), 0)
        w.start()
        job = self.conn()
        job.send("up", {})
        S.read_until(job, S.is_applying(2), 60, "applying 2")
        waiter = self.conn()
        waiter.send("wait", {"timeout_ms": 60000}, id=7)
        _, final = waiter.read_reply(id=7, timeout=60)
        state_at_answer = S.active_state(w.unit)
        self.assertEqual(self.assertResult(final).get("current_version"), 2, final)
        self.assertIn(state_at_answer, ("inactive", "activating"),
                      "wait answered once the unit was %s again: it must open at the commit" % state_at_answer)
        events, final = job.read_reply(timeout=60)
        self.assertResult(final)
        kinds = [(e["event"], e.get("phase") or e.get("action")) for e in events]
        self.assertLess(kinds.index(("committed", None)), kinds.index(("units", "starting")), events)
        self.assertEqual(w.state(), "active")

    def test_wait_retries_until_the_socket_appears(self):
        mig = H.write_migrations(self.path("migrations"), V1)
        self.create_db()
        self.migrated(mig, start=False)
        self.assertFalse(os.path.exists(self.sock))
        waiter = self.spawn([H.MIGRATECTL_BIN, "--socket", self.sock, "wait", "--timeout", "20"])
        # the event: migratectl pausing between two connect attempts (in clock_nanosleep)
        S.wait_until(lambda: waiter.poll() is not None or in_sleep_syscall(waiter.pid), 20,
                     what="migratectl wait to fail a connect and pause before retrying")
        self.assertIsNone(waiter.poll(), "wait gave up before the socket appeared")
        self.start_migrated()
        self.assertCtl(self.ctl("up"), 0)
        try:
            out, err = waiter.communicate(timeout=15)
        except Exception:
            self.fail("migratectl wait did not return once the schema was current")
        self.assertEqual(waiter.returncode, 0, (out, err))


if __name__ == "__main__":
    S.main()
