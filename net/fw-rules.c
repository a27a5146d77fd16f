/* SPDX-License-Identifier: MIT */
/* The firewall model -> nft command text (net/fw.h, docs/firewall.md).
 * Everything that reaches the text was validated by qemu/spec-firewall.c;
 * the TAP name and MAC are checked again here because they come from the
 * daemon, not from the rule grammar. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/macro.h"
#include "net/fw.h"
#include "net/ifname.h"
#include "net/mac.h"

struct qv_fw_batch {
	char *buf;
	size_t len, cap;
};

qv_fw_batch *qv_fw_batch_new(void)
{
	return calloc(1, sizeof(qv_fw_batch));
}

qv_fw_batch *qv_fw_batch_free(qv_fw_batch *b)
{
	if (b) {
		free(b->buf);
		free(b);
	}
	return NULL;
}

void qv_fw_batch_freep(qv_fw_batch **b)
{
	*b = qv_fw_batch_free(*b);
}

const char *qv_fw_batch_text(const qv_fw_batch *b)
{
	return b->buf ? b->buf : "";
}

size_t qv_fw_batch_len(const qv_fw_batch *b)
{
	return b->len;
}

static int vaddf(qv_fw_batch *b, const char *fmt, va_list ap)
{
	va_list aq;
	va_copy(aq, ap);
	int n = vsnprintf(NULL, 0, fmt, aq);
	va_end(aq);
	if (n < 0)
		return -EINVAL;
	if (b->len + (size_t)n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap < b->len + (size_t)n + 1)
			cap *= 2;
		char *p = realloc(b->buf, cap);
		if (!p)
			return -ENOMEM;
		b->buf = p;
		b->cap = cap;
	}
	vsnprintf(b->buf + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
	return 0;
}

int qv_fw_batch_addf(qv_fw_batch *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = vaddf(b, fmt, ap);
	va_end(ap);
	return r;
}

static const char *tbl(const struct qv_fw_opts *o)
{
	return o && o->table ? o->table : QV_FW_TABLE;
}

void qv_fw_nic_chain(const char *tap, bool in, char ret[64])
{
	snprintf(ret, 64, "n_%s_%s", tap, in ? "in" : "out");
}

void qv_fw_group_chain(const char *group, bool in, char ret[64])
{
	snprintf(ret, 64, "g_%s_%s", group, in ? "in" : "out");
}

/* FNV-1a over the generated text of a chain: its identity for reconcile. */
static uint32_t fnv(const char *s, size_t n)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 16777619u;
	}
	return h;
}

/* Chain/element names only ever hold [A-Za-z0-9_.-]; nft's parser wants
 * identifiers without '-' or '.', so the TAP is checked to the stricter
 * grammar the TAP scheme produces. */
static bool ident_ok(const char *s)
{
	if (!s || !*s || strlen(s) > 15)
		return false;
	for (const char *p = s; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '_'))
			return false;
	return true;
}

/* Constant sets shared by every NIC chain: an anonymous set per rule would
 * put thousands of sets in the table, and libnftables dumps every set of
 * the table into its cache before each transaction. */
static const char base_sets[] =
	"add set bridge %1$s eth_ok { type ether_type; elements = { ip, arp, ip6 }; }\n"
	"add set bridge %1$s dhcp_srv { type inet_service; elements = { 67, 547 }; }\n"
	"add set bridge %1$s ra_types { type icmpv6_type; elements = { nd-router-advert, "
	"nd-redirect }; }\n"
	"add set bridge %1$s nd_out { type icmpv6_type; elements = { nd-neighbor-solicit, "
	"nd-neighbor-advert, nd-router-solicit }; }\n"
	"add set bridge %1$s nd_in { type icmpv6_type; elements = { nd-neighbor-solicit, "
	"nd-neighbor-advert, nd-router-solicit, nd-router-advert }; }\n"
	"add set bridge %1$s dad_types { type icmpv6_type; elements = { nd-neighbor-solicit, "
	"mld2-listener-report }; }\n";

