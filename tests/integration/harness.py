# SPDX-License-Identifier: MIT
"""Shared harness for the integration tests of migrated and migratectl.

Everything here drives real components: a real migrated process on a real Unix socket, real SQLite
files in WAL mode, real writer processes. Every wait has a deadline, every socket a timeout, and
every process a test starts is killed in its cleanup, also when the test fails.

Environment: MIGRATED_BIN, MIGRATECTL_BIN, MIGRATIONS_DIR (the example migrations).
"""

import hashlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SRC_ROOT = os.path.dirname(os.path.dirname(HERE))


def _env_path(name, default):
    value = os.environ.get(name)
    if value:
        return value
    return default


MIGRATED_BIN = _env_path("MIGRATED_BIN", os.path.join(SRC_ROOT, "build-int", "daemon", "migrated"))
MIGRATECTL_BIN = _env_path("MIGRATECTL_BIN", os.path.join(SRC_ROOT, "build-int", "client", "migratectl"))
MIGRATIONS_DIR = _env_path("MIGRATIONS_DIR", os.path.join(SRC_ROOT, "migrations"))

READY_TIMEOUT = 10.0      # the daemon's socket must accept connections within this
STOP_TIMEOUT = 15.0       # SIGTERM → exit
RPC_TIMEOUT = 60.0        # one request's final line
CTL_TIMEOUT = 60.0        # one migratectl run

# Number of iterations of the recursive CTE of the slow migration: about 4 s on the machine these
# tests were written on (one row in 20 is inserted). Scale it with MIGRATED_TEST_SLOW_N if needed.
SLOW_N = int(os.environ.get("MIGRATED_TEST_SLOW_N", "30000000"))

# A daemon started by a test without its own state directory must not write the host's
# /var/lib/migrated: give every process of this run one temporary default (removed at exit).
if "STATE_DIRECTORY" not in os.environ:
    import atexit
    os.environ["STATE_DIRECTORY"] = tempfile.mkdtemp(prefix="migrated-test-state-")
    atexit.register(shutil.rmtree, os.environ["STATE_DIRECTORY"], True)

# Names of the bookkeeping tables, excluded from schema comparisons.
SCHEMA_QUERY = ("SELECT type, name, tbl_name, sql FROM sqlite_master "
                "WHERE name NOT LIKE 'migrated_%' AND name NOT LIKE 'sqlite_%' ORDER BY type, name")


class HarnessError(AssertionError):
    pass


# ---------------------------------------------------------------------------------------------
# Socket protocol


class Conn:
    """One raw connection to the daemon's socket, line oriented, every read with a deadline."""

    def __init__(self, sock_path, timeout=RPC_TIMEOUT):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.timeout = timeout
        self.buf = b""
        self.eof = False
        # A socket with a timeout is non-blocking inside: a full listen backlog gives EAGAIN at
        # once rather than waiting. Retry until the deadline, as a blocking client would wait.
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock.connect(sock_path)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    self.sock.close()
                    raise TimeoutError("connect to %s: backlog full until the deadline" % sock_path)
                time.sleep(0.005)
            except BaseException:
                self.sock.close()
                raise

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send_raw(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def send(self, method, params=None, id=1, extra=None):
        req = {"id": id, "method": method}
        if params is not None:
            req["params"] = params
        if extra:
            req.update(extra)
        self.send_raw(json.dumps(req).encode() + b"\n")

    def read_line(self, timeout=None):
        """Returns the next line (bytes, without newline), or None at EOF."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        while b"\n" not in self.buf:
            if self.eof:
                return None
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no complete line from the daemon in time; have %r" % self.buf[:200])
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                raise TimeoutError("no complete line from the daemon in time; have %r" % self.buf[:200])
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                self.eof = True
                if not self.buf:
                    return None
                line, self.buf = self.buf, b""
                return line
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line

    def read_json(self, timeout=None):
        line = self.read_line(timeout)
        if line is None:
            return None
        try:
            return json.loads(line)
        except ValueError:
            raise HarnessError("daemon sent a line that is not JSON: %r" % line[:300])

    def read_reply(self, id=1, timeout=None, on_event=None):
        """Reads event lines until the final result/error line. Returns (events, final)."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        events = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no final line for id %r in time; events so far: %r" % (id, events))
            msg = self.read_json(left)
            if msg is None:
                raise HarnessError("daemon closed the connection before the final line for id %r; "
                                   "events: %r" % (id, events))
            if not isinstance(msg, dict):
                raise HarnessError("daemon sent a non-object line: %r" % (msg,))
            if "event" in msg:
                events.append(msg)
                if on_event:
                    on_event(msg)
                continue
            if "result" in msg or "error" in msg:
                return events, msg
            raise HarnessError("line is neither event nor final: %r" % (msg,))

    def call(self, method, params=None, id=1, timeout=None):
        self.send(method, params, id)
        return self.read_reply(id, timeout)


