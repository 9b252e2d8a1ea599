// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * A NIC's description: --net's value (comma-separated items, qemu's way)
 * and the parts the configuration file gives one by one.  Everything is
 * checked here, before any process starts: a bad MAC or port forward is
 * one line and a usage error, never a NIC that half works.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net.h"

/* slirp's network (slirp.c uses the same): the guest's first address. */
#define GUEST_NET	0x0a000200u	/* 10.0.2.0/24 */
#define GUEST_ADDR	0x0a00020fu	/* 10.0.2.15 */

static int bad(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int bad(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static bool valid_ifname(const char *s)
{
	size_t n = strlen(s);

	if (n < 1 || n >= IFNAMSIZ)
		return false;
	/* What the kernel refuses in a name (dev_valid_name). */
	for (; *s; s++)
		if (*s == '/' || *s == ':' || *s <= ' ' || *s == 0x7f)
			return false;
	return true;
}

int net_spec_set_type(struct net_spec *spec, const char *type, const char *ifname, char *err,
		      size_t errlen)
{
	if (!strcmp(type, "user")) {
		if (ifname)
			return bad(err, errlen, "user takes no interface name");
		spec->type = NET_USER;
		return 0;
	}
	if (strcmp(type, "tap") && strcmp(type, "bridge"))
		return bad(err, errlen, "'%s' is not user, tap=NAME or bridge=NAME", type);
	if (!ifname || !valid_ifname(ifname))
		return bad(err, errlen, "%s=%s: not an interface name (1 to %d characters, no '/', ':' or spaces)",
			   type, ifname ? ifname : "", IFNAMSIZ - 1);
	spec->type = !strcmp(type, "tap") ? NET_TAP : NET_BRIDGE;
	snprintf(spec->ifname, sizeof(spec->ifname), "%s", ifname);
	return 0;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int net_spec_set_mac(struct net_spec *spec, const char *s, char *err, size_t errlen)
{
	uint8_t mac[6];

	if (spec->has_mac)
		return bad(err, errlen, "mac given twice");
	for (int i = 0; i < 6; i++) {
		int hi = hexval(s[3 * i]), lo = hi < 0 ? -1 : hexval(s[3 * i + 1]);

		if (lo < 0 || s[3 * i + 2] != (i == 5 ? '\0' : ':'))
			return bad(err, errlen, "mac=%s: not a MAC address (six hex bytes like 52:54:00:12:34:56)",
				   s);
		mac[i] = (uint8_t)(hi << 4 | lo);
	}
	if (mac[0] & 1)
		return bad(err, errlen, "mac=%s: a multicast address (a NIC's has the first byte's low bit clear)",
			   s);
	if (!(mac[0] | mac[1] | mac[2] | mac[3] | mac[4] | mac[5]))
		return bad(err, errlen, "mac=%s: not a NIC's address", s);
	memcpy(spec->mac, mac, 6);
	spec->has_mac = true;
	return 0;
}

static bool parse_port(const char *s, uint16_t *port)
{
	char *end;
	unsigned long v;

	if (*s < '0' || *s > '9')
		return false;
	v = strtoul(s, &end, 10);
	if (*end || v < 1 || v > 65535)
		return false;
	*port = (uint16_t)v;
	return true;
}

/* "ADDR:PORT" with ADDR possibly empty, cut in place. */
static bool parse_endpoint(char *s, struct in_addr *addr, uint16_t *port, uint32_t any)
{
	char *colon = strrchr(s, ':');

	if (!colon)
		return false;
	*colon = '\0';
	if (!*s)
		addr->s_addr = htonl(any);
	else if (inet_pton(AF_INET, s, addr) != 1)
		return false;
	return parse_port(colon + 1, port);
}

int net_spec_add_hostfwd(struct net_spec *spec, const char *s, char *err, size_t errlen)
{
	struct net_hostfwd f = { 0 };
	char buf[128], *rest, *dash;
	uint32_t g;

	if (spec->type != NET_USER)
		return bad(err, errlen, "hostfwd=%s: port forwards are for user networking only", s);
	if (spec->nr_fwd == NET_HOSTFWD_MAX)
		return bad(err, errlen, "hostfwd=%s: more than %d port forwards", s, NET_HOSTFWD_MAX);
	if (strlen(s) >= sizeof(buf))
		goto syntax;
	strcpy(buf, s);
	rest = strchr(buf, ':');
	if (!rest)
		goto syntax;
	*rest++ = '\0';
	if (!strcmp(buf, "udp"))
		f.udp = true;
	else if (*buf && strcmp(buf, "tcp"))
		goto syntax;
	dash = strchr(rest, '-');
	if (!dash)
		goto syntax;
	*dash++ = '\0';
	if (!parse_endpoint(rest, &f.host, &f.host_port, 0) ||
	    !parse_endpoint(dash, &f.guest, &f.guest_port, GUEST_ADDR))
		goto syntax;
	g = ntohl(f.guest.s_addr);
	if ((g & 0xffffff00u) != GUEST_NET || (g & 0xff) < 15 || (g & 0xff) == 0xff)
		return bad(err, errlen, "hostfwd=%s: the guest address is not one slirp gives out (10.0.2.15 to 10.0.2.254)",
			   s);
	spec->fwd[spec->nr_fwd++] = f;
	return 0;
syntax:
	return bad(err, errlen, "hostfwd=%s: not [tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT with ports 1 to 65535",
		   s);
}

/* Cuts the next item at a comma. */
static char *next_item(char **p)
{
	char *item = *p, *comma = strchr(item, ',');

	if (comma) {
		*comma = '\0';
		*p = comma + 1;
	} else {
		*p = item + strlen(item);
	}
	return item;
}

int net_spec_parse(const char *s, struct net_spec *spec, char *err, size_t errlen)
{
	char *copy = strdup(s), *p = copy, *item, *eq;
	int r;

	if (!copy)
		return bad(err, errlen, "out of memory");
	memset(spec, 0, sizeof(*spec));
	item = next_item(&p);
	eq = strchr(item, '=');
	if (eq)
		*eq++ = '\0';
	r = net_spec_set_type(spec, item, eq, err, errlen);
	while (r >= 0 && *p) {
		item = next_item(&p);
		if (!strncmp(item, "mac=", 4))
			r = net_spec_set_mac(spec, item + 4, err, errlen);
		else if (!strncmp(item, "hostfwd=", 8))
			r = net_spec_add_hostfwd(spec, item + 8, err, errlen);
		else
			r = bad(err, errlen, "'%s' is not mac=MAC or hostfwd=FORWARD", item);
	}
	free(copy);
	return r;
}

void net_spec_mac(const struct net_spec *spec, unsigned index, uint8_t mac[6])
{
	/* Locally administered (0x52: bit 1 set), unicast, and the same at
	 * every boot, so that a DHCP server gives the guest the same address
	 * again.  VMs that share a bridge need mac= of their own. */
	static const uint8_t base[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };

	if (spec->has_mac) {
		memcpy(mac, spec->mac, 6);
		return;
	}
	memcpy(mac, base, 6);
	mac[5] = (uint8_t)(base[5] + index);
}

const char *net_hostfwd_format(const struct net_hostfwd *f, char *buf, size_t len)
{
	char host[INET_ADDRSTRLEN], guest[INET_ADDRSTRLEN];

	inet_ntop(AF_INET, &f->host, host, sizeof(host));
	inet_ntop(AF_INET, &f->guest, guest, sizeof(guest));
	snprintf(buf, len, "%s:%s:%u-%s:%u", f->udp ? "udp" : "tcp", host, f->host_port, guest,
		 f->guest_port);
	return buf;
}

const char *net_spec_describe(const struct net_spec *spec, char *buf, size_t len)
{
	switch (spec->type) {
	case NET_TAP:
		snprintf(buf, len, "tap=%s", spec->ifname);
		break;
	case NET_BRIDGE:
		snprintf(buf, len, "bridge=%s", spec->ifname);
		break;
	case NET_NULL:
		snprintf(buf, len, "null");
		break;
	default:
		snprintf(buf, len, "user");
	}
	return buf;
}
