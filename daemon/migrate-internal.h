/* SPDX-License-Identifier: MIT */
#pragma once

#include "daemon/migrate.h"
#include "daemon/vm.h"
#include "migrate/converge.h"
#include "migrate/mirror.h"

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
	/* source, copy_storage: the mirror runs first, the engine starts once
	 * every job is READY (opts kept until then) */
	mig_mirror *mirror;
	qv_source *mirror_timer;
	uint64_t mirror_query;   /* id of the query-block-jobs in flight, 0 none */
	uint64_t mirror_t0;      /* the mirror's completion began (ms) */
	/* the perform start (TLS objects, parameters, the mirror's
	 * blockdev-add/blockdev-mirror) on the loop; then the mirror or engine */
	qmp_seq *start_seq;
	char *tls_stage_dir;     /* staged credentials to remove once it ended */
	struct mig_engine_opts opts;
	char *opts_uri, *opts_multifd_reason;
	uint64_t mirror_deadline;
	/* destination */
	char token[33];
	bool created;            /* prepare defined the VM */
	enum vm_restart_policy saved_policy;
	qv_source *watch;
	uint64_t expires_ms;
	qv_rpc_call *finish_call;
	uint64_t finish_deadline;
	bool nbd;                /* NBD server running in the incoming QEMU */
	bool luks;               /* a created image is encrypted (slow to activate) */
	bool tls;                /* stream and NBD over TLS (migrate-tls.c) */
	bool postcopy;           /* prepared with postcopy-ram (allow_postcopy) */
	bool postcopy_running;   /* we sent `cont` at postcopy-active */
	char **images;           /* images prepare created (deleted on teardown) */
	char *source_uri;        /* how to reach the source daemon (prepare's "source") */
	int64_t resume_unix_us;  /* the guest's RESUME here at finish */
	uint64_t complete_since; /* incoming seen completed, not finished (monotonic ms) */
	bool asking;             /* migrate-ask.c: a question to the source is out */
	bool querying;           /* dest_watch's query-migrate is out (asynchronous) */
	bool cont_finish;        /* finish's cont is out (asynchronous) */
	bool cont_postcopy;      /* the postcopy switch's cont is out */
	size_t n_images;
	/* migrate.prepare still running on the loop (the incoming QEMU's
	 * start, then its QMP sequence): state "preparing", the reply due */
	struct qv_mig_prep *prep;
};

struct qv_mig *qv_mig_find(const char *vm, bool source);
/* The process-wide list (for the metrics). */
struct qv_mig *qv_mig_first(void);
/* daemon/migrate-metrics.c: an outgoing migration ended (stats: the
 * engine's, NULL on failure). */
void qv_mig_metrics_done(const char *vm, bool ok, json_object *stats);
/* A migration this daemon drove (vm.migrate) ended: its duration
 * (duration_ms < 0: unknown, e.g. resumed after a restart) and, when
 * completed, the guest's blackout from stats (downtime_ms with
 * downtime_source "stop-to-resume"). */
void qv_mig_metrics_driven(bool ok, int64_t duration_ms, json_object *stats);
struct qv_mig *qv_mig_new(struct qv_daemon *d, const char *vm, bool source);
/* Unlink, delete the record, free. */
void qv_mig_drop(struct qv_mig *m);
/* Unlink and free, keeping the record (a tombstone). */
void qv_mig_retire(struct qv_mig *m);
/* Persist m (state, peer, token, stats). */
void qv_mig_persist(struct qv_mig *m);

/* migrate-source.c */
struct qv_mig_storage {
	bool copy;             /* mirror every writable disk to the NBD server */
	const char *nbd_host;
	int nbd_port;
	/* transport (migrate-tls.c): TLS to a server whose certificate names
	 * tls_hostname (default: the URI's host) */
	bool tls;
	const char *tls_hostname;
};
int qv_mig_perform(qv_rpc_call *call, struct qv_vm *vm, const struct mig_engine_opts *o,
		   const struct qv_mig_storage *st);
