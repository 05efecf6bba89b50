#!/bin/bash
# The whole test suite: unit and integration tests in a warnings-as-errors build, then again in an
# AddressSanitizer/UndefinedBehaviorSanitizer build. Ends with one "N passed, N failed" line.
set -euo pipefail
cd "$(dirname "$0")/.."

packaging/install-deps.sh test

run_suite() { # name, meson options...
        local dir=$1
        shift
        if [ ! -f "$dir/build.ninja" ]; then
                meson setup "$dir" -Dtests=enabled -Dwerror=true "$@" >/dev/null
        fi
        ninja -C "$dir"
        meson test -C "$dir" --print-errorlogs --num-processes 1 || true
}

run_suite build-test --buildtype=debugoptimized
run_suite build-asan --buildtype=debug -Db_sanitize=address,undefined -Db_lundef=false

python3 - build-test build-asan <<'PY'
import json, sys
passed = failed = skipped = 0
for d in sys.argv[1:]:
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
