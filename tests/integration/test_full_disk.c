/* SPDX-License-Identifier: MIT */
/* A full disk under the state store: a real qvisord whose state directory
 * is a 4 MiB tmpfs (in a private mount namespace the test creates), with a
 * real guest running. Filling the disk must give clear no-space errors,
 * lose nothing already stored, keep the VM running and the daemon serving,
 * and everything must work again once space is freed, across a restart. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/json.h"
#include "helpers/guest.h"
#include "helpers/qvisord.h"

#define BOOT_TIMEOUT_MS 180000
#define MAX_DEFINES 2000

static struct qvt_daemon D;

static void fini(void)
{
	char dir[sizeof(D.dir)], state[sizeof(D.state_dir)];

	snprintf(dir, sizeof(dir), "%s", D.dir);
	snprintf(state, sizeof(state), "%s", D.state_dir);
	/* Unmount first (the daemon keeps its files open until it exits, which
	 * a lazy unmount allows), so that the cleanup can remove everything. */
	if (state[0])
		(void)umount2(state, MNT_DETACH);
	qvt_daemon_cleanup(&D);
	if (dir[0])
		(void)rmdir(dir);
}

TestSuite(full_disk, .fini = fini, .timeout = 400);

/* d's paths under a fresh dir whose state/ is a small tmpfs; the daemon
 * (forked later) inherits this process's private mount namespace. */
static const char *small_state_dir(struct qvt_daemon *d)
{
	snprintf(d->dir, sizeof(d->dir), "/tmp/qvf-XXXXXX");
	if (!mkdtemp(d->dir) || chmod(d->dir, 0711) < 0)
		return "mkdtemp";
	snprintf(d->state_dir, sizeof(d->state_dir), "%s/state", d->dir);
	snprintf(d->run_dir, sizeof(d->run_dir), "%s/run", d->dir);
	snprintf(d->socket, sizeof(d->socket), "%s/run/qvisord.sock", d->dir);
	snprintf(d->log, sizeof(d->log), "%s/qvisord.log", d->dir);
	if (unshare(CLONE_NEWNS) < 0)
		return "unshare(CLONE_NEWNS)";
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return "make / private";
	if (mkdir(d->state_dir, 0700) < 0 ||
	    mount("qvf", d->state_dir, "tmpfs", 0, "size=4m,mode=0700") < 0)
		return "mount a tmpfs";
	return NULL;
}

/* Write zeros to path until the filesystem is full. */
static void fill(const char *path)
{
	static char buf[64 << 10];
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ssize_t n;

	cr_assert_geq(fd, 0);
	do
		n = write(fd, buf, sizeof(buf));
	while (n > 0);
	cr_assert_eq(errno, ENOSPC, "filling %s: %m", path);
	close(fd);
}

static int run_shell(const char *fmt, const char *arg)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd), fmt, arg);
	return system(cmd);
}

static int64_t count_vms(void)
{
	struct qv_error err = {};
	json_object *r = qvt_call(&D, "vm.list", NULL, &err), *vms;
	int64_t n;

	cr_assert_not_null(r, "vm.list: %s", err.message);
	cr_assert(json_object_object_get_ex(r, "vms", &vms));
	n = (int64_t)json_object_array_length(vms);
	json_object_put(r);
	return n;
}

/* Define tiny VMs (no disk) until the store refuses; returns how many were
 * stored and checks the refusal is a clear no-space error. */
static int define_until_full(int start)
{
	struct qv_error err = {};
	int i;

	for (i = start; i < start + MAX_DEFINES; i++) {
		char name[32];
		snprintf(name, sizeof(name), "filler-%d", i);
		if (qvt_define_guest(&D, name, NULL, &err) < 0)
			break;
	}
	cr_assert_lt(i, start + MAX_DEFINES, "the store never ran out of space");
	cr_assert_str_eq(err.reason, "no-space", "define on a full disk: %s (%s)", err.message,
			 err.reason);
	cr_assert(strstr(err.message, "filler-") && strstr(err.message, "No space left"),
		  "unclear message: %s", err.message);
	return i - start;
}

