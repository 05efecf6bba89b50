#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Online vs stop/start, in the same run: one additive migration (a table, a nullable column, an
index on 20 000 rows) with two dependent writers (tests/systemd/writer.py as exec: dependents,
inserting every 20 ms in WAL mode). For each mode (online = auto, online = never) over JOBS jobs:
downtime_ms (the job's window with the units not serving; 0 when none was stopped) and the
longest gap any writer saw between two acknowledged inserts (its worst stall). Prints a table
and, with --json FILE, the figures. Run standalone:
    MIGRATED_BIN=… MIGRATECTL_BIN=… python3 tests/bench/online.py [--json FILE]"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "dependents"))

import harness as H  # noqa: E402
import deplib as D  # noqa: E402

JOBS = 5


def stall_ms(log, since):
    ts = [t for kind, _, t in log.records() if kind == "ack" and t >= since]
    return max((b - a for a, b in zip(ts, ts[1:])), default=0.0) * 1000.0


def run_mode(tmp, online):
    db = os.path.join(tmp, "app.sqlite")
    D.create_db(db)
    c = H.db_connect(db)
    c.execute("CREATE TABLE devices (id INTEGER PRIMARY KEY, serial TEXT)")
    c.executemany("INSERT INTO devices (serial) VALUES (?)", (("dev-%05d" % i,) for i in range(20000)))
    c.commit()
    c.close()
    mig = {v: ("add_%d" % v, "CREATE TABLE t%d (id INTEGER PRIMARY KEY, v TEXT);\n"
                             "ALTER TABLE devices ADD COLUMN c%d INTEGER;\n"
                             "CREATE INDEX devices_c%d ON devices (c%d);\n" % (v, v, v, v), None)
           for v in range(1, JOBS + 1)}
    mdir = H.write_migrations(os.path.join(tmp, "migrations"), mig)
    logs, text = [], ""
    stops = []
    for name in ("w1", "w2"):
        log = H.WriterLog(os.path.join(tmp, name + ".acks"))
        pidfile = os.path.join(tmp, name + ".pid")
        bodies = {"start": "setsid %s %s %s %s %s </dev/null >/dev/null 2>&1 &\necho $! > %s\n"
                           % (D.PYTHON, D.WRITER, db, log.path, name, pidfile),
                  "stop": "kill -TERM \"$(cat %s)\"\n" % pidfile,
                  "check": "test -s %s && kill -0 \"$(cat %s)\" 2>/dev/null\n" % (pidfile, pidfile)}
        text += "[exec.%s]\n" % name
        for verb, body in bodies.items():
            p = os.path.join(tmp, "%s-%s.sh" % (name, verb))
            with open(p, "w") as f:
                f.write("#!/bin/sh\n" + body)
            os.chmod(p, 0o755)
            text += "%s = %s\n" % (verb, p)
        stops.append(os.path.join(tmp, name + "-stop.sh"))
        subprocess.run(["sh", os.path.join(tmp, name + "-start.sh")], check=True)
        log.wait_acks(5)
        logs.append(log)
    conf = os.path.join(tmp, "migrated.conf")
    with open(conf, "w") as f:
        f.write("[database]\npath = %s\n[migrations]\ndirectory = %s\n[units]\nunits = exec:w1 exec:w2\n"
                "online = %s\n" % (db, mdir, "auto" if online else "never") + text)
    d = H.Daemon(tmp, None, None, config=conf)
    d.start()
    jobs = []
    try:
        for v in range(1, JOBS + 1):
            for log in logs:
                log.wait_acks(log.acks_since_last_start() + 5)
            t0 = D.now()
            r = d.ctl("up", "--to", str(v), timeout=120)
            if r.rc != 0:
                raise SystemExit("up --to %d failed: %r\n%s" % (v, r, d.log()))
            res = r.json
            for log in logs:
                log.wait_acks(log.acks_since_last_start() + 5)
            jobs.append(dict(version=v, kept_running=bool(res.get("dependents_kept_running")),
                             downtime_ms=res.get("downtime_ms", 0) if not res.get("dependents_kept_running") else 0,
                             stall_ms=max(stall_ms(log, t0) for log in logs),
                             lock_ms=(res.get("online") or {}).get("lock_ms")))
    finally:
        d.stop()
        for s in stops:
            subprocess.run(["sh", s], stderr=subprocess.DEVNULL)
    return jobs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json")
    args = ap.parse_args()
    out = {}
    for mode, online in (("online", True), ("stop_start", False)):
        with tempfile.TemporaryDirectory(prefix="migrated-bench-online-") as tmp:
            out[mode] = run_mode(tmp, online)
    print("%-34s %14s %14s" % ("1 additive migration, 2 writers", "online", "stop/start"))
    for key, label in (("downtime_ms", "downtime (units not serving), ms"), ("stall_ms", "worst writer stall, ms")):
        print("%-34s %14.1f %14.1f" % (label, statistics.median(j[key] for j in out["online"]),
                                       statistics.median(j[key] for j in out["stop_start"])))
    print("(median of %d jobs each; every online job kept the writers running: %s)"
          % (JOBS, all(j["kept_running"] for j in out["online"])))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
