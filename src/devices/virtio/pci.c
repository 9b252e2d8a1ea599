// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The virtio 1.x modern PCI transport ("Virtio Over PCI Bus"): a
 * non-transitional function (vendor 0x1af4, device 0x1040 + the virtio
 * device id, revision 1) whose vendor capabilities place the common
 * configuration, ISR, device configuration and doorbells in BAR 4, plus
 * the PCI configuration access capability and MSI-X in BAR 1.
 *
 * Registers are the guest's to write, in any order; this file decides
 * what each write may do:
 *  - accesses of another width than a field's (bytes for 8-bit fields,
 *    aligned 16 and 32 bits, 64-bit fields as halves or whole) are
 *    refused, as are writes to read-only fields;
 *  - feature bits are taken until FEATURES_OK and checked then: bits not
 *    offered, or no VIRTIO_F_VERSION_1, and FEATURES_OK does not stick
 *    (the driver reads the status back and sees it), with a log line;
 *  - status bits come in order (ACKNOWLEDGE, DRIVER, FEATURES_OK,
 *    DRIVER_OK) and only a reset (0) clears them: a write that skips one
 *    or clears one is a broken driver, NEEDS_RESET;
 *  - a queue's size must be a power of two up to the device's maximum,
 *    and enabling it (after FEATURES_OK) checks its rings' alignment and
 *    that they lie in guest memory: else NEEDS_RESET;
 *  - a queue's fields are fixed while it is enabled, and a queue is never
 *    disabled but by a reset: such writes are refused.
 *
 * Doorbells: with ioeventfds, KVM signals a queue's eventfd on a write to
 * its doorbell wherever BAR 4 is mapped (re-registered when the guest
 * moves the BAR); a write that still exits here rings the same eventfd.
 */
#include <endian.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <linux/virtio_ids.h>

#include "../state.h"
#include "transport.h"

#define VIRTIO_PCI_VENDOR	0x1af4
#define VIRTIO_PCI_DEVICE_BASE	0x1040
#define VIRTIO_PCI_SUBSYSTEM	0x40	/* modern-only: 0x40 and up (spec) */

#define COMMON_FIELD(f)		offsetof(struct virtio_pci_common_cfg, f)

static uint64_t le(const void *data, unsigned len)
{
	const uint8_t *b = data;
	uint64_t v = 0;

	for (unsigned i = 0; i < len; i++)
		v |= (uint64_t)b[i] << (8 * i);
	return v;
}

