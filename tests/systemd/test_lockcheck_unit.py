# SPDX-License-Identifier: MIT
"""lock-check names the systemd unit of a process that holds the database: the holder runs as a
real unit of a real (user) manager, and its unit must appear in the report, the verdict and the
recommended action."""

import json
import os
import sys

import sdharness as S
from sdharness import H

HOLDER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration", "holder.py")


class LockCheckUnitTest(S.TestCase):

    def holder_unit(self, mode):
        unit = "holder%d-%s.service" % (self.n, mode)
        argv = [sys.executable, os.path.abspath(HOLDER), self.db, mode, "--wait", "signal"]
        self.write_unit(unit, "[Service]\nType=notify\nNotifyAccess=all\nExecStart=%s\n" % S.exec_line(argv))
        S.systemctl("start", unit)
        S.wait_state(unit, ["active"])
        return unit, S.main_pid(unit)

    def lock_check(self):
        r = H.ctl("lock-check", "--database", self.db, json_out=True, timeout=30)
        return r.rc, json.loads(r.out)

    def test_writer_unit_is_named(self):
        self.create_db("CREATE TABLE t (x);")
        unit, pid = self.holder_unit("write")
        code, report = self.lock_check()
        self.assertEqual(code, 6, report)
        self.assertEqual(report["verdict"], "writer_active", report)
        holders = {h["pid"]: h for h in report["holders"]}
        self.assertIn(pid, holders, report["holders"])
        self.assertEqual(holders[pid]["unit"], unit)
        self.assertEqual(report["blocker"]["pid"], pid)
        self.assertEqual(report["blocker"]["unit"], unit)
        self.assertIn(unit, report["action"])
        self.assertTrue(any(l["pid"] == pid and l["sqlite_lock"] == "WAL_WRITE" for l in report["locks"]),
                        report["locks"])
        S.systemctl("stop", unit)
        code, report = self.lock_check()
        self.assertEqual(code, 0, report)
        self.assertNotIn(pid, [h["pid"] for h in report["holders"]])

    def test_reader_unit_is_named_and_does_not_block(self):
        self.create_db("CREATE TABLE t (x);")
        unit, pid = self.holder_unit("read")
        code, report = self.lock_check()
        self.assertEqual(code, 0, report)
        self.assertEqual(report["verdict"], "readers_only", report)
        self.assertEqual({h["pid"]: h["unit"] for h in report["holders"]}.get(pid), unit, report["holders"])


if __name__ == "__main__":
    S.main()
