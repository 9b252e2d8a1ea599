/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * An in-memory struct vhd_file for tests, which can record every write,
 * truncate, hole punch and flush that libvhd issues, for the
 * crash-consistency test to replay as a power loss could leave them.
 */
#ifndef MEMFILE_H
#define MEMFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vhd.h"

enum mem_op_kind {
	MEM_WRITE,
	MEM_TRUNCATE,
	MEM_PUNCH,
	MEM_FLUSH,
	MEM_MARK,	/* a test's own marker; changes nothing */
};

struct mem_op {
	enum mem_op_kind kind;
	uint64_t off;		/* WRITE, PUNCH; TRUNCATE: the new size */
	uint64_t len;		/* WRITE, PUNCH */
	uint8_t *data;		/* WRITE */
	uint64_t mark;		/* MARK */
};

struct memfile {
	struct vhd_file base;
	uint8_t *data;
	uint64_t size, cap;
	bool record;
	struct mem_op *ops;
	size_t nr_ops, cap_ops;
	unsigned nr_flushes;
};

/* A file holding a copy of len bytes of init (NULL: empty).  Its close op
 * does nothing, so that a test can look at it after vhd_close(). */
struct memfile *memfile_new(const void *init, uint64_t len);
void memfile_free(struct memfile *m);
/* Makes m hold a copy of len bytes of init (NULL: zeros). */
void memfile_reset(struct memfile *m, const void *init, uint64_t len);
/* Appends a marker to the log (when recording). */
void memfile_mark(struct memfile *m, uint64_t mark);
/* Applies one logged operation as a file system would: a write past the
 * end extends the file, a punch keeps the size. */
void memfile_apply(struct memfile *m, const struct mem_op *op);
/* Writes bytes directly, extending the file as needed. */
void memfile_write(struct memfile *m, const void *buf, uint64_t len,
		   uint64_t off);

#endif
