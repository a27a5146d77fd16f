/* SPDX-License-Identifier: MIT */
/* qvisor migrate-status: the line for migrate.status's answer (kept apart
 * from the verb so tests/cli links it without the verb table). */
#include <stdio.h>

#include "cli/verb-migrate.h"

const char *cli_migrate_status_line(json_object *res, char *buf, size_t size)
{
	json_object *v;
	size_t n;

#define STR(k) (json_object_object_get_ex(res, k, &v) ? json_object_get_string(v) : NULL)
	n = (size_t)snprintf(buf, size, "%s: %s migration %s", STR("name") ? STR("name") : "?",
			     STR("role") ? STR("role") : "?", STR("state") ? STR("state") : "?");
	if (n < size && STR("step")) {
		n += (size_t)snprintf(buf + n, size - n, " (step %s", STR("step"));
		if (n < size && json_object_object_get_ex(res, "steps_done", &v))
			n += (size_t)snprintf(buf + n, size - n, ", %d QMP steps done",
					      json_object_get_int(v));
		if (n < size)
			n += (size_t)snprintf(buf + n, size - n, ")");
	}
	if (n < size && STR("driver_phase"))
		n += (size_t)snprintf(buf + n, size - n, ", driver phase %s", STR("driver_phase"));
	if (n < size && STR("peer"))
		n += (size_t)snprintf(buf + n, size - n, ", peer %s", STR("peer"));
	if (n < size && json_object_object_get_ex(res, "active", &v) && !json_object_get_boolean(v))
		snprintf(buf + n, size - n, " (record only)");
#undef STR
	return buf;
}
