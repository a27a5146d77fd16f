/* SPDX-License-Identifier: MIT */
/* The network registry: spec validation, define/undefine, bring-up at start. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <limits.h>
#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>

#include <ctype.h>

#include "common/json.h"
#include "common/log.h"
#include "daemon/hooks.h"
#include "daemon/netreg.h"
#include "net/addr.h"
#include "net/bridge.h"
#include "net/ifname.h"
#include "net/link.h"

#define NET_MTU_MIN 68
#define NET_MTU_MAX 65535
#define DNSMASQ_RETRY_MS 2000

struct qv_netreg *qv_netreg_get(struct qv_daemon *d, struct qv_error *errp)
{
	struct qv_netreg *reg = d->net_state;
	int r;

	if (reg)
		return reg;
	reg = calloc(1, sizeof(*reg));
	if (!reg) {
		qv_error_set(errp, ENOMEM, QV_REASON_INTERNAL, "out of memory");
		return NULL;
	}
	r = qv_netlink_open(&reg->nl, errp);
	if (r < 0) {
		free(reg);
		return NULL;
	}
	reg->d = d;
	d->net_state = reg;
	return reg;
}

struct qv_network *qv_network_find(struct qv_daemon *d, const char *name)
{
	struct qv_netreg *reg = d->net_state;

	for (struct qv_network *n = reg ? reg->nets : NULL; n; n = n->next)
		if (streq(n->name, name))
			return n;
	return NULL;
}

struct qv_network *qv_network_free(struct qv_network *net)
{
	if (!net)
		return NULL;
	qv_source_remove(net->dnsmasq_watch);
	qv_source_remove(net->dnsmasq_retry);
	qv_dnsmasq_free(net->dnsmasq);
	free(net->name);
	free(net->address);
	free(net->dhcp_start);
	free(net->dhcp_end);
	free(net->run_dir);
	free(net);
	return NULL;
}

static void qv_network_freep(struct qv_network **n)
{
	qv_network_free(*n);
}

/* --- validation --------------------------------------------------------------- */

/* "A.B.C.D/N" or "X::Y/N": address, family and prefix. */
static int parse_cidr(const char *s, int *ret_family, unsigned char ret_addr[16],
		      unsigned *ret_prefix)
{
	char buf[INET6_ADDRSTRLEN + 8];
	char *slash, *end;
	unsigned long p;
	int fam;

	if (strlen(s) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, s);
	slash = strchr(buf, '/');
	if (!slash || !slash[1])
		return -EINVAL;
	*slash = '\0';
	fam = strchr(buf, ':') ? AF_INET6 : AF_INET;
	if (inet_pton(fam, buf, ret_addr) != 1)
		return -EINVAL;
	errno = 0;
	p = strtoul(slash + 1, &end, 10);
	if (*end || errno || p > (fam == AF_INET ? 32u : 128u) || !isdigit((unsigned char)slash[1]))
		return -EINVAL;
	*ret_family = fam;
	*ret_prefix = (unsigned)p;
	return 0;
}

static int check_dhcp(struct qv_network *net, json_object *dhcp, struct qv_error *errp)
{
	static const char *const keys[] = { "start", "end", NULL };
	unsigned char a[16], s[16], e[16];
	const char *start = NULL, *end = NULL;
	unsigned prefix;
	int fam, r;

	if (!json_object_is_type(dhcp, json_type_object))
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "spec.dhcp must be an object {start, end}");
	r = json_check_keys(dhcp, keys, "spec.dhcp", errp);
	if (r < 0)
		return r;
	if (json_get_string(dhcp, "start", "spec.dhcp.start", &start, errp) < 0 ||
	    json_get_string(dhcp, "end", "spec.dhcp.end", &end, errp) < 0 || !start || !end)
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "spec.dhcp needs string fields start and end");
	if (!net->address)
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "spec.dhcp needs spec.address (dnsmasq serves the bridge's subnet)");
	if (parse_cidr(net->address, &fam, a, &prefix) < 0 || fam != AF_INET)
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "spec.dhcp needs an IPv4 spec.address");
	if (inet_pton(AF_INET, start, s) != 1 || inet_pton(AF_INET, end, e) != 1)
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "spec.dhcp: start \"%.64s\" and end \"%.64s\" must be IPv4 "
				    "addresses", start, end);
	uint32_t mask = prefix ? htonl(~0u << (32 - prefix)) : 0, av, sv, ev;
	memcpy(&av, a, 4);
	memcpy(&sv, s, 4);
	memcpy(&ev, e, 4);
	if ((sv & mask) != (av & mask) || (ev & mask) != (av & mask))
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "spec.dhcp: range %s-%s is outside %s", start, end,
				    net->address);
	if (ntohl(sv) > ntohl(ev))
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "spec.dhcp: start %s is after end %s", start, end);
	if ((av == sv || av == ev) || (ntohl(av) > ntohl(sv) && ntohl(av) < ntohl(ev)))
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "spec.dhcp: range %s-%s contains the bridge address %s", start,
				    end, net->address);
	net->dhcp_start = strdup(start);
	net->dhcp_end = strdup(end);
	if (!net->dhcp_start || !net->dhcp_end)
		return qv_error_set(errp, ENOMEM, QV_REASON_INTERNAL, "out of memory");
	return 0;
}

