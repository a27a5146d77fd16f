/* SPDX-License-Identifier: MIT */
/* Runs a parsed drill: shapes the link, creates (or finds) the VMs, runs
 * every migration with its fault, checks the expectations after each one
 * (placement by vm.list on both hosts) and builds the report JSON. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/drill.h"
#include "cli/migrate-run.h"

#define MAX_POINTS 5000

struct drill_ctx {
	struct drill *d;
	qv_rpc_conn *c[2], *f[2];
	int loc[DRILL_MAX_VMS]; /* host running each VM */
};

/* Per migration: what the observer collects. */
struct mig_obs {
	struct drill_fault_state fs;
	json_object *series, *decisions;
	int64_t last_t;
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

static json_object *jnum(json_object *o, const char *k)
{
	json_object *v;
	return o && json_object_object_get_ex(o, k, &v) ? v : NULL;
}

static int64_t jint(json_object *o, const char *k, int64_t dflt)
{
	json_object *v = jnum(o, k);
	return v ? json_object_get_int64(v) : dflt;
}

/* vm.list state of vm on host i: "absent", a state, or "unknown". */
static void vm_state(struct drill_ctx *x, int i, const char *vm, char *buf, size_t size)
{
	_cleanup_json_ json_object *r = NULL;
	json_object *vms;

	snprintf(buf, size, "unknown");
	if (qv_rpc_invoke(x->c[i], "vm.list", NULL, 30000, &r, NULL) < 0 ||
	    !json_object_object_get_ex(r, "vms", &vms))
		return;
	snprintf(buf, size, "absent");
	for (size_t k = 0; k < json_object_array_length(vms); k++) {
		json_object *e = json_object_array_get_idx(vms, k), *n, *s;
		if (json_object_object_get_ex(e, "name", &n) && streq(json_object_get_string(n), vm) &&
		    json_object_object_get_ex(e, "state", &s))
			snprintf(buf, size, "%s", json_object_get_string(s));
	}
}

static void on_progress(json_object *n, uint64_t t_ms, void *ud)
{
	struct mig_obs *mo = ud;
	const char *type = json_object_get_string(jnum(n, "type"));
	json_object *copy;

	if (type && streq(type, "decision")) {
		copy = json_object_new_object();
		json_object_object_foreach(n, k, v)
			if (!streq(k, "name") && !streq(k, "type"))
				json_object_object_add(copy, k, json_object_get(v));
		json_object_array_add(mo->decisions, copy);
	} else if (type && streq(type, "progress") && jnum(n, "remaining")) {
		int64_t t = jint(n, "elapsed_ms", (int64_t)t_ms);
		if (json_object_array_length(mo->series) < MAX_POINTS && t >= mo->last_t) {
			json_object *pt = json_object_new_array();
			json_object_array_add(pt, json_object_new_int64(t));
			json_object_array_add(pt, json_object_new_int64(jint(n, "remaining", 0)));
			json_object_array_add(mo->series, pt);
			mo->last_t = t;
		}
	}
	drill_fault_tick(&mo->fs, t_ms);
}

static void on_tick(uint64_t t_ms, void *ud)
{
	drill_fault_tick(&((struct mig_obs *)ud)->fs, t_ms);
}

static void add_check(json_object *arr, const char *name, json_object *expected,
		      json_object *actual, bool pass, int *failures)
{
	json_object *c = json_object_new_object();

	json_object_object_add(c, "name", json_object_new_string(name));
	json_object_object_add(c, "expected", expected);
	json_object_object_add(c, "actual", actual);
	json_object_object_add(c, "pass", json_object_new_boolean(pass));
	json_object_array_add(arr, c);
	*failures += !pass;
}

static json_object *mopts_json(const struct drill_mopts *m)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "max_downtime_ms", json_object_new_int64(m->max_downtime_ms));
	json_object_object_add(o, "bandwidth_mbps", json_object_new_int64(m->bandwidth_mbps));
	json_object_object_add(o, "deadline_s", json_object_new_int64(m->deadline_s));
	json_object_object_add(o, "plain", json_object_new_boolean(m->plain));
	json_object_object_add(o, "copy_storage", json_object_new_boolean(m->copy_storage));
	return o;
}

