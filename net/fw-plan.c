/* SPDX-License-Identifier: MIT */
/* Reconcile: what the kernel has (a `list table` JSON listing) against the
 * model, emitting only what differs, so a daemon restart leaves a correct
 * table untouched (same handles, same counters). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "common/macro.h"
#include "net/fw-internal.h"

struct live_chain {
	char name[64];
	char hash[16]; /* "" when no end rule */
	bool is_set;
	bool is_map; /* a NIC's rule map (is_set too) */
};

struct qv_fw_live {
	bool table;
	struct live_chain *chains;
	size_t n_chains;
	char (*from)[16]; /* from_vm keys */
	size_t n_from;
	char (*to)[16];
	size_t n_to;
};

qv_fw_live *qv_fw_live_free(qv_fw_live *l)
{
	if (l) {
		free(l->chains);
		free(l->from);
		free(l->to);
		free(l);
	}
	return NULL;
}

void qv_fw_live_freep(qv_fw_live **l)
{
	*l = qv_fw_live_free(*l);
}

bool qv_fw_live_has_table(const qv_fw_live *l)
{
	return l && l->table;
}

static struct live_chain *live_chain(qv_fw_live *l, const char *name)
{
	for (size_t i = 0; i < l->n_chains; i++)
		if (!l->chains[i].is_set && streq(l->chains[i].name, name))
			return &l->chains[i];
	return NULL;
}

static const char *obj_str(json_object *o, const char *key)
{
	json_object *v;
	return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string)
		       ? json_object_get_string(v)
		       : NULL;
}

static int add_keys(json_object *map, char (**ret)[16], size_t *ret_n)
{
	json_object *elem;

	if (!json_object_object_get_ex(map, "elem", &elem) ||
	    !json_object_is_type(elem, json_type_array))
		return 0;
	size_t n = json_object_array_length(elem);
	*ret = calloc(n ? n : 1, 16);
	if (!*ret)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		json_object *pair = json_object_array_get_idx(elem, i);
		json_object *k = json_object_is_type(pair, json_type_array)
					 ? json_object_array_get_idx(pair, 0)
					 : NULL;
		if (k && json_object_is_type(k, json_type_string))
			snprintf((*ret)[(*ret_n)++], 16, "%s", json_object_get_string(k));
	}
	return 0;
}

int qv_fw_live_parse(json_object *json, qv_fw_live **ret)
{
	_cleanup_(qv_fw_live_freep) qv_fw_live *l = calloc(1, sizeof(*l));
	json_object *arr;

	if (!l)
		return -ENOMEM;
	if (json && json_object_object_get_ex(json, "nftables", &arr) &&
	    json_object_is_type(arr, json_type_array)) {
		size_t n = json_object_array_length(arr);
		l->chains = calloc(n ? n : 1, sizeof(*l->chains));
		if (!l->chains)
			return -ENOMEM;
		for (size_t i = 0; i < n; i++) {
			json_object *it = json_object_array_get_idx(arr, i), *o;
			const char *name, *c;
			if (json_object_object_get_ex(it, "table", &o))
				l->table = true;
			else if (json_object_object_get_ex(it, "chain", &o) &&
				 (name = obj_str(o, "name")))
				snprintf(l->chains[l->n_chains++].name, 64, "%s", name);
			else if (json_object_object_get_ex(it, "map", &o) &&
				 (name = obj_str(o, "name"))) {
				int r = streq(name, "from_vm") ? add_keys(o, &l->from, &l->n_from)
					: streq(name, "to_vm") ? add_keys(o, &l->to, &l->n_to) : 0;
				if (r < 0)
					return r;
				if (strncmp(name, "n_", 2) == 0) {
					struct live_chain *m = &l->chains[l->n_chains++];
					snprintf(m->name, 64, "%s", name);
					m->is_set = m->is_map = true;
				}
			} else if (json_object_object_get_ex(it, "set", &o) &&
				   (name = obj_str(o, "name"))) {
				snprintf(l->chains[l->n_chains].name, 64, "%s", name);
				l->chains[l->n_chains++].is_set = true;
			} else if (json_object_object_get_ex(it, "rule", &o) &&
				   (name = obj_str(o, "chain")) && (c = obj_str(o, "comment")) &&
				   strncmp(c, QV_FW_TAG_END, strlen(QV_FW_TAG_END)) == 0) {
				struct live_chain *lc = live_chain(l, name);
				if (lc)
					snprintf(lc->hash, sizeof(lc->hash), "%s",
						 c + strlen(QV_FW_TAG_END));
			}
		}
	}
	*ret = TAKE_PTR(l);
	return 0;
}

