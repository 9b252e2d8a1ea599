// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * virtio-blk, the block device (virtio 1.x, "Block Device"; virtio id 2,
 * PCI 1af4:1042, class 0x018000), on an open disk of the disk layer
 * (src/disk).  Requests are in blk-req.c; this file is the device: its
 * features and configuration, its queues and their threads, counters,
 * reset, quiesce and saved state.
 *
 * Features offered (besides the transport's): SIZE_MAX, SEG_MAX and
 * BLK_SIZE (512-byte logical blocks), TOPOLOGY (4 KiB physical blocks,
 * what the disk layer's files and VHD blocks are made of), FLUSH, MQ and,
 * unless the disk is read-only (then RO), DISCARD and WRITE_ZEROES.  No
 * CONFIG_WCE: the cache mode is the host's choice (--disk cache=).
 *
 * Queues: nr_queues request queues, each with a disk queue of its own; all
 * are served on the device's I/O thread, which polls each doorbell and,
 * through a poll source (io_setup), each disk queue's completion eventfd.
 * Requests complete
 * asynchronously: a chain is taken, its request submitted, and the chain
 * given back when the disk completes it.  A queue takes at most as many
 * chains as its size before its requests complete: a driver that makes
 * chains available again and again cannot have the device allocate
 * without bound.  The ring is then left as it is (available-buffer
 * notifications off) until a completion makes room.
 *
 * Reset and saved state: a reset waits for the requests in flight and
 * drops their answers (the driver is resetting); quiesce waits for them
 * and answers them, so that saved state never has a request in flight.
 * The device's own state is its disk's shape (capacity, queues,
 * read-only), checked on load against the disk it runs on; what the disk
 * stands on (each layer's file: VHD unique id, length, modification
 * time) goes in a DREF of its own, which a restore checks before loading
 * anything (docs/control.md).  A checkpoint switches a paused VM's disk
 * onto a differencing child over its top (virtio_blk_snapshot).  Counters
 * for --stats and the control socket's `stats`.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <linux/virtio_blk.h>
#include <linux/virtio_ids.h>

#include "../state.h"
#include "blk.h"
#include "virtio.h"

#define BLK_QUEUE_SIZE		256
#define PCI_CLASS_STORAGE_OTHER	0x018000	/* mass storage, "other" */
#define BLK_PHYS_EXP		3	/* 8 logical blocks to a physical one */
#define BLK_MIN_IO		8	/* logical blocks: 4 KiB */
/* struct virtio_blk_config up to write_zeroes_may_unmap and its padding:
 * no secure erase, no zones. */
#define BLK_CONFIG_SIZE		offsetof(struct virtio_blk_config, max_secure_erase_sectors)

struct virtio_blk {
	struct virtio_dev *dev;
	struct virtio_dev_ops ops;	/* blk_ops with this disk's features, queues */
	struct disk *disk;
	char *name;			/* the disk as given, for --stats */
	struct blk_disk bd;
	struct virtio_blk_counters count;
	struct virtio_blk_config config;	/* little-endian, as the driver reads it */
	unsigned nr_queues;
	struct blk_queue q[VIRTIO_QUEUES_MAX];
	struct disk_queue *dq[VIRTIO_QUEUES_MAX];
	bool closing;			/* being destroyed: answers go nowhere */
};

/* --- the requests' hooks --- */

static struct virtio_dev *dev_of(struct blk_queue *bq)
{
	return ((struct virtio_blk *)bq->opaque)->dev;
}

static bool blk_live(struct blk_queue *bq)
{
	return !((struct virtio_blk *)bq->opaque)->closing && atomic_load(&dev_of(bq)->running);
}

static void blk_give_back(struct blk_queue *bq, uint16_t head, uint32_t used)
{
	virtio_queue_push(dev_of(bq), bq->index, head, used);
}

static void blk_log(struct blk_queue *bq, const char *msg)
{
	virtio_log(dev_of(bq), "queue %u: %s", bq->index, msg);
}

static const struct blk_queue_ops blk_queue_ops = {
	.live = blk_live, .give_back = blk_give_back, .log = blk_log,
};

/* --- the I/O thread --- */

/* Takes chains until the ring is empty or the queue is at its bound. */
static void serve(struct virtio_dev *d, unsigned qi)
{
	struct virtio_blk *blk = d->priv;
	struct blk_queue *bq = &blk->q[qi];
	uint16_t size = d->q[qi].vq.size;

	/* Fixed from FEATURES_OK on; read here, on the thread that uses it. */
	bq->features = d->driver_features;
	while (bq->inflight < size && virtio_queue_pop(d, qi, d->elem) > 0)
		if (blk_request(bq, d->elem) < 0)
			atomic_fetch_add_explicit(&d->count.refused, 1, memory_order_relaxed);
	virtio_queue_notify_used(d, qi);
}

static void queue_notify(struct virtio_dev *d, unsigned qi)
{
	serve(d, qi);
}

/* A disk queue's completions: answers, then, if the queue had stopped
 * taking chains at its bound, the chains that waited. */
static void completed(struct blk_queue *bq)
{
	struct virtio_dev *d = dev_of(bq);
	bool was_full = bq->inflight >= d->q[bq->index].vq.size;

	disk_queue_reap(bq->dq);
	if (was_full && atomic_load(&d->running) && atomic_load(&d->q[bq->index].ready))
		serve(d, bq->index);
	else
		virtio_queue_notify_used(d, bq->index);
}

/* The poll source: each disk queue's completion eventfd, in queue order
 * (disk_queue_reap reads it); never more than VIRTIO_QUEUES_MAX. */
static unsigned source_prepare(void *opaque, struct pollfd *p, unsigned max, int *timeout_ms)
{
	struct virtio_blk *blk = opaque;

	for (unsigned i = 0; i < blk->nr_queues; i++)
		p[i] = (struct pollfd){ .fd = disk_queue_fd(blk->dq[i]), .events = POLLIN };
	return blk->nr_queues;
}

static void source_dispatch(void *opaque, struct pollfd *p, unsigned nr)
{
	struct virtio_blk *blk = opaque;

	for (unsigned i = 0; i < nr; i++)
		if (p[i].revents & POLLIN)
			completed(&blk->q[i]);
}

static int blk_io_setup(struct virtio_dev *d, struct iothread *io)
{
	struct iothread_source src = {
		.prepare = source_prepare, .dispatch = source_dispatch, .opaque = d->priv,
	};

	return iothread_add_source(io, &src);
}

/* --- configuration --- */

static void config_read(struct virtio_dev *d, unsigned off, void *data, unsigned len)
{
	struct virtio_blk *blk = d->priv;

	memcpy(data, (const uint8_t *)&blk->config + off, len);
}

static void config_init(struct virtio_blk *blk)
{
	struct virtio_blk_config *c = &blk->config;

	c->capacity = htole64(blk->bd.sectors);
	c->size_max = htole32(BLK_SIZE_MAX);
	c->seg_max = htole32(BLK_SEG_MAX);
	c->blk_size = htole32(DISK_SECTOR_SIZE);
	c->physical_block_exp = BLK_PHYS_EXP;
	c->min_io_size = htole16(BLK_MIN_IO);
	c->num_queues = htole16((uint16_t)blk->nr_queues);
	if (blk->bd.readonly)
		return;
	c->max_discard_sectors = htole32(BLK_RANGE_SECTORS_MAX);
	c->max_discard_seg = htole32(BLK_RANGE_SEG_MAX);
	c->discard_sector_alignment = htole32(BLK_RANGE_ALIGN);
	c->max_write_zeroes_sectors = htole32(BLK_RANGE_SECTORS_MAX);
	c->max_write_zeroes_seg = htole32(BLK_RANGE_SEG_MAX);
	/* Raw files punch holes; VHD disks free what only the top holds. */
	c->write_zeroes_may_unmap = 1;
}

/* --- reset, quiesce, saved state (the I/O thread paused) --- */

/* Waits for every request in flight; their answers go to the driver
 * while the device runs, and nowhere during a reset. */
static void drain(struct virtio_blk *blk)
{
	for (unsigned i = 0; i < blk->nr_queues; i++)
		disk_queue_drain(blk->dq[i]);
}

static void blk_reset(struct virtio_dev *d)
{
	drain(d->priv);
}

static int blk_quiesce(struct virtio_dev *d)
{
	struct virtio_blk *blk = d->priv;

	drain(blk);
	for (unsigned i = 0; i < blk->nr_queues; i++)
		virtio_queue_notify_used(d, i);
	return 0;
}

static void blk_resume(struct virtio_dev *d)
{
	/* A queue that was at its bound took no chains since: look again. */
	virtio_kick_all(d);
}

static int blk_save(struct virtio_dev *d, struct dev_state *s)
{
	struct virtio_blk *blk = d->priv;

	/* A request in flight would be lost: the caller quiesces first. */
	for (unsigned i = 0; i < blk->nr_queues; i++)
		if (blk->q[i].inflight)
			return -EBUSY;
	state_put_section(s, "VBLK", 1);
	state_put_u64(s, blk->bd.sectors);
	state_put_u32(s, blk->nr_queues);
	state_put_u8(s, blk->bd.readonly);
	return 0;
}

static int blk_load(struct virtio_dev *d, struct dev_state *s)
{
	struct virtio_blk *blk = d->priv;
	uint64_t sectors;
	uint32_t queues;
	uint8_t ro;

	if (!state_get_section(s, "VBLK", 1))
		return s->err;
	sectors = state_get_u64(s);
	queues = state_get_u32(s);
	ro = state_get_u8(s);
	if (s->err)
		return s->err;
	/* Saved for another disk: the driver's view of it would be wrong. */
	if (sectors != blk->bd.sectors || queues != blk->nr_queues || ro != blk->bd.readonly)
		return -EINVAL;
	return 0;
}

/* --- what the saved state stands on (DREF): the disk's files --- */

#define REF_LAYERS_MAX	64	/* a VHD chain's deepest */
#define REF_PATH_MAX	4096

static void flushed(void *opaque, int status)
{
	*(int *)opaque = status;
}

/* What the disk still owes its files (a VHD's bitmaps and BAT) written
 * now, with the I/O thread paused (its queues are then the pauser's). */
static int flush_now(struct virtio_blk *blk)
{
	int status = 0;
	int r = disk_submit_flush(blk->dq[0], flushed, &status);

	if (r < 0)
		return r;
	disk_queue_drain(blk->dq[0]);
	return status;
}

/*
 * Each layer of the disk, from the top: its path, whether it is a VHD,
 * its unique id, its length and its modification time.  The files are
 * flushed first, so that the VM's process writes nothing to them after
 * the stamps are taken: its close then only syncs (a saved VM never runs
 * again in this process; a checkpoint's does, and changes them then).
 */
static int blk_save_ref(struct virtio_dev *d, struct dev_state *s)
{
	struct virtio_blk *blk = d->priv;
	struct disk_layer l[REF_LAYERS_MAX];
	unsigned n = 0;
	int r = blk->bd.readonly ? 0 : flush_now(blk);

	while (r >= 0 && n < REF_LAYERS_MAX && (r = disk_layer(blk->disk, n, &l[n])) > 0)
		n++;
	if (r < 0)
		return r;
	state_put_section(s, "VBRF", 1);
	state_put_u32(s, n);
	for (unsigned i = 0; i < n; i++) {
		uint16_t len = (uint16_t)strnlen(l[i].path, REF_PATH_MAX);

		state_put_u16(s, len);
		state_put_bytes(s, l[i].path, len);
		state_put_u8(s, l[i].vhd);
		state_put_bytes(s, l[i].id, sizeof(l[i].id));
		state_put_u64(s, l[i].size);
		state_put_u64(s, (uint64_t)l[i].mtime_sec);
		state_put_u32(s, l[i].mtime_nsec);
	}
	return s->err;
}

/* "2026-11-28 07:01:02.123456 UTC" */
static void stamp_text(int64_t sec, uint32_t nsec, char *out, size_t len)
{
	time_t t = (time_t)sec;
	struct tm tm;
	size_t n;

	if (!gmtime_r(&t, &tm) || !(n = strftime(out, len, "%Y-%m-%d %H:%M:%S", &tm)))
		n = (size_t)snprintf(out, len, "%lld", (long long)sec);
	snprintf(out + n, len - n, ".%06u UTC", nsec / 1000);
}

/* A VHD's unique id, or "a raw file". */
static void identity_text(const struct disk_layer *l, char *out, size_t len)
{
	if (l->vhd)
		snprintf(out, len, "unique id %s", l->id);
	else
		snprintf(out, len, "a raw file");
}

/* The disk as it is now against the saved layers: one line in err for
 * the first that does not hold.  The saved layers must be the disk's
 * lowest; above them there may be layers that hold nothing yet (a
 * revert's fresh child over a checkpoint's layer), which read exactly
 * as the saved top did. */
static int blk_check_ref(struct virtio_dev *d, struct dev_state *s, char *err, size_t errlen)
{
	struct virtio_blk *blk = d->priv;
	struct disk_layer now;
	uint32_t n;
	unsigned have = 0, above = 0;
	int r;

	n = state_get_section(s, "VBRF", 1) ? state_get_u32(s) : 0;
	if (s->err || n > REF_LAYERS_MAX)
		goto corrupt;
	while ((r = disk_layer(blk->disk, have, &now)) > 0)
		have++;
	if (r < 0) {
		snprintf(err, errlen, "%s: %s", blk->name, strerror(-r));
		return r;
	}
	while (have > n && above < have - n && disk_layer(blk->disk, above, &now) > 0 &&
	       now.empty)
		above++;
	if (have != n + above) {
		snprintf(err, errlen, "%s: saved on %u layers, this run's disk has %u (a restore "
			 "needs its disks as they were)", blk->name, n, have);
		return -ESTALE;
	}
	for (unsigned i = 0; i < n; i++) {
		char path[REF_PATH_MAX + 1], a[64], b[64];
		uint16_t len = state_get_u16(s);
		struct disk_layer was = { .path = path };

		if (len > REF_PATH_MAX)
			goto corrupt;
		state_get_bytes(s, path, len);
		path[len] = '\0';
		was.vhd = state_get_u8(s);
		state_get_bytes(s, was.id, sizeof(was.id));
		was.id[sizeof(was.id) - 1] = '\0';
		state_printable(was.id);	/* quoted in a refusal */
		was.size = state_get_u64(s);
		was.mtime_sec = (int64_t)state_get_u64(s);
		was.mtime_nsec = state_get_u32(s);
		if (s->err)
			goto corrupt;
		disk_layer(blk->disk, above + i, &now);
		if (now.vhd != was.vhd || strcmp(now.id, was.id)) {
			identity_text(&now, a, sizeof(a));
			identity_text(&was, b, sizeof(b));
			snprintf(err, errlen, "%s is not the disk saved (%s, saved with %s)",
				 now.path, a, b);
			return -ESTALE;
		}
		if (now.mtime_sec != was.mtime_sec || now.mtime_nsec != was.mtime_nsec) {
			stamp_text(now.mtime_sec, now.mtime_nsec, a, sizeof(a));
			stamp_text(was.mtime_sec, was.mtime_nsec, b, sizeof(b));
			snprintf(err, errlen, "%s changed since the save (modified %s, saved at %s)",
				 now.path, a, b);
			return -ESTALE;
		}
		if (now.size != was.size) {
			snprintf(err, errlen, "%s changed since the save (%llu bytes, saved with "
				 "%llu)", now.path, (unsigned long long)now.size,
				 (unsigned long long)was.size);
			return -ESTALE;
		}
	}
	return 0;
corrupt:
	snprintf(err, errlen, "corrupt: %s's disk references do not read", d->pci.name);
	return -EINVAL;
}

int virtio_blk_snapshot(struct virtio_blk *blk, int fd, int direct_fd, const char *child_path,
			char *err, size_t errlen)
{
	struct disk_error e = { 0 };
	int r = disk_snapshot_fd(blk->disk, fd, direct_fd, child_path, &e);

	if (r < 0)
		snprintf(err, errlen, "%s", e.msg);
	return r;
}

/* For `stats` (docs/control.md), after the transport's: the operations
 * and bytes answered, and the latency histogram's buckets that have
 * requests, "latency_us_A_B" for [A, B) microseconds ("latency_us_A_up"
 * for the last). */
static void blk_counters(struct virtio_dev *d,
			 void (*put)(void *ctx, const char *name, uint64_t v), void *ctx)
{
	const struct virtio_blk_counters *c = &((struct virtio_blk *)d->priv)->count;
	char name[48];

	put(ctx, "reads", atomic_load_explicit(&c->reads, memory_order_relaxed));
	put(ctx, "read_bytes", atomic_load_explicit(&c->read_bytes, memory_order_relaxed));
	put(ctx, "writes", atomic_load_explicit(&c->writes, memory_order_relaxed));
	put(ctx, "write_bytes", atomic_load_explicit(&c->write_bytes, memory_order_relaxed));
	put(ctx, "flushes", atomic_load_explicit(&c->flushes, memory_order_relaxed));
	put(ctx, "discards", atomic_load_explicit(&c->discards, memory_order_relaxed));
	put(ctx, "discard_bytes", atomic_load_explicit(&c->discard_bytes, memory_order_relaxed));
	put(ctx, "write_zeroes", atomic_load_explicit(&c->write_zeroes, memory_order_relaxed));
	put(ctx, "write_zeroes_bytes",
	    atomic_load_explicit(&c->write_zeroes_bytes, memory_order_relaxed));
	put(ctx, "errors", atomic_load_explicit(&c->errors, memory_order_relaxed));
	for (unsigned b = 0; b < BLK_LATENCY_BUCKETS; b++) {
		uint64_t v = atomic_load_explicit(&c->latency[b], memory_order_relaxed);

		if (!v)
			continue;
		if (b == BLK_LATENCY_BUCKETS - 1)
			snprintf(name, sizeof(name), "latency_us_%llu_up", 1ull << (b - 1));
		else
			snprintf(name, sizeof(name), "latency_us_%llu_%llu",
				 b ? 1ull << (b - 1) : 0, 1ull << b);
		put(ctx, name, v);
	}
}

static const struct virtio_dev_ops blk_ops = {
	.name = "virtio-blk",
	.device_id = VIRTIO_ID_BLOCK,
	.pci_class = PCI_CLASS_STORAGE_OTHER,
	.features = 1ull << VIRTIO_BLK_F_SIZE_MAX | 1ull << VIRTIO_BLK_F_SEG_MAX |
		    1ull << VIRTIO_BLK_F_BLK_SIZE | 1ull << VIRTIO_BLK_F_FLUSH |
		    1ull << VIRTIO_BLK_F_TOPOLOGY | 1ull << VIRTIO_BLK_F_MQ,
	.queue_max = BLK_QUEUE_SIZE,
	.config_size = BLK_CONFIG_SIZE,
	.config_read = config_read,
	.queue_notify = queue_notify,
	.io_setup = blk_io_setup,
	.reset = blk_reset,
	.quiesce = blk_quiesce,
	.resume = blk_resume,
	.save = blk_save,
	.load = blk_load,
	.counters = blk_counters,
	.save_ref = blk_save_ref,
	.check_ref = blk_check_ref,
};

/* --- set-up --- */

static void blk_free(struct virtio_blk *blk)
{
	struct disk_error err = { 0 };

	for (unsigned i = 0; i < blk->nr_queues; i++) {
		disk_queue_destroy(blk->dq[i]);
		blk_queue_exit(&blk->q[i]);
	}
	if (disk_close(blk->disk, &err) < 0)
		fprintf(stderr, "vsrv: %s\n", err.msg);
	free(blk->name);
	free(blk);
}

int virtio_blk_create(struct pci_bus *bus, struct disk *disk, const char *name,
		      unsigned nr_queues, struct virtio_blk **out)
{
	struct virtio_blk *blk = calloc(1, sizeof(*blk));
	int r = 0;

	if (!blk || nr_queues < 1 || nr_queues > VIRTIO_QUEUES_MAX) {
		free(blk);
		disk_close(disk, NULL);
		return blk ? -EINVAL : -ENOMEM;
	}
	blk->disk = disk;
	blk->name = strdup(name);
	blk->bd.sectors = disk_size(disk) / DISK_SECTOR_SIZE;
	blk->bd.readonly = disk_is_readonly(disk);
	memcpy(blk->bd.id, disk_serial(disk), strnlen(disk_serial(disk), sizeof(blk->bd.id)));
	blk->bd.count = &blk->count;
	blk->ops = blk_ops;
	blk->ops.nr_queues = nr_queues;
	blk->ops.features |= blk->bd.readonly ? 1ull << VIRTIO_BLK_F_RO :
			     1ull << VIRTIO_BLK_F_DISCARD | 1ull << VIRTIO_BLK_F_WRITE_ZEROES;
	for (; r >= 0 && blk->nr_queues < nr_queues; blk->nr_queues++) {
		unsigned i = blk->nr_queues;

		r = disk_queue_create(disk, &blk->dq[i]);
		if (r >= 0)
			r = blk_queue_init(&blk->q[i], i, &blk->bd, blk->dq[i], &blk_queue_ops,
					   blk);
		if (r < 0) {
			disk_queue_destroy(blk->dq[i]);
			break;
		}
	}
	if (r >= 0 && !blk->name)
		r = -ENOMEM;
	config_init(blk);
	if (r >= 0)
		r = virtio_pci_create(bus, &blk->ops, blk, &blk->dev);
	if (r < 0) {
		blk_free(blk);
		return r;
	}
	*out = blk;
	return 0;
}

void virtio_blk_destroy(struct virtio_blk *blk)
{
	if (!blk)
		return;
	/* Nothing of the device's runs from here; what is in flight
	 * finishes, answered nowhere (the VM is ending); then the device and
	 * its thread go, then the disk. */
	iothread_pause(blk->dev->io);
	blk->closing = true;
	drain(blk);
	virtio_pci_destroy(blk->dev);
	blk_free(blk);
}

const struct virtio_blk_counters *virtio_blk_counters(const struct virtio_blk *blk)
{
	return &blk->count;
}

void virtio_blk_print_stats(struct virtio_blk *blk, FILE *f)
{
	const struct virtio_blk_counters *c = &blk->count;
	char hist[BLK_LATENCY_BUCKETS * 40] = "";
	size_t n = 0;

	virtio_print_stats(blk->dev, f);
	fprintf(f, "vsrv: %s: %s: %llu reads (%llu bytes), %llu writes (%llu bytes), "
		"%llu flushes, %llu discards (%llu bytes), %llu write-zeroes (%llu bytes), "
		"%llu errors\n", blk->dev->pci.name, blk->name,
		(unsigned long long)atomic_load(&c->reads),
		(unsigned long long)atomic_load(&c->read_bytes),
		(unsigned long long)atomic_load(&c->writes),
		(unsigned long long)atomic_load(&c->write_bytes),
		(unsigned long long)atomic_load(&c->flushes),
		(unsigned long long)atomic_load(&c->discards),
		(unsigned long long)atomic_load(&c->discard_bytes),
		(unsigned long long)atomic_load(&c->write_zeroes),
		(unsigned long long)atomic_load(&c->write_zeroes_bytes),
		(unsigned long long)atomic_load(&c->errors));
	/* The latency histogram's buckets that have requests. */
	for (unsigned b = 0; b < BLK_LATENCY_BUCKETS; b++) {
		unsigned long long v = atomic_load(&c->latency[b]);

		if (!v)
			continue;
		if (b == 0)
			n += (size_t)snprintf(hist + n, sizeof(hist) - n, ", <1: %llu", v);
		else if (b == BLK_LATENCY_BUCKETS - 1)
			n += (size_t)snprintf(hist + n, sizeof(hist) - n, ", >=%llu: %llu",
					      1ull << (b - 1), v);
		else
			n += (size_t)snprintf(hist + n, sizeof(hist) - n, ", %llu-%llu: %llu",
					      1ull << (b - 1), 1ull << b, v);
	}
	if (n)
		fprintf(f, "vsrv: %s: latency in microseconds%s\n", blk->dev->pci.name, hist);
}
