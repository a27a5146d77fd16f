/* SPDX-License-Identifier: MIT */
/* qvisor: command-line client for qvisord. One file per verb (cli/verb-*.c),
 * dispatched from the table below. */
#include <getopt.h>
#include <signal.h>

#include "cli/cli.h"
#include "cli/verb-libvirt.h"
#include "cli/verb-nic.h"
#include "cli/verbs.h"
#include "common/log.h"

/* cli/verb-limits.c, cli/verb-top.c */
int verb_limits(struct cli_ctx *ctx, int argc, char **argv);
int verb_top(struct cli_ctx *ctx, int argc, char **argv);
/* cli/verb-policy.c */
int verb_policy_show(struct cli_ctx *ctx, int argc, char **argv);
int verb_policy_mode(struct cli_ctx *ctx, int argc, char **argv);
int verb_host_pressure(struct cli_ctx *ctx, int argc, char **argv);

const struct cli_verb cli_verbs[] = {
	{ "define", verb_define, "FILE|- | --from-libvirt FILE.xml [--lossy] [--dry-run]",
	  "Define a VM from a JSON spec file (- reads stdin) or a libvirt domain XML." },
	{ "dump-libvirt", verb_dump_libvirt, "NAME", "Print a VM's definition as libvirt domain XML." },
	{ "undefine", verb_undefine, "NAME...", "Remove VM definitions." },
	{ "list", verb_list, "[--all] [-o wide|name|COL,...]",
	  "List running VMs (--all: every defined VM; -o: columns, e.g. wide)." },
	{ "info", verb_info, "NAME", "Show a VM's state, spec and runtime details." },
	{ "start", verb_start, "NAME...|--all [--parallel N]",
	  "Start VMs concurrently (at most N requests in flight; default all)." },
	{ "stop", verb_stop, "NAME...|--all [--force] [--timeout S] [--parallel N]",
	  "Stop VMs: ACPI power-down, then quit/kill after S seconds (default 30)." },
	{ "reboot", verb_reboot, "NAME...", "Reboot VMs." },
	{ "pause", verb_pause, "NAME...", "Pause VMs' vCPUs." },
	{ "resume", verb_resume, "NAME...", "Resume paused VMs." },
	{ "balloon", verb_balloon, "NAME [SIZE]",
	  "Set the memory a VM's guest keeps (balloon target), or show the balloon." },
	{ "limits", verb_limits,
	  "NAME [--cpu PCT] [--memory-max S] [OPTION...]",
	  "Show or change a VM's resource limits (live when running; \"none\" removes one)." },
	{ "top", verb_top, "[NAME...] [--interval S] [--count N]",
	  "Per-VM CPU, memory, pids and pressure from its cgroup, refreshed." },
	{ "console", verb_console, "NAME", "Attach to a VM's serial console (Ctrl-] detaches)." },
	{ "events", verb_events, "[--vm NAME]", "Print daemon events until interrupted." },
	{ "host info", verb_host_info, "", "Show host facts (CPU, memory, accelerators)." },
	{ "host check", verb_host_check, "", "Check that this host can run VMs." },
	{ "host pressure", verb_host_pressure, "",
	  "Show the resource loop's overload signal and each VM's demand." },
	{ "policy show", verb_policy_show, "[VM]",
	  "Show the resource loop's allocations, demand and recent changes." },
	{ "policy mode", verb_policy_mode, "off|advise|enforce",
	  "Set the host's resource loop mode." },
	{ "net define", verb_net_define, "FILE|-", "Define a network from a JSON spec." },
	{ "net undefine", verb_net_undefine, "NAME", "Remove a network." },
	{ "net list", verb_net_list, "", "List networks." },
	{ "net info", verb_net_info, "NAME", "Show a network." },
	{ "nic-add", verb_nic_add, "VM (--network N|--bridge B) [--mac M]",
	  "Hot-plug a NIC into a running VM (runtime only)." },
	{ "nic-remove", verb_nic_remove, "VM MAC|netN", "Hot-unplug a NIC added with nic-add." },
	{ "image create", verb_image_create,
	  "NAME SIZE [--format raw|qcow2] [--encrypt [--passphrase-file F|-]]",
	  "Create an empty disk image (SIZE like 10G, 512M; --encrypt: qcow2 LUKS)." },
	{ "image list", verb_image_list, "", "List disk images." },
	{ "image delete", verb_image_delete, "NAME", "Delete a disk image." },
	{ "image clone", verb_image_clone, "SRC DST [--linked] [--bandwidth RATE] [--verify]",
	  "Copy an image (--linked: qcow2 overlay backed by SRC)." },
	{ "image import", verb_image_import,
	  "PATH NAME [--format raw|qcow2] [--bandwidth RATE] [--verify] [--passphrase-file F|-]",
	  "Import a file into the image pool (an encrypted one with its passphrase)." },
	{ "image import-foreign", verb_image_import_foreign,
	  "PATH NAME --format vmdk|vhdx|vdi|qed [--target raw|qcow2]",
	  "Convert a foreign disk image into the pool (qemu-img convert, with progress)." },
	{ "image import-ova", verb_image_import_ova, "PATH.ova NAME",
	  "Import an OVA: verify its manifest, convert its disks, print a drafted spec." },
	{ "image resize", verb_image_resize, "NAME SIZE", "Grow an image to SIZE." },
	{ "image rekey", verb_image_rekey, "NAME [--passphrase-file F|-]",
	  "Replace an encrypted image's passphrase (LUKS keyslots; no data copied)." },
	{ "migrate", verb_migrate, "VM --to URI [OPTIONS]",
	  "Live-migrate a running VM to the daemon at URI. Options: --max-downtime MS, "
	  "--bandwidth MiB/s, --deadline S, --allow-postcopy, --copy-storage, --plain, --dest-address IP, "
	  "--listen IP, --keep-definition, --insecure (plain-TCP stream), --quiet." },
	{ "migrate-cancel", verb_migrate_cancel, "VM", "Cancel a VM's outgoing migration." },
	{ "drill run", verb_drill_run, "FILE [--report DIR]",
	  "Run a scripted migration drill (docs/migration.md)." },
	{ "sim", verb_sim,
	  "--trace DIR|CSV --policy NAME [--param X] [--seed N] [--memory-aware] [--cost-model] "
	  "[--hosts N] [--json] [--csv FILE] [--svg FILE] [--explain N] [--balancer [--max-migrations N] "
	  "[--cooldown S] [--power-saving] [--empty-per-round N] [--underload X]]",
	  "Replay a CPU trace through a consolidation policy, no daemon needed (docs/policy.md)." },
	{ "pki init", verb_pki_init, "[--cn NAME] [--days N]",
	  "Create a lab CA (ca-cert.pem, ca-key.pem) in the PKI dir." },
	{ "pki issue", verb_pki_issue, "HOST [NAME...] [--out DIR] [--days N] [--migration-only]",
	  "Sign server, client and migration-only certificates for HOST (extra NAMEs/IPs in the "
	  "SAN)." },
	{ "rpc", verb_rpc, "METHOD [JSON-PARAMS] [--timeout S]",
	  "Call any RPC method and print the result as JSON." },
	{ "rpc-stdio", verb_rpc_stdio, "",
	  "Bridge stdin/stdout to the local daemon socket (used by ssh:// URIs)." },
	{ "help", verb_help, "[VERB]", "Show help for all verbs or one verb." },
	{ "fw show", verb_fw_show, "VM",
	  "Show a VM's firewall per NIC: anti-spoofing, groups, rules, with packet/byte counters." },
	{ "fw group", verb_fw_group, "define FILE|undefine NAME|list|show NAME",
	  "Define (or change live), remove, list or show firewall security groups." },
	{ "cluster hosts", verb_cluster_hosts, "",
	  "List the cluster's live hosts: address, labels, capacity, usage." },
	{ "cluster vms", verb_cluster_vms, "",
	  "List the cluster inventory: every VM, its owner host and state." },
	{ "fw set", verb_fw_set, "VM [--nic N] FILE|-",
	  "Replace a NIC's firewall (its spec \"firewall\" object; null: defaults), live." },
	{ "snapshot create", verb_snapshot_create, "VM NAME [--memory]",
	  "Snapshot a VM's disks (and with --memory its RAM and device state), live." },
	{ "snapshot list", verb_snapshot_list, "VM", "Show a VM's snapshot tree." },
	{ "snapshot revert", verb_snapshot_revert, "VM NAME",
	  "Put a VM back to a snapshot (restarts it; resumes it when memory was saved)." },
	{ "snapshot delete", verb_snapshot_delete, "VM NAME",
	  "Delete a snapshot, merging its image into the chain while the VM runs." },
	{ "backup", verb_backup,
	  "create VM [--full] [--bandwidth RATE] | status | cancel VM | list [VM] | info ID | verify ID | delete ID | "
	  "prune [VM] --keep-last N --keep-daily N [--dry-run] | restore ID --to IMAGE [--define NAME] "
	  "[--store DIR]",
	  "Back up running VMs (full/incremental), list, verify, prune and restore backups." },
	{ "cluster plan", verb_cluster_plan, "[--threshold F]",
	  "Dry run of the balancer on live data: what would move and why." },
	{ "cluster mode", verb_cluster_mode, "[off|advise|enforce]",
	  "Show or set the balancer's mode (stored in etcd for every leader)." },
	{ "host cordon", verb_host_cordon, "HOST [--reason TEXT]",
	  "Make a cluster host unschedulable: placement never picks it (kept until host resume)." },
	{ "host resume", verb_host_resume, "HOST", "Make a cordoned or evacuated host schedulable again." },
	{ "host evacuate", verb_host_evacuate, "HOST [--wait]",
	  "Cordon a cluster host and live-migrate its running VMs to hosts placement picks, in waves." },
	{ "move", verb_move, "VM --to HOST|tls://ADDR[:PORT] [--bandwidth MiB/s]",
	  "Cold-migrate a stopped VM: its definition and disks move to another host, verified "
	  "(docs/cluster.md)." },
	{ "migrate-status", verb_migrate_status, "VM [--json]",
	  "Show a VM's migration on this daemon: role, state, the step of a prepare in flight." },
};
const size_t cli_n_verbs = ARRAY_SIZE(cli_verbs);

