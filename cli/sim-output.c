/* SPDX-License-Identifier: MIT */
/* Output of `qvisor sim`: text table, one JSON object, CSV time series
 * and an SVG plot of active hosts, power and SLA violation over the day. */
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "cli/sim-output.h"

void sim_print_table(const struct qv_sim_result *r, FILE *f)
{
	fprintf(f, "policy            %s (%d hosts, %d VMs, %d rounds)\n", r->policy, r->nhosts, r->nvms,
		r->rounds);
	fprintf(f, "energy            %.2f kWh (lower bound %.2f kWh)\n", r->energy_kwh, r->lower_bound_kwh);
	fprintf(f, "migrations        %ld\n", r->migrations);
	fprintf(f, "                  CloudSim (pooled)   paper (mean of ratios)\n");
	fprintf(f, "SLATAH            %-10.4f%%         %.4f%%\n", 100 * r->slatah, 100 * r->paper_slatah);
	fprintf(f, "PDM               %-10.4f%%         %.4f%%\n", 100 * r->pdm, 100 * r->paper_pdm);
	fprintf(f, "SLAV              %-10.5f%%         %.5f%%\n", 100 * r->slav, 100 * r->paper_slav);
	fprintf(f, "ESV               %-10.4f x1e-3      %.4f x1e-3\n", 1000 * r->esv, 1000 * r->paper_esv);
	fprintf(f, "overall SLA       %.4f%%\n", 100 * r->overall_sla);
	fprintf(f, "host shutdowns    %ld (mean time before shutdown %.0f s)\n", r->shutdowns,
		r->mean_time_before_shutdown_s);
	fprintf(f, "decision time     %.3f ms mean, %.3f ms max per round\n", r->decision_ms_mean,
		r->decision_ms_max);
	fprintf(f, "VMs retired at 0%% %ld\n", r->vms_finished);
	fprintf(f, "wall time         %.3f s\n", r->wall_s);
	for (int i = 0; i < r->nmoves; i++)
		fprintf(f, "%s%9.1f s  VM %d: %s\n", i ? "" : "first moves:\n", r->moves[i].t,
			r->moves[i].m.vm, r->moves[i].m.reason);
}

