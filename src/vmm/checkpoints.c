// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The checkpoints of one VM (docs/control.md, "Checkpoints"): a folder
 * (vsrv run --checkpoints DIR) holding NAME.state, each a saved state
 * (snapshot.c), and index.json, the tree: each checkpoint's parent (the
 * checkpoint the VM came from when it was taken), its time and size, and
 * which one the VM runs from now.  The index is replaced whole (written
 * beside, synced, renamed), so a crash leaves the old one or the new.
 * The supervisor's: it is not confined.
 *
 * With writable disks the index also holds each disk's chain: the layers
 * vsrv made over its base (each file and the one under it), which of them
 * the VM runs on (its top), and for each checkpoint the layer it froze.
 * A layer is needed while a checkpoint froze it, the VM runs on it, or
 * another layer stands on it; what the rules below find unneeded,
 * disks.c removes or merges (ckpt_disk_step).  This file is the tree
 * alone: no disk is opened here.
 *
 *   {"version": 2, "current": "B",
 *    "checkpoints": [{"name", "parent", "time", "bytes",
 *                     "disks": {"/vm/disk.vhd": "/vm/disk.A.avhd"}}],
 *    "disks": [{"base": "/vm/disk.vhd", "top": "/vm/disk.B.avhd",
 *               "layers": [{"file": "/vm/disk.A.avhd", "parent": "/vm/disk.vhd"},
 *                          {"file": "/vm/disk.B.avhd", "parent": "/vm/disk.A.avhd"}]}]}
 *
 * Paths are absolute (a base's real path, its layers beside it), so that
 * another working directory finds the same files.  An index of version 1
 * (checkpoints without disks) reads as one without layers; an older vsrv
 * refuses version 2 rather than run a disk's base under its layers.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "control.h"

#define INDEX_VERSION	2

struct ckpt_index {
	char *dir, *path;	/* the folder, its index.json */
	json_t *root;		/* {"version", "current", "checkpoints", "disks"} */
};

bool ckpt_name_ok(const char *name)
{
	size_t n = strlen(name);

	if (n < 1 || n > 64 || name[0] == '.')
		return false;
	for (; *name; name++)
		if (!((*name >= 'a' && *name <= 'z') || (*name >= 'A' && *name <= 'Z') ||
		      (*name >= '0' && *name <= '9') || *name == '.' || *name == '_' ||
		      *name == '-'))
			return false;
	return true;
}

int ckpt_open(struct ckpt_index **out, const char *dir, char *err, size_t errlen)
{
	struct ckpt_index *c = calloc(1, sizeof(*c));
	json_error_t je;
	json_int_t v;

	if (!c || !(c->dir = strdup(dir)) || asprintf(&c->path, "%s/index.json", dir) < 0) {
		if (c)
			free(c->dir);
		free(c);
		snprintf(err, errlen, "checkpoints: out of memory");
		return -ENOMEM;
	}
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		snprintf(err, errlen, "checkpoints: %s: %s", dir, strerror(errno));
		goto fail;
	}
	if (access(c->path, F_OK) == 0) {
		c->root = json_load_file(c->path, JSON_REJECT_DUPLICATES, &je);
		v = json_integer_value(json_object_get(c->root, "version"));
		if (!json_is_array(json_object_get(c->root, "checkpoints")) || v < 1 ||
		    v > INDEX_VERSION || (json_object_get(c->root, "disks") &&
					  !json_is_array(json_object_get(c->root, "disks")))) {
			snprintf(err, errlen, "checkpoints: %s: not an index of version 1 or %d%s%s",
				 c->path, INDEX_VERSION, c->root ? "" : ": ",
				 c->root ? "" : je.text);
			goto fail;
		}
	} else {
		c->root = json_pack("{s:n,s:[]}", "current", "checkpoints");
	}
	json_object_set_new(c->root, "version", json_integer(INDEX_VERSION));
	if (!json_object_get(c->root, "disks"))
		json_object_set_new(c->root, "disks", json_array());
	*out = c;
	return 0;
fail:
	ckpt_close(c);
	return -EINVAL;
}

