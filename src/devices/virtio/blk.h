/* SPDX-License-Identifier: GPL-2.0-or-later */
/* virtio-blk (blk.c, requests in blk-req.c): vsrv run --disk, "disks". */
#ifndef VSRV_VIRTIO_BLK_H
#define VSRV_VIRTIO_BLK_H

#include <stdio.h>

#include "../../disk/disk.h"
#include "../pci.h"
#include "blk-req.h"

struct virtio_blk;

/*
 * A virtio-blk device on the bus's next slot for an open disk, which it
 * owns from then on (closed with it, even when creation fails), with
 * nr_queues request queues (1 to VIRTIO_QUEUES_MAX), each with a disk
 * queue of its own, created here: before the sandbox, as those need calls
 * it forbids.  name: the disk as the user gave it, for --stats.
 */
int virtio_blk_create(struct pci_bus *bus, struct disk *disk, const char *name,
		      unsigned nr_queues, struct virtio_blk **out);
/* Waits for requests in flight, closes the disk (its last flush); a
 * failure there is one line on standard error. */
void virtio_blk_destroy(struct virtio_blk *blk);
/* Two lines: the transport's counters, the disk's. */
void virtio_blk_print_stats(struct virtio_blk *blk, FILE *f);
const struct virtio_blk_counters *virtio_blk_counters(const struct virtio_blk *blk);

#endif
