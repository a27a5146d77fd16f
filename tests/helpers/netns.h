/* SPDX-License-Identifier: MIT */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <sys/types.h>

/* Helpers for tests that need real netlink: a private network namespace per
 * test (Criterion forks each test, so the namespace dies with the test
 * process) and iproute2 as the independent checker. */

/* NULL if root + /dev/net/tun + unshare(CLONE_NEWNET) all work (and the test
 * is now in a fresh netns with lo up), else the reason to skip. */
const char *qvt_netns_enter(void);

#define QVT_REQUIRE_NETNS()                                   \
	do {                                                  \
		const char *why_ = qvt_netns_enter();         \
		if (why_)                                     \
			cr_skip_test("%s", why_);             \
	} while (0)

/* fork/exec argv (no shell); returns the exit status (0..255), -1 if it did
 * not exit normally or could not run. Output goes to *ret_out if non-NULL
 * (malloc'd, NUL-terminated), else to /dev/null. */
int qvt_run(char *const argv[], char **ret_out);

/* The same, but the child first joins the netns of process `nspid`. */
int qvt_run_netns(pid_t nspid, char *const argv[], char **ret_out);

/* `ip -j -d link show dev NAME` parsed: the link's object (new reference) or
 * NULL if it does not exist. */
json_object *qvt_ip_link(const char *name);
/* `ip -j addr show dev NAME`: the link's addr_info array as a new reference. */
json_object *qvt_ip_addrs(const char *name);
/* Convenience readers over a qvt_ip_link() object. */
const char *qvt_link_kind(json_object *link);   /* linkinfo.info_kind or NULL */
const char *qvt_link_master(json_object *link); /* "master" or NULL */
int qvt_link_mtu(json_object *link);
bool qvt_link_has_flag(json_object *link, const char *flag);
/* True if addr_info has local/prefixlen. */
bool qvt_addrs_have(json_object *addrs, const char *local, int prefixlen);

/* Fork a child that unshare()s a new netns and waits; returns its pid and a
 * pipe fd whose close (qvt_netns_child_release) lets it exit. */
pid_t qvt_netns_child(int *ret_release_fd);
void qvt_netns_child_release(pid_t pid, int release_fd);
