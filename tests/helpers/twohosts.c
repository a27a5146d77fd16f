/* SPDX-License-Identifier: MIT */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <sys/stat.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/json.h"
#include "common/macro.h"
#include "helpers/netns.h"
#include "helpers/twohosts.h"

static int ip_ns(struct qvt_twohosts *h, int i, const char *a1, const char *a2, const char *a3,
		 const char *a4, const char *a5, const char *a6)
{
	char *argv[] = { "ip", (char *)a1, (char *)a2, (char *)a3, (char *)a4, (char *)a5,
			 (char *)a6, NULL };
	return qvt_run_netns(h->ns_pid[i], argv, NULL) == 0 ? 0 : -1;
}

int qvt_twohosts_start_daemon(struct qvt_twohosts *h, int i)
{
	/* each namespace has a loopback of its own: one fixed port serves */
	if (!h->d[i].extra_args[0]) {
		h->d[i].extra_args[0] = "--metrics-listen";
		h->d[i].extra_args[1] = "127.0.0.1:" QVT_TWOHOSTS_METRICS_PORT;
	}
	return qvt_daemon_start_netns(&h->d[i], h->ns_pid[i], "/tmp/qvm-XXXXXX");
}

const char *qvt_twohosts_up(struct qvt_twohosts *h)
{
	char *add[] = { "ip", "link", "add", h->veth[0], "type", "veth", "peer", "name",
			h->veth[1], NULL };
	unsigned tag = (unsigned)getpid() % 100000;

	memset(h, 0, sizeof(*h));
	h->ns_release[0] = h->ns_release[1] = -1;
	if (geteuid() != 0)
		return "needs root (network namespaces)";
	if (access(qvt_daemon_binary(), X_OK) < 0)
		return "qvisord not built";
	snprintf(h->veth[0], sizeof(h->veth[0]), "qvm%ua", tag);
	snprintf(h->veth[1], sizeof(h->veth[1]), "qvm%ub", tag);
	snprintf(h->addr[0], sizeof(h->addr[0]), "10.231.0.1");
	snprintf(h->addr[1], sizeof(h->addr[1]), "10.231.0.2");
	for (int i = 0; i < 2; i++) {
		h->ns_pid[i] = qvt_netns_child(&h->ns_release[i]);
		if (h->ns_pid[i] <= 0) {
			qvt_twohosts_down(h);
			return "cannot create a network namespace";
		}
	}
	if (qvt_run(add, NULL) != 0) {
		qvt_twohosts_down(h);
		return "cannot create a veth pair";
	}
	for (int i = 0; i < 2; i++) {
		char pid[16], cidr[32];
		char *mv[] = { "ip", "link", "set", h->veth[i], "netns", pid, NULL };
		snprintf(pid, sizeof(pid), "%d", (int)h->ns_pid[i]);
		snprintf(cidr, sizeof(cidr), "%s/24", h->addr[i]);
		if (qvt_run(mv, NULL) != 0 ||
		    ip_ns(h, i, "addr", "add", cidr, "dev", h->veth[i], NULL) < 0 ||
		    ip_ns(h, i, "link", "set", "lo", "up", NULL, NULL) < 0 ||
		    ip_ns(h, i, "link", "set", h->veth[i], "up", NULL, NULL) < 0) {
			qvt_twohosts_down(h);
			return "cannot configure the veth pair";
		}
	}
	for (int i = 0; i < 2; i++)
		if (qvt_twohosts_start_daemon(h, i) < 0) {
			qvt_twohosts_down(h);
			return "qvisord did not start in its namespace";
		}
	return NULL;
}

int qvt_twohosts_link(struct qvt_twohosts *h, int i, bool up)
{
	return ip_ns(h, i, "link", "set", h->veth[i], up ? "up" : "down", NULL, NULL);
}

int qvt_twohosts_shape(struct qvt_twohosts *h, int i, unsigned rate_mibps)
{
	char rate[32];
	char *argv[] = { "tc", "qdisc", "replace", "dev", h->veth[i], "root", "tbf", "rate", rate,
			 "burst", "256kb", "latency", "50ms", NULL };

	snprintf(rate, sizeof(rate), "%umbit", rate_mibps * 8 * 1048576 / 1000000);
	return qvt_run_netns(h->ns_pid[i], argv, NULL) == 0 ? 0 : -1;
}

void qvt_kill_netns_processes(pid_t nspid)
{
	char p[64];
	struct stat ns, st;
	struct dirent *de;
	DIR *dir;

	snprintf(p, sizeof(p), "/proc/%d/ns/net", (int)nspid);
	if (stat(p, &ns) < 0 || !(dir = opendir("/proc")))
		return;
	while ((de = readdir(dir))) {
		int pid = atoi(de->d_name);
		if (pid <= 1 || pid == nspid || pid == getpid())
			continue;
		snprintf(p, sizeof(p), "/proc/%d/ns/net", pid);
		if (stat(p, &st) == 0 && st.st_ino == ns.st_ino && st.st_dev == ns.st_dev)
			kill(pid, SIGKILL);
	}
	closedir(dir);
}

