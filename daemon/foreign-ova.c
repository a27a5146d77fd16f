/* SPDX-License-Identifier: MIT */
/* image.import-ova on the worker thread: extract into a private directory
 * inside the pool, verify the manifest, convert each disk the OVF names,
 * draft a spec; the directory is removed whatever happens. */
#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "common/json.h"
#include "daemon/foreign.h"
#include "qemu/spec.h"
#include "storage/ova.h"

#define OVF_MAX_BYTES (1 << 20)

static void rm_dir(const char *dir, int dfd, const struct qv_ova_file *files, size_t n)
{
	for (size_t i = 0; i < n; i++)
		(void)unlinkat(dfd, files[i].name, 0);
	(void)rmdir(dir);
}

static char *read_member(int dfd, const char *name, size_t max)
{
	_cleanup_close_ int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	char *buf = fd >= 0 ? malloc(max + 1) : NULL;
	ssize_t n = buf ? read(fd, buf, max + 1) : -1;

	if (n < 0 || (size_t)n > max) {
		free(buf);
		return NULL;
	}
	buf[n] = 0;
	return buf;
}

/* The one member ending in ext, or NULL (also when there are several). */
static const char *member_with(const struct qv_ova_file *f, size_t n, const char *ext, int *count)
{
	const char *found = NULL;

	*count = 0;
	for (size_t i = 0; i < n; i++) {
		const char *dot = strrchr(f[i].name, '.');
		if (dot && !strcasecmp(dot, ext))
			found = f[i].name, (*count)++;
	}
	return *count == 1 ? found : NULL;
}

/* A NIC network name from the OVF, made a valid qvisor network name. */
static void net_name(const char *in, char out[16])
{
	size_t k = 0;

	for (const char *p = in; *p && k < 15; p++)
		out[k++] = (isalnum((unsigned char)*p) || *p == '_' || *p == '-') ? *p : '-';
	out[k] = 0;
	if (!k)
		snprintf(out, 16, "default");
}

static json_object *draft_spec(struct fjob *j, const struct qv_ovf *ovf, json_object *images)
{
	json_object *spec = json_object_new_object(), *disks = json_object_new_array();
	json_object *nics = json_object_new_array();

	json_object_object_add(spec, "name", json_object_new_string(j->name));
	if (ovf->vcpus)
		json_object_object_add(spec, "vcpus", json_object_new_int64(ovf->vcpus));
	if (ovf->memory_mib)
		json_object_object_add(spec, "memory", json_object_new_int64((int64_t)ovf->memory_mib));
	for (size_t i = 0; i < json_object_array_length(images); i++) {
		json_object *img = json_object_array_get_idx(images, i), *p, *f;
		json_object *d = json_object_new_object();
		json_object_object_get_ex(img, "path", &p);
		json_object_object_get_ex(img, "format", &f);
		json_object_object_add(d, "path", json_object_get(p));
		json_object_object_add(d, "format", json_object_get(f));
		json_object_array_add(disks, d);
	}
	json_object_object_add(spec, "disks", disks);
	for (size_t i = 0; i < ovf->n_nics; i++) {
		char net[16];
		json_object *nic = json_object_new_object();
		net_name(ovf->networks[i], net);
		json_object_object_add(nic, "network", json_object_new_string(net));
		json_object_array_add(nics, nic);
	}
	json_object_object_add(spec, "nics", nics);
	return spec;
}

static int convert_disks(struct fjob *j, const char *dir, const struct qv_ovf *ovf,
			 const struct qv_ova_file *files, size_t n, json_object *images)
{
	for (size_t i = 0; i < ovf->n_disks; i++) {
		enum qv_foreign_format fmt;
		char src[PATH_MAX], name[80];
		_cleanup_free_ char *path = NULL;
		uint64_t vsize;
		bool found = false;
		int r;

		for (size_t k = 0; k < n; k++)
			found |= streq(files[k].name, ovf->disk_files[i]);
		if (!found)
			return qv_error_set(&j->err, ENOENT, QV_REASON_INVALID_ARGUMENT,
					    "OVF disk %.100s is not in the OVA", ovf->disk_files[i]);
		if (qv_foreign_format_from_string(ovf->disk_formats[i], &fmt) < 0)
			return qv_error_set(&j->err, EINVAL, QV_REASON_UNSUPPORTED,
					    "OVF disk %.100s: format %.20s is not supported",
					    ovf->disk_files[i], ovf->disk_formats[i]);
		snprintf(src, sizeof(src), "%s/%s", dir, ovf->disk_files[i]);
		snprintf(name, sizeof(name), "%s-disk%zu", j->name, i);
		if ((r = qv_foreign_to_pool(j, src, fmt, name, &path, &vsize, &j->err)) < 0)
			return r;
		json_object *img = json_object_new_object();
		json_object_object_add(img, "name", json_object_new_string(name));
		json_object_object_add(img, "path", json_object_new_string(path));
		json_object_object_add(img, "format", json_object_new_string(
			qv_image_format_to_string(j->dst_fmt)));
		json_object_object_add(img, "virtual_size", json_object_new_int64((int64_t)vsize));
		json_object_array_add(images, img);
	}
	return 0;
}

