#!/bin/bash
# Batch start: `qvisor start --all` of N defined VMs (128 MiB, test guest,
# TCG) until the CLI returns (every VM's QMP says running), versus N bare
# qemu-system-x86_64 started at once by a script with the SAME argv (taken
# from /proc/PID/cmdline of qvisor's QEMUs, run dir rewritten) until each
# answers QMP query-status "running". Then `qvisor stop --all --force` and a
# graceful `stop --all --timeout 1`. A second client sends vm.list every
# 20 ms during the qvisor runs: its p50/p99/max latency is printed.
# Rounds alternate bare / qvisor, R rounds; prints medians and the ratio
# qvisor/bare (goal <= 1.3).
#   usage: scripts/bench/batch.sh [N] [R] [PARALLEL]
#          (env: O=build dir, QV_GUEST_DIR, MAXSTARTS=qvisord --max-starts;
#           PARALLEL: qvisor start/stop --parallel, default the CLI's)
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-30}
R=${2:-3}
PAR=${3:-}
O=${O:-build}
GUEST=${QV_GUEST_DIR:-build/guest}
KERNEL=$(realpath "$GUEST/vmlinuz")
INITRD=$(realpath "$GUEST/initrd.img")
[ -r "$KERNEL" ] && [ -r "$INITRD" ] || { echo "no test guest in $GUEST (make guest)"; exit 1; }
make -s O="$O" all

WORK=$(mktemp -d /tmp/qv-bench-batch-XXXXXX)
chmod 0711 "$WORK"   # QEMU runs as an unprivileged user and must reach run/
DPID=
cleanup() {
	if [ -n "$DPID" ]; then
		$QV stop --all --force >/dev/null 2>&1 || true
		kill "$DPID" 2>/dev/null && wait "$DPID" 2>/dev/null
	fi
	for f in "$WORK"/bare-pids; do [ -r "$f" ] && xargs -r kill -9 <"$f" 2>/dev/null; done
	[ -n "${KEEP:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT

# --- helpers -----------------------------------------------------------------
cat > "$WORK/lister.py" <<'PY'
# vm.list every 20 ms until SIGTERM; prints count p50 p99 max (ms).
import json, os, signal, socket, sys, time
stop = [False]
signal.signal(signal.SIGTERM, lambda *a: stop.__setitem__(0, True))
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.connect(sys.argv[1])
f = s.makefile('rwb'); lat = []
open(sys.argv[2], 'w').close()  # ready
i = 0
while not stop[0]:
    i += 1; t0 = time.monotonic()
    f.write(json.dumps({"jsonrpc": "2.0", "id": i, "method": "vm.list"}).encode() + b'\n'); f.flush()
    while True:
        m = json.loads(f.readline())
        if m.get('id') == i: break
    lat.append((time.monotonic() - t0) * 1000)
    time.sleep(0.02)
lat.sort()
if not lat: lat = [float('nan')]
q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))]
print('%d %.1f %.1f %.1f' % (len(lat), q(0.5), q(0.99), lat[-1]))
PY
. scripts/bench/lib.sh

# --- daemon and VMs ----------------------------------------------------------
SOCK=$WORK/run/qvisord.sock
"$O/qvisord" --state-dir "$WORK/state" --run-dir "$WORK/run" --socket "$SOCK" \
	--no-kvm-probe --cache-dir "$WORK" ${MAXSTARTS:+--max-starts $MAXSTARTS} \
	>"$WORK/qvisord.log" 2>&1 &
DPID=$!
QV="$O/qvisor --socket $SOCK"
for _ in $(seq 1 100); do $QV host info >/dev/null 2>&1 && break; sleep 0.1; done
for i in $(seq 0 $((N - 1))); do
	cat > "$WORK/s$i.json" <<JSON
{"name":"b$i","accel":"tcg","memory":128,"kernel":"$KERNEL","initrd":"$INITRD",
 "cmdline":"console=ttyS0 panic=-1"}
JSON
	$QV define "$WORK/s$i.json" >/dev/null
done
PAROPT=${PAR:+--parallel $PAR}

