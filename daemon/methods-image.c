/* SPDX-License-Identifier: MIT */
/* Placeholder until image methods are wired. */
#include "daemon/hooks.h"

int qv_image_registry_load(struct qv_daemon *d)
{
	return 0;
}

void qv_image_registry_free(struct qv_daemon *d)
{
}

const struct qv_rpc_method qv_image_methods[] = { { NULL, NULL } };
const size_t qv_image_methods_count = 0;
