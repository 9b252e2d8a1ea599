// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Checking a VHD's structures, and repairing what can be repaired safely.
 *
 * Check reads the footer, its copy, the dynamic header and the BAT, and
 * nothing else: a 2040 GiB disk is a 4 MiB BAT scanned once, with the
 * allocated entries sorted to find overlaps.  Sector bitmaps are not read;
 * only their place in the file can be wrong in a way check can tell.
 *
 * Problems are collected first and reported after the repairs, so that
 * each line can say what was done.  The repairs are ordered so that a crash
 * between any two writes leaves a file that check repairs again:
 *  1. the header checksum and the dropped BAT entries, then a sync, so
 *     that no entry can still point past the end once the file is cut;
 *  2. the footer copy at offset 0;
 *  3. the footer at the end: first written at its new place, right after
 *     the last structure in use, and only then the file cut to end there
 *     (until the cut, the old footer or the copy is the one readers use);
 *  4. a sync.
 */
#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vhd-private.h"

/* Lines reported for one kind of problem before "and N more". */
#define CHECK_LINES_PER_KIND	10

enum check_kind {
	K_FOOTER,
	K_COPY,
	K_HEADER,
	K_LOCATOR,
	K_BAT_EOF,
	K_BAT_META,
	K_BAT_OVERLAP,
	K_BAT_TAIL,
	K_LEAK,
	K_PARENT,
	K_NR
};

/* The summary of the lines left out, per kind ("%u more ..."). */
static const char *const kind_more[K_NR] = {
	[K_LOCATOR] = "parent locators are damaged",
	[K_BAT_EOF] = "BAT entries point past the end of the file",
	[K_BAT_META] = "BAT entries overlap the disk's metadata",
	[K_BAT_OVERLAP] = "BAT entries overlap other blocks",
	[K_BAT_TAIL] = "blocks run past the end of the data",
};

enum check_fix {
	FIX_NONE,
	FIX_COPY,		/* write the footer copy at offset 0 */
	FIX_TAIL,		/* write the footer after the data, cut there */
	FIX_FOOTER_SUM,		/* recompute the footer checksum */
	FIX_HEADER_SUM,		/* recompute the header checksum */
	FIX_DROP,		/* mark BAT entries unused */
	FIX_LOCATOR,		/* clear damaged parent locators */
	FIX_NR
};

struct check_problem {
	char *msg;
	enum check_fix fix;
};

enum footer_state { F_OK, F_MISSING, F_INVALID, F_CHECKSUM };

struct meta_range {
	uint64_t off, len;
	char what[32];
};

struct block_ref {
	uint32_t sector;
	uint32_t entry;
};

struct check {
	struct vhd_file *f;
	const char *name;
	unsigned flags;
	vhd_warn_fn warn;
	void *warn_opaque;
	bool repair;
	struct vhd_check_report *rep;
	uint64_t file_size;

	/* The footer in use, as stored (checksum fixed on repair). */
	uint8_t footer_raw[VHD_FOOTER_SIZE];
	struct vhd_footer footer;
	/* Offset of a usable footer at the end, or VHD_NO_OFFSET. */
	uint64_t footer_pos;
	bool fatal;		/* a structure check cannot read past */

	uint8_t header_raw[VHD_HEADER_SIZE];
	struct vhd_header header;
	uint32_t bitmap_size;
	uint64_t block_bytes;	/* bitmap and data */
	uint32_t *bat;		/* as stored: big-endian */
	uint8_t *bat_dirty;	/* per BAT sector, for FIX_DROP */
	uint32_t bat_sectors;
	struct meta_range meta[3 + VHD_NR_LOCATORS];
	bool clear_locator[VHD_NR_LOCATORS];	/* for FIX_LOCATOR */
	unsigned nr_meta;
	/* End of the last structure in use: the footer belongs here. */
	uint64_t data_end;

	struct check_problem *p;
	unsigned nr, cap;
	unsigned per_kind[K_NR];
	enum check_fix more_fix[K_NR];
	bool need[FIX_NR], done[FIX_NR];
	unsigned problems, repaired;
	int error;		/* first allocation failure */
};

static void put_be32(uint8_t *p, uint32_t v)
{
	v = htobe32(v);
	memcpy(p, &v, 4);
}

static bool ranges_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

