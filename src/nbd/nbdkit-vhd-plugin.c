// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * nbdkit-vhd-plugin: serves a VHD, differencing chains included, over NBD.
 *
 *   nbdkit nbdkit-vhd-plugin.so file=DISK.vhd [readonly=true]
 *          [ignore-checksums=true] [ignore-parent-id=true]
 *
 * The disk is opened once, in .get_ready, and shared by every connection:
 * that way its lock is held for as long as the server runs (no other
 * writer can slip in between two clients) and every client sees every
 * other client's writes at once.  A struct vhd is not thread-safe, so the
 * thread model serialises all requests, across connections too.
 *
 * libvhd works in whole 512-byte sectors; NBD clients may not (qemu's
 * client sends byte-granular requests), so the edges of an unaligned
 * request go through a read-modify-write of one sector here.  That is safe
 * only because requests are serialised.
 */
#define NBDKIT_API_VERSION 2
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <nbdkit-plugin.h>

#include "vhd.h"

#define THREAD_MODEL NBDKIT_THREAD_MODEL_SERIALIZE_ALL_REQUESTS

/*
 * Past this many extents in one reply the client is answered with what is
 * there and asks again from the end of it: a disk of scattered sectors
 * would otherwise build a list of millions of entries for one request.
 */
#define NBDVHD_MAX_EXTENTS	65536

static char *disk_path;
static bool disk_readonly;
static unsigned disk_flags;
static struct vhd *disk;

static void nbdvhd_unload(void)
{
	int r = vhd_close(disk);

	/* The last flush; nobody is left to answer, but it is logged. */
	if (r < 0)
		nbdkit_error("%s: flushing on close: %s", disk_path, strerror(-r));
	disk = NULL;
	free(disk_path);
	disk_path = NULL;
}

static int nbdvhd_bool(const char *key, const char *value, bool *out)
{
	int r = nbdkit_parse_bool(value);

	if (r < 0)
		return -1;	/* nbdkit_parse_bool has said why */
	*out = r;
	return 0;
}

static int nbdvhd_flag(const char *key, const char *value, unsigned flag)
{
	bool on;

	if (nbdvhd_bool(key, value, &on) < 0)
		return -1;
	if (on)
		disk_flags |= flag;
	else
		disk_flags &= ~flag;
	return 0;
}

static int nbdvhd_config(const char *key, const char *value)
{
	if (!strcmp(key, "file")) {
		free(disk_path);
		/*
		 * Absolute, but with symlinks kept: a child's relative parent
		 * locator is resolved from the directory the path names, as
		 * vsrv's other commands do.
		 */
		disk_path = nbdkit_absolute_path(value);
		return disk_path ? 0 : -1;
	}
	if (!strcmp(key, "readonly"))
		return nbdvhd_bool(key, value, &disk_readonly);
	if (!strcmp(key, "ignore-checksums"))
		return nbdvhd_flag(key, value, VHD_OPEN_IGNORE_CHECKSUMS);
	if (!strcmp(key, "ignore-parent-id"))
		return nbdvhd_flag(key, value, VHD_OPEN_IGNORE_PARENT_ID);
	nbdkit_error("unknown parameter '%s'", key);
	return -1;
}

static int nbdvhd_config_complete(void)
{
	if (!disk_path) {
		nbdkit_error("the file parameter is required (file=DISK.vhd)");
		return -1;
	}
	return 0;
}

static void nbdvhd_warn(void *opaque, const char *msg)
{
	/* vsrv disk serve opened the disk first and showed these already. */
	nbdkit_debug("%s", msg);
}

static int nbdvhd_get_ready(void)
{
	struct vhd_open_opts oo = {
		.flags = disk_flags | (disk_readonly ? 0 : VHD_OPEN_RDWR),
		.warn = nbdvhd_warn,
	};
	struct vhd_error err = { 0 };
	int r = vhd_open(disk_path, &oo, &disk, &err);

	if (r < 0) {
		if (err.code && err.msg[0])
			nbdkit_error("%s", err.msg);
		else
			nbdkit_error("%s: %s", disk_path, strerror(-r));
		disk = NULL;
		return -1;
	}
	return 0;
}

static void *nbdvhd_open(int readonly)
{
	return NBDKIT_HANDLE_NOT_NEEDED;
}

