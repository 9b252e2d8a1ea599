// SPDX-License-Identifier: GPL-2.0-or-later
/* vhd_check: each problem it finds, the exact line it reports, what
 * repair does to the file, and the result. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "memfile.h"
#include "util.h"

/* What one check reported. */
struct result {
	int ret;
	struct vhd_check_report rep;
	struct vhd_error err;
	char lines[16][1024];
	bool repaired[16];
	unsigned nr;
	char warnings[4][1024];
	unsigned nr_warnings;
};

static void on_problem(void *opaque, const char *msg, bool repaired)
{
	struct result *r = opaque;

	assert_true(r->nr < 16);
	snprintf(r->lines[r->nr], sizeof(r->lines[0]), "%s", msg);
	r->repaired[r->nr++] = repaired;
}

static void on_warning(void *opaque, const char *msg)
{
	struct result *r = opaque;

	assert_true(r->nr_warnings < 4);
	snprintf(r->warnings[r->nr_warnings++], sizeof(r->warnings[0]), "%s", msg);
}

static struct result *check(const char *p, unsigned flags, bool repair)
{
	static struct result r;
	struct vhd_open_opts o = { .flags = flags, .warn = on_warning,
				   .warn_opaque = &r };

	memset(&r, 0, sizeof(r));
	r.rep.problem = on_problem;
	r.rep.opaque = &r;
	r.ret = vhd_check(p, &o, repair, &r.rep, &r.err);
	return &r;
}

static void expect_clean(const char *p)
{
	struct result *r = check(p, 0, false);

	if (r->ret < 0)
		fail_msg("%s", r->err.msg);
	if (r->nr)
		fail_msg("%s", r->lines[0]);
	assert_int_equal(r->rep.result, VHD_CHECK_CLEAN);
	assert_int_equal(r->rep.nr_problems, 0);
	assert_int_equal(r->rep.leaked_bytes, 0);
}

static void create(const char *p, enum vhd_type t, uint64_t size, uint32_t bs,
		   const char *parent)
{
	struct vhd_create_opts o = { .type = t, .size = size, .block_size = bs,
				     .parent = parent };
	struct vhd_error err = { 0 };

	unlink(p);
	if (vhd_create(p, &o, &err) < 0)
		fail_msg("%s", err.msg);
}

/* Writes a pattern into the given blocks of a disk. */
static void fill_blocks(const char *p, const uint32_t *blocks, int n)
{
	struct vhd_open_opts o = { .flags = VHD_OPEN_RDWR };
	struct vhd_error err = { 0 };
	struct vhd *v;
	uint8_t buf[4096];

	if (vhd_open(p, &o, &v, &err) < 0)
		fail_msg("%s", err.msg);
	for (int i = 0; i < n; i++) {
		memset(buf, 'a' + blocks[i] % 26, sizeof(buf));
		assert_int_equal(vhd_pwrite(v, buf, sizeof(buf),
					    (uint64_t)blocks[i] * v->block_size),
				 sizeof(buf));
	}
	assert_int_equal(vhd_close(v), 0);
}

static uint64_t file_size(const char *p)
{
	struct stat st;

	assert_int_equal(stat(p, &st), 0);
	return (uint64_t)st.st_size;
}

static void raw_read(const char *p, void *buf, size_t len, uint64_t off)
{
	int fd = open(p, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, buf, len, (off_t)off), (ssize_t)len);
	close(fd);
}

static void raw_write(const char *p, const void *buf, size_t len, uint64_t off)
{
	int fd = open(p, O_WRONLY);

	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, buf, len, (off_t)off), (ssize_t)len);
	close(fd);
}

static void set_bat(const char *p, uint64_t table, uint32_t i, uint32_t sector)
{
	uint32_t be = htobe32(sector);

	raw_write(p, &be, 4, table + 4ull * i);
}

static uint32_t get_bat(const char *p, uint64_t table, uint32_t i)
{
	uint32_t be;

	raw_read(p, &be, 4, table + 4ull * i);
	return be32toh(be);
}

static uint32_t be32_at(const char *p, uint64_t off)
{
	return get_bat(p, off, 0);
}

static void flip_byte(const char *p, uint64_t off)
{
	uint8_t b;

	raw_read(p, &b, 1, off);
	b ^= 0xff;
	raw_write(p, &b, 1, off);
}

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...)
{
	static char buf[4][1024];
	static int i;
	va_list ap;

	i = (i + 1) % 4;
	va_start(ap, f);
	vsnprintf(buf[i], sizeof(buf[i]), f, ap);
	va_end(ap);
	return buf[i];
}

