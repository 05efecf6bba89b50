# SPDX-License-Identifier: MIT
"""migratectl against a real daemon: options after the verb, usage errors the daemon finds, the
--json document when nobody answers, version, redo, mark by file stem, sizes for people, and the
confirmation and colour a person at a terminal gets (through a real pty)."""

import json
import os
import pty
import re
import select
import subprocess
import time

import harness
from harness import MIGRATECTL_BIN, ctl

ESC = "\033["


class PtyRun:
    """migratectl with stdin, stdout and stderr on a pseudo-terminal, as a person runs it."""

    def __init__(self, args, env=None):
        master, slave = pty.openpty()
        full_env = dict(os.environ, TERM="xterm")
        full_env.pop("NO_COLOR", None)
        full_env.pop("MIGRATED_SOCKET", None)
        full_env.update(env or {})
        self.proc = subprocess.Popen([MIGRATECTL_BIN] + [str(a) for a in args], stdin=slave, stdout=slave,
                                     stderr=slave, env=full_env, close_fds=True)
        os.close(slave)
        self.master = master
        self.text = ""

    def _read(self, deadline):
        ready, _, _ = select.select([self.master], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            return False
        try:
            chunk = os.read(self.master, 4096)
        except OSError:  # EIO: the child closed the terminal
            return None
        if not chunk:
            return None
        self.text += chunk.decode(errors="replace")
        return True

    def expect(self, pattern, timeout=30.0):
        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.text):
            got = self._read(deadline)
            if got is None or (got is False and time.monotonic() >= deadline):
                raise AssertionError("no %r on the terminal; it shows:\n%s" % (pattern, self.text))

    def send(self, line):
        os.write(self.master, (line + "\n").encode())

    def finish(self, timeout=60.0):
        deadline = time.monotonic() + timeout
        while self._read(deadline) is not None and time.monotonic() < deadline:
            pass
        rc = self.proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        os.close(self.master)
        return rc


