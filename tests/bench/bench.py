#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Benchmarks of migrated and migratectl: every figure beside a reference measured in the same
run, the ratio and the target. Started by tests/bench/run.sh, which builds build-bench/ first.

Targets are printed, never asserted: the exit status only says whether the benchmarks could run.
Everything runs on this machine over Unix sockets; every process started here is stopped at the
end, also on failure or Ctrl-C, and the scratch directory is removed.
"""

import argparse
import collections
import json
import os
import resource
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time

sys.dont_write_bytecode = True

HERE = os.path.dirname(os.path.abspath(__file__))
SRC_ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(SRC_ROOT, "tests", "integration"))

import harness as H  # noqa: E402  (protocol helpers only: Conn, read_reply)
import bench_pg  # noqa: E402  (the PostgreSQL rows, beside psql)
import bench_dbmate  # noqa: E402  (dbmate, the peer measured in the same rounds)

SQLITE3 = shutil.which("sqlite3") or "/usr/bin/sqlite3"
DAEMON_NOFILE = (1024, 524288)   # systemd's default LimitNOFILE for services (soft, hard)
KEEP_SCRATCH = False

# ---------------------------------------------------------------------------------------------
# Processes: every one is registered and killed at exit


class Procs:
    def __init__(self):
        self.procs = []

    def popen(self, argv, **kw):
        kw.setdefault("stdin", subprocess.DEVNULL)
        kw.setdefault("start_new_session", True)
        p = subprocess.Popen([str(a) for a in argv], **kw)
        self.procs.append(p)
        return p

    def forget(self, p):
        if p in self.procs:
            self.procs.remove(p)

    def kill_all(self):
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL)   # its own session: its children too
                except (ProcessLookupError, PermissionError):
                    try:
                        p.kill()
                    except ProcessLookupError:
                        pass
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                pass
        self.procs = []


PROCS = Procs()


Ran = collections.namedtuple("Ran", "s rc maxrss_kib out cpu_s")


def run(argv, stdin=None, timeout=600, check=True, capture=False, env=None):
    """Runs argv to completion (registered, so it is killed if we are) and reaps it with wait4.
    Returns Ran(s=wall seconds, rc, maxrss_kib, out=stdout text, cpu_s=user+system CPU seconds
    of the process and of its waited-for descendants, e.g. a shell loop's commands)."""
    fin = open(stdin, "rb") if stdin else subprocess.DEVNULL
    fout = tempfile.TemporaryFile() if capture else subprocess.DEVNULL
    ferr = tempfile.TemporaryFile() if capture else subprocess.DEVNULL
    try:
        t0 = time.perf_counter()
        p = PROCS.popen(argv, stdin=fin, stdout=fout, stderr=ferr, env=env)
        timer = threading.Timer(timeout, lambda: os.killpg(p.pid, signal.SIGKILL))
        timer.start()
        try:
            _, status, ru = os.wait4(p.pid, 0)
        finally:
            timer.cancel()
        elapsed = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        out = err = b""
        if capture:
            fout.seek(0)
            ferr.seek(0)
            out, err = fout.read(), ferr.read()
    finally:
        for f in (fin, fout, ferr):
            if f is not subprocess.DEVNULL:
                f.close()
    PROCS.forget(p)
    if p.returncode == -signal.SIGKILL and elapsed >= timeout:
        raise RuntimeError("%s did not finish within %ss" % (argv[0], timeout))
    if check and p.returncode != 0:
        raise RuntimeError("%s exited with %s%s" % (" ".join(map(str, argv)), p.returncode,
                                                    (": " + (out + err).decode(errors="replace")[-2000:])
                                                    if out or err else ""))
    return Ran(elapsed, p.returncode, ru.ru_maxrss, out.decode(errors="replace"), ru.ru_utime + ru.ru_stime)


def sql(db, text):
    """Runs SQL with the sqlite3 CLI (the reference tool) and returns its output."""
    return run([SQLITE3, "-bail", db, text], capture=True).out.strip()


def proc_status(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem", "Threads"):
                out[k] = int(v.split()[0])  # kB, or a count
    return out


# ---------------------------------------------------------------------------------------------
# The daemon


class Daemon:
    def __init__(self, ctx, db, migrations, extra=(), nofile=DAEMON_NOFILE):
        self.ctx = ctx
        self.nofile = nofile
        ctx.n_daemons += 1
        self.sock = os.path.join(ctx.sockdir, "m%d.sock" % ctx.n_daemons)
        self.log_path = os.path.join(ctx.scratch, "migrated-%d.log" % ctx.n_daemons)
        self.argv = [ctx.migrated, "--database", db, "--migrations", migrations, "--socket", self.sock] + list(extra)
        self.proc = None

    def start(self):
        def limits():
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, self.nofile)
            except (ValueError, OSError):   # not root: keep the hard limit we have
                _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
                resource.setrlimit(resource.RLIMIT_NOFILE, (min(self.nofile[0], hard), hard))
        self._log = open(self.log_path, "ab")
        self.proc = PROCS.popen(self.argv, stdout=self._log, stderr=self._log, preexec_fn=limits)
        deadline = time.monotonic() + 10
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("migrated exited with %s at start:\n%s" % (self.proc.returncode, self.log()))
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(self.sock)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("migrated's socket not ready:\n%s" % self.log())
                time.sleep(0.01)
            finally:
                s.close()
        return self

    @property
    def pid(self):
        return self.proc.pid

    def status(self):
        return proc_status(self.proc.pid)

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")[-3000:]
        except OSError:
            return ""

    def rpc(self, method, params=None, timeout=60):
        _, final = H.rpc(self.sock, method, params, timeout=timeout)
        if "result" not in final:
            raise RuntimeError("%s failed: %r" % (method, final))
        return final["result"]

    def ctl(self, *args, check=True):
        """Runs and times one `migratectl --json ...`, as a deploy script would. Returns (Ran, the parsed
        JSON document or None); the daemon's CPU time meanwhile is left in last_cpu_s."""
        c0 = self.cpu_s()
        r = run([self.ctx.migratectl, "--socket", self.sock, "--json"] + list(args), check=check, capture=True)
        self.last_cpu_s = self.cpu_s() - c0
        try:
            doc = json.loads(r.out)
        except ValueError:
            doc = None
        return r, doc

    def cpu_s(self):
        """CPU time of all the daemon's threads so far (schedstat: nanoseconds on a CPU)."""
        total = 0
        base = "/proc/%d/task" % self.proc.pid
        for t in os.listdir(base):
            try:
                with open(os.path.join(base, t, "schedstat")) as f:
                    total += int(f.read().split()[0])
            except (OSError, ValueError, IndexError):
                pass
        return total / 1e9

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        PROCS.forget(self.proc)
        self._log.close()
        self.proc = None


# ---------------------------------------------------------------------------------------------
# Context and report


class Ctx:
    def __init__(self, args):
        self.build = os.path.abspath(args.build)
        self.migrated = os.path.join(self.build, "daemon", "migrated")
        self.migratectl = os.path.join(self.build, "client", "migratectl")
        self.benchtool = os.path.join(self.build, "bench", "benchtool")
        self.scratch = tempfile.mkdtemp(prefix="bench-scratch-", dir=self.build)
        self.sockdir = tempfile.mkdtemp(prefix="migrated-bench-")   # short paths for sun_path
        self.n_daemons = 0
        self.rows = []
        self.notes = []
        self.raw = {}
        self.only = set(args.only.split(",")) if args.only else None
        self.dbmate = None

    def want(self, name):
        return self.only is None or name in self.only

    def dir(self, *parts):
        p = os.path.join(self.scratch, *parts)
        os.makedirs(p, exist_ok=True)
        return p

    def row(self, name, figure, reference, ratio, target, verdict, peer=""):
        self.rows.append((name, figure, reference, peer, ratio, target, verdict))

    def dbmate_cell(self, fmt, x):
        """The peer column: dbmate's figure in this run, or why there is none."""
        dm = self.dbmate
        if dm is None or not dm.ok:
            return dm.missing() if dm else "not measured (--only)"
        return "%s: %s" % (dm.label(), fmt(x)) if x is not None else "-"

    def dbmate_target(self, name, a, dm_x, fmt, target):
        """A target against dbmate, as a row: migrated's a beside dbmate's dm_x, measured in the same
        run (None: dbmate could not run, and the row says why instead of failing)."""
        if dm_x is None:
            return (name, fmt(a), "-", self.dbmate_cell(fmt, None), "-", "≤ %.2f× dbmate" % target, "not measured")
        return (name, fmt(a), "-", self.dbmate_cell(fmt, dm_x), "%.2f×" % (a / dm_x), "≤ %.2f× dbmate" % target,
                "met" if a <= target * dm_x else "MISSED")

    def note(self, text):
        self.notes.append(text)
        log("note: " + text)

    def cleanup(self):
        if KEEP_SCRATCH:
            log("scratch kept: %s" % self.scratch)
        else:
            shutil.rmtree(self.scratch, ignore_errors=True)
        shutil.rmtree(self.sockdir, ignore_errors=True)


def log(msg):
    sys.stderr.write("[bench %6.1fs] %s\n" % (time.monotonic() - T0, msg))
    sys.stderr.flush()


def fmt_s(x):
    return "%.3f s" % x if x < 10 else "%.2f s" % x


def fmt_ms(x):
    return "%.2f ms" % x if x < 10 else "%.1f ms" % x


def fmt_lat(d):
    """p50 / p99 / max of a benchtool result, in ms."""
    return "%.2f / %.2f / %.1f ms" % (d["p50_us"] / 1e3, d["p99_us"] / 1e3, d["max_us"] / 1e3)


def fmt_mib(kib):
    return "%.1f MiB" % (kib / 1024.0)


def ratio(a, b):
    return "%.2f×" % (a / b) if b else "-"


def verdict(ok):
    return "met" if ok else "MISSED"


# ---------------------------------------------------------------------------------------------
# Workload material


def small_migration(i):
    return textwrap.dedent("""\
        CREATE TABLE t_{i} (id INTEGER PRIMARY KEY, device_id INTEGER NOT NULL, name TEXT NOT NULL,
                           value REAL, created_at TEXT NOT NULL DEFAULT (datetime('now')));
        CREATE INDEX t_{i}_device ON t_{i} (device_id, name);
        INSERT INTO t_{i} (device_id, name, value) VALUES (1, 'left', 20.5), (2, 'right', 21.0), (3, 'base', 19.5);
        """).format(i=i)


HISTORY_DDL = ("CREATE TABLE IF NOT EXISTS history (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
               "checksum TEXT NOT NULL, applied_at TEXT NOT NULL, duration_ms INTEGER NOT NULL);\n")


def history_insert(i, name):
    # what migrated records per migration: version, name, SHA-256, timestamp, duration
    return ("INSERT INTO history VALUES (%d, '%s', '%s', strftime('%%Y-%%m-%%dT%%H:%%M:%%fZ', 'now'), 0);\n"
            % (i, name, "%064x" % (i * 2654435761)))


def write_small_set(directory, n):
    os.makedirs(directory, exist_ok=True)
    for i in range(1, n + 1):
        with open(os.path.join(directory, "%04d_add_t%d.up.sql" % (i, i)), "w") as f:
            f.write(small_migration(i))
        with open(os.path.join(directory, "%04d_add_t%d.down.sql" % (i, i)), "w") as f:
            f.write("DROP TABLE t_%d;\n" % i)
    return directory


def empty_wal_db(path):
    for suffix in ("", "-wal", "-shm"):
        try:
            os.unlink(path + suffix)
        except FileNotFoundError:
            pass
    c = sqlite3.connect(path)
    assert c.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal"
    c.close()
    return path


def count_applied(db):
    c = sqlite3.connect(db)
    try:
        return c.execute("SELECT count(*) FROM migrated_schema").fetchone()[0]
    finally:
        c.close()


def job_split(doc):
    """What one `up` result says about where its time went (ms)."""
    if not isinstance(doc, dict):
        return {}
    sql_ms = sum(a.get("duration_ms", 0) for a in doc.get("applied") or [])
    backup = doc.get("backup") or {}
    return dict(job_ms=doc.get("duration_ms"), sql_ms=sql_ms, backup_ms=backup.get("duration_ms"),
                backup_bytes=backup.get("size"))


def median_job(jobs, times):
    if not jobs:
        return {}
    order = sorted(range(len(times)), key=lambda i: times[i])
    return dict(jobs[order[len(order) // 2]], client_s=times[order[len(order) // 2]])


def split_text(j):
    if not j or j.get("job_ms") is None:
        return "(no result)"
    rest = j["job_ms"] - j["sql_ms"] - (j["backup_ms"] or 0)
    return ("migratectl process %.0f ms; job duration_ms %d = migrations' own SQL (sum of applied[].duration_ms) %d "
            "+ backup %s ms (%s bytes) + checks/bookkeeping/plan %d; outside the job (client exec, connect, queue, "
            "preparation, reply) %.0f ms"
            % (j["client_s"] * 1000, j["job_ms"], j["sql_ms"], j["backup_ms"], j["backup_bytes"], rest,
               j["client_s"] * 1000 - j["job_ms"]))


def fsync_latency_ms(ctx):
    path = os.path.join(ctx.scratch, "fsync-probe")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        t = []
        for _ in range(50):
            os.write(fd, b"x" * 4096)
            t0 = time.perf_counter()
            os.fsync(fd)
            t.append(time.perf_counter() - t0)
    finally:
        os.close(fd)
        os.unlink(path)
    return statistics.median(t) * 1000


# ---------------------------------------------------------------------------------------------
# 1. Apply: W1, then (on the W1 daemon with 1000 applied) status as a whole process


def bench_w1(ctx, reps=5):
    log("W1: 1000 small migrations, median of %d" % reps)
    d = ctx.dir("w1")
    mig = write_small_set(os.path.join(d, "migrations"), 1000)
    one = [HISTORY_DDL, "BEGIN;\n"]
    per = [HISTORY_DDL]
    for i in range(1, 1001):
        body = small_migration(i) + history_insert(i, "add_t%d" % i)
        one.append(body)
        per.append("BEGIN;\n" + body + "COMMIT;\n")
    one.append("COMMIT;\n")
    one_sql, per_sql = os.path.join(d, "one.sql"), os.path.join(d, "per.sql")
    with open(one_sql, "w") as f:
        f.write("".join(one))
    with open(per_sql, "w") as f:
        f.write("".join(per))
    db = os.path.join(d, "db.sqlite")
    dm_db = os.path.join(d, "dbmate.sqlite")
    dbmate = ctx.dbmate if ctx.dbmate and ctx.dbmate.ok else None
    if dbmate:
        dm_mig = dbmate.write(os.path.join(d, "dbmate"), [(i, "add_t%d" % i, small_migration(i), "DROP TABLE t_%d;" % i)
                                                         for i in range(1, 1001)])

    t_daemon, t_one, t_per, hwm, cli_rss, jobs, t_dbmate = [], [], [], [], [], [], []
    cpu_one, cpu_per, cpu_d = [], [], []
    status_rows = []
    for rep in range(reps):
        if dbmate:
            empty_wal_db(dm_db)
            t_dbmate.append(dbmate.up(dm_db, dm_mig).s)
            if sql(dm_db, "SELECT count(*) FROM schema_migrations") != "1000":
                raise RuntimeError("W1: dbmate did not apply 1000 migrations")
        empty_wal_db(db)
        r = run([SQLITE3, "-bail", db], stdin=one_sql)
        t_one.append(r.s)
        cli_rss.append(r.maxrss_kib)
        cpu_one.append(r.cpu_s)
        assert sql(db, "SELECT count(*) FROM history") == "1000"

        empty_wal_db(db)
        r = run([SQLITE3, "-bail", db], stdin=per_sql)
        t_per.append(r.s)
        cpu_per.append(r.cpu_s)

        empty_wal_db(db)
        dm = Daemon(ctx, db, mig).start()
        try:
            r, doc = dm.ctl("up")
            t_daemon.append(r.s)
            jobs.append(job_split(doc))
            cpu_d.append((dm.last_cpu_s, r.cpu_s))
            hwm.append(dm.status()["VmHWM"])
            if count_applied(db) != 1000:
                raise RuntimeError("W1: migrated did not apply 1000 migrations")
            if rep == reps - 1:
                status_rows = status_process(ctx, dm, db, (dm_db, dm_mig) if dbmate else None)
        finally:
            dm.stop()
    med = statistics.median
    ctx.raw["w1"] = dict(migrated_s=t_daemon, cli_one_txn_s=t_one, cli_per_migration_s=t_per,
                         vmhwm_kib=hwm, cli_maxrss_kib=cli_rss, jobs=jobs, cpu_migrated_and_client_s=cpu_d,
                         cpu_cli_one_s=cpu_one, cpu_cli_per_s=cpu_per, dbmate_s=t_dbmate)
    a, b, c = med(t_daemon), med(t_per), med(t_one)
    ctx.row("W1 1000 small migrations, `migratectl up` (1 txn) vs CLI 1 txn/migration [median of %d]" % reps,
            fmt_s(a), "sqlite3 CLI, 1000 txns: " + fmt_s(b), ratio(a, b), "≤ 0.40×", verdict(a <= 0.4 * b),
            ctx.dbmate_cell(fmt_s, med(t_dbmate) if t_dbmate else None) + " (1 txn/migration)")
    ctx.row("W1 same run vs CLI with the same transaction structure (1 txn)", fmt_s(a),
            "sqlite3 CLI, 1 txn: " + fmt_s(c), ratio(a, c), "≤ 1.00×", verdict(a <= c))
    ctx.note("W1 split of the median migrated run (from its --json result): " + split_text(median_job(jobs, t_daemon)))
    ctx.note("W1 CPU time (median): migrated %.0f ms (all threads) + migratectl %.0f ms; sqlite3 CLI 1 txn %.0f ms, "
             "1000 txns %.0f ms" % (statistics.median(c[0] for c in cpu_d) * 1000,
                                    statistics.median(c[1] for c in cpu_d) * 1000,
                                    statistics.median(cpu_one) * 1000, statistics.median(cpu_per) * 1000))
    ctx.rows.extend(status_rows)
    ctx.w1_peak = (max(hwm), max(cli_rss))


def status_process(ctx, dm, db, dbmate_db=None):
    """migratectl status as a whole process with 1000 applied, against the sqlite3 CLI's query
    and `dbmate status` on dbmate's database with the same 1000 applied (dbmate_db: (db, dir))."""
    runs = 300
    log("status: `migratectl status` process, 1000 applied, %d runs" % runs)
    r = json.loads(subprocess.run([ctx.benchtool, "spawn", str(runs), "--", ctx.migratectl, "--socket", dm.sock,
                                   "status"], capture_output=True, text=True, check=True).stdout)
    rj = json.loads(subprocess.run([ctx.benchtool, "spawn", str(runs), "--", ctx.migratectl, "--socket", dm.sock,
                                    "--json", "status"], capture_output=True, text=True, check=True).stdout)
    ref = json.loads(subprocess.run([ctx.benchtool, "spawn", str(runs), "--", SQLITE3, db,
                                     "SELECT version, name, checksum, applied_at, duration_ms FROM migrated_schema "
                                     "ORDER BY version"],
                                    capture_output=True, text=True, check=True).stdout)
    # the client's own start (its dynamic libraries) against the cheapest process there is
    start = json.loads(subprocess.run([ctx.benchtool, "spawn", str(runs), "--", ctx.migratectl, "--version"],
                                      capture_output=True, text=True, check=True).stdout)
    true = json.loads(subprocess.run([ctx.benchtool, "spawn", str(runs), "--", "/bin/true"],
                                     capture_output=True, text=True, check=True).stdout)
    # and the daemon side alone: one connection, status round trips with 1000 applied
    rt = load(ctx, dm.sock, "status", 1, 1.5)
    # the peer: dbmate status reads the same 1000 files and its schema_migrations (fewer runs: slower)
    dms = ctx.dbmate.status_spawn(ctx.benchtool, dbmate_db[0], dbmate_db[1], 50) if dbmate_db else None
    ctx.raw["status_process"] = dict(migratectl=r, migratectl_json=rj, sqlite3=ref, round_trip_1000=rt,
                                     migratectl_version=start, true=true, dbmate=dms)
    a, b = r["p50_us"] / 1e3, ref["p50_us"] / 1e3
    c = dms["p50_us"] / 1e3 if dms else None
    return [ctx.dbmate_target("W2 `migratectl status` vs `dbmate status`, 1000 applied, whole process [median]",
                              a, c, fmt_ms, 0.25),
            ("`migratectl status` whole process, 1000 applied [median of %d]" % runs, fmt_ms(a),
             "sqlite3 DB 'SELECT … FROM migrated_schema': " + fmt_ms(b), ctx.dbmate_cell(fmt_ms, c), ratio(a, b),
             "≤ 1.00×", verdict(a <= b)),
            ("`migratectl --version` process start [median of %d]" % runs, fmt_ms(start["p50_us"] / 1e3),
             "/bin/true: " + fmt_ms(true["p50_us"] / 1e3), "", ratio(start["p50_us"], true["p50_us"]), "(info)", ""),
            ("`migratectl --json status` whole process, 1000 applied [median of %d]" % runs,
             fmt_ms(rj["p50_us"] / 1e3), "same sqlite3 query: " + fmt_ms(b), "", ratio(rj["p50_us"] / 1e3, b),
             "(info)", ""),
            ("status round trip in the daemon, 1000 applied, 1 client (p50 / p99 / max)", fmt_lat(rt),
             "-", "", "-", "(info)", "")]


# ---------------------------------------------------------------------------------------------
# W3: one heavy data migration on 1,000,000 rows


W3_SQL = textwrap.dedent("""\
    ALTER TABLE readings ADD COLUMN temp_c REAL;
    UPDATE readings SET temp_c = round((temp_f - 32) * 5.0 / 9.0, 2);
    CREATE INDEX readings_temp_c ON readings (temp_c);
    """)


def build_1m_db(path):
    empty_wal_db(path)
    sql(path, textwrap.dedent("""\
        CREATE TABLE readings (id INTEGER PRIMARY KEY, device_id INTEGER NOT NULL, ts INTEGER NOT NULL,
                               temp_f REAL NOT NULL, note TEXT);
        BEGIN;
        WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000)
        INSERT INTO readings (id, device_id, ts, temp_f, note)
                SELECT x, x % 64, 1700000000 + x * 30, 60 + (x % 400) / 10.0,
                       CASE WHEN x % 10 = 0 THEN 'checked ' || x END FROM c;
        CREATE INDEX readings_device_ts ON readings (device_id, ts);
        COMMIT;
        PRAGMA wal_checkpoint(TRUNCATE);
        """))


def copy_db(src, dst):
    for suffix in ("", "-wal", "-shm"):
        try:
            os.unlink(dst + suffix)
        except FileNotFoundError:
            pass
    shutil.copyfile(src, dst)


def bench_w3(ctx, reps=3):
    log("W3: building the 1,000,000-row database")
    d = ctx.dir("w3")
    base = os.path.join(d, "base.sqlite")
    t0 = time.monotonic()
    build_1m_db(base)
    log("W3: built in %.1f s (%.0f MiB); best of %d" % (time.monotonic() - t0, os.path.getsize(base) / 2**20, reps))
    mig = os.path.join(d, "migrations")
    os.makedirs(mig)
    with open(os.path.join(mig, "0001_readings_celsius.up.sql"), "w") as f:
        f.write(W3_SQL)
    cli_sql = os.path.join(d, "cli.sql")
    with open(cli_sql, "w") as f:
        f.write(HISTORY_DDL + "BEGIN;\n" + W3_SQL + history_insert(1, "readings_celsius") + "COMMIT;\n")
    db = os.path.join(d, "db.sqlite")
    dbmate = ctx.dbmate if ctx.dbmate and ctx.dbmate.ok else None
    if dbmate:
        dm_mig = dbmate.write(os.path.join(d, "dbmate"), [(1, "readings_celsius", W3_SQL, "")])
    t_d, t_c, t_off, jobs, jobs_off, t_dm = [], [], [], [], [], []
    for _ in range(reps):
        copy_db(base, db)
        t_c.append(run([SQLITE3, "-bail", db], stdin=cli_sql).s)
        if dbmate:
            copy_db(base, db)
            t_dm.append(dbmate.up(db, dm_mig).s)
        for extra, times, js in (((), t_d, jobs), (("--integrity", "off"), t_off, jobs_off)):
            copy_db(base, db)
            shutil.rmtree(db + "-backups", ignore_errors=True)
            dm = Daemon(ctx, db, mig, extra).start()
            try:
                r, doc = dm.ctl("up")
                times.append(r.s)
                js.append(job_split(doc))
                if count_applied(db) != 1:
                    raise RuntimeError("W3: not applied")
            finally:
                dm.stop()
            shutil.rmtree(db + "-backups", ignore_errors=True)
    for suffix in ("", "-wal", "-shm"):
        for p in (db, base):
            try:
                os.unlink(p + suffix)
            except FileNotFoundError:
                pass
    ctx.raw["w3"] = dict(migrated_s=t_d, migrated_integrity_off_s=t_off, cli_s=t_c, jobs=jobs, jobs_off=jobs_off,
                         dbmate_s=t_dm)
    a, b, c = min(t_d), min(t_c), min(t_off)
    ctx.row("W3 ADD COLUMN + UPDATE 1M rows + CREATE INDEX [best of %d]" % reps, fmt_s(a),
            "sqlite3 CLI, same SQL: " + fmt_s(b), ratio(a, b), "≤ 1.10×", verdict(a <= 1.1 * b),
            ctx.dbmate_cell(fmt_s, min(t_dm) if t_dm else None) + (" (no backup, no checks)" if t_dm else ""))
    ctx.row("W3 same, migrated --integrity off (backup still taken) [best of %d]" % reps, fmt_s(c),
            "sqlite3 CLI, same SQL: " + fmt_s(b), ratio(c, b), "(info)", "")
    best = lambda ts, js: dict(js[ts.index(min(ts))], client_s=min(ts))
    ctx.note("W3 split, default: " + split_text(best(t_d, jobs)))
    ctx.note("W3 split, --integrity off: " + split_text(best(t_off, jobs_off)))


# ---------------------------------------------------------------------------------------------
# W4: 100 migrations by 100 `migratectl up --to V` runs


def bench_w4(ctx, reps=5):
    log("W4: 100 × `migratectl up --to V` vs 100 × sqlite3, median of %d" % reps)
    d = ctx.dir("w4")
    mig = write_small_set(os.path.join(d, "migrations"), 100)
    files = ctx.dir("w4", "cli")
    for i in range(1, 101):
        with open(os.path.join(files, "%d.sql" % i), "w") as f:
            f.write(HISTORY_DDL + "BEGIN;\n" + small_migration(i) + history_insert(i, "add_t%d" % i) + "COMMIT;\n")
    db = os.path.join(d, "db.sqlite")
    # deploy-script style: a shell loop, the same for both tools
    ctl_sh = os.path.join(d, "ctl.sh")
    with open(ctl_sh, "w") as f:
        f.write('for v in $(seq 1 100); do "$1" --socket "$2" up --to $v >/dev/null 2>&1 || exit 1; done\n')
    cli_sh = os.path.join(d, "cli.sh")
    with open(cli_sh, "w") as f:
        f.write('for v in $(seq 1 100); do "$1" -bail "$2" < "$3/$v.sql" >/dev/null || exit 1; done\n')
    # as deployed beside dbmate: each round one new migration file arrives, then a plain `up`
    deploy_sh = os.path.join(d, "deploy.sh")
    with open(deploy_sh, "w") as f:
        f.write('stage=$1; dir=$2; shift 2\n'
                'for v in $(seq 1 100); do f=$(printf %04d "$v"); cp "$stage/$f"_* "$dir/" || exit 1; '
                '"$@" >/dev/null 2>&1 || exit 1; done\n')
    dbmate = ctx.dbmate if ctx.dbmate and ctx.dbmate.ok else None
    if dbmate:
        dm_stage = dbmate.write(os.path.join(d, "dbmate-stage"),
                                [(i, "add_t%d" % i, small_migration(i), "DROP TABLE t_%d;" % i) for i in range(1, 101)])
    t_d, t_c, cpu_d, cpu_c, t_new, t_dm = [], [], [], [], [], []
    for _ in range(reps):
        if dbmate:
            empty_wal_db(db)
            live = os.path.join(d, "dbmate-live")
            shutil.rmtree(live, ignore_errors=True)
            os.makedirs(live)
            t_dm.append(run(["/bin/sh", deploy_sh, dm_stage, live] + dbmate.argv(db, live, "up")).s)
            if sql(db, "SELECT count(*) FROM schema_migrations") != "100":
                raise RuntimeError("W4: dbmate did not apply 100 migrations")
            empty_wal_db(db)
            live = os.path.join(d, "live")
            shutil.rmtree(live, ignore_errors=True)
            shutil.rmtree(db + "-backups", ignore_errors=True)
            os.makedirs(live)
            dm = Daemon(ctx, db, live).start()
            try:
                t_new.append(run(["/bin/sh", deploy_sh, mig, live, ctx.migratectl, "--socket", dm.sock, "up"]).s)
                if count_applied(db) != 100:
                    raise RuntimeError("W4 (new file each round): not applied")
            finally:
                dm.stop()
        empty_wal_db(db)
        shutil.rmtree(db + "-backups", ignore_errors=True)
        r = run(["/bin/sh", cli_sh, SQLITE3, db, files])
        t_c.append(r.s)
        cpu_c.append(r.cpu_s)
        assert sql(db, "SELECT count(*) FROM history") == "100"
        empty_wal_db(db)
        dm = Daemon(ctx, db, mig).start()
        try:
            c0 = dm.cpu_s()
            r = run(["/bin/sh", ctl_sh, ctx.migratectl, dm.sock])
            t_d.append(r.s)
            cpu_d.append((dm.cpu_s() - c0, r.cpu_s))
            if count_applied(db) != 100:
                raise RuntimeError("W4: not applied")
        finally:
            dm.stop()
    ctx.raw["w4"] = dict(migrated_s=t_d, cli_s=t_c, cpu_migrated_and_clients_s=cpu_d, cpu_cli_s=cpu_c,
                         migrated_new_file_s=t_new, dbmate_new_file_s=t_dm)
    ctx.note("W4 CPU time (median): migrated %.0f ms (all threads) + the shell loop with its 100 migratectl %.0f ms; "
             "the shell loop with its 100 sqlite3 %.0f ms" % (statistics.median(c[0] for c in cpu_d) * 1000,
                                                             statistics.median(c[1] for c in cpu_d) * 1000,
                                                             statistics.median(cpu_c) * 1000))
    a, b = statistics.median(t_d), statistics.median(t_c)
    ctx.row("W4 100 × `migratectl up --to V` (shell loop) [median of %d]" % reps, fmt_s(a),
            "100 × sqlite3 CLI, 1 txn each: " + fmt_s(b), ratio(a, b), "≤ 1.20×", verdict(a <= 1.2 * b))
    ctx.rows.append(ctx.dbmate_target("W4 100 × (new migration file, `migratectl up`) vs the same with `dbmate up` "
                                      "[median of %d]" % reps, statistics.median(t_new) if t_new else a,
                                      statistics.median(t_dm) if t_dm else None, fmt_s, 0.25))


# ---------------------------------------------------------------------------------------------
# 2. Status round trips, idle and during a long migration


def load(ctx, sock, method, clients, seconds, expect=None, interval_ms=None):
    argv = [ctx.benchtool, "rpc-load", sock, method, str(clients), str(seconds)]
    if expect:
        argv += ["--expect", expect]
    if interval_ms:
        argv += ["--interval-ms", str(interval_ms)]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    if not p.stdout.strip():
        raise RuntimeError("benchtool failed: %s" % p.stderr)
    out = json.loads(p.stdout)
    if out.get("errors"):
        ctx.note("%s load, %d clients: %d connection errors (%s)" % (method, clients, out["errors"], p.stderr.strip()))
    return out


def slow_sql(n):
    return textwrap.dedent("""\
        CREATE TABLE big (x INTEGER, y TEXT);
        WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < %d)
        INSERT INTO big SELECT x, hex(randomblob(8)) FROM c WHERE x %% 20 = 0;
        """) % n


def calibrate_slow(ctx, seconds):
    """The CTE size that takes about `seconds` on this machine (measured with the CLI)."""
    db = empty_wal_db(os.path.join(ctx.dir("status"), "calib.sqlite"))
    n0 = 3000000
    el = run([SQLITE3, db, slow_sql(n0)]).s
    for suffix in ("", "-wal", "-shm"):
        try:
            os.unlink(db + suffix)
        except FileNotFoundError:
            pass
    return int(n0 * seconds / max(el, 0.01)), el


LEVELS = (1, 10, 100)
PACED_MS = 50       # the paced variant: each of 100 clients asks every 50 ms (2000 req/s in all)


def bench_status(ctx, seconds=1.5):
    d = ctx.dir("status")
    mig = os.path.join(d, "migrations")
    shutil.copytree(os.path.join(SRC_ROOT, "migrations"), mig)
    n_examples = len([f for f in os.listdir(mig) if f.endswith(".up.sql")])
    db = empty_wal_db(os.path.join(d, "db.sqlite"))

    # idle: the example migrations applied, nothing running
    log("status: round trips, idle, %s clients, %.1f s each (status, then hello as the floor)" % (LEVELS, seconds))
    dm = Daemon(ctx, db, mig).start()
    idle = {}
    try:
        dm.ctl("up")
        shutil.rmtree(db + "-backups", ignore_errors=True)
        for n in LEVELS:
            idle[n] = (load(ctx, dm.sock, "status", n, seconds), load(ctx, dm.sock, "hello", n, seconds))
        idle["paced"] = (load(ctx, dm.sock, "status", 100, seconds, interval_ms=PACED_MS),
                         load(ctx, dm.sock, "hello", 100, seconds, interval_ms=PACED_MS))
    finally:
        dm.stop()

    # during a migration: a recursive CTE of ~30 s (calibrated on this machine), cancelled once measured
    n, el = calibrate_slow(ctx, 30.0)
    log("status: slow migration calibrated: N=%d (3M rows took %.2f s with the CLI)" % (n, el))
    with open(os.path.join(mig, "9000_slow_fill.up.sql"), "w") as f:
        f.write(slow_sql(n))
    with open(os.path.join(mig, "9000_slow_fill.down.sql"), "w") as f:
        f.write("DROP TABLE big;\n")
    busy = {}
    dm = Daemon(ctx, db, mig).start()
    conn = None
    try:
        conn = H.Conn(dm.sock, 120)
        conn.send("up", {})
        deadline = time.monotonic() + 30
        while True:
            msg = conn.read_json(max(0.1, deadline - time.monotonic()))
            if msg is None or "result" in msg or "error" in msg:
                raise RuntimeError("the slow migration ended before the load: %r" % (msg,))
            if msg.get("event") == "migration" and msg.get("phase") == "applying" and msg.get("version") == 9000:
                break
        t_busy0 = time.monotonic()
        log("status: round trips during the migration")
        for k in LEVELS:
            busy[k] = (load(ctx, dm.sock, "status", k, seconds, '"state":"running"'),
                       load(ctx, dm.sock, "hello", k, seconds))
        busy["paced"] = (load(ctx, dm.sock, "status", 100, seconds, '"state":"running"', interval_ms=PACED_MS),
                         load(ctx, dm.sock, "hello", 100, seconds, interval_ms=PACED_MS))
        busy_for = time.monotonic() - t_busy0
        cancel = dm.rpc("cancel", {})
        _, final = conn.read_reply(timeout=60)
        if "error" not in final or final["error"].get("code") != "cancelled":
            ctx.note("the slow migration was not cancelled as expected: %r" % (final,))
    finally:
        if conn:
            conn.close()
        dm.stop()
    ctx.raw["status_idle"] = idle
    ctx.raw["status_busy"] = busy
    for label, res in (("idle", idle), ("during a migration", busy)):
        for k in LEVELS + ("paced",):
            st, hello = res[k]
            p99 = st["p99_us"] / 1e3
            # the target: 100 clients at 20 req/s each (paced); the closed loop is saturation
            tgt = "p99 ≤ 1 ms" if k == "paced" else "(info)"
            v = verdict(p99 <= 1.0) if k == "paced" else ""
            extra = ""
            if st.get("unexpected"):
                extra = " (%d replies not 'running')" % st["unexpected"]
            who = ("%d client%s, closed loop" % (k, "" if k == 1 else "s") if k != "paced"
                   else "100 clients paced at %d req/s each" % (1000 // PACED_MS))
            ctx.row("status round trip, %s, %s (p50 / p99 / max; %d req)%s" % (label, who, st["n"], extra),
                    fmt_lat(st), "hello: " + fmt_lat(hello), ratio(st["p99_us"], hello["p99_us"]) + " p99",
                    tgt, v)
    ctx.note("status load: %d example migrations applied; closed loop = each client sends its next request as soon "
             "as the reply arrives (saturation: with 100 clients a request waits for the 99 others), paced = each "
             "client sends every %d ms; C threads (tests/bench/benchtool.c), %.1f s per figure after a 0.2 s "
             "warm-up; `hello` is answered on the event loop without the reader thread: the floor of socket + JSON "
             "+ loop on this machine. The load during the migration lasted %.1f s, all replies checked for "
             "\"state\":\"running\". Clients and daemon share the machine's %d CPUs."
             % (n_examples, PACED_MS, seconds, busy_for, os.cpu_count()))


# ---------------------------------------------------------------------------------------------
# 3. Downtime window, with the real-systemd harness of tests/systemd


def bench_downtime(ctx):
    harness = os.path.join(SRC_ROOT, "tests", "systemd", "sdharness.py")
    label = "downtime: migrated's own share of the window (1 migration, 2 writer units)"
    if not os.path.exists(harness):
        ctx.row(label, "TODO", "-", "-", "≤ 50 ms", "TODO")
        ctx.note("TODO downtime: tests/systemd/sdharness.py does not exist yet; rerun once it does")
        return
    log("downtime: one-migration jobs with two writer units under a real systemd user manager")
    out = os.path.join(ctx.scratch, "downtime.json")
    env = dict(os.environ, MIGRATED_BIN=ctx.migrated, MIGRATECTL_BIN=ctx.migratectl,
               MIGRATIONS_DIR=os.path.join(SRC_ROOT, "migrations"), BENCH_DOWNTIME_OUT=out,
               PYTHONDONTWRITEBYTECODE="1")
    try:
        p = PROCS.popen([sys.executable, os.path.join(HERE, "downtime.py")], env=env, stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT)
        text, _ = p.communicate(timeout=240)
        PROCS.forget(p)
        text = text.decode(errors="replace")
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        ctx.row(label, "TODO", "-", "-", "≤ 50 ms", "TODO")
        ctx.note("TODO downtime: the systemd run did not finish within 240 s")
        return
    if p.returncode == 77 or not os.path.exists(out):
        ctx.row(label, "TODO", "-", "-", "≤ 50 ms", "TODO")
        tail = "\n".join(text.strip().splitlines()[-15:])
        ctx.note("TODO downtime: the systemd harness run %s (exit %s):\n%s"
                 % ("was skipped" if p.returncode == 77 else "failed", p.returncode, tail))
        return
    with open(out) as f:
        res = json.load(f)
    ctx.raw["downtime"] = res
    jobs = res["jobs"]
    share = statistics.median(j["own_ms"] for j in jobs)
    window = statistics.median(j["downtime_ms"] for j in jobs)
    ctx.row(label + " [median of %d jobs]" % len(jobs), fmt_ms(share), "whole window downtime_ms: " + fmt_ms(window),
            ratio(share, window), "≤ 50 ms", verdict(share <= 50))
    for j in jobs:
        t = j["timings"]
        ctx.note("downtime job v%d: downtime_ms=%d = units stopping (slowest stop job %d ms) + checks_ms=%d + "
                 "sql_ms=%d + units starting (slowest start job %d ms) + rest; timings=%s; migratectl-side job "
                 "%.0f ms; migrated's own share = downtime − slowest stop − slowest start = %d ms"
                 % (j["version"], j["downtime_ms"], j["max_stop_ms"], t["checks_ms"], t["sql_ms"],
                    j["max_start_ms"], json.dumps(t, sort_keys=True), j["client_ms"], j["own_ms"]))


def bench_online(ctx):
    """Online vs stop/start for one additive migration with two writers (tests/bench/online.py)."""
    log("online: one additive migration with two exec: writers, online vs stop/start")
    out = os.path.join(ctx.scratch, "online.json")
    env = dict(os.environ, MIGRATED_BIN=ctx.migrated, MIGRATECTL_BIN=ctx.migratectl, PYTHONDONTWRITEBYTECODE="1")
    subprocess.run([sys.executable, os.path.join(HERE, "online.py"), "--json", out], env=env, check=True,
                   stdout=subprocess.DEVNULL, timeout=600)
    with open(out) as f:
        res = json.load(f)
    ctx.raw["online"] = res
    for key, label in (("downtime_ms", "online: downtime, units not serving (1 additive migration, 2 writers)"),
                       ("stall_ms", "online: the writers' worst stall (1 additive migration, 2 writers)")):
        on = statistics.median(j[key] for j in res["online"])
        off = statistics.median(j[key] for j in res["stop_start"])
        ctx.row(label + " [median of %d jobs]" % len(res["online"]), fmt_ms(on), "stop/start: " + fmt_ms(off),
                ratio(on, off), "< stop/start", verdict(on < off))


# ---------------------------------------------------------------------------------------------
# 4. Backup of a 1 GB database


def build_1g_db(path, mib=1024):
    """A ~1 GiB WAL database, fast: one row of random bytes per 4 KiB page, written with the
    journal off in one transaction, then switched to WAL."""
    for suffix in ("", "-wal", "-shm"):
        try:
            os.unlink(path + suffix)
        except FileNotFoundError:
            pass
    rows = mib * 256
    sql(path, textwrap.dedent("""\
        PRAGMA page_size = 4096;
        PRAGMA journal_mode = OFF;
        PRAGMA synchronous = OFF;
        CREATE TABLE blobs (id INTEGER PRIMARY KEY, data BLOB NOT NULL);
        BEGIN;
        WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < %d)
        INSERT INTO blobs (data) SELECT randomblob(3900) FROM c;
        COMMIT;
        PRAGMA journal_mode = WAL;
        """ % rows))


def backup_supported(ctx, dm):
    hello = dm.rpc("hello")
    return "backup" in hello.get("methods", [])


def bench_backup(ctx, reps=3):
    d = ctx.dir("backup")
    db = os.path.join(d, "big.sqlite")
    log("backup: generating the 1 GiB database")
    t0 = time.monotonic()
    build_1g_db(db)
    size = os.path.getsize(db)
    fd = os.open(db, os.O_RDONLY)
    os.fsync(fd)    # its own dirty pages reach the disk now, not during the first measurement
    os.close(fd)
    log("backup: %.0f MiB in %.1f s" % (size / 2**20, time.monotonic() - t0))
    copy = os.path.join(d, "copy.sqlite")
    t_cp, t_cps = [], []
    for _ in range(reps):
        t_cp.append(run(["cp", db, copy]).s)
        os.unlink(copy)
        # migrated's backup is durable (fsync) before it is used; cp alone is not
        t_cps.append(run(["/bin/sh", "-c", 'cp "$1" "$2" && sync "$2"', "sh", db, copy]).s)
        os.unlink(copy)
    b, bs = min(t_cp), min(t_cps)
    mig = ctx.dir("backup", "migrations")
    backups = ctx.dir("backup", "backups")
    extra = []
    helptext = subprocess.run([ctx.migrated, "--help"], capture_output=True, text=True).stdout
    if "--backup-dir" in helptext:
        extra = ["--backup-dir", backups]
    dm = Daemon(ctx, db, mig, extra).start()
    label = "backup of a %.2f GiB database [best of %d]" % (size / 2**30, reps)
    try:
        if not backup_supported(ctx, dm):
            ctx.row(label, "n/a", "cp: " + fmt_s(b), "-", "≤ 1.50×", "TODO")
            ctx.note("backup: this migrated has no \"backup\" method yet (hello lists none); the 1 GiB database "
                     "generator and the cp reference ran; rerun tests/bench/run.sh to fill the row")
            ctx.raw["backup"] = dict(cp_s=t_cp, cp_sync_s=t_cps, migrated_s=None, bytes=size)
            return
        t_b, inner = [], []
        for _ in range(reps):
            t_start = time.time()
            r, doc = dm.ctl("backup")
            t_b.append(r.s)
            if not isinstance(doc, dict) or doc.get("status") != "backed_up":
                raise RuntimeError("backup failed: %r" % (doc,))
            inner.append((doc.get("backup") or {}).get("duration_ms"))
            remove_created_files(ctx, doc, t_start)
            for where in (backups, db + "-backups"):
                if os.path.isdir(where):
                    for f in os.listdir(where):
                        os.unlink(os.path.join(where, f))
    finally:
        dm.stop()
        for p in os.listdir(d):
            if p.endswith(".sqlite") or "-wal" in p or "-shm" in p:
                try:
                    os.unlink(os.path.join(d, p))
                except OSError:
                    pass
    ctx.raw["backup"] = dict(cp_s=t_cp, cp_sync_s=t_cps, migrated_s=t_b, backup_duration_ms=inner, bytes=size)
    a = min(t_b)
    ctx.row(label + " (`migratectl backup`)", fmt_s(a), "cp: " + fmt_s(b), ratio(a, b), "(info)", "")
    ctx.row("backup, same run, against a durable copy", fmt_s(a), "cp + sync FILE: " + fmt_s(bs), ratio(a, bs),
            "≤ 1.50×", verdict(a <= 1.5 * bs))
    ctx.note("backup: the daemon's own backup.duration_ms %s (a file copy under a read transaction, or the backup "
             "API, + fsync of the file and the directory); the rest of the migratectl run is queueing, the job and "
             "the client" % inner)


def remove_created_files(ctx, result, since):
    """Backups written outside the scratch directory (a default backup directory) are removed
    if this run created them."""
    def paths(v):
        if isinstance(v, str) and v.startswith("/"):
            yield v
        elif isinstance(v, dict):
            for x in v.values():
                yield from paths(x)
        elif isinstance(v, list):
            for x in v:
                yield from paths(x)
    for p in paths(result):
        if p.startswith(ctx.scratch):
            continue
        try:
            st = os.stat(p)
        except OSError:
            continue
        if os.path.isfile(p) and st.st_mtime >= since - 1 and st.st_size > 2**20:
            os.unlink(p)
            ctx.note("backup: removed %s, written outside the scratch directory" % p)


# ---------------------------------------------------------------------------------------------
# 5. Memory


def pss_kib(pid):
    """Proportional set size: shared library pages divided among the processes that map them."""
    out = {}
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("Pss", "Pss_Anon", "Pss_File"):
                out[k] = int(v.split()[0])
    return out


def top_mappings(pid, n=8):
    """The mappings with the most resident memory, by file (anonymous ones by kind), from smaps."""
    per = {}
    name = None
    with open("/proc/%d/smaps" % pid) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 5 and "-" in parts[0] and ":" in parts[3]:
                name = parts[5] if len(parts) >= 6 else "[anon]"
                name = os.path.basename(name) if name.startswith("/") else name
            elif parts and parts[0] == "Rss:":
                per[name] = per.get(name, 0) + int(parts[1])
    top = sorted(per.items(), key=lambda kv: -kv[1])[:n]
    return ", ".join("%s %d KiB" % kv for kv in top)


def open_idle(path, n, patience_s):
    """n connections that send nothing. A full listen backlog (EAGAIN) is retried for patience_s,
    as a blocking client would wait. Returns (sockets, refused, retries, first error)."""
    socks, refused, retries, first_err = [], 0, 0, None
    for _ in range(n):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.setblocking(False)
        deadline = time.monotonic() + patience_s
        while True:
            try:
                s.connect(path)
                socks.append(s)
                break
            except BlockingIOError:
                retries += 1
                if time.monotonic() < deadline:
                    time.sleep(0.002)
                    continue
                err = "listen backlog full for %ss" % patience_s
            except OSError as e:
                err = str(e)
            refused += 1
            first_err = first_err or err
            s.close()
            break
    return socks, refused, retries, first_err


def count_closed(socks):
    """How many of these connections the daemon has closed (EOF or error on a non-blocking read)."""
    closed = 0
    for s in socks:
        try:
            if s.recv(1) == b"":
                closed += 1
        except BlockingIOError:
            pass
        except OSError:
            closed += 1
    return closed


def fd_limit(ctx, db, mig, limit=1024, n=1100):
    """What happens past the daemon's file descriptor limit (LimitNOFILE=1024 as a hard limit,
    as in many units and containers): n idle connections."""
    log("memory: %d connections against a daemon limited to %d file descriptors" % (n, limit))
    dm = Daemon(ctx, db, mig, nofile=(limit, limit)).start()
    socks = []
    try:
        socks, refused, _, first_err = open_idle(dm.sock, n, 2)
        time.sleep(0.5)
        log_size0 = os.path.getsize(dm.log_path)
        c0 = dm.cpu_s()
        time.sleep(1.0)
        spin = dm.cpu_s() - c0
        log_growth = os.path.getsize(dm.log_path) - log_size0
        fds = len(os.listdir("/proc/%d/fd" % dm.pid))
        closed = count_closed(socks)
        t1 = time.perf_counter()
        try:
            H.rpc(dm.sock, "status", timeout=3)
            answer = "answered in %.1f ms" % ((time.perf_counter() - t1) * 1000)
        except (OSError, TimeoutError, H.HarnessError) as e:
            answer = "no answer within %.1f s (%s)" % (time.perf_counter() - t1, type(e).__name__)
        with open(dm.log_path, "rb") as f:
            f.seek(log_size0)
            first = (f.read(4096).decode(errors="replace").splitlines() or [""])[0]
        for k in socks:
            k.close()
        socks = []
        time.sleep(0.5)
        c0 = dm.cpu_s()
        time.sleep(0.5)
        spin_after = (dm.cpu_s() - c0) * 2
    finally:
        for k in socks:
            k.close()
        dm.stop()
    ctx.raw["fd_limit"] = dict(connected=n - refused, fds=fds, closed=closed, cpu_s_per_s=spin, log_bytes_per_s=log_growth,
                               first_log_line=first, status=answer, cpu_after=spin_after)
    ctx.row("%d idle connections, daemon limited to %d fds: its CPU while nothing is asked" % (n, limit),
            "%.0f%% of a CPU" % (spin * 100), "-", "-", "(info)", "")
    ctx.note("past the file descriptor limit (%d connections, LimitNOFILE=%d): %d connected%s (the kernel queues what "
             "the daemon cannot accept), daemon holds %d fds, %d closed by the daemon, daemon CPU %.2f s per second "
             "while idle, its log grew by %d bytes in 1 s (%r), a status on a new connection: %s; once they closed: "
             "CPU %.2f s per second" % (n, limit, n - refused, (" (%d refused: %s)" % (refused, first_err)) if refused
                                        else "", fds, closed, spin, log_growth, first[:80], answer, spin_after))


def stalled_reader(ctx, d):
    """A client that pipelines 5000 status requests with large replies and never reads: the
    daemon queues up to 16 MiB for it, then drops it. Its peak RSS meanwhile, and other clients'
    status latency (these were bounds in the integration tests; here they are measured)."""
    log("memory: a client that never reads its replies")
    mig = os.path.join(d, "many")
    os.makedirs(mig, exist_ok=True)
    for v in range(1, 401):  # 400 pending migrations: each status reply is tens of KiB
        with open(os.path.join(mig, "%04d_m%d.up.sql" % (v, v)), "w") as f:
            f.write("CREATE TABLE t%d (id INTEGER PRIMARY KEY);\n" % v)
    db = empty_wal_db(os.path.join(d, "stall.sqlite"))
    dm = Daemon(ctx, db, mig).start()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        base = dm.status()
        size = len(json.dumps(dm.rpc("status"))) + 1
        s.connect(dm.sock)
        s.settimeout(1.0)
        data = memoryview(b"".join(b'{"id":%d,"method":"status"}\n' % i for i in range(5000)))
        sent, lat, deadline = 0, [], time.monotonic() + 60
        dropped = "it does not read its replies"
        while dropped not in dm.log() and time.monotonic() < deadline:
            if sent < len(data):
                try:
                    sent += s.send(data[sent:sent + 65536])
                except socket.timeout:
                    pass
                except OSError:
                    sent = len(data)
            t1 = time.perf_counter()
            dm.rpc("status", timeout=10)
            lat.append((time.perf_counter() - t1) * 1000)
        hwm = dm.status()["VmHWM"]
        ok = dropped in dm.log()
        ctx.raw["memory_stalled_reader"] = dict(base=base, VmHWM=hwm, reply_bytes=size, status_ms=lat, dropped=ok)
        ctx.row("peak RSS, a client that never reads (5000 replies of %d KiB)" % (size // 1024), fmt_mib(hwm),
                "idle: " + fmt_mib(base["VmRSS"]), ratio(hwm, base["VmRSS"]), "≤ 64 MiB, dropped",
                verdict(ok and hwm <= 64 * 1024))
        if lat:
            ctx.note("while a client did not read: other clients' status median %.1f ms, max %.1f ms over %d "
                     "requests; dropped: %s" % (statistics.median(lat), max(lat), len(lat), ok))
    finally:
        s.close()
        dm.stop()


def bench_memory(ctx):
    log("memory: idle, 1000 idle connections")
    d = ctx.dir("memory")
    mig = os.path.join(d, "migrations")
    shutil.copytree(os.path.join(SRC_ROOT, "migrations"), mig)
    db = empty_wal_db(os.path.join(d, "db.sqlite"))

    # the reference: the sqlite3 CLI holding the same database open after one query
    cli = PROCS.popen([SQLITE3, "-batch", db], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                      stderr=subprocess.DEVNULL)
    cli.stdin.write(b"SELECT count(*) FROM sqlite_master;\n")
    cli.stdin.flush()
    time.sleep(0.3)
    cli_st = proc_status(cli.pid)
    cli.stdin.close()
    cli.wait(10)
    PROCS.forget(cli)

    dm = Daemon(ctx, db, mig).start()
    socks = []
    try:
        dm.rpc("status")
        time.sleep(0.2)
        idle = dm.status()
        ctx.raw["memory_idle"] = dict(migrated=idle, sqlite3_cli=cli_st)
        ctx.row("idle RSS (VmRSS after start + one status)", fmt_mib(idle["VmRSS"]),
                "sqlite3 CLI, same DB open: " + fmt_mib(cli_st["VmRSS"]), ratio(idle["VmRSS"], cli_st["VmRSS"]),
                "≤ 4 MiB", verdict(idle["VmRSS"] <= 4096))
        pss = pss_kib(dm.pid)
        ctx.note("idle RSS split: migrated RssAnon %d KiB + RssFile %d KiB (mapped files: libraries) + RssShmem %d "
                 "KiB, %d threads, Pss %d KiB (Pss_Anon %d + Pss_File %d); largest mappings by Rss: %s; sqlite3 CLI "
                 "RssAnon %d KiB + RssFile %d KiB"
                 % (idle["RssAnon"], idle["RssFile"], idle["RssShmem"], idle["Threads"], pss.get("Pss", 0),
                    pss.get("Pss_Anon", 0), pss.get("Pss_File", 0), top_mappings(dm.pid), cli_st["RssAnon"],
                    cli_st["RssFile"]))

        # 1000 idle connections that send nothing
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < 4096:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))
        socks, refused, retries, first_err = open_idle(dm.sock, 1000, 10)
        time.sleep(1.0)
        fds = len(os.listdir("/proc/%d/fd" % dm.pid))
        closed = count_closed(socks)
        alive = dm.proc.poll() is None
        many = dm.status()
        rts = []
        for _ in range(20):
            t1 = time.perf_counter()
            dm.rpc("status", timeout=10)
            rts.append((time.perf_counter() - t1) * 1000)
        per_conn = (many["VmRSS"] - idle["VmRSS"]) / 1000.0
        ctx.row("RSS with 1000 idle connections", fmt_mib(many["VmRSS"]), "idle: " + fmt_mib(idle["VmRSS"]),
                ratio(many["VmRSS"], idle["VmRSS"]), "(info)", "")
        ctx.note("1000 idle connections: %d connected (%d connect retries on a full listen backlog), %d refused%s, "
                 "%d closed by the daemon within 1 s, daemon has %d fds open (started with RLIMIT_NOFILE %d:%d, "
                 "systemd's default for services), +%.1f KiB RSS per connection, status on a fresh connection "
                 "meanwhile: median %.1f ms of 20 (Python client), daemon alive: %s"
                 % (1000 - refused, retries, refused, (" (first: %s)" % first_err) if refused else "", closed, fds,
                    DAEMON_NOFILE[0], DAEMON_NOFILE[1], per_conn, statistics.median(rts), alive))

        for k in socks:
            k.close()
        socks = []
        time.sleep(0.5)
        after = dm.status()
        ctx.raw["memory_conns"] = dict(with_1000=many, after_close=after, fds=fds, refused=refused, closed=closed,
                                       backlog_retries=retries, status_ms=rts)
        ctx.note("after the 1000 connections closed: RSS %s" % fmt_mib(after["VmRSS"]))
    finally:
        for k in socks:
            k.close()
        dm.stop()

    fd_limit(ctx, db, mig)
    stalled_reader(ctx, d)

    if hasattr(ctx, "w1_peak"):
        hwm, cli_rss = ctx.w1_peak
        ctx.row("peak RSS during W1 (VmHWM, 1000 migrations in one job)", fmt_mib(hwm),
                "sqlite3 CLI running W1 (1 txn), max RSS: " + fmt_mib(cli_rss), ratio(hwm, cli_rss), "(info)", "")


# ---------------------------------------------------------------------------------------------


def loadavg():
    with open("/proc/loadavg") as f:
        return "/".join(f.read().split()[:3])


def print_table(ctx, elapsed):
    head = ("workload", "migrated", "reference (same run)", "peer: dbmate (same run)", "ratio", "target", "verdict")
    rows = [head] + ctx.rows
    w = [max(len(r[i]) for r in rows) for i in range(len(head))]
    line = lambda r: "| " + " | ".join(r[i].ljust(w[i]) for i in range(len(head))) + " |"
    print()
    print("migrated benchmarks — %s, %d CPUs, SQLite %s, Linux %s; fsync of 4 KiB (median of 50) %.2f ms at "
          "the start, %.2f ms at the end; load average %s at the start, %s at the end"
          % (time.strftime("%Y-%m-%d %H:%M"), os.cpu_count(), sqlite3.sqlite_version, os.uname().release,
             ctx.fsync_ms, fsync_latency_ms(ctx), ctx.load0, loadavg()))
    print(line(head))
    print("|" + "|".join("-" * (x + 2) for x in w) + "|")
    for r in ctx.rows:
        print(line(r))
    print()
    for n in ctx.notes:
        print("- " + n)
    print()
    print("total run time of the benchmarks: %.0f s (build not included)" % elapsed)
    sys.stdout.flush()


def main():
    global T0, KEEP_SCRATCH
    T0 = time.monotonic()
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--build", default=os.path.join(SRC_ROOT, "build-bench"))
    ap.add_argument("--only", help="comma-separated subset: w1,w3,w4,status,downtime,backup,memory,pg,online")
    ap.add_argument("--json", help="also write the raw measurements to this file")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory (for debugging)")
    args = ap.parse_args()
    KEEP_SCRATCH = args.keep

    def on_signal(sig, frame):
        raise KeyboardInterrupt("signal %d" % sig)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    ctx = Ctx(args)
    ok = True
    try:
        ctx.load0 = loadavg()
        if any(ctx.want(w) for w in ("w1", "w3", "w4")):
            log("dbmate: installing the peer (npm ci of tests/oracles' lockfile, once per lockfile)")
            ctx.dbmate = bench_dbmate.Dbmate(sys.modules[__name__])
            if not ctx.dbmate.ok:
                ctx.note("dbmate (the peer) not measured: %s" % ctx.dbmate.why)
        ctx.fsync_ms = fsync_latency_ms(ctx)
        steps = [("w1", bench_w1), ("w3", bench_w3), ("w4", bench_w4), ("status", bench_status),
                 ("downtime", bench_downtime), ("backup", bench_backup), ("memory", bench_memory),
                 ("pg", lambda c: bench_pg.bench_pg(c, sys.modules[__name__])), ("online", bench_online)]
        for name, fn in steps:
            if not ctx.want(name):
                continue
            try:
                fn(ctx)
            except KeyboardInterrupt:
                raise
            except Exception as e:  # one broken workload must not hide the others
                ok = False
                ctx.row("%s: FAILED" % name, "error", "-", "-", "-", "ERROR")
                ctx.note("%s failed: %s: %s" % (name, type(e).__name__, str(e)[-1500:]))
                PROCS.kill_all()
        print_table(ctx, time.monotonic() - T0)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(dict(rows=ctx.rows, notes=ctx.notes, raw=ctx.raw), f, indent=1, default=str)
    finally:
        PROCS.kill_all()
        ctx.cleanup()
    return 0 if ok else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt as e:
        sys.stderr.write("bench: interrupted (%s); every process stopped, scratch removed\n" % (e or "Ctrl-C"))
        sys.exit(130)
