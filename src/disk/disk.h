/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The block layer under the VMM's disk devices (virtio-blk): a disk opened
 * from a spec (a raw file or block device, or a VHD chain through libvhd),
 * and asynchronous requests on it through one or more queues.
 *
 * Threads: a struct disk_queue belongs to one thread at a time, which
 * submits on it and reaps it; distinct queues of one disk may be used from
 * distinct threads at once.  Opening, closing, creating and destroying
 * queues and snapshots happen with no request in flight.
 *
 * Requests: offsets and lengths are bytes, multiples of DISK_SECTOR_SIZE.
 * A disk_submit_*() call either returns 0 and later calls its `done`
 * exactly once, from disk_queue_reap() on that queue (never from inside
 * the submit call), or returns a negative errno and never calls it:
 * -EINVAL for a range that is unaligned or past the end, -EROFS for a
 * write to a read-only disk, -ENOMEM.  `done` receives 0 or a negative
 * errno (-EIO, -ENOSPC, ...); it may submit further requests.
 * Buffers and the iovec array must stay valid until `done` (the array is
 * only read during the submit call, the buffers until completion).
 *
 * Durability: a flush makes durable every write that had completed (its
 * `done` called) before the flush was submitted.  Writes in flight at the
 * same time are not ordered against it, as with virtio-blk.
 * DISCARD leaves the range reading either as before or as zeros (where the
 * layer can free the space); WRITE_ZEROES leaves it reading as zeros.
 *
 * See docs/disk-layer.md.
 */
#ifndef VSRV_DISK_H
#define VSRV_DISK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define DISK_SECTOR_SIZE	512u
/* virtio-blk's GET_ID: 20 bytes, NUL-padded, not NUL-terminated when full. */
#define DISK_SERIAL_LEN		20

enum disk_format {
	DISK_FORMAT_AUTO,	/* a VHD if the file has a VHD footer, else raw */
	DISK_FORMAT_RAW,
	DISK_FORMAT_VHD,
};

enum disk_cache {
	DISK_CACHE_WRITEBACK,	/* page cache; flushes are fdatasync()s */
	DISK_CACHE_NONE,	/* O_DIRECT; flushes still sync */
	DISK_CACHE_UNSAFE,	/* page cache; flushes complete at once */
};

enum disk_undo {
	DISK_UNDO_NONE,
	DISK_UNDO_COMMIT,	/* at close, merge the changes into the base */
	DISK_UNDO_KEEP,		/* at close, keep them beside it */
	DISK_UNDO_DISCARD,	/* at close, throw them away */
};

enum disk_aio {
	DISK_AIO_AUTO,		/* io_uring if it can be set up, else threads;
				 * the environment's VSRV_AIO=uring|thread
				 * decides instead when set */
	DISK_AIO_URING,
	DISK_AIO_THREAD,
};

/* One line naming the file and the problem, like struct vhd_error. */
struct disk_error {
	int code;		/* negative errno, 0 when no error */
	char msg[512];
};

/* Lines for a person that do not stop anything ("changes kept in X"). */
typedef void disk_notice_fn(void *opaque, const char *msg);

struct disk_spec {
	const char *path;
	enum disk_format format;
	bool readonly;
	enum disk_cache cache;
	enum disk_undo undo;
	/* Undo only: run on the overlay an earlier run kept (it must be a
	 * differencing disk over this base) instead of refusing. */
	bool undo_resume;
	enum disk_aio aio;
	const char *serial;	/* NULL: derived from the disk (disk_serial) */
	disk_notice_fn *notice;	/* NULL: notices are dropped */
	void *notice_opaque;
};

struct disk;
struct disk_queue;

/* format=auto: VHD for a name ending in .vhd or .avhd, raw otherwise. */
enum disk_format disk_format_guess(const char *path);
int disk_open(const struct disk_spec *spec, struct disk **out,
	      struct disk_error *err);
/* Every queue must have been destroyed.  Flushes; then, for an undo disk,
 * commits, keeps or discards its overlay.  Frees d even on failure. */
int disk_close(struct disk *d, struct disk_error *err);

uint64_t disk_size(const struct disk *d);		/* bytes */
bool disk_is_readonly(const struct disk *d);
/* Stable across runs: from the VHD chain's bottom layer's unique id, or a
 * raw file's device and inode, unless the spec named one. */
const char *disk_serial(const struct disk *d);
const char *disk_format_name(const struct disk *d);	/* "raw", "vhd" */
const char *disk_aio_name(const struct disk *d);	/* "io_uring", "thread" */
/* The overlay of an undo disk, NULL for others. */
const char *disk_undo_path(const struct disk *d);

/*
 * What a disk stands on, layer by layer from the top (the file written)
 * down to a VHD chain's base, for saved state to refuse a restore onto a
 * disk that changed since (docs/control.md): each file's path, its VHD
 * unique id, its length and its last modification (fstat on the open
 * file: nothing is opened).  Layer i into *out: 1; 0 past the bottom; a
 * negative errno.  Callable in vsrv run's sandbox.
 */
struct disk_layer {
	const char *path;
	bool vhd;
	bool empty;			/* a VHD layer holding no block of its
					 * own (it reads through): a snapshot's
					 * child before its first write */
	char id[37];			/* a VHD's unique id as text; raw: "" */
	uint64_t size;			/* bytes; 0 for a block device */
	int64_t mtime_sec;
	uint32_t mtime_nsec;
};
int disk_layer(const struct disk *d, unsigned i, struct disk_layer *out);

