/* SPDX-License-Identifier: MIT */
#include <termios.h>

#include "cli/verbs.h"

#define ESCAPE_CHAR 0x1d /* Ctrl-] */

int verb_console(struct cli_ctx *ctx, int argc, char **argv)
{
	_cleanup_json_ json_object *res = NULL;
	_cleanup_close_ int sock = -1;
	struct termios saved, raw;
	json_object *v;
	int r;

	if (argc != 2 || argv[1][0] == '-')
		return cli_usage_error(ctx, "expected one VM name");
	if (strncmp(ctx->uri, "ssh://", 6) == 0) {
		fprintf(stderr, "qvisor: console: only available on a local connection; "
				"run qvisor console on the remote host\n");
		return EXIT_FAILED;
	}
	r = cli_call(ctx, "vm.console", cli_params_name(argv[1]), CLI_CALL_TIMEOUT_MS, &res);
	if (r != EXIT_OK)
		return r;
	if (!json_object_object_get_ex(res, "path", &v) || !json_object_is_type(v, json_type_string)) {
		fprintf(stderr, "qvisor: console: malformed vm.console result\n");
		return EXIT_FAILED;
	}
	const char *path = json_object_get_string(v);
	sock = cli_connect_unix(path);
	if (sock < 0) {
		fprintf(stderr, "qvisor: console: cannot connect to %s: %s (unavailable)\n", path,
			strerror(-sock));
		return EXIT_FAILED;
	}
	bool tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved) == 0;
	if (tty) {
		fprintf(stderr, "Connected to %s (escape character is ^])\r\n", argv[1]);
		raw = saved;
		cfmakeraw(&raw);
		tcsetattr(STDIN_FILENO, TCSANOW, &raw);
	}
	/* Non-TTY: after stdin EOF keep printing output until 1 s of quiet. */
	r = cli_relay(STDIN_FILENO, STDOUT_FILENO, sock, tty ? ESCAPE_CHAR : -1, tty ? -1 : 1000);
	if (tty) {
		tcsetattr(STDIN_FILENO, TCSANOW, &saved);
		fprintf(stderr, "\nDisconnected from %s\n", argv[1]);
	}
	if (r < 0) {
		fprintf(stderr, "qvisor: console: %s (io-error)\n", strerror(-r));
		return EXIT_FAILED;
	}
	return EXIT_OK;
}
