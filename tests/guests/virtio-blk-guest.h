/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * What the virtio-blk micro-guests (dev-virtio-blk.c, dev-virtio-blk-bad.c)
 * share: virtio-guest.h's device, set up with several queues, each on rings
 * of its own with an MSI-X vector of its own, and virtio-blk requests as a
 * driver writes them (a header, the data, a status byte), from the spec.
 *
 * A request lives in a slot of its queue: slot k uses descriptors 3k to
 * 3k + 2, a header and a status byte of its own, so that up to BQ_SLOTS
 * requests of a queue can be in flight at once.
 */
#ifndef VIRTIO_BLK_GUEST_H
#define VIRTIO_BLK_GUEST_H

#include "virtio-guest.h"

#define VIRTIO_BLK_DEVICE	0x1042

/* Feature bits (virtio 1.x, "Block Device"). */
#define BLK_F_SIZE_MAX		1
#define BLK_F_SEG_MAX		2
#define BLK_F_GEOMETRY		4
#define BLK_F_RO		5
#define BLK_F_BLK_SIZE		6
#define BLK_F_FLUSH		9
#define BLK_F_TOPOLOGY		10
#define BLK_F_CONFIG_WCE	11
#define BLK_F_MQ		12
#define BLK_F_DISCARD		13
#define BLK_F_WRITE_ZEROES	14

#define T_IN		0
#define T_OUT		1
#define T_FLUSH		4
#define T_GET_ID	8
#define T_DISCARD	11
#define T_WRITE_ZEROES	13
#define S_OK		0
#define S_IOERR		1
#define S_UNSUPP	2

/* The device configuration's offsets. */
#define CFG_CAPACITY		0
#define CFG_SIZE_MAX		8
#define CFG_SEG_MAX		12
#define CFG_BLK_SIZE		20
#define CFG_PHYS_EXP		24
#define CFG_ALIGN_OFF		25
#define CFG_MIN_IO		26
#define CFG_OPT_IO		28
#define CFG_NUM_QUEUES		34
#define CFG_MAX_DISCARD		36
#define CFG_DISCARD_SEG		40
#define CFG_DISCARD_ALIGN	44
#define CFG_MAX_ZEROES		48
#define CFG_ZEROES_SEG		52
#define CFG_ZEROES_UNMAP	56

#define NQ		4	/* queues this driver sets up at most */
#define BQ_SIZE		16
#define BQ_SLOTS	5
#define VEC_BQ		0x50	/* queue i's MSI-X interrupt: VEC_BQ + i */
/* A generous wait for what must come, in TSC ticks (the host may be
 * busy). */
#define TICKS		20000000000ull

struct blk_hdr {
	uint32_t type, reserved;
	uint64_t sector;
};

struct blk_seg {
	uint64_t sector;
	uint32_t num_sectors, flags;
};

struct bq {
	unsigned index;
	uint16_t size;
	volatile struct vdesc *desc;
	volatile uint16_t *avail;
	volatile uint32_t *used;
	uint16_t avail_idx, used_seen;
	uint64_t doorbell;
};

static struct vdesc bq_desc[NQ][BQ_SIZE] __attribute__((aligned(4096)));
static uint16_t bq_avail[NQ][4 + BQ_SIZE] __attribute__((aligned(64)));
static uint32_t bq_used[NQ][2 + 2 * BQ_SIZE] __attribute__((aligned(64)));
static struct blk_hdr bq_hdr[NQ][BQ_SLOTS];
static volatile uint8_t bq_status[NQ][BQ_SLOTS];
static struct bq bqs[NQ];
static volatile unsigned n_bq[NQ];

#define BQ_HANDLER(i) \
	__attribute__((interrupt, unused)) static void on_bq##i(struct iframe *f) \
	{ \
		n_bq[i]++; \
		lapic_eoi(); \
	}
BQ_HANDLER(0)
BQ_HANDLER(1)
BQ_HANDLER(2)
BQ_HANDLER(3)

static inline void blk_interrupts(void)
{
	interrupts_init();
	idt_set(VEC_CONFIG, on_config);
	idt_set(VEC_BQ + 0, on_bq0);
	idt_set(VEC_BQ + 1, on_bq1);
	idt_set(VEC_BQ + 2, on_bq2);
	idt_set(VEC_BQ + 3, on_bq3);
}

static inline uint32_t cfg32(struct vdev *v, unsigned off)
{
	return mmio_read32(v->device + off);
}

/* Queue i on its rings, with MSI-X vector `vec` (table entry). */
static inline void bq_setup(struct vdev *v, unsigned i, uint16_t vec)
{
	struct bq *q = &bqs[i];

	for (unsigned k = 0; k < BQ_SIZE; k++)
		bq_desc[i][k] = (struct vdesc){ 0 };
	for (unsigned k = 0; k < 4 + BQ_SIZE; k++)
		bq_avail[i][k] = 0;
	for (unsigned k = 0; k < 2 + 2 * BQ_SIZE; k++)
		bq_used[i][k] = 0;
	*q = (struct bq){ .index = i, .size = BQ_SIZE, .desc = bq_desc[i],
			  .avail = bq_avail[i], .used = bq_used[i] };
	mmio_write16(v->common + C_QSELECT, (uint16_t)i);
	mmio_write16(v->common + C_QSIZE, BQ_SIZE);
	mmio_write16(v->common + C_QMSIX, vec);
	mmio_write64(v->common + C_QDESC, (uint64_t)bq_desc[i]);
	mmio_write64(v->common + C_QAVAIL, (uint64_t)bq_avail[i]);
	mmio_write64(v->common + C_QUSED, (uint64_t)bq_used[i]);
	q->doorbell = v->notify + v->notify_mult * mmio_read16(v->common + C_QNOFF);
	mmio_write16(v->common + C_QENABLE, 1);
}

