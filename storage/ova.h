/* SPDX-License-Identifier: MIT */
#pragma once

/* OVA (a ustar archive holding an OVF descriptor, a manifest and disks) and
 * the OVF descriptor itself. Everything here is untrusted input. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

#define QV_OVA_MAX_FILES 64

struct qv_ova_file {
	char name[101];
	uint64_t size;
	char sha1[41], sha256[65]; /* lowercase hex of the extracted bytes */
};

/* Extract every member of the OVA at path into the directory dirfd (which
 * the caller made empty and private). Members must be regular files with a
 * plain name ([A-Za-z0-9._-], not starting with '.', no '/'), unique, at
 * most QV_OVA_MAX_FILES; anything else refuses the archive. Files are
 * created with O_EXCL|O_NOFOLLOW and hashed while written. */
int qv_ova_extract(const char *path, int dirfd, struct qv_ova_file **ret_files, size_t *ret_n,
		   struct qv_error *errp);

/* Check the manifest text (lines "SHA256(name)= hex" or "SHA1(name)= hex")
 * against the extracted files: every line must match, and every file other
 * than the manifest and a certificate must be listed. */
int qv_ova_verify_manifest(const char *mf, const struct qv_ova_file *files, size_t n,
			   const char *mf_name, struct qv_error *errp);

struct qv_ovf {
	char *name;             /* VirtualSystem Name or ovf:id, may be NULL */
	unsigned vcpus;         /* 0 = not given */
	uint64_t memory_mib;    /* 0 = not given */
	char **disk_files;      /* file names (hrefs) of the disks, in order */
	char **disk_formats;    /* "vmdk", "vhdx", ... from ovf:format or the name */
	size_t n_disks;
	char **networks;        /* NIC connections, in order */
	size_t n_nics;
};

/* Parse an OVF descriptor (OVF 1.x/2.x; DOCTYPEs refused, no network). */
int qv_ovf_parse(const char *xml, size_t len, struct qv_ovf **ret, struct qv_error *errp);
struct qv_ovf *qv_ovf_free(struct qv_ovf *ovf);
