#!/bin/bash
# SPDX-License-Identifier: MIT
# Live-migration matrix: qvisor's convergence controller vs QEMU defaults
# ("plain": migrate with no capabilities, same max-bandwidth), side by side.
#
#   two hosts = two network namespaces joined by a veth pair, one qvisord
#   in each; both directions shaped with tc tbf to B MiB/s; a 512 MiB TCG
#   guest whose dirtier writes D MB/s over a WSS MiB working set;
#   D = 0.1, 0.5, 0.9, 1.5, 2.5 x B; every migration capped at CAP s.
#
# Both modes go through `qvisor migrate`, i.e. vm.migrate: the source daemon
# drives the protocol. The VM ping-pongs: a completed migration leaves it on
# the other host, the next run migrates it back. Prints one row per (D, mode):
#   converged, total time, downtime (the guest's real blackout: source STOP
#   to destination RESUME), QEMU's own downtime figure, bytes sent,
#   total / (RAM / B)
# PATTERN "random" makes the dirtier rewrite whole pages with random data
# (XBZRLE cannot shrink them); "counter" writes 8 bytes per page.
#
# usage: scripts/bench/migrate.sh [B_MiBps=50] [CAP_s=60] [WSS_MiB=256] [FACTORS="0.1 0.5 0.9 1.5 2.5"] [PATTERN=random]
#
# TLS=1 (one D/B cell, default FACTORS=0.1): the same controller migration
# with the stream over mutual TLS (lab PKI, tls-creds-x509) vs plain TCP
# (--insecure), REPS (default 4) of each, order swapped every round so both
# modes run in both directions; prints the ratio of the mean total times
# (tls / tcp).
# env: QV_BUILD_DIR (default ./build), QV_GUEST_DIR (default ./build/guest). Needs root.
set -u
B=${1:-50}
CAP=${2:-60}
WSS=${3:-256}
FACTORS=${4:-"0.1 0.5 0.9 1.5 2.5"}
PATTERN=${5:-random}
case $PATTERN in random) SUFFIX=:random ;; counter) SUFFIX= ;; *) echo "bad PATTERN" >&2; exit 1 ;; esac
MEM=512
BUILD=${QV_BUILD_DIR:-$PWD/build}
GUEST=${QV_GUEST_DIR:-$PWD/build/guest}
Q=$BUILD/qvisor
die() { echo "migrate.sh: $*" >&2; exit 1; }
# Build what the bench needs (cached): the binaries and the test guest.
[ -n "${QV_BUILD_DIR:-}" ] || make -C "$(dirname "$0")/../.." -s -j2 all >&2 || die "build failed"
"$(dirname "$0")/../mkguest.sh" "$GUEST" >&2 || die "cannot build the test guest"
if [ "${TLS:-0}" = 1 ]; then
	export TWOHOSTS_TLS=1
	[ -n "${4:-}" ] || FACTORS=0.1
fi
. "$(dirname "$0")/../twohosts.sh"
twohosts_up qvb 10.232.0
VETH=("${NS[@]}")
for i in 0 1; do
	# B MiB/s in tc's mbit (10^6 bit/s)
	ip netns exec ${NS[$i]} tc qdisc replace dev ${VETH[$i]} root tbf \
		rate $((B * 8 * 1048576 / 1000000))mbit burst 256kb latency 50ms || die "tc"
done

boot() { # host rate -> defines and starts "bench" on host, waits for the dirtier
	local h=$1 rate=$2
	cat >$W/spec.json <<JSON
{"name":"bench","vcpus":1,"memory":$MEM,"machine":"q35","accel":"tcg",
 "kernel":"$GUEST/vmlinuz","initrd":"$GUEST/initrd.img",
 "cmdline":"console=ttyS0 panic=-1 quiet qv.dirty=$rate:$WSS$SUFFIX"}
JSON
	rm -f $W/$h/run/vms/bench/serial.log
	$Q -s $W/$h/sock define $W/spec.json >/dev/null || die "define"
	$Q -s $W/$h/sock start bench >/dev/null || die "start"
	for t in $(seq 600); do
		grep -q "dirtier: " $W/$h/run/vms/bench/serial.log 2>/dev/null && return 0
		sleep 0.5
	done
	die "guest did not start dirtying"
}

