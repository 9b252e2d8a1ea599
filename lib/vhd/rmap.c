// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The resolved map of a differencing chain: for each block of the top
 * image read through vhd_map(), which layer serves each sector (or that it
 * reads as zeros), and where that layer holds the block.
 *
 * Why: resolving a sector through a chain deep N looks at N BAT entries,
 * "full" bits and bitmaps, each likely a cache miss that can only be taken
 * once the layer above has been looked at; a random 4 KiB read through 8
 * layers spent as long there as in the read itself.  Resolved once per
 * block, a read costs one byte of the map and one line of its header.
 *
 * Why it stays right: only the top image changes while a chain is open (the
 * parents are opened read-only under shared locks), and every change to its
 * mapping goes through alloc_block() or vhd_unmap_block(), which forget
 * the block here, or mark_written(), which updates it.  The operations that
 * change a handle's shape (its size, its parent, where its blocks lie) drop
 * the whole map.
 *
 * A block is resolved from the layers' bitmaps by the same rules as the
 * walk in map_extent(): the top layer whose bitmap has a sector serves it;
 * past a parent's end, or below the last layer, it reads as zeros.  A
 * lookup returns what the walk would, extent for extent
 * (tests/unit/test-rmap.c checks it at every offset).  That needs each
 * layer to hold the block in one place: a layer with smaller blocks than
 * the top's (which VHD allows, and nothing vsrv makes does) is not
 * resolved here and the walk answers.  Memory is bounded in bytes; blocks
 * are evicted by CLOCK, which marks a hit in the entry itself rather than
 * relinking a list.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vhd-private.h"

/* A sector's byte: the depth of the layer serving it, or ZERO | the depth
 * of the layer below which there is nothing.  A granule's (8 sectors,
 * 4 KiB): its sectors' byte if they share one, else MIXED. */
#define ZERO		0x80u
#define MIXED		0x7fu

/*
 * A 4 KiB-aligned read looks at one granule byte: 512 bytes a 2 MiB block
 * rather than 4 KiB for a byte per sector, and a block a VM wrote in 4 KiB
 * pages needs nothing more.  The sectors' bytes are kept too only where
 * some granule is MIXED.  (Measured against a byte per sector: a few
 * percent more reads a second; bench/analysis.md.)
 */
struct rmap_block {
	uint32_t block;
	uint32_t slot;		/* in ring */
	size_t bytes;
	bool ref;		/* CLOCK: read since the hand last passed */
	bool sectors;		/* has a byte per sector */
	uint8_t only;		/* the byte of every sector, when one_run */
	/* Per layer: the file offset of the block's first sector in it.  Then,
	 * unless one_run, a byte per granule and maybe one per sector: at
	 * places known from the chain alone, so that they are fetched without
	 * waiting for the header. */
	uint64_t base[];
};

struct vhd_rmap {
	struct rmap_block **blocks;	/* per top block; NULL: not resolved */
	uint8_t *one_run;		/* per top block: one byte serves all */
	struct rmap_block **ring;	/* the resolved blocks, for eviction */
	uint32_t nr, cap, hand;
	size_t bytes;			/* of the resolved blocks */
	uint8_t *scratch;		/* sectors_per_block bytes */
	uint8_t *pending;		/* sectors_per_block bits */
	unsigned nr_layers;
	uint32_t granules;		/* per block */
	struct vhd *layers[VHD_MAX_CHAIN_DEPTH];
};

static uint8_t *granule_bytes(const struct vhd_rmap *m, struct rmap_block *e)
{
	return (uint8_t *)&e->base[m->nr_layers];
}

static uint8_t *sector_bytes(const struct vhd_rmap *m, struct rmap_block *e)
{
	return granule_bytes(m, e) + m->granules;
}

/* The byte of granule g from its sectors', of which the block has nr. */
static uint8_t granule_of(const uint8_t *sec, uint32_t g, uint32_t nr)
{
	uint32_t end = (g + 1) * 8 < nr ? (g + 1) * 8 : nr;

	for (uint32_t s = g * 8 + 1; s < end; s++)
		if (sec[s] != sec[g * 8])
			return MIXED;
	return sec[g * 8];
}

static void drop(struct vhd_rmap *m, uint32_t slot)
{
	struct rmap_block *e = m->ring[slot];

	m->blocks[e->block] = NULL;
	m->one_run[e->block >> 3] &= (uint8_t)~(1u << (e->block & 7));
	m->bytes -= e->bytes;
	m->ring[slot] = m->ring[--m->nr];
	m->ring[slot]->slot = slot;
	free(e);
}

