/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The network behind a virtual NIC: a backend (struct net_backend_ops)
 * takes the frames the guest sends and hands the device the frames that
 * arrive for it.  Backends: user (libslirp in vsrv-net, user.c: the guest
 * behind a NAT at 10.0.2.15, host port forwards), tap (tap.c: a tap device, made or
 * opened by name, or made and attached to a Linux bridge), and null (no
 * network: frames sent vanish; for the fuzzer).
 *
 * Threads: everything a backend does runs on its device's I/O thread
 * (src/devices/iothread.h), which polls the backend's file descriptors
 * with the doorbells.  A backend opens every file descriptor it needs
 * from the start (sandbox.c: nothing is opened afterwards).
 *
 * User networking's libslirp runs in a helper process, vsrv-net
 * (net-helper.c, slirp.c): the VMM's backend (user.c) exchanges frames
 * with it over a socket pair (net-proto.h).
 *
 * Frames are Ethernet frames without the FCS, ETH_ZLEN padding not
 * required, at most NET_FRAME_MAX bytes.
 */
#ifndef VSRV_NET_H
#define VSRV_NET_H

#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/uio.h>

#define NET_FRAME_MIN		14	/* an Ethernet header */
#define NET_FRAME_MAX		65536	/* 64 KiB: the largest an IP packet needs, and a header */
#define NET_HOSTFWD_MAX		16	/* port forwards per NIC */
#define NET_NICS_MAX		8	/* NICs per VM */

enum net_type { NET_USER, NET_TAP, NET_BRIDGE, NET_NULL };

/* hostfwd=tcp:127.0.0.1:2222-:22 (qemu's form): host address and port
 * forwarded to the guest's address and port.  An empty host address is
 * every address (0.0.0.0); an empty guest address the guest's (10.0.2.15). */
struct net_hostfwd {
	bool udp;
	struct in_addr host, guest;
	uint16_t host_port, guest_port;
};

/* One NIC as --net or "nics" describes it. */
struct net_spec {
	enum net_type type;
	char ifname[IFNAMSIZ];	/* tap=, bridge= */
	uint8_t mac[6];
	bool has_mac;		/* else the default: 52:54:00:12:34:56 + the NIC's index */
	struct net_hostfwd fwd[NET_HOSTFWD_MAX];
	unsigned nr_fwd;
};

/* spec.c.  Each fills err with one line (no "vsrv: ") and returns -EINVAL. */
/* --net's value: user[,hostfwd=...][,mac=...], tap=NAME[,mac=...],
 * bridge=NAME[,mac=...]. */
int net_spec_parse(const char *s, struct net_spec *spec, char *err, size_t errlen);
/* The parts, for the configuration file. */
int net_spec_set_type(struct net_spec *spec, const char *type, const char *ifname, char *err,
		      size_t errlen);
int net_spec_set_mac(struct net_spec *spec, const char *mac, char *err, size_t errlen);
int net_spec_add_hostfwd(struct net_spec *spec, const char *fwd, char *err, size_t errlen);
/* The MAC the index-th NIC gets: spec's, or the default. */
void net_spec_mac(const struct net_spec *spec, unsigned index, uint8_t mac[6]);
/* A port forward as hostfwd= takes it, every part written out
 * ("tcp:0.0.0.0:2222-10.0.2.15:22"): for the saved configuration. */
const char *net_hostfwd_format(const struct net_hostfwd *f, char *buf, size_t len);
/* "user", "tap=NAME", "bridge=NAME": for messages. */
const char *net_spec_describe(const struct net_spec *spec, char *buf, size_t len);

struct net_backend;

#define NET_SEND_LATER	1

/* Where a backend's frames go: the device, on the I/O thread. */
struct net_port {
	void (*receive)(void *opaque, const void *frame, size_t len);
	/* Something the guest did that the backend refuses, in its words. */
	void (*log)(void *opaque, const char *msg);
	/* Room again after a send that returned NET_SEND_LATER. */
	void (*writable)(void *opaque);
	void *opaque;
};

struct net_backend_ops {
	const char *name;
	/* A frame from the guest, [NET_FRAME_MIN, NET_FRAME_MAX] bytes in
	 * iov: 0 once it is on its way, negative if it was dropped,
	 * NET_SEND_LATER if the backend has no room now and did not take it
	 * (it calls port.writable when it has). */
	int (*send)(struct net_backend *b, const struct iovec *iov, unsigned nr, size_t len);
	/* Before each poll: up to max descriptors to watch, and *timeout_ms
	 * lowered to the backend's next timer.  NULL: nothing to poll. */
	unsigned (*poll_fill)(struct net_backend *b, struct pollfd *p, unsigned max,
			      int *timeout_ms);
	/* After it (also on a timeout): what became ready, frames received
	 * delivered through port.receive. */
	void (*poll_handle)(struct net_backend *b, struct pollfd *p, unsigned n);
	void (*destroy)(struct net_backend *b);
};

struct net_backend {
	const struct net_backend_ops *ops;
	struct net_port port;
};

/* backend.c: the backend spec describes, opened with every descriptor it
 * needs; frames go to port.  err: one line ("net0: bridge=br9: ...").
 * index names the NIC in messages. */
int net_backend_open(const struct net_spec *spec, unsigned index, const struct net_port *port,
		     struct net_backend **out, char *err, size_t errlen);
void net_backend_destroy(struct net_backend *b);

/* The backends' own constructors (backend.c dispatches). */
int net_user_open(const struct net_spec *spec, unsigned index, struct net_backend **out,
		  char *err, size_t errlen);
int net_tap_open(const struct net_spec *spec, struct net_backend **out, char *err,
		 size_t errlen);
int net_null_open(struct net_backend **out);

/* libslirp itself, in vsrv-net (slirp.c): the same ops, run by the
 * helper's loop. */
int net_slirp_open(const struct net_spec *spec, struct net_backend **out, char *err,
		   size_t errlen);

/* Copies a frame in iov into buf (at least len bytes). */
static inline void net_iov_copy(const struct iovec *iov, unsigned nr, void *buf, size_t len)
{
	uint8_t *b = buf;

	for (unsigned i = 0; i < nr && len; i++) {
		size_t n = iov[i].iov_len < len ? iov[i].iov_len : len;

		memcpy(b, iov[i].iov_base, n);
		b += n;
		len -= n;
	}
}

#endif
