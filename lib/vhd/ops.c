// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Operations on whole disks: commit (merge a child into its parent),
 * rebase, compact, resize, and the live snapshot a running VM uses.
 *
 * Each orders its writes so that a crash at any point leaves every file
 * readable with the same contents as before or after the operation, or a
 * state check --repair restores: data is copied and flushed before any
 * metadata points at it, and a child is removed only once its parent holds
 * all of it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "vhd-private.h"

int vhd_report(const struct vhd_progress *p, uint64_t done, uint64_t total)
{
	if (p && p->fn && p->fn(p->opaque, done, total))
		return -ECANCELED;
	return 0;
}

/* Rewrites the dynamic header in place (its first sector holds every
 * field but the parent name's tail and the locators). */
int vhd_write_header(struct vhd *v)
{
	uint8_t buf[VHD_HEADER_SIZE];

	vhd_header_encode(&v->header, buf);
	v->header.checksum = vhd_header_checksum(buf);
	return vhd_write_exact(v->file, buf, sizeof(buf), v->footer.data_offset);
}

/* Rewrites the footer where it is and its copy at 0, after a flush so that
 * what it describes is durable first. */
int vhd_update_footer(struct vhd *v)
{
	int r = v->file->ops->flush(v->file);

	if (r >= 0)
		r = vhd_write_footer(v, v->footer_off, true);
	if (r >= 0)
		r = v->file->ops->flush(v->file);
	return r;
}

/* Other differencing disks beside `parent` whose parent is it: commit
 * changes the parent under them. */
static int find_siblings(struct vhd *parent, const char *child, char *list,
			 size_t len)
{
	DIR *d = opendir(parent->dir);
	char cpath[PATH_MAX], real_child[PATH_MAX];
	struct dirent *e;
	int n = 0;
	size_t used = 0;

	list[0] = '\0';
	if (!d)
		return 0;
	if (!realpath(child, real_child))
		real_child[0] = '\0';
	while ((e = readdir(d))) {
		struct vhd_open_opts o = { .flags = VHD_OPEN_NO_PARENT | VHD_OPEN_NO_LOCK |
						    VHD_OPEN_IGNORE_CHECKSUMS };
		struct vhd_error err = { 0 };
		char real[PATH_MAX];
		struct vhd *s;
		size_t nl = strlen(e->d_name);

		if (nl < 4 || (strcasecmp(e->d_name + nl - 4, ".vhd") &&
			       (nl < 5 || strcasecmp(e->d_name + nl - 5, ".avhd"))))
			continue;
		snprintf(cpath, sizeof(cpath), "%s/%s", parent->dir, e->d_name);
		if (realpath(cpath, real) && !strcmp(real, real_child))
			continue;
		if (vhd_open(cpath, &o, &s, &err) < 0)
			continue;
		if (s->type == VHD_TYPE_DIFF &&
		    !memcmp(s->header.parent_uuid, parent->footer.uuid, 16)) {
			int k = snprintf(list + used, len - used, "%s%s",
					 n ? ", " : "", e->d_name);

			if (k > 0 && (size_t)k < len - used)
				used += (size_t)k;
			n++;
		}
		vhd_close(s);
	}
	closedir(d);
	return n;
}

/* Calls fn for each run of sectors present in layer v itself. */
static int for_each_own_run(struct vhd *v,
			    int (*fn)(void *ctx, uint64_t off, uint64_t len),
			    void *ctx, const struct vhd_progress *progress)
{
	for (uint32_t b = 0; b < v->max_entries; b++) {
		uint64_t base = (uint64_t)b * v->block_size;
		struct vhd_bitmap *bm;
		int r;

		r = vhd_report(progress, base, v->size);
		if (r < 0)
			return r;
		if (v->bat[b] == VHD_BAT_UNUSED || base >= v->size)
			continue;
		r = vhd_load_bitmap(v, b, &bm);
		if (r < 0)
			return r;
		for (uint32_t s = 0; s < v->sectors_per_block;) {
			uint32_t k = 0;

			while (s + k < v->sectors_per_block &&
			       (!bm || (bm->bits[(s + k) >> 3] & (0x80u >> ((s + k) & 7)))))
				k++;
			if (k) {
				uint64_t off = base + (uint64_t)s * VHD_SECTOR_SIZE;
				uint64_t len = (uint64_t)k * VHD_SECTOR_SIZE;

				if (off < v->size) {
					if (len > v->size - off)
						len = v->size - off;
					r = fn(ctx, off, len);
					if (r < 0)
						return r;
				}
				s += k;
			} else {
				s++;
			}
		}
	}
	return vhd_report(progress, v->size, v->size);
}

