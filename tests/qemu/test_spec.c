/* SPDX-License-Identifier: MIT */
/* VM spec parser: table-driven accept/reject cases, defaults, round-trip. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include "common/json.h"
#include "qemu/spec.h"

#define K "\"kernel\":\"/k/vmlinuz\""

static struct vm_spec *parse_ok(const char *text)
{
	struct qv_error err = {};
	struct vm_spec *spec = NULL;
	int r = vm_spec_from_string(text, &spec, &err);

	cr_assert_eq(r, 0, "rejected %s: %s", text, err.message);
	cr_assert_not_null(spec);
	cr_assert(!err.set);
	return spec;
}

/* Criterion may run each test in a fresh process (different ASLR layout):
 * parameters must be self-contained, hence arrays rather than pointers. */
struct reject_case {
	char json[400];
	char msg[80]; /* substring expected in the error message */
};

static struct reject_case reject_cases[] = {
	/* unknown fields at every level, with the dotted path */
	{ "{\"name\":\"a\"," K ",\"nmae\":1}", "spec.nmae: unknown field" },
	{ "{\"name\":\"a\",\"disks\":[{\"path\":\"/a\"},{\"path\":\"/b\",\"formt\":\"raw\"}]}",
	  "spec.disks[1].formt: unknown field" },
	{ "{\"name\":\"a\",\"disks\":[{\"path\":\"/a\",\"limits\":{\"rbsp\":1}}]}",
	  "spec.disks[0].limits.rbsp: unknown field" },
	{ "{\"name\":\"a\"," K ",\"nics\":[{\"bridge\":\"br0\",\"vlan\":3}]}",
	  "spec.nics[0].vlan: unknown field" },
	{ "{\"name\":\"a\"," K ",\"serial\":{\"log\":true,\"tty\":1}}", "spec.serial.tty: unknown field" },
	{ "{\"name\":\"a\"," K ",\"limits\":{\"cpu_maxx\":1}}", "spec.limits.cpu_maxx: unknown field" },
	{ "{\"name\":\"a\"," K ",\"limits\":{\"cpu_max\":{\"quota\":1}}}",
	  "spec.limits.cpu_max.quota: unknown field" },
	{ "{\"name\":\"a\"," K ",\"restart\":{\"polcy\":\"no\"}}", "spec.restart.polcy: unknown field" },
	{ "{\"name\":\"a\",\"disks\":[{\"path\":\"/a\"}],\"boot\":{\"disk\":0,\"x\":1}}",
	  "spec.boot.x: unknown field" },
	/* name */
	{ "{" K "}", "spec.name: required" },
	{ "{\"name\":\"a/b\"," K "}", "spec.name" },
	{ "{\"name\":\"-a\"," K "}", "spec.name" },
	{ "{\"name\":\"\"," K "}", "spec.name" },
	{ "{\"name\":\"a b\"," K "}", "spec.name" },
	{ "{\"name\":\"..\"," K "}", "spec.name" },
	{ "{\"name\":42," K "}", "spec.name: must be a string" },
	{ "{\"name\":\"a\\u0000b\"," K "}", "spec.name: must not contain NUL" },
	/* uuid */
	{ "{\"name\":\"a\"," K ",\"uuid\":\"1234\"}", "spec.uuid" },
	{ "{\"name\":\"a\"," K ",\"uuid\":\"0b6c1a4e-1111-4222-8333-44445555666g\"}", "spec.uuid" },
	{ "{\"name\":\"a\"," K ",\"uuid\":\"0b6c1a4e11114222-8333-4444-55556666\"}", "spec.uuid" },
	{ "{\"name\":\"a\"," K ",\"uuid\":\"00000000-0000-0000-0000-000000000000\"}", "spec.uuid" },
	/* vcpus / memory */
	{ "{\"name\":\"a\"," K ",\"vcpus\":0}", "spec.vcpus: out of range" },
	{ "{\"name\":\"a\"," K ",\"vcpus\":65}", "spec.vcpus: out of range" },
	{ "{\"name\":\"a\"," K ",\"vcpus\":\"2\"}", "spec.vcpus: must be an integer" },
	{ "{\"name\":\"a\"," K ",\"vcpus\":1.5}", "spec.vcpus: must be an integer" },
	{ "{\"name\":\"a\"," K ",\"memory\":8}", "spec.memory: out of range" },
	{ "{\"name\":\"a\"," K ",\"memory\":-1}", "spec.memory: out of range" },
	{ "{\"name\":\"a\"," K ",\"memory\":\"2T\"}", "spec.memory: out of range" },
	{ "{\"name\":\"a\"," K ",\"memory\":\"1.5G\"}", "spec.memory" },
	{ "{\"name\":\"a\"," K ",\"memory\":\"512X\"}", "spec.memory" },
	{ "{\"name\":\"a\"," K ",\"memory\":\"1000K\"}", "whole number of MiB" },
	{ "{\"name\":\"a\"," K ",\"memory\":\"99999999999999999999G\"}", "spec.memory" },
	{ "{\"name\":\"a\"," K ",\"memory\":true}", "spec.memory" },
	/* machine / accel */
	{ "{\"name\":\"a\"," K ",\"machine\":\"virt\"}", "spec.machine" },
	{ "{\"name\":\"a\"," K ",\"machine\":\"q35,accel=kvm\"}", "spec.machine" },
	{ "{\"name\":\"a\"," K ",\"machine\":\"pc-q35-\"}", "spec.machine" },
	{ "{\"name\":\"a\"," K ",\"accel\":\"hvf\"}", "spec.accel" },
	/* boot sources and paths */
	{ "{\"name\":\"a\"}", "nothing to boot" },
	{ "{\"name\":\"a\",\"disks\":[]}", "nothing to boot" },
	{ "{\"name\":\"a\",\"kernel\":\"vmlinuz\"}", "spec.kernel: must be an absolute path" },
	{ "{\"name\":\"a\",\"kernel\":\"/boot/../etc/shadow\"}", "\"..\"" },
	{ "{\"name\":\"a\",\"kernel\":\"/boot/..\"}", "\"..\"" },
	{ "{\"name\":\"a\"," K ",\"initrd\":\"initrd.img\"}", "spec.initrd: must be an absolute" },
	{ "{\"name\":\"a\",\"kernel\":\"/k\\n\"}", "control characters" },
	{ "{\"name\":\"a\"," K ",\"cmdline\":\"console=ttyS0\\ninit=/bin/sh\"}",
	  "spec.cmdline: must not contain newlines" },
	{ "{\"name\":\"a\",\"disks\":[{\"path\":\"/a\"}],\"initrd\":\"/i\"}", "requires spec.kernel" },
	{ "{\"name\":\"a\",\"disks\":[{\"path\":\"/a\"}],\"cmdline\":\"x\"}", "requires spec.kernel" },
	{ "{\"name\":\"a\",\"disks\":[{\"path\":\"/a\"}],\"boot\":{\"disk\":1}}", "spec.boot.disk" },
	{ "{\"name\":\"a\",\"disks\":[{\"path\":\"/a\"}],\"boot\":{}}", "spec.boot.disk: required" },
	{ "{\"name\":\"a\"," K ",\"disks\":[{\"path\":\"/a\"}],\"boot\":{\"disk\":0}}",
	  "cannot be combined" },
	/* disks */
	{ "{\"name\":\"a\",\"disks\":[{\"format\":\"raw\"}]}", "spec.disks[0].path: required" },
	{ "{\"name\":\"a\",\"disks\":[{\"path\":\"img.raw\"}]}", "spec.disks[0].path: must be an absolute" },
	{ "{\"name\":\"a\",\"disks\":[{\"path\":\"/a\",\"format\":\"vmdk\"}]}", "spec.disks[0].format" },
	{ "{\"name\":\"a\",\"disks\":[{\"path\":\"/a\",\"readonly\":\"yes\"}]}",
	  "spec.disks[0].readonly: must be true or false" },
	{ "{\"name\":\"a\",\"disks\":[{\"path\":\"/a\",\"limits\":{\"weight\":0}}]}",
	  "spec.disks[0].limits.weight: out of range" },
	{ "{\"name\":\"a\",\"disks\":[{\"path\":\"/a\",\"limits\":{\"rbps\":\"fast\"}}]}",
	  "spec.disks[0].limits.rbps" },
	{ "{\"name\":\"a\",\"disks\":[{\"path\":\"/a\"},{\"path\":\"/a\"}]}", "same image" },
	{ "{\"name\":\"a\",\"disks\":{}}", "spec.disks: must be an array" },
	{ "{\"name\":\"a\",\"disks\":[1]}", "spec.disks[0]: must be an object" },
	/* nics */
	{ "{\"name\":\"a\"," K ",\"nics\":[{}]}", "spec.nics[0]: exactly one" },
	{ "{\"name\":\"a\"," K ",\"nics\":[{\"network\":\"n\",\"bridge\":\"br0\"}]}",
	  "spec.nics[0]: exactly one" },
	{ "{\"name\":\"a\"," K ",\"nics\":[{\"bridge\":\"averyveryverylongbr\"}]}", "spec.nics[0].bridge" },
	{ "{\"name\":\"a\"," K ",\"nics\":[{\"bridge\":\"br/0\"}]}", "spec.nics[0].bridge" },
	{ "{\"name\":\"a\"," K ",\"nics\":[{\"network\":\"..\"}]}", "spec.nics[0].network" },
	{ "{\"name\":\"a\"," K ",\"nics\":[{\"bridge\":\"br0\",\"mac\":\"52:54:00:12:34\"}]}",
	  "spec.nics[0].mac" },
	{ "{\"name\":\"a\"," K ",\"nics\":[{\"bridge\":\"br0\",\"mac\":\"01:00:5e:00:00:01\"}]}",
	  "spec.nics[0].mac" },
	{ "{\"name\":\"a\"," K ",\"nics\":[{\"bridge\":\"br0\",\"mac\":\"00:00:00:00:00:00\"}]}",
	  "spec.nics[0].mac" },
	{ "{\"name\":\"a\"," K ",\"nics\":[{\"bridge\":\"br0\",\"mac\":\"52-54-00-12-34-56\"}]}",
	  "spec.nics[0].mac" },
	{ "{\"name\":\"a\"," K ",\"nics\":[{\"bridge\":\"br0\",\"mac\":\"52:54:00:12:34:56\"},"
	  "{\"bridge\":\"br1\",\"mac\":\"52:54:00:12:34:56\"}]}", "spec.nics[1].mac: duplicate" },
	{ "{\"name\":\"a\"," K ",\"nics\":[{\"bridge\":\"br0\",\"mac\":\"52:54:00:AB:cd:EF\"},"
	  "{\"bridge\":\"br1\",\"mac\":\"52:54:00:ab:CD:ef\"}]}", "spec.nics[1].mac: duplicate" },
	{ "{\"name\":\"a\"," K ",\"nics\":[{\"bridge\":\"br0\",\"model\":\"e1000\"}]}",
	  "spec.nics[0].model" },
	/* serial, limits, restart */
	{ "{\"name\":\"a\"," K ",\"serial\":{\"log\":1}}", "spec.serial.log: must be true or false" },
	{ "{\"name\":\"a\"," K ",\"limits\":{\"cpu_max\":\"20\"}}", "spec.limits.cpu_max" },
	{ "{\"name\":\"a\"," K ",\"limits\":{\"cpu_max\":\"0%\"}}", "spec.limits.cpu_max" },
	{ "{\"name\":\"a\"," K ",\"limits\":{\"cpu_max\":\"-5%\"}}", "spec.limits.cpu_max" },
	{ "{\"name\":\"a\"," K ",\"limits\":{\"cpu_max\":{\"period_us\":100000}}}",
	  "spec.limits.cpu_max.quota_us: required" },
	{ "{\"name\":\"a\"," K ",\"limits\":{\"cpu_max\":{\"quota_us\":10}}}",
	  "spec.limits.cpu_max.quota_us: out of range" },
	{ "{\"name\":\"a\"," K ",\"limits\":{\"cpu_weight\":0}}", "spec.limits.cpu_weight: out of range" },
	{ "{\"name\":\"a\"," K ",\"limits\":{\"cpuset_cpus\":\"0-\"}}", "spec.limits.cpuset_cpus" },
	{ "{\"name\":\"a\"," K ",\"limits\":{\"cpuset_cpus\":\"3-1\"}}", "spec.limits.cpuset_cpus" },
	{ "{\"name\":\"a\"," K ",\"limits\":{\"cpuset_mems\":\"a\"}}", "spec.limits.cpuset_mems" },
	{ "{\"name\":\"a\"," K ",\"limits\":{\"memory_max\":\"1K\"}}", "spec.limits.memory_max: out of range" },
	{ "{\"name\":\"a\"," K ",\"limits\":{\"memory_max\":\"100M\"}}", "below the guest memory" },
	{ "{\"name\":\"a\"," K ",\"limits\":{\"memory_high\":-5}}", "spec.limits.memory_high" },
	{ "{\"name\":\"a\"," K ",\"limits\":{\"memory_swap_max\":\"lots\"}}", "spec.limits.memory_swap_max" },
	{ "{\"name\":\"a\"," K ",\"limits\":{\"pids_max\":0}}", "spec.limits.pids_max: out of range" },
	{ "{\"name\":\"a\"," K ",\"restart\":{\"policy\":\"always\"}}", "spec.restart.policy" },
	{ "{\"name\":\"a\"," K ",\"restart\":{\"window_s\":0}}", "spec.restart.window_s: out of range" },
	{ "{\"name\":\"a\"," K ",\"limits\":[]}", "spec.limits: must be an object" },
	/* document level */
	{ "", "invalid JSON" },
	{ "[]", "spec: must be a JSON object" },
	{ "{\"name\":\"a\"," K "} {}", "spec: invalid JSON at offset 35" },
	{ "{\"name\":\"a\"," K ",}", "invalid JSON" },
	{ "{\"name\":\"a\"," K, "invalid JSON" },
};

