# SPDX-License-Identifier: MIT
"""Failures: a migration failing in the middle of a plan, an edited applied migration, a missing
migration file. The database must end where it started, and the failure must be reported and
recorded precisely."""

import os
import signal
import time

import harness
from harness import applied_rows, applied_versions, schema, tables

# 0003 fails on line 9: the statement before it spans lines 5-7.
FAILING_0003 = """\
-- 0003: a good statement, then one that fails at run time.
-- The failing statement is on line 9.

CREATE TABLE c1 (
        id INTEGER PRIMARY KEY
);

-- next line fails: no such table
INSERT INTO no_such_table VALUES (1);
CREATE TABLE c2 (id INTEGER);
"""
FAILING_0003_LINE = 9

# A syntax error, on line 6 of a statement starting on line 4.
SYNTAX_0003 = """\
-- 0003: a syntax error in the middle of a statement.

CREATE TABLE c0 (id INTEGER);
CREATE TABLE c1 (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL DEFAULTT 'x'
);
"""


def four_migrations(directory, third):
    return harness.write_migrations(directory, {
        1: ("make_a", "CREATE TABLE a (id INTEGER PRIMARY KEY);\nINSERT INTO a VALUES (1);\n", "DROP TABLE a;\n"),
        2: ("make_b", "CREATE TABLE b (id INTEGER PRIMARY KEY,\n        a_id INTEGER);\n", "DROP TABLE b;\n"),
        3: ("make_c", third, "DROP TABLE c2;\nDROP TABLE c1;\n"),
        4: ("make_d", "CREATE TABLE d (id INTEGER PRIMARY KEY);\n", "DROP TABLE d;\n"),
    })


