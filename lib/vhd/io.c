// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Reading and writing the data of a VHD, and keeping its metadata crash-safe.
 *
 * The rule that makes a power loss harmless: nothing on disk may point at
 * something that is not yet durable.  So:
 *  - a new block is appended after everything in use; its data area lies
 *    past the old end of the file and therefore reads as zeros until written;
 *  - data, and the bitmaps of blocks no on-disk BAT entry references yet,
 *    are written as they come;
 *  - at flush: sync; then the BAT sectors and the bitmaps of blocks the
 *    on-disk BAT already references; sync again.
 * A crash before the second sync leaves at worst unreferenced space at the
 * end (check reports it as leaked and repair truncates it) and loses only
 * writes that were never flushed.
 *
 * One sync is enough when no bitmap of a referenced block changed, which
 * is always the case for vsrv's own dynamic disks (a new block's bitmap is
 * all ones from the start): then the BAT is written before the single
 * sync.  If a BAT entry is durable and the block's bitmap or data is not,
 * the block reads what lies there: a new block never starts on the old
 * footer's sector, so that is either the all-ones bitmap over zeros or
 * never-written space, which reads as zeros.  Either way the unflushed
 * sectors read as they did before, which a crash is allowed to show.  A
 * differencing disk cannot do this: its bitmap bits say "here, not in the
 * parent", and must not become durable before the data they cover.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vhd-private.h"

/* Bytes of bitmaps kept in memory, beyond which clean ones are dropped:
 * bounded in bytes, not entries, since a block's bitmap is 512 bytes for
 * 2 MiB blocks but 64 KiB for 256 MiB ones (and a hostile file may claim
 * thousands of those). */
#define VHD_BITMAP_CACHE_BYTES	(32u << 20)
/* Bytes of dirty bitmaps beyond which a write flushes first. */
#define VHD_DIRTY_BITMAP_BYTES	(8u << 20)

static uint32_t cache_limit(const struct vhd *v)
{
	return VHD_BITMAP_CACHE_BYTES / v->bitmap_size;
}

static uint32_t dirty_limit(const struct vhd *v)
{
	uint32_t n = VHD_DIRTY_BITMAP_BYTES / v->bitmap_size;

	return n ? n : 1;
}

static bool bit_get(const uint8_t *bm, uint32_t s)
{
	return bm[s >> 3] & (0x80u >> (s & 7));
}

static void bits_set(uint8_t *bm, uint32_t s, uint32_t n)
{
	for (; n && (s & 7); s++, n--)
		bm[s >> 3] |= (uint8_t)(0x80u >> (s & 7));
	if (n >= 8) {
		memset(bm + (s >> 3), 0xff, n >> 3);
		s += n & ~7u;
		n &= 7;
	}
	for (; n; s++, n--)
		bm[s >> 3] |= (uint8_t)(0x80u >> (s & 7));
}

static bool bitmap_all_set(const struct vhd *v, const uint8_t *bm)
{
	uint32_t whole = v->sectors_per_block / 8;

	for (uint32_t i = 0; i < whole; i++)
		if (bm[i] != 0xff)
			return false;
	for (uint32_t s = whole * 8; s < v->sectors_per_block; s++)
		if (!bit_get(bm, s))
			return false;
	return true;
}

static void set_full(struct vhd *v, uint32_t b)
{
	v->full[b >> 3] |= (uint8_t)(1u << (b & 7));
}

static void free_bitmap(struct vhd *v, uint32_t b)
{
	struct vhd_bitmap *bm = v->bitmaps[b];

	if (!bm)
		return;
	free(bm);
	v->bitmaps[b] = NULL;
	v->nr_cached--;
}

/* Drops clean cached bitmaps, when the cache is full or on request. */
void vhd_drop_bitmaps(struct vhd *v)
{
	for (uint32_t b = 0; b < v->max_entries && v->bitmaps; b++)
		if (v->bitmaps[b] && !v->bitmaps[b]->dirty)
			free_bitmap(v, b);
}

static struct vhd_bitmap *new_bitmap(struct vhd *v, uint32_t b)
{
	struct vhd_bitmap *bm;

