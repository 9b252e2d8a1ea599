// SPDX-License-Identifier: GPL-2.0-or-later
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "memfile.h"

static struct memfile *mf(struct vhd_file *f)
{
	return (struct memfile *)f;
}

static void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n);
	if (!p)
		abort();
	return p;
}

static void resize(struct memfile *m, uint64_t size)
{
	if (size > m->cap) {
		uint64_t cap = m->cap ? m->cap : 4096;

		while (cap < size)
			cap *= 2;
		m->data = xrealloc(m->data, cap);
		m->cap = cap;
	}
	if (size > m->size)
		memset(m->data + m->size, 0, size - m->size);
	m->size = size;
}

static void log_op(struct memfile *m, enum mem_op_kind kind, uint64_t off,
		   uint64_t len, const void *data, uint64_t mark)
{
	struct mem_op *op;

	if (!m->record)
		return;
	if (m->nr_ops == m->cap_ops) {
		m->cap_ops = m->cap_ops ? m->cap_ops * 2 : 256;
		m->ops = xrealloc(m->ops, m->cap_ops * sizeof(*m->ops));
	}
	op = &m->ops[m->nr_ops++];
	op->kind = kind;
	op->off = off;
	op->len = len;
	op->mark = mark;
	op->data = NULL;
	if (data) {
		op->data = xrealloc(NULL, len ? len : 1);
		memcpy(op->data, data, len);
	}
}

void memfile_write(struct memfile *m, const void *buf, uint64_t len,
		   uint64_t off)
{
	if (off + len > m->size)
		resize(m, off + len);
	memcpy(m->data + off, buf, len);
}

static ssize_t m_pread(struct vhd_file *f, void *buf, size_t len, uint64_t off)
{
	struct memfile *m = mf(f);

	if (off >= m->size)
		return 0;
	if (len > m->size - off)
		len = m->size - off;
	memcpy(buf, m->data + off, len);
	return (ssize_t)len;
}

static ssize_t m_pwrite(struct vhd_file *f, const void *buf, size_t len,
			uint64_t off)
{
	struct memfile *m = mf(f);

	log_op(m, MEM_WRITE, off, len, buf, 0);
	memfile_write(m, buf, len, off);
	return (ssize_t)len;
}

static int m_flush(struct vhd_file *f)
{
	struct memfile *m = mf(f);

	log_op(m, MEM_FLUSH, 0, 0, NULL, 0);
	m->nr_flushes++;
	return 0;
}

static int m_get_size(struct vhd_file *f, uint64_t *size)
{
	*size = mf(f)->size;
	return 0;
}

static int m_truncate(struct vhd_file *f, uint64_t size)
{
	struct memfile *m = mf(f);

	log_op(m, MEM_TRUNCATE, size, 0, NULL, 0);
	resize(m, size);
	return 0;
}

static void punch(struct memfile *m, uint64_t off, uint64_t len)
{
	if (off >= m->size)
		return;
	if (len > m->size - off)
		len = m->size - off;
	memset(m->data + off, 0, len);
}

static int m_punch_hole(struct vhd_file *f, uint64_t off, uint64_t len)
{
	struct memfile *m = mf(f);

	log_op(m, MEM_PUNCH, off, len, NULL, 0);
	punch(m, off, len);
	return 0;
}

static void m_close(struct vhd_file *f)
{
}

static const struct vhd_file_ops mem_ops = {
	.pread = m_pread,
	.pwrite = m_pwrite,
	.flush = m_flush,
	.get_size = m_get_size,
	.truncate = m_truncate,
	.punch_hole = m_punch_hole,
	.close = m_close,
};

struct memfile *memfile_new(const void *init, uint64_t len)
{
	struct memfile *m = calloc(1, sizeof(*m));

	if (!m)
		abort();
	m->base.ops = &mem_ops;
	memfile_reset(m, init, len);
	return m;
}

void memfile_reset(struct memfile *m, const void *init, uint64_t len)
{
	/* Reuses the buffer: crash tests copy images thousands of times. */
	if (len > m->cap) {
		free(m->data);
		m->data = xrealloc(NULL, len);
		m->cap = len;
	}
	if (init && len)
		memcpy(m->data, init, len);
	else if (len)
		memset(m->data, 0, len);
	m->size = len;
}

void memfile_free(struct memfile *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->nr_ops; i++)
		free(m->ops[i].data);
	free(m->ops);
	free(m->data);
	free(m);
}

void memfile_mark(struct memfile *m, uint64_t mark)
{
	log_op(m, MEM_MARK, 0, 0, NULL, mark);
}

void memfile_apply(struct memfile *m, const struct mem_op *op)
{
	switch (op->kind) {
	case MEM_WRITE:
		memfile_write(m, op->data, op->len, op->off);
		break;
	case MEM_TRUNCATE:
		resize(m, op->off);
		break;
	case MEM_PUNCH:
		punch(m, op->off, op->len);
		break;
	case MEM_FLUSH:
	case MEM_MARK:
		break;
	}
}
