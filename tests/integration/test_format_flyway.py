# SPDX-License-Identifier: MIT
"""Flyway's layout and bookkeeping: migrated reads V<version>__<description>.sql (U<version>__... as
the down), orders dotted versions as Flyway does, and keeps flyway_schema_history the way Flyway
writes it on SQLite, so that a database moves between Flyway and migrated either way.

The fixtures under fixtures/flyway/ follow Flyway's layout (V1__, V1_1__, V1.2.9__, V1.2.10__, a
V2__ written on Windows with a BOM and CRLF line endings, undo files for three of them). The
databases Flyway would have left behind are built here with Python's sqlite3: Flyway's DDL for
SQLite, one row per migration at the next installed_rank, its CRC-32 checksum computed
independently (zlib over the lines without their breaks, as Flyway's ChecksumCalculator does)."""

import os
from contextlib import closing
import shutil
import sqlite3
import zlib

import harness
from harness import db_connect

FIXTURES = os.path.join(harness.HERE, "fixtures", "flyway")
FIXTURE_MIGRATIONS = os.path.join(FIXTURES, "migrations")
FIXTURE_EXTRA = os.path.join(FIXTURES, "extra")

# Flyway's createMetaDataTable.sql for SQLite, ${schema} = main, as sqlite_master keeps it.
FLYWAY_TABLE_SQL = (
    'CREATE TABLE "flyway_schema_history" (\n'
    '    "installed_rank" INT NOT NULL PRIMARY KEY,\n'
    '    "version" VARCHAR(50),\n'
    '    "description" VARCHAR(200) NOT NULL,\n'
    '    "type" VARCHAR(20) NOT NULL,\n'
    '    "script" VARCHAR(1000) NOT NULL,\n'
    '    "checksum" INT,\n'
    '    "installed_by" VARCHAR(100) NOT NULL,\n'
    '    "installed_on" TEXT NOT NULL DEFAULT (strftime(\'%Y-%m-%d %H:%M:%f\',\'now\')),\n'
    '    "execution_time" INT NOT NULL,\n'
    '    "success" BOOLEAN NOT NULL\n'
    ')')
FLYWAY_STATEMENTS = [
    'CREATE TABLE "main".' + FLYWAY_TABLE_SQL[len('CREATE TABLE '):],
    'CREATE INDEX "main"."flyway_schema_history_s_idx" ON "flyway_schema_history" ("success")',
]

# The migrations in Flyway's order: (version as Flyway displays it, description, script).
MIGRATIONS = [
    ("1", "create users", "V1__create_users.sql"),
    ("1.1", "add email", "V1_1__add_email.sql"),
    ("1.2.9", "create posts", "V1.2.9__create_posts.sql"),
    ("1.2.10", "index posts", "V1.2.10__index_posts.sql"),
    ("2", "create tags", "V2__create_tags.sql"),
]
KEYS = [m[0] for m in MIGRATIONS]

def key_order(key):
    """Flyway's order of versions: numeric parts, trailing zeros ignored."""
    parts = [int(p) for p in key.replace("_", ".").split(".")]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return parts


def rpc2(d, method, params=None):
    """A request in protocol version 2 (versions as string keys); returns (events, final)."""
    with harness.Conn(d.socket) as c:
        c.send(method, params, extra={"protocol": 2})
        return c.read_reply()


def status(d):
    _, final = rpc2(d, "status")
    return final["result"]


