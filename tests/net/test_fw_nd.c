/* SPDX-License-Identifier: MIT */
/* net/fw-rules.c, IPv6 anti-spoofing with real frames in a private netns:
 * a veth pair on a bridge stands for a VM's TAP; frames sent on the peer
 * enter the bridge as if the guest sent them. A neighbour advertisement
 * may only claim the NIC's own addresses, and `::` is a source only for
 * duplicate address detection. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/json.h"
#include "helpers/netns.h"
#include "net/fw.h"

#define TAP "qvtnd0"
#define PEER "qvtnd0p"
#define MAC "52:54:00:00:00:07"
#define LL "fe80::5054:ff:fe00:7"

static void sh(const char *a0, const char *a1, const char *a2, const char *a3, const char *a4,
	       const char *a5, const char *a6, const char *a7)
{
	char *const argv[] = { (char *)a0, (char *)a1, (char *)a2, (char *)a3, (char *)a4,
			       (char *)a5, (char *)a6, (char *)a7, NULL };
	cr_assert_eq(qvt_run(argv, NULL), 0, "%s %s %s %s failed", a0, a1, a2, a3);
}

/* An Ethernet + IPv6 frame from MAC, src -> ff02::1, next header nh with
 * the 24-byte body (an ICMPv6 NA: type 136, target). */
static void send_frame(int fd, int ifindex, const char *src, uint8_t nh, const uint8_t *body)
{
	uint8_t f[14 + 40 + 24] = { 0x33, 0x33, 0, 0, 0, 1, 0x52, 0x54, 0, 0, 0, 7, 0x86, 0xdd };
	uint8_t *ip = f + 14;
	struct sockaddr_ll to = { .sll_family = AF_PACKET, .sll_ifindex = ifindex, .sll_halen = 6 };

	ip[0] = 0x60;
	ip[5] = 24;
	ip[6] = nh;
	ip[7] = 255;
	cr_assert_eq(inet_pton(AF_INET6, src, ip + 8), 1);
	cr_assert_eq(inet_pton(AF_INET6, "ff02::1", ip + 24), 1);
	memcpy(ip + 40, body, 24);
	memcpy(to.sll_addr, f, 6);
	cr_assert_eq(sendto(fd, f, sizeof(f), 0, (struct sockaddr *)&to, sizeof(to)),
		     (ssize_t)sizeof(f));
}

static void send_na(int fd, int ifindex, const char *src, const char *target)
{
	uint8_t na[24] = { 136, 0, 0, 0, 0x20 };
	cr_assert_eq(inet_pton(AF_INET6, target, na + 8), 1);
	send_frame(fd, ifindex, src, 58, na);
}

static int64_t drops(qv_nft *nft, const char *tag)
{
	json_object *listing = NULL;
	struct qv_error err = {};
	char chain[64];
	int64_t n = 0;

	cr_assert_eq(qv_nft_list_json(nft, "list table bridge qvisor", &listing, &err), 0, "%s",
		     err.message);
	qv_fw_nic_chain(TAP, false, chain);
	json_object *rows = qv_fw_chain_counters(listing, chain);
	for (size_t i = 0; i < json_object_array_length(rows); i++) {
		json_object *row = json_object_array_get_idx(rows, i), *c, *p;
		if (json_object_object_get_ex(row, "comment", &c) &&
		    streq(json_object_get_string(c), tag) &&
		    json_object_object_get_ex(row, "packets", &p))
			n += json_object_get_int64(p);
	}
	json_object_put(rows);
	json_object_put(listing);
	return n;
}

/* A bridge with the veth TAP/PEER pair on it, the NIC's chains for the
 * given static addresses installed; the packet socket on PEER and its
 * ifindex through ret_*. */
static qv_nft *bridge_with_nic(const char *const *addrs, size_t n_addrs, int *ret_fd,
			       int *ret_ifindex)
{
	_cleanup_(qv_fw_batch_freep) qv_fw_batch *b = qv_fw_batch_new();
	struct vm_fw fw;
	struct qv_error err = {};
	qv_nft *nft = NULL;

	sh("ip", "link", "add", "qvtbr", "type", "bridge", NULL, NULL);
	sh("ip", "link", "add", TAP, "type", "veth", "peer", PEER);
	sh("ip", "link", "set", TAP, "master", "qvtbr", NULL, NULL);
	sh("ip", "link", "set", "qvtbr", "up", NULL, NULL, NULL);
	sh("ip", "link", "set", TAP, "up", NULL, NULL, NULL);
	sh("ip", "link", "set", PEER, "up", NULL, NULL, NULL);
	vm_fw_defaults(&fw);
	for (size_t i = 0; i < n_addrs; i++)
		snprintf(fw.addrs[i], sizeof(fw.addrs[i]), "%s", addrs[i]);
	fw.n_addrs = n_addrs;
	struct qv_fw_nic nic = { .tap = TAP, .mac = MAC, .fw = &fw };
	cr_assert_eq(qv_nft_new(&nft, &err), 0, "%s", err.message);
	cr_assert_eq(qv_fw_plan(b, NULL, NULL, &nic, 1, NULL, 0, &err), 0, "%s", err.message);
	cr_assert_eq(qv_nft_run(nft, qv_fw_batch_text(b), &err), 0, "%s", err.message);
	*ret_fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
	*ret_ifindex = (int)if_nametoindex(PEER);
	cr_assert_geq(*ret_fd, 0);
	cr_assert_gt(*ret_ifindex, 0);
	return nft;
}

