#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A breaking plan drains every live host: three daemons ("hosts" a, b, c) on one PostgreSQL
database, each with its own systemd user manager and its own dependent there, a real writer unit
(pgwriter.py) inserting into the database without pause. An up on a stops every host's writer
before the DDL runs (the database's own clock says so), and every writer is back afterwards (the
same unit, a new main pid) with no acknowledged insert lost. A failing migration, a kill -9 of the
job's holder, a cancel and a host that never answers (SIGSTOP) all leave every writer running
again. And a job waiting for another daemon's writer lock keeps its own dependents running.

Like the systemd suite, the file runs itself again as PID 1 of its own PID and mount namespaces
(tests/systemd/sdharness.py), with a tmpfs on /run, and boots three `systemd --user` there, each in
a cgroup and a runtime directory of its own; each host's daemon talks to its manager through
$XDG_RUNTIME_DIR/systemd/private."""

import os
import signal
import subprocess
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "systemd"))

from pgharness import PgTestCase, harness  # noqa: E402
from test_pg_formats import STAMP  # noqa: E402
import sdharness as S  # noqa: E402

PGWRITER = os.path.join(HERE, "pgwriter.py")
HOSTS = "abc"
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


class Managers:
    """One systemd user manager per host, each in its own cgroup and runtime directory."""

    def __init__(self):
        self.procs = {}
        self.logs = {}

    @staticmethod
    def runtime_dir(host):
        return "/run/user/%d-%s" % (os.getuid(), host)

    @staticmethod
    def unit_dir(host):
        return "/run/migrated-drain-test/%s/systemd/user" % host

    def env(self, host):
        return dict(os.environ, XDG_RUNTIME_DIR=self.runtime_dir(host),
                    XDG_CONFIG_HOME=os.path.dirname(os.path.dirname(self.unit_dir(host))))

    def boot(self):
        S._enter_own_cgroups()
        subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0755", "tmpfs", "/run"], check=True, timeout=30)
        os.makedirs("/run/systemd/system")  # tells systemd it was "booted" with systemd
        os.environ.pop("DBUS_SESSION_BUS_ADDRESS", None)
        os.environ.pop("NOTIFY_SOCKET", None)
        cgroups = [d for d in os.environ.get(S.NS_CGROUPS, "").split(":") if d]
        # the tests in a leaf of their own, each manager in another: a manager takes its cgroup
        # as its root
        for d in cgroups:
            os.makedirs(os.path.join(d, "tests"), exist_ok=True)
            with open(os.path.join(d, "tests", "cgroup.procs"), "w") as f:
                f.write("0")
        for host in HOSTS:
            os.makedirs(self.runtime_dir(host), mode=0o700)
            os.makedirs(self.unit_dir(host))

            def enter(host=host):
                for d in cgroups:
                    os.makedirs(os.path.join(d, "manager-" + host), exist_ok=True)
                    with open(os.path.join(d, "manager-" + host, "cgroup.procs"), "w") as f:
                        f.write("0")
            self.logs[host] = open("/run/migrated-drain-test/manager-%s.log" % host, "ab")
            self.procs[host] = subprocess.Popen([S.SYSTEMD_BIN, "--user", "--log-target=console"],
                                                stdin=subprocess.DEVNULL, stdout=self.logs[host],
                                                stderr=subprocess.STDOUT, preexec_fn=enter,
                                                env=dict(self.env(host), SYSTEMD_LOG_TARGET="console"))
        for host in HOSTS:
            harness.wait_until(lambda: self.systemctl(host, "is-system-running", check=False).stdout.strip()
                               in ("running", "degraded"), S.MANAGER_READY_TIMEOUT, interval=0.05,
                               what="systemd --user of host %s" % host)

    def systemctl(self, host, *args, check=True):
        p = subprocess.run(["systemctl", "--user", "--no-pager"] + list(args), env=self.env(host),
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=S.SYSTEMCTL_TIMEOUT)
        if check and p.returncode != 0:
            raise AssertionError("systemctl --user %s (host %s): %s" % (" ".join(args), host, p.stderr))
        return p

    def shutdown(self):
        for host, p in self.procs.items():
            if p.poll() is None:
                self.systemctl(host, "exit", check=False)
        for p in self.procs.values():
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()


MANAGERS = Managers()


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

    def writer_unit(self, host):
        """wHOST.service in host's manager: a writer on this test's database, started."""
        name = "w" + host
        log = WriterLog(os.path.join(self.workdir, name + ".acks"))
        argv = [PYTHON, PGWRITER, self.cluster.conninfo(self.dbname), log.path, name]
        with open(os.path.join(Managers.unit_dir(host), name + ".service"), "w") as f:
            # SIGTERM to the writer only: it ends its psql itself, after its current insert
            f.write("[Service]\nExecStart=%s\nKillMode=mixed\nTimeoutStopSec=20\n" % S.exec_line(argv))
        MANAGERS.systemctl(host, "daemon-reload")
        MANAGERS.systemctl(host, "start", name + ".service")
        self.addCleanup(lambda: MANAGERS.systemctl(host, "stop", name + ".service", check=False))
        self.logs[name] = log
        harness.wait_until(lambda: len(log.acked()) >= 3, 60, interval=0.05, what="%s writing" % name)
        return log

    def show(self, name, prop):
        return MANAGERS.systemctl(name[1:], "show", "-p", prop, "--value", name + ".service").stdout.strip()

    def pid_of(self, name):
        return int(self.show(name, "MainPID"))

    def running(self, name):
        return self.show(name, "ActiveState") == "active"

    def host(self, name, writer=True, config=""):
        """A daemon for host NAME (sessions named migrated-NAME) with its own user manager, its
        writer wNAME running there."""
        # online = never: these plans are additive; the drain is the breaking path under test
        text = "[units]\nmanager = user\nstop_timeout = 20\nstart_timeout = 30\nonline = never\n"
        if writer:
            self.writer_unit(name)
            text += "units = w%s.service\n" % name
        with open(os.path.join(self.workdir, "host-%s.conf" % name), "w") as f:
            f.write(text + config)
        return self.host_daemon(name)

    def host_daemon(self, name):
        """(Another) daemon for host NAME with its configuration, state directory and manager."""
        path = os.path.join(self.workdir, "host-%s.conf" % name)
        d = self.daemon(name=name, start=False,
                        extra=["--config", path, "--connection",
                               self.cluster.conninfo(self.dbname) + " application_name=migrated-" + name])
        d.env = lambda: MANAGERS.env(name)
        return d.start()

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

    def wait_acks_from_c(self):
        """Until host a's row says it waits for host c's acknowledgement only."""
        harness.wait_until(lambda: self.sql("SELECT 1 FROM migrated_hosts WHERE host = 'a' AND "
                                            "waiting_for LIKE 'acks from hosts c (%'"), 60, interval=0.05,
                           what="a waiting for c's ack")

    def wait_slow_on_a(self):
        """Until host a's session runs SLOW_ON_A's sleep: every host was drained before."""
        harness.wait_until(lambda: self.sql("SELECT 1 FROM pg_stat_activity WHERE application_name = 'migrated-a' "
                                            "AND query LIKE 'SELECT pg_sleep(CASE%'"), 120, interval=0.05,
                           what="a's migration running")

    def liveness_check_after(self, host, t):
        """[[state_change]] when host's liveness session ran its drain check after t, else []."""
        return self.sql("SELECT s.state_change FROM pg_stat_activity s JOIN pg_locks l ON l.pid = s.pid WHERE "
                        "l.locktype = 'advisory' AND l.classid = 1835624307 AND l.objid = hashtext('%s')::oid AND "
                        "s.state = 'idle' AND s.state_change > '%s' AND "
                        "s.query LIKE 'SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_locks%%'" % (host, t))

    def assertCleanExit(self, *daemons):
        """Each daemon, asked to stop, exits 0 (and, in a sanitizer build, with nothing leaked)."""
        for d in daemons:
            self.assertEqual(d.stop(), 0, d.log()[-3000:])

    def assertNoAckLost(self):
        acked = [i for log in self.logs.values() for i in log.acked()]
        have = {int(r[0]) for r in self.sql("SELECT id FROM acks")}
        self.assertEqual([i for i in acked if i not in have], [], "acknowledged inserts lost")
        self.assertGreater(len(acked), 0)

    def test_breaking_plan_drains_every_host_then_starts_every_one(self):
        a, b, c = self.three_hosts()
        old = self.pids_now()
        write(self.migrations, [BREAKING])
        t0 = time.monotonic()
        res = a.call("up", timeout=180)
        answered = time.monotonic() - t0
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
        print("\n3 hosts drained, plan applied: answered after %.2f s, every writer writing again after %.2f s"
              % (answered, time.monotonic() - t0), file=sys.stderr)
        self.assertNoAckLost()
        for d, name in ((b, "b"), (c, "c")):
            self.assertIn("Host a drains this host for job", d.log())
        self.assertIn("Every live host acknowledged the drain", a.log())
        # state files are gone once the units run again
        for name in "abc":
            self.assertFalse(os.path.exists(os.path.join(self.workdir, "state-%s" % name, "units.json")), name)
        self.assertCleanExit(a, b, c)

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
            self.wait_slow_on_a()
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
            self.assertIn("died (its liveness lock went, and nobody holds the writer lock)", d.log())
        self.assertEqual(self.sql("SELECT max(version) FROM migrated_schema"), [["1"]])
        self.assertNoAckLost()

    def test_a_holder_that_loses_its_liveness_session_keeps_the_others_drained(self):
        a, b, c = self.three_hosts()
        old = self.pids_now()
        write(self.migrations, [SLOW_ON_A])
        with harness.Conn(a.socket, 120) as ca:
            ca.send("up")
            self.wait_slow_on_a()
            # a's liveness session ends (as in a network blip); its job's session runs on
            self.sql("SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND "
                     "classid = 1835624307 AND objid = hashtext('a')::oid AND granted")
            (t,), = self.sql("SELECT clock_timestamp()")
            # b and c ask whether their drain holds (every second) on their liveness session: two
            # checks after a's session ended, so the answer to the first one was read
            for name, d in (("b", b), ("c", c)):
                after = t

                def checked():
                    self.assertNotIn("died", d.log(), "host %s ended its drain under a's DDL" % name)
                    return self.liveness_check_after(name, after)
                for _ in range(2):
                    after = harness.wait_until(checked, 60, interval=0.05, what="host %s checking its drain"
                                               % name)[0][0]
            self.assertFalse(self.running("wb") or self.running("wc"))
            for d in (b, c):
                self.assertNotIn("died", d.log())
            a.kill()
        self.assertBackWithNewProcess(old, names=("wb", "wc"))
        self.assertNoAckLost()

    def test_kill_9_of_the_holder_a_waiting_host_drains_and_completes_the_plan(self):
        a, b, c = self.three_hosts()
        write(self.migrations, [SLOW_ON_A])
        with harness.Conn(a.socket, 120) as ca, harness.Conn(c.socket, 120) as cc:
            ca.send("up")
            self.wait_slow_on_a()
            cc.send("up")
            while True:
                ev = cc.read_json(60)
                if ev.get("event") == "lock" and ev.get("holder"):
                    break
            a.kill()
            _, final = cc.read_reply(timeout=120)
        res = harness.result_of(final)
        self.assertEqual((res["status"], res["to_version"]), ("applied", 2), final)
        self.assertIn("host=c", self.sql("SELECT requested_by FROM migrated_attempts WHERE status = 'succeeded' "
                                         "ORDER BY id DESC LIMIT 1")[0][0])
        # b was drained by a, then by c (taken over, or stopped again after its own restart): no
        # writer process of b or c wrote both before and after c's DDL began
        (t,), = self.sql("SELECT t FROM ddl_at")
        self.assertEqual(self.sql("SELECT count(*) FROM acks x WHERE x.writer IN ('wb', 'wc') AND x.at >= '%s' "
                                  "AND EXISTS (SELECT 1 FROM acks y WHERE y.pid = x.pid AND y.at < '%s')" % (t, t)),
                         [["0"]])
        harness.wait_until(lambda: self.running("wb") and self.running("wc"), 60, interval=0.05,
                           what="wb and wc running again")
        self.assertNoAckLost()

    def test_a_drained_host_killed_restarts_its_writer_at_its_next_start(self):
        a, b, c = self.three_hosts()
        old = self.pids_now()
        write(self.migrations, [SLOW_ON_A])
        with harness.Conn(a.socket, 120) as ca:
            ca.send("up")
            self.wait_slow_on_a()
            # b recorded what it stopped before it stopped it, as for a job of its own
            with open(os.path.join(self.workdir, "state-b", "units.json")) as f:
                self.assertIn("wb.service", f.read())
            b.kill()
            self.assertFalse(self.running("wb"))
            again = self.host_daemon("b")  # the same state directory; its start recovers
            harness.wait_until(lambda: self.running("wb") and self.pid_of("wb") != old["wb"], 60, interval=0.05,
                               what="wb started again by b's next daemon")
            self.assertIn("did not start them again; starting them now", again.log())
            a.kill()
        self.assertBackWithNewProcess(old, names=("wc",))
        self.assertNoAckLost()

    def test_a_drained_host_asked_to_stop_starts_its_writer_before_it_exits(self):
        a, b, c = self.three_hosts()
        old = self.pids_now()
        write(self.migrations, [SLOW_ON_A])
        with harness.Conn(a.socket, 120) as ca:
            ca.send("up")
            self.wait_slow_on_a()
            self.assertFalse(self.running("wb"))
            # a clean stop (SIGTERM, as systemctl stop sends): it will not hear the drain's end
            self.assertEqual(b.stop(), 0, b.log()[-3000:])
            self.assertTrue(self.running("wb"), "b exited leaving its writer stopped")
            self.assertNotEqual(self.pid_of("wb"), old["wb"])
            self.assertIn("this daemon is shutting down", b.log())
            # end a's long script: the job fails, and the hosts still drained start again
            self.sql("SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'migrated-a' "
                     "AND query LIKE 'SELECT pg_sleep(CASE%'")
            _, final = ca.read_reply(timeout=120)
        self.assertIsNotNone(harness.error_of(final), final)
        self.assertBackWithNewProcess(old, names=("wa", "wc"))
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
            self.wait_acks_from_c()
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

    def test_a_foreign_format_drains_through_notifies_only_and_names_a_silent_host(self):
        # dbmate's layout: the database holds dbmate's table and the app's, nothing of ours
        def dbmate(version, up):
            with open(os.path.join(self.migrations, "%s_m%d.sql" % (STAMP % version, version)), "w") as f:
                f.write("-- migrate:up\n%s\n-- migrate:down\nSELECT 1;\n" % up)
        dbmate(1, V1[2])
        a, b, c = (self.host(n, config="[postgresql]\ndrain_timeout = 5\n") for n in HOSTS)
        old = self.pids_now()
        dbmate(2, BREAKING[2])
        res = a.call("up", timeout=180)
        self.assertEqual((res["status"], res["to_version"]), ("applied", int(STAMP % 2)), res)
        self.assertEqual(self.sql("SELECT count(*) FROM acks WHERE at >= (SELECT t FROM ddl_at) AND pid IN (%s)"
                                  % ", ".join(str(p) for p in old.values())), [["0"]])
        self.assertBackWithNewProcess(old)
        self.assertEqual(self.sql("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"),
                         [["acks"], ["ddl_at"], ["schema_migrations"]])
        # a host that does not answer is named by its session, as status cannot list it
        old = self.pids_now()
        dbmate(3, "ALTER TABLE acks ADD COLUMN more text;")
        os.kill(c.pid, signal.SIGSTOP)
        self.addCleanup(lambda: c.alive() and os.kill(c.pid, signal.SIGCONT))
        _, final = a.rpc("up", timeout=180)
        err = harness.error_of(final)
        self.assertRegex(err["message"], r"^host migrated-c \(pid \d+\) neither acknowledged the drain")
        self.assertEqual(self.sql("SELECT max(version) FROM schema_migrations"), [[STAMP % 2]])
        self.assertBackWithNewProcess(old, names=("wa", "wb"))
        self.assertNoAckLost()

    def test_a_host_that_dies_during_the_drain_is_dropped(self):
        a, b, c = self.three_hosts()
        old = self.pids_now()
        write(self.migrations, [BREAKING])
        os.kill(c.pid, signal.SIGSTOP)
        with harness.Conn(a.socket, 120) as ca:
            ca.send("up")
            self.wait_acks_from_c()
            c.kill()
            _, final = ca.read_reply(timeout=120)
        res = harness.result_of(final)
        self.assertEqual((res["status"], res["to_version"]), ("applied", 2), final)
        self.assertIn("Host c died during the drain for job", a.log())
        self.assertBackWithNewProcess(old, names=("wa", "wb"))
        self.assertNoAckLost()

    def test_cancel_ends_the_drain_and_every_host_starts_again(self):
        a, b, c = self.three_hosts()
        old = self.pids_now()
        write(self.migrations, [BREAKING])
        os.kill(c.pid, signal.SIGSTOP)
        self.addCleanup(lambda: c.alive() and os.kill(c.pid, signal.SIGCONT))
        with harness.Conn(a.socket, 120) as ca:
            ca.send("up")
            self.wait_acks_from_c()
            a.call("cancel", {})
            _, final = ca.read_reply(timeout=120)
        self.assertEqual(harness.error_of(final)["code"], "cancelled", final)
        self.assertEqual(self.sql("SELECT max(version) FROM migrated_schema"), [["1"]])
        self.assertBackWithNewProcess(old, names=("wa", "wb"))
        self.assertNoAckLost()
        self.assertCleanExit(a, b)

    def test_a_job_waiting_for_another_hosts_lock_keeps_its_dependents_running(self):
        # a plan that leaves acks alone: the writer may write while a's plan runs
        write(self.migrations, [(1,) + SLOW_ON_A[1:]])
        # a drains nobody here: what is under test is b's own order (lock, plan, then its units)
        a = self.host("a", writer=False, config="[postgresql]\ndrain = self\n")
        b = self.host("b")
        old = self.pid_of("wb")
        with harness.Conn(a.socket, 120) as ca, harness.Conn(b.socket, 120) as cb:
            ca.send("up")
            self.wait_slow_on_a()
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
    S.run_tests(MANAGERS.boot, MANAGERS.shutdown)
