// SPDX-License-Identifier: GPL-2.0-or-later
/* Reading and writing through libvhd against an in-memory model: fixed,
 * dynamic and differencing disks, odd block sizes, partial bitmaps that
 * pass reads through to the parent, reopening, and the error paths. */
#include "util.h"

static struct vhd *open_rw(const char *p)
{
	return topen(p, VHD_OPEN_RDWR);
}

/* Random sector-aligned writes into v and model; then every read matches. */
static void exercise(struct vhd *v, uint8_t *model, uint64_t size, int rounds)
{
	uint8_t *buf = malloc(1 << 20);

	for (int i = 0; i < rounds; i++) {
		uint64_t sectors = size / 512;
		uint64_t s = trand() % sectors;
		uint64_t n = 1 + trand() % (trand() % 4 ? 16 : 2048);

		if (s + n > sectors)
			n = sectors - s;
		for (uint64_t k = 0; k < n * 512; k++)
			buf[k] = (uint8_t)trand();
		if (trand() % 8 == 0)
			memset(buf, 0, n * 512);	/* zeros: the sparse path */
		assert_int_equal(vhd_pwrite(v, buf, n * 512, s * 512), (ssize_t)(n * 512));
		memcpy(model + s * 512, buf, n * 512);
		if (trand() % 16 == 0)
			assert_int_equal(vhd_flush(v), 0);
		s = trand() % sectors;
		n = 1 + trand() % 2048;
		if (s + n > sectors)
			n = sectors - s;
		assert_int_equal(vhd_pread(v, buf, n * 512, s * 512), (ssize_t)(n * 512));
		assert_memory_equal(buf, model + s * 512, n * 512);
	}
	free(buf);
}

static void verify_all(struct vhd *v, const uint8_t *model, uint64_t size)
{
	uint8_t *buf = malloc(size);

	assert_int_equal(vhd_pread(v, buf, size, 0), (ssize_t)size);
	assert_memory_equal(buf, model, size);
	free(buf);
}

static void roundtrip(enum vhd_type t, uint64_t size, uint32_t bs)
{
	uint8_t *model = calloc(1, size);
	struct vhd *v;

	tcreate(tpath("a.vhd"), t, size, bs, NULL);
	v = open_rw(tpath("a.vhd"));
	assert_int_equal(vhd_size(v), size);
	verify_all(v, model, size);
	exercise(v, model, size, 300);
	verify_all(v, model, size);
	assert_int_equal(vhd_close(v), 0);
	v = open_rw(tpath("a.vhd"));
	verify_all(v, model, size);
	exercise(v, model, size, 100);
	assert_int_equal(vhd_close(v), 0);
	v = open_rw(tpath("a.vhd"));
	verify_all(v, model, size);
	vhd_close(v);
	free(model);
}

static void test_fixed(void **s) { roundtrip(VHD_TYPE_FIXED, 3 << 20, 0); }
static void test_dynamic(void **s) { roundtrip(VHD_TYPE_DYNAMIC, 9 << 20, 0); }
static void test_dynamic_small_blocks(void **s) { roundtrip(VHD_TYPE_DYNAMIC, 1 << 20, 4096); }
static void test_dynamic_sector_blocks(void **s) { roundtrip(VHD_TYPE_DYNAMIC, 256 << 10, 512); }
static void test_dynamic_odd_size(void **s) { roundtrip(VHD_TYPE_DYNAMIC, (5 << 20) + 3 * 512, 1 << 20); }

/* A chain three deep whose children hold scattered sectors: every read
 * mixes layers. */
static void test_chain(void **s)
{
	const uint64_t size = 6 << 20;
	uint8_t *model = calloc(1, size);
	struct vhd *v;

	tcreate(tpath("base.vhd"), VHD_TYPE_DYNAMIC, size, 1 << 20, NULL);
	v = open_rw(tpath("base.vhd"));
	exercise(v, model, size, 200);
	vhd_close(v);
	tcreate(tpath("mid.vhd"), VHD_TYPE_DIFF, 0, 0, tpath("base.vhd"));
	v = open_rw(tpath("mid.vhd"));
	assert_non_null(vhd_parent(v));
	assert_int_equal(vhd_size(v), size);
	verify_all(v, model, size);
	exercise(v, model, size, 200);
	vhd_close(v);
	tcreate(tpath("top.vhd"), VHD_TYPE_DIFF, 0, 0, tpath("mid.vhd"));
	v = open_rw(tpath("top.vhd"));
	verify_all(v, model, size);
	exercise(v, model, size, 200);
	vhd_close(v);
	v = open_rw(tpath("top.vhd"));
	verify_all(v, model, size);
	texpect_extents(v, model, size);
	vhd_close(v);
	free(model);
}

