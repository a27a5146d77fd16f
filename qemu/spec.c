/* SPDX-License-Identifier: MIT */
/* VM spec: parse + validate (strict: unknown fields are errors), free, dup.
 * Canonical JSON output lives in spec-json.c, limits/restart in spec-limits.c,
 * grammars and typed readers in spec-util.c. */
#include <inttypes.h>

#include "common/json.h"
#include "common/macro.h"
#include "qemu/spec-internal.h"

#define INVALID(errp, ...) qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT, __VA_ARGS__)

static int dup_into(char **dst, const char *s)
{
	char *d = strdup(s);

	if (!d)
		return -ENOMEM;
	free(*dst);
	*dst = d;
	return 0;
}

/* Optional string with a grammar check: 0 (set or absent) or <0. */
static int opt_path(json_object *o, const char *key, const char *path, char **dst,
		    struct qv_error *errp)
{
	const char *s;
	int r = spec_get_path(o, key, path, &s, errp);

	if (r == -ENOENT)
		return 0;
	return r < 0 ? r : dup_into(dst, s);
}

static int parse_name(json_object *o, struct vm_spec *spec, struct qv_error *errp)
{
	const char *s;
	int r = spec_get_string(o, "name", "spec", &s, errp);

	if (r == -ENOENT)
		return INVALID(errp, "spec.name: required");
	if (r < 0)
		return r;
	if (strlen(s) > VM_NAME_MAX)
		return INVALID(errp, "spec.name: too long (%zu characters, at most %d)", strlen(s),
			       VM_NAME_MAX);
	if (!vm_name_valid(s))
		return INVALID(errp, "spec.name: \"%.64s\" is not a valid name (letters, digits, "
			       "'_', '.', '-'; must start with a letter or digit)", s);
	return dup_into(&spec->name, s);
}

static int parse_memory(json_object *o, struct vm_spec *spec, struct qv_error *errp)
{
	json_object *v;
	uint64_t mib;

	if (!json_object_object_get_ex(o, "memory", &v) || json_object_is_type(v, json_type_null))
		return 0;
	if (json_object_is_type(v, json_type_int)) {
		int64_t i = json_object_get_int64(v);
		mib = i < 0 ? 0 : (uint64_t)i;
	} else if (json_object_is_type(v, json_type_string)) {
		uint64_t bytes;
		int r = spec_parse_size(json_object_get_string(v), 1ULL << 20, &bytes);
		if (r == -ERANGE)
			bytes = UINT64_MAX;
		else if (r < 0)
			return INVALID(errp, "spec.memory: must be MiB or a size like \"512M\", "
				       "\"2G\"");
		if (bytes % (1ULL << 20))
			return INVALID(errp, "spec.memory: must be a whole number of MiB");
		mib = bytes >> 20;
	} else
		return INVALID(errp, "spec.memory: must be an integer (MiB) or a size string");
	if (mib < VM_MEMORY_MIN_MIB || mib > VM_MEMORY_MAX_MIB)
		return INVALID(errp, "spec.memory: out of range (allowed 16M..1T)");
	spec->memory_mib = mib;
	return 0;
}