ParameterizedTestParameters(spec, reject)
{
	return cr_make_param_array(struct reject_case, reject_cases, ARRAY_SIZE(reject_cases));
}

ParameterizedTest(struct reject_case *c, spec, reject)
{
	struct qv_error err = {};
	struct vm_spec *spec = NULL;
	int r = vm_spec_from_string(c->json, &spec, &err);

	cr_assert_lt(r, 0, "accepted: %s", c->json);
	cr_assert_null(spec);
	cr_assert(err.set);
	cr_assert_str_eq(err.reason, "invalid-argument", "%s", err.reason);
	cr_assert(strstr(err.message, c->msg), "for %s\nexpected \"%s\" in \"%s\"", c->json, c->msg,
		  err.message);
}

Test(spec, long_name_refused_clearly)
{
	char name[201], text[512];
	struct qv_error err = {};
	struct vm_spec *spec = NULL;

	memset(name, 'a', 200);
	name[200] = '\0';
	snprintf(text, sizeof(text), "{\"name\":\"%s\"," K "}", name);
	cr_assert_eq(vm_spec_from_string(text, &spec, &err), -EINVAL);
	cr_assert(strstr(err.message, "spec.name: too long (200 characters, at most 63)"), "%s",
		  err.message);
	/* 63 is the limit, inclusive */
	name[63] = '\0';
	snprintf(text, sizeof(text), "{\"name\":\"%s\"," K "}", name);
	spec = parse_ok(text);
	cr_assert_eq(strlen(spec->name), 63);
	vm_spec_free(spec);
}

