# SPDX-License-Identifier: MIT
"""The one-shot mode: `migratectl --database PATH --migrations DIR VERB` with no daemon running.
migratectl starts `migrated --one-shot` over a socketpair: the same engine, output and exit codes
as through a daemon, and the same lock (an flock on the database file): a daemon serving the
database is named and refused; a second one-shot waits for the first and then finds the schema
current. A one-shot killed mid-migration leaves the database at its start version, and the next
run recovers. A user who is not root runs it on a database they own, with the state under
XDG_STATE_HOME."""

import fcntl
import json
import os
import pwd
import secrets
import signal
import socket
import subprocess
import time

import harness
from harness import applied_versions, attempts, schema

FAILING_0003 = """\
-- 0003: a good statement, then one that fails at run time.

CREATE TABLE c1 (id INTEGER PRIMARY KEY);

-- next line fails: no such table
INSERT INTO no_such_table VALUES (1);
"""
FAILING_0003_LINE = 6

USER = "migt-%s-one" % secrets.token_hex(3)
_created = []


def setUpModule():
    harness.create_system_users([USER], _created)


def tearDownModule():
    harness.remove_system_users(_created)


def three(directory, third="CREATE TABLE c (id INTEGER PRIMARY KEY);\n"):
    return harness.write_migrations(directory, {
        1: ("make_a", "CREATE TABLE a (id INTEGER PRIMARY KEY);\nINSERT INTO a VALUES (1);\n", "DROP TABLE a;\n"),
        2: ("make_b", "CREATE TABLE b (id INTEGER PRIMARY KEY);\n", "DROP TABLE b;\n"),
        3: ("make_c", third, "DROP TABLE c;\n"),
    })


def unlocked(path):
    """Whether nobody holds the database's flock (every one-shot child has exited)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return True  # not even created yet
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(p) for p in f.read().split()]
    except FileNotFoundError:
        return []


def exited(pid):
    """Whether pid is gone or a zombie (its parent, migratectl, was killed: init reaps it)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (FileNotFoundError, ProcessLookupError):
        return True


