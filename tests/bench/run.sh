#!/bin/sh
# SPDX-License-Identifier: MIT
# The benchmarks of migrated and migratectl, in one command:
#
#     tests/bench/run.sh [--rev REV] [--only w1,w3,w4,status,downtime,backup,memory,pg,online] [--json FILE] [--keep]
#
# Configures and builds an optimized build of the working tree in build-bench/ (meson, release,
# no tests), compiles the load client (tests/bench/benchtool.c), then runs every workload and
# prints one table: each figure beside a reference measured in the same run, the ratio and the
# target (printed, never asserted). --rev REV benchmarks a commit instead of the working tree
# (git archive REV, built in build-bench-rev/). Needs python3, a C compiler, meson, ninja, the
# sqlite3 CLI; the peer column is dbmate (npm @dbmate/linux-x64, pinned by tests/oracles/package-lock.json,
# installed with `npm ci` on first use like the oracle tests; without node, npm or the registry the
# peer's cells say so and nothing fails); the downtime row needs root and systemd (a private user manager, tests/systemd/)
# and is a TODO row without them; the PostgreSQL rows (tests/bench/bench_pg.py: W1–W4 beside
# psql on a cluster the run starts, and the network-cut times) need root, PostgreSQL 15 and psql,
# and are a TODO row without. About 3 minutes on 2 idle cores, more on a busy machine;
# scratch files (up to ~3 GB for the 1 GiB backup row) live in the build directory and are
# removed at the end, also on failure or Ctrl-C.
set -eu

cd "$(dirname "$0")/../.."
SRC=.
BUILD=build-bench
if [ "${1:-}" = "--rev" ]; then
        [ $# -ge 2 ] || { echo "usage: $0 [--rev REV] [bench.py options]" >&2; exit 2; }
        REV=$2
        shift 2
        rm -rf build-bench-rev
        mkdir -p build-bench-rev/src
        git archive "$REV" | tar -x -C build-bench-rev/src
        SRC=build-bench-rev/src
        BUILD=build-bench-rev/build
        echo "benchmarking $(git rev-parse --short "$REV") ($REV), not the working tree" >&2
fi

SETUP_LOG=$(mktemp)
RECONFIGURE=
[ -f "$BUILD/build.ninja" ] && RECONFIGURE=--reconfigure
meson setup $RECONFIGURE "$BUILD" "$SRC" --buildtype=release -Dtests=disabled >"$SETUP_LOG" 2>&1 ||
        { cat "$SETUP_LOG"; rm -f "$SETUP_LOG"; exit 1; }
mv "$SETUP_LOG" "$BUILD/bench-setup.log"
ninja -C "$BUILD" >"$BUILD/bench-build.log" 2>&1 || { cat "$BUILD/bench-build.log"; exit 1; }
mkdir -p "$BUILD/bench"
${CC:-cc} -O2 -Wall -Wextra -pthread -o "$BUILD/bench/benchtool" tests/bench/benchtool.c

# the interpreter itself, not a wrapper (pyenv shims), so that signals to this pid reach the driver
PY=$(python3 -c 'import sys; print(sys.executable)')
exec "$PY" tests/bench/bench.py --build "$BUILD" "$@"
