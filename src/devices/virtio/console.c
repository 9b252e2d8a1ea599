// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * virtio-console (virtio 1.x, "Console Device") with
 * VIRTIO_CONSOLE_F_MULTIPORT: port 0 is the VM's console (Linux's hvc0),
 * ports 1 and up are named ports (/dev/vport0pN) whose host side is a
 * Unix socket, one client at a time.  The multiport protocol itself is
 * console-ctrl.c; this file is the queues and the host side.
 *
 * Queues: port 0's receive and transmit queues (0, 1), the control
 * receive and transmit queues (2, 3), then port n's (2 + 2n, 3 + 2n).
 *
 * Guest output (transmit queues) is never buffered here: port 0's goes
 * into the console's ring (bounded; the oldest output goes first), a
 * named port's straight from guest memory to its client with
 * non-blocking sends.  When the client's socket is full, the chain goes
 * back to the ring (VIRTIO_LATER), with how much of it was sent, and the
 * queue waits until the socket has room: backpressure to the guest, whose
 * transmit queue fills.  With no client, output is dropped and counted.
 *
 * Host input waits in a ring of VCON_IN_SIZE bytes per port until the
 * guest posts receive buffers (and, for a named port, opens it: Linux
 * throws away what reaches a closed port).  A full ring stops the reading:
 * the console waits for console_input_ready(), the client is not polled
 * and its sends block.  So the guest cannot make the VMM hold more than a
 * ring per port, whatever it does or fails to do.
 *
 * Threads: everything on the device's I/O thread (queue work, and the
 * named ports' sockets through its poll source: accepting, reading,
 * waiting for room), but for the console's input, which its own thread
 * hands to port 0's ring (console_rx) and announces through host_fd.  The
 * rings are under vc->lock for that, held only for copies and
 * non-blocking calls and never while kicking the I/O thread (which may
 * run handlers inline).
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/virtio_console.h>
#include <linux/virtio_ids.h>

#include "../devices.h"
#include "../state.h"
#include "console.h"
#include "virtio.h"

#define VCON_QUEUE_SIZE		128
#define VCON_IN_SIZE		4096
#define VCON_CTRL_RX		2
#define VCON_CTRL_TX		3
#define VCON_CONFIG_SIZE	12	/* struct virtio_console_config */
#define PCI_CLASS_COMMUNICATION_OTHER	0x078000

struct vcon_port_counters {
	atomic_uint_least64_t from_guest;	/* bytes the guest wrote that went out */
	atomic_uint_least64_t to_guest;		/* host input the guest received */
	atomic_uint_least64_t dropped;		/* guest output with no one to take it */
	atomic_uint_least64_t clients;		/* connections accepted */
};

struct vcon_port {
	const char *name;	/* NULL: port 0 */
	int listen_fd;		/* -1: no socket */
	/* The host side: the I/O thread's. */
	int client_fd;		/* -1: no client */
	unsigned client_gen;	/* clients accepted so far */
	bool client_eof;	/* it sends nothing more */
	bool tx_blocked;	/* its socket is full: wait for room */
	/* How much of the chain at the head of the transmit queue went to
	 * client number tx_gen already. */
	uint64_t tx_offset;
	unsigned tx_gen;
	/* Input, under vc->lock (the console's thread fills port 0's). */
	bool in_waiting;	/* the console holds input the ring had no room for */
	uint8_t in[VCON_IN_SIZE];
	uint32_t in_head, in_len;
	struct vcon_port_counters count;
};

struct virtio_console {
	struct virtio_dev *dev;
	struct virtio_dev_ops ops;	/* with this device's number of queues */
	struct console *con;
	unsigned nr_ports;
	struct vcon_ctrl ctrl;		/* the I/O thread's */
	unsigned serving;		/* the port whose queue is being served */
	pthread_mutex_t lock;		/* the input rings */
	bool frozen;			/* quiesced: the console's input waits */
	int host_fd;			/* the console's thread: input came */
	bool input_attached;		/* the console's input is port 0's */
	atomic_uint_least64_t ctrl_from_driver, ctrl_to_driver;
	struct vcon_port port[VCON_PORTS_MAX];
};

