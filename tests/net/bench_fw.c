/* SPDX-License-Identifier: MIT */
/* Bench driver for scripts/bench/firewall.sh (not a Criterion test). In the
 * current netns:
 *   bench_fw VMS RULES DIR
 * builds VMS NICs with RULES rules each (plus anti-spoofing), and
 *   1. writes the same ruleset as DIR/ruleset.nft (for `nft -f`), and the
 *      iptables + ebtables equivalent as DIR/iptables.rules, DIR/ebtables.rules;
 *   2. generates + applies it through qvisor (net/fw.h, libnftables) as one
 *      transaction: "qvisor-load <s>";
 *   3. changes one rule of one NIC live (its old elements out, flush+refill
 *      of its chains, its new elements in: one transaction) 50 times: "qvisor-change median <s> max <s> cpu <s>", and
 *      one rule of the security group every NIC uses: "qvisor-group ...";
 *   4. deletes the table.
 *   bench_fw VMS RULES DIR load TAP=MAC=IP [TAP=MAC=IP ...]
 * instead gives the first NICs those real names, loads the ruleset as one
 * transaction and leaves it in place (scripts/bench/firewall-throughput.sh
 * streams between two guests through it). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "net/fw.h"

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CPU time of this process (user + sys): what the machine's load does not
 * inflate the way it inflates wall time. */
