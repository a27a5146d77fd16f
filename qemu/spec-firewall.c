/* SPDX-License-Identifier: MIT */
/* spec.nics[].firewall and the rule grammar shared with security groups
 * (docs/firewall.md). Everything that reaches nft is checked here: names,
 * addresses (canonicalised), ports, ICMP type names, rates. */
#include <arpa/inet.h>
#include <ctype.h>
#include <inttypes.h>

#include "common/json.h"
#include "common/macro.h"
#include "qemu/spec-internal.h"

#define INVALID(errp, ...) qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT, __VA_ARGS__)

static const char *const icmp4_types[] = {
	"echo-reply", "destination-unreachable", "source-quench", "redirect", "echo-request",
	"router-advertisement", "router-solicitation", "time-exceeded", "parameter-problem",
	"timestamp-request", "timestamp-reply", "info-request", "info-reply",
	"address-mask-request", "address-mask-reply", NULL
};
static const char *const icmp6_types[] = {
	"destination-unreachable", "packet-too-big", "time-exceeded", "parameter-problem",
	"echo-request", "echo-reply", "mld-listener-query", "mld-listener-report",
	"mld-listener-done", "nd-router-solicit", "nd-router-advert", "nd-neighbor-solicit",
	"nd-neighbor-advert", "nd-redirect", "router-renumbering", "mld2-listener-report", NULL
};
static const char *const actions[] = { "accept", "drop", "reject", NULL };
static const char *const protos[] = { "any", "tcp", "udp", "icmp", "icmpv6", NULL };
static const char *const units[] = { "second", "minute", "hour", NULL };

static int lookup(const char *const *tab, const char *s)
{
	for (int i = 0; tab[i]; i++)
		if (streq(tab[i], s))
			return i;
	return -1;
}

const char *vm_fw_action_to_string(enum vm_fw_action a)
{
	return a <= VM_FW_REJECT ? actions[a] : "?";
}

bool vm_fw_group_name_valid(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > VM_FW_GROUP_NAME_MAX || !isalpha((unsigned char)s[0]))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '_')
			return false;
	return true;
}

/* "a.b.c.d", "a.b.c.d/n", IPv6 likewise: canonical text with the host bits
 * cleared (nft refuses them); a bare address when the prefix is full. */
static int parse_cidr(const char *s, char ret[VM_FW_CIDR_MAX + 1], int *ret_family)
{
	char addr[64];
	unsigned char buf[16];
	const char *slash = strchr(s, '/');
	size_t alen = slash ? (size_t)(slash - s) : strlen(s);
	long plen = -1;
	int fam;

	if (alen == 0 || alen >= sizeof(addr))
		return -EINVAL;
	memcpy(addr, s, alen);
	addr[alen] = 0;
	if (inet_pton(AF_INET, addr, buf) == 1)
		fam = 4;
	else if (inet_pton(AF_INET6, addr, buf) == 1)
		fam = 6;
	else
		return -EINVAL;
	int bits = fam == 4 ? 32 : 128;
	if (slash) {
		char *end;
		if (!isdigit((unsigned char)slash[1]))
			return -EINVAL;
		plen = strtol(slash + 1, &end, 10);
		if (*end || plen < 0 || plen > bits)
			return -EINVAL;
	} else
		plen = bits;
	for (int b = (int)plen; b < bits; b++)
		buf[b / 8] &= (unsigned char)~(0x80 >> (b % 8));
	if (!inet_ntop(fam == 4 ? AF_INET : AF_INET6, buf, addr, sizeof(addr)))
		return -EINVAL;
	if (plen == bits)
		snprintf(ret, VM_FW_CIDR_MAX + 1, "%s", addr);
	else
		snprintf(ret, VM_FW_CIDR_MAX + 1, "%s/%ld", addr, plen);
	*ret_family = fam;
	return 0;
}

