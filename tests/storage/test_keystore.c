/* SPDX-License-Identifier: MIT */
#include <sys/stat.h>

#include "storage/keystore.h"
#include "storage/util.h"

static char *dir;

static void setup(void)
{
	dir = scratch_dir();
}
static void teardown(void)
{
	scratch_remove(dir);
	dir = NULL;
}
TestSuite(keystore, .init = setup, .fini = teardown, .timeout = 30);

static qv_keystore *open_ks(const char *master)
{
	_cleanup_free_ char *kd = path_in(dir, "keys");
	struct qv_error err = { 0 };
	qv_keystore *ks = NULL;

	cr_assert_eq(qv_keystore_open(kd, master, &ks, &err), 0, "%s", err.message);
	return ks;
}

static char *write_master(const char *name, const void *data, size_t len, mode_t mode)
{
	char *p = path_in(dir, name);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, mode);

	cr_assert(fd >= 0);
	cr_assert_eq(write(fd, data, len), (ssize_t)len);
	cr_assert_eq(fchmod(fd, mode), 0);
	close(fd);
	return p;
}

static struct qv_secret *sec(const char *s)
{
	struct qv_secret *out = NULL;
	cr_assert_eq(qv_secret_new(s, strlen(s), &out, NULL), 0);
	return out;
}

/* Whether `needle` occurs anywhere in the file. */
static bool file_contains(const char *path, const char *needle)
{
	char buf[4096];
	int fd = open(path, O_RDONLY);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf)) : -1;

	if (fd >= 0)
		close(fd);
	return n > 0 && memmem(buf, (size_t)n, needle, strlen(needle)) != NULL;
}

static size_t count_entries(const char *d)
{
	DIR *dd = opendir(d);
	size_t n = 0;
	for (struct dirent *de; dd && (de = readdir(dd));)
		n += de->d_name[0] != '.';
	if (dd)
		closedir(dd);
	return n;
}

static size_t count_dotfiles(const char *d)
{
	DIR *dd = opendir(d);
	size_t n = 0;
	for (struct dirent *de; dd && (de = readdir(dd));)
		n += de->d_name[0] == '.' && strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
	if (dd)
		closedir(dd);
	return n;
}