static void signal_fd(int fd)
{
	uint64_t one = 1;

	/* EAGAIN: the counter is full, so it is signalled already. */
	if (write(fd, &one, sizeof(one)) < 0)
		return;
}

static void add64(atomic_uint_least64_t *c, uint64_t n)
{
	atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static bool multiport(struct virtio_console *vc)
{
	return virtio_has_feature(vc->dev, VIRTIO_CONSOLE_F_MULTIPORT);
}

static unsigned rx_queue(unsigned p)
{
	return p ? 2 + 2 * p : 0;
}

/* --- the input rings (vc->lock held) --- */

/* The longest run of free bytes at the tail, for recv() into it. */
static size_t ring_space(struct vcon_port *port, uint8_t **at)
{
	uint32_t tail = (port->in_head + port->in_len) % VCON_IN_SIZE;
	size_t k = VCON_IN_SIZE - tail;

	if (k > VCON_IN_SIZE - port->in_len)
		k = VCON_IN_SIZE - port->in_len;
	*at = port->in + tail;
	return k;
}

static size_t ring_put(struct vcon_port *port, const uint8_t *buf, size_t len)
{
	size_t n = 0, k;
	uint8_t *at;

	while (n < len && (k = ring_space(port, &at))) {
		if (k > len - n)
			k = len - n;
		memcpy(at, buf + n, k);
		port->in_len += (uint32_t)k;
		n += k;
	}
	return n;
}

/* Into a receive chain's writable buffers. */
static uint32_t ring_take(struct vcon_port *port, const struct virtq_elem *e)
{
	uint32_t done = 0;

	while (port->in_len && done < e->in_len) {
		size_t k = VCON_IN_SIZE - port->in_head;

		if (k > port->in_len)
			k = port->in_len;
		k = virtq_elem_write(e, done, port->in + port->in_head, k);
		if (!k)
			break;
		port->in_head = (port->in_head + (uint32_t)k) % VCON_IN_SIZE;
		port->in_len -= (uint32_t)k;
		done += (uint32_t)k;
	}
	if (!port->in_len)
		port->in_head = 0;
	return done;
}

/* --- the queues (the I/O thread) --- */

static int rx_handle(struct virtio_dev *d, struct virtq_elem *e, uint32_t *written)
{
	struct virtio_console *vc = d->priv;
	unsigned p = vc->serving;
	struct vcon_port *port = &vc->port[p];
	bool waiting;

	if (e->nr_out) {
		virtio_log(d, "refused: port %u: receive buffer at head %u is device-readable (%llu bytes)",
			   p, e->head, (unsigned long long)e->out_len);
		return -EINVAL;
	}
	/* Without multiport, port 0 is the console. */
	if ((p || multiport(vc)) && !vcon_ctrl_takes_input(&vc->ctrl, p))
		return VIRTIO_LATER;
	pthread_mutex_lock(&vc->lock);
	if (!port->in_len) {
		pthread_mutex_unlock(&vc->lock);
		return VIRTIO_LATER;
	}
	*written = ring_take(port, e);
	waiting = port->in_waiting;
	port->in_waiting = false;
	pthread_mutex_unlock(&vc->lock);
	add64(&port->count.to_guest, *written);
	/* Room again: the console may go on (a client is polled again
	 * anyway, the next time round). */
	if (waiting)
		console_input_ready(vc->con);
	return 0;
}

/* A named port's output to its client, from where the last try stopped. */
static int tx_send(struct virtio_console *vc, struct vcon_port *port, const struct virtq_elem *e)
{
	uint64_t left;

	if (!port->tx_offset)
		port->tx_gen = port->client_gen;
	if (port->client_fd < 0 || port->tx_gen != port->client_gen) {
		/* Nobody there, or the rest of a chain begun for a client
		 * that has gone: for no one. */
		left = e->out_len > port->tx_offset ? e->out_len - port->tx_offset : 0;
		add64(&port->count.dropped, left);
		port->tx_offset = 0;
		return 0;
	}
	while (port->tx_offset < e->out_len) {
		uint64_t off = port->tx_offset;
		unsigned i = 0;
		ssize_t n;

		while (off >= e->iov[i].len)
			off -= e->iov[i++].len;
		n = send(port->client_fd, (uint8_t *)e->iov[i].base + off, e->iov[i].len - off,
			 MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n > 0) {
			port->tx_offset += (uint64_t)n;
			add64(&port->count.from_guest, (uint64_t)n);
		} else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			port->tx_blocked = true;	/* polled for room */
			return VIRTIO_LATER;
		} else if (n == 0 || errno != EINTR) {
			/* Gone: the poll sees the hang-up. */
			add64(&port->count.dropped, e->out_len - port->tx_offset);
			break;
		}
	}
	port->tx_offset = 0;
	return 0;
}

