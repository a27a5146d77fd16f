/* SPDX-License-Identifier: MIT */
/* libvirt domain XML import/export: mapping, refusals with XPaths, lossy
 * mode, hostile documents, export -> import round trip. */
#include <criterion/criterion.h>

#include "common/json.h"
#include "qemu/libvirt.h"

#define DOM_HEAD "<domain type='qemu'><name>g1</name>" \
	"<uuid>c7a5fdbd-edaf-9455-926a-d65c16db1809</uuid>" \
	"<memory unit='KiB'>219100</memory><currentMemory unit='KiB'>219100</currentMemory>" \
	"<vcpu placement='static'>2</vcpu>" \
	"<os><type arch='x86_64' machine='q35'>hvm</type><kernel>/g/vmlinuz</kernel>" \
	"<initrd>/g/initrd.img</initrd><cmdline>console=ttyS0 panic=-1</cmdline></os>"
#define DOM_TAIL "</domain>"

static struct lv_import *import(const char *xml, bool lossy)
{
	struct lv_import *imp = NULL;
	struct qv_error err = {};

	cr_assert_eq(lv_import_xml(xml, strlen(xml), lossy, &imp, &err), 0, "%s", err.message);
	return imp;
}

static const char *get(json_object *o, const char *path)
{
	static char buf[256];
	char p[128], *save = NULL;

	snprintf(p, sizeof(p), "%s", path);
	for (char *k = strtok_r(p, ".", &save); k; k = strtok_r(NULL, ".", &save)) {
		if (json_object_is_type(o, json_type_array))
			o = json_object_array_get_idx(o, atoi(k));
		else if (!json_object_object_get_ex(o, k, &o))
			return NULL;
		if (!o)
			return NULL;
	}
	snprintf(buf, sizeof(buf), "%s", json_object_get_string(o));
	return buf;
}

static bool has_problem(struct lv_import *imp, const char *xpath, const char *why_part)
{
	for (size_t i = 0; i < json_object_array_length(imp->problems); i++) {
		json_object *p = json_object_array_get_idx(imp->problems, i);
		if (streq(get(p, "xpath"), xpath) && strstr(get(p, "why"), why_part))
			return true;
	}
	return false;
}

Test(libvirt, minimal_kernel_boot)
{
	struct lv_import *imp = import(DOM_HEAD "<devices><emulator>/usr/bin/qemu-system-x86_64"
				       "</emulator></devices><on_poweroff>destroy</on_poweroff>"
				       "<on_crash>restart</on_crash>" DOM_TAIL, false);

	cr_assert_not_null(imp->spec, "%s", json_object_to_json_string(imp->problems));
	cr_assert_str_eq(get(imp->spec, "name"), "g1");
	cr_assert_str_eq(get(imp->spec, "uuid"), "c7a5fdbd-edaf-9455-926a-d65c16db1809");
	cr_assert_str_eq(get(imp->spec, "memory"), "214"); /* 219100 KiB rounded up */
	cr_assert_str_eq(get(imp->spec, "vcpus"), "2");
	cr_assert_str_eq(get(imp->spec, "accel"), "tcg");
	cr_assert_str_eq(get(imp->spec, "machine"), "q35");
	cr_assert_str_eq(get(imp->spec, "kernel"), "/g/vmlinuz");
	cr_assert_str_eq(get(imp->spec, "cmdline"), "console=ttyS0 panic=-1");
	cr_assert_str_eq(get(imp->spec, "restart.policy"), "on-failure");
	cr_assert_eq(json_object_array_length(imp->problems), 0);
	lv_import_free(imp);
}

