/* SPDX-License-Identifier: MIT */
/* A guest-side QMP event storm: writes the ACPI CPU hotplug register block
 * that reports _OST status, so QEMU emits one ACPI_DEVICE_OST event per
 * write (hw/acpi/cpu.c, docs/specs/acpi_cpu_hotplug.rst). For qvisor's
 * event rate-limit test (docs/test-guest.md).
 *   ostflood [SECONDS] [IOBASE]   default 60 s, 0x0cd8 (q35; pc: 0xaf00) */
#include <stdio.h>
#include <stdlib.h>
#include <sys/io.h>
#include <time.h>

int main(int argc, char **argv)
{
	long secs = argc > 1 ? atol(argv[1]) : 60;
	unsigned base = argc > 2 ? (unsigned)strtoul(argv[2], NULL, 0) : 0x0cd8;
	unsigned long n = 0;
	time_t end;

	if (ioperm(base, 12, 1) < 0) {
		perror("ostflood: ioperm");
		return 1;
	}
	/* Writing 0 at offset 0 of the legacy block switches QEMU to the modern
	 * interface (at the same base); in modern mode it selects CPU 0. */
	outl(0, base);
	outl(0, base);        /* selector: CPU 0 */
	outb(2, base + 5);    /* command: _OST status */
	printf("QVISOR-OSTFLOOD-START\n");
	fflush(stdout);
	end = time(NULL) + secs;
	while (time(NULL) < end) {
		for (int i = 0; i < 256; i++)
			outl(0x80, base + 8); /* each write: one ACPI_DEVICE_OST */
		n += 256;
	}
	printf("QVISOR-OSTFLOOD-DONE %lu\n", n);
	return 0;
}