/* A differencing disk's unwritten sectors come from the parent even
 * inside an allocated block. */
static void test_partial_bitmap(void **s)
{
	uint8_t buf[4096], pat[512];
	struct vhd *v;

	tcreate(tpath("p.vhd"), VHD_TYPE_DYNAMIC, 4 << 20, 0, NULL);
	v = open_rw(tpath("p.vhd"));
	memset(buf, 'P', sizeof(buf));
	assert_int_equal(vhd_pwrite(v, buf, 4096, 0), 4096);
	vhd_close(v);
	tcreate(tpath("c.vhd"), VHD_TYPE_DIFF, 0, 0, tpath("p.vhd"));
	v = open_rw(tpath("c.vhd"));
	memset(pat, 'C', sizeof(pat));
	assert_int_equal(vhd_pwrite(v, pat, 512, 1024), 512);
	assert_int_equal(vhd_close(v), 0);
	v = open_rw(tpath("c.vhd"));
	assert_int_equal(vhd_pread(v, buf, 4096, 0), 4096);
	for (int i = 0; i < 4096; i++)
		assert_int_equal(buf[i], i >= 1024 && i < 1536 ? 'C' : 'P');
	assert_int_equal(v->bat[0] != VHD_BAT_UNUSED, 1);
	assert_false(vhd_block_full(v, 0));
	/* The on-disk bitmap has exactly bit 2 set (MSB first). */
	uint8_t bm[512];

	assert_int_equal(vhd_read_exact(v->file, bm, 512, vhd_block_off(v, 0)), 0);
	assert_int_equal(bm[0], 0x20);
	assert_true(vhd_is_zero(bm + 1, 511));
	vhd_close(v);
}

static void test_bad_ranges(void **s)
{
	uint8_t buf[1024] = { 0 };
	struct vhd_open_opts ro = { 0 };
	struct vhd_error err = { 0 };
	struct vhd *v;

	tcreate(tpath("r.vhd"), VHD_TYPE_DYNAMIC, 1 << 20, 0, NULL);
	v = open_rw(tpath("r.vhd"));
	assert_int_equal(vhd_pread(v, buf, 512, 1 << 20), -ERANGE);
	assert_int_equal(vhd_pread(v, buf, 1024, (1 << 20) - 512), -ERANGE);
	assert_int_equal(vhd_pwrite(v, buf, 100, 0), -EINVAL);
	assert_int_equal(vhd_pwrite(v, buf, 512, 3), -EINVAL);
	assert_int_equal(vhd_pread(v, buf, 512, UINT64_MAX - 511), -ERANGE);
	vhd_close(v);
	assert_int_equal(vhd_open(tpath("r.vhd"), &ro, &v, &err), 0);
	assert_int_equal(vhd_pwrite(v, buf, 512, 0), -EROFS);
	vhd_close(v);
}

/* Zeros written into a dynamic disk allocate nothing. */
static void test_zero_writes_stay_sparse(void **s)
{
	static uint8_t zero[1 << 20];
	struct vhd_info in;
	struct vhd *v;

	tcreate(tpath("z.vhd"), VHD_TYPE_DYNAMIC, 8 << 20, 0, NULL);
	v = open_rw(tpath("z.vhd"));
	assert_int_equal(vhd_pwrite(v, zero, sizeof(zero), 0), sizeof(zero));
	assert_int_equal(vhd_pwrite_zeroes(v, 0, 8 << 20, true), 0);
	vhd_get_info(v, &in);
	assert_int_equal(in.allocated_blocks, 0);
	vhd_close(v);
}

