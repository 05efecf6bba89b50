# SPDX-License-Identifier: MIT
"""The real dbmate (npm @dbmate/linux-x64@2.36.0: the static binary that the dbmate package runs
here) and migrated on the same SQLite database: whatever one applies or reverts, the other sees,
through dbmate's schema_migrations. dbmate is the oracle: `dbmate status --exit-code` must agree
with migrated after each step, and a database migrated brought up must have the schema dbmate
gives the same files.

The migrations are tests/integration/fixtures/dbmate/ (written for these tests the way `dbmate new`
starts a file), among them a transaction:false block (VACUUM, which SQLite refuses inside a
transaction) and a migration that fails at its last statement."""

import os
import shutil
import sqlite3
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)
sys.path.append(os.path.join(TESTS, "integration"))

import harness as H  # noqa: E402
from harness import query  # noqa: E402

DBMATE_BIN = None
FIXTURES = os.path.join(TESTS, "integration", "fixtures", "dbmate")
FILES = sorted(os.listdir(os.path.join(FIXTURES, "migrations")))
VERSIONS = [int(f.split("_", 1)[0]) for f in FILES]
FAILING = "20240301120000_add_comments.sql"  # fails at its last statement (no such table)
DBMATE_TIMEOUT = 60.0

# The user schema: everything but the bookkeeping of migrated and of dbmate.
USER_SCHEMA_QUERY = ("SELECT type, name, tbl_name, sql FROM sqlite_master WHERE name NOT LIKE 'migrated\\_%' "
                     "ESCAPE '\\' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name <> 'schema_migrations' "
                     "ORDER BY type, name")


def user_schema(db):
    return query(db, USER_SCHEMA_QUERY)


