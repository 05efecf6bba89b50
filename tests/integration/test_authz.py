# SPDX-License-Identifier: MIT
"""Authorization with real users and groups.

The module creates a temporary system group for the socket (CLI), one for the administrators (ADM)
and two users, both with the primary group nogroup: MEMBER (supplementary groups CLI and ADM) and
OUTSIDER (supplementary group CLI only). All four are removed at the end, also when a test fails.
Clients run as those users: migratectl through setpriv --init-groups, raw protocol clients in a
forked child of the test that drops to the user's uid, primary gid and group list (so the
interpreter, which may live under /root, does not have to be readable by them).

Needs root (useradd, groupadd, setuid); exits 77 (skipped, for meson) otherwise.
"""

import errno
import grp
import json
import os
import pwd
import re
import secrets
import select
import signal
import socket
import stat
import subprocess
import sys
import time
import unittest

import harness
from harness import applied_versions

TWO = {
    1: ("one", "CREATE TABLE one (id INTEGER PRIMARY KEY);\n", "DROP TABLE one;\n"),
    2: ("two", "CREATE TABLE two (id INTEGER PRIMARY KEY);\n", "DROP TABLE two;\n"),
}

CHANGING = [("up", None), ("down", {"steps": 1}), ("backup", None), ("restore", {"backup": "db.sqlite.bak"}),
            ("cancel", None), ("cancel", {"job_id": 1})]
READING = [("hello", None), ("status", None), ("history", None), ("verify", None), ("plan", None),
           ("plan", {"direction": "up", "to": 1}), ("backups", None)]

# Every method of the protocol, as hello lists it, with its class: "change" methods are refused to
# a peer outside the admin group and change nothing; "read" methods are answered. Each entry has
# the requests sent (params). A method the daemon lists but this table does not name fails the
# test: a new method must be classified here before it ships. RESTORE is replaced by a real
# backup's file name at run time.
RESTORE = object()
METHOD_TABLE = {
    "hello": ("read", [None]),
    "status": ("read", [None, {"drift": True}]),
    "plan": ("read", [None, {"direction": "up", "to": 2}, {"direction": "down", "steps": 1}]),
    "history": ("read", [None, {"limit": 1}]),
    "verify": ("read", [None]),
    "wait": ("read", [{"timeout_ms": 100}]),
    "lock_check": ("read", [None]),
    "backups": ("read", [None]),
    "diff": ("read", [None]),
    "up": ("change", [None, {"to": 2}, {"per_migration": True}, {"rehearse": True}, {"dry_run": False},
                       {"seed": True}]),
    "schema": ("read", [None, {"with_history": True}]),
    "down": ("change", [None, {"steps": 1}, {"to": 0}, {"steps": 1, "dry_run": False}]),
    "cancel": ("change", [None, {"job_id": 1}]),
    "backup": ("change", [None]),
    "restore": ("change", [RESTORE]),
    "mark": ("change", [{"migration": "2", "state": "applied"}, {"migration": "1", "state": "rolled_back"}]),
    "baseline": ("change", [{"version": 2}]),
    "repair": ("change", [{"migration": "1"}]),
    "seed": ("change", [None]),
    "reset": ("change", [None]),
}
# Dry runs of changing methods change nothing, so anyone who may read may ask for one.
DRY_RUNS = [("up", {"dry_run": True}), ("down", {"steps": 1, "dry_run": True})]

REFUSAL_RE = re.compile(r"Refused (\w+) from uid (\d+) pid (\d+) unit (\S+): not permitted")

SUFFIX = secrets.token_hex(3)
NAMES = {
    "cli": "migt-%s-cli" % SUFFIX,
    "adm": "migt-%s-adm" % SUFFIX,
    "member": "migt-%s-mem" % SUFFIX,
    "outsider": "migt-%s-out" % SUFFIX,
}
_created_groups = []
_created_users = []


_run_admin_tool = harness.run_admin_tool