static int parse_scalars(json_object *o, struct vm_spec *spec, struct qv_error *errp)
{
	const char *s;
	int64_t i;
	int r;

	r = spec_get_string(o, "uuid", "spec", &s, errp);
	if (r == 0 && !spec_uuid_normalize(s, spec->uuid))
		return INVALID(errp, "spec.uuid: \"%.40s\" is not a canonical uuid "
			       "(xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx, not nil)", s);
	if (r == -ENOENT)
		r = spec_uuid_generate(spec->uuid);
	if (r < 0)
		return qv_error_set(errp, r, NULL, "spec.uuid: cannot generate: %s", strerror(-r));

	r = spec_get_int(o, "vcpus", "spec", 1, VM_VCPUS_MAX, &i, errp);
	if (r == 0)
		spec->vcpus = (uint32_t)i;
	else if (r != -ENOENT)
		return r;

	r = parse_memory(o, spec, errp);
	if (r < 0)
		return r;

	r = spec_get_string(o, "machine", "spec", &s, errp);
	if (r == 0 && !spec_machine_valid(s))
		return INVALID(errp, "spec.machine: \"%.40s\" is not supported (q35, pc, "
			       "pc-q35-X.Y, pc-i440fx-X.Y)", s);
	if (r == 0)
		r = dup_into(&spec->machine, s);
	if (r < 0 && r != -ENOENT)
		return r;

	r = spec_get_string(o, "accel", "spec", &s, errp);
	if (r == 0) {
		int a = vm_accel_from_string(s);
		if (a < 0)
			return INVALID(errp, "spec.accel: must be \"auto\", \"kvm\" or \"tcg\"");
		spec->accel = (enum vm_accel)a;
	} else if (r != -ENOENT)
		return r;

	if ((r = opt_path(o, "kernel", "spec", &spec->kernel, errp)) < 0 ||
	    (r = opt_path(o, "initrd", "spec", &spec->initrd, errp)) < 0)
		return r;
	r = spec_get_string(o, "cmdline", "spec", &s, errp);
	if (r == 0) {
		if (strlen(s) > VM_CMDLINE_MAX)
			return INVALID(errp, "spec.cmdline: too long (at most %d characters)",
				       VM_CMDLINE_MAX);
		for (const char *p = s; *p; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				return INVALID(errp, "spec.cmdline: must not contain newlines or "
					       "control characters");
		r = dup_into(&spec->cmdline, s);
	}
	return r == -ENOENT ? 0 : r;
}

static int parse_disk(json_object *d, const char *path, struct vm_disk *disk,
		      struct qv_error *errp)
{
	static const char *const keys[] = { "path", "format", "readonly", "limits", "serial", NULL };
	static const char *const lkeys[] = { "rbps", "wbps", "riops", "wiops", "weight", NULL };
	const char *s;
	char sub[96];
	json_object *lim;
	int64_t i;
	int r;

	if ((r = spec_check_keys(d, keys, path, errp)) < 0)
		return r;
	r = spec_get_path(d, "path", path, &s, errp);
	if (r == -ENOENT)
		return INVALID(errp, "%s.path: required", path);
	if (r < 0 || (r = dup_into(&disk->path, s)) < 0)
		return r;
	r = spec_get_string(d, "format", path, &s, errp);
	if (r == 0) {
		int f = vm_disk_format_from_string(s);
		if (f < 0)
			return INVALID(errp, "%s.format: must be \"raw\" or \"qcow2\"", path);
		disk->format = (enum vm_disk_format)f;
	} else if (r != -ENOENT)
		return r;
	r = spec_get_bool(d, "readonly", path, &disk->readonly, errp);
	if (r < 0 && r != -ENOENT)
		return r;
	r = spec_get_string(d, "serial", path, &s, errp);
	if (r == 0 && !spec_disk_serial_valid(s))
		return INVALID(errp, "%s.serial: 1-%d of [A-Za-z0-9_.-]", path, VM_DISK_SERIAL_MAX);
	if (r == 0)
		snprintf(disk->serial, sizeof(disk->serial), "%s", s);
	else if (r != -ENOENT)
		return r;
	if (!json_object_object_get_ex(d, "limits", &lim) || json_object_is_type(lim, json_type_null))
		return 0;
	snprintf(sub, sizeof(sub), "%s.limits", path);
	if ((r = spec_check_keys(lim, lkeys, sub, errp)) < 0)
		return r;
	struct { const char *k; uint64_t *dst; bool size; } f[] = {
		{ "rbps", &disk->io_rbps, true }, { "wbps", &disk->io_wbps, true },
		{ "riops", &disk->io_riops, false }, { "wiops", &disk->io_wiops, false },
	};
	for (size_t k = 0; k < ARRAY_SIZE(f); k++) {
		if (f[k].size)
			r = spec_get_size(lim, f[k].k, sub, 1, 1ULL << 40, f[k].dst, errp);
		else if ((r = spec_get_int(lim, f[k].k, sub, 1, 1000000000, &i, errp)) == 0)
			*f[k].dst = (uint64_t)i;
		if (r < 0 && r != -ENOENT)
			return r;
	}
	r = spec_get_int(lim, "weight", sub, 1, 10000, &i, errp);
	if (r == 0)
		disk->io_weight = (uint32_t)i;
	return r == -ENOENT ? 0 : r;
}

static int parse_nic(json_object *n, const char *path, struct vm_nic *nic, struct qv_error *errp)
{
	static const char *const keys[] = { "network", "bridge", "mac", "model", "firewall",
					    NULL };
	static const char *const kinds[] = { "network", "bridge" };
	json_object *fw;
	const char *s;
	int r, have = 0;

	if ((r = spec_check_keys(n, keys, path, errp)) < 0)
		return r;
	for (size_t k = 0; k < ARRAY_SIZE(kinds); k++) {
		r = spec_get_string(n, kinds[k], path, &s, errp);
		if (r == -ENOENT)
			continue;
		if (r < 0)
			return r;
		if (!spec_ifname_valid(s))
			return INVALID(errp, "%s.%s: \"%.40s\" is not a valid name (1-15 of "
				       "letters, digits, '_', '.', '-')", path, kinds[k], s);
		if ((r = dup_into(k == 0 ? &nic->network : &nic->bridge, s)) < 0)
			return r;
		have++;
	}
	if (have != 1)
		return INVALID(errp, "%s: exactly one of \"network\" or \"bridge\" is required",
			       path);
	r = spec_get_string(n, "mac", path, &s, errp);
	if (r == 0 && !spec_mac_normalize(s, nic->mac))
		return INVALID(errp, "%s.mac: \"%.40s\" is not a unicast MAC address "
			       "(xx:xx:xx:xx:xx:xx)", path, s);
	if (r < 0 && r != -ENOENT)
		return r;
	r = spec_get_string(n, "model", path, &s, errp);
	if (r == 0 && !streq(s, "virtio"))
		return INVALID(errp, "%s.model: must be \"virtio\"", path);
	if (r < 0 && r != -ENOENT)
		return r;
	if (json_object_object_get_ex(n, "firewall", &fw) && !json_object_is_type(fw, json_type_null)) {
		char sub[64];
		snprintf(sub, sizeof(sub), "%s.firewall", path);
		if ((r = vm_fw_parse(fw, sub, &nic->fw, errp)) < 0)
			return r;
	}
	return dup_into(&nic->model, "virtio");
}

/* Parse an optional array of objects; `each` fills element i. */
static int parse_array(json_object *o, const char *key, size_t max, size_t elem_size,
		       void **ret_items, size_t *ret_n, struct qv_error *errp,
		       int (*each)(json_object *, const char *, void *, struct qv_error *))
{
	json_object *a;
	char path[64];

	if (!json_object_object_get_ex(o, key, &a) || json_object_is_type(a, json_type_null))
		return 0;
	if (!json_object_is_type(a, json_type_array))
		return INVALID(errp, "spec.%s: must be an array", key);
	size_t n = json_object_array_length(a);
	if (n > max)
		return INVALID(errp, "spec.%s: too many entries (%zu, at most %zu)", key, n, max);
	if (n == 0)
		return 0;
	*ret_items = calloc(n, elem_size);
	if (!*ret_items)
		return -ENOMEM;
	*ret_n = n;
	for (size_t i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "spec.%s[%zu]", key, i);
		int r = each(json_object_array_get_idx(a, i), path,
			     (char *)*ret_items + i * elem_size, errp);
		if (r < 0)
			return r;
	}
	return 0;
}