Test(fw_nd, advertisements_and_dad_sources_are_checked_with_real_frames)
{
	QVT_REQUIRE_NETNS();
	static const char *const addrs[] = { "fd00::10", "fd01::/64" };
	int fd, ifindex;
	_cleanup_(qv_nft_freep) qv_nft *nft = bridge_with_nic(addrs, 2, &fd, &ifindex);

	/* its own addresses: link-local, the static one, inside its prefix */
	send_na(fd, ifindex, LL, LL);
	send_na(fd, ifindex, LL, "fd00::10");
	send_na(fd, ifindex, LL, "fd01::5");
	cr_assert_eq(drops(nft, "qv:spoof:nd-target"), 0);
	/* another VM's address, from an honest source */
	send_na(fd, ifindex, LL, "fd00::11");
	send_na(fd, ifindex, "fd00::10", "fe80::5054:ff:fe00:8");
	cr_assert_eq(drops(nft, "qv:spoof:nd-target"), 2);

	/* `::` only for DAD: a neighbour solicitation passes, an NA or UDP does not */
	uint8_t ns[24] = { 135 }, udp[24] = { 0x30, 0x39, 0x30, 0x39, 0, 24 };
	inet_pton(AF_INET6, "fd00::10", ns + 8);
	int64_t before = drops(nft, "qv:spoof:ip6");
	send_frame(fd, ifindex, "::", 58, ns);
	cr_assert_eq(drops(nft, "qv:spoof:ip6"), before);
	send_na(fd, ifindex, "::", "fd00::10");
	send_frame(fd, ifindex, "::", 17, udp);
	cr_assert_eq(drops(nft, "qv:spoof:ip6"), before + 2);
	close(fd);
}

/* An ICMPv6 message from MAC (52:54:00:00:00:07) with a valid checksum, so
 * that the host's own stack (the bridge's IPv6) processes it. */
static void send_icmp6(int fd, int ifindex, const char *src, const char *dst, uint8_t *msg,
		       size_t len)
{
	uint8_t f[14 + 40 + 64] = { 0x33, 0x33, 0, 0, 0, 1, 0x52, 0x54, 0, 0, 0, 7, 0x86, 0xdd };
	uint8_t *ip = f + 14;
	struct sockaddr_ll to = { .sll_family = AF_PACKET, .sll_ifindex = ifindex, .sll_halen = 6 };
	uint32_t sum = (uint32_t)len + 58;

	cr_assert_leq(len, 64);
	ip[0] = 0x60;
	ip[5] = (uint8_t)len;
	ip[6] = 58;
	ip[7] = 255;
	cr_assert_eq(inet_pton(AF_INET6, src, ip + 8), 1);
	cr_assert_eq(inet_pton(AF_INET6, dst, ip + 24), 1);
	msg[2] = msg[3] = 0;
	memcpy(ip + 40, msg, len);
	for (size_t i = 8; i < 40 + len; i += 2) /* pseudo-header addresses + message */
		sum += (uint32_t)(ip[i] << 8 | (i + 1 < 40 + len ? ip[i + 1] : 0));
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	ip[42] = (uint8_t)(~sum >> 8);
	ip[43] = (uint8_t)~sum;
	memcpy(to.sll_addr, f, 6);
	cr_assert_eq(sendto(fd, f, 14 + 40 + len, 0, (struct sockaddr *)&to, sizeof(to)),
		     (ssize_t)(14 + 40 + len));
	usleep(100 * 1000); /* let the host's stack take it before the checks */
}

/* an 8-byte link-layer address option (type 1 source, 2 target) */
static size_t put_lla(uint8_t *p, uint8_t type, uint8_t last)
{
	const uint8_t o[8] = { type, 1, 0x52, 0x54, 0, 0, 0, last };
	memcpy(p, o, 8);
	return 8;
}

