#!/bin/bash
# SPDX-License-Identifier: MIT
# Bench: the cluster balancer on real VMs, time-compressed — the shape of
# the OpenStack Neat testbed (a few hosts, tens of VMs). Three hosts (three
# network namespaces on a bridge, one qvisord each, mutual TLS, a
# one-member etcd on h0), VMS_PER_HOST test guests on each; every guest
# replays one PlanetLab trace from DATA_DIR/planetlab/DAY/ with the test
# guest's CPU load generator (qv.load: sample i of the trace for SAMPLE_S
# seconds instead of 300 s, scaled by SCALE), in step by wall clock. The
# leader's balancer runs in enforce mode with power saving, once with each
# policy in POLICIES, each run on fresh hosts with the same guests, traces
# and start offset.
#
# Every SAMPLE_S the script reads each host's record (`cluster hosts`:
# usage.cpu_util = CPU its VMs' QEMUs use over --cluster-capacity-vcpus,
# usage.running) and the inventory (`cluster vms`: owners), and reports per
# policy, as Neat does:
#   AITF  aggregate idle time fraction: host-time with no running VM
#         (a host that could be switched off) over all host-time;
#   AOTF  aggregate overload time fraction: host-time above THRESHOLD
#         utilisation over the host-time with VMs;
#   migrations (owner changes seen in the inventory) and the mean
#   utilisation of hosts with VMs.
#
#   usage: scripts/bench/testbed.sh [DATA_DIR] [DAY]
#   env: POLICIES ("qvisor thr"), VMS_PER_HOST (12), SAMPLES (48),
#        SAMPLE_S (5), OFFSET (96: the trace sample to start from, 08:00),
#        SCALE (0.5), CAPACITY (1: vCPUs per host for utilisation),
#        THRESHOLD (0.8), INTERVAL (5: balancer round, s),
#        COOLDOWN (60 s), MEMORY (96 MiB per guest),
#        QV_BUILD_DIR (./build), QV_GUEST_DIR (./build/guest)
# Needs root, etcd (etcd-server). Prints one line per policy and the
# ratios qvisor/thr.
set -u
cd "$(dirname "$0")/../.."
DATA=${1:-${QV_POLICY_DATA:-../shared/policy}}
[ -d "$DATA" ] || [ -n "${1:-}" ] || DATA=../../shared/policy # from a worktree
DAY=${2:-20110303}
POLICIES=${POLICIES:-qvisor thr}
VPH=${VMS_PER_HOST:-12}
SAMPLES=${SAMPLES:-48}
SAMPLE_S=${SAMPLE_S:-5}
OFFSET=${OFFSET:-96}
SCALE=${SCALE:-0.5}
CAPACITY=${CAPACITY:-1}
THRESHOLD=${THRESHOLD:-0.8}
INTERVAL=${INTERVAL:-5}
COOLDOWN=${COOLDOWN:-60}
MEMORY=${MEMORY:-96}
BUILD=${QV_BUILD_DIR:-$PWD/build}
GUEST=${QV_GUEST_DIR:-$PWD/build/guest}
Q=$BUILD/qvisor
NH=3
SUB=10.236.0
die() { echo "testbed.sh: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (network namespaces)"
command -v etcd >/dev/null || die "etcd not installed (scripts/install-deps.sh)"
TRACES=$DATA/planetlab/$DAY
[ -d "$TRACES" ] || die "no traces in $TRACES (give DATA_DIR and DAY)"
[ -n "${QV_BUILD_DIR:-}" ] || make -s -j2 all >&2 || die "build failed"
scripts/mkguest.sh "$GUEST" >&2 || die "cannot build the test guest"

W=$(mktemp -d /tmp/qv-bench-testbed-XXXXXX)
chmod 0711 "$W" # QEMU runs as an unprivileged user and must reach run/
TAG=qtb$$
. scripts/etcd.sh
teardown() { # stop daemons, QEMUs, etcd and the namespaces of one run
	local i p
	for i in $(seq 0 $((NH - 1))); do
		[ -f "$W/h$i/pid" ] && kill "$(cat "$W/h$i/pid")" 2>/dev/null
	done
	etcd_down
	for i in $(seq 0 $((NH - 1))) br; do
		for p in $(ip netns pids "$TAG$i" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
	done
	sleep 0.5
	for i in $(seq 0 $((NH - 1))) br; do ip netns del "$TAG$i" 2>/dev/null; done
	rm -rf "$W"/h* "$W/etcd"
}
trap 'teardown; rm -rf "$W"' EXIT
trap 'exit 130' INT TERM

# Hosts on a bridge, a lab PKI, etcd on h0, one qvisord per host.
hosts_up() { # $1 = policy
	local i t addr ep=https://$SUB.1:2379
	ip netns add "${TAG}br" || die "netns"
	ip -n "${TAG}br" link add name tbr type bridge && ip -n "${TAG}br" link set tbr up
	[ -f "$W/ca/ca-cert.pem" ] || "$Q" --pki-dir "$W/ca" pki init >/dev/null || die "pki init"
	for i in $(seq 0 $((NH - 1))); do
		addr=$SUB.$((i + 1))
		ip netns add "$TAG$i" || die "netns"
		ip link add "${TAG}v$i" netns "${TAG}br" type veth peer name eth0 netns "$TAG$i" || die "veth"
		ip -n "${TAG}br" link set "${TAG}v$i" master tbr up
		ip -n "$TAG$i" addr add "$addr/24" dev eth0
		ip -n "$TAG$i" link set lo up
		ip -n "$TAG$i" link set eth0 up
		mkdir -p "$W/h$i"
		"$Q" --pki-dir "$W/ca" pki issue "$addr" "h$i" --out "$W/h$i/pki" >/dev/null || die "pki issue"
	done
	ETCD_NETNS=${TAG}0 etcd_up "$W/etcd" "$ep" "$W/h0/pki" || die "etcd"
	for i in $(seq 0 $((NH - 1))); do
		addr=$SUB.$((i + 1))
		ip netns exec "$TAG$i" setsid "$BUILD/qvisord" --state-dir "$W/h$i/state" \
			--run-dir "$W/h$i/run" --socket "$W/h$i/sock" --no-kvm-probe --cache-dir "$W/h$i" \
			--pki-dir "$W/h$i/pki" --listen "tls://$addr" \
			--cluster-endpoints "$ep" --cluster-host "h$i" --cluster-address "$addr:16515" \
			--cluster-ttl 6 --cluster-capacity-vcpus "$CAPACITY" \
			--cluster-balance-interval "$INTERVAL" --cluster-balance-threshold "$THRESHOLD" \
			--cluster-balance-cooldown "$COOLDOWN" --cluster-balance-policy "$1" \
			--cluster-balance-power-saving >"$W/h$i/log" 2>&1 </dev/null &
		echo $! >"$W/h$i/pid"
	done
	for t in $(seq 300); do
		[ "$(nhosts)" = "$NH" ] && return 0
		sleep 0.2
	done
	die "the hosts did not join (see $W/etcd/m0.log, $W/h*/log)"
}
nhosts() {
	"$Q" -s "$W/h0/sock" --json cluster hosts 2>/dev/null |
		python3 -c 'import json,sys; print(len(json.load(sys.stdin)["hosts"]))' 2>/dev/null
}

# The trace files, sorted; guest k replays file k from OFFSET, SAMPLES long.
mapfile -t FILES < <(ls "$TRACES" | sort | head -n $((NH * VPH)))
[ "${#FILES[@]}" = $((NH * VPH)) ] || die "$TRACES has fewer than $((NH * VPH)) traces"
load_arg() { # $1 = trace file: PCT,PCT,... scaled
	tail -n +$((OFFSET + 1)) "$1" | head -n "$SAMPLES" |
		awk -v s="$SCALE" '{printf "%s%d", (NR > 1 ? "," : ""), $1 * s + 0.5}'
}

run_policy() { # $1 = policy; prints "policy AITF AOTF migrations mean_util samples"
	local p=$1 i k n start t0 ready
	hosts_up "$p"
	"$Q" -s "$W/h0/sock" cluster mode enforce >/dev/null || die "cluster mode enforce"
	# Start the replay once every guest can have booted: 2 s per guest.
	start=$(($(date +%s) + 30 + 2 * NH * VPH))
	n=0
	for i in $(seq 0 $((NH - 1))); do
		for k in $(seq 1 "$VPH"); do
			cat >"$W/spec.json" <<JSON
{"name":"t$n","vcpus":1,"memory":$MEMORY,"machine":"q35","accel":"tcg",
 "kernel":"$GUEST/vmlinuz","initrd":"$GUEST/initrd.img",
 "cmdline":"console=ttyS0 panic=-1 quiet qv.load=$start:$SAMPLE_S:$(load_arg "$TRACES/${FILES[$n]}")"}
JSON
			"$Q" -s "$W/h$i/sock" define "$W/spec.json" >/dev/null || die "define t$n on h$i"
			n=$((n + 1))
		done
		"$Q" -s "$W/h$i/sock" start --all >/dev/null || die "start on h$i"
	done
	ready=0
	for t0 in $(seq 600); do
		ready=$(cat "$W"/h*/run/vms/t*/serial.log 2>/dev/null | grep -c QVISOR-LOAD-START)
		[ "$ready" -ge $((NH * VPH)) ] && break
		sleep 0.5
	done
	[ "$(date +%s)" -lt "$start" ] || echo "testbed.sh: warning: guests booted after the replay began" >&2
	while [ "$(date +%s)" -lt "$start" ]; do sleep 0.2; done
	# Sample hosts and owners every SAMPLE_S until the traces end.
	: >"$W/samples"
	for t0 in $(seq "$SAMPLES"); do
		{
			"$Q" -s "$W/h0/sock" --json cluster hosts 2>/dev/null | tr -d '\n'
			echo
			"$Q" -s "$W/h0/sock" --json cluster vms 2>/dev/null | tr -d '\n'
			echo
		} >>"$W/samples"
		sleep "$SAMPLE_S"
	done
	python3 - "$p" "$W/samples" "$THRESHOLD" <<'PY'
import json, sys
pol, path, thr = sys.argv[1], sys.argv[2], float(sys.argv[3])
lines = open(path).read().split('\n')
idle = over = active = total = 0
util_sum = 0.0
migrations = 0
owners = None
for hl, vl in zip(lines[0::2], lines[1::2]):
    try:
        hosts = json.loads(hl)['hosts']; vms = json.loads(vl)['vms']
    except (ValueError, KeyError):
        continue
    for h in hosts:
        u = h.get('usage', {})
        total += 1
        if u.get('running', 0) == 0:
            idle += 1
            continue
        active += 1
        cu = float(u.get('cpu_util', 0))
        util_sum += cu
        if cu > thr:
            over += 1
    now = {v['name']: v.get('owner') for v in vms}
    if owners is not None:
        migrations += sum(1 for n, o in now.items() if n in owners and owners[n] != o)
    owners = now
aitf = idle / total if total else 0
aotf = over / active if active else 0
mean = util_sum / active if active else 0
print('%s %.4f %.4f %d %.3f %d' % (pol, aitf, aotf, migrations, mean, total))
PY
	teardown
}

echo "# testbed: $NH hosts x $VPH guests ($MEMORY MiB, TCG) on one machine ($(nproc) cores);"
echo "# traces $TRACES (first $((NH * VPH)) files), samples $OFFSET..$((OFFSET + SAMPLES - 1)),"
echo "# $SAMPLE_S s each (300 s in the trace), load x$SCALE; capacity $CAPACITY vCPU/host,"
echo "# threshold $THRESHOLD, balancer every $INTERVAL s, cooldown $COOLDOWN s, enforce + power saving"
printf '%-8s %8s %8s %11s %10s %8s\n' policy AITF AOTF migrations mean_util samples
RES=()
for p in $POLICIES; do
	r=$(run_policy "$p") || die "run $p failed"
	RES+=("$r")
	printf '%-8s %8s %8s %11s %10s %8s\n' $r
done
if [ "${#RES[@]}" = 2 ]; then
	python3 - "${RES[@]}" <<'PY'
import sys
a, b = (s.split() for s in sys.argv[1:3])
r = lambda x, y: ('%.2f' % (float(x) / float(y))) if float(y) else 'n/a'
print('ratio %s/%s: AITF %s, AOTF %s, migrations %s' % (a[0], b[0], r(a[1], b[1]), r(a[2], b[2]), r(a[3], b[3])))
PY
fi
