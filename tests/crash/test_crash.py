# SPDX-License-Identifier: MIT
"""Crash test, plain daemon: SIGKILL at random points of at least 100 jobs (up, down, restore,
backup) on a database large enough that kills land inside backups, with a migration slow enough
that kills land inside its transaction; after each kill the daemon is restarted and the database,
the listed backups and the history are checked (see crashlib.py). Prints its counts and seed;
fails on any loss. MIGRATED_CRASH_JOBS sets the number of jobs (default 100)."""

import os
import random
import time

import crashlib as C
from crashlib import H

FILLER_SQL = ("CREATE TABLE filler (x BLOB);\n"
              "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 24) "
              "INSERT INTO filler SELECT randomblob(1048576) FROM c;\n")


class CrashTest(H.TestCase):

    def test_kills_at_random_points_lose_nothing(self):
        seed = C.seed()
        print("CRASH plain: seed %d" % seed, flush=True)
        rng = random.Random(seed)
        db = self.path("db.sqlite")
        bdir = db + "-backups"
        mig = C.migrations(self.path("migrations"))
        known = C.known_schemas(self.tmp, mig, "CREATE TABLE filler (x BLOB);\n")
        H.create_wal_db(db, FILLER_SQL)
        d = self.daemon(db, mig, extra_args=["--keep", "3"])

        def kill():
            d.kill()

        def restart():
            d.start()

        run = C.CrashRun(self, db, bdir, d.socket, known, rng, kill, restart, ["up", "down", "restore", "backup"])
        t0 = time.monotonic()
        counts = run.run(int(os.environ.get("MIGRATED_CRASH_JOBS", "100")), 0.7)
        C.report("plain", seed, counts, time.monotonic() - t0)
        self.assertGreaterEqual(counts["jobs"], 100 if "MIGRATED_CRASH_JOBS" not in os.environ else 1)
        self.assertGreater(counts["kills"], 0, counts)
        for k in C.LOSSES:
            self.assertEqual(counts.get(k, 0), 0, "%s (seed %d): %r" % (k, seed, counts))


if __name__ == "__main__":
    H.main()
