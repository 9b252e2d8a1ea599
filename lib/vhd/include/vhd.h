/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libvhd: the Virtual Hard Disk (VHD) image format.
 *
 * Fixed, dynamic and differencing disks, read and write, parent chains,
 * check and repair, and the long operations built on them (convert, commit,
 * compact, resize, rebase).  The library knows nothing of virtual machines.
 *
 * Conventions: functions return 0 (or a count) on success and a negative
 * errno value on failure.  Functions that can fail for reasons a person must
 * read about (a malformed file, a missing parent) also fill a struct
 * vhd_error with one line naming the file and the problem.
 *
 * A struct vhd is not thread-safe; callers serialise access to one handle.
 * Distinct handles may be used from distinct threads.
 */
#ifndef VHD_H
#define VHD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VHD_SECTOR_SIZE		512u
#define VHD_DEFAULT_BLOCK_SIZE	(2u << 20)
/* The format's limit for dynamic and differencing disks, used for all. */
#define VHD_MAX_SIZE		(2040ull << 30)
#define VHD_MAX_CHAIN_DEPTH	64

enum vhd_type {
	VHD_TYPE_NONE = 0,
	VHD_TYPE_FIXED = 2,
	VHD_TYPE_DYNAMIC = 3,
	VHD_TYPE_DIFF = 4,
};

struct vhd_error {
	int code;		/* negative errno, 0 when no error */
	char msg[512];		/* one line: "<file>: <problem>" */
};

/* Messages that do not stop an operation (a repaired footer, a timestamp
 * mismatch).  Called synchronously; msg is one line naming the file. */
typedef void (*vhd_warn_fn)(void *opaque, const char *msg);

/*
 * The file underneath a VHD.  The default is a POSIX file descriptor; tests
 * substitute a recording layer (crash-consistency) or an in-memory file
 * (fuzzing).  All offsets are byte offsets; short reads past the end of the
 * file are returned as such (the caller zero-fills).
 */
struct vhd_file;
struct vhd_file_ops {
	ssize_t (*pread)(struct vhd_file *f, void *buf, size_t len, uint64_t off);
	ssize_t (*pwrite)(struct vhd_file *f, const void *buf, size_t len,
			  uint64_t off);
	int (*flush)(struct vhd_file *f);
	int (*get_size)(struct vhd_file *f, uint64_t *size);
	int (*truncate)(struct vhd_file *f, uint64_t size);
	/* Optional: deallocate a range that now reads as zeros. */
	int (*punch_hole)(struct vhd_file *f, uint64_t off, uint64_t len);
	void (*close)(struct vhd_file *f);
	/* Optional: the POSIX fd for direct I/O by an async data path, or -1. */
	int (*get_fd)(struct vhd_file *f);
};
struct vhd_file {
	const struct vhd_file_ops *ops;
};

/*
 * Opens a file for a VHD.  `writable` asks for O_RDWR and an exclusive
 * advisory lock, otherwise O_RDONLY and a shared one.  A conflicting holder
 * is named in err ("in use by pid 123 (vsrv)").  lock=false skips locking.
 */
int vhd_file_open_posix(const char *path, bool writable, bool lock,
			struct vhd_file **out, struct vhd_error *err);

/* Opens a new file for a VHD to be created: O_CREAT|O_EXCL, locked. */
int vhd_file_create_posix(const char *path, struct vhd_file **out,
			  struct vhd_error *err);

/* A file already open (fd, which becomes the file's: closed on failure
 * too), for a caller that may not open paths; `name` for messages.
 * writable and lock as for vhd_file_open_posix. */
int vhd_file_from_fd(int fd, const char *name, bool writable, bool lock,
		     struct vhd_file **out, struct vhd_error *err);

/* Opening */
#define VHD_OPEN_RDWR			(1u << 0)
#define VHD_OPEN_IGNORE_CHECKSUMS	(1u << 1) /* whole chain */
#define VHD_OPEN_IGNORE_PARENT_ID	(1u << 2) /* whole chain */
#define VHD_OPEN_NO_PARENT		(1u << 3) /* info, check, map one layer */
#define VHD_OPEN_NO_LOCK		(1u << 4)
/* Open even when a structure is damaged, for check --repair. */
#define VHD_OPEN_FOR_REPAIR		(1u << 5)
/* Flushes write metadata in order but do not wait for the disk (no
 * fdatasync): for files whose loss in a power failure is acceptable, such
 * as a conversion's output, and for the VMM's cache=unsafe. */
#define VHD_OPEN_NO_SYNC		(1u << 6)

struct vhd_open_opts {
	unsigned flags;
	vhd_warn_fn warn;	/* NULL: warnings are dropped */
	void *warn_opaque;
	/* Directory searched for a parent by its bare name, after the
	 * locators; NULL means the child's own directory. */
	const char *parent_search_dir;
};

struct vhd;

int vhd_open(const char *path, const struct vhd_open_opts *opts,
	     struct vhd **out, struct vhd_error *err);
