/* SPDX-License-Identifier: MIT */
/* spec.cloud_init: the documents of a cloud-init NoCloud seed. */
#include "common/json.h"
#include "common/macro.h"
#include "qemu/spec-internal.h"

#define INVALID(errp, ...) qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT, __VA_ARGS__)

/* A document: a string of at most VM_CLOUD_INIT_MAX bytes without NUL. */
static int get_doc(json_object *o, const char *key, const char *path, char **dst,
		   struct qv_error *errp)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || json_object_is_type(v, json_type_null))
		return 0;
	if (!json_object_is_type(v, json_type_string))
		return INVALID(errp, "%s.%s: must be a string", path, key);
	size_t len = (size_t)json_object_get_string_len(v);
	const char *s = json_object_get_string(v);
	if (len > VM_CLOUD_INIT_MAX)
		return INVALID(errp, "%s.%s: %zu bytes, at most %d", path, key, len, VM_CLOUD_INIT_MAX);
	if (strlen(s) != len)
		return INVALID(errp, "%s.%s: contains a NUL character", path, key);
	return (*dst = strdup(s)) ? 0 : -ENOMEM;
}

/* instance-id and local-hostname come from the uuid and the name. */
static bool sets_generated_key(const char *md)
{
	for (const char *line = md; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
		if (!strncmp(line, "instance-id:", 12) || !strncmp(line, "local-hostname:", 15))
			return true;
	return false;
}

int spec_parse_cloud_init(json_object *o, const char *path, struct vm_cloud_init **ret,
			  struct qv_error *errp)
{
	static const char *const keys[] = { "user_data", "meta_data", "network_config", NULL };
	struct vm_cloud_init *ci;
	int r;

	if (!json_object_is_type(o, json_type_object))
		return INVALID(errp, "%s: must be an object", path);
	if ((r = spec_check_keys(o, keys, path, errp)) < 0)
		return r;
	if (!(ci = calloc(1, sizeof(*ci))))
		return -ENOMEM;
	if ((r = get_doc(o, "user_data", path, &ci->user_data, errp)) < 0 ||
	    (r = get_doc(o, "meta_data", path, &ci->meta_data, errp)) < 0 ||
	    (r = get_doc(o, "network_config", path, &ci->network_config, errp)) < 0)
		goto fail;
	if (ci->meta_data && sets_generated_key(ci->meta_data)) {
		r = INVALID(errp, "%s.meta_data: instance-id and local-hostname are set from the "
			    "VM's uuid and name", path);
		goto fail;
	}
	if ((!ci->user_data && !(ci->user_data = strdup(""))) ||
	    (!ci->meta_data && !(ci->meta_data = strdup("")))) {
		r = -ENOMEM;
		goto fail;
	}
	*ret = ci;
	return 0;
fail:
	spec_cloud_init_free(ci);
	return r;
}

json_object *spec_cloud_init_to_json(const struct vm_cloud_init *ci)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "user_data", json_object_new_string(ci->user_data));
	json_object_object_add(o, "meta_data", json_object_new_string(ci->meta_data));
	if (ci->network_config)
		json_object_object_add(o, "network_config",
				       json_object_new_string(ci->network_config));
	return o;
}

struct vm_cloud_init *spec_cloud_init_dup(const struct vm_cloud_init *src, bool *ok)
{
	struct vm_cloud_init *d;

	if (!src)
		return NULL;
	d = calloc(1, sizeof(*d));
	if (d && (d->user_data = strdup(src->user_data)) && (d->meta_data = strdup(src->meta_data)) &&
	    (!src->network_config || (d->network_config = strdup(src->network_config))))
		return d;
	spec_cloud_init_free(d);
	*ok = false;
	return NULL;
}

void spec_cloud_init_free(struct vm_cloud_init *ci)
{
	if (!ci)
		return;
	free(ci->user_data);
	free(ci->meta_data);
	free(ci->network_config);
	free(ci);
}

/* A disk serial: what virtio-blk shows the guest (at most 20 bytes). */
bool spec_disk_serial_valid(const char *s)
{
	size_t l = strlen(s);

	if (!l || l > VM_DISK_SERIAL_MAX)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
		      strchr("_.-", *s)))
			return false;
	return true;
}
