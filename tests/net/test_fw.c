/* SPDX-License-Identifier: MIT */
/* net/fw-rules.c, fw-plan.c, fw-nft.c: the generated batch is accepted by
 * the kernel in one transaction (in a private netns), reconcile emits
 * nothing when the table is right, bad input is refused; and the rule
 * grammar of qemu/spec-firewall.c. */
#include <criterion/criterion.h>

#include "common/json.h"
#include "helpers/netns.h"
#include "net/fw.h"

static struct vm_fw *parse_fw(const char *text, struct qv_error *err)
{
	json_object *o = json_tokener_parse(text);
	struct vm_fw *fw = NULL;

	cr_assert_not_null(o, "bad test JSON: %s", text);
	int r = vm_fw_parse(o, "spec.nics[0].firewall", &fw, err);
	json_object_put(o);
	return r < 0 ? NULL : fw;
}

static const char *parse_err(const char *text)
{
	static struct qv_error err;
	qv_error_clear(&err);
	struct vm_fw *fw = parse_fw(text, &err);
	cr_assert_null(fw, "accepted: %s", text);
	cr_assert_str_eq(err.reason, "invalid-argument");
	return err.message;
}

Test(fw_spec, bad_input_is_refused_with_the_field)
{
	cr_assert(strstr(parse_err("{\"rules\":[{\"direction\":\"up\",\"action\":\"accept\"}]}"),
			 "rules[0].direction"));
	cr_assert(strstr(parse_err("{\"rules\":[{\"direction\":\"in\"}]}"), "action: required"));
	cr_assert(strstr(parse_err("{\"rules\":[{\"direction\":\"in\",\"action\":\"accept\","
				   "\"ports\":[80]}]}"), "needs protocol tcp or udp"));
	cr_assert(strstr(parse_err("{\"rules\":[{\"direction\":\"in\",\"action\":\"accept\","
				   "\"protocol\":\"tcp\",\"ports\":[\"90-80\"]}]}"), "LO <= HI"));
	cr_assert(strstr(parse_err("{\"rules\":[{\"direction\":\"in\",\"action\":\"accept\","
				   "\"protocol\":\"tcp\",\"ports\":[70000]}]}"), "out of range"));
	cr_assert(strstr(parse_err("{\"rules\":[{\"direction\":\"in\",\"action\":\"accept\","
				   "\"cidr\":\"10.0.0.0/33\"}]}"), "cidr"));
	cr_assert(strstr(parse_err("{\"rules\":[{\"direction\":\"in\",\"action\":\"accept\","
				   "\"protocol\":\"icmp\",\"cidr\":\"fd00::/8\"}]}"),
			 "does not go with protocol icmp"));
	cr_assert(strstr(parse_err("{\"rules\":[{\"direction\":\"in\",\"action\":\"accept\","
				   "\"protocol\":\"icmp\",\"icmp_type\":\"echo; flush ruleset\"}]}"),
			 "icmp_type"));
	cr_assert(strstr(parse_err("{\"rules\":[{\"direction\":\"in\",\"action\":\"accept\","
				   "\"rate\":\"10/fortnight\"}]}"), "rate"));
	cr_assert(strstr(parse_err("{\"groups\":[\"web-1\"]}"), "not a group name"));
	cr_assert(strstr(parse_err("{\"groups\":[\"web\",\"web\"]}"), "twice"));
	cr_assert(strstr(parse_err("{\"addresses\":[\"10.0.0.300\"]}"), "addresses[0]"));
	cr_assert(strstr(parse_err("{\"policy_in\":\"reject\"}"), "accept or drop"));
	cr_assert(strstr(parse_err("{\"colour\":\"red\"}"), "unknown field"));
}

Test(fw_spec, canonical_round_trip)
{
	struct qv_error err = {};
	struct vm_fw *fw = parse_fw("{\"addresses\":[\"10.0.0.7/24\",\"FD00::1\"],\"groups\":[\"web\"],"
				    "\"policy_in\":\"drop\",\"rules\":[{\"direction\":\"in\","
				    "\"protocol\":\"tcp\",\"ports\":[22,\"8000-8100\"],\"cidr\":"
				    "\"192.168.1.9/16\",\"action\":\"reject\",\"rate\":\"5/minute\"}]}",
				    &err);
	cr_assert_not_null(fw, "%s", err.message);
	cr_assert_str_eq(fw->addrs[0], "10.0.0.0/24"); /* host bits cleared */
	cr_assert_str_eq(fw->addrs[1], "fd00::1");
	cr_assert_str_eq(fw->rules[0].cidr, "192.168.0.0/16");
	json_object *j = vm_fw_to_json(fw);
	struct vm_fw *again = NULL;
	cr_assert_eq(vm_fw_parse(j, "x", &again, &err), 0, "%s", err.message);
	cr_assert_eq(memcmp(fw, again, sizeof(*fw)), 0);
	json_object_put(j);
	free(fw);
	free(again);
}

