// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Fuzzes what vsrvd does with a request body before anything reaches the
 * inventory or the host: JSON parsing (spec_parse_body) and the checks of
 * each kind of body (spec_check: VM create, VM update, network, disk,
 * disk job).
 *
 * Input: one byte choosing the kind, then the body.  Checked for every
 * input: a refusal is a 4xx with a message; an accepted body comes back as
 * an object whose every path lies under the allowed directories, and the
 * normalised object passes the same check again unchanged (normalising
 * twice is normalising once).
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/daemon/vsrvd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct vsrvd_config cfg;
static char *dirs[] = { "/usr/lib", NULL };

static void setup(void)
{
	struct vsrvd_err e;

	if (cfg.state_dir)
		return;
	if (config_load(&cfg, NULL, "/nonexistent/vsrvd-fuzz", &e) < 0)
		abort();
	/* Paths the checks can resolve: a real folder with files in it. */
	free_strv(cfg.vm_dirs);
	free_strv(cfg.disk_dirs);
	cfg.vm_dirs = calloc(2, sizeof(char *));
	cfg.disk_dirs = calloc(2, sizeof(char *));
	cfg.vm_dirs[0] = strdup(dirs[0]);
	cfg.disk_dirs[0] = strdup(dirs[0]);
}

static void check_paths(json_t *v)
{
	const char *key;
	json_t *x;
	size_t i;

	if (json_is_array(v)) {
		json_array_foreach(v, i, x)
			check_paths(x);
	} else if (json_is_object(v)) {
		json_object_foreach(v, key, x) {
			if ((!strcmp(key, "kernel") || !strcmp(key, "initrd") || !strcmp(key, "path") ||
			     !strcmp(key, "parent") || !strcmp(key, "source")) && json_is_string(x))
				assert(!strncmp(json_string_value(x), "/usr/lib/", 9));
			check_paths(x);
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vsrvd_err e = { 0 };
	json_t *body, *out, *again;
	enum spec_kind kind;

	setup();
	if (!size)
		return 0;
	kind = (enum spec_kind)(data[0] % NR_SPEC_KINDS);
	if (spec_parse_body((const char *)data + 1, size - 1, &body, &e) < 0) {
		assert(e.status == 400 && e.msg[0]);
		return 0;
	}
	if (spec_check(kind, body, &cfg, &out, &e) < 0) {
		assert(e.status >= 400 && e.status < 500 && e.msg[0]);
	} else {
		assert(json_is_object(out));
		check_paths(out);
		if (kind != SPEC_DISK) {	/* a disk's default path is for a new file */
			memset(&e, 0, sizeof(e));
			if (spec_check(kind, out, &cfg, &again, &e) == 0) {
				assert(json_equal(out, again));
				json_decref(again);
			} else {
				/* Only a path that vanished in between may differ. */
				assert(e.status == 400 || e.status == 403);
			}
		}
		json_decref(out);
	}
	json_decref(body);
	return 0;
}
