/* SPDX-License-Identifier: MIT */
/* Foreign disks through the real qvisord and the real qemu-img: a VMDK made
 * here imports and its content checksum equals the original's; an OVA (tar
 * with an OVF, a manifest and a streamOptimized VMDK) imports, its manifest
 * is verified and a spec is drafted; a tampered manifest, a multi-file VMDK
 * and a member named ../x are refused and leave nothing in the pool. */
#include <criterion/criterion.h>
#include <stdarg.h>

#include "common/json.h"
#include "helpers/qvisord.h"

static struct qvt_daemon D;

static void setup(void)
{
	qvt_daemon_fixture_start(&D);
}

static void teardown(void)
{
	qvt_daemon_cleanup(&D);
}

TestSuite(foreign, .init = setup, .fini = teardown);

#define REQUIRE()                                                          \
	do {                                                               \
		if (D.pid <= 0)                                            \
			cr_skip_test("qvisord binary not built (QV_BUILD_DIR)"); \
	} while (0)

static void sh(const char *fmt, ...) _printf_(1, 2);
static void sh(const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	cr_assert_eq(system(cmd), 0, "failed: %s", cmd);
}

/* md5 of the guest-visible content of an image (qemu-img convert to raw). */
static void content_md5(const char *img, const char *fmt, char out[33])
{
	char cmd[1024];

	snprintf(cmd, sizeof(cmd), "qemu-img convert -f %s -O raw %s %s/chk.raw && md5sum %s/chk.raw",
		 fmt, img, D.dir, D.dir);
	FILE *p = popen(cmd, "r");
	cr_assert_not_null(p);
	cr_assert_eq(fscanf(p, "%32s", out), 1);
	cr_assert_eq(pclose(p), 0);
}

static const char *member(json_object *o, const char *key)
{
	json_object *v;

	return o && json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : "";
}

Test(foreign, vmdk_imports_with_the_same_content)
{
	REQUIRE();
	struct qv_error err = {};
	char want[33], got[33];
	json_object *r = NULL;

	sh("head -c 3145728 /dev/urandom >%s/orig.raw && truncate -s 8M %s/orig.raw && "
	   "qemu-img convert -f raw -O vmdk %s/orig.raw %s/d.vmdk", D.dir, D.dir, D.dir, D.dir);
	char orig[256], vmdk[256];
	snprintf(orig, sizeof(orig), "%s/orig.raw", D.dir);
	snprintf(vmdk, sizeof(vmdk), "%s/d.vmdk", D.dir);
	content_md5(orig, "raw", want);
	cr_assert_eq(qvt_callf(&D, "image.import-foreign", &r, &err,
			       "{\"path\": \"%s\", \"name\": \"fromvmdk\", \"format\": \"vmdk\"}", vmdk),
		     0, "%s", err.message);
	cr_assert_str_eq(member(r, "format"), "qcow2");
	content_md5(member(r, "path"), "qcow2", got);
	cr_assert_str_eq(got, want, "imported content differs");
	json_object_put(r);

	/* the other foreign formats, into raw this time */
	static const char *const fmts[] = { "vhdx", "vdi", "qed" };
	for (size_t i = 0; i < 3; i++) {
		sh("qemu-img convert -f raw -O %s %s %s/d.%s", fmts[i], orig, D.dir, fmts[i]);
		qv_error_clear(&err);
		cr_assert_eq(qvt_callf(&D, "image.import-foreign", &r, &err,
				       "{\"path\": \"%s/d.%s\", \"name\": \"from%s\", \"format\": \"%s\", "
				       "\"target\": \"raw\"}", D.dir, fmts[i], fmts[i], fmts[i]),
			     0, "%s: %s", fmts[i], err.message);
		content_md5(member(r, "path"), "raw", got);
		cr_assert_str_eq(got, want, "%s: imported content differs", fmts[i]);
		json_object_put(r);
	}

	/* a VMDK whose descriptor names other files is refused */
	sh("qemu-img create -q -f vmdk -o subformat=twoGbMaxExtentSparse %s/split.vmdk 8M", D.dir);
	int before = qvt_pool_entries(&D);
	qv_error_clear(&err);
	cr_assert_lt(qvt_callf(&D, "image.import-foreign", NULL, &err,
			       "{\"path\": \"%s/split.vmdk\", \"name\": \"split\", \"format\": \"vmdk\"}",
			       D.dir), 0);
	cr_assert(strstr(err.message, "extent"), "%s", err.message);
	/* and a file that is not what --format says */
	qv_error_clear(&err);
	cr_assert_lt(qvt_callf(&D, "image.import-foreign", NULL, &err,
			       "{\"path\": \"%s\", \"name\": \"liar\", \"format\": \"vhdx\"}", orig), 0);
	cr_assert_eq(qvt_pool_entries(&D), before, "a refused import left files in the pool");
}

