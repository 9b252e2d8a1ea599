// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * User-mode networking: libslirp, a TCP/IP stack in the VMM, puts the
 * guest behind a NAT on a network of its own, 10.0.2.0/24, qemu's:
 *
 *   10.0.2.2   the gateway, and the host (its 127.0.0.1 as seen from the guest)
 *   10.0.2.3   DNS, forwarded to the host's resolver (/etc/resolv.conf)
 *   10.0.2.15  the guest, by DHCP (slirp's server); further clients get .16 up
 *
 * The guest's connections out become the host's own sockets (no
 * privileges needed); port forwards (hostfwd=) listen on the host and
 * connect to the guest.  IPv4 only.
 *
 * libslirp does nothing by itself: this backend gives it its file
 * descriptors to poll and its timers on the device's I/O thread (before
 * each poll slirp_pollfds_fill() names the sockets and its next timeout,
 * after it slirp_pollfds_poll() reads and writes them and runs the TCP
 * timers), and every frame the guest sends (slirp_input()).  Frames for
 * the guest come back through send_packet, on the same thread.
 *
 * It runs in vsrv-net (net-helper.c), a process of its own, not in the
 * VMM: libslirp parses every frame the untrusted guest sends, and the
 * sockets it makes for the guest would need the VMM's seccomp filter to
 * allow socket(), connect() and the rest.  Here the helper's main loop is
 * the "I/O thread", and the port (struct net_port) sends frames and log
 * lines back to the VMM over its socket pair.
 *
 * After the helper's sandbox, libslirp makes sockets for the guest's
 * connections and reads /etc/resolv.conf again when it changes:
 * net-helper.c lists the calls.  SIGPIPE is ignored there, so a peer that
 * went away is an EPIPE, not the end of the helper.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libslirp.h>

#include "net.h"

#define SLIRP_TIMERS	4	/* libslirp 4.7 makes one (IPv6 router adverts) */

struct slirp_timer {
	bool used;
	SlirpTimerId id;
	void *cb_opaque;
	int64_t expire_ms;	/* -1: not armed */
};

struct net_slirp {
	struct net_backend b;
	Slirp *slirp;
	struct slirp_timer timers[SLIRP_TIMERS];
	/* The poll being prepared or handled. */
	struct pollfd *p;
	unsigned n, max;
	bool overflow_logged;
	uint8_t frame[NET_FRAME_MAX];	/* a frame the guest sent, in one piece */
};

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* --- libslirp's callbacks --- */

static ssize_t send_packet(const void *buf, size_t len, void *opaque)
{
	struct net_slirp *s = opaque;

	/* Its own frames are Ethernet frames up to its MTU: anything else
	 * would be a bug in it, dropped rather than passed on. */
	if (len >= NET_FRAME_MIN && len <= NET_FRAME_MAX)
		s->b.port.receive(s->b.port.opaque, buf, len);
	return (ssize_t)len;
}

static void guest_error(const char *msg, void *opaque)
{
	struct net_slirp *s = opaque;

	s->b.port.log(s->b.port.opaque, msg);
}

static int64_t clock_get_ns(void *opaque)
{
	return now_ns();
}

static void *timer_new_opaque(SlirpTimerId id, void *cb_opaque, void *opaque)
{
	struct net_slirp *s = opaque;

	for (unsigned i = 0; i < SLIRP_TIMERS; i++) {
		if (!s->timers[i].used) {
			s->timers[i] = (struct slirp_timer){ true, id, cb_opaque, -1 };
			return &s->timers[i];
		}
	}
	return NULL;
}

static void timer_free(void *timer, void *opaque)
{
	if (timer)
		((struct slirp_timer *)timer)->used = false;
}

static void timer_mod(void *timer, int64_t expire_ms, void *opaque)
{
	if (timer)
		((struct slirp_timer *)timer)->expire_ms = expire_ms;
}

/* The descriptors are named anew before every poll: nothing to keep. */
static void register_poll_fd(int fd, void *opaque)
{
}

static void unregister_poll_fd(int fd, void *opaque)
{
}

/* Everything of slirp's runs on the I/O thread, which looks again after
 * each handler: no wake-up needed. */
static void notify(void *opaque)
{
}

static const SlirpCb callbacks = {
	.send_packet = send_packet,
	.guest_error = guest_error,
	.clock_get_ns = clock_get_ns,
	.timer_free = timer_free,
	.timer_mod = timer_mod,
	.register_poll_fd = register_poll_fd,
	.unregister_poll_fd = unregister_poll_fd,
	.notify = notify,
	.timer_new_opaque = timer_new_opaque,
};

/* --- polling --- */

static int add_poll(int fd, int events, void *opaque)
{
	struct net_slirp *s = opaque;
	short ev = 0;

	if (s->n == s->max) {
		/* Sockets past what one poll watches wait for a later one
		 * (a guest with that many connections open). */
		if (!s->overflow_logged)
			s->b.port.log(s->b.port.opaque,
				      "more sockets than one poll watches: some wait");
		s->overflow_logged = true;
		return -1;
	}
	if (events & SLIRP_POLL_IN)
		ev |= POLLIN;
	if (events & SLIRP_POLL_OUT)
		ev |= POLLOUT;
	if (events & SLIRP_POLL_PRI)
		ev |= POLLPRI;
	s->p[s->n] = (struct pollfd){ .fd = fd, .events = ev };
	return (int)s->n++;
}

