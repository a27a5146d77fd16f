/* SPDX-License-Identifier: MIT */
#pragma once

/* QEMU guest agent client (qemu-ga over the VM's virtio-serial channel).
 *
 * The agent runs inside the guest: everything it sends is hostile input.
 * Each call opens the channel's unix socket, resynchronises with
 * guest-sync-delimited (a random id; bytes before the agent's 0xFF
 * delimiter are discarded, at most QGA_MAX_REPLY of them), sends one
 * command and reads one reply, all on the loop with a deadline. A reply
 * must be one strict JSON object of at most QGA_MAX_REPLY bytes, shaped
 * {"return": ...} or {"error": {...}}; anything else (garbage, a flood, the
 * wrong sync id) ends the call with `misbehaved` set, so the caller can cut
 * the agent off. */

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/error.h"
#include "common/loop.h"

#define QGA_MAX_REPLY (64 * 1024)
#define QGA_DEFAULT_TIMEOUT_MS 5000

typedef struct qga_call qga_call;

/* Exactly once per started call (never from inside qga_call_start).
 * result: the "return" member (borrowed, valid during the callback), NULL on
 * failure with err set: reason "timeout" (no answer in time), "unavailable"
 * (no agent listening / channel closed), "qemu-error" (the agent's own
 * error, its class and desc in the message), or "invalid-argument" with
 * misbehaved true (garbage, flood, wrong sync). The call is freed after the
 * callback returns. */
typedef void (*qga_done_fn)(json_object *result, const struct qv_error *err, bool misbehaved,
			    void *userdata);

/* Start `command` (args stolen, may be NULL) on the agent socket at path.
 * no_reply: the command does not answer on success (guest-shutdown): the
 * call succeeds once the agent has synced and the command is written.
 * timeout_ms 0 means QGA_DEFAULT_TIMEOUT_MS. */
int qga_call_start(qv_loop *loop, const char *path, const char *command, json_object *args,
		   bool no_reply, uint64_t timeout_ms, qga_done_fn fn, void *userdata,
		   qga_call **ret_call);
/* Abandon a call: no callback, everything freed. NULL is fine. */
qga_call *qga_call_cancel(qga_call *call);
