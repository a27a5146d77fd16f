/* SPDX-License-Identifier: MIT */
/* image import-foreign (VMDK/VHDX/VDI/QED) and image import-ova. */
#include <getopt.h>
#include <limits.h>

#include "cli/output.h"
#include "cli/verb-libvirt.h"

#define FOREIGN_TIMEOUT_MS (6 * 3600 * 1000)

static int call_with_progress(struct cli_ctx *ctx, const char *method, json_object *params,
			      json_object **ret)
{
	int r = cli_connect(ctx);

	if (r != EXIT_OK) {
		json_object_put(params);
		return r;
	}
	qv_rpc_set_notify_handler(ctx->conn, cli_progress_notify, NULL);
	r = cli_call(ctx, method, params, FOREIGN_TIMEOUT_MS, ret);
	cli_progress_finish();
	return r;
}

static json_object *path_params(const char *path, const char *name)
{
	json_object *p = json_object_new_object();
	_cleanup_free_ char *abs = realpath(path, NULL); /* the daemon wants absolute paths */

	json_object_object_add(p, "path", json_object_new_string(abs ? abs : path));
	json_object_object_add(p, "name", json_object_new_string(name));
	return p;
}

int verb_image_import_foreign(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = { { "format", required_argument, NULL, 'f' },
					      { "target", required_argument, NULL, 't' },
					      {} };
	_cleanup_json_ json_object *res = NULL;
	const char *format = NULL, *target = NULL;
	int c, r;

	while ((c = getopt_long(argc, argv, "f:t:", opts, NULL)) != -1) {
		if (c == 'f')
			format = optarg;
		else if (c == 't')
			target = optarg;
		else
			return cli_usage_error(ctx, "invalid option");
	}
	if (argc - optind != 2 || !format)
		return cli_usage_error(ctx, "expected PATH NAME --format vmdk|vhdx|vdi|qed");
	json_object *p = path_params(argv[optind], argv[optind + 1]);
	json_object_object_add(p, "format", json_object_new_string(format));
	if (target)
		json_object_object_add(p, "target", json_object_new_string(target));
	if ((r = call_with_progress(ctx, "image.import-foreign", p, &res)) != EXIT_OK)
		return r;
	if (ctx->json)
		out_json(res, stdout);
	else
		printf("%s: imported from %s\n", argv[optind + 1], format);
	return EXIT_OK;
}

int verb_image_import_ova(struct cli_ctx *ctx, int argc, char **argv)
{
	_cleanup_json_ json_object *res = NULL;
	json_object *v;
	int r;

	if (argc != 3 || argv[1][0] == '-')
		return cli_usage_error(ctx, "expected PATH.ova NAME");
	if ((r = call_with_progress(ctx, "image.import-ova", path_params(argv[1], argv[2]), &res)) !=
	    EXIT_OK)
		return r;
	if (ctx->json) {
		out_json(res, stdout);
		return EXIT_OK;
	}
	printf("%s: imported (manifest %s); drafted spec (define it with qvisor define -):\n", argv[2],
	       json_object_object_get_ex(res, "manifest_verified", &v) && json_object_get_boolean(v) ?
		       "verified" : "absent");
	if (json_object_object_get_ex(res, "spec", &v))
		out_json(v, stdout);
	return EXIT_OK;
}
