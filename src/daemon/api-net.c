// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * /v1/networks: virtual networks (network.c sets them up on the host).
 */
#include <errno.h>
#include <string.h>

#include "api.h"

void api_net_list(struct request *rq, struct reply *rp)
{
	json_t *list;

	inventory_net_list(rq->d->inv, &list);
	reply_json(rp, 200, list);
}

void api_net_get(struct request *rq, struct reply *rp)
{
	struct vsrvd_err e = { 0 };
	json_t *net;

	if (inventory_net_get(rq->d->inv, rq->params[0], &net, &e) < 0)
		return reply_err(rp, &e);
	reply_json(rp, 200, net);
}

void api_net_create(struct request *rq, struct reply *rp)
{
	struct vsrvd_err e = { 0 };
	json_t *spec = request_spec(rq, rp, SPEC_NET), *net;
	const char *name;

	if (!spec)
		return;
	name = json_string_value(json_object_get(spec, "name"));
	/* Before the host is touched: a second "internal" of the same name
	 * would otherwise take the first one's bridge down on failing. */
	if (inventory_net_get(rq->d->inv, name, &net, NULL) == 0) {
		json_decref(net);
		reply_error(rp, 409, "network '%s': exists", name);
		json_decref(spec);
		return;
	}
	if (network_setup(rq->d, spec, &e) < 0 ||
	    inventory_net_create(rq->d->inv, spec, &net, &e) < 0) {
		if (e.status != 409)
			network_teardown(rq->d, spec);
		json_decref(spec);
		return reply_err(rp, &e);
	}
	events_log(rq->d->ev, "network.created", NULL, "network %s (%s)", name,
		   json_string_value(json_object_get(spec, "type")));
	json_decref(spec);
	reply_json(rp, 201, net);
}

void api_net_delete(struct request *rq, struct reply *rp)
{
	struct vsrvd_err e = { 0 };
	json_t *net;

	if (inventory_net_get(rq->d->inv, rq->params[0], &net, &e) < 0 ||
	    inventory_net_delete(rq->d->inv, rq->params[0], &e) < 0) {
		json_decref(net);
		return reply_err(rp, &e);
	}
	network_teardown(rq->d, net);
	json_decref(net);
	events_log(rq->d->ev, "network.deleted", NULL, "network %s", rq->params[0]);
	reply_json(rp, 200, json_pack("{s:s}", "deleted", rq->params[0]));
}