/* One writer or many readers; the refusal names the holder. */
static void test_locking(void **s)
{
	struct vhd_open_opts rw = { .flags = VHD_OPEN_RDWR }, ro = { 0 };
	struct vhd_error err = { 0 };
	struct vhd *a, *b, *c;

	tcreate(tpath("l.vhd"), VHD_TYPE_DYNAMIC, 1 << 20, 0, NULL);
	assert_int_equal(vhd_open(tpath("l.vhd"), &rw, &a, &err), 0);
	assert_int_equal(vhd_open(tpath("l.vhd"), &rw, &b, &err), -EBUSY);
	assert_non_null(strstr(err.msg, "l.vhd: in use by pid "));
	char want[64];

	snprintf(want, sizeof(want), "pid %d (", (int)getpid());
	assert_non_null(strstr(err.msg, want));
	memset(&err, 0, sizeof(err));
	assert_int_equal(vhd_open(tpath("l.vhd"), &ro, &b, &err), -EBUSY);
	vhd_close(a);
	memset(&err, 0, sizeof(err));
	assert_int_equal(vhd_open(tpath("l.vhd"), &ro, &b, &err), 0);
	assert_int_equal(vhd_open(tpath("l.vhd"), &ro, &c, &err), 0);
	assert_int_equal(vhd_open(tpath("l.vhd"), &rw, &a, &err), -EBUSY);
	vhd_close(b);
	vhd_close(c);
}

static void expect_create_error(struct vhd_create_opts *o, int code,
				const char *msg)
{
	struct vhd_error err = { 0 };
	char want[512];

	/* msg names the file as "%s" at its start. */
	snprintf(want, sizeof(want), "%s%s", tpath("e.vhd"), msg + 2);
	unlink(tpath("e.vhd"));
	assert_int_equal(vhd_create(tpath("e.vhd"), o, &err), code);
	assert_string_equal(err.msg, want);
	assert_int_equal(access(tpath("e.vhd"), F_OK), -1);
}

static void test_create_errors(void **s)
{
	struct vhd_create_opts o = { .type = VHD_TYPE_DYNAMIC, .size = 2041ull << 30 };
	struct vhd_error err = { 0 };

	expect_create_error(&o, -EFBIG,
			    "%s: size 2191507062784 exceeds the VHD limit of 2040 GiB");
	o.size = 0;
	expect_create_error(&o, -EINVAL, "%s: size must be above zero");
	o.size = 1 << 20;
	o.block_size = 3000;
	expect_create_error(&o, -EINVAL,
			    "%s: block size 3000 is not a power of two from 512 bytes to 256 MiB");
	o.block_size = 0;
	o.azure = true;
	expect_create_error(&o, -EINVAL,
			    "%s: Azure accepts only fixed VHDs (use --type fixed)");
	o.azure = false;
	o.type = VHD_TYPE_DIFF;
	expect_create_error(&o, -EINVAL, "%s: a differencing disk needs a parent");
	o.parent = "/nonexistent/p.vhd";
	memset(&err, 0, sizeof(err));
	unlink(tpath("e.vhd"));
	assert_int_equal(vhd_create(tpath("e.vhd"), &o, &err), -ENOENT);
	assert_string_equal(err.msg, "/nonexistent/p.vhd: No such file or directory");
	(void)s;
}

/* Azure: a fixed disk rounded up to a whole MiB. */
static void test_create_azure(void **s)
{
	struct vhd_create_opts o = { .type = VHD_TYPE_FIXED, .size = (1 << 20) + 512,
				     .azure = true };
	struct vhd_error err = { 0 };
	struct vhd *v;

	unlink(tpath("az.vhd"));
	assert_int_equal(vhd_create(tpath("az.vhd"), &o, &err), 0);
	v = open_rw(tpath("az.vhd"));
	assert_int_equal(vhd_size(v), 2 << 20);
	vhd_close(v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fixed),
		cmocka_unit_test(test_dynamic),
		cmocka_unit_test(test_dynamic_small_blocks),
		cmocka_unit_test(test_dynamic_sector_blocks),
		cmocka_unit_test(test_dynamic_odd_size),
		cmocka_unit_test(test_chain),
		cmocka_unit_test(test_partial_bitmap),
		cmocka_unit_test(test_bad_ranges),
		cmocka_unit_test(test_zero_writes_stay_sparse),
		cmocka_unit_test(test_locking),
		cmocka_unit_test(test_create_errors),
		cmocka_unit_test(test_create_azure),
	};
	return TRUN(tests);
}
