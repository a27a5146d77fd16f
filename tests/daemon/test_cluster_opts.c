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

Test(cluster_opts, balancer_options)
{
	struct qv_daemon_config cfg = { .cluster_balance_cooldown_s = -1 };

	cr_assert_eq(qv_cluster_option(&cfg, "cluster-capacity-vcpus", "2"), 0);
	cr_assert_eq(cfg.cluster_capacity_vcpus, 2);
	cr_assert_eq(qv_cluster_option(&cfg, "cluster-balance-interval", "10"), 0);
	cr_assert_eq(cfg.cluster_balance_interval_s, 10);
	cr_assert_eq(qv_cluster_option(&cfg, "cluster-balance-threshold", "0.7"), 0);
	cr_assert_float_eq(cfg.cluster_balance_threshold, 0.7, 1e-9);
	cr_assert_eq(qv_cluster_option(&cfg, "cluster-balance-cooldown", "0"), 0);
	cr_assert_float_eq(cfg.cluster_balance_cooldown_s, 0, 1e-9);
	/* out of range or not a number: refused, the value kept */
	cr_assert_eq(qv_cluster_option(&cfg, "cluster-capacity-vcpus", "0"), -EINVAL);
	cr_assert_eq(qv_cluster_option(&cfg, "cluster-capacity-vcpus", "1.5"), -EINVAL);
	cr_assert_eq(qv_cluster_option(&cfg, "cluster-balance-interval", "0"), -EINVAL);
	cr_assert_eq(qv_cluster_option(&cfg, "cluster-balance-interval", "ten"), -EINVAL);
	cr_assert_eq(qv_cluster_option(&cfg, "cluster-balance-threshold", "1.5"), -EINVAL);
	cr_assert_eq(qv_cluster_option(&cfg, "cluster-balance-threshold", ""), -EINVAL);
	cr_assert_eq(qv_cluster_option(&cfg, "cluster-balance-cooldown", "-1"), -EINVAL);
	cr_assert_eq(cfg.cluster_capacity_vcpus, 2);
	cr_assert_eq(cfg.cluster_balance_interval_s, 10);
	cr_assert_float_eq(cfg.cluster_balance_threshold, 0.7, 1e-9);
}
