// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Conversion between raw images and VHDs, and VHD to VHD (flattening a
 * chain).  Sparse-aware both ways: a raw source's holes are found with
 * SEEK_DATA/SEEK_HOLE and a VHD source's with vhd_map(), so only data is
 * read; all-zero ranges are not written (a raw destination keeps them as
 * holes, a dynamic one leaves their blocks unallocated).  A 100 GiB disk
 * holding 1 GiB of data converts in the time of 1 GiB.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vhd-private.h"

/* Large enough to amortise system calls, a multiple of every block size
 * up to 2 MiB so that chunks line up with dynamic disks' blocks. */
#define CHUNK		(2u << 20)
/* Zero detection granularity for raw destinations: the file system's. */
#define ZERO_GRAIN	4096u
/* The largest single write into a raw destination. */
#define WRITE_PIECE	(128u << 10)

/*
 * The source is read into a buffer with pread().  Mapping it instead, so
 * that data would pass from page cache to page cache in one copy, measured
 * slower (docs/benchmarks.md): the page faults, the copies out of a user
 * mapping and the teardown cost more than the copy they save.
 */
struct source {
	struct vhd *vhd;	/* NULL: raw */
	int fd;
	uint64_t size;
};

static int source_open(struct source *s, const char *path, unsigned flags,
		       const struct vhd_convert_opts *o, struct vhd_error *err)
{
	struct stat st;

	memset(s, 0, sizeof(*s));
	s->fd = -1;
	if (vhd_probe(path)) {
		struct vhd_open_opts oo = {
			.flags = flags & (VHD_OPEN_IGNORE_CHECKSUMS |
					  VHD_OPEN_IGNORE_PARENT_ID),
			.warn = o->warn, .warn_opaque = o->warn_opaque,
		};
		int r = vhd_open(path, &oo, &s->vhd, err);

		if (r < 0)
			return r;
		s->size = s->vhd->size;
		return 0;
	}
	s->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (s->fd < 0 || fstat(s->fd, &st) < 0)
		return vhd_set_error(err, -errno, "%s: %s", path, strerror(errno));
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
		return vhd_set_error(err, -EINVAL, "%s: not a regular file", path);
	s->size = (uint64_t)lseek(s->fd, 0, SEEK_END);
	if (s->size == 0)
		return vhd_set_error(err, -EINVAL, "%s: empty file", path);
	return 0;
}

static void source_close(struct source *s)
{
	if (s->vhd)
		vhd_close(s->vhd);
	if (s->fd >= 0)
		close(s->fd);
}

/* The extent at off: *data tells whether it may hold non-zero bytes. */
static int source_extent(struct source *s, uint64_t off, uint64_t *len,
			 bool *data)
{
	uint64_t max = s->size - off;

	if (s->vhd) {
		struct vhd_extent e;
		uint64_t vmax = vhd_round_up(s->size, VHD_SECTOR_SIZE) - off;
		int r = vhd_map(s->vhd, off, vmax, &e);

		if (r < 0)
			return r;
		*data = e.kind == VHD_EXT_DATA;
		*len = e.len < max ? e.len : max;
		return 0;
	}
	off_t d = lseek(s->fd, (off_t)off, SEEK_DATA);

	if (d < 0 && errno == ENXIO) {		/* only a hole remains */
		*data = false;
		*len = max;
		return 0;
	}
	if (d < 0) {				/* no SEEK_DATA: all data */
		*data = true;
		*len = max;
		return 0;
	}
	if ((uint64_t)d > off) {
		*data = false;
		*len = (uint64_t)d - off;
		return 0;
	}
	off_t h = lseek(s->fd, (off_t)off, SEEK_HOLE);

	*data = true;
	*len = h < 0 || (uint64_t)h > s->size ? max : (uint64_t)h - off;
	if (*len == 0)
		*len = max;
	return 0;
}

