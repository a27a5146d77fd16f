#!/bin/bash
# Build the qvisor test guest: a Debian 6.1 kernel plus a busybox initramfs.
#
#   scripts/mkguest.sh [OUTDIR]                 base guest (default build/guest)
#   scripts/mkguest.sh --extra DIR --out FILE.img [--base OUTDIR]
#                                               base initramfs + DIR + its libs
#
# OUTDIR receives vmlinuz, initrd.img (gzip cpio newc), kernel-version,
# bin/{dirtier,blkpat,ostflood,cpuload,tcpstream} (static; usable on the host too) and cache/ (the kernel
# .deb, never downloaded twice).  Cached: when OUTDIR/.stamp is newer than
# this script and scripts/guest/*, nothing is done.  See docs/test-guest.md.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SRC=$REPO/scripts/guest
SELF=$REPO/scripts/mkguest.sh

# Modules the guest needs (built-ins are skipped, dependencies are added).
WANT_MODULES=(virtio virtio_ring virtio_pci virtio_pci_modern_dev
	virtio_pci_legacy_dev virtio_blk virtio_net net_failover failover
	button evdev)
WANT_MODULES+=(isofs) # cloud-init seed: the guest mounts the cidata ISO
WANT_MODULES+=(virtio_console) # guest agent channel (virtio-serial)
WANT_MODULES+=(virtio_balloon) # memory balloon (spec.balloon)

die() { echo "mkguest: $*" >&2; exit 1; }
msg() { echo "mkguest: $*" >&2; }

usage() {
	sed -n '2,12p' "$SELF" | sed 's/^# \{0,1\}//'
	exit "${1:-0}"
}

up_to_date() { # $1 = outdir
	[ -f "$1/.stamp" ] && [ -f "$1/vmlinuz" ] && [ -f "$1/initrd.img" ] || return 1
	[ -z "$(find "$SRC" "$SELF" -newer "$1/.stamp" -print -quit)" ]
}

# ---- kernel ---------------------------------------------------------------
pick_kernel_deb() { # $1 = cache dir; prints path of the .deb to use
	local cache=$1 pkg deb
	pkg=${QV_GUEST_KERNEL:-}
	if [ -z "$pkg" ]; then
		# Prefer what is cached: offline and reproducible.
		deb=$(find "$cache" -maxdepth 1 -name 'linux-image-6.1.0-*-amd64_*.deb' \
			! -name '*-cloud-*' ! -name '*-rt-*' | sort -V | tail -n1)
		if [ -n "$deb" ]; then
			echo "$deb"
			return
		fi
		pkg=$(apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-amd64$' |
			awk '{print $1}' | sort -V | tail -n1)
		[ -n "$pkg" ] || die "no linux-image-6.1.0-*-amd64 known to apt-cache (apt-get update?)"
	fi
	deb=$(find "$cache" -maxdepth 1 -name "${pkg}_*.deb" | sort -V | tail -n1)
	if [ -z "$deb" ]; then
		msg "downloading $pkg"
		(cd "$cache" && apt-get download "$pkg" 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2) ||
			die "apt-get download $pkg failed"
		deb=$(find "$cache" -maxdepth 1 -name "${pkg}_*.deb" | sort -V | tail -n1)
		[ -n "$deb" ] || die "apt-get download $pkg produced no .deb"
	fi
	echo "$deb"
}

# Print the modules to load, dependencies first, as paths relative to
# lib/modules/KVER.  Uses modules.dep (generated with depmod -b if absent).
module_order() { # $1 = extracted root, $2 = kver
	local root=$1 kver=$2 mdir=$1/lib/modules/$2 m
	[ -f "$mdir/modules.dep" ] || depmod -b "$root" "$kver" ||
		die "depmod failed for $kver"
	declare -gA MOD_DONE=()
	for m in "${WANT_MODULES[@]}"; do
		if grep -qE "/${m}\.ko$" "$mdir/modules.builtin" 2>/dev/null; then
			msg "$m is built in"
			continue
		fi
		mod_visit "$mdir" "$m"
	done
}