Test(spec, slash_in_name_message)
{
	struct qv_error err = {};
	struct vm_spec *spec = NULL;

	cr_assert_lt(vm_spec_from_string("{\"name\":\"../etc\"," K "}", &spec, &err), 0);
	cr_assert(strstr(err.message, "not a valid name"), "%s", err.message);
	cr_assert(!vm_name_valid("a/b"));
	cr_assert(vm_name_valid("web-01.prod_x"));
}

Test(spec, defaults)
{
	struct vm_spec *spec = parse_ok("{\"name\":\"vm1\"," K "}");

	cr_assert_str_eq(spec->name, "vm1");
	cr_assert_eq(strlen(spec->uuid), 36);
	cr_assert_eq(spec->uuid[14], '4', "uuid v4: %s", spec->uuid);
	for (const char *p = spec->uuid; *p; p++)
		cr_assert(!(*p >= 'A' && *p <= 'Z'), "uppercase in %s", spec->uuid);
	cr_assert_eq(spec->vcpus, 1);
	cr_assert_eq(spec->memory_mib, 256);
	cr_assert_str_eq(spec->machine, "q35");
	cr_assert_eq(spec->accel, VM_ACCEL_AUTO);
	cr_assert_eq(spec->boot_disk, -1);
	cr_assert(spec->serial_log);
	cr_assert(!spec->has_limits);
	cr_assert_eq(spec->limits.memory_swap_max, -1);
	cr_assert_eq(spec->restart.policy, VM_RESTART_NO);
	cr_assert_eq(spec->restart.max_restarts, 5);
	cr_assert_eq(spec->restart.window_s, 300);
	cr_assert_eq(spec->restart.backoff_ms, 1000);
	vm_spec_free(spec);
}

