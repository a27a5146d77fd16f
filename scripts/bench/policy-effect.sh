#!/bin/bash
# Bench: the resource loop's effect on a latency VM next to three CPU hogs,
# in one lab VM run (docs/lab-vm.md), three rounds of four variants side by
# side (tests/lab/bench_policy.c): off; enforce+partition (the latency VM's
# exclusive core as a cpuset partition root); enforce+shared+weight (no
# exclusive core, hogs at shares 50 vs 1000: a very low cpu.weight);
# enforce+shared+idle (no exclusive core, hogs best-effort: cpu.idle = 1).
# Wake-up lateness p50/p99/max of a 1 ms timer loop in the latency VM's
# cgroup and the hogs' CPU (cores of wall time). Lab VM: 2 CPUs, so an
# exclusive core is half the machine. Prints the load average before and after.
#   scripts/bench/policy-effect.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
O=${O:-build}
make -s O="$O" all "$O/tests/lab/bench_policy" >/dev/null
tmp=$(mktemp -d /tmp/qv-bench-pol.XXXXXX)
echo "host load before: $(cut -d' ' -f1-3 /proc/loadavg)"
trap 'rm -rf "$tmp"' EXIT
scripts/labvm.sh --quiet --timeout 1800 --keep "$tmp/lab" --build "$O" --add "$O/tests/lab/bench_policy" -- \
	bench_policy --jobs 1 || true
# the figures, and why a run stopped (Criterion's assertion lines)
tr -d '\r' <"$tmp/lab/serial.log" | sed 's/\x1b\[[0-9;]*m//g' |
	grep -E '^BENCH|QVISOR-RUN-EXIT|Assertion|^\[----\]   [^ ]|FAIL'
echo "host load after: $(cut -d' ' -f1-3 /proc/loadavg)"
grep -q 'QVISOR-RUN-EXIT 0' "$tmp/lab/serial.log"
