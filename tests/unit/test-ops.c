// SPDX-License-Identifier: GPL-2.0-or-later
/* The whole-disk operations: convert, commit, rebase, compact, resize and
 * live snapshot, each checked against an in-memory model of the contents. */
#include <fcntl.h>
#include <sys/stat.h>

#include "util.h"

static void put(const char *p, const uint8_t *data, size_t len, uint64_t off)
{
	struct vhd *v = topen(p, VHD_OPEN_RDWR);

	assert_int_equal(vhd_pwrite(v, data, len, off), (ssize_t)len);
	assert_int_equal(vhd_close(v), 0);
}

static void expect_contents(const char *p, const uint8_t *model, uint64_t size)
{
	struct vhd *v = topen(p, 0);
	uint8_t *buf = malloc(size);

	assert_int_equal(vhd_size(v), size);
	assert_int_equal(vhd_pread(v, buf, size, 0), (ssize_t)size);
	assert_memory_equal(buf, model, size);
	free(buf);
	vhd_close(v);
}

static uint32_t allocated(const char *p)
{
	struct vhd *v = topen(p, VHD_OPEN_NO_PARENT);
	struct vhd_info in;

	vhd_get_info(v, &in);
	vhd_close(v);
	return in.allocated_blocks;
}

static void read_raw(const char *p, uint8_t *buf, uint64_t size)
{
	int fd = open(p, O_RDONLY);
	struct stat st;

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_size, size);
	assert_int_equal(pread(fd, buf, size, 0), (ssize_t)size);
	close(fd);
}

/* raw -> dynamic -> raw: holes stay holes, zero data allocates nothing. */
static void test_convert_roundtrip(void **s)
{
	const uint64_t size = 12 << 20;
	uint8_t *model = calloc(1, size), *back = malloc(size);
	struct vhd_convert_opts dyn = { .to = VHD_CONVERT_DYNAMIC };
	struct vhd_convert_opts raw = { .to = VHD_CONVERT_RAW };
	struct vhd_error err = { 0 };
	struct stat st;
	int fd;

	tfill(model + (1 << 20), 3 << 20);	/* blocks 0, 1 */
	tfill(model + (9 << 20) + 512, 512);	/* block 4 */
	fd = open(tpath("src.raw"), O_CREAT | O_WRONLY | O_TRUNC, 0644);
	assert_int_equal(pwrite(fd, model, 6 << 20, 0), 6 << 20);	/* explicit zeros too */
	assert_int_equal(pwrite(fd, model + (9 << 20), 1 << 20, 9 << 20), 1 << 20);
	assert_int_equal(ftruncate(fd, size), 0);
	close(fd);
	unlink(tpath("d.vhd"));
	assert_int_equal(vhd_convert(tpath("src.raw"), tpath("d.vhd"), &dyn, &err), 0);
	expect_contents(tpath("d.vhd"), model, size);
	assert_int_equal(allocated(tpath("d.vhd")), 3);
	unlink(tpath("back.raw"));
	assert_int_equal(vhd_convert(tpath("d.vhd"), tpath("back.raw"), &raw, &err), 0);
	read_raw(tpath("back.raw"), back, size);
	assert_memory_equal(back, model, size);
	/* Sparse: only the data's 4 KiB grains are allocated. */
	assert_int_equal(stat(tpath("back.raw"), &st), 0);
	assert_true(st.st_blocks * 512 <= (3 << 20) + 8192);
	/* The destination must not exist. */
	memset(&err, 0, sizeof(err));
	assert_int_equal(vhd_convert(tpath("src.raw"), tpath("d.vhd"), &dyn, &err), -EEXIST);
	char want[300];

	snprintf(want, sizeof(want), "%s: already exists", tpath("d.vhd"));
	assert_string_equal(err.msg, want);
	free(model);
	free(back);
}

/* An odd-sized raw image becomes a disk of whole sectors, zero-padded. */
static void test_convert_odd_size(void **s)
{
	struct vhd_convert_opts o = { .to = VHD_CONVERT_FIXED };
	struct vhd_error err = { 0 };
	uint8_t model[1536] = { 0 };
	int fd = open(tpath("odd.raw"), O_CREAT | O_WRONLY | O_TRUNC, 0644);

	tfill(model, 1000);
	assert_int_equal(write(fd, model, 1000), 1000);
	close(fd);
	unlink(tpath("odd.vhd"));
	assert_int_equal(vhd_convert(tpath("odd.raw"), tpath("odd.vhd"), &o, &err), 0);
	expect_contents(tpath("odd.vhd"), model, 1024);
}

