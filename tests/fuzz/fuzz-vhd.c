// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * libFuzzer target for libvhd: the input bytes are a VHD file.
 *
 * The file lives in memory (struct mem_file), so the target touches no
 * filesystem: every open has VHD_OPEN_NO_PARENT.  Each input goes through
 *  - a read-only open, vhd_get_info, a walk of vhd_map over the whole disk
 *    and bounded reads (start, end, offsets taken from the input), where
 *    each mapped extent must read as what it names: zeros, or the file's
 *    bytes at file_off;
 *  - a read-write open of a private copy, a few writes (single sectors,
 *    the last sector, a run of zeros) each read back at once, flush, close,
 *    and a reopen that must still succeed and read the same bytes;
 *  - vhd_check_file without and with repair, each on a fresh copy; a file
 *    repair calls clean or repaired must then open.
 * Whether checksums are ignored is taken from a hash of the input, so an
 * input always runs the same way (libFuzzer needs that) while the corpus
 * as a whole exercises both.
 *
 * A broken invariant calls bug(), which says which and aborts: that is a
 * library bug, and the input that shows it is the crash libFuzzer saves.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vhd.h"

/* A copy may grow by this much: room for a few 2 MiB blocks, not for the
 * gigabytes a header can ask for. */
#define MEM_GROWTH	(8u << 20)
#define MAX_EXTENTS	4096
#define MAX_CHECKED	(64u << 10)	/* bytes of one extent compared */
#define READ_LEN	(64u << 10)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A broken invariant: says which, so that a saved crash explains itself. */
static void bug(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void bug(const char *fmt, ...)
{
	va_list ap;

	fputs("fuzz-vhd: library bug: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}

struct mem_file {
	struct vhd_file base;
	uint8_t *data;
	size_t size;
	size_t cap;
	size_t limit;
	/* A view of the input itself, for read-only opens: any write is a
	 * bug, and no copy is made (copies of large inputs cost most). */
	bool readonly;
	/* The library closes a file it owns; the harness frees it, so that
	 * who owns the file after a failed call never matters here. */
	bool closed;
};

static struct mem_file *mem(struct vhd_file *f)
{
	return (struct mem_file *)f;
}

static ssize_t mem_pread(struct vhd_file *f, void *buf, size_t len, uint64_t off)
{
	struct mem_file *m = mem(f);

	if (m->closed)
		bug("read from a file after its close");
	if (off >= m->size)
		return 0;
	if (len > m->size - off)
		len = m->size - (size_t)off;
	memcpy(buf, m->data + off, len);
	return (ssize_t)len;
}

static int mem_resize(struct mem_file *m, uint64_t size)
{
	if (size > m->limit)
		return -EFBIG;
	if (size > m->cap) {
		size_t cap = m->cap ? m->cap : (size_t)size;
		uint8_t *d;

		while (cap < size)
			cap *= 2;
		if (cap > m->limit)
			cap = m->limit;
		d = realloc(m->data, cap);
		if (!d)
			return -ENOMEM;
		m->data = d;
		m->cap = cap;
	}
	/* Growing shows zeros, shrinking forgets: as ftruncate does. */
	if (size > m->size)
		memset(m->data + m->size, 0, (size_t)size - m->size);
	m->size = (size_t)size;
	return 0;
}

static ssize_t mem_pwrite(struct vhd_file *f, const void *buf, size_t len,
			  uint64_t off)
{
	struct mem_file *m = mem(f);
	int r;

	if (m->closed)
		bug("write to a file after its close");
	if (m->readonly)
		bug("write of %zu bytes at %llu through a read-only open", len,
		    (unsigned long long)off);
	if (off > m->limit || len > m->limit - off)
		return -EFBIG;
	if (off + len > m->size) {
		r = mem_resize(m, off + len);
		if (r < 0)
			return r;
	}
	memcpy(m->data + off, buf, len);
	return (ssize_t)len;
}

static int mem_flush(struct vhd_file *f)
{
	return 0;
}

static int mem_get_size(struct vhd_file *f, uint64_t *size)
{
	*size = mem(f)->size;
	return 0;
}

static int mem_truncate(struct vhd_file *f, uint64_t size)
{
	if (mem(f)->readonly)
		bug("truncate through a read-only open");
	return mem_resize(mem(f), size);
}

static int mem_punch_hole(struct vhd_file *f, uint64_t off, uint64_t len)
{
	struct mem_file *m = mem(f);

	if (m->readonly)
		bug("hole punched through a read-only open");
	if (off < m->size)
		memset(m->data + off, 0,
		       len < m->size - off ? (size_t)len : m->size - (size_t)off);
	return 0;
}

static void mem_close(struct vhd_file *f)
{
	if (mem(f)->closed)
		bug("file closed twice");
	mem(f)->closed = true;
}

static const struct vhd_file_ops mem_ops = {
	.pread = mem_pread,
	.pwrite = mem_pwrite,
	.flush = mem_flush,
	.get_size = mem_get_size,
	.truncate = mem_truncate,
	.punch_hole = mem_punch_hole,
	.close = mem_close,
	.get_fd = NULL,
};

static struct mem_file *mem_new(const uint8_t *data, size_t size)
{
	struct mem_file *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	m->base.ops = &mem_ops;
	m->limit = size + MEM_GROWTH;
	if (mem_resize(m, size) < 0) {
		free(m);
		return NULL;
	}
	if (size)
		memcpy(m->data, data, size);
	return m;
}

static void mem_view(struct mem_file *m, const uint8_t *data, size_t size)
{
	memset(m, 0, sizeof(*m));
	m->base.ops = &mem_ops;
	m->data = (uint8_t *)data;	/* never written: see readonly */
	m->size = m->cap = m->limit = size;
	m->readonly = true;
}

static void mem_free(struct mem_file *m)
{
	if (!m)
		return;
	free(m->data);
	free(m);
}

/* The same bytes every run for the same input: libFuzzer needs that. */
static uint64_t hash(const uint8_t *d, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < n; i++)
		h = (h ^ d[i]) * 0x100000001b3ull;
	return h;
}

static uint64_t get64(const uint8_t *d, size_t n, size_t at)
{
	uint64_t v = 0;

	for (size_t i = 0; i < 8 && n; i++)
		v = v << 8 | d[(at + i) % n];
	return v;
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n);

	if (!p)
		abort();
	return p;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

/* Reads [off, off + len) clipped to the disk; the read must succeed or
 * fail with an errno, never return a short count. */
static void read_some(struct vhd *v, uint8_t *buf, uint64_t off, uint64_t len)
{
	uint64_t size = vhd_size(v);
	ssize_t r;

	off -= off % VHD_SECTOR_SIZE;
	if (off >= size)
		return;
	if (len > size - off)
		len = size - off;
	len -= len % VHD_SECTOR_SIZE;
	r = vhd_pread(v, buf, (size_t)len, off);
	if (r >= 0 && (uint64_t)r != len)
		bug("read of %llu bytes at %llu returned %zd", (unsigned long long)len,
		    (unsigned long long)off, r);
}

/*
 * Walks the disk's extents.  Each must be non-empty and no longer than
 * asked; the first bytes of a zero extent must read as zeros and those of
 * a data extent in this layer as the file's bytes at file_off.
 */
static void walk_map(struct vhd *v, struct mem_file *m, uint8_t *buf,
		     uint8_t *want)
{
	uint64_t size = vhd_size(v), off = 0;

	for (int i = 0; i < MAX_EXTENTS && off < size; i++) {
		struct vhd_extent e;
		size_t n;
		int r = vhd_map(v, off, size - off, &e);

		if (r < 0)
			return;
		if (e.len == 0 || e.len > size - off || e.len % VHD_SECTOR_SIZE)
			bug("map at %llu: extent of %llu bytes", (unsigned long long)off,
			    (unsigned long long)e.len);
		n = e.len < MAX_CHECKED ? (size_t)e.len : MAX_CHECKED;
		if (vhd_pread(v, buf, n, off) == (ssize_t)n) {
			if (e.kind == VHD_EXT_ZERO && !all_zero(buf, n))
				bug("map says zeros at %llu, read says not",
				    (unsigned long long)off);
			if (e.kind == VHD_EXT_DATA && e.depth == 0) {
				memset(want, 0, n);
				if (e.file_off < m->size)
					memcpy(want, m->data + e.file_off,
					       m->size - e.file_off < n ?
					       m->size - (size_t)e.file_off : n);
				if (memcmp(buf, want, n))
					bug("map says file offset %llu for %llu, read differs",
					    (unsigned long long)e.file_off,
					    (unsigned long long)off);
			}
		}
		off += e.len;
	}
}

static void read_pass(struct vhd *v, struct mem_file *m, const uint8_t *data,
		      size_t size)
{
	uint8_t *buf = xmalloc(MAX_CHECKED > READ_LEN ? MAX_CHECKED : READ_LEN);
	uint8_t *want = xmalloc(MAX_CHECKED);
	uint64_t vsize = vhd_size(v);
	struct vhd_info info;

	if (vhd_get_info(v, &info) < 0 || info.size != vsize)
		bug("vhd_get_info disagrees with vhd_size");
	walk_map(v, m, buf, want);
	read_some(v, buf, 0, READ_LEN);
	read_some(v, buf, vsize > READ_LEN ? vsize - READ_LEN : 0, READ_LEN);
	for (size_t k = 0; k < 4 && vsize; k++) {
		uint64_t x = get64(data, size, 64 + 97 * k);

		read_some(v, buf, x % vsize, (x >> 48) % READ_LEN + 1);
	}
	/* Misaligned and out-of-range requests are refused, not served. */
	if (vhd_pread(v, buf, 512, 1) >= 0 || vhd_pread(v, buf, 512, vsize) >= 0)
		bug("a misaligned or out-of-range read was served");
	free(buf);
	free(want);
}

/* Fills buf with bytes that name their sector, so a misplaced write shows. */
static void fill(uint8_t *buf, size_t len, uint64_t off)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)((off + i) / VHD_SECTOR_SIZE * 31 + i % 251 + 1);
}

