/* SPDX-License-Identifier: MIT */
/* Placement filters and scorers: each refusal is one short phrase naming
 * the figures ("memory 900/1024 MiB reserved, needs 256 MiB"), each
 * choice says why that host won. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "sched/placement-internal.h"

static bool has_label(const struct qv_pl_host *h, const char *req)
{
	const char *eq = strchr(req, '=');
	size_t klen = eq ? (size_t)(eq - req) : strlen(req);
	for (int i = 0; i < h->nlabels; i++) {
		const char *l = h->labels[i];
		if (!l)
			continue;
		if (eq ? strcmp(l, req) == 0 : strncmp(l, req, klen) == 0 && (l[klen] == '=' || !l[klen]))
			return true;
	}
	return false;
}

/* Host's load without vm (when pl counts vm there). */
static struct qv_pl_load load_without(const qv_pl *pl, const struct qv_pl_vm *vm, int host)
{
	struct qv_pl_load l = pl->load[host];
	if (qv_pl_host_of(pl, vm) != host)
		return l;
	l.cpu_res_milli -= vm->cpu_res_milli;
	l.mem_res_mib -= vm->mem_res_mib;
	l.mem_alloc_mib -= pl_vm_footprint(vm);
	l.cpu_used_milli -= pl_vm_cpu(pl, vm);
	l.mem_used_mib = l.mem_used_mib > vm->mem_used_mib ? l.mem_used_mib - vm->mem_used_mib : 0;
	l.nvms--;
	return l;
}

static bool refuse(char *buf, size_t len, const char *fmt, ...) _printf_(3, 4);
static bool refuse(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;
	if (!buf || !len)
		return false;
	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
	return false;
}

static double cores(double milli)
{
	return milli / 1000.0;
}

static bool groups_fit(qv_pl *pl, const struct qv_pl_vm *vm, int host, char *buf, size_t len)
{
	for (int i = 0; i < vm->nanti_affinity; i++) {
		int g = pl_group_find(pl, PL_ANTI, vm->anti_affinity[i], false);
		if (pl_group_count(pl, g, host, vm) == 0)
			continue;
		const struct qv_pl_vm *ex = NULL;
		for (int k = 0; k < pl->groups[g].nat; k++)
			if (pl->groups[g].at[k].host == host)
				ex = pl->groups[g].at[k].example;
		if (ex && ex != vm && ex->name && qv_pl_host_of(pl, ex) == host)
			return refuse(buf, len, "anti-affinity group %s: %s runs there", vm->anti_affinity[i],
				      ex->name);
		return refuse(buf, len, "anti-affinity group %s: a member runs there", vm->anti_affinity[i]);
	}
	for (int i = 0; i < vm->naffinity; i++) {
		int g = pl_group_find(pl, PL_AFF, vm->affinity[i], false);
		if (g < 0 || pl_group_count(pl, g, host, vm) > 0)
			continue;
		/* members elsewhere (not counting vm itself)? */
		int elsewhere = -1;
		for (int k = 0; k < pl->groups[g].nat && elsewhere < 0; k++) {
			int h = pl->groups[g].at[k].host;
			if (pl_group_count(pl, g, h, vm) > 0)
				elsewhere = h;
		}
		if (elsewhere >= 0)
			return refuse(buf, len, "affinity group %s: its members run on %s", vm->affinity[i],
				      pl->snap->hosts[elsewhere].name);
	}
	return true;
}

