/* SPDX-License-Identifier: MIT */
#pragma once

#include "common/error.h"

/* systemd socket activation, the sd_listen_fds(3) protocol without
 * libsystemd: when $LISTEN_PID is our pid and $LISTEN_FDS is 1, fd 3 is a
 * socket systemd (qvisord.socket) listens on for us.
 *
 * Returns 1 with *ret_fd (close-on-exec, non-blocking) when that fd is a
 * listening AF_UNIX stream socket bound to socket_path; 0 when we were not
 * socket-activated; a negative errno with errp when the passed socket is
 * not one we can serve (another path, not listening, several fds). The
 * LISTEN_* variables are removed in every case, so that children (QEMU,
 * dnsmasq) never see them. */
int qv_activation_listen_fd(const char *socket_path, int *ret_fd, struct qv_error *errp);

/* sd_notify(3) without libsystemd: remember $NOTIFY_SOCKET (and remove it
 * from the environment, so children do not see it); call first thing. */
void qv_notify_init(void);
/* Send state ("READY=1", "STOPPING=1") to the service manager, if any.
 * Failures are ignored (logged at debug). */
void qv_notify(const char *state);