void cli_print_main_help(FILE *f)
{
	fprintf(f,
		"usage: qvisor [--socket PATH | --connect URI] [--pki-dir DIR] [--json] VERB [ARGS...]\n"
		"\n"
		"Options:\n"
		"  -s, --socket PATH   daemon socket (default %s, env QVISOR_SOCKET)\n"
		"  -c, --connect URI   unix:///path, ssh://[user@]host[:port][/socket] or\n"
		"                      tls://host[:port] (env QVISOR_CONNECT)\n"
		"      --pki-dir DIR   CA and certificates for tls:// and pki verbs\n"
		"                      (default /etc/qvisor/pki, env QVISOR_PKI_DIR)\n"
		"  -j, --json          print results as JSON\n"
		"  -h, --help          show this help\n"
		"  -V, --version       show the version\n"
		"\n"
		"Verbs:\n",
		QV_RPC_DEFAULT_SOCKET);
	for (size_t i = 0; i < cli_n_verbs; i++) {
		char left[64];
		snprintf(left, sizeof(left), "%s %s", cli_verbs[i].name, cli_verbs[i].usage);
		if (strlen(left) > 26)
			fprintf(f, "  %s\n  %-26s  %s\n", left, "", cli_verbs[i].summary);
		else
			fprintf(f, "  %-26s  %s\n", left, cli_verbs[i].summary);
	}
	fprintf(f, "\nExit status: 0 ok, 1 operation failed, 2 usage error, 3 daemon unreachable,\n"
		   "4 not found, 5 conflict. See qvisor(1).\n");
}

