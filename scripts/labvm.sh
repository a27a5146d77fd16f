#!/bin/bash
# The lab VM: run a program inside a TCG guest whose kernel has a whole
# cgroup v2 (cpu, cpuset, io, memory, pids; PSI on), with QEMU inside it.
#
#   scripts/labvm.sh [options] [--] PROGRAM [ARGS...]
#
#   --add FILE     copy FILE into the guest as /lab/bin/<name> (repeatable)
#   --smp N        lab VM vCPUs (default 2)
#   --mem MIB      lab VM memory (default 1536)
#   --disk MIB     attach a blank virtio disk of MIB MiB (/dev/vda; default none)
#   --timeout S    kill the lab VM after S seconds (default 900)
#   --keep DIR     keep the work dir (image, serial.log) in DIR
#   --base DIR     base test guest (default build/guest)
#   --build DIR    build dir whose qvisord and qvisor are added (default build)
#   --quiet        do not copy the guest's console to stdout
#
# The guest gets /usr/bin/qemu-system-x86_64 (with its TCG module), /lab/bin
# (PATH first) with qvisord, qvisor and every --add file, their shared libraries, the SeaBIOS and
# linuxboot and multiboot firmware, and /lab/fw/{spin.bin,halt.bin}: 64 KiB -bios images
# whose reset vector spins (`jmp $`) or halts (`cli; hlt`), so that an inner
# `qemu-system-x86_64 -bios /lab/fw/spin.bin` is a real VM with one busy vCPU
# and no guest OS; /lab/fw/spin-multiboot.bin is the same for -kernel (a VM
# defined through qvisord: "kernel" in its spec). PROGRAM runs with QV_LAB_VM=1 and QV_IN_TEST_VM=1 in the
# environment, cwd /tmp; its output goes to the serial console, which this
# script copies to stdout. The exit status is PROGRAM's (from the guest's
# QVISOR-RUN-EXIT marker), 124 on timeout, 125 when the guest died without
# a marker. PROGRAM /lab/run-all.sh runs every added test_* Criterion suite
# (--jobs 1 --verbose). See docs/lab-vm.md.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
die() { echo "labvm: $*" >&2; exit 125; }
usage() { sed -n '2,27p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }

ADD=() SMP=2 MEM=1536 DISK=0 TIMEOUT=900 KEEP='' BASE=$REPO/build/guest BUILD=$REPO/build
QUIET=0
while [ $# -gt 0 ]; do
	case "$1" in
	-h | --help) usage 0 ;;
	--add) ADD+=("${2:?--add needs FILE}"); shift 2 ;;
	--smp) SMP=${2:?}; shift 2 ;;
	--mem) MEM=${2:?}; shift 2 ;;
	--disk) DISK=${2:?}; shift 2 ;;
	--timeout) TIMEOUT=${2:?}; shift 2 ;;
	--keep) KEEP=${2:?}; shift 2 ;;
	--base) BASE=${2:?}; shift 2 ;;
	--build) BUILD=${2:?}; shift 2 ;;
	--quiet) QUIET=1; shift ;;
	--) shift; break ;;
	-*) usage 2 >&2 ;;
	*) break ;;
	esac
