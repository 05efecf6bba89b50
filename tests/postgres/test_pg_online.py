#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Online or breaking on PostgreSQL: each statement classified from PostgreSQL's own parse tree
(libpg_query), shown by plan; the PostgreSQL lint rules (an index built without CONCURRENTLY, a
NOT NULL column without a default) and the data-loss ones; directives override. Run through the
one-shot mode against a real PostgreSQL 15."""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from pgharness import PgTestCase, harness  # noqa: E402
from test_postgres import write  # noqa: E402


class TestPgOnline(PgTestCase):
    def plan(self):
        r = harness.ctl("--database", self.cluster.conninfo(self.dbname), "--migrations", self.migrations, "plan",
                        json_out=True, env={"STATE_DIRECTORY": os.path.join(self.workdir, "state-oneshot")})
        self.assertEqual(r.rc, 0, r)
        if "without libpg_query" in (r.json["steps"][0].get("reason") or ""):
            if os.environ.get("CI") == "true":
                self.fail("migrated was built without libpg_query (Debian: libpg-query-dev)")
            raise unittest.SkipTest("migrated was built without libpg_query (Debian: libpg-query-dev)")
        return r.json

    def test_statements_classified_from_the_parse_tree(self):
        write(self.migrations, [
            (1, "additive", "CREATE TABLE users (id bigint PRIMARY KEY, name text);\n"
                            "ALTER TABLE users ADD COLUMN age int;\n"
                            "ALTER TABLE users ADD COLUMN flag boolean NOT NULL DEFAULT false;\n"
                            "CREATE INDEX CONCURRENTLY users_name ON users (name);\n"
                            "CREATE VIEW v AS SELECT id FROM users;\n"
                            "INSERT INTO users (id, name) VALUES (1, 'a');\n", "DROP TABLE users CASCADE;\n"),
            (2, "breaking", "ALTER TABLE users DROP COLUMN age;\nALTER TABLE users RENAME COLUMN name TO n;\n"
                            "ALTER TABLE users ALTER COLUMN flag TYPE int USING flag::int;\n"
                            "ALTER TABLE users ADD COLUMN seen timestamptz DEFAULT now();\n"
                            "UPDATE users SET n = 'b';\nDROP VIEW v;\n", None),
        ])
        p = self.plan()
        rules = [[(s["class"], s["rule"]) for s in st["statements"]] for st in p["steps"]]
        self.assertEqual(rules[0], [("online", "create"), ("online", "add-column"), ("online", "add-column"),
                                    ("online", "create"), ("online", "create"), ("online", "insert")])
        self.assertEqual(rules[1], [("breaking", "drop-column"), ("breaking", "rename-column"),
                                    ("breaking", "alter-column-type"), ("breaking", "add-column-rewrite"),
                                    ("breaking", "update"), ("breaking", "drop")])
        self.assertEqual(p["class"], "breaking")
        self.assertEqual(self.sql("SELECT count(*) FROM pg_tables WHERE tablename = 'users'"), [["0"]],
                         "planning changes nothing")

    def test_lint_rules_of_postgres(self):
        write(self.migrations, [
            # an index on, or a NOT NULL column added to, a table of the same file is harmless
            (1, "t", "CREATE TABLE t (id bigint PRIMARY KEY, a int);\nCREATE INDEX t_a ON t (a);\n"
                     "ALTER TABLE t ADD COLUMN c int NOT NULL;\n", "DROP TABLE t;\n"),
            (2, "nn", "ALTER TABLE t ADD COLUMN b int NOT NULL;\nCREATE INDEX t_b ON t (b);\n",
             "ALTER TABLE t DROP COLUMN b;\n"),
            (3, "gone", "-- migrated: accept drop-table\nDROP TABLE t;\n", None),
        ])
        p = self.plan()
        found = sorted((f["rule"], f["severity"], f["accepted"]) for f in p["findings"])
        self.assertEqual(found, [("drop-table", "error", True), ("index-not-concurrent", "warning", False),
                                 ("no-down", "warning", False), ("not-null-without-default", "error", False)])
        self.assertTrue(p["lint_errors"])

    def test_directive_overrides(self):
        write(self.migrations, [
            (1, "t", "CREATE TABLE t (id bigint PRIMARY KEY, a int);\n", "DROP TABLE t;\n"),
            (2, "backfill", "-- migrated: online\nUPDATE t SET a = 0 WHERE a IS NULL;\n", "SELECT 1;\n"),
        ])
        p = self.plan()
        s = p["steps"][1]
        self.assertEqual((s["class"], s["override"], s["detected"]), ("online", "online", "breaking"))
        self.assertEqual(p["class"], "online")

    def dependent(self):
        """An exec: dependent whose state is a file: running while it exists; stopping it is logged."""
        flag, log = os.path.join(self.workdir, "running"), os.path.join(self.workdir, "stops")
        open(flag, "w").close()
        conf = os.path.join(self.workdir, "deps.conf")
        with open(conf, "w") as f:
            f.write("[units]\nunits = exec:app\n[exec.app]\nstart = touch %s\nstop = rm -f %s && echo stop >> %s\n"
                    "check = test -f %s\n" % (flag, flag, log, flag))
        return conf, log

    def test_online_plan_keeps_the_dependent_running_breaking_stops_it(self):
        write(self.migrations, [(1, "t", "CREATE TABLE t (id bigint PRIMARY KEY);\n", "DROP TABLE t;\n")])
        self.plan()  # skips without libpg_query
        conf, stops = self.dependent()
        d = self.daemon(extra=["--config", conf])
        r = d.ctl("up")
        self.assertEqual(r.rc, 0, r)
        self.assertTrue(r.json.get("dependents_kept_running"), r.json)
        self.assertFalse(os.path.exists(stops), "the dependent was stopped")
        write(self.migrations, [(2, "drop", "ALTER TABLE t DROP COLUMN id;\n", None)])
        r = d.ctl("up")
        self.assertEqual(r.rc, 0, r)
        self.assertFalse(r.json.get("dependents_kept_running"), r.json)
        with open(stops) as f:
            self.assertEqual(f.read(), "stop\n")

    def test_online_plan_under_a_competing_lock_retries_and_never_stops_the_dependent(self):
        write(self.migrations, [(1, "t", "CREATE TABLE t (id bigint PRIMARY KEY);\n", "DROP TABLE t;\n")])
        self.plan()  # skips without libpg_query
        conf, stops = self.dependent()
        d = self.daemon(extra=["--config", conf, "--busy-timeout", "100", "--skip-backup"])
        self.assertEqual(d.ctl("up").rc, 0)
        write(self.migrations, [(2, "email", "ALTER TABLE t ADD COLUMN email text;\n", None)])
        other = self.cluster.session(self.dbname)
        self.addCleanup(other.close)
        other.run("BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE; SELECT 'locked';", "locked")
        r = d.ctl("up")
        self.assertEqual(r.rc, 6, r)  # busy: lock_timeout, retried, given up; nothing changed
        self.assertIn("gave up after", r.json["error"]["message"])
        other.run("ROLLBACK; SELECT 'done';", "done")
        r = d.ctl("up")
        self.assertEqual(r.rc, 0, r)
        self.assertTrue(r.json.get("dependents_kept_running"), r.json)
        self.assertFalse(os.path.exists(stops), "the dependent was stopped")


if __name__ == "__main__":
    harness.main()
