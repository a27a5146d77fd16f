/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <netinet/in.h>

#include <netlink/addr.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>

#include "net/addr.h"
#include "net/ifname.h"
#include "net/nl-internal.h"

static void nl_addr_putp(struct nl_addr **a)
{
	if (*a)
		nl_addr_put(*a);
}
static void rtnl_addr_putp(struct rtnl_addr **a)
{
	if (*a)
		rtnl_addr_put(*a);
}

/* Strict CIDR parse: inet_pton for the address, decimal prefix in range. */
static int parse_cidr(const char *cidr, int *ret_family, struct qv_error *errp)
{
	char buf[INET6_ADDRSTRLEN + 8], *slash, *end;
	unsigned char bin[sizeof(struct in6_addr)];
	int family;
	long plen;

	if (!cidr || strlen(cidr) >= sizeof(buf) || !(slash = strchr(cidr, '/')))
		goto bad;
	snprintf(buf, sizeof(buf), "%s", cidr);
	slash = buf + (slash - cidr);
	*slash = '\0';
	if (inet_pton(AF_INET, buf, bin) == 1)
		family = AF_INET;
	else if (inet_pton(AF_INET6, buf, bin) == 1)
		family = AF_INET6;
	else
		goto bad;
	errno = 0;
	plen = strtol(slash + 1, &end, 10);
	if (errno || end == slash + 1 || *end || plen < 0 || plen > (family == AF_INET ? 32 : 128))
		goto bad;
	*ret_family = family;
	return 0;
bad:
	return qv_error_set(errp, EINVAL, QV_REASON_INVALID_ARGUMENT,
			    "address '%.64s' is not of the form ADDRESS/PREFIXLEN", cidr ?: "");
}

int qv_addr_add(qv_netlink *nl, const char *ifname, const char *cidr, struct qv_error *errp)
{
	_cleanup_rtnl_link_ struct rtnl_link *l = NULL;
	_cleanup_(nl_addr_putp) struct nl_addr *local = NULL;
	_cleanup_(rtnl_addr_putp) struct rtnl_addr *a = NULL;
	int r, family = AF_UNSPEC;

	r = qv_ifname_check(ifname, NULL, errp);
	if (r < 0)
		return r;
	r = parse_cidr(cidr, &family, errp);
	if (r < 0)
		return r;
	r = qv_nl_get_link(nl, ifname, &l, errp);
	if (r < 0)
		return r;
	r = nl_addr_parse(cidr, family, &local);
	if (r < 0)
		return qv_nl_error(NULL, r, errp, QV_REASON_INVALID_ARGUMENT,
				   "cannot parse address %s", cidr);
	a = rtnl_addr_alloc();
	if (!a)
		return qv_error_set(errp, ENOMEM, QV_REASON_INTERNAL, "out of memory");
	rtnl_addr_set_ifindex(a, rtnl_link_get_ifindex(l));
	rtnl_addr_set_family(a, family);
	r = rtnl_addr_set_local(a, local);
	if (r < 0)
		return qv_nl_error(NULL, r, errp, NULL, "cannot set address %s", cidr);
	if (family == AF_INET6)
		rtnl_addr_set_flags(a, IFA_F_NODAD);
	qv_nl_begin(nl);
	r = rtnl_addr_add(nl->sk, a, NLM_F_EXCL);
	if (r < 0) {
		if (qv_nl_errno(nl, r) == -EEXIST)
			return qv_error_set(errp, EEXIST, QV_REASON_CONFLICT,
					    "address %s is already on %s", cidr, ifname);
		return qv_nl_error(nl, r, errp, NULL, "cannot add %s to %s", cidr, ifname);
	}
	return 0;
}

static bool is_link_local6(struct rtnl_addr *a)
{
	struct nl_addr *l = rtnl_addr_get_local(a);
	const unsigned char *b;

	if (!l || nl_addr_get_family(l) != AF_INET6 || nl_addr_get_len(l) < 2)
		return false;
	b = nl_addr_get_binary_addr(l);
	return b[0] == 0xfe && (b[1] & 0xc0) == 0x80;
}

int qv_addr_flush(qv_netlink *nl, const char *ifname, int family, struct qv_error *errp)
{
	_cleanup_rtnl_link_ struct rtnl_link *l = NULL;
	_cleanup_nl_cache_ struct nl_cache *cache = NULL;
	int r, ifindex;

	if (family != AF_UNSPEC && family != AF_INET && family != AF_INET6)
		return qv_error_set(errp, EAFNOSUPPORT, QV_REASON_INVALID_ARGUMENT,
				    "address family %d is not supported", family);
	r = qv_ifname_check(ifname, NULL, errp);
	if (r < 0)
		return r;
	r = qv_nl_get_link(nl, ifname, &l, errp);
	if (r < 0)
		return r;
	ifindex = rtnl_link_get_ifindex(l);
	qv_nl_begin(nl);
	r = rtnl_addr_alloc_cache(nl->sk, &cache);
	if (r < 0)
		return qv_nl_error(nl, r, errp, NULL, "cannot dump addresses");
	for (struct nl_object *o = nl_cache_get_first(cache); o; o = nl_cache_get_next(o)) {
		struct rtnl_addr *a = (struct rtnl_addr *)o;
		char buf[INET6_ADDRSTRLEN + 8];

		if (rtnl_addr_get_ifindex(a) != ifindex)
			continue;
		if (family != AF_UNSPEC && rtnl_addr_get_family(a) != family)
			continue;
		if (is_link_local6(a))
			continue;
		qv_nl_begin(nl);
		r = rtnl_addr_delete(nl->sk, a, 0);
		/* -EADDRNOTAVAIL: already gone (e.g. a secondary dropped with its primary). */
		if (r < 0 && qv_nl_errno(nl, r) != -EADDRNOTAVAIL)
			return qv_nl_error(nl, r, errp, NULL, "cannot remove %s from %s",
					   nl_addr2str(rtnl_addr_get_local(a), buf, sizeof(buf)),
					   ifname);
	}
	return 0;
}
