/* SPDX-License-Identifier: MIT */
/* VM NICs: one TAP per NIC, created by the daemon and handed to QEMU as an
 * fd; names are derived from the VM uuid and the NIC index. */
#include <ctype.h>

#include "common/json.h"
#include "common/log.h"
#include "daemon/fw.h"
#include "daemon/hooks.h"
#include "daemon/vm-nics-internal.h"
#include "net/ifname.h"
#include "net/link.h"
#include "net/mac.h"
#include "net/tap.h"

struct vm_nics *vm_nics_get(struct qv_vm *vm)
{
	if (!vm->nic_state)
		vm->nic_state = calloc(1, sizeof(struct vm_nics));
	return vm->nic_state;
}

static void close_fds(struct vm_nics *s)
{
	for (size_t i = 0; i < s->n_fds; i++)
		if (s->fds[i] >= 0)
			close(s->fds[i]);
	free(s->fds);
	s->fds = NULL;
	s->n_fds = 0;
}

void vm_nics_free(struct qv_vm *vm)
{
	struct vm_nics *s = vm->nic_state;

	if (!s)
		return;
	close_fds(s);
	for (size_t i = 0; i < HP_SLOTS; i++)
		free(s->hp[i].network);
	free(s->taps);
	free(s);
	vm->nic_state = NULL;
}

void qv_vm_nics_forget(struct qv_vm *vm)
{
	vm_nics_free(vm);
}

bool vm_is_q35(const struct qv_vm *vm)
{
	return streq(vm->spec->machine, "q35") || strncmp(vm->spec->machine, "pc-q35-", 7) == 0;
}

int qv_vm_tap_name(const struct qv_vm *vm, unsigned idx, char ret[IFNAMSIZ])
{
	return qv_ifname_tap(vm->spec->uuid, idx, ret);
}

bool qv_vm_owns_tap(const struct qv_vm *vm, const char *tap)
{
	char n0[IFNAMSIZ];

	if (qv_vm_tap_name(vm, 0, n0) < 0)
		return false;
	/* "qvXXXXXXXXn" is common to every NIC index of the VM. */
	return strncmp(tap, n0, 11) == 0;
}

int qv_nic_resolve_bridge(struct qv_daemon *d, const char *network, const char *bridge,
			  char ret[IFNAMSIZ], struct qv_error *errp)
{
	struct qv_netreg *reg = qv_netreg_get(d, errp);
	struct qv_link_info li;
	int r;

	if (!reg)
		return errp ? -errp->error : -EIO;
	if (network) {
		struct qv_network *net = qv_network_find(d, network);
		if (!net)
			return qv_error_set(errp, ENOENT, QV_REASON_NOT_FOUND,
					    "network %s is not defined", network);
		snprintf(ret, IFNAMSIZ, "%s", net->bridge);
		return 0;
	}
	if (!bridge)
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "a NIC needs a network or a bridge");
	r = qv_ifname_check(bridge, "bridge name", errp);
	if (r < 0)
		return r;
	r = qv_link_lookup(reg->nl, bridge, &li, NULL);
	if (r == -ENODEV)
		return qv_error_set(errp, ENODEV, QV_REASON_NOT_FOUND, "bridge %s does not exist",
				    bridge);
	if (r < 0)
		return qv_error_set(errp, -r, NULL, "cannot look up bridge %s: %s", bridge,
				    strerror(-r));
	if (li.kind != QV_LINK_BRIDGE)
		return qv_error_set(errp, EEXIST, QV_REASON_CONFLICT,
				    "%s is not a bridge (kind %s)", bridge,
				    li.kind_name[0] ? li.kind_name : qv_link_kind_to_string(li.kind));
	snprintf(ret, IFNAMSIZ, "%s", bridge);
	return 0;
}

static bool mac_eq(const char *a, const char *b)
{
	struct qv_mac ma, mb;

	if (qv_mac_parse(a, &ma) < 0 || qv_mac_parse(b, &mb) < 0)
		return strcasecmp(a, b) == 0;
	return memcmp(ma.b, mb.b, sizeof(ma.b)) == 0;
}

