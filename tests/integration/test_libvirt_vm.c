/* SPDX-License-Identifier: MIT */
/* A libvirt domain XML written for the test guest imports through the real
 * qvisord (vm.import-libvirt and `qvisor define --from-libvirt`), boots,
 * reads its disk, dumps back (vm.dump-libvirt) to an XML that imports to the
 * same spec, and a refused XML names its XPath. Real QEMU (TCG). */
#include <criterion/criterion.h>

#include "common/json.h"
#include "helpers/guest.h"
#include "helpers/qvisord.h"

#define BOOT_TIMEOUT_MS 120000
/* md5 of 1 MiB of zeros: the guest reads the fresh raw image */
#define ZERO_MIB_MD5 "b6d81b360a5672d80c27430f39153e2c"

static struct qvt_daemon D;

static void setup(void)
{
	qvt_daemon_fixture_start(&D);
}

static void teardown(void)
{
	qvt_daemon_cleanup(&D);
}

TestSuite(libvirt_vm, .init = setup, .fini = teardown);

static char *guest_xml(const char *name, const char *disk, const char *extra)
{
	_cleanup_free_ char *kernel = qvt_guest_file("vmlinuz");
	_cleanup_free_ char *initrd = qvt_guest_file("initrd.img");
	char *xml;

	cr_assert(asprintf(&xml,
		"<domain type='qemu'>\n"
		"  <name>%s</name>\n"
		"  <memory unit='MiB'>192</memory>\n"
		"  <currentMemory unit='KiB'>196608</currentMemory>\n"
		"  <vcpu placement='static'>1</vcpu>\n"
		"  <os>\n"
		"    <type arch='x86_64' machine='q35'>hvm</type>\n"
		"    <kernel>%s</kernel>\n    <initrd>%s</initrd>\n"
		"    <cmdline>console=ttyS0 panic=-1 qv.blkread=/dev/vda:1</cmdline>\n"
		"  </os>\n"
		"  <features><acpi/><apic/></features>\n"
		"  <clock offset='utc'/>\n"
		"  <on_poweroff>destroy</on_poweroff><on_reboot>restart</on_reboot>"
		"<on_crash>destroy</on_crash>\n"
		"  <devices>\n"
		"    <emulator>/usr/bin/qemu-system-x86_64</emulator>\n"
		"    <disk type='file' device='disk'>\n"
		"      <driver name='qemu' type='raw'/>\n"
		"      <source file='%s'/>\n"
		"      <target dev='vda' bus='virtio'/>\n"
		"      <readonly/>\n"
		"      <serial>lvdisk01</serial>\n"
		"    </disk>\n"
		"    <controller type='pci' index='0' model='pcie-root'/>\n"
		"    <serial type='pty'><target type='isa-serial' port='0'/></serial>\n"
		"    <console type='pty'><target type='serial' port='0'/></console>\n"
		"    <memballoon model='none'/>\n%s"
		"  </devices>\n"
		"</domain>\n", name, kernel, initrd, disk, extra) >= 0);
	return xml;
}

static const char *member(json_object *o, const char *key)
{
	json_object *v;

	return o && json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : "";
}

static void make_disk(char *path, size_t size)
{
	struct qv_error err = {};
	json_object *r = NULL;

	cr_assert_eq(qvt_callf(&D, "image.create", &r, &err,
			       "{\"name\": \"lvdisk\", \"size\": 1048576, \"format\": \"raw\"}"),
		     0, "image.create: %s", err.message);
	snprintf(path, size, "%s", member(r, "path"));
	json_object_put(r);
}

static int run_cli(const char *args, char *out, size_t size)
{
	return qvt_cli(&D, args, out, size);
}

