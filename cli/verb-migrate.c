/* SPDX-License-Identifier: MIT */
/* qvisor migrate VM --to URI: the client-coordinated live migration
 * (docs/migration.md): prepare on the destination, perform on the source
 * with a live progress line, finish on the destination, confirm on the
 * source. Any failure cancels both sides; the source keeps running. */
#include <getopt.h>
#include <unistd.h>

#include "cli/verb-migrate.h"
#include "cli/verbs.h"

struct mig_cli {
	bool tty;
	bool quiet;
	bool line_open;
	const char *name;
	qv_rpc_conn *fault;      /* second source connection for cancel_after */
	uint64_t cancel_after_ms;
	bool cancelled;
};

static json_object *name_params(const char *name)
{
	json_object *p = json_object_new_object();
	json_object_object_add(p, "name", json_object_new_string(name));
	return p;
}

/* Best effort: say what happened but do not mask the first error. */
static void try_call(qv_rpc_conn *c, const char *what, const char *method, json_object *params)
{
	struct qv_error err = {};

	if (qv_rpc_invoke(c, method, params, 60000, NULL, &err) < 0)
		fprintf(stderr, "qvisor: migrate: %s: %s (%s)\n", what, err.message, err.reason);
}

static void progress_line(qv_rpc_conn *c, const char *method, json_object *p, void *ud)
{
	struct mig_cli *mc = ud;
	json_object *v;
	const char *type;

	if (!streq(method, "migrate.progress"))
		return;
	type = json_object_object_get_ex(p, "type", &v) ? json_object_get_string(v) : "";
	if (mc->fault && mc->cancel_after_ms && !mc->cancelled && streq(type, "progress") &&
	    json_object_object_get_ex(p, "elapsed_ms", &v) &&
	    (uint64_t)json_object_get_int64(v) >= mc->cancel_after_ms) {
		/* Drill fault: cancel through another connection (this one is
		 * inside its wait). */
		mc->cancelled = true;
		try_call(mc->fault, "drill cancel", "migrate.cancel", name_params(mc->name));
	}
	if (mc->quiet)
		return;
	if (streq(type, "decision")) {
		if (mc->line_open)
			fputc('\n', stderr);
		mc->line_open = false;
		fprintf(stderr, "  decision: %s %s: %s\n",
			json_object_object_get_ex(p, "action", &v) ? json_object_get_string(v) : "?",
			json_object_object_get_ex(p, "value", &v) ? json_object_get_string(v) : "",
			json_object_object_get_ex(p, "reason", &v) ? json_object_get_string(v) : "");
		return;
	}
	if (json_object_object_get_ex(p, "status", &v) &&
	    strncmp(json_object_get_string(v), "mirror", 6) == 0) {
		json_object *sto = NULL, *x;
		double off = 0, len = 0, el = 0;
		if (json_object_object_get_ex(p, "storage", &sto)) {
			off = json_object_object_get_ex(sto, "offset", &x) ? json_object_get_double(x) : 0;
			len = json_object_object_get_ex(sto, "len", &x) ? json_object_get_double(x) : 0;
		}
		el = json_object_object_get_ex(p, "elapsed_ms", &x) ? json_object_get_double(x) / 1000 : 0;
		if (!mc->tty && ((int)(el * 5) % 10) != 0)
			return;
		fprintf(stderr, "%s  %5.1fs storage %s %7.1f/%.1f MiB%s", mc->tty ? "\r" : "", el,
			json_object_get_string(v), off / 1048576.0, len / 1048576.0,
			mc->tty ? "" : "\n");
		mc->line_open = mc->tty;
		return;
	}
#define NUM(k) (json_object_object_get_ex(p, k, &v) ? json_object_get_double(v) : 0.0)
	double el = NUM("elapsed_ms") / 1000.0, rem = NUM("remaining") / 1048576.0;
	double tot = NUM("total") / 1048576.0, d = NUM("dirty_rate_bps") / 1048576.0;
	double b = NUM("bandwidth_bps") / 1048576.0, dt = NUM("expected_downtime_ms");
	double round = NUM("round"), thr = NUM("throttle_pct");
#undef NUM
	if (!mc->tty && ((int)(el * 5) % 10) != 0)
		return; /* one line every ~2 s when not on a terminal */
	fprintf(stderr, "%s  %5.1fs round %-3.0f remaining %7.1f/%.0f MiB  dirty %6.1f MiB/s  "
		"bw %6.1f MiB/s  downtime~%5.0f ms  throttle %2.0f%%%s",
		mc->tty ? "\r" : "", el, round, rem, tot, d, b, dt, thr, mc->tty ? "" : "\n");
	mc->line_open = mc->tty;
}