class CliDaemonTest(harness.TestCase):

    def start(self, versions=(1, 2, 3)):
        self.mig = harness.write_migrations(self.path("migrations"), {
            v: ("t%d" % v, "CREATE TABLE t%d (id INTEGER PRIMARY KEY);\n" % v, "DROP TABLE t%d;\n" % v)
            for v in versions
        })
        self.db = self.path("db.sqlite")
        self.d = self.daemon(self.db, self.mig)
        return self.d

    def pty(self, *args, env=None):
        return PtyRun(["--socket", self.d.socket] + list(args), env=env)

    def start_failing(self, database, migrations, socket_path=None):
        d = self.daemon(database, migrations, socket_path=socket_path, start=False)
        d.start(wait=False)
        return d, d.wait(30)

    def test_daemon_start_errors_name_the_path_and_the_remedy(self):
        mig = harness.write_migrations(self.path("migrations"), {1: ("one", "CREATE TABLE one (id INTEGER);\n", None)})
        missing = self.path("no-such-migrations")
        d, rc = self.start_failing(self.path("db.sqlite"), missing)
        self.assertEqual(rc, 2, d.log())
        self.assertIn("The migrations directory %s does not exist" % missing, d.log())
        self.assertIn("migratectl new NAME --migrations %s" % missing, d.log())
        self.assertFalse(os.path.exists(self.path("db.sqlite")), "nothing is created for a refused start")

        with open(self.path("a-file"), "w"):
            pass
        d, rc = self.start_failing(self.path("db.sqlite"), self.path("a-file"))
        self.assertEqual(rc, 2, d.log())
        self.assertIn("is not a directory", d.log())

        d, rc = self.start_failing(self.path("no-dir", "db.sqlite"), mig)
        self.assertEqual(rc, 1, d.log())
        self.assertIn("no-dir/db.sqlite", d.log())
        self.assertIn("create it, or correct database=", d.log())

        d, rc = self.start_failing(self.path("db.sqlite"), mig, socket_path=self.path("no-run", "m.sock"))
        self.assertEqual(rc, 1, d.log())
        self.assertIn("no-run/m.sock", d.log())
        self.assertIn("RuntimeDirectory=", d.log())

    def test_status_check_fails_when_the_directory_is_gone(self):
        d = self.start()
        self.assertCtl(d.ctl("up"), 0)
        self.assertCtl(d.ctl("status", "--check"), 0)
        os.rename(self.mig, self.mig + ".moved")
        r = self.assertCtl(d.ctl("status", "--check", json_out=False), 1)
        self.assertIn("DIRECTORY: cannot read the migrations directory %s" % self.mig, r.out)
        os.rename(self.mig + ".moved", self.mig)
        self.assertCtl(d.ctl("status", "--check"), 0)

    def test_shared_options_after_the_verb(self):
        d = self.start()
        r = self.assertCtl(ctl("status", "--socket", d.socket, "--json"), 0)
        self.assertEqual(r.json["latest_version"], 3)
        r = self.assertCtl(ctl("up", "--to", 1, "--json", "--socket", d.socket), 0)
        self.assertEqual(r.json["to_version"], 1)
        r = self.assertCtl(ctl("status", "--instance", "x", "--socket", d.socket), 2)
        self.assertIn("exclude each other", r.err)

    def test_usage_errors_the_daemon_finds_exit_2(self):
        d = self.start()
        self.assertCtl(d.ctl("up"), 0)
        for args in (["down", "--steps", 0], ["history", "--limit", 0], ["plan", "up", "--steps", 1]):
            with self.subTest(args=args):
                r = self.assertCtl(d.ctl(*args), 2)
                self.assertEqual(r.json["error"]["code"], "invalid_params")
                r = self.assertCtl(d.ctl(*args, json_out=False), 2)
                self.assertIn("error:", r.err)
        self.assertEqual(harness.applied_versions(self.db), [1, 2, 3])

    def test_refusals_of_the_state_exit_1(self):
        """Well-formed requests the state forbids are not usage errors: state_conflict, exit 1."""
        d = self.start()
        self.assertCtl(d.ctl("mark", "applied", 1), 0)
        for args in (["mark", "applied", "0001_t1"], ["cancel"], ["down", "--steps", 5]):
            with self.subTest(args=args):
                r = self.assertCtl(d.ctl(*args), 1)
                self.assertEqual(r.json["error"]["code"], "state_conflict")
        self.assertEqual(harness.applied_versions(self.db), [1])

    def test_up_to_an_applied_version_says_where_to_go(self):
        d = self.start()
        self.assertCtl(d.ctl("up"), 0)
        r = self.assertCtl(d.ctl("up", "--to", 1, json_out=False), 1)
        self.assertIn("version 1 is already applied", r.err)
        self.assertIn("down --to 1", r.err)
        self.assertEqual(harness.applied_versions(self.db), [1, 2, 3])

    def test_json_error_document_when_unreachable(self):
        sock = self.path("nobody.sock")
        for args in (["status"], ["up"], ["version"], ["status", "--json"]):
            with self.subTest(args=args):
                r = self.assertCtl(ctl(*args, sock=sock, json_out="--json" not in args), 3)
                doc = json.loads(r.out)
                self.assertEqual(doc["error"]["code"], "unreachable")
                self.assertEqual(doc["error"]["socket"], sock)
                self.assertIn(sock, r.err)
        r = self.assertCtl(ctl("status", sock=sock), 3)
        self.assertEqual(r.out, "", "without --json stdout stays empty")

    def test_version_prints_the_schema_version_alone(self):
        d = self.start()
        self.assertEqual(self.assertCtl(d.ctl("version", json_out=False), 0).out, "0\n")
        self.assertCtl(d.ctl("up", "--to", 2), 0)
        self.assertEqual(self.assertCtl(d.ctl("version", json_out=False), 0).out, "2\n")
        self.assertEqual(self.assertCtl(d.ctl("version"), 0).json, {"version": 2})

    def test_redo_reverts_and_applies_the_last_migration(self):
        d = self.start()
        r = self.assertCtl(d.ctl("redo", json_out=False), 1)
        self.assertIn("nothing to redo", r.err)
        self.assertCtl(d.ctl("up"), 0)
        doc = self.assertCtl(d.ctl("redo"), 0).json
        self.assertEqual((doc["down"]["status"], doc["down"]["to_version"]), ("reverted", 2))
        self.assertEqual((doc["up"]["status"], doc["up"]["to_version"]), ("applied", 3))
        self.assertEqual(harness.applied_versions(self.db), [1, 2, 3])
        attempts = self.assertCtl(d.ctl("history", "--limit", 2), 0).json["attempts"]
        self.assertEqual([(a["direction"], a["versions"]) for a in attempts], [("up", [3]), ("down", [3])])
        r = self.assertCtl(d.ctl("redo", json_out=False), 0)
        self.assertIn("Reverted 1 migration", r.out)
        self.assertIn("Applied 1 migration", r.out)

    def test_repair_accepts_an_edited_file_and_records_who(self):
        d = self.start()
        self.assertCtl(d.ctl("up"), 0)
        r = self.assertCtl(d.ctl("repair", "0002_t2"), 1)
        self.assertEqual(r.json["error"]["code"], "state_conflict")  # nothing edited yet
        path = os.path.join(self.mig, harness.up_file(self.mig, 2))
        old = harness.sha256_file(path)
        with open(path, "a") as f:
            f.write("-- a comment added after deployment\n")
        self.assertCtl(d.ctl("status", "--check"), 5)
        r = self.assertCtl(d.ctl("repair", "0002_t2", json_out=False), 0)
        self.assertIn("0002 t2: the edited file is accepted", r.out)
        self.assertCtl(d.ctl("status", "--check"), 0)
        self.assertCtl(d.ctl("verify"), 0)
        attempt = self.assertCtl(d.ctl("history", "--limit", 1), 0).json["attempts"][0]
        self.assertEqual((attempt["direction"], attempt["status"]), ("repair", "succeeded"))
        self.assertIn("uid=%d" % os.getuid(), attempt["requested_by"])
        self.assertIn(old, attempt["detail"])
        self.assertIn(harness.sha256_file(path), attempt["detail"])
        self.assertEqual(harness.applied_versions(self.db), [1, 2, 3])
        r = self.assertCtl(d.ctl("repair", "9"), 1)
        self.assertEqual(r.json["error"]["code"], "unknown_version")
        self.assertCtl(d.ctl("repair"), 2)

    def test_mark_applied_by_the_stem_new_wrote(self):
        d = self.start()
        r = self.assertCtl(d.ctl("mark", "applied", "0001_t1"), 0)
        self.assertEqual(r.json["status"], "marked_applied")
        self.assertEqual(harness.applied_versions(self.db), [1])
        r = self.assertCtl(d.ctl("mark", "applied", "0002_t3"), 1)
        self.assertEqual(r.json["error"]["code"], "unknown_version")

    def test_backups_sizes_in_human_units(self):
        d = self.start()
        self.assertCtl(d.ctl("up"), 0)
        self.assertCtl(d.ctl("backup"), 0)
        doc = self.assertCtl(d.ctl("backups"), 0).json
        sizes = [b["size"] for b in doc["backups"]]
        self.assertTrue(sizes and all(isinstance(s, int) for s in sizes), doc)
        out = self.assertCtl(d.ctl("backups", json_out=False), 0).out
        self.assertRegex(out, r"\d+(\.\d)? (KiB|MiB)|\d+ bytes")
        for s in sizes:
            if s >= 1024:
                self.assertNotRegex(out, r"\b%d\b" % s, "raw bytes shown to a person")

    def test_down_asks_on_a_terminal(self):
        d = self.start()
        self.assertCtl(d.ctl("up"), 0)
        t = self.pty("down")
        t.expect(r"0003.*\n(.|\n)*\[y/N\] ")
        t.send("n")
        self.assertEqual(t.finish(), 1)
        self.assertIn("nothing was changed", t.text)
        self.assertEqual(harness.applied_versions(self.db), [1, 2, 3])

        t = self.pty("down", "--steps", 2)
        t.expect(r"\[y/N\] ")
        t.send("y")
        self.assertEqual(t.finish(), 0, t.text)
        self.assertEqual(harness.applied_versions(self.db), [1])

        t = self.pty("down", "--yes")
        self.assertEqual(t.finish(), 0, t.text)
        self.assertNotIn("[y/N]", t.text)
        self.assertEqual(harness.applied_versions(self.db), [])

    def test_redo_and_restore_ask_on_a_terminal(self):
        d = self.start()
        self.assertCtl(d.ctl("up"), 0)
        t = self.pty("redo")
        t.expect(r"Revert 0003 t3 and apply it again\? \[y/N\] ")
        t.send("")
        self.assertEqual(t.finish(), 1)
        self.assertEqual(len(self.assertCtl(d.ctl("history"), 0).json["attempts"]), 1)

        self.assertCtl(d.ctl("backup"), 0)
        t = self.pty("restore")
        t.expect(r"Replace the database with the newest backup.*\[y/N\] ")
        t.send("no")
        self.assertEqual(t.finish(), 1)
        self.assertEqual(harness.applied_versions(self.db), [1, 2, 3])

    def test_no_prompt_without_a_terminal(self):
        d = self.start()
        self.assertCtl(d.ctl("up"), 0)
        r = self.assertCtl(d.ctl("down", json_out=False), 0)  # stdin is /dev/null: a script
        self.assertNotIn("[y/N]", r.err + r.out)
        self.assertEqual(harness.applied_versions(self.db), [1, 2])

    def test_colour_on_a_terminal_honours_no_color_and_the_option(self):
        self.start()
        t = self.pty("status")
        self.assertEqual(t.finish(), 0, t.text)
        self.assertIn(ESC, t.text, "no colour on a terminal")
        for args, env in ((["status"], {"NO_COLOR": "1"}), (["status", "--color=never"], None),
                          (["--color", "never", "status"], None)):
            with self.subTest(args=args, env=env):
                t = self.pty(*args, env=env)
                self.assertEqual(t.finish(), 0, t.text)
                self.assertIn("Pending (3)", t.text)
                self.assertNotIn(ESC, t.text)
        r = self.assertCtl(ctl("status", "--color=always", sock=self.d.socket), 0)
        self.assertIn(ESC, r.out)
        r = self.assertCtl(ctl("status", sock=self.d.socket), 0)
        self.assertNotIn(ESC, r.out + r.err)


if __name__ == "__main__":
    harness.main()
