/* SPDX-License-Identifier: MIT */
/* libvirt import: the document, <domain> and its top-level elements. */
#include <ctype.h>
#include <libxml/parser.h>

#include "common/json.h"
#include "qemu/libvirt-internal.h"
#include "qemu/spec-internal.h"

#define MIB (1ULL << 20)

static void set_str(json_object *o, const char *key, const char *v)
{
	json_object_object_add(o, key, json_object_new_string(v));
}

static void set_int(json_object *o, const char *key, int64_t v)
{
	json_object_object_add(o, key, json_object_new_int64(v));
}

/* libvirt allows names qvisor does not; lossy imports get a sanitized one. */
static void import_name(struct lv_ctx *c, xmlNodePtr dom)
{
	xmlNodePtr n = lv_child(dom, "name");
	char buf[256];
	const char *s;

	if (!n)
		return lv_fatal(c, dom, "<name> is required");
	s = lv_text(n, buf, sizeof(buf));
	if (!s || !*s)
		return lv_fatal(c, n, "<name> must be non-empty text");
	if (vm_name_valid(s))
		return set_str(c->spec, "name", s);
	char fixed[VM_NAME_MAX + 1];
	size_t i = 0;
	for (const char *p = s; *p && i < VM_NAME_MAX; p++)
		fixed[i++] = (isalnum((unsigned char)*p) || strchr("_.-", *p)) ? *p : '-';
	fixed[i] = 0;
	if (!isalnum((unsigned char)fixed[0]))
		fixed[0] = 'x';
	lv_refuse(c, n, "name \"%.64s\" is not a qvisor name (1-63 of [a-zA-Z0-9_.-], starting "
		  "with a letter or digit); lossy import uses \"%s\"", s, fixed);
	set_str(c->spec, "name", fixed);
}

static void import_uuid(struct lv_ctx *c, xmlNodePtr dom)
{
	xmlNodePtr n = lv_child(dom, "uuid");
	char buf[64], uuid[37];
	const char *s;

	if (!n)
		return;
	s = lv_text(n, buf, sizeof(buf));
	/* libvirt also accepts the uuid without dashes */
	char canon[37];
	if (s && strlen(s) == 32 && !strchr(s, '-'))
		snprintf(canon, sizeof(canon), "%.8s-%.4s-%.4s-%.4s-%.12s", s, s + 8, s + 12, s + 16,
			 s + 20), s = canon;
	if (!s || !spec_uuid_normalize(s, uuid))
		return lv_fatal(c, n, "<uuid> is not a valid non-nil uuid");
	set_str(c->spec, "uuid", uuid);
}

static void import_memory(struct lv_ctx *c, xmlNodePtr dom)
{
	xmlNodePtr m = lv_child(dom, "memory"), cur = lv_child(dom, "currentMemory");
	uint64_t bytes, cb;

	if (!m)
		return lv_fatal(c, dom, "<memory> is required");
	if (lv_size(c, m, 1024, &bytes) < 0)
		return;
	/* QEMU sizes RAM in whole MiB; libvirt rounds up the same way. */
	uint64_t mib = bytes / MIB + (bytes % MIB ? 1 : 0);
	if (mib < VM_MEMORY_MIN_MIB || mib > VM_MEMORY_MAX_MIB)
		return lv_fatal(c, m, "memory %llu MiB is outside qvisor's range 16 MiB..1 TiB",
				(unsigned long long)mib);
	set_int(c->spec, "memory", (int64_t)mib);
	if (!cur || lv_size(c, cur, 1024, &cb) < 0)
		return;
	if (cb / MIB + (cb % MIB ? 1 : 0) > mib)
		return lv_refuse(c, cur, "currentMemory above memory");
	if (cb / MIB + (cb % MIB ? 1 : 0) != mib) {
		c->cur_mem = cur; /* the balloon target, once <devices> is read */
		c->cur_bytes = (cb / MIB + (cb % MIB ? 1 : 0)) * MIB; /* whole MiB, as memory */
	}
}

