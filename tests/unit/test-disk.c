// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The disk layer (src/disk) against an in-memory model: every backend
 * (raw, fixed, dynamic and differencing VHD) with every engine (io_uring,
 * threads) and cache mode, scattered and unaligned buffers, flushes seen
 * by a second open, discard and write-zeroes, two queues on two threads,
 * undo overlays, snapshots and the error messages.
 */
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>

#include "disk.h"
#include "util.h"

#define SIZE		(6u << 20)
#define BLOCK		(64u << 10)
#define SECTOR		DISK_SECTOR_SIZE

enum kind { RAW, FIXED, DYNAMIC, DIFF };

struct cfg {
	enum kind kind;
	enum disk_aio aio;
	enum disk_cache cache;
};

static const char *kind_name(enum kind k)
{
	static const char *const names[] = { "raw", "fixed", "dynamic", "diff" };

	return names[k];
}

/* ------------------------------------------------------------------ */
/* Helpers */

struct waiter {
	int status;
	bool done;
};

static void on_done(void *opaque, int status)
{
	struct waiter *w = opaque;

	w->status = status;
	w->done = true;
}

static int wait_for(struct disk_queue *q, struct waiter *w, int r)
{
	if (r < 0)
		return r;
	while (!w->done)
		assert_true(disk_queue_wait(q, 10000) >= 0);
	return w->status;
}

static int sync_rw(struct disk_queue *q, bool write, uint64_t off,
		   const struct iovec *iov, unsigned cnt)
{
	struct waiter w = { 0 };

	return wait_for(q, &w, write ? disk_submit_write(q, off, iov, cnt, on_done, &w)
				     : disk_submit_read(q, off, iov, cnt, on_done, &w));
}

static int sync_buf(struct disk_queue *q, bool write, uint64_t off, void *buf,
		    size_t len)
{
	struct iovec iov = { buf, len };

	return sync_rw(q, write, off, &iov, 1);
}

static int sync_flush(struct disk_queue *q)
{
	struct waiter w = { 0 };

	return wait_for(q, &w, disk_submit_flush(q, on_done, &w));
}

static int sync_zeroes(struct disk_queue *q, bool discard, uint64_t off,
		       uint64_t len, bool unmap)
{
	struct waiter w = { 0 };

	return wait_for(q, &w, discard ? disk_submit_discard(q, off, len, on_done, &w)
				       : disk_submit_write_zeroes(q, off, len, unmap,
								  on_done, &w));
}

static struct disk *open_spec(const struct disk_spec *spec)
{
	struct disk_error err = { 0 };
	struct disk *d = NULL;

	if (disk_open(spec, &d, &err) < 0)
		fail_msg("%s", err.msg);
	return d;
}

static void close_disk(struct disk *d)
{
	struct disk_error err = { 0 };

	if (disk_close(d, &err) < 0)
		fail_msg("%s", err.msg);
}

static struct disk_queue *new_queue(struct disk *d)
{
	struct disk_queue *q = NULL;

	assert_int_equal(disk_queue_create(d, &q), 0);
	return q;
}

static void write_file(const char *path, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, buf, len), (ssize_t)len);
	close(fd);
}

static uint8_t *read_file(const char *path, size_t *len)
{
	struct stat st;
	uint8_t *buf;
	int fd = open(path, O_RDONLY);

	assert_true(fd >= 0 && fstat(fd, &st) == 0);
	buf = malloc((size_t)st.st_size + 1);
	assert_int_equal(read(fd, buf, (size_t)st.st_size), st.st_size);
	close(fd);
	*len = (size_t)st.st_size;
	return buf;
}

/* Random data at random places of a libvhd disk and the model. */
static void scribble(struct vhd *v, uint8_t *model, int n)
{
	uint8_t buf[16 * SECTOR];

	for (int i = 0; i < n; i++) {
		uint64_t s = trand() % (SIZE / SECTOR - 16), k = 1 + trand() % 16;

		tfill(buf, k * SECTOR);
		assert_int_equal(vhd_pwrite(v, buf, k * SECTOR, s * SECTOR),
				 (ssize_t)(k * SECTOR));
		memcpy(model + s * SECTOR, buf, k * SECTOR);
	}
}

/* The disk's file for a configuration, and the model of its contents. */
static const char *make_disk(const struct cfg *c, const char *name, uint8_t *model)
{
	char base[64];
	const char *path;
	struct vhd *v;

	memset(model, 0, SIZE);
	snprintf(base, sizeof(base), "%s-base.vhd", name);
	path = tpath(name);
	unlink(path);
	switch (c->kind) {
	case RAW: {
		int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);

		assert_true(fd >= 0);
		assert_int_equal(ftruncate(fd, SIZE), 0);
		close(fd);
		break;
	}
	case FIXED:
		tcreate(path, VHD_TYPE_FIXED, SIZE, 0, NULL);
		break;
	case DYNAMIC:
		tcreate(path, VHD_TYPE_DYNAMIC, SIZE, BLOCK, NULL);
		break;
	case DIFF:
		tcreate(tpath(base), VHD_TYPE_DYNAMIC, SIZE, BLOCK, NULL);
		v = topen(tpath(base), VHD_OPEN_RDWR);
		scribble(v, model, 200);
		vhd_close(v);
		tcreate(path, VHD_TYPE_DIFF, 0, 0, tpath(base));
		break;
	}
	return path;
}

static struct disk *open_cfg(const struct cfg *c, const char *path, bool ro)
{
	struct disk_spec spec = { .path = path, .aio = c->aio, .cache = c->cache,
				  .readonly = ro,
				  .format = c->kind == RAW ? DISK_FORMAT_RAW : DISK_FORMAT_VHD };

	return open_spec(&spec);
}

/* An iovec over buf: pieces of random lengths, or (aligned) sector
 * multiples at their natural addresses. */
static unsigned scatter(uint8_t *buf, size_t len, bool aligned, struct iovec *iov,
			unsigned max)
{
	unsigned n = 0;
	size_t done = 0;

	while (done < len) {
		size_t k = aligned ? (1 + trand() % 8) * SECTOR : 1 + trand() % 1500;

		if (k > len - done || n == max - 1)
			k = len - done;
		iov[n++] = (struct iovec){ buf + done, k };
		done += k;
	}
	return n;
}

static void verify(struct disk_queue *q, const uint8_t *model)
{
	uint8_t *buf = aligned_alloc(4096, SIZE);

	memset(buf, 0xee, SIZE);
	assert_int_equal(sync_buf(q, false, 0, buf, SIZE), 0);
	assert_memory_equal(buf, model, SIZE);
	free(buf);
}

/*
 * Random writes (scattered, sometimes at odd addresses), reads, zeroes and
 * discards in [lo, hi), against the model.  After a discard each sector
 * reads either as before or as zeros, never anything else.
 */
