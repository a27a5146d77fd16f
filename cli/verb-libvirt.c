/* SPDX-License-Identifier: MIT */
/* libvirt domain XML in (define --from-libvirt) and out (dump-libvirt). */
#include "cli/output.h"
#include "cli/verb-libvirt.h"
#include "qemu/libvirt.h"

static int read_text(struct cli_ctx *ctx, const char *path, char **ret, size_t *ret_len)
{
	_cleanup_fclose_ FILE *f = streq(path, "-") ? NULL : fopen(path, "re");
	FILE *in = streq(path, "-") ? stdin : f;
	_cleanup_free_ char *buf = malloc(LV_XML_MAX_BYTES + 2);

	if (!in || !buf) {
		fprintf(stderr, "qvisor: %s: cannot open %s: %s\n", ctx->verb, path, strerror(errno));
		return EXIT_FAILED;
	}
	size_t n = fread(buf, 1, LV_XML_MAX_BYTES + 1, in);
	if (ferror(in) || n > LV_XML_MAX_BYTES) {
		fprintf(stderr, "qvisor: %s: %s: %s\n", ctx->verb, path,
			ferror(in) ? strerror(errno) : "larger than 1 MiB");
		return EXIT_FAILED;
	}
	buf[n] = 0;
	*ret = TAKE_PTR(buf);
	*ret_len = n;
	return EXIT_OK;
}

static void print_problems(json_object *problems, const char *prefix, FILE *f)
{
	for (size_t i = 0; i < json_object_array_length(problems); i++) {
		json_object *p = json_object_array_get_idx(problems, i), *x, *w;
		json_object_object_get_ex(p, "xpath", &x);
		json_object_object_get_ex(p, "why", &w);
		fprintf(f, "  %s%s: %s\n", prefix, json_object_get_string(x), json_object_get_string(w));
	}
}

/* The daemon's answer carries the first problems in its message; list them
 * all with the same (pure) conversion. */
static void explain_refusal(const char *xml, size_t len, bool lossy)
{
	_cleanup_(lv_import_freep) struct lv_import *imp = NULL;
	struct qv_error err = {};

	if (lv_import_xml(xml, len, lossy, &imp, &err) < 0 || imp->spec)
		return;
	fprintf(stderr, "refused:\n");
	print_problems(imp->problems, "", stderr);
	if (!lossy)
		fprintf(stderr, "(--lossy imports anyway where only a feature is lost)\n");
}

int cli_define_libvirt(struct cli_ctx *ctx, const char *path, bool lossy, bool dry_run)
{
	_cleanup_json_ json_object *res = NULL;
	_cleanup_free_ char *xml = NULL;
	json_object *v;
	size_t len;
	int r;

	if ((r = read_text(ctx, path, &xml, &len)) != EXIT_OK)
		return r;
	if (strlen(xml) != len) {
		fprintf(stderr, "qvisor: %s: %s: contains a NUL byte\n", ctx->verb, path);
		return EXIT_FAILED;
	}
	json_object *params = json_object_new_object();
	json_object_object_add(params, "xml", json_object_new_string(xml));
	json_object_object_add(params, "lossy", json_object_new_boolean(lossy));
	json_object_object_add(params, "dry_run", json_object_new_boolean(dry_run));
	if ((r = cli_call(ctx, "vm.import-libvirt", params, CLI_CALL_TIMEOUT_MS, &res)) != EXIT_OK) {
		explain_refusal(xml, len, lossy);
		return r;
	}
	if (ctx->json || dry_run) {
		out_json(ctx->json ? res : (json_object_object_get_ex(res, "spec", &v) ? v : res),
			 stdout);
		if (ctx->json)
			return EXIT_OK;
	} else {
		printf("Defined %s", json_object_object_get_ex(res, "name", &v) ?
				     json_object_get_string(v) : "-");
		if (json_object_object_get_ex(res, "uuid", &v))
			printf(" (%s)", json_object_get_string(v));
		printf(" from %s\n", path);
	}
	if (json_object_object_get_ex(res, "warnings", &v) && json_object_array_length(v)) {
		fprintf(stderr, "lossy import, not carried over:\n");
		print_problems(v, "", stderr);
	}
	return EXIT_OK;
}

int verb_dump_libvirt(struct cli_ctx *ctx, int argc, char **argv)
{
	_cleanup_json_ json_object *res = NULL;
	json_object *v;
	int r;

	if (argc != 2)
		return cli_usage_error(ctx, "expected one VM name");
	if ((r = cli_call(ctx, "vm.dump-libvirt", cli_params_name(argv[1]), CLI_CALL_TIMEOUT_MS,
			  &res)) != EXIT_OK)
		return r;
	if (ctx->json) {
		out_json(res, stdout);
		return EXIT_OK;
	}
	if (!json_object_object_get_ex(res, "xml", &v)) {
		fprintf(stderr, "qvisor: %s: malformed answer\n", ctx->verb);
		return EXIT_FAILED;
	}
	fputs(json_object_get_string(v), stdout);
	return EXIT_OK;
}
