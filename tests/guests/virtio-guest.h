/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * What the PCI and virtio micro-guests (dev-pci.c, dev-virtio-*.c) share:
 * configuration access both ways (type 1 through 0xcf8/0xcfc, and
 * MMCONFIG), BAR sizing, capability lists, MSI-X programming, and a small
 * virtio 1.x modern PCI driver with one split queue.  Written from the
 * specs, the way a guest sees the device: nothing here comes from vsrv.
 */
#ifndef VIRTIO_GUEST_H
#define VIRTIO_GUEST_H

#include "dev-guest.h"

#define ECAM_BASE		0xe0000000ul
#define VIRTIO_VENDOR		0x1af4
#define VIRTIO_RNG_DEVICE	0x1044

/* Virtio status bits and features. */
#define S_ACKNOWLEDGE		0x01
#define S_DRIVER		0x02
#define S_DRIVER_OK		0x04
#define S_FEATURES_OK		0x08
#define S_NEEDS_RESET		0x40
#define S_FAILED		0x80
#define F_INDIRECT_DESC		28
#define F_EVENT_IDX		29
#define F_VERSION_1		32
#define NO_VECTOR		0xffff

/* The common configuration's offsets. */
#define C_DFSELECT	0x00
#define C_DF		0x04
#define C_GFSELECT	0x08
#define C_GF		0x0c
#define C_MSIX		0x10
#define C_NUMQ		0x12
#define C_STATUS	0x14
#define C_QSELECT	0x16
#define C_QSIZE		0x18
#define C_QMSIX		0x1a
#define C_QENABLE	0x1c
#define C_QNOFF		0x1e
#define C_QDESC		0x20
#define C_QAVAIL	0x28
#define C_QUSED		0x30

#define D_NEXT		1
#define D_WRITE		2
#define D_INDIRECT	4

/* Interrupt vectors the guests use. */
#define VEC_CONFIG	0x40
#define VEC_QUEUE	0x41
#define VEC_INTX	0x42

struct vdesc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags, next;
};

/* --- MMIO of each width --- */

static inline uint8_t mmio_read8(uint64_t a)
{
	return *(volatile uint8_t *)a;
}

static inline uint16_t mmio_read16(uint64_t a)
{
	return *(volatile uint16_t *)a;
}

static inline void mmio_write8(uint64_t a, uint8_t v)
{
	*(volatile uint8_t *)a = v;
}

static inline void mmio_write16(uint64_t a, uint16_t v)
{
	*(volatile uint16_t *)a = v;
}

static inline uint64_t mmio_read64(uint64_t a)
{
	return *(volatile uint64_t *)a;
}

static inline void mmio_write64(uint64_t a, uint64_t v)
{
	*(volatile uint64_t *)a = v;
}

/* --- configuration space --- */

static inline uint32_t cfg_addr(unsigned slot, unsigned reg)
{
	return 0x80000000u | slot << 11 | (reg & 0xfc);
}

static inline uint32_t cfg_read32(unsigned slot, unsigned reg)
{
	outl(0xcf8, cfg_addr(slot, reg));
	return inl(0xcfc);
}

static inline uint16_t cfg_read16(unsigned slot, unsigned reg)
{
	outl(0xcf8, cfg_addr(slot, reg));
	return inw((uint16_t)(0xcfc + (reg & 2)));
}

static inline uint8_t cfg_read8(unsigned slot, unsigned reg)
{
	outl(0xcf8, cfg_addr(slot, reg));
	return inb((uint16_t)(0xcfc + (reg & 3)));
}

static inline void cfg_write32(unsigned slot, unsigned reg, uint32_t v)
{
	outl(0xcf8, cfg_addr(slot, reg));
	outl(0xcfc, v);
}

static inline void cfg_write16(unsigned slot, unsigned reg, uint16_t v)
{
	outl(0xcf8, cfg_addr(slot, reg));
	outw((uint16_t)(0xcfc + (reg & 2)), v);
}

static inline void cfg_write8(unsigned slot, unsigned reg, uint8_t v)
{
	outl(0xcf8, cfg_addr(slot, reg));
	outb((uint16_t)(0xcfc + (reg & 3)), v);
}

static inline uint64_t ecam(unsigned slot, unsigned reg)
{
	return ECAM_BASE + ((uint64_t)slot << 15) + reg;
}

/* The capability of type `id` after offset `from` (0: the first), or 0. */
static inline unsigned cap_find(unsigned slot, uint8_t id, unsigned from)
{
	unsigned off = from ? cfg_read8(slot, from + 1) : cfg_read8(slot, 0x34);

	for (int n = 0; off && n < 48; n++) {
		if (cfg_read8(slot, off) == id)
			return off;
		off = cfg_read8(slot, off + 1);
	}
	return 0;
}

/* A BAR's size by the sizing protocol: all ones written, the address
 * bits that stick read back; restored after. */
