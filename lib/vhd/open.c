// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Opening a VHD: finding and validating the footer (or its copy), the
 * dynamic header and the BAT, then the parent chain.
 *
 * Every check here guards an allocation or an offset used later, so a
 * malformed file is refused with one line naming the problem instead of
 * making the reader allocate or seek without bound.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vhd-private.h"

static bool footer_cookie(const uint8_t *b)
{
	return memcmp(b, VHD_COOKIE, 8) == 0;
}

static bool footer_sum_ok(const uint8_t *b)
{
	struct vhd_footer f;

	vhd_footer_decode(&f, b);
	return f.checksum == vhd_footer_checksum(b);
}

static bool footer_sane(const struct vhd_footer *f)
{
	return f->type == VHD_TYPE_FIXED || f->type == VHD_TYPE_DYNAMIC ||
	       f->type == VHD_TYPE_DIFF;
}

/*
 * The disk's size.  Files disagree with the 2006 specification here: every
 * current writer (Hyper-V, Windows, disk2vhd, qemu with force_size) means
 * current_size, and the CHS product is smaller for most sizes.  Only old
 * Virtual PC ("vpc ") sized its disks by the geometry, and only when the
 * geometry is not the saturated maximum.
 */
uint64_t vhd_footer_size(const struct vhd_footer *f)
{
	uint64_t chs = (uint64_t)f->cylinders * f->heads * f->sectors;

	if (memcmp(f->creator_app, "vpc ", 4) == 0 && chs &&
	    chs != VHD_MAX_CHS_SECTORS && chs * VHD_SECTOR_SIZE <= f->current_size)
		return chs * VHD_SECTOR_SIZE;
	return f->current_size;
}

/* Finds the footer: at the end (512 bytes, or 511 from before Virtual PC
 * 2004), else the copy at offset 0 for dynamic and differencing disks. */
