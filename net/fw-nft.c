/* SPDX-License-Identifier: MIT */
/* libnftables: run a batch of text commands as one transaction, list as
 * JSON, probe for bridge reject. */
#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/netlink.h>
#include <string.h>

#include <nftables/libnftables.h>

#include "common/macro.h"
#include "net/fw.h"

struct qv_nft {
	struct nft_ctx *ctx;
};

/* libnftables calls exit() when it cannot open its netlink socket (a
 * kernel without nfnetlink, e.g. the lab VM's): ask the kernel first. */
static int nfnetlink_probe(struct qv_error *errp)
{
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);

	if (fd < 0)
		return qv_error_set(errp, errno, QV_REASON_UNAVAILABLE,
				    "this kernel has no nfnetlink (nf_tables): %m");
	close(fd);
	return 0;
}

int qv_nft_new(qv_nft **ret, struct qv_error *errp)
{
	qv_nft *n;
	int r = nfnetlink_probe(errp);

	if (r < 0)
		return r;
	n = calloc(1, sizeof(*n));
	if (!n)
		return qv_error_set(errp, ENOMEM, QV_REASON_INTERNAL, "out of memory");
	n->ctx = nft_ctx_new(NFT_CTX_DEFAULT);
	if (!n->ctx) {
		free(n);
		return qv_error_set(errp, ENOMEM, QV_REASON_UNAVAILABLE,
				    "cannot create an nftables context");
	}
	if (nft_ctx_buffer_output(n->ctx) < 0 || nft_ctx_buffer_error(n->ctx) < 0) {
		qv_nft_free(n);
		return qv_error_set(errp, ENOMEM, QV_REASON_INTERNAL, "out of memory");
	}
	*ret = n;
	return 0;
}

qv_nft *qv_nft_free(qv_nft *n)
{
	if (n) {
		if (n->ctx)
			nft_ctx_free(n->ctx);
		free(n);
	}
	return NULL;
}

void qv_nft_freep(qv_nft **n)
{
	*n = qv_nft_free(*n);
}

/* nft's error text, condensed to its first "Error: ..." line. */
static void error_line(qv_nft *n, char *buf, size_t len)
{
	const char *e = nft_ctx_get_error_buffer(n->ctx);
	const char *p = e ? strstr(e, "Error: ") : NULL;

	if (!p)
		p = e && *e ? e : "unknown error";
	size_t l = strcspn(p, "\n");
	if (l >= len)
		l = len - 1;
	memcpy(buf, p, l);
	buf[l] = 0;
}

int qv_nft_run(qv_nft *n, const char *cmds, struct qv_error *errp)
{
	char msg[256];

	if (!cmds || !*cmds)
		return 0;
	nft_ctx_output_set_flags(n->ctx, 0);
	if (nft_run_cmd_from_buffer(n->ctx, cmds) == 0)
		return 0;
	error_line(n, msg, sizeof(msg));
	int err = strstr(msg, "No such file") ? ENOENT
		  : strstr(msg, "Operation not permitted") ? EPERM
		  : strstr(msg, "File exists") ? EEXIST : EIO;
	return qv_error_set(errp, err, err == EPERM ? QV_REASON_PERMISSION : QV_REASON_UNAVAILABLE,
			    "nftables refused the batch: %s", msg);
}

int qv_nft_list_json(qv_nft *n, const char *cmd, json_object **ret, struct qv_error *errp)
{
	char msg[256];
	int r;

	nft_ctx_output_set_flags(n->ctx, NFT_CTX_OUTPUT_JSON | NFT_CTX_OUTPUT_HANDLE);
	r = nft_run_cmd_from_buffer(n->ctx, cmd);
	nft_ctx_output_set_flags(n->ctx, 0);
	if (r != 0) {
		error_line(n, msg, sizeof(msg));
		if (strstr(msg, "No such file"))
			return -ENOENT;
		return qv_error_set(errp, EIO, QV_REASON_UNAVAILABLE, "nft %s: %s", cmd, msg);
	}
	json_object *o = json_tokener_parse(nft_ctx_get_output_buffer(n->ctx));
	if (!o)
		return qv_error_set(errp, EIO, QV_REASON_INTERNAL, "nft %s: unparsable JSON", cmd);
	*ret = o;
	return 0;
}

bool qv_nft_bridge_reject_ok(qv_nft *n)
{
	static const char probe[] = "add table bridge qvisor_probe\n"
				    "add chain bridge qvisor_probe c { type filter hook prerouting "
				    "priority 0; }\n"
				    "add rule bridge qvisor_probe c reject\n";
	bool ok;

	nft_ctx_set_dry_run(n->ctx, true);
	ok = nft_run_cmd_from_buffer(n->ctx, probe) == 0;
	nft_ctx_set_dry_run(n->ctx, false);
	return ok;
}
