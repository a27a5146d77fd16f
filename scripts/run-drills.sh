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
W=$(mktemp -d /tmp/qvdrill-XXXXXX)
NS=(qvd$$a qvd$$b)
ADDR=(10.233.0.1 10.233.0.2)

cleanup() {
	for i in 0 1; do
		[ -f $W/$i/pid ] && kill "$(cat $W/$i/pid)" 2>/dev/null
		for p in $(ip netns pids ${NS[$i]} 2>/dev/null); do kill -9 $p 2>/dev/null; done
	done
	sleep 0.5
	for i in 0 1; do ip netns del ${NS[$i]} 2>/dev/null; done
	rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
die() { echo "run-drills.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root"
[ -x $Q ] && [ -x $BUILD/qvisord ] || die "build first (make O=... all)"

for i in 0 1; do ip netns add ${NS[$i]} || die "netns"; done
ip link add ${NS[0]} type veth peer name ${NS[1]} || die "veth"
for i in 0 1; do
	ip link set ${NS[$i]} netns ${NS[$i]}
	ip -n ${NS[$i]} addr add ${ADDR[$i]}/24 dev ${NS[$i]}
	ip -n ${NS[$i]} link set lo up
	ip -n ${NS[$i]} link set ${NS[$i]} up
	mkdir -p $W/$i
	ip netns exec ${NS[$i]} setsid $BUILD/qvisord --state-dir $W/$i/state --run-dir $W/$i/run \
		--socket $W/$i/sock --no-kvm-probe --cache-dir $W/$i >$W/$i/log 2>&1 </dev/null &
	echo $! >$W/$i/pid
	disown
done
for i in 0 1; do
	for t in $(seq 100); do $Q -s $W/$i/sock host info >/dev/null 2>&1 && break; sleep 0.1; done
done
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
