#!/bin/sh
# SPDX-License-Identifier: MIT
#
# install-migrations.sh: what a package's or an appliance's installer does with migrated. It
# copies the migrations a release ships into the daemon's migrations directory, atomically, then
# asks the daemon to apply them by speaking its socket protocol directly (socat and jq, no
# migratectl), shows the progress, and acts on the outcome.
#
#   install-migrations.sh [-s SOCKET | -i INSTANCE] [-d DIR] [-t SECONDS] [-k] SOURCE_DIR
#
#   SOURCE_DIR   the release's migrations: NNNN_name.up.sql / .down.sql files, or Prisma's
#                <timestamp>_<name>/ directories
#   -s SOCKET    the daemon's socket (default: $MIGRATED_SOCKET, else /run/migrated/migrated.sock)
#   -i INSTANCE  the socket of migrated@INSTANCE.service: /run/migrated/INSTANCE.sock
#   -d DIR       the daemon's migrations directory (default: the one the daemon reports)
#   -t SECONDS   give up waiting for the migration after this long (default 600)
#   -k           keep the new files when the migration fails (default: take them out again)
#
# Exit status, as migratectl's where they overlap:
#   0  the migrations are applied, or there was nothing to apply
#   1  the daemon refused or the migration failed (its error code and message are printed);
#      the database is unchanged and the new files are taken out again (unless -k)
#   2  usage error
#   3  the daemon cannot be reached
#   4  a new file conflicts with an installed one of the same name, or cannot be copied:
#      nothing was installed
#   5  checksum_mismatch: an applied migration's file was edited
#   6  busy or database_in_use: another process holds the database
#   7  no final answer within the timeout: the job may still be running (migratectl status)
#
# Requires: socat, jq, coreutils.
set -eu

prog=install-migrations
request_id=install-1
sock=${MIGRATED_SOCKET:-/run/migrated/migrated.sock}
dir=
timeout_s=600
keep=false

usage() {
        printf 'Usage: ' >&2
        sed -n 's/^#   \{0,1\}//p' "$0" | sed -n '/^install-migrations.sh \[/,/^-k/p' >&2
        exit 2
}

help() { # the comment at the top of this file
        sed -n '4,/^set -eu/{/^set -eu/d;s/^# \{0,1\}//;s/^#$//;p}' "$0"
        exit 0
}

say() { printf '%s: %s\n' "$prog" "$*"; }
fail() { # exit-code message...
        code=$1
        shift
        printf '%s: error: %s\n' "$prog" "$*" >&2
        exit "$code"
}

