/* SPDX-License-Identifier: MIT */
#include <getopt.h>

#include "cli/output.h"
#include "cli/verb-libvirt.h"
#include "cli/verbs.h"

int verb_define(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = { { "from-libvirt", no_argument, NULL, 'L' },
					      { "lossy", no_argument, NULL, 'l' },
					      { "dry-run", no_argument, NULL, 'n' },
					      { "host", required_argument, NULL, 'H' },
					      {} };
	_cleanup_json_ json_object *res = NULL;
	json_object *spec = NULL, *v;
	bool libvirt = false, lossy = false, dry = false;
	const char *host = NULL;
	char buf[64];
	int c, r;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'L')
			libvirt = true;
		else if (c == 'l')
			lossy = true;
		else if (c == 'n')
			dry = true;
		else if (c == 'H')
			host = optarg;
		else
			return cli_usage_error(ctx, "invalid option");
	}
	if (optind != argc - 1)
		return cli_usage_error(ctx, "expected one spec file");
	if (libvirt)
		return cli_define_libvirt(ctx, argv[optind], lossy, dry);
	if (lossy || dry)
		return cli_usage_error(ctx, "--lossy and --dry-run go with --from-libvirt");
	if ((r = cli_read_json_file(ctx, argv[optind], &spec)) != EXIT_OK)
		return r;
	json_object *params = json_object_new_object();
	json_object_object_add(params, "spec", spec);
	if (host) { /* cluster placement: "auto" or a host name */
		json_object *pl = NULL;
		if (!json_object_object_get_ex(spec, "placement", &pl)) {
			pl = json_object_new_object();
			json_object_object_add(spec, "placement", pl);
		}
		json_object_object_add(pl, "host", json_object_new_string(host));
	}
	if ((r = cli_call(ctx, "vm.define", params, CLI_CALL_TIMEOUT_MS, &res)) != EXIT_OK)
		return r;
	if (ctx->json) {
		out_json(res, stdout);
		return EXIT_OK;
	}
	const char *name = json_object_object_get_ex(res, "name", &v) ? out_scalar(v, buf, sizeof(buf)) : "-";
	printf("Defined %s", name);
	if (json_object_object_get_ex(res, "uuid", &v))
		printf(" (%s)", json_object_get_string(v));
	if (json_object_object_get_ex(res, "host", &v))
		printf(" on host %s", json_object_get_string(v));
	printf("\n");
	if (json_object_object_get_ex(res, "reason", &v))
		printf("  placement: %s\n", json_object_get_string(v));
	return EXIT_OK;
}
