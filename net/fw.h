/* SPDX-License-Identifier: MIT */
#pragma once

/* Per-VM/per-NIC filtering with nftables (docs/firewall.md).
 *
 * net/fw-rules.c turns a model (NICs with their TAP, MAC, addresses, rules;
 * security groups) into nft command text; net/fw-plan.c compares it with what
 * the kernel has and emits only the difference; net/fw-nft.c applies one batch
 * atomically through libnftables and lists the table as JSON.
 *
 * One table `bridge <table>` (default "qvisor"), docs/firewall.md:
 *   map from_vm / to_vm  ifname : verdict   TAP -> jump n_<tap>_out / n_<tap>_in
 *   sets mac_ok, ip4_ok, ip6_ok, nd_ok      each NIC's allowed sources, keyed by TAP
 *   sets sp_<check> (counter)               which NIC gets which anti-spoofing check,
 *                                           and its drop counter (net/fw-sets.c)
 *   chain vm_spoof                          every anti-spoofing check, 12 rules
 *   chain vm_pre  hook prerouting   jump vm_spoof; ARP/ND; iifname vmap @from_vm
 *   chain vm_fwd / vm_out           ARP/ND/DHCP replies; oifname vmap @to_vm
 *   map n_<tap>_r{i,o}{4,6}         a NIC's non-overlapping TCP/UDP rules
 *   chain n_<tap>_out / n_<tap>_in  jumps to groups, a map lookup (or the
 *                                   rules one by one), policy
 *   chain g_<group>_in / _out       a security group's rules, shared by its NICs
 * The per-packet cost does not grow with the number of VMs. Every chain ends
 * with a rule whose comment carries a hash of the chain's generated text (for
 * a NIC also its elements), so a restarted daemon can tell what is
 * already right and leave it alone (counters and handles survive). */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "common/error.h"
#include "qemu/spec.h"

#define QV_FW_TABLE "qvisor"

typedef struct qv_fw_batch qv_fw_batch;

