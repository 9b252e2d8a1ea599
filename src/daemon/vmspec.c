// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Request bodies, checked: everything the API accepts from a client passes
 * through here before it reaches the inventory or the host.  A body is one
 * JSON object (duplicate keys refused) whose fields are described by the
 * tables below; a field the table does not have, a wrong type, a value out
 * of range or a path outside the directories the configuration allows is
 * refused with one message naming the field.  The result is normalised:
 * sizes in bytes, paths resolved (so "/allowed/../etc" cannot pass as
 * allowed and then be reopened as something else), defaults filled.
 *
 * No I/O but realpath(): the fuzzer (tests/fuzz/fuzz-vsrvd.c) drives this
 * file directly.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "../vmm/ident.h"
#include "vhd.h"
#include "vsrvd.h"

enum vtype { V_STR, V_INT, V_BOOL, V_SIZE, V_ENUM, V_NAME, V_PATH, V_NEWPATH, V_UUID, V_MAC,
	     V_IFNAME, V_CIDR, V_ARRAY };

#define F_REQUIRED	0x1
#define F_NULLABLE	0x2
#define F_DISK_DIRS	0x4	/* paths: under disk_dirs, not vm_dirs */

struct vfield {
	const char *name;
	enum vtype type;
	unsigned flags;
	int64_t min, max;		/* integers, sizes; strings' and arrays' lengths */
	const char *const *words;	/* V_ENUM */
	const char *if_true, *if_false;	/* V_ENUM: the words a boolean stands for */
	const char *def;		/* V_ENUM in an array's items: when absent */
	const struct vfield *items;	/* V_ARRAY: each item is an object of these, */
	int (*item_check)(json_t *item, const char *where, struct vsrvd_err *e);	/* then this */
};

static const char *const policies[] = { "never", "on-crash", "always", NULL };
static const char *const net_types[] = { "user", "internal", "bridge", NULL };
static const char *const disk_types[] = { "dynamic", "fixed", "diff", NULL };
static const char *const undo_modes[] = { "none", "commit", "keep", "discard", NULL };
static const char *const cache_modes[] = { "writeback", "none", "unsafe", NULL };
static const char *const on_stops[] = { "leave", "power-off", "shutdown", "save", NULL };

static const struct vfield disk_fields[] = {
	{ .name = "path", .type = V_PATH, .flags = F_REQUIRED | F_DISK_DIRS },
	/* A boolean before there were modes: true kept the changes. */
	{ .name = "undo", .type = V_ENUM, .words = undo_modes, .if_true = "keep",
	  .if_false = "none", .def = "none" },
	{ .name = "readonly", .type = V_BOOL },
	{ .name = "cache", .type = V_ENUM, .words = cache_modes, .def = "writeback" },
	{ .name = NULL },
};

/* A VHD to `vsrv run`'s format "auto": its name ends in .vhd or .avhd. */
bool spec_is_vhd(const char *path)
{
	size_t n = strlen(path);

	return (n > 4 && !strcmp(path + n - 4, ".vhd")) || (n > 5 && !strcmp(path + n - 5, ".avhd"));
}

/* What `vsrv run` would refuse of a disk (docs/vm-config.md), refused
 * here first: undo on a read-only disk or on one that is not a VHD. */
static int disk_check(json_t *d, const char *where, struct vsrvd_err *e)
{
	const char *path = json_string_value(json_object_get(d, "path"));
	const char *undo = json_string_value(json_object_get(d, "undo"));

	if (!json_object_get(d, "readonly"))
		json_object_set_new(d, "readonly", json_false());
	if (!strcmp(undo, "none"))
		return 0;
	if (json_is_true(json_object_get(d, "readonly")))
		return vsrvd_fail(e, 400, -EINVAL, "%sundo: not on a read-only disk", where);
	if (!spec_is_vhd(path))
		return vsrvd_fail(e, 400, -EINVAL, "%sundo: only on a VHD (.vhd or .avhd)", where);
	return 0;
}

static const struct vfield nic_fields[] = {
	{ .name = "network", .type = V_NAME, .flags = F_REQUIRED },
	{ .name = "mac", .type = V_MAC },
	{ .name = NULL },
};

