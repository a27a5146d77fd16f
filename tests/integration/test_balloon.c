/* SPDX-License-Identifier: MIT */
/* The memory balloon end to end: real qvisord, QEMU (TCG) and the test
 * guest's virtio_balloon driver. The spec's target is applied at start, then
 * vm.balloon shrinks the guest and gives the memory back; QEMU's
 * query-balloon (through vm.balloon without a target) must follow. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/json.h"
#include "helpers/guest-ctl.h"
#include "helpers/etcd.h"
#include "helpers/guest.h"
#include "helpers/http.h"
#include "helpers/qvisord.h"

#define BOOT_TIMEOUT_MS 120000
#define MIB (1024LL * 1024)
#define SLACK (8 * MIB) /* the driver works in chunks; allow a few */

static struct qvt_daemon D;
static unsigned mport;
static char listen_arg[32];

static void setup(void)
{
	mport = (unsigned)qvt_free_port();
	snprintf(listen_arg, sizeof(listen_arg), "127.0.0.1:%u", mport);
	D.extra_args[0] = "--metrics-listen";
	D.extra_args[1] = listen_arg;
	/* only VMs with a resources section are steered (loop_reclaims_...);
	 * without cgroups here the loop enforces balloons only */
	D.extra_args[2] = "--loop-mode";
	D.extra_args[3] = "enforce";
	qvt_daemon_fixture_start(&D);
}

static void teardown(void)
{
	qvt_daemon_cleanup(&D);
}

TestSuite(balloon, .init = setup, .fini = teardown);

static int64_t member(json_object *o, const char *key)
{
	json_object *v;

	return json_object_object_get_ex(o, key, &v) && v ? json_object_get_int64(v) : -1;
}

/* Poll vm.balloon (QMP query-balloon) until actual is within SLACK of want. */
static int64_t wait_actual(const char *name, int64_t want, json_object **ret_last)
{
	struct qv_error err = {};
	int64_t actual = -1;
	json_object *r = NULL;

	for (int i = 0; i < 240; i++) {
		json_object_put(r);
		cr_assert_eq(qvt_callf(&D, "vm.balloon", &r, &err, "{\"name\": \"%s\"}", name), 0,
			     "vm.balloon query: %s", err.message);
		actual = member(r, "actual");
		if (actual > 0 && llabs(actual - want) <= SLACK)
			break;
		qvt_sleep_ms(500);
	}
	if (ret_last)
		*ret_last = r;
	else
		json_object_put(r);
	return actual;
}

static int run_cli(const char *args, char *out, size_t size)
{
	return qvt_cli(&D, args, out, size);
}

