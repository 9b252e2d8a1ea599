// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * A virtio device's I/O path: doorbells to queue work, chains served and
 * given back, interrupts (an MSI-X vector, or the ISR and INTx while
 * MSI-X is off), NEEDS_RESET, the log and the counters.  All of it runs
 * on the device's I/O thread except where it says otherwise, and takes no
 * lock but the ISR's (INTx only).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "transport.h"

void virtio_log(struct virtio_dev *d, const char *fmt, ...)
{
	unsigned n = atomic_fetch_add(&d->log_lines, 1);
	char buf[512];
	va_list ap;
	int len;

	/* A guest that keeps breaking rules must not fill the host's logs. */
	if (n > VIRTIO_LOG_MAX)
		return;
	if (n == VIRTIO_LOG_MAX) {
		len = snprintf(buf, sizeof(buf), "vsrv: %s: further problems are not logged\n",
			       d->pci.name);
	} else {
		len = snprintf(buf, sizeof(buf), "vsrv: %s: ", d->pci.name);
		va_start(ap, fmt);
		len += vsnprintf(buf + len, sizeof(buf) - (size_t)len - 1, fmt, ap);
		va_end(ap);
		if ((size_t)len > sizeof(buf) - 2)
			len = sizeof(buf) - 2;
		buf[len++] = '\n';
	}
	/* One write: a line never interleaves with another thread's. */
	if (write(STDERR_FILENO, buf, (size_t)len) < 0)
		return;
}

/* Any thread: NEEDS_RESET once, its first reason logged. */
void virtio_fail(struct virtio_dev *d, const char *fmt, ...)
{
	char msg[400];
	uint8_t old;
	va_list ap;

	old = atomic_fetch_or(&d->status, VIRTIO_CONFIG_S_NEEDS_RESET);
	if (old & VIRTIO_CONFIG_S_NEEDS_RESET)
		return;
	atomic_store(&d->running, false);
	atomic_fetch_add_explicit(&d->count.needs_reset, 1, memory_order_relaxed);
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	virtio_log(d, "needs reset: %s", msg);
	/* A driver that is running hears of it (spec: "SHOULD send a
	 * device configuration change notification"). */
	if (old & VIRTIO_CONFIG_S_DRIVER_OK)
		virtio_notify_config(d);
}

/* --- interrupts --- */

static void isr_raise(struct virtio_dev *d, uint8_t bit)
{
	pthread_mutex_lock(&d->isr_lock);
	d->isr |= bit;
	pci_intx_set(&d->pci, true);
	pthread_mutex_unlock(&d->isr_lock);
}

/* A vCPU read of the ISR: clears it and lowers INTx. */
uint8_t virtio_isr_read(struct virtio_dev *d)
{
	uint8_t v;

	pthread_mutex_lock(&d->isr_lock);
	v = d->isr;
	d->isr = 0;
	pci_intx_set(&d->pci, false);
	pthread_mutex_unlock(&d->isr_lock);
	return v;
}

static void notify(struct virtio_dev *d, uint16_t vector, uint8_t isr_bit)
{
	/* With MSI-X on, the ISR is unused and NO_VECTOR means "poll". */
	if (pci_msix_enabled(&d->pci)) {
		if (vector != VIRTIO_NO_VECTOR)
			pci_msix_notify(&d->pci, vector);
	} else {
		isr_raise(d, isr_bit);
	}
}

void virtio_notify_config(struct virtio_dev *d)
{
	notify(d, atomic_load(&d->config_vector), VIRTIO_ISR_CONFIG);
}

/* --- queues --- */

void virtio_kick_all(struct virtio_dev *d)
{
	for (unsigned i = 0; i < d->ops->nr_queues; i++)
		if (atomic_load(&d->q[i].ready))
			iothread_kick(d->io, d->q[i].kick_fd);
}