/* Wait until the destination holds no active copy (a failed migration's
 * incoming QEMU is torn down asynchronously). */
static void wait_dest_idle(struct drill_ctx *x, int dst, const char *vm)
{
	char st[32];

	for (int t = 0; t < 30000; t += 250) {
		vm_state(x, dst, vm, st, sizeof(st));
		if (streq(st, "absent") || (!cli_state_is_active(st) && !streq(st, "migrating")))
			return;
		sleep_ms(250);
	}
}

static void checks(const struct drill_expect *ex, int r, int64_t wall_ms, json_object *stats,
		   const struct drill_fault_state *fs, int running, bool on_expected,
		   json_object *arr, int *failures)
{
	if (ex->expect_failure == 1)
		add_check(arr, "expect_failure", json_object_new_string("failed"),
			  json_object_new_string(r < 0 ? "failed" : "migrated"), r < 0, failures);
	if (ex->must_converge == 1)
		add_check(arr, "must_converge", json_object_new_string("migrated"),
			  json_object_new_string(r < 0 ? "failed" : "migrated"), r == 0, failures);
	if (fs->f && fs->f->kind)
		add_check(arr, "fault_injected", json_object_new_boolean(true),
			  json_object_new_boolean(fs->fired), fs->fired, failures);
	if (ex->max_downtime_ms >= 0 && ex->expect_failure != 1) {
		int64_t dt = jint(stats, "downtime_ms", -1);
		add_check(arr, "max_downtime_ms", json_object_new_int64(ex->max_downtime_ms),
			  dt >= 0 ? json_object_new_int64(dt) : NULL,
			  dt >= 0 && dt <= ex->max_downtime_ms, failures);
	}
	if (ex->max_total_s >= 0)
		add_check(arr, "max_total_s", json_object_new_int64(ex->max_total_s),
			  json_object_new_double((double)wall_ms / 1000.0),
			  wall_ms <= ex->max_total_s * 1000, failures);
	if (ex->one_copy == 1)
		add_check(arr, "exactly_one_running_copy", json_object_new_int(1),
			  json_object_new_int(running), running == 1 && on_expected, failures);
}