int qv_network_parse(json_object *spec, struct qv_network **ret, struct qv_error *errp)
{
	static const char *const keys[] = { "name", "bridge", "address", "dhcp", "mtu", NULL };
	_cleanup_(qv_network_freep) struct qv_network *net = NULL;
	const char *name = NULL, *bridge = NULL, *address = NULL;
	json_object *dhcp = NULL;
	int64_t mtu = 0;
	int r;

	if (!spec || !json_object_is_type(spec, json_type_object))
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "spec must be an object {name, bridge, address?, dhcp?, mtu?}");
	r = json_check_keys(spec, keys, "spec", errp);
	if (r < 0)
		return r;
	r = json_get_string(spec, "name", "spec.name", &name, errp);
	if (r == -ENOENT)
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT, "spec.name is required");
	if (r < 0)
		return r;
	if (!vm_name_valid(name))
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "invalid network name \"%.80s\": use 1-63 of [a-zA-Z0-9_.-], "
				    "starting with a letter or digit", name);
	r = json_get_string(spec, "bridge", "spec.bridge", &bridge, errp);
	if (r == -ENOENT)
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "spec.bridge is required");
	if (r < 0)
		return r;
	r = qv_ifname_check(bridge, "bridge name", errp);
	if (r < 0)
		return r;
	r = json_get_string(spec, "address", "spec.address", &address, errp);
	if (r < 0 && r != -ENOENT)
		return r;
	r = json_get_int64(spec, "mtu", "spec.mtu", &mtu, errp);
	if (r < 0 && r != -ENOENT)
		return r;
	if (r == 0 && (mtu < NET_MTU_MIN || mtu > NET_MTU_MAX))
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "spec.mtu %" PRId64 " is out of range %d..%d", mtu, NET_MTU_MIN,
				    NET_MTU_MAX);
	net = calloc(1, sizeof(*net));
	if (!net || !(net->name = strdup(name)))
		return qv_error_set(errp, ENOMEM, QV_REASON_INTERNAL, "out of memory");
	snprintf(net->bridge, sizeof(net->bridge), "%s", bridge);
	net->mtu = (unsigned)mtu;
	if (address) {
		unsigned char a[16];
		unsigned prefix;
		int fam;
		if (parse_cidr(address, &fam, a, &prefix) < 0)
			return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
					    "spec.address \"%.64s\" is not an address with prefix "
					    "length, like 10.0.0.1/24", address);
		if (!(net->address = strdup(address)))
			return -ENOMEM;
	}
	if (json_object_object_get_ex(spec, "dhcp", &dhcp) && dhcp) {
		r = check_dhcp(net, dhcp, errp);
		if (r < 0)
			return r;
	}
	*ret = TAKE_PTR(net);
	return 0;
}

json_object *qv_network_spec_json(const struct qv_network *net)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "name", json_object_new_string(net->name));
	json_object_object_add(o, "bridge", json_object_new_string(net->bridge));
	if (net->address)
		json_object_object_add(o, "address", json_object_new_string(net->address));
	if (net->dhcp_start) {
		json_object *h = json_object_new_object();
		json_object_object_add(h, "start", json_object_new_string(net->dhcp_start));
		json_object_object_add(h, "end", json_object_new_string(net->dhcp_end));
		json_object_object_add(o, "dhcp", h);
	}
	if (net->mtu)
		json_object_object_add(o, "mtu", json_object_new_int((int)net->mtu));
	return o;
}