static int cancel_at_half(void *opaque, uint64_t done, uint64_t total)
{
	int *calls = opaque;

	(*calls)++;
	return done * 2 >= total;
}

static void test_convert_cancel(void **s)
{
	struct vhd_progress pr = { .fn = cancel_at_half };
	struct vhd_convert_opts o = { .to = VHD_CONVERT_DYNAMIC, .progress = &pr };
	struct vhd_error err = { 0 };
	uint8_t *data = malloc(8 << 20);
	int calls = 0, fd;

	pr.opaque = &calls;
	tfill(data, 8 << 20);
	fd = open(tpath("c.raw"), O_CREAT | O_WRONLY | O_TRUNC, 0644);
	assert_int_equal(write(fd, data, 8 << 20), 8 << 20);
	close(fd);
	unlink(tpath("c.vhd"));
	assert_int_equal(vhd_convert(tpath("c.raw"), tpath("c.vhd"), &o, &err), -ECANCELED);
	assert_true(calls >= 2);
	assert_int_equal(access(tpath("c.vhd"), F_OK), -1);	/* nothing left */
	free(data);
}

/* A three-deep chain flattens to one dynamic disk with the same bytes. */
static void test_convert_flattens_chain(void **s)
{
	const uint64_t size = 6 << 20;
	uint8_t *model = calloc(1, size), pat[4096];
	struct vhd_convert_opts o = { .to = VHD_CONVERT_DYNAMIC, .block_size = 1 << 20 };
	struct vhd_error err = { 0 };

	tcreate(tpath("b.vhd"), VHD_TYPE_DYNAMIC, size, 0, NULL);
	tfill(model, size / 2);
	put(tpath("b.vhd"), model, size / 2, 0);
	tcreate(tpath("m.vhd"), VHD_TYPE_DIFF, 0, 0, tpath("b.vhd"));
	tfill(pat, sizeof(pat));
	memcpy(model + 5120, pat, 1024);
	put(tpath("m.vhd"), pat, 1024, 5120);
	tcreate(tpath("t.vhd"), VHD_TYPE_DIFF, 0, 0, tpath("m.vhd"));
	memcpy(model + (5 << 20), pat, 4096);
	put(tpath("t.vhd"), pat, 4096, 5 << 20);
	unlink(tpath("flat.vhd"));
	assert_int_equal(vhd_convert(tpath("t.vhd"), tpath("flat.vhd"), &o, &err), 0);
	expect_contents(tpath("flat.vhd"), model, size);
	assert_int_equal(allocated(tpath("flat.vhd")), 4);	/* 0..2, and 5 */
	free(model);
}

static void test_commit(void **s)
{
	const uint64_t size = 4 << 20;
	uint8_t *model = calloc(1, size), pat[2048];
	struct vhd_error err = { 0 };
	struct vhd *v;

	tcreate(tpath("base.vhd"), VHD_TYPE_DYNAMIC, size, 0, NULL);
	tfill(model, 8192);
	put(tpath("base.vhd"), model, 8192, 0);
	tcreate(tpath("kid.vhd"), VHD_TYPE_DIFF, 0, 0, tpath("base.vhd"));
	tfill(pat, sizeof(pat));
	memcpy(model + 1024, pat, 2048);	/* inside the parent's data */
	put(tpath("kid.vhd"), pat, 2048, 1024);
	memcpy(model + (3 << 20), pat, 512);	/* where the parent has none */
	put(tpath("kid.vhd"), pat, 512, 3 << 20);

	/* A sibling beside the parent: refused, naming it. */
	tcreate(tpath("sib.vhd"), VHD_TYPE_DIFF, 0, 0, tpath("base.vhd"));
	assert_int_equal(vhd_commit(tpath("kid.vhd"), 0, false, false, NULL, NULL, NULL, &err),
			 -EBUSY);
	char want[600];

	snprintf(want, sizeof(want),
		 "%s: %s has 1 other differencing disk (sib.vhd) that committing would invalidate; use --force",
		 tpath("kid.vhd"), tpath("./base.vhd") + 0);
	/* The parent is named as the child found it. */
	assert_non_null(strstr(err.msg, "has 1 other differencing disk (sib.vhd) that committing would invalidate; use --force"));
	unlink(tpath("sib.vhd"));

	memset(&err, 0, sizeof(err));
	assert_int_equal(vhd_commit(tpath("kid.vhd"), 0, false, false, NULL, NULL, NULL, &err), 0);
	assert_int_equal(access(tpath("kid.vhd"), F_OK), -1);
	expect_contents(tpath("base.vhd"), model, size);
	/* The parent's time stamp moved on: children made before warn. */
	v = topen(tpath("base.vhd"), 0);
	assert_true(v->footer.timestamp > 0);
	vhd_close(v);
	free(model);
}