static int each_disk(json_object *d, const char *path, void *item, struct qv_error *errp)
{
	return parse_disk(d, path, item, errp);
}

static int each_nic(json_object *n, const char *path, void *item, struct qv_error *errp)
{
	return parse_nic(n, path, item, errp);
}

static bool mac_taken(const struct vm_spec *spec, const char *mac)
{
	for (size_t i = 0; i < spec->n_nics; i++)
		if (streq(spec->nics[i].mac, mac))
			return true;
	return false;
}

static int check_devices(struct vm_spec *spec, struct qv_error *errp)
{
	for (size_t i = 0; i < spec->n_disks; i++)
		for (size_t j = 0; j < i; j++)
			if (streq(spec->disks[i].path, spec->disks[j].path))
				return INVALID(errp, "spec.disks[%zu].path: same image as "
					       "spec.disks[%zu]", i, j);
	for (size_t i = 0; i < spec->n_nics; i++)
		for (size_t j = 0; j < i; j++)
			if (spec->nics[i].mac[0] && streq(spec->nics[i].mac, spec->nics[j].mac))
				return INVALID(errp, "spec.nics[%zu].mac: duplicate of "
					       "spec.nics[%zu].mac (%s)", i, j, spec->nics[i].mac);
	/* Generated MACs: stable per (uuid, index), skipping any already taken. */
	for (size_t i = 0; i < spec->n_nics; i++) {
		char mac[18];
		if (spec->nics[i].mac[0])
			continue;
		unsigned salt = (unsigned)i;
		do {
			vm_mac_from_uuid(spec->uuid, salt, mac);
			salt += VM_NICS_MAX;
		} while (mac_taken(spec, mac));
		memcpy(spec->nics[i].mac, mac, sizeof(mac));
	}
	return 0;
}