Test(spec, generated_uuids_differ)
{
	struct vm_spec *a = parse_ok("{\"name\":\"vm1\"," K "}");
	struct vm_spec *b = parse_ok("{\"name\":\"vm1\"," K "}");

	cr_assert_str_neq(a->uuid, b->uuid);
	vm_spec_free(a);
	vm_spec_free(b);
}

struct mem_case {
	char value[32];
	uint64_t mib;
};

static struct mem_case mem_cases[] = {
	{ "512", 512 },       { "\"512M\"", 512 },   { "\"512MiB\"", 512 }, { "\"2G\"", 2048 },
	{ "\"2g\"", 2048 },   { "\"1T\"", 1048576 }, { "\"16M\"", 16 },     { "\"1024\"", 1024 },
	{ "\"65536K\"", 64 }, { "\"1GB\"", 1024 },   { "16", 16 },          { "1048576", 1048576 },
};

ParameterizedTestParameters(spec, memory)
{
	return cr_make_param_array(struct mem_case, mem_cases, ARRAY_SIZE(mem_cases));
}

ParameterizedTest(struct mem_case *c, spec, memory)
{
	char text[256];

	snprintf(text, sizeof(text), "{\"name\":\"m\"," K ",\"memory\":%s}", c->value);
	struct vm_spec *spec = parse_ok(text);
	cr_assert_eq(spec->memory_mib, c->mib, "%s -> %llu", c->value,
		     (unsigned long long)spec->memory_mib);
	vm_spec_free(spec);
}

