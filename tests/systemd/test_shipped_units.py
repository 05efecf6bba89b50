# SPDX-License-Identifier: MIT
"""The shipped units under a real systemd *system* manager: migrated@.service and migrated@.socket
(socket activation included), the shipped sysusers.d and tmpfiles.d entries, and two writer
services gated with the shipped dependent-service.conf drop-in, running real jobs; and a pm2
process of another user as a dependent of migrated@app.service with the shipped pm2 drop-in
(systemd/migrated-pm2.conf; pm2 from npm, see tests/dependents); migrated@metrics.service
with [metrics] listen, refused by the shipped sandbox and served with the shipped drop-in
(systemd/migrated-metrics.conf); and a PostgreSQL database over TCP, reached by
migrated@pg.service with the shipped systemd/migrated-postgresql.conf and refused by the sandbox
without it.

The system manager is a container booted with systemd-nspawn on the host's own tree:

    systemd-nspawn --register=no --keep-unit -D / --volatile=yes --boot systemd.firstboot=off

  --register=no --keep-unit   without them nspawn wants machined on a system bus ("Failed to open
                              system bus")
  systemd.firstboot=off       otherwise the boot stops at systemd-firstboot's prompt
  --volatile=yes              / is a tmpfs and only the host's /usr is mounted (read-only): the
                              host's /etc and /var are not touched, nothing of the run survives
  --private-network           the host's network units have nothing to configure
  --bind=…                    the test's files: unit files in /etc/systemd/system, the sysusers.d
                              and tmpfiles.d entries in /etc, /etc/migrated, the binaries in
                              /opt/migrated (the units' paths rewritten as meson does for another
                              prefix)
It boots in about a second; the test drives it with `nsenter -t <its systemd> -a systemctl …`.
Do NOT run /lib/systemd/systemd --system in an unshared PID namespace instead: it runs boot-time
tmpfiles cleanup on the real filesystem.

The only test drop-in for migrated@.service is TEST_DROPIN below; README ("Tests") lists and
justifies each directive. Prints, for each path, the units' states before and after and the exit
code ("PATH" lines). Root, systemd-nspawn and python3 in /usr/bin are needed: otherwise SKIP (exit
77), or a failure under CI=true."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(SRC, "tests", "integration"))
import harness as H  # noqa: E402
sys.path.insert(0, os.path.join(SRC, "tests", "dependents"))
import deplib as D  # noqa: E402
import test_containers as TC  # noqa: E402

SKIP = 77
NAME = "free-sleep"
WRITERS = ["free-sleep.service", "free-sleep-stream.service"]
DB = "/var/lib/free-sleep/free-sleep.db"
MIGRATIONS = "/var/lib/free-sleep/migrations"
ACKS_SQL = "CREATE TABLE acks (id INTEGER PRIMARY KEY, writer TEXT NOT NULL, pid INTEGER NOT NULL, at REAL NOT NULL);\n"
BOOT_TIMEOUT = 60
JOB_TIMEOUT = 120

# Directives of the shipped unit that this nested manager cannot honour would be overridden here,
# each listed and justified in README ("Tests"). The container honours all of them (namespaces,
# seccomp, capability bounding, StateDirectory=), so the shipped unit runs unchanged.
TEST_DROPIN = ""

CONF = textwrap.dedent("""\
    [database]
    path = {db}
    [migrations]
    directory = {mig}
    [units]
    units = {units}
    start_timeout = 30
    # the stop/start path under the shipped unit (an additive plan would otherwise run online)
    online = never
    [backup]
    dir = /var/backups/migrated/free-sleep
    """).format(db=DB, mig=MIGRATIONS, units=" ".join(WRITERS))

MASKED = ["docker.service", "docker.socket", "containerd.service"]

# pm2:api under the shipped unit with the shipped pm2 drop-in (systemd/migrated-pm2.conf): pm2's
# processes belong to the user "deploy", whose pm2 home is the one the drop-in names.
PM2_HOME = "/home/deploy/.pm2"
PM2 = "/opt/pm2/node_modules/.bin/pm2"
APP_DB = "/var/lib/app/app.db"
APP_CONF = textwrap.dedent("""\
    [database]
    path = {db}
    [migrations]
    directory = /var/lib/app/migrations
    [units]
    units = pm2:api
    stop_timeout = 10
    online = never
    [pm2.api]
    user = deploy
    home = {home}
    pm2 = {pm2}
    """).format(db=APP_DB, home=PM2_HOME, pm2=PM2)

# container:web under the shipped unit, WITHOUT a drop-in: the engine's socket (dockerd started by
# the test on the host, its socket directory bound to /run/engine) is a path AF_UNIX socket, which
# RestrictAddressFamilies=AF_UNIX allows, PrivateNetwork= does not hide, ProtectSystem=strict does
# not refuse (connecting is not writing the file system) and root reaches with CAP_DAC_OVERRIDE.
# The database directory is the host's, bound to the same path for the unit and the container.
CTR_DB_DIR = "/var/lib/ctr"
CTR_CONF = textwrap.dedent("""\
    [database]
    path = {dir}/app.db
    [migrations]
    directory = {dir}/migrations
    [units]
    units = container:web
    stop_timeout = 10
    online = never
    [container.web]
    socket = /run/engine/dockerd.sock
    """).format(dir=CTR_DB_DIR)

# [metrics] listen under the shipped unit: it needs systemd/migrated-metrics.conf
METRICS_DB = "/var/lib/metrics/app.db"
METRICS_PORT = 9464
METRICS_CONF = textwrap.dedent("""\
    [database]
    path = {db}
    [migrations]
    directory = /var/lib/metrics/migrations
    [metrics]
    listen = 127.0.0.1:{port}
    textfile = /var/lib/migrated/metrics/migrated.prom
    """).format(db=METRICS_DB, port=METRICS_PORT)

# A PostgreSQL database over TCP (a server the test starts inside the container, on its loopback):
# migrated@pg has the shipped drop-in systemd/migrated-postgresql.conf, migrated@pg-nodropin the
# same configuration without it, which the shipped sandbox (no network) must stop.
PG_BIN = "/usr/lib/postgresql/15/bin"
PG_PORT = 5499
PG_CONF = textwrap.dedent("""\
    [database]
    connection = postgresql://pgt@127.0.0.1:{port}/app
    [migrations]
    directory = /var/lib/pg/migrations
    """).format(port=PG_PORT)

V = {
    1: ("create_devices", "CREATE TABLE devices (id INTEGER PRIMARY KEY, serial TEXT);\n", "DROP TABLE devices;\n"),
    2: ("add_settings", "CREATE TABLE settings (k TEXT PRIMARY KEY, v TEXT);\n", "DROP TABLE settings;\n"),
}


def why_not():
    if os.geteuid() != 0:
        return "needs root (systemd-nspawn)"
    if not shutil.which("systemd-nspawn"):
        return "systemd-nspawn not found (Debian: systemd-container)"
    if not os.access("/usr/bin/python3", os.X_OK):
        return "no /usr/bin/python3 for the writer services"
    for var in ("MIGRATED_BIN", "MIGRATECTL_BIN"):
        if not os.access(os.environ.get(var, ""), os.X_OK):
            return "%s is not set to a built binary" % var
    return None


def rewrite_paths(text):
    """What meson's configure_file does for a prefix other than /usr."""
    return text.replace("/usr/sbin/migrated", "/opt/migrated/migrated").replace("/usr/bin/migratectl",
                                                                                 "/opt/migrated/migratectl")