def rpc(sock_path, method, params=None, id=1, timeout=RPC_TIMEOUT):
    """One request on its own connection. Returns (events, final) where final is the whole final
    line: {"id":…, "result":{…}} or {"id":…, "error":{…}}."""
    with Conn(sock_path, timeout) as c:
        return c.call(method, params, id, timeout)


def result_of(final):
    if "result" not in final:
        raise HarnessError("expected a result, got %r" % (final,))
    return final["result"]


def error_of(final):
    if "error" not in final:
        raise HarnessError("expected an error, got %r" % (final,))
    return final["error"]


def send_raw_line(sock_path, data, timeout=10.0):
    """Sends raw bytes (a newline is appended unless present) on a fresh connection and returns the
    first reply line parsed as JSON (None when the daemon closed without answering)."""
    if isinstance(data, str):
        data = data.encode()
    if not data.endswith(b"\n"):
        data += b"\n"
    with Conn(sock_path, timeout) as c:
        c.send_raw(data)
        return c.read_json(timeout)


# ---------------------------------------------------------------------------------------------
# migratectl


class CtlResult:
    def __init__(self, argv, rc, out, err, elapsed):
        self.argv, self.rc, self.out, self.err, self.elapsed = argv, rc, out, err, elapsed

    @property
    def json(self):
        try:
            return json.loads(self.out)
        except ValueError:
            raise HarnessError("migratectl --json printed no single JSON document:\n%s\nstderr:\n%s"
                               % (self.out, self.err))

    def __iter__(self):  # rc, out, err = ctl(...)
        return iter((self.rc, self.out, self.err))

    def __repr__(self):
        return "<migratectl %s → %d\nstdout: %s\nstderr: %s>" % (" ".join(self.argv), self.rc,
                                                                 self.out[-2000:], self.err[-2000:])


def ctl(*args, sock=None, json_out=False, timeout=CTL_TIMEOUT, env=None, cwd=None):
    """Runs migratectl with a deadline. Global options go before the command."""
    argv = [MIGRATECTL_BIN]
    if sock is not None:
        argv += ["--socket", sock]
    if json_out:
        argv.append("--json")
    argv += [str(a) for a in args]
    full_env = dict(os.environ)
    full_env.pop("MIGRATED_SOCKET", None)
    if env:
        full_env.update(env)
    t0 = time.monotonic()
    try:
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=timeout, env=full_env, cwd=cwd)
    except subprocess.TimeoutExpired as e:
        raise HarnessError("migratectl %s did not finish within %ss; stdout %r stderr %r"
                           % (" ".join(argv[1:]), timeout, e.stdout, e.stderr))
    return CtlResult(argv[1:], p.returncode, p.stdout.decode(errors="replace"),
                     p.stderr.decode(errors="replace"), time.monotonic() - t0)


def run_admin_tool(argv):
    """useradd & co. take a lock on /etc/passwd and /etc/group: retry while someone else holds it."""
    deadline = time.monotonic() + 30
    while True:
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=30)
        if p.returncode == 0:
            return
        err = p.stderr.decode(errors="replace")
        if "lock" in err.lower() and time.monotonic() < deadline:
            time.sleep(0.3)
            continue
        raise HarnessError("%s failed (%d): %s" % (" ".join(argv), p.returncode, err))


