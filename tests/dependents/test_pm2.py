# SPDX-License-Identifier: MIT
"""pm2 dependents: real pm2 (npm, package-lock.json beside this file) running real processes that
hold the WAL database open and write continuously; migrated stops them through pm2 (as their
PM2_HOME), migrates, and starts them again, on every path. Every acknowledged insert survives."""

import os
import signal

import deplib as D
from deplib import H

PM2_BIN = None


def setUpModule():
    global PM2_BIN
    PM2_BIN = D.install_pm2()


class PM2Test(H.TestCase):

    def setUp(self):
        super().setUp()
        self.db = self.path("app.sqlite")
        D.create_db(self.db)
        self.mig = D.migrations(self.path("migrations"))
        self.pm2 = D.PM2(self, PM2_BIN, self.path("pm2home"))

    def config(self, names, stop_timeout=10, start_timeout=30, extra=""):
        path = self.path("migrated.conf")
        text = ("[database]\npath = %s\n[migrations]\ndirectory = %s\n[units]\nunits = %s\n"
                "stop_timeout = %d\nstart_timeout = %d\n" % (self.db, self.mig, " ".join("pm2:" + n for n in names),
                                                            stop_timeout, start_timeout))
        for n in names:
            text += "[pm2.%s]\nhome = %s\npm2 = %s\n" % (n, self.pm2.home, PM2_BIN)
        with open(path, "w") as f:
            f.write(text + extra)
        return path

    def start_daemon(self, names, **kw):
        return self.daemon(config=self.config(names, **kw), database=None)

    def writers(self, names, mode="write", **kw):
        logs = [self.pm2.start_writer(n, self.db, mode=mode, **kw) for n in names]
        for log in logs:
            log.wait_acks(10)
        return logs

    def assertOnlineAgain(self, name, old_pid, log):
        status, pid = D.wait_for(lambda: (lambda s: s if s[0] == "online" and s[1] else None)(self.pm2.state(name)),
                                 "%s online again" % name)
        self.assertNotEqual(pid, old_pid, "%s was not restarted" % name)
        self.assertEqual(log.starts()[-1], pid)
        log.wait_acks(5)

    def test_processes_stopped_migrated_started_no_ack_lost(self):
        logs = self.writers(["api", "worker"])
        pids = {n: self.pm2.state(n)[1] for n in ("api", "worker")}
        d = self.start_daemon(["api", "worker"])

        r = d.ctl("up")
        self.assertCtl(r, 0)
        res = r.json
        self.assertEqual((res.get("status"), res.get("to_version")), ("applied", 3), res)
        self.assertEqual(H.applied_versions(self.db), [1, 2, 3])
        stopped = {o["unit"]: o for o in res["units"]["stopped"]}
        started = {o["unit"]: o for o in res["units"]["started"]}
        self.assertEqual(set(stopped), {"pm2:api", "pm2:worker"}, res)
        for n, log in zip(("api", "worker"), logs):
            self.assertTrue(stopped["pm2:" + n]["ok"] and not stopped["pm2:" + n]["killed"], stopped)
            self.assertTrue(started["pm2:" + n]["ok"], started)
            # stopped cleanly by pm2 (SIGINT), then a new process
            self.assertIn(("stop", pids[n]), [(k, v) for k, v, _ in log.records()])
            self.assertOnlineAgain(n, pids[n], log)
        self.assertGreaterEqual(len(D.all_acked_in_db(self, self.db, logs)), 30)
        self.assertFalse(os.path.exists(os.path.join(d.state_dir(), "units.json")))

    def test_process_that_refuses_to_stop_is_killed(self):
        # pm2 itself would wait 10 minutes (--kill-timeout) before its own SIGKILL
        logs = self.writers(["stubborn"], mode="ignore-term", kill_timeout_ms=600000)
        old = self.pm2.state("stubborn")[1]
        d = self.start_daemon(["stubborn"], stop_timeout=2)

        r = d.ctl("up")
        self.assertCtl(r, 0)
        stopped = r.json["units"]["stopped"][0]
        self.assertEqual((stopped["unit"], stopped["ok"], stopped["killed"]), ("pm2:stubborn", True, True), stopped)
        self.assertEqual(H.applied_versions(self.db), [1, 2, 3])
        self.assertOnlineAgain("stubborn", old, logs[0])
        D.all_acked_in_db(self, self.db, logs)

    def test_failing_migration_still_restarts_the_processes(self):
        D.failing_migration(self.mig)
        logs = self.writers(["api"])
        old = self.pm2.state("api")[1]
        d = self.start_daemon(["api"])

        r = d.ctl("up")
        self.assertNotEqual(r.rc, 0, r)
        self.assertEqual(H.applied_versions(self.db), [])
        self.assertOnlineAgain("api", old, logs[0])
        D.all_acked_in_db(self, self.db, logs)
        self.assertFalse(os.path.exists(os.path.join(d.state_dir(), "units.json")))

    def test_kill9_of_migrated_mid_job_processes_come_back(self):
        H.write_migrations(self.mig, {4: ("slow", H.slow_sql("big"), "DROP TABLE big;\n")})
        logs = self.writers(["api", "worker"])
        pids = {n: self.pm2.state(n)[1] for n in ("api", "worker")}
        d = self.start_daemon(["api", "worker"])
        c = H.Conn(d.socket)
        self.addCleanup(c.close)
        c.send("up", {})
        # both processes down (pm2 says stopped) and the slow migration running
        D.wait_for(lambda: all(self.pm2.state(n)[0] == "stopped" for n in ("api", "worker")), "both stopped")
        D.wait_for(lambda: any(a["status"] == "running" for a in H.attempts(self.db)), "a migration running")
        d.kill()
        self.assertEqual(self.pm2.state("api")[0], "stopped")

        d2 = self.daemon(config=self.config(["api", "worker"]), database=None)
        for n, log in zip(("api", "worker"), logs):
            self.assertOnlineAgain(n, pids[n], log)
        self.assertNotIn(4, H.applied_versions(self.db))
        D.all_acked_in_db(self, self.db, logs)
        self.assertFalse(os.path.exists(os.path.join(d2.state_dir(), "units.json")))

    def test_lock_check_names_the_pm2_process(self):
        self.writers(["api"])
        pid = self.pm2.state("api")[1]
        d = self.start_daemon(["api"])
        r = d.ctl("lock-check")
        holders = {h["pid"]: h.get("unit") for h in r.json.get("holders", [])}
        self.assertEqual(holders.get(pid), "pm2:api", r)
        human = d.ctl("lock-check", json_out=False)
        self.assertRegex(human.out, r"(?m)^\s*%d\s.*pm2:api" % pid, human)


if __name__ == "__main__":
    H.main()
