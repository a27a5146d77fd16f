/* SPDX-License-Identifier: MIT */
/* Typed field readers and grammars for the VM spec parser. */
#include <ctype.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sys/random.h>

#include "common/macro.h"
#include "qemu/spec-internal.h"

static int bad(struct qv_error *errp, const char *path, const char *key, const char *fmt,
	       const char *detail)
{
	char msg[256];

	snprintf(msg, sizeof(msg), fmt, detail ? detail : "");
	return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT, "%s.%s: %s", path, key, msg);
}

static json_object *field(json_object *o, const char *key)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || json_object_is_type(v, json_type_null))
		return NULL;
	return v;
}

int spec_check_keys(json_object *o, const char *const *allowed, const char *path,
		    struct qv_error *errp)
{
	if (!json_object_is_type(o, json_type_object))
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "%s: must be an object", path);
	json_object_object_foreach(o, key, val) {
		(void)val;
		bool ok = false;
		for (const char *const *a = allowed; *a && !ok; a++)
			ok = streq(*a, key);
		if (!ok)
			return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
					    "%s.%.64s: unknown field", path, key);
	}
	return 0;
}

int spec_get_string(json_object *o, const char *key, const char *path, const char **ret,
		    struct qv_error *errp)
{
	json_object *v = field(o, key);

	if (!v)
		return -ENOENT;
	if (!json_object_is_type(v, json_type_string))
		return bad(errp, path, key, "must be a string%s", NULL);
	const char *s = json_object_get_string(v);
	if (strlen(s) != (size_t)json_object_get_string_len(v))
		return bad(errp, path, key, "must not contain NUL characters%s", NULL);
	*ret = s;
	return 0;
}

int spec_get_int(json_object *o, const char *key, const char *path, int64_t min, int64_t max,
		 int64_t *ret, struct qv_error *errp)
{
	json_object *v = field(o, key);
	char range[96];

	if (!v)
		return -ENOENT;
	if (!json_object_is_type(v, json_type_int))
		return bad(errp, path, key, "must be an integer%s", NULL);
	errno = 0;
	int64_t x = json_object_get_int64(v);
	snprintf(range, sizeof(range), "%" PRId64 "..%" PRId64, min, max);
	if (errno == ERANGE || x < min || x > max)
		return bad(errp, path, key, "out of range (allowed %s)", range);
	*ret = x;
	return 0;
}

int spec_get_bool(json_object *o, const char *key, const char *path, bool *ret,
		  struct qv_error *errp)
{
	json_object *v = field(o, key);

	if (!v)
		return -ENOENT;
	if (!json_object_is_type(v, json_type_boolean))
		return bad(errp, path, key, "must be true or false%s", NULL);
	*ret = json_object_get_boolean(v);
	return 0;
}

int spec_parse_size(const char *s, uint64_t unit, uint64_t *ret)
{
	uint64_t x = 0, mult = unit;
	const char *p = s;

	if (!isdigit((unsigned char)*p))
		return -EINVAL;
	for (; isdigit((unsigned char)*p); p++) {
		if (x > (UINT64_MAX - 9) / 10)
			return -ERANGE;
		x = x * 10 + (uint64_t)(*p - '0');
	}
	if (*p) {
		switch (toupper((unsigned char)*p)) {
		case 'K': mult = 1ULL << 10; break;
		case 'M': mult = 1ULL << 20; break;
		case 'G': mult = 1ULL << 30; break;
		case 'T': mult = 1ULL << 40; break;
		case 'B': mult = 1; p--; break;
		default: return -EINVAL;
		}
		p++;
		if (strcasecmp(p, "iB") == 0 && mult > 1)
			p += 2;
		else if (strcasecmp(p, "B") == 0)
			p += 1;
		if (*p)
			return -EINVAL;
	}
	if (mult && x > UINT64_MAX / mult)
		return -ERANGE;
	*ret = x * mult;
	return 0;
}