struct copy_ctx {
	struct vhd *from, *to;
	uint8_t *buf;
};

static int copy_run(void *p, uint64_t off, uint64_t len)
{
	struct copy_ctx *c = p;

	while (len) {
		size_t n = len < (4u << 20) ? (size_t)len : (4u << 20);
		ssize_t r = vhd_pread(c->from, c->buf, n, off);

		if (r >= 0 && off + n > c->to->size)
			return -ERANGE;
		if (r >= 0)
			r = vhd_pwrite(c->to, c->buf, n, off);
		if (r < 0)
			return (int)r;
		off += n;
		len -= n;
	}
	return 0;
}

int vhd_commit(const char *child, unsigned open_flags, bool keep_child,
	       bool force, vhd_warn_fn warn, void *warn_opaque,
	       const struct vhd_progress *progress, struct vhd_error *err)
{
	unsigned ign = open_flags & (VHD_OPEN_IGNORE_CHECKSUMS | VHD_OPEN_IGNORE_PARENT_ID);
	struct vhd_open_opts co = { .flags = ign | VHD_OPEN_RDWR,
				    .warn = warn, .warn_opaque = warn_opaque };
	struct vhd_open_opts po = { .flags = ign | VHD_OPEN_RDWR,
				    .warn = warn, .warn_opaque = warn_opaque };
	struct vhd *c = NULL, *p = NULL;
	struct copy_ctx ctx = { 0 };
	char siblings[1024], *ppath = NULL;
	int r, n;

	/* The child, exclusively, with its chain read-only to find and
	 * validate the parent; then the parent reopened for writing. */
	r = vhd_open(child, &co, &c, err);
	if (r < 0)
		return r;
	if (c->type != VHD_TYPE_DIFF) {
		r = vhd_set_error(err, -EINVAL, "%s: not a differencing disk", child);
		goto out;
	}
	ppath = strdup(c->parent->name);
	vhd_rmap_free(c);	/* it points into the chain that closes */
	vhd_close(c->parent);
	c->parent = NULL;
	if (!ppath) {
		r = vhd_set_error(err, -ENOMEM, "%s: out of memory", child);
		goto out;
	}
	r = vhd_open(ppath, &po, &p, err);
	if (r < 0)
		goto out;
	if (p->size < c->size) {
		r = vhd_set_error(err, -EINVAL,
				  "%s: larger (%llu bytes) than its parent %s (%llu bytes); resize the parent first",
				  child, (unsigned long long)c->size, ppath,
				  (unsigned long long)p->size);
		goto out;
	}
	n = find_siblings(p, child, siblings, sizeof(siblings));
	if (n && !force) {
		r = vhd_set_error(err, -EBUSY,
				  "%s: %s has %d other differencing disk%s (%s) that committing would invalidate; use --force",
				  child, ppath, n, n > 1 ? "s" : "", siblings);
		goto out;
	}
	vhd_warnf(warn, warn_opaque,
		  "%s: committing into %s; any other differencing disk of %s becomes invalid%s%s",
		  child, ppath, ppath, n ? ": " : "", n ? siblings : "");
	ctx.from = c;
	ctx.to = p;
	ctx.buf = malloc(4u << 20);
	if (!ctx.buf) {
		r = vhd_set_error(err, -ENOMEM, "%s: out of memory", child);
		goto out;
	}
	/* Until the parent is flushed the child still overrides every sector
	 * copied, so the chain reads the same at every point; a crash means
	 * running commit again. */
	r = for_each_own_run(c, copy_run, &ctx, progress);
	if (r < 0) {
		vhd_set_error(err, r, "%s: %s", child,
			      r == -ECANCELED ? "commit cancelled; the chain is unchanged"
					      : strerror(-r));
		goto out;
	}
	r = vhd_flush(p);
	if (r >= 0) {
		/* The parent changed: its time stamp says so, and children
		 * made before see the mismatch. */
		uint32_t now = vhd_now();

		/* Strictly later, even within the second it was made in. */
		p->footer.timestamp = now > p->footer.timestamp ? now
								: p->footer.timestamp + 1;
		r = vhd_update_footer(p);
	}
	if (r < 0) {
		vhd_set_error(err, r, "%s: %s", ppath, strerror(-r));
		goto out;
	}
	if (keep_child) {
		/* The child stays valid over the merged parent (its sectors
		 * equal the parent's now); it records the new time stamp so
		 * that opening it does not warn. */
		c->header.parent_timestamp = p->footer.timestamp;
		r = vhd_write_header(c);
		if (r >= 0)
			r = c->file->ops->flush(c->file);
		if (r < 0)
			vhd_set_error(err, r, "%s: %s", child, strerror(-r));
	} else if (unlink(child) < 0) {
		r = vhd_set_error(err, -errno, "%s: merged, but removing it failed: %s",
				  child, strerror(errno));
	}
out:
	free(ctx.buf);
	free(ppath);
	vhd_close(p);
	vhd_close(c);
	return r < 0 ? r : 0;
}

