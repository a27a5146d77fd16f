/* SPDX-License-Identifier: MIT */
/* The snapshot tree model and image helpers (storage/snapshot.h). */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <unistd.h>

#include "common/macro.h"
#include "storage/snapshot.h"

/* root <- a <- b (current), root <- c: a branch point at root. */
static const char *TREE =
	"{\"seq\": 4, \"current\": \"b\", \"snapshots\": ["
	"{\"name\": \"root\", \"parent\": null, \"state\": \"ok\", \"disks\": "
	"[{\"index\": 0, \"path\": \"/d/orig.raw\", \"format\": \"raw\"}]},"
	"{\"name\": \"a\", \"parent\": \"root\", \"state\": \"ok\", \"disks\": "
	"[{\"index\": 0, \"path\": \"/d/ov1.qcow2\", \"format\": \"qcow2\"}]},"
	"{\"name\": \"b\", \"parent\": \"a\", \"state\": \"ok\", \"memory\": \"/d/mem3\", \"disks\": "
	"[{\"index\": 0, \"path\": \"/d/ov2.qcow2\", \"format\": \"qcow2\"}]},"
	"{\"name\": \"c\", \"parent\": \"root\", \"state\": \"deleting\", \"disks\": "
	"[{\"index\": 0, \"path\": \"/d/ov4.qcow2\", \"format\": \"qcow2\"}]}]}";

Test(snapshot_tree, model)
{
	json_object *t = json_tokener_parse(TREE), *child = NULL;
	struct qv_error err = {};
	bool active;

	cr_assert_eq(qv_snap_tree_validate(t, &err), 0, "%s", err.message);
	cr_assert_eq(qv_snap_children(t, "root", NULL, &active), 2);
	cr_assert_not(active);
	cr_assert_eq(qv_snap_children(t, "b", &child, &active), 1);
	cr_assert(active);
	cr_assert_null(child);
	cr_assert_eq(qv_snap_children(t, "a", &child, NULL), 1);
	cr_assert_str_eq(qv_snap_str(child, "name"), "b");
	cr_assert_eq(qv_snap_children(t, "c", NULL, NULL), 0);
	cr_assert_eq(qv_snap_depth(t, "b"), 1);
	cr_assert_eq(qv_snap_depth(t, "a"), 2);
	cr_assert_eq(qv_snap_depth(t, "root"), 3);
	cr_assert_eq(qv_snap_depth(t, "c"), 0);
	cr_assert_not(qv_snap_on_current_path(t, "c"));
	cr_assert_str_eq(qv_snap_disk_path(qv_snap_find(t, "a"), 0), "/d/ov1.qcow2");
	cr_assert_null(qv_snap_disk_path(qv_snap_find(t, "a"), 1));
	cr_assert(qv_snap_references(t, "/d/mem3"));
	cr_assert(qv_snap_references(t, "/d/orig.raw"));
	cr_assert_not(qv_snap_references(t, "/d/ov9.qcow2"));
	cr_assert_eq(qv_snap_next_seq(t), 5);
	qv_snap_remove(t, "c");
	cr_assert_null(qv_snap_find(t, "c"));
	cr_assert_eq(qv_snap_children(t, "root", NULL, NULL), 1);
	json_object_put(t);
}

static void bad(const char *json, const char *needle)
{
	json_object *t = json_tokener_parse(json);
	struct qv_error err = {};

	cr_assert_not_null(t, "%s", json);
	cr_assert_eq(qv_snap_tree_validate(t, &err), -EINVAL, "accepted: %s", json);
	cr_assert(strstr(err.message, needle), "%s: %s", json, err.message);
	json_object_put(t);
}

Test(snapshot_tree, damaged_documents_are_refused)
{
	bad("[]", "not an object");
	bad("{\"snapshots\": [{\"name\": \"../x\", \"state\": \"ok\", \"disks\": []}]}",
	    "valid name");
	bad("{\"snapshots\": [{\"name\": \"x\", \"state\": \"weird\", \"disks\": []}]}", "bad state");
	bad("{\"snapshots\": [{\"name\": \"x\", \"state\": \"ok\", \"disks\": "
	    "[{\"index\": 0, \"path\": \"rel.img\", \"format\": \"raw\"}]}]}", "bad disk entry");
	bad("{\"snapshots\": [{\"name\": \"x\", \"parent\": \"y\", \"state\": \"ok\", \"disks\": []}]}",
	    "unknown parent");
	bad("{\"current\": \"z\", \"snapshots\": []}", "unknown current");
	bad("{\"snapshots\": [{\"name\": \"x\", \"parent\": \"y\", \"state\": \"ok\", \"disks\": []},"
	    "{\"name\": \"y\", \"parent\": \"x\", \"state\": \"ok\", \"disks\": []}]}", "loop");
}

Test(snapshot_tree, names)
{
	cr_assert(qv_snapshot_name_valid("before-upgrade_2.1"));
	cr_assert_not(qv_snapshot_name_valid(""));
	cr_assert_not(qv_snapshot_name_valid("-x"));
	cr_assert_not(qv_snapshot_name_valid("a/b"));
	cr_assert_not(qv_snapshot_name_valid(".hidden"));
}

Test(snapshot_image, overlay_and_size)
{
	char dir[] = "/tmp/qvt-snap-XXXXXX", base[64], ov[64];
	struct qv_error err = {};
	uint64_t size = 0;
	int fd;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(base, sizeof(base), "%s/base.raw", dir);
	snprintf(ov, sizeof(ov), "%s/ov.qcow2", dir);
	fd = open(base, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	cr_assert_eq(ftruncate(fd, 3 << 20), 0);
	cr_assert_eq(qv_snapshot_image_size(fd, false, &size, &err), 0);
	cr_assert_eq(size, 3 << 20);
	close(fd);
	cr_assert_eq(qv_snapshot_overlay_create(ov, base, "raw", size, &err), 0, "%s", err.message);
	cr_assert_eq(qv_snapshot_overlay_create(ov, base, "raw", size, &err), -EEXIST);
	fd = open(ov, O_RDONLY | O_CLOEXEC);
	size = 0;
	cr_assert_eq(qv_snapshot_image_size(fd, true, &size, NULL), 0);
	cr_assert_eq(size, 3 << 20);
	close(fd);
	cr_assert_lt(qv_snapshot_overlay_create(ov, "relative.raw", "raw", size, NULL), 0);
	unlink(ov);
	unlink(base);
	rmdir(dir);
}
