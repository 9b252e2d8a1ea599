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
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vhd-private.h"

/* Large enough to amortise system calls, a multiple of every block size
 * up to 2 MiB so that chunks line up with dynamic disks' blocks. */
#define CHUNK		(2u << 20)
/* Zero detection granularity for raw destinations: the file system's. */
#define ZERO_GRAIN	4096u

/*
 * The source's files are mapped rather than read: data then passes from the
 * source's page cache to the destination's in one copy (the write), and
 * zero detection reads the mapping.  pread into a buffer is the fallback.
 */
struct mapping {
	const struct vhd *layer;	/* NULL for a raw source */
	const uint8_t *base;
	uint64_t len;
};

struct source {
	struct vhd *vhd;	/* NULL: raw */
	int fd;
	uint64_t size;
	struct mapping maps[VHD_MAX_CHAIN_DEPTH + 1];
	unsigned nr_maps;
};

/* The mapping of a whole file, made on first use; NULL if it cannot be. */
static const uint8_t *map_file(struct source *s, const struct vhd *layer,
			       int fd, uint64_t len)
{
	void *p;

	for (unsigned i = 0; i < s->nr_maps; i++)
		if (s->maps[i].layer == layer)
			return s->maps[i].base;
	if (fd < 0 || len == 0 || s->nr_maps == VHD_MAX_CHAIN_DEPTH + 1)
		return NULL;
	p = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return NULL;
	madvise(p, len, MADV_SEQUENTIAL);
	s->maps[s->nr_maps].layer = layer;
	s->maps[s->nr_maps].base = p;
	s->maps[s->nr_maps].len = len;
	s->nr_maps++;
	return p;
}

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
	for (unsigned i = 0; i < s->nr_maps; i++)
		munmap((void *)s->maps[i].base, s->maps[i].len);
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

/* Points *out at len bytes of the source at off: into a mapping when the
 * range lies in one file, else into buf after reading. */
static int source_get(struct source *s, uint8_t *buf, size_t len, uint64_t off,
		      const uint8_t **out)
{
	if (s->vhd) {
		struct vhd_extent e;
		int r = vhd_map(s->vhd, off, len, &e);

		if (r < 0)
			return r;
		if (e.kind == VHD_EXT_DATA && e.len >= len &&
		    e.file_off + len <= e.layer->file_size) {
			const uint8_t *m = map_file(s, e.layer, vhd_get_fd(e.layer),
						    e.layer->file_size);

			if (m) {
				*out = m + e.file_off;
				return 0;
			}
		}
		ssize_t n = vhd_pread(s->vhd, buf, len, off);

		*out = buf;
		return n < 0 ? (int)n : 0;
	}
	const uint8_t *m = off + len <= s->size ? map_file(s, NULL, s->fd, s->size)
						: NULL;

	if (m) {
		*out = m + off;
		return 0;
	}
	uint8_t *p = buf;

	*out = buf;
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

		while (j < len) {
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

int vhd_convert(const char *src, const char *dst,
		const struct vhd_convert_opts *o, struct vhd_error *err)
{
	struct source s;
	struct vhd *out = NULL;
	uint8_t *buf = NULL;
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
	buf = aligned_alloc(4096, CHUNK);
	if (!buf) {
		r = vhd_set_error(err, -ENOMEM, "%s: out of memory", dst);
		goto out;
	}
	r = report(o->progress, 0, s.size);
	while (r >= 0 && off < s.size) {
		uint64_t len;
		bool data;

		r = source_extent(&s, off, &len, &data);
		if (r < 0) {
			vhd_set_error(err, r, "%s: mapping offset %llu: %s", src,
				      (unsigned long long)off, strerror(-r));
			break;
		}
		if (!data) {
			off += len;
			continue;
		}
		/* Chunks end on CHUNK boundaries so that a dynamic
		 * destination sees whole blocks. */
		uint64_t end = off + len;

		while (off < end) {
			size_t n = (size_t)(CHUNK - off % CHUNK);

			if (n > end - off)
				n = (size_t)(end - off);
			const uint8_t *in;

			r = source_get(&s, buf, n, off, &in);
			if (r < 0) {
				vhd_set_error(err, r, "%s: reading at %llu: %s", src,
					      (unsigned long long)off, strerror(-r));
				break;
			}
			if (out) {
				size_t w = (size_t)vhd_round_up(n, VHD_SECTOR_SIZE);

				/* The last sector of an odd-sized raw image is
				 * padded with zeros. */
				if (w != n) {
					if (in != buf)
						memcpy(buf, in, n);
					memset(buf + n, 0, w - n);
					in = buf;
				}
				r = (int)vhd_pwrite(out, in, w, off);
			} else {
				r = write_sparse(fd, in, n, off);
			}
			if (r < 0) {
				vhd_set_error(err, r, "%s: writing at %llu: %s", dst,
					      (unsigned long long)off, strerror(-r));
				break;
			}
			off += n;
			r = report(o->progress, off, s.size);
			if (r < 0)
				break;
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
	free(buf);
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