static void refuse(struct virtio_dev *d, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void refuse(struct virtio_dev *d, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	atomic_fetch_add_explicit(&d->count.refused, 1, memory_order_relaxed);
	virtio_log(d, "refused: %s", msg);
}

bool virtio_has_feature(const struct virtio_dev *d, unsigned bit)
{
	return d->driver_features & (1ull << bit);
}

static struct virtio_queue *selected(struct virtio_dev *d)
{
	return d->queue_select < d->ops->nr_queues ? &d->q[d->queue_select] : NULL;
}

/* --- common configuration --- */

static uint32_t features_word(uint64_t f, uint32_t select)
{
	return select < 2 ? (uint32_t)(f >> (32 * select)) : 0;
}

/* The structure as the driver would see it now (d->lock held). */
static void common_image(struct virtio_dev *d, uint8_t *img)
{
	struct virtio_pci_common_cfg c = {
		.device_feature_select = htole32(d->dfselect),
		.device_feature = htole32(features_word(d->offered, d->dfselect)),
		.guest_feature_select = htole32(d->gfselect),
		.guest_feature = htole32(features_word(d->driver_features, d->gfselect)),
		.msix_config = htole16(atomic_load(&d->config_vector)),
		.num_queues = htole16((uint16_t)d->ops->nr_queues),
		.device_status = atomic_load(&d->status),
		.config_generation = d->config_generation,
		.queue_select = htole16(d->queue_select),
	};
	struct virtio_queue *q = selected(d);

	if (q) {
		c.queue_size = htole16(q->size);
		c.queue_msix_vector = htole16(atomic_load(&q->vector));
		c.queue_enable = htole16(atomic_load(&q->ready));
		c.queue_notify_off = htole16((uint16_t)q->index);
		c.queue_desc_lo = htole32((uint32_t)q->desc);
		c.queue_desc_hi = htole32((uint32_t)(q->desc >> 32));
		c.queue_avail_lo = htole32((uint32_t)q->driver);
		c.queue_avail_hi = htole32((uint32_t)(q->driver >> 32));
		c.queue_used_lo = htole32((uint32_t)q->device);
		c.queue_used_hi = htole32((uint32_t)(q->device >> 32));
	}
	memcpy(img, &c, VIRTIO_COMMON_LEN);
}

static uint16_t valid_vector(struct virtio_dev *d, uint16_t v)
{
	/* A vector the table does not have cannot be mapped: the driver
	 * reads NO_VECTOR back and knows (spec). */
	return v < pci_msix_vectors(&d->pci) ? v : VIRTIO_NO_VECTOR;
}

static bool features_acceptable(struct virtio_dev *d)
{
	uint64_t extra = d->driver_features & ~d->offered;

	if (extra) {
		refuse(d, "FEATURES_OK: the driver accepted feature bits not offered (0x%llx)",
		       (unsigned long long)extra);
		return false;
	}
	if (!virtio_has_feature(d, VIRTIO_F_VERSION_1)) {
		refuse(d, "FEATURES_OK: the driver did not accept VIRTIO_F_VERSION_1");
		return false;
	}
	return true;
}

/* The first status bit set out of order, or NULL. */
static const char *out_of_order(uint8_t old, uint8_t v)
{
	uint8_t add = v & ~old;

	if ((add & VIRTIO_CONFIG_S_DRIVER) && !(v & VIRTIO_CONFIG_S_ACKNOWLEDGE))
		return "DRIVER before ACKNOWLEDGE";
	if ((add & VIRTIO_CONFIG_S_FEATURES_OK) && !(v & VIRTIO_CONFIG_S_DRIVER))
		return "FEATURES_OK before DRIVER";
	/* FEATURES_OK must have stuck first: the driver reads it back. */
	if ((add & VIRTIO_CONFIG_S_DRIVER_OK) && !(old & VIRTIO_CONFIG_S_FEATURES_OK))
		return "DRIVER_OK before FEATURES_OK";
	return NULL;
}

static void status_write(struct virtio_dev *d, uint8_t v)
{
	uint8_t old = atomic_load(&d->status), add;
	const char *why;

	if (!v) {
		virtio_reset(d);
		return;
	}
	/* NEEDS_RESET is the device's bit: the driver's copy of it means
	 * nothing.  Once set, only a reset or FAILED counts. */
	v &= (uint8_t)~VIRTIO_CONFIG_S_NEEDS_RESET;
	if (old & VIRTIO_CONFIG_S_NEEDS_RESET) {
		atomic_fetch_or(&d->status, v & VIRTIO_CONFIG_S_FAILED);
		return;
	}
	if (old & ~v) {
		virtio_fail(d, "status 0x%02x clears bits of 0x%02x (only a reset, 0, may)", v, old);
		return;
	}
	why = out_of_order(old, v);
	if (why) {
		virtio_fail(d, "status 0x%02x sets %s", v, why);
		return;
	}
	add = v & ~old;
	if ((add & VIRTIO_CONFIG_S_FEATURES_OK) && !features_acceptable(d))
		add &= (uint8_t)~VIRTIO_CONFIG_S_FEATURES_OK;
	if (add & VIRTIO_CONFIG_S_FAILED) {
		atomic_store(&d->running, false);
		virtio_log(d, "the driver gave up (status FAILED)");
	}
	/* fetch_or: the I/O thread may set NEEDS_RESET meanwhile. */
	old = atomic_fetch_or(&d->status, add);
	if ((add & VIRTIO_CONFIG_S_DRIVER_OK) && !(old & VIRTIO_CONFIG_S_NEEDS_RESET) &&
	    !(v & VIRTIO_CONFIG_S_FAILED)) {
		atomic_store(&d->running, true);
		virtio_kick_all(d);
	}
}

static void queue_enable(struct virtio_dev *d, struct virtio_queue *q, uint16_t v)
{
	int r;

	if (!v) {
		refuse(d, "queue %u: queue_enable written 0 (only a reset disables a queue)",
		       q->index);
		return;
	}
	if (atomic_load(&q->ready))
		return;
	if (!(atomic_load(&d->status) & VIRTIO_CONFIG_S_FEATURES_OK)) {
		virtio_fail(d, "queue %u enabled before FEATURES_OK", q->index);
		return;
	}
	r = virtq_setup(&q->vq, d->vm, q->size, q->desc, q->driver, q->device,
			virtio_has_feature(d, VIRTIO_RING_F_EVENT_IDX),
			virtio_has_feature(d, VIRTIO_RING_F_INDIRECT_DESC));
	if (r < 0) {
		virtio_fail(d, "queue %u: %s", q->index, q->vq.error);
		return;
	}
	/* The rings before the flag the I/O thread reads. */
	atomic_store(&q->ready, true);
	if (atomic_load(&d->running))
		virtio_kick_all(d);
}

static void queue_size(struct virtio_dev *d, struct virtio_queue *q, uint16_t v)
{
	if (!v || (v & (v - 1)) || v > d->ops->queue_max) {
		virtio_fail(d, "queue %u: size %u is not a power of 2 from 1 to %u", q->index, v,
			    d->ops->queue_max);
		return;
	}
	q->size = v;
}

/* A write to one of a queue's 64-bit addresses (or half of one). */
static void queue_addr(uint64_t *field, unsigned half, unsigned len, uint64_t v)
{
	if (len == 8)
		*field = v;
	else if (half)
		*field = (*field & 0xffffffffull) | v << 32;
	else
		*field = (*field & ~0xffffffffull) | v;
}

/* The field at off, for log lines (the spec's names). */
static const char *field_name(unsigned off)
{
	static const char *const names[VIRTIO_COMMON_LEN] = {
		[0x00] = "device_feature_select", [0x04] = "device_feature",
		[0x08] = "driver_feature_select", [0x0c] = "driver_feature",
		[0x10] = "config_msix_vector", [0x12] = "num_queues",
		[0x14] = "device_status", [0x15] = "config_generation",
		[0x16] = "queue_select", [0x18] = "queue_size", [0x1a] = "queue_msix_vector",
		[0x1c] = "queue_enable", [0x1e] = "queue_notify_off",
		[0x20] = "queue_desc", [0x24] = "queue_desc", [0x28] = "queue_driver",
		[0x2c] = "queue_driver", [0x30] = "queue_device", [0x34] = "queue_device",
	};

	return off < VIRTIO_COMMON_LEN && names[off] ? names[off] : "no field";
}

/* Whether (off, len) is a whole field of the common configuration, or a
 * half of a 64-bit one. */
static bool natural(unsigned off, unsigned len)
{
	if (off >= COMMON_FIELD(queue_desc_lo) && off < VIRTIO_COMMON_LEN)
		return (len == 4 && off % 4 == 0) || (len == 8 && off % 8 == 0);
	if (off < COMMON_FIELD(msix_config))
		return len == 4 && off % 4 == 0;
	if (off == COMMON_FIELD(device_status) || off == COMMON_FIELD(config_generation))
		return len == 1;
	return off < VIRTIO_COMMON_LEN && len == 2 && off % 2 == 0;
}

static void common_write(struct virtio_dev *d, unsigned off, const void *data, unsigned len)
{
	struct virtio_queue *q = selected(d);
	uint64_t v = le(data, len);

	if (!natural(off, len)) {
		refuse(d, "a %u-byte write at offset 0x%x of the common configuration (%s)", len, off,
		       field_name(off & ~1u));
		return;
	}
	switch (off) {
	case COMMON_FIELD(device_feature_select):
		d->dfselect = (uint32_t)v;
		return;
	case COMMON_FIELD(guest_feature_select):
		d->gfselect = (uint32_t)v;
		return;
	case COMMON_FIELD(guest_feature):
		if (atomic_load(&d->status) & VIRTIO_CONFIG_S_FEATURES_OK)
			refuse(d, "driver_feature written after FEATURES_OK");
		else if (d->gfselect < 2)
			d->driver_features = (d->driver_features &
					      ~(0xffffffffull << (32 * d->gfselect))) |
					     v << (32 * d->gfselect);
		return;
	case COMMON_FIELD(msix_config):
		atomic_store(&d->config_vector, valid_vector(d, (uint16_t)v));
		return;
	case COMMON_FIELD(device_status):
		status_write(d, (uint8_t)v);
		return;
	case COMMON_FIELD(queue_select):
		d->queue_select = (uint16_t)v;
		return;
	}
	if (off < COMMON_FIELD(queue_select) || off == COMMON_FIELD(queue_notify_off)) {
		refuse(d, "a write to %s, which is read-only", field_name(off));
		return;
	}
	if (!q)
		return;		/* no such queue: nothing to configure */
	if (off == COMMON_FIELD(queue_enable)) {
		queue_enable(d, q, (uint16_t)v);
		return;
	}
	if (atomic_load(&q->ready)) {
		refuse(d, "queue %u: %s written while the queue is enabled", q->index,
		       field_name(off));
		return;
	}
	switch (off) {
	case COMMON_FIELD(queue_size):
		queue_size(d, q, (uint16_t)v);
		break;
	case COMMON_FIELD(queue_msix_vector):
		atomic_store(&q->vector, valid_vector(d, (uint16_t)v));
		break;
	case COMMON_FIELD(queue_desc_lo):
	case COMMON_FIELD(queue_desc_hi):
		queue_addr(&q->desc, off == COMMON_FIELD(queue_desc_hi), len, v);
		break;
	case COMMON_FIELD(queue_avail_lo):
	case COMMON_FIELD(queue_avail_hi):
		queue_addr(&q->driver, off == COMMON_FIELD(queue_avail_hi), len, v);
		break;
	default:
		queue_addr(&q->device, off == COMMON_FIELD(queue_used_hi), len, v);
	}
}

/* --- BAR 4 --- */

static void bar_read(void *opaque, uint64_t off, void *data, unsigned len)
{
	struct virtio_dev *d = opaque;
	uint8_t img[VIRTIO_COMMON_LEN];

	memset(data, 0, len);
	if (off >= VIRTIO_BAR_SIZE || len > VIRTIO_BAR_SIZE - off)
		return;
	if (off < VIRTIO_ISR_OFF) {
		if (off + len > VIRTIO_COMMON_LEN)
			return;
		pthread_mutex_lock(&d->lock);
		common_image(d, img);
		pthread_mutex_unlock(&d->lock);
		memcpy(data, img + off, len);
	} else if (off == VIRTIO_ISR_OFF) {
		*(uint8_t *)data = virtio_isr_read(d);
	} else if (off >= VIRTIO_DEVICE_OFF && off < VIRTIO_NOTIFY_OFF) {
		off -= VIRTIO_DEVICE_OFF;
		if (!d->ops->config_read || off + len > d->ops->config_size)
			return;
		pthread_mutex_lock(&d->lock);
		d->ops->config_read(d, (unsigned)off, data, len);
		pthread_mutex_unlock(&d->lock);
	}
}

static void bar_write(void *opaque, uint64_t off, const void *data, unsigned len)
{
	struct virtio_dev *d = opaque;

	if (off >= VIRTIO_BAR_SIZE || len > VIRTIO_BAR_SIZE - off)
		return;
	if (off >= VIRTIO_NOTIFY_OFF) {
		/* The doorbell, where KVM did not catch it. */
		off -= VIRTIO_NOTIFY_OFF;
		if (off % VIRTIO_NOTIFY_MULT == 0 && off / VIRTIO_NOTIFY_MULT < d->ops->nr_queues)
			iothread_kick(d->io, d->q[off / VIRTIO_NOTIFY_MULT].kick_fd);
		return;
	}
	pthread_mutex_lock(&d->lock);
	if (off < VIRTIO_ISR_OFF)
		common_write(d, (unsigned)off, data, len);
	else if (off >= VIRTIO_DEVICE_OFF && d->ops->config_write &&
		 off - VIRTIO_DEVICE_OFF + len <= d->ops->config_size)
		d->ops->config_write(d, (unsigned)(off - VIRTIO_DEVICE_OFF), data, len);
	pthread_mutex_unlock(&d->lock);
}

static const struct io_ops bar_ops = { .read = bar_read, .write = bar_write };

/* --- PCI hooks --- */

/* KVM's doorbells follow BAR 4 (the bus lock held). */
static void bar_map(struct pci_device *pci, unsigned bar, uint64_t addr)
{
	struct virtio_dev *d = pci->opaque;

	if (bar != VIRTIO_BAR || !d->vm->caps.ioeventfd)
		return;
	pthread_mutex_lock(&d->lock);
	for (unsigned i = 0; i < d->ops->nr_queues; i++) {
		struct virtio_queue *q = &d->q[i];
		uint64_t gpa = addr + VIRTIO_NOTIFY_OFF + VIRTIO_NOTIFY_MULT * i;
		int r;

		if (q->ioeventfd_gpa)
			vm_ioeventfd(d->vm, q->ioeventfd_gpa, q->kick_fd, false);
		q->ioeventfd_gpa = 0;
		if (addr == PCI_BAR_UNMAPPED)
			continue;
		r = vm_ioeventfd(d->vm, gpa, q->kick_fd, true);
		if (r < 0)
			virtio_log(d, "queue %u: no ioeventfd at 0x%llx (%s): its doorbell exits to the VMM",
				   i, (unsigned long long)gpa, strerror(-r));
		else
			q->ioeventfd_gpa = gpa;
	}
	pthread_mutex_unlock(&d->lock);
}

/* VIRTIO_PCI_CAP_PCI_CFG: pci_cfg_data is a window into BAR 4 at the
 * cap's offset, of its length (1, 2 or 4, aligned). */
static bool cfg_window(struct virtio_dev *d, unsigned off, unsigned len, uint32_t *boff,
		       unsigned *blen)
{
	unsigned c = (unsigned)d->pci_cfg_cap;
	const uint8_t *cfg = d->pci.cfg;
	unsigned data = c + offsetof(struct virtio_pci_cfg_cap, pci_cfg_data);

	if (off >= data + 4 || data >= off + len)
		return false;
	*boff = (uint32_t)le(cfg + c + offsetof(struct virtio_pci_cap, offset), 4);
	*blen = (unsigned)le(cfg + c + offsetof(struct virtio_pci_cap, length), 4);
	return cfg[c + offsetof(struct virtio_pci_cap, bar)] == VIRTIO_BAR &&
	       (*blen == 1 || *blen == 2 || *blen == 4) && *boff % *blen == 0 &&
	       *boff < VIRTIO_BAR_SIZE;
}

/* A configuration access that touched pci_cfg_data: the BAR access it
 * stands for (the bus lock held). */
static void cfg_window_access(struct pci_device *pci, unsigned off, unsigned len, bool write)
{
	struct virtio_dev *d = pci->opaque;
	uint8_t *data = pci->cfg + d->pci_cfg_cap + offsetof(struct virtio_pci_cfg_cap, pci_cfg_data);
	unsigned blen;
	uint32_t boff;

	if (!cfg_window(d, off, len, &boff, &blen))
		return;
	if (write)
		bar_write(d, boff, data, blen);
	else
		bar_read(d, boff, data, blen);
}

static void config_read(struct pci_device *pci, unsigned off, unsigned len)
{
	cfg_window_access(pci, off, len, false);
}

static void config_write(struct pci_device *pci, unsigned off, unsigned len)
{
	cfg_window_access(pci, off, len, true);
}

static const struct pci_device_ops pci_ops = {
	.config_read = config_read, .config_write = config_write, .bar_map = bar_map,
};

/* --- set-up --- */

/* A virtio structure capability (struct virtio_pci_cap) for BAR 4. */
static int add_cap(struct virtio_dev *d, uint8_t type, uint32_t off, uint32_t len,
		   unsigned cap_len)
{
	int c = pci_cap_add(&d->pci, PCI_CAP_ID_VNDR, cap_len);
	uint8_t *cfg = d->pci.cfg;

	if (c < 0)
		return c;
	cfg[c + offsetof(struct virtio_pci_cap, cap_len)] = (uint8_t)cap_len;
	cfg[c + offsetof(struct virtio_pci_cap, cfg_type)] = type;
	cfg[c + offsetof(struct virtio_pci_cap, bar)] = VIRTIO_BAR;
	for (unsigned i = 0; i < 4; i++) {
		cfg[c + offsetof(struct virtio_pci_cap, offset) + i] = (uint8_t)(off >> (8 * i));
		cfg[c + offsetof(struct virtio_pci_cap, length) + i] = (uint8_t)(len >> (8 * i));
	}
	return c;
}

static int add_caps(struct virtio_dev *d)
{
	const struct virtio_dev_ops *ops = d->ops;
	uint8_t *wmask = d->pci.wmask;
	int c;

	c = add_cap(d, VIRTIO_PCI_CAP_COMMON_CFG, VIRTIO_COMMON_OFF, VIRTIO_COMMON_LEN,
		    sizeof(struct virtio_pci_cap));
	if (c >= 0)
		c = add_cap(d, VIRTIO_PCI_CAP_ISR_CFG, VIRTIO_ISR_OFF, 1,
			    sizeof(struct virtio_pci_cap));
	if (c >= 0 && ops->config_size)
		c = add_cap(d, VIRTIO_PCI_CAP_DEVICE_CFG, VIRTIO_DEVICE_OFF, ops->config_size,
			    sizeof(struct virtio_pci_cap));
	if (c >= 0)
		c = add_cap(d, VIRTIO_PCI_CAP_NOTIFY_CFG, VIRTIO_NOTIFY_OFF,
			    VIRTIO_NOTIFY_MULT * ops->nr_queues,
			    sizeof(struct virtio_pci_notify_cap));
	if (c >= 0)
		d->pci.cfg[c + offsetof(struct virtio_pci_notify_cap, notify_off_multiplier)] =
			VIRTIO_NOTIFY_MULT;
	/* The window: BAR, offset, length and data are the driver's. */
	if (c >= 0)
		c = add_cap(d, VIRTIO_PCI_CAP_PCI_CFG, 0, 0, sizeof(struct virtio_pci_cfg_cap));
	if (c < 0)
		return c;
	d->pci_cfg_cap = c;
	wmask[c + offsetof(struct virtio_pci_cap, bar)] = 0xff;
	memset(wmask + c + offsetof(struct virtio_pci_cap, offset), 0xff, 8);
	memset(wmask + c + offsetof(struct virtio_pci_cfg_cap, pci_cfg_data), 0xff, 4);
	return 0;
}

void virtio_reset(struct virtio_dev *d)
{
	iothread_pause(d->io);
	atomic_store(&d->running, false);
	for (unsigned i = 0; i < d->ops->nr_queues; i++) {
		struct virtio_queue *q = &d->q[i];

		atomic_store(&q->ready, false);
		atomic_store(&q->vector, VIRTIO_NO_VECTOR);
		q->pushed = false;
		memset(&q->vq, 0, sizeof(q->vq));
		q->size = d->ops->queue_max;
		q->desc = q->driver = q->device = 0;
	}
	d->driver_features = 0;
	d->dfselect = d->gfselect = 0;
	d->queue_select = 0;
	atomic_store(&d->config_vector, VIRTIO_NO_VECTOR);
	virtio_isr_read(d);
	if (d->ops->reset)
		d->ops->reset(d);
	atomic_store(&d->status, 0);
	iothread_resume(d->io);
}

static int setup(struct pci_bus *bus, struct virtio_dev *d)
{
	const struct virtio_dev_ops *ops = d->ops;
	struct pci_id id = {
		.vendor = VIRTIO_PCI_VENDOR, .device = VIRTIO_PCI_DEVICE_BASE + ops->device_id,
		.subsystem_vendor = VIRTIO_PCI_VENDOR, .subsystem = VIRTIO_PCI_SUBSYSTEM,
		.revision = 1, .class = ops->pci_class, .int_pin = 1,
	};
	int r;

	r = pci_device_add(bus, &d->pci, ops->name, &id, &pci_ops, d);
	if (r < 0)
		return r;
	/* Without a way to send MSIs the function has no MSI-X: INTx only. */
	r = pci_msix_init(&d->pci, VIRTIO_MSIX_BAR, 1 + ops->nr_queues);
	if (r < 0 && r != -ENOTSUP)
		return r;
	r = pci_bar_add(&d->pci, VIRTIO_BAR, VIRTIO_BAR_SIZE, true, &bar_ops, d);
	if (r >= 0)
		r = add_caps(d);
	if (r < 0)
		return r;
	/* Where KVM has ioeventfds, the doorbells reach a thread of the
	 * device's own; otherwise its work runs on the ringing vCPU, unless
	 * the device type adds a poll source of its own (io_setup). */
	r = iothread_create(&d->io, d->pci.name, d->vm->caps.ioeventfd);
	for (unsigned i = 0; r >= 0 && i < ops->nr_queues; i++) {
		struct virtio_queue *q = &d->q[i];

		q->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (q->kick_fd < 0)
			return -errno;
		r = iothread_add(d->io, q->kick_fd, virtio_queue_kicked, q);
	}
	if (r >= 0 && ops->io_setup)
		r = ops->io_setup(d, d->io);
	if (r < 0)
		return r;
	virtio_reset(d);
	r = iothread_start(d->io);
	if (r < 0)
		return r;
	pci_device_start(&d->pci);
	d->vmdev = (struct vm_device){ .name = d->pci.name, .opaque = d,
				       .ops = ops->save_ref ? &virtio_vm_device_ref_ops :
					      &virtio_vm_device_ops };
	vm_add_device(d->vm, &d->vmdev);
	return 0;
}

int virtio_pci_create(struct pci_bus *bus, const struct virtio_dev_ops *ops, void *priv,
		      struct virtio_dev **out)
{
	struct virtio_dev *d;
	int r;

	if (ops->nr_queues < 1 || ops->nr_queues > VIRTIO_QUEUES_MAX || !ops->queue_max ||
	    (ops->queue_max & (ops->queue_max - 1)) || ops->queue_max > VIRTQ_MAX_SIZE)
		return -EINVAL;
	d = calloc(1, sizeof(*d));
	if (d)
		d->elem = malloc(sizeof(*d->elem));
	if (!d || !d->elem) {
		if (d)
			free(d);
		return -ENOMEM;
	}
	d->ops = ops;
	d->priv = priv;
	d->vm = pci_bus_vm(bus);
	d->offered = ops->features | 1ull << VIRTIO_F_VERSION_1 |
		     1ull << VIRTIO_RING_F_INDIRECT_DESC | 1ull << VIRTIO_RING_F_EVENT_IDX;
	pthread_mutex_init(&d->lock, NULL);
	pthread_mutex_init(&d->isr_lock, NULL);
	for (unsigned i = 0; i < VIRTIO_QUEUES_MAX; i++) {
		d->q[i].dev = d;
		d->q[i].index = i;
		d->q[i].kick_fd = -1;
	}
	r = setup(bus, d);
	if (r < 0) {
		virtio_pci_destroy(d);
		return r;
	}
	*out = d;
	return 0;
}

void virtio_pci_destroy(struct virtio_dev *d)
{
	if (!d)
		return;
	/* The thread first: nothing of the device runs after this. */
	iothread_destroy(d->io);
	vm_remove_device(d->vm, &d->vmdev);
	pci_device_remove(&d->pci);
	for (unsigned i = 0; i < VIRTIO_QUEUES_MAX; i++)
		if (d->q[i].kick_fd >= 0)
			close(d->q[i].kick_fd);
	pci_msix_destroy(&d->pci);
	pthread_mutex_destroy(&d->isr_lock);
	pthread_mutex_destroy(&d->lock);
	free(d->elem);
	free(d);
}
