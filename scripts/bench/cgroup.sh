#!/bin/bash
# Bench: latency of applying a full cgroup-v2 limit set to a VM group (and of
# changing every field), and of one stats read, for 1 and 50 groups, against
# the peer "a busybox shell writing the same files" side by side. Runs inside
# the TCG test guest (this host's cgroup v2 has no cpu/memory controllers);
# guest time, so absolute numbers are TCG-slow: read the ratio.
#   scripts/bench/cgroup.sh [REPEAT]      (default 20)
# Env: O=build dir (default build-bench-cgroup), QV_GUEST_DIR (build/guest).
set -euo pipefail
REPEAT=${1:-20}
cd "$(dirname "$0")/../.."
O=${O:-build-bench-cgroup}
GUEST=${QV_GUEST_DIR:-build/guest}

make -s O="$O" "$O/lib/libqv-sched.a" "$O/lib/libqv-qemu.a" "$O/lib/libqv-common.a" >/dev/null
scripts/mkguest.sh "$GUEST" >/dev/null
tmp=$(mktemp -d /tmp/qv-bench-cg.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/x/t"
cc -O2 -std=gnu11 -D_GNU_SOURCE -I. $(pkg-config --cflags json-c) \
	-o "$tmp/x/t/bench_cgroup" tests/sched/bench_cgroup.c \
	-L"$O/lib" -lqv-sched -lqv-qemu -lqv-common $(pkg-config --libs json-c libseccomp)
cat >"$tmp/x/t/run.sh" <<SH
#!/bin/sh
/t/bench_cgroup 1 $REPEAT && /t/bench_cgroup 50 $REPEAT
SH
chmod +x "$tmp/x/t/run.sh"
scripts/mkguest.sh --extra "$tmp/x" --out "$tmp/bench.img" --base "$GUEST" 2>/dev/null
timeout 900 qemu-system-x86_64 -nodefaults -no-user-config -machine q35 -accel tcg \
	-smp 2 -m 512 -kernel "$GUEST/vmlinuz" -initrd "$tmp/bench.img" \
	-append "console=ttyS0 quiet panic=-1 psi=1 qv.run=/t/run.sh" \
	-serial "file:$tmp/serial.log" -display none -no-reboot
grep -E '^BENCH|QVISOR-RUN-EXIT|bench_cgroup' "$tmp/serial.log" | tr -d '\r'
grep -q 'QVISOR-RUN-EXIT 0' "$tmp/serial.log"
