#!/bin/bash
# SPDX-License-Identifier: MIT
# The packaging step of CI (tests/run-all.sh runs it): builds the Debian package from this tree,
# lints it, installs it on this machine, checks what it installed (programs, group, directories,
# conffile, man pages, completion, units with systemd-analyze verify, nothing enabled), runs the
# installed daemon with the installed example configuration and the installed example install
# script, and purges the package again (unless it was installed before). Needs root and the
# packages of "packaging/install-deps.sh test". Exits 0 when every check passed.
#
#   packaging/ci-package.sh [OUTDIR]     (default: build-deb/; the .deb and the build log stay there)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

out=${1:-build-deb}
mkdir -p "$out"
out=$(cd "$out" && pwd)
log=$out/build.log
t0=$SECONDS
checks=0

ok() {
        checks=$((checks + 1))
        printf 'ok %d - %s\n' "$checks" "$*"
}
fail() {
        printf 'FAILED: %s\n' "$*" >&2
        exit 1
}

work=$(mktemp -d "${TMPDIR:-/tmp}/migrated-ci-package.XXXXXX")
daemon_pid=
cleanup() {
        if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then
                kill "$daemon_pid" 2>/dev/null || true
                wait "$daemon_pid" 2>/dev/null || true
        fi
        rm -rf "$work"
}
trap cleanup EXIT

[ "$(id -u)" = 0 ] || fail "installing the package needs root (sudo $0)"
packaging/install-deps.sh test

# --- build ----------------------------------------------------------------------------------------
version=$(dpkg-parsechangelog -l packaging/debian/changelog -S Version)
arch=$(dpkg --print-architecture)
deb=$out/migrated_${version}_${arch}.deb
if ! packaging/build-deb.sh "$out" >"$log" 2>&1; then
        tail -n 60 "$log" >&2
        fail "dpkg-buildpackage failed (whole log: $log)"
fi
[ -f "$deb" ] || fail "no $deb after the build"
ok "dpkg-buildpackage -us -uc -b built $(basename "$deb") ($((SECONDS - t0)) s)"

# --- lintian: errors fail; warnings are shown ------------------------------------------------------
if ! lintian --fail-on error --display-info "$deb" >"$work/lintian" 2>&1; then
        cat "$work/lintian" >&2
        fail "lintian found errors"
fi
grep -v '^running with root privileges' "$work/lintian" || true
ok "lintian: $(grep -c '^E:' "$work/lintian" || true) errors, $(grep -c '^W:' "$work/lintian" || true) warnings," \
        "$(grep -c '^I:' "$work/lintian" || true) infos"

# --- the man pages in the package render without warnings ------------------------------------------
dpkg-deb -x "$deb" "$work/pkg"
for page in man1/migratectl.1 man8/migrated.8 man5/migrated.conf.5; do
        f=$work/pkg/usr/share/man/$page.gz
        [ -f "$f" ] || fail "the package has no /usr/share/man/$page.gz"
        MANWIDTH=80 man --warnings -l "$f" 2>"$work/man.err" >"$work/man.txt" || fail "man -l $page failed"
        [ ! -s "$work/man.err" ] || fail "man -l $page: $(cat "$work/man.err")"
done
MANWIDTH=80 man -l "$work/pkg/usr/share/man/man1/migratectl.1.gz" 2>/dev/null >"$work/man.txt"
for word in lock-check restore baseline MIGRATED_SOCKET 'EXIT STATUS'; do
        grep -q -- "$word" "$work/man.txt" || fail "migratectl(1) does not mention $word"
done
ok "man -l renders migratectl(1), migrated(8), migrated.conf(5) without warnings"

# --- install -----------------------------------------------------------------------------------------
was_installed=false
if dpkg-query -W -f='${Status}' migrated 2>/dev/null | grep -q 'install ok installed'; then
        was_installed=true
fi
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -q --reinstall "$deb" >"$work/apt" 2>&1; then
        cat "$work/apt" >&2
        echo "apt-get could not install it; trying dpkg -i and apt-get -f install" >&2
        dpkg -i "$deb" || apt-get -f install -y -q || fail "cannot install $deb"
fi
dpkg-query -W -f='${Status} ${Version}\n' migrated | grep -qx "install ok installed $version" ||
        fail "migrated $version is not installed after apt-get install"
ok "apt-get install ./$(basename "$deb")"

# --- what it installed --------------------------------------------------------------------------
[ "$(migratectl --version)" = "migratectl $version" ] || fail "migratectl --version says '$(migratectl --version)'"
[ "$(migrated --version)" = "migrated $version" ] || fail "migrated --version says '$(migrated --version)'"
if [ "$(command -v migratectl)" != /usr/bin/migratectl ] || [ "$(command -v migrated)" != /usr/sbin/migrated ]; then
        fail "the programs are not /usr/bin/migratectl and /usr/sbin/migrated"
fi
ok "installed migratectl --version and migrated --version run ($version)"

getent group migrated >/dev/null || fail "the package did not create the group migrated"
for d in /run/migrated /var/lib/migrated /var/backups/migrated; do
        [ -d "$d" ] || fail "the package did not create $d (tmpfiles.d)"
done
ok "the system group migrated and the tmpfiles.d directories exist"

