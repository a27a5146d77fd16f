/* SPDX-License-Identifier: MIT */
#pragma once

#include <json-c/json.h>
#include <stdio.h>

/* Output helpers shared by the verbs. Human output goes to stdout as aligned
 * tables or "key: value" lines; --json output is the result, pretty-printed. */

typedef struct out_table out_table;

out_table *out_table_new(size_t n_cols, const char *const *headers);
out_table *out_table_free(out_table *t);
/* Append a row of n_cols cells (copied; NULL prints "-"). */
int out_table_add(out_table *t, const char *const *cells);
/* Print with columns padded to their widest cell; the last column unpadded. */
void out_table_print(out_table *t, FILE *f);

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
