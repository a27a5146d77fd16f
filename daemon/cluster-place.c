/* SPDX-License-Identifier: MIT */
/* vm.define in a cluster: an optional "placement" section (host auto or a
 * name, required labels, affinity and anti-affinity groups) chooses the
 * host with sched/placement.h over the live inventory; the VM is then
 * claimed and defined here or forwarded to the chosen daemon. */
#include <string.h>

#include "common/json.h"
#include "common/log.h"
#include "daemon/cluster-internal.h"
#include "daemon/vm.h"
#include "sched/placement.h"


struct place {
	char name[64];
	char want[64];          /* "auto" or a host name */
	json_object *spec;      /* without placement */
	json_object *placement;
	json_object *ha_filter; /* an ha VM: only hosts that see its shared dirs */
	/* the VM as placement sees it (from the spec, on the loop) */
	uint32_t vcpus, cpu_res_milli;
	uint64_t mem_mib, mem_res_mib;
	const char *req[PL_MAX_STRS], *anti[PL_MAX_STRS], *aff[PL_MAX_STRS];
	char req_buf[PL_MAX_STRS][128];
	int nreq, nanti, naff;
	/* out */
	char host[64], address[128], reason[512];
};

/* Strings of placement[key] (an array of group names) into out. */
static int str_array(json_object *placement, const char *key, const char **out, int *n,
		     struct qv_error *errp)
{
	json_object *a;

	*n = 0;
	if (!json_object_object_get_ex(placement, key, &a))
		return 0;
	if (!json_object_is_type(a, json_type_array) || json_object_array_length(a) > PL_MAX_STRS)
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "placement.%s must be an array of at most %d group names", key,
				    PL_MAX_STRS);
	for (size_t i = 0; i < json_object_array_length(a); i++) {
		json_object *s = json_object_array_get_idx(a, i);
		if (!json_object_is_type(s, json_type_string) ||
		    !vm_name_valid(json_object_get_string(s)))
			return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
					    "placement.%s[%zu]: a group name is 1-63 of "
					    "[a-zA-Z0-9_.-]", key, i);
		out[(*n)++] = json_object_get_string(s);
	}
	return 0;
}

static int parse_placement(struct place *p, struct qv_error *errp)
{
	static const char *const keys[] = { "host", "labels", "anti_affinity", "affinity", NULL };
	json_object *v;
	int r;

	if (!json_object_is_type(p->placement, json_type_object))
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "placement must be an object");
	if ((r = json_check_keys(p->placement, keys, "placement", errp)) < 0)
		return r;
	snprintf(p->want, sizeof(p->want), "auto");
	if (json_object_object_get_ex(p->placement, "host", &v)) {
		const char *h = json_object_get_string(v);
		if (!json_object_is_type(v, json_type_string) || (!streq(h, "auto") && !vm_name_valid(h)))
			return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
					    "placement.host must be \"auto\" or a host name");
		snprintf(p->want, sizeof(p->want), "%s", h);
	}
	if (json_object_object_get_ex(p->placement, "labels", &v)) {
		if (!json_object_is_type(v, json_type_object) ||
		    json_object_object_length(v) > PL_MAX_STRS)
			return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
					    "placement.labels must be an object of at most %d "
					    "\"key\": \"value\"", PL_MAX_STRS);
		json_object_object_foreach(v, k, val) {
			snprintf(p->req_buf[p->nreq], sizeof(p->req_buf[0]), "%s=%s", k,
				 json_object_get_string(val));
			p->req[p->nreq] = p->req_buf[p->nreq];
			p->nreq++;
		}
	}
	if ((r = str_array(p->placement, "anti_affinity", p->anti, &p->nanti, errp)) < 0 ||
	    (r = str_array(p->placement, "affinity", p->aff, &p->naff, errp)) < 0)
		return r;
	return 0;
}

static int64_t jint(json_object *o, const char *a, const char *b)
{
	json_object *x = o, *v;

	if (a && !json_object_object_get_ex(o, a, &x))
		return 0;
	return json_object_object_get_ex(x, b, &v) ? json_object_get_int64(v) : 0;
}

void cl_snap_free(struct cl_snap *s)
{
	for (size_t i = 0; s->hrec && i < s->nh; i++)
		json_object_put(s->hrec[i]);
	for (size_t i = 0; s->vrec && i < s->nv; i++)
		json_object_put(s->vrec[i]);
	qv_etcd_kvs_free(s->hkv, s->nh);
	qv_etcd_kvs_free(s->vkv, s->nv);
	for (size_t i = 0; s->hosts && i < s->nh; i++)
		free((void *)s->hosts[i].labels);
	free(s->hrec);
	free(s->vrec);
	free(s->hosts);
	free(s->vms);
	free(s->strs);
	free(s->labels);
}

