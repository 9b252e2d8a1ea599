/* SPDX-License-Identifier: GPL-2.0-or-later */
/* What the transport's files share: pci.c (registers), core.c (queues,
 * interrupts, log), save.c (quiesce, save, load). */
#ifndef VSRV_VIRTIO_TRANSPORT_H
#define VSRV_VIRTIO_TRANSPORT_H

#include "virtio.h"

/* BAR 4 (16 KiB, 64-bit): the virtio structures, one page each. */
#define VIRTIO_BAR		4
#define VIRTIO_BAR_SIZE		0x4000u
#define VIRTIO_COMMON_OFF	0x0000u
#define VIRTIO_ISR_OFF		0x1000u
#define VIRTIO_DEVICE_OFF	0x2000u
#define VIRTIO_NOTIFY_OFF	0x3000u
#define VIRTIO_NOTIFY_MULT	4u	/* queue q's doorbell at NOTIFY_OFF + 4 q */
#define VIRTIO_COMMON_LEN	0x38u	/* through queue_device: no 1.2 extras offered */
/* BAR 1: the MSI-X table and PBA.  Vector 0 for configuration changes
 * and one per queue is what drivers ask for. */
#define VIRTIO_MSIX_BAR		1

#define VIRTIO_STATUS_ALL	(VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | \
				 VIRTIO_CONFIG_S_DRIVER_OK | VIRTIO_CONFIG_S_FEATURES_OK | \
				 VIRTIO_CONFIG_S_NEEDS_RESET | VIRTIO_CONFIG_S_FAILED)

/* pci.c: back to power-on (d->lock held; pauses the I/O thread). */
void virtio_reset(struct virtio_dev *d);
/* core.c */
void virtio_notify_config(struct virtio_dev *d);
uint8_t virtio_isr_read(struct virtio_dev *d);
void virtio_queue_kicked(void *opaque);
/* save.c */
extern const struct vm_device_ops virtio_vm_device_ops;
extern const struct vm_device_ops virtio_vm_device_ref_ops;

#endif
