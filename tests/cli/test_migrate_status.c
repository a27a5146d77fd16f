/* SPDX-License-Identifier: MIT */
/* qvisor migrate-status: the line printed for migrate.status's answers,
 * among them a destination prepare in flight (state "preparing", step). */
#include <criterion/criterion.h>

#include "cli/verb-migrate.h"

static const char *line_of(const char *json, char *buf, size_t size)
{
	json_object *o = json_tokener_parse(json);
	cr_assert_not_null(o);
	cli_migrate_status_line(o, buf, size);
	json_object_put(o);
	return buf;
}

Test(migrate_status, a_prepare_in_flight_shows_its_step)
{
	char buf[256];

	cr_assert_str_eq(line_of("{\"id\": \"v1-in\", \"name\": \"v1\", \"role\": \"destination\", "
				 "\"state\": \"preparing\", \"step\": \"creating-images\", "
				 "\"active\": true}", buf, sizeof(buf)),
			 "v1: destination migration preparing (step creating-images)");
	cr_assert_str_eq(line_of("{\"name\": \"v1\", \"role\": \"destination\", "
				 "\"state\": \"preparing\", \"step\": \"configuring-incoming\", "
				 "\"steps_done\": 2, \"active\": true}", buf, sizeof(buf)),
			 "v1: destination migration preparing (step configuring-incoming, 2 QMP "
			 "steps done)");
}

Test(migrate_status, a_record_shows_state_phase_and_peer)
{
	char buf[256];

	cr_assert_str_eq(line_of("{\"name\": \"v1\", \"role\": \"source\", \"state\": "
				 "\"performing\", \"driver_phase\": \"performing\", \"peer\": "
				 "\"tcp:10.0.0.2:4444\", \"active\": true}", buf, sizeof(buf)),
			 "v1: source migration performing, driver phase performing, peer "
			 "tcp:10.0.0.2:4444");
	cr_assert_str_eq(line_of("{\"name\": \"v1\", \"role\": \"destination\", \"state\": "
				 "\"finished\", \"active\": false}", buf, sizeof(buf)),
			 "v1: destination migration finished (record only)");
}
