#!/bin/sh
# Installs the Debian 12 packages migrated needs: "build" to build and run it (and its man pages),
# "test" to run the whole test suite as well. Installs only what is missing, so a second run needs
# no network. Not root: it runs itself again through packaging/as-root.sh (sudo when there is one).
# When another package manager holds the dpkg lock (unattended-upgrades on a freshly booted box),
# it waits for it, saying so, up to $MIGRATED_APT_LOCK_TIMEOUT seconds (default 1800).
# "--wait-lock-only" does only that wait.
set -eu

build_pkgs="gcc pkg-config meson ninja-build libsqlite3-dev libsystemd-dev libevent-dev libjansson-dev
libinih-dev libmd-dev libpq-dev sqlite3 scdoc"
# the systemd suites (a user manager in namespaces: systemd, unshare from util-linux), the
# authorization tests (useradd and groupadd from passwd, setpriv) and the mutation check (git)
test_pkgs="$build_pkgs libcmocka-dev python3 socat systemd dbus-user-session util-linux procps psmisc passwd git"
# packaging (packaging/ci-package.sh) and the example install script (packaging/examples/)
test_pkgs="$test_pkgs debhelper dpkg-dev fakeroot lintian bash-completion man-db jq"
# fuzzing (tests/fuzz/run.sh: clang with its libFuzzer runtime) and tests/valgrind.sh
test_pkgs="$test_pkgs clang libclang-rt-14-dev valgrind"
# the postgres suite (tests/postgres: a real PostgreSQL 15 started by the test; pg_dump and
# pg_restore come with its client) and pgbouncer for the pooler refusal
test_pkgs="$test_pkgs postgresql-15 pgbouncer"
# the shipped units under a system manager (tests/systemd/test_shipped_units.py: systemd-nspawn)
test_pkgs="$test_pkgs systemd-container"
# PostgreSQL's parser for classifying PostgreSQL plans online or breaking (optional in meson)
test_pkgs="$test_pkgs libpg-query-dev"

# the container dependents (tests/dependents/test_containers.py: dockerd started by the test, an
# image made from the host's busybox)
test_pkgs="$test_pkgs docker.io busybox-static"
# the same container cases against podman's Docker-compatible service (runc: crun refuses hybrid cgroups)
test_pkgs="$test_pkgs podman runc"
# the dependents and oracles suites (tests/dependents: a real pm2, tests/oracles: the real dbmate,
# from npm, pinned by their package-lock.json):
# node and npm; Debian's packages unless a node that brings its own npm is installed already
if [ "${1:-build}" = test ] && ! command -v npm >/dev/null 2>&1; then
        test_pkgs="$test_pkgs nodejs npm"
fi

# The locks apt and dpkg take (fcntl locks, as dpkg takes them; flock ones count too).
dpkg_locks="/var/lib/dpkg/lock-frontend /var/lib/dpkg/lock /var/lib/apt/lists/lock /var/cache/apt/archives/lock"

# "PID" of the process holding the lock on file $1 (from /proc/locks), or nothing when it is free.
lock_holder() {
        [ -e "$1" ] || return 0
        set -- "$(stat -L -c %d "$1")" "$(stat -L -c %i "$1")"
        id=$(printf '%02x:%02x:%s' $((($1 >> 8) & 0xfff)) $((($1 & 0xff) | (($1 >> 12) & 0xfff00))) "$2")
        # "1: POSIX  ADVISORY  WRITE 1234 fe:00:4082 0 EOF"; waiters ("1: -> POSIX ...") hold nothing
        awk -v id="$id" '$2 != "->" { for (i = 2; i <= NF; i++) if ($i == id) { print $(i - 1); exit } }' /proc/locks
}

# Waits until no process holds any of the dpkg/apt locks, saying who holds them and that it waits.
wait_for_dpkg_lock() {
        timeout=${MIGRATED_APT_LOCK_TIMEOUT:-1800}
        start=$(date +%s)
        said=""
        while :; do
                busy=""
                for f in $dpkg_locks; do
                        pid=$(lock_holder "$f")
                        if [ -n "$pid" ]; then
                                busy=$f
                                break
                        fi
                done
                [ -z "$busy" ] && break
                if [ "$said" != "$busy $pid" ]; then
                        name=$(cat "/proc/$pid/comm" 2>/dev/null || echo "?")
                        echo "Waiting for $name (pid $pid) to release $busy (another package manager is" \
                             "running, e.g. unattended-upgrades after boot; up to ${timeout}s)..." >&2
                        said="$busy $pid"
                fi
                if [ $(($(date +%s) - start)) -ge "$timeout" ]; then
                        echo "$busy is still held by pid $pid after ${timeout}s: let it finish (or stop it), then run $0 again" >&2
                        exit 1
                fi
                sleep 1
        done
        [ -n "$said" ] && echo "The package manager's lock is free: going on." >&2
        return 0
}

case "${1:-build}" in
build) pkgs=$build_pkgs ;;
test) pkgs=$test_pkgs ;;
--wait-lock-only) wait_for_dpkg_lock; exit 0 ;;
*) echo "usage: $0 [build|test|--wait-lock-only]" >&2; exit 2 ;;
esac

missing=""
for p in $pkgs; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
        echo "missing packages:$missing; installing them as root" >&2
        exec "$(dirname "$0")/as-root.sh" "$0" "$@"
fi
echo "Installing:$missing"
export DEBIAN_FRONTEND=noninteractive
wait_for_dpkg_lock
# apt waits too, should another one take the lock between our look and its start
lock_wait="-o DPkg::Lock::Timeout=${MIGRATED_APT_LOCK_TIMEOUT:-1800}"
# shellcheck disable=SC2086
apt-get $lock_wait update -qq
# shellcheck disable=SC2086
apt-get $lock_wait install -y -qq --no-install-recommends $missing >/dev/null
