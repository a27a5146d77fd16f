#!/bin/bash
# Copy-engine benchmark: qvisor's engine vs cp, qemu-img convert and dd on
# 2 GiB images (dense and 10% sparse), side by side in one run. Needs root
# (drop_caches).
#   scripts/bench/copy.sh [BUILD_DIR] [BENCH_DIR] [REPEAT]
#   SCENARIOS="idle busy" (default both)
#
# What is measured, the same for every tool: page cache dropped (after a
# sync), then wall time from start until the copy is on disk: the tool itself
# plus `sync out` (fsync of the copy). qvisor fsyncs inside the engine, so its
# `sync out` finds nothing left to write; the peers' buffered writes are
# flushed by it. CPU is the tool's user+system time.
#
# Fairness on a shared, noisy disk: repeats are interleaved (round r runs
# every tool once), the order rotates from round to round, and an untimed
# 256 MiB copy before each round wakes the disk (the first copy after a
# pause is often 2-3x slower here, whichever tool it is). The table shows
# the best and the median of REPEAT runs; the ratios use both.
#
# Scenarios: "idle" is the machine as it is; "busy" runs one CPU-bound
# spinner per core for the whole scenario, standing in for the guests a KVM
# host is there to run.
#
# Rows: "qvisor" is the default engine (FICLONE, then O_DIRECT io_uring);
# "qvisor buffered (-B)" the page-cache path (FICLONE, then copy_file_range).
# Two reference rows are not copies: a plain read of the source, and the
# write floor (the dense image written from RAM to the disk with O_DIRECT,
# nothing to read): no copy on this disk can beat the latter.
set -euo pipefail
src_dir=$(cd "$(dirname "$0")/../.." && pwd)
O=$(realpath -m "${1:-$src_dir/build}")
bench=${2:-/var/tmp/qv-bench-copy}
rep=${3:-5}
scenarios=${SCENARIOS:-idle busy}
size_mib=2048

make -C "$src_dir" -s O="$O" "$O/lib/libqv-storage.a" "$O/lib/libqv-common.a"
driver=$O/copy-driver
cc -O2 -std=gnu11 -D_GNU_SOURCE -I"$src_dir" "$src_dir/tests/storage/copy-driver.c" \
	"$O/lib/libqv-storage.a" "$O/lib/libqv-common.a" $(pkg-config --libs liburing json-c) \
	-o "$driver"

spinners=()
stop_spinners() { [ ${#spinners[@]} -eq 0 ] || kill "${spinners[@]}" 2>/dev/null || true; spinners=(); }
mkdir -p "$bench"
trap 'stop_spinners; rm -rf "$bench"' EXIT
cd "$bench"
echo "creating images in $bench ($(df -T . | awk 'NR==2{print $2}'), $(nproc) CPUs)"
head -c $((size_mib << 20)) /dev/urandom > dense
truncate -s ${size_mib}M sparse
for i in $(seq 0 9); do # 10% data: 10 extents of size/100
	dd if=/dev/urandom of=sparse bs=1M count=$((size_mib / 100)) \
		seek=$((i * size_mib / 10)) conv=notrunc status=none
done
sync

# The dense image also sits in RAM (tmpfs) for the write-floor row: writing
# it to the disk with nothing to read is the fastest any copy can finish.
ram=$(mktemp -d /dev/shm/qv-bench-copy.XXXXXX)
trap 'stop_spinners; rm -rf "$bench" "$ram"' EXIT
cp dense "$ram/dense"

names=("qvisor" "qvisor buffered (-B)" "cp --sparse=always" "qemu-img convert -m 16 -W"
       "dd bs=1M conv=sparse" "(dd read src -> /dev/null)" "(write floor: RAM -> disk)")
peers=(2 3 4) # indexes of the peer tools in names

run_tool() { # INDEX IMG
	case $1 in
	0) "$driver" "$2" out ;;
	1) "$driver" -B "$2" out ;;
	2) cp --sparse=always --reflink=never "$2" out ;;
	3) qemu-img convert -f raw -O raw -m 16 -W "$2" out ;;
	4) dd if="$2" of=out bs=1M conv=sparse ;;
	5) dd if="$2" of=/dev/null bs=1M ;;
	6) dd if="$ram/$2" of=out bs=4M oflag=direct ;;
	esac
}

drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }
# time_one INDEX IMG -> "wall_seconds cpu_seconds" until the copy is on disk
time_one() {
	local TIMEFORMAT='%R %U %S' tf=$bench/.time
	rm -f out; drop
	{ time {
		run_tool "$1" "$2" >/dev/null 2>&1 || echo "warning: ${names[$1]} failed" >&3
		if [ -e out ]; then sync out; fi
	} ; } 3>&2 2>"$tf"
	awk '{ printf "%s %.2f\n", $1, $2 + $3 }' "$tf"
}
warm_up() { rm -f out; dd if="$1" of=out bs=1M count=256 status=none; sync out; rm -f out; }

stat_of() { # best|med VALUES...
	local how=$1; shift
	printf '%s\n' "$@" | sort -g | awk -v how="$how" '{a[NR]=$1}
		END { print (how == "best") ? a[1] : a[int((NR + 1) / 2)] }'
}
ratio() { echo "$1 / $2" | bc -l; }

for scen in $scenarios; do
	if [ "$scen" = busy ]; then
		for _ in $(seq "$(nproc)"); do sh -c 'while :; do :; done' & spinners+=($!); done
	fi
	for img in dense sparse; do
		declare -A wall=() cpu=()
		cmp_ok="ok"
		n=${#names[@]}
		[ "$img" = dense ] || n=$((n - 1)) # no write floor for the sparse image
		for r in $(seq "$rep"); do
			warm_up "$img"
			for k in $(seq 0 $((n - 1))); do
				i=$(( (k + r - 1) % n ))
				read -r w c < <(time_one "$i" "$img")
				wall[$i]+="$w "; cpu[$i]+="$c "
				if [ "$i" -le 1 ] && ! cmp -s "$img" out; then
					cmp_ok="DIFF(${names[$i]})"
				fi
			done
		done
		echo
		echo "== $scen: $img ${size_mib} MiB (qvisor copy content: $cmp_ok), best and median of $rep"
		printf '%-30s %8s %8s %10s %8s\n' tool best median "MB/s best" "CPU s"
		declare -a best=() med=()
		for i in $(seq 0 $((n - 1))); do
			# shellcheck disable=SC2086
			best[$i]=$(stat_of best ${wall[$i]})
			# shellcheck disable=SC2086
			med[$i]=$(stat_of med ${wall[$i]})
			# shellcheck disable=SC2086
			printf '%-30s %8.2f %8.2f %10.0f %8.2f\n' "${names[$i]}" "${best[$i]}" \
				"${med[$i]}" "$(echo "$size_mib * 1.048576 / ${best[$i]}" | bc -l)" \
				"$(stat_of med ${cpu[$i]})"
		done
		bp="" mp=""
		for i in "${peers[@]}"; do
			if [ -z "$bp" ] || (( $(echo "${best[$i]} < $bp" | bc -l) )); then bp=${best[$i]}; fi
			if [ -z "$mp" ] || (( $(echo "${med[$i]} < $mp" | bc -l) )); then mp=${med[$i]}; fi
		done
		printf 'ratio qvisor/best-peer (speed): best %.2fx, median %.2fx\n' \
			"$(ratio "$bp" "${best[0]}")" "$(ratio "$mp" "${med[0]}")"
		printf 'ratio qvisor buffered/best-peer (speed): best %.2fx, median %.2fx\n' \
			"$(ratio "$bp" "${best[1]}")" "$(ratio "$mp" "${med[1]}")"
		printf 'qvisor MB/s as fraction of plain sequential read: %.2f (best), %.2f (median)\n' \
			"$(ratio "${best[5]}" "${best[0]}")" "$(ratio "${med[5]}" "${med[0]}")"
		if [ "$n" -gt 6 ]; then
			printf 'qvisor MB/s as fraction of the write floor: %.2f (best), %.2f (median)\n' \
				"$(ratio "${best[6]}" "${best[0]}")" "$(ratio "${med[6]}" "${med[0]}")"
		fi
		unset wall cpu best med
	done
	stop_spinners
done