static void add_problem(struct check *c, enum check_kind kind,
			enum check_fix fix, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void add_problem(struct check *c, enum check_kind kind,
			enum check_fix fix, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	c->problems++;
	c->need[fix] = true;
	if (++c->per_kind[kind] > CHECK_LINES_PER_KIND) {
		c->more_fix[kind] = fix;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (c->nr == c->cap) {
		unsigned cap = c->cap ? c->cap * 2 : 16;
		struct check_problem *p = realloc(c->p, cap * sizeof(*p));

		if (!p) {
			c->error = -ENOMEM;
			return;
		}
		c->p = p;
		c->cap = cap;
	}
	c->p[c->nr].msg = strdup(msg);
	c->p[c->nr].fix = fix;
	if (!c->p[c->nr].msg)
		c->error = -ENOMEM;
	else
		c->nr++;
}

/* Tells what is wrong with 512 bytes that should be a footer. */
static enum footer_state footer_state(struct check *c, const uint8_t *b,
				      bool copy, char *why, size_t len)
{
	struct vhd_footer f;
	uint32_t sum;

	why[0] = '\0';
	if (memcmp(b, VHD_COOKIE, 8) != 0) {
		snprintf(why, len, "is missing");
		return F_MISSING;
	}
	vhd_footer_decode(&f, b);
	if (f.type != VHD_TYPE_FIXED && f.type != VHD_TYPE_DYNAMIC &&
	    f.type != VHD_TYPE_DIFF)
		snprintf(why, len, "is invalid (unknown disk type %u)", f.type);
	else if (copy && f.type == VHD_TYPE_FIXED)
		snprintf(why, len, "is invalid (the type is fixed)");
	else if (f.current_size % VHD_SECTOR_SIZE)
		snprintf(why, len,
			 "is invalid (virtual size %llu is not a whole number of sectors)",
			 (unsigned long long)f.current_size);
	else if (f.type != VHD_TYPE_FIXED && f.current_size > VHD_MAX_SIZE)
		snprintf(why, len,
			 "is invalid (virtual size %llu exceeds the 2040 GiB limit)",
			 (unsigned long long)f.current_size);
	else if (f.type != VHD_TYPE_FIXED &&
		 (f.data_offset % VHD_SECTOR_SIZE ||
		  f.data_offset < VHD_FOOTER_SIZE ||
		  f.data_offset == VHD_NO_OFFSET))
		snprintf(why, len,
			 "is invalid (dynamic header offset %llu)",
			 (unsigned long long)f.data_offset);
	if (why[0])
		return F_INVALID;
	sum = vhd_footer_checksum(b);
	if (f.checksum == sum)
		return F_OK;
	snprintf(why, len, "is damaged (checksum 0x%08x, computed 0x%08x)",
		 f.checksum, sum);
	/* Asked to, check reads a structure whose only fault is its sum. */
	return (c->flags & VHD_OPEN_IGNORE_CHECKSUMS) ? F_OK : F_CHECKSUM;
}

static void use_footer(struct check *c, const uint8_t *b)
{
	memcpy(c->footer_raw, b, VHD_FOOTER_SIZE);
	vhd_footer_decode(&c->footer, b);
	if (c->footer.checksum != vhd_footer_checksum(b))
		vhd_warnf(c->warn, c->warn_opaque,
			  "%s: footer checksum is wrong (stored 0x%08x, computed 0x%08x); checked anyway as asked",
			  c->name, c->footer.checksum, vhd_footer_checksum(b));
}

/* Picks the footer to check against: the one at the end, else the copy at
 * offset 0, else one whose only fault is its checksum. */
static int check_footer(struct check *c, struct vhd_error *err)
{
	uint8_t end[VHD_FOOTER_SIZE], copy[VHD_FOOTER_SIZE];
	char ewhy[160], cwhy[160];
	enum footer_state es, cs;
	uint64_t end_off;
	int r;

	if (c->file_size < VHD_FOOTER_SIZE)
		return vhd_set_error(err, -EINVAL,
				     "%s: not a VHD file (%llu bytes is too short for a footer)",
				     c->name, (unsigned long long)c->file_size);
	end_off = c->file_size - VHD_FOOTER_SIZE;
	r = vhd_read_exact(c->f, end, VHD_FOOTER_SIZE, end_off);
	if (r >= 0 && memcmp(end, VHD_COOKIE, 8) != 0 &&
	    c->file_size % VHD_SECTOR_SIZE == 511) {
		/* Before Virtual PC 2004 the footer was 511 bytes. */
		end_off = c->file_size - 511;
		r = vhd_read_exact(c->f, end, 511, end_off);
		end[511] = 0;
	}
	if (r >= 0)
		r = vhd_read_exact(c->f, copy, VHD_FOOTER_SIZE, 0);
	if (r < 0)
		return vhd_set_error(err, r, "%s: reading the footer: %s",
				     c->name, strerror(-r));
	es = footer_state(c, end, false, ewhy, sizeof(ewhy));
	cs = footer_state(c, copy, true, cwhy, sizeof(cwhy));
	c->footer_pos = VHD_NO_OFFSET;

	if (es == F_OK) {
		use_footer(c, end);
		c->footer_pos = end_off;
		if (c->footer.type != VHD_TYPE_FIXED &&
		    memcmp(end, copy, VHD_FOOTER_SIZE) != 0)
			add_problem(c, K_COPY, FIX_COPY,
				    "%s: the footer copy at offset 0 %s", c->name,
				    cs == F_OK ? "differs from the footer at the end" : cwhy);
		return 0;
	}
	if (cs == F_OK) {
		use_footer(c, copy);
		add_problem(c, K_FOOTER, FIX_TAIL,
			    "%s: the footer at the end %s; using the copy at offset 0",
			    c->name, ewhy);
		return 0;
	}
	if (es == F_CHECKSUM || cs == F_CHECKSUM) {
		const uint8_t *b = es == F_CHECKSUM ? end : copy;

		use_footer(c, b);
		if (es == F_CHECKSUM)
			c->footer_pos = end_off;
		else
			add_problem(c, K_FOOTER, FIX_TAIL,
				    "%s: the footer at the end %s", c->name, ewhy);
		/* Both copies agree that this is the footer; every field of
		 * it is valid, so the checksum alone is wrong. */
		add_problem(c, K_FOOTER, FIX_FOOTER_SUM,
			    "%s: footer checksum mismatch (stored 0x%08x, computed 0x%08x) and no good copy",
			    c->name, c->footer.checksum, vhd_footer_checksum(b));
		return 0;
	}
	if (es == F_MISSING && cs == F_MISSING)
		return vhd_set_error(err, -EINVAL,
				     "%s: not a VHD file (no \"conectix\" footer at its end or start)",
				     c->name);
	if (es == F_INVALID)
		add_problem(c, K_FOOTER, FIX_NONE, "%s: the footer at the end %s",
			    c->name, ewhy);
	else
		add_problem(c, K_FOOTER, FIX_NONE,
			    "%s: the footer at the end %s and the copy at offset 0 %s",
			    c->name, ewhy, cwhy);
	c->fatal = true;
	return 0;
}

static void add_meta(struct check *c, uint64_t off, uint64_t len,
		     const char *what)
{
	struct meta_range *m = &c->meta[c->nr_meta++];

	m->off = off;
	m->len = len;
	snprintf(m->what, sizeof(m->what), "%s", what);
	if (off + len > c->data_end)
		c->data_end = off + len;
}

static const struct meta_range *meta_hit(const struct check *c, uint64_t off,
					 uint64_t len)
{
	for (unsigned i = 0; i < c->nr_meta; i++)
		if (ranges_overlap(off, len, c->meta[i].off, c->meta[i].len))
			return &c->meta[i];
	return NULL;
}

/*
 * Locators' data must lie in the file, clear of the other metadata, by the
 * one definition open uses (vhd_locator_range).  A damaged one is repaired
 * by clearing it, when the header is otherwise sound (its checksum good):
 * the parent could not be found through it anyway, and what it overlaps
 * matters more.  Returns the number of damaged locators.
 */
static unsigned check_locators(struct check *c, bool header_sound)
{
	enum check_fix fix = header_sound ? FIX_LOCATOR : FIX_NONE;
	unsigned bad = 0;

	for (int i = 0; i < VHD_NR_LOCATORS; i++) {
		const struct vhd_locator *l = &c->header.loc[i];
		const struct meta_range *m;
		uint64_t off, len;
		char code[5], what[32];

		if (!vhd_plat_known(l->code) || !l->data_len)
			continue;
		vhd_plat_name(l->code, code);
		if (!vhd_locator_range(l, c->file_size, &off, &len)) {
			add_problem(c, K_LOCATOR, fix,
				    "%s: parent locator %d (%s) data lies outside the file (offset %llu, %llu bytes, file %llu bytes)",
				    c->name, i, code, (unsigned long long)l->data_off,
				    (unsigned long long)(vhd_locator_space_bytes(l) > l->data_len ?
							 vhd_locator_space_bytes(l) : l->data_len),
				    (unsigned long long)c->file_size);
			c->clear_locator[i] = true;
			bad++;
			continue;
		}
		m = meta_hit(c, off, len);
		if (!m && c->footer_pos != VHD_NO_OFFSET &&
		    ranges_overlap(off, len, c->footer_pos, VHD_FOOTER_SIZE))
			m = &(struct meta_range){ .what = "footer" };
		if (m) {
			add_problem(c, K_LOCATOR, fix,
				    "%s: parent locator %d (%s) data (offset %llu, %llu bytes) overlaps the %s",
				    c->name, i, code, (unsigned long long)off,
				    (unsigned long long)len, m->what);
			c->clear_locator[i] = true;
			bad++;
			continue;
		}
		snprintf(what, sizeof(what), "parent locator %d data", i);
		add_meta(c, off, len, what);
	}
	return bad;
}

/* The dynamic header: any fault but the checksum stops the check. */
static int check_header(struct check *c)
{
	struct vhd_header *h = &c->header;
	uint64_t off = c->footer.data_offset, bat_bytes;
	uint64_t size = vhd_footer_size(&c->footer);
	char why[256] = "";
	uint32_t sum;
	unsigned bad;
	int r;

	if (off > c->file_size || c->file_size - off < VHD_HEADER_SIZE) {
		add_problem(c, K_HEADER, FIX_NONE,
			    "%s: dynamic header offset %llu is outside the file (%llu bytes)",
			    c->name, (unsigned long long)off,
			    (unsigned long long)c->file_size);
		c->fatal = true;
		return 0;
	}
	r = vhd_read_exact(c->f, c->header_raw, VHD_HEADER_SIZE, off);
	if (r < 0)
		return r;
	vhd_header_decode(h, c->header_raw);
	sum = vhd_header_checksum(c->header_raw);
	bat_bytes = vhd_round_up((uint64_t)h->max_entries * 4, VHD_SECTOR_SIZE);
	if (memcmp(h->cookie, VHD_HDR_COOKIE, 8) != 0)
		snprintf(why, sizeof(why),
			 "bad dynamic header cookie (expected \"cxsparse\")");
	else if (c->footer_pos != VHD_NO_OFFSET &&
		 ranges_overlap(off, VHD_HEADER_SIZE, c->footer_pos, VHD_FOOTER_SIZE))
		snprintf(why, sizeof(why),
			 "the dynamic header (offset %llu) overlaps the footer",
			 (unsigned long long)off);
	else if (h->block_size < VHD_SECTOR_SIZE || h->block_size > (1u << 30) ||
		 (h->block_size & (h->block_size - 1)))
		snprintf(why, sizeof(why),
			 "block size %u is not a power of two between 512 bytes and 1 GiB",
			 h->block_size);
	else if (h->max_entries == 0)
		snprintf(why, sizeof(why), "the BAT has no entries");
	else if ((uint64_t)h->max_entries * h->block_size < size)
		snprintf(why, sizeof(why),
			 "virtual size %llu is larger than the %u blocks of %u bytes the BAT maps",
			 (unsigned long long)size, h->max_entries, h->block_size);
	else if (h->table_offset % VHD_SECTOR_SIZE ||
		 h->table_offset > c->file_size ||
		 (uint64_t)h->max_entries * 4 > c->file_size - h->table_offset)
		snprintf(why, sizeof(why),
			 "the BAT (%u entries at offset %llu) lies outside the file (%llu bytes)",
			 h->max_entries, (unsigned long long)h->table_offset,
			 (unsigned long long)c->file_size);
	else if (ranges_overlap(h->table_offset, bat_bytes, 0, VHD_FOOTER_SIZE) ||
		 ranges_overlap(h->table_offset, bat_bytes, off, VHD_HEADER_SIZE) ||
		 (c->footer_pos != VHD_NO_OFFSET &&
		  ranges_overlap(h->table_offset, bat_bytes, c->footer_pos,
				 VHD_FOOTER_SIZE)))
		snprintf(why, sizeof(why),
			 "the BAT (%u entries at offset %llu) overlaps the footer or the dynamic header",
			 h->max_entries, (unsigned long long)h->table_offset);
	if (sum != h->checksum && (c->flags & VHD_OPEN_IGNORE_CHECKSUMS))
		vhd_warnf(c->warn, c->warn_opaque,
			  "%s: dynamic header checksum is wrong (stored 0x%08x, computed 0x%08x); checked anyway as asked",
			  c->name, h->checksum, sum);
	else if (sum != h->checksum && why[0])
		add_problem(c, K_HEADER, FIX_NONE,
			    "%s: dynamic header checksum mismatch (stored 0x%08x, computed 0x%08x)",
			    c->name, h->checksum, sum);
	if (why[0]) {
		add_problem(c, K_HEADER, FIX_NONE, "%s: %s", c->name, why);
		c->fatal = true;
		return 0;
	}
	c->bitmap_size = (uint32_t)vhd_round_up((h->block_size / VHD_SECTOR_SIZE + 7) / 8,
						VHD_SECTOR_SIZE);
	c->block_bytes = (uint64_t)c->bitmap_size + h->block_size;
	c->bat_sectors = (uint32_t)(bat_bytes / VHD_SECTOR_SIZE);
	add_meta(c, 0, VHD_FOOTER_SIZE, "footer copy");
	add_meta(c, off, VHD_HEADER_SIZE, "dynamic header");
	add_meta(c, h->table_offset, bat_bytes, "BAT");
	bad = check_locators(c, sum == h->checksum || (c->flags & VHD_OPEN_IGNORE_CHECKSUMS));
	if (sum != h->checksum && !(c->flags & VHD_OPEN_IGNORE_CHECKSUMS))
		add_problem(c, K_HEADER, bad ? FIX_NONE : FIX_HEADER_SUM,
			    "%s: dynamic header checksum mismatch (stored 0x%08x, computed 0x%08x)",
			    c->name, h->checksum, sum);
	return 0;
}

static int cmp_block(const void *a, const void *b)
{
	const struct block_ref *x = a, *y = b;

	if (x->sector != y->sector)
		return x->sector < y->sector ? -1 : 1;
	return x->entry < y->entry ? -1 : x->entry > y->entry;
}

static void drop_entry(struct check *c, uint32_t i)
{
	c->bat[i] = VHD_BAT_UNUSED;
	c->bat_dirty[i / (VHD_SECTOR_SIZE / 4)] = 1;
}

/* Each allocated block must lie in the file, clear of the metadata and of
 * every other block.  The bitmap and block come from the BAT alone. */
static int check_bat(struct check *c)
{
	const struct vhd_header *h = &c->header;
	struct block_ref *s;
	uint32_t n = 0;
	int r;

	c->bat = malloc((size_t)c->bat_sectors * VHD_SECTOR_SIZE);
	c->bat_dirty = calloc(c->bat_sectors, 1);
	if (!c->bat || !c->bat_dirty)
		return -ENOMEM;
	r = vhd_read_exact(c->f, c->bat, (size_t)c->bat_sectors * VHD_SECTOR_SIZE,
			   h->table_offset);
	if (r < 0)
		return r;
	for (uint32_t i = 0; i < h->max_entries; i++)
		if (c->bat[i] != VHD_BAT_UNUSED)
			n++;
	s = malloc((size_t)(n ? n : 1) * sizeof(*s));
	if (!s)
		return -ENOMEM;
	n = 0;
	for (uint32_t i = 0; i < h->max_entries; i++) {
		uint32_t e = be32toh(c->bat[i]);
		uint64_t off = (uint64_t)e * VHD_SECTOR_SIZE;
		const struct meta_range *m;

		if (e == VHD_BAT_UNUSED)
			continue;
		if (off + c->bitmap_size > c->file_size) {
			add_problem(c, K_BAT_EOF, FIX_DROP,
				    "%s: BAT entry %u points past the end of the file (offset %llu, file %llu bytes)",
				    c->name, i, (unsigned long long)off,
				    (unsigned long long)c->file_size);
			drop_entry(c, i);
			continue;
		}
		m = meta_hit(c, off, c->block_bytes);
		if (m)
			add_problem(c, K_BAT_META, FIX_NONE,
				    "%s: BAT entry %u (offset %llu) overlaps the %s",
				    c->name, i, (unsigned long long)off, m->what);
		s[n].sector = e;
		s[n].entry = i;
		n++;
	}
	qsort(s, n, sizeof(*s), cmp_block);
	for (uint32_t k = 0; k < n; k++) {
		uint64_t off = (uint64_t)s[k].sector * VHD_SECTOR_SIZE;
		uint64_t end = off + c->block_bytes;

		/* Every block is the same size: a block overlaps another
		 * only if it overlaps the one before it in file order. */
		if (k && (uint64_t)s[k - 1].sector * VHD_SECTOR_SIZE +
			 c->block_bytes > off)
			add_problem(c, K_BAT_OVERLAP, FIX_NONE,
				    "%s: BAT entries %u and %u overlap (blocks at offsets %llu and %llu)",
				    c->name, s[k - 1].entry, s[k].entry,
				    (unsigned long long)s[k - 1].sector * VHD_SECTOR_SIZE,
				    (unsigned long long)off);
		if (c->footer_pos != VHD_NO_OFFSET && end > c->footer_pos)
			add_problem(c, K_BAT_TAIL, FIX_TAIL,
				    "%s: BAT entry %u (block at offset %llu to %llu) overlaps the footer at offset %llu",
				    c->name, s[k].entry, (unsigned long long)off,
				    (unsigned long long)end,
				    (unsigned long long)c->footer_pos);
		else if (c->footer_pos == VHD_NO_OFFSET && end > c->file_size)
			add_problem(c, K_BAT_TAIL, FIX_TAIL,
				    "%s: BAT entry %u (block at offset %llu to %llu) extends past the end of the file (%llu bytes)",
				    c->name, s[k].entry, (unsigned long long)off,
				    (unsigned long long)end,
				    (unsigned long long)c->file_size);
		if (end > c->data_end)
			c->data_end = end;
	}
	free(s);
	return 0;
}

/* What lies between the last structure in use and the footer. */
static void check_tail(struct check *c)
{
	uint64_t fp = c->footer_pos;

	if (fp == VHD_NO_OFFSET) {
		/* The footer is being rewritten anyway (reported with it). */
		if (c->file_size > c->data_end)
			c->rep->leaked_bytes = c->file_size - c->data_end;
		return;
	}
	if (fp < c->data_end) {
		if (c->footer.type == VHD_TYPE_FIXED) {
			add_problem(c, K_LEAK, FIX_NONE,
				    "%s: fixed disk of %llu bytes but only %llu bytes of data in the file",
				    c->name, (unsigned long long)c->data_end,
				    (unsigned long long)fp);
			c->fatal = true;
		}
		return;
	}
	if (fp == c->data_end)
		return;
	c->rep->leaked_bytes = fp - c->data_end;
	/* A fixed disk has no copy: its footer may not move over itself. */
	add_problem(c, K_LEAK,
		    c->footer.type == VHD_TYPE_FIXED && fp - c->data_end < VHD_FOOTER_SIZE ?
		    FIX_NONE : FIX_TAIL,
		    "%s: %llu bytes leaked after the last structure in use (offset %llu to %llu)",
		    c->name, (unsigned long long)(fp - c->data_end),
		    (unsigned long long)c->data_end, (unsigned long long)fp);
}

static int write_bat_fixes(struct check *c)
{
	for (uint32_t s = 0; s < c->bat_sectors; s++) {
		int r;

		if (!c->bat_dirty[s])
			continue;
		r = vhd_write_exact(c->f, (uint8_t *)c->bat + (uint64_t)s * VHD_SECTOR_SIZE,
				    VHD_SECTOR_SIZE,
				    c->header.table_offset + (uint64_t)s * VHD_SECTOR_SIZE);
		if (r < 0)
			return r;
	}
	return 0;
}

/* The repairs, in the order the top of the file explains. */
static int repair(struct check *c)
{
	bool fixed = c->footer.type == VHD_TYPE_FIXED;
	int r = 0;

	if (c->need[FIX_LOCATOR])
		for (int i = 0; i < VHD_NR_LOCATORS; i++)
			if (c->clear_locator[i])
				memset(c->header_raw + 576 + 24 * i, 0, 24);
	if (c->need[FIX_HEADER_SUM] || c->need[FIX_LOCATOR]) {
		put_be32(c->header_raw + 36, vhd_header_checksum(c->header_raw));
		r = vhd_write_exact(c->f, c->header_raw, VHD_HEADER_SIZE,
				    c->footer.data_offset);
	}
	if (r >= 0 && c->need[FIX_DROP])
		r = write_bat_fixes(c);
	if (r >= 0 && (c->need[FIX_HEADER_SUM] || c->need[FIX_DROP] || c->need[FIX_LOCATOR]))
		r = c->f->ops->flush(c->f);
	if (r < 0)
		return r;
	if (c->need[FIX_FOOTER_SUM])
		put_be32(c->footer_raw + 64, vhd_footer_checksum(c->footer_raw));
	if (!fixed && (c->need[FIX_COPY] || c->need[FIX_FOOTER_SUM]))
		r = vhd_write_exact(c->f, c->footer_raw, VHD_FOOTER_SIZE, 0);
	if (r >= 0 && c->need[FIX_TAIL]) {
		r = vhd_write_exact(c->f, c->footer_raw, VHD_FOOTER_SIZE, c->data_end);
		if (r >= 0)
			r = c->f->ops->truncate(c->f, c->data_end + VHD_FOOTER_SIZE);
	} else if (r >= 0 && c->need[FIX_FOOTER_SUM]) {
		r = vhd_write_exact(c->f, c->footer_raw, VHD_FOOTER_SIZE,
				    c->footer_pos);
	}
	if (r >= 0)
		r = c->f->ops->flush(c->f);
	if (r < 0)
		return r;
	for (int i = FIX_NONE + 1; i < FIX_NR; i++)
		c->done[i] = c->need[i];
	return 0;
}

/* vhd_open_file takes the file it is given; check lends its caller's. */
struct lent_file {
	struct vhd_file base;
	struct vhd_file *f;
};

static ssize_t lent_pread(struct vhd_file *f, void *buf, size_t len,
			  uint64_t off)
{
	struct vhd_file *in = ((struct lent_file *)f)->f;

	return in->ops->pread(in, buf, len, off);
}

static ssize_t lent_pwrite(struct vhd_file *f, const void *buf, size_t len,
			   uint64_t off)
{
	return -EROFS;
}

static int lent_flush(struct vhd_file *f)
{
	return 0;
}

static int lent_get_size(struct vhd_file *f, uint64_t *size)
{
	struct vhd_file *in = ((struct lent_file *)f)->f;

	return in->ops->get_size(in, size);
}

static int lent_truncate(struct vhd_file *f, uint64_t size)
{
	return -EROFS;
}

static void lent_close(struct vhd_file *f)
{
	free(f);
}

static const struct vhd_file_ops lent_ops = {
	.pread = lent_pread,
	.pwrite = lent_pwrite,
	.flush = lent_flush,
	.get_size = lent_get_size,
	.truncate = lent_truncate,
	.close = lent_close,
};

/* The link to the parent: its unique id must be the one the child
 * recorded; a different time stamp means the parent was written to after
 * the child was made, which may or may not matter, so it is a warning. */
static int check_parent(struct check *c, const struct vhd_open_opts *opts)
{
	struct vhd_open_opts o = {
		.flags = VHD_OPEN_FOR_REPAIR | VHD_OPEN_IGNORE_CHECKSUMS |
			 VHD_OPEN_IGNORE_PARENT_ID | (c->flags & VHD_OPEN_NO_LOCK),
		.parent_search_dir = opts->parent_search_dir,
	};
	struct lent_file *lf = calloc(1, sizeof(*lf));
	struct vhd_error e = { 0 };
	struct vhd *v, *p;
	char want[37], have[37];
	int r;

	if (!lf)
		return -ENOMEM;
	lf->base.ops = &lent_ops;
	lf->f = c->f;
	r = vhd_open_file(&lf->base, c->name, &o, &v, &e);
	if (r == -ENOMEM)
		return r;
	if (r < 0) {
		add_problem(c, K_PARENT, FIX_NONE, "%s", e.msg);
		return 0;
	}
	p = v->parent;
	vhd_uuid_format(v->header.parent_uuid, want);
	vhd_uuid_format(p->footer.uuid, have);
	if (memcmp(p->footer.uuid, v->header.parent_uuid, 16) != 0 &&
	    !(c->flags & VHD_OPEN_IGNORE_PARENT_ID))
		add_problem(c, K_PARENT, FIX_NONE,
			    "%s: parent %s has unique id %s but the child expects %s",
			    c->name, p->name, have, want);
	if (p->footer.timestamp != v->header.parent_timestamp)
		vhd_warnf(c->warn, c->warn_opaque,
			  "%s: parent %s was modified after this disk was made (time stamp %u, expected %u)",
			  c->name, p->name, p->footer.timestamp,
			  v->header.parent_timestamp);
	vhd_close(v);
	return 0;
}

static void report(struct check *c)
{
	struct vhd_check_report *rep = c->rep;
	char msg[1536], act[128];

	for (unsigned i = 0; i < c->nr; i++) {
		enum check_fix fix = c->p[i].fix;
		bool done = c->done[fix];

		if (fix == FIX_TAIL)
			snprintf(act, sizeof(act),
				 "footer written at offset %llu, file now %llu bytes",
				 (unsigned long long)c->data_end,
				 (unsigned long long)(c->data_end + VHD_FOOTER_SIZE));
		else if (fix == FIX_COPY)
			snprintf(act, sizeof(act), "copy rewritten from the footer");
		else if (fix == FIX_DROP)
			snprintf(act, sizeof(act), "entry dropped, the block is unallocated");
		else
			snprintf(act, sizeof(act), "checksum recomputed");
		if (done)
			snprintf(msg, sizeof(msg), "%s; repaired: %s", c->p[i].msg, act);
		else
			snprintf(msg, sizeof(msg), "%s", c->p[i].msg);
		if (rep->problem)
			rep->problem(rep->opaque, msg, done);
	}
	for (int k = 0; k < K_NR; k++) {
		bool done = c->done[c->more_fix[k]];

		if (c->per_kind[k] <= CHECK_LINES_PER_KIND)
			continue;
		snprintf(msg, sizeof(msg), "%s: %u more %s%s", c->name,
			 c->per_kind[k] - CHECK_LINES_PER_KIND,
			 kind_more[k] ? kind_more[k] : "problems",
			 done ? "; repaired" : "");
		if (rep->problem)
			rep->problem(rep->opaque, msg, done);
	}
	rep->nr_problems = c->problems;
	rep->nr_repaired = 0;
	for (unsigned i = 0; i < c->nr; i++)
		rep->nr_repaired += c->done[c->p[i].fix];
	for (int k = 0; k < K_NR; k++)
		if (c->per_kind[k] > CHECK_LINES_PER_KIND && c->done[c->more_fix[k]])
			rep->nr_repaired += c->per_kind[k] - CHECK_LINES_PER_KIND;
	if (!rep->nr_problems)
		rep->result = VHD_CHECK_CLEAN;
	else if (rep->nr_repaired == rep->nr_problems)
		rep->result = VHD_CHECK_REPAIRED;
	else
		rep->result = VHD_CHECK_CORRUPT;
}

static int run_checks(struct check *c, const struct vhd_open_opts *opts,
		      struct vhd_error *err)
{
	int r = c->f->ops->get_size(c->f, &c->file_size);

	if (r < 0)
		return vhd_set_error(err, r, "%s: %s", c->name, strerror(-r));
	r = check_footer(c, err);
	if (r < 0 || c->fatal)
		return r;
	if (c->footer.type == VHD_TYPE_FIXED) {
		c->data_end = c->footer.current_size;
	} else {
		r = check_header(c);
		if (r >= 0 && !c->fatal)
			r = check_bat(c);
		if (r < 0)
			return vhd_set_error(err, r, "%s: %s", c->name,
					     strerror(-r));
		if (c->fatal)
			return 0;
	}
	check_tail(c);
	if (c->fatal)
		return 0;
	if (c->repair && c->problems) {
		r = repair(c);
		if (r < 0)
			return vhd_set_error(err, r, "%s: repairing: %s",
					     c->name, strerror(-r));
	}
	if (c->footer.type == VHD_TYPE_DIFF && !(c->flags & VHD_OPEN_NO_PARENT)) {
		r = check_parent(c, opts);
		if (r < 0)
			return vhd_set_error(err, r, "%s: %s", c->name,
					     strerror(-r));
	}
	return 0;
}

int vhd_check_file(struct vhd_file *f, const char *name,
		   const struct vhd_open_opts *opts, bool repair,
		   struct vhd_check_report *rep, struct vhd_error *err)
{
	static const struct vhd_open_opts none = { 0 };
	struct vhd_check_report dummy = { 0 };
	struct check c = { 0 };
	int r;

	if (!opts)
		opts = &none;
	if (!rep)
		rep = &dummy;
	rep->result = VHD_CHECK_CLEAN;
	rep->nr_problems = rep->nr_repaired = 0;
	rep->leaked_bytes = 0;
	c.f = f;
	c.name = name;
	c.flags = opts->flags;
	c.warn = opts->warn;
	c.warn_opaque = opts->warn_opaque;
	c.repair = repair;
	c.rep = rep;
	r = run_checks(&c, opts, err);
	if (r >= 0 && c.error)
		r = vhd_set_error(err, c.error, "%s: %s", name, strerror(-c.error));
	/* Whatever was found is reported, even when the check stopped. */
	report(&c);
	for (unsigned i = 0; i < c.nr; i++)
		free(c.p[i].msg);
	free(c.p);
	free(c.bat);
	free(c.bat_dirty);
	return r < 0 ? r : 0;
}

int vhd_check(const char *path, const struct vhd_open_opts *opts, bool repair,
	      struct vhd_check_report *rep, struct vhd_error *err)
{
	struct vhd_file *f;
	bool lock = !(opts && (opts->flags & VHD_OPEN_NO_LOCK));
	int r = vhd_file_open_posix(path, repair, lock, &f, err);

	if (r < 0)
		return r;
	r = vhd_check_file(f, path, opts, repair, rep, err);
	f->ops->close(f);
	return r;
}
