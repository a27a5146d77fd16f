/* SPDX-License-Identifier: MIT */
/* Driver for scripts/bench/spawn.sh (not part of the build).
 *   spawn_driver argv RUN_DIR KERNEL INITRD   print the QEMU argv, NUL-separated
 *   spawn_driver run  RUN_DIR KERNEL INITRD   time qvisor's spawn path: from
 *       qemu_instance_start() to QMP ready and query-status "running";
 *       prints milliseconds, then SIGKILLs QEMU. */
#include <signal.h>
#include <time.h>

#include "common/loop.h"
#include "common/macro.h"
#include "qemu/instance.h"

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int main(int argc, char **argv)
{
	struct qv_error err = { 0 };
	struct vm_spec *spec = NULL;
	char text[4096];

	if (argc != 5)
		return fprintf(stderr, "usage: %s argv|run RUN_DIR KERNEL INITRD\n", argv[0]), 2;
	snprintf(text, sizeof(text),
		 "{\"name\": \"bench\", \"vcpus\": 1, \"memory\": 256, \"accel\": \"tcg\","
		 " \"kernel\": \"%s\", \"initrd\": \"%s\", \"cmdline\": \"console=ttyS0\"}",
		 argv[3], argv[4]);
	if (vm_spec_from_string(text, &spec, &err) < 0)
		return fprintf(stderr, "spec: %s\n", err.message), 1;
	struct qemu_argv_opts ao = { .run_dir = argv[2], .accel = VM_ACCEL_TCG };

	if (streq(argv[1], "argv")) {
		char **v = NULL;
		if (qemu_argv_build(spec, &ao, &v, &err) < 0)
			return fprintf(stderr, "argv: %s\n", err.message), 1;
		for (char **p = v; *p; p++)
			fwrite(*p, 1, strlen(*p) + 1, stdout);
		strv_free(v);
		vm_spec_free(spec);
		return 0;
	}

	qv_loop *loop = NULL;
	qemu_instance *vm = NULL;
	char *status = NULL;
	if (qv_loop_new(&loop) < 0)
		return 1;
	double t0 = now_ms();
	if (qemu_instance_start(loop, spec, &ao, NULL, &vm, &err) < 0)
		return fprintf(stderr, "start: %s\n", err.message), 1;
	if (qemu_instance_query_status(vm, &status, &err) < 0 || !streq(status, "running"))
		return fprintf(stderr, "status: %s\n", status ? status : err.message), 1;
	double t1 = now_ms();
	printf("%.2f\n", t1 - t0);
	qemu_proc_signal(qemu_instance_proc(vm), SIGKILL);
	qemu_proc_wait(qemu_instance_proc(vm), 5000, NULL);
	free(status);
	qemu_instance_free(vm);
	qv_loop_free(loop);
	vm_spec_free(spec);
	return 0;
}
