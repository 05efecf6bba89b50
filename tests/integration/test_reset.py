# SPDX-License-Identifier: MIT
"""migratectl reset on SQLite, for development databases: refused unless the instance's
configuration says [dev] allow_reset = yes; asks on a terminal, --yes for scripts, refused without
either; takes a backup named as such, drops every table, view and trigger, applies every migration
and the seeds again. A real daemon on real WAL files."""

import os

import harness
from harness import db_connect

MIGRATIONS = {
    1: ("items", "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);\n"
                 "CREATE INDEX items_name ON items(name);\n", "DROP TABLE items;\n"),
    2: ("tags", "CREATE TABLE tags (id INTEGER PRIMARY KEY, item_id INTEGER REFERENCES items(id), tag TEXT);\n"
                "CREATE VIEW tagged AS SELECT items.name, tags.tag FROM items JOIN tags ON tags.item_id = items.id;\n"
                "CREATE TRIGGER items_tag AFTER INSERT ON items BEGIN\n"
                "    INSERT INTO tags (item_id, tag) VALUES (new.id, 'new');\nEND;\n",
        "DROP TRIGGER items_tag;\nDROP VIEW tagged;\nDROP TABLE tags;\n"),
}

SEEDS = {
    "001_items.sql": "INSERT INTO items (name) VALUES ('apple'), ('pear');\n",
}


def query(db, sql):
    c = db_connect(db)
    try:
        return c.execute(sql).fetchall()
    finally:
        c.close()


def by_hand(db, sql):
    c = db_connect(db)
    try:
        c.executescript(sql)
    finally:
        c.close()


def counts(db):
    return {t: query(db, 'SELECT count(*) FROM "%s"' % t)[0][0] for t in ("items", "tags")}


