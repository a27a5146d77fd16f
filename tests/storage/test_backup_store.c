/* SPDX-License-Identifier: MIT */
/* storage/backup-store.c and backup-restore.c without QEMU running:
 * retention plans, chains, metadata validation, the qcow2 cluster walk and
 * a restore of a hand-made chain (qemu-img and qemu-io write the
 * incremental). */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/json.h"
#include "storage/backup-restore.h"
#include "storage/backup-store.h"
#include "storage/qcow2-create.h"

#define DAY 86400000LL

static struct qv_backup_meta *meta(const char *id, const char *vm, const char *parent,
				   int64_t created)
{
	struct qv_backup_meta *m = calloc(1, sizeof(*m));

	m->id = strdup(id);
	m->vm = strdup(vm);
	m->parent = parent ? strdup(parent) : NULL;
	m->incremental = parent != NULL;
	m->chain = strdup(parent ? parent : id);
	m->created_ms = created;
	m->n_disks = 1;
	m->disks = calloc(1, sizeof(*m->disks));
	m->disks[0] = (struct qv_backup_disk){ .source = strdup("/x.qcow2"),
					       .source_format = strdup("qcow2"),
					       .virtual_size = 1 << 20,
					       .file = strdup(parent ? "disk0.qcow2" : "disk0.raw"),
					       .format = strdup(parent ? "qcow2" : "raw"),
					       .checksum = 0x1234 };
	return m;
}

Test(backup_store, prune_keep_last_keeps_the_chain)
{
	/* F1 <- I1 <- I2, F2 <- I3 (vm a), G1 (vm b) */
	struct qv_backup_meta *l[] = {
		meta("F1", "a", NULL, 1 * DAY), meta("I1", "a", "F1", 1 * DAY + 1),
		meta("I2", "a", "I1", 1 * DAY + 2), meta("G1", "b", NULL, 1 * DAY + 3),
		meta("F2", "a", NULL, 2 * DAY), meta("I3", "a", "F2", 2 * DAY + 1),
	};
	bool keep[6];

	qv_backup_prune_plan(l, 6, 1, 0, keep);
	cr_assert(!keep[0] && !keep[1] && !keep[2], "old chain of a goes");
	cr_assert(keep[3], "b's newest stays (retention is per VM)");
	cr_assert(keep[4] && keep[5], "I3 and the full it needs stay");

	/* keep_daily 2: the newest of each of the 2 latest days: I3 (day 2),
	 * I2 (day 1) -> and their chains */
	qv_backup_prune_plan(l, 6, 0, 2, keep);
	cr_assert(keep[0] && keep[1] && keep[2] && keep[4] && keep[5] && keep[3]);
	qv_backup_prune_plan(l, 6, 0, 1, keep);
	cr_assert(!keep[0] && !keep[1] && !keep[2] && keep[4] && keep[5]);

	size_t *idx = NULL, n = 0;
	cr_assert_eq(qv_backup_chain(l, 6, 2, &idx, &n, NULL), 0);
	cr_assert_eq(n, 3);
	cr_assert(idx[0] == 0 && idx[1] == 1 && idx[2] == 2);
	free(idx);
	free(l[1]->parent);
	l[1]->parent = strdup("gone");
	struct qv_error e = {};
	cr_assert_eq(qv_backup_chain(l, 6, 2, &idx, &n, &e), -ENOENT);
	cr_assert(strstr(e.message, "gone"), "%s", e.message);
	for (size_t i = 0; i < 6; i++)
		qv_backup_meta_free(l[i]);
}

Test(backup_store, metadata_round_trip_and_hostile_input)
{
	struct qv_backup_meta *m = meta("vm-20260101-000000", "vm", NULL, 5), *back = NULL;
	struct qv_error e = {};
	json_object *j = qv_backup_meta_to_json(m);

	cr_assert_eq(qv_backup_meta_from_json(j, &back, &e), 0, "%s", e.message);
	cr_assert_str_eq(back->id, m->id);
	cr_assert_eq(back->disks[0].checksum, 0x1234);
	qv_backup_meta_free(back);
	/* a file name that leaves the backup directory */
	json_object *d0 = json_object_array_get_idx(json_object_object_get(j, "disks"), 0);
	json_object_object_add(d0, "file", json_object_new_string("../../etc/shadow"));
	cr_assert_eq(qv_backup_meta_from_json(j, &back, &e), -EINVAL);
	json_object_object_add(d0, "file", json_object_new_string("disk0.raw"));
	json_object_object_add(j, "id", json_object_new_string("../x"));
	cr_assert_eq(qv_backup_meta_from_json(j, &back, &e), -EINVAL);
	json_object_put(j);
	qv_backup_meta_free(m);
	cr_assert(!qv_backup_id_valid(".hidden"));
	cr_assert(!qv_backup_id_valid("a/b"));
	cr_assert(qv_backup_id_valid("web1-20260101-000000-2"));
}

static void sh(const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	cr_assert_eq(system(cmd), 0, "%s", cmd);
}

