// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vhd-iobench: random I/O at a queue depth, through io_uring, on a raw file
 * or through libvhd's asynchronous data path; and the helpers that prepare
 * the benchmarks' images.
 *
 * The I/O pattern is `qemu-img bench`'s (qemu 7.2), so that the two can be
 * compared on the same files: request i goes to (OFFSET + i * STEP) modulo
 * the disk size; every FLUSH_INTERVAL writes the queue is drained and the
 * disk flushed.  Raw and VHD share every line of the submission and
 * completion code; only the translation from disk offset to (file, file
 * offset) differs:
 *   raw   the offset itself, in the one file; flush is fdatasync();
 *   vhd   vhd_map() for reads (a range may lie in several layers, or read
 *         as zeros and need no I/O), vhd_map_for_write() before a write and
 *         vhd_write_done() after it; flush is vhd_flush().
 * Files are opened without O_DIRECT: the page cache is in the path, as
 * with `qemu-img bench -t writeback`.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <liburing.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "vhd.h"

#define SECTOR		VHD_SECTOR_SIZE

static const char *prog = "vhd-iobench";

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t parse_size(const char *what, const char *s)
{
	uint64_t v;

	if (vhd_parse_size(s, &v) < 0)
		die("%s: '%s' is not a size", what, s);
	return v;
}

static void *xalloc(size_t len)
{
	void *p = aligned_alloc(4096, (len + 4095) / 4096 * 4096);

	if (!p)
		die("out of memory");
	memset(p, 0, len);
	return p;
}

/*
 * The images are written 4 KiB at a time, so that their page cache holds
 * 4 KiB pages whatever the file's layout.  Larger writes, and sequential
 * reads, get large folios on Linux 6.18 ext4, in which random 4 KiB writes
 * and their fdatasync run two to three times slower: a raw file and a VHD
 * written differently would then not be compared on equal terms.
 */
#define PIECE		4096u