/* Reports libvhd's negative errno r for `what` and fails the request. */
static int nbdvhd_fail(const char *what, uint64_t off, int r)
{
	nbdkit_error("%s: %s at offset %llu: %s", disk_path, what,
		     (unsigned long long)off, strerror(-r));
	nbdkit_set_error(-r);
	return -1;
}

static void nbdvhd_close(void *handle)
{
	/*
	 * A client that leaves without flushing still finds its writes in
	 * the file: the server may be killed before it next flushes.
	 */
	int r = vhd_flush(disk);

	if (r < 0)
		nbdkit_error("%s: flushing: %s", disk_path, strerror(-r));
}

static int64_t nbdvhd_get_size(void *handle)
{
	return (int64_t)vhd_size(disk);
}

static int nbdvhd_can_write(void *handle)
{
	return !disk_readonly;
}

static int nbdvhd_can_flush(void *handle)
{
	return 1;
}

static int nbdvhd_is_rotational(void *handle)
{
	return 0;
}

static int nbdvhd_can_trim(void *handle)
{
	return !disk_readonly;
}

static int nbdvhd_can_zero(void *handle)
{
	return 1;
}

static int nbdvhd_can_fua(void *handle)
{
	return NBDKIT_FUA_NATIVE;
}

/*
 * Requests are serialised across connections, so a second connection
 * buys a client nothing; saying no keeps nbdcopy and qemu on one.
 */
static int nbdvhd_can_multi_conn(void *handle)
{
	return 0;
}

static int nbdvhd_can_extents(void *handle)
{
	return 1;
}

static int nbdvhd_pread(void *handle, void *buf, uint32_t count,
			uint64_t offset, uint32_t flags)
{
	uint8_t sector[VHD_SECTOR_SIZE], *p = buf;

	while (count) {
		uint32_t at = offset % VHD_SECTOR_SIZE, n;
		ssize_t r;

		if (at || count < VHD_SECTOR_SIZE) {
			n = VHD_SECTOR_SIZE - at < count ? VHD_SECTOR_SIZE - at
							 : count;
			r = vhd_pread(disk, sector, sizeof(sector), offset - at);
			if (r >= 0)
				memcpy(p, sector + at, n);
		} else {
			n = count - count % VHD_SECTOR_SIZE;
			r = vhd_pread(disk, p, n, offset);
		}
		if (r < 0)
			return nbdvhd_fail("reading", offset, (int)r);
		p += n;
		offset += n;
		count -= n;
	}
	return 0;
}

/*
 * Writes `count` bytes from buf, or zeros when buf is NULL (then `unmap`
 * lets libvhd deallocate whole zeroed ranges).  Partial sectors at either
 * end are read, patched and written back whole.
 */
static int nbdvhd_write(const uint8_t *buf, uint32_t count, uint64_t offset,
			bool unmap, uint32_t flags)
{
	uint8_t sector[VHD_SECTOR_SIZE];
	int r;

	while (count) {
		uint32_t at = offset % VHD_SECTOR_SIZE, n;

		if (at || count < VHD_SECTOR_SIZE) {
			n = VHD_SECTOR_SIZE - at < count ? VHD_SECTOR_SIZE - at
							 : count;
			r = (int)vhd_pread(disk, sector, sizeof(sector), offset - at);
			if (r < 0)
				return nbdvhd_fail("reading for a partial write",
						   offset, r);
			if (buf)
				memcpy(sector + at, buf, n);
			else
				memset(sector + at, 0, n);
			r = (int)vhd_pwrite(disk, sector, sizeof(sector), offset - at);
		} else {
			n = count - count % VHD_SECTOR_SIZE;
			if (buf)
				r = (int)vhd_pwrite(disk, buf, n, offset);
			else
				r = vhd_pwrite_zeroes(disk, offset, n, unmap);
		}
		if (r < 0)
			return nbdvhd_fail("writing", offset, r);
		if (buf)
			buf += n;
		offset += n;
		count -= n;
	}
	if (flags & NBDKIT_FLAG_FUA) {
		r = vhd_flush(disk);
		if (r < 0)
			return nbdvhd_fail("flushing", offset, r);
	}
	return 0;
}