/* A doorbell's eventfd was signalled (iothread.c). */
void virtio_queue_kicked(void *opaque)
{
	struct virtio_queue *q = opaque;
	struct virtio_dev *d = q->dev;

	atomic_fetch_add_explicit(&d->count.notifications, 1, memory_order_relaxed);
	/* Kicks of a stopped device or a queue not enabled: ignored (a
	 * later DRIVER_OK or enable looks at the ring anyway). */
	if (atomic_load(&d->running) && atomic_load(&q->ready))
		d->ops->queue_notify(d, q->index);
}

int virtio_queue_pop(struct virtio_dev *d, unsigned qi, struct virtq_elem *e)
{
	struct virtio_queue *q = &d->q[qi];
	struct virtq *vq = &q->vq;
	int r;

	/* Notifications stay off while there is work; back on only once the
	 * ring is empty, then a second look for what came meanwhile. */
	for (;;) {
		/* A device's own events (a frame received) may come before
		 * the driver enabled the queue: no rings to look at yet. */
		if (!atomic_load(&d->running) || !atomic_load(&q->ready))
			return 0;
		virtq_disable_notify(vq);
		r = virtq_pop(vq, e);
		if (r > 0)
			return 1;
		if (r < 0) {
			virtio_fail(d, "queue %u: %s", qi, vq->error);
			return r;
		}
		if (!virtq_enable_notify(vq))
			return 0;
	}
}

void virtio_queue_push(struct virtio_dev *d, unsigned qi, uint16_t head, uint32_t written)
{
	struct virtio_queue *q = &d->q[qi];

	virtq_push(&q->vq, head, written);
	q->pushed = true;
	atomic_fetch_add_explicit(&d->count.requests, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&d->count.bytes_to_guest, written, memory_order_relaxed);
}

void virtio_queue_refuse(struct virtio_dev *d, unsigned qi, uint16_t head)
{
	atomic_fetch_add_explicit(&d->count.refused, 1, memory_order_relaxed);
	virtio_queue_push(d, qi, head, 0);
}

void virtio_queue_notify_used(struct virtio_dev *d, unsigned qi)
{
	struct virtio_queue *q = &d->q[qi];
	bool pushed = q->pushed;

	q->pushed = false;
	/* A stopped device tells the driver nothing more: it resets. */
	if (!pushed || !atomic_load(&d->running) || !virtq_should_notify(&q->vq))
		return;
	atomic_fetch_add_explicit(&d->count.interrupts, 1, memory_order_relaxed);
	notify(d, atomic_load(&q->vector), VIRTIO_ISR_QUEUE);
}

void virtio_queue_serve(struct virtio_dev *d, unsigned qi, virtio_handler handle)
{
	struct virtq_elem *e = d->elem;

	while (virtio_queue_pop(d, qi, e) > 0) {
		uint32_t written = 0;
		int r = handle(d, e, &written);

		if (r == VIRTIO_LATER) {
			/* Back in the ring, for when the device can.  Its
			 * notifications stay off: the device comes back by
			 * itself. */
			virtq_unpop(&d->q[qi].vq);
			break;
		}
		if (r < 0)
			virtio_queue_refuse(d, qi, e->head);
		else
			virtio_queue_push(d, qi, e->head, written);
	}
	virtio_queue_notify_used(d, qi);
}

void virtio_print_stats(struct virtio_dev *d, FILE *f)
{
	struct virtio_counters *c = &d->count;

	fprintf(f, "vsrv: %s: %llu notifications, %llu requests, %llu bytes to the guest, "
		"%llu interrupts, %llu refused, %llu resets needed\n", d->pci.name,
		(unsigned long long)atomic_load(&c->notifications),
		(unsigned long long)atomic_load(&c->requests),
		(unsigned long long)atomic_load(&c->bytes_to_guest),
		(unsigned long long)atomic_load(&c->interrupts),
		(unsigned long long)atomic_load(&c->refused),
		(unsigned long long)atomic_load(&c->needs_reset));
}
