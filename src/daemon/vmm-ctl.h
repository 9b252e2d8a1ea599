/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * One connection to a VMM's control socket (vsrv run --control,
 * docs/control.md), as the supervisor holds it: non-blocking, driven by
 * the supervisor's epoll thread, with the protocol's framing and messages
 * from src/control/protocol.c.  No locking here: the supervisor's lock
 * covers every call.
 *
 * A request is a `struct ctl_call`, queued at once (its line waits in the
 * output buffer until the socket takes it, even before the connection is
 * made) and answered in order; its reply, or NULL when the connection
 * ended first, goes to the `on_msg` the reader was given, as do events.
 */
#ifndef VSRVD_VMM_CTL_H
#define VSRVD_VMM_CTL_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "../control/protocol.h"

struct ctl_call {
	struct ctl_call *next;
	json_int_t id;
	char command[24];
	json_t *reply;		/* the reply message, once done (NULL: none came) */
	bool done;
	bool waited;		/* a thread waits for it and frees it */
	bool abandoned;		/* its waiter gave up: whoever completes it frees it */
};

struct vmm_ctl {
	int fd;			/* -1 while not connected */
	bool ready;		/* the greeting came */
	struct ctl_lines in;
	char *out;		/* lines not yet taken by the socket */
	size_t out_len;
	json_int_t next_id;
	struct ctl_call *calls, **tail;	/* waiting for their replies, in order */
};

void vmm_ctl_init(struct vmm_ctl *c);
/* Connects to PATH (a directory's `control.sock`, through /proc/self/fd
 * when the path is longer than a socket address takes).  0, or -errno:
 * -ENOENT and -ECONNREFUSED while the VMM has not bound it yet. */
int vmm_ctl_connect(struct vmm_ctl *c, const char *dir, const char *name);
/* Drops the connection: every call not answered completes with reply
 * NULL through on_msg; queued lines are dropped. */
void vmm_ctl_close(struct vmm_ctl *c, void (*on_msg)(void *opaque, struct ctl_call *call,
						      json_t *msg), void *opaque);
/* Queues COMMAND with ARGS (stolen; NULL for none).  NULL when out of
 * memory. */
struct ctl_call *vmm_ctl_call(struct vmm_ctl *c, const char *command, json_t *args);
/* Writes what the socket takes now.  0, or -errno when it is gone. */
int vmm_ctl_flush(struct vmm_ctl *c);
/* Reads what came and hands each message on: a reply with its call
 * (unlinked, done), an event with call NULL.  0, or -errno when the
 * connection ended or the server broke the protocol. */
int vmm_ctl_read(struct vmm_ctl *c, void (*on_msg)(void *opaque, struct ctl_call *call,
						    json_t *msg), void *opaque);
void vmm_ctl_call_free(struct ctl_call *call);
/* An error reply's code and message ("" when it has none). */
const char *vmm_ctl_error(const json_t *reply, const char **message);

#endif
