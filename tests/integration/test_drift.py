# SPDX-License-Identifier: MIT
"""Drift: migratectl diff (and status --drift) replays the applied migrations' up scripts on a
scratch in-memory database and compares the result with the live schema structurally. Each test
changes a real WAL database by hand, behind the daemon's back, and checks that the change is
reported by name, with the exit code and the JSON document scripts rely on."""

import os
import shutil

import harness
from harness import db_connect

EXIT_DRIFT = 9

MIGRATIONS = {
    1: ("users",
        "CREATE TABLE users (\n    id INTEGER PRIMARY KEY,\n    email TEXT NOT NULL UNIQUE,\n"
        "    status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'gone'))\n);\n"
        "CREATE INDEX users_live ON users(email) WHERE status = 'active';\n"
        "CREATE INDEX users_lower ON users(lower(email));\n",
        "DROP TABLE users;\n"),
    2: ("posts",
        "BEGIN;\nCREATE TABLE posts (id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users(id) "
        "ON DELETE CASCADE, title TEXT, score INTEGER DEFAULT 0);\n"
        "CREATE INDEX posts_user ON posts(user_id);\nCOMMIT;\n",
        "DROP TABLE posts;\n"),
    3: ("audit",
        "CREATE TABLE audit (id INTEGER PRIMARY KEY, what TEXT);\n"
        "CREATE TRIGGER posts_audit AFTER INSERT ON posts BEGIN\n"
        "    INSERT INTO audit (what) VALUES ('post ' || new.id);\nEND;\n"
        "CREATE VIEW active_users AS SELECT id, email FROM users WHERE status = 'active';\n",
        "DROP VIEW active_users;\nDROP TRIGGER posts_audit;\nDROP TABLE audit;\n"),
}


