// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * virtio-blk's requests (virtio 1.x, "Block Device", "Device Operation").
 * A chain is a 16-byte header the device reads (type, reserved, sector),
 * the data, and a status byte the device writes last:
 *
 *   IN (read)                header | data, device-writable  | status
 *   OUT (write)              header | data, device-readable  | status
 *   FLUSH                    header                          | status
 *   GET_ID                   header | 20 bytes, writable     | status
 *   DISCARD, WRITE_ZEROES    header | 16-byte segments, readable | status
 *
 * Buffer boundaries mean nothing (the header, the data and the status may
 * share buffers or be split across several): the device goes by bytes.
 * The status is the chain's last device-writable byte; a chain with none
 * cannot be answered and is given back with nothing written (refused).
 * Everything else a driver gets wrong is answered: VIRTIO_BLK_S_IOERR for
 * a request that breaks the spec's rules (a short header, data in the
 * wrong direction, a length not a multiple of 512 or above BLK_DATA_MAX,
 * a range past the end, computed so that no sector number overflows, a
 * write to a read-only disk), VIRTIO_BLK_S_UNSUPP for one the device does
 * not do (an unknown type, a feature not negotiated, a flag not defined),
 * each with one log line.  Every number the checks look at is read once
 * from guest memory (the header and segments copied), so a driver
 * changing them meanwhile cannot get past the checks.
 *
 * Reads and writes go straight between the chain's buffers and the disk
 * layer; a request completes when its last disk request does, from
 * disk_queue_reap() on the queue's I/O thread.  Where the driver did not
 * negotiate VIRTIO_BLK_F_FLUSH, the spec makes a completed write stable:
 * each write and write-zeroes is then followed by a flush before it is
 * answered (the disk layer's cache=unsafe makes that flush free).
 */
#include <endian.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <linux/virtio_blk.h>

#include "blk-req.h"

enum blk_kind { K_READ, K_WRITE, K_FLUSH, K_GET_ID, K_DISCARD, K_ZEROES };

static const char *const kind_names[] = {
	[K_READ] = "read", [K_WRITE] = "write", [K_FLUSH] = "flush",
	[K_GET_ID] = "get-id", [K_DISCARD] = "discard", [K_ZEROES] = "write-zeroes",
};

struct blk_req {
	struct blk_queue *bq;
	uint8_t *status;		/* in guest memory */
	uint64_t start_ns;
	uint64_t sector, bytes;		/* for the counters and log lines */
	unsigned nseg;			/* discard, write-zeroes */
	uint32_t used;			/* bytes written into the chain when OK */
	uint16_t head;
	enum blk_kind kind;
	bool flush_after;		/* write-through: the driver has no FLUSH */
	bool synced;			/* ... and the flush was made */
	unsigned pending;		/* disk requests not completed */
	int error;			/* the first, a negative errno */
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void count(atomic_uint_least64_t *c, uint64_t n)
{
	atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

/* Bucket b > 0 holds latencies from 2^(b-1) up to 2^b microseconds. */
static unsigned latency_bucket(uint64_t ns)
{
	uint64_t us = ns / 1000;
	unsigned b = us ? 64u - (unsigned)__builtin_clzll(us) : 0;

	return b < BLK_LATENCY_BUCKETS ? b : BLK_LATENCY_BUCKETS - 1;
}

/* The status, then the chain back; nothing once the device stopped. */
static void answer(struct blk_queue *bq, uint8_t *status, uint8_t s, uint16_t head,
		   uint32_t used, uint64_t start)
{
	count(&bq->disk->count->latency[latency_bucket(now_ns() - start)], 1);
	if (!bq->ops->live(bq))
		return;
	*status = s;
	bq->ops->give_back(bq, head, used);
}

static void log_line(struct blk_queue *bq, uint16_t head, const char *outcome,
		     const char *fmt, va_list ap)
{
	char msg[400];
	int n = snprintf(msg, sizeof(msg), "request at head %u: ", head);

	n += vsnprintf(msg + n, sizeof(msg) - (size_t)n, fmt, ap);
	if ((size_t)n < sizeof(msg))
		snprintf(msg + n, sizeof(msg) - (size_t)n, ": %s", outcome);
	bq->ops->log(bq, msg);
}

/* A request answered at once with IOERR or UNSUPP, and why. */
static int bad(struct blk_queue *bq, const struct virtq_elem *e, uint8_t *status, uint8_t s,
	       uint64_t start, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static int bad(struct blk_queue *bq, const struct virtq_elem *e, uint8_t *status, uint8_t s,
	       uint64_t start, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_line(bq, e->head, s == VIRTIO_BLK_S_UNSUPP ? "UNSUPP" : "IOERR", fmt, ap);
	va_end(ap);
	count(&bq->disk->count->errors, 1);
	answer(bq, status, s, e->head, 1, start);
	return 0;
}

static void req_log(struct blk_req *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void req_log(struct blk_req *r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_line(r->bq, r->head, "IOERR", fmt, ap);
	va_end(ap);
}

static void finish(struct blk_req *r)
{
	struct blk_queue *bq = r->bq;
	struct virtio_blk_counters *c = bq->disk->count;
	const char *name = kind_names[r->kind];

	if (r->error) {
		if (r->kind == K_READ || r->kind == K_WRITE)
			req_log(r, "a %s of %llu bytes at sector %llu failed: %s", name,
				(unsigned long long)r->bytes, (unsigned long long)r->sector,
				strerror(-r->error));
		else if (r->kind == K_FLUSH)
			req_log(r, "a flush failed: %s", strerror(-r->error));
		else
			req_log(r, "a %s of %u segments failed: %s", name, r->nseg,
				strerror(-r->error));
		count(&c->errors, 1);
	} else {
		switch (r->kind) {
		case K_READ:
			count(&c->reads, 1);
			count(&c->read_bytes, r->bytes);
			break;
		case K_WRITE:
			count(&c->writes, 1);
			count(&c->write_bytes, r->bytes);
			break;
		case K_FLUSH:
			count(&c->flushes, 1);
			break;
		case K_DISCARD:
			count(&c->discards, 1);
			count(&c->discard_bytes, r->bytes);
			break;
		case K_ZEROES:
			count(&c->write_zeroes, 1);
			count(&c->write_zeroes_bytes, r->bytes);
			break;
		case K_GET_ID:
			break;
		}
		if (r->synced)
			count(&c->flushes, 1);
	}
	bq->inflight--;
	answer(bq, r->status, r->error ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK, r->head,
	       r->error ? 1 : r->used, r->start_ns);
	free(r);
}

/* A disk request of r's was submitted (rc 0) or refused (rc < 0). */
static void sent(struct blk_req *r, int rc)
{
	if (rc < 0 && !r->error)
		r->error = rc;
	else if (rc >= 0)
		r->pending++;
}

static void disk_done(void *opaque, int status)
{
	struct blk_req *r = opaque;

	if (status < 0 && !r->error)
		r->error = status;
	if (--r->pending)
		return;
	if (r->flush_after && !r->error) {
		r->flush_after = false;
		sent(r, disk_submit_flush(r->bq->dq, disk_done, r));
		r->synced = r->pending;
		if (r->pending)
			return;
	}
	finish(r);
}

static struct blk_req *req_new(struct blk_queue *bq, const struct virtq_elem *e,
			       enum blk_kind kind, uint8_t *status, uint64_t start)
{
	struct blk_req *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->bq = bq;
	r->head = e->head;
	r->kind = kind;
	r->status = status;
	r->start_ns = start;
	r->used = 1;
	bq->inflight++;
	return r;
}

/* After the submissions: 1 in flight, or 0 answered already (every one
 * refused, or none needed). */
static int launched(struct blk_req *r)
{
	if (r->pending)
		return 1;
	finish(r);
	return 0;
}

static bool in_range(const struct blk_disk *disk, uint64_t sector, uint64_t n)
{
	return sector <= disk->sectors && n <= disk->sectors - sector;
}

/* The iovecs of [off, off + len) of the chain's readable (out) or
 * writable (in) bytes, into bq->iov; their number. */
static unsigned slice(struct blk_queue *bq, const struct virtq_elem *e, bool in, uint64_t off,
		      uint64_t len)
{
	const struct virtq_iov *v = e->iov + (in ? e->nr_out : 0);
	unsigned nr = in ? e->nr_in : e->nr_out, n = 0;

	for (unsigned i = 0; i < nr && len; i++) {
		uint64_t take;

		if (off >= v[i].len) {
			off -= v[i].len;
			continue;
		}
		take = v[i].len - off < len ? v[i].len - off : len;
		bq->iov[n++] = (struct iovec){ (uint8_t *)v[i].base + off, (size_t)take };
		len -= take;
		off = 0;
	}
	return n;
}

static int rw(struct blk_queue *bq, const struct virtq_elem *e, enum blk_kind kind,
	      uint64_t sector, uint8_t *status, uint64_t start)
{
	bool read = kind == K_READ;
	const char *name = kind_names[kind];
	uint64_t len = read ? e->in_len - 1 : e->out_len - BLK_HEADER_LEN;
	uint64_t stray = read ? e->out_len - BLK_HEADER_LEN : e->in_len - 1;
	struct blk_req *r;
	unsigned n;

	if (!read && bq->disk->readonly)
		return bad(bq, e, status, VIRTIO_BLK_S_IOERR, start, "a write to a read-only disk");
	if (stray)
		return bad(bq, e, status, VIRTIO_BLK_S_IOERR, start,
			   "a %s with %llu bytes of device-%s data", name,
			   (unsigned long long)stray, read ? "readable" : "writable");
	if (len % DISK_SECTOR_SIZE)
		return bad(bq, e, status, VIRTIO_BLK_S_IOERR, start,
			   "a %s of %llu bytes, not a multiple of 512", name,
			   (unsigned long long)len);
	if (len > BLK_DATA_MAX)
		return bad(bq, e, status, VIRTIO_BLK_S_IOERR, start,
			   "a %s of %llu bytes, more than %u", name, (unsigned long long)len,
			   BLK_DATA_MAX);
	if (!in_range(bq->disk, sector, len / DISK_SECTOR_SIZE))
		return bad(bq, e, status, VIRTIO_BLK_S_IOERR, start,
			   "a %s of %llu bytes at sector %llu, past the end (%llu sectors)",
			   name, (unsigned long long)len, (unsigned long long)sector,
			   (unsigned long long)bq->disk->sectors);
	n = slice(bq, e, read, read ? 0 : BLK_HEADER_LEN, len);
	r = req_new(bq, e, kind, status, start);
	if (!r)
		return bad(bq, e, status, VIRTIO_BLK_S_IOERR, start, "out of memory");
	r->sector = sector;
	r->bytes = len;
	r->used = read ? (uint32_t)len + 1 : 1;
	r->flush_after = !read && !(bq->features & 1ull << VIRTIO_BLK_F_FLUSH);
	if (read)
		sent(r, disk_submit_read(bq->dq, sector * DISK_SECTOR_SIZE, bq->iov, n,
					 disk_done, r));
	else
		sent(r, disk_submit_write(bq->dq, sector * DISK_SECTOR_SIZE, bq->iov, n,
					  disk_done, r));
	return launched(r);
}

static int flush(struct blk_queue *bq, const struct virtq_elem *e, uint8_t *status,
		 uint64_t start)
{
	/* Anything beside the header (which should be none) and its sector
	 * (which should be 0) changes nothing about a flush: ignored. */
	struct blk_req *r = req_new(bq, e, K_FLUSH, status, start);

	if (!r)
		return bad(bq, e, status, VIRTIO_BLK_S_IOERR, start, "out of memory");
	sent(r, disk_submit_flush(bq->dq, disk_done, r));
	return launched(r);
}

static int get_id(struct blk_queue *bq, const struct virtq_elem *e, uint8_t *status,
		  uint64_t start)
{
	uint64_t n = e->in_len - 1 < DISK_SERIAL_LEN ? e->in_len - 1 : DISK_SERIAL_LEN;

	if (e->out_len != BLK_HEADER_LEN)
		return bad(bq, e, status, VIRTIO_BLK_S_IOERR, start,
			   "a get-id with %llu bytes of device-readable data",
			   (unsigned long long)e->out_len - BLK_HEADER_LEN);
	if (bq->ops->live(bq))
		virtq_elem_write(e, 0, bq->disk->id, (size_t)n);
	answer(bq, status, VIRTIO_BLK_S_OK, e->head, (uint32_t)n + 1, start);
	return 0;
}

/* DISCARD and WRITE_ZEROES: segments of {le64 sector, le32 num_sectors,
 * le32 flags}, each checked before any is submitted. */
static int ranges(struct blk_queue *bq, const struct virtq_elem *e, enum blk_kind kind,
		  uint8_t *status, uint64_t start)
{
	struct virtio_blk_discard_write_zeroes seg[BLK_RANGE_SEG_MAX];
	bool discard = kind == K_DISCARD;
	unsigned bit = discard ? VIRTIO_BLK_F_DISCARD : VIRTIO_BLK_F_WRITE_ZEROES;
	uint64_t len = e->out_len - BLK_HEADER_LEN, bytes = 0;
	const char *name = kind_names[kind];
	unsigned nseg = (unsigned)(len / sizeof(seg[0]));
	struct blk_req *r;

	if (!(bq->features & 1ull << bit))
		return bad(bq, e, status, VIRTIO_BLK_S_UNSUPP, start,
			   "a %s, but VIRTIO_BLK_F_%s was not negotiated", name,
			   discard ? "DISCARD" : "WRITE_ZEROES");
	if (bq->disk->readonly)
		return bad(bq, e, status, VIRTIO_BLK_S_IOERR, start, "a %s on a read-only disk",
			   name);
	if (e->in_len != 1)
		return bad(bq, e, status, VIRTIO_BLK_S_IOERR, start,
			   "a %s with %llu bytes of device-writable data", name,
			   (unsigned long long)e->in_len - 1);
	if (!len || len % sizeof(seg[0]) || len > sizeof(seg))
		return bad(bq, e, status, VIRTIO_BLK_S_IOERR, start,
			   "a %s with %llu bytes of segments (16 each, 1 to %u of them)", name,
			   (unsigned long long)len, BLK_RANGE_SEG_MAX);
	virtq_elem_read(e, BLK_HEADER_LEN, seg, (size_t)len);
	for (unsigned i = 0; i < nseg; i++) {
		uint64_t sector = le64toh(seg[i].sector);
		uint32_t n = le32toh(seg[i].num_sectors), flags = le32toh(seg[i].flags);

		if (discard && flags)
			return bad(bq, e, status, VIRTIO_BLK_S_UNSUPP, start,
				   "discard segment %u has flags 0x%x (discard has none)", i, flags);
		if (flags & ~VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP)
			return bad(bq, e, status, VIRTIO_BLK_S_UNSUPP, start,
				   "write-zeroes segment %u has unknown flags 0x%x", i, flags);
		if (n > BLK_RANGE_SECTORS_MAX)
			return bad(bq, e, status, VIRTIO_BLK_S_IOERR, start,
				   "%s segment %u: %llu bytes, more than %llu", name, i,
				   (unsigned long long)n * DISK_SECTOR_SIZE,
				   (unsigned long long)BLK_RANGE_SECTORS_MAX * DISK_SECTOR_SIZE);
		if (!in_range(bq->disk, sector, n))
			return bad(bq, e, status, VIRTIO_BLK_S_IOERR, start,
				   "%s segment %u: %llu bytes at sector %llu, past the end (%llu sectors)",
				   name, i, (unsigned long long)n * DISK_SECTOR_SIZE,
				   (unsigned long long)sector, (unsigned long long)bq->disk->sectors);
		bytes += (uint64_t)n * DISK_SECTOR_SIZE;
	}
	r = req_new(bq, e, kind, status, start);
	if (!r)
		return bad(bq, e, status, VIRTIO_BLK_S_IOERR, start, "out of memory");
	r->bytes = bytes;
	r->nseg = nseg;
	r->flush_after = !discard && !(bq->features & 1ull << VIRTIO_BLK_F_FLUSH);
	for (unsigned i = 0; i < nseg && !r->error; i++) {
		uint64_t off = le64toh(seg[i].sector) * DISK_SECTOR_SIZE;
		uint64_t n = (uint64_t)le32toh(seg[i].num_sectors) * DISK_SECTOR_SIZE;

		if (discard)
			sent(r, disk_submit_discard(bq->dq, off, n, disk_done, r));
		else
			sent(r, disk_submit_write_zeroes(bq->dq, off, n,
							 le32toh(seg[i].flags) &
							 VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP,
							 disk_done, r));
	}
	return launched(r);
}

int blk_request(struct blk_queue *bq, const struct virtq_elem *e)
{
	uint64_t start = now_ns();
	struct virtio_blk_outhdr hdr;
	const struct virtq_iov *last;
	uint8_t *status;

	if (!e->nr_in) {
		char msg[120];

		snprintf(msg, sizeof(msg),
			 "request at head %u: no device-writable byte for its status: refused",
			 e->head);
		bq->ops->log(bq, msg);
		if (bq->ops->live(bq))
			bq->ops->give_back(bq, e->head, 0);
		return -EINVAL;
	}
	last = &e->iov[e->nr_out + e->nr_in - 1];
	status = (uint8_t *)last->base + last->len - 1;
	if (e->out_len < BLK_HEADER_LEN)
		return bad(bq, e, status, VIRTIO_BLK_S_IOERR, start,
			   "a header of %llu bytes (16 expected)", (unsigned long long)e->out_len);
	virtq_elem_read(e, 0, &hdr, sizeof(hdr));
	switch (le32toh(hdr.type)) {
	case VIRTIO_BLK_T_IN:
		return rw(bq, e, K_READ, le64toh(hdr.sector), status, start);
	case VIRTIO_BLK_T_OUT:
		return rw(bq, e, K_WRITE, le64toh(hdr.sector), status, start);
	case VIRTIO_BLK_T_FLUSH:
		return flush(bq, e, status, start);
	case VIRTIO_BLK_T_GET_ID:
		return get_id(bq, e, status, start);
	case VIRTIO_BLK_T_DISCARD:
		return ranges(bq, e, K_DISCARD, status, start);
	case VIRTIO_BLK_T_WRITE_ZEROES:
		return ranges(bq, e, K_ZEROES, status, start);
	}
	return bad(bq, e, status, VIRTIO_BLK_S_UNSUPP, start, "type %u is not supported",
		   le32toh(hdr.type));
}

int blk_queue_init(struct blk_queue *bq, unsigned index, const struct blk_disk *disk,
		   struct disk_queue *dq, const struct blk_queue_ops *ops, void *opaque)
{
	memset(bq, 0, sizeof(*bq));
	bq->iov = calloc(VIRTQ_ELEM_MAX, sizeof(bq->iov[0]));
	if (!bq->iov)
		return -ENOMEM;
	bq->index = index;
	bq->disk = disk;
	bq->dq = dq;
	bq->ops = ops;
	bq->opaque = opaque;
	return 0;
}

void blk_queue_exit(struct blk_queue *bq)
{
	free(bq->iov);
	bq->iov = NULL;
}
