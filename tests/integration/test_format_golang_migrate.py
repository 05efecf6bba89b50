# SPDX-License-Identifier: MIT
"""golang-migrate compatibility: migrated reads golang-migrate's directory
({version}_{title}.up.sql / .down.sql, any unsigned version including 0, any title) and keeps
schema_migrations(version, dirty) exactly as the tool's sqlite3 driver does
(database/sqlite3/sqlite3.go: the DDL below; SetVersion deletes every row and inserts one), so that
the tool, run afterwards, agrees. The tool itself cannot run here; the databases it would leave
behind are built with Python's sqlite3 and its own statements.

Also here, for every format: files that carry their own BEGIN; ... COMMIT; run with the wrapper
folded into the plan's transaction; transaction control anywhere else is refused."""

import os
import sqlite3

import harness
from harness import db_connect

# The driver's ensureVersionTable(), and the text SQLite keeps for the table.
GM_DDL = ("CREATE TABLE IF NOT EXISTS schema_migrations (version uint64,dirty bool);\n"
          "CREATE UNIQUE INDEX IF NOT EXISTS version_unique ON schema_migrations (version);\n")
GM_TABLE_SQL = "CREATE TABLE schema_migrations (version uint64,dirty bool)"

# Our own set in the tool's documented layout: starts at 0000, titles with a dash, a dot and
# capitals, a file wrapped in its own transaction, a migration without down.
MIGRATIONS = {
    0: ("init", "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL);\n", "DROP TABLE users;\n"),
    1: ("add-Profile.v2", "CREATE TABLE profiles (id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users(id), "
        "bio TEXT);\n", "DROP TABLE profiles;\n"),
    2: ("seed", "-- written by hand, as many golang-migrate users do\nBEGIN;\n"
        "INSERT INTO users (id, email) VALUES (1, 'a@example.com'), (2, 'b@example.com');\n"
        "CREATE TRIGGER users_lower AFTER INSERT ON users BEGIN\n"
        "    UPDATE users SET email = lower(email) WHERE id = new.id;\nEND;\n"
        "COMMIT;\n",
        "BEGIN TRANSACTION;\nDROP TRIGGER users_lower;\nDELETE FROM users;\nEND TRANSACTION;\n"),
    10: ("index", "CREATE INDEX users_email ON users (email);\n", "DROP INDEX users_email;\n"),
}
VERSIONS = [0, 1, 2, 10]

USER_SCHEMA_QUERY = ("SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'migrated\\_%' ESCAPE '\\' "
                     "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name NOT IN ('schema_migrations', "
                     "'version_unique') ORDER BY type, name")


def up_sql(directory, version, migrations=MIGRATIONS):
    with open(os.path.join(directory, "%04d_%s.up.sql" % (version, migrations[version][0]))) as f:
        return f.read()


def gm_rows(db):
    return harness.query(db, "SELECT version, dirty FROM schema_migrations")


def user_schema(db):
    return harness.query(db, USER_SCHEMA_QUERY)


def tool_left(db, directory, n, version=None, dirty=False, migrations=MIGRATIONS):
    """The database golang-migrate leaves after applying the first n up files: each in its own
    transaction (the sqlite3 driver's executeQuery), then SetVersion."""
    c = sqlite3.connect(db, isolation_level=None)
    try:
        c.execute("PRAGMA journal_mode=WAL")
        c.executescript(GM_DDL)
        for v in sorted(migrations)[:n]:
            sql = up_sql(directory, v, migrations)
            if "BEGIN;" not in sql:
                sql = "BEGIN;\n" + sql + "\nCOMMIT;"
            c.executescript(sql)
        if version is None:
            version = VERSIONS[n - 1] if n > 0 else None
        c.execute("BEGIN")
        c.execute("DELETE FROM schema_migrations")
        if version is not None:
            c.execute("INSERT INTO schema_migrations (version, dirty) VALUES (?, ?)", (version, dirty))
        c.execute("COMMIT")
    finally:
        c.close()
    return db


def cli_schema(tmp, directory, migrations=MIGRATIONS):
    """The schema the sqlite3 CLI makes of the same up files, one after the other."""
    db = os.path.join(tmp, "cli-%d.db" % len(os.listdir(tmp)))
    c = sqlite3.connect(db, isolation_level=None)
    try:
        for v in sorted(migrations):
            c.executescript(up_sql(directory, v, migrations))
    finally:
        c.close()
    return user_schema(db)