static void exercise(struct disk_queue *q, uint8_t *model, uint64_t lo,
		     uint64_t hi, int rounds)
{
	uint8_t *mem = aligned_alloc(4096, (1 << 20) + 4096);
	struct iovec iov[64];

	for (int i = 0; i < rounds; i++) {
		uint64_t sectors = (hi - lo) / SECTOR;
		uint64_t s = lo / SECTOR + trand() % sectors;
		uint64_t n = 1 + trand() % (trand() % 4 ? 16 : 512);
		bool aligned = trand() % 2;
		uint8_t *buf = mem + (aligned ? 0 : 1 + trand() % 511);
		unsigned cnt, op = (unsigned)(trand() % 20);

		if (s + n > hi / SECTOR)
			n = hi / SECTOR - s;
		cnt = scatter(buf, n * SECTOR, aligned, iov, 64);
		if (op < 12) {
			tfill(buf, n * SECTOR);
			assert_int_equal(sync_rw(q, true, s * SECTOR, iov, cnt), 0);
			memcpy(model + s * SECTOR, buf, n * SECTOR);
		} else if (op < 17) {
			memset(buf, 0xee, n * SECTOR);
			assert_int_equal(sync_rw(q, false, s * SECTOR, iov, cnt), 0);
			assert_memory_equal(buf, model + s * SECTOR, n * SECTOR);
		} else if (op < 19) {
			assert_int_equal(sync_zeroes(q, false, s * SECTOR, n * SECTOR,
						     trand() % 2), 0);
			memset(model + s * SECTOR, 0, n * SECTOR);
		} else {
			assert_int_equal(sync_zeroes(q, true, s * SECTOR, n * SECTOR, true), 0);
			assert_int_equal(sync_buf(q, false, s * SECTOR, buf, n * SECTOR), 0);
			for (uint64_t k = 0; k < n; k++) {
				uint8_t *got = buf + k * SECTOR;

				if (!vhd_is_zero(got, SECTOR))
					assert_memory_equal(got, model + (s + k) * SECTOR, SECTOR);
			}
			memcpy(model + s * SECTOR, buf, n * SECTOR);
		}
		if (trand() % 16 == 0)
			assert_int_equal(sync_flush(q), 0);
	}
	free(mem);
}

static void check_vhd_clean(const struct cfg *c, const char *path)
{
	struct vhd_check_report rep = { 0 };
	struct vhd_open_opts oo = { 0 };
	struct vhd_error err = { 0 };

	if (c->kind == RAW)
		return;
	if (vhd_check(path, &oo, false, &rep, &err) < 0)
		fail_msg("%s", err.msg);
	assert_int_equal(rep.result, VHD_CHECK_CLEAN);
}

/* A test's disk, made for its configuration and open with one queue. */
struct fixture {
	const struct cfg *c;
	uint8_t *model;
	const char *path;
	struct disk *d;
	struct disk_queue *q;
};

static void fx_open(struct fixture *f, void **state, const char *name, bool ro)
{
	f->c = *state;
	f->model = malloc(SIZE);
	f->path = make_disk(f->c, name, f->model);
	f->d = open_cfg(f->c, f->path, ro);
	f->q = new_queue(f->d);
}

static void fx_close(struct fixture *f)
{
	disk_queue_destroy(f->q);
	close_disk(f->d);
}

/* Everything is in the files: a new open reads the model. */
static void verify_reopened(const struct cfg *c, const char *path,
			    const uint8_t *model)
{
	struct disk *d = open_cfg(c, path, true);
	struct disk_queue *q = new_queue(d);

	verify(q, model);
	disk_queue_destroy(q);
	close_disk(d);
}

/* ------------------------------------------------------------------ */
/* Every backend with every engine and cache mode */

static void test_roundtrip(void **state)
{
	struct fixture f;

	fx_open(&f, state, "rt", false);
	assert_int_equal(disk_size(f.d), SIZE);
	assert_string_equal(disk_format_name(f.d), f.c->kind == RAW ? "raw" : "vhd");
	assert_string_equal(disk_aio_name(f.d), f.c->aio == DISK_AIO_THREAD ? "thread" : "io_uring");
	verify(f.q, f.model);
	exercise(f.q, f.model, 0, SIZE, 300);
	verify(f.q, f.model);
	assert_int_equal(sync_flush(f.q), 0);
	fx_close(&f);
	check_vhd_clean(f.c, f.path);
	verify_reopened(f.c, f.path, f.model);
	free(f.model);
}

/* Exact bytes through one many-piece vector, with cache=none's buffers
 * at odd addresses and pieces of odd lengths (bounced), and aligned
 * (straight to the file). */
static void test_scattered(void **state)
{
	struct fixture f;
	uint8_t *mem = aligned_alloc(4096, 300 * 1024);
	struct iovec iov[800];
	uint64_t off = BLOCK - 3 * SECTOR;	/* across a block boundary */
	size_t len = 256 * 1024;

	fx_open(&f, state, "sc", false);
	for (int pass = 0; pass < 2; pass++) {
		uint8_t *buf = mem + (pass ? 0 : 7);
		unsigned cnt = 0;

		/* 1 + 2 + 3 ... bytes, or 512-byte pieces. */
		for (size_t done = 0, k = 1; done < len; done += iov[cnt++].iov_len, k++)
			iov[cnt] = (struct iovec){ buf + done,
						   pass ? SECTOR : (k < len - done ? k : len - done) };
		tfill(buf, len);
		memcpy(f.model + off, buf, len);
		assert_int_equal(sync_rw(f.q, true, off, iov, cnt), 0);
		memset(buf, 0, len);
		assert_int_equal(sync_rw(f.q, false, off, iov, cnt), 0);
		assert_memory_equal(buf, f.model + off, len);
		off += 5 * BLOCK;
	}
	/* More pieces than one system call takes. */
	{
		static struct iovec many[2048];
		uint8_t *buf = mem;

		for (unsigned i = 0; i < 2048; i++)
			many[i] = (struct iovec){ buf + i * 128, 128 };
		tfill(buf, 2048 * 128);
		memcpy(f.model + 9 * SECTOR, buf, 2048 * 128);
		assert_int_equal(sync_rw(f.q, true, 9 * SECTOR, many, 2048), 0);
		memset(buf, 0, 2048 * 128);
		assert_int_equal(sync_rw(f.q, false, 9 * SECTOR, many, 2048), 0);
		assert_memory_equal(buf, f.model + 9 * SECTOR, 2048 * 128);
	}
	verify(f.q, f.model);
	fx_close(&f);
	free(mem);
	free(f.model);
}

/* Write-zeroes reads back zeros, with and without unmap; a discard of
 * data only the top layer holds reads back zeros too; a discard over a
 * parent's data leaves it. */
