// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * WebSockets (src/websocket/websocket.c) with no sockets: the handshake's
 * keys (RFC 6455's own example), and a client and a server talking through
 * byte queues in memory, with the frames on the wire checked byte for
 * byte: a server's unmasked, a client's masked, the pong a ping gets, the
 * closes a protocol error, an oversized message and invalid UTF-8 get.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>
#include <cmocka.h>

#include "websocket.h"

struct wire {
	uint8_t buf[1 << 17];
	size_t len, off;
};

/* One end: reads its wire, writes the other's, keeps what it received. */
struct end {
	struct wire *in, *out;
	struct ws *ws;
	uint8_t got[1 << 17];
	size_t got_len;
	unsigned messages;
	bool last_text;
	size_t send_room;	/* the most a send takes (0: all) */
};

static ssize_t end_recv(void *opaque, void *buf, size_t len)
{
	struct end *e = opaque;
	size_t n = e->in->len - e->in->off;

	if (!n)
		return -EAGAIN;
	if (n > len)
		n = len;
	memcpy(buf, e->in->buf + e->in->off, n);
	e->in->off += n;
	return (ssize_t)n;
}

static ssize_t end_send(void *opaque, const void *buf, size_t len)
{
	struct end *e = opaque;

	if (e->send_room && len > e->send_room)
		len = e->send_room;
	assert_true(e->out->len + len <= sizeof(e->out->buf));
	memcpy(e->out->buf + e->out->len, buf, len);
	e->out->len += len;
	return (ssize_t)len;
}

static void end_message(void *opaque, bool text, const uint8_t *buf, size_t len)
{
	struct end *e = opaque;

	memcpy(e->got + e->got_len, buf, len);
	e->got_len += len;
	e->messages++;
	e->last_text = text;
}

static const struct ws_ops ops = { end_recv, end_send, end_message };

static struct wire c2s, s2c;
static struct end client, server;

static int setup(void **state)
{
	memset(&c2s, 0, sizeof(c2s));
	memset(&s2c, 0, sizeof(s2c));
	memset(&client, 0, sizeof(client));
	memset(&server, 0, sizeof(server));
	client.in = &s2c;
	client.out = &c2s;
	server.in = &c2s;
	server.out = &s2c;
	assert_int_equal(ws_create(&client.ws, true, 1 << 16, &ops, &client), 0);
	assert_int_equal(ws_create(&server.ws, false, 16, &ops, &server), 0);
	return 0;
}

static int teardown(void **state)
{
	ws_destroy(client.ws);
	ws_destroy(server.ws);
	return 0;
}

/* What the server wrote since the last look. */
static void server_wrote(const uint8_t *want, size_t len)
{
	assert_int_equal(s2c.len - s2c.off, len);
	assert_memory_equal(s2c.buf + s2c.off, want, len);
	s2c.off = s2c.len;
}

/* Raw bytes from a client: a masked frame (mask 0x01020304). */
static void client_frame(uint8_t b0, const char *payload, size_t len, bool mask)
{
	static const uint8_t key[4] = { 1, 2, 3, 4 };
	uint8_t *p = c2s.buf + c2s.len;

	*p++ = b0;
	*p++ = (uint8_t)((mask ? 0x80 : 0) | len);
	if (mask) {
		memcpy(p, key, 4);
		p += 4;
	}
	for (size_t i = 0; i < len; i++)
		*p++ = (uint8_t)(payload[i] ^ (mask ? key[i % 4] : 0));
	c2s.len = (size_t)(p - c2s.buf);
}

static void test_keys(void **state)
{
	char out[WS_ACCEPT_LEN + 1], k1[WS_KEY_LEN + 1], k2[WS_KEY_LEN + 1];

	/* RFC 6455 section 1.3. */
	ws_accept("dGhlIHNhbXBsZSBub25jZQ==", out);
	assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
	assert_true(ws_key_valid("dGhlIHNhbXBsZSBub25jZQ=="));
	assert_false(ws_key_valid("c2hvcnQ="));			/* 5 bytes */
	assert_false(ws_key_valid("AAAAAAAAAAAAAAAAAAAAAAAA"));	/* 18 bytes */
	assert_false(ws_key_valid("dGhlIHNhbXBsZSBub25jZQ=*"));
	assert_false(ws_key_valid("dGhlIHNhbXBsZSBub25jZQ== "));
	assert_false(ws_key_valid(NULL));
	assert_int_equal(ws_new_key(k1), 0);
	assert_int_equal(ws_new_key(k2), 0);
	assert_true(ws_key_valid(k1));
	assert_string_not_equal(k1, k2);
}

static void test_header_tokens(void **state)
{
	assert_true(ws_header_has("Upgrade", "upgrade"));
	assert_true(ws_header_has("keep-alive, Upgrade", "upgrade"));
	assert_true(ws_header_has(" websocket ,x", "websocket"));
	assert_false(ws_header_has("Upgraded", "upgrade"));
	assert_false(ws_header_has("keep-alive", "upgrade"));
	assert_false(ws_header_has("", "upgrade"));
	assert_false(ws_header_has(NULL, "upgrade"));
}

static void test_messages_both_ways(void **state)
{
	static const uint8_t out[] = { 0x82, 5, 'h', 'e', 'l', 'l', 'o' };

	/* The server's frames are not masked: exactly these bytes. */
	assert_int_equal(ws_send(server.ws, false, "hello", 5), 0);
	assert_true(ws_want_write(server.ws));
	assert_int_equal(ws_queued(server.ws, NULL), 5);
	assert_int_equal(ws_write(server.ws), 0);
	assert_int_equal(ws_queued(server.ws, NULL), 0);
	assert_memory_equal(s2c.buf, out, sizeof(out));
	assert_int_equal(ws_read(client.ws), 0);
	assert_int_equal(client.got_len, 5);
	assert_memory_equal(client.got, "hello", 5);

	/* The client's are: header, mask, masked payload. */
	assert_int_equal(ws_send(client.ws, true, "hi there", 8), 0);
	assert_int_equal(ws_write(client.ws), 0);
	assert_int_equal(c2s.len, 2 + 4 + 8);
	assert_int_equal(c2s.buf[0], 0x81);
	assert_int_equal(c2s.buf[1], 0x80 | 8);
	for (int i = 0; i < 8; i++)
		assert_int_equal(c2s.buf[6 + i] ^ c2s.buf[2 + i % 4], "hi there"[i]);
	assert_int_equal(ws_read(server.ws), 0);
	assert_int_equal(server.messages, 1);
	assert_true(server.last_text);
	assert_memory_equal(server.got, "hi there", 8);
}

static void test_fragments_ping_and_preload(void **state)
{
	static const uint8_t pong[] = { 0x8a, 1, 'p' };
	uint8_t early[64];

	/* A message in two frames with a ping between them; the first frame
	 * read with the HTTP head (preloaded), the rest from the wire. */
	client_frame(0x02, "ab", 2, true);
	memcpy(early, c2s.buf, c2s.len);
	assert_int_equal(ws_preload(server.ws, early, c2s.len), 0);
	c2s.len = 0;
	client_frame(0x89, "p", 1, true);
	client_frame(0x80, "cd", 2, true);
	assert_int_equal(ws_read(server.ws), 0);
	assert_int_equal(server.messages, 1);
	assert_memory_equal(server.got, "abcd", 4);
	assert_int_equal(ws_write(server.ws), 0);
	server_wrote(pong, sizeof(pong));
	/* Nothing more: -EAGAIN is no error. */
	assert_int_equal(ws_read(server.ws), 0);
	assert_false(ws_finished(server.ws));
}

static void test_close_handshake(void **state)
{
	const char *reason;

	assert_int_equal(ws_close(client.ws, WS_CLOSE_NORMAL, "bye"), 0);
	assert_int_equal(ws_write(client.ws), 0);
	assert_int_equal(ws_read(server.ws), 0);
	assert_int_equal(ws_peer_close(server.ws, &reason), 1000);
	assert_string_equal(reason, "bye");
	/* The server answers with the same close, and is done. */
	assert_int_equal(ws_write(server.ws), 0);
	server_wrote((const uint8_t[]){ 0x88, 5, 0x03, 0xe8, 'b', 'y', 'e' }, 7);
	s2c.off = 0;	/* for the client to read */
	assert_true(ws_finished(server.ws));
	assert_int_equal(ws_read(client.ws), 0);
	assert_int_equal(ws_peer_close(client.ws, &reason), 1000);
	assert_true(ws_finished(client.ws));
	/* Nothing more may be queued. */
	assert_int_equal(ws_send(server.ws, false, "x", 1), -EPIPE);
}

static void test_refusals(void **state)
{
	/* Unmasked from a client: close 1002, nothing delivered. */
	client_frame(0x82, "x", 1, false);
	assert_int_equal(ws_read(server.ws), 0);
	assert_int_equal(ws_write(server.ws), 0);
	server_wrote((const uint8_t[]){ 0x88, 2, 0x03, 0xea }, 4);
	assert_int_equal(server.messages, 0);
	assert_false(ws_want_read(server.ws));
	teardown(state);
	setup(state);

	/* Larger than the server's 16 bytes: 1009. */
	client_frame(0x82, "0123456789abcdefg", 17, true);
	assert_int_equal(ws_read(server.ws), 0);
	assert_int_equal(ws_write(server.ws), 0);
	server_wrote((const uint8_t[]){ 0x88, 2, 0x03, 0xf1 }, 4);
	assert_int_equal(server.messages, 0);
	teardown(state);
	setup(state);

	/* Text that is not UTF-8: 1007. */
	client_frame(0x81, "\xff", 1, true);
	assert_int_equal(ws_read(server.ws), 0);
	assert_int_equal(ws_write(server.ws), 0);
	server_wrote((const uint8_t[]){ 0x88, 2, 0x03, 0xef }, 4);
	assert_int_equal(server.messages, 0);
}

static void test_paused_and_partial_sends(void **state)
{
	client_frame(0x82, "abc", 3, true);
	ws_pause(server.ws, true);
	assert_false(ws_want_read(server.ws));
	assert_int_equal(ws_read(server.ws), 0);
	assert_int_equal(server.messages, 0);
	ws_pause(server.ws, false);
	assert_int_equal(ws_read(server.ws), 0);
	assert_int_equal(server.messages, 1);

	/* A socket that takes a byte at a time gets the same bytes (a
	 * short write ends a ws_write(): the socket is full). */
	server.send_room = 1;
	assert_int_equal(ws_send(server.ws, false, "hello", 5), 0);
	for (int i = 0; i < 7 && ws_want_write(server.ws); i++)
		assert_int_equal(ws_write(server.ws), 0);
	assert_false(ws_want_write(server.ws));
	server_wrote((const uint8_t[]){ 0x82, 5, 'h', 'e', 'l', 'l', 'o' }, 7);
}

/* The peer gone without a close: an error, and finished. */
static ssize_t eof_recv(void *opaque, void *buf, size_t len)
{
	return 0;
}

static void test_peer_gone(void **state)
{
	static const struct ws_ops eof_ops = { eof_recv, end_send, end_message };
	struct ws *w;

	assert_int_equal(ws_create(&w, false, 16, &eof_ops, &server), 0);
	assert_true(ws_read(w) < 0);
	assert_true(ws_finished(w));
	assert_int_equal(ws_peer_close(w, NULL), 0);
	ws_destroy(w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_keys),
		cmocka_unit_test(test_header_tokens),
		cmocka_unit_test_setup_teardown(test_messages_both_ways, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fragments_ping_and_preload, setup, teardown),
		cmocka_unit_test_setup_teardown(test_close_handshake, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_paused_and_partial_sends, setup, teardown),
		cmocka_unit_test_setup_teardown(test_peer_gone, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