class FailingMigrationTest(harness.TestCase):

    def setUp(self):
        super().setUp()
        self.db = self.path("db.sqlite")

    def assertFailedAttempt(self, attempt, line):
        self.assertEqual(attempt["status"], "failed", attempt)
        self.assertEqual(attempt["direction"], "up", attempt)
        self.assertFileIs(attempt["error_file"], "0003_make_c.up.sql")
        self.assertEqual(attempt["error_line"], line, attempt)
        self.assertTrue(attempt["error"], attempt)
        self.assertTrue(attempt["finished_at"], attempt)

    def test_failure_in_middle_of_plan_rolls_back_everything(self):
        mig = four_migrations(self.path("migrations"), FAILING_0003)
        d = self.daemon(self.db, mig)
        events, final = d.rpc("up")
        err = self.assertError(final, "migration_failed")
        self.assertFileIs(err.get("file"), "0003_make_c.up.sql")
        self.assertEqual(err.get("line"), FAILING_0003_LINE, err)
        self.assertEqual(err.get("version"), 3, err)
        self.assertIn("no_such_table", err["message"])
        self.assertFalse([e for e in events if e.get("event") == "committed"], events)

        # Nothing of 0001/0002 survived.
        self.assertEqual(applied_versions(self.db), [])
        self.assertEqual(schema(self.db), [])
        for t in ("a", "b", "c1", "c2", "d"):
            self.assertNotIn(t, tables(self.db))
        st = d.status()
        self.assertIn(st["current_version"], (0, None))
        self.assertEqual([p["version"] for p in st["pending"]], [1, 2, 3, 4])

        # History: method and table.
        rows = harness.attempts(self.db)
        self.assertEqual(len(rows), 1, rows)
        self.assertFailedAttempt(rows[0], FAILING_0003_LINE)
        self.assertEqual(rows[0]["from_version"], 0)
        hist = d.call("history")["attempts"]
        self.assertEqual(len(hist), 1, hist)
        self.assertFailedAttempt(hist[0], FAILING_0003_LINE)
        r = d.ctl("history")
        self.assertCtl(r, 0)
        self.assertFailedAttempt(r.json["attempts"][0], FAILING_0003_LINE)

        # migratectl: the same failure, exit 1.
        r = d.ctl("up")
        self.assertCtl(r, 1)
        self.assertEqual(r.json["error"]["code"], "migration_failed")
        self.assertEqual(r.json["error"]["line"], FAILING_0003_LINE)
        r = d.ctl("up", json_out=False)
        self.assertCtl(r, 1)
        self.assertIn("0003_make_c.up.sql", r.out + r.err, "human output must name the file")
        self.assertEqual(applied_versions(self.db), [])
        self.assertEqual(len(harness.attempts(self.db)), 3)

        # Per migration: 0001 and 0002 are committed, 0003 fails, the database stays at 2.
        r = d.ctl("up", "--per-migration")
        self.assertCtl(r, 1)
        err = r.json["error"]
        self.assertEqual(err["code"], "migration_failed")
        self.assertEqual(err["version"], 3)
        self.assertEqual(err["line"], FAILING_0003_LINE)
        self.assertEqual(applied_versions(self.db), [1, 2])
        self.assertEqual(harness.current_version(self.db), 2)
        names = tables(self.db)
        for t in ("a", "b"):
            self.assertIn(t, names)
        for t in ("c1", "c2", "d"):
            self.assertNotIn(t, names)
        self.assertEqual(d.status()["current_version"], 2)
        self.assertFailedAttempt(harness.attempts(self.db)[-1], FAILING_0003_LINE)

    def test_per_migration_over_protocol(self):
        mig = four_migrations(self.path("migrations"), FAILING_0003)
        d = self.daemon(self.db, mig)
        events, final = d.rpc("up", {"per_migration": True})
        err = self.assertError(final, "migration_failed")
        started = [e for e in events if e.get("event") == "started"]
        self.assertEqual(len(started), 1, events)
        # each migration commits on its own: the plan as a whole is not all-or-nothing
        self.assertEqual((started[0]["kind"], started[0]["from_version"], started[0]["to_version"],
                          started[0]["total"], started[0]["atomic"]), ("up", 0, 4, 4, False), events)
        self.assertEqual((err["version"], err["line"]), (3, FAILING_0003_LINE))
        self.assertEqual(applied_versions(self.db), [1, 2])
        applied_events = [e["version"] for e in events if e.get("event") == "migration" and e.get("phase") == "applied"]
        self.assertEqual(applied_events, [1, 2], events)

    def test_syntax_error_line(self):
        mig = four_migrations(self.path("migrations"), SYNTAX_0003)
        d = self.daemon(self.db, mig)
        _, final = d.rpc("up")
        err = self.assertError(final, "migration_failed")
        self.assertFileIs(err["file"], "0003_make_c.up.sql")
        # The failing statement starts on line 4; the error is on line 6. Either is the contract.
        self.assertIn(err["line"], (4, 6), err)
        self.assertEqual(applied_versions(self.db), [])
        self.assertEqual(schema(self.db), [])
        self.assertIn(harness.attempts(self.db)[-1]["error_line"], (4, 6))

    def test_failure_after_applied_versions_returns_to_start(self):
        mig = four_migrations(self.path("migrations"), FAILING_0003)
        d = self.daemon(self.db, mig)
        self.assertCtl(d.ctl("up", "--to", 1), 0)
        before = schema(self.db)
        before_rows = applied_rows(self.db)
        _, final = d.rpc("up")
        self.assertError(final, "migration_failed")
        self.assertEqual(schema(self.db), before)
        self.assertEqual(applied_rows(self.db), before_rows)
        c = harness.db_connect(self.db)
        self.assertEqual(c.execute("SELECT count(*) FROM a").fetchone()[0], 1)
        c.close()
        last = harness.attempts(self.db)[-1]
        self.assertEqual((last["status"], last["from_version"]), ("failed", 1))
        # Fix the file: now it goes through.
        with open(os.path.join(mig, "0003_make_c.up.sql"), "w") as f:
            f.write("CREATE TABLE c1 (id INTEGER PRIMARY KEY);\nCREATE TABLE c2 (id INTEGER);\n")
        os.utime(os.path.join(mig, "0003_make_c.up.sql"), (time.time() + 2, time.time() + 2))
        d.signal(signal.SIGHUP)
        harness.wait_until(lambda: "SIGHUP: rescanning" in d.log(), 30, what="the rescan after SIGHUP")
        self.assertTrue(d.alive(), d.log())
        r = d.ctl("up")
        self.assertCtl(r, 0)
        self.assertEqual(applied_versions(self.db), [1, 2, 3, 4])


