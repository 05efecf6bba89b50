#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The real Prisma CLI as the oracle of migrated's Prisma format: prisma@6.19.3 (package.json and
package-lock.json beside this file), run offline through its JS/wasm schema engine and the libSQL
driver adapter (prisma.config.ts with `engine: "js"`, schema.prisma with engineType "client"), on
the same SQLite files and the same migrations folder as the daemon.

What it shows: Prisma and migrated hand a database over to each other in both directions
(`prisma migrate status` says up to date and `deploy` applies nothing after migrated, migrated
applies what Prisma left pending, and the schemas are the same); a `migratectl down` is seen by
Prisma as pending and re-applied by `deploy`; a failed migration both ways; CRLF checksums agree;
a `<timestamp>-<name>` folder counts for both; and `prisma db pull` sees no table of migrated's.
(`prisma migrate dev` cannot be the oracle offline: with the JS engine its shadow database replay
reports drift on a database only Prisma touched, so `db pull`, which lists every table Prisma
would model, is used instead.) Each Prisma call takes about 2–3 s."""

import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)
sys.path.append(os.path.join(TESTS, "integration"))

import harness  # noqa: E402
import prismaconfig  # noqa: E402
from harness import db_connect  # noqa: E402

FIXTURES = os.path.join(TESTS, "integration", "fixtures", "prisma")
FOLDERS = sorted(f for f in os.listdir(os.path.join(FIXTURES, "migrations"))
                 if os.path.isdir(os.path.join(FIXTURES, "migrations", f)))
BROKEN = "20240601090000_add_comments"  # fails at its last statement (no such table "Posts")
PRISMA_TIMEOUT = 120.0

CONFIG = prismaconfig.config('import { PrismaLibSQL } from "@prisma/adapter-libsql";',
                              'new PrismaLibSQL({ url: "file:" + process.env.SQLITE_PATH })')

SCHEMA = prismaconfig.schema('sqlite', '"file:./unused.db"')

PRISMA = None


def prisma_rows(db):
    """(migration_name, checksum, finished, rolled back) of each _prisma_migrations row."""
    c = db_connect(db)
    try:
        return c.execute('SELECT "migration_name", "checksum", "finished_at" IS NOT NULL, '
                         '"rolled_back_at" IS NOT NULL FROM "_prisma_migrations" ORDER BY rowid').fetchall()
    finally:
        c.close()


class PrismaOracleTest(harness.TestCase):

    def setUp(self):
        super().setUp()
        # A Prisma project as its users have it, node_modules linked to the pinned install.
        self.project = self.path("project")
        self.mdir = os.path.join(self.project, "prisma", "migrations")
        os.makedirs(self.mdir)
        shutil.copy(os.path.join(FIXTURES, "migrations", "migration_lock.toml"), self.mdir)
        with open(os.path.join(self.project, "prisma.config.ts"), "w") as f:
            f.write(CONFIG)
        with open(os.path.join(self.project, "prisma", "schema.prisma"), "w") as f:
            f.write(SCHEMA)
        os.symlink(os.path.dirname(os.path.dirname(PRISMA)), os.path.join(self.project, "node_modules"))

    def add(self, folder, source="migrations", as_name=None, crlf=False):
        dst = os.path.join(self.mdir, as_name or folder)
        shutil.copytree(os.path.join(FIXTURES, source, folder), dst)
        if crlf:
            for name in os.listdir(dst):
                p = os.path.join(dst, name)
                with open(p, "rb") as f:
                    data = f.read()
                with open(p, "wb") as f:
                    f.write(data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
        return as_name or folder

    def prisma(self, db, *args):
        env = dict(os.environ, SQLITE_PATH=db, CI="true", PRISMA_HIDE_UPDATE_MESSAGE="1",
                   CHECKPOINT_DISABLE="1", NO_COLOR="1")
        r = subprocess.run([PRISMA] + list(args), cwd=self.project, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=PRISMA_TIMEOUT)
        return r.returncode, r.stdout.decode(errors="replace")

    def assertPrismaUpToDate(self, db):
        rc, out = self.prisma(db, "migrate", "status")
        self.assertEqual(rc, 0, out)
        self.assertIn("Database schema is up to date!", out)
        rc, out = self.prisma(db, "migrate", "deploy")
        self.assertEqual(rc, 0, out)
        self.assertIn("No pending migrations to apply.", out)

    def assertPullSeesNoTableOfOurs(self, db):
        rc, out = self.prisma(db, "db", "pull", "--print")
        self.assertEqual(rc, 0, out)
        self.assertIn("model ", out)
        self.assertNotIn("migrated_", out, "Prisma must see no table of migrated's")

    def reference(self, folders):
        """The schema Prisma itself leaves after deploying these folders on a fresh database."""
        db = self.path("reference-%d.sqlite" % len(folders))
        rc, out = self.prisma(db, "migrate", "deploy")
        self.assertEqual(rc, 0, out)
        return harness.schema(db)

    def test_prisma_then_migrated_then_prisma(self):
        # Prisma applies all but the last (a folder named with a dash, which Prisma takes), then
        # migrated takes over and applies the last; Prisma then finds nothing to do.
        for f in FOLDERS[:-1]:
            self.add(f)
        db = self.path("db.sqlite")
        rc, out = self.prisma(db, "migrate", "deploy")
        self.assertEqual(rc, 0, out)
        last = FOLDERS[-1].replace("_", "-", 1)
        self.add(FOLDERS[-1], as_name=last)
        d = self.daemon(db, self.mdir)
        r = d.ctl("up")
        self.assertCtl(r, 0)
        self.assertEqual([a["name"] for a in r.json["applied"]], [last.split("-", 1)[1]], r)
        self.assertEqual(d.status()["problems"], [])
        self.assertEqual([row[0] for row in prisma_rows(db)], FOLDERS[:-1] + [last])
        self.assertPrismaUpToDate(db)
        self.assertEqual(harness.schema(db), self.reference(FOLDERS))
        self.assertPullSeesNoTableOfOurs(db)

    def test_migrated_applies_all_prisma_agrees(self):
        for f in FOLDERS:
            self.add(f)
        db = self.path("db.sqlite")
        d = self.daemon(db, self.mdir)
        self.assertCtl(d.ctl("up"), 0)
        self.assertEqual(harness.tables(db).count("migrated_attempts"), 0)
        self.assertPrismaUpToDate(db)
        self.assertEqual(harness.schema(db), self.reference(FOLDERS))
        st = d.status()
        self.assertEqual(st["problems"], [], st)
        self.assertEqual(st["pending"], [], st)

    def test_down_is_pending_for_prisma_and_deploy_reapplies_it(self):
        for f in FOLDERS[:3]:
            self.add(f)
        db = self.path("db.sqlite")
        d = self.daemon(db, self.mdir)
        self.assertCtl(d.ctl("up"), 0)
        r = d.ctl("down")
        self.assertCtl(r, 0)
        rc, out = self.prisma(db, "migrate", "status")
        self.assertEqual(rc, 1, out)
        self.assertIn("Following migration have not yet been applied:\n%s" % FOLDERS[2], out)
        rc, out = self.prisma(db, "migrate", "deploy")
        self.assertEqual(rc, 0, out)
        self.assertIn(FOLDERS[2], out)
        st = d.status()
        self.assertEqual([a["name"] for a in st["applied"]], FOLDERS[:3], st)
        self.assertEqual(st["problems"], [], st)

    def test_failed_migration_both_ways(self):
        for f in FOLDERS:
            self.add(f)
        self.add(BROKEN, source="extra")
        # migrated: the whole plan rolls back, no row is left, Prisma sees everything pending.
        db = self.path("db.sqlite")
        d = self.daemon(db, self.mdir)
        _, final = d.rpc("up")
        self.assertError(final, "migration_failed")
        self.assertEqual(prisma_rows(db), [])
        rc, out = self.prisma(db, "migrate", "status")
        self.assertEqual(rc, 1, out)
        self.assertIn("have not yet been applied", out)
        self.assertIn(BROKEN, out)
        self.assertNotIn("failed", out.lower())
        d.stop()
        # Prisma: deploy leaves a failed row; migrated then refuses every job, naming it.
        db2 = self.path("db2.sqlite")
        rc, out = self.prisma(db2, "migrate", "deploy")
        self.assertNotEqual(rc, 0, out)
        self.assertEqual(prisma_rows(db2)[-1][0], BROKEN)
        self.assertEqual(prisma_rows(db2)[-1][2:], (0, 0))
        d2 = self.daemon(db2, self.mdir)
        st = d2.status()
        failed = [p for p in st["problems"] if p.get("kind") == "failed_migration"]
        self.assertEqual([p.get("name") for p in failed], [BROKEN], st)
        self.assertEqual([a["name"] for a in st["applied"]], FOLDERS, st)
        _, final = d2.rpc("up")
        err = self.assertError(final, "failed_migration")
        self.assertIn(BROKEN, err["message"])

    def test_crlf_checksums_agree(self):
        # The same CRLF files applied by Prisma and by migrated give the same checksums; after a
        # checkout turns them into LF, neither calls them edited.
        for f in FOLDERS:
            self.add(f, crlf=True)
        by_prisma = self.path("prisma.sqlite")
        rc, out = self.prisma(by_prisma, "migrate", "deploy")
        self.assertEqual(rc, 0, out)
        by_migrated = self.path("migrated.sqlite")
        d = self.daemon(by_migrated, self.mdir)
        self.assertCtl(d.ctl("up"), 0)
        self.assertEqual([r[:2] for r in prisma_rows(by_migrated)], [r[:2] for r in prisma_rows(by_prisma)])
        d.stop()
        shutil.rmtree(self.mdir)
        os.makedirs(self.mdir)
        shutil.copy(os.path.join(FIXTURES, "migrations", "migration_lock.toml"), self.mdir)
        for f in FOLDERS:
            self.add(f)
        d = self.daemon(by_prisma, self.mdir)
        st = d.status()
        self.assertEqual(st["problems"], [], st)
        self.assertEqual(st["pending"], [], st)


def install():
    global PRISMA
    PRISMA = harness.npm_install(HERE, os.path.join("node_modules", ".bin", "prisma"), "the Prisma CLI")


if __name__ == "__main__":
    install()
    harness.main()
