/* SPDX-License-Identifier: MIT */
#include <criterion/criterion.h>

#include "net/ifname.h"
#include "net/mac.h"

Test(mac, parse_format_roundtrip)
{
	struct qv_mac m;
	char buf[QV_MAC_STRLEN];

	cr_assert_eq(qv_mac_parse("52:54:00:AB:cd:0F", &m), 0);
	cr_assert_str_eq(qv_mac_format(&m, buf), "52:54:00:ab:cd:0f");
	cr_assert_eq(qv_mac_parse("52-54-00-ab-cd-0f", &m), 0);
	cr_assert_eq(qv_mac_parse("52:54-00:ab:cd:0f", &m), -EINVAL, "mixed separators");
	cr_assert_eq(qv_mac_parse("52:54:00:ab:cd", &m), -EINVAL);
	cr_assert_eq(qv_mac_parse("52:54:00:ab:cd:0f:11", &m), -EINVAL);
	cr_assert_eq(qv_mac_parse("g2:54:00:ab:cd:0f", &m), -EINVAL);
	cr_assert_eq(qv_mac_parse("", &m), -EINVAL);
}

Test(mac, unicast_checks)
{
	struct qv_error err = {};
	struct qv_mac m;

	cr_assert_eq(qv_mac_check_unicast("00:00:00:00:00:00", NULL, &m, &err), -EINVAL);
	cr_assert(strstr(err.message, "zeros"), "%s", err.message);
	qv_error_clear(&err);
	cr_assert_eq(qv_mac_check_unicast("01:00:5e:00:00:01", NULL, &m, &err), -EINVAL);
	cr_assert(strstr(err.message, "multicast"), "%s", err.message);
	qv_error_clear(&err);
	cr_assert_eq(qv_mac_check_unicast("ff:ff:ff:ff:ff:ff", "nics[0].mac", &m, &err), -EINVAL);
	cr_assert(strstr(err.message, "nics[0].mac"), "%s", err.message);
	qv_error_clear(&err);
	cr_assert_eq(qv_mac_check_unicast("52:54:00:12:34:56", NULL, &m, &err), 0);
	cr_assert_not(err.set);
}

Test(mac, generated_are_local_unicast_and_distinct)
{
	struct qv_mac a, b, c, d;

	cr_assert_eq(qv_mac_generate(&a), 0);
	cr_assert_eq(qv_mac_generate(&b), 0);
	cr_assert(qv_mac_is_local(&a) && qv_mac_is_valid_unicast(&a));
	cr_assert(qv_mac_is_local(&b) && qv_mac_is_valid_unicast(&b));
	cr_assert_neq(memcmp(&a, &b, sizeof(a)), 0);
	qv_mac_derive("vm-1/0", &c);
	qv_mac_derive("vm-1/0", &d);
	cr_assert_eq(memcmp(&c, &d, sizeof(c)), 0, "derive must be stable");
	cr_assert(qv_mac_is_local(&c) && qv_mac_is_valid_unicast(&c));
	qv_mac_derive("vm-1/1", &d);
	cr_assert_neq(memcmp(&c, &d, sizeof(c)), 0);
}

Test(ifname, grammar)
{
	struct qv_error err = {};

	cr_assert(qv_ifname_valid("br-lab"));
	cr_assert(qv_ifname_valid("0123456789abcde")); /* 15 */
	cr_assert_not(qv_ifname_valid("0123456789abcdef")); /* 16 */
	cr_assert_not(qv_ifname_valid(""));
	cr_assert_not(qv_ifname_valid("."));
	cr_assert_not(qv_ifname_valid(".."));
	cr_assert_not(qv_ifname_valid("a/b"));
	cr_assert_not(qv_ifname_valid("a b"));
	cr_assert_not(qv_ifname_valid("a\tb"));
	cr_assert_not(qv_ifname_valid("a:b"));
	cr_assert_not(qv_ifname_valid(NULL));

	cr_assert_eq(qv_ifname_check("br-0123456789abc", "bridge name", &err), -EINVAL);
	cr_assert_str_eq(err.reason, "invalid-argument");
	cr_assert_str_eq(err.message,
			 "bridge name 'br-0123456789abc' is 16 characters long; Linux allows at most 15");
}

Test(ifname, tap_naming_scheme)
{
	char a[IFNAMSIZ], b[IFNAMSIZ];

	cr_assert_eq(qv_ifname_tap("2f1c7e1a-0000-4000-8000-000000000001", 0, a), 0);
	cr_assert(qv_ifname_valid(a), "%s", a);
	cr_assert_eq(strncmp(a, "qv", 2), 0);
	cr_assert_eq(qv_ifname_tap("2f1c7e1a-0000-4000-8000-000000000001", 9999, b), 0);
	cr_assert_eq(strlen(b), 15);
	cr_assert(qv_ifname_valid(b));
	cr_assert_eq(qv_ifname_tap("x", 10000, b), -EINVAL);
	cr_assert_eq(qv_ifname_tap("", 0, b), -EINVAL);
}
