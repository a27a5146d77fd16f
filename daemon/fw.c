/* SPDX-License-Identifier: MIT */
/* The daemon's firewall: model (groups + the NICs of running VMs), one nft
 * transaction per operation, reconcile at start, DHCP lease learning.
 * RPC methods live in daemon/methods-fw.c. */
#include <string.h>

#include "common/json.h"
#include "common/log.h"
#include "daemon/fw-internal.h"
#include "daemon/netreg.h"
#include "daemon/vm-nics-internal.h"
#include "net/mac.h"

struct qv_fwd *qv_fwd_get(struct qv_daemon *d, struct qv_error *errp)
{
	struct qv_fwd *f = d->fw_state;

	if (f)
		return f;
	f = calloc(1, sizeof(*f));
	if (!f) {
		qv_error_set(errp, ENOMEM, QV_REASON_INTERNAL, "out of memory");
		return NULL;
	}
	if (qv_nft_new(&f->nft, errp) < 0) {
		free(f);
		return NULL;
	}
	f->d = d;
	f->opts.table = QV_FW_TABLE;
	f->opts.reject_ok = qv_nft_bridge_reject_ok(f->nft);
	d->fw_state = f;
	return f;
}

struct fw_group *qv_fwd_group(struct qv_fwd *f, const char *name)
{
	for (struct fw_group *g = f ? f->groups : NULL; g; g = g->next)
		if (streq(g->name, name))
			return g;
	return NULL;
}

void qv_fwd_group_free(struct fw_group *g)
{
	if (g) {
		free(g->name);
		free(g->rules);
		free(g);
	}
}

int qv_fwd_group_parse(json_object *spec, struct fw_group **ret, struct qv_error *errp)
{
	static const char *const keys[] = { "name", "rules", NULL };
	json_object *name, *rules;
	struct fw_group *g;
	char path[64];

	if (!spec || !json_object_is_type(spec, json_type_object))
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "group: must be an object {name, rules}");
	if (json_check_keys(spec, keys, "group", errp) < 0)
		return -EINVAL;
	if (!json_object_object_get_ex(spec, "name", &name) ||
	    !json_object_is_type(name, json_type_string) ||
	    !vm_fw_group_name_valid(json_object_get_string(name)))
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "group.name: required; 1-%d of letters, digits and '_', "
				    "starting with a letter", VM_FW_GROUP_NAME_MAX);
	if (!json_object_object_get_ex(spec, "rules", &rules) ||
	    !json_object_is_type(rules, json_type_array))
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "group.rules: required (an array, may be empty)");
	size_t n = json_object_array_length(rules);
	if (n > VM_FW_GROUP_RULES_MAX)
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "group.rules: %zu rules, at most %d", n, VM_FW_GROUP_RULES_MAX);
	g = calloc(1, sizeof(*g));
	if (!g || !(g->name = strdup(json_object_get_string(name))) ||
	    !(g->rules = calloc(n ? n : 1, sizeof(*g->rules)))) {
		qv_fwd_group_free(g);
		return qv_error_set(errp, ENOMEM, QV_REASON_INTERNAL, "out of memory");
	}
	for (size_t i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "group.rules[%zu]", i);
		int r = vm_fw_rule_parse(json_object_array_get_idx(rules, i), path, &g->rules[i], errp);
		if (r < 0) {
			qv_fwd_group_free(g);
			return r;
		}
	}
	g->n_rules = n;
	*ret = g;
	return 0;
}

json_object *qv_fwd_group_json(const struct fw_group *g)
{
	json_object *o = json_object_new_object(), *a = json_object_new_array();

	json_object_object_add(o, "name", json_object_new_string(g->name));
	for (size_t i = 0; i < g->n_rules; i++)
		json_object_array_add(a, vm_fw_rule_to_json(&g->rules[i]));
	json_object_object_add(o, "rules", a);
	return o;
}

static int load_group(const char *name, const char *spec_json, void *ud)
{
	struct qv_fwd *f = ud;
	struct qv_error err = {};
	struct fw_group *g = NULL;
	json_object *o = json_tokener_parse(spec_json);

	if (qv_fwd_group_parse(o, &g, &err) < 0)
		log_warning("Firewall group %s in the state store is unusable: %s, ignoring", name,
			    err.message);
	else {
		g->next = f->groups;
		f->groups = g;
	}
	json_object_put(o);
	return 0;
}