/* <currentMemory> below <memory> is a balloon target: with
 * <memballoon model='virtio'>, or libvirt's implicit balloon when
 * <memballoon> is absent. */
static void import_balloon_target(struct lv_ctx *c)
{
	json_object *b;

	if (!c->cur_mem)
		return;
	if (c->balloon == 0)
		return lv_refuse(c, c->cur_mem, "currentMemory below memory needs a balloon, and "
				 "memballoon model is 'none'");
	if (c->cur_bytes < VM_MEMORY_MIN_MIB * MIB)
		return lv_refuse(c, c->cur_mem, "currentMemory below qvisor's minimum of 16 MiB");
	b = lv_spec_obj(c, "balloon");
	json_object_object_add(b, "target", json_object_new_int64((int64_t)c->cur_bytes));
}

static void import_vcpu(struct lv_ctx *c, xmlNodePtr dom)
{
	static const char *const placements[] = { "static", NULL };
	xmlNodePtr v = lv_child(dom, "vcpu");
	uint64_t n, cur;

	if (!v)
		return; /* libvirt's default is one vCPU, like qvisor's */
	if (lv_text_u64(c, v, &n) < 0)
		return;
	if (n < 1 || n > VM_VCPUS_MAX)
		return lv_fatal(c, v, "%llu vCPUs is outside qvisor's range 1..%d",
				(unsigned long long)n, VM_VCPUS_MAX);
	set_int(c->spec, "vcpus", (int64_t)n);
	lv_attr_oneof(c, v, "placement", placements);
	if (lv_attr_u64(c, v, "current", &cur) == 0 && cur != n) {
		if (cur < 1 || cur > n)
			return lv_fatal(c, (xmlNodePtr)lv_attr_node(v, "current"),
					"current must be 1..<vcpu>");
		/* lossy: the guest gets the vCPUs it boots with */
		lv_refuse(c, (xmlNodePtr)lv_attr_node(v, "current"),
			  "fewer online vCPUs than <vcpu> needs vCPU hotplug; lossy import gives "
			  "the guest %llu", (unsigned long long)cur);
		set_int(c->spec, "vcpus", (int64_t)cur);
	}
	const char *cpuset = lv_attr(v, "cpuset");
	if (!cpuset)
		return;
	if (!spec_cpuset_valid(cpuset))
		return lv_refuse(c, (xmlNodePtr)lv_attr_node(v, "cpuset"),
				 "cpuset '%s' is not a plain list of CPUs and ranges", cpuset);
	set_str(lv_spec_obj(c, "limits"), "cpuset_cpus", cpuset);
}

static void import_features(struct lv_ctx *c, xmlNodePtr f)
{
	static const char *const implied[] = { "acpi", "apic", "pae", NULL };

	for (xmlNodePtr k = f->children; k; k = k->next)
		for (const char *const *p = implied; *p; p++)
			if (lv_is(k, *p) && lv_empty(k) && !k->properties)
				lv_use_tree(k); /* qvisor's pc/q35 machines always have them */
}

static void import_clock(struct lv_ctx *c, xmlNodePtr clk)
{
	static const char *const offsets[] = { "utc", NULL };

	lv_attr_oneof(c, clk, "offset", offsets); /* QEMU's RTC defaults to UTC */
}

/* on_poweroff / on_reboot / on_crash: what qvisor does is fixed, except that
 * a crash may restart the VM (restart.policy on-failure). */
