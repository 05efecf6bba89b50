# SPDX-License-Identifier: MIT
"""A real PostgreSQL 15 for the tests: initdb and pg_ctl in a temporary directory, run as an
unprivileged user the harness creates (initdb refuses root), fsync off, listening on a Unix socket
only. One cluster per test file; a fresh database per test (CREATE DATABASE ... TEMPLATE).

SKIP when PostgreSQL is not installed; under CI=true that is a failure naming what is missing.
"""

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))

import harness  # noqa: E402

PG_BIN = os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin")
PG_USER = "migrated-pgtest"
PORT = 5433


def missing():
    """What is missing to run PostgreSQL here, or None."""
    for tool in ("initdb", "pg_ctl", "postgres"):
        if not os.access(os.path.join(PG_BIN, tool), os.X_OK):
            return "PostgreSQL server (%s/%s; Debian: postgresql-15)" % (PG_BIN, tool)
    for tool in ("psql", "pg_dump", "pg_restore"):
        if not shutil.which(tool):
            return "%s (Debian: postgresql-client-15)" % tool
    if os.geteuid() != 0:
        return "root (to create the unprivileged user PostgreSQL runs as)"
    return None


def require_postgres(case):
    why = missing()
    if why is None:
        return
    if os.environ.get("CI") == "true":
        raise AssertionError("the postgres suite is required under CI=true but cannot run: missing " + why)
    raise unittest.SkipTest("missing " + why)


def ensure_user():
    try:
        return pwd.getpwnam(PG_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PG_USER],
                       check=True)
        return pwd.getpwnam(PG_USER)


class Cluster:
    """One PostgreSQL server in its own directory, as PG_USER, on a Unix socket."""

    def __init__(self):
        self.user = ensure_user()
        self.dir = tempfile.mkdtemp(prefix="migrated-pg-")
        os.chmod(self.dir, 0o755)
        self.data = os.path.join(self.dir, "data")
        self.sock = os.path.join(self.dir, "sock")
        self.log = os.path.join(self.dir, "log")
        os.mkdir(self.sock)
        os.chown(self.dir, self.user.pw_uid, self.user.pw_gid)
        os.chown(self.sock, self.user.pw_uid, self.user.pw_gid)
        self.port = PORT
        self.counter = 0

    def _as_user(self, argv):
        def demote():
            os.setgid(self.user.pw_gid)
            os.setgroups([])
            os.setuid(self.user.pw_uid)
        return subprocess.run(argv, preexec_fn=demote, cwd=self.dir, capture_output=True, text=True, timeout=120)

    def start(self, extra=()):
        r = self._as_user([os.path.join(PG_BIN, "initdb"), "-D", self.data, "-A", "trust", "-U", "postgres",
                           "-E", "UTF8", "--no-sync"])
        if r.returncode != 0:
            raise AssertionError("initdb failed: " + r.stderr)
        opts = "-k %s -c listen_addresses='' -p %d -c fsync=off -c full_page_writes=off %s" % (
            self.sock, self.port, " ".join(extra))
        r = self._as_user([os.path.join(PG_BIN, "pg_ctl"), "-D", self.data, "-l", self.log, "-w", "-o", opts,
                           "start"])
        if r.returncode != 0:
            raise AssertionError("pg_ctl start failed: %s %s" % (r.stderr, open(self.log).read()))
        # the template every test's database is made from
        self.psql("postgres", "CREATE DATABASE migrated_template TEMPLATE template0")
        return self

    def stop(self):
        pid_file = getattr(self, "pgbouncer_pid", None)
        if pid_file and os.path.exists(pid_file):
            with open(pid_file) as f:
                os.kill(int(f.read().strip()), 15)
        self._as_user([os.path.join(PG_BIN, "pg_ctl"), "-D", self.data, "-m", "immediate", "-w", "stop"])
        shutil.rmtree(self.dir, ignore_errors=True)

    def conninfo(self, dbname, user="postgres"):
        return "host=%s port=%d user=%s dbname=%s" % (self.sock, self.port, user, dbname)

    def new_database(self):
        """A fresh, empty database for one test."""
        self.counter += 1
        name = "t%d" % self.counter
        self.psql("postgres", "CREATE DATABASE %s TEMPLATE migrated_template" % name)
        return name

    def psql(self, dbname, sql, check=True):
        """Runs sql with psql; returns its rows as lists of strings (unaligned, tab-separated)."""
        r = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1",
                            self.conninfo(dbname), "-c", sql], capture_output=True, text=True, timeout=60)
        if check and r.returncode != 0:
            raise AssertionError("psql %r failed: %s" % (sql, r.stderr))
        return [line.split("\t") for line in r.stdout.splitlines() if line]

    def require_password(self, role):
        """From now on role must log in with its password (the rest stays trusted)."""
        hba = os.path.join(self.data, "pg_hba.conf")
        with open(hba) as f:
            rest = f.read()
        with open(hba, "w") as f:
            f.write("local all %s scram-sha-256\n%s" % (role, rest))
        self.psql("postgres", "SELECT pg_reload_conf()")

    def start_pgbouncer(self, pool_mode="transaction"):
        """pgbouncer in front of this server (as PG_USER: it refuses root), on its own Unix socket;
        returns a function giving a connection string through it for a database."""
        if not shutil.which("pgbouncer"):
            raise unittest.SkipTest("missing pgbouncer (Debian: pgbouncer)")
        d = os.path.join(self.dir, "pgbouncer")
        os.mkdir(d)
        with open(os.path.join(d, "users.txt"), "w") as f:
            f.write('"postgres" ""\n')
        with open(os.path.join(d, "pgbouncer.ini"), "w") as f:
            f.write("[databases]\n* = host=%s port=%d\n[pgbouncer]\nlisten_addr =\nlisten_port = 6433\n"
                    "unix_socket_dir = %s\nauth_type = trust\nauth_file = %s/users.txt\npool_mode = %s\n"
                    "server_reset_query =\nlogfile = %s/log\npidfile = %s/pid\n"
                    % (self.sock, self.port, d, d, pool_mode, d, d))
        for name in os.listdir(d):
            os.chown(os.path.join(d, name), self.user.pw_uid, self.user.pw_gid)
        os.chown(d, self.user.pw_uid, self.user.pw_gid)
        r = self._as_user(["pgbouncer", "-d", os.path.join(d, "pgbouncer.ini")])
        if r.returncode != 0:
            raise AssertionError("pgbouncer failed: " + r.stderr + r.stdout)
        self.pgbouncer_pid = os.path.join(d, "pid")
        through = lambda dbname: "host=%s port=6433 user=postgres dbname=%s" % (d, dbname)  # noqa: E731
        # `pgbouncer -d` may return before its socket accepts: wait until a query goes through it
        deadline = time.monotonic() + 30
        while True:
            r = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-c", "SELECT 1", through("postgres")],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            if r.returncode == 0:
                return through
            if time.monotonic() > deadline:
                raise AssertionError("pgbouncer never accepted a connection: " + r.stdout)
            time.sleep(0.05)  # polling its readiness: pgbouncer gives no event to wait for

    def session(self, dbname):
        """An interactive psql session (another client holding locks): write statements to it,
        read its output lines."""
        return Session(self, dbname)


