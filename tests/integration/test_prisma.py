# SPDX-License-Identifier: MIT
"""Prisma Migrate compatibility: migrated takes over a SQLite database that Prisma managed, reads
Prisma's migrations folder (<timestamp>_<name>/migration.sql, migration_lock.toml) and keeps the
_prisma_migrations table the way Prisma writes it.

The fixtures under fixtures/prisma/ are written the way `prisma migrate dev` generates them for
SQLite (the Prisma CLI cannot run here: its engines need the network). The databases Prisma would
have left behind are built here with Python's sqlite3: the first N migration.sql files applied,
_prisma_migrations created with Prisma's DDL, rows with uuid4 ids, SHA-256 checksums and integer
Unix-millisecond times, including failed and rolled-back rows."""

import datetime
import hashlib
import os
import re
import shutil
import signal
import sqlite3
import time
import uuid

import harness
from harness import db_connect

FIXTURES = os.path.join(harness.HERE, "fixtures", "prisma")
FIXTURE_MIGRATIONS = os.path.join(FIXTURES, "migrations")
FIXTURE_EXTRA = os.path.join(FIXTURES, "extra")

# The migration folders in order (= the names Prisma records), and their versions (timestamps).
FOLDERS = sorted(f for f in os.listdir(FIXTURE_MIGRATIONS) if os.path.isdir(os.path.join(FIXTURE_MIGRATIONS, f)))
TS = [int(f.split("_", 1)[0]) for f in FOLDERS]
F_INIT, F_PROFILE, F_CATEGORIES, F_USER_REBUILD, F_POST_REBUILD = FOLDERS
OUT_OF_ORDER = "20240220120000_add_tag"           # older than the newest applied one
BAD_REBUILD = "20240501120000_user_name_required"  # a rebuild that leaves dangling references
BROKEN = "20240601090000_add_comments"             # fails at its last statement (no such table)

# Prisma's statement for its bookkeeping table on SQLite (schema engine, sqlite flavour); SQLite
# keeps this text, without the semicolon, in sqlite_master.sql.
PRISMA_TABLE_SQL = (
    'CREATE TABLE "_prisma_migrations" (\n'
    '    "id"                    TEXT PRIMARY KEY NOT NULL,\n'
    '    "checksum"              TEXT NOT NULL,\n'
    '    "finished_at"           DATETIME,\n'
    '    "migration_name"        TEXT NOT NULL,\n'
    '    "logs"                  TEXT,\n'
    '    "rolled_back_at"        DATETIME,\n'
    '    "started_at"            DATETIME NOT NULL DEFAULT current_timestamp,\n'
    '    "applied_steps_count"   INTEGER UNSIGNED NOT NULL DEFAULT 0\n'
    ')')

UUID4_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")

# The user schema: everything but the bookkeeping of migrated and of Prisma.
USER_SCHEMA_QUERY = ("SELECT type, name, tbl_name, sql FROM sqlite_master WHERE name NOT LIKE 'migrated\\_%' ESCAPE '\\' "
                     "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name <> '_prisma_migrations' "
                     "ORDER BY type, name")

# Rows Prisma's client would have written; seeded after migration 2, and after migration 3.
SEED_AFTER_PROFILE = """
INSERT INTO "User" ("id", "email", "name") VALUES (1, 'alice@example.com', 'Alice'), (2, 'bob@example.com', 'Bob'),
    (3, 'guest@example.com', NULL);
INSERT INTO "Post" ("id", "title", "content", "published", "authorId") VALUES (1, 'Hello', 'first post', 1, 1),
    (2, 'Draft', NULL, 0, 1), (3, 'Guest post', 'hi', 1, 3), (4, 'From Bob', NULL, 1, 2);
INSERT INTO "Profile" ("id", "bio", "userId") VALUES (1, 'Alice writes', 1), (2, NULL, 3);
"""
SEED_AFTER_CATEGORIES = """
INSERT INTO "Category" ("id", "name") VALUES (1, 'news'), (2, 'tech');
INSERT INTO "_CategoryToPost" ("A", "B") VALUES (1, 1), (2, 1), (2, 3), (1, 4);
"""

PRISMA_ERROR_LOGS = ("A migration failed to apply. New migrations cannot be applied before the error is recovered "
                     "from. Read more about how to resolve migration issues in a production database: "
                     "https://pris.ly/d/migrate-resolve\n\nMigration name: %s\n\nDatabase error code: 1\n\n"
                     "Database error:\nnear \"CREAT\": syntax error\n")

BASE_MS = 1704875400000  # the fake history's clock: 2024-01-10T08:30:00Z


def now_ms():
    return int(time.time() * 1000)


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def unpadded_hex(digest):
    """The checksum form of old Prisma versions: each byte as %x, without zero padding."""
    return "".join("%x" % b for b in digest)


def user_schema(db):
    c = db_connect(db)
    try:
        return c.execute(USER_SCHEMA_QUERY).fetchall()
    finally:
        c.close()


def prisma_rows(db):
    """Every _prisma_migrations row with the storage class of each column, oldest first."""
    c = db_connect(db)
    c.row_factory = sqlite3.Row
    try:
        if not c.execute("SELECT 1 FROM sqlite_master WHERE name = '_prisma_migrations'").fetchone():
            return []
        out = []
        for r in c.execute('SELECT *, typeof("id") AS t_id, typeof("checksum") AS t_checksum, '
                           'typeof("finished_at") AS t_finished_at, typeof("logs") AS t_logs, '
                           'typeof("rolled_back_at") AS t_rolled_back_at, typeof("started_at") AS t_started_at, '
                           'typeof("applied_steps_count") AS t_applied_steps_count '
                           'FROM "_prisma_migrations" ORDER BY rowid'):
            out.append(dict(r))
        return out
    finally:
        c.close()