static void test_zeroes(void **state)
{
	struct fixture f;
	uint8_t *buf = aligned_alloc(4096, 4 * BLOCK);

	fx_open(&f, state, "z", false);
	tfill(buf, 4 * BLOCK);
	assert_int_equal(sync_buf(f.q, true, BLOCK, buf, 4 * BLOCK), 0);
	memcpy(f.model + BLOCK, buf, 4 * BLOCK);
	assert_int_equal(sync_zeroes(f.q, false, BLOCK + SECTOR, 3 * SECTOR, false), 0);
	memset(f.model + BLOCK + SECTOR, 0, 3 * SECTOR);
	assert_int_equal(sync_zeroes(f.q, false, 2 * BLOCK, BLOCK, true), 0);
	memset(f.model + 2 * BLOCK, 0, BLOCK);
	assert_int_equal(sync_zeroes(f.q, true, 3 * BLOCK, BLOCK, true), 0);
	memset(f.model + 3 * BLOCK, 0, BLOCK);
	/* Zeroes over what reads as zeros everywhere allocate nothing. */
	assert_int_equal(sync_zeroes(f.q, false, SIZE - BLOCK, BLOCK, false), 0);
	memset(f.model + SIZE - BLOCK, 0, BLOCK);
	if (f.c->kind == DIFF) {
		/* Below, the parent's data: zeroes hide it, a discard keeps it. */
		assert_int_equal(sync_zeroes(f.q, false, 40 * BLOCK, BLOCK, false), 0);
		memset(f.model + 40 * BLOCK, 0, BLOCK);
		assert_int_equal(sync_zeroes(f.q, true, 50 * BLOCK, BLOCK, true), 0);
	}
	verify(f.q, f.model);
	assert_int_equal(sync_flush(f.q), 0);
	fx_close(&f);
	check_vhd_clean(f.c, f.path);
	if (f.c->kind == DYNAMIC) {
		struct vhd *v = topen(f.path, 0);
		struct vhd_info info;

		vhd_get_info(v, &info);
		assert_int_equal(info.allocated_blocks, 4);
		vhd_close(v);
	}
	verify_reopened(f.c, f.path, f.model);
	free(buf);
	free(f.model);
}

/* A flush makes the writes durable where another reader of the files
 * sees them: for VHD, a new block is only found through a BAT that the
 * flush writes. */
static void test_flush_visible(void **state)
{
	struct fixture f;
	uint8_t buf[4096], got[4096];
	struct vhd *v;

	fx_open(&f, state, "fl", false);
	tfill(buf, sizeof(buf));
	assert_int_equal(sync_buf(f.q, true, 3 * BLOCK, buf, sizeof(buf)), 0);
	if (f.c->kind == DYNAMIC && f.c->cache != DISK_CACHE_UNSAFE) {
		v = topen(f.path, VHD_OPEN_NO_LOCK);
		assert_int_equal(vhd_pread(v, got, sizeof(got), 3 * BLOCK), sizeof(got));
		assert_true(vhd_is_zero(got, sizeof(got)));
		vhd_close(v);
	}
	assert_int_equal(sync_flush(f.q), 0);
	if (f.c->kind == RAW) {
		int fd = open(f.path, O_RDONLY);

		assert_int_equal(pread(fd, got, sizeof(got), 3 * BLOCK), sizeof(got));
		close(fd);
	} else {
		v = topen(f.path, VHD_OPEN_NO_LOCK);
		assert_int_equal(vhd_pread(v, got, sizeof(got), 3 * BLOCK), sizeof(got));
		vhd_close(v);
	}
	assert_memory_equal(got, buf, sizeof(buf));
	fx_close(&f);
	free(f.model);
}

/* Read-only: writes refused before anything is done, reads work, other
 * readers may open it, a writer may not. */
static void test_readonly(void **state)
{
	struct fixture f;
	uint8_t buf[1024];
	struct disk *d2;
	struct disk_spec rw;
	struct disk_error err = { 0 };
	struct iovec iov = { buf, sizeof(buf) };
	struct waiter w = { 0 };

	fx_open(&f, state, "ro", true);
	rw = (struct disk_spec){ .path = f.path, .aio = f.c->aio, .cache = f.c->cache,
				 .format = f.c->kind == RAW ? DISK_FORMAT_RAW : DISK_FORMAT_VHD };
	assert_true(disk_is_readonly(f.d));
	assert_int_equal(disk_submit_write(f.q, 0, &iov, 1, on_done, &w), -EROFS);
	assert_int_equal(disk_submit_discard(f.q, 0, 512, on_done, &w), -EROFS);
	assert_int_equal(disk_submit_write_zeroes(f.q, 0, 512, false, on_done, &w), -EROFS);
	assert_false(w.done);
	assert_int_equal(sync_flush(f.q), 0);
	verify(f.q, f.model);
	d2 = open_cfg(f.c, f.path, true);
	close_disk(d2);
	assert_int_equal(disk_open(&rw, &d2, &err), -EBUSY);
	if (f.c->kind == RAW)
		assert_string_equal(strstr(err.msg, ": in use"),
				    ": in use by another process (needed for writing)");
	else
		assert_non_null(strstr(err.msg, ": in use by pid "));
	fx_close(&f);
	free(f.model);
}

/* Requests refused at submission: misaligned, past the end. */
static void test_bad_requests(void **state)
{
	struct fixture f;
	uint8_t buf[1024];
	struct iovec iov = { buf, 512 }, odd = { buf, 100 };
	struct waiter w = { 0 };

	fx_open(&f, state, "bad", false);
	assert_int_equal(disk_submit_read(f.q, 3, &iov, 1, on_done, &w), -EINVAL);
	assert_int_equal(disk_submit_write(f.q, 0, &odd, 1, on_done, &w), -EINVAL);
	assert_int_equal(disk_submit_read(f.q, SIZE, &iov, 1, on_done, &w), -EINVAL);
	assert_int_equal(disk_submit_discard(f.q, SIZE - 512, 1024, on_done, &w), -EINVAL);
	assert_int_equal(disk_submit_write_zeroes(f.q, UINT64_MAX - 511, 1024, false,
						  on_done, &w), -EINVAL);
	assert_false(w.done);
	/* Nothing to do still completes through the queue. */
	assert_int_equal(sync_rw(f.q, false, SIZE, &iov, 0), 0);
	assert_int_equal(disk_queue_inflight(f.q), 0);
	fx_close(&f);
	free(f.model);
}

/* Many requests in flight on two queues, each on its own thread, each in
 * its half of the disk; then everything reads back. */
struct worker {
	struct disk *d;
	uint8_t *model;
	uint64_t lo, hi;
	uint64_t seed;
};

