/* SPDX-License-Identifier: MIT */
/* Daemon start: migration records left by a previous daemon. Outgoing
 * ones are resolved from QEMU's own state (migrate.recover), incoming ones
 * re-armed, finished ones kept as tombstones, and vm.migrate drivers
 * resumed last (they talk to the two sides' steps). */
#include "common/json.h"
#include "common/log.h"
#include "daemon/migrate-internal.h"

/* --- daemon start ---------------------------------------------------------- */

struct load_item {
	char *vm;
	char *role;
	char *state;
	char *token;
	char *data;
};

static int load_one(const struct qv_migration_record *rec, void *ud)
{
	struct load_item **items = ud;
	size_t n = 0;

	while ((*items)[n].vm)
		n++;
	struct load_item *nv = realloc(*items, (n + 2) * sizeof(**items));
	if (!nv)
		return -ENOMEM;
	*items = nv;
	nv[n] = (struct load_item){ strdup(rec->vm), strdup(rec->role), strdup(rec->state),
				    rec->token ? strdup(rec->token) : NULL,
				    rec->data_json ? strdup(rec->data_json) : NULL };
	nv[n + 1] = (struct load_item){ 0 };
	return 0;
}

void qv_migrate_registry_load(struct qv_daemon *d)
{
	struct load_item *items = calloc(1, sizeof(*items));

	if (!items || qv_state_migration_list(d->state, load_one, &items) < 0) {
		log_warning("Cannot list migration records, ignoring");
		free(items);
		return;
	}
	for (struct load_item *it = items; it->vm; it++) {
		if (streq(it->role, "driver") || (it->state && streq(it->state, "finished"))) {
			/* drivers: below; finished: a tombstone */
		} else if (streq(it->role, "source")) {
			qv_mig_recover_async(d, it->vm, NULL); /* logs its outcome */
		} else {
			struct qv_mig *m = qv_mig_new(d, it->vm, false);
			_cleanup_json_ json_object *data = it->data ? json_tokener_parse(it->data) : NULL;
			json_object *v;

			if (!m)
				continue;
			snprintf(m->state, sizeof(m->state), "prepared");
			snprintf(m->token, sizeof(m->token), "%s", it->token ? it->token : "");
			if (data && json_object_object_get_ex(data, "created", &v))
				m->created = json_object_get_boolean(v);
			if (data && json_object_object_get_ex(data, "source", &v))
				m->source_uri = strdup(json_object_get_string(v));
			if (data && json_object_object_get_ex(data, "saved_policy", &v))
				m->saved_policy = (enum vm_restart_policy)json_object_get_int(v);
			if (data && json_object_object_get_ex(data, "images", &v) &&
			    json_object_is_type(v, json_type_array)) {
				size_t n = json_object_array_length(v);
				m->images = calloc(n + 1, sizeof(*m->images));
				for (size_t k = 0; m->images && k < n; k++) {
					const char *pth = json_object_get_string(
						json_object_array_get_idx(v, k));
					if (pth && pth[0] == '/')
						m->images[m->n_images++] = strdup(pth);
				}
			}
			qv_mig_dest_rearm(m);
			/* Re-attached as "paused" (QEMU says inmigrate): it is the
			 * incoming side of a migration, and per-VM polls (block
			 * stats, balloon) leave a migrating VM alone. */
			struct qv_vm *vm = qv_vm_find(d, it->vm);
			if (vm && vm->inst && vm->state != QV_VM_MIGRATING)
				qv_vm_set_state(vm, QV_VM_MIGRATING, NULL);
		}
		free(it->vm);
		free(it->role);
		free(it->state);
		free(it->token);
		free(it->data);
	}
	free(items);
	qv_mig_resume_drivers_after_recovery(d);
}
