/* SPDX-License-Identifier: MIT */
/* move VM --to HOST|tls://ADDR [--bandwidth MiB/s]: cold migration of a
 * stopped VM (vm.move on its owner; docs/cluster.md "Cold migration"). */
#include <getopt.h>

#include "cli/output.h"
#include "cli/verbs.h"

/* The copy reports progress every second: no call deadline. */
#define MOVE_TIMEOUT_MS (-1)

int verb_move(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = { { "to", required_argument, NULL, 't' },
					      { "bandwidth", required_argument, NULL, 'b' },
					      {} };
	_cleanup_json_ json_object *res = NULL;
	json_object *p = json_object_new_object(), *v;
	const char *to = NULL;
	int c, r;

	while ((c = getopt_long(argc, argv, "t:b:", opts, NULL)) != -1) {
		char *end;
		long bw;
		switch (c) {
		case 't':
			to = optarg;
			break;
		case 'b':
			bw = strtol(optarg, &end, 10);
			if (*end || bw <= 0 || bw > 1000000) {
				json_object_put(p);
				return cli_usage_error(ctx, "--bandwidth takes MiB/s (a positive integer)");
			}
			json_object_object_add(p, "bandwidth_mib", json_object_new_int64(bw));
			break;
		default:
			json_object_put(p);
			return cli_usage_error(ctx, "invalid option");
		}
	}
	if (argc - optind != 1 || !to) {
		json_object_put(p);
		return cli_usage_error(ctx, "expected VM and --to HOST|tls://ADDR[:PORT]");
	}
	json_object_object_add(p, "name", json_object_new_string(argv[optind]));
	json_object_object_add(p, "to", json_object_new_string(to));
	if ((r = cli_connect(ctx)) != EXIT_OK) {
		json_object_put(p);
		return r;
	}
	qv_rpc_set_notify_handler(ctx->conn, cli_progress_notify, NULL);
	r = cli_call(ctx, "vm.move", p, MOVE_TIMEOUT_MS, &res);
	cli_progress_finish();
	if (r != EXIT_OK)
		return r;
	if (ctx->json) {
		out_json(res, stdout);
		return EXIT_OK;
	}
	char size[32], el[32];
	printf("%s: moved to %s (%s in %s, checksums verified)\n", argv[optind],
	       json_object_object_get_ex(res, "host", &v) && v ? json_object_get_string(v) : to,
	       out_size(json_object_object_get_ex(res, "bytes", &v) ? (uint64_t)json_object_get_int64(v)
								    : 0, size, sizeof(size)),
	       out_duration(json_object_object_get_ex(res, "elapsed_ms", &v) ? json_object_get_int64(v)
									     : 0, el, sizeof(el)));
	return EXIT_OK;
}