while getopts s:i:d:t:kh opt; do
        case $opt in
        s) sock=$OPTARG ;;
        i)
                case $OPTARG in
                "" | */*) fail 2 "-i takes an instance name, not '$OPTARG'" ;;
                esac
                sock=/run/migrated/$OPTARG.sock
                ;;
        d) dir=$OPTARG ;;
        t)
                case $OPTARG in
                "" | *[!0-9]*) fail 2 "-t takes whole seconds, not '$OPTARG'" ;;
                esac
                timeout_s=$OPTARG
                ;;
        k) keep=true ;;
        h) help ;;
        *) usage ;;
        esac
done
shift $((OPTIND - 1))
[ $# -eq 1 ] || usage
src=$1
[ -d "$src" ] || fail 2 "$src is not a directory"
[ "$timeout_s" -gt 0 ] || fail 2 "-t must be at least 1 second"
for tool in socat jq timeout; do
        command -v "$tool" >/dev/null 2>&1 || fail 1 "$tool is not installed"
done

work=$(mktemp -d "${TMPDIR:-/tmp}/$prog.XXXXXX")
stage=
# shellcheck disable=SC2317 # called by the trap
cleanup() {
        if [ -n "$stage" ]; then
                rm -rf "$stage"
        fi
        rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# call ID METHOD PARAMS SECONDS: one request on a connection of its own. Prints the daemon's lines
# for ID as they come, up to its final line (result or error), then ends the connection. socat's
# input stays open until the final line is read: closing it right after the request (echo ... |
# socat) is allowed by the protocol, but a reply racing that close can be lost. socat.rc gets
# socat's exit status (124: the timeout).
call() {
        id=$1
        rm -f "$work/final"
        {
                printf '{"id":"%s","method":"%s","params":%s}\n' "$id" "$2" "$3"
                i=0
                while [ ! -e "$work/final" ] && [ "$i" -lt $(($4 * 10)) ]; do
                        sleep 0.1
                        i=$((i + 1))
                done
        } | {
                timeout "$4" socat -t 1 - "UNIX-CONNECT:$sock" 2>"$work/socat.err"
                echo $? >"$work/socat.rc"
        } | {
                while IFS= read -r line; do
                        printf '%s\n' "$line"
                        if printf '%s\n' "$line" | jq -e --arg id "$id" \
                                'type == "object" and .id == $id and (has("result") or has("error"))' \
                                >/dev/null 2>&1; then
                                : >"$work/final"
                        fi
                done
                : >"$work/final"
        }
}

# The final line of a status request.
query_status() {
        call "$prog-status" status '{}' 30 | tail -n 1
}

unreachable() {
        detail=$(sed -n 's/.* E //p' "$work/socat.err" | tail -n 1)
        fail 3 "cannot reach migrated at $sock: ${detail:-it closed the connection without answering}." \
                "Is it running? (systemctl status 'migrated@NAME.socket', or pass -s or -i)"
}

# 1. The daemon must be there before anything is copied; it also says where its migrations are.
status=$(query_status) || true
[ -n "$status" ] || unreachable
if ! printf '%s\n' "$status" | jq -e 'has("result")' >/dev/null 2>&1; then
        fail 1 "migrated refused status: $(printf '%s\n' "$status" | jq -r '.error.code + ": " + .error.message' 2>/dev/null || printf '%s' "$status")"
fi
if [ -z "$dir" ]; then
        dir=$(printf '%s\n' "$status" | jq -r '.result.migrations_dir // empty')
        [ -n "$dir" ] || fail 1 "migrated did not report its migrations directory; pass -d DIR"
fi
[ -d "$dir" ] || fail 4 "the migrations directory $dir does not exist"
from=$(printf '%s\n' "$status" | jq -r '.result.current_version // 0')

# 2. Copy the new migrations next to the old ones: into a hidden staging directory inside the
# migrations directory (the daemon ignores hidden entries; same file system, so each rename is
# atomic), then rename each one in. Up files before down files: a down file alone is an error
# for anyone who looks in between. Identical files already there are skipped; a different file
# of the same name is a conflict, and then nothing is installed.
stage=$(mktemp -d "$dir/.install-XXXXXX")
: >"$work/new"
for path in "$src"/*; do
        [ -e "$path" ] || continue
        name=${path##*/}
        case $name in
        [0-9]*_*.up.sql | [0-9]*_*.down.sql) [ -f "$path" ] || continue ;;
        [0-9]*_*) if [ ! -d "$path" ] || [ ! -f "$path/migration.sql" ]; then continue; fi ;;
        *) continue ;;
        esac
        if [ -e "$dir/$name" ]; then
                if [ -f "$path" ] && cmp -s "$path" "$dir/$name"; then
                        continue
                fi
                if [ -d "$path" ] && diff -r -q "$path" "$dir/$name" >/dev/null 2>&1; then
                        continue
                fi
                fail 4 "$dir/$name exists with other content: an installed migration is never replaced;" \
                        "nothing was installed"
        fi
        cp -R "$path" "$stage/$name" || fail 4 "cannot copy $path to $dir; nothing was installed"
        chmod -R u+rwX,go+rX,go-w "$stage/$name"
        printf '%s\n' "$name" >>"$work/new"
done
sync -f "$stage" 2>/dev/null || sync
n_new=0
for pass in up down; do
        while IFS= read -r name; do
                case $pass:$name in
                up:*.down.sql | down:*.up.sql) continue ;;
                down:*.down.sql | up:*) ;;
                *) continue ;; # a Prisma directory went in with the up files
                esac
                if [ -d "$stage/$name" ]; then
                        mv -T "$stage/$name" "$dir/$name"
                else # link(2) never replaces a file that appeared meanwhile
                        ln "$stage/$name" "$dir/$name"
                fi || fail 4 "cannot install $name into $dir"
                printf '%s\n' "$name" >>"$work/installed"
                n_new=$((n_new + 1))
        done <"$work/new"
done
rm -rf "$stage"
stage=
if [ "$n_new" -gt 0 ]; then
        say "installed $n_new new file(s) into $dir"
else
        say "no new migration files (the database is at version $from)"
fi

