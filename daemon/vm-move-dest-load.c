/* SPDX-License-Identifier: MIT */
/* Cold migration, the destination's record of an incoming move
 * (<state_dir>/move-in/<token>/meta.json) and what its restart does with
 * it (docs/cluster.md "A daemon SIGKILLed mid-move"). */
#include <stdio.h>
#include <string.h>

#include "common/json.h"
#include "common/log.h"
#include "daemon/vm-move-dest.h"

int mv_in_save_meta(struct mv_in *m)
{
	_cleanup_json_ json_object *o = json_object_new_object();
	json_object *disks = json_object_new_array();
	char path[PATH_MAX + 16];

	json_object_object_add(o, "vm", json_object_new_string(m->vm));
	json_object_object_add(o, "token", json_object_new_string(m->token));
	json_object_object_add(o, "phase", json_object_new_string(
				       m->phase == MV_VERIFIED ? "verified" : "receiving"));
	json_object_object_add(o, "spec", json_object_get(m->spec));
	for (size_t i = 0; i < m->n; i++) {
		json_object *dk = json_object_new_object();
		json_object_object_add(dk, "copy", json_object_new_boolean(m->disks[i].copy));
		json_object_object_add(dk, "image", json_object_new_string(m->disks[i].image));
		json_object_object_add(dk, "final", json_object_new_string(m->disks[i].final));
		json_object_object_add(dk, "key", json_object_new_boolean(m->keys[i] != NULL ||
									   m->keys_stored));
		json_object_array_add(disks, dk);
	}
	json_object_object_add(o, "disks", disks);
	snprintf(path, sizeof(path), "%s/meta.json", m->dir);
	return mv_write_json(path, o);
}

/* --- restart --------------------------------------------------------------- */

/* A verified move survives a restart (the source decides: finish or
 * abort); anything still receiving is removed. */
static void load_one(struct qv_daemon *d, const char *dir, const char *token)
{
	char path[PATH_MAX + 16];
	_cleanup_json_ json_object *o = NULL;
	json_object *v, *disks;
	struct mv_in *m;

	snprintf(path, sizeof(path), "%s/meta.json", dir);
	o = mv_read_json(path);
	if (!o || !json_object_object_get_ex(o, "phase", &v) ||
	    !streq(json_object_get_string(v), "verified") || !mv_token_valid(token) ||
	    !json_object_object_get_ex(o, "disks", &disks) ||
	    json_object_array_length(disks) > MV_MAX_DISKS || !(m = calloc(1, sizeof(*m)))) {
		log_info("Removing %s: a move cut before it was verified", dir);
		mv_rm_dir(dir);
		return;
	}
	m->d = d;
	m->phase = MV_VERIFIED;
	snprintf(m->token, sizeof(m->token), "%s", token);
	snprintf(m->dir, sizeof(m->dir), "%s", dir);
	if (json_object_object_get_ex(o, "vm", &v))
		snprintf(m->vm, sizeof(m->vm), "%s", json_object_get_string(v));
	if (json_object_object_get_ex(o, "spec", &v))
		m->spec = json_object_get(v);
	m->n = json_object_array_length(disks);
	for (size_t i = 0; i < m->n; i++) {
		json_object *dk = json_object_array_get_idx(disks, i);
		m->disks[i].fd = -1;
		if (json_object_object_get_ex(dk, "copy", &v))
			m->disks[i].copy = json_object_get_boolean(v);
		if (json_object_object_get_ex(dk, "image", &v))
			snprintf(m->disks[i].image, sizeof(m->disks[i].image), "%s",
				 json_object_get_string(v));
		if (json_object_object_get_ex(dk, "final", &v))
			snprintf(m->disks[i].final, sizeof(m->disks[i].final), "%s",
				 json_object_get_string(v));
		if (json_object_object_get_ex(dk, "key", &v) && json_object_get_boolean(v))
			m->keys_stored = true;
	}
	m->next = mv_incoming;
	mv_incoming = m;
	log_info("VM %s: verified incoming move %s kept; waiting for the source to finish or "
		 "abort it", m->vm, m->token);
}

void mv_dest_load(struct qv_daemon *d)
{
	mv_scan_dir(d, MV_IN_DIR, load_one);
}