int qv_nic_check_mac(struct qv_daemon *d, const struct qv_vm *self, const char *mac,
		     struct qv_error *errp)
{
	for (struct qv_vm *vm = d->vms; vm; vm = vm->next) {
		struct vm_nics *s = vm->nic_state;
		if (vm != self)
			for (size_t i = 0; i < vm->spec->n_nics; i++)
				if (mac_eq(vm->spec->nics[i].mac, mac))
					return qv_error_set(errp, EEXIST, QV_REASON_CONFLICT,
							    "MAC %s is already used by NIC %zu of "
							    "VM %s", mac, i, vm->name);
		for (size_t i = 0; s && i < HP_SLOTS; i++)
			if (s->hp[i].used && mac_eq(s->hp[i].mac, mac))
				return qv_error_set(errp, EEXIST, QV_REASON_CONFLICT,
						    "MAC %s is already used by hot-plugged NIC "
						    "net%u of VM %s", mac, s->hp[i].idx, vm->name);
	}
	return 0;
}

int qv_net_check_spec(struct qv_daemon *d, const struct vm_spec *spec, const struct qv_vm *self,
		      struct qv_error *errp)
{
	char br[IFNAMSIZ];
	int r;

	for (size_t i = 0; i < spec->n_nics; i++) {
		const struct vm_nic *nic = &spec->nics[i];
		r = qv_nic_resolve_bridge(d, nic->network, nic->bridge, br, errp);
		if (r < 0) {
			qv_error_prefix(errp, "VM %s NIC %zu", spec->name, i);
			return r;
		}
		for (size_t k = 0; k < i; k++)
			if (mac_eq(spec->nics[k].mac, nic->mac))
				return qv_error_set(errp, EEXIST, QV_REASON_CONFLICT,
						    "VM %s: NICs %zu and %zu both use MAC %s",
						    spec->name, k, i, nic->mac);
		r = qv_nic_check_mac(d, self, nic->mac, errp);
		if (r < 0) {
			qv_error_prefix(errp, "VM %s NIC %zu", spec->name, i);
			return r;
		}
	}
	return 0;
}

int vm_tap_open(struct qv_vm *vm, unsigned idx, const char *bridge, int *ret_fd,
		char ret_name[IFNAMSIZ], struct qv_error *errp)
{
	struct qv_netreg *reg = qv_netreg_get(vm->d, errp);
	char name[IFNAMSIZ];
	_cleanup_close_ int fd = -1;
	int r;

	if (!reg)
		return errp ? -errp->error : -EIO;
	r = qv_vm_tap_name(vm, idx, name);
	if (r < 0)
		return qv_error_set(errp, -r, QV_REASON_INTERNAL, "cannot name TAP %u of VM %s",
				    idx, vm->name);
	r = qv_tap_create(name, 0, &fd, NULL, errp);
	if (r < 0) {
		qv_error_prefix(errp, "VM %s NIC %u", vm->name, idx);
		return r;
	}
	r = qv_tap_attach(reg->nl, name, bridge, errp);
	if (r < 0) {
		qv_error_prefix(errp, "VM %s NIC %u", vm->name, idx);
		return r; /* closing the only fd removes the TAP */
	}
	log_debug("VM %s: TAP %s on %s", vm->name, name, bridge);
	*ret_fd = TAKE_FD(fd);
	snprintf(ret_name, IFNAMSIZ, "%s", name);
	return 0;
}

/* --- hooks ------------------------------------------------------------------- */

