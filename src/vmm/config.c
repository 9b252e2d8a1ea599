// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * A VM described by a JSON file (vsrv run --config FILE), the form the
 * management service stores.  docs/vm-config.md is the reference; this is
 * its reader.
 *
 * The file is versioned: this vsrv reads version 1 and refuses newer ones
 * rather than half-understanding them.  Every field is checked for its
 * type and range, and a field this version does not know is an error, so
 * that a typo cannot silently leave a setting at its default.  Each error
 * is one line naming the file, the field and what was expected.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "../devices/devices.h"
#include "ident.h"
#include "vmm.h"

#define CONFIG_VERSION	1

struct config_file {
	json_t *root;
	char *kernel, *initrd;	/* resolved against the file's folder */
	char *console;		/* "file:" or "socket:" and a path resolved so */
	char *disks[VMM_DISKS_MAX];	/* each disk's path, resolved so */
	char *port_socket[VMM_PORTS_MAX];	/* resolved so */
	char *control;		/* resolved too */
	char *checkpoints;	/* resolved too */
};

enum ftype { F_STRING, F_INT, F_BOOL, F_SIZE, F_ARRAY };

static const struct field {
	const char *name;
	enum ftype type;
} fields[] = {
	{ "version", F_INT },
	{ "name", F_STRING },
	{ "uuid", F_STRING },
	{ "vcpus", F_INT },
	{ "memory", F_SIZE },
	{ "kernel", F_STRING },
	{ "initrd", F_STRING },
	{ "cmdline", F_STRING },
	{ "console", F_STRING },
	{ "console_buffer", F_SIZE },
	{ "on_reboot", F_STRING },
	{ "host_quirks", F_STRING },
	{ "hugepages", F_BOOL },
	{ "memfd", F_BOOL },
	{ "rng", F_BOOL },
	{ "halt_poll_ns", F_INT },
	{ "ports", F_ARRAY },
	{ "control", F_STRING },
	{ "checkpoints", F_STRING },
	{ "disks", F_ARRAY },
	{ "nics", F_ARRAY },
};

static const char *const type_names[] = {
	[F_STRING] = "a string", [F_INT] = "an integer", [F_BOOL] = "true or false",
	[F_SIZE] = "a size (a string like \"512M\" or a number of bytes)",
	[F_ARRAY] = "an array",
};

