/* SPDX-License-Identifier: MIT */
/* fw.* RPC methods (docs/rpc.md, docs/firewall.md). */
#include <inttypes.h>
#include <string.h>

#include "common/json.h"
#include "common/log.h"
#include "daemon/fw-internal.h"
#include "daemon/netreg.h"

static int check_keys(qv_rpc_call *call, json_object *params, const char *const *keys)
{
	return qv_param_check_keys(call, params, keys);
}

static struct qv_fwd *fwd(qv_rpc_call *call, struct qv_daemon *d)
{
	struct qv_error err = {};
	struct qv_fwd *f = qv_fwd_get(d, &err);

	if (!f)
		qv_rpc_call_error(call, &err);
	return f;
}

/* Names of the defined VMs whose spec names group g ("" if none). */
static void users_of(struct qv_daemon *d, const char *g, char *buf, size_t len)
{
	size_t o = 0;

	buf[0] = 0;
	for (struct qv_vm *vm = d->vms; vm; vm = vm->next) {
		bool uses = false;
		for (size_t i = 0; i < vm->spec->n_nics && !uses; i++)
			for (size_t k = 0; vm->spec->nics[i].fw && k < vm->spec->nics[i].fw->n_groups; k++)
				uses |= streq(vm->spec->nics[i].fw->groups[k], g);
		if (uses && o + strlen(vm->name) + 3 < len)
			o += (size_t)snprintf(buf + o, len - o, "%s%s", o ? ", " : "", vm->name);
	}
}

static int m_group_define(qv_rpc_call *call, json_object *params, void *ud)
{
	static const char *const keys[] = { "group", NULL };
	struct qv_daemon *d = ud;
	struct qv_fwd *f;
	struct qv_error err = {};
	struct fw_group *g = NULL, *old;
	json_object *spec = NULL;

	if (check_keys(call, params, keys) < 0 || !(f = fwd(call, d)))
		return 0;
	if (!params || !json_object_object_get_ex(params, "group", &spec))
		return qv_call_fail(call, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "params.group: required"), 0;
	if (qv_fwd_group_parse(spec, &g, &err) < 0)
		return qv_rpc_call_error(call, &err), 0;
	/* The kernel first (one transaction), then the store. */
	if (f->table_up) {
		_cleanup_(qv_fw_batch_freep) qv_fw_batch *b = qv_fw_batch_new();
		struct qv_fw_group m = { g->name, g->rules, g->n_rules };
		if (!b || qv_fw_emit_group(b, &f->opts, &m) < 0 || qv_fwd_apply(f, b, &err) < 0) {
			if (!err.set)
				qv_error_set(&err, ENOMEM, QV_REASON_INTERNAL, "out of memory");
			qv_fwd_group_free(g);
			return qv_rpc_call_error(call, &err), 0;
		}
	}
	json_object *canon = qv_fwd_group_json(g);
	int r = qv_state_fw_group_put(d->state, g->name, json_object_to_json_string(canon));
	if (r < 0)
		log_warning("Cannot store firewall group %s: %s; it is live but will not survive a "
			    "restart", g->name, strerror(-r));
	old = qv_fwd_group(f, g->name);
	if (old) { /* swap the rules in place: the list order stays */
		struct vm_fw_rule *tmp = old->rules;
		old->rules = g->rules;
		old->n_rules = g->n_rules;
		g->rules = tmp;
		qv_fwd_group_free(g);
		g = old;
	} else {
		g->next = f->groups;
		f->groups = g;
	}
	log_info("Firewall group %s %s (%zu rules)", g->name, old ? "changed" : "defined",
		 g->n_rules);
	return qv_rpc_call_reply(call, canon), 0;
}

static struct fw_group *lookup_group(qv_rpc_call *call, json_object *params, struct qv_fwd *f,
				     const char **ret_name)
{
	static const char *const keys[] = { "name", NULL };
	const char *name;
	struct fw_group *g;

	if (check_keys(call, params, keys) < 0 || qv_param_string(call, params, "name", &name) < 0)
		return NULL;
	if (!vm_fw_group_name_valid(name)) {
		qv_call_fail(call, EINVAL, QV_REASON_INVALID_ARGUMENT, "invalid group name \"%.40s\"",
			     name);
		return NULL;
	}
	g = qv_fwd_group(f, name);
	if (!g)
		qv_call_fail(call, ENOENT, QV_REASON_NOT_FOUND, "firewall group %s is not defined",
			     name);
	*ret_name = name;
	return g;
}