/* migrate.plan: disks (index, path, format, virtual_size, copy) and the
 * multifd decision. */
int qv_mig_plan(struct qv_daemon *d, struct qv_vm *vm, bool copy_storage, double bandwidth_bps,
		json_object **ret, struct qv_error *errp);
int qv_mig_confirm(qv_rpc_call *call, struct qv_mig *m, bool keep_definition);
int qv_mig_cancel_source(qv_rpc_call *call, struct qv_mig *m, bool never_ran);
/* migrate-recover.c: resolve the source side of a migration a previous
 * daemon drove (migrate.recover), on the loop. call (NULL at daemon start:
 * logged) is answered at the end. */
void qv_mig_recover_async(struct qv_daemon *d, const char *name, qv_rpc_call *call);
/* Daemon start: qv_mig_p2p_resume_all once the recoveries started at
 * start ended (now if none). */
void qv_mig_resume_drivers_after_recovery(struct qv_daemon *d);

/* migrate-dest.c */
struct qv_mig_prepare {
	json_object *spec;
	const char *listen;
	const char *address;
	const char *source;      /* the source daemon's URI, recorded */
	int port;
	unsigned timeout_s;
	unsigned multifd_channels;
	bool copy_storage;
	bool allow_postcopy;     /* postcopy-ram before migrate-incoming */
	json_object *disk_sizes; /* array of virtual sizes, one per spec disk */
	json_object *disk_keys;  /* encrypted disks: passphrase or null per disk
				  * (migrate-keys.c); only over TLS/unix */
	bool tls;                /* stream and NBD over TLS (migrate-tls.c) */
	const char *peer_dn;     /* the source QEMU's certificate DN (tls-authz) */
	const char *rpc_local;   /* our address on the caller's TCP connection */
	const char *token;       /* chosen by the source (32 hex digits), else ours */
};
/* Answers call later (or at once on a refusal): the incoming QEMU starts
 * asynchronously and its prepare steps run as a QMP sequence on the loop.
 * p's strings and JSON borrow from params, of which a reference is held
 * until the answer. */
void qv_mig_prepare(qv_rpc_call *call, struct qv_daemon *d, const struct qv_mig_prepare *p,
		    json_object *params);
/* qv_mig_teardown_dest() on a migration still preparing: true when the
 * teardown goes on now (the QMP sequence was cancelled and prepare
 * answered with an error), false when the incoming QEMU is still starting
 * and the teardown runs once its start ended. */
bool qv_mig_prep_abort(struct qv_mig *m, const char *why);
int qv_mig_finish(qv_rpc_call *call, struct qv_mig *m);
/* Kill the incoming QEMU, undefine the VM if prepare created it, drop m. */
void qv_mig_teardown_dest(struct qv_mig *m, const char *why);
void qv_mig_dest_rearm(struct qv_mig *m);
/* migrate-dest.c: destination images and the NBD server (copy_storage) */
/* The pool image name for disk i of VM vm on a destination (storage
 * migration, cold migration): the source file's base name without its
 * format suffix, else "<vm>-disk<i>". */
int qv_mig_dest_image_name(const char *vm, size_t i, const struct vm_disk *dk, char *buf,
			   size_t size);
/* migrate-dest-images.c: create the copy_storage images for spec in the
 * pool on a worker thread (qemu-img, the LUKS PBKDF: never on the loop).
 * Checked now (sizes, names, keys; nothing created on a refusal); fn runs
 * on the loop once created: on success m->images lists them (deleted on
 * teardown), their keys are in the keystore and spec's disks point at
 * them; on failure nothing is left. */
struct qv_mig_create;
typedef void (*qv_mig_create_fn)(int error, const struct qv_error *errp, void *ud);
int qv_mig_dest_images(struct qv_daemon *d, struct qv_mig *m, struct vm_spec *spec,
		       json_object *sizes, json_object *keys, qv_mig_create_fn fn, void *ud,
		       struct qv_mig_create **ret, struct qv_error *errp);
