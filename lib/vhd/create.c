// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Creating fixed, dynamic and differencing disks, and describing them.
 *
 * The creator application vsrv writes is "win ", Hyper-V's, because that is
 * what the field means to readers: qemu sizes a disk by its CHS geometry
 * (which rounds most sizes down) for every creator it does not know to mean
 * current_size, and it knows "win ".  A vsrv disk has Hyper-V's semantics
 * exactly: the size is current_size, the geometry is the specification's.
 * The creator version ("vs" and a number) tells vsrv's disks apart.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vhd-private.h"

#define VHD_CREATOR_VERSION	0x76730001u	/* "vs", vsrv 0.1 */
#define VHD_MAX_BLOCK_SIZE	(256u << 20)

static void footer_init(struct vhd_footer *f, enum vhd_type type,
			uint64_t size, const struct vhd_create_opts *o)
{
	memset(f, 0, sizeof(*f));
	memcpy(f->cookie, VHD_COOKIE, 8);
	f->features = VHD_FEATURES_RESERVED;
	f->version = VHD_VERSION;
	f->data_offset = type == VHD_TYPE_FIXED ? VHD_NO_OFFSET : VHD_FOOTER_SIZE;
	f->timestamp = o->timestamp ? o->timestamp : vhd_now();
	memcpy(f->creator_app, "win ", 4);
	f->creator_version = VHD_CREATOR_VERSION;
	f->creator_os = VHD_OS_WI2K;
	f->original_size = size;
	f->current_size = size;
	vhd_geometry(size, &f->cylinders, &f->heads, &f->sectors);
	f->type = type;
	if (o->uuid)
		memcpy(f->uuid, o->uuid, 16);
	else
		vhd_uuid_generate(f->uuid);
}

/* The parent's path relative to the child's directory, in the Windows
 * form the W2ru locator holds (".\base.vhd", "..\images\base.vhd"). */
void vhd_relative_path(const char *child_dir, const char *parent_abs,
			  char *out, size_t len)
{
	char cd[PATH_MAX];
	const char *p = parent_abs, *c;
	size_t common = 0, i;
	int n = 0;

	if (!realpath(child_dir, cd))
		snprintf(cd, sizeof(cd), "%s", child_dir);
	/* Longest common directory prefix. */
	for (i = 0; cd[i] && cd[i] == p[i]; i++)
		if (cd[i] == '/')
			common = i;
	if (!cd[i] && p[i] == '/')
		common = i;
	out[0] = '\0';
	c = cd + common;
	if (*c == '/' && c[1] != '\0') {
		for (; *c; c++)
			if (*c == '/')
				n += snprintf(out + n, len - (size_t)n, "..\\");
	} else if (!cd[common] || (cd[common] == '/' && !cd[common + 1])) {
		n = snprintf(out, len, ".\\");
	}
	if (!n)
		n = snprintf(out, len, ".\\");
	snprintf(out + n, len - (size_t)n, "%s", p + common + 1);
	for (char *q = out; *q; q++)
		if (*q == '/')
			*q = '\\';
}

static int write_locator(struct vhd_file *f, struct vhd_locator *l,
			 uint32_t code, const char *text, uint64_t off)
{
	uint8_t buf[8192];
	ssize_t n;

	memset(buf, 0, sizeof(buf));
	if (code == VHD_PLAT_MACX) {
		n = snprintf((char *)buf, sizeof(buf), "file://%s", text);
		if (n < 0 || (size_t)n >= sizeof(buf))
			return -ENAMETOOLONG;
	} else {
		n = vhd_utf8_to_utf16(text, false, buf, sizeof(buf));
		if (n < 0)
			return (int)n;
	}
	l->code = code;
	l->data_len = (uint32_t)n;
	/* Bytes, as Windows writes it (the 2006 text says sectors). */
	l->data_space = (uint32_t)vhd_round_up((uint64_t)n, VHD_SECTOR_SIZE);
	l->data_off = off;
	return vhd_write_exact(f, buf, l->data_space, off);
}

