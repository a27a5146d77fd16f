/* SPDX-License-Identifier: MIT */
/* libvirt's own qemuxml2argv corpus (../shared/interop/libvirt-9.0-qemuxml2argv,
 * see its README): every file imports into a spec the validator accepts or
 * is refused with XPaths; the figures go to $QV_BUILD_DIR/interop-corpus.txt
 * (docs/interop.md quotes them). For each imported x86 file with libvirt's
 * expected argv, the argv qvisor builds must agree on the supported parts:
 * memory, vCPUs, kernel boot, virtio disks, virtio NICs. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <sys/stat.h>

#include "common/json.h"
#include "qemu/argv.h"
#include "qemu/libvirt.h"

#define CORPUS_SUBDIR "shared/interop/libvirt-9.0-qemuxml2argv"
#define MAX_GROUPS 512

static char corpus[512];

static bool find_corpus(void)
{
	const char *env = getenv("QV_INTEROP_CORPUS"), *src = getenv("QV_SRC_DIR");
	const char *cands[] = { "..", "../..", NULL };
	struct stat st;

	if (env && *env)
		return snprintf(corpus, sizeof(corpus), "%s", env), stat(corpus, &st) == 0;
	for (const char *const *c = cands; *c; c++) {
		snprintf(corpus, sizeof(corpus), "%s/%s/" CORPUS_SUBDIR, src && *src ? src : ".", *c);
		if (stat(corpus, &st) == 0 && S_ISDIR(st.st_mode))
			return true;
	}
	return false;
}

static char *slurp(const char *path, size_t *ret_len)
{
	FILE *f = fopen(path, "re");
	char *buf;

	if (!f)
		return NULL;
	buf = malloc(LV_XML_MAX_BYTES + 1);
	size_t n = fread(buf, 1, LV_XML_MAX_BYTES, f);
	fclose(f);
	buf[n] = 0;
	*ret_len = n;
	return buf;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted *.xml names; caller frees. */
static char **list_xml(size_t *ret_n)
{
	DIR *d = opendir(corpus);
	struct dirent *de;
	char **v = NULL;
	size_t n = 0;

	cr_assert_not_null(d);
	while ((de = readdir(d))) {
		size_t l = strlen(de->d_name);
		if (l < 5 || strcmp(de->d_name + l - 4, ".xml"))
			continue;
		v = realloc(v, (n + 1) * sizeof(*v));
		v[n++] = strdup(de->d_name);
	}
	closedir(d);
	qsort(v, n, sizeof(*v), cmp_str);
	*ret_n = n;
	return v;
}

/* Refusal reasons grouped by the XPath without positions. */
struct groups {
	char *key[MAX_GROUPS];
	unsigned count[MAX_GROUPS];
	size_t n;
};

static void group_key(const char *xpath, char *key, size_t size)
{
	size_t k = 0;

	for (const char *p = xpath; *p && k < size - 1; p++) {
		if (*p == '[') {
			while (*p && *p != ']')
				p++;
			if (!*p)
				break;
			continue;
		}
		key[k++] = *p;
	}
	key[k] = 0;
}

static void group_add(struct groups *g, const char *key)
{
	for (size_t i = 0; i < g->n; i++)
		if (streq(g->key[i], key))
			return (void)g->count[i]++;
	if (g->n < MAX_GROUPS) {
		g->key[g->n] = strdup(key);
		g->count[g->n++] = 1;
	}
}

static void check_problems(const char *file, json_object *problems, bool refused)
{
	size_t n = json_object_array_length(problems);

	if (refused)
		cr_assert_gt(n, 0, "%s refused without a reason", file);
	for (size_t i = 0; i < n; i++) {
		json_object *p = json_object_array_get_idx(problems, i), *x, *w;
		cr_assert(json_object_object_get_ex(p, "xpath", &x) &&
			  json_object_object_get_ex(p, "why", &w));
		cr_assert_eq(json_object_get_string(x)[0], '/', "%s: xpath %s", file,
			     json_object_get_string(x));
		cr_assert_gt(strlen(json_object_get_string(w)), 10, "%s: vague reason", file);
	}
}

/* First problem of a refused file, grouped; every kind of problem, counted
 * once per file. */