/* 4 MiB, 64 KiB blocks: copy 0, header 512, BAT 1536 (64 entries), and
 * blocks from 3584 (data 4 KiB-aligned), each 512 + 65536 bytes. */
#define TABLE	1536
#define BLOCK0	3584ull
#define BLOCK1	73216ull
#define BLOCK_BYTES	(512 + 65536ull)

static void make_two_blocks(const char *p)
{
	static const uint32_t b[] = { 0, 1 };

	create(p, VHD_TYPE_DYNAMIC, 4 << 20, 64 << 10, NULL);
	fill_blocks(p, b, 2);
	assert_int_equal(get_bat(p, TABLE, 0), BLOCK0 / 512);
	assert_int_equal(get_bat(p, TABLE, 1), BLOCK1 / 512);
	assert_int_equal(file_size(p), BLOCK1 + BLOCK_BYTES + 512);
	expect_clean(p);
}

static void test_clean(void **s)
{
	create(tpath("d.vhd"), VHD_TYPE_DYNAMIC, 64 << 20, 0, NULL);
	expect_clean(tpath("d.vhd"));
	create(tpath("f.vhd"), VHD_TYPE_FIXED, 1 << 20, 0, NULL);
	expect_clean(tpath("f.vhd"));
	create(tpath("c.vhd"), VHD_TYPE_DIFF, 0, 0, tpath("d.vhd"));
	expect_clean(tpath("c.vhd"));
	make_two_blocks(tpath("t.vhd"));
}

/* A damaged footer checksum: the footer is rewritten from the copy, to
 * the very bytes it had. */
static void test_footer_checksum(void **s)
{
	const char *p = tpath("t.vhd");
	uint64_t end = BLOCK1 + BLOCK_BYTES;
	uint8_t before[512], after[512];
	uint32_t sum;
	struct result *r;

	make_two_blocks(p);
	raw_read(p, before, 512, end);
	sum = be32_at(p, end + 64);
	flip_byte(p, end + 64);
	r = check(p, 0, false);
	assert_int_equal(r->ret, 0);
	assert_int_equal(r->nr, 1);
	assert_string_equal(r->lines[0],
		fmt("%s: the footer at the end is damaged (checksum 0x%08x, computed 0x%08x); using the copy at offset 0",
		    p, sum ^ 0xff000000u, sum));
	assert_false(r->repaired[0]);
	assert_int_equal(r->rep.result, VHD_CHECK_CORRUPT);
	r = check(p, 0, true);
	assert_int_equal(r->nr, 1);
	assert_string_equal(r->lines[0],
		fmt("%s: the footer at the end is damaged (checksum 0x%08x, computed 0x%08x); using the copy at offset 0; repaired: footer written at offset %llu, file now %llu bytes",
		    p, sum ^ 0xff000000u, sum, (unsigned long long)end,
		    (unsigned long long)end + 512));
	assert_true(r->repaired[0]);
	assert_int_equal(r->rep.result, VHD_CHECK_REPAIRED);
	assert_int_equal(r->rep.nr_problems, 1);
	assert_int_equal(r->rep.nr_repaired, 1);
	raw_read(p, after, 512, end);
	assert_memory_equal(before, after, 512);
	expect_clean(p);
}

static void test_footer_copy(void **s)
{
	const char *p = tpath("t.vhd");
	uint8_t end[512], copy[512];
	uint32_t sum;
	struct result *r;

	make_two_blocks(p);
	sum = be32_at(p, 64);
	flip_byte(p, 100);	/* reserved, zero: the byte sum grows by 0xff */
	r = check(p, 0, true);
	assert_int_equal(r->nr, 1);
	assert_string_equal(r->lines[0],
		fmt("%s: the footer copy at offset 0 is damaged (checksum 0x%08x, computed 0x%08x); repaired: copy rewritten from the footer",
		    p, sum, sum - 0xffu));
	assert_int_equal(r->rep.result, VHD_CHECK_REPAIRED);
	raw_read(p, copy, 512, 0);
	raw_read(p, end, 512, file_size(p) - 512);
	assert_memory_equal(copy, end, 512);
	expect_clean(p);
}

/* Cut in the middle of the last block: its missing part reads as zeros
 * once the footer is written after it again. */
