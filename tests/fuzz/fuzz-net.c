// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * libFuzzer target for virtio-net (src/devices/virtio/net.c): what a
 * hostile guest and a network control, driven directly, with no KVM and
 * the null backend.  Byte 0 picks one of two modes.
 *
 * Chain mode (bit 7 clear): the rest of the input is guest memory (64 KiB
 * at guest-physical 0) holding a split queue at 0x0000 (descriptors),
 * 0x2000 (available) and 0x3000 (used); byte 0's bits say its size (1 <<
 * bits 2-4), VIRTIO_F_EVENT_IDX (bit 0) and VIRTIO_F_INDIRECT_DESC (bit 1).
 * Each chain popped is parsed as a transmit chain and filled as a receive
 * chain, and what each says is checked against the chain: the refusal
 * that fits it, or a frame whose pieces lie in the chain and add up.
 *
 * Device mode (bit 7 set): a PCI bus with a virtio-net device on the null
 * backend, set up as a driver does (byte 0's bits 0 and 1: event indices,
 * indirect descriptors) with its receive queue's rings at 0x0000, 0x1000,
 * 0x2000 and its transmit queue's at 0x3000, 0x4000, 0x5000 (16 entries);
 * then guest memory (bytes 1-2: its length, then the bytes), then 4-byte
 * records, each an event: a doorbell, a frame arriving from the network
 * (its length and where in guest memory its bytes come from), a byte of
 * guest memory changed, a checkpoint (every device saved and loaded), a
 * reset and a new set-up.  Whatever comes, the VMM must neither crash nor
 * hang nor leak.
 *
 * A broken invariant calls bug(), which says which and aborts.
 */
#include <endian.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/devices/pci.h"
#include "../../src/devices/state.h"
#include "../../src/devices/virtio/net.h"
#define FUZZ_NAME "fuzz-net"
#include "fuzz-vm.h"

#define MEMSZ		(64u << 10)
#define MAX_POPS	256
#define MAX_RECORDS	4096
#define BAR4		(VM_PCI_MMIO_START + 0x4000)	/* after BAR 1's MSI-X table */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t mem[MEMSZ] __attribute__((aligned(4096)));
static uint8_t frame[NET_FRAME_MAX];

static bool in_mem(const void *p, size_t len)
{
	const uint8_t *b = p;

	return b >= mem && len <= MEMSZ && b + len <= mem + MEMSZ;
}

/* --- chain mode --- */

static void check_tx(const struct virtq_elem *e)
{
	static struct iovec iov[VIRTQ_ELEM_MAX];
	enum virtio_net_refusal r;
	size_t len, sum = 0;
	unsigned nr;

	r = virtio_net_tx_frame(e, iov, &nr, &len);
	if (e->nr_in) {
		if (r != NET_TX_WRITABLE)
			bug("a transmit chain with writable buffers: %d", r);
		return;
	}
	if (e->out_len < VIRTIO_NET_HDR_LEN) {
		if (r != NET_TX_NO_HEADER)
			bug("a transmit chain of %llu bytes: %d", (unsigned long long)e->out_len, r);
		return;
	}
	if (r == NET_TX_OFFLOAD)
		return;
	if (r == NET_TX_SIZE) {
		uint64_t n = e->out_len - VIRTIO_NET_HDR_LEN;

		if (n >= NET_FRAME_MIN && n <= NET_FRAME_MAX)
			bug("a frame of %llu bytes refused for its size", (unsigned long long)n);
		return;
	}
	if (r != NET_OK)
		bug("transmit: %d", r);
	if (nr > e->nr_out)
		bug("%u pieces from %u buffers", nr, e->nr_out);
	for (unsigned i = 0; i < nr; i++) {
		if (!iov[i].iov_len || !in_mem(iov[i].iov_base, iov[i].iov_len))
			bug("piece %u (%zu bytes at %p) outside guest memory", i, iov[i].iov_len,
			    iov[i].iov_base);
		sum += iov[i].iov_len;
	}
	if (sum != len || len != e->out_len - VIRTIO_NET_HDR_LEN || len < NET_FRAME_MIN ||
	    len > NET_FRAME_MAX)
		bug("a frame of %zu bytes in pieces of %zu, from %llu", len, sum,
		    (unsigned long long)e->out_len);
}