static int read_footer(struct vhd *v, struct vhd_error *err)
{
	uint8_t end[VHD_FOOTER_SIZE], copy[VHD_FOOTER_SIZE];
	bool ignore = v->flags & VHD_OPEN_IGNORE_CHECKSUMS;
	bool end_ok = false, copy_ok = false, end_cookie = false;
	uint64_t end_off = 0;
	int r;

	if (v->file_size < VHD_FOOTER_SIZE)
		return vhd_set_error(err, -EINVAL,
				     "%s: not a VHD file (%llu bytes is too short for a footer)",
				     v->name, (unsigned long long)v->file_size);
	end_off = v->file_size - VHD_FOOTER_SIZE;
	r = vhd_read_exact(v->file, end, VHD_FOOTER_SIZE, end_off);
	if (r < 0)
		return vhd_set_error(err, r, "%s: reading the footer: %s",
				     v->name, strerror(-r));
	end_cookie = footer_cookie(end);
	if (!end_cookie && v->file_size % VHD_SECTOR_SIZE == 511) {
		/* A 511-byte footer: the reserved last byte was never written. */
		end_off = v->file_size - 511;
		r = vhd_read_exact(v->file, end, 511, end_off);
		if (r < 0)
			return vhd_set_error(err, r, "%s: reading the footer: %s",
					     v->name, strerror(-r));
		end[511] = 0;
		end_cookie = footer_cookie(end);
	}
	r = vhd_read_exact(v->file, copy, VHD_FOOTER_SIZE, 0);
	if (r < 0)
		return vhd_set_error(err, r, "%s: reading the footer copy: %s",
				     v->name, strerror(-r));

	if (end_cookie) {
		struct vhd_footer t;

		vhd_footer_decode(&t, end);
		end_ok = footer_sum_ok(end) && footer_sane(&t);
	}
	if (footer_cookie(copy)) {
		struct vhd_footer t;

		vhd_footer_decode(&t, copy);
		copy_ok = footer_sum_ok(copy) && footer_sane(&t) &&
			  t.type != VHD_TYPE_FIXED;
	}

	if (end_ok) {
		vhd_footer_decode(&v->footer, end);
		v->footer_off = end_off;
		if (v->footer.type != VHD_TYPE_FIXED &&
		    memcmp(end, copy, VHD_FOOTER_SIZE) != 0) {
			vhd_warnf(v->warn, v->warn_opaque,
				  "%s: the footer copy at offset 0 %s; the footer at the end is used%s",
				  v->name,
				  copy_ok ? "differs from the footer" : "is damaged",
				  (v->flags & VHD_OPEN_RDWR) ? " and the copy rewritten" : "");
			if (v->flags & VHD_OPEN_RDWR) {
				r = vhd_write_exact(v->file, end, VHD_FOOTER_SIZE, 0);
				if (r < 0)
					return vhd_set_error(err, r, "%s: repairing the footer copy: %s",
							     v->name, strerror(-r));
			}
		}
		return 0;
	}
	if (copy_ok) {
		/* The end of a dynamic disk can be torn by a crash while a
		 * block was being appended; the copy at 0 is authoritative. */
		vhd_footer_decode(&v->footer, copy);
		v->footer_off = end_cookie ? end_off : VHD_NO_OFFSET;
		vhd_warnf(v->warn, v->warn_opaque,
			  "%s: the footer at the end is %s; using the copy at offset 0%s",
			  v->name, end_cookie ? "damaged (bad checksum)" : "missing",
			  (v->flags & VHD_OPEN_RDWR) ? " and rewriting the footer" : "");
		return 1;	/* footer to be rewritten once the BAT is known */
	}
	if (ignore && (end_cookie || footer_cookie(copy))) {
		vhd_footer_decode(&v->footer, end_cookie ? end : copy);
		v->footer_off = end_cookie ? end_off : VHD_NO_OFFSET;
		if (!footer_sane(&v->footer))
			return vhd_set_error(err, -EINVAL,
					     "%s: unknown disk type %u in the footer",
					     v->name, v->footer.type);
		/* A fixed disk has no copy: its first sector is data, and
		 * writing it would leave no footer at all (found by fuzzing). */
		if (!end_cookie && v->footer.type == VHD_TYPE_FIXED)
			return vhd_set_error(err, -EINVAL,
					     "%s: not a VHD file (no footer at its end; a fixed disk has no copy at offset 0)",
					     v->name);
		vhd_warnf(v->warn, v->warn_opaque,
			  "%s: footer checksum is wrong (stored 0x%08x, computed 0x%08x); read anyway as asked",
			  v->name, v->footer.checksum,
			  vhd_footer_checksum(end_cookie ? end : copy));
		/* Only the copy at 0: the footer's place is unknown, so it is
		 * put after the last structure as for a torn end.  (Found by
		 * fuzzing: footer_off VHD_NO_OFFSET became data_end, and the
		 * next block was allocated at a wrapped offset over block 0.) */
		return end_cookie ? 0 : 1;
	}
	if (end_cookie || footer_cookie(copy)) {
		const uint8_t *b = end_cookie ? end : copy;
		struct vhd_footer t;

		vhd_footer_decode(&t, b);
		if (!footer_sane(&t))
			return vhd_set_error(err, -EINVAL,
					     "%s: unknown disk type %u in the footer",
					     v->name, t.type);
		return vhd_set_error(err, -EINVAL,
				     "%s: footer checksum mismatch (stored 0x%08x, computed 0x%08x) and no good copy; use --ignore-checksums to read it anyway",
				     v->name, t.checksum, vhd_footer_checksum(b));
	}
	return vhd_set_error(err, -EINVAL,
			     "%s: not a VHD file (no \"conectix\" footer at its end or start)",
			     v->name);
}

