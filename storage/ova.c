/* SPDX-License-Identifier: MIT */
/* OVA extraction (ustar) with SHA-1/SHA-256 of every member, manifest
 * check. */
#include <ctype.h>
#include <fcntl.h>
#include <gnutls/crypto.h>

#include "common/macro.h"
#include "storage/ova.h"

#define BAD(errp, ...) qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT, __VA_ARGS__)
#define TAR_BLOCK 512

static bool member_name_ok(const char *n)
{
	if (!*n || *n == '.' || strlen(n) > 100)
		return false;
	for (const char *p = n; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr("._-", *p))
			return false;
	return true;
}

static int octal(const unsigned char *p, size_t n, uint64_t *ret)
{
	uint64_t v = 0;
	size_t i = 0;

	while (i < n && p[i] == ' ')
		i++;
	for (; i < n && p[i] >= '0' && p[i] <= '7'; i++) {
		if (v > (UINT64_MAX >> 3))
			return -ERANGE;
		v = v * 8 + (uint64_t)(p[i] - '0');
	}
	if (i < n && p[i] && p[i] != ' ')
		return -EINVAL;
	*ret = v;
	return 0;
}

static bool header_ok(const unsigned char *h)
{
	uint64_t want, sum = 0;

	if (octal(h + 148, 8, &want) < 0)
		return false;
	for (size_t i = 0; i < TAR_BLOCK; i++)
		sum += (i >= 148 && i < 156) ? ' ' : h[i];
	return sum == want;
}

