/* SPDX-License-Identifier: MIT */
/* backup create|status|cancel|list|info|verify|delete|prune|restore
 * (docs/backup.md). One parser for every sub-verb: the options it does not
 * take are refused. */
#include <getopt.h>
#include <time.h>

#include "cli/output.h"
#include "cli/verbs.h"

/* Long operations: progress notifications show liveness. */
#define BACKUP_TIMEOUT_MS (-1)

struct bopts {
	const char *store, *to, *define, *format;
	bool full, dry_run;
	uint64_t bandwidth;
	int64_t keep_last, keep_daily;
};

enum { O_STORE = 1, O_FULL = 2, O_TO = 4, O_DEFINE = 8, O_KEEP = 16, O_DRY = 32, O_BW = 64,
       O_FORMAT = 128 };

static int parse(struct cli_ctx *ctx, int argc, char **argv, unsigned allowed, int n_pos,
		 struct bopts *o)
{
	static const struct option opts[] = {
		{ "store", required_argument, NULL, 's' },   { "full", no_argument, NULL, 'f' },
		{ "to", required_argument, NULL, 't' },      { "define", required_argument, NULL, 'd' },
		{ "keep-last", required_argument, NULL, 'l' },
		{ "keep-daily", required_argument, NULL, 'y' },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "bandwidth", required_argument, NULL, 'b' },
		{ "format", required_argument, NULL, 'F' }, {}
	};
	static const struct { int c; unsigned bit; } bits[] = {
		{ 's', O_STORE }, { 'f', O_FULL }, { 't', O_TO }, { 'd', O_DEFINE },
		{ 'l', O_KEEP },  { 'y', O_KEEP }, { 'n', O_DRY }, { 'b', O_BW },
		{ 'F', O_FORMAT },
	};
	int c;

	*o = (struct bopts){ .keep_last = -1, .keep_daily = -1 };
	optind = 0; /* glibc: restart the scan (main parsed the global options) */
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		unsigned bit = 0;
		char *end;
		for (size_t i = 0; i < ARRAY_SIZE(bits); i++)
			if (bits[i].c == c)
				bit = bits[i].bit;
		if (!bit || !(allowed & bit))
			return cli_usage_error(ctx, "invalid option");
		switch (c) {
		case 's': o->store = optarg; break;
		case 'f': o->full = true; break;
		case 't': o->to = optarg; break;
		case 'd': o->define = optarg; break;
		case 'F':
			if (!streq(optarg, "raw") && !streq(optarg, "qcow2"))
				return cli_usage_error(ctx, "--format: raw or qcow2");
			o->format = optarg;
			break;
		case 'n': o->dry_run = true; break;
		case 'b':
			if (cli_parse_size(optarg, &o->bandwidth) < 0 || o->bandwidth < 65536)
				return cli_usage_error(ctx, "--bandwidth: bytes/s like 50M, at least 64K");
			break;
		case 'l':
		case 'y': {
			long long v = strtoll(optarg, &end, 10);
			if (*end || v < 0 || v > 100000)
				return cli_usage_error(ctx, "invalid count \"%s\"", optarg);
			*(c == 'l' ? &o->keep_last : &o->keep_daily) = v;
			break;
		}
		}
	}
	if (n_pos >= 0 && argc - optind != n_pos)
		return cli_usage_error(ctx, n_pos ? "expected %d argument(s)" : "unexpected argument",
				       n_pos);
	if (n_pos < 0 && argc - optind > 1)
		return cli_usage_error(ctx, "at most one argument");
	return EXIT_OK;
}

static json_object *params(const struct bopts *o, const char *key, const char *val)
{
	json_object *p = json_object_new_object();

	if (key && val)
		json_object_object_add(p, key, json_object_new_string(val));
	if (o->store)
		json_object_object_add(p, "store", json_object_new_string(o->store));
	return p;
}

static const char *member(json_object *o, const char *key)
{
	json_object *v;
	return json_object_object_get_ex(o, key, &v) && v ? json_object_get_string(v) : NULL;
}

