#!/bin/bash
# Bench: program VMS x RULES firewall rules (plus per-VM anti-spoofing) as one
# transaction through qvisor's generator + libnftables, versus the same
# ruleset loaded with `nft -f FILE`, and versus the iptables + ebtables
# equivalent (iptables-restore + ebtables-restore); then the time of one live
# rule change with everything loaded. All in one throwaway network namespace.
#   scripts/bench/firewall.sh [VMS] [RULES] [REPEAT]   (default 100 10 5; needs root)
# Env: O=build dir (default build-bench-fw).
set -euo pipefail
VMS=${1:-100} RULES=${2:-10} REPEAT=${3:-5}
cd "$(dirname "$0")/../.."
O=${O:-build-bench-fw}
[ "$(id -u)" -eq 0 ] || { echo "firewall.sh: needs root" >&2; exit 1; }
for t in nft iptables-restore ebtables-restore; do
	command -v $t >/dev/null || { echo "firewall.sh: $t missing (apt: nftables iptables ebtables)" >&2; exit 1; }
done

. scripts/bench/lib.sh
build_bench_fw "$O"
DIR=$(mktemp -d /tmp/qv-bench-fw.XXXXXX)
trap 'rm -rf "$DIR"' EXIT

exec unshare --net bash -s "$VMS" "$RULES" "$REPEAT" "$O/bench_fw" "$DIR" <<'INNER'
set -euo pipefail
VMS=$1 RULES=$2 REPEAT=$3 DRIVER=$4 DIR=$5
ip link set lo up
now() { date +%s.%N; }
calc() { awk "BEGIN { print $* }"; }
median() { sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

: >"$DIR/q" ; : >"$DIR/qc"; : >"$DIR/c" ; : >"$DIR/cc"; : >"$DIR/g"; : >"$DIR/gc"
: >"$DIR/n" ; : >"$DIR/nc"; : >"$DIR/x" ; : >"$DIR/xc"
# wall and CPU (user+sys) seconds of a command: "R C"
TIMEFORMAT='%R %U %S'
timed() { { time "$@" >/dev/null; } 2>&1 | awk '{ print $1, $2 + $3 }'; }
for ((i = 0; i < REPEAT; i++)); do
	out=$("$DRIVER" "$VMS" "$RULES" "$DIR")
	awk '/qvisor-load/ { print $(NF-4) }' <<<"$out" >>"$DIR/q"
	awk '/qvisor-load/ { print $(NF-1) }' <<<"$out" >>"$DIR/qc"
	awk '/qvisor-change/ { print $(NF-7) }' <<<"$out" >>"$DIR/c"
	awk '/qvisor-change/ { print $(NF-1) }' <<<"$out" >>"$DIR/cc"
	awk '/qvisor-group/ { print $(NF-7) }' <<<"$out" >>"$DIR/g"
	awk '/qvisor-group/ { print $(NF-1) }' <<<"$out" >>"$DIR/gc"

	read -r w c < <(timed nft -f "$DIR/ruleset.nft")
	echo "$w" >>"$DIR/n"; echo "$c" >>"$DIR/nc"
	nft delete table bridge qvisor

	read -r w c < <(timed sh -c "iptables-restore $DIR/iptables.rules && ebtables-restore <$DIR/ebtables.rules")
	echo "$w" >>"$DIR/x"; echo "$c" >>"$DIR/xc"
	iptables -F; iptables -X; ebtables -F; ebtables -X
done
q=$(median <"$DIR/q") n=$(median <"$DIR/n") x=$(median <"$DIR/x") c=$(median <"$DIR/c")
qc=$(median <"$DIR/qc") nc=$(median <"$DIR/nc") xc=$(median <"$DIR/xc") cc=$(median <"$DIR/cc")
g=$(median <"$DIR/g") gc=$(median <"$DIR/gc")
nrules=$(grep -c '^add rule' "$DIR/ruleset.nft")
nelems=$(awk '/^add element/ { n += gsub(/, /, "") + 1 } END { print n + 0 }' "$DIR/ruleset.nft")
printf 'ruleset: %d VMs x %d rules + anti-spoofing = %d nft rules + %d set/map elements (%d iptables+ebtables lines)\n' \
	"$VMS" "$RULES" "$nrules" "$nelems" "$(grep -c '^-A' "$DIR/iptables.rules" "$DIR/ebtables.rules" | awk -F: '{ s += $2 } END { print s }')"
echo "load (median of $REPEAT)                                   wall s    cpu s"
printf '  qvisor (generate + libnftables, 1 transaction)        %7.4f  %7.4f\n' "$q" "$qc"
printf '  nft -f FILE (same ruleset)                            %7.4f  %7.4f\n' "$n" "$nc"
printf '  iptables-restore + ebtables-restore (equivalent)      %7.4f  %7.4f\n' "$x" "$xc"
printf '  ratio nft-f/qvisor: wall %.2fx cpu %.2fx; xtables/qvisor: wall %.2fx cpu %.2fx\n' \
	"$(calc "$n / $q")" "$(calc "$nc / $qc")" "$(calc "$x / $q")" "$(calc "$xc / $qc")"
printf 'live change with %d rules loaded (median of 50 x %d, 1 transaction each; goal < 5 ms)\n' \
	"$((VMS * RULES + 10))" "$REPEAT"
printf '  one NIC (flush+refill of its 2 chains):        wall %.2f ms cpu %.2f ms\n' \
	"$(calc "$c * 1000")" "$(calc "$cc * 1000")"
printf '  one group rule (flush+refill of 2 chains):     wall %.2f ms cpu %.2f ms\n' \
	"$(calc "$g * 1000")" "$(calc "$gc * 1000")"
echo "machine load: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs"
left=$(nft list ruleset | wc -c)
echo "nft ruleset bytes left behind: $left"
INNER
