/* SPDX-License-Identifier: MIT */
/* Interface-name grammar: a comma in a bridge name once reached dnsmasq's
 * argv as a second interface. */
#include <criterion/criterion.h>

#include "net/ifname.h"

Test(ifname, grammar_is_alnum_underscore_dot_dash)
{
	static const char *const good[] = { "br0", "qv-lan_1.2", "A", "eth0.100" };
	static const char *const bad[] = { "up0,lo", "a=b", "br 0", "a/b", "a:b", "", ".", "..",
					   "x@y", "0123456789abcdef", "t\tab", "br\xc3\xa9" };
	struct qv_error err = {};

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		cr_expect(qv_ifname_valid(good[i]), "%s", good[i]);
		cr_expect_eq(qv_ifname_check(good[i], "bridge name", NULL), 0, "%s", good[i]);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_expect_not(qv_ifname_valid(bad[i]), "%s", bad[i]);
		cr_expect_lt(qv_ifname_check(bad[i], "bridge name", NULL), 0, "%s", bad[i]);
	}
	cr_assert_lt(qv_ifname_check("up0,lo", "bridge name", &err), 0);
	cr_assert_str_eq(err.reason, "invalid-argument");
	cr_assert(strstr(err.message, "only letters, digits"), "%s", err.message);
}
