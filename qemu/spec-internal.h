/* SPDX-License-Identifier: MIT */
#pragma once

/* Shared between qemu/spec*.c only: typed, path-aware field readers and the
 * grammars. Every reader reports "<path>: <problem>" through errp, where
 * path is the dotted location in the document ("spec.disks[1].format"). */

#include <json-c/json.h>

#include "qemu/spec.h"

#define VM_SPEC_MAX_BYTES (1024 * 1024)
#define VM_CMDLINE_MAX 4096
#define VM_PATH_MAX 4095
#define VM_IFNAME_MAX 15
#define VM_CPUSET_MAX 256

/* Field lookup: returns 0 and sets *ret, -ENOENT when absent or null (ret
 * untouched, errp untouched), or -EINVAL with errp filled. */
int spec_get_string(json_object *o, const char *key, const char *path,
		    const char **ret, struct qv_error *errp);
int spec_get_int(json_object *o, const char *key, const char *path, int64_t min, int64_t max,
		 int64_t *ret, struct qv_error *errp);
int spec_get_bool(json_object *o, const char *key, const char *path, bool *ret,
		  struct qv_error *errp);
/* Integer bytes or a string "512M"/"2G"/"1T"/"64K"/"4096" (bytes). */
int spec_get_size(json_object *o, const char *key, const char *path, uint64_t min,
		  uint64_t max, uint64_t *ret, struct qv_error *errp);
/* Absolute path, no "..", no control characters, at most VM_PATH_MAX. */
int spec_get_path(json_object *o, const char *key, const char *path, const char **ret,
		  struct qv_error *errp);
/* Reject keys outside `allowed` with "<path>.<key>: unknown field". */
int spec_check_keys(json_object *o, const char *const *allowed, const char *path,
		    struct qv_error *errp);

/* Parse "512", "512M", "2GiB" (case-insensitive K/M/G/T, binary units).
 * `unit` multiplies a bare number. */
int spec_parse_size(const char *s, uint64_t unit, uint64_t *ret);

bool spec_ifname_valid(const char *s);
bool spec_disk_serial_valid(const char *s); /* spec.balloon (qemu/spec-balloon.c); call after memory is parsed. */
int spec_parse_balloon(json_object *o, const char *path, struct vm_spec *spec,
		       struct qv_error *errp);

/* qemu/spec-cloudinit.c */
bool spec_machine_valid(const char *s);
bool spec_cpuset_valid(const char *s);
bool spec_path_valid(const char *s, const char **ret_why);
/* Canonical lowercase uuid into ret[37]; false if malformed or nil. */
bool spec_uuid_normalize(const char *s, char ret[37]);
int spec_uuid_generate(char ret[37]);
/* Unicast, non-zero, colon form; lowercased into ret[18]. */
bool spec_mac_normalize(const char *s, char ret[18]);

int spec_parse_limits(json_object *o, const char *path, struct vm_limits *l,
		      bool *ret_has_limits, struct qv_error *errp);
int spec_parse_restart(json_object *o, const char *path, struct vm_restart *r,
		       struct qv_error *errp);
void spec_limits_to_json(const struct vm_limits *l, json_object *out);
/* spec.resources (qemu/spec-resources.c); call after limits are parsed. */
int spec_parse_resources(json_object *o, const char *path, struct vm_spec *spec,
			 struct qv_error *errp);

/* spec.balloon (qemu/spec-balloon.c); call after memory is parsed. */
int spec_parse_balloon(json_object *o, const char *path, struct vm_spec *spec,
		       struct qv_error *errp);

/* spec.backup (qemu/spec-backup.c). */
int spec_parse_backup(json_object *o, const char *path, struct vm_backup *b,
		      struct qv_error *errp);

/* qemu/spec-cloudinit.c */
int spec_parse_cloud_init(json_object *o, const char *path, struct vm_cloud_init **ret,
			  struct qv_error *errp);
json_object *spec_cloud_init_to_json(const struct vm_cloud_init *ci);
/* NULL src gives NULL; *ok false on ENOMEM. */
struct vm_cloud_init *spec_cloud_init_dup(const struct vm_cloud_init *src, bool *ok);
void spec_cloud_init_free(struct vm_cloud_init *ci);
