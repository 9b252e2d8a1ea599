// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * A virtio device's saved state: quiesce (the I/O thread paused, then the
 * device type's in-flight work finished), save, load, resume.
 *
 * The state is the PCI function's (configuration space, MSI-X), then the
 * transport's (status, features, selectors, vectors, each queue's rings
 * and indices), then the device type's.  Loading puts the device back to
 * power-on and then checks the saved state as the registers check a
 * guest's writes: a queue's size, its rings' place in guest memory,
 * features offered, vectors that exist.  A state that fails leaves the
 * device reset.
 */
#include <errno.h>

#include "../state.h"
#include "transport.h"

static int quiesce(void *opaque)
{
	struct virtio_dev *d = opaque;
	int r;

	iothread_pause(d->io);
	r = d->ops->quiesce ? d->ops->quiesce(d) : 0;
	if (r < 0)
		iothread_resume(d->io);
	return r;
}

static void resume(void *opaque)
{
	struct virtio_dev *d = opaque;

	if (d->ops->resume)
		d->ops->resume(d);
	iothread_resume(d->io);
}

static int save(void *opaque, struct dev_state *s)
{
	struct virtio_dev *d = opaque;
	int r = pci_device_save(&d->pci, s);

	if (r < 0)
		return r;
	pthread_mutex_lock(&d->lock);
	state_put_section(s, "VIRT", 1);
	state_put_u8(s, atomic_load(&d->status));
	state_put_u64(s, d->driver_features);
	state_put_u32(s, d->dfselect);
	state_put_u32(s, d->gfselect);
	state_put_u16(s, d->queue_select);
	state_put_u16(s, atomic_load(&d->config_vector));
	state_put_u8(s, d->config_generation);
	pthread_mutex_lock(&d->isr_lock);
	state_put_u8(s, d->isr);
	pthread_mutex_unlock(&d->isr_lock);
	state_put_u32(s, d->ops->nr_queues);
	for (unsigned i = 0; i < d->ops->nr_queues; i++) {
		struct virtio_queue *q = &d->q[i];

		state_put_u16(s, q->size);
		state_put_u64(s, q->desc);
		state_put_u64(s, q->driver);
		state_put_u64(s, q->device);
		state_put_u16(s, atomic_load(&q->vector));
		state_put_u8(s, atomic_load(&q->ready));
		state_put_u16(s, q->vq.last_avail);
		state_put_u16(s, q->vq.used_idx);
		state_put_u16(s, q->vq.signalled_used);
		state_put_u8(s, q->vq.signalled_valid);
	}
	r = d->ops->save ? d->ops->save(d, s) : 0;
	pthread_mutex_unlock(&d->lock);
	return r < 0 ? r : s->err;
}

static uint16_t load_vector(struct virtio_dev *d, uint16_t v, int *r)
{
	if (v != VIRTIO_NO_VECTOR && v >= pci_msix_vectors(&d->pci))
		*r = -EINVAL;
	return v;
}

static int load_queue(struct virtio_dev *d, struct virtio_queue *q, struct dev_state *s)
{
	uint16_t last_avail, used_idx, signalled;
	bool ready, signalled_valid;
	int r = 0;

	q->size = state_get_u16(s);
	q->desc = state_get_u64(s);
	q->driver = state_get_u64(s);
	q->device = state_get_u64(s);
	atomic_store(&q->vector, load_vector(d, state_get_u16(s), &r));
	ready = state_get_u8(s);
	last_avail = state_get_u16(s);
	used_idx = state_get_u16(s);
	signalled = state_get_u16(s);
	signalled_valid = state_get_u8(s);
	if (s->err || r < 0 || !q->size || (q->size & (q->size - 1)) ||
	    q->size > d->ops->queue_max)
		return s->err ? s->err : -EINVAL;
	if (!ready)
		return 0;
	r = virtq_setup(&q->vq, d->vm, q->size, q->desc, q->driver, q->device,
			virtio_has_feature(d, VIRTIO_RING_F_EVENT_IDX),
			virtio_has_feature(d, VIRTIO_RING_F_INDIRECT_DESC));
	if (r < 0)
		return r;
	q->vq.last_avail = last_avail;
	q->vq.used_idx = used_idx;
	q->vq.signalled_used = signalled;
	q->vq.signalled_valid = signalled_valid;
	atomic_store(&q->ready, true);
	return 0;
}

