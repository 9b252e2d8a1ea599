/* SPDX-License-Identifier: GPL-2.0-or-later */
/* virtio-rng (rng.c): vsrv run --rng, "rng": true. */
#ifndef VSRV_VIRTIO_RNG_H
#define VSRV_VIRTIO_RNG_H

#include <stdio.h>
#include <sys/types.h>

#include "../pci.h"
#include "queue.h"

struct virtio_rng;

int virtio_rng_create(struct pci_bus *bus, struct virtio_rng **out);
void virtio_rng_destroy(struct virtio_rng *rng);
void virtio_rng_print_stats(struct virtio_rng *rng, FILE *f);
/* One request: fills the chain's writable buffers (up to 64 KiB) with
 * fill() (getrandom's signature); -EINVAL, nothing written, when it has
 * device-readable ones.  For the fuzzer too. */
int virtio_rng_request(struct virtq_elem *e, uint32_t *written,
		       ssize_t (*fill)(void *buf, size_t len, unsigned flags));

#endif
