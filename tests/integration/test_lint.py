# SPDX-License-Identifier: MIT
"""migratectl lint [DIR]: the destructive-change lint, without a daemon or a database (migrated
--one-shot on a scratch database). Each rule fires on a fixture and is silent on a safe one; an
accept comment in the file silences it; an unaccepted error exits 10 (EXIT_LINT); --json; plan
shows the same findings."""

import json
import os

import harness as H
from harness import ctl

EXIT_LINT = 10  # client/exit-codes.h

SAFE = {
    1: ("items", "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, parent INTEGER);\n",
        "DROP TABLE items;\n"),
    2: ("items_note", "ALTER TABLE items ADD COLUMN note TEXT;\nCREATE INDEX items_name ON items (name);\n",
        "DROP INDEX items_name;\nALTER TABLE items DROP COLUMN note;\n"),
}


class LintTest(H.TestCase):

    def lint(self, migrations, *args, rc=None):
        d = self.path("m%d" % len(os.listdir(self.tmp)))
        H.write_migrations(d, migrations)
        r = ctl("lint", d, *args, json_out=not args, timeout=60,
                env={"MIGRATED_SOCKET": self.path("no-daemon.sock")})
        if rc is not None:
            self.assertEqual(r.rc, rc, r)
        return r

    def rules(self, migrations, rc=None):
        r = self.lint(migrations, rc=rc)
        return sorted((f["rule"], f["severity"], f["accepted"]) for f in r.json["findings"])

    def test_safe_directory_is_silent(self):
        self.assertEqual(self.rules(SAFE, rc=0), [])

    def test_drop_table(self):
        m = dict(SAFE) | ({3: ("drop", "DROP TABLE items;\n", "CREATE TABLE items (id INTEGER PRIMARY KEY);\n")})
        self.assertEqual(self.rules(m, rc=EXIT_LINT), [("drop-table", "error", False)])

    def test_drop_column(self):
        m = dict(SAFE) | ({3: ("drop_note", "ALTER TABLE items DROP COLUMN note;\n",
                              "ALTER TABLE items ADD COLUMN note TEXT;\n")})
        self.assertEqual(self.rules(m, rc=EXIT_LINT), [("drop-column", "error", False)])

    def test_rebuild_keeping_every_column_is_silent_dropping_one_fires(self):
        keep = ("CREATE TABLE items_new (id INTEGER PRIMARY KEY, name TEXT NOT NULL DEFAULT '', parent INTEGER, "
                "note TEXT);\nINSERT INTO items_new SELECT id, coalesce(name, ''), parent, note FROM items;\n"
                "DROP TABLE items;\nALTER TABLE items_new RENAME TO items;\n")
        self.assertEqual(self.rules(dict(SAFE) | ({3: ("rebuild", keep, "SELECT 1;\n")}), rc=0), [])
        lose = ("CREATE TABLE items_new (id INTEGER PRIMARY KEY, name TEXT);\n"
                "INSERT INTO items_new SELECT id, name FROM items;\nDROP TABLE items;\n"
                "ALTER TABLE items_new RENAME TO items;\n")
        self.assertEqual(self.rules(dict(SAFE) | ({3: ("rebuild", lose, "SELECT 1;\n")}), rc=EXIT_LINT),
                         [("rebuild-drops-column", "error", False), ("rebuild-drops-column", "error", False)])

    def test_rebuild_with_foreign_keys_on_and_a_cascade(self):
        m = dict(SAFE) | ({
            3: ("children", "CREATE TABLE children (id INTEGER PRIMARY KEY, "
                            "item INTEGER REFERENCES items (id) ON DELETE CASCADE);\n", "DROP TABLE children;\n"),
            4: ("rebuild", "-- migrated: no-transaction\nPRAGMA foreign_keys = ON;\n"
                           "CREATE TABLE items_new (id INTEGER PRIMARY KEY, name TEXT, parent INTEGER, note TEXT);\n"
                           "INSERT INTO items_new SELECT * FROM items;\nDROP TABLE items;\n"
                           "ALTER TABLE items_new RENAME TO items;\n", "SELECT 1;\n"),
        })
        self.assertEqual(self.rules(m, rc=EXIT_LINT), [("rebuild-cascade", "error", False)])
        # the same rebuild with foreign keys off (migrated's default) is silent
        m[4] = ("rebuild", m[4][1].replace("PRAGMA foreign_keys = ON;\n", ""), "SELECT 1;\n")
        self.assertEqual(self.rules(m, rc=0), [])

    def test_no_down_is_a_warning(self):
        m = dict(SAFE) | ({3: ("settings", "CREATE TABLE settings (k TEXT PRIMARY KEY);\n", None)})
        self.assertEqual(self.rules(m, rc=0), [("no-down", "warning", False)])

    def test_accept_comment(self):
        m = dict(SAFE) | ({3: ("drop", "-- migrated: accept drop-table\nDROP TABLE items;\n",
                              "CREATE TABLE items (id INTEGER PRIMARY KEY);\n")})
        self.assertEqual(self.rules(m, rc=0), [("drop-table", "error", True)])
        # accepting another rule accepts nothing here
        m[3] = ("drop", "-- migrated: accept drop-column\nDROP TABLE items;\n", "SELECT 1;\n")
        self.assertEqual(self.rules(m, rc=EXIT_LINT), [("drop-table", "error", False)])

    def test_human_output_and_json(self):
        m = dict(SAFE) | ({3: ("drop", "DROP TABLE items;\n", "CREATE TABLE items (id INTEGER PRIMARY KEY);\n")})
        r = self.lint(m, "--color", "never")
        self.assertEqual(r.rc, EXIT_LINT, r)
        self.assertIn("error   drop-table", r.out)
        self.assertIn("0003_drop.up.sql: DROP TABLE items loses its data", r.out)
        self.assertIn("1 error, 0 warnings, 0 accepted in their files", r.out)
        r = self.lint(m, "--json")
        f = r.json["findings"][0]
        self.assertEqual({k: f[k] for k in ("rule", "severity", "file", "accepted", "version")},
                         {"rule": "drop-table", "severity": "error", "file": "0003_drop.up.sql", "accepted": False,
                          "version": 3})
        self.assertTrue(r.json["lint_errors"])

    def test_expand_contract_example_lints_clean(self):
        d = os.path.join(H.SRC_ROOT, "examples", "expand-contract")
        r = ctl("lint", d, json_out=True, timeout=60)
        self.assertEqual(r.rc, 0, r)
        self.assertEqual([(f["rule"], f["accepted"]) for f in r.json["findings"]], [("drop-column", True)])
        self.assertEqual([s["class"] for s in r.json["steps"]], ["online", "online", "online", "breaking"])

    def test_postgres_dialect_without_a_server(self):
        d = self.path("pg")
        H.write_migrations(d, {
            1: ("t", "CREATE TABLE t (id bigint PRIMARY KEY, a int);\n", "DROP TABLE t;\n"),
            2: ("idx", "CREATE INDEX t_a ON t (a);\nALTER TABLE t ADD COLUMN b int NOT NULL;\n",
                "DROP INDEX t_a;\nALTER TABLE t DROP COLUMN b;\n"),
        })
        r = ctl("lint", "--postgres", d, json_out=True, timeout=60)
        if "without libpg_query" in json.dumps(r.json):
            if os.environ.get("CI") == "true":
                self.fail("migrated was built without libpg_query (Debian: libpg-query-dev)")
            self.skipTest("migrated was built without libpg_query")
        self.assertEqual(r.rc, EXIT_LINT, r)
        self.assertEqual(sorted((f["rule"], f["severity"]) for f in r.json["findings"]),
                         [("index-not-concurrent", "warning"), ("not-null-without-default", "error")])

    def test_usage(self):
        r = ctl("lint", self.path("nowhere"), timeout=30)
        self.assertEqual(r.rc, 1, r)
        self.assertIn("cannot read the migrations directory", r.err)
        r = ctl("--database", self.path("x.sqlite"), "lint", self.path("nowhere"), timeout=30)
        self.assertEqual(r.rc, 2, r)

    def test_plan_shows_the_findings(self):
        m = dict(SAFE) | ({3: ("drop", "DROP TABLE items;\n", "CREATE TABLE items (id INTEGER PRIMARY KEY);\n")})
        d = self.path("mig")
        H.write_migrations(d, m)
        db = self.path("db.sqlite")
        r = ctl("--database", db, "--migrations", d, "plan", timeout=60)
        self.assertEqual(r.rc, 0, r)
        self.assertIn("Lint:", r.out)
        self.assertIn("drop-table", r.out)
        self.assertEqual(H.applied_versions(db), [])


if __name__ == "__main__":
    H.main()
