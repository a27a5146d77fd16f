/* SPDX-License-Identifier: MIT */
/* pki init | pki issue [--migration-only] HOST [NAME...]: a lab CA and host certificates in the
 * PKI dir (--pki-dir, $QVISOR_PKI_DIR, /etc/qvisor/pki); docs/security.md. */
#include <getopt.h>

#include "cli/output.h"
#include "cli/verbs.h"
#include "common/pki.h"
#include "common/tls.h"

static int parse_days(struct cli_ctx *ctx, const char *s, unsigned *ret)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (*end || end == s || v < 1 || v > 36500)
		return cli_usage_error(ctx, "invalid --days \"%s\" (1..36500)", s);
	*ret = (unsigned)v;
	return EXIT_OK;
}

int verb_pki_init(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = { { "cn", required_argument, NULL, 'n' },
					      { "days", required_argument, NULL, 'd' }, {} };
	const char *dir = qv_rpc_pki_dir(), *cn = "qvisor CA";
	unsigned days = QV_PKI_DEFAULT_DAYS;
	struct qv_error err = {};
	int c, r;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'n')
			cn = optarg;
		else if (c != 'd' || (r = parse_days(ctx, optarg, &days)) != EXIT_OK)
			return c == 'd' ? r : cli_usage_error(ctx, "invalid option");
	}
	if (optind != argc)
		return cli_usage_error(ctx, "unexpected argument \"%s\"", argv[optind]);
	r = qv_pki_init(dir, cn, days, &err);
	if (r < 0)
		return cli_report(ctx, NULL, r, &err);
	printf("CA \"%s\" created: %s/%s (private key %s/%s, mode 0600: keep it off the "
	       "hosts once they have their certificates)\n", cn, dir, QV_PKI_CA_CERT, dir,
	       QV_PKI_CA_KEY);
	return EXIT_OK;
}

int verb_pki_issue(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = { { "out", required_argument, NULL, 'o' },
					      { "days", required_argument, NULL, 'd' },
					      { "migration-only", no_argument, NULL, 'm' }, {} };
	const char *dir = qv_rpc_pki_dir(), *out = NULL;
	unsigned days = QV_PKI_DEFAULT_DAYS;
	struct qv_error err = {};
	bool mig_only = false;
	int c, r;

	while ((c = getopt_long(argc, argv, "o:", opts, NULL)) != -1) {
		if (c == 'o')
			out = optarg;
		else if (c == 'm')
			mig_only = true;
		else if (c != 'd' || (r = parse_days(ctx, optarg, &days)) != EXIT_OK)
			return c == 'd' ? r : cli_usage_error(ctx, "invalid option");
	}
	if (argc - optind < 1)
		return cli_usage_error(ctx, "expected HOST [NAME...]");
	if (argc - optind - 1 > QV_PKI_MAX_NAMES)
		return cli_usage_error(ctx, "at most %d extra names", QV_PKI_MAX_NAMES);
	out = out ?: dir;
	r = (mig_only ? qv_pki_issue_migration : qv_pki_issue)(
		dir, out, argv[optind], (const char *const *)argv + optind + 1,
		(size_t)(argc - optind - 1), days, &err);
	if (r < 0)
		return cli_report(ctx, NULL, r, &err);
	if (mig_only)
		printf("Host \"%s\": migration-only certificate in %s: %s, %s (key mode 0600; "
		       "restart qvisord to use it)\n", argv[optind], out, QV_PKI_MIGRATE_CERT,
		       QV_PKI_MIGRATE_KEY);
	else
		printf("Host \"%s\" issued in %s: %s, %s, %s, %s (keys mode 0600), and the "
		       "migration-only pair for its QEMUs %s, %s\n", argv[optind], out,
		       QV_PKI_SERVER_CERT, QV_PKI_SERVER_KEY, QV_PKI_CLIENT_CERT, QV_PKI_CLIENT_KEY,
		       QV_PKI_MIGRATE_CERT, QV_PKI_MIGRATE_KEY);
	return EXIT_OK;
}
