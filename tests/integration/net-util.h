/* SPDX-License-Identifier: MIT */
#pragma once
/* Shared by tests/integration/test_net_*.c (header-only, static helpers). */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>

#include "common/json.h"
#include "common/macro.h"
#include "helpers/guest.h"
#include "helpers/netns.h"
#include "helpers/qvisord.h"

#define NET_DEADLINE_MS 60000

/* Fresh netns + a qvisord inside it. */
static inline void net_setup(struct qvt_daemon *qd)
{
	QVT_REQUIRE_NETNS();
	int r = qvt_daemon_start(qd);
	if (r == -ENOENT)
		cr_skip_test("qvisord binary not built (QV_BUILD_DIR)");
	cr_assert_eq(r, 0, "qvisord did not start: %s (log %s)", strerror(-r), qd->log);
}

/* vm.define of a test-guest VM; nics_json is the "nics" array text,
 * cmdline_extra is appended to the kernel command line. 0 or < 0 with *err. */
static inline int net_try_define_vm(struct qvt_daemon *qd, const char *name,
				    const char *cmdline_extra, const char *nics_json,
				    struct qv_error *err)
{
	_cleanup_free_ char *kernel = qvt_guest_file("vmlinuz");
	_cleanup_free_ char *initrd = qvt_guest_file("initrd.img");

	cr_assert_not_null(kernel);
	return qvt_callf(qd, "vm.define", NULL, err,
			 "{\"spec\": {\"name\": \"%s\", \"vcpus\": 1, \"memory\": 256, "
			 "\"machine\": \"q35\", \"accel\": \"tcg\", \"kernel\": \"%s\", "
			 "\"initrd\": \"%s\", \"cmdline\": \"console=ttyS0 quiet panic=-1 %s\", "
			 "\"nics\": %s}}",
			 name, kernel, initrd, cmdline_extra, nics_json);
}

static inline void net_define_vm(struct qvt_daemon *qd, const char *name,
				 const char *cmdline_extra, const char *nics_json)
{
	struct qv_error err = { 0 };

	cr_assert_eq(net_try_define_vm(qd, name, cmdline_extra, nics_json, &err), 0,
		     "vm.define %s: %s", name, err.message);
}

/* vm.define must fail with reason and a message containing needle. */
static inline void net_define_vm_fails(struct qvt_daemon *qd, const char *name,
				       const char *nics_json, const char *reason,
				       const char *needle)
{
	struct qv_error err = { 0 };

	cr_assert_lt(net_try_define_vm(qd, name, "", nics_json, &err), 0,
		     "vm.define %s unexpectedly succeeded", name);
	cr_assert_str_eq(err.reason, reason, "vm.define %s: reason %s, message: %s", name,
			 err.reason, err.message);
	cr_assert(strstr(err.message, needle), "vm.define %s: message \"%s\" lacks \"%s\"",
		  name, err.message, needle);
}

static inline json_object *net_call_ok(struct qvt_daemon *qd, const char *method,
				       const char *params)
{
	struct qv_error err = { 0 };
	json_object *res = NULL;
	int r = qvt_callf(qd, method, &res, &err, "%s", params);

	cr_assert_eq(r, 0, "%s %s failed: %s (%s)", method, params, err.message, err.reason);
	return res;
}

/* Expect failure with data.reason == reason and the message containing
 * needle. */
static inline void net_call_fails(struct qvt_daemon *qd, const char *method, const char *params,
				  const char *reason, const char *needle)
{
	struct qv_error err = { 0 };
	json_object *res = NULL;
	int r = qvt_callf(qd, method, &res, &err, "%s", params);

	json_object_put(res);
	cr_assert_lt(r, 0, "%s %s unexpectedly succeeded", method, params);
	cr_assert_str_eq(err.reason, reason, "%s: reason %s, message: %s", method, err.reason,
			 err.message);
	cr_assert(strstr(err.message, needle), "%s: message \"%s\" lacks \"%s\"", method,
		  err.message, needle);
}

static inline const char *jstr_at(json_object *o, const char *key)
{
	json_object *v = NULL;

	return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : NULL;
}

/* Names of all links in the current netns (`ip -j link show`), new array. */
static inline json_object *net_ip_links(void)
{
	char *argv[] = { "ip", "-j", "link", "show", NULL };
	_cleanup_free_ char *out = NULL;

	cr_assert_eq(qvt_run(argv, &out), 0);
	json_object *j = json_tokener_parse(out);
	cr_assert_not_null(j, "ip -j link: %s", out);
	return j;
}

/* Count links whose name starts with prefix. */
static inline int net_count_links(const char *prefix)
{
	json_object *links = net_ip_links();
	int n = 0;

	for (size_t i = 0; i < json_object_array_length(links); i++) {
		const char *name = jstr_at(json_object_array_get_idx(links, i), "ifname");
		if (name && strncmp(name, prefix, strlen(prefix)) == 0)
			n++;
	}
	json_object_put(links);
	return n;
}

static inline long file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? (long)st.st_size : 0;
}

/* Wait for a line containing needle (and not containing `without`, if
 * non-NULL) that starts at or after byte offset `from`. */
static inline int net_wait_line_after(const char *path, long from, const char *needle,
				      const char *without, int timeout_ms)
{
	for (int waited = 0; waited < timeout_ms; waited += 200) {
		FILE *f = fopen(path, "re");
		char line[1024];
		if (f) {
			fseek(f, from, SEEK_SET);
			while (fgets(line, sizeof(line), f))
				if (strstr(line, needle) && (!without || !strstr(line, without))) {
					fclose(f);
					return 0;
				}
			fclose(f);
		}
		usleep(200 * 1000);
	}
	return -ETIMEDOUT;
}

/* Read the first line containing needle (into buf). */
static inline int net_grep(const char *path, const char *needle, char *buf, size_t size)
{
	FILE *f = fopen(path, "re");
	char line[1024];

	if (!f)
		return -ENOENT;
	while (fgets(line, sizeof(line), f))
		if (strstr(line, needle)) {
			snprintf(buf, size, "%s", strstr(line, needle));
			buf[strcspn(buf, "\r\n")] = '\0';
			fclose(f);
			return 0;
		}
	fclose(f);
	return -ENOENT;
}

static inline void net_stop_vm(struct qvt_daemon *qd, const char *name)
{
	char p[128];

	snprintf(p, sizeof(p), "{\"name\": \"%s\", \"timeout\": 20}", name);
	json_object_put(net_call_ok(qd, "vm.stop", p));
}
