// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * WebSockets on wslay (websocket.h): the handshake's keys through nettle
 * (SHA-1 and base64, which libmicrohttpd and libcurl already load through
 * GnuTLS), the framing through wslay's event API.
 *
 * wslay's callbacks speak its error codes; ours speak negative errnos.
 * The translation is here and nowhere else: EAGAIN becomes
 * WSLAY_ERR_WOULDBLOCK (wslay stops and returns), anything else, and the
 * end of input, WSLAY_ERR_CALLBACK_FAILURE (wslay gives the connection
 * up).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include <nettle/base64.h>
#include <nettle/sha1.h>
#include <wslay/wslay.h>

#include "websocket.h"

#define WS_GUID	"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

struct ws {
	wslay_event_context_ptr ctx;
	const struct ws_ops *ops;
	void *opaque;
	uint8_t *pre;		/* ws_preload()'s bytes, read first */
	size_t pre_len, pre_off;
	bool paused;
	bool broken;		/* the transport failed or ended */
	uint16_t peer_code;
	char peer_reason[124];
};

bool ws_key_valid(const char *key)
{
	struct base64_decode_ctx b;
	uint8_t raw[BASE64_DECODE_LENGTH(WS_KEY_LEN)];
	size_t n = sizeof(raw);

	if (!key || strlen(key) != WS_KEY_LEN)
		return false;
	base64_decode_init(&b);
	return base64_decode_update(&b, &n, raw, WS_KEY_LEN, key) && base64_decode_final(&b) &&
	       n == 16;
}

void ws_accept(const char *key, char out[WS_ACCEPT_LEN + 1])
{
	struct sha1_ctx h;
	uint8_t digest[SHA1_DIGEST_SIZE];

	sha1_init(&h);
	sha1_update(&h, strlen(key), (const uint8_t *)key);
	sha1_update(&h, strlen(WS_GUID), (const uint8_t *)WS_GUID);
	sha1_digest(&h, sizeof(digest), digest);
	base64_encode_raw(out, sizeof(digest), digest);
	out[WS_ACCEPT_LEN] = 0;
}

int ws_new_key(char out[WS_KEY_LEN + 1])
{
	uint8_t raw[16];

	if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
		return -errno;
	base64_encode_raw(out, sizeof(raw), raw);
	out[WS_KEY_LEN] = 0;
	return 0;
}

bool ws_header_has(const char *value, const char *token)
{
	size_t n = strlen(token);

	while (value && *value) {
		const char *end;
		size_t len;

		value += strspn(value, " \t,");
		end = value + strcspn(value, ",");
		len = (size_t)(end - value);
		while (len && (value[len - 1] == ' ' || value[len - 1] == '\t'))
			len--;
		if (len == n && !strncasecmp(value, token, n))
			return true;
		value = end;
	}
	return false;
}

/* --- wslay's callbacks ---------------------------------------------- */

static ssize_t failed(struct ws *w, ssize_t r)
{
	if (r == -EAGAIN || r == -EWOULDBLOCK || r == -EINTR) {
		wslay_event_set_error(w->ctx, WSLAY_ERR_WOULDBLOCK);
	} else {
		w->broken = true;
		wslay_event_set_error(w->ctx, WSLAY_ERR_CALLBACK_FAILURE);
	}
	return -1;
}

static ssize_t recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
		       void *user)
{
	struct ws *w = user;
	ssize_t r;

	if (w->paused)
		return failed(w, -EAGAIN);
	if (w->pre_off < w->pre_len) {
		size_t n = w->pre_len - w->pre_off;

		if (n > len)
			n = len;
		memcpy(buf, w->pre + w->pre_off, n);
		w->pre_off += n;
		return (ssize_t)n;
	}
	r = w->ops->recv(w->opaque, buf, len);
	if (r == 0)
		r = -EPIPE;	/* the peer went without a close */
	return r > 0 ? r : failed(w, r);
}

static ssize_t send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
		       void *user)
{
	struct ws *w = user;
	ssize_t r = w->ops->send(w->opaque, data, len);

	return r >= 0 ? r : failed(w, r);
}

static int genmask_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, void *user)
{
	/* The mask need not be secret, only unpredictable to scripts in a
	 * browser; getrandom() without GRND_RANDOM does not block after
	 * boot. */
	return getrandom(buf, len, 0) == (ssize_t)len ? 0 : -1;
}

