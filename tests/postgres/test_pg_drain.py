#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A breaking plan drains every live host: three daemons ("hosts" a, b, c) on one PostgreSQL
database, each with its own dependent, a real writer (pgwriter.py) inserting into the database
without pause, stopped and started by `exec:` scripts. An up on a stops every host's writer before
the DDL runs (the database's own clock says so), and every writer is back afterwards (a new
process) with no acknowledged insert lost. A failing migration, a kill -9 of the job's holder and a
host that never answers (SIGSTOP) all leave every writer running again. And a job waiting for
another daemon's writer lock keeps its own dependents running meanwhile."""

import os
import signal
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from pgharness import PgTestCase, harness  # noqa: E402

PGWRITER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pgwriter.py")
PYTHON = sys.executable or "python3"
UNITS_FAILED = "units_failed"

V1 = (1, "acks_note", "ALTER TABLE acks ADD COLUMN note text;\n")
# the DDL's moment, by the database's clock, then a change that rewrites the table the writers use
BREAKING = (2, "breaking", "CREATE TABLE ddl_at AS SELECT clock_timestamp() AS t;\n"
                           "ALTER TABLE acks ALTER COLUMN writer TYPE varchar(64);\n")
FAILING = (2, "failing", "CREATE TABLE ddl_at AS SELECT clock_timestamp() AS t;\n"
                         "INSERT INTO no_such_table VALUES (1);\n")
# only host a's session sleeps: a job held there until the test kills it
SLOW_ON_A = (2, "slow", "CREATE TABLE ddl_at AS SELECT clock_timestamp() AS t;\n"
                        "SELECT pg_sleep(CASE WHEN current_setting('application_name') = 'migrated-a' "
                        "THEN 600 ELSE 0 END);\n")


def write(directory, migrations):
    for version, name, up in migrations:
        with open(os.path.join(directory, "%04d_%s.up.sql" % (version, name)), "w") as f:
            f.write(up)


class WriterLog:
    """pgwriter.py's log: "start PID", "ack ID", "stop PID"."""

    def __init__(self, path):
        self.path = path

    def records(self):
        try:
            with open(self.path) as f:
                return [line.split() for line in f if line.strip()]
        except FileNotFoundError:
            return []

    def acked(self):
        return [int(r[1]) for r in self.records() if r[0] == "ack"]

    def starts(self):
        return [int(r[1]) for r in self.records() if r[0] == "start"]


