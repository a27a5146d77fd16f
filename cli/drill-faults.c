/* SPDX-License-Identifier: MIT */
/* Drill link shaping (tc tbf + netem on each host's end of the link) and
 * fault injection (cancel, kill the destination QEMU, link cut). Commands
 * run by fork/exec, never through a shell, inside the host's network
 * namespace (setns in the child). */
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/drill.h"

int drill_exec_netns(const char *netns, char *const argv[], struct qv_error *errp)
{
	char path[256];
	int status;
	pid_t pid;

	if (netns)
		snprintf(path, sizeof(path), "%s%s", strchr(netns, '/') ? "" : "/var/run/netns/",
			 netns);
	pid = fork();
	if (pid < 0)
		return qv_error_set(errp, errno, QV_REASON_INTERNAL, "fork: %m");
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (null >= 0)
			dup2(null, 1);
		if (netns) {
			int fd = open(path, O_RDONLY | O_CLOEXEC);
			if (fd < 0 || setns(fd, CLONE_NEWNET) < 0) {
				fprintf(stderr, "qvisor: drill: cannot enter netns %s: %m\n", path);
				_exit(126);
			}
		}
		execvp(argv[0], argv);
		fprintf(stderr, "qvisor: drill: cannot run %s: %m\n", argv[0]);
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return qv_error_set(errp, errno, QV_REASON_INTERNAL, "waitpid: %m");
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		char cmd[200] = "";
		for (size_t i = 0; argv[i] && strlen(cmd) + strlen(argv[i]) + 2 < sizeof(cmd); i++)
			strcat(strcat(cmd, i ? " " : ""), argv[i]);
		return qv_error_set(errp, EIO, QV_REASON_IO_ERROR, "`%s` in netns %s failed (%d)",
				    cmd, netns ? netns : "(current)",
				    WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	}
	return 0;
}

static int shape_one(const struct drill_host *h, int64_t rate_mbps, int64_t delay_ms,
		     struct qv_error *errp)
{
	char rate[32], burst[32], delay[32], *dev = (char *)h->dev;
	int r;

	if (rate_mbps > 0) {
		/* MiB/s -> mbit; burst at least 10 ms worth of bytes (HZ=100). */
		uint64_t bps = (uint64_t)rate_mbps * 1048576;
		uint64_t b = bps / 100 > 262144 ? bps / 100 : 262144;
		snprintf(rate, sizeof(rate), "%llukbit", (unsigned long long)(bps * 8 / 1000));
		snprintf(burst, sizeof(burst), "%llu", (unsigned long long)b);
		char *tbf[] = { "tc", "qdisc", "replace", "dev", dev, "root", "handle", "1:", "tbf",
				"rate", rate, "burst", burst, "latency", "100ms", NULL };
		if ((r = drill_exec_netns(h->netns, tbf, errp)) < 0)
			return r;
	}
	if (delay_ms > 0) {
		snprintf(delay, sizeof(delay), "%lldms", (long long)delay_ms);
		char *child[] = { "tc", "qdisc", "replace", "dev", dev, "parent", "1:1", "handle",
				  "10:", "netem", "delay", delay, "limit", "100000", NULL };
		char *root[] = { "tc", "qdisc", "replace", "dev", dev, "root", "handle", "1:",
				 "netem", "delay", delay, "limit", "100000", NULL };
		if ((r = drill_exec_netns(h->netns, rate_mbps > 0 ? child : root, errp)) < 0)
			return r;
	}
	return 0;
}

int drill_link_shape(const struct drill *d, struct qv_error *errp)
{
	if (d->link.rate_mbps <= 0 && d->link.delay_ms <= 0)
		return 0;
	for (int i = 0; i < 2; i++) {
		int r = shape_one(&d->hosts[i], d->link.rate_mbps, d->link.delay_ms, errp);
		if (r < 0) {
			drill_link_unshape(d);
			return qv_error_prefix(errp, "shaping hosts[%d]", i), r;
		}
	}
	return 0;
}

void drill_link_unshape(const struct drill *d)
{
	if (d->link.rate_mbps <= 0 && d->link.delay_ms <= 0)
		return;
	for (int i = 0; i < 2; i++) {
		char *del[] = { "tc", "qdisc", "del", "dev", (char *)d->hosts[i].dev, "root", NULL };
		(void)drill_exec_netns(d->hosts[i].netns, del, NULL); /* back to the default */
	}
}