/* A teardown: fn never runs, m and spec are no longer used; the worker
 * stops before its next image and what it created is removed when its
 * thread ended. */
void qv_mig_dest_images_abandon(struct qv_mig_create *c);
/* migrate.status of m while it prepares (m->prep set; nothing persisted
 * yet): {id, name, role, state: "preparing", step, steps_done?, active},
 * step "creating-images", "start-queued", "starting-qemu" or
 * "configuring-incoming" (steps_done: its QMP steps answered). */
json_object *qv_mig_prep_status(const struct qv_mig *m);
/* Pick the NBD port now; nbd-server-start and block-export-add go out as
 * steps of s (m->nbd once the server runs). */
int qv_mig_dest_nbd_steps(struct qv_mig *m, struct qv_vm *vm, const char *listen,
			  const char *advert, qmp_seq *s, char *ret_uri, size_t uri_size,
			  struct qv_error *errp);
void qv_mig_dest_nbd_stop(struct qv_mig *m, struct qv_vm *vm);
void qv_mig_dest_delete_images(struct qv_mig *m);
/* migrate-ask.c: ask the source (m->source_uri) whether it still drives
 * this migration; tears m down when it does not. Never blocks. */
void qv_mig_dest_ask_source(struct qv_mig *m);
/* From the watchdog: ask once the incoming side has been "completed" for
 * 30 s without a finish (and every 30 s after). */
void qv_mig_dest_check_stuck(struct qv_mig *m, const char *incoming_status);
/* Pick a free TCP port on addr (migrate-dest.c). */
int qv_mig_pick_port(const char *addr, int *ret_port, struct qv_error *errp);

/* Test hook: SIGKILL ourselves when $QVISORD_TEST_CRASH_AT == point. */
void qv_mig_test_crash_point(const char *point);
/* QVISORD_TEST_STALL_AT=point: SIGSTOP QEMU pid there, SIGCONT it
 * QVISORD_TEST_STALL_MS (3000) later from the loop; once per daemon. */
void qv_mig_test_stall_point(struct qv_daemon *d, const char *point, pid_t pid);

/* migrate-p2p.c: vm.migrate, the daemon-driven protocol (migrate/protocol.h) */
struct qv_p2p;
struct qv_p2p *qv_mig_p2p_find(const char *vm);
/* Runs the protocol for vm to the daemon at `to`; answers call at the end.
 * opts (borrowed) are vm.migrate's params. */
int qv_mig_p2p_start(qv_rpc_call *call, struct qv_daemon *d, const char *vm, const char *to,
		     json_object *opts);
/* -EBUSY (conflict) once finish may have run on the destination. */
int qv_mig_p2p_cancel(struct qv_p2p *x, struct qv_error *errp);
const char *qv_mig_p2p_phase(const struct qv_p2p *x);
/* The destination's token the driver holds ("" before prepare answered). */
const char *qv_mig_p2p_token(const struct qv_p2p *x);
/* Daemon start: continue every persisted driver record. */
void qv_mig_p2p_resume_all(struct qv_daemon *d);
/* migrate-source.c: cancel a running engine or storage mirror (perform
 * then fails). -EBUSY after the postcopy switch, -EALREADY when neither
 * runs. */
int qv_mig_stop_outgoing(struct qv_mig *m, struct qv_error *errp);

/* migrate-tls.c: TLS for the stream and NBD (docs/security.md) */
/* May this daemon migrate with (or without) TLS? Plain needs --insecure,
 * TLS a loaded PKI. */
int qv_mig_tls_allowed(struct qv_daemon *d, bool tls, struct qv_error *errp);
/* Incoming QEMU: server credentials and an authz-list admitting only
 * peer_dn, set as migration parameters (the NBD server reuses both). */
