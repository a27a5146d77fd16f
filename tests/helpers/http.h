/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>
#include <sys/types.h>

/* A minimal HTTP/1.0 GET from 127.0.0.1:port (busybox in the lab VM has no
 * curl): the body goes to buf (NUL-terminated, "" on error); returns the
 * status code, 0 when there was no answer. */
int qvt_http_get(unsigned port, const char *path, char *buf, size_t size);
/* The same from inside the network namespace of process nspid (a daemon of
 * tests/helpers/twohosts.h listens on that namespace's loopback). */
int qvt_http_get_netns(pid_t nspid, unsigned port, const char *path, char *buf, size_t size);