static void import_lifecycle(struct lv_ctx *c, xmlNodePtr dom)
{
	char buf[64];
	const char *s;
	xmlNodePtr n;

	if ((n = lv_child(dom, "on_poweroff")) && (s = lv_text(n, buf, sizeof(buf))) &&
	    !streq(s, "destroy"))
		lv_refuse(c, n, "on_poweroff '%s': a guest power-off always ends a qvisor VM", s);
	if ((n = lv_child(dom, "on_reboot")) && (s = lv_text(n, buf, sizeof(buf))) &&
	    !streq(s, "restart"))
		lv_refuse(c, n, "on_reboot '%s': a guest reboot always resets a qvisor VM", s);
	if (!(n = lv_child(dom, "on_crash")) || !(s = lv_text(n, buf, sizeof(buf))))
		return;
	if (streq(s, "restart"))
		set_str(lv_spec_obj(c, "restart"), "policy", "on-failure");
	else if (!streq(s, "destroy"))
		lv_refuse(c, n, "on_crash '%s' is not supported (destroy or restart)", s);
}

static void import_seclabels(struct lv_ctx *c, xmlNodePtr dom)
{
	xmlNodePtr s;

	/* Host-side labelling: qvisor confines every QEMU with its own uid and
	 * seccomp filter instead. A fixed (static) label cannot be honoured. */
	while ((s = lv_child(dom, "seclabel"))) {
		const char *type = lv_attr(s, "type");
		if (type && streq(type, "static"))
			lv_refuse(c, s, "a static security label cannot be applied; qvisor "
				  "confines QEMU with its own uid and seccomp filter");
		else
			lv_use_tree(s);
	}
}

static void import_domain(struct lv_ctx *c, xmlNodePtr dom)
{
	const char *type = lv_attr(dom, "type");
	xmlNodePtr n;

	if (!type || (!streq(type, "kvm") && !streq(type, "qemu")))
		return lv_fatal(c, dom, "domain type '%s': only kvm and qemu domains can be imported",
				type ? type : "(none)");
	set_str(c->spec, "accel", streq(type, "kvm") ? "kvm" : "tcg");
	lv_attr(dom, "id"); /* a running domain's id: runtime state, not configuration */
	import_name(c, dom);
	import_uuid(c, dom);
	import_memory(c, dom);
	import_vcpu(c, dom);
	if ((n = lv_child(dom, "os")))
		lv_import_os(c, n);
	else
		lv_fatal(c, dom, "<os> is required");
	if ((n = lv_child(dom, "features")))
		import_features(c, n);
	if ((n = lv_child(dom, "cpu")))
		lv_import_cpu(c, n);
	if ((n = lv_child(dom, "clock")))
		import_clock(c, n);
	import_lifecycle(c, dom);
	import_seclabels(c, dom);
	if ((c->devices = lv_child(dom, "devices")))
		lv_import_devices(c, c->devices);
	import_balloon_target(c);
	lv_import_tunes(c, dom);
	if ((n = lv_child(dom, "metadata")))
		lv_import_metadata(c, n);
}

/* The boot disk and the validator's verdict, once every element is read. */
static void finish(struct lv_ctx *c, xmlNodePtr dom)
{
	json_object *disks, *v;
	struct qv_error err = {};
	_cleanup_(vm_spec_freep) struct vm_spec *spec = NULL;

	bool kernel = json_object_object_get_ex(c->spec, "kernel", &v);
	if (!kernel && c->boot_disk >= 0 && json_object_object_get_ex(c->spec, "disks", &disks) &&
	    c->boot_disk < (int)json_object_array_length(disks))
		set_int(lv_spec_obj(c, "boot"), "disk", c->boot_disk);
	lv_account(c, dom);
	c->draft = json_object_get(c->spec);
	if (c->refused)
		return;
	if (vm_spec_from_json(c->spec, &spec, &err) < 0)
		return lv_fatal(c, dom, "the converted spec is not valid: %s", err.message);
	json_object_put(c->spec);
	c->spec = vm_spec_to_json(spec);
}