int drill_link_set(const struct drill_host *h, bool up, struct qv_error *errp)
{
	char *argv[] = { "ip", "link", "set", "dev", (char *)h->dev, up ? "up" : "down", NULL };

	return drill_exec_netns(h->netns, argv, errp);
}

static json_object *name_params(const char *name)
{
	json_object *p = json_object_new_object();
	json_object_object_add(p, "name", json_object_new_string(name));
	return p;
}

static void fire_cancel(struct drill_fault_state *fs)
{
	struct qv_error err = {};

	if (qv_rpc_invoke(fs->src_fault, "migrate.cancel", name_params(fs->vm), 60000, NULL,
			  &err) < 0)
		snprintf(fs->result, sizeof(fs->result), "migrate.cancel failed: %s (%s)",
			 err.message, err.reason);
	else
		snprintf(fs->result, sizeof(fs->result), "migrate.cancel sent to the source");
}

static void fire_kill(struct drill_fault_state *fs)
{
	_cleanup_json_ json_object *info = NULL;
	struct qv_error err = {};
	json_object *v;
	int pid;

	/* Only a local daemon's QEMU can be signalled from here. */
	if (strncmp(fs->dst_host->uri, "unix:", 5) != 0 && fs->dst_host->uri[0] != '/') {
		snprintf(fs->result, sizeof(fs->result),
			 "kill-dest-qemu needs a local (unix://) destination");
		return;
	}
	if (qv_rpc_invoke(fs->dst_fault, "vm.info", name_params(fs->vm), 30000, &info, &err) < 0) {
		snprintf(fs->result, sizeof(fs->result), "vm.info on the destination: %s",
			 err.message);
		return;
	}
	pid = json_object_object_get_ex(info, "pid", &v) ? json_object_get_int(v) : 0;
	if (pid <= 1 || kill(pid, SIGKILL) < 0)
		snprintf(fs->result, sizeof(fs->result), "cannot kill destination QEMU pid %d: %m",
			 pid);
	else
		snprintf(fs->result, sizeof(fs->result), "SIGKILL to destination QEMU pid %d", pid);
}

static const struct drill_host *cut_host(const struct drill_fault_state *fs)
{
	return fs->f->side ? fs->dst_host : fs->src_host;
}

void drill_fault_tick(struct drill_fault_state *fs, uint64_t t_ms)
{
	struct qv_error err = {};

	if (!fs->f || fs->f->kind == DRILL_FAULT_NONE)
		return;
	if (!fs->fired && t_ms >= (uint64_t)fs->f->at_ms) {
		fs->fired = true;
		fs->fired_at_ms = (int64_t)t_ms;
		switch (fs->f->kind) {
		case DRILL_FAULT_CANCEL:
			fire_cancel(fs);
			break;
		case DRILL_FAULT_KILL_DEST_QEMU:
			fire_kill(fs);
			break;
		case DRILL_FAULT_LINK_CUT:
			if (drill_link_set(cut_host(fs), false, &err) < 0)
				snprintf(fs->result, sizeof(fs->result), "%s", err.message);
			else
				snprintf(fs->result, sizeof(fs->result), "%s down",
					 cut_host(fs)->dev);
			break;
		case DRILL_FAULT_NONE:
			break;
		}
		return;
	}
	if (fs->fired && !fs->restored && fs->f->kind == DRILL_FAULT_LINK_CUT &&
	    t_ms >= (uint64_t)(fs->f->at_ms + fs->f->duration_ms)) {
		fs->restored = true;
		fs->restored_at_ms = (int64_t)t_ms;
		if (drill_link_set(cut_host(fs), true, &err) < 0)
			snprintf(fs->result + strlen(fs->result), sizeof(fs->result) - strlen(fs->result),
				 "; link up failed: %s", err.message);
		else
			snprintf(fs->result + strlen(fs->result), sizeof(fs->result) - strlen(fs->result),
				 ", up again at %lld ms", (long long)t_ms);
	}
}

/* The migration is over: a link still down comes back up. */
void drill_fault_finish(struct drill_fault_state *fs, uint64_t t_ms)
{
	if (!fs->f || fs->f->kind != DRILL_FAULT_LINK_CUT || !fs->fired || fs->restored)
		return;
	fs->restored = true;
	fs->restored_at_ms = (int64_t)t_ms;
	(void)drill_link_set(cut_host(fs), true, NULL);
	snprintf(fs->result + strlen(fs->result), sizeof(fs->result) - strlen(fs->result),
		 ", up again after the migration ended");
}