/* --- dnsmasq supervision ----------------------------------------------------- */

static int dnsmasq_start(struct qv_network *net, struct qv_error *errp);

static void dnsmasq_retry(qv_source *s, void *ud)
{
	struct qv_network *net = ud;
	struct qv_error err = {};

	net->dnsmasq_retry = NULL;
	if (dnsmasq_start(net, &err) < 0) {
		log_error("Network %s: cannot restart dnsmasq: %s; retrying", net->name,
			  err.message);
		snprintf(net->last_error, sizeof(net->last_error), "%s", err.message);
		qv_loop_add_timer(net->reg->d->loop, DNSMASQ_RETRY_MS, dnsmasq_retry, net,
				  &net->dnsmasq_retry);
	}
}

static void dnsmasq_exited(qv_source *s, int fd, uint32_t revents, void *ud)
{
	struct qv_network *net = ud;
	int status = 0;

	if (qv_dnsmasq_running(net->dnsmasq, &status))
		return;
	net->dnsmasq_watch = qv_source_remove(net->dnsmasq_watch);
	net->dnsmasq = qv_dnsmasq_free(net->dnsmasq);
	log_warning("Network %s: dnsmasq exited (status 0x%x); restarting in %d ms", net->name,
		    status, DNSMASQ_RETRY_MS);
	qv_loop_add_timer(net->reg->d->loop, DNSMASQ_RETRY_MS, dnsmasq_retry, net,
			  &net->dnsmasq_retry);
}

static int dnsmasq_start(struct qv_network *net, struct qv_error *errp)
{
	struct qv_dnsmasq_config cfg = {
		.network = net->name,
		.bridge = net->bridge,
		.run_dir = net->run_dir,
		.range_start = net->dhcp_start,
		.range_end = net->dhcp_end,
	};
	int r;

	r = qv_dnsmasq_start(&cfg, &net->dnsmasq, errp);
	if (r < 0)
		return r;
	if (net->reg->d->loop &&
	    qv_loop_add_io(net->reg->d->loop, qv_dnsmasq_pidfd(net->dnsmasq), EPOLLIN,
			   dnsmasq_exited, net, &net->dnsmasq_watch) < 0)
		log_warning("Network %s: cannot watch dnsmasq, ignoring", net->name);
	net->last_error[0] = '\0';
	return 0;
}

static void dnsmasq_stop(struct qv_network *net)
{
	net->dnsmasq_watch = qv_source_remove(net->dnsmasq_watch);
	net->dnsmasq_retry = qv_source_remove(net->dnsmasq_retry);
	if (net->dnsmasq)
		qv_dnsmasq_stop(net->dnsmasq, 0);
	net->dnsmasq = qv_dnsmasq_free(net->dnsmasq);
}

/* A dnsmasq left by a previous daemon (it runs in its own session): we
 * cannot adopt it (not our child), so end it before starting ours. Only a
 * process whose command line names this network's config is touched. */
static void kill_stale_dnsmasq(struct qv_network *net)
{
	char path[PATH_MAX], cmd[4096], conf[PATH_MAX];
	long pid = 0;
	ssize_t n;

	snprintf(path, sizeof(path), "%s/dnsmasq.pid", net->run_dir);
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	if (!f || fscanf(f, "%ld", &pid) != 1 || pid <= 1)
		return;
	snprintf(path, sizeof(path), "/proc/%ld/cmdline", pid);
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || (n = read(fd, cmd, sizeof(cmd) - 1)) <= 0)
		return;
	cmd[n] = '\0';
	for (ssize_t i = 0; i < n; i++)
		if (!cmd[i])
			cmd[i] = ' ';
	snprintf(conf, sizeof(conf), "--conf-file=%s/dnsmasq.conf", net->run_dir);
	if (!strstr(cmd, "dnsmasq") || !strstr(cmd, conf))
		return;
	log_info("Network %s: stopping dnsmasq pid %ld left by a previous daemon", net->name, pid);
	kill((pid_t)pid, SIGTERM);
	for (int i = 0; i < 300 && kill((pid_t)pid, 0) == 0; i++)
		usleep(10000);
	if (kill((pid_t)pid, 0) == 0)
		kill((pid_t)pid, SIGKILL);
}

