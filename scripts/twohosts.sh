# SPDX-License-Identifier: MIT
# Sourced by scripts that need two throwaway qvisor "hosts": two network
# namespaces joined by a veth pair (each end named like its namespace), one
# qvisord in each with its dirs under $W/<i>/ and its socket at $W/<i>/sock.
#   twohosts_up TAG SUBNET    e.g. twohosts_up qvb 10.232.0
# Needs $BUILD (build dir with qvisord), $Q (qvisor binary) and die().
# Optional: TWOHOSTS_EXTRA=("args of host 0" "args of host 1") more
# qvisord options (word-split), e.g. --cluster-endpoints.
# Sets W, NS (netns names = veth end names) and ADDR; tears everything down
# on exit.

twohosts_cleanup() {
	for i in 0 1; do
		[ -f "$W/$i/pid" ] && kill "$(cat "$W/$i/pid")" 2>/dev/null
		for p in $(ip netns pids "${NS[$i]}" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
	done
	sleep 0.5
	for i in 0 1; do ip netns del "${NS[$i]}" 2>/dev/null; done
	rm -rf "$W"
}

twohosts_up() {
	local tag=$1 subnet=$2 i t
	W=$(mktemp -d "/tmp/$tag-XXXXXX")
	NS=("$tag$$a" "$tag$$b")
	ADDR=("$subnet.1" "$subnet.2")
	trap twohosts_cleanup EXIT
	trap 'exit 130' INT TERM
	[ "$(id -u)" = 0 ] || die "needs root"
	[ -x "$Q" ] && [ -x "$BUILD/qvisord" ] || die "build first (make O=... all)"

	for i in 0 1; do ip netns add "${NS[$i]}" || die "netns"; done
	ip link add "${NS[0]}" type veth peer name "${NS[1]}" || die "veth"
	for i in 0 1; do
		ip link set "${NS[$i]}" netns "${NS[$i]}"
		ip -n "${NS[$i]}" addr add "${ADDR[$i]}/24" dev "${NS[$i]}"
		ip -n "${NS[$i]}" link set lo up
		ip -n "${NS[$i]}" link set "${NS[$i]}" up
		mkdir -p "$W/$i"
		# TWOHOSTS_TLS=1: a lab PKI (host certificates for ADDR[i], also naming
		# hI, the --cluster-host a cluster bench gives it); plain
		# streams stay allowed (--insecure) so a bench can compare both.
		local listen=()
		if [ "${TWOHOSTS_TLS:-0}" = 1 ]; then
			listen=(--listen "tls://${ADDR[$i]}")
			[ -f "$W/ca/ca-cert.pem" ] || "$Q" --pki-dir "$W/ca" pki init >/dev/null || die "pki init"
			"$Q" --pki-dir "$W/ca" pki issue "${ADDR[$i]}" "h$i" --out "$W/$i/pki" >/dev/null || die "pki issue"
		fi
		ip netns exec "${NS[$i]}" setsid "$BUILD/qvisord" --state-dir "$W/$i/state" \
			--run-dir "$W/$i/run" --socket "$W/$i/sock" --no-kvm-probe \
			--cache-dir "$W/$i" --pki-dir "$W/$i/pki" --insecure \
			"${listen[@]}" ${TWOHOSTS_EXTRA[$i]:-} >"$W/$i/log" 2>&1 </dev/null &
		echo $! >"$W/$i/pid"
		disown
	done
	for i in 0 1; do
		for t in $(seq 100); do
			"$Q" -s "$W/$i/sock" host info >/dev/null 2>&1 && break
			sleep 0.1
		done
	done
}