static double cpu(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void make_rule(struct vm_fw_rule *r, unsigned vm, unsigned k)
{
	memset(r, 0, sizeof(*r));
	r->dir = k % 2 ? VM_FW_OUT : VM_FW_IN;
	r->proto = k % 3 == 2 ? VM_FW_UDP : VM_FW_TCP;
	r->ports[0][0] = r->ports[0][1] = (uint16_t)(1000 + k * 10 + vm % 10);
	r->n_ports = 1;
	snprintf(r->cidr, sizeof(r->cidr), "10.%u.%u.0/24", 100 + k, vm % 250);
	r->family = 4;
	r->action = k == 9 ? VM_FW_DROP : VM_FW_ACCEPT;
}

/* The iptables/ebtables equivalent, the way nwfilter-style setups do it:
 * ebtables for MAC/ARP/IP anti-spoofing, iptables with physdev for rules. */
static void write_xtables(const char *dir, unsigned vms, unsigned rules, struct vm_fw *fws,
			  char (*taps)[16], char (*macs)[18], char (*ips)[16])
{
	char p[512];
	FILE *eb, *ip;

	snprintf(p, sizeof(p), "%s/ebtables.rules", dir);
	eb = fopen(p, "w");
	snprintf(p, sizeof(p), "%s/iptables.rules", dir);
	ip = fopen(p, "w");
	if (!eb || !ip)
		exit(1);
	fprintf(eb, "*filter\n:INPUT ACCEPT\n:FORWARD ACCEPT\n:OUTPUT ACCEPT\n");
	fprintf(ip, "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n");
	for (unsigned v = 0; v < vms; v++)
		fprintf(eb, ":V%u ACCEPT\n", v), fprintf(ip, ":V%u-in - [0:0]\n:V%u-out - [0:0]\n", v, v);
	for (unsigned v = 0; v < vms; v++) {
		fprintf(eb, "-A FORWARD -i %s -j V%u\n-A INPUT -i %s -j V%u\n", taps[v], v, taps[v], v);
		fprintf(eb, "-A V%u -s ! %s -j DROP\n", v, macs[v]);
		fprintf(eb, "-A V%u -p ARP --arp-mac-src ! %s -j DROP\n", v, macs[v]);
		fprintf(eb, "-A V%u -p ARP --arp-ip-src ! %s -j DROP\n", v, ips[v]);
		fprintf(eb, "-A V%u -p IPv4 --ip-src ! %s -j DROP\n", v, ips[v]);
		fprintf(eb, "-A V%u -p IPv4 --ip-proto udp --ip-sport 67 -j DROP\n", v);
		fprintf(ip, "-A FORWARD -m physdev --physdev-in %s --physdev-is-bridged -j V%u-out\n",
			taps[v], v);
		fprintf(ip, "-A FORWARD -m physdev --physdev-out %s --physdev-is-bridged -j V%u-in\n",
			taps[v], v);
		for (unsigned k = 0; k < rules; k++) {
			const struct vm_fw_rule *r = &fws[v].rules[k];
			fprintf(ip, "-A V%u-%s -p %s %s %s --dport %u -j %s\n", v,
				r->dir == VM_FW_IN ? "in" : "out", r->proto == VM_FW_TCP ? "tcp" : "udp",
				r->dir == VM_FW_IN ? "-s" : "-d", r->cidr, r->ports[0][0],
				r->action == VM_FW_DROP ? "DROP" : "ACCEPT");
		}
	}
	fprintf(eb, "COMMIT\n");
	fprintf(ip, "COMMIT\n");
	fclose(eb);
	fclose(ip);
}

int main(int argc, char **argv)
{
	unsigned vms = argc > 1 ? (unsigned)atoi(argv[1]) : 100;
	unsigned rules = argc > 2 ? (unsigned)atoi(argv[2]) : 10;
	const char *dir = argc > 3 ? argv[3] : "/tmp";
	struct vm_fw *fws = calloc(vms, sizeof(*fws));
	struct qv_fw_nic *nics = calloc(vms, sizeof(*nics));
	char (*taps)[16] = calloc(vms, 16), (*macs)[18] = calloc(vms, 18), (*ips)[16] = calloc(vms, 16);
	struct qv_fw_opts o = { 0 };
	struct vm_fw_rule grules[10];
	struct qv_fw_group g = { "shared", grules, 10 };
	struct qv_error err = {};
	qv_nft *nft = NULL;
	char p[512];

	if (!fws || !nics || !taps || !macs || !ips || rules > VM_FW_RULES_MAX)
		return 1;
	for (unsigned v = 0; v < vms; v++) {
		vm_fw_defaults(&fws[v]);
		snprintf(taps[v], 16, "qb%08xn0", v);
		snprintf(macs[v], 18, "52:54:00:%02x:%02x:%02x", (v >> 16) & 255, (v >> 8) & 255,
			 v & 255);
		snprintf(ips[v], 16, "10.0.%u.%u", v / 250, v % 250 + 2);
		snprintf(fws[v].addrs[0], sizeof(fws[v].addrs[0]), "%s", ips[v]);
		fws[v].n_addrs = 1;
		for (unsigned k = 0; k < rules; k++)
			make_rule(&fws[v].rules[k], v, k);
		fws[v].n_rules = rules;
		snprintf(fws[v].groups[0], sizeof(fws[v].groups[0]), "shared");
		fws[v].n_groups = 1;
		nics[v] = (struct qv_fw_nic){ .tap = taps[v], .mac = macs[v], .fw = &fws[v] };
	}
	for (unsigned k = 0; k < 10; k++)
		make_rule(&grules[k], 7, k);
	if (qv_nft_new(&nft, &err) < 0)
		return fprintf(stderr, "%s\n", err.message), 1;
	o.reject_ok = qv_nft_bridge_reject_ok(nft);

	if (argc > 4 && !strcmp(argv[4], "load")) {
		for (int i = 5; i < argc && (unsigned)(i - 5) < vms; i++) {
			unsigned v = (unsigned)(i - 5);
			if (sscanf(argv[i], "%15[^=]=%17[^=]=%15s", taps[v], macs[v], ips[v]) != 3)
				return fprintf(stderr, "bad NIC %s (TAP=MAC=IP)\n", argv[i]), 2;
			snprintf(fws[v].addrs[0], sizeof(fws[v].addrs[0]), "%s", ips[v]);
		}
		qv_fw_batch *lb = qv_fw_batch_new();
		if (qv_fw_plan(lb, &o, NULL, nics, vms, &g, 1, &err) < 0 ||
		    qv_nft_run(nft, qv_fw_batch_text(lb), &err) < 0)
			return fprintf(stderr, "%s\n", err.message), 1;
		qv_fw_batch_free(lb);
		qv_nft_free(nft);
		return 0;
	}

	/* 1. the same ruleset for nft -f, and the xtables equivalent */
	qv_fw_batch *b = qv_fw_batch_new();
	if (qv_fw_plan(b, &o, NULL, nics, vms, &g, 1, &err) < 0)
		return fprintf(stderr, "%s\n", err.message), 1;
	snprintf(p, sizeof(p), "%s/ruleset.nft", dir);
	FILE *f = fopen(p, "w");
	if (!f)
		return 1;
	fputs(qv_fw_batch_text(b), f);
	fclose(f);
	qv_fw_batch_free(b);
	write_xtables(dir, vms, rules, fws, taps, macs, ips);

	/* 2. generate + apply, one transaction */
	double t0 = now(), c0 = cpu();
	b = qv_fw_batch_new();
	if (qv_fw_plan(b, &o, NULL, nics, vms, &g, 1, &err) < 0 ||
	    qv_nft_run(nft, qv_fw_batch_text(b), &err) < 0)
		return fprintf(stderr, "%s\n", err.message), 1;
	double t1 = now(), c1 = cpu();
	qv_fw_batch_free(b);
	printf("qvisor-load %u VMs x %u rules: %.6f s cpu %.6f s\n", vms, rules, t1 - t0, c1 - c0);

	if (getenv("BENCH_FW_LOAD_ONLY")) /* for perf: the load alone */
		return 0;
	/* 3. one live rule change with everything loaded: a NIC's own rule,
	 * then the shared group's */
	enum { N = 50 };
	double d[N], dc[N];
	qv_fw_batch *undo = qv_fw_batch_new();
	if (qv_fw_emit_nic_undo(undo, &o, &nics[vms / 2], &err) < 0)
		return fprintf(stderr, "%s\n", err.message), 1;
	for (int grp = 0; grp < 2; grp++) {
		for (int i = 0; i < N; i++) {
			uint16_t port = (uint16_t)(2000 + i);
			struct vm_fw_rule *r = grp ? &grules[0] : &fws[vms / 2].rules[0];
			r->ports[0][0] = r->ports[0][1] = port;
			double a = now(), ac = cpu();
			b = qv_fw_batch_new();
			/* a NIC change: its chains and rule maps refilled; its
			 * elements of the shared sets replaced only when they
			 * differ (what the daemon does with the undo it keeps) */
			int x = 0;
			if (grp)
				x = qv_fw_emit_group(b, &o, &g);
			else {
				qv_fw_batch *nu = qv_fw_batch_new();
				x = qv_fw_emit_nic_undo(nu, &o, &nics[vms / 2], &err);
				if (x >= 0 && strcmp(qv_fw_batch_text(nu), qv_fw_batch_text(undo))) {
					x = qv_fw_batch_addf(b, "%s", qv_fw_batch_text(undo));
					if (x >= 0)
						x = qv_fw_emit_nic_elements(b, &o, &nics[vms / 2], &err);
				}
				if (x >= 0)
					x = qv_fw_emit_nic_chains(b, &o, &nics[vms / 2], &err);
				qv_fw_batch_free(undo);
				undo = nu;
			}
			if (x < 0 || qv_nft_run(nft, qv_fw_batch_text(b), &err) < 0)
				return fprintf(stderr, "%s\n", err.message), 1;
			d[i] = now() - a;
			dc[i] = cpu() - ac;
			qv_fw_batch_free(b);
		}
		qsort(d, N, sizeof(d[0]), cmp);
		qsort(dc, N, sizeof(dc[0]), cmp);
		printf("qvisor-%s 1 of %u rules: median %.6f s max %.6f s cpu %.6f s\n",
		       grp ? "group" : "change", vms * rules + 10, d[N / 2], d[N - 1], dc[N / 2]);
	}

	qv_fw_batch_free(undo);
	/* 4. gone */
	if (qv_nft_run(nft, "delete table bridge qvisor\n", &err) < 0)
		return fprintf(stderr, "%s\n", err.message), 1;
	qv_nft_free(nft);
	return 0;
}
