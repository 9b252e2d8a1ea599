// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vhdtool: writes and reads the contents of a VHD for the integration
 * tests, through libvhd alone, so that the tests need no convert command.
 *
 *   vhdtool [OPTIONS] write FILE OFFSET LENGTH SEED
 *   vhdtool [OPTIONS] zero FILE OFFSET LENGTH
 *   vhdtool [OPTIONS] read FILE OFFSET LENGTH      (raw bytes to stdout)
 *   vhdtool [OPTIONS] dump FILE OUT.raw            (the whole virtual disk)
 *
 * OPTIONS: --ignore-checksums, --ignore-parent-id, --unmap (zero: let
 * wholly zeroed ranges become holes).  OFFSET and LENGTH take K/M/G
 * suffixes and need not be sector multiples: partial sectors are read,
 * patched and written back, as a guest's odd-sized write would be.
 *
 * The pattern of `write` is pattern_bytes() below; tests/integration's
 * vhdpattern() computes the same bytes, so a test knows what it wrote.
 * Errors print the library's one-line message and exit 1.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vhd.h"

#define CHUNK	(1u << 20)

/*
 * splitmix64 as a stream: each 8 bytes are the next output, little-endian.
 * Chosen because it is tiny, has no bias a test could trip on and is cheap
 * to mirror in Python.
 */
struct pattern {
	uint64_t state;
	uint8_t word[8];
	unsigned used;		/* bytes of word already handed out */
};

static uint64_t splitmix64(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void pattern_bytes(struct pattern *p, uint8_t *out, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (p->used == 8 || p->used == 0) {
			uint64_t z = splitmix64(&p->state);

			for (int k = 0; k < 8; k++)
				p->word[k] = (uint8_t)(z >> (8 * k));
			p->used = 0;
		}
		out[i] = p->word[p->used++];
	}
}

static const char *prog = "vhdtool";

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 1;
}

static int fail_vhd(const char *file, int r, const struct vhd_error *err)
{
	if (err && err->code && err->msg[0])
		fprintf(stderr, "%s: %s\n", prog, err->msg);
	else
		fprintf(stderr, "%s: %s: %s\n", prog, file, strerror(-r));
	return 1;
}

static void warn_cb(void *opaque, const char *msg)
{
	fprintf(stderr, "%s: warning: %s\n", prog, msg);
}

static int parse_u64(const char *what, const char *s, uint64_t *out)
{
	if (vhd_parse_size(s, out) < 0) {
		fail("%s: '%s' is not a size", what, s);
		return -EINVAL;
	}
	return 0;
}

/*
 * The next piece of [off, off + len): at most CHUNK bytes, n of them from
 * off, which lie `head` bytes into the whole sectors [start, start + cover).
 */
struct piece {
	uint64_t start, head, n, cover;
};

static struct piece next_piece(uint64_t off, uint64_t len)
{
	struct piece p;

	p.start = off & ~(uint64_t)(VHD_SECTOR_SIZE - 1);
	p.head = off - p.start;
	p.n = len < CHUNK - p.head ? len : CHUNK - p.head;
	p.cover = (p.head + p.n + VHD_SECTOR_SIZE - 1) &
		  ~(uint64_t)(VHD_SECTOR_SIZE - 1);
	return p;
}

/* A write of the pattern (or of zeros) over a byte range. */
struct range_op {
	struct vhd *v;
	uint8_t *buf;
	struct pattern pat;
	bool zero;
	bool unmap;
};

static int write_range(struct range_op *op, uint64_t off, uint64_t len)
{
	while (len) {
		struct piece p = next_piece(off, len);
		uint64_t start = p.start, head = p.head, n = p.n, cover = p.cover;
		ssize_t r;

		if (op->zero && !head && n == cover) {
			/* Whole sectors: the library's zeroing path, which
			 * keeps unallocated blocks unallocated. */
			r = vhd_pwrite_zeroes(op->v, off, n, op->unmap);
			if (r < 0)
				return (int)r;
			off += n;
			len -= n;
			continue;
		}
		if (head || n != cover) {
			/* A partial sector: read it, patch, write it back. */
			r = vhd_pread(op->v, op->buf, cover, start);
			if (r < 0)
				return (int)r;
		}
		if (op->zero)
			memset(op->buf + head, 0, n);
		else
			pattern_bytes(&op->pat, op->buf + head, n);
		r = vhd_pwrite(op->v, op->buf, cover, start);
		if (r < 0)
			return (int)r;
		off += n;
		len -= n;
	}
	return 0;
}

static int read_range(struct vhd *v, uint8_t *buf, uint64_t off, uint64_t len)
{
	while (len) {
		struct piece p = next_piece(off, len);
		ssize_t r = vhd_pread(v, buf, p.cover, p.start);

		if (r < 0)
			return (int)r;
		if (fwrite(buf + p.head, 1, p.n, stdout) != p.n)
			return -EIO;
		off += p.n;
		len -= p.n;
	}
	return fflush(stdout) ? -EIO : 0;
}

