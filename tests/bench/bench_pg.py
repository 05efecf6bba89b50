# SPDX-License-Identifier: MIT
"""The PostgreSQL rows of the benchmarks: migrated on a PostgreSQL 15 cluster that this run starts
(tests/postgres/pgharness.py: initdb as an unprivileged user, Unix socket only, fsync off), each
figure beside psql doing the same work against the same cluster in the same run:

  W1  1000 small migrations in one `migratectl up` vs psql running the same SQL in one transaction
  W2  `migratectl status` (text) with 1000 applied vs psql selecting the rows of migrated_schema
  W3  ADD COLUMN + UPDATE 1,000,000 rows + CREATE INDEX in one `migratectl up` vs psql running the
      same SQL in one transaction (with and without the pg_dump backup taken first)
  W4  100 × (one new migration appears, `migratectl up`) vs 100 × psql, one transaction each
  cut a host's network cut while it holds the lock mid-migration (tests/postgres/test_pg_network.py,
      run as it is): time until another host completed the job

Figures are printed, never asserted. Without PostgreSQL, psql or root the rows say why (TODO).
"""
import os
import re
import statistics
import sys
import textwrap

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "postgres"))

import pgharness  # noqa: E402

PORT = 5477   # not the tests' 5433: a bench may run beside the postgres suite

HISTORY_DDL = ("CREATE TABLE IF NOT EXISTS history (version BIGINT PRIMARY KEY, name TEXT NOT NULL, "
               "checksum TEXT NOT NULL, applied_at TEXT NOT NULL, duration_ms BIGINT NOT NULL);\n")


def small_migration(i):
    """bench.small_migration() in PostgreSQL's dialect: a table, an index, three rows."""
    return textwrap.dedent("""\
        CREATE TABLE t_{i} (id SERIAL PRIMARY KEY, device_id INTEGER NOT NULL, name TEXT NOT NULL,
                           value REAL, created_at TEXT NOT NULL DEFAULT (now()::text));
        CREATE INDEX t_{i}_device ON t_{i} (device_id, name);
        INSERT INTO t_{i} (device_id, name, value) VALUES (1, 'left', 20.5), (2, 'right', 21.0), (3, 'base', 19.5);
        """).format(i=i)


def history_insert(i):
    # what migrated records per migration: version, name, SHA-256, timestamp, duration
    return ("INSERT INTO history VALUES (%d, 'add_t%d', '%064x', "
            "to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), 0);\n"
            % (i, i, i * 2654435761))


def write_migration(directory, i):
    with open(os.path.join(directory, "%04d_add_t%d.up.sql" % (i, i)), "w") as f:
        f.write(small_migration(i))
    with open(os.path.join(directory, "%04d_add_t%d.down.sql" % (i, i)), "w") as f:
        f.write("DROP TABLE t_%d;\n" % i)


class PgBench:
    def __init__(self, ctx, B):
        self.ctx, self.B = ctx, B
        self.cluster = pgharness.Cluster()
        self.cluster.port = PORT
        self.cluster.start()
        self.n = 0

    def stop(self):
        self.cluster.stop()

    def database(self):
        return self.cluster.new_database()

    def psql_argv(self, dbname):
        return ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", self.cluster.conninfo(dbname)]

    def count(self, dbname, table):
        return int(self.cluster.psql(dbname, "SELECT count(*) FROM %s" % table)[0][0])

    def daemon(self, dbname, migrations, extra=()):
        """A migrated on dbname with its own state directory, as the postgres suite starts one."""
        self.n += 1
        dm = self.B.Daemon(self.ctx, "-", migrations)
        dm.argv = [self.ctx.migrated, "--connection", self.cluster.conninfo(dbname), "--migrations", migrations,
                   "--socket", dm.sock, "--state-dir", self.ctx.dir("pg", "state-%d" % self.n),
                   "--backup-dir", self.ctx.dir("pg", "backups-%d" % self.n)] + list(extra)
        return dm.start()