class TestDrain(PgTestCase):
    def setUp(self):
        super().setUp()
        self.sql("CREATE TABLE acks (id bigserial PRIMARY KEY, writer text NOT NULL, pid int NOT NULL, "
                 "at timestamptz NOT NULL)")
        self.logs = {}

    def scripts(self, name):
        """exec: scripts starting and stopping writer NAME; the writer writes to this test's database."""
        log = WriterLog(os.path.join(self.workdir, name + ".acks"))
        pidfile = os.path.join(self.workdir, name + ".pid")
        paths = {}
        bodies = {
            "start": "setsid %s %s '%s' %s %s </dev/null >>%s.out 2>&1 &\necho $! > %s\n" % (
                PYTHON, PGWRITER, self.cluster.conninfo(self.dbname), log.path, name,
                os.path.join(self.workdir, name), pidfile),
            "stop": "kill -TERM \"$(cat %s)\"\n" % pidfile,
            "check": "test -s %s && kill -0 \"$(cat %s)\" 2>/dev/null && "
                     "! grep -q '^State:.*Z' /proc/\"$(cat %s)\"/status\n" % (pidfile, pidfile, pidfile),
        }
        for verb, body in bodies.items():
            p = os.path.join(self.workdir, "%s-%s.sh" % (name, verb))
            with open(p, "w") as f:
                f.write("#!/bin/sh\n" + body)
            os.chmod(p, 0o755)
            paths[verb] = p
        self.addCleanup(lambda: subprocess.run(["sh", paths["stop"]], stderr=subprocess.DEVNULL))
        self.logs[name] = log
        return paths, log

    def pid_of(self, name):
        with open(os.path.join(self.workdir, name + ".pid")) as f:
            return int(f.read().strip())

    def running(self, name):
        return subprocess.run(["sh", os.path.join(self.workdir, name + "-check.sh")]).returncode == 0

    def host(self, name, writer=True, config=""):
        """A daemon for host NAME (sessions named migrated-NAME), its writer wNAME running."""
        text = "[units]\nstop_timeout = 20\nstart_timeout = 30\n"
        if writer:
            paths, log = self.scripts("w" + name)
            text += "units = exec:w%s\n[exec.w%s]\n" % (name, name)
            text += "".join("%s = %s\n" % kv for kv in paths.items())
            subprocess.run(["sh", paths["start"]], check=True)
            harness.wait_until(lambda: len(log.acked()) >= 3, 60, interval=0.05, what="w%s writing" % name)
        with open(os.path.join(self.workdir, "host-%s.conf" % name), "w") as f:
            f.write(text + config)
        return self.host_daemon(name)

    def host_daemon(self, name):
        """(Another) daemon for host NAME with its configuration and state directory."""
        path = os.path.join(self.workdir, "host-%s.conf" % name)
        return self.daemon(name=name, extra=["--config", path, "--connection",
                                             self.cluster.conninfo(self.dbname) + " application_name=migrated-" + name])

    def three_hosts(self, config=""):
        write(self.migrations, [V1])
        a = self.host("a", config=config)
        self.assertEqual(a.call("up")["status"], "applied")
        return a, self.host("b", config=config), self.host("c", config=config)

    def pids_now(self):
        return {n: self.pid_of(n) for n in ("wa", "wb", "wc")}

    def assertBackWithNewProcess(self, old_pids, names=("wa", "wb", "wc")):
        for n in names:
            harness.wait_until(lambda: self.running(n) and self.pid_of(n) != old_pids[n], 60, interval=0.05,
                               what="%s running again as a new process" % n)
            # the new process writes again
            harness.wait_until(lambda: self.pid_of(n) in self.logs[n].starts(), 60, interval=0.05,
                               what="%s started" % n)

    def assertNoAckLost(self):
        acked = [i for log in self.logs.values() for i in log.acked()]
        have = {int(r[0]) for r in self.sql("SELECT id FROM acks")}
        self.assertEqual([i for i in acked if i not in have], [], "acknowledged inserts lost")
        self.assertGreater(len(acked), 0)

    def test_breaking_plan_drains_every_host_then_starts_every_one(self):
        a, b, c = self.three_hosts()
        old = self.pids_now()
        write(self.migrations, [BREAKING])
        res = a.call("up", timeout=180)
        self.assertEqual((res["status"], res["to_version"]), ("applied", 2), res)
        # every writer (of every host) wrote its last row before the DDL ran, by the server's clock
        late = self.sql("SELECT writer, pid, at FROM acks WHERE at >= (SELECT t FROM ddl_at) AND pid IN (%s)"
                        % ", ".join(str(p) for p in old.values()))
        self.assertEqual(late, [], "a writer wrote while the DDL ran")
        for n, pid in old.items():
            self.assertTrue(self.sql("SELECT 1 FROM acks WHERE pid = %d" % pid), n)
        self.assertBackWithNewProcess(old)
        # the new writers write after the migration's commit
        for n in old:
            harness.wait_until(lambda: self.sql("SELECT 1 FROM acks WHERE pid = %d" % self.pid_of(n)), 60,
                               interval=0.05, what="%s writing again" % n)
        self.assertNoAckLost()
        for d, name in ((b, "b"), (c, "c")):
            self.assertIn("Host a drains this host for job", d.log())
        self.assertIn("Every live host acknowledged the drain", a.log())
        # state files are gone once the units run again
        for name in "abc":
            self.assertFalse(os.path.exists(os.path.join(self.workdir, "state-%s" % name, "units.json")), name)

    def test_failing_migration_every_hosts_writer_back(self):
        a, b, c = self.three_hosts()
        old = self.pids_now()
        write(self.migrations, [FAILING])
        _, final = a.rpc("up", timeout=180)
        self.assertIn("error", final, final)
        self.assertEqual(self.sql("SELECT max(version) FROM migrated_schema"), [["1"]])
        self.assertEqual(self.sql("SELECT to_regclass('ddl_at') IS NULL"), [["t"]])
        self.assertBackWithNewProcess(old)
        self.assertNoAckLost()

    def test_kill_9_of_the_holder_every_drained_host_starts_its_writer(self):
        a, b, c = self.three_hosts()
        old = self.pids_now()
        write(self.migrations, [SLOW_ON_A])
        with harness.Conn(a.socket, 120) as ca:
            ca.send("up")
            # the plan runs: every host was drained before
            harness.wait_until(lambda: self.sql("SELECT 1 FROM pg_stat_activity WHERE application_name = "
                                                "'migrated-a' AND query LIKE 'SELECT pg_sleep(CASE%'"), 120,
                               interval=0.05, what="a's migration running")
            self.assertFalse(self.running("wb") or self.running("wc"))
            # status across hosts: b and c say whose drain they are in
            hosts = {h["host"]: h for h in b.status()["hosts"]}
            for name in ("b", "c"):
                self.assertEqual(hosts[name]["state"], "drained", hosts)
                self.assertIn("job", hosts[name]["waiting_for"], hosts)
                self.assertIn("host a", hosts[name]["waiting_for"], hosts)
                self.assertEqual([d["active_state"] for d in hosts[name]["dependents"]], ["inactive"], hosts)
            human = harness.ctl("status", sock=c.socket)
            self.assertRegex(human.out, r"(?m)^ +b +alive +\d+ +drained +drained for job \d+ of host a ")
            a.kill()
        # nobody ends the drain: b and c see a's liveness lock go and start their writers themselves
        self.assertBackWithNewProcess(old, names=("wb", "wc"))
        for d in (b, c):
            self.assertIn("died (its liveness lock went)", d.log())
        self.assertEqual(self.sql("SELECT max(version) FROM migrated_schema"), [["1"]])
        self.assertNoAckLost()

    def test_a_drained_host_killed_restarts_its_writer_at_its_next_start(self):
        a, b, c = self.three_hosts()
        old = self.pids_now()
        write(self.migrations, [SLOW_ON_A])
        with harness.Conn(a.socket, 120) as ca:
            ca.send("up")
            harness.wait_until(lambda: self.sql("SELECT 1 FROM pg_stat_activity WHERE application_name = "
                                                "'migrated-a' AND query LIKE 'SELECT pg_sleep(CASE%'"), 120,
                               interval=0.05, what="a's migration running")
            # b recorded what it stopped before it stopped it, as for a job of its own
            with open(os.path.join(self.workdir, "state-b", "units.json")) as f:
                self.assertIn("exec:wb", f.read())
            b.kill()
            self.assertFalse(self.running("wb"))
            again = self.host_daemon("b")  # the same state directory; its start recovers
            harness.wait_until(lambda: self.running("wb") and self.pid_of("wb") != old["wb"], 60, interval=0.05,
                               what="wb started again by b's next daemon")
            self.assertIn("did not start them again; starting them now", again.log())
            a.kill()
        self.assertBackWithNewProcess(old, names=("wc",))
        self.assertNoAckLost()

    def test_a_host_that_never_acks_fails_the_job_naming_it(self):
        a, b, c = self.three_hosts(config="[postgresql]\ndrain_timeout = 5\n")
        old = self.pids_now()
        write(self.migrations, [BREAKING])
        os.kill(c.pid, signal.SIGSTOP)
        self.addCleanup(lambda: c.alive() and os.kill(c.pid, signal.SIGCONT))
        with harness.Conn(a.socket, 120) as ca:
            ca.send("up")
            # a says what it waits for, across hosts
            harness.wait_until(lambda: self.sql("SELECT 1 FROM migrated_hosts WHERE host = 'a' AND "
                                                "waiting_for LIKE 'acks from hosts c%'"), 60, interval=0.05,
                               what="a waiting for c's ack")
            _, final = ca.read_reply(timeout=120)
        err = harness.error_of(final)
        self.assertEqual(err["code"], UNITS_FAILED, err)
        self.assertIn("host c neither acknowledged the drain", err["message"])
        self.assertIn("nothing was applied", err["message"])
        self.assertEqual(self.sql("SELECT max(version) FROM migrated_schema"), [["1"]])
        self.assertEqual(self.sql("SELECT to_regclass('ddl_at') IS NULL"), [["t"]])
        self.assertBackWithNewProcess(old, names=("wa", "wb"))
        # c's writer was never touched
        self.assertTrue(self.running("wc"))
        self.assertEqual(self.pid_of("wc"), old["wc"])
        self.assertNoAckLost()

    def test_cancel_ends_the_drain_and_every_host_starts_again(self):
        a, b, c = self.three_hosts()
        old = self.pids_now()
        write(self.migrations, [BREAKING])
        os.kill(c.pid, signal.SIGSTOP)
        self.addCleanup(lambda: c.alive() and os.kill(c.pid, signal.SIGCONT))
        with harness.Conn(a.socket, 120) as ca:
            ca.send("up")
            harness.wait_until(lambda: self.sql("SELECT 1 FROM migrated_hosts WHERE host = 'a' AND "
                                                "waiting_for LIKE 'acks from hosts c%'"), 60, interval=0.05,
                               what="a waiting for c's ack")
            a.call("cancel", {})
            _, final = ca.read_reply(timeout=120)
        self.assertEqual(harness.error_of(final)["code"], "cancelled", final)
        self.assertEqual(self.sql("SELECT max(version) FROM migrated_schema"), [["1"]])
        self.assertBackWithNewProcess(old, names=("wa", "wb"))
        self.assertNoAckLost()

    def test_a_job_waiting_for_another_hosts_lock_keeps_its_dependents_running(self):
        # a plan that leaves acks alone: the writer may write while a's plan runs
        write(self.migrations, [(1,) + SLOW_ON_A[1:]])
        # a drains nobody here: what is under test is b's own order (lock, plan, then its units)
        a = self.host("a", writer=False, config="[postgresql]\ndrain = self\n")
        b = self.host("b")
        old = self.pid_of("wb")
        with harness.Conn(a.socket, 120) as ca, harness.Conn(b.socket, 120) as cb:
            ca.send("up")
            harness.wait_until(lambda: self.sql("SELECT 1 FROM pg_stat_activity WHERE application_name = "
                                                "'migrated-a' AND query LIKE 'SELECT pg_sleep(CASE%'"), 120,
                               interval=0.05, what="a's migration running")
            cb.send("up")
            while True:
                ev = cb.read_json(60)
                if ev.get("event") == "lock" and ev.get("holder"):
                    break
            # b waits for a's lock with its writer still running, the same process
            self.assertTrue(self.running("wb"))
            self.assertEqual(self.pid_of("wb"), old)
            before = len(self.logs["wb"].acked())
            harness.wait_until(lambda: len(self.logs["wb"].acked()) > before + 3, 60, interval=0.05,
                               what="wb writing while b waits")
            a.kill()
            _, final = cb.read_reply(timeout=120)
        res = harness.result_of(final)
        self.assertEqual((res["status"], res["to_version"]), ("applied", 1), final)
        # b stopped its writer only once it held the lock, and started it again
        self.assertBackWithNewProcess({"wb": old}, names=("wb",))
        self.assertNoAckLost()


if __name__ == "__main__":
    unittest.main()
