/* SPDX-License-Identifier: MIT */
#pragma once

/* cloud-init NoCloud seed: an ISO 9660 image labelled "cidata" holding
 * user-data, meta-data and optionally network-config. */

#include <stddef.h>
#include <stdint.h>

#define CIDATA_FILE "cidata.iso"

struct cidata_docs {
	const char *instance_id;    /* required; the VM's uuid */
	const char *hostname;       /* required; the VM's name */
	const char *user_data;      /* NULL = empty */
	const char *meta_data;      /* extra meta-data lines, appended; NULL = none */
	const char *network_config; /* NULL = no network-config file */
};

/* The image bytes (malloc'ed). The same documents give the same bytes. */
int cidata_build(const struct cidata_docs *docs, uint8_t **ret_buf, size_t *ret_size);