	if (v->nr_cached >= cache_limit(v))
		vhd_drop_bitmaps(v);
	bm = calloc(1, sizeof(*bm) + v->bitmap_size);
	if (!bm)
		return NULL;
	v->bitmaps[b] = bm;
	v->nr_cached++;
	return bm;
}

/* Returns the bitmap of an allocated block, or NULL in *out when it is
 * known to be all ones. */
int vhd_load_bitmap(struct vhd *v, uint32_t b, struct vhd_bitmap **out)
{
	struct vhd_bitmap *bm;
	int r;

	*out = NULL;
	if (vhd_block_full(v, b))
		return 0;
	if (v->bitmaps[b]) {
		*out = v->bitmaps[b];
		return 0;
	}
	bm = new_bitmap(v, b);
	if (!bm)
		return -ENOMEM;
	r = vhd_read_exact(v->file, bm->bits, v->bitmap_size, vhd_block_off(v, b));
	if (r < 0) {
		free_bitmap(v, b);
		return r;
	}
	if (bitmap_all_set(v, bm->bits)) {
		free_bitmap(v, b);
		set_full(v, b);
		return 0;
	}
	*out = bm;
	return 0;
}

static int read_below(struct vhd *v, void *buf, size_t len, uint64_t off)
{
	struct vhd *p = v->parent;
	size_t in = 0;

	if (p && off < p->size) {
		in = p->size - off < len ? (size_t)(p->size - off) : len;
		ssize_t r = vhd_pread(p, buf, in, off);

		if (r < 0)
			return (int)r;
	}
	memset((uint8_t *)buf + in, 0, len - in);
	return 0;
}

/* Reads [s, s + n) sectors of block b. */
static int read_block(struct vhd *v, uint32_t b, uint32_t s, uint32_t n,
		      uint8_t *buf)
{
	uint64_t voff = (uint64_t)b * v->block_size + (uint64_t)s * VHD_SECTOR_SIZE;
	uint64_t data = vhd_block_off(v, b) + v->bitmap_size;
	struct vhd_bitmap *bm;
	int r;

	if (v->bat[b] == VHD_BAT_UNUSED)
		return read_below(v, buf, (size_t)n * VHD_SECTOR_SIZE, voff);
	r = vhd_load_bitmap(v, b, &bm);
	if (r < 0)
		return r;
	if (!bm)
		return vhd_read_exact(v->file, buf, (size_t)n * VHD_SECTOR_SIZE,
				      data + (uint64_t)s * VHD_SECTOR_SIZE);
	/* Runs of sectors: set bits are here, clear bits are below (in a
	 * dynamic disk, below is zeros: never-written sectors). */
	while (n) {
		bool here = bit_get(bm->bits, s);
		uint32_t k = 1;

		while (k < n && bit_get(bm->bits, s + k) == here)
			k++;
		if (here)
			r = vhd_read_exact(v->file, buf, (size_t)k * VHD_SECTOR_SIZE,
					   data + (uint64_t)s * VHD_SECTOR_SIZE);
		else
			r = read_below(v, buf, (size_t)k * VHD_SECTOR_SIZE,
				       voff);
		if (r < 0)
			return r;
		buf += (size_t)k * VHD_SECTOR_SIZE;
		voff += (uint64_t)k * VHD_SECTOR_SIZE;
		s += k;
		n -= k;
	}
	return 0;
}

static int check_range(struct vhd *v, size_t len, uint64_t off)
{
	if (off % VHD_SECTOR_SIZE || len % VHD_SECTOR_SIZE)
		return -EINVAL;
	if (off > v->size || len > v->size - off)
		return -ERANGE;
	return 0;
}

ssize_t vhd_pread(struct vhd *v, void *buf, size_t len, uint64_t off)
{
	uint8_t *p = buf;
	size_t done = 0;
	int r = check_range(v, len, off);

	if (r < 0)
		return r;
	if (v->type == VHD_TYPE_FIXED) {
		r = vhd_read_exact(v->file, buf, len, off);
		return r < 0 ? r : (ssize_t)len;
	}
	while (done < len) {
		uint64_t o = off + done;
		uint32_t b = (uint32_t)(o / v->block_size);
		uint32_t s = (uint32_t)(o % v->block_size / VHD_SECTOR_SIZE);
		uint32_t n = v->sectors_per_block - s;

		if ((uint64_t)n * VHD_SECTOR_SIZE > len - done)
			n = (uint32_t)((len - done) / VHD_SECTOR_SIZE);
		r = read_block(v, b, s, n, p + done);
		if (r < 0)
			return r;
		done += (size_t)n * VHD_SECTOR_SIZE;
	}
	return (ssize_t)len;
}