def create_system_users(names, created):
    """As root, a system user (and its group) per name, appended to created as it is made; without
    root nothing (tests needing one then skip)."""
    if os.geteuid() != 0:
        return
    for name in names:
        run_admin_tool(["useradd", "--system", "--no-create-home", "--user-group", "--home-dir",
                        "/nonexistent", "--shell", "/usr/sbin/nologin", name])
        created.append(name)


def remove_system_users(created):
    """Removes the users create_system_users() made, and their groups."""
    for u in created:
        run_admin_tool(["userdel", u])
        try:
            run_admin_tool(["groupdel", u])
        except HarnessError:
            pass  # removed with the user
    created.clear()


# ---------------------------------------------------------------------------------------------
# The daemon


class Daemon:
    """A real migrated process. Start it with start(); it is registered with the test so that it
    is killed at cleanup whatever happens."""

    counter = 0

    def __init__(self, workdir, database=None, migrations=None, socket_path=None, extra_args=(),
                 config=None, args=None):
        Daemon.counter += 1
        self.n = Daemon.counter
        self.workdir = workdir
        self.database = database
        self.migrations = migrations
        self.config_path = config
        self.socket = socket_path or os.path.join(workdir, "migrated-%d.sock" % self.n)
        self.log_path = os.path.join(workdir, "migrated-%d.log" % self.n)
        if args is not None:
            self.argv = [MIGRATED_BIN] + list(args)
        else:
            self.argv = [MIGRATED_BIN]
            if database is not None:
                self.argv += ["--database", database]
            if migrations is not None:
                self.argv += ["--migrations", migrations]
            if self.socket is not None:
                self.argv += ["--socket", self.socket]
            if config is not None:
                self.argv += ["--config", config]
            self.argv += [str(a) for a in extra_args]
        self.proc = None
        self._log = None

    def state_dir(self):
        """The daemon's state directory: one per database (or configuration) in the test's
        directory, never the host's /var/lib/migrated; the same across restarts."""
        key = self.database or self.config_path or self.socket
        return os.path.join(self.workdir, "state", hashlib.sha256(key.encode()).hexdigest()[:16])

    def env(self):
        e = dict(os.environ)
        if "--state-dir" not in self.argv:
            e["STATE_DIRECTORY"] = self.state_dir()
        return e

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def start(self, wait=True, timeout=READY_TIMEOUT):
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log,
                                     start_new_session=True, env=self.env())
        if wait:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout=READY_TIMEOUT):
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise HarnessError("migrated exited with %s before its socket was ready; log:\n%s"
                                   % (self.proc.returncode, self.log()))
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(1.0)
            try:
                s.connect(self.socket)
                return
            except OSError:
                pass
            finally:
                s.close()
            if time.monotonic() > deadline:
                raise HarnessError("migrated's socket %s not ready within %ss; log:\n%s"
                                   % (self.socket, timeout, self.log()))
            time.sleep(0.02)

    def signal(self, sig):
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def wait(self, timeout=STOP_TIMEOUT):
        """Waits for the process to exit; returns its exit status, or raises on timeout."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise HarnessError("migrated (pid %d) did not exit within %ss; log:\n%s"
                               % (self.proc.pid, timeout, self.log()))

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM and wait. Returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
        return self.wait(timeout)

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        if self._log:
            self._log.close()
            self._log = None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    # conveniences
    def rpc(self, method, params=None, id=1, timeout=RPC_TIMEOUT):
        return rpc(self.socket, method, params, id, timeout)

    def call(self, method, params=None, timeout=RPC_TIMEOUT):
        """rpc that must succeed; returns the result object."""
        _, final = self.rpc(method, params, timeout=timeout)
        if "result" not in final:
            raise HarnessError("%s %r failed: %r" % (method, params, final))
        return final["result"]

    def status(self):
        return self.call("status")

    def ctl(self, *args, json_out=True, timeout=CTL_TIMEOUT, env=None):
        return ctl(*args, sock=self.socket, json_out=json_out, timeout=timeout, env=env)

    def wait_idle(self, timeout=60.0):
        """Polls status until no job runs and none waits; returns that status."""
        deadline = time.monotonic() + timeout
        while True:
            st = self.status()
            if st.get("state") == "idle" and not st.get("queue_length"):
                return st
            if time.monotonic() > deadline:
                raise HarnessError("daemon still busy after %ss: %r" % (timeout, st))
            time.sleep(0.05)


# ---------------------------------------------------------------------------------------------
# SQLite helpers (our own connections, never the daemon's)


def db_connect(path, timeout=10.0):
    return sqlite3.connect(path, timeout=timeout, isolation_level=None)


def query(db, sql, params=()):
    """Every row of one query on its own connection."""
    c = db_connect(db)
    try:
        return c.execute(sql, params).fetchall()
    finally:
        c.close()


def _table_exists(c, name):
    return c.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,)).fetchone() is not None


def schema(db):
    """The user schema: (type, name, tbl_name, sql) of everything but bookkeeping."""
    return query(db, SCHEMA_QUERY)


def tables(db):
    c = db_connect(db)
    try:
        return [r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type='table' AND "
                                        "name NOT LIKE 'sqlite_%' ORDER BY name")]
    finally:
        c.close()


def applied_rows(db):
    """Rows of migrated_schema as dicts, by version; [] when the table does not exist."""
    c = db_connect(db)
    c.row_factory = sqlite3.Row
    try:
        if not _table_exists(c, "migrated_schema"):
            return []
        return [dict(r) for r in c.execute("SELECT * FROM migrated_schema ORDER BY version")]
    finally:
        c.close()


def applied_versions(db):
    return [r["version"] for r in applied_rows(db)]


def current_version(db):
    """The highest applied version, 0 for an empty schema."""
    v = applied_versions(db)
    return max(v) if v else 0


def attempts(db):
    """Rows of migrated_attempts as dicts, oldest first; [] when the table does not exist."""
    c = db_connect(db)
    c.row_factory = sqlite3.Row
    try:
        if not _table_exists(c, "migrated_attempts"):
            return []
        return [dict(r) for r in c.execute("SELECT * FROM migrated_attempts ORDER BY id")]
    finally:
        c.close()


def journal_mode(db):
    c = db_connect(db)
    try:
        return c.execute("PRAGMA journal_mode").fetchone()[0]
    finally:
        c.close()


def create_wal_db(path, sql=None):
    c = db_connect(path)
    try:
        assert c.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal"
        if sql:
            c.executescript(sql)
    finally:
        c.close()


def sha256_file(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


# ---------------------------------------------------------------------------------------------
# Migration directories


def drift_differences(case, r):
    """A diff's JSON result as {(kind, object): detail}, after checking its document and that its
    exit code says drift (9) exactly when there are differences."""
    doc = r.json
    case.assertEqual(set(doc), {"drift", "replayed", "differences"}, r)
    case.assertEqual(r.rc, 9 if doc["drift"] else 0, r)
    case.assertEqual(doc["drift"], bool(doc["differences"]), r)
    return {(x["kind"], x["object"]): x["detail"] for x in doc["differences"]}


def write_migrations(directory, migrations):
    """migrations: {version: (name, up_sql, down_sql_or_None)}. Returns the directory."""
    os.makedirs(directory, exist_ok=True)
    for version, (name, up, down) in migrations.items():
        base = "%04d_%s" % (version, name)
        with open(os.path.join(directory, base + ".up.sql"), "w") as f:
            f.write(up)
        if down is not None:
            with open(os.path.join(directory, base + ".down.sql"), "w") as f:
                f.write(down)
    return directory


def up_file(directory, version):
    for f in sorted(os.listdir(directory)):
        if f.endswith(".up.sql") and int(f.split("_", 1)[0]) == version:
            return f
    raise HarnessError("no up file for version %d in %s" % (version, directory))


def example_migrations():
    """[(version, name, up_file, down_file_or_None)] of the example migrations, ascending."""
    if not os.path.isdir(MIGRATIONS_DIR):
        raise unittest.SkipTest("no example migrations directory at %s" % MIGRATIONS_DIR)
    ups, downs = {}, {}
    for f in os.listdir(MIGRATIONS_DIR):
        if f.endswith(".up.sql"):
            ups[int(f.split("_", 1)[0])] = f
        elif f.endswith(".down.sql"):
            downs[int(f.split("_", 1)[0])] = f
    if not ups:
        raise unittest.SkipTest("the example migrations directory %s is empty" % MIGRATIONS_DIR)
    out = []
    for v in sorted(ups):
        name = ups[v][:-len(".up.sql")].split("_", 1)[1]
        out.append((v, name, ups[v], downs.get(v)))
    return out


def slow_sql(table="big", n=None):
    """A data migration taking several seconds: a recursive CTE walking n rows, inserting 1 in 20."""
    n = SLOW_N if n is None else n
    return textwrap.dedent("""\
        CREATE TABLE %s (x INTEGER, y TEXT);
        WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < %d)
        INSERT INTO %s SELECT x, hex(randomblob(8)) FROM c WHERE x %% 20 = 0;
        """) % (table, n, table)


# ---------------------------------------------------------------------------------------------
# Writer processes: real, separate processes with their own SQLite connection


WRITER_SCRIPT = r'''
import os, sqlite3, sys, time
db, log_path, stop_path = sys.argv[1], sys.argv[2], sys.argv[3]
c = sqlite3.connect(db, timeout=60, isolation_level=None)
assert c.execute("PRAGMA journal_mode").fetchone()[0] == "wal", "database not in WAL mode"
c.execute("CREATE TABLE IF NOT EXISTS writer_rows (id INTEGER PRIMARY KEY, at REAL NOT NULL)")
log = open(log_path, "a", buffering=1)
print("ready", flush=True)
while not os.path.exists(stop_path):
    c.execute("BEGIN IMMEDIATE")
    rowid = c.execute("INSERT INTO writer_rows (at) VALUES (?)", (time.time(),)).lastrowid
    c.execute("COMMIT")
    log.write("%d\n" % rowid)
    time.sleep(0.005)
log.close()
print("done", flush=True)
'''

# Holds the write lock (BEGIN IMMEDIATE and an uncommitted insert) for argv[2] seconds, then
# commits and prints "released", then idles until killed.
HOLDER_SCRIPT = r'''
import sqlite3, sys, time
db, hold = sys.argv[1], float(sys.argv[2])
c = sqlite3.connect(db, timeout=10, isolation_level=None)
c.execute("CREATE TABLE IF NOT EXISTS holder_rows (id INTEGER PRIMARY KEY)")
c.execute("BEGIN IMMEDIATE")
c.execute("INSERT INTO holder_rows DEFAULT VALUES")
print("locked", flush=True)
time.sleep(hold)
c.execute("COMMIT")
print("released", flush=True)
time.sleep(3600)
'''


class Helper:
    """A Python helper process (writer or lock holder)."""

    def __init__(self, script, args, workdir, name):
        self.log_path = os.path.join(workdir, name + ".stderr")
        self._err = open(self.log_path, "wb")
        self.proc = subprocess.Popen([sys.executable, "-c", script] + [str(a) for a in args],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._err,
                                     start_new_session=True)

    def expect_line(self, expected, timeout=10.0):
        """Waits for one stdout line from the helper, with a deadline."""
        box = []
        t = threading.Thread(target=lambda: box.append(self.proc.stdout.readline()), daemon=True)
        t.start()
        t.join(timeout)
        if not box:
            raise HarnessError("helper did not print %r within %ss; stderr:\n%s" % (expected, timeout, self.stderr()))
        line = box[0].decode().strip()
        if line != expected:
            raise HarnessError("helper printed %r, expected %r; stderr:\n%s" % (line, expected, self.stderr()))

    def stderr(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def kill(self):
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        if self.proc.stdout:
            self.proc.stdout.close()
        self._err.close()


# ---------------------------------------------------------------------------------------------
# Base test case


class TestCase(unittest.TestCase):
    """Gives each test a temporary directory and kills every daemon and helper it started."""

    maxDiff = None

    def setUp(self):
        for path, what in ((MIGRATED_BIN, "MIGRATED_BIN"), (MIGRATECTL_BIN, "MIGRATECTL_BIN")):
            if not os.access(path, os.X_OK):
                self.fail("%s=%s is not an executable" % (what, path))
        self.tmp = tempfile.mkdtemp(prefix="migrated-it-")
        self.daemons = []
        self.helpers = []
        self.procs = []
        self.extra_logs = []
        self.addCleanup(self._cleanup)

    def _failed(self):
        outcome = getattr(self, "_outcome", None)
        if outcome is None:
            return False
        if not getattr(outcome, "success", True):
            return True
        result = getattr(outcome, "result", None)
        if result is not None:
            for test, _ in list(getattr(result, "errors", [])) + list(getattr(result, "failures", [])):
                if test is self:
                    return True
        return False

    def _cleanup(self):
        for h in self.helpers:
            h.kill()
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.kill(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                p.communicate(timeout=5)
            except (subprocess.TimeoutExpired, ValueError, OSError):
                pass
        for d in self.daemons:
            d.kill()
        if self._failed():
            for d in self.daemons:
                sys.stderr.write("\n----- %s: migrated #%d log (%s) -----\n%s\n" %
                                 (self.id(), d.n, " ".join(d.argv), d.log()))
            for h in self.helpers:
                sys.stderr.write("\n----- helper stderr -----\n%s\n" % h.stderr())
            for title, text in self.extra_logs:
                sys.stderr.write("\n----- %s -----\n%s\n" % (title, text))
            sys.stderr.flush()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # factories
    def path(self, *parts):
        return os.path.join(self.tmp, *parts)

    def daemon(self, database=None, migrations=None, extra_args=(), start=True, **kw):
        if database is None and kw.get("args") is None and kw.get("config") is None:
            database = self.path("db.sqlite")
        d = Daemon(self.tmp, database, migrations, extra_args=extra_args, **kw)
        self.daemons.append(d)
        if start:
            d.start()
        return d

    def helper(self, script, args, name):
        h = Helper(script, args, self.tmp, name)
        self.helpers.append(h)
        return h

    def spawn(self, argv, **kw):
        """A process killed at cleanup; stdout and stderr piped."""
        p = subprocess.Popen([str(a) for a in argv], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, start_new_session=True, **kw)
        self.procs.append(p)
        return p

    def copy_examples(self, name="migrations"):
        example_migrations()  # skip when absent
        dst = self.path(name)
        shutil.copytree(MIGRATIONS_DIR, dst)
        return dst

    # assertions
    def assertResult(self, final, msg=None):
        self.assertIn("result", final, msg or "expected a result, got %r" % (final,))
        return final["result"]

    def assertError(self, final, code, msg=None):
        self.assertIn("error", final, msg or "expected error %s, got %r" % (code, final))
        self.assertEqual(final["error"].get("code"), code, msg or "wrong error: %r" % (final,))
        self.assertIsInstance(final["error"].get("message"), str)
        return final["error"]

    def assertCtl(self, r, rc, msg=None):
        self.assertEqual(r.rc, rc, msg or repr(r))
        return r

    def assertFileIs(self, actual, expected_basename):
        """Error payloads may name a file by base name or path; either must end in the base name."""
        self.assertIsInstance(actual, str)
        self.assertEqual(os.path.basename(actual), expected_basename)


def wait_until(predicate, timeout, interval=0.02, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise HarnessError("timed out after %ss waiting for %s" % (timeout, what))
        time.sleep(interval)


# ---------------------------------------------------------------------------------------------
# Skips: reported, never counted as passes


SKIP = 77  # meson: the test was skipped


def in_ci():
    """Under CI=true every suite is mandatory: what is missing is installed by .ci/run."""
    return os.environ.get("CI", "").lower() == "true"


def cannot_run(why):
    """The whole file cannot run: exit 77 (SKIP for meson), or fail naming what is missing under
    CI, where a skip of a required suite would let a broken promise through."""
    sys.stdout.flush()
    if in_ci():
        print("FAIL: required suite cannot run under CI=true: %s" % why, flush=True)
        sys.exit(1)
    print("SKIP: %s" % why, flush=True)
    sys.exit(SKIP)


NPM_TIMEOUT = 300.0


def exit_status(result, name):
    """The process status for a unittest result: skips are listed; all skipped is 77 (SKIP); any
    skip under CI is a failure naming its reason."""
    for test, why in result.skipped:
        print("%s: skipped %s: %s" % (name, test.id(), why), flush=True)
    n_skipped = len(result.skipped)
    print("%s: %d run, %d failed, %d skipped" % (name, result.testsRun, len(result.failures) + len(result.errors)
                                                 + len(result.unexpectedSuccesses), n_skipped), flush=True)
    if not result.wasSuccessful():
        return 1
    if n_skipped and in_ci():
        print("FAIL: %d test(s) skipped under CI=true (a required test must run; install what it names)"
              % n_skipped, flush=True)
        return 1
    if result.testsRun == 0 or n_skipped == result.testsRun:
        return SKIP
    return 0


def main():
    prog = unittest.main(verbosity=2, exit=False)
    sys.stderr.flush()
    sys.exit(exit_status(prog.result, os.path.basename(sys.argv[0])))


NPM_TIMEOUT = 300.0


def npm_install(package_dir, program, what):
    """The program (relative to the install) of the package.json and package-lock.json in
    package_dir, installed by `npm ci` once per lockfile into MIGRATED_TEST_NPM_DIR; exits 77 (or
    fails under CI=true) without node and npm or when the registry cannot be reached."""
    prog, why = npm_install_or_reason(package_dir, program, what)
    if prog is None:
        cannot_run(why)
    return prog


def npm_install_or_reason(package_dir, program, what):
    """npm_install() for a caller that goes on without the program (the benchmarks' peer rows):
    (path, None), or (None, why it cannot be had)."""
    for tool in ("node", "npm"):
        if not shutil.which(tool):
            return None, "%s is not installed (packaging/install-deps.sh test installs nodejs and npm)" % tool
    h = hashlib.sha256()
    for f in ("package.json", "package-lock.json"):
        with open(os.path.join(package_dir, f), "rb") as fh:
            h.update(fh.read())
    base = os.environ.get("MIGRATED_TEST_NPM_DIR") or os.path.join(tempfile.gettempdir(), "migrated-test-npm")
    d = os.path.join(base, h.hexdigest()[:16])
    prog = os.path.join(d, program)
    if os.access(prog, os.X_OK):
        return prog, None
    os.makedirs(d, exist_ok=True)
    for f in ("package.json", "package-lock.json"):
        shutil.copy(os.path.join(package_dir, f), d)
    try:
        r = subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts"], cwd=d,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=NPM_TIMEOUT)
    except subprocess.TimeoutExpired:
        return None, "npm ci of %s took longer than %.0f s (is the npm registry reachable?)" % (what, NPM_TIMEOUT)
    if r.returncode != 0 or not os.access(prog, os.X_OK):
        return None, "npm ci of %s failed (is the npm registry reachable?):\n%s" % (what, r.stdout.decode(errors="replace"))
    return prog, None


class WriterLog:
    """A test writer's log (tests/systemd/writer.py): one "KIND VALUE MONOTONIC_S" record a line,
    kinds start (pid), ready, ack (row id), term, stop. Read by the systemd, crash and dependents
    tests alike."""

    def __init__(self, path):
        self.path = path

    def records(self):
        """[(kind, value, monotonic_s)]: ("start", pid, t), ("ack", id, t), ..."""
        out = []
        try:
            with open(self.path) as f:
                for line in f:
                    parts = line.split()
                    if len(parts) == 3:
                        out.append((parts[0], int(parts[1]), float(parts[2])))
        except FileNotFoundError:
            pass
        return out

    def acked_ids(self):
        return [v for k, v, _ in self.records() if k == "ack"]

    def starts(self):
        return [v for k, v, _ in self.records() if k == "start"]

    def acks_since_last_start(self):
        n = 0
        for k, _, _ in self.records():
            if k == "start":
                n = 0
            elif k == "ack":
                n += 1
        return n

    def wait_acks(self, n, timeout=30.0):
        """Waits until the current process has acknowledged at least n inserts."""
        wait_until(lambda: self.acks_since_last_start() >= n, timeout,
                   what="%d acknowledged inserts in %s" % (n, self.path))