/* The transport's section (d->lock held, the device reset). */
static int load_transport(struct virtio_dev *d, struct dev_state *s, uint8_t *status)
{
	int r = 0;

	if (!state_get_section(s, "VIRT", 1))
		return s->err;
	*status = state_get_u8(s);
	d->driver_features = state_get_u64(s);
	d->dfselect = state_get_u32(s);
	d->gfselect = state_get_u32(s);
	d->queue_select = state_get_u16(s);
	atomic_store(&d->config_vector, load_vector(d, state_get_u16(s), &r));
	d->config_generation = state_get_u8(s);
	pthread_mutex_lock(&d->isr_lock);
	d->isr = state_get_u8(s) & (VIRTIO_ISR_QUEUE | VIRTIO_ISR_CONFIG);
	pthread_mutex_unlock(&d->isr_lock);
	if (state_get_u32(s) != d->ops->nr_queues || (*status & ~VIRTIO_STATUS_ALL) ||
	    (d->driver_features & ~d->offered) || r < 0)
		return s->err ? s->err : -EINVAL;
	for (unsigned i = 0; i < d->ops->nr_queues && r >= 0; i++)
		r = load_queue(d, &d->q[i], s);
	return r;
}

static int load(void *opaque, struct dev_state *s)
{
	struct virtio_dev *d = opaque;
	uint8_t status = 0;
	int r;

	pthread_mutex_lock(&d->lock);
	virtio_reset(d);
	pthread_mutex_unlock(&d->lock);
	/* The PCI part without d->lock: moving BAR 4 takes it. */
	r = pci_device_load(&d->pci, s);
	pthread_mutex_lock(&d->lock);
	if (r >= 0)
		r = load_transport(d, s, &status);
	if (r >= 0 && d->ops->load)
		r = d->ops->load(d, s);
	if (r < 0) {
		virtio_reset(d);
	} else {
		atomic_store(&d->status, status);
		atomic_store(&d->running, (status & VIRTIO_CONFIG_S_DRIVER_OK) &&
			     !(status & (VIRTIO_CONFIG_S_NEEDS_RESET | VIRTIO_CONFIG_S_FAILED)));
		/* Doorbells rung before the state was saved are not in the
		 * new eventfds: look at every ring once. */
		if (atomic_load(&d->running))
			virtio_kick_all(d);
	}
	pthread_mutex_unlock(&d->lock);
	return r;
}

/* The registry's entry also gives `stats` the transport's counters, then
 * the device type's. */
static void counters(void *opaque, void (*put)(void *ctx, const char *name, uint64_t v),
		     void *ctx)
{
	struct virtio_dev *d = opaque;
	struct virtio_counters *c = &d->count;

	put(ctx, "notifications", atomic_load_explicit(&c->notifications, memory_order_relaxed));
	put(ctx, "requests", atomic_load_explicit(&c->requests, memory_order_relaxed));
	put(ctx, "bytes_to_guest", atomic_load_explicit(&c->bytes_to_guest, memory_order_relaxed));
	put(ctx, "interrupts", atomic_load_explicit(&c->interrupts, memory_order_relaxed));
	put(ctx, "refused", atomic_load_explicit(&c->refused, memory_order_relaxed));
	put(ctx, "needs_reset", atomic_load_explicit(&c->needs_reset, memory_order_relaxed));
	if (d->ops->counters)
		d->ops->counters(d, put, ctx);
}

static int save_ref(void *opaque, struct dev_state *s)
{
	struct virtio_dev *d = opaque;

	return d->ops->save_ref(d, s);
}

static int check_ref(void *opaque, struct dev_state *s, char *err, size_t errlen)
{
	struct virtio_dev *d = opaque;

	return d->ops->check_ref(d, s, err, errlen);
}

const struct vm_device_ops virtio_vm_device_ops = {
	.quiesce = quiesce, .resume = resume, .save = save, .load = load,
	.counters = counters,
};

/* For device types that stand on something outside the VM (a disk): the
 * same, with their DREF sections (snapshot.c). */
const struct vm_device_ops virtio_vm_device_ref_ops = {
	.quiesce = quiesce, .resume = resume, .save = save, .load = load,
	.counters = counters, .save_ref = save_ref, .check_ref = check_ref,
};