dpkg-query -W -f='${Conffiles}\n' migrated | grep -q '^ /etc/migrated/example.conf ' ||
        fail "/etc/migrated/example.conf is not a conffile"
enabled=$(find /etc/systemd/system -name 'migrated@*' 2>/dev/null || true)
[ -z "$enabled" ] || fail "installing enabled units: $enabled"
ok "/etc/migrated/example.conf is a conffile; no unit was enabled"

if grep -qs '^path-exclude=/usr/share/man' /etc/dpkg/dpkg.cfg.d/*; then
        # a minimal image that drops man pages at install (dpkg path-exclude): man -l above suffices
        ok "man pages are excluded from installs on this machine (dpkg path-exclude): not checked with man"
else
        for page in migratectl 'migrated.conf' migrated; do
                MANPAGER=cat MANWIDTH=80 man "$page" >"$work/man.txt" 2>"$work/man.err" ||
                        fail "man $page: $(cat "$work/man.err")"
                grep -q 'SEE ALSO' "$work/man.txt" || fail "man $page printed no page"
        done
        ok "man migratectl, man migrated.conf and man migrated work"
fi

# systemd-analyze verify works offline: the templates (it checks an instance of each), and
# instances under their own names, as migrated@NAME would load them. Any message is a failure.
unit_dir=$(pkg-config --variable=systemdsystemunitdir systemd 2>/dev/null || echo /lib/systemd/system)
mkdir "$work/units"
for u in service socket; do
        [ -f "$unit_dir/migrated@.$u" ] || fail "no $unit_dir/migrated@.$u"
        cp "$unit_dir/migrated@.$u" "$work/units/migrated@ci-test.$u"
done
if ! systemd-analyze verify "$unit_dir/migrated@.service" "$unit_dir/migrated@.socket" \
        "$work/units/migrated@ci-test.service" "$work/units/migrated@ci-test.socket" >"$work/verify" 2>&1 ||
        [ -s "$work/verify" ]; then
        cat "$work/verify" >&2
        fail "systemd-analyze verify"
fi
ok "systemd-analyze verify: migrated@.service, migrated@.socket and an instance of each"

# Bash completion: loaded on demand by bash-completion, it completes commands and options.
completion=$(bash -c '
        source /usr/share/bash-completion/bash_completion
        _completion_loader migratectl
        complete -p migratectl >/dev/null || exit 1
        complete_line() {
                COMP_LINE=$1 COMP_POINT=${#1}
                read -r -a COMP_WORDS <<<"$1"
                COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
                COMPREPLY=()
                _migratectl
                printf "%s " "${COMPREPLY[@]}"
        }
        complete_line "migratectl lo"
        complete_line "migratectl up --dr"' 2>&1) ||
        fail "bash completion for migratectl is not loaded: $completion"
[ "$completion" = "lock-check --dry-run " ] || fail "bash completion completed '$completion'"
ok "bash completion for migratectl loads and completes"

# --- the installed daemon, with the installed example configuration and install script -------
mkdir "$work/live" "$work/release"
cp "$root"/migrations/000[1-3]_* "$work/live/"
cp "$root"/migrations/* "$work/release/"
sock=$work/migrated.sock
# the example's paths and units are a free-sleep box's: the flags point them here
migrated --config /etc/migrated/example.conf --database "$work/db.sqlite" --migrations "$work/live" \
        --socket "$sock" --units "" --auto-up >"$work/daemon.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 100); do
        [ -S "$sock" ] && break
        kill -0 "$daemon_pid" 2>/dev/null || break
        sleep 0.1
done
[ -S "$sock" ] || fail "the installed migrated did not start with /etc/migrated/example.conf: $(cat "$work/daemon.log")"
migratectl --socket "$sock" wait --timeout 30 >/dev/null || fail "migratectl wait: the example migrations 1-3 were not applied"
if ! sh /usr/share/doc/migrated/examples/install-migrations.sh -t 60 -s "$sock" "$work/release" >"$work/install" 2>&1; then
        cat "$work/install" >&2
        fail "the installed install-migrations.sh failed"
fi
migratectl --socket "$sock" status --check >/dev/null || fail "migratectl status --check after the install script"
latest=$(find "$root/migrations" -name '*.up.sql' -printf '%f\n' | sed 's|^0*\([0-9]*\)_.*|\1|' | sort -n | tail -n 1)
migratectl --socket "$sock" --json status | grep -q "\"current_version\": *$latest\b" ||
        fail "the database is not at version $latest"
kill "$daemon_pid"
wait "$daemon_pid" || fail "migrated did not exit 0 on SIGTERM: $(cat "$work/daemon.log")"
daemon_pid=
ok "installed migrated + example.conf + install-migrations.sh: migrations 4-$latest applied, clean stop"

# --- remove it again ------------------------------------------------------------------------------
if $was_installed; then
        ok "migrated was installed before this check: it stays installed ($version)"
else
        apt-get purge -y -q migrated >"$work/apt" 2>&1 || { cat "$work/apt" >&2; fail "apt-get purge migrated"; }
        for f in /usr/sbin/migrated /usr/bin/migratectl /etc/migrated/example.conf "$unit_dir/migrated@.service"; do
                [ ! -e "$f" ] || fail "$f is still there after apt-get purge"
        done
        ok "apt-get purge migrated removes it"
fi

echo "packaging: $checks checks passed in $((SECONDS - t0)) s"
