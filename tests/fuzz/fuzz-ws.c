// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Fuzzes a WebSocket server's side of a connection (src/websocket/
 * websocket.c on wslay), as vsrvd's consoles run it: the input is what a
 * client sends.  The first byte sets how much each recv() gives (1 to
 * 256 bytes) and whether the server's socket takes all it is given or a
 * few bytes at a time; the rest arrives that way, the first part of it
 * preloaded (read with the HTTP head).  Each message is echoed back,
 * as the console's echoing guest would.
 *
 * Checked for every input: no message is larger than the bound; the
 * server's frames are never masked, of known opcodes, nothing after a
 * close; what it queues stays bounded; once finished it reads no more.
 */
#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "websocket.h"

#define MAX_MESSAGE	4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define KEEP_OUT	(1u << 20)

struct conn {
	const uint8_t *in;
	size_t len, off, step;
	size_t room;		/* a send takes at most this much */
	uint8_t *out;		/* what the server sent (the first KEEP_OUT bytes) */
	size_t sent;
	struct ws *ws;
	unsigned messages;
};

static ssize_t fz_recv(void *opaque, void *buf, size_t len)
{
	struct conn *c = opaque;
	size_t n = c->len - c->off;

	if (!n)
		return -EAGAIN;
	if (n > c->step)
		n = c->step;
	if (n > len)
		n = len;
	memcpy(buf, c->in + c->off, n);
	c->off += n;
	return (ssize_t)n;
}

static ssize_t fz_send(void *opaque, const void *buf, size_t len)
{
	struct conn *c = opaque;

	if (len > c->room)
		len = c->room;
	if (c->sent < KEEP_OUT)
		memcpy(c->out + c->sent, buf, len < KEEP_OUT - c->sent ? len : KEEP_OUT - c->sent);
	c->sent += len;
	return (ssize_t)len;
}

static void fz_message(void *opaque, bool text, const uint8_t *buf, size_t len)
{
	struct conn *c = opaque;

	assert(len <= MAX_MESSAGE);
	c->messages++;
	ws_send(c->ws, text, buf, len);
}

static const struct ws_ops fz_ops = { fz_recv, fz_send, fz_message };

/* The server's frames, as sent: never masked, known opcodes, a close
 * last. */
static void check_output(const uint8_t *p, size_t len)
{
	bool closed = false;

	while (len >= 2) {
		uint64_t n = p[1] & 0x7f;
		size_t head = 2;
		uint8_t op = p[0] & 0x0f;

		assert(!(p[1] & 0x80));
		assert(!(p[0] & 0x70));
		assert(op == 0x1 || op == 0x2 || op == 0x8 || op == 0x9 || op == 0xa);
		assert(!closed);
		closed = op == 0x8;
		if (n == 126) {
			if (len < 4)
				return;
			n = (uint64_t)p[2] << 8 | p[3];
			head = 4;
		} else if (n == 127) {
			if (len < 10)
				return;
			n = 0;
			for (int i = 2; i < 10; i++)
				n = n << 8 | p[i];
			head = 10;
		}
		assert(n <= MAX_MESSAGE + 1);
		if (len < head + n)
			return;
		p += head + n;
		len -= head + n;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct conn c = { 0 };
	size_t pre;

	if (size < 1)
		return 0;
	c.step = (size_t)(data[0] & 0x7f) * 2 + 1;
	c.room = data[0] & 0x80 ? 3 : (size_t)1 << 20;
	c.in = data + 1;
	c.len = size - 1;
	c.out = malloc(KEEP_OUT);
	if (!c.out || ws_create(&c.ws, false, MAX_MESSAGE, &fz_ops, &c) < 0) {
		free(c.out);
		return 0;
	}
	pre = c.len < c.step ? c.len : c.step;
	ws_preload(c.ws, c.in, pre);
	c.off = pre;
	for (int turns = 0; turns < 100000 && !ws_finished(c.ws); turns++) {
		size_t before = c.off;

		if (ws_want_read(c.ws) && ws_read(c.ws) < 0)
			break;
		if (ws_want_write(c.ws) && ws_write(c.ws) < 0)
			break;
		/* Echoes of at most MAX_MESSAGE each, a few at a time. */
		assert(ws_queued(c.ws, NULL) <= (size_t)(c.len + 1) * 2 + MAX_MESSAGE);
		if (c.off == before && c.off == c.len && !ws_want_write(c.ws))
			break;
	}
	if (ws_finished(c.ws)) {
		size_t off = c.off;

		/* Finished: it reads no more. */
		assert(!ws_want_read(c.ws));
		assert(ws_send(c.ws, false, "x", 1) < 0 || !ws_want_read(c.ws));
		assert(c.off == off);
	}
	check_output(c.out, c.sent < KEEP_OUT ? c.sent : KEEP_OUT);
	ws_destroy(c.ws);
	free(c.out);
	return 0;
}