mod_visit() { # $1 = mdir, $2 = module name (dashes or underscores)
	local mdir=$1 name=${2//-/_} line path deps d
	[ -z "${MOD_DONE[$name]:-}" ] || return 0
	MOD_DONE[$name]=1
	line=$(grep -E "(^|/)(${name}|${name//_/-})\.ko(\.xz|\.zst|\.gz)?:" "$mdir/modules.dep" | head -n1) ||
		die "module $name not found in modules.dep"
	path=${line%%:*}
	deps=${line#*:}
	for d in $deps; do
		d=${d##*/}
		d=${d%%.ko*}
		mod_visit "$mdir" "$d"
	done
	echo "$path"
}

# ---- kernel part, cached per .deb and module list -------------------------------
# Fills cache/kernel-<deb>-<listhash>/ with vmlinuz, kver, mods/*.ko
# (decompressed) and load-order, so rebuilding after an init change skips
# the slow dpkg-deb -x and depmod.  Prints that directory.
prepare_kernel() { # $1 = cache dir, $2 = scratch dir
	local cache=$1 scratch=$2 deb key kdir root kver m f
	deb=$(pick_kernel_deb "$cache")
	key=$(basename "$deb" .deb)-$(echo "${WANT_MODULES[*]}" | md5sum | cut -c1-8)
	kdir=$cache/kernel-$key
	if [ -f "$kdir/.done" ]; then
		echo "$kdir"
		return
	fi
	msg "kernel package $(basename "$deb")"
	rm -rf "$kdir"
	root=$scratch/kernel
	dpkg-deb -x "$deb" "$root"
	kver=$(basename "$(find "$root/lib/modules" -mindepth 1 -maxdepth 1 -type d | head -n1)")
	[ -f "$root/boot/vmlinuz-$kver" ] || die "no vmlinuz-$kver in $deb"
	mkdir -p "$kdir/mods"
	cp "$root/boot/vmlinuz-$kver" "$kdir/vmlinuz"
	echo "$kver" >"$kdir/kver"

	module_order "$root" "$kver" >"$scratch/order"
	: >"$kdir/load-order"
	while read -r m; do
		f=$(basename "$m")
		case "$f" in
		*.ko.xz) xz -dc "$root/lib/modules/$kver/$m" >"$kdir/mods/${f%.xz}"; f=${f%.xz} ;;
		*.ko.zst) zstd -qdc "$root/lib/modules/$kver/$m" >"$kdir/mods/${f%.zst}"; f=${f%.zst} ;;
		*.ko.gz) gzip -dc "$root/lib/modules/$kver/$m" >"$kdir/mods/${f%.gz}"; f=${f%.gz} ;;
		*) cp "$root/lib/modules/$kver/$m" "$kdir/mods/$f" ;;
		esac
		echo "$f" >>"$kdir/load-order"
	done <"$scratch/order"
	rm -rf "$root"
	touch "$kdir/.done"
	echo "$kdir"
}

