# SPDX-License-Identifier: MIT
"""Seeds on SQLite: SQL files in the seeds directory (beside the migrations) applied after the
migrations by `migratectl seed` or `migratectl up --seed`, each in its own transaction, recorded
in migrated_seeds, retried on a busy database. A real daemon, real WAL files, and a real second
process that holds the write lock (holder.py: BEGIN IMMEDIATE)."""

import os
import re
import subprocess
import sys

import harness
from harness import db_connect, wait_until

HOLDER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "holder.py")

MIGRATIONS = {
    1: ("items", "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);\n", "DROP TABLE items;\n"),
    2: ("tags", "CREATE TABLE tags (id INTEGER PRIMARY KEY, item_id INTEGER REFERENCES items(id), tag TEXT);\n",
        "DROP TABLE tags;\n"),
}

SEEDS = {
    "001_items.sql": "INSERT INTO items (name) VALUES ('apple');\nINSERT INTO items (name) VALUES ('pear');\n",
    "002_tags.sql": "INSERT INTO tags (item_id, tag) SELECT id, 'fruit' FROM items;\n",
}


def count(db, sql):
    c = db_connect(db)
    try:
        return c.execute(sql).fetchone()[0]
    finally:
        c.close()


def rows(db, sql):
    c = db_connect(db)
    try:
        return c.execute(sql).fetchall()
    finally:
        c.close()