static int parse_port_item(json_object *v, const char *path, uint16_t ret[2],
			   struct qv_error *errp)
{
	long lo, hi;
	char *end;

	if (json_object_is_type(v, json_type_int)) {
		int64_t x = json_object_get_int64(v);
		if (x < 1 || x > 65535)
			return INVALID(errp, "%s: port %" PRId64 " out of range (1..65535)", path, x);
		ret[0] = ret[1] = (uint16_t)x;
		return 0;
	}
	if (!json_object_is_type(v, json_type_string))
		return INVALID(errp, "%s: must be a port number or a range \"LO-HI\"", path);
	const char *s = json_object_get_string(v);
	if (!isdigit((unsigned char)s[0]))
		return INVALID(errp, "%s: \"%.20s\" is not a port or range", path, s);
	lo = strtol(s, &end, 10);
	hi = lo;
	if (*end == '-' && isdigit((unsigned char)end[1]))
		hi = strtol(end + 1, &end, 10);
	if (*end || lo < 1 || hi > 65535 || lo > hi)
		return INVALID(errp, "%s: \"%.20s\" is not a port (1..65535) or a range LO-HI "
			       "with LO <= HI", path, s);
	ret[0] = (uint16_t)lo;
	ret[1] = (uint16_t)hi;
	return 0;
}

static int parse_ports(json_object *o, const char *path, struct vm_fw_rule *r,
		       struct qv_error *errp)
{
	json_object *v;
	char sub[96];

	if (!json_object_object_get_ex(o, "ports", &v) || json_object_is_type(v, json_type_null))
		return 0;
	if (!json_object_is_type(v, json_type_array)) {
		snprintf(sub, sizeof(sub), "%s.ports", path);
		r->n_ports = 1;
		return parse_port_item(v, sub, r->ports[0], errp);
	}
	size_t n = json_object_array_length(v);
	if (n == 0 || n > VM_FW_PORTS_MAX)
		return INVALID(errp, "%s.ports: 1 to %d entries", path, VM_FW_PORTS_MAX);
	for (size_t i = 0; i < n; i++) {
		snprintf(sub, sizeof(sub), "%s.ports[%zu]", path, i);
		int x = parse_port_item(json_object_array_get_idx(v, i), sub, r->ports[i], errp);
		if (x < 0)
			return x;
	}
	r->n_ports = (unsigned)n;
	return 0;
}

static int parse_rate(const char *s, const char *path, struct vm_fw_rule *r,
		      struct qv_error *errp)
{
	char *end;
	long n;
	int u;

	if (!isdigit((unsigned char)s[0]))
		goto bad;
	n = strtol(s, &end, 10);
	if (*end != '/' || n < 1 || n > 1000000 || (u = lookup(units, end + 1)) < 0)
		goto bad;
	r->rate = (uint32_t)n;
	r->rate_unit = (enum vm_fw_rate_unit)u;
	return 0;
bad:
	return INVALID(errp, "%s.rate: \"%.20s\" is not N/second, N/minute or N/hour "
		       "(1 <= N <= 1000000)", path, s);
}

/* An enum-valued string field; absent keeps *ret. */
static int get_enum(json_object *o, const char *key, const char *path,
		    const char *const *tab, const char *what, int *ret, struct qv_error *errp)
{
	const char *s;
	int r = spec_get_string(o, key, path, &s, errp);

	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	int i = lookup(tab, s);
	if (i < 0)
		return INVALID(errp, "%s.%s: \"%.20s\" is not %s", path, key, s, what);
	*ret = i;
	return 0;
}

static int check_icmp_type(const char *s, const char *path, struct vm_fw_rule *r,
			   struct qv_error *errp)
{
	const char *const *tab = r->proto == VM_FW_ICMP ? icmp4_types : icmp6_types;
	char *end;

