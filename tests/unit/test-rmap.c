// SPDX-License-Identifier: GPL-2.0-or-later
/* The resolved map of a chain (lib/vhd/rmap.c): vhd_map() answers from it
 * exactly what the walk through the layers answers, at every offset and
 * length, after writes to the top (vhd_pwrite and the asynchronous path),
 * after a snapshot, within its memory bound and with it evicting. */
#include "util.h"

/* Sector-sized pieces written at random into v: scattered runs of 1-40
 * sectors, so that blocks mix layers. */
static void scatter(struct vhd *v, uint64_t size, int runs)
{
	uint8_t buf[40 * 512];

	for (int i = 0; i < runs; i++) {
		uint64_t s = trand() % (size / 512);
		uint64_t n = 1 + trand() % 40;

		if (s + n > size / 512)
			n = size / 512 - s;
		tfill(buf, n * 512);
		assert_int_equal(vhd_pwrite(v, buf, n * 512, s * 512), (ssize_t)(n * 512));
	}
}

/*
 * base (dynamic with 1 MiB blocks, or fixed) <- mid <- top (256 KiB
 * blocks), of a size no block size divides, so that the last blocks are
 * partial.  With mid's blocks larger than the top's, every layer holds a
 * top block in one place and the map resolves it; with them smaller, a top
 * block spans several of mid's and vhd_map() walks instead.
 */
static const uint64_t chain_size = (3 << 20) + 7 * 512;

static void make_chain_of(enum vhd_type base, uint32_t base_block_size,
			  uint32_t mid_block_size, uint32_t top_block_size)
{
	struct vhd *v;

	tcreate(tpath("base.vhd"), base, chain_size, base_block_size, NULL);
	v = topen(tpath("base.vhd"), VHD_OPEN_RDWR);
	scatter(v, chain_size, 300);
	vhd_close(v);
	tcreate(tpath("mid.vhd"), VHD_TYPE_DIFF, 0, mid_block_size, tpath("base.vhd"));
	v = topen(tpath("mid.vhd"), VHD_OPEN_RDWR);
	scatter(v, chain_size, 300);
	vhd_close(v);
	tcreate(tpath("top.vhd"), VHD_TYPE_DIFF, 0, top_block_size, tpath("mid.vhd"));
	v = topen(tpath("top.vhd"), VHD_OPEN_RDWR);
	scatter(v, chain_size, 200);
	vhd_close(v);
}

static void make_chain(void)
{
	make_chain_of(VHD_TYPE_DYNAMIC, 1 << 20, 512 << 10, 256 << 10);
}

static void expect_same(struct vhd *v, uint64_t off, uint64_t len)
{
	struct vhd_extent a, b;
	size_t limit = v->rmap_limit;

	assert_int_equal(vhd_map(v, off, len, &a), 0);
	v->rmap_limit = 0;
	assert_int_equal(vhd_map(v, off, len, &b), 0);
	v->rmap_limit = limit;
	assert_int_equal(a.kind, b.kind);
	assert_int_equal(a.depth, b.depth);
	assert_int_equal(a.len, b.len);
	if (a.kind == VHD_EXT_DATA) {
		assert_ptr_equal(a.layer, b.layer);
		assert_int_equal(a.file_off, b.file_off);
	}
}

/* Every sector offset, with lengths of one sector, a 4 KiB read, one
 * across a block boundary and the rest of the disk; both 4 KiB-aligned
 * and not (those may fall back to the walk, which is then compared with
 * itself: the point is that nothing differs). */
static void expect_all_same(struct vhd *v)
{
	static const uint64_t lens[] = { 512, 4096, 300 << 10 };

	for (uint64_t off = 0; off < chain_size; off += 512) {
		for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++)
			if (lens[i] <= chain_size - off)
				expect_same(v, off, lens[i]);
		expect_same(v, off, chain_size - off);
	}
}

static void test_matches_walk(void **s)
{
	struct vhd *v;

	make_chain();
	v = topen(tpath("top.vhd"), 0);
	expect_all_same(v);
	assert_true(vhd_rmap_bytes(v) > 0);
	/* Everything again, from the blocks now held. */
	expect_all_same(v);
	vhd_close(v);
}

static void test_fixed_base(void **s)
{
	struct vhd *v;

	make_chain_of(VHD_TYPE_FIXED, 0, 512 << 10, 256 << 10);
	v = topen(tpath("top.vhd"), 0);
	expect_all_same(v);
	assert_true(vhd_rmap_bytes(v) > 0);
	vhd_close(v);
}

/* Blocks of a few sectors, less than a granule, in the top. */
static void test_tiny_blocks(void **s)
{
	struct vhd *v;

	make_chain_of(VHD_TYPE_DYNAMIC, 1 << 20, 4096, 2048);
	v = topen(tpath("top.vhd"), VHD_OPEN_RDWR);
	expect_all_same(v);
	assert_true(vhd_rmap_bytes(v) > 0);
	scatter(v, chain_size, 100);
	expect_all_same(v);
	vhd_close(v);
}

/* A top grown past its parent's end (vhd_resize): what lies past it reads
 * as zeros, what lies before it from the chain, and a block straddles the
 * two. */