int vhd_write_footer(struct vhd *v, uint64_t off, bool copy)
{
	uint8_t buf[VHD_FOOTER_SIZE];
	int r;

	vhd_footer_encode(&v->footer, buf);
	v->footer.checksum = vhd_footer_checksum(buf);
	r = vhd_write_exact(v->file, buf, sizeof(buf), off);
	if (r >= 0 && copy && v->type != VHD_TYPE_FIXED)
		r = vhd_write_exact(v->file, buf, sizeof(buf), 0);
	return r;
}

static void mark_bat_dirty(struct vhd *v, uint32_t b)
{
	v->bat_dirty[b / (VHD_SECTOR_SIZE / 4)] = 1;
	v->meta_dirty = true;
}

/* Appends block b after everything in use. */
static int alloc_block(struct vhd *v, uint32_t b)
{
	uint64_t align = v->block_size >= 4096 ? 4096 : VHD_SECTOR_SIZE;
	/* Clear of the footer's sector: see the top of the file. */
	uint64_t from = v->data_end > v->footer_off + VHD_FOOTER_SIZE ?
			v->data_end : v->footer_off + VHD_FOOTER_SIZE;
	uint64_t p = vhd_round_up(from + v->bitmap_size, align) - v->bitmap_size;
	uint64_t end, skip;

	/* Never over metadata, even a locator a damaged header places past
	 * the end of the file. */
	while ((skip = vhd_meta_overlap(v, p, v->bitmap_size + v->block_size)))
		p = vhd_round_up(skip + v->bitmap_size, align) - v->bitmap_size;
	end = p + v->bitmap_size + v->block_size;
	struct vhd_bitmap *bm;
	int r;

	if (p / VHD_SECTOR_SIZE >= VHD_BAT_UNUSED)
		return -EFBIG;
	if (v->nr_dirty_bitmaps >= dirty_limit(v)) {
		r = vhd_flush(v);
		if (r < 0)
			return r;
	}
	bm = v->bitmaps[b] ? v->bitmaps[b] : new_bitmap(v, b);
	if (!bm)
		return -ENOMEM;
	/* The footer first: it extends the file, so the new data area is a
	 * hole that reads as zeros, and the file is never without one. */
	r = vhd_write_footer(v, end, false);
	if (r < 0) {
		free_bitmap(v, b);
		return r;
	}
	/* A dynamic disk's new block is all zeros and all valid, so its
	 * bitmap is all ones: no bitmap update on later writes.  A
	 * differencing disk's starts empty: everything is in the parent. */
	if (v->type == VHD_TYPE_DYNAMIC)
		memset(bm->bits, 0xff, v->bitmap_size);
	else
		memset(bm->bits, 0, v->bitmap_size);
	/* Written now, before the BAT points at it: see the top of the file. */
	r = vhd_write_exact(v->file, bm->bits, v->bitmap_size, p);
	if (r < 0) {
		free_bitmap(v, b);
		return r;
	}
	if (v->type == VHD_TYPE_DYNAMIC) {
		free_bitmap(v, b);
		set_full(v, b);
	}
	v->bat[b] = (uint32_t)(p / VHD_SECTOR_SIZE);
	mark_bat_dirty(v, b);
	vhd_rmap_forget(v, b);
	v->data_end = end;
	v->footer_off = end;
	v->file_size = end + VHD_FOOTER_SIZE;
	v->data_dirty = true;
	return 0;
}

/* Forgets block b: its BAT entry goes at the next flush, its space becomes
 * unused.  The caller knows nothing there is needed. */
void vhd_unmap_block(struct vhd *v, uint32_t b)
{
	if (v->bitmaps[b]) {
		if (v->bitmaps[b]->dirty)
			v->nr_dirty_bitmaps--;
		free_bitmap(v, b);
	}
	v->full[b >> 3] &= (uint8_t)~(1u << (b & 7));
	v->bat[b] = VHD_BAT_UNUSED;
	mark_bat_dirty(v, b);
	vhd_rmap_forget(v, b);
}