def setUpModule():
    if os.geteuid() != 0:
        raise unittest.SkipTest("needs root for groupadd/useradd")
    try:
        for key in ("cli", "adm"):
            _run_admin_tool(["groupadd", "--system", NAMES[key]])
            _created_groups.append(NAMES[key])
        for key, groups in (("member", "%s,%s" % (NAMES["cli"], NAMES["adm"])), ("outsider", NAMES["cli"])):
            _run_admin_tool(["useradd", "--system", "--no-create-home", "--no-user-group", "--gid", "nogroup",
                             "--groups", groups, "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin",
                             NAMES[key]])
            _created_users.append(NAMES[key])
    except BaseException:
        tearDownModule()
        raise


def tearDownModule():
    errors = []
    for u in reversed(_created_users):
        try:
            _run_admin_tool(["userdel", u])
        except Exception as e:  # report, but remove the rest first
            errors.append(str(e))
    _created_users.clear()
    for g in reversed(_created_groups):
        try:
            _run_admin_tool(["groupdel", g])
        except Exception as e:
            errors.append(str(e))
    _created_groups.clear()
    if errors:
        raise harness.HarnessError("cleanup of the test accounts failed: %s" % "; ".join(errors))


def identity(user):
    """(uid, primary gid, supplementary groups as initgroups would set them)."""
    pw = pwd.getpwnam(user)
    return pw.pw_uid, pw.pw_gid, os.getgrouplist(user, pw.pw_gid)


def gid_of(key):
    return grp.getgrnam(NAMES[key]).gr_gid


# ---------------------------------------------------------------------------------------------
# Clients running as another user


