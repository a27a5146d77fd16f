/* SPDX-License-Identifier: MIT */
/* Connection, error reporting and small argument helpers shared by verbs. */
#include <stdarg.h>

#include "cli/cli.h"

int cli_connect(struct cli_ctx *ctx)
{
	struct qv_error err = { 0 };

	if (ctx->conn)
		return EXIT_OK;
	if (qv_rpc_connect(ctx->uri, &ctx->conn, &err) < 0) {
		fprintf(stderr, "qvisor: %s: %s (%s)\n", ctx->verb, err.message, err.reason);
		return EXIT_UNREACHABLE;
	}
	return EXIT_OK;
}

int cli_exit_code(int r, const struct qv_error *err)
{
	if (r >= 0)
		return EXIT_OK;
	if (r == -EREMOTEIO) {
		if (streq(err->reason, QV_REASON_NOT_FOUND))
			return EXIT_NOT_FOUND;
		if (streq(err->reason, QV_REASON_CONFLICT))
			return EXIT_CONFLICT;
		return EXIT_FAILED;
	}
	if (r == -ETIMEDOUT)
		return EXIT_FAILED;
	return EXIT_UNREACHABLE;
}

int cli_report(struct cli_ctx *ctx, const char *what, int r, const struct qv_error *err)
{
	fprintf(stderr, "qvisor: %s: %s%s%s (%s)\n", ctx->verb, what ? what : "", what ? ": " : "",
		err->set ? err->message : strerror(-r),
		err->set ? err->reason : qv_reason_from_errno(r));
	return cli_exit_code(r, err);
}

int cli_call(struct cli_ctx *ctx, const char *method, json_object *params, int timeout_ms,
	     json_object **ret_result)
{
	struct qv_error err = { 0 };
	int r = cli_connect(ctx);

	if (r != EXIT_OK) {
		json_object_put(params);
		return r;
	}
	r = qv_rpc_invoke(ctx->conn, method, params, timeout_ms, ret_result, &err);
	if (r < 0)
		return cli_report(ctx, NULL, r, &err);
	return EXIT_OK;
}

const struct cli_verb *cli_find_verb(const char *name)
{
	for (size_t i = 0; i < cli_n_verbs; i++)
		if (streq(cli_verbs[i].name, name))
			return &cli_verbs[i];
	return NULL;
}

void cli_print_verb_help(const struct cli_verb *v, FILE *f)
{
	fprintf(f, "usage: qvisor [OPTIONS] %s%s%s\n  %s\n", v->name, *v->usage ? " " : "",
		v->usage, v->summary);
}

int cli_usage_error(struct cli_ctx *ctx, const char *fmt, ...)
{
	const struct cli_verb *v = cli_find_verb(ctx->verb);
	va_list ap;

	fprintf(stderr, "qvisor: %s: ", ctx->verb);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (v)
		fprintf(stderr, "usage: qvisor %s %s\n", v->name, v->usage);
	return EXIT_USAGE;
}

json_object *cli_params_name(const char *name)
{
	json_object *p = json_object_new_object();

	json_object_object_add(p, "name", json_object_new_string(name));
	return p;
}

int cli_parse_size(const char *s, uint64_t *ret_bytes)
{
	static const char units[] = "BKMGTP";
	char *end;
	double v;

	if (!s || !*s || *s == '-')
		return -EINVAL;
	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || !(v >= 0 && v < 1e30))
		return -EINVAL;
	unsigned shift = 0;
	if (*end) {
		const char *u = strchr(units, end[0] & ~0x20);
		if (!u || !end[0])
			return -EINVAL;
		shift = (unsigned)(u - units) * 10;
		end++;
		if (shift && (streq(end, "iB") || streq(end, "B") || streq(end, "")))
			;
		else if (shift || *end)
			return -EINVAL;
	}
	v *= (double)(1ULL << shift);
	if (v >= 18446744073709551615.0 || v != (double)(uint64_t)v)
		return -EINVAL;
	*ret_bytes = (uint64_t)v;
	return 0;
}

int cli_read_json_file(struct cli_ctx *ctx, const char *path, json_object **ret)
{
	_cleanup_fclose_ FILE *f = streq(path, "-") ? NULL : fopen(path, "re");
	FILE *in = streq(path, "-") ? stdin : f;
	size_t len = 0, cap = 0;
	_cleanup_free_ char *buf = NULL;

	if (!in) {
		fprintf(stderr, "qvisor: %s: cannot open %s: %s\n", ctx->verb, path, strerror(errno));
		return EXIT_FAILED;
	}
	for (;;) {
		if (cap - len < 65536) {
			cap = cap ? cap * 2 : 65536;
			if (cap > 16u * QV_RPC_MAX_MESSAGE) {
				fprintf(stderr, "qvisor: %s: %s: file too large\n", ctx->verb, path);
				return EXIT_FAILED;
			}
			char *p = realloc(buf, cap);
			if (!p)
				return EXIT_FAILED;
			buf = p;
		}
		size_t n = fread(buf + len, 1, cap - len - 1, in);
		len += n;
		if (n == 0)
			break;
	}
	if (ferror(in)) {
		fprintf(stderr, "qvisor: %s: cannot read %s: %s\n", ctx->verb, path, strerror(errno));
		return EXIT_FAILED;
	}
	buf[len] = '\0';
	json_tokener *tok = json_tokener_new();
	json_object *o = json_tokener_parse_ex(tok, buf, (int)len);
	enum json_tokener_error e = json_tokener_get_error(tok);
	size_t used = (size_t)json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	while (o && used < len && strchr(" \t\r\n", buf[used]))
		used++;
	if (!o || e != json_tokener_success || used != len) {
		json_object_put(o);
		fprintf(stderr, "qvisor: %s: %s: invalid JSON%s%s\n", ctx->verb, path,
			e != json_tokener_success ? ": " : " (trailing data)",
			e != json_tokener_success ? json_tokener_error_desc(e) : "");
		return EXIT_FAILED;
	}
	*ret = o;
	return EXIT_OK;
}