def flyway_checksum(data):
    """Flyway's checksum, from the Python standard library alone: CRC-32 of the lines without
    their breaks and without a leading BOM, as a signed 32-bit int."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    crc = 0
    for line in data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n"):
        crc = zlib.crc32(line, crc)
    return crc - (1 << 32) if crc >= 1 << 31 else crc


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def user_schema(db):
    """The schema without anyone's bookkeeping (harness.schema leaves out migrated's own)."""
    return [r for r in harness.schema(db) if not r[1].startswith("flyway_schema_history")]


def history_rows(db):
    with closing(db_connect(db)) as c:
        c.row_factory = sqlite3.Row
        if not c.execute("SELECT 1 FROM sqlite_master WHERE name = 'flyway_schema_history'").fetchone():
            return []
        return [dict(r) for r in c.execute('SELECT *, typeof("checksum") AS t_checksum FROM "flyway_schema_history" '
                                           'ORDER BY "installed_rank"')]


def sqlite_master_sql(db, name):
    with closing(db_connect(db)) as c:
        row = c.execute("SELECT sql FROM sqlite_master WHERE name = ?", (name,)).fetchone()
        return row[0] if row else None


class FlywayTest(harness.TestCase):

    def setUp(self):
        super().setUp()
        self.mdir = self.path("flyway", "sql")
        shutil.copytree(FIXTURE_MIGRATIONS, self.mdir)

    def script(self, name, mdir=None):
        return os.path.join(mdir or self.mdir, name)

    def checksum(self, name):
        return flyway_checksum(read_bytes(self.script(name)))

    def reference_schema(self, scripts):
        """The schema of a fresh database with these scripts applied by plain sqlite3."""
        db = self.path("reference-%d.sqlite" % len(scripts))
        with closing(db_connect(db)) as c:
            for s in scripts:
                c.executescript(read_bytes(self.script(s)).decode("utf-8-sig"))
        return user_schema(db)

    def flyway_db(self, applied, baseline=None, extra_rows=(), name="db.sqlite"):
        """A database as `flyway migrate` leaves it: the first `applied` scripts run, one SQL row
        each; with `baseline` (a version) a BASELINE row first and the scripts up to it run
        without rows, as `flyway baseline` on an existing schema. extra_rows: (version,
        description, type, script, checksum, success) appended."""
        db = self.path(name)
        c = db_connect(db)
        rank = 0
        try:
            for s in FLYWAY_STATEMENTS:
                c.execute(s)

            def row(version, description, type_, script, checksum, success=1):
                nonlocal rank
                rank += 1
                c.execute('INSERT INTO "flyway_schema_history" ("installed_rank", "version", "description", "type", '
                          '"script", "checksum", "installed_by", "execution_time", "success") '
                          "VALUES (?, ?, ?, ?, ?, ?, '', 12, ?)",
                          (rank, version, description, type_, script, checksum, success))

            if baseline is not None:
                row(baseline, "<< Flyway Baseline >>", "BASELINE", "<< Flyway Baseline >>", None)
            for i, (key, desc, script) in enumerate(MIGRATIONS[:applied]):
                c.executescript(read_bytes(self.script(script)).decode("utf-8-sig"))
                if baseline is None or key_order(key) > key_order(baseline):
                    row(key, desc, "SQL", script, self.checksum(script))
            for r in extra_rows:
                row(*r)
            c.commit()
        finally:
            c.close()
        self.assertEqual(sqlite_master_sql(db, "flyway_schema_history"), FLYWAY_TABLE_SQL)
        return db

    def start(self, db, extra_args=()):
        return self.daemon(db, self.mdir, extra_args=extra_args)

    def assertMigratedRows(self, rows, first_rank, migrations):
        for i, (row, (key, desc, script)) in enumerate(zip(rows, migrations)):
            self.assertEqual(row["installed_rank"], first_rank + i, row)
            self.assertEqual(row["version"], key, row)
            self.assertEqual(row["description"], desc, row)
            self.assertEqual(row["type"], "SQL", row)
            self.assertEqual(row["script"], script, row)
            self.assertEqual(row["t_checksum"], "integer", row)
            self.assertEqual(row["checksum"], self.checksum(script), row)
            self.assertEqual(row["installed_by"], "", row)
            self.assertRegex(row["installed_on"], r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}$")
            self.assertGreaterEqual(row["execution_time"], 0, row)
            self.assertEqual(row["success"], 1, row)
        self.assertEqual(len(rows), len(migrations))

    # -- tests -------------------------------------------------------------------------------

    def test_fresh_database_up_writes_flyways_history(self):
        db = self.path("fresh.sqlite")
        d = self.start(db)
        st = status(d)
        self.assertEqual(st["format"], "flyway", st)
        self.assertEqual([p["version"] for p in st["pending"]], KEYS, st)
        r = d.ctl("up")
        self.assertCtl(r, 0)
        self.assertEqual([a["version"] for a in r.json["applied"]], KEYS, r)
        self.assertEqual(sqlite_master_sql(db, "flyway_schema_history"), FLYWAY_TABLE_SQL, "Flyway's exact DDL")
        self.assertEqual(sqlite_master_sql(db, "flyway_schema_history_s_idx"), 'CREATE INDEX "flyway_schema_history_s_idx" ON "flyway_schema_history" ("success")')
        self.assertMigratedRows(history_rows(db), 1, MIGRATIONS)
        self.assertEqual(user_schema(db), self.reference_schema([m[2] for m in MIGRATIONS]))
        st = status(d)
        self.assertEqual(st["problems"], [], st)
        self.assertEqual(st["pending"], [], st)
        # the BOM + CRLF file's checksum is its LF twin's: Flyway reads lines
        with open(self.script("V2__create_tags.sql"), "rb") as f:
            windows = f.read()
        self.assertEqual(flyway_checksum(windows), flyway_checksum(windows[3:].replace(b"\r\n", b"\n")))

    def test_undo_down_then_up_again(self):
        db = self.flyway_db(5)
        d = self.start(db)
        r = d.ctl("down")
        self.assertCtl(r, 0)
        self.assertEqual([x["version"] for x in r.json["reverted"]], ["2"], r)
        rows = history_rows(db)
        self.assertEqual([x["version"] for x in rows], KEYS[:4], "the undone migration's row is deleted")
        self.assertEqual(user_schema(db), self.reference_schema([m[2] for m in MIGRATIONS[:4]]))
        # 1.2.10 has an undo, 1.2.9 has none: down --to 1.2.9 reverts one, further is refused
        self.assertCtl(d.ctl("down", "--to", "1.2.9"), 0)
        self.assertEqual([x["version"] for x in history_rows(db)], KEYS[:3])
        r = d.ctl("down")
        self.assertCtl(r, 1)
        self.assertIn("V1.2.9__create_posts.sql", r.out + r.err, r)
        self.assertEqual([x["version"] for x in history_rows(db)], KEYS[:3], "a refused down changes nothing")
        r = d.ctl("up")
        self.assertCtl(r, 0)
        rows = history_rows(db)
        self.assertEqual([x["version"] for x in rows], KEYS)
        self.assertMigratedRows(rows[3:], 4, MIGRATIONS[3:])
        self.assertEqual(user_schema(db), self.reference_schema([m[2] for m in MIGRATIONS]))

    def test_takeover_after_all_but_one(self):
        db = self.flyway_db(4)
        before = history_rows(db)
        d = self.start(db)
        st = status(d)
        self.assertEqual(st["current_version"], "1.2.10", st)
        self.assertEqual([a["name"] for a in st["applied"]], [m[1] for m in MIGRATIONS[:4]], st)
        self.assertEqual([p["version"] for p in st["pending"]], ["2"], st)
        self.assertEqual(st["problems"], [], st)
        r = d.ctl("up")
        self.assertCtl(r, 0)
        self.assertEqual([a["version"] for a in r.json["applied"]], ["2"], r)
        rows = history_rows(db)
        self.assertEqual(rows[:4], before, "Flyway's rows are left as they were")
        self.assertMigratedRows(rows[4:], 5, MIGRATIONS[4:])
        self.assertEqual(user_schema(db), self.reference_schema([m[2] for m in MIGRATIONS]))

    def test_baseline_row_covers_older_versions(self):
        db = self.flyway_db(2, baseline="1.1")
        d = self.start(db)
        st = status(d)
        self.assertEqual(st["current_version"], "1.1", st)
        self.assertEqual([p["version"] for p in st["pending"]], KEYS[2:], st)
        self.assertEqual(st["problems"], [], st)
        r = d.ctl("up")
        self.assertCtl(r, 0)
        self.assertEqual([a["version"] for a in r.json["applied"]], KEYS[2:], r)
        rows = history_rows(db)
        self.assertEqual(rows[0]["type"], "BASELINE")
        self.assertMigratedRows(rows[1:], 2, MIGRATIONS[2:])
        self.assertEqual(user_schema(db), self.reference_schema([m[2] for m in MIGRATIONS]))
        # down stops at the baseline: what it covers has no rows to undo
        self.assertCtl(d.ctl("down", "--to", "0"), 1)
        # mark takes Flyway's version: rolled-back forgets the row of 1.2.10, applied records it again
        self.assertCtl(d.ctl("mark", "rolled-back", "1.2.10"), 0)
        self.assertNotIn("1.2.10", [x["version"] for x in history_rows(db)])
        self.assertCtl(d.ctl("mark", "applied", "1_2_10"), 0)
        self.assertEqual(history_rows(db)[-1]["version"], "1.2.10")
        # and migrated's own baseline is for an empty history only
        self.assertCtl(d.ctl("baseline", "1.2.9"), 1)
        self.assertEqual(len(history_rows(db)), 4)

    def test_teams_undo_rows_are_read(self):
        # Flyway Teams' undo appends an UNDO_SQL row and keeps the SQL row: 2 is not applied.
        undo = ("2", "create tags", "UNDO_SQL", "U2__create_tags.sql", self.checksum("U2__create_tags.sql"), 1)
        db = self.flyway_db(5, extra_rows=[undo])
        c = db_connect(db)
        c.execute("DROP TABLE tags")
        c.commit()
        c.close()
        d = self.start(db)
        st = status(d)
        self.assertEqual([p["version"] for p in st["pending"]], ["2"], st)
        self.assertCtl(d.ctl("up"), 0)
        rows = history_rows(db)
        self.assertEqual([(x["version"], x["type"]) for x in rows][-2:], [("2", "UNDO_SQL"), ("2", "SQL")])
        self.assertEqual(rows[-1]["installed_rank"], 7)

    def test_failed_migration_leaves_no_row(self):
        db = self.flyway_db(5)
        shutil.copy(os.path.join(FIXTURE_EXTRA, "V3__add_comments.sql"), self.mdir)
        before_rows, before_schema = history_rows(db), user_schema(db)
        d = self.start(db)
        r = d.ctl("up")
        self.assertCtl(r, 1)
        self.assertEqual(r.json["error"]["code"], "migration_failed", r)
        self.assertEqual(history_rows(db), before_rows, "as Flyway on SQLite: the failed script leaves no row")
        self.assertEqual(user_schema(db), before_schema)

    def test_edited_script_is_a_checksum_mismatch_but_crlf_is_not(self):
        db = self.flyway_db(5)
        path = self.script("V1_1__add_email.sql")
        data = read_bytes(path)
        with open(path, "wb") as f:
            f.write(b"\xef\xbb\xbf" + data.replace(b"\n", b"\r\n"))
        d = self.start(db)
        self.assertEqual(status(d)["problems"], [])
        with open(path, "wb") as f:
            f.write(data.replace(b"email", b"mail"))
        st = status(d)
        kinds = [(p["kind"], p["version"]) for p in st["problems"]]
        self.assertEqual(kinds, [("checksum_mismatch", "1.1")], st)
        self.assertEqual(st["problems"][0]["expected"], str(flyway_checksum(data)), st)
        self.assertEqual(st["problems"][0]["actual"], str(self.checksum("V1_1__add_email.sql")), st)

    def test_directory_problems_are_reported(self):
        with open(self.script("R1__views.sql"), "w") as f:
            f.write("CREATE VIEW v AS SELECT 1;\n")
        with open(self.script("V1.0__same_as_1.sql"), "w") as f:
            f.write("SELECT 1;\n")
        db = self.path("fresh.sqlite")
        d = self.start(db)
        r = d.ctl("up")
        self.assertCtl(r, 1)
        self.assertEqual(r.json["error"]["code"], "directory_invalid", r)
        text = str(r.json)
        self.assertIn("R1__views.sql: a repeatable migration has no version", text)
        self.assertIn("duplicate version", text)
        self.assertEqual(history_rows(db), [])

    def test_new_follows_the_directory(self):
        r = harness.ctl("new", "add_things", "--migrations", self.mdir, json_out=True)
        self.assertCtl(r, 0)
        self.assertTrue(os.path.exists(self.script("V3__add_things.sql")), r)
        self.assertEqual(r.json["up"], self.script("V3__add_things.sql"), r)

    def test_detection_and_format_option(self):
        d = self.start(self.path("auto.sqlite"))
        self.assertEqual(status(d)["format"], "flyway")
        # an explicit format wins over detection
        d2 = self.start(self.path("native.sqlite"), extra_args=["--format", "native"])
        st = status(d2)
        self.assertEqual(st["format"], "native", st)
        self.assertTrue(st["problems"], st)

    def test_repeatable_applied_last_and_again_on_change(self):
        db = self.flyway_db(4)
        shutil.copy(os.path.join(FIXTURE_EXTRA, "R__user_emails.sql"), self.mdir)
        d = self.start(db)
        st = status(d)
        self.assertEqual([(p["version"], p["name"]) for p in st["pending"]], [("2", "create tags"),
                                                                              ("R1", "user emails")], st)
        self.assertEqual(st["latest_version"], "2", "a repeatable is no version to reach")
        r = d.ctl("up")
        self.assertCtl(r, 0)
        self.assertEqual([a["name"] for a in r.json["applied"]], ["create tags", "user emails"], r)
        self.assertEqual(r.json["to_version"], "2", r)
        rows = history_rows(db)
        self.assertEqual(len(rows), 6)
        rep = rows[5]
        self.assertEqual((rep["installed_rank"], rep["version"], rep["description"], rep["type"], rep["script"],
                          rep["success"]), (6, None, "user emails", "SQL", "R__user_emails.sql", 1), rep)
        self.assertEqual(rep["checksum"], self.checksum("R__user_emails.sql"))
        st = status(d)
        self.assertEqual((st["pending"], st["problems"], st["current_version"]), ([], [], "2"), st)
        self.assertEqual(self.assertResult(rpc2(d, "up")[1])["status"], "current")
        self.assertEqual(len(history_rows(db)), 6, "an unchanged repeatable is not run again")
        # changed: pending again (not a checksum mismatch), applied again as a new row
        with open(self.script("R__user_emails.sql"), "a") as f:
            f.write("-- now with a comment\n")
        st = status(d)
        self.assertEqual([p["name"] for p in st["pending"]], ["user emails"], st)
        self.assertEqual(st["problems"], [], st)
        r = d.ctl("up")
        self.assertCtl(r, 0)
        rows = history_rows(db)
        self.assertEqual([(x["installed_rank"], x["version"]) for x in rows[5:]], [(6, None), (7, None)])
        self.assertEqual(rows[6]["checksum"], self.checksum("R__user_emails.sql"))
        self.assertNotEqual(rows[5]["checksum"], rows[6]["checksum"])
        # down reverts versioned migrations only
        r = d.ctl("down")
        self.assertCtl(r, 0)
        self.assertEqual([x["name"] for x in r.json["reverted"]], ["create tags"], r)
        self.assertEqual([x["version"] for x in history_rows(db)], KEYS[:4] + [None, None])

    def test_protocol_versions(self):
        db = self.path("proto.sqlite")
        d = self.start(db)
        # version 1 gets hello, and a clear refusal naming the version to speak for the rest
        self.assertEqual(d.call("hello")["protocol"], 1)
        self.assertEqual(rpc2(d, "hello")[1]["result"]["protocols"], [1, 2])
        for method, params in (("status", None), ("up", {"to": 3}), ("plan", None)):
            _, final = d.rpc(method, params)
            err = self.assertError(final, "invalid_request")
            self.assertEqual(err["protocol_required"], 2, final)
            self.assertIn('"protocol": 2', err["message"])
        self.assertEqual(history_rows(db), [], "a refused request changes nothing")
        # version 2: string keys in params and replies, null for the empty schema
        st = status(d)
        self.assertIsNone(st["current_version"], st)
        self.assertEqual(st["latest_version"], "2", st)
        self.assertEqual(st["gate"]["target"], "2", st)
        _, final = rpc2(d, "plan", {"to": "1.2.9"})
        plan = self.assertResult(final)
        self.assertEqual([x["version"] for x in plan["steps"]], KEYS[:3], plan)
        self.assertIsNone(plan["from_version"], plan)
        events, final = rpc2(d, "up", {"to": "1_2_9"})
        result = self.assertResult(final)
        self.assertEqual(result["to_version"], "1.2.9", result)
        started = [e for e in events if e["event"] == "started"][0]
        self.assertEqual((started["from_version"], started["to_version"]), (None, "1.2.9"), started)
        self.assertEqual([e["version"] for e in events if e["event"] == "migration" and e["phase"] == "applied"],
                         KEYS[:3])
        _, final = rpc2(d, "history", {"limit": 1})
        attempt = self.assertResult(final)["attempts"][0]
        self.assertEqual((attempt["from_version"], attempt["to_version"]), (None, "1.2.9"), attempt)
        # the same version spelled as Flyway allows ("1.2.9.0") is the same version
        _, final = rpc2(d, "plan", {"to": "1.2.9.0"})
        self.assertEqual(self.assertResult(final)["steps"], [])
        # messages spell versions as Flyway does
        _, final = rpc2(d, "up", {"to": "9.9"})
        self.assertIn("there is no migration 9.9 in", self.assertError(final, "unknown_version")["message"])
        # integers and malformed keys are refused in version 2
        for bad in (3, "1.x", "", True):
            _, final = rpc2(d, "up", {"to": bad})
            self.assertError(final, "invalid_params")
        # down to the empty schema is null; 1.2.9 has no undo, so it is refused and says so
        _, final = rpc2(d, "down", {"to": None})
        err = self.assertError(final, "irreversible")
        self.assertEqual(err["version"], "1.2.9", err)
        self.assertEqual([x["version"] for x in history_rows(db)], KEYS[:3])

    def test_migratectl_speaks_version_2(self):
        db = self.flyway_db(2)
        d = self.start(db)
        r = d.ctl("status")
        self.assertCtl(r, 0)
        self.assertEqual(r.json["current_version"], "1.1", r)
        r = d.ctl("status", json_out=False)
        self.assertCtl(r, 0)
        self.assertIn("1.2.10", r.out)
        r = d.ctl("up", "--to", "1.2.10")
        self.assertCtl(r, 0)
        self.assertEqual([a["version"] for a in r.json["applied"]], ["1.2.9", "1.2.10"], r)
        r = d.ctl("down", "--to", "1.2.9")
        self.assertCtl(r, 0)
        self.assertEqual(r.json["to_version"], "1.2.9", r)
        self.assertEqual([x["version"] for x in history_rows(db)], KEYS[:3])

    def test_version_2_on_an_integer_format(self):
        # native: version 1 keeps its integers, version 2 spells the same versions as strings
        mdir = self.path("native")
        os.mkdir(mdir)
        for v, sql in ((1, "CREATE TABLE a (x);"), (2, "CREATE TABLE b (x);")):
            with open(os.path.join(mdir, "%04d_t%d.up.sql" % (v, v)), "w") as f:
                f.write(sql + "\n")
        d = self.daemon(self.path("native.sqlite"), mdir)
        self.assertEqual(d.status()["latest_version"], 2)
        self.assertEqual(status(d)["latest_version"], "2")
        _, final = rpc2(d, "up", {"to": "0001"})
        self.assertEqual(self.assertResult(final)["to_version"], "1")
        self.assertEqual(d.status()["current_version"], 1)
        r = d.ctl("status")
        self.assertEqual(r.json["current_version"], 1, "migratectl speaks version 1 where it suffices")


if __name__ == "__main__":
    harness.main()