int qv_fw_emit_base(qv_fw_batch *b, const struct qv_fw_opts *o)
{
	const char *t = tbl(o);
	static const struct { const char *name, *hook, *key, *map; } base[] = {
		{ "vm_pre", "prerouting", "iifname", "from_vm" },
		{ "vm_fwd", "forward", "oifname", "to_vm" },
		{ "vm_out", "output", "oifname", "to_vm" },
	};
	int r = qv_fw_batch_addf(b, "add table bridge %s\n"
				 "add map bridge %s from_vm { type ifname : verdict; }\n"
				 "add map bridge %s to_vm { type ifname : verdict; }\n",
				 t, t, t);

	if (r >= 0)
		r = qv_fw_batch_addf(b, base_sets, t);
	for (size_t i = 0; r >= 0 && i < ARRAY_SIZE(base); i++)
		r = qv_fw_batch_addf(b, "add chain bridge %s %s { type filter hook %s priority 0; "
				     "policy accept; }\n"
				     "flush chain bridge %s %s\n"
				     "add rule bridge %s %s %s vmap @%s comment \"" QV_FW_TAG_END
				     QV_FW_BASE_TAG "\"\n",
				     t, base[i].name, base[i].hook, t, base[i].name, t,
				     base[i].name, base[i].key, base[i].map);
	return r;
}

static const char *action_text(enum vm_fw_action a, enum vm_fw_proto p,
			       const struct qv_fw_opts *o)
{
	switch (a) {
	case VM_FW_ACCEPT:
		return "accept";
	case VM_FW_REJECT:
		if (o && o->reject_ok)
			return p == VM_FW_TCP ? "reject with tcp reset" : "reject";
		return "drop";
	default:
		return "drop";
	}
}

static int emit_rule(qv_fw_batch *b, const struct qv_fw_opts *o, const char *chain,
		     const struct vm_fw_rule *r, size_t idx)
{
	static const char *const units[] = { "second", "minute", "hour" };
	static const char *const l4[] = { "", "tcp", "udp", "icmp", "ipv6-icmp" };
	int x = qv_fw_batch_addf(b, "add rule bridge %s %s ", tbl(o), chain);

	if (x >= 0 && r->cidr[0])
		x = qv_fw_batch_addf(b, "%s %s %s ", r->family == 6 ? "ip6" : "ip",
				     r->dir == VM_FW_IN ? "saddr" : "daddr", r->cidr);
	if (x >= 0 && r->n_ports) {
		/* one port or range: a plain comparison, not an anonymous set */
		bool many = r->n_ports > 1;
		x = qv_fw_batch_addf(b, "%s dport %s", l4[r->proto], many ? "{ " : "");
		for (unsigned i = 0; x >= 0 && i < r->n_ports; i++) {
			if (r->ports[i][0] == r->ports[i][1])
				x = qv_fw_batch_addf(b, "%s%u", i ? ", " : "", r->ports[i][0]);
			else
				x = qv_fw_batch_addf(b, "%s%u-%u", i ? ", " : "", r->ports[i][0],
						     r->ports[i][1]);
		}
		if (x >= 0)
			x = qv_fw_batch_addf(b, many ? " } " : " ");
	} else if (x >= 0 && r->icmp_type[0])
		x = qv_fw_batch_addf(b, "%s type %s ", r->proto == VM_FW_ICMP ? "icmp" : "icmpv6",
				     r->icmp_type);
	else if (x >= 0 && r->proto != VM_FW_ANY)
		x = qv_fw_batch_addf(b, "meta l4proto %s ", l4[r->proto]);
	if (x >= 0 && r->rate)
		x = qv_fw_batch_addf(b, "limit rate %u/%s ", r->rate, units[r->rate_unit]);
	if (x >= 0)
		x = qv_fw_batch_addf(b, "counter %s comment \"" QV_FW_TAG_RULE "%zu\"\n",
				     action_text(r->action, r->proto, o), idx);
	return x;
}

/* "add chain; flush chain" + body + the end rule carrying the body's hash.
 * end_verdict is the policy ("" for group chains, which fall through). */
static int emit_chain(qv_fw_batch *b, const struct qv_fw_opts *o, const char *chain,
		      const qv_fw_batch *body, const char *end_verdict)
{
	uint32_t h = fnv(qv_fw_batch_text(body), qv_fw_batch_len(body));

	return qv_fw_batch_addf(b, "add chain bridge %s %s\nflush chain bridge %s %s\n%s"
				"add rule bridge %s %s counter %s comment \"" QV_FW_TAG_END
				"%08x\"\n",
				tbl(o), chain, tbl(o), chain, qv_fw_batch_text(body), tbl(o), chain,
				end_verdict, h);
}

