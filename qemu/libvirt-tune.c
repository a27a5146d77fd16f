/* SPDX-License-Identifier: MIT */
/* libvirt import: <cputune>, <memtune>, <blkiotune>, <numatune> into the
 * cgroup v2 limits, the way libvirt itself writes them on cgroup v2. */
#include "common/json.h"
#include "qemu/libvirt-internal.h"
#include "qemu/spec-internal.h"

/* libvirt's "unlimited" for memtune: VIR_DOMAIN_MEMORY_PARAM_UNLIMITED KiB. */
#define LV_MEM_UNLIMITED (9007199254740991ULL * 1024)

static void set_limit(struct lv_ctx *c, const char *key, int64_t v)
{
	json_object_object_add(lv_spec_obj(c, "limits"), key, json_object_new_int64(v));
}

/* A signed quota: -1 or any negative value means unlimited. */
static int read_quota(struct lv_ctx *c, xmlNodePtr el, int64_t *ret)
{
	char buf[32];
	const char *s = lv_text(el, buf, sizeof(buf));
	char *end;

	errno = 0;
	long long v = s ? strtoll(s, &end, 10) : 0;
	if (!s || !*s || errno || *end) {
		lv_fatal(c, el, "<%s> must be an integer", el->name);
		return -EINVAL;
	}
	*ret = v;
	return 0;
}

static int64_t spec_vcpus(struct lv_ctx *c)
{
	json_object *v;

	return json_object_object_get_ex(c->spec, "vcpus", &v) ? json_object_get_int64(v) : 1;
}

/* period/quota are per vCPU in libvirt; global_period/global_quota cover
 * the whole VM like qvisor's cpu.max. */
static void import_cpu_max(struct lv_ctx *c, xmlNodePtr ct)
{
	xmlNodePtr p = lv_child(ct, "period"), q = lv_child(ct, "quota");
	xmlNodePtr gp = lv_child(ct, "global_period"), gq = lv_child(ct, "global_quota");
	uint64_t period = 100000;
	int64_t quota = -1;

	if (gq || gp) {
		if (q)
			lv_refuse(c, q, "both <quota> and <global_quota>: qvisor has one cpu.max "
				  "for the whole VM");
		p = gp, q = gq;
	}
	if (p && lv_text_u64(c, p, &period) < 0)
		return;
	if (!q || read_quota(c, q, &quota) < 0 || quota < 0)
		return;
	if (q != gq)
		quota *= spec_vcpus(c);
	if (period < 1000 || period > 1000000 || quota < 1000 || quota > 64000000)
		return lv_refuse(c, q, "cpu quota %lld us per %llu us period is outside qvisor's "
				 "range (quota 1000..64000000, period 1000..1000000)",
				 (long long)quota, (unsigned long long)period);
	json_object *cm = json_object_new_object();
	json_object_object_add(cm, "quota_us", json_object_new_int64(quota));
	json_object_object_add(cm, "period_us", json_object_new_int64((int64_t)period));
	json_object_object_add(lv_spec_obj(c, "limits"), "cpu_max", cm);
}

static void import_cputune(struct lv_ctx *c, xmlNodePtr ct)
{
	xmlNodePtr s = lv_child(ct, "shares");
	uint64_t v;

	/* libvirt on cgroup v2 writes <shares> to cpu.weight as is. */
	if (s && lv_text_u64(c, s, &v) == 0) {
		if (v < 1 || v > 10000)
			lv_refuse(c, s, "shares %llu: cgroup v2 cpu.weight is 1..10000",
				  (unsigned long long)v);
		else
			set_limit(c, "cpu_weight", (int64_t)v);
	}
	import_cpu_max(c, ct);
}

static void import_memtune(struct lv_ctx *c, xmlNodePtr mt)
{
	xmlNodePtr h = lv_child(mt, "hard_limit"), s = lv_child(mt, "soft_limit");
	xmlNodePtr sw = lv_child(mt, "swap_hard_limit");
	uint64_t hard = 0, soft, swap;

	if (h && lv_size(c, h, 1024, &hard) == 0 && hard < LV_MEM_UNLIMITED)
		set_limit(c, "memory_max", (int64_t)hard);
	else
		hard = 0;
	if (s && lv_size(c, s, 1024, &soft) == 0 && soft < LV_MEM_UNLIMITED)
		set_limit(c, "memory_high", (int64_t)soft);
	if (!sw || lv_size(c, sw, 1024, &swap) < 0 || swap >= LV_MEM_UNLIMITED)
		return;
	/* libvirt's swap_hard_limit is memory+swap; cgroup v2 counts swap alone. */
	if (!hard || swap < hard)
		return lv_refuse(c, sw, "swap_hard_limit needs a hard_limit no larger than it");
	set_limit(c, "memory_swap_max", (int64_t)(swap - hard));
}

static void import_blkiotune(struct lv_ctx *c, xmlNodePtr bt)
{
	xmlNodePtr w = lv_child(bt, "weight");
	uint64_t v;

	if (!w || lv_text_u64(c, w, &v) < 0)
		return;
	if (v < 1 || v > 10000)
		return lv_refuse(c, w, "weight %llu: cgroup v2 io.weight is 1..10000",
				 (unsigned long long)v);
	json_object *disks;
	if (!json_object_object_get_ex(c->spec, "disks", &disks) ||
	    !json_object_array_length(disks))
		return lv_refuse(c, w, "a blkio weight needs a disk to carry it (qvisor's io "
				 "weight is per disk)");
	/* qvisor keeps io.weight per disk; the VM-wide weight goes on each. */
	for (size_t i = 0; i < json_object_array_length(disks); i++) {
		json_object *d = json_object_array_get_idx(disks, i), *lim;
		if (!json_object_object_get_ex(d, "limits", &lim)) {
			lim = json_object_new_object();
			json_object_object_add(d, "limits", lim);
		}
		json_object_object_add(lim, "weight", json_object_new_int64((int64_t)v));
	}
}

static void import_numatune(struct lv_ctx *c, xmlNodePtr nt)
{
	static const char *const modes[] = { "strict", NULL };
	xmlNodePtr m = lv_child(nt, "memory");

	if (!m)
		return;
	const char *mode = lv_attr(m, "mode");
	if (mode && !streq(mode, "strict"))
		return (void)lv_attr_oneof(c, m, "mode", modes);
	const char *set = lv_attr(m, "nodeset");
	if (!set)
		return lv_refuse(c, m, "only a strict nodeset maps to cpuset.mems");
	if (!spec_cpuset_valid(set))
		return lv_refuse(c, (xmlNodePtr)lv_attr_node(m, "nodeset"),
				 "nodeset '%s' is not a plain list of nodes and ranges", set);
	json_object_object_add(lv_spec_obj(c, "limits"), "cpuset_mems",
			       json_object_new_string(set));
}

void lv_import_tunes(struct lv_ctx *c, xmlNodePtr dom)
{
	xmlNodePtr n;

	if ((n = lv_child(dom, "cputune")))
		import_cputune(c, n);
	if ((n = lv_child(dom, "memtune")))
		import_memtune(c, n);
	if ((n = lv_child(dom, "blkiotune")))
		import_blkiotune(c, n);
	if ((n = lv_child(dom, "numatune")))
		import_numatune(c, n);
}
