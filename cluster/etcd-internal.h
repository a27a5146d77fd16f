/* SPDX-License-Identifier: MIT */
#pragma once

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <unistd.h>

#include "cluster/etcd.h"

/* The gateway prints int64 fields as strings ("123"); absent means 0. */
int64_t etcd_json_i64(json_object *obj, const char *key);