class ConstraintAndOrderTest(harness.TestCase):

    def test_foreign_key_violation_rolls_back(self):
        mig = harness.write_migrations(self.path("migrations"), {
            1: ("parents", "CREATE TABLE parent (id INTEGER PRIMARY KEY);\n"
                           "CREATE TABLE child (id INTEGER PRIMARY KEY,\n"
                           "        parent_id INTEGER NOT NULL REFERENCES parent (id));\n", "DROP TABLE child;\nDROP TABLE parent;\n"),
            2: ("orphan", "CREATE TABLE other (id INTEGER);\nINSERT INTO child (parent_id) VALUES (42);\n",
                "DELETE FROM child;\nDROP TABLE other;\n"),
        })
        db = self.path("db.sqlite")
        d = self.daemon(db, mig)
        self.assertCtl(d.ctl("up", "--to", 1), 0)
        before = schema(db)
        _, final = d.rpc("up")
        self.assertError(final, "foreign_key_violation")
        self.assertEqual(applied_versions(db), [1])
        self.assertEqual(schema(db), before)
        c = harness.db_connect(db)
        self.assertEqual(c.execute("SELECT count(*) FROM child").fetchone()[0], 0)
        c.close()
        self.assertEqual(harness.attempts(db)[-1]["status"], "failed")
        self.assertCtl(d.ctl("up"), 1)

    def test_out_of_order_pending_migration_refused(self):
        mig = harness.write_migrations(self.path("migrations"), {
            1: ("one", "CREATE TABLE one (id INTEGER);\n", "DROP TABLE one;\n"),
            3: ("three", "CREATE TABLE three (id INTEGER);\n", "DROP TABLE three;\n"),
        })
        db = self.path("db.sqlite")
        d = self.daemon(db, mig)
        self.assertCtl(d.ctl("up"), 0)
        self.assertEqual(d.stop(), 0)
        # A branch merged late: 0002 is older than the newest applied migration.
        harness.write_migrations(mig, {2: ("two", "CREATE TABLE two (id INTEGER);\n", "DROP TABLE two;\n")})
        d = self.daemon(db, mig)
        before = schema(db)
        _, final = d.rpc("up")
        self.assertError(final, "out_of_order")
        self.assertEqual(applied_versions(db), [1, 3])
        self.assertEqual(schema(db), before)