class Base(harness.TestCase):

    def start(self, db, migrations, extra_args=()):
        return self.daemon(database=db, migrations=migrations, extra_args=extra_args)

    def ctl_error(self, r, rc, code):
        self.assertCtl(r, rc)
        err = r.json.get("error")
        self.assertIsInstance(err, dict, r)
        self.assertEqual(err.get("code"), code, r)
        return err


class GolangMigrateTest(Base):

    def setUp(self):
        super().setUp()
        self.dir = harness.write_migrations(self.path("migrations"), MIGRATIONS)

    def test_up_down_up(self):
        db = self.path("app.db")
        harness.create_wal_db(db)
        d = self.start(db, self.dir)
        st = d.status()
        self.assertEqual(st["format"], "golang-migrate", st)
        self.assertIn("golang-migrate name", st["format_reason"], st)
        self.assertEqual(st["history_table"], "schema_migrations", st)
        self.assertEqual([p["version"] for p in st["pending"]], VERSIONS, st)

        self.assertCtl(d.ctl("up"), 0)
        self.assertEqual(gm_rows(db), [(10, 0)])
        c = db_connect(db)
        self.assertEqual(c.execute("SELECT sql FROM sqlite_master WHERE name = 'schema_migrations'").fetchone()[0],
                         GM_TABLE_SQL)
        self.assertIsNotNone(c.execute("SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = "
                                       "'version_unique'").fetchone())
        self.assertIsNone(c.execute("SELECT 1 FROM sqlite_master WHERE name = 'migrated_schema'").fetchone())
        self.assertEqual(c.execute("SELECT email FROM users ORDER BY id").fetchall(),
                         [("a@example.com",), ("b@example.com",)])
        c.close()
        self.assertEqual(user_schema(db), cli_schema(self.tmp, self.dir))
        st = d.status()
        self.assertEqual([a["version"] for a in st["applied"]], VERSIONS, st)
        self.assertEqual(st["pending"], [], st)

        # down one at a time: the version becomes the previous migration's (2, not 9), as the
        # tool's down does
        self.assertCtl(d.ctl("down"), 0)
        self.assertEqual(gm_rows(db), [(2, 0)])
        self.assertCtl(d.ctl("down", "--steps", "2"), 0)
        self.assertEqual(gm_rows(db), [(0, 0)])
        self.assertEqual([r[1] for r in user_schema(db)], ["users"])
        # down --to 0 is the empty schema (protocol 1): migration 0 is reverted too, no row left
        self.assertCtl(d.ctl("down", "--to", "0"), 0)
        self.assertEqual(gm_rows(db), [])
        self.assertEqual(user_schema(db), [])
        self.assertEqual(d.status()["applied"], [])

        self.assertCtl(d.ctl("up"), 0)
        self.assertEqual(gm_rows(db), [(10, 0)])
        self.assertEqual(user_schema(db), cli_schema(self.tmp, self.dir))

    def test_takeover_of_what_the_tool_left(self):
        db = tool_left(self.path("app.db"), self.dir, 3)
        self.assertEqual(gm_rows(db), [(2, 0)])
        d = self.start(db, self.dir)
        st = d.status()
        self.assertEqual(st["format"], "golang-migrate", st)
        self.assertEqual(st["problems"], [], st)
        self.assertEqual([a["version"] for a in st["applied"]], [0, 1, 2], st)
        self.assertEqual([p["version"] for p in st["pending"]], [10], st)
        self.assertCtl(d.ctl("up"), 0)
        self.assertEqual(gm_rows(db), [(10, 0)])
        self.assertEqual(user_schema(db), cli_schema(self.tmp, self.dir))

    def test_dirty_database_is_refused_then_forced(self):
        # The tool was killed while running 2: dirty, its changes partly there.
        db = tool_left(self.path("app.db"), self.dir, 2, version=2, dirty=True)
        d = self.start(db, self.dir)
        st = d.status()
        self.assertIn("failed_migration", [p["kind"] for p in st["problems"]], st)
        for verb in ("up", "down"):
            err = self.ctl_error(d.ctl(verb), 1, "failed_migration")
            self.assertIn("Dirty database version 2. Fix and force version.", err["message"])
            self.assertIn("migrate force 2", err["message"])
            self.assertIn("mark rolled-back 2", err["message"])
        self.assertEqual(gm_rows(db), [(2, 1)])

        # mark rolled-back 2 = migrate force 1: 2 runs again
        self.assertCtl(d.ctl("mark", "rolled-back", "2"), 0)
        self.assertEqual(gm_rows(db), [(1, 0)])
        self.assertCtl(d.ctl("up"), 0)
        self.assertEqual(gm_rows(db), [(10, 0)])

    def test_dirty_database_marked_applied(self):
        db = tool_left(self.path("app.db"), self.dir, 3, version=2, dirty=True)
        d = self.start(db, self.dir)
        self.ctl_error(d.ctl("up"), 1, "failed_migration")
        # mark applied 2 = migrate force 2: 2 counts as done, 10 runs
        self.assertCtl(d.ctl("mark", "applied", "2"), 0)
        self.assertEqual(gm_rows(db), [(2, 0)])
        self.assertCtl(d.ctl("up"), 0)
        self.assertEqual(gm_rows(db), [(10, 0)])
        self.assertEqual(user_schema(db), cli_schema(self.tmp, self.dir))

    def test_version_zero_alone(self):
        db = self.path("app.db")
        harness.create_wal_db(db)
        d = self.start(db, self.dir)
        self.assertCtl(d.ctl("up", "--to", "0"), 0)
        self.assertEqual(gm_rows(db), [(0, 0)])
        st = d.status()
        self.assertEqual([a["version"] for a in st["applied"]], [0], st)
        self.assertEqual([p["version"] for p in st["pending"]], [1, 2, 10], st)
        self.assertCtl(d.ctl("mark", "rolled-back", "0"), 0)
        self.assertEqual(gm_rows(db), [])
        self.assertEqual([p["version"] for p in d.status()["pending"]], VERSIONS)

    def test_auto_detection(self):
        # native names only: native, unless the database has golang-migrate's table
        plain = harness.write_migrations(self.path("plain"), {1: MIGRATIONS[0], 2: MIGRATIONS[10]})
        db = self.path("native.db")
        harness.create_wal_db(db)
        d = self.start(db, plain)
        st = d.status()
        self.assertEqual(st["format"], "native", st)
        self.assertEqual(st["history_table"], "migrated_schema", st)
        d.stop()

        db = self.path("tool.db")
        harness.create_wal_db(db)
        c = db_connect(db)
        c.executescript(GM_DDL + "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL);"
                        "INSERT INTO schema_migrations VALUES (1, 0);")
        c.close()
        d = self.start(db, plain)
        st = d.status()
        self.assertEqual(st["format"], "golang-migrate", st)
        self.assertIn("schema_migrations", st["format_reason"], st)
        self.assertEqual([a["version"] for a in st["applied"]], [1], st)
        self.assertCtl(d.ctl("up"), 0)
        self.assertEqual(gm_rows(db), [(2, 0)])
        d.stop()

        # --format golang-migrate on a directory of native names
        db = self.path("forced.db")
        harness.create_wal_db(db)
        d = self.start(db, plain, extra_args=["--format", "golang-migrate"])
        self.assertEqual(d.status()["format"], "golang-migrate")
        self.assertCtl(d.ctl("up"), 0)
        self.assertEqual(gm_rows(db), [(2, 0)])

    def test_bad_names_are_listed(self):
        bad = harness.write_migrations(self.path("bad"), {0: MIGRATIONS[0], 1: MIGRATIONS[1]})
        for name in ("x_nope.up.sql", "18446744073709551616_big.up.sql", "0001_again.up.sql", "0007_lonely.down.sql"):
            with open(os.path.join(bad, name), "w") as f:
                f.write("SELECT 1;\n")
        db = self.path("app.db")
        harness.create_wal_db(db)
        d = self.start(db, bad, extra_args=["--format", "golang-migrate"])
        r = d.ctl("up")
        err = self.ctl_error(r, 1, "directory_invalid")
        text = " ".join(p.get("message", "") for p in d.status()["problems"])
        for name in ("x_nope.up.sql", "18446744073709551616_big.up.sql", "0001_again.up.sql", "0007_lonely.down.sql"):
            self.assertIn(name, text, err)

    def test_new_writes_the_tools_names(self):
        db = self.path("app.db")
        harness.create_wal_db(db)
        d = self.start(db, self.dir)
        r = harness.ctl("new", "add_orders", "--migrations", self.dir, json_out=True, sock=d.socket)
        self.assertCtl(r, 0)
        self.assertTrue(os.path.exists(os.path.join(self.dir, "0011_add_orders.up.sql")), os.listdir(self.dir))
        self.assertTrue(os.path.exists(os.path.join(self.dir, "0011_add_orders.down.sql")), os.listdir(self.dir))