/* Strings of rec.placement[key] appended to s->strs. */
static const char *const *group_list(struct cl_snap *s, json_object *rec, const char *key, int *n)
{
	json_object *pl, *a;
	const char **start = s->strs + s->nstrs;

	*n = 0;
	if (!json_object_object_get_ex(rec, "placement", &pl) ||
	    !json_object_object_get_ex(pl, key, &a) || !json_object_is_type(a, json_type_array))
		return NULL;
	for (size_t i = 0; i < json_object_array_length(a) && i < PL_MAX_STRS; i++) {
		s->strs[s->nstrs++] = json_object_get_string(json_object_array_get_idx(a, i));
		(*n)++;
	}
	return start;
}

int cl_snap_load(qv_etcd *e, struct cl_snap *s, struct qv_error *errp)
{
	size_t nl = 0;
	int r;

	if ((r = qv_etcd_list(e, CL_HOSTS, &s->hkv, &s->nh, errp)) < 0 ||
	    (r = qv_etcd_list(e, CL_VMS, &s->vkv, &s->nv, errp)) < 0)
		return r;
	s->hrec = calloc(s->nh + 1, sizeof(*s->hrec));
	s->vrec = calloc(s->nv + 1, sizeof(*s->vrec));
	s->hosts = calloc(s->nh + 1, sizeof(*s->hosts));
	s->vms = calloc(s->nv + 1, sizeof(*s->vms));
	s->strs = calloc(s->nv * 2 * PL_MAX_STRS + 1, sizeof(*s->strs));
	s->labels = calloc(s->nh * PL_MAX_STRS + 1, sizeof(*s->labels));
	if (!s->hrec || !s->vrec || !s->hosts || !s->vms || !s->strs || !s->labels)
		return -ENOMEM;
	for (size_t i = 0; i < s->nh; i++) {
		json_object *rec = s->hrec[i] = json_tokener_parse(s->hkv[i].value), *v, *lab;
		struct qv_pl_host *h = &s->hosts[i];
		h->name = s->hkv[i].key + strlen(CL_HOSTS);
		h->cpu_milli = (uint32_t)jint(rec, "capacity", "vcpus") * 1000;
		h->mem_mib = (uint64_t)jint(rec, "capacity", "memory_mib");
		h->mem_used_mib = (uint64_t)jint(rec, "usage", "host_memory_used_mib");
		h->cpu_used_milli = (double)jint(rec, "usage", "cpu_used_milli");
		h->schedulable = !json_object_object_get_ex(rec, "schedulable", &v) ||
				 json_object_get_boolean(v);
		h->labels = NULL;
		h->nlabels = 0;
		if (rec && json_object_object_get_ex(rec, "labels", &lab)) {
			const char **ls = calloc(PL_MAX_STRS, sizeof(*ls));
			if (!ls)
				return -ENOMEM;
			json_object_object_foreach(lab, k, val) {
				if (h->nlabels == PL_MAX_STRS)
					break;
				const char *lv = json_object_get_string(val);
				/* "gpu" (no value) is a label that is just present */
				snprintf(s->labels[nl], sizeof(s->labels[0]), "%s%s%s", k,
					 *lv ? "=" : "", lv);
				ls[h->nlabels++] = s->labels[nl++];
			}
			h->labels = ls; /* freed by cl_snap_free() */
		}
	}
	for (size_t i = 0; i < s->nv; i++) {
		json_object *rec = s->vrec[i] = json_tokener_parse(s->vkv[i].value), *o, *v;
		struct qv_pl_vm *vm = &s->vms[i];
		vm->name = s->vkv[i].key + strlen(CL_VMS);
		vm->host = -1;
		vm->prev_host = -1;
		vm->last_move_s = -1;
		if (rec && json_object_object_get_ex(rec, "owner", &o)) {
			struct qv_pl_snapshot tmp = { .hosts = s->hosts, .nhosts = (int)s->nh };
			vm->host = qv_pl_host_index(&tmp, json_object_get_string(o));
		}
		vm->vcpus = (uint32_t)jint(rec, NULL, "vcpus");
		vm->mem_mib = (uint64_t)jint(rec, NULL, "memory_mib");
		vm->cpu_res_milli = (uint32_t)jint(rec, NULL, "cpu_reservation_milli");
		vm->mem_res_mib = (uint64_t)jint(rec, NULL, "memory_reservation_mib");
		/* measured by the owner (its host record), for the balancer */
		json_object *st, *hu, *per, *mv;
		if (vm->host >= 0 && json_object_object_get_ex(s->hrec[vm->host], "usage", &hu) &&
		    json_object_object_get_ex(hu, "vm_cpu_milli", &per) &&
		    json_object_object_get_ex(per, vm->name, &v))
			vm->cpu_used_milli = (double)json_object_get_int64(v);
		if (rec && json_object_object_get_ex(rec, "state", &st)) {
			vm->migrating = streq(json_object_get_string(st), "migrating");
			if (streq(json_object_get_string(st), "running") || vm->migrating)
				vm->mem_used_mib = vm->mem_mib;
		}
		if (rec && json_object_object_get_ex(rec, "moved", &mv)) {
			struct qv_pl_snapshot tmp = { .hosts = s->hosts, .nhosts = (int)s->nh };
			vm->last_move_s = (double)jint(mv, NULL, "at_ms") / 1000.0;
			vm->prev_host = qv_pl_host_index(&tmp, json_object_get_string(
							       json_object_object_get(mv, "from")));
		}
		vm->anti_affinity = group_list(s, rec, "anti_affinity", &vm->nanti_affinity);
		vm->affinity = group_list(s, rec, "affinity", &vm->naffinity);
	}
	return cl_snap_apply_hostcfg(e, s, errp);
}