/* Opens over a caller's file; `name` is used in messages and to resolve
 * relative parent locators.  On success the vhd owns f. */
int vhd_open_file(struct vhd_file *f, const char *name,
		  const struct vhd_open_opts *opts, struct vhd **out,
		  struct vhd_error *err);
/* Flushes (if writable) and frees the whole chain. */
int vhd_close(struct vhd *v);

/* Creation */
struct vhd_create_opts {
	enum vhd_type type;
	uint64_t size;		/* bytes; ignored for DIFF (parent's size) */
	uint32_t block_size;	/* power of two >= 512; 0: 2 MiB */
	const char *parent;	/* DIFF: parent path, as given */
	bool azure;		/* size a whole MiB, fixed only on upload */
	/* Fixed disks: preallocate with fallocate() rather than sparse. */
	bool preallocate;
	/* Fixed for reproducible tests; 0/NULL: now and random. */
	uint32_t timestamp;
	const uint8_t *uuid;	/* 16 bytes */
	unsigned open_flags;	/* VHD_OPEN_IGNORE_* for opening the parent */
	vhd_warn_fn warn;
	void *warn_opaque;
};

int vhd_create(const char *path, const struct vhd_create_opts *opts,
	       struct vhd_error *err);
/* As vhd_create, onto a caller's (empty) file; the file is not closed. */
int vhd_create_file(struct vhd_file *f, const char *name,
		    const struct vhd_create_opts *opts, struct vhd_error *err);

/* Data */
ssize_t vhd_pread(struct vhd *v, void *buf, size_t len, uint64_t off);
ssize_t vhd_pwrite(struct vhd *v, const void *buf, size_t len, uint64_t off);
/* Writes zeros; in dynamic disks unallocated blocks stay unallocated and
 * wholly zeroed blocks in a dynamic disk may be deallocated when `unmap`. */
int vhd_pwrite_zeroes(struct vhd *v, uint64_t off, uint64_t len, bool unmap);
/* Makes every completed write durable, data before the metadata that
 * points at it. */
int vhd_flush(struct vhd *v);

/*
 * Allocation, for tools (map) and for an asynchronous data path.
 *
 * vhd_map() describes the range starting at `off`: the returned extent
 * covers [off, off + ext->len) with one kind of backing, at most `len`.
 */
enum vhd_extent_kind {
	VHD_EXT_DATA,	/* in layer `depth`, at file offset `file_off` */
	VHD_EXT_ZERO,	/* unallocated in every layer: reads as zeros */
};
struct vhd_extent {
	enum vhd_extent_kind kind;
	unsigned depth;		/* 0 = the top image, 1 = its parent, ... */
	uint64_t len;
	uint64_t file_off;	/* DATA only */
	struct vhd *layer;	/* DATA only: the image holding the data */
};
int vhd_map(struct vhd *v, uint64_t off, uint64_t len, struct vhd_extent *ext);

/*
 * The write side of an asynchronous data path:
 * vhd_map_for_write() allocates the block under [off, off+len) in the top
 * image if needed (len must not cross a block) and returns the file offset
 * at which the caller writes the data itself, through vhd_get_fd().
 * After that write completes the caller calls vhd_write_done() so that the
 * sector bitmap records the sectors; until then reads of them still see
 * the parent.  A differencing disk whose write covers only part of a
 * sector... cannot happen: offsets and lengths are sector multiples.
 */
int vhd_map_for_write(struct vhd *v, uint64_t off, uint64_t len,
		      uint64_t *file_off);
int vhd_write_done(struct vhd *v, uint64_t off, uint64_t len);
int vhd_get_fd(struct vhd *v);

/* Information */
struct vhd_info {
	enum vhd_type type;
	uint64_t size;			/* virtual size in bytes */
	uint64_t current_size;		/* as stored in the footer */
	uint64_t original_size;
	uint16_t cylinders;
	uint8_t heads, sectors_per_track;
	uint32_t block_size;		/* 0 for fixed */
	uint32_t max_blocks;		/* BAT entries */
	uint32_t allocated_blocks;
	uint64_t file_size;
	uint32_t timestamp;		/* seconds since 2000-01-01 UTC */
	char creator_app[5];
	uint32_t creator_version;
	char creator_os[5];
	uint8_t uuid[16];
	bool saved_state;
	uint32_t features;
	/* DIFF only */
	uint8_t parent_uuid[16];
	uint32_t parent_timestamp;
	char parent_name[1024];		/* UTF-8 */
	char parent_path[4096];		/* the file opened, "" without one */
	unsigned nr_locators;
	struct vhd_locator_info {
		char code[5];		/* W2ku, W2ru, MacX, Wi2k, Wi2r, Mac */
		uint32_t data_space;	/* as stored (bytes or sectors) */
		uint32_t data_len;
		uint64_t data_off;
		char path[1024];	/* decoded, UTF-8; "" if undecodable */
	} locators[8];
};
int vhd_get_info(struct vhd *v, struct vhd_info *info);
const char *vhd_name(struct vhd *v);
struct vhd *vhd_parent(struct vhd *v);
uint64_t vhd_size(struct vhd *v);
enum vhd_type vhd_get_type(struct vhd *v);
const char *vhd_type_name(enum vhd_type t);
uint32_t vhd_block_size(struct vhd *v);	/* fixed: 0 */
bool vhd_is_writable(struct vhd *v);
void vhd_get_uuid(struct vhd *v, uint8_t uuid[16]);	/* the footer's unique id */
/* Whether the layer itself holds no block (a dynamic or differencing disk
 * with nothing allocated: a differencing one reads wholly through to its
 * parent).  Fixed disks hold all of theirs. */
