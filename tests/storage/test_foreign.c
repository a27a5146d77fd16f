/* SPDX-License-Identifier: MIT */
/* Foreign image intake checks and OVA/OVF parsing on crafted input. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "common/macro.h"
#include "storage/foreign.h"
#include "storage/ova.h"

Test(foreign, info_checks)
{
	struct qv_error err = {};
	uint64_t vs = 0;

	cr_assert_eq(qv_foreign_check_info("{\"format\":\"vmdk\",\"virtual-size\":1048576,"
		"\"format-specific\":{\"type\":\"vmdk\",\"data\":{\"extents\":[{\"filename\":\"/a.vmdk\"}]}}}",
		"/a.vmdk", QV_FOREIGN_VMDK, &vs, &err), 0, "%s", err.message);
	cr_assert_eq(vs, 1048576);
	static const char *const bad[][2] = {
		{ "{\"format\":\"vmdk\",\"virtual-size\":1,\"format-specific\":{\"data\":{\"extents\":"
		  "[{\"filename\":\"/a.vmdk\"},{\"filename\":\"/etc/shadow\"}]}}}", "extent" },
		{ "{\"format\":\"qed\",\"virtual-size\":1,\"backing-filename\":\"/etc/shadow\"}", "backing" },
		{ "{\"format\":\"raw\",\"virtual-size\":1}", "not a vmdk" },
		{ "not json", "unreadable" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct qv_error e = {};
		enum qv_foreign_format f = i == 1 ? QV_FOREIGN_QED : QV_FOREIGN_VMDK;
		cr_assert_lt(qv_foreign_check_info(bad[i][0], "/a.vmdk", f, &vs, &e), 0);
		cr_assert(strstr(e.message, bad[i][1]), "%zu: %s", i, e.message);
	}
	enum qv_foreign_format f;
	cr_assert_eq(qv_foreign_format_from_string("vhdx", &f), 0);
	cr_assert_eq(f, QV_FOREIGN_VHDX);
	cr_assert_lt(qv_foreign_format_from_string("raw", &f), 0);
}

Test(ova, manifest)
{
	struct qv_ova_file files[2] = { { .name = "a.ovf" }, { .name = "a.mf" } };
	struct qv_error err = {};

	strcpy(files[0].sha256, "00ff");
	strcpy(files[0].sha1, "11ee");
	cr_assert_eq(qv_ova_verify_manifest("SHA256(a.ovf)= 00FF\n", files, 2, "a.mf", &err), 0,
		     "%s", err.message);
	cr_assert_eq(qv_ova_verify_manifest("SHA1(a.ovf)=11ee\r\n", files, 2, "a.mf", &err), 0);
	cr_assert_lt(qv_ova_verify_manifest("SHA256(a.ovf)= 00fe\n", files, 2, "a.mf", &err), 0);
	cr_assert_lt(qv_ova_verify_manifest("MD5(a.ovf)= 00ff\n", files, 2, "a.mf", &err), 0);
	cr_assert_lt(qv_ova_verify_manifest("SHA256(b.vmdk)= 00ff\n", files, 2, "a.mf", &err), 0);
	cr_assert_lt(qv_ova_verify_manifest("\n", files, 2, "a.mf", &err), 0, "unlisted file accepted");
	cr_assert_lt(qv_ova_verify_manifest("garbage\n", files, 2, "a.mf", &err), 0);
}

Test(ova, ovf_parse)
{
	static const char xml[] =
		"<Envelope xmlns='http://schemas.dmtf.org/ovf/envelope/2' xmlns:ovf='http://schemas.dmtf.org/ovf/envelope/2' "
		"xmlns:rasd='urn:rasd'><References><File ovf:id='f1' ovf:href='d1.vmdk'/>"
		"<File ovf:id='f2' ovf:href='d2.vhdx'/></References>"
		"<DiskSection><Disk ovf:diskId='a' ovf:fileRef='f1' ovf:format='...vmdk.html#streamOptimized'/>"
		"<Disk ovf:diskId='b' ovf:fileRef='f2'/></DiskSection>"
		"<VirtualSystem ovf:id='vs1'><VirtualHardwareSection>"
		"<Item><rasd:ResourceType>4</rasd:ResourceType><rasd:AllocationUnits>byte * 2^30</rasd:AllocationUnits>"
		"<rasd:VirtualQuantity>2</rasd:VirtualQuantity></Item>"
		"<Item><rasd:ResourceType>17</rasd:ResourceType><rasd:HostResource>ovf:/disk/b</rasd:HostResource></Item>"
		"<Item><rasd:ResourceType>17</rasd:ResourceType><rasd:HostResource>ovf:/disk/a</rasd:HostResource></Item>"
		"<Item><rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>4</rasd:VirtualQuantity></Item>"
		"</VirtualHardwareSection></VirtualSystem></Envelope>";
	struct qv_ovf *o = NULL;
	struct qv_error err = {};

	cr_assert_eq(qv_ovf_parse(xml, strlen(xml), &o, &err), 0, "%s", err.message);
	cr_assert_str_eq(o->name, "vs1");
	cr_assert_eq(o->vcpus, 4);
	cr_assert_eq(o->memory_mib, 2048);
	cr_assert_eq(o->n_disks, 2);
	cr_assert_str_eq(o->disk_files[0], "d2.vhdx");
	cr_assert_str_eq(o->disk_formats[0], "vhdx");
	cr_assert_str_eq(o->disk_formats[1], "vmdk");
	qv_ovf_free(o);
	const char *dtd = "<!DOCTYPE x [<!ENTITY e SYSTEM 'file:///etc/passwd'>]><Envelope>&e;</Envelope>";
	cr_assert_lt(qv_ovf_parse(dtd, strlen(dtd), &o, &err), 0);
	cr_assert_lt(qv_ovf_parse("<Envelope/>", 11, &o, &err), 0);
}

Test(ova, extract_refuses_non_plain_members)
{
	char dir[] = "/tmp/qvt-ova-XXXXXX", cmd[512], out[64];
	struct qv_ova_file *files = NULL;
	struct qv_error err = {};
	size_t n;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(cmd, sizeof(cmd), "cd %s && echo hi >a.ovf && mkdir d && tar --format=ustar -cf ok.ova a.ovf && "
		 "tar --format=ustar -cf dir.ova d && ln -s /etc/passwd l && tar --format=ustar -cf ln.ova l", dir);
	cr_assert_eq(system(cmd), 0);
	snprintf(out, sizeof(out), "%s/d", dir);
	mkdir(out, 0700);
	snprintf(out, sizeof(out), "%s/x", dir);
	mkdir(out, 0700);
	int xfd = open(out, O_RDONLY | O_DIRECTORY);
	snprintf(cmd, sizeof(cmd), "%s/ok.ova", dir);
	cr_assert_eq(qv_ova_extract(cmd, xfd, &files, &n, &err), 0, "%s", err.message);
	cr_assert_eq(n, 1);
	cr_assert_str_eq(files[0].name, "a.ovf");
	/* sha256("hi\n") */
	cr_assert_str_eq(files[0].sha256, "98ea6e4f216f2fb4b69fff9b3a44842c38686ca685f3f55dc48c5d3fb1107be4");
	free(files);
	snprintf(cmd, sizeof(cmd), "%s/dir.ova", dir);
	cr_assert_lt(qv_ova_extract(cmd, xfd, &files, &n, &err), 0);
	snprintf(cmd, sizeof(cmd), "%s/ln.ova", dir);
	cr_assert_lt(qv_ova_extract(cmd, xfd, &files, &n, &err), 0);
	close(xfd);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
}
