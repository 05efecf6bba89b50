#!/bin/sh
# SPDX-License-Identifier: MIT
# Builds the Debian package from this tree: packaging/build-deb.sh [OUTDIR] (default: build-deb/).
#
# debian/ lives in packaging/debian so that it is not in the way of the project's own layout.
# The tree (tracked files and new files git does not ignore, as they are now, so uncommitted work
# is packaged too) is copied into a scratch directory, packaging/debian becomes its debian/, and
# dpkg-buildpackage -us -uc -b runs there. The .deb (with .buildinfo, .changes and the debug
# symbols package) ends up in OUTDIR; the scratch directory is removed.
# Build dependencies: packaging/install-deps.sh test, or the Build-Depends of debian/control.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/build-deb}
mkdir -p "$out"
out=$(cd "$out" && pwd)

version=$(sed -n "s/^ *version *: *'\([^']*\)'.*/\1/p" "$root/meson.build" | head -n 1)
deb_version=$(dpkg-parsechangelog -l "$root/packaging/debian/changelog" -S Version)
case $deb_version in
"$version" | "$version"-* | "$version"+*) ;;
*)
        echo "build-deb: packaging/debian/changelog is at $deb_version but meson.build at $version;" \
                "add a changelog entry (dch -v $version)" >&2
        exit 1
        ;;
esac

scratch=$(mktemp -d "${TMPDIR:-/tmp}/migrated-deb.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
src=$scratch/migrated-$version
mkdir "$src"

cd "$root"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        # files deleted in the work tree but still in the index are left out
        # shellcheck disable=SC2016 # $f is for the inner shell
        git ls-files -z --cached --others --exclude-standard |
                xargs -0 sh -c 'for f; do [ -f "$f" ] || [ -L "$f" ] && printf "%s\0" "$f"; done' sh |
                tar --null -T - -cf - | tar -xf - -C "$src"
else
        tar --exclude='./build*' --exclude='./debian' --exclude='./.git' -cf - . | tar -xf - -C "$src"
fi
rm -rf "$src/debian"
cp -R "$root/packaging/debian" "$src/debian"

echo "build-deb: building migrated $deb_version in $src"
(cd "$src" && dpkg-buildpackage -us -uc -b -j"$(nproc)")

rm -f "$out"/migrated*_"$deb_version"_*
for f in "$scratch"/*.deb "$scratch"/*.ddeb "$scratch"/*.buildinfo "$scratch"/*.changes; do
        [ -e "$f" ] && mv "$f" "$out/"
done
echo "build-deb: done:"
ls -1 "$out"/migrated*_"$deb_version"_*
