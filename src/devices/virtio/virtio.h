/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Virtio 1.x devices on the modern PCI transport (virtio/pci.c): a device
 * type (virtio-rng, ...) is a struct virtio_dev_ops; the transport gives
 * it a PCI function, feature negotiation, the status machine, its queues,
 * interrupts and a thread (iothread.h) on which its queue work runs.
 *
 * Threads: registers are written by vCPU threads under d->lock; queue
 * work runs on the device's I/O thread without that lock and reads only
 * what is published to it atomically (d->running, a queue's ready flag
 * and vector) or was set before it was published (a ready queue's rings).
 * What changes more than that (a reset, saved state loaded) pauses the I/O
 * thread first.
 *
 * The driver is not trusted.  A request the device cannot serve is
 * refused (given back with nothing written, and a log line); a driver
 * that breaks the transport's or a queue's rules puts the device into
 * NEEDS_RESET: it stops, says why in one log line
 *   vsrv: virtio-rng 00:01.0: needs reset: <why>
 * and waits for the driver to reset it; the VM and its other devices go
 * on.  A device logs at most VIRTIO_LOG_MAX lines, then says it stops.
 */
#ifndef VSRV_VIRTIO_H
#define VSRV_VIRTIO_H

#include <stdatomic.h>
#include <stdio.h>

#include <linux/virtio_config.h>
#include <linux/virtio_pci.h>
#include <linux/virtio_ring.h>

#include "../iothread.h"
#include "../pci.h"
#include "queue.h"

#define VIRTIO_QUEUES_MAX	32	/* virtio-console: 2 for each of its ports, 2 for control */
#define VIRTIO_NO_VECTOR	VIRTIO_MSI_NO_VECTOR
#define VIRTIO_LOG_MAX		32
/* The ISR's bits (the header names only the configuration one). */
#define VIRTIO_ISR_QUEUE	0x1
#define VIRTIO_ISR_CONFIG	VIRTIO_PCI_ISR_CONFIG

struct virtio_dev;
struct dev_state;

/* What a device did, for --stats and the management service's metrics:
 * relaxed atomics, so that counting takes no lock on the I/O path. */
struct virtio_counters {
	atomic_uint_least64_t notifications;	/* doorbell signals handled */
	atomic_uint_least64_t requests;		/* chains given back */
	atomic_uint_least64_t bytes_to_guest;	/* used lengths */
	atomic_uint_least64_t interrupts;	/* used-buffer interrupts sent */
	atomic_uint_least64_t refused;		/* requests and register writes refused */
	atomic_uint_least64_t needs_reset;	/* times the device stopped */
};

struct virtio_dev_ops {
	const char *name;	/* "virtio-rng" */
	uint16_t device_id;	/* VIRTIO_ID_*: the PCI device id is 0x1040 + it */
	uint32_t pci_class;
	uint64_t features;	/* the device type's feature bits offered */
	unsigned nr_queues;
	uint16_t queue_max;	/* largest queue size, a power of 2 */
	unsigned config_size;	/* device-specific configuration, bytes */
	/* Device configuration [off, off + len), inside config_size; on a
	 * vCPU thread with d->lock held. */
	void (*config_read)(struct virtio_dev *d, unsigned off, void *data, unsigned len);
	void (*config_write)(struct virtio_dev *d, unsigned off, const void *data, unsigned len);
	/* Queue q's doorbell rang: on the device's I/O thread (or the vCPU's
	 * without ioeventfds), one at a time, only while the device runs. */
	void (*queue_notify)(struct virtio_dev *d, unsigned q);
	/* At creation, before the I/O thread starts: a device type whose work
	 * also comes from outside the guest adds a poll source for it
	 * (iothread_add_source): its backend's descriptors, such as a disk
	 * queue's completion eventfds or a network backend's sockets, and a
	 * timeout for its timers.  That gives the device a thread of its own
	 * even where doorbells exit to the vCPU thread.  May be NULL. */
	int (*io_setup)(struct virtio_dev *d, struct iothread *io);
	/* Back to power-on (the I/O thread paused). */
	void (*reset)(struct virtio_dev *d);
	/* Quiesce: with the I/O thread paused, finish what is in flight;
	 * nothing of the device's runs until resume. */
	int (*quiesce)(struct virtio_dev *d);
	void (*resume)(struct virtio_dev *d);
	/* The device type's own state, after the transport's. */
	int (*save)(struct virtio_dev *d, struct dev_state *s);
	int (*load)(struct virtio_dev *d, struct dev_state *s);
	/* Optional: the device type's counters for `stats`, after the
	 * transport's (struct vm_device_ops' counters). */
	void (*counters)(struct virtio_dev *d,
			 void (*put)(void *ctx, const char *name, uint64_t v), void *ctx);
	/* Optional: what the device stands on outside the VM, for saved
	 * state (struct vm_device_ops' save_ref and check_ref); a device type
	 * with save_ref has check_ref too. */
	int (*save_ref)(struct virtio_dev *d, struct dev_state *s);
	int (*check_ref)(struct virtio_dev *d, struct dev_state *s, char *err, size_t errlen);
};

struct virtio_queue {
	struct virtio_dev *dev;
	unsigned index;
	struct virtq vq;		/* the I/O thread's while ready */
	uint16_t size;			/* as the driver set it */
	uint64_t desc, driver, device;	/* the rings' guest addresses */
	_Atomic uint16_t vector;	/* MSI-X vector, or VIRTIO_NO_VECTOR */
	_Atomic bool ready;		/* enabled with its rings checked */
	bool pushed;			/* chains given back since the last
					 * interrupt decision (I/O thread) */
	int kick_fd;			/* the doorbell's eventfd */
	uint64_t ioeventfd_gpa;		/* where KVM signals it, or 0 */
};

struct virtio_dev {
	struct pci_device pci;
	const struct virtio_dev_ops *ops;
	void *priv;			/* the device type's */
	struct vm *vm;
	pthread_mutex_t lock;
	struct iothread *io;
	_Atomic uint8_t status;
	_Atomic bool running;		/* DRIVER_OK, not NEEDS_RESET nor FAILED */
	uint64_t offered;		/* every feature bit offered */
	uint64_t driver_features;
	uint32_t dfselect, gfselect;
	uint16_t queue_select;
	_Atomic uint16_t config_vector;
	uint8_t config_generation;
	pthread_mutex_t isr_lock;	/* the ISR and the INTx level it drives */
	uint8_t isr;
	int pci_cfg_cap;		/* VIRTIO_PCI_CAP_PCI_CFG's offset */
	struct virtio_queue q[VIRTIO_QUEUES_MAX];
	struct virtq_elem *elem;	/* the I/O thread's */
	struct virtio_counters count;
	atomic_uint log_lines;
	struct vm_device vmdev;
};

/* A device of type ops in the bus's next slot, with its thread started;
 * priv is the device type's. */
int virtio_pci_create(struct pci_bus *bus, const struct virtio_dev_ops *ops, void *priv,
		      struct virtio_dev **out);
void virtio_pci_destroy(struct virtio_dev *d);
/* One line per device: its counters. */
void virtio_print_stats(struct virtio_dev *d, FILE *f);

/* For device types.  serve: drains queue q, calling handle for each chain
 * (0 and the bytes written, or negative to refuse it), gives each back,
 * and interrupts the driver as it asks.  A handler that cannot take the
 * chain now returns VIRTIO_LATER: it goes back to the ring (virtq_unpop)
 * and serving stops, until the device serves the queue again when what it
 * waits for has come (room on its host side, input for a receive buffer). */
#define VIRTIO_LATER	1
typedef int (*virtio_handler)(struct virtio_dev *d, struct virtq_elem *e, uint32_t *written);
void virtio_queue_serve(struct virtio_dev *d, unsigned q, virtio_handler handle);
/*
 * The same in steps, on the device's I/O thread, for device types that
 * take a chain when work of their own needs one (a frame received from
 * the network) or finish requests later (virtio-blk: the disk completes
 * them asynchronously).  pop: 1 and the next chain of queue q in e; 0 when
 * there is none (available-buffer notifications are then back on, and the
 * ring was looked at again after: the driver's next buffer rings the
 * doorbell), or the device does not run or the queue is not enabled;
 * negative when the driver broke the ring's rules (the device is then
 * NEEDS_RESET, logged).  push: gives a chain back with `written` bytes,
 * counted; refuse: gives it back with nothing written, counted as refused
 * (the caller logs why).  notify_used: after one or more pushes,
 * interrupts the driver if it asks for it (its flag, or its used_event);
 * nothing when the device has stopped.
 */
int virtio_queue_pop(struct virtio_dev *d, unsigned q, struct virtq_elem *e);
void virtio_queue_push(struct virtio_dev *d, unsigned q, uint16_t head, uint32_t written);
void virtio_queue_refuse(struct virtio_dev *d, unsigned q, uint16_t head);
void virtio_queue_notify_used(struct virtio_dev *d, unsigned q);
/* Rings each ready queue's doorbell, so that buffers made available
 * while the device was stopped (or a queue at its bound) are looked at. */
void virtio_kick_all(struct virtio_dev *d);
bool virtio_has_feature(const struct virtio_dev *d, unsigned bit);
/* One line on standard error, "vsrv: <device> <pci address>: ...". */
void virtio_log(struct virtio_dev *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Stops the device (NEEDS_RESET) and logs why, once. */
void virtio_fail(struct virtio_dev *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
