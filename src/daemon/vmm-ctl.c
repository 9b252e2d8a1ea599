// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * A VMM's control socket, from vsrvd's side (vmm-ctl.h), in the VM's
 * folder (unix_connect_in()).
 *
 * What vsrvd sends is its own (bounded by the calls it makes); what it
 * reads is the VMM's, a process vsrvd trusts no more than it must: lines
 * are bounded by the protocol's framing, a message that is not a JSON
 * object ends the connection, and a reply to no call is ignored.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "vmm-ctl.h"
#include "vsrvd.h"

/* Our own requests waiting for the socket: far more than any VM gets. */
#define OUT_MAX		(1u << 20)

void vmm_ctl_init(struct vmm_ctl *c)
{
	memset(c, 0, sizeof(*c));
	c->fd = -1;
	c->tail = &c->calls;
}

int vmm_ctl_connect(struct vmm_ctl *c, const char *dir, const char *name)
{
	int fd = unix_connect_in(dir, name), r;

	if (fd < 0)
		return fd;
	r = ctl_lines_init(&c->in);
	if (r < 0) {
		close(fd);
		return r;
	}
	c->fd = fd;
	c->ready = false;
	return 0;
}

void vmm_ctl_call_free(struct ctl_call *call)
{
	if (!call)
		return;
	json_decref(call->reply);
	free(call);
}

void vmm_ctl_close(struct vmm_ctl *c, void (*on_msg)(void *opaque, struct ctl_call *call,
						      json_t *msg), void *opaque)
{
	struct ctl_call *call;

	if (c->fd >= 0) {
		close(c->fd);
		ctl_lines_free(&c->in);
	}
	c->fd = -1;
	c->ready = false;
	free(c->out);
	c->out = NULL;
	c->out_len = 0;
	while ((call = c->calls)) {
		c->calls = call->next;
		call->next = NULL;
		call->done = true;
		on_msg(opaque, call, NULL);
	}
	c->tail = &c->calls;
}

struct ctl_call *vmm_ctl_call(struct vmm_ctl *c, const char *command, json_t *args)
{
	struct ctl_call *call = calloc(1, sizeof(*call));
	json_t *req;
	char *line = NULL, *out;
	size_t len = 0;

	if (call) {
		call->id = ++c->next_id;
		snprintf(call->command, sizeof(call->command), "%s", command);
		req = json_pack("{s:I, s:s}", "id", call->id, "command", command);
		if (req && args)
			json_object_set(req, "arguments", args);
		line = req ? ctl_encode(req, &len) : NULL;
		json_decref(req);
	}
	json_decref(args);
	out = line && c->out_len + len <= OUT_MAX ? realloc(c->out, c->out_len + len) : NULL;
	if (!out) {
		free(line);
		free(call);
		return NULL;
	}
	memcpy(out + c->out_len, line, len);
	c->out = out;
	c->out_len += len;
	free(line);
	*c->tail = call;
	c->tail = &call->next;
	return call;
}

int vmm_ctl_flush(struct vmm_ctl *c)
{
	while (c->fd >= 0 && c->out_len) {
		ssize_t n = send(c->fd, c->out, c->out_len, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0)
			return errno == EAGAIN || errno == EINTR ? 0 : -errno;
		memmove(c->out, c->out + n, c->out_len - (size_t)n);
		c->out_len -= (size_t)n;
	}
	return 0;
}

/* The call a reply answers, unlinked; NULL if none. */
static struct ctl_call *take_call(struct vmm_ctl *c, const json_t *id)
{
	if (!json_is_integer(id))
		return NULL;
	for (struct ctl_call **pp = &c->calls; *pp; pp = &(*pp)->next) {
		struct ctl_call *call = *pp;

		if (call->id != json_integer_value(id))
			continue;
		*pp = call->next;
		if (c->tail == &call->next)
			c->tail = pp;
		call->next = NULL;
		return call;
	}
	return NULL;
}

static int message(struct vmm_ctl *c, json_t *m,
		   void (*on_msg)(void *opaque, struct ctl_call *call, json_t *msg), void *opaque)
{
	json_t *greeting = json_object_get(m, "greeting");
	struct ctl_call *call;

	if (greeting) {
		if (json_integer_value(json_object_get(greeting, "protocol")) != CTL_PROTOCOL_VERSION)
			return -EPROTO;
		c->ready = true;
		return 0;
	}
	if (json_object_get(m, "event")) {
		on_msg(opaque, NULL, m);
		return 0;
	}
	/* Refused before the greeting: 16 clients already. */
	if (!c->ready)
		return -EBUSY;
	call = take_call(c, json_object_get(m, "id"));
	if (call) {
		call->reply = json_incref(m);
		call->done = true;
		on_msg(opaque, call, m);
	}
	return 0;
}

int vmm_ctl_read(struct vmm_ctl *c, void (*on_msg)(void *opaque, struct ctl_call *call,
						    json_t *msg), void *opaque)
{
	for (;;) {
		size_t room, len;
		char *p = ctl_lines_space(&c->in, &room), *line;
		ssize_t n;
		int r;

		if (c->fd < 0)
			return -EPIPE;
		n = recv(c->fd, p, room, MSG_DONTWAIT);
		if (n < 0)
			return errno == EAGAIN || errno == EINTR ? 0 : -errno;
		if (n == 0)
			return -EPIPE;
		ctl_lines_added(&c->in, (size_t)n);
		while ((r = ctl_lines_next(&c->in, &line, &len)) != 0) {
			json_t *m;

			if (r < 0)
				return -EPROTO;
			m = json_loadb(line, len, 0, NULL);
			r = json_is_object(m) ? message(c, m, on_msg, opaque) : -EPROTO;
			json_decref(m);
			if (r < 0)
				return r;
		}
	}
}

const char *vmm_ctl_error(const json_t *reply, const char **message)
{
	json_t *err = json_object_get(reply, "error");
	const char *m = json_string_value(json_object_get(err, "message"));
	const char *code = json_string_value(json_object_get(err, "code"));

	*message = m ? m : "";
	return code ? code : "";
}