# ---- base guest -------------------------------------------------------------
build_base() { # $1 = outdir
	local out=$1 cache tmp kdir kver stage f b bb
	cache=$out/cache
	mkdir -p "$cache"
	tmp=$(mktemp -d "$out/.build.XXXXXX")
	trap 'rm -rf "$tmp"' EXIT

	kdir=$(prepare_kernel "$cache" "$tmp")
	kver=$(cat "$kdir/kver")

	stage=$tmp/rootfs
	mkdir -p "$stage"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,tmp,run,etc/acpi,lib/modules,root,var/log,var/run}
	chmod 1777 "$stage/tmp"

	# busybox and its applet links
	bb=$(command -v busybox || true)
	[ -n "$bb" ] && file -L "$bb" 2>/dev/null | grep -q 'statically linked' ||
		bb=/bin/busybox
	file -L "$bb" | grep -q 'statically linked' || die "busybox-static is not installed"
	cp -L "$bb" "$stage/bin/busybox"
	for f in $("$stage/bin/busybox" --list-full); do
		[ -e "$stage/$f" ] || ln -s /bin/busybox "$stage/$f"
	done

	# static helpers
	mkdir -p "$tmp/bin"
	for b in dirtier blkpat ostflood cpuload tcpstream; do
		gcc -static -O2 -Wall -Wextra -o "$tmp/bin/$b" "$SRC/$b.c" || die "cannot build $b"
		strip "$tmp/bin/$b"
		cp "$tmp/bin/$b" "$stage/bin/$b"
	done

	# modules (decompressed) and their load order
	cp "$kdir"/mods/*.ko "$stage/lib/modules/"
	cp "$kdir/load-order" "$stage/lib/modules/load-order"
	msg "modules: $(tr '\n' ' ' <"$kdir/load-order")"

	# init, ACPI, DHCP
	install -m 0755 "$SRC/init" "$stage/init"
	install -m 0755 "$SRC/udhcpc.script" "$stage/etc/udhcpc.script"
	install -m 0755 "$SRC/acpi-pwr" "$stage/etc/acpi/pwr"
	install -m 0755 "$SRC/shutdown" "$stage/sbin/shutdown" # qemu-ga guest-shutdown
	echo "PWRF pwr" >"$stage/etc/acpid.conf"
	printf 'root:x:0:0:root:/root:/bin/sh\n' >"$stage/etc/passwd"
	printf 'root:x:0:\n' >"$stage/etc/group"
	echo "$kver" >"$stage/etc/kernel-version"
	# /dev/console for the kernel's initial console (needs root; /init copes
	# without it by re-opening it from devtmpfs).
	mknod -m 600 "$stage/dev/console" c 5 1 2>/dev/null || true
	mknod -m 666 "$stage/dev/null" c 1 3 2>/dev/null || true

	(cd "$stage" && find . -mindepth 1 | LC_ALL=C sort |
		cpio --quiet -o -H newc -R 0:0) | gzip -6 -n >"$tmp/initrd.img"

	mkdir -p "$out/bin"
	cp "$kdir/vmlinuz" "$tmp/vmlinuz"
	echo "$kver" >"$tmp/kernel-version"
	mv -f "$tmp/vmlinuz" "$out/vmlinuz"
	mv -f "$tmp/initrd.img" "$out/initrd.img"
	mv -f "$tmp/kernel-version" "$out/kernel-version"
	mv -f "$tmp/bin/dirtier" "$tmp/bin/blkpat" "$tmp/bin/ostflood" "$tmp/bin/cpuload" \
		"$tmp/bin/tcpstream" "$out/bin/"
	touch "$out/.stamp"
	rm -rf "$tmp"
	trap - EXIT
	msg "built $out (kernel $kver, initrd $(du -h "$out/initrd.img" | cut -f1))"
}

ensure_base() { # $1 = outdir
	local out=$1
	mkdir -p "$out"
	up_to_date "$out" && return 0
	exec 9>"$out/.lock"
	flock 9
	up_to_date "$out" || build_base "$out"
	exec 9>&-
}

# ---- extra initramfs ----------------------------------------------------------
is_elf() { [ "$(head -c 4 "$1" 2>/dev/null | od -An -c | tr -d ' ')" = '177ELF' ]; }

build_extra() { # $1 = base outdir, $2 = extra dir, $3 = output image
	local base=$1 dir=$2 img=$3 tmp stage f lib dirs nlibs
	[ -d "$dir" ] || die "--extra $dir is not a directory"
	ensure_base "$base"
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	stage=$tmp/stage
	mkdir -p "$stage"
	cp -a "$dir/." "$stage/"

	# shared libraries (and the dynamic loader) of every ELF in DIR
	: >"$tmp/libs"
	while IFS= read -r -d '' f; do
		is_elf "$f" || continue
		ldd "$f" 2>/dev/null | awk '
			$2 == "=>" && $3 ~ /^\// { print $3 }
			$1 ~ /^\// { print $1 }' >>"$tmp/libs" || true
	done < <(find "$stage" -type f -print0)
	sort -u "$tmp/libs" -o "$tmp/libs"
	nlibs=$(wc -l <"$tmp/libs")
	while IFS= read -r lib; do
		[ -n "$lib" ] || continue
		mkdir -p "$stage$(dirname "$lib")"
		cp -L "$lib" "$stage$lib"
		# also provide the canonical path, so /lib vs /usr/lib does not matter
		f=$(readlink -f "$lib")
		if [ "$f" != "$lib" ] && [ ! -e "$stage$f" ]; then
			mkdir -p "$stage$(dirname "$f")"
			cp -L "$lib" "$stage$f"
		fi
	done <"$tmp/libs"
	if [ -s "$tmp/libs" ]; then
		mkdir -p "$stage/etc"
		dirs=$(xargs -n1 dirname <"$tmp/libs" | sort -u)
		echo "$dirs" >"$stage/etc/ld.so.conf"
		ldconfig -r "$stage" 2>/dev/null || msg "ldconfig -r failed, ignoring"
		# x86-64 loader path expected by every dynamically linked binary
		if [ ! -e "$stage/lib64/ld-linux-x86-64.so.2" ] && [ -e /lib64/ld-linux-x86-64.so.2 ]; then
			mkdir -p "$stage/lib64"
			cp -L /lib64/ld-linux-x86-64.so.2 "$stage/lib64/"
		fi
	fi

	# The kernel unpacks concatenated cpio archives in order: base, then extra.
	(cd "$stage" && find . -mindepth 1 | LC_ALL=C sort |
		cpio --quiet -o -H newc -R 0:0) | gzip -1 -n >"$tmp/extra.cpio.gz"
	mkdir -p "$(dirname "$img")"
	cat "$base/initrd.img" "$tmp/extra.cpio.gz" >"$img.tmp.$$"
	mv -f "$img.tmp.$$" "$img"
	rm -rf "$tmp"
	trap - EXIT
	msg "built $img ($nlibs libraries)"
}

# ---- main -----------------------------------------------------------------------
OUTDIR='' EXTRA='' OUT=''
while [ $# -gt 0 ]; do
	case "$1" in
	-h | --help) usage 0 ;;
	--extra) EXTRA=${2:?--extra needs DIR}; shift 2 ;;
	--out) OUT=${2:?--out needs FILE}; shift 2 ;;
	--base) OUTDIR=${2:?--base needs OUTDIR}; shift 2 ;;
	-*) usage 2 >&2 ;;
	*) OUTDIR=$1; shift ;;
	esac
done
OUTDIR=${OUTDIR:-$REPO/build/guest}

if [ -n "$EXTRA" ] || [ -n "$OUT" ]; then
	if [ -z "$EXTRA" ] || [ -z "$OUT" ]; then
		die "--extra and --out go together"
	fi
	build_extra "$OUTDIR" "$EXTRA" "$OUT"
else
	ensure_base "$OUTDIR"
fi
