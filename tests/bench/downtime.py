#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Downtime window of one-migration jobs with two dependent writer units, under a real systemd user
manager (the harness of tests/systemd, which re-executes this file in its own PID and mount
namespace). Run by tests/bench/bench.py; writes its figures as JSON to $BENCH_DOWNTIME_OUT.

For each job: downtime_ms (first unit stopped → last unit active again) and timings
{stopping_ms, checks_ms, sql_ms, starting_ms} from migrated's result, the unit jobs' own durations,
and migrated's own share: downtime_ms − the slowest stop job − the slowest start job, i.e. what
migrated adds between the units going down and coming up (state file, holder check, SQL, bus
round trips)."""

import json
import os
import sys
import textwrap
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "systemd"))

import sdharness as S  # noqa: E402
from sdharness import H  # noqa: E402

JOBS = 5


class DowntimeBench(S.TestCase):

    def test_downtime(self):
        mig = {1: ("create_devices", textwrap.dedent("""\
                CREATE TABLE devices (id INTEGER PRIMARY KEY, serial TEXT NOT NULL, temp_f REAL);
                WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000)
                INSERT INTO devices SELECT x, printf('dev-%05d', x), 60 + x % 30 FROM c;
                """), "DROP TABLE devices;\n")}
        for v in range(2, JOBS + 2):   # one small schema change per job
            mig[v] = ("add_c%d" % v, "ALTER TABLE devices ADD COLUMN c%d INTEGER;\n"
                                     "CREATE INDEX devices_c%d ON devices (c%d);\n" % (v, v, v), None)
        d = H.write_migrations(self.path("migrations"), mig)
        self.create_db()
        ws = [self.writer(tag, start=False) for tag in "ab"]
        self.migrated(d, units=[w.unit for w in ws])
        self.assertCtl(self.ctl("up", "--to", "1"), 0)
        for w in ws:
            w.start()
        jobs = []
        for v in range(2, JOBS + 2):
            for w in ws:
                w.wait_acks(5)
            t0 = time.monotonic()
            res = self.call("up", {"to": v}, timeout=120)
            client_ms = (time.monotonic() - t0) * 1000
            self.assertEqual(res.get("to_version"), v, res)
            self.assertJobReport(res, [w.unit for w in ws])
            stop = max(o["duration_ms"] for o in res["units"]["stopped"])
            start = max(o["duration_ms"] for o in res["units"]["started"])
            jobs.append(dict(version=v, downtime_ms=res["downtime_ms"], timings=res["timings"],
                             units=res["units"], max_stop_ms=stop, max_start_ms=start,
                             own_ms=res["downtime_ms"] - stop - start, client_ms=client_ms))
            for w in ws:
                S.wait_state(w.unit, "active")
        self.assertAllAckedInDb(ws)
        with open(os.environ["BENCH_DOWNTIME_OUT"], "w") as f:
            json.dump(dict(jobs=jobs), f)
        S.print_figure("downtime: %s" % json.dumps([(j["downtime_ms"], j["own_ms"]) for j in jobs]))


if __name__ == "__main__":
    if not os.environ.get("BENCH_DOWNTIME_OUT"):
        sys.exit("set BENCH_DOWNTIME_OUT to the file for the results (run tests/bench/run.sh)")
    S.main()
