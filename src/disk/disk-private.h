/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Inside the disk layer: a request is cut by its backend (raw.c, vhd.c)
 * into file operations (struct aio_op) that an engine (aio-uring.c,
 * aio-thread.c) carries out; each operation completes in the thread that
 * reaps the queue, and the request completes when its last one does.
 */
#ifndef VSRV_DISK_PRIVATE_H
#define VSRV_DISK_PRIVATE_H

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>

#include "disk.h"

#define DISK_ALIGN	4096u	/* bounce buffers, the zero buffer */

enum aio_kind {
	AIO_NOP,	/* nothing to do: completes at the next reap */
	AIO_READ,	/* preadv: the whole range, zeros past the end of file */
	AIO_WRITE,	/* pwritev: the whole range */
	AIO_FSYNC,	/* fdatasync */
	AIO_FALLOCATE,
	AIO_CALL,	/* call(op) in a thread that may block */
};

struct disk_req;

struct aio_op {
	enum aio_kind kind;
	int fd;
	int mode;		/* FALLOCATE */
	uint64_t off;		/* in the file */
	uint64_t len;		/* bytes left to transfer; FALLOCATE: length */
	int (*call)(struct aio_op *op);
	/* In the reaping thread, with 0 or a negative errno. */
	void (*complete)(struct aio_op *op, int res);
	struct disk_req *req;
	struct aio_op *next;	/* a queue's list */
	struct aio_op *sibling;	/* the request's list */
	int res;
	/* The backend's: the disk range this op writes, for vhd_write_done. */
	uint64_t disk_off, disk_len;
	int iovcnt;
	struct iovec iov[];	/* advanced in place by short transfers */
};

enum disk_req_kind { REQ_READ, REQ_WRITE, REQ_FLUSH, REQ_DISCARD, REQ_ZEROES };

struct disk_req {
	struct disk_queue *q;
	enum disk_req_kind kind;
	bool unmap;			/* ZEROES */
	uint64_t off, len;
	/* The caller's (valid during the submit call only), or the bounce
	 * buffer's. */
	const struct iovec *iov;
	unsigned iovcnt;
	struct iovec bounce_iov;
	void *bounce;
	struct iovec *guest_iov;	/* a bounced read's destination */
	unsigned guest_iovcnt;
	disk_done_fn *done;
	void *opaque;
	int status;			/* the first error */
	unsigned pending;		/* ops not completed */
	struct aio_op *ops;		/* every op, for the backend's finish */
};

struct disk_ops {
	const char *name;
	int (*open)(struct disk *d, const struct disk_spec *spec,
		    struct disk_error *err);
	int (*close)(struct disk *d, struct disk_error *err);
	/* Cut the request into ops with req_submit(); a returned error
	 * becomes the request's status (ops already submitted still run). */
	int (*read)(struct disk_req *req);
	int (*write)(struct disk_req *req);
	int (*flush)(struct disk_req *req);
	int (*discard)(struct disk_req *req);
	int (*write_zeroes)(struct disk_req *req);
	/* Optional: every op has completed, before `done`. */
	void (*finish)(struct disk_req *req);
	/* Optional: disk_snapshot() (fd < 0: create child) and
	 * disk_snapshot_fd(). */
	int (*snapshot)(struct disk *d, const char *child, int fd, int direct_fd,
			struct disk_error *err);
	/* disk_layer(): layer i's path, VHD unique id and open file (*fd);
	 * 1, or 0 past the bottom.  No system call: the sandbox's. */
	int (*layer)(const struct disk *d, unsigned i, struct disk_layer *out, int *fd);
};

extern const struct disk_ops raw_disk_ops;
extern const struct disk_ops vhd_disk_ops;

struct aio_pool;

/* The engine of one queue. */
struct aio_engine {
	const char *name;
	int (*init)(struct disk_queue *q);
	void (*exit)(struct disk_queue *q);
	void (*submit)(struct disk_queue *q, struct aio_op *op);
	/* Hands what submit() gathered to the kernel. */
	void (*kick)(struct disk_queue *q);
	/* Completes what the engine itself finished (the ring's entries). */
	unsigned (*reap)(struct disk_queue *q);
	/* Whether the engine can be set up on this host at all. */
	bool (*available)(void);
};