bool qv_pl_fits(qv_pl *pl, const struct qv_pl_vm *vm, int host, int exclude_host, char *buf,
		size_t len)
{
	const struct qv_pl_host *h = &pl->snap->hosts[host];
	if (buf && len)
		buf[0] = 0;
	if (!h->schedulable)
		return refuse(buf, len, "unschedulable");
	if (host == exclude_host)
		return refuse(buf, len, "excluded");
	if (pl->blocked[host][0])
		return refuse(buf, len, "%s", pl->blocked[host]);
	for (int i = 0; i < vm->nrequires; i++)
		if (vm->requires[i] && !has_label(h, vm->requires[i]))
			return refuse(buf, len, "lacks label %s", vm->requires[i]);
	struct qv_pl_load l = load_without(pl, vm, host);
	double cpu_cap = (double)h->cpu_milli - h->cpu_reserved_milli;
	double mem_cap = (double)h->mem_mib - (double)h->mem_reserved_mib;
	if (vm->cpu_res_milli && l.cpu_res_milli + vm->cpu_res_milli > cpu_cap)
		return refuse(buf, len, "cpu %.3g/%.3g cores reserved, needs %.3g", cores(l.cpu_res_milli),
			      cores(cpu_cap > 0 ? cpu_cap : 0), cores(vm->cpu_res_milli));
	if (vm->mem_res_mib && l.mem_res_mib + vm->mem_res_mib > mem_cap)
		return refuse(buf, len, "memory %llu/%.0f MiB reserved, needs %llu MiB",
			      (unsigned long long)l.mem_res_mib, mem_cap > 0 ? mem_cap : 0,
			      (unsigned long long)vm->mem_res_mib);
	uint64_t fp = pl_vm_footprint(vm);
	if (pl->cfg.mem_overcommit > 0 && l.mem_alloc_mib + fp > mem_cap * pl->cfg.mem_overcommit)
		return refuse(buf, len, "memory %llu/%.0f MiB allocated to VMs, needs %llu MiB",
			      (unsigned long long)l.mem_alloc_mib,
			      mem_cap > 0 ? mem_cap * pl->cfg.mem_overcommit : 0, (unsigned long long)fp);
	double add = pl_vm_cpu(pl, vm);
	if (pl->cfg.cpu_max_util > 0 && cpu_cap > 0 &&
	    l.cpu_used_milli + add > cpu_cap * pl->cfg.cpu_max_util + 1e-9)
		return refuse(buf, len, "cpu in use %.3g/%.3g cores, +%.3g would be %.0f%% (max %.0f%%)",
			      cores(l.cpu_used_milli), cores(cpu_cap), cores(add),
			      100 * (l.cpu_used_milli + add) / cpu_cap, 100 * pl->cfg.cpu_max_util);
	if (cpu_cap <= 0 || mem_cap <= 0)
		return refuse(buf, len, "no capacity left after the host reserve");
	return groups_fit(pl, vm, host, buf, len);
}

/* --- scorers ------------------------------------------------------------ */

static double share(double x, double cap)
{
	return cap > 0 ? x / cap : 1;
}

/* CPU and memory shares after adding vm: the larger of use and reservations. */
static void shares_after(const qv_pl *pl, const struct qv_pl_host *h, const struct qv_pl_load *l,
			 const struct qv_pl_vm *vm, double *cpu, double *mem)
{
	double cap = (double)h->cpu_milli - h->cpu_reserved_milli;
	double mcap = (double)h->mem_mib - (double)h->mem_reserved_mib;
	double used = l->cpu_used_milli + pl_vm_cpu(pl, vm), res = l->cpu_res_milli + vm->cpu_res_milli;
	*cpu = share(fmax(used, res), cap);
	*mem = share((double)l->mem_alloc_mib + pl_vm_footprint(vm), mcap);
}

static double generic_power(const struct qv_pl_host *h, double u)
{
	if (h->power)
		return qv_pol_power_at(h->power, u);
	double peak = 100 + 25 * cores(h->cpu_milli); /* watts: a generic server */
	return peak * (0.6 + 0.4 * fmin(fmax(u, 0), 1));
}