def bench_w1_w2(pg, reps=3, status_runs=20):
    B, ctx = pg.B, pg.ctx
    B.log("PG W1: 1000 small migrations, one `migratectl up` vs psql, 1 txn; median of %d" % reps)
    d = ctx.dir("pg", "w1")
    mig = os.path.join(d, "migrations")
    os.makedirs(mig, exist_ok=True)
    one = [HISTORY_DDL, "BEGIN;\n"]
    for i in range(1, 1001):
        write_migration(mig, i)
        one.append(small_migration(i) + history_insert(i))
    one.append("COMMIT;\n")
    one_sql = os.path.join(d, "one.sql")
    with open(one_sql, "w") as f:
        f.write("".join(one))

    t_d, t_p, last = [], [], None
    for _ in range(reps):
        db = pg.database()
        r = B.run(pg.psql_argv(db) + ["-f", one_sql])
        t_p.append(r.s)
        assert pg.count(db, "history") == 1000
        db = pg.database()
        dm = pg.daemon(db, mig)
        try:
            r, _ = dm.ctl("up")
            t_d.append(r.s)
        finally:
            dm.stop()
        if pg.count(db, "migrated_schema") != 1000:
            raise RuntimeError("PG W1: migrated did not apply 1000 migrations")
        last = db
    a, b = statistics.median(t_d), statistics.median(t_p)
    ctx.raw["pg_w1"] = dict(migrated_s=t_d, psql_one_txn_s=t_p)
    ctx.row("PG W1 1000 small migrations, `migratectl up` [median of %d]" % reps, B.fmt_s(a),
            "psql, same SQL, 1 txn: " + B.fmt_s(b), B.ratio(a, b), "(info)", "")

    B.log("PG W2: `migratectl status` with 1000 applied vs psql's SELECT, median of %d" % status_runs)
    dm = pg.daemon(last, mig)
    t_s, t_q = [], []
    query = "SELECT version, name, checksum, applied_at, duration_ms FROM migrated_schema ORDER BY version"
    try:
        for _ in range(status_runs):
            t_s.append(B.run([ctx.migratectl, "--socket", dm.sock, "status"], capture=True).s)
            t_q.append(B.run(pg.psql_argv(last) + ["-c", query], capture=True).s)
    finally:
        dm.stop()
    a, b = statistics.median(t_s), statistics.median(t_q)
    ctx.raw["pg_w2"] = dict(migratectl_status_s=t_s, psql_select_s=t_q)
    ctx.row("PG W2 `migratectl status` (text), 1000 applied [median of %d]" % status_runs, B.fmt_ms(a * 1000),
            "psql SELECT … FROM migrated_schema: " + B.fmt_ms(b * 1000), B.ratio(a, b), "(info)", "")


W3_SQL = textwrap.dedent("""\
    ALTER TABLE readings ADD COLUMN temp_c real;
    UPDATE readings SET temp_c = round(((temp_f - 32) * 5.0 / 9.0)::numeric, 2);
    CREATE INDEX readings_temp_c ON readings (temp_c);
    """)

# bench.build_1m_db() in PostgreSQL's dialect: the same rows, the same index
W3_BASE = textwrap.dedent("""\
    CREATE TABLE readings (id bigint PRIMARY KEY, device_id integer NOT NULL, ts bigint NOT NULL,
                           temp_f real NOT NULL, note text);
    INSERT INTO readings (id, device_id, ts, temp_f, note)
            SELECT x, x % 64, 1700000000 + x * 30, 60 + (x % 400) / 10.0,
                   CASE WHEN x % 10 = 0 THEN 'checked ' || x END FROM generate_series(1, 1000000) x;
    CREATE INDEX readings_device_ts ON readings (device_id, ts);
    VACUUM ANALYZE readings;
    """)


def bench_w3(pg, reps=1):
    B, ctx = pg.B, pg.ctx
    B.log("PG W3: building the 1,000,000-row database once; every run starts from a copy of it")
    d = ctx.dir("pg", "w3")
    base_sql = os.path.join(d, "base.sql")
    with open(base_sql, "w") as f:
        f.write(W3_BASE)
    pg.cluster.psql("postgres", "CREATE DATABASE w3base TEMPLATE template0")
    B.run(pg.psql_argv("w3base") + ["-f", base_sql])
    mig = ctx.dir("pg", "w3", "migrations")
    with open(os.path.join(mig, "0001_readings_celsius.up.sql"), "w") as f:
        f.write(W3_SQL)
    one_sql = os.path.join(d, "one.sql")
    with open(one_sql, "w") as f:
        f.write(HISTORY_DDL + "BEGIN;\n" + W3_SQL + history_insert(1) + "COMMIT;\n")
    copies = [0]

    def copy():
        copies[0] += 1
        name = "w3_%d" % copies[0]
        pg.cluster.psql("postgres", "CREATE DATABASE %s TEMPLATE w3base" % name)
        return name

    t_p, t_d, t_off, jobs, jobs_off = [], [], [], [], []
    for _ in range(reps):
        db = copy()
        t_p.append(B.run(pg.psql_argv(db) + ["-f", one_sql]).s)
        pg.cluster.psql("postgres", "DROP DATABASE %s" % db)
        for extra, times, js in (((), t_d, jobs), (("--skip-backup",), t_off, jobs_off)):
            db = copy()
            dm = pg.daemon(db, mig, extra)
            try:
                r, doc = dm.ctl("up")
                times.append(r.s)
                js.append(B.job_split(doc))
            finally:
                dm.stop()
            if pg.count(db, "migrated_schema") != 1 or pg.count(db, "readings WHERE temp_c IS NULL") != 0:
                raise RuntimeError("PG W3: migrated did not apply the migration")
            pg.cluster.psql("postgres", "DROP DATABASE %s" % db)
    pg.cluster.psql("postgres", "DROP DATABASE w3base")
    a, b, c = statistics.median(t_d), statistics.median(t_p), statistics.median(t_off)
    ctx.raw["pg_w3"] = dict(migrated_s=t_d, migrated_skip_backup_s=t_off, psql_one_txn_s=t_p, jobs=jobs,
                            jobs_skip_backup=jobs_off)
    ctx.row("PG W3 ADD COLUMN + UPDATE 1M rows + CREATE INDEX, backup on [median of %d]" % reps, B.fmt_s(a),
            "psql, same SQL, 1 txn: " + B.fmt_s(b), B.ratio(a, b), "(info)", "")
    ctx.row("PG W3 same, --skip-backup [median of %d]" % reps, B.fmt_s(c),
            "psql, same SQL, 1 txn: " + B.fmt_s(b), B.ratio(c, b), "(info)", "")
    best = lambda ts, js: dict(js[ts.index(min(ts))], client_s=min(ts))  # noqa: E731
    ctx.note("PG W3 split, backup on: " + B.split_text(best(t_d, jobs)))
    ctx.note("PG W3 split, --skip-backup: " + B.split_text(best(t_off, jobs_off)))


