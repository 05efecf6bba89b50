#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""migrated's own history (migrated_attempts, migrated_meta) stays out of a Prisma database: it
lives in history.sqlite in the daemon's state directory, so that Prisma (db pull, migrate dev)
sees no table it does not know. An earlier migrated left those tables in the database: they are
moved on the first start, every row kept, crash-safe (copied and committed in the state
database before they are dropped from the application database). A restore never rewrites that
history, and a backup that still holds the old tables brings none of them back."""

import os
import shutil
import stat
import uuid

import harness
import test_prisma
from harness import db_connect
from test_prisma import FIXTURE_MIGRATIONS, FOLDERS, PRISMA_TABLE_SQL

LAYOUT = 2

OLD_TABLES = """
CREATE TABLE migrated_attempts (
        id INTEGER PRIMARY KEY, job_id INTEGER NOT NULL, direction TEXT NOT NULL, status TEXT NOT NULL,
        from_version INTEGER NOT NULL, to_version INTEGER NOT NULL, versions TEXT NOT NULL, error TEXT,
        error_file TEXT, error_line INTEGER, started_at TEXT NOT NULL, finished_at TEXT, requested_by TEXT,
        detail TEXT
);
CREATE TABLE migrated_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO migrated_meta VALUES ('schema_version', '2');
INSERT INTO migrated_attempts VALUES (3, 40, 'up', 'failed', 0, 1, '[1]', 'boom', NULL, NULL,
        '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:01.000Z', 'uid 0', NULL);
INSERT INTO migrated_attempts VALUES (4, 41, 'up', 'succeeded', 0, 1, '[1]', NULL, NULL, NULL,
        '2026-01-02T00:00:00.000Z', '2026-01-02T00:00:01.000Z', 'uid 0', NULL);
INSERT INTO migrated_attempts VALUES (5, 57, 'up', 'running', 1, 2, '[2]', NULL, NULL, NULL,
        '2026-01-03T00:00:00.000Z', NULL, 'uid 0', NULL);