/* As steps of s (the prepare sequence); the credentials are staged now
 * (*ret_stage_dir, malloc'd: qemu_tls_unstage() it when s ended). */
int qv_mig_tls_dest_steps(struct qv_daemon *d, struct qv_vm *vm, const char *peer_dn, qmp_seq *s,
			  char **ret_stage_dir, struct qv_error *errp);
/* Outgoing QEMU: client credentials and tls-hostname, or TLS cleared for a
 * plain migration, as steps of s (the perform start's sequence on the
 * loop): the credentials are staged now (*ret_stage_dir, malloc'd, also set on failure once
 * staged: qemu_tls_unstage() it when s ended), the objects and parameters
 * go out with s. */
int qv_mig_tls_source_steps(struct qv_daemon *d, struct qv_vm *vm, bool tls, const char *hostname,
			    qmp_seq *s, char **ret_stage_dir, struct qv_error *errp);

/* migrate-source.c / migrate-source-start.c: the source QEMU's QMP client
 * (NULL when gone); a failure before the RAM copy (reply, resume, drop m);
 * the engine's start; an asynchronous query-block-jobs (during_ram: check
 * the jobs, else start the engine once READY); the perform start. */
qmp_client *qv_mig_source_qmp(void *ud);
void qv_mig_start_failed(struct qv_mig *m, const struct qv_error *errp, const char *status);
int qv_mig_start_engine(struct qv_mig *m, struct qv_error *errp);
void qv_mig_mirror_query(struct qv_mig *m, bool during_ram, struct qv_error *errp);
int qv_mig_perform_start(struct qv_mig *m, struct qv_vm *vm, const struct qv_mig_storage *st,
			 struct qv_error *errp);

/* Source side helpers shared by migrate-source.c and migrate-recover.c. */
/* Make sure the source guest runs again after a failed/cancelled migration,
 * on the loop (daemon/migrate-resume.c; QEMU restarts the vCPUs itself on
 * failure, `cont` covers the rest): what the caller does
 * once the source runs again (or could not be resumed: logged). Every
 * member is taken; *tail is cleared. The tail may run before this
 * returns (the VM or its QEMU is gone). */
struct qv_mig_resume_tail {
	qv_rpc_call *call;       /* answered at the end (NULL: none) */
	struct qv_error err;     /* set: the call's error, with data */
	json_object *data;       /* error data, or the result when err is unset */
	json_object *ev;         /* "migration-failed" data to emit, NULL: none */
	bool resume_error_fails; /* a failed resume is the call's error */
	const char *what;        /* log context (static), e.g. " after a failed migration" */
	/* the source record, deleted only now: a daemon that dies before
	 * the `cont` finds it at restart and recovers (resumes) */
	char record_id[96];
	/* Runs last (may be NULL), after the call was answered. */
	void (*done)(struct qv_daemon *d, const char *name, int error, void *ud);
	void *done_ud;
};
void qv_mig_resume_source_async(struct qv_daemon *d, const char *name,
				struct qv_mig_resume_tail *tail);
/* Abort mm (taken) for VM name on the loop: force-cancel, then a timer polls. */
void qv_mig_mirror_dispose(struct qv_daemon *d, const char *name, mig_mirror *mm);
/* A leftover mirror of VM name is still being reaped. */
bool qv_mig_mirror_cleanup_pending(const char *name);

/* migrate-keys.c: encrypted disks. vm.migrate refuses before anything
 * starts unless every encrypted disk is copied (copy_storage) to a
 * destination reached over tls:// (or the local unix socket). */
int qv_mig_check_encrypted(struct qv_daemon *d, struct qv_vm *vm, const char *to,
			   bool copy_storage, struct qv_error *errp);
/* migrate.prepare params with copy_storage: add disk_keys when a disk is
 * encrypted (sent by the p2p driver, never recorded). */
int qv_mig_add_disk_keys(struct qv_daemon *d, const char *name, const char *to,
			 json_object *params, struct qv_error *errp);