/* The end hash inside a freshly emitted chain text ("" when absent). */
static void emitted_hash(const char *text, const char *chain, char ret[16])
{
	char needle[96];
	const char *p;

	ret[0] = 0;
	snprintf(needle, sizeof(needle), " %s counter", chain);
	for (p = text; (p = strstr(p, needle)); p++) {
		const char *c = strstr(p, QV_FW_TAG_END);
		const char *eol = strchr(p, '\n');
		if (c && (!eol || c < eol)) {
			snprintf(ret, 16, "%.*s", (int)strcspn(c + strlen(QV_FW_TAG_END), "\""),
				 c + strlen(QV_FW_TAG_END));
			return;
		}
	}
}

static bool has_key(char (*keys)[16], size_t n, const char *k)
{
	for (size_t i = 0; i < n; i++)
		if (streq(keys[i], k))
			return true;
	return false;
}

/* Whether every chain the snippet defines is already live with its hash. */
static bool snippet_live(const qv_fw_live *live, const char *text, const char *const *chains,
			 size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char h[16];
		struct live_chain *lc = live_chain((qv_fw_live *)live, chains[i]);
		emitted_hash(text, chains[i], h);
		if (!lc || !h[0] || !streq(lc->hash, h))
			return false;
	}
	return true;
}

static bool base_live(const qv_fw_live *live)
{
	static const char *const base[] = { "vm_pre", "vm_fwd", "vm_out", "vm_spoof" };

	for (size_t i = 0; i < ARRAY_SIZE(base); i++) {
		struct live_chain *lc = live_chain((qv_fw_live *)live, base[i]);
		if (!lc || !streq(lc->hash, QV_FW_BASE_TAG))
			return false;
	}
	return true;
}

static bool desired_group(const struct qv_fw_group *g, size_t n, const char *chain)
{
	char c[64];

	for (size_t i = 0; i < n; i++)
		for (int in = 0; in < 2; in++) {
			qv_fw_group_chain(g[i].name, in, c);
			if (streq(c, chain))
				return true;
		}
	return false;
}

/* The TAP of a NIC object name "n_<tap>_<suffix>", or false. */
static bool nic_of(const char *name, const char *suffix, char ret[16])
{
	size_t len = strlen(name), sl = strlen(suffix);

	if (strncmp(name, "n_", 2) != 0 || len <= 2 + sl || len - 2 - sl >= 16 ||
	    !streq(name + len - sl, suffix))
		return false;
	snprintf(ret, 16, "%.*s", (int)(len - 2 - sl), name + 2);
	return true;
}

static bool tap_desired(const struct qv_fw_nic *nics, size_t n, const char *tap)
{
	for (size_t i = 0; i < n; i++)
		if (streq(nics[i].tap, tap))
			return true;
	return false;
}

/* Stale objects, in an order the kernel accepts within one transaction:
 * map elements, NIC chains, their sets (the rules used them), group chains. */
static int plan_stale(qv_fw_batch *b, const struct qv_fw_opts *o, const qv_fw_live *live,
		      const struct qv_fw_nic *nics, size_t n_nics, const struct qv_fw_group *groups,
		      size_t n_groups, bool *ret_stale_nic)
{
	size_t before = qv_fw_batch_len(b);

	const char *t = o && o->table ? o->table : QV_FW_TABLE;
	int r = 0;

	for (size_t i = 0; i < live->n_from && r >= 0; i++)
		if (!tap_desired(nics, n_nics, live->from[i]))
			r = qv_fw_batch_addf(b, "delete element bridge %s from_vm { \"%s\" }\n", t,
					     live->from[i]);
	for (size_t i = 0; i < live->n_to && r >= 0; i++)
		if (!tap_desired(nics, n_nics, live->to[i]))
			r = qv_fw_batch_addf(b, "delete element bridge %s to_vm { \"%s\" }\n", t,
					     live->to[i]);
	for (int pass = 0; pass < 3 && r >= 0; pass++)
		for (size_t i = 0; i < live->n_chains && r >= 0; i++) {
			const struct live_chain *c = &live->chains[i];
			char tap[16];
			bool stale_nic = (nic_of(c->name, "_in", tap) || nic_of(c->name, "_out", tap) ||
					  nic_of(c->name, "_v4", tap) || nic_of(c->name, "_v6", tap) ||
					  nic_of(c->name, "_ri4", tap) || nic_of(c->name, "_ro4", tap) ||
					  nic_of(c->name, "_ri6", tap) || nic_of(c->name, "_ro6", tap)) &&
					 !tap_desired(nics, n_nics, tap);
			if (stale_nic && (pass == 0) == !c->is_set && pass < 2)
				r = qv_fw_batch_addf(b, "delete %s bridge %s %s\n",
						     c->is_map ? "map" : c->is_set ? "set" : "chain", t,
						     c->name);
			else if (pass == 2 && !c->is_set && strncmp(c->name, "g_", 2) == 0 &&
				 !desired_group(groups, n_groups, c->name))
				r = qv_fw_batch_addf(b, "delete chain bridge %s %s\n", t, c->name);
		}
	/* anything of a gone NIC was deleted: its set elements must go too */
	*ret_stale_nic = qv_fw_batch_len(b) != before;
	return r;
}

