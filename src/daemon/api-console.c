// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * GET /v1/vms/{name}/console: the VM's serial console as a WebSocket
 * (RFC 6455).  The opening handshake is checked here (section 4.2.1:
 * Upgrade: websocket, Connection: Upgrade, a Sec-WebSocket-Key of 16
 * bytes, version 13), 400 with a message when it is not one; the VM must
 * exist (404) and run (409).  libmicrohttpd answers 101 and hands the
 * socket to console.c, which serves it from then on.  Authentication is
 * the API's (api.c): the socket's mode, or the bearer token over TCP.
 */
#include <stdio.h>
#include <string.h>

#include "api.h"
#include "console.h"
#include "websocket.h"

static const char *header(struct request *rq, const char *name)
{
	return MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, name);
}

static void joined(struct vsrvd *d, const char *name, int fd, const char *early, size_t len,
		   void *handle)
{
	consoles_add_viewer(d->con, name, fd, early, len, api_upgrade_close, handle);
}

void api_vm_console(struct request *rq, struct reply *rp)
{
	const char *key = header(rq, "Sec-WebSocket-Key");
	const char *version = header(rq, "Sec-WebSocket-Version");
	struct vsrvd_err e = { 0 };
	char name[65], state[16], accept[WS_ACCEPT_LEN + 1];
	json_t *vm;

	if (inventory_vm_get(rq->d->inv, rq->params[0], &vm, &e) < 0)
		return reply_err(rp, &e);
	snprintf(name, sizeof(name), "%s", json_string_value(json_object_get(vm, "name")));
	snprintf(state, sizeof(state), "%s", json_string_value(json_object_get(vm, "state")));
	json_decref(vm);
	if (!ws_header_has(header(rq, "Upgrade"), "websocket") ||
	    !ws_header_has(header(rq, "Connection"), "upgrade"))
		return reply_error(rp, 400,
				   "vm '%s': console: a WebSocket upgrade is expected (Upgrade: websocket, Connection: Upgrade)",
				   name);
	if (!version || strcmp(version, WS_VERSION)) {
		/* RFC 6455 4.2.2: the versions the server speaks, in a header. */
		reply_header(rp, "Sec-WebSocket-Version", WS_VERSION);
		return reply_error(rp, 400, "vm '%s': console: Sec-WebSocket-Version %.20s: this service speaks version 13",
				   name, version ? version : "missing");
	}
	if (!key)
		return reply_error(rp, 400, "vm '%s': console: Sec-WebSocket-Key missing", name);
	if (!ws_key_valid(key))
		return reply_error(rp, 400,
				   "vm '%s': console: Sec-WebSocket-Key is not the base64 of 16 bytes",
				   name);
	if (!consoles_running(rq->d->con, name))
		return reply_error(rp, 409, "vm '%s': %s, not running", name, state);
	ws_accept(key, accept);
	rp->status = 101;
	rp->upgrade = joined;
	snprintf(rp->upgrade_arg, sizeof(rp->upgrade_arg), "%s", name);
	reply_header(rp, "Upgrade", "websocket");
	reply_header(rp, "Connection", "Upgrade");
	reply_header(rp, "Sec-WebSocket-Accept", accept);
}
