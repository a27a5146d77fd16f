/* SPDX-License-Identifier: MIT */
/* Host cgroup layout: where cgroup2 is mounted, which of our controllers it
 * offers, which are bound to v1 hierarchies. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/macro.h"
#include "sched/cgroup-internal.h"

static const struct {
	const char *name;
	unsigned bit;
} ctrl_names[] = {
	{ "cpu", CG_CPU }, { "cpuset", CG_CPUSET }, { "io", CG_IO },
	{ "memory", CG_MEMORY }, { "pids", CG_PIDS },
};

const char *cg_layout_to_string(enum cg_layout l)
{
	switch (l) {
	case CG_LAYOUT_LEGACY: return "legacy";
	case CG_LAYOUT_HYBRID: return "hybrid";
	case CG_LAYOUT_UNIFIED: return "unified";
	default: return "none";
	}
}

unsigned cg_controllers_parse(const char *list)
{
	unsigned mask = 0;
	char word[64];
	const char *p = list;

	while (p && *p) {
		size_t n = strcspn(p, " ,\t\n");
		if (n && n < sizeof(word)) {
			memcpy(word, p, n);
			word[n] = '\0';
			for (size_t i = 0; i < ARRAY_SIZE(ctrl_names); i++)
				if (streq(word, ctrl_names[i].name))
					mask |= ctrl_names[i].bit;
		}
		p += n;
		p += strspn(p, " ,\t\n");
	}
	return mask;
}

const char *cg_controllers_format(unsigned mask, char *buf, size_t size)
{
	size_t off = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < ARRAY_SIZE(ctrl_names); i++)
		if (mask & ctrl_names[i].bit) {
			int n = snprintf(buf + off, size - off, "%s%s", off ? ", " : "",
					 ctrl_names[i].name);
			if (n < 0 || (size_t)n >= size - off)
				break;
			off += (size_t)n;
		}
	if (!off)
		snprintf(buf, size, "(none)");
	return buf;
}

/* v1 super options "rw,cpu,cpuacct" -> our controllers (blkio is io). */
static unsigned v1_options_mask(const char *opts)
{
	unsigned mask = 0;
	char tmp[256];

	snprintf(tmp, sizeof(tmp), "%s", opts);
	for (char *save = NULL, *t = strtok_r(tmp, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		if (streq(t, "blkio"))
			mask |= CG_IO;
		else
			mask |= cg_controllers_parse(t);
	}
	return mask;
}

/* Our v2 cgroup from /proc/self/cgroup ("0::/path"). */
static void read_self(char *ret, size_t size)
{
	_cleanup_fclose_ FILE *f = fopen("/proc/self/cgroup", "re");
	char line[CG_PATH_MAX + 32];

	ret[0] = '\0';
	while (f && fgets(line, sizeof(line), f))
		if (strncmp(line, "0::", 3) == 0) {
			line[strcspn(line, "\n")] = '\0';
			snprintf(ret, size, "%s", line + 3);
			return;
		}
}

void cg_host_detect(const char *mountinfo, const char *root_override, struct cg_host *ret)
{
	_cleanup_fclose_ FILE *f = fopen(mountinfo ? mountinfo : "/proc/self/mountinfo", "re");
	char line[4096];
	bool v1 = false;

	memset(ret, 0, sizeof(*ret));
	while (f && fgets(line, sizeof(line), f)) {
		/* id parent maj:min root mountpoint opts [optional...] - fstype source superopts */
		char *sep = strstr(line, " - ");
		char mnt[CG_PATH_MAX], fstype[64], src[256], super[1024];
		if (!sep || sscanf(line, "%*s %*s %*s %*s %511s", mnt) != 1 ||
		    sscanf(sep + 3, "%63s %255s %1023s", fstype, src, super) < 2)
			continue;
		if (streq(fstype, "cgroup2")) {
			/* The first cgroup2 mount wins, preferring /sys/fs/cgroup. */
			if (!ret->mount[0] || streq(mnt, "/sys/fs/cgroup"))
				snprintf(ret->mount, sizeof(ret->mount), "%s", mnt);
		} else if (streq(fstype, "cgroup")) {
			v1 = true;
			ret->v1_bound |= v1_options_mask(super);
		}
	}
	if (root_override)
		snprintf(ret->mount, sizeof(ret->mount), "%s", root_override);
	if (ret->mount[0])
		ret->layout = v1 ? CG_LAYOUT_HYBRID : CG_LAYOUT_UNIFIED;
	else
		ret->layout = v1 ? CG_LAYOUT_LEGACY : CG_LAYOUT_NONE;
	if (ret->mount[0]) {
		char path[CG_PATH_MAX + 32];
		snprintf(path, sizeof(path), "%s/cgroup.controllers", ret->mount);
		_cleanup_fclose_ FILE *c = fopen(path, "re");
		if (c && fgets(ret->v2_names, sizeof(ret->v2_names), c))
			ret->v2_names[strcspn(ret->v2_names, "\n")] = '\0';
		ret->v2_controllers = cg_controllers_parse(ret->v2_names);
		read_self(ret->self, sizeof(ret->self));
	}
}

const char *cg_host_describe(const struct cg_host *h, char *buf, size_t size)
{
	char v1[128];
	int n;

	if (!h->mount[0]) {
		snprintf(buf, size, "%s: no cgroup2 file system is mounted%s%s",
			 cg_layout_to_string(h->layout), h->v1_bound ? "; " : "",
			 h->v1_bound ? cg_controllers_format(h->v1_bound, v1, sizeof(v1)) : "");
		if (h->v1_bound && strlen(buf) + 30 < size)
			strcat(buf, " are bound to cgroup v1");
		return buf;
	}
	n = snprintf(buf, size, "%s: cgroup v2 at %s has controllers: %s",
		     cg_layout_to_string(h->layout), h->mount,
		     h->v2_names[0] ? h->v2_names : "(none)");
	if (h->v1_bound && n > 0 && (size_t)n < size)
		snprintf(buf + n, size - (size_t)n, "; %s %s bound to cgroup v1",
			 cg_controllers_format(h->v1_bound, v1, sizeof(v1)),
			 (h->v1_bound & (h->v1_bound - 1)) ? "are" : "is");
	return buf;
}

static bool names_unit(const char *comp, size_t n)
{
	static const char *const suffixes[] = { ".service", ".scope" };

	for (size_t i = 0; i < ARRAY_SIZE(suffixes); i++) {
		size_t k = strlen(suffixes[i]);
		if (n > k && memcmp(comp + n - k, suffixes[i], k) == 0)
			return true;
	}
	return false;
}

int cg_delegated_root(const char *self, char *ret, size_t size)
{
	size_t end = 0;

	for (size_t i = 0; self && self[i];) {
		size_t n;
		i += strspn(self + i, "/");
		n = strcspn(self + i, "/");
		if (n && names_unit(self + i, n))
			end = i + n;
		i += n;
	}
	if (!end)
		return -ENOENT;
	if (end >= size)
		return -ENAMETOOLONG;
	memcpy(ret, self, end);
	ret[end] = '\0';
	return 0;
}