static int create_fixed(struct vhd_file *f, const char *name,
			const struct vhd_footer *ft, bool prealloc,
			struct vhd_error *err)
{
	uint8_t buf[VHD_FOOTER_SIZE];
	int r, fd = f->ops->get_fd ? f->ops->get_fd(f) : -1;

	if (prealloc && fd >= 0 && fallocate(fd, 0, 0, (off_t)ft->current_size) < 0)
		return vhd_set_error(err, -errno, "%s: preallocating %llu bytes: %s",
				     name, (unsigned long long)ft->current_size,
				     strerror(errno));
	r = f->ops->truncate(f, ft->current_size);
	if (r < 0)
		return vhd_set_error(err, r, "%s: %s", name, strerror(-r));
	vhd_footer_encode(ft, buf);
	r = vhd_write_exact(f, buf, sizeof(buf), ft->current_size);
	if (r < 0)
		return vhd_set_error(err, r, "%s: writing the footer: %s", name,
				     strerror(-r));
	return 0;
}

int vhd_create_file(struct vhd_file *f, const char *name,
		    const struct vhd_create_opts *o, struct vhd_error *err)
{
	struct vhd_footer ft;
	struct vhd_header h;
	uint8_t buf[VHD_HEADER_SIZE];
	uint64_t size = o->size, bat_bytes, off;
	uint32_t bs = o->block_size ? o->block_size : VHD_DEFAULT_BLOCK_SIZE;
	struct vhd *parent = NULL;
	int r;

	if (o->type != VHD_TYPE_FIXED && o->type != VHD_TYPE_DYNAMIC &&
	    o->type != VHD_TYPE_DIFF)
		return vhd_set_error(err, -EINVAL, "%s: unknown disk type %d",
				     name, o->type);
	if (o->type == VHD_TYPE_DIFF) {
		struct vhd_open_opts po = {
			.flags = (o->open_flags & (VHD_OPEN_IGNORE_CHECKSUMS |
						   VHD_OPEN_IGNORE_PARENT_ID |
						   VHD_OPEN_NO_LOCK)),
			.warn = o->warn, .warn_opaque = o->warn_opaque,
		};

		if (!o->parent)
			return vhd_set_error(err, -EINVAL,
					     "%s: a differencing disk needs a parent",
					     name);
		r = vhd_open(o->parent, &po, &parent, err);
		if (r < 0)
			return r;
		size = parent->size;
	}
	if (o->azure) {
		if (o->type != VHD_TYPE_FIXED) {
			r = vhd_set_error(err, -EINVAL,
					  "%s: Azure accepts only fixed VHDs (use --type fixed)",
					  name);
			goto out;
		}
		size = vhd_round_up(size, 1u << 20);
	}
	if (size == 0) {
		r = vhd_set_error(err, -EINVAL, "%s: size must be above zero", name);
		goto out;
	}
	size = vhd_round_up(size, VHD_SECTOR_SIZE);
	if (size > VHD_MAX_SIZE) {
		r = vhd_set_error(err, -EFBIG,
				  "%s: size %llu exceeds the VHD limit of 2040 GiB",
				  name, (unsigned long long)size);
		goto out;
	}
	if (bs < VHD_SECTOR_SIZE || bs > VHD_MAX_BLOCK_SIZE || (bs & (bs - 1))) {
		r = vhd_set_error(err, -EINVAL,
				  "%s: block size %u is not a power of two from 512 bytes to 256 MiB",
				  name, bs);
		goto out;
	}
	footer_init(&ft, o->type, size, o);
	if (o->type == VHD_TYPE_FIXED) {
		r = create_fixed(f, name, &ft, o->preallocate, err);
		goto out;
	}

	memset(&h, 0, sizeof(h));
	memcpy(h.cookie, VHD_HDR_COOKIE, 8);
	h.data_offset = VHD_NO_OFFSET;
	h.table_offset = VHD_FOOTER_SIZE + VHD_HEADER_SIZE;
	h.version = VHD_VERSION;
	h.max_entries = (uint32_t)((size + bs - 1) / bs);
	h.block_size = bs;
	bat_bytes = vhd_round_up((uint64_t)h.max_entries * 4, VHD_SECTOR_SIZE);
	off = h.table_offset + bat_bytes;

	if (parent) {
		char abs[PATH_MAX], rel[PATH_MAX], *dir = vhd_dirname(name);
		ssize_t n;

		if (!realpath(o->parent, abs) || !dir) {
			free(dir);
			r = vhd_set_error(err, -errno, "%s: %s", o->parent,
					  strerror(errno));
			goto out;
		}
		vhd_relative_path(dir, abs, rel, sizeof(rel));
		free(dir);
		memcpy(h.parent_uuid, parent->footer.uuid, 16);
		h.parent_timestamp = parent->footer.timestamp;
		/* Windows stores the parent's full path as its name; readers
		 * that look for the parent by name use its last component. */
		n = vhd_utf8_to_utf16(abs, true, h.parent_name,
				      sizeof(h.parent_name));
		if (n < 0) {
			r = vhd_set_error(err, (int)n,
					  "%s: parent path too long for the header (%zu bytes)",
					  name, strlen(abs));
			goto out;
		}
		r = write_locator(f, &h.loc[0], VHD_PLAT_W2RU, rel, off);
		if (r >= 0) {
			off += h.loc[0].data_space;
			r = write_locator(f, &h.loc[1], VHD_PLAT_W2KU, abs, off);
		}
		if (r >= 0) {
			off += h.loc[1].data_space;
			r = write_locator(f, &h.loc[2], VHD_PLAT_MACX, abs, off);
		}
		if (r < 0) {
			r = vhd_set_error(err, r, "%s: writing parent locators: %s",
					  name, strerror(-r));
			goto out;
		}
		off += h.loc[2].data_space;
	}

	{
		/* The BAT, all unused, in chunks. */
		uint8_t ff[64 * 1024];

		memset(ff, 0xff, sizeof(ff));
		for (uint64_t done = 0; done < bat_bytes;) {
			size_t n = bat_bytes - done < sizeof(ff) ? (size_t)(bat_bytes - done)
								 : sizeof(ff);

			r = vhd_write_exact(f, ff, n, h.table_offset + done);
			if (r < 0)
				goto io_fail;
			done += n;
		}
	}
	vhd_header_encode(&h, buf);
	r = vhd_write_exact(f, buf, VHD_HEADER_SIZE, VHD_FOOTER_SIZE);
	if (r < 0)
		goto io_fail;
	vhd_footer_encode(&ft, buf);
	r = vhd_write_exact(f, buf, VHD_FOOTER_SIZE, 0);
	if (r >= 0)
		r = vhd_write_exact(f, buf, VHD_FOOTER_SIZE, off);
	if (r >= 0)
		r = f->ops->truncate(f, off + VHD_FOOTER_SIZE);
	if (r >= 0)
		r = f->ops->flush(f);
	if (r < 0)
		goto io_fail;
	goto out;
io_fail:
	r = vhd_set_error(err, r, "%s: %s", name, strerror(-r));
out:
	vhd_close(parent);
	return r < 0 ? r : 0;
}