/* Records sectors [s, s + n) of block b as present in this layer. */
static int mark_written(struct vhd *v, uint32_t b, uint32_t s, uint32_t n)
{
	struct vhd_bitmap *bm;
	int r;

	/* Dirty bitmaps are pinned until a flush: bound them. */
	if (v->nr_dirty_bitmaps >= dirty_limit(v) &&
	    !(v->bitmaps[b] && v->bitmaps[b]->dirty)) {
		r = vhd_flush(v);
		if (r < 0)
			return r;
	}
	r = vhd_load_bitmap(v, b, &bm);
	if (r < 0 || !bm)
		return r;
	bits_set(bm->bits, s, n);
	vhd_rmap_written(v, b, s, n);
	if (!bm->dirty) {
		bm->dirty = true;
		v->nr_dirty_bitmaps++;
	}
	v->meta_dirty = true;
	return 0;
}

int vhd_map_for_write(struct vhd *v, uint64_t off, uint64_t len,
		      uint64_t *file_off)
{
	uint32_t b;
	int r = check_range(v, len, off);

	if (r < 0)
		return r;
	if (!vhd_is_writable(v))
		return -EROFS;
	if (v->type == VHD_TYPE_FIXED) {
		*file_off = off;
		v->data_dirty = true;
		return 0;
	}
	b = (uint32_t)(off / v->block_size);
	if (len && (off + len - 1) / v->block_size != b)
		return -EINVAL;
	if (v->bat[b] == VHD_BAT_UNUSED) {
		r = alloc_block(v, b);
		if (r < 0)
			return r;
	}
	*file_off = vhd_block_off(v, b) + v->bitmap_size + off % v->block_size;
	v->data_dirty = true;
	return 0;
}

int vhd_write_done(struct vhd *v, uint64_t off, uint64_t len)
{
	uint32_t b;

	if (v->type == VHD_TYPE_FIXED || !len)
		return 0;
	b = (uint32_t)(off / v->block_size);
	if (vhd_block_full(v, b))
		return 0;
	return mark_written(v, b, (uint32_t)(off % v->block_size / VHD_SECTOR_SIZE),
			    (uint32_t)(len / VHD_SECTOR_SIZE));
}

ssize_t vhd_pwrite(struct vhd *v, const void *buf, size_t len, uint64_t off)
{
	const uint8_t *p = buf;
	size_t done = 0;
	int r = check_range(v, len, off);

	if (r < 0)
		return r;
	if (!vhd_is_writable(v))
		return -EROFS;
	if (v->type == VHD_TYPE_FIXED) {
		r = vhd_write_exact(v->file, buf, len, off);
		v->data_dirty = true;
		return r < 0 ? r : (ssize_t)len;
	}
	while (done < len) {
		uint64_t o = off + done, fo;
		uint32_t b = (uint32_t)(o / v->block_size);
		size_t n = v->block_size - o % v->block_size;

		if (n > len - done)
			n = len - done;
		/* Zeros into a block a dynamic disk has not allocated are
		 * already there: this keeps converted and copied disks sparse. */
		if (v->bat[b] == VHD_BAT_UNUSED && v->type == VHD_TYPE_DYNAMIC &&
		    vhd_is_zero(p + done, n)) {
			done += n;
			continue;
		}
		r = vhd_map_for_write(v, o, n, &fo);
		if (r < 0)
			return r;
		r = vhd_write_exact(v->file, p + done, n, fo);
		if (r < 0)
			return r;
		r = vhd_write_done(v, o, n);
		if (r < 0)
			return r;
		done += n;
	}
	return (ssize_t)len;
}