static void evict_one(struct vhd_rmap *m)
{
	for (;;) {
		if (m->hand >= m->nr)
			m->hand = 0;
		if (!m->ring[m->hand]->ref)
			break;
		m->ring[m->hand++]->ref = false;
	}
	drop(m, m->hand);
}

void vhd_rmap_forget(struct vhd *v, uint32_t b)
{
	struct vhd_rmap *m = v->rmap;

	if (m && m->blocks[b])
		drop(m, m->blocks[b]->slot);
}

/* Updated in place rather than forgotten: a VM that reads what it has just
 * written would otherwise resolve the block again, at some 50 times the
 * cost of one walk. */
void vhd_rmap_written(struct vhd *v, uint32_t b, uint32_t s, uint32_t n)
{
	struct vhd_rmap *m = v->rmap;
	struct rmap_block *e = m ? m->blocks[b] : NULL;
	uint32_t nr, last;
	uint8_t *gran;

	if (!e)
		return;
	if (m->one_run[b >> 3] & (1u << (b & 7))) {
		if (e->only != 0)
			drop(m, e->slot);
		return;
	}
	/* Part of a granule, where no sector has its own byte: it would
	 * need them. */
	if (!e->sectors && ((s | n) & 7)) {
		drop(m, e->slot);
		return;
	}
	/* As resolve_sectors() finds them now: in the top.  Its base[0] is
	 * already where the top holds the block, since allocating a block
	 * forgets it. */
	gran = granule_bytes(m, e);
	last = (s + n - 1) / 8;
	if (!e->sectors) {
		memset(gran + s / 8, 0, last - s / 8 + 1);
		return;
	}
	nr = v->sectors_per_block;
	if ((uint64_t)(b + 1) * v->block_size > v->size)
		nr = (uint32_t)((v->size - (uint64_t)b * v->block_size) / VHD_SECTOR_SIZE);
	memset(sector_bytes(m, e) + s, 0, n);
	for (uint32_t g = s / 8; g <= last; g++)
		gran[g] = granule_of(sector_bytes(m, e), g, nr);
}

void vhd_rmap_free(struct vhd *v)
{
	struct vhd_rmap *m = v->rmap;

	if (!m)
		return;
	for (uint32_t i = 0; i < m->nr; i++)
		free(m->ring[i]);
	free(m->blocks);
	free(m->one_run);
	free(m->ring);
	free(m->scratch);
	free(m->pending);
	free(m);
	v->rmap = NULL;
}

size_t vhd_rmap_bytes(const struct vhd *v)
{
	return v->rmap ? v->rmap->bytes : 0;
}

static struct vhd_rmap *rmap_get(struct vhd *v)
{
	struct vhd_rmap *m = v->rmap;
	unsigned d = 0;

	if (m)
		return m;
	m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	m->blocks = calloc(v->max_entries, sizeof(*m->blocks));
	m->one_run = calloc((v->max_entries + 7) / 8, 1);
	m->scratch = malloc(v->sectors_per_block);
	m->pending = malloc(v->sectors_per_block / 8 + 1);
	if (!m->blocks || !m->one_run || !m->scratch || !m->pending) {
		free(m->blocks);
		free(m->one_run);
		free(m->scratch);
		free(m->pending);
		free(m);
		return NULL;
	}
	for (struct vhd *p = v; p && d < VHD_MAX_CHAIN_DEPTH; p = p->parent)
		m->layers[d++] = p;
	m->nr_layers = d;
	m->granules = (v->sectors_per_block + 7) / 8;
	v->rmap = m;
	return m;
}

/* Room for one more block of `bytes`, evicting others; false if it can
 * never fit. */
static bool make_room(struct vhd *v, struct vhd_rmap *m, size_t bytes)
{
	if (bytes > v->rmap_limit)
		return false;
	while (m->nr && m->bytes + bytes > v->rmap_limit)
		evict_one(m);
	if (m->nr == m->cap) {
		uint32_t cap = m->cap ? 2 * m->cap : 64;
		struct rmap_block **r = realloc(m->ring, cap * sizeof(*r));

		if (!r)
			return false;
		m->ring = r;
		m->cap = cap;
	}
	return true;
}