/* Rebase: where the child reads through, the old and new chains must
 * agree; where they do not, the old chain's data is copied into the child
 * first.  Then the header points at the new parent. */
struct rebase_ctx {
	struct vhd *child, *old, *new_parent;
	uint8_t *a, *b;
};

static int rebase_range(struct rebase_ctx *c, uint64_t off, uint64_t len)
{
	while (len) {
		size_t n = len < (1u << 20) ? (size_t)len : (1u << 20);
		int r;

		r = c->old ? (int)vhd_pread(c->old, c->a, n, off) : 0;
		if (!c->old)
			memset(c->a, 0, n);
		if (r < 0)
			return r;
		if (off < c->new_parent->size) {
			size_t in = c->new_parent->size - off < n
					    ? (size_t)(c->new_parent->size - off) : n;

			r = (int)vhd_pread(c->new_parent, c->b, in, off);
			if (r < 0)
				return r;
			memset(c->b + in, 0, n - in);
		} else {
			memset(c->b, 0, n);
		}
		for (size_t s = 0; s < n;) {
			size_t k = 0;

			while (s + k < n && memcmp(c->a + s + k, c->b + s + k, VHD_SECTOR_SIZE))
				k += VHD_SECTOR_SIZE;
			if (k) {
				r = (int)vhd_pwrite(c->child, c->a + s, k, off + s);
				if (r < 0)
					return r;
				s += k;
			} else {
				s += VHD_SECTOR_SIZE;
			}
		}
		off += n;
		len -= n;
	}
	return 0;
}

static int set_locators(struct vhd *v, const char *parent_path);

int vhd_rebase(const char *child, const char *new_parent, unsigned open_flags,
	       const struct vhd_progress *progress, struct vhd_error *err)
{
	unsigned ign = open_flags & (VHD_OPEN_IGNORE_CHECKSUMS | VHD_OPEN_IGNORE_PARENT_ID);
	struct vhd_open_opts co = { .flags = ign | VHD_OPEN_RDWR };
	struct vhd_open_opts po = { .flags = ign };
	struct rebase_ctx ctx = { 0 };
	struct vhd *c = NULL, *np = NULL;
	uint64_t off = 0;
	int r;

	/* A disk cannot become its own ancestor.  Looked at before taking
	 * locks: the new chain would otherwise meet the child's own lock. */
	r = vhd_open(child, &(struct vhd_open_opts){ .flags = ign | VHD_OPEN_NO_LOCK |
								 VHD_OPEN_NO_PARENT },
		     &c, err);
	if (r < 0)
		return r;
	r = vhd_open(new_parent, &(struct vhd_open_opts){ .flags = ign | VHD_OPEN_NO_LOCK },
		     &np, err);
	if (r < 0)
		goto out;
	for (struct vhd *q = np; q; q = q->parent) {
		if (!memcmp(q->footer.uuid, c->footer.uuid, 16)) {
			r = vhd_set_error(err, -ELOOP, "%s: %s is the child itself or made from it",
					  child, new_parent);
			goto out;
		}
	}
	vhd_close(np);
	vhd_close(c);
	np = c = NULL;

	r = vhd_open(child, &co, &c, err);
	if (r < 0)
		return r;
	if (c->type != VHD_TYPE_DIFF) {
		r = vhd_set_error(err, -EINVAL, "%s: not a differencing disk", child);
		goto out;
	}
	r = vhd_open(new_parent, &po, &np, err);
	if (r < 0)
		goto out;
	ctx.child = c;
	ctx.old = c->parent;
	ctx.new_parent = np;
	ctx.a = malloc(1u << 20);
	ctx.b = malloc(1u << 20);
	if (!ctx.a || !ctx.b) {
		r = vhd_set_error(err, -ENOMEM, "%s: out of memory", child);
		goto out;
	}
	/* Only ranges the child reads through need comparing, and of those
	 * not the ones both chains leave unallocated. */
	while (off < c->size) {
		struct vhd_extent e;

		r = vhd_report(progress, off, c->size);
		if (r < 0)
			break;
		r = vhd_map(c, off, c->size - off, &e);
		if (r < 0)
			break;
		if (e.kind == VHD_EXT_DATA && e.depth == 0) {
			off += e.len;
			continue;
		}
		if (e.kind == VHD_EXT_ZERO) {
			struct vhd_extent f;

			if (off >= np->size)
				goto next;
			r = vhd_map(np, off, (e.len < np->size - off ? e.len : np->size - off), &f);
			if (r < 0)
				break;
			if (f.kind == VHD_EXT_ZERO) {
				e.len = f.len;
				goto next;
			}
			e.len = f.len;
		}
		r = rebase_range(&ctx, off, e.len);
		if (r < 0)
			break;
next:
		off += e.len;
	}
	if (r < 0) {
		vhd_set_error(err, r, "%s: %s", child,
			      r == -ECANCELED ? "rebase cancelled; the child still reads as before"
					      : strerror(-r));
		goto out;
	}
	/* Data first, durable; then the header that names the new parent. */
	r = vhd_flush(c);
	if (r >= 0) {
		memcpy(c->header.parent_uuid, np->footer.uuid, 16);
		c->header.parent_timestamp = np->footer.timestamp;
		r = set_locators(c, new_parent);
	}
	if (r >= 0)
		r = vhd_write_header(c);
	if (r >= 0)
		r = c->file->ops->flush(c->file);
	if (r < 0)
		vhd_set_error(err, r, "%s: updating the header: %s", child, strerror(-r));
out:
	free(ctx.a);
	free(ctx.b);
	vhd_close(np);
	vhd_close(c);
	return r < 0 ? r : 0;
}