Test(libvirt_vm, imports_boots_and_round_trips, .timeout = 300)
{
	QVT_REQUIRE_DAEMON(&D);
	struct qv_error err = {};
	char disk[256], xmlpath[256], out[8192], cmd[512];
	json_object *r = NULL;

	make_disk(disk, sizeof(disk));
	_cleanup_free_ char *xml = guest_xml("lvguest", disk, "");
	/* through the CLI, as an operator would */
	snprintf(xmlpath, sizeof(xmlpath), "%s/lvguest.xml", D.dir);
	FILE *f = fopen(xmlpath, "we");
	cr_assert_not_null(f);
	fputs(xml, f);
	fclose(f);
	snprintf(cmd, sizeof(cmd), "define --from-libvirt %s", xmlpath);
	cr_assert_eq(run_cli(cmd, out, sizeof(out)), 0, "%s", out);
	cr_assert(strstr(out, "Defined lvguest"), "%s", out);

	json_object_put(qvt_call_name(&D, "vm.start", "lvguest", &err));
	cr_assert(!err.set, "vm.start: %s", err.message);
	cr_assert_eq(qvt_wait_for_line_in_file(qvt_serial_log(&D, "lvguest"), QVT_GUEST_READY,
					       BOOT_TIMEOUT_MS), 0, "the imported guest never booted");
	cr_assert_eq(qvt_wait_for_line_in_file(qvt_serial_log(&D, "lvguest"),
					       "QVISOR-BLK-SUM " ZERO_MIB_MD5, 30000),
		     0, "the guest did not read its disk");

	/* dump -> import (dry run) gives the spec the daemon holds */
	r = qvt_call_name(&D, "vm.dump-libvirt", "lvguest", &err);
	cr_assert_not_null(r, "%s", err.message);
	_cleanup_free_ char *dumped = strdup(member(r, "xml"));
	json_object_put(r);
	cr_assert(strstr(dumped, "<domain type=\"qemu\">"), "%s", dumped);
	json_object *params = json_object_new_object();
	json_object_object_add(params, "xml", json_object_new_string(dumped));
	json_object_object_add(params, "dry_run", json_object_new_boolean(true));
	cr_assert_eq(qvt_invoke(&D, "vm.import-libvirt", params, &r, &err), 0, "%s", err.message);
	json_object *info = qvt_call_name(&D, "vm.info", "lvguest", &err), *s1, *s2;
	cr_assert_not_null(info);
	cr_assert(json_object_object_get_ex(info, "spec", &s1) &&
		  json_object_object_get_ex(r, "spec", &s2));
	cr_assert_str_eq(json_object_to_json_string(s1), json_object_to_json_string(s2),
			 "%s", dumped);
	json_object_put(r);
	json_object_put(info);

	cr_assert_eq(run_cli("dump-libvirt lvguest", out, sizeof(out)), 0, "%s", out);
	cr_assert(strstr(out, "<source file=\""), "%s", out);

	r = qvt_call_name(&D, "vm.stop", "lvguest", &err);
	cr_assert_str_eq(member(r, "how"), "powerdown");
	json_object_put(r);
}

Test(libvirt_vm, refusal_names_the_xpath_and_lossy_imports)
{
	QVT_REQUIRE_DAEMON(&D);
	struct qv_error err = {};
	json_object *r = NULL;

	_cleanup_free_ char *xml = guest_xml("lvrefused", "/nonexistent/disk.raw",
					     "    <graphics type='vnc' port='-1'/>\n");
	json_object *params = json_object_new_object();
	json_object_object_add(params, "xml", json_object_new_string(xml));
	cr_assert_lt(qvt_invoke(&D, "vm.import-libvirt", params, NULL, &err), 0);
	cr_assert_str_eq(err.reason, "unsupported");
	cr_assert(strstr(err.message, "/domain/devices/graphics: "), "%s", err.message);
	cr_assert_null(qvt_call_name(&D, "vm.info", "lvrefused", NULL));

	qv_error_clear(&err);
	params = json_object_new_object();
	json_object_object_add(params, "xml", json_object_new_string(xml));
	json_object_object_add(params, "lossy", json_object_new_boolean(true));
	cr_assert_eq(qvt_invoke(&D, "vm.import-libvirt", params, &r, &err), 0, "%s", err.message);
	cr_assert_str_eq(member(r, "name"), "lvrefused");
	json_object *w;
	cr_assert(json_object_object_get_ex(r, "warnings", &w));
	cr_assert_eq(json_object_array_length(w), 1, "%s", json_object_to_json_string(w));
	json_object_put(r);

	/* not XML at all */
	qv_error_clear(&err);
	cr_assert_lt(qvt_callf(&D, "vm.import-libvirt", NULL, &err, "{\"xml\": \"<domain\"}"), 0);
	cr_assert_str_eq(err.reason, "invalid-argument");
	cr_assert(strstr(err.message, "well-formed"), "%s", err.message);
}