int vhd_pwrite_zeroes(struct vhd *v, uint64_t off, uint64_t len, bool unmap)
{
	static const uint8_t zero[64 * 1024];
	int r = check_range(v, len, off);

	if (r < 0)
		return r;
	while (len) {
		size_t n = len < sizeof(zero) ? (size_t)len : sizeof(zero);
		uint64_t fo;

		if (v->type != VHD_TYPE_FIXED) {
			uint64_t in = v->block_size - off % v->block_size;

			if (n > in)
				n = (size_t)in;
		}
		/* Whole 4 KiB-aligned ranges of allocated data can be holes;
		 * the rest is written as zeros. */
		if (unmap && v->file->ops->punch_hole && n % 4096 == 0 &&
		    (v->type == VHD_TYPE_FIXED ||
		     v->bat[off / v->block_size] != VHD_BAT_UNUSED ||
		     v->type == VHD_TYPE_DIFF)) {
			r = vhd_map_for_write(v, off, n, &fo);
			if (r < 0)
				return r;
			if (fo % 4096 == 0 &&
			    v->file->ops->punch_hole(v->file, fo, n) == 0) {
				r = vhd_write_done(v, off, n);
				if (r < 0)
					return r;
				off += n;
				len -= n;
				continue;
			}
		}
		r = (int)vhd_pwrite(v, zero, n, off);
		if (r < 0)
			return r;
		off += n;
		len -= n;
	}
	return 0;
}

/* Writes the runs of dirty BAT sectors. */
static int write_bat(struct vhd *v)
{
	uint32_t per = VHD_SECTOR_SIZE / 4;

	for (uint32_t i = 0; i < v->bat_sectors;) {
		uint32_t j = i, be[VHD_SECTOR_SIZE / 4 * 8];
		int r;

		if (!v->bat_dirty[i]) {
			i++;
			continue;
		}
		while (j < v->bat_sectors && v->bat_dirty[j] && j - i < 8)
			j++;
		for (uint32_t k = i * per; k < j * per; k++)
			be[k - i * per] = k < v->max_entries ? htobe32(v->bat[k])
							      : VHD_BAT_UNUSED;
		r = vhd_write_exact(v->file, be, (size_t)(j - i) * VHD_SECTOR_SIZE,
				    v->header.table_offset +
				    (uint64_t)i * VHD_SECTOR_SIZE);
		if (r < 0)
			return r;
		memset(v->bat_dirty + i, 0, j - i);
		i = j;
	}
	return 0;
}

static int sync_file(struct vhd *v)
{
	if (v->flags & VHD_OPEN_NO_SYNC)
		return 0;
	return v->file->ops->flush(v->file);
}

int vhd_flush(struct vhd *v)
{
	int r;

	if (!vhd_is_writable(v))
		return 0;
	if (v->meta_dirty && !v->nr_dirty_bitmaps) {
		/* Only new blocks: their BAT entries may go with the data. */
		r = write_bat(v);
		if (r >= 0)
			r = sync_file(v);
		if (r >= 0)
			v->meta_dirty = v->data_dirty = false;
		return r;
	}
	r = sync_file(v);
	if (r < 0)
		return r;
	v->data_dirty = false;
	if (!v->meta_dirty)
		return 0;
	for (uint32_t b = 0; b < v->max_entries && v->nr_dirty_bitmaps; b++) {
		struct vhd_bitmap *bm = v->bitmaps[b];

		if (!bm || !bm->dirty)
			continue;
		r = vhd_write_exact(v->file, bm->bits, v->bitmap_size,
				    vhd_block_off(v, b));
		if (r < 0)
			return r;
		bm->dirty = false;
		v->nr_dirty_bitmaps--;
		if (bitmap_all_set(v, bm->bits)) {
			free_bitmap(v, b);
			set_full(v, b);
		}
	}
	r = write_bat(v);
	if (r < 0)
		return r;
	r = sync_file(v);
	if (r < 0)
		return r;
	v->meta_dirty = false;
	return 0;
}

/*
 * A random read through a chain touches, in every layer, the BAT entry, the
 * "full" bit and the cached bitmap of its block: separate allocations, each
 * a likely cache miss, and each layer's only known once the layer above
 * has been looked at.  Taken one after another they cost more than the
 * read itself (about 2.4 us for 8 layers).  Asking for all of them first
 * lets the misses overlap.
 */
static void prefetch_chain(const struct vhd *v, uint64_t off)
{
	const struct vhd *p;

	for (p = v; p; p = p->parent) {
		uint64_t b;

		if (p->type == VHD_TYPE_FIXED || off >= p->size)
			continue;
		b = off / p->block_size;
		__builtin_prefetch(&p->bat[b]);
		__builtin_prefetch(&p->full[b >> 3]);
		__builtin_prefetch(&p->bitmaps[b]);
	}
	for (p = v; p; p = p->parent) {
		const struct vhd_bitmap *bm;

		if (p->type == VHD_TYPE_FIXED || off >= p->size)
			continue;
		bm = p->bitmaps[off / p->block_size];
		if (bm)
			__builtin_prefetch(&bm->bits[off % p->block_size /
						     VHD_SECTOR_SIZE / 8]);
	}
}