/* Points the header's parent name and locators at parent_path.  Locator
 * text is written where the old locators were if it fits, else appended
 * after everything in use (and the footer moved after it). */
static int set_locators(struct vhd *v, const char *parent_path)
{
	char abs[PATH_MAX], rel[PATH_MAX + 8];
	uint8_t text[3][8192];
	size_t len[3];
	uint32_t codes[3] = { VHD_PLAT_W2RU, VHD_PLAT_W2KU, VHD_PLAT_MACX };
	ssize_t n;
	int r;

	if (!realpath(parent_path, abs))
		return -errno;
	vhd_relative_path(v->dir, abs, rel, sizeof(rel));
	memset(v->header.parent_name, 0, sizeof(v->header.parent_name));
	n = vhd_utf8_to_utf16(abs, true, v->header.parent_name,
			      sizeof(v->header.parent_name));
	if (n < 0)
		return (int)n;
	memset(text, 0, sizeof(text));
	n = vhd_utf8_to_utf16(rel, false, text[0], sizeof(text[0]));
	if (n < 0)
		return (int)n;
	len[0] = (size_t)n;
	n = vhd_utf8_to_utf16(abs, false, text[1], sizeof(text[1]));
	if (n < 0)
		return (int)n;
	len[1] = (size_t)n;
	n = snprintf((char *)text[2], sizeof(text[2]), "file://%s", abs);
	if (n < 0 || (size_t)n >= sizeof(text[2]))
		return -ENAMETOOLONG;
	len[2] = (size_t)n;

	/* The existing locator slots, largest first reuse. */
	struct vhd_locator old[VHD_NR_LOCATORS];
	bool used[VHD_NR_LOCATORS] = { false };
	bool appended = false;

	memcpy(old, v->header.loc, sizeof(old));
	memset(v->header.loc, 0, sizeof(v->header.loc));
	for (int i = 0; i < 3; i++) {
		struct vhd_locator *l = &v->header.loc[i];
		uint64_t need = vhd_round_up(len[i], VHD_SECTOR_SIZE);
		int slot = -1;

		for (int k = 0; k < VHD_NR_LOCATORS; k++) {
			if (used[k] || old[k].code == VHD_PLAT_NONE || !old[k].data_len)
				continue;
			if (vhd_locator_space_bytes(&old[k]) >= need &&
			    old[k].data_off + need <= v->file_size) {
				slot = k;
				break;
			}
		}
		l->code = codes[i];
		l->data_len = (uint32_t)len[i];
		if (slot >= 0) {
			used[slot] = true;
			l->data_off = old[slot].data_off;
			l->data_space = (uint32_t)vhd_locator_space_bytes(&old[slot]);
		} else {
			l->data_off = v->data_end;
			l->data_space = (uint32_t)need;
			v->data_end += need;
			appended = true;
		}
		r = vhd_write_exact(v->file, text[i], (size_t)need, l->data_off);
		if (r < 0)
			return r;
	}
	if (appended) {
		/* The footer moves after the new locator data, durably, before
		 * the header refers to it. */
		v->footer_off = v->data_end;
		r = vhd_write_footer(v, v->footer_off, false);
		if (r >= 0)
			r = v->file->ops->truncate(v->file, v->footer_off + VHD_FOOTER_SIZE);
		if (r < 0)
			return r;
		v->file_size = v->footer_off + VHD_FOOTER_SIZE;
	}
	return v->file->ops->flush(v->file);
}

