#!/bin/bash
# vm.list latency while a guest floods QMP with ACPI _OST events
# (scripts/guest/ostflood.c), against the same daemon idle, side by side.
# Goal: p99 < 50 ms during the storm (docs/benchmarks.md).
#   usage: scripts/bench/storm.sh [SECONDS]   (env: O=build dir, QV_GUEST_DIR)
set -euo pipefail
cd "$(dirname "$0")/../.."
S=${1:-30}
O=${O:-build}
GUEST=${QV_GUEST_DIR:-build/guest}
KERNEL=$(realpath "$GUEST/vmlinuz")
INITRD=$(realpath "$GUEST/initrd.img")
[ -r "$KERNEL" ] && [ -r "$INITRD" ] || { echo "no test guest in $GUEST (make guest)"; exit 1; }
make -s O="$O" all

WORK=$(mktemp -d /tmp/qv-bench-storm-XXXXXX)
DPID=
cleanup() {
	[ -n "$DPID" ] && { "$O/qvisor" --socket "$WORK/run/qvisord.sock" stop --force storm \
		>/dev/null 2>&1 || true; kill "$DPID" 2>/dev/null; wait "$DPID" 2>/dev/null || true; }
	rm -rf "$WORK"
}
trap cleanup EXIT
SOCK=$WORK/run/qvisord.sock
"$O/qvisord" --state-dir "$WORK/state" --run-dir "$WORK/run" --socket "$SOCK" \
	--no-kvm-probe --cache-dir "$WORK" --insecure --pki-dir "$WORK/nopki" \
	>"$WORK/qvisord.log" 2>&1 &
DPID=$!
QV="$O/qvisor --socket $SOCK"
for _ in $(seq 1 100); do $QV host info >/dev/null 2>&1 && break; sleep 0.1; done

cat > "$WORK/lat.py" <<'PY'
import socket, sys, time
path, secs = sys.argv[1], float(sys.argv[2])
lat, end = [], time.time() + secs
while time.time() < end:
    t0 = time.monotonic()
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    s.sendall(b'{"jsonrpc":"2.0","id":1,"method":"vm.list"}\n')
    buf = b''
    while not buf.endswith(b'\n'):
        buf += s.recv(65536)
    s.close()
    lat.append((time.monotonic() - t0) * 1000)
    time.sleep(0.1)
lat.sort()
print("n=%d p50=%.1f p99=%.1f max=%.1f" % (len(lat), lat[len(lat) // 2],
                                          lat[len(lat) * 99 // 100], lat[-1]))
PY
echo "idle:  $(python3 "$WORK/lat.py" "$SOCK" "$S") ms (load $(cut -d' ' -f1 /proc/loadavg))"
cat > "$WORK/spec.json" <<JSON
{"name":"storm","accel":"tcg","memory":128,"kernel":"$KERNEL","initrd":"$INITRD",
 "cmdline":"console=ttyS0 panic=-1 quiet qv.run=/bin/ostflood qv.args=$((S + 60))"}
JSON
$QV define "$WORK/spec.json" >/dev/null
$QV start storm >/dev/null
for _ in $(seq 1 180); do
	grep -qa QVISOR-OSTFLOOD-START "$WORK/state/vms/storm/serial.log" 2>/dev/null && break
	sleep 1
done
echo "storm: $(python3 "$WORK/lat.py" "$SOCK" "$S") ms (load $(cut -d' ' -f1 /proc/loadavg))"
$QV --json info storm | python3 -c 'import json, sys
r = json.load(sys.stdin)["runtime"]
print("  QMP events dropped by the rate limit:", r["events_dropped"])'
command -v sqlite3 >/dev/null && echo "  events table: $(sqlite3 "$WORK/state/qvisor.db" "select count(*) from events") rows"