static int count_cluster(uint64_t g, uint64_t h, uint64_t len, bool zero, void *ud)
{
	uint64_t *seen = ud;

	seen[zero ? 1 : 0] += len;
	return 0;
}

/* A store with one full (raw) and one incremental (qcow2 holding two
 * changed clusters and one zeroed cluster): the restore equals the image
 * the incremental describes; verify catches a changed byte. */
Test(backup_store, restore_applies_incremental_clusters)
{
	char dir[] = "/var/tmp/qv-bkstore-XXXXXX", path[256], store[256];
	struct qv_backup_meta *l[2];
	struct qv_error e = {};
	uint64_t seen[2] = { 0, 0 }, size = 0;

	if (system("command -v qemu-io >/dev/null && command -v qemu-img >/dev/null") != 0)
		cr_skip_test("qemu-img/qemu-io not installed");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(store, sizeof(store), "%s/store", dir);
	sh("mkdir -p %s/F %s/I %s/pool", store, store, dir);
	/* full: 1 MiB of 0x11 */
	sh("head -c 1048576 /dev/zero | tr '\\0' '\\021' > %s/F/disk0.raw", store);
	/* the target an incremental backup starts from, written by qvisor */
	snprintf(path, sizeof(path), "%s/I/disk0.qcow2", store);
	int tfd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
	cr_assert_eq(qv_qcow2_create_empty(tfd, 1 << 20, &e), 0, "%s", e.message);
	close(tfd);
	sh("qemu-img check -q %s", path);
	sh("qemu-io -f qcow2 -c 'write -P 0x22 65536 65536' -c 'write -P 0x33 524288 65536' "
	   "-c 'write -z 131072 65536' %s/I/disk0.qcow2 >/dev/null", store);
	/* expected: the same writes on a copy of the full */
	sh("cp %s/F/disk0.raw %s/want.raw && qemu-io -f raw -c 'write -P 0x22 65536 65536' "
	   "-c 'write -P 0x33 524288 65536' -c 'write -z 131072 65536' %s/want.raw >/dev/null",
	   store, dir, dir);

	snprintf(path, sizeof(path), "%s/I/disk0.qcow2", store);
	int fd = open(path, O_RDONLY);
	cr_assert_eq(qv_qcow2_walk_clusters(fd, &size, count_cluster, seen, &e), 0, "%s", e.message);
	close(fd);
	cr_assert_eq(size, 1 << 20);
	cr_assert_eq(seen[0], 2 * 65536, "data clusters: %lu", (unsigned long)seen[0]);
	cr_assert_eq(seen[1], 65536, "zero clusters: %lu", (unsigned long)seen[1]);

	l[0] = meta("F", "v", NULL, 1);
	l[1] = meta("I", "v", "F", 2);
	for (int i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "%s/%s/%s", store, l[i]->id, l[i]->disks[0].file);
		cr_assert_eq(qv_copy_checksum_file(path, &l[i]->disks[0].checksum, NULL), 0);
	}
	snprintf(path, sizeof(path), "%s/pool/r.raw", dir);
	cr_assert_eq(qv_backup_restore_disk(store, l, 2, 0, path, NULL, &e), 0, "%s", e.message);
	sh("cmp %s %s/want.raw", path, dir);
	/* never replaces */
	cr_assert_eq(qv_backup_restore_disk(store, l, 2, 0, path, NULL, &e), -EEXIST);
	cr_assert_eq(qv_backup_verify(store, l[1], &e), 0, "%s", e.message);
	sh("printf 'X' | dd of=%s/I/disk0.qcow2 bs=1 seek=300000 conv=notrunc status=none", store);
	cr_assert_eq(qv_backup_verify(store, l[1], &e), -EILSEQ);
	qv_backup_meta_free(l[0]);
	qv_backup_meta_free(l[1]);
	sh("rm -rf %s", dir);
}

static uint64_t be64_read(int fd, off_t off)
{
	uint8_t b[8];

	cr_assert_eq(pread(fd, b, 8, off), 8);
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | b[i];
	return v;
}

/* A hostile qcow2 (a disk a compromised QEMU rewrote, or an incremental
 * target it wrote) whose L2 entries all point at one data cluster: the
 * walk refuses it instead of writing the virtual size out of a file that
 * holds one cluster (offline backup, restore). */
