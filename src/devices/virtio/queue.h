/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Split virtqueues (virtio 1.x, "Split Virtqueues") from the device's
 * side: taking descriptor chains the driver made available, giving them
 * back used, and deciding when each side needs to be told.
 *
 * The driver is not trusted.  Every address it gives is checked against
 * guest memory, every index against its table, every chain against a
 * bound (loops), and each piece of guest memory the checks look at is read
 * once, so that a driver changing it meanwhile cannot get past them.  A
 * chain that breaks a rule is refused with one line in q->error; the queue
 * is then in no state to go on (the transport marks its device
 * NEEDS_RESET).
 *
 * A queue is used by one thread at a time (its device's).
 */
#ifndef VSRV_VIRTQ_H
#define VSRV_VIRTQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../../vmm/vm.h"

#define VIRTQ_MAX_SIZE	32768	/* the largest split queue the spec allows */
/* Descriptors in one chain, those of an indirect table included: the
 * device's "reasonable limit" (QEMU and Linux's vhost have the same). */
#define VIRTQ_ELEM_MAX	1024

struct virtq_iov {
	void *base;
	uint32_t len;
};

/* One chain, as buffers in guest memory: the device-readable ones (out)
 * first, then the device-writable ones (in); zero-length ones left out. */
struct virtq_elem {
	uint16_t head;
	unsigned nr_out, nr_in;
	uint64_t out_len, in_len;
	struct virtq_iov iov[VIRTQ_ELEM_MAX];
};

struct virtq {
	struct vm *vm;
	uint16_t size;
	bool event_idx;		/* VIRTIO_F_EVENT_IDX negotiated */
	bool indirect;		/* VIRTIO_F_INDIRECT_DESC negotiated */
	uint8_t *desc, *avail, *used;	/* the three parts, in host memory */
	uint16_t last_avail;	/* the next available entry to take */
	uint16_t used_idx;	/* the next used entry to fill */
	uint16_t signalled_used;	/* used_idx at the last interrupt */
	bool signalled_valid;
	char error[200];	/* why the last call failed */
};

/* The rings where the driver put them: size a power of two up to
 * VIRTQ_MAX_SIZE, each part aligned as the spec asks and wholly in guest
 * memory.  0, or -EINVAL with q->error.  The indices start at 0. */
int virtq_setup(struct virtq *q, struct vm *vm, uint16_t size, uint64_t desc,
		uint64_t avail, uint64_t used, bool event_idx, bool indirect);
/* 1 and the next chain in e; 0 when none is available; -EINVAL when the
 * driver broke a rule (q->error says which). */
int virtq_pop(struct virtq *q, struct virtq_elem *e);
/* Gives a chain back with `len` bytes written into its writable part. */
void virtq_push(struct virtq *q, uint16_t head, uint32_t len);
/* Puts the chain the last virtq_pop() took back in the ring, unused: a
 * device that cannot take it now (its host side is full, or has nothing
 * for a receive buffer) pops it again later, checked again.  Only the
 * last chain popped, and only before any push after it. */
void virtq_unpop(struct virtq *q);
/* After pushing: whether the driver wants an interrupt now (its flag, or
 * its used_event with VIRTIO_F_EVENT_IDX). */
bool virtq_should_notify(struct virtq *q);
/* Available-buffer notifications: off while the device drains the ring;
 * back on after, returning true when more arrived meanwhile (so the
 * device drains again rather than miss them). */
void virtq_disable_notify(struct virtq *q);
bool virtq_enable_notify(struct virtq *q);
/* Copies to the chain's writable buffers from byte `off` of them, or from
 * its readable ones; the bytes copied. */
size_t virtq_elem_write(const struct virtq_elem *e, size_t off, const void *buf, size_t len);
size_t virtq_elem_read(const struct virtq_elem *e, size_t off, void *buf, size_t len);

#endif
