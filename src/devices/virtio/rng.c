// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * virtio-rng, the entropy device (virtio 1.x, "Entropy Device"): one
 * queue, no feature bits, no configuration.  The driver makes writable
 * buffers available; the device fills them from getrandom() (the host
 * kernel's CSPRNG, which never blocks once the host has booted) and gives
 * them back with the number of bytes written.
 *
 * Bounds: at most RNG_REQUEST_MAX bytes go into one request (the spec
 * lets a device fill less than offered, and the driver reads the used
 * length), so a guest cannot make one doorbell cost the host more than
 * queue size x 64 KiB of random bytes.  A request with a device-readable
 * buffer breaks the spec's "driver MUST NOT": it is refused (given back
 * with nothing written) and logged.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/random.h>

#include <linux/virtio_ids.h>

#include "../state.h"
#include "rng.h"
#include "virtio.h"

#define RNG_QUEUE_SIZE		256
#define RNG_REQUEST_MAX		(64u << 10)
#define PCI_CLASS_OTHER		0xff0000	/* "does not fit any defined class" */

struct virtio_rng {
	struct virtio_dev *dev;
};

int virtio_rng_request(struct virtq_elem *e, uint32_t *written,
		       ssize_t (*fill)(void *buf, size_t len, unsigned flags))
{
	uint32_t left = e->in_len < RNG_REQUEST_MAX ? (uint32_t)e->in_len : RNG_REQUEST_MAX;

	*written = 0;
	if (e->nr_out)
		return -EINVAL;
	for (unsigned i = e->nr_out; i < e->nr_out + e->nr_in && left; i++) {
		uint32_t n = e->iov[i].len < left ? e->iov[i].len : left;
		ssize_t got = fill(e->iov[i].base, n, 0);

		if (got <= 0)
			break;
		*written += (uint32_t)got;
		left -= (uint32_t)got;
		if ((uint32_t)got < n)
			break;
	}
	return 0;
}

static int handle(struct virtio_dev *d, struct virtq_elem *e, uint32_t *written)
{
	int r = virtio_rng_request(e, written, getrandom);

	if (r < 0)
		virtio_log(d, "refused: request at head %u has device-readable buffers (%llu bytes)",
			   e->head, (unsigned long long)e->out_len);
	return r;
}

static void queue_notify(struct virtio_dev *d, unsigned q)
{
	virtio_queue_serve(d, q, handle);
}

/* Nothing in flight, nothing of its own to keep: a request is served
 * whole on the I/O thread. */
static void rng_reset(struct virtio_dev *d)
{
}

static int rng_quiesce(struct virtio_dev *d)
{
	return 0;
}

static void rng_resume(struct virtio_dev *d)
{
}

static int rng_save(struct virtio_dev *d, struct dev_state *s)
{
	state_put_section(s, "VRNG", 1);
	return 0;
}

static int rng_load(struct virtio_dev *d, struct dev_state *s)
{
	return state_get_section(s, "VRNG", 1) ? 0 : s->err;
}

static const struct virtio_dev_ops rng_ops = {
	.name = "virtio-rng",
	.device_id = VIRTIO_ID_RNG,
	.pci_class = PCI_CLASS_OTHER,
	.nr_queues = 1,
	.queue_max = RNG_QUEUE_SIZE,
	.queue_notify = queue_notify,
	.reset = rng_reset,
	.quiesce = rng_quiesce,
	.resume = rng_resume,
	.save = rng_save,
	.load = rng_load,
};

int virtio_rng_create(struct pci_bus *bus, struct virtio_rng **out)
{
	struct virtio_rng *rng = calloc(1, sizeof(*rng));
	int r;

	if (!rng)
		return -ENOMEM;
	r = virtio_pci_create(bus, &rng_ops, rng, &rng->dev);
	if (r < 0) {
		free(rng);
		return r;
	}
	*out = rng;
	return 0;
}

void virtio_rng_destroy(struct virtio_rng *rng)
{
	if (!rng)
		return;
	virtio_pci_destroy(rng->dev);
	free(rng);
}

void virtio_rng_print_stats(struct virtio_rng *rng, FILE *f)
{
	virtio_print_stats(rng->dev, f);
}
