#!/bin/bash
# Bench: CPU time of one collector pass per VM with 50 VM groups (each with a
# process in it), against a busybox shell running cat on the same files and
# against open/read/close per pass, side by side, inside the lab VM (this
# host's cgroup v2 has no cpu/memory controllers). Guest CPU time under TCG:
# absolute figures are several times a bare-metal host's; read the ratios.
#   scripts/bench/collect.sh [N] [PASSES]      (default 50 200)
# Env: O=build dir (default build).
set -euo pipefail
N=${1:-50}
PASSES=${2:-200}
cd "$(dirname "$0")/../.."
O=${O:-build}
make -s O="$O" all "$O/lib/libqv-sched.a" >/dev/null
tmp=$(mktemp -d /tmp/qv-bench-col.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
cc -O2 -std=gnu11 -D_GNU_SOURCE -I. $(pkg-config --cflags json-c) \
	-o "$tmp/bench_collect" tests/sched/bench_collect.c \
	-L"$O/lib" -lqv-sched -lqv-qemu -lqv-common $(pkg-config --libs json-c libseccomp)
scripts/labvm.sh --quiet --keep "$tmp/lab" --build "$O" --add "$tmp/bench_collect" -- \
	bench_collect "$N" "$PASSES" || true
grep -E '^BENCH|QVISOR-RUN-EXIT' "$tmp/lab/serial.log" | tr -d '\r'
grep -q 'QVISOR-RUN-EXIT 0' "$tmp/lab/serial.log"