static void test_commit_keep(void **s)
{
	uint8_t pat[512], buf[512];
	struct vhd_error err = { 0 };
	struct vhd *v;

	tcreate(tpath("kb.vhd"), VHD_TYPE_DYNAMIC, 1 << 20, 0, NULL);
	tcreate(tpath("kk.vhd"), VHD_TYPE_DIFF, 0, 0, tpath("kb.vhd"));
	tfill(pat, sizeof(pat));
	put(tpath("kk.vhd"), pat, 512, 4096);
	assert_int_equal(vhd_commit(tpath("kk.vhd"), 0, true, false, NULL, NULL, NULL, &err), 0);
	v = topen(tpath("kk.vhd"), 0);	/* still a valid child */
	assert_int_equal(vhd_pread(v, buf, 512, 4096), 512);
	assert_memory_equal(buf, pat, 512);
	assert_int_equal(v->header.parent_timestamp, v->parent->footer.timestamp);
	assert_int_equal(vhd_pread(v->parent, buf, 512, 4096), 512);
	assert_memory_equal(buf, pat, 512);
	vhd_close(v);
}

static void test_rebase(void **s)
{
	const uint64_t size = 3 << 20;
	uint8_t *old = calloc(1, size), *other = calloc(1, size), pat[1024];
	struct vhd_error err = { 0 };
	struct vhd *v, *p2;

	tcreate(tpath("r1.vhd"), VHD_TYPE_DYNAMIC, size, 0, NULL);
	tfill(old, 1 << 20);
	put(tpath("r1.vhd"), old, 1 << 20, 0);
	tcreate(tpath("r2.vhd"), VHD_TYPE_DYNAMIC, size, 0, NULL);
	memcpy(other, old, 1 << 20);
	tfill(other + 4096, 1024);		/* differs in a few sectors */
	tfill(other + (2 << 20), 512);		/* and where r1 has nothing */
	put(tpath("r2.vhd"), other, 1 << 20, 0);
	put(tpath("r2.vhd"), other + (2 << 20), 512, 2 << 20);
	tcreate(tpath("rc.vhd"), VHD_TYPE_DIFF, 0, 0, tpath("r1.vhd"));
	tfill(pat, sizeof(pat));
	memcpy(old + 100 * 512, pat, 1024);
	put(tpath("rc.vhd"), pat, 1024, 100 * 512);

	assert_int_equal(vhd_rebase(tpath("rc.vhd"), tpath("r2.vhd"), 0, NULL, &err), 0);
	expect_contents(tpath("rc.vhd"), old, size);	/* reads as before */
	v = topen(tpath("rc.vhd"), 0);
	p2 = topen(tpath("r2.vhd"), 0);
	assert_memory_equal(v->header.parent_uuid, p2->footer.uuid, 16);
	assert_string_equal(v->parent->name, tpath("r2.vhd"));
	vhd_close(p2);
	vhd_close(v);
	/* A disk cannot become its own ancestor. */
	memset(&err, 0, sizeof(err));
	tcreate(tpath("rg.vhd"), VHD_TYPE_DIFF, 0, 0, tpath("rc.vhd"));
	assert_int_equal(vhd_rebase(tpath("rc.vhd"), tpath("rg.vhd"), 0, NULL, &err), -ELOOP);
	free(old);
	free(other);
}