static struct vm_fw_rule rule(const char *text)
{
	struct vm_fw_rule r;
	struct qv_error err = {};
	json_object *o = json_tokener_parse(text);
	cr_assert_eq(vm_fw_rule_parse(o, "r", &r, &err), 0, "%s", err.message);
	json_object_put(o);
	return r;
}

static int apply(qv_nft *nft, const qv_fw_batch *b)
{
	struct qv_error err = {};
	int r = qv_nft_run(nft, qv_fw_batch_text(b), &err);
	cr_assert_geq(r, 0, "%s\n--- batch ---\n%s", err.message, qv_fw_batch_text(b));
	return r;
}

static qv_fw_live *live_now(qv_nft *nft)
{
	json_object *j = NULL;
	qv_fw_live *l = NULL;
	struct qv_error err = {};
	int r = qv_nft_list_json(nft, "list table bridge qvisor", &j, &err);
	cr_assert(r == 0 || r == -ENOENT, "%s", err.message);
	cr_assert_eq(qv_fw_live_parse(j, &l), 0);
	json_object_put(j);
	return l;
}

Test(fw_nft, apply_reconcile_and_remove_in_a_netns)
{
	QVT_REQUIRE_NETNS();
	_cleanup_(qv_nft_freep) qv_nft *nft = NULL;
	struct qv_error err = {};
	struct vm_fw fw;
	struct vm_fw_rule grules[2] = {
		rule("{\"direction\":\"in\",\"protocol\":\"tcp\",\"ports\":[22,\"80-90\"],\"action\":"
		     "\"accept\"}"),
		rule("{\"direction\":\"out\",\"protocol\":\"icmp\",\"icmp_type\":\"echo-request\","
		     "\"cidr\":\"10.0.0.0/8\",\"action\":\"drop\",\"rate\":\"10/second\"}"),
	};
	struct qv_fw_group g = { "web", grules, 2 };
	const char *learned[] = { "10.9.0.5" };

	cr_assert_eq(qv_nft_new(&nft, &err), 0, "%s", err.message);
	struct qv_fw_opts o = { .reject_ok = qv_nft_bridge_reject_ok(nft) };
	vm_fw_defaults(&fw);
	snprintf(fw.addrs[0], sizeof(fw.addrs[0]), "10.9.0.2");
	snprintf(fw.addrs[1], sizeof(fw.addrs[1]), "fd00::2");
	fw.n_addrs = 2;
	snprintf(fw.groups[0], sizeof(fw.groups[0]), "web");
	fw.n_groups = 1;
	fw.rules[0] = rule("{\"direction\":\"in\",\"protocol\":\"udp\",\"ports\":53,\"cidr\":"
			   "\"fd00::/64\",\"action\":\"reject\"}");
	fw.rules[1] = rule("{\"direction\":\"in\",\"protocol\":\"icmpv6\",\"icmp_type\":\"128\","
			   "\"action\":\"accept\"}");
	fw.n_rules = 2;
	fw.policy_in = VM_FW_DROP;
	struct qv_fw_nic nics[2] = {
		{ .tap = "qv0000aaaan0", .mac = "52:54:00:00:00:01", .fw = &fw },
		{ .tap = "qv0000bbbbn0", .mac = "52:54:00:00:00:02", .dhcp = true,
		  .learned = learned, .n_learned = 1 },
	};

	/* empty kernel: everything */
	_cleanup_(qv_fw_live_freep) qv_fw_live *l0 = live_now(nft);
	cr_assert_not(qv_fw_live_has_table(l0));
	_cleanup_(qv_fw_batch_freep) qv_fw_batch *b = qv_fw_batch_new();
	cr_assert_eq(qv_fw_plan(b, &o, l0, nics, 2, &g, 1, &err), 0, "%s", err.message);
	apply(nft, b);

	/* the same model again: nothing to do */
	_cleanup_(qv_fw_live_freep) qv_fw_live *l1 = live_now(nft);
	_cleanup_(qv_fw_batch_freep) qv_fw_batch *b1 = qv_fw_batch_new();
	cr_assert_eq(qv_fw_plan(b1, &o, l1, nics, 2, &g, 1, &err), 0, "%s", err.message);
	cr_assert_eq(qv_fw_batch_len(b1), 0, "non-empty: %s", qv_fw_batch_text(b1));

	/* a changed group: only its chains */
	grules[0].ports[0][0] = grules[0].ports[0][1] = 2222;
	_cleanup_(qv_fw_batch_freep) qv_fw_batch *b2 = qv_fw_batch_new();
	cr_assert_eq(qv_fw_plan(b2, &o, l1, nics, 2, &g, 1, &err), 0, "%s", err.message);
	cr_assert(strstr(qv_fw_batch_text(b2), "flush chain bridge qvisor g_web_in"));
	cr_assert_null(strstr(qv_fw_batch_text(b2), "n_qv0000aaaan0"));
	apply(nft, b2);

	/* one NIC gone: its chains, sets and map elements go; the rest stays */
	_cleanup_(qv_fw_live_freep) qv_fw_live *l2 = live_now(nft);
	_cleanup_(qv_fw_batch_freep) qv_fw_batch *b3 = qv_fw_batch_new();
	cr_assert_eq(qv_fw_plan(b3, &o, l2, &nics[1], 1, &g, 1, &err), 0, "%s", err.message);
	cr_assert(strstr(qv_fw_batch_text(b3), "delete chain bridge qvisor n_qv0000aaaan0_out"));
	apply(nft, b3);
	json_object *j = NULL;
	cr_assert_eq(qv_nft_list_json(nft, "list table bridge qvisor", &j, &err), 0);
	cr_assert_null(strstr(json_object_to_json_string(j), "qv0000aaaan0"));
	json_object *cnt = qv_fw_chain_counters(j, "n_qv0000bbbbn0_out");
	cr_assert_gt(json_object_array_length(cnt), 3);
	json_object_put(cnt);
	json_object_put(j);

	/* no NIC left: no table */
	_cleanup_(qv_fw_live_freep) qv_fw_live *l3 = live_now(nft);
	_cleanup_(qv_fw_batch_freep) qv_fw_batch *b4 = qv_fw_batch_new();
	cr_assert_eq(qv_fw_plan(b4, &o, l3, NULL, 0, &g, 1, &err), 0);
	apply(nft, b4);
	_cleanup_(qv_fw_live_freep) qv_fw_live *l4 = live_now(nft);
	cr_assert_not(qv_fw_live_has_table(l4));
}