static int m_group_undefine(qv_rpc_call *call, json_object *params, void *ud)
{
	struct qv_daemon *d = ud;
	struct qv_fwd *f;
	struct qv_error err = {};
	const char *name = NULL;
	struct fw_group *g;
	char users[512];

	if (!(f = fwd(call, d)) || !(g = lookup_group(call, params, f, &name)))
		return 0;
	users_of(d, name, users, sizeof(users));
	if (users[0])
		return qv_call_fail(call, EBUSY, QV_REASON_CONFLICT,
				    "firewall group %s is used by VM(s) %s", name, users), 0;
	if (f->table_up) {
		_cleanup_(qv_fw_batch_freep) qv_fw_batch *b = qv_fw_batch_new();
		if (!b || qv_fw_emit_group_delete(b, &f->opts, name) < 0 ||
		    qv_fwd_apply(f, b, &err) < 0) {
			if (!err.set)
				qv_error_set(&err, ENOMEM, QV_REASON_INTERNAL, "out of memory");
			return qv_rpc_call_error(call, &err), 0;
		}
	}
	(void)qv_state_fw_group_delete(d->state, name);
	for (struct fw_group **pp = &f->groups; *pp; pp = &(*pp)->next)
		if (*pp == g) {
			*pp = g->next;
			break;
		}
	log_info("Firewall group %s undefined", g->name);
	qv_fwd_group_free(g);
	return qv_rpc_call_reply(call, json_object_new_object()), 0;
}

static int m_group_list(qv_rpc_call *call, json_object *params, void *ud)
{
	static const char *const keys[] = { NULL };
	struct qv_daemon *d = ud;
	struct qv_fwd *f;
	char users[512];

	if (check_keys(call, params, keys) < 0 || !(f = fwd(call, d)))
		return 0;
	json_object *a = json_object_new_array(), *res = json_object_new_object();
	for (struct fw_group *g = f->groups; g; g = g->next) {
		json_object *o = json_object_new_object();
		json_object_object_add(o, "name", json_object_new_string(g->name));
		json_object_object_add(o, "rules", json_object_new_int64((int64_t)g->n_rules));
		users_of(d, g->name, users, sizeof(users));
		json_object_object_add(o, "used_by", json_object_new_string(users));
		json_object_array_add(a, o);
	}
	json_object_object_add(res, "groups", a);
	return qv_rpc_call_reply(call, res), 0;
}

/* Counters of chain, {comment -> {packets, bytes}}; rules sharing a tag
 * (the three IPv6 source checks) add up. */
static json_object *counters_by_tag(json_object *listing, const char *chain)
{
	json_object *rows = qv_fw_chain_counters(listing, chain), *out = json_object_new_object();

	for (size_t i = 0; i < json_object_array_length(rows); i++) {
		json_object *row = json_object_array_get_idx(rows, i), *c, *prev, *a, *b;
		json_object_object_get_ex(row, "comment", &c);
		const char *tag = json_object_get_string(c);
		if (json_object_object_get_ex(out, tag, &prev)) {
			static const char *const keys[] = { "packets", "bytes" };
			for (size_t k = 0; k < 2; k++)
				if (json_object_object_get_ex(prev, keys[k], &a) &&
				    json_object_object_get_ex(row, keys[k], &b))
					json_object_set_int64(a, json_object_get_int64(a) +
								 json_object_get_int64(b));
			continue;
		}
		json_object_object_add(out, tag, json_object_get(row));
	}
	json_object_put(rows);
	return out;
}

static void add_counter(json_object *dst, json_object *by_tag, const char *tag)
{
	json_object *row, *v;

	if (!json_object_object_get_ex(by_tag, tag, &row))
		return;
	json_object_object_get_ex(row, "packets", &v);
	json_object_object_add(dst, "packets", json_object_get(v));
	json_object_object_get_ex(row, "bytes", &v);
	json_object_object_add(dst, "bytes", json_object_get(v));
}

/* rules with counters from the chains in/out of a NIC or group. */
static json_object *rules_json(const struct vm_fw_rule *rules, size_t n, json_object *in_tags,
			       json_object *out_tags)
{
	json_object *a = json_object_new_array();
	char tag[32];

	for (size_t i = 0; i < n; i++) {
		json_object *o = vm_fw_rule_to_json(&rules[i]);
		snprintf(tag, sizeof(tag), QV_FW_TAG_RULE "%zu", i);
		add_counter(o, rules[i].dir == VM_FW_IN ? in_tags : out_tags, tag);
		json_object_array_add(a, o);
	}
	return a;
}