/* The model of installed NIC in; learned points into it. */
static int nic_model(struct qv_fwd *f, struct fw_nic *in, struct qv_fw_nic *ret,
		     const char **learned)
{
	const char *mac, *network;
	const struct vm_fw *fw;

	if (qv_fwd_nic_source(f, in, &mac, &network, &fw) < 0)
		return -ENOENT;
	*learned = in->learned;
	*ret = (struct qv_fw_nic){ .tap = in->tap, .mac = mac, .fw = fw,
				   .dhcp = qv_fwd_net_has_dhcp(f->d, network),
				   .learned = learned, .n_learned = in->learned[0] ? 1 : 0 };
	return 0;
}

static struct qv_fw_group *group_models(struct qv_fwd *f, size_t *ret_n)
{
	size_t n = 0;
	for (struct fw_group *g = f->groups; g; g = g->next)
		n++;
	struct qv_fw_group *v = calloc(n ? n : 1, sizeof(*v));
	n = 0;
	for (struct fw_group *g = f->groups; v && g; g = g->next)
		v[n++] = (struct qv_fw_group){ g->name, g->rules, g->n_rules };
	*ret_n = n;
	return v;
}

/* Emit installed NIC x from its model: its chains and rule maps are
 * refilled; its elements of the shared sets are replaced (old undo, new
 * elements) only when they differ, since removing elements from a large
 * interval set is what costs the kernel most. Skips a NIC without a model. */
int qv_fwd_emit_installed(struct qv_fwd *f, struct fw_nic *x, qv_fw_batch *b,
			  struct qv_error *errp)
{
	_cleanup_(qv_fw_batch_freep) qv_fw_batch *nu = qv_fw_batch_new();
	struct qv_fw_nic m;
	const char *learned;
	int r;

	if (!nu)
		return qv_error_set(errp, ENOMEM, QV_REASON_INTERNAL, "out of memory");
	if (nic_model(f, x, &m, &learned) < 0)
		return 0;
	r = qv_fw_emit_nic_undo(nu, &f->opts, &m, errp);
	if (r >= 0 && (!x->undo || !streq(x->undo, qv_fw_batch_text(nu)))) {
		if (x->undo)
			r = qv_fw_batch_addf(b, "%s", x->undo);
		if (r >= 0)
			r = qv_fw_emit_nic_elements(b, &f->opts, &m, errp);
	}
	if (r >= 0)
		r = qv_fw_emit_nic_chains(b, &f->opts, &m, errp);
	if (r >= 0) {
		char *u = strdup(qv_fw_batch_text(nu));
		if (!u)
			return qv_error_set(errp, ENOMEM, QV_REASON_INTERNAL, "out of memory");
		free(x->undo);
		x->undo = u;
	}
	return r;
}

/* What removes installed NIC x: its shared-set elements, chains, maps. */
static int emit_removal(struct qv_fwd *f, struct fw_nic *x, qv_fw_batch *b)
{
	int r = x->undo ? qv_fw_batch_addf(b, "%s", x->undo) : 0;

	return r < 0 ? r : qv_fw_emit_nic_delete(b, &f->opts, x->tap);
}

/* After a full reconcile the kernel holds the model: each NIC's undo is
 * what its model emits. */
static void undo_from_model(struct qv_fwd *f)
{
	for (size_t i = 0; i < f->n_nics; i++) {
		_cleanup_(qv_fw_batch_freep) qv_fw_batch *u = qv_fw_batch_new();
		struct qv_fw_nic m;
		const char *learned;
		free(f->nics[i].undo);
		f->nics[i].undo = NULL;
		if (u && nic_model(f, &f->nics[i], &m, &learned) == 0 &&
		    qv_fw_emit_nic_undo(u, &f->opts, &m, NULL) >= 0)
			f->nics[i].undo = strdup(qv_fw_batch_text(u));
	}
}

