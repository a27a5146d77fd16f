/* SPDX-License-Identifier: MIT */
/* One method on many VMs: all requests pipelined on one connection, results
 * printed as they complete. */
#include "cli/cli.h"
#include "cli/output.h"
#include "common/loop.h"

bool cli_state_is_active(const char *state)
{
	static const char *const inactive[] = { "stopped", "defined", "shutoff", "shut-off",
						"off", "crashed", "failed", "inactive" };
	if (!state)
		return false;
	for (size_t i = 0; i < ARRAY_SIZE(inactive); i++)
		if (streq(state, inactive[i]))
			return false;
	return true;
}

int cli_vm_names(struct cli_ctx *ctx, bool active, char ***ret_names, size_t *ret_n)
{
	_cleanup_json_ json_object *res = NULL;
	json_object *vms, *v;
	int r = cli_call(ctx, "vm.list", json_object_new_object(), CLI_CALL_TIMEOUT_MS, &res);

	if (r != EXIT_OK)
		return r;
	if (!json_object_object_get_ex(res, "vms", &vms) ||
	    !json_object_is_type(vms, json_type_array)) {
		fprintf(stderr, "qvisor: %s: malformed vm.list result\n", ctx->verb);
		return EXIT_FAILED;
	}
	size_t n = json_object_array_length(vms), k = 0;
	char **names = calloc(n + 1, sizeof(*names));
	if (!names)
		return EXIT_FAILED;
	for (size_t i = 0; i < n; i++) {
		json_object *vm = json_object_array_get_idx(vms, i);
		const char *state = NULL, *name;
		if (json_object_object_get_ex(vm, "state", &v))
			state = json_object_get_string(v);
		if (!json_object_object_get_ex(vm, "name", &v) ||
		    cli_state_is_active(state) != active)
			continue;
		name = json_object_get_string(v);
		if (!(names[k++] = strdup(name))) {
			strv_free(names);
			return EXIT_FAILED;
		}
	}
	*ret_names = names;
	*ret_n = k;
	return EXIT_OK;
}

int cli_parse_parallel(struct cli_ctx *ctx, const char *arg, int *ret)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(arg, &end, 10);
	if (errno || *end || end == arg || v < 1 || v > 1024)
		return cli_usage_error(ctx, "invalid --parallel \"%s\" (1..1024)", arg);
	*ret = (int)v;
	return EXIT_OK;
}

/* One request per name; at most `parallel` in flight. */
struct batch_state {
	const struct cli_batch *b;
	char **names;
	size_t n, next, in_flight;
	uint64_t *ids;
	uint64_t *sent_ms;
	int *codes;
};

static int batch_send_next(struct cli_ctx *ctx, struct batch_state *st)
{
	struct qv_error err = { 0 };
	size_t i = st->next++;
	int r;

	r = qv_rpc_send(ctx->conn, st->b->method, st->b->params(st->names[i], st->b->userdata),
			&st->ids[i], &err);
	if (r < 0)
		return st->codes[i] = cli_report(ctx, st->names[i], r, &err);
	st->sent_ms[i] = qv_now_ms();
	st->in_flight++;
	return 0;
}

/* Time left for the oldest request in flight. */
static int batch_wait_ms(const struct batch_state *st)
{
	uint64_t now = qv_now_ms(), first = UINT64_MAX;

	for (size_t i = 0; i < st->next; i++)
		if (st->ids[i] && st->sent_ms[i] < first)
			first = st->sent_ms[i];
	if (first == UINT64_MAX)
		return 0;
	first += (uint64_t)st->b->timeout_ms;
	return first > now ? (int)(first - now) : 0;
}

/* Collect one response. Returns 0, or an exit code once the connection is
 * unusable (the requests in flight then fail). */
static int batch_collect(struct cli_ctx *ctx, struct batch_state *st)
{
	_cleanup_json_ json_object *res = NULL;
	struct qv_error err = { 0 };
	uint64_t id = 0;
	size_t i;
	int r;

	r = qv_rpc_recv_any(ctx->conn, batch_wait_ms(st), &id, &res, &err);
	if (r < 0 && r != -EREMOTEIO) { /* timeout or connection lost: the rest fail */
		int code = EXIT_FAILED;
		for (size_t j = 0; j < st->n; j++)
			if (j >= st->next || st->ids[j]) {
				cli_report(ctx, st->names[j], r, &err);
				code = st->codes[j] = cli_exit_code(r, &err);
			}
		return code;
	}
	for (i = 0; i < st->next && st->ids[i] != id; i++)
		;
	if (i == st->next)
		return 0; /* cannot happen: ids are ours */
	st->ids[i] = 0;
	st->in_flight--;
	if (r < 0) {
		st->codes[i] = cli_report(ctx, st->names[i], r, &err);
		return 0;
	}
	if (ctx->json)
		out_json(res, stdout);
	else
		st->b->print(st->names[i], res, st->b->userdata);
	fflush(stdout);
	return 0;
}

int cli_batch_run(struct cli_ctx *ctx, const struct cli_batch *b, char **names, size_t n)
{
	_cleanup_free_ uint64_t *ids = calloc(n ? n : 1, sizeof(*ids));
	_cleanup_free_ uint64_t *sent = calloc(n ? n : 1, sizeof(*sent));
	_cleanup_free_ int *codes = calloc(n ? n : 1, sizeof(*codes));
	struct batch_state st = { .b = b, .names = names, .n = n, .ids = ids, .sent_ms = sent,
				  .codes = codes };
	size_t parallel = b->parallel > 0 ? (size_t)b->parallel : (n ? n : 1);
	int r;

	if (!ids || !sent || !codes)
		return EXIT_FAILED;
	if ((r = cli_connect(ctx)) != EXIT_OK)
		return r;
	while (st.next < n || st.in_flight > 0) {
		while (st.next < n && st.in_flight < parallel)
			if ((r = batch_send_next(ctx, &st)) != 0)
				return r;
		if (batch_collect(ctx, &st) != 0)
			break;
	}
	for (size_t i = 0; i < n; i++)
		if (codes[i])
			return codes[i];
	return EXIT_OK;
}
