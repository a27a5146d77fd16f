#!/bin/bash
# Spawn latency: qvisor's spawn path (qemu_instance_start: clone3 + pidfd,
# QMP connect, qmp_capabilities, query-status running) versus bare
# qemu-system-x86_64 started with the SAME argv by a script that polls for the
# QMP socket, connects, negotiates and sees query-status "running".
# Runs alternate, N each; prints medians and the ratio qvisor/bare (goal <= 1.10).
#   usage: scripts/bench/spawn.sh [N]      (env: O=build dir, QV_GUEST_DIR)
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

make -s O="$O" "$O/lib/libqv-qemu.a" "$O/lib/libqv-common.a"
WORK=$(mktemp -d /tmp/qv-bench-spawn-XXXXXX)
trap 'rm -rf "$WORK"' EXIT
DRIVER=$WORK/spawn_driver
gcc -O2 -std=gnu11 -D_GNU_SOURCE -I. $(pkg-config --cflags json-c) -o "$DRIVER" \
	scripts/bench/spawn_driver.c "$O/lib/libqv-qemu.a" "$O/lib/libqv-common.a" \
	$(pkg-config --libs json-c)


. scripts/bench/lib.sh

QV=() BARE=()
# One discarded warm-up run of each (page cache, first-exec costs).
mkdir -m 0700 "$WORK/wq" "$WORK/wb"
"$DRIVER" run "$WORK/wq" "$KERNEL" "$INITRD" >/dev/null
"$DRIVER" argv "$WORK/wb" "$KERNEL" "$INITRD" > "$WORK/wb/argv"
python3 scripts/bench/bare_qemu.py "$WORK/wb" >/dev/null
for i in $(seq 1 "$N"); do
	d=$WORK/q$i; mkdir -m 0700 "$d"
	QV+=("$("$DRIVER" run "$d" "$KERNEL" "$INITRD")")
	d=$WORK/b$i; mkdir -m 0700 "$d"
	"$DRIVER" argv "$d" "$KERNEL" "$INITRD" > "$d/argv"
	BARE+=("$(python3 scripts/bench/bare_qemu.py "$d")")
done
mq=$(printf '%s\n' "${QV[@]}" | median)
mb=$(printf '%s\n' "${BARE[@]}" | median)
echo "spawn -> QMP ready + running, N=$N each, same argv ($(qemu-system-x86_64 --version | head -1))"
echo "  qvisor runs (ms): ${QV[*]}"
echo "  bare   runs (ms): ${BARE[*]}"
printf "  median qvisor %.2f ms, bare %.2f ms, ratio qvisor/bare %.3f (goal <= 1.10)\n" \
	"$mq" "$mb" "$(awk -v a="$mq" -v b="$mb" 'BEGIN {print a / b}')"
