/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "daemon/vm.h"

/* A guest can make QEMU emit events at will (an ACPI _OST write, an RTC
 * change, a NIC filter change...). Per VM, QMP events other than lifecycle
 * and job events pass a token bucket (QV_EVENT_RATE per second, bursts of
 * QV_EVENT_BURST); the rest are dropped, counted, and summarised by one
 * "qemu-events-dropped" event at most every QV_EVENT_SUMMARY_MS. The events
 * table is trimmed to QV_EVENTS_MAX_ROWS rows and QV_EVENTS_MAX_AGE_MS, and
 * an event's stored data to QV_EVENT_DATA_MAX bytes (docs/qvisord.8). */

#define QV_EVENT_RATE 20
#define QV_EVENT_BURST 100
#define QV_EVENT_SUMMARY_MS 10000
#define QV_EVENTS_MAX_ROWS 20000
#define QV_EVENTS_MAX_AGE_MS (7LL * 24 * 3600 * 1000)
#define QV_EVENT_DATA_MAX 2048
#define QV_EVENTS_TRIM_EVERY 500


/* Events that always pass: QEMU's lifecycle, migration and block jobs. */
bool qv_event_is_lifecycle(const char *qmp_event);

/* Should this QMP event of vm be persisted and broadcast? Emits the
 * summary event when due. */
bool qv_event_limit_admit(struct qv_vm *vm, const char *qmp_event);

/* The same decision without taking a token, for events not yet parsed
 * (qmp_client_set_event_filter): false means the event would be dropped,
 * and it is counted as dropped. Events the daemon acts on (lifecycle,
 * BALLOON_CHANGE) always pass. */
bool qv_event_limit_peek(struct qv_vm *vm, const char *qmp_event);

/* Called for every stored event: trims the table every
 * QV_EVENTS_TRIM_EVERY appends (and on the first). */
void qv_events_note_append(struct qv_daemon *d);