/*
 * Live snapshot.  The running handle v becomes the new child; its old
 * contents become the child's read-only parent.  The caller's I/O simply
 * goes on through v: no request can see a moment without a disk.
 */
static unsigned snapshot_open_flags(const struct vhd *v)
{
	return v->flags & (VHD_OPEN_IGNORE_CHECKSUMS | VHD_OPEN_IGNORE_PARENT_ID |
			   VHD_OPEN_NO_SYNC);
}

/* child (open for writing, without its parent) goes on top of v's chain,
 * through the handle v. */
static int snapshot_attach(struct vhd *v, struct vhd *child, struct vhd_error *err)
{
	struct vhd *old = malloc(sizeof(*old));
	int fd;

	if (!old) {
		vhd_close(child);
		return vhd_set_error(err, -ENOMEM, "%s: out of memory", v->name);
	}
	/* The old layer keeps its file but only reads it, under a shared
	 * lock, so that other readers of the chain may open it. */
	*old = *v;
	/* The map holds v's chain resolved; old is read only as a parent
	 * now, which the walk serves, and v starts without one. */
	vhd_rmap_free(old);
	old->flags &= ~VHD_OPEN_RDWR;
	fd = vhd_get_fd(old);
	if (fd >= 0)
		flock(fd, LOCK_SH | LOCK_NB);
	*v = *child;
	free(child);
	v->parent = old;
	free(v->parent_path);
	v->parent_path = strdup(old->name);
	for (struct vhd *q = old; q; q = q->parent)
		q->depth++;
	return 0;
}

int vhd_snapshot(struct vhd *v, const char *child_path, struct vhd_error *err)
{
	struct vhd_create_opts co = {
		.type = VHD_TYPE_DIFF,
		.parent = v->name,
		/* v holds the exclusive lock: the parent is read through it. */
		.open_flags = VHD_OPEN_NO_LOCK | (v->flags & (VHD_OPEN_IGNORE_CHECKSUMS |
							      VHD_OPEN_IGNORE_PARENT_ID)),
		.warn = v->warn, .warn_opaque = v->warn_opaque,
	};
	struct vhd_open_opts oo = {
		.flags = VHD_OPEN_RDWR | VHD_OPEN_NO_PARENT | snapshot_open_flags(v),
		.warn = v->warn, .warn_opaque = v->warn_opaque,
	};
	struct vhd *child = NULL;
	int r;

	if (!vhd_is_writable(v))
		return vhd_set_error(err, -EROFS, "%s: not open for writing", v->name);
	r = vhd_flush(v);
	if (r < 0)
		return vhd_set_error(err, r, "%s: %s", v->name, strerror(-r));
	r = vhd_create(child_path, &co, err);
	if (r < 0)
		return r;
	r = vhd_open(child_path, &oo, &child, err);
	if (r >= 0)
		r = snapshot_attach(v, child, err);
	if (r < 0)
		unlink(child_path);
	return r;
}

int vhd_snapshot_file(struct vhd *v, struct vhd_file *f, const char *child_name,
		      struct vhd_error *err)
{
	struct vhd_open_opts oo = {
		.flags = VHD_OPEN_RDWR | VHD_OPEN_NO_PARENT | snapshot_open_flags(v),
		.warn = v->warn, .warn_opaque = v->warn_opaque,
	};
	struct vhd *child = NULL;
	int r;

	if (!vhd_is_writable(v)) {
		f->ops->close(f);
		return vhd_set_error(err, -EROFS, "%s: not open for writing", v->name);
	}
	r = vhd_flush(v);
	if (r < 0) {
		f->ops->close(f);
		return vhd_set_error(err, r, "%s: %s", v->name, strerror(-r));
	}
	r = vhd_open_file(f, child_name, &oo, &child, err);
	if (r < 0)
		return r;
	/* What the caller made must be a child of exactly this layer, or
	 * the chain would read another disk's sectors through it. */
	if (child->type != VHD_TYPE_DIFF || child->size != v->size ||
	    memcmp(child->header.parent_uuid, v->footer.uuid, 16)) {
		vhd_close(child);
		return vhd_set_error(err, -EINVAL, "%s: not a differencing disk over %s",
				     child_name, v->name);
	}
	return snapshot_attach(v, child, err);
}