static int bad(char *err, size_t errlen, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int bad(char *err, size_t errlen, const char *path, const char *fmt, ...)
{
	va_list ap;
	int n = snprintf(err, errlen, "%s: ", path);

	va_start(ap, fmt);
	if (n >= 0 && (size_t)n < errlen)
		vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static bool type_ok(const json_t *v, enum ftype t)
{
	switch (t) {
	case F_STRING:
		return json_is_string(v);
	case F_INT:
		return json_is_integer(v);
	case F_BOOL:
		return json_is_boolean(v);
	case F_SIZE:
		return json_is_string(v) || json_is_integer(v);
	case F_ARRAY:
		return json_is_array(v);
	}
	return false;
}

/* "512M", "2G", "1048576": K, M, G, T are binary multiples. */
static bool parse_size(const json_t *v, uint64_t *out)
{
	const char *s, *end;
	uint64_t n, mul = 1;

	if (json_is_integer(v)) {
		if (json_integer_value(v) < 0)
			return false;
		*out = (uint64_t)json_integer_value(v);
		return true;
	}
	s = json_string_value(v);
	if (*s < '0' || *s > '9')
		return false;
	errno = 0;
	n = strtoull(s, (char **)&end, 10);
	if (errno)
		return false;
	switch (*end) {
	case 'T': mul <<= 10; /* fall through */
	case 'G': mul <<= 10; /* fall through */
	case 'M': mul <<= 10; /* fall through */
	case 'K': mul <<= 10; end++; break;
	}
	if (*end || n > UINT64_MAX / mul)
		return false;
	*out = n * mul;
	return true;
}

/* Index of `s` in the NULL-ended `words`, or -1. */
static int pick(const char *s, const char *const *words)
{
	for (int i = 0; words[i]; i++)
		if (!strcmp(s, words[i]))
			return i;
	return -1;
}

/* A relative path in the file is relative to the file's folder, so a VM's
 * folder can move as a whole. */
static char *resolve(const char *cfgpath, const char *p)
{
	const char *slash = strrchr(cfgpath, '/');
	char *out;

	if (p[0] == '/' || !slash)
		return strdup(p);
	if (asprintf(&out, "%.*s/%s", (int)(slash - cfgpath), cfgpath, p) < 0)
		return NULL;
	return out;
}

/* A path field the run keeps (the control socket, the checkpoints):
 * resolved against the file's folder, owned by *own. */
static int path_field(json_t *root, const char *key, const char *path, char **own,
		      const char **out, char *err, size_t errlen)
{
	json_t *v = json_object_get(root, key);

	if (!v)
		return 0;
	if (!json_string_length(v))
		return bad(err, errlen, path, "%s: expected a path", key);
	*own = resolve(path, json_string_value(v));
	if (!*own)
		return -ENOMEM;
	*out = *own;
	return 0;
}

static int check_fields(json_t *root, const char *path, char *err, size_t errlen)
{
	const char *key;
	json_t *v;

	json_object_foreach(root, key, v) {
		size_t i;

		for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
			if (!strcmp(key, fields[i].name))
				break;
		if (i == sizeof(fields) / sizeof(fields[0]))
			return bad(err, errlen, path, "unknown field '%s' (version %d has no such field)",
				   key, CONFIG_VERSION);
		if (!type_ok(v, fields[i].type))
			return bad(err, errlen, path, "%s: expected %s", key,
				   type_names[fields[i].type]);
	}
	return 0;
}

/* `words` (NULL-ended) for a person: "a", "b" or "c". */
static void word_list(const char *const *words, char *out, size_t len)
{
	size_t n = 0;

	out[0] = '\0';
	for (int i = 0; words[i] && n < len; i++)
		n += (size_t)snprintf(out + n, len - n, "%s\"%s\"",
				      !i ? "" : words[i + 1] ? ", " : " or ", words[i]);
}

/* A disk's field that must be one of `words`: the index of its value, def
 * when it is absent, or -EINVAL (and err). */
static int disk_word(json_t *o, const char *key, const char *const *words, int def,
		     const char *path, size_t i, char *err, size_t errlen)
{
	json_t *v = json_object_get(o, key);
	char list[128];
	int k;

	if (!v)
		return def;
	k = json_is_string(v) ? pick(json_string_value(v), words) : -1;
	if (k < 0) {
		word_list(words, list, sizeof(list));
		return bad(err, errlen, path, "disks[%zu]: %s: expected %s", i, key, list);
	}
	return k;
}

/* A disk's words, in the order of the disk layer's enums. */
static const char *const disk_formats[] = { "auto", "raw", "vhd", NULL };
static const char *const disk_undos[] = { "none", "commit", "keep", "discard", NULL };
static const char *const disk_caches[] = { "writeback", "none", "unsafe", NULL };

/* One of "disks": { "path", "format", "readonly", "undo", "cache" }, the
 * command line's --disk in JSON, into *spec; its path as written. */
static int disk_from_json(json_t *o, size_t i, const char *path, struct disk_spec *spec,
			  char *err, size_t errlen)
{
	static const char *const keys[] = { "path", "format", "readonly", "undo", "cache", NULL };
	const char *key;
	json_t *v;
	int k;

	if (!json_is_object(o))
		return bad(err, errlen, path, "disks[%zu]: expected an object", i);
	json_object_foreach(o, key, v)
		if (pick(key, keys) < 0)
			return bad(err, errlen, path, "disks[%zu]: unknown field '%s'", i, key);
	*spec = (struct disk_spec){ 0 };
	v = json_object_get(o, "path");
	if (!v || !json_is_string(v) || !*json_string_value(v))
		return bad(err, errlen, path, "disks[%zu]: path: expected a file's path", i);
	spec->path = json_string_value(v);
	if ((v = json_object_get(o, "readonly"))) {
		if (!json_is_boolean(v))
			return bad(err, errlen, path, "disks[%zu]: readonly: expected true or false",
				   i);
		spec->readonly = json_is_true(v);
	}
	/* The words' order is the enums'. */
	if ((k = disk_word(o, "format", disk_formats, 0, path, i, err, errlen)) < 0)
		return k;
	spec->format = (enum disk_format)k;
	if ((k = disk_word(o, "undo", disk_undos, 0, path, i, err, errlen)) < 0)
		return k;
	spec->undo = (enum disk_undo)k;
	if ((k = disk_word(o, "cache", disk_caches, 0, path, i, err, errlen)) < 0)
		return k;
	spec->cache = (enum disk_cache)k;
	return 0;
}

/* "disks": each disk's path from the file's folder. */
static int apply_disks(json_t *arr, const char *path, struct vmm_config *cfg,
		       struct config_file *cf, char *err, size_t errlen)
{
	json_t *o;
	size_t i;

	if (json_array_size(arr) > VMM_DISKS_MAX)
		return bad(err, errlen, path, "disks: %zu disks, more than %d",
			   json_array_size(arr), VMM_DISKS_MAX);
	cfg->nr_disks = 0;
	json_array_foreach(arr, i, o) {
		struct disk_spec *spec = &cfg->disks[i].spec;
		int r = disk_from_json(o, i, path, spec, err, errlen);

		if (r < 0)
			return r;
		cf->disks[i] = resolve(path, spec->path);
		if (!cf->disks[i])
			return -ENOMEM;
		spec->path = cf->disks[i];
		cfg->nr_disks++;
	}
	return 0;
}

json_t *vmm_config_disks_json(const struct vmm_config *cfg)
{
	json_t *arr = json_array();

	for (unsigned i = 0; arr && i < cfg->nr_disks; i++) {
		const struct disk_spec *spec = &cfg->disks[i].spec;

		if (json_array_append_new(arr, json_pack("{s:s,s:s,s:b,s:s,s:s}", "path", spec->path,
							 "format", disk_formats[spec->format],
							 "readonly", spec->readonly,
							 "undo", disk_undos[spec->undo],
							 "cache", disk_caches[spec->cache])) < 0) {
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}

int vmm_config_disks_from_json(json_t *arr, const char *what, struct vmm_config *cfg,
			       char *err, size_t errlen)
{
	json_t *o;
	size_t i;

	if (!json_is_array(arr) || json_array_size(arr) > VMM_DISKS_MAX)
		return bad(err, errlen, what, "disks: expected an array of at most %d",
			   VMM_DISKS_MAX);
	cfg->nr_disks = 0;
	json_array_foreach(arr, i, o) {
		int r = disk_from_json(o, i, what, &cfg->disks[i].spec, err, errlen);

		if (r < 0)
			return r;
		cfg->nr_disks++;
	}
	return 0;
}

/* One of "nics": {"type", "name", "mac", "hostfwd": [...]}. */
static int apply_nic(json_t *o, const char *path, unsigned i, struct net_spec *spec, char *err,
		     size_t errlen)
{
	json_t *type = json_object_get(o, "type"), *name = json_object_get(o, "name"), *v;
	char why[300];
	const char *key;
	size_t k;

	memset(spec, 0, sizeof(*spec));
	json_object_foreach(o, key, v) {
		if (strcmp(key, "type") && strcmp(key, "name") && strcmp(key, "mac") &&
		    strcmp(key, "hostfwd"))
			return bad(err, errlen, path, "nics[%u]: unknown field '%s' (type, name, mac, hostfwd)",
				   i, key);
		if (strcmp(key, "hostfwd") ? !json_is_string(v) : !json_is_array(v))
			return bad(err, errlen, path, "nics[%u].%s: expected %s", i, key,
				   strcmp(key, "hostfwd") ? "a string" : "an array of strings");
	}
	if (!type)
		return bad(err, errlen, path, "nics[%u].type: missing (\"user\", \"tap\" or \"bridge\")",
			   i);
	if (net_spec_set_type(spec, json_string_value(type), name ? json_string_value(name) : NULL,
			      why, sizeof(why)) < 0)
		return bad(err, errlen, path, "nics[%u]: %s", i, why);
	if ((v = json_object_get(o, "mac")) &&
	    net_spec_set_mac(spec, json_string_value(v), why, sizeof(why)) < 0)
		return bad(err, errlen, path, "nics[%u]: %s", i, why);
	json_array_foreach(json_object_get(o, "hostfwd"), k, v) {
		if (!json_is_string(v))
			return bad(err, errlen, path, "nics[%u].hostfwd: expected an array of strings",
				   i);
		if (net_spec_add_hostfwd(spec, json_string_value(v), why, sizeof(why)) < 0)
			return bad(err, errlen, path, "nics[%u]: %s", i, why);
	}
	return 0;
}

static int apply_nics(json_t *nics, const char *path, struct vmm_config *cfg, char *err,
		      size_t errlen)
{
	size_t i;
	json_t *o;

	if (json_array_size(nics) > NET_NICS_MAX)
		return bad(err, errlen, path, "nics: more than %d", NET_NICS_MAX);
	json_array_foreach(nics, i, o) {
		int r;

		if (!json_is_object(o))
			return bad(err, errlen, path, "nics[%zu]: expected an object", i);
		r = apply_nic(o, path, (unsigned)i, &cfg->nics[i], err, errlen);
		if (r < 0)
			return r;
	}
	cfg->nr_nics = (unsigned)json_array_size(nics);
	return 0;
}

json_t *vmm_config_nics_json(const struct vmm_config *cfg)
{
	static const char *const types[] = {
		[NET_USER] = "user", [NET_TAP] = "tap", [NET_BRIDGE] = "bridge", [NET_NULL] = "null",
	};
	json_t *arr = json_array();
	char buf[96];

	for (unsigned i = 0; arr && i < cfg->nr_nics; i++) {
		const struct net_spec *spec = &cfg->nics[i];
		json_t *o = json_pack("{s:s}", "type", types[spec->type]), *fwd = json_array();

		if (o && spec->ifname[0])
			json_object_set_new(o, "name", json_string(spec->ifname));
		if (o && spec->has_mac) {
			snprintf(buf, sizeof(buf), "%02x:%02x:%02x:%02x:%02x:%02x", spec->mac[0],
				 spec->mac[1], spec->mac[2], spec->mac[3], spec->mac[4], spec->mac[5]);
			json_object_set_new(o, "mac", json_string(buf));
		}
		for (unsigned k = 0; fwd && k < spec->nr_fwd; k++)
			json_array_append_new(fwd, json_string(net_hostfwd_format(&spec->fwd[k], buf,
										  sizeof(buf))));
		if (o && fwd && spec->nr_fwd)
			json_object_set(o, "hostfwd", fwd);
		json_decref(fwd);
		if (!o || json_array_append_new(arr, o) < 0) {
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}

int vmm_config_nics_from_json(json_t *arr, const char *what, struct vmm_config *cfg, char *err,
			      size_t errlen)
{
	if (!json_is_array(arr))
		return bad(err, errlen, what, "nics: expected an array");
	return apply_nics(arr, what, cfg, err, errlen);
}

int vmm_port_add(struct vmm_config *cfg, const char *name, size_t namelen, const char *socket,
		 char *err, size_t errlen)
{
	struct vmm_port *p = &cfg->ports[cfg->nr_ports];
	char n[VCON_NAME_MAX + 1];

	snprintf(n, sizeof(n), "%.*s", (int)(namelen < sizeof(n) ? namelen : sizeof(n)),
		 name);
	if (namelen > VCON_NAME_MAX || !vcon_name_valid(n)) {
		snprintf(err, errlen, "'%.*s' is not a port name (1 to %d letters, digits, '.', '_' or '-')",
			 (int)namelen, name, VCON_NAME_MAX);
		return -EINVAL;
	}
	for (unsigned i = 0; i < cfg->nr_ports; i++)
		if (!strcmp(cfg->ports[i].name, n)) {
			snprintf(err, errlen, "a second port named '%s'", n);
			return -EINVAL;
		}
	if (cfg->nr_ports == VMM_PORTS_MAX) {
		snprintf(err, errlen, "more than %d ports", VMM_PORTS_MAX);
		return -EINVAL;
	}
	if (!*socket) {
		snprintf(err, errlen, "port '%s': an empty socket path", n);
		return -EINVAL;
	}
	memcpy(p->name, n, sizeof(n));
	p->socket = socket;
	p->listen_fd = -1;
	cfg->nr_ports++;
	return 0;
}

/* "ports": [{"name": "org.example.agent", "socket": "agent.sock"}, ...] */
static int apply_ports(json_t *ports, const char *path, struct vmm_config *cfg,
		       struct config_file *cf, char *err, size_t errlen)
{
	char why[200];
	size_t i;
	json_t *p;

	json_array_foreach(ports, i, p) {
		json_t *name = json_object_get(p, "name"), *sock = json_object_get(p, "socket");

		if (!json_is_object(p) || json_object_size(p) != 2 || !json_is_string(name) ||
		    !json_is_string(sock))
			return bad(err, errlen, path,
				   "ports[%zu]: expected {\"name\": NAME, \"socket\": PATH} and nothing else",
				   i);
		if (i < VMM_PORTS_MAX && *json_string_value(sock)) {
			cf->port_socket[i] = resolve(path, json_string_value(sock));
			if (!cf->port_socket[i])
				return -ENOMEM;
		}
		if (vmm_port_add(cfg, json_string_value(name), strlen(json_string_value(name)),
				 i < VMM_PORTS_MAX && cf->port_socket[i] ? cf->port_socket[i] : "",
				 why, sizeof(why)) < 0)
			return bad(err, errlen, path, "ports[%zu]: %s", i, why);
	}
	return 0;
}

static int apply(json_t *root, const char *path, struct vmm_config *cfg,
		 struct config_file *cf, char *err, size_t errlen)
{
	static const char *const reboot_words[] = { "restart", "exit", NULL };
	static const char *const quirk_words[] = { "auto", "on", "off", NULL };
	json_t *v;
	int i;

	if ((v = json_object_get(root, "name"))) {
		if (!ident_name_ok(json_string_value(v)))
			return bad(err, errlen, path,
				   "name: expected 1 to 64 letters, digits, '.', '_' or '-'");
		cfg->name = json_string_value(v);
	}
	if ((v = json_object_get(root, "uuid"))) {
		if (!ident_uuid_ok(json_string_value(v), true))
			return bad(err, errlen, path,
				   "uuid: expected a UUID like 6f1c3c59-8a3e-4b6e-9c1e-2f5d7a0b4c11");
		cfg->uuid = json_string_value(v);
	}
	if ((v = json_object_get(root, "vcpus"))) {
		if (json_integer_value(v) < 1 || json_integer_value(v) > VM_MAX_CPUS)
			return bad(err, errlen, path, "vcpus: expected an integer from 1 to %d",
				   VM_MAX_CPUS);
		cfg->vm.nr_cpus = (unsigned)json_integer_value(v);
	}
	if ((v = json_object_get(root, "memory"))) {
		uint64_t size;

		if (!parse_size(v, &size))
			return bad(err, errlen, path, "memory: expected %s", type_names[F_SIZE]);
		if (size < VMM_MEMORY_MIN || size > VMM_MEMORY_MAX || size % 4096)
			return bad(err, errlen, path,
				   "memory: expected a whole number of pages from 16M to 1T");
		cfg->vm.mem_size = size;
	}
	if ((v = json_object_get(root, "kernel"))) {
		cf->kernel = resolve(path, json_string_value(v));
		if (!cf->kernel)
			return -ENOMEM;
		cfg->boot.kernel = cf->kernel;
	}
	if ((v = json_object_get(root, "initrd"))) {
		cf->initrd = resolve(path, json_string_value(v));
		if (!cf->initrd)
			return -ENOMEM;
		cfg->boot.initrd = cf->initrd;
	}
	if ((v = json_object_get(root, "cmdline")))
		cfg->boot.cmdline = json_string_value(v);
	if ((v = json_object_get(root, "console"))) {
		const char *c, *cpath;
		enum console_kind kind;

		if (console_parse_hvc(json_string_value(v), &cfg->hvc, &c) < 0)
			return bad(err, errlen, path,
				   "console: expected \"stdio\", \"file:PATH\", \"socket:PATH\", \"hvc\" or \"hvc,<one of these>\"");
		console_parse(c, &kind, &cpath);
		cfg->console = c;
		if (kind != CONSOLE_STDIO) {
			char *full = resolve(path, cpath);
			size_t n;

			if (!full)
				return -ENOMEM;
			n = strlen(full) + 8;
			cf->console = malloc(n);
			if (cf->console)
				snprintf(cf->console, n, "%s:%s",
					 kind == CONSOLE_FILE ? "file" : "socket", full);
			free(full);
			if (!cf->console)
				return -ENOMEM;
			cfg->console = cf->console;
		}
	}
	if ((v = json_object_get(root, "console_buffer"))) {
		if (!parse_size(v, &cfg->console_buffer) ||
		    cfg->console_buffer < CONSOLE_BUFFER_MIN ||
		    cfg->console_buffer > CONSOLE_BUFFER_MAX)
			return bad(err, errlen, path,
				   "console_buffer: expected a size from 4K to 1G");
	}
	if ((v = json_object_get(root, "on_reboot"))) {
		i = pick(json_string_value(v), reboot_words);
		if (i < 0)
			return bad(err, errlen, path, "on_reboot: expected \"restart\" or \"exit\"");
		cfg->on_reboot = i == 0 ? ON_REBOOT_RESTART : ON_REBOOT_EXIT;
	}
	if ((v = json_object_get(root, "host_quirks"))) {
		i = pick(json_string_value(v), quirk_words);
		if (i < 0)
			return bad(err, errlen, path,
				   "host_quirks: expected \"auto\", \"on\" or \"off\"");
		cfg->vm.quirks = i == 0 ? QUIRKS_AUTO : i == 1 ? QUIRKS_ON : QUIRKS_OFF;
	}
	if ((v = json_object_get(root, "hugepages")))
		cfg->vm.hugepages = json_is_true(v);
	if ((v = json_object_get(root, "memfd")))
		cfg->vm.memfd = json_is_true(v);
	if ((v = json_object_get(root, "rng")))
		cfg->rng = json_is_true(v);
	if ((v = json_object_get(root, "halt_poll_ns"))) {
		if (json_integer_value(v) < 0 || json_integer_value(v) > VM_HALT_POLL_NS_MAX)
			return bad(err, errlen, path,
				   "halt_poll_ns: expected an integer from 0 to %u",
				   VM_HALT_POLL_NS_MAX);
		cfg->vm.halt_poll_ns = (uint32_t)json_integer_value(v);
		cfg->vm.halt_poll_given = true;
	}
	if ((v = json_object_get(root, "disks"))) {
		int r = apply_disks(v, path, cfg, cf, err, errlen);

		if (r < 0)
			return r;
	}
	if ((v = json_object_get(root, "nics"))) {
		int r = apply_nics(v, path, cfg, err, errlen);

		if (r < 0)
			return r;
	}
	if ((v = json_object_get(root, "ports"))) {
		int r = apply_ports(v, path, cfg, cf, err, errlen);

		if (r < 0)
			return r;
	}
	if ((i = path_field(root, "control", path, &cf->control, &cfg->control, err, errlen)) < 0)
		return i;
	i = path_field(root, "checkpoints", path, &cf->checkpoints, &cfg->checkpoints, err, errlen);
	if (i < 0)
		return i;
	return 0;
}

int vmm_config_load(const char *path, struct vmm_config *cfg, char *err, size_t errlen)
{
	struct config_file *cf = calloc(1, sizeof(*cf));
	json_error_t je;
	json_t *v;
	int r;

	if (!cf)
		return -ENOMEM;
	cfg->file = cf;
	cf->root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
	if (!cf->root) {
		if (je.line < 1)	/* could not read it at all */
			return bad(err, errlen, path, "%s", je.text);
		return bad(err, errlen, path, "line %d, column %d: %s", je.line, je.column,
			   je.text);
	}
	if (!json_is_object(cf->root))
		return bad(err, errlen, path, "expected a JSON object");
	/* The version first: a newer file's new fields are not typos. */
	v = json_object_get(cf->root, "version");
	if (!v)
		return bad(err, errlen, path, "version: missing (this vsrv reads version %d)",
			   CONFIG_VERSION);
	if (!json_is_integer(v) || json_integer_value(v) < 1)
		return bad(err, errlen, path, "version: expected an integer from 1");
	if (json_integer_value(v) > CONFIG_VERSION)
		return bad(err, errlen, path,
			   "version %" JSON_INTEGER_FORMAT " is newer than this vsrv reads (%d): upgrade vsrv",
			   json_integer_value(v), CONFIG_VERSION);
	r = check_fields(cf->root, path, err, errlen);
	if (r < 0)
		return r;
	r = apply(cf->root, path, cfg, cf, err, errlen);
	if (r == -ENOMEM)
		snprintf(err, errlen, "%s: out of memory", path);
	return r;
}

void vmm_config_free(struct vmm_config *cfg)
{
	struct config_file *cf = cfg->file;

	json_decref(cfg->restore_conf);
	cfg->restore_conf = NULL;
	if (!cf)
		return;
	json_decref(cf->root);
	free(cf->kernel);
	free(cf->initrd);
	free(cf->console);
	for (unsigned i = 0; i < VMM_DISKS_MAX; i++)
		free(cf->disks[i]);
	for (unsigned i = 0; i < VMM_PORTS_MAX; i++)
		free(cf->port_socket[i]);
	free(cf->control);
	free(cf->checkpoints);
	free(cf);
	cfg->file = NULL;
}
