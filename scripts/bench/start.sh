#!/bin/bash
# `qvisor start` to guest-running (the CLI returns once QMP says running)
# versus bare qemu-system-x86_64 started with the same argv by a script that
# waits for QMP query-status "running". Runs alternate, N each; prints medians
# and the ratio (goal <= 1.15). Then qvisord's RSS with 0 and 20 defined VMs.
#   usage: scripts/bench/start.sh [N]      (env: O=build dir, QV_GUEST_DIR)
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-10}
O=${O:-build}
GUEST=${QV_GUEST_DIR:-build/guest}
# Build (or reuse the cached) test guest: a bench needs nothing run before it.
scripts/mkguest.sh "$GUEST" >&2
KERNEL=$(realpath "$GUEST/vmlinuz")
INITRD=$(realpath "$GUEST/initrd.img")
[ -r "$KERNEL" ] && [ -r "$INITRD" ] || { echo "no test guest in $GUEST (make guest)"; exit 1; }
make -s O="$O" all "$O/lib/libqv-qemu.a" "$O/lib/libqv-common.a"

WORK=$(mktemp -d /tmp/qv-bench-start-XXXXXX)
chmod 0711 "$WORK"   # QEMU runs as an unprivileged user and must reach run/
DPID=
cleanup() {
	[ -n "$DPID" ] && kill "$DPID" 2>/dev/null && wait "$DPID" 2>/dev/null
	pkill -9 -f "$WORK/" 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT

DRIVER=$WORK/spawn_driver
gcc -O2 -std=gnu11 -D_GNU_SOURCE -I. $(pkg-config --cflags json-c) -o "$DRIVER" \
	scripts/bench/spawn_driver.c "$O/lib/libqv-qemu.a" "$O/lib/libqv-common.a" \
	$(pkg-config --libs json-c)

SOCK=$WORK/run/qvisord.sock
"$O/qvisord" --state-dir "$WORK/state" --run-dir "$WORK/run" --socket "$SOCK" \
	--no-kvm-probe --cache-dir "$WORK" >"$WORK/qvisord.log" 2>&1 &
DPID=$!
QV="$O/qvisor --socket $SOCK"
for _ in $(seq 1 100); do $QV host info >/dev/null 2>&1 && break; sleep 0.1; done
rss() { awk '/^VmRSS/ {print $2}' /proc/"$DPID"/status; }
RSS0=$(rss)

cat > "$WORK/spec.json" <<JSON
{"name":"bench","accel":"tcg","memory":256,"kernel":"$KERNEL","initrd":"$INITRD",
 "cmdline":"console=ttyS0 panic=-1"}
JSON
$QV define "$WORK/spec.json" >/dev/null
. scripts/bench/lib.sh

QVT=() BARE=()
# warm-up, discarded
$QV start bench >/dev/null; $QV stop --force bench >/dev/null
mkdir -m 0700 "$WORK/w"; "$DRIVER" argv "$WORK/w" "$KERNEL" "$INITRD" >"$WORK/w/argv"
python3 scripts/bench/bare_qemu.py "$WORK/w" >/dev/null
for i in $(seq 1 "$N"); do
	t0=$(now_ms); $QV start bench >/dev/null; t1=$(now_ms)
	QVT+=($((t1 - t0)))
	$QV stop --force bench >/dev/null
	d=$WORK/b$i; mkdir -m 0700 "$d"
	"$DRIVER" argv "$d" "$KERNEL" "$INITRD" >"$d/argv"
	BARE+=("$(python3 scripts/bench/bare_qemu.py "$d")")
done
mq=$(printf '%s\n' "${QVT[@]}" | median)
mb=$(printf '%s\n' "${BARE[@]}" | median)

for i in $(seq 1 20); do
	sed "s/\"bench\"/\"idle$i\"/" "$WORK/spec.json" >"$WORK/s$i.json"
	$QV define "$WORK/s$i.json" >/dev/null
done
RSS20=$(rss)

echo "qvisor start -> running vs bare QEMU, N=$N each ($(qemu-system-x86_64 --version | head -1))"
echo "  qvisor start runs (ms, includes the CLI process): ${QVT[*]}"
echo "  bare QEMU    runs (ms):                           ${BARE[*]}"
printf "  median qvisor %.2f ms, bare %.2f ms, ratio qvisor/bare %.3f (goal <= 1.15)\n" \
	"$mq" "$mb" "$(awk -v a="$mq" -v b="$mb" 'BEGIN {print a / b}')"
echo "  qvisord RSS: ${RSS0} KiB with 0 VMs, ${RSS20} KiB with 21 defined VMs"