Test(libvirt, disks_nics_console_balloon)
{
	struct lv_import *imp = import(
		"<domain type='kvm'><name>g2</name><memory unit='GiB'>1</memory>"
		"<os><type arch='x86_64'>hvm</type><boot dev='hd'/></os>"
		"<devices>"
		"<disk type='file' device='disk'><driver name='qemu' type='raw'/>"
		"<source file='/img/data.raw'/><target dev='vda' bus='virtio'/><readonly/>"
		"<serial>WD-123_a.b</serial>"
		"<iotune><read_bytes_sec>1048576</read_bytes_sec><write_iops_sec>50</write_iops_sec></iotune></disk>"
		"<disk type='file'><driver name='qemu' type='qcow2'/><source file='/img/root.qcow2'/>"
		"<target dev='vdb'/><boot order='1'/></disk>"
		"<interface type='bridge'><mac address='52:54:00:AA:bb:01'/><source bridge='br0'/>"
		"<model type='virtio'/><target dev='vnet3'/></interface>"
		"<interface type='network'><source network='default'/><model type='virtio'/></interface>"
		"<serial type='pty'><target type='isa-serial' port='0'><model name='isa-serial'/></target></serial>"
		"<console type='pty'><target type='serial' port='0'/></console>"
		"<controller type='pci' index='0' model='pci-root'/><controller type='usb' model='none'/>"
		"<input type='mouse' bus='ps2'/><memballoon model='none'/>"
		"</devices>"
		"<cputune><shares>512</shares><period>100000</period><quota>50000</quota></cputune>"
		"<memtune><hard_limit unit='MiB'>2048</hard_limit><soft_limit unit='MiB'>1536</soft_limit>"
		"<swap_hard_limit unit='MiB'>2560</swap_hard_limit></memtune>"
		"<blkiotune><weight>300</weight></blkiotune>"
		"</domain>", false);

	cr_assert_not_null(imp->spec, "%s", json_object_to_json_string(imp->problems));
	cr_assert_str_eq(get(imp->spec, "memory"), "1024");
	cr_assert_str_eq(get(imp->spec, "accel"), "kvm");
	cr_assert_str_eq(get(imp->spec, "machine"), "pc"); /* libvirt's x86 default */
	cr_assert_str_eq(get(imp->spec, "boot.disk"), "1");
	cr_assert_str_eq(get(imp->spec, "disks.0.readonly"), "true");
	cr_assert_str_eq(get(imp->spec, "disks.0.serial"), "WD-123_a.b");
	cr_assert_str_eq(get(imp->spec, "disks.0.limits.rbps"), "1048576");
	cr_assert_str_eq(get(imp->spec, "disks.0.limits.wiops"), "50");
	cr_assert_str_eq(get(imp->spec, "disks.1.format"), "qcow2");
	cr_assert_str_eq(get(imp->spec, "disks.1.limits.weight"), "300");
	cr_assert_str_eq(get(imp->spec, "nics.0.bridge"), "br0");
	cr_assert_str_eq(get(imp->spec, "nics.0.mac"), "52:54:00:aa:bb:01");
	cr_assert_str_eq(get(imp->spec, "nics.1.network"), "default");
	cr_assert_str_eq(get(imp->spec, "limits.cpu_weight"), "512");
	/* libvirt's quota is per vCPU: one vCPU here */
	cr_assert_str_eq(get(imp->spec, "limits.cpu_max.quota_us"), "50000");
	cr_assert_str_eq(get(imp->spec, "limits.memory_max"), "2147483648");
	cr_assert_str_eq(get(imp->spec, "limits.memory_high"), "1610612736");
	cr_assert_str_eq(get(imp->spec, "limits.memory_swap_max"), "536870912");
	lv_import_free(imp);
}

