// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * VHD disks through libvhd's asynchronous data path (the shape of
 * bench/vhd-iobench.c): libvhd says where each range lives, and the data
 * moves by the engine straight between the guest's buffers and the files.
 *
 *   read    vhd_map() per extent: a range may lie in several layers of a
 *           chain, or read as zeros and need no I/O at all;
 *   write   vhd_map_for_write() per block (allocating it), the write, then
 *           vhd_write_done() once it completed, so that a differencing
 *           disk's bitmap never claims a sector before its data is there;
 *   flush   vhd_flush(), in a pool thread: it syncs, writes bitmaps and
 *           BAT, and syncs again.
 *
 * A struct vhd is not thread-safe: one mutex per disk covers every call
 * into libvhd, none of which waits for the guest's data (only metadata).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "disk-private.h"
#include "vhd.h"

struct vhd_disk {
	struct vhd *v;
	pthread_mutex_t lock;
	/* cache=none: each layer's file again, with O_DIRECT, by depth.
	 * libvhd's own descriptors keep the page cache for its metadata:
	 * new blocks' data starts on a 4 KiB boundary and fills whole
	 * pages, so data and metadata never share a page. */
	int *fds;
	unsigned nr_fds;
	/* Each layer's unique id, by depth, for disk_layer(): read at open
	 * (vhd_get_info() converts a parent's name through iconv, which
	 * opens its modules: not in the sandbox). */
	char (*uuids)[37];
	unsigned nr_layers;
};

static struct vhd_disk *vd_of(struct disk_req *req)
{
	return req->q->d->priv;
}

static int data_fd(struct vhd_disk *vd, struct vhd *layer, unsigned depth)
{
	return vd->fds ? vd->fds[depth] : vhd_get_fd(layer);
}

/* The bytes of [off, off + len) within the block holding off. */
static uint64_t in_block(struct vhd_disk *vd, uint64_t off, uint64_t len)
{
	uint32_t bs = vhd_block_size(vd->v);
	uint64_t left = bs ? bs - off % bs : len;

	return left < len ? left : len;
}

static void close_direct(struct vhd_disk *vd)
{
	for (unsigned i = 0; i < vd->nr_fds; i++)
		if (vd->fds[i] >= 0)
			close(vd->fds[i]);
	free(vd->fds);
	vd->fds = NULL;
	vd->nr_fds = 0;
}

static int open_direct(struct disk *d, struct vhd_disk *vd, struct disk_error *err)
{
	unsigned n = 0;
	struct vhd *l;

	for (l = vd->v; l; l = vhd_parent(l))
		n++;
	vd->fds = malloc(n * sizeof(int));
	if (!vd->fds)
		return disk_set_error(err, -ENOMEM, "%s: out of memory", d->path);
	for (l = vd->v; l; l = vhd_parent(l)) {
		uint32_t bs = vhd_block_size(l);
		bool rw = l == vd->v && !d->readonly;
		struct stat a, b;
		int fd, r;

		if (bs && bs < 4096)
			return disk_set_error(err, -EINVAL,
					      "%s: cache=none: blocks of %u bytes would share pages with metadata; use cache=writeback",
					      vhd_name(l), bs);
		fd = open(vhd_name(l), (rw ? O_RDWR : O_RDONLY) | O_DIRECT | O_CLOEXEC);
		if (fd < 0)
			return disk_set_error(err, -errno, "%s: %s", vhd_name(l),
					      errno == EINVAL ?
					      "cache=none: the file system does not support direct I/O (O_DIRECT)" :
					      strerror(errno));
		vd->fds[vd->nr_fds++] = fd;
		/* The same file libvhd has open, not one renamed over it. */
		if (fstat(fd, &a) < 0 || fstat(vhd_get_fd(l), &b) < 0 ||
		    a.st_dev != b.st_dev || a.st_ino != b.st_ino)
			return disk_set_error(err, -ESTALE,
					      "%s: replaced while being opened", vhd_name(l));
		r = disk_check_direct(d, fd, vhd_name(l), err);
		if (r < 0)
			return r;
	}
	return 0;
}

/* The bottom layer's unique id: the same under snapshots and undo
 * overlays, which add layers on top of the disk the guest knows. */
static void vhd_serial(struct disk *d, struct vhd *v)
{
	struct vhd_info *info = malloc(sizeof(*info));
	size_t n = 0;

	while (vhd_parent(v))
		v = vhd_parent(v);
	if (!info || vhd_get_info(v, info) < 0) {
		free(info);
		return;
	}
	for (unsigned i = 0; i < 10; i++)
		n += (size_t)snprintf(d->serial + n, sizeof(d->serial) - n, "%02x",
				      info->uuid[i]);
	free(info);
}