/* Bring the kernel to the model of f->nics: list, plan, apply. */
int qv_fwd_resync(struct qv_fwd *f, struct qv_error *errp)
{
	_cleanup_(qv_fw_batch_freep) qv_fw_batch *b = qv_fw_batch_new();
	_cleanup_(qv_fw_live_freep) qv_fw_live *live = NULL;
	_cleanup_free_ struct qv_fw_nic *nics = calloc(f->n_nics ? f->n_nics : 1, sizeof(*nics));
	_cleanup_free_ const char **learned = calloc(f->n_nics ? f->n_nics : 1, sizeof(char *));
	_cleanup_free_ struct qv_fw_group *groups = NULL;
	json_object *j = NULL;
	size_t n = 0, ng = 0;
	int r;

	if (!b || !nics || !learned || !(groups = group_models(f, &ng)))
		return qv_error_set(errp, ENOMEM, QV_REASON_INTERNAL, "out of memory");
	r = qv_nft_list_json(f->nft, "list table bridge " QV_FW_TABLE, &j, errp);
	if (r < 0 && r != -ENOENT)
		return r;
	r = qv_fw_live_parse(j, &live);
	json_object_put(j);
	if (r < 0)
		return qv_error_set(errp, -r, QV_REASON_INTERNAL, "out of memory");
	for (size_t i = 0; i < f->n_nics; i++)
		if (nic_model(f, &f->nics[i], &nics[n], &learned[n]) == 0)
			n++;
	r = qv_fw_plan(b, &f->opts, live, nics, n, groups, ng, errp);
	if (r >= 0)
		r = qv_nft_run(f->nft, qv_fw_batch_text(b), errp);
	if (r >= 0) {
		f->table_up = n > 0;
		undo_from_model(f);
		if (qv_fw_batch_len(b))
			log_info("Firewall: table %s brought in line (%zu NIC(s), %zu group(s))",
				 QV_FW_TABLE, n, ng);
	}
	return r;
}

/* Apply b; when the kernel refuses it (someone changed the table under us),
 * fall back once to a full resync from the model. */
int qv_fwd_apply(struct qv_fwd *f, const qv_fw_batch *b, struct qv_error *errp)
{
	struct qv_error first = {};

	if (qv_nft_run(f->nft, qv_fw_batch_text(b), &first) >= 0)
		return 0;
	log_warning("Firewall: %s; resynchronising the table", first.message);
	return qv_fwd_resync(f, errp);
}

int qv_fw_check_spec(struct qv_daemon *d, const struct vm_spec *spec, struct qv_error *errp)
{
	for (size_t i = 0; i < spec->n_nics; i++)
		for (size_t k = 0; spec->nics[i].fw && k < spec->nics[i].fw->n_groups; k++) {
			const char *g = spec->nics[i].fw->groups[k];
			if (!qv_fwd_group(d->fw_state, g))
				return qv_error_set(errp, ENOENT, QV_REASON_NOT_FOUND,
						    "VM %s NIC %zu: firewall group %s is not defined "
						    "on this host (qvisor fw group define)", spec->name,
						    i, g);
		}
	return 0;
}

static void drop_vm(struct qv_fwd *f, const char *vm)
{
	size_t k = 0;
	for (size_t i = 0; i < f->n_nics; i++)
		if (!streq(f->nics[i].vm, vm))
			f->nics[k++] = f->nics[i];
		else
			free(f->nics[i].undo);
	f->n_nics = k;
}

static int add_vm(struct qv_fwd *f, struct qv_vm *vm)
{
	size_t n = vm->spec->n_nics;
	struct fw_nic *v = realloc(f->nics, (f->n_nics + n + 1) * sizeof(*v));

	if (!v)
		return -ENOMEM;
	f->nics = v;
	for (size_t i = 0; i < n; i++) {
		struct fw_nic *x = &f->nics[f->n_nics];
		char tap[IFNAMSIZ];
		if (qv_vm_tap_name(vm, (unsigned)i, tap) < 0)
			continue;
		memset(x, 0, sizeof(*x));
		snprintf(x->vm, sizeof(x->vm), "%s", vm->name);
		snprintf(x->tap, sizeof(x->tap), "%s", tap);
		x->idx = (unsigned)i;
		qv_fwd_lease_of(f->d, vm->spec->nics[i].network, vm->spec->nics[i].mac, x->learned);
		f->n_nics++;
	}
	return 0;
}

/* The first NIC brings the table, its base chains and every group. */
static int emit_table_if_down(struct qv_fwd *f, qv_fw_batch *b)
{
	int r = 0;

	if (f->table_up)
		return 0;
	r = qv_fw_emit_base(b, &f->opts);
	for (struct fw_group *g = f->groups; r >= 0 && g; g = g->next) {
		struct qv_fw_group m = { g->name, g->rules, g->n_rules };
		r = qv_fw_emit_group(b, &f->opts, &m);
	}
	return r;
}

