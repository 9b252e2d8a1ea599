// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * libFuzzer target for the virtio device side: what a hostile guest
 * controls, driven directly, with no KVM.  Byte 0 picks one of two modes.
 *
 * Queue mode (bit 7 clear): the rest of the input is guest memory (16
 * KiB at guest-physical 0) holding a split queue whose descriptor table,
 * available and used rings are at 0x0000, 0x2000 and 0x3000; byte 0's
 * bits say its size (1 << bits 2-4), VIRTIO_F_EVENT_IDX (bit 0) and
 * VIRTIO_F_INDIRECT_DESC (bit 1).  The target pops chains until none is
 * left or one is refused, serves each as virtio-rng does, gives it back
 * and asks whether to notify, checking the invariants below.
 *
 * Transport mode (bit 7 set): a PCI bus with a virtio-rng device (bit 6
 * clear) or a virtio-console (bit 6 set: two named ports and port 0, with
 * nothing behind them; its control queues are the guest's to fill) on a
 * VM that has no KVM behind it (its doorbells handled inline, MSI-X sent
 * nowhere), then guest memory (bytes 1-2: its length, then the bytes),
 * then 8-byte records, each one access as a vCPU would make it:
 * configuration space through 0xcf8/0xcfc or MMCONFIG, the virtio BAR,
 * the MSI-X BAR, the address ports, or a write to guest memory (to change
 * rings between doorbells).  Whatever the order and the values, the VMM
 * must neither crash nor hang.
 *
 * A broken invariant calls bug(), which says which and aborts.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "../../src/devices/pci.h"
#include "../../src/devices/virtio/console.h"
#include "../../src/devices/virtio/queue.h"
#include "../../src/devices/virtio/rng.h"
#define FUZZ_NAME "fuzz-virtq"
#include "fuzz-vm.h"

#define MEMSZ		(16u << 10)
#define DESC_GPA	0x0000u
#define AVAIL_GPA	0x2000u
#define USED_GPA	0x3000u
#define MAX_POPS	256
#define MAX_RECORDS	4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t mem[MEMSZ] __attribute__((aligned(4096)));

/* Random bytes that are not: the same for the same input. */
static ssize_t fill(void *buf, size_t len, unsigned flags)
{
	memset(buf, 0xa5, len);
	return (ssize_t)len;
}

static void check_elem(const struct virtq *q, const struct virtq_elem *e)
{
	uint64_t out = 0, in = 0;

	if (e->head >= q->size)
		bug("head %u past the queue's size %u", e->head, q->size);
	if (e->nr_out + e->nr_in > VIRTQ_ELEM_MAX)
		bug("%u buffers in a chain", e->nr_out + e->nr_in);
	for (unsigned i = 0; i < e->nr_out + e->nr_in; i++) {
		const uint8_t *b = e->iov[i].base;

		if (!e->iov[i].len || b < mem || b + e->iov[i].len > mem + MEMSZ)
			bug("buffer %u (%u bytes at %p) outside guest memory", i, e->iov[i].len,
			    e->iov[i].base);
		*(i < e->nr_out ? &out : &in) += e->iov[i].len;
	}
	if (out != e->out_len || in != e->in_len)
		bug("lengths %llu/%llu, buffers add up to %llu/%llu",
		    (unsigned long long)e->out_len, (unsigned long long)e->in_len,
		    (unsigned long long)out, (unsigned long long)in);
}

static void queue_mode(const uint8_t *data, size_t size)
{
	static struct virtq_elem e;
	struct virtq q;
	struct vm vm;
	uint16_t qsize = (uint16_t)(1u << (data[0] >> 2 & 7));
	uint8_t scratch[256];
	int r = 0;

	fake_vm(&vm, mem, MEMSZ);
	memset(mem, 0, sizeof(mem));
	memcpy(mem, data + 1, size - 1 < MEMSZ ? size - 1 : MEMSZ);
	if (virtq_setup(&q, &vm, qsize, DESC_GPA, AVAIL_GPA, USED_GPA, data[0] & 1,
			data[0] & 2) < 0)
		bug("rings in memory refused: %s", q.error);
	for (unsigned n = 0; n < MAX_POPS; n++) {
		uint32_t written;
		uint16_t used = q.used_idx;

		virtq_disable_notify(&q);
		r = virtq_pop(&q, &e);
		if (r <= 0)
			break;
		check_elem(&q, &e);
		virtq_elem_read(&e, 0, scratch, sizeof(scratch));
		if (virtio_rng_request(&e, &written, fill) < 0) {
			if (!e.nr_out)
				bug("a request without readable buffers refused");
			written = 0;
		}
		if (written > e.in_len)
			bug("%u bytes written into %llu", written, (unsigned long long)e.in_len);
		virtq_push(&q, e.head, written);
		if ((uint16_t)(q.used_idx - used) != 1)
			bug("used index moved by %u", (uint16_t)(q.used_idx - used));
		virtq_should_notify(&q);
		virtq_enable_notify(&q);
	}
	if (r < 0 && !q.error[0])
		bug("a refused chain without a reason");
}

/* One access as a vCPU makes it; kind in rec[0], width and direction in
 * rec[1], an offset in rec[2-3], a value in rec[4-7]. */
static void one_access(struct vm *vm, const uint8_t *rec)
{
	unsigned width = 1u << (rec[1] & 3), off = rec[2] | rec[3] << 8;
	bool write = rec[1] & 4;
	uint8_t v[8];

	memcpy(v, rec + 4, 4);
	memcpy(v + 4, rec + 4, 4);
	switch (rec[0] % 6) {
	case 0:	{	/* type 1: select, then the data port */
		uint32_t ca = 0x80000000u | (off & 0x1f00) << 3 | (off & 0xfc);

		io_bus_access(&vm->pio, 0xcf8, &ca, 4, true);
		io_bus_access(&vm->pio, 0xcfc + (off & 3), v, width > 4 ? 4 : width, write);
		break;
	}
	case 1:		/* MMCONFIG */
		io_bus_access(&vm->mmio, VM_PCI_MMCONFIG_BASE + ((off & 0x1f00) << 7) + (off & 0xff),
			      v, width, write);
		break;
	case 2:		/* the virtio BAR where vsrv puts it */
		io_bus_access(&vm->mmio, VM_PCI_MMIO_START + 0x4000 + (off & 0x3fff), v, width, write);
		break;
	case 3:		/* the MSI-X BAR */
		io_bus_access(&vm->mmio, VM_PCI_MMIO_START + (off & 0xfff), v, width, write);
		break;
	case 4:		/* guest memory: rings change under the device */
		memcpy(mem + (off % (MEMSZ - 3)), v, 4);
		break;
	default:	/* the address register's ports, any width */
		io_bus_access(&vm->pio, 0xcf8 + (off & 7), v, width > 4 ? 4 : width, write);
	}
}

static void transport_mode(const uint8_t *data, size_t size)
{
	static const struct vcon_port_cfg ports[] = {
		{ .name = "org.vsrv.agent", .listen_fd = -1 }, { .name = "b", .listen_fd = -1 },
	};
	struct virtio_console *vcon = NULL;
	struct virtio_rng *rng = NULL;
	struct pci_bus *bus = NULL;
	size_t memlen, pos;
	struct vm vm;
	int r;

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
	r = pci_bus_create(&vm, &bus);
	if (r >= 0)
		r = data[0] & 0x40 ? virtio_console_create(bus, NULL, ports, 2, &vcon) :
				     virtio_rng_create(bus, &rng);
	if (r < 0)
		bug("no device");
	pos = 3 + memlen;
	for (unsigned n = 0; n < MAX_RECORDS && pos + 8 <= size; n++, pos += 8)
		one_access(&vm, data + pos);
	virtio_rng_destroy(rng);
	virtio_console_destroy(vcon);
	pci_bus_destroy(bus);
	fake_vm_release(&vm);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!size)
		return 0;
	if (data[0] & 0x80)
		transport_mode(data, size);
	else
		queue_mode(data, size);
	return 0;
}
