// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * A VM's config file for `vsrv run --config` (docs/vm-config.md), written
 * from the inventory into the VM's folder before each start: the file is
 * what the VMM reads, the inventory what vsrvd believes.
 *
 * Version 1 of the format has no disks and no NICs yet (their arrays must
 * be empty): a VM that has them cannot start until vsrv run can attach
 * them, and says so (501).  When the format gains them, they are written
 * here and nowhere else.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmconf.h"

int vmconf_write(const json_t *vm, const char *dir, struct vsrvd_err *e)
{
	const char *const copy[] = { "name", "uuid", "vcpus", "memory", "kernel", "initrd",
				     "cmdline", "rng", NULL };
	char path[4096], *text;
	json_t *cfg;
	int r;

	if (json_array_size(json_object_get(vm, "disks")) ||
	    json_array_size(json_object_get(vm, "nics")))
		return vsrvd_fail(e, 501, -ENOSYS,
				  "disks and nics: this vsrv run cannot attach them yet (its VM config, version 1, has none)");
	cfg = json_pack("{s:i, s:s, s:s, s:s}", "version", 1,
			/* Relative: the VMM resolves it against the file's folder. */
			"console", "file:console.log",
			"on_reboot", "restart", "host_quirks", "auto");
	for (const char *const *k = copy; *k; k++) {
		json_t *v = json_object_get(vm, *k);

		if (v && !json_is_null(v))
			json_object_set(cfg, *k, v);
	}
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
}