bool vhd_layer_empty(struct vhd *v);

/* Progress and cancellation for long operations: return non-zero from the
 * callback to cancel; the operation then returns -ECANCELED, leaving every
 * file consistent. */
struct vhd_progress {
	int (*fn)(void *opaque, uint64_t done, uint64_t total);
	void *opaque;
};

/* Check and repair */
enum vhd_check_result {
	VHD_CHECK_CLEAN = 0,
	VHD_CHECK_REPAIRED = 1,		/* problems found and fixed */
	VHD_CHECK_CORRUPT = 2,		/* problems remain */
};
struct vhd_check_report {
	enum vhd_check_result result;
	unsigned nr_problems;		/* found */
	unsigned nr_repaired;
	uint64_t leaked_bytes;		/* file space no structure uses */
	/* Each problem as one line, via this callback (may be NULL). */
	void (*problem)(void *opaque, const char *msg, bool repaired);
	void *opaque;
};
/* Checks one file (its parent only for the uuid/timestamp link).  Returns
 * 0 once the check ran, whatever it found (see rep->result); negative
 * errno when the file could not be checked.  vhd_check_file leaves f open
 * (the caller's), and needs it writable only to repair. */
int vhd_check(const char *path, const struct vhd_open_opts *opts, bool repair,
	      struct vhd_check_report *rep, struct vhd_error *err);
int vhd_check_file(struct vhd_file *f, const char *name,
		   const struct vhd_open_opts *opts, bool repair,
		   struct vhd_check_report *rep, struct vhd_error *err);

/* Long operations */
enum vhd_convert_target {
	VHD_CONVERT_RAW,
	VHD_CONVERT_FIXED,
	VHD_CONVERT_DYNAMIC,
};
struct vhd_convert_opts {
	enum vhd_convert_target to;
	uint32_t block_size;		/* dynamic; 0: default */
	bool sync;			/* fsync the output at the end */
	unsigned open_flags;		/* for the source chain */
	const struct vhd_progress *progress;
	vhd_warn_fn warn;
	void *warn_opaque;
};
/* src may be raw or VHD (any chain, flattened); dst must not exist. */
int vhd_convert(const char *src, const char *dst,
		const struct vhd_convert_opts *opts, struct vhd_error *err);

/* Merges a differencing disk into its parent; the child stays valid until
 * the parent holds every sector, then is removed unless keep_child.
 * Other differencing disks beside the parent that name it as their parent
 * would be invalidated: refused unless force (and warned about). */
int vhd_commit(const char *child, unsigned open_flags, bool keep_child,
	       bool force, vhd_warn_fn warn, void *warn_opaque,
	       const struct vhd_progress *progress, struct vhd_error *err);
/* Points a child at new_parent, first copying into the child every
 * sector the child does not hold whose content differs between the old
 * chain and the new one. */
int vhd_rebase(const char *child, const char *new_parent, unsigned open_flags,
	       const struct vhd_progress *progress, struct vhd_error *err);
/* Drops all-zero blocks (dynamic) and reclaims the space. */
int vhd_compact(const char *path, unsigned open_flags,
		const struct vhd_progress *progress, uint64_t *freed,
		struct vhd_error *err);
int vhd_resize(const char *path, uint64_t new_size, unsigned open_flags,
	       struct vhd_error *err);

/* Live snapshot: creates child_path as a differencing disk over v's file,
 * flushes v, reopens it read-only as the parent and makes v the child,
 * so that a caller's I/O goes on through the same handle. */
int vhd_snapshot(struct vhd *v, const char *child_path, struct vhd_error *err);
/* The same onto a child the caller made (vhd_create, a differencing disk
 * whose parent is v's file) and opened for writing, for a caller that may
 * not create files (a sandboxed VMM); child_name for messages and as the
 * new top's name.  f is the library's either way (closed on failure). */
int vhd_snapshot_file(struct vhd *v, struct vhd_file *f, const char *child_name,
		      struct vhd_error *err);

/* Helpers shared by the tools */
int vhd_parse_size(const char *s, uint64_t *out);	/* 10G, 512K, 1000M */
uint64_t vhd_time_to_unix(uint32_t t);
uint32_t vhd_time_from_unix(uint64_t t);
void vhd_uuid_format(const uint8_t uuid[16], char out[37]);
/* Returns true when the file starts or ends with a VHD footer cookie. */
bool vhd_probe(const char *path);

#ifdef __cplusplus
}
#endif
#endif