Test(balloon, shrinks_and_grows_a_guest, .timeout = 400)
{
	QVT_REQUIRE_DAEMON(&D);
	struct qv_error err = {};
	json_object *r, *rt, *b, *stats;
	char out[4096];
	int64_t actual;

	cr_assert_eq(qvt_define_guest(&D, "bal", "{\"memory\": 192, \"balloon\": "
				      "{\"target\": \"160M\", \"stats_interval\": 1}}", &err), 0,
		     "%s", err.message);
	json_object_put(qvt_call_name(&D, "vm.start", "bal", &err));
	cr_assert(!err.set, "vm.start: %s", err.message);
	cr_assert_eq(qvt_wait_for_line_in_file(qvt_serial_log(&D, "bal"), QVT_GUEST_READY,
					       BOOT_TIMEOUT_MS), 0, "the guest did not boot");

	/* the spec's target (libvirt's currentMemory) was set at start */
	actual = wait_actual("bal", 160 * MIB, NULL);
	cr_assert(llabs(actual - 160 * MIB) <= SLACK, "actual %lld MiB, want ~160", actual / MIB);

	/* shrink: the guest driver inflates the balloon */
	cr_assert_eq(qvt_callf(&D, "vm.balloon", &r, &err, "{\"name\": \"bal\", \"target\": %lld}",
			       96 * MIB), 0, "%s", err.message);
	cr_assert_eq(member(r, "target"), 96 * MIB, "%s", json_object_to_json_string(r));
	json_object_put(r);
	actual = wait_actual("bal", 96 * MIB, &r);
	cr_assert(llabs(actual - 96 * MIB) <= SLACK, "actual %lld MiB, want ~96", actual / MIB);
	/* the guest reports statistics (polling every second) */
	cr_assert(json_object_object_get_ex(r, "guest_stats", &stats) &&
		  member(stats, "total_memory") > 0, "no guest statistics: %s",
		  json_object_to_json_string(r));
	json_object_put(r);
	/* vm.info shows the balloon from QEMU's BALLOON_CHANGE events */
	r = qvt_call_name(&D, "vm.info", "bal", &err);
	cr_assert_not_null(r, "%s", err.message);
	cr_assert(json_object_object_get_ex(r, "runtime", &rt) &&
		  json_object_object_get_ex(rt, "balloon", &b), "%s", json_object_to_json_string(r));
	cr_assert_eq(member(b, "target"), 96 * MIB);
	cr_assert(llabs(member(b, "actual") - 96 * MIB) <= SLACK, "%s", json_object_to_json_string(b));
	json_object_put(r);
	/* and Prometheus sees it */
	static char body[1 << 17];
	char line[128];
	qvt_http_get(mport, "/metrics", body, sizeof(body));
	snprintf(line, sizeof(line), "qvisor_vm_balloon_target_bytes{vm=\"bal\"} %lld\n", 96 * MIB);
	cr_assert(strstr(body, line), "no \"%s\" in /metrics:\n%.2000s", line, body);
	cr_assert(strstr(body, "qvisor_vm_balloon_actual_bytes{vm=\"bal\"} "), "%.2000s", body);

	/* grow back through the CLI: the driver deflates */
	cr_assert_eq(run_cli("balloon bal 192M", out, sizeof(out)), 0, "%s", out);
	cr_assert(strstr(out, "target: 192 MiB"), "%s", out);
	actual = wait_actual("bal", 192 * MIB, NULL);
	cr_assert(llabs(actual - 192 * MIB) <= SLACK, "actual %lld MiB, want ~192", actual / MIB);

	/* bad targets lose nothing */
	cr_assert_neq(qvt_callf(&D, "vm.balloon", NULL, &err, "{\"name\": \"bal\", \"target\": %lld}",
				512 * MIB), 0);
	cr_assert_str_eq(err.reason, "invalid-argument", "%s", err.message);
	qv_error_clear(&err);
	cr_assert_eq(run_cli("balloon bal lots", out, sizeof(out)), 2, "%s", out);
}

Test(balloon, a_vm_without_a_balloon_says_so)
{
	QVT_REQUIRE_DAEMON(&D);
	struct qv_error err = {};
	char out[4096];

	cr_assert_eq(qvt_define_guest(&D, "plain", NULL, &err), 0, "%s", err.message);
	cr_assert_neq(qvt_callf(&D, "vm.balloon", NULL, &err,
				"{\"name\": \"plain\", \"target\": 100000000}"), 0);
	cr_assert_str_eq(err.reason, "unsupported", "%s", err.message);
	cr_assert(strstr(err.message, "no memory balloon"), "%s", err.message);
	cr_assert_neq(run_cli("balloon plain 100M", out, sizeof(out)), 0, "%s", out);
	cr_assert(strstr(out, "no memory balloon"), "%s", out);
}

/* libvirt: <memballoon model='virtio'> and <currentMemory> below <memory>
 * import as a balloon whose target the guest reaches after start, and
 * export back the same way. */
