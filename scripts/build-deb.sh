#!/bin/bash
# Build the Debian package from this tree (uncommitted changes included):
# copy the sources to build/deb/src/qvisor-VERSION (so dpkg-buildpackage
# neither touches the checkout nor writes into its parent) and build a
# binary package there. Prints the path of the .deb on its last line.
#   usage: scripts/build-deb.sh            (needs dpkg-dev and debhelper:
#                                           bash scripts/install-deps.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=$PWD/build/deb
command -v dpkg-buildpackage >/dev/null && command -v dh >/dev/null ||
	{ echo "build-deb: needs dpkg-dev and debhelper (bash scripts/install-deps.sh)" >&2; exit 1; }
VERSION=$(dpkg-parsechangelog -S Version)
SRC=$OUT/src/qvisor-$VERSION
rm -rf "$OUT/src" "$OUT"/*.deb "$OUT"/*.buildinfo "$OUT"/*.changes
mkdir -p "$SRC"
tar -c --exclude=./build --exclude='./build-*' --exclude=./.git -f - . | tar -x -C "$SRC" -f -
(cd "$SRC" && DEB_BUILD_OPTIONS="parallel=${JOBS:-2} nocheck" \
	dpkg-buildpackage -b -us -uc --no-sign >"$OUT/build.log" 2>&1) ||
	{ tail -n 40 "$OUT/build.log" >&2; echo "build-deb: failed; see $OUT/build.log" >&2; exit 1; }
mv "$OUT"/src/*.deb "$OUT"/src/*.buildinfo "$OUT"/src/*.changes "$OUT"/ 2>/dev/null || true
rm -rf "$OUT/src"
ls "$OUT"/qvisor_"$VERSION"_*.deb
