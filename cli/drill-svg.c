/* SPDX-License-Identifier: MIT */
/* The drill chart, hand-written SVG: remaining bytes (MiB) over time since
 * the start of each migration, one polyline per migration, axes with ticks,
 * a legend with each migration's pass/fail and the drill verdict. */
#include <string.h>

#include "cli/drill.h"

#define W 960
#define PLOT_W 600
#define PLOT_H 360
#define X0 70
#define Y0 40

static const char *const colours[] = { "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
				       "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf" };

static json_object *get(json_object *o, const char *k)
{
	json_object *v;
	return o && json_object_object_get_ex(o, k, &v) ? v : NULL;
}

static void xml_text(FILE *f, const char *s)
{
	for (; s && *s; s++) {
		switch (*s) {
		case '<': fputs("&lt;", f); break;
		case '>': fputs("&gt;", f); break;
		case '&': fputs("&amp;", f); break;
		case '"': fputs("&quot;", f); break;
		default: fputc(*s, f);
		}
	}
}

/* A "nice" axis step for range max over about n ticks. */
static double nice_step(double max, int n)
{
	double raw = max / n, p = 1, m;

	while (p * 10 <= raw)
		p *= 10;
	while (p > raw && p > 1e-6)
		p /= 10;
	m = raw / p;
	return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
}

static double round_up(double x, double step)
{
	double r = step;

	while (r < x - 1e-9)
		r += step;
	return r;
}

static bool all_pass(json_object *m)
{
	json_object *ex = get(m, "expectations");

	for (size_t i = 0; ex && i < json_object_array_length(ex); i++)
		if (!json_object_get_boolean(get(json_object_array_get_idx(ex, i), "pass")))
			return false;
	return true;
}

static void axes(FILE *f, double tmax, double ymax)
{
	double xs = nice_step(tmax, 8), ys = nice_step(ymax, 6);

	fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" "
		"stroke=\"#333\"/>\n", X0, Y0, PLOT_W, PLOT_H);
	for (double x = 0; x <= tmax + 1e-9; x += xs) {
		double px = X0 + x / tmax * PLOT_W;
		fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#ddd\"/>"
			"<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%g</text>\n",
			px, Y0, px, Y0 + PLOT_H, px, Y0 + PLOT_H + 16, x);
	}
	for (double y = 0; y <= ymax + 1e-9; y += ys) {
		double py = Y0 + PLOT_H - y / ymax * PLOT_H;
		fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#ddd\"/>"
			"<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n",
			X0, py, X0 + PLOT_W, py, X0 - 6, py + 4, y);
	}
	fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">time since migration start "
		"(s)</text>\n", X0 + PLOT_W / 2, Y0 + PLOT_H + 36);
	fprintf(f, "<text transform=\"translate(18,%d) rotate(-90)\" text-anchor=\"middle\">"
		"remaining (MiB)</text>\n", Y0 + PLOT_H / 2);
}

int drill_svg_write(json_object *rep, FILE *f)
{
	json_object *ms = get(rep, "migrations");
	size_t n = ms ? json_object_array_length(ms) : 0;
	double tmax = 1, ymax = 1;
	int h = Y0 + PLOT_H + 60;

	for (size_t i = 0; i < n; i++) {
		json_object *s = get(json_object_array_get_idx(ms, i), "series");
		for (size_t k = 0; s && k < json_object_array_length(s); k++) {
			json_object *p = json_object_array_get_idx(s, k);
			double t = json_object_get_double(json_object_array_get_idx(p, 0)) / 1000.0;
			double y = json_object_get_double(json_object_array_get_idx(p, 1)) / 1048576.0;
			tmax = t > tmax ? t : tmax;
			ymax = y > ymax ? y : ymax;
		}
	}
	tmax = round_up(tmax, nice_step(tmax, 8));
	ymax = round_up(ymax, nice_step(ymax, 6));
	if (Y0 + 40 + (int)n * 18 + 20 > h)
		h = Y0 + 40 + (int)n * 18 + 20;
	fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
		"viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"12\">\n"
		"<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n", W, h, W, h);
	fprintf(f, "<text x=\"%d\" y=\"24\" font-size=\"16\">drill ", X0);
	xml_text(f, json_object_get_string(get(rep, "drill")));
	fprintf(f, ": %s (%d/%d expectations passed)</text>\n",
		json_object_get_boolean(get(rep, "passed")) ? "PASSED" : "FAILED",
		json_object_get_int(get(rep, "expectations_total")) -
			json_object_get_int(get(rep, "expectations_failed")),
		json_object_get_int(get(rep, "expectations_total")));
	axes(f, tmax, ymax);
	for (size_t i = 0; i < n; i++) {
		json_object *m = json_object_array_get_idx(ms, i), *s = get(m, "series");
		const char *col = colours[i % ARRAY_SIZE(colours)];
		bool ok = all_pass(m);
		int ly = Y0 + 10 + (int)i * 18, lx = X0 + PLOT_W + 20;

		fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\"%s points=\"",
			col, ok ? "" : " stroke-dasharray=\"6,3\"");
		for (size_t k = 0; s && k < json_object_array_length(s); k++) {
			json_object *p = json_object_array_get_idx(s, k);
			double t = json_object_get_double(json_object_array_get_idx(p, 0)) / 1000.0;
			double y = json_object_get_double(json_object_array_get_idx(p, 1)) / 1048576.0;
			fprintf(f, "%s%.1f,%.1f", k ? " " : "", X0 + t / tmax * PLOT_W,
				Y0 + PLOT_H - y / ymax * PLOT_H);
		}
		fprintf(f, "\"/>\n<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" "
			"stroke-width=\"3\"/>\n<text x=\"%d\" y=\"%d\" fill=\"%s\">#%zu ",
			lx, ly - 4, lx + 20, ly - 4, col, lx + 26, ly, ok ? "#000" : "#c00", i);
		xml_text(f, json_object_get_string(get(m, "step_name")));
		fprintf(f, " %c→%c %s: %s</text>\n", 'A' + json_object_get_int(get(m, "from")),
			'A' + json_object_get_int(get(m, "to")),
			json_object_get_string(get(m, "result")), ok ? "pass" : "FAIL");
	}
	fputs("</svg>\n", f);
	return ferror(f) ? -EIO : 0;
}
