/* blkpat — deterministic pseudo-random data for block-device checks.
 *
 * Usage: blkpat SEED MIB [FILE [OFFSET_MIB]]
 *
 * Emits MIB MiB of data from xorshift64* seeded by the FNV-1a hash of the
 * SEED string, to stdout or into FILE (opened without truncation, fsync'd
 * at the end; works on block devices; OFFSET_MIB seeks there first).  The same binary runs on the host, so
 * a test can compute the expected md5 with `blkpat SEED MIB | md5sum`.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uint64_t seed_hash(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ULL;
	}
	return h ? h : 1;
}

static int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static uint64_t buf[1024 * 1024 / 8];
	uint64_t x;
	char *end;
	long mib;
	int fd = 1;

	if (argc < 3 || argc > 5) {
		fprintf(stderr, "usage: %s SEED MIB [FILE [OFFSET_MIB]]\n", argv[0]);
		return 2;
	}
	mib = strtol(argv[2], &end, 10);
	if (*end || end == argv[2] || mib < 0) {
		fprintf(stderr, "blkpat: bad MIB '%s'\n", argv[2]);
		return 2;
	}
	if (argc >= 4) {
		fd = open(argv[3], O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
		if (fd < 0) {
			fprintf(stderr, "blkpat: open %s: %s\n", argv[3], strerror(errno));
			return 1;
		}
		if (argc == 5) {
			long off = strtol(argv[4], &end, 10);

			if (*end || end == argv[4] || off < 0) {
				fprintf(stderr, "blkpat: bad OFFSET_MIB '%s'\n", argv[4]);
				return 2;
			}
			if (lseek(fd, (off_t)off * 1048576, SEEK_SET) < 0) {
				fprintf(stderr, "blkpat: seek %s: %s\n", argv[3], strerror(errno));
				return 1;
			}
		}
	}
	x = seed_hash(argv[1]);
	for (long m = 0; m < mib; m++) {
		for (size_t i = 0; i < sizeof(buf) / 8; i++) {
			x ^= x >> 12;
			x ^= x << 25;
			x ^= x >> 27;
			buf[i] = x * 0x2545F4914F6CDD1DULL;
		}
		if (write_all(fd, buf, sizeof(buf)) < 0) {
			fprintf(stderr, "blkpat: write: %s\n", strerror(errno));
			return 1;
		}
	}
	if (fd != 1 && (fsync(fd) < 0 || close(fd) < 0)) {
		fprintf(stderr, "blkpat: fsync %s: %s\n", argv[3], strerror(errno));
		return 1;
	}
	return 0;
}
