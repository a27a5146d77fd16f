/* SPDX-License-Identifier: MIT */
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/macro.h"
#include "tests/helpers/netns.h"

const char *qvt_netns_enter(void)
{
	if (geteuid() != 0)
		return "needs root (CAP_NET_ADMIN) for netns/bridge/TAP";
	if (access("/dev/net/tun", R_OK | W_OK) < 0)
		return "/dev/net/tun is not available";
	if (access("/sbin/ip", X_OK) < 0 && access("/usr/sbin/ip", X_OK) < 0 &&
	    access("/bin/ip", X_OK) < 0)
		return "iproute2 (ip) is not installed";
	if (unshare(CLONE_NEWNET) < 0)
		return "unshare(CLONE_NEWNET) failed";
	char *lo[] = { "ip", "link", "set", "lo", "up", NULL };
	if (qvt_run(lo, NULL) != 0)
		return "cannot bring lo up in the new netns";
	return NULL;
}

int qvt_run(char *const argv[], char **ret_out)
{
	return qvt_run_netns(0, argv, ret_out);
}

int qvt_run_netns(pid_t nspid, char *const argv[], char **ret_out)
{
	int p[2] = { -1, -1 }, status;
	pid_t pid;

	if (ret_out && pipe2(p, O_CLOEXEC) < 0)
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		int devnull = open("/dev/null", O_RDWR);
		if (nspid > 0) {
			char path[64];
			snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)nspid);
			int nsfd = open(path, O_RDONLY | O_CLOEXEC);
			if (nsfd < 0 || setns(nsfd, CLONE_NEWNET) < 0)
				_exit(126);
		}
		dup2(devnull, 0);
		dup2(ret_out ? p[1] : devnull, 1);
		dup2(devnull, 2);
		execvp(argv[0], argv);
		_exit(127);
	}
	if (ret_out) {
		size_t len = 0, cap = 4096;
		char *buf = malloc(cap);
		ssize_t n;

		close(p[1]);
		while (buf && (n = read(p[0], buf + len, cap - len - 1)) > 0) {
			len += (size_t)n;
			if (cap - len < 2) {
				char *nb = realloc(buf, cap *= 2);
				if (!nb) {
					free(buf);
					buf = NULL;
				}
				buf = nb;
			}
		}
		close(p[0]);
		if (buf)
			buf[len] = '\0';
		*ret_out = buf;
	}
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

static json_object *ip_json(char *const argv[])
{
	char *out = NULL;
	json_object *j = NULL;

	if (qvt_run(argv, &out) == 0 && out)
		j = json_tokener_parse(out);
	free(out);
	return j;
}

json_object *qvt_ip_link(const char *name)
{
	char *argv[] = { "ip", "-j", "-d", "link", "show", "dev", (char *)name, NULL };
	json_object *arr = ip_json(argv), *l = NULL;

	if (arr && json_object_is_type(arr, json_type_array) && json_object_array_length(arr) == 1)
		l = json_object_get(json_object_array_get_idx(arr, 0));
	json_object_put(arr);
	return l;
}

json_object *qvt_ip_addrs(const char *name)
{
	char *argv[] = { "ip", "-j", "addr", "show", "dev", (char *)name, NULL };
	json_object *arr = ip_json(argv), *ai = NULL, *res = NULL;

	if (arr && json_object_is_type(arr, json_type_array) &&
	    json_object_array_length(arr) == 1 &&
	    json_object_object_get_ex(json_object_array_get_idx(arr, 0), "addr_info", &ai))
		res = json_object_get(ai);
	json_object_put(arr);
	return res;
}

static const char *get_str(json_object *o, const char *key)
{
	json_object *v;

	if (!o || !json_object_object_get_ex(o, key, &v))
		return NULL;
	return json_object_get_string(v);
}

const char *qvt_link_kind(json_object *link)
{
	json_object *li;

	if (!link || !json_object_object_get_ex(link, "linkinfo", &li))
		return NULL;
	return get_str(li, "info_kind");
}

const char *qvt_link_master(json_object *link)
{
	return get_str(link, "master");
}

int qvt_link_mtu(json_object *link)
{
	json_object *v;

	if (!link || !json_object_object_get_ex(link, "mtu", &v))
		return -1;
	return json_object_get_int(v);
}

bool qvt_link_has_flag(json_object *link, const char *flag)
{
	json_object *flags;

	if (!link || !json_object_object_get_ex(link, "flags", &flags))
		return false;
	for (size_t i = 0; i < json_object_array_length(flags); i++)
		if (streq(json_object_get_string(json_object_array_get_idx(flags, i)), flag))
			return true;
	return false;
}

bool qvt_addrs_have(json_object *addrs, const char *local, int prefixlen)
{
	for (size_t i = 0; addrs && i < json_object_array_length(addrs); i++) {
		json_object *a = json_object_array_get_idx(addrs, i), *pl;
		const char *l = get_str(a, "local");

		if (l && streq(l, local) && json_object_object_get_ex(a, "prefixlen", &pl) &&
		    json_object_get_int(pl) == prefixlen)
			return true;
	}
	return false;
}

pid_t qvt_netns_child(int *ret_release_fd)
{
	int ready[2], release[2];
	pid_t pid;
	char c;

	if (pipe2(ready, O_CLOEXEC) < 0)
		return -1;
	if (pipe2(release, O_CLOEXEC) < 0) {
		close(ready[0]);
		close(ready[1]);
		return -1;
	}
	pid = fork();
	if (pid == 0) {
		close(ready[0]);
		close(release[1]);
		c = unshare(CLONE_NEWNET) == 0 ? 'y' : 'n';
		if (write(ready[1], &c, 1) != 1)
			_exit(1);
		(void)!read(release[0], &c, 1); /* EOF when the parent releases us */
		_exit(0);
	}
	close(ready[1]);
	close(release[0]);
	if (pid < 0 || read(ready[0], &c, 1) != 1 || c != 'y') {
		close(ready[0]);
		close(release[1]);
		if (pid > 0) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
		}
		return -1;
	}
	close(ready[0]);
	*ret_release_fd = release[1];
	return pid;
}

void qvt_netns_child_release(pid_t pid, int release_fd)
{
	if (release_fd >= 0)
		close(release_fd);
	if (pid > 0)
		waitpid(pid, NULL, 0);
}
