# SPDX-License-Identifier: MIT
"""dbmate's layout run by the real daemon: one <version>_<name>.sql file per migration with
'-- migrate:up' and '-- migrate:down' blocks, dbmate's schema_migrations kept as dbmate's SQLite
driver keeps it (version text, one row per applied migration), transaction:false blocks run on
their own, detection from the directory, and what is refused. The fixtures are
fixtures/dbmate/; tests/oracles/test_dbmate.py checks the same against the real dbmate."""

import os
import shutil

import harness
from harness import query

FIXTURES = os.path.join(harness.HERE, "fixtures", "dbmate")
FILES = sorted(os.listdir(os.path.join(FIXTURES, "migrations")))
VERSIONS = [int(f.split("_", 1)[0]) for f in FILES]
FAILING = "20240301120000_add_comments.sql"
BAD_OPTION = "20240302120000_bad_option.sql"

# dbmate's statement (pkg/driver/sqlite CreateMigrationsTable), as sqlite_master keeps it.
DBMATE_TABLE_SQL = 'CREATE TABLE "schema_migrations" (version varchar(128) primary key)'


def recorded(db):
    return [v for (v,) in query(db, "SELECT version FROM schema_migrations ORDER BY version")]


def tables(db):
    return [n for (n,) in query(db, "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE "
                                    "'migrated\\_%' ESCAPE '\\' AND name <> 'schema_migrations' ORDER BY name")]


def columns(db, table):
    return [r[1] for r in query(db, "PRAGMA table_info(%s)" % table)]


