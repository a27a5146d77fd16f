#!/bin/bash
# SPDX-License-Identifier: MIT
# Bench: evacuating a host (docs/cluster.md "Maintenance"). Two hosts (two
# network namespaces, one qvisord each, mutual TLS, a one-member etcd in
# host 0's namespace), N running 128 MiB TCG test guests on h0.
#   1. `qvisor host evacuate h0 --wait` (driven by h1's daemon): h0
#      cordoned, the N VMs live-migrated to h1 in waves (2 at a time: the
#      balancer's per-host limit);
#   2. `qvisor host resume h0`, then the peer: a shell loop of sequential
#      `qvisor migrate VM --to tls://h0` bringing the same N VMs back (each
#      tried twice at most, like the evacuation's one retry).
# Same VMs, same link, same machine, same run; prints both times and the
# ratio (sequential / evacuation).
#
# usage: scripts/bench/evacuate.sh [N=8]
# env: QV_BUILD_DIR (default ./build), QV_GUEST_DIR (default ./build/guest). Needs root, etcd.
set -u
N=${1:-8}
BUILD=${QV_BUILD_DIR:-$PWD/build}
GUEST=${QV_GUEST_DIR:-$PWD/build/guest}
Q=$BUILD/qvisor
die() { echo "evacuate.sh: $*" >&2; exit 1; }
command -v etcd >/dev/null || die "etcd not installed (apt-get install etcd-server etcd-client)"
[ -n "${QV_BUILD_DIR:-}" ] || make -C "$(dirname "$0")/../.." -s -j2 all >&2 || die "build failed"
"$(dirname "$0")/../mkguest.sh" "$GUEST" >&2 || die "cannot build the test guest"
SUB=10.234.0
EP=https://$SUB.1:2379
export TWOHOSTS_TLS=1
TWOHOSTS_EXTRA=()
for i in 0 1; do
	TWOHOSTS_EXTRA[$i]="--cluster-endpoints $EP --cluster-host h$i --cluster-address $SUB.$((i + 1)):16515"
done
. "$(dirname "$0")/../twohosts.sh"
twohosts_up qve $SUB
S0=$W/0/sock
S1=$W/1/sock
. "$(dirname "$0")/../etcd.sh"
trap 'etcd_down; twohosts_cleanup' EXIT
ETCD_NETNS=${NS[0]} etcd_up "$W/etcd" "$EP" "$W/0/pki" || die "etcd"
for t in $(seq 300); do
	[ "$($Q -s $S1 --json cluster hosts 2>/dev/null | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["hosts"]))' 2>/dev/null)" = 2 ] && break
	sleep 0.2
done
[ "$($Q -s $S1 --json cluster hosts | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["hosts"]))')" = 2 ] ||
	die "the two hosts did not join (see $W/etcd/m0.log, $W/*/log)"

for k in $(seq $N); do
	cat >$W/spec.json <<JSON
{"name":"e$k","vcpus":1,"memory":128,"machine":"q35","accel":"tcg",
 "kernel":"$GUEST/vmlinuz","initrd":"$GUEST/initrd.img","cmdline":"console=ttyS0 panic=-1 quiet"}
JSON
	$Q -s $S0 define $W/spec.json >/dev/null || die "define e$k"
	$Q -s $S0 start e$k >/dev/null || die "start e$k"
done
for k in $(seq $N); do
	for t in $(seq 1200); do
		grep -q QVISOR-GUEST-READY $W/0/run/vms/e$k/serial.log 2>/dev/null && break
		sleep 0.5
	done
done
echo "# $N x 128 MiB TCG guests on h0; 2 hosts on one machine ($(nproc) cores), mutual TLS, no tc shaping"

t0=$(date +%s.%N)
$Q -s $S1 --json host evacuate h0 --wait >$W/evac.out 2>$W/evac.err || { cat $W/evac.err $W/evac.out >&2; die "evacuation failed"; }
t1=$(date +%s.%N)
python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("%s; %d waves, %d retried" % (r["summary"], r["waves"], sum(1 for m in r["moves"] if m.get("attempts", 1) > 1)))' $W/evac.out
$Q -s $S1 host resume h0 >/dev/null || die "resume"

t2=$(date +%s.%N)
# one retry per VM, as the evacuation does (a loaded host's slow QEMU start)
for k in $(seq $N); do
	$Q -s $S1 migrate e$k --to tls://$SUB.1:16515 --quiet >/dev/null 2>>$W/seq.err ||
		{ echo "sequential: e$k retried" && $Q -s $S1 migrate e$k --to tls://$SUB.1:16515 --quiet >/dev/null 2>>$W/seq.err; } ||
		die "migrate e$k back: $(tail -1 $W/seq.err)"
done
t3=$(date +%s.%N)
python3 - "$t0" "$t1" "$t2" "$t3" "$N" <<'PY'
import sys
t0, t1, t2, t3, n = map(float, sys.argv[1:])
ev, seq = t1 - t0, t3 - t2
print("%-44s %7.1f s" % ("qvisor host evacuate h0 --wait (%d VMs)" % n, ev))
print("%-44s %7.1f s" % ("sequential qvisor migrate loop (%d VMs)" % n, seq))
print("ratio sequential / evacuation: %.2fx" % (seq / ev))
PY
