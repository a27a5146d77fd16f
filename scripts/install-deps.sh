#!/bin/bash
# Install qvisor's build, test and runtime dependencies (Debian packages only).
# Idempotent: skips apt entirely when every package is already installed.
set -euo pipefail

PKGS=(
	build-essential pkg-config make gcc clang
	libjson-c-dev liburing-dev libnl-3-dev libnl-route-3-dev
	libseccomp-dev libsqlite3-dev libcriterion-dev sqlite3
	qemu-system-x86 qemu-utils busybox-static cpio iproute2 dnsmasq-base
	kmod xz-utils zstd ca-certificates procps util-linux e2fsprogs
	libclang-rt-14-dev
	# resource loop metrics endpoint (qvisord --metrics-listen)
	libmicrohttpd-dev
	# resource loop: the Prometheus scrape test (tests/integration/test_metrics.c)
	prometheus
	# Debian package build and its test (make deb, scripts/test-package.sh)
	dpkg-dev debhelper
	# libvirt domain XML import/export (qemu/libvirt-*.c)
	libxml2-dev
	# mutual TLS between daemons, migration/NBD TLS, qvisor pki (issue 11 §3)
	libgnutls28-dev
	# guest agent tests: qemu-ga bundled into the test guest (mkguest.sh --extra)
	qemu-guest-agent
	# cluster store: etcd control-plane scale bench (scripts/bench/etcd-scale.sh, issue 15)
	etcd-server
	etcd-client
	# per-VM firewall: nftables through libnftables (net/fw-nft.c), nft for tests
	libnftables-dev
	nftables
	# firewall benchmark peers (scripts/bench/firewall.sh)
	iptables
	ebtables
	# cluster store (issue 15): etcd 3.4 members for tests and operators
	# cluster store client: etcd v3 JSON gateway over HTTPS (cluster/etcd.c)
	libcurl4-gnutls-dev
	# backup benchmark (scripts/bench/backup.sh): timing arithmetic
	bc
)

missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
	export DEBIAN_FRONTEND=noninteractive
	SUDO=""
	[ "$(id -u)" -eq 0 ] || SUDO="sudo"
	$SUDO apt-get update
	$SUDO apt-get install -y --no-install-recommends "${missing[@]}"
fi

# Dedicated unprivileged user that QEMU processes run as.
if ! id qvisor-qemu >/dev/null 2>&1; then
	${SUDO:-} useradd --system --no-create-home --home-dir /nonexistent \
		--shell /usr/sbin/nologin qvisor-qemu 2>/dev/null || true
fi
# Socket access: members of group qvisor may use qvisord.sock (0660; isolation).
getent group qvisor >/dev/null 2>&1 || ${SUDO:-} groupadd --system qvisor 2>/dev/null || true
echo "install-deps: ok"