class TamperedMigrationTest(harness.TestCase):

    def setUp(self):
        super().setUp()
        self.examples = harness.example_migrations()
        self.mig = self.copy_examples()
        self.db = self.path("db.sqlite")
        self.first = os.path.join(self.mig, self.examples[0][2])

    def tamper(self):
        with open(self.first, "a") as f:
            f.write("\n-- an innocent-looking edit\n")
        future = time.time() + 5
        os.utime(self.first, (future, future))
        return harness.sha256_file(self.first)

    def assertRefusedEverywhere(self, d, old_sum, new_sum):
        before_schema, before_rows = schema(self.db), applied_rows(self.db)
        n_attempts = len(harness.attempts(self.db))

        _, final = d.rpc("up")
        err = self.assertError(final, "checksum_mismatch")
        self.assertEqual(err.get("version"), 1, err)
        self.assertFileIs(err.get("file"), self.examples[0][2])
        self.assertEqual(err.get("expected"), old_sum, err)
        self.assertEqual(err.get("actual"), new_sum, err)

        r = d.ctl("up")
        self.assertCtl(r, 5)
        self.assertEqual(r.json["error"]["code"], "checksum_mismatch")
        self.assertCtl(d.ctl("up", json_out=False), 5)
        self.assertCtl(d.ctl("status", "--check"), 5)
        self.assertCtl(d.ctl("status", "--check", json_out=False), 5)

        r = d.ctl("verify")
        self.assertCtl(r, 5)
        self.assertIs(r.json["ok"], False, r)
        kinds = [(p.get("kind"), p.get("version")) for p in r.json["problems"]]
        self.assertIn(("checksum_mismatch", 1), kinds)
        r = d.ctl("verify", json_out=False)
        self.assertCtl(r, 5)
        self.assertIn(self.examples[0][2], r.out + r.err, "verify must name the edited file")

        st = d.status()
        self.assertIn(("checksum_mismatch", 1), [(p.get("kind"), p.get("version")) for p in st["problems"]])

        # Nothing changed.
        self.assertEqual(schema(self.db), before_schema)
        self.assertEqual(applied_rows(self.db), before_rows)
        self.assertFalse([a for a in harness.attempts(self.db)[n_attempts:] if a["status"] == "succeeded"])

    def test_edited_applied_file_refused(self):
        d = self.daemon(self.db, self.mig)
        self.assertCtl(d.ctl("up", "--to", 3), 0)
        old_sum = harness.sha256_file(self.first)
        self.assertEqual(applied_rows(self.db)[0]["checksum"], old_sum)
        with open(self.first, "rb") as f:
            original = f.read()
        new_sum = self.tamper()
        self.assertNotEqual(old_sum, new_sum)
        self.assertRefusedEverywhere(d, old_sum, new_sum)
        self.assertEqual(harness.current_version(self.db), 3)

        # Restoring the file's bytes makes it acceptable again.
        with open(self.first, "wb") as f:
            f.write(original)
        os.utime(self.first, (time.time() + 10, time.time() + 10))
        r = d.ctl("verify")
        self.assertCtl(r, 0)
        self.assertCtl(d.ctl("up"), 0)
        self.assertEqual(harness.current_version(self.db), self.examples[-1][0])

    def test_file_rewritten_in_place_within_one_mtime_tick(self):
        # Same inode, same size, same mtime: only the content differs. The daemon must not reuse
        # what it read of the file before, on the very next request (no SIGHUP).
        d = self.daemon(self.db, self.mig)
        self.assertCtl(d.ctl("up", "--to", 3), 0)
        self.assertEqual(d.status()["problems"], [])
        _, final = d.rpc("plan")   # the job side has read the directory too
        old_sum = harness.sha256_file(self.first)
        st = os.stat(self.first)
        with open(self.first, "r+b") as f:
            data = f.read()
            flipped = data.replace(b"CREATE", b"create", 1)
            self.assertNotEqual(flipped, data)
            f.seek(0)
            f.write(flipped)
        os.utime(self.first, ns=(st.st_atime_ns, st.st_mtime_ns))
        after = os.stat(self.first)
        self.assertEqual((after.st_ino, after.st_size, after.st_mtime_ns), (st.st_ino, st.st_size, st.st_mtime_ns))
        new_sum = harness.sha256_file(self.first)
        self.assertNotEqual(old_sum, new_sum)
        self.assertRefusedEverywhere(d, old_sum, new_sum)

    def test_edited_file_found_by_a_restarted_daemon(self):
        d = self.daemon(self.db, self.mig)
        self.assertCtl(d.ctl("up", "--to", 3), 0)
        old_sum = harness.sha256_file(self.first)
        self.assertEqual(d.stop(), 0)
        new_sum = self.tamper()
        d2 = self.daemon(self.db, self.mig)
        self.assertRefusedEverywhere(d2, old_sum, new_sum)

    def test_missing_applied_file(self):
        d = self.daemon(self.db, self.mig)
        self.assertCtl(d.ctl("up", "--to", 3), 0)
        self.assertEqual(d.stop(), 0)
        v2 = [m for m in self.examples if m[0] == 2][0]
        os.unlink(os.path.join(self.mig, v2[2]))
        os.unlink(os.path.join(self.mig, v2[3]))
        before = schema(self.db)
        d2 = self.daemon(self.db, self.mig)
        st = d2.status()
        self.assertIn(("missing_file", 2), [(p.get("kind"), p.get("version")) for p in st["problems"]])
        _, final = d2.rpc("up")
        self.assertIn(final.get("error", {}).get("code"), ("missing_migration",), final)
        r = d2.ctl("verify")
        self.assertNotEqual(r.rc, 0)
        self.assertIs(r.json["ok"], False)
        self.assertEqual(schema(self.db), before)
        self.assertEqual(harness.current_version(self.db), 3)


class RefusedBeforeAnyChangeTest(harness.TestCase):
    """A job that cannot succeed is refused before it would stop anything, with its own code."""

    def setUp(self):
        super().setUp()
        if os.geteuid() != 0:
            self.skipTest("mounting a tmpfs needs root")

    def test_full_database_filesystem_is_disk_full(self):
        mig = harness.write_migrations(self.path("migrations"), {
            1: ("one", "CREATE TABLE one (id INTEGER PRIMARY KEY);\n", "DROP TABLE one;\n")})
        small = self.path("small")
        os.mkdir(small)
        db = os.path.join(small, "db.sqlite")
        d = self.daemon(db, mig, extra_args=["--backup-dir", self.path("backups")], start=False)
        # in the daemon's own mount namespace: a 2 MiB tmpfs holding the database, filled but for
        # a few hundred KiB (less than a migration needs for its WAL)
        d.argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                  'mount -t tmpfs -o size=2m tmpfs "$0" && head -c 1800000 /dev/zero > "$0/fill" && exec "$@"',
                  small] + d.argv
        d.start()
        r = d.ctl("up")
        self.assertCtl(r, 1)
        err = r.json["error"]
        self.assertEqual(err["code"], "disk_full", err)
        self.assertIn("is full", err["message"])
        self.assertIn("nothing was stopped or changed", err["message"])
        self.assertEqual(d.status()["current_version"], None)


if __name__ == "__main__":
    harness.main()
