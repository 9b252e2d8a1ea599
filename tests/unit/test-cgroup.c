// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vsrvd's cgroups (src/daemon/cgroup.c) against directory trees made to
 * look like cgroup v1 and v2 hierarchies: the files the kernel would have
 * are made beforehand (a plain mkdir does not make them), and the test
 * reads back exactly what vsrvd wrote into each.  The integration tests
 * (test_vsrvd_jobs.py) use the real hierarchies; this host's cgroup2 has
 * no controllers (they are bound to v1), so the v2 values are tested here.
 */
#include <sys/stat.h>

#include "util.h"
#include "../../src/daemon/cgroup.h"

#define UUID	"0c6b1b4e-6f3c-4b8e-9d5e-1f2a3b4c5d6e"

static void put_file(const char *dir, const char *name, const char *text)
{
	char path[1024];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void expect_file(const char *dir, const char *name, const char *text)
{
	char path[1024], buf[512];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_int_equal(read_small_file(path, buf, sizeof(buf)), 0);
	assert_string_equal(buf, text);
}

static void mkdirs(const char *a, const char *b, const char *c)
{
	char path[1024];

	snprintf(path, sizeof(path), "%s", a);
	mkdir(path, 0755);
	if (b) {
		snprintf(path, sizeof(path), "%s/%s", a, b);
		mkdir(path, 0755);
	}
	if (c) {
		snprintf(path, sizeof(path), "%s/%s/%s", a, b, c);
		mkdir(path, 0755);
	}
}

static char *join(const char *a, const char *b)
{
	char *p;

	assert_true(asprintf(&p, "%s/%s", a, b) > 0);
	return p;
}

static bool exists(const char *dir, const char *name)
{
	char *p = join(dir, name);
	bool yes = access(p, F_OK) == 0;

	free(p);
	return yes;
}

/* A cgroup2 root with cpu and memory, vsrvd at its root: the VM's files
 * as the kernel shows them once +cpu +memory are in the parent's
 * subtree_control. */
static void v2_tree(const char *root, const char *controllers)
{
	char *vsrv = join(root, "vsrv"), *vm = join(vsrv, UUID);

	mkdirs(root, "vsrv", UUID);
	put_file(root, "cgroup.controllers", controllers);
	put_file(root, "cgroup.subtree_control", "");
	put_file(vsrv, "cgroup.controllers", controllers);
	put_file(vsrv, "cgroup.subtree_control", "");
	put_file(vm, "cgroup.procs", "");
	if (strstr(controllers, "cpu")) {
		put_file(vm, "cpu.weight", "100\n");
		put_file(vm, "cpu.max", "max 100000\n");
	}
	if (strstr(controllers, "memory")) {
		put_file(vm, "memory.max", "max\n");
		put_file(vm, "memory.swap.max", "max\n");
	}
	free(vsrv);
	free(vm);
}

static struct cgroup_host *open_v2(const char *root)
{
	struct cgroup_where w = { .version = 2 };
	struct cgroup_host *h;

	for (int c = 0; c < NR_CG_CTRLS; c++) {
		snprintf(w.mount[c], sizeof(w.mount[c]), "%s", root);
		snprintf(w.own[c], sizeof(w.own[c]), "/");
	}
	assert_int_equal(cgroup_host_open(&h, &w), 0);
	return h;
}

static void test_v2_values(void **s)
{
	const char *root = tpath("v2"), *state = tpath("v2-state");
	char *vsrv = join(root, "vsrv"), *vm = join(vsrv, UUID), line[600];
	struct cgroup_limits l = { .weight = 300, .cap = 150, .memory = 64 << 20 };
	struct cgroup_vm cg, again;
	struct vsrvd_err e = { 0 };
	struct cgroup_host *h;
	json_t *d;

	v2_tree(root, "cpuset cpu io memory pids\n");
	mkdir(state, 0755);
	h = open_v2(root);
	/* Each controller handed down, one write each, to vsrvd's cgroup and
	 * from it to the VMs'. */
	expect_file(root, "cgroup.subtree_control", "+cpu+memory");
	expect_file(vsrv, "cgroup.subtree_control", "+cpu+memory");
	d = cgroup_host_describe(h);
	assert_int_equal(json_integer_value(json_object_get(d, "version")), 2);
	assert_string_equal(json_string_value(json_object_get(json_object_get(d, "memory"),
							      "cgroup")), vsrv);
	json_decref(d);

	cgroup_vm_start(h, UUID, &l, state, &cg);
	expect_file(vm, "cpu.weight", "300");
	expect_file(vm, "cpu.max", "150000 100000");
	expect_file(vm, "memory.max", "67108864");
	expect_file(vm, "memory.swap.max", "0");
	snprintf(line, sizeof(line), "v2\ncpu,memory %s\n", vm);
	expect_file(state, "cgroups", line);
	cgroup_vm_not_enforced(&cg, line, sizeof(line));
	assert_string_equal(line, "");
	d = cgroup_vm_describe(&cg);
	assert_int_equal(json_array_size(json_object_get(d, "enforced")), 3);
	assert_string_equal(json_string_value(json_array_get(json_object_get(d, "paths"), 0)), vm);
	json_decref(d);

	/* Placed: the pid in cgroup.procs; a live process not there is not. */
	put_file(vm, "cgroup.procs", "1\n");
	assert_true(cgroup_vm_check_placed(&cg, 1));
	assert_false(cgroup_vm_check_placed(&cg, getpid()));
	cgroup_vm_not_enforced(&cg, line, sizeof(line));
	assert_non_null(strstr(line, "cpu_weight: the VMM is not in "));

	/* Limits lifted: each version's defaults. */
	memset(&l, 0, sizeof(l));
	assert_int_equal(cgroup_vm_update(h, &cg, UUID, &l, 1, state, &e), 0);
	expect_file(vm, "cpu.weight", "100");
	expect_file(vm, "cpu.max", "max 100000");
	expect_file(vm, "memory.max", "max");
	expect_file(vm, "memory.swap.max", "max");

	/* A later vsrvd finds the same cgroup and writes the limits again. */
	l.cap = 25;
	assert_int_equal(cgroup_vm_adopt(h, state, &l, &again), 0);
	assert_string_equal(again.dirs[0], vm);
	assert_int_equal(again.ctrl_dir[CG_CPU], 0);
	assert_int_equal(again.ctrl_dir[CG_MEMORY], 0);
	expect_file(vm, "cpu.max", "25000 100000");

	/* At the end the state file goes (a fake tree's folder cannot). */
	cgroup_vm_end(&again, state);
	assert_false(exists(state, "cgroups"));
	assert_int_equal(cgroup_vm_adopt(h, state, &l, &again), -ENOENT);
	cgroup_host_close(h);
	free(vsrv);
	free(vm);
}

/* This host's case: cgroup2 without controllers.  The VM still gets a
 * cgroup (grouped and counted), and each limit says why it is not
 * enforced. */
static void test_v2_no_controllers(void **s)
{
	const char *root = tpath("v2-none"), *state = tpath("v2-none-state");
	struct cgroup_limits l = { .cap = 20, .memory = 32 << 20 };
	char *vm = join(root, "vsrv/" UUID), text[1200], want[600];
	struct cgroup_host *h;
	struct cgroup_vm cg;
	json_t *d;

	v2_tree(root, "\n");
	mkdir(state, 0755);
	h = open_v2(root);
	cgroup_vm_start(h, UUID, &l, state, &cg);
	assert_int_equal(cg.ndirs, 1);
	assert_string_equal(cg.dirs[0], vm);
	snprintf(want, sizeof(want), "v2\n- %s\n", vm);
	expect_file(state, "cgroups", want);
	cgroup_vm_not_enforced(&cg, text, sizeof(text));
	snprintf(want, sizeof(want),
		 "cpu_cap: cgroup2 at %s: no cpu controller for / (cgroup.controllers: \"\"; bound to a cgroup v1 hierarchy, or not delegated); "
		 "memory_limit: cgroup2 at %s: no memory controller for / (cgroup.controllers: \"\"; bound to a cgroup v1 hierarchy, or not delegated)",
		 root, root);
	assert_string_equal(text, want);
	d = cgroup_vm_describe(&cg);
	assert_int_equal(json_array_size(json_object_get(d, "enforced")), 0);
	assert_int_equal(json_object_size(json_object_get(d, "not_enforced")), 2);
	json_decref(d);
	cgroup_vm_end(&cg, state);
	cgroup_host_close(h);
	free(vm);
}

static void v1_tree(const char *root)
{
	char *cpu = join(root, "cpu/vsrv/" UUID), *mem = join(root, "memory/vsrv/" UUID);

	mkdirs(root, "cpu", "vsrv");
	mkdirs(root, "memory", "vsrv");
	mkdir(cpu, 0755);
	mkdir(mem, 0755);
	put_file(cpu, "cgroup.procs", "");
	put_file(cpu, "cpu.shares", "1024\n");
	put_file(cpu, "cpu.cfs_period_us", "100000\n");
	put_file(cpu, "cpu.cfs_quota_us", "-1\n");
	put_file(mem, "cgroup.procs", "");
	put_file(mem, "memory.limit_in_bytes", "9223372036854771712\n");
	put_file(mem, "memory.memsw.limit_in_bytes", "9223372036854771712\n");
	free(cpu);
	free(mem);
}

/* The tree, and a host on it with vsrvd at the hierarchies' roots. */
static struct cgroup_host *open_v1(const char *root, const char *state)
{
	struct cgroup_where w = { .version = 1 };
	struct cgroup_host *h;

	v1_tree(root);
	mkdir(state, 0755);
	snprintf(w.mount[CG_CPU], sizeof(w.mount[0]), "%s/cpu", root);
	snprintf(w.mount[CG_MEMORY], sizeof(w.mount[0]), "%s/memory", root);
	strcpy(w.own[CG_CPU], "/");
	strcpy(w.own[CG_MEMORY], "/");
	assert_int_equal(cgroup_host_open(&h, &w), 0);
	return h;
}

static void test_v1_values(void **s)
{
	const char *root = tpath("v1"), *state = tpath("v1-state");
	char *cpu = join(root, "cpu/vsrv/" UUID), *mem = join(root, "memory/vsrv/" UUID);
	struct cgroup_limits l = { .weight = 300, .cap = 150, .memory = 64 << 20 };
	struct vsrvd_err e = { 0 };
	struct cgroup_host *h;
	struct cgroup_vm cg;
	char want[1200];

	h = open_v1(root, state);
	cgroup_vm_start(h, UUID, &l, state, &cg);
	assert_int_equal(cg.ndirs, 2);
	expect_file(cpu, "cpu.shares", "3072");
	expect_file(cpu, "cpu.cfs_period_us", "100000");
	expect_file(cpu, "cpu.cfs_quota_us", "150000");
	expect_file(mem, "memory.limit_in_bytes", "67108864");
	expect_file(mem, "memory.memsw.limit_in_bytes", "67108864");
	snprintf(want, sizeof(want), "v1\ncpu %s\nmemory %s\n", cpu, mem);
	expect_file(state, "cgroups", want);

	l.weight = 1;		/* 1% of the default share, rounded down */
	l.memory = 128 << 20;
	assert_int_equal(cgroup_vm_update(h, &cg, UUID, &l, 1, state, &e), 0);
	expect_file(cpu, "cpu.shares", "10");
	expect_file(mem, "memory.limit_in_bytes", "134217728");
	expect_file(mem, "memory.memsw.limit_in_bytes", "134217728");
	memset(&l, 0, sizeof(l));
	assert_int_equal(cgroup_vm_update(h, &cg, UUID, &l, 1, state, &e), 0);
	expect_file(cpu, "cpu.shares", "1024");
	expect_file(cpu, "cpu.cfs_quota_us", "-1");
	expect_file(mem, "memory.limit_in_bytes", "-1");
	expect_file(mem, "memory.memsw.limit_in_bytes", "-1");
	cgroup_vm_end(&cg, state);
	cgroup_host_close(h);
	free(cpu);
	free(mem);
}

/* A VM without limits has no cgroup; its first limit, given while it
 * runs, makes them and moves its processes in. */
static void test_v1_first_limit_later(void **s)
{
	const char *root = tpath("v1l"), *state = tpath("v1l-state");
	char *cpu = join(root, "cpu/vsrv/" UUID), *mem = join(root, "memory/vsrv/" UUID);
	struct cgroup_limits l = { 0 };
	struct vsrvd_err e = { 0 };
	struct cgroup_host *h;
	struct cgroup_vm cg;
	char want[1200];
	json_t *d;

	h = open_v1(root, state);
	cgroup_vm_start(h, UUID, &l, state, &cg);
	assert_int_equal(cg.ndirs, 0);
	assert_false(exists(state, "cgroups"));
	d = cgroup_vm_describe(&cg);
	assert_int_equal(json_integer_value(json_object_get(d, "version")), 1);
	assert_int_equal(json_array_size(json_object_get(d, "paths")), 0);
	json_decref(d);

	l.cap = 40;
	assert_int_equal(cgroup_vm_update(h, &cg, UUID, &l, getpid(), state, &e), 0);
	assert_int_equal(cg.ndirs, 2);
	expect_file(cpu, "cpu.cfs_quota_us", "40000");
	expect_file(mem, "memory.limit_in_bytes", "-1");
	snprintf(want, sizeof(want), "%d", (int)getpid());
	expect_file(cpu, "cgroup.procs", want);
	expect_file(mem, "cgroup.procs", want);
	snprintf(want, sizeof(want), "v1\ncpu %s\nmemory %s\n", cpu, mem);
	expect_file(state, "cgroups", want);
	cgroup_vm_not_enforced(&cg, want, sizeof(want));
	assert_string_equal(want, "");
	cgroup_vm_end(&cg, state);
	cgroup_host_close(h);
	free(cpu);
	free(mem);
}

/* Where the hierarchy cannot be written, the limits say why and the VM
 * has no cgroup (it starts anyway: the supervisor does not ask). */
static void test_unwritable(void **s)
{
	const char *state = tpath("nw-state");
	struct cgroup_limits l = { .weight = 50 };
	struct cgroup_where w = { .version = 1 };
	struct cgroup_host *h;
	struct cgroup_vm cg;
	char text[1200], want[1200];

	mkdir(state, 0755);
	snprintf(w.mount[CG_CPU], sizeof(w.mount[0]), "%s", tpath("nowhere/cpu"));
	strcpy(w.own[CG_CPU], "/");
	assert_int_equal(cgroup_host_open(&h, &w), 0);
	cgroup_vm_start(h, UUID, &l, state, &cg);
	assert_int_equal(cg.ndirs, 0);
	assert_false(exists(state, "cgroups"));
	cgroup_vm_not_enforced(&cg, text, sizeof(text));
	snprintf(want, sizeof(want), "cpu_weight: %s/vsrv: No such file or directory",
		 tpath("nowhere/cpu"));
	assert_string_equal(text, want);
	cgroup_host_close(h);

	cgroup_detect("off", &w);
	assert_int_equal(w.version, 0);
	assert_int_equal(cgroup_host_open(&h, &w), 0);
	cgroup_vm_start(h, UUID, &l, state, &cg);
	cgroup_vm_not_enforced(&cg, text, sizeof(text));
	assert_string_equal(text, "cpu_weight: cgroups are off in vsrvd's configuration");
	cgroup_host_close(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_v2_values),
		cmocka_unit_test(test_v2_no_controllers),
		cmocka_unit_test(test_v1_values),
		cmocka_unit_test(test_v1_first_limit_later),
		cmocka_unit_test(test_unwritable),
	};

	return TRUN(tests);
}
