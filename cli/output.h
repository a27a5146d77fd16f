/* SPDX-License-Identifier: MIT */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* Output helpers shared by the verbs. Human output goes to stdout as aligned
 * tables or "key: value" lines; --json output is the result, pretty-printed. */

typedef struct out_table out_table;

out_table *out_table_new(size_t n_cols, const char *const *headers);
out_table *out_table_free(out_table *t);
/* Append a row of n_cols cells (copied; NULL prints "-"). */
int out_table_add(out_table *t, const char *const *cells);
/* Print with columns padded to their widest cell; the last column unpadded.
 * On a colour terminal (out_color) headers are bold and a "STATE" column
 * is coloured by state. */
void out_table_print(out_table *t, FILE *f);

/* --- style (cli/output-style.c) --- */
/* Colours only when f is a terminal, NO_COLOR is unset or empty and TERM
 * is not "dumb" (https://no-color.org). Cached per stream. */
bool out_color(FILE *f);
/* SGR colour of a VM state ("running" green, "crashed" red, ...); "" for
 * none. The caller ends it with OUT_SGR_RESET. */
const char *out_state_sgr(const char *state);
#define OUT_SGR_BOLD "\033[1m"
#define OUT_SGR_RESET "\033[0m"
/* Unix milliseconds as local "HH:MM:SS.mmm"; returns buf. */
const char *out_clock(int64_t unix_ms, char *buf, size_t size);
/* A duration, short and rounded: "850ms", "3.2s", "4m05s", "2h03m", "3d04h". */
const char *out_duration(int64_t ms, char *buf, size_t size);

/* Pretty JSON and a newline. */
void out_json(json_object *o, FILE *f);
/* Compact JSON of o (borrowed string, valid while o lives). */
const char *out_json_compact(json_object *o);

/* A scalar as text: strings as-is, numbers, booleans; NULL/null gives "-". */
const char *out_scalar(json_object *v, char *buf, size_t size);
/* 1536 -> "1.5 KiB"; "512 MiB". */
const char *out_size(uint64_t bytes, char *buf, size_t size);

/* Flatten an object into "key: value" lines (nested keys joined with '.',
 * array items as key[i]), values aligned. */
void out_kv(json_object *o, FILE *f);

/* Table from an array of objects: the `preferred` columns first (NULL-
 * terminated, may be NULL), then every other scalar key in order of first
 * appearance. Integer columns named "size" or ending in
 * "_size" or "_bytes" print as sizes. */
void out_table_from_array(json_object *arr, const char *const *preferred, FILE *f);