static bool is_zero(const uint8_t *p, size_t n)
{
	return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

/* Writes only the data extents, and of those only what is not zeros: the
 * raw file stays sparse where the disk reads as zeros, so dumping a large
 * empty disk costs little. */
static int dump(struct vhd *v, uint8_t *buf, const char *out)
{
	uint64_t size = vhd_size(v), off = 0;
	int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	int r = 0;

	if (fd < 0)
		return -errno;
	while (off < size && r >= 0) {
		struct vhd_extent e;

		r = vhd_map(v, off, size - off, &e);
		if (r >= 0 && !e.len)
			r = -EIO;
		if (r < 0)
			break;
		for (uint64_t done = 0; e.kind == VHD_EXT_DATA && done < e.len;) {
			size_t n = e.len - done < CHUNK ? (size_t)(e.len - done) : CHUNK;
			ssize_t k = vhd_pread(v, buf, n, off + done);

			if (k < 0) {
				r = (int)k;
				break;
			}
			/* Zeros stay holes: a fixed disk maps as all data. */
			if (!is_zero(buf, n) &&
			    pwrite(fd, buf, n, (off_t)(off + done)) != (ssize_t)n) {
				r = -errno;
				break;
			}
			done += n;
		}
		off += e.len;
	}
	if (r >= 0 && ftruncate(fd, (off_t)size) < 0)
		r = -errno;
	if (close(fd) < 0 && r >= 0)
		r = -errno;
	return r;
}

static const char usage[] =
	"usage: vhdtool [--ignore-checksums] [--ignore-parent-id] [--unmap] COMMAND ...\n"
	"  write FILE OFFSET LENGTH SEED\n"
	"  zero FILE OFFSET LENGTH\n"
	"  read FILE OFFSET LENGTH\n"
	"  dump FILE OUT.raw\n";

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "ignore-checksums", no_argument, NULL, 'c' },
		{ "ignore-parent-id", no_argument, NULL, 'p' },
		{ "unmap", no_argument, NULL, 'u' },
		{ NULL, 0, NULL, 0 },
	};
	struct vhd_open_opts oo = { .warn = warn_cb };
	struct vhd_error err = { 0 };
	struct range_op op = { 0 };
	const char *cmd, *file;
	uint64_t off = 0, len = 0, seed = 0;
	struct vhd *v;
	int c, r, nargs;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'c')
			oo.flags |= VHD_OPEN_IGNORE_CHECKSUMS;
		else if (c == 'p')
			oo.flags |= VHD_OPEN_IGNORE_PARENT_ID;
		else if (c == 'u')
			op.unmap = true;
		else {
			fputs(usage, stderr);
			return 2;
		}
	}
	if (argc - optind < 3) {
		fputs(usage, stderr);
		return 2;
	}
	cmd = argv[optind];
	file = argv[optind + 1];
	if (!strcmp(cmd, "write"))
		nargs = 5;
	else if (!strcmp(cmd, "zero") || !strcmp(cmd, "read"))
		nargs = 4;
	else if (!strcmp(cmd, "dump"))
		nargs = 3;
	else
		return fail("unknown command '%s'", cmd);
	if (argc - optind != nargs) {
		fputs(usage, stderr);
		return 2;
	}
	if (nargs >= 4 && (parse_u64("OFFSET", argv[optind + 2], &off) < 0 ||
			   parse_u64("LENGTH", argv[optind + 3], &len) < 0))
		return 2;
	if (nargs == 5) {
		char *end;

		errno = 0;
		seed = strtoull(argv[optind + 4], &end, 0);
		if (errno || *end || end == argv[optind + 4])
			return fail("SEED: '%s' is not a number", argv[optind + 4]);
	}
	if (strcmp(cmd, "read") && strcmp(cmd, "dump"))
		oo.flags |= VHD_OPEN_RDWR;
	r = vhd_open(file, &oo, &v, &err);
	if (r < 0)
		return fail_vhd(file, r, &err);
	if (nargs >= 4 && (off > vhd_size(v) || len > vhd_size(v) - off)) {
		uint64_t size = vhd_size(v);

		vhd_close(v);
		return fail("%s: range %llu+%llu is outside the disk (%llu bytes)",
			    file, (unsigned long long)off,
			    (unsigned long long)len, (unsigned long long)size);
	}
	op.v = v;
	op.buf = malloc(CHUNK + 2 * VHD_SECTOR_SIZE);
	op.pat.state = seed;
	op.zero = !strcmp(cmd, "zero");
	if (!op.buf) {
		r = -ENOMEM;
	} else if (!strcmp(cmd, "read")) {
		r = read_range(v, op.buf, off, len);
	} else if (!strcmp(cmd, "dump")) {
		r = dump(v, op.buf, argv[optind + 2]);
	} else {
		r = write_range(&op, off, len);
		if (r >= 0)
			r = vhd_flush(v);
	}
	free(op.buf);
	c = vhd_close(v);
	if (r >= 0)
		r = c;
	if (r < 0)
		return fail("%s: %s", file, strerror(-r));
	return 0;
}