static void hex(const unsigned char *d, unsigned n, char *out)
{
	for (unsigned i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", d[i]);
}

/* Copy `size` bytes of member data to a new file, hashing it. */
static int extract_one(FILE *in, int dirfd, struct qv_ova_file *f, struct qv_error *errp)
{
	_cleanup_close_ int fd = openat(dirfd, f->name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
					O_CLOEXEC, 0600);
	gnutls_hash_hd_t c1 = NULL, c256 = NULL;
	static char buf[1 << 16];
	uint64_t left = f->size;
	int r = 0;

	if (fd < 0 || gnutls_hash_init(&c1, GNUTLS_DIG_SHA1) < 0 ||
	    gnutls_hash_init(&c256, GNUTLS_DIG_SHA256) < 0) {
		r = fd < 0 ? qv_error_set(errp, errno, QV_REASON_IO_ERROR, "cannot create %s: %m",
					  f->name) : -ENOMEM;
		goto out;
	}
	while (left) {
		size_t want = left < sizeof(buf) ? (size_t)left : sizeof(buf);
		if (fread(buf, 1, want, in) != want) {
			r = BAD(errp, "OVA truncated inside %s", f->name);
			goto out;
		}
		if (write(fd, buf, want) != (ssize_t)want) {
			r = qv_error_set(errp, errno ? errno : EIO, QV_REASON_IO_ERROR,
					 "cannot write %s: %m", f->name);
			goto out;
		}
		gnutls_hash(c1, buf, want);
		gnutls_hash(c256, buf, want);
		left -= want;
	}
	unsigned char d[32];
	gnutls_hash_output(c1, d);
	hex(d, 20, f->sha1);
	gnutls_hash_output(c256, d);
	hex(d, 32, f->sha256);
	/* skip the padding to the next block */
	if (f->size % TAR_BLOCK && fseeko(in, TAR_BLOCK - (off_t)(f->size % TAR_BLOCK), SEEK_CUR) < 0)
		r = BAD(errp, "OVA truncated after %s", f->name);
out:
	if (c1)
		gnutls_hash_deinit(c1, NULL);
	if (c256)
		gnutls_hash_deinit(c256, NULL);
	return r;
}

/* One header: 1 = a member to extract (f filled), 0 = end of archive. */
static int next_header(FILE *in, struct qv_ova_file *f, struct qv_error *errp)
{
	unsigned char h[TAR_BLOCK];

	if (fread(h, 1, TAR_BLOCK, in) != TAR_BLOCK)
		return BAD(errp, "OVA truncated (no end-of-archive blocks)");
	bool zero = true;
	for (size_t i = 0; i < TAR_BLOCK && zero; i++)
		zero = !h[i];
	if (zero)
		return 0;
	if (memcmp(h + 257, "ustar", 5) || !header_ok(h))
		return BAD(errp, "not a ustar archive (bad header)");
	if (h[156] != '0' && h[156] != 0)
		return BAD(errp, "OVA member of type '%c': only regular files are accepted", h[156]);
	if (h[345])
		return BAD(errp, "OVA member with a directory prefix is not accepted");
	memcpy(f->name, h, 100);
	f->name[100] = 0;
	if (!member_name_ok(f->name))
		return BAD(errp, "OVA member name \"%.100s\" is not a plain file name", f->name);
	if (octal(h + 124, 12, &f->size) < 0)
		return BAD(errp, "OVA member %s: bad size", f->name);
	return 1;
}

int qv_ova_extract(const char *path, int dirfd, struct qv_ova_file **ret_files, size_t *ret_n,
		   struct qv_error *errp)
{
	_cleanup_fclose_ FILE *in = fopen(path, "re");
	_cleanup_free_ struct qv_ova_file *files = calloc(QV_OVA_MAX_FILES, sizeof(*files));
	size_t n = 0;
	int r;

	if (!in)
		return qv_error_set(errp, errno, errno == ENOENT ? QV_REASON_NOT_FOUND : NULL,
				    "cannot open %s: %m", path);
	if (!files)
		return -ENOMEM;
	for (;;) {
		struct qv_ova_file f = {};
		if ((r = next_header(in, &f, errp)) <= 0)
			break;
		if (n == QV_OVA_MAX_FILES)
			return BAD(errp, "OVA has more than %d members", QV_OVA_MAX_FILES);
		for (size_t i = 0; i < n; i++)
			if (streq(files[i].name, f.name))
				return BAD(errp, "OVA member %s appears twice", f.name);
		if ((r = extract_one(in, dirfd, &f, errp)) < 0)
			return r;
		files[n++] = f;
	}
	if (r < 0)
		return r;
	*ret_files = TAKE_PTR(files);
	*ret_n = n;
	return 0;
}

static const struct qv_ova_file *find(const struct qv_ova_file *f, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (streq(f[i].name, name))
			return &f[i];
	return NULL;
}

/* "SHA256(name)= hex" -> algo, name, digest; false if malformed. */
static bool parse_line(char *line, char **algo, char **name, char **digest)
{
	char *open = strchr(line, '('), *close = strstr(line, ")=");

	if (!open || !close || close < open)
		return false;
	*open = *close = 0;
	*algo = line, *name = open + 1, *digest = close + 2;
	while (**digest == ' ')
		(*digest)++;
	for (char *p = *digest; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return true;
}

int qv_ova_verify_manifest(const char *mf, const struct qv_ova_file *files, size_t n,
			   const char *mf_name, struct qv_error *errp)
{
	_cleanup_free_ char *copy = strdup(mf);
	bool listed[QV_OVA_MAX_FILES] = {};
	char *save = NULL, *algo, *name, *digest;

	if (!copy)
		return -ENOMEM;
	for (char *l = strtok_r(copy, "\r\n", &save); l; l = strtok_r(NULL, "\r\n", &save)) {
		if (!*l)
			continue;
		if (!parse_line(l, &algo, &name, &digest))
			return BAD(errp, "manifest %s: malformed line", mf_name);
		const struct qv_ova_file *f = find(files, n, name);
		if (!f)
			return BAD(errp, "manifest %s lists %.100s, which the OVA does not have", mf_name, name);
		const char *have = streq(algo, "SHA256") ? f->sha256 : streq(algo, "SHA1") ? f->sha1 : NULL;
		if (!have)
			return BAD(errp, "manifest %s: digest %.20s is not supported (SHA1, SHA256)", mf_name,
				   algo);
		if (!streq(have, digest))
			return qv_error_set(errp, EBADMSG, QV_REASON_INVALID_ARGUMENT,
					    "%s: %s checksum does not match the manifest", f->name, algo);
		listed[f - files] = true;
	}
	for (size_t i = 0; i < n; i++) {
		const char *dot = strrchr(files[i].name, '.');
		if (!listed[i] && !streq(files[i].name, mf_name) && !(dot && streq(dot, ".cert")))
			return BAD(errp, "%s is not in the manifest %s", files[i].name, mf_name);
	}
	return 0;
}