static void record(struct groups *first, struct groups *all, json_object *problems, bool fatal_only)
{
	struct groups seen = {};
	char key[256];

	for (size_t i = 0; i < json_object_array_length(problems); i++) {
		json_object *p = json_object_array_get_idx(problems, i), *x, *f;
		json_object_object_get_ex(p, "xpath", &x);
		json_object_object_get_ex(p, "fatal", &f);
		if (fatal_only && !json_object_get_boolean(f))
			continue;
		group_key(json_object_get_string(x), key, sizeof(key));
		if (!seen.n) { /* by XPath and reason */
			char reason[400];
			json_object *w;
			json_object_object_get_ex(p, "why", &w);
			snprintf(reason, sizeof(reason), "%s: %.90s", key, json_object_get_string(w));
			group_add(first, reason);
		}
		size_t before = seen.n;
		group_add(&seen, key);
		if (seen.n > before)
			group_add(all, key);
	}
	for (size_t i = 0; i < seen.n; i++)
		free(seen.key[i]);
}

static int cmp_group(const void *a, const void *b)
{
	const unsigned *x = a, *y = b;
	return *y > *x ? 1 : *y < *x ? -1 : 0;
}

static void write_groups(FILE *f, const char *title, struct groups *g)
{
	struct { unsigned count; char *key; } v[MAX_GROUPS];

	for (size_t i = 0; i < g->n; i++)
		v[i].count = g->count[i], v[i].key = g->key[i];
	qsort(v, g->n, sizeof(v[0]), cmp_group);
	fprintf(f, "%s\n", title);
	for (size_t i = 0; i < g->n; i++) {
		fprintf(f, "  %4u %s\n", v[i].count, v[i].key);
		free(v[i].key);
	}
	g->n = 0;
}

/* --- libvirt's expected argv ---------------------------------------------- */

enum { C_MEM, C_VCPU, C_KERNEL, C_DISK, C_NIC, C_N };
static const char *const part_name[C_N] = { "memory", "vcpus", "kernel boot", "disks", "nics" };

struct argv_cmp {
	unsigned n[C_N], ok[C_N];
};

/* Shell words of a libvirt .args file: '...' quoting, backslash escapes and
 * line continuations. NULL-terminated; free with strv_free. */
static char **shell_words(const char *s)
{
	size_t cap = 64, n = 0;
	char **v = calloc(cap, sizeof(*v));
	char *w = malloc(strlen(s) + 1);

	while (*s) {
		while (*s == ' ' || *s == '\t' || *s == '\n' || (*s == '\\' && s[1] == '\n'))
			s += (*s == '\\') ? 2 : 1;
		if (!*s)
			break;
		size_t k = 0;
		while (*s && *s != ' ' && *s != '\t' && *s != '\n') {
			if (*s == '\'') {
				for (s++; *s && *s != '\''; s++)
					w[k++] = *s;
				if (*s)
					s++;
			} else if (*s == '\\' && s[1]) {
				if (s[1] != '\n')
					w[k++] = s[1];
				s += 2;
			} else
				w[k++] = *s++;
		}
		w[k] = 0;
		if (n + 2 > cap)
			v = realloc(v, (cap *= 2) * sizeof(*v));
		v[n++] = strdup(w);
	}
	free(w);
	v[n] = NULL;
	return v;
}

/* The facts compared, as text. */
struct facts {
	uint64_t mem_mib;
	unsigned vcpus;
	char kernel[512];
	char disks[2048]; /* "file|format|ro;" per virtio-blk device, in order */
	char nics[512];   /* "mac;" per virtio-net device, in order */
};

static uint64_t parse_mem(const char *m)
{
	char *end;

	if (!strncmp(m, "size=", 5))
		m += 5;
	uint64_t v = strtoull(m, &end, 10);
	switch (*end) {
	case 'k': case 'K': return v / 1024;
	case 'G': case 'g': return v * 1024;
	default: return v; /* MiB, bare or "M" */
	}
}

static const char *jstr(json_object *o, const char *key)
{
	json_object *v;

	return o && json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : "";
}