static inline uint64_t bar_size(unsigned slot, unsigned bar)
{
	unsigned reg = 0x10 + 4 * bar;
	uint32_t lo = cfg_read32(slot, reg), hi = 0, slo, shi = 0;
	bool mem64 = (lo & 6) == 4;
	uint64_t mask;

	cfg_write32(slot, reg, 0xffffffff);
	slo = cfg_read32(slot, reg);
	if (mem64) {
		hi = cfg_read32(slot, reg + 4);
		cfg_write32(slot, reg + 4, 0xffffffff);
		shi = cfg_read32(slot, reg + 4);
		cfg_write32(slot, reg + 4, hi);
	}
	cfg_write32(slot, reg, lo);
	if (!(slo & ~0xfu))
		return 0;	/* no BAR */
	/* A 32-bit BAR's address bits above 31 are all "sized". */
	mask = ((uint64_t)(mem64 ? shi : 0xffffffff) << 32) | (slo & ~0xfu);
	return ~mask + 1;
}

static inline uint64_t bar_addr(unsigned slot, unsigned bar)
{
	uint32_t lo = cfg_read32(slot, 0x10 + 4 * bar);

	return (lo & ~0xful) | ((lo & 6) == 4 ? (uint64_t)cfg_read32(slot, 0x14 + 4 * bar) << 32 : 0);
}

/* The slot of the first function with this vendor and device, or -1. */
static inline int pci_find(uint16_t vendor, uint16_t device)
{
	for (unsigned s = 0; s < 32; s++)
		if (cfg_read32(s, 0) == ((uint32_t)device << 16 | vendor))
			return (int)s;
	return -1;
}

/* --- interrupts --- */

/* IOAPIC pin to vector, level-triggered, active high (PCI INTx here). */
static inline void ioapic_route_level(unsigned pin, unsigned vector)
{
	mmio_write32(IOAPIC, 0x10 + 2 * pin);
	mmio_write32(IOAPIC + 0x10, vector | 1u << 15);
	mmio_write32(IOAPIC, 0x11 + 2 * pin);
	mmio_write32(IOAPIC + 0x10, 0);
}

/* MSI-X interrupts: configuration changes and the queue, counted. */
static volatile unsigned n_config, n_queue;

__attribute__((interrupt, unused)) static void on_config(struct iframe *f)
{
	n_config++;
	lapic_eoi();
}

__attribute__((interrupt, unused)) static void on_queue(struct iframe *f)
{
	n_queue++;
	lapic_eoi();
}

/* --- the virtio device --- */

struct vdev {
	unsigned slot;
	uint64_t common, isr, notify, device;
	uint32_t notify_mult;
	unsigned msix_cap, pci_cfg_cap;
	uint64_t msix_table;
	uint16_t qsize;
	volatile struct vdesc *desc;
	volatile uint16_t *avail;	/* flags, idx, ring[], used_event */
	volatile uint32_t *used;	/* flags|idx, {id, len}[], avail_event */
	uint16_t avail_idx, used_seen;
};

#define QSIZE_MAX	256
static struct vdesc ring_desc[QSIZE_MAX] __attribute__((aligned(4096)));
static uint16_t ring_avail[3 + QSIZE_MAX] __attribute__((aligned(4096)));
static uint32_t ring_used[2 + 2 * QSIZE_MAX] __attribute__((aligned(4096)));

static inline uint64_t cap_addr(struct vdev *v, unsigned cap)
{
	unsigned bar = cfg_read8(v->slot, cap + 4);

	return bar_addr(v->slot, bar) + cfg_read32(v->slot, cap + 8);
}

/* Finds the virtio structures through the vendor capabilities; false
 * if one the driver needs is missing. */
static inline bool vdev_probe(struct vdev *v, unsigned slot)
{
	v->slot = slot;
	v->common = v->isr = v->notify = v->device = 0;
	v->pci_cfg_cap = 0;
	for (unsigned c = cap_find(slot, 0x09, 0); c; c = cap_find(slot, 0x09, c)) {
		switch (cfg_read8(slot, c + 3)) {
		case 1:
			v->common = cap_addr(v, c);
			break;
		case 2:
			v->notify = cap_addr(v, c);
			v->notify_mult = cfg_read32(slot, c + 16);
			break;
		case 3:
			v->isr = cap_addr(v, c);
			break;
		case 4:
			v->device = cap_addr(v, c);
			break;
		case 5:
			v->pci_cfg_cap = c;
			break;
		}
	}
	v->msix_cap = cap_find(slot, 0x11, 0);
	if (v->msix_cap)
		v->msix_table = bar_addr(slot, cfg_read32(slot, v->msix_cap + 4) & 7) +
				(cfg_read32(slot, v->msix_cap + 4) & ~7u);
	return v->common && v->notify && v->isr;
}

static inline uint8_t vdev_status(struct vdev *v)
{
	return mmio_read8(v->common + C_STATUS);
}

static inline void vdev_set_status(struct vdev *v, uint8_t s)
{
	mmio_write8(v->common + C_STATUS, s);
}

static inline void vdev_reset(struct vdev *v)
{
	vdev_set_status(v, 0);
	while (vdev_status(v))
		;
}