static int read_header(struct vhd *v, struct vhd_error *err)
{
	uint8_t b[VHD_HEADER_SIZE];
	struct vhd_header *h = &v->header;
	uint64_t off = v->footer.data_offset;
	int r;

	if (off == VHD_NO_OFFSET || off % VHD_SECTOR_SIZE ||
	    off + VHD_HEADER_SIZE > v->file_size)
		return vhd_set_error(err, -EINVAL,
				     "%s: dynamic header offset %llu is outside the file",
				     v->name, (unsigned long long)off);
	r = vhd_read_exact(v->file, b, sizeof(b), off);
	if (r < 0)
		return vhd_set_error(err, r, "%s: reading the dynamic header: %s",
				     v->name, strerror(-r));
	vhd_header_decode(h, b);
	if (memcmp(h->cookie, VHD_HDR_COOKIE, 8) != 0)
		return vhd_set_error(err, -EINVAL,
				     "%s: bad dynamic header cookie (expected \"cxsparse\")",
				     v->name);
	if (h->checksum != vhd_header_checksum(b)) {
		if (!(v->flags & VHD_OPEN_IGNORE_CHECKSUMS))
			return vhd_set_error(err, -EINVAL,
					     "%s: dynamic header checksum mismatch (stored 0x%08x, computed 0x%08x); use --ignore-checksums to read it anyway",
					     v->name, h->checksum,
					     vhd_header_checksum(b));
		vhd_warnf(v->warn, v->warn_opaque,
			  "%s: dynamic header checksum is wrong (stored 0x%08x, computed 0x%08x); read anyway as asked",
			  v->name, h->checksum, vhd_header_checksum(b));
	}
	if (h->block_size < VHD_SECTOR_SIZE || h->block_size > (1u << 30) ||
	    (h->block_size & (h->block_size - 1)))
		return vhd_set_error(err, -EINVAL,
				     "%s: block size %u is not a power of two between 512 bytes and 1 GiB",
				     v->name, h->block_size);
	if (h->max_entries == 0)
		return vhd_set_error(err, -EINVAL, "%s: the BAT has no entries",
				     v->name);
	if (h->table_offset % VHD_SECTOR_SIZE ||
	    h->table_offset + (uint64_t)h->max_entries * 4 > v->file_size)
		return vhd_set_error(err, -EINVAL,
				     "%s: the BAT (%u entries at offset %llu) lies outside the file",
				     v->name, h->max_entries,
				     (unsigned long long)h->table_offset);
	v->block_size = h->block_size;
	v->sectors_per_block = h->block_size / VHD_SECTOR_SIZE;
	v->bitmap_size = (uint32_t)vhd_round_up((v->sectors_per_block + 7) / 8,
						VHD_SECTOR_SIZE);
	v->max_entries = h->max_entries;
	if (v->size > (uint64_t)v->max_entries * v->block_size)
		return vhd_set_error(err, -EINVAL,
				     "%s: virtual size %llu is larger than the %u blocks of %u bytes the BAT maps",
				     v->name, (unsigned long long)v->size,
				     v->max_entries, v->block_size);
	return 0;
}

/*
 * The end of the metadata: header, BAT and the locators that are metadata
 * (vhd_locator_range).  A locator wholly inside the file stays so as the
 * file grows, so this never moves under a block that was allowed before.
 * (A locator whose space ran past the end was once ignored here, a block
 * was allocated over its path, and the file was refused when reopened:
 * found by fuzzing.)
 */
uint64_t vhd_meta_end(const struct vhd *v)
{
	uint64_t end = v->footer.data_offset + VHD_HEADER_SIZE;
	uint64_t bat_end = v->header.table_offset +
			   vhd_round_up((uint64_t)v->max_entries * 4, VHD_SECTOR_SIZE);

	if (bat_end > end)
		end = bat_end;
	for (int i = 0; i < VHD_NR_LOCATORS; i++) {
		uint64_t off, len;

		if (vhd_locator_range(&v->header.loc[i], v->file_size, &off, &len) &&
		    off + len > end)
			end = off + len;
	}
	return end;
}

/* When [off, off + len) overlaps a metadata structure (footer copy,
 * header, BAT, a locator's range), the end of that structure; else 0. */