qv_fw_batch *qv_fw_batch_new(void);
qv_fw_batch *qv_fw_batch_free(qv_fw_batch *b);
void qv_fw_batch_freep(qv_fw_batch **b);
const char *qv_fw_batch_text(const qv_fw_batch *b); /* "" when empty */
size_t qv_fw_batch_len(const qv_fw_batch *b);
/* Append printf-style; -ENOMEM. */
int qv_fw_batch_addf(qv_fw_batch *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

struct qv_fw_opts {
	const char *table;  /* NULL: QV_FW_TABLE */
	bool reject_ok;     /* the kernel has bridge reject; else reject is emitted as drop */
};

struct qv_fw_nic {
	const char *tap;              /* interface name, the map key */
	const char *mac;              /* the NIC's MAC (anti-spoofing) */
	const struct vm_fw *fw;       /* NULL: defaults */
	const char *const *learned;   /* IPv4 addresses leased by DHCP */
	size_t n_learned;
	bool dhcp;                    /* the network serves DHCP: allow DHCP client packets,
				       * and check IPv4 sources even before a lease */
};

struct qv_fw_group {
	const char *name;
	const struct vm_fw_rule *rules;
	size_t n_rules;
};

/* Table, maps and base chains. */
int qv_fw_emit_base(qv_fw_batch *b, const struct qv_fw_opts *o);
/* The group's two chains, flushed and refilled. */
int qv_fw_emit_group(qv_fw_batch *b, const struct qv_fw_opts *o, const struct qv_fw_group *g);
int qv_fw_emit_group_delete(qv_fw_batch *b, const struct qv_fw_opts *o, const char *name);
/* The NIC's sets and chains, flushed and refilled, and its map elements.
 * -EINVAL (errp) for a bad TAP name, MAC or address. */
int qv_fw_emit_nic(qv_fw_batch *b, const struct qv_fw_opts *o, const struct qv_fw_nic *n,
		   struct qv_error *errp);
/* The commands that remove what qv_fw_emit_nic(n) put in the shared sets
 * and maps (appended to undo). A caller changing or removing an installed
 * NIC runs them first, in the same batch: the elements are keyed by the
 * TAP in tables every NIC shares, so they cannot be flushed per NIC. */
int qv_fw_emit_nic_undo(qv_fw_batch *undo, const struct qv_fw_opts *o, const struct qv_fw_nic *n,
			struct qv_error *errp);
/* The two halves of qv_fw_emit_nic: the NIC's chains, rule maps and
 * from_vm/to_vm elements; its elements of the shared sets. A live change
 * whose undo text is unchanged needs only the first. */
int qv_fw_emit_nic_chains(qv_fw_batch *b, const struct qv_fw_opts *o, const struct qv_fw_nic *n,
			  struct qv_error *errp);
int qv_fw_emit_nic_elements(qv_fw_batch *b, const struct qv_fw_opts *o,
			    const struct qv_fw_nic *n, struct qv_error *errp);
/* The NIC's chains, rule maps and from_vm/to_vm elements (after its undo). */
int qv_fw_emit_nic_delete(qv_fw_batch *b, const struct qv_fw_opts *o, const char *tap);
int qv_fw_emit_table_delete(qv_fw_batch *b, const struct qv_fw_opts *o);

/* Comment tags on generated rules (fw.show maps counters back with them). */
#define QV_FW_TAG_RULE "qv:r:"      /* + index into the NIC's or group's rules */
/* + mac | ethertype | arp-mac | arp-ip | dhcp-chaddr | ip | ip6 | nd-target | nd-lla |
 * dhcp-server | ra */
#define QV_FW_TAG_SPOOF "qv:spoof:"
#define QV_FW_TAG_END "qv:end:"     /* + hash; last rule of every chain */
#define QV_FW_BASE_TAG "base3"      /* end tag of the base chains: the table's layout version */

/* What the kernel has (net/fw-plan.c), from `list table` JSON. */
typedef struct qv_fw_live qv_fw_live;
/* Parse the JSON listing; NULL json means "no table". */
int qv_fw_live_parse(json_object *json, qv_fw_live **ret);
qv_fw_live *qv_fw_live_free(qv_fw_live *l);
void qv_fw_live_freep(qv_fw_live **l);
bool qv_fw_live_has_table(const qv_fw_live *l);

/* The batch that turns `live` into the model: empty when nothing differs.
 * No NIC: the table is deleted. */
int qv_fw_plan(qv_fw_batch *b, const struct qv_fw_opts *o, const qv_fw_live *live,
	       const struct qv_fw_nic *nics, size_t n_nics, const struct qv_fw_group *groups,
	       size_t n_groups, struct qv_error *errp);

/* Counters of one chain from a `list table` JSON listing:
 * [{comment, packets, bytes}] for every rule with a comment. */
json_object *qv_fw_chain_counters(json_object *listing, const char *chain);
/* Chain names. */
void qv_fw_nic_chain(const char *tap, bool in, char ret[64]);
void qv_fw_group_chain(const char *group, bool in, char ret[64]);

/* net/fw-nft.c: one libnftables context. */
typedef struct qv_nft qv_nft;
int qv_nft_new(qv_nft **ret, struct qv_error *errp);
qv_nft *qv_nft_free(qv_nft *n);
void qv_nft_freep(qv_nft **n);
/* Run text commands as one transaction. On failure errp carries nft's
 * message (first line); nothing of the batch is applied. */
int qv_nft_run(qv_nft *n, const char *cmds, struct qv_error *errp);
/* Run a list command with JSON output; *ret is the parsed document
 * (-ENOENT when the object does not exist). */
int qv_nft_list_json(qv_nft *n, const char *cmd, json_object **ret, struct qv_error *errp);
/* Whether the kernel accepts reject in the bridge family (dry run). */
bool qv_nft_bridge_reject_ok(qv_nft *n);