static const struct vfield vm_fields[] = {
	{ .name = "name", .type = V_NAME, .flags = F_REQUIRED },
	{ .name = "uuid", .type = V_UUID },
	{ .name = "description", .type = V_STR, .max = 1024 },
	{ .name = "vcpus", .type = V_INT, .min = 1, .max = 16 },
	{ .name = "memory", .type = V_SIZE, .min = 16 << 20, .max = 1ll << 40 },
	{ .name = "kernel", .type = V_PATH, .flags = F_REQUIRED },
	{ .name = "initrd", .type = V_PATH, .flags = F_NULLABLE },
	{ .name = "cmdline", .type = V_STR, .max = 4096 },
	{ .name = "rng", .type = V_BOOL },
	{ .name = "test_device", .type = V_BOOL },
	{ .name = "autostart", .type = V_BOOL },
	{ .name = "restart_policy", .type = V_ENUM, .words = policies },
	{ .name = "cpu_weight", .type = V_INT, .flags = F_NULLABLE, .min = 1, .max = 10000 },
	{ .name = "cpu_cap", .type = V_INT, .flags = F_NULLABLE, .min = 1, .max = 1600 },
	{ .name = "memory_limit", .type = V_SIZE, .flags = F_NULLABLE, .min = 16 << 20,
	  .max = 1ll << 40 },
	{ .name = "on_stop", .type = V_ENUM, .flags = F_NULLABLE, .words = on_stops },
	{ .name = "disks", .type = V_ARRAY, .max = 16, .items = disk_fields,
	  .item_check = disk_check },
	{ .name = "nics", .type = V_ARRAY, .max = 8, .items = nic_fields },
	{ .name = NULL },
};

static const struct vfield net_fields[] = {
	{ .name = "name", .type = V_NAME, .flags = F_REQUIRED },
	{ .name = "type", .type = V_ENUM, .flags = F_REQUIRED, .words = net_types },
	{ .name = "bridge", .type = V_IFNAME },
	{ .name = "dhcp", .type = V_BOOL },
	{ .name = "subnet", .type = V_CIDR },
	{ .name = NULL },
};

static const char *const job_types[] = { "convert", "commit", "compact", NULL };
static const char *const convert_to[] = { "raw", "fixed", "dynamic", NULL };

/* A disk job (jobs.c): its source is an inventory disk (by name) or any
 * file in disk_dirs; a convert's target (path) is a new file there. */
static const struct vfield job_fields[] = {
	{ .name = "type", .type = V_ENUM, .flags = F_REQUIRED, .words = job_types },
	{ .name = "disk", .type = V_NAME },
	{ .name = "source", .type = V_PATH, .flags = F_DISK_DIRS },
	{ .name = "path", .type = V_NEWPATH, .flags = F_DISK_DIRS },
	{ .name = "to", .type = V_ENUM, .words = convert_to },
	{ .name = "name", .type = V_NAME },
	{ .name = "block_size", .type = V_INT, .min = 512, .max = 256 << 20 },
	{ .name = "force", .type = V_BOOL },
	{ .name = "speed", .type = V_SIZE, .min = 64 << 10, .max = 1ll << 40 },
	{ .name = NULL },
};

static const struct vfield disk_create_fields[] = {
	{ .name = "name", .type = V_NAME, .flags = F_REQUIRED },
	{ .name = "type", .type = V_ENUM, .words = disk_types },
	{ .name = "size", .type = V_SIZE, .min = 1 << 20, .max = 2040ll << 30 },
	{ .name = "parent", .type = V_PATH, .flags = F_DISK_DIRS },
	{ .name = "path", .type = V_NEWPATH, .flags = F_DISK_DIRS },
	{ .name = NULL },
};

static const struct vfield shutdown_fields[] = {
	{ .name = "timeout", .type = V_INT, .min = 1, .max = 86400 },
	{ .name = NULL },
};

/* What a checkpoint leaves the VM as (absent: as it was). */
static const char *const then_states[] = { "running", "paused", NULL };

static const struct vfield checkpoint_fields[] = {
	{ .name = "name", .type = V_NAME, .flags = F_REQUIRED },
	{ .name = "then", .type = V_ENUM, .words = then_states },
	{ .name = NULL },
};