static void place_run(struct cl_job *j)
{
	struct place *p = j->data;
	struct cl_snap s = {};
	struct qv_pl_cfg cfg;
	struct qv_pl_choice ch = {};
	int hi;

	j->r = cl_snap_load(j->c->etcd, &s, &j->err);
	if (j->r < 0)
		goto out;
	/* CPU is placed by reservation: measured host CPU on a shared
	 * machine (or a test's three "hosts" on one) says nothing about the
	 * room a new VM gets, and must not tilt the spread either. The
	 * balancer works on measured CPU. */
	for (size_t i = 0; i < s.nh; i++)
		s.hosts[i].cpu_used_milli = 0;
	for (size_t i = 0; i < s.nv; i++) {
		s.vms[i].cpu_used_milli = 0;
		s.vms[i].mem_used_mib = 0;
	}
	struct qv_pl_snapshot snap = { .hosts = s.hosts, .nhosts = (int)s.nh, .vms = s.vms,
				       .nvms = (int)s.nv };
	for (size_t i = 0; p->ha_filter && i < s.nh; i++)
		if (!s.hrec[i] || !cl_ha_host_sees(s.hrec[i], p->ha_filter))
			s.hosts[i].schedulable = false;
	if (!streq(p->want, "auto")) {
		hi = qv_pl_host_index(&snap, p->want);
		if (hi < 0) {
			j->r = qv_error_set(&j->err, ENOENT, QV_REASON_NOT_FOUND,
					    "host %s is not in the cluster (no live lease)", p->want);
			goto out;
		}
		if (!s.hosts[hi].schedulable) {
			j->r = qv_error_set(&j->err, EBUSY, QV_REASON_CONFLICT,
					    "host %s is unschedulable (cordoned or evacuated; "
					    "`qvisor host resume %s`)", p->want, p->want);
			goto out;
		}
		snprintf(p->reason, sizeof(p->reason), "%s: named in placement.host", p->want);
	} else {
		struct qv_pl_vm vm = {
			.name = p->name, .host = -1, .prev_host = -1, .last_move_s = -1,
			.vcpus = p->vcpus, .mem_mib = p->mem_mib, .cpu_res_milli = p->cpu_res_milli,
			.mem_res_mib = p->mem_res_mib, .requires = p->req, .nrequires = p->nreq,
			.anti_affinity = p->anti, .nanti_affinity = p->nanti, .affinity = p->aff,
			.naffinity = p->naff,
		};
		qv_pl_cfg_defaults(&cfg);
		cfg.cpu_max_util = 0; /* by reservation (above) */
		j->r = qv_pl_place(&snap, &cfg, &vm, -1, &ch, &j->err);
		if (j->r < 0) {
			if (j->r == -ENOSPC) {
				qv_error_clear(&j->err);
				qv_error_set(&j->err, ENOSPC, QV_REASON_NO_SPACE, "%s", ch.reason);
			}
			goto out;
		}
		hi = ch.host;
		snprintf(p->reason, sizeof(p->reason), "%s", ch.reason);
	}
	json_object *a;
	snprintf(p->host, sizeof(p->host), "%s", s.hosts[hi].name);
	if (s.hrec[hi] && json_object_object_get_ex(s.hrec[hi], "address", &a))
		snprintf(p->address, sizeof(p->address), "%s", json_object_get_string(a));
out:
	cl_snap_free(&s);
}