class Container:
    """A systemd system manager booted by systemd-nspawn on the host's tree."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.proc = None
        self.pid = None

    def prepare(self):
        d = self.tmp
        for sub in ("system", "sysusers.d", "tmpfiles.d", "migrated", "opt"):
            os.makedirs(os.path.join(d, sub), exist_ok=True)
        system = os.path.join(d, "system")
        for unit in ("migrated@.service", "migrated@.socket"):
            with open(os.path.join(SRC, "systemd", unit)) as f:
                text = rewrite_paths(f.read())
            with open(os.path.join(system, unit), "w") as f:
                f.write(text)
        # the host's container engine (docker.io, for tests/dependents) is installed too: its
        # units would wait for a network and an engine the container has no use for
        for unit in MASKED:
            os.symlink("/dev/null", os.path.join(system, unit))
        if TEST_DROPIN:
            os.makedirs(os.path.join(system, "migrated@.service.d"))
            with open(os.path.join(system, "migrated@.service.d", "test.conf"), "w") as f:
                f.write(TEST_DROPIN)
        with open(os.path.join(SRC, "systemd", "dependent-service.conf")) as f:
            dropin = rewrite_paths(f.read())
        # nothing in this test needs the network to be online: never wait for it
        os.symlink("/dev/null", os.path.join(system, "systemd-networkd-wait-online.service"))
        for w in WRITERS:
            tag = w[:-len(".service")]
            with open(os.path.join(system, w), "w") as f:
                f.write(textwrap.dedent("""\
                    [Unit]
                    Description=test writer {tag}
                    [Service]
                    Type=notify
                    ExecStart=/usr/bin/python3 /opt/migrated/writer.py {db} /var/lib/free-sleep/{tag}.acks {tag}
                    """).format(tag=tag, db=DB))
            os.makedirs(os.path.join(system, w + ".d"))
            with open(os.path.join(system, w + ".d", "migrated.conf"), "w") as f:
                f.write(dropin)
        shutil.copy(os.path.join(SRC, "systemd", "migrated.sysusers"), os.path.join(d, "sysusers.d", "migrated.conf"))
        shutil.copy(os.path.join(SRC, "systemd", "migrated.tmpfiles"), os.path.join(d, "tmpfiles.d", "migrated.conf"))
        with open(os.path.join(d, "migrated", NAME + ".conf"), "w") as f:
            f.write(CONF)
        with open(os.path.join(d, "migrated", "app.conf"), "w") as f:
            f.write(APP_CONF)
        with open(os.path.join(d, "migrated", "ctr.conf"), "w") as f:
            f.write(CTR_CONF)
        for sub in ("engine", "ctr"):
            os.makedirs(os.path.join(d, sub), exist_ok=True)
        os.chmod(os.path.join(d, "ctr"), 0o755)
        with open(os.path.join(d, "migrated", "metrics.conf"), "w") as f:
            f.write(METRICS_CONF)
        for name in ("pg", "pg-nodropin"):
            with open(os.path.join(d, "migrated", name + ".conf"), "w") as f:
                f.write(PG_CONF)
        os.makedirs(os.path.join(system, "migrated@pg.service.d"))
        shutil.copy(os.path.join(SRC, "systemd", "migrated-postgresql.conf"),
                    os.path.join(system, "migrated@pg.service.d", "postgresql.conf"))
        os.makedirs(os.path.join(system, "migrated@app.service.d"))
        shutil.copy(os.path.join(SRC, "systemd", "migrated-pm2.conf"),
                    os.path.join(system, "migrated@app.service.d", "pm2.conf"))
        self.pm2_dir = os.path.dirname(os.path.dirname(os.path.dirname(D.install_pm2())))
        shutil.copy(os.environ["MIGRATED_BIN"], os.path.join(d, "opt", "migrated"))
        shutil.copy(os.environ["MIGRATECTL_BIN"], os.path.join(d, "opt", "migratectl"))
        shutil.copy(os.path.join(HERE, "writer.py"), os.path.join(d, "opt", "writer.py"))

    def boot(self):
        d = self.tmp
        argv = ["systemd-nspawn", "--register=no", "--keep-unit", "-D", "/", "--volatile=yes",
                "--private-network", "--quiet",
                "--bind=%s/system:/etc/systemd/system" % d,
                "--bind-ro=%s/sysusers.d:/etc/sysusers.d" % d,
                "--bind-ro=%s/tmpfiles.d:/etc/tmpfiles.d" % d,
                "--bind-ro=%s/migrated:/etc/migrated" % d,
                "--bind-ro=%s/opt:/opt/migrated" % d,
                "--bind-ro=%s:/opt/pm2" % self.pm2_dir,
                "--bind=%s/engine:/run/engine" % d,
                "--bind=%s/ctr:%s" % (d, CTR_DB_DIR),
                "--boot", "systemd.firstboot=off"]
        self.console = open(os.path.join(d, "console.log"), "wb")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.console, stderr=self.console,
                                     start_new_session=True)
        deadline = time.monotonic() + BOOT_TIMEOUT
        while self.pid is None:
            self.pid = self._manager_pid()
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise H.HarnessError("the container did not boot:\n" + self.console_log())
            time.sleep(0.05)
        # systemctl answers once the manager listens on /run/systemd/private
        H.wait_until(lambda: os.path.exists(self.root("/run/systemd/private")), BOOT_TIMEOUT,
                     what="the container's manager")
        # The test needs the manager and its sockets, not the whole boot: services of the host's
        # packages (enabled by preset in the empty /etc) may wait for a network this container
        # does not have, so "is-system-running --wait" is not the event to wait for.
        try:
            H.wait_until(lambda: self.run("systemctl", "is-active", "basic.target", "sockets.target").returncode == 0,
                         BOOT_TIMEOUT, what="basic.target and sockets.target in the container")
        except H.HarnessError:
            jobs = self.run("systemctl", "list-jobs", "--no-pager").stdout
            raise H.HarnessError("the container did not reach basic.target; jobs:\n%s\n%s" % (jobs, self.console_log()))

    def _manager_pid(self):
        try:
            with open("/proc/%d/task/%d/children" % (self.proc.pid, self.proc.pid)) as f:
                kids = f.read().split()
        except OSError:
            return None
        for k in kids:
            try:
                with open("/proc/%s/comm" % k) as f:
                    if f.read().strip() == "systemd":
                        return int(k)
            except OSError:
                pass
        return None

    def run(self, *argv, timeout=30, user=None):
        cmd = ["nsenter", "-t", str(self.pid), "-a"]
        if user:
            cmd += ["setpriv", "--reuid=" + user, "--regid=65534", "--clear-groups"]
        return subprocess.run(cmd + list(argv), stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=timeout)

    def root(self, path):
        """A path inside the container, seen from the host."""
        return "/proc/%d/root%s" % (self.pid, path)

    def console_log(self):
        try:
            with open(os.path.join(self.tmp, "console.log"), "rb") as f:
                return f.read().decode(errors="replace")[-6000:]
        except OSError:
            return ""

    def shutdown(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        if self.pid:
            try:
                os.kill(self.pid, signal.SIGRTMIN + 4)  # systemd: poweroff
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


class ShippedUnitsTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="migrated-nspawn-")
        cls.c = Container(cls.tmp)
        cls.c.prepare()
        cls.c.boot()

    @classmethod
    def tearDownClass(cls):
        cls.c.shutdown()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def sh(self, *argv, timeout=30, user=None):
        return self.c.run(*argv, timeout=timeout, user=user)

    def ctl(self, *args, timeout=JOB_TIMEOUT, user=None):
        return self.sh("/opt/migrated/migratectl", "--instance", NAME, *args, timeout=timeout, user=user)

    def state(self, unit):
        return self.sh("systemctl", "show", "-P", "ActiveState", unit).stdout.strip()

    def main_pid(self, unit):
        return int(self.sh("systemctl", "show", "-P", "MainPID", unit).stdout.strip() or 0)

    def states(self):
        return {u: self.state(u) for u in WRITERS + ["migrated@%s.service" % NAME]}

    def wait_state(self, unit, want, timeout=30):
        H.wait_until(lambda: self.state(unit) == want, timeout, what="%s %s" % (unit, want))

    def job(self, name, rc, *args):
        before = self.states()
        r = self.ctl(*args)
        for u in WRITERS:
            if before[u] == "active":
                H.wait_until(lambda: self.state(u) in ("active", "failed"), 30, what=u)
        after = self.states()
        print("PATH %s (shipped units, system manager): before %s; after %s; exit %d" % (name, before, after, r.returncode),
              flush=True)
        self.assertEqual(r.returncode, rc, "migratectl %s: %s%s\n%s" % (" ".join(args), r.stdout, r.stderr,
                                                                       self.journal()))
        return r

    def sql(self, script):
        """SQL inside the container (SQLite resolves /proc/PID/root to the host's /)."""
        code = "import sqlite3, sys\nc = sqlite3.connect(sys.argv[1])\nprint(c.executescript(sys.argv[2]) and '')\n"
        r = self.sh("/usr/bin/python3", "-c", code, DB, script)
        self.assertEqual(r.returncode, 0, r.stderr)

    def applied(self):
        code = ("import sqlite3, sys\nc = sqlite3.connect(sys.argv[1])\n"
                "print(' '.join(str(r[0]) for r in c.execute('SELECT version FROM migrated_schema ORDER BY 1')))\n")
        r = self.sh("/usr/bin/python3", "-c", code, DB)
        self.assertEqual(r.returncode, 0, r.stderr)
        return [int(v) for v in r.stdout.split()]

    def journal(self):
        return self.sh("journalctl", "--no-pager", "-n", "60", "-u", "migrated@%s.service" % NAME).stdout

    def psql(self, dbname, sql):
        return self.sh("psql", "-X", "-A", "-t", "-h", "127.0.0.1", "-p", str(PG_PORT), "-U", "pgt", dbname, "-c", sql)

    def test_postgresql_over_tcp_needs_the_shipped_dropin(self):
        """With systemd/migrated-postgresql.conf the unit reaches a server over TCP (on the
        container's loopback); without it the sandbox refuses the address family and the daemon
        says it cannot connect."""
        if not os.access(os.path.join(PG_BIN, "postgres"), os.X_OK):
            if os.environ.get("CI") == "true":
                self.fail("PostgreSQL 15 is required under CI=true (Debian: postgresql-15)")
            self.skipTest("PostgreSQL 15 not installed (Debian: postgresql-15)")
        self.assertEqual(self.sh("useradd", "--system", "--no-create-home", "pgt").returncode, 0)
        self.assertEqual(self.sh("install", "-d", "-o", "pgt", "/var/lib/pgt").returncode, 0)
        r = self.sh("setpriv", "--reuid=pgt", "--regid=65534", "--clear-groups", PG_BIN + "/initdb", "-D",
                    "/var/lib/pgt/data", "-A", "trust", "--no-sync", timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        r = self.sh("systemd-run", "--unit=pgt", "-p", "User=pgt", PG_BIN + "/postgres", "-D", "/var/lib/pgt/data",
                    "-c", "listen_addresses=127.0.0.1", "-p", str(PG_PORT), "-c", "unix_socket_directories=",
                    "-c", "fsync=off")
        self.assertEqual(r.returncode, 0, r.stderr)
        H.wait_until(lambda: self.psql("postgres", "SELECT 1").returncode == 0, 60, what="PostgreSQL in the container")
        self.assertEqual(self.psql("postgres", "CREATE DATABASE app").returncode, 0)
        os.makedirs(self.c.root("/var/lib/pg/migrations"))
        H.write_migrations(self.c.root("/var/lib/pg/migrations"), {1: V[1]})

        # the shipped sandbox alone: no network, so no connection, and it says so
        r = self.sh("systemctl", "start", "migrated@pg-nodropin.service", timeout=60)
        self.assertNotEqual(r.returncode, 0)
        log = self.sh("journalctl", "--no-pager", "-u", "migrated@pg-nodropin.service").stdout
        self.assertIn("Cannot use the PostgreSQL database", log)
        print("PATH postgresql without the drop-in: refused (%s)"
              % [line for line in log.splitlines() if "Cannot use" in line][0].split(": ", 1)[-1], flush=True)

        # with the drop-in: socket-activated, applied, backed up with pg_dump inside the sandbox
        r = self.sh("systemctl", "start", "migrated@pg.socket")
        self.assertEqual(r.returncode, 0, r.stderr)
        r = self.sh("/opt/migrated/migratectl", "--instance", "pg", "up", timeout=JOB_TIMEOUT)
        journal = self.sh("journalctl", "--no-pager", "-n", "40", "-u", "migrated@pg.service").stdout
        print("PATH postgresql with the shipped drop-in: exit %d" % r.returncode, flush=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr + journal)
        self.assertIn("Backup taken first", r.stdout)
        self.assertEqual(self.psql("app", "SELECT version FROM migrated_schema").stdout.split(), ["1"])

    def test_shipped_units_socket_activation_and_jobs(self):
        c = self.c
        # what the package provides exists: the group from sysusers.d, the directories from tmpfiles.d
        self.assertEqual(self.sh("getent", "group", "migrated").returncode, 0, "sysusers.d did not create the group")
        self.assertTrue(os.path.isdir(c.root("/run/migrated")))
        os.makedirs(c.root(MIGRATIONS))
        self.sql("PRAGMA journal_mode=WAL; " + ACKS_SQL)
        H.write_migrations(c.root(MIGRATIONS), {1: V[1]})

        r = self.sh("systemctl", "enable", "--now", "migrated@%s.socket" % NAME)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.state("migrated@%s.service" % NAME), "inactive")
        st = os.stat(c.root("/run/migrated/%s.sock" % NAME))
        self.assertEqual(oct(st.st_mode & 0o777), oct(0o660))

        # the first request starts the daemon through its socket
        self.job("first up, socket-activated", 0, "up")
        self.assertEqual(self.state("migrated@%s.service" % NAME), "active")
        self.assertTrue(os.path.isdir(c.root("/var/lib/migrated/%s" % NAME)), "no StateDirectory")
        r = self.sh("systemctl", "start", *WRITERS, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr + self.journal())
        pids = {u: self.main_pid(u) for u in WRITERS}

        # a real job on real units gated with the shipped drop-in
        H.write_migrations(c.root(MIGRATIONS), {2: V[2]})
        self.job("up with gated writers", 0, "up")
        for u in WRITERS:
            self.wait_state(u, "active")
            self.assertNotEqual(self.main_pid(u), pids[u], "%s was not restarted" % u)
        self.assertEqual(self.applied(), [1, 2])

        # down: the gated writers come back (the hold), through the shipped gate
        pids = {u: self.main_pid(u) for u in WRITERS}
        self.job("down with gated writers", 0, "down")
        for u in WRITERS:
            self.wait_state(u, "active")
            self.assertNotEqual(self.main_pid(u), pids[u])
        self.assertEqual(self.applied(), [1])
        self.assertIn("held at 1 by down", self.ctl("status").stdout)
        self.job("up after down", 0, "up")

        # a user outside the socket's group: a message that names the group and the next step
        self.sh("useradd", "--no-create-home", "outsider")
        r = self.ctl("status", user="outsider", timeout=30)
        print("PATH status by a user outside the socket's group: exit %d" % r.returncode, flush=True)
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertIn("usermod -aG migrated", r.stderr)

        # a daemon that cannot start behind its socket: the client says where to look, exit 3
        with open(os.path.join(self.tmp, "migrated", NAME + ".conf"), "a") as f:
            f.write("[units]\nno_such_key = 1\n")
        self.sh("systemctl", "stop", "migrated@%s.service" % NAME)
        before = self.states()
        r = self.ctl("status", timeout=60)
        print("PATH status with a daemon that cannot start: before %s; after %s; exit %d"
              % (before, self.states(), r.returncode), flush=True)
        self.assertEqual(r.returncode, 3, r.stdout + r.stderr)
        self.assertIn("systemctl status migrated@%s.service" % NAME, r.stderr)


    def up_stops(self, instance, dependent, label):
        """Starts migrated@INSTANCE, runs up: it succeeds and says it stopped dependent."""
        r = self.sh("systemctl", "start", "migrated@%s.service" % instance, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        r = self.sh("/opt/migrated/migratectl", "--instance", instance, "up", timeout=JOB_TIMEOUT)
        journal = self.sh("journalctl", "--no-pager", "-n", "40", "-u", "migrated@%s.service" % instance).stdout
        print("PATH %s: exit %d" % (label, r.returncode), flush=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr + journal)
        self.assertIn("stopped " + dependent, r.stdout + r.stderr)

    def test_pm2_dependent_under_the_shipped_unit_with_its_dropin(self):
        c = self.c
        self.assertEqual(self.sh("useradd", "--create-home", "deploy").returncode, 0)
        os.makedirs(c.root("/var/lib/app/migrations"))
        H.write_migrations(c.root("/var/lib/app/migrations"), {1: V[1]})
        r = self.sh("/usr/bin/python3", "-c", "import sqlite3, sys\nc = sqlite3.connect(sys.argv[1])\n"
                    "c.executescript(sys.argv[2])\n", APP_DB, "PRAGMA journal_mode=WAL; " + ACKS_SQL)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.sh("chown", "-R", "deploy:", "/var/lib/app")
        gid = self.sh("id", "-g", "deploy").stdout.strip()
        pm2 = ["setpriv", "--reuid=deploy", "--regid=" + gid, "--init-groups", "env", "HOME=/home/deploy",
               "PM2_HOME=" + PM2_HOME, PM2]
        r = self.sh(*(pm2 + ["start", "/opt/migrated/writer.py", "--name", "api", "--interpreter", "/usr/bin/python3",
                             "--", APP_DB, "/var/lib/app/api.acks", "api"]), timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        log = D.Log(c.root("/var/lib/app/api.acks"))
        log.wait_acks(10)
        first = log.starts()[-1]

        self.up_stops('app', 'pm2:api', 'pm2:api under the shipped unit + migrated-pm2.conf')
        H.wait_until(lambda: log.starts()[-1] != first, 60, what="api started again by pm2")
        log.wait_acks(5)
        self.assertIn(("stop", first), [(k, v) for k, v, _ in log.records()])

    def test_container_dependent_under_the_shipped_unit_without_a_dropin(self):
        if not shutil.which("dockerd") or not shutil.which("docker"):
            if H.in_ci():
                self.fail("dockerd is not installed (packaging/install-deps.sh test installs docker.io)")
            self.skipTest("dockerd is not installed")
        c = self.c
        host_dir = os.path.join(self.tmp, "ctr")
        engine = TC.Dockerd(socket_dir=os.path.join(self.tmp, "engine"))
        self.addCleanup(engine.stop)
        os.makedirs(os.path.join(host_dir, "migrations"))
        H.write_migrations(os.path.join(host_dir, "migrations"), {1: V[1], 2: V[2]})
        db = os.path.join(host_dir, "app.db")
        D.create_db(db)
        shutil.copy(os.path.join(HERE, "writer.py"), os.path.join(host_dir, "writer.py"))
        # the container sees the database where the unit does
        log = D.Log(os.path.join(host_dir, "web.acks"))
        engine.docker("run", "-d", "--name", "web", "--network", "none", "-v", "/usr:/usr:ro",
                      "-v", "%s:%s" % (host_dir, CTR_DB_DIR), TC.IMAGE, "/usr/bin/python3",
                      CTR_DB_DIR + "/writer.py", CTR_DB_DIR + "/app.db", CTR_DB_DIR + "/web.acks", "web")
        log.wait_acks(10)
        starts = len(log.starts())  # its pid is 1 in the container every time: count the starts

        self.up_stops('ctr', 'container:web', 'container:web under the shipped unit, no drop-in')
        self.assertEqual(H.applied_versions(db), [1, 2])
        H.wait_until(lambda: len(log.starts()) > starts, 60, what="web started again by the engine")
        log.wait_acks(5)
        self.assertIn("stop", [k for k, _, _ in log.records()], "web was not stopped by its signal")
        D.all_acked_in_db(self, db, [log])

    def test_metrics_endpoint_under_the_shipped_unit_with_its_dropin(self):
        c = self.c
        unit = "migrated@metrics.service"
        os.makedirs(c.root("/var/lib/metrics/migrations"))
        H.write_migrations(c.root("/var/lib/metrics/migrations"), {1: V[1]})
        journal = lambda: self.sh("journalctl", "--no-pager", "-n", "30", "-u", unit).stdout  # noqa: E731

        # the shipped sandbox has no IP sockets: the start fails and says which drop-in it needs
        r = self.sh("systemctl", "start", unit, timeout=60)
        print("PATH [metrics] listen under the shipped unit without its drop-in: exit %d" % r.returncode, flush=True)
        self.assertNotEqual(r.returncode, 0)
        H.wait_until(lambda: "migrated-metrics.conf" in journal(), 30, what="the start error in the journal")
        self.sh("systemctl", "stop", unit)

        dropins = os.path.join(self.tmp, "system", unit + ".d")
        os.makedirs(dropins)
        shutil.copy(os.path.join(SRC, "systemd", "migrated-metrics.conf"), os.path.join(dropins, "metrics.conf"))
        self.assertEqual(self.sh("systemctl", "daemon-reload").returncode, 0)
        self.sh("systemctl", "reset-failed", unit)
        r = self.sh("systemctl", "start", unit, timeout=60)
        print("PATH [metrics] listen under the shipped unit + migrated-metrics.conf: exit %d" % r.returncode, flush=True)
        self.assertEqual(r.returncode, 0, r.stderr + journal())
        r = self.sh("/opt/migrated/migratectl", "--instance", "metrics", "up", timeout=JOB_TIMEOUT)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr + journal())
        code = ("import sys, urllib.request\n"
                "print(urllib.request.urlopen('http://127.0.0.1:%d/metrics' % int(sys.argv[1]), timeout=30).read().decode())\n")
        r = self.sh("/usr/bin/python3", "-c", code, str(METRICS_PORT))
        self.assertEqual(r.returncode, 0, r.stderr + journal())
        line = 'migrated_schema_version{database="%s"} 1' % METRICS_DB
        self.assertIn(line, r.stdout)
        with open(c.root("/var/lib/migrated/metrics/migrated.prom")) as f:
            self.assertIn(line, f.read())


def main():
    why = why_not()
    if why:
        print("SKIP: %s" % why, flush=True)
        sys.exit(1 if os.environ.get("CI") == "true" else SKIP)
    t0 = time.monotonic()
    prog = unittest.main(verbosity=2, exit=False)
    print("%s: %.1f s" % (os.path.basename(sys.argv[0]), time.monotonic() - t0), flush=True)
    sys.exit(0 if prog.result.wasSuccessful() else 1)


if __name__ == "__main__":
    main()
