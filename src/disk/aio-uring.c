// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The io_uring engine: one ring per queue, so that queues on different
 * threads share nothing.  The kernel signals the queue's eventfd for each
 * completion.  What a ring cannot do (a call into libvhd) goes to the
 * disk's pool, which posts to the same eventfd.
 *
 * A ring can do far more than read and write (open files, connect
 * sockets), and its operations are not seen by seccomp.  So each ring is
 * created disabled, restricted to the four operations below with no
 * flags and no further registration, and only then enabled: a confined
 * VMM that has its rings can use them for nothing else, and it needs
 * neither io_uring_setup nor io_uring_register once its queues exist.
 */
#include <errno.h>
#include <liburing.h>
#include <stdlib.h>

#include "disk-private.h"

#define RING_ENTRIES	128u

struct uring_queue {
	struct io_uring ring;
	unsigned in_ring;	/* submitted, completion not yet reaped */
	unsigned limit;		/* the completion ring's size: never overflow */
	struct aio_op *backlog, **backlog_tail;
};

static int ring_setup(struct io_uring *ring, int efd)
{
	static const uint8_t allowed[] = {
		IORING_OP_READV, IORING_OP_WRITEV, IORING_OP_FSYNC,
		IORING_OP_FALLOCATE,
	};
	struct io_uring_restriction res[sizeof(allowed)] = { 0 };
	int r = io_uring_queue_init(RING_ENTRIES, ring, IORING_SETUP_R_DISABLED);

	if (r < 0)
		return r;
	for (unsigned i = 0; i < sizeof(allowed); i++) {
		res[i].opcode = IORING_RESTRICTION_SQE_OP;
		res[i].sqe_op = allowed[i];
	}
	r = efd >= 0 ? io_uring_register_eventfd(ring, efd) : 0;
	/* Through the plain call: Debian 12's liburing 2.3 declares the
	 * wrappers but does not export them.  It returns -errno. */
	if (r >= 0)
		r = io_uring_register((unsigned)ring->ring_fd, IORING_REGISTER_RESTRICTIONS,
				      res, sizeof(allowed));
	if (r >= 0)
		r = io_uring_register((unsigned)ring->ring_fd, IORING_REGISTER_ENABLE_RINGS,
				      NULL, 0);
	if (r < 0)
		io_uring_queue_exit(ring);
	return r < 0 ? r : 0;
}

static bool uring_available(void)
{
	struct io_uring ring;

	if (ring_setup(&ring, -1) < 0)
		return false;
	io_uring_queue_exit(&ring);
	return true;
}

static int uring_init(struct disk_queue *q)
{
	struct uring_queue *u = calloc(1, sizeof(*u));
	int r;

	if (!u)
		return -ENOMEM;
	r = ring_setup(&u->ring, q->efd);
	if (r < 0) {
		free(u);
		return r;
	}
	u->limit = u->ring.cq.ring_entries;
	u->backlog_tail = &u->backlog;
	q->engine = u;
	return 0;
}

static void uring_exit(struct disk_queue *q)
{
	struct uring_queue *u = q->engine;

	io_uring_queue_exit(&u->ring);
	free(u);
	q->engine = NULL;
}

static bool prep(struct uring_queue *u, struct aio_op *op)
{
	struct io_uring_sqe *sqe;

	if (u->in_ring >= u->limit)
		return false;
	sqe = io_uring_get_sqe(&u->ring);
	if (!sqe) {
		io_uring_submit(&u->ring);
		sqe = io_uring_get_sqe(&u->ring);
		if (!sqe)
			return false;
	}
	switch (op->kind) {
	case AIO_READ:
		io_uring_prep_readv(sqe, op->fd, op->iov, (unsigned)op->iovcnt, op->off);
		break;
	case AIO_WRITE:
		io_uring_prep_writev(sqe, op->fd, op->iov, (unsigned)op->iovcnt, op->off);
		break;
	case AIO_FSYNC:
		io_uring_prep_fsync(sqe, op->fd, IORING_FSYNC_DATASYNC);
		break;
	default:	/* AIO_FALLOCATE */
		io_uring_prep_fallocate(sqe, op->fd, op->mode, op->off, op->len);
		break;
	}
	io_uring_sqe_set_data(sqe, op);
	u->in_ring++;
	return true;
}

static void uring_submit(struct disk_queue *q, struct aio_op *op)
{
	struct uring_queue *u = q->engine;

	if (op->kind == AIO_CALL) {
		aio_pool_submit(q->d->pool, op);
		return;
	}
	/* In order: nothing overtakes the backlog. */
	if (!u->backlog && prep(u, op))
		return;
	op->next = NULL;
	*u->backlog_tail = op;
	u->backlog_tail = &op->next;
}

static void uring_kick(struct disk_queue *q)
{
	struct uring_queue *u = q->engine;

	/* Whatever the kernel refuses now (it should not: completions
	 * never overflow) stays in the ring for the next kick. */
	while (io_uring_submit(&u->ring) == -EINTR)
		;
}

/* One completion: 0 or a negative errno for the op, or a resubmission of
 * what a short transfer left. */
static void uring_done(struct disk_queue *q, struct aio_op *op, int res)
{
	if (op->kind == AIO_READ || op->kind == AIO_WRITE) {
		if (res == -EAGAIN || res == -EINTR) {
			uring_submit(q, op);
			return;
		}
		if (res == 0 && op->len) {
			if (op->kind == AIO_WRITE) {
				res = -EIO;
			} else {
				/* The end of the file: zeros. */
				iov_zero(op->iov, (unsigned)op->iovcnt, 0, op->len);
			}
		} else if (res > 0 && (uint64_t)res < op->len) {
			iov_advance(op, (size_t)res);
			op->off += (uint64_t)res;
			op->len -= (uint64_t)res;
			uring_submit(q, op);
			return;
		}
	}
	op->complete(op, res < 0 ? res : 0);
}

static unsigned uring_reap(struct disk_queue *q)
{
	struct uring_queue *u = q->engine;
	struct io_uring_cqe *cqe;
	unsigned n = 0;

	while (io_uring_peek_cqe(&u->ring, &cqe) == 0) {
		struct aio_op *op = io_uring_cqe_get_data(cqe);
		int res = cqe->res;

		io_uring_cqe_seen(&u->ring, cqe);
		u->in_ring--;
		n++;
		uring_done(q, op, res);
	}
	while (u->backlog && prep(u, u->backlog)) {
		u->backlog = u->backlog->next;
		if (!u->backlog)
			u->backlog_tail = &u->backlog;
	}
	return n;
}

const struct aio_engine aio_uring_engine = {
	.name = "io_uring",
	.init = uring_init,
	.exit = uring_exit,
	.submit = uring_submit,
	.kick = uring_kick,
	.reap = uring_reap,
	.available = uring_available,
};