/* The spec's initialisation with `nq` queues, each on its own MSI-X
 * vector (table entry 1 + i; entry 0 for configuration changes). */
static inline bool blk_init(struct vdev *v, uint64_t features, unsigned nq)
{
	vdev_reset(v);
	vdev_set_status(v, S_ACKNOWLEDGE);
	vdev_set_status(v, S_ACKNOWLEDGE | S_DRIVER);
	vdev_set_features(v, features & vdev_features(v));
	vdev_set_status(v, S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK);
	if (!(vdev_status(v) & S_FEATURES_OK))
		return false;
	msix_set(v, 0, VEC_CONFIG);
	for (unsigned i = 0; i < nq; i++)
		msix_set(v, 1 + i, VEC_BQ + i);
	msix_enable(v, true);
	mmio_write16(v->common + C_MSIX, 0);
	for (unsigned i = 0; i < nq; i++)
		bq_setup(v, i, (uint16_t)(1 + i));
	vdev_set_status(v, S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
	return !(vdev_status(v) & S_NEEDS_RESET);
}

/* Makes the chain at `head` available (not rung). */
static inline void bq_publish(struct bq *q, uint16_t head)
{
	q->avail[2 + q->avail_idx % q->size] = head;
	__asm__ volatile("" ::: "memory");
	q->avail[1] = ++q->avail_idx;
}

static inline void bq_kick(struct bq *q)
{
	__asm__ volatile("mfence" ::: "memory");
	mmio_write16(q->doorbell, (uint16_t)q->index);
}

/*
 * Request slot k of q: header (type, sector), then `len` bytes of data at
 * `data` (device-writable for reads and GET_ID, readable otherwise; none
 * when len is 0), then the status byte; made available, not rung.
 */
static inline void bq_request(struct bq *q, unsigned k, uint32_t type, uint64_t sector,
			      const volatile void *data, uint32_t len)
{
	uint16_t d = (uint16_t)(3 * k);
	bool in = type == T_IN || type == T_GET_ID;
	struct blk_hdr *h = &bq_hdr[q->index][k];
	volatile uint8_t *st = &bq_status[q->index][k];

	*h = (struct blk_hdr){ type, 0, sector };
	*st = 0xff;
	if (len) {
		q->desc[d] = (struct vdesc){ (uint64_t)h, sizeof(*h), D_NEXT, (uint16_t)(d + 1) };
		q->desc[d + 1] = (struct vdesc){ (uint64_t)data, len,
						 (uint16_t)((in ? D_WRITE : 0) | D_NEXT),
						 (uint16_t)(d + 2) };
		q->desc[d + 2] = (struct vdesc){ (uint64_t)st, 1, D_WRITE, 0 };
	} else {
		q->desc[d] = (struct vdesc){ (uint64_t)h, sizeof(*h), D_NEXT, (uint16_t)(d + 1) };
		q->desc[d + 1] = (struct vdesc){ (uint64_t)st, 1, D_WRITE, 0 };
	}
	bq_publish(q, d);
}

static inline uint16_t bq_used_idx(struct bq *q)
{
	return (uint16_t)(q->used[0] >> 16);
}

/* The next used entry, waiting for it (interrupts on, so that the
 * queue's vector is counted): false after TICKS without one. */
static inline bool bq_take(struct bq *q, uint32_t *id, uint32_t *len)
{
	uint64_t end = rdtsc() + TICKS;
	bool got;

	sti();
	while (bq_used_idx(q) == q->used_seen && rdtsc() < end)
		__asm__ volatile("pause" ::: "memory");
	cli();
	got = bq_used_idx(q) != q->used_seen;
	if (!got)
		return false;
	*id = q->used[1 + 2 * (q->used_seen % q->size)];
	*len = q->used[2 + 2 * (q->used_seen % q->size)];
	q->used_seen++;
	return true;
}

/* One request in slot 0 of queue qi, rung and waited for: its status
 * byte, and the used length in *used; 0x1ff when nothing came back. */
static inline unsigned bq_do(unsigned qi, uint32_t type, uint64_t sector,
			     const volatile void *data, uint32_t len, uint32_t *used)
{
	struct bq *q = &bqs[qi];
	uint32_t id = 0xffff, n = 0;

	bq_request(q, 0, type, sector, data, len);
	bq_kick(q);
	if (!bq_take(q, &id, &n)) {
		puts_dbg("FAIL no used buffer\n");
		failures++;
		return 0x1ff;
	}
	expect("used id", id, 0);
	if (used)
		*used = n;
	return bq_status[qi][0];
}

/* FNV-1a, 32 bits: what the test compares with its own. */
static inline uint32_t fnv1a(const volatile uint8_t *b, unsigned n)
{
	uint32_t h = 2166136261u;

	for (unsigned i = 0; i < n; i++)
		h = (h ^ b[i]) * 16777619u;
	return h;
}

#endif
