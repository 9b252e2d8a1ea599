// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The checkpoints of one VM (docs/control.md, "Checkpoints"): a folder
 * (vsrv run --checkpoints DIR) holding NAME.state, each a saved state
 * (snapshot.c), and index.json, the tree: each checkpoint's parent (the
 * checkpoint the VM came from when it was taken), its time and size, and
 * which one the VM runs from now.  The index is replaced whole (written
 * beside, synced, renamed), so a crash leaves the old one or the new.
 * The supervisor's: it is not confined.  Disks are not here yet: with
 * virtio-blk each checkpoint also starts a differencing child per VHD.
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

#define INDEX_VERSION	1

struct ckpt_index {
	char *dir, *path;	/* the folder, its index.json */
	json_t *root;		/* {"version", "current", "checkpoints": [...]} */
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
		if (!json_is_array(json_object_get(c->root, "checkpoints")) ||
		    json_integer_value(json_object_get(c->root, "version")) != INDEX_VERSION) {
			snprintf(err, errlen, "checkpoints: %s: not an index of version %d%s%s",
				 c->path, INDEX_VERSION, c->root ? "" : ": ", c->root ? "" : je.text);
			goto fail;
		}
	} else {
		c->root = json_pack("{s:i,s:n,s:[]}", "version", INDEX_VERSION, "current",
				    "checkpoints");
	}
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

static json_t *find(const struct ckpt_index *c, const char *name, size_t *index)
{
	json_t *e;
	size_t i;

	json_array_foreach(json_object_get(c->root, "checkpoints"), i, e)
		if (!strcmp(json_string_value(json_object_get(e, "name")) ?: "", name)) {
			if (index)
				*index = i;
			return e;
		}
	return NULL;
}

bool ckpt_exists(const struct ckpt_index *c, const char *name)
{
	return find(c, name, NULL) != NULL;
}

/* The index replaced whole: written beside, synced, renamed. */
static int write_index(struct ckpt_index *c)
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

int ckpt_add(struct ckpt_index *c, const char *name, uint64_t bytes)
{
	json_t *e = json_pack("{s:s,s:O,s:I,s:I}", "name", name, "parent",
			      json_object_get(c->root, "current"), "time", (json_int_t)time(NULL),
			      "bytes", (json_int_t)bytes);

	if (!e || json_array_append_new(json_object_get(c->root, "checkpoints"), e) < 0)
		return -ENOMEM;
	json_object_set_new(c->root, "current", json_string(name));
	return write_index(c);
}

int ckpt_set_current(struct ckpt_index *c, const char *name)
{
	json_object_set_new(c->root, "current", json_string(name));
	return write_index(c);
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
	return write_index(c);
}

json_t *ckpt_list(const struct ckpt_index *c)
{
	return json_pack("{s:O,s:O}", "current", json_object_get(c->root, "current"),
			 "checkpoints", json_object_get(c->root, "checkpoints"));
}