int qv_fw_emit_group(qv_fw_batch *b, const struct qv_fw_opts *o, const struct qv_fw_group *g)
{
	char chain[64];
	int r = 0;

	if (!vm_fw_group_name_valid(g->name))
		return -EINVAL;
	for (int in = 1; in >= 0 && r >= 0; in--) {
		_cleanup_(qv_fw_batch_freep) qv_fw_batch *body = qv_fw_batch_new();
		if (!body)
			return -ENOMEM;
		qv_fw_group_chain(g->name, in, chain);
		for (size_t i = 0; r >= 0 && i < g->n_rules; i++)
			if ((g->rules[i].dir == VM_FW_IN) == (bool)in)
				r = emit_rule(body, o, chain, &g->rules[i], i);
		if (r >= 0)
			r = emit_chain(b, o, chain, body, "");
	}
	return r;
}

int qv_fw_emit_group_delete(qv_fw_batch *b, const struct qv_fw_opts *o, const char *name)
{
	if (!vm_fw_group_name_valid(name))
		return -EINVAL;
	return qv_fw_batch_addf(b, "delete chain bridge %s g_%s_in\ndelete chain bridge %s g_%s_out\n",
				tbl(o), name, tbl(o), name);
}

/* fe80::/64 EUI-64 address of mac (the kernel's default link-local). */
static void link_local(const struct qv_mac *m, char ret[INET6_ADDRSTRLEN])
{
	unsigned char a[16] = { 0xfe, 0x80 };

	a[8] = m->b[0] ^ 0x02;
	a[9] = m->b[1];
	a[10] = m->b[2];
	a[11] = 0xff;
	a[12] = 0xfe;
	a[13] = m->b[3];
	a[14] = m->b[4];
	a[15] = m->b[5];
	inet_ntop(AF_INET6, a, ret, INET6_ADDRSTRLEN);
}

/* The NIC's allowed sources. They are written as a conjunction of
 * comparisons (`ip saddr != a ip saddr != b`), not as anonymous sets: at
 * most VM_FW_ADDRS_MAX + leases per family, and no per-NIC set in the
 * table, so the sets libnftables fetches before every transaction stay a
 * handful however many VMs run. all4/all6: a /0 allows that whole family.
 * *ret_v4 says whether IPv4 sources are checked. */
#define QV_FW_SRC_MAX (2 * VM_FW_ADDRS_MAX)

struct addr_lists {
	const char *v4[QV_FW_SRC_MAX], *v6[QV_FW_SRC_MAX + 1];
	size_t n4, n6;
	bool all4, all6;
	char ll[INET6_ADDRSTRLEN];
};

static int addr_lists(const struct qv_fw_nic *n, const struct vm_fw *fw, const struct qv_mac *mac,
		      struct addr_lists *ret, bool *ret_v4)
{
	memset(ret, 0, sizeof(*ret));
	link_local(mac, ret->ll);
	ret->v6[ret->n6++] = ret->ll;
	for (size_t i = 0; i < fw->n_addrs + n->n_learned; i++) {
		const char *a = i < fw->n_addrs ? fw->addrs[i] : n->learned[i - fw->n_addrs];
		unsigned char buf[4];
		const char *slash = strchr(a, '/');
		bool all = slash && streq(slash, "/0");
		if (i >= fw->n_addrs && inet_pton(AF_INET, a, buf) != 1)
			return -EINVAL;
		if (strchr(a, ':')) {
			if (ret->n6 >= ARRAY_SIZE(ret->v6))
				return -E2BIG;
			ret->v6[ret->n6++] = a;
			ret->all6 |= all;
		} else {
			if (ret->n4 >= ARRAY_SIZE(ret->v4))
				return -E2BIG;
			ret->v4[ret->n4++] = a;
			ret->all4 |= all;
		}
	}
	*ret_v4 = fw->anti_spoof && !ret->all4 && (ret->n4 > 0 || n->dhcp);
	return 0;
}

/* " FIELD != a FIELD != b ..." for every address of the list. */
static int add_ne(qv_fw_batch *b, const char *field, const char *const *addrs, size_t n)
{
	int r = 0;

	for (size_t i = 0; r >= 0 && i < n; i++)
		r = qv_fw_batch_addf(b, " %s != %s", field, addrs[i]);
	return r;
}

/* The top plen bits of an IPv6 prefix as a hex integer, for a raw payload
 * match (nft 1.0.6 has no `icmpv6 taddr`). */