/* Legacy "driver,key=val,..." device/drive strings: the value of key. */
static void kv_get(const char *s, const char *key, char *out, size_t size)
{
	size_t kl = strlen(key);

	out[0] = 0;
	for (const char *p = s; p && *p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
		if (!strncmp(p, key, kl) && p[kl] == '=') {
			const char *e = strchr(p + kl + 1, ',');
			snprintf(out, size, "%.*s", (int)(e ? (size_t)(e - p) - kl - 1 : strlen(p + kl + 1)),
				 p + kl + 1);
			return;
		}
}

static void add_disk(struct facts *f, json_object *nodes, const char *drive)
{
	json_object *fmt = NULL, *sto = NULL;
	char one[600];

	json_object_object_get_ex(nodes, drive, &fmt);
	if (fmt && streq(jstr(fmt, "driver"), "throttle"))
		json_object_object_get_ex(nodes, jstr(fmt, "file"), &fmt);
	if (fmt)
		json_object_object_get_ex(nodes, jstr(fmt, "file"), &sto);
	if (!sto) { /* legacy -drive: recorded under its id */
		if (!fmt)
			return;
		snprintf(one, sizeof(one), "%s|%s|%s;", jstr(fmt, "file"), jstr(fmt, "format"),
			 jstr(fmt, "readonly"));
	} else
		snprintf(one, sizeof(one), "%s|%s|%s;", jstr(sto, "filename"), jstr(fmt, "driver"),
			 jstr(fmt, "read-only"));
	strncat(f->disks, one, sizeof(f->disks) - strlen(f->disks) - 1);
}

static void legacy_drive(json_object *nodes, const char *s)
{
	char id[128], file[512], fmt[32], ro[8];

	kv_get(s, "id", id, sizeof(id));
	kv_get(s, "file", file, sizeof(file));
	kv_get(s, "format", fmt, sizeof(fmt));
	kv_get(s, "readonly", ro, sizeof(ro));
	json_object *o = json_object_new_object();
	json_object_object_add(o, "file", json_object_new_string(file));
	json_object_object_add(o, "format", json_object_new_string(fmt));
	json_object_object_add(o, "readonly", json_object_new_string(streq(ro, "on") ? "true" : "false"));
	json_object_object_add(nodes, id, o);
}

static void device(struct facts *f, json_object *nodes, const char *s)
{
	char drive[128], mac[32];
	json_object *d = s[0] == '{' ? json_tokener_parse(s) : NULL;

	if (d && streq(jstr(d, "driver"), "virtio-blk-pci"))
		add_disk(f, nodes, jstr(d, "drive"));
	else if (d && streq(jstr(d, "driver"), "virtio-net-pci"))
		snprintf(f->nics + strlen(f->nics), sizeof(f->nics) - strlen(f->nics), "%s;",
			 jstr(d, "mac"));
	else if (!d && !strncmp(s, "virtio-blk-pci,", 15)) {
		kv_get(s, "drive", drive, sizeof(drive));
		add_disk(f, nodes, drive);
	} else if (!d && !strncmp(s, "virtio-net-pci,", 15)) {
		kv_get(s, "mac", mac, sizeof(mac));
		snprintf(f->nics + strlen(f->nics), sizeof(f->nics) - strlen(f->nics), "%s;", mac);
	}
	json_object_put(d);
}

static void facts_from_argv(char **w, struct facts *f)
{
	json_object *nodes = json_object_new_object();
	char kernel[256] = "", initrd[256] = "", append[4200] = "";

	memset(f, 0, sizeof(*f));
	f->vcpus = 1;
	for (size_t i = 0; w[i] && w[i + 1]; i++) {
		const char *o = w[i], *a = w[i + 1];
		if (streq(o, "-m"))
			f->mem_mib = parse_mem(a);
		else if (streq(o, "-smp"))
			f->vcpus = (unsigned)atoi(a);
		else if (streq(o, "-kernel"))
			snprintf(kernel, sizeof(kernel), "%s", a);
		else if (streq(o, "-initrd"))
			snprintf(initrd, sizeof(initrd), "%s", a);
		else if (streq(o, "-append"))
			snprintf(append, sizeof(append), "%s", a);
		else if (streq(o, "-blockdev")) {
			json_object *b = json_tokener_parse(a);
			if (b)
				json_object_object_add(nodes, jstr(b, "node-name"), b);
		} else if (streq(o, "-drive"))
			legacy_drive(nodes, a);
		else if (streq(o, "-device"))
			device(f, nodes, a);
	}
	snprintf(f->kernel, sizeof(f->kernel), "%s|%s|%.200s", kernel, initrd, append);
	json_object_put(nodes);
}

/* <base>.x86_64-latest.args, else <base>.args, for an x86 QEMU. */
static char **libvirt_argv(const char *dir, const char *xml_name)
{
	char base[512], path[1100];
	size_t len;

	snprintf(base, sizeof(base), "%.*s", (int)(strlen(xml_name) - 4), xml_name);
	const char *sfx[] = { ".x86_64-latest.args", ".args" };
	for (size_t i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "%s/%s%s", dir, base, sfx[i]);
		_cleanup_free_ char *text = slurp(path, &len);
		if (!text)
			continue;
		char **w = shell_words(text);
		for (char **p = w; *p; p++)
			if (strstr(*p, "qemu-system-x86_64") || strstr(*p, "qemu-system-i386"))
				return w;
		strv_free(w);
		return NULL;
	}
	return NULL;
}

