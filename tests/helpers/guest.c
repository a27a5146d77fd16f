/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sys/stat.h>
#include <time.h>

#include "common/loop.h"
#include "common/macro.h"
#include "tests/helpers/guest.h"

void qvt_sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

const char *qvt_guest_dir(void)
{
	static char dir[PATH_MAX];
	const char *env = getenv("QV_GUEST_DIR");
	char path[PATH_MAX + 32];

	if (!realpath(env && *env ? env : "build/guest", dir))
		return NULL;
	snprintf(path, sizeof(path), "%s/vmlinuz", dir);
	if (access(path, R_OK) < 0)
		return NULL;
	snprintf(path, sizeof(path), "%s/initrd.img", dir);
	if (access(path, R_OK) < 0)
		return NULL;
	return dir;
}

char *qvt_guest_file(const char *name)
{
	const char *dir = qvt_guest_dir();
	char *p;

	if (!dir || asprintf(&p, "%s/%s", dir, name) < 0)
		return NULL;
	return p;
}

/* A complete line (ending in '\n') holding needle. The serial console
 * reaches its log a few bytes at a time: a line still being written is not
 * matched, so a caller that then parses it reads all of it. */
static bool file_has_line(const char *path, const char *needle)
{
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	bool found = false;

	if (!f)
		return false;
	while (!found && (n = getline(&line, &cap, f)) > 0)
		found = line[n - 1] == '\n' && strstr(line, needle) != NULL;
	free(line);
	return found;
}

int qvt_wait_for_line_in_file(const char *path, const char *needle, int timeout_ms)
{
	uint64_t deadline = qv_now_ms() + (uint64_t)timeout_ms;

	for (;;) {
		if (file_has_line(path, needle))
			return 0;
		if (qv_now_ms() >= deadline)
			return -ETIMEDOUT;
		poll(NULL, 0, 50); /* tests only: a short sleep between scans */
	}
}

struct vm_spec *qvt_guest_spec(const char *name)
{
	_cleanup_free_ char *kernel = qvt_guest_file("vmlinuz");
	_cleanup_free_ char *initrd = qvt_guest_file("initrd.img");
	_cleanup_free_ char *text = NULL;
	struct vm_spec *spec = NULL;
	struct qv_error err = { 0 };

	if (!kernel || !initrd)
		return NULL;
	if (asprintf(&text,
		     "{\"name\": \"%s\", \"vcpus\": 1, \"memory\": 256, \"machine\": \"q35\","
		     " \"accel\": \"tcg\", \"kernel\": \"%s\", \"initrd\": \"%s\","
		     " \"cmdline\": \"console=ttyS0 panic=-1\"}",
		     name, kernel, initrd) < 0)
		return NULL;
	if (vm_spec_from_string(text, &spec, &err) < 0) {
		fprintf(stderr, "qvt_guest_spec: %s\n", err.message);
		return NULL;
	}
	return spec;
}

char *qvt_make_run_dir(const char *tag)
{
	char *p;

	if (asprintf(&p, "/tmp/qvt-%s-XXXXXX", tag) < 0)
		return NULL;
	if (!mkdtemp(p)) {
		free(p);
		return NULL;
	}
	return p;
}

void qvt_rm_rf(const char *dir)
{
	DIR *d;
	struct dirent *de;

	if (!dir || !(d = opendir(dir)))
		return;
	while ((de = readdir(d)))
		if (!streq(de->d_name, ".") && !streq(de->d_name, ".."))
			unlinkat(dirfd(d), de->d_name, 0);
	closedir(d);
	rmdir(dir);
}