uint64_t vhd_meta_overlap(const struct vhd *v, uint64_t off, uint64_t len)
{
	uint64_t r[3 + VHD_NR_LOCATORS][2] = {
		{ 0, VHD_FOOTER_SIZE },
		{ v->footer.data_offset, v->footer.data_offset + VHD_HEADER_SIZE },
		{ v->header.table_offset, v->header.table_offset +
		  vhd_round_up((uint64_t)v->max_entries * 4, VHD_SECTOR_SIZE) },
	};
	int n = 3;

	for (int i = 0; i < VHD_NR_LOCATORS; i++) {
		uint64_t lo, ll;

		if (!vhd_locator_range(&v->header.loc[i], v->file_size, &lo, &ll))
			continue;
		r[n][0] = lo;
		r[n][1] = lo + ll;
		n++;
	}
	for (int i = 0; i < n; i++)
		if (off < r[i][1] && r[i][0] < off + len)
			return r[i][1];
	return 0;
}

/* A writer must not meet a damaged locator: one that is not metadata now
 * could become so as the file grows, under a block. */
static int check_locators_for_writing(struct vhd *v, struct vhd_error *err)
{
	for (int i = 0; i < VHD_NR_LOCATORS; i++) {
		const struct vhd_locator *l = &v->header.loc[i];
		uint64_t off, len;
		char code[5];

		if (!vhd_plat_known(l->code) || !l->data_len ||
		    vhd_locator_range(l, v->file_size, &off, &len))
			continue;
		return vhd_set_error(err, -EINVAL,
				     "%s: parent locator %d (%s) data lies outside the file; run check --repair",
				     v->name, i, vhd_plat_name(l->code, code));
	}
	return 0;
}

static int load_bat(struct vhd *v, struct vhd_error *err)
{
	uint64_t bytes = vhd_round_up((uint64_t)v->max_entries * 4, VHD_SECTOR_SIZE);
	uint64_t block_bytes = (uint64_t)v->bitmap_size + v->block_size;
	uint64_t end = vhd_meta_end(v);
	bool repair = v->flags & VHD_OPEN_FOR_REPAIR;
	int r;

	v->bat_sectors = (uint32_t)(bytes / VHD_SECTOR_SIZE);
	v->bat = malloc(bytes);
	v->bat_dirty = calloc(v->bat_sectors, 1);
	v->bitmaps = calloc(v->max_entries, sizeof(*v->bitmaps));
	v->full = calloc((v->max_entries + 7) / 8, 1);
	if (!v->bat || !v->bat_dirty || !v->bitmaps || !v->full)
		return vhd_set_error(err, -ENOMEM, "%s: out of memory for a BAT of %u entries",
				     v->name, v->max_entries);
	r = vhd_read_exact(v->file, v->bat, bytes, v->header.table_offset);
	if (r < 0)
		return vhd_set_error(err, r, "%s: reading the BAT: %s", v->name,
				     strerror(-r));
	for (uint32_t i = 0; i < v->max_entries; i++) {
		uint64_t off;

		v->bat[i] = be32toh(v->bat[i]);
		if (v->bat[i] == VHD_BAT_UNUSED)
			continue;
		off = (uint64_t)v->bat[i] * VHD_SECTOR_SIZE;
		/* A block may end a little past the footer's start when its
		 * writer did not round the last block, but must begin inside
		 * the file. */
		if (off + v->bitmap_size > v->file_size && !repair)
			return vhd_set_error(err, -EINVAL,
					     "%s: BAT entry %u points past the end of the file (offset %llu, file %llu bytes)",
					     v->name, i, (unsigned long long)off,
					     (unsigned long long)v->file_size);
		if (vhd_meta_overlap(v, off, block_bytes) && !repair)
			return vhd_set_error(err, -EINVAL,
					     "%s: BAT entry %u (offset %llu) overlaps the disk's metadata",
					     v->name, i, (unsigned long long)off);
		if (off + block_bytes > end)
			end = off + block_bytes;
	}
	v->data_end = end;
	return 0;
}

/* Refuses a BAT whose blocks overlap, which writing could turn into data
 * loss in another block; a reader sees only what is there. */
