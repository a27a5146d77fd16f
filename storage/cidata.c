/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/macro.h"
#include "storage/cidata.h"
#include "storage/iso9660.h"

/* Fixed volume date (2020-01-01) so a seed only changes with its content. */
#define CIDATA_MTIME 1577836800

int cidata_build(const struct cidata_docs *d, uint8_t **ret_buf, size_t *ret_size)
{
	_cleanup_free_ char *md = NULL;
	const char *extra = d->meta_data ? d->meta_data : "";

	if (!d->instance_id || !d->hostname)
		return -EINVAL;
	if (asprintf(&md, "instance-id: %s\nlocal-hostname: %s\n%s%s", d->instance_id, d->hostname,
		     extra, *extra && extra[strlen(extra) - 1] != '\n' ? "\n" : "") < 0)
		return -ENOMEM;
	const char *ud = d->user_data ? d->user_data : "";
	struct iso_file files[3] = {
		{ "meta-data", md, strlen(md) },
		{ "user-data", ud, strlen(ud) },
		{ "network-config", d->network_config, d->network_config ? strlen(d->network_config) : 0 },
	};
	return iso9660_build("cidata", files, d->network_config ? 3 : 2, CIDATA_MTIME, ret_buf,
			     ret_size);
}