/* After a daemon restart: the hot-plugged NICs the network code re-adopted. */
static int add_hotplugged(struct qv_fwd *f, struct qv_vm *vm)
{
	struct vm_nics *s = vm->nic_state;

	for (size_t i = 0; s && i < HP_SLOTS; i++) {
		const struct hp_nic *h = &s->hp[i];
		if (!h->used || h->removing)
			continue;
		struct fw_nic *v = realloc(f->nics, (f->n_nics + 1) * sizeof(*v));
		if (!v)
			return -ENOMEM;
		f->nics = v;
		struct fw_nic *x = &f->nics[f->n_nics++];
		*x = (struct fw_nic){ .hot = true };
		snprintf(x->vm, sizeof(x->vm), "%s", vm->name);
		snprintf(x->tap, sizeof(x->tap), "%s", h->tap);
		snprintf(x->mac, sizeof(x->mac), "%s", h->mac);
		snprintf(x->network, sizeof(x->network), "%s", h->network ? h->network : "");
		qv_fwd_lease_of(f->d, h->network, h->mac, x->learned);
	}
	return 0;
}

int qv_fw_vm_start(struct qv_vm *vm, struct qv_error *errp)
{
	struct qv_fwd *f;
	_cleanup_(qv_fw_batch_freep) qv_fw_batch *b = NULL;
	size_t first;
	int r;

	if (vm->spec->n_nics == 0)
		return 0;
	if (!(f = qv_fwd_get(vm->d, errp)) || !(b = qv_fw_batch_new()))
		return f ? qv_error_set(errp, ENOMEM, QV_REASON_INTERNAL, "out of memory") : -ENOMEM;
	if ((r = qv_fw_check_spec(vm->d, vm->spec, errp)) < 0)
		return r;
	drop_vm(f, vm->name);
	first = f->n_nics;
	if (add_vm(f, vm) < 0)
		return qv_error_set(errp, ENOMEM, QV_REASON_INTERNAL, "out of memory");
	r = emit_table_if_down(f, b);
	for (size_t i = first; r >= 0 && i < f->n_nics; i++)
		r = qv_fwd_emit_installed(f, &f->nics[i], b, errp);
	if (r >= 0)
		r = qv_fwd_apply(f, b, errp);
	if (r < 0) {
		qv_error_prefix(errp, "VM %s: firewall", vm->name);
		drop_vm(f, vm->name);
		struct qv_error ignore = {};
		(void)qv_fwd_resync(f, &ignore);
		return r;
	}
	f->table_up = true;
	qv_fwd_lease_watch(f);
	log_info("VM %s: firewall rules installed for %zu NIC(s)", vm->name, f->n_nics - first);
	return 0;
}

void qv_fw_vm_stop(struct qv_vm *vm)
{
	struct qv_fwd *f = vm->d->fw_state;
	_cleanup_(qv_fw_batch_freep) qv_fw_batch *b = qv_fw_batch_new();
	struct qv_error err = {};
	size_t before;
	int r = 0;

	if (!f || !b)
		return;
	before = f->n_nics;
	for (size_t i = 0; i < f->n_nics && r >= 0; i++)
		if (streq(f->nics[i].vm, vm->name))
			r = emit_removal(f, &f->nics[i], b);
	drop_vm(f, vm->name);
	if (before == f->n_nics)
		return;
	if (f->n_nics == 0) {
		qv_fw_batch_free(b);
		b = qv_fw_batch_new();
		r = b ? qv_fw_emit_table_delete(b, &f->opts) : -ENOMEM;
	}
	if (r >= 0)
		r = qv_fwd_apply(f, b, &err);
	if (r < 0)
		log_warning("VM %s: cannot remove its firewall rules: %s, ignoring", vm->name,
			    err.message);
	else if (f->n_nics == 0)
		f->table_up = false;
}

int qv_fw_nic_add(struct qv_vm *vm, const char *tap, const char *mac, const char *network,
		  struct qv_error *errp)
{
	struct qv_fwd *f = qv_fwd_get(vm->d, errp);
	_cleanup_(qv_fw_batch_freep) qv_fw_batch *b = qv_fw_batch_new();
	struct fw_nic *v, *x;
	int r = 0;

