/* SPDX-License-Identifier: MIT */
/* qvisor top [--interval S] [--count N] [NAME...]: per-VM cgroup usage
 * (vm.stats) refreshed every interval: CPU% of one CPU from cpu.stat
 * usage_usec deltas, memory.current, pids, throttling and PSI some avg10;
 * network and disk rates from the resource loop's collector (vm.history). */
#include <getopt.h>
#include <time.h>

#include "cli/output.h"
#include "cli/verbs.h"

int verb_top(struct cli_ctx *ctx, int argc, char **argv);

static int64_t get_i64(json_object *o, const char *a, const char *b)
{
	json_object *x, *y;
	if (!json_object_object_get_ex(o, a, &x) || !json_object_object_get_ex(x, b, &y))
		return -1;
	return json_object_get_int64(y);
}

static double psi10(json_object *o, const char *res)
{
	json_object *p, *r, *s, *v;
	if (!json_object_object_get_ex(o, "pressure", &p) || !json_object_object_get_ex(p, res, &r) ||
	    !json_object_object_get_ex(r, "some", &s) || !json_object_object_get_ex(s, "avg10", &v))
		return -1;
	return json_object_get_double(v);
}

static void fmt_psi(double v, char *buf, size_t size)
{
	if (v < 0)
		snprintf(buf, size, "-");
	else
		snprintf(buf, size, "%.2f", v);
}

struct prev {
	int64_t usage, time_ms;
};

/* The resource loop's last point of name (vm.history, max 1): network and
 * disk rates of the last interval, or "-" when the loop does not watch it.
 * The point goes into res (for --json) as "io". */
static void io_cells(struct cli_ctx *ctx, const char *name, json_object *res, char cells[4][16])
{
	static const char *const keys[4] = { "net_rx_bps", "net_tx_bps", "disk_read_bps",
					     "disk_write_bps" };
	json_object *params = cli_params_name(name), *hist = NULL, *pts, *v;
	struct qv_error err = {};

	for (int k = 0; k < 4; k++)
		snprintf(cells[k], 16, "-");
	json_object_object_add(params, "max", json_object_new_int(1));
	if (qv_rpc_invoke(ctx->conn, "vm.history", params, CLI_CALL_TIMEOUT_MS, &hist, &err) < 0)
		return;
	if (json_object_object_get_ex(hist, "points", &pts) && json_object_array_length(pts) == 1) {
		json_object *p = json_object_array_get_idx(pts, 0);
		for (int k = 0; k < 4; k++)
			if (json_object_object_get_ex(p, keys[k], &v)) {
				out_size((uint64_t)json_object_get_double(v), cells[k], 12);
				strcat(cells[k], "/s");
			}
		if (res)
			json_object_object_add(res, "io", json_object_get(p));
	}
	json_object_put(hist);
}

static int one_round(struct cli_ctx *ctx, char **names, size_t n, struct prev *prev)
{
	static const char *const hdr[] = { "NAME", "CPU%", "MEMORY", "PIDS", "THROTTLED",
					   "PSI-CPU", "PSI-MEM", "PSI-IO", "NET-RX", "NET-TX",
					   "DISK-RD", "DISK-WR" };
	out_table *t = out_table_new(ARRAY_SIZE(hdr), hdr);
	json_object *all = json_object_new_array();
	char errors[2048] = "";

	for (size_t i = 0; i < n; i++) {
		json_object *res = NULL;
		struct qv_error err = {};
		char cpu[16] = "-", mem[32] = "-", pids[16] = "-", thr[16] = "-", pc[16], pm[16],
		     pi[16];
		char io[4][16];
		int r = qv_rpc_invoke(ctx->conn, "vm.stats", cli_params_name(names[i]),
				      CLI_CALL_TIMEOUT_MS, &res, &err);
		io_cells(ctx, names[i], r < 0 ? NULL : res, io);
		if (r < 0) {
			const char *const cells[] = { names[i], "-", "-", "-", "-", "-", "-", "-",
						      io[0], io[1], io[2], io[3] };
			size_t l = strlen(errors);
			snprintf(errors + l, sizeof(errors) - l, "%s: %s\n", names[i], err.message);
			out_table_add(t, cells);
			continue;
		}
		int64_t usage = get_i64(res, "cpu", "usage_usec");
		json_object *tm;
		int64_t now = json_object_object_get_ex(res, "time_ms", &tm) ? json_object_get_int64(tm)
									   : 0;
		if (prev[i].time_ms && now > prev[i].time_ms && usage >= prev[i].usage)
			snprintf(cpu, sizeof(cpu), "%.1f",
				 (double)(usage - prev[i].usage) / 10.0 / (double)(now - prev[i].time_ms));
		prev[i].usage = usage;
		prev[i].time_ms = now;
		int64_t cur = get_i64(res, "memory", "current");
		if (cur >= 0)
			out_size((uint64_t)cur, mem, sizeof(mem));
		int64_t p = get_i64(res, "pids", "current");
		if (p >= 0)
			snprintf(pids, sizeof(pids), "%lld", (long long)p);
		int64_t th = get_i64(res, "cpu", "nr_throttled");
		if (th >= 0)
			snprintf(thr, sizeof(thr), "%lld", (long long)th);
		fmt_psi(psi10(res, "cpu"), pc, sizeof(pc));
		fmt_psi(psi10(res, "memory"), pm, sizeof(pm));
		fmt_psi(psi10(res, "io"), pi, sizeof(pi));
		const char *const cells[] = { names[i], cpu, mem, pids, thr, pc, pm, pi,
					      io[0], io[1], io[2], io[3] };
		out_table_add(t, cells);
		json_object_array_add(all, res);
	}
	if (ctx->json)
		out_json(all, stdout);
	else
		out_table_print(t, stdout);
	fputs(errors, stderr);
	fflush(stdout);
	json_object_put(all);
	out_table_free(t);
	return EXIT_OK;
}

int verb_top(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "interval", required_argument, NULL, 'i' },
		{ "count", required_argument, NULL, 'n' },
		{}
	};
	_cleanup_strv_free_ char **names = NULL;
	_cleanup_free_ struct prev *prev = NULL;
	double interval = 2;
	long count = 0;
	size_t n;
	int c, r;

	while ((c = getopt_long(argc, argv, "i:n:", opts, NULL)) != -1) {
		switch (c) {
		case 'i':
			interval = atof(optarg);
			if (interval < 0.1 || interval > 3600)
				return cli_usage_error(ctx, "invalid --interval \"%s\"", optarg);
			break;
		case 'n':
			count = atol(optarg);
			if (count < 1)
				return cli_usage_error(ctx, "invalid --count \"%s\"", optarg);
			break;
		default:
			return cli_usage_error(ctx, "invalid option");
		}
	}
	if ((r = cli_connect(ctx)) != EXIT_OK)
		return r;
	if (optind < argc) {
		n = (size_t)(argc - optind);
		names = calloc(n + 1, sizeof(char *));
		for (size_t i = 0; names && i < n; i++)
			names[i] = strdup(argv[optind + (int)i]);
	} else if ((r = cli_vm_names(ctx, true, &names, &n)) != EXIT_OK)
		return r;
	prev = calloc(n + 1, sizeof(*prev));
	if (!names || !prev)
		return EXIT_FAILED;
	for (long i = 0; count == 0 || i < count; i++) {
		if (i) {
			struct timespec ts = { (time_t)interval,
					       (long)((interval - (long)interval) * 1e9) };
			nanosleep(&ts, NULL);
			if (!ctx->json)
				printf("\n");
		}
		one_round(ctx, names, n, prev);
	}
	return EXIT_OK;
}