class SeedsTest(harness.TestCase):

    def start(self, seeds=SEEDS, conf=""):
        self.mig = harness.write_migrations(self.path("migrations"), MIGRATIONS)
        self.seeds = self.path("seeds")
        os.makedirs(self.seeds, exist_ok=True)
        for name, sql in seeds.items():
            self.write_seed(name, sql)
        self.db = self.path("db.sqlite")
        config = self.path("migrated.conf")
        with open(config, "w") as f:
            f.write("[seeds]\nretries = 5\nbackoff_ms = 100\n" + conf)
        self.d = self.daemon(self.db, self.mig, extra_args=["--config", config, "--busy-timeout", "200"])
        return self.d

    def write_seed(self, name, sql):
        with open(os.path.join(self.seeds, name), "w") as f:
            f.write(sql)

    @staticmethod
    def stop_holder(holder):
        if holder.poll() is None:
            holder.kill()
        holder.wait()
        holder.stdin.close()
        holder.stdout.close()

    def state(self):
        return (count(self.db, "SELECT count(*) FROM items"), count(self.db, "SELECT count(*) FROM tags"),
                rows(self.db, "SELECT name, checksum, applied_at FROM migrated_seeds ORDER BY name"))

    def test_up_seed_applies_migrations_then_seeds_and_a_rerun_changes_nothing(self):
        self.start()
        r = self.d.ctl("up", "--seed")
        self.assertEqual(r.rc, 0, r)
        doc = r.json
        self.assertEqual([m["version"] for m in doc["applied"]], [1, 2], r)
        self.assertEqual(doc["seeds"]["applied"], ["001_items.sql", "002_tags.sql"], r)
        before = self.state()
        self.assertEqual(before[:2], (2, 2))
        self.assertEqual([x[0] for x in before[2]], ["001_items.sql", "002_tags.sql"])
        # again, both ways: nothing runs, nothing changes (row counts and the seed table)
        r = self.d.ctl("seed")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.json["seeds"]["applied"], [], r)
        self.assertEqual(r.json["seeds"]["skipped"], ["001_items.sql", "002_tags.sql"], r)
        r = self.d.ctl("up", "--seed")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(self.state(), before)
        # migrated_seeds is bookkeeping, not drift
        r = self.d.ctl("diff")
        self.assertEqual((r.rc, r.json["differences"]), (0, []), r)

    def test_seed_busy_twice_is_retried_then_succeeds(self):
        self.start()
        self.assertEqual(self.d.ctl("up").rc, 0)
        holder = subprocess.Popen([sys.executable, HOLDER, self.db, "write"], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)
        self.addCleanup(self.stop_holder, holder)
        self.assertTrue(holder.stdout.readline().startswith("ready"))
        with harness.Conn(self.d.socket) as c:
            c.send("seed", {})
            # the daemon logs each retry; the holder lets go only after the second
            # (or the job's failure, which ends the wait at once)
            wait_until(lambda: re.search(r"retry 2 of 5|JOB_KIND=seed ERROR_CODE=", self.d.log()), 60,
                       what="the second retry in the log")
            self.assertIn("retry 2 of 5", self.d.log())
            self.assertEqual(count(self.db, "SELECT count(*) FROM items"), 0)
            holder.stdin.write("\n")
            holder.stdin.flush()
            self.assertEqual(holder.stdout.readline().strip(), "released")
            _, final = c.read_reply(timeout=60)
        result = harness.result_of(final)
        self.assertGreaterEqual(result["seeds"]["retries"], 2, result)
        self.assertEqual(result["seeds"]["applied"], ["001_items.sql", "002_tags.sql"], result)
        self.assertIn("Seed 001_items.sql met a transient failure", self.d.log())
        self.assertIn("retry 1 of 5", self.d.log())
        self.assertEqual(self.state()[:2], (2, 2))

    def test_retries_are_bounded(self):
        self.start(conf="")
        with open(self.path("migrated.conf"), "w") as f:
            f.write("[seeds]\nretries = 1\nbackoff_ms = 50\n")
        self.d.stop()
        self.d = self.daemon(self.db, self.mig, extra_args=["--config", self.path("migrated.conf"),
                                                            "--busy-timeout", "100"])
        self.assertEqual(self.d.ctl("up").rc, 0)
        holder = subprocess.Popen([sys.executable, HOLDER, self.db, "write"], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)
        self.addCleanup(self.stop_holder, holder)
        self.assertTrue(holder.stdout.readline().startswith("ready"))
        r = self.d.ctl("seed")
        self.assertEqual(r.rc, 6, r)  # busy
        err = r.json["error"]
        self.assertEqual((err["code"], err["seed"]), ("busy", "001_items.sql"), r)
        self.assertIn("gave up after 1 retries", err["message"])
        self.assertEqual(self.d.log().count("met a transient failure"), 1)
        self.assertEqual(count(self.db, "SELECT count(*) FROM items"), 0)

    def test_edited_applied_seed_is_refused(self):
        self.start()
        self.assertEqual(self.d.ctl("up", "--seed").rc, 0)
        before = self.state()
        self.write_seed("001_items.sql", SEEDS["001_items.sql"] + "INSERT INTO items (name) VALUES ('plum');\n")
        self.write_seed("003_more.sql", "INSERT INTO items (name) VALUES ('fig');\n")
        r = self.d.ctl("seed")
        self.assertEqual(r.rc, 5, r)  # checksum mismatch
        err = r.json["error"]
        self.assertEqual(err["code"], "checksum_mismatch", r)
        self.assertEqual(err["seed"], "001_items.sql", r)
        self.assertIn("001_items.sql was edited", err["message"])
        self.assertEqual(self.state(), before)  # not even the new seed ran

    def test_seed_always_runs_every_time(self):
        self.start(seeds={"001_items.sql": "-- migrated: seed always\n"
                                           "INSERT OR IGNORE INTO items (name) VALUES ('apple');\n"})
        self.assertEqual(self.d.ctl("up", "--seed").rc, 0)
        self.write_seed("001_items.sql", "-- migrated: seed always\n"
                                         "INSERT OR IGNORE INTO items (name) VALUES ('apple'), ('kiwi');\n")
        r = self.d.ctl("seed")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.json["seeds"]["applied"], ["001_items.sql"], r)
        self.assertEqual(rows(self.db, "SELECT name FROM items ORDER BY name"), [("apple",), ("kiwi",)])

    def test_broken_seed_names_file_and_line_and_keeps_earlier_seeds(self):
        self.start(seeds={
            "001_items.sql": SEEDS["001_items.sql"],
            "002_broken.sql": "INSERT INTO items (name) VALUES ('cherry');\n\nINSERT INTO nosuch VALUES (1);\n",
            "003_after.sql": "INSERT INTO items (name) VALUES ('late');\n",
        })
        r = self.d.ctl("up", "--seed")
        self.assertEqual(r.rc, 1, r)
        err = r.json["error"]
        self.assertEqual(err["code"], "migration_failed", r)
        self.assertEqual(err["seed"], "002_broken.sql", r)
        self.assertEqual(err["line"], 3, r)
        self.assertIn("seeds/002_broken.sql:3:", err["message"])
        self.assertIn("nosuch", err["message"])
        # the first seed stays, the broken one left nothing, the one after it never ran
        self.assertEqual(rows(self.db, "SELECT name FROM items ORDER BY name"), [("apple",), ("pear",)])
        self.assertEqual([x[0] for x in self.state()[2]], ["001_items.sql"])
        # the migrations themselves are applied
        self.assertEqual(harness.applied_versions(self.db), [1, 2])

    def test_no_seeds_directory_is_no_seeds(self):
        self.start(seeds={})
        os.rmdir(self.seeds)
        r = self.d.ctl("up", "--seed")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.json["seeds"]["applied"], [], r)

    def test_one_shot_mode_seeds_too(self):
        # no daemon: migratectl --database runs migrated --one-shot, the same protocol
        self.mig = harness.write_migrations(self.path("migrations"), MIGRATIONS)
        self.seeds = self.path("seeds")
        os.makedirs(self.seeds)
        for name, sql in SEEDS.items():
            self.write_seed(name, sql)
        self.db = self.path("db.sqlite")
        env = {"STATE_DIRECTORY": self.path("state-oneshot")}
        one = ("--database", self.db, "--migrations", self.mig)
        r = harness.ctl(*one, "up", "--seed", json_out=True, env=env)
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.json["seeds"]["applied"], ["001_items.sql", "002_tags.sql"], r)
        before = self.state()
        r = harness.ctl(*one, "seed", json_out=True, env=env)
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.json["seeds"]["applied"], [], r)
        self.assertEqual(self.state(), before)
        # without [dev] allow_reset, a one-shot reset is refused like the daemon's
        r = harness.ctl(*one, "reset", "--yes", json_out=True, env=env)
        self.assertEqual((r.rc, r.json["error"]["code"]), (1, "reset_not_allowed"), r)
        self.assertEqual(self.state(), before)

    def test_up_seed_with_dry_run_is_a_usage_error(self):
        self.start()
        r = self.d.ctl("up", "--seed", "--dry-run", json_out=False)
        self.assertEqual(r.rc, 2, r)
        self.assertIn("--seed", r.err)

    def test_foreign_format_records_seeds_in_the_state_directory(self):
        # dbmate's directory: migrated's own tables, migrated_seeds too, live in history.sqlite
        mig = self.path("db", "migrations")
        os.makedirs(mig)
        with open(os.path.join(mig, "20240101000000_items.sql"), "w") as f:
            f.write("-- migrate:up\nCREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);\n"
                    "-- migrate:down\nDROP TABLE items;\n")
        self.seeds = self.path("db", "seeds")
        os.makedirs(self.seeds)
        self.write_seed("001_items.sql", SEEDS["001_items.sql"])
        db = self.path("db", "app.sqlite")
        config = self.path("dbmate.conf")
        with open(config, "w") as f:
            f.write("[dev]\nallow_reset = yes\n")
        d = self.daemon(db, mig, extra_args=["--config", config])
        r = d.ctl("up", "--seed")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.json["seeds"]["applied"], ["001_items.sql"], r)
        self.assertNotIn("migrated_seeds", harness.tables(db))
        history = os.path.join(d.state_dir(), "history.sqlite")
        self.assertEqual(rows(history, "SELECT name FROM migrated_seeds"), [("001_items.sql",)])
        self.assertEqual(d.ctl("seed").json["seeds"]["skipped"], ["001_items.sql"])
        # reset forgets them there too: they run again on the rebuilt schema
        r = d.ctl("reset", "--yes")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.json["seeds"]["applied"], ["001_items.sql"], r)
        self.assertEqual(count(db, "SELECT count(*) FROM items"), 2)
        self.assertEqual(count(db, "SELECT count(*) FROM schema_migrations"), 1)
        self.assertEqual(count(history, "SELECT count(*) FROM migrated_attempts WHERE direction = 'reset'"), 1)


if __name__ == "__main__":
    harness.main()