/* Every report at or above the last, the last done == total. */
struct rising {
	uint64_t done, total;
	unsigned calls;
	bool fell;
};

static int record_rising(void *opaque, uint64_t done, uint64_t total)
{
	struct rising *r = opaque;

	if (r->calls++ && (done < r->done || total != r->total))
		r->fell = true;
	r->done = done;
	r->total = total;
	return 0;
}

static void test_compact(void **s)
{
	const uint64_t size = 10 << 20;
	uint8_t *model = calloc(1, size), *zero = calloc(1, 2 << 20);
	struct vhd_error err = { 0 };
	struct rising rise = { 0 };
	struct vhd_progress pr = { .fn = record_rising, .opaque = &rise };
	struct stat a, b;
	uint64_t freed = 0;
	struct vhd *v;

	tcreate(tpath("cp.vhd"), VHD_TYPE_DYNAMIC, size, 0, NULL);
	tfill(model, size);
	put(tpath("cp.vhd"), model, size, 0);
	assert_int_equal(allocated(tpath("cp.vhd")), 5);
	/* Zero blocks 0 and 2 (wholly) and half of block 3. */
	v = topen(tpath("cp.vhd"), VHD_OPEN_RDWR);
	assert_int_equal(vhd_pwrite(v, zero, 2 << 20, 0), 2 << 20);
	assert_int_equal(vhd_pwrite(v, zero, 2 << 20, 4 << 20), 2 << 20);
	assert_int_equal(vhd_pwrite(v, zero, 1 << 20, 6 << 20), 1 << 20);
	vhd_close(v);
	memset(model, 0, 2 << 20);
	memset(model + (4 << 20), 0, 3 << 20);
	assert_int_equal(stat(tpath("cp.vhd"), &a), 0);
	assert_int_equal(vhd_compact(tpath("cp.vhd"), 0, &pr, &freed, &err), 0);
	assert_int_equal(stat(tpath("cp.vhd"), &b), 0);
	assert_int_equal(allocated(tpath("cp.vhd")), 3);
	/* One scale over the scan and the slide: the size, then a block for
	 * each of the 5 allocated at the start. */
	assert_false(rise.fell);
	assert_true(rise.calls > 5);
	assert_int_equal(rise.total, size + 5 * (2 << 20));
	assert_int_equal(rise.done, rise.total);
	assert_int_equal(freed, (uint64_t)(a.st_size - b.st_size));
	assert_true(freed >= 2 * (2 << 20));
	expect_contents(tpath("cp.vhd"), model, size);
	/* Writing after compaction still works and lands after the rest. */
	put(tpath("cp.vhd"), model + (8 << 20), 512, 0);
	memcpy(model, model + (8 << 20), 512);
	expect_contents(tpath("cp.vhd"), model, size);
	free(model);
	free(zero);
}

/* In a child, zeros over a parent's data must stay; empty blocks go. */
static void test_compact_child(void **s)
{
	uint8_t data[4096], zero[4096] = { 0 };
	struct vhd_error err = { 0 };

	tcreate(tpath("cb.vhd"), VHD_TYPE_DYNAMIC, 6 << 20, 0, NULL);
	tfill(data, sizeof(data));
	put(tpath("cb.vhd"), data, sizeof(data), 0);
	tcreate(tpath("cc.vhd"), VHD_TYPE_DIFF, 0, 0, tpath("cb.vhd"));
	put(tpath("cc.vhd"), zero, sizeof(zero), 0);		/* hides data */
	put(tpath("cc.vhd"), zero, sizeof(zero), 2 << 20);	/* over nothing */
	assert_int_equal(allocated(tpath("cc.vhd")), 2);
	assert_int_equal(vhd_compact(tpath("cc.vhd"), 0, NULL, NULL, &err), 0);
	assert_int_equal(allocated(tpath("cc.vhd")), 1);
	uint8_t *model = calloc(1, 6 << 20);

	expect_contents(tpath("cc.vhd"), model, 6 << 20);
	free(model);
}

