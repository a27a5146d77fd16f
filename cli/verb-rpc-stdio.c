/* SPDX-License-Identifier: MIT */
/* The remote end of ssh:// connections: copy bytes between stdin/stdout and
 * the local daemon socket. */
#include "cli/verbs.h"

int verb_rpc_stdio(struct cli_ctx *ctx, int argc, char **argv)
{
	_cleanup_close_ int sock = -1;
	const char *path = ctx->uri;

	if (argc != 1)
		return cli_usage_error(ctx, "takes no arguments");
	if (strncmp(path, "unix://", 7) == 0)
		path += 7;
	else if (strstr(path, "://")) {
		fprintf(stderr, "qvisor: rpc-stdio: needs a local socket, not %s\n", path);
		return EXIT_USAGE;
	}
	sock = cli_connect_unix(path);
	if (sock < 0) {
		fprintf(stderr, "qvisor: rpc-stdio: cannot connect to %s: %s (unavailable)\n", path,
			strerror(-sock));
		return EXIT_UNREACHABLE;
	}
	/* After stdin EOF, forward the remaining responses until the daemon
	 * closes its side. */
	int r = cli_relay(STDIN_FILENO, STDOUT_FILENO, sock, -1, -1);
	if (r < 0) {
		fprintf(stderr, "qvisor: rpc-stdio: %s (unavailable)\n", strerror(-r));
		return EXIT_UNREACHABLE;
	}
	return EXIT_OK;
}