static void test_truncated_mid_block(void **s)
{
	const char *p = tpath("t.vhd");
	uint64_t end = BLOCK1 + BLOCK_BYTES, cut = BLOCK1 + 512 + 1024;
	uint8_t buf[4096];
	struct vhd *v;
	struct result *r;

	make_two_blocks(p);
	assert_int_equal(truncate(p, (off_t)cut), 0);
	r = check(p, 0, true);
	assert_int_equal(r->ret, 0);
	assert_int_equal(r->nr, 2);
	assert_string_equal(r->lines[0],
		fmt("%s: the footer at the end is missing; using the copy at offset 0; repaired: footer written at offset %llu, file now %llu bytes",
		    p, (unsigned long long)end, (unsigned long long)end + 512));
	assert_string_equal(r->lines[1],
		fmt("%s: BAT entry 1 (block at offset %llu to %llu) extends past the end of the file (%llu bytes); repaired: footer written at offset %llu, file now %llu bytes",
		    p, BLOCK1, (unsigned long long)end, (unsigned long long)cut,
		    (unsigned long long)end, (unsigned long long)end + 512));
	assert_int_equal(r->rep.result, VHD_CHECK_REPAIRED);
	assert_int_equal(r->rep.nr_repaired, 2);
	assert_int_equal(file_size(p), end + 512);
	expect_clean(p);
	assert_int_equal(vhd_open(p, NULL, &v, &r->err), 0);
	assert_int_equal(vhd_pread(v, buf, sizeof(buf), 64 << 10), sizeof(buf));
	for (int i = 0; i < 4096; i++)
		assert_int_equal(buf[i], i < 1024 ? 'b' : 0);
	vhd_close(v);
}

static void test_bat_past_eof(void **s)
{
	const char *p = tpath("t.vhd");
	uint64_t size;
	struct result *r;

	make_two_blocks(p);
	size = file_size(p);
	set_bat(p, TABLE, 7, (uint32_t)(size / 512 + 100));
	r = check(p, 0, false);
	assert_int_equal(r->nr, 1);
	assert_string_equal(r->lines[0],
		fmt("%s: BAT entry 7 points past the end of the file (offset %llu, file %llu bytes)",
		    p, (unsigned long long)size + 51200, (unsigned long long)size));
	assert_int_equal(r->rep.result, VHD_CHECK_CORRUPT);
	r = check(p, 0, true);
	assert_string_equal(r->lines[0],
		fmt("%s: BAT entry 7 points past the end of the file (offset %llu, file %llu bytes); repaired: entry dropped, the block is unallocated",
		    p, (unsigned long long)size + 51200, (unsigned long long)size));
	assert_int_equal(r->rep.result, VHD_CHECK_REPAIRED);
	assert_int_equal(get_bat(p, TABLE, 7), VHD_BAT_UNUSED);
	assert_int_equal(get_bat(p, TABLE, 1), BLOCK1 / 512);
	assert_int_equal(file_size(p), size);
	expect_clean(p);
}

/* Past ten lines of a kind, one line counts the rest. */
static void test_many_bad_entries(void **s)
{
	const char *p = tpath("t.vhd");
	uint64_t size;
	struct result *r;

	make_two_blocks(p);
	size = file_size(p);
	for (uint32_t i = 10; i < 40; i++)
		set_bat(p, TABLE, i, 0x7fffff00u + i);
	r = check(p, 0, true);
	assert_int_equal(r->nr, 11);
	assert_string_equal(r->lines[10],
		fmt("%s: 20 more BAT entries point past the end of the file; repaired", p));
	assert_int_equal(r->rep.nr_problems, 30);
	assert_int_equal(r->rep.nr_repaired, 30);
	assert_int_equal(r->rep.result, VHD_CHECK_REPAIRED);
	assert_int_equal(file_size(p), size);
	expect_clean(p);
}

static void test_overlapping_blocks(void **s)
{
	const char *p = tpath("t.vhd");
	struct result *r;

	make_two_blocks(p);
	set_bat(p, TABLE, 3, (uint32_t)(BLOCK0 / 512));
	set_bat(p, TABLE, 4, 1);
	r = check(p, 0, true);
	assert_int_equal(r->ret, 0);
	assert_int_equal(r->nr, 3);
	assert_string_equal(r->lines[0],
		fmt("%s: BAT entry 4 (offset 512) overlaps the dynamic header", p));
	assert_string_equal(r->lines[1],
		fmt("%s: BAT entries 4 and 0 overlap (blocks at offsets 512 and %llu)",
		    p, BLOCK0));
	assert_string_equal(r->lines[2],
		fmt("%s: BAT entries 0 and 3 overlap (blocks at offsets %llu and %llu)",
		    p, BLOCK0, BLOCK0));
	assert_false(r->repaired[0] || r->repaired[1] || r->repaired[2]);
	assert_int_equal(r->rep.result, VHD_CHECK_CORRUPT);
	assert_int_equal(r->rep.nr_problems, 3);
	assert_int_equal(r->rep.nr_repaired, 0);
	/* Nothing was changed. */
	assert_int_equal(get_bat(p, TABLE, 3), BLOCK0 / 512);
	assert_int_equal(get_bat(p, TABLE, 4), 1);
}