/* Each layer's unique id, by depth.  No system call: after a snapshot
 * this runs in vsrv run's sandbox. */
static int read_uuids(struct vhd_disk *vd)
{
	uint8_t uuid[16];
	unsigned n = 0;
	struct vhd *l;

	for (l = vd->v; l; l = vhd_parent(l))
		n++;
	free(vd->uuids);
	vd->uuids = calloc(n, sizeof(*vd->uuids));
	vd->nr_layers = 0;
	if (!vd->uuids)
		return -ENOMEM;
	for (l = vd->v; l; l = vhd_parent(l)) {
		vhd_get_uuid(l, uuid);
		vhd_uuid_format(uuid, vd->uuids[vd->nr_layers++]);
	}
	return 0;
}

static int vhd_layer(const struct disk *d, unsigned i, struct disk_layer *out, int *fd)
{
	struct vhd_disk *vd = d->priv;
	struct vhd *l = vd->v;

	for (unsigned k = 0; l && k < i; k++)
		l = vhd_parent(l);
	if (!l || i >= vd->nr_layers)
		return 0;
	out->path = vhd_name(l);
	out->vhd = true;
	out->empty = vhd_layer_empty(l);
	memcpy(out->id, vd->uuids[i], sizeof(out->id));
	*fd = vhd_get_fd(l);
	return 1;
}

static int vhd_disk_open(struct disk *d, const struct disk_spec *spec,
			 struct disk_error *err)
{
	struct vhd_open_opts oo = {
		.flags = (spec->readonly ? 0 : VHD_OPEN_RDWR) |
			 (spec->cache == DISK_CACHE_UNSAFE ? VHD_OPEN_NO_SYNC : 0),
		.warn = spec->notice,
		.warn_opaque = spec->notice_opaque,
	};
	struct vhd_error verr = { 0 };
	struct vhd_disk *vd = calloc(1, sizeof(*vd));
	int r;

	if (!vd)
		return disk_set_error(err, -ENOMEM, "%s: out of memory", spec->path);
	r = vhd_open(spec->path, &oo, &vd->v, &verr);
	if (r < 0) {
		free(vd);
		return disk_set_error(err, r, "%s", verr.msg);
	}
	if (d->direct) {
		r = open_direct(d, vd, err);
		if (r < 0) {
			close_direct(vd);
			vhd_close(vd->v);
			free(vd);
			return r;
		}
	}
	if (read_uuids(vd) < 0) {
		close_direct(vd);
		vhd_close(vd->v);
		free(vd->uuids);
		free(vd);
		return disk_set_error(err, -ENOMEM, "%s: out of memory", spec->path);
	}
	pthread_mutex_init(&vd->lock, NULL);
	d->priv = vd;
	d->size = vhd_size(vd->v);
	vhd_serial(d, vd->v);
	return 0;
}

static int vhd_disk_close(struct disk *d, struct disk_error *err)
{
	struct vhd_disk *vd = d->priv;
	int r;

	close_direct(vd);
	r = vhd_close(vd->v);
	if (r < 0)
		disk_set_error(err, r, "%s: flushing at close: %s", d->path,
			       strerror(-r));
	pthread_mutex_destroy(&vd->lock);
	free(vd->uuids);
	free(vd);
	return r;
}

/* Calls fn on each extent of the request's range, as libvhd maps it. */
static int map_extents(struct disk_req *req,
		       int (*fn)(struct disk_req *req, const struct vhd_extent *e,
				 uint64_t done))
{
	struct vhd_disk *vd = vd_of(req);
	uint64_t done = 0;
	int r = 0;

	pthread_mutex_lock(&vd->lock);
	while (done < req->len) {
		struct vhd_extent e;

		r = vhd_map(vd->v, req->off + done, req->len - done, &e);
		if (r >= 0 && (!e.len || e.len > req->len - done))
			r = -EIO;
		if (r >= 0)
			r = fn(req, &e, done);
		if (r < 0)
			break;
		done += e.len;
	}
	pthread_mutex_unlock(&vd->lock);
	return r;
}