static json_object *migrate_once(struct drill_ctx *x, const struct drill_step *s, size_t step,
				 int64_t rep, int *failures)
{
	struct drill *d = x->d;
	const char *vm = d->vms[s->vm].name, *phase = NULL;
	int src = x->loc[s->vm], dst = 1 - src, r, running = 0;
	struct drill_mopts m = drill_step_mopts(d, s);
	struct drill_expect ex = drill_step_expect(d, s);
	struct cli_migrate_opts o = { .max_downtime_ms = m.max_downtime_ms,
				      .bandwidth_mibps = m.bandwidth_mbps,
				      .deadline_s = m.deadline_s, .plain = m.plain, .quiet = true };
	struct mig_obs mo = { .series = json_object_new_array(),
			      .decisions = json_object_new_array(),
			      .fs = { .f = &s->fault, .src_host = &d->hosts[src],
				      .dst_host = &d->hosts[dst], .src_fault = x->f[src],
				      .dst_fault = x->f[dst], .vm = vm } };
	struct cli_migrate_observer obs = { on_progress, on_tick, 100, &mo };
	_cleanup_json_ json_object *stats = NULL;
	json_object *row = json_object_new_object(), *checks_arr = json_object_new_array(), *st;
	struct qv_error err = {};
	char states[2][32];
	uint64_t t0;

	o.copy_storage = m.copy_storage;
	wait_dest_idle(x, dst, vm);
	fprintf(stderr, "drill: step %zu (%s) #%lld: %s host%d -> host%d%s%s\n", step, s->name,
		(long long)rep, vm, src, dst, s->fault.kind ? ", fault " : "",
		s->fault.kind ? drill_fault_name(s->fault.kind) : "");
	t0 = now_ms();
	r = cli_migrate_run_observed(x->c[src], d->hosts[dst].uri, vm, &o, NULL, &obs, &phase, &stats,
				     &err);
	int64_t wall = (int64_t)(now_ms() - t0);
	drill_fault_finish(&mo.fs, now_ms() - t0);
	int expect_on = r == 0 ? dst : src;
	for (int i = 0; i < 2; i++) {
		vm_state(x, i, vm, states[i], sizeof(states[i]));
		running += streq(states[i], "running");
	}
	checks(&ex, r, wall, stats, &mo.fs, running, streq(states[expect_on], "running"),
	       checks_arr, failures);
	if (r == 0)
		x->loc[s->vm] = dst;

	json_object_object_add(row, "step", json_object_new_int64((int64_t)step));
	json_object_object_add(row, "step_name", json_object_new_string(s->name));
	json_object_object_add(row, "repeat_index", json_object_new_int64(rep));
	json_object_object_add(row, "vm", json_object_new_string(vm));
	json_object_object_add(row, "from", json_object_new_int(src));
	json_object_object_add(row, "to", json_object_new_int(dst));
	json_object_object_add(row, "options", mopts_json(&m));
	if (s->fault.kind) {
		json_object *f = json_object_new_object();
		json_object_object_add(f, "kind", json_object_new_string(drill_fault_name(s->fault.kind)));
		json_object_object_add(f, "at_ms", json_object_new_int64(s->fault.at_ms));
		if (s->fault.kind == DRILL_FAULT_LINK_CUT) {
			json_object_object_add(f, "duration_ms", json_object_new_int64(s->fault.duration_ms));
			json_object_object_add(f, "side", json_object_new_string(s->fault.side ? "destination" : "source"));
		}
		json_object_object_add(f, "fired", json_object_new_boolean(mo.fs.fired));
		json_object_object_add(f, "fired_at_ms", mo.fs.fired ? json_object_new_int64(mo.fs.fired_at_ms) : NULL);
		json_object_object_add(f, "result", json_object_new_string(mo.fs.result));
		json_object_object_add(row, "fault", f);
	}
	json_object_object_add(row, "result", json_object_new_string(r == 0 ? "migrated" : "failed"));
	if (r < 0) {
		json_object *e = json_object_new_object();
		json_object_object_add(e, "phase", json_object_new_string(phase ? phase : "?"));
		json_object_object_add(e, "reason", json_object_new_string(err.reason));
		json_object_object_add(e, "message", json_object_new_string(err.message));
		json_object_object_add(row, "error", e);
	}
	json_object_object_add(row, "wall_ms", json_object_new_int64(wall));
	if (stats && json_object_object_get_ex(stats, "decisions", &st)) {
		json_object_object_add(row, "decisions", json_object_get(st));
		json_object_put(mo.decisions);
	} else {
		json_object_object_add(row, "decisions", mo.decisions);
	}
	if (stats)
		json_object_object_del(stats, "decisions");
	json_object_object_add(row, "stats", stats ? json_object_get(stats) : NULL);
	json_object_object_add(row, "series", mo.series);
	st = json_object_new_object();
	json_object_object_add(st, "host0", json_object_new_string(states[0]));
	json_object_object_add(st, "host1", json_object_new_string(states[1]));
	json_object_object_add(st, "running_copies", json_object_new_int(running));
	json_object_object_add(row, "placement", st);
	json_object_object_add(row, "expectations", checks_arr);
	return row;
}

/* Absolute guest dir: vm.guest_dir, $QV_GUEST_DIR, else build/guest. */
static int guest_file(const struct drill_vm *vm, const char *name, char **ret)
{
	const char *g = vm->guest_dir ? vm->guest_dir : getenv("QV_GUEST_DIR");
	char dir[PATH_MAX];

	if (!realpath(g && *g ? g : "build/guest", dir))
		return -errno;
	return asprintf(ret, "%s/%s", dir, name) < 0 ? -ENOMEM : 0;
}