static void write_all(int fd, const void *buf, size_t len, uint64_t off,
		      const char *name)
{
	const uint8_t *p = buf;

	while (len) {
		size_t k = PIECE - off % PIECE;
		ssize_t n = pwrite(fd, p, len < k ? len : k, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			die("%s: write at %" PRIu64 ": %s", name, off,
			    n < 0 ? strerror(errno) : "short write");
		p += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
}

/* Deterministic data: the bytes of a sector depend only on the seed and
 * the sector's number, so that an image and its VHD copies agree. */
static uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	x ^= x >> 31;
	return x;
}

static void fill_sectors(uint8_t *buf, uint64_t sector, uint64_t n,
			 uint64_t seed)
{
	for (uint64_t i = 0; i < n; i++) {
		uint64_t x = mix64(seed ^ ((sector + i) * 0x9e3779b97f4a7c15ull)) | 1;

		for (unsigned k = 0; k < SECTOR / 8; k++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			memcpy(buf + i * SECTOR + k * 8, &x, 8);
		}
	}
}

/* ------------------------------------------------------------------ */
/* The benchmark */

struct target {
	const char *name;
	struct vhd *vhd;	/* NULL: a raw file */
	int fd;			/* raw only */
	uint64_t size;
	uint32_t block_size;	/* VHD: 0 for fixed disks */
};

struct slot;

/* One io_uring request: a part of a slot's range in one file. */
struct seg {
	struct slot *slot;
	int fd;
	uint64_t file_off;
	uint32_t buf_off;
	uint32_t len;
};

/* One benchmark request, of `len` bytes at disk offset `off`. */
struct slot {
	uint64_t off;
	uint8_t *buf;
	unsigned pending;	/* segments not yet completed */
	struct seg *segs;
};

struct bench {
	struct target *t;
	struct io_uring ring;
	struct slot *slots;
	unsigned *free_slots;
	unsigned nr_free;
	unsigned max_segs;

	bool write;
	bool verify;
	bool breakdown;
	uint32_t len;
	unsigned depth;
	uint64_t count;
	uint64_t step;
	uint64_t next_off;
	uint64_t flush_interval;
	uint8_t pattern;

	uint64_t submitted, completed;
	unsigned inflight;	/* slots */
	uint64_t since_flush;	/* writes submitted since the last flush */
	uint64_t nr_flushes, nr_sqes;
	double t_flush, t_map, t_wait;
	uint64_t checksum;
};

static int target_open(struct target *t, const char *path, const char *fmt,
		       bool write)
{
	bool vhd = fmt ? !strcmp(fmt, "vhd") : vhd_probe(path);

	memset(t, 0, sizeof(*t));
	t->name = path;
	t->fd = -1;
	if (fmt && strcmp(fmt, "vhd") && strcmp(fmt, "raw"))
		die("-f: '%s' is not raw or vhd", fmt);
	if (vhd) {
		struct vhd_open_opts oo = { .flags = write ? VHD_OPEN_RDWR : 0 };
		struct vhd_error err = { 0 };
		int r = vhd_open(path, &oo, &t->vhd, &err);

		if (r < 0)
			die("%s", err.msg);
		t->size = vhd_size(t->vhd);
		t->block_size = vhd_block_size(t->vhd);
		return 0;
	}
	struct stat st;

	t->fd = open(path, (write ? O_RDWR : O_RDONLY) | O_CLOEXEC);
	if (t->fd < 0 || fstat(t->fd, &st) < 0)
		die("%s: %s", path, strerror(errno));
	t->size = (uint64_t)st.st_size;
	return 0;
}

static void target_close(struct target *t)
{
	if (t->vhd && vhd_close(t->vhd) < 0)
		die("%s: closing failed", t->name);
	if (t->fd >= 0)
		close(t->fd);
}

/* The bytes left in the block holding off (all of them for raw and fixed). */
static uint32_t in_block(const struct target *t, uint64_t off, uint32_t len)
{
	uint64_t left;

	if (!t->vhd || !t->block_size)
		return len;
	left = t->block_size - off % t->block_size;
	return left < len ? (uint32_t)left : len;
}

/*
 * The translation, the only code that differs between raw and VHD.
 * Fills sl->segs with the file ranges to transfer and returns their
 * number.  For reads, parts that read as zeros are cleared in the buffer
 * here and need no I/O.
 */
static int map_read(struct bench *b, struct slot *sl)
{
	struct target *t = b->t;
	uint32_t done = 0;
	int n = 0;

	if (!t->vhd) {
		sl->segs[0] = (struct seg){ sl, t->fd, sl->off, 0, b->len };
		return 1;
	}
	while (done < b->len) {
		struct vhd_extent e;
		int r = vhd_map(t->vhd, sl->off + done, b->len - done, &e);

		if (r < 0)
			return r;
		if (e.len == 0 || e.len > b->len - done)
			return -EIO;
		if (e.kind == VHD_EXT_ZERO) {
			memset(sl->buf + done, 0, e.len);
		} else {
			if ((unsigned)n == b->max_segs)
				return -E2BIG;
			sl->segs[n++] = (struct seg){ sl, vhd_get_fd(e.layer),
						      e.file_off, done,
						      (uint32_t)e.len };
		}
		done += (uint32_t)e.len;
	}
	return n;
}

static int map_write(struct bench *b, struct slot *sl)
{
	struct target *t = b->t;
	uint32_t done = 0;
	int n = 0;

	if (!t->vhd) {
		sl->segs[0] = (struct seg){ sl, t->fd, sl->off, 0, b->len };
		return 1;
	}
	while (done < b->len) {
		uint32_t k = in_block(t, sl->off + done, b->len - done);
		uint64_t fo;
		int r = vhd_map_for_write(t->vhd, sl->off + done, k, &fo);

		if (r < 0)
			return r;
		if ((unsigned)n == b->max_segs)
			return -E2BIG;
		sl->segs[n++] = (struct seg){ sl, vhd_get_fd(t->vhd), fo, done, k };
		done += k;
	}
	return n;
}

static int write_done(struct bench *b, struct slot *sl)
{
	struct target *t = b->t;
	uint32_t done = 0;

	if (!t->vhd)
		return 0;
	while (done < b->len) {
		uint32_t k = in_block(t, sl->off + done, b->len - done);
		int r = vhd_write_done(t->vhd, sl->off + done, k);

		if (r < 0)
			return r;
		done += k;
	}
	return 0;
}

static int target_flush(struct target *t)
{
	if (t->vhd)
		return vhd_flush(t->vhd);
	return fdatasync(t->fd) < 0 ? -errno : 0;
}

/* ------------------------------------------------------------------ */
/* Submission and completion: the same for both */

static uint64_t hash_buf(const uint8_t *p, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i + 8 <= len; i += 8) {
		uint64_t w;

		memcpy(&w, p + i, 8);
		h = (h ^ w) * 0x100000001b3ull;
	}
	return h;
}