Test(full_disk, state_store_refuses_cleanly_and_keeps_everything)
{
	struct qv_error err = {};
	char buf[32], filler[160];
	json_object *r, *v;
	const char *why;
	int pid, stored, more;

	QVT_REQUIRE_GUEST();
	if (geteuid() != 0)
		cr_skip_test("needs root (mount namespace, tmpfs)");
	why = small_state_dir(&D);
	if (why)
		cr_skip_test("cannot set up a small state disk: %s: %s", why, strerror(errno));
	cr_assert_eq(qvt_daemon_start(&D), 0, "qvisord did not start (log %s)", D.log);

	/* A guest keeps running through all of this. */
	cr_assert_eq(qvt_define_guest(&D, "keep", NULL, &err), 0, "%s", err.message);
	r = qvt_call_name(&D, "vm.start", "keep", &err);
	cr_assert_not_null(r, "start: %s", err.message);
	json_object_put(r);
	cr_assert_eq(qvt_wait_for_line_in_file(qvt_serial_log(&D, "keep"), QVT_GUEST_READY,
					       BOOT_TIMEOUT_MS), 0, "guest did not boot");
	pid = qvt_vm_pid(&D, "keep");
	cr_assert_gt(pid, 0);

	/* Fill the disk, then define until the store refuses. */
	snprintf(filler, sizeof(filler), "%s/filler", D.state_dir);
	fill(filler);
	stored = define_until_full(0);
	cr_log_info("%d VMs stored after the disk was filled", stored);
	cr_assert_eq(count_vms(), 1 + stored, "a refused VM was listed, or a stored one lost");
	cr_assert_eq(kill(pid, 0), 0, "the guest died");
	cr_assert_str_eq(qvt_vm_state(&D, "keep", buf, sizeof(buf)), "running");
	/* The daemon still serves, and operations that need no new space work. */
	r = qvt_call_name(&D, "vm.pause", "keep", &err);
	cr_assert_not_null(r, "pause on a full disk: %s", err.message);
	json_object_put(r);
	r = qvt_call_name(&D, "vm.resume", "keep", &err);
	cr_assert_not_null(r, "resume on a full disk: %s", err.message);
	json_object_put(r);

	/* Space back: defining works again. */
	cr_assert_eq(unlink(filler), 0);
	cr_assert_eq(qvt_define_guest(&D, "after", NULL, &err), 0, "%s", err.message);

	/* An image import larger than the pool's disk: no-space, and nothing
	 * is left in the pool (no partial image, no temporary file). */
	char big[160];
	snprintf(big, sizeof(big), "%s/big.raw", D.dir);
	cr_assert_eq(run_shell("head -c 16M /dev/urandom > '%s'", big), 0);
	cr_assert_lt(qvt_callf(&D, "image.import", NULL, &err, "{\"path\": \"%s\", "
			       "\"name\": \"big\"}", big), 0, "import onto a full disk succeeded");
	cr_assert_str_eq(err.reason, "no-space", "%s (%s)", err.message, err.reason);
	qv_error_clear(&err);
	cr_assert_eq(qvt_pool_entries(&D), 0, "the failed import left files in the pool");
	unlink(big);

	/* Nothing was lost or half-written: a SIGKILLed daemon comes back with
	 * every stored VM, the guest re-attached, and a consistent store. */
	cr_assert_eq(qvt_daemon_stop(&D, SIGKILL), 0);
	cr_assert_eq(qvt_daemon_start(&D), 0, "restart failed (log %s)", D.log);
	cr_assert_eq(count_vms(), 1 + stored + 1);
	cr_assert_eq(qvt_vm_pid(&D, "keep"), pid, "the guest was not re-attached");
	cr_assert_str_eq(qvt_vm_state(&D, "keep", buf, sizeof(buf)), "running");
	r = qvt_call(&D, "host.check", NULL, &err);
	cr_assert_not_null(r, "host.check: %s", err.message);
	cr_assert(json_object_object_get_ex(r, "checks", &v));
	bool state_ok = false;
	for (size_t i = 0; i < json_object_array_length(v); i++) {
		json_object *c = json_object_array_get_idx(v, i), *name, *status;
		if (json_object_object_get_ex(c, "name", &name) &&
		    streq(json_object_get_string(name), "state") &&
		    json_object_object_get_ex(c, "status", &status))
			state_ok = streq(json_object_get_string(status), "ok");
	}
	cr_assert(state_ok, "state store not ok: %s", json_object_to_json_string(r));
	json_object_put(r);

	/* And once full again, the same clean refusal after the restart. */
	fill(filler);
	more = define_until_full(stored);
	cr_assert_eq(count_vms(), 1 + stored + 1 + more);
	cr_assert_eq(unlink(filler), 0);
	r = qvt_call_name(&D, "vm.stop", "keep", &err);
	cr_assert_not_null(r, "stop: %s", err.message);
	json_object_put(r);
}
