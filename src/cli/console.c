// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vsrv console NAME: a VM's serial console in the terminal, through
 * vsrvd's API (GET /v1/vms/NAME/console, a WebSocket), as `virsh console`.
 *
 * Debian's libcurl (7.88) is built without its WebSocket API, so libcurl
 * only connects (CURLOPT_CONNECT_ONLY: the Unix socket or TCP, and TLS
 * when the service has it) and carries bytes (curl_easy_send/recv); the
 * upgrade request and the 101's head are written and read here, and the
 * frames are websocket.c's (wslay), as on the service's side.
 *
 * On a terminal: raw mode (no echo, no line editing, no signal keys: Ctrl-C
 * is the guest's), output processing kept so that a bare "\n" from the
 * guest starts a line; Ctrl-] leaves.  The terminal's settings come back
 * at every way out: leaving, the VM stopping, an error, and SIGTERM,
 * SIGINT or SIGHUP (taken through a signalfd, so never half-way through
 * anything).  Not a terminal: input is sent as it comes and its end just
 * ends input; the output goes on until the VM stops or a signal.
 */
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/signalfd.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "client.h"
#include "websocket.h"

#define ESCAPE		0x1d	/* Ctrl-] */
#define HEAD_MAX	16384
#define MESSAGE_MAX	(1u << 20)
#define SEND_QUEUE	(64u << 10)	/* input not yet sent: stdin waits */
#define LEAVE_MS	2000		/* our close gets this long for an answer */

static const char console_usage[] =
	"vsrv console NAME " CLIENT_CONNECT_USAGE "\n"
	"  the VM's serial console; on a terminal Ctrl-] leaves";

struct session {
	CURL *curl;
	struct ws *ws;
	bool tty;
	struct termios saved;
	bool failed;		/* stdout or the connection failed */
};

/* --- the terminal --------------------------------------------------- */

static void tty_raw(struct session *s)
{
	struct termios t;

	if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &s->saved) < 0)
		return;
	t = s->saved;
	cfmakeraw(&t);
	t.c_oflag = s->saved.c_oflag;
	if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &t) == 0)
		s->tty = true;
}

static void tty_restore(struct session *s)
{
	if (s->tty)
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &s->saved);
	s->tty = false;
}

/* --- bytes through libcurl ------------------------------------------ */

static ssize_t io_recv(void *opaque, void *buf, size_t len)
{
	struct session *s = opaque;
	size_t n = 0;
	CURLcode r = curl_easy_recv(s->curl, buf, len, &n);

	if (r == CURLE_AGAIN)
		return -EAGAIN;
	return r == CURLE_OK ? (ssize_t)n : -EIO;
}

static ssize_t io_send(void *opaque, const void *buf, size_t len)
{
	struct session *s = opaque;
	size_t n = 0;
	CURLcode r = curl_easy_send(s->curl, buf, len, &n);

	if (r == CURLE_AGAIN)
		return -EAGAIN;
	return r == CURLE_OK ? (ssize_t)n : -EIO;
}

static void io_message(void *opaque, bool text, const uint8_t *buf, size_t len)
{
	struct session *s = opaque;

	while (len && !s->failed) {
		ssize_t n = write(STDOUT_FILENO, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			s->failed = true;
			break;
		}
		buf += n;
		len -= (size_t)n;
	}
}

static const struct ws_ops session_ops = {
	.recv = io_recv,
	.send = io_send,
	.message = io_message,
};

/* Waits for the connection's socket; false after timeout_ms. */
static bool wait_fd(curl_socket_t fd, short events, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = events };

	return poll(&p, 1, timeout_ms) > 0;
}

/* --- the handshake -------------------------------------------------- */