static void slot_complete(struct bench *b, struct slot *sl)
{
	if (b->write) {
		int r = write_done(b, sl);

		if (r < 0)
			die("%s: recording a write at %" PRIu64 ": %s",
			    b->t->name, sl->off, strerror(-r));
	} else if (b->verify) {
		/* A sum, so that the order of completion does not matter. */
		b->checksum += mix64(hash_buf(sl->buf, b->len) ^ sl->off);
	}
	b->completed++;
	b->free_slots[b->nr_free++] = (unsigned)(sl - b->slots);
}

static struct io_uring_sqe *get_sqe(struct bench *b)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&b->ring);

	if (!sqe) {
		int r = io_uring_submit(&b->ring);

		if (r < 0)
			die("io_uring_submit: %s", strerror(-r));
		sqe = io_uring_get_sqe(&b->ring);
		if (!sqe)
			die("io_uring: no submission queue entry");
	}
	return sqe;
}

static void submit_one(struct bench *b)
{
	struct slot *sl = &b->slots[b->free_slots[--b->nr_free]];
	double t0 = b->breakdown ? now() : 0;
	int n;

	sl->off = b->next_off;
	b->next_off = (b->next_off + b->step) % b->t->size;
	n = b->write ? map_write(b, sl) : map_read(b, sl);
	if (b->breakdown)
		b->t_map += now() - t0;
	if (n < 0)
		die("%s: mapping %" PRIu32 " bytes at %" PRIu64 ": %s",
		    b->t->name, b->len, sl->off, strerror(-n));
	b->submitted++;
	if (b->write)
		b->since_flush++;
	if (n == 0) {		/* all zeros: nothing to wait for */
		slot_complete(b, sl);
		return;
	}
	sl->pending = (unsigned)n;
	b->inflight++;
	for (int i = 0; i < n; i++) {
		struct seg *s = &sl->segs[i];
		struct io_uring_sqe *sqe = get_sqe(b);

		if (b->write)
			io_uring_prep_write(sqe, s->fd, sl->buf + s->buf_off,
					    s->len, s->file_off);
		else
			io_uring_prep_read(sqe, s->fd, sl->buf + s->buf_off,
					   s->len, s->file_off);
		io_uring_sqe_set_data(sqe, s);
		b->nr_sqes++;
	}
}

static void reap(struct bench *b)
{
	struct io_uring_cqe *cqe;
	unsigned head, n = 0;

	io_uring_for_each_cqe(&b->ring, head, cqe) {
		struct seg *s = io_uring_cqe_get_data(cqe);
		struct slot *sl = s->slot;

		n++;
		if (cqe->res < 0)
			die("%s: %s of %" PRIu32 " bytes at file offset %" PRIu64 ": %s",
			    b->t->name, b->write ? "write" : "read", s->len,
			    s->file_off, strerror(-cqe->res));
		if ((uint32_t)cqe->res < s->len) {
			/* A short read ends at the end of the file: the rest
			 * reads as zeros.  A short write is an error. */
			if (b->write)
				die("%s: short write at %" PRIu64, b->t->name,
				    s->file_off);
			memset(sl->buf + s->buf_off + cqe->res, 0,
			       s->len - (uint32_t)cqe->res);
		}
		if (--sl->pending == 0) {
			b->inflight--;
			slot_complete(b, sl);
		}
	}
	io_uring_cq_advance(&b->ring, n);
}

static bool may_submit(const struct bench *b)
{
	return b->submitted < b->count && b->inflight < b->depth &&
	       b->nr_free > 0 &&
	       (!b->flush_interval || b->since_flush < b->flush_interval);
}

static void flush(struct bench *b)
{
	double t0 = now();
	int r = target_flush(b->t);

	if (r < 0)
		die("%s: flush: %s", b->t->name, strerror(-r));
	b->t_flush += now() - t0;
	b->nr_flushes++;
	b->since_flush = 0;
}

/*
 * As qemu-img bench with its default drain-on-flush: once FLUSH_INTERVAL
 * writes have been submitted since the last flush, no more are submitted
 * until those have completed; then the disk is flushed.  The end of the
 * run flushes too.  So each flush covers exactly FLUSH_INTERVAL writes
 * when COUNT is a multiple of it.
 */
static double run(struct bench *b)
{
	double t0 = now();

	while (b->completed < b->count) {
		while (may_submit(b))
			submit_one(b);
		if (b->inflight) {
			double tw = b->breakdown ? now() : 0;
			int r = io_uring_submit_and_wait(&b->ring, 1);

			if (r < 0 && r != -EINTR)
				die("io_uring_submit_and_wait: %s", strerror(-r));
			reap(b);
			if (b->breakdown)
				b->t_wait += now() - tw;
		}
		if (!b->inflight && b->flush_interval && b->since_flush &&
		    (b->since_flush == b->flush_interval ||
		     b->submitted == b->count))
			flush(b);
	}
	return now() - t0;
}