class OneShotTest(harness.TestCase):

    def setUp(self):
        super().setUp()
        self.db = self.path("db.sqlite")

    def one(self, *args, db=None, mig=None, json_out=True, **kw):
        return harness.ctl("--database", db or self.db, "--migrations", mig or self.mig, *args,
                           json_out=json_out, **kw)

    def read_stderr_until(self, proc, needle, timeout=60.0):
        """Lines of a spawned migratectl's stderr until one contains needle."""
        deadline = time.monotonic() + timeout
        seen = []
        while time.monotonic() < deadline:
            line = proc.stderr.readline().decode(errors="replace")
            if not line:
                break
            seen.append(line)
            if needle in line:
                return seen
        self.fail("no %r on stderr within %ss; got %r" % (needle, timeout, "".join(seen)))

    def start_slow_up(self):
        """At version 1, a one-shot up running the slow 0002: its migratectl and migrated's pid."""
        self.mig = harness.write_migrations(self.path("migrations"), {
            1: ("fast", "CREATE TABLE a (id INTEGER PRIMARY KEY);\n", None),
            2: ("slow", harness.slow_sql(), None),
        })
        self.assertCtl(self.one("up", "--to", "1"), 0)
        p = self.spawn([harness.MIGRATECTL_BIN, "--database", self.db, "--migrations", self.mig, "up"])
        self.read_stderr_until(p, "applying 0002")
        kids = children(p.pid)
        self.assertEqual(len(kids), 1, kids)
        return p, kids[0]

    def test_up_status_down_verify_without_a_daemon(self):
        self.mig = three(self.path("migrations"))
        r = self.assertCtl(self.one("status"), 0)
        self.assertEqual([p["version"] for p in r.json["pending"]], [1, 2, 3])
        r = self.assertCtl(self.one("up", json_out=False), 0)
        self.assertIn("Applied 3 migrations", r.out)
        self.assertEqual(applied_versions(self.db), [1, 2, 3])
        self.assertTrue(unlocked(self.db), "the one-shot child must have exited with migratectl")
        backups = os.listdir(self.db + "-backups")
        self.assertEqual(len(backups), 1, backups)  # taken before the change, beside the database
        r = self.assertCtl(self.one("status", "--check"), 0)
        self.assertEqual(r.json["current_version"], 3)
        self.assertCtl(self.one("down"), 0)
        self.assertEqual(applied_versions(self.db), [1, 2])
        self.assertCtl(self.one("verify"), 0)
        hist = self.assertCtl(self.one("history"), 0).json["attempts"]
        self.assertEqual([(a["direction"], a["status"]) for a in hist], [("down", "succeeded"), ("up", "succeeded")])
        self.assertCtl(self.one("status", "--check"), 4)  # pending: the daemon path's exit code
        self.assertTrue(unlocked(self.db))

    def test_failing_migration_same_as_through_a_daemon(self):
        self.mig = three(self.path("migrations"), FAILING_0003)
        other = self.path("other.sqlite")
        one = self.one("up")
        d = self.daemon(other, self.mig)
        via = d.ctl("up")
        self.assertEqual(one.rc, 1, one)
        self.assertEqual(one.rc, via.rc)
        for r in (one, via):
            err = r.json["error"]
            self.assertEqual((err["code"], err["version"], err["line"]), ("migration_failed", 3, FAILING_0003_LINE))
            self.assertFileIs(err["file"], "0003_make_c.up.sql")
        self.assertEqual(sorted(one.json["error"]), sorted(via.json["error"]))
        self.assertEqual(applied_versions(self.db), [])
        self.assertEqual(schema(self.db), [])
        human = self.one("up", json_out=False)
        self.assertEqual(human.rc, 1)
        self.assertIn("0003_make_c.up.sql", human.out + human.err)
        self.assertEqual(applied_versions(self.db), [])

    def test_a_daemon_on_the_database_is_named_and_refused(self):
        self.mig = three(self.path("migrations"))
        d = self.daemon(self.db, self.mig)
        before = harness.sha256_file(self.db)
        r = self.one("up", json_out=False)
        self.assertEqual(r.rc, 6, r)  # busy
        self.assertIn("pid %d" % d.pid, r.err)
        self.assertIn(d.socket, r.err)
        r = self.one("up")
        self.assertEqual((r.rc, r.json["error"]["code"]), (6, "busy"), r)
        self.assertEqual((r.json["error"]["daemon_pid"], r.json["error"]["daemon_socket"]), (d.pid, d.socket))
        self.assertEqual(harness.sha256_file(self.db), before)
        self.assertEqual(applied_versions(self.db), [])
        self.assertTrue(d.alive())

    def test_a_second_one_shot_waits_and_finds_the_schema_current(self):
        self.mig = three(self.path("migrations"))
        # The first one-shot, driven by hand over its socketpair: it holds the lock until we close.
        ours, theirs = socket.socketpair()
        self.addCleanup(ours.close)
        first = self.spawn(["sh", "-c", 'exec "$0" "$@" 3<&%d' % theirs.fileno(), harness.MIGRATED_BIN,
                            "--one-shot", "--database", self.db, "--migrations", self.mig],
                           pass_fds=(theirs.fileno(),))
        theirs.close()
        harness.wait_until(lambda: not unlocked(self.db), 30, what="the first one-shot to take the lock")
        second = self.spawn([harness.MIGRATECTL_BIN, "--database", self.db, "--migrations", self.mig, "up"])
        self.read_stderr_until(second, "Waiting for the one-shot migrated (pid %d)" % first.pid)
        ours.sendall(b'{"id":1,"method":"up","params":{}}\n')
        reply = ours.makefile("rb")
        final = None
        while final is None:
            line = json.loads(reply.readline())
            if "result" in line or "error" in line:
                final = line
        self.assertEqual(final["result"]["to_version"], 3, final)
        reply.close()
        ours.close()  # the first one-shot exits: the second goes on
        self.assertEqual(first.wait(timeout=harness.STOP_TIMEOUT), 0)
        out, err = second.communicate(timeout=harness.CTL_TIMEOUT)
        self.assertEqual(second.returncode, 0, err)
        self.assertIn(b"current", out.lower())
        self.assertEqual(applied_versions(self.db), [1, 2, 3])
        ups = [a for a in attempts(self.db) if a["direction"] == "up"]
        self.assertEqual(len(ups), 1, ups)  # never both applying

    def test_killed_one_shot_leaves_the_start_version_and_the_next_run_recovers(self):
        p, child = self.start_slow_up()
        os.kill(child, signal.SIGKILL)
        p.communicate(timeout=harness.CTL_TIMEOUT)
        self.assertNotEqual(p.returncode, 0)
        self.assertEqual(applied_versions(self.db), [1])
        self.assertNotIn("big", harness.tables(self.db))
        r = self.assertCtl(self.one("up"), 0)
        self.assertEqual(applied_versions(self.db), [1, 2])
        statuses = [a["status"] for a in attempts(self.db)]
        self.assertEqual(statuses[0], "succeeded")
        self.assertNotEqual(statuses[1], "succeeded")  # the killed run: recorded as interrupted
        self.assertEqual(statuses[-1], "succeeded")

    def test_killed_client_interrupts_the_job_and_the_child_exits(self):
        p, child = self.start_slow_up()
        os.kill(p.pid, signal.SIGKILL)
        p.communicate(timeout=harness.CTL_TIMEOUT)
        harness.wait_until(lambda: exited(child), harness.STOP_TIMEOUT,
                           what="the one-shot child to exit with its client gone")
        harness.wait_until(lambda: unlocked(self.db), harness.STOP_TIMEOUT, what="the lock to be released")
        self.assertEqual(applied_versions(self.db), [1])
        self.assertEqual(attempts(self.db)[-1]["status"], "interrupted")
        self.assertCtl(self.one("up"), 0)
        self.assertEqual(applied_versions(self.db), [1, 2])

    def test_a_user_who_is_not_root_on_a_database_they_own(self):
        if not _created:
            self.skipTest("needs root to create the user (useradd)")
        pw = pwd.getpwnam(USER)
        self.mig = three(self.path("migrations"))
        home = self.path("home")
        os.makedirs(home)
        work = self.path("work")
        os.makedirs(work)
        harness.create_wal_db(os.path.join(work, "app.sqlite"))
        for path in (home, work, os.path.join(work, "app.sqlite")):
            os.chown(path, pw.pw_uid, pw.pw_gid)
        os.chmod(self.tmp, 0o755)
        env = {k: v for k, v in os.environ.items() if k != "STATE_DIRECTORY"}
        env.update(HOME=home, XDG_STATE_HOME=os.path.join(home, "state"))

        def as_user():
            os.setgroups([])
            os.setgid(pw.pw_gid)
            os.setuid(pw.pw_uid)

        p = subprocess.run([harness.MIGRATECTL_BIN, "--database", os.path.join(work, "app.sqlite"),
                            "--migrations", self.mig, "up"], env=env, preexec_fn=as_user,
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=harness.CTL_TIMEOUT)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(applied_versions(os.path.join(work, "app.sqlite")), [1, 2, 3])
        state = os.listdir(os.path.join(home, "state", "migrated"))
        self.assertEqual(len(state), 1, state)
        self.assertEqual(os.stat(os.path.join(home, "state", "migrated", state[0])).st_uid, pw.pw_uid)
        self.assertEqual(len(os.listdir(os.path.join(work, "app.sqlite-backups"))), 1)

    def test_usage_errors(self):
        self.mig = three(self.path("migrations"))
        r = harness.ctl("--database", self.db, "--socket", self.path("s"), "status")
        self.assertEqual(r.rc, 2, r)
        r = harness.ctl("--database", self.db, "status")  # no --migrations: migrated says so
        self.assertEqual(r.rc, 2, r)
        self.assertIn("--migrations", r.err)
        r = harness.ctl("--migrations", self.mig, "status")  # without --database: not silently ignored
        self.assertEqual(r.rc, 2, r)
        r = self.one("wait")  # it would hold the lock while waiting for someone else to migrate
        self.assertEqual(r.rc, 2, r)
        self.assertIn("status --check", r.err)
        self.assertFalse(os.path.exists(self.db))