/* Emit one group (nic NULL) or NIC's chains into a scratch batch and append
 * it to b unless the kernel already has exactly that; *ret_changed. */
static int plan_one(qv_fw_batch *b, const struct qv_fw_opts *o, const qv_fw_live *live,
		    const struct qv_fw_group *g, const struct qv_fw_nicx *nic, bool *ret_changed)
{
	_cleanup_(qv_fw_batch_freep) qv_fw_batch *s = qv_fw_batch_new();
	char in[64], out[64];
	const char *names[] = { in, out };
	int r;

	if (!s)
		return -ENOMEM;
	if (nic) {
		qv_fw_nic_chain(nic->n->tap, true, in);
		qv_fw_nic_chain(nic->n->tap, false, out);
		/* a live table may hold rule maps the NIC no longer needs */
		r = qv_fw__emit_nic_chains(s, o, nic, live && live->table);
	} else {
		qv_fw_group_chain(g->name, true, in);
		qv_fw_group_chain(g->name, false, out);
		r = qv_fw_emit_group(s, o, g);
	}
	if (r < 0)
		return r;
	bool same = live && snippet_live(live, qv_fw_batch_text(s), names, 2) &&
		    (!nic || (has_key(live->from, live->n_from, nic->n->tap) &&
			      has_key(live->to, live->n_to, nic->n->tap)));
	*ret_changed = !same;
	return same ? 0 : qv_fw_batch_addf(b, "%s", qv_fw_batch_text(s));
}

struct nicx_store {
	struct qv_fw_nicx x;
	struct qv_fw_nic norm;
	struct vm_fw defaults;
	char mac[QV_MAC_STRLEN];
};

/* Chains are compared one by one (the end hash covers the NIC's elements).
 * The shared sets cannot be compared per NIC cheaply, so when any NIC
 * changed, appeared or went, they are flushed and refilled from the model
 * in the same transaction (their element counters restart). */
int qv_fw_plan(qv_fw_batch *b, const struct qv_fw_opts *o, const qv_fw_live *live,
	       const struct qv_fw_nic *nics, size_t n_nics, const struct qv_fw_group *groups,
	       size_t n_groups, struct qv_error *errp)
{
	_cleanup_free_ struct nicx_store *xs = NULL;
	_cleanup_(qv_fw__elems_freep) qv_fw_elems *e = NULL;
	bool table = live && live->table, reload = false, changed = false;
	int r = 0;

	if (n_nics == 0)
		return table ? qv_fw_emit_table_delete(b, o) : 0;
	xs = calloc(n_nics, sizeof(*xs));
	e = qv_fw__elems_new();
	if (!xs || !e)
		return qv_error_set(errp, ENOMEM, QV_REASON_INTERNAL, "out of memory");
	for (size_t i = 0; i < n_nics; i++) {
		r = qv_fw__nicx(&nics[i], o, &xs[i].x, &xs[i].norm, xs[i].mac, &xs[i].defaults,
				errp);
		if (r < 0)
			return r;
	}
	if (!table || !base_live(live)) {
		r = qv_fw_emit_base(b, o);
		reload = true;
	}
	for (size_t i = 0; r >= 0 && i < n_groups; i++)
		r = plan_one(b, o, live, &groups[i], NULL, &changed);
	for (size_t i = 0; r >= 0 && i < n_nics; i++) {
		r = plan_one(b, o, live, NULL, &xs[i].x, &changed);
		reload |= changed;
	}
	if (r >= 0 && table) {
		r = plan_stale(b, o, live, nics, n_nics, groups, n_groups, &changed);
		reload |= changed;
	}
	if (r >= 0 && reload && table)
		r = qv_fw__flush_shared(b, o);
	for (size_t i = 0; r >= 0 && reload && i < n_nics; i++)
		r = qv_fw__elems_nic(e, &xs[i].x, o);
	if (r >= 0 && reload)
		r = qv_fw__elems_emit(e, b, o, false);
	if (r < 0 && errp && !errp->set)
		qv_error_set(errp, -r, QV_REASON_INTERNAL, "firewall plan: %s", strerror(-r));
	return r;
}