static int send_all(struct session *s, curl_socket_t fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = io_send(s, buf, len);

		if (n == -EAGAIN) {
			if (!wait_fd(fd, POLLOUT, 30000))
				return -ETIMEDOUT;
			continue;
		}
		if (n < 0)
			return (int)n;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* A header's value in an HTTP head (NUL-terminated, lines end "\r\n"),
 * copied into out. */
static bool head_value(const char *head, const char *name, char *out, size_t outlen)
{
	size_t n = strlen(name);

	for (const char *l = strstr(head, "\r\n"); l && l[2]; l = strstr(l + 2, "\r\n")) {
		const char *p = l + 2, *end = strstr(p, "\r\n");

		if (!end || strncasecmp(p, name, n) || p[n] != ':')
			continue;
		p += n + 1;
		p += strspn(p, " \t");
		snprintf(out, outlen, "%.*s", (int)(end - p), p);
		return true;
	}
	return false;
}

/*
 * GET the console with the upgrade; 0 with the WebSocket ready (bytes
 * that came after the 101's head preloaded), or 1 after printing why
 * (the service's own message for a 4xx).
 */
static int handshake(struct client *c, struct session *s, const char *name, curl_socket_t fd)
{
	char key[WS_KEY_LEN + 1], accept[WS_ACCEPT_LEN + 1], got[64], host[256], *req = NULL;
	char *head = malloc(HEAD_MAX + 1), *end = NULL;
	const char *hp = c->socket ? "localhost" : strstr(c->base, "://") + 3;
	size_t len = 0;
	int status = 0, r = 1;

	snprintf(host, sizeof(host), "%s", hp);
	if (!head || ws_new_key(key) < 0 ||
	    asprintf(&req, "GET /v1/vms/%s/console HTTP/1.1\r\nHost: %s\r\n"
		     "Upgrade: websocket\r\nConnection: Upgrade\r\n"
		     "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: " WS_VERSION "\r\n"
		     "%s%s%s\r\n", name, host, key, c->token ? "Authorization: Bearer " : "",
		     c->token ? c->token : "", c->token ? "\r\n" : "") < 0) {
		cli_err("console: out of memory");
		req = NULL;
		goto out;
	}
	if (send_all(s, fd, req, strlen(req)) < 0)
		goto lost;
	/* The head, and maybe the first frames or the error's body after it. */
	while (!(end = len ? strstr(head, "\r\n\r\n") : NULL)) {
		ssize_t n;

		if (len == HEAD_MAX) {
			cli_err("%s: an answer's head larger than %d bytes", c->where, HEAD_MAX);
			goto out;
		}
		n = io_recv(s, head + len, HEAD_MAX - len);
		if (n == -EAGAIN) {
			if (!wait_fd(fd, POLLIN, 30000))
				goto lost;
			continue;
		}
		if (n <= 0)
			goto lost;
		len += (size_t)n;
		head[len] = 0;
	}
	end += 4;
	if (sscanf(head, "HTTP/1.%*d %d", &status) != 1)
		goto lost;
	if (status != 101) {
		/* The service's error: {"error": "..."} of Content-Length bytes. */
		char cl[32] = "0";
		size_t want, have = len - (size_t)(end - head);
		json_t *body;
		const char *msg;

		head_value(head, "Content-Length", cl, sizeof(cl));
		want = strtoul(cl, NULL, 10);
		if (want > HEAD_MAX - (size_t)(end - head))
			want = HEAD_MAX - (size_t)(end - head);
		while (have < want) {
			ssize_t n = io_recv(s, head + len, want - have);

			if (n == -EAGAIN && wait_fd(fd, POLLIN, 30000))
				continue;
			if (n <= 0)
				break;
			len += (size_t)n;
			have += (size_t)n;
		}
		body = json_loadb(end, have, 0, NULL);
		msg = json_string_value(json_object_get(body, "error"));
		if (msg)
			cli_err("%s", msg);
		else
			cli_err("%s: the console's request was answered %d", c->where, status);
		json_decref(body);
		goto out;
	}
	ws_accept(key, accept);
	if (!head_value(head, "Sec-WebSocket-Accept", got, sizeof(got)) || strcmp(got, accept)) {
		cli_err("%s: the upgrade's answer has a wrong Sec-WebSocket-Accept", c->where);
		goto out;
	}
	if (ws_create(&s->ws, true, MESSAGE_MAX, &session_ops, s) < 0 ||
	    ws_preload(s->ws, end, len - (size_t)(end - head)) < 0) {
		cli_err("console: out of memory");
		goto out;
	}
	r = 0;
	goto out;
lost:
	cli_err("%s: the connection ended during the console's handshake", c->where);
out:
	free(req);
	free(head);
	return r;
}

/* --- the session ---------------------------------------------------- */

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Sends what stdin has, up to Ctrl-] on a terminal; false at its end. */
static bool read_input(struct session *s, bool *leave)
{
	uint8_t buf[4096];
	ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));

	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return true;
	if (n <= 0)
		return false;
	if (s->tty) {
		uint8_t *esc = memchr(buf, ESCAPE, (size_t)n);

		if (esc) {
			n = esc - buf;
			*leave = true;
		}
	}
	if (n > 0 && ws_send(s->ws, false, buf, (size_t)n) < 0)
		s->failed = true;
	return true;
}