void ckpt_close(struct ckpt_index *c)
{
	if (!c)
		return;
	json_decref(c->root);
	free(c->dir);
	free(c->path);
	free(c);
}

char *ckpt_path(const struct ckpt_index *c, const char *name)
{
	char *p;

	return asprintf(&p, "%s/%s.state", c->dir, name) < 0 ? NULL : p;
}

static const char *str(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/* The element of array whose member `key` is the string `value`, and
 * where it is. */
static json_t *find_in(json_t *array, const char *key, const char *value, size_t *index)
{
	json_t *e;
	size_t i;

	json_array_foreach(array, i, e)
		if (!strcmp(str(e, key) ?: "", value)) {
			if (index)
				*index = i;
			return e;
		}
	return NULL;
}

static json_t *find(const struct ckpt_index *c, const char *name, size_t *index)
{
	return find_in(json_object_get(c->root, "checkpoints"), "name", name, index);
}

bool ckpt_exists(const struct ckpt_index *c, const char *name)
{
	return find(c, name, NULL) != NULL;
}

int ckpt_write(struct ckpt_index *c)
{
	char *tmp;
	int fd, r = 0;

	if (asprintf(&tmp, "%s.new", c->path) < 0)
		return -ENOMEM;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || json_dumpfd(c->root, fd, JSON_INDENT(2) | JSON_SORT_KEYS) < 0 ||
	    fsync(fd) < 0 || rename(tmp, c->path) < 0)
		r = -errno ? -errno : -EIO;
	if (fd >= 0)
		close(fd);
	if (r < 0)
		unlink(tmp);
	free(tmp);
	return r;
}

int ckpt_add(struct ckpt_index *c, const char *name, uint64_t bytes, json_t *disks)
{
	json_t *e = json_pack("{s:s,s:O,s:I,s:I,s:O}", "name", name, "parent",
			      json_object_get(c->root, "current"), "time", (json_int_t)time(NULL),
			      "bytes", (json_int_t)bytes, "disks", disks);

	if (!e || json_array_append_new(json_object_get(c->root, "checkpoints"), e) < 0)
		return -ENOMEM;
	json_object_set_new(c->root, "current", json_string(name));
	return ckpt_write(c);
}

int ckpt_set_current(struct ckpt_index *c, const char *name)
{
	json_object_set_new(c->root, "current", json_string(name));
	return ckpt_write(c);
}

int ckpt_delete(struct ckpt_index *c, const char *name)
{
	json_t *list = json_object_get(c->root, "checkpoints"), *gone, *parent, *e;
	char *path = ckpt_path(c, name);
	size_t at, i;

	gone = find(c, name, &at);
	if (!gone || !path) {
		free(path);
		return -ENOENT;
	}
	if (unlink(path) < 0 && errno != ENOENT) {
		int r = -errno;

		free(path);
		return r;
	}
	free(path);
	/* Its children hang from its parent now. */
	parent = json_incref(json_object_get(gone, "parent"));
	json_array_foreach(list, i, e)
		if (json_equal(json_object_get(e, "parent"), json_object_get(gone, "name")))
			json_object_set(e, "parent", parent);
	if (json_equal(json_object_get(c->root, "current"), json_object_get(gone, "name")))
		json_object_set(c->root, "current", parent);
	json_decref(parent);
	json_array_remove(list, at);
	return ckpt_write(c);
}

json_t *ckpt_list(const struct ckpt_index *c)
{
	json_t *disks = json_array(), *d;
	size_t i;

	/* Each disk's top, not the bookkeeping of its layers. */
	json_array_foreach(json_object_get(c->root, "disks"), i, d)
		json_array_append_new(disks, json_pack("{s:O,s:O}", "base",
						       json_object_get(d, "base"), "top",
						       json_object_get(d, "top")));
	return json_pack("{s:O,s:O,s:o}", "current", json_object_get(c->root, "current"),
			 "checkpoints", json_object_get(c->root, "checkpoints"), "disks", disks);
}

/* --- the disks' chains --- */

