// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Split virtqueues from the device's side (queue.h).
 *
 * Layout (little-endian, in guest memory):
 *   descriptor table  16 bytes each: addr, len, flags, next
 *   available ring    flags, idx, ring[size], used_event
 *   used ring         flags, idx, {id, len}[size], avail_event
 *
 * What a chain may be: zero or more descriptors linked by NEXT, every
 * device-readable one before every device-writable one, optionally ending
 * in one INDIRECT descriptor (not also NEXT) whose table, a multiple of 16
 * bytes in guest memory, holds a chain of its own linked from entry 0 and
 * no further INDIRECT.  A chain longer than its table (the queue's size,
 * or the indirect table's entries) must loop, and one longer than
 * VIRTQ_ELEM_MAX in all is refused too; so is one of more than 4 GiB,
 * which the spec forbids drivers.
 *
 * Memory order: the driver writes a chain, then the available idx; the
 * device reads the idx, then (acquire) the chain.  The device writes the
 * used entry, then (release) the used idx; a full fence separates
 * publishing an index from reading the other side's event index or flag,
 * so that neither side sleeps on a notification the other skipped.
 */
#include <endian.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <linux/virtio_ring.h>

#include "queue.h"

#define CHAIN_BYTES_MAX	(1ull << 32)

static uint16_t load16(const uint8_t *p)
{
	return le16toh(__atomic_load_n((const uint16_t *)p, __ATOMIC_RELAXED));
}

static void store16(uint8_t *p, uint16_t v)
{
	__atomic_store_n((uint16_t *)p, htole16(v), __ATOMIC_RELAXED);
}

static void store32(uint8_t *p, uint32_t v)
{
	__atomic_store_n((uint32_t *)p, htole32(v), __ATOMIC_RELAXED);
}

static int bad(struct virtq *q, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int bad(struct virtq *q, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(q->error, sizeof(q->error), fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* One part of the queue in guest memory, checked. */
static uint8_t *part(struct virtq *q, const char *what, uint64_t gpa, uint64_t len,
		     unsigned align, int *r)
{
	uint8_t *p;

	if (gpa % align) {
		*r = bad(q, "the %s at 0x%llx is not %u-byte aligned", what,
			 (unsigned long long)gpa, align);
		return NULL;
	}
	p = vm_gpa(q->vm, gpa, len);
	if (!p)
		*r = bad(q, "the %s (%llu bytes at 0x%llx) is outside guest memory", what,
			 (unsigned long long)len, (unsigned long long)gpa);
	return p;
}

int virtq_setup(struct virtq *q, struct vm *vm, uint16_t size, uint64_t desc,
		uint64_t avail, uint64_t used, bool event_idx, bool indirect)
{
	int r = 0;

	memset(q, 0, sizeof(*q));
	q->vm = vm;
	if (!size || (size & (size - 1)) || size > VIRTQ_MAX_SIZE)
		return bad(q, "size %u is not a power of 2 up to %u", size, VIRTQ_MAX_SIZE);
	q->desc = part(q, "descriptor table", desc, 16ull * size, 16, &r);
	if (q->desc)
		q->avail = part(q, "available ring", avail, 6 + 2ull * size, 2, &r);
	if (q->avail)
		q->used = part(q, "used ring", used, 6 + 8ull * size, 4, &r);
	if (r < 0)
		return r;
	q->size = size;
	q->event_idx = event_idx;
	q->indirect = indirect;
	return 0;
}

struct desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags, next;
};

/* Reads descriptor i of a table once: what the checks see is what is used. */
static void read_desc(const uint8_t *table, unsigned i, struct desc *d)
{
	struct vring_desc raw;

	memcpy(&raw, table + 16 * (size_t)i, sizeof(raw));
	d->addr = le64toh(raw.addr);
	d->len = le32toh(raw.len);
	d->flags = le16toh(raw.flags);
	d->next = le16toh(raw.next);
}

/* A buffer of the chain (not an indirect one). */
static int add_buffer(struct virtq *q, struct virtq_elem *e, const struct desc *d,
		      unsigned i, bool in_table)
{
	const char *where = in_table ? "indirect descriptor" : "descriptor";
	bool writable = d->flags & VRING_DESC_F_WRITE;
	void *p;

	if (!writable && e->nr_in)
		return bad(q, "chain at head %u: %s %u is device-readable after a device-writable one",
			   e->head, where, i);
	if (e->out_len + e->in_len + d->len > CHAIN_BYTES_MAX)
		return bad(q, "chain at head %u is longer than 4 GiB", e->head);
	if (!d->len)
		return 0;
	p = vm_gpa(q->vm, d->addr, d->len);
	if (!p)
		return bad(q, "chain at head %u: %s %u (%u bytes at 0x%llx) is outside guest memory",
			   e->head, where, i, d->len, (unsigned long long)d->addr);
	e->iov[e->nr_out + e->nr_in] = (struct virtq_iov){ p, d->len };
	if (writable) {
		e->nr_in++;
		e->in_len += d->len;
	} else {
		e->nr_out++;
		e->out_len += d->len;
	}
	return 0;
}

/* The indirect descriptor d (number i) turns into its table. */
static int enter_table(struct virtq *q, struct virtq_elem *e, const struct desc *d,
		       unsigned i, const uint8_t **table, unsigned *n)
{
	if (!q->indirect)
		return bad(q, "chain at head %u: descriptor %u is indirect, but VIRTIO_F_INDIRECT_DESC was not negotiated",
			   e->head, i);
	if (d->flags & VRING_DESC_F_NEXT)
		return bad(q, "chain at head %u: descriptor %u is both indirect and chained",
			   e->head, i);
	if (!d->len || d->len % 16 || d->len / 16 > VIRTQ_ELEM_MAX)
		return bad(q, "chain at head %u: descriptor %u: an indirect table of %u bytes (a multiple of 16 up to %u expected)",
			   e->head, i, d->len, 16 * VIRTQ_ELEM_MAX);
	*table = vm_gpa(q->vm, d->addr, d->len);
	if (!*table)
		return bad(q, "chain at head %u: descriptor %u: the indirect table (%u bytes at 0x%llx) is outside guest memory",
			   e->head, i, d->len, (unsigned long long)d->addr);
	*n = d->len / 16;
	return 0;
}

int virtq_pop(struct virtq *q, struct virtq_elem *e)
{
	const uint8_t *table = q->desc;
	unsigned n = q->size, seen = 0, total = 0, i;
	uint16_t avail_idx = load16(q->avail + 2);
	bool in_table = false;
	struct desc d;
	int r;

	if (avail_idx == q->last_avail)
		return 0;
	if ((uint16_t)(avail_idx - q->last_avail) > q->size)
		return bad(q, "the available index moved from %u to %u, more than the queue's size (%u) ahead",
			   q->last_avail, avail_idx, q->size);
	/* The index first, then the entries it makes available. */
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	i = load16(q->avail + 4 + 2 * (q->last_avail % q->size));
	e->head = (uint16_t)i;
	e->nr_out = e->nr_in = 0;
	e->out_len = e->in_len = 0;
	if (i >= q->size)
		return bad(q, "available entry %u names descriptor %u, past the queue's size (%u)",
			   q->last_avail, i, q->size);
	for (;;) {
		if (++total > VIRTQ_ELEM_MAX)
			return bad(q, "chain at head %u has more than %u descriptors",
				   e->head, VIRTQ_ELEM_MAX);
		if (++seen > n)
			return bad(q, "chain at head %u is longer than its %s of %u descriptors (a loop?)",
				   e->head, in_table ? "indirect table" : "queue", n);
		read_desc(table, i, &d);
		if (d.flags & VRING_DESC_F_INDIRECT) {
			if (in_table)
				return bad(q, "chain at head %u: indirect descriptor %u is indirect again",
					   e->head, i);
			r = enter_table(q, e, &d, i, &table, &n);
			if (r < 0)
				return r;
			in_table = true;
			seen = 0;
			i = 0;
			continue;
		}
		r = add_buffer(q, e, &d, i, in_table);
		if (r < 0)
			return r;
		if (!(d.flags & VRING_DESC_F_NEXT))
			break;
		if (d.next >= n)
			return bad(q, "chain at head %u: %s %u links to %u, past its %s of %u",
				   e->head, in_table ? "indirect descriptor" : "descriptor", i, d.next,
				   in_table ? "indirect table" : "queue", n);
		i = d.next;
	}
	q->last_avail++;
	return 1;
}

void virtq_push(struct virtq *q, uint16_t head, uint32_t len)
{
	uint8_t *elem = q->used + 4 + 8 * (size_t)(q->used_idx % q->size);

	store32(elem, head);
	store32(elem + 4, len);
	/* The entry before the index that shows it. */
	__atomic_thread_fence(__ATOMIC_RELEASE);
	q->used_idx++;
	store16(q->used + 2, q->used_idx);
}

void virtq_unpop(struct virtq *q)
{
	q->last_avail--;
}

bool virtq_should_notify(struct virtq *q)
{
	uint16_t old = q->signalled_used, event;
	bool valid = q->signalled_valid;

	/* Our used idx out before we read what the driver wants. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (!q->event_idx)
		return !(load16(q->avail) & VRING_AVAIL_F_NO_INTERRUPT);
	event = load16(q->avail + 4 + 2 * (size_t)q->size);
	q->signalled_used = q->used_idx;
	q->signalled_valid = true;
	return !valid || vring_need_event(event, q->used_idx, old);
}

void virtq_disable_notify(struct virtq *q)
{
	/* With event indices, avail_event already says "not until then". */
	if (!q->event_idx)
		store16(q->used, VRING_USED_F_NO_NOTIFY);
}

bool virtq_enable_notify(struct virtq *q)
{
	if (q->event_idx)
		store16(q->used + 4 + 8 * (size_t)q->size, q->last_avail);
	else
		store16(q->used, 0);
	/* Published before we look again: a driver that added a buffer
	 * before seeing it is seen here. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return load16(q->avail + 2) != q->last_avail;
}

static size_t copy_iov(const struct virtq_iov *iov, unsigned nr, size_t off, void *buf,
		       size_t len, bool to_guest)
{
	uint8_t *b = buf;
	size_t done = 0;

	for (unsigned k = 0; k < nr && done < len; k++) {
		size_t n;

		if (off >= iov[k].len) {
			off -= iov[k].len;
			continue;
		}
		n = iov[k].len - off;
		if (n > len - done)
			n = len - done;
		if (to_guest)
			memcpy((uint8_t *)iov[k].base + off, b + done, n);
		else
			memcpy(b + done, (uint8_t *)iov[k].base + off, n);
		done += n;
		off = 0;
	}
	return done;
}

size_t virtq_elem_write(const struct virtq_elem *e, size_t off, const void *buf, size_t len)
{
	return copy_iov(e->iov + e->nr_out, e->nr_in, off, (void *)buf, len, true);
}

size_t virtq_elem_read(const struct virtq_elem *e, size_t off, void *buf, size_t len)
{
	return copy_iov(e->iov, e->nr_out, off, buf, len, false);
}
