/* SPDX-License-Identifier: MIT */
#pragma once

#include "common/error.h"
#include "qemu/spec.h"

/* VM spec -> QEMU argv (an array; no shell is ever involved).
 *
 * Files in the per-VM run_dir (created by the caller):
 *   qmp.sock     QMP control socket (server, QEMU listens)
 *   serial.sock  serial console socket (server, QEMU listens)
 *   serial.log   serial output copy when spec->serial_log (appended)
 *   qemu.log     QEMU's stderr: the spawner redirects it there
 *
 * Stable QEMU object names (QMP users: storage mirror, hotplug, stats):
 *   disk i:  file node "disk<i>-file", format node "disk<i>",
 *            throttle node "disk<i>-throttle" + object "tg-disk<i>" when the
 *            disk has rbps/wbps/riops/wiops limits, device "disk<i>-dev".
 *            The device's drive is the throttle node if present, else "disk<i>".
 *   nic i:   netdev "net<i>", device "net<i>-dev".
 *   q35:     every boot-time device sits on its own pcie-root-port
 *            ("rp-disk<i>", "rp-net<i>") so it can be unplugged, plus
 *            QEMU_HOTPLUG_PORTS free ports "hp0".."hp3" for device_add bus=hpN.
 *   pc:      devices on pci.0 (ACPI hotplug, no ports needed).
 *   chardevs "qmp", "serial0".
 *   guest agent: device "vser0" (virtio-serial-pci, port "rp-vser0" on q35),
 *            chardev "qga0" on qga.sock (QEMU listens), port
 *            "org.qemu.guest_agent.0". */

#define QEMU_QMP_SOCK "qmp.sock"
#define QEMU_SERIAL_SOCK "serial.sock"
#define QEMU_SERIAL_LOG "serial.log"
#define QEMU_LOG "qemu.log"
#define QEMU_QGA_SOCK "qga.sock" /* guest agent channel (spec->guest_agent) */
#define QEMU_HOTPLUG_PORTS 4
#define QEMU_BALLOON_ID "balloon0"   /* -device id of spec->balloon */
#define QEMU_BALLOON_QOM "/machine/peripheral/" QEMU_BALLOON_ID
#define QEMU_DEFAULT_BINARY "qemu-system-x86_64"

struct qemu_argv_opts {
	const char *qemu_binary;  /* NULL -> QEMU_DEFAULT_BINARY (looked up in PATH by exec) */
	const char *run_dir;      /* absolute per-VM dir; must fit sun_path with "/serial.sock" */
	enum vm_accel accel;      /* resolved: VM_ACCEL_KVM or VM_ACCEL_TCG, never AUTO */
	/* TAP fds already open in the daemon, one per spec NIC in order; passed as
	 * -netdev tap,fd=N,vhost=off. The spawner keeps them open under the same
	 * numbers in the QEMU child (O_CLOEXEC is cleared there). A NIC without fd (index >= n_nic_fds or fd < 0) is an
	 * error unless nic_user_fallback, which gives it -netdev user instead. */
	const int *nic_fds;
	size_t n_nic_fds;
	bool nic_user_fallback;
	const char *incoming;     /* NULL, or e.g. "defer" -> -incoming defer */
	bool start_paused;        /* -S */
	/* The cloud-init seed image the daemon wrote for spec->cloud_init
	 * (required then): attached read-only as raw node "cidata", device
	 * "cidata-dev" after the NICs. */
	const char *cidata_path;
	bool sandbox;             /* -sandbox on,obsolete=deny,elevateprivileges=deny,
				   *          spawn=deny,resourcecontrol=deny */
	/* Daemon-made fds (> 0), so QEMU needs no path access (qemu/runfiles.h).
	 * Unset (0): the path forms under run_dir are used. */
	int qmp_fd;               /* listening socket: -chardev socket,fd=N,server=on */
	int serial_fd;            /* listening socket for the serial console */
	int serial_log_fd;        /* serial copy: -add-fd + logfile=/dev/fdset/N */
	int agent_fd;             /* listening socket for the guest agent channel */
	int cidata_fd;            /* the cloud-init seed (O_RDONLY), instead of cidata_path */
	/* One entry per spec disk, or NULL for filename=path. */
	const struct qemu_disk_fds *disk_fds;
	/* Sealed memfd with the per-start master key (qemu/secret.h); required
	 * (> 2) when a disk has key_data: -object secret,id=qv-master,
	 * format=raw,file=/proc/self/fd/N. */
	int secret_master_fd;
};

/* A disk opened by the daemon: -add-fd fd=N,set=S and filename=/dev/fdset/S.
 * Format nodes always get "backing": the daemon-opened chain, else null, so
 * QEMU never opens a file named inside an image. */
#define QEMU_MAX_BACKING 8
struct qemu_backing_fd {
	int fd;                   /* O_RDONLY */
	enum vm_disk_format format;
};
struct qemu_disk_fds {
	int fd;                   /* O_RDWR, or O_RDONLY for a read-only disk */
	const struct qemu_backing_fd *backing; /* nearest first */
	size_t n_backing;         /* <= QEMU_MAX_BACKING */
	/* LUKS qcow2 (encrypt.format=luks): the passphrase encrypted with the
	 * master key (qemu_secret_encrypt), base64; NULL when not encrypted.
	 * Object "disk<i>-secret", keyid qv-master. */
	const char *key_data, *key_iv;
};

/* Build a NULL-terminated argv (argv[0] is the binary). Free with strv_free()
 * (common/macro.h). Validates opts (run_dir length, accel, NIC fds). */
int qemu_argv_build(const struct vm_spec *spec, const struct qemu_argv_opts *opts,
		    char ***ret_argv, struct qv_error *errp);

/* Every fd opts hands to QEMU (NIC, socket, log and disk fds), for
 * qemu_proc_opts.keep_fds. *ret_fds is malloc'ed (NULL when none). */
int qemu_argv_collect_fds(const struct vm_spec *spec, const struct qemu_argv_opts *opts,
			  int **ret_fds, size_t *ret_n);

/* "<run_dir>/<file>", or NULL on ENOMEM. */
char *qemu_run_path(const char *run_dir, const char *file);

/* For logs only: argv joined with spaces, arguments with unusual characters
 * single-quoted. Never pass the result to a shell. NULL on ENOMEM. */
char *qemu_argv_to_string(char *const *argv);
