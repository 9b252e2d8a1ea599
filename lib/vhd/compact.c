// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * compact: drop blocks that read as zeros wherever they are visible, then
 * slide the remaining blocks towards the start of the file and truncate it.
 *
 * Each move copies a block (bitmap and data) into free space, syncs, then
 * repoints its BAT entry and syncs again, so a crash leaves either the old
 * copy referenced (the new one is unused space) or the new one.  A block
 * moves only into space that does not overlap its own old place.
 *
 * Progress is one scale over both passes, so that it only rises: the
 * virtual size for the scan, then a block's size for each block allocated
 * at the start, dropped ones counting as done when the slide begins.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vhd-private.h"

/* True when block b of v can go: every sector reads as zeros and nothing
 * below shows through differently. */
static int droppable(struct vhd *v, uint32_t b, uint8_t *buf, bool *drop)
{
	uint64_t base = (uint64_t)b * v->block_size;
	uint64_t len = v->block_size;
	struct vhd_bitmap *bm;
	int r;

	*drop = false;
	if (base >= v->size) {
		*drop = true;	/* wholly past the end: unreachable */
		return 0;
	}
	if (len > v->size - base)
		len = v->size - base;
	r = vhd_load_bitmap(v, b, &bm);
	if (r < 0)
		return r;
	if (bm && vhd_is_zero(bm->bits, v->bitmap_size)) {
		*drop = true;	/* nothing here: every sector reads below */
		return 0;
	}
	r = (int)vhd_pread(v, buf, (size_t)len, base);
	if (r < 0)
		return r;
	if (!vhd_is_zero(buf, (size_t)len))
		return 0;
	if (v->parent && base < v->parent->size) {
		/* Zeros in a child hide the parent's data unless the parent
		 * reads as zeros there too. */
		struct vhd_extent e;
		uint64_t plen = v->parent->size - base < len ? v->parent->size - base : len;

		r = vhd_map(v->parent, base, plen, &e);
		if (r < 0)
			return r;
		if (e.kind != VHD_EXT_ZERO || e.len < plen)
			return 0;
	}
	*drop = true;
	return 0;
}

static int by_offset(const void *a, const void *b, void *arg)
{
	const struct vhd *v = arg;
	uint32_t x = v->bat[*(const uint32_t *)a];
	uint32_t y = v->bat[*(const uint32_t *)b];

	return x < y ? -1 : x > y;
}

static int move_block(struct vhd *v, uint32_t b, uint64_t to, uint8_t *buf)
{
	size_t n = (size_t)v->bitmap_size + v->block_size;
	int r = vhd_read_exact(v->file, buf, n, vhd_block_off(v, b));

	if (r >= 0)
		r = vhd_write_exact(v->file, buf, n, to);
	if (r >= 0)
		r = v->file->ops->flush(v->file);
	if (r < 0)
		return r;
	v->bat[b] = (uint32_t)(to / VHD_SECTOR_SIZE);
	vhd_rmap_forget(v, b);
	v->bat_dirty[b / (VHD_SECTOR_SIZE / 4)] = 1;
	v->meta_dirty = true;
	return vhd_flush(v);
}