def prisma_table_sql(db):
    c = db_connect(db)
    try:
        row = c.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = '_prisma_migrations'").fetchone()
        return row[0] if row else None
    finally:
        c.close()


def foreign_key_check(db):
    c = db_connect(db)
    try:
        return c.execute("PRAGMA foreign_key_check").fetchall()
    finally:
        c.close()


def data(db):
    """The seeded rows of every user table that exists."""
    queries = {
        "User": 'SELECT "id", "email", "name" FROM "User" ORDER BY "id"',
        "Post": 'SELECT "id", "title", "content", "published", "authorId" FROM "Post" ORDER BY "id"',
        "Profile": 'SELECT "id", "bio", "userId" FROM "Profile" ORDER BY "id"',
        "Category": 'SELECT "id", "name" FROM "Category" ORDER BY "id"',
        "_CategoryToPost": 'SELECT "A", "B" FROM "_CategoryToPost" ORDER BY "A", "B"',
        "Tag": 'SELECT "id", "label" FROM "Tag" ORDER BY "id"',
    }
    c = db_connect(db)
    try:
        names = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        return {t: c.execute(q).fetchall() for t, q in queries.items() if t in names}
    finally:
        c.close()


class PrismaTest(harness.TestCase):

    _reference = {}

    def setUp(self):
        super().setUp()
        self.mdir = self.path("prisma", "migrations")
        shutil.copytree(FIXTURE_MIGRATIONS, self.mdir)

    # -- the migrations folder ---------------------------------------------------------------

    def sql_file(self, folder, mdir=None):
        return os.path.join(mdir or self.mdir, folder, "migration.sql")

    def sql(self, folder, mdir=None):
        with open(self.sql_file(folder, mdir), encoding="utf-8") as f:
            return f.read()

    def checksum(self, folder):
        return hashlib.sha256(read_bytes(self.sql_file(folder))).hexdigest()

    def add_extra(self, folder):
        shutil.copytree(os.path.join(FIXTURE_EXTRA, folder), os.path.join(self.mdir, folder))

    # -- databases as Prisma leaves them -----------------------------------------------------

    def reference_schema(self, folders):
        """The schema of a fresh database made by applying these migration.sql files in order
        with plain sqlite3 (no migrated, no Prisma)."""
        key = tuple(folders)
        if key not in PrismaTest._reference:
            db = self.path("reference-%d.sqlite" % len(PrismaTest._reference))
            c = db_connect(db)
            try:
                for f in folders:
                    c.executescript(self.sql(f, FIXTURE_MIGRATIONS if f in FOLDERS else FIXTURE_EXTRA))
            finally:
                c.close()
            PrismaTest._reference[key] = user_schema(db)
        return PrismaTest._reference[key]

    def insert_prisma_row(self, c, name, checksum, started_at, finished_at, logs=None, rolled_back_at=None,
                          applied_steps_count=1):
        row_id = str(uuid.uuid4())
        c.execute('INSERT INTO "_prisma_migrations" ("id", "checksum", "finished_at", "migration_name", "logs", '
                  '"rolled_back_at", "started_at", "applied_steps_count") VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
                  (row_id, checksum, finished_at, name, logs, rolled_back_at, started_at, applied_steps_count))
        return row_id

    def prisma_db(self, applied, failed=None, seed=True, name="db.sqlite", history=None):
        """A database as `prisma migrate deploy` leaves it after applying the first `applied`
        migrations: their scripts run, _prisma_migrations created with Prisma's DDL and one row per
        migration (applied_steps_count 1). `failed`: a folder whose run failed (its row has
        finished_at NULL, error logs, applied_steps_count 0; its script is not applied).
        `history`: extra rows (name, kwargs) inserted before the applied ones' rows."""
        db = self.path(name)
        c = db_connect(db)
        try:
            c.execute(PRISMA_TABLE_SQL)
            t = BASE_MS
            for row_name, kw in history or ():
                self.insert_prisma_row(c, row_name, self.checksum(row_name), **kw)
            for i, f in enumerate(FOLDERS[:applied]):
                c.executescript(self.sql(f))
                if seed and f == F_PROFILE:
                    c.executescript(SEED_AFTER_PROFILE)
                if seed and f == F_CATEGORIES:
                    c.executescript(SEED_AFTER_CATEGORIES)
                t = BASE_MS + (i + 1) * 86400000
                self.insert_prisma_row(c, f, self.checksum(f), started_at=t, finished_at=t + 37)
            if failed:
                t += 86400000
                self.insert_prisma_row(c, failed, self.checksum(failed), started_at=t, finished_at=None,
                                       logs=PRISMA_ERROR_LOGS % failed, applied_steps_count=0)
        finally:
            c.close()
        self.assertEqual(prisma_table_sql(db), PRISMA_TABLE_SQL)
        return db

    # -- assertions ----------------------------------------------------------------------------

    def assertMigratedRow(self, row, folder, t0, t1):
        """A row of a migration migrated ran: the form `prisma migrate deploy` writes."""
        self.assertEqual(row["migration_name"], folder, row)
        self.assertEqual(row["t_id"], "text", row)
        self.assertRegex(row["id"], UUID4_RE)
        self.assertEqual(row["t_checksum"], "text", row)
        self.assertEqual(row["checksum"], self.checksum(folder), row)
        self.assertEqual(row["t_finished_at"], "integer", row)
        self.assertEqual(row["t_started_at"], "integer", row)
        # started_at = finished_at - the run's duration (monotonic ms): allow 2 ms of rounding.
        self.assertLessEqual(t0 - 2, row["started_at"], row)
        self.assertLessEqual(row["started_at"], row["finished_at"], row)
        self.assertLessEqual(row["finished_at"], t1, row)
        self.assertIsNone(row["logs"], row)
        self.assertEqual(row["t_logs"], "null", row)
        self.assertIsNone(row["rolled_back_at"], row)
        self.assertEqual(row["t_applied_steps_count"], "integer", row)
        self.assertEqual(row["applied_steps_count"], 1, row)

    def assertMarkedRow(self, row, folder, t0, t1):
        """A row of `migrate resolve --applied` (and of a baseline): nothing run, no steps."""
        self.assertEqual(row["migration_name"], folder, row)
        self.assertRegex(row["id"], UUID4_RE)
        self.assertEqual(row["checksum"], self.checksum(folder), row)
        self.assertEqual(row["t_logs"], "text", row)
        self.assertEqual(row["logs"], "", row)
        self.assertEqual(row["applied_steps_count"], 0, row)
        self.assertEqual(row["t_started_at"], "integer", row)
        self.assertEqual(row["t_finished_at"], "integer", row)
        self.assertEqual(row["started_at"], row["finished_at"], row)
        self.assertTrue(t0 <= row["started_at"] <= t1, (t0, row, t1))
        self.assertIsNone(row["rolled_back_at"], row)

    def assertUnchanged(self, db, rows, schema, data_=None):
        self.assertEqual(prisma_rows(db), rows, "_prisma_migrations must be unchanged")
        self.assertEqual(user_schema(db), schema, "the schema must be unchanged")
        if data_ is not None:
            self.assertEqual(data(db), data_, "the data must be unchanged")

    def rows_of(self, db, folder):
        return [r for r in prisma_rows(db) if r["migration_name"] == folder]

    def start(self, db, extra_args=()):
        return self.daemon(db, self.mdir, extra_args=extra_args)

    def ctl_error(self, r, rc, code):
        self.assertCtl(r, rc)
        err = r.json.get("error")
        self.assertIsInstance(err, dict, r)
        self.assertEqual(err.get("code"), code, r)
        self.assertIsInstance(err.get("message"), str, r)
        return err

    # =========================================================================================
    # 1. Takeover

    def test_takeover_of_a_prisma_database(self):
        # History as Prisma left it: init applied; add_profile failed once, was resolved as rolled
        # back, then applied; the rest pending.
        failed_t = BASE_MS + 3600000
        db = self.prisma_db(2, history=[(F_PROFILE, dict(started_at=failed_t, finished_at=None,
                                                         logs=PRISMA_ERROR_LOGS % F_PROFILE,
                                                         rolled_back_at=failed_t + 600000,
                                                         applied_steps_count=0))])
        before_rows = prisma_rows(db)
        self.assertEqual(len(before_rows), 3)
        before_data = data(db)
        d = self.start(db)

        st = d.status()
        self.assertEqual(st["format"], "prisma", st)
        self.assertEqual(st["problems"], [], st)
        self.assertEqual([a["version"] for a in st["applied"]], TS[:2], st)
        self.assertEqual([a["name"] for a in st["applied"]], FOLDERS[:2], st)
        recorded = {r["migration_name"]: r["checksum"] for r in before_rows if r["finished_at"] is not None}
        self.assertEqual([a["checksum"] for a in st["applied"]], [recorded[f] for f in FOLDERS[:2]], st)
        self.assertEqual([p["version"] for p in st["pending"]], TS[2:], st)
        self.assertEqual([p.get("migration_name") for p in st["pending"]], FOLDERS[2:], st)
        self.assertEqual(st["current_version"], TS[1], st)
        self.assertEqual(st["latest_version"], TS[-1], st)
        # Prisma's integer milliseconds, read as such.
        by_name = {r["migration_name"]: r for r in before_rows if r["finished_at"] is not None}
        for a in st["applied"]:
            row = by_name[a["name"]]
            iso = datetime.datetime.fromtimestamp(row["finished_at"] / 1000, datetime.timezone.utc)
            self.assertEqual(a["applied_at"], iso.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (row["finished_at"] % 1000), a)
            self.assertEqual(a["duration_ms"], row["finished_at"] - row["started_at"], a)

        # The same through migratectl.
        r = d.ctl("status")
        self.assertCtl(r, 0)
        self.assertEqual([a["name"] for a in r.json["applied"]], FOLDERS[:2], r)
        self.assertCtl(d.ctl("status", "--check"), 4)

        t0 = now_ms()
        r = d.ctl("up")
        t1 = now_ms()
        self.assertCtl(r, 0)
        self.assertEqual(r.json["status"], "applied", r)
        self.assertEqual(r.json["from_version"], TS[1], r)
        self.assertEqual(r.json["to_version"], TS[-1], r)
        self.assertEqual([a["version"] for a in r.json["applied"]], TS[2:], r)
        backups = db + "-backups"
        self.assertTrue(os.path.isdir(backups) and os.listdir(backups), "a backup must be taken before the change")

        rows = prisma_rows(db)
        # The existing rows are untouched (same ids, values and storage classes), in place.
        self.assertEqual(rows[:3], before_rows)
        new = rows[3:]
        self.assertEqual([x["migration_name"] for x in new], FOLDERS[2:], rows)
        for row, folder in zip(new, FOLDERS[2:]):
            self.assertMigratedRow(row, folder, t0, t1)
        self.assertEqual(len({x["id"] for x in rows}), len(rows), "ids must be unique")

        # The schema is that of a fresh database built from all migration.sql files.
        self.assertEqual(user_schema(db), self.reference_schema(FOLDERS))
        self.assertEqual(prisma_table_sql(db), PRISMA_TABLE_SQL, "the existing table must be kept as it was")
        # The rebuilds kept the data and every reference.
        self.assertEqual(foreign_key_check(db), [])
        after = data(db)
        for t in ("User", "Post", "Profile"):
            self.assertEqual(after[t], before_data[t], t)

        st = d.status()
        self.assertEqual(st["pending"], [], st)
        self.assertEqual(st["problems"], [], st)
        self.assertEqual([a["name"] for a in st["applied"]], FOLDERS, st)
        self.assertEqual(st["current_version"], TS[-1], st)
        self.assertCtl(d.ctl("status", "--check"), 0)
        r = d.ctl("up")
        self.assertCtl(r, 0)
        self.assertEqual(r.json["status"], "current", r)
        self.assertEqual(len(prisma_rows(db)), len(rows), "a second up must not add rows")

    def test_fresh_database_gets_prismas_table(self):
        db = self.path("fresh.sqlite")
        d = self.start(db)
        self.assertEqual(d.status()["format"], "prisma")
        t0 = now_ms()
        r = d.ctl("up")
        t1 = now_ms()
        self.assertCtl(r, 0)
        self.assertEqual([a["version"] for a in r.json["applied"]], TS, r)
        self.assertEqual(prisma_table_sql(db), PRISMA_TABLE_SQL,
                         "_prisma_migrations must be created with Prisma's exact DDL")
        rows = prisma_rows(db)
        self.assertEqual([x["migration_name"] for x in rows], FOLDERS)
        for row, folder in zip(rows, FOLDERS):
            self.assertMigratedRow(row, folder, t0, t1)
        self.assertEqual(user_schema(db), self.reference_schema(FOLDERS))

    def test_format_option(self):
        # --format prisma without migration_lock.toml: Prisma's layout all the same.
        os.unlink(os.path.join(self.mdir, "migration_lock.toml"))
        db = self.path("forced.sqlite")
        d = self.start(db, extra_args=["--format", "prisma"])
        st = d.status()
        self.assertEqual(st["format"], "prisma", st)
        self.assertEqual([p.get("migration_name") for p in st["pending"]], FOLDERS, st)
        self.assertCtl(d.ctl("up"), 0)
        self.assertEqual([x["migration_name"] for x in prisma_rows(db)], FOLDERS)
        self.assertEqual(d.stop(), 0, d.log())
        # The same directory in auto mode without the lock file is not Prisma's.
        d2 = self.start(self.path("auto.sqlite"))
        self.assertEqual(d2.status()["format"], "native")
        # [migrations] format = prisma in the config file.
        cfg = self.path("migrated.ini")
        with open(cfg, "w") as f:
            f.write("[migrations]\nformat = prisma\n")
        d3 = self.start(self.path("cfg.sqlite"), extra_args=["--config", cfg])
        self.assertEqual(d3.status()["format"], "prisma")

    # =========================================================================================
    # 2. A failed Prisma migration

    def failed_setup(self):
        db = self.prisma_db(2, failed=F_CATEGORIES)
        return db, self.start(db)

    def assertFailedRefusals(self, d, db):
        rows, sch, dat = prisma_rows(db), user_schema(db), data(db)
        st = d.status()
        failed = [p for p in st["problems"] if p.get("kind") == "failed_migration"]
        self.assertEqual(len(failed), 1, st)
        self.assertEqual(failed[0].get("name"), F_CATEGORIES, st)
        self.assertEqual([a["name"] for a in st["applied"]], FOLDERS[:2], st)
        self.assertIn(F_CATEGORIES, [p.get("migration_name") for p in st["pending"]], st)
        self.assertEqual(st["current_version"], TS[1], st)

        for verb in ("up", "down"):
            r = d.ctl(verb)
            err = self.ctl_error(r, 1, "failed_migration")
            self.assertIn(F_CATEGORIES, err["message"], r)
            self.assertIn("mark rolled-back", err["message"], r)
            self.assertIn("mark applied", err["message"], r)
            _, final = d.rpc(verb)
            self.assertError(final, "failed_migration")
        self.assertUnchanged(db, rows, sch, dat)

    def test_failed_migration_marked_rolled_back_then_reapplied(self):
        db, d = self.failed_setup()
        self.assertFailedRefusals(d, db)
        failed_before = self.rows_of(db, F_CATEGORIES)
        self.assertEqual(len(failed_before), 1)

        t0 = now_ms()
        r = d.ctl("mark", "rolled-back", F_CATEGORIES)
        t1 = now_ms()
        self.assertCtl(r, 0)
        self.assertEqual(r.json.get("status"), "marked_rolled_back", r)
        old = self.rows_of(db, F_CATEGORIES)
        self.assertEqual(len(old), 1, old)
        self.assertEqual(old[0]["t_rolled_back_at"], "integer", old)
        self.assertTrue(t0 <= old[0]["rolled_back_at"] <= t1, (t0, old, t1))
        for k in ("id", "checksum", "finished_at", "logs", "started_at", "applied_steps_count"):
            self.assertEqual(old[0][k], failed_before[0][k], k)

        st = d.status()
        self.assertEqual(st["problems"], [], st)
        self.assertEqual([p.get("migration_name") for p in st["pending"]], FOLDERS[2:], st)

        t0 = now_ms()
        r = d.ctl("up")
        t1 = now_ms()
        self.assertCtl(r, 0)
        self.assertEqual([a["version"] for a in r.json["applied"]], TS[2:], r)
        rows = self.rows_of(db, F_CATEGORIES)
        self.assertEqual(len(rows), 2, rows)
        self.assertEqual(rows[0]["id"], old[0]["id"])
        self.assertEqual(rows[0]["rolled_back_at"], old[0]["rolled_back_at"], "the old row keeps rolled_back_at")
        self.assertIsNone(rows[0]["finished_at"])
        self.assertMigratedRow(rows[1], F_CATEGORIES, t0, t1)
        self.assertEqual(user_schema(db), self.reference_schema(FOLDERS))
        self.assertEqual(d.status()["problems"], [])

    def test_failed_migration_marked_applied(self):
        db, d = self.failed_setup()
        self.assertFailedRefusals(d, db)
        failed_before = self.rows_of(db, F_CATEGORIES)[0]

        # The operator completes the migration by hand, then tells migrated.
        c = db_connect(db)
        c.executescript(self.sql(F_CATEGORIES))
        c.close()
        schema_by_hand = user_schema(db)

        t0 = now_ms()
        r = d.ctl("mark", "applied", F_CATEGORIES)
        t1 = now_ms()
        self.assertCtl(r, 0)
        self.assertEqual(r.json.get("status"), "marked_applied", r)
        self.assertEqual(r.json.get("version"), TS[2], r)
        self.assertEqual(user_schema(db), schema_by_hand, "mark applied must not run anything")
        rows = self.rows_of(db, F_CATEGORIES)
        self.assertEqual(len(rows), 2, rows)
        old, new = rows
        self.assertEqual(old["id"], failed_before["id"])
        self.assertEqual(old["t_rolled_back_at"], "integer", old)
        self.assertTrue(t0 <= old["rolled_back_at"] <= t1, (t0, old, t1))
        self.assertIsNone(old["finished_at"], old)
        self.assertEqual(old["logs"], failed_before["logs"])
        self.assertMarkedRow(new, F_CATEGORIES, t0, t1)
        self.assertNotEqual(new["id"], old["id"])

        st = d.status()
        self.assertEqual(st["problems"], [], st)
        self.assertEqual([a["name"] for a in st["applied"]], FOLDERS[:3], st)
        self.assertEqual([p.get("migration_name") for p in st["pending"]], FOLDERS[3:], st)
        r = d.ctl("up")
        self.assertCtl(r, 0)
        self.assertEqual([a["version"] for a in r.json["applied"]], TS[3:], r)
        self.assertEqual(user_schema(db), self.reference_schema(FOLDERS))
        self.assertEqual(len(self.rows_of(db, F_CATEGORIES)), 2, "up must not run the marked migration")

    def test_failure_mid_plan_is_atomic_and_leaves_no_failed_row(self):
        # Unlike `prisma migrate deploy`, which leaves the failed migration's row behind, migrated
        # rolls the whole plan back: no row, no schema change, nothing to resolve.
        db = self.prisma_db(2)
        self.add_extra(BROKEN)
        rows, sch, dat = prisma_rows(db), user_schema(db), data(db)
        d = self.start(db)
        events, final = d.rpc("up")
        err = self.assertError(final, "migration_failed")
        self.assertIn(BROKEN, str(err), final)
        self.assertIn("Posts", err["message"], final)
        self.assertUnchanged(db, rows, sch, dat)
        st = d.status()
        self.assertEqual(st["problems"], [], st)
        self.assertEqual([p.get("migration_name") for p in st["pending"]], FOLDERS[2:] + [BROKEN], st)
        # Without the broken one, the rest applies.
        r = d.ctl("up", "--to", TS[-1])
        self.assertCtl(r, 0)
        self.assertEqual([a["version"] for a in r.json["applied"]], TS[2:], r)
        self.assertEqual(user_schema(db), self.reference_schema(FOLDERS))

    # =========================================================================================
    # 3. mark refusals

    def test_mark_refusals(self):
        db = self.prisma_db(2)
        d = self.start(db)
        rows, sch = prisma_rows(db), user_schema(db)

        # Applied, not failed: cannot be marked rolled back (that would be a down).
        r = d.ctl("mark", "rolled-back", F_PROFILE)
        self.assertCtl(r, 1)
        self.assertIn("error", r.json, r)
        self.assertIn(F_PROFILE, r.json["error"]["message"], r)
        self.assertNotEqual(r.json["error"]["code"], "unknown_version", r)
        # Pending, never run: not failed either.
        r = d.ctl("mark", "rolled-back", F_CATEGORIES)
        self.assertCtl(r, 1)
        self.assertIn(F_CATEGORIES, r.json["error"]["message"], r)
        # Already applied: mark applied refused.
        r = d.ctl("mark", "applied", F_INIT)
        self.assertCtl(r, 1)
        self.assertIn("error", r.json, r)
        self.assertIn(F_INIT, r.json["error"]["message"], r)
        self.assertIn("already", r.json["error"]["message"], r)
        self.assertUnchanged(db, rows, sch)

        # Unknown names and versions.
        for state in ("applied", "rolled-back"):
            for target in ("20991231000000_nope", "nope", "20240110083001"):
                r = d.ctl("mark", state, target)
                self.ctl_error(r, 1, "unknown_version")
        _, final = d.rpc("mark", {"migration": "20991231000000_nope", "state": "applied"})
        self.assertError(final, "unknown_version")
        self.assertUnchanged(db, rows, sch)
        st = d.status()
        self.assertEqual([a["name"] for a in st["applied"]], FOLDERS[:2], st)
        self.assertEqual(st["problems"], [], st)

    # =========================================================================================
    # 4. Baseline

    def test_baseline(self):
        db = self.path("handmade.sqlite")
        c = db_connect(db)
        for f in FOLDERS[:2]:
            c.executescript(self.sql(f))
        c.executescript(SEED_AFTER_PROFILE)
        c.close()
        sch, dat = user_schema(db), data(db)
        d = self.start(db)

        r = d.ctl("up")
        err = self.ctl_error(r, 1, "baseline_needed")
        self.assertIn("baseline", err["message"], r)
        _, final = d.rpc("up")
        self.assertError(final, "baseline_needed")
        self.assertEqual(prisma_rows(db), [])
        self.assertEqual(user_schema(db), sch)
        self.assertEqual(data(db), dat)

        t0 = now_ms()
        r = d.ctl("baseline", TS[1])
        t1 = now_ms()
        self.assertCtl(r, 0)
        self.assertEqual(r.json.get("status"), "baselined", r)
        self.assertEqual(r.json.get("marked"), 2, r)
        self.assertEqual(user_schema(db), sch, "a baseline runs nothing")
        self.assertEqual(prisma_table_sql(db), PRISMA_TABLE_SQL)
        rows = prisma_rows(db)
        self.assertEqual([x["migration_name"] for x in rows], FOLDERS[:2], rows)
        for row, folder in zip(rows, FOLDERS[:2]):
            self.assertMarkedRow(row, folder, t0, t1)
        st = d.status()
        self.assertEqual([a["name"] for a in st["applied"]], FOLDERS[:2], st)
        self.assertEqual(st["problems"], [], st)

        # Only on an empty history.
        r = d.ctl("baseline", TS[2])
        self.assertCtl(r, 1)
        self.assertIn("error", r.json, r)
        self.assertEqual(prisma_rows(db), rows)

        t0 = now_ms()
        r = d.ctl("up")
        t1 = now_ms()
        self.assertCtl(r, 0)
        self.assertEqual([a["version"] for a in r.json["applied"]], TS[2:], r)
        rows2 = prisma_rows(db)
        self.assertEqual(rows2[:2], rows)
        for row, folder in zip(rows2[2:], FOLDERS[2:]):
            self.assertMigratedRow(row, folder, t0, t1)
        self.assertEqual(user_schema(db), self.reference_schema(FOLDERS))
        self.assertEqual(foreign_key_check(db), [])
        self.assertEqual(data(db)["User"], dat["User"])

    def test_baseline_unknown_version(self):
        db = self.path("handmade.sqlite")
        c = db_connect(db)
        c.executescript(self.sql(F_INIT))
        c.close()
        d = self.start(db)
        r = d.ctl("baseline", TS[0] + 1)
        self.ctl_error(r, 1, "unknown_version")
        self.assertEqual(prisma_rows(db), [])

    # =========================================================================================
    # 5. Checksums

    def test_edited_migration_is_a_checksum_mismatch(self):
        db = self.prisma_db(3)
        with open(self.sql_file(F_PROFILE), "a") as f:
            f.write("\n-- CreateIndex\nCREATE INDEX \"Profile_bio_idx\" ON \"Profile\"(\"bio\");\n")
        rows, sch, dat = prisma_rows(db), user_schema(db), data(db)
        d = self.start(db)
        st = d.status()
        mism = [p for p in st["problems"] if p.get("kind") == "checksum_mismatch"]
        self.assertEqual(len(mism), 1, st)
        self.assertEqual(mism[0].get("version"), TS[1], st)
        r = d.ctl("up")
        err = self.ctl_error(r, 5, "checksum_mismatch")
        self.assertIn(F_PROFILE, str(err), r)
        self.assertCtl(d.ctl("status", "--check"), 5)
        self.assertCtl(d.ctl("verify"), 5)
        self.assertUnchanged(db, rows, sch, dat)

    def test_crlf_file_is_not_a_mismatch(self):
        db = self.prisma_db(3)  # checksums recorded from the LF files
        path = self.sql_file(F_PROFILE)
        lf = read_bytes(path)
        self.assertNotIn(b"\r", lf)
        with open(path, "wb") as f:
            f.write(lf.replace(b"\n", b"\r\n"))
        self.assertNotEqual(self.checksum(F_PROFILE), hashlib.sha256(lf).hexdigest())
        d = self.start(db)
        st = d.status()
        self.assertEqual(st["problems"], [], st)
        self.assertCtl(d.ctl("verify"), 0)
        r = d.ctl("up")
        self.assertCtl(r, 0)
        self.assertEqual([a["version"] for a in r.json["applied"]], TS[3:], r)

    def test_recorded_crlf_checksum_of_lf_file_is_not_a_mismatch(self):
        # Written on Windows (CRLF), checked out on Linux (LF): Prisma accepts LF→CRLF as well.
        db = self.prisma_db(3)
        crlf = hashlib.sha256(read_bytes(self.sql_file(F_INIT)).replace(b"\n", b"\r\n")).hexdigest()
        c = db_connect(db)
        c.execute('UPDATE "_prisma_migrations" SET "checksum" = ? WHERE "migration_name" = ?', (crlf, F_INIT))
        c.close()
        d = self.start(db)
        self.assertEqual(d.status()["problems"], [])
        r = d.ctl("up")
        self.assertCtl(r, 0)
        self.assertEqual([a["version"] for a in r.json["applied"]], TS[3:], r)

    def test_old_unpadded_checksum_is_not_a_mismatch(self):
        db = self.prisma_db(3)
        digest = hashlib.sha256(read_bytes(self.sql_file(F_INIT))).digest()
        old = unpadded_hex(digest)
        self.assertNotEqual(old, digest.hex(), "the fixture's digest must have a byte below 0x10")
        c = db_connect(db)
        c.execute('UPDATE "_prisma_migrations" SET "checksum" = ? WHERE "migration_name" = ?', (old, F_INIT))
        c.close()
        d = self.start(db)
        st = d.status()
        self.assertEqual(st["problems"], [], st)
        self.assertCtl(d.ctl("verify"), 0)
        r = d.ctl("up")
        self.assertCtl(r, 0)
        self.assertEqual([a["version"] for a in r.json["applied"]], TS[3:], r)
        self.assertEqual(self.rows_of(db, F_INIT)[0]["checksum"], old, "the recorded checksum is left alone")

    def test_unpadded_checksum_of_other_content_is_a_mismatch(self):
        db = self.prisma_db(3)
        digest = hashlib.sha256(read_bytes(self.sql_file(F_INIT)) + b"\n").digest()
        c = db_connect(db)
        c.execute('UPDATE "_prisma_migrations" SET "checksum" = ? WHERE "migration_name" = ?',
                  (unpadded_hex(digest), F_INIT))
        c.close()
        d = self.start(db)
        self.ctl_error(d.ctl("up"), 5, "checksum_mismatch")

    # =========================================================================================
    # 6. Down with down.sql

    def test_down_removes_the_row_and_up_reapplies(self):
        # As Prisma users roll back by hand: the migration's row goes, so that `prisma migrate
        # status` lists it as pending again (a row with rolled_back_at set would still count as
        # recorded there). A row Prisma itself rolled back (a failed run resolved) stays as it is.
        failed_t = BASE_MS + 3 * 86400000 - 3600000
        db = self.prisma_db(3, history=[(F_CATEGORIES, dict(started_at=failed_t, finished_at=None,
                                                            logs=PRISMA_ERROR_LOGS % F_CATEGORIES,
                                                            rolled_back_at=failed_t + 60000,
                                                            applied_steps_count=0))])
        before = self.rows_of(db, F_CATEGORIES)
        self.assertEqual(len(before), 2)
        d = self.start(db)

        r = d.ctl("down")
        self.assertCtl(r, 0)
        self.assertEqual(r.json["status"], "reverted", r)
        self.assertEqual([x["version"] for x in r.json["reverted"]], [TS[2]], r)
        self.assertEqual(self.rows_of(db, F_CATEGORIES), before[:1], "only Prisma's rolled-back row stays")
        self.assertEqual(user_schema(db), self.reference_schema(FOLDERS[:2]))

        st = d.status()
        self.assertEqual(st["current_version"], TS[1], st)
        self.assertEqual([a["name"] for a in st["applied"]], FOLDERS[:2], st)
        self.assertEqual([p.get("migration_name") for p in st["pending"]], FOLDERS[2:], st)
        self.assertEqual(st["problems"], [], st)

        # The next one down has no down.sql.
        r = d.ctl("down")
        self.ctl_error(r, 1, "irreversible")

        t0 = now_ms()
        r = d.ctl("up", "--to", TS[2])
        t1 = now_ms()
        self.assertCtl(r, 0)
        self.assertEqual([a["version"] for a in r.json["applied"]], [TS[2]], r)
        rows = self.rows_of(db, F_CATEGORIES)
        self.assertEqual(len(rows), 2, rows)
        self.assertEqual(rows[0], before[0])
        self.assertMigratedRow(rows[1], F_CATEGORIES, t0, t1)
        self.assertEqual(user_schema(db), self.reference_schema(FOLDERS[:3]))
        st = d.status()
        self.assertEqual([a["name"] for a in st["applied"]], FOLDERS[:3], st)

    # =========================================================================================
    # 7. Out of order

    def test_out_of_order(self):
        db = self.prisma_db(5)
        self.add_extra(OUT_OF_ORDER)
        rows, sch = prisma_rows(db), user_schema(db)
        d = self.start(db)
        st = d.status()
        self.assertEqual([p.get("migration_name") for p in st["pending"]], [OUT_OF_ORDER], st)

        r = d.ctl("up")
        err = self.ctl_error(r, 1, "out_of_order")
        self.assertIn(OUT_OF_ORDER, str(err), r)
        self.assertIn("allow-out-of-order", err["message"], r)
        self.assertUnchanged(db, rows, sch)

        t0 = now_ms()
        r = d.ctl("up", "--allow-out-of-order")
        t1 = now_ms()
        self.assertCtl(r, 0)
        self.assertEqual([a["version"] for a in r.json["applied"]], [int(OUT_OF_ORDER.split("_")[0])], r)
        after = prisma_rows(db)
        self.assertEqual(after[:len(rows)], rows)
        self.assertEqual(len(after), len(rows) + 1)
        self.assertMigratedRow(after[-1], OUT_OF_ORDER, t0, t1)
        self.assertIn("Tag", data(db))
        st = d.status()
        self.assertEqual(st["pending"], [], st)
        self.assertEqual(st["problems"], [], st)
        self.assertEqual(st["current_version"], TS[-1], st)

    def test_one_bad_folder_hides_none_of_the_others(self):
        # A folder migrated cannot use is reported; the others stay visible and pending, a plan
        # that does not reach it runs, and one that would need it is refused naming it.
        db = self.prisma_db(2)
        bad = "20240501000000_no_script"
        os.makedirs(os.path.join(self.mdir, bad))
        d = self.start(db)
        st = d.status()
        self.assertEqual([p.get("migration_name") for p in st["pending"]], FOLDERS[2:], st)
        self.assertTrue(any(bad in p.get("message", "") for p in st["problems"]), st)
        r = d.ctl("up")
        err = self.ctl_error(r, 1, "directory_invalid")
        self.assertIn(bad, err["message"], r)
        self.assertEqual(user_schema(db), self.reference_schema(FOLDERS[:2]))
        r = d.ctl("up", "--to", TS[2])
        self.assertCtl(r, 0)
        self.assertEqual([a["version"] for a in r.json["applied"]], [TS[2]], r)
        self.assertEqual(user_schema(db), self.reference_schema(FOLDERS[:3]))

        # A folder without a timestamp: no plan upwards can say it does not need it; a down can.
        shutil.rmtree(os.path.join(self.mdir, bad))
        os.makedirs(os.path.join(self.mdir, "notes"))
        err = self.ctl_error(d.ctl("up"), 1, "directory_invalid")
        self.assertIn("notes", err["message"])
        r = d.ctl("down", "--to", TS[1])
        self.assertCtl(r, 0)
        self.assertEqual(user_schema(db), self.reference_schema(FOLDERS[:2]))

    # =========================================================================================
    # 8. A lock file for another provider

    def test_postgresql_lock_file_is_refused(self):
        lock = os.path.join(self.mdir, "migration_lock.toml")
        with open(lock, "w") as f:
            f.write('# Please do not edit this file manually\n'
                    '# It should be added in your version-control system (e.g., Git)\n'
                    'provider = "postgresql"\n')
        db = self.prisma_db(2)
        rows, sch, dat = prisma_rows(db), user_schema(db), data(db)
        d = self.start(db)
        st = d.status()
        dir_problems = [p for p in st["problems"] if p.get("kind") == "directory"]
        self.assertTrue(dir_problems, st)
        self.assertIn("postgresql", str(dir_problems), st)
        for args in (("up",), ("mark", "applied", F_CATEGORIES), ("baseline", TS[1])):
            r = d.ctl(*args)
            err = self.ctl_error(r, 1, "directory_invalid")
            self.assertIn("migration_lock.toml", str(err), r)
            self.assertIn("postgresql", str(err), r)
        self.assertUnchanged(db, rows, sch, dat)

    # =========================================================================================
    # 9. Table rebuilds and foreign keys

    def test_rebuilds_keep_foreign_keys_and_data(self):
        db = self.prisma_db(3)
        before = data(db)
        self.assertEqual(len(before["_CategoryToPost"]), 4)
        self.assertEqual(foreign_key_check(db), [])

        # Control: the same rebuild in one transaction on a connection with foreign keys on (where
        # its PRAGMA foreign_keys=OFF is a no-op) cascades the drop into the link table. This is
        # what the daemon must avoid.
        ctl_db = self.path("control.sqlite")
        shutil.copy(db, ctl_db)
        c = db_connect(ctl_db)
        c.execute("PRAGMA foreign_keys=ON")
        c.executescript("BEGIN;\n" + self.sql(F_POST_REBUILD) + "\nCOMMIT;")
        c.close()
        self.assertEqual(data(ctl_db)["_CategoryToPost"], [], "control: the cascade must hit the link table")

        d = self.start(db)
        r = d.ctl("up")
        self.assertCtl(r, 0)
        self.assertEqual([a["version"] for a in r.json["applied"]], TS[3:], r)
        self.assertEqual(foreign_key_check(db), [])
        self.assertEqual(data(db), before, "the rebuilds must keep every row, links included")
        self.assertEqual(user_schema(db), self.reference_schema(FOLDERS))
        c = db_connect(db)
        fks = c.execute("PRAGMA foreign_key_list(\"Post\")").fetchall()
        c.close()
        self.assertEqual([(fk[2], fk[3], fk[4], fk[5], fk[6]) for fk in fks],
                         [("User", "authorId", "id", "CASCADE", "SET NULL")])

        # A rebuild that drops referenced rows: rolled back, nothing changed.
        self.add_extra(BAD_REBUILD)
        rows, sch, dat = prisma_rows(db), user_schema(db), data(db)
        d.signal(signal.SIGHUP)
        harness.wait_until(lambda: BAD_REBUILD in [p.get("migration_name") for p in d.status()["pending"]],
                           10, what="the new migration folder to be seen after SIGHUP")
        r = d.ctl("up")
        err = self.ctl_error(r, 1, "foreign_key_violation")
        self.assertRegex(err["message"], "Post|Profile", r)
        self.assertUnchanged(db, rows, sch, dat)
        self.assertEqual(foreign_key_check(db), [])
        st = d.status()
        self.assertEqual([p.get("migration_name") for p in st["pending"]], [BAD_REBUILD], st)
        self.assertEqual(st["problems"], [], st)


if __name__ == "__main__":
    harness.main()