static int read_extent(struct disk_req *req, const struct vhd_extent *e,
		       uint64_t done)
{
	struct aio_op *op;

	if (e->kind == VHD_EXT_ZERO) {
		iov_zero(req->iov, req->iovcnt, done, e->len);
		return 0;
	}
	op = req_op(req, AIO_READ, data_fd(vd_of(req), e->layer, e->depth),
		    e->file_off, done, e->len);
	if (!op)
		return -ENOMEM;
	req_submit(req, op);
	return 0;
}

static int vhd_disk_read(struct disk_req *req)
{
	return map_extents(req, read_extent);
}

static int vhd_disk_write(struct disk_req *req)
{
	struct vhd_disk *vd = vd_of(req);
	int fd = data_fd(vd, vd->v, 0);
	uint64_t done = 0;
	int r = 0;

	pthread_mutex_lock(&vd->lock);
	while (done < req->len) {
		uint64_t k = in_block(vd, req->off + done, req->len - done), fo;
		struct aio_op *op;

		r = vhd_map_for_write(vd->v, req->off + done, k, &fo);
		if (r < 0)
			break;
		op = req_op(req, AIO_WRITE, fd, fo, done, k);
		if (!op) {
			r = -ENOMEM;
			break;
		}
		op->disk_off = req->off + done;
		op->disk_len = k;
		req_submit(req, op);
		done += k;
	}
	pthread_mutex_unlock(&vd->lock);
	return r;
}

/* After the data: the sectors now read from the top layer.  Nothing is
 * recorded for a request that failed anywhere; its sectors keep reading
 * as before, which a failed write allows. */
static void vhd_disk_finish(struct disk_req *req)
{
	struct vhd_disk *vd = vd_of(req);

	if ((req->kind != REQ_WRITE && req->kind != REQ_ZEROES) || req->status)
		return;
	pthread_mutex_lock(&vd->lock);
	for (struct aio_op *op = req->ops; op; op = op->sibling) {
		int r;

		if (!op->disk_len)
			continue;
		r = vhd_write_done(vd->v, op->disk_off, op->disk_len);
		if (r < 0 && !req->status)
			req->status = r;
	}
	pthread_mutex_unlock(&vd->lock);
}

static int flush_call(struct aio_op *op)
{
	struct vhd_disk *vd = vd_of(op->req);
	int r;

	pthread_mutex_lock(&vd->lock);
	r = vhd_flush(vd->v);
	pthread_mutex_unlock(&vd->lock);
	return r;
}

/* cache=unsafe opened the chain with VHD_OPEN_NO_SYNC: the flush then
 * writes the metadata, so that the VMM's own crash loses nothing, but
 * never waits for the disk. */
static int vhd_disk_flush(struct disk_req *req)
{
	struct aio_op *op = req_op(req, AIO_CALL, -1, 0, 0, 0);

	if (!op)
		return -ENOMEM;
	op->call = flush_call;
	req_submit(req, op);
	return 0;
}

/* Frees what only the top layer holds; leaves the rest (a parent's data
 * cannot be freed from here, and zeros written would free nothing). */
static int discard_extent(struct disk_req *req, const struct vhd_extent *e,
			  uint64_t done)
{
	struct vhd_disk *vd = vd_of(req);

	if (e->kind != VHD_EXT_DATA || e->depth != 0)
		return 0;
	return req_punch_file(req, data_fd(vd, vd->v, 0), e->file_off, e->len);
}

static int vhd_disk_discard(struct disk_req *req)
{
	return map_extents(req, discard_extent);
}

/* Whether the whole chain reads [off, off + len) as zeros without
 * holding it anywhere (an unallocated block). */
static int reads_as_hole(struct vhd_disk *vd, uint64_t off, uint64_t len)
{
	while (len) {
		struct vhd_extent e;
		int r = vhd_map(vd->v, off, len, &e);

		if (r < 0)
			return r;
		if (e.kind != VHD_EXT_ZERO || !e.len || e.len > len)
			return 0;
		off += e.len;
		len -= e.len;
	}
	return 1;
}

static int vhd_disk_write_zeroes(struct disk_req *req)
{
	struct vhd_disk *vd = vd_of(req);
	int fd = data_fd(vd, vd->v, 0);
	int mode = (req->unmap ? FALLOC_FL_PUNCH_HOLE : FALLOC_FL_ZERO_RANGE) |
		   FALLOC_FL_KEEP_SIZE;
	uint64_t done = 0;
	int r = 0;

	pthread_mutex_lock(&vd->lock);
	while (done < req->len) {
		uint64_t o = req->off + done, k = in_block(vd, o, req->len - done), fo;
		struct aio_op *op;

		r = reads_as_hole(vd, o, k);
		if (r < 0)
			break;
		if (r == 0) {
			/* Zeros in the top layer's block, which hides the
			 * parents' data once the sectors are recorded. */
			r = vhd_map_for_write(vd->v, o, k, &fo);
			if (r < 0)
				break;
			op = req_zero_file(req, fd, fo, k, mode);
			if (!op) {
				r = -ENOMEM;
				break;
			}
			op->disk_off = o;
			op->disk_len = k;
		}
		r = 0;
		done += k;
	}
	pthread_mutex_unlock(&vd->lock);
	return r;
}

