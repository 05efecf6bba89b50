#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Seeds and reset on PostgreSQL: seed files applied after the migrations, recorded in
migrated_seeds, retried while another session holds a table lock (a real psql session's LOCK
TABLE, released only once the daemon logged its second retry); reset drops the schema's objects
but migrated's history, applies every migration and the seeds."""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from pgharness import PgTestCase, harness  # noqa: E402
from test_postgres import BASIC, write  # noqa: E402

SEEDS = {
    "001_users.sql": "INSERT INTO users (id, name) VALUES (1, 'ada'), (2, 'bob');\n",
    "002_posts.sql": "INSERT INTO posts (id, user_id) VALUES (10, 1), (11, 2);\n",
}


class TestSeedsOnPostgres(PgTestCase):
    def start(self, seeds=SEEDS, conf=""):
        write(self.migrations, BASIC)
        self.seeds = os.path.join(self.workdir, "seeds")
        os.makedirs(self.seeds, exist_ok=True)
        for name, sql in seeds.items():
            self.write_seed(name, sql)
        config = os.path.join(self.workdir, "migrated.conf")
        with open(config, "w") as f:
            f.write("[seeds]\nretries = 5\nbackoff_ms = 100\n" + conf)
        return self.daemon(extra=["--config", config, "--busy-timeout", "100"])

    def write_seed(self, name, sql):
        with open(os.path.join(self.seeds, name), "w") as f:
            f.write(sql)

    def state(self):
        return (self.sql("SELECT count(*) FROM users"), self.sql("SELECT count(*) FROM posts"),
                self.sql("SELECT name, checksum, applied_at FROM migrated_seeds ORDER BY name"))

    def test_up_seed_then_a_rerun_changes_nothing(self):
        d = self.start()
        r = harness.ctl("up", "--seed", sock=d.socket, json_out=True)
        self.assertEqual(r.rc, 0, r)
        self.assertEqual([m["version"] for m in r.json["applied"]], [1, 2], r)
        self.assertEqual(r.json["seeds"]["applied"], ["001_users.sql", "002_posts.sql"], r)
        before = self.state()
        self.assertEqual(before[:2], ([["2"]], [["2"]]))
        r = harness.ctl("seed", sock=d.socket, json_out=True)
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.json["seeds"]["skipped"], ["001_users.sql", "002_posts.sql"], r)
        self.assertEqual(harness.ctl("up", "--seed", sock=d.socket).rc, 0)
        self.assertEqual(self.state(), before)

    def seed_through_a_lock(self, d, retries, meanwhile=None):
        """Runs seed while another session holds LOCK TABLE users, released only once the daemon
        logged its retry number retries (or the job failed, which ends the wait at once); calls
        meanwhile (the connection's cut) first. Returns (events, result)."""
        other = self.cluster.session(self.dbname)
        self.addCleanup(other.close)
        other.run("BEGIN; LOCK TABLE users IN ACCESS EXCLUSIVE MODE; SELECT 'locked';", "locked")
        logged = "retry %d of 5" % retries
        with harness.Conn(d.socket) as c:
            c.send("seed", {})
            if meanwhile:
                meanwhile()
            harness.wait_until(lambda: re.search(logged + "|JOB_KIND=seed ERROR_CODE=", d.log()), 120,
                               what="'%s' in the log" % logged)
            self.assertIn(logged, d.log())
            other.run("ROLLBACK; SELECT 'done';", "done")
            events, final = c.read_reply(timeout=120)
        result = harness.result_of(final)
        self.assertGreaterEqual(result["seeds"]["retries"], retries, result)
        return events, result

    def test_seed_retried_while_another_session_holds_a_table_lock(self):
        d = self.start()
        self.assertEqual(d.call("up")["to_version"], 2)
        events, result = self.seed_through_a_lock(d, 2)
        self.assertIn("55P03", d.log())
        retries = [e for e in events if e["event"] == "seed" and e.get("phase") == "retrying"]
        self.assertEqual(len(retries), result["seeds"]["retries"], events)
        self.assertEqual(self.state()[:2], ([["2"]], [["2"]]))

    def test_seed_retried_after_its_connection_was_cut(self):
        # the daemon's session waits for the table lock (a long lock_timeout); the test ends that
        # session on the server
        d = self.start(seeds={"001_users.sql": SEEDS["001_users.sql"]})
        self.assertEqual(d.call("up")["to_version"], 2)
        d.stop()
        d = self.daemon(extra=["--config", os.path.join(self.workdir, "migrated.conf"), "--busy-timeout", "60000"])
        waiting = ("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' "
                   "AND query LIKE 'INSERT INTO users%'")

        def cut():
            pid = harness.wait_until(lambda: self.sql(waiting), 120, what="the seed waiting for the lock")[0][0]
            self.sql("SELECT pg_terminate_backend(%s)" % pid)

        _, result = self.seed_through_a_lock(d, 1, meanwhile=cut)
        self.assertEqual(result["seeds"]["applied"], ["001_users.sql"], result)
        self.assertEqual(self.sql("SELECT count(*) FROM users"), [["2"]])

    def test_edited_seed_refused_and_broken_seed_names_file_and_line(self):
        d = self.start(seeds={"001_users.sql": SEEDS["001_users.sql"]})
        self.assertEqual(harness.ctl("up", "--seed", sock=d.socket).rc, 0)
        self.write_seed("001_users.sql", SEEDS["001_users.sql"] + "INSERT INTO users VALUES (3, 'cy');\n")
        r = harness.ctl("seed", sock=d.socket, json_out=True)
        self.assertEqual(r.rc, 5, r)
        self.assertEqual(r.json["error"]["code"], "checksum_mismatch", r)
        self.assertEqual(self.sql("SELECT count(*) FROM users"), [["2"]])
        self.write_seed("001_users.sql", SEEDS["001_users.sql"])
        self.write_seed("002_posts.sql", "INSERT INTO posts (id, user_id) VALUES (20, 1);\n\n"
                                         "INSERT INTO nosuch VALUES (1);\n")
        r = harness.ctl("seed", sock=d.socket, json_out=True)
        self.assertEqual(r.rc, 1, r)
        err = r.json["error"]
        self.assertEqual((err["code"], err["seed"], err["line"]), ("migration_failed", "002_posts.sql", 3), r)
        self.assertIn("seeds/002_posts.sql:3:", err["message"])
        # the broken seed left nothing, the earlier one stays
        self.assertEqual(self.sql("SELECT count(*) FROM posts"), [["0"]])
        self.assertEqual(self.sql("SELECT name FROM migrated_seeds"), [["001_users.sql"]])

    def test_reset_refused_without_the_switch_then_rebuilds_with_it(self):
        # a migration that makes a schema of its own: reset drops it, the migration runs again
        write(self.migrations, [(3, "extra", "CREATE SCHEMA extra;\nCREATE TABLE extra.notes (x int);\n", None)])
        d = self.start()
        self.assertEqual(harness.ctl("up", "--seed", sock=d.socket).rc, 0)
        self.sql("INSERT INTO users VALUES (99, 'by hand'); CREATE TABLE scratch (x int); "
                 "INSERT INTO extra.notes VALUES (1)")
        r = harness.ctl("reset", "--yes", sock=d.socket, json_out=True)
        self.assertEqual(r.rc, 1, r)
        self.assertEqual(r.json["error"]["code"], "reset_not_allowed", r)
        self.assertEqual(self.sql("SELECT count(*) FROM users"), [["3"]])
        d.stop()
        d = self.start(conf="[dev]\nallow_reset = yes\n")
        attempts = self.sql("SELECT count(*) FROM migrated_attempts")[0][0]
        r = harness.ctl("reset", "--yes", sock=d.socket, json_out=True)
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.json["seeds"]["applied"], ["001_users.sql", "002_posts.sql"], r)
        self.assertTrue(r.json["backup"]["file"].endswith("-reset" + os.path.splitext(r.json["backup"]["file"])[1]),
                        r.json["backup"])
        self.assertTrue(os.path.exists(r.json["backup"]["path"]))
        self.assertEqual(self.sql("SELECT id FROM users ORDER BY id"), [["1"], ["2"]])
        self.assertEqual(self.sql("SELECT to_regclass('scratch') IS NULL"), [["t"]])
        self.assertEqual(self.sql("SELECT version FROM migrated_schema ORDER BY version"), [["1"], ["2"], ["3"]])
        self.assertEqual(self.sql("SELECT count(*) FROM extra.notes"), [["0"]])
        self.assertEqual(self.sql("SELECT direction, status FROM migrated_attempts ORDER BY id OFFSET %s" % attempts),
                         [["reset", "succeeded"], ["up", "succeeded"]])


if __name__ == "__main__":
    harness.main()
