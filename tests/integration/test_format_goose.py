# SPDX-License-Identifier: MIT
"""goose compatibility: migrated reads a goose migrations directory ({version}_{name}.sql files
with "-- +goose Up" / "-- +goose Down" sections, StatementBegin/StatementEnd blocks, NO
TRANSACTION) and keeps goose_db_version the way goose v3 writes it on SQLite, so that goose run
afterwards agrees.

The fixtures under fixtures/goose/ follow goose's documented layout (its README and create
template); the goose binary cannot be built here (it needs the Go module proxy). The databases goose
would have left behind are built here with Python's sqlite3 from goose's source: the table with
the DDL of internal/dialects/sqlite3.go, its version-0 row (createVersionTable), one row
(version_id, is_applied = 1) per applied migration, rows deleted on down (v3) or is_applied = 0
rows (older goose versions)."""

import os
import re
import shutil
import sqlite3

import harness
from harness import db_connect, query

FIXTURES = os.path.join(harness.HERE, "fixtures", "goose", "migrations")
FILES = sorted(f for f in os.listdir(FIXTURES) if f.endswith(".sql"))
VERSIONS = [int(f.split("_", 1)[0]) for f in FILES]

# internal/dialects/sqlite3.go CreateTable("goose_db_version"), as sqlite_master keeps it.
GOOSE_TABLE_SQL = ("CREATE TABLE goose_db_version (\n"
                   "\t\tid INTEGER PRIMARY KEY AUTOINCREMENT,\n"
                   "\t\tversion_id INTEGER NOT NULL,\n"
                   "\t\tis_applied INTEGER NOT NULL,\n"
                   "\t\ttstamp TIMESTAMP DEFAULT (datetime('now'))\n"
                   "\t)")

USER_SCHEMA_QUERY = ("SELECT type, name, tbl_name, sql FROM sqlite_master WHERE name NOT LIKE 'migrated\\_%' "
                     "ESCAPE '\\' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name <> 'goose_db_version' "
                     "ORDER BY type, name")

TSTAMP_RE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")


def sections(path):
    """A goose file's Up and Down sections, by its annotation lines (a second reading of the
    layout, independent of migrated's)."""
    up, down, cur = [], [], None
    with open(path) as f:
        for line in f:
            a = line.strip().lower()
            if a == "-- +goose up":
                cur = up
            elif a == "-- +goose down":
                cur = down
            elif cur is not None:
                cur.append(line)
    return "".join(up), "".join(down)


def user_schema(db):
    return query(db, USER_SCHEMA_QUERY)


def goose_rows(db):
    return query(db, "SELECT id, version_id, is_applied, tstamp FROM goose_db_version ORDER BY id")


def goose_table_sql(db):
    r = query(db, "SELECT sql FROM sqlite_master WHERE name = 'goose_db_version'")
    return r[0][0] if r else None


def goose_version(db):
    """goose's EnsureDBVersion: rows newest first; the newest row of each version decides; the
    first version found applied is the current one."""
    skip = set()
    for version, applied in reversed([(r[1], r[2]) for r in goose_rows(db)]):
        if version in skip:
            continue
        if applied:
            return version
        skip.add(version)
    return None


def goose_status(db, versions):
    """goose status: per migration, the newest row by tstamp (GetMigrationByVersion), applied or
    pending."""
    out = {}
    for v in versions:
        r = query(db, "SELECT tstamp, is_applied FROM goose_db_version WHERE version_id=? "
                  "ORDER BY tstamp DESC LIMIT 1", (v,))
        out[v] = bool(r and r[0][1])
    return out


