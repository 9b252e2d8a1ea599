// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Queues: where requests are submitted and where they complete.  Each has
 * an eventfd that becomes readable when completions wait, whichever engine
 * produced them (the kernel signals it for io_uring's, the pool's threads
 * for theirs), so that a device's I/O thread polls one descriptor per
 * queue and runs the completions itself: no callback ever runs in an
 * engine's thread.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "disk-private.h"

int disk_queue_create(struct disk *d, struct disk_queue **out)
{
	struct disk_queue *q = calloc(1, sizeof(*q));
	int r;

	if (!q)
		return -ENOMEM;
	q->d = d;
	q->done_tail = &q->done_head;
	q->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (q->efd < 0) {
		r = -errno;
		free(q);
		return r;
	}
	pthread_mutex_init(&q->lock, NULL);
	r = d->engine->init ? d->engine->init(q) : 0;
	if (r < 0) {
		pthread_mutex_destroy(&q->lock);
		close(q->efd);
		free(q);
		return r;
	}
	d->nr_queues++;
	*out = q;
	return 0;
}

void disk_queue_destroy(struct disk_queue *q)
{
	if (!q)
		return;
	disk_queue_drain(q);
	if (q->d->engine->exit)
		q->d->engine->exit(q);
	pthread_mutex_destroy(&q->lock);
	close(q->efd);
	q->d->nr_queues--;
	free(q);
}

int disk_queue_fd(const struct disk_queue *q)
{
	return q->efd;
}

unsigned disk_queue_inflight(const struct disk_queue *q)
{
	return q->inflight;
}

void queue_post(struct disk_queue *q, struct aio_op *op, int res)
{
	uint64_t one = 1;

	op->res = res;
	op->next = NULL;
	pthread_mutex_lock(&q->lock);
	*q->done_tail = op;
	q->done_tail = &op->next;
	pthread_mutex_unlock(&q->lock);
	/* Cannot fail but by overflowing a counter of 2^64 - 2. */
	if (write(q->efd, &one, sizeof(one)) < 0)
		return;
}

unsigned disk_queue_reap(struct disk_queue *q)
{
	unsigned before = q->completed;
	struct aio_op *op;
	uint64_t v;

	/* Cleared first: a completion after this read signals again. */
	if (read(q->efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		return 0;
	if (q->d->engine->reap)
		q->d->engine->reap(q);
	pthread_mutex_lock(&q->lock);
	op = q->done_head;
	q->done_head = NULL;
	q->done_tail = &q->done_head;
	pthread_mutex_unlock(&q->lock);
	while (op) {
		struct aio_op *next = op->next;

		op->complete(op, op->res);
		op = next;
	}
	/* Completions may have submitted more (fallbacks, the caller's
	 * next requests). */
	q->d->engine->kick(q);
	return q->completed - before;
}

int disk_queue_wait(struct disk_queue *q, int timeout_ms)
{
	struct pollfd pfd = { .fd = q->efd, .events = POLLIN };
	unsigned n = disk_queue_reap(q);

	if (n || !q->inflight)
		return (int)n;
	if (poll(&pfd, 1, timeout_ms) < 0)
		return errno == EINTR ? 0 : -errno;
	return (int)disk_queue_reap(q);
}

void disk_queue_drain(struct disk_queue *q)
{
	while (q->inflight)
		disk_queue_wait(q, -1);
}