static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static int check_overlap(struct vhd *v, struct vhd_error *err)
{
	uint32_t *s = malloc((size_t)v->max_entries * 4);
	uint32_t n = 0, per = (v->bitmap_size + v->block_size) / VHD_SECTOR_SIZE;
	int r = 0;

	if (!s)
		return vhd_set_error(err, -ENOMEM, "%s: out of memory", v->name);
	for (uint32_t i = 0; i < v->max_entries; i++)
		if (v->bat[i] != VHD_BAT_UNUSED)
			s[n++] = v->bat[i];
	qsort(s, n, 4, cmp_u32);
	for (uint32_t i = 1; i < n; i++) {
		if ((uint64_t)s[i - 1] + per > s[i]) {
			r = vhd_set_error(err, -EINVAL,
					  "%s: blocks at sectors %u and %u overlap; run check --repair",
					  v->name, s[i - 1], s[i]);
			break;
		}
	}
	free(s);
	return r;
}

/* Path resolution for parents. */
struct parent_try {
	char tried[1536];
	size_t used;
	/* Files already opened as candidates: locators and the name often
	 * name the same file, and a deep failure must not be retried. */
	struct { dev_t dev; ino_t ino; } seen[VHD_NR_LOCATORS + 1];
	unsigned nr_seen;
};

static void note_try(struct parent_try *t, const char *what, const char *path,
		     const char *why)
{
	int n = snprintf(t->tried + t->used, sizeof(t->tried) - t->used, "%s%s %s%s%s",
			 t->used ? ", " : "", what, path, why ? ": " : "",
			 why ? why : "");

	if (n > 0 && (size_t)n < sizeof(t->tried) - t->used)
		t->used += (size_t)n;
}

/* Turns a locator's text into a host path: backslashes become slashes,
 * a drive-letter path cannot name anything here. */
static bool host_path(const char *dir, const char *in, bool relative,
		      char *out, size_t len)
{
	char buf[1024];
	size_t i;

	snprintf(buf, sizeof(buf), "%s", in);
	for (i = 0; buf[i]; i++)
		if (buf[i] == '\\')
			buf[i] = '/';
	if (strncmp(buf, "file://", 7) == 0) {	/* MacX */
		const char *p = buf + 7;

		if (strncmp(p, "localhost", 9) == 0)
			p += 9;
		snprintf(out, len, "%s", p);
		return out[0] == '/';
	}
	if (buf[0] && buf[1] == ':')
		return false;
	if (relative || buf[0] != '/') {
		const char *p = buf;

		while (p[0] == '.' && p[1] == '/')
			p += 2;
		snprintf(out, len, "%s/%s", dir, p);
	} else {
		snprintf(out, len, "%s", buf);
	}
	return true;
}

/* Reads and decodes one locator; "" when it is not text we can use. */
static void read_locator(struct vhd *v, const struct vhd_locator *l,
			 char *out, size_t len)
{
	uint8_t raw[2048];

	out[0] = '\0';
	if (!l->data_len || l->data_len > sizeof(raw) ||
	    l->data_off + l->data_len > v->file_size)
		return;
	if (vhd_read_exact(v->file, raw, l->data_len, l->data_off) < 0)
		return;
	if (l->code == VHD_PLAT_MACX) {
		size_t n = l->data_len < len - 1 ? l->data_len : len - 1;

		memcpy(out, raw, n);
		out[n] = '\0';
		out[strcspn(out, "\0")] = '\0';
	} else if (l->code == VHD_PLAT_W2KU || l->code == VHD_PLAT_W2RU) {
		if (vhd_utf16_to_utf8(raw, l->data_len, false, out, len) < 0)
			out[0] = '\0';
	} else if (l->code == VHD_PLAT_WI2K || l->code == VHD_PLAT_WI2R) {
		/* Deprecated ANSI paths. */
		size_t n = l->data_len < len - 1 ? l->data_len : len - 1;

		memcpy(out, raw, n);
		out[n] = '\0';
	}
}

void vhd_locator_text(struct vhd *v, int i, char *out, size_t len)
{
	read_locator(v, &v->header.loc[i], out, len);
}

static int try_parent(struct vhd *v, struct parent_try *t, const char *path,
		      const struct vhd_open_opts *opts, struct vhd **out,
		      struct vhd_error *perr, bool *exists)
{
	struct vhd_open_opts o = *opts;
	struct stat st;