Test(fw_nft, bad_model_and_refused_batch)
{
	QVT_REQUIRE_NETNS();
	_cleanup_(qv_nft_freep) qv_nft *nft = NULL;
	_cleanup_(qv_fw_batch_freep) qv_fw_batch *b = qv_fw_batch_new();
	struct qv_error err = {};
	struct qv_fw_nic bad_tap = { .tap = "qv-x;flush", .mac = "52:54:00:00:00:01" };
	struct qv_fw_nic bad_mac = { .tap = "qv1", .mac = "nope" };
	const char *learned[] = { "not-an-ip" };
	struct qv_fw_nic bad_lease = { .tap = "qv2", .mac = "52:54:00:00:00:01",
				       .learned = learned, .n_learned = 1 };

	cr_assert_eq(qv_fw_emit_nic(b, NULL, &bad_tap, &err), -EINVAL);
	qv_error_clear(&err);
	cr_assert_eq(qv_fw_emit_nic(b, NULL, &bad_mac, &err), -EINVAL);
	qv_error_clear(&err);
	cr_assert_eq(qv_fw_emit_nic(b, NULL, &bad_lease, &err), -EINVAL);
	cr_assert_eq(qv_fw_batch_len(b), 0);

	/* a batch the kernel refuses applies nothing of itself */
	cr_assert_eq(qv_nft_new(&nft, &err), 0, "%s", err.message);
	qv_error_clear(&err);
	cr_assert_lt(qv_nft_run(nft, "add table bridge qvisor\nadd chain bridge qvisor c\n"
				"add rule bridge qvisor nochain counter\n", &err), 0);
	cr_assert(strstr(err.message, "nftables refused the batch"), "%s", err.message);
	json_object *j = NULL;
	cr_assert_eq(qv_nft_list_json(nft, "list table bridge qvisor", &j, NULL), -ENOENT);
}