static void test_leaked_tail(void **s)
{
	const char *p = tpath("t.vhd");
	uint64_t end = BLOCK1 + BLOCK_BYTES;
	uint8_t footer[512], junk[12288];
	struct result *r;

	make_two_blocks(p);
	raw_read(p, footer, 512, end);
	memset(junk, 'j', sizeof(junk));
	raw_write(p, junk, sizeof(junk), end);
	raw_write(p, footer, 512, end + sizeof(junk));
	r = check(p, 0, false);
	assert_int_equal(r->rep.leaked_bytes, sizeof(junk));
	assert_int_equal(r->rep.result, VHD_CHECK_CORRUPT);
	r = check(p, 0, true);
	assert_int_equal(r->nr, 1);
	assert_string_equal(r->lines[0],
		fmt("%s: 12288 bytes leaked after the last structure in use (offset %llu to %llu); repaired: footer written at offset %llu, file now %llu bytes",
		    p, (unsigned long long)end, (unsigned long long)end + 12288,
		    (unsigned long long)end, (unsigned long long)end + 512));
	assert_int_equal(r->rep.result, VHD_CHECK_REPAIRED);
	assert_int_equal(r->rep.leaked_bytes, 12288);
	assert_int_equal(file_size(p), end + 512);
	expect_clean(p);
}

static void test_header_checksum(void **s)
{
	const char *p = tpath("t.vhd");
	uint32_t sum;
	struct result *r;

	make_two_blocks(p);
	sum = be32_at(p, 512 + 36);
	flip_byte(p, 512 + 36 + 3);
	r = check(p, 0, true);
	assert_int_equal(r->nr, 1);
	assert_string_equal(r->lines[0],
		fmt("%s: dynamic header checksum mismatch (stored 0x%08x, computed 0x%08x); repaired: checksum recomputed",
		    p, sum ^ 0xffu, sum));
	assert_int_equal(r->rep.result, VHD_CHECK_REPAIRED);
	assert_int_equal(be32_at(p, 512 + 36), sum);
	expect_clean(p);

	/* With a field that does not validate, the checksum stays wrong.
	 * 3000 is 0x0bb8 where 65536 was 0x010000. */
	uint32_t bs = htobe32(3000);

	raw_write(p, &bs, 4, 512 + 32);
	r = check(p, 0, true);
	assert_int_equal(r->nr, 2);
	assert_string_equal(r->lines[0],
		fmt("%s: dynamic header checksum mismatch (stored 0x%08x, computed 0x%08x)",
		    p, sum, sum - (0x0b + 0xb8 - 0x01)));
	assert_string_equal(r->lines[1],
		fmt("%s: block size 3000 is not a power of two between 512 bytes and 1 GiB", p));
	assert_int_equal(r->rep.result, VHD_CHECK_CORRUPT);
	assert_int_equal(be32_at(p, 512 + 36), sum);

	/* Read anyway, as asked: a warning, not a problem. */
	bs = htobe32(64 << 10);
	raw_write(p, &bs, 4, 512 + 32);
	flip_byte(p, 512 + 36 + 3);
	r = check(p, VHD_OPEN_IGNORE_CHECKSUMS, true);
	assert_int_equal(r->nr, 0);
	assert_int_equal(r->nr_warnings, 1);
	assert_string_equal(r->warnings[0],
		fmt("%s: dynamic header checksum is wrong (stored 0x%08x, computed 0x%08x); checked anyway as asked",
		    p, sum ^ 0xffu, sum));
	assert_int_equal(r->rep.result, VHD_CHECK_CLEAN);
}

/* A fixed disk has no copy: a footer whose only fault is its checksum
 * gets the checksum recomputed. */