/* Eight bits of a layer's bitmap from bit t, as a byte (MSB first). */
static uint8_t bits_at(const struct vhd *l, const uint8_t *bits, uint32_t t)
{
	uint32_t i = t >> 3, sh = t & 7;

	if (!sh)
		return bits[i];
	return (uint8_t)(bits[i] << sh |
			 (i + 1 < l->bitmap_size ? bits[i + 1] >> (8 - sh) : 0));
}

/* Gives the sectors of pending[] that layer d serves (all, or those
 * `bits` has from bit `first`) the byte d, and takes them off pending;
 * returns how many. */
static uint32_t serve(const struct vhd *l, const uint8_t *bits, uint32_t first,
		      uint8_t *pending, uint32_t nr, uint8_t *out, uint8_t d)
{
	uint32_t served = 0;

	for (uint32_t i = 0; i < (nr + 7) / 8; i++) {
		uint8_t take = pending[i];

		if (!take)
			continue;
		if (bits)
			take &= bits_at(l, bits, first + i * 8);
		pending[i] &= (uint8_t)~take;
		/* Lowest bit first: it is the last of the eight sectors. */
		for (; take; take &= (uint8_t)(take - 1), served++)
			out[i * 8 + 7 - (uint32_t)__builtin_ctz(take)] = d;
	}
	return served;
}

/*
 * Which layer serves each of the nr sectors from disk offset start, into
 * out[], and where each layer holds them, into base[].  As the walk: a
 * layer serves the sectors its bitmap has (all, for a fixed disk or a full
 * block) that no layer above served; what is left past the next layer's
 * end, or below the last, reads as zeros.  pending[] is a bitmap of the
 * sectors not yet served, so that a layer is looked at a byte at a time;
 * a layer is looked at only while some are left, which also keeps it to
 * the offsets it has.  -ENOTSUP when a layer's blocks are smaller than the
 * top's.
 */
static int resolve_sectors(struct vhd_rmap *m, uint64_t start, uint32_t nr,
			   uint8_t *out, uint64_t *base)
{
	uint8_t *pending = m->pending;
	uint32_t left = nr;

	memset(pending, 0xff, nr / 8);
	if (nr % 8)
		pending[nr / 8] = (uint8_t)(0xff00u >> (nr % 8));
	memset(base, 0, m->nr_layers * sizeof(*base));
	for (unsigned d = 0; d < m->nr_layers && left; d++) {
		struct vhd *l = m->layers[d];
		struct vhd *p = d + 1 < m->nr_layers ? m->layers[d + 1] : NULL;
		uint32_t b, first = 0;
		int r;

		if (l->type == VHD_TYPE_FIXED) {
			base[d] = start;
			left -= serve(l, NULL, 0, pending, nr, out, (uint8_t)d);
			continue;
		}
		if (l->block_size < m->layers[0]->block_size)
			return -ENOTSUP;
		b = (uint32_t)(start / l->block_size);
		first = (uint32_t)(start % l->block_size / VHD_SECTOR_SIZE);
		if (l->bat[b] != VHD_BAT_UNUSED) {
			struct vhd_bitmap *bm;

			r = vhd_load_bitmap(l, b, &bm);
			if (r < 0)
				return r;
			left -= serve(l, bm ? bm->bits : NULL, first, pending, nr,
				      out, (uint8_t)d);
			base[d] = vhd_block_off(l, b) + l->bitmap_size +
				  (uint64_t)first * VHD_SECTOR_SIZE;
		}
		/* Below this layer: zeros past the parent's end, or everything
		 * left when there is no parent. */
		if (p && start + (uint64_t)nr * VHD_SECTOR_SIZE <= p->size)
			continue;
		for (uint32_t s = 0; s < nr; s++) {
			if ((pending[s >> 3] & (0x80u >> (s & 7))) &&
			    (!p || start + (uint64_t)s * VHD_SECTOR_SIZE >= p->size)) {
				pending[s >> 3] &= (uint8_t)~(0x80u >> (s & 7));
				out[s] = (uint8_t)(ZERO | d);
				left--;
			}
		}
	}
	return 0;
}

/* Resolves block b of the top.  NULL when it cannot be held; the caller
 * then walks the chain itself. */
static struct rmap_block *resolve(struct vhd *v, struct vhd_rmap *m, uint32_t b)
{
	uint64_t start = (uint64_t)b * v->block_size;
	uint32_t nr = (uint32_t)((v->size - start < v->block_size ?
				  v->size - start : v->block_size) / VHD_SECTOR_SIZE);
	uint64_t base[VHD_MAX_CHAIN_DEPTH];
	const uint8_t *sec = m->scratch;
	bool one = true, mixed = false;
	struct rmap_block *e;
	size_t bytes;

