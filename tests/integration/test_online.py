# SPDX-License-Identifier: MIT
"""Online migrations on SQLite: each statement of a plan classified online or breaking from what
SQLite reports (authorizer, catalog diff), shown by plan and --dry-run; an online plan runs while
real writer processes (tests/systemd/writer.py, run as exec: dependents) keep inserting in WAL
mode: none is stopped (same pid), no write fails, no acknowledged row is lost; a breaking plan
still stops and restarts them; directives override; a plan over online_lock_ms falls back to
stopping them, or is refused with online_refuse_slow. The longest stall a writer saw is printed,
never asserted."""

import os
import subprocess
import sys

import harness as H

sys.path.append(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "dependents"))
import deplib as D  # noqa: E402


def stall_ms(log, since):
    """The longest gap between consecutive acknowledgements after `since` (monotonic s), in ms."""
    ts = [t for kind, _, t in log.records() if kind == "ack" and t >= since]
    return max((b - a for a, b in zip(ts, ts[1:])), default=0.0) * 1000.0


class OnlineTest(H.TestCase):

    def setUp(self):
        super().setUp()
        self.db = self.path("app.sqlite")
        D.create_db(self.db)
        c = H.db_connect(self.db)
        c.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, email TEXT)")
        c.executemany("INSERT INTO users (name, email) VALUES (?, ?)", [("u%d" % i, "e%d" % i) for i in range(50)])
        c.commit()
        c.close()
        self.mig = self.path("migrations")
        os.makedirs(self.mig)

    def write(self, migrations):
        H.write_migrations(self.mig, migrations)

    def writer(self, name):
        log = H.WriterLog(self.path(name + ".acks"))
        pidfile = self.path(name + ".pid")
        paths = {}
        bodies = {
            "start": "setsid %s %s %s %s %s </dev/null >>%s.out 2>&1 &\necho $! > %s\n" % (
                D.PYTHON, D.WRITER, self.db, log.path, name, self.path(name), pidfile),
            "stop": "kill -TERM \"$(cat %s)\"\n" % pidfile,
            "check": "test -s %s && kill -0 \"$(cat %s)\" 2>/dev/null\n" % (pidfile, pidfile),
        }
        for verb, body in bodies.items():
            p = self.path("%s-%s.sh" % (name, verb))
            with open(p, "w") as f:
                f.write("#!/bin/sh\n" + body)
            os.chmod(p, 0o755)
            paths[verb] = p
        self.addCleanup(lambda: subprocess.run(["sh", paths["stop"]], stderr=subprocess.DEVNULL))
        subprocess.run(["sh", paths["start"]], check=True)
        log.wait_acks(5)
        return paths, log

    def two_writers(self, extra=""):
        w = {n: self.writer(n) for n in ("w1", "w2")}
        path = self.path("migrated.conf")
        text = ("[database]\npath = %s\n[migrations]\ndirectory = %s\n[units]\nunits = exec:w1 exec:w2\n"
                "stop_timeout = 10\nstart_timeout = 20\n" % (self.db, self.mig)) + extra
        for n, (paths, _) in w.items():
            text += "[exec.%s]\n" % n + "".join("%s = %s\n" % kv for kv in paths.items())
        with open(path, "w") as f:
            f.write(text)
        return self.daemon(config=path, database=None), [log for _, log in w.values()]

    def plan(self, d=None):
        if d:
            return d.ctl("plan").json
        r = H.ctl("--database", self.db, "--migrations", self.mig, "plan", json_out=True, timeout=60)
        self.assertCtl(r, 0)
        return r.json

    # ---- classification ----

    def test_each_statement_classified_with_its_rule(self):
        self.write({
            1: ("additive", "CREATE TABLE t (a INTEGER);\nALTER TABLE users ADD COLUMN age INTEGER;\n"
                            "ALTER TABLE users ADD COLUMN flag INTEGER NOT NULL DEFAULT 0;\n"
                            "CREATE INDEX users_name ON users (name);\nCREATE VIEW v AS SELECT a FROM t;\n"
                            "CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; END;\n"
                            "INSERT INTO t VALUES (1);\n", "DROP TABLE t;\n"),
            2: ("breaking", "ALTER TABLE users DROP COLUMN email;\n"
                            "ALTER TABLE users RENAME COLUMN name TO full_name;\n"
                            "ALTER TABLE t RENAME TO t2;\nUPDATE users SET age = 1;\nDELETE FROM t2;\n"
                            "DROP VIEW v;\n", None),
        })
        p = self.plan()
        rules = [[(s["class"], s["rule"]) for s in st["statements"]] for st in p["steps"]]
        self.assertEqual(rules[0], [("online", "create"), ("online", "add-column"), ("online", "add-column"),
                                    ("online", "create"), ("online", "create"), ("online", "create"),
                                    ("online", "insert")])
        self.assertEqual(rules[1], [("breaking", "drop-column"), ("breaking", "rename-column"),
                                    ("breaking", "rename-table"), ("breaking", "update"), ("breaking", "delete"),
                                    ("breaking", "drop")])
        self.assertEqual([(s["class"], s["rule"]) for s in p["steps"]],
                         [("online", "create"), ("breaking", "drop-column")])
        self.assertEqual(p["class"], "breaking")
        self.assertIn("users.age is nullable", p["steps"][0]["statements"][1]["reason"])
        self.assertIn("constant default 0", p["steps"][0]["statements"][2]["reason"])
        r = H.ctl("--database", self.db, "--migrations", self.mig, "plan", timeout=60)
        self.assertCtl(r, 0)
        self.assertIn("Class: breaking", r.out)
        self.assertIn("0002_breaking.up.sql: breaking by rule drop-column", r.out)
        # the database was not touched by the classification
        self.assertNotIn("age", [c[1] for c in H.query(self.db, "PRAGMA table_info(users)")])

    def test_a_table_rebuild_is_breaking(self):
        self.write({1: ("rebuild", "CREATE TABLE users_new (id INTEGER PRIMARY KEY, name TEXT);\n"
                                   "INSERT INTO users_new SELECT id, name FROM users;\nDROP TABLE users;\n"
                                   "ALTER TABLE users_new RENAME TO users;\n", None)})
        p = self.plan()
        self.assertEqual(p["steps"][0]["statements"][3]["rule"], "table-rebuild")
        self.assertEqual(p["class"], "breaking")

    def test_directives_override_and_say_so(self):
        self.write({
            1: ("backfill", "-- migrated: online\nUPDATE users SET name = upper(name) WHERE id <= 10;\n", None),
            2: ("careful", "-- migrated: breaking\nCREATE TABLE c (x);\n", None),
        })
        p = self.plan()
        s1, s2 = p["steps"]
        self.assertEqual((s1["class"], s1["override"], s1["detected"], s1["rule"]), ("online", "online", "breaking",
                                                                                     "update"))
        self.assertEqual((s2["class"], s2["override"], s2["detected"]), ("breaking", "breaking", "online"))
        r = H.ctl("--database", self.db, "--migrations", self.mig, "up", "--dry-run", timeout=60)
        self.assertCtl(r, 0)
        self.assertIn("[overridden by -- migrated: online; detected breaking]", r.out)

    # ---- running with the writers ----

    def test_online_plan_keeps_the_writers_running(self):
        self.write({1: ("add_things", "CREATE TABLE things (id INTEGER PRIMARY KEY, v TEXT);\n"
                                      "ALTER TABLE users ADD COLUMN nickname TEXT;\n"
                                      "CREATE INDEX users_email ON users (email);\n", "DROP TABLE things;\n")})
        d, logs = self.two_writers()
        pids = [log.starts()[-1] for log in logs]
        dry = d.ctl("up", "--dry-run").json
        self.assertEqual([u["will_stop"] for u in dry["units"]], [False, False], dry)
        self.assertIn("none: the plan is online", d.ctl("up", "--dry-run", json_out=False).out)
        t0 = D.now()
        r = d.ctl("up")
        self.assertCtl(r, 0)
        res = r.json
        self.assertTrue(res.get("dependents_kept_running"), res)
        self.assertEqual(res["online"]["decision"], "online", res)
        self.assertFalse(res.get("units", {}).get("stopped"), res)
        self.assertEqual(H.applied_versions(self.db), [1])
        for log in logs:
            log.wait_acks(log.acks_since_last_start() + 5)
        self.assertEqual([log.starts()[-1] for log in logs], pids, "no writer may have been restarted")
        self.assertEqual([k for log in logs for k, _, _ in log.records() if k in ("stop", "term")], [])
        D.all_acked_in_db(self, self.db, logs)
        print("\nonline plan: longest writer stall %.1f ms (w1), %.1f ms (w2)" %
              (stall_ms(logs[0], t0), stall_ms(logs[1], t0)), file=sys.stderr)

    def test_breaking_plan_still_stops_them(self):
        self.write({1: ("drop_email", "ALTER TABLE users DROP COLUMN email;\n", None)})
        d, logs = self.two_writers()
        firsts = [log.starts()[-1] for log in logs]
        dry = d.ctl("up", "--dry-run").json
        self.assertEqual([u["will_stop"] for u in dry["units"]], [True, True], dry)
        r = d.ctl("up")
        self.assertCtl(r, 0)
        res = r.json
        self.assertFalse(res.get("dependents_kept_running"), res)
        self.assertEqual(res["online"]["decision"], "stop", res)
        self.assertIn("drop-column", res["online"]["reason"])
        self.assertEqual(sorted(o["unit"] for o in res["units"]["stopped"]), ["exec:w1", "exec:w2"], res)
        for log, first in zip(logs, firsts):
            D.wait_for(lambda: log.starts()[-1] != first, "a new writer")
            log.wait_acks(5)
        D.all_acked_in_db(self, self.db, logs)

    def test_online_directive_runs_an_update_with_them_running(self):
        self.write({1: ("backfill", "-- migrated: online\nUPDATE users SET name = upper(name) WHERE id <= 10;\n",
                        None)})
        d, logs = self.two_writers()
        pids = [log.starts()[-1] for log in logs]
        r = d.ctl("up")
        self.assertCtl(r, 0)
        self.assertTrue(r.json.get("dependents_kept_running"), r.json)
        self.assertEqual([log.starts()[-1] for log in logs], pids)
        D.all_acked_in_db(self, self.db, logs)

    def test_breaking_directive_and_online_never_stop_them(self):
        for conf, mig in (("", {1: ("careful", "-- migrated: breaking\nCREATE TABLE c (x);\n", None)}),
                          ("online = never\n", {2: ("plain", "CREATE TABLE p (x);\n", None)})):
            with self.subTest(conf=conf):
                self.write(mig)
                d, logs = self.two_writers(conf)
                firsts = [log.starts()[-1] for log in logs]
                r = d.ctl("up")
                self.assertCtl(r, 0)
                self.assertFalse(r.json.get("dependents_kept_running"), r.json)
                self.assertEqual(len(r.json["units"]["stopped"]), 2, r.json)
                for log, first in zip(logs, firsts):
                    D.wait_for(lambda: log.starts()[-1] != first, "a new writer")
                D.all_acked_in_db(self, self.db, logs)
                d.stop()
                for log in logs:
                    subprocess.run(["sh", self.path(os.path.basename(log.path)[:-5] + "-stop.sh")],
                                   stderr=subprocess.DEVNULL)

    def big_table(self):
        c = H.db_connect(self.db)
        c.execute("CREATE TABLE big (id INTEGER PRIMARY KEY, v TEXT)")
        c.executemany("INSERT INTO big (v) VALUES (?)", (("value %d" % i,) for i in range(200000)))
        c.commit()
        c.close()
        # an online statement that, on 200 000 rows, cannot fit a 1 ms bound
        self.write({1: ("index_big", "CREATE INDEX big_v ON big (v);\n", "DROP INDEX big_v;\n")})

    def test_over_the_bound_falls_back_to_stopping_them(self):
        self.big_table()
        d, logs = self.two_writers("online_lock_ms = 1\n")
        self.assertEqual(self.plan(d)["class"], "online")
        firsts = [log.starts()[-1] for log in logs]
        r = d.ctl("up")
        self.assertCtl(r, 0)
        res = r.json
        self.assertEqual(res["online"]["decision"], "over_bound", res)
        self.assertIn("CREATE INDEX big_v", res["online"]["reason"])
        self.assertIn("0001_index_big.up.sql", res["online"]["reason"])
        self.assertEqual(len(res["units"]["stopped"]), 2, res)
        for log, first in zip(logs, firsts):
            D.wait_for(lambda: log.starts()[-1] != first, "a new writer")
        D.all_acked_in_db(self, self.db, logs)

    def test_over_the_bound_refused_when_configured(self):
        self.big_table()
        d, logs = self.two_writers("online_lock_ms = 1\nonline_refuse_slow = true\n")
        pids = [log.starts()[-1] for log in logs]
        r = d.ctl("up")
        self.assertEqual(r.rc, 1, r)
        self.assertEqual(r.json["error"]["code"], "online_too_slow", r.json)
        self.assertIn("CREATE INDEX big_v", r.json["error"]["message"])
        self.assertEqual(H.applied_versions(self.db), [])
        self.assertEqual([log.starts()[-1] for log in logs], pids, "refused: nothing stopped")
        D.all_acked_in_db(self, self.db, logs)


if __name__ == "__main__":
    H.main()