static double score_host(const qv_pl *pl, int host, const struct qv_pl_load *l,
			 const struct qv_pl_vm *vm, char *why, size_t len)
{
	const struct qv_pl_host *h = &pl->snap->hosts[host];
	double cpu, mem;
	shares_after(pl, h, l, vm, &cpu, &mem);
	switch (pl->cfg.score) {
	case QV_PL_SPREAD:
		snprintf(why, len, "least loaded after placement (cpu %.0f%%, memory %.0f%%)", 100 * cpu,
			 100 * mem);
		return 1 - fmax(cpu, mem);
	case QV_PL_PACK:
		snprintf(why, len, "fullest host that fits (cpu %.0f%%, memory %.0f%% after)", 100 * cpu,
			 100 * mem);
		return fmax(cpu, mem);
	case QV_PL_POWER: {
		double cap = (double)h->cpu_milli - h->cpu_reserved_milli;
		double before = l->nvms ? generic_power(h, share(l->cpu_used_milli, cap)) : 0;
		double dw = generic_power(h, cpu) - before;
		snprintf(why, len, "least added power: +%.1f W%s (cpu %.0f%% after)", dw,
			 l->nvms ? "" : ", switches the host on", 100 * cpu);
		/* best fit among equal watts: the fuller host */
		return -dw + 1e-6 * fmax(cpu, mem);
	}
	case QV_PL_CUSTOM: {
		double s = pl->cfg.score_fn ? pl->cfg.score_fn(h, l, vm, pl->cfg.score_opaque) : 0;
		snprintf(why, len, "best score %.4g (cpu %.0f%%, memory %.0f%% after)", s, 100 * cpu,
			 100 * mem);
		return s;
	}
	}
	return 0;
}

/* Append "name: phrase; " to out, or count it as left off when full. */
static void add_refusal(char *out, size_t len, const char *host, const char *why, int *left)
{
	size_t n = strlen(out), need = strlen(host) + strlen(why) + 4;
	if (*left || n + need + 16 >= len) {
		(*left)++;
		return;
	}
	snprintf(out + n, len - n, "%s%s: %s", n ? "; " : "", host, why);
}

int qv_pl_choose(qv_pl *pl, const struct qv_pl_vm *vm, int exclude_host, struct qv_pl_choice *ret,
		 struct qv_error *errp)
{
	const struct qv_pl_snapshot *s = pl->snap;
	char why[160], best_why[160] = "", refusals[480] = "";
	int best = -1, nfit = 0, left = 0;
	double best_score = -INFINITY;

	/* name order: deterministic ties and refusal lists */
	for (int k = 0; k < s->nhosts; k++) {
		int h = pl->by_name[k];
		if (!qv_pl_fits(pl, vm, h, exclude_host, why, sizeof(why))) {
			add_refusal(refusals, sizeof(refusals), s->hosts[h].name, why, &left);
			continue;
		}
		nfit++;
		struct qv_pl_load l = load_without(pl, vm, h);
		double sc = score_host(pl, h, &l, vm, why, sizeof(why));
		if (sc > best_score || best < 0) {
			best = h;
			best_score = sc;
			memcpy(best_why, why, sizeof(why));
		}
	}
	struct qv_pl_choice c = { .host = best, .score = best_score, .nfit = nfit };
	if (best < 0) {
		char more[32] = "";
		if (left)
			snprintf(more, sizeof(more), " (+%d more)", left);
		snprintf(c.reason, sizeof(c.reason), "no host can take %s: %s%s", vm->name ? vm->name : "the VM",
			 s->nhosts ? refusals : "no hosts", more);
		if (ret)
			*ret = c;
		return qv_error_set(errp, ENOSPC, QV_REASON_NO_SPACE, "no host can take %s: %s%s",
				    vm->name ? vm->name : "the VM", s->nhosts ? refusals : "no hosts", more);
	}
	snprintf(c.reason, sizeof(c.reason), "%s: %s; %d of %d hosts fit", s->hosts[best].name, best_why,
		 nfit, s->nhosts);
	if (ret)
		*ret = c;
	return 0;
}