static void end_line(struct mig_cli *mc)
{
	if (mc->line_open)
		fputc('\n', stderr);
	mc->line_open = false;
}

/* migrate.plan on the source: disk sizes (copy_storage) and the multifd
 * decision, which both QEMUs must share. A daemon without migrate.plan
 * gets neither (plain migration). */
static int plan(qv_rpc_conn *src, const char *name, const struct cli_migrate_opts *o,
		bool copy_storage, json_object **ret, struct qv_error *errp)
{
	json_object *p = name_params(name);
	struct qv_error err = {};
	int r;

	json_object_object_add(p, "copy_storage", json_object_new_boolean(copy_storage));
	json_object_object_add(p, "bandwidth_mbps", json_object_new_int64(o->bandwidth_mibps));
	r = qv_rpc_invoke(src, "migrate.plan", json_object_get(p), CLI_CALL_TIMEOUT_MS, ret, &err);
	/* A cancelled storage mirror may still drain: wait up to 60 s. */
	for (int i = 0; r == 0 && copy_storage && i < 240; i++) {
		json_object *v;
		if (!json_object_object_get_ex(*ret, "mirror_cleanup", &v) ||
		    !json_object_get_boolean(v))
			break;
		if (i == 0 && !o->quiet)
			fprintf(stderr, "Waiting for a cancelled storage mirror of %s to drain\n", name);
		usleep(250 * 1000);
		json_object_put(*ret);
		*ret = NULL;
		r = qv_rpc_invoke(src, "migrate.plan", json_object_get(p), CLI_CALL_TIMEOUT_MS, ret,
				  &err);
	}
	json_object_put(p);
	if (r < 0 && !copy_storage) {
		*ret = NULL;
		return 0;
	}
	if (r < 0) {
		*errp = err;
		return qv_error_prefix(errp, "plan on the source"), r;
	}
	return 0;
}

static int migrate_run(qv_rpc_conn *src, qv_rpc_conn *dst, const char *name,
		       const struct cli_migrate_opts *o, bool copy_storage,
		       json_object **ret_stats, struct qv_error *errp);

int cli_migrate_run(qv_rpc_conn *src, qv_rpc_conn *dst, const char *name,
		    const struct cli_migrate_opts *o, json_object **ret_stats,
		    struct qv_error *errp)
{
	return migrate_run(src, dst, name, o, false, ret_stats, errp);
}

