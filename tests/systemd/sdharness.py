# SPDX-License-Identifier: MIT
"""Harness for the systemd tests of migrated: a REAL systemd user manager, real units, real
processes, no mocks.

This machine's PID 1 is not systemd, so each test file runs itself again inside
`unshare --mount --pid --fork --mount-proc` (the team design notes, "testing against a real
systemd"), mounts a private
tmpfs on /run, starts `/lib/systemd/systemd --user` there and runs its tests against that manager.
migrated runs as the user unit `migrated-test.service` (Type=notify, Restart=on-failure), its
dependent services are small Python writers (writer.py) run as user units. Everything dies with
the PID namespace when the file is done.

The protocol and migratectl helpers come from the integration harness (tests/integration/
harness.py), imported as is.

Environment: MIGRATED_BIN, MIGRATECTL_BIN, MIGRATIONS_DIR as for the integration tests;
SYSTEMD_BIN (default /lib/systemd/systemd).
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest

sys.dont_write_bytecode = True  # keep the source tree clean when run standalone

HERE = os.path.dirname(os.path.abspath(__file__))
SRC_ROOT = os.path.dirname(os.path.dirname(HERE))
for _var, _rel in (("MIGRATED_BIN", "build-sd/daemon/migrated"), ("MIGRATECTL_BIN", "build-sd/client/migratectl"),
                   ("MIGRATIONS_DIR", "migrations")):
    if not os.environ.get(_var):
        os.environ[_var] = os.path.join(SRC_ROOT, _rel)
sys.path.append(os.path.join(os.path.dirname(HERE), "integration"))

import harness as H  # noqa: E402  (tests/integration/harness.py)
from harness import HarnessError, wait_until  # noqa: E402,F401

NS_MARK = "MIGRATED_SYSTEMD_TEST_NS"
NS_CGROUPS = "MIGRATED_SYSTEMD_TEST_CGROUPS"
SYSTEMD_BIN = os.environ.get("SYSTEMD_BIN", "/lib/systemd/systemd")
WRITER = os.path.join(HERE, "writer.py")
PYTHON = sys.executable

MANAGER_READY_TIMEOUT = 15.0
SYSTEMCTL_TIMEOUT = 60.0
UNIT_TIMEOUT = 20.0        # a unit reaching a state
JOB_TIMEOUT = 90.0         # one migratectl up/down run, or one job over the protocol
MIGRATED_UNIT = "migrated-test.service"
MIGRATED_SOCKET_UNIT = "migrated-test.socket"

ACKS_SQL = "CREATE TABLE acks (id INTEGER PRIMARY KEY, writer TEXT NOT NULL, pid INTEGER NOT NULL, at REAL NOT NULL);\n"

SKIP = H.SKIP  # meson: the test was skipped


# ---------------------------------------------------------------------------------------------
# Namespace and manager


def _cgroup_mounts():
    """[(mountpoint, kind)] of the cgroup hierarchies: kind "v2", "name=systemd" or "v1"."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields, rfields = left.split(), right.split()
            if len(rfields) < 3 or rfields[0] not in ("cgroup", "cgroup2"):
                continue
            if rfields[0] == "cgroup2":
                out.append((fields[4], "v2"))
            elif "name=systemd" in rfields[2].split(","):
                out.append((fields[4], "name=systemd"))
            else:
                out.append((fields[4], "v1"))
    return out


def _own_cgroups(tag):
    """Creates a cgroup named tag, below this process's own, in the hierarchies systemd tracks
    processes with (cgroup2 and name=systemd). A user manager takes the cgroup it starts in as
    its root, so without this two test runs at the same time would both manage /app.slice/… and
    kill each other's units. Returns the parent path and the created directories (none when
    cgroupfs is read-only)."""
    own = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, ctrl, path = line.rstrip("\n").split(":", 2)
            own["v2" if ctrl == "" else ctrl] = path
    base = own.get("name=systemd", own.get("v2", "/"))
    made = []
    for mnt, kind in _cgroup_mounts():
        if kind in ("v2", "name=systemd"):
            d = os.path.join(mnt, base.lstrip("/"), tag)
            try:
                os.makedirs(d)
                made.append(d)
            except OSError:
                pass
    return base, made