/* Whether the chain's writable buffers overlap (then what one write put
 * there another may change). */
static bool overlapping(const struct virtq_elem *e)
{
	for (unsigned i = e->nr_out; i < e->nr_out + e->nr_in; i++)
		for (unsigned j = i + 1; j < e->nr_out + e->nr_in; j++) {
			const uint8_t *a = e->iov[i].base, *b = e->iov[j].base;

			if (a < b + e->iov[j].len && b < a + e->iov[i].len)
				return true;
		}
	return false;
}

static void check_rx(const struct virtq_elem *e, size_t flen)
{
	static uint8_t back[VIRTIO_NET_HDR_LEN + NET_FRAME_MAX];
	enum virtio_net_refusal r;
	uint32_t written = 1;
	size_t off = 0;

	r = virtio_net_rx_fill(e, frame, flen, &written);
	if (r != NET_OK) {
		if (written)
			bug("refused (%d) with %u bytes written", r, written);
		if ((r == NET_RX_READABLE) != (e->nr_out != 0) ||
		    (r == NET_RX_NO_HEADER && e->in_len >= VIRTIO_NET_HDR_LEN) ||
		    (r == NET_RX_TOO_SMALL && e->in_len >= VIRTIO_NET_HDR_LEN + flen))
			bug("receive refused (%d): %u readable, %llu writable bytes, a frame of %zu", r,
			    e->nr_out, (unsigned long long)e->in_len, flen);
		return;
	}
	if (e->nr_out || written != VIRTIO_NET_HDR_LEN + flen || written > e->in_len)
		bug("%u bytes written into %llu for a frame of %zu", written,
		    (unsigned long long)e->in_len, flen);
	if (e->nr_in > 16 || overlapping(e))
		return;
	for (unsigned i = e->nr_out; i < e->nr_out + e->nr_in && off < written; i++) {
		size_t n = e->iov[i].len < written - off ? e->iov[i].len : written - off;

		memcpy(back + off, e->iov[i].base, n);
		off += n;
	}
	if (back[10] != 1 || back[11] != 0 || memcmp(back + VIRTIO_NET_HDR_LEN, frame, flen))
		bug("the header or frame read back differs");
}

static void chain_mode(const uint8_t *data, size_t size)
{
	static struct virtq_elem e;
	struct virtq q;
	struct vm vm;
	uint16_t qsize = (uint16_t)(1u << (data[0] >> 2 & 7));
	int r = 0;

	fake_vm(&vm, mem, MEMSZ);
	memset(mem, 0, sizeof(mem));
	memcpy(mem, data + 1, size - 1 < MEMSZ ? size - 1 : MEMSZ);
	for (size_t i = 0; i < sizeof(frame); i++)
		frame[i] = (uint8_t)(i * 7 + 1);
	if (virtq_setup(&q, &vm, qsize, 0x0000, 0x2000, 0x3000, data[0] & 1, data[0] & 2) < 0)
		bug("rings in memory refused: %s", q.error);
	for (unsigned n = 0; n < MAX_POPS; n++) {
		r = virtq_pop(&q, &e);
		if (r <= 0)
			break;
		check_tx(&e);
		check_rx(&e, NET_FRAME_MIN + (n * 613u) % 1600u);
		virtq_push(&q, e.head, 0);
	}
	if (r < 0 && !q.error[0])
		bug("a refused chain without a reason");
}

/* --- device mode --- */

static void bar_write(struct vm *vm, unsigned off, uint64_t v, unsigned len)
{
	io_bus_access(&vm->mmio, BAR4 + off, &v, len, true);
}