ENTRYPOINT = os.path.join(harness.SRC_ROOT, "packaging", "examples", "container", "entrypoint.sh")


class EntrypointTest(harness.TestCase):
    """packaging/examples/container/entrypoint.sh itself, without docker: what each replica runs."""

    def setUp(self):
        super().setUp()
        self.db = self.path("data", "app.sqlite")
        os.makedirs(self.path("data"))
        self.mig = harness.write_migrations(self.path("migrations"), {
            1: ("fast", "CREATE TABLE a (id INTEGER PRIMARY KEY);\n", None),
            2: ("slower", harness.slow_sql(n=harness.SLOW_N // 10), None),
        })

    def replica(self, name, **env):
        e = dict(os.environ, MIGRATECTL=harness.MIGRATECTL_BIN, MIGRATED_DATABASE=self.db,
                 MIGRATED_MIGRATIONS=self.mig)
        e.pop("MIGRATED_SOCKET", None)
        e.update(env)
        return self.spawn(["sh", ENTRYPOINT, "sh", "-c", "echo serving %s" % name], env=e)

    def test_replicas_started_at_once_migrate_once(self):
        replicas = [self.replica("r%d" % i) for i in range(3)]
        for i, p in enumerate(replicas):
            out, err = p.communicate(timeout=harness.CTL_TIMEOUT)
            self.assertEqual(p.returncode, 0, err)
            self.assertIn(b"serving r%d" % i, out)
        self.assertEqual(applied_versions(self.db), [1, 2])
        ups = [a for a in attempts(self.db) if a["direction"] == "up"]
        self.assertEqual(len(ups), 1, ups)

    def test_run_migrations_false_changes_nothing(self):
        out, err = self.replica("off", RUN_MIGRATIONS="false").communicate(timeout=harness.CTL_TIMEOUT)
        self.assertIn(b"serving off", out)
        self.assertFalse(os.path.exists(self.db))

    def test_a_failing_migration_keeps_the_command_from_starting(self):
        harness.write_migrations(self.mig, {3: ("bad", "INSERT INTO no_such_table VALUES (1);\n", None)})
        p = self.replica("bad")
        out, err = p.communicate(timeout=harness.CTL_TIMEOUT)
        self.assertEqual(p.returncode, 1, err)
        self.assertNotIn(b"serving", out)
        self.assertEqual(applied_versions(self.db), [])

    def test_host_daemon_socket_waits_until_current(self):
        d = self.daemon(self.db, self.mig)
        p = self.replica("early", MIGRATED_SOCKET=d.socket, MIGRATED_WAIT_TIMEOUT="1")
        out, err = p.communicate(timeout=harness.CTL_TIMEOUT)
        self.assertEqual(p.returncode, 7, err)  # wait timed out: migrations pending, no command
        self.assertNotIn(b"serving", out)
        p = self.replica("waiting", MIGRATED_SOCKET=d.socket)
        self.assertCtl(d.ctl("up"), 0)
        out, err = p.communicate(timeout=harness.CTL_TIMEOUT)
        self.assertEqual(p.returncode, 0, err)
        self.assertIn(b"serving waiting", out)
        self.assertEqual(applied_versions(self.db), [1, 2])


if __name__ == "__main__":
    harness.main()