remove() { # host
	$Q -s $W/$1/sock stop --force bench >/dev/null 2>&1
	sleep 0.5
	$Q -s $W/$1/sock undefine bench >/dev/null || die "cannot undefine bench on host $1"
}

run() { # from mode -> prints a row; sets WHERE to the VM's host afterwards
	local from=$1 mode=$2 to=$((1 - $1)) extra=""
	[ "$mode" = plain ] && extra=--plain
	[ "$mode" = tcp ] && extra=--insecure
	local out
	out=$($Q -s $W/$from/sock --json migrate bench --to unix://$W/$to/sock --quiet \
		--bandwidth $B --deadline $CAP --max-downtime 300 $extra 2>$W/err)
	if [ $? -eq 0 ]; then
		WHERE=$to
		echo "$mode $(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["total_time_ms"])' "$out")" >>$W/totals
		python3 - "$out" "$B" "$mode" "$D" <<'PY'
import json, sys
s = json.loads(sys.argv[1]); b = float(sys.argv[2]) * 1048576
ideal = s["ram_total"] / b
dt = s.get("downtime_ms"); dt = -1 if dt is None else dt
print("%-6s %-10s %-5s %8.1f s %8d ms %8d ms %9.1f MiB %7.2f" % (sys.argv[4], sys.argv[3], "yes",
      s["total_time_ms"] / 1000, dt, s.get("qemu_downtime_ms", -1),
      s["ram_transferred"] / 1048576, s["total_time_ms"] / 1000 / ideal))
PY
	else
		WHERE=$from
		printf "%-6s %-10s %-5s %10s %11s %11s %13s %7s   (%s)\n" "$D" "$mode" "no" "-" "-" "-" "-" "-" \
			"$(tail -1 $W/err | cut -c1-60)"
	fi
}

echo "# B=$B MiB/s (tc tbf both ways), RAM=$MEM MiB, WSS=$WSS MiB, pattern=$PATTERN, cap=$CAP s, TCG"
echo "# downtime = source STOP -> destination RESUME; qemu_dt = QEMU's own figure; total/ideal = total time / (RAM / B)"
printf "%-6s %-10s %-5s %10s %11s %11s %13s %7s\n" "D/B" "mode" "conv" "total" "downtime" "qemu_dt" "sent" "t/ideal"
if [ "${TLS:-0}" = 1 ]; then
	for f in $FACTORS; do
		D=$f
		rate=$(python3 -c "print(round($f * $B * 1.048576, 1))")
		boot 0 "$rate"
		WHERE=0
		# The VM ping-pongs: swap the order every round so that each
		# mode runs in both directions (REPS even: equally often).
		for r in $(seq ${REPS:-4}); do
			if [ $((r % 2)) = 1 ]; then order="tcp tls"; else order="tls tcp"; fi
			for m in $order; do run $WHERE $m; sleep 2; done
		done
		remove $WHERE
	done
	python3 - $W/totals <<'PY'
import sys
t = {}
for line in open(sys.argv[1]):
    m, v = line.split(); t.setdefault(m, []).append(float(v))
if "tcp" in t and "tls" in t:
    a, b = sum(t["tls"]) / len(t["tls"]), sum(t["tcp"]) / len(t["tcp"])
    print("# mean total: tls %.1f s (n=%d), tcp %.1f s (n=%d); tls/tcp = %.3f (goal <= 1.15)"
          % (a / 1000, len(t["tls"]), b / 1000, len(t["tcp"]), a / b))
else:
    print("# not enough completed runs for a ratio")
PY
	exit 0
fi
for f in $FACTORS; do
	D=$f
	rate=$(python3 -c "print(round($f * $B * 1.048576, 1))") # MB/s (10^6)
	boot 0 "$rate"
	WHERE=0
	run $WHERE plain
	sleep 2
	run $WHERE controller
	remove $WHERE
done
