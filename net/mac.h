/* SPDX-License-Identifier: MIT */
#pragma once

#include "common/error.h"

struct qv_mac {
	uint8_t b[6];
};

#define QV_MAC_STRLEN 18 /* "aa:bb:cc:dd:ee:ff" + NUL */

/* Parse "aa:bb:cc:dd:ee:ff" (also '-' separators, any case). 0 or -EINVAL. */
int qv_mac_parse(const char *s, struct qv_mac *ret);
/* Lower-case, colon-separated. Returns buf. */
char *qv_mac_format(const struct qv_mac *mac, char buf[QV_MAC_STRLEN]);

bool qv_mac_is_zero(const struct qv_mac *mac);
bool qv_mac_is_multicast(const struct qv_mac *mac); /* includes broadcast */
bool qv_mac_is_local(const struct qv_mac *mac);     /* locally administered bit */
bool qv_mac_is_valid_unicast(const struct qv_mac *mac);

/* Parse and require a usable unicast address (not zero, not multicast);
 * -EINVAL with a clear message otherwise. */
int qv_mac_check_unicast(const char *s, const char *what, struct qv_mac *ret,
			 struct qv_error *errp);

/* Random locally-administered unicast address (getrandom()). 0 or -errno. */
int qv_mac_generate(struct qv_mac *ret);
/* Stable locally-administered unicast address derived from a seed string
 * (e.g. "<vm-uuid>/<nic-index>"), so a VM keeps its MAC across restarts. */
void qv_mac_derive(const char *seed, struct qv_mac *ret);
