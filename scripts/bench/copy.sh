#!/bin/bash
# Copy-engine benchmark: qvisor's engine vs cp, qemu-img convert and dd on
# 2 GiB images (dense and 10% sparse), side by side in one run. Needs root
# (drop_caches).
#   scripts/bench/copy.sh [BUILD_DIR] [BENCH_DIR] [REPEAT]
#
# What is measured, the same for every tool: page cache dropped (after a
# sync), then wall time from start until the copy is on disk: the tool itself
# plus `sync out` (fsync of the copy). qvisor fsyncs inside the engine, so its
# `sync out` finds nothing left to write; the peers' buffered writes are
# flushed by it. Repeats are interleaved (round r runs every tool once) so
# that bursts of noise on the shared disk hit all tools alike; the table shows
# the best and the median of REPEAT runs, and the ratio uses the best.
#
# Rows: "qvisor" is the default engine (FICLONE, then copy_file_range per
# data extent, io_uring if the kernel refuses); "qvisor io_uring" is the
# io_uring engine alone (driver -n: no reflink, no kernel copy).
set -euo pipefail
src_dir=$(cd "$(dirname "$0")/../.." && pwd)
O=$(realpath -m "${1:-$src_dir/build}")
bench=${2:-/var/tmp/qv-bench-copy}
rep=${3:-1}
size_mib=2048

make -C "$src_dir" -s O="$O" "$O/lib/libqv-storage.a" "$O/lib/libqv-common.a"
driver=$O/copy-driver
cc -O2 -std=gnu11 -D_GNU_SOURCE -I"$src_dir" "$src_dir/tests/storage/copy-driver.c" \
	"$O/lib/libqv-storage.a" "$O/lib/libqv-common.a" $(pkg-config --libs liburing json-c) \
	-o "$driver"

mkdir -p "$bench"
trap 'rm -rf "$bench"' EXIT
cd "$bench"
echo "creating images in $bench ($(df -T . | awk 'NR==2{print $2}'))"
head -c $((size_mib << 20)) /dev/urandom > dense
truncate -s ${size_mib}M sparse
for i in $(seq 0 9); do # 10% data: 10 extents of size/100
	dd if=/dev/urandom of=sparse bs=1M count=$((size_mib / 100)) \
		seek=$((i * size_mib / 10)) conv=notrunc status=none
done
sync

names=("qvisor" "qvisor io_uring (-n)" "cp --sparse=always" "qemu-img convert -m 16 -W"
       "dd bs=1M conv=sparse" "(dd read src -> /dev/null)")
peers=(2 3 4) # indexes of the peer tools in names

run_tool() { # INDEX IMG
	case $1 in
	0) "$driver" "$2" out ;;
	1) "$driver" -n "$2" out ;;
	2) cp --sparse=always --reflink=never "$2" out ;;
	3) qemu-img convert -f raw -O raw -m 16 -W "$2" out ;;
	4) dd if="$2" of=out bs=1M conv=sparse ;;
	5) dd if="$2" of=/dev/null bs=1M ;;
	esac
}

drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }
# time_one INDEX IMG -> seconds until the copy is on disk
time_one() {
	rm -f out; drop
	local t0=$(date +%s.%N)
	run_tool "$1" "$2" >/dev/null 2>&1 || echo "warning: ${names[$1]} failed" >&2
	[ -e out ] && sync out
	echo "$(date +%s.%N) - $t0" | bc -l
}

stat_of() { # best|med TIMES...
	local how=$1; shift
	printf '%s\n' "$@" | sort -g | awk -v how="$how" '{a[NR]=$1}
		END { print (how == "best") ? a[1] : a[int((NR + 1) / 2)] }'
}

for img in dense sparse; do
	declare -A times=()
	cmp_ok="ok"
	for r in $(seq "$rep"); do
		for i in "${!names[@]}"; do
			times[$i]+="$(time_one "$i" "$img") "
			if [ "$i" -le 1 ] && ! cmp -s "$img" out; then cmp_ok="DIFF(${names[$i]})"; fi
		done
	done
	echo
	echo "== $img ${size_mib} MiB (qvisor copy content: $cmp_ok), best and median of $rep"
	printf '%-30s %8s %8s %10s\n' tool best median "MB/s best"
	declare -a best=()
	for i in "${!names[@]}"; do
		# shellcheck disable=SC2086
		best[$i]=$(stat_of best ${times[$i]})
		# shellcheck disable=SC2086
		med=$(stat_of med ${times[$i]})
		printf '%-30s %8.2f %8.2f %10.0f\n' "${names[$i]}" "${best[$i]}" "$med" \
			"$(echo "$size_mib * 1.048576 / ${best[$i]}" | bc -l)"
	done
	best_peer=""
	for i in "${peers[@]}"; do
		t=${best[$i]}
		if [ -z "$best_peer" ] || (( $(echo "$t < $best_peer" | bc -l) )); then best_peer=$t; fi
	done
	printf 'ratio qvisor/best-peer (speed): %.2fx\n' "$(echo "$best_peer / ${best[0]}" | bc -l)"
	printf 'ratio qvisor io_uring/best-peer (speed): %.2fx\n' \
		"$(echo "$best_peer / ${best[1]}" | bc -l)"
	printf 'qvisor MB/s as fraction of plain sequential read: %.2f\n' \
		"$(echo "${best[5]} / ${best[0]}" | bc -l)"
	unset times best
done
