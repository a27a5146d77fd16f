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
#include "net/fw-internal.h"
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
	return qv_fw__tbl(o);
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
	/* ARP and ND pass whatever a NIC's policy says (after anti-spoofing),
	 * so a drop policy does not cut a VM off its own link; on a DHCP
	 * network the server's replies to the client too. */
	static const struct { const char *name, *hook, *pre; } base[] = {
		{ "vm_pre", "prerouting", "jump vm_spoof\nether type arp accept\n"
					  "icmpv6 type @nd_out accept\n"
					  "iifname vmap @from_vm" },
		{ "vm_fwd", "forward", "ether type arp accept\nicmpv6 type @nd_in accept\n"
				       "oifname @dhcp_nics udp sport 67 udp dport 68 accept\n"
				       "oifname vmap @to_vm" },
		{ "vm_out", "output", "ether type arp accept\nicmpv6 type @nd_in accept\n"
				      "oifname @dhcp_nics udp sport 67 udp dport 68 accept\n"
				      "oifname vmap @to_vm" },
	};
	int r = qv_fw_batch_addf(b, "add table bridge %s\n"
				 "add map bridge %s from_vm { type ifname : verdict; }\n"
				 "add map bridge %s to_vm { type ifname : verdict; }\n",
				 t, t, t);

	if (r >= 0)
		r = qv_fw_batch_addf(b, base_sets, t);
	if (r >= 0)
		r = qv_fw__emit_shared(b, o);
	for (size_t i = 0; r >= 0 && i < ARRAY_SIZE(base); i++) {
		r = qv_fw_batch_addf(b, "add chain bridge %s %s { type filter hook %s priority 0; "
				     "policy accept; }\nflush chain bridge %s %s\n",
				     t, base[i].name, base[i].hook, t, base[i].name);
		if (r >= 0)
			r = qv_fw__add_rules(b, o, base[i].name, base[i].pre,
					     " comment \"" QV_FW_TAG_END QV_FW_BASE_TAG "\"");
	}
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
		      const qv_fw_batch *body, const char *end_verdict, const qv_fw_batch *extra)
{
	uint32_t h = fnv(qv_fw_batch_text(body), qv_fw_batch_len(body));

	/* the NIC's elements are part of its identity for reconcile */
	if (extra)
		h ^= fnv(qv_fw_batch_text(extra), qv_fw_batch_len(extra)) * 31u;

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
			r = emit_chain(b, o, chain, body, "", NULL);
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

/* A NIC's chain: (out, DHCP) the chaddr check and the client's exchange,
 * jumps to its groups, its rules (a map lookup per family when they are map
 * elements, else one rule each), the policy. Anti-spoofing is vm_spoof. */
static int emit_nic_chain(qv_fw_batch *b, const struct qv_fw_opts *o, const struct qv_fw_nicx *x,
			  bool in, const qv_fw_batch *elems)
{
	_cleanup_(qv_fw_batch_freep) qv_fw_batch *body = qv_fw_batch_new();
	const struct vm_fw *fw = x->fw;
	const char *t = tbl(o);
	char chain[64], g[64];
	int r = 0;

	if (!body)
		return -ENOMEM;
	qv_fw_nic_chain(x->n->tap, in, chain);
	/* dnsmasq trusts the client hardware address inside a DHCP message
	 * (BOOTP chaddr, byte 28): a guest naming another VM's MAC there could
	 * release that VM's lease and take its address. */
	if (!in && fw->anti_spoof && x->n->dhcp) {
		char hex[13];
		size_t k = 0;

		for (const char *p = x->n->mac; *p && k < sizeof(hex) - 1; p++)
			if (*p != ':')
				hex[k++] = *p;
		hex[k] = '\0';
		r = qv_fw_batch_addf(body, "add rule bridge %s %s udp dport 67 @ih,224,48 != 0x%s "
				     "counter drop comment \"" QV_FW_TAG_SPOOF "dhcp-chaddr\"\n"
				     "add rule bridge %s %s ip saddr 0.0.0.0 ip daddr "
				     "255.255.255.255 udp sport 68 udp dport 67 counter accept "
				     "comment \"qv:dhcp-client\"\n", t, chain, hex, t, chain);
	}
	for (size_t i = 0; r >= 0 && i < fw->n_groups; i++) {
		qv_fw_group_chain(fw->groups[i], in, g);
		r = qv_fw_batch_addf(body, "add rule bridge %s %s jump %s\n", t, chain, g);
	}
	for (int fam = 4; r >= 0 && fam <= 6; fam += 2) {
		char map[32];
		if (!(x->fams[in] & (fam == 4 ? 1u : 2u)))
			continue;
		qv_fw__rule_map(x->n->tap, in, fam, map);
		r = qv_fw_batch_addf(body, "add rule bridge %s %s %s %s . meta l4proto . th dport "
				     "vmap @%s\n", t, chain, fam == 6 ? "ip6" : "ip",
				     in ? "saddr" : "daddr", map);
	}
	for (size_t i = 0; r >= 0 && !x->mapped[in] && i < fw->n_rules; i++)
		if ((fw->rules[i].dir == VM_FW_IN) == in)
			r = emit_rule(body, o, chain, &fw->rules[i], i);
	if (r < 0)
		return r;
	return emit_chain(b, o, chain, body,
			  vm_fw_action_to_string(in ? fw->policy_in : fw->policy_out), elems);
}

int qv_fw__emit_nic_chains(qv_fw_batch *b, const struct qv_fw_opts *o, const struct qv_fw_nicx *x,
			   bool cleanup)
{
	_cleanup_(qv_fw__elems_freep) qv_fw_elems *e = qv_fw__elems_new();
	_cleanup_(qv_fw_batch_freep) qv_fw_batch *text = qv_fw_batch_new();
	_cleanup_(qv_fw_batch_freep) qv_fw_batch *maps = qv_fw_batch_new();
	const char *t = tbl(o), *tap = x->n->tap;
	int r;

	if (!e || !text || !maps)
		return -ENOMEM;
	r = qv_fw__elems_nic(e, x, o);
	if (r >= 0)
		r = qv_fw__emit_rule_maps(maps, o, x, true);
	if (r >= 0)
		r = qv_fw__elems_text(e, text);
	if (r >= 0)
		r = qv_fw_batch_addf(text, "%s", qv_fw_batch_text(maps));
	if (r >= 0)
		r = qv_fw_batch_addf(b, "%s", qv_fw_batch_text(maps));
	if (r >= 0)
		r = emit_nic_chain(b, o, x, true, text);
	if (r >= 0)
		r = emit_nic_chain(b, o, x, false, text);
	if (r >= 0 && cleanup)
		r = qv_fw__emit_rule_maps(b, o, x, false);
	if (r >= 0)
		r = qv_fw_batch_addf(b, "add element bridge %s from_vm { \"%s\" : jump n_%s_out }\n"
				     "add element bridge %s to_vm { \"%s\" : jump n_%s_in }\n",
				     t, tap, tap, t, tap, tap);
	return r;
}

/* The NIC's elements: added (undo NULL), or the commands that remove them. */
static int nic_elems(qv_fw_batch *b, const struct qv_fw_opts *o, const struct qv_fw_nicx *x,
		     bool del)
{
	_cleanup_(qv_fw__elems_freep) qv_fw_elems *e = qv_fw__elems_new();
	int r = e ? qv_fw__elems_nic(e, x, o) : -ENOMEM;

	return r < 0 ? r : qv_fw__elems_emit(e, b, o, del);
}

/* chains: the NIC's chains, rule maps and from_vm/to_vm elements; add: its
 * elements of the shared sets; undo: the commands that remove those. */
static int nic_emit(qv_fw_batch *b, bool chains, bool add, qv_fw_batch *undo,
		    const struct qv_fw_opts *o, const struct qv_fw_nic *n, struct qv_error *errp)
{
	struct qv_fw_nicx x;
	struct qv_fw_nic norm;
	struct vm_fw defaults;
	char macs[QV_MAC_STRLEN];
	int r = qv_fw__nicx(n, o, &x, &norm, macs, &defaults, errp);

	if (r < 0)
		return r;
	if (chains)
		r = qv_fw__emit_nic_chains(b, o, &x, true);
	if (r >= 0 && add)
		r = nic_elems(b, o, &x, false);
	if (r >= 0 && undo)
		r = nic_elems(undo, o, &x, true);
	if (r < 0)
		return qv_error_set(errp, -r, QV_REASON_INTERNAL, "firewall: cannot build rules: %s",
				    strerror(-r));
	return 0;
}

int qv_fw_emit_nic(qv_fw_batch *b, const struct qv_fw_opts *o, const struct qv_fw_nic *n,
		   struct qv_error *errp)
{
	return nic_emit(b, true, true, NULL, o, n, errp);
}

int qv_fw_emit_nic_chains(qv_fw_batch *b, const struct qv_fw_opts *o, const struct qv_fw_nic *n,
			  struct qv_error *errp)
{
	return nic_emit(b, true, false, NULL, o, n, errp);
}

int qv_fw_emit_nic_elements(qv_fw_batch *b, const struct qv_fw_opts *o,
			    const struct qv_fw_nic *n, struct qv_error *errp)
{
	return nic_emit(b, false, true, NULL, o, n, errp);
}

int qv_fw_emit_nic_undo(qv_fw_batch *undo, const struct qv_fw_opts *o, const struct qv_fw_nic *n,
			struct qv_error *errp)
{
	return nic_emit(NULL, false, false, undo, o, n, errp);
}

int qv_fw_emit_nic_delete(qv_fw_batch *b, const struct qv_fw_opts *o, const char *tap)
{
	const char *t = tbl(o);
	int r;

	if (!qv_fw__ident_ok(tap))
		return -EINVAL;
	r = qv_fw_batch_addf(b, "delete element bridge %s from_vm { \"%s\" }\n"
			     "delete element bridge %s to_vm { \"%s\" }\n"
			     "delete chain bridge %s n_%s_out\ndelete chain bridge %s n_%s_in\n",
			     t, tap, t, tap, t, tap, t, tap);
	/* its rule maps, whichever exist (add first: delete of a missing map
	 * would refuse the batch) */
	for (int in = 0; r >= 0 && in < 2; in++)
		for (int fam = 4; r >= 0 && fam <= 6; fam += 2) {
			char map[32];
			qv_fw__rule_map(tap, in, fam, map);
			r = qv_fw__rule_map_add(b, o, map, fam);
			if (r >= 0)
				r = qv_fw_batch_addf(b, "delete map bridge %s %s\n", t, map);
		}
	return r;
}

int qv_fw_emit_table_delete(qv_fw_batch *b, const struct qv_fw_opts *o)
{
	return qv_fw_batch_addf(b, "delete table bridge %s\n", tbl(o));
}