# Takes the files this run installed out again when the daemon did not apply them: a pending
# migration would keep every service gated on "migratectl wait" from starting. Versions that are
# applied stay. Then a status request, which makes the daemon look again (and opens the gates).
take_back() {
        [ -s "$work/installed" ] || return 0
        if $keep; then
                say "the new files stay in $dir (-k): they are pending now"
                return 0
        fi
        now=$(query_status)
        pending=$(printf '%s\n' "$now" | jq -r '.result.pending[]?.version' 2>/dev/null) || pending=
        if [ -z "$now" ]; then
                say "cannot ask migrated which migrations are pending; the new files stay in $dir"
                return 0
        fi
        removed=0
        while IFS= read -r name; do
                version=$(printf '%s\n' "${name%%_*}" | sed 's/^0*//')
                if printf '%s\n' "$pending" | grep -qx "${version:-0}"; then
                        rm -rf "${dir:?}/$name"
                        removed=$((removed + 1))
                fi
        done <"$work/installed"
        query_status >/dev/null || true
        say "took $removed new file(s) out of $dir again"
}

# 3. Apply: one up request, its event lines as progress, then its one final line. jq turns each
# line into "kind|fields"; lines of other requests (none here) are skipped.
say "applying with migrated at $sock (up to ${timeout_s}s)"
set +e
call "$request_id" up '{}' "$timeout_s" | jq --unbuffered -r --arg id "$request_id" '
        def v: if . == null then "none" else tostring end;
        def one_line: tostring | gsub("[\n\t|]"; " ");
        if type != "object" or .id != $id then "skip|"
        elif has("result") then
                "result|\(.result.status | v)|\(.result.from_version | v)|\(.result.to_version | v)|" +
                "\((.result.applied // []) | length)|\(.result.duration_ms | v)"
        elif has("error") then
                "error|\(.error.code | v)|\(.error.message | one_line)"
        elif .event == "queued" then
                "progress|queued as job \(.job_id), position \(.position)" +
                (if .coalesced then " (joined an identical waiting job)" else "" end)
        elif .event == "started" then
                "progress|job \(.job_id): version \(.from_version) -> \(.to_version), \(.total) migration(s)" +
                (if .atomic then ", all or nothing" else "" end)
        elif .event == "backup" then
                if .phase == "done" then "progress|backup taken: \(.backup.file // .backup.path // "?")"
                else "progress|taking a backup" end
        elif .event == "units" then "progress|\(.phase) units: \(.units | join(", "))"
        elif .event == "unit" then
                "progress|  \(.unit): \(.action)" + (if .ok then "" else " FAILED (\(.outcome))" end) +
                (if .killed then ", killed" else "" end) + " in \(.duration_ms) ms"
        elif .event == "migration" then
                "progress|[\(.index)/\(.total)] \(.phase) \(.version) \(.name)" +
                (if .duration_ms != null then " (\(.duration_ms) ms)" else "" end)
        elif .event == "committed" then "progress|committed at version \(.version)"
        elif .event == "rolled_back" then "progress|rolled back: the database is at version \(.version)"
        else "progress|\(.event)" end' 2>"$work/jq.err" | {
        while IFS= read -r line; do
                kind=${line%%|*}
                rest=${line#*|}
                case $kind in
                progress) say "$rest" ;;
                result)
                        IFS='|' read -r status from to count ms <<EOF
$rest
EOF
                        if [ "$status" = current ]; then
                                say "nothing to apply: the schema is current at version $to"
                        else
                                say "done: version $from -> $to, $count migration(s) applied in $ms ms"
                        fi
                        exit 0
                        ;;
                error)
                        code=${rest%%|*}
                        printf '%s: error: migration failed: %s (code %s)\n' "$prog" "${rest#*|}" "$code" >&2
                        case $code in
                        checksum_mismatch) exit 5 ;;
                        busy | database_in_use) exit 6 ;;
                        *) exit 1 ;;
                        esac
                        ;;
                esac
        done
        exit 100
}
rc=$?
set -e

case $rc in
0) exit 0 ;;
100)
        if [ "$(cat "$work/socat.rc" 2>/dev/null)" = 124 ]; then
                fail 7 "no answer within ${timeout_s}s; the job may still be running, so the new files stay in" \
                        "$dir: see 'migratectl --socket $sock status'"
        fi
        if [ -s "$work/jq.err" ]; then
                fail 1 "migrated sent a line that is not JSON: $(head -n 1 "$work/jq.err")"
        fi
        if grep -q 'E connect' "$work/socat.err" 2>/dev/null; then
                say "the new files stay in $dir"
                unreachable
        fi
        fail 1 "migrated closed the connection before the job's final answer (did it stop?); the new files" \
                "stay in $dir: see 'migratectl --socket $sock status'"
        ;;
*)
        take_back
        exit "$rc"
        ;;
esac