/* the host's neighbour entry for fd00::10 on the bridge, as "lladdr X" */
static bool neigh_is(const char *mac)
{
	char *const argv[] = { "ip", "-6", "neigh", "show", "fd00::10", "dev", "qvtbr", NULL };
	char *out = NULL;
	bool ok = qvt_run(argv, &out) == 0 && out && strstr(out, mac);

	if (!ok)
		cr_log_info("neighbour fd00::10: %s (want %s)", out ? out : "?", mac);
	free(out);
	return ok;
}

/* a stale entry for fd00::10 with a MAC no one sends from */
static void neigh_stale_99(void)
{
	char *const argv[] = { "ip", "-6", "neigh", "replace", "fd00::10", "lladdr",
			       "52:54:00:00:00:99", "dev", "qvtbr", "nud", "stale", NULL };
	cr_assert_eq(qvt_run(argv, NULL), 0);
}

Test(fw_nd, link_layer_address_options_must_be_the_nics_mac)
{
	QVT_REQUIRE_NETNS();
	static const char *const addrs[] = { "fd00::10" };
	int fd, ifindex;
	_cleanup_(qv_nft_freep) qv_nft *nft = bridge_with_nic(addrs, 1, &fd, &ifindex);
	uint8_t m[64];
	size_t n;

	sh("ip", "addr", "add", "fd00::1/64", "dev", "qvtbr", "nodad", NULL);
	/* Neighbour advertisement (override flag) for its own address: the
	 * host's stale entry takes the MAC of the target link-layer option. */
	neigh_stale_99();
	memset(m, 0, sizeof(m));
	m[0] = 136, m[4] = 0x20;
	inet_pton(AF_INET6, "fd00::10", m + 8);
	n = 24 + put_lla(m + 24, 2, 0x66); /* another VM's MAC */
	send_icmp6(fd, ifindex, "fd00::10", "ff02::1", m, n);
	cr_assert_eq(drops(nft, "qv:spoof:nd-lla"), 1);
	cr_assert(neigh_is("52:54:00:00:00:99"), "a spoofed NA changed the host's cache");
	n = 24 + put_lla(m + 24, 14, 0x01); /* a nonce first, the spoofed MAC second */
	n += put_lla(m + n, 2, 0x66);
	send_icmp6(fd, ifindex, "fd00::10", "ff02::1", m, n);
	cr_assert_eq(drops(nft, "qv:spoof:nd-lla"), 2);
	cr_assert(neigh_is("52:54:00:00:00:99"));
	n = 24 + put_lla(m + 24, 2, 0x07); /* honest */
	send_icmp6(fd, ifindex, "fd00::10", "ff02::1", m, n);
	cr_assert_eq(drops(nft, "qv:spoof:nd-lla"), 2);
	cr_assert(neigh_is("52:54:00:00:00:07"), "the honest NA did not reach the host");

	/* Neighbour solicitation for the host's address: the host learns the
	 * sender from its source link-layer option. */
	memset(m, 0, sizeof(m));
	m[0] = 135;
	inet_pton(AF_INET6, "fd00::1", m + 8);
	n = 24 + put_lla(m + 24, 1, 0x66);
	send_icmp6(fd, ifindex, "fd00::10", "ff02::1:ff00:1", m, n);
	cr_assert_eq(drops(nft, "qv:spoof:nd-lla"), 3);
	cr_assert(neigh_is("52:54:00:00:00:07"), "a spoofed NS changed the host's cache");
	neigh_stale_99();
	n = 24 + put_lla(m + 24, 1, 0x07);
	send_icmp6(fd, ifindex, "fd00::10", "ff02::1:ff00:1", m, n);
	cr_assert_eq(drops(nft, "qv:spoof:nd-lla"), 3);
	cr_assert(neigh_is("52:54:00:00:00:07"), "the honest NS did not reach the host");
	/* duplicate address detection: from ::, a nonce option, passes */
	n = 24 + put_lla(m + 24, 14, 0x42);
	int64_t ip6 = drops(nft, "qv:spoof:ip6");
	send_icmp6(fd, ifindex, "::", "ff02::1:ff00:1", m, n);
	cr_assert_eq(drops(nft, "qv:spoof:nd-lla"), 3);
	cr_assert_eq(drops(nft, "qv:spoof:ip6"), ip6);

	/* Router solicitation: the option right after the 8-byte header */
	memset(m, 0, sizeof(m));
	m[0] = 133;
	n = 8 + put_lla(m + 8, 1, 0x66);
	send_icmp6(fd, ifindex, "fd00::10", "ff02::2", m, n);
	cr_assert_eq(drops(nft, "qv:spoof:nd-lla"), 4);
	n = 8 + put_lla(m + 8, 1, 0x07);
	send_icmp6(fd, ifindex, "fd00::10", "ff02::2", m, n);
	cr_assert_eq(drops(nft, "qv:spoof:nd-lla"), 4);
	close(fd);
}