static void strip_positions(const char *in, char *out, size_t size)
{
	size_t k = 0;

	for (; *in && k < size - 1; in++) {
		if (*in == '[') {
			while (*in && *in != ']')
				in++;
			if (!*in)
				break;
			continue;
		}
		out[k++] = *in;
	}
	out[k] = 0;
}

/* A problem at exactly one of the XPaths (positions ignored), or under
 * prefix when the entry ends with '/'. */
static bool has_problem_at(json_object *problems, const char *const *paths)
{
	char x[512];

	for (size_t i = 0; i < json_object_array_length(problems); i++) {
		strip_positions(jstr(json_object_array_get_idx(problems, i), "xpath"), x, sizeof(x));
		for (const char *const *p = paths; *p; p++) {
			size_t l = strlen(*p);
			if ((*p)[l - 1] == '/' ? !strncmp(x, *p, l) : streq(x, *p))
				return true;
		}
	}
	return false;
}

/* Problems that change what libvirt's argv shows for a part: a dropped or
 * re-modelled device; a refused <address> or <alias> does not. */
static const char *const mem_paths[] = { "/domain/cpu/numa/", "/domain/cpu/numa",
					 "/domain/devices/memory", "/domain/maxMemory", NULL };
static const char *const vcpu_paths[] = { "/domain/vcpus", "/domain/vcpus/", NULL };
static const char *const disk_paths[] = { "/domain/devices/disk", "/domain/devices/disk/source",
					  "/domain/devices/disk/source/",
					  "/domain/devices/disk/target",
					  "/domain/devices/disk/target/@bus",
					  "/domain/devices/disk/driver/@type", NULL };
static const char *const nic_paths[] = { "/domain/devices/interface",
					 "/domain/devices/interface/model",
					 "/domain/devices/interface/source", NULL };

static void cmp_one(struct argv_cmp *c, int part, const char *file, bool eq, const char *want,
		    const char *got)
{
	c->n[part]++;
	if (eq)
		c->ok[part]++;
	else
		fprintf(stderr, "argv mismatch in %s: %s: libvirt %s, qvisor %s\n", file,
			part_name[part], want, got);
}

/* 1 if the file had libvirt's x86 argv to compare with. Disks and NICs are
 * compared only when the import refused none of them. */
static unsigned compare_argv(const char *dir, const char *file, const struct vm_spec *spec,
			     json_object *problems, struct argv_cmp *c)
{
	_cleanup_strv_free_ char **lv = libvirt_argv(dir, file), **ours = NULL;
	struct qemu_argv_opts opts = { .run_dir = "/run/qv/corpus", .accel = VM_ACCEL_TCG,
				       .nic_user_fallback = true };
	struct qv_error err = {};
	struct facts want, got;
	char a[32], b[32];

	if (!lv)
		return 0;
	cr_assert_eq(qemu_argv_build(spec, &opts, &ours, &err), 0, "%s: %s", file, err.message);
	facts_from_argv(lv, &want);
	facts_from_argv(ours, &got);
	snprintf(a, sizeof(a), "%llu", (unsigned long long)want.mem_mib);
	snprintf(b, sizeof(b), "%llu", (unsigned long long)got.mem_mib);
	/* libvirt sizes RAM from NUMA cells / memory devices, which are refused */
	if (!has_problem_at(problems, mem_paths))
		cmp_one(c, C_MEM, file, want.mem_mib == got.mem_mib, a, b);
	snprintf(a, sizeof(a), "%u", want.vcpus);
	snprintf(b, sizeof(b), "%u", got.vcpus);
	if (!has_problem_at(problems, vcpu_paths))
		cmp_one(c, C_VCPU, file, want.vcpus == got.vcpus, a, b);
	if (spec->kernel || *want.kernel != '|')
		cmp_one(c, C_KERNEL, file, streq(want.kernel, got.kernel), want.kernel, got.kernel);
	if (!has_problem_at(problems, disk_paths) && (*want.disks || *got.disks))
		cmp_one(c, C_DISK, file, streq(want.disks, got.disks), want.disks, got.disks);
	if (!has_problem_at(problems, nic_paths) && (*want.nics || *got.nics))
		cmp_one(c, C_NIC, file, streq(want.nics, got.nics), want.nics, got.nics);
	return 1;
}