static json_object *vm_spec_json(const struct drill_vm *vm, struct qv_error *errp)
{
	_cleanup_free_ char *k = NULL, *i = NULL, *cmd = NULL;
	json_object *s;

	if (vm->spec) {
		s = json_tokener_parse(json_object_to_json_string(vm->spec)); /* deep copy */
		json_object_object_add(s, "name", json_object_new_string(vm->name));
		return s;
	}
	if (guest_file(vm, "vmlinuz", &k) < 0 || guest_file(vm, "initrd.img", &i) < 0 ||
	    access(k, R_OK) < 0 || access(i, R_OK) < 0) {
		qv_error_set(errp, ENOENT, QV_REASON_NOT_FOUND,
			     "test guest not found (set vms[].guest_dir or QV_GUEST_DIR)");
		return NULL;
	}
	if (asprintf(&cmd, "console=ttyS0 panic=-1%s%s", vm->dirty ? " qv.dirty=" : "",
		     vm->dirty ? vm->dirty : "") < 0)
		return NULL;
	s = json_object_new_object();
	json_object_object_add(s, "name", json_object_new_string(vm->name));
	json_object_object_add(s, "vcpus", json_object_new_int64(vm->vcpus));
	json_object_object_add(s, "memory", json_object_new_int64(vm->memory_mib));
	json_object_object_add(s, "machine", json_object_new_string("q35"));
	json_object_object_add(s, "accel", json_object_new_string("tcg"));
	json_object_object_add(s, "kernel", json_object_new_string(k));
	json_object_object_add(s, "initrd", json_object_new_string(i));
	json_object_object_add(s, "cmdline", json_object_new_string(cmd));
	if (vm->disk) {
		json_object *disks = json_object_new_array(), *dk = json_object_new_object();
		json_object_object_add(dk, "path", json_object_new_string(vm->disk));
		json_object_array_add(disks, dk);
		json_object_object_add(s, "disks", disks);
	}
	return s;
}

static bool file_has(const char *path, const char *needle)
{
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	char line[512];

	while (f && fgets(line, sizeof(line), f))
		if (strstr(line, needle))
			return true;
	return false;
}

/* A test-guest VM is ready when its serial log (readable for a local
 * daemon) shows the dirtier (or /init) started; otherwise wait 20 s. */
static void wait_ready(struct drill_ctx *x, const struct drill_vm *vm, int host)
{
	_cleanup_json_ json_object *info = NULL;
	_cleanup_free_ char *log = NULL;
	const char *needle = vm->dirty ? "QVISOR-DIRTIER-START" : "QVISOR-GUEST-READY";
	json_object *rt, *rd;

	if (!vm->template)
		return;
	if (qv_rpc_invoke(x->c[host], "vm.info", cli_params_name(vm->name), 30000, &info, NULL) == 0 &&
	    json_object_object_get_ex(info, "runtime", &rt) &&
	    json_object_object_get_ex(rt, "run_dir", &rd) && json_object_get_string(rd))
		(void)!asprintf(&log, "%s/serial.log", json_object_get_string(rd));
	if (!log || access(log, R_OK) < 0) {
		sleep_ms(20000);
		return;
	}
	for (int64_t t = 0; t < vm->boot_timeout_s * 1000 && !file_has(log, needle); t += 250)
		sleep_ms(250);
}

static int setup_vm(struct drill_ctx *x, int i, json_object *notes, struct qv_error *errp)
{
	const struct drill_vm *vm = &x->d->vms[i];
	char st[2][32];
	json_object *p, *spec;
	int r;

	for (int h = 0; h < 2; h++)
		vm_state(x, h, vm->name, st[h], sizeof(st[h]));
	if (streq(st[0], "running") != streq(st[1], "running")) {
		x->loc[i] = streq(st[1], "running");
		json_object_array_add(notes, json_object_new_string("reused a running VM"));
		return 0;
	}
	if (streq(st[0], "running"))
		return qv_error_set(errp, EEXIST, QV_REASON_CONFLICT,
				    "VM %s runs on both hosts", vm->name);
	if (!vm->spec && !vm->template)
		return qv_error_set(errp, ENOENT, QV_REASON_CONFLICT,
				    "VM %s must run on exactly one of the two hosts", vm->name);
	x->loc[i] = (int)vm->host;
	if (streq(st[x->loc[i]], "absent")) {
		if (!(spec = vm_spec_json(vm, errp)))
			return -ENOENT;
		p = json_object_new_object();
		json_object_object_add(p, "spec", spec);
		if ((r = qv_rpc_invoke(x->c[x->loc[i]], "vm.define", p, 60000, NULL, errp)) < 0)
			return qv_error_prefix(errp, "define %s", vm->name), r;
	}
	if ((r = qv_rpc_invoke(x->c[x->loc[i]], "vm.start", cli_params_name(vm->name), 120000,
			       NULL, errp)) < 0)
		return qv_error_prefix(errp, "start %s", vm->name), r;
	fprintf(stderr, "drill: started %s on host%d, waiting for it to boot\n", vm->name, x->loc[i]);
	wait_ready(x, vm, x->loc[i]);
	return 0;
}