static int call(struct cli_ctx *ctx, const char *method, json_object *p, bool progress,
		json_object **ret)
{
	int r;

	if (progress) {
		if ((r = cli_connect(ctx)) != EXIT_OK) {
			json_object_put(p);
			return r;
		}
		qv_rpc_set_notify_handler(ctx->conn, cli_progress_notify, NULL);
	}
	r = cli_call(ctx, method, p, BACKUP_TIMEOUT_MS, ret);
	if (progress)
		cli_progress_finish();
	if (r == EXIT_OK && ctx->json)
		out_json(*ret, stdout);
	return r;
}

static int create(struct cli_ctx *ctx, int argc, char **argv)
{
	_cleanup_json_ json_object *res = NULL;
	struct bopts o;
	int r;

	if ((r = parse(ctx, argc, argv, O_STORE | O_FULL | O_BW, 1, &o)) != EXIT_OK)
		return r;
	json_object *p = params(&o, "name", argv[optind]);
	if (o.full)
		json_object_object_add(p, "full", json_object_new_boolean(true));
	if (o.bandwidth)
		json_object_object_add(p, "bandwidth", json_object_new_int64((int64_t)o.bandwidth));
	if ((r = call(ctx, "backup.create", p, true, &res)) != EXIT_OK || ctx->json)
		return r;
	json_object *disks;
	char sz[32];
	json_object_object_get_ex(res, "disks", &disks);
	printf("%s: %s backup %s (%s, %s)\n", argv[optind], member(res, "kind"), member(res, "id"),
	       out_size((uint64_t)json_object_get_int64(json_object_object_get(res, "size")), sz,
			sizeof(sz)),
	       json_object_get_boolean(json_object_object_get(res, "quiesced")) ? "quiesced"
									   : "not quiesced");
	if (member(res, "forced_full"))
		printf("full because %s\n", member(res, "forced_full"));
	return EXIT_OK;
}

static void print_list(json_object *arr)
{
	static const char *const h[] = { "ID", "VM", "KIND", "PARENT", "CREATED", "SIZE", "QUIESCED" };
	out_table *t = out_table_new(7, h);

	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		json_object *b = json_object_array_get_idx(arr, i);
		char when[32], sz[32];
		time_t s = (time_t)(json_object_get_int64(json_object_object_get(b, "created")) / 1000);
		struct tm tm;
		gmtime_r(&s, &tm);
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%SZ", &tm);
		const char *cells[] = {
			member(b, "id"), member(b, "vm"), member(b, "kind"),
			member(b, "parent") ? member(b, "parent") : "-", when,
			out_size((uint64_t)json_object_get_int64(json_object_object_get(b, "size")), sz,
				 sizeof(sz)),
			json_object_get_boolean(json_object_object_get(b, "quiesced")) ? "yes" : "no"
		};
		out_table_add(t, cells);
	}
	out_table_print(t, stdout);
	out_table_free(t);
}

static int list(struct cli_ctx *ctx, int argc, char **argv)
{
	_cleanup_json_ json_object *res = NULL;
	struct bopts o;
	int r;

	if ((r = parse(ctx, argc, argv, O_STORE, -1, &o)) != EXIT_OK)
		return r;
	json_object *p = params(&o, "vm", optind < argc ? argv[optind] : NULL);
	if ((r = call(ctx, "backup.list", p, false, &res)) != EXIT_OK || ctx->json)
		return r;
	print_list(json_object_object_get(res, "backups"));
	return EXIT_OK;
}

static int simple(struct cli_ctx *ctx, int argc, char **argv, const char *method,
		  const char *key, bool progress, const char *done_fmt)
{
	_cleanup_json_ json_object *res = NULL;
	struct bopts o;
	int r;

	if ((r = parse(ctx, argc, argv, streq(key, "id") ? O_STORE : 0, 1, &o)) != EXIT_OK)
		return r;
	if ((r = call(ctx, method, params(&o, key, argv[optind]), progress, &res)) != EXIT_OK ||
	    ctx->json)
		return r;
	if (done_fmt)
		printf(done_fmt, argv[optind]);
	else
		out_json(res, stdout);
	return EXIT_OK;
}