/* --- bring-up / teardown --------------------------------------------------- */

/* Bridge, MTU, up, address, dnsmasq. *ret_created: the bridge was new. */
static int network_activate(struct qv_network *net, bool *ret_created, struct qv_error *errp)
{
	qv_netlink *nl = net->reg->nl;
	struct qv_link_info li;
	int r;

	r = qv_link_lookup(nl, net->bridge, &li, NULL);
	if (r == 0 && li.kind != QV_LINK_BRIDGE)
		return qv_error_set(errp, EEXIST, QV_REASON_CONFLICT,
				    "bridge %s exists and is not a bridge (kind %s)", net->bridge,
				    li.kind_name[0] ? li.kind_name : qv_link_kind_to_string(li.kind));
	*ret_created = r == -ENODEV;
	r = qv_bridge_create(nl, net->bridge, errp);
	if (r < 0)
		return r;
	if (net->mtu && (r = qv_bridge_set_mtu(nl, net->bridge, net->mtu, errp)) < 0)
		return r;
	r = qv_bridge_set_up(nl, net->bridge, true, errp);
	if (r < 0)
		return r;
	if (net->address) {
		struct qv_error aerr = {};
		r = qv_addr_add(nl, net->bridge, net->address, &aerr);
		if (r < 0 && r != -EEXIST) {
			qv_error_set(errp, aerr.error, aerr.reason, "%s", aerr.message);
			return r;
		}
	}
	if (net->dhcp_start && !net->dnsmasq) {
		kill_stale_dnsmasq(net);
		r = dnsmasq_start(net, errp);
		if (r < 0)
			return r;
	}
	return 0;
}

static void remove_run_dir(const char *dir)
{
	DIR *dd = opendir(dir);
	struct dirent *de;

	if (!dd)
		return;
	while ((de = readdir(dd)))
		if (!streq(de->d_name, ".") && !streq(de->d_name, ".."))
			unlinkat(dirfd(dd), de->d_name, 0);
	closedir(dd);
	rmdir(dir);
}

static void network_deactivate(struct qv_network *net, bool delete_bridge)
{
	struct qv_error err = {};

	dnsmasq_stop(net);
	if (delete_bridge && qv_bridge_delete(net->reg->nl, net->bridge, &err) < 0 &&
	    err.error != ENODEV)
		log_warning("Network %s: cannot delete bridge %s: %s, ignoring", net->name,
			    net->bridge, err.message);
	remove_run_dir(net->run_dir);
}

static int network_attach(struct qv_netreg *reg, struct qv_network *net)
{
	struct qv_daemon *d = reg->d;
	_cleanup_free_ char *netdir = NULL;

	net->reg = reg;
	if (asprintf(&netdir, "%s/net", d->cfg.run_dir) < 0 ||
	    asprintf(&net->run_dir, "%s/net/%s", d->cfg.run_dir, net->name) < 0)
		return -ENOMEM;
	(void)mkdir(netdir, 0755);
	return 0;
}

int qv_network_define(struct qv_daemon *d, struct qv_network *net_in, struct qv_error *errp)
{
	_cleanup_(qv_network_freep) struct qv_network *net = net_in;
	struct qv_netreg *reg = qv_netreg_get(d, errp);
	_cleanup_json_ json_object *j = NULL;
	bool created = false;
	int r;

	if (!reg)
		return errp ? -errp->error : -EIO;
	if (qv_network_find(d, net->name))
		return qv_error_set(errp, EEXIST, QV_REASON_CONFLICT,
				    "network %s is already defined", net->name);
	for (struct qv_network *o = reg->nets; o; o = o->next)
		if (streq(o->bridge, net->bridge))
			return qv_error_set(errp, EEXIST, QV_REASON_CONFLICT,
					    "bridge %s is already used by network %s", net->bridge,
					    o->name);
	r = network_attach(reg, net);
	if (r < 0)
		return qv_error_set(errp, -r, QV_REASON_INTERNAL, "out of memory");
	j = qv_network_spec_json(net);
	r = qv_state_net_put(d->state, net->name,
			     json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN));
	if (r < 0)
		return qv_error_set(errp, -r, r == -EEXIST ? QV_REASON_CONFLICT : NULL,
				    "cannot store network %s: %s", net->name, strerror(-r));
	r = network_activate(net, &created, errp);
	if (r < 0) {
		log_warning("Network %s: setup failed (%s); rolling back", net->name,
			    errp ? errp->message : strerror(-r));
		network_deactivate(net, created);
		(void)qv_state_net_delete(d->state, net->name);
		return r;
	}
	net->next = reg->nets;
	reg->nets = TAKE_PTR(net);
	qv_daemon_emit(d, NULL, "net-defined",
		       json_tokener_parse(json_object_to_json_string(j)));
	return 0;
}

