// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Raw disks: a regular file or a block device, byte for byte.  Every
 * request is one operation on the one file.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "disk-private.h"

struct raw_disk {
	int fd;
};

static int raw_fd(struct disk_req *req)
{
	return ((struct raw_disk *)req->q->d->priv)->fd;
}

/*
 * What cache=none needs of the file: its buffer alignment from statx()
 * where the kernel reports one, and a probe that 512-byte direct I/O at a
 * 512-byte offset works (a 4 KiB-sector device refuses it, and guests see
 * 512-byte sectors).
 */
int disk_check_direct(struct disk *d, int fd, const char *path,
		      struct disk_error *err)
{
	struct statx stx;
	void *buf;
	ssize_t n;

	if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) == 0 &&
	    (stx.stx_mask & STATX_DIOALIGN) && stx.stx_dio_mem_align) {
		if (stx.stx_dio_offset_align > DISK_SECTOR_SIZE)
			return disk_set_error(err, -EINVAL,
					      "%s: cache=none: direct I/O here needs %u-byte alignment, more than a 512-byte sector; use cache=writeback",
					      path, stx.stx_dio_offset_align);
		if (stx.stx_dio_mem_align > d->mem_align)
			d->mem_align = stx.stx_dio_mem_align;
	}
	if (posix_memalign(&buf, DISK_ALIGN, DISK_SECTOR_SIZE))
		return disk_set_error(err, -ENOMEM, "%s: out of memory", path);
	n = pread(fd, buf, DISK_SECTOR_SIZE, DISK_SECTOR_SIZE);
	free(buf);
	if (n < 0 && errno == EINVAL)
		return disk_set_error(err, -EINVAL,
				      "%s: cache=none: the file system refuses 512-byte direct I/O; use cache=writeback",
				      path);
	return 0;
}

/* As libvhd locks its files: one writer, or any number of readers. */
static int lock_file(int fd, bool writable, const char *path,
		     struct disk_error *err)
{
	if (flock(fd, (writable ? LOCK_EX : LOCK_SH) | LOCK_NB) == 0)
		return 0;
	if (errno == EWOULDBLOCK)
		return disk_set_error(err, -EBUSY, "%s: in use by another process (%s)",
				      path, writable ? "needed for writing"
						     : "open for writing");
	return disk_set_error(err, -errno, "%s: cannot lock: %s", path,
			      strerror(errno));
}

static void raw_serial(struct disk *d, const struct stat *st)
{
	uint64_t x = (uint64_t)st->st_dev * 0x9e3779b97f4a7c15ull ^ (uint64_t)st->st_ino;

	snprintf(d->serial, sizeof(d->serial), "raw-%016llx", (unsigned long long)x);
}

static int raw_open(struct disk *d, const struct disk_spec *spec,
		    struct disk_error *err)
{
	int flags = (spec->readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC |
		    (d->direct ? O_DIRECT : 0);
	struct raw_disk *rd;
	struct stat st;
	uint64_t size;
	int fd, r;

	fd = open(spec->path, flags);
	if (fd < 0)
		return disk_set_error(err, -errno, "%s: %s", spec->path,
				      errno == EINVAL && d->direct ?
				      "cache=none: the file system does not support direct I/O (O_DIRECT)" :
				      strerror(errno));
	if (fstat(fd, &st) < 0) {
		r = disk_set_error(err, -errno, "%s: %s", spec->path, strerror(errno));
		goto fail;
	}
	if (S_ISBLK(st.st_mode)) {
		if (ioctl(fd, BLKGETSIZE64, &size) < 0) {
			r = disk_set_error(err, -errno, "%s: %s", spec->path,
					   strerror(errno));
			goto fail;
		}
	} else if (S_ISREG(st.st_mode)) {
		size = (uint64_t)st.st_size;
	} else {
		r = disk_set_error(err, -EINVAL, "%s: not a regular file or block device",
				   spec->path);
		goto fail;
	}
	if (size % DISK_SECTOR_SIZE) {
		r = disk_set_error(err, -EINVAL,
				   "%s: %llu bytes, not a whole number of 512-byte sectors",
				   spec->path, (unsigned long long)size);
		goto fail;
	}
	r = lock_file(fd, !spec->readonly, spec->path, err);
	if (r >= 0 && d->direct)
		r = disk_check_direct(d, fd, spec->path, err);
	if (r < 0)
		goto fail;
	rd = calloc(1, sizeof(*rd));
	if (!rd) {
		r = disk_set_error(err, -ENOMEM, "%s: out of memory", spec->path);
		goto fail;
	}
	rd->fd = fd;
	d->priv = rd;
	d->size = size;
	raw_serial(d, &st);
	return 0;
fail:
	close(fd);
	return r;
}

static int raw_close(struct disk *d, struct disk_error *err)
{
	struct raw_disk *rd = d->priv;
	int r = 0;

	/* What the guest did not flush is made durable all the same (not
	 * with cache=unsafe, whose point is never to wait for the disk). */
	if (!d->readonly && d->cache != DISK_CACHE_UNSAFE && fdatasync(rd->fd) < 0)
		r = disk_set_error(err, -errno, "%s: %s", d->path, strerror(errno));
	close(rd->fd);
	free(rd);
	return r;
}

static int raw_layer(const struct disk *d, unsigned i, struct disk_layer *out, int *fd)
{
	if (i)
		return 0;
	out->path = d->path;
	*fd = ((struct raw_disk *)d->priv)->fd;
	return 1;
}

static int raw_rw(struct disk_req *req)
{
	struct aio_op *op = req_op(req, req->kind == REQ_READ ? AIO_READ : AIO_WRITE,
				   raw_fd(req), req->off, 0, req->len);

	if (!op)
		return -ENOMEM;
	req_submit(req, op);
	return 0;
}

static int raw_flush(struct disk_req *req)
{
	struct aio_op *op;

	if (req->q->d->cache == DISK_CACHE_UNSAFE)
		return 0;
	op = req_op(req, AIO_FSYNC, raw_fd(req), 0, 0, 0);
	if (!op)
		return -ENOMEM;
	req_submit(req, op);
	return 0;
}

static int raw_discard(struct disk_req *req)
{
	return req_punch_file(req, raw_fd(req), req->off, req->len);
}

static int raw_write_zeroes(struct disk_req *req)
{
	/* Both leave zeros, on files and on block devices alike. */
	int mode = (req->unmap ? FALLOC_FL_PUNCH_HOLE : FALLOC_FL_ZERO_RANGE) |
		   FALLOC_FL_KEEP_SIZE;

	return req_zero_file(req, raw_fd(req), req->off, req->len, mode) ? 0 : -ENOMEM;
}

const struct disk_ops raw_disk_ops = {
	.name = "raw",
	.open = raw_open,
	.close = raw_close,
	.read = raw_rw,
	.write = raw_rw,
	.flush = raw_flush,
	.discard = raw_discard,
	.write_zeroes = raw_write_zeroes,
	.layer = raw_layer,
};
