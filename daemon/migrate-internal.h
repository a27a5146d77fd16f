/* SPDX-License-Identifier: MIT */
#pragma once

#include "daemon/migrate.h"
#include "daemon/vm.h"
#include "migrate/converge.h"

/* One migration known to this daemon, source or destination side. */
struct qv_mig {
	struct qv_mig *next;
	struct qv_daemon *d;
	char *vm;
	char id[96];
	bool source;
	char state[24];          /* "performing", "completed", "prepared", ... */
	/* source */
	mig_engine *engine;
	qv_rpc_call *perform_call;
	qv_rpc_client *client;   /* for progress notifications */
	char *peer;
	json_object *stats;
	/* destination */
	char token[33];
	bool created;            /* prepare defined the VM */
	enum vm_restart_policy saved_policy;
	qv_source *watch;
	uint64_t expires_ms;
	qv_rpc_call *finish_call;
	uint64_t finish_deadline;
};

struct qv_mig *qv_mig_find(const char *vm, bool source);
struct qv_mig *qv_mig_new(struct qv_daemon *d, const char *vm, bool source);
/* Unlink, delete the record, free. */
void qv_mig_drop(struct qv_mig *m);
/* Persist m (state, peer, token, stats). */
void qv_mig_persist(struct qv_mig *m);

/* migrate-source.c */
int qv_mig_perform(qv_rpc_call *call, struct qv_vm *vm, const struct mig_engine_opts *o);
int qv_mig_confirm(qv_rpc_call *call, struct qv_mig *m, bool keep_definition);
int qv_mig_cancel_source(qv_rpc_call *call, struct qv_mig *m);
int qv_mig_recover(struct qv_daemon *d, const char *name, json_object **ret,
		   struct qv_error *errp);

/* migrate-dest.c */
struct qv_mig_prepare {
	json_object *spec;
	const char *listen;
	const char *address;
	int port;
	unsigned timeout_s;
};
int qv_mig_prepare(struct qv_daemon *d, const struct qv_mig_prepare *p, json_object **ret,
		   struct qv_error *errp);
int qv_mig_finish(qv_rpc_call *call, struct qv_mig *m);
/* Kill the incoming QEMU, undefine the VM if prepare created it, drop m. */
void qv_mig_teardown_dest(struct qv_mig *m, const char *why);
void qv_mig_dest_rearm(struct qv_mig *m);
