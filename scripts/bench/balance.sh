#!/bin/bash
# Bench: one cluster balancer round (sched/balance.h) for 1,000 hosts /
# 20,000 VMs (goal < 1 s) against the simulator's decision round
# (qv_pol_round) for the same policy on the same synthetic datacenter
# (scripts/bench/balance_round.c; prints the ratio policy round / balancer).
#   scripts/bench/balance.sh [HOSTS] [VMS] [POLICY...]
# Env: O=build dir (default build).
set -euo pipefail
cd "$(dirname "$0")/../.."
O=${O:-build}
H=${1:-1000}
V=${2:-20000}
shift $(($# > 2 ? 2 : $#)) || true
POLICIES=${*:-thr-mmt iqr-mmt lr-mmt lrr-mmt qvisor}
make -s O="$O" "$O/lib/libqv-sched.a" "$O/lib/libqv-common.a"
tmp=$(mktemp -d /tmp/qv-bench-balance.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
cc -O2 -std=gnu11 -D_GNU_SOURCE -I. -o "$tmp/balance_round" scripts/bench/balance_round.c \
	"$O/lib/libqv-sched.a" "$O/lib/libqv-common.a" $(pkg-config --libs json-c) -lm
echo "== Balancer round vs the simulator's round, $H hosts / $V VMs (CPU time; goal < 1 s)"
# shellcheck disable=SC2086
"$tmp/balance_round" "$H" "$V" $POLICIES