int qv_vm_nics_open(struct qv_vm *vm, int **ret_fds, size_t *ret_n, struct qv_error *errp)
{
	const struct vm_spec *spec = vm->spec;
	char (*bridges)[IFNAMSIZ] = NULL;
	struct vm_nics *s;
	_cleanup_free_ int *out = NULL;
	int r;

	if (spec->n_nics == 0) {
		*ret_fds = NULL;
		*ret_n = 0;
		return 0;
	}
	s = vm_nics_get(vm);
	if (!s)
		return qv_error_set(errp, ENOMEM, QV_REASON_INTERNAL, "out of memory");
	close_fds(s);
	free(s->taps);
	s->n_taps = 0;
	/* Every check before the first TAP exists. */
	r = qv_net_check_spec(vm->d, spec, vm, errp);
	if (r < 0)
		return r;
	bridges = calloc(spec->n_nics, IFNAMSIZ);
	s->taps = calloc(spec->n_nics, IFNAMSIZ);
	s->fds = calloc(spec->n_nics, sizeof(int));
	out = calloc(spec->n_nics, sizeof(int));
	if (!bridges || !s->taps || !s->fds || !out) {
		free(bridges);
		return qv_error_set(errp, ENOMEM, QV_REASON_INTERNAL, "out of memory");
	}
	for (size_t i = 0; i < spec->n_nics; i++)
		(void)qv_nic_resolve_bridge(vm->d, spec->nics[i].network, spec->nics[i].bridge,
					    bridges[i], NULL);
	for (size_t i = 0; i < spec->n_nics; i++) {
		r = vm_tap_open(vm, (unsigned)i, bridges[i], &s->fds[i], s->taps[i], errp);
		if (r < 0) {
			free(bridges);
			close_fds(s); /* the TAPs go with their only fd */
			return r;
		}
		s->n_fds = s->n_taps = i + 1;
		out[i] = s->fds[i];
	}
	free(bridges);
	log_info("VM %s: %zu TAP(s) ready (%s%s)", vm->name, s->n_taps, s->taps[0],
		 s->n_taps > 1 ? ", ..." : "");
	*ret_fds = TAKE_PTR(out);
	*ret_n = spec->n_nics;
	return 0;
}

void qv_vm_nics_started(struct qv_vm *vm)
{
	struct vm_nics *s = vm->nic_state;

	if (s)
		close_fds(s);
}

void qv_vm_nics_close(struct qv_vm *vm)
{
	struct vm_nics *s = vm->nic_state;
	struct qv_netreg *reg = vm->d->net_state;
	const char *names[VM_NICS_MAX + HP_SLOTS];
	char buf[VM_NICS_MAX][IFNAMSIZ];
	struct qv_error err = {};
	size_t n = 0;

	qv_fw_vm_stop(vm);
	if (s)
		close_fds(s);
	if (reg) {
		/* Normally gone with QEMU's fds (non-persistent); this is for the
		 * odd QEMU that left a TAP behind. Missing names are skipped. */
		for (size_t i = 0; i < vm->spec->n_nics && i < VM_NICS_MAX; i++)
			if (qv_vm_tap_name(vm, (unsigned)i, buf[i]) == 0)
				names[n++] = buf[i];
		for (size_t i = 0; s && i < HP_SLOTS; i++)
			if (s->hp[i].used)
				names[n++] = s->hp[i].tap;
		if (n && qv_tap_delete_many(reg->nl, names, n, &err) < 0)
			log_warning("VM %s: cannot remove TAPs: %s, ignoring", vm->name,
				    err.message);
	}
	vm_nics_free(vm);
}

/* "qv" + 8 hex + "n" + digits: the scheme of qv_ifname_tap(). */
static bool is_qv_tap_name(const char *n)
{
	size_t i;

	if (strncmp(n, "qv", 2) != 0)
		return false;
	for (i = 2; i < 10; i++)
		if (!isxdigit((unsigned char)n[i]))
			return false;
	if (n[10] != 'n' || !n[11])
		return false;
	for (i = 11; n[i]; i++)
		if (!isdigit((unsigned char)n[i]))
			return false;
	return true;
}

