// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The checkpoints' index (src/vmm/checkpoints.c) with no VM and no disk
 * files: the disks' chains as checkpoints, reverts and deletions leave
 * them, and which layer the rules find unneeded next, step by step, for
 * the history of docs/control.md (A, B, revert to A, delete B, delete A);
 * the index as written and read back; an index of version 1 read, and one
 * of a later version refused with its line.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../../src/vmm/control.h"

#define BASE	"/vm/disk.vhd"
#define DA	"/vm/disk.A.avhd"
#define DA2	"/vm/disk.A.2.avhd"
#define DB	"/vm/disk.B.avhd"

static char tmpdir[64] = "/tmp/vsrv-test-checkpoints-XXXXXX";

/* NAME in the test's folder (a ring of four, as each call's result is
 * used at once or kept by the callee). */
static const char *tpath(const char *name)
{
	static char buf[4][128];
	static unsigned i;

	i = (i + 1) % 4;
	snprintf(buf[i], sizeof(buf[i]), "%s/%s", tmpdir, name);
	return buf[i];
}

static struct ckpt_index *open_index(const char *dir)
{
	struct ckpt_index *c;
	char err[600];

	if (ckpt_open(&c, tpath(dir), err, sizeof(err)) < 0)
		fail_msg("%s", err);
	return c;
}

/* A checkpoint as the supervisor makes one: the top frozen, a new layer
 * over it. */
static void checkpoint(struct ckpt_index *c, const char *name, const char *child)
{
	const char *top = ckpt_disk_top(c, BASE);
	json_t *frozen = json_pack("{s:s}", BASE, top ? top : BASE);

	assert_int_equal(ckpt_disk_push(c, BASE, child, top ? top : BASE), 0);
	assert_int_equal(ckpt_add(c, name, 4096, frozen), 0);
	json_decref(frozen);
}

static void next_step(struct ckpt_index *c, bool merge, enum ckpt_step want, const char *file,
		      const char *parent)
{
	const char *f = NULL, *p = NULL;

	assert_int_equal(ckpt_disk_step(c, BASE, merge, &f, &p), want);
	if (want != CKPT_STEP_NONE) {
		assert_string_equal(f, file);
		assert_string_equal(p, parent);
	}
}

/* What disks.c does with a step (the file removed, or merged). */
static void do_step(struct ckpt_index *c, enum ckpt_step step, const char *file,
		    const char *parent)
{
	next_step(c, step == CKPT_STEP_MERGE, step, file, parent);
	if (step == CKPT_STEP_MERGE)
		assert_int_equal(ckpt_disk_set_top(c, BASE, parent), 0);
	ckpt_disk_drop(c, BASE, file);
	assert_int_equal(ckpt_write(c), 0);
}

static void test_history(void **s)
{
	struct ckpt_index *c = open_index("hist");
	json_t *list;

	assert_null(ckpt_disk_top(c, BASE));
	checkpoint(c, "A", DA);
	checkpoint(c, "B", DB);
	assert_string_equal(ckpt_disk_top(c, BASE), DB);
	assert_string_equal(ckpt_layer_of(c, "A", BASE), BASE);
	assert_string_equal(ckpt_layer_of(c, "B", BASE), DA);
	assert_null(ckpt_layer_of(c, "B", "/vm/other.vhd"));
	/* Every layer is needed: B froze A's, the VM runs on B's. */
	next_step(c, false, CKPT_STEP_NONE, NULL, NULL);
	next_step(c, true, CKPT_STEP_NONE, NULL, NULL);

	/* Revert to A: a new layer over A's is the top; B's top goes. */
	assert_int_equal(ckpt_disk_push(c, BASE, DA2, BASE), 0);
	assert_int_equal(ckpt_set_current(c, "A"), 0);
	do_step(c, CKPT_STEP_REMOVE, DB, DA);
	next_step(c, true, CKPT_STEP_NONE, NULL, NULL);

	/* B deleted: its layer, which nothing stands on, goes. */
	assert_int_equal(ckpt_delete(c, "B"), 0);
	do_step(c, CKPT_STEP_REMOVE, DA, BASE);
	next_step(c, false, CKPT_STEP_NONE, NULL, NULL);
	/* A stands on the base: the top stays over it. */
	next_step(c, true, CKPT_STEP_NONE, NULL, NULL);

	list = ckpt_list(c);
	assert_string_equal(json_string_value(json_object_get(
		json_array_get(json_object_get(list, "disks"), 0), "top")), DA2);
	json_decref(list);
	ckpt_close(c);

	/* Read back as written. */
	c = open_index("hist");
	assert_string_equal(ckpt_disk_top(c, BASE), DA2);
	assert_true(ckpt_exists(c, "A"));
	assert_false(ckpt_exists(c, "B"));

	/* A deleted: nothing is removed while the VM runs; once it is off
	 * the top merges into the base, and the disk has no layers left. */
	assert_int_equal(ckpt_delete(c, "A"), 0);
	next_step(c, false, CKPT_STEP_NONE, NULL, NULL);
	do_step(c, CKPT_STEP_MERGE, DA2, BASE);
	assert_null(ckpt_disk_top(c, BASE));
	next_step(c, true, CKPT_STEP_NONE, NULL, NULL);
	ckpt_close(c);
}

/* A, B, both deleted while the VM runs on B's layer: merged down one by
 * one once it is off, the deleted B's first. */
static void test_merge_chain(void **s)
{
	struct ckpt_index *c = open_index("chain");

	checkpoint(c, "A", DA);
	checkpoint(c, "B", DB);
	assert_int_equal(ckpt_delete(c, "A"), 0);
	/* B froze A's layer, which stands on the base. */
	next_step(c, true, CKPT_STEP_NONE, NULL, NULL);
	assert_int_equal(ckpt_delete(c, "B"), 0);
	next_step(c, false, CKPT_STEP_NONE, NULL, NULL);
	do_step(c, CKPT_STEP_MERGE, DB, DA);
	do_step(c, CKPT_STEP_MERGE, DA, BASE);
	next_step(c, true, CKPT_STEP_NONE, NULL, NULL);
	assert_null(ckpt_disk_top(c, BASE));
	ckpt_close(c);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void test_versions(void **s)
{
	struct ckpt_index *c;
	char err[600], want[700];

	assert_int_equal(ckpt_open(&c, tpath("v1"), err, sizeof(err)), 0);
	ckpt_close(c);
	write_file(tpath("v1/index.json"), "{\"version\": 1, \"current\": \"A\", "
		   "\"checkpoints\": [{\"name\": \"A\", \"parent\": null, \"time\": 1, "
		   "\"bytes\": 2}]}");
	c = open_index("v1");
	assert_true(ckpt_exists(c, "A"));
	assert_null(ckpt_layer_of(c, "A", BASE));
	assert_null(ckpt_disk_top(c, BASE));
	ckpt_close(c);
	write_file(tpath("v1/index.json"), "{\"version\": 3, \"checkpoints\": []}");
	assert_int_equal(ckpt_open(&c, tpath("v1"), err, sizeof(err)), -EINVAL);
	snprintf(want, sizeof(want), "checkpoints: %s: not an index of version 1 or 2",
		 tpath("v1/index.json"));
	assert_string_equal(err, want);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_history),
		cmocka_unit_test(test_merge_chain),
		cmocka_unit_test(test_versions),
	};
	char cmd[128];
	int r;

	if (!mkdtemp(tmpdir))
		return 1;
	r = cmocka_run_group_tests(tests, NULL, NULL);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	if (system(cmd) != 0)
		r = r ? r : 1;
	return r;
}
