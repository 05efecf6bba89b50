# SPDX-License-Identifier: MIT
"""exec: dependents: a stop, a start and a check command from the configuration, here shell
scripts that stop and start a real writer holding the WAL database open. Stopped, migrated,
started again; a failing migration still starts it; a start that fails is units_failed; bad
configuration is refused before anything runs. No acknowledged insert lost."""

import os
import subprocess

import deplib as D
from deplib import H

UNITS_FAILED_EXIT = 8  # client/exit-codes.h: EXIT_UNITS_FAILED


class ExecTest(H.TestCase):

    def setUp(self):
        super().setUp()
        self.db = self.path("app.sqlite")
        D.create_db(self.db)
        self.mig = D.migrations(self.path("migrations"))

    def scripts(self, name, start_fails=False, tag=""):
        """start/stop/check scripts for writer NAME; returns (dict of paths, its log)."""
        log = D.Log(self.path(name + ".acks"))
        pidfile = self.path(name + ".pid")
        paths = {}
        bodies = {
            "start": "exit 3\n" if start_fails else
                     "setsid %s %s %s %s %s </dev/null >>%s.out 2>&1 &\necho $! > %s\n" % (
                         D.PYTHON, D.WRITER, self.db, log.path, name, self.path(name), pidfile),
            "stop": "kill -TERM \"$(cat %s)\"\n" % pidfile,
            "check": "test -s %s && kill -0 \"$(cat %s)\" 2>/dev/null\n" % (pidfile, pidfile),
        }
        for verb, body in bodies.items():
            p = self.path("%s%s-%s.sh" % (name, tag, verb))
            with open(p, "w") as f:
                f.write("#!/bin/sh\n" + body)
            os.chmod(p, 0o755)
            paths[verb] = p
        self.addCleanup(lambda: subprocess.run(["sh", paths["stop"]], stderr=subprocess.DEVNULL))
        return paths, log

    def config(self, deps, extra=""):
        path = self.path("migrated.conf")
        text = ("[database]\npath = %s\n[migrations]\ndirectory = %s\n[units]\nunits = %s\n"
                "stop_timeout = 10\nstart_timeout = 20\n" % (self.db, self.mig, " ".join("exec:" + n for n in deps)))
        for n, paths in deps.items():
            text += "[exec.%s]\n" % n + "".join("%s = %s\n" % kv for kv in paths.items())
        with open(path, "w") as f:
            f.write(text + extra)
        return path

    def running_writer(self, name, **kw):
        paths, log = self.scripts(name, **kw)
        good, _ = self.scripts(name, tag="-initial") if kw else (paths, log)
        subprocess.run(["sh", good["start"]], check=True)
        log.wait_acks(10)
        return paths, log

    def test_scripts_stop_and_start_a_writer_no_ack_lost(self):
        paths, log = self.running_writer("w")
        first = log.starts()[-1]
        d = self.daemon(config=self.config({"w": paths}), database=None)

        r = d.ctl("up")
        self.assertCtl(r, 0)
        res = r.json
        self.assertEqual(H.applied_versions(self.db), [1, 2, 3])
        self.assertEqual([(o["unit"], o["ok"]) for o in res["units"]["stopped"]], [("exec:w", True)], res)
        self.assertEqual([(o["unit"], o["ok"]) for o in res["units"]["started"]], [("exec:w", True)], res)
        self.assertIn(("stop", first), [(k, v) for k, v, _ in log.records()])
        D.wait_for(lambda: log.starts()[-1] != first, "a new writer")
        log.wait_acks(5)
        D.all_acked_in_db(self, self.db, [log])
        self.assertFalse(os.path.exists(os.path.join(d.state_dir(), "units.json")))

    def test_failing_migration_still_starts_it(self):
        D.failing_migration(self.mig)
        paths, log = self.running_writer("w")
        first = log.starts()[-1]
        d = self.daemon(config=self.config({"w": paths}), database=None)

        r = d.ctl("up")
        self.assertNotEqual(r.rc, 0, r)
        self.assertEqual(H.applied_versions(self.db), [])
        D.wait_for(lambda: log.starts()[-1] != first, "a new writer")
        log.wait_acks(5)
        D.all_acked_in_db(self, self.db, [log])

    def test_start_that_fails_is_units_failed(self):
        paths, log = self.running_writer("w", start_fails=True)
        d = self.daemon(config=self.config({"w": paths}), database=None)

        r = d.ctl("up")
        self.assertEqual(r.rc, UNITS_FAILED_EXIT, r)
        self.assertEqual(H.applied_versions(self.db), [1, 2, 3], "the migration itself succeeded")
        self.assertIn("exec:w", r.out + r.err)
        self.assertIn("its start command exited with 3", r.out + r.err)
        self.assertIn("its check command: ", r.out + r.err)
        r2 = d.ctl("up")
        self.assertCtl(r2, 0)  # nothing pending, nothing stopped

    def test_stop_that_leaves_it_running_is_units_failed(self):
        paths, log = self.running_writer("w")
        first = log.starts()[-1]
        paths = dict(paths, stop="true", stop_timeout="2")  # exits 0, stops nothing
        d = self.daemon(config=self.config({"w": paths}), database=None)

        r = d.ctl("up")
        self.assertEqual(r.rc, UNITS_FAILED_EXIT, r)
        self.assertIn("could not stop exec:w (timeout); nothing was changed", r.out + r.err)
        self.assertEqual(H.applied_versions(self.db), [], "nothing may change while it still runs")
        log.wait_acks(log.acks_since_last_start() + 5)
        self.assertEqual(log.starts(), [first], "still running: it must not be started a second time")
        D.all_acked_in_db(self, self.db, [log])

    def test_exec_without_its_commands_is_refused(self):
        path = self.config({"w": {"check": "true"}})
        d = self.daemon(config=path, database=None, start=False)
        d.start(wait=False)
        self.assertEqual(d.wait(), 2)
        self.assertIn("exec:w needs a [exec.w] section with stop= and start=", d.log())

    def test_unknown_key_and_kind_are_refused(self):
        for extra, units, what in (("[exec.w]\nstop = true\nstart = true\nstrat = x\n", "exec:w", "unknown key"),
                                   ("", "podman:w", "pm2:NAME, exec:NAME"),
                                   ("", "compose:myapp", "compose:PROJECT/SERVICE"),
                                   ("", "container:a/b", "compose:PROJECT/SERVICE")):
            path = self.config({}, extra=extra).replace("\n", "\n")
            with open(path) as f:
                text = f.read().replace("units = \n", "units = %s\n" % units)
            with open(path, "w") as f:
                f.write(text)
            d = self.daemon(config=path, database=None, start=False)
            d.start(wait=False)
            self.assertEqual(d.wait(), 2, d.log())
            self.assertIn(what, d.log())

    def blocking_check(self, running=False):
        """An exec: dependent whose first check blocks on a FIFO until the test releases it, and
        says "not running" (nothing to stop), or "running"; later checks answer at once."""
        fifo, mark, released = self.path("gate.fifo"), self.path("check.started"), self.path("check.released")
        os.mkfifo(fifo)
        check = self.path("slow-check.sh")
        with open(check, "w") as f:
            f.write("#!/bin/sh\nif [ ! -e %s ]; then\n echo running > %s\n cat %s >/dev/null\n touch %s\nfi\nexit %d\n"
                    % (released, mark, fifo, released, 0 if running else 1))
        os.chmod(check, 0o755)
        return {"stop": "true", "start": "true", "check": check}, fifo, mark, released

    def assert_loop_answers_while_check_runs(self, method, params):
        """method's dependents query runs the blocking check; meanwhile another client's hello and
        status are answered, before the check is released (ordering, not timing)."""
        paths, fifo, mark, released = self.blocking_check()
        d = self.daemon(config=self.config({"w": paths}), database=None)
        with H.Conn(d.socket, timeout=120) as slow:
            slow.send(method, params, id=7)
            D.wait_for(lambda: os.path.exists(mark), "the check command to start")
            _, hello = d.rpc("hello", timeout=20)
            H.result_of(hello)
            status = d.call("status", timeout=20)
            # the check is still blocked: its reader holds the FIFO open (else ENXIO)
            try:
                fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as e:
                self.fail("the check command no longer runs after the replies (%s): they waited for it" % e)
            os.write(fd, b"go\n")
            os.close(fd)
            _, final = slow.read_reply(7, timeout=120)
        self.assertTrue(os.path.exists(released))
        return status, H.result_of(final)

    def test_loop_answers_while_lock_check_asks_a_slow_check(self):
        _, report = self.assert_loop_answers_while_check_runs("lock_check", None)
        self.assertIn({"unit": "exec:w", "load_state": "loaded", "active_state": "inactive", "sub_state": "dead"},
                      report["units"], report)

    def test_loop_answers_while_up_asks_a_slow_check(self):
        _, res = self.assert_loop_answers_while_check_runs("up", {})
        self.assertEqual(H.applied_versions(self.db), [1, 2, 3], res)
        self.assertEqual(res["units"]["stopped"], [], "a dependent that does not run is not stopped")

    def test_cancel_while_the_check_runs_touches_nothing(self):
        paths, fifo, mark, released = self.blocking_check(running=True)
        stopped = self.path("stopped")
        paths["stop"] = "touch " + stopped
        d = self.daemon(config=self.config({"w": paths}), database=None)
        with H.Conn(d.socket, timeout=120) as slow:
            slow.send("up", {}, id=3)
            D.wait_for(lambda: os.path.exists(mark), "the check command to start")
            H.result_of(d.rpc("cancel", {}, timeout=20)[1])
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            os.write(fd, b"go\n")
            os.close(fd)
            _, final = slow.read_reply(3, timeout=120)
        self.assertIn("cancelled before the migration started", H.error_of(final)["message"], final)
        self.assertEqual(H.applied_versions(self.db), [])
        self.assertFalse(os.path.exists(os.path.join(d.state_dir(), "units.json")))
        self.assertFalse(os.path.exists(stopped), "a job cancelled while it asked must not stop anything")


if __name__ == "__main__":
    H.main()