static void make_ova(const char *tamper)
{
	sh("cd %s && head -c 2097152 /dev/urandom >disk.raw && "
	   "qemu-img convert -f raw -O vmdk -o subformat=streamOptimized disk.raw vm-disk1.vmdk && "
	   "cat >vm.ovf <<'EOF'\n"
	   "<?xml version='1.0' encoding='UTF-8'?>\n"
	   "<Envelope xmlns='http://schemas.dmtf.org/ovf/envelope/1' "
	   "xmlns:ovf='http://schemas.dmtf.org/ovf/envelope/1' "
	   "xmlns:rasd='http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData'>\n"
	   " <References><File ovf:id='file1' ovf:href='vm-disk1.vmdk'/></References>\n"
	   " <DiskSection><Info>disks</Info><Disk ovf:diskId='vmdisk1' ovf:fileRef='file1' ovf:capacity='2097152' "
	   "ovf:format='http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized'/></DiskSection>\n"
	   " <NetworkSection><Info>nets</Info><Network ovf:name='VM Network'/></NetworkSection>\n"
	   " <VirtualSystem ovf:id='appliance'><Info>a VM</Info><Name>appliance</Name>\n"
	   "  <VirtualHardwareSection><Info>hw</Info>\n"
	   "   <Item><rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>2</rasd:VirtualQuantity></Item>\n"
	   "   <Item><rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits><rasd:InstanceID>2</rasd:InstanceID><rasd:ResourceType>4</rasd:ResourceType><rasd:VirtualQuantity>512</rasd:VirtualQuantity></Item>\n"
	   "   <Item><rasd:Connection>VM Network</rasd:Connection><rasd:InstanceID>3</rasd:InstanceID><rasd:ResourceSubType>VmxNet3</rasd:ResourceSubType><rasd:ResourceType>10</rasd:ResourceType></Item>\n"
	   "   <Item><rasd:HostResource>ovf:/disk/vmdisk1</rasd:HostResource><rasd:InstanceID>4</rasd:InstanceID><rasd:ResourceType>17</rasd:ResourceType></Item>\n"
	   "  </VirtualHardwareSection>\n </VirtualSystem>\n</Envelope>\n"
	   "EOF\n"
	   "for f in vm.ovf vm-disk1.vmdk; do echo \"SHA256($f)= $(sha256sum $f | cut -d' ' -f1)\"; done >vm.mf && "
	   "%s tar --format=ustar -cf vm.ova vm.ovf vm.mf vm-disk1.vmdk",
	   D.dir, tamper ? tamper : "true;");
}

Test(foreign, ova_imports_verifies_its_manifest_and_drafts_a_spec)
{
	REQUIRE();
	struct qv_error err = {};
	char want[33], got[33], path[256];
	json_object *r = NULL, *images, *spec;

	make_ova(NULL);
	snprintf(path, sizeof(path), "%s/disk.raw", D.dir);
	content_md5(path, "raw", want);
	cr_assert_eq(qvt_callf(&D, "image.import-ova", &r, &err,
			       "{\"path\": \"%s/vm.ova\", \"name\": \"appl\"}", D.dir), 0, "%s", err.message);
	cr_assert_str_eq(member(r, "manifest_verified"), "true");
	cr_assert(json_object_object_get_ex(r, "images", &images) &&
		  json_object_array_length(images) == 1);
	content_md5(member(json_object_array_get_idx(images, 0), "path"), "qcow2", got);
	cr_assert_str_eq(got, want, "imported OVA disk content differs");
	cr_assert(json_object_object_get_ex(r, "spec", &spec));
	cr_assert_str_eq(member(spec, "vcpus"), "2");
	cr_assert_str_eq(member(spec, "memory"), "512");
	cr_assert(strstr(json_object_to_json_string(spec), "\"network\": \"VM-Network\"") ||
		  strstr(json_object_to_json_string(spec), "\"network\":\"VM-Network\""),
		  "%s", json_object_to_json_string(spec));
	cr_assert_str_eq(member(r, "spec_valid"), "true", "%s", member(r, "spec_error"));
	json_object_put(r);

	int before = qvt_pool_entries(&D);
	/* tampered disk: the manifest no longer matches */
	make_ova("printf x >>vm-disk1.vmdk;");
	qv_error_clear(&err);
	cr_assert_lt(qvt_callf(&D, "image.import-ova", NULL, &err,
			       "{\"path\": \"%s/vm.ova\", \"name\": \"appl2\"}", D.dir), 0);
	cr_assert(strstr(err.message, "does not match the manifest"), "%s", err.message);
	/* a member that climbs out of the extraction directory */
	sh("cd %s && mkdir -p sub && cp vm.ovf sub/ && tar --format=ustar -P -cf evil.ova sub/../vm.ovf", D.dir);
	qv_error_clear(&err);
	cr_assert_lt(qvt_callf(&D, "image.import-ova", NULL, &err,
			       "{\"path\": \"%s/evil.ova\", \"name\": \"appl3\"}", D.dir), 0);
	cr_assert(strstr(err.message, "not a plain file name"), "%s", err.message);
	cr_assert_eq(qvt_pool_entries(&D), before, "a refused OVA left files in the pool");
}