static json_object *counter_row(const char *comment, json_object *cnt)
{
	json_object *row = json_object_new_object(), *v;

	json_object_object_add(row, "comment", json_object_new_string(comment));
	json_object_object_add(row, "packets", json_object_new_int64(
		json_object_object_get_ex(cnt, "packets", &v) ? json_object_get_int64(v) : 0));
	json_object_object_add(row, "bytes", json_object_new_int64(
		json_object_object_get_ex(cnt, "bytes", &v) ? json_object_get_int64(v) : 0));
	return row;
}

/* The NIC's elements that count for chain (n_<tap>_in or _out): its drops
 * in the shared anti-spoofing sets (keyed by TAP, tag from the set's name),
 * and its rule maps' elements (comment qv:r:<index>). */
static void element_rows(json_object *set, const char *chain, json_object *out)
{
	const char *name = obj_str(set, "name"), *t;
	json_object *elems, *cnt;
	char tap[16], tag[48], map[32];
	bool in = nic_of(chain, "_in", tap), rules = false;

	if (!name || !json_object_object_get_ex(set, "elem", &elems) ||
	    (!in && !nic_of(chain, "_out", tap)))
		return;
	t = qv_fw__set_tag(name);
	for (int fam = 4; !t && fam <= 6; fam += 2) {
		qv_fw__rule_map(tap, in, fam, map);
		rules |= streq(map, name);
	}
	if ((!t && !rules) || (t && in))
		return;
	if (t) {
		snprintf(tag, sizeof(tag), QV_FW_TAG_SPOOF "%s", t);
		for (char *p = tag + strlen(QV_FW_TAG_SPOOF); *p; p++)
			if (*p == '_')
				*p = '-';
	}
	for (size_t i = 0; i < json_object_array_length(elems); i++) {
		json_object *it = json_object_array_get_idx(elems, i), *el, *val;
		if (json_object_is_type(it, json_type_array)) /* map: [key, verdict] */
			it = json_object_array_get_idx(it, 0);
		if (!json_object_object_get_ex(it, "elem", &el) ||
		    !json_object_object_get_ex(el, "val", &val) ||
		    !json_object_object_get_ex(el, "counter", &cnt))
			continue;
		if (t && (!json_object_is_type(val, json_type_string) ||
			  !streq(json_object_get_string(val), tap)))
			continue;
		const char *comment = t ? tag : obj_str(el, "comment");
		if (comment)
			json_object_array_add(out, counter_row(comment, cnt));
	}
}

json_object *qv_fw_chain_counters(json_object *listing, const char *chain)
{
	json_object *out = json_object_new_array(), *arr;

	if (!listing || !json_object_object_get_ex(listing, "nftables", &arr))
		return out;
	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		json_object *it = json_object_array_get_idx(arr, i), *rule, *expr, *set;
		const char *c, *ch;
		if (json_object_object_get_ex(it, "set", &set) ||
		    json_object_object_get_ex(it, "map", &set)) {
			element_rows(set, chain, out);
			continue;
		}
		if (!json_object_object_get_ex(it, "rule", &rule) || !(ch = obj_str(rule, "chain")) ||
		    !streq(ch, chain) || !(c = obj_str(rule, "comment")) ||
		    !json_object_object_get_ex(rule, "expr", &expr))
			continue;
		for (size_t k = 0; k < json_object_array_length(expr); k++) {
			json_object *e = json_object_array_get_idx(expr, k), *cnt;
			if (!json_object_object_get_ex(e, "counter", &cnt))
				continue;
			json_object_array_add(out, counter_row(c, cnt));
			break;
		}
	}
	return out;
}