static void test_fixed_footer_checksum(void **s)
{
	const char *p = tpath("f.vhd");
	uint32_t sum;
	struct result *r;

	create(p, VHD_TYPE_FIXED, 1 << 20, 0, NULL);
	sum = be32_at(p, (1 << 20) + 64);
	flip_byte(p, (1 << 20) + 64 + 3);
	r = check(p, 0, true);
	assert_int_equal(r->nr, 1);
	assert_string_equal(r->lines[0],
		fmt("%s: footer checksum mismatch (stored 0x%08x, computed 0x%08x) and no good copy; repaired: checksum recomputed",
		    p, sum ^ 0xffu, sum));
	assert_int_equal(r->rep.result, VHD_CHECK_REPAIRED);
	assert_int_equal(be32_at(p, (1 << 20) + 64), sum);
	assert_int_equal(file_size(p), (1 << 20) + 512);
	expect_clean(p);
}

static void test_not_a_vhd(void **s)
{
	const char *p = tpath("x.raw");
	char junk[4096];
	struct result *r;

	memset(junk, 'x', sizeof(junk));
	unlink(p);
	close(open(p, O_CREAT | O_WRONLY, 0644));
	raw_write(p, junk, sizeof(junk), 0);
	r = check(p, 0, true);
	assert_int_equal(r->ret, -EINVAL);
	assert_string_equal(r->err.msg,
		fmt("%s: not a VHD file (no \"conectix\" footer at its end or start)", p));
	assert_int_equal(file_size(p), 4096);
	assert_int_equal(truncate(p, 100), 0);
	r = check(p, 0, false);
	assert_int_equal(r->ret, -EINVAL);
	assert_string_equal(r->err.msg,
		fmt("%s: not a VHD file (100 bytes is too short for a footer)", p));
}

/* A parent replaced by another disk: the unique id no longer matches. */
static void test_parent_link(void **s)
{
	static const uint8_t id1[16] = { 1, 2, 3 }, id2[16] = { 9, 9, 9 };
	struct vhd_create_opts po = { .type = VHD_TYPE_DYNAMIC, .size = 1 << 20,
				      .uuid = id1, .timestamp = 1000 };
	struct vhd_error err = { 0 };
	const char *p = tpath("p.vhd"), *c = tpath("c.vhd");
	struct result *r;

	unlink(p);
	assert_int_equal(vhd_create(p, &po, &err), 0);
	create(c, VHD_TYPE_DIFF, 0, 0, p);
	expect_clean(c);

	/* Same disk, written to later: a warning only. */
	unlink(p);
	po.timestamp = 2000;
	assert_int_equal(vhd_create(p, &po, &err), 0);
	r = check(c, 0, false);
	assert_int_equal(r->nr, 0);
	assert_int_equal(r->rep.result, VHD_CHECK_CLEAN);
	assert_int_equal(r->nr_warnings, 1);
	assert_string_equal(r->warnings[0],
		fmt("%s: parent %s was modified after this disk was made (time stamp 2000, expected 1000)",
		    c, p));

	unlink(p);
	po.uuid = id2;
	po.timestamp = 1000;
	assert_int_equal(vhd_create(p, &po, &err), 0);
	r = check(c, 0, true);
	assert_int_equal(r->nr, 1);
	assert_string_equal(r->lines[0],
		fmt("%s: parent %s has unique id 09090900-0000-0000-0000-000000000000 but the child expects 01020300-0000-0000-0000-000000000000",
		    c, p));
	assert_int_equal(r->rep.result, VHD_CHECK_CORRUPT);
	r = check(c, VHD_OPEN_IGNORE_PARENT_ID, false);
	assert_int_equal(r->nr, 0);
	assert_int_equal(r->rep.result, VHD_CHECK_CLEAN);

	unlink(p);
	r = check(c, 0, false);
	assert_int_equal(r->nr, 1);
	assert_non_null(strstr(r->lines[0], ": parent '"));
	assert_non_null(strstr(r->lines[0], "' not found (tried "));
	assert_int_equal(r->rep.result, VHD_CHECK_CORRUPT);
}

/* vhd_check_file leaves the file to its caller, in memory here. */
static void test_check_file_in_memory(void **s)
{
	struct vhd_create_opts o = { .type = VHD_TYPE_DYNAMIC, .size = 4 << 20 };
	struct memfile *m = memfile_new(NULL, 0);
	struct vhd_check_report rep = { 0 };
	struct vhd_error err = { 0 };
	uint64_t size;

	assert_int_equal(vhd_create_file(&m->base, "m.vhd", &o, &err), 0);
	size = m->size;
	memfile_write(m, (uint8_t[4096]){ 0 }, 4096, size - 512);
	assert_int_equal(vhd_check_file(&m->base, "m.vhd", NULL, true, &rep, &err), 0);
	assert_int_equal(rep.result, VHD_CHECK_REPAIRED);
	assert_int_equal(m->size, size);
	assert_int_equal(vhd_check_file(&m->base, "m.vhd", NULL, false, &rep, &err), 0);
	assert_int_equal(rep.result, VHD_CHECK_CLEAN);
	memfile_free(m);
}

