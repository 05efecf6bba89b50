#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The PostgreSQL backend against a real server: the same engine, jobs and history as on SQLite."""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from pgharness import PgTestCase, harness  # noqa: E402

BASIC = [
    (1, "users", "CREATE TABLE users (id bigint PRIMARY KEY, name text NOT NULL);\n", "DROP TABLE users;\n"),
    (2, "posts", "CREATE TABLE posts (id bigint PRIMARY KEY,\n  user_id bigint REFERENCES users (id));\n",
     "DROP TABLE posts;\n"),
]


def write(directory, migrations):
    for version, name, up, down in migrations:
        with open(os.path.join(directory, "%04d_%s.up.sql" % (version, name)), "w") as f:
            f.write(up)
        if down is not None:
            with open(os.path.join(directory, "%04d_%s.down.sql" % (version, name)), "w") as f:
                f.write(down)


class TestEngineOnPostgres(PgTestCase):
    def tables(self):
        return sorted(r[0] for r in self.sql("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))

    def test_up_status_history_verify_down(self):
        write(self.migrations, BASIC)
        d = self.daemon()
        st = d.status()
        self.assertEqual(len(st["pending"]), 2, st)
        res = d.call("up")
        self.assertEqual(res["status"], "applied", res)
        self.assertEqual(res["to_version"], 2)
        self.assertEqual(self.tables(), ["migrated_attempts", "migrated_hosts", "migrated_meta", "migrated_schema", "posts", "users"])
        self.assertEqual(self.sql("SELECT version, name FROM migrated_schema ORDER BY version"),
                         [["1", "users"], ["2", "posts"]])
        self.assertEqual(d.status()["current_version"], 2)
        hist = d.call("history")["attempts"]
        self.assertEqual(hist[0]["status"], "succeeded")
        self.assertEqual(d.call("verify")["ok"], True)
        self.assertEqual(d.call("up")["status"], "current")
        res = d.call("down", {"to": 1})
        self.assertEqual(res["to_version"], 1, res)
        self.assertNotIn("posts", self.tables())
        # the backup taken before each change is a pg_dump archive, listed with the others
        backups = d.call("backups")["backups"]
        self.assertGreaterEqual(len(backups), 2, backups)
        with open(backups[0]["path"], "rb") as f:
            self.assertEqual(f.read(5), b"PGDMP")
        self.assertEqual(d.call("lock_check")["relation_locks"], [])
        self.assertEqual(d.stop(), 0)

    def test_failure_rolls_back_the_whole_plan_and_names_file_and_line(self):
        write(self.migrations, BASIC + [
            (3, "broken", "ALTER TABLE users ADD COLUMN email text;\n\nSELECT 1;\nSELECT nosuchcolumn\n  FROM users;\n",
             None)])
        d = self.daemon()
        _, final = d.rpc("up")
        err = harness.error_of(final)
        self.assertEqual(err["code"], "migration_failed", err)
        self.assertEqual(err["file"], "0003_broken.up.sql")
        self.assertEqual(err["line"], 4, err)
        self.assertIn("0003_broken.up.sql:4:", err["message"])
        self.assertIn("nosuchcolumn", err["message"])
        # one transaction for the whole plan: 1 and 2 are not there either
        self.assertEqual(self.tables(), ["migrated_attempts", "migrated_hosts", "migrated_meta", "migrated_schema"])
        self.assertEqual(self.sql("SELECT count(*) FROM migrated_schema"), [["0"]])
        self.assertEqual(d.call("history")["attempts"][0]["status"], "failed")

    def test_no_transaction_create_index_concurrently(self):
        write(self.migrations, BASIC[:1] + [
            (2, "idx", "-- migrated: no-transaction\nCREATE INDEX CONCURRENTLY users_name ON users (name);\n",
             "-- migrated: no-transaction\nDROP INDEX CONCURRENTLY users_name;\n")])
        d = self.daemon()
        res = d.call("up")
        self.assertEqual(res["to_version"], 2, res)
        self.assertEqual(self.sql("SELECT indisvalid FROM pg_index WHERE indexrelid = 'users_name'::regclass"),
                         [["t"]])
        self.assertEqual(d.call("down", {"to": 1})["to_version"], 1)
        self.assertEqual(self.sql("SELECT count(*) FROM pg_class WHERE relname = 'users_name'"), [["0"]])

    def test_backup_restore_round_trip_keeps_history(self):
        write(self.migrations, BASIC + [
            (3, "kinds", "CREATE TYPE kind AS ENUM ('a', 'b');\nCREATE TABLE k (v kind);\n"
                         "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1; $$;\n",
             "DROP TABLE k;\nDROP TYPE kind;\nDROP FUNCTION f();\n")])
        d = self.daemon()
        self.assertEqual(d.call("up", {"to": 1})["to_version"], 1)
        self.sql("INSERT INTO users VALUES (1, 'tab\there'), (2, E'back\\\\slash')")
        rows = self.sql("SELECT id, md5(name) FROM users ORDER BY id")
        manual = d.call("backup")["backup"]
        self.assertEqual(manual["version"], 1, manual)
        self.assertEqual(d.call("up")["to_version"], 3)
        self.sql("INSERT INTO users VALUES (3, 'after the backup')")
        before = self.sql("SELECT count(*) FROM migrated_attempts")
        res = d.call("restore", {"backup": manual["file"]})
        self.assertEqual((res["status"], res["to_version"]), ("restored", 1), res)
        # the schema and data of the backup; nothing created after it survives
        self.assertEqual(self.tables(), ["migrated_attempts", "migrated_hosts", "migrated_meta", "migrated_schema", "users"])
        self.assertEqual(self.sql("SELECT id, md5(name) FROM users ORDER BY id"), rows)
        self.assertEqual(self.sql("SELECT count(*) FROM pg_type WHERE typname = 'kind'"), [["0"]])
        self.assertEqual(self.sql("SELECT count(*) FROM pg_proc WHERE proname = 'f'"), [["0"]])
        # the live history survives and records the restore
        self.assertEqual(self.sql("SELECT count(*) FROM migrated_attempts"), [[str(int(before[0][0]) + 1)]])
        self.assertEqual(d.call("history")["attempts"][0]["direction"], "restore")
        self.assertEqual(d.status()["current_version"], 1)
        self.assertEqual(d.call("up")["to_version"], 3)
        self.assertEqual(d.stop(), 0)  # a clean exit (and, under a sanitizer, no leak)

    def test_sessions_ended_by_the_server_are_reconnected(self):
        write(self.migrations, BASIC)
        d = self.daemon()
        self.assertEqual(d.call("up", {"to": 1})["to_version"], 1)
        ended = self.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                         "WHERE application_name LIKE 'migrated%'")
        self.assertEqual(len(ended), 3, ended)  # the job's connection, the reader's and the host's
        self.assertEqual(d.call("up")["to_version"], 2)
        self.assertEqual(d.status()["current_version"], 2)
        # the host's session comes back with its liveness lock
        harness.wait_until(lambda: "Reconnected: host x is alive again" in d.log(), 60, what="the host's session")
        self.assertEqual([h["alive"] for h in d.status()["hosts"]], [True])
        self.assertEqual(len(d.call("history")["attempts"]), 2)

    def test_statements_are_split_as_psql_splits_them(self):
        # semicolons inside quotes, dollar quotes, comments and a BEGIN ATOMIC body are not ends
        write(self.migrations, BASIC[:1] + [(2, "bodies", """CREATE TABLE notes (body text DEFAULT 'a;b');
/* a comment; with a semicolon */
CREATE FUNCTION twice(i int) RETURNS int LANGUAGE plpgsql AS $body$
BEGIN
  RETURN i * 2; -- here;
END;
$body$;
CREATE FUNCTION kind(i int) RETURNS text LANGUAGE sql
BEGIN ATOMIC
  SELECT CASE WHEN i > 0 THEN 'pos' ELSE 'neg' END;
END;
INSERT INTO notes VALUES (E'it\\'s; fine'), ('x'';y');
""", None)])
        d = self.daemon()
        self.assertEqual(d.call("up")["to_version"], 2)
        self.assertEqual(self.sql("SELECT twice(21), kind(-1)"), [["42", "neg"]])
        self.assertEqual(self.sql("SELECT count(*) FROM notes"), [["2"]])

    def test_a_script_setting_search_path_does_not_move_the_bookkeeping(self):
        self.sql("CREATE SCHEMA other")
        write(self.migrations, BASIC[:1] + [(2, "elsewhere", "SET search_path = other;\nCREATE TABLE t (x int);\n",
                                             "SET search_path = other;\nDROP TABLE t;\n")])
        d = self.daemon()
        self.assertEqual(d.call("up")["to_version"], 2)
        self.assertEqual(self.sql("SELECT schemaname, tablename FROM pg_tables WHERE tablename LIKE 'migrated%' "
                                  "OR tablename = 't' ORDER BY 2"),
                         [["public", "migrated_attempts"], ["public", "migrated_hosts"], ["public", "migrated_meta"], ["public", "migrated_schema"],
                          ["other", "t"]])
        self.assertEqual(self.sql("SELECT max(version) FROM public.migrated_schema"), [["2"]])
        self.assertEqual(d.call("down", {"to": 1})["to_version"], 1)
        self.assertEqual(d.status()["current_version"], 1)

    def test_one_daemon_per_state_directory(self):
        write(self.migrations, BASIC)
        self.daemon(name="same")
        second = self.daemon(name="same", start=False)
        second.start(wait=False)
        self.assertNotEqual(second.wait(), 0)
        self.assertIn("Another migrated serves pg-", second.log())

    def test_prisma_directory_for_sqlite_is_refused_clearly(self):
        os.makedirs(os.path.join(self.migrations, "20240101000000_init"))
        with open(os.path.join(self.migrations, "20240101000000_init", "migration.sql"), "w") as f:
            f.write("CREATE TABLE a (id int);\n")
        with open(os.path.join(self.migrations, "migration_lock.toml"), "w") as f:
            f.write('provider = "sqlite"\n')
        d = self.daemon()
        problems = [p["message"] for p in d.status()["problems"]]
        self.assertIn('migration_lock.toml: the provider is "sqlite", but migrated manages a PostgreSQL database '
                      'here (provider = "postgresql")', problems)
        with self.assertRaises(harness.HarnessError) as e:
            d.call("up")
        self.assertIn("directory_invalid", str(e.exception))
        self.assertEqual(self.sql("SELECT count(*) FROM pg_tables WHERE tablename = 'a'"), [["0"]])

    def test_status_drift_says_why_when_the_replay_cannot_run(self):
        """diff works on PostgreSQL (tests/postgres/test_pg_drift.py); when the applied scripts do
        not replay on an empty database (one needs a table made by hand), diff fails with
        migration_failed naming the file, and status --drift carries that reason, not a guess."""
        self.sql("CREATE TABLE legacy (id int)")
        harness.write_migrations(self.migrations, {
            1: ("legacy", "ALTER TABLE legacy ADD COLUMN note text;\n", "ALTER TABLE legacy DROP COLUMN note;\n")})
        d = self.daemon()
        d.call("up")
        _, final = d.rpc("diff")
        self.assertEqual(final["error"]["code"], "migration_failed", final)
        self.assertIn("0001_legacy.up.sql", final["error"]["message"])
        st = d.call("status", {"drift": True})
        self.assertIsNone(st["drift"], st)
        self.assertIn("0001_legacy.up.sql", st["drift_error"])
        r = d.ctl("diff", json_out=False)
        self.assertEqual(r.rc, 1, r)

    def test_transaction_pooler_is_refused_with_the_hint(self):
        write(self.migrations, BASIC)
        through = self.cluster.start_pgbouncer("transaction")
        d = harness.Daemon(self.workdir, migrations=self.migrations,
                           extra_args=["--connection", through(self.dbname), "--state-dir",
                                       os.path.join(self.workdir, "state-pooled")])
        self.addCleanup(d.kill)
        d.start(wait=False)
        self.assertNotEqual(d.wait(), 0)
        self.assertIn("connection pooler", d.log())
        self.assertIn("connect to PostgreSQL directly", d.log())
        self.assertEqual(self.tables(), [])

    def test_password_file_is_used_and_never_logged(self):
        write(self.migrations, BASIC[:1])
        self.cluster.psql("postgres", "CREATE ROLE app LOGIN PASSWORD 'sekret-pw'")
        self.cluster.psql("postgres", "ALTER DATABASE %s OWNER TO app" % self.dbname)
        self.cluster.psql(self.dbname, "ALTER SCHEMA public OWNER TO app")
        self.cluster.require_password("app")
        pw = os.path.join(self.workdir, "pw")
        with open(pw, "w") as f:
            f.write("sekret-pw\n")
        conninfo = self.cluster.conninfo(self.dbname, user="app") + " password=wrong-in-conninfo"
        d = harness.Daemon(self.workdir, migrations=self.migrations,
                           extra_args=["--connection", conninfo, "--password-file", pw, "--state-dir",
                                       os.path.join(self.workdir, "state-pw")])
        self.addCleanup(d.kill)
        d.start()
        self.assertEqual(d.call("up")["to_version"], 1)
        self.assertEqual(self.sql("SELECT tableowner FROM pg_tables WHERE tablename = 'users'"), [["app"]])
        # lock-check too goes through the daemon's own authenticated connection
        self.assertEqual(d.call("lock_check")["verdict"], "free")
        d.stop()
        self.assertNotIn("sekret-pw", d.log())
        self.assertNotIn("wrong-in-conninfo", d.log())
        self.assertIn("user='app'", d.log())


if __name__ == "__main__":
    harness.main()