void sim_print_json(const struct qv_sim_result *r, const struct sim_opts *o, FILE *f)
{
	json_object *j = json_object_new_object();
#define D(k, v) json_object_object_add(j, k, json_object_new_double(v))
#define I(k, v) json_object_object_add(j, k, json_object_new_int64(v))
	json_object_object_add(j, "policy", json_object_new_string(r->policy));
	json_object_object_add(j, "trace", json_object_new_string(o->trace));
	I("seed", (int64_t)o->seed);
	json_object_object_add(j, "memory_aware", json_object_new_boolean(o->memory_aware));
	json_object_object_add(j, "balancer", json_object_new_boolean(o->balancer));
	I("hosts", r->nhosts);
	I("vms", r->nvms);
	I("rounds", r->rounds);
	D("energy_kwh", r->energy_kwh);
	D("slatah", r->slatah);
	D("pdm", r->pdm);
	D("slav", r->slav);
	D("esv", r->esv);
	I("migrations", r->migrations);
	D("paper_slatah", r->paper_slatah);
	D("paper_pdm", r->paper_pdm);
	D("paper_slav", r->paper_slav);
	D("paper_esv", r->paper_esv);
	D("overall_sla", r->overall_sla);
	I("host_shutdowns", r->shutdowns);
	D("mean_time_before_shutdown_s", r->mean_time_before_shutdown_s);
	D("decision_ms_mean", r->decision_ms_mean);
	D("decision_ms_max", r->decision_ms_max);
	D("lower_bound_kwh", r->lower_bound_kwh);
	I("vms_retired", r->vms_finished);
	D("wall_s", r->wall_s);
	json_object *moves = json_object_new_array();
	for (int i = 0; i < r->nmoves; i++) {
		json_object *m = json_object_new_object();
		json_object_object_add(m, "t", json_object_new_double(r->moves[i].t));
		json_object_object_add(m, "vm", json_object_new_int(r->moves[i].m.vm));
		json_object_object_add(m, "from", json_object_new_int(r->moves[i].m.from));
		json_object_object_add(m, "to", json_object_new_int(r->moves[i].m.to));
		json_object_object_add(m, "why", json_object_new_string(r->moves[i].m.why == QV_WHY_OVERLOAD ? "overload" : "underload"));
		json_object_object_add(m, "reason", json_object_new_string(r->moves[i].m.reason));
		json_object_array_add(moves, m);
	}
	if (r->nmoves)
		json_object_object_add(j, "moves", moves);
	else
		json_object_put(moves);
#undef D
#undef I
	fprintf(f, "%s\n", json_object_to_json_string_ext(j, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(j);
}

int sim_write_csv(const struct qv_sim_result *r, const char *path)
{
	FILE *f = fopen(path, "we");
	if (!f) {
		fprintf(stderr, "qvisor: sim: %s: %s\n", path, strerror(errno));
		return -errno;
	}
	fprintf(f, "time_s,active_hosts,power_w,sla_violating_host_share,migrations\n");
	for (int i = 0; i < r->nseries; i++) {
		const struct qv_sim_point *p = &r->series[i];
		fprintf(f, "%.1f,%d,%.2f,%.5f,%d\n", p->t, p->active_hosts, p->power_w, p->sla_hosts,
			p->migrations);
	}
	if (fclose(f) != 0) {
		fprintf(stderr, "qvisor: sim: %s: %s\n", path, strerror(errno));
		return -EIO;
	}
	return 0;
}

static void polyline(FILE *f, const struct qv_sim_result *r, int panel, const char *color, double max,
		     double (*get)(const struct qv_sim_point *))
{
	const double x0 = 60, w = 700, h = 120, y0 = 30 + panel * 160;
	fprintf(f, "<polyline fill='none' stroke='%s' stroke-width='1.2' points='", color);
	for (int i = 0; i < r->nseries; i++) {
		double x = x0 + w * r->series[i].t / 86400, v = get(&r->series[i]) / (max > 0 ? max : 1);
		fprintf(f, "%.1f,%.1f ", x, y0 + h - h * v);
	}
	fprintf(f, "'/>\n");
}

static double get_hosts(const struct qv_sim_point *p) { return p->active_hosts; }
static double get_power(const struct qv_sim_point *p) { return p->power_w; }
static double get_sla(const struct qv_sim_point *p) { return p->sla_hosts; }

int sim_write_svg(const struct qv_sim_result *r, const char *path)
{
	FILE *f = fopen(path, "we");
	if (!f) {
		fprintf(stderr, "qvisor: sim: %s: %s\n", path, strerror(errno));
		return -errno;
	}
	double mh = 1, mp = 1, ms = 0.01;
	for (int i = 0; i < r->nseries; i++) {
		mh = r->series[i].active_hosts > mh ? r->series[i].active_hosts : mh;
		mp = r->series[i].power_w > mp ? r->series[i].power_w : mp;
		ms = r->series[i].sla_hosts > ms ? r->series[i].sla_hosts : ms;
	}
	fprintf(f, "<svg xmlns='http://www.w3.org/2000/svg' width='800' height='520' "
		   "font-family='sans-serif' font-size='12'>\n<rect width='800' height='520' fill='white'/>\n");
	fprintf(f, "<text x='60' y='18'>%s: %.2f kWh, %ld migrations, SLAV %.5f%%</text>\n", r->policy,
		r->energy_kwh, r->migrations, 100 * r->slav);
	const char *label[] = { "active hosts (max %.0f)", "power W (max %.0f)",
				"share of active hosts short of CPU (max %.3f)" };
	double maxes[] = { mh, mp, ms };
	for (int p = 0; p < 3; p++) {
		double y0 = 30 + p * 160;
		fprintf(f, "<rect x='60' y='%.0f' width='700' height='120' fill='none' stroke='#999'/>\n", y0);
		fprintf(f, "<text x='64' y='%.0f'>", y0 + 14);
		fprintf(f, label[p], maxes[p]);
		fprintf(f, "</text>\n");
	}
	for (int hr = 0; hr <= 24; hr += 6)
		fprintf(f, "<text x='%.0f' y='510'>%dh</text>\n", 55 + 700.0 * hr / 24, hr);
	polyline(f, r, 0, "#1f77b4", mh, get_hosts);
	polyline(f, r, 1, "#d62728", mp, get_power);
	polyline(f, r, 2, "#2ca02c", ms, get_sla);
	fprintf(f, "</svg>\n");
	if (fclose(f) != 0)
		return -EIO;
	return 0;
}