	if (r->proto != VM_FW_ICMP && r->proto != VM_FW_ICMPV6)
		return INVALID(errp, "%s.icmp_type: needs protocol icmp or icmpv6", path);
	if (isdigit((unsigned char)s[0])) {
		long t = strtol(s, &end, 10);
		if (*end || t > 255)
			return INVALID(errp, "%s.icmp_type: \"%.20s\" is not 0..255", path, s);
	} else if (lookup(tab, s) < 0)
		return INVALID(errp, "%s.icmp_type: \"%.30s\" is not an %s type name (e.g. "
			       "echo-request) or a number 0..255", path, s,
			       r->proto == VM_FW_ICMP ? "ICMP" : "ICMPv6");
	snprintf(r->icmp_type, sizeof(r->icmp_type), "%s", s);
	return 0;
}

int vm_fw_rule_parse(json_object *o, const char *path, struct vm_fw_rule *ret,
		     struct qv_error *errp)
{
	static const char *const keys[] = { "direction", "protocol", "ports", "cidr",
					    "icmp_type", "action", "rate", NULL };
	static const char *const dirs[] = { "in", "out", NULL };
	struct vm_fw_rule r = { .action = VM_FW_ACCEPT };
	int dir = -1, proto = VM_FW_ANY, action = -1, x;
	const char *s;

	if (!o || !json_object_is_type(o, json_type_object))
		return INVALID(errp, "%s: must be an object", path);
	if ((x = spec_check_keys(o, keys, path, errp)) < 0 ||
	    (x = get_enum(o, "direction", path, dirs, "\"in\" or \"out\"", &dir, errp)) < 0 ||
	    (x = get_enum(o, "protocol", path, protos, "any, tcp, udp, icmp or icmpv6", &proto,
			  errp)) < 0 ||
	    (x = get_enum(o, "action", path, actions, "accept, drop or reject", &action, errp)) < 0)
		return x;
	if (dir < 0)
		return INVALID(errp, "%s.direction: required (\"in\" or \"out\")", path);
	if (action < 0)
		return INVALID(errp, "%s.action: required (accept, drop or reject)", path);
	r.dir = (enum vm_fw_dir)dir;
	r.proto = (enum vm_fw_proto)proto;
	r.action = (enum vm_fw_action)action;
	r.family = proto == VM_FW_ICMP ? 4 : proto == VM_FW_ICMPV6 ? 6 : 0;
	if ((x = parse_ports(o, path, &r, errp)) < 0)
		return x;
	if (r.n_ports && r.proto != VM_FW_TCP && r.proto != VM_FW_UDP)
		return INVALID(errp, "%s.ports: needs protocol tcp or udp", path);
	x = spec_get_string(o, "cidr", path, &s, errp);
	if (x == 0) {
		int fam;
		if (parse_cidr(s, r.cidr, &fam) < 0)
			return INVALID(errp, "%s.cidr: \"%.50s\" is not an IPv4 or IPv6 address or "
				       "ADDRESS/PREFIX", path, s);
		if (r.family && r.family != fam)
			return INVALID(errp, "%s.cidr: an IPv%d address does not go with protocol %s",
				       path, fam, protos[r.proto]);
		r.family = fam;
	} else if (x != -ENOENT)
		return x;
	x = spec_get_string(o, "icmp_type", path, &s, errp);
	if (x == 0 && (x = check_icmp_type(s, path, &r, errp)) < 0)
		return x;
	if (x < 0 && x != -ENOENT)
		return x;
	x = spec_get_string(o, "rate", path, &s, errp);
	if (x == 0 && (x = parse_rate(s, path, &r, errp)) < 0)
		return x;
	if (x < 0 && x != -ENOENT)
		return x;
	*ret = r;
	return 0;
}