struct written {
	uint64_t off;
	uint32_t len;
	bool zero;
};

/* Writes a few ranges, each read back at once; returns how many ranges
 * stuck (a write refused with an errno, e.g. a full copy, is not kept). */
static int write_pass(struct vhd *v, const uint8_t *data, size_t size,
		      struct written *w)
{
	uint64_t vsize = vhd_size(v);
	uint8_t *buf = xmalloc(8192), *back = xmalloc(8192);
	uint64_t x = get64(data, size, 200), span = vsize ? vsize : 1;
	struct written plan[] = {
		{ 0, VHD_SECTOR_SIZE, false },
		{ vsize - VHD_SECTOR_SIZE, VHD_SECTOR_SIZE, false },
		{ x % span, (uint32_t)(1 + (x >> 40) % 16) * VHD_SECTOR_SIZE, false },
		{ (x >> 20) % span, 4096, true },
	};
	int n = 0;

	for (size_t i = 0; vsize && i < sizeof(plan) / sizeof(plan[0]); i++) {
		struct written p = plan[i];
		int r;

		p.off -= p.off % VHD_SECTOR_SIZE;
		if (p.off >= vsize)
			continue;
		if (p.len > vsize - p.off)
			p.len = (uint32_t)(vsize - p.off);
		if (p.zero) {
			r = vhd_pwrite_zeroes(v, p.off, p.len, true);
		} else {
			fill(buf, p.len, p.off);
			r = (int)vhd_pwrite(v, buf, p.len, p.off);
		}
		if (r < 0)
			continue;
		if (vhd_pread(v, back, p.len, p.off) != (ssize_t)p.len)
			bug("reading back %u bytes at %llu failed", p.len,
			    (unsigned long long)p.off);
		if (p.zero ? !all_zero(back, p.len) : memcmp(buf, back, p.len) != 0)
			bug("%u bytes written at %llu read back different", p.len,
			    (unsigned long long)p.off);
		w[n++] = p;
	}
	free(buf);
	free(back);
	return n;
}

