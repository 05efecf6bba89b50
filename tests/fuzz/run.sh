#!/bin/bash
# SPDX-License-Identifier: MIT
# Builds the libFuzzer targets in build-fuzz (clang, AddressSanitizer + UndefinedBehaviorSanitizer)
# and runs each for SECONDS (default 60) on a scratch copy of its seed corpus (the repository's
# corpus is never written). Prints one line per target:
#   fuzz <target>: N executions in S s, 0 crashes
# and exits non-zero if any target crashed, leaked, timed out or ran out of memory. Reproducers go
# to build-fuzz/artifacts/, full logs to build-fuzz/fuzz-logs/. Replay one with
#   build-fuzz/tests/fuzz/<target> build-fuzz/artifacts/<target>-crash-...
set -euo pipefail
cd "$(dirname "$0")/../.."

seconds=${1:-60}
if ! [[ $seconds =~ ^[1-9][0-9]*$ ]]; then
        echo "usage: $0 [SECONDS]" >&2
        exit 2
fi

build="build-fuzz"
targets=(fuzz-protocol fuzz-migdir fuzz-config fuzz-migratectl-args fuzz-drift-sql)

if ! command -v clang >/dev/null; then
        echo "fuzz: clang is missing (packaging/install-deps.sh test installs it)" >&2
        exit 1
fi
if [ ! -f "$build/build.ninja" ] &&
        ! out=$(CC=clang meson setup "$build" --buildtype=debugoptimized -Dtests=enabled -Dfuzz=true \
                -Db_sanitize=address,undefined -Db_lundef=false 2>&1); then
        echo "$out"
        rm -rf "$build"
        exit 1
fi
if ! out=$(ninja -C "$build" "${targets[@]/#/tests/fuzz/}" 2>&1); then
        echo "$out"
        exit 1
fi

artifacts=$build/artifacts
logs=$build/fuzz-logs
scratch=$build/fuzz-scratch
mkdir -p "$artifacts" "$logs"
rm -rf "$scratch"

# UBSan reports are findings too: stop at the first one, with a stack trace.
export UBSAN_OPTIONS=halt_on_error=1:abort_on_error=1:print_stacktrace=1:print_summary=1
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}

failed=0
for t in "${targets[@]}"; do
        corpus=$scratch/$t/corpus
        mkdir -p "$corpus" "$scratch/$t/tmp"
        cp -r "tests/fuzz/corpus/$t/." "$corpus/"
        args=(-max_total_time="$seconds" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048
              -artifact_prefix="$artifacts/$t-")
        [ "$t" = fuzz-protocol ] && args+=(-max_len=65600)
        [ -f "tests/fuzz/$t.dict" ] && args+=(-dict="tests/fuzz/$t.dict")

        start=$(date +%s)
        rc=0
        # the outer timeout only guards against a hang libFuzzer itself cannot break
        TMPDIR=$scratch/$t/tmp timeout -k 10 $((seconds + 300)) \
                "$build/tests/fuzz/$t" "${args[@]}" "$corpus" >"$logs/$t.log" 2>&1 || rc=$?
        elapsed=$(($(date +%s) - start))
        execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$logs/$t.log" | tail -n 1)

        if [ "$rc" -eq 0 ] && [ -n "$execs" ]; then
                echo "fuzz $t: $execs executions in $elapsed s, 0 crashes"
                continue
        fi
        failed=1
        artifact=$(sed -n "s/.*Test unit written to //p" "$logs/$t.log" | tail -n 1)
        echo "fuzz $t: ${execs:-?} executions in $elapsed s, 1 crash (exit $rc${artifact:+, reproducer $artifact})"
        # the report: from the first sanitizer or libFuzzer error line on
        awk '/^==[0-9]+==|^[^ ]*: runtime error:|^fuzz-[a-z-]+:|^SUMMARY:|ERROR: libFuzzer/ { p = 1 } p' \
                "$logs/$t.log" | head -n 80 | sed 's/^/    /'
        echo "    (full log: $logs/$t.log)"
done

rm -rf "$scratch"
exit "$failed"