json_object *vm_fw_rule_to_json(const struct vm_fw_rule *r)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "direction", json_object_new_string(r->dir == VM_FW_IN ? "in"
											 : "out"));
	json_object_object_add(o, "protocol", json_object_new_string(protos[r->proto]));
	if (r->n_ports) {
		json_object *a = json_object_new_array();
		for (unsigned i = 0; i < r->n_ports; i++) {
			char b[16];
			if (r->ports[i][0] == r->ports[i][1])
				json_object_array_add(a, json_object_new_int(r->ports[i][0]));
			else {
				snprintf(b, sizeof(b), "%u-%u", r->ports[i][0], r->ports[i][1]);
				json_object_array_add(a, json_object_new_string(b));
			}
		}
		json_object_object_add(o, "ports", a);
	}
	if (r->cidr[0])
		json_object_object_add(o, "cidr", json_object_new_string(r->cidr));
	if (r->icmp_type[0])
		json_object_object_add(o, "icmp_type", json_object_new_string(r->icmp_type));
	json_object_object_add(o, "action", json_object_new_string(actions[r->action]));
	if (r->rate) {
		char b[32];
		snprintf(b, sizeof(b), "%" PRIu32 "/%s", r->rate, units[r->rate_unit]);
		json_object_object_add(o, "rate", json_object_new_string(b));
	}
	return o;
}

void vm_fw_defaults(struct vm_fw *fw)
{
	memset(fw, 0, sizeof(*fw));
	fw->anti_spoof = true;
	fw->policy_in = fw->policy_out = VM_FW_ACCEPT;
}

/* A JSON array of at most max strings, each handed to each(). */
static int for_strings(json_object *o, const char *key, const char *path, size_t max,
		       int (*each)(const char *s, const char *sub, struct vm_fw *fw,
				   struct qv_error *errp),
		       struct vm_fw *fw, struct qv_error *errp)
{
	json_object *a;
	char sub[96];

	if (!json_object_object_get_ex(o, key, &a) || json_object_is_type(a, json_type_null))
		return 0;
	if (!json_object_is_type(a, json_type_array))
		return INVALID(errp, "%s.%s: must be an array", path, key);
	if (json_object_array_length(a) > max)
		return INVALID(errp, "%s.%s: too many entries (at most %zu)", path, key, max);
	for (size_t i = 0; i < json_object_array_length(a); i++) {
		json_object *v = json_object_array_get_idx(a, i);
		snprintf(sub, sizeof(sub), "%s.%s[%zu]", path, key, i);
		if (!json_object_is_type(v, json_type_string))
			return INVALID(errp, "%s: must be a string", sub);
		int r = each(json_object_get_string(v), sub, fw, errp);
		if (r < 0)
			return r;
	}
	return 0;
}

static int add_addr(const char *s, const char *sub, struct vm_fw *fw, struct qv_error *errp)
{
	int fam;

	if (parse_cidr(s, fw->addrs[fw->n_addrs], &fam) < 0)
		return INVALID(errp, "%s: \"%.50s\" is not an IPv4 or IPv6 address or "
			       "ADDRESS/PREFIX", sub, s);
	for (size_t i = 0; i < fw->n_addrs; i++)
		if (streq(fw->addrs[i], fw->addrs[fw->n_addrs]))
			return INVALID(errp, "%s: %s is listed twice", sub, fw->addrs[i]);
	fw->n_addrs++;
	return 0;
}

static int add_group(const char *s, const char *sub, struct vm_fw *fw, struct qv_error *errp)
{
	if (!vm_fw_group_name_valid(s))
		return INVALID(errp, "%s: \"%.40s\" is not a group name (1-%d of letters, digits "
			       "and '_', starting with a letter)", sub, s, VM_FW_GROUP_NAME_MAX);
	for (size_t i = 0; i < fw->n_groups; i++)
		if (streq(fw->groups[i], s))
			return INVALID(errp, "%s: group %s is listed twice", sub, s);
	snprintf(fw->groups[fw->n_groups++], VM_FW_GROUP_NAME_MAX + 1, "%s", s);
	return 0;
}

