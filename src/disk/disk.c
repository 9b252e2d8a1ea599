// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Opening and closing disks, and the checks and buffering every request
 * gets before its backend sees it.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "disk-private.h"
#include "vhd.h"

/* Threads of the thread engine, per disk; the io_uring engine keeps one
 * for calls into libvhd that block. */
#define POOL_THREADS	4u

int disk_set_error(struct disk_error *err, int code, const char *fmt, ...)
{
	va_list ap;

	if (err) {
		err->code = code;
		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
		va_end(ap);
	}
	return code;
}

void disk_notice(const struct disk *d, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	if (!d->notice)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	d->notice(d->notice_opaque, msg);
}

static int choose_engine(enum disk_aio aio, const char *path,
			 const struct aio_engine **out, struct disk_error *err)
{
	const char *env = getenv("VSRV_AIO");

	*out = &aio_thread_engine;
	if (aio == DISK_AIO_AUTO && env && *env) {
		if (!strcmp(env, "thread"))
			aio = DISK_AIO_THREAD;
		else if (!strcmp(env, "uring"))
			aio = DISK_AIO_URING;
		else if (strcmp(env, "auto"))
			return disk_set_error(err, -EINVAL,
					      "VSRV_AIO=%s: not auto, uring or thread", env);
	}
	if (aio == DISK_AIO_THREAD)
		return 0;
#ifdef HAVE_LIBURING
	if (aio_uring_engine.available()) {
		*out = &aio_uring_engine;
		return 0;
	}
#endif
	if (aio == DISK_AIO_URING)
		return disk_set_error(err, -ENOSYS,
				      "%s: aio=uring: io_uring cannot be set up on this host",
				      path);
	return 0;
}

/*
 * format=auto goes by the file's name, never by its contents: a guest can
 * write a VHD footer into the last sector of a raw disk, and a raw disk
 * probed as VHD the next time would follow parent locators the guest
 * chose to any file on the host.  A name the guest cannot change.
 */
enum disk_format disk_format_guess(const char *path)
{
	size_t n = strlen(path);

	if ((n >= 4 && !strcasecmp(path + n - 4, ".vhd")) ||
	    (n >= 5 && !strcasecmp(path + n - 5, ".avhd")))
		return DISK_FORMAT_VHD;
	return DISK_FORMAT_RAW;
}

/* Refused before anything is created: a raw base, a read-only one. */
int disk_undo_check(const struct disk_spec *spec, struct disk_error *err)
{
	struct stat st;

	if (stat(spec->path, &st) < 0)
		return disk_set_error(err, -errno, "%s: %s", spec->path,
				      strerror(errno));
	if (spec->format == DISK_FORMAT_RAW ||
	    (spec->format == DISK_FORMAT_AUTO &&
	     disk_format_guess(spec->path) == DISK_FORMAT_RAW))
		return disk_set_error(err, -EINVAL,
				      "%s: undo needs a VHD: a raw disk cannot have a differencing child (vsrv disk convert --to dynamic makes one)",
				      spec->path);
	if (spec->readonly)
		return disk_set_error(err, -EINVAL,
				      "%s: undo and readonly exclude each other: a read-only disk has nothing to undo",
				      spec->path);
	return 0;
}

static void disk_free(struct disk *d)
{
	aio_pool_destroy(d->pool);
	free(d->undo_child);
	free(d->path);
	free(d);
}

int disk_open(const struct disk_spec *spec, struct disk **out,
	      struct disk_error *err)
{
	struct disk *d = calloc(1, sizeof(*d));
	struct disk_spec s = *spec;
	char child[PATH_MAX];
	bool created = false;
	int r;

	if (!d)
		return disk_set_error(err, -ENOMEM, "%s: out of memory", spec->path);
	d->notice = spec->notice;
	d->notice_opaque = spec->notice_opaque;
	d->readonly = spec->readonly;
	d->cache = spec->cache;
	d->direct = spec->cache == DISK_CACHE_NONE;
	d->mem_align = DISK_SECTOR_SIZE;
	r = choose_engine(spec->aio, spec->path, &d->engine, err);
	if (r < 0)
		goto fail;
	if (spec->undo != DISK_UNDO_NONE) {
		r = disk_undo_check(spec, err);
		if (r < 0)
			goto fail;
		r = disk_undo_create(spec->path, spec->undo_resume, child,
				     sizeof(child), err);
		if (r < 0)
			goto fail;
		created = !spec->undo_resume;
		d->undo = spec->undo;
		d->undo_child = strdup(child);
		s.path = child;
		s.format = DISK_FORMAT_VHD;
	}
	d->path = strdup(s.path);
	if (!d->path || (spec->undo != DISK_UNDO_NONE && !d->undo_child)) {
		r = disk_set_error(err, -ENOMEM, "%s: out of memory", spec->path);
		goto fail;
	}
	if (s.format == DISK_FORMAT_AUTO)
		s.format = disk_format_guess(s.path);
	d->ops = s.format == DISK_FORMAT_VHD ? &vhd_disk_ops : &raw_disk_ops;
	r = d->ops->open(d, &s, err);
	if (r < 0)
		goto fail;
	r = aio_pool_create(d->engine == &aio_thread_engine ? POOL_THREADS : 1,
			    &d->pool);
	if (r < 0) {
		d->ops->close(d, NULL);
		disk_set_error(err, r, "%s: I/O threads: %s", d->path, strerror(-r));
		goto fail;
	}
	if (spec->serial)
		snprintf(d->serial, sizeof(d->serial), "%s", spec->serial);
	*out = d;
	return 0;
fail:
	if (created)
		unlink(child);
	disk_free(d);
	return r;
}