static void message_cb(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
		       void *user)
{
	struct ws *w = user;

	if (arg->opcode == WSLAY_TEXT_FRAME || arg->opcode == WSLAY_BINARY_FRAME) {
		w->ops->message(w->opaque, arg->opcode == WSLAY_TEXT_FRAME, arg->msg,
				arg->msg_length);
	} else if (arg->opcode == WSLAY_CONNECTION_CLOSE) {
		size_t n = arg->msg_length > 2 ? arg->msg_length - 2 : 0;

		if (n >= sizeof(w->peer_reason))
			n = sizeof(w->peer_reason) - 1;
		w->peer_code = arg->status_code;
		memcpy(w->peer_reason, n ? arg->msg + 2 : (const uint8_t *)"", n);
		w->peer_reason[n] = 0;
	}
}

/* --- the connection ------------------------------------------------- */

int ws_create(struct ws **out, bool client, size_t max_message, const struct ws_ops *ops,
	      void *opaque)
{
	const struct wslay_event_callbacks cb = {
		.recv_callback = recv_cb,
		.send_callback = send_cb,
		.genmask_callback = client ? genmask_cb : NULL,
		.on_msg_recv_callback = message_cb,
	};
	struct ws *w = calloc(1, sizeof(*w));
	int r;

	if (!w)
		return -ENOMEM;
	w->ops = ops;
	w->opaque = opaque;
	r = client ? wslay_event_context_client_init(&w->ctx, &cb, w) :
		     wslay_event_context_server_init(&w->ctx, &cb, w);
	if (r) {
		free(w);
		return -ENOMEM;
	}
	wslay_event_config_set_max_recv_msg_length(w->ctx, max_message);
	*out = w;
	return 0;
}

void ws_destroy(struct ws *w)
{
	if (!w)
		return;
	wslay_event_context_free(w->ctx);
	free(w->pre);
	free(w);
}

int ws_preload(struct ws *w, const void *buf, size_t len)
{
	uint8_t *p;

	if (!len)
		return 0;
	p = realloc(w->pre, w->pre_len + len);
	if (!p)
		return -ENOMEM;
	memcpy(p + w->pre_len, buf, len);
	w->pre = p;
	w->pre_len += len;
	return 0;
}

static int errno_of(int r)
{
	return r == WSLAY_ERR_NOMEM ? -ENOMEM : r == WSLAY_ERR_NO_MORE_MSG ? -EPIPE :
	       r == WSLAY_ERR_INVALID_ARGUMENT ? -EINVAL : -ECONNRESET;
}

int ws_read(struct ws *w)
{
	int r = wslay_event_recv(w->ctx);

	return r ? errno_of(r) : 0;
}

int ws_write(struct ws *w)
{
	int r = wslay_event_send(w->ctx);

	return r ? errno_of(r) : 0;
}

int ws_send(struct ws *w, bool text, const void *buf, size_t len)
{
	struct wslay_event_msg m = {
		.opcode = text ? WSLAY_TEXT_FRAME : WSLAY_BINARY_FRAME,
		.msg = buf,
		.msg_length = len,
	};
	int r = wslay_event_queue_msg(w->ctx, &m);

	return r ? errno_of(r) : 0;
}

int ws_close(struct ws *w, uint16_t code, const char *reason)
{
	size_t n = reason ? strlen(reason) : 0;
	int r;

	if (n > 123)
		n = 123;
	r = wslay_event_queue_close(w->ctx, code, (const uint8_t *)reason, n);
	return r ? errno_of(r) : 0;
}

void ws_pause(struct ws *w, bool paused)
{
	w->paused = paused;
}

bool ws_want_read(const struct ws *w)
{
	return !w->paused && !w->broken && wslay_event_want_read(w->ctx);
}

bool ws_want_write(const struct ws *w)
{
	return !w->broken && wslay_event_want_write(w->ctx);
}

bool ws_finished(const struct ws *w)
{
	if (w->broken)
		return true;
	return !wslay_event_get_read_enabled(w->ctx) && !wslay_event_want_write(w->ctx);
}

size_t ws_queued(const struct ws *w, size_t *messages)
{
	if (messages)
		*messages = wslay_event_get_queued_msg_count(w->ctx);
	return wslay_event_get_queued_msg_length(w->ctx);
}

uint16_t ws_peer_close(const struct ws *w, const char **reason)
{
	if (reason)
		*reason = w->peer_reason;
	return w->peer_code;
}
