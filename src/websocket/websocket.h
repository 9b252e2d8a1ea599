/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * WebSockets (RFC 6455) for vsrvd's consoles and `vsrv console`: the
 * opening handshake's keys, and a connection's framing on wslay (Debian's
 * libwslay: framing only, no sockets, no HTTP), which does the masking,
 * fragmentation, UTF-8 checks of text, ping/pong and the close handshake.
 * What is here is how this project drives it: non-blocking I/O through an
 * ops table, bytes already read during the HTTP handshake, a bound on what
 * a peer may make us hold, and the peer's close code and reason.
 */
#ifndef VSRV_WEBSOCKET_H
#define VSRV_WEBSOCKET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define WS_KEY_LEN	24	/* base64 of 16 random bytes */
#define WS_ACCEPT_LEN	28	/* base64 of a SHA-1 */
#define WS_VERSION	"13"

/* Close codes this project sends (RFC 6455 section 7.4.1). */
enum {
	WS_CLOSE_NORMAL = 1000,
	WS_CLOSE_GOING_AWAY = 1001,
	WS_CLOSE_PROTOCOL = 1002,
	WS_CLOSE_TOO_BIG = 1009,
	WS_CLOSE_ERROR = 1011,
};

/* A Sec-WebSocket-Key: base64 of exactly 16 bytes. */
bool ws_key_valid(const char *key);
/* Its Sec-WebSocket-Accept: base64(SHA-1(key + the RFC's GUID)). */
void ws_accept(const char *key, char out[WS_ACCEPT_LEN + 1]);
/* A new random key for a client.  0 or a negative errno. */
int ws_new_key(char out[WS_KEY_LEN + 1]);
/* Whether a comma-separated header value (Connection, Upgrade) has
 * `token`, compared without case. */
bool ws_header_has(const char *value, const char *token);

struct ws_ops {
	/* Like recv()/send() on a non-blocking socket, as a negative errno:
	 * a count, 0 at the end of input, -EAGAIN when nothing can move now. */
	ssize_t (*recv)(void *opaque, void *buf, size_t len);
	ssize_t (*send)(void *opaque, const void *buf, size_t len);
	/* A whole text or binary message arrived. */
	void (*message)(void *opaque, bool text, const uint8_t *buf, size_t len);
};

struct ws;

/* A connection's framing; a client masks what it sends.  Messages larger
 * than max_message are refused (close 1009): wslay allocates a frame's
 * whole payload when its header arrives. */
int ws_create(struct ws **out, bool client, size_t max_message, const struct ws_ops *ops,
	      void *opaque);
void ws_destroy(struct ws *w);
/* Bytes read before the connection became a WebSocket (after the HTTP
 * head): taken before anything ops->recv gives. */
int ws_preload(struct ws *w, const void *buf, size_t len);
/* Reads and handles what there is (messages, pings, a close) until recv
 * says -EAGAIN; writes what is queued until send does.  A negative errno
 * when the connection is broken (the peer gone, or it broke the protocol
 * and a close is queued for it): stop reading, flush, close the socket. */
int ws_read(struct ws *w);
int ws_write(struct ws *w);
/* Queues a message, or a close (code and a reason of at most 123 bytes). */
int ws_send(struct ws *w, bool text, const void *buf, size_t len);
int ws_close(struct ws *w, uint16_t code, const char *reason);
/* Stops reading: what the peer sends from now on stays in its socket. */
void ws_pause(struct ws *w, bool paused);
bool ws_want_read(const struct ws *w);
bool ws_want_write(const struct ws *w);
/* Both ways are done (closes exchanged, or a failure): close the socket. */
bool ws_finished(const struct ws *w);
/* Bytes of messages queued and not yet sent; their number in *messages. */
size_t ws_queued(const struct ws *w, size_t *messages);
/* The peer's close: its code (0 if none came) and reason. */
uint16_t ws_peer_close(const struct ws *w, const char **reason);

#endif