Test(keystore, put_get_replace_remove_modes)
{
	qv_keystore *ks = open_ks(NULL);
	_cleanup_free_ char *kd = path_in(dir, "keys"), *kf = path_in(kd, "disk1.key");
	struct qv_secret *a = sec("correct horse"), *b = sec("battery staple"), *got = NULL;
	struct qv_error err = { 0 };
	struct stat st;

	cr_assert_eq(stat(kd, &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0700);
	cr_assert_not(qv_keystore_has(ks, "disk1"));
	cr_assert_eq(qv_keystore_put(ks, "disk1", a, &err), 0, "%s", err.message);
	cr_assert(qv_keystore_has(ks, "disk1"));
	cr_assert_eq(stat(kf, &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0600);
	cr_assert_eq(qv_keystore_get(ks, "disk1", &got, &err), 0, "%s", err.message);
	cr_assert(qv_secret_equal(got, a));
	got = qv_secret_free(got);
	/* Replacing is atomic: no temporary file stays, the new key reads back. */
	cr_assert_eq(qv_keystore_put(ks, "disk1", b, &err), 0, "%s", err.message);
	cr_assert_eq(count_dotfiles(kd), 0);
	cr_assert_eq(count_entries(kd), 1);
	cr_assert_eq(qv_keystore_get(ks, "disk1", &got, &err), 0);
	cr_assert(qv_secret_equal(got, b));
	cr_assert_not(qv_secret_equal(got, a));
	got = qv_secret_free(got);
	cr_assert_eq(qv_keystore_remove(ks, "disk1", &err), 0);
	cr_assert_eq(qv_keystore_remove(ks, "disk1", &err), 0, "missing is fine");
	cr_assert_eq(count_entries(kd), 0);
	qv_secret_free(a);
	qv_secret_free(b);
	qv_keystore_free(ks);
}

Test(keystore, existing_wide_dir_is_narrowed)
{
	_cleanup_free_ char *kd = path_in(dir, "keys");
	struct stat st;

	cr_assert_eq(mkdir(kd, 0755), 0);
	cr_assert_eq(chmod(kd, 0755), 0);
	qv_keystore_free(open_ks(NULL));
	cr_assert_eq(stat(kd, &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0700);
}

Test(keystore, stale_temp_file_is_ignored)
{
	_cleanup_free_ char *kd = path_in(dir, "keys"), *tmp = NULL;
	qv_keystore *ks = open_ks(NULL);
	struct qv_secret *a = sec("one"), *got = NULL;
	struct qv_error err = { 0 };

	/* What a crash between write and rename leaves. */
	tmp = path_in(kd, ".disk1.key.abcdef");
	int fd = open(tmp, O_WRONLY | O_CREAT, 0600);
	cr_assert(fd >= 0);
	cr_assert_eq(write(fd, "QVK1", 4), 4);
	close(fd);
	cr_assert_not(qv_keystore_has(ks, "disk1"));
	cr_assert_eq(qv_keystore_get(ks, "disk1", &got, &err), -ENOENT);
	cr_assert_eq(qv_keystore_put(ks, "disk1", a, &err), 0, "%s", err.message);
	cr_assert_eq(qv_keystore_get(ks, "disk1", &got, &err), 0);
	cr_assert(qv_secret_equal(got, a));
	qv_secret_free(got);
	qv_secret_free(a);
	qv_keystore_free(ks);
}

Test(keystore, missing_key_and_bad_names)
{
	qv_keystore *ks = open_ks(NULL);
	struct qv_secret *a = sec("x"), *got = NULL;
	const char *bad[] = { "", ".hidden", "../etc/passwd", "a/b", "a b", "..",
			      "x234567890123456789012345678901234567890123456789012345678901234" };
	struct qv_error err = { 0 };

	cr_assert_eq(qv_keystore_get(ks, "nope", &got, &err), -ENOENT);
	cr_assert_str_eq(err.reason, "not-found");
	cr_assert(strstr(err.message, "nope"), "%s", err.message);
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct qv_error e = { 0 };
		cr_assert_eq(qv_keystore_put(ks, bad[i], a, &e), -EINVAL, "%s", bad[i]);
		cr_assert_str_eq(e.reason, "invalid-argument");
		cr_assert_eq(qv_keystore_get(ks, bad[i], &got, NULL), -EINVAL, "%s", bad[i]);
		cr_assert_eq(qv_keystore_remove(ks, bad[i], NULL), -EINVAL, "%s", bad[i]);
		cr_assert_not(qv_keystore_has(ks, bad[i]));
	}
	qv_secret_free(a);
	qv_keystore_free(ks);
}

Test(keystore, secrets_are_validated)
{
	struct qv_secret *s = NULL;
	struct qv_error err = { 0 };
	char big[QV_SECRET_MAX + 1];

	memset(big, 'a', sizeof(big));
	cr_assert_eq(qv_secret_new("", 0, &s, &err), -EINVAL);
	cr_assert_eq(qv_secret_new("a\0b", 3, &s, &err), -EINVAL);
	cr_assert_eq(qv_secret_new(big, sizeof(big), &s, &err), -EINVAL);
	cr_assert_eq(qv_secret_new(big, QV_SECRET_MAX, &s, &err), 0);
	qv_secret_free(s);
	struct qv_secret *g1 = NULL, *g2 = NULL;
	cr_assert_eq(qv_secret_generate(&g1), 0);
	cr_assert_eq(qv_secret_generate(&g2), 0);
	cr_assert_eq(g1->len, 44);
	cr_assert_not(qv_secret_equal(g1, g2));
	qv_secret_free(g1);
	qv_secret_free(g2);
}

Test(keystore, wrapped_keys_and_wrong_master_key)
{
	unsigned char m1[32], m2[32];
	for (int i = 0; i < 32; i++) {
		m1[i] = (unsigned char)i;
		m2[i] = (unsigned char)(i + 1);
	}
	_cleanup_free_ char *p1 = write_master("m1", m1, 32, 0600);
	_cleanup_free_ char *p2 = write_master("m2", m2, 32, 0600);
	_cleanup_free_ char *kd = path_in(dir, "keys"), *kf = path_in(kd, "vol.key");
	struct qv_secret *a = sec("the-passphrase-123"), *got = NULL;
	struct qv_error err = { 0 };
	qv_keystore *ks = open_ks(p1);

	cr_assert(qv_keystore_wrapped(ks));
	cr_assert_eq(qv_keystore_put(ks, "vol", a, &err), 0, "%s", err.message);
	cr_assert_not(file_contains(kf, "the-passphrase-123"), "wrapped key is in the clear");
	cr_assert_eq(qv_keystore_get(ks, "vol", &got, &err), 0, "%s", err.message);
	cr_assert(qv_secret_equal(got, a));
	got = qv_secret_free(got);
	qv_keystore_free(ks);

	/* Another master key: refused, and the message says why. */
	ks = open_ks(p2);
	cr_assert_eq(qv_keystore_get(ks, "vol", &got, &err), -EKEYREJECTED);
	cr_assert_str_eq(err.reason, "permission-denied");
	cr_assert(strstr(err.message, "master key"), "%s", err.message);
	cr_assert_null(got);
	qv_keystore_free(ks);

	/* No master key: the wrapped key is unavailable, not garbage. */
	ks = open_ks(NULL);
	err = (struct qv_error){ 0 };
	cr_assert_eq(qv_keystore_get(ks, "vol", &got, &err), -ENOKEY);
	cr_assert(strstr(err.message, "--master-key-file"), "%s", err.message);
	qv_keystore_free(ks);

	/* A key file renamed to another image does not unwrap (name is bound). */
	_cleanup_free_ char *kf2 = path_in(kd, "other.key");
	cr_assert_eq(link(kf, kf2), 0);
	ks = open_ks(p1);
	cr_assert_eq(qv_keystore_get(ks, "other", &got, &err), -EKEYREJECTED);
	/* A flipped byte is detected. */
	int fd = open(kf, O_RDWR);
	unsigned char c;
	cr_assert_eq(pread(fd, &c, 1, 25), 1);
	c ^= 1;
	cr_assert_eq(pwrite(fd, &c, 1, 25), 1);
	close(fd);
	cr_assert_eq(qv_keystore_get(ks, "vol", &got, &err), -EKEYREJECTED);
	qv_keystore_free(ks);
	qv_secret_free(a);
}

Test(keystore, master_key_file_checks)
{
	_cleanup_free_ char *kd = path_in(dir, "keys");
	_cleanup_free_ char *wide = write_master("wide", "0123456789abcdef0123456789abcdef", 32, 0644);
	_cleanup_free_ char *shrt = write_master("short", "abc", 3, 0600);
	_cleanup_free_ char *hex = write_master(
		"hex", "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n", 65, 0400);
	_cleanup_free_ char *badhex = write_master(
		"badhex", "zz112233445566778899aabbccddeeff00112233445566778899aabbccddeeff", 64, 0600);
	_cleanup_free_ char *missing = path_in(dir, "missing");
	qv_keystore *ks = NULL;
	struct qv_error err = { 0 };

	cr_assert_eq(qv_keystore_open(kd, wide, &ks, &err), -EPERM);
	cr_assert(strstr(err.message, "chmod 600"), "%s", err.message);
	cr_assert_eq(qv_keystore_open(kd, shrt, &ks, &err), -EINVAL);
	cr_assert_eq(qv_keystore_open(kd, badhex, &ks, &err), -EINVAL);
	cr_assert_eq(qv_keystore_open(kd, missing, &ks, &err), -ENOENT);
	cr_assert_null(ks);
	cr_assert_eq(qv_keystore_open(kd, hex, &ks, &err), 0, "%s", err.message);
	cr_assert(qv_keystore_wrapped(ks));
	qv_keystore_free(ks);
}

Test(keystore, damaged_files)
{
	_cleanup_free_ char *kd = path_in(dir, "keys");
	qv_keystore *ks = open_ks(NULL);
	_cleanup_free_ char *kf = path_in(kd, "bad.key"), *ln = path_in(kd, "lnk.key");
	struct qv_secret *got = NULL;
	struct qv_error err = { 0 };
	int fd = open(kf, O_WRONLY | O_CREAT, 0600);

	cr_assert_eq(write(fd, "garbage!", 8), 8);
	close(fd);
	cr_assert_eq(qv_keystore_get(ks, "bad", &got, &err), -EINVAL);
	cr_assert(strstr(err.message, "damaged"), "%s", err.message);
	/* A symlink is never followed. */
	cr_assert_eq(symlink("/etc/passwd", ln), 0);
	cr_assert_lt(qv_keystore_get(ks, "lnk", &got, &err), 0);
	cr_assert_not(qv_keystore_has(ks, "lnk"));
	qv_keystore_free(ks);
}