done
[ $# -ge 1 ] || usage 2 >&2
PROG=$1
shift

if [ -n "$KEEP" ]; then
	mkdir -p "$KEEP"
	WORK=$(cd "$KEEP" && pwd)
else
	WORK=$(mktemp -d /tmp/qvlab-XXXXXX)
	trap 'rm -rf "$WORK"' EXIT
fi
X=$WORK/x
rm -rf "$X"
mkdir -p "$X/lab/bin" "$X/lab/fw" "$X/usr/share/seabios" "$X/usr/share/qemu"

QEMU=$(command -v qemu-system-x86_64) || die "qemu-system-x86_64 not installed"
# At /usr/bin: QEMU finds its modules and firmware relative to its binary.
mkdir -p "$X/usr/bin"
cp "$QEMU" "$X/usr/bin/qemu-system-x86_64"
# QEMU dlopens its TCG accelerator from its module dir.
QMOD=/usr/lib/x86_64-linux-gnu/qemu
mkdir -p "$X$QMOD"
cp "$QMOD"/accel-tcg-x86_64.so "$X$QMOD/" || die "no $QMOD/accel-tcg-x86_64.so"
for f in "$BUILD/qvisord" "$BUILD/qvisor" "${ADD[@]}"; do
	[ -f "$f" ] || die "$f does not exist (make, make tests?)"
	cp "$f" "$X/lab/bin/"
done
# Firmware for inner VMs that boot a kernel (-kernel needs linuxboot_dma.bin).
for f in /usr/share/seabios/bios-256k.bin /usr/share/seabios/bios.bin; do
	[ -f "$f" ] && cp "$f" "$X/usr/share/seabios/"
done
for f in linuxboot_dma.bin linuxboot.bin multiboot_dma.bin multiboot.bin kvmvapic.bin; do
	[ -f "/usr/share/qemu/$f" ] && cp "/usr/share/qemu/$f" "$X/usr/share/qemu/"
done
[ -e "$X/usr/share/qemu/bios-256k.bin" ] || ln -s ../seabios/bios-256k.bin "$X/usr/share/qemu/bios-256k.bin"

# 64 KiB BIOS images: the reset vector (offset 0xfff0) is the whole program.
mkfw() { # $1 = file, $2 = code bytes (printf escapes)
	head -c 65520 /dev/zero >"$1"
	printf "$2" >>"$1"
	head -c $((65536 - $(stat -c %s "$1"))) /dev/zero >>"$1"
}
mkfw "$X/lab/fw/spin.bin" '\xeb\xfe'                 # jmp $
mkfw "$X/lab/fw/halt.bin" '\xfa\xf4\xeb\xfd'         # cli; hlt; jmp back to hlt
# A multiboot kernel (for -kernel, i.e. a VM spec's "kernel") that spins:
# a VM defined through qvisord whose vCPU is always busy. Header with the
# load addresses (flags bit 16): loaded at 1 MiB, entry after the header.
{
	printf '\x02\xb0\xad\x1b\x00\x00\x01\x00\xfe\x4f\x51\xe4'  # magic, flags, checksum
	printf '\x00\x00\x10\x00\x00\x00\x10\x00'                  # header_addr, load_addr
	printf '\x00\x00\x00\x00\x00\x00\x00\x00\x20\x00\x10\x00'  # load_end, bss_end: 0; entry
	printf '\xeb\xfe'                                              # jmp $
	head -c 30 /dev/zero
} >"$X/lab/fw/spin-multiboot.bin"

# qvisord runs QEMU as qvisor-qemu.
mkdir -p "$X/etc"
printf 'root:x:0:0:root:/root:/bin/sh\nqvisor-qemu:x:990:990::/nonexistent:/bin/false\n' >"$X/etc/passwd"
printf 'root:x:0:\nqvisor-qemu:x:990:\n' >"$X/etc/group"

# The command line carries no spaces inside a parameter: arguments go in a file.
: >"$X/lab/args"
for a in "$@"; do printf '%s\n' "$a" >>"$X/lab/args"; done
cat >"$X/lab/run.sh" <<EOF
#!/bin/sh
export PATH=/lab/bin:\$PATH QV_LAB_VM=1 QV_IN_TEST_VM=1 QV_LAB_FW=/lab/fw QV_BUILD_DIR=/lab/bin
# --add'ed vmlinuz + initrd.img make /lab/bin the test guest dir for inner VMs
[ -f /lab/bin/vmlinuz ] && export QV_GUEST_DIR=/lab/bin
echo "QVISOR-LAB-START \$(nproc) cpus, cgroup2: \$(cat /sys/fs/cgroup/cgroup.controllers)"
set --
while IFS= read -r a; do set -- "\$@" "\$a"; done </lab/args
case "$PROG" in /*) p="$PROG" ;; *) p=/lab/bin/\$(basename "$PROG") ;; esac
"\$p" "\$@" 2>&1
EOF
chmod 755 "$X/lab/run.sh"
# /lab/run-all.sh: every added Criterion suite (test_*), one test at a time.
cat >"$X/lab/run-all.sh" <<'EOF'
#!/bin/sh
rc=0
for t in /lab/bin/test_*; do
	[ -x "$t" ] || continue
	echo "=== $t"
	"$t" --jobs 1 --verbose --color=never "$@" || rc=1
done
exit $rc
EOF
chmod 755 "$X/lab/run-all.sh"

IMG=$WORK/lab.img
"$REPO/scripts/mkguest.sh" --extra "$X" --out "$IMG" --base "$BASE" >&2 ||
	die "cannot build the lab image"
LOG=$WORK/serial.log
: >"$LOG"
QARGS=(-nodefaults -no-user-config -machine q35 -accel tcg -smp "$SMP" -m "$MEM"
	-kernel "$BASE/vmlinuz" -initrd "$IMG"
	-append "console=ttyS0 quiet panic=-1 psi=1 no_timer_check qv.run=/lab/run.sh"
	-serial "file:$LOG" -display none -no-reboot)
if [ "$DISK" -gt 0 ]; then
	truncate -s "${DISK}M" "$WORK/disk.raw"
	QARGS+=(-drive "file=$WORK/disk.raw,format=raw,if=virtio")
fi

if ((QUIET)); then
	timeout -s KILL "$TIMEOUT" qemu-system-x86_64 "${QARGS[@]}" && rc=0 || rc=$?
else
	timeout -s KILL "$TIMEOUT" qemu-system-x86_64 "${QARGS[@]}" &
	qpid=$!
	tail -n +1 -f --pid=$qpid "$LOG" &
	tpid=$!
	wait $qpid && rc=0 || rc=$?
	wait $tpid 2>/dev/null || true
fi
if [ "$rc" -eq 137 ]; then
	echo "labvm: timeout after ${TIMEOUT}s" >&2
	exit 124
fi
code=$(sed -n 's/.*QVISOR-RUN-EXIT \([0-9]*\).*/\1/p' "$LOG" | tail -n1)
if [ -z "$code" ]; then
	echo "labvm: the lab VM ended (QEMU status $rc) without QVISOR-RUN-EXIT" >&2
	exit 125
fi
exit "$code"
