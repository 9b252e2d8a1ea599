// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vsrv disk info [--json] FILE   and   vsrv disk map [--json] FILE
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

static void fmt_time(uint32_t t, char *out, size_t len)
{
	time_t u = (time_t)vhd_time_to_unix(t);
	struct tm tm;

	gmtime_r(&u, &tm);
	strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static json_t *info_json(struct vhd *v)
{
	struct vhd_info in;
	char uuid[37], ts[32];
	json_t *o;

	vhd_get_info(v, &in);
	vhd_uuid_format(in.uuid, uuid);
	fmt_time(in.timestamp, ts, sizeof(ts));
	o = json_pack("{s:s, s:s, s:I, s:I, s:I, s:{s:i, s:i, s:i}, s:I, s:s, s:s, s:s, s:b}",
		      "file", vhd_name(v),
		      "type", vhd_type_name(in.type),
		      "virtual_size", (json_int_t)in.size,
		      "current_size", (json_int_t)in.current_size,
		      "original_size", (json_int_t)in.original_size,
		      "geometry", "cylinders", in.cylinders, "heads", in.heads,
		      "sectors_per_track", in.sectors_per_track,
		      "file_size", (json_int_t)in.file_size,
		      "creator", in.creator_app,
		      "uuid", uuid,
		      "timestamp", ts,
		      "saved_state", in.saved_state);
	json_object_set_new(o, "creator_version",
			    json_integer(in.creator_version));
	json_object_set_new(o, "creator_os", json_string(in.creator_os));
	if (in.type == VHD_TYPE_FIXED) {
		json_object_set_new(o, "allocated_bytes", json_integer((json_int_t)in.size));
		return o;
	}
	json_object_set_new(o, "block_size", json_integer(in.block_size));
	json_object_set_new(o, "blocks", json_integer(in.max_blocks));
	json_object_set_new(o, "allocated_blocks", json_integer(in.allocated_blocks));
	json_object_set_new(o, "allocated_bytes",
			    json_integer((json_int_t)in.allocated_blocks * in.block_size));
	if (in.type == VHD_TYPE_DIFF) {
		json_t *locs = json_array();
		char pu[37];

		vhd_uuid_format(in.parent_uuid, pu);
		fmt_time(in.parent_timestamp, ts, sizeof(ts));
		json_object_set_new(o, "parent_name", json_string(in.parent_name));
		json_object_set_new(o, "parent_uuid", json_string(pu));
		json_object_set_new(o, "parent_timestamp", json_string(ts));
		for (unsigned i = 0; i < in.nr_locators; i++) {
			struct vhd_locator_info *l = &in.locators[i];

			json_array_append_new(locs, json_pack("{s:s, s:s, s:i, s:i, s:I}",
				"code", l->code, "path", l->path,
				"data_space", (int)l->data_space,
				"data_length", (int)l->data_len,
				"data_offset", (json_int_t)l->data_off));
		}
		json_object_set_new(o, "parent_locators", locs);
	}
	return o;
}

static void print_human(json_t *o, int depth)
{
	const char *k;
	json_t *v;
	char pad[64];

	snprintf(pad, sizeof(pad), "%*s", depth * 2, "");
	json_object_foreach(o, k, v) {
		if (!strcmp(k, "parent_locators")) {
			size_t i;
			json_t *l;

			json_array_foreach(v, i, l)
				printf("%s%-18s %s \"%s\" (%lld bytes at %lld)\n", pad,
				       i ? "" : "parent locators:",
				       json_string_value(json_object_get(l, "code")),
				       json_string_value(json_object_get(l, "path")),
				       json_integer_value(json_object_get(l, "data_length")),
				       json_integer_value(json_object_get(l, "data_offset")));
			continue;
		}
		if (!strcmp(k, "geometry")) {
			printf("%s%-18s %lld/%lld/%lld (CHS)\n", pad, "geometry:",
			       json_integer_value(json_object_get(v, "cylinders")),
			       json_integer_value(json_object_get(v, "heads")),
			       json_integer_value(json_object_get(v, "sectors_per_track")));
			continue;
		}
		char key[40];

		snprintf(key, sizeof(key), "%s:", k);
		for (char *c = key; *c; c++)
			if (*c == '_')
				*c = ' ';
		if (json_is_string(v))
			printf("%s%-18s %s\n", pad, key, json_string_value(v));
		else if (json_is_integer(v))
			printf("%s%-18s %" JSON_INTEGER_FORMAT "\n", pad, key,
			       json_integer_value(v));
		else if (json_is_boolean(v))
			printf("%s%-18s %s\n", pad, key, json_is_true(v) ? "yes" : "no");
	}
}

/*
 * Describing a disk must not depend on its parent being reachable (a disk
 * copied from another host, its parent left behind): when the chain does
 * not open but the disk alone does, it is shown alone and the parent's
 * problem becomes a warning.  Reading it still fails, with that problem.
 */
static int open_for_reading(const char *path, unsigned flags, struct vhd **v)
{
	struct vhd_open_opts oo = { .flags = flags, .warn = cli_warn_cb };
	struct vhd_error err = { 0 }, alone_err = { 0 };
	int r = vhd_open(path, &oo, v, &err);

	if (r >= 0)
		return 0;
	if (!(flags & VHD_OPEN_NO_PARENT)) {
		oo.flags |= VHD_OPEN_NO_PARENT;
		if (vhd_open(path, &oo, v, &alone_err) >= 0) {
			if (vhd_get_type(*v) == VHD_TYPE_DIFF) {
				cli_warn_cb(NULL, err.msg);
				cli_warn_cb(NULL, "showing the disk without its parent");
				return 0;
			}
			vhd_close(*v);
		}
	}
	return cli_vhd_fail(path, r, &err);
}

/* A differencing disk shown without its parent: what it does not hold
 * is in the parent, not zeros. */
static bool parent_missing(struct vhd *v)
{
	return vhd_get_type(v) == VHD_TYPE_DIFF && !vhd_parent(v);
}

static int parse_common(int argc, char **argv, const char *usage,
			unsigned *flags, bool *json)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, OPT_JSON },
		{ "no-parent", no_argument, NULL, 'P' },
		DISK_COMMON_OPTS,
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == OPT_JSON)
			*json = true;
		else if (c == 'P')
			*flags |= VHD_OPEN_NO_PARENT;
		else if (c == OPT_HELP) {
			printf("usage: %s\n", usage);
			exit(0);
		} else if (!disk_common_opt(c, flags))
			return -1;
	}
	return optind == argc - 1 ? 0 : -1;
}