void qv_net_reconcile_taps(struct qv_daemon *d)
{
	struct qv_netreg *reg = d->net_state;
	_cleanup_free_ struct qv_link_info *links = NULL;
	_cleanup_free_ const char **stale = NULL;
	struct qv_error err = {};
	size_t n = 0, ns = 0;

	if (!reg || qv_link_dump(reg->nl, &links, &n, &err) < 0) {
		log_warning("Cannot list links for TAP reconciliation: %s, ignoring", err.message);
		return;
	}
	stale = calloc(n ? n : 1, sizeof(*stale));
	if (!stale)
		return;
	for (size_t i = 0; i < n; i++) {
		struct qv_vm *owner = NULL;
		if (links[i].kind != QV_LINK_TUN || !is_qv_tap_name(links[i].name))
			continue;
		for (struct qv_vm *vm = d->vms; vm && !owner; vm = vm->next)
			if (qv_vm_is_active(vm) && qv_vm_owns_tap(vm, links[i].name))
				owner = vm;
		if (owner) {
			log_debug("TAP %s belongs to a running VM, keeping it", links[i].name);
			/* A VM still re-attaching adopts once its QMP answers
			 * (qv_vm_nics_adopt_after_attach). */
			if (!owner->attaching)
				vm_nics_adopt_hotplugged(owner, &links[i], links, n);
		} else {
			stale[ns++] = links[i].name;
		}
	}
	if (!ns)
		return;
	log_info("Removing %zu stale TAP(s) (%s%s)", ns, stale[0], ns > 1 ? ", ..." : "");
	if (qv_tap_delete_many(reg->nl, stale, ns, &err) < 0)
		log_warning("Cannot remove stale TAPs: %s, ignoring", err.message);
}

void qv_vm_nics_adopt_after_attach(struct qv_vm *vm)
{
	struct qv_netreg *reg = vm->d->net_state;
	_cleanup_free_ struct qv_link_info *links = NULL;
	struct vm_nics *s;
	struct qv_error err = {};
	size_t n = 0;

	if (!reg || !vm->inst)
		return;
	if (qv_link_dump(reg->nl, &links, &n, &err) < 0) {
		log_warning("VM %s: cannot list links to re-adopt hot-plugged NICs: %s", vm->name,
			    err.message);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		if (links[i].kind != QV_LINK_TUN || !is_qv_tap_name(links[i].name) ||
		    !qv_vm_owns_tap(vm, links[i].name))
			continue;
		vm_nics_adopt_hotplugged(vm, &links[i], links, n);
	}
	/* The firewall loaded before these were known: filter them now. */
	s = vm->nic_state;
	for (size_t i = 0; s && vm->d->fw_state && i < HP_SLOTS; i++) {
		struct hp_nic *h = &s->hp[i];
		qv_error_clear(&err);
		if (h->used && !h->removing &&
		    qv_fw_nic_add(vm, h->tap, h->mac, h->network, &err) < 0)
			log_warning("VM %s: firewall for re-adopted NIC %s: %s", vm->name, h->tap,
				    err.message);
	}
}

json_object *qv_vm_nics_json(struct qv_vm *vm)
{
	struct vm_nics *s = vm->nic_state;
	json_object *arr = json_object_new_array();

	for (size_t i = 0; s && i < HP_SLOTS; i++) {
		struct hp_nic *h = &s->hp[i];
		char id[24];
		if (!h->used)
			continue;
		json_object *o = json_object_new_object();
		snprintf(id, sizeof(id), "net%u", h->idx);
		json_object_object_add(o, "id", json_object_new_string(id));
		json_object_object_add(o, "mac", json_object_new_string(h->mac));
		json_object_object_add(o, "tap", json_object_new_string(h->tap));
		if (h->network)
			json_object_object_add(o, "network", json_object_new_string(h->network));
		json_object_object_add(o, "bridge", json_object_new_string(h->bridge));
		json_object_object_add(o, "hotplugged", json_object_new_boolean(true));
		json_object_array_add(arr, o);
	}
	return arr;
}