struct slot {
	struct waiter w;
	uint64_t off;
	size_t len;
	uint8_t *buf;
	struct iovec iov[8];
	unsigned cnt;
	bool busy;
};

static void *worker_main(void *arg)
{
	struct worker *wk = arg;
	struct disk_queue *q = new_queue(wk->d);
	enum { SLOTS = 32, ROUNDS = 400 };
	struct slot *slots = calloc(SLOTS, sizeof(*slots));
	uint64_t x = wk->seed;
	int submitted = 0;

	for (int i = 0; i < SLOTS; i++)
		slots[i].buf = malloc(32 * SECTOR);
	while (submitted < ROUNDS || disk_queue_inflight(q)) {
		for (int i = 0; i < SLOTS && submitted < ROUNDS; i++) {
			struct slot *s = &slots[i];
			uint64_t sec;

			if (s->busy)
				continue;
			x = x * 6364136223846793005ull + 1442695040888963407ull;
			/* Disjoint slots: slot i writes only its own stripe. */
			sec = (wk->lo / SECTOR) + (uint64_t)i * ((wk->hi - wk->lo) / SECTOR / SLOTS) +
			      (x >> 33) % ((wk->hi - wk->lo) / SECTOR / SLOTS - 32);
			s->off = sec * SECTOR;
			s->len = (1 + (x >> 20) % 32) * SECTOR;
			for (size_t k = 0; k < s->len; k++)
				s->buf[k] = (uint8_t)(x >> (k % 7 * 8)) ^ (uint8_t)k;
			memcpy(wk->model + s->off, s->buf, s->len);
			s->cnt = 0;
			for (size_t done = 0; done < s->len; s->cnt++) {
				size_t k = s->cnt == 7 ? s->len - done : 1 + (x >> (s->cnt * 5)) % 700;

				if (k > s->len - done)
					k = s->len - done;
				s->iov[s->cnt] = (struct iovec){ s->buf + done, k };
				done += k;
			}
			s->w.done = false;
			s->busy = true;
			assert_int_equal(disk_submit_write(q, s->off, s->iov, s->cnt,
							   on_done, &s->w), 0);
			if (++submitted % 50 == 0) {
				struct waiter *fw = calloc(1, sizeof(*fw));

				/* Not waited for: it completes among the writes. */
				assert_int_equal(disk_submit_flush(q, on_done, fw), 0);
				while (!fw->done)
					assert_true(disk_queue_wait(q, 10000) >= 0);
				assert_int_equal(fw->status, 0);
				free(fw);
			}
		}
		assert_true(disk_queue_wait(q, 10000) >= 0);
		for (int i = 0; i < SLOTS; i++) {
			if (slots[i].busy && slots[i].w.done) {
				assert_int_equal(slots[i].w.status, 0);
				slots[i].busy = false;
			}
		}
	}
	disk_queue_destroy(q);
	for (int i = 0; i < SLOTS; i++)
		free(slots[i].buf);
	free(slots);
	return NULL;
}

static void test_two_queues(void **state)
{
	struct fixture f;
	struct worker wk[2];
	pthread_t t[2];

	fx_open(&f, state, "mq", false);
	wk[0] = (struct worker){ f.d, f.model, 0, SIZE / 2, 1 };
	wk[1] = (struct worker){ f.d, f.model, SIZE / 2, SIZE, 2 };
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&t[i], NULL, worker_main, &wk[i]), 0);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	verify(f.q, f.model);
	fx_close(&f);
	check_vhd_clean(f.c, f.path);
	free(f.model);
}

/* ------------------------------------------------------------------ */
/* Chains, snapshots */

/* A chain three deep, each layer holding scattered sectors over the one
 * below: every read mixes layers, at odd addresses with cache=none. */
static void test_chain(void **state)
{
	const struct cfg *c = *state;
	uint8_t *model = calloc(1, SIZE);
	struct disk *d;
	struct disk_queue *q;
	struct vhd *v;

	tcreate(tpath("c0.vhd"), VHD_TYPE_DYNAMIC, SIZE, BLOCK, NULL);
	v = topen(tpath("c0.vhd"), VHD_OPEN_RDWR);
	scribble(v, model, 300);
	vhd_close(v);
	tcreate(tpath("c1.vhd"), VHD_TYPE_DIFF, 0, 0, tpath("c0.vhd"));
	v = topen(tpath("c1.vhd"), VHD_OPEN_RDWR);
	scribble(v, model, 300);
	vhd_close(v);
	tcreate(tpath("c2.vhd"), VHD_TYPE_DIFF, 0, 0, tpath("c1.vhd"));
	v = topen(tpath("c2.vhd"), VHD_OPEN_RDWR);
	scribble(v, model, 300);
	vhd_close(v);
	d = open_cfg(c, tpath("c2.vhd"), true);
	q = new_queue(d);
	verify(q, model);
	for (int i = 0; i < 200; i++) {
		uint8_t *mem = malloc(64 * SECTOR + 1), *buf = mem + (i & 1);
		uint64_t s = trand() % (SIZE / SECTOR - 64), n = 1 + trand() % 64;
		struct iovec iov[64];
		unsigned cnt = scatter(buf, n * SECTOR, false, iov, 64);

		assert_int_equal(sync_rw(q, false, s * SECTOR, iov, cnt), 0);
		assert_memory_equal(buf, model + s * SECTOR, n * SECTOR);
		free(mem);
	}
	disk_queue_destroy(q);
	close_disk(d);
	free(model);
}

static void test_snapshot(void **state)
{
	struct fixture f;
	uint8_t *before = malloc(SIZE), buf[8192];
	struct disk_error err = { 0 };
	struct iovec iov = { buf, sizeof(buf) };
	struct waiter w = { 0 };
	char serial[DISK_SERIAL_LEN + 1];

	fx_open(&f, state, "snap.vhd", false);
	unlink(tpath("snap-1.vhd"));
	exercise(f.q, f.model, 0, SIZE, 50);
	memcpy(before, f.model, SIZE);
	snprintf(serial, sizeof(serial), "%s", disk_serial(f.d));
	/* Not with a request in flight. */
	tfill(buf, sizeof(buf));
	assert_int_equal(disk_submit_write(f.q, 0, &iov, 1, on_done, &w), 0);
	assert_int_equal(disk_snapshot(f.d, tpath("snap-1.vhd"), &err), -EBUSY);
	assert_int_equal(wait_for(f.q, &w, 0), 0);
	memcpy(f.model, buf, sizeof(buf));
	memcpy(before, buf, sizeof(buf));
	if (disk_snapshot(f.d, tpath("snap-1.vhd"), &err) < 0)
		fail_msg("%s", err.msg);
	assert_string_equal(disk_serial(f.d), serial);
	exercise(f.q, f.model, 0, SIZE, 100);
	verify(f.q, f.model);
	fx_close(&f);
	/* The old top holds what it held at the snapshot, the child the rest. */
	verify_reopened(f.c, f.path, before);
	verify_reopened(f.c, tpath("snap-1.vhd"), f.model);
	free(before);
	free(f.model);
}