int spec_get_size(json_object *o, const char *key, const char *path, uint64_t min,
		  uint64_t max, uint64_t *ret, struct qv_error *errp)
{
	json_object *v = field(o, key);
	char range[96];
	uint64_t x;

	if (!v)
		return -ENOENT;
	snprintf(range, sizeof(range), "%" PRIu64 "..%" PRIu64 " bytes", min, max);
	if (json_object_is_type(v, json_type_int)) {
		errno = 0;
		int64_t i = json_object_get_int64(v);
		if (i < 0)
			return bad(errp, path, key, "out of range (allowed %s)", range);
		x = errno == ERANGE ? json_object_get_uint64(v) : (uint64_t)i;
	} else if (json_object_is_type(v, json_type_string)) {
		int r = spec_parse_size(json_object_get_string(v), 1, &x);
		if (r == -ERANGE)
			return bad(errp, path, key, "out of range (allowed %s)", range);
		if (r < 0)
			return bad(errp, path, key,
				   "must be bytes or a size like \"512M\", \"2G\"%s", NULL);
	} else
		return bad(errp, path, key, "must be an integer or a size string like \"512M\"%s",
			   NULL);
	if (x < min || x > max)
		return bad(errp, path, key, "out of range (allowed %s)", range);
	*ret = x;
	return 0;
}

bool spec_path_valid(const char *s, const char **ret_why)
{
	const char *why = NULL;
	size_t n = strlen(s);

	if (s[0] != '/')
		why = "must be an absolute path";
	else if (n > VM_PATH_MAX)
		why = "path too long";
	for (const char *p = s; !why && *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			why = "must not contain control characters";
	for (const char *p = s; !why && (p = strstr(p, "..")); p += 2)
		if (p[-1] == '/' && (p[2] == '/' || p[2] == '\0'))
			why = "must not contain \"..\" components";
	if (why && ret_why)
		*ret_why = why;
	return !why;
}

int spec_get_path(json_object *o, const char *key, const char *path, const char **ret,
		  struct qv_error *errp)
{
	const char *s, *why;
	int r = spec_get_string(o, key, path, &s, errp);

	if (r < 0)
		return r;
	if (!spec_path_valid(s, &why))
		return bad(errp, path, key, "%s", why);
	*ret = s;
	return 0;
}

bool spec_ifname_valid(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > VM_IFNAME_MAX || streq(s, ".") || streq(s, ".."))
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("_.-", *s))
			return false;
	return true;
}

/* q35, pc, or a versioned pc-q35-X.Y / pc-i440fx-X.Y. */
bool spec_machine_valid(const char *s)
{
	const char *v = NULL;

	if (streq(s, "q35") || streq(s, "pc"))
		return true;
	if (strncmp(s, "pc-q35-", 7) == 0)
		v = s + 7;
	else if (strncmp(s, "pc-i440fx-", 10) == 0)
		v = s + 10;
	if (!v || strlen(v) > 8 || !isdigit((unsigned char)*v))
		return false;
	for (; *v; v++)
		if (!isdigit((unsigned char)*v) && *v != '.')
			return false;
	return true;
}

/* "0-3,8,10-11": ranges of CPU/node numbers below 8192. */
bool spec_cpuset_valid(const char *s)
{
	const char *p = s;

	if (!*s || strlen(s) > VM_CPUSET_MAX)
		return false;
	for (;;) {
		char *end;
		if (!isdigit((unsigned char)*p))
			return false;
		unsigned long a = strtoul(p, &end, 10), b = a;
		p = end;
		if (*p == '-') {
			if (!isdigit((unsigned char)*++p))
				return false;
			b = strtoul(p, &end, 10);
			p = end;
		}
		if (a > 8191 || b > 8191 || b < a)
			return false;
		if (*p == '\0')
			return true;
		if (*p++ != ',')
			return false;
	}
}

bool spec_uuid_normalize(const char *s, char ret[37])
{
	char out[37];
	bool nonzero = false;

	if (strlen(s) != 36)
		return false;
	for (int i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return false;
			out[i] = '-';
			continue;
		}
		if (!isxdigit((unsigned char)s[i]))
			return false;
		out[i] = (char)tolower((unsigned char)s[i]);
		nonzero |= out[i] != '0';
	}
	out[36] = '\0';
	if (!nonzero)
		return false;
	memcpy(ret, out, 37);
	return true;
}