/* Reads len bytes of the source at off into buf; *out points at them. */
static int source_read(struct source *s, uint8_t *buf, size_t len, uint64_t off)
{
	uint8_t *p = buf;

	if (s->vhd) {
		ssize_t n = vhd_pread(s->vhd, buf, len, off);

		return n < 0 ? (int)n : 0;
	}
	while (len) {
		ssize_t n = pread(s->fd, p, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0) {
			memset(p, 0, len);
			break;
		}
		p += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

/* Writes the non-zero 4 KiB grains of buf to a raw fd, leaving holes. */
static int write_sparse(int fd, const uint8_t *buf, size_t len, uint64_t off)
{
	size_t i = 0;

	while (i < len) {
		size_t g = len - i < ZERO_GRAIN ? len - i : ZERO_GRAIN;

		if (vhd_is_zero(buf + i, g)) {
			i += g;
			continue;
		}
		size_t j = i + g;

		/* At most WRITE_PIECE at once: on current kernels a large
		 * aligned write into a raw file lands in large page-cache
		 * folios, and filling those measured 3-4x slower here than
		 * filling small pieces (bench/analysis.md). */
		while (j < len && j - i < WRITE_PIECE) {
			size_t h = len - j < ZERO_GRAIN ? len - j : ZERO_GRAIN;

			if (vhd_is_zero(buf + j, h))
				break;
			j += h;
		}
		for (size_t done = i; done < j;) {
			ssize_t n = pwrite(fd, buf + done, j - done, (off_t)(off + done));

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				return n < 0 ? -errno : -EIO;
			done += (size_t)n;
		}
		i = j;
	}
	return 0;
}

static int report(const struct vhd_progress *p, uint64_t done, uint64_t total)
{
	if (p && p->fn && p->fn(p->opaque, done, total))
		return -ECANCELED;
	return 0;
}

/*
 * Reading and writing overlap: a reader thread fills a small ring of chunks
 * while the caller's thread writes them, so that on two CPUs the copy into
 * the buffers and the copy out of them run at once (qemu-img keeps several
 * requests in flight for the same reason).  The reader owns the source and
 * the writer the destination: each struct vhd stays on one thread.
 */
#define SLOTS	4

struct chunk {
	uint8_t *buf;
	uint64_t off;
	size_t len;
};

struct pipeline {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct source *src;
	struct chunk slot[SLOTS];
	unsigned head, tail, count;	/* filled: [tail, tail + count) */
	bool done;			/* the reader has finished */
	bool stop;			/* the writer wants no more */
	int err;			/* the reader's failure */
	uint64_t err_off;
	bool err_map;			/* in mapping, not reading */
};

/* Waits for a free slot; NULL when the writer stopped. */
static struct chunk *free_slot(struct pipeline *p)
{
	struct chunk *c = NULL;

	pthread_mutex_lock(&p->lock);
	while (p->count == SLOTS && !p->stop)
		pthread_cond_wait(&p->cond, &p->lock);
	if (!p->stop)
		c = &p->slot[p->head];
	pthread_mutex_unlock(&p->lock);
	return c;
}

static void publish(struct pipeline *p)
{
	pthread_mutex_lock(&p->lock);
	p->head = (p->head + 1) % SLOTS;
	p->count++;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
}

static void *read_ahead(void *arg)
{
	struct pipeline *p = arg;
	struct source *s = p->src;
	uint64_t off = 0;
	int r = 0;

	while (r >= 0 && off < s->size) {
		uint64_t len, end;
		bool data;

		r = source_extent(s, off, &len, &data);
		if (r < 0) {
			p->err_map = true;
			break;
		}
		if (!data) {
			off += len;
			continue;
		}
		/* Chunks end on CHUNK boundaries so that a dynamic
		 * destination sees whole blocks. */
		for (end = off + len; off < end;) {
			size_t n = (size_t)(CHUNK - off % CHUNK);
			struct chunk *c = free_slot(p);

			if (!c)
				goto out;
			if (n > end - off)
				n = (size_t)(end - off);
			r = source_read(s, c->buf, n, off);
			if (r < 0)
				break;
			c->off = off;
			c->len = n;
			publish(p);
			off += n;
		}
	}
out:
	pthread_mutex_lock(&p->lock);
	p->err = r < 0 ? r : 0;
	p->err_off = off;
	p->done = true;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

/* The next filled chunk, or NULL when the reader is done. */
static struct chunk *next_chunk(struct pipeline *p)
{
	struct chunk *c = NULL;

	pthread_mutex_lock(&p->lock);
	while (!p->count && !p->done)
		pthread_cond_wait(&p->cond, &p->lock);
	if (p->count)
		c = &p->slot[p->tail];
	pthread_mutex_unlock(&p->lock);
	return c;
}

static void release_chunk(struct pipeline *p)
{
	pthread_mutex_lock(&p->lock);
	p->tail = (p->tail + 1) % SLOTS;
	p->count--;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
}

static void stop_reader(struct pipeline *p)
{
	pthread_mutex_lock(&p->lock);
	p->stop = true;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
}

int vhd_convert(const char *src, const char *dst,
		const struct vhd_convert_opts *o, struct vhd_error *err)
{
	struct source s;
	struct vhd *out = NULL;
	struct pipeline pl = {
		.lock = PTHREAD_MUTEX_INITIALIZER,
		.cond = PTHREAD_COND_INITIALIZER,
	};
	pthread_t reader;
	bool started = false;
	uint64_t off = 0, vsize;
	int fd = -1, r;
	bool created = false;

	r = source_open(&s, src, o->open_flags, o, err);
	if (r < 0)
		goto out;
	vsize = vhd_round_up(s.size, VHD_SECTOR_SIZE);
	if (o->to == VHD_CONVERT_RAW) {
		fd = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (fd < 0) {
			r = vhd_set_error(err, -errno, "%s: %s", dst,
					  errno == EEXIST ? "already exists" : strerror(errno));
			goto out;
		}
		created = true;
		if (ftruncate(fd, (off_t)s.size) < 0) {
			r = vhd_set_error(err, -errno, "%s: %s", dst, strerror(errno));
			goto out;
		}
	} else {
		struct vhd_create_opts co = {
			.type = o->to == VHD_CONVERT_FIXED ? VHD_TYPE_FIXED
							   : VHD_TYPE_DYNAMIC,
			.size = vsize,
			.block_size = o->block_size,
			.warn = o->warn, .warn_opaque = o->warn_opaque,
		};
		/* The output is new: ordering its writes for a crash buys
		 * nothing, so only the end syncs, and only when asked. */
		struct vhd_open_opts oo = { .flags = VHD_OPEN_RDWR | VHD_OPEN_NO_SYNC };

		r = vhd_create(dst, &co, err);
		if (r < 0)
			goto out;
		created = true;
		r = vhd_open(dst, &oo, &out, err);
		if (r < 0)
			goto out;
	}
	r = report(o->progress, 0, s.size);
	for (int i = 0; r >= 0 && i < SLOTS; i++) {
		pl.slot[i].buf = aligned_alloc(4096, CHUNK);
		if (!pl.slot[i].buf)
			r = vhd_set_error(err, -ENOMEM, "%s: out of memory", dst);
	}
	pl.src = &s;
	if (r >= 0) {
		r = -pthread_create(&reader, NULL, read_ahead, &pl);
		if (r < 0)
			vhd_set_error(err, r, "%s: starting the reader: %s", src, strerror(-r));
		started = r >= 0;
	}
	while (r >= 0) {
		struct chunk *c = next_chunk(&pl);

		if (!c)
			break;
		if (out) {
			size_t w = (size_t)vhd_round_up(c->len, VHD_SECTOR_SIZE);

			/* The last sector of an odd-sized raw image is padded
			 * with zeros. */
			memset(c->buf + c->len, 0, w - c->len);
			r = (int)vhd_pwrite(out, c->buf, w, c->off);
		} else {
			r = write_sparse(fd, c->buf, c->len, c->off);
		}
		if (r < 0) {
			vhd_set_error(err, r, "%s: writing at %llu: %s", dst,
				      (unsigned long long)c->off, strerror(-r));
			break;
		}
		off = c->off + c->len;
		release_chunk(&pl);
		r = report(o->progress, off, s.size);
	}
	if (started) {
		stop_reader(&pl);
		pthread_join(reader, NULL);
		if (r >= 0 && pl.err < 0) {
			r = pl.err;
			vhd_set_error(err, r, "%s: %s at %llu: %s", src,
				      pl.err_map ? "mapping offset" : "reading",
				      (unsigned long long)pl.err_off, strerror(-r));
		}
	}
	if (r >= 0)
		r = report(o->progress, s.size, s.size);
	if (r == -ECANCELED)
		vhd_set_error(err, r, "%s: conversion cancelled", dst);
	if (r >= 0 && out) {
		r = vhd_flush(out);
		if (r >= 0 && o->sync)
			r = out->file->ops->flush(out->file);
		if (r < 0)
			vhd_set_error(err, r, "%s: %s", dst, strerror(-r));
	}
	if (r >= 0 && fd >= 0 && o->sync && fsync(fd) < 0)
		r = vhd_set_error(err, -errno, "%s: %s", dst, strerror(errno));
out:
	for (int i = 0; i < SLOTS; i++)
		free(pl.slot[i].buf);
	if (out && vhd_close(out) < 0 && r >= 0)
		r = vhd_set_error(err, -EIO, "%s: closing failed", dst);
	if (fd >= 0)
		close(fd);
	source_close(&s);
	/* No half-written destination is left behind. */
	if (r < 0 && created)
		unlink(dst);
	return r < 0 ? r : 0;
}