static int tx_handle(struct virtio_dev *d, struct virtq_elem *e, uint32_t *written)
{
	struct virtio_console *vc = d->priv;
	unsigned p = vc->serving;
	struct vcon_port *port = &vc->port[p];

	if (e->nr_in) {
		virtio_log(d, "refused: port %u: transmit buffer at head %u has device-writable buffers (%llu bytes)",
			   p, e->head, (unsigned long long)e->in_len);
		return -EINVAL;
	}
	if (p || !vc->con)
		return tx_send(vc, port, e);
	for (unsigned i = 0; i < e->nr_out; i++)
		console_write(vc->con, e->iov[i].base, e->iov[i].len);
	add64(&port->count.from_guest, e->out_len);
	return 0;
}

static int ctrl_rx_handle(struct virtio_dev *d, struct virtq_elem *e, uint32_t *written)
{
	struct virtio_console *vc = d->priv;
	uint8_t msg[VCON_MSG_MAX];
	size_t n;

	if (e->nr_out) {
		virtio_log(d, "refused: control receive buffer at head %u is device-readable (%llu bytes)",
			   e->head, (unsigned long long)e->out_len);
		return -EINVAL;
	}
	n = vcon_ctrl_next(&vc->ctrl, msg);
	if (!n)
		return VIRTIO_LATER;
	if (e->in_len < n) {
		/* The message waits for a buffer it fits in. */
		virtio_log(d, "refused: control receive buffer at head %u: %llu bytes, the message needs %zu",
			   e->head, (unsigned long long)e->in_len, n);
		return -EINVAL;
	}
	*written = (uint32_t)virtq_elem_write(e, 0, msg, n);
	vcon_ctrl_sent(&vc->ctrl);
	add64(&vc->ctrl_to_driver, 1);
	return 0;
}

static int ctrl_tx_handle(struct virtio_dev *d, struct virtq_elem *e, uint32_t *written)
{
	struct virtio_console *vc = d->priv;
	uint8_t msg[VCON_MSG_LEN] = { 0 };
	char why[200];
	int r;

	if (e->nr_in) {
		virtio_log(d, "refused: a control message at head %u has device-writable buffers (%llu bytes)",
			   e->head, (unsigned long long)e->in_len);
		return -EINVAL;
	}
	virtq_elem_read(e, 0, msg, sizeof(msg));
	r = vcon_ctrl_receive(&vc->ctrl, msg, e->out_len, why, sizeof(why));
	if (r < 0) {
		virtio_log(d, "refused: %s", why);
		return r;
	}
	if (r > 0)
		virtio_log(d, "%s", why);
	add64(&vc->ctrl_from_driver, 1);
	return 0;
}

