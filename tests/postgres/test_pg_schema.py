#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""migratectl schema on PostgreSQL: pg_dump --schema-only --no-owner --no-privileges as the backup
runs it, without the lines that differ between runs (versions, the \\restrict key), migrated's own
tables left out; twice the same bytes, a migration shows as exactly its change, the dump (with the
history rows) rebuilds a database diff finds identical; dbmate's schema_migrations like dbmate's
schema.sql."""

import difflib
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from pgharness import PgTestCase, harness  # noqa: E402

MIGRATIONS = {
    1: ("users", "CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL UNIQUE);\n", "DROP TABLE users;\n"),
    2: ("posts", "CREATE TABLE posts (id bigserial PRIMARY KEY, user_id bigint REFERENCES users (id), title text);\n"
                 "CREATE VIEW titles AS SELECT title FROM posts;\n",
        "DROP VIEW titles;\nDROP TABLE posts;\n"),
}
INDEX = {3: ("title_index", "CREATE INDEX posts_title ON posts (title);\n", "DROP INDEX posts_title;\n")}


class TestSchemaOnPostgres(PgTestCase):

    def start(self, **kw):
        harness.write_migrations(self.migrations, MIGRATIONS)
        self.d = self.daemon(**kw)
        r = self.d.ctl("up")
        self.assertEqual(r.rc, 0, r)
        return self.d

    def dump(self, *args, d=None):
        r = (d or self.d).ctl("schema", *args, json_out=False)
        self.assertEqual(r.rc, 0, r)
        return r.out

    def test_twice_the_same_bytes_without_unstable_lines(self):
        self.start()
        first = self.dump()
        self.assertEqual(self.dump(), first)
        self.assertIn("CREATE TABLE public.users (", first)
        self.assertIn("CREATE VIEW public.titles AS", first)
        self.assertIn("CREATE TABLE public.migrated_schema (", first)
        for unstable in ("Dumped from", "Dumped by", "\\restrict", "\\unrestrict", "OWNER TO", "GRANT "):
            self.assertNotIn(unstable, first)
        for own in ("migrated_attempts", "migrated_meta", "migrated_hosts"):
            self.assertNotIn(own, first)
        self.assertNotIn("\nINSERT INTO", first)
        self.assertEqual(self.d.ctl("schema").json, {"schema": first})

    def test_a_migration_shows_as_exactly_its_change(self):
        self.start()
        before = self.dump()
        harness.write_migrations(self.migrations, INDEX)
        self.assertEqual(self.d.ctl("up").rc, 0)
        after = self.dump()
        changed = [line for line in difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
                   if line[:1] in "+-" and not line.startswith(("+++", "---"))]
        self.assertTrue(changed and all(line.startswith("+") for line in changed), changed)
        self.assertIn("+CREATE INDEX posts_title ON public.posts USING btree (title);", changed)
        self.assertEqual([line for line in changed if line.startswith("+CREATE")],
                         ["+CREATE INDEX posts_title ON public.posts USING btree (title);"], changed)

    def test_the_dump_rebuilds_an_identical_schema(self):
        self.start()
        text = self.dump("--with-history")
        inserts = [line for line in text.splitlines() if line.startswith("INSERT INTO")]
        self.assertEqual(len(inserts), 2, text)
        self.assertTrue(all(line.startswith("INSERT INTO public.migrated_schema (") for line in inserts), inserts)
        out = os.path.join(self.workdir, "schema.sql")
        r = self.d.ctl("schema", "--with-history", "--output", out, json_out=False)
        self.assertEqual((r.rc, r.out), (0, ""), r)
        with open(out) as f:
            self.assertEqual(f.read(), text)
        self.d.stop()
        # a fresh database from the dump: no pending migration, no drift, the same dump
        self.dbname = self.cluster.new_database()
        self.sql(text)
        d = self.daemon(name="copy")
        st = d.status()
        self.assertEqual((st["current_version"], st["pending"]), (2, []), st)
        r = d.ctl("diff")
        self.assertEqual((r.rc, r.json["differences"]), (0, []), r)
        self.assertEqual(self.dump("--with-history", d=d), text)

    def test_dbmate_layout(self):
        for v, (name, up, down) in MIGRATIONS.items():
            with open(os.path.join(self.migrations, "2024010100000%d_%s.sql" % (v, name)), "w") as f:
                f.write("-- migrate:up\n%s\n-- migrate:down\n%s" % (up, down))
        self.d = self.daemon(extra=["--format", "dbmate"])
        self.assertEqual(self.d.ctl("up").rc, 0)
        text = self.dump("--with-history")
        self.assertIn("CREATE TABLE public.schema_migrations (", text)
        for v in MIGRATIONS:
            self.assertIn("INSERT INTO public.schema_migrations (version) VALUES ('2024010100000%d');" % v, text)
        self.assertNotIn("migrated_", text)
        self.assertEqual(self.dump("--with-history"), text)


if __name__ == "__main__":
    harness.main()