void qvt_twohosts_down(struct qvt_twohosts *h)
{
	for (int i = 0; i < 2; i++)
		if (h->d[i].dir[0])
			qvt_daemon_cleanup(&h->d[i]);
	for (int i = 0; i < 2; i++)
		if (h->ns_pid[i] > 0)
			qvt_kill_netns_processes(h->ns_pid[i]);
	/* Each namespace child inherited the other's release pipe (fork, no
	 * exec): close both ends first, then kill and reap. */
	for (int i = 0; i < 2; i++)
		if (h->ns_release[i] >= 0)
			close(h->ns_release[i]);
	for (int i = 0; i < 2; i++) {
		if (h->ns_pid[i] > 0) {
			kill(h->ns_pid[i], SIGKILL);
			qvt_netns_child_release(h->ns_pid[i], -1);
		}
		h->ns_pid[i] = 0;
		h->ns_release[i] = -1;
	}
}

struct qvt_twohosts qvt_hosts;
bool qvt_hosts_up;

void qvt_twohosts_setup(void)
{
	const char *why;

	if (!qvt_guest_dir())
		return;
	why = qvt_twohosts_up(&qvt_hosts);
	if (why) {
		fprintf(stderr, "twohosts: %s\n", why);
		return;
	}
	qvt_hosts_up = true;
}

void qvt_twohosts_teardown(void)
{
	if (qvt_hosts_up)
		qvt_twohosts_down(&qvt_hosts);
	qvt_hosts_up = false;
}

void qvt_twohosts_confirm_moved(struct qvt_twohosts *h, const char *name, int src_pid)
{
	struct qv_error err = {};
	char buf[32];
	json_object *r;

	r = qvt_call_name(&h->d[0], "migrate.confirm", name, &err);
	cr_assert_not_null(r, "confirm: %s", err.message);
	json_object_put(r);
	cr_assert(qvt_wait_vm_undefined(&h->d[0], name, 30000),
		  "the source definition should be gone");
	for (int t = 0; t < 300 && kill(src_pid, 0) == 0; t++)
		qvt_sleep_ms(100);
	cr_assert_neq(kill(src_pid, 0), 0, "source QEMU %d still alive", src_pid);
	/* Exactly one running copy: the destination's, and the guest carries
	 * on there (the dirtier keeps printing). */
	cr_assert_eq(qvt_twohosts_wait_dirtier(h, 1, name, 60000), 0,
		     "no dirtier output on the destination (details above)");
	cr_assert_str_eq(qvt_vm_state(&h->d[1], name, buf, sizeof(buf)), "running");
}

/* The last `max` bytes of a file on stderr, under a heading. */
static void print_tail(const char *what, const char *path, long max)
{
	char buf[1024];
	FILE *f = fopen(path, "re");
	size_t n;

	if (max > (long)sizeof(buf) - 1)
		max = sizeof(buf) - 1;
	if (!f) {
		fprintf(stderr, "  %s (%s): cannot open: %m\n", what, path);
		return;
	}
	if (fseek(f, -max, SEEK_END) < 0)
		rewind(f);
	n = fread(buf, 1, (size_t)max, f);
	buf[n] = '\0';
	fclose(f);
	fprintf(stderr, "  %s (%s), last %zu bytes:\n%s\n", what, path, n, buf);
}

/* utime + stime of a process in clock ticks, -1 if gone. */
static long long cpu_ticks(int pid)
{
	char path[64], line[1024], *p;
	unsigned long long ut, st;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	f = fopen(path, "re");
	if (!f)
		return -1;
	p = fgets(line, sizeof(line), f);
	fclose(f);
	/* fields after the command name (which may hold spaces): 14 and 15 */
	if (!p || !(p = strrchr(line, ')')) ||
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
		return -1;
	return (long long)(ut + st);
}

int qvt_twohosts_wait_dirtier(struct qvt_twohosts *h, int i, const char *name, int timeout_ms)
{
	struct qvt_daemon *d = &h->d[i];
	char path[256], state[32] = "";
	long long t0, t1;
	int pid;

	if (qvt_wait_for_line_in_file(qvt_serial_log(d, name), "dirtier:", timeout_ms) == 0)
		return 0;
	pid = qvt_vm_pid(d, name);
	t0 = cpu_ticks(pid);
	qvt_sleep_ms(3000);
	t1 = cpu_ticks(pid);
	fprintf(stderr, "no dirtier line from %s on host %d within %d ms: VM %s, QEMU pid %d "
		"used %lld CPU ticks (of %ld/s) in 3 s\n", name, i, timeout_ms,
		qvt_vm_state(d, name, state, sizeof(state)), pid, t0 < 0 || t1 < 0 ? -1 : t1 - t0,
		sysconf(_SC_CLK_TCK));
	print_tail("serial log", qvt_serial_log(d, name), 600);
	snprintf(path, sizeof(path), "%s/vms/%s/qemu.log", d->run_dir, name);
	print_tail("QEMU log", path, 600);
	print_tail("daemon log", d->log, 1000);
	return -ETIMEDOUT;
}
