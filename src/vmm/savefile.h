/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The saved-state file's container (docs/control.md, "Saved state"): a
 * header, sections, and a table of them, each section with its own
 * checksum.  No KVM here: what the sections hold is snapshot.c's.
 *
 *   0      header, 4096 bytes: magic "VSRVSAVE", format version, the
 *          table's place and checksum, the file's length, the vsrv that
 *          wrote it, its own checksum (XXH3-64)
 *   4096   sections, one after another, each starting on a 4 KiB boundary
 *   ...    the table: for each section its tag (4 characters), index,
 *          offset, length and checksum
 *
 * The header and the table are written last, so a save cut short leaves
 * no valid header.  A reader trusts nothing: the magic, the version
 * (before anything whose layout it decides), the header's checksum, the
 * file's length, the table's checksum, every section inside the file;
 * a section's checksum when it is read.  Each refusal is one line in err.
 */
#ifndef VSRV_SAVEFILE_H
#define VSRV_SAVEFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include <xxhash.h>

#define SAVEFILE_VERSION	1
#define SAVEFILE_ALIGN		4096u
#define SAVEFILE_SECTIONS_MAX	4096u
/* Writing and reading guest memory go a piece at a time, each hashed while
 * it is in the CPU's caches (its second-level cache: 512 KiB to 2 MiB). */
#define SF_PIECE		(512u << 10)
#define SF_PIECE_IOV		128

struct sf_section {
	char tag[5];		/* NUL-terminated */
	uint32_t index;
	uint64_t offset, length, checksum;
};

/* --- writing --- */
struct sf_writer {
	int fd;
	uint64_t off;		/* where the next byte goes */
	struct sf_section *secs;
	unsigned nr;
	XXH3_state_t *hash;	/* the open section's */
	bool open;
};

int sf_writer_init(struct sf_writer *w, int fd);
void sf_writer_free(struct sf_writer *w);
/* A section: begin, any number of writes (iovecs into memory that stays
 * put until the call returns), end. */
int sf_begin(struct sf_writer *w, const char *tag, uint32_t index);
int sf_writev(struct sf_writer *w, const struct iovec *iov, int n);
int sf_write(struct sf_writer *w, const void *p, size_t len);
int sf_end(struct sf_writer *w);
/* The table and the header; *bytes the file's length. */
int sf_finish(struct sf_writer *w, const char *vsrv_version, uint64_t *bytes);

/* --- reading --- */
struct sf_reader {
	int fd;
	const char *path;
	uint64_t size;
	struct sf_section *secs;
	unsigned nr;
	char version[33];	/* the vsrv that wrote it */
};

/* Opens and checks the header and the table: 0, or a negative errno and
 * one line in err ("PATH: ..."). */
int sf_open(struct sf_reader *r, const char *path, char *err, size_t errlen);
void sf_close(struct sf_reader *r);
const struct sf_section *sf_find(const struct sf_reader *r, const char *tag, uint32_t index);
/* A whole section into a malloc'd buffer, its checksum checked. */
int sf_read(struct sf_reader *r, const struct sf_section *s, uint8_t **buf, char *err,
	    size_t errlen);
/* For sections read piecewise (guest memory): pread exactly, and the
 * refusal when the checksum over what was read does not match. */
int sf_pread(struct sf_reader *r, void *p, size_t len, uint64_t off, char *err, size_t errlen);
int sf_corrupt(struct sf_reader *r, const struct sf_section *s, char *err, size_t errlen);

#endif