Test(fw_nft, dhcp_nic_before_its_lease_is_accepted_by_the_kernel)
{
	QVT_REQUIRE_NETNS();
	_cleanup_(qv_nft_freep) qv_nft *nft = NULL;
	_cleanup_(qv_fw_batch_freep) qv_fw_batch *b = qv_fw_batch_new();
	struct qv_error err = {};
	struct qv_fw_nic nic = { .tap = "qv0000ccccn1", .mac = "52:54:00:00:00:03", .dhcp = true };

	cr_assert_eq(qv_nft_new(&nft, &err), 0, "%s", err.message);
	cr_assert_eq(qv_fw_plan(b, NULL, NULL, &nic, 1, NULL, 0, &err), 0, "%s", err.message);
	/* no address yet: the NIC is IPv4-checked with no allowed source, so
	 * every IPv4 source but the DHCP client's exchange drops */
	const char *t = qv_fw_batch_text(b);
	cr_assert(strstr(t, "ether type ip iifname . ip saddr != @ip4_ok iifname @sp_ip drop"), "%s", t);
	cr_assert(strstr(t, "add element bridge qvisor sp_ip { \"qv0000ccccn1\" }"), "%s", t);
	cr_assert_null(strstr(t, "add element bridge qvisor ip4_ok"), "%s", t);
	/* DHCP messages must name the NIC's own MAC (chaddr), and frames other
	 * than IPv4/ARP/IPv6 (802.1Q, QinQ, MPLS, PPPoE) never leave the VM. */
	cr_assert(strstr(t, "udp dport 67 @ih,224,48 != 0x525400000003 counter "
			 "drop comment \"qv:spoof:dhcp-chaddr\""), "%s", t);
	cr_assert(strstr(t, "ether type != @eth_ok iifname @sp_ethertype drop"), "%s", t);
	apply(nft, b);
}

/* Counter rows of a chain with that comment, added up (-1: none). */
static int64_t rows_packets(json_object *listing, const char *chain, const char *comment)
{
	json_object *rows = qv_fw_chain_counters(listing, chain), *c, *p;
	int64_t n = -1;

	for (size_t i = 0; i < json_object_array_length(rows); i++) {
		json_object *row = json_object_array_get_idx(rows, i);
		json_object_object_get_ex(row, "comment", &c);
		json_object_object_get_ex(row, "packets", &p);
		if (streq(json_object_get_string(c), comment))
			n = (n < 0 ? 0 : n) + json_object_get_int64(p);
	}
	json_object_put(rows);
	return n;
}

