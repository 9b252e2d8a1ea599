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
/*
 * A checkpoint's switch: the disk goes on in child_path, a differencing
 * child over its top that the caller made and opened (fd, and for
 * cache=none direct_fd, else -1: disk_snapshot_fd, which owns them).
 * The VM is paused (pause.c), so the device's queues are quiesced: no
 * request in flight, the I/O thread stopped.  On failure one line in err,
 * and the disk goes on where it was.
 */
int virtio_blk_snapshot(struct virtio_blk *blk, int fd, int direct_fd, const char *child_path,
			char *err, size_t errlen);

#endif