/* Most of libvirt's files boot from a block device, which qvisor refuses, so
 * their lossy import has nothing to boot. The NICs, memory and vCPUs they
 * do map are still compared: the draft spec gets a stand-in kernel. */
static unsigned compare_unbootable(const char *dir, const char *file, struct lv_import *imp,
				   struct argv_cmp *c)
{
	struct qv_error err = {};
	_cleanup_(vm_spec_freep) struct vm_spec *spec = NULL;

	for (size_t i = 0; i < json_object_array_length(imp->problems); i++) {
		json_object *p = json_object_array_get_idx(imp->problems, i), *f;
		if (json_object_object_get_ex(p, "fatal", &f) && json_object_get_boolean(f) &&
		    !strstr(jstr(p, "why"), "nothing to boot"))
			return 0;
	}
	if (!imp->draft || json_object_object_get_ex(imp->draft, "kernel", NULL))
		return 0;
	json_object_object_add(imp->draft, "kernel", json_object_new_string("/corpus/vmlinuz"));
	json_object_object_del(imp->draft, "boot");
	if (vm_spec_from_json(imp->draft, &spec, &err) < 0)
		return 0;
	free(spec->kernel);
	spec->kernel = NULL; /* not libvirt's: leave kernel boot out of the comparison */
	return compare_argv(dir, file, spec, imp->problems, c);
}

Test(libvirt_corpus, every_file_imports_or_is_refused_precisely, .timeout = 300)
{
	if (!find_corpus())
		cr_skip_test("libvirt corpus not found (../shared/interop; set QV_INTEROP_CORPUS)");
	size_t n;
	char **files = list_xml(&n);
	unsigned imported = 0, lossy_imported = 0, not_xml = 0, compared = 0;
	static struct groups first, all, lfirst, lall;
	struct argv_cmp cmp = {};

	cr_assert_gt(n, 0);
	for (size_t i = 0; i < n; i++) {
		char path[1024];
		size_t len;
		snprintf(path, sizeof(path), "%s/%s", corpus, files[i]);
		_cleanup_free_ char *xml = slurp(path, &len);
		cr_assert_not_null(xml, "%s", path);
		for (int lossy = 0; lossy <= 1; lossy++) {
			_cleanup_(lv_import_freep) struct lv_import *imp = NULL;
			struct qv_error err = {};
			if (lv_import_xml(xml, len, lossy, &imp, &err) < 0) {
				not_xml += !lossy; /* deliberately broken files */
				continue;
			}
			check_problems(files[i], imp->problems, !imp->spec);
			if (imp->spec) {
				_cleanup_(vm_spec_freep) struct vm_spec *spec = NULL;
				cr_assert_eq(vm_spec_from_json(imp->spec, &spec, &err), 0,
					     "%s: imported spec does not validate: %s", files[i],
					     err.message);
				if (lossy)
					compared += compare_argv(corpus, files[i], spec, imp->problems, &cmp);
			}
			if (!lossy && imp->spec)
				imported++;
			else if (!lossy)
				record(&first, &all, imp->problems, false);
			else if (imp->spec)
				lossy_imported++;
			else {
				record(&lfirst, &lall, imp->problems, true);
				compared += compare_unbootable(corpus, files[i], imp, &cmp);
			}
		}
		free(files[i]);
	}
	free(files);

	const char *b = getenv("QV_BUILD_DIR");
	char out[512];
	snprintf(out, sizeof(out), "%s/interop-corpus.txt", b && *b ? b : "build");
	FILE *f = fopen(out, "we");
	cr_assert_not_null(f, "%s", out);
	fprintf(f, "files %zu\nnot well-formed XML %u\nstrict: imported %u, refused %zu\n"
		   "lossy: imported %u, refused %zu\n", n, not_xml, imported, n - not_xml - imported,
		lossy_imported, n - not_xml - lossy_imported);
	fprintf(f, "argv compared %u files: memory %u/%u, vcpus %u/%u, kernel boot %u/%u, "
		   "disks %u/%u, nics %u/%u\n", compared, cmp.ok[0], cmp.n[0], cmp.ok[1], cmp.n[1],
		cmp.ok[2], cmp.n[2], cmp.ok[3], cmp.n[3], cmp.ok[4], cmp.n[4]);
	write_groups(f, "strict refusals, first problem per file, by XPath and reason:", &first);
	write_groups(f, "strict refusals, files with a problem at each XPath:", &all);
	write_groups(f, "lossy refusals, first fatal problem per file, by XPath and reason:", &lfirst);
	write_groups(f, "lossy refusals, files with a fatal problem at each XPath:", &lall);
	fclose(f);
	cr_log_info("corpus: %zu files, %u imported strict, %u lossy; see %s", n, imported,
		    lossy_imported, out);
	cr_assert_eq(imported + (n - not_xml - imported) + not_xml, n);
	cr_assert_gt(compared, 0, "no imported file had libvirt's x86 argv to compare");
	for (int k = 0; k < 5; k++)
		cr_assert_eq(cmp.ok[k], cmp.n[k], "argv part %d: %u of %u agree (see stderr)", k,
			     cmp.ok[k], cmp.n[k]);
}

