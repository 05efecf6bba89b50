#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""migrated's own tables are versioned (migrated_meta.schema_version) and upgraded in place by
the daemon: a database whose tables an earlier migrated made (the layout before migrated_meta,
with CHECK constraints that would refuse every new kind of attempt) is upgraded when the daemon
starts, keeps every row and id, and goes on recording after them. A restore carries the history
at the current layout, whatever layout the backup had."""

import sqlite3
import unittest

import harness
from harness import applied_versions

TWO = {
    1: ("one", "CREATE TABLE one (id INTEGER PRIMARY KEY);\n", "DROP TABLE one;\n"),
    2: ("two", "CREATE TABLE two (id INTEGER PRIMARY KEY);\n", "DROP TABLE two;\n"),
}

CURRENT_LAYOUT = 2

# The tables exactly as migrated created them before its tables were versioned.
OLD_LAYOUT = """
CREATE TABLE migrated_schema (
        version INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        checksum TEXT NOT NULL,
        applied_at TEXT NOT NULL,
        duration_ms INTEGER NOT NULL
);
CREATE TABLE migrated_attempts (
        id INTEGER PRIMARY KEY,
        job_id INTEGER NOT NULL,
        direction TEXT NOT NULL CHECK (direction IN ('up', 'down', 'restore', 'mark', 'baseline')),
        status TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'interrupted', 'cancelled')),
        from_version INTEGER NOT NULL,
        to_version INTEGER NOT NULL,
        versions TEXT NOT NULL,
        error TEXT,
        error_file TEXT,
        error_line INTEGER,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        requested_by TEXT,
        detail TEXT
);
"""


def make_old_database(path, mig):
    """Version 1 applied by an earlier migrated: its rows in both of its tables."""
    checksum = harness.sha256_file("%s/0001_one.up.sql" % mig)
    c = sqlite3.connect(path, isolation_level=None)
    c.execute("PRAGMA journal_mode=WAL")
    c.executescript(OLD_LAYOUT)
    c.execute("CREATE TABLE one (id INTEGER PRIMARY KEY)")
    c.execute("INSERT INTO migrated_schema VALUES (1, 'one', ?, '2026-01-02T03:04:05.678Z', 12)", (checksum,))
    c.execute("INSERT INTO migrated_attempts (id, job_id, direction, status, from_version, to_version, versions, "
              "error, started_at, finished_at, requested_by) VALUES (7, 40, 'up', 'failed', 0, 1, '[1]', 'boom', "
              "'2026-01-01T00:00:00.000Z', '2026-01-01T00:00:01.000Z', 'uid 0')")
    c.execute("INSERT INTO migrated_attempts (id, job_id, direction, status, from_version, to_version, versions, "
              "started_at, finished_at, requested_by) VALUES (8, 41, 'up', 'succeeded', 0, 1, '[1]', "
              "'2026-01-02T03:04:05.000Z', '2026-01-02T03:04:05.678Z', 'uid 0')")
    c.close()


def layout(path):
    c = sqlite3.connect(path)
    try:
        have = c.execute("SELECT 1 FROM sqlite_master WHERE name = 'migrated_meta'").fetchone()
        v = c.execute("SELECT value FROM migrated_meta WHERE key = 'schema_version'").fetchone() if have else None
        sql = c.execute("SELECT sql FROM sqlite_master WHERE name = 'migrated_attempts'").fetchone()
        return (int(v[0]) if v else None), (sql[0] if sql else None)
    finally:
        c.close()


def attempts(path):
    c = sqlite3.connect(path)
    try:
        return c.execute("SELECT id, job_id, direction, status, error FROM migrated_attempts ORDER BY id").fetchall()
    finally:
        c.close()


class OwnTablesTest(harness.TestCase):

    def test_old_layout_is_upgraded_in_place_and_keeps_its_rows(self):
        mig = harness.write_migrations(self.path("migrations"), TWO)
        db = self.path("db.sqlite")
        make_old_database(db, mig)
        before = attempts(db)
        d = self.daemon(db, mig)
        # upgraded at start-up, before any job
        self.assertEqual(d.status()["current_version"], 1)
        version, sql = layout(db)
        self.assertEqual(version, CURRENT_LAYOUT)
        self.assertNotIn("CHECK", sql)
        self.assertEqual(attempts(db), before)
        hist = d.call("history")["attempts"]
        self.assertEqual([(a["id"], a["job_id"], a["status"]) for a in hist], [(8, 41, "succeeded"), (7, 40, "failed")])
        # and it goes on: a new attempt after the old ones, job ids never reused
        r = d.ctl("up")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(applied_versions(db), [1, 2])
        rows = attempts(db)
        self.assertEqual(rows[:2], before)
        self.assertEqual(len(rows), 3)
        self.assertGreater(rows[2][0], 8)
        self.assertGreater(rows[2][1], 41)
        self.assertEqual(rows[2][3], "succeeded")
        # the layout no longer refuses a kind of attempt it does not know yet
        c = sqlite3.connect(db, isolation_level=None)
        c.execute("INSERT INTO migrated_attempts (job_id, direction, status, from_version, to_version, versions, "
                  "started_at) VALUES (99, 'a-future-kind', 'succeeded', 2, 2, '[]', 'now')")
        c.close()

    def test_a_new_database_gets_the_current_layout(self):
        mig = harness.write_migrations(self.path("migrations"), TWO)
        db = self.path("db.sqlite")
        d = self.daemon(db, mig)
        self.assertEqual(layout(db), (None, None))  # nothing of ours before the first job
        self.assertEqual(d.ctl("up").rc, 0)
        version, sql = layout(db)
        self.assertEqual(version, CURRENT_LAYOUT)
        self.assertNotIn("CHECK", sql)
        # a restart finds it current and leaves it be
        self.assertEqual(d.stop(), 0)
        self.daemon(db, mig).status()
        self.assertEqual(layout(db)[0], CURRENT_LAYOUT)

    def test_restore_carries_the_history_at_the_current_layout(self):
        mig = harness.write_migrations(self.path("migrations"), TWO)
        db = self.path("db.sqlite")
        d = self.daemon(db, mig)
        self.assertEqual(d.ctl("up", "--to", "1").rc, 0)
        self.assertEqual(d.ctl("up").rc, 0)
        r = d.ctl("restore")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(applied_versions(db), [1])
        version, sql = layout(db)
        self.assertEqual(version, CURRENT_LAYOUT)
        self.assertEqual([a[2] for a in attempts(db)], ["up", "up", "restore"])


if __name__ == "__main__":
    harness.main()
