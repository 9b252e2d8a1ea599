// SPDX-License-Identifier: GPL-2.0-or-later
/* The --disk option's value: comma-separated items, qemu's way (a switch
 * bare, "readonly", or with a value, "readonly=on"). */
#include <errno.h>
#include <string.h>

#include "disk-private.h"

struct choice {
	const char *name;
	int value;
};

static const struct choice formats[] = {
	{ "auto", DISK_FORMAT_AUTO }, { "raw", DISK_FORMAT_RAW },
	{ "vhd", DISK_FORMAT_VHD }, { NULL, 0 },
};
static const struct choice caches[] = {
	{ "writeback", DISK_CACHE_WRITEBACK }, { "none", DISK_CACHE_NONE },
	{ "unsafe", DISK_CACHE_UNSAFE }, { NULL, 0 },
};
static const struct choice undos[] = {
	{ "commit", DISK_UNDO_COMMIT }, { "keep", DISK_UNDO_KEEP },
	{ "discard", DISK_UNDO_DISCARD }, { NULL, 0 },
};
static const struct choice switches[] = {
	{ "on", 1 }, { "off", 0 }, { NULL, 0 },
};
static const struct choice aios[] = {
	{ "auto", DISK_AIO_AUTO }, { "uring", DISK_AIO_URING },
	{ "thread", DISK_AIO_THREAD }, { NULL, 0 },
};

static int choose(const char *key, const char *val, const struct choice *c,
		  int *out, struct disk_error *err)
{
	char names[128] = "";

	for (const struct choice *p = c; p->name; p++) {
		if (!strcmp(p->name, val)) {
			*out = p->value;
			return 0;
		}
		if (names[0])
			strcat(names, p[1].name ? ", " : " or ");
		strcat(names, p->name);
	}
	return disk_set_error(err, -EINVAL, "disk: %s=%s: not %s", key, val, names);
}

const char *disk_undo_name(enum disk_undo mode)
{
	for (const struct choice *p = undos; p->name; p++)
		if (p->value == (int)mode)
			return p->name;
	return "none";
}

enum disk_undo disk_undo_parse(const char *name)
{
	for (const struct choice *p = undos; p->name; p++)
		if (!strcmp(p->name, name))
			return (enum disk_undo)p->value;
	return DISK_UNDO_NONE;
}

/* Cuts the next item at an unpaired comma, turning ",," into ",". */
static char *next_item(char **p)
{
	char *item = *p, *r = *p, *w = *p;

	while (*r) {
		if (*r == ',' && r[1] != ',') {
			r++;
			break;
		}
		if (*r == ',')
			r++;
		*w++ = *r++;
	}
	*p = r;
	*w = '\0';
	return item;
}

static int parse_item(char *item, bool first, struct disk_spec *spec,
		      struct disk_error *err)
{
	char *val = strchr(item, '=');
	int v = 0, r = 0;

	if (val)
		*val++ = '\0';
	if (!val && !strcmp(item, "readonly"))
		spec->readonly = true;
	else if (!val && !strcmp(item, "undo-resume"))
		spec->undo_resume = true;
	else if (!val && first)
		spec->path = item;
	else if (val && !strcmp(item, "path"))
		spec->path = val;
	else if (val && !strcmp(item, "readonly") &&
		 !(r = choose(item, val, switches, &v, err)))
		spec->readonly = v;
	else if (val && !strcmp(item, "serial"))
		spec->serial = val;
	else if (val && !strcmp(item, "format") && !(r = choose(item, val, formats, &v, err)))
		spec->format = (enum disk_format)v;
	else if (val && !strcmp(item, "cache") && !(r = choose(item, val, caches, &v, err)))
		spec->cache = (enum disk_cache)v;
	else if (val && !strcmp(item, "undo") && !(r = choose(item, val, undos, &v, err)))
		spec->undo = (enum disk_undo)v;
	else if (val && !strcmp(item, "aio") && !(r = choose(item, val, aios, &v, err)))
		spec->aio = (enum disk_aio)v;
	else if (!r)
		r = disk_set_error(err, -EINVAL, "disk: '%s': not an option", item);
	return r;
}

int disk_spec_parse(char *s, struct disk_spec *spec, struct disk_error *err)
{
	for (bool first = true; *s; first = false) {
		int r = parse_item(next_item(&s), first, spec, err);

		if (r < 0)
			return r;
	}
	if (!spec->path || !*spec->path)
		return disk_set_error(err, -EINVAL, "disk: no path (path=FILE)");
	return 0;
}
