// SPDX-License-Identifier: GPL-2.0-or-later
#include <ftw.h>

#include "util.h"

static char dir[256];

const char *tpath(const char *name)
{
	static char buf[8][512];
	static int i;

	i = (i + 1) % 8;
	snprintf(buf[i], sizeof(buf[i]), "%s/%s", dir, name);
	return buf[i];
}

void tcreate(const char *path, enum vhd_type type, uint64_t size,
	     uint32_t block_size, const char *parent)
{
	struct vhd_create_opts o = { .type = type, .size = size,
				     .block_size = block_size, .parent = parent };
	struct vhd_error err = { 0 };

	unlink(path);
	if (vhd_create(path, &o, &err) < 0)
		fail_msg("%s", err.msg);
}

struct vhd *topen(const char *path, unsigned flags)
{
	struct vhd_open_opts o = { .flags = flags };
	struct vhd_error err = { 0 };
	struct vhd *v = NULL;

	if (vhd_open(path, &o, &v, &err) < 0)
		fail_msg("%s", err.msg);
	return v;
}

uint64_t trand(void)
{
	static uint64_t x = 0x9e3779b97f4a7c15ull;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return x;
}

void tfill(uint8_t *buf, size_t len)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)trand();
}

void texpect_extents(struct vhd *v, const uint8_t *model, uint64_t size)
{
	for (uint64_t off = 0; off < size;) {
		struct vhd_extent e;
		uint8_t *got;

		assert_int_equal(vhd_map(v, off, size - off, &e), 0);
		assert_true(e.len > 0 && e.len % 512 == 0 && e.len <= size - off);
		if (e.kind == VHD_EXT_DATA) {
			got = malloc(e.len);
			assert_non_null(got);
			assert_int_equal(vhd_read_exact(e.layer->file, got, e.len,
							e.file_off), 0);
			assert_memory_equal(got, model + off, e.len);
			free(got);
		} else {
			assert_true(vhd_is_zero(model + off, e.len));
		}
		off += e.len;
	}
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	return remove(p);
}

int trun(const char *name, const struct CMUnitTest *tests, size_t n)
{
	const char *base = strrchr(name, '/');
	int r;

	snprintf(dir, sizeof(dir), "/tmp/vsrv-%s-XXXXXX", base ? base + 1 : name);
	if (!mkdtemp(dir)) {
		perror(dir);
		return 1;
	}
	r = _cmocka_run_group_tests(name, tests, n, NULL, NULL);
	if (r == 0)
		nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return r;
}