/* A child made by another (the supervisor of a sandboxed VM, over the top
 * the disk has open and locked), handed over as descriptors: the disk goes
 * on in it; the new top holds nothing until written (disk_layer's
 * `empty`).  A child over another disk is refused, the disk unchanged. */
static void test_snapshot_fd(void **state)
{
	struct fixture f;
	uint8_t *before = malloc(SIZE);
	struct disk_error err = { 0 };
	struct disk_layer l;
	char msg[1024], base[512];
	int fd, dfd;

	fx_open(&f, state, "snapfd.vhd", false);
	/* tpath's buffers are a ring of eight: the base's path kept. */
	snprintf(base, sizeof(base), "%s", f.path);
	f.path = base;
	unlink(tpath("snapfd-1.avhd"));
	unlink(tpath("other-1.avhd"));
	exercise(f.q, f.model, 0, SIZE, 50);
	memcpy(before, f.model, SIZE);
	/* Another disk's child: refused, its descriptors closed. */
	tcreate(tpath("other.vhd"), VHD_TYPE_DYNAMIC, SIZE, BLOCK, NULL);
	tcreate(tpath("other-1.avhd"), VHD_TYPE_DIFF, 0, 0, tpath("other.vhd"));
	fd = open(tpath("other-1.avhd"), O_RDWR | O_CLOEXEC);
	dfd = f.c->cache == DISK_CACHE_NONE ?
	      open(tpath("other-1.avhd"), O_RDWR | O_DIRECT | O_CLOEXEC) : -1;
	assert_true(fd >= 0);
	snprintf(msg, sizeof(msg), "%s", tpath("other-1.avhd"));
	assert_int_equal(disk_snapshot_fd(f.d, fd, dfd, msg, &err), -EINVAL);
	snprintf(msg + strlen(msg), sizeof(msg) - strlen(msg), ": not a differencing disk over %s",
		 f.path);
	assert_string_equal(err.msg, msg);
	assert_int_equal(fcntl(fd, F_GETFD), -1);
	assert_int_equal(fcntl(dfd, F_GETFD), -1);
	assert_int_equal(disk_layer(f.d, 1, &l), 0);
	/* Over the running top, whose lock the disk holds. */
	if (disk_child_create(f.path, tpath("snapfd-1.avhd"), &err) < 0)
		fail_msg("%s", err.msg);
	fd = open(tpath("snapfd-1.avhd"), O_RDWR | O_CLOEXEC);
	dfd = f.c->cache == DISK_CACHE_NONE ?
	      open(tpath("snapfd-1.avhd"), O_RDWR | O_DIRECT | O_CLOEXEC) : -1;
	assert_true(fd >= 0 && (dfd >= 0) == (f.c->cache == DISK_CACHE_NONE));
	if (disk_snapshot_fd(f.d, fd, dfd, tpath("snapfd-1.avhd"), &err) < 0)
		fail_msg("%s", err.msg);
	assert_int_equal(disk_layer(f.d, 0, &l), 1);
	assert_string_equal(l.path, tpath("snapfd-1.avhd"));
	assert_true(l.empty);
	assert_int_equal(disk_layer(f.d, 1, &l), 1);
	assert_string_equal(l.path, f.path);
	assert_false(l.empty);
	exercise(f.q, f.model, 0, SIZE, 100);
	verify(f.q, f.model);
	assert_int_equal(disk_layer(f.d, 0, &l), 1);
	assert_false(l.empty);
	fx_close(&f);
	verify_reopened(f.c, f.path, before);
	verify_reopened(f.c, tpath("snapfd-1.avhd"), f.model);
	/* Merged down: the base holds it all, the child is gone. */
	assert_int_equal(disk_merge_down(tpath("snapfd-1.avhd"), NULL, NULL, &err), 1);
	assert_int_equal(access(tpath("snapfd-1.avhd"), F_OK), -1);
	verify_reopened(f.c, f.path, f.model);
	free(before);
	free(f.model);
}

/* ------------------------------------------------------------------ */
/* Undo overlays */

struct notes {
	char text[4][1024];
	int n;
};

static void on_notice(void *opaque, const char *msg)
{
	struct notes *nt = opaque;

	if (nt->n < 4)
		snprintf(nt->text[nt->n++], sizeof(nt->text[0]), "%s", msg);
}

/* The folder's names, sorted, separated by spaces. */
static void list_dir(const char *dir, char *out, size_t len)
{
	struct dirent **ents;
	int n = scandir(dir, &ents, NULL, alphasort);

	assert_true(n >= 0);
	out[0] = '\0';
	for (int i = 0; i < n; i++) {
		if (ents[i]->d_name[0] != '.') {
			if (out[0])
				strncat(out, " ", len - strlen(out) - 1);
			strncat(out, ents[i]->d_name, len - strlen(out) - 1);
		}
		free(ents[i]);
	}
	free(ents);
}

struct undo_run {
	char dir[512], base[600], child[600];
	uint8_t *model, *base_bytes;
	uint8_t *base_model;		/* what the base holds */
	size_t base_len;
	struct stat base_st;
	struct notes notes;
};

static void undo_setup(struct undo_run *u, const char *name, const struct cfg *c)
{
	char sub[64];
	struct vhd *v;

	snprintf(sub, sizeof(sub), "%s-%d-%d", name, c->aio, c->cache);
	snprintf(u->dir, sizeof(u->dir), "%s", tpath(sub));
	assert_int_equal(mkdir(u->dir, 0755), 0);
	snprintf(u->base, sizeof(u->base), "%s/Disk.VHD", u->dir);
	snprintf(u->child, sizeof(u->child), "%s/Disk.undo.vhd", u->dir);
	u->model = calloc(1, SIZE);
	tcreate(u->base, VHD_TYPE_DYNAMIC, SIZE, BLOCK, NULL);
	v = topen(u->base, VHD_OPEN_RDWR);
	scribble(v, u->model, 100);
	vhd_close(v);
	u->base_model = malloc(SIZE);
	memcpy(u->base_model, u->model, SIZE);
	u->base_bytes = read_file(u->base, &u->base_len);
	assert_int_equal(stat(u->base, &u->base_st), 0);
}

static void assert_base_unchanged(struct undo_run *u)
{
	size_t len;
	uint8_t *now = read_file(u->base, &len);
	struct stat st;

	assert_int_equal(len, u->base_len);
	assert_memory_equal(now, u->base_bytes, len);
	assert_int_equal(stat(u->base, &st), 0);
	assert_int_equal(st.st_mtim.tv_sec, u->base_st.st_mtim.tv_sec);
	assert_int_equal(st.st_mtim.tv_nsec, u->base_st.st_mtim.tv_nsec);
	free(now);
}