int spec_uuid_generate(char ret[37])
{
	uint8_t b[16];
	ssize_t n = getrandom(b, sizeof(b), 0);

	if (n != (ssize_t)sizeof(b)) {
		_cleanup_close_ int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
		if (fd < 0 || read(fd, b, sizeof(b)) != (ssize_t)sizeof(b))
			return -EIO;
	}
	b[6] = (b[6] & 0x0f) | 0x40; /* version 4 */
	b[8] = (b[8] & 0x3f) | 0x80; /* RFC 4122 variant */
	snprintf(ret, 37,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11],
		 b[12], b[13], b[14], b[15]);
	return 0;
}

bool spec_mac_normalize(const char *s, char ret[18])
{
	char out[18];
	bool nonzero = false;

	if (strlen(s) != 17)
		return false;
	for (int i = 0; i < 17; i++) {
		if (i % 3 == 2) {
			if (s[i] != ':')
				return false;
			out[i] = ':';
			continue;
		}
		if (!isxdigit((unsigned char)s[i]))
			return false;
		out[i] = (char)tolower((unsigned char)s[i]);
		nonzero |= out[i] != '0';
	}
	out[17] = '\0';
	unsigned first = (unsigned)strtoul((char[]){ out[0], out[1], 0 }, NULL, 16);
	if (!nonzero || (first & 1))
		return false; /* zero or multicast/broadcast */
	memcpy(ret, out, 18);
	return true;
}

void vm_mac_from_uuid(const char *uuid, unsigned index, char ret_mac[18])
{
	/* FNV-1a over the uuid text and the index. */
	uint32_t h = 2166136261u;

	for (const char *p = uuid ? uuid : ""; *p; p++)
		h = (h ^ (uint8_t)tolower((unsigned char)*p)) * 16777619u;
	for (int i = 0; i < 4; i++)
		h = (h ^ ((index >> (8 * i)) & 0xff)) * 16777619u;
	h ^= h >> 15;
	h *= 0x2c1b3c6du;
	h ^= h >> 12;
	snprintf(ret_mac, 18, "52:54:00:%02x:%02x:%02x", (h >> 16) & 0xff, (h >> 8) & 0xff,
		 h & 0xff);
}

bool vm_name_valid(const char *name)
{
	size_t n;

	if (!name || !isalnum((unsigned char)name[0]))
		return false;
	n = strlen(name);
	if (n > VM_NAME_MAX)
		return false;
	for (const char *p = name; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr("_.-", *p))
			return false;
	return true;
}

static const char *const accel_names[] = {
	[VM_ACCEL_AUTO] = "auto", [VM_ACCEL_KVM] = "kvm", [VM_ACCEL_TCG] = "tcg" };
static const char *const format_names[] = { [VM_DISK_RAW] = "raw", [VM_DISK_QCOW2] = "qcow2" };
static const char *const policy_names[] = {
	[VM_RESTART_NO] = "no", [VM_RESTART_ON_FAILURE] = "on-failure" };

static int lookup(const char *const *names, size_t n, const char *s)
{
	for (size_t i = 0; s && i < n; i++)
		if (streq(names[i], s))
			return (int)i;
	return -EINVAL;
}

const char *vm_accel_to_string(enum vm_accel a)
{
	return (unsigned)a < ARRAY_SIZE(accel_names) ? accel_names[a] : NULL;
}

int vm_accel_from_string(const char *s)
{
	return lookup(accel_names, ARRAY_SIZE(accel_names), s);
}

const char *vm_disk_format_to_string(enum vm_disk_format f)
{
	return (unsigned)f < ARRAY_SIZE(format_names) ? format_names[f] : NULL;
}

int vm_disk_format_from_string(const char *s)
{
	return lookup(format_names, ARRAY_SIZE(format_names), s);
}

const char *vm_restart_policy_to_string(enum vm_restart_policy p)
{
	return (unsigned)p < ARRAY_SIZE(policy_names) ? policy_names[p] : NULL;
}

int vm_restart_policy_from_string(const char *s)
{
	return lookup(policy_names, ARRAY_SIZE(policy_names), s);
}