Test(spec, full_spec_fields)
{
	struct vm_spec *spec = parse_ok(
		"{\"name\":\"web1\",\"uuid\":\"0B6C1A4E-1111-4222-8333-444455556666\","
		"\"vcpus\":4,\"memory\":\"1G\",\"machine\":\"pc-q35-7.2\",\"accel\":\"tcg\","
		"\"disks\":[{\"path\":\"/var/lib/qvisor/a.qcow2\",\"format\":\"qcow2\"},"
		"{\"path\":\"/srv/data,1.raw\",\"readonly\":true,\"limits\":{\"rbps\":\"10M\","
		"\"wbps\":1048576,\"riops\":100,\"wiops\":50,\"weight\":200}}],"
		"\"boot\":{\"disk\":0},"
		"\"nics\":[{\"bridge\":\"br0\",\"mac\":\"52:54:00:AA:BB:CC\"},{\"network\":\"default\"}],"
		"\"serial\":{\"log\":false},"
		"\"limits\":{\"cpu_max\":\"150%\",\"cpu_weight\":50,\"cpuset_cpus\":\"0-1\","
		"\"cpuset_mems\":\"0\",\"memory_max\":\"2G\",\"memory_high\":1610612736,"
		"\"memory_swap_max\":0,\"pids_max\":256},"
		"\"restart\":{\"policy\":\"on-failure\",\"max_restarts\":3,\"window_s\":60,"
		"\"backoff_ms\":500}}");

	cr_assert_str_eq(spec->uuid, "0b6c1a4e-1111-4222-8333-444455556666");
	cr_assert_eq(spec->vcpus, 4);
	cr_assert_eq(spec->memory_mib, 1024);
	cr_assert_str_eq(spec->machine, "pc-q35-7.2");
	cr_assert_eq(spec->accel, VM_ACCEL_TCG);
	cr_assert_eq(spec->n_disks, 2);
	cr_assert_eq(spec->disks[0].format, VM_DISK_QCOW2);
	cr_assert(!spec->disks[0].readonly);
	cr_assert(spec->disks[1].readonly);
	cr_assert_eq(spec->disks[1].io_rbps, 10 << 20);
	cr_assert_eq(spec->disks[1].io_wbps, 1048576);
	cr_assert_eq(spec->disks[1].io_riops, 100);
	cr_assert_eq(spec->disks[1].io_wiops, 50);
	cr_assert_eq(spec->disks[1].io_weight, 200);
	cr_assert_eq(spec->boot_disk, 0);
	cr_assert_eq(spec->n_nics, 2);
	cr_assert_str_eq(spec->nics[0].bridge, "br0");
	cr_assert_null(spec->nics[0].network);
	cr_assert_str_eq(spec->nics[0].mac, "52:54:00:aa:bb:cc");
	cr_assert_str_eq(spec->nics[1].network, "default");
	cr_assert_str_eq(spec->nics[1].model, "virtio");
	char mac[18];
	vm_mac_from_uuid(spec->uuid, 1, mac);
	cr_assert_str_eq(spec->nics[1].mac, mac);
	cr_assert(!spec->serial_log);
	cr_assert(spec->has_limits);
	cr_assert_eq(spec->limits.cpu_max_quota_us, 150000);
	cr_assert_eq(spec->limits.cpu_max_period_us, 100000);
	cr_assert_eq(spec->limits.cpu_weight, 50);
	cr_assert_str_eq(spec->limits.cpuset_cpus, "0-1");
	cr_assert_str_eq(spec->limits.cpuset_mems, "0");
	cr_assert_eq(spec->limits.memory_max, 2ULL << 30);
	cr_assert_eq(spec->limits.memory_high, 1610612736ULL);
	cr_assert_eq(spec->limits.memory_swap_max, 0);
	cr_assert_eq(spec->limits.pids_max, 256);
	cr_assert_eq(spec->restart.policy, VM_RESTART_ON_FAILURE);
	cr_assert_eq(spec->restart.max_restarts, 3);
	cr_assert_eq(spec->restart.window_s, 60);
	cr_assert_eq(spec->restart.backoff_ms, 500);
	vm_spec_free(spec);
}

