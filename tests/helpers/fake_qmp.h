/* SPDX-License-Identifier: MIT */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

/* A scriptable fake QMP server for unit tests. The script runs in its own
 * thread on one end of a socketpair; the test drives the client on the other.
 * Script helpers never abort: the first failure is recorded (fake_qmp_error)
 * and later helpers become no-ops returning NULL/-1, so the test asserts on
 * fake_qmp_join()'s result from the test thread. The server end is closed
 * when the script returns. */

typedef struct fake_qmp fake_qmp;
typedef void (*fake_qmp_script_fn)(fake_qmp *f, void *userdata);

/* Start the script; *ret_client_fd is the client end (caller owns it). */
int fake_qmp_start(fake_qmp_script_fn fn, void *userdata, fake_qmp **ret_fake,
		   int *ret_client_fd);
/* Wait for the script to finish; 0 if it recorded no failure, else -1. */
int fake_qmp_join(fake_qmp *f);
const char *fake_qmp_error(fake_qmp *f);
fake_qmp *fake_qmp_free(fake_qmp *f);

/* --- script helpers (server thread) --- */
void fake_qmp_fail(fake_qmp *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
bool fake_qmp_failed(fake_qmp *f);

/* Write all of text (len, or strlen when len == (size_t)-1). */
int fake_qmp_send(fake_qmp *f, const char *text, size_t len);
/* Two writes split at `split`; the second waits until the peer has read the
 * first (SIOCOUTQ, bounded), then pause_us more. */
int fake_qmp_send_split(fake_qmp *f, const char *text, size_t split, unsigned pause_us);
/* One byte per write, each read by the peer before the next is sent. */
int fake_qmp_send_bytewise(fake_qmp *f, const char *text, unsigned pause_us);
/* The standard QEMU 7.2.22 greeting. */
int fake_qmp_greeting(fake_qmp *f);
/* Greeting, then expect qmp_capabilities and reply {}. */
int fake_qmp_handshake(fake_qmp *f);

/* Read the next command (waits up to 10 s). If command is non-NULL, fail
 * unless "execute" equals it. Returns a new reference or NULL. */
json_object *fake_qmp_expect(fake_qmp *f, const char *command);
/* Read until the peer closes (waits up to 10 s), discarding input. */
int fake_qmp_wait_eof(fake_qmp *f);
/* fds received via SCM_RIGHTS so far, oldest first; -1 if none. Caller owns it. */
int fake_qmp_take_fd(fake_qmp *f);
size_t fake_qmp_n_fds(fake_qmp *f);

/* Format a reply to cmd: {"return": <json_text>, "id": <cmd id>}\r\n
 * (malloc'd). */
char *fake_qmp_format_reply(json_object *cmd, const char *json_text);
int fake_qmp_reply(fake_qmp *f, json_object *cmd, const char *json_text);
int fake_qmp_reply_error(fake_qmp *f, json_object *cmd, const char *class, const char *desc);
/* {"event": name, "data": <data_json or {}>, "timestamp": {...}}\r\n */
int fake_qmp_event(fake_qmp *f, const char *name, const char *data_json);
char *fake_qmp_format_event(const char *name, const char *data_json);
/* The server end (for raw writes that may fail, e.g. while the peer drops). */
int fake_qmp_fd(fake_qmp *f);
/* Close the server end now (the peer sees EOF). */
void fake_qmp_close(fake_qmp *f);