/* Opens the base with undo, writes, checks the base is untouched. */
static struct disk *undo_run(struct undo_run *u, const struct cfg *c,
			     enum disk_undo mode, bool resume, int rounds)
{
	struct disk_spec spec = { .path = u->base, .undo = mode, .undo_resume = resume,
				  .aio = c->aio, .cache = c->cache,
				  .notice = on_notice, .notice_opaque = &u->notes };
	struct disk *d = open_spec(&spec);
	struct disk_queue *q = new_queue(d);
	char names[256];

	assert_string_equal(disk_undo_path(d), u->child);
	list_dir(u->dir, names, sizeof(names));
	assert_string_equal(names, "Disk.VHD Disk.undo.vhd");
	verify(q, u->model);
	exercise(q, u->model, 0, SIZE, rounds);
	assert_int_equal(sync_flush(q), 0);
	verify(q, u->model);
	disk_queue_destroy(q);
	assert_base_unchanged(u);
	return d;
}

static void verify_file(const char *path, const uint8_t *model)
{
	struct vhd *v = topen(path, 0);
	uint8_t *buf = malloc(SIZE);

	assert_int_equal(vhd_pread(v, buf, SIZE, 0), SIZE);
	assert_memory_equal(buf, model, SIZE);
	vhd_close(v);
	free(buf);
}

/* The overlay is gone and the base holds what it held. */
static void assert_discarded(struct undo_run *u)
{
	char names[256];

	list_dir(u->dir, names, sizeof(names));
	assert_string_equal(names, "Disk.VHD");
	assert_base_unchanged(u);
	verify_file(u->base, u->base_model);
}

static void undo_teardown(struct undo_run *u)
{
	free(u->base_model);
	free(u->model);
	free(u->base_bytes);
}

static void test_undo_commit(void **state)
{
	const struct cfg *c = *state;
	struct undo_run u = { 0 };
	char names[256];

	undo_setup(&u, "undo-commit", c);
	close_disk(undo_run(&u, c, DISK_UNDO_COMMIT, false, 100));
	list_dir(u.dir, names, sizeof(names));
	assert_string_equal(names, "Disk.VHD");
	verify_file(u.base, u.model);
	check_vhd_clean(c, u.base);
	/* A run that wrote nothing leaves the base as it was. */
	free(u.base_bytes);
	u.base_bytes = read_file(u.base, &u.base_len);
	assert_int_equal(stat(u.base, &u.base_st), 0);
	close_disk(undo_run(&u, c, DISK_UNDO_COMMIT, false, 0));
	list_dir(u.dir, names, sizeof(names));
	assert_string_equal(names, "Disk.VHD");
	assert_base_unchanged(&u);
	undo_teardown(&u);
}

static void test_undo_keep(void **state)
{
	const struct cfg *c = *state;
	struct disk_spec spec = { .aio = c->aio, .cache = c->cache, .undo = DISK_UNDO_KEEP };
	struct disk_error err = { 0 };
	struct undo_run u = { 0 };
	char names[256], want[2048];
	struct disk *d;

	undo_setup(&u, "undo-keep", c);
	close_disk(undo_run(&u, c, DISK_UNDO_KEEP, false, 100));
	list_dir(u.dir, names, sizeof(names));
	assert_string_equal(names, "Disk.VHD Disk.undo.vhd");
	assert_base_unchanged(&u);
	assert_int_equal(u.notes.n, 1);
	snprintf(want, sizeof(want),
		 "%s: the run's changes are kept here (vsrv disk commit %s merges them)",
		 u.child, u.child);
	assert_string_equal(u.notes.text[0], want);
	verify_file(u.child, u.model);
	/* The next run refuses to guess what to do with them. */
	spec.path = u.base;
	assert_int_equal(disk_open(&spec, &d, &err), -EEXIST);
	snprintf(want, sizeof(want),
		 "%s: exists: the changes of an earlier run (kept, or left by a run that did not end cleanly); commit them (vsrv disk commit %s), delete the file, or resume on them (undo-resume)",
		 u.child, u.child);
	assert_string_equal(err.msg, want);
	/* ... unless told to resume on them; then thrown away. */
	close_disk(undo_run(&u, c, DISK_UNDO_DISCARD, true, 50));
	assert_discarded(&u);
	undo_teardown(&u);
}

static void test_undo_discard(void **state)
{
	const struct cfg *c = *state;
	struct undo_run u = { 0 };

	undo_setup(&u, "undo-discard", c);
	close_disk(undo_run(&u, c, DISK_UNDO_DISCARD, false, 100));
	assert_discarded(&u);
	undo_teardown(&u);
}

static void test_undo_names(void **state)
{
	char out[64];

	assert_int_equal(disk_undo_path_for("/a/b/disk.vhd", out, sizeof(out)), 0);
	assert_string_equal(out, "/a/b/disk.undo.vhd");
	assert_int_equal(disk_undo_path_for("disk.VHD", out, sizeof(out)), 0);
	assert_string_equal(out, "disk.undo.vhd");
	assert_int_equal(disk_undo_path_for("/a/disk", out, sizeof(out)), 0);
	assert_string_equal(out, "/a/disk.undo.vhd");
	assert_int_equal(disk_undo_path_for("/a/.vhd", out, sizeof(out)), 0);
	assert_string_equal(out, "/a/.vhd.undo.vhd");
	assert_int_equal(disk_undo_path_for("/a/", out, sizeof(out)), -EINVAL);
	assert_int_equal(disk_undo_path_for("/a/very-long-name-indeed.vhd", out, 20),
			 -ENAMETOOLONG);
}

/* ------------------------------------------------------------------ */
/* Errors, serials, the spec */

static void expect_open_error(const struct disk_spec *spec, int code, const char *msg)
{
	struct disk_error err = { 0 };
	struct disk *d = NULL;

	assert_int_equal(disk_open(spec, &d, &err), code);
	assert_null(d);
	assert_int_equal(err.code, code);
	assert_string_equal(err.msg, msg);
}

