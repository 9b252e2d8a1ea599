// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The saved-state container (savefile.h): sections with XXH3-64 checksums
 * (libxxhash: tens of GB/s, so that checking costs little beside the
 * writing), a table, and a header written last.  Fields are
 * little-endian at fixed offsets.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "savefile.h"

static const char magic[8] = "VSRVSAVE";

/* Header offsets. */
#define H_MAGIC		0
#define H_VERSION	8
#define H_HEADER_SIZE	12
#define H_FILE_SIZE	16
#define H_TABLE_OFF	24
#define H_NR		32
#define H_TABLE_SUM	40
#define H_VSRV		48	/* 32 bytes, NUL-padded */
#define H_CREATED	80
#define H_SUM		88	/* XXH3-64 of bytes 0-87 */
#define ENTRY_SIZE	40	/* tag, index, offset, length, checksum, 0 */

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int pwrite_all(int fd, const void *p, size_t len, uint64_t off)
{
	while (len) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		p = (const uint8_t *)p + n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

/* --- writing --- */

int sf_writer_init(struct sf_writer *w, int fd)
{
	memset(w, 0, sizeof(*w));
	w->fd = fd;
	w->off = SAVEFILE_ALIGN;
	w->hash = XXH3_createState();
	return w->hash ? 0 : -ENOMEM;
}

void sf_writer_free(struct sf_writer *w)
{
	free(w->secs);
	XXH3_freeState(w->hash);
	memset(w, 0, sizeof(*w));
}

int sf_begin(struct sf_writer *w, const char *tag, uint32_t index)
{
	struct sf_section *s;

	if (w->open || w->nr == SAVEFILE_SECTIONS_MAX)
		return -EINVAL;
	s = realloc(w->secs, (w->nr + 1) * sizeof(*s));
	if (!s)
		return -ENOMEM;
	w->secs = s;
	s = &w->secs[w->nr];
	memset(s, 0, sizeof(*s));
	memcpy(s->tag, tag, 4);
	s->index = index;
	s->offset = w->off;
	XXH3_64bits_reset(w->hash);
	w->open = true;
	return 0;
}

/* All of iov at the writer's offset, going on after short writes. */
static int pwritev_all(struct sf_writer *w, struct iovec *iov, int n)
{
	while (n) {
		ssize_t k = pwritev(w->fd, iov, n, (off_t)w->off);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return k < 0 ? -errno : -EIO;
		w->off += (uint64_t)k;
		while (n && (size_t)k >= iov->iov_len) {
			k -= (ssize_t)iov->iov_len;
			iov++;
			n--;
		}
		if (k) {
			iov->iov_base = (uint8_t *)iov->iov_base + k;
			iov->iov_len -= (size_t)k;
		}
	}
	return 0;
}

int sf_writev(struct sf_writer *w, const struct iovec *iov, int n)
{
	struct iovec piece[SF_PIECE_IOV];
	size_t done = 0;	/* of iov[0] */

	/*
	 * A piece at a time, each hashed and then written while it is still
	 * in the CPU's caches: hashing a whole batch first (up to 64 MiB a
	 * run of pages) and then copying it into the page cache read it from
	 * memory twice.
	 */
	while (n) {
		size_t len = 0;
		int k = 0, r;

		while (n && k < SF_PIECE_IOV && len < SF_PIECE) {
			size_t take = iov->iov_len - done;

			if (take > SF_PIECE - len)
				take = SF_PIECE - len;
			piece[k++] = (struct iovec){ (uint8_t *)iov->iov_base + done, take };
			len += take;
			done += take;
			if (done == iov->iov_len) {
				iov++;
				n--;
				done = 0;
			}
		}
		for (int i = 0; i < k; i++)
			XXH3_64bits_update(w->hash, piece[i].iov_base, piece[i].iov_len);
		r = pwritev_all(w, piece, k);
		if (r < 0)
			return r;
	}
	return 0;
}

int sf_write(struct sf_writer *w, const void *p, size_t len)
{
	struct iovec iov = { (void *)p, len };

	return len ? sf_writev(w, &iov, 1) : 0;
}

int sf_end(struct sf_writer *w)
{
	struct sf_section *s = &w->secs[w->nr];

	if (!w->open)
		return -EINVAL;
	s->length = w->off - s->offset;
	s->checksum = XXH3_64bits_digest(w->hash);
	w->nr++;
	w->open = false;
	w->off = (w->off + SAVEFILE_ALIGN - 1) / SAVEFILE_ALIGN * SAVEFILE_ALIGN;
	return 0;
}

int sf_finish(struct sf_writer *w, const char *vsrv_version, uint64_t *bytes)
{
	size_t tlen = (size_t)w->nr * ENTRY_SIZE;
	uint8_t *t = calloc(1, tlen ? tlen : 1), h[SAVEFILE_ALIGN] = { 0 };
	uint64_t table_off = w->off;
	int r;

	if (!t)
		return -ENOMEM;
	for (unsigned i = 0; i < w->nr; i++) {
		uint8_t *e = t + (size_t)i * ENTRY_SIZE;

		memcpy(e, w->secs[i].tag, 4);
		put32(e + 4, w->secs[i].index);
		put64(e + 8, w->secs[i].offset);
		put64(e + 16, w->secs[i].length);
		put64(e + 24, w->secs[i].checksum);
	}
	r = pwrite_all(w->fd, t, tlen, table_off);
	memcpy(h + H_MAGIC, magic, 8);
	put32(h + H_VERSION, SAVEFILE_VERSION);
	put32(h + H_HEADER_SIZE, SAVEFILE_ALIGN);
	put64(h + H_FILE_SIZE, table_off + tlen);
	put64(h + H_TABLE_OFF, table_off);
	put32(h + H_NR, w->nr);
	put64(h + H_TABLE_SUM, XXH3_64bits(t, tlen));
	snprintf((char *)h + H_VSRV, 32, "%s", vsrv_version);
	put64(h + H_CREATED, (uint64_t)time(NULL));
	put64(h + H_SUM, XXH3_64bits(h, H_SUM));
	free(t);
	/* The header last: until it is there, the file is no saved state. */
	if (r >= 0)
		r = pwrite_all(w->fd, h, sizeof(h), 0);
	if (r >= 0)
		*bytes = table_off + tlen;
	return r;
}

/* --- reading --- */

static int refuse(char *err, size_t errlen, int r, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int refuse(char *err, size_t errlen, int r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return r;
}

int sf_pread(struct sf_reader *r, void *p, size_t len, uint64_t off, char *err, size_t errlen)
{
	while (len) {
		ssize_t n = pread(r->fd, p, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return refuse(err, errlen, -errno, "%s: %s", r->path, strerror(errno));
		if (n == 0)
			return refuse(err, errlen, -EIO, "%s: truncated", r->path);
		p = (uint8_t *)p + n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

int sf_open(struct sf_reader *r, const char *path, char *err, size_t errlen)
{
	uint8_t h[SAVEFILE_ALIGN], *t = NULL;
	uint64_t table_off, file_size;
	struct stat st;
	uint32_t version;
	int e;

	memset(r, 0, sizeof(*r));
	r->path = path;
	r->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (r->fd < 0)
		return refuse(err, errlen, -errno, "%s: %s", path, strerror(errno));
	if (fstat(r->fd, &st) < 0) {
		e = refuse(err, errlen, -errno, "%s: %s", path, strerror(errno));
		goto fail;
	}
	r->size = (uint64_t)st.st_size;
	memset(h, 0, sizeof(h));
	if (r->size < H_SUM + 8 ||
	    sf_pread(r, h, sizeof(h) < r->size ? sizeof(h) : (size_t)r->size, 0, err, errlen) < 0 ||
	    memcmp(h, magic, 8)) {
		e = refuse(err, errlen, -EINVAL, "%s: not a vsrv saved state", path);
		goto fail;
	}
	version = get32(h + H_VERSION);
	if (version != SAVEFILE_VERSION) {
		e = refuse(err, errlen, -EINVAL,
			   "%s: a saved state of format %u; this vsrv reads format %u", path,
			   version, SAVEFILE_VERSION);
		goto fail;
	}
	if (get64(h + H_SUM) != XXH3_64bits(h, H_SUM)) {
		e = refuse(err, errlen, -EINVAL, "%s: corrupt: the header's checksum does not match",
			   path);
		goto fail;
	}
	file_size = get64(h + H_FILE_SIZE);
	if (r->size < file_size) {
		e = refuse(err, errlen, -EINVAL, "%s: truncated: %llu bytes of %llu", path,
			   (unsigned long long)r->size, (unsigned long long)file_size);
		goto fail;
	}
	memcpy(r->version, h + H_VSRV, 32);
	r->version[32] = '\0';
	r->nr = get32(h + H_NR);
	table_off = get64(h + H_TABLE_OFF);
	if (r->nr > SAVEFILE_SECTIONS_MAX || table_off < SAVEFILE_ALIGN ||
	    table_off + (uint64_t)r->nr * ENTRY_SIZE != file_size) {
		e = refuse(err, errlen, -EINVAL, "%s: corrupt: its table of sections is not where "
			   "the header says", path);
		goto fail;
	}
	t = malloc(r->nr * ENTRY_SIZE + 1);
	r->secs = calloc(r->nr + 1, sizeof(*r->secs));
	if (!t || !r->secs) {
		e = refuse(err, errlen, -ENOMEM, "%s: out of memory", path);
		goto fail;
	}
	e = sf_pread(r, t, r->nr * ENTRY_SIZE, table_off, err, errlen);
	if (e < 0)
		goto fail;
	if (XXH3_64bits(t, r->nr * ENTRY_SIZE) != get64(h + H_TABLE_SUM)) {
		e = refuse(err, errlen, -EINVAL, "%s: corrupt: the table's checksum does not match",
			   path);
		goto fail;
	}
	for (unsigned i = 0; i < r->nr; i++) {
		const uint8_t *p = t + (size_t)i * ENTRY_SIZE;
		struct sf_section *s = &r->secs[i];

		memcpy(s->tag, p, 4);
		s->index = get32(p + 4);
		s->offset = get64(p + 8);
		s->length = get64(p + 16);
		s->checksum = get64(p + 24);
		if (s->offset < SAVEFILE_ALIGN || s->offset > table_off ||
		    s->length > table_off - s->offset) {
			e = refuse(err, errlen, -EINVAL, "%s: corrupt: section %u lies outside the file",
				   path, i);
			goto fail;
		}
	}
	free(t);
	return 0;
fail:
	free(t);
	sf_close(r);
	return e;
}

void sf_close(struct sf_reader *r)
{
	if (r->fd >= 0)
		close(r->fd);
	free(r->secs);
	r->fd = -1;
	r->secs = NULL;
}

const struct sf_section *sf_find(const struct sf_reader *r, const char *tag, uint32_t index)
{
	for (unsigned i = 0; i < r->nr; i++)
		if (!memcmp(r->secs[i].tag, tag, 4) && r->secs[i].index == index)
			return &r->secs[i];
	return NULL;
}

int sf_corrupt(struct sf_reader *r, const struct sf_section *s, char *err, size_t errlen)
{
	int n = 4;

	while (n > 1 && s->tag[n - 1] == ' ')
		n--;
	return refuse(err, errlen, -EINVAL,
		      "%s: corrupt: section %.*s %u's checksum does not match", r->path, n, s->tag,
		      s->index);
}

int sf_read(struct sf_reader *r, const struct sf_section *s, uint8_t **buf, char *err,
	    size_t errlen)
{
	int e;

	/* The sections read whole are small (a vCPU's registers, a
	 * device's state): a length past this is damage. */
	if (s->length > (64u << 20))
		return refuse(err, errlen, -EINVAL, "%s: corrupt: section %s %u is %llu bytes",
			      r->path, s->tag, s->index, (unsigned long long)s->length);
	*buf = malloc(s->length + 1);
	if (!*buf)
		return refuse(err, errlen, -ENOMEM, "%s: out of memory", r->path);
	e = sf_pread(r, *buf, s->length, s->offset, err, errlen);
	if (e >= 0 && XXH3_64bits(*buf, s->length) != s->checksum)
		e = sf_corrupt(r, s, err, errlen);
	if (e < 0) {
		free(*buf);
		*buf = NULL;
		return e;
	}
	(*buf)[s->length] = '\0';
	return 0;
}