# One qvisor round: start --all (timed, with a lister), stop --all --force.
# A background vm.list client; returns once it is connected.
lister() {
	rm -f "$WORK/lister-ready"
	python3 "$WORK/lister.py" "$SOCK" "$WORK/lister-ready" >"$1" &
	LP=$!
	while [ ! -e "$WORK/lister-ready" ]; do sleep 0.01; done
}
qv_round() {
	lister "$WORK/lat-start"; local lp=$LP
	local t0 t1 t2
	t0=$(now_ms); $QV start --all $PAROPT >/dev/null; t1=$(now_ms)
	kill $lp; wait $lp || true
	[ "$($QV --json list | grep -o '"state": *"running"' | wc -l)" = "$N" ] ||
		{ echo "not all $N VMs are running"; exit 1; }
	lister "$WORK/lat-stop"; lp=$LP
	t1b=$(now_ms); $QV stop --all --force $PAROPT >/dev/null; t2=$(now_ms)
	kill $lp; wait $lp || true
	echo "$((t1 - t0)) $((t2 - t1b))"
}

# Capture the daemon's argv for the bare side (one warm-up qvisor round).
$QV start --all $PAROPT >/dev/null
mkdir -p "$WORK/bare"
i=0
for pid in $($QV --json list | grep -o '"pid": *[0-9]*' | grep -o '[0-9]*$'); do
	d=$WORK/bare/vm$i; mkdir -m 0700 "$d"
	# The VM's run dir is <run>/vms/<name>; every path in it moves to d.
	tr '\0' '\n' </proc/"$pid"/cmdline | sed "s#$WORK/run/vms/[^/,]*#$d#g" | tr '\n' '\0' >"$d/argv"
	i=$((i + 1))
done
[ "$i" = "$N" ] || { echo "captured $i argvs, want $N"; exit 1; }
$QV stop --all --force >/dev/null
BARE_RUN=(python3 scripts/bench/bare_qemu.py --pids "$WORK/bare-pids" "$WORK"/bare/vm*)
"${BARE_RUN[@]}" >/dev/null   # warm-up, discarded

BARE=() QVS=() QVSTOP=() LAT=()
for r in $(seq 1 "$R"); do
	rm -f "$WORK"/bare/vm*/qmp.sock
	BARE+=("$("${BARE_RUN[@]}")")
	read -r ts tstop < <(qv_round)
	QVS+=("$ts") QVSTOP+=("$tstop")
	LAT+=("start: $(cat "$WORK/lat-start") stop: $(cat "$WORK/lat-stop")")
done
# A graceful stop of guests still booting: powerdown, 1 s, then quit.
$QV start --all $PAROPT >/dev/null
t0=$(now_ms); $QV stop --all --timeout 1 $PAROPT >/dev/null; tg=$(($(now_ms) - t0))

mb=$(printf '%s\n' "${BARE[@]}" | median)
mq=$(printf '%s\n' "${QVS[@]}" | median)
ms=$(printf '%s\n' "${QVSTOP[@]}" | median)
echo "batch start of N=$N VMs (128 MiB, TCG), $R rounds, parallel=${PAR:-default} max-starts=${MAXSTARTS:-default} ($(nproc) cores, $(qemu-system-x86_64 --version | head -1))"
echo "  bare QEMUs at once -> all running (ms): ${BARE[*]}"
echo "  qvisor start --all -> all running (ms): ${QVS[*]}"
echo "  qvisor stop --all --force (ms):         ${QVSTOP[*]}"
echo "  qvisor stop --all --timeout 1 (graceful, guests still booting): $tg ms"
echo "  concurrent vm.list every 20 ms (count p50 p99 max, ms):"
printf '    %s\n' "${LAT[@]}"
printf "  median bare %.0f ms, qvisor %.0f ms, ratio qvisor/bare %.3f (goal <= 1.3); stop --all --force median %.0f ms\n" \
	"$mb" "$mq" "$(awk -v a="$mq" -v b="$mb" 'BEGIN {print a / b}')" "$ms"