static void test_top_past_parent(void **s)
{
	struct vhd_error err = { 0 };
	struct vhd *v;

	make_chain();
	assert_int_equal(vhd_resize(tpath("top.vhd"), chain_size + (700 << 10), 0,
				    &err), 0);
	v = topen(tpath("top.vhd"), VHD_OPEN_RDWR);
	assert_int_equal(vhd_size(v), chain_size + (700 << 10));
	for (uint64_t off = 0; off < vhd_size(v); off += 512)
		expect_same(v, off, vhd_size(v) - off < 4096 ? vhd_size(v) - off : 4096);
	assert_true(vhd_rmap_bytes(v) > 0);
	scatter(v, vhd_size(v), 100);
	for (uint64_t off = 0; off < vhd_size(v); off += 512)
		expect_same(v, off, vhd_size(v) - off);
	vhd_close(v);
}

/* A layer with blocks smaller than the top's: nothing is held, and the
 * walk answers. */
static void test_smaller_blocks_below(void **s)
{
	struct vhd *v;

	make_chain_of(VHD_TYPE_DYNAMIC, 1 << 20, 64 << 10, 256 << 10);
	v = topen(tpath("top.vhd"), 0);
	expect_all_same(v);
	assert_int_equal(vhd_rmap_bytes(v), 0);
	vhd_close(v);
}

/* Writes to the top change what the chain reads: each one, through
 * vhd_pwrite or vhd_map_for_write + vhd_write_done, leaves no stale
 * block behind; and the data read through the extents is what was
 * written. */
static void test_writes_to_top(void **s)
{
	uint8_t *model = malloc(chain_size), buf[64 * 512];
	struct vhd *v;

	make_chain();
	v = topen(tpath("top.vhd"), VHD_OPEN_RDWR);
	assert_int_equal(vhd_pread(v, model, chain_size, 0), (ssize_t)chain_size);
	expect_all_same(v);
	for (int i = 0; i < 200; i++) {
		uint64_t sec = trand() % (chain_size / 512), n = 1 + trand() % 64;
		uint64_t bs = vhd_block_size(v), fo;

		if (sec + n > chain_size / 512)
			n = chain_size / 512 - sec;
		if ((sec * 512) / bs != (sec * 512 + n * 512 - 1) / bs)
			n = (bs - sec * 512 % bs) / 512;
		tfill(buf, n * 512);
		if (i % 2) {
			assert_int_equal(vhd_pwrite(v, buf, n * 512, sec * 512),
					 (ssize_t)(n * 512));
		} else {
			assert_int_equal(vhd_map_for_write(v, sec * 512, n * 512, &fo), 0);
			/* Not yet recorded: reads still see the parent. */
			expect_same(v, sec * 512, n * 512);
			assert_int_equal(vhd_write_exact(v->file, buf, n * 512, fo), 0);
			assert_int_equal(vhd_write_done(v, sec * 512, n * 512), 0);
		}
		memcpy(model + sec * 512, buf, n * 512);
		expect_same(v, sec * 512, n * 512);
		if (i % 50 == 0)
			assert_int_equal(vhd_flush(v), 0);
	}
	expect_all_same(v);
	texpect_extents(v, model, chain_size);
	vhd_close(v);
	free(model);
}

/* A snapshot makes the handle a new, empty top over the old one: the
 * blocks resolved for the old top must not answer for the new one.  2 MiB
 * blocks throughout, as the snapshot's own. */
static void test_snapshot(void **s)
{
	struct vhd_error err = { 0 };
	struct vhd *v;

	make_chain_of(VHD_TYPE_DYNAMIC, 2 << 20, 2 << 20, 2 << 20);
	v = topen(tpath("top.vhd"), VHD_OPEN_RDWR);
	expect_all_same(v);
	unlink(tpath("snap.vhd"));
	assert_int_equal(vhd_snapshot(v, tpath("snap.vhd"), &err), 0);
	expect_all_same(v);
	assert_true(vhd_rmap_bytes(v) > 0);
	scatter(v, chain_size, 50);
	expect_all_same(v);
	vhd_close(v);
}

/* Held within its bound in bytes, evicting as reads move on; the
 * answers stay the walk's. */
static void test_memory_bound(void **s)
{
	struct vhd *v;

	make_chain();
	v = topen(tpath("top.vhd"), 0);
	v->rmap_limit = 20 << 10;
	for (int pass = 0; pass < 2; pass++) {
		for (uint64_t off = 0; off < chain_size; off += 4096) {
			uint64_t len = chain_size - off < 4096 ? chain_size - off : 4096;

			expect_same(v, off, len);
			assert_true(vhd_rmap_bytes(v) <= v->rmap_limit);
		}
	}
	assert_true(vhd_rmap_bytes(v) > 0);
	/* Random reads over the whole disk, evicting all the time. */
	for (int i = 0; i < 20000; i++) {
		uint64_t off = trand() % (chain_size / 512) * 512;

		expect_same(v, off, chain_size - off < 4096 ? chain_size - off : 4096);
		assert_true(vhd_rmap_bytes(v) <= v->rmap_limit);
	}
	/* A bound smaller than any block: nothing held, every read walks. */
	vhd_rmap_free(v);
	v->rmap_limit = 16;
	expect_same(v, 0, 4096);
	assert_int_equal(vhd_rmap_bytes(v), 0);
	vhd_close(v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_matches_walk),
		cmocka_unit_test(test_fixed_base),
		cmocka_unit_test(test_smaller_blocks_below),
		cmocka_unit_test(test_top_past_parent),
		cmocka_unit_test(test_tiny_blocks),
		cmocka_unit_test(test_writes_to_top),
		cmocka_unit_test(test_snapshot),
		cmocka_unit_test(test_memory_bound),
	};

	return TRUN(tests);
}
