// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * A VM's config file for `vsrv run --config` (docs/vm-config.md), written
 * from the inventory into the VM's folder before each start: the file is
 * what the VMM reads, the inventory what vsrvd believes.
 *
 * The paths are checked again here, at each start, not only when the VM
 * was defined: a symbolic link may point elsewhere since, and a VHD's
 * parents (which its file names, not the request) must be in disk_dirs
 * too, or a differencing disk could hand the guest any VHD on the host.
 * What is written is the paths as they resolve now.
 *
 * The folder's own files are relative (the VMM resolves them against the
 * file's folder): the console's socket (vsrvd reads it into console.log,
 * console.c), the control socket and the checkpoints' folder, so that a deep state directory never makes a
 * socket's address too long for the VMM.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vhd.h"
#include "vmconf.h"

/* The path, resolved, if it is still under dirs. */
static json_t *allowed(char *const *dirs, const char *what, const char *path,
		       struct vsrvd_err *e)
{
	char *real;
	json_t *s;

	if (config_path_allowed(dirs, what, path, &real, e) < 0)
		return NULL;
	s = json_string(real);
	free(real);
	return s;
}

/* Every layer under a VHD in disk_dirs (the top was checked already). */
static int parents_allowed(const struct vsrvd *d, const char *path, const char *what,
			   struct vsrvd_err *e)
{
	struct vhd_open_opts opts = { .flags = VHD_OPEN_NO_LOCK };
	struct vhd_error verr = { 0 };
	struct vhd *v;
	char *real;
	int r;

	r = vhd_open(path, &opts, &v, &verr);
	if (r < 0)
		return vsrvd_fail(e, 400, r, "%s: %s", what, verr.msg[0] ? verr.msg : strerror(-r));
	for (struct vhd *p = vhd_parent(v); p && r == 0; p = vhd_parent(p)) {
		r = config_path_allowed(d->cfg.disk_dirs, what, vhd_name(p), &real, e);
		if (r == 0) {
			free(real);
		} else if (e->status == 403) {
			real = realpath(vhd_name(p), NULL);
			vsrvd_fail(e, 403, r, "%s: %s's parent %s is outside the directories the configuration allows",
				   what, path, real ? real : vhd_name(p));
			free(real);
		}
	}
	vhd_close(v);
	return r;
}

static json_t *disks(const struct vsrvd *d, const json_t *vm, struct vsrvd_err *e)
{
	json_t *out = json_array(), *disk;
	size_t i;

	json_array_foreach(json_object_get(vm, "disks"), i, disk) {
		char what[32];
		json_t *path;

		snprintf(what, sizeof(what), "disks[%zu]", i);
		path = allowed(d->cfg.disk_dirs, what, json_string_value(json_object_get(disk, "path")),
			       e);
		if (!path || (spec_is_vhd(json_string_value(path)) &&
			      parents_allowed(d, json_string_value(path), what, e) < 0)) {
			json_decref(path);
			json_decref(out);
			return NULL;
		}
		json_array_append_new(out, json_pack("{s:o, s:O, s:O, s:O}", "path", path,
						     "readonly", json_object_get(disk, "readonly"),
						     "undo", json_object_get(disk, "undo"),
						     "cache", json_object_get(disk, "cache")));
	}
	return out;
}

/* The VM's network on the host: user NAT, or a tap on its bridge. */
static json_t *nics(const struct vsrvd *d, const json_t *vm, struct vsrvd_err *e)
{
	json_t *out = json_array(), *nic;
	size_t i;

	json_array_foreach(json_object_get(vm, "nics"), i, nic) {
		const char *name = json_string_value(json_object_get(nic, "network"));
		const char *mac = json_string_value(json_object_get(nic, "mac"));
		json_t *net;

		if (inventory_net_get(d->inv, name, &net, e) < 0) {
			json_decref(out);
			return NULL;
		}
		if (!strcmp(json_string_value(json_object_get(net, "type")), "user"))
			json_array_append_new(out, json_pack("{s:s, s:s}", "type", "user", "mac", mac));
		else	/* internal (vsrvd's bridge) or bridge (the host's) */
			json_array_append_new(out, json_pack("{s:s, s:O, s:s}", "type", "bridge",
							     "name", json_object_get(net, "bridge"),
							     "mac", mac));
		json_decref(net);
	}
	return out;
}

int vmconf_write(const struct vsrvd *d, const json_t *vm, const char *dir, struct vsrvd_err *e)
{
	const char *const copy[] = { "name", "uuid", "vcpus", "memory", "cmdline", "rng", NULL };
	const char *initrd = json_string_value(json_object_get(vm, "initrd"));
	char path[4096], *text;
	json_t *cfg, *v;
	int r;

	cfg = json_pack("{s:i, s:s, s:s, s:s, s:s, s:s}", "version", 1,
			"console", "socket:console.sock", "on_reboot", "restart", "host_quirks", "auto",
			"control", "control.sock", "checkpoints", "checkpoints");
	for (const char *const *k = copy; *k; k++) {
		v = json_object_get(vm, *k);
		if (v && !json_is_null(v))
			json_object_set(cfg, *k, v);
	}
	v = allowed(d->cfg.vm_dirs, "kernel", json_string_value(json_object_get(vm, "kernel")), e);
	if (!v)
		goto fail;
	json_object_set_new(cfg, "kernel", v);
	if (initrd) {
		v = allowed(d->cfg.vm_dirs, "initrd", initrd, e);
		if (!v)
			goto fail;
		json_object_set_new(cfg, "initrd", v);
	}
	if (!(v = disks(d, vm, e)))
		goto fail;
	json_object_set_new(cfg, "disks", v);
	if (!(v = nics(d, vm, e)))
		goto fail;
	json_object_set_new(cfg, "nics", v);
	text = json_dumps(cfg, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(cfg);
	if (!text)
		return -ENOMEM;
	snprintf(path, sizeof(path), "%s/vm.json", dir);
	r = write_file_atomic(path, text, strlen(text), 0644);
	free(text);
	if (r < 0)
		return vsrvd_fail(e, 500, r, "%s: %s", path, strerror(-r));
	return 0;
fail:
	json_decref(cfg);
	return e->status ? -EINVAL : -ENOMEM;
}
