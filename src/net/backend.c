// SPDX-License-Identifier: GPL-2.0-or-later
/* Opening a NIC's backend by its type, and the null backend. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net.h"

int net_backend_open(const struct net_spec *spec, unsigned index, const struct net_port *port,
		     struct net_backend **out, char *err, size_t errlen)
{
	char why[400] = "", desc[40];
	int r;

	switch (spec->type) {
	case NET_USER:
		r = net_user_open(spec, index, out, why, sizeof(why));
		break;
	case NET_TAP:
	case NET_BRIDGE:
		r = net_tap_open(spec, out, why, sizeof(why));
		break;
	default:
		r = net_null_open(out);
	}
	if (r < 0) {
		snprintf(err, errlen, "net%u: %s: %s", index,
			 net_spec_describe(spec, desc, sizeof(desc)),
			 why[0] ? why : strerror(-r));
		return r;
	}
	(*out)->port = *port;
	return 0;
}

void net_backend_destroy(struct net_backend *b)
{
	if (b)
		b->ops->destroy(b);
}

/* --- null: no network; what the guest sends vanishes --- */

static int null_send(struct net_backend *b, const struct iovec *iov, unsigned nr, size_t len)
{
	return 0;
}

static void null_destroy(struct net_backend *b)
{
	free(b);
}

static const struct net_backend_ops null_ops = {
	.name = "null", .send = null_send, .destroy = null_destroy,
};

int net_null_open(struct net_backend **out)
{
	struct net_backend *b = calloc(1, sizeof(*b));

	if (!b)
		return -ENOMEM;
	b->ops = &null_ops;
	*out = b;
	return 0;
}
