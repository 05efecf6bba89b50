#!/bin/bash
# The whole test suite: unit and integration tests in a warnings-as-errors build, then again in an
# AddressSanitizer/UndefinedBehaviorSanitizer build, then fuzzing, valgrind, the package and the
# mutation check. Ends with one "N passed, N failed, N skipped" line. Under CI=true every suite is
# mandatory: a test that cannot run (no root, no systemd, a missing tool) fails, naming what is
# missing, instead of being skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

packaging/install-deps.sh test

run_suite() { # build dir, meson test options, meson setup options...
        local dir=$1 test_opts=$2
        shift 2
        if [ ! -f "$dir/build.ninja" ]; then
                meson setup "$dir" -Dtests=enabled -Dwerror=true "$@" >/dev/null
        fi
        ninja -C "$dir"
        # shellcheck disable=SC2086
        meson test -C "$dir" --print-errorlogs --num-processes 1 $test_opts || true
}

# The crash, dependents, oracles, postgres and install suites are heavy and about the daemon's
# logic or the install path, not its memory: once, in the plain build.
run_suite build-test "" --buildtype=debugoptimized
run_suite build-asan "--no-suite crash --no-suite dependents --no-suite oracles --no-suite postgres --no-suite install" --buildtype=debug -Db_sanitize=address,undefined -Db_lundef=false

# Fuzzing (libFuzzer, 60 s per target) and the integration tests with the daemon under valgrind;
# each counts as one test below (NAME=OK or NAME=FAIL).
extra_results=()
# Each step's output also goes to build-test/extra-logs/NAME.log, so the summary at the end can
# repeat what failed where a reader of only the last lines will see it.
mkdir -p build-test/extra-logs
run_extra() { # name, command...
        local name=$1
        shift
        if "$@" 2>&1 | tee "build-test/extra-logs/$name.log"; then
                extra_results+=("$name=OK")
        else
                extra_results+=("$name=FAIL")
        fi
}
run_extra fuzz tests/fuzz/run.sh 60
run_extra valgrind tests/valgrind.sh
# The Debian package: build, lintian, install, checks of what it installed, purge.
run_extra packaging packaging/ci-package.sh
# The mutation check: every planted defect of tests/mutants/ caught by its tests (plain build
# only, once; a few minutes). MIGRATED_MUTANTS=rotate:N runs N of them, chosen by the date.
case "${MIGRATED_MUTANTS:-all}" in
rotate:*) run_extra mutants tests/mutants/run.py --rotate "${MIGRATED_MUTANTS#rotate:}" ;;
*) run_extra mutants tests/mutants/run.py ;;
esac

python3 - build-test build-asan "${extra_results[@]}" <<'PY'
import json, re, sys
passed = failed = skipped = 0
for d in sys.argv[1:]:
    if "=" in d:
        name, r = d.split("=", 1)
        if r == "OK":
            passed += 1
        else:
            failed += 1
            print(f"FAILED: {name}")
            # the lines that say what failed, from that step's log
            try:
                with open(f"build-test/extra-logs/{name}.log", errors="replace") as f:
                    said = [l.rstrip() for l in f
                            if re.search(r"crash|FAIL|ERROR|SUMMARY|runtime error|survived|[Ee]rror:", l)]
            except OSError:
                said = []
            for l in said[:12]:
                print(f"    {l[:200]}")
        continue
    with open(f"{d}/meson-logs/testlog.json") as f:
        for line in f:
            t = json.loads(line)
            r = t["result"]
            if r in ("OK", "EXPECTEDFAIL"):
                passed += 1
            elif r == "SKIP":
                skipped += 1
            else:
                failed += 1
                print(f"FAILED ({d}): {t['name']} [{r}]")
print(f"total: {passed} passed, {failed} failed, {skipped} skipped")
sys.exit(1 if failed or passed == 0 else 0)
PY