static void place_free(struct place *p)
{
	json_object_put(p->spec);
	json_object_put(p->placement);
	json_object_put(p->ha_filter);
	free(p);
}

static void place_finish(struct cl_job *j, bool cancelled)
{
	struct place *p = j->data;
	struct qv_cluster *c = j->c;
	int r;

	if (cancelled) {
		qv_call_fail(j->call, ECANCELED, QV_REASON_CANCELLED, "qvisord is shutting down");
		return place_free(p);
	}
	if (j->r < 0) {
		if (j->r != -ENOSPC && j->r != -ENOENT && j->r != -EBUSY)
			qv_error_prefix(&j->err, "cluster store unavailable, VM %s not placed",
					p->name);
		log_info("Cluster: VM %s not placed: %s", p->name, j->err.message);
		qv_rpc_call_error(j->call, &j->err);
		return place_free(p);
	}
	json_object *ev = json_object_new_object();
	json_object_object_add(ev, "host", json_object_new_string(p->host));
	json_object_object_add(ev, "requested", json_object_new_string(p->want));
	json_object_object_add(ev, "reason", json_object_new_string(p->reason));
	qv_daemon_emit(c->d, p->name, "vm-placed", ev);
	log_info("Cluster: VM %s placed on %s: %s", p->name, p->host, p->reason);
	json_object_object_add(p->placement, "host", json_object_new_string(p->host));
	if (streq(p->host, c->d->cfg.cluster_host))
		r = cl_claim_and_define(c, j->call, p->spec, p->placement);
	else {
		json_object *params = json_object_new_object(), *extra = json_object_new_object();
		json_object_object_add(params, "spec", json_object_get(p->spec));
		json_object_object_add(params, "placement", json_object_get(p->placement));
		json_object_object_add(extra, "reason", json_object_new_string(p->reason));
		r = cl_forward(c, j->call, p->host, p->address, "vm.define", params, extra);
		json_object_put(params);
	}
	if (r < 0)
		qv_call_fail(j->call, -r, QV_REASON_INTERNAL, "cannot define VM %s: %s", p->name,
			     strerror(-r));
	place_free(p);
}

int cl_place_and_define(struct qv_cluster *c, qv_rpc_call *call, json_object *spec,
			json_object *placement)
{
	struct place *p = calloc(1, sizeof(*p));
	_cleanup_(vm_spec_freep) struct vm_spec *vs = NULL;
	struct qv_error err = {};

	if (!p)
		return -ENOMEM;
	p->spec = json_object_get(spec);
	p->placement = json_object_get(placement);
	if (vm_spec_from_json(spec, &vs, &err) < 0 || parse_placement(p, &err) < 0) {
		place_free(p);
		return qv_rpc_call_error(call, &err), 0;
	}
	snprintf(p->name, sizeof(p->name), "%s", vs->name);
	p->ha_filter = cl_ha_place_filter(c, vs);
	p->vcpus = vs->vcpus;
	p->mem_mib = vs->memory_mib;
	p->cpu_res_milli = vs->resources.cpu_reservation;
	p->mem_res_mib = vs->resources.mem_reservation >> 20;
	if (cl_job_push(c, c->eq, place_run, place_finish, call, p) < 0) {
		place_free(p);
		return -ENOMEM;
	}
	return 0;
}

