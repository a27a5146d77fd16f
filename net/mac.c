/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <sys/random.h>

#include "net/mac.h"

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int qv_mac_parse(const char *s, struct qv_mac *ret)
{
	struct qv_mac m;
	char sep = 0;

	if (!s)
		return -EINVAL;
	for (int i = 0; i < 6; i++) {
		int hi = hexval((unsigned char)s[0]), lo = hi < 0 ? -1 : hexval((unsigned char)s[1]);
		if (hi < 0 || lo < 0)
			return -EINVAL;
		m.b[i] = (uint8_t)(hi << 4 | lo);
		s += 2;
		if (i == 5)
			break;
		if (*s != ':' && *s != '-')
			return -EINVAL;
		if (sep && *s != sep)
			return -EINVAL;
		sep = *s++;
	}
	if (*s)
		return -EINVAL;
	*ret = m;
	return 0;
}

char *qv_mac_format(const struct qv_mac *m, char buf[QV_MAC_STRLEN])
{
	snprintf(buf, QV_MAC_STRLEN, "%02x:%02x:%02x:%02x:%02x:%02x",
		 m->b[0], m->b[1], m->b[2], m->b[3], m->b[4], m->b[5]);
	return buf;
}

bool qv_mac_is_zero(const struct qv_mac *m)
{
	for (int i = 0; i < 6; i++)
		if (m->b[i])
			return false;
	return true;
}

bool qv_mac_is_multicast(const struct qv_mac *m)
{
	return m->b[0] & 0x01;
}

bool qv_mac_is_local(const struct qv_mac *m)
{
	return m->b[0] & 0x02;
}

bool qv_mac_is_valid_unicast(const struct qv_mac *m)
{
	return !qv_mac_is_zero(m) && !qv_mac_is_multicast(m);
}

int qv_mac_check_unicast(const char *s, const char *what, struct qv_mac *ret,
			 struct qv_error *errp)
{
	struct qv_mac m;

	if (!what)
		what = "MAC address";
	if (qv_mac_parse(s, &m) < 0)
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "%s '%.32s' is not of the form aa:bb:cc:dd:ee:ff", what,
				    s ? s : "");
	if (qv_mac_is_zero(&m))
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "%s '%s' is all zeros", what, s);
	if (qv_mac_is_multicast(&m))
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "%s '%s' is a multicast address (low bit of the first octet set)",
				    what, s);
	*ret = m;
	return 0;
}

static void make_local_unicast(struct qv_mac *m)
{
	m->b[0] = (uint8_t)((m->b[0] & 0xfe) | 0x02);
}

int qv_mac_generate(struct qv_mac *ret)
{
	struct qv_mac m;

	if (getrandom(m.b, sizeof(m.b), 0) != (ssize_t)sizeof(m.b))
		return negative_errno();
	make_local_unicast(&m);
	if (qv_mac_is_zero(&m)) /* cannot happen after the local bit, but keep it honest */
		m.b[5] = 1;
	*ret = m;
	return 0;
}

void qv_mac_derive(const char *seed, struct qv_mac *ret)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a 64 */

	for (const char *p = seed ? seed : ""; *p; p++) {
		h ^= (unsigned char)*p;
		h *= 1099511628211ull;
	}
	for (int i = 0; i < 6; i++)
		ret->b[i] = (uint8_t)(h >> (8 * i));
	make_local_unicast(ret);
}