/* Fields a PATCH may change while the VM runs: they say how vsrvd treats
 * the VM, not what the VMM was started with, or are its cgroup's limits
 * (cgroup.c), which change live. */
static const char *const live_fields[] = { "description", "autostart", "restart_policy",
					   "on_stop", "cpu_weight", "cpu_cap", "memory_limit",
					   NULL };

bool spec_field_live(const char *name)
{
	for (const char *const *p = live_fields; *p; p++)
		if (!strcmp(*p, name))
			return true;
	return false;
}

/* A name a VM config accepts (src/vmm/ident.h) that does not start with
 * '.' or '-': vsrvd's narrower rule. */
bool spec_valid_name(const char *s)
{
	return s[0] != '.' && s[0] != '-' && ident_name_ok(s);
}

static bool valid_mac(const char *s)
{
	unsigned b[6];
	int n = 0;

	if (strlen(s) != 17 ||
	    sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%n", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5],
		   &n) != 6 || n != 17)
		return false;
	for (int i = 0; i < 17; i++)
		if (i % 3 == 2 ? s[i] != ':' : !strchr("0123456789abcdef", s[i]))
			return false;
	return !(b[0] & 1);	/* unicast */
}

/* A Linux interface name: 1-15 bytes, no '/', ':' or whitespace. */
static bool valid_ifname(const char *s)
{
	size_t n = strlen(s);

	if (n < 1 || n > 15 || !strcmp(s, ".") || !strcmp(s, ".."))
		return false;
	return strcspn(s, "/: \t\n") == n;
}

/* "10.77.0.1/24": the bridge's address and the network's prefix. */
static bool valid_cidr(const char *s)
{
	unsigned a, b, c, d, p;
	int n = 0;

	if (sscanf(s, "%3u.%3u.%3u.%3u/%2u%n", &a, &b, &c, &d, &p, &n) != 5 ||
	    (size_t)n != strlen(s))
		return false;
	return a < 256 && b < 256 && c < 256 && d < 256 && p >= 8 && p <= 30;
}

static char *const *dirs_for(const struct vfield *f, const struct vsrvd_config *cfg)
{
	return f->flags & F_DISK_DIRS ? cfg->disk_dirs : cfg->vm_dirs;
}

static int check_object(const struct vfield *fields, const json_t *obj, const char *where,
			bool partial, const struct vsrvd_config *cfg, json_t *out,
			struct vsrvd_err *e);