static inline uint64_t vdev_features(struct vdev *v)
{
	mmio_write32(v->common + C_DFSELECT, 0);
	uint32_t lo = mmio_read32(v->common + C_DF);

	mmio_write32(v->common + C_DFSELECT, 1);
	return ((uint64_t)mmio_read32(v->common + C_DF) << 32) | lo;
}

static inline void vdev_set_features(struct vdev *v, uint64_t f)
{
	mmio_write32(v->common + C_GFSELECT, 0);
	mmio_write32(v->common + C_GF, (uint32_t)f);
	mmio_write32(v->common + C_GFSELECT, 1);
	mmio_write32(v->common + C_GF, (uint32_t)(f >> 32));
}

/* MSI-X entry `i` to `vector` on the boot CPU, unmasked. */
static inline void msix_set(struct vdev *v, unsigned i, unsigned vector)
{
	uint64_t e = v->msix_table + 16 * i;

	mmio_write32(e + 0, 0xfee00000u);
	mmio_write32(e + 4, 0);
	mmio_write32(e + 8, vector);
	mmio_write32(e + 12, 0);
}

static inline void msix_enable(struct vdev *v, bool on)
{
	uint16_t ctl = cfg_read16(v->slot, v->msix_cap + 2);

	cfg_write16(v->slot, v->msix_cap + 2,
		    (uint16_t)(on ? (ctl | 0x8000) & ~0x4000 : ctl & ~0x8000));
}

/* Queue 0 with `size` entries on the static rings, vector `vec`. */
static inline void vdev_queue(struct vdev *v, uint16_t size, uint16_t vec)
{
	for (unsigned i = 0; i < sizeof(ring_desc) / 8; i++)
		((volatile uint64_t *)ring_desc)[i] = 0;
	for (unsigned i = 0; i < 3 + QSIZE_MAX; i++)
		ring_avail[i] = 0;
	for (unsigned i = 0; i < 2 + 2 * QSIZE_MAX; i++)
		ring_used[i] = 0;
	v->qsize = size;
	v->desc = ring_desc;
	v->avail = ring_avail;
	v->used = ring_used;
	v->avail_idx = v->used_seen = 0;
	mmio_write16(v->common + C_QSELECT, 0);
	mmio_write16(v->common + C_QSIZE, size);
	mmio_write16(v->common + C_QMSIX, vec);
	mmio_write64(v->common + C_QDESC, (uint64_t)ring_desc);
	mmio_write32(v->common + C_QAVAIL, (uint32_t)(uint64_t)ring_avail);
	mmio_write32(v->common + C_QAVAIL + 4, 0);
	mmio_write32(v->common + C_QUSED, (uint32_t)(uint64_t)ring_used);
	mmio_write32(v->common + C_QUSED + 4, 0);
}

static inline void vdev_kick(struct vdev *v)
{
	mmio_write16(v->notify + v->notify_mult * mmio_read16(v->common + C_QNOFF), 0);
}

/* Makes the chain at `head` available and rings. */
static inline void vdev_submit(struct vdev *v, uint16_t head)
{
	v->avail[2 + v->avail_idx % v->qsize] = head;
	__asm__ volatile("" ::: "memory");
	v->avail[1] = ++v->avail_idx;
	__asm__ volatile("mfence" ::: "memory");
	vdev_kick(v);
}

static inline uint16_t used_idx(struct vdev *v)
{
	return (uint16_t)(v->used[0] >> 16);
}

/* The next used entry (waits for it): its id and length. */
static inline void vdev_take(struct vdev *v, uint32_t *id, uint32_t *len)
{
	while (used_idx(v) == v->used_seen)
		__asm__ volatile("pause" ::: "memory");
	*id = v->used[1 + 2 * (v->used_seen % v->qsize)];
	*len = v->used[2 + 2 * (v->used_seen % v->qsize)];
	v->used_seen++;
}

/* The whole initialisation, the spec's order: reset, ACKNOWLEDGE, DRIVER,
 * features, FEATURES_OK (read back), MSI-X vectors, the queue,
 * DRIVER_OK.  vectors: whether to use MSI-X (config 0, queue 1). */
static inline bool vdev_init(struct vdev *v, uint64_t features, uint16_t qsize, bool vectors)
{
	vdev_reset(v);
	vdev_set_status(v, S_ACKNOWLEDGE);
	vdev_set_status(v, S_ACKNOWLEDGE | S_DRIVER);
	vdev_set_features(v, features & vdev_features(v));
	vdev_set_status(v, S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK);
	if (!(vdev_status(v) & S_FEATURES_OK))
		return false;
	if (vectors) {
		msix_set(v, 0, VEC_CONFIG);
		msix_set(v, 1, VEC_QUEUE);
		msix_enable(v, true);
		mmio_write16(v->common + C_MSIX, 0);
	}
	vdev_queue(v, qsize, vectors ? 1 : NO_VECTOR);
	mmio_write16(v->common + C_QENABLE, 1);
	vdev_set_status(v, S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
	return !(vdev_status(v) & S_NEEDS_RESET);
}

/* Whether a buffer holds anything but zeros. */
static inline bool nonzero(const volatile uint8_t *b, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (b[i])
			return true;
	return false;
}

#endif