class DriftTest(harness.TestCase):

    def start(self):
        self.mig = harness.write_migrations(self.path("migrations"), MIGRATIONS)
        self.db = self.path("db.sqlite")
        self.d = self.daemon(self.db, self.mig)
        self.d.call("up", {})
        self.d.wait_idle()
        return self.d

    def by_hand(self, sql):
        c = db_connect(self.db)
        try:
            c.executescript(sql)
        finally:
            c.close()

    def diff(self):
        return harness.drift_differences(self, self.d.ctl("diff"))

    def test_no_drift_after_up(self):
        self.start()
        r = self.d.ctl("diff", json_out=False)
        self.assertEqual(r.rc, 0, r)
        self.assertIn("No drift", r.out)
        self.assertIn("3 applied migrations", r.out)
        self.assertEqual(self.diff(), {})
        self.assertEqual(self.d.ctl("diff").json["replayed"], 3)

    def test_column_added_by_hand_is_named(self):
        self.start()
        self.by_hand("ALTER TABLE posts ADD COLUMN body TEXT NOT NULL DEFAULT '';")
        diff = self.diff()
        self.assertEqual(list(diff), [("added", "column posts.body")], diff)
        self.assertIn("type TEXT", diff[("added", "column posts.body")])
        r = self.d.ctl("diff", json_out=False)
        self.assertEqual(r.rc, EXIT_DRIFT, r)
        self.assertIn("+ column posts.body", r.out)

    def test_index_dropped_by_hand(self):
        self.start()
        self.by_hand("DROP INDEX posts_user;")
        self.assertEqual(list(self.diff()), [("removed", "index posts_user")])
        r = self.d.ctl("diff", json_out=False)
        self.assertIn("- index posts_user", r.out)

    def test_partial_index_where_changed(self):
        self.start()
        self.by_hand("DROP INDEX users_live; CREATE INDEX users_live ON users(email) WHERE status = 'gone';")
        diff = self.diff()
        self.assertEqual(list(diff), [("changed", "index users_live")], diff)
        self.assertIn("where status='active' → status='gone'", diff[("changed", "index users_live")])

    def test_trigger_changed(self):
        self.start()
        self.by_hand("DROP TRIGGER posts_audit;\nCREATE TRIGGER posts_audit AFTER INSERT ON posts BEGIN\n"
                     "    INSERT INTO audit (what) VALUES ('new post');\nEND;")
        self.assertEqual(list(self.diff()), [("changed", "trigger posts_audit")])

    def test_view_changed(self):
        self.start()
        self.by_hand("DROP VIEW active_users; CREATE VIEW active_users AS SELECT id FROM users;")
        self.assertIn(("changed", "view active_users"), self.diff())

    def test_view_and_trigger_added_by_hand(self):
        self.start()
        self.by_hand("CREATE VIEW mine AS SELECT 1; CREATE TRIGGER mine_t AFTER DELETE ON users BEGIN SELECT 1; END;")
        self.assertEqual(list(self.diff()), [("added", "trigger mine_t"), ("added", "view mine")])

    def test_layout_and_case_are_not_drift(self):
        self.start()
        self.by_hand("DROP VIEW active_users;\ncreate   view active_users as\n  -- the same view\n"
                     "  select id,  email from users where status = 'active';")
        self.assertEqual(self.diff(), {})

    def rebuild_posts(self, on_delete="CASCADE", score_default="0", score_type="INTEGER"):
        """SQLite cannot alter a column in place: the table is rebuilt as its documented procedure
        says, with only the given part different."""
        self.by_hand("PRAGMA foreign_keys = OFF; BEGIN;\n"
                     "CREATE TABLE posts_new (id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users(id) "
                     "ON DELETE %s, title TEXT, score %s DEFAULT %s);\n"
                     "INSERT INTO posts_new SELECT * FROM posts; DROP TABLE posts;\n"
                     "ALTER TABLE posts_new RENAME TO posts; CREATE INDEX posts_user ON posts(user_id);\n"
                     "CREATE TRIGGER posts_audit AFTER INSERT ON posts BEGIN\n"
                     "    INSERT INTO audit (what) VALUES ('post ' || new.id);\nEND;\nCOMMIT;"
                     % (on_delete, score_type, score_default))

    def test_default_changed(self):
        self.start()
        self.rebuild_posts(score_default="10")
        diff = self.diff()
        self.assertEqual(list(diff), [("changed", "column posts.score")], diff)
        self.assertEqual(diff[("changed", "column posts.score")], "default 0 → 10")
        r = self.d.ctl("diff", json_out=False)
        self.assertIn("~ column posts.score: default 0 → 10", r.out)

    def test_constraints_nullability_and_foreign_keys(self):
        self.start()
        self.by_hand("PRAGMA foreign_keys = OFF; BEGIN; DROP VIEW active_users;\n"
                     "CREATE TABLE users_new (id INTEGER PRIMARY KEY, email TEXT, "
                     "status TEXT NOT NULL DEFAULT 'active');\n"
                     "INSERT INTO users_new SELECT * FROM users; DROP TABLE users;\n"
                     "ALTER TABLE users_new RENAME TO users;\n"
                     "CREATE INDEX users_live ON users(email) WHERE status = 'active';\n"
                     "CREATE INDEX users_lower ON users(lower(email));\n"
                     "CREATE VIEW active_users AS SELECT id, email FROM users WHERE status = 'active';\n"
                     "CREATE TABLE extra (id INTEGER PRIMARY KEY, post_id INTEGER REFERENCES posts(id));\n"
                     "COMMIT;")
        diff = self.diff()
        self.assertEqual(set(diff), {("changed", "column users.email"),
                                     ("removed", "unique users(email)"),
                                     ("removed", "check users: status in('active','gone')"),
                                     ("added", "table extra")}, diff)
        self.assertEqual(diff[("changed", "column users.email")], "not_null yes → no")

    def test_type_changed(self):
        self.start()
        self.rebuild_posts(score_type="TEXT")
        r = self.d.ctl("diff", json_out=False)
        self.assertEqual(r.rc, EXIT_DRIFT, r)
        self.assertIn("~ column posts.score: type INTEGER → TEXT\n", r.out)

    def test_expression_index_changed(self):
        self.start()
        self.by_hand("DROP INDEX users_lower; CREATE INDEX users_lower ON users(upper(email));")
        diff = self.diff()
        self.assertEqual(list(diff), [("changed", "index users_lower")], diff)
        self.assertIn("upper(email)", diff[("changed", "index users_lower")])

    def test_foreign_key_action_changed(self):
        self.start()
        self.rebuild_posts(on_delete="SET NULL")
        diff = self.diff()
        self.assertEqual(diff, {("changed", "foreign key posts(user_id) -> users(id)"):
                                "on_delete CASCADE → SET NULL"}, diff)

    def test_bookkeeping_tables_are_left_out(self):
        self.start()
        self.by_hand("CREATE INDEX mine ON migrated_schema(version);")
        self.assertEqual(self.diff(), {})

    def test_status_drift_only_when_asked(self):
        self.start()
        self.assertNotIn("drift", self.d.status())
        self.assertIs(self.d.call("status", {"drift": True})["drift"], False)
        self.by_hand("CREATE TABLE scratch (x);")
        self.assertIs(self.d.call("status", {"drift": True})["drift"], True)
        r = self.d.ctl("status", "--drift", json_out=False)
        self.assertEqual(r.rc, 0, r)
        self.assertIn("Drift:", r.out)
        self.assertEqual(self.d.ctl("status", "--check", "--drift").rc, EXIT_DRIFT)
        self.assertEqual(self.d.ctl("status", "--check").rc, 0)

    def test_down_then_diff_still_no_drift(self):
        self.start()
        self.d.call("down", {"steps": 2})
        self.d.wait_idle()
        self.assertEqual(self.d.ctl("diff").json["replayed"], 1)
        self.assertEqual(self.diff(), {})

    def test_replay_touches_no_file(self):
        """A reader asks for the replay: a script that ATTACHes a file is refused on the scratch
        database (the error names it) rather than creating that file again."""
        self.start()
        side = self.path("side.sqlite")
        harness.write_migrations(self.mig, {4: ("side", "-- migrated: no-transaction\nATTACH '%s' AS side;\n"
                                                "CREATE TABLE side.x (a);\nDETACH side;\n" % side, None)})
        self.d.call("up", {})
        self.d.wait_idle()
        self.assertTrue(os.path.exists(side))
        os.unlink(side)
        r = self.d.ctl("diff")
        self.assertEqual(r.rc, 1, r)
        self.assertEqual(r.json["error"]["code"], "migration_failed", r)
        self.assertIn("0004_side.up.sql", r.json["error"]["message"])
        self.assertFalse(os.path.exists(side))

    def test_one_shot_without_a_daemon(self):
        self.mig = harness.write_migrations(self.path("migrations"), MIGRATIONS)
        self.db = self.path("db.sqlite")
        one = ("--database", self.db, "--migrations", self.mig)
        self.assertEqual(harness.ctl(*one, "up").rc, 0)
        r = harness.ctl(*one, "diff", json_out=True)
        self.assertEqual((r.rc, r.json["drift"]), (0, False), r)
        self.by_hand("CREATE TABLE scratch (x);")
        r = harness.ctl(*one, "diff")
        self.assertEqual(r.rc, EXIT_DRIFT, r)
        self.assertIn("+ table scratch\n", r.out)

    def test_goose_format_replays_its_up_sections(self):
        mig = self.path("goose")
        shutil.copytree(os.path.join(harness.HERE, "fixtures", "goose", "migrations"), mig)
        self.db = self.path("goose.sqlite")
        self.d = self.daemon(self.db, mig, extra_args=["--format", "goose"])
        self.d.call("up", {})
        self.d.wait_idle()
        self.assertEqual(self.diff(), {})
        self.by_hand("DROP TRIGGER posts_count_delete;")
        self.assertEqual(list(self.diff()), [("removed", "trigger posts_count_delete")])

    def test_other_formats_replay_their_up_parts(self):
        """dbmate's migrate:up blocks (one of them a no-transaction VACUUM), Flyway's versioned
        scripts with a repeatable one, Prisma's folders (with its table redefinitions) and
        golang-migrate's .up.sql files: no drift after up, then a change by hand is found."""
        gm = self.path("golang-migrate-src")
        os.makedirs(gm)
        for name, sql in (("000001_users.up.sql", "CREATE TABLE users (id INTEGER PRIMARY KEY);\n"),
                          ("000001_users.down.sql", "DROP TABLE users;\n"),
                          ("000002_name.up.sql", "ALTER TABLE users ADD COLUMN name TEXT;\n")):
            with open(os.path.join(gm, name), "w") as f:
                f.write(sql)
        for fmt, source, extra, table in (
                ("dbmate", os.path.join(harness.HERE, "fixtures", "dbmate", "migrations"), None, "users"),
                ("flyway", os.path.join(harness.HERE, "fixtures", "flyway", "migrations"),
                 os.path.join(harness.HERE, "fixtures", "flyway", "extra", "R__user_emails.sql"), "users"),
                ("prisma", os.path.join(harness.HERE, "fixtures", "prisma", "migrations"), None, '"User"'),
                ("golang-migrate", gm, None, "users")):
            with self.subTest(format=fmt):
                mig = self.path(fmt)
                shutil.copytree(source, mig)
                if extra:
                    shutil.copy(extra, mig)
                self.db = self.path(fmt + ".sqlite")
                self.d = self.daemon(self.db, mig, extra_args=["--format", fmt])
                self.assertEqual(self.d.ctl("up").rc, 0)
                self.assertEqual(self.diff(), {})
                self.by_hand("CREATE INDEX by_hand ON %s(id);" % table)
                self.assertEqual(list(self.diff()), [("added", "index by_hand")])
                self.d.stop()
    def test_flyway_repeatable_edited_after_it_ran(self):
        """A repeatable applied in an earlier version is replayed as its file is now: the view
        shows as changed (it is also pending), not as made by hand."""
        fixtures = os.path.join(harness.HERE, "fixtures", "flyway")
        mig = self.path("flyway")
        shutil.copytree(os.path.join(fixtures, "migrations"), mig)
        shutil.copy(os.path.join(fixtures, "extra", "R__user_emails.sql"), mig)
        self.db = self.path("flyway.sqlite")
        self.d = self.daemon(self.db, mig, extra_args=["--format", "flyway"])
        self.assertEqual(self.d.ctl("up").rc, 0)
        # a new file (a new inode), as an editor saves it: a rescan never takes it for the old one
        with open(os.path.join(mig, "R__user_emails.sql.new"), "w") as f:
            f.write("DROP VIEW IF EXISTS user_emails;\nCREATE VIEW user_emails AS SELECT id, email FROM users;\n")
        os.replace(os.path.join(mig, "R__user_emails.sql.new"), os.path.join(mig, "R__user_emails.sql"))
        self.assertEqual(list(self.diff()), [("changed", "view user_emails")])


if __name__ == "__main__":
    harness.main()