static int prefix_hex(const char *cidr, char ret[40], unsigned *ret_plen)
{
	char addr[INET6_ADDRSTRLEN];
	unsigned char a[16];
	unsigned plen = 128, bit = 0;
	const char *slash = strchr(cidr, '/');
	char *p = ret;

	snprintf(addr, sizeof(addr), "%.*s", slash ? (int)(slash - cidr) : (int)strlen(cidr), cidr);
	if (inet_pton(AF_INET6, addr, a) != 1)
		return -EINVAL;
	if (slash)
		plen = (unsigned)atoi(slash + 1);
	if (plen == 0 || plen > 128)
		return -EINVAL;
	*p++ = '0';
	*p++ = 'x';
	for (unsigned d = 0, nd = (plen + 3) / 4; d < nd; d++) {
		unsigned w = d == 0 && plen % 4 ? plen % 4 : 4, v = 0;
		for (unsigned k = 0; k < w; k++, bit++)
			v = v << 1 | ((a[bit / 8] >> (7 - bit % 8)) & 1);
		*p++ = "0123456789abcdef"[v];
	}
	*p = 0;
	*ret_plen = plen;
	return 0;
}

/* A neighbour advertisement may only claim the NIC's own IPv6 addresses
 * (the ND target, ICMPv6 bytes 8..23): else a guest could take over
 * another VM's address in the host's and the other guests' caches. */
static int emit_nd_target(qv_fw_batch *body, const char *t, const char *chain,
			  const struct addr_lists *al)
{
	int r = qv_fw_batch_addf(body, "add rule bridge %s %s icmpv6 type nd-neighbor-advert", t,
				 chain);

	for (size_t i = 0; r >= 0 && i < al->n6; i++) {
		char hex[40];
		unsigned plen;
		if (prefix_hex(al->v6[i], hex, &plen) < 0)
			return -EINVAL;
		r = qv_fw_batch_addf(body, " @th,64,%u != %s", plen, hex);
	}
	if (r >= 0)
		r = qv_fw_batch_addf(body, " counter drop comment \"" QV_FW_TAG_SPOOF "nd-target\"\n");
	return r;
}

/* "52:54:00:00:00:07" -> "525400000007", for raw payload matches. */
static void mac_hex(const char *mac, char ret[13])
{
	size_t k = 0;

	for (const char *p = mac; *p && k < 12; p++)
		if (*p != ':')
			ret[k++] = *p;
	ret[k] = '\0';
}

/* The link-layer address option of a neighbour advertisement (target,
 * type 2) or solicitation / router solicitation (source, type 1) must be the
 * NIC's MAC: the receivers' caches take the MAC from it, not from the frame.
 * nft cannot walk ICMPv6 options, so only the layouts honest stacks send
 * pass: NA and NS 24 bytes + at most one 8-byte option, RS 8 + at most one;
 * that option must be the NIC's own (or, in an NS, a DAD nonce, type 14).
 * ip6 length counts extension headers too: with one, there is no room left
 * for an option. */
static int emit_nd_lla(qv_fw_batch *body, const char *t, const char *chain, const char *mac)
{
	char hex[13];

	mac_hex(mac, hex);
	return qv_fw_batch_addf(body,
		"add rule bridge %1$s %2$s icmpv6 type nd-neighbor-advert ip6 length != 24 "
		"ip6 length != 32 counter drop comment \"" QV_FW_TAG_SPOOF "nd-lla\"\n"
		"add rule bridge %1$s %2$s icmpv6 type nd-neighbor-advert ip6 length 32 "
		"@th,192,64 != 0x0201%3$s counter drop comment \"" QV_FW_TAG_SPOOF "nd-lla\"\n"
		"add rule bridge %1$s %2$s icmpv6 type nd-neighbor-solicit ip6 length != 24 "
		"ip6 length != 32 counter drop comment \"" QV_FW_TAG_SPOOF "nd-lla\"\n"
		"add rule bridge %1$s %2$s icmpv6 type nd-neighbor-solicit ip6 length 32 "
		"@th,192,64 != 0x0101%3$s @th,192,16 != 0x0e01 counter drop comment \""
		QV_FW_TAG_SPOOF "nd-lla\"\n"
		"add rule bridge %1$s %2$s icmpv6 type nd-router-solicit ip6 length != 8 "
		"ip6 length != 16 counter drop comment \"" QV_FW_TAG_SPOOF "nd-lla\"\n"
		"add rule bridge %1$s %2$s icmpv6 type nd-router-solicit ip6 length 16 "
		"@th,64,64 != 0x0101%3$s counter drop comment \"" QV_FW_TAG_SPOOF "nd-lla\"\n",
		t, chain, hex);
}