Test(balloon, libvirt_current_memory_is_the_target, .timeout = 300)
{
	QVT_REQUIRE_DAEMON(&D);
	_cleanup_free_ char *kernel = qvt_guest_file("vmlinuz");
	_cleanup_free_ char *initrd = qvt_guest_file("initrd.img");
	struct qv_error err = {};
	char path[256], cmd[512], out[8192];
	int64_t actual;
	FILE *f;

	snprintf(path, sizeof(path), "%s/lvb.xml", D.dir);
	cr_assert_not_null(f = fopen(path, "we"));
	fprintf(f, "<domain type='qemu'><name>lvb</name><memory unit='MiB'>192</memory>"
		"<currentMemory unit='KiB'>131072</currentMemory><vcpu>1</vcpu>"
		"<os><type arch='x86_64' machine='q35'>hvm</type><kernel>%s</kernel>"
		"<initrd>%s</initrd><cmdline>console=ttyS0 panic=-1</cmdline></os>"
		"<devices><serial type='pty'><target port='0'/></serial>"
		"<memballoon model='virtio'><stats period='2'/></memballoon></devices></domain>",
		kernel, initrd);
	fclose(f);
	snprintf(cmd, sizeof(cmd), "define --from-libvirt %s", path);
	cr_assert_eq(run_cli(cmd, out, sizeof(out)), 0, "%s", out);
	json_object_put(qvt_call_name(&D, "vm.start", "lvb", &err));
	cr_assert(!err.set, "vm.start: %s", err.message);
	cr_assert_eq(qvt_wait_for_line_in_file(qvt_serial_log(&D, "lvb"), QVT_GUEST_READY,
					       BOOT_TIMEOUT_MS), 0, "the guest did not boot");
	actual = wait_actual("lvb", 128 * MIB, NULL);
	cr_assert(llabs(actual - 128 * MIB) <= SLACK, "actual %lld MiB, want ~128", actual / MIB);
	cr_assert_eq(run_cli("dump-libvirt lvb", out, sizeof(out)), 0, "%s", out);
	cr_assert(strstr(out, "<memballoon model=\"virtio\">"), "%s", out);
	cr_assert(strstr(out, "<stats period=\"2\"/>"), "%s", out);
	cr_assert(strstr(out, "<currentMemory unit=\"MiB\">128</currentMemory>"), "%s", out);
}

/* policy.show's balloon view of VM name: "target", "actual", "floor", ... */
static int64_t loop_balloon(const char *name, const char *key)
{
	struct qv_error err = {};
	json_object *r = NULL, *vms, *b;
	int64_t v = -1;

	if (qvt_callf(&D, "policy.show", &r, &err, "{\"name\": \"%s\"}", name) == 0 &&
	    json_object_object_get_ex(r, "vms", &vms) && json_object_array_length(vms) == 1 &&
	    json_object_object_get_ex(json_object_array_get_idx(vms, 0), "balloon", &b))
		v = member(b, key);
	json_object_put(r);
	return v;
}

/* The last balloon change of name in policy.show's recent list: its
 * reason (into why) and new target; -1 if none. */
static int64_t last_balloon_change(const char *name, char *why, size_t size)
{
	struct qv_error err = {};
	json_object *r = NULL, *recent, *v;
	int64_t to = -1;

	why[0] = '\0';
	if (qvt_callf(&D, "policy.show", &r, &err, "{\"name\": \"%s\"}", name) == 0 &&
	    json_object_object_get_ex(r, "recent", &recent))
		for (size_t i = 0; i < json_object_array_length(recent); i++) {
			json_object *c = json_object_array_get_idx(recent, i);
			if (!json_object_object_get_ex(c, "knob", &v) ||
			    strcmp(json_object_get_string(v), "balloon"))
				continue;
			json_object_object_get_ex(c, "to", &v);
			to = atoll(json_object_get_string(v));
			json_object_object_get_ex(c, "reason", &v);
			snprintf(why, size, "%s", json_object_get_string(v));
		}
	json_object_put(r);
	return to;
}

/* The resource loop reclaims memory from an idle guest through its balloon
 * (never below the reservation) and gives it back as soon as the guest
 * allocates: the guest is never OOM-killed. */