/* cache=none after a snapshot onto a handed file: its O_DIRECT twin
 * (which must be the same file) on top of the layers' own, by depth. */
static int push_direct(struct vhd_disk *vd, int fd, int direct_fd, const char *child,
		       struct disk_error *err)
{
	struct stat a, b;
	int *fds;

	if (direct_fd < 0)
		return disk_set_error(err, -EINVAL, "%s: cache=none: no direct descriptor came with it",
				      child);
	/* fstat itself, as disk_layer() does: the sandbox's. */
	if (syscall(SYS_fstat, fd, &a) < 0 || syscall(SYS_fstat, direct_fd, &b) < 0 ||
	    a.st_dev != b.st_dev || a.st_ino != b.st_ino)
		return disk_set_error(err, -ESTALE, "%s: its direct descriptor is another file",
				      child);
	fds = realloc(vd->fds, (vd->nr_fds + 1) * sizeof(int));
	if (!fds)
		return disk_set_error(err, -ENOMEM, "%s: out of memory", child);
	memmove(fds + 1, fds, vd->nr_fds * sizeof(int));
	fds[0] = direct_fd;
	vd->fds = fds;
	vd->nr_fds++;
	return 0;
}

/* fd < 0: libvhd creates child_path; else fd is that file, made by the
 * caller (and direct_fd its O_DIRECT twin for cache=none). */
static int vhd_disk_snapshot(struct disk *d, const char *child, int fd, int direct_fd,
			     struct disk_error *err)
{
	struct vhd_disk *vd = d->priv;
	struct vhd_error verr = { 0 };
	struct vhd_file *f = NULL;
	char *path = strdup(child);
	int r;

	if (!path) {
		if (fd >= 0)
			close(fd);
		if (direct_fd >= 0)
			close(direct_fd);
		return disk_set_error(err, -ENOMEM, "%s: out of memory", child);
	}
	/* The twin first, while nothing has changed yet. */
	if (fd >= 0 && vd->fds) {
		r = push_direct(vd, fd, direct_fd, child, err);
		if (r < 0) {
			close(fd);
			if (direct_fd >= 0)
				close(direct_fd);
			free(path);
			return r;
		}
	} else if (direct_fd >= 0) {
		close(direct_fd);	/* not cache=none: unused */
	}
	pthread_mutex_lock(&vd->lock);
	if (fd >= 0) {
		/* The caller locked it if it wanted: a sandbox may not. */
		r = vhd_file_from_fd(fd, child, true, false, &f, &verr);
		if (r >= 0)
			r = vhd_snapshot_file(vd->v, f, child, &verr);
	} else {
		r = vhd_snapshot(vd->v, child, &verr);
	}
	pthread_mutex_unlock(&vd->lock);
	if (r < 0) {
		if (fd >= 0 && vd->fds) {
			close(vd->fds[0]);
			memmove(vd->fds, vd->fds + 1, --vd->nr_fds * sizeof(int));
		}
		free(path);
		return disk_set_error(err, r, "%s", verr.msg);
	}
	free(d->path);
	d->path = path;
	/* The layers moved down a place, under a new top. */
	if (read_uuids(vd) < 0)
		r = disk_set_error(err, -ENOMEM, "%s: out of memory", child);
	if (r >= 0 && fd < 0 && vd->fds) {
		close_direct(vd);
		r = open_direct(d, vd, err);
		if (r < 0)
			close_direct(vd);
	}
	return r;
}

const struct disk_ops vhd_disk_ops = {
	.name = "vhd",
	.open = vhd_disk_open,
	.close = vhd_disk_close,
	.read = vhd_disk_read,
	.write = vhd_disk_write,
	.flush = vhd_disk_flush,
	.discard = vhd_disk_discard,
	.write_zeroes = vhd_disk_write_zeroes,
	.finish = vhd_disk_finish,
	.snapshot = vhd_disk_snapshot,
	.layer = vhd_layer,
};
