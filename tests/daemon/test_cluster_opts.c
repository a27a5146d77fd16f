/* SPDX-License-Identifier: MIT */
#include <criterion/criterion.h>

#include "daemon/cluster.h"

Test(cluster_opts, labels)
{
	cr_assert_eq(qv_cluster_labels_check("zone=a"), 0);
	cr_assert_eq(qv_cluster_labels_check("zone=a,ssd=yes,rack=r1.b-2"), 0);
	cr_assert_eq(qv_cluster_labels_check("gpu"), 0);
	cr_assert_eq(qv_cluster_labels_check("gpu,zone=a"), 0);
	cr_assert_eq(qv_cluster_labels_check(""), -EINVAL);
	cr_assert_eq(qv_cluster_labels_check("=a"), -EINVAL);
	cr_assert_eq(qv_cluster_labels_check("zone="), -EINVAL);
	cr_assert_eq(qv_cluster_labels_check("zone=a,"), -EINVAL);
	cr_assert_eq(qv_cluster_labels_check("zone=a b"), -EINVAL);
	cr_assert_eq(qv_cluster_labels_check("zone=a=b"), -EINVAL);
	cr_assert_eq(qv_cluster_labels_check("zone=$(x)"), -EINVAL);
}