static int emit_spoof(qv_fw_batch *body, const struct qv_fw_opts *o, const char *chain,
		      const struct qv_fw_nic *n, const struct addr_lists *al, bool v4)
{
	const char *t = tbl(o);
	int r = qv_fw_batch_addf(body,
				 "add rule bridge %s %s ether saddr != %s counter drop comment \""
				 QV_FW_TAG_SPOOF "mac\"\n"
				 "add rule bridge %s %s arp saddr ether != %s counter drop comment \""
				 QV_FW_TAG_SPOOF "arp-mac\"\n",
				 t, chain, n->mac, t, chain, n->mac);
	/* Only IPv4, ARP and IPv6 leave a VM: an 802.1Q/QinQ, MPLS or PPPoE
	 * frame would carry an inner source the ip/ip6 rules never see. */
	if (r >= 0)
		r = qv_fw_batch_addf(body, "add rule bridge %s %s ether type != @eth_ok "
				     "counter drop comment \"" QV_FW_TAG_SPOOF "ethertype\"\n",
				     t, chain);
	/* No address yet (DHCP before the lease): no IPv4 source is allowed. */
	if (r >= 0 && v4) {
		r = qv_fw_batch_addf(body, "add rule bridge %s %s arp saddr ip != 0.0.0.0", t, chain);
		if (r >= 0)
			r = add_ne(body, "arp saddr ip", al->v4, al->n4);
		if (r >= 0)
			r = qv_fw_batch_addf(body, " counter drop comment \"" QV_FW_TAG_SPOOF
					     "arp-ip\"\n");
	}
	/* dnsmasq trusts the client hardware address inside a DHCP message
	 * (BOOTP chaddr, byte 28): a guest naming another VM's MAC there could
	 * release that VM's lease and take its address. */
	if (r >= 0 && n->dhcp) {
		char hex[13];

		mac_hex(n->mac, hex);
		r = qv_fw_batch_addf(body, "add rule bridge %s %s udp dport 67 @ih,224,48 != 0x%s "
				     "counter drop comment \"" QV_FW_TAG_SPOOF "dhcp-chaddr\"\n",
				     t, chain, hex);
	}
	if (r >= 0 && n->dhcp)
		r = qv_fw_batch_addf(body, "add rule bridge %s %s ip saddr 0.0.0.0 ip daddr "
				     "255.255.255.255 udp sport 68 udp dport 67 counter accept "
				     "comment \"qv:dhcp-client\"\n", t, chain);
	if (r >= 0 && v4) {
		r = qv_fw_batch_addf(body, "add rule bridge %s %s ether type ip", t, chain);
		if (r >= 0)
			r = add_ne(body, "ip saddr", al->v4, al->n4);
		if (r >= 0)
			r = qv_fw_batch_addf(body, " counter drop comment \"" QV_FW_TAG_SPOOF "ip\"\n");
	}
	/* `::` is a source only for duplicate address detection: a neighbour
	 * solicitation or an MLD report. */
	if (r >= 0 && !al->all6)
		r = qv_fw_batch_addf(body,
				     "add rule bridge %s %s ip6 saddr :: meta l4proto != ipv6-icmp "
				     "counter drop comment \"" QV_FW_TAG_SPOOF "ip6\"\n"
				     "add rule bridge %s %s ip6 saddr :: icmpv6 type != @dad_types "
				     "counter drop comment \"" QV_FW_TAG_SPOOF "ip6\"\n"
				     "add rule bridge %s %s ip6 saddr != ::",
				     t, chain, t, chain, t, chain);
	if (r >= 0 && !al->all6)
		r = add_ne(body, "ip6 saddr", al->v6, al->n6);
	if (r >= 0 && !al->all6)
		r = qv_fw_batch_addf(body, " counter drop comment \"" QV_FW_TAG_SPOOF "ip6\"\n");
	if (r >= 0 && !al->all6)
		r = emit_nd_target(body, t, chain, al);
	if (r >= 0)
		r = emit_nd_lla(body, t, chain, n->mac);
	if (r >= 0)
		r = qv_fw_batch_addf(body,
				     "add rule bridge %s %s udp sport @dhcp_srv counter drop "
				     "comment \"" QV_FW_TAG_SPOOF "dhcp-server\"\n"
				     "add rule bridge %s %s icmpv6 type @ra_types counter drop "
				     "comment \"" QV_FW_TAG_SPOOF "ra\"\n",
				     t, chain, t, chain);
	return r;
}

/* ARP, ND and (with DHCP) the client's exchange pass whatever the policy:
 * a drop policy must not cut a VM off its own link. */
