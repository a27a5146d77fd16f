#!/bin/bash
# Build and run libFuzzer targets for a bounded time.
#   scripts/fuzz.sh TIME tests/fuzz/fuzz_rpc.c [tests/fuzz/fuzz_spec.c ...]
# Each tests/fuzz/fuzz_<name>.c is built with
#   clang -fsanitize=fuzzer,address,undefined -g -O1
# and linked against an archive of common/*.c, qemu/*.c and daemon/rpc*.c
# compiled with clang (only the objects a target needs are pulled in). It then
# runs for TIME seconds on build-fuzz/corpus-<name>, seeded from built-in
# examples and from tests/fuzz/corpus-<name>/ when that exists. Crash inputs
# land in build-fuzz/artifacts-<name>/. Exits non-zero if any target fails to
# build or finds a crash.
set -uo pipefail

usage() { echo "usage: $0 TIME fuzz_src.c..." >&2; exit 2; }
[ $# -ge 2 ] || usage
TIME=$1; shift
[[ $TIME =~ ^[0-9]+$ ]] || usage

cd "$(dirname "$0")/.."
OUT=build-fuzz
CC=${FUZZ_CC:-clang}
command -v "$CC" >/dev/null || { echo "fuzz: $CC not found (scripts/install-deps.sh)" >&2; exit 1; }

PKGS="json-c liburing libnl-3.0 libnl-route-3.0 libseccomp sqlite3 libxml-2.0"
PKG_CFLAGS=$(pkg-config --cflags $PKGS)
PKG_LIBS=$(pkg-config --libs $PKGS)
SAN="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
CFLAGS="-g -O1 -std=gnu11 -D_GNU_SOURCE -I. $PKG_CFLAGS $SAN"

mkdir -p "$OUT/obj"

# --- the support archive ------------------------------------------------------
objs=()
for src in common/*.c qemu/*.c daemon/rpc*.c; do
	[ -f "$src" ] || continue
	obj=$OUT/obj/${src//\//_}.o
	if [ ! -f "$obj" ] || [ "$src" -nt "$obj" ] || [ -n "$(find "${src%/*}" -name '*.h' -newer "$obj" 2>/dev/null | head -1)" ]; then
		if ! $CC $CFLAGS -fsanitize=fuzzer-no-link -c -o "$obj" "$src" 2>"$obj.log"; then
			# A file mid-edit elsewhere in the tree; fatal only if a target needs it.
			echo "fuzz: warning: $src does not compile, leaving it out (see $obj.log)" >&2
			rm -f "$obj"
			continue
		fi
	fi
	objs+=("$obj")
done
rm -f "$OUT/libfuzzdeps.a"
ar rcs "$OUT/libfuzzdeps.a" "${objs[@]}"

# --- seeds ---------------------------------------------------------------------
seed() { # seed <dir> <name> <content>
	printf '%s' "$3" >"$1/seed-$2"
}

builtin_seeds() { # builtin_seeds <name> <dir>
	local d=$2
	case $1 in
	rpc)
		seed "$d" call '{"jsonrpc":"2.0","id":1,"method":"vm.start","params":{"name":"web1"}}'
		seed "$d" notify '{"jsonrpc":"2.0","method":"events.subscribe"}'
		seed "$d" strid '{"jsonrpc":"2.0","id":"a-1","method":"vm.list","params":[]}'
		seed "$d" nullid '{"jsonrpc":"2.0","id":null,"method":"vm.define","params":{"spec":{"name":"a","vcpus":1}}}'
		seed "$d" batch '[{"jsonrpc":"2.0","id":1,"method":"a.b"}]'
		seed "$d" badver '{"jsonrpc":"1.0","id":2.5,"method":"x"}'
		;;
	spec)
		seed "$d" min '{"name":"a","vcpus":1,"memory":"256M"}'
		seed "$d" full '{"name":"web1","uuid":"0b6c1a4e-1111-4222-8333-444455556666","vcpus":2,"memory":"1G","machine":"pc","accel":"tcg","kernel":"/k","initrd":"/i","cmdline":"console=ttyS0","disks":[{"path":"/x.qcow2","format":"qcow2","readonly":true,"limits":{"rbps":"1M","wiops":7,"weight":3}}],"nics":[{"network":"lan"},{"bridge":"br0","mac":"02:00:00:00:00:01"}],"serial":{"log":false},"limits":{"cpu_max":"20%","memory_max":"2G","pids_max":100},"restart":{"policy":"on-failure","backoff_ms":0}}'
		;;
	libvirt)
		seed "$d" min "<domain type='qemu'><name>a</name><memory unit='MiB'>256</memory><os><type arch='x86_64' machine='q35'>hvm</type><kernel>/k</kernel><cmdline>console=ttyS0</cmdline></os></domain>"
		# libvirt's own domain XMLs, when the shared corpus is next to the tree
		for c in ../shared ../../shared; do
			[ -d "$c/interop/libvirt-9.0-qemuxml2argv" ] &&
				cp -n "$c/interop/libvirt-9.0-qemuxml2argv"/*.xml "$d"/ 2>/dev/null && break
		done
		seed "$d" devs "<domain type='kvm'><name>b</name><memory>262144</memory><vcpu cpuset='0-1' current='1'>2</vcpu><os><type>hvm</type><boot dev='hd'/></os><cputune><shares>100</shares><quota>50000</quota></cputune><memtune><hard_limit unit='G'>1</hard_limit></memtune><devices><disk type='file'><driver name='qemu' type='qcow2'/><source file='/a.qcow2'/><target dev='vda'/><iotune><read_bytes_sec>1000</read_bytes_sec></iotune><boot order='1'/></disk><interface type='bridge'><mac address='52:54:00:00:00:01'/><source bridge='br0'/><model type='virtio'/></interface><serial type='pty'/><memballoon model='none'/><graphics type='vnc'/></devices><metadata><q:vm xmlns:q='urn:qvisor:libvirt:1' accel='auto' pids-max='5'><q:disk index='0' weight='7'/></q:vm></metadata></domain>"
		;;
	*)
		seed "$d" empty '{}'
		;;
	esac
}

# --- build and run each target ---------------------------------------------------
fail=0
summary=()
for src in "$@"; do
	base=$(basename "$src" .c)
	name=${base#fuzz_}
	bin=$OUT/$base
	corpus=$OUT/corpus-$name
	artifacts=$OUT/artifacts-$name
	echo "=== $base: build"
	if ! $CC $CFLAGS -fsanitize=fuzzer -o "$bin" "$src" "$OUT/libfuzzdeps.a" $PKG_LIBS -lm -lpthread; then
		echo "FAILED to build $src" >&2
		summary+=("$base: BUILD FAILED")
		fail=1
		continue
	fi
	mkdir -p "$corpus" "$artifacts"
	builtin_seeds "$name" "$corpus"
	[ -d "tests/fuzz/corpus-$name" ] && cp -n "tests/fuzz/corpus-$name"/* "$corpus"/ 2>/dev/null
	echo "=== $base: run ${TIME}s"
	log=$OUT/$base.log
	"$bin" -max_total_time="$TIME" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix="$artifacts/" "$corpus" >"$log" 2>&1
	rc=$?
	runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$')
	cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
	files=$(ls "$corpus" | wc -l)
	if [ $rc -ne 0 ]; then
		echo "FAILED: $base exited $rc; crash input(s) in $artifacts/, log $log" >&2
		grep -m5 -E 'ERROR|runtime error|deadly signal' "$log" >&2
		summary+=("$base: CRASH (rc=$rc, ${runs:-?} execs)")
		fail=1
	else
		summary+=("$base: ok, ${runs:-?} execs in ${TIME}s, ${cov:-cov ?}, corpus $files files")
	fi
done

echo "=== fuzz summary"
printf '  %s\n' "${summary[@]}"
exit $fail