class DbmateFormatTest(harness.TestCase):
    def setUp(self):
        super().setUp()
        self.mdir = self.path("migrations")
        shutil.copytree(os.path.join(FIXTURES, "migrations"), self.mdir)

    def add_extra(self, name):
        shutil.copy(os.path.join(FIXTURES, "extra", name), self.mdir)

    def test_up_down_up(self):
        db = self.path("db.sqlite")
        d = self.daemon(db, self.mdir)
        st = d.status()
        self.assertEqual(st["format"], "dbmate", st)
        self.assertEqual([(p["version"], p["file"]) for p in st["pending"]], list(zip(VERSIONS, FILES)), st)
        r = d.ctl("up")
        self.assertCtl(r, 0)
        self.assertEqual([a["version"] for a in r.json["applied"]], VERSIONS, r)
        self.assertEqual(query(db, "SELECT sql FROM sqlite_master WHERE name = 'schema_migrations'"),
                         [(DBMATE_TABLE_SQL,)])
        self.assertEqual(recorded(db), [str(v) for v in VERSIONS])
        self.assertEqual(query(db, "SELECT typeof(version) FROM schema_migrations GROUP BY 1"), [("text",)])
        self.assertEqual(tables(db), ["posts", "users"])
        self.assertIn("published", columns(db, "posts"))

        # down to before add_published: its down block ran, its row is gone
        r = d.ctl("down", "--to", str(VERSIONS[1]))
        self.assertCtl(r, 0)
        self.assertEqual(recorded(db), [str(v) for v in VERSIONS[:2]])
        self.assertNotIn("published", columns(db, "posts"))
        # the backup taken before the down is read as dbmate's: at the version it held then
        self.assertEqual(d.call("backups")["backups"][0]["version"], VERSIONS[-1])
        st = d.status()
        self.assertEqual(st["current_version"], VERSIONS[1], st)
        self.assertEqual([p["version"] for p in st["pending"]], VERSIONS[2:], st)

        # and up again
        self.assertCtl(d.ctl("up"), 0)
        self.assertEqual(recorded(db), [str(v) for v in VERSIONS])
        self.assertIn("published", columns(db, "posts"))
        self.assertEqual(d.status()["pending"], [])

    def test_version_is_recorded_as_written(self):
        # dbmate's version is the text of the digits: "007", not 7; down deletes that row.
        mdir = self.path("padded")
        os.mkdir(mdir)
        for name, up, down in (("007_first.sql", "create table a (x);", "drop table a;"),
                               ("008_second.sql", "create table b (x);", "drop table b;")):
            with open(os.path.join(mdir, name), "w") as f:
                f.write("-- migrate:up\n%s\n-- migrate:down\n%s\n" % (up, down))
        db = self.path("db.sqlite")
        d = self.daemon(db, mdir)
        self.assertCtl(d.ctl("up"), 0)
        self.assertEqual(recorded(db), ["007", "008"])
        self.assertCtl(d.ctl("down", "--to", "7"), 0)
        self.assertEqual(recorded(db), ["007"])
        self.assertEqual(tables(db), ["a"])
        st = d.status()
        self.assertEqual((st["current_version"], [p["file"] for p in st["pending"]]), (7, ["008_second.sql"]), st)

    def test_mark_applied_and_rolled_back(self):
        # dbmate has no failed state: mark records or forgets the version row, running nothing.
        db = self.path("db.sqlite")
        d = self.daemon(db, self.mdir)
        self.assertCtl(d.ctl("mark", "applied", str(VERSIONS[0])), 0)
        self.assertEqual(recorded(db), [str(VERSIONS[0])])
        self.assertEqual(tables(db), [])
        r = d.ctl("mark", "applied", str(VERSIONS[0]))
        self.assertNotEqual(r.rc, 0, r)
        self.assertIn("already recorded as applied", r.out + r.err, r)
        self.assertCtl(d.ctl("mark", "rolled-back", str(VERSIONS[0])), 0)
        self.assertEqual(recorded(db), [])
        r = d.ctl("mark", "rolled-back", str(VERSIONS[0]))
        self.assertNotEqual(r.rc, 0, r)
        self.assertIn("not applied", r.out + r.err, r)

    def test_transaction_false_per_block(self):
        # The VACUUM migration runs only outside a transaction, both ways.
        db = self.path("db.sqlite")
        d = self.daemon(db, self.mdir)
        st = d.status()
        vacuum = [p for p in st["pending"] if p["file"] == FILES[-1]]
        self.assertEqual([p["transaction"] for p in vacuum], [False], st)
        self.assertEqual({p["transaction"] for p in st["pending"] if p["file"] != FILES[-1]}, {True}, st)
        self.assertCtl(d.ctl("up"), 0)
        self.assertCtl(d.ctl("down"), 0)
        self.assertEqual(recorded(db), [str(v) for v in VERSIONS[:-1]])
        self.assertCtl(d.ctl("up"), 0)
        self.assertEqual(recorded(db), [str(v) for v in VERSIONS])
        self.assertEqual(d.stop(), 0, d.log())

        # The option belongs to its block: an up with transaction:false does not take the down
        # out of its transaction, where VACUUM fails and nothing is recorded as reverted.
        path = os.path.join(self.mdir, FILES[-1])
        with open(path) as f:
            text = f.read()
        with open(path, "w") as f:
            f.write(text.replace("-- migrate:down transaction:false", "-- migrate:down"))
        d = self.daemon(db, self.mdir)
        r = d.ctl("down")
        self.assertNotEqual(r.rc, 0, r)
        self.assertIn("VACUUM", r.out + r.err, r)
        self.assertEqual(recorded(db), [str(v) for v in VERSIONS])

    def test_auto_detection_and_format_option(self):
        d = self.daemon(self.path("auto.sqlite"), self.mdir)
        self.assertEqual(d.status()["format"], "dbmate")
        # Files named like dbmate's but without the up directive are not dbmate's.
        plain = self.path("plain")
        os.mkdir(plain)
        with open(os.path.join(plain, "0001_devices.up.sql"), "w") as f:
            f.write("CREATE TABLE devices (id INTEGER PRIMARY KEY);\n")
        d2 = self.daemon(self.path("plain.sqlite"), plain)
        self.assertEqual(d2.status()["format"], "native")
        # --format dbmate: the directory read as dbmate's all the same.
        d3 = self.daemon(self.path("forced.sqlite"), self.mdir, extra_args=["--format", "dbmate"])
        self.assertEqual(d3.status()["format"], "dbmate")
        self.assertCtl(d3.ctl("up"), 0)
        self.assertEqual(recorded(self.path("forced.sqlite")), [str(v) for v in VERSIONS])

    def test_unknown_option_is_refused(self):
        self.add_extra(BAD_OPTION)
        db = self.path("db.sqlite")
        d = self.daemon(db, self.mdir)
        st = d.status()
        problems = [p for p in st["problems"] if p.get("kind") == "directory"]
        self.assertTrue(problems, st)
        self.assertIn(BAD_OPTION, str(problems), st)
        self.assertIn("transaction:flase", str(problems), st)
        r = d.ctl("up")
        self.assertEqual(r.rc, 1, r)
        self.assertEqual(r.json["error"]["code"], "directory_invalid", r)
        self.assertFalse(os.path.exists(db) and tables(db), "nothing may be applied from a refused directory")

    def test_failed_migration_changes_nothing(self):
        db = self.path("db.sqlite")
        d = self.daemon(db, self.mdir)
        self.assertCtl(d.ctl("up"), 0)
        self.add_extra(FAILING)
        r = d.ctl("up")
        self.assertNotEqual(r.rc, 0, r)
        self.assertIn(FAILING, r.out + r.err, r)
        self.assertEqual(recorded(db), [str(v) for v in VERSIONS])
        self.assertEqual(tables(db), ["posts", "users"])
        self.assertEqual([p["file"] for p in d.status()["pending"]], [FAILING])

    def test_error_line_is_the_files(self):
        # A failing statement is reported at its line in the file, not in its block.
        name = "20240401000000_broken_down.sql"
        with open(os.path.join(self.mdir, name), "w") as f:
            f.write("-- header\n-- another\n-- migrate:up\ncreate table t (x);\n\n-- migrate:down\n"
                    "drop table t;\nselect * from no_such_table;\n")
        db = self.path("db.sqlite")
        d = self.daemon(db, self.mdir)
        self.assertCtl(d.ctl("up"), 0)
        r = d.ctl("down")
        self.assertNotEqual(r.rc, 0, r)
        self.assertIn("%s:8:" % name, r.out + r.err, r)
        self.assertEqual(tables(db), ["posts", "t", "users"])

    def test_native_directory_is_not_adopted_by_the_table(self):
        # A table like dbmate's (Rails keeps the same one) does not make a native directory
        # dbmate's: only golang-migrate's names are ambiguous with ours.
        plain = self.path("plain")
        os.mkdir(plain)
        with open(os.path.join(plain, "0001_devices.up.sql"), "w") as f:
            f.write("CREATE TABLE devices (id INTEGER PRIMARY KEY);\n")
        db = self.path("db.sqlite")
        harness.create_wal_db(db, 'create table "schema_migrations" (version varchar(128) primary key); '
                                  "INSERT INTO schema_migrations VALUES ('20240101000000');")
        d = self.daemon(db, plain)
        st = d.status()
        self.assertEqual((st["format"], st["problems"]), ("native", []), st)
        self.assertCtl(d.ctl("up"), 0)
        self.assertEqual(recorded(db), ["20240101000000"])
        self.assertIn("devices", tables(db))

    def test_golang_migrate_table_is_not_dbmates(self):
        # golang-migrate names its table schema_migrations too, with a dirty column.
        db = self.path("db.sqlite")
        harness.create_wal_db(db, "CREATE TABLE schema_migrations (version bigint NOT NULL PRIMARY KEY, "
                                  "dirty boolean NOT NULL); INSERT INTO schema_migrations VALUES (2, 0);")
        d = self.daemon(db, self.mdir, extra_args=["--format", "dbmate"])
        r = d.ctl("up")
        self.assertNotEqual(r.rc, 0, r)
        self.assertIn("dirty", r.out + r.err, r)
        self.assertEqual(query(db, "SELECT version, dirty FROM schema_migrations"), [(2, 0)])
        self.assertEqual(tables(db), [])

    def test_new_writes_dbmates_file(self):
        before = set(os.listdir(self.mdir))
        r = harness.ctl("new", "add_tags", "--migrations", self.mdir, timeout=10)
        self.assertEqual(r.rc, 0, r)
        (created,) = set(os.listdir(self.mdir)) - before
        self.assertRegex(created, r"^[0-9]{14}_add_tags\.sql$")
        self.assertIn(created, r.out, r)
        with open(os.path.join(self.mdir, created)) as f:
            self.assertEqual(f.read(), "-- migrate:up\n\n\n-- migrate:down\n\n")
        d = self.daemon(self.path("db.sqlite"), self.mdir)
        st = d.status()
        self.assertEqual(st["problems"], [], st)
        self.assertEqual(st["pending"][-1]["file"], created, st)
        self.assertCtl(d.ctl("up"), 0)


if __name__ == "__main__":
    harness.main()