static void serve(struct virtio_console *vc, unsigned q, virtio_handler handle)
{
	if (atomic_load(&vc->dev->running) && atomic_load(&vc->dev->q[q].ready))
		virtio_queue_serve(vc->dev, q, handle);
}

static void serve_port(struct virtio_console *vc, unsigned p)
{
	vc->serving = p;
	serve(vc, rx_queue(p), rx_handle);
	serve(vc, rx_queue(p) + 1, tx_handle);
}

/* Everything that may have news: after a control message, and whenever
 * the host side has some.  A queue with nothing to do costs a look. */
static void serve_all(struct virtio_console *vc)
{
	bool mp = multiport(vc);

	if (mp)
		serve(vc, VCON_CTRL_RX, ctrl_rx_handle);
	for (unsigned p = 0; p < (mp ? vc->nr_ports : 1); p++)
		serve_port(vc, p);
}

static void queue_notify(struct virtio_dev *d, unsigned q)
{
	struct virtio_console *vc = d->priv;
	unsigned p = q < 2 ? 0 : q / 2 - 1;

	/* The control queues and ports past 0 are multiport's. */
	if (q >= 2 && !multiport(vc))
		return;
	if (q == VCON_CTRL_TX) {
		serve(vc, VCON_CTRL_TX, ctrl_tx_handle);
		serve_all(vc);
	} else if (q == VCON_CTRL_RX) {
		serve(vc, VCON_CTRL_RX, ctrl_rx_handle);
	} else if (p < vc->nr_ports) {
		vc->serving = p;
		serve(vc, q, q % 2 ? tx_handle : rx_handle);
	}
}

/* Clients came or went, input or room arrived (host_fd, the poll). */
static void host_event(void *opaque)
{
	struct virtio_console *vc = opaque;

	for (unsigned p = 0; p < vc->nr_ports; p++)
		vcon_ctrl_host_open(&vc->ctrl, p, p ? vc->port[p].client_fd >= 0 : vc->con != NULL);
	if (atomic_load(&vc->dev->running))
		serve_all(vc);
}

static void kick_host(struct virtio_console *vc)
{
	iothread_kick(vc->dev->io, vc->host_fd);
}

/* --- the console's input (its thread) --- */

static size_t console_rx(void *opaque, const uint8_t *buf, size_t len)
{
	struct virtio_console *vc = opaque;
	struct vcon_port *port = &vc->port[0];
	size_t n = 0;

	pthread_mutex_lock(&vc->lock);
	if (!vc->frozen)
		n = ring_put(port, buf, len);
	if (n < len)
		port->in_waiting = true;
	pthread_mutex_unlock(&vc->lock);
	if (n)
		kick_host(vc);
	return n;
}

/* --- the named ports' sockets: the I/O thread's poll source --- */

/* A client's input into the ring, what fits: > 0 read, 0 its end of
 * input, < 0 nothing now. */
static ssize_t client_read(struct virtio_console *vc, struct vcon_port *port)
{
	uint8_t *at;
	size_t room;
	ssize_t n;

	pthread_mutex_lock(&vc->lock);
	room = ring_space(port, &at);
	n = room ? recv(port->client_fd, at, room, MSG_DONTWAIT) : -1;
	if (n > 0)
		port->in_len += (uint32_t)n;
	pthread_mutex_unlock(&vc->lock);
	if (n == 0)
		port->client_eof = true;
	return n < 0 ? -1 : n;
}

static void client_close(struct vcon_port *port)
{
	close(port->client_fd);
	port->client_fd = -1;
	port->client_eof = port->tx_blocked = false;
}

/* What to poll a named port's socket for. */
static struct pollfd port_pollfd(struct virtio_console *vc, struct vcon_port *port)
{
	bool room;
	short ev = 0;