int vhd_create(const char *path, const struct vhd_create_opts *o,
	       struct vhd_error *err)
{
	struct vhd_file *f;
	int r = vhd_file_create_posix(path, &f, err);

	if (r < 0)
		return r;
	r = vhd_create_file(f, path, o, err);
	if (r >= 0)
		r = f->ops->flush(f);
	f->ops->close(f);
	if (r < 0)
		unlink(path);
	return r;
}

int vhd_get_info(struct vhd *v, struct vhd_info *in)
{
	memset(in, 0, sizeof(*in));
	in->type = v->type;
	in->size = v->size;
	in->current_size = v->footer.current_size;
	in->original_size = v->footer.original_size;
	in->cylinders = v->footer.cylinders;
	in->heads = v->footer.heads;
	in->sectors_per_track = v->footer.sectors;
	in->file_size = v->file_size;
	in->timestamp = v->footer.timestamp;
	memcpy(in->creator_app, v->footer.creator_app, 4);
	for (int i = 0; i < 4; i++)
		if ((unsigned char)in->creator_app[i] < 0x20 ||
		    (unsigned char)in->creator_app[i] >= 0x7f)
			in->creator_app[i] = '?';
	in->creator_version = v->footer.creator_version;
	vhd_plat_name(v->footer.creator_os, in->creator_os);
	memcpy(in->uuid, v->footer.uuid, 16);
	in->saved_state = v->footer.saved_state;
	in->features = v->footer.features;
	if (v->type == VHD_TYPE_FIXED)
		return 0;
	in->block_size = v->block_size;
	in->max_blocks = v->max_entries;
	for (uint32_t i = 0; i < v->max_entries; i++)
		if (v->bat[i] != VHD_BAT_UNUSED)
			in->allocated_blocks++;
	if (v->type != VHD_TYPE_DIFF)
		return 0;
	memcpy(in->parent_uuid, v->header.parent_uuid, 16);
	in->parent_timestamp = v->header.parent_timestamp;
	vhd_utf16_to_utf8(v->header.parent_name, sizeof(v->header.parent_name),
			  true, in->parent_name, sizeof(in->parent_name));
	if (v->parent_path)
		snprintf(in->parent_path, sizeof(in->parent_path), "%s",
			 v->parent_path);
	for (int i = 0; i < VHD_NR_LOCATORS; i++) {
		const struct vhd_locator *l = &v->header.loc[i];
		struct vhd_locator_info *li = &in->locators[in->nr_locators];

		if (l->code == VHD_PLAT_NONE)
			continue;
		vhd_plat_name(l->code, li->code);
		li->data_space = l->data_space;
		li->data_len = l->data_len;
		li->data_off = l->data_off;
		vhd_locator_text(v, i, li->path, sizeof(li->path));
		in->nr_locators++;
	}
	return 0;
}