/* The driver's set-up, the spec's order. */
static void driver_init(struct vm *vm, uint8_t flags)
{
	uint32_t f = 1u << 5 | 1u << 16;	/* VIRTIO_NET_F_MAC, _STATUS */

	if (flags & 1)
		f |= 1u << 29;			/* VIRTIO_RING_F_EVENT_IDX */
	if (flags & 2)
		f |= 1u << 28;			/* VIRTIO_RING_F_INDIRECT_DESC */
	bar_write(vm, 0x14, 0, 1);
	bar_write(vm, 0x14, 1, 1);
	bar_write(vm, 0x14, 3, 1);
	bar_write(vm, 0x08, 0, 4);
	bar_write(vm, 0x0c, f, 4);
	bar_write(vm, 0x08, 1, 4);
	bar_write(vm, 0x0c, 1, 4);		/* VIRTIO_F_VERSION_1 */
	bar_write(vm, 0x14, 0x0b, 1);
	for (unsigned q = 0; q < 2; q++) {
		bar_write(vm, 0x16, q, 2);
		bar_write(vm, 0x18, 16, 2);
		bar_write(vm, 0x20, 0x3000 * q, 8);
		bar_write(vm, 0x28, 0x3000 * q + 0x1000, 8);
		bar_write(vm, 0x30, 0x3000 * q + 0x2000, 8);
		bar_write(vm, 0x1c, 1, 2);
	}
	bar_write(vm, 0x14, 0x0f, 1);
}

static void event(struct vm *vm, struct virtio_net *n, const uint8_t *rec, uint8_t flags)
{
	struct net_backend *b = virtio_net_backend(n);
	unsigned v = rec[1] | rec[2] << 8;

	switch (rec[0] % 6) {
	case 0:		/* the transmit queue's doorbell, the receive queue's */
	case 1:
		bar_write(vm, 0x3000 + 4 * (rec[0] % 2 ? 0 : 1), 0, 2);
		break;
	case 2: {	/* a frame from the network, its bytes from guest memory */
		size_t len = NET_FRAME_MIN + v % (NET_FRAME_MAX - NET_FRAME_MIN + 1);
		size_t at = (size_t)rec[3] << 8;

		for (size_t i = 0; i < len; i++)
			frame[i] = mem[(at + i) % MEMSZ];
		b->port.receive(b->port.opaque, frame, len);
		break;
	}
	case 3:		/* rings and buffers change under the device */
		mem[v % MEMSZ] = rec[3];
		break;
	case 4:
		devices_checkpoint_cycle(vm);
		break;
	default:	/* a reset; and, mostly, the driver again */
		bar_write(vm, 0x14, 0, 1);
		if (rec[1] & 3)
			driver_init(vm, flags);
	}
}

static void device_mode(const uint8_t *data, size_t size)
{
	static const struct net_spec spec = { .type = NET_NULL };
	struct virtio_net *n = NULL;
	struct pci_bus *bus = NULL;
	size_t memlen, pos;
	char err[256];
	struct vm vm;

	if (size < 3)
		return;
	fake_vm(&vm, mem, MEMSZ);
	/* Doorbells inline (no ioeventfds); MSI-X present, sent nowhere. */
	vm.caps.signal_msi = true;
	memset(mem, 0, sizeof(mem));
	memlen = (size_t)(data[1] | data[2] << 8);
	if (memlen > size - 3)
		memlen = size - 3;
	memcpy(mem, data + 3, memlen < MEMSZ ? memlen : MEMSZ);
	if (pci_bus_create(&vm, &bus) < 0 || virtio_net_create(bus, &spec, 0, &n, err,
							       sizeof(err)) < 0)
		bug("no device");
	driver_init(&vm, data[0]);
	pos = 3 + memlen;
	for (unsigned i = 0; i < MAX_RECORDS && pos + 4 <= size; i++, pos += 4)
		event(&vm, n, data + pos, data[0]);
	virtio_net_destroy(n);
	pci_bus_destroy(bus);
	fake_vm_release(&vm);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!size)
		return 0;
	if (data[0] & 0x80)
		device_mode(data, size);
	else
		chain_mode(data, size);
	return 0;
}