class OwnTransactionTest(Base):
    """Every format: a script wrapped in BEGIN; ... COMMIT; has the wrapper folded into the plan's
    transaction; BEGIN/COMMIT anywhere else is refused before anything changes."""

    def native_set(self, third_up, third_down=None):
        return harness.write_migrations(self.path("native"), {1: MIGRATIONS[0], 2: MIGRATIONS[2],
                                                              3: ("more", third_up, third_down)})

    def test_wrapped_files_fold_into_one_transaction(self):
        directory = self.native_set("BEGIN IMMEDIATE TRANSACTION;\nINSERT INTO users VALUES (3, 'C@example.com');\n"
                                    "COMMIT TRANSACTION; -- done\n",
                                    "begin;\nDELETE FROM users WHERE id = 3;\ncommit;\n")
        db = self.path("app.db")
        harness.create_wal_db(db)
        d = self.start(db, directory)
        plan = d.call("plan", {"direction": "up"})
        folded = [s.get("own_transaction") for s in plan["steps"]]
        self.assertEqual(folded, [None, "folded", "folded"], plan)
        r = d.ctl("up", "--dry-run")
        self.assertCtl(r, 0)
        self.assertIn("folded", r.out)
        self.assertCtl(d.ctl("up"), 0)
        c = db_connect(db)
        self.assertEqual(c.execute("SELECT email FROM users ORDER BY id").fetchall(),
                         [("a@example.com",), ("b@example.com",), ("c@example.com",)])
        c.close()
        self.assertEqual(harness.applied_versions(db), [1, 2, 3])
        # the wrapped down files too, in one transaction
        r = d.ctl("down", "--steps", "2", "--dry-run")
        self.assertEqual([s.get("own_transaction") for s in r.json["steps"]], ["folded", "folded"], r)
        self.assertCtl(d.ctl("down", "--steps", "2"), 0)
        self.assertEqual(harness.applied_versions(db), [1])
        self.assertEqual(harness.query(db, "SELECT count(*) FROM users"), [(0,)])

    def test_wrapped_file_marked_no_transaction_is_its_own_transaction(self):
        directory = self.native_set("-- migrated: no-transaction\nBEGIN;\nINSERT INTO users VALUES (3, 'c@example.com');\n"
                                    "COMMIT;\n")
        db = self.path("app.db")
        harness.create_wal_db(db)
        d = self.start(db, directory)
        plan = d.call("plan", {"direction": "up"})
        self.assertEqual([s.get("own_transaction") for s in plan["steps"]], [None, "folded", "own"], plan)
        self.assertFalse(plan["atomic"], plan)
        self.assertCtl(d.ctl("up"), 0)
        self.assertEqual(harness.applied_versions(db), [1, 2, 3])
        self.assertEqual(harness.query(db, "SELECT id FROM users ORDER BY id"), [(1,), (2,), (3,)])

    def test_transaction_control_in_the_middle_is_refused(self):
        directory = self.native_set("INSERT INTO users VALUES (3, 'c@example.com');\nCOMMIT;\n"
                                    "INSERT INTO users VALUES (4, 'd@example.com');\n")
        db = self.path("app.db")
        harness.create_wal_db(db)
        d = self.start(db, directory)
        r = d.ctl("up")
        err = self.ctl_error(r, 1, "migration_failed")
        self.assertIn("0003_more.up.sql", r.out + r.err)
        self.assertIn("transaction control", err["message"])
        # all or nothing: not even 1 and 2
        self.assertEqual(harness.applied_versions(db), [])
        self.assertNotIn("users", harness.tables(db))


if __name__ == "__main__":
    harness.main()
