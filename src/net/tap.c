// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * A tap device: the guest's frames go out of it into the host's network
 * stack, and what the host routes or bridges to it comes back.
 *
 *   tap=NAME     opens the tap NAME, or makes it (then up, with no
 *                address: the host configures it)
 *   bridge=NAME  makes a tap (the kernel names it vsrvN), brings it up and
 *                attaches it to the existing Linux bridge NAME
 *
 * A tap vsrv makes is not persistent: the kernel removes it, and takes it
 * off its bridge, when its last descriptor closes, so it goes with the
 * VMM however that ends (a crash or SIGKILL too).  A persistent tap made
 * beforehand (ip tuntap add NAME mode tap user USER) stays, and lets a
 * user without CAP_NET_ADMIN use it.
 *
 * Frames are plain Ethernet frames (IFF_NO_PI), without IFF_VNET_HDR:
 * vsrv's virtio-net offers no offloads, so there is no checksum or
 * segmentation work to pass to the host kernel, and none to check.  The
 * descriptor is non-blocking; everything after start-up is read, writev
 * and poll, which the sandbox allows anyway.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <linux/sockios.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "net.h"

/* Frames read in one go before the I/O thread looks at its doorbells. */
#define TAP_BATCH	64

struct net_tap {
	struct net_backend b;
	int fd;
	bool dead;		/* the tap went away: stop polling it */
	char name[IFNAMSIZ];
	uint8_t frame[NET_FRAME_MAX + 1];	/* one more: a longer frame is cut, and dropped */
};

static int tap_send(struct net_backend *b, const struct iovec *iov, unsigned nr, size_t len)
{
	struct net_tap *t = (struct net_tap *)b;
	ssize_t n = writev(t->fd, iov, (int)nr);

	return n < 0 ? -errno : 0;
}

static unsigned tap_poll_fill(struct net_backend *b, struct pollfd *p, unsigned max,
			      int *timeout_ms)
{
	struct net_tap *t = (struct net_tap *)b;

	if (t->dead || !max)
		return 0;
	p[0] = (struct pollfd){ .fd = t->fd, .events = POLLIN };
	return 1;
}

static void tap_poll_handle(struct net_backend *b, struct pollfd *p, unsigned n)
{
	struct net_tap *t = (struct net_tap *)b;
	char msg[128];

	if (!n || !p[0].revents)
		return;
	for (unsigned i = 0; i < TAP_BATCH; i++) {
		ssize_t got = read(t->fd, t->frame, sizeof(t->frame));

		if (got < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (got < 0) {
			snprintf(msg, sizeof(msg), "tap %s: %s: no longer read", t->name,
				 strerror(errno));
			t->b.port.log(t->b.port.opaque, msg);
			t->dead = true;
			return;
		}
		if (got >= NET_FRAME_MIN && got <= NET_FRAME_MAX)
			t->b.port.receive(t->b.port.opaque, t->frame, (size_t)got);
	}
}

static void tap_destroy(struct net_backend *b)
{
	struct net_tap *t = (struct net_tap *)b;

	if (t->fd >= 0)
		close(t->fd);
	free(t);
}

static const struct net_backend_ops tap_ops = {
	.name = "tap",
	.send = tap_send,
	.poll_fill = tap_poll_fill,
	.poll_handle = tap_poll_handle,
	.destroy = tap_destroy,
};

static int fail(char *err, size_t errlen, int r, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t errlen, int r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return r;
}

static int check_bridge(const char *name, char *err, size_t errlen)
{
	char path[64];
	struct stat st;

	if (!if_nametoindex(name))
		return fail(err, errlen, -ENODEV, "there is no interface %s (make the bridge first: ip link add %s type bridge)",
			    name, name);
	snprintf(path, sizeof(path), "/sys/class/net/%s/bridge", name);
	if (stat(path, &st) < 0)
		return fail(err, errlen, -EINVAL, "%s is not a bridge", name);
	return 0;
}

/* The tap up, and on the bridge if there is one. */
static int tap_link(struct net_tap *t, const char *bridge, bool up, char *err, size_t errlen)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), r = 0;
	struct ifreq ifr = { 0 };

	if (s < 0)
		return fail(err, errlen, -errno, "a socket to configure tap %s: %s", t->name,
			    strerror(errno));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", t->name);
	if (up && (ioctl(s, SIOCGIFFLAGS, &ifr) < 0 ||
		   (ifr.ifr_flags |= IFF_UP, ioctl(s, SIOCSIFFLAGS, &ifr) < 0)))
		r = fail(err, errlen, -errno, "bringing tap %s up: %s", t->name, strerror(errno));
	if (!r && bridge) {
		memset(&ifr, 0, sizeof(ifr));
		snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", bridge);
		ifr.ifr_ifindex = (int)if_nametoindex(t->name);
		if (ioctl(s, SIOCBRADDIF, &ifr) < 0)
			r = fail(err, errlen, -errno, "attaching tap %s to bridge %s: %s", t->name,
				 bridge, strerror(errno));
	}
	close(s);
	return r;
}

int net_tap_open(const struct net_spec *spec, struct net_backend **out, char *err,
		 size_t errlen)
{
	bool bridge = spec->type == NET_BRIDGE, made;
	struct net_tap *t;
	struct ifreq ifr = { 0 };
	int r;

	if (bridge && (r = check_bridge(spec->ifname, err, errlen)) < 0)
		return r;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->b.ops = &tap_ops;
	t->fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (t->fd < 0) {
		r = fail(err, errlen, -errno, errno == ENOENT ?
			 "there is no /dev/net/tun (the tun module)" :
			 "opening /dev/net/tun: %s", strerror(errno));
		goto out;
	}
	/* The kernel numbers vsrv%d for a bridge's tap. */
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", bridge ? "vsrv%d" : spec->ifname);
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
	made = bridge || !if_nametoindex(spec->ifname);
	if (ioctl(t->fd, TUNSETIFF, &ifr) < 0) {
		if (errno == EPERM && bridge)
			r = fail(err, errlen, -EPERM, "no permission to make a tap (it needs CAP_NET_ADMIN)");
		else if (errno == EPERM)
			r = fail(err, errlen, -EPERM, "no permission to %s tap %s (it needs CAP_NET_ADMIN, or a tap made for this user: ip tuntap add %s mode tap user USER)",
				 made ? "make" : "use", spec->ifname, spec->ifname);
		else if (errno == EBUSY)
			r = fail(err, errlen, -EBUSY, "%s is in use by another process", spec->ifname);
		else if (errno == EINVAL && !made)
			r = fail(err, errlen, -EINVAL, "%s is not a tap device", spec->ifname);
		else
			r = fail(err, errlen, -errno, "TUNSETIFF: %s", strerror(errno));
		goto out;
	}
	snprintf(t->name, sizeof(t->name), "%s", ifr.ifr_name);
	r = tap_link(t, bridge ? spec->ifname : NULL, made, err, errlen);
out:
	if (r < 0) {
		tap_destroy(&t->b);
		return r;
	}
	*out = &t->b;
	return 0;
}