class Session:
    """A psql process kept open: its locks last until it ends."""

    def __init__(self, cluster, dbname):
        self.proc = subprocess.Popen(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=0",
                                      cluster.conninfo(dbname)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, bufsize=1,
                                     env=dict(os.environ, PGAPPNAME="pgharness-session"))

    def run(self, sql, expect):
        """Sends sql and waits for a line containing expect (e.g. from a SELECT 'marker')."""
        self.proc.stdin.write(sql + "\n")
        self.proc.stdin.flush()
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise AssertionError("psql session ended while waiting for %r" % expect)
            if expect in line:
                return line.strip()

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=30)
        self.proc.stdout.close()


class PgTestCase(unittest.TestCase):
    """A test class with its own cluster, and for each test a fresh database and work directory."""

    cluster = None

    @classmethod
    def setUpClass(cls):
        require_postgres(cls)
        cls.cluster = Cluster().start()

    @classmethod
    def tearDownClass(cls):
        if cls.cluster:
            cls.cluster.stop()

    def setUp(self):
        self.workdir = tempfile.mkdtemp(prefix="migrated-pgtest-")
        self.addCleanup(shutil.rmtree, self.workdir, True)
        self.dbname = self.cluster.new_database()
        self.migrations = os.path.join(self.workdir, "migrations")
        os.mkdir(self.migrations)

    def daemon(self, extra=(), migrations=None, start=True, name=None):
        """A migrated on this test's database (its own socket, state directory and host name)."""
        d = harness.Daemon(self.workdir, migrations=migrations or self.migrations,
                           extra_args=["--connection", self.cluster.conninfo(self.dbname),
                                       "--state-dir", os.path.join(self.workdir, "state-%s" % (name or "x")),
                                       # each daemon is a host of its own (one per host name per database)
                                       "--host-name", name or "x"]
                           + list(extra))
        self.addCleanup(d.kill)
        if start:
            d.start()
        return d

    def sql(self, sql):
        return self.cluster.psql(self.dbname, sql)