class ResetTest(harness.TestCase):

    def start(self, name="db", allow=True, extra=""):
        self.mig = self.path("migrations")
        if not os.path.isdir(self.mig):
            harness.write_migrations(self.mig, MIGRATIONS)
            os.makedirs(self.path("seeds"))
            for f, sql in SEEDS.items():
                with open(self.path("seeds", f), "w") as out:
                    out.write(sql)
        db = self.path(name + ".sqlite")
        config = self.path(name + ".conf")
        with open(config, "w") as f:
            f.write("[dev]\nallow_reset = %s\n" % ("yes" if allow else "no") + extra)
        d = self.daemon(db, self.mig, extra_args=["--config", config])
        r = d.ctl("up", "--seed")
        self.assertEqual(r.rc, 0, r)
        return d, db

    def backups(self, db):
        d = db + "-backups"
        return sorted(os.listdir(d)) if os.path.isdir(d) else []

    def test_refused_without_the_switch_and_nothing_changes(self):
        d, db = self.start(allow=False)
        by_hand(db, "INSERT INTO items (name) VALUES ('by hand'); CREATE TABLE scratch (x);")
        before = (harness.schema(db), counts(db), self.backups(db))
        r = d.ctl("reset", "--yes")
        self.assertEqual(r.rc, 1, r)
        self.assertEqual(r.json["error"]["code"], "reset_not_allowed", r)
        self.assertIn("allow_reset", r.json["error"]["message"])
        self.assertEqual((harness.schema(db), counts(db), self.backups(db)), before)

    def test_refused_without_a_terminal_and_without_yes(self):
        d, db = self.start()
        by_hand(db, "INSERT INTO items (name) VALUES ('by hand');")
        before = (harness.schema(db), counts(db), self.backups(db))
        r = d.ctl("reset", json_out=False)
        self.assertEqual(r.rc, 2, r)
        self.assertIn("--yes", r.err)
        self.assertEqual((harness.schema(db), counts(db), self.backups(db)), before)

    def test_reset_rebuilds_the_schema_and_seeds_like_a_fresh_up_seed(self):
        d, db = self.start()
        by_hand(db, "INSERT INTO items (name) VALUES ('by hand');\n"
                    "CREATE TABLE scratch (x);\nCREATE INDEX scratch_x ON scratch(x);\n"
                    "DROP INDEX items_name;\n")
        attempts_before = len(harness.attempts(db))
        r = d.ctl("reset", "--yes")
        self.assertEqual(r.rc, 0, r)
        doc = r.json
        self.assertEqual(doc["status"], "reset", r)
        self.assertEqual([m["version"] for m in doc["migrations"]["applied"]], [1, 2], r)
        self.assertEqual(doc["seeds"]["applied"], ["001_items.sql"], r)
        # the backup, named as such, holds what the database held before
        backup = doc["backup"]["path"]
        self.assertTrue(os.path.basename(backup).endswith("-reset.sqlite"), backup)
        self.assertTrue(os.path.exists(backup))
        self.assertEqual(query(backup, "SELECT count(*) FROM items WHERE name = 'by hand'"), [(1,)])
        # rows added by hand are gone, the hand-made table too, the dropped index is back
        self.assertEqual(query(db, "SELECT count(*) FROM items WHERE name = 'by hand'"), [(0,)])
        self.assertNotIn("scratch", harness.tables(db))
        # the same schema and row counts as a fresh up --seed
        _, fresh = self.start("fresh")
        self.assertEqual(harness.schema(db), harness.schema(fresh))
        self.assertEqual(counts(db), counts(fresh))
        self.assertEqual(query(db, "SELECT name FROM migrated_seeds"), [("001_items.sql",)])
        # the history survives: every attempt before the reset, the reset itself (naming its
        # backup), then the migrations it applied again
        after = harness.attempts(db)
        self.assertEqual([(a["direction"], a["status"]) for a in after[attempts_before:]],
                         [("reset", "succeeded"), ("up", "succeeded")], after)
        self.assertIn(os.path.basename(backup), after[attempts_before]["detail"])
        self.assertEqual((after[attempts_before]["from_version"], after[attempts_before]["to_version"]), (2, 0))
        # the backup is listed, and kept out of the rotation
        listed = {b["file"]: b["kind"] for b in d.ctl("backups").json["backups"]}
        self.assertEqual(listed.get(os.path.basename(backup)), "reset", listed)

    def exec_dependent(self):
        """An exec: dependent that is running, whose stop and start append to a log."""
        log, flag = self.path("app.log"), self.path("app.running")
        scripts = {"start": "touch %s; echo start >> %s" % (flag, log),
                   "stop": "rm -f %s; echo stop >> %s" % (flag, log),
                   "check": "test -e %s" % flag}
        for verb, body in scripts.items():
            with open(self.path("app-%s.sh" % verb), "w") as f:
                f.write("#!/bin/sh\n" + body + "\n")
            os.chmod(self.path("app-%s.sh" % verb), 0o755)
        open(flag, "w").close()
        # online = never: start()'s up --seed takes the stop/start path, which this test follows
        conf = "[units]\nunits = exec:app\nonline = never\n[exec.app]\n" + "".join(
            "%s = %s\n" % (verb, self.path("app-%s.sh" % verb)) for verb in scripts)
        return conf, log

    def test_reset_stops_and_starts_the_dependents_a_seed_does_not(self):
        conf, log = self.exec_dependent()
        d, db = self.start(extra=conf)
        with open(log) as f:
            self.assertEqual(f.read().split(), ["stop", "start"])  # the up --seed of start()
        os.unlink(log)
        # seeds are data: the dependent keeps running
        r = d.ctl("seed")
        self.assertEqual(r.rc, 0, r)
        self.assertNotIn("units", r.json)
        self.assertFalse(os.path.exists(log))
        r = d.ctl("reset", "--yes")
        self.assertEqual(r.rc, 0, r)
        units = r.json["units"]
        self.assertEqual([(o["unit"], o["ok"]) for o in units["stopped"]], [("exec:app", True)], r)
        self.assertEqual([(o["unit"], o["ok"]) for o in units["started"]], [("exec:app", True)], r)
        with open(log) as f:
            self.assertEqual(f.read().split(), ["stop", "start"])


if __name__ == "__main__":
    harness.main()