/* What the write pass wrote must read back the same, as far as a later
 * write of the same pass did not overwrite it. */
static void verify_written(struct vhd *v, const struct written *w, int n,
			   const char *when)
{
	uint8_t *buf = xmalloc(8192), *back = xmalloc(8192);

	for (int i = 0; i < n; i++) {
		bool later = false;

		for (int j = i + 1; j < n; j++)
			if (w[j].off < w[i].off + w[i].len &&
			    w[i].off < w[j].off + w[j].len)
				later = true;
		if (later)
			continue;
		if (vhd_pread(v, back, w[i].len, w[i].off) != (ssize_t)w[i].len)
			bug("%s: reading %u bytes at %llu failed", when, w[i].len,
			    (unsigned long long)w[i].off);
		if (!w[i].zero)
			fill(buf, w[i].len, w[i].off);
		else
			memset(buf, 0, w[i].len);
		if (memcmp(buf, back, w[i].len))
			bug("%s: %u bytes written at %llu read back different", when,
			    w[i].len, (unsigned long long)w[i].off);
	}
	free(buf);
	free(back);
}

/* Opens a view strictly, as a file that needs no help must open. */
static void must_open(struct mem_file *m, const char *why,
		      const struct written *w, int n, unsigned flags)
{
	struct vhd_open_opts oo = { .flags = flags };
	struct vhd_error err = { 0 };
	struct mem_file view;
	struct vhd *v;

	mem_view(&view, m->data, m->size);
	if (vhd_open_file(&view.base, "fuzz.vhd", &oo, &v, &err) < 0)
		bug("%s: the file does not open: %s", why, err.msg);
	verify_written(v, w, n, why);
	vhd_close(v);
}