static int nbdvhd_pwrite(void *handle, const void *buf, uint32_t count,
			 uint64_t offset, uint32_t flags)
{
	return nbdvhd_write(buf, count, offset, false, flags);
}

static int nbdvhd_zero(void *handle, uint32_t count, uint64_t offset,
		       uint32_t flags)
{
	return nbdvhd_write(NULL, count, offset, flags & NBDKIT_FLAG_MAY_TRIM,
			    flags);
}

/*
 * A trim may leave anything behind; zeros with unmap are what libvhd can
 * deallocate.  Partial sectors at the edges are left alone, as a trim
 * allows, rather than rewritten.
 */
static int nbdvhd_trim(void *handle, uint32_t count, uint64_t offset,
		       uint32_t flags)
{
	uint64_t start = (offset + VHD_SECTOR_SIZE - 1) / VHD_SECTOR_SIZE *
			 VHD_SECTOR_SIZE;
	uint64_t end = (offset + count) / VHD_SECTOR_SIZE * VHD_SECTOR_SIZE;

	if (start >= end)
		return 0;
	return nbdvhd_write(NULL, (uint32_t)(end - start), start, true, flags);
}

static int nbdvhd_flush(void *handle, uint32_t flags)
{
	int r = vhd_flush(disk);

	return r < 0 ? nbdvhd_fail("flushing", 0, r) : 0;
}

static int nbdvhd_extents(void *handle, uint32_t count, uint64_t offset,
			  uint32_t flags, struct nbdkit_extents *extents)
{
	/* libvhd maps whole sectors; nbdkit clips what lies outside. */
	uint64_t pos = offset - offset % VHD_SECTOR_SIZE;
	/* nbdkit keeps requests inside the disk, a whole number of sectors. */
	uint64_t end = (offset + count + VHD_SECTOR_SIZE - 1) /
		       VHD_SECTOR_SIZE * VHD_SECTOR_SIZE;
	unsigned added = 0;

	while (pos < end && added < NBDVHD_MAX_EXTENTS) {
		struct vhd_extent e;
		uint32_t type;
		int r = vhd_map(disk, pos, end - pos, &e);

		if (r == 0 && e.len == 0)
			r = -EIO;	/* no progress: a libvhd bug, not a loop */
		if (r < 0)
			return nbdvhd_fail("mapping", pos, r);
		type = e.kind == VHD_EXT_ZERO
			? NBDKIT_EXTENT_HOLE | NBDKIT_EXTENT_ZERO : 0;
		if (nbdkit_add_extent(extents, pos, e.len, type) < 0)
			return -1;
		pos += e.len;
		added++;
		if (flags & NBDKIT_FLAG_REQ_ONE)
			break;
	}
	return 0;
}

static struct nbdkit_plugin plugin = {
	.name = "vhd",
	.longname = "vsrv VHD plugin",
	.version = VSRV_VERSION,
	.description = "Serves a VHD disk (fixed, dynamic or differencing) over NBD",
	.unload = nbdvhd_unload,
	.config = nbdvhd_config,
	.config_complete = nbdvhd_config_complete,
	.config_help =
		"file=<DISK.vhd>           (required) The VHD to serve.\n"
		"readonly=true             Open the disk (and serve it) read-only.\n"
		"ignore-checksums=true     Accept bad checksums in the whole chain.\n"
		"ignore-parent-id=true     Accept a parent whose uuid does not match.",
	.magic_config_key = "file",
	.get_ready = nbdvhd_get_ready,
	.open = nbdvhd_open,
	.close = nbdvhd_close,
	.get_size = nbdvhd_get_size,
	.can_write = nbdvhd_can_write,
	.can_flush = nbdvhd_can_flush,
	.is_rotational = nbdvhd_is_rotational,
	.can_trim = nbdvhd_can_trim,
	.can_zero = nbdvhd_can_zero,
	.can_fua = nbdvhd_can_fua,
	.can_multi_conn = nbdvhd_can_multi_conn,
	.can_extents = nbdvhd_can_extents,
	.pread = nbdvhd_pread,
	.pwrite = nbdvhd_pwrite,
	.zero = nbdvhd_zero,
	.trim = nbdvhd_trim,
	.flush = nbdvhd_flush,
	.extents = nbdvhd_extents,
};

NBDKIT_REGISTER_PLUGIN(plugin)
