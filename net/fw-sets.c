/* SPDX-License-Identifier: MIT */
/* The shared sets and maps of the firewall table (docs/firewall.md): a NIC's
 * anti-spoofing and most of its rules are elements keyed by its TAP name,
 * checked by a fixed number of rules, so the number of rules in the table
 * grows with neither the VMs nor their rules. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/macro.h"
#include "net/fw-internal.h"
#include "net/ifname.h"

const char *qv_fw__tbl(const struct qv_fw_opts *o)
{
	return o && o->table ? o->table : QV_FW_TABLE;
}

/* Every shared set holding per-NIC elements. sp_*: one counter per NIC and
 * anti-spoofing check; a NIC is checked only when it is in the set, and the
 * element's counter counts its drops (fw.show: qv:spoof:<tag>). */
enum {
	S_MAC, S_IP4, S_IP6, S_ND, S_DHCP,
	S_SP_MAC, S_SP_ARP_MAC, S_SP_ETHERTYPE, S_SP_ARP_IP, S_SP_IP, S_SP_IP6, S_SP_ND,
	S_SP_DHCP_SERVER, S_SP_RA, S_LLA, S_SP_LLA,
	S_N
};

static const struct { const char *name, *decl; } sets[S_N] = {
	[S_MAC] = { "mac_ok", "type ifname . ether_addr;" },
	[S_IP4] = { "ip4_ok", "type ifname . ipv4_addr; flags interval;" },
	[S_IP6] = { "ip6_ok", "type ifname . ipv6_addr; flags interval;" },
	[S_ND] = { "nd_ok", "typeof iifname . @th,64,128; flags interval;" },
	[S_DHCP] = { "dhcp_nics", "type ifname;" },
	[S_SP_MAC] = { "sp_mac", "type ifname; counter;" },
	[S_SP_ARP_MAC] = { "sp_arp_mac", "type ifname; counter;" },
	[S_SP_ETHERTYPE] = { "sp_ethertype", "type ifname; counter;" },
	[S_SP_ARP_IP] = { "sp_arp_ip", "type ifname; counter;" },
	[S_SP_IP] = { "sp_ip", "type ifname; counter;" },
	[S_SP_IP6] = { "sp_ip6", "type ifname; counter;" },
	[S_SP_ND] = { "sp_nd_target", "type ifname; counter;" },
	[S_SP_DHCP_SERVER] = { "sp_dhcp_server", "type ifname; counter;" },
	[S_SP_RA] = { "sp_ra", "type ifname; counter;" },
	[S_LLA] = { "lla_ok", "typeof iifname . @th,192,64;" },
	[S_SP_LLA] = { "sp_nd_lla", "type ifname; counter;" },
};

/* The anti-spoofing checks, in order, for every NIC at once. The DHCP
 * client's exchange returns early: its NIC chain checks chaddr and accepts. */