const char *vhd_name(struct vhd *v) { return v->name; }
struct vhd *vhd_parent(struct vhd *v) { return v->parent; }
uint64_t vhd_size(struct vhd *v) { return v->size; }
enum vhd_type vhd_get_type(struct vhd *v) { return v->type; }
uint32_t vhd_block_size(struct vhd *v) { return v->type == VHD_TYPE_FIXED ? 0 : v->block_size; }
void vhd_get_uuid(struct vhd *v, uint8_t uuid[16]) { memcpy(uuid, v->footer.uuid, 16); }

bool vhd_layer_empty(struct vhd *v)
{
	if (v->type == VHD_TYPE_FIXED)
		return false;
	for (uint32_t i = 0; i < v->max_entries; i++)
		if (v->bat[i] != VHD_BAT_UNUSED)
			return false;
	return true;
}

bool vhd_probe(const char *path)
{
	uint8_t b[VHD_FOOTER_SIZE];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	off_t end;
	bool yes = false;

	if (fd < 0)
		return false;
	if (pread(fd, b, 8, 0) == 8 && memcmp(b, VHD_COOKIE, 8) == 0)
		yes = true;
	end = lseek(fd, 0, SEEK_END);
	if (!yes && end >= VHD_FOOTER_SIZE &&
	    pread(fd, b, 8, end - VHD_FOOTER_SIZE) == 8 &&
	    memcmp(b, VHD_COOKIE, 8) == 0)
		yes = true;
	if (!yes && end >= 511 && pread(fd, b, 8, end - 511) == 8 &&
	    memcmp(b, VHD_COOKIE, 8) == 0)
		yes = true;
	close(fd);
	return yes;
}
