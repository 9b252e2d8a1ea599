// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Undo disks (Virtual Server's feature): the guest runs on a differencing
 * disk over the base, so the base is never written during the run; when
 * the VM ends its changes are merged into the base (vhd_commit: the child
 * reads the same until the base holds every sector, so a crash means
 * committing again), kept beside it, or thrown away.
 *
 * The overlay of DIR/NAME.vhd is DIR/NAME.undo.vhd: beside its base, where
 * a person looks, and found again by name.  An overlay already there is
 * the changes of an earlier run (kept, or left by a run that never ended
 * cleanly): never silently reused or deleted.  The caller says what to do
 * with it: resume on it, or first commit or remove it by hand.
 *
 * Checkpoints (vsrv run, docs/control.md) use the same two operations on
 * the layers of a disk's chain: a differencing child made over a top that
 * a VM has open and writes (disk_child_create), and a child merged down
 * into its parent, or only removed when it holds nothing
 * (disk_merge_down).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "disk-private.h"
#include "vhd.h"

int disk_undo_path_for(const char *base, char *out, size_t len)
{
	const char *slash = strrchr(base, '/');
	const char *name = slash ? slash + 1 : base;
	size_t n = strlen(base);

	if (!*name)
		return -EINVAL;
	if (strlen(name) > 4 && !strcasecmp(base + n - 4, ".vhd"))
		n -= 4;
	if ((size_t)snprintf(out, len, "%.*s.undo.vhd", (int)n, base) >= len)
		return -ENAMETOOLONG;
	return 0;
}

/* What libvhd says of one file (flags: VHD_OPEN_*); *out is the caller's
 * to free. */
static int read_info(const char *path, unsigned flags, struct vhd_info **out,
		     struct disk_error *err)
{
	struct vhd_open_opts oo = { .flags = flags };
	struct vhd_error verr = { 0 };
	struct vhd_info *info = malloc(sizeof(*info));
	struct vhd *v;
	int r;

	if (!info)
		return disk_set_error(err, -ENOMEM, "%s: out of memory", path);
	r = vhd_open(path, &oo, &v, &verr);
	if (r < 0) {
		free(info);
		return disk_set_error(err, r, "%s", verr.msg);
	}
	r = vhd_get_info(v, info);
	vhd_close(v);
	if (r < 0) {
		free(info);
		return disk_set_error(err, r, "%s: %s", path, strerror(-r));
	}
	*out = info;
	return 0;
}

/* An overlay to resume on must be a differencing disk over this base. */
static int check_overlay(const char *base, const char *child,
			 struct disk_error *err)
{
	struct vhd_info *info;
	struct stat a, b;
	int r = read_info(child, 0, &info, err);

	if (r < 0)
		return r;
	if (info->type != VHD_TYPE_DIFF || stat(base, &a) < 0 ||
	    stat(info->parent_path, &b) < 0 || a.st_dev != b.st_dev ||
	    a.st_ino != b.st_ino)
		r = disk_set_error(err, -EINVAL,
				   "%s: not an undo disk of %s (not a differencing disk over it)",
				   child, base);
	free(info);
	return r;
}

int disk_undo_create(const char *base, bool resume, char *child, size_t len,
		     struct disk_error *err)
{
	struct vhd_create_opts co = { .type = VHD_TYPE_DIFF, .parent = base };
	struct vhd_error verr = { 0 };
	struct stat st;
	int r = disk_undo_path_for(base, child, len);

	if (r < 0)
		return disk_set_error(err, r, "%s: no name for its undo disk: %s",
				      base, strerror(-r));
	if (lstat(child, &st) == 0) {
		if (resume)
			return check_overlay(base, child, err);
		return disk_set_error(err, -EEXIST,
				      "%s: exists: the changes of an earlier run (kept, or left by a run that did not end cleanly); commit them (vsrv disk commit %s), delete the file, or resume on them (undo-resume)",
				      child, child);
	}
	r = vhd_create(child, &co, &verr);
	if (r < 0)
		return disk_set_error(err, r, "%s", verr.msg);
	return 0;
}

/* Whether the overlay holds anything: an empty one is deleted rather than
 * committed, so that a run that wrote nothing leaves the base (and its
 * time stamp, which other children check) as it was. */
static int has_changes(const char *child, struct disk_error *err)
{
	struct vhd_info *info;
	int r = read_info(child, VHD_OPEN_NO_PARENT, &info, err);

	if (r < 0)
		return r;
	r = info->allocated_blocks > 0;
	free(info);
	return r;
}

int disk_child_create(const char *parent, const char *child, struct disk_error *err)
{
	/* The VM holds the parent's exclusive lock: it is read through it
	 * (its footer and header, which its writes do not change). */
	struct vhd_create_opts co = { .type = VHD_TYPE_DIFF, .parent = parent,
				      .open_flags = VHD_OPEN_NO_LOCK };
	struct vhd_error verr = { 0 };
	int r = vhd_create(child, &co, &verr);

	return r < 0 ? disk_set_error(err, r, "%s", verr.msg) : 0;
}

int disk_merge_down(const char *child, disk_notice_fn *notice, void *opaque,
		    struct disk_error *err)
{
	struct vhd_error verr = { 0 };
	int r = has_changes(child, err);

	if (r < 0)
		return r;
	if (r == 0) {
		if (unlink(child) < 0)
			return disk_set_error(err, -errno, "%s: %s", child, strerror(errno));
		return 0;
	}
	r = vhd_commit(child, 0, false, false, notice, opaque, NULL, &verr);
	if (r < 0)
		return disk_set_error(err, r, "%s (the changes stay in %s)", verr.msg, child);
	return 1;
}

int disk_undo_finish(const char *child, enum disk_undo mode,
		     disk_notice_fn *notice, void *opaque,
		     struct disk_error *err)
{
	char msg[1024];
	int r;

	switch (mode) {
	case DISK_UNDO_NONE:
		return 0;
	case DISK_UNDO_KEEP:
		if (notice) {
			snprintf(msg, sizeof(msg),
				 "%s: the run's changes are kept here (vsrv disk commit %s merges them)",
				 child, child);
			notice(opaque, msg);
		}
		return 0;
	case DISK_UNDO_COMMIT:
		r = disk_merge_down(child, notice, opaque, err);
		return r < 0 ? r : 0;
	case DISK_UNDO_DISCARD:
		break;
	}
	if (unlink(child) < 0)
		return disk_set_error(err, -errno, "%s: %s", child, strerror(errno));
	return 0;
}