static int cmd_bench(int argc, char **argv)
{
	static const char usage[] =
		"usage: vhd-iobench bench [-f raw|vhd] [-c COUNT] [-d DEPTH] [-s SIZE]\n"
		"         [-S STEP] [-o OFFSET] [-w] [--flush-interval=N] [--pattern=BYTE]\n"
		"         [--verify] [--breakdown] FILE\n"
		"  As qemu-img bench: request i is at (OFFSET + i * STEP) modulo the disk\n"
		"  size (STEP defaults to SIZE); writes drain the queue and flush every N.\n"
		"  --verify prints a checksum of the data read, independent of order.\n"
		"  --breakdown times mapping, waiting and flushing apart.";
	static const struct option opts[] = {
		{ "flush-interval", required_argument, NULL, 'F' },
		{ "pattern", required_argument, NULL, 'P' },
		{ "verify", no_argument, NULL, 'V' },
		{ "breakdown", no_argument, NULL, 'B' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct bench b = { .depth = 64, .count = 75000, .len = 4096,
			   .pattern = 0xa5 };
	const char *fmt = NULL;
	uint64_t offset = 0;
	struct target t;
	unsigned entries;
	double secs;
	int c, r;

	while ((c = getopt_long(argc, argv, "f:c:d:s:S:o:wh", opts, NULL)) != -1) {
		switch (c) {
		case 'f':
			fmt = optarg;
			break;
		case 'c':
			b.count = strtoull(optarg, NULL, 0);
			break;
		case 'd':
			b.depth = (unsigned)strtoul(optarg, NULL, 0);
			break;
		case 's':
			b.len = (uint32_t)parse_size("-s", optarg);
			break;
		case 'S':
			b.step = parse_size("-S", optarg);
			break;
		case 'o':
			offset = parse_size("-o", optarg);
			break;
		case 'w':
			b.write = true;
			break;
		case 'F':
			b.flush_interval = strtoull(optarg, NULL, 0);
			break;
		case 'P':
			b.pattern = (uint8_t)strtoul(optarg, NULL, 0);
			break;
		case 'V':
			b.verify = true;
			break;
		case 'B':
			b.breakdown = true;
			break;
		case 'h':
			puts(usage);
			return 0;
		default:
			fprintf(stderr, "%s\n", usage);
			return 2;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "%s\n", usage);
		return 2;
	}
	if (!b.depth || !b.count || !b.len || b.len % SECTOR || b.len > (64u << 20))
		die("-d, -c and -s must be positive, -s a multiple of 512 up to 64M");
	if (b.flush_interval && !b.write)
		die("--flush-interval applies to writes (-w) only");
	if (!b.step)
		b.step = b.len;
	target_open(&t, argv[optind], fmt, b.write);
	if (t.size < b.len || offset > t.size - b.len)
		die("%s: %" PRIu64 " bytes is too small", t.name, t.size);
	b.t = &t;
	b.next_off = offset;
	/* Every part of a request is at least a sector. */
	b.max_segs = t.vhd ? b.len / SECTOR : 1;
	b.slots = calloc(b.depth, sizeof(*b.slots));
	b.free_slots = calloc(b.depth, sizeof(*b.free_slots));
	if (!b.slots || !b.free_slots)
		die("out of memory");
	for (unsigned i = 0; i < b.depth; i++) {
		b.slots[i].buf = xalloc(b.len);
		b.slots[i].segs = calloc(b.max_segs, sizeof(struct seg));
		if (!b.slots[i].segs)
			die("out of memory");
		if (b.write)
			memset(b.slots[i].buf, b.pattern, b.len);
		b.free_slots[b.nr_free++] = b.depth - 1 - i;
	}
	/* The same ring for raw and VHD: room for a few parts per request. */
	entries = b.depth * (b.len / SECTOR < 8 ? b.len / SECTOR : 8);
	if (entries > 4096)
		entries = 4096;
	r = io_uring_queue_init(entries, &b.ring, 0);
	if (r < 0)
		die("io_uring_queue_init: %s", strerror(-r));

	printf("Sending %" PRIu64 " %s requests, %" PRIu32 " bytes each, %u in parallel "
	       "(starting at offset %" PRIu64 ", step size %" PRIu64 ") to %s (%s)\n",
	       b.count, b.write ? "write" : "read", b.len, b.depth, offset, b.step,
	       t.name, t.vhd ? "vhd" : "raw");
	if (b.flush_interval)
		printf("Sending flush every %" PRIu64 " requests\n", b.flush_interval);
	fflush(stdout);
	secs = run(&b);
	printf("Run completed in %.3f seconds.\n", secs);
	printf("ops/s: %.0f\n", (double)b.count / secs);
	printf("io_uring requests: %" PRIu64 " (%.3f per operation)\n", b.nr_sqes,
	       (double)b.nr_sqes / (double)b.count);
	if (b.nr_flushes)
		printf("flushes: %" PRIu64 " taking %.3f s\n", b.nr_flushes, b.t_flush);
	if (b.breakdown)
		printf("breakdown: mapping %.3f s, submit+wait %.3f s, flush %.3f s\n",
		       b.t_map, b.t_wait, b.t_flush);
	if (b.verify)
		printf("checksum: %016" PRIx64 "\n", b.checksum);
	io_uring_queue_exit(&b.ring);
	target_close(&t);
	for (unsigned i = 0; i < b.depth; i++) {
		free(b.slots[i].buf);
		free(b.slots[i].segs);
	}
	free(b.slots);
	free(b.free_slots);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Preparing images */

static struct vhd *open_rw(const char *path)
{
	/* Preparation needs no durability: no fdatasync at each flush. */
	struct vhd_open_opts oo = { .flags = VHD_OPEN_RDWR | VHD_OPEN_NO_SYNC };
	struct vhd_error err = { 0 };
	struct vhd *v;

	if (vhd_open(path, &oo, &v, &err) < 0)
		die("%s", err.msg);
	return v;
}

static void create(const char *path, enum vhd_type type, uint64_t size,
		   const char *parent)
{
	struct vhd_create_opts co = { .type = type, .size = size,
				      .parent = parent };
	struct vhd_error err = { 0 };

	if (vhd_create(path, &co, &err) < 0)
		die("%s", err.msg);
}

/* vhd_pwrite() in pieces that end on 4 KiB boundaries: see PIECE. */
static ssize_t vhd_pwrite_pieces(struct vhd *v, const uint8_t *buf, size_t len,
				 uint64_t off)
{
	size_t done = 0;

	while (done < len) {
		size_t k = PIECE - (off + done) % PIECE;
		ssize_t r;

		if (k > len - done)
			k = len - done;
		r = vhd_pwrite(v, buf + done, k, off + done);
		if (r < 0)
			return r;
		done += k;
	}
	return (ssize_t)len;
}

static void close_vhd(struct vhd *v, const char *path)
{
	if (vhd_close(v) < 0)
		die("%s: closing failed", path);
}

/*
 * mkimage: a raw image of alternate runs of data and zeros, the zeros as
 * holes or written out as bytes (or no zeros at all), with the same data
 * in every form.
 */
static int cmd_mkimage(int argc, char **argv)
{
	static const char usage[] =
		"usage: vhd-iobench mkimage --size SIZE [--run SIZE] [--zeros holes|bytes|none]\n"
		"         [--seed N] FILE\n"
		"  alternate runs of random data and zeros (data first), default 2M runs.";
	static const struct option opts[] = {
		{ "size", required_argument, NULL, 's' },
		{ "run", required_argument, NULL, 'r' },
		{ "zeros", required_argument, NULL, 'z' },
		{ "seed", required_argument, NULL, 'e' },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t size = 0, run_len = 2u << 20, seed = 1;
	const char *zeros = "holes";
	uint8_t *buf;
	int c, fd;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 's')
			size = parse_size("--size", optarg);
		else if (c == 'r')
			run_len = parse_size("--run", optarg);
		else if (c == 'z')
			zeros = optarg;
		else if (c == 'e')
			seed = strtoull(optarg, NULL, 0);
		else
			die("%s", usage);
	}
	if (optind != argc - 1 || !size || size % SECTOR || !run_len ||
	    run_len % SECTOR || run_len > (64u << 20))
		die("%s", usage);
	if (strcmp(zeros, "holes") && strcmp(zeros, "bytes") && strcmp(zeros, "none"))
		die("--zeros: '%s' is not holes, bytes or none", zeros);
	fd = open(argv[optind], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		die("%s: %s", argv[optind], strerror(errno));
	buf = xalloc(run_len);
	for (uint64_t off = 0, i = 0; off < size; off += run_len, i++) {
		size_t n = size - off < run_len ? (size_t)(size - off) : run_len;
		bool data = !(i & 1) || !strcmp(zeros, "none");

		if (data) {
			fill_sectors(buf, off / SECTOR, n / SECTOR, seed);
			write_all(fd, buf, n, off, argv[optind]);
		} else if (!strcmp(zeros, "bytes")) {
			memset(buf, 0, n);
			write_all(fd, buf, n, off, argv[optind]);
		}
	}
	if (ftruncate(fd, (off_t)size) < 0 || close(fd) < 0)
		die("%s: %s", argv[optind], strerror(errno));
	free(buf);
	return 0;
}

/*
 * mkfull: a dynamic VHD holding a raw image with every block allocated,
 * zeros included, written through the asynchronous data path's calls
 * (vhd_map_for_write, a write to the file, vhd_write_done).
 */
static int cmd_mkfull(int argc, char **argv)
{
	const char *src = argv[1], *dst = argv[2];
	uint32_t bs;
	struct stat st;
	struct vhd *v;
	uint8_t *buf;
	int in;

	if (argc != 3)
		die("usage: vhd-iobench mkfull SRC.raw DST.vhd");
	in = open(src, O_RDONLY | O_CLOEXEC);
	if (in < 0 || fstat(in, &st) < 0)
		die("%s: %s", src, strerror(errno));
	create(dst, VHD_TYPE_DYNAMIC, ((uint64_t)st.st_size + SECTOR - 1) / SECTOR * SECTOR,
	       NULL);
	v = open_rw(dst);
	bs = vhd_block_size(v);
	buf = xalloc(bs);
	for (uint64_t off = 0; off < vhd_size(v); off += bs) {
		uint64_t n = vhd_size(v) - off < bs ? vhd_size(v) - off : bs;
		uint64_t fo;
		ssize_t got = pread(in, buf, n, (off_t)off);
		int r;

		if (got < 0)
			die("%s: %s", src, strerror(errno));
		memset(buf + got, 0, n - (uint64_t)got);
		r = vhd_map_for_write(v, off, n, &fo);
		if (r < 0)
			die("%s: allocating at %" PRIu64 ": %s", dst, off, strerror(-r));
		write_all(vhd_get_fd(v), buf, n, fo, dst);
		r = vhd_write_done(v, off, n);
		if (r < 0)
			die("%s: %s", dst, strerror(-r));
	}
	close_vhd(v, dst);
	close(in);
	free(buf);
	return 0;
}

/*
 * mkchain: a differencing chain LAYERS deep over a dynamic base, and a
 * raw file with the data the chain reads as.  Each block is cut into runs
 * of 1 to MAX_RUN (default 64) sectors; each run is written into one
 * layer, the base with weight 3 and each other layer with weight 1, so that
 * sector bitmaps are partly set in every layer and a 4 KiB read often
 * spans two layers.
 * One block in 32 is written nowhere and reads as zeros.
 */
#define CHAIN_MAX_LAYERS	16

struct run {
	uint32_t sector;	/* in the block */
	uint32_t len;
	int layer;		/* -1: nowhere */
};

static unsigned block_layout(uint64_t seed, uint64_t blk, uint32_t spb,
			     unsigned layers, uint32_t max_run, struct run *runs)
{
	uint64_t x = mix64(seed ^ (blk * 0x9e3779b97f4a7c15ull));
	unsigned n = 0;

	if (x % 32 == 0) {
		runs[0] = (struct run){ 0, spb, -1 };
		return 1;
	}
	for (uint32_t s = 0; s < spb; n++) {
		uint32_t len, pick;

		x = mix64(x);
		len = 1 + (uint32_t)(x % max_run);
		pick = (uint32_t)((x >> 32) % (layers + 2));
		if (len > spb - s)
			len = spb - s;
		runs[n] = (struct run){ s, len, pick < 3 ? 0 : (int)(pick - 2) };
		s += len;
	}
	return n;
}

/*
 * The layout --layout=snapshots: the chain a VM leaves behind, snapshot
 * after snapshot.  The base is written whole (an installed system); each
 * later layer holds the VM's writes between two snapshots: SNAP_WRITES
 * writes of 4 to 64 KiB at random 4 KiB-aligned offsets, about 1.5% of the
 * disk per layer.  Each layer writes its own bytes (the seed plus the
 * layer), so that reading a sector from the wrong layer shows.
 */
#define SNAP_WRITES_PER_GIB	480

static void snap_write(uint64_t seed, unsigned l, uint64_t i, uint64_t size,
		       uint64_t *sector, uint32_t *n)
{
	uint64_t x = mix64(seed ^ ((uint64_t)l << 40) ^ (i * 0x9e3779b97f4a7c15ull));
	uint64_t units = size / 4096;

	*sector = x % units * 8;
	*n = 8 * (1 + (uint32_t)((x >> 40) % 16));
	if (*sector + *n > size / SECTOR)
		*n = (uint32_t)(size / SECTOR - *sector);
}

static void mkchain_snapshots(const char *dir, uint64_t size, unsigned layers,
			      uint64_t seed)
{
	uint64_t nr = size / SECTOR, writes = SNAP_WRITES_PER_GIB * (size >> 30);
	uint8_t *owner = calloc(nr, 1);	/* the top layer writing each sector */
	uint8_t *buf = xalloc(128 * SECTOR);
	char path[PATH_MAX], parent[PATH_MAX];
	int fd;

	if (!writes)
		writes = SNAP_WRITES_PER_GIB / 4;
	if (!owner)
		die("out of memory");
	for (unsigned l = 0; l < layers; l++) {
		struct vhd *v;

		snprintf(path, sizeof(path), "%s/layer%u.vhd", dir, l);
		if (l == 0)
			create(path, VHD_TYPE_DYNAMIC, size, NULL);
		else
			create(path, VHD_TYPE_DIFF, 0, parent);
		v = open_rw(path);
		for (uint64_t i = 0; i < (l ? writes : nr / 128); i++) {
			uint64_t sector = i * 128;
			uint32_t n = 128;
			ssize_t r;

			if (l)
				snap_write(seed, l, i, size, &sector, &n);
			fill_sectors(buf, sector, n, seed + l);
			memset(owner + sector, (int)l, n);
			r = vhd_pwrite_pieces(v, buf, (size_t)n * SECTOR, sector * SECTOR);
			if (r < 0)
				die("%s: writing at sector %" PRIu64 ": %s", path, sector,
				    strerror((int)-r));
		}
		close_vhd(v, path);
		memcpy(parent, path, sizeof(parent));
	}
	snprintf(path, sizeof(path), "%s/flat.raw", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		die("%s: %s", path, strerror(errno));
	for (uint64_t s = 0; s < nr; s += 8) {
		for (unsigned k = 0; k < 8; k++)
			fill_sectors(buf + k * SECTOR, s + k, 1, seed + owner[s + k]);
		write_all(fd, buf, 8 * SECTOR, s * SECTOR, path);
	}
	if (close(fd) < 0)
		die("%s: %s", path, strerror(errno));
	free(owner);
	free(buf);
}

static int cmd_mkchain(int argc, char **argv)
{
	static const char usage[] =
		"usage: vhd-iobench mkchain --size SIZE [--layers N] [--max-run SECTORS]\n"
		"         [--layout runs|snapshots] [--seed N] DIR\n"
		"  DIR/layer0.vhd (dynamic) .. DIR/layer<N-1>.vhd (differencing, the top)\n"
		"  and DIR/flat.raw, the same data as a raw file.  runs: every block cut\n"
		"  into runs of 1-MAX_RUN sectors, each in a random layer; snapshots: a\n"
		"  whole base and scattered 4-64 KiB writes in each later layer.";
	static const struct option opts[] = {
		{ "size", required_argument, NULL, 's' },
		{ "layers", required_argument, NULL, 'l' },
		{ "seed", required_argument, NULL, 'e' },
		{ "max-run", required_argument, NULL, 'm' },
		{ "layout", required_argument, NULL, 'L' },
		{ NULL, 0, NULL, 0 },
	};
	bool snapshots = false;
	uint64_t size = 0, seed = 7, nr_blocks;
	uint32_t max_run = 64;
	unsigned layers = 8;
	char path[PATH_MAX], parent[PATH_MAX];
	const uint32_t bs = VHD_DEFAULT_BLOCK_SIZE, spb = bs / SECTOR;
	struct run *runs = calloc(spb, sizeof(*runs));
	uint8_t *buf;
	int c, fd;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 's')
			size = parse_size("--size", optarg);
		else if (c == 'l')
			layers = (unsigned)strtoul(optarg, NULL, 0);
		else if (c == 'e')
			seed = strtoull(optarg, NULL, 0);
		else if (c == 'm')
			max_run = (uint32_t)strtoul(optarg, NULL, 0);
		else if (c == 'L' && (!strcmp(optarg, "runs") || !strcmp(optarg, "snapshots")))
			snapshots = !strcmp(optarg, "snapshots");
		else
			die("%s", usage);
	}
	if (optind != argc - 1 || !size || size % bs || !layers || !max_run ||
	    max_run > spb || layers > CHAIN_MAX_LAYERS || !runs)
		die("%s", usage);
	if (snapshots) {
		mkchain_snapshots(argv[optind], size, layers, seed);
		free(runs);
		return 0;
	}
	buf = xalloc((size_t)max_run * SECTOR);
	nr_blocks = size / bs;
	for (unsigned l = 0; l < layers; l++) {
		struct vhd *v;

		snprintf(path, sizeof(path), "%s/layer%u.vhd", argv[optind], l);
		if (l == 0)
			create(path, VHD_TYPE_DYNAMIC, size, NULL);
		else
			create(path, VHD_TYPE_DIFF, 0, parent);
		v = open_rw(path);
		for (uint64_t blk = 0; blk < nr_blocks; blk++) {
			unsigned n = block_layout(seed, blk, spb, layers, max_run, runs);

			for (unsigned i = 0; i < n; i++) {
				uint64_t sector = blk * spb + runs[i].sector;
				ssize_t r;

				if (runs[i].layer != (int)l)
					continue;
				fill_sectors(buf, sector, runs[i].len, seed);
				r = vhd_pwrite_pieces(v, buf, (size_t)runs[i].len * SECTOR,
						      sector * SECTOR);
				if (r < 0)
					die("%s: writing at sector %" PRIu64 ": %s",
					    path, sector, strerror((int)-r));
			}
		}
		close_vhd(v, path);
		memcpy(parent, path, sizeof(parent));
	}
	snprintf(path, sizeof(path), "%s/flat.raw", argv[optind]);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || ftruncate(fd, (off_t)size) < 0)
		die("%s: %s", path, strerror(errno));
	for (uint64_t blk = 0; blk < nr_blocks; blk++) {
		unsigned n = block_layout(seed, blk, spb, layers, max_run, runs);

		for (unsigned i = 0; i < n; i++) {
			uint64_t sector = blk * spb + runs[i].sector;

			if (runs[i].layer < 0)
				continue;
			fill_sectors(buf, sector, runs[i].len, seed);
			write_all(fd, buf, (size_t)runs[i].len * SECTOR,
				  sector * SECTOR, path);
		}
	}
	if (close(fd) < 0)
		die("%s: %s", path, strerror(errno));
	free(runs);
	free(buf);
	return 0;
}

/* alloc: one sector written into each of N blocks spread over the disk. */
static int cmd_alloc(int argc, char **argv)
{
	uint64_t n, nr_blocks;
	uint8_t *buf = xalloc(SECTOR);
	const char *path;
	struct vhd *v;
	uint32_t bs;

	if (argc != 3)
		die("usage: vhd-iobench alloc NR_BLOCKS FILE.vhd");
	n = strtoull(argv[1], NULL, 0);
	path = argv[2];
	v = open_rw(path);
	bs = vhd_block_size(v);
	if (!bs)
		die("%s: not a dynamic or differencing disk", path);
	nr_blocks = (vhd_size(v) + bs - 1) / bs;
	if (n > nr_blocks)
		die("%s: has only %" PRIu64 " blocks", path, nr_blocks);
	memset(buf, 0x5a, SECTOR);
	for (uint64_t i = 0; i < n; i++) {
		uint64_t blk = i * nr_blocks / n;
		ssize_t r = vhd_pwrite(v, buf, SECTOR, blk * bs);

		if (r < 0)
			die("%s: writing block %" PRIu64 ": %s", path, blk,
			    strerror((int)-r));
	}
	close_vhd(v, path);
	free(buf);
	return 0;
}

int main(int argc, char **argv)
{
	static const char usage[] =
		"usage: vhd-iobench bench|mkimage|mkfull|mkchain|alloc ARGS (--help for each)";

	if (argc < 2) {
		fprintf(stderr, "%s\n", usage);
		return 2;
	}
	if (!strcmp(argv[1], "bench"))
		return cmd_bench(argc - 1, argv + 1);
	if (!strcmp(argv[1], "mkimage"))
		return cmd_mkimage(argc - 1, argv + 1);
	if (!strcmp(argv[1], "mkfull"))
		return cmd_mkfull(argc - 1, argv + 1);
	if (!strcmp(argv[1], "mkchain"))
		return cmd_mkchain(argc - 1, argv + 1);
	if (!strcmp(argv[1], "alloc"))
		return cmd_alloc(argc - 1, argv + 1);
	fprintf(stderr, "%s\n", usage);
	return 2;
}