def _remove_cgroups(base, tag):
    """Removes what is left of the run's cgroups (empty once the namespace is gone) in every
    hierarchy (the manager also creates them in the v1 controllers), deepest first."""
    deadline = time.monotonic() + 5   # the namespace's last processes may take a moment to die
    for mnt, _ in _cgroup_mounts():
        top = os.path.join(mnt, base.lstrip("/"), tag)
        while os.path.isdir(top):
            for sub, _, _ in sorted(os.walk(top), key=lambda t: -len(t[0])):
                try:
                    os.rmdir(sub)
                except OSError:
                    pass
            if time.monotonic() > deadline:
                break
            if os.path.isdir(top):
                time.sleep(0.1)


def _run_in_namespace():
    """Runs this file again as `unshare … python3 <this file>` (PID 1 of a new PID namespace, in
    a new mount namespace) and exits with its status; cleans up the run's cgroups afterwards."""
    why = None
    if os.geteuid() != 0:
        why = "needs root (mount and PID namespaces, a tmpfs on /run)"
    elif not shutil.which("unshare"):
        why = "unshare(1) not found"
    elif not os.access(SYSTEMD_BIN, os.X_OK):
        why = "no systemd at %s" % SYSTEMD_BIN
    elif not shutil.which("systemctl"):
        why = "systemctl not found"
    if why:
        H.cannot_run(why)
    tag = "migrated-sd-%d" % os.getpid()
    env = dict(os.environ)
    env[NS_MARK] = "1"
    base, made = _own_cgroups(tag)
    env[NS_CGROUPS] = ":".join(made)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    script = os.path.abspath(sys.argv[0])
    # --kill-child: if unshare is killed (meson's timeout), the namespace's init dies with it.
    argv = ["unshare", "--mount", "--pid", "--fork", "--kill-child", "--mount-proc",
            PYTHON, script] + sys.argv[1:]
    sys.stdout.flush()
    sys.stderr.flush()
    p = subprocess.Popen(argv, env=env)

    def forward(signum, _frame):
        p.send_signal(signum)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)
    rc = p.wait()
    _remove_cgroups(base, tag)
    sys.exit(rc if rc >= 0 else 128 - rc)


def _enter_own_cgroups():
    for d in filter(None, os.environ.get(NS_CGROUPS, "").split(":")):
        try:
            with open(os.path.join(d, "cgroup.procs"), "w") as f:
                f.write("0")
        except OSError as e:
            sys.stderr.write("warning: cannot enter cgroup %s: %s\n" % (d, e))


