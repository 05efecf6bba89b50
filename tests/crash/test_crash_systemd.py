# SPDX-License-Identifier: MIT
"""Crash test under a real systemd user manager: migrated-test.service coordinates two writer
units; up and down jobs are SIGKILLed at random points (inside the slow migration's transaction,
inside the backup, while units are stopped), systemd restarts migrated, which must start the units
again. Checks after each restart as in test_crash.py, plus: no unit left stopped; at the end, no
acknowledged row lost. Prints its counts and seed; fails on any loss. MIGRATED_CRASH_SD_JOBS sets
the number of jobs (default 80)."""

import os
import random
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.append(os.path.join(os.path.dirname(HERE), "systemd"))

import crashlib as C  # noqa: E402
import sdharness as S  # noqa: E402
from sdharness import H  # noqa: E402


class SystemdCrashTest(S.TestCase):

    def test_kills_with_writer_units_lose_nothing(self):
        seed = C.seed()
        print("CRASH systemd: seed %d" % seed, flush=True)
        rng = random.Random(seed)
        mig = C.migrations(self.path("migrations"))
        known = C.known_schemas(self.tmp, mig, S.ACKS_SQL)
        self.create_db()
        ws = [self.writer(t, start=False) for t in "ab"]
        # restarted at once, however often it is killed
        self.migrated(mig, units=[w.unit for w in ws], extra_args=["--keep", "3"],
                      service_extra="RestartSec=100ms\nStartLimitInterval=0\nStartLimitBurst=10000")
        for w in ws:
            w.start()
            w.wait_acks(3)
        killed = {}

        def kill():
            pid = S.main_pid(S.MIGRATED_UNIT)
            killed["pid"] = pid
            os.kill(pid, signal.SIGKILL)
            H.wait_until(lambda: S.main_pid(S.MIGRATED_UNIT) != pid, 20, interval=0.01, what="migrated gone")

        def restart():
            def back():
                d = S.show(S.MIGRATED_UNIT, "ActiveState", "MainPID")
                return d["ActiveState"] == "active" and int(d["MainPID"] or 0) not in (0, killed["pid"])
            H.wait_until(back, 30, interval=0.02, what="migrated restarted by systemd")
            self.wait_socket()

        def units_up(counts):
            for w in ws:
                try:
                    S.wait_state(w.unit, "active", S.UNIT_TIMEOUT)
                except H.HarnessError:
                    counts["units_left_down"] = counts.get("units_left_down", 0) + 1
                    sys.stderr.write("%s left down after a kill\n" % w.unit)
                    w.start()

        run = C.CrashRun(self, self.db, self.db + "-backups", self.sock, known, rng, kill, restart, ["up", "down"],
                         after_restart=units_up)
        run.counts["units_left_down"] = 0
        t0 = time.monotonic()
        counts = run.run(int(os.environ.get("MIGRATED_CRASH_SD_JOBS", "80")), 0.7)
        units_up(counts)
        acked = set()
        for w in ws:
            acked.update(w.acked_ids())
        c = H.db_connect(self.db)
        in_db = set(r[0] for r in c.execute("SELECT id FROM acks"))
        c.close()
        counts["rows_acknowledged"] = len(acked)
        counts["rows_lost"] = len(acked - in_db)
        C.report("systemd", seed, counts, time.monotonic() - t0)
        self.assertGreater(counts["kills"], 0, counts)
        self.assertGreater(counts["rows_acknowledged"], 0, counts)
        for k in C.LOSSES:
            self.assertEqual(counts.get(k, 0), 0, "%s (seed %d): %r" % (k, seed, counts))


if __name__ == "__main__":
    S.main()