static void test_open_errors(void **state)
{
	struct disk_spec spec = { 0 };
	char want[1024], junk[4096] = "conectix";
	char names[512];

	spec.path = tpath("missing.img");
	snprintf(want, sizeof(want), "%s: No such file or directory", spec.path);
	expect_open_error(&spec, -ENOENT, want);
	spec.format = DISK_FORMAT_VHD;
	expect_open_error(&spec, -ENOENT, want);
	spec.undo = DISK_UNDO_COMMIT;
	spec.format = DISK_FORMAT_AUTO;
	expect_open_error(&spec, -ENOENT, want);

	/* Not a VHD inside, though it says so at the start. */
	spec = (struct disk_spec){ .path = tpath("bad.vhd") };
	write_file(spec.path, junk, sizeof(junk));
	snprintf(want, sizeof(want), "%s: unknown disk type 0 in the footer", spec.path);
	expect_open_error(&spec, -EINVAL, want);

	spec = (struct disk_spec){ .path = tpath("odd.img") };
	write_file(spec.path, junk + 8, 1000);
	snprintf(want, sizeof(want), "%s: 1000 bytes, not a whole number of 512-byte sectors",
		 spec.path);
	expect_open_error(&spec, -EINVAL, want);

	/* A raw disk whose last sector the guest made a VHD footer stays raw:
	 * auto goes by the name. */
	spec = (struct disk_spec){ .path = tpath("footer.img") };
	tcreate(spec.path, VHD_TYPE_FIXED, SIZE, 0, NULL);
	{
		struct disk *d;
		struct disk_error e = { 0 };

		assert_int_equal(disk_open(&spec, &d, &e), 0);
		assert_string_equal(disk_format_name(d), "raw");
		assert_int_equal(disk_size(d), SIZE + 512);
		assert_int_equal(disk_close(d, &e), 0);
	}
	assert_int_equal(disk_format_guess("a/b.VHD"), DISK_FORMAT_VHD);
	assert_int_equal(disk_format_guess("b.avhd"), DISK_FORMAT_VHD);
	assert_int_equal(disk_format_guess("b.vhdx"), DISK_FORMAT_RAW);
	assert_int_equal(disk_format_guess("vhd"), DISK_FORMAT_RAW);

	/* Undo over raw, whether said or found. */
	spec = (struct disk_spec){ .path = tpath("plain.img"), .undo = DISK_UNDO_KEEP };
	write_file(spec.path, junk + 8, sizeof(junk) - 8);
	snprintf(want, sizeof(want),
		 "%s: undo needs a VHD: a raw disk cannot have a differencing child (vsrv disk convert --to dynamic makes one)",
		 spec.path);
	expect_open_error(&spec, -EINVAL, want);
	spec.format = DISK_FORMAT_RAW;
	spec.path = tpath("u.vhd");
	tcreate(spec.path, VHD_TYPE_DYNAMIC, SIZE, 0, NULL);
	snprintf(want, sizeof(want),
		 "%s: undo needs a VHD: a raw disk cannot have a differencing child (vsrv disk convert --to dynamic makes one)",
		 spec.path);
	expect_open_error(&spec, -EINVAL, want);
	spec.format = DISK_FORMAT_AUTO;
	spec.readonly = true;
	snprintf(want, sizeof(want),
		 "%s: undo and readonly exclude each other: a read-only disk has nothing to undo",
		 spec.path);
	expect_open_error(&spec, -EINVAL, want);
	/* The same check alone, for vsrv run's supervisor. */
	{
		struct disk_error e = { 0 };

		assert_int_equal(disk_undo_check(&spec, &e), -EINVAL);
		assert_string_equal(e.msg, want);
		spec.readonly = false;
		assert_int_equal(disk_undo_check(&spec, &e), 0);
	}
	/* Nothing was left behind by the refusals. */
	list_dir(tpath(""), names, sizeof(names));
	assert_null(strstr(names, ".undo.vhd"));

	setenv("VSRV_AIO", "fast", 1);
	spec = (struct disk_spec){ .path = tpath("u.vhd") };
	expect_open_error(&spec, -EINVAL, "VSRV_AIO=fast: not auto, uring or thread");
	setenv("VSRV_AIO", "thread", 1);
	{
		struct disk *d = open_spec(&spec);

		assert_string_equal(disk_aio_name(d), "thread");
		close_disk(d);
	}
	unsetenv("VSRV_AIO");
}

static void test_serial(void **state)
{
	struct disk_spec spec = { .path = tpath("s.vhd") };
	struct vhd_info info;
	char want[32];
	struct stat st;
	struct disk *d;
	struct vhd *v;

	tcreate(spec.path, VHD_TYPE_DYNAMIC, SIZE, 0, NULL);
	v = topen(spec.path, 0);
	vhd_get_info(v, &info);
	vhd_close(v);
	for (int i = 0; i < 10; i++)
		sprintf(want + 2 * i, "%02x", info.uuid[i]);
	tcreate(tpath("s-child.vhd"), VHD_TYPE_DIFF, 0, 0, spec.path);
	spec.path = tpath("s-child.vhd");
	d = open_spec(&spec);
	assert_int_equal(strlen(disk_serial(d)), DISK_SERIAL_LEN);
	assert_string_equal(disk_serial(d), want);
	close_disk(d);

	spec.serial = "a-serial-longer-than-twenty-bytes";
	d = open_spec(&spec);
	assert_string_equal(disk_serial(d), "a-serial-longer-than");
	close_disk(d);

	spec = (struct disk_spec){ .path = tpath("s.img") };
	write_file(spec.path, want, 0);
	assert_int_equal(stat(spec.path, &st), 0);
	d = open_spec(&spec);
	assert_int_equal(disk_size(d), 0);
	assert_int_equal(strncmp(disk_serial(d), "raw-", 4), 0);
	assert_int_equal(strlen(disk_serial(d)), DISK_SERIAL_LEN);
	snprintf(want, sizeof(want), "%s", disk_serial(d));
	close_disk(d);
	d = open_spec(&spec);
	assert_string_equal(disk_serial(d), want);
	close_disk(d);
}

