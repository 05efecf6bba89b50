# SPDX-License-Identifier: MIT
"""Units are never left down (issue "down, restore, failed starts, gates"): gated services and a
deliberate rollback, jobs refused before anything stops, units whose start fails or times out, a
stale failure that must not open the gate. Each path prints the units' states before and after
and the job's exit code (a "PATH" line)."""

import os
import subprocess
import textwrap

import sdharness as S
from sdharness import H

V1 = {1: ("create_devices", "CREATE TABLE devices (id INTEGER PRIMARY KEY, serial TEXT);\n",
          "DROP TABLE devices;\n")}
V2 = {2: ("add_settings", "CREATE TABLE settings (k TEXT PRIMARY KEY, v TEXT);\n", "DROP TABLE settings;\n")}
V3 = {3: ("add_notes", "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);\n", "DROP TABLE notes;\n")}
BROKEN2 = {2: ("broken", "CREATE TABLE ok_part (x);\nINSERT INTO no_such_table VALUES (1);\n", None)}


def states(units):
    return {u: S.active_state(u) for u in units}


class UnitsBackTest(S.TestCase):

    def gated(self, tag, timeout=20, strict=False, extra=""):
        argv = [H.MIGRATECTL_BIN, "--socket", self.sock, "wait", "--timeout", str(timeout)]
        if strict:
            argv.append("--strict")
        return self.writer(tag, start=False, extra_service="ExecStartPre=" + S.exec_line(argv) + "\n" + extra)

    def path_report(self, name, units, before, rc):
        after = states(units)
        S.print_figure("PATH %s: before %s; after %s; exit %s" % (name, before, after, rc))
        return after

    def job_path(self, name, ws, rc, *args):
        """Runs migratectl ARGS as one path of the report: the units' states before and after and
        the exit code are printed; returns the result and the units' main PIDs before it."""
        units = [w.unit for w in ws]
        pids = {w: w.pid() for w in ws}
        before = states(units)
        r = self.ctl(*args, timeout=60)
        self.path_report(name, units, before, r.rc)
        self.assertCtl(r, rc)
        return r, pids

    def setup_gated(self, migrations, n=2, up_to=None, wait_timeout=20, **kw):
        self.create_db()
        ws = [self.gated(t, timeout=wait_timeout) for t in "ab"[:n]]
        self.migrated(migrations, units=[w.unit for w in ws], **kw)
        self.assertCtl(self.ctl("up", *(["--to", str(up_to)] if up_to else [])), 0)
        for w in ws:
            w.start()
            w.wait_acks(3)
        return ws

    def rescan_with(self, mig, migrations):
        H.write_migrations(mig, migrations)
        S.systemctl("kill", "--kill-whom=main", "--signal=SIGHUP", S.MIGRATED_UNIT)
        want = sorted(migrations)
        S.wait_until(lambda: [p["version"] for p in self.call("status", timeout=5)["pending"]][-len(want):] == want,
                     10, what="migrations %s pending after SIGHUP" % want)

    def with_args(self, mig, ws, extra_args):
        """Restarts migrated with more arguments (after the setup's first job)."""
        self.migrated(mig, units=[w.unit for w in ws], start=False, extra_args=extra_args)
        self.restart_migrated()

    def restart_migrated(self):
        S.systemctl("restart", S.MIGRATED_UNIT, timeout=45)
        S.wait_state(S.MIGRATED_UNIT, "active")
        self.wait_socket()

    def assertAllActive(self, ws, pids=None):
        for w in ws:
            if pids:
                self.assertRestarted(w, pids[w])
            else:
                S.wait_state(w.unit, "active")

    def assertWaitOpens(self, strict=False):
        r = self.ctl("wait", "--timeout", "3", *(["--strict"] if strict else []), timeout=20)
        self.assertCtl(r, 0)
        return r.json

    def assertWaitShut(self, strict=False):
        r = self.ctl("wait", "--timeout", "1", *(["--strict"] if strict else []), timeout=20)
        self.assertCtl(r, 7)

    # down, down --to, restart, up --------------------------------------------------------------
    def test_down_holds_gated_units_up_and_survives_restart(self):
        mig = H.write_migrations(self.path("migrations"), {**V1, **V2, **V3})
        ws = self.setup_gated(mig)
        units = [w.unit for w in ws]
        r, pids = self.job_path("down (gated units)", ws, 0, "down")
        self.assertEqual(H.applied_versions(self.db), [1, 2])
        self.assertAllActive(ws, pids)
        got = self.assertWaitOpens()
        self.assertIs(got["schema_current"], False, got)
        self.assertIn("held", got["reason"])
        self.assertWaitOpens(strict=True)  # the operator chose this version: strict gates open too
        gate = self.call("status", timeout=10)["gate"]
        self.assertEqual((gate["target"], gate["latest"], gate["pending"]), (2, 3, 1), gate)
        self.assertEqual((gate["hold"]["by"], gate["hold"]["version"]), ("down", 2), gate)
        text = self.ctl("status", json_out=False, timeout=10).out
        self.assertRegex(text, r"held at 2 by down, job \d+; 1 migration pending; `migratectl up` to apply")

        # down --to 1: still held, at 1
        r, pids = self.job_path("down --to 1 (gated units)", ws, 0, "down", "--to", "1")
        self.assertAllActive(ws, pids)
        self.assertEqual(self.call("status", timeout=10)["gate"]["target"], 1)

        # the hold survives a restart of the daemon, which --auto-up respects: gated units still start
        self.with_args(mig, ws, ["--auto-up"])
        self.assertEqual(self.call("status", timeout=10)["gate"]["hold"]["version"], 1)
        self.assertIn("--auto-up: not applying, the schema is held at version 1", self.read_migrated_log())
        self.assertEqual(H.applied_versions(self.db), [1])
        pids = {w: w.pid() for w in ws}
        before = states(units)
        S.systemctl("restart", *units, timeout=40)
        self.path_report("systemctl restart after a daemon restart (held at 1)", units, before, 0)
        self.assertAllActive(ws, pids)

        # a rescan that adds a file does not end the hold
        H.write_migrations(mig, {4: ("add_tags", "CREATE TABLE tags (t TEXT);\n", "DROP TABLE tags;\n")})
        S.systemctl("kill", "--kill-whom=main", "--signal=SIGHUP", S.MIGRATED_UNIT)
        S.wait_until(lambda: self.call("status", timeout=5)["gate"]["pending"] == 3, 10, what="rescan")
        self.assertWaitOpens()

        # only up ends it: the gate is then the plain one again
        r, pids = self.job_path("up after down (releases the hold)", ws, 0, "up")
        self.assertAllActive(ws, pids)
        self.assertIsNone(self.call("status", timeout=10)["gate"]["hold"])
        self.assertFalse(os.path.exists(self.gate_file), "gate.json left after the hold ended")
        got = self.assertWaitOpens(strict=True)
        self.assertIs(got["schema_current"], True, got)

    # restore -----------------------------------------------------------------------------------
    def test_restore_to_an_older_backup_holds_gated_units_up(self):
        mig = H.write_migrations(self.path("migrations"), V1)
        ws = self.setup_gated(mig)
        units = [w.unit for w in ws]
        old = self.call("backup")["backup"]["file"]   # a backup at version 1
        self.rescan_with(mig, V2)
        self.assertCtl(self.ctl("up", timeout=60), 0)
        for w in ws:
            S.wait_state(w.unit, "active")
        r, pids = self.job_path("restore to a backup at version 1 (gated units)", ws, 0, "restore", old)
        self.assertEqual(H.applied_versions(self.db), [1])
        self.assertAllActive(ws, pids)
        gate = self.call("status", timeout=10)["gate"]
        self.assertEqual((gate["hold"]["by"], gate["target"], gate["latest"]), ("restore", 1, 2), gate)
        self.assertWaitOpens()

    # a job that fails before any SQL, after the units stopped ----------------------------------
    def test_failure_before_sql_gated_units_run_again(self):
        mig = H.write_migrations(self.path("migrations"), V1)
        stray = """import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute("SELECT 1 FROM sqlite_master").fetchall()
print("holding", flush=True)
time.sleep(3600)
"""
        ws = self.setup_gated(mig, holder_timeout=1)
        units = [w.unit for w in ws]
        H.write_migrations(mig, V2)
        S.systemctl("kill", "--kill-whom=main", "--signal=SIGHUP", S.MIGRATED_UNIT)
        S.wait_until(lambda: self.call("status", timeout=5)["gate"]["pending"] == 1, 10, what="rescan")
        p = self.spawn([S.PYTHON, "-c", stray, self.db])
        self.assertEqual(p.stdout.readline().strip(), b"holding")
        r, pids = self.job_path("up failing before SQL (database_in_use, gated units)", ws, 6, "up")
        self.assertAllActive(ws, pids)
        self.assertEqual(H.applied_versions(self.db), [1])
        self.assertEqual(self.call("status", timeout=10)["gate"]["failed_plan"]["versions"], [2])

    def test_backup_dir_not_writable_refused_before_stopping(self):
        mig = H.write_migrations(self.path("migrations"), V1)
        ro = self.path("ro-backups")
        os.makedirs(ro)
        subprocess.run(["mount", "--bind", ro, ro], check=True)
        self.addCleanup(subprocess.run, ["umount", "-l", ro])
        subprocess.run(["mount", "-o", "remount,bind,ro", ro], check=True)
        ws = self.setup_gated(mig)
        self.with_args(mig, ws, ["--backup-dir", os.path.join(ro, "b")])
        units = [w.unit for w in ws]
        H.write_migrations(mig, V2)
        r, pids = self.job_path("up with the backup directory not writable", ws, 1, "up")
        err = r.json["error"]
        self.assertEqual(err["code"], "not_writable", err)
        self.assertIn(ro, err["message"])
        for w in ws:
            self.assertEqual(w.pid(), pids[w], "%s was stopped for a job that could not succeed" % w.unit)
        self.assertNotIn("units", err)

    def test_backup_space_short_units_never_stopped(self):
        mig = H.write_migrations(self.path("migrations"), V1)
        small = self.path("small")
        os.makedirs(small)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", small], check=True)
        self.addCleanup(subprocess.run, ["umount", "-l", small])
        ws = self.setup_gated(mig)
        self.with_args(mig, ws, ["--backup-dir", os.path.join(small, "b")])
        units = [w.unit for w in ws]
        H.write_migrations(mig, V2)
        pids = {w: w.pid() for w in ws}
        restarts = {w: S.show_int(w.unit, "NRestarts") for w in ws}
        before = states(units)
        r = self.ctl("up", timeout=60)
        self.path_report("up with too little space for the backup", units, before, r.rc)
        self.assertCtl(r, 1)
        self.assertEqual(r.json["error"]["code"], "backup_space", r.json)
        for w in ws:
            self.assertEqual(w.pid(), pids[w], "%s was stopped for a job that could not back up" % w.unit)
            self.assertEqual(S.show_int(w.unit, "NRestarts"), restarts[w])
        self.assertEqual(H.applied_versions(self.db), [1])

    # units whose start fails or times out ------------------------------------------------------
    def test_unit_start_failure_and_timeout_are_units_failed(self):
        mig = H.write_migrations(self.path("migrations"), V1)
        flag = self.path("break-starts")
        self.create_db()
        fails = self.writer("fails", start=False, extra_service="ExecStartPre=/bin/sh -c 'test ! -e %s'" % flag)
        hangs = self.writer("hangs", start=False,
                            extra_service="ExecStartPre=/bin/sh -c 'test ! -e %s || exec sleep 600'" % flag)
        good = self.writer("good", start=False)
        ws = [fails, hangs, good]
        units = [w.unit for w in ws]
        self.migrated(mig, units=units, start_timeout=3)
        self.assertCtl(self.ctl("up"), 0)
        for w in ws:
            w.start()
        H.write_migrations(mig, V2)
        open(flag, "w").close()
        before = states(units)
        r = self.ctl("up", json_out=False, timeout=60)
        self.path_report("up with one unit failing and one timing out on start", units, before, r.rc)
        self.assertCtl(r, 8)
        text = r.out + r.err
        self.assertIn("FAILED: %s did not start" % fails.unit, text)
        self.assertIn("FAILED: %s did not start" % hangs.unit, text)
        self.assertNotRegex(text, r"started %s" % fails.unit)
        self.assertIn("systemctl --user status", text)
        self.assertIn("succeeded (applied)", text)
        self.assertEqual(H.applied_versions(self.db), [1, 2])
        S.wait_state(good.unit, "active")

        # the same over the protocol: each unit, its outcome, how to look, the database's outcome
        os.unlink(flag)
        S.systemctl("reset-failed", fails.unit, hangs.unit, check=False)
        S.systemctl("stop", hangs.unit, check=False)
        for w in ws:
            w.start()
        open(flag, "w").close()
        H.write_migrations(mig, V3)
        _, final = self.rpc("up", {})
        err = self.assertError(final, "units_failed")
        by_unit = {u["unit"]: u for u in err["units_failed"]}
        self.assertEqual(sorted(by_unit), sorted([fails.unit, hangs.unit]), err)
        self.assertEqual(by_unit[hangs.unit]["outcome"], "timeout", err)
        self.assertIn(by_unit[fails.unit]["outcome"], ("failed", "dependency"), err)
        self.assertEqual(by_unit[fails.unit]["journal"], "journalctl --user -u %s" % fails.unit)
        self.assertEqual(err["database"]["status"], "applied", err)
        self.assertEqual(H.applied_versions(self.db), [1, 2, 3])
        S.systemctl("stop", hangs.unit, check=False)

    # a stale failure does not open the gate for a migration never tried -----------------------
    def test_stale_failure_keeps_the_gate_shut_for_a_new_migration(self):
        mig = H.write_migrations(self.path("migrations"), V1)
        ws = self.setup_gated(mig, n=1, wait_timeout=3)
        units = [w.unit for w in ws]
        H.write_migrations(mig, BROKEN2)
        S.systemctl("kill", "--kill-whom=main", "--signal=SIGHUP", S.MIGRATED_UNIT)
        S.wait_until(lambda: self.call("status", timeout=5)["gate"]["pending"] == 1, 10, what="rescan")
        r, pids = self.job_path("failing migration 2 (gated unit)", ws, 1, "up")
        self.assertAllActive(ws, pids)
        self.assertWaitOpens()          # the failed plan's own migration: the units may run
        self.assertWaitShut(strict=True)
        # the failure survives a restart
        self.restart_migrated()
        self.assertWaitOpens()
        # the failed file is replaced by a new, never tried migration: the gate is shut again
        for f in os.listdir(mig):
            if f.startswith("0002"):
                os.unlink(os.path.join(mig, f))
        H.write_migrations(mig, V3)
        S.systemctl("kill", "--kill-whom=main", "--signal=SIGHUP", S.MIGRATED_UNIT)
        S.wait_until(lambda: [p["version"] for p in self.call("status", timeout=5)["pending"]] == [3], 10,
                     what="rescan")
        self.assertWaitShut()
        before = states(units)
        p = S.systemctl("restart", units[0], check=False, timeout=40)
        self.path_report("restart of a gated unit with a never-tried migration pending", units, before,
                         p.returncode)
        self.assertNotEqual(p.returncode, 0, "the gate let a unit start before a never-tried migration")


if __name__ == "__main__":
    S.main()
