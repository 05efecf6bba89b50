# SPDX-License-Identifier: MIT
"""migratectl schema: the live schema as SQL, stable in order and formatting so that it diffs well
in git. Each test dumps a real WAL database served by a real daemon: twice the same bytes, a
migration shows as exactly its change, the dump rebuilds a database that diff finds identical,
migrated's own tables are left out, --output replaces the file atomically, and dbmate's layout
(schema_migrations, --with-history) works like dbmate's own schema.sql."""

import difflib
import os
import shutil
import sqlite3

import harness
from harness import db_connect

MIGRATIONS = {
    1: ("users",
        "CREATE TABLE users (\n    id INTEGER PRIMARY KEY,   \r\n    email TEXT NOT NULL UNIQUE,\n\n"
        "    note TEXT DEFAULT 'two  spaces  \n kept'\n);\n"
        "CREATE INDEX users_email ON users(email);\n",
        "DROP TABLE users;\n"),
    2: ("posts",
        "CREATE TABLE posts (id INTEGER PRIMARY KEY AUTOINCREMENT, user_id INTEGER REFERENCES users(id));\n"
        "CREATE TABLE audit (id INTEGER PRIMARY KEY, what TEXT);\n"
        "CREATE TRIGGER posts_audit AFTER INSERT ON posts BEGIN INSERT INTO audit (what) VALUES ('post'); END;\n"
        "CREATE VIEW user_posts AS SELECT u.email, p.id FROM users u JOIN posts p ON p.user_id = u.id;\n",
        "DROP VIEW user_posts;\nDROP TABLE audit;\nDROP TABLE posts;\n"),
}
ADDED = {3: ("score", "ALTER TABLE posts ADD COLUMN score INTEGER NOT NULL DEFAULT 0;\n",
             "ALTER TABLE posts DROP COLUMN score;\n")}