static int migrate_run(qv_rpc_conn *src, qv_rpc_conn *dst, const char *name,
		       const struct cli_migrate_opts *o, bool copy_storage,
		       json_object **ret_stats, struct qv_error *errp)
{
	_cleanup_json_ json_object *info = NULL, *prep = NULL, *stats = NULL, *pl = NULL;
	int64_t multifd = 0;
	const char *multifd_reason = NULL, *nbd = NULL;
	struct mig_cli mc = { .tty = isatty(2), .quiet = o->quiet, .fault = o->fault,
			      .cancel_after_ms = o->cancel_after_ms };
	json_object *spec, *p, *v;
	const char *uri, *token;
	int r;

	r = qv_rpc_invoke(src, "vm.info", name_params(name), CLI_CALL_TIMEOUT_MS, &info, errp);
	if (r < 0)
		return qv_error_prefix(errp, "source"), r;
	if (!json_object_object_get_ex(info, "spec", &spec))
		return qv_error_set(errp, EPROTO, QV_REASON_INTERNAL, "vm.info without a spec");
	r = plan(src, name, o, copy_storage, &pl, errp);
	if (r < 0)
		return r;
	if (pl && !o->plain && json_object_object_get_ex(pl, "multifd_channels", &v))
		multifd = json_object_get_int64(v);
	if (pl && !o->plain && json_object_object_get_ex(pl, "multifd_reason", &v))
		multifd_reason = json_object_get_string(v);
	/* The multifd decision is printed when perform reports it. */

	p = json_object_new_object();
	json_object_object_add(p, "spec", json_object_get(spec));
	if (o->dest_address)
		json_object_object_add(p, "address", json_object_new_string(o->dest_address));
	if (o->listen)
		json_object_object_add(p, "listen", json_object_new_string(o->listen));
	if (multifd > 0)
		json_object_object_add(p, "multifd_channels", json_object_new_int64(multifd));
	if (copy_storage) {
		json_object *sizes = json_object_new_array(), *disks, *x;
		if (json_object_object_get_ex(pl, "disks", &disks))
			for (size_t i = 0; i < json_object_array_length(disks); i++) {
				json_object *dk = json_object_array_get_idx(disks, i);
				json_object_array_add(sizes, json_object_new_int64(
					json_object_object_get_ex(dk, "virtual_size", &x)
						? json_object_get_int64(x) : 0));
			}
		json_object_object_add(p, "copy_storage", json_object_new_boolean(true));
		json_object_object_add(p, "disk_sizes", sizes);
	}
	r = qv_rpc_invoke(dst, "migrate.prepare", p, CLI_CALL_TIMEOUT_MS, &prep, errp);
	if (r < 0)
		return qv_error_prefix(errp, "prepare on the destination"), r;
	uri = json_object_object_get_ex(prep, "uri", &v) ? json_object_get_string(v) : "";
	token = json_object_object_get_ex(prep, "token", &v) ? json_object_get_string(v) : "";
	if (copy_storage)
		nbd = json_object_object_get_ex(prep, "nbd", &v) ? json_object_get_string(v) : "";
	if (!o->quiet)
		fprintf(stderr, "Migrating %s (%s)\n", name, uri);

	p = name_params(name);
	json_object_object_add(p, "uri", json_object_new_string(uri));
	json_object_object_add(p, "max_downtime_ms", json_object_new_int64(o->max_downtime_ms));
	json_object_object_add(p, "bandwidth_mbps", json_object_new_int64(o->bandwidth_mibps));
	json_object_object_add(p, "deadline_s", json_object_new_int64(o->deadline_s));
	json_object_object_add(p, "allow_postcopy", json_object_new_boolean(o->allow_postcopy));
	json_object_object_add(p, "plain", json_object_new_boolean(o->plain));
	if (multifd > 0)
		json_object_object_add(p, "multifd_channels", json_object_new_int64(multifd));
	if (multifd_reason)
		json_object_object_add(p, "multifd_reason", json_object_new_string(multifd_reason));
	if (copy_storage) {
		json_object_object_add(p, "copy_storage", json_object_new_boolean(true));
		json_object_object_add(p, "nbd", json_object_new_string(nbd));
	}
	mc.name = name;
	qv_rpc_set_notify_handler(src, progress_line, &mc);
	r = qv_rpc_invoke(src, "migrate.perform", p, (int)(o->deadline_s + 120) * 1000, &stats,
			  errp);
	qv_rpc_set_notify_handler(src, NULL, NULL);
	end_line(&mc);
	if (r < 0) {
		/* The source resumed itself; remove the incoming QEMU. */
		try_call(dst, "cancel on the destination", "migrate.cancel", name_params(name));
		if (r != -EREMOTEIO)
			try_call(src, "cancel on the source", "migrate.cancel", name_params(name));
		return qv_error_prefix(errp, "perform"), r;
	}
	p = name_params(name);
	json_object_object_add(p, "token", json_object_new_string(token));
	r = qv_rpc_invoke(dst, "migrate.finish", p, CLI_CALL_TIMEOUT_MS, NULL, errp);
	if (r < 0) {
		/* The destination never ran: hand the guest back to the source. */
		try_call(dst, "cancel on the destination", "migrate.cancel", name_params(name));
		try_call(src, "resume on the source", "migrate.cancel", name_params(name));
		return qv_error_prefix(errp, "finish on the destination"), r;
	}
	p = name_params(name);
	json_object_object_add(p, "keep_definition", json_object_new_boolean(o->keep_definition));
	r = qv_rpc_invoke(src, "migrate.confirm", p, CLI_CALL_TIMEOUT_MS, NULL, errp);
	if (r < 0)
		return qv_error_prefix(errp, "%s runs on the destination, but confirming on the "
				       "source failed (stop the source copy by hand)", name), r;
	if (ret_stats)
		*ret_stats = TAKE_PTR(stats);
	return 0;
}

