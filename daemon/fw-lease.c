/* SPDX-License-Identifier: MIT */
/* The firewall's view of DHCP: a NIC on a DHCP network may use the address
 * dnsmasq leased to its MAC; the daemon follows the leases file. */
#include <errno.h>
#include <stdio.h>
#include <strings.h>
#include <string.h>

#include "common/log.h"
#include "daemon/fw-internal.h"
#include "daemon/netreg.h"
#include "net/dnsmasq.h"
#include "net/mac.h"

#define LEASE_POLL_MS 2000

/* The lease dnsmasq gave mac on network, if any. */
void qv_fwd_lease_of(struct qv_daemon *d, const char *network, const char *mac, char ret[16])
{
	struct qv_network *net = network ? qv_network_find(d, network) : NULL;
	_cleanup_free_ struct qv_lease *leases = NULL;
	char path[4096], m[QV_MAC_STRLEN];
	size_t n = 0;

	ret[0] = 0;
	if (!net || !net->dhcp_start || !net->run_dir)
		return;
	snprintf(path, sizeof(path), "%s/leases", net->run_dir);
	if (qv_dnsmasq_read_leases(path, &leases, &n, NULL) < 0)
		return;
	for (size_t i = 0; i < n; i++)
		if (strcasecmp(qv_mac_format(&leases[i].mac, m), mac) == 0)
			snprintf(ret, 16, "%s", leases[i].ip);
}

bool qv_fwd_net_has_dhcp(struct qv_daemon *d, const char *network)
{
	struct qv_network *net = network ? qv_network_find(d, network) : NULL;
	return net && net->dhcp_start;
}

/* Where an installed NIC's MAC, network and rules come from: the spec for
 * a boot NIC, the record itself for a hot-plugged one (defaults). */
int qv_fwd_nic_source(struct qv_fwd *f, const struct fw_nic *in, const char **ret_mac,
		      const char **ret_network, const struct vm_fw **ret_fw)
{
	struct qv_vm *vm = qv_vm_find(f->d, in->vm);

	if (!vm)
		return -ENOENT;
	if (in->hot) {
		*ret_mac = in->mac;
		*ret_network = in->network[0] ? in->network : NULL;
		*ret_fw = NULL;
		return 0;
	}
	if (in->idx >= vm->spec->n_nics)
		return -ENOENT;
	*ret_mac = vm->spec->nics[in->idx].mac;
	*ret_network = vm->spec->nics[in->idx].network;
	*ret_fw = vm->spec->nics[in->idx].fw;
	return 0;
}

/* DHCP lease learning: a NIC on a DHCP network may use the address
 * dnsmasq leased to its MAC; the set follows the leases file. */
static void lease_tick(qv_source *s, void *ud)
{
	struct qv_fwd *f = ud;
	_cleanup_(qv_fw_batch_freep) qv_fw_batch *b = qv_fw_batch_new();
	struct qv_error err = {};
	bool any = false;
	int r = 0;

	f->lease_timer = NULL;
	for (size_t i = 0; b && i < f->n_nics && r >= 0; i++) {
		const char *mac, *network;
		const struct vm_fw *fw;
		char now[16];
		if (qv_fwd_nic_source(f, &f->nics[i], &mac, &network, &fw) < 0 ||
		    !qv_fwd_net_has_dhcp(f->d, network))
			continue;
		any = true;
		qv_fwd_lease_of(f->d, network, mac, now);
		if (streq(now, f->nics[i].learned))
			continue;
		log_info("VM %s: NIC %s leased %s, allowing it as a source", f->nics[i].vm,
			 f->nics[i].tap, now[0] ? now : "(none)");
		snprintf(f->nics[i].learned, sizeof(f->nics[i].learned), "%s", now);
		r = qv_fwd_emit_installed(f, &f->nics[i], b, &err);
	}
	if (b && qv_fw_batch_len(b) && (r < 0 || qv_fwd_apply(f, b, &err) < 0))
		log_warning("Firewall: cannot update learned addresses: %s, ignoring", err.message);
	if (any)
		qv_fwd_lease_watch(f);
}

void qv_fwd_lease_watch(struct qv_fwd *f)
{
	if (!f->lease_timer)
		(void)qv_loop_add_timer(f->d->loop, LEASE_POLL_MS, lease_tick, f, &f->lease_timer);
}

