# Shell helpers shared by the benchmarks (source it).

# Milliseconds since the epoch.
now_ms() { date +%s%3N; }
# The median of the numbers on stdin (one per line), two decimals when even.
median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.2f\n", (a[NR/2]+a[NR/2+1])/2}'; }
# $1/bench_fw (tests/net/bench_fw.c), the firewall benches' driver, against
# the libraries of build dir $1.
build_bench_fw() {
	local pkg="json-c libnl-3.0 libnl-route-3.0 libnftables"
	make -s O="$1" "$1/lib/libqv-net.a" "$1/lib/libqv-qemu.a" "$1/lib/libqv-common.a" >/dev/null
	# shellcheck disable=SC2046
	cc -O2 -std=gnu11 -D_GNU_SOURCE -I. $(pkg-config --cflags $pkg) \
		-o "$1/bench_fw" tests/net/bench_fw.c \
		-L"$1/lib" -lqv-net -lqv-qemu -lqv-common $(pkg-config --libs $pkg)
}