int qv_cluster_define(struct qv_daemon *d, qv_rpc_call *call, json_object *params)
{
	static const char *const keys[] = { "spec", "placement", NULL };
	_cleanup_json_ json_object *spec = NULL;
	json_object *j, *placement = NULL;
	struct qv_error err = {};
	const char *name = NULL;

	if (json_check_keys(params, keys, "params", &err) < 0)
		return qv_rpc_call_error(call, &err), 0;
	if (!json_object_object_get_ex(params, "spec", &j) || !json_object_is_type(j, json_type_object))
		return qv_call_fail(call, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "params.spec is required");
	/* The placement section travels in the spec or next to it; the VM
	 * spec proper (qemu/spec.h) never sees it. */
	if (json_object_deep_copy(j, &spec, NULL) < 0)
		return -ENOMEM;
	if (json_object_object_get_ex(spec, "placement", &placement))
		placement = json_object_get(placement);
	json_object_object_del(spec, "placement");
	if (json_object_object_get_ex(params, "placement", &j)) {
		json_object_put(placement);
		placement = json_object_get(j);
	}
	_cleanup_json_ json_object *pl = placement;
	if (!d->cluster) {
		if (pl)
			return qv_call_fail(call, EOPNOTSUPP, QV_REASON_UNSUPPORTED,
					    "spec.placement needs a cluster: this qvisord runs "
					    "without --cluster-endpoints");
		return 1; /* plain local define */
	}
	if (json_object_object_get_ex(spec, "name", &j))
		name = json_object_get_string(j);
	if (name && qv_vm_find(d, name))
		return qv_call_fail(call, EEXIST, QV_REASON_CONFLICT,
				    "VM %s is already defined on this host", name);
	const char *want = !pl ? d->cfg.cluster_host
			       : json_object_object_get_ex(pl, "host", &j) ? json_object_get_string(j)
									   : "auto";
	if (!streq_ptr(want, d->cfg.cluster_host)) {
		/* Chosen elsewhere, or auto: never re-placed for a peer. */
		if (qv_rpc_client_tls_dn(qv_rpc_call_client(call)))
			return qv_call_fail(call, EINVAL, QV_REASON_INVALID_ARGUMENT,
					    "placement.host %.64s is not this host (%s)",
					    want ? want : "?", d->cfg.cluster_host);
		return cl_place_and_define(d->cluster, call, spec, pl);
	}
	return cl_claim_and_define(d->cluster, call, spec, pl);
}

int cl_place_record(qv_etcd *e, json_object *vm_rec, const char *exclude_host,
		    cl_host_ok_fn host_ok, char *ret_host, size_t host_size, char *ret_address,
		    size_t address_size, char *ret_reason, size_t reason_size,
		    struct qv_error *errp)
{
	const char *req[PL_MAX_STRS];
	char req_buf[PL_MAX_STRS][128];
	struct qv_pl_choice ch = {};
	struct qv_pl_cfg cfg;
	struct cl_snap s = {};
	json_object *pl, *lab, *a, *n;
	int nreq = 0, r;

	r = cl_snap_load(e, &s, errp);
	if (r < 0)
		goto out;
	struct qv_pl_snapshot snap = { .hosts = s.hosts, .nhosts = (int)s.nh, .vms = s.vms,
				       .nvms = (int)s.nv };
	for (size_t i = 0; host_ok && i < s.nh; i++)
		if (!s.hrec[i] || !host_ok(s.hrec[i], vm_rec))
			s.hosts[i].schedulable = false;
	json_object_object_get_ex(vm_rec, "name", &n);
	struct qv_pl_vm *vm = NULL;
	for (size_t i = 0; i < s.nv && !vm; i++)
		if (streq(s.vms[i].name, json_object_get_string(n)))
			vm = &s.vms[i];
	if (!vm) {
		r = qv_error_set(errp, ENOENT, QV_REASON_NOT_FOUND, "VM %s is not in the inventory",
				 json_object_get_string(n));
		goto out;
	}
	if (json_object_object_get_ex(vm_rec, "placement", &pl) &&
	    json_object_object_get_ex(pl, "labels", &lab) && json_object_is_type(lab, json_type_object)) {
		json_object_object_foreach(lab, k, val) {
			if (nreq == PL_MAX_STRS)
				break;
			snprintf(req_buf[nreq], sizeof(req_buf[0]), "%s=%s", k, json_object_get_string(val));
			req[nreq] = req_buf[nreq];
			nreq++;
		}
	}
	vm->requires = req;
	vm->nrequires = nreq;
	vm->host = -1; /* its owner is the host it leaves */
	qv_pl_cfg_defaults(&cfg);
	cfg.cpu_max_util = 0; /* as in place_run() */
	r = qv_pl_place(&snap, &cfg, vm, exclude_host ? qv_pl_host_index(&snap, exclude_host) : -1,
			&ch, errp);
	if (r < 0) {
		if (r == -ENOSPC) {
			qv_error_clear(errp);
			qv_error_set(errp, ENOSPC, QV_REASON_NO_SPACE, "%s", ch.reason);
		}
		goto out;
	}
	snprintf(ret_host, host_size, "%s", s.hosts[ch.host].name);
	snprintf(ret_reason, reason_size, "%s", ch.reason);
	ret_address[0] = '\0';
	if (s.hrec[ch.host] && json_object_object_get_ex(s.hrec[ch.host], "address", &a))
		snprintf(ret_address, address_size, "%s", json_object_get_string(a));
out:
	cl_snap_free(&s);
	return r;
}
