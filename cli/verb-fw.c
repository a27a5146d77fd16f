/* SPDX-License-Identifier: MIT */
/* fw show VM; fw group define FILE|undefine NAME|list|show NAME */
#include <inttypes.h>

#include "cli/output.h"
#include "cli/verbs.h"

static const char *str(json_object *o, const char *key)
{
	json_object *v;
	return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : "";
}

static int64_t num(json_object *o, const char *key)
{
	json_object *v;
	return json_object_object_get_ex(o, key, &v) ? json_object_get_int64(v) : 0;
}

/* "in tcp 22,80 from 10.0.0.0/8 accept" */
static void print_rule(const char *prefix, json_object *r)
{
	json_object *ports;
	const char *dir = str(r, "direction");

	printf("  %-10s %-3s %-6s", prefix, dir, str(r, "protocol"));
	if (json_object_object_get_ex(r, "ports", &ports)) {
		printf(" port ");
		for (size_t i = 0; i < json_object_array_length(ports); i++)
			printf("%s%s", i ? "," : "",
			       json_object_get_string(json_object_array_get_idx(ports, i)));
	}
	if (*str(r, "icmp_type"))
		printf(" type %s", str(r, "icmp_type"));
	if (*str(r, "cidr"))
		printf(" %s %s", streq(dir, "in") ? "from" : "to", str(r, "cidr"));
	if (*str(r, "rate"))
		printf(" rate %s", str(r, "rate"));
	printf(" %s  [%" PRId64 " pkts, %" PRId64 " bytes]\n", str(r, "action"), num(r, "packets"),
	       num(r, "bytes"));
}

static void print_nic(json_object *nic)
{
	json_object *fw, *a, *spoof, *groups;

	json_object_object_get_ex(nic, "firewall", &fw);
	printf("NIC %" PRId64 " %s %s%s\n", num(nic, "index"), str(nic, "tap"), str(nic, "mac"),
	       json_object_get_boolean(json_object_object_get(nic, "installed")) ? ""
										 : " (not running)");
	printf("  anti-spoofing %s", json_object_get_boolean(json_object_object_get(fw, "anti_spoof"))
					     ? "on" : "off");
	if (json_object_object_get_ex(fw, "addresses", &a) && json_object_array_length(a)) {
		printf(", addresses");
		for (size_t i = 0; i < json_object_array_length(a); i++)
			printf(" %s", json_object_get_string(json_object_array_get_idx(a, i)));
	}
	if (*str(nic, "learned"))
		printf(", leased %s", str(nic, "learned"));
	printf("\n");
	if (json_object_object_get_ex(nic, "anti_spoof_drops", &spoof)) {
		json_object_object_foreach(spoof, k, v)
			if (num(v, "packets"))
				printf("  %-10s dropped %" PRId64 " pkts, %" PRId64 " bytes\n", k,
				       num(v, "packets"), num(v, "bytes"));
	}
	if (json_object_object_get_ex(nic, "groups", &groups))
		for (size_t i = 0; i < json_object_array_length(groups); i++) {
			json_object *g = json_object_array_get_idx(groups, i), *rules;
			if (json_object_object_get_ex(g, "rules", &rules))
				for (size_t k = 0; k < json_object_array_length(rules); k++)
					print_rule(str(g, "name"), json_object_array_get_idx(rules, k));
		}
	if (json_object_object_get_ex(nic, "rules", &a))
		for (size_t i = 0; i < json_object_array_length(a); i++)
			print_rule("rule", json_object_array_get_idx(a, i));
	for (int in = 1; in >= 0; in--) {
		json_object *p = json_object_object_get(nic, in ? "policy_in" : "policy_out");
		printf("  %-10s %-3s %-6s %s  [%" PRId64 " pkts, %" PRId64 " bytes]\n", "policy",
		       in ? "in" : "out", "", str(p, "action"), num(p, "packets"), num(p, "bytes"));
	}
}

int verb_fw_show(struct cli_ctx *ctx, int argc, char **argv)
{
	_cleanup_json_ json_object *res = NULL;
	json_object *nics;
	int r;

	if (argc != 2 || argv[1][0] == '-')
		return cli_usage_error(ctx, "expected one VM name");
	r = cli_call(ctx, "fw.show", cli_params_name(argv[1]), CLI_CALL_TIMEOUT_MS, &res);
	if (r != EXIT_OK)
		return r;
	if (ctx->json) {
		out_json(res, stdout);
		return EXIT_OK;
	}
	printf("VM %s (table %s; reject acts as %s)\n", str(res, "name"), str(res, "table"),
	       str(res, "reject"));
	if (json_object_object_get_ex(res, "nics", &nics))
		for (size_t i = 0; i < json_object_array_length(nics); i++)
			print_nic(json_object_array_get_idx(nics, i));
	return EXIT_OK;
}

