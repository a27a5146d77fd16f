/* SPDX-License-Identifier: MIT */
#pragma once

#include <json-c/json.h>

#include "common/error.h"
#include "common/json.h"
#include "common/macro.h"
#include "common/rpc-client.h"

#ifndef QV_VERSION
#define QV_VERSION "0.1.0"
#endif

/* Exit codes (documented in docs/qvisor.1). */
enum {
	EXIT_OK = 0,
	EXIT_FAILED = 1,      /* the daemon returned an error */
	EXIT_USAGE = 2,       /* bad command line */
	EXIT_UNREACHABLE = 3, /* cannot reach the daemon / connection lost */
	EXIT_NOT_FOUND = 4,   /* reason "not-found" */
	EXIT_CONFLICT = 5,    /* reason "conflict" */
};

/* Default timeout of one RPC call. */
#define CLI_CALL_TIMEOUT_MS (120 * 1000)

struct cli_ctx {
	const char *uri;  /* --connect / --socket / env / default */
	bool json;        /* --json */
	const char *verb; /* for messages: "start", "host check" */
	qv_rpc_conn *conn;
};

struct cli_verb {
	const char *name; /* "list", or "host info" for two-word verbs */
	int (*fn)(struct cli_ctx *ctx, int argc, char **argv); /* argv[0] = last word */
	const char *usage;   /* arguments after the name */
	const char *summary;
};

extern const struct cli_verb cli_verbs[];
extern const size_t cli_n_verbs;

/* cli/conn.c */
/* Connect if not yet connected; on failure prints and returns EXIT_UNREACHABLE. */
int cli_connect(struct cli_ctx *ctx);
/* Exit code for a failed qv_rpc_* return value and its error. */
int cli_exit_code(int r, const struct qv_error *err);
/* Print "qvisor: <verb>: [<what>: ]<message> (<reason>)"; returns the exit code. */
int cli_report(struct cli_ctx *ctx, const char *what, int r, const struct qv_error *err);
/* Connect, call, report errors. Returns an exit code; *ret_result on success. */
int cli_call(struct cli_ctx *ctx, const char *method, json_object *params, int timeout_ms,
	     json_object **ret_result);
/* Usage error: prints message and usage line, returns EXIT_USAGE. */
int cli_usage_error(struct cli_ctx *ctx, const char *fmt, ...) _printf_(2, 3);
void cli_print_verb_help(const struct cli_verb *v, FILE *f);
const struct cli_verb *cli_find_verb(const char *name);
/* params helper: {"name": name} */
json_object *cli_params_name(const char *name);
/* Parse "10G", "512M", "4096", "1.5GiB" into bytes. */
int cli_parse_size(const char *s, uint64_t *ret_bytes);
/* Read a JSON document from a file or "-" (stdin). */
int cli_read_json_file(struct cli_ctx *ctx, const char *path, json_object **ret);

/* cli/batch.c: the same method on many VMs, pipelined on one connection,
 * at most `parallel` requests in flight (0: all at once; qvisord bounds how
 * many QEMUs start at once, --max-starts, so the CLI need not). */
#define CLI_BATCH_PARALLEL_DEFAULT 0
struct cli_batch {
	const char *method;
	int timeout_ms; /* per request, from the moment it is sent */
	int parallel;
	/* params for one name (new reference) */
	json_object *(*params)(const char *name, void *userdata);
	/* human line for a success */
	void (*print)(const char *name, json_object *result, void *userdata);
	void *userdata;
};
int cli_batch_run(struct cli_ctx *ctx, const struct cli_batch *b, char **names, size_t n);
/* --parallel N (1..1024); EXIT_OK or a usage error. */
int cli_parse_parallel(struct cli_ctx *ctx, const char *arg, int *ret);
/* Names of VMs from vm.list; active=true selects running/paused/..., false the
 * others. Returns an exit code; *ret_names is a NULL-terminated strv. */
int cli_vm_names(struct cli_ctx *ctx, bool active, char ***ret_names, size_t *ret_n);
bool cli_state_is_active(const char *state);

/* cli/relay.c: copy bytes between (in_fd, out_fd) and sock until EOF.
 * escape >= 0: a byte on in_fd that detaches. linger_ms: after in_fd EOF, how
 * long to keep reading sock while it is quiet (-1: until sock EOF). */
int cli_relay(int in_fd, int out_fd, int sock, int escape, int linger_ms);
int cli_connect_unix(const char *path);

/* cli/progress.c: notification handler rendering "progress" notifications. */
void cli_progress_notify(qv_rpc_conn *c, const char *method, json_object *params, void *ud);
void cli_progress_finish(void);