Test(libvirt, guest_agent_channel)
{
	struct lv_import *imp = import(DOM_HEAD "<devices>"
		"<controller type='virtio-serial' index='0'/>"
		"<channel type='unix'><source mode='bind' path='/var/lib/libvirt/qemu/ga.sock'/>"
		"<target type='virtio' name='org.qemu.guest_agent.0' state='connected'/>"
		"<alias name='channel0'/><address type='virtio-serial' controller='0' bus='0' port='1'/>"
		"</channel></devices>" DOM_TAIL, false);

	cr_assert_not_null(imp->spec, "%s", json_object_to_json_string(imp->problems));
	cr_assert_str_eq(get(imp->spec, "guest_agent"), "true");
	lv_import_free(imp);
	imp = import(DOM_HEAD "<devices><controller type='virtio-serial' index='0'/>"
		     "<channel type='spicevmc'><target type='virtio' name='com.redhat.spice.0'/>"
		     "</channel></devices>" DOM_TAIL, false);
	cr_assert_null(imp->spec);
	cr_assert(has_problem(imp, "/domain/devices/channel", "guest agent"));
	cr_assert(has_problem(imp, "/domain/devices/controller", "virtio-serial"));
	lv_import_free(imp);
}

Test(libvirt, refusals_name_their_xpath)
{
	const char *xml = DOM_HEAD "<devices>"
		"<disk type='block' device='disk'><source dev='/dev/sda'/><target dev='vda'/></disk>"
		"<graphics type='vnc'/><memballoon model='xen'/>"
		"<interface type='bridge'><source bridge='br0'/><model type='e1000'/>"
		"<address type='pci' domain='0' bus='0' slot='3' function='0'/></interface>"
		"</devices><clock offset='utc' adjustment='reset'/>" DOM_TAIL;
	struct lv_import *imp = import(xml, false);
	struct qv_error err = {};

	cr_assert_null(imp->spec);
	cr_assert(has_problem(imp, "/domain/devices/disk", "disk type 'block'"));
	cr_assert(has_problem(imp, "/domain/devices/graphics", "headless"));
	cr_assert(has_problem(imp, "/domain/devices/memballoon", "balloon"));
	cr_assert(has_problem(imp, "/domain/devices/interface/model", "virtio-net"));
	cr_assert(has_problem(imp, "/domain/devices/interface/address", "fixed guest address"));
	cr_assert(has_problem(imp, "/domain/clock/@adjustment", "not supported"));
	cr_assert_eq(json_object_array_length(imp->problems), 6,
		     "%s", json_object_to_json_string(imp->problems));
	cr_assert_eq(lv_import_refusal(imp, &err), -EOPNOTSUPP);
	cr_assert_str_eq(err.reason, "unsupported");
	cr_assert(strstr(err.message, "/domain/devices/disk: "), "%s", err.message);
	lv_import_free(imp);

	/* lossy: the same problems become warnings and a spec comes out */
	imp = import(xml, true);
	cr_assert_not_null(imp->spec);
	cr_assert_eq(json_object_array_length(imp->problems), 6);
	cr_assert_str_eq(get(imp->spec, "nics.0.model"), "virtio");
	cr_assert_str_eq(get(imp->spec, "disks"), "[ ]");
	lv_import_free(imp);
}

Test(libvirt, nothing_is_dropped_silently)
{
	/* unknown attribute, unknown element, stray text, foreign metadata,
	 * duplicate element */
	struct lv_import *imp = import(
		"<domain type='qemu' xmlns:q='http://libvirt.org/schemas/domain/qemu/1.0'>"
		"<name>g1</name><name>g2</name><memory>262144</memory><vcpu foo='1'>1</vcpu>"
		"<os><type>hvm</type><kernel>/k</kernel>stray</os><blah/>"
		"<metadata><app:x xmlns:app='urn:app'/></metadata>"
		"<q:commandline><q:arg value='-foo'/></q:commandline></domain>", true);

	cr_assert_not_null(imp->spec, "%s", json_object_to_json_string(imp->problems));
	cr_assert(has_problem(imp, "/domain/name[2]", "<name>"));
	cr_assert(has_problem(imp, "/domain/vcpu/@foo", "attribute 'foo'"));
	cr_assert(has_problem(imp, "/domain/os", "unexpected text"));
	cr_assert(has_problem(imp, "/domain/blah", "<blah> is not supported"));
	cr_assert(has_problem(imp, "/domain/metadata/app:x", "metadata"));
	cr_assert(has_problem(imp, "/domain/q:commandline", "raw QEMU arguments"));
	lv_import_free(imp);
}