static int check_value(const struct vfield *f, json_t *v, const char *where,
		       const struct vsrvd_config *cfg, json_t **out, struct vsrvd_err *e)
{
	char what[160];
	uint64_t size;
	char *real;
	int r;

	snprintf(what, sizeof(what), "%s%s", where, f->name);
	if (json_is_null(v)) {
		if (!(f->flags & F_NULLABLE))
			return vsrvd_fail(e, 400, -EINVAL, "%s: may not be null", what);
		*out = json_null();
		return 0;
	}
	switch (f->type) {
	case V_INT:
		if (!json_is_integer(v) || json_integer_value(v) < f->min ||
		    json_integer_value(v) > f->max)
			return vsrvd_fail(e, 400, -EINVAL, "%s: expected an integer from %lld to %lld",
					  what, (long long)f->min, (long long)f->max);
		*out = json_incref(v);
		return 0;
	case V_BOOL:
		if (!json_is_boolean(v))
			return vsrvd_fail(e, 400, -EINVAL, "%s: expected true or false", what);
		*out = json_incref(v);
		return 0;
	case V_SIZE:
		if (json_is_integer(v) && json_integer_value(v) >= 0)
			size = (uint64_t)json_integer_value(v);
		else if (!json_is_string(v) || vhd_parse_size(json_string_value(v), &size) < 0)
			return vsrvd_fail(e, 400, -EINVAL,
					  "%s: expected a size (\"512M\", \"2G\" or bytes)", what);
		if (size < (uint64_t)f->min || size > (uint64_t)f->max || size % 4096)
			return vsrvd_fail(e, 400, -EINVAL,
					  "%s: expected whole 4 KiB pages from %lld to %lld bytes",
					  what, (long long)f->min, (long long)f->max);
		*out = json_integer((json_int_t)size);
		return 0;
	case V_ARRAY: {
		json_t *arr, *item;
		size_t i;

		if (!json_is_array(v) || json_array_size(v) > (size_t)f->max)
			return vsrvd_fail(e, 400, -EINVAL, "%s: expected an array of at most %lld",
					  what, (long long)f->max);
		arr = json_array();
		json_array_foreach(v, i, item) {
			char sub[200];
			json_t *o = json_object();

			snprintf(sub, sizeof(sub), "%s[%zu].", what, i);
			r = check_object(f->items, item, sub, false, cfg, o, e);
			for (const struct vfield *d = f->items; r == 0 && d->name; d++)
				if (d->def && !json_object_get(o, d->name))
					json_object_set_new(o, d->name, json_string(d->def));
			if (r == 0 && f->item_check)
				r = f->item_check(o, sub, e);
			if (r < 0) {
				json_decref(o);
				json_decref(arr);
				return r;
			}
			json_array_append_new(arr, o);
		}
		*out = arr;
		return 0;
	}
	default:
		break;
	}
	if (f->type == V_ENUM && f->if_true && json_is_boolean(v)) {
		*out = json_string(json_is_true(v) ? f->if_true : f->if_false);
		return 0;
	}
	/* The rest are strings. */
	if (!json_is_string(v))
		return vsrvd_fail(e, 400, -EINVAL, "%s: expected a string", what);
	{
		const char *s = json_string_value(v);
		size_t len = json_string_length(v);

		if (strlen(s) != len)
			return vsrvd_fail(e, 400, -EINVAL, "%s: contains a NUL character", what);
		switch (f->type) {
		case V_STR:
			if (len > (size_t)f->max)
				return vsrvd_fail(e, 400, -EINVAL, "%s: longer than %lld bytes", what,
						  (long long)f->max);
			break;
		case V_ENUM: {
			const char *const *w;
			char list[128] = "";

			for (w = f->words; *w && strcmp(*w, s); w++)
				;
			if (*w)
				break;
			for (w = f->words; *w; w++)
				snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s",
					 w == f->words ? "" : w[1] ? ", " : " or ", *w);
			return vsrvd_fail(e, 400, -EINVAL, "%s: expected %s", what, list);
		}
		case V_NAME:
			if (!spec_valid_name(s))
				return vsrvd_fail(e, 400, -EINVAL,
						  "%s: expected 1 to 64 letters, digits, '.', '_' or '-' (not first '.' or '-')",
						  what);
			break;
		case V_UUID:
			if (!ident_uuid_ok(s, false))
				return vsrvd_fail(e, 400, -EINVAL,
						  "%s: expected a UUID, 8-4-4-4-12 lowercase hex digits",
						  what);
			break;
		case V_MAC:
			if (!valid_mac(s))
				return vsrvd_fail(e, 400, -EINVAL,
						  "%s: expected a unicast MAC, xx:xx:xx:xx:xx:xx in lowercase",
						  what);
			break;
		case V_IFNAME:
			if (!valid_ifname(s))
				return vsrvd_fail(e, 400, -EINVAL,
						  "%s: expected an interface name of 1 to 15 bytes", what);
			break;
		case V_CIDR:
			if (!valid_cidr(s))
				return vsrvd_fail(e, 400, -EINVAL,
						  "%s: expected an IPv4 address and prefix, like 10.77.0.1/24",
						  what);
			break;
		case V_PATH:
		case V_NEWPATH:
			if (len > 4095)
				return vsrvd_fail(e, 400, -EINVAL, "%s: path too long", what);
			r = f->type == V_PATH ?
				config_path_allowed(dirs_for(f, cfg), what, s, &real, e) :
				config_new_path_allowed(dirs_for(f, cfg), what, s, &real, e);
			if (r < 0)
				return r;
			*out = json_string(real);
			free(real);
			return 0;
		default:
			break;
		}
	}
	*out = json_incref(v);
	return 0;
}

