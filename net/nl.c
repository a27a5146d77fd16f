/* SPDX-License-Identifier: MIT */
#include <fcntl.h>
#include <linux/netlink.h>
#include <stdarg.h>
#include <sys/socket.h>

#include <netlink/errno.h>
#include <netlink/msg.h>
#include <netlink/attr.h>
#include <netlink/socket.h>
#include <linux/rtnetlink.h>
#include <net/if.h>

#include "common/log.h"
#include "net/nl-internal.h"

#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif

/* The reverse of libnl's nl_syserr2nlerr(); lossy for NLE_FAILURE, which is
 * why the error callback below records the kernel's errno when it can. */
int qv_nlerr_to_errno(int nlerr)
{
	switch (nlerr < 0 ? -nlerr : nlerr) {
	case 0: return 0;
	case NLE_INTR: return -EINTR;
	case NLE_BAD_SOCK: return -EBADF;
	case NLE_AGAIN: return -EAGAIN;
	case NLE_NOMEM: return -ENOMEM;
	case NLE_EXIST: return -EEXIST;
	case NLE_INVAL: return -EINVAL;
	case NLE_RANGE: return -ERANGE;
	case NLE_MSGSIZE: return -EMSGSIZE;
	case NLE_OPNOTSUPP: return -EOPNOTSUPP;
	case NLE_AF_NOSUPPORT: return -EAFNOSUPPORT;
	case NLE_OBJ_NOTFOUND: return -ENOENT;
	case NLE_NOATTR: return -ENODATA;
	case NLE_MISSING_ATTR: return -EINVAL;
	case NLE_AF_MISMATCH: return -EAFNOSUPPORT;
	case NLE_SEQ_MISMATCH: return -EPROTO;
	case NLE_MSG_OVERFLOW: return -EOVERFLOW;
	case NLE_MSG_TRUNC: return -EMSGSIZE;
	case NLE_NOADDR: return -EADDRNOTAVAIL;
	case NLE_SRCRT_NOSUPPORT: return -EOPNOTSUPP;
	case NLE_MSG_TOOSHORT: return -EBADMSG;
	case NLE_MSGTYPE_NOSUPPORT: return -EOPNOTSUPP;
	case NLE_OBJ_MISMATCH: return -EINVAL;
	case NLE_NOCACHE: return -ENOENT;
	case NLE_BUSY: return -EBUSY;
	case NLE_PROTO_MISMATCH: return -EPROTONOSUPPORT;
	case NLE_NOACCESS: return -EACCES;
	case NLE_PERM: return -EPERM;
	case NLE_PKTLOC_FILE: return -ENOENT;
	case NLE_PARSE_ERR: return -EBADMSG;
	case NLE_NODEV: return -ENODEV;
	case NLE_IMMUTABLE: return -EPERM;
	case NLE_DUMP_INTR: return -EINTR;
	case NLE_ATTRSIZE: return -EINVAL;
	default: return -EIO;
	}
}

/* Record the raw errno and the extended-ACK string, then let libnl return
 * its usual code (NL_STOP). `e` sits right after its nlmsghdr. */
static int on_nl_error(struct sockaddr_nl *who, struct nlmsgerr *e, void *arg)
{
	qv_netlink *nl = arg;
	struct nlmsghdr *hdr = (struct nlmsghdr *)((char *)e - NLMSG_HDRLEN);

	nl->last_errno = e->error < 0 ? -e->error : e->error;
	nl->last_msg[0] = '\0';
	if (hdr->nlmsg_flags & NLM_F_ACK_TLVS) {
		struct nlattr *tb[NLMSGERR_ATTR_MAX + 1];
		int off = NLMSG_HDRLEN + (int)sizeof(int) +
			  (int)((hdr->nlmsg_flags & NLM_F_CAPPED) ? NLMSG_HDRLEN
								    : NLMSG_ALIGN(e->msg.nlmsg_len));
		int len = (int)hdr->nlmsg_len - off;

		if (len > 0 &&
		    nla_parse(tb, NLMSGERR_ATTR_MAX, (struct nlattr *)((char *)hdr + off), len,
			      NULL) == 0 &&
		    tb[NLMSGERR_ATTR_MSG])
			snprintf(nl->last_msg, sizeof(nl->last_msg), "%.*s",
				 nla_len(tb[NLMSGERR_ATTR_MSG]),
				 (const char *)nla_data(tb[NLMSGERR_ATTR_MSG]));
	}
	return NL_STOP;
}