static int parse_rules(json_object *o, const char *path, struct vm_fw *fw,
		       struct qv_error *errp)
{
	json_object *a;
	char sub[96];

	if (!json_object_object_get_ex(o, "rules", &a) || json_object_is_type(a, json_type_null))
		return 0;
	if (!json_object_is_type(a, json_type_array))
		return INVALID(errp, "%s.rules: must be an array", path);
	if (json_object_array_length(a) > VM_FW_RULES_MAX)
		return INVALID(errp, "%s.rules: too many rules (%zu, at most %d; put shared rules "
			       "in a group)", path, json_object_array_length(a), VM_FW_RULES_MAX);
	for (size_t i = 0; i < json_object_array_length(a); i++) {
		snprintf(sub, sizeof(sub), "%s.rules[%zu]", path, i);
		int r = vm_fw_rule_parse(json_object_array_get_idx(a, i), sub, &fw->rules[i], errp);
		if (r < 0)
			return r;
		fw->n_rules = i + 1;
	}
	return 0;
}

int vm_fw_parse(json_object *o, const char *path, struct vm_fw **ret, struct qv_error *errp)
{
	static const char *const keys[] = { "anti_spoof", "addresses", "groups", "rules",
					    "policy_in", "policy_out", NULL };
	static const char *const policies[] = { "accept", "drop", NULL };
	_cleanup_free_ struct vm_fw *fw = NULL;
	int pin = VM_FW_ACCEPT, pout = VM_FW_ACCEPT, r;

	if (!json_object_is_type(o, json_type_object))
		return INVALID(errp, "%s: must be an object", path);
	if ((r = spec_check_keys(o, keys, path, errp)) < 0)
		return r;
	fw = malloc(sizeof(*fw));
	if (!fw)
		return -ENOMEM;
	vm_fw_defaults(fw);
	r = spec_get_bool(o, "anti_spoof", path, &fw->anti_spoof, errp);
	if (r < 0 && r != -ENOENT)
		return r;
	if ((r = get_enum(o, "policy_in", path, policies, "accept or drop", &pin, errp)) < 0 ||
	    (r = get_enum(o, "policy_out", path, policies, "accept or drop", &pout, errp)) < 0 ||
	    (r = for_strings(o, "addresses", path, VM_FW_ADDRS_MAX, add_addr, fw, errp)) < 0 ||
	    (r = for_strings(o, "groups", path, VM_FW_GROUPS_MAX, add_group, fw, errp)) < 0 ||
	    (r = parse_rules(o, path, fw, errp)) < 0)
		return r;
	fw->policy_in = (enum vm_fw_action)pin;
	fw->policy_out = (enum vm_fw_action)pout;
	*ret = TAKE_PTR(fw);
	return 0;
}

json_object *vm_fw_to_json(const struct vm_fw *fw)
{
	json_object *o = json_object_new_object(), *a;

	json_object_object_add(o, "anti_spoof", json_object_new_boolean(fw->anti_spoof));
	json_object_object_add(o, "policy_in",
			       json_object_new_string(vm_fw_action_to_string(fw->policy_in)));
	json_object_object_add(o, "policy_out",
			       json_object_new_string(vm_fw_action_to_string(fw->policy_out)));
	a = json_object_new_array();
	for (size_t i = 0; i < fw->n_addrs; i++)
		json_object_array_add(a, json_object_new_string(fw->addrs[i]));
	json_object_object_add(o, "addresses", a);
	a = json_object_new_array();
	for (size_t i = 0; i < fw->n_groups; i++)
		json_object_array_add(a, json_object_new_string(fw->groups[i]));
	json_object_object_add(o, "groups", a);
	a = json_object_new_array();
	for (size_t i = 0; i < fw->n_rules; i++)
		json_object_array_add(a, vm_fw_rule_to_json(&fw->rules[i]));
	json_object_object_add(o, "rules", a);
	return o;
}