class SchemaTest(harness.TestCase):

    def start(self, migrations=MIGRATIONS, extra_args=()):
        self.mig = harness.write_migrations(self.path("migrations"), migrations)
        self.db = self.path("db.sqlite")
        self.d = self.daemon(self.db, self.mig, extra_args=extra_args)
        self.assertEqual(self.d.ctl("up").rc, 0)
        return self.d

    def dump(self, *args):
        r = self.d.ctl("schema", *args, json_out=False)
        self.assertEqual(r.rc, 0, r)
        return r.out

    def test_twice_the_same_bytes_in_a_stable_order(self):
        self.start()
        first = self.dump()
        self.assertEqual(self.dump(), first)
        lines = [line for line in first.splitlines() if line.startswith("CREATE")]
        # tables by name, each followed by its indexes and triggers; views last
        self.assertEqual([" ".join(line.split()[:3]) for line in lines],
                         ["CREATE TABLE audit", "CREATE TABLE migrated_schema", "CREATE TABLE posts",
                          "CREATE TRIGGER posts_audit", "CREATE TABLE users", "CREATE INDEX users_email",
                          "CREATE VIEW user_posts"], first)
        # migrated's own tables and SQLite's are not the application's schema
        for name in ("migrated_attempts", "migrated_meta", "sqlite_sequence", "sqlite_autoindex"):
            self.assertNotIn(name, first)
        # white space normalised outside quotes, kept inside; every statement terminated
        self.assertNotIn("\r", first)
        self.assertNotIn("   \n", first)
        self.assertNotIn("\n\n\n", first)
        self.assertIn("'two  spaces  \n kept'", first)
        self.assertTrue(first.endswith(";\n"), first)
        doc = self.d.ctl("schema").json
        self.assertEqual(doc, {"schema": first})

    def test_a_migration_shows_as_exactly_its_change(self):
        self.start()
        before = self.dump()
        harness.write_migrations(self.mig, ADDED)
        self.assertEqual(self.d.ctl("up").rc, 0)
        after = self.dump()
        changed = [line for line in difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
                   if line[:1] in "+-" and not line.startswith(("+++", "---"))]
        self.assertEqual(len(changed), 2, changed)
        self.assertTrue(changed[0].startswith("-CREATE TABLE posts"), changed)
        self.assertTrue(changed[1].startswith("+CREATE TABLE posts"), changed)
        self.assertIn("score INTEGER NOT NULL DEFAULT 0", changed[1])

    def test_the_dump_rebuilds_an_identical_schema(self):
        """Applied to an empty database (with the history rows), the dump gives a database that
        diff, run against the same migrations, finds identical, and whose dump is the same."""
        self.start()
        text = self.dump("--with-history")
        copy = self.path("copy.sqlite")
        c = sqlite3.connect(copy)
        c.executescript(text)
        c.close()
        self.d.stop()
        self.d = self.daemon(copy, self.mig)
        st = self.d.status()
        self.assertEqual((st["current_version"], st["pending"]), (2, []), st)
        r = self.d.ctl("diff")
        self.assertEqual((r.rc, r.json["differences"]), (0, []), r)
        self.assertEqual(self.dump("--with-history"), text)

    def test_output_file_is_replaced_atomically(self):
        self.start()
        out = self.path("schema.sql")
        with open(out, "w") as f:
            f.write("old\n")
        os.chmod(out, 0o640)
        r = self.d.ctl("schema", "--output", out, json_out=False)
        self.assertEqual((r.rc, r.out), (0, ""), r)
        with open(out) as f:
            self.assertEqual(f.read(), self.dump())
        self.assertEqual(os.stat(out).st_mode & 0o777, 0o640)
        self.assertEqual(sorted(os.listdir(self.tmp)).count(".schema.sql"), 0)
        self.assertFalse([n for n in os.listdir(self.tmp) if n.startswith(".schema.sql.")])
        # a directory that cannot be written: an error, and the old file untouched
        r = self.d.ctl("schema", "--output", self.path("missing", "schema.sql"), json_out=False)
        self.assertNotEqual(r.rc, 0, r)
        self.assertIn("cannot create a file beside", r.err)

    def test_virtual_table_without_its_shadow_tables(self):
        """FTS5 makes its shadow tables itself: the dump has the CREATE VIRTUAL TABLE alone, so
        that it loads into an empty database."""
        self.start({1: ("docs", "CREATE VIRTUAL TABLE docs USING fts5(body);\n", "DROP TABLE docs;\n")})
        text = self.dump()
        self.assertIn("CREATE VIRTUAL TABLE docs USING fts5(body);", text)
        self.assertNotIn("docs_data", text)
        c = sqlite3.connect(self.path("copy.sqlite"))
        c.executescript(text)
        c.close()

    def test_with_history_adds_the_applied_versions(self):
        self.start()
        plain = self.dump()
        self.assertNotIn("\nINSERT INTO", plain)
        full = self.dump("--with-history")
        self.assertTrue(full.startswith(plain), full)
        inserts = [line for line in full.splitlines() if line.startswith("INSERT INTO")]
        self.assertEqual(len(inserts), 2, full)
        self.assertTrue(all(line.startswith('INSERT INTO "migrated_schema" (') for line in inserts), inserts)

    def test_one_shot_without_a_daemon(self):
        """CI keeps schema.sql current with no daemon: the one-shot mode dumps the same bytes."""
        self.start()
        served = self.dump()
        self.d.stop()
        out = self.path("schema.sql")
        r = harness.ctl("--database", self.db, "--migrations", self.mig, "schema", "--output", out)
        self.assertEqual(r.rc, 0, r)
        with open(out) as f:
            self.assertEqual(f.read(), served)

    def test_dbmate_layout(self):
        """dbmate's format: its schema_migrations is in the dump, its versions with --with-history
        as dbmate writes them (text), and the dump of a fresh database applied from it is the same."""
        mig = self.path("dbmate")
        shutil.copytree(os.path.join(harness.HERE, "fixtures", "dbmate", "migrations"), mig)
        self.db = self.path("dbmate.sqlite")
        self.d = self.daemon(self.db, mig, extra_args=["--format", "dbmate"])
        self.assertEqual(self.d.ctl("up").rc, 0)
        full = self.dump("--with-history")
        self.assertIn('CREATE TABLE "schema_migrations"', full.replace("CREATE TABLE IF NOT EXISTS", "CREATE TABLE"))
        versions = sorted(f.split("_")[0] for f in os.listdir(mig) if f.endswith(".sql"))
        for v in versions:
            self.assertIn("INSERT INTO \"schema_migrations\" (\"version\") VALUES ('%s');" % v, full)
        self.assertNotIn("migrated_", full)
        self.assertEqual(self.dump("--with-history"), full)
        with db_connect(self.db) as c:
            c.execute("CREATE INDEX by_hand ON users(id)")
        self.assertIn("CREATE INDEX by_hand ON users(id);", self.dump())


if __name__ == "__main__":
    harness.main()
