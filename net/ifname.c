/* SPDX-License-Identifier: MIT */
#include <ctype.h>

#include "net/ifname.h"

/* Narrower than the kernel's grammar: names reach dnsmasq's and nft's
 * argv, where ',' or '=' would be read as syntax. */
static bool name_char_ok(unsigned char c)
{
	return isalnum(c) || c == '_' || c == '.' || c == '-';
}

bool qv_ifname_valid(const char *name)
{
	size_t n;

	if (!name)
		return false;
	n = strnlen(name, IFNAMSIZ);
	if (n == 0 || n > QV_IFNAME_MAX)
		return false;
	if (streq(name, ".") || streq(name, ".."))
		return false;
	for (const char *p = name; *p; p++)
		if (!name_char_ok((unsigned char)*p))
			return false;
	return true;
}

int qv_ifname_check(const char *name, const char *what, struct qv_error *errp)
{
	size_t n;

	if (!what)
		what = "interface name";
	if (!name || !*name)
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT, "%s is empty", what);
	n = strlen(name);
	if (n > QV_IFNAME_MAX)
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "%s '%.64s%s' is %zu characters long; Linux allows at most %d",
				    what, name, n > 64 ? "..." : "", n, QV_IFNAME_MAX);
	if (streq(name, ".") || streq(name, ".."))
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "%s '%s' is reserved", what, name);
	for (const char *p = name; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if (!name_char_ok(c))
			return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
					    "%s '%s' contains a forbidden character (0x%02x); "
					    "only letters, digits, '_', '.' and '-' are allowed",
					    what, name, c);
	}
	return 0;
}

static uint32_t fnv1a32(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 16777619u;
	}
	return h;
}

int qv_ifname_tap(const char *vm_id, unsigned idx, char ret[IFNAMSIZ])
{
	if (!vm_id || !*vm_id || idx > 9999)
		return -EINVAL;
	snprintf(ret, IFNAMSIZ, "qv%08xn%u", fnv1a32(vm_id), idx);
	return 0;
}
