#!/bin/bash
# The package test (docs/install.md): build the .deb, install it with
# `dpkg --root` into a throwaway root (maintainer scripts run chroot-less
# with DPKG_ROOT), start the installed qvisord directly (no systemd here) on
# private directories, boot the test guest through the installed qvisor,
# complete a VM name with the installed bash completion, then stop
# everything, purge the package and check that nothing of it is left.
# Needs root, dpkg-dev and debhelper, and the test guest (make guest).
#   env: QV_GUEST_DIR (default build/guest), QV_PKG_DEB (skip the build)
set -euo pipefail
cd "$(dirname "$0")/.."
GUEST=${QV_GUEST_DIR:-$PWD/build/guest}

step() { printf -- '--- %s\n' "$*"; }
fail() { echo "test-package: FAIL: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || fail "needs root"
[ -r "$GUEST/vmlinuz" ] || fail "no test guest in $GUEST (make guest)"

T=$(mktemp -d /tmp/qv-pkg-XXXXXX)
chmod 0711 "$T" # QEMU runs as qvisor-qemu and must reach the guest and run dirs
DPID=
cleanup() {
	if [ -n "$DPID" ] && kill -0 "$DPID" 2>/dev/null; then
		kill "$DPID" 2>/dev/null || true
		wait "$DPID" 2>/dev/null || true
	fi
	# A QEMU left by a failed run: its pid file names it.
	for p in "$T"/run/vms/*/qemu.pid; do
		[ -f "$p" ] && kill -9 "$(cat "$p")" 2>/dev/null || true
	done
	rm -rf "$T"
}
trap cleanup EXIT

step "building the package"
DEB=${QV_PKG_DEB:-$(scripts/build-deb.sh | tail -n1)}
[ -f "$DEB" ] || fail "no package built"
dpkg-deb -c "$DEB" | awk '{ print $6 }' >"$T/contents"
for f in usr/sbin/qvisord usr/bin/qvisor lib/systemd/system/qvisord.service \
	lib/systemd/system/qvisor.slice lib/systemd/system/qvisord.socket usr/lib/sysusers.d/qvisor.conf \
	usr/share/man/man1/qvisor.1.gz usr/share/man/man8/qvisord.8.gz \
	usr/share/bash-completion/completions/qvisor usr/share/zsh/vendor-completions/_qvisor \
	usr/share/doc/qvisor/install.md.gz usr/share/doc/qvisor/copyright; do
	grep -qx "./$f" "$T/contents" || fail "the package lacks /$f"
done
echo "$(wc -l <"$T/contents") entries in $(basename "$DEB")"

step "make install / make uninstall into a staging dir"
ST=$T/stage
make -s install DESTDIR="$ST" PREFIX=/usr/local >/dev/null
for f in bin/qvisor sbin/qvisord share/man/man1/qvisor.1 share/man/man8/qvisord.8 \
	lib/systemd/system/qvisord.service lib/systemd/system/qvisor.slice \
	lib/systemd/system/qvisord.socket lib/sysusers.d/qvisor.conf share/bash-completion/completions/qvisor \
	share/zsh/site-functions/_qvisor share/doc/qvisor/install.md; do
	[ -f "$ST/usr/local/$f" ] || fail "make install did not install /usr/local/$f"
done
grep -qx 'ExecStart=/usr/local/sbin/qvisord' "$ST/usr/local/lib/systemd/system/qvisord.service" ||
	fail "the installed unit does not start /usr/local/sbin/qvisord"
make -s uninstall DESTDIR="$ST" PREFIX=/usr/local >/dev/null
left=$(find "$ST" -type f)
[ -z "$left" ] || fail "make uninstall left: $left"
echo "make install and make uninstall (PREFIX=/usr/local, DESTDIR): ok"

step "installing into a throwaway root"
R=$T/root
# What a Debian system has before the package (deb-systemd-helper keeps its
# enable symlinks in etc/systemd/system).
mkdir -p "$R/var/lib/dpkg/info" "$R/var/lib/dpkg/updates" "$R/etc/systemd/system" "$R/usr/sbin"
touch "$R/var/lib/dpkg/status" "$R/var/lib/dpkg/available"
echo 'root:x:0:0:root:/root:/bin/sh' >"$R/etc/passwd"
echo 'root:x:0:' >"$R/etc/group"
echo 'root:*:19000:0:99999:7:::' >"$R/etc/shadow"
echo 'root:*::' >"$R/etc/gshadow"
chmod 0640 "$R/etc/shadow" "$R/etc/gshadow"
# No service starts from this root, whatever the host runs.
printf '#!/bin/sh\nexit 101\n' >"$R/usr/sbin/policy-rc.d"
chmod 0755 "$R/usr/sbin/policy-rc.d"
find "$R" -type f | sort >"$T/before"
find "$R" -type d ! -path "$R/var/*" | sort >"$T/before-dirs"
DPKG=(dpkg --root="$R" --log="$T/dpkg.log" --force-script-chrootless --force-depends)
"${DPKG[@]}" -i "$DEB" >"$T/install.log" 2>&1 || { cat "$T/install.log"; fail "dpkg -i"; }
grep -qx 'Status: install ok installed' <<<"$(dpkg --root="$R" -s qvisor)" || fail "not installed"
grep -q '^qvisor-qemu:' "$R/etc/passwd" || fail "the postinst did not create qvisor-qemu"
grep -q '^qvisor:' "$R/etc/group" || fail "the postinst did not create the group qvisor"
grep -qx 'ExecStart=/usr/sbin/qvisord' "$R/lib/systemd/system/qvisord.service" ||
	fail "the unit does not start /usr/sbin/qvisord"
grep -qx 'Delegate=yes' "$R/lib/systemd/system/qvisord.service" || fail "no Delegate=yes"
grep -qx 'KillMode=process' "$R/lib/systemd/system/qvisord.service" || fail "no KillMode=process"
# The units as systemd reads them (unknown keys, bad values); the binary
# exists only inside the root.
if command -v systemd-analyze >/dev/null; then
	systemd-analyze verify --man=no "$R/lib/systemd/system/qvisord.service" \
		"$R/lib/systemd/system/qvisor.slice" "$R/lib/systemd/system/qvisord.socket" \
		>"$T/verify" 2>&1 || true
	! grep -v 'qvisord is not executable' "$T/verify" || fail "systemd-analyze verify"
fi
# Installing over itself (the upgrade path) keeps the users and succeeds.
"${DPKG[@]}" -i "$DEB" >"$T/reinstall.log" 2>&1 || { cat "$T/reinstall.log"; fail "reinstall"; }
[ "$(grep -c '^qvisor-qemu:' "$R/etc/passwd")" = 1 ] || fail "reinstall duplicated qvisor-qemu"
echo "installed (and reinstalled): $(dpkg --root="$R" -L qvisor | wc -l) paths"

step "running the installed daemon"
mkdir -p "$T/guest"
install -m 0644 "$GUEST/vmlinuz" "$GUEST/initrd.img" "$T/guest/"
SOCK=$T/run/qvisord.sock
"$R/usr/sbin/qvisord" --state-dir "$T/state" --run-dir "$T/run" --cache-dir "$T/cache" \
	--socket "$SOCK" --no-kvm-probe >"$T/qvisord.log" 2>&1 </dev/null &
DPID=$!
Q=("$R/usr/bin/qvisor" --socket "$SOCK")
# up to 60 s (the other test lane keeps both cores busy with TCG guests);
# a daemon that exited is not waited for
for _ in $(seq 1 600); do
	"${Q[@]}" host info >/dev/null 2>&1 && break
	kill -0 "$DPID" 2>/dev/null || break
	sleep 0.1
done
"${Q[@]}" host info >/dev/null || { cat "$T/qvisord.log"; fail "the daemon did not come up"; }
cat >"$T/vm.json" <<JSON
{ "name": "pkgvm", "vcpus": 1, "memory": "128M", "accel": "tcg",
  "kernel": "$T/guest/vmlinuz", "initrd": "$T/guest/initrd.img",
  "cmdline": "console=ttyS0 panic=-1" }
JSON
"${Q[@]}" define "$T/vm.json"
"${Q[@]}" start pkgvm
LOG=$T/run/vms/pkgvm/serial.log
for _ in $(seq 1 1200); do grep -q QVISOR-GUEST-READY "$LOG" 2>/dev/null && break; sleep 0.1; done
grep -q QVISOR-GUEST-READY "$LOG" 2>/dev/null || { tail -n 20 "$LOG"; fail "the guest did not boot"; }
grep -q '"state": "running"' <<<"$("${Q[@]}" --json list)" || fail "pkgvm is not listed as running"
echo "the guest booted under the installed daemon"

step "bash completion from the package"
got=$(PATH="$R/usr/bin:$PATH" bash -c 'source "$1"; COMP_WORDS=(qvisor --socket "$2" start ""); COMP_CWORD=4;
	_qvisor; printf "%s\n" "${COMPREPLY[@]}"' _ \
	"$R/usr/share/bash-completion/completions/qvisor" "$SOCK" 2>&1)
[ "$got" = pkgvm ] || fail "completion of 'qvisor start ' gave '$got', not pkgvm"
echo "qvisor start <TAB> -> $got"

step "CLI output of the installed qvisor"
# Colours only on a terminal (script gives it one), never with NO_COLOR.
QS="${Q[*]}"
grep -q $'\e\[32mrunning' <<<"$(script -qec "$QS list" /dev/null)" || fail "no colour on a terminal"
grep -q $'\e' <<<"$(NO_COLOR=1 script -qec "$QS list" /dev/null)" && fail "colour despite NO_COLOR"
grep -q $'\e' <<<"$("${Q[@]}" list)" && fail "colour on a pipe"
grep -q '^NAME .*ACCEL  UUID$' <<<"$("${Q[@]}" list -o wide)" || fail "list -o wide has no UUID column"
[ "$("${Q[@]}" list -o name)" = pkgvm ] || fail "list -o name"
grep -q '"name": "host check"' <<<"$("${Q[@]}" --json help)" || fail "--json help"
echo "colours on a terminal only, NO_COLOR honoured, -o wide/name, --json help"

step "stopping"
"${Q[@]}" stop pkgvm
"${Q[@]}" undefine pkgvm
kill "$DPID"
wait "$DPID" 2>/dev/null || true
DPID=

step "purging"
"${DPKG[@]}" --purge qvisor >"$T/purge.log" 2>&1 || { cat "$T/purge.log"; fail "dpkg --purge"; }
! grep -q '^Status: install' <<<"$(dpkg --root="$R" -s qvisor 2>/dev/null)" || fail "still installed"
grep -q '^qvisor-qemu:' "$R/etc/passwd" && fail "the postrm left qvisor-qemu"
grep -q '^qvisor:' "$R/etc/group" && fail "the postrm left the group qvisor"
# Nothing of the package is left: only dpkg's own bookkeeping and the files
# this test made (the user databases were rewritten, keep their names).
find "$R" -type f ! -path "$R/var/lib/dpkg/*" ! -name '*-' | sort >"$T/after"
left=$(comm -13 "$T/before" "$T/after")
[ -z "$left" ] || fail "left behind after purge: $left"
left=$(find "$R" -type d ! -path "$R/var/*" | sort | comm -13 "$T/before-dirs" -)
[ -z "$left" ] || fail "directories left after purge: $left"
echo "purged cleanly"
echo "test-package: ok"