/* Check without repair reads only, so it runs on the input itself; repair
 * runs on a copy. */
static void check_pass(const uint8_t *data, size_t size, unsigned flags,
		       bool repair)
{
	struct vhd_open_opts oo = { .flags = flags };
	struct vhd_check_report rep = { 0 };
	struct vhd_error err = { 0 };
	struct mem_file view, *m = &view;
	int r;

	if (repair)
		m = mem_new(data, size);
	else
		mem_view(&view, data, size);
	if (!m)
		return;
	r = vhd_check_file(&m->base, "fuzz.vhd", &oo, repair, &rep, &err);
	if (r < 0 && (err.code == 0 || !err.msg[0]))
		bug("check failed with %d and no message", r);
	/* Repair that calls a file sound must leave one that opens. */
	if (r >= 0 && repair && rep.result != VHD_CHECK_CORRUPT)
		must_open(m, "after repair", NULL, 0, VHD_OPEN_NO_PARENT);
	if (repair)
		mem_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t h = hash(data, size);
	unsigned base = VHD_OPEN_NO_PARENT;
	unsigned ro = base | (h & 1 ? VHD_OPEN_IGNORE_CHECKSUMS : 0);
	unsigned rw = base | VHD_OPEN_RDWR |
		      (h & 2 ? VHD_OPEN_IGNORE_CHECKSUMS : 0);
	struct vhd_open_opts oo = { .flags = ro };
	struct vhd_error err = { 0 };
	struct mem_file view, *m;
	struct written w[4] = { 0 };
	struct vhd *v;
	int n;

	/* Read-only, on the input itself: any write is caught. */
	mem_view(&view, data, size);
	if (vhd_open_file(&view.base, "fuzz.vhd", &oo, &v, &err) == 0) {
		read_pass(v, &view, data, size);
		if (vhd_close(v) < 0 || !view.closed)
			bug("read-only close failed or left the file open");
	} else if (err.code == 0 || !err.msg[0]) {
		bug("open failed with no message");
	}

	/* Read-write, on a private copy. */
	m = mem_new(data, size);
	if (!m)
		return 0;
	oo.flags = rw;
	memset(&err, 0, sizeof(err));
	if (vhd_open_file(&m->base, "fuzz.vhd", &oo, &v, &err) == 0) {
		read_pass(v, m, data, size);
		n = write_pass(v, data, size, w);
		verify_written(v, w, n, "after all writes");
		/* A copy that ran out of room need not hold the writes. */
		if (vhd_flush(v) < 0)
			n = -1;
		if (vhd_close(v) < 0)
			n = -1;
		/* What the library wrote it must open again, as it was
		 * opened, and read back. */
		if (n > 0)
			must_open(m, "after writing and reopening", w, n,
				  base | (rw & VHD_OPEN_IGNORE_CHECKSUMS));
	}
	mem_free(m);

	check_pass(data, size, ro, false);
	check_pass(data, size, base | VHD_OPEN_RDWR | VHD_OPEN_FOR_REPAIR, true);
	return 0;
}