static int prune(struct cli_ctx *ctx, int argc, char **argv)
{
	_cleanup_json_ json_object *res = NULL;
	struct bopts o;
	int r;

	if ((r = parse(ctx, argc, argv, O_STORE | O_KEEP | O_DRY, -1, &o)) != EXIT_OK)
		return r;
	if (o.keep_last <= 0 && o.keep_daily <= 0)
		return cli_usage_error(ctx, "give --keep-last N and/or --keep-daily N");
	json_object *p = params(&o, "vm", optind < argc ? argv[optind] : NULL);
	if (o.keep_last > 0)
		json_object_object_add(p, "keep_last", json_object_new_int64(o.keep_last));
	if (o.keep_daily > 0)
		json_object_object_add(p, "keep_daily", json_object_new_int64(o.keep_daily));
	if (o.dry_run)
		json_object_object_add(p, "dry_run", json_object_new_boolean(true));
	if ((r = call(ctx, "backup.prune", p, false, &res)) != EXIT_OK || ctx->json)
		return r;
	json_object *gone = json_object_object_get(res, o.dry_run ? "would_delete" : "deleted");
	for (size_t i = 0; i < json_object_array_length(gone); i++)
		printf("%s %s\n", o.dry_run ? "would delete" : "deleted",
		       json_object_get_string(json_object_array_get_idx(gone, i)));
	printf("kept %zu backup(s)\n", json_object_array_length(json_object_object_get(res, "kept")));
	return EXIT_OK;
}

static int restore(struct cli_ctx *ctx, int argc, char **argv)
{
	_cleanup_json_ json_object *res = NULL;
	struct bopts o;
	int r;

	if ((r = parse(ctx, argc, argv, O_STORE | O_TO | O_DEFINE | O_FORMAT, 1, &o)) != EXIT_OK)
		return r;
	if (!o.to)
		return cli_usage_error(ctx, "--to IMAGE is required");
	json_object *p = params(&o, "id", argv[optind]);
	json_object_object_add(p, "to", json_object_new_string(o.to));
	if (o.define)
		json_object_object_add(p, "define", json_object_new_string(o.define));
	if (o.format)
		json_object_object_add(p, "format", json_object_new_string(o.format));
	if ((r = call(ctx, "backup.restore", p, true, &res)) != EXIT_OK || ctx->json)
		return r;
	json_object *imgs = json_object_object_get(res, "images");
	for (size_t i = 0; i < json_object_array_length(imgs); i++)
		printf("restored %s\n", json_object_get_string(json_object_array_get_idx(imgs, i)));
	if (member(res, "defined"))
		printf("defined VM %s\n", member(res, "defined"));
	return EXIT_OK;
}

static int status(struct cli_ctx *ctx, int argc, char **argv)
{
	_cleanup_json_ json_object *res = NULL;
	struct bopts o;
	int r;

	if ((r = parse(ctx, argc, argv, 0, 0, &o)) != EXIT_OK)
		return r;
	if ((r = call(ctx, "backup.status", json_object_new_object(), false, &res)) != EXIT_OK ||
	    ctx->json)
		return r;
	static const char *const cols[] = { "vm", "id", "phase", "kind", "done", "total", NULL };
	out_table_from_array(json_object_object_get(res, "backups"), cols, stdout);
	return EXIT_OK;
}

int verb_backup(struct cli_ctx *ctx, int argc, char **argv)
{
	const char *sub = argc > 1 ? argv[1] : "";

	argc--, argv++;
	if (streq(sub, "create"))
		return create(ctx, argc, argv);
	if (streq(sub, "list"))
		return list(ctx, argc, argv);
	if (streq(sub, "info"))
		return simple(ctx, argc, argv, "backup.info", "id", false, NULL);
	if (streq(sub, "verify"))
		return simple(ctx, argc, argv, "backup.verify", "id", true, "%s: verified\n");
	if (streq(sub, "delete"))
		return simple(ctx, argc, argv, "backup.delete", "id", false, "%s: deleted\n");
	if (streq(sub, "cancel"))
		return simple(ctx, argc, argv, "backup.cancel", "name", false, "%s: cancel requested\n");
	if (streq(sub, "prune"))
		return prune(ctx, argc, argv);
	if (streq(sub, "restore"))
		return restore(ctx, argc, argv);
	if (streq(sub, "status"))
		return status(ctx, argc, argv);
	return cli_usage_error(ctx, "expected create|status|cancel|list|info|verify|delete|prune|"
			       "restore");
}