static int emit_link_basics(qv_fw_batch *body, const struct qv_fw_opts *o, const char *chain,
			    bool in, bool dhcp)
{
	const char *t = tbl(o);
	int r = qv_fw_batch_addf(body, "add rule bridge %s %s ether type arp accept\n"
				 "add rule bridge %s %s icmpv6 type @nd_%s accept\n",
				 t, chain, t, chain, in ? "in" : "out");
	if (r >= 0 && dhcp && in)
		r = qv_fw_batch_addf(body, "add rule bridge %s %s udp sport 67 udp dport 68 accept\n",
				     t, chain);
	return r;
}

static int emit_nic_chain(qv_fw_batch *b, const struct qv_fw_opts *o, const struct qv_fw_nic *n,
			  const struct vm_fw *fw, const struct addr_lists *al, bool in, bool v4)
{
	_cleanup_(qv_fw_batch_freep) qv_fw_batch *body = qv_fw_batch_new();
	char chain[64], g[64];
	int r = 0;

	if (!body)
		return -ENOMEM;
	qv_fw_nic_chain(n->tap, in, chain);
	if (!in && fw->anti_spoof)
		r = emit_spoof(body, o, chain, n, al, v4);
	if (r >= 0)
		r = emit_link_basics(body, o, chain, in, n->dhcp);
	for (size_t i = 0; r >= 0 && i < fw->n_groups; i++) {
		qv_fw_group_chain(fw->groups[i], in, g);
		r = qv_fw_batch_addf(body, "add rule bridge %s %s jump %s\n", tbl(o), chain, g);
	}
	for (size_t i = 0; r >= 0 && i < fw->n_rules; i++)
		if ((fw->rules[i].dir == VM_FW_IN) == in)
			r = emit_rule(body, o, chain, &fw->rules[i], i);
	if (r < 0)
		return r;
	return emit_chain(b, o, chain, body,
			  vm_fw_action_to_string(in ? fw->policy_in : fw->policy_out));
}

int qv_fw_emit_nic(qv_fw_batch *b, const struct qv_fw_opts *o, const struct qv_fw_nic *n,
		   struct qv_error *errp)
{
	struct addr_lists al;
	struct vm_fw defaults;
	const struct vm_fw *fw = n->fw;
	struct qv_mac mac;
	bool v4 = false;
	int r;

	if (!ident_ok(n->tap))
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "firewall: TAP name \"%.20s\" is not usable in nft", n->tap);
	if (!n->mac || qv_mac_parse(n->mac, &mac) < 0)
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "firewall: NIC %s has no valid MAC", n->tap);
	struct qv_fw_nic norm = *n;
	char macs[QV_MAC_STRLEN];
	norm.mac = qv_mac_format(&mac, macs);
	n = &norm;
	if (!fw) {
		vm_fw_defaults(&defaults);
		fw = &defaults;
	}
	r = addr_lists(n, fw, &mac, &al, &v4);
	if (r < 0)
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "firewall: NIC %s: %s", n->tap, r == -E2BIG ? "too many addresses"
				    : "a learned address is not IPv4");
	r = emit_nic_chain(b, o, n, fw, &al, true, v4);
	if (r >= 0)
		r = emit_nic_chain(b, o, n, fw, &al, false, v4);
	if (r >= 0)
		r = qv_fw_batch_addf(b, "add element bridge %s from_vm { \"%s\" : jump n_%s_out }\n"
				     "add element bridge %s to_vm { \"%s\" : jump n_%s_in }\n",
				     tbl(o), n->tap, n->tap, tbl(o), n->tap, n->tap);
	if (r < 0)
		return qv_error_set(errp, -r, QV_REASON_INTERNAL, "firewall: cannot build rules: %s",
				    strerror(-r));
	return 0;
}

int qv_fw_emit_nic_delete(qv_fw_batch *b, const struct qv_fw_opts *o, const char *tap)
{
	const char *t = tbl(o);

	if (!ident_ok(tap))
		return -EINVAL;
	return qv_fw_batch_addf(b, "delete element bridge %s from_vm { \"%s\" }\n"
				"delete element bridge %s to_vm { \"%s\" }\n"
				"delete chain bridge %s n_%s_out\ndelete chain bridge %s n_%s_in\n",
				t, tap, t, tap, t, tap, t, tap);
}

int qv_fw_emit_table_delete(qv_fw_batch *b, const struct qv_fw_opts *o)
{
	return qv_fw_batch_addf(b, "delete table bridge %s\n", tbl(o));
}
