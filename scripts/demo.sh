#!/bin/bash
# The quick start: install dependencies, build, build the test guest, start
# qvisord on the embedded default (/var/lib/qvisor, /run/qvisor) and boot a VM
# named "demo". Safe to run again: it reuses what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

step() { printf '\n==> %s\n' "$*"; }

step "Installing dependencies (Debian packages)"
bash scripts/install-deps.sh

step "Building"
make -s -j"$(nproc)" all

step "Building the test guest (cached in build/guest)"
scripts/mkguest.sh build/guest

# QEMU runs as the unprivileged qvisor-qemu user: give it a copy of the guest
# it can read whatever the permissions of this checkout's path are.
GUEST=/var/cache/qvisor/demo-guest
install -d -m 0755 /var/cache/qvisor "$GUEST"
install -m 0644 build/guest/vmlinuz build/guest/initrd.img "$GUEST/"

SOCK=/run/qvisor/qvisord.sock
QV="$ROOT/build/qvisor --socket $SOCK"
LOG=/var/log/qvisord.log

if $QV host info >/dev/null 2>&1; then
	step "qvisord is already running on $SOCK"
else
	step "Starting qvisord (log: $LOG)"
	setsid "$ROOT/build/qvisord" --guest-dir "$ROOT/build/guest" >>"$LOG" 2>&1 </dev/null &
	for _ in $(seq 1 300); do
		$QV host info >/dev/null 2>&1 && break
		sleep 0.1
	done
	$QV host info >/dev/null || { echo "qvisord did not come up; see $LOG" >&2; exit 1; }
fi

if ! $QV info demo >/dev/null 2>&1; then
	step "Defining VM demo"
	cat >/tmp/qvisor-demo.json <<JSON
{
  "name": "demo",
  "vcpus": 1,
  "memory": "256M",
  "accel": "auto",
  "kernel": "$GUEST/vmlinuz",
  "initrd": "$GUEST/initrd.img",
  "cmdline": "console=ttyS0 panic=-1",
  "restart": { "policy": "on-failure" }
}
JSON
	$QV define /tmp/qvisor-demo.json
fi

# serial.log is appended across boots: wait for a marker past its current end.
SERIAL_LOG=/run/qvisor/vms/demo/serial.log
# grep -c prints "0" and exits 1 when nothing matches: one number either way.
markers() { local n; n=$(grep -c QVISOR-GUEST-READY "$SERIAL_LOG" 2>/dev/null) || true; echo "${n:-0}"; }
seen=$(markers)
state=$($QV info demo | awk '$1 == "state:" { print $2 }')
if [ "$state" != running ] && [ "$state" != paused ]; then
	step "Starting VM demo"
	$QV start demo
	want=$((seen + 1))
else
	want=1
fi

step "Waiting for the guest's ready marker in $SERIAL_LOG"
ready() { [ "$(markers)" -ge "$want" ]; }
for _ in $(seq 1 1200); do
	ready && break
	sleep 0.1
done
ready || { echo "guest did not boot; see $SERIAL_LOG" >&2; exit 1; }

$QV host check || true
echo
$QV list
cat <<EOF2

The demo VM is up. Try:
  build/qvisor info demo
  build/qvisor console demo      (Ctrl-] detaches)
  build/qvisor stop demo
EOF2
