// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * resize: grow any disk; shrink only when nothing is allocated (dynamic,
 * differencing) or nothing but zeros is stored (fixed) past the new end.
 *
 * The capacity grows before the size: a BAT large enough for the new size
 * is written and made durable (in place when the space after it is free,
 * else at the end of the file) and the header pointed at it in one sector
 * write; only then does the footer carry the new size.  A crash in between
 * leaves the old size over a larger BAT, which is valid.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vhd-private.h"

/* The first byte after the BAT that some other structure uses. */
static uint64_t bat_room_end(const struct vhd *v)
{
	uint64_t end = v->footer_off;

	for (uint32_t b = 0; b < v->max_entries; b++) {
		uint64_t o = vhd_block_off(v, b);

		if (v->bat[b] != VHD_BAT_UNUSED && o > v->header.table_offset && o < end)
			end = o;
	}
	for (int i = 0; i < VHD_NR_LOCATORS; i++) {
		const struct vhd_locator *l = &v->header.loc[i];

		if (l->code != VHD_PLAT_NONE && l->data_off > v->header.table_offset &&
		    l->data_off < end)
			end = l->data_off;
	}
	if (v->footer.data_offset > v->header.table_offset && v->footer.data_offset < end)
		end = v->footer.data_offset;
	return end;
}

static int grow_bat(struct vhd *v, uint32_t entries)
{
	uint64_t bytes = vhd_round_up((uint64_t)entries * 4, VHD_SECTOR_SIZE);
	uint64_t at = v->header.table_offset;
	uint32_t *be;
	int r;

	be = malloc(bytes);
	if (!be)
		return -ENOMEM;
	for (uint64_t i = 0; i < bytes / 4; i++)
		be[i] = i < v->max_entries ? htobe32(v->bat[i]) : VHD_BAT_UNUSED;
	if (at + bytes > bat_room_end(v)) {
		/* No room after it: the whole BAT moves past everything in use,
		 * and the footer after it. */
		at = vhd_round_up(v->data_end, VHD_SECTOR_SIZE);
		v->data_end = at + bytes;
		v->footer_off = v->data_end;
		r = vhd_write_exact(v->file, be, (size_t)bytes, at);
		if (r >= 0)
			r = vhd_write_footer(v, v->footer_off, false);
		if (r >= 0)
			r = v->file->ops->truncate(v->file, v->footer_off + VHD_FOOTER_SIZE);
		v->file_size = v->footer_off + VHD_FOOTER_SIZE;
	} else {
		/* In place: only the new entries' sectors change. */
		uint64_t from = v->max_entries * 4ull / VHD_SECTOR_SIZE * VHD_SECTOR_SIZE;

		r = vhd_write_exact(v->file, (uint8_t *)be + from, (size_t)(bytes - from),
				    at + from);
	}
	free(be);
	if (r >= 0)
		r = v->file->ops->flush(v->file);
	if (r < 0)
		return r;
	v->header.table_offset = at;
	v->header.max_entries = entries;
	r = vhd_write_header(v);
	if (r >= 0)
		r = v->file->ops->flush(v->file);
	return r;
}

int vhd_resize(const char *path, uint64_t new_size, unsigned open_flags,
	       struct vhd_error *err)
{
	struct vhd_open_opts oo = {
		.flags = VHD_OPEN_RDWR | (open_flags & (VHD_OPEN_IGNORE_CHECKSUMS |
							 VHD_OPEN_IGNORE_PARENT_ID)),
	};
	static const uint8_t zero[VHD_SECTOR_SIZE];
	struct vhd *v;
	uint64_t old;
	int r;

	new_size = vhd_round_up(new_size, VHD_SECTOR_SIZE);
	if (new_size == 0)
		return vhd_set_error(err, -EINVAL, "%s: size must be above zero", path);
	if (new_size > VHD_MAX_SIZE)
		return vhd_set_error(err, -EFBIG,
				     "%s: size %llu exceeds the VHD limit of 2040 GiB",
				     path, (unsigned long long)new_size);
	r = vhd_open(path, &oo, &v, err);
	if (r < 0)
		return r;
	old = v->size;
	if (new_size == old)
		goto out;

	if (v->type == VHD_TYPE_FIXED) {
		if (new_size < old) {
			uint8_t *buf = malloc(1u << 20);

			if (!buf) {
				r = vhd_set_error(err, -ENOMEM, "%s: out of memory", path);
				goto out;
			}
			for (uint64_t o = new_size; o < old && r >= 0;) {
				size_t n = old - o < (1u << 20) ? (size_t)(old - o) : (1u << 20);

				r = vhd_read_exact(v->file, buf, n, o);
				if (r >= 0 && !vhd_is_zero(buf, n))
					r = vhd_set_error(err, -ENOTEMPTY,
							  "%s: cannot shrink: data stored past %llu (at or after offset %llu)",
							  path, (unsigned long long)new_size,
							  (unsigned long long)o);
				o += n;
			}
			free(buf);
			if (r < 0)
				goto out;
		}
		/* The new footer first, so that the file always ends in one;
		 * then the old footer's sector becomes zeros (growing) or the
		 * tail goes (shrinking). */
		v->footer.current_size = new_size;
		vhd_geometry(new_size, &v->footer.cylinders, &v->footer.heads,
			     &v->footer.sectors);
		r = vhd_write_footer(v, new_size, false);
		if (r >= 0)
			r = v->file->ops->flush(v->file);
		if (r >= 0 && new_size > old)
			r = vhd_write_exact(v->file, zero, sizeof(zero), old);
		if (r >= 0 && new_size < old)
			r = v->file->ops->truncate(v->file, new_size + VHD_FOOTER_SIZE);
		if (r >= 0)
			r = v->file->ops->flush(v->file);
		if (r < 0)
			vhd_set_error(err, r, "%s: %s", path, strerror(-r));
		v->size = new_size;
		vhd_rmap_free(v);
		goto out;
	}

	if (new_size < old) {
		for (uint32_t b = (uint32_t)(new_size / v->block_size); b < v->max_entries; b++) {
			if (v->bat[b] == VHD_BAT_UNUSED)
				continue;
			r = vhd_set_error(err, -ENOTEMPTY,
					  "%s: cannot shrink: block %u (offset %llu) past the new size is allocated; compact or zero it first",
					  path, b, (unsigned long long)b * v->block_size);
			goto out;
		}
	} else {
		uint64_t need = (new_size + v->block_size - 1) / v->block_size;

		if (need > v->max_entries) {
			r = grow_bat(v, (uint32_t)need);
			if (r < 0) {
				vhd_set_error(err, r, "%s: growing the BAT: %s", path,
					      strerror(-r));
				goto out;
			}
		}
	}
	v->footer.current_size = new_size;
	vhd_geometry(new_size, &v->footer.cylinders, &v->footer.heads,
		     &v->footer.sectors);
	r = vhd_update_footer(v);
	if (r < 0)
		vhd_set_error(err, r, "%s: %s", path, strerror(-r));
	v->size = new_size;
	vhd_rmap_free(v);
out:
	/* The in-memory BAT no longer matches a grown one: nothing is dirty,
	 * so freeing without the usual flush is exact. */
	v->flags &= ~VHD_OPEN_RDWR;
	vhd_close(v);
	return r < 0 ? r : 0;
}