	if (!f)
		return -ENOMEM;
	if (!b || !(v = realloc(f->nics, (f->n_nics + 1) * sizeof(*v))))
		return qv_error_set(errp, ENOMEM, QV_REASON_INTERNAL, "out of memory");
	f->nics = v;
	x = &f->nics[f->n_nics++];
	*x = (struct fw_nic){ .hot = true };
	snprintf(x->vm, sizeof(x->vm), "%s", vm->name);
	snprintf(x->tap, sizeof(x->tap), "%s", tap);
	snprintf(x->mac, sizeof(x->mac), "%s", mac);
	snprintf(x->network, sizeof(x->network), "%s", network ? network : "");
	qv_fwd_lease_of(f->d, network, mac, x->learned);
	r = emit_table_if_down(f, b);
	if (r >= 0)
		r = qv_fwd_emit_installed(f, x, b, errp);
	if (r >= 0)
		r = qv_fwd_apply(f, b, errp);
	if (r < 0) {
		free(f->nics[f->n_nics - 1].undo);
		f->n_nics--;
		qv_error_prefix(errp, "VM %s: firewall", vm->name);
		return r;
	}
	f->table_up = true;
	qv_fwd_lease_watch(f);
	return 0;
}

void qv_fw_nic_remove(struct qv_vm *vm, const char *tap)
{
	struct qv_fwd *f = vm->d->fw_state;
	_cleanup_(qv_fw_batch_freep) qv_fw_batch *b = qv_fw_batch_new();
	struct qv_error err = {};
	size_t k = 0;
	int r = 0;

	if (!f || !b)
		return;
	for (size_t i = 0; i < f->n_nics; i++)
		if (!(streq(f->nics[i].vm, vm->name) && streq(f->nics[i].tap, tap)))
			f->nics[k++] = f->nics[i];
		else if (r >= 0) {
			r = emit_removal(f, &f->nics[i], b);
			free(f->nics[i].undo);
		}
	if (k == f->n_nics)
		return;
	f->n_nics = k;
	if (!k) {
		qv_fw_batch_free(b);
		b = qv_fw_batch_new();
		r = b ? qv_fw_emit_table_delete(b, &f->opts) : -ENOMEM;
	}
	if (r >= 0)
		r = qv_fwd_apply(f, b, &err);
	if (r < 0)
		log_warning("VM %s: cannot remove the firewall rules of %s: %s, ignoring", vm->name,
			    tap, err.message);
	else if (!k)
		f->table_up = false;
}

int qv_fwd_nic_refresh(struct qv_fwd *f, struct qv_vm *vm, size_t idx, struct qv_error *errp)
{
	_cleanup_(qv_fw_batch_freep) qv_fw_batch *b = qv_fw_batch_new();

	if (!b)
		return qv_error_set(errp, ENOMEM, QV_REASON_INTERNAL, "out of memory");
	for (size_t i = 0; i < f->n_nics; i++) {
		if (f->nics[i].hot || f->nics[i].idx != idx || !streq(f->nics[i].vm, vm->name))
			continue;
		int r = qv_fwd_emit_installed(f, &f->nics[i], b, errp);
		return r < 0 ? r : qv_fwd_apply(f, b, errp);
	}
	return 0;
}

int qv_fw_load(struct qv_daemon *d)
{
	struct qv_error err = {};
	struct qv_fwd *f = qv_fwd_get(d, &err);

	if (!f) {
		log_warning("Firewall unavailable: %s; VMs with NICs will not start", err.message);
		return 0;
	}
	if (!f->opts.reject_ok)
		log_info("Firewall: this kernel has no reject in the bridge family; reject rules "
			 "drop");
	if (qv_state_fw_group_list(d->state, load_group, f) < 0)
		log_warning("Cannot read firewall groups from the state store, ignoring");
	for (struct qv_vm *vm = d->vms; vm; vm = vm->next)
		if (qv_vm_is_active(vm) && (add_vm(f, vm) < 0 || add_hotplugged(f, vm) < 0))
			return log_error_errno(-ENOMEM, "Firewall: %m");
	if (qv_fwd_resync(f, &err) < 0)
		log_warning("Firewall: cannot reconcile table %s: %s", QV_FW_TABLE, err.message);
	if (f->n_nics)
		qv_fwd_lease_watch(f);
	return 0;
}

void qv_fw_free(struct qv_daemon *d)
{
	struct qv_fwd *f = d->fw_state;

	if (!f)
		return;
	qv_source_remove(f->lease_timer);
	while (f->groups) {
		struct fw_group *g = f->groups;
		f->groups = g->next;
		qv_fwd_group_free(g);
	}
	for (size_t i = 0; i < f->n_nics; i++)
		free(f->nics[i].undo);
	free(f->nics);
	qv_nft_free(f->nft);
	free(f);
	d->fw_state = NULL;
}
