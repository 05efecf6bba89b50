# SPDX-License-Identifier: MIT
"""migrated as a systemd service: socket activation (a listening fd passed by systemd),
Type=notify readiness and status, the watchdog."""

import os

import sdharness as S
from sdharness import H

V1 = {1: ("create_devices", "CREATE TABLE devices (id INTEGER PRIMARY KEY, serial TEXT);\n", "DROP TABLE devices;\n")}


class ActivationTest(S.TestCase):

    # 7 ------------------------------------------------------------------------------------------
    def test_socket_activation_first_client_starts_migrated(self):
        mig = H.write_migrations(self.path("migrations"), V1)
        self.create_db()
        self.write_unit(S.MIGRATED_SOCKET_UNIT, "[Unit]\nDescription=migrated test socket\n\n"
                        "[Socket]\nListenStream=%s\nSocketMode=0600\n" % self.sock)
        # the service without --socket: it must use the fd systemd passes (sd_listen_fds)
        argv = self.migrated(mig, socket=False, start=False)
        self.assertNotIn("--socket", argv)
        S.systemctl("start", S.MIGRATED_SOCKET_UNIT)
        self.assertEqual(S.active_state(S.MIGRATED_SOCKET_UNIT), "active")
        self.assertEqual(S.active_state(S.MIGRATED_UNIT), "inactive")
        self.assertTrue(os.path.exists(self.sock))

        r = self.ctl("status", timeout=30)
        self.assertCtl(r, 0)
        st = r.json
        self.assertEqual(st.get("database"), self.db, st)
        self.assertEqual([p["version"] for p in st.get("pending", [])], [1], st)
        self.assertEqual(S.active_state(S.MIGRATED_UNIT), "active", "the first client did not start migrated")
        pid = S.main_pid(S.MIGRATED_UNIT)
        self.assertGreater(pid, 0)
        self.assertFalse(os.path.exists("/run/migrated/migrated.sock"),
                         "migrated created the default socket instead of using systemd's")

        # a job over the activated socket, then a second activation after a stop
        self.assertCtl(self.ctl("up"), 0)
        S.systemctl("stop", S.MIGRATED_UNIT)
        self.assertEqual(S.active_state(S.MIGRATED_SOCKET_UNIT), "active")
        self.assertTrue(os.path.exists(self.sock), "stopping the service must leave systemd's socket in place")
        r = self.ctl("status", timeout=30)
        self.assertCtl(r, 0)
        self.assertEqual(r.json.get("current_version"), 1)
        self.assertNotEqual(S.main_pid(S.MIGRATED_UNIT), pid)

    def test_type_notify_ready_and_status(self):
        mig = H.write_migrations(self.path("migrations"), V1)
        self.create_db()
        self.migrated(mig, start=False)
        S.systemctl("start", S.MIGRATED_UNIT, timeout=40)   # returns once READY=1 arrived
        d = S.show(S.MIGRATED_UNIT, "ActiveState", "SubState", "StatusText", "Type", "MainPID")
        self.assertEqual((d["ActiveState"], d["SubState"], d["Type"]), ("active", "running", "notify"), d)
        self.assertTrue(d["StatusText"].strip(), "no STATUS= text: %r" % d)
        # READY=1 means serving: the socket answers right away
        self.assertCtl(self.ctl("status", timeout=10), 0)

    def test_watchdog(self):
        mig = H.write_migrations(self.path("migrations"), V1)
        self.create_db()
        self.migrated(mig, service_extra="WatchdogSec=1")
        pid = S.main_pid(S.MIGRATED_UNIT)
        first = S.show_int(S.MIGRATED_UNIT, "WatchdogTimestampMonotonic")
        # a keep-alive recorded 3 s (three WatchdogSec) after the first one: the daemon kept
        # sending WATCHDOG=1 (the manager's timestamp is the event waited for)
        S.wait_until(lambda: S.show_int(S.MIGRATED_UNIT, "WatchdogTimestampMonotonic") > first + 3000000, 30,
                     what="a watchdog keep-alive 3 s after the first")
        d = S.show(S.MIGRATED_UNIT, "ActiveState", "MainPID", "NRestarts", "WatchdogTimestampMonotonic", "Result")
        self.assertEqual((d["ActiveState"], int(d["MainPID"]), d["NRestarts"]), ("active", pid, "0"),
                         "killed by the watchdog (no WATCHDOG=1 with WatchdogSec=1): %r" % d)
        self.assertGreater(int(d["WatchdogTimestampMonotonic"]), first, "no watchdog keep-alive seen: %r" % d)
        self.assertCtl(self.ctl("status", timeout=10), 0)


if __name__ == "__main__":
    S.main()
