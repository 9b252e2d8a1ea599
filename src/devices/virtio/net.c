// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * virtio-net, the network device (virtio 1.x, "Network Device"): one
 * receive queue (0) and one transmit queue (1), no control queue, no
 * offloads.  Feature bits: VIRTIO_NET_F_MAC (the configuration's MAC is
 * the NIC's) and VIRTIO_NET_F_STATUS (the link, always up).  Every frame
 * has the 12-byte struct virtio_net_hdr_v1 before it, VERSION_1's.
 *
 * Transmit: the doorbell, then each chain is checked (device-readable
 * only, a header, no offload asked for, a frame of 14 bytes to 64 KiB)
 * and the frame handed to the backend (src/net) as the pieces it lies in;
 * a chain that fails is refused with a log line, and the next one goes.
 * A backend with no room for a frame now (user networking's socket to
 * vsrv-net full) leaves its chain in the ring (VIRTIO_LATER) and the
 * queue waits until it says it has room: backpressure to the guest, whose
 * transmit queue fills, rather than frames lost.
 *
 * Receive: frames come from the backend on the I/O thread, which polls
 * its descriptors with the doorbells (a poll source).  Each goes into the
 * next receive chain whole (no VIRTIO_NET_F_MRG_RXBUF: num_buffers is 1);
 * a chain with device-readable buffers or too small for the header is
 * refused, and the frame tries the next.  With no chain posted, frames wait
 * in a queue of RX_PENDING_MAX, in order, for the driver's next buffers;
 * past that they are dropped and counted.  So are frames that come while
 * the driver is not running.  One interrupt per batch.
 *
 * Threads: everything above runs on the I/O thread, in handlers that
 * take no lock (virtio.h); the configuration is read on vCPU threads
 * under the device's lock.  Counters are relaxed atomics, read by --stats
 * and the control socket's `stats` without a lock.
 */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <linux/virtio_ids.h>
#include <linux/virtio_net.h>

#include "../state.h"
#include "net.h"
#include "virtio.h"

#define NET_QUEUE_SIZE		256
#define RXQ			0
#define TXQ			1
#define RX_PENDING_MAX		64	/* frames waiting for receive buffers */
#define NET_CONFIG_SIZE		10	/* mac, status, max_virtqueue_pairs */
#define PCI_CLASS_ETHERNET	0x020000

struct rx_frame {
	size_t len;
	uint8_t data[];
};

struct net_counters {
	atomic_uint_least64_t rx_packets, rx_bytes, rx_dropped, rx_errors;
	atomic_uint_least64_t tx_packets, tx_bytes, tx_dropped, tx_errors;
};

struct virtio_net {
	struct virtio_dev *dev;
	struct net_backend *backend;
	uint8_t mac[6];		/* d->lock */
	uint16_t status;	/* VIRTIO_NET_S_LINK_UP; d->lock */
	/* The I/O thread's. */
	struct rx_frame *pending[RX_PENDING_MAX];	/* a ring */
	unsigned pending_head, pending_count;
	struct virtq_elem *rx_elem;	/* apart from d->elem: a frame can come while
					 * a transmit chain is being handled */
	struct iovec tx_iov[VIRTQ_ELEM_MAX];
	struct net_counters count;
};

static void count_add(atomic_uint_least64_t *c, uint64_t v)
{
	atomic_fetch_add_explicit(c, v, memory_order_relaxed);
}

/* --- parsing what the guest gives --- */

enum virtio_net_refusal virtio_net_tx_frame(const struct virtq_elem *e, struct iovec *iov,
					    unsigned *nr, size_t *len)
{
	struct virtio_net_hdr_v1 hdr;
	size_t skip = VIRTIO_NET_HDR_LEN;

	*nr = 0;
	*len = 0;
	if (e->nr_in)
		return NET_TX_WRITABLE;
	if (e->out_len < VIRTIO_NET_HDR_LEN)
		return NET_TX_NO_HEADER;
	virtq_elem_read(e, 0, &hdr, sizeof(hdr));
	/* Checksum and segmentation offloads were not offered. */
	if (hdr.flags || hdr.gso_type != VIRTIO_NET_HDR_GSO_NONE)
		return NET_TX_OFFLOAD;
	if (e->out_len - VIRTIO_NET_HDR_LEN < NET_FRAME_MIN ||
	    e->out_len - VIRTIO_NET_HDR_LEN > NET_FRAME_MAX)
		return NET_TX_SIZE;
	for (unsigned i = 0; i < e->nr_out; i++) {
		if (skip >= e->iov[i].len) {
			skip -= e->iov[i].len;
			continue;
		}
		iov[*nr].iov_base = (uint8_t *)e->iov[i].base + skip;
		iov[*nr].iov_len = e->iov[i].len - skip;
		skip = 0;
		(*nr)++;
	}
	*len = e->out_len - VIRTIO_NET_HDR_LEN;
	return NET_OK;
}

enum virtio_net_refusal virtio_net_rx_fill(const struct virtq_elem *e, const void *frame,
					   size_t len, uint32_t *written)
{
	struct virtio_net_hdr_v1 hdr = { .num_buffers = htole16(1) };

	*written = 0;
	if (e->nr_out)
		return NET_RX_READABLE;
	if (e->in_len < VIRTIO_NET_HDR_LEN)
		return NET_RX_NO_HEADER;
	if (e->in_len - VIRTIO_NET_HDR_LEN < len)
		return NET_RX_TOO_SMALL;
	virtq_elem_write(e, 0, &hdr, sizeof(hdr));
	virtq_elem_write(e, VIRTIO_NET_HDR_LEN, frame, len);
	*written = (uint32_t)(VIRTIO_NET_HDR_LEN + len);
	return NET_OK;
}

/* --- transmit --- */

static int tx_handle(struct virtio_dev *d, struct virtq_elem *e, uint32_t *written)
{
	struct virtio_net *n = d->priv;
	struct virtio_net_hdr_v1 hdr = { 0 };
	unsigned nr;
	size_t len;
	int r;

	*written = 0;
	switch (virtio_net_tx_frame(e, n->tx_iov, &nr, &len)) {
	case NET_OK:
		break;
	case NET_TX_WRITABLE:
		virtio_log(d, "refused: transmit chain at head %u has device-writable buffers (%llu bytes)",
			   e->head, (unsigned long long)e->in_len);
		goto refused;
	case NET_TX_NO_HEADER:
		virtio_log(d, "refused: transmit chain at head %u has %llu bytes, less than the %u-byte header",
			   e->head, (unsigned long long)e->out_len, VIRTIO_NET_HDR_LEN);
		goto refused;
	case NET_TX_OFFLOAD:
		virtq_elem_read(e, 0, &hdr, sizeof(hdr));
		virtio_log(d, "refused: transmit chain at head %u asks for offloads not negotiated (flags 0x%x, gso_type %u)",
			   e->head, hdr.flags, hdr.gso_type);
		goto refused;
	default:
		virtio_log(d, "refused: transmit chain at head %u has a frame of %llu bytes (%u to %u allowed)",
			   e->head, (unsigned long long)(e->out_len - VIRTIO_NET_HDR_LEN),
			   NET_FRAME_MIN, NET_FRAME_MAX);
		goto refused;
	}
	r = n->backend->ops->send(n->backend, n->tx_iov, nr, len);
	if (r == NET_SEND_LATER)
		return VIRTIO_LATER;	/* back in the ring until tx_writable() */
	if (r < 0) {
		count_add(&n->count.tx_dropped, 1);
		return 0;
	}
	count_add(&n->count.tx_packets, 1);
	count_add(&n->count.tx_bytes, len);
	return 0;
refused:
	count_add(&n->count.tx_errors, 1);
	return -EINVAL;
}

/* --- receive --- */

/* A frame into the next receive chain: true once it is dealt with
 * (delivered, or dropped for a chain too small), false when there is no
 * chain for it. */
static bool rx_deliver(struct virtio_net *n, const void *frame, size_t len)
{
	struct virtio_dev *d = n->dev;
	struct virtq_elem *e = n->rx_elem;
	uint32_t written;

	for (;;) {
		int r = virtio_queue_pop(d, RXQ, e);

		if (r < 0) {
			count_add(&n->count.rx_dropped, 1);
			return true;
		}
		if (!r)
			return false;
		switch (virtio_net_rx_fill(e, frame, len, &written)) {
		case NET_OK:
			virtio_queue_push(d, RXQ, e->head, written);
			count_add(&n->count.rx_packets, 1);
			count_add(&n->count.rx_bytes, len);
			return true;
		case NET_RX_READABLE:
			virtio_log(d, "refused: receive chain at head %u has device-readable buffers (%llu bytes)",
				   e->head, (unsigned long long)e->out_len);
			break;
		case NET_RX_NO_HEADER:
			virtio_log(d, "refused: receive chain at head %u has %llu bytes, less than the %u-byte header",
				   e->head, (unsigned long long)e->in_len, VIRTIO_NET_HDR_LEN);
			break;
		default:
			/* The driver's buffers are too small for what the
			 * network sends: this frame is lost, not the next. */
			virtio_log(d, "refused: receive chain at head %u has %llu bytes, too few for a frame of %zu bytes and the header",
				   e->head, (unsigned long long)e->in_len, len);
			virtio_queue_refuse(d, RXQ, e->head);
			count_add(&n->count.rx_errors, 1);
			return true;
		}
		virtio_queue_refuse(d, RXQ, e->head);
		count_add(&n->count.rx_errors, 1);
	}
}

static void pending_drop_all(struct virtio_net *n)
{
	while (n->pending_count) {
		free(n->pending[n->pending_head]);
		n->pending_head = (n->pending_head + 1) % RX_PENDING_MAX;
		n->pending_count--;
		count_add(&n->count.rx_dropped, 1);
	}
	n->pending_head = 0;
}

/* Frames that waited, in order, while the driver has chains for them. */
static void rx_flush(struct virtio_net *n)
{
	while (n->pending_count && atomic_load(&n->dev->running)) {
		struct rx_frame *f = n->pending[n->pending_head];

		if (!rx_deliver(n, f->data, f->len))
			return;
		free(f);
		n->pending_head = (n->pending_head + 1) % RX_PENDING_MAX;
		n->pending_count--;
	}
}

/* The backend's frame (struct net_port), on the I/O thread. */
static void rx_receive(void *opaque, const void *frame, size_t len)
{
	struct virtio_net *n = opaque;
	struct virtio_dev *d = n->dev;
	struct rx_frame *f;

	if (!atomic_load(&d->running) || !atomic_load(&d->q[RXQ].ready)) {
		count_add(&n->count.rx_dropped, 1);
		return;
	}
	/* Behind frames already waiting, to keep the order. */
	if (!n->pending_count && rx_deliver(n, frame, len))
		return;
	f = n->pending_count < RX_PENDING_MAX ? malloc(sizeof(*f) + len) : NULL;
	if (!f) {
		count_add(&n->count.rx_dropped, 1);
		return;
	}
	f->len = len;
	memcpy(f->data, frame, len);
	n->pending[(n->pending_head + n->pending_count) % RX_PENDING_MAX] = f;
	n->pending_count++;
}

/* The backend has room again (struct net_port): the chains that waited,
 * on the I/O thread. */
static void tx_writable(void *opaque)
{
	struct virtio_net *n = opaque;

	virtio_queue_serve(n->dev, TXQ, tx_handle);
}

static void backend_log(void *opaque, const char *msg)
{
	struct virtio_net *n = opaque;

	virtio_log(n->dev, "%s: %s", n->backend->ops->name, msg);
}

/* --- the I/O thread --- */

static void queue_notify(struct virtio_dev *d, unsigned q)
{
	struct virtio_net *n = d->priv;

	if (q == TXQ)
		virtio_queue_serve(d, TXQ, tx_handle);
	else
		rx_flush(n);
	/* Frames the backend answered with at once (slirp's ARP replies). */
	virtio_queue_notify_used(d, RXQ);
}

static unsigned source_prepare(void *opaque, struct pollfd *p, unsigned max, int *timeout_ms)
{
	struct virtio_net *n = opaque;

	return n->backend->ops->poll_fill(n->backend, p, max, timeout_ms);
}

static void source_dispatch(void *opaque, struct pollfd *p, unsigned nr)
{
	struct virtio_net *n = opaque;

	n->backend->ops->poll_handle(n->backend, p, nr);
	virtio_queue_notify_used(n->dev, RXQ);
}

static int net_io_setup(struct virtio_dev *d, struct iothread *io)
{
	struct virtio_net *n = d->priv;
	struct iothread_source src = {
		.prepare = source_prepare, .dispatch = source_dispatch, .opaque = n,
	};

	n->dev = d;
	return n->backend->ops->poll_fill ? iothread_add_source(io, &src) : 0;
}

/* --- configuration, reset, saved state --- */

static void net_config_read(struct virtio_dev *d, unsigned off, void *data, unsigned len)
{
	struct virtio_net *n = d->priv;
	uint8_t cfg[NET_CONFIG_SIZE];

	memcpy(cfg, n->mac, 6);
	cfg[6] = (uint8_t)n->status;
	cfg[7] = (uint8_t)(n->status >> 8);
	cfg[8] = 1;	/* max_virtqueue_pairs (without VIRTIO_NET_F_MQ: one pair) */
	cfg[9] = 0;
	memcpy(data, cfg + off, len);
}

static void net_reset(struct virtio_dev *d)
{
	pending_drop_all(d->priv);
}

/* Nothing in flight: a chain is handled whole on the I/O thread.  Frames
 * waiting for receive buffers are not part of the saved state (a network
 * may lose frames; a reset or a load drops them). */
static int net_quiesce(struct virtio_dev *d)
{
	return 0;
}

static void net_resume(struct virtio_dev *d)
{
}

static int net_save(struct virtio_dev *d, struct dev_state *s)
{
	struct virtio_net *n = d->priv;

	state_put_section(s, "VNET", 1);
	state_put_bytes(s, n->mac, 6);
	state_put_u16(s, n->status);
	return 0;
}

static int net_load(struct virtio_dev *d, struct dev_state *s)
{
	struct virtio_net *n = d->priv;
	uint8_t mac[6];
	uint16_t status;

	if (!state_get_section(s, "VNET", 1))
		return s->err;
	state_get_bytes(s, mac, 6);
	status = state_get_u16(s);
	if (s->err)
		return s->err;
	if ((mac[0] & 1) || (status & ~VIRTIO_NET_S_LINK_UP))
		return -EINVAL;
	memcpy(n->mac, mac, 6);
	n->status = status;
	return 0;
}

/* For `stats` (docs/control.md), after the transport's: the same
 * counters as --stats prints. */
static void net_counters(struct virtio_dev *d,
			 void (*put)(void *ctx, const char *name, uint64_t v), void *ctx)
{
	struct net_counters *c = &((struct virtio_net *)d->priv)->count;

	put(ctx, "rx_packets", atomic_load_explicit(&c->rx_packets, memory_order_relaxed));
	put(ctx, "rx_bytes", atomic_load_explicit(&c->rx_bytes, memory_order_relaxed));
	put(ctx, "rx_dropped", atomic_load_explicit(&c->rx_dropped, memory_order_relaxed));
	put(ctx, "rx_errors", atomic_load_explicit(&c->rx_errors, memory_order_relaxed));
	put(ctx, "tx_packets", atomic_load_explicit(&c->tx_packets, memory_order_relaxed));
	put(ctx, "tx_bytes", atomic_load_explicit(&c->tx_bytes, memory_order_relaxed));
	put(ctx, "tx_dropped", atomic_load_explicit(&c->tx_dropped, memory_order_relaxed));
	put(ctx, "tx_errors", atomic_load_explicit(&c->tx_errors, memory_order_relaxed));
}

static const struct virtio_dev_ops net_ops = {
	.name = "virtio-net",
	.device_id = VIRTIO_ID_NET,
	.pci_class = PCI_CLASS_ETHERNET,
	.features = 1ull << VIRTIO_NET_F_MAC | 1ull << VIRTIO_NET_F_STATUS,
	.nr_queues = 2,
	.queue_max = NET_QUEUE_SIZE,
	.config_size = NET_CONFIG_SIZE,
	.config_read = net_config_read,
	.queue_notify = queue_notify,
	.io_setup = net_io_setup,
	.reset = net_reset,
	.quiesce = net_quiesce,
	.resume = net_resume,
	.save = net_save,
	.load = net_load,
	.counters = net_counters,
};

int virtio_net_create(struct pci_bus *bus, const struct net_spec *spec, unsigned index,
		      struct virtio_net **out, char *err, size_t errlen)
{
	struct virtio_net *n = calloc(1, sizeof(*n));
	struct net_port port = { .receive = rx_receive, .log = backend_log,
				 .writable = tx_writable };
	int r;

	if (n)
		n->rx_elem = malloc(sizeof(*n->rx_elem));
	if (!n || !n->rx_elem) {
		free(n);
		snprintf(err, errlen, "net%u: out of memory", index);
		return -ENOMEM;
	}
	net_spec_mac(spec, index, n->mac);
	n->status = VIRTIO_NET_S_LINK_UP;
	port.opaque = n;
	r = net_backend_open(spec, index, &port, &n->backend, err, errlen);
	if (r >= 0) {
		r = virtio_pci_create(bus, &net_ops, n, &n->dev);
		if (r < 0)
			snprintf(err, errlen, "net%u: its PCI function: %s", index, strerror(-r));
	}
	if (r < 0) {
		net_backend_destroy(n->backend);
		free(n->rx_elem);
		free(n);
		return r;
	}
	*out = n;
	return 0;
}

void virtio_net_destroy(struct virtio_net *n)
{
	if (!n)
		return;
	/* The device's thread first: nothing calls the backend after it. */
	virtio_pci_destroy(n->dev);
	net_backend_destroy(n->backend);
	pending_drop_all(n);
	free(n->rx_elem);
	free(n);
}

struct net_backend *virtio_net_backend(struct virtio_net *n)
{
	return n->backend;
}

void virtio_net_print_stats(struct virtio_net *n, FILE *f)
{
	struct net_counters *c = &n->count;

	virtio_print_stats(n->dev, f);
	fprintf(f, "vsrv: %s: rx %llu packets, %llu bytes, %llu dropped, %llu errors; "
		"tx %llu packets, %llu bytes, %llu dropped, %llu errors\n", n->dev->pci.name,
		(unsigned long long)atomic_load(&c->rx_packets),
		(unsigned long long)atomic_load(&c->rx_bytes),
		(unsigned long long)atomic_load(&c->rx_dropped),
		(unsigned long long)atomic_load(&c->rx_errors),
		(unsigned long long)atomic_load(&c->tx_packets),
		(unsigned long long)atomic_load(&c->tx_bytes),
		(unsigned long long)atomic_load(&c->tx_dropped),
		(unsigned long long)atomic_load(&c->tx_errors));
}
