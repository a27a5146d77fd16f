/* SPDX-License-Identifier: MIT */
/* nic-add VM (--network N | --bridge B) [--mac M]; nic-remove VM MAC|netN */
#include <getopt.h>

#include "cli/output.h"
#include "cli/verb-nic.h"

int verb_nic_add(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "network", required_argument, NULL, 'n' },
		{ "bridge", required_argument, NULL, 'b' },
		{ "mac", required_argument, NULL, 'm' },
		{}
	};
	_cleanup_json_ json_object *res = NULL;
	const char *network = NULL, *bridge = NULL, *mac = NULL;
	int c, r;

	while ((c = getopt_long(argc, argv, "n:b:m:", opts, NULL)) != -1) {
		switch (c) {
		case 'n': network = optarg; break;
		case 'b': bridge = optarg; break;
		case 'm': mac = optarg; break;
		default: return cli_usage_error(ctx, "invalid option");
		}
	}
	if (argc - optind != 1)
		return cli_usage_error(ctx, "expected one VM name");
	if (!network == !bridge)
		return cli_usage_error(ctx, "give exactly one of --network and --bridge");
	json_object *nic = json_object_new_object();
	json_object_object_add(nic, network ? "network" : "bridge",
			       json_object_new_string(network ? network : bridge));
	if (mac)
		json_object_object_add(nic, "mac", json_object_new_string(mac));
	json_object *p = cli_params_name(argv[optind]);
	json_object_object_add(p, "nic", nic);
	r = cli_call(ctx, "vm.nic-add", p, CLI_CALL_TIMEOUT_MS, &res);
	if (r == EXIT_OK)
		ctx->json ? out_json(res, stdout) : out_kv(res, stdout);
	return r;
}

int verb_nic_remove(struct cli_ctx *ctx, int argc, char **argv)
{
	_cleanup_json_ json_object *res = NULL;
	json_object *p;
	int r;

	if (argc != 3 || argv[1][0] == '-')
		return cli_usage_error(ctx, "expected a VM name and a MAC (or NIC id netN)");
	p = cli_params_name(argv[1]);
	/* "net100" is an id; anything else is taken as a MAC. */
	json_object_object_add(p, strncmp(argv[2], "net", 3) == 0 ? "id" : "mac",
			       json_object_new_string(argv[2]));
	r = cli_call(ctx, "vm.nic-remove", p, CLI_CALL_TIMEOUT_MS, &res);
	if (r == EXIT_OK)
		ctx->json ? out_json(res, stdout) : (void)printf("%s: NIC %s removed\n", argv[1],
								  argv[2]);
	return r;
}
