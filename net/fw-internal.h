/* SPDX-License-Identifier: MIT */
#pragma once

/* Shared by net/fw-rules.c (chains), net/fw-sets.c (elements of the shared
 * sets and maps) and net/fw-plan.c (reconcile). Not a public interface. */

#include <arpa/inet.h>

#include "net/fw.h"
#include "net/mac.h"

/* The NIC's allowed sources, deduplicated (an address inside another
 * entry's prefix is dropped: interval sets refuse overlapping elements).
 * all4/all6: a /0 allows that whole family. */
#define QV_FW_SRC_MAX (2 * VM_FW_ADDRS_MAX)

struct qv_fw_addrs {
	const char *v4[QV_FW_SRC_MAX], *v6[QV_FW_SRC_MAX + 1];
	size_t n4, n6;
	bool all4, all6;
	bool v4_checked; /* IPv4 sources are checked (sp_ip, sp_arp_ip) */
	char ll[INET6_ADDRSTRLEN];
};

/* A NIC checked and normalised for emission. */
struct qv_fw_nicx {
	const struct qv_fw_nic *n; /* mac normalised */
	const struct vm_fw *fw;    /* never NULL */
	struct qv_fw_addrs al;
	bool mapped[2];            /* [in]: the direction's rules are map elements */
	unsigned fams[2];          /* [in]: bit 0 IPv4 map used, bit 1 IPv6 */
};

const char *qv_fw__tbl(const struct qv_fw_opts *o);
/* The shared sets and maps, and the vm_spoof chain (part of the base). */
int qv_fw__emit_shared(qv_fw_batch *b, const struct qv_fw_opts *o);
/* "flush set" of every shared set/map holding per-NIC elements. */
int qv_fw__flush_shared(qv_fw_batch *b, const struct qv_fw_opts *o);
int qv_fw__addrs(const struct qv_fw_nic *n, const struct vm_fw *fw, const struct qv_mac *mac,
		 struct qv_fw_addrs *ret);
/* Decide which directions' rules become map elements (x->mapped, x->fams). */
void qv_fw__map_rules(struct qv_fw_nicx *x, const struct qv_fw_opts *o);

/* Per-set element lists, accumulated over one or many NICs. */
typedef struct qv_fw_elems qv_fw_elems;
qv_fw_elems *qv_fw__elems_new(void);
void qv_fw__elems_freep(qv_fw_elems **e);
int qv_fw__elems_nic(qv_fw_elems *e, const struct qv_fw_nicx *x, const struct qv_fw_opts *o);
/* "add element …" (del false) or "delete element …" (keys only) per set. */
int qv_fw__elems_emit(const qv_fw_elems *e, qv_fw_batch *b, const struct qv_fw_opts *o, bool del);
/* All element text (for the NIC's chain hash). */
int qv_fw__elems_text(const qv_fw_elems *e, qv_fw_batch *b);
/* Normalise n into x (errp on a bad TAP, MAC or lease). */
int qv_fw__nicx(const struct qv_fw_nic *n, const struct qv_fw_opts *o, struct qv_fw_nicx *x,
		struct qv_fw_nic *norm, char mac[18], struct vm_fw *defaults, struct qv_error *errp);
bool qv_fw__ident_ok(const char *s);
/* The NIC's rule maps, two chains (their end hash covers its elements and
 * maps) and from_vm/to_vm elements; not its shared set elements. cleanup:
 * also delete the rule maps it no longer needs. */
int qv_fw__emit_nic_chains(qv_fw_batch *b, const struct qv_fw_opts *o, const struct qv_fw_nicx *x,
			   bool cleanup);
/* The anti-spoofing tag of a shared sp_ set ("arp_ip"), else NULL. */
const char *qv_fw__set_tag(const char *set);
/* n_<tap>_r{i,o}{4,6}: the NIC's rule map of one direction and family. */
void qv_fw__rule_map(const char *tap, bool in, int fam, char ret[32]);
/* used: create, flush and fill the NIC's rule maps it needs (before its
 * chains); !used: delete those it does not need (after its chains). */
int qv_fw__emit_rule_maps(qv_fw_batch *b, const struct qv_fw_opts *o, const struct qv_fw_nicx *x,
			  bool used);
/* "add map" of a NIC's rule map (idempotent). */
int qv_fw__rule_map_add(qv_fw_batch *b, const struct qv_fw_opts *o, const char *map, int fam);
/* One "add rule" per line of lines; last_suffix (or NULL) ends the last. */
int qv_fw__add_rules(qv_fw_batch *b, const struct qv_fw_opts *o, const char *chain,
		     const char *lines, const char *last_suffix);