	*exists = stat(path, &st) == 0;
	if (!*exists)
		return -ENOENT;
	for (unsigned i = 0; i < t->nr_seen; i++)
		if (t->seen[i].dev == st.st_dev && t->seen[i].ino == st.st_ino)
			return -EALREADY;
	if (t->nr_seen < sizeof(t->seen) / sizeof(t->seen[0])) {
		t->seen[t->nr_seen].dev = st.st_dev;
		t->seen[t->nr_seen].ino = st.st_ino;
		t->nr_seen++;
	}
	o.flags &= ~(VHD_OPEN_RDWR | VHD_OPEN_FOR_REPAIR | VHD_OPEN_NO_PARENT);
	o.parent_search_dir = NULL;
	return vhd_open_layer(NULL, path, &o, v, out, perr);
}

static int open_parent(struct vhd *v, const struct vhd_open_opts *opts,
		       struct vhd_error *err)
{
	static const uint32_t order[] = { VHD_PLAT_W2RU, VHD_PLAT_WI2R,
					  VHD_PLAT_W2KU, VHD_PLAT_WI2K,
					  VHD_PLAT_MACX };
	struct parent_try t = { .used = 0 };
	struct vhd_error first = { 0 };
	char name[1024], path[4096], text[1024];
	struct vhd *p = NULL;
	bool exists;
	int r;

	if (v->depth + 1 >= VHD_MAX_CHAIN_DEPTH)
		return vhd_set_error(err, -ELOOP,
				     "%s: parent chain deeper than %d (a loop?)",
				     v->name, VHD_MAX_CHAIN_DEPTH);
	vhd_utf16_to_utf8(v->header.parent_name, sizeof(v->header.parent_name),
			  true, name, sizeof(name));

	for (size_t k = 0; k < sizeof(order) / sizeof(order[0]) && !p; k++) {
		for (int i = 0; i < VHD_NR_LOCATORS && !p; i++) {
			const struct vhd_locator *l = &v->header.loc[i];
			char code[5];
			struct vhd_error e = { 0 };

			if (l->code != order[k])
				continue;
			vhd_plat_name(l->code, code);
			read_locator(v, l, text, sizeof(text));
			if (!text[0]) {
				note_try(&t, code, "(unreadable)", NULL);
				continue;
			}
			if (!host_path(v->dir, text,
				       l->code == VHD_PLAT_W2RU || l->code == VHD_PLAT_WI2R,
				       path, sizeof(path))) {
				char q[1100];

				snprintf(q, sizeof(q), "'%s'", text);
				note_try(&t, code, q, "not a path on this host");
				continue;
			}
			r = try_parent(v, &t, path, opts, &p, &e, &exists);
			if (r == -EALREADY) {
				p = NULL;
				continue;
			}
			if (r < 0) {
				note_try(&t, code, path, exists ? e.msg : "no such file");
				if (exists && !first.code)
					first = e;
				p = NULL;
			}
		}
	}
	if (!p && name[0]) {
		const char *base = name;
		const char *dir = opts->parent_search_dir ? opts->parent_search_dir : v->dir;
		struct vhd_error e = { 0 };

		for (const char *c = name; *c; c++)
			if (*c == '\\' || *c == '/')
				base = c + 1;
		snprintf(path, sizeof(path), "%s/%s", dir, base);
		r = try_parent(v, &t, path, opts, &p, &e, &exists);
		if (r < 0 && r != -EALREADY) {
			note_try(&t, "name", path, exists ? e.msg : "no such file");
			if (exists && !first.code)
				first = e;
			p = NULL;
		}
	}
	if (!p) {
		/* A file that is there but failed says more than the list. */
		if (first.code)
			return vhd_set_error(err, first.code, "%s", first.msg);
		return vhd_set_error(err, first.code ? first.code : -ENOENT,
				     "%s: parent '%s' not found (tried %s)",
				     v->name, name, t.used ? t.tried : "nothing: no locators and no name");
	}