int qv_netlink_open(qv_netlink **ret, struct qv_error *errp)
{
	qv_netlink *nl;
	int r, one = 1;

	nl = calloc(1, sizeof(*nl));
	if (!nl)
		return qv_error_set(errp, ENOMEM, QV_REASON_INTERNAL, "out of memory");
	nl->sk = nl_socket_alloc();
	if (!nl->sk) {
		free(nl);
		return qv_error_set(errp, ENOMEM, QV_REASON_INTERNAL, "out of memory");
	}
	r = nl_connect(nl->sk, NETLINK_ROUTE);
	if (r < 0) {
		r = qv_nlerr_to_errno(r);
		qv_netlink_free(nl);
		return qv_error_set(errp, r, NULL, "cannot open rtnetlink socket: %s", strerror(-r));
	}
	/* Close-on-exec: libnl opens the socket without it. */
	(void)fcntl(nl_socket_get_fd(nl->sk), F_SETFD, FD_CLOEXEC);
	nl_socket_set_buffer_size(nl->sk, 1 << 20, 1 << 20);
	/* Best effort: older kernels lack these. */
	(void)setsockopt(nl_socket_get_fd(nl->sk), SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));
	(void)setsockopt(nl_socket_get_fd(nl->sk), SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
	nl_socket_modify_err_cb(nl->sk, NL_CB_CUSTOM, on_nl_error, nl);
	*ret = nl;
	return 0;
}

qv_netlink *qv_netlink_free(qv_netlink *nl)
{
	if (!nl)
		return NULL;
	if (nl->sk)
		nl_socket_free(nl->sk); /* closes the socket */
	free(nl);
	return NULL;
}

void qv_nl_begin(qv_netlink *nl)
{
	nl->last_errno = 0;
	nl->last_msg[0] = '\0';
}

int qv_nl_errno(qv_netlink *nl, int nlerr)
{
	if (nlerr >= 0)
		return 0;
	if (nl && nl->last_errno > 0)
		return -nl->last_errno;
	return qv_nlerr_to_errno(nlerr);
}

int qv_nl_error(qv_netlink *nl, int nlerr, struct qv_error *errp, const char *reason,
		const char *fmt, ...)
{
	char what[256];
	int r = qv_nl_errno(nl, nlerr);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	log_debug("netlink: %s: %s (nl %d%s%s)", what, strerror(-r), nlerr,
		  nl && nl->last_msg[0] ? ", kernel: " : "", nl ? nl->last_msg : "");
	if (nl && nl->last_msg[0])
		return qv_error_set(errp, r, reason, "%s: %s (kernel: %s)", what, strerror(-r),
				    nl->last_msg);
	return qv_error_set(errp, r, reason, "%s: %s", what, strerror(-r));
}

int qv_nl_get_link(qv_netlink *nl, const char *name, struct rtnl_link **ret,
		   struct qv_error *errp)
{
	int r;

	qv_nl_begin(nl);
	r = rtnl_link_get_kernel(nl->sk, 0, name, ret);
	if (r < 0) {
		r = qv_nl_errno(nl, r);
		if (r == -ENODEV || r == -ENOENT)
			return qv_error_set(errp, ENODEV, QV_REASON_NOT_FOUND,
					    "link %s does not exist", name);
		return qv_nl_error(nl, r, errp, NULL, "cannot look up link %s", name);
	}
	return 0;
}

int qv_nl_setlink(qv_netlink *nl, const char *name, const struct qv_setlink *req)
{
	struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC };
	struct nl_msg *msg;
	int r;

	if (req->up >= 0) {
		ifi.ifi_change = IFF_UP;
		ifi.ifi_flags = req->up ? IFF_UP : 0;
	}
	msg = nlmsg_alloc_simple(RTM_SETLINK, NLM_F_REQUEST | NLM_F_ACK);
	if (!msg)
		return -NLE_NOMEM;
	r = nlmsg_append(msg, &ifi, sizeof(ifi), NLMSG_ALIGNTO);
	if (r >= 0)
		r = nla_put_string(msg, IFLA_IFNAME, name);
	if (r >= 0 && req->mtu)
		r = nla_put_u32(msg, IFLA_MTU, req->mtu);
	if (r >= 0 && req->master >= 0)
		r = nla_put_u32(msg, IFLA_MASTER, (uint32_t)req->master);
	if (r >= 0 && req->ns_fd >= 0)
		r = nla_put_u32(msg, IFLA_NET_NS_FD, (uint32_t)req->ns_fd);
	if (r >= 0 && req->ns_pid > 0)
		r = nla_put_u32(msg, IFLA_NET_NS_PID, (uint32_t)req->ns_pid);
	if (r >= 0 && req->group)
		r = nla_put_u32(msg, IFLA_GROUP, req->group);
	if (r < 0) {
		nlmsg_free(msg);
		return r;
	}
	qv_nl_begin(nl);
	r = nl_send_sync(nl->sk, msg); /* frees msg */
	return r;
}

int qv_nl_dellink_group(qv_netlink *nl, uint32_t group)
{
	struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC };
	struct nl_msg *msg;
	int r;

	msg = nlmsg_alloc_simple(RTM_DELLINK, NLM_F_REQUEST | NLM_F_ACK);
	if (!msg)
		return -NLE_NOMEM;
	r = nlmsg_append(msg, &ifi, sizeof(ifi), NLMSG_ALIGNTO);
	if (r >= 0)
		r = nla_put_u32(msg, IFLA_GROUP, group);
	if (r < 0) {
		nlmsg_free(msg);
		return r;
	}
	qv_nl_begin(nl);
	return nl_send_sync(nl->sk, msg);
}