/*
 * Live snapshot of a writable VHD disk: child_path becomes a differencing
 * disk over the current top, which is made read-only, and the disk goes on
 * in the child.  The caller quiesces first: -EBUSY while a request is in
 * flight.  Not for undo disks (their overlay is already one).
 */
int disk_snapshot(struct disk *d, const char *child_path,
		  struct disk_error *err);
/*
 * The same onto a child the caller made (a differencing VHD over the
 * disk's top, by its path) and opened: fd O_RDWR, locked by the caller if
 * it wants, and for cache=none direct_fd, the same file O_DIRECT (else
 * -1).  The descriptors become the disk's (closed on failure too).  For a
 * caller that may not create or open files: vsrv run's confined VM
 * process, whose supervisor makes the child (docs/control.md); the calls
 * it makes are on descriptors only (pread64, pwrite64, fdatasync, fstat,
 * flock to share the old top's lock).
 */
int disk_snapshot_fd(struct disk *d, int fd, int direct_fd, const char *child_path,
		     struct disk_error *err);

/* Queues */
int disk_queue_create(struct disk *d, struct disk_queue **out);
/* Waits for the queue's requests to complete (running their `done`). */
void disk_queue_destroy(struct disk_queue *q);
/* Readable (an eventfd) when completions wait for disk_queue_reap(). */
int disk_queue_fd(const struct disk_queue *q);
/* Runs the `done` of every completed request; returns how many. */
unsigned disk_queue_reap(struct disk_queue *q);
/* Waits up to timeout_ms (-1: no limit) for a completion, then reaps;
 * returns how many completed, or a negative errno. */
int disk_queue_wait(struct disk_queue *q, int timeout_ms);
/* Reaps until no request of this queue is in flight. */
void disk_queue_drain(struct disk_queue *q);
unsigned disk_queue_inflight(const struct disk_queue *q);

/* Requests */
typedef void disk_done_fn(void *opaque, int status);

int disk_submit_read(struct disk_queue *q, uint64_t off,
		     const struct iovec *iov, unsigned iovcnt,
		     disk_done_fn *done, void *opaque);
int disk_submit_write(struct disk_queue *q, uint64_t off,
		      const struct iovec *iov, unsigned iovcnt,
		      disk_done_fn *done, void *opaque);
int disk_submit_flush(struct disk_queue *q, disk_done_fn *done, void *opaque);
int disk_submit_discard(struct disk_queue *q, uint64_t off, uint64_t len,
			disk_done_fn *done, void *opaque);
/* unmap: the space may be freed (virtio-blk's WRITE_ZEROES UNMAP flag). */
int disk_submit_write_zeroes(struct disk_queue *q, uint64_t off, uint64_t len,
			     bool unmap, disk_done_fn *done, void *opaque);

/*
 * Undo overlays, in two halves for a caller whose VM outlives the process
 * that opens its disks (vsrv run starts a process per boot): create the
 * overlay once, open it as a plain VHD in each boot, finish it at the end.
 * disk_open() with spec->undo does both halves itself.
 *
 * The overlay of DIR/NAME.vhd (or DIR/NAME) is DIR/NAME.undo.vhd.
 */
int disk_undo_path_for(const char *base, char *out, size_t len);
/* What disk_open() refuses of an undo spec before creating anything: a
 * raw base, a read-only one, a base that is not there.  For callers of
 * the two halves. */
int disk_undo_check(const struct disk_spec *spec, struct disk_error *err);
/* Creates the overlay; refuses when it exists unless `resume` (and then
 * checks that it is a differencing disk over base). */
int disk_undo_create(const char *base, bool resume, char *child, size_t len,
		     struct disk_error *err);
int disk_undo_finish(const char *child, enum disk_undo mode,
		     disk_notice_fn *notice, void *opaque,
		     struct disk_error *err);

/*
 * A chain's layers, for a caller that keeps a VM's disk on a chain of
 * differencing children (vsrv run's checkpoints, docs/control.md).
 * child_create: a new, empty differencing disk over parent, which a VM may
 * have open and be writing (its lock is not taken).  merge_down: the
 * child merged into its parent and removed (vhd_commit): 1; or, when it
 * holds nothing, only removed, the parent untouched: 0.  Neither with the
 * files open in this process.
 */
int disk_child_create(const char *parent, const char *child, struct disk_error *err);
int disk_merge_down(const char *child, disk_notice_fn *notice, void *opaque,
		    struct disk_error *err);

/*
 * Parses a --disk value in place: "path=FILE[,format=raw|vhd|auto]
 * [,readonly[=on|off]][,cache=writeback|none|unsafe][,undo=commit|keep|discard]
 * [,undo-resume][,aio=auto|uring|thread][,serial=S]"; a bare first item is
 * the path; ",," stands for a comma in a value.  Fields not named keep
 * what spec held.  spec's strings point into s.
 */
int disk_spec_parse(char *s, struct disk_spec *spec, struct disk_error *err);
/* An undo mode's name in --disk ("commit", "keep", "discard"; "none"),
 * and back (DISK_UNDO_NONE for anything else). */
const char *disk_undo_name(enum disk_undo mode);
enum disk_undo disk_undo_parse(const char *name);

#endif