Test(spec, disk_boots_by_default)
{
	struct vm_spec *spec = parse_ok("{\"name\":\"d\",\"disks\":[{\"path\":\"/a.raw\"}]}");

	cr_assert_eq(spec->boot_disk, 0);
	cr_assert_null(spec->kernel);
	vm_spec_free(spec);
}

Test(spec, cpu_max_forms)
{
	struct vm_spec *s = parse_ok("{\"name\":\"c\"," K ",\"limits\":{\"cpu_max\":{\"quota_us\":"
				     "50000,\"period_us\":200000}}}");
	cr_assert_eq(s->limits.cpu_max_quota_us, 50000);
	cr_assert_eq(s->limits.cpu_max_period_us, 200000);
	vm_spec_free(s);
	s = parse_ok("{\"name\":\"c\"," K ",\"limits\":{\"cpu_max\":{\"quota_us\":20000}}}");
	cr_assert_eq(s->limits.cpu_max_period_us, 100000);
	vm_spec_free(s);
	s = parse_ok("{\"name\":\"c\"," K ",\"limits\":{\"cpu_max\":\"max\"}}");
	cr_assert_eq(s->limits.cpu_max_quota_us, 0);
	cr_assert(!s->has_limits);
	vm_spec_free(s);
}

Test(spec, generated_macs_are_stable_unicast_and_unique)
{
	char a[18], b[18];
	const char *uuid = "0b6c1a4e-1111-4222-8333-444455556666";

	vm_mac_from_uuid(uuid, 0, a);
	vm_mac_from_uuid(uuid, 0, b);
	cr_assert_str_eq(a, b);
	cr_assert_eq(strncmp(a, "52:54:00:", 9), 0, "%s", a);
	vm_mac_from_uuid(uuid, 1, b);
	cr_assert_str_neq(a, b);

	struct vm_spec *s = parse_ok("{\"name\":\"n\"," K ",\"uuid\":\"0b6c1a4e-1111-4222-8333-"
				     "444455556666\",\"nics\":[{\"bridge\":\"a\"},{\"bridge\":\"b\"},"
				     "{\"bridge\":\"c\"},{\"bridge\":\"d\"}]}");
	for (size_t i = 0; i < s->n_nics; i++)
		for (size_t j = 0; j < i; j++)
			cr_assert_str_neq(s->nics[i].mac, s->nics[j].mac);
	cr_assert_str_eq(s->nics[0].mac, a);
	vm_spec_free(s);
}