static int parse_doc(const char *xml, size_t len, xmlDocPtr *ret_doc, struct qv_error *errp)
{
	xmlParserCtxtPtr ctxt = xmlNewParserCtxt();
	xmlDocPtr doc;

	if (!ctxt)
		return -ENOMEM;
	/* No network, no entity substitution, no DTD loading. */
	doc = xmlCtxtReadMemory(ctxt, xml, (int)len, "domain.xml", NULL,
				XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	if (!doc) {
		const xmlError *e = xmlCtxtGetLastError(ctxt);
		int r = qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				     "not a well-formed XML document: line %d: %s", e ? e->line : 0,
				     e && e->message ? e->message : "parse error");
		/* libxml2's messages end with a newline */
		size_t l = strlen(errp ? errp->message : "");
		if (errp && l && errp->message[l - 1] == '\n')
			errp->message[l - 1] = 0;
		xmlFreeParserCtxt(ctxt);
		return r;
	}
	xmlFreeParserCtxt(ctxt);
	if (doc->intSubset || doc->extSubset) {
		xmlFreeDoc(doc);
		return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
				    "a DOCTYPE is not accepted in a domain XML");
	}
	*ret_doc = doc;
	return 0;
}

int lv_import_xml(const char *xml, size_t len, bool lossy, struct lv_import **ret_import,
		  struct qv_error *errp)
{
	xmlDocPtr doc = NULL;
	int r;

	if (len > LV_XML_MAX_BYTES)
		return qv_error_set(errp, E2BIG, QV_REASON_INVALID_ARGUMENT,
				    "domain XML is %zu bytes, at most %d", len, LV_XML_MAX_BYTES);
	if ((r = parse_doc(xml, len, &doc, errp)) < 0)
		return r;
	struct lv_ctx c = { .lossy = lossy, .boot_disk = -1, .balloon = -1, .problems = json_object_new_array(),
			    .spec = json_object_new_object() };
	xmlNodePtr root = xmlDocGetRootElement(doc);
	if (!lv_is(root, "domain")) {
		lv_use_tree(root);
		lv_fatal(&c, root, "the root element must be <domain>");
	} else {
		lv_use(root);
		import_domain(&c, root);
		finish(&c, root);
	}
	xmlFreeDoc(doc);
	struct lv_import *imp = calloc(1, sizeof(*imp));
	if (!imp) {
		json_object_put(c.spec);
		json_object_put(c.draft);
		json_object_put(c.problems);
		return -ENOMEM;
	}
	imp->problems = c.problems;
	imp->draft = c.draft;
	if (c.refused)
		json_object_put(c.spec);
	else
		imp->spec = c.spec;
	*ret_import = imp;
	return 0;
}

int lv_import_refusal(const struct lv_import *imp, struct qv_error *errp)
{
	char msg[400] = "";
	size_t n = json_object_array_length(imp->problems), shown = 0, off = 0;

	for (size_t i = 0; i < n && off < sizeof(msg) - 1; i++) {
		json_object *p = json_object_array_get_idx(imp->problems, i), *x, *w;
		json_object_object_get_ex(p, "xpath", &x);
		json_object_object_get_ex(p, "why", &w);
		int k = snprintf(msg + off, sizeof(msg) - off, "%s%s: %s", shown ? "; " : "",
				 json_object_get_string(x), json_object_get_string(w));
		if (k < 0 || (size_t)k >= sizeof(msg) - off) {
			msg[off] = 0;
			break;
		}
		off += k;
		shown++;
	}
	return qv_error_set(errp, EOPNOTSUPP, QV_REASON_UNSUPPORTED,
			    "libvirt domain refused (%zu problem%s): %s%s", n, n == 1 ? "" : "s", msg,
			    shown < n ? "; ..." : "");
}

struct lv_import *lv_import_free(struct lv_import *imp)
{
	if (!imp)
		return NULL;
	json_object_put(imp->spec);
	json_object_put(imp->draft);
	json_object_put(imp->problems);
	free(imp);
	return NULL;
}

void lv_import_freep(struct lv_import **imp)
{
	lv_import_free(*imp);
}