static int check_object(const struct vfield *fields, const json_t *obj, const char *where,
			bool partial, const struct vsrvd_config *cfg, json_t *out,
			struct vsrvd_err *e)
{
	const struct vfield *f;
	const char *key;
	json_t *v;
	int r;

	if (!json_is_object(obj))	/* where is "" or "field[i]." */
		return vsrvd_fail(e, 400, -EINVAL, "%.*s: expected a JSON object",
				  where[0] ? (int)strlen(where) - 1 : 4, where[0] ? where : "body");
	json_object_foreach((json_t *)obj, key, v) {
		json_t *nv;

		for (f = fields; f->name && strcmp(f->name, key); f++)
			;
		if (!f->name)
			return vsrvd_fail(e, 400, -EINVAL, "%sunknown field '%.64s'", where, key);
		r = check_value(f, v, where, cfg, &nv, e);
		if (r < 0)
			return r;
		json_object_set_new(out, key, nv);
	}
	for (f = fields; !partial && f->name; f++)
		if ((f->flags & F_REQUIRED) && !json_object_get(obj, f->name))
			return vsrvd_fail(e, 400, -EINVAL, "%s%s: required", where, f->name);
	return 0;
}

static json_t *new_uuid(void)
{
	uint8_t b[16];
	char s[37];

	if (getrandom(b, sizeof(b), 0) != sizeof(b))
		return NULL;
	b[6] = (b[6] & 0x0f) | 0x40;	/* version 4: random */
	b[8] = (b[8] & 0x3f) | 0x80;	/* the RFC 4122 variant */
	vhd_uuid_format(b, s);
	for (char *p = s; *p; p++)
		if (*p >= 'A' && *p <= 'F')
			*p = (char)(*p - 'A' + 'a');
	return json_string(s);
}

static void set_default(json_t *o, const char *key, json_t *v)
{
	if (!json_object_get(o, key))
		json_object_set_new(o, key, v);
	else
		json_decref(v);
}

static int check_net(json_t *o, struct vsrvd_err *e)
{
	const char *type = json_string_value(json_object_get(o, "type"));
	bool dhcp = json_is_true(json_object_get(o, "dhcp"));

	if (!strcmp(type, "bridge") && !json_object_get(o, "bridge"))
		return vsrvd_fail(e, 400, -EINVAL, "bridge: required for a network of type bridge");
	if (!strcmp(type, "user") && json_object_get(o, "bridge"))
		return vsrvd_fail(e, 400, -EINVAL, "bridge: a user network has no bridge");
	if (strcmp(type, "internal") && (dhcp || json_object_get(o, "subnet")))
		return vsrvd_fail(e, 400, -EINVAL,
				  "dhcp, subnet: only an internal network has vsrvd's DHCP");
	if (dhcp && !json_object_get(o, "subnet"))
		return vsrvd_fail(e, 400, -EINVAL, "subnet: required with dhcp");
	set_default(o, "dhcp", json_false());
	return 0;
}

static int check_disk(json_t *o, const struct vsrvd_config *cfg, struct vsrvd_err *e)
{
	const char *type;

	set_default(o, "type", json_string("dynamic"));
	type = json_string_value(json_object_get(o, "type"));
	if (!strcmp(type, "diff") != !!json_object_get(o, "parent"))
		return vsrvd_fail(e, 400, -EINVAL, "parent: %s", strcmp(type, "diff") ?
				  "only a diff disk has a parent" : "required for a diff disk");
	if (strcmp(type, "diff") && !json_object_get(o, "size"))
		return vsrvd_fail(e, 400, -EINVAL, "size: required for a %s disk", type);
	if (!json_object_get(o, "path")) {
		char *p, *real;
		int r;

		if (!cfg->disk_dirs || !cfg->disk_dirs[0])
			return vsrvd_fail(e, 400, -EINVAL, "path: required (no disk_dirs configured)");
		if (asprintf(&p, "%s/%s.vhd", cfg->disk_dirs[0],
			     json_string_value(json_object_get(o, "name"))) < 0)
			return -ENOMEM;
		r = config_new_path_allowed(cfg->disk_dirs, "path", p, &real, e);
		free(p);
		if (r < 0)
			return r;
		json_object_set_new(o, "path", json_string(real));
		free(real);
	}
	return 0;
}