static void cleanup_vm(struct drill_ctx *x, int i)
{
	const char *name = x->d->vms[i].name;

	for (int h = 0; h < 2; h++) {
		json_object *p = cli_params_name(name);
		json_object_object_add(p, "force", json_object_new_boolean(true));
		(void)qv_rpc_invoke(x->c[h], "vm.stop", p, 60000, NULL, NULL);
		(void)qv_rpc_invoke(x->c[h], "vm.undefine", cli_params_name(name), 60000, NULL, NULL);
	}
}

static json_object *header(const struct drill *d, const char *file)
{
	json_object *rep = json_object_new_object(), *hosts = json_object_new_array(), *l;
	char ts[32];
	time_t now = time(NULL);

	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
	json_object_object_add(rep, "drill", json_object_new_string(d->name));
	json_object_object_add(rep, "file", json_object_new_string(file));
	json_object_object_add(rep, "started_at", json_object_new_string(ts));
	for (int i = 0; i < 2; i++)
		json_object_array_add(hosts, json_object_new_string(d->hosts[i].uri));
	json_object_object_add(rep, "hosts", hosts);
	l = json_object_new_object();
	json_object_object_add(l, "rate_mbps", json_object_new_int64(d->link.rate_mbps));
	json_object_object_add(l, "delay_ms", json_object_new_int64(d->link.delay_ms));
	json_object_object_add(rep, "link", l);
	return rep;
}

int drill_run(struct drill *d, const char *file, json_object **ret_report, struct qv_error *errp)
{
	struct drill_ctx x = { .d = d };
	_cleanup_json_ json_object *rep = header(d, file);
	json_object *steps = json_object_new_array(), *notes = json_object_new_array();
	int failures = 0, checks_n = 0, r = 0;
	uint64_t t0 = now_ms();

	json_object_object_add(rep, "migrations", steps);
	json_object_object_add(rep, "notes", notes);
	for (int i = 0; i < 2; i++)
		if ((r = qv_rpc_connect(d->hosts[i].uri, &x.c[i], errp)) < 0 ||
		    (r = qv_rpc_connect(d->hosts[i].uri, &x.f[i], errp)) < 0) {
			qv_error_prefix(errp, "hosts[%d] %s", i, d->hosts[i].uri);
			goto out;
		}
	if ((r = drill_link_shape(d, errp)) < 0)
		goto out;
	for (size_t i = 0; i < d->n_vms; i++)
		if ((r = setup_vm(&x, (int)i, notes, errp)) < 0)
			goto out_unshape;
	for (size_t s = 0; s < d->n_steps; s++)
		for (int64_t k = 0; k < d->steps[s].repeat; k++)
			json_object_array_add(steps, migrate_once(&x, &d->steps[s], s, k, &failures));
	for (size_t i = 0; i < json_object_array_length(steps); i++)
		checks_n += (int)json_object_array_length(
			jnum(json_object_array_get_idx(steps, i), "expectations"));
	if (d->cleanup)
		for (size_t i = 0; i < d->n_vms; i++)
			cleanup_vm(&x, (int)i);
out_unshape:
	drill_link_unshape(d);
out:
	for (int i = 0; i < 2; i++) {
		qv_rpc_conn_free(x.c[i]);
		qv_rpc_conn_free(x.f[i]);
	}
	if (r < 0)
		return r;
	json_object_object_add(rep, "total_s", json_object_new_double((double)(now_ms() - t0) / 1000.0));
	json_object_object_add(rep, "expectations_total", json_object_new_int(checks_n));
	json_object_object_add(rep, "expectations_failed", json_object_new_int(failures));
	json_object_object_add(rep, "passed", json_object_new_boolean(failures == 0));
	*ret_report = TAKE_PTR(rep);
	return 0;
}