static void test_spec_parse(void **state)
{
	char s1[] = "path=/a,,b.vhd,format=vhd,readonly,cache=none,undo=keep,undo-resume,aio=thread,serial=XY";
	char s2[] = "/x.img,cache=unsafe";
	char s3[] = "/x.img,cache=fast";
	char s4[] = "/x.img,colour=red";
	char s5[] = "readonly";
	char s6[] = "/x,undo=commit,format=raw,aio=uring,cache=writeback";
	/* The syntax, switches with values. */
	char s7[] = "path=/d.vhd,format=vhd,readonly=on,undo=discard,cache=none";
	char s8[] = "path=/d.img,readonly,readonly=off";
	char s9[] = "path=/d.img,readonly=yes";
	struct disk_spec spec = { 0 };
	struct disk_error err = { 0 };

	assert_int_equal(disk_spec_parse(s1, &spec, &err), 0);
	assert_string_equal(spec.path, "/a,b.vhd");
	assert_int_equal(spec.format, DISK_FORMAT_VHD);
	assert_true(spec.readonly);
	assert_int_equal(spec.cache, DISK_CACHE_NONE);
	assert_int_equal(spec.undo, DISK_UNDO_KEEP);
	assert_true(spec.undo_resume);
	assert_int_equal(spec.aio, DISK_AIO_THREAD);
	assert_string_equal(spec.serial, "XY");
	spec = (struct disk_spec){ 0 };
	assert_int_equal(disk_spec_parse(s2, &spec, &err), 0);
	assert_string_equal(spec.path, "/x.img");
	assert_int_equal(spec.cache, DISK_CACHE_UNSAFE);
	assert_int_equal(disk_spec_parse(s3, &spec, &err), -EINVAL);
	assert_string_equal(err.msg, "disk: cache=fast: not writeback, none or unsafe");
	assert_int_equal(disk_spec_parse(s4, &spec, &err), -EINVAL);
	assert_string_equal(err.msg, "disk: 'colour': not an option");
	spec = (struct disk_spec){ 0 };
	assert_int_equal(disk_spec_parse(s5, &spec, &err), -EINVAL);
	assert_string_equal(err.msg, "disk: no path (path=FILE)");
	assert_int_equal(disk_spec_parse(s6, &spec, &err), 0);
	assert_int_equal(spec.undo, DISK_UNDO_COMMIT);
	assert_int_equal(spec.format, DISK_FORMAT_RAW);
	assert_int_equal(spec.aio, DISK_AIO_URING);
	assert_int_equal(spec.cache, DISK_CACHE_WRITEBACK);
	spec = (struct disk_spec){ 0 };
	assert_int_equal(disk_spec_parse(s7, &spec, &err), 0);
	assert_string_equal(spec.path, "/d.vhd");
	assert_int_equal(spec.format, DISK_FORMAT_VHD);
	assert_true(spec.readonly);
	assert_int_equal(spec.undo, DISK_UNDO_DISCARD);
	assert_int_equal(spec.cache, DISK_CACHE_NONE);
	spec = (struct disk_spec){ 0 };
	assert_int_equal(disk_spec_parse(s8, &spec, &err), 0);
	assert_false(spec.readonly);
	assert_int_equal(disk_spec_parse(s9, &spec, &err), -EINVAL);
	assert_string_equal(err.msg, "disk: readonly=yes: not on or off");
}

/* ------------------------------------------------------------------ */

#define MAX_TESTS	256

static struct CMUnitTest tests[MAX_TESTS];
static struct cfg cfgs[MAX_TESTS];
static char names[MAX_TESTS][96];
static size_t nr_tests;

static void add(const char *name, CMUnitTestFunction fn, const struct cfg *c)
{
	size_t i = nr_tests++;

	assert_true(nr_tests <= MAX_TESTS);
	if (c) {
		static const char *const aio[] = { "auto", "uring", "thread" };
		static const char *const cache[] = { "writeback", "none", "unsafe" };

		cfgs[i] = *c;
		snprintf(names[i], sizeof(names[i]), "%s/%s/%s/%s", name,
			 kind_name(c->kind), aio[c->aio], cache[c->cache]);
	} else {
		snprintf(names[i], sizeof(names[i]), "%s", name);
	}
	tests[i] = (struct CMUnitTest){ .name = names[i], .test_func = fn,
					.initial_state = c ? &cfgs[i] : NULL };
}

#define BIT(x)		(1u << (x))
#define ALL_KINDS	(BIT(RAW) | BIT(FIXED) | BIT(DYNAMIC) | BIT(DIFF))
#define ALL_CACHES	(BIT(DISK_CACHE_WRITEBACK) | BIT(DISK_CACHE_NONE) | BIT(DISK_CACHE_UNSAFE))

/* Which configurations each test runs in, with each engine. */
static const struct {
	const char *name;
	CMUnitTestFunction fn;
	unsigned kinds, caches;
} matrix[] = {
	{ "roundtrip", test_roundtrip, ALL_KINDS, ALL_CACHES },
	{ "scattered", test_scattered, ALL_KINDS, ALL_CACHES },
	{ "zeroes", test_zeroes, ALL_KINDS, ALL_CACHES },
	{ "flush", test_flush_visible, ALL_KINDS, ALL_CACHES },
	{ "readonly", test_readonly, ALL_KINDS, BIT(DISK_CACHE_WRITEBACK) },
	{ "bad-requests", test_bad_requests, ALL_KINDS, BIT(DISK_CACHE_WRITEBACK) },
	{ "two-queues", test_two_queues, ALL_KINDS,
	  BIT(DISK_CACHE_WRITEBACK) | BIT(DISK_CACHE_NONE) },
	{ "chain", test_chain, BIT(DYNAMIC), BIT(DISK_CACHE_WRITEBACK) | BIT(DISK_CACHE_NONE) },
	{ "snapshot", test_snapshot, BIT(DYNAMIC),
	  BIT(DISK_CACHE_WRITEBACK) | BIT(DISK_CACHE_NONE) },
	{ "snapshot-fd", test_snapshot_fd, BIT(DYNAMIC),
	  BIT(DISK_CACHE_WRITEBACK) | BIT(DISK_CACHE_NONE) },
	{ "undo-commit", test_undo_commit, BIT(DYNAMIC), BIT(DISK_CACHE_WRITEBACK) },
	{ "undo-keep", test_undo_keep, BIT(DYNAMIC), BIT(DISK_CACHE_WRITEBACK) },
	{ "undo-discard", test_undo_discard, BIT(DYNAMIC), BIT(DISK_CACHE_NONE) },
};

/* Whether io_uring is there (built with liburing, allowed here): the
 * engine is chosen before the file is looked at, and /dev/null is then
 * refused as no disk. */
static bool have_uring(void)
{
	struct disk_spec spec = { .path = "/dev/null", .aio = DISK_AIO_URING };
	struct disk *d;

	return disk_open(&spec, &d, NULL) != -ENOSYS;
}

int main(void)
{
	static const enum disk_aio aios[] = { DISK_AIO_THREAD, DISK_AIO_URING };

	for (unsigned a = 0; a < (have_uring() ? 2u : 1u); a++)
		for (size_t t = 0; t < sizeof(matrix) / sizeof(matrix[0]); t++)
			for (enum kind k = RAW; k <= DIFF; k++)
				for (enum disk_cache m = DISK_CACHE_WRITEBACK;
				     m <= DISK_CACHE_UNSAFE; m++) {
					struct cfg c = { k, aios[a], m };

					if ((matrix[t].kinds & BIT(k)) &&
					    (matrix[t].caches & BIT(m)))
						add(matrix[t].name, matrix[t].fn, &c);
				}
	add("undo-names", test_undo_names, NULL);
	add("open-errors", test_open_errors, NULL);
	add("serial", test_serial, NULL);
	add("spec-parse", test_spec_parse, NULL);
	return trun(__FILE__, tests, nr_tests);
}