	if (memcmp(p->footer.uuid, v->header.parent_uuid, 16) != 0) {
		char want[37], have[37];

		vhd_uuid_format(v->header.parent_uuid, want);
		vhd_uuid_format(p->footer.uuid, have);
		if (!(opts->flags & VHD_OPEN_IGNORE_PARENT_ID)) {
			vhd_set_error(err, -EINVAL,
				      "%s: parent %s has unique id %s but the child expects %s; use --ignore-parent-id to open it anyway",
				      v->name, p->name, have, want);
			vhd_close(p);
			return -EINVAL;
		}
		vhd_warnf(v->warn, v->warn_opaque,
			  "%s: parent %s has unique id %s, not %s; opened anyway as asked",
			  v->name, p->name, have, want);
	}
	if (p->footer.timestamp != v->header.parent_timestamp)
		vhd_warnf(v->warn, v->warn_opaque,
			  "%s: parent %s was modified after this disk was made (time stamp %u, expected %u)",
			  v->name, p->name, p->footer.timestamp,
			  v->header.parent_timestamp);
	p->below = NULL;
	v->parent = p;
	v->parent_path = strdup(p->name);
	return 0;
}

void vhd_free(struct vhd *v)
{
	if (!v)
		return;
	vhd_rmap_free(v);
	if (v->bitmaps) {
		for (uint32_t i = 0; i < v->max_entries; i++) {
			if (v->bitmaps[i]) {
				free(v->bitmaps[i]);
			}
		}
	}
	free(v->bitmaps);
	free(v->full);
	free(v->bat);
	free(v->bat_dirty);
	if (v->file)
		v->file->ops->close(v->file);
	free(v->name);
	free(v->dir);
	free(v->parent_path);
	free(v);
}

/* True when v is the same file as a layer below it in the chain being
 * opened: the same inode where both have one, else the same unique id. */
static const struct vhd *seen_below(const struct vhd *v)
{
	struct stat a, b;
	int fa = v->file->ops->get_fd ? v->file->ops->get_fd(v->file) : -1;
	bool have_a = fa >= 0 && fstat(fa, &a) == 0;

	for (const struct vhd *q = v->below; q; q = q->below) {
		int fb = q->file->ops->get_fd ? q->file->ops->get_fd(q->file) : -1;

		if (have_a && fb >= 0 && fstat(fb, &b) == 0) {
			if (a.st_dev == b.st_dev && a.st_ino == b.st_ino)
				return q;
		} else if (!memcmp(v->footer.uuid, q->footer.uuid, 16)) {
			return q;
		}
	}
	return NULL;
}

int vhd_open_layer(struct vhd_file *f, const char *name,
		   const struct vhd_open_opts *opts, const struct vhd *below,
		   struct vhd **out, struct vhd_error *err)
{
	struct vhd *v = calloc(1, sizeof(*v));
	int repair_footer, r;