static bool ends_with_vhd(const char *s)
{
	size_t n = strlen(s);

	return n >= 4 && !strcasecmp(s + n - 4, ".vhd");
}

/* What each type of job takes, beyond type, disk or source and speed. */
static int check_job(json_t *o, struct vsrvd_err *e)
{
	const char *type = json_string_value(json_object_get(o, "type")), *to;
	bool convert = !strcmp(type, "convert");
	json_t *bs = json_object_get(o, "block_size");

	if (!json_object_get(o, "disk") == !json_object_get(o, "source"))
		return vsrvd_fail(e, 400, -EINVAL,
				  "disk, source: give one, a disk's name or a file's path");
	for (const char *const *k = (const char *const[]){ "path", "to", "name", "block_size",
							    NULL }; *k; k++)
		if (!convert && json_object_get(o, *k))
			return vsrvd_fail(e, 400, -EINVAL, "%s: only a convert takes it", *k);
	if (strcmp(type, "commit") && json_object_get(o, "force"))
		return vsrvd_fail(e, 400, -EINVAL, "force: only a commit takes it");
	if (!convert)
		return 0;
	if (!json_object_get(o, "path"))
		return vsrvd_fail(e, 400, -EINVAL, "path: required (the file a convert makes)");
	/* As vsrv disk convert: a .vhd becomes a dynamic disk, the rest raw. */
	set_default(o, "to", json_string(ends_with_vhd(json_string_value(
		json_object_get(o, "path"))) ? "dynamic" : "raw"));
	to = json_string_value(json_object_get(o, "to"));
	if (bs && (strcmp(to, "dynamic") || (json_integer_value(bs) & (json_integer_value(bs) - 1))))
		return vsrvd_fail(e, 400, -EINVAL,
				  "block_size: a power of two, for a dynamic target only");
	if (!strcmp(to, "raw") && json_object_get(o, "name"))
		return vsrvd_fail(e, 400, -EINVAL, "name: a raw image is not one of vsrvd's disks");
	return 0;
}

int spec_check(enum spec_kind kind, const json_t *body, const struct vsrvd_config *cfg,
	       json_t **out, struct vsrvd_err *e)
{
	static const struct vfield *const tables[] = {
		[SPEC_VM_CREATE] = vm_fields, [SPEC_VM_UPDATE] = vm_fields,
		[SPEC_NET] = net_fields, [SPEC_DISK] = disk_create_fields,
		[SPEC_SHUTDOWN] = shutdown_fields, [SPEC_CHECKPOINT] = checkpoint_fields,
		[SPEC_JOB] = job_fields,
	};
	json_t *o = json_object();
	int r = check_object(tables[kind], body, "", kind == SPEC_VM_UPDATE, cfg, o, e);

	if (r == 0 && kind == SPEC_VM_CREATE) {
		set_default(o, "uuid", new_uuid());
		set_default(o, "vcpus", json_integer(cfg->def_vcpus));
		set_default(o, "memory", json_integer((json_int_t)cfg->def_memory));
		set_default(o, "restart_policy", json_string(cfg->def_restart_policy));
	}
	if (r == 0 && kind == SPEC_NET)
		r = check_net(o, e);
	if (r == 0 && kind == SPEC_DISK)
		r = check_disk(o, cfg, e);
	if (r == 0 && kind == SPEC_JOB)
		r = check_job(o, e);
	if (r < 0) {
		json_decref(o);
		return r;
	}
	*out = o;
	return 0;
}

int spec_parse_body(const char *buf, size_t len, json_t **out, struct vsrvd_err *e)
{
	json_error_t je;
	json_t *v;

	if (!len)
		return vsrvd_fail(e, 400, -EINVAL, "body: expected a JSON object, got nothing");
	v = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
	if (!v)
		return vsrvd_fail(e, 400, -EINVAL, "body: line %d, column %d: %s", je.line,
				  je.column, je.text);
	if (!json_is_object(v)) {
		json_decref(v);
		return vsrvd_fail(e, 400, -EINVAL, "body: expected a JSON object");
	}
	*out = v;
	return 0;
}