int disk_close(struct disk *d, struct disk_error *err)
{
	enum disk_undo undo;
	int r;

	if (!d)
		return 0;
	if (atomic_load(&d->nr_queues))
		return disk_set_error(err, -EBUSY, "%s: a queue is still open", d->path);
	aio_pool_destroy(d->pool);
	d->pool = NULL;
	r = d->ops->close(d, err);
	undo = d->undo;
	/* Changes that could not be flushed are not merged into the base:
	 * they stay beside it for a person to look at. */
	if (r < 0 && undo == DISK_UNDO_COMMIT)
		undo = DISK_UNDO_KEEP;
	if (undo != DISK_UNDO_NONE) {
		int r2 = disk_undo_finish(d->undo_child, undo, d->notice,
					  d->notice_opaque, r < 0 ? NULL : err);

		if (r >= 0)
			r = r2;
	}
	disk_free(d);
	return r;
}

uint64_t disk_size(const struct disk *d)
{
	return d->size;
}

bool disk_is_readonly(const struct disk *d)
{
	return d->readonly;
}

const char *disk_serial(const struct disk *d)
{
	return d->serial;
}

const char *disk_format_name(const struct disk *d)
{
	return d->ops->name;
}

const char *disk_aio_name(const struct disk *d)
{
	return d->engine->name;
}

const char *disk_undo_path(const struct disk *d)
{
	return d->undo_child;
}

int disk_layer(const struct disk *d, unsigned i, struct disk_layer *out)
{
	struct stat st;
	int fd = -1, r;

	memset(out, 0, sizeof(*out));
	r = d->ops->layer(d, i, out, &fd);
	if (r <= 0)
		return r;
	/* fstat itself: glibc's fstat() is newfstatat(), which takes a path
	 * as well, and vsrv run's sandbox allows only the call on a file
	 * already open. */
	if (syscall(SYS_fstat, fd, &st) < 0)
		return -errno;
	out->size = S_ISREG(st.st_mode) ? (uint64_t)st.st_size : 0;
	out->mtime_sec = st.st_mtim.tv_sec;
	out->mtime_nsec = (uint32_t)st.st_mtim.tv_nsec;
	return 1;
}

static int snapshot(struct disk *d, const char *child_path, int fd, int direct_fd,
		    struct disk_error *err)
{
	int r = 0;

	if (!d->ops->snapshot)
		r = disk_set_error(err, -EOPNOTSUPP,
				   "%s: snapshots need a VHD disk", d->path);
	else if (d->undo != DISK_UNDO_NONE)
		r = disk_set_error(err, -EINVAL,
				   "%s: an undo disk's overlay is its snapshot already",
				   d->path);
	else if (d->readonly)
		r = disk_set_error(err, -EROFS, "%s: read-only", d->path);
	else if (atomic_load(&d->inflight))
		r = disk_set_error(err, -EBUSY,
				   "%s: requests in flight: quiesce the disk first",
				   d->path);
	if (r >= 0)
		return d->ops->snapshot(d, child_path, fd, direct_fd, err);
	if (fd >= 0)
		close(fd);
	if (direct_fd >= 0)
		close(direct_fd);
	return r;
}

int disk_snapshot(struct disk *d, const char *child_path,
		  struct disk_error *err)
{
	return snapshot(d, child_path, -1, -1, err);
}

int disk_snapshot_fd(struct disk *d, int fd, int direct_fd, const char *child_path,
		     struct disk_error *err)
{
	if (fd < 0) {
		if (direct_fd >= 0)
			close(direct_fd);
		return disk_set_error(err, -EBADF, "%s: no descriptor", child_path);
	}
	return snapshot(d, child_path, fd, direct_fd, err);
}

/* Requests */

static int check_range(const struct disk *d, uint64_t off, uint64_t len)
{
	if (off % DISK_SECTOR_SIZE || len % DISK_SECTOR_SIZE ||
	    off > d->size || len > d->size - off)
		return -EINVAL;
	return 0;
}