Test(libvirt, fatal_even_when_lossy)
{
	struct lv_import *imp = import(
		"<domain type='kvm'><name>a</name><memory>262144</memory>"
		"<os><type arch='aarch64' machine='virt'>hvm</type><kernel>/k</kernel></os></domain>",
		true);

	cr_assert_null(imp->spec);
	cr_assert(has_problem(imp, "/domain/os/type/@arch", "x86_64 guests only"));
	lv_import_free(imp);
	imp = import("<domain type='xen'><name>a</name></domain>", true);
	cr_assert_null(imp->spec);
	lv_import_free(imp);
	/* something to boot is the validator's call, reported at /domain */
	imp = import("<domain type='kvm'><name>a</name><memory>262144</memory>"
		     "<os><type>hvm</type></os></domain>", true);
	cr_assert_null(imp->spec);
	cr_assert(has_problem(imp, "/domain", "nothing to boot"));
	lv_import_free(imp);
}

Test(libvirt, hostile_documents)
{
	static const char *bad[] = {
		"",
		"<domain",
		"<?xml version='1.0'?><!DOCTYPE d [<!ENTITY x 'y'>]><domain>&x;</domain>",
		"<!DOCTYPE domain SYSTEM 'file:///etc/passwd'><domain/>",
		"<domain></domainx>",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct lv_import *imp = NULL;
		struct qv_error err = {};
		cr_assert_lt(lv_import_xml(bad[i], strlen(bad[i]), true, &imp, &err), 0, "%s", bad[i]);
		cr_assert_null(imp);
		cr_assert(err.set);
	}
	struct lv_import *imp = import("<notdomain/>", true);
	cr_assert_null(imp->spec);
	cr_assert(has_problem(imp, "/notdomain", "<domain>"));
	lv_import_free(imp);
}

static void round_trip(const char *spec_text)
{
	struct qv_error err = {};
	_cleanup_(vm_spec_freep) struct vm_spec *spec = NULL;
	_cleanup_free_ char *xml = NULL;

	cr_assert_eq(vm_spec_from_string(spec_text, &spec, &err), 0, "%s", err.message);
	cr_assert_eq(lv_export_xml(spec, &xml, &err), 0, "%s", err.message);
	struct lv_import *imp = import(xml, false);
	cr_assert_not_null(imp->spec, "%s\n%s", xml, json_object_to_json_string(imp->problems));
	_cleanup_json_ json_object *want = vm_spec_to_json(spec);
	cr_assert_str_eq(json_object_to_json_string(imp->spec), json_object_to_json_string(want),
			 "%s", xml);
	cr_assert_eq(json_object_array_length(imp->problems), 0);
	lv_import_free(imp);
}

