#!/bin/bash
# Bench: set up and tear down N TAPs on a bridge (create, enslave, up; then
# delete) in a throwaway network namespace, through qvisor's netlink path
# versus iproute2 commands in a shell loop, side by side in one run.
#   scripts/bench/net.sh [N]     (default 200; needs root)
# Env: O=build dir (default build-bench-net).
set -euo pipefail
N=${1:-200}
cd "$(dirname "$0")/../.."
O=${O:-build-bench-net}
[ "$(id -u)" -eq 0 ] || { echo "net.sh: needs root" >&2; exit 1; }

make -s O="$O" "$O/lib/libqv-net.a" "$O/lib/libqv-common.a" >/dev/null
PKG="json-c libnl-3.0 libnl-route-3.0"
cc -O2 -std=gnu11 -D_GNU_SOURCE -I. $(pkg-config --cflags $PKG) \
	-o "$O/bench_taps" tests/net/bench_taps.c \
	-L"$O/lib" -lqv-net -lqv-common $(pkg-config --libs $PKG)

# Everything below runs inside one private netns that vanishes at exit.
exec unshare --net bash -s "$N" "$O/bench_taps" <<'INNER'
set -euo pipefail
N=$1 DRIVER=$2
ip link set lo up
now() { date +%s.%N; }

# iproute2 baseline: 4 commands per TAP, as an operator script would do.
ip link add br-ip type bridge
ip link set br-ip up
t0=$(now)
for ((i = 0; i < N; i++)); do
	ip tuntap add dev ipb$i mode tap vnet_hdr
	ip link set ipb$i master br-ip
	ip link set ipb$i up
done
t1=$(now)
for ((i = 0; i < N; i++)); do ip link del ipb$i; done
t2=$(now)
ip link del br-ip
calc() { awk "BEGIN { print $* }"; }
ip_setup=$(calc "$t1 - $t0"); ip_down=$(calc "$t2 - $t1"); ip_total=$(calc "$t2 - $t0")
printf 'iproute2 %d taps: setup %.3f teardown %.3f total %.3f\n' "$N" "$ip_setup" "$ip_down" "$ip_total"

for mode in each batch; do
	out=$("$DRIVER" "$N" br-qv "$mode")
	echo "$out"
	read -r _ _ _ _ qs _ qd _ qt <<<"$out"
	printf '  ratio iproute2/qvisor-%s: setup %.1fx teardown %.1fx total %.1fx\n' "$mode" \
		"$(calc "$ip_setup / $qs")" "$(calc "$ip_down / $qd")" "$(calc "$ip_total / $qt")"
	ip link del br-qv
done
left=$(ip -o link show | grep -c -E 'ipb|qvb' || true)
echo "links left behind: $left"
INNER
