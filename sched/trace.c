/* SPDX-License-Identifier: MIT */
/* Trace readers: PlanetLab day directories and the Azure public VM trace. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sched/sim.h"

#define DAY_SAMPLES 288

void qv_trace_free(struct qv_trace *t)
{
	if (!t)
		return;
	for (int i = 0; t->names && i < t->nvms; i++)
		free(t->names[i]);
	free(t->names);
	free(t->util);
	t->names = NULL;
	t->util = NULL;
	t->nvms = 0;
}

double qv_trace_util(const struct qv_trace *t, int i, double time)
{
	const double *d = t->util + (size_t)i * (t->nsamples + 1);
	double iv = t->interval_s;
	if (time < 0)
		return d[0];
	if (fmod(time, iv) == 0) {
		int k = (int)time / (int)iv;
		return d[k > t->nsamples ? t->nsamples : k];
	}
	int t1 = (int)floor(time / iv), t2 = (int)ceil(time / iv);
	if (t2 > t->nsamples)
		return d[t->nsamples];
	double u1 = d[t1], u2 = d[t2];
	double delta = (u2 - u1) / ((t2 - t1) * iv);
	return u1 + delta * (time - t1 * iv);
}

static int read_planetlab_file(int dfd, const char *name, double *out, struct qv_error *errp)
{
	int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	FILE *f = fd >= 0 ? fdopen(fd, "r") : NULL;
	if (!f) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		return qv_error_set(errp, e, QV_REASON_IO_ERROR, "%s: %s", name, strerror(e));
	}
	char line[64];
	int n = 0;
	while (n < DAY_SAMPLES && fgets(line, sizeof(line), f)) {
		char *end;
		long v = strtol(line, &end, 10);
		while (*end && isspace((unsigned char)*end))
			end++;
		if (end == line || *end || v < 0 || v > 100) {
			fclose(f);
			return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
					    "%s: line %d: expected an integer percent 0-100", name, n + 1);
		}
		out[n++] = v / 100.0;
	}
	fclose(f);
	if (n < DAY_SAMPLES)
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "%s: %d samples, expected %d (one per 5 minutes)", name, n, DAY_SAMPLES);
	out[DAY_SAMPLES] = out[DAY_SAMPLES - 1];
	return 0;
}

static int cmp_name(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

static int not_dot(const struct dirent *d)
{
	return d->d_name[0] != '.';
}

int qv_trace_read_planetlab(const char *dir, struct qv_trace *ret, struct qv_error *errp)
{
	struct dirent **ents = NULL;
	int n = scandir(dir, &ents, not_dot, cmp_name);
	if (n < 0)
		return qv_error_set(errp, errno, QV_REASON_IO_ERROR, "%s: %s", dir, strerror(errno));
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), r = 0;
	struct qv_trace t = { .nsamples = DAY_SAMPLES, .interval_s = 300 };
	t.util = calloc((size_t)(n ? n : 1) * (DAY_SAMPLES + 1), sizeof(double));
	t.names = calloc(n ? n : 1, sizeof(char *));
	if (dfd < 0 || !t.util || !t.names)
		r = qv_error_set(errp, dfd < 0 ? errno : ENOMEM, QV_REASON_IO_ERROR, "%s: cannot read", dir);
	for (int i = 0; i < n && r == 0; i++) {
		struct stat st;
		if (fstatat(dfd, ents[i]->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
			continue;
		r = read_planetlab_file(dfd, ents[i]->d_name, t.util + (size_t)t.nvms * (DAY_SAMPLES + 1), errp);
		if (r == 0 && !(t.names[t.nvms++] = strdup(ents[i]->d_name)))
			r = -ENOMEM;
	}
	for (int i = 0; i < n; i++)
		free(ents[i]);
	free(ents);
	if (dfd >= 0)
		close(dfd);
	if (r == 0 && t.nvms == 0)
		r = qv_error_set(errp, ENOENT, QV_REASON_INVALID_ARGUMENT, "%s: no trace files", dir);
	if (r < 0) {
		qv_trace_free(&t);
		return r;
	}
	*ret = t;
	return 0;
}

int qv_trace_read(const char *path, struct qv_trace *ret, struct qv_error *errp)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return qv_error_set(errp, errno, QV_REASON_NOT_FOUND, "%s: %s", path, strerror(errno));
	if (S_ISDIR(st.st_mode))
		return qv_trace_read_planetlab(path, ret, errp);
	return qv_trace_read_azure(path, ret, errp);
}