static int parse_boot(json_object *o, struct vm_spec *spec, struct qv_error *errp)
{
	static const char *const keys[] = { "disk", NULL };
	json_object *b;
	int64_t i;
	int r;

	if (json_object_object_get_ex(o, "boot", &b) && !json_object_is_type(b, json_type_null)) {
		if ((r = spec_check_keys(b, keys, "spec.boot", errp)) < 0)
			return r;
		r = spec_get_int(b, "disk", "spec.boot", 0, VM_DISKS_MAX - 1, &i, errp);
		if (r == -ENOENT)
			return INVALID(errp, "spec.boot.disk: required");
		if (r < 0)
			return r;
		if ((size_t)i >= spec->n_disks)
			return INVALID(errp, "spec.boot.disk: no disk with index %" PRId64
				       " (%zu disks)", i, spec->n_disks);
		if (spec->kernel)
			return INVALID(errp, "spec.boot: cannot be combined with spec.kernel");
		spec->boot_disk = (int)i;
	} else if (!spec->kernel && spec->n_disks > 0)
		spec->boot_disk = 0;
	if (!spec->kernel && spec->boot_disk < 0)
		return INVALID(errp, "spec: nothing to boot: set \"kernel\" or add a disk");
	if (!spec->kernel && (spec->initrd || spec->cmdline))
		return INVALID(errp, "spec.%s: requires spec.kernel",
			       spec->initrd ? "initrd" : "cmdline");
	return 0;
}

static int parse_sections(json_object *o, struct vm_spec *spec, struct qv_error *errp)
{
	static const char *const skeys[] = { "log", NULL };
	json_object *v;
	int r;

	if (json_object_object_get_ex(o, "serial", &v) && !json_object_is_type(v, json_type_null)) {
		if ((r = spec_check_keys(v, skeys, "spec.serial", errp)) < 0)
			return r;
		r = spec_get_bool(v, "log", "spec.serial", &spec->serial_log, errp);
		if (r < 0 && r != -ENOENT)
			return r;
	}
	if (json_object_object_get_ex(o, "limits", &v) && !json_object_is_type(v, json_type_null)) {
		r = spec_parse_limits(v, "spec.limits", &spec->limits, &spec->has_limits, errp);
		if (r < 0)
			return r;
		uint64_t mem = spec->memory_mib << 20;
		if (spec->limits.memory_max && spec->limits.memory_max < mem)
			return INVALID(errp, "spec.limits.memory_max: %" PRIu64 " bytes is below the "
				       "guest memory (%" PRIu64 " MiB); QEMU would be OOM-killed",
				       spec->limits.memory_max, spec->memory_mib);
	}
	if (json_object_object_get_ex(o, "resources", &v) &&
	    !json_object_is_type(v, json_type_null) &&
	    (r = spec_parse_resources(v, "spec.resources", spec, errp)) < 0)
		return r;
	r = spec_get_bool(o, "guest_agent", "spec", &spec->guest_agent, errp);
	if (r < 0 && r != -ENOENT)
		return r;
	r = spec_get_bool(o, "ha", "spec", &spec->ha, errp);
	if (r < 0 && r != -ENOENT)
		return r;
	if (json_object_object_get_ex(o, "balloon", &v) && !json_object_is_type(v, json_type_null) &&
	    (r = spec_parse_balloon(v, "spec.balloon", spec, errp)) < 0)
		return r;
	if (json_object_object_get_ex(o, "cloud_init", &v) && !json_object_is_type(v, json_type_null) &&
	    (r = spec_parse_cloud_init(v, "spec.cloud_init", &spec->cloud_init, errp)) < 0)
		return r;
	if (json_object_object_get_ex(o, "backup", &v) && !json_object_is_type(v, json_type_null) &&
	    (r = spec_parse_backup(v, "spec.backup", &spec->backup, errp)) < 0)
		return r;
	if (json_object_object_get_ex(o, "restart", &v) && !json_object_is_type(v, json_type_null))
		return spec_parse_restart(v, "spec.restart", &spec->restart, errp);
	return 0;
}