extern const struct aio_engine aio_thread_engine;
extern const struct aio_engine aio_uring_engine;

struct disk {
	const struct disk_ops *ops;
	const struct aio_engine *engine;
	void *priv;			/* the backend's */
	char *path;
	uint64_t size;
	bool readonly;
	bool direct;			/* cache=none: O_DIRECT */
	enum disk_cache cache;
	unsigned mem_align;		/* O_DIRECT buffer alignment */
	char serial[DISK_SERIAL_LEN + 1];
	struct aio_pool *pool;		/* blocking work; every op for threads */
	atomic_uint inflight;		/* requests, over all queues */
	atomic_uint nr_queues;		/* queues may come and go on any thread */
	enum disk_undo undo;
	char *undo_child;
	disk_notice_fn *notice;
	void *notice_opaque;
};

struct disk_queue {
	struct disk *d;
	int efd;			/* eventfd: completions to reap */
	unsigned inflight;		/* this queue's requests */
	unsigned completed;		/* requests, ever: for disk_queue_reap */
	pthread_mutex_t lock;		/* the done list, fed by the pool */
	struct aio_op *done_head, **done_tail;
	void *engine;			/* the engine's state */
};

/* disk.c */
int disk_set_error(struct disk_error *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void disk_notice(const struct disk *d, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* request.c: building and completing requests */
/* A new op of `kind` over [data_off, data_off + len) of the request's
 * data (READ, WRITE), or of no data (len 0, iov ignored). */
struct aio_op *req_op(struct disk_req *req, enum aio_kind kind, int fd,
		      uint64_t file_off, size_t data_off, size_t len);
/* Hands the op to the engine; it counts as pending until it completes. */
void req_submit(struct disk_req *req, struct aio_op *op);
/* Zeros [off, off + len) of fd with fallocate(mode), writing zeros where
 * the file system cannot; returns the fallocate op, NULL without memory. */
struct aio_op *req_zero_file(struct disk_req *req, int fd, uint64_t off,
			     uint64_t len, int mode);
/* Frees [off, off + len) of fd if the file system can; else nothing. */
int req_punch_file(struct disk_req *req, int fd, uint64_t off, uint64_t len);
struct disk_req *req_new(struct disk_queue *q, enum disk_req_kind kind,
			 uint64_t off, uint64_t len, disk_done_fn *done,
			 void *opaque);
/* After the backend: completes at the next reap a request it gave
 * nothing to do; -ENOMEM when not even that can be arranged (nothing is
 * in flight then: the caller frees the request). */
int req_submitted(struct disk_req *req);
void req_free(struct disk_req *req);

/* queue.c */
/* From any thread: op completed with res; wakes the reaper. */
void queue_post(struct disk_queue *q, struct aio_op *op, int res);

/* raw.c: what cache=none needs of a file (alignment); may raise
 * d->mem_align. */
int disk_check_direct(struct disk *d, int fd, const char *path,
		      struct disk_error *err);

/* aio-thread.c */
int aio_pool_create(unsigned nr_threads, struct aio_pool **out);
void aio_pool_destroy(struct aio_pool *p);
void aio_pool_submit(struct aio_pool *p, struct aio_op *op);
/* Performs an op in the calling thread: 0 or a negative errno. */
int aio_op_run(struct aio_op *op);

/* iov.c */
size_t iov_length(const struct iovec *iov, unsigned cnt);
/* The entries of iov covering [off, off + len), into out (NULL: only
 * counted); returns their number. */
unsigned iov_slice(const struct iovec *iov, unsigned cnt, size_t off,
		   size_t len, struct iovec *out);
void iov_zero(const struct iovec *iov, unsigned cnt, size_t off, size_t len);
void iov_to_buf(const struct iovec *iov, unsigned cnt, void *buf);
void iov_from_buf(const struct iovec *iov, unsigned cnt, const void *buf);
/* Drops the first n bytes of an op's iov, after a short transfer. */
void iov_advance(struct aio_op *op, size_t n);
bool iov_aligned(const struct iovec *iov, unsigned cnt, unsigned mem_align);
/* Zeros from a shared read-only buffer: iovecs for len bytes (at most
 * max entries); returns how many bytes they cover. */
size_t iov_zeros(struct iovec *out, unsigned max, uint64_t len, unsigned *cnt);

#endif
