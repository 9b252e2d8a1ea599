// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * libFuzzer target for virtio-blk's requests (src/devices/virtio/
 * blk-req.c), driven directly with no transport and no KVM, over raw
 * disks in memory (memfds, opened through the disk layer with its thread
 * engine): what a hostile guest controls is the chains and the bytes they
 * point at.
 *
 * Input: byte 0 picks the set-up: bit 0 a read-only disk, bits 1-3 the
 * features negotiated (FLUSH, DISCARD, WRITE_ZEROES), bit 4 indirect
 * descriptors, bits 5-7 the queue's size (1 << them).  The rest is guest
 * memory (16 KiB at guest-physical 0) holding a split queue whose
 * descriptor table, available and used rings are at 0x0000, 0x2000 and
 * 0x3000.  The target takes chains until none is left or the queue is
 * broken, hands each to blk_request(), lets the disk complete a few
 * requests now and then, then waits for the rest, checking the invariants:
 * every chain given back exactly once, never with more bytes than it has
 * room for, and refused only when it has no byte for a status; a
 * read-only disk never written; nothing left in flight.  (The status
 * byte's value is not checked here: a guest may point it into the buffer
 * of a read still in flight, which the disk writes at any moment.)
 *
 * A broken invariant calls bug(), which says which and aborts.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <linux/virtio_blk.h>

#include "../../src/devices/virtio/blk-req.h"
#define FUZZ_NAME "fuzz-virtio-blk"
#include "fuzz-vm.h"

#define MEMSZ		(16u << 10)
#define DESC_GPA	0x0000u
#define AVAIL_GPA	0x2000u
#define USED_GPA	0x3000u
#define MAX_POPS	256
#define DISK_SIZE	(64u << 10)	/* 128 sectors */
#define HEADS		128	/* the largest queue byte 0 can ask for */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t mem[MEMSZ] __attribute__((aligned(4096)));

/* A disk per kind, opened once per process: the thread pool and the
 * files outlive the inputs. */
struct mem_disk {
	int fd;
	struct disk *disk;
	struct disk_queue *dq;
	struct blk_disk bd;
	struct virtio_blk_counters count;
};

static struct mem_disk disks[2];	/* read-write, read-only */
static uint8_t original[DISK_SIZE];

/* What was taken and not yet given back, by head. */
static struct {
	unsigned outstanding;
	uint64_t room;			/* the largest writable part taken */
} heads[HEADS];
static unsigned taken, given;

static bool fuzz_live(struct blk_queue *bq)
{
	return true;
}

static void fuzz_give_back(struct blk_queue *bq, uint16_t head, uint32_t used)
{
	if (!heads[head].outstanding)
		bug("head %u given back but not taken", head);
	if (used > heads[head].room)
		bug("head %u given back with %u bytes written into %llu", head, used,
		    (unsigned long long)heads[head].room);
	heads[head].outstanding--;
	given++;
}

static void fuzz_log(struct blk_queue *bq, const char *msg)
{
	if (!msg[0] || strlen(msg) >= 400)
		bug("a log line of %zu bytes", strlen(msg));
}

static const struct blk_queue_ops fuzz_ops = {
	.live = fuzz_live, .give_back = fuzz_give_back, .log = fuzz_log,
};

static void open_disk(struct mem_disk *m, bool readonly)
{
	struct disk_spec spec = { .format = DISK_FORMAT_RAW, .readonly = readonly,
				  .aio = DISK_AIO_THREAD, .serial = "fuzz" };
	struct disk_error err = { 0 };
	char path[64];

	m->fd = memfd_create(readonly ? "fuzz-blk-ro" : "fuzz-blk", MFD_CLOEXEC);
	if (m->fd < 0 || pwrite(m->fd, original, DISK_SIZE, 0) != DISK_SIZE)
		bug("memfd: %s", strerror(errno));
	snprintf(path, sizeof(path), "/proc/self/fd/%d", m->fd);
	spec.path = path;
	if (disk_open(&spec, &m->disk, &err) < 0 || disk_queue_create(m->disk, &m->dq) < 0)
		bug("disk: %s", err.msg);
	m->bd.sectors = DISK_SIZE / DISK_SECTOR_SIZE;
	m->bd.readonly = readonly;
	memcpy(m->bd.id, "fuzz", 4);
	m->bd.count = &m->count;
}

static void setup_once(void)
{
	static bool done;

	if (done)
		return;
	for (unsigned i = 0; i < DISK_SIZE; i++)
		original[i] = (uint8_t)(i * 13 + (i >> 9));
	open_disk(&disks[0], false);
	open_disk(&disks[1], true);
	done = true;
}

static void take(struct blk_queue *bq, const struct virtq_elem *e)
{
	int r;

	heads[e->head].outstanding++;
	if (e->in_len > heads[e->head].room)
		heads[e->head].room = e->in_len;
	taken++;
	r = blk_request(bq, e);
	if (r < 0 && e->nr_in)
		bug("a request with a status byte refused");
	if (r > 0 && !bq->inflight)
		bug("a request in flight not counted");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct virtq_elem e;
	static const unsigned feature_bits[] = {
		VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_F_DISCARD, VIRTIO_BLK_F_WRITE_ZEROES,
	};
	struct mem_disk *m;
	struct blk_queue bq;
	struct virtq q;
	struct vm vm;
	uint8_t check[DISK_SIZE];
	int r = 0;

	if (!size)
		return 0;
	setup_once();
	m = &disks[data[0] & 1];
	/* The same bytes for every input: what a run found, a replay finds. */
	if (!m->bd.readonly && pwrite(m->fd, original, DISK_SIZE, 0) != DISK_SIZE)
		bug("memfd: %s", strerror(errno));
	fake_vm(&vm, mem, MEMSZ);
	memset(mem, 0, sizeof(mem));
	memcpy(mem, data + 1, size - 1 < MEMSZ ? size - 1 : MEMSZ);
	memset(heads, 0, sizeof(heads));
	taken = given = 0;
	if (blk_queue_init(&bq, 0, &m->bd, m->dq, &fuzz_ops, NULL) < 0)
		bug("no memory for a queue");
	for (unsigned i = 0; i < 3; i++)
		if (data[0] & 2u << i)
			bq.features |= 1ull << feature_bits[i];
	if (virtq_setup(&q, &vm, (uint16_t)(1u << (data[0] >> 5)), DESC_GPA, AVAIL_GPA,
			USED_GPA, false, data[0] & 0x10) < 0)
		bug("rings in memory refused: %s", q.error);
	for (unsigned n = 0; n < MAX_POPS; n++) {
		r = virtq_pop(&q, &e);
		if (r <= 0)
			break;
		take(&bq, &e);
		/* Some completions between requests, as the I/O thread would. */
		if (n % 4 == 3)
			disk_queue_reap(m->dq);
	}
	if (r < 0 && !q.error[0])
		bug("a refused chain without a reason");
	disk_queue_drain(m->dq);
	if (bq.inflight || disk_queue_inflight(m->dq))
		bug("%u requests still in flight", bq.inflight);
	if (given != taken)
		bug("%u chains taken, %u given back", taken, given);
	blk_queue_exit(&bq);
	if (m->bd.readonly) {
		if (pread(m->fd, check, DISK_SIZE, 0) != DISK_SIZE ||
		    memcmp(check, original, DISK_SIZE))
			bug("the read-only disk was written");
	}
	return 0;
}