int verb_migrate(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "to", required_argument, NULL, 't' },
		{ "max-downtime", required_argument, NULL, 'm' },
		{ "bandwidth", required_argument, NULL, 'b' },
		{ "deadline", required_argument, NULL, 'd' },
		{ "allow-postcopy", no_argument, NULL, 'p' },
		{ "plain", no_argument, NULL, 'P' },
		{ "dest-address", required_argument, NULL, 'a' },
		{ "listen", required_argument, NULL, 'l' },
		{ "keep-definition", no_argument, NULL, 'k' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "copy-storage", no_argument, NULL, 'S' },
		{},
	};
	struct cli_migrate_opts o = { .max_downtime_ms = 300, .deadline_s = 300 };
	const char *to = NULL;
	_cleanup_rpc_conn_ qv_rpc_conn *dst = NULL;
	_cleanup_json_ json_object *stats = NULL;
	struct qv_error err = {};
	json_object *v;
	bool copy_storage = false;
	char *end;
	int c, r;

	while ((c = getopt_long(argc, argv, "t:m:b:d:pPa:l:kqS", opts, NULL)) != -1) {
		switch (c) {
		case 't': to = optarg; break;
		case 'a': o.dest_address = optarg; break;
		case 'l': o.listen = optarg; break;
		case 'p': o.allow_postcopy = true; break;
		case 'P': o.plain = true; break;
		case 'k': o.keep_definition = true; break;
		case 'q': o.quiet = true; break;
		case 'S': copy_storage = true; break;
		case 'm': case 'b': case 'd': {
			long x = strtol(optarg, &end, 10);
			if (*end || x < 0 || x > 1000000)
				return cli_usage_error(ctx, "invalid number \"%s\"", optarg);
			if (c == 'm')
				o.max_downtime_ms = x;
			else if (c == 'b')
				o.bandwidth_mibps = x;
			else
				o.deadline_s = x ? x : 300;
			break;
		}
		default:
			return cli_usage_error(ctx, "invalid option");
		}
	}
	if (optind + 1 != argc || !to)
		return cli_usage_error(ctx, "expected VM and --to URI");
	if ((r = cli_connect(ctx)) != EXIT_OK)
		return r;
	r = qv_rpc_connect(to, &dst, &err);
	if (r < 0)
		return cli_report(ctx, to, r, &err);
	r = migrate_run(ctx->conn, dst, argv[optind], &o, copy_storage, &stats, &err);
	if (r < 0)
		return cli_report(ctx, NULL, r, &err);
	if (ctx->json) {
		printf("%s\n", json_object_to_json_string_ext(stats, JSON_C_TO_STRING_PRETTY));
	} else {
#define NUM(k) (json_object_object_get_ex(stats, k, &v) ? json_object_get_double(v) : 0.0)
		printf("Migrated %s: %.2f s total, %.0f ms downtime, %.1f MiB sent, %.0f rounds\n",
		       argv[optind], NUM("total_time_ms") / 1000.0, NUM("downtime_ms"),
		       NUM("ram_transferred") / 1048576.0, NUM("rounds"));
#undef NUM
	}
	return EXIT_OK;
}

int verb_migrate_cancel(struct cli_ctx *ctx, int argc, char **argv)
{
	_cleanup_json_ json_object *res = NULL;
	json_object *v;
	int r;

	if (argc != 2)
		return cli_usage_error(ctx, "expected one VM name");
	r = cli_call(ctx, "migrate.cancel", cli_params_name(argv[1]), CLI_CALL_TIMEOUT_MS, &res);
	if (r != EXIT_OK)
		return r;
	printf("%s: %s\n", argv[1],
	       json_object_object_get_ex(res, "action", &v) ? json_object_get_string(v) : "cancelled");
	return EXIT_OK;
}