Test(spec, explicit_mac_colliding_with_generated_one)
{
	char mac0[18], text[512];
	const char *uuid = "0b6c1a4e-1111-4222-8333-444455556666";

	vm_mac_from_uuid(uuid, 0, mac0);
	/* nic 1 explicitly takes the MAC nic 0 would have been given */
	snprintf(text, sizeof(text),
		 "{\"name\":\"n\"," K ",\"uuid\":\"%s\",\"nics\":[{\"bridge\":\"a\"},"
		 "{\"bridge\":\"b\",\"mac\":\"%s\"}]}", uuid, mac0);
	struct vm_spec *s = parse_ok(text);
	cr_assert_str_eq(s->nics[1].mac, mac0);
	cr_assert_str_neq(s->nics[0].mac, mac0);
	vm_spec_free(s);
}

static void assert_round_trip(const char *text)
{
	struct vm_spec *a = parse_ok(text), *b = NULL, *c;
	struct qv_error err = {};
	_cleanup_json_ json_object *ja = vm_spec_to_json(a);
	const char *sa = json_object_to_json_string_ext(ja, JSON_C_TO_STRING_PLAIN);

	cr_assert_eq(vm_spec_from_json(ja, &b, &err), 0, "%s: %s", sa, err.message);
	_cleanup_json_ json_object *jb = vm_spec_to_json(b);
	cr_assert_str_eq(sa, json_object_to_json_string_ext(jb, JSON_C_TO_STRING_PLAIN));
	c = vm_spec_dup(b);
	cr_assert_not_null(c);
	_cleanup_json_ json_object *jc = vm_spec_to_json(c);
	cr_assert_str_eq(sa, json_object_to_json_string_ext(jc, JSON_C_TO_STRING_PLAIN));
	cr_assert_eq(a->has_limits, c->has_limits);
	cr_assert_eq(a->boot_disk, c->boot_disk);
	cr_assert_eq(a->limits.memory_swap_max, c->limits.memory_swap_max);
	vm_spec_free(a);
	vm_spec_free(b);
	vm_spec_free(c);
}

Test(spec, round_trip_minimal)
{
	assert_round_trip("{\"name\":\"vm1\"," K "}");
	assert_round_trip("{\"name\":\"vm1\",\"disks\":[{\"path\":\"/a\"}]}");
}

Test(spec, round_trip_full)
{
	assert_round_trip(
		"{\"name\":\"web1\",\"vcpus\":2,\"memory\":\"1G\",\"accel\":\"kvm\",\"machine\":\"pc\","
		"\"kernel\":\"/k\",\"initrd\":\"/i\",\"cmdline\":\"console=ttyS0 quiet\","
		"\"disks\":[{\"path\":\"/x.qcow2\",\"format\":\"qcow2\",\"readonly\":true,"
		"\"limits\":{\"rbps\":\"1M\",\"wiops\":7,\"weight\":3}}],"
		"\"nics\":[{\"network\":\"lan\"},{\"bridge\":\"br0\",\"mac\":\"02:00:00:00:00:01\"}],"
		"\"serial\":{\"log\":false},\"limits\":{\"cpu_max\":\"20%\",\"memory_max\":\"2G\","
		"\"memory_swap_max\":0,\"cpuset_cpus\":\"0,1\",\"pids_max\":100,\"cpu_weight\":9,"
		"\"memory_high\":\"1500M\",\"cpuset_mems\":\"0\"},"
		"\"restart\":{\"policy\":\"on-failure\",\"backoff_ms\":0}}");
}

