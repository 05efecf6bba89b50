# SPDX-License-Identifier: MIT
"""Up, down and up again on the example migrations; at every version reached, the schema is that
of a fresh database brought to the same version by a second daemon."""

import os

import harness
from harness import applied_rows, applied_versions, current_version, schema


class LifecycleTest(harness.TestCase):

    def setUp(self):
        super().setUp()
        self.examples = harness.example_migrations()
        self.versions = [m[0] for m in self.examples]
        self.irreversible = [m[0] for m in self.examples if m[3] is None]
        self.latest = self.versions[-1]

    _ref_cache = {}

    def reference_schema(self, version):
        """Schema of a fresh database brought to version by `up --to version` on its own daemon."""
        cache = LifecycleTest._ref_cache
        if version in cache:
            return cache[version]
        db = self.path("ref-%d.sqlite" % version)
        d = self.daemon(db, harness.MIGRATIONS_DIR)
        if version > 0:
            r = d.ctl("up", "--to", version)
            self.assertCtl(r, 0)
            self.assertEqual(r.json["status"], "applied", r)
            self.assertEqual(r.json["to_version"], version, r)
        self.assertEqual(current_version(db), version)
        self.assertEqual(d.stop(), 0, d.log())
        cache[version] = schema(db)
        return cache[version]

    def assertAtVersion(self, db, version):
        self.assertEqual(current_version(db), version)
        self.assertEqual(applied_versions(db), [v for v in self.versions if v <= version])
        self.assertEqual(schema(db), self.reference_schema(version),
                         "schema at version %d differs from a fresh database brought to it" % version)

    def test_up_down_up_matches_fresh_databases(self):
        db = self.path("main.sqlite")
        d = self.daemon(db, harness.MIGRATIONS_DIR)
        self.assertEqual(harness.journal_mode(db), "wal", "a new database must be put in WAL mode")

        # All the way up in one job.
        r = d.ctl("up")
        self.assertCtl(r, 0)
        res = r.json
        self.assertEqual(res["status"], "applied")
        self.assertEqual(res["from_version"], 0)
        self.assertEqual(res["to_version"], self.latest)
        self.assertEqual([a["version"] for a in res["applied"]], self.versions)
        self.assertAtVersion(db, self.latest)
        for row, (v, name, up, _) in zip(applied_rows(db), self.examples):
            self.assertEqual((row["version"], row["name"]), (v, name))
            self.assertEqual(row["checksum"], harness.sha256_file(os.path.join(harness.MIGRATIONS_DIR, up)))

        # Down one step at a time as far as possible.
        lowest = max(self.irreversible) if self.irreversible else 0
        cur = self.latest
        while cur > lowest:
            prev = max([v for v in self.versions if v < cur], default=0)
            r = d.ctl("down")
            self.assertCtl(r, 0)
            self.assertEqual(r.json["status"], "reverted", r)
            self.assertEqual(r.json["from_version"], cur, r)
            self.assertEqual(r.json["to_version"], prev, r)
            self.assertEqual([x["version"] for x in r.json["reverted"]], [cur], r)
            self.assertAtVersion(db, prev)
            cur = prev

        if self.irreversible:
            irr = [m for m in self.examples if m[0] == lowest][0]
            irr_base = irr[2][:-len(".up.sql")]
            before_schema, before_rows = schema(db), applied_rows(db)

            # One more step would cross the irreversible migration.
            r = d.ctl("down")
            self.assertCtl(r, 1)
            self.assertEqual(r.json["error"]["code"], "irreversible", r)

            # down --to 0: refused, naming the irreversible file; nothing changed.
            r = d.ctl("down", "--to", 0)
            self.assertCtl(r, 1)
            err = r.json["error"]
            self.assertEqual(err["code"], "irreversible", r)
            self.assertIn(irr_base, str(err), "the error must name the irreversible migration's file")
            _, final = d.rpc("down", {"to": 0})
            err = self.assertError(final, "irreversible")
            self.assertIn(irr_base, str(err))
            self.assertEqual(schema(db), before_schema)
            self.assertEqual(applied_rows(db), before_rows)
            st = d.status()
            self.assertEqual(st["current_version"], lowest)

        # Up again, one version at a time.
        for v in [v for v in self.versions if v > cur]:
            r = d.ctl("up", "--to", v)
            self.assertCtl(r, 0)
            self.assertEqual(r.json["status"], "applied", r)
            self.assertEqual([a["version"] for a in r.json["applied"]], [v], r)
            self.assertAtVersion(db, v)

        r = d.ctl("up")
        self.assertCtl(r, 0)
        self.assertEqual(r.json["status"], "current", r)
        self.assertAtVersion(db, self.latest)

        # Every successful job left a succeeded attempt.
        rows = harness.attempts(db)
        self.assertFalse([a for a in rows if a["status"] in ("running", "interrupted")], rows)
        downs = [a for a in rows if a["direction"] == "down" and a["status"] == "succeeded"]
        ups = [a for a in rows if a["direction"] == "up" and a["status"] == "succeeded"
               and a["from_version"] != a["to_version"]]
        above = [v for v in self.versions if v > lowest]
        self.assertEqual(len(downs), len(above), rows)
        self.assertEqual(len(ups), 1 + len(above), rows)
        self.assertEqual(d.stop(), 0, d.log())

    def test_status_plan_dry_run_and_check(self):
        db = self.path("db.sqlite")
        d = self.daemon(db, harness.MIGRATIONS_DIR)
        st = d.status()
        self.assertIn(st["current_version"], (0, None))
        self.assertEqual(st["latest_version"], self.latest)
        self.assertEqual([p["version"] for p in st["pending"]], self.versions)
        self.assertEqual({p["version"]: p["reversible"] for p in st["pending"]},
                         {m[0]: m[3] is not None for m in self.examples})
        self.assertEqual(st["problems"], [])
        self.assertEqual(os.path.realpath(st["database"]), os.path.realpath(db))

        self.assertCtl(d.ctl("status", "--check"), 4)
        self.assertCtl(d.ctl("status", json_out=False), 0)

        r = d.ctl("plan", "up")
        self.assertCtl(r, 0)
        self.assertEqual(r.json["direction"], "up")
        self.assertEqual(r.json["from_version"], 0)
        self.assertEqual(r.json["to_version"], self.latest)
        self.assertEqual([s["version"] for s in r.json["steps"]], self.versions)
        self.assertIs(r.json["atomic"], True)

        r = d.ctl("up", "--dry-run")
        self.assertCtl(r, 0)
        self.assertIs(r.json.get("dry_run"), True, r)
        self.assertEqual(applied_versions(db), [])
        self.assertEqual(schema(db), [])

        r = d.ctl("up", "--to", 3)
        self.assertCtl(r, 0)
        self.assertEqual(current_version(db), 3)
        self.assertCtl(d.ctl("status", "--check"), 4)

        r = d.ctl("plan", "down", "--steps", 2)
        self.assertCtl(r, 0)
        self.assertEqual([s["version"] for s in r.json["steps"]], [3, 2])
        self.assertEqual(r.json["to_version"], 1)

        r = d.ctl("down", "--steps", 2, "--dry-run")
        self.assertCtl(r, 0)
        self.assertEqual(current_version(db), 3)

        r = d.ctl("up", "--to", 99)
        self.assertCtl(r, 1)
        self.assertEqual(r.json["error"]["code"], "unknown_version")
        self.assertEqual(current_version(db), 3)

        self.assertCtl(d.ctl("up"), 0)
        self.assertCtl(d.ctl("status", "--check"), 0)
        st = d.status()
        self.assertEqual(st["current_version"], self.latest)
        self.assertEqual(st["pending"], [])
        self.assertEqual([a["version"] for a in st["applied"]], self.versions)
        for a, (v, name, up, _) in zip(st["applied"], self.examples):
            self.assertEqual(a["name"], name)
            self.assertEqual(a["checksum"], harness.sha256_file(os.path.join(harness.MIGRATIONS_DIR, up)))
            self.assertIsInstance(a["applied_at"], str)
            self.assertIsInstance(a["duration_ms"], int)
        self.assertCtl(d.ctl("verify"), 0)
        r = d.ctl("verify")
        self.assertIs(r.json["ok"], True)
        self.assertEqual(r.json["problems"], [])

        r = d.ctl("history", "--limit", 1)
        self.assertCtl(r, 0)
        self.assertEqual(len(r.json["attempts"]), 1)
        r = d.ctl("history")
        ids = [a["id"] for a in r.json["attempts"]]
        self.assertEqual(ids, sorted(ids, reverse=True), "history must be newest first")
        self.assertEqual([a["status"] for a in r.json["attempts"][:2]], ["succeeded", "succeeded"])
        self.assertEqual(r.json["attempts"][0]["to_version"], self.latest)
        self.assertEqual(r.json["attempts"][1]["to_version"], 3)

    def test_event_stream_of_an_up(self):
        db = self.path("db.sqlite")
        d = self.daemon(db, harness.MIGRATIONS_DIR)
        self.assertCtl(d.ctl("up", "--to", 2), 0)
        events, final = d.rpc("up", {"to": 4}, id="ev")
        res = self.assertResult(final)
        self.assertEqual(final["id"], "ev")
        self.assertTrue(all(e["id"] == "ev" for e in events), events)
        kinds = [e["event"] for e in events]
        self.assertEqual(kinds[0], "queued", events)
        self.assertEqual(kinds[1], "started", events)
        self.assertEqual(kinds[-1], "committed", events)
        started = events[1]
        self.assertEqual((started["kind"], started["from_version"], started["to_version"], started["total"],
                          started["atomic"]), ("up", 2, 4, 2, True))
        steps = [(e["phase"], e["version"], e["index"], e["total"]) for e in events if e["event"] == "migration"]
        self.assertEqual(steps, [("applying", 3, 1, 2), ("applied", 3, 1, 2),
                                 ("applying", 4, 2, 2), ("applied", 4, 2, 2)])
        self.assertEqual(events[-1]["version"], 4)
        self.assertEqual(len({e["job_id"] for e in events} | {res["job_id"]}), 1)

    def test_no_transaction_migration(self):
        mig = harness.write_migrations(self.path("migrations"), {
            1: ("one", "CREATE TABLE one (id INTEGER PRIMARY KEY);\n", "DROP TABLE one;\n"),
            2: ("vacuum", "-- migrated: no-transaction\n-- VACUUM cannot run inside a transaction.\nVACUUM;\n",
                "-- migrated: no-transaction\nVACUUM;\n"),
            3: ("three", "CREATE TABLE three (id INTEGER PRIMARY KEY);\n", "DROP TABLE three;\n"),
        })
        db = self.path("db.sqlite")
        d = self.daemon(db, mig)
        st = d.status()
        self.assertEqual([p["transaction"] for p in st["pending"]], [True, False, True])
        plan = d.call("plan")
        self.assertEqual([s["transaction"] for s in plan["steps"]], [True, False, True])
        self.assertIs(plan["atomic"], False, "a plan with a no-transaction migration cannot be atomic")
        r = d.ctl("up")
        self.assertCtl(r, 0)
        self.assertEqual(applied_versions(db), [1, 2, 3])
        self.assertCtl(d.ctl("down", "--to", 0), 0)
        self.assertEqual(applied_versions(db), [])
        self.assertEqual(schema(db), [])

    def test_existing_database_keeps_its_journal_mode(self):
        db = self.path("delete-mode.sqlite")
        c = harness.db_connect(db)
        self.assertEqual(c.execute("PRAGMA journal_mode=DELETE").fetchone()[0], "delete")
        c.execute("CREATE TABLE app_owned (x)")
        c.close()
        d = self.daemon(db, harness.MIGRATIONS_DIR)
        self.assertEqual(d.status()["journal_mode"], "delete")
        self.assertCtl(d.ctl("up"), 0)
        self.assertEqual(harness.journal_mode(db), "delete")
        self.assertIn("app_owned", harness.tables(db))
        self.assertEqual(current_version(db), self.latest)

    def test_data_survives_round_trip_of_reversible_migrations(self):
        # 0005 converts temperatures; down then up must give back the same values.
        db = self.path("db.sqlite")
        d = self.daemon(db, harness.MIGRATIONS_DIR)
        self.assertCtl(d.ctl("up", "--to", 4), 0)
        c = harness.db_connect(db)
        c.execute("INSERT INTO devices (id, serial, model, firmware_version) VALUES (1, 's1', 'pod4', '1.2')")
        c.execute("INSERT INTO sleep_sessions (device_id, side, started_at, ended_at, target_temp_f) "
                  "VALUES (1, 'left', '2024-01-01T22:00:00Z', '2024-01-02T06:30:00Z', 68.9)")
        c.close()
        self.assertCtl(d.ctl("up", "--to", 5), 0)
        c = harness.db_connect(db)
        self.assertAlmostEqual(c.execute("SELECT target_temp_c FROM sleep_sessions").fetchone()[0], 20.5, places=2)
        c.close()
        self.assertCtl(d.ctl("down"), 0)
        c = harness.db_connect(db)
        self.assertEqual(c.execute("SELECT target_temp_f FROM sleep_sessions").fetchone()[0], 68.9)
        c.close()


if __name__ == "__main__":
    harness.main()