class DbmateOracleTest(H.TestCase):
    def setUp(self):
        super().setUp()
        self.mdir = self.path("migrations")
        os.mkdir(self.mdir)

    def add(self, *files):
        for f in files:
            src = os.path.join(FIXTURES, "migrations", f)
            if not os.path.exists(src):
                src = os.path.join(FIXTURES, "extra", f)
            shutil.copy(src, self.mdir)

    def dbmate(self, db, *args, ok=True):
        r = subprocess.run([DBMATE_BIN, "--url", "sqlite:" + db, "--migrations-dir", self.mdir, "--no-dump-schema"]
                           + list(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=DBMATE_TIMEOUT)
        out = r.stdout.decode(errors="replace")
        if ok:
            self.assertEqual(r.returncode, 0, "dbmate %s: %s" % (" ".join(args), out))
        return r.returncode, out

    def dbmate_status(self, db):
        """dbmate's verdict: (exit code of status --exit-code, the applied files, the pending ones)."""
        rc, out = self.dbmate(db, "status", "--exit-code", ok=False)
        applied = [line[4:] for line in out.splitlines() if line.startswith("[X] ")]
        pending = [line[4:] for line in out.splitlines() if line.startswith("[ ] ")]
        self.assertIn(rc, (0, 1), out)
        return rc, applied, pending

    def assertAgree(self, d, db, applied_files):
        """migrated's status and dbmate's say the same: these files applied, the rest pending."""
        pending_files = sorted(set(os.listdir(self.mdir)) - set(applied_files))
        rc, applied, pending = self.dbmate_status(db)
        self.assertEqual(applied, sorted(applied_files))
        self.assertEqual(pending, pending_files)
        self.assertEqual(rc, 1 if pending_files else 0)
        st = d.status()
        self.assertEqual(st["format"], "dbmate", st)
        self.assertEqual([a["version"] for a in st["applied"]], [int(f.split("_")[0]) for f in sorted(applied_files)],
                         st)
        self.assertEqual([p["file"] for p in st["pending"]], pending_files, st)
        self.assertEqual(st["problems"], [], st)

    def dbmate_reference(self, files):
        """The schema dbmate alone gives these files, in a database of its own."""
        ref = self.path("reference-%d.sqlite" % len(files))
        mdir, self.mdir = self.mdir, self.path("reference-%d" % len(files))
        try:
            os.mkdir(self.mdir)
            self.add(*files)
            self.dbmate(ref, "up")
        finally:
            self.mdir = mdir
        return ref

    def wal_db_by_dbmate(self, files):
        """A database dbmate created and brought to files, then put in WAL mode as the
        application that uses it would."""
        db = self.path("app.sqlite")
        self.add(*files)
        self.dbmate(db, "up")
        c = sqlite3.connect(db)
        c.execute("PRAGMA journal_mode=WAL")
        c.close()
        return db

    def test_dbmate_then_migrated(self):
        # dbmate applied the first two; migrated takes over and applies the rest.
        db = self.wal_db_by_dbmate(FILES[:2])
        self.add(*FILES)
        d = self.daemon(db, self.mdir)
        self.assertAgree(d, db, FILES[:2])
        r = d.ctl("up")
        self.assertCtl(r, 0)
        self.assertEqual([a["version"] for a in r.json["applied"]], VERSIONS[2:], r)
        self.assertAgree(d, db, FILES)
        self.assertEqual(query(db, "SELECT version, typeof(version) FROM schema_migrations ORDER BY version"),
                         [(str(v), "text") for v in VERSIONS])
        self.assertEqual(user_schema(db), user_schema(self.dbmate_reference(FILES)))

    def test_migrated_then_dbmate_down_and_up(self):
        # migrated applies all on a fresh database: dbmate's table, by dbmate's own DDL.
        self.add(*FILES)
        db = self.path("fresh.sqlite")
        d = self.daemon(db, self.mdir)
        self.assertAgree(d, db, [])
        self.assertCtl(d.ctl("up"), 0)
        self.assertAgree(d, db, FILES)
        ref = self.dbmate_reference(FILES)
        ddl = "SELECT sql FROM sqlite_master WHERE name = 'schema_migrations'"
        self.assertEqual(query(db, ddl), query(ref, ddl))
        self.assertEqual(user_schema(db), user_schema(ref))

        # migratectl down: dbmate sees the migration pending and re-applies it (a transaction:false
        # block both ways: VACUUM fails inside a transaction).
        self.assertCtl(d.ctl("down"), 0)
        self.assertAgree(d, db, FILES[:-1])
        self.assertCtl(d.ctl("down"), 0)
        self.assertAgree(d, db, FILES[:-2])
        self.assertEqual(user_schema(db), user_schema(self.dbmate_reference(FILES[:-2])))
        self.dbmate(db, "up")
        self.assertAgree(d, db, FILES)
        self.assertEqual(user_schema(db), user_schema(ref))

        # dbmate rolls back: migrated sees it pending and applies it again.
        self.dbmate(db, "rollback")
        self.assertAgree(d, db, FILES[:-1])
        r = d.ctl("up")
        self.assertCtl(r, 0)
        self.assertEqual([a["version"] for a in r.json["applied"]], VERSIONS[-1:], r)
        self.assertAgree(d, db, FILES)

    def test_dbmate_applies_all_migrated_agrees(self):
        db = self.wal_db_by_dbmate(FILES)
        d = self.daemon(db, self.mdir)
        self.assertAgree(d, db, FILES)
        r = d.ctl("up")
        self.assertCtl(r, 0)
        self.assertEqual(r.json.get("applied", []), [], r)

    def test_padded_versions(self):
        # "007" is dbmate's version, as text: migrated reverts the row dbmate wrote, and the
        # other way round.
        for name, table in (("007_first.sql", "a"), ("008_second.sql", "b")):
            with open(os.path.join(self.mdir, name), "w") as f:
                f.write("-- migrate:up\ncreate table %s (x);\n-- migrate:down\ndrop table %s;\n" % (table, table))
        db = self.path("padded.sqlite")
        self.dbmate(db, "up")
        d = self.daemon(db, self.mdir)
        self.assertAgree(d, db, ["007_first.sql", "008_second.sql"])
        self.assertCtl(d.ctl("down", "--to", "7"), 0)
        self.assertAgree(d, db, ["007_first.sql"])
        self.dbmate(db, "rollback")
        self.assertAgree(d, db, [])
        self.assertCtl(d.ctl("up"), 0)
        self.assertAgree(d, db, ["007_first.sql", "008_second.sql"])
        self.assertEqual(query(db, "SELECT version FROM schema_migrations ORDER BY version"), [("007",), ("008",)])

    def test_two_blocks_in_one_file(self):
        # dbmate 2.36 runs each up block of a file and records the version after each: on SQLite
        # the second record fails after its block ran. migrated refuses the file before running.
        with open(os.path.join(self.mdir, "1_two.sql"), "w") as f:
            f.write("-- migrate:up\ncreate table a (x);\n-- migrate:down\ndrop table a;\n"
                    "-- migrate:up\ncreate table b (x);\n-- migrate:down\ndrop table b;\n")
        rc, out = self.dbmate(self.path("dbmate.sqlite"), "up", ok=False)
        self.assertNotEqual(rc, 0, out)
        self.assertIn("UNIQUE constraint failed: schema_migrations.version", out)
        db = self.path("migrated.sqlite")
        d = self.daemon(db, self.mdir, extra_args=["--format", "dbmate"])
        st = d.status()
        self.assertIn("more than one '-- migrate:up' block", str(st["problems"]), st)
        r = d.ctl("up")
        self.assertEqual(r.rc, 1, r)
        self.assertEqual(r.json["error"]["code"], "directory_invalid", r)
        self.assertFalse(os.path.exists(db) and query(db, "SELECT name FROM sqlite_master WHERE name IN ('a', 'b')"))

    def test_failed_migration_both_ways(self):
        db = self.wal_db_by_dbmate(FILES)
        self.add(FAILING)
        d = self.daemon(db, self.mdir)
        self.assertAgree(d, db, FILES)
        schema = user_schema(db)
        # migrated: refused at its last statement, nothing recorded, nothing left behind.
        r = d.ctl("up")
        self.assertNotEqual(r.rc, 0, r)
        self.assertIn(FAILING, r.out + r.err, r)
        self.assertAgree(d, db, FILES)
        self.assertEqual(user_schema(db), schema)
        # dbmate: the same failure, the same state afterwards, which migrated agrees with.
        rc, out = self.dbmate(db, "up", ok=False)
        self.assertNotEqual(rc, 0, out)
        self.assertIn("no_such_table", out)
        self.assertAgree(d, db, FILES)
        self.assertEqual(user_schema(db), schema)


def main():
    global DBMATE_BIN
    DBMATE_BIN = H.npm_install(HERE, os.path.join("node_modules", "@dbmate", "linux-x64", "bin", "dbmate"),
                               "dbmate")
    H.main()


if __name__ == "__main__":
    main()