/* Hands req to its backend; from here on it completes through `done`. */
static int submit(struct disk_req *req, int (*fn)(struct disk_req *req))
{
	struct disk_queue *q = req->q;
	int r = fn ? fn(req) : 0;

	if (r < 0 && !req->status)
		req->status = r;
	q->inflight++;
	atomic_fetch_add(&q->d->inflight, 1);
	if (req_submitted(req) < 0) {
		q->inflight--;
		atomic_fetch_sub(&q->d->inflight, 1);
		req_free(req);
		return -ENOMEM;
	}
	q->d->engine->kick(q);
	return 0;
}

/*
 * O_DIRECT takes only aligned buffers, and a vector takes at most IOV_MAX
 * pieces: otherwise the data goes through a buffer of our own.  A read
 * copies out when it completes, so the guest's vector is kept.
 */
static int bounce(struct disk_req *req)
{
	size_t len = (req->len + DISK_ALIGN - 1) / DISK_ALIGN * DISK_ALIGN;

	if (posix_memalign(&req->bounce, DISK_ALIGN, len ? len : DISK_ALIGN))
		return -ENOMEM;
	if (req->kind == REQ_WRITE) {
		iov_to_buf(req->iov, req->iovcnt, req->bounce);
	} else {
		req->guest_iov = malloc(req->iovcnt * sizeof(req->iov[0]));
		if (!req->guest_iov)
			return -ENOMEM;
		memcpy(req->guest_iov, req->iov, req->iovcnt * sizeof(req->iov[0]));
		req->guest_iovcnt = req->iovcnt;
	}
	req->bounce_iov = (struct iovec){ req->bounce, req->len };
	req->iov = &req->bounce_iov;
	req->iovcnt = 1;
	return 0;
}

/* A request checked against the disk: writes to a read-only disk and
 * ranges unaligned or past the end are refused here. */
static int new_req(struct disk_queue *q, enum disk_req_kind kind, uint64_t off,
		   uint64_t len, disk_done_fn *done, void *opaque,
		   struct disk_req **out)
{
	struct disk *d = q->d;
	int r;

	if (kind != REQ_READ && d->readonly)
		return -EROFS;
	r = check_range(d, off, len);
	if (r < 0)
		return r;
	*out = req_new(q, kind, off, len, done, opaque);
	return *out ? 0 : -ENOMEM;
}

static int submit_rw(struct disk_queue *q, enum disk_req_kind kind, uint64_t off,
		     const struct iovec *iov, unsigned iovcnt,
		     disk_done_fn *done, void *opaque)
{
	struct disk *d = q->d;
	size_t len = iov_length(iov, iovcnt);
	struct disk_req *req;
	int r = new_req(q, kind, off, len, done, opaque, &req);

	if (r < 0)
		return r;
	req->iov = iov;
	req->iovcnt = iovcnt;
	if (iovcnt > IOV_MAX || (d->direct && !iov_aligned(iov, iovcnt, d->mem_align))) {
		r = bounce(req);
		if (r < 0) {
			req_free(req);
			return r;
		}
	}
	if (!len)
		return submit(req, NULL);
	return submit(req, kind == REQ_READ ? d->ops->read : d->ops->write);
}

int disk_submit_read(struct disk_queue *q, uint64_t off,
		     const struct iovec *iov, unsigned iovcnt,
		     disk_done_fn *done, void *opaque)
{
	return submit_rw(q, REQ_READ, off, iov, iovcnt, done, opaque);
}

int disk_submit_write(struct disk_queue *q, uint64_t off,
		      const struct iovec *iov, unsigned iovcnt,
		      disk_done_fn *done, void *opaque)
{
	return submit_rw(q, REQ_WRITE, off, iov, iovcnt, done, opaque);
}

int disk_submit_flush(struct disk_queue *q, disk_done_fn *done, void *opaque)
{
	struct disk_req *req = req_new(q, REQ_FLUSH, 0, 0, done, opaque);

	if (!req)
		return -ENOMEM;
	/* Nothing of a read-only disk's can need syncing. */
	return submit(req, q->d->readonly ? NULL : q->d->ops->flush);
}

static int submit_zeroes(struct disk_queue *q, enum disk_req_kind kind,
			 uint64_t off, uint64_t len, bool unmap,
			 disk_done_fn *done, void *opaque)
{
	struct disk_req *req;
	int r = new_req(q, kind, off, len, done, opaque, &req);

	if (r < 0)
		return r;
	req->unmap = unmap;
	if (!len)
		return submit(req, NULL);
	return submit(req, kind == REQ_DISCARD ? q->d->ops->discard
					       : q->d->ops->write_zeroes);
}

int disk_submit_discard(struct disk_queue *q, uint64_t off, uint64_t len,
			disk_done_fn *done, void *opaque)
{
	return submit_zeroes(q, REQ_DISCARD, off, len, true, done, opaque);
}

int disk_submit_write_zeroes(struct disk_queue *q, uint64_t off, uint64_t len,
			     bool unmap, disk_done_fn *done, void *opaque)
{
	return submit_zeroes(q, REQ_ZEROES, off, len, unmap, done, opaque);
}
