#!/bin/bash
# The transcript on README.md's first screen, produced by running it: a real migrated on a fresh
# database with two of the example migrations and a third one that fails, and migratectl's status,
# up with its progress, and the failure's message. Paths are shown relative to the demo directory.
#   tests/readme-transcript.sh           print it
#   tests/readme-transcript.sh --update  write it into README.md, between its transcript markers
# tests/install/test_readme_transcript.py checks that README.md still shows what this prints, up to
# times, durations and job ids. MIGRATED_BIN and MIGRATECTL_BIN name the binaries (default: build/).
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD
migrated=${MIGRATED_BIN:-$src/build/daemon/migrated}
migratectl=${MIGRATECTL_BIN:-$src/build/client/migratectl}

tmp=$(mktemp -d /tmp/migrated-transcript.XXXXXX)
pid=""
cleanup() {
        [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
        rm -rf "$tmp"
}
trap cleanup EXIT

mkdir "$tmp/migrations"
cp "$src"/migrations/0001_* "$src"/migrations/0002_* "$tmp/migrations/"
cat >"$tmp/migrations/0003_add_alarms.up.sql" <<'SQL'
ALTER TABLE sleep_sessions ADD COLUMN alarm_at TEXT;
CREATE TABLE alarms (id INTEGER PRIMARY KEY, device_id INTEGER NOT NULL, at TEXT NOT NULL);
CREATE INDEX alarms_by_device ON alarms (device);
SQL
cat >"$tmp/migrations/0003_add_alarms.down.sql" <<'SQL'
DROP TABLE alarms;
ALTER TABLE sleep_sessions DROP COLUMN alarm_at;
SQL

export MIGRATED_SOCKET=$tmp/migrated.sock
STATE_DIRECTORY=$tmp/state "$migrated" --database "$tmp/sleep.db" --migrations "$tmp/migrations" \
        --socket "$MIGRATED_SOCKET" >"$tmp/migrated.log" 2>&1 &
pid=$!
# the daemon answers once its socket accepts (a bound: 100 tries)
for i in $(seq 100); do
        "$migratectl" status >/dev/null 2>&1 && break
        if ! kill -0 "$pid" 2>/dev/null || [ "$i" = 100 ]; then
                cat "$tmp/migrated.log" >&2
                exit 1
        fi
        sleep 0.1
done

transcript() {
        for cmd in "status" "up"; do
                echo "\$ migratectl $cmd"
                # shellcheck disable=SC2086
                "$migratectl" $cmd 2>&1 || printf '$ echo $?\n%d\n' $?
        done | sed -e "s|$tmp/||g"
}

case "${1:-}" in
"") transcript ;;
--update)
        out=$(transcript)
        python3 - "$out" <<'PY'
import sys
begin, end = "<!-- transcript: tests/readme-transcript.sh -->\n```console\n", "```\n<!-- /transcript -->"
with open("README.md") as f:
    text = f.read()
a = text.index(begin) + len(begin)
b = text.index(end, a)
with open("README.md", "w") as f:
    f.write(text[:a] + sys.argv[1] + "\n" + text[b:])
PY
        ;;
*) echo "usage: $0 [--update]" >&2; exit 2 ;;
esac