/* Runs until the VM's console closes, Ctrl-], or a signal (returned). */
static int run(struct session *s, curl_socket_t fd, int sfd, bool *left)
{
	bool in_open = true, leave = false;
	uint64_t leave_by = 0;

	/* The first frames may have come with the 101: no poll would say so. */
	if (ws_read(s->ws) < 0)
		s->failed = true;
	for (;;) {
		struct pollfd p[3] = {
			{ .fd = fd }, { .fd = -1, .events = POLLIN }, { .fd = sfd, .events = POLLIN },
		};
		int timeout = -1;

		if (ws_write(s->ws) < 0)
			s->failed = true;
		if (s->failed || ws_finished(s->ws))
			return 0;
		if (leave && !leave_by) {
			ws_close(s->ws, WS_CLOSE_NORMAL, "left");
			leave_by = now_ms() + LEAVE_MS;
			*left = true;
			continue;
		}
		if (leave_by) {
			uint64_t now = now_ms();

			if (now >= leave_by)
				return 0;
			timeout = (int)(leave_by - now);
		}
		p[0].events = (ws_want_read(s->ws) ? POLLIN : 0) |
			      (ws_want_write(s->ws) ? POLLOUT : 0);
		if (in_open && !leave && ws_queued(s->ws, NULL) < SEND_QUEUE)
			p[1].fd = STDIN_FILENO;
		if (poll(p, 3, timeout) < 0) {
			if (errno == EINTR)
				continue;
			return 0;
		}
		if (p[2].revents & POLLIN) {
			struct signalfd_siginfo si;

			if (read(sfd, &si, sizeof(si)) == sizeof(si))
				return (int)si.ssi_signo;
		}
		if (p[1].revents & (POLLIN | POLLHUP | POLLERR))
			in_open = read_input(s, &leave);
		if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			if (ws_read(s->ws) < 0)
				s->failed = true;
		}
	}
}

static int console(struct client *c, const char *name)
{
	struct session s = { .curl = c->curl };
	curl_socket_t fd = CURL_SOCKET_BAD;
	char *url = NULL;
	const char *reason;
	sigset_t sigs;
	bool left = false;
	int sfd, sig, code, ret = 1;
	CURLcode cr;

	/* Names and uuids are letters, digits, '.', '_' and '-': the path
	 * needs no escaping, and anything else is no VM's. */
	if (!name[0] || name[strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
				    "0123456789._-")]) {
		cli_err("console: '%s' is not a VM's name or uuid", name);
		return 1;
	}
	if (asprintf(&url, "%s/v1/vms/%s/console", c->base, name) < 0)
		return 1;
	client_setup(c);
	curl_easy_setopt(c->curl, CURLOPT_URL, url);
	/* The connection, with TLS's handshake and verification over https. */
	curl_easy_setopt(c->curl, CURLOPT_CONNECT_ONLY, 1L);
	cr = curl_easy_perform(c->curl);
	free(url);
	if (cr == CURLE_OK)
		cr = curl_easy_getinfo(c->curl, CURLINFO_ACTIVESOCKET, &fd);
	if (cr != CURLE_OK || fd == CURL_SOCKET_BAD) {
		client_failed(c, cr);
		return 1;
	}
	if (handshake(c, &s, name, fd))
		return 1;

	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGHUP);
	sigprocmask(SIG_BLOCK, &sigs, NULL);
	sfd = signalfd(-1, &sigs, SFD_CLOEXEC);
	tty_raw(&s);
	if (s.tty)
		fprintf(stderr, "Connected to vm '%s' (Ctrl-] leaves)\n", name);
	sig = run(&s, fd, sfd, &left);
	tty_restore(&s);
	if (sfd >= 0)
		close(sfd);
	code = ws_peer_close(s.ws, &reason);
	if (sig) {
		ws_destroy(s.ws);
		/* Ended by the signal, as without raw mode. */
		signal(sig, SIG_DFL);
		sigprocmask(SIG_UNBLOCK, &sigs, NULL);
		raise(sig);
		return 128 + sig;
	}
	if (left) {
		if (isatty(STDERR_FILENO))
			fputs("\n", stderr);
		ret = 0;
	} else if (code == WS_CLOSE_NORMAL) {
		fprintf(stderr, "\nvsrv: console: %s\n", reason);
		ret = 0;
	} else if (code) {
		cli_err("console: %s (close code %d)", reason[0] ? reason : "closed", code);
	} else {
		cli_err("%s: the console's connection was lost", c->where);
	}
	ws_destroy(s.ws);
	return ret;
}

int client_console_main(int argc, char **argv)
{
	static const struct option opts[] = { CLIENT_OPTS, { NULL, 0, NULL, 0 } };
	struct client_opts co = { 0 };
	struct client c;
	int o, r;

	optind = 1;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		r = client_opt(o, &co, console_usage);
		if (r < 0)
			return 0;
		if (!r)
			return cli_usage(console_usage);
	}
	if (optind != argc - 1)
		return cli_usage(console_usage);
	r = client_init_opts(&c, &co);
	if (r == 0)
		r = console(&c, argv[optind]);
	client_free(&c);
	return r;
}
