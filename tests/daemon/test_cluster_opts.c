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

Test(cluster_opts, balancer_policy_and_power_saving)
{
	struct qv_daemon_config cfg = { .cluster_balance_cooldown_s = -1 };

	cr_assert_eq(qv_cluster_option(&cfg, "cluster-balance-policy", "qvisor"), 0);
	cr_assert_str_eq(cfg.cluster_balance_policy, "qvisor");
	cr_assert_eq(qv_cluster_option(&cfg, "cluster-balance-policy", "iqr"), 0);
	cr_assert_eq(qv_cluster_option(&cfg, "cluster-balance-policy", "lr-mmt"), 0);
	cr_assert_str_eq(cfg.cluster_balance_policy, "lr-mmt");
	/* not a detector policy, unknown, or empty: refused, the value kept */
	cr_assert_eq(qv_cluster_option(&cfg, "cluster-balance-policy", "npa"), -EINVAL);
	cr_assert_eq(qv_cluster_option(&cfg, "cluster-balance-policy", "dvfs"), -EINVAL);
	cr_assert_eq(qv_cluster_option(&cfg, "cluster-balance-policy", "best"), -EINVAL);
	cr_assert_eq(qv_cluster_option(&cfg, "cluster-balance-policy", ""), -EINVAL);
	cr_assert_str_eq(cfg.cluster_balance_policy, "lr-mmt");
	cr_assert_not(cfg.cluster_balance_power_saving);
	cr_assert_eq(qv_cluster_option(&cfg, "cluster-balance-power-saving", NULL), 0);
	cr_assert(cfg.cluster_balance_power_saving);
}
