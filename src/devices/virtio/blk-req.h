/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * virtio-blk's requests (blk-req.c): a chain checked and turned into disk
 * layer requests on one of its queues, and answered when they complete.
 * Apart from the PCI device (blk.c) so that the fuzzer drives it directly
 * over a disk of its own, with no transport.
 *
 * Threads: a struct blk_queue is its I/O thread's, like its disk queue
 * (or, with that thread paused, its pauser's).
 */
#ifndef VSRV_VIRTIO_BLK_REQ_H
#define VSRV_VIRTIO_BLK_REQ_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "../../disk/disk.h"
#include "queue.h"

/* Limits the device advertises and holds drivers to. */
#define BLK_SIZE_MAX		4096u	/* size_max: a page per segment */
#define BLK_SEG_MAX		254u	/* seg_max: a 256-entry queue less header and status */
#define BLK_DATA_MAX		(BLK_SEG_MAX * BLK_SIZE_MAX)	/* bytes of a read or write */
#define BLK_RANGE_SECTORS_MAX	(1u << 22)	/* 2 GiB a discard or write-zeroes segment */
#define BLK_RANGE_SEG_MAX	32u	/* segments of a discard or write-zeroes */
#define BLK_RANGE_ALIGN		8u	/* discard_sector_alignment: 4 KiB */
#define BLK_HEADER_LEN		16u	/* type, reserved, sector */
#define BLK_LATENCY_BUCKETS	24	/* log2 microseconds: <1, 1-2, ..., >= 2^22 */

/* What a device's requests did, for --stats and the management service:
 * relaxed atomics, one set per disk over all its queues.  Operations and
 * bytes count requests answered VIRTIO_BLK_S_OK; flushes, the disk's
 * (FLUSH requests, and the flush after each write when the driver did not
 * negotiate VIRTIO_BLK_F_FLUSH); errors, requests answered IOERR or
 * UNSUPP; the latency histogram, every request answered, from the moment
 * its chain was taken to the moment it was given back. */
struct virtio_blk_counters {
	atomic_uint_least64_t reads, read_bytes;
	atomic_uint_least64_t writes, write_bytes;
	atomic_uint_least64_t flushes;
	atomic_uint_least64_t discards, discard_bytes;
	atomic_uint_least64_t write_zeroes, write_zeroes_bytes;
	atomic_uint_least64_t errors;
	atomic_uint_least64_t latency[BLK_LATENCY_BUCKETS];
};

struct blk_queue;

struct blk_queue_ops {
	/* Whether answers may still go to the driver: not once the device
	 * stopped (NEEDS_RESET, a reset in progress), when requests still
	 * in flight only free their state. */
	bool (*live)(struct blk_queue *bq);
	/* Gives the chain at head back, `used` bytes written into it. */
	void (*give_back)(struct blk_queue *bq, uint16_t head, uint32_t used);
	/* One line about a request the device did not serve as asked. */
	void (*log)(struct blk_queue *bq, const char *msg);
};

/* The disk as a device's queues see it. */
struct blk_disk {
	uint64_t sectors;		/* capacity, 512-byte sectors */
	bool readonly;
	char id[DISK_SERIAL_LEN];	/* GET_ID: NUL-padded */
	struct virtio_blk_counters *count;
};

struct blk_queue {
	const struct blk_queue_ops *ops;
	void *opaque;			/* the device's */
	unsigned index;
	const struct blk_disk *disk;
	struct disk_queue *dq;
	uint64_t features;		/* negotiated: FLUSH, DISCARD, WRITE_ZEROES */
	unsigned inflight;		/* requests taken and not yet given back */
	struct iovec *iov;		/* scratch: a request's data, VIRTQ_ELEM_MAX */
};

int blk_queue_init(struct blk_queue *bq, unsigned index, const struct blk_disk *disk,
		   struct disk_queue *dq, const struct blk_queue_ops *ops, void *opaque);
void blk_queue_exit(struct blk_queue *bq);
/*
 * Takes one chain: 1 when its request went to the disk (answered later,
 * from disk_queue_reap() on bq->dq); 0 when it was answered at once (a
 * bad request: IOERR or UNSUPP, logged; or one with nothing to wait for);
 * -EINVAL when it has no device-writable byte for a status: refused,
 * given back with nothing written (logged).  Every chain is given back
 * exactly once, through ops->give_back (unless the device stopped).
 */
int blk_request(struct blk_queue *bq, const struct virtq_elem *e);

#endif