static int get_revents(int idx, void *opaque)
{
	struct net_slirp *s = opaque;
	short rev;
	int r = 0;

	if (idx < 0 || (unsigned)idx >= s->n)
		return 0;
	rev = s->p[idx].revents;
	if (rev & POLLIN)
		r |= SLIRP_POLL_IN;
	if (rev & POLLOUT)
		r |= SLIRP_POLL_OUT;
	if (rev & POLLPRI)
		r |= SLIRP_POLL_PRI;
	if (rev & (POLLERR | POLLNVAL))
		r |= SLIRP_POLL_ERR;
	if (rev & POLLHUP)
		r |= SLIRP_POLL_HUP;
	return r;
}

static unsigned slirp_poll_fill(struct net_backend *b, struct pollfd *p, unsigned max,
				int *timeout_ms)
{
	struct net_slirp *s = (struct net_slirp *)b;
	uint32_t t = *timeout_ms < 0 ? UINT32_MAX : (uint32_t)*timeout_ms;
	int64_t now = now_ns() / 1000000;

	s->p = p;
	s->n = 0;
	s->max = max;
	slirp_pollfds_fill(s->slirp, &t, add_poll, s);
	for (unsigned i = 0; i < SLIRP_TIMERS; i++) {
		int64_t e = s->timers[i].expire_ms;

		if (s->timers[i].used && e >= 0)
			t = e <= now ? 0 : (uint32_t)(e - now) < t ? (uint32_t)(e - now) : t;
	}
	*timeout_ms = t == UINT32_MAX ? -1 : t > (uint32_t)INT32_MAX ? INT32_MAX : (int)t;
	return s->n;
}

static void slirp_poll_handle(struct net_backend *b, struct pollfd *p, unsigned n)
{
	struct net_slirp *s = (struct net_slirp *)b;
	int64_t now = now_ns() / 1000000;

	for (unsigned i = 0; i < SLIRP_TIMERS; i++) {
		struct slirp_timer *t = &s->timers[i];

		if (t->used && t->expire_ms >= 0 && t->expire_ms <= now) {
			t->expire_ms = -1;
			slirp_handle_timer(s->slirp, t->id, t->cb_opaque);
		}
	}
	s->p = p;
	s->n = n;
	slirp_pollfds_poll(s->slirp, 0, get_revents, s);
}

static int slirp_send(struct net_backend *b, const struct iovec *iov, unsigned nr, size_t len)
{
	struct net_slirp *s = (struct net_slirp *)b;

	/* The helper's frames come in one piece: no copy. */
	if (nr == 1) {
		slirp_input(s->slirp, iov[0].iov_base, (int)len);
		return 0;
	}
	net_iov_copy(iov, nr, s->frame, len);
	slirp_input(s->slirp, s->frame, (int)len);
	return 0;
}

static void slirp_destroy(struct net_backend *b)
{
	struct net_slirp *s = (struct net_slirp *)b;

	if (s->slirp)
		slirp_cleanup(s->slirp);
	free(s);
}

static const struct net_backend_ops slirp_ops = {
	.name = "user",
	.send = slirp_send,
	.poll_fill = slirp_poll_fill,
	.poll_handle = slirp_poll_handle,
	.destroy = slirp_destroy,
};

static int add_forwards(struct net_slirp *s, const struct net_spec *spec, char *err,
			size_t errlen)
{
	for (unsigned i = 0; i < spec->nr_fwd; i++) {
		const struct net_hostfwd *f = &spec->fwd[i];
		char host[INET_ADDRSTRLEN];

		errno = 0;
		if (slirp_add_hostfwd(s->slirp, f->udp, f->host, f->host_port, f->guest,
				      f->guest_port) == 0)
			continue;
		inet_ntop(AF_INET, &f->host, host, sizeof(host));
		snprintf(err, errlen, "hostfwd: cannot listen on %s:%u (%s)%s%s", host,
			 f->host_port, f->udp ? "UDP" : "TCP", errno ? ": " : "",
			 errno ? strerror(errno) : "");
		return -EADDRINUSE;
	}
	return 0;
}

int net_slirp_open(const struct net_spec *spec, struct net_backend **out, char *err,
		   size_t errlen)
{
	struct net_slirp *s = calloc(1, sizeof(*s));
	SlirpConfig cfg = {
		.version = 4,
		.in_enabled = true,
		.vnetwork = { htonl(0x0a000200) },	/* 10.0.2.0 */
		.vnetmask = { htonl(0xffffff00) },
		.vhost = { htonl(0x0a000202) },		/* 10.0.2.2 */
		.vdhcp_start = { htonl(0x0a00020f) },	/* 10.0.2.15 */
		.vnameserver = { htonl(0x0a000203) },	/* 10.0.2.3 */
	};
	int r;

	if (!s)
		return -ENOMEM;
	s->b.ops = &slirp_ops;
	s->slirp = slirp_new(&cfg, &callbacks, s);
	if (!s->slirp) {
		free(s);
		snprintf(err, errlen, "libslirp could not start");
		return -ENOMEM;
	}
	r = add_forwards(s, spec, err, errlen);
	if (r < 0) {
		slirp_destroy(&s->b);
		return r;
	}
	*out = &s->b;
	return 0;
}