int qv_network_undefine(struct qv_daemon *d, const char *name, struct qv_error *errp)
{
	struct qv_netreg *reg = d->net_state;
	struct qv_network *net = qv_network_find(d, name);
	_cleanup_free_ char *users = NULL;
	int r;

	if (!net)
		return qv_error_set(errp, ENOENT, QV_REASON_NOT_FOUND, "network %s is not defined",
				    name);
	users = qv_network_users(d, name);
	if (users)
		return qv_error_set(errp, EBUSY, QV_REASON_CONFLICT,
				    "network %s is in use by VM(s) %s", name, users);
	r = qv_state_net_delete(d->state, name);
	if (r < 0 && r != -ENOENT)
		return qv_error_set(errp, -r, NULL, "cannot delete network %s: %s", name,
				    strerror(-r));
	network_deactivate(net, true);
	for (struct qv_network **pp = &reg->nets; *pp; pp = &(*pp)->next)
		if (*pp == net) {
			*pp = net->next;
			break;
		}
	json_object *data = json_object_new_object();
	json_object_object_add(data, "name", json_object_new_string(name));
	qv_daemon_emit(d, NULL, "net-undefined", data);
	qv_network_free(net);
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

char *qv_network_users(struct qv_daemon *d, const char *name)
{
	_cleanup_free_ const char **names = NULL;
	size_t n = 0, cap = 0, len = 0;
	char *out = NULL;
	FILE *f;

	for (struct qv_vm *vm = d->vms; vm; vm = vm->next)
		cap++;
	names = calloc(cap ? cap : 1, sizeof(*names));
	if (!names)
		return NULL;
	for (struct qv_vm *vm = d->vms; vm; vm = vm->next) {
		bool uses = false;
		for (size_t i = 0; i < vm->spec->n_nics; i++)
			uses |= streq_ptr(vm->spec->nics[i].network, name);
		json_object *hp = qv_vm_nics_json(vm);
		for (size_t i = 0; hp && i < json_object_array_length(hp); i++) {
			json_object *v = NULL, *e = json_object_array_get_idx(hp, i);
			if (json_object_object_get_ex(e, "network", &v) &&
			    streq(json_object_get_string(v), name))
				uses = true;
		}
		json_object_put(hp);
		if (uses)
			names[n++] = vm->name;
	}
	if (!n)
		return NULL;
	qsort(names, n, sizeof(*names), cmp_str);
	f = open_memstream(&out, &len);
	if (!f)
		return NULL;
	for (size_t i = 0; i < n; i++)
		fprintf(f, "%s%s", i ? ", " : "", names[i]);
	fclose(f);
	return out;
}

json_object *qv_network_json(struct qv_daemon *d, struct qv_network *net, bool detail)
{
	json_object *o = qv_network_spec_json(net);
	struct qv_link_info li;
	bool active = qv_link_lookup(net->reg->nl, net->bridge, &li, NULL) == 0 &&
		      li.kind == QV_LINK_BRIDGE;

	json_object_object_add(o, "state", json_object_new_string(active ? "active" : "inactive"));
	if (!detail)
		return o;
	json_object_object_add(o, "link_mtu", active ? json_object_new_int((int)li.mtu) : NULL);
	json_object_object_add(o, "link_up", json_object_new_boolean(active && li.up));
	json_object_object_add(o, "run_dir", json_object_new_string(net->run_dir));
	json_object_object_add(o, "error",
			       net->last_error[0] ? json_object_new_string(net->last_error) : NULL);
	/* Ports: links whose master is the bridge. */
	json_object *ports = json_object_new_array();
	_cleanup_free_ struct qv_link_info *links = NULL;
	size_t n = 0;
	if (active && qv_link_dump(net->reg->nl, &links, &n, NULL) >= 0)
		for (size_t i = 0; i < n; i++)
			if (links[i].master == li.ifindex)
				json_object_array_add(ports, json_object_new_string(links[i].name));
	json_object_object_add(o, "ports", ports);
	char *users = qv_network_users(d, net->name);
	json_object_object_add(o, "used_by", users ? json_object_new_string(users) : NULL);
	free(users);
	if (net->dhcp_start) {
		json_object *dm = json_object_new_object();
		bool running = net->dnsmasq && qv_dnsmasq_running(net->dnsmasq, NULL);
		json_object_object_add(dm, "running", json_object_new_boolean(running));
		json_object_object_add(dm, "pid", json_object_new_int(
							  running ? qv_dnsmasq_pid(net->dnsmasq) : 0));
		json_object_object_add(o, "dnsmasq", dm);
		char path[PATH_MAX];
		struct qv_lease *leases = NULL;
		size_t nl = 0;
		json_object *arr = json_object_new_array();
		snprintf(path, sizeof(path), "%s/leases", net->run_dir);
		if (qv_dnsmasq_read_leases(path, &leases, &nl, NULL) >= 0)
			for (size_t i = 0; i < nl; i++) {
				char mac[QV_MAC_STRLEN];
				json_object *l = json_object_new_object();
				json_object_object_add(l, "mac", json_object_new_string(
									 qv_mac_format(&leases[i].mac, mac)));
				json_object_object_add(l, "ip", json_object_new_string(leases[i].ip));
				json_object_object_add(l, "hostname",
						       json_object_new_string(leases[i].hostname));
				json_object_object_add(l, "expiry",
						       json_object_new_int64(leases[i].expiry));
				json_object_array_add(arr, l);
			}
		free(leases);
		json_object_object_add(o, "leases", arr);
	}
	return o;
}

/* --- daemon start / stop ----------------------------------------------------- */

static int load_one(const char *name, const char *spec_json, void *ud)
{
	struct qv_netreg *reg = ud;
	struct qv_error err = {};
	_cleanup_json_ json_object *j = json_tokener_parse(spec_json);
	struct qv_network *net = NULL;
	bool created;

	if (qv_network_parse(j, &net, &err) < 0) {
		log_error("Stored network %s does not validate (%s), skipping it", name,
			  err.message);
		return 0;
	}
	if (network_attach(reg, net) < 0) {
		qv_network_free(net);
		return -ENOMEM;
	}
	net->next = reg->nets;
	reg->nets = net;
	if (network_activate(net, &created, &err) < 0) {
		log_error("Network %s: cannot bring it up: %s", name, err.message);
		snprintf(net->last_error, sizeof(net->last_error), "%s", err.message);
	} else {
		log_info("Network %s: bridge %s ready%s", name, net->bridge,
			 net->dnsmasq ? ", dnsmasq running" : "");
	}
	return 0;
}

int qv_net_registry_load(struct qv_daemon *d)
{
	struct qv_error err = {};
	struct qv_netreg *reg = qv_netreg_get(d, &err);
	int r;

	if (!reg) {
		log_error("Networking unavailable: %s", err.message);
		return 0; /* VMs without NICs still work */
	}
	r = qv_state_net_list(d->state, load_one, reg);
	if (r < 0)
		return r;
	qv_net_reconcile_taps(d);
	return 0;
}

void qv_net_registry_free(struct qv_daemon *d)
{
	struct qv_netreg *reg = d->net_state;

	if (!reg)
		return;
	/* dnsmasq keeps serving running VMs across a daemon restart. */
	while (reg->nets) {
		struct qv_network *n = reg->nets;
		reg->nets = n->next;
		qv_network_free(n);
	}
	qv_netlink_free(reg->nl);
	free(reg);
	d->net_state = NULL;
}