Test(spec, canonical_json_has_defaults)
{
	struct vm_spec *s = parse_ok("{\"name\":\"vm1\",\"uuid\":\"0b6c1a4e-1111-4222-8333-"
				     "444455556666\"," K "}");
	_cleanup_json_ json_object *j = vm_spec_to_json(s);
	const char *txt = json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN);

	cr_assert_str_eq(txt,
			 "{\"name\":\"vm1\",\"uuid\":\"0b6c1a4e-1111-4222-8333-444455556666\","
			 "\"vcpus\":1,\"memory\":256,\"machine\":\"q35\",\"accel\":\"auto\","
			 "\"kernel\":\"\\/k\\/vmlinuz\",\"disks\":[],\"nics\":[],\"serial\":{\"log\":true},"
			 "\"limits\":{},\"restart\":{\"policy\":\"no\",\"max_restarts\":5,"
			 "\"window_s\":300,\"backoff_ms\":1000}}");
	vm_spec_free(s);
}

Test(spec, nulls_mean_default)
{
	struct vm_spec *s = parse_ok("{\"name\":\"vm1\"," K ",\"vcpus\":null,\"limits\":null}");
	cr_assert_eq(s->vcpus, 1);
	vm_spec_free(s);
}

Test(spec, enum_strings)
{
	cr_assert_str_eq(vm_accel_to_string(VM_ACCEL_TCG), "tcg");
	cr_assert_eq(vm_accel_from_string("kvm"), VM_ACCEL_KVM);
	cr_assert_eq(vm_accel_from_string("KVM"), -EINVAL);
	cr_assert_eq(vm_disk_format_from_string("qcow2"), VM_DISK_QCOW2);
	cr_assert_str_eq(vm_restart_policy_to_string(VM_RESTART_ON_FAILURE), "on-failure");
	cr_assert_null(vm_accel_to_string((enum vm_accel)42));
}

Test(spec, free_accepts_null)
{
	cr_assert_null(vm_spec_free(NULL));
	cr_assert_null(vm_spec_dup(NULL));
	cr_assert_null(vm_spec_to_json(NULL));
}

Test(spec, oversized_document)
{
	size_t n = 2 * 1024 * 1024;
	char *big = malloc(n + 1);
	struct qv_error err = {};
	struct vm_spec *s = NULL;

	memset(big, ' ', n);
	big[n] = '\0';
	cr_assert_lt(vm_spec_from_string(big, &s, &err), 0);
	cr_assert(strstr(err.message, "larger than"), "%s", err.message);
	free(big);
}

Test(spec, deep_nesting_rejected_without_crash)
{
	char text[4096];
	size_t n = 0;

	n += (size_t)snprintf(text, sizeof(text), "{\"name\":\"a\"," K ",\"x\":");
	for (int i = 0; i < 1000; i++)
		text[n++] = '[';
	text[n] = '\0';
	struct qv_error err = {};
	struct vm_spec *s = NULL;
	cr_assert_lt(vm_spec_from_string(text, &s, &err), 0);
	cr_assert(err.set);
}

Test(spec, trailing_whitespace_accepted)
{
	struct vm_spec *s = parse_ok("  {\"name\":\"a\"," K "}\n\t \n");
	cr_assert_str_eq(s->name, "a");
	vm_spec_free(s);
}

/* spec.ha (docs/cluster.md "HA restart"): a bool, listed only when true. */
Test(spec, ha_flag)
{
	struct qv_error err = {};
	struct vm_spec *bad = NULL;
	_cleanup_(vm_spec_freep) struct vm_spec *off = parse_ok("{\"name\":\"vm1\"," K "}");
	_cleanup_(vm_spec_freep) struct vm_spec *on = parse_ok("{\"name\":\"vm1\"," K ",\"ha\":true}");
	_cleanup_json_ json_object *j_off = vm_spec_to_json(off), *j_on = vm_spec_to_json(on);
	json_object *v;

	cr_assert(!off->ha);
	cr_assert(on->ha);
	cr_assert(!json_object_object_get_ex(j_off, "ha", NULL));
	cr_assert(json_object_object_get_ex(j_on, "ha", &v) && json_object_get_boolean(v));
	assert_round_trip("{\"name\":\"vm1\"," K ",\"ha\":true}");
	cr_assert_lt(vm_spec_from_string("{\"name\":\"vm1\"," K ",\"ha\":\"yes\"}", &bad, &err), 0);
	cr_assert(strstr(err.message, "ha"), "%s", err.message);
}
