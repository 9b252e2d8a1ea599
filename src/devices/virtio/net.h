/* SPDX-License-Identifier: GPL-2.0-or-later */
/* virtio-net (net.c): vsrv run --net, "nics". */
#ifndef VSRV_VIRTIO_NET_H
#define VSRV_VIRTIO_NET_H

#include <stdio.h>
#include <sys/uio.h>

#include "../../net/net.h"
#include "../pci.h"
#include "queue.h"

#define VIRTIO_NET_HDR_LEN	12	/* struct virtio_net_hdr_v1: VERSION_1's, always */

struct virtio_net;

/* A NIC on the bus as spec describes it, its backend opened; index
 * names it (net0, ...) and picks its default MAC.  err: one line. */
int virtio_net_create(struct pci_bus *bus, const struct net_spec *spec, unsigned index,
		      struct virtio_net **out, char *err, size_t errlen);
void virtio_net_destroy(struct virtio_net *n);
/* Two lines: the transport's counters, then the NIC's. */
void virtio_net_print_stats(struct virtio_net *n, FILE *f);

/* For the fuzzer: the backend, whose port is where frames arrive. */
struct net_backend *virtio_net_backend(struct virtio_net *n);

/* The parsing the guest's chains go through, for the fuzzer too. */
enum virtio_net_refusal {
	NET_OK = 0,
	NET_TX_WRITABLE,	/* a transmit chain with device-writable buffers */
	NET_TX_NO_HEADER,	/* shorter than the header */
	NET_TX_OFFLOAD,		/* the header asks for offloads not negotiated */
	NET_TX_SIZE,		/* a frame shorter than 14 or longer than 64 KiB */
	NET_RX_READABLE,	/* a receive chain with device-readable buffers */
	NET_RX_NO_HEADER,	/* a receive chain too small for the header */
	NET_RX_TOO_SMALL,	/* too small for this frame and the header */
};
/* A transmit chain: the frame after the header, as up to
 * VIRTQ_ELEM_MAX pieces in iov, and its length; or why it is refused. */
enum virtio_net_refusal virtio_net_tx_frame(const struct virtq_elem *e, struct iovec *iov,
					    unsigned *nr, size_t *len);
/* A receive chain: the header (num_buffers 1) and the frame written,
 * *written their length; or why not (nothing written). */
enum virtio_net_refusal virtio_net_rx_fill(const struct virtq_elem *e, const void *frame,
					   size_t len, uint32_t *written);

#endif