static struct vm_spec *spec_new(void)
{
	struct vm_spec *spec = calloc(1, sizeof(*spec));

	if (!spec)
		return NULL;
	spec->vcpus = 1;
	spec->memory_mib = 256;
	spec->accel = VM_ACCEL_AUTO;
	spec->boot_disk = -1;
	spec->serial_log = true;
	spec->limits.memory_swap_max = -1;
	spec->restart = (struct vm_restart){ .policy = VM_RESTART_NO, .max_restarts = 5,
					     .window_s = 300, .backoff_ms = 1000 };
	spec->resources.cpu_shares = VM_SHARES_DEFAULT;
	spec->machine = strdup("q35");
	return spec->machine ? spec : vm_spec_free(spec);
}

int vm_spec_from_json(json_object *obj, struct vm_spec **ret_spec, struct qv_error *errp)
{
	static const char *const keys[] = { "name", "uuid", "vcpus", "memory", "machine",
					    "accel", "kernel", "initrd", "cmdline", "boot",
					    "disks", "nics", "serial", "limits", "restart",
					    "cloud_init", "guest_agent", "resources", "balloon",
					    "backup", "ha", NULL };
	_cleanup_(vm_spec_freep) struct vm_spec *spec = NULL;
	void *items = NULL;
	int r;

	if (!obj || !json_object_is_type(obj, json_type_object))
		return INVALID(errp, "spec: must be a JSON object");
	if ((r = spec_check_keys(obj, keys, "spec", errp)) < 0)
		return r;
	spec = spec_new();
	if (!spec)
		return qv_error_set(errp, ENOMEM, QV_REASON_INTERNAL, "out of memory");
	if ((r = parse_name(obj, spec, errp)) < 0 || (r = parse_scalars(obj, spec, errp)) < 0)
		goto fail;
	r = parse_array(obj, "disks", VM_DISKS_MAX, sizeof(struct vm_disk), &items, &spec->n_disks,
			errp, each_disk);
	spec->disks = items;
	if (r < 0)
		goto fail;
	items = NULL;
	r = parse_array(obj, "nics", VM_NICS_MAX, sizeof(struct vm_nic), &items, &spec->n_nics,
			errp, each_nic);
	spec->nics = items;
	if (r < 0 || (r = check_devices(spec, errp)) < 0 || (r = parse_boot(obj, spec, errp)) < 0 ||
	    (r = parse_sections(obj, spec, errp)) < 0)
		goto fail;
	*ret_spec = TAKE_PTR(spec);
	return 0;
fail:
	if (r == -ENOMEM)
		return qv_error_set(errp, ENOMEM, QV_REASON_INTERNAL, "out of memory");
	return r;
}

