# SPDX-License-Identifier: MIT
"""The harness itself, without migrated: the namespace, the user manager, the writer units. When
these fail, the other systemd tests' failures say nothing about migrated."""

import os
import signal

import sdharness as S
from sdharness import H


class HarnessTest(S.TestCase):

    def test_namespace(self):
        self.assertEqual(os.getpid(), 1, "the tests must run as PID 1 of their own PID namespace")
        self.assertEqual(os.environ.get("XDG_RUNTIME_DIR"), "/run/user/%d" % os.getuid())
        self.assertTrue(os.path.exists(os.path.join(os.environ["XDG_RUNTIME_DIR"], "systemd", "private")))
        with open("/proc/self/mountinfo") as f:
            run = [line for line in f if line.split()[4] == "/run"]
        self.assertTrue(run and " tmpfs " in run[-1], run)
        self.assertIn(S.systemctl("is-system-running", check=False).stdout.strip(), ("running", "degraded"))
        # the manager runs in this run's own cgroup, so concurrent runs do not share /app.slice
        if os.environ.get(S.NS_CGROUPS):
            cg = S.show("init.scope", "ControlGroup")["ControlGroup"]
            self.assertRegex(cg, r"/migrated-sd-\d+/init\.scope$")

    def test_writer_unit_writes_and_stops_cleanly(self):
        self.create_db()
        w = self.writer("a")
        pid = w.pid()
        self.assertGreater(pid, 1)
        w.wait_acks(10)
        self.assertEqual(S.show(w.unit, "ControlGroup")["ControlGroup"].rsplit("/", 1)[-1], w.unit)
        # the writer has the database, its -wal and -shm open
        fds = set()
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                fds.add(os.readlink("/proc/%d/fd/%s" % (pid, fd)))
            except OSError:
                pass
        for suffix in ("", "-wal", "-shm"):
            self.assertIn(self.db + suffix, fds)
        S.systemctl("stop", w.unit, timeout=20)
        self.assertEqual(w.state(), "inactive")
        self.assertEqual(w.records()[-1][:2], ("stop", pid), "SIGTERM must end the writer cleanly")
        acked = self.assertAllAckedInDb([w])
        self.assertGreaterEqual(len(acked), 10)
        w.start()
        self.assertRestarted(w, pid)
        w.wait_acks(3)
        self.assertEqual(w.starts()[-1], w.pid())

    def test_ignore_term_writer_needs_sigkill(self):
        self.create_db()
        w = self.writer("stubborn", mode="ignore-term", extra_service="TimeoutStopSec=3")
        pid = w.pid()
        w.wait_acks(3)
        S.systemctl("stop", w.unit, timeout=30)   # systemd escalates to SIGKILL after 3 s
        st = S.show(w.unit, "ActiveState", "Result")
        self.assertIn(st["ActiveState"], ("inactive", "failed"), st)
        self.assertNotIn("stop", [k for k, _, _ in w.records()], "the writer did not ignore SIGTERM")
        self.assertAllAckedInDb([w])
        with self.assertRaises(ProcessLookupError):
            os.kill(pid, 0)

    def test_fail_and_hold_modes(self):
        self.create_db()
        bad = self.writer("bad", mode="fail", start=False)
        p = S.systemctl("start", bad.unit, check=False, timeout=30)
        self.assertNotEqual(p.returncode, 0)
        self.assertEqual(bad.state(), "failed")
        holder = self.writer("hold", mode="hold")
        self.assertEqual(holder.acked_ids(), [])
        self.assertEqual(holder.state(), "active")
        os.kill(holder.pid(), signal.SIGTERM)
        S.wait_state(holder.unit, "inactive")

    def test_unit_files_and_quoting(self):
        self.create_db()
        argv = [H.MIGRATED_BIN, "--units", "a.service b.service", "100%"]
        self.assertEqual(S.exec_line(argv), '%s --units "a.service b.service" "100%%%%"' % H.MIGRATED_BIN)
        # the manager sees the argument vector we meant
        text = "[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=%s\n" % S.exec_line(
            ["/bin/sh", "-c", 'printf "%s|" "$@" > ' + self.path("argv"), "sh", "a.service b.service", "100%"])
        self.write_unit("argv-test-%d.service" % self.n, text)
        S.systemctl("start", "argv-test-%d.service" % self.n, timeout=20)
        with open(self.path("argv")) as f:
            self.assertEqual(f.read(), "a.service b.service|100%|")


if __name__ == "__main__":
    S.main()
