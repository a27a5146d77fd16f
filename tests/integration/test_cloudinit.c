/* SPDX-License-Identifier: MIT */
/* cloud-init NoCloud seed end to end: real qvisord, real QEMU (TCG), the
 * test guest's init mounts the cidata disk and prints its instance-id and
 * user-data marker. The seed is rebuilt at each start and goes with the VM. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "common/json.h"
#include "helpers/guest.h"
#include "helpers/qvisord.h"

#define BOOT_TIMEOUT_MS 120000
#define VM "seeded"

static struct qvt_daemon D;

static void setup(void)
{
	qvt_daemon_fixture_start(&D);
}

static void teardown(void)
{
	qvt_daemon_cleanup(&D);
}

TestSuite(cloudinit, .init = setup, .fini = teardown);

static const char *member(json_object *o, const char *key)
{
	json_object *v;

	return o && json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : "";
}

static void start_and_expect(const char *uuid)
{
	struct qv_error err = {};
	char line[128];

	json_object_put(qvt_call_name(&D, "vm.start", VM, &err));
	cr_assert(!err.set, "vm.start: %s", err.message);
	cr_assert_eq(qvt_wait_for_line_in_file(qvt_serial_log(&D, VM), QVT_GUEST_READY,
					       BOOT_TIMEOUT_MS), 0, "guest did not boot");
	snprintf(line, sizeof(line), "QVISOR-CIDATA-IID %s", uuid);
	cr_assert_eq(qvt_wait_for_line_in_file(qvt_serial_log(&D, VM), line, 1000), 0,
		     "guest did not read instance-id %s from the seed", uuid);
	cr_assert_eq(qvt_wait_for_line_in_file(qvt_serial_log(&D, VM),
					       "QVISOR-CIDATA-MARKER seed-ok-42", 1000), 0,
		     "guest did not read the user-data marker");
	json_object *r = qvt_call_name(&D, "vm.stop", VM, &err);
	cr_assert_str_eq(member(r, "state"), "stopped", "%s", err.message);
	json_object_put(r);
}

Test(cloudinit, guest_reads_its_seed_rebuilt_each_start_removed_with_vm, .timeout = 300)
{
	QVT_REQUIRE_DAEMON(&D);
	struct qv_error err = {};
	char iso[256], uuid[64];
	struct stat st;

	cr_assert_eq(qvt_define_guest(&D, VM, "{\"cloud_init\": {\"user_data\": "
				      "\"#cloud-config\\nqvisor_marker: seed-ok-42\\n\"}}", &err),
		     0, "%s", err.message);
	json_object *info = qvt_call_name(&D, "vm.info", VM, &err);
	cr_assert_not_null(info, "%s", err.message);
	snprintf(uuid, sizeof(uuid), "%s", member(info, "uuid"));
	json_object_put(info);
	start_and_expect(uuid);

	/* The seed is private to the VM's QEMU and read-only. */
	snprintf(iso, sizeof(iso), "%s/vms/" VM "/cidata.iso", D.run_dir);
	cr_assert_eq(stat(iso, &st), 0, "%s: %s", iso, strerror(errno));
	cr_assert_eq(st.st_mode & 0777, 0400);

	/* Damage it while stopped: the next start writes it again. */
	int fd = open(iso, O_WRONLY | O_TRUNC);
	cr_assert_geq(fd, 0);
	close(fd);
	cr_assert_eq(truncate(qvt_serial_log(&D, VM), 0), 0);
	start_and_expect(uuid);

	json_object_put(qvt_call_name(&D, "vm.undefine", VM, &err));
	cr_assert(!err.set, "%s", err.message);
	cr_assert_neq(stat(iso, &st), 0, "the seed outlived its VM");
}