"""


def our_tables(db):
    return [t for t in harness.tables(db) if t.startswith("migrated_")]


def rows(db):
    c = db_connect(db)
    try:
        return c.execute("SELECT id, job_id, direction, status FROM migrated_attempts ORDER BY id").fetchall()
    finally:
        c.close()


class PrismaHistoryTest(harness.TestCase):

    def setUp(self):
        super().setUp()
        self.mdir = self.path("prisma", "migrations")
        shutil.copytree(FIXTURE_MIGRATIONS, self.mdir)

    def prisma_db(self, applied, extra_sql=""):
        """A database as `prisma migrate deploy` leaves it after the first `applied` migrations."""
        db = self.path("db.sqlite")
        c = db_connect(db)
        try:
            c.execute("PRAGMA journal_mode = WAL")
            c.execute(PRISMA_TABLE_SQL)
            for i, f in enumerate(FOLDERS[:applied]):
                path = os.path.join(self.mdir, f, "migration.sql")
                with open(path, encoding="utf-8") as fh:
                    c.executescript(fh.read())
                t = test_prisma.BASE_MS + i * 86400000
                c.execute('INSERT INTO "_prisma_migrations" ("id", "checksum", "finished_at", "migration_name", '
                          '"started_at", "applied_steps_count") VALUES (?, ?, ?, ?, ?, 1)',
                          (str(uuid.uuid4()), harness.sha256_file(path), t + 10, f, t))
            c.executescript(extra_sql)
        finally:
            c.close()
        return db

    def history_db(self, d):
        return os.path.join(d.state_dir(), "history.sqlite")

    def test_attempts_live_in_the_state_directory(self):
        db = self.prisma_db(2)
        d = self.daemon(db, self.mdir)
        r = d.call("up", {})
        self.assertEqual(d.status()["current_version"], int(FOLDERS[-1].split("_")[0]), r)
        self.assertEqual(our_tables(db), [], "a Prisma database must hold no table of migrated's")
        hist = self.history_db(d)
        st = os.lstat(hist)
        self.assertTrue(stat.S_ISREG(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
        self.assertEqual([(x[2], x[3]) for x in rows(hist)], [("up", "succeeded")])
        top = d.call("history")["attempts"][0]
        self.assertEqual((top["direction"], top["status"], top["job_id"]), ("up", "succeeded", r["job_id"]), top)

    def test_old_tables_are_moved_on_first_start(self):
        db = self.prisma_db(2, OLD_TABLES)
        d = self.daemon(db, self.mdir)
        self.assertEqual(our_tables(db), [], "the old tables must be gone from the application database")
        self.assertEqual(rows(self.history_db(d)),
                         [(3, 40, "up", "failed"), (4, 41, "up", "succeeded"), (5, 57, "up", "interrupted")])
        hist = d.call("history")["attempts"]
        self.assertEqual([a["id"] for a in hist], [5, 4, 3], hist)
        r = d.call("up", {})
        self.assertGreater(r["job_id"], 57, "job ids continue after the moved history")
        self.assertEqual(our_tables(db), [])
        self.assertEqual(rows(self.history_db(d))[-1][1:], (r["job_id"], "up", "succeeded"))

    def test_move_interrupted_between_its_commits_loses_and_doubles_nothing(self):
        # A crash after the state database's commit and before the drop: both hold the rows.
        db = self.prisma_db(2, OLD_TABLES)
        d = self.daemon(db, self.mdir, start=False)
        os.makedirs(d.state_dir(), mode=0o700)
        hist = self.history_db(d)
        c = db_connect(hist)
        c.executescript(OLD_TABLES)
        c.close()
        os.chmod(hist, 0o600)
        d.start()
        self.assertEqual(our_tables(db), [])
        self.assertEqual(rows(hist), [(3, 40, "up", "failed"), (4, 41, "up", "succeeded"),
                                      (5, 57, "up", "interrupted")])

    def test_planted_history_file_is_refused(self):
        # Like every state file: a symlink (or a file writable by others) is never opened.
        db = self.prisma_db(2)
        d = self.daemon(db, self.mdir, start=False)
        os.makedirs(d.state_dir(), mode=0o700)
        target = self.path("elsewhere.sqlite")
        open(target, "w").close()
        os.symlink(target, self.history_db(d))
        d.start(wait=False)
        self.assertNotEqual(d.wait(), 0)
        self.assertIn("history.sqlite", d.log())
        self.assertEqual(os.path.getsize(target), 0, "nothing is written through the symlink")
        os.unlink(self.history_db(d))
        with open(self.history_db(d), "w"):
            pass
        os.chmod(self.history_db(d), 0o622)
        d.start(wait=False)
        self.assertNotEqual(d.wait(), 0)
        self.assertIn("history.sqlite", d.log())

    def test_restore_keeps_the_history_and_brings_back_no_table(self):
        # The backup is taken from a database that still holds the old tables (as one an earlier
        # migrated took would); the restore must neither bring them back nor rewrite the history.
        db = self.prisma_db(2, OLD_TABLES)
        bdir = self.path("backups")
        os.makedirs(bdir)
        d = self.daemon(db, self.mdir, extra_args=["--backup-dir", bdir])
        up = d.call("up", {})
        self.assertEqual(our_tables(db), [])
        before = rows(self.history_db(d))
        backup = up["backup"]["file"]
        c = db_connect(os.path.join(bdir, backup))
        c.executescript(OLD_TABLES.replace("(3, 40", "(9, 90"))
        c.close()
        _, final = d.rpc("restore", {"backup": backup})
        r = self.assertResult(final)
        self.assertEqual(r["status"], "restored", r)
        self.assertEqual(our_tables(db), [], "a restore must bring back no table of migrated's")
        after = rows(self.history_db(d))
        self.assertEqual(after[:len(before)], before, "a restore rewrites no attempt")
        self.assertEqual(after[-1][1:], (r["job_id"], "restore", "succeeded"))
        self.assertEqual(len(after), len(before) + 1)


if __name__ == "__main__":
    harness.main()
