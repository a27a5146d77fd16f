#!/bin/bash
# Copy-engine benchmark: qvisor's io_uring engine vs cp, qemu-img convert and
# dd on 2 GiB images (dense and 10% sparse), side by side in one run, page
# cache dropped before every run. Needs root (drop_caches).
#   scripts/bench/copy.sh [BUILD_DIR] [BENCH_DIR] [REPEAT]
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

drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }
# time_cmd CMD... -> seconds (best of $rep), including a final sync of the copy
time_cmd() {
	local best=""
	for _ in $(seq "$rep"); do
		rm -f out; drop
		local t0=$(date +%s.%N)
		"$@" >/dev/null 2>&1
		sync out 2>/dev/null || sync
		local t=$(echo "$(date +%s.%N) - $t0" | bc -l)
		if [ -z "$best" ] || (( $(echo "$t < $best" | bc -l) )); then best=$t; fi
	done
	echo "$best"
}

for img in dense sparse; do
	cmp_ok=""
	t_read=$(time_cmd dd if=$img of=/dev/null bs=1M)
	t_qv=$(time_cmd "$driver" -n $img out); cmp -s $img out && cmp_ok=ok || cmp_ok=DIFF
	t_cp=$(time_cmd cp --sparse=always --reflink=never $img out)
	t_qi=$(time_cmd qemu-img convert -f raw -O raw -m 16 -W $img out)
	t_dd=$(time_cmd dd if=$img of=out bs=1M conv=sparse)
	echo
	echo "== $img ${size_mib} MiB (qvisor copy content: $cmp_ok), best of $rep"
	printf '%-34s %8s %10s\n' tool seconds MB/s
	best_peer=""
	for row in "qvisor-engine:$t_qv" "cp --sparse=always:$t_cp" \
		   "qemu-img convert -m 16 -W:$t_qi" "dd bs=1M conv=sparse:$t_dd" \
		   "(dd read src -> /dev/null):$t_read"; do
		name=${row%%:*} t=${row##*:}
		printf '%-34s %8.2f %10.0f\n' "$name" "$t" "$(echo "$size_mib * 1.048576 / $t" | bc -l)"
	done
	for t in $t_cp $t_qi $t_dd; do
		if [ -z "$best_peer" ] || (( $(echo "$t < $best_peer" | bc -l) )); then best_peer=$t; fi
	done
	printf 'ratio qvisor/best-peer (speed): %.2fx\n' "$(echo "$best_peer / $t_qv" | bc -l)"
	printf 'qvisor MB/s as fraction of plain sequential read: %.2f\n' \
		"$(echo "$t_read / $t_qv" | bc -l)"
done
