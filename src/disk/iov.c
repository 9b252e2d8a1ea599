// SPDX-License-Identifier: GPL-2.0-or-later
/* Scatter-gather lists: a guest's buffers arrive as many pieces, and a
 * backend sends different ranges of them to different files. */
#include <string.h>

#include "disk-private.h"

/* Written by no one: aligned so that O_DIRECT may write from it. */
static const uint8_t zeros[64 << 10] __attribute__((aligned(DISK_ALIGN)));

size_t iov_length(const struct iovec *iov, unsigned cnt)
{
	size_t n = 0;

	for (unsigned i = 0; i < cnt; i++)
		n += iov[i].iov_len;
	return n;
}

/* Calls fn on each piece of [off, off + len) of the vector. */
static unsigned iov_walk(const struct iovec *iov, unsigned cnt, size_t off,
			 size_t len, void (*fn)(void *arg, unsigned i, void *p, size_t k),
			 void *arg)
{
	unsigned n = 0;

	for (unsigned i = 0; i < cnt && len; i++) {
		size_t k;

		if (off >= iov[i].iov_len) {
			off -= iov[i].iov_len;
			continue;
		}
		k = iov[i].iov_len - off;
		if (k > len)
			k = len;
		fn(arg, n++, (uint8_t *)iov[i].iov_base + off, k);
		len -= k;
		off = 0;
	}
	return n;
}

static void slice_piece(void *arg, unsigned i, void *p, size_t k)
{
	struct iovec *out = arg;

	if (out)
		out[i] = (struct iovec){ p, k };
}

unsigned iov_slice(const struct iovec *iov, unsigned cnt, size_t off,
		   size_t len, struct iovec *out)
{
	return iov_walk(iov, cnt, off, len, slice_piece, out);
}

static void zero_piece(void *arg, unsigned i, void *p, size_t k)
{
	memset(p, 0, k);
}

void iov_zero(const struct iovec *iov, unsigned cnt, size_t off, size_t len)
{
	iov_walk(iov, cnt, off, len, zero_piece, NULL);
}

void iov_to_buf(const struct iovec *iov, unsigned cnt, void *buf)
{
	uint8_t *p = buf;

	for (unsigned i = 0; i < cnt; i++) {
		memcpy(p, iov[i].iov_base, iov[i].iov_len);
		p += iov[i].iov_len;
	}
}

void iov_from_buf(const struct iovec *iov, unsigned cnt, const void *buf)
{
	const uint8_t *p = buf;

	for (unsigned i = 0; i < cnt; i++) {
		memcpy(iov[i].iov_base, p, iov[i].iov_len);
		p += iov[i].iov_len;
	}
}

void iov_advance(struct aio_op *op, size_t n)
{
	int i = 0;

	while (i < op->iovcnt && n >= op->iov[i].iov_len)
		n -= op->iov[i++].iov_len;
	memmove(op->iov, op->iov + i, (size_t)(op->iovcnt - i) * sizeof(op->iov[0]));
	op->iovcnt -= i;
	if (n) {
		op->iov[0].iov_base = (uint8_t *)op->iov[0].iov_base + n;
		op->iov[0].iov_len -= n;
	}
}

/* O_DIRECT takes each piece's address aligned to the device's DMA
 * alignment and its length to the logical block. */
bool iov_aligned(const struct iovec *iov, unsigned cnt, unsigned mem_align)
{
	for (unsigned i = 0; i < cnt; i++)
		if ((uintptr_t)iov[i].iov_base % mem_align ||
		    iov[i].iov_len % DISK_SECTOR_SIZE)
			return false;
	return true;
}

size_t iov_zeros(struct iovec *out, unsigned max, uint64_t len, unsigned *cnt)
{
	size_t done = 0;
	unsigned n = 0;

	while (n < max && done < len) {
		size_t k = len - done < sizeof(zeros) ? (size_t)(len - done) : sizeof(zeros);

		out[n++] = (struct iovec){ (void *)zeros, k };
		done += k;
	}
	*cnt = n;
	return done;
}