Test(libvirt, export_import_round_trip)
{
	round_trip("{\"name\":\"a\",\"kernel\":\"/k\"}");
	round_trip("{\"name\":\"web1\",\"uuid\":\"0b6c1a4e-1111-4222-8333-444455556666\","
		   "\"vcpus\":2,\"memory\":\"1G\",\"machine\":\"pc\",\"accel\":\"tcg\","
		   "\"kernel\":\"/k\",\"initrd\":\"/i\",\"cmdline\":\"console=ttyS0 a<b&c\","
		   "\"disks\":[{\"path\":\"/x.qcow2\",\"format\":\"qcow2\",\"readonly\":true,\"serial\":\"S1\","
		   "\"limits\":{\"rbps\":\"1M\",\"wiops\":7,\"weight\":3}},{\"path\":\"/y\"}],"
		   "\"nics\":[{\"network\":\"lan\"},{\"bridge\":\"br0\",\"mac\":\"02:00:00:00:00:01\"}],"
		   "\"serial\":{\"log\":false},\"limits\":{\"cpu_max\":\"20%\",\"cpu_weight\":50,"
		   "\"cpuset_cpus\":\"0-1\",\"cpuset_mems\":\"0\",\"memory_max\":\"2G\","
		   "\"memory_high\":\"1G\",\"memory_swap_max\":0,\"pids_max\":100},"
		   "\"restart\":{\"policy\":\"on-failure\",\"backoff_ms\":0},"
		   "\"cloud_init\":{\"user_data\":\"#cloud-config\\n  x: <&>\\n\","
		   "\"network_config\":\"version: 2\\n\"}}");
	round_trip("{\"name\":\"c\",\"kernel\":\"/k\",\"guest_agent\":true}");
	round_trip("{\"name\":\"d\",\"kernel\":\"/k\",\"memory\":192,"
		   "\"balloon\":{\"target\":\"96M\",\"stats_interval\":7}}");
	round_trip("{\"name\":\"e\",\"kernel\":\"/k\",\"balloon\":{\"stats_interval\":0}}");
	round_trip("{\"name\":\"b\",\"accel\":\"kvm\",\"disks\":[{\"path\":\"/a\"},{\"path\":\"/b\"}],"
		   "\"boot\":{\"disk\":1},\"limits\":{\"memory_swap_max\":\"64M\"}}");
}

/* <memballoon model='virtio'> is spec.balloon, <currentMemory> below
 * <memory> its target; model none has no balloon to set a target with. */
Test(libvirt, memballoon_and_current_memory)
{
#define MEM(cur) "<domain type='qemu'><name>b</name><memory unit='MiB'>192</memory>" \
	"<currentMemory unit='MiB'>" cur "</currentMemory>" \
	"<os><type arch='x86_64' machine='q35'>hvm</type><kernel>/k</kernel></os>"
	struct lv_import *imp;

	imp = import(MEM("128") "<devices><memballoon model='virtio'><stats period='10'/>"
		     "</memballoon></devices>" DOM_TAIL, false);
	cr_assert_not_null(imp->spec, "%s", json_object_to_json_string(imp->problems));
	cr_assert_str_eq(get(imp->spec, "balloon.target"), "134217728");
	cr_assert_str_eq(get(imp->spec, "balloon.stats_interval"), "10");
	lv_import_free(imp);

	/* absent <memballoon>: libvirt's implicit virtio balloon carries the target */
	imp = import(MEM("128") DOM_TAIL, false);
	cr_assert_not_null(imp->spec, "%s", json_object_to_json_string(imp->problems));
	cr_assert_str_eq(get(imp->spec, "balloon.target"), "134217728");
	lv_import_free(imp);

	imp = import(MEM("192") "<devices><memballoon model='virtio'/></devices>" DOM_TAIL, false);
	cr_assert_not_null(imp->spec);
	cr_assert_null(get(imp->spec, "balloon.target"));
	cr_assert_str_eq(get(imp->spec, "balloon.stats_interval"), "0");
	lv_import_free(imp);

	imp = import(MEM("192") "<devices><memballoon model='none'/></devices>" DOM_TAIL, false);
	cr_assert_not_null(imp->spec);
	cr_assert_null(get(imp->spec, "balloon"));
	lv_import_free(imp);

	imp = import(MEM("128") "<devices><memballoon model='none'/></devices>" DOM_TAIL, false);
	cr_assert_null(imp->spec);
	cr_assert(has_problem(imp, "/domain/currentMemory", "model is 'none'"),
		  "%s", json_object_to_json_string(imp->problems));
	lv_import_free(imp);

	imp = import(MEM("128") "<devices><memballoon model='virtio' autodeflate='on'/></devices>"
		     DOM_TAIL, false);
	cr_assert_null(imp->spec);
	cr_assert(has_problem(imp, "/domain/devices/memballoon/@autodeflate", ""),
		  "%s", json_object_to_json_string(imp->problems));
	lv_import_free(imp);
#undef MEM
}