Test(backup_store, qcow2_shared_cluster_refused)
{
	char dir[] = "/var/tmp/qv-bkdup-XXXXXX", path[128], out[128];
	struct qv_error e = {};
	uint64_t size = 0;

	if (system("command -v qemu-io >/dev/null && command -v qemu-img >/dev/null") != 0)
		cr_skip_test("qemu-img/qemu-io not installed");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/evil.qcow2", dir);
	snprintf(out, sizeof(out), "%s/out.raw", dir);
	sh("qemu-img create -q -f qcow2 -o cluster_size=65536 %s 16M && "
	   "qemu-io -f qcow2 -c 'write -P 0x5a 0 65536' %s >/dev/null", path, path);
	int fd = open(path, O_RDWR | O_CLOEXEC), dst = open(out, O_RDWR | O_CREAT | O_EXCL, 0600);
	cr_assert_geq(fd, 0);
	cr_assert_geq(dst, 0);
	/* the honest image applies */
	cr_assert_eq(qv_qcow2_apply(fd, dst, &size, NULL, &e), 0, "%s", e.message);
	cr_assert_eq(size, 16 << 20);
	/* every L2 entry of the first table := the entry of guest cluster 0 */
	uint64_t l1 = be64_read(fd, 40);
	uint64_t l2 = be64_read(fd, (off_t)l1) & 0x00fffffffffffe00ULL;
	cr_assert_neq(l2, 0);
	uint8_t ent[8];
	cr_assert_eq(pread(fd, ent, 8, (off_t)l2), 8);
	for (int i = 1; i < 256; i++)
		cr_assert_eq(pwrite(fd, ent, 8, (off_t)(l2 + 8 * i)), 8);
	struct stat st;
	fstat(fd, &st);
	cr_assert_lt(st.st_size, 256 * 65536, "the test image is not small (%ld)", (long)st.st_size);
	cr_assert(ftruncate(dst, 0) == 0 && ftruncate(dst, 16 << 20) == 0);
	e = (struct qv_error){};
	cr_assert_eq(qv_qcow2_apply(fd, dst, &size, NULL, &e), -EINVAL,
		     "a qcow2 mapping one cluster 256 times was applied");
	cr_assert_str_eq(e.reason, "invalid-argument");
	cr_assert(strstr(e.message, "more than once"), "%s", e.message);
	fstat(dst, &st);
	cr_assert_leq((uint64_t)st.st_blocks * 512, (uint64_t)8 << 20,
		      "%ld blocks written before the refusal", (long)st.st_blocks);
	close(fd);
	close(dst);
	sh("rm -rf %s", dir);
}

/* A full backup file with zero blocks: holes punched, same checksum. */
Test(backup_store, sparsify_keeps_the_checksum)
{
	char dir[] = "/var/tmp/qv-bksparse-XXXXXX", path[128];
	uint64_t before = 0, after = 0, again = 0;
	struct stat st0, st1;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/disk0.raw", dir);
	sh("head -c 4194304 /dev/zero > %s && head -c 65536 /dev/urandom | "
	   "dd of=%s bs=64k seek=17 conv=notrunc status=none && truncate -s 8M %s", path, path, path);
	cr_assert_eq(qv_copy_checksum_file(path, &before, NULL), 0);
	int fd = open(path, O_RDWR);
	cr_assert_geq(fd, 0);
	fstat(fd, &st0);
	cr_assert_eq(qv_backup_sparsify(fd, &after, NULL), 0);
	fsync(fd);
	fstat(fd, &st1);
	close(fd);
	cr_assert_eq(after, before, "checksum changed");
	cr_assert_eq(qv_copy_checksum_file(path, &again, NULL), 0);
	cr_assert_eq(again, before);
	cr_assert_lt(st1.st_blocks, st0.st_blocks / 4, "no holes punched (%ld -> %ld blocks)",
		     (long)st0.st_blocks, (long)st1.st_blocks);
	sh("rm -rf %s", dir);
}

/* An empty qcow2 written by qvisor is one QEMU accepts: qemu-img check is
 * clean and reports the size, also when the L1 table spans clusters. */
Test(backup_store, empty_qcow2_is_valid)
{
	char dir[] = "/var/tmp/qv-bkq2-XXXXXX", path[256];
	static const uint64_t sizes[] = { 512, 1ULL << 30, 5ULL << 40 };
	struct qv_error e = {};
	uint64_t seen[2] = { 0, 0 }, size = 0;

	if (system("command -v qemu-img >/dev/null") != 0)
		cr_skip_test("qemu-img not installed");
	cr_assert_not_null(mkdtemp(dir));
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		snprintf(path, sizeof(path), "%s/e%zu.qcow2", dir, i);
		int fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
		cr_assert_eq(qv_qcow2_create_empty(fd, sizes[i], &e), 0, "%s", e.message);
		cr_assert_eq(qv_qcow2_walk_clusters(fd, &size, count_cluster, seen, &e), 0, "%s",
			     e.message);
		cr_assert_eq(size, sizes[i]);
		cr_assert_eq(seen[0] + seen[1], 0);
		close(fd);
		sh("qemu-img check -q %s", path);
		sh("qemu-img info --output=json %s | grep -q '\"virtual-size\": %llu'", path,
		   (unsigned long long)sizes[i]);
		sh("qemu-io -f qcow2 -c 'write -P 0x5a 0 512' -c 'read -P 0x5a 0 512' %s >/dev/null",
		   path);
		sh("qemu-img check -q %s", path);
	}
	int fd = open(path, O_RDWR);
	cr_assert_eq(qv_qcow2_create_empty(fd, 1000, &e), -EINVAL);
	close(fd);
	sh("rm -rf %s", dir);
}
