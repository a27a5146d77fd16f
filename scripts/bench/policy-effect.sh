#!/bin/bash
# Bench: the resource loop's effect on a latency VM next to three CPU hogs,
# loop off vs enforce, alternating twice in one lab VM run (docs/lab-vm.md):
# wake-up lateness p50/p99 of a 1 ms timer loop in the latency VM's cgroup
# and the hogs' total CPU; a third mode, enforce+partition, puts the latency
# VM's group in a slice that is a cpuset partition root of its core, so no
# other task of the lab VM runs there. Lab VM: 2 CPUs, so the latency VM's
# exclusive core is half the machine.
#   scripts/bench/policy-effect.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
O=${O:-build}
make -s O="$O" all "$O/tests/lab/bench_policy" >/dev/null
tmp=$(mktemp -d /tmp/qv-bench-pol.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
scripts/labvm.sh --quiet --timeout 1800 --keep "$tmp/lab" --build "$O" --add "$O/tests/lab/bench_policy" -- \
	bench_policy --jobs 1 || true
# the figures, and why a run stopped (Criterion's assertion lines)
tr -d '\r' <"$tmp/lab/serial.log" | sed 's/\x1b\[[0-9;]*m//g' |
	grep -E '^BENCH|QVISOR-RUN-EXIT|Assertion|^\[----\]   [^ ]|FAIL'
grep -q 'QVISOR-RUN-EXIT 0' "$tmp/lab/serial.log"
