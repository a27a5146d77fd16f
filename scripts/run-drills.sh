#!/bin/bash
# SPDX-License-Identifier: MIT
# Run shipped drills (scripts/drills/*.json) against two throwaway "hosts":
# two named network namespaces joined by a veth pair, one qvisord in each.
# The drills name them through environment variables:
#   QV_DRILL_A, QV_DRILL_B          daemon URIs (unix://...)
#   QV_DRILL_NS_A, QV_DRILL_NS_B    netns names
#   QV_DRILL_DEV_A, QV_DRILL_DEV_B  each host's end of the veth
#   QV_GUEST_DIR                    the test guest (default ./build/guest)
#
#   QV_DRILL_DISK                   raw image for storage-copy.json (created, 64 MiB)
# usage: scripts/run-drills.sh [DRILL.json ...]
#   (default: baseline high-dirty storage-copy cancel dest-qemu-kill link-cut)
# env: QV_BUILD_DIR (default ./build), QV_DRILL_REPORTS (default /tmp/qv-drill-reports)
# Exit status: non-zero if any drill failed. Needs root.
set -u
BUILD=${QV_BUILD_DIR:-$PWD/build}
export QV_GUEST_DIR=${QV_GUEST_DIR:-$PWD/build/guest}
REPORTS=${QV_DRILL_REPORTS:-/tmp/qv-drill-reports}
Q=$BUILD/qvisor
die() { echo "run-drills.sh: $*" >&2; exit 1; }
. "$(dirname "$0")/twohosts.sh"
twohosts_up qvd 10.233.0
export QV_DRILL_A=unix://$W/0/sock QV_DRILL_B=unix://$W/1/sock
export QV_DRILL_NS_A=${NS[0]} QV_DRILL_NS_B=${NS[1]} QV_DRILL_DEV_A=${NS[0]} QV_DRILL_DEV_B=${NS[1]}

D=$(dirname "$0")/drills
[ $# -gt 0 ] || set -- $D/baseline.json $D/high-dirty.json $D/storage-copy.json $D/cancel.json \
	$D/dest-qemu-kill.json $D/link-cut.json
export QV_DRILL_DISK=${QV_DRILL_DISK:-$W/disk.raw}
truncate -s 64M "$QV_DRILL_DISK"
rc=0
for f in "$@"; do
	name=$(basename "$f" .json)
	echo "=== $name"
	$Q drill run "$f" --report "$REPORTS/$name" || rc=1
	# leave no VM behind for the next drill
	for i in 0 1; do
		for vm in $($Q -s $W/$i/sock --json list 2>/dev/null | grep -o '"name": *"[^"]*"' | cut -d'"' -f4); do
			$Q -s $W/$i/sock stop --force "$vm" >/dev/null 2>&1
			$Q -s $W/$i/sock undefine "$vm" >/dev/null 2>&1
		done
	done
done
exit $rc
