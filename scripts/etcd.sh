# SPDX-License-Identifier: MIT
# Sourced by scripts that need a private etcd cluster (benches; never the
# host's etcd):
#   etcd_up DIR URLS [PKI]  one member per client URL in URLS (comma-
#                           separated), data in DIR/mN, log in DIR/mN.log;
#                           the members talk to each other over plain HTTP
#                           on free ports of 127.0.0.1. https:// URLs need
#                           PKI, a qvisor PKI dir (`qvisor pki issue`):
#                           server-cert.pem, server-key.pem and ca-cert.pem
#                           serve with mutual TLS (client-cert.pem and
#                           client-key.pem check health). Waits until every
#                           member answers (60 s); otherwise the logs' tails
#                           go to stderr and it returns 1.
#   etcd_down               stops the members etcd_up started (call it
#                           from your EXIT trap).
#   etcd_free_ports N       prints N free TCP ports of 127.0.0.1.
# ETCD_NETNS: run the members (and the health check) in that network
# namespace. ETCD_ARGS: more etcd options for every member (word-split).
# Sets ETCD_PIDS and ETCD_ENDPOINTS (= URLS).
ETCD_PIDS=()
ETCD_ENDPOINTS=

etcd_in() { # command in ETCD_NETNS, if any
	if [ -n "${ETCD_NETNS:-}" ]; then ip netns exec "$ETCD_NETNS" "$@"; else "$@"; fi
}

etcd_free_ports() {
	etcd_in python3 -c '
import socket, sys
ss = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))' "$1"
}

etcd_up() {
	local dir=$1 pki=${3:-} urls peers=() cluster="" i tls=() ctl=() in=()
	# a plain command, not a function, in the background: $! is etcd itself
	[ -z "${ETCD_NETNS:-}" ] || in=(ip netns exec "$ETCD_NETNS")
	IFS=, read -r -a urls <<<"$2"
	for i in $(etcd_free_ports $((2 * ${#urls[@]}))); do # not a client port
		[[ ",$2," == *":$i,"* ]] || peers+=("$i")
	done
	ETCD_ENDPOINTS=$2
	mkdir -p "$dir"
	for i in "${!urls[@]}"; do
		cluster+="${cluster:+,}m$i=http://127.0.0.1:${peers[$i]}"
	done
	if [ -n "$pki" ]; then
		tls=(--cert-file "$pki/server-cert.pem" --key-file "$pki/server-key.pem"
		     --trusted-ca-file "$pki/ca-cert.pem" --client-cert-auth)
		ctl=(--cacert "$pki/ca-cert.pem" --cert "$pki/client-cert.pem"
		     --key "$pki/client-key.pem")
	fi
	for i in "${!urls[@]}"; do
		# shellcheck disable=SC2086 # ETCD_ARGS is a list of options
		"${in[@]}" etcd --name "m$i" --data-dir "$dir/m$i" \
			--listen-client-urls "${urls[$i]}" --advertise-client-urls "${urls[$i]}" \
			--listen-peer-urls "http://127.0.0.1:${peers[$i]}" \
			--initial-advertise-peer-urls "http://127.0.0.1:${peers[$i]}" \
			--initial-cluster "$cluster" --initial-cluster-token "qv-$$" \
			--initial-cluster-state new "${tls[@]}" ${ETCD_ARGS:-} \
			>"$dir/m$i.log" 2>&1 </dev/null &
		ETCD_PIDS+=($!)
	done
	for i in $(seq 120); do
		etcd_in etcdctl --endpoints "$ETCD_ENDPOINTS" "${ctl[@]}" endpoint health \
			>/dev/null 2>&1 && return 0
		sleep 0.5
	done
	echo "etcd did not come up at $ETCD_ENDPOINTS:" >&2
	tail -n 5 "$dir"/m*.log >&2
	return 1
}

etcd_down() {
	local p
	for p in "${ETCD_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${ETCD_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	ETCD_PIDS=()
}