static int group_define(struct cli_ctx *ctx, int argc, char **argv)
{
	_cleanup_json_ json_object *res = NULL;
	json_object *spec;
	int r;

	if (argc != 2)
		return cli_usage_error(ctx, "expected one group file ({name, rules})");
	if ((r = cli_read_json_file(ctx, argv[1], &spec)) != EXIT_OK)
		return r;
	json_object *p = json_object_new_object();
	json_object_object_add(p, "group", spec);
	r = cli_call(ctx, "fw.group.define", p, CLI_CALL_TIMEOUT_MS, &res);
	if (r == EXIT_OK)
		ctx->json ? out_json(res, stdout)
			  : (void)printf("group %s: defined (%zu rules)\n", str(res, "name"),
					 json_object_array_length(json_object_object_get(res, "rules")));
	return r;
}

int verb_fw_group(struct cli_ctx *ctx, int argc, char **argv)
{
	static const char *const cols[] = { "name", "rules", "used_by", NULL };
	_cleanup_json_ json_object *res = NULL;
	json_object *arr;
	int r;

	if (argc < 2)
		return cli_usage_error(ctx, "expected define FILE, undefine NAME, list or show NAME");
	if (streq(argv[1], "define"))
		return group_define(ctx, argc - 1, argv + 1);
	if (streq(argv[1], "list")) {
		if (argc != 2)
			return cli_usage_error(ctx, "list takes no arguments");
		r = cli_call(ctx, "fw.group.list", json_object_new_object(), CLI_CALL_TIMEOUT_MS, &res);
		if (r == EXIT_OK && ctx->json)
			out_json(res, stdout);
		else if (r == EXIT_OK && json_object_object_get_ex(res, "groups", &arr))
			out_table_from_array(arr, cols, stdout);
		return r;
	}
	if ((streq(argv[1], "undefine") || streq(argv[1], "show")) && argc == 3 &&
	    argv[2][0] != '-') {
		bool show = streq(argv[1], "show");
		r = cli_call(ctx, show ? "fw.group.show" : "fw.group.undefine",
			     cli_params_name(argv[2]), CLI_CALL_TIMEOUT_MS, &res);
		if (r != EXIT_OK)
			return r;
		if (ctx->json || show)
			out_json(res, stdout);
		else
			printf("group %s: undefined\n", argv[2]);
		return EXIT_OK;
	}
	return cli_usage_error(ctx, "expected define FILE, undefine NAME, list or show NAME");
}

/* fw set VM [--nic N] FILE|-: FILE holds the NIC's "firewall" object, or
 * null for the defaults. */
int verb_fw_set(struct cli_ctx *ctx, int argc, char **argv)
{
	_cleanup_json_ json_object *res = NULL;
	const char *vm = NULL, *file = NULL;
	json_object *fw = NULL;
	long nic = 0;
	int r;

	for (int i = 1; i < argc; i++) {
		if (streq(argv[i], "--nic") && i + 1 < argc) {
			char *end;
			nic = strtol(argv[++i], &end, 10);
			if (*end || nic < 0 || nic > 7)
				return cli_usage_error(ctx, "--nic: a NIC index 0..7");
		} else if (!vm && argv[i][0] != '-')
			vm = argv[i];
		else if (!file)
			file = argv[i];
		else
			return cli_usage_error(ctx, "unexpected argument %s", argv[i]);
	}
	if (!vm || !file)
		return cli_usage_error(ctx, "expected a VM and a firewall file (or -)");
	if ((r = cli_read_json_file(ctx, file, &fw)) != EXIT_OK)
		return r;
	json_object *p = json_object_new_object();
	json_object_object_add(p, "name", json_object_new_string(vm));
	json_object_object_add(p, "nic", json_object_new_int64(nic));
	json_object_object_add(p, "firewall", fw);
	r = cli_call(ctx, "fw.vm.set", p, CLI_CALL_TIMEOUT_MS, &res);
	if (r == EXIT_OK)
		ctx->json ? out_json(res, stdout)
			  : (void)printf("%s NIC %ld: firewall changed\n", vm, nic);
	return r;
}