static void test_resize_dynamic(void **s)
{
	uint8_t pat[512], buf[512];
	struct vhd_error err = { 0 };
	struct vhd *v;
	uint64_t table;

	/* 1 MiB with 2 MiB blocks: one BAT entry in a 512-byte BAT.  1 GiB
	 * needs 512 entries, which fit in the alignment gap before the first
	 * block; 4 GiB needs 2048, so then the BAT must move. */
	tcreate(tpath("rs.vhd"), VHD_TYPE_DYNAMIC, 1 << 20, 0, NULL);
	tfill(pat, sizeof(pat));
	put(tpath("rs.vhd"), pat, 512, 0);
	v = topen(tpath("rs.vhd"), 0);
	table = v->header.table_offset;
	vhd_close(v);
	assert_int_equal(vhd_resize(tpath("rs.vhd"), 1ull << 30, 0, &err), 0);
	v = topen(tpath("rs.vhd"), 0);
	assert_int_equal(v->max_entries, 512);
	assert_int_equal(v->header.table_offset, table);
	assert_int_equal(vhd_pread(v, buf, 512, 0), 512);
	assert_memory_equal(buf, pat, 512);
	vhd_close(v);
	assert_int_equal(vhd_resize(tpath("rs.vhd"), 4ull << 30, 0, &err), 0);
	v = topen(tpath("rs.vhd"), VHD_OPEN_RDWR);
	assert_int_equal(vhd_size(v), 4ull << 30);
	assert_int_equal(v->max_entries, 2048);
	assert_true(v->header.table_offset > table);
	assert_int_equal(vhd_resize(tpath("rs.vhd"), 1ull << 30, 0, &err), -EBUSY);
	memset(&err, 0, sizeof(err));
	assert_int_equal(vhd_pwrite(v, pat, 512, 1ull << 30), 512);
	vhd_close(v);
	assert_int_equal(vhd_resize(tpath("rs.vhd"), 1ull << 30, 0, &err), -ENOTEMPTY);
	memset(&err, 0, sizeof(err));
	v = topen(tpath("rs.vhd"), VHD_OPEN_RDWR);
	assert_int_equal(vhd_pread(v, buf, 512, 0), 512);
	assert_memory_equal(buf, pat, 512);
	assert_int_equal(vhd_pwrite(v, pat, 512, (1ull << 30) - 512), 512);
	assert_int_equal(vhd_close(v), 0);
	v = topen(tpath("rs.vhd"), 0);
	assert_int_equal(vhd_pread(v, buf, 512, (1ull << 30) - 512), 512);
	assert_memory_equal(buf, pat, 512);
	assert_int_equal(v->footer.cylinders, 8322);	/* geometry follows */
	vhd_close(v);
	/* Shrinking over allocated data is refused, over nothing allowed. */
	memset(&err, 0, sizeof(err));
	assert_int_equal(vhd_resize(tpath("rs.vhd"), 512 << 20, 0, &err), -ENOTEMPTY);
	assert_non_null(strstr(err.msg, "cannot shrink: block 511 (offset 1071644672) past the new size is allocated"));
	tcreate(tpath("rs2.vhd"), VHD_TYPE_DYNAMIC, 100 << 20, 0, NULL);
	put(tpath("rs2.vhd"), pat, 512, 0);
	assert_int_equal(vhd_resize(tpath("rs2.vhd"), 10 << 20, 0, &err), 0);
	v = topen(tpath("rs2.vhd"), 0);
	assert_int_equal(vhd_size(v), 10 << 20);
	vhd_close(v);
}