/* Random damage to the structures of a differencing disk (its header,
 * BAT, locators, footers and tail): check never fails to finish, and a
 * disk it calls repaired checks clean afterwards and opens. */
static void test_random_damage(void **s)
{
	struct vhd_create_opts o = { .type = VHD_TYPE_DIFF, .block_size = 4096,
				     .parent = tpath("rp.vhd") };
	struct vhd_open_opts ro = { .flags = VHD_OPEN_RDWR | VHD_OPEN_NO_LOCK };
	struct memfile *good = memfile_new(NULL, 0), *m = memfile_new(NULL, 0);
	struct vhd_error err = { 0 };
	uint64_t rng = 88172645463325252ull, meta_end;
	unsigned counts[3] = { 0 };
	uint8_t buf[4096];
	struct vhd *v;

	create(tpath("rp.vhd"), VHD_TYPE_DYNAMIC, 1 << 20, 0, NULL);
	assert_int_equal(vhd_create_file(&good->base, tpath("r.vhd"), &o, &err), 0);
	meta_end = good->size - 512;
	assert_int_equal(vhd_open_file(&good->base, tpath("r.vhd"), &ro, &v, &err), 0);
	memset(buf, 'd', sizeof(buf));
	for (int i = 0; i < 40; i += 3)
		assert_int_equal(vhd_pwrite(v, buf, 4096, (uint64_t)i * 4096), 4096);
	assert_int_equal(vhd_close(v), 0);
	for (int i = 0; i < 3000; i++) {
		struct vhd_check_report rep = { 0 };
		struct vhd_open_opts co = { .flags = VHD_OPEN_NO_LOCK };
		int flips = 1 + (int)(rng % 4), r;

		memfile_reset(m, good->data, good->size);
		for (int k = 0; k < flips; k++) {
			uint64_t off;

			rng ^= rng << 13;
			rng ^= rng >> 7;
			rng ^= rng << 17;
			/* Mostly metadata; now and then the end of the file. */
			off = rng % 8 ? (rng >> 8) % meta_end
				      : m->size - 1 - (rng >> 8) % 1024;
			m->data[off] ^= (uint8_t)(1u << (rng >> 40) % 8);
			if (rng % 16 == 0)
				m->size -= (rng >> 20) % 70000 % m->size;
		}
		r = vhd_check_file(&m->base, tpath("r.vhd"), &co, true, &rep, &err);
		counts[r < 0 ? 0 : rep.result == VHD_CHECK_CORRUPT ? 1 : 2]++;
		if (r < 0 || rep.result == VHD_CHECK_CORRUPT)
			continue;
		assert_int_equal(vhd_check_file(&m->base, tpath("r.vhd"), &co, false,
						&rep, &err), 0);
		assert_int_equal(rep.result, VHD_CHECK_CLEAN);
		if (vhd_open_file(&m->base, tpath("r.vhd"), &co, &v, &err) < 0)
			fail_msg("%s", err.msg);
		vhd_close(v);
	}
	print_message("random damage: %u errors, %u corrupt, %u clean or repaired\n",
		      counts[0], counts[1], counts[2]);
	/* Each outcome happens. */
	assert_true(counts[0] && counts[1] && counts[2]);
	memfile_free(good);
	memfile_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_clean),
		cmocka_unit_test(test_footer_checksum),
		cmocka_unit_test(test_footer_copy),
		cmocka_unit_test(test_truncated_mid_block),
		cmocka_unit_test(test_bat_past_eof),
		cmocka_unit_test(test_many_bad_entries),
		cmocka_unit_test(test_overlapping_blocks),
		cmocka_unit_test(test_leaked_tail),
		cmocka_unit_test(test_header_checksum),
		cmocka_unit_test(test_fixed_footer_checksum),
		cmocka_unit_test(test_not_a_vhd),
		cmocka_unit_test(test_parent_link),
		cmocka_unit_test(test_check_file_in_memory),
		cmocka_unit_test(test_random_damage),
	};

	return TRUN(tests);
}