/* Undo the disks already converted. */
static void drop_images(json_object *images)
{
	for (size_t i = 0; i < json_object_array_length(images); i++) {
		json_object *p;
		if (json_object_object_get_ex(json_object_array_get_idx(images, i), "path", &p))
			(void)unlink(json_object_get_string(p));
	}
}

static int ova_in_dir(struct fjob *j, const char *dir, int dfd, const struct qv_ova_file *files,
		      size_t n, json_object *images, json_object **ret_spec, bool *ret_manifest)
{
	struct qv_ovf *ovf = NULL;
	int cnt, r;

	const char *ovf_name = member_with(files, n, ".ovf", &cnt);
	if (!ovf_name)
		return qv_error_set(&j->err, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "the OVA must hold exactly one .ovf descriptor (it has %d)", cnt);
	const char *mf_name = member_with(files, n, ".mf", &cnt);
	if (cnt > 1)
		return qv_error_set(&j->err, EINVAL, QV_REASON_INVALID_ARGUMENT, "several manifests");
	if (mf_name) {
		_cleanup_free_ char *mf = read_member(dfd, mf_name, 64 * 1024);
		if (!mf)
			return qv_error_set(&j->err, EIO, QV_REASON_IO_ERROR, "cannot read %s", mf_name);
		if ((r = qv_ova_verify_manifest(mf, files, n, mf_name, &j->err)) < 0)
			return r;
	}
	*ret_manifest = mf_name != NULL;
	_cleanup_free_ char *xml = read_member(dfd, ovf_name, OVF_MAX_BYTES);
	if (!xml)
		return qv_error_set(&j->err, EIO, QV_REASON_IO_ERROR, "cannot read %s (at most 1 MiB)",
				    ovf_name);
	if ((r = qv_ovf_parse(xml, strlen(xml), &ovf, &j->err)) < 0)
		return r;
	if (!ovf->n_disks)
		r = qv_error_set(&j->err, EINVAL, QV_REASON_INVALID_ARGUMENT, "the OVF names no disk");
	else
		r = convert_disks(j, dir, ovf, files, n, images);
	if (r >= 0)
		*ret_spec = draft_spec(j, ovf, images);
	qv_ovf_free(ovf);
	return r;
}

void qv_foreign_run_ova(struct fjob *j)
{
	char dir[PATH_MAX];
	_cleanup_free_ struct qv_ova_file *files = NULL;
	_cleanup_close_ int dfd = -1;
	json_object *images = json_object_new_array(), *spec = NULL;
	bool manifest = false;
	size_t n = 0;

	snprintf(dir, sizeof(dir), "%s/.ova-%s-XXXXXX", j->pool_dir, j->op_id);
	if (!mkdtemp(dir) || (dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
		j->r = qv_error_set(&j->err, errno, QV_REASON_IO_ERROR, "cannot create %s: %m", dir);
		json_object_put(images);
		return;
	}
	j->r = qv_ova_extract(j->src, dfd, &files, &n, &j->err);
	if (j->r >= 0)
		j->r = ova_in_dir(j, dir, dfd, files, n, images, &spec, &manifest);
	if (j->r < 0 && !files) {
		/* a failed extraction left whatever it wrote: remove all of it */
		DIR *dp = fdopendir(dup(dfd));
		for (struct dirent *de; dp && (de = readdir(dp));)
			if (de->d_name[0] != '.')
				(void)unlinkat(dfd, de->d_name, 0);
		if (dp)
			closedir(dp);
	}
	rm_dir(dir, dfd, files, n);
	if (j->r < 0) {
		drop_images(images);
		json_object_put(images);
		return;
	}
	struct vm_spec *parsed = NULL;
	struct qv_error verr = {};
	j->result = json_object_new_object();
	json_object_object_add(j->result, "images", images);
	json_object_object_add(j->result, "manifest_verified", json_object_new_boolean(manifest));
	bool valid = vm_spec_from_json(spec, &parsed, &verr) == 0;
	vm_spec_free(parsed);
	json_object_object_add(j->result, "spec", spec);
	json_object_object_add(j->result, "spec_valid", json_object_new_boolean(valid));
	if (!valid)
		json_object_object_add(j->result, "spec_error", json_object_new_string(verr.message));
}