/* Compaction works around a BAT that resize moved past the blocks. */
static void test_compact_after_bat_move(void **s)
{
	const uint64_t size = 8ull << 30;
	uint8_t pat[4096], zero[4096] = { 0 }, buf[4096];
	struct vhd_error err = { 0 };
	struct vhd *v;

	tcreate(tpath("mv.vhd"), VHD_TYPE_DYNAMIC, 4 << 20, 0, NULL);
	tfill(pat, sizeof(pat));
	put(tpath("mv.vhd"), pat, sizeof(pat), 0);
	put(tpath("mv.vhd"), pat, sizeof(pat), 2 << 20);
	assert_int_equal(vhd_resize(tpath("mv.vhd"), size, 0, &err), 0);
	put(tpath("mv.vhd"), pat, sizeof(pat), size - 4096);
	put(tpath("mv.vhd"), zero, sizeof(zero), 0);	/* block 0 now zeros */
	assert_int_equal(vhd_compact(tpath("mv.vhd"), 0, NULL, NULL, &err), 0);
	assert_int_equal(allocated(tpath("mv.vhd")), 2);
	v = topen(tpath("mv.vhd"), 0);
	assert_int_equal(vhd_pread(v, buf, 4096, 2 << 20), 4096);
	assert_memory_equal(buf, pat, 4096);
	assert_int_equal(vhd_pread(v, buf, 4096, size - 4096), 4096);
	assert_memory_equal(buf, pat, 4096);
	assert_int_equal(vhd_pread(v, buf, 4096, 0), 4096);
	assert_memory_equal(buf, zero, 4096);
	/* The file ends right after its last structure. */
	assert_int_equal(v->file_size, vhd_meta_end(v) > v->data_end ? vhd_meta_end(v) + 512
								       : v->data_end + 512);
	vhd_close(v);
}

static void test_resize_fixed(void **s)
{
	uint8_t *model = calloc(1, 3 << 20);
	struct vhd_error err = { 0 };

	tcreate(tpath("fx.vhd"), VHD_TYPE_FIXED, 2 << 20, 0, NULL);
	tfill(model, 1 << 20);
	put(tpath("fx.vhd"), model, 1 << 20, 0);
	assert_int_equal(vhd_resize(tpath("fx.vhd"), 3 << 20, 0, &err), 0);
	expect_contents(tpath("fx.vhd"), model, 3 << 20);	/* old footer zeroed */
	assert_int_equal(vhd_resize(tpath("fx.vhd"), 1 << 20, 0, &err), 0);
	expect_contents(tpath("fx.vhd"), model, 1 << 20);
	memset(&err, 0, sizeof(err));
	assert_int_equal(vhd_resize(tpath("fx.vhd"), 512 << 10, 0, &err), -ENOTEMPTY);
	free(model);
}

/* A live snapshot: the same handle goes on writing, into the child. */
static void test_snapshot(void **s)
{
	const uint64_t size = 4 << 20;
	uint8_t *model = calloc(1, size), *frozen, pat[4096];
	struct vhd_error err = { 0 };
	struct vhd *v;

	tcreate(tpath("live.vhd"), VHD_TYPE_DYNAMIC, size, 0, NULL);
	v = topen(tpath("live.vhd"), VHD_OPEN_RDWR);
	tfill(model, 1 << 20);
	assert_int_equal(vhd_pwrite(v, model, 1 << 20, 0), 1 << 20);
	frozen = malloc(size);
	memcpy(frozen, model, size);
	unlink(tpath("snap.vhd"));
	assert_int_equal(vhd_snapshot(v, tpath("snap.vhd"), &err), 0);
	assert_int_equal(vhd_get_type(v), VHD_TYPE_DIFF);
	assert_string_equal(vhd_name(v), tpath("snap.vhd"));
	tfill(pat, sizeof(pat));
	assert_int_equal(vhd_pwrite(v, pat, sizeof(pat), 8192), sizeof(pat));
	memcpy(model + 8192, pat, sizeof(pat));
	/* Readers may open the old layer now; no one may write it. */
	struct vhd *r = topen(tpath("live.vhd"), 0);

	vhd_close(r);
	assert_int_equal(vhd_close(v), 0);
	expect_contents(tpath("snap.vhd"), model, size);
	expect_contents(tpath("live.vhd"), frozen, size);
	free(model);
	free(frozen);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_convert_roundtrip),
		cmocka_unit_test(test_convert_odd_size),
		cmocka_unit_test(test_convert_cancel),
		cmocka_unit_test(test_convert_flattens_chain),
		cmocka_unit_test(test_commit),
		cmocka_unit_test(test_commit_keep),
		cmocka_unit_test(test_rebase),
		cmocka_unit_test(test_compact),
		cmocka_unit_test(test_compact_child),
		cmocka_unit_test(test_resize_dynamic),
		cmocka_unit_test(test_compact_after_bat_move),
		cmocka_unit_test(test_resize_fixed),
		cmocka_unit_test(test_snapshot),
	};
	return TRUN(tests);
}