	if (port->listen_fd < 0)
		return (struct pollfd){ .fd = -1 };
	if (port->client_fd < 0)
		return (struct pollfd){ .fd = port->listen_fd, .events = POLLIN };
	pthread_mutex_lock(&vc->lock);
	room = port->in_len < VCON_IN_SIZE;
	pthread_mutex_unlock(&vc->lock);
	if (!port->client_eof && room)
		ev |= POLLIN;
	if (port->tx_blocked)
		ev |= POLLOUT;
	/* A hang-up shows whatever the events; one whose input is left
	 * unread must wait for room, not wake us again and again. */
	if (!ev && !port->client_eof)
		return (struct pollfd){ .fd = -1 };
	return (struct pollfd){ .fd = port->client_fd, .events = ev };
}

/* One entry per named port, in order. */
static unsigned source_prepare(void *opaque, struct pollfd *p, unsigned max, int *timeout_ms)
{
	struct virtio_console *vc = opaque;
	unsigned n = 0;

	for (unsigned i = 1; i < vc->nr_ports && n < max; i++)
		p[n++] = port_pollfd(vc, &vc->port[i]);
	return n;
}

/* A named port's socket had revents: true when the queues have news. */
static bool port_event(struct virtio_console *vc, struct vcon_port *port, short revents)
{
	bool news = false;
	int fd;

	if (port->client_fd < 0) {
		fd = accept4(port->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return false;
		port->client_fd = fd;
		port->client_gen++;
		add64(&port->count.clients, 1);
		return true;
	}
	if (revents & POLLIN)
		news |= client_read(vc, port) >= 0;
	if (revents & POLLOUT) {
		port->tx_blocked = false;
		news = true;
	}
	/* Gone: once all it sent has been read (or it can send no more). */
	if ((revents & (POLLERR | POLLNVAL)) ||
	    ((revents & POLLHUP) && (port->client_eof || client_read(vc, port) == 0))) {
		client_close(port);
		news = true;
	}
	return news;
}

static void source_dispatch(void *opaque, struct pollfd *p, unsigned n)
{
	struct virtio_console *vc = opaque;
	bool news = false;

	for (unsigned i = 0; i < n; i++)
		if (p[i].fd >= 0 && p[i].revents)
			news |= port_event(vc, &vc->port[i + 1], p[i].revents);
	if (news)
		host_event(vc);
}

/* --- the device type --- */

static void config_read(struct virtio_dev *d, unsigned off, void *data, unsigned len)
{
	struct virtio_console *vc = d->priv;
	/* cols, rows (no VIRTIO_CONSOLE_F_SIZE: 0), max_nr_ports, emerg_wr */
	uint8_t img[VCON_CONFIG_SIZE] = { [4] = (uint8_t)vc->nr_ports };

	memcpy(data, img + off, len);
}

/* host_fd for the console's input; the named ports' sockets, if there
 * are any, as a poll source (which gives the device a thread of its own). */
static int vcon_io_setup(struct virtio_dev *d, struct iothread *io)
{
	struct virtio_console *vc = d->priv;
	struct iothread_source src = {
		.prepare = source_prepare, .dispatch = source_dispatch, .opaque = vc,
	};
	bool sockets = false;
	int r;

	vc->dev = d;
	r = iothread_add(io, vc->host_fd, host_event, vc);
	for (unsigned p = 1; p < vc->nr_ports; p++)
		sockets |= vc->port[p].listen_fd >= 0;
	if (r >= 0 && sockets)
		r = iothread_add_source(io, &src);
	return r;
}

static void vcon_reset(struct virtio_dev *d)
{
	struct virtio_console *vc = d->priv;

	vcon_ctrl_reset(&vc->ctrl);
	for (unsigned p = 0; p < vc->nr_ports; p++)
		vc->port[p].tx_offset = 0;
}

/* With the I/O thread paused (no socket is read then): the console stops
 * adding input too, so that what is saved is what is there when loading. */
static int vcon_quiesce(struct virtio_dev *d)
{
	struct virtio_console *vc = d->priv;

	pthread_mutex_lock(&vc->lock);
	vc->frozen = true;
	pthread_mutex_unlock(&vc->lock);
	return 0;
}

static void vcon_resume(struct virtio_dev *d)
{
	struct virtio_console *vc = d->priv;

	pthread_mutex_lock(&vc->lock);
	vc->frozen = false;
	pthread_mutex_unlock(&vc->lock);
	if (vc->con)
		console_input_ready(vc->con);
	/* What changed on the host side meanwhile. */
	signal_fd(vc->host_fd);
}

static int vcon_save(struct virtio_dev *d, struct dev_state *s)
{
	struct virtio_console *vc = d->priv;

	vcon_ctrl_save(&vc->ctrl, s);
	state_put_section(s, "VCON", 1);
	pthread_mutex_lock(&vc->lock);
	for (unsigned p = 0; p < vc->nr_ports; p++) {
		struct vcon_port *port = &vc->port[p];
		size_t first = VCON_IN_SIZE - port->in_head;

		if (first > port->in_len)
			first = port->in_len;
		state_put_u64(s, port->tx_offset);
		state_put_u32(s, port->in_len);
		state_put_bytes(s, port->in + port->in_head, first);
		state_put_bytes(s, port->in, port->in_len - first);
	}
	pthread_mutex_unlock(&vc->lock);
	return s->err;
}

static int vcon_load(struct virtio_dev *d, struct dev_state *s)
{
	struct virtio_console *vc = d->priv;
	int r = vcon_ctrl_load(&vc->ctrl, s);

	if (r < 0 || !state_get_section(s, "VCON", 1))
		return r < 0 ? r : s->err;
	pthread_mutex_lock(&vc->lock);
	for (unsigned p = 0; p < vc->nr_ports && !s->err; p++) {
		struct vcon_port *port = &vc->port[p];
		uint32_t len;

		port->tx_offset = state_get_u64(s);
		port->tx_gen = port->client_gen;
		len = state_get_u32(s);
		if (len > VCON_IN_SIZE) {
			s->err = -EINVAL;
			break;
		}
		port->in_head = 0;
		port->in_len = len;
		state_get_bytes(s, port->in, len);
	}
	pthread_mutex_unlock(&vc->lock);
	if (s->err)
		vcon_reset(d);
	return s->err;
}

/* For `stats` (docs/control.md), after the transport's: each port's
 * bytes as --stats prints them, "portN_..." (port 0 the console, then
 * the named ports in their order), then the control queues'. */
static void vcon_counters(struct virtio_dev *d,
			  void (*put)(void *ctx, const char *name, uint64_t v), void *ctx)
{
	struct virtio_console *vc = d->priv;
	static const char *const what[] = {
		"bytes_from_guest", "bytes_to_guest", "bytes_dropped", "clients",
	};
	char name[48];

	for (unsigned p = 0; p < vc->nr_ports; p++) {
		struct vcon_port_counters *c = &vc->port[p].count;
		atomic_uint_least64_t *v[] = { &c->from_guest, &c->to_guest, &c->dropped,
					       &c->clients };

		for (unsigned i = 0; i < 4; i++) {
			snprintf(name, sizeof(name), "port%u_%s", p, what[i]);
			put(ctx, name, atomic_load_explicit(v[i], memory_order_relaxed));
		}
	}
	put(ctx, "control_from_driver",
	    atomic_load_explicit(&vc->ctrl_from_driver, memory_order_relaxed));
	put(ctx, "control_to_driver",
	    atomic_load_explicit(&vc->ctrl_to_driver, memory_order_relaxed));
}

static const struct virtio_dev_ops vcon_ops = {
	.name = "virtio-console",
	.device_id = VIRTIO_ID_CONSOLE,
	.pci_class = PCI_CLASS_COMMUNICATION_OTHER,
	.features = 1ull << VIRTIO_CONSOLE_F_MULTIPORT,
	.queue_max = VCON_QUEUE_SIZE,
	.config_size = VCON_CONFIG_SIZE,
	.config_read = config_read,
	.queue_notify = queue_notify,
	.io_setup = vcon_io_setup,
	.reset = vcon_reset,
	.quiesce = vcon_quiesce,
	.resume = vcon_resume,
	.save = vcon_save,
	.load = vcon_load,
	.counters = vcon_counters,
};

int virtio_console_create(struct pci_bus *bus, struct console *con,
			  const struct vcon_port_cfg *named, unsigned nr_named,
			  struct virtio_console **out)
{
	const char *names[VCON_PORTS_MAX] = { NULL };
	struct virtio_console *vc;
	int r;

	if (nr_named > VCON_PORTS_MAX - 1)
		return -EINVAL;
	vc = calloc(1, sizeof(*vc));
	if (!vc)
		return -ENOMEM;
	vc->con = con;
	vc->nr_ports = 1 + nr_named;
	vc->ops = vcon_ops;
	vc->ops.nr_queues = 2 + 2 * vc->nr_ports;
	pthread_mutex_init(&vc->lock, NULL);
	for (unsigned p = 0; p < vc->nr_ports; p++) {
		struct vcon_port *port = &vc->port[p];

		port->listen_fd = p ? named[p - 1].listen_fd : -1;
		port->name = p ? named[p - 1].name : NULL;
		port->client_fd = -1;
		names[p] = port->name;
	}
	vcon_ctrl_init(&vc->ctrl, vc->nr_ports, names, con != NULL);
	vcon_ctrl_host_open(&vc->ctrl, 0, con != NULL);
	vc->host_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (vc->host_fd < 0) {
		r = -errno;
		goto fail;
	}
	r = virtio_pci_create(bus, &vc->ops, vc, &vc->dev);
	if (r < 0) {
		vc->dev = NULL;		/* vcon_io_setup() saw it, then it went */
		goto fail;
	}
	/* The console's input comes here now, not to the UART. */
	if (con) {
		console_attach_input(con, console_rx, vc);
		vc->input_attached = true;
	}
	*out = vc;
	return 0;
fail:
	virtio_console_destroy(vc);
	return r;
}

void virtio_console_destroy(struct virtio_console *vc)
{
	if (!vc)
		return;
	if (vc->input_attached)
		console_attach_input(vc->con, NULL, NULL);
	virtio_pci_destroy(vc->dev);
	for (unsigned p = 0; p < vc->nr_ports; p++)
		if (vc->port[p].client_fd >= 0)
			close(vc->port[p].client_fd);
	if (vc->host_fd >= 0)
		close(vc->host_fd);
	pthread_mutex_destroy(&vc->lock);
	free(vc);
}

void virtio_console_print_stats(struct virtio_console *vc, FILE *f)
{
	const char *dev = vc->dev->pci.name;

	virtio_print_stats(vc->dev, f);
	for (unsigned p = 0; p < vc->nr_ports; p++) {
		struct vcon_port *port = &vc->port[p];
		struct vcon_port_counters *c = &port->count;

		fprintf(f, "vsrv: %s: port %u (%s): %llu bytes from the guest, %llu to it, %llu dropped",
			dev, p, port->name ? port->name : vc->con ? "console" : "unattached",
			(unsigned long long)atomic_load(&c->from_guest),
			(unsigned long long)atomic_load(&c->to_guest),
			(unsigned long long)atomic_load(&c->dropped));
		if (port->listen_fd >= 0)
			fprintf(f, ", %llu %s", (unsigned long long)atomic_load(&c->clients),
				atomic_load(&c->clients) == 1 ? "client" : "clients");
		fputc('\n', f);
	}
	fprintf(f, "vsrv: %s: control: %llu messages from the driver, %llu to it\n", dev,
		(unsigned long long)atomic_load(&vc->ctrl_from_driver),
		(unsigned long long)atomic_load(&vc->ctrl_to_driver));
}