Test(fw_nft, rules_as_map_elements_and_a_live_change_through_the_undo)
{
	QVT_REQUIRE_NETNS();
	_cleanup_(qv_nft_freep) qv_nft *nft = NULL;
	struct qv_error err = {};
	struct vm_fw fw;
	const char *tap = "qv0000ddddn0";

	cr_assert_eq(qv_nft_new(&nft, &err), 0, "%s", err.message);
	struct qv_fw_opts o = { .reject_ok = qv_nft_bridge_reject_ok(nft) };
	vm_fw_defaults(&fw);
	snprintf(fw.addrs[0], sizeof(fw.addrs[0]), "10.9.0.0/24");
	snprintf(fw.addrs[1], sizeof(fw.addrs[1]), "10.9.0.7"); /* inside the /24: left out */
	fw.n_addrs = 2;
	/* disjoint TCP/UDP rules: map elements; port lists give one each */
	fw.rules[0] = rule("{\"direction\":\"in\",\"protocol\":\"tcp\",\"ports\":[22,\"80-90\"],"
			   "\"cidr\":\"10.1.0.0/16\",\"action\":\"accept\"}");
	fw.rules[1] = rule("{\"direction\":\"in\",\"protocol\":\"tcp\",\"ports\":22,"
			   "\"cidr\":\"10.2.0.0/16\",\"action\":\"drop\"}");
	fw.rules[2] = rule("{\"direction\":\"out\",\"protocol\":\"udp\",\"ports\":53,"
			   "\"action\":\"accept\"}");
	fw.n_rules = 3;
	struct qv_fw_nic nic = { .tap = tap, .mac = "52:54:00:00:00:0d", .fw = &fw };

	_cleanup_(qv_fw_batch_freep) qv_fw_batch *b = qv_fw_batch_new();
	cr_assert_eq(qv_fw_plan(b, &o, NULL, &nic, 1, NULL, 0, &err), 0, "%s", err.message);
	const char *t = qv_fw_batch_text(b);
	cr_assert(strstr(t, "ip saddr . meta l4proto . th dport vmap @n_qv0000ddddn0_ri4"), "%s", t);
	/* no CIDR: both families */
	cr_assert(strstr(t, "ip6 daddr . meta l4proto . th dport vmap @n_qv0000ddddn0_ro6"), "%s", t);
	cr_assert(strstr(t, "10.1.0.0/16 . tcp . 80-90 comment \"qv:r:0\" : accept"), "%s", t);
	cr_assert_null(strstr(t, "10.9.0.7"), "%s", t);
	cr_assert_null(strstr(t, "comment \"qv:r:1\"\n"), "a mapped rule is also a chain rule: %s", t);
	apply(nft, b);

	json_object *j = NULL;
	cr_assert_eq(qv_nft_list_json(nft, "list table bridge qvisor", &j, &err), 0);
	/* fw.show's rows: a rule's elements and the anti-spoofing elements */
	cr_assert_eq(rows_packets(j, "n_qv0000ddddn0_in", "qv:r:0"), 0);
	cr_assert_eq(rows_packets(j, "n_qv0000ddddn0_out", "qv:r:2"), 0);
	cr_assert_eq(rows_packets(j, "n_qv0000ddddn0_out", "qv:spoof:mac"), 0);
	cr_assert_eq(rows_packets(j, "n_qv0000ddddn0_out", "qv:spoof:arp-ip"), 0);
	cr_assert_eq(rows_packets(j, "n_qv0000ddddn0_in", "qv:spoof:mac"), -1);
	json_object_put(j);

	/* live: another address, and an overlapping rule (22 from 10.1.2.0/24
	 * is inside rule 0): the in rules fall back to chain rules in order */
	_cleanup_(qv_fw_batch_freep) qv_fw_batch *undo = qv_fw_batch_new();
	cr_assert_eq(qv_fw_emit_nic_undo(undo, &o, &nic, &err), 0, "%s", err.message);
	snprintf(fw.addrs[0], sizeof(fw.addrs[0]), "10.9.1.5");
	fw.n_addrs = 1;
	fw.rules[3] = rule("{\"direction\":\"in\",\"protocol\":\"tcp\",\"ports\":22,"
			   "\"cidr\":\"10.1.2.0/24\",\"action\":\"drop\"}");
	fw.n_rules = 4;
	_cleanup_(qv_fw_batch_freep) qv_fw_batch *c = qv_fw_batch_new();
	cr_assert_geq(qv_fw_batch_addf(c, "%s", qv_fw_batch_text(undo)), 0);
	cr_assert_eq(qv_fw_emit_nic(c, &o, &nic, &err), 0, "%s", err.message);
	cr_assert(strstr(qv_fw_batch_text(c), "delete map bridge qvisor n_qv0000ddddn0_ri4"), "%s",
		  qv_fw_batch_text(c));
	apply(nft, c);
	cr_assert_eq(qv_nft_list_json(nft, "list table bridge qvisor", &j, &err), 0);
	const char *js = json_object_to_json_string(j);
	cr_assert_null(strstr(js, "10.9.0.0"), "old address left: %s", js);
	cr_assert(strstr(js, "10.9.1.5"));
	cr_assert_null(strstr(js, "n_qv0000ddddn0_ri4"), "unused map left");
	cr_assert_eq(rows_packets(j, "n_qv0000ddddn0_in", "qv:r:3"), 0);
	json_object_put(j);

	/* the reconcile agrees with the live change: nothing to do */
	_cleanup_(qv_fw_live_freep) qv_fw_live *l = live_now(nft);
	_cleanup_(qv_fw_batch_freep) qv_fw_batch *again = qv_fw_batch_new();
	cr_assert_eq(qv_fw_plan(again, &o, l, &nic, 1, NULL, 0, &err), 0, "%s", err.message);
	cr_assert_eq(qv_fw_batch_len(again), 0, "non-empty: %s", qv_fw_batch_text(again));

	/* removal through the undo leaves none of the NIC's elements */
	_cleanup_(qv_fw_batch_freep) qv_fw_batch *undo2 = qv_fw_batch_new();
	cr_assert_eq(qv_fw_emit_nic_undo(undo2, &o, &nic, &err), 0);
	cr_assert_geq(qv_fw_emit_nic_delete(undo2, &o, tap), 0);
	apply(nft, undo2);
	cr_assert_eq(qv_nft_list_json(nft, "list table bridge qvisor", &j, &err), 0);
	cr_assert_null(strstr(json_object_to_json_string(j), tap), "%s", json_object_to_json_string(j));
	json_object_put(j);
}