static int map_extent(struct vhd *v, uint64_t off, uint64_t len,
		      struct vhd_extent *ext);

int vhd_map(struct vhd *v, uint64_t off, uint64_t len, struct vhd_extent *ext)
{
	int r = check_range(v, len, off);

	if (r < 0)
		return r;
	if (v->parent && v->rmap_limit && vhd_rmap_map(v, off, len, ext))
		return 0;
	if (v->parent)
		prefetch_chain(v, off);
	return map_extent(v, off, len, ext);
}

static int map_extent(struct vhd *v, uint64_t off, uint64_t len,
		      struct vhd_extent *ext)
{
	int r;

	memset(ext, 0, sizeof(*ext));
	if (v->type == VHD_TYPE_FIXED) {
		ext->kind = VHD_EXT_DATA;
		ext->layer = v;
		ext->file_off = off;
		ext->len = len;
		return 0;
	}
	while (ext->len < len) {
		uint64_t o = off + ext->len;
		uint32_t b = (uint32_t)(o / v->block_size);
		uint32_t s = (uint32_t)(o % v->block_size / VHD_SECTOR_SIZE);
		uint64_t n = (uint64_t)(v->sectors_per_block - s) * VHD_SECTOR_SIZE;
		struct vhd_extent e = { 0 };
		struct vhd_bitmap *bm = NULL;

		if (n > len - ext->len)
			n = len - ext->len;
		if (v->bat[b] != VHD_BAT_UNUSED) {
			r = vhd_load_bitmap(v, b, &bm);
			if (r < 0)
				return r;
		}
		if (v->bat[b] != VHD_BAT_UNUSED && (!bm || bit_get(bm->bits, s))) {
			uint32_t k = 1;

			while (bm && (uint64_t)k * VHD_SECTOR_SIZE < n &&
			       bit_get(bm->bits, s + k))
				k++;
			if (bm)
				n = (uint64_t)k * VHD_SECTOR_SIZE;
			e.kind = VHD_EXT_DATA;
			e.layer = v;
			e.file_off = vhd_block_off(v, b) + v->bitmap_size +
				     (uint64_t)s * VHD_SECTOR_SIZE;
			e.len = n;
		} else {
			uint32_t k = 1;

			while (bm && (uint64_t)k * VHD_SECTOR_SIZE < n &&
			       !bit_get(bm->bits, s + k))
				k++;
			if (bm)
				n = (uint64_t)k * VHD_SECTOR_SIZE;
			if (v->parent && o < v->parent->size) {
				if (n > v->parent->size - o)
					n = v->parent->size - o;
				r = map_extent(v->parent, o, n, &e);
				if (r < 0)
					return r;
				e.depth++;
			} else {
				e.kind = VHD_EXT_ZERO;
				e.len = n;
			}
		}
		if (!vhd_extent_join(ext, &e) || e.len < n)
			break;
	}
	return 0;
}

bool vhd_extent_join(struct vhd_extent *ext, const struct vhd_extent *e)
{
	if (ext->len == 0) {
		*ext = *e;
		return true;
	}
	if (e->kind != ext->kind || e->depth != ext->depth ||
	    (e->kind == VHD_EXT_DATA &&
	     (e->layer != ext->layer || e->file_off != ext->file_off + ext->len)))
		return false;
	ext->len += e->len;
	return true;
}

int vhd_get_fd(struct vhd *v)
{
	return v->file->ops->get_fd ? v->file->ops->get_fd(v->file) : -1;
}

bool vhd_is_writable(struct vhd *v)
{
	return v->flags & VHD_OPEN_RDWR;
}

int vhd_close(struct vhd *v)
{
	int r = 0;

	if (!v)
		return 0;
	if (vhd_is_writable(v))
		r = vhd_flush(v);
	vhd_close(v->parent);
	v->parent = NULL;
	vhd_free(v);
	return r;
}