/* Match "host info" style two-word verbs first, then one word. */
static const struct cli_verb *lookup(int argc, char **argv, int *ret_words)
{
	if (argc >= 2) {
		char two[128];
		snprintf(two, sizeof(two), "%s %s", argv[0], argv[1]);
		const struct cli_verb *v = cli_find_verb(two);
		if (v) {
			*ret_words = 2;
			return v;
		}
	}
	*ret_words = 1;
	return cli_find_verb(argv[0]);
}

static bool is_group(const char *word)
{
	size_t l = strlen(word);
	for (size_t i = 0; i < cli_n_verbs; i++)
		if (strncmp(cli_verbs[i].name, word, l) == 0 && cli_verbs[i].name[l] == ' ')
			return true;
	return false;
}

void cli_print_group_help(const char *group, FILE *f)
{
	size_t l = strlen(group);
	for (size_t i = 0; i < cli_n_verbs; i++)
		if (strncmp(cli_verbs[i].name, group, l) == 0 && cli_verbs[i].name[l] == ' ')
			cli_print_verb_help(&cli_verbs[i], f);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "connect", required_argument, NULL, 'c' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ "pki-dir", required_argument, NULL, 'P' },
		{}
	};
	struct cli_ctx ctx = { .verb = "qvisor" };
	const char *sock = NULL, *uri = NULL;
	int c, words;

	signal(SIGPIPE, SIG_IGN);
	log_set_ident("qvisor");
	while ((c = getopt_long(argc, argv, "+s:c:jhV", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			sock = optarg;
			break;
		case 'c':
			uri = optarg;
			break;
		case 'j':
			ctx.json = true;
			break;
		case 'P':
			qv_rpc_set_pki_dir(optarg);
			break;
		case 'h':
			cli_print_main_help(stdout);
			return EXIT_OK;
		case 'V':
			printf("qvisor %s\n", QV_VERSION);
			return EXIT_OK;
		default:
			fprintf(stderr, "Try 'qvisor --help'.\n");
			return EXIT_USAGE;
		}
	}
	if (sock && uri) {
		fprintf(stderr, "qvisor: --socket and --connect are mutually exclusive\n");
		return EXIT_USAGE;
	}
	ctx.uri = uri ?: sock ?: getenv("QVISOR_CONNECT") ?: getenv("QVISOR_SOCKET")
		?: QV_RPC_DEFAULT_SOCKET;
	if (optind >= argc) {
		cli_print_main_help(stderr);
		return EXIT_USAGE;
	}
	argc -= optind;
	argv += optind;
	const struct cli_verb *v = lookup(argc, argv, &words);
	if (!v) {
		if (is_group(argv[0])) {
			fprintf(stderr, "qvisor: %s: missing or unknown subcommand\n", argv[0]);
			cli_print_group_help(argv[0], stderr);
		} else
			fprintf(stderr, "qvisor: unknown verb \"%s\"; try 'qvisor help'\n", argv[0]);
		return EXIT_USAGE;
	}
	ctx.verb = v->name;
	argc -= words - 1;
	argv += words - 1;
	for (int i = 1; i < argc && !streq(argv[i], "--"); i++)
		if (streq(argv[i], "--help") || streq(argv[i], "-h")) {
			cli_print_verb_help(v, stdout);
			return EXIT_OK;
		}
	optind = 0; /* verbs run their own getopt */
	int r = v->fn(&ctx, argc, argv);
	qv_rpc_conn_free(ctx.conn);
	if (fflush(stdout) != 0 && r == EXIT_OK) {
		/* A reader that went away (| head) is no news to the user. */
		if (errno != EPIPE)
			fprintf(stderr, "qvisor: %s: write error: %s\n", ctx.verb, strerror(errno));
		return EXIT_FAILED;
	}
	return r;
}
