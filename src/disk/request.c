// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * A request's life: created by disk.c, cut into ops by its backend, each
 * op completed in the reaping thread; when the last one is, the backend
 * finishes (VHD records what it wrote), a bounced read is copied out and
 * the caller's `done` runs.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdlib.h>
#include <string.h>

#include "disk-private.h"

struct disk_req *req_new(struct disk_queue *q, enum disk_req_kind kind,
			 uint64_t off, uint64_t len, disk_done_fn *done,
			 void *opaque)
{
	struct disk_req *req = calloc(1, sizeof(*req));

	if (!req)
		return NULL;
	req->q = q;
	req->kind = kind;
	req->off = off;
	req->len = len;
	req->done = done;
	req->opaque = opaque;
	return req;
}

void req_free(struct disk_req *req)
{
	while (req->ops) {
		struct aio_op *op = req->ops;

		req->ops = op->sibling;
		free(op);
	}
	free(req->bounce);
	free(req->guest_iov);
	free(req);
}

static void req_finish(struct disk_req *req)
{
	struct disk_queue *q = req->q;
	disk_done_fn *done = req->done;
	void *opaque = req->opaque;
	int status;

	if (q->d->ops->finish)
		q->d->ops->finish(req);
	status = req->status;
	if (req->bounce && req->kind == REQ_READ && !status)
		iov_from_buf(req->guest_iov, req->guest_iovcnt, req->bounce);
	req_free(req);
	q->inflight--;
	q->completed++;
	atomic_fetch_sub(&q->d->inflight, 1);
	done(opaque, status);
}

static void req_op_complete(struct aio_op *op, int res)
{
	struct disk_req *req = op->req;

	op->res = res;
	if (res < 0 && !req->status)
		req->status = res;
	if (--req->pending == 0)
		req_finish(req);
}

/* A new op with room for niov pieces, on the request's list. */
static struct aio_op *op_new(struct disk_req *req, enum aio_kind kind, int fd,
			     uint64_t file_off, uint64_t len, unsigned niov)
{
	struct aio_op *op = calloc(1, sizeof(*op) + niov * sizeof(op->iov[0]));

	if (!op)
		return NULL;
	op->kind = kind;
	op->fd = fd;
	op->off = file_off;
	op->len = len;
	op->req = req;
	op->complete = req_op_complete;
	op->iovcnt = (int)niov;
	op->sibling = req->ops;
	req->ops = op;
	return op;
}

struct aio_op *req_op(struct disk_req *req, enum aio_kind kind, int fd,
		      uint64_t file_off, size_t data_off, size_t len)
{
	unsigned n = kind == AIO_READ || kind == AIO_WRITE ?
		     iov_slice(req->iov, req->iovcnt, data_off, len, NULL) : 0;
	struct aio_op *op = op_new(req, kind, fd, file_off, len, n);

	if (op && n)
		iov_slice(req->iov, req->iovcnt, data_off, len, op->iov);
	return op;
}

void req_submit(struct disk_req *req, struct aio_op *op)
{
	req->pending++;
	req->q->d->engine->submit(req->q, op);
}

int req_submitted(struct disk_req *req)
{
	struct aio_op *op;

	if (req->pending)
		return 0;
	/* Nothing to wait for (zeros read from a VHD, a flush of a read-only
	 * disk, an error before any op): still completed by a reap, never
	 * from inside the submit call. */
	op = req_op(req, AIO_NOP, -1, 0, 0, 0);
	if (!op)
		return -ENOMEM;
	req->pending++;
	queue_post(req->q, op, 0);
	return 0;
}

static int write_zeros(struct disk_req *req, int fd, uint64_t off, uint64_t len)
{
	/* 4 MiB an op, from the shared zero buffer. */
	enum { PIECES = 64 };

	while (len) {
		struct iovec iov[PIECES];
		unsigned n;
		size_t k = iov_zeros(iov, PIECES, len, &n);
		struct aio_op *op = op_new(req, AIO_WRITE, fd, off, k, n);

		if (!op)
			return -ENOMEM;
		memcpy(op->iov, iov, n * sizeof(iov[0]));
		req_submit(req, op);
		off += k;
		len -= k;
	}
	return 0;
}

/* The file system cannot zero by allocation: write the zeros instead. */
static void zero_complete(struct aio_op *op, int res)
{
	if (res == -EOPNOTSUPP)
		res = write_zeros(op->req, op->fd, op->off, op->len);
	req_op_complete(op, res);
}

struct aio_op *req_zero_file(struct disk_req *req, int fd, uint64_t off,
			     uint64_t len, int mode)
{
	struct aio_op *op = req_op(req, AIO_FALLOCATE, fd, off, 0, 0);

	if (!op)
		return NULL;
	op->mode = mode;
	op->len = len;
	op->complete = zero_complete;
	req_submit(req, op);
	return op;
}

/* A discard that cannot free space leaves the data: allowed. */
static void punch_complete(struct aio_op *op, int res)
{
	req_op_complete(op, res == -EOPNOTSUPP ? 0 : res);
}

int req_punch_file(struct disk_req *req, int fd, uint64_t off, uint64_t len)
{
	struct aio_op *op = req_op(req, AIO_FALLOCATE, fd, off, 0, 0);

	if (!op)
		return -ENOMEM;
	op->mode = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
	op->len = len;
	op->complete = punch_complete;
	req_submit(req, op);
	return 0;
}
