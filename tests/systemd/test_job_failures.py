# SPDX-License-Identifier: MIT
"""Jobs that fail while the dependent units are down: a failing migration, a process that is not a
unit and keeps the database open. Either way the schema stays where it was and the units run
again."""

import re
import textwrap
import time

import sdharness as S
from sdharness import H
from test_metrics import parse_exposition, value  # tests/integration, on the path through sdharness

# Fails on line 6 (no such column), after a statement that worked.
BROKEN_0003 = textwrap.dedent("""\
    -- 0003: adds a table, then copies from a column that does not exist.
    CREATE TABLE audit (
            id INTEGER PRIMARY KEY,
            serial TEXT
    );
    INSERT INTO audit (serial) SELECT no_such_column FROM devices;
    """)
BROKEN_FILE = "0003_broken_audit.up.sql"
BROKEN_LINE = 6

# A plain process (not a unit) that keeps the database, -wal and -shm open, reading only.
STRAY_SCRIPT = r'''
import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], timeout=10, isolation_level=None)
c.execute("SELECT count(*) FROM acks").fetchone()
print("holding", flush=True)
time.sleep(3600)
'''


class FailuresTest(S.TestCase):

    def setup_writers(self, migrations, **kw):
        self.create_db()
        ws = [self.writer(t, start=False) for t in "ab"]
        self.migrated(migrations, units=[w.unit for w in ws], **kw)
        self.assertCtl(self.ctl("up", "--to", "1"), 0)
        for w in ws:
            w.start()
            w.wait_acks(5)
        return ws

    # 3 ------------------------------------------------------------------------------------------
    def test_failing_migration_restarts_units_schema_unchanged(self):
        # devices_migrations' own v3 is replaced by the broken one
        mig = S.devices_migrations(self.path("migrations"),
                                   extra={3: ("broken_audit", BROKEN_0003, "DROP TABLE audit;\n")})
        ws = self.setup_writers(mig)
        before = H.schema(self.db)

        # migratectl, human output: exit 1, names the file and the line
        pids = {w: w.pid() for w in ws}
        r = self.ctl("up", json_out=False)
        self.assertCtl(r, 1)
        text = r.out + r.err
        self.assertIn(BROKEN_FILE, text, "the message must name the failing file")
        self.assertTrue(re.search(r"\bline %d\b|:%d\b" % (BROKEN_LINE, BROKEN_LINE), text),
                        "the message must name line %d: %r" % (BROKEN_LINE, text))
        self.assertIn("no_such_column", text)
        for w in ws:
            self.assertRestarted(w, pids[w])
        self.assertEqual(H.applied_versions(self.db), [1])
        self.assertEqual(H.schema(self.db), before)
        self.assertEqual(S.columns(self.db, "devices"), ["id", "serial", "temp_f"])
        self.assertNoStateFile()

        # over the protocol: migration_failed with file and line, and the units report
        pids = {w: w.pid() for w in ws}
        for w in ws:
            w.wait_acks(3)
        _, final = self.rpc("up", {})
        err = self.assertError(final, "migration_failed")
        self.assertFileIs(err.get("file"), BROKEN_FILE)
        self.assertEqual(err.get("line"), BROKEN_LINE, err)
        self.assertIn(BROKEN_FILE, err["message"])
        self.assertJobReport(err, [w.unit for w in ws])
        for w in ws:
            self.assertRestarted(w, pids[w])
            w.wait_acks(3)
        self.assertEqual(H.applied_versions(self.db), [1])
        self.assertEqual(H.schema(self.db), before)
        self.assertAllAckedInDb(ws)
        last = H.attempts(self.db)[-1]
        self.assertEqual((last["status"], last["error_line"]), ("failed", BROKEN_LINE), last)
        self.assertNoStateFile()

    # 6 ------------------------------------------------------------------------------------------
    def test_stray_holder_fails_database_in_use_before_any_change(self):
        mig = S.devices_migrations(self.path("migrations"))
        prom = self.path("migrated.prom")
        ws = self.setup_writers(mig, holder_timeout=2, extra_args=["--metrics-textfile", prom])
        stray = self.helper(STRAY_SCRIPT, [self.db], "stray")
        stray.expect_line("holding")
        before = H.schema(self.db)
        attempts_before = H.attempts(self.db)
        pids = {w: w.pid() for w in ws}

        r = self.ctl("up")
        self.assertCtl(r, 6)
        err = r.json.get("error")
        self.assertIsInstance(err, dict, r)
        self.assertEqual(err.get("code"), "database_in_use", err)
        self.assertRegex(err.get("message", ""), r"\b%d\b" % stray.proc.pid, "the message must name the pid")
        holders = err.get("holders")
        self.assertIsInstance(holders, list, err)
        self.assertEqual([h.get("pid") for h in holders], [stray.proc.pid],
                         "exactly the stray process holds the database once the units are stopped: %r" % holders)
        h = holders[0]
        for key in ("pid", "command", "cmdline", "unit", "files", "writable"):
            self.assertIn(key, h, h)
        self.assertIn("python", (h["command"] or "") + (h["cmdline"] or ""), h)
        self.assertNotIn(h["unit"], [w.unit for w in ws], h)
        self.assertTrue(h["files"], h)
        self.assertIn(h["command"], err["message"], "the message must name the command")
        self.assertJobReport(err, [w.unit for w in ws])

        # before any change: schema, history of applied versions; the units run again
        self.assertEqual(H.applied_versions(self.db), [1])
        self.assertEqual(H.schema(self.db), before)
        for w in ws:
            self.assertRestarted(w, pids[w])
            w.wait_acks(3)
        self.assertAllAckedInDb(ws)
        self.assertNoStateFile()
        self.assertEqual([a for a in H.attempts(self.db) if a["status"] == "succeeded"],
                         [a for a in attempts_before if a["status"] == "succeeded"])

        # without the stray process the same job goes through
        stray.kill()
        r = self.ctl("up")
        self.assertCtl(r, 0)
        self.assertEqual(H.applied_versions(self.db), [1, 2, 3])

        # the metrics: one job waited for the stray holder and failed on it, the dependents were
        # stopped by each of the three jobs, and the last one succeeded
        with open(prom) as f:
            m = parse_exposition(f.read())
        self.assertEqual(value(m, "migrated_lock_waits_total"), 1)
        self.assertGreater(value(m, "migrated_lock_wait_seconds_total"), 0)
        self.assertEqual(value(m, "migrated_job_failures_total", code="database_in_use"), 1)
        self.assertEqual(value(m, "migrated_jobs_total", kind="up", outcome="succeeded"), 2)
        self.assertEqual(value(m, "migrated_jobs_total", kind="up", outcome="failed"), 1)
        self.assertGreater(value(m, "migrated_downtime_seconds_total"), 0)
        self.assertGreater(value(m, "migrated_last_job_downtime_seconds", kind="up"), 0)
        self.assertEqual(value(m, "migrated_last_job_success", kind="up"), 1)
        self.assertEqual(value(m, "migrated_schema_version"), 3)


if __name__ == "__main__":
    S.main()