int disk_info(int argc, char **argv)
{
	static const char usage[] =
		"vsrv disk info [--json] [--no-parent] [--ignore-checksums] [--ignore-parent-id] FILE";
	unsigned flags = 0;
	bool json = false;
	struct vhd *v;
	json_t *chain;

	if (parse_common(argc, argv, usage, &flags, &json) < 0)
		return cli_usage(usage);
	if (open_for_reading(argv[optind], flags, &v))
		return 1;
	chain = json_array();
	for (struct vhd *l = v; l; l = vhd_parent(l))
		json_array_append_new(chain, info_json(l));
	if (json) {
		json_t *top = json_deep_copy(json_array_get(chain, 0));

		json_array_remove(chain, 0);
		json_object_set_new(top, "parents", chain);
		json_dumpf(top, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		putchar('\n');
		json_decref(top);
	} else {
		size_t i;
		json_t *o;

		json_array_foreach(chain, i, o) {
			if (i)
				printf("\nparent %zu:\n", i);
			print_human(o, i ? 1 : 0);
		}
		json_decref(chain);
	}
	vhd_close(v);
	return 0;
}

int disk_map(int argc, char **argv)
{
	static const char usage[] =
		"vsrv disk map [--json] [--ignore-checksums] [--ignore-parent-id] FILE";
	unsigned flags = 0;
	bool json = false;
	struct vhd *v;
	json_t *arr = NULL;
	uint64_t off = 0, size;
	bool below;
	int r = 0;

	if (parse_common(argc, argv, usage, &flags, &json) < 0)
		return cli_usage(usage);
	if (open_for_reading(argv[optind], flags, &v))
		return 1;
	size = vhd_size(v);
	below = parent_missing(v);
	if (json)
		arr = json_array();
	else
		printf("%-20s %-20s %-6s %-5s %s\n", "offset", "length", "kind",
		       "depth", "file offset");
	while (off < size) {
		struct vhd_extent e;

		r = vhd_map(v, off, size - off, &e);
		if (r < 0 || e.len == 0) {
			cli_err("%s: mapping offset %" PRIu64 ": %s", argv[optind],
				off, strerror(r < 0 ? -r : EIO));
			r = r < 0 ? r : -EIO;
			break;
		}
		if (json) {
			json_t *x = json_pack("{s:I, s:I, s:s}",
					      "offset", (json_int_t)off,
					      "length", (json_int_t)e.len,
					      "kind", e.kind == VHD_EXT_DATA ? "data" :
						      below ? "parent" : "zero");

			if (e.kind == VHD_EXT_DATA) {
				json_object_set_new(x, "depth", json_integer(e.depth));
				json_object_set_new(x, "file", json_string(vhd_name(e.layer)));
				json_object_set_new(x, "file_offset",
						    json_integer((json_int_t)e.file_off));
			}
			json_array_append_new(arr, x);
		} else if (e.kind == VHD_EXT_DATA) {
			printf("%-20" PRIu64 " %-20" PRIu64 " %-6s %-5u %" PRIu64 " %s\n",
			       off, e.len, "data", e.depth, e.file_off, vhd_name(e.layer));
		} else {
			printf("%-20" PRIu64 " %-20" PRIu64 " %-6s\n", off, e.len,
			       below ? "parent" : "zero");
		}
		off += e.len;
	}
	if (json) {
		json_dumpf(arr, stdout, JSON_INDENT(2));
		putchar('\n');
		json_decref(arr);
	}
	vhd_close(v);
	return r < 0 ? 1 : 0;
}
