# SPDX-License-Identifier: MIT
"""The backup of a large SQLite database is a copy of the file itself, taken while the daemon's
read transaction pins it, and checked before it is listed; whenever the file cannot be shown to
hold exactly that snapshot (a reader of an older state keeps commits in the -wal), the backup
copies the pages instead. Either way the backup is the database as it was committed: every row,
including the commits still in the -wal, in rollback-journal mode, passing its integrity check."""

import os
import sqlite3

import harness
from harness import db_connect
from test_backups import header_journal_bytes, integrity, logical_size, ro_connect, wal_size

COPIED = "copied the database file"
FILLER_MIB = 12   # above the size from which the file is copied (8 MiB)


def rows(path, readonly=False):
    c = ro_connect(path) if readonly else db_connect(path)
    try:
        return (c.execute("SELECT count(*), sum(length(x)) FROM filler").fetchone(),
                c.execute("SELECT tag FROM marker ORDER BY rowid").fetchall())
    finally:
        c.close()


class BackupFileCopyTest(harness.TestCase):

    def setUp(self):
        super().setUp()
        self.db = self.path("db.sqlite")
        self.mig = harness.write_migrations(self.path("migrations"), {
            1: ("tables", "CREATE TABLE marker (tag TEXT NOT NULL);\nCREATE TABLE filler (x BLOB);\n",
                "DROP TABLE filler;\nDROP TABLE marker;\n"),
        })
        self.d = self.daemon(self.db, self.mig)
        self.assertCtl(self.d.ctl("up"), 0)
        c = db_connect(self.db)
        c.execute("PRAGMA wal_autocheckpoint = 0")   # the last commits stay in the -wal
        c.executescript("BEGIN; WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < %d) "
                        "INSERT INTO filler SELECT randomblob(1048576) FROM n; COMMIT;" % FILLER_MIB)
        c.execute("INSERT INTO marker VALUES ('in the wal')")
        c.close()

    def check_backup(self, info, expected):
        path = info["path"]
        self.assertEqual(integrity(path), ["ok"])
        self.assertEqual(header_journal_bytes(path), (1, 1))
        self.assertEqual(os.path.getsize(path), logical_size(path))
        self.assertEqual(rows(path, readonly=True), expected)

    def test_large_database_is_copied_as_a_file_with_the_wal_commits(self):
        self.assertGreater(wal_size(self.db), 0)
        expected = rows(self.db)
        log0 = len(self.d.log())
        info = self.d.call("backup")["backup"]
        self.assertIn(COPIED, self.d.log()[log0:])
        self.check_backup(info, expected)
        # and a migration's own backup the same way, the job going on as before
        mig2 = os.path.join(self.mig, "0002_more.up.sql")
        with open(mig2, "w") as f:
            f.write("INSERT INTO marker VALUES ('migrated');\n")
        log0 = len(self.d.log())
        res = self.d.call("up")
        self.assertIn(COPIED, self.d.log()[log0:])
        self.check_backup(res["backup"], expected)
        self.assertEqual(rows(self.db)[1], [("in the wal",), ("migrated",)])

    def test_reader_of_an_older_state_makes_it_copy_the_pages(self):
        reader = sqlite3.connect(self.db, isolation_level=None)
        try:
            reader.execute("BEGIN")
            reader.execute("SELECT count(*) FROM marker").fetchone()   # pins the state before the next commit
            c = db_connect(self.db)
            c.execute("INSERT INTO marker VALUES ('after the reader')")
            c.close()
            expected = rows(self.db)
            log0 = len(self.d.log())
            info = self.d.call("backup")["backup"]
            self.assertNotIn(COPIED, self.d.log()[log0:])
            self.check_backup(info, expected)
            self.assertEqual(expected[1], [("in the wal",), ("after the reader",)])
        finally:
            reader.close()


class SmallBackupTest(harness.TestCase):
    """Below 8 MiB the pages are gathered in memory and written at once: the same backup, whatever
    the page size, with the commits still in the -wal."""

    def check_page_size(self, page_size):
        db = self.path("db-%d.sqlite" % page_size)
        c = sqlite3.connect(db, isolation_level=None)
        c.execute("PRAGMA page_size = %d" % page_size)
        c.execute("PRAGMA journal_mode = WAL")
        c.execute("CREATE TABLE marker (tag TEXT NOT NULL)")
        c.execute("CREATE TABLE filler (x BLOB)")
        c.close()
        mig = harness.write_migrations(self.path("migrations-%d" % page_size), {
            1: ("more", "INSERT INTO marker VALUES ('migrated');\n", None)})
        d = self.daemon(db, mig)
        c = db_connect(db)
        c.execute("PRAGMA wal_autocheckpoint = 0")
        c.executescript("INSERT INTO filler SELECT randomblob(3000) FROM (SELECT 1 UNION ALL SELECT 2 UNION ALL "
                        "SELECT 3); INSERT INTO marker VALUES ('in the wal');")
        c.close()
        self.assertGreater(wal_size(db), 0)
        expected = rows(db)
        res = d.call("up")
        path = res["backup"]["path"]
        self.assertEqual(integrity(path), ["ok"])
        self.assertEqual(header_journal_bytes(path), (1, 1))
        self.assertEqual(os.path.getsize(path), logical_size(path))
        self.assertEqual(rows(path, readonly=True), expected)
        b = ro_connect(path)
        try:
            self.assertEqual(b.execute("PRAGMA page_size").fetchone()[0], page_size)
        finally:
            b.close()
        self.assertEqual(rows(db)[1], [("in the wal",), ("migrated",)])

    def test_default_small_and_large_page_sizes(self):
        for page_size in (4096, 1024, 65536):
            with self.subTest(page_size=page_size):
                self.check_page_size(page_size)


if __name__ == "__main__":
    harness.main()
