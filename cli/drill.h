/* SPDX-License-Identifier: MIT */
#pragma once

/* `qvisor drill run`: scripted migration drills (docs/migration.md, "Drills").
 * drill-parse.c validates a drill file into a struct drill; drill-run.c runs
 * it against two daemons; drill-faults.c shapes the link and injects faults;
 * drill-report.c writes report.json and the text table; drill-svg.c the
 * chart. The struct drill borrows its strings from the parsed JSON (root). */

#include <stdio.h>

#include "cli/cli.h"

#define DRILL_MAX_VMS 8
#define DRILL_MAX_STEPS 64
#define DRILL_MAX_MIGRATIONS 1000

enum drill_fault_kind {
	DRILL_FAULT_NONE,
	DRILL_FAULT_CANCEL,         /* migrate.cancel on the source at at_ms */
	DRILL_FAULT_KILL_DEST_QEMU, /* SIGKILL the incoming QEMU at at_ms */
	DRILL_FAULT_LINK_CUT,       /* ip link set down at at_ms, up after duration_ms */
};

struct drill_host {
	const char *uri;
	const char *netns; /* name (/var/run/netns/NAME) or path; NULL = current */
	const char *dev;   /* the host's end of the link; NULL = no shaping/cut */
};

struct drill_vm {
	const char *name;
	json_object *spec;    /* inline spec (borrowed), or NULL */
	const char *template; /* "test-guest" or NULL */
	const char *guest_dir;
	const char *dirty;    /* "RATE:WSS" for qv.dirty, or NULL */
	const char *disk;     /* raw image path added as disks[0], or NULL */
	int64_t memory_mib, vcpus, host, boot_timeout_s;
};

/* -1 = unset (inherit) for every integer; tristate bools as -1/0/1. */
struct drill_mopts {
	int64_t max_downtime_ms, bandwidth_mbps, deadline_s;
	int plain, copy_storage;
};

struct drill_fault {
	enum drill_fault_kind kind;
	int64_t at_ms, duration_ms;
	int side; /* link cut: 0 source end, 1 destination end */
};

struct drill_expect {
	int must_converge, expect_failure, one_copy;
	int64_t max_downtime_ms, max_total_s;
};

struct drill_step {
	const char *name;
	int vm; /* index into vms */
	int64_t repeat;
	struct drill_mopts mo;
	struct drill_fault fault;
	struct drill_expect ex;
};

struct drill {
	json_object *root; /* owns every borrowed string */
	const char *name;
	struct drill_host hosts[2];
	struct {
		int64_t rate_mbps, delay_ms;
	} link;
	struct drill_vm vms[DRILL_MAX_VMS];
	size_t n_vms;
	struct drill_mopts defaults;
	struct drill_expect expect;
	struct drill_step steps[DRILL_MAX_STEPS];
	size_t n_steps;
	bool cleanup;
};

/* drill-parse.c: strict validation; takes a reference to root. */
int drill_parse(json_object *root, struct drill *ret, struct qv_error *errp);
/* Effective options / expectations of a step (defaults applied). */
struct drill_mopts drill_step_mopts(const struct drill *d, const struct drill_step *s);
struct drill_expect drill_step_expect(const struct drill *d, const struct drill_step *s);
const char *drill_fault_name(enum drill_fault_kind k);

/* drill-faults.c */
int drill_exec_netns(const char *netns, char *const argv[], struct qv_error *errp);
int drill_link_shape(const struct drill *d, struct qv_error *errp);
void drill_link_unshape(const struct drill *d);
int drill_link_set(const struct drill_host *h, bool up, struct qv_error *errp);

/* A fault armed for one migration; fed by the migration's progress. */
struct drill_fault_state {
	const struct drill_fault *f;
	const struct drill_host *src_host, *dst_host;
	qv_rpc_conn *src_fault, *dst_fault; /* idle connections for the fault */
	const char *vm;
	bool fired, restored;
	int64_t fired_at_ms, restored_at_ms;
	char result[256];
};
void drill_fault_tick(struct drill_fault_state *fs, uint64_t t_ms);
void drill_fault_finish(struct drill_fault_state *fs, uint64_t t_ms);

/* drill-run.c: runs every step; *ret_report receives the report JSON.
 * Returns 0 when the drill ran (expectations may have failed: see
 * report.passed), -errno when it could not run. */
int drill_run(struct drill *d, const char *file, json_object **ret_report, struct qv_error *errp);

/* drill-report.c */
void drill_report_table(json_object *report, FILE *f);
int drill_report_write(json_object *report, const char *dir, struct qv_error *errp);

/* drill-svg.c */
int drill_svg_write(json_object *report, FILE *f);