int vm_spec_from_string(const char *text, struct vm_spec **ret_spec, struct qv_error *errp)
{
	_cleanup_json_ json_object *obj = NULL;
	json_tokener *tok;
	size_t len;

	if (!text)
		return INVALID(errp, "spec: empty document");
	len = strnlen(text, VM_SPEC_MAX_BYTES + 1);
	if (len > VM_SPEC_MAX_BYTES)
		return INVALID(errp, "spec: document larger than %d bytes", VM_SPEC_MAX_BYTES);
	tok = json_tokener_new_ex(32);
	if (!tok)
		return qv_error_set(errp, ENOMEM, QV_REASON_INTERNAL, "out of memory");
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	obj = json_tokener_parse_ex(tok, text, (int)len);
	enum json_tokener_error jerr = json_tokener_get_error(tok);
	size_t off = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	if (jerr != json_tokener_success || !obj)
		return INVALID(errp, "spec: invalid JSON at offset %zu: %s", off,
			       jerr == json_tokener_continue ? "unexpected end of input"
							     : json_tokener_error_desc(jerr));
	for (; off < len; off++)
		if (!strchr(" \t\r\n", text[off]))
			return INVALID(errp, "spec: trailing data after the JSON object at offset %zu",
				       off);
	return vm_spec_from_json(obj, ret_spec, errp);
}

struct vm_spec *vm_spec_free(struct vm_spec *spec)
{
	if (!spec)
		return NULL;
	free(spec->name);
	free(spec->machine);
	free(spec->kernel);
	free(spec->initrd);
	free(spec->cmdline);
	for (size_t i = 0; spec->disks && i < spec->n_disks; i++)
		free(spec->disks[i].path);
	free(spec->disks);
	for (size_t i = 0; spec->nics && i < spec->n_nics; i++) {
		free(spec->nics[i].network);
		free(spec->nics[i].bridge);
		free(spec->nics[i].model);
		free(spec->nics[i].fw);
	}
	free(spec->nics);
	free(spec->limits.cpuset_cpus);
	free(spec->limits.cpuset_mems);
	spec_cloud_init_free(spec->cloud_init);
	free(spec);
	return NULL;
}

void vm_spec_freep(struct vm_spec **spec)
{
	*spec = vm_spec_free(*spec);
}

static bool sdup(char **dst, const char *src)
{
	*dst = src ? strdup(src) : NULL;
	return !src || *dst;
}

struct vm_spec *vm_spec_dup(const struct vm_spec *src)
{
	struct vm_spec *d;
	bool ok = true;

	if (!src || !(d = calloc(1, sizeof(*d))))
		return NULL;
	*d = *src;
	d->name = d->machine = d->kernel = d->initrd = d->cmdline = NULL;
	d->disks = NULL;
	d->nics = NULL;
	d->n_disks = d->n_nics = 0;
	d->limits.cpuset_cpus = d->limits.cpuset_mems = NULL;
	d->cloud_init = spec_cloud_init_dup(src->cloud_init, &ok);
	ok &= sdup(&d->name, src->name) && sdup(&d->machine, src->machine) &&
	      sdup(&d->kernel, src->kernel) && sdup(&d->initrd, src->initrd) &&
	      sdup(&d->cmdline, src->cmdline) &&
	      sdup(&d->limits.cpuset_cpus, src->limits.cpuset_cpus) &&
	      sdup(&d->limits.cpuset_mems, src->limits.cpuset_mems);
	if (ok && src->n_disks) {
		ok = (d->disks = calloc(src->n_disks, sizeof(*d->disks)));
		for (size_t i = 0; ok && i < src->n_disks; i++, d->n_disks++) {
			d->disks[i] = src->disks[i];
			ok = sdup(&d->disks[i].path, src->disks[i].path);
		}
	}
	if (ok && src->n_nics) {
		ok = (d->nics = calloc(src->n_nics, sizeof(*d->nics)));
		for (size_t i = 0; ok && i < src->n_nics; i++, d->n_nics++) {
			struct vm_nic *n = &d->nics[i];
			*n = src->nics[i];
			n->network = n->bridge = n->model = NULL;
			n->fw = NULL;
			if (src->nics[i].fw && (n->fw = malloc(sizeof(*n->fw))))
				*n->fw = *src->nics[i].fw;
			ok = (!src->nics[i].fw || n->fw) &&
			     sdup(&n->network, src->nics[i].network) &&
			     sdup(&n->bridge, src->nics[i].bridge) &&
			     sdup(&n->model, src->nics[i].model);
		}
	}
	return ok ? d : vm_spec_free(d);
}