/* The comparator itself, on libvirt-style arguments for the parts this half
 * of the corpus has no x86 example of (kernel boot, bridge NICs). */
Test(libvirt_corpus, comparator_reads_kernel_boot_and_nics)
{
	static const char lv_args[] =
		"LC_ALL=C \\\n/usr/bin/qemu-system-x86_64 \\\n-m 214 \\\n-smp 2,sockets=2,cores=1 \\\n"
		"-kernel /g/vmlinuz \\\n-initrd /g/initrd.img \\\n-append 'console=ttyS0 panic=-1' \\\n"
		"-blockdev '{\"driver\":\"file\",\"filename\":\"/img/a.qcow2\",\"node-name\":\"libvirt-1-storage\"}' \\\n"
		"-blockdev '{\"node-name\":\"libvirt-1-format\",\"read-only\":true,\"driver\":\"qcow2\",\"file\":\"libvirt-1-storage\"}' \\\n"
		"-device '{\"driver\":\"virtio-blk-pci\",\"drive\":\"libvirt-1-format\",\"id\":\"virtio-disk0\"}' \\\n"
		"-netdev '{\"type\":\"tap\",\"fd\":\"73\",\"id\":\"hostnet0\"}' \\\n"
		"-device '{\"driver\":\"virtio-net-pci\",\"netdev\":\"hostnet0\",\"id\":\"net0\",\"mac\":\"52:54:00:aa:bb:cc\"}' \\\n";
	_cleanup_strv_free_ char **lv = shell_words(lv_args), **ours = NULL;
	_cleanup_(vm_spec_freep) struct vm_spec *spec = NULL;
	struct qemu_argv_opts opts = { .run_dir = "/run/qv/corpus", .accel = VM_ACCEL_TCG,
				       .nic_user_fallback = true };
	struct qv_error err = {};
	struct facts want, got;

	cr_assert_eq(vm_spec_from_string("{\"name\":\"a\",\"memory\":214,\"vcpus\":2,"
		"\"kernel\":\"/g/vmlinuz\",\"initrd\":\"/g/initrd.img\","
		"\"cmdline\":\"console=ttyS0 panic=-1\",\"disks\":[{\"path\":\"/img/a.qcow2\","
		"\"format\":\"qcow2\",\"readonly\":true}],\"nics\":[{\"bridge\":\"br0\","
		"\"mac\":\"52:54:00:aa:bb:cc\"}]}", &spec, &err), 0, "%s", err.message);
	cr_assert_eq(qemu_argv_build(spec, &opts, &ours, &err), 0, "%s", err.message);
	facts_from_argv(lv, &want);
	facts_from_argv(ours, &got);
	cr_assert_eq(want.mem_mib, 214);
	cr_assert_eq(want.vcpus, 2);
	cr_assert_str_eq(want.kernel, "/g/vmlinuz|/g/initrd.img|console=ttyS0 panic=-1");
	cr_assert_str_eq(want.disks, "/img/a.qcow2|qcow2|true;");
	cr_assert_str_eq(want.nics, "52:54:00:aa:bb:cc;");
	cr_assert_eq(got.mem_mib, want.mem_mib);
	cr_assert_eq(got.vcpus, want.vcpus);
	cr_assert_str_eq(got.kernel, want.kernel);
	cr_assert_str_eq(got.disks, want.disks);
	cr_assert_str_eq(got.nics, want.nics);
}