/* The end rule of a chain counts what its policy decided. */
static json_object *policy_json(enum vm_fw_action a, json_object *tags)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "action", json_object_new_string(vm_fw_action_to_string(a)));
	json_object_object_foreach(tags, k, v)
		if (strncmp(k, QV_FW_TAG_END, strlen(QV_FW_TAG_END)) == 0)
			add_counter(o, tags, k), (void)v;
	return o;
}

static json_object *nic_json(struct qv_fwd *f, struct qv_vm *vm, size_t i, json_object *listing)
{
	const struct vm_nic *nic = &vm->spec->nics[i];
	struct vm_fw defaults;
	const struct vm_fw *fw = nic->fw;
	char tap[IFNAMSIZ] = "", cin[64], cout[64];
	json_object *o = json_object_new_object(), *spoof = json_object_new_object();
	bool installed = false;

	if (!fw) {
		vm_fw_defaults(&defaults);
		fw = &defaults;
	}
	(void)qv_vm_tap_name(vm, (unsigned)i, tap);
	for (size_t k = 0; k < f->n_nics; k++)
		if (streq(f->nics[k].tap, tap) && streq(f->nics[k].vm, vm->name)) {
			installed = true;
			if (f->nics[k].learned[0])
				json_object_object_add(o, "learned",
						       json_object_new_string(f->nics[k].learned));
		}
	qv_fw_nic_chain(tap, true, cin);
	qv_fw_nic_chain(tap, false, cout);
	json_object *tin = counters_by_tag(listing, cin), *tout = counters_by_tag(listing, cout);
	json_object_object_add(o, "index", json_object_new_int64((int64_t)i));
	json_object_object_add(o, "tap", json_object_new_string(tap));
	json_object_object_add(o, "mac", json_object_new_string(nic->mac));
	json_object_object_add(o, "installed", json_object_new_boolean(installed));
	json_object_object_add(o, "firewall", vm_fw_to_json(fw));
	json_object_object_foreach(tout, k, v) {
		if (strncmp(k, QV_FW_TAG_SPOOF, strlen(QV_FW_TAG_SPOOF)) != 0)
			continue;
		json_object *c = json_object_new_object();
		add_counter(c, tout, k);
		json_object_object_add(spoof, k + strlen(QV_FW_TAG_SPOOF), c);
		(void)v;
	}
	json_object_object_add(o, "anti_spoof_drops", spoof);
	json_object_object_add(o, "rules", rules_json(fw->rules, fw->n_rules, tin, tout));
	json_object *groups = json_object_new_array();
	for (size_t gi_ = 0; gi_ < fw->n_groups; gi_++) {
		struct fw_group *g = qv_fwd_group(f, fw->groups[gi_]);
		json_object *go = json_object_new_object();
		json_object_object_add(go, "name", json_object_new_string(fw->groups[gi_]));
		if (g) {
			qv_fw_group_chain(g->name, true, cin);
			qv_fw_group_chain(g->name, false, cout);
			json_object *gi = counters_by_tag(listing, cin);
			json_object *gout = counters_by_tag(listing, cout);
			json_object_object_add(go, "rules", rules_json(g->rules, g->n_rules, gi, gout));
			json_object_put(gi);
			json_object_put(gout);
		}
		json_object_array_add(groups, go);
	}
	json_object_object_add(o, "groups", groups);
	json_object_object_add(o, "policy_in", policy_json(fw->policy_in, tin));
	json_object_object_add(o, "policy_out", policy_json(fw->policy_out, tout));
	json_object_put(tin);
	json_object_put(tout);
	return o;
}

static int m_fw_show(qv_rpc_call *call, json_object *params, void *ud)
{
	static const char *const keys[] = { "name", NULL };
	struct qv_daemon *d = ud;
	struct qv_error err = {};
	struct qv_fwd *f;
	struct qv_vm *vm;
	const char *name;
	json_object *listing = NULL;

	if (check_keys(call, params, keys) < 0 || !(f = fwd(call, d)) ||
	    qv_param_string(call, params, "name", &name) < 0)
		return 0;
	if (!(vm = qv_vm_find(d, name)))
		return qv_call_fail(call, ENOENT, QV_REASON_NOT_FOUND, "VM %.64s is not defined",
				    name), 0;
	int r = qv_nft_list_json(f->nft, "list table bridge " QV_FW_TABLE, &listing, &err);
	if (r < 0 && r != -ENOENT)
		return qv_rpc_call_error(call, &err), 0;
	json_object *res = json_object_new_object(), *a = json_object_new_array();
	json_object_object_add(res, "name", json_object_new_string(vm->name));
	json_object_object_add(res, "table", json_object_new_string("bridge " QV_FW_TABLE));
	json_object_object_add(res, "reject", json_object_new_string(f->opts.reject_ok ? "reject"
											: "drop"));
	for (size_t i = 0; i < vm->spec->n_nics; i++)
		json_object_array_add(a, nic_json(f, vm, i, listing));
	json_object_object_add(res, "nics", a);
	json_object_put(listing);
	return qv_rpc_call_reply(call, res), 0;
}