static const char spoof_rules[] =
	"iifname . ether saddr != @mac_ok iifname @sp_mac drop\n"
	"iifname . arp saddr ether != @mac_ok iifname @sp_arp_mac drop\n"
	"ether type != @eth_ok iifname @sp_ethertype drop\n"
	"arp saddr ip != 0.0.0.0 iifname . arp saddr ip != @ip4_ok iifname @sp_arp_ip drop\n"
	"iifname @dhcp_nics ip saddr 0.0.0.0 ip daddr 255.255.255.255 udp sport 68 udp dport 67 "
	"return\n"
	"ether type ip iifname . ip saddr != @ip4_ok iifname @sp_ip drop\n"
	"ip6 saddr :: meta l4proto != ipv6-icmp iifname @sp_ip6 drop\n"
	"ip6 saddr :: icmpv6 type != @dad_types iifname @sp_ip6 drop\n"
	"ip6 saddr != :: iifname . ip6 saddr != @ip6_ok iifname @sp_ip6 drop\n"
	"icmpv6 type nd-neighbor-advert iifname . @th,64,128 != @nd_ok iifname @sp_nd_target drop\n"
	/* The link-layer address option of an NA (target, type 2) or an NS/RS
	 * (source, type 1) must be the NIC's MAC: receivers' caches take the
	 * MAC from it, not from the frame. nft cannot walk ICMPv6 options, so
	 * only the layouts honest stacks send pass: NA/NS 24 bytes + at most
	 * one 8-byte option, RS 8 + at most one; that option must be the NIC's
	 * own (lla_ok: "tap . 0x0201MAC" and "tap . 0x0101MAC"), or in an NS a
	 * DAD nonce (type 14). ip6 length counts extension headers too: with
	 * one there is no room left for an option. */
	"icmpv6 type nd-neighbor-advert ip6 length != 24 ip6 length != 32 iifname @sp_nd_lla drop\n"
	"icmpv6 type nd-neighbor-advert ip6 length 32 iifname . @th,192,64 != @lla_ok "
	"iifname @sp_nd_lla drop\n"
	"icmpv6 type nd-neighbor-solicit ip6 length != 24 ip6 length != 32 iifname @sp_nd_lla drop\n"
	"icmpv6 type nd-neighbor-solicit ip6 length 32 @th,192,16 != 0x0e01 "
	"iifname . @th,192,64 != @lla_ok iifname @sp_nd_lla drop\n"
	"icmpv6 type nd-router-solicit ip6 length != 8 ip6 length != 16 iifname @sp_nd_lla drop\n"
	"icmpv6 type nd-router-solicit ip6 length 16 iifname . @th,64,64 != @lla_ok "
	"iifname @sp_nd_lla drop\n"
	"udp sport @dhcp_srv iifname @sp_dhcp_server drop\n"
	"icmpv6 type @ra_types iifname @sp_ra drop\n";

int qv_fw__add_rules(qv_fw_batch *b, const struct qv_fw_opts *o, const char *chain,
		     const char *lines, const char *last_suffix)
{
	int r = 0;

	for (const char *p = lines; r >= 0 && *p;) {
		size_t l = strcspn(p, "\n");
		bool last = !p[l] || !p[l + 1];
		r = qv_fw_batch_addf(b, "add rule bridge %s %s %.*s%s\n", qv_fw__tbl(o), chain,
				     (int)l, p, last && last_suffix ? last_suffix : "");
		p += l + (p[l] == '\n');
	}
	return r;
}

int qv_fw__emit_shared(qv_fw_batch *b, const struct qv_fw_opts *o)
{
	const char *t = qv_fw__tbl(o);
	int r = 0;

	for (size_t i = 0; r >= 0 && i < S_N; i++)
		r = qv_fw_batch_addf(b, "add %s bridge %s %s { %s }\n",
				     strstr(sets[i].decl, ": verdict") ? "map" : "set", t,
				     sets[i].name, sets[i].decl);
	if (r >= 0)
		r = qv_fw_batch_addf(b, "add chain bridge %s vm_spoof\nflush chain bridge %s vm_spoof\n",
				     t, t);
	if (r >= 0)
		r = qv_fw__add_rules(b, o, "vm_spoof", spoof_rules, NULL);
	if (r >= 0)
		r = qv_fw_batch_addf(b, "add rule bridge %s vm_spoof counter comment \"" QV_FW_TAG_END
				     QV_FW_BASE_TAG "\"\n", t);
	return r;
}

int qv_fw__flush_shared(qv_fw_batch *b, const struct qv_fw_opts *o)
{
	int r = 0;

	for (size_t i = 0; r >= 0 && i < S_N; i++)
		r = qv_fw_batch_addf(b, "flush %s bridge %s %s\n",
				     strstr(sets[i].decl, ": verdict") ? "map" : "set",
				     qv_fw__tbl(o), sets[i].name);
	return r;
}

const char *qv_fw__set_tag(const char *set)
{
	return strncmp(set, "sp_", 3) == 0 ? set + 3 : NULL;
}

/* ---- addresses ---- */