	if (resolve_sectors(m, start, nr, m->scratch, base) < 0)
		return NULL;
	for (uint32_t s = 1; s < nr && one; s++)
		one = sec[s] == sec[0];
	for (uint32_t g = 0; g < (nr + 7) / 8 && !one && !mixed; g++)
		mixed = granule_of(sec, g, nr) == MIXED;
	bytes = sizeof(*e) + m->nr_layers * sizeof(e->base[0]);
	if (!one)
		bytes += m->granules + (mixed ? nr : 0);
	if (!make_room(v, m, bytes))
		return NULL;
	e = malloc(bytes);
	if (!e)
		return NULL;
	*e = (struct rmap_block){ .block = b, .slot = m->nr, .bytes = bytes,
				  .sectors = mixed, .only = sec[0] };
	memcpy(e->base, base, m->nr_layers * sizeof(e->base[0]));
	if (!one) {
		for (uint32_t g = 0; g < (nr + 7) / 8; g++)
			granule_bytes(m, e)[g] = granule_of(sec, g, nr);
		if (mixed)
			memcpy(sector_bytes(m, e), sec, nr);
	}
	m->ring[m->nr++] = e;
	m->blocks[b] = e;
	if (one)
		m->one_run[b >> 3] |= (uint8_t)(1u << (b & 7));
	m->bytes += bytes;
	return e;
}

/* The piece of block b from sector s: its sectors served alike, at most
 * n bytes.  Within a layer a block lies in one place, so they are one
 * extent, and the walk's is the same: it ends where the serving layer
 * changes.  Whole granules are stepped over by their byte; the sectors'
 * are looked at only in a MIXED one. */
static void lookup(const struct vhd_rmap *m, uint32_t b, uint32_t s,
		   uint64_t n, struct vhd_extent *x)
{
	struct rmap_block *e = m->blocks[b];
	uint32_t max = (uint32_t)(n / VHD_SECTOR_SIZE), k = max;
	uint8_t d;

	if (m->one_run[b >> 3] & (1u << (b & 7))) {
		d = e->only;
	} else {
		const uint8_t *gran = granule_bytes(m, e);
		const uint8_t *sec = sector_bytes(m, e);

		d = gran[s / 8] == MIXED ? sec[s] : gran[s / 8];
		for (k = 0; k < max;) {
			uint32_t t = s + k;

			if (gran[t / 8] == d)
				k += 8 - t % 8;
			else if (gran[t / 8] == MIXED && sec[t] == d)
				k++;
			else
				break;
		}
		if (k > max)
			k = max;
	}
	e->ref = true;
	memset(x, 0, sizeof(*x));
	x->len = (uint64_t)k * VHD_SECTOR_SIZE;
	x->depth = d & ~ZERO;
	if (d & ZERO) {
		x->kind = VHD_EXT_ZERO;
	} else {
		x->kind = VHD_EXT_DATA;
		x->layer = m->layers[x->depth];
		x->file_off = e->base[x->depth] + (uint64_t)s * VHD_SECTOR_SIZE;
	}
}

/*
 * vhd_map() through the resolved blocks: the same pieces, joined by the
 * same rule, as the walk in map_extent().  1 when answered, 0 when the
 * caller must walk the chain (a block that cannot be held).
 */
int vhd_rmap_map(struct vhd *v, uint64_t off, uint64_t len,
		 struct vhd_extent *ext)
{
	struct vhd_rmap *m = rmap_get(v);

	if (!m)
		return 0;
	memset(ext, 0, sizeof(*ext));
	while (ext->len < len) {
		uint64_t o = off + ext->len;
		uint32_t b = (uint32_t)(o / v->block_size);
		uint32_t s = (uint32_t)(o % v->block_size / VHD_SECTOR_SIZE);
		uint64_t n = (uint64_t)(v->sectors_per_block - s) * VHD_SECTOR_SIZE;
		struct vhd_extent x;

		if (n > len - ext->len)
			n = len - ext->len;
		if (!m->blocks[b] && !resolve(v, m, b))
			return 0;
		lookup(m, b, s, n, &x);
		if (!vhd_extent_join(ext, &x) || x.len < n)
			break;
	}
	return 1;
}