static int slide_blocks(struct vhd *v, uint8_t *buf,
			const struct vhd_progress *progress, uint64_t done,
			uint64_t total)
{
	uint64_t align = v->block_size >= 4096 ? 4096 : VHD_SECTOR_SIZE;
	uint64_t size = (uint64_t)v->bitmap_size + v->block_size;
	uint64_t cursor = VHD_FOOTER_SIZE;
	uint32_t *order, nr = 0;
	int r = 0;

	order = malloc((size_t)v->max_entries * sizeof(*order));
	if (!order)
		return -ENOMEM;
	for (uint32_t b = 0; b < v->max_entries; b++)
		if (v->bat[b] != VHD_BAT_UNUSED)
			order[nr++] = b;
	qsort_r(order, nr, sizeof(*order), by_offset, v);
	for (uint32_t i = 0; i < nr; i++) {
		uint32_t b = order[i];
		uint64_t at = vhd_block_off(v, b);
		uint64_t to, skip;

		/* The lowest aligned place clear of metadata. */
		for (;;) {
			to = vhd_round_up(cursor + v->bitmap_size, align) - v->bitmap_size;
			skip = vhd_meta_overlap(v, to, size);
			if (!skip)
				break;
			cursor = skip;
		}
		r = vhd_report(progress, done + (uint64_t)i * v->block_size, total);
		if (r < 0)
			break;
		if (to + size <= at) {
			r = move_block(v, b, to, buf);
			if (r < 0)
				break;
			at = to;
		}
		cursor = at + size;
	}
	free(order);
	if (r < 0)
		return r;
	/* The footer right after the last structure; then the tail goes. */
	if (vhd_meta_end(v) > cursor)
		cursor = vhd_meta_end(v);
	v->data_end = cursor;
	if (v->footer_off != cursor) {
		v->footer_off = cursor;
		r = vhd_write_footer(v, cursor, false);
		if (r >= 0)
			r = v->file->ops->flush(v->file);
		if (r >= 0)
			r = v->file->ops->truncate(v->file, cursor + VHD_FOOTER_SIZE);
		if (r >= 0)
			r = v->file->ops->flush(v->file);
		if (r >= 0)
			v->file_size = cursor + VHD_FOOTER_SIZE;
	}
	return r;
}

int vhd_compact(const char *path, unsigned open_flags,
		const struct vhd_progress *progress, uint64_t *freed,
		struct vhd_error *err)
{
	struct vhd_open_opts oo = {
		.flags = VHD_OPEN_RDWR | (open_flags & (VHD_OPEN_IGNORE_CHECKSUMS |
							 VHD_OPEN_IGNORE_PARENT_ID)),
	};
	uint8_t *buf = NULL;
	uint64_t before, total;
	uint32_t kept = 0, alloc = 0;
	struct vhd *v;
	int r;

	r = vhd_open(path, &oo, &v, err);
	if (r < 0)
		return r;
	before = v->file_size;
	if (v->type == VHD_TYPE_FIXED) {
		r = vhd_set_error(err, -EINVAL,
				  "%s: a fixed disk has no blocks to drop; convert it to dynamic",
				  path);
		goto out;
	}
	buf = malloc((size_t)v->block_size + v->bitmap_size);
	if (!buf) {
		r = vhd_set_error(err, -ENOMEM, "%s: out of memory", path);
		goto out;
	}
	for (uint32_t b = 0; b < v->max_entries; b++)
		alloc += v->bat[b] != VHD_BAT_UNUSED;
	total = v->size + (uint64_t)alloc * v->block_size;
	for (uint32_t b = 0; b < v->max_entries; b++) {
		uint64_t at = (uint64_t)b * v->block_size;
		bool drop;

		/* A BAT may have entries past the end. */
		r = vhd_report(progress, at < v->size ? at : v->size, total);
		if (r < 0)
			goto fail;
		if (v->bat[b] == VHD_BAT_UNUSED)
			continue;
		r = droppable(v, b, buf, &drop);
		if (r < 0)
			goto fail;
		if (drop)
			vhd_unmap_block(v, b);
		else
			kept++;
	}
	/* Dropping is durable before any block moves into freed space. */
	r = vhd_flush(v);
	if (r >= 0)
		r = slide_blocks(v, buf, progress,
				 v->size + (uint64_t)(alloc - kept) * v->block_size, total);
	if (r < 0)
		goto fail;
	/* Done: too late to cancel, so the answer is ignored. */
	vhd_report(progress, total, total);
	if (freed)
		*freed = before > v->file_size ? before - v->file_size : 0;
	goto out;
fail:
	vhd_set_error(err, r, "%s: %s", path,
		      r == -ECANCELED ? "compact cancelled; the disk is consistent"
				      : strerror(-r));
out:
	free(buf);
	if (vhd_close(v) < 0 && r >= 0)
		r = vhd_set_error(err, -EIO, "%s: flush failed", path);
	return r < 0 ? r : 0;
}
