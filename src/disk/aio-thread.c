// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The thread engine: a small pool of threads per disk doing preadv,
 * pwritev, fdatasync and fallocate, for hosts where io_uring cannot be set
 * up (old kernels, containers whose seccomp profile forbids it).  The same
 * pool runs, for the io_uring engine, the work a ring cannot: calls into
 * libvhd that may block (a VHD flush writes metadata between two syncs).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include "disk-private.h"

struct aio_pool {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct aio_op *head, **tail;
	bool stop;
	unsigned nr;
	pthread_t threads[];
};

static int transfer(struct aio_op *op)
{
	while (op->len) {
		int cnt = op->iovcnt < IOV_MAX ? op->iovcnt : IOV_MAX;
		ssize_t n = op->kind == AIO_READ ?
			    preadv(op->fd, op->iov, cnt, (off_t)op->off) :
			    pwritev(op->fd, op->iov, cnt, (off_t)op->off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0) {
			if (op->kind == AIO_WRITE)
				return -EIO;
			/* The end of the file: the rest reads as zeros. */
			iov_zero(op->iov, (unsigned)op->iovcnt, 0, op->len);
			return 0;
		}
		iov_advance(op, (size_t)n);
		op->off += (uint64_t)n;
		op->len -= (uint64_t)n;
	}
	return 0;
}

int aio_op_run(struct aio_op *op)
{
	switch (op->kind) {
	case AIO_READ:
	case AIO_WRITE:
		return transfer(op);
	case AIO_FSYNC:
		return fdatasync(op->fd) < 0 ? -errno : 0;
	case AIO_FALLOCATE:
		return fallocate(op->fd, op->mode, (off_t)op->off,
				 (off_t)op->len) < 0 ? -errno : 0;
	case AIO_CALL:
		return op->call(op);
	default:
		return 0;
	}
}

static void *worker(void *arg)
{
	struct aio_pool *p = arg;

	pthread_mutex_lock(&p->lock);
	for (;;) {
		struct aio_op *op;

		while (!p->head && !p->stop)
			pthread_cond_wait(&p->cond, &p->lock);
		op = p->head;
		if (!op)
			break;
		p->head = op->next;
		if (!p->head)
			p->tail = &p->head;
		pthread_mutex_unlock(&p->lock);
		queue_post(op->req->q, op, aio_op_run(op));
		pthread_mutex_lock(&p->lock);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

int aio_pool_create(unsigned nr_threads, struct aio_pool **out)
{
	struct aio_pool *p = calloc(1, sizeof(*p) + nr_threads * sizeof(pthread_t));
	sigset_t all, old;
	int r = 0;

	if (!p)
		return -ENOMEM;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	p->tail = &p->head;
	/* The VMM takes its signals in one thread (sigwaitinfo); ours must
	 * not take them.  Faults and seccomp's SIGSYS are delivered anyway. */
	sigfillset(&all);
	sigdelset(&all, SIGSYS);
	sigdelset(&all, SIGSEGV);
	sigdelset(&all, SIGBUS);
	sigdelset(&all, SIGILL);
	sigdelset(&all, SIGFPE);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	for (; p->nr < nr_threads; p->nr++) {
		r = -pthread_create(&p->threads[p->nr], NULL, worker, p);
		if (r < 0)
			break;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r < 0) {
		aio_pool_destroy(p);
		return r;
	}
	*out = p;
	return 0;
}

/* Every op submitted has completed: the queues were drained. */
void aio_pool_destroy(struct aio_pool *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->stop = true;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	for (unsigned i = 0; i < p->nr; i++)
		pthread_join(p->threads[i], NULL);
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

void aio_pool_submit(struct aio_pool *p, struct aio_op *op)
{
	op->next = NULL;
	pthread_mutex_lock(&p->lock);
	*p->tail = op;
	p->tail = &op->next;
	pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->lock);
}

static void thread_submit(struct disk_queue *q, struct aio_op *op)
{
	aio_pool_submit(q->d->pool, op);
}

static void thread_kick(struct disk_queue *q)
{
}

static bool thread_available(void)
{
	return true;
}

const struct aio_engine aio_thread_engine = {
	.name = "thread",
	.submit = thread_submit,
	.kick = thread_kick,
	.available = thread_available,
};