/* "52:54:00:00:00:07" -> "525400000007", for raw payload matches. */
static void mac_hex(const char *mac, char ret[13])
{
	size_t k = 0;

	for (const char *p = mac; *p && k < 12; p++)
		if (*p != ':')
			ret[k++] = *p;
	ret[k] = '\0';
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

/* cidr -> address bytes (16 for IPv6, 4 for IPv4) and prefix length. */
static int cidr_parse(const char *cidr, unsigned char a[16], unsigned *ret_plen, int *ret_fam)
{
	char addr[INET6_ADDRSTRLEN];
	const char *slash = strchr(cidr, '/');
	int fam = strchr(cidr, ':') ? 6 : 4;

	snprintf(addr, sizeof(addr), "%.*s", slash ? (int)(slash - cidr) : (int)strlen(cidr), cidr);
	memset(a, 0, 16);
	if (inet_pton(fam == 6 ? AF_INET6 : AF_INET, addr, a) != 1)
		return -EINVAL;
	*ret_plen = slash ? (unsigned)atoi(slash + 1) : (fam == 6 ? 128u : 32u);
	*ret_fam = fam;
	return *ret_plen > (fam == 6 ? 128u : 32u) ? -EINVAL : 0;
}

/* Whether the prefixes a and b share an address. */
static bool cidr_overlap(const char *x, const char *y)
{
	unsigned char a[16], b[16];
	unsigned pa, pb;
	int fa, fb;

	if (cidr_parse(x, a, &pa, &fa) < 0 || cidr_parse(y, b, &pb, &fb) < 0)
		return true;
	if (fa != fb)
		return false;
	unsigned p = pa < pb ? pa : pb;
	for (unsigned bit = 0; bit < p; bit++)
		if (((a[bit / 8] ^ b[bit / 8]) >> (7 - bit % 8)) & 1)
			return false;
	return true;
}

/* x lies inside y (and differs from it, or comes later). */
static bool cidr_within(const char *x, const char *y)
{
	unsigned char a[16], b[16];
	unsigned pa, pb;
	int fa, fb;

	if (cidr_parse(x, a, &pa, &fa) < 0 || cidr_parse(y, b, &pb, &fb) < 0)
		return false;
	return fa == fb && pb <= pa && cidr_overlap(x, y);
}

static void dedupe(const char **v, size_t *n)
{
	size_t k = 0;

	for (size_t i = 0; i < *n; i++) {
		bool drop = false;
		for (size_t j = 0; j < *n && !drop; j++)
			drop = j != i && cidr_within(v[i], v[j]) &&
			       (!cidr_within(v[j], v[i]) || j < i);
		if (!drop)
			v[k++] = v[i];
	}
	*n = k;
}

int qv_fw__addrs(const struct qv_fw_nic *n, const struct vm_fw *fw, const struct qv_mac *mac,
		 struct qv_fw_addrs *ret)
{
	memset(ret, 0, sizeof(*ret));
	link_local(mac, ret->ll);
	ret->v6[ret->n6++] = ret->ll;
	for (size_t i = 0; i < fw->n_addrs + n->n_learned; i++) {
		const char *a = i < fw->n_addrs ? fw->addrs[i] : n->learned[i - fw->n_addrs];
		unsigned char buf[16];
		unsigned plen;
		int fam;
		const char *slash = strchr(a, '/');
		bool all = slash && streq(slash, "/0");
		if (i >= fw->n_addrs && inet_pton(AF_INET, a, buf) != 1)
			return -EINVAL;
		if (cidr_parse(a, buf, &plen, &fam) < 0)
			return -EINVAL;
		if (fam == 6) {
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
	dedupe(ret->v4, &ret->n4);
	dedupe(ret->v6, &ret->n6);
	ret->v4_checked = fw->anti_spoof && !ret->all4 && (ret->n4 > 0 || n->dhcp);
	return 0;
}

/* An IPv6 prefix as the 128-bit integer range nd_ok holds (the ND target is
 * matched as raw payload: nft 1.0.6 has no `icmpv6 taddr`). */
static int nd_range(const char *cidr, char ret[80])
{
	unsigned char lo[16], hi[16];
	unsigned plen;
	int fam;
	char *p = ret;

	if (cidr_parse(cidr, lo, &plen, &fam) < 0 || fam != 6)
		return -EINVAL;
	for (unsigned bit = 0; bit < 128; bit++)
		if (bit >= plen)
			lo[bit / 8] &= (unsigned char)~(1u << (7 - bit % 8));
	memcpy(hi, lo, 16);
	for (unsigned bit = plen; bit < 128; bit++)
		hi[bit / 8] |= (unsigned char)(1u << (7 - bit % 8));
	p += sprintf(p, "0x");
	for (int i = 0; i < 16; i++)
		p += sprintf(p, "%02x", lo[i]);
	if (plen < 128) {
		p += sprintf(p, "-0x");
		for (int i = 0; i < 16; i++)
			p += sprintf(p, "%02x", hi[i]);
	}
	return 0;
}

/* ---- rules as map elements ---- */

/* A rule fits a verdict map when it is a plain match on (remote address,
 * TCP/UDP, destination ports) with accept or drop. */
static bool rule_mappable(const struct vm_fw_rule *r, const struct qv_fw_opts *o)
{
	if (r->rate || r->icmp_type[0] || (r->proto != VM_FW_TCP && r->proto != VM_FW_UDP))
		return false;
	return r->action != VM_FW_REJECT || !(o && o->reject_ok);
}

static bool ports_overlap(const struct vm_fw_rule *a, size_t ia, const struct vm_fw_rule *b,
			  size_t ib)
{
	unsigned alo = a->n_ports ? a->ports[ia][0] : 0, ahi = a->n_ports ? a->ports[ia][1] : 65535;
	unsigned blo = b->n_ports ? b->ports[ib][0] : 0, bhi = b->n_ports ? b->ports[ib][1] : 65535;
	return alo <= bhi && blo <= ahi;
}

/* Whether any packet matches both a and b (same rule: its port ranges). */
static bool rules_overlap(const struct vm_fw_rule *a, const struct vm_fw_rule *b)
{
	if (a->proto != b->proto)
		return false;
	if (a->cidr[0] && b->cidr[0] && !cidr_overlap(a->cidr, b->cidr))
		return false;
	unsigned na = a->n_ports ? a->n_ports : 1, nb = b->n_ports ? b->n_ports : 1;
	for (unsigned i = 0; i < na; i++)
		for (unsigned j = 0; j < nb; j++)
			if ((a != b || i != j) && ports_overlap(a, i, b, j))
				return true;
	return false;
}

/* First match wins in a chain; a map has no order. So a direction's rules
 * become elements only when every one fits and no two overlap: then the
 * order cannot matter. Otherwise they all stay chain rules. */
void qv_fw__map_rules(struct qv_fw_nicx *x, const struct qv_fw_opts *o)
{
	const struct vm_fw *fw = x->fw;

	for (int in = 0; in < 2; in++) {
		bool ok = true, any = false;
		unsigned fams = 0;
		for (size_t i = 0; ok && i < fw->n_rules; i++) {
			const struct vm_fw_rule *a = &fw->rules[i];
			if ((a->dir == VM_FW_IN) != (bool)in)
				continue;
			any = true;
			ok = rule_mappable(a, o);
			fams |= !a->cidr[0] ? 3u : strchr(a->cidr, ':') ? 2u : 1u;
			for (size_t j = i; ok && j < fw->n_rules; j++)
				if ((fw->rules[j].dir == VM_FW_IN) == (bool)in)
					ok = !rules_overlap(a, &fw->rules[j]);
		}
		x->mapped[in] = ok && any;
		x->fams[in] = x->mapped[in] ? fams : 0;
	}
}

/* ---- element lists ---- */

struct qv_fw_elems {
	qv_fw_batch *add[S_N], *del[S_N]; /* "e1, e2" with and without extras */
};

qv_fw_elems *qv_fw__elems_new(void)
{
	qv_fw_elems *e = calloc(1, sizeof(*e));

	for (size_t i = 0; e && i < S_N; i++)
		if (!(e->add[i] = qv_fw_batch_new()) || !(e->del[i] = qv_fw_batch_new())) {
			qv_fw__elems_freep(&e);
			return NULL;
		}
	return e;
}

void qv_fw__elems_freep(qv_fw_elems **e)
{
	if (!*e)
		return;
	for (size_t i = 0; i < S_N; i++) {
		qv_fw_batch_free((*e)->add[i]);
		qv_fw_batch_free((*e)->del[i]);
	}
	free(*e);
	*e = NULL;
}

/* One element: key, and for add the comment and verdict. */
static int elem(qv_fw_elems *e, int set, const char *extra, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int elem(qv_fw_elems *e, int set, const char *extra, const char *fmt, ...)
{
	char key[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(key, sizeof(key), fmt, ap);
	va_end(ap);
	const char *sep = qv_fw_batch_len(e->add[set]) ? ", " : "";
	int r = qv_fw_batch_addf(e->add[set], "%s%s%s", sep, key, extra ? extra : "");
	return r < 0 ? r : qv_fw_batch_addf(e->del[set], "%s%s", sep, key);
}

void qv_fw__rule_map(const char *tap, bool in, int fam, char ret[32])
{
	snprintf(ret, 32, "n_%s_r%c%d", tap, in ? 'i' : 'o', fam);
}

int qv_fw__rule_map_add(qv_fw_batch *b, const struct qv_fw_opts *o, const char *map, int fam)
{
	return qv_fw_batch_addf(b, "add map bridge %s %s { type %s . inet_proto . inet_service : "
				"verdict; flags interval; counter; }\n", qv_fw__tbl(o), map,
				fam == 4 ? "ipv4_addr" : "ipv6_addr");
}

/* The elements of one rule in the map of (in, fam). */
static int rule_elems(qv_fw_batch *b, const struct qv_fw_nicx *x, size_t idx, bool in, int fam)
{
	const struct vm_fw_rule *r = &x->fw->rules[idx];
	char port[16];
	int rc = 0;

	if ((r->dir == VM_FW_IN) != in || (r->cidr[0] && (strchr(r->cidr, ':') ? 6 : 4) != fam))
		return 0;
	const char *cidr = r->cidr[0] ? r->cidr : fam == 6 ? "::/0" : "0.0.0.0/0";
	for (unsigned i = 0; rc >= 0 && i < (r->n_ports ? r->n_ports : 1); i++) {
		unsigned lo = r->n_ports ? r->ports[i][0] : 0;
		unsigned hi = r->n_ports ? r->ports[i][1] : 65535;
		if (lo == hi)
			snprintf(port, sizeof(port), "%u", lo);
		else
			snprintf(port, sizeof(port), "%u-%u", lo, hi);
		rc = qv_fw_batch_addf(b, "%s%s . %s . %s comment \"" QV_FW_TAG_RULE "%zu\" : %s",
				      qv_fw_batch_len(b) ? ", " : "", cidr,
				      r->proto == VM_FW_TCP ? "tcp" : "udp", port, idx,
				      r->action == VM_FW_ACCEPT ? "accept" : "drop");
	}
	return rc;
}

/* A NIC's mapped rules live in its own small verdict maps (one per
 * direction and family it uses): a live change flushes and refills them,
 * and never removes elements from a large shared interval set, which costs
 * the kernel time in proportion to the whole set (nft_pipapo_remove). */
int qv_fw__emit_rule_maps(qv_fw_batch *b, const struct qv_fw_opts *o, const struct qv_fw_nicx *x,
			  bool used)
{
	const char *t = qv_fw__tbl(o);
	char name[32];
	int r = 0;

	for (int in = 0; r >= 0 && in < 2; in++)
		for (int fam = 4; r >= 0 && fam <= 6; fam += 2) {
			bool has = x->fams[in] & (fam == 4 ? 1u : 2u);
			if (has != used)
				continue;
			qv_fw__rule_map(x->n->tap, in, fam, name);
			r = qv_fw__rule_map_add(b, o, name, fam);
			if (r >= 0)
				r = qv_fw_batch_addf(b, "%s map bridge %s %s\n",
						     used ? "flush" : "delete", t, name);
			if (r < 0 || !used)
				continue;
			_cleanup_(qv_fw_batch_freep) qv_fw_batch *l = qv_fw_batch_new();
			if (!l)
				return -ENOMEM;
			for (size_t i = 0; r >= 0 && i < x->fw->n_rules; i++)
				r = rule_elems(l, x, i, in, fam);
			if (r >= 0)
				r = qv_fw_batch_addf(b, "add element bridge %s %s { %s }\n", t, name,
						     qv_fw_batch_text(l));
		}
	return r;
}

int qv_fw__elems_nic(qv_fw_elems *e, const struct qv_fw_nicx *x, const struct qv_fw_opts *o)
{
	const struct qv_fw_addrs *al = &x->al;
	const char *tap = x->n->tap;
	int r = 0;

	if (x->n->dhcp)
		r = elem(e, S_DHCP, NULL, "\"%s\"", tap);
	if (r >= 0 && x->fw->anti_spoof) {
		static const int always[] = { S_SP_MAC, S_SP_ARP_MAC, S_SP_ETHERTYPE,
					      S_SP_DHCP_SERVER, S_SP_RA, S_SP_LLA };
		char hex[13];
		mac_hex(x->n->mac, hex);
		r = elem(e, S_MAC, NULL, "\"%s\" . %s", tap, x->n->mac);
		if (r >= 0)
			r = elem(e, S_LLA, NULL, "\"%s\" . 0x0201%s", tap, hex);
		if (r >= 0)
			r = elem(e, S_LLA, NULL, "\"%s\" . 0x0101%s", tap, hex);
		for (size_t i = 0; r >= 0 && i < ARRAY_SIZE(always); i++)
			r = elem(e, always[i], NULL, "\"%s\"", tap);
		if (r >= 0 && al->v4_checked) {
			r = elem(e, S_SP_ARP_IP, NULL, "\"%s\"", tap);
			if (r >= 0)
				r = elem(e, S_SP_IP, NULL, "\"%s\"", tap);
			for (size_t i = 0; r >= 0 && i < al->n4; i++)
				r = elem(e, S_IP4, NULL, "\"%s\" . %s", tap, al->v4[i]);
		}
		if (r >= 0 && !al->all6) {
			r = elem(e, S_SP_IP6, NULL, "\"%s\"", tap);
			if (r >= 0)
				r = elem(e, S_SP_ND, NULL, "\"%s\"", tap);
			for (size_t i = 0; r >= 0 && i < al->n6; i++) {
				char nd[80];
				r = nd_range(al->v6[i], nd);
				if (r >= 0)
					r = elem(e, S_IP6, NULL, "\"%s\" . %s", tap, al->v6[i]);
				if (r >= 0)
					r = elem(e, S_ND, NULL, "\"%s\" . %s", tap, nd);
			}
		}
	}
	(void)o;
	return r;
}

int qv_fw__elems_emit(const qv_fw_elems *e, qv_fw_batch *b, const struct qv_fw_opts *o, bool del)
{
	int r = 0;

	for (size_t i = 0; r >= 0 && i < S_N; i++) {
		const qv_fw_batch *l = del ? e->del[i] : e->add[i];
		if (qv_fw_batch_len(l))
			r = qv_fw_batch_addf(b, "%s element bridge %s %s { %s }\n",
					     del ? "delete" : "add", qv_fw__tbl(o), sets[i].name,
					     qv_fw_batch_text(l));
	}
	return r;
}

int qv_fw__elems_text(const qv_fw_elems *e, qv_fw_batch *b)
{
	int r = 0;

	for (size_t i = 0; r >= 0 && i < S_N; i++)
		r = qv_fw_batch_addf(b, "%s:%s\n", sets[i].name, qv_fw_batch_text(e->add[i]));
	return r;
}

/* Chain/element names only ever hold [A-Za-z0-9_]: nft's parser wants
 * identifiers without '-' or '.', and the TAP scheme produces no more. */
bool qv_fw__ident_ok(const char *s)
{
	if (!s || !*s || strlen(s) > 15)
		return false;
	for (const char *p = s; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '_'))
			return false;
	return true;
}

int qv_fw__nicx(const struct qv_fw_nic *n, const struct qv_fw_opts *o, struct qv_fw_nicx *x,
		struct qv_fw_nic *norm, char macs[18], struct vm_fw *defaults, struct qv_error *errp)
{
	struct qv_mac mac;
	int r;

	if (!qv_fw__ident_ok(n->tap))
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "firewall: TAP name \"%.20s\" is not usable in nft", n->tap);
	if (!n->mac || qv_mac_parse(n->mac, &mac) < 0)
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "firewall: NIC %s has no valid MAC", n->tap);
	*norm = *n;
	norm->mac = qv_mac_format(&mac, macs);
	memset(x, 0, sizeof(*x));
	x->n = norm;
	x->fw = n->fw;
	if (!x->fw) {
		vm_fw_defaults(defaults);
		x->fw = defaults;
	}
	r = qv_fw__addrs(norm, x->fw, &mac, &x->al);
	if (r < 0)
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "firewall: NIC %s: %s", n->tap, r == -E2BIG ? "too many addresses"
				    : "a learned address is not IPv4");
	qv_fw__map_rules(x, o);
	return 0;
}