static int m_group_show(qv_rpc_call *call, json_object *params, void *ud)
{
	struct qv_daemon *d = ud;
	struct qv_fwd *f;
	const char *name = NULL;
	struct fw_group *g;
	char users[512];

	if (!(f = fwd(call, d)) || !(g = lookup_group(call, params, f, &name)))
		return 0;
	json_object *o = qv_fwd_group_json(g);
	users_of(d, name, users, sizeof(users));
	json_object_object_add(o, "used_by", json_object_new_string(users));
	return qv_rpc_call_reply(call, o), 0;
}

/* fw.vm.set {name, nic?, firewall}: replace one NIC's firewall (null: the
 * defaults), live when the VM runs, and store it in the spec. */
static int m_vm_set(qv_rpc_call *call, json_object *params, void *ud)
{
	static const char *const keys[] = { "name", "nic", "firewall", NULL };
	struct qv_daemon *d = ud;
	struct qv_error err = {};
	struct vm_fw *fw = NULL;
	struct qv_fwd *f;
	struct qv_vm *vm;
	const char *name;
	json_object *v;
	int64_t idx = 0;

	if (check_keys(call, params, keys) < 0 || !(f = fwd(call, d)) ||
	    qv_param_string(call, params, "name", &name) < 0)
		return 0;
	if (!(vm = qv_vm_find(d, name)))
		return qv_call_fail(call, ENOENT, QV_REASON_NOT_FOUND, "VM %.64s is not defined",
				    name), 0;
	if (json_object_object_get_ex(params, "nic", &v) &&
	    (!json_object_is_type(v, json_type_int) || (idx = json_object_get_int64(v)) < 0 ||
	     (size_t)idx >= vm->spec->n_nics))
		return qv_call_fail(call, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "params.nic: VM %s has %zu NIC(s); give an index 0..%zu", name,
				    vm->spec->n_nics, vm->spec->n_nics ? vm->spec->n_nics - 1 : 0), 0;
	if (!json_object_object_get_ex(params, "firewall", &v))
		return qv_call_fail(call, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "params.firewall: required (an object, or null for the defaults)"), 0;
	if (v && vm_fw_parse(v, "params.firewall", &fw, &err) < 0)
		return qv_rpc_call_error(call, &err), 0;
	struct vm_nic *nic = &vm->spec->nics[idx];
	struct vm_fw *old = nic->fw;
	nic->fw = fw;
	int r = qv_fw_check_spec(d, vm->spec, &err);
	if (r >= 0)
		r = qv_fwd_nic_refresh(f, vm, (size_t)idx, &err);
	if (r < 0) {
		nic->fw = old;
		free(fw);
		return qv_rpc_call_error(call, &err), 0;
	}
	free(old);
	_cleanup_json_ json_object *sj = vm_spec_to_json(vm->spec);
	if (!sj || qv_state_vm_update_spec(d->state, vm->name, json_object_to_json_string_ext(
							  sj, JSON_C_TO_STRING_PLAIN)) < 0)
		log_warning("VM %s: cannot store the new firewall of NIC %" PRId64 "; it is live "
			    "but the stored spec keeps the old one", vm->name, idx);
	log_info("VM %s: firewall of NIC %" PRId64 " changed", vm->name, idx);
	json_object *res = json_object_new_object();
	json_object_object_add(res, "name", json_object_new_string(vm->name));
	json_object_object_add(res, "nic", json_object_new_int64(idx));
	if (fw)
		json_object_object_add(res, "firewall", vm_fw_to_json(fw));
	return qv_rpc_call_reply(call, res), 0;
}

const struct qv_rpc_method qv_fw_methods[] = {
	{ "fw.show", m_fw_show },
	{ "fw.group.define", m_group_define },
	{ "fw.group.undefine", m_group_undefine },
	{ "fw.group.list", m_group_list },
	{ "fw.group.show", m_group_show },
	{ "fw.vm.set", m_vm_set },
};
const size_t qv_fw_methods_count = ARRAY_SIZE(qv_fw_methods);