Test(balloon, loop_reclaims_from_an_idle_guest_and_gives_back, .timeout = 420)
{
	QVT_REQUIRE_DAEMON(&D);
	struct qv_error err = {};
	char why[256], v[64], cmd[64], sock[300];
	int64_t target = -1, avail = -1, settled = -1;

	cr_assert_eq(qvt_define_guest(&D, "idle", "{\"memory\": 256, \"balloon\": "
				      "{\"stats_interval\": 1}, \"cmdline\": \"console=ttyS0 "
				      "panic=-1 qv.ctl=1\", \"resources\": {\"memory\": "
				      "{\"reservation\": \"80M\"}}}", &err), 0, "%s", err.message);
	json_object_put(qvt_call_name(&D, "vm.start", "idle", &err));
	cr_assert(!err.set, "vm.start: %s", err.message);
	snprintf(sock, sizeof(sock), "%s/vms/idle/serial.sock", D.run_dir);
	qvt_ctl *c = qvt_ctl_open(sock, BOOT_TIMEOUT_MS);
	cr_assert_not_null(c, "the guest's control channel did not answer");

	/* idle: shrunk step by step until the target stops moving */
	for (int i = 0, same = 0; i < 240 && same < 12; i++) {
		qvt_sleep_ms(1000);
		int64_t t = loop_balloon("idle", "target");
		same = t == target && t < 200 * MIB ? same + 1 : 0;
		target = t;
	}
	cr_assert(target > 0 && target < 200 * MIB, "not reclaimed: target %lld MiB",
		  target / MIB);
	cr_assert_geq(target, 80 * MIB, "below the reservation: %lld MiB", target / MIB);
	cr_assert(last_balloon_change("idle", why, sizeof(why)) == target &&
		  strstr(why, "guest idle"), "reason: %s", why);
	cr_assert(llabs(wait_actual("idle", target, NULL) - target) <= SLACK,
		  "the guest did not give the memory");
	settled = target;
	/* the CLI shows the target and the reason */
	static char out[16384];
	cr_assert_eq(run_cli("policy show idle", out, sizeof(out)), 0, "%s", out);
	cr_assert(strstr(out, "BALLOON") && strstr(out, "balloon:") && strstr(out, "guest idle"),
		  "%s", out);
	/* the guest's own view is on the metrics endpoint */
	static char body[1 << 17];
	qvt_http_get(mport, "/metrics", body, sizeof(body));
	cr_assert(strstr(body, "qvisor_vm_guest_available_bytes{vm=\"idle\"} "), "%.3000s", body);
	/* allocate all but ~20 MiB of what the guest has left: it must get memory back */
	for (int i = 0; i < 20 && (avail = loop_balloon("idle", "guest_available")) <= 0; i++)
		qvt_sleep_ms(1000);
	cr_assert_gt(avail, 40 * MIB, "guest available %lld MiB", avail / MIB);
	snprintf(cmd, sizeof(cmd), "dirty 2 %lld", (avail - 20 * MIB) / MIB);
	cr_assert_eq(qvt_ctl_cmd(c, cmd, 60000, v, sizeof(v)), 0, "%s: %s", cmd, v);
	for (int i = 0; i < 60 && target <= settled; i++) {
		qvt_sleep_ms(1000);
		target = loop_balloon("idle", "target");
	}
	cr_log_info("balloon: reclaimed to %lld MiB (guest %lld MiB available), back to %lld MiB "
		    "after the guest allocated %lld MiB", settled / MIB, avail / MIB, target / MIB,
		    (avail - 20 * MIB) / MIB);
	cr_assert_eq(target, 256 * MIB, "not given back: %lld MiB (settled %lld MiB)",
		     target / MIB, settled / MIB);
	cr_assert(last_balloon_change("idle", why, sizeof(why)) == 256 * MIB &&
		  strstr(why, "guest memory low"), "reason: %s", why);
	cr_assert(llabs(wait_actual("idle", 256 * MIB, NULL) - 256 * MIB) <= SLACK);
	/* alive, and nothing was OOM-killed */
	cr_assert_eq(qvt_ctl_cmd(c, "ping", 30000, v, sizeof(v)), 0, "the guest stopped answering");
	cr_assert_eq(qvt_ctl_cmd(c, "undirty", 30000, v, sizeof(v)), 0);
	qvt_ctl_close(c);
	/* the console log records the guest while the test talks to it (the
	 * answer to the last ping is there), and the kernel's messages with it */
	cr_assert_eq(qvt_wait_for_line_in_file(qvt_serial_log(&D, "idle"), "OK pong", 10000), 0);
	cr_assert_neq(qvt_wait_for_line_in_file(qvt_serial_log(&D, "idle"), "Out of memory", 1),
		      0, "the guest's console shows an OOM kill");
}