static json_t *disk_find(const struct ckpt_index *c, const char *base, size_t *index)
{
	return find_in(json_object_get(c->root, "disks"), "base", base, index);
}

const char *ckpt_disk_top(const struct ckpt_index *c, const char *base)
{
	return str(disk_find(c, base, NULL), "top");
}

const char *ckpt_layer_of(const struct ckpt_index *c, const char *name, const char *base)
{
	return str(json_object_get(find(c, name, NULL), "disks"), base);
}

int ckpt_disk_push(struct ckpt_index *c, const char *base, const char *child, const char *parent)
{
	json_t *d = disk_find(c, base, NULL);

	if (!d) {
		d = json_pack("{s:s,s:s,s:[]}", "base", base, "top", base, "layers");
		if (!d || json_array_append_new(json_object_get(c->root, "disks"), d) < 0)
			return -ENOMEM;
	}
	if (json_array_append_new(json_object_get(d, "layers"),
				  json_pack("{s:s,s:s}", "file", child, "parent", parent)) < 0)
		return -ENOMEM;
	return json_object_set_new(d, "top", json_string(child)) < 0 ? -ENOMEM : 0;
}

int ckpt_disk_set_top(struct ckpt_index *c, const char *base, const char *top)
{
	json_t *d = disk_find(c, base, NULL);

	return d && json_object_set_new(d, "top", json_string(top)) == 0 ? 0 : -ENOENT;
}

/* The layer's entry in its disk's list, and where. */
static json_t *layer_find(json_t *d, const char *file, size_t *index)
{
	return find_in(json_object_get(d, "layers"), "file", file, index);
}

void ckpt_disk_drop(struct ckpt_index *c, const char *base, const char *file)
{
	size_t di, li;
	json_t *d = disk_find(c, base, &di);
	json_t *layers = json_object_get(d, "layers");

	if (!d || !layer_find(d, file, &li))
		return;
	json_array_remove(layers, li);
	/* Back to the bare base: nothing to remember of this disk. */
	if (!json_array_size(layers) && !strcmp(str(d, "top") ?: "", base))
		json_array_remove(json_object_get(c->root, "disks"), di);
}

/* Whether a checkpoint froze file, and how many layers stand on it. */
static bool frozen(const struct ckpt_index *c, const char *file)
{
	json_t *e, *v;
	const char *base;
	size_t i;

	json_array_foreach(json_object_get(c->root, "checkpoints"), i, e)
		json_object_foreach(json_object_get(e, "disks"), base, v)
			if (!strcmp(json_string_value(v) ?: "", file))
				return true;
	return false;
}

static unsigned children(json_t *d, const char *file)
{
	unsigned n = 0;
	json_t *l;
	size_t i;

	json_array_foreach(json_object_get(d, "layers"), i, l)
		n += !strcmp(str(l, "parent") ?: "", file);
	return n;
}

enum ckpt_step ckpt_disk_step(const struct ckpt_index *c, const char *base, bool merge_top,
			      const char **file, const char **parent)
{
	json_t *d = disk_find(c, base, NULL), *l, *t;
	const char *top = str(d, "top");
	size_t i;

	if (!d || !top)
		return CKPT_STEP_NONE;
	/* A layer that no checkpoint froze, the VM does not run on and no
	 * layer stands on holds what nothing can read any more. */
	json_array_foreach(json_object_get(d, "layers"), i, l) {
		const char *f = str(l, "file");

		if (f && strcmp(f, top) && !frozen(c, f) && !children(d, f)) {
			*file = f;
			*parent = str(l, "parent");
			return CKPT_STEP_REMOVE;
		}
	}
	/* The top over a layer that only it needs: the two become one (the
	 * parent, a checkpoint's no more, may change; the base too, once no
	 * checkpoint is left on it). */
	t = layer_find(d, top, NULL);
	if (merge_top && t && str(t, "parent") && !frozen(c, str(t, "parent")) &&
	    children(d, str(t, "parent")) == 1) {
		*file = top;
		*parent = str(t, "parent");
		return CKPT_STEP_MERGE;
	}
	return CKPT_STEP_NONE;
}