def bench_w4(pg, reps=1):
    B, ctx = pg.B, pg.ctx
    B.log("PG W4: 100 × (a new migration, `migratectl up`) vs 100 × psql; median of %d" % reps)
    d = ctx.dir("pg", "w4")
    staged = ctx.dir("pg", "w4", "staged")
    files = ctx.dir("pg", "w4", "psql")
    for i in range(1, 101):
        write_migration(staged, i)
        with open(os.path.join(files, "%d.sql" % i), "w") as f:
            f.write(HISTORY_DDL + "BEGIN;\n" + small_migration(i) + history_insert(i) + "COMMIT;\n")
    # deploy-script style: a shell loop, the same shape for both tools; each round a migration arrives
    ctl_sh = os.path.join(d, "ctl.sh")
    with open(ctl_sh, "w") as f:
        f.write('for v in $(seq 1 100); do n=$(printf %04d $v); cp "$3"/${n}_* "$4"/ || exit 1; '
                '"$1" --socket "$2" up >/dev/null || exit 1; done\n')
    psql_sh = os.path.join(d, "psql.sh")
    with open(psql_sh, "w") as f:
        f.write('for v in $(seq 1 100); do psql -X -q -v ON_ERROR_STOP=1 "$1" -f "$2/$v.sql" >/dev/null || exit 1; '
                'done\n')
    t_d, t_p = [], []
    for rep in range(reps):
        db = pg.database()
        t_p.append(B.run(["/bin/sh", psql_sh, pg.cluster.conninfo(db), files]).s)
        assert pg.count(db, "history") == 100
        db = pg.database()
        mig = ctx.dir("pg", "w4", "migrations-%d" % rep)
        dm = pg.daemon(db, mig)
        try:
            t_d.append(B.run(["/bin/sh", ctl_sh, ctx.migratectl, dm.sock, staged, mig], capture=True).s)
        finally:
            dm.stop()
        if pg.count(db, "migrated_schema") != 100:
            raise RuntimeError("PG W4: migrated did not apply 100 migrations")
    a, b = statistics.median(t_d), statistics.median(t_p)
    ctx.raw["pg_w4"] = dict(migrated_s=t_d, psql_s=t_p)
    ctx.row("PG W4 100 × (new migration, `migratectl up`), backups on [median of %d]" % reps, B.fmt_s(a),
            "100 × psql, 1 txn each: " + B.fmt_s(b), B.ratio(a, b), "(info)", "")
    ctx.note("PG W1 and W4: every `up` first takes its backup with pg_dump, as by default; psql takes none")


def bench_network_cut(pg):
    """The network-cut test prints how long the job took to complete on another host; this row reports it."""
    B, ctx = pg.B, pg.ctx
    B.log("PG network cut: tests/postgres/test_pg_network.py")
    env = dict(os.environ, MIGRATED_BIN=ctx.migrated, MIGRATECTL_BIN=ctx.migratectl, PYTHONDONTWRITEBYTECODE="1",
               MIGRATIONS_DIR=os.path.join(os.path.dirname(os.path.dirname(HERE)), "migrations"))
    r = B.run([sys.executable, os.path.join(os.path.dirname(HERE), "postgres", "test_pg_network.py")],
              capture=True, env=env, check=False)
    m = re.search(r"on another host in ([0-9.]+) s", r.out)
    if not m:
        ctx.row("PG network cut: not measured", "-", "-", "-", "-", "TODO")
        ctx.note("PG network cut: the test printed no figure (exit %d; it skips without root, ip or netns)" % r.rc)
        return
    ctx.raw["pg_network_cut"] = dict(released_done_elsewhere_s=float(m.group(1)))
    ctx.row("PG network cut mid-migration → job done on another host (server keepalives 1 s × 3)",
            B.fmt_s(float(m.group(1))), "-", "-", "(info)", "")


def bench_pg(ctx, B):
    """Every PostgreSQL row; B is the bench driver's module (Daemon, run, the formatters)."""
    why = pgharness.missing()
    if why:
        ctx.row("PG W1–W4: not run", "-", "-", "-", "-", "TODO")
        ctx.note("PostgreSQL rows not run: missing " + why)
        return
    pg = PgBench(ctx, B)
    try:
        bench_w1_w2(pg)
        bench_w3(pg)
        bench_w4(pg)
        bench_network_cut(pg)
    finally:
        pg.stop()