class GooseTest(harness.TestCase):

    def setUp(self):
        super().setUp()
        self.mdir = self.path("migrations")
        shutil.copytree(FIXTURES, self.mdir)

    def start(self, db, mdir=None, extra_args=()):
        return self.daemon(db, mdir or self.mdir, extra_args=extra_args)

    def reference_schema(self, n):
        """The schema plain sqlite3 makes from the first n Up sections (no migrated, no goose)."""
        db = self.path("reference-%d.sqlite" % n)
        if os.path.exists(db):
            return user_schema(db)
        c = db_connect(db)
        try:
            for f in FILES[:n]:
                c.executescript(sections(os.path.join(FIXTURES, f))[0])
        finally:
            c.close()
        return user_schema(db)

    def goose_db(self, n, extra_rows=()):
        """A database goose left after applying the first n migrations."""
        db = self.path("goose.sqlite")
        harness.create_wal_db(db)
        c = db_connect(db)
        try:
            c.execute(GOOSE_TABLE_SQL)
            c.execute("INSERT INTO goose_db_version (version_id, is_applied, tstamp) VALUES (0, 1, '2024-01-10 08:00:00')")
            for i, f in enumerate(FILES[:n]):
                c.executescript(sections(os.path.join(FIXTURES, f))[0])
                c.execute("INSERT INTO goose_db_version (version_id, is_applied, tstamp) VALUES (?, 1, ?)",
                          (VERSIONS[i], "2024-01-10 08:%02d:00" % (i + 1)))
            for version, applied, tstamp in extra_rows:
                c.execute("INSERT INTO goose_db_version (version_id, is_applied, tstamp) VALUES (?, ?, ?)",
                          (version, applied, tstamp))
            c.commit()
        finally:
            c.close()
        return db

    def test_up_down_up_on_a_fresh_database(self):
        db = self.path("fresh.sqlite")
        d = self.start(db)
        st = d.status()
        self.assertEqual(st["format"], "goose", st)
        self.assertEqual(st["problems"], [], st)
        self.assertEqual([(p["version"], p["name"], p["reversible"], p["transaction"]) for p in st["pending"]],
                         [(v, f[6:-4], True, True) for v, f in zip(VERSIONS, FILES)], st)

        r = d.ctl("up")
        self.assertCtl(r, 0)
        self.assertEqual([a["version"] for a in r.json["applied"]], VERSIONS, r)
        self.assertEqual(goose_table_sql(db), GOOSE_TABLE_SQL, "goose_db_version must have goose's own DDL")
        rows = goose_rows(db)
        self.assertEqual([(x[0], x[1], x[2]) for x in rows], [(1, 0, 1)] + [(i + 2, v, 1) for i, v in enumerate(VERSIONS)])
        for x in rows:
            self.assertRegex(x[3], TSTAMP_RE, "tstamp is the column's default, datetime('now')")
        self.assertEqual(goose_version(db), VERSIONS[-1])
        self.assertEqual(user_schema(db), self.reference_schema(len(FILES)))

        # The StatementBegin blocks reached SQLite whole: every statement of the trigger bodies runs.
        c = db_connect(db)
        try:
            c.execute("INSERT INTO users (id, username) VALUES (1, 'alice')")
            c.execute("UPDATE users SET username = 'alicia' WHERE id = 1")
            c.execute("INSERT INTO posts (user_id, title) VALUES (1, 'hello'), (1, 'again')")
            c.commit()
            self.assertEqual(c.execute("SELECT updated_at, post_count FROM users").fetchall(), [(1, 2)])
            self.assertEqual(c.execute("SELECT user_id, old_name, new_name FROM users_log").fetchall(),
                             [(1, "alice", "alicia")])
        finally:
            c.close()

        st = d.status()
        self.assertEqual([a["version"] for a in st["applied"]], VERSIONS, st)
        self.assertEqual(st["pending"], [], st)
        self.assertEqual(st["problems"], [], st)
        for a in st["applied"]:
            self.assertRegex(a["applied_at"], r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$", a)

        # Down two: goose v3 deletes the versions' rows.
        r = d.ctl("down", "--steps", "2")
        self.assertCtl(r, 0)
        self.assertEqual([x[1] for x in goose_rows(db)], [0] + VERSIONS[:2])
        self.assertEqual(goose_version(db), VERSIONS[1])
        self.assertEqual(goose_status(db, VERSIONS), {v: i < 2 for i, v in enumerate(VERSIONS)})
        self.assertEqual(user_schema(db), self.reference_schema(2))

        # Up again: new rows after the kept ones.
        r = d.ctl("up")
        self.assertCtl(r, 0)
        self.assertEqual([a["version"] for a in r.json["applied"]], VERSIONS[2:], r)
        rows = goose_rows(db)
        self.assertEqual([(x[1], x[2]) for x in rows], [(0, 1)] + [(v, 1) for v in VERSIONS])
        self.assertEqual([x[0] for x in rows[-2:]], [max(x[0] for x in rows[:-2]) + 3, max(x[0] for x in rows[:-2]) + 4],
                         "AUTOINCREMENT never reuses the deleted rows' ids")
        self.assertEqual(goose_version(db), VERSIONS[-1])
        self.assertEqual(user_schema(db), self.reference_schema(len(FILES)))

    def test_takeover_after_n_minus_1(self):
        # goose applied all but the last; the last was once applied and reverted by an older goose
        # (an is_applied = 0 row after its is_applied = 1 row).
        last = VERSIONS[-1]
        db = self.goose_db(len(FILES) - 1, extra_rows=[(last, 1, "2024-01-10 09:00:00"),
                                                       (last, 0, "2024-01-10 09:05:00")])
        self.assertEqual(goose_version(db), VERSIONS[-2])
        before = goose_rows(db)
        d = self.start(db)
        st = d.status()
        self.assertEqual(st["format"], "goose", st)
        self.assertEqual(st["problems"], [], st)
        self.assertEqual([a["version"] for a in st["applied"]], VERSIONS[:-1], st)
        self.assertEqual([p["version"] for p in st["pending"]], [last], st)
        self.assertEqual(st["current_version"], VERSIONS[-2], st)
        self.assertEqual(st["applied"][0]["applied_at"], "2024-01-10T08:01:00Z", st)

        r = d.ctl("up")
        self.assertCtl(r, 0)
        self.assertEqual([a["version"] for a in r.json["applied"]], [last], r)
        rows = goose_rows(db)
        self.assertEqual(rows[:len(before)], before, "goose's rows are kept as they were")
        self.assertEqual([(x[1], x[2]) for x in rows[len(before):]], [(last, 1)])
        self.assertEqual(goose_version(db), last)
        self.assertEqual(goose_table_sql(db), GOOSE_TABLE_SQL)
        self.assertEqual(user_schema(db), self.reference_schema(len(FILES)))
        self.assertCtl(d.ctl("status", "--check"), 0)

    def test_go_migrations_are_refused_by_name(self):
        for name in ("00005_backfill.go", "00007_rehash.go"):
            with open(os.path.join(self.mdir, name), "w") as f:
                f.write("package migrations\n")
        with open(os.path.join(self.mdir, "00006_bad.sql"), "w") as f:
            f.write("-- +goose Up\n-- +goose StatementBegin\nSELECT 1;\n")
        with open(os.path.join(self.mdir, "migrations_test.go"), "w") as f:
            f.write("package migrations\n")
        db = self.path("go.sqlite")
        d = self.start(db, extra_args=["--format", "goose"])
        st = d.status()
        msgs = [p.get("message", "") for p in st["problems"]]
        go = [m for m in msgs if "Go migrations cannot run" in m]
        self.assertEqual(len(go), 1, st)
        self.assertIn("00005_backfill.go, 00007_rehash.go", go[0])
        self.assertNotIn("migrations_test.go", go[0])
        # The other problem of the directory is listed beside it, with its line.
        self.assertTrue(any("00006_bad.sql" in m and "line 2" in m and "StatementEnd" in m for m in msgs), st)
        r = d.ctl("up")
        self.assertNotEqual(r.rc, 0, r)
        self.assertIn("Go migrations cannot run", r.out + r.err)
        self.assertFalse(os.path.exists(db) and "users" in [t[1] for t in user_schema(db)], "nothing may run")

    def test_no_transaction(self):
        # VACUUM cannot run inside a transaction: it needs goose's NO TRANSACTION.
        with open(os.path.join(self.mdir, "00005_vacuum.sql"), "w") as f:
            f.write("-- +goose NO TRANSACTION\n-- +goose Up\nVACUUM;\n\n-- +goose Down\nVACUUM;\n")
        db = self.path("notx.sqlite")
        d = self.start(db)
        st = d.status()
        self.assertEqual([p["transaction"] for p in st["pending"]], [True] * len(FILES) + [False], st)
        r = d.ctl("up")
        self.assertCtl(r, 0)
        self.assertEqual([x[1] for x in goose_rows(db)], [0] + VERSIONS + [5])
        self.assertCtl(d.ctl("down"), 0)
        self.assertEqual(goose_version(db), VERSIONS[-1])

        # Without a Down section the migration is irreversible, and the refusal says which section.
        with open(os.path.join(self.mdir, "00005_vacuum.sql"), "w") as f:
            f.write("-- +goose NO TRANSACTION\n-- +goose Up\nVACUUM;\n")
        self.assertCtl(d.ctl("up"), 0)
        r = d.ctl("down")
        self.assertEqual(r.json["error"]["code"], "irreversible", r)
        self.assertIn("00005_vacuum.sql is irreversible (it has no down section)", r.json["error"]["message"], r)
        self.assertEqual(goose_version(db), 5)
        self.assertCtl(d.ctl("mark", "rolled-back", "5"), 0)

        # The same file without the annotation fails in the transaction, and records nothing.
        with open(os.path.join(self.mdir, "00005_vacuum.sql"), "w") as f:
            f.write("-- +goose Up\nVACUUM;\n\n-- +goose Down\nVACUUM;\n")
        d.stop()
        d = self.start(db)
        before = goose_rows(db)
        r = d.ctl("up")
        self.assertNotEqual(r.rc, 0, r)
        self.assertEqual(goose_rows(db), before)

    def test_failure_rolls_back_the_plan_and_the_history(self):
        with open(os.path.join(self.mdir, "00005_broken.sql"), "w") as f:
            f.write("-- +goose Up\nCREATE TABLE tags (id INTEGER PRIMARY KEY);\nINSERT INTO nowhere VALUES (1);\n")
        db = self.goose_db(2)
        before, schema = goose_rows(db), user_schema(db)
        d = self.start(db)
        self.assertEqual([p["version"] for p in d.status()["pending"]], VERSIONS[2:] + [5])
        r = d.ctl("up")
        self.assertEqual(r.rc, 1, r)
        self.assertEqual(r.json["error"]["code"], "migration_failed", r)
        # the file's line, not the line within its Up section
        self.assertIn("00005_broken.sql:3:", r.json["error"]["message"], r)
        self.assertEqual(r.json["error"]["line"], 3, r)
        self.assertEqual(goose_rows(db), before)
        self.assertEqual(user_schema(db), schema)

    def test_auto_detection_and_format_option(self):
        d = self.start(self.path("auto.sqlite"))
        self.assertEqual(d.status()["format"], "goose")
        # A directory of .sql files without goose's annotation is not goose's.
        plain = self.path("plain")
        os.mkdir(plain)
        with open(os.path.join(plain, "0001_init.up.sql"), "w") as f:
            f.write("CREATE TABLE t (x);\n")
        d2 = self.start(self.path("plain.sqlite"), plain)
        self.assertEqual(d2.status()["format"], "native")
        cfg = self.path("migrated.ini")
        with open(cfg, "w") as f:
            f.write("[migrations]\nformat = goose\n")
        d3 = self.start(self.path("cfg.sqlite"), extra_args=["--config", cfg])
        st = d3.status()
        self.assertEqual(st["format"], "goose", st)
        self.assertEqual(st["problems"], [], st)

    def test_status_text_names_format_reason_and_table(self):
        """migratectl status (text) says what the JSON says: the format, why, and its table."""
        d = self.start(self.path("text.sqlite"))
        st = d.status()
        r = self.assertCtl(d.ctl("status", json_out=False), 0)
        self.assertRegex(r.out, r"(?m)^Format: +goose \(%s\)$" % re.escape(st["format_reason"]))
        self.assertIn("goose", st["format_reason"])
        self.assertRegex(r.out, r"(?m)^History table: +goose_db_version$")

    def test_new_follows_the_directory(self):
        r = harness.ctl("new", "add_tags", "--migrations", self.mdir, timeout=10)
        self.assertEqual(r.rc, 0, r)
        path = os.path.join(self.mdir, "00005_add_tags.sql")
        self.assertIn("00005_add_tags.sql", r.out)
        with open(path) as f:
            self.assertEqual(f.read(), "-- +goose Up\nSELECT 'up SQL query';\n\n-- +goose Down\nSELECT 'down SQL query';\n")
        d = self.start(self.path("new.sqlite"))
        st = d.status()
        self.assertEqual([(p["version"], p["reversible"]) for p in st["pending"]][-1], (5, True), st)

    def test_mark_applied_and_rolled_back(self):
        db = self.goose_db(2)
        d = self.start(db)
        r = d.ctl("mark", "applied", str(VERSIONS[2]))
        self.assertCtl(r, 0)
        self.assertEqual(goose_version(db), VERSIONS[2])
        self.assertNotEqual(d.ctl("mark", "applied", str(VERSIONS[2])).rc, 0)
        self.assertCtl(d.ctl("mark", "rolled-back", str(VERSIONS[2])), 0)
        self.assertEqual(goose_version(db), VERSIONS[1])
        self.assertNotIn(VERSIONS[2], [x[1] for x in goose_rows(db)])


if __name__ == "__main__":
    harness.main()