class Manager:
    """The systemd user manager of this namespace."""

    def __init__(self):
        self.workdir = tempfile.mkdtemp(prefix="migrated-sd-")
        self.config_home = os.path.join(self.workdir, "config")
        self.unit_dir = os.path.join(self.config_home, "systemd", "user")
        self.log_path = os.path.join(self.workdir, "manager.log")
        self.runtime_dir = "/run/user/%d" % os.getuid()
        self.proc = None
        self._log = None

    def boot(self):
        if os.environ.get(NS_MARK) != "1" or os.getpid() != 1:
            raise HarnessError("Manager.boot() must run as PID 1 of the test's own PID namespace")
        _enter_own_cgroups()
        subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0755", "tmpfs", "/run"], check=True, timeout=30)
        os.makedirs("/run/systemd/system")  # tells systemd it was "booted" with systemd
        os.makedirs(self.runtime_dir)
        os.chmod(self.runtime_dir, 0o700)
        os.makedirs(self.unit_dir)
        os.environ["XDG_RUNTIME_DIR"] = self.runtime_dir
        os.environ["XDG_CONFIG_HOME"] = self.config_home
        # The host's bus addresses lead out of this namespace; systemctl --user must use
        # the manager's private socket or $XDG_RUNTIME_DIR/bus.
        os.environ.pop("DBUS_SESSION_BUS_ADDRESS", None)
        os.environ.pop("NOTIFY_SOCKET", None)
        env = dict(os.environ)
        env["SYSTEMD_LOG_TARGET"] = "console"
        env.setdefault("SYSTEMD_LOG_LEVEL", "info")
        self._log = open(self.log_path, "ab")
        # Without a journal the manager says little; what it says (generators, fatal errors) is
        # kept for failure reports.
        self.proc = subprocess.Popen([SYSTEMD_BIN, "--user", "--log-target=console"], stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=subprocess.STDOUT, env=env)
        self._wait_ready()
        return self

    def _wait_ready(self):
        private = os.path.join(self.runtime_dir, "systemd", "private")
        deadline = time.monotonic() + MANAGER_READY_TIMEOUT
        answer = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise HarnessError("systemd --user exited with %s; log:\n%s" % (self.proc.returncode, self.log()))
            if os.path.exists(private):
                try:
                    p = subprocess.run(["systemctl", "--user", "is-system-running"], stdin=subprocess.DEVNULL,
                                       capture_output=True, text=True, timeout=5)
                    answer = p.stdout.strip()
                    if answer in ("running", "degraded"):
                        return
                except subprocess.TimeoutExpired:
                    pass
            time.sleep(0.05)
        raise HarnessError("systemd --user not ready within %ss (private socket %s: %s, is-system-running: %r); "
                           "log:\n%s"
                           % (MANAGER_READY_TIMEOUT, private, os.path.exists(private), answer, self.log()))

    def log(self, tail=200):
        try:
            with open(self.log_path, "rb") as f:
                lines = f.read().decode(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-tail:])

    def shutdown(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                subprocess.run(["systemctl", "--user", "exit"], stdin=subprocess.DEVNULL,
                               capture_output=True, timeout=10)
            except subprocess.TimeoutExpired:
                pass
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()
        shutil.rmtree(self.workdir, ignore_errors=True)


MANAGER = None


def run_tests(boot, shutdown):
    """Into the namespace, boot() what the tests need there, run them, shutdown(), exit."""
    if os.environ.get(NS_MARK) != "1":
        _run_in_namespace()
    status = 1
    t0 = time.monotonic()
    try:
        boot()
        prog = unittest.main(verbosity=2, exit=False)
        status = H.exit_status(prog.result, os.path.basename(sys.argv[0]))
    finally:
        shutdown()
        print("%s: %.1f s" % (os.path.basename(sys.argv[0]), time.monotonic() - t0), flush=True)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def main():
    """Entry point of each test file: into the namespace, boot the manager, run the tests."""
    def boot():
        global MANAGER
        MANAGER = Manager()
        MANAGER.boot()

    def shutdown():
        if MANAGER is not None and MANAGER.proc is not None:
            MANAGER.shutdown()
    run_tests(boot, shutdown)


# ---------------------------------------------------------------------------------------------
# systemctl


def systemctl(*args, check=True, timeout=SYSTEMCTL_TIMEOUT):
    argv = ["systemctl", "--user", "--no-pager"] + [str(a) for a in args]
    try:
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise HarnessError("%s did not finish within %ss (stdout %r, stderr %r)"
                           % (" ".join(argv), timeout, e.stdout, e.stderr))
    if check and p.returncode != 0:
        raise HarnessError("%s failed with %d:\n%s%s" % (" ".join(argv), p.returncode, p.stdout, p.stderr))
    return p


def daemon_reload():
    systemctl("daemon-reload")


def show(unit, *props):
    """systemctl show -p … UNIT as a dict of strings."""
    p = systemctl("show", "-p", ",".join(props), unit)
    out = {}
    for line in p.stdout.splitlines():
        k, _, v = line.partition("=")
        out[k] = v
    for k in props:
        out.setdefault(k, "")
    return out


def show_int(unit, prop):
    v = show(unit, prop)[prop]
    return int(v) if v.strip() else 0


def active_state(unit):
    return show(unit, "ActiveState")["ActiveState"]


def main_pid(unit):
    return show_int(unit, "MainPID")


def unit_ms(unit, prop):
    """A *TimestampMonotonic property in milliseconds (CLOCK_MONOTONIC), 0 when unset."""
    return show_int(unit, prop) / 1000.0


def wait_state(unit, states, timeout=UNIT_TIMEOUT):
    if isinstance(states, str):
        states = (states,)
    last = {}

    def check():
        last.update(show(unit, "ActiveState", "SubState", "MainPID", "Result"))
        return last["ActiveState"] in states

    try:
        wait_until(check, timeout, interval=0.05, what="%s in %s" % (unit, states))
    except HarnessError:
        raise HarnessError("%s not in %s within %ss: %r" % (unit, states, timeout, last))
    return last


def quote_arg(s):
    """One argument of an Exec*= line: % starts a specifier, $ a variable, quotes group."""
    s = str(s).replace("%", "%%").replace("$", "$$")
    if s and all(c.isalnum() or c in "/._-=:,+@" for c in s):
        return s
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def exec_line(argv):
    return " ".join(quote_arg(a) for a in argv)


def unit_state_snapshot(units):
    lines = []
    for u in units:
        try:
            d = show(u, "ActiveState", "SubState", "Result", "MainPID", "NRestarts", "ExecMainStatus",
                     "ExecMainCode", "StatusText")
            lines.append("%s: %s" % (u, " ".join("%s=%s" % kv for kv in sorted(d.items()))))
        except HarnessError as e:
            lines.append("%s: %s" % (u, e))
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Migration sets


def devices_migrations(directory, extra=None):
    """v1 creates `devices` with 1000 rows; v2 rebuilds it (SQLite's 12-step table rebuild: new
    table, copy, drop, rename, index); v3 adds `settings` (quick). The writers never touch
    `devices` or `settings`. extra: more {version: (name, up, down)}."""
    m = {
            1: ("create_devices", textwrap.dedent("""\
                    CREATE TABLE devices (id INTEGER PRIMARY KEY, serial TEXT NOT NULL, temp_f REAL);
                    WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000)
                    INSERT INTO devices (id, serial, temp_f) SELECT x, printf('dev-%05d', x), 60 + x % 30 FROM c;
                    """), "DROP TABLE devices;\n"),
            2: ("rebuild_devices", textwrap.dedent("""\
                    CREATE TABLE devices_new (
                            id INTEGER PRIMARY KEY,
                            serial TEXT NOT NULL UNIQUE,
                            temp_c REAL CHECK (temp_c IS NULL OR temp_c BETWEEN -50 AND 100)
                    );
                    INSERT INTO devices_new (id, serial, temp_c)
                            SELECT id, serial, round((temp_f - 32) * 5.0 / 9.0, 2) FROM devices;
                    DROP TABLE devices;
                    ALTER TABLE devices_new RENAME TO devices;
                    CREATE INDEX devices_temp ON devices (temp_c);
                    """), textwrap.dedent("""\
                    CREATE TABLE devices_old (id INTEGER PRIMARY KEY, serial TEXT NOT NULL, temp_f REAL);
                    INSERT INTO devices_old (id, serial, temp_f)
                            SELECT id, serial, round(temp_c * 9.0 / 5.0 + 32, 2) FROM devices;
                    DROP TABLE devices;
                    ALTER TABLE devices_old RENAME TO devices;
                    """)),
            3: ("add_settings", "CREATE TABLE settings (k TEXT PRIMARY KEY, v TEXT NOT NULL);\n"
                                "INSERT INTO settings VALUES ('units', 'celsius');\n", "DROP TABLE settings;\n"),
    }
    if extra:
        m.update(extra)
    return H.write_migrations(directory, m)


def columns(db, table):
    c = H.db_connect(db)
    try:
        return [r[1] for r in c.execute("PRAGMA table_info(%s)" % table)]
    finally:
        c.close()


def scalar(db, sql, args=()):
    c = H.db_connect(db)
    try:
        row = c.execute(sql, args).fetchone()
        return row[0] if row else None
    finally:
        c.close()


# ---------------------------------------------------------------------------------------------
# Writers


class Writer(H.WriterLog):
    """A writer.py service, run by its own user unit."""

    def __init__(self, tc, name, mode, db, extra_service=""):
        self.tc = tc
        self.name = name
        self.unit = name + ".service"
        self.mode = mode
        self.log_path = tc.path(name + ".acks")
        H.WriterLog.__init__(self, self.log_path)
        self.out_path = tc.path(name + ".out")
        argv = [PYTHON, WRITER, db, self.log_path, name, "--mode", mode]
        self.text = textwrap.dedent("""\
                [Unit]
                Description=migrated test writer {name} ({mode})

                [Service]
                Type=notify
                ExecStart={exec}
                StandardOutput=append:{out}
                StandardError=append:{out}
                TimeoutStartSec=30
                TimeoutStopSec=60
                {extra}
                """).format(name=name, mode=mode, exec=exec_line(argv), out=self.out_path, extra=extra_service)

    def start(self):
        systemctl("start", self.unit, timeout=40)
        wait_state(self.unit, "active")
        return self

    def pid(self):
        return main_pid(self.unit)

    def state(self):
        return active_state(self.unit)

    def out(self):
        try:
            with open(self.out_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""


# ---------------------------------------------------------------------------------------------
# Reading a job over the protocol step by step


def read_until(conn, predicate, timeout, what="event"):
    """Reads lines from conn until predicate(msg) is true; returns the events read (the
    matching one last). Raises if the final line or EOF comes first."""
    deadline = time.monotonic() + timeout
    events = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise HarnessError("no %s within %ss; events so far: %r" % (what, timeout, events))
        msg = conn.read_json(left)
        if msg is None:
            raise HarnessError("connection closed before %s; events: %r" % (what, events))
        events.append(msg)
        if "result" in msg or "error" in msg:
            raise HarnessError("the job ended before %s: %r; events: %r" % (what, msg, events[:-1]))
        if predicate(msg):
            return events


def is_applying(version):
    return lambda m: m.get("event") == "migration" and m.get("phase") == "applying" and m.get("version") == version


# ---------------------------------------------------------------------------------------------
# Base test case


class TestCase(H.TestCase):
    """A test against the namespace's systemd user manager. Gives the test a WAL database with
    the `acks` table, unit factories, and stops and removes every unit it wrote at cleanup."""

    counter = 0

    def setUp(self):
        super().setUp()
        if MANAGER is None or MANAGER.proc is None:
            self.fail("run this file as a script (sdharness.main()): it needs its own systemd manager")
        TestCase.counter += 1
        self.n = TestCase.counter
        self.db = self.path("db.sqlite")
        self.sock = self.path("migrated.sock")
        self.migrated_log = self.path("migrated.log")
        self.state_dir = self.path("state")
        self.state_file = os.path.join(self.state_dir, "units.json")
        self.gate_file = os.path.join(self.state_dir, "gate.json")
        self.unit_files = []
        self.writers = []
        self.addCleanup(self._sd_cleanup)

    # --- units -------------------------------------------------------------------------

    def write_unit(self, name, text, reload=True):
        path = os.path.join(MANAGER.unit_dir, name)
        with open(path, "w") as f:
            f.write(text)
        if name not in self.unit_files:
            self.unit_files.append(name)
        if reload:
            daemon_reload()
        return path

    def writer(self, tag, mode="write", start=True, extra_service=""):
        """A writer service named w<test>-<tag>.service (unique per test)."""
        w = Writer(self, "w%d-%s" % (self.n, tag), mode, self.db, extra_service)
        self.write_unit(w.unit, w.text)
        self.writers.append(w)
        if start:
            w.start()
        return w

    def create_db(self, sql=""):
        H.create_wal_db(self.db, ACKS_SQL + sql)

    def migrated_argv(self, migrations, units=None, socket=True, stop_timeout=10, start_timeout=30,
                      holder_timeout=None, extra_args=(), config=None, database=True, online="never"):
        argv = [H.MIGRATED_BIN]
        if database:
            argv += ["--database", self.db]
        if migrations is not None:
            argv += ["--migrations", migrations]
        if socket:
            argv += ["--socket", self.sock]
        if config is not None:
            argv += ["--config", config]
        if units is not None:
            argv += ["--manager", "user", "--units", " ".join(units)]
            if stop_timeout is not None:
                argv += ["--stop-timeout", stop_timeout]
            if start_timeout is not None:
                argv += ["--start-timeout", start_timeout]
            if holder_timeout is not None:
                argv += ["--holder-timeout", holder_timeout]
            # these suites test the stop/start path: an additive plan would otherwise run online
            # with the units running (tests/integration/test_online.py covers that path)
            if online is not None:
                argv += ["--online", online]
        argv += list(extra_args)
        if "--state-dir" not in argv:
            argv += ["--state-dir", self.state_dir]
        return argv

    def migrated_unit_text(self, argv, service_extra=""):
        return textwrap.dedent("""\
                [Unit]
                Description=migrated under test

                [Service]
                Type=notify
                ExecStart={exec}
                Restart=on-failure
                RestartSec=1
                StandardOutput=append:{log}
                StandardError=append:{log}
                TimeoutStartSec=30
                TimeoutStopSec=30
                LimitCORE=0
                {extra}
                """).format(exec=exec_line(argv), log=self.migrated_log, extra=service_extra)

    def migrated(self, migrations, units=None, start=True, service_extra="", **kw):
        """Writes migrated-test.service and (by default) starts it: systemctl start returns
        once migrated said READY=1; then the socket must accept connections."""
        argv = self.migrated_argv(migrations, units, **kw)
        self.write_unit(MIGRATED_UNIT, self.migrated_unit_text(argv, service_extra))
        if start:
            self.start_migrated()
        return argv

    def start_migrated(self):
        p = systemctl("start", MIGRATED_UNIT, check=False, timeout=45)
        if p.returncode != 0:
            raise HarnessError("systemctl start %s failed (%d): %s\n%s\nmigrated log:\n%s"
                               % (MIGRATED_UNIT, p.returncode, p.stderr.strip(),
                                  unit_state_snapshot([MIGRATED_UNIT]), self.read_migrated_log()))
        wait_state(MIGRATED_UNIT, "active")
        self.wait_socket()

    def wait_socket(self, timeout=10.0):
        def ok():
            try:
                with H.Conn(self.sock, 2.0):
                    return True
            except OSError:
                return False
        try:
            wait_until(ok, timeout, interval=0.05, what="migrated's socket")
        except HarnessError:
            raise HarnessError("migrated's socket %s does not accept connections within %ss\n%s\nlog:\n%s"
                               % (self.sock, timeout, unit_state_snapshot([MIGRATED_UNIT]),
                                  self.read_migrated_log()))

    def read_migrated_log(self):
        try:
            with open(self.migrated_log, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    # --- talking to migrated -----------------------------------------------------------

    def ctl(self, *args, json_out=True, timeout=JOB_TIMEOUT, sock=None):
        return H.ctl(*args, sock=sock or self.sock, json_out=json_out, timeout=timeout)

    def rpc(self, method, params=None, timeout=JOB_TIMEOUT):
        return H.rpc(self.sock, method, params, timeout=timeout)

    def call(self, method, params=None, timeout=JOB_TIMEOUT):
        _, final = self.rpc(method, params, timeout)
        if "result" not in final:
            raise HarnessError("%s %r failed: %r" % (method, params, final))
        return final["result"]

    def conn(self, timeout=JOB_TIMEOUT):
        c = H.Conn(self.sock, timeout)
        self.addCleanup(c.close)
        return c

    def history(self):
        return self.call("history")["attempts"]

    # --- assertions --------------------------------------------------------------------

    def assertRestarted(self, writer, old_pid, timeout=UNIT_TIMEOUT):
        """The writer's unit is active again, with a new main process."""
        st = wait_state(writer.unit, "active", timeout)
        pid = int(st["MainPID"])
        self.assertNotEqual(pid, 0, "%s active without a main PID" % writer.unit)
        self.assertNotEqual(pid, old_pid, "%s was not restarted: same MainPID %d" % (writer.unit, pid))
        return pid

    def assertAllAckedInDb(self, writers):
        acked = set()
        for w in writers:
            acked.update(w.acked_ids())  # read the logs first: they only grow after COMMIT
        c = H.db_connect(self.db)
        try:
            in_db = set(r[0] for r in c.execute("SELECT id FROM acks"))
        finally:
            c.close()
        missing = sorted(acked - in_db)
        self.assertEqual(missing, [], "%d acknowledged inserts are missing from the database (of %d)"
                         % (len(missing), len(acked)))
        return acked

    def assertNoStateFile(self):
        self.assertFalse(os.path.exists(self.state_file), "state file left behind: %s" % self.read_state())

    def read_state(self):
        try:
            with open(self.state_file) as f:
                return f.read()
        except OSError as e:
            return "<%s>" % e

    def assertUnitOutcomes(self, outcomes, names, killed, phase_ms):
        """units.stopped or units.started: one sane entry per unit of names. The job's result
        for each unit is under "outcome" (README: event and final lines never carry a top-level
        "result" key; the brief's draft said "result")."""
        self.assertIsInstance(outcomes, list, outcomes)
        self.assertEqual(sorted(o.get("unit") for o in outcomes), sorted(names), outcomes)
        for o in outcomes:
            for key in ("unit", "outcome", "ok", "killed", "duration_ms"):
                self.assertIn(key, o, o)
            self.assertIs(o["ok"], True, o)
            self.assertEqual(o["outcome"], "done", o)
            self.assertIs(type(o["duration_ms"]), int, o)
            # each unit's stop (start) lies within the phase that stopped (started) them all
            self.assertIn(o["duration_ms"], range(0, phase_ms + 2), "unit duration outside its phase "
                          "(%s ms): %r" % (phase_ms, o))
            self.assertIs(o["killed"], o["unit"] in killed, o)

    def assertJobReport(self, body, stopped, started=None, killed=()):
        """The units/downtime_ms/timings part of a result (or of an error's extras)."""
        started = stopped if started is None else started
        self.assertIn("units", body, body)
        t = body.get("timings")
        self.assertIsInstance(t, dict, body)
        for k in ("stopping_ms", "checks_ms", "sql_ms", "starting_ms"):
            self.assertIs(type(t.get(k)), int, "timings.%s: %r" % (k, t))
        self.assertUnitOutcomes(body["units"].get("stopped"), stopped, killed, t["stopping_ms"])
        self.assertUnitOutcomes(body["units"].get("started"), started, (), t["starting_ms"])
        d = body.get("downtime_ms")
        self.assertIs(type(d), int, body)
        # First unit stopped → last unit active again: it spans the SQL, and (give or take
        # the first unit's own stop) the stopping; allow 100 ms for rounding and order.
        self.assertGreaterEqual(d + 100, t["stopping_ms"] + t["sql_ms"],
                                "downtime_ms must cover stopping and SQL: %r" % body)
        return body

    # --- cleanup -----------------------------------------------------------------------

    def _sd_cleanup(self):
        units = [u for u in self.unit_files]
        if self._failed():
            self.extra_logs.append(("unit states", unit_state_snapshot(units)))
            self.extra_logs.append(("migrated-test.service output (%s)" % self.migrated_log,
                                    self.read_migrated_log()))
            for w in self.writers:
                recs = w.records()
                self.extra_logs.append(("%s output" % w.unit, w.out()))
                self.extra_logs.append(("%s log (last 10 of %d records)" % (w.unit, len(recs)),
                                        "\n".join(map(str, recs[-10:]))))
            self.extra_logs.append(("systemd --user log (tail)", MANAGER.log(80)))
        # migrated first (a clean SIGTERM: a running job rolls back), then the rest, SIGKILLed
        # first (some ignore SIGTERM); nothing may outlive the test.
        own = [u for u in units if u.startswith("migrated-test")]
        others = [u for u in units if not u.startswith("migrated-test")]
        if own:
            try:
                systemctl("stop", *own, check=False, timeout=40)
            except HarnessError:
                pass
        for group in (own, others):
            if group:
                systemctl("kill", "--signal=SIGKILL", *group, check=False)
                systemctl("stop", *group, check=False, timeout=40)
        if units:
            systemctl("reset-failed", *units, check=False)
        for u in units:
            try:
                os.unlink(os.path.join(MANAGER.unit_dir, u))
            except FileNotFoundError:
                pass
        if units:
            daemon_reload()


def print_figure(line):
    """A line for the report, visible in meson's test log and on a terminal."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()