def run_as(ident, fn, timeout=30.0):
    """Forks; the child sets groups, gid and uid to ident = (uid, gid, groups), runs fn() and sends
    back {"pid", "uid", "gid", "groups", "value"} or {"exc"}. Deadline-bound; the child is killed
    when it overruns."""
    uid, gid, groups = ident
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never returns into the test runner
        code = 0
        try:
            os.close(r)
            out = {"pid": os.getpid()}
            try:
                os.setgroups(groups)
                os.setgid(gid)
                os.setuid(uid)
                out.update(uid=os.getuid(), euid=os.geteuid(), gid=os.getgid(), groups=sorted(os.getgroups()))
                out["value"] = fn()
            except BaseException as e:
                out["exc"] = "%s: %s" % (type(e).__name__, e)
            data = json.dumps(out).encode()
            while data:
                data = data[os.write(w, data):]
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(w)
    chunks = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise harness.HarnessError("client running as uid %d did not finish within %ss" % (uid, timeout))
            ready, _, _ = select.select([r], [], [], left)
            if not ready:
                continue
            chunk = os.read(r, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(r)
        try:
            os.kill(pid, signal.SIGKILL)  # a no-op on the zombie of a child that has finished
        except ProcessLookupError:
            pass
        os.waitpid(pid, 0)
    out = json.loads(b"".join(chunks) or b"{}")
    if "exc" in out or "value" not in out:
        raise harness.HarnessError("client running as uid %d failed: %r" % (uid, out))
    if out["uid"] != uid or out["euid"] != uid or out["gid"] != gid or out["groups"] != sorted(groups):
        raise harness.HarnessError("client did not get the identity %r: %r" % (ident, out))
    return out


def requests(sock, reqs):
    """fn for run_as: each (method, params) on its own connection; returns the final lines."""
    def fn():
        finals = []
        for i, (method, params) in enumerate(reqs):
            with harness.Conn(sock, 10) as c:
                _, final = c.call(method, params, id=i + 1, timeout=10)
            finals.append(final)
        return finals
    return fn


def try_connect(sock):
    """fn for run_as: the errno name of connect(), or "ok"."""
    def fn():
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(5)
        try:
            s.connect(sock)
            return "ok"
        except OSError as e:
            return errno.errorcode.get(e.errno, str(e.errno))
        finally:
            s.close()
    return fn


class AuthzTest(harness.TestCase):

    def setUp(self):
        super().setUp()
        # The socket must be reachable for the users: every directory on the way traversable.
        os.chmod(self.tmp, 0o755)
        self.sockdir = self.path("run")
        os.mkdir(self.sockdir, 0o755)
        os.chmod(self.sockdir, 0o755)
        self.mig = harness.write_migrations(self.path("migrations"), TWO)
        self.db = self.path("db.sqlite")
        self.sock = os.path.join(self.sockdir, "migrated.sock")
        self.member = identity(NAMES["member"])
        self.outsider = identity(NAMES["outsider"])
        # MEMBER is in ADM through a supplementary group only
        self.assertNotEqual(self.member[1], gid_of("adm"))
        self.assertIn(gid_of("adm"), self.member[2])
        self.assertNotIn(gid_of("adm"), self.outsider[2])
        self.assertIn(gid_of("cli"), self.outsider[2])

    def start(self, admin=True, config=None):
        args = ["--socket-group", NAMES["cli"]]
        if admin:
            args += ["--admin-group", NAMES["adm"]]
        if config is not None:
            return self.daemon(self.db, self.mig, socket_path=self.sock, config=config)
        return self.daemon(self.db, self.mig, socket_path=self.sock, extra_args=args)

    def ctl_as(self, user, *args, timeout=30):
        """migratectl --json as USER, with its groups from the group database (initgroups)."""
        argv = ["setpriv", "--reuid", user, "--regid", str(pwd.getpwnam(user).pw_gid), "--init-groups",
                harness.MIGRATECTL_BIN, "--socket", self.sock, "--json"] + [str(a) for a in args]
        p = self.spawn(argv)
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.fail("%s did not finish within %ss" % (" ".join(argv), timeout))
        return p.pid, p.returncode, out.decode(errors="replace"), err.decode(errors="replace")

    def refusals(self, d):
        return [(m.group(1), int(m.group(2)), int(m.group(3)), m.group(4)) for m in REFUSAL_RE.finditer(d.log())]

    def assertSocketModeAndGroup(self):
        st = os.stat(self.sock)
        self.assertTrue(stat.S_ISSOCK(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o660, "socket mode %o" % stat.S_IMODE(st.st_mode))
        self.assertEqual(st.st_gid, gid_of("cli"), "socket group")

    def assertOutsiderRefusedButAnswered(self, d):
        out = run_as(self.outsider, requests(self.sock, CHANGING + READING +
                                             [("wait", {"timeout_ms": 200})]))
        finals = out["value"]
        for (method, params), final in zip(CHANGING, finals[:len(CHANGING)]):
            err = self.assertError(final, "permission_denied", "%s %r by the outsider: %r" % (method, params, final))
            self.assertIn("admin group", err["message"])
        for (method, params), final in zip(READING, finals[len(CHANGING):]):
            self.assertResult(final, "%s %r by the outsider: %r" % (method, params, final))
        # wait is read-only too: answered (here: not current within 200 ms), never refused
        self.assertError(finals[-1], "timeout")
        hello = finals[len(CHANGING)]["result"]
        self.assertEqual(hello["server"], "migrated")
        status = finals[len(CHANGING) + 1]["result"]
        self.assertEqual([p["version"] for p in status["pending"]], [1, 2])
        history = finals[len(CHANGING) + 2]["result"]
        self.assertEqual(history["attempts"], [])
        self.assertTrue(finals[len(CHANGING) + 3]["result"]["ok"])
        self.assertEqual([s["version"] for s in finals[len(CHANGING) + 4]["result"]["steps"]], [1, 2])

        # the refusals are logged with uid, pid and unit, one per refused request
        def logged():
            got = [r for r in self.refusals(d) if r[1] == self.outsider[0] and r[2] == out["pid"]]
            return got if len(got) >= len(CHANGING) else None
        got = harness.wait_until(logged, 5, what="refusals of the outsider in the log")
        self.assertEqual(sorted(r[0] for r in got), sorted(m for m, _ in CHANGING))
        self.assertEqual(applied_versions(self.db), [], "the outsider changed the database")
        return out

    def db_snapshot(self):
        """Everything a change could touch: every row of every table (migrated's history too), the
        schema, and the backup directory's listing."""
        c = harness.db_connect(self.db)
        try:
            dump = list(c.iterdump())
        finally:
            c.close()
        bdir = self.db + "-backups"
        return dump, sorted(os.listdir(bdir)) if os.path.isdir(bdir) else []

    def test_every_method_of_the_table(self):
        """Authorization from the daemon's own method list: every changing method is refused to the
        outsider and nothing changes; every read-only method (and a dry run) is answered."""
        d = self.start(admin=True)
        self.assertEqual(d.call("up", {"to": 1})["status"], "applied")
        backup = d.call("backup")["backup"]["file"]
        before = self.db_snapshot()

        listed = run_as(self.outsider, requests(self.sock, [("hello", None)]))["value"][0]
        methods = self.assertResult(listed)["methods"]
        unknown = sorted(set(methods) - set(METHOD_TABLE))
        self.assertEqual(unknown, [], "methods not classified in METHOD_TABLE (read or change): %r" % unknown)
        self.assertEqual(sorted(set(METHOD_TABLE) - set(methods)), [], "METHOD_TABLE names methods hello lacks")
        self.assertEqual(len(methods), len(set(methods)), methods)

        changing, reading = [], []
        for method in methods:
            kind, param_sets = METHOD_TABLE[method]
            for params in param_sets:
                if params is RESTORE:
                    params = {"backup": backup}
                (changing if kind == "change" else reading).append((method, params))
        reading += DRY_RUNS
        out = run_as(self.outsider, requests(self.sock, changing + reading), timeout=60)
        finals = out["value"]
        for (method, params), final in zip(changing, finals):
            err = self.assertError(final, "permission_denied", "%s %r by the outsider: %r" % (method, params, final))
            self.assertIn("admin group", err["message"])
        for (method, params), final in zip(reading, finals[len(changing):]):
            what = "%s %r by the outsider: %r" % (method, params, final)
            if method == "wait":  # answered: not current within the timeout
                self.assertError(final, "timeout", what)
            else:
                self.assertResult(final, what)

        def logged():
            got = [r for r in self.refusals(d) if r[1] == self.outsider[0] and r[2] == out["pid"]]
            return got if len(got) >= len(changing) else None
        got = harness.wait_until(logged, 10, what="refusals of the outsider in the log")
        self.assertEqual(sorted(r[0] for r in got), sorted(m for m, _ in changing))
        self.assertEqual(d.call("status")["current_version"], 1)
        self.assertEqual(self.db_snapshot(), before, "a refused request changed the database or its backups")

        # the same requests pass the check for an admin group member (mark and baseline included)
        got = run_as(self.member, requests(self.sock, [("mark", {"migration": "2", "state": "applied"}),
                                                       ("baseline", {"version": 2})]))
        for final in got["value"]:
            self.assertNotEqual(final.get("error", {}).get("code"), "permission_denied", final)

    def test_outsider_reads_but_cannot_change(self):
        d = self.start(admin=True)
        self.assertSocketModeAndGroup()
        self.assertOutsiderRefusedButAnswered(d)

        # migratectl as the outsider: refused with exit 1 and the error code; reads work
        pid, rc, out, err = self.ctl_as(NAMES["outsider"], "up")
        self.assertEqual(rc, 1, "migratectl up as the outsider: rc %d\n%s\n%s" % (rc, out, err))
        self.assertEqual(json.loads(out)["error"]["code"], "permission_denied", out)
        harness.wait_until(lambda: [r for r in self.refusals(d) if r[0] == "up" and r[1] == self.outsider[0]
                                    and r[2] == pid], 5, what="refusal of migratectl's pid %d in the log" % pid)
        for args in (["status"], ["history"], ["verify"], ["plan"]):
            _, rc, out, err = self.ctl_as(NAMES["outsider"], *args)
            self.assertEqual(rc, 0, "migratectl %s as the outsider: rc %d\n%s\n%s" % (args, rc, out, err))
            json.loads(out)
        self.assertEqual(applied_versions(self.db), [])

        # a process in neither group cannot even connect: mode 0660, group CLI
        nobody = pwd.getpwnam("nobody")
        got = run_as((nobody.pw_uid, nobody.pw_gid, [nobody.pw_gid]), try_connect(self.sock))
        self.assertEqual(got["value"], "EACCES")
        self.assertTrue(d.alive())

    def test_admin_group_member_can_change(self):
        d = self.start(admin=True)
        pid, rc, out, err = self.ctl_as(NAMES["member"], "up")
        self.assertEqual(rc, 0, "migratectl up as the admin group member: rc %d\n%s\n%s" % (rc, out, err))
        res = json.loads(out)
        self.assertEqual(res["status"], "applied")
        self.assertEqual(applied_versions(self.db), [1, 2])
        hist = d.call("history")["attempts"]
        self.assertIn("uid=%d pid=%d" % (self.member[0], pid), hist[0]["requested_by"])

        got = run_as(self.member, requests(self.sock, [("down", {"steps": 1}), ("backup", None),
                                                       ("cancel", None), ("status", None)]))
        down, backup, cancel, status = got["value"]
        self.assertEqual(self.assertResult(down)["status"], "reverted")
        self.assertResult(backup)
        # nothing to cancel, but past the permission check
        self.assertError(cancel, "state_conflict")
        self.assertEqual(status["result"]["current_version"], 1)
        self.assertEqual(applied_versions(self.db), [1])
        self.assertEqual([r for r in self.refusals(d) if r[1] == self.member[0]], [],
                         "the admin group member was refused:\n%s" % d.log())
        # the outsider still is not allowed, in the same daemon
        out = run_as(self.outsider, requests(self.sock, [("up", None), ("down", {"steps": 1})]))
        for final in out["value"]:
            self.assertError(final, "permission_denied")
        self.assertEqual(applied_versions(self.db), [1])

    def test_without_admin_group_member_is_refused(self):
        d = self.start(admin=False)
        self.assertSocketModeAndGroup()
        pid, rc, out, err = self.ctl_as(NAMES["member"], "up")
        self.assertEqual(rc, 1, "rc %d\n%s\n%s" % (rc, out, err))
        error = json.loads(out)["error"]
        self.assertEqual(error["code"], "permission_denied")
        self.assertIn("admin_group", error["message"])
        got = run_as(self.member, requests(self.sock, CHANGING + [("status", None), ("hello", None)]))
        for (method, _), final in zip(CHANGING, got["value"]):
            self.assertError(final, "permission_denied", "%s by the member without --admin-group" % method)
        self.assertResult(got["value"][-2])
        self.assertResult(got["value"][-1])
        logged = harness.wait_until(
            lambda: [r for r in self.refusals(d) if r[1] == self.member[0] and r[2] in (pid, got["pid"])]
            if len([r for r in self.refusals(d) if r[1] == self.member[0]]) >= 1 + len(CHANGING) else None,
            5, what="refusals of the member in the log")
        self.assertEqual(len(logged), 1 + len(CHANGING))
        self.assertEqual(applied_versions(self.db), [])
        # root (and the daemon's own user) always may
        self.assertEqual(d.call("up")["status"], "applied")
        self.assertEqual(applied_versions(self.db), [1, 2])

    def test_primary_group_counts(self):
        d = self.start(admin=True)
        # the outsider's uid, but with ADM as its primary group (and CLI to reach the socket)
        ident = (self.outsider[0], gid_of("adm"), [gid_of("cli")])
        got = run_as(ident, requests(self.sock, [("up", None)]))
        self.assertEqual(self.assertResult(got["value"][0])["status"], "applied")
        self.assertEqual(applied_versions(self.db), [1, 2])
        self.assertEqual(self.refusals(d), [])

    def test_admin_and_socket_group_from_config(self):
        conf = self.path("migrated.conf")
        with open(conf, "w") as f:
            f.write("[database]\npath = %s\n[migrations]\ndirectory = %s\n[daemon]\nsocket = %s\n"
                    "admin_group = %s\nsocket_group = %s\n" % (self.db, self.mig, self.sock, NAMES["adm"],
                                                              NAMES["cli"]))
        d = self.daemon(config=conf, socket_path=self.sock)
        self.assertSocketModeAndGroup()
        self.assertOutsiderRefusedButAnswered(d)
        _, rc, out, err = self.ctl_as(NAMES["member"], "up")
        self.assertEqual(rc, 0, "rc %d\n%s\n%s" % (rc, out, err))
        self.assertEqual(applied_versions(self.db), [1, 2])


if __name__ == "__main__":
    if os.geteuid() != 0:
        harness.cannot_run("test_authz needs root (groupadd, useradd, setuid)")
    harness.main()
