/* SPDX-License-Identifier: MIT */
/* Renders "progress" notifications {op_id, done, total, rate} on stderr: a
 * bar redrawn in place on a TTY, otherwise at most one plain line a second. */
#include "cli/cli.h"
#include "cli/output.h"
#include "common/loop.h"

static bool drawn;
static uint64_t last_line_ms;

static int64_t get_int(json_object *p, const char *key)
{
	json_object *v;
	if (!json_object_object_get_ex(p, key, &v))
		return -1;
	return (int64_t)json_object_get_double(v); /* ints and doubles */
}

static void fmt_eta(double s, char *buf, size_t size)
{
	if (s < 0 || s > 99 * 3600)
		snprintf(buf, size, "--:--");
	else if (s >= 3600)
		snprintf(buf, size, "%d:%02d:%02d", (int)s / 3600, ((int)s / 60) % 60, (int)s % 60);
	else
		snprintf(buf, size, "%d:%02d", (int)s / 60, (int)s % 60);
}

void cli_progress_notify(qv_rpc_conn *c, const char *method, json_object *params, void *ud)
{
	if (!streq(method, "progress") || !params)
		return;
	int64_t done = get_int(params, "done"), total = get_int(params, "total");
	int64_t rate = get_int(params, "rate");
	double pct = total > 0 && done >= 0 ? 100.0 * (double)done / (double)total : 0;
	char eta[32];

	if (pct > 100)
		pct = 100;
	fmt_eta(rate > 0 && total >= done ? (double)(total - done) / (double)rate : -1, eta,
		sizeof(eta));
	double mbs = rate > 0 ? (double)rate / 1e6 : 0;
	if (isatty(STDERR_FILENO)) {
		char bar[31];
		int fill = (int)(pct * 30 / 100);
		for (int i = 0; i < 30; i++)
			bar[i] = i < fill ? '#' : '.';
		bar[30] = '\0';
		fprintf(stderr, "\r[%s] %5.1f%%  %8.1f MB/s  ETA %s ", bar, pct, mbs, eta);
		drawn = true;
	} else {
		uint64_t now = qv_now_ms();
		if (now - last_line_ms < 1000 && done != total)
			return;
		last_line_ms = now;
		char a[32], b[32];
		fprintf(stderr, "progress: %.1f%% (%s of %s) %.1f MB/s ETA %s\n", pct,
			out_size(done > 0 ? (uint64_t)done : 0, a, sizeof(a)),
			out_size(total > 0 ? (uint64_t)total : 0, b, sizeof(b)), mbs, eta);
	}
	fflush(stderr);
}

void cli_progress_finish(void)
{
	if (drawn)
		fputc('\n', stderr);
	drawn = false;
}