	if (!v) {
		if (f)
			f->ops->close(f);
		return vhd_set_error(err, -ENOMEM, "%s: out of memory", name);
	}
	v->name = strdup(name);
	v->dir = vhd_dirname(name);
	v->flags = opts->flags;
	v->warn = opts->warn;
	v->warn_opaque = opts->warn_opaque;
	v->below = below;
	v->depth = below ? below->depth + 1 : 0;
	v->rmap_limit = VHD_RMAP_BYTES;
	if (!v->name || !v->dir) {
		r = vhd_set_error(err, -ENOMEM, "%s: out of memory", name);
		goto fail;
	}
	if (!f) {
		r = vhd_file_open_posix(name, opts->flags & VHD_OPEN_RDWR,
					!(opts->flags & VHD_OPEN_NO_LOCK), &f, err);
		if (r < 0)
			goto fail;
	}
	v->file = f;
	r = f->ops->get_size(f, &v->file_size);
	if (r < 0) {
		vhd_set_error(err, r, "%s: %s", name, strerror(-r));
		goto fail;
	}
	repair_footer = read_footer(v, err);
	if (repair_footer < 0) {
		r = repair_footer;
		goto fail;
	}
	if (below) {
		const struct vhd *q = seen_below(v);

		if (q) {
			r = vhd_set_error(err, -ELOOP, "%s: parent chain loops back to %s",
					  below->name, name);
			goto fail;
		}
	}
	v->type = (enum vhd_type)v->footer.type;
	v->size = vhd_footer_size(&v->footer);
	if (v->size % VHD_SECTOR_SIZE) {
		r = vhd_set_error(err, -EINVAL,
				  "%s: virtual size %llu is not a whole number of sectors",
				  name, (unsigned long long)v->size);
		goto fail;
	}
	if (v->type == VHD_TYPE_FIXED) {
		if (v->size > v->footer_off) {
			r = vhd_set_error(err, -EINVAL,
					  "%s: fixed disk of %llu bytes but only %llu bytes of data in the file",
					  name, (unsigned long long)v->size,
					  (unsigned long long)v->footer_off);
			goto fail;
		}
		*out = v;
		return 0;
	}
	if (v->size > VHD_MAX_SIZE) {
		r = vhd_set_error(err, -EFBIG,
				  "%s: virtual size %llu exceeds the 2040 GiB limit of dynamic disks",
				  name, (unsigned long long)v->size);
		goto fail;
	}
	r = read_header(v, err);
	if (r < 0)
		goto fail;
	r = load_bat(v, err);
	if (r < 0)
		goto fail;
	if ((v->flags & VHD_OPEN_RDWR) && !(v->flags & VHD_OPEN_FOR_REPAIR)) {
		r = check_locators_for_writing(v, err);
		if (r >= 0)
			r = check_overlap(v, err);
		if (r < 0)
			goto fail;
	}
	if (repair_footer) {
		/* Torn end (see read_footer): the footer belongs right after
		 * the last structure in use. */
		v->footer_off = v->data_end;
		if (v->flags & VHD_OPEN_RDWR) {
			r = vhd_write_footer(v, v->footer_off, false);
			if (r >= 0)
				r = f->ops->truncate(f, v->footer_off + VHD_FOOTER_SIZE);
			if (r >= 0)
				r = f->ops->flush(f);
			if (r < 0) {
				vhd_set_error(err, r, "%s: rewriting the footer: %s",
					      name, strerror(-r));
				goto fail;
			}
			v->file_size = v->footer_off + VHD_FOOTER_SIZE;
		}
	} else if (v->footer_off > v->data_end) {
		/* Space between the last block and the footer holds stale
		 * bytes (a crash after a block was appended): new blocks go
		 * after it, so that their data areas read as zeros. */
		v->data_end = v->footer_off;
	} else if (v->footer_off < v->data_end && (v->flags & VHD_OPEN_RDWR)) {
		/* The last block runs past the footer's start (its writer did
		 * not round it): a write to the block's tail would overwrite
		 * the footer, so the footer moves after the block first.
		 * (Found by fuzzing: the file then lost its footer.) */
		v->footer_off = v->data_end;
		r = vhd_write_footer(v, v->footer_off, false);
		if (r >= 0)
			r = f->ops->flush(f);
		if (r < 0) {
			vhd_set_error(err, r, "%s: moving the footer: %s", name,
				      strerror(-r));
			goto fail;
		}
		v->file_size = v->footer_off + VHD_FOOTER_SIZE;
	}
	if (v->type == VHD_TYPE_DIFF && !(opts->flags & VHD_OPEN_NO_PARENT)) {
		r = open_parent(v, opts, err);
		if (r < 0)
			goto fail;
	}
	*out = v;
	return 0;
fail:
	vhd_free(v);
	return r < 0 ? r : -EINVAL;
}

int vhd_open(const char *path, const struct vhd_open_opts *opts,
	     struct vhd **out, struct vhd_error *err)
{
	static const struct vhd_open_opts none = { 0 };

	return vhd_open_layer(NULL, path, opts ? opts : &none, NULL, out, err);
}

int vhd_open_file(struct vhd_file *f, const char *name,
		  const struct vhd_open_opts *opts, struct vhd **out,
		  struct vhd_error *err)
{
	static const struct vhd_open_opts none = { 0 };

	return vhd_open_layer(f, name, opts ? opts : &none, NULL, out, err);
}
