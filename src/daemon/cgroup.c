// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * cgroups: a VM's CPU weight, CPU cap and memory limit, enforced by the
 * kernel on its VMM's processes (cgroup.h).
 *
 * vsrvd makes a cgroup "vsrv" under its own (so that a service manager's
 * or a container's limits on vsrvd still hold over its VMs, and its
 * accounting still sees them) and one per running VM under that, named by
 * the VM's uuid: unique across vsrvd instances and renames, and never the
 * name of a cgroup's own file.  In cgroup v1 that is one directory per
 * controller hierarchy (/sys/fs/cgroup/cpu/vsrv/UUID and
 * /sys/fs/cgroup/memory/vsrv/UUID), in v2 one directory.
 *
 *   limit          v1                                  v2
 *   cpu_weight W   cpu.shares = W * 1024 / 100         cpu.weight = W
 *   cpu_cap C %    cpu.cfs_quota_us = C * 1000 per     cpu.max = "C*1000 100000"
 *                  cpu.cfs_period_us = 100000
 *   memory_limit M memory.limit_in_bytes = M,          memory.max = M,
 *                  memory.memsw.limit_in_bytes = M     memory.swap.max = 0
 *
 * so that the same numbers mean the same share either way (100 and 1024
 * are each version's default), and a memory limit bounds memory and swap
 * together.  A limit that is not set is written as the default, so that a
 * PATCH to null lifts it.
 *
 * The VMM enters its cgroups before it execs: the monitor (monitor.c)
 * reads STATEDIR/cgroups, and its child writes its own pid into each
 * cgroup.procs between fork and exec, so no thread of the VMM ever runs
 * outside.  The monitor itself stays in vsrvd's cgroup: its few pages are
 * the service's cost, not the guest's, and an out-of-memory kill inside
 * the VM's cgroup must not take the one process that records how the VM
 * ended.  When the VMM has ended, vsrvd removes the VM's cgroups.
 *
 * Nothing here stops a VM from starting: a host without cgroups, without
 * a controller, or where vsrvd may not write them (not root, a read-only
 * /sys/fs/cgroup in a container) gives each limit asked for a reason why
 * it is not enforced, which the API shows and an event says.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cgroup.h"

static const char *const ctrl_names[NR_CG_CTRLS] = { "cpu", "memory" };
static const char *const limit_names[NR_CG_LIMITS] = { "cpu_weight", "cpu_cap",
						       "memory_limit" };
static const enum cg_ctrl limit_ctrl[NR_CG_LIMITS] = { CG_CPU, CG_CPU, CG_MEMORY };

struct cgroup_ops {
	int version;
	/* vsrvd's cgroup(s): fills the host's bases, or each controller's why. */
	void (*setup)(struct cgroup_host *h, const struct cgroup_where *w);
	/* One limit (default when 0) into a VM's cgroup; 0, or -errno and why. */
	int (*set[NR_CG_LIMITS])(const char *dir, const struct cgroup_limits *l, char *why,
				 size_t len);
};

struct cgroup_host {
	pthread_mutex_t lock;			/* setup() may run again */
	struct cgroup_where w;
	const struct cgroup_ops *ops;		/* NULL: no cgroups at all (why) */
	int version;
	unsigned nbases;
	char bases[NR_CG_CTRLS][CG_PATH];
	int ctrl_base[NR_CG_CTRLS];		/* index into bases, -1 if unusable */
	char ctrl_why[NR_CG_CTRLS][256];
	char why[256];
};

/* A message into buf, marked "..." where it had to be cut. */
static void __attribute__((format(printf, 3, 4))) fmt(char *buf, size_t len, const char *f, ...)
{
	va_list ap;
	int n;

	va_start(ap, f);
	n = vsnprintf(buf, len, f, ap);
	va_end(ap);
	if (n >= (int)len && len > 4)
		strcpy(buf + len - 4, "...");
}

static bool has_word(const char *list, const char *word, const char *seps)
{
	size_t n = strlen(word);

	for (const char *p = list; *p; p += strcspn(p, seps), p += strspn(p, seps))
		if (!strncmp(p, word, n) && (!p[n] || strchr(seps, p[n])))
			return true;
	return false;
}

/* "DIR/FILE: problem", with what usually causes it. */
static void say(char *why, size_t len, const char *dir, const char *file, int r)
{
	const char *hint = r == -EACCES || r == -EPERM ?
		" (vsrvd needs root, or this cgroup delegated to it)" :
		r == -EROFS ? " (mounted read-only: a container?)" : "";

	fmt(why, len, "%s%s%s: %s%s", dir, file ? "/" : "", file ? file : "", strerror(-r),
		 hint);
}

/* val into DIR/FILE, as `echo val > file` (`>>` with append). */
static int cg_write(const char *dir, const char *file, const char *val, bool append)
{
	size_t len = strlen(val);
	char path[CG_PATH + 64];
	ssize_t n;
	int fd, r = 0;

	if (snprintf(path, sizeof(path), "%s/%s", dir, file) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	fd = open(path, O_WRONLY | O_CLOEXEC | (append ? O_APPEND : O_TRUNC));
	if (fd < 0)
		return -errno;
	n = write(fd, val, len);
	if (n != (ssize_t)len)
		r = n < 0 ? -errno : -EIO;
	close(fd);
	return r;
}

static int put(const char *dir, const char *file, const char *val, char *why, size_t len)
{
	int r = cg_write(dir, file, val, false);

	if (r < 0)
		say(why, len, dir, file, r);
	return r;
}

static int cg_read(const char *dir, const char *file, char *buf, size_t len)
{
	char path[CG_PATH + 64];

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	return read_small_file(path, buf, len);
}

static int make_dir(const char *path)
{
	if (strlen(path) >= CG_PATH)
		return -ENAMETOOLONG;
	return mkdir(path, 0755) < 0 && errno != EEXIST ? -errno : 0;
}

/* ---- cgroup v1 ---- */

static void v1_setup(struct cgroup_host *h, const struct cgroup_where *w)
{
	h->nbases = 0;
	for (int c = 0; c < NR_CG_CTRLS; c++) {
		char base[CG_PATH + 8];
		unsigned i;
		int r;

		h->ctrl_base[c] = -1;
		if (!w->mount[c][0]) {
			fmt(h->ctrl_why[c], sizeof(h->ctrl_why[c]),
				 "no cgroup v1 hierarchy has the %s controller", ctrl_names[c]);
			continue;
		}
		if (snprintf(base, sizeof(base), "%s%s/vsrv", w->mount[c],
			     strcmp(w->own[c], "/") ? w->own[c] : "") >= CG_PATH) {
			say(h->ctrl_why[c], sizeof(h->ctrl_why[c]), w->mount[c], NULL, -ENAMETOOLONG);
			continue;
		}
		/* Controllers mounted together share a hierarchy. */
		for (i = 0; i < h->nbases && strcmp(h->bases[i], base); i++)
			;
		if (i == h->nbases) {
			r = make_dir(base);
			if (r < 0) {
				say(h->ctrl_why[c], sizeof(h->ctrl_why[c]), base, NULL, r);
				continue;
			}
			snprintf(h->bases[h->nbases++], CG_PATH, "%s", base);
		}
		h->ctrl_base[c] = (int)i;
	}
}

static int v1_weight(const char *dir, const struct cgroup_limits *l, char *why, size_t len)
{
	unsigned shares = l->weight ? l->weight * 1024 / 100 : 1024;
	char v[24];

	snprintf(v, sizeof(v), "%u", shares < 2 ? 2 : shares);
	return put(dir, "cpu.shares", v, why, len);
}

static int v1_cap(const char *dir, const struct cgroup_limits *l, char *why, size_t len)
{
	char v[24];
	int r = put(dir, "cpu.cfs_period_us", "100000", why, len);

	snprintf(v, sizeof(v), "%d", l->cap ? (int)l->cap * 1000 : -1);
	return r < 0 ? r : put(dir, "cpu.cfs_quota_us", v, why, len);
}

/* memsw (memory and swap) may never be below the memory limit: a limit
 * that rises goes to memsw first, one that falls to the memory first. */
static int v1_memory(const char *dir, const struct cgroup_limits *l, char *why, size_t len)
{
	char v[24], cur[32];
	bool memsw = cg_read(dir, "memory.memsw.limit_in_bytes", cur, sizeof(cur)) == 0;
	bool rising = !l->memory || (memsw && l->memory > strtoull(cur, NULL, 10));
	int r = 0;

	if (l->memory)
		snprintf(v, sizeof(v), "%llu", (unsigned long long)l->memory);
	else
		snprintf(v, sizeof(v), "-1");
	if (memsw && rising)
		r = put(dir, "memory.memsw.limit_in_bytes", v, why, len);
	if (r == 0)
		r = put(dir, "memory.limit_in_bytes", v, why, len);
	if (r == 0 && memsw && !rising)
		r = put(dir, "memory.memsw.limit_in_bytes", v, why, len);
	return r;
}

static const struct cgroup_ops v1_ops = {
	.version = 1,
	.setup = v1_setup,
	.set = { [CG_WEIGHT] = v1_weight, [CG_CAP] = v1_cap, [CG_MEMLIMIT] = v1_memory },
};

/* ---- cgroup v2 ---- */

/* "+ctrl" into DIR's subtree_control.  A cgroup other than the root that
 * has processes of its own cannot hand controllers to its children (v2's
 * "no internal processes"): vsrvd, which a service manager started in
 * its own cgroup, then moves into a leaf "service" beside its VMs'. */
static int v2_enable(const char *dir, const char *ctrl, bool own, bool root)
{
	char v[32], leaf[CG_PATH + 16], pid[24];
	int r;

	snprintf(v, sizeof(v), "+%s", ctrl);
	r = cg_write(dir, "cgroup.subtree_control", v, true);
	if (r != -EBUSY || !own || root)
		return r;
	if (snprintf(leaf, sizeof(leaf), "%s/service", dir) >= CG_PATH)
		return r;
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	if (make_dir(leaf) < 0 || cg_write(leaf, "cgroup.procs", pid, true) < 0)
		return r;
	return cg_write(dir, "cgroup.subtree_control", v, true);
}

static void v2_setup(struct cgroup_host *h, const struct cgroup_where *w)
{
	char own[CG_PATH + 8], base[CG_PATH + 16], have[512];
	bool root = !strcmp(w->own[0], "/");
	int r;

	h->nbases = 0;
	for (int c = 0; c < NR_CG_CTRLS; c++)
		h->ctrl_base[c] = -1;
	if (snprintf(own, sizeof(own), "%s%s", w->mount[0], root ? "" : w->own[0]) >= CG_PATH ||
	    snprintf(base, sizeof(base), "%s/vsrv", own) >= CG_PATH)
		r = -ENAMETOOLONG;
	else
		r = cg_read(own, "cgroup.controllers", have, sizeof(have));
	if (r < 0) {
		say(h->why, sizeof(h->why), own, "cgroup.controllers", r);
	} else {
		r = make_dir(base);
		if (r < 0)
			say(h->why, sizeof(h->why), base, NULL, r);
	}
	if (r < 0) {
		for (int c = 0; c < NR_CG_CTRLS; c++)
			fmt(h->ctrl_why[c], sizeof(h->ctrl_why[c]), "%s", h->why);
		return;
	}
	have[strcspn(have, "\n")] = 0;
	/* The VMs' cgroups are made whatever controllers there are: a VMM
	 * is still grouped, and counted (cpu.stat), without them. */
	snprintf(h->bases[h->nbases++], CG_PATH, "%s", base);
	for (int c = 0; c < NR_CG_CTRLS; c++) {
		if (!has_word(have, ctrl_names[c], " ")) {
			fmt(h->ctrl_why[c], sizeof(h->ctrl_why[c]),
				 "cgroup2 at %s: no %s controller for %s (cgroup.controllers: \"%s\"; bound to a cgroup v1 hierarchy, or not delegated)",
				 w->mount[0], ctrl_names[c], w->own[0], have);
			continue;
		}
		r = v2_enable(own, ctrl_names[c], true, root);
		if (r == 0)
			r = v2_enable(base, ctrl_names[c], false, false);
		if (r < 0) {
			say(h->ctrl_why[c], sizeof(h->ctrl_why[c]), r == -EBUSY ? own : base,
			    "cgroup.subtree_control", r);
			continue;
		}
		h->ctrl_base[c] = 0;
	}
}

static int v2_weight(const char *dir, const struct cgroup_limits *l, char *why, size_t len)
{
	char v[24];

	snprintf(v, sizeof(v), "%u", l->weight ? l->weight : 100);
	return put(dir, "cpu.weight", v, why, len);
}

static int v2_cap(const char *dir, const struct cgroup_limits *l, char *why, size_t len)
{
	char v[40];

	if (l->cap)
		snprintf(v, sizeof(v), "%u 100000", l->cap * 1000);
	else
		snprintf(v, sizeof(v), "max 100000");
	return put(dir, "cpu.max", v, why, len);
}

static int v2_memory(const char *dir, const struct cgroup_limits *l, char *why, size_t len)
{
	char v[24];
	int r;

	if (l->memory)
		snprintf(v, sizeof(v), "%llu", (unsigned long long)l->memory);
	else
		snprintf(v, sizeof(v), "max");
	r = put(dir, "memory.max", v, why, len);
	if (r < 0)
		return r;
	/* No memory.swap.max without swap accounting: no swap to bound. */
	r = cg_write(dir, "memory.swap.max", l->memory ? "0" : "max", false);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		say(why, len, dir, "memory.swap.max", r);
	return r;
}

static const struct cgroup_ops v2_ops = {
	.version = 2,
	.setup = v2_setup,
	.set = { [CG_WEIGHT] = v2_weight, [CG_CAP] = v2_cap, [CG_MEMLIMIT] = v2_memory },
};

/* ---- where the hierarchies are ---- */

/* own relative to a mount whose root (in the hierarchy) is root. */
static bool relative(const char *own, const char *root, char *out)
{
	size_t n = strlen(root);

	if (!strcmp(root, "/"))
		return snprintf(out, CG_PATH, "%s", own) < CG_PATH;
	if (strncmp(own, root, n) || (own[n] && own[n] != '/'))
		return false;
	return snprintf(out, CG_PATH, "%s", own[n] ? own + n : "/") < CG_PATH;
}

void cgroup_detect(const char *mode, struct cgroup_where *w)
{
	char line[4096], mnt1[NR_CG_CTRLS][CG_PATH] = { 0 }, root1[NR_CG_CTRLS][CG_PATH];
	char own1[NR_CG_CTRLS][CG_PATH] = { 0 }, mnt2[CG_PATH] = "", root2[CG_PATH], own2[CG_PATH] = "";
	bool v1 = false;
	FILE *f;

	memset(w, 0, sizeof(*w));
	if (!strcmp(mode, "off")) {
		fmt(w->why, sizeof(w->why), "cgroups are off in vsrvd's configuration");
		return;
	}
	f = fopen("/proc/self/mountinfo", "re");
	while (f && fgets(line, sizeof(line), f)) {
		char root[CG_PATH], mp[CG_PATH], type[32], opts[1024];
		char *sep = strstr(line, " - ");

		if (!sep || sscanf(line, "%*s %*s %*s %511s %511s", root, mp) != 2 ||
		    sscanf(sep + 3, "%31s %*s %1023s", type, opts) != 2)
			continue;
		if (!strcmp(type, "cgroup2") && !mnt2[0]) {
			strcpy(mnt2, mp);
			strcpy(root2, root);
		}
		for (int c = 0; c < NR_CG_CTRLS && !strcmp(type, "cgroup"); c++) {
			if (!mnt1[c][0] && has_word(opts, ctrl_names[c], ",")) {
				strcpy(mnt1[c], mp);
				strcpy(root1[c], root);
			}
		}
	}
	if (f)
		fclose(f);
	/* "ID:CONTROLLERS:PATH"; v2's is "0::PATH". */
	f = fopen("/proc/self/cgroup", "re");
	while (f && fgets(line, sizeof(line), f)) {
		char *a = strchr(line, ':'), *b = a ? strchr(a + 1, ':') : NULL;

		if (!b)
			continue;
		*b++ = 0;
		b[strcspn(b, "\n")] = 0;
		if (!a[1])
			snprintf(own2, sizeof(own2), "%s", b);
		for (int c = 0; c < NR_CG_CTRLS && a[1]; c++)
			if (has_word(a + 1, ctrl_names[c], ","))
				snprintf(own1[c], sizeof(own1[c]), "%s", b);
	}
	if (f)
		fclose(f);
	for (int c = 0; c < NR_CG_CTRLS; c++)
		v1 |= mnt1[c][0] && own1[c][0];
	if (v1 && strcmp(mode, "v2")) {
		w->version = 1;
		for (int c = 0; c < NR_CG_CTRLS; c++)
			if (mnt1[c][0] && own1[c][0] && relative(own1[c], root1[c], w->own[c]))
				strcpy(w->mount[c], mnt1[c]);
	} else if (mnt2[0] && own2[0] && strcmp(mode, "v1")) {
		w->version = 2;
		if (!relative(own2, root2, w->own[0])) {
			w->version = 0;
			fmt(w->why, sizeof(w->why),
				 "vsrvd's cgroup %s is outside the part of cgroup2 mounted at %s",
				 own2, mnt2);
			return;
		}
		for (int c = 0; c < NR_CG_CTRLS; c++) {
			strcpy(w->mount[c], mnt2);
			if (c)
				strcpy(w->own[c], w->own[0]);
		}
	} else {
		fmt(w->why, sizeof(w->why), "no cgroup %s hierarchy is mounted%s",
			 !strcmp(mode, "v1") ? "v1" : !strcmp(mode, "v2") ? "v2" : "v1 or v2",
			 !strcmp(mode, "v1") ? " with the cpu or memory controller" : "");
	}
}

int cgroup_host_open(struct cgroup_host **out, const struct cgroup_where *w)
{
	struct cgroup_host *h = calloc(1, sizeof(*h));

	if (!h)
		return -ENOMEM;
	pthread_mutex_init(&h->lock, NULL);
	h->w = *w;
	h->ops = w->version == 1 ? &v1_ops : w->version == 2 ? &v2_ops : NULL;
	h->version = w->version;
	for (int c = 0; c < NR_CG_CTRLS; c++)
		h->ctrl_base[c] = -1;
	if (h->ops) {
		h->ops->setup(h, w);
	} else {
		fmt(h->why, sizeof(h->why), "%s", w->why);
		for (int c = 0; c < NR_CG_CTRLS; c++)
			fmt(h->ctrl_why[c], sizeof(h->ctrl_why[c]), "%s", w->why);
	}
	*out = h;
	return 0;
}

/* vsrvd's cgroups go with it when no VM's is left in them (a VM left
 * running keeps them). */
void cgroup_host_close(struct cgroup_host *h)
{
	if (!h)
		return;
	for (unsigned i = 0; i < h->nbases; i++)
		rmdir(h->bases[i]);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

json_t *cgroup_host_describe(struct cgroup_host *h)
{
	json_t *o = json_pack("{s:o}", "version", h->ops ? json_integer(h->version) : json_null());

	pthread_mutex_lock(&h->lock);
	for (int c = 0; c < NR_CG_CTRLS; c++)
		json_object_set_new(o, ctrl_names[c], h->ctrl_base[c] >= 0 ?
				    json_pack("{s:s}", "cgroup", h->bases[h->ctrl_base[c]]) :
				    json_pack("{s:s}", "error", h->ctrl_why[c]));
	pthread_mutex_unlock(&h->lock);
	return o;
}

/* ---- one VM ---- */

void cgroup_limits_of(const json_t *vm, struct cgroup_limits *l)
{
	l->weight = (unsigned)json_integer_value(json_object_get(vm, "cpu_weight"));
	l->cap = (unsigned)json_integer_value(json_object_get(vm, "cpu_cap"));
	l->memory = (uint64_t)json_integer_value(json_object_get(vm, "memory_limit"));
}

static bool asked(const struct cgroup_limits *l, int k)
{
	return k == CG_WEIGHT ? l->weight : k == CG_CAP ? l->cap : l->memory;
}

/* Every limit into the VM's cgroups; the first a cgroup refused, if one
 * did (why[] has it).  Limits not asked for are written as defaults, and
 * not counted if they fail. */
static int apply(struct cgroup_host *h, struct cgroup_vm *vm, const struct cgroup_limits *l)
{
	int ret = 0;

	vm->limits = *l;
	for (int k = 0; k < NR_CG_LIMITS; k++) {
		int d = vm->ctrl_dir[limit_ctrl[k]], r;

		vm->why[k][0] = 0;
		if (d < 0) {
			if (asked(l, k))
				fmt(vm->why[k], sizeof(vm->why[k]), "%s",
					 vm->ctrl_why[limit_ctrl[k]]);
			continue;
		}
		r = h->ops->set[k](vm->dirs[d], l, vm->why[k], sizeof(vm->why[k]));
		if (r < 0 && !asked(l, k))
			vm->why[k][0] = 0;
		else if (r < 0 && !ret)
			ret = r;
	}
	return ret;
}

/* STATEDIR/cgroups: "v1" or "v2", then "CONTROLLERS PATH" a line (the
 * controllers enforced there, comma-separated, or "-"). */
static int save(const struct cgroup_vm *vm, const char *statedir)
{
	char path[4200], text[NR_CG_CTRLS * (CG_PATH + 32) + 8];
	size_t n;

	snprintf(path, sizeof(path), "%s/cgroups", statedir);
	if (!vm->ndirs)
		return unlink(path) < 0 && errno != ENOENT ? -errno : 0;
	n = (size_t)snprintf(text, sizeof(text), "v%d\n", vm->version);
	for (unsigned i = 0; i < vm->ndirs; i++) {
		size_t start = n;

		for (int c = 0; c < NR_CG_CTRLS; c++)
			if (vm->ctrl_dir[c] == (int)i)
				n += (size_t)snprintf(text + n, sizeof(text) - n, "%s%s",
						      n > start ? "," : "", ctrl_names[c]);
		n += (size_t)snprintf(text + n, sizeof(text) - n, "%s %s\n", n > start ? "" : "-",
				      vm->dirs[i]);
	}
	return write_file_atomic(path, text, n, 0644);
}

static void vm_reset(struct cgroup_vm *vm)
{
	memset(vm, 0, sizeof(*vm));
	for (int c = 0; c < NR_CG_CTRLS; c++)
		vm->ctrl_dir[c] = -1;
}

static bool any(const struct cgroup_limits *l)
{
	return l->weight || l->cap || l->memory;
}

/* The VM's cgroups under vsrvd's (with make), and why a controller has
 * none. */
static void vm_dirs(struct cgroup_host *h, const char *key, bool make, struct cgroup_vm *vm)
{
	vm->version = h->ops ? h->version : 0;
	pthread_mutex_lock(&h->lock);
	for (unsigned i = 0; make && i < h->nbases; i++) {
		char *dir = vm->dirs[vm->ndirs];
		int r = snprintf(dir, CG_PATH, "%s/%s", h->bases[i], key) >= CG_PATH ?
			-ENAMETOOLONG : make_dir(dir);	/* EEXIST: a dead run's, reused */

		if (r == -ENOENT) {
			/* Another vsrvd that shares the hierarchy (tests run
			 * several) removed the empty "vsrv" as it stopped. */
			h->ops->setup(h, &h->w);
			r = i < h->nbases ? make_dir(dir) : -ENOENT;
		}

		for (int c = 0; c < NR_CG_CTRLS; c++) {
			if (h->ctrl_base[c] != (int)i)
				continue;
			if (r < 0)
				say(vm->ctrl_why[c], sizeof(vm->ctrl_why[c]), dir, NULL, r);
			else
				vm->ctrl_dir[c] = (int)vm->ndirs;
		}
		if (r == 0)
			vm->ndirs++;
	}
	for (int c = 0; c < NR_CG_CTRLS; c++)
		if (h->ctrl_base[c] < 0)
			fmt(vm->ctrl_why[c], sizeof(vm->ctrl_why[c]), "%s", h->ctrl_why[c]);
	pthread_mutex_unlock(&h->lock);
}

void cgroup_vm_start(struct cgroup_host *h, const char *key, const struct cgroup_limits *l,
		     const char *statedir, struct cgroup_vm *vm)
{
	vm_reset(vm);
	vm_dirs(h, key, any(l), vm);
	apply(h, vm, l);
	save(vm, statedir);
}

int cgroup_vm_adopt(struct cgroup_host *h, const char *statedir, const struct cgroup_limits *l,
		    struct cgroup_vm *vm)
{
	char path[4200], text[NR_CG_CTRLS * (CG_PATH + 32) + 8], *line, *save_ptr;

	vm_reset(vm);
	snprintf(path, sizeof(path), "%s/cgroups", statedir);
	if (read_small_file(path, text, sizeof(text)) < 0 || sscanf(text, "v%d", &vm->version) != 1) {
		vm_reset(vm);
		return -ENOENT;
	}
	strtok_r(text, "\n", &save_ptr);
	while ((line = strtok_r(NULL, "\n", &save_ptr)) && vm->ndirs < NR_CG_CTRLS) {
		char *sp = strchr(line, ' ');

		if (!sp || sp[1] != '/' || strlen(sp + 1) >= CG_PATH)
			continue;
		*sp = 0;
		strcpy(vm->dirs[vm->ndirs], sp + 1);
		for (int c = 0; c < NR_CG_CTRLS; c++)
			if (has_word(line, ctrl_names[c], ","))
				vm->ctrl_dir[c] = (int)vm->ndirs;
		vm->ndirs++;
	}
	for (int c = 0; c < NR_CG_CTRLS; c++) {
		/* Made by a vsrvd configured otherwise: kept only to be removed. */
		if (vm->version != h->version) {
			vm->ctrl_dir[c] = -1;
			fmt(vm->ctrl_why[c], sizeof(vm->ctrl_why[c]),
				 "its VMM is in cgroup v%d's hierarchies, vsrvd now uses %s", vm->version,
				 h->ops ? (h->version == 1 ? "v1's" : "v2's") : "none");
		} else if (vm->ctrl_dir[c] < 0) {
			fmt(vm->ctrl_why[c], sizeof(vm->ctrl_why[c]), "%s", h->ctrl_why[c]);
		}
	}
	if (l)
		apply(h, vm, l);
	return 0;
}

static bool listed(const char *dir, pid_t pid)
{
	char procs[4096];

	if (cg_read(dir, "cgroup.procs", procs, sizeof(procs)) < 0)
		return false;
	for (char *p = procs; *p; p += strcspn(p, "\n"), p += *p == '\n')
		if (strtol(p, NULL, 10) == pid)
			return true;
	return false;
}

static bool running(pid_t pid)
{
	char path[64], stat[256], *paren;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (read_small_file(path, stat, sizeof(stat)) < 0)
		return false;
	paren = strrchr(stat, ')');
	return paren && paren[1] == ' ' && paren[2] != 'Z';
}

static int refused(const struct cgroup_limits *l, char why[NR_CG_LIMITS][320], int r,
		   struct vsrvd_err *e)
{
	for (int k = 0; k < NR_CG_LIMITS; k++)
		if (why[k][0] && asked(l, k))
			return vsrvd_fail(e, 409, r, "%s: the cgroup refused it: %s",
					  limit_names[k], why[k]);
	return vsrvd_fail(e, 409, r, "the cgroup refused the new limits");
}

/* pid and the processes it started, at most max. */
static int family(pid_t pid, pid_t *out, int max)
{
	int n = 0;

	out[n++] = pid;
	for (int i = 0; i < n; i++) {
		char path[80], kids[1024];

		/* Threads' children: each thread's file names its own. */
		snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)out[i], (int)out[i]);
		if (read_small_file(path, kids, sizeof(kids)) < 0)
			continue;
		for (char *p = kids; *p && n < max; p += strspn(p, " \n")) {
			long k = strtol(p, &p, 10);

			if (k > 0)
				out[n++] = (pid_t)k;
			else
				break;
		}
	}
	return n;
}

/* A running VMM's processes into the VM's cgroups: a write of a pid moves
 * a whole process, its threads with it; one that a process not yet moved
 * forks meanwhile is found on the next pass. */
static void move_in(struct cgroup_vm *vm, pid_t pid)
{
	for (int pass = 0; pass < 10; pass++) {
		pid_t pids[64];
		int n = family(pid, pids, 64), moved = 0;

		for (unsigned i = 0; i < vm->ndirs; i++) {
			for (int k = 0; k < n; k++) {
				char v[24];

				if (listed(vm->dirs[i], pids[k]))
					continue;
				snprintf(v, sizeof(v), "%d", (int)pids[k]);
				moved += cg_write(vm->dirs[i], "cgroup.procs", v, true) == 0;
			}
		}
		if (!moved)
			return;
	}
}

int cgroup_vm_update(struct cgroup_host *h, struct cgroup_vm *vm, const char *key,
		     const struct cgroup_limits *l, pid_t pid, const char *statedir,
		     struct vsrvd_err *e)
{
	struct cgroup_limits old = vm->limits;
	char why[NR_CG_LIMITS][320];
	int r;

	if (!vm->ndirs && any(l) && h->ops && pid) {
		/* Its first limit: its cgroups now, and the VMM moved in. */
		vm_reset(vm);
		vm_dirs(h, key, true, vm);
		r = apply(h, vm, l);
		if (r < 0) {
			memcpy(why, vm->why, sizeof(why));
			cgroup_vm_end(vm, statedir);
			vm_dirs(h, key, false, vm);
			apply(h, vm, &old);
			return refused(l, why, r, e);
		}
		move_in(vm, pid);
		cgroup_vm_check_placed(vm, pid);
		save(vm, statedir);
		return 0;
	}
	r = apply(h, vm, l);
	if (r == 0)
		return 0;
	/* Refused: the old values back, and the refusal said. */
	memcpy(why, vm->why, sizeof(why));
	apply(h, vm, &old);
	return refused(l, why, r, e);
}

bool cgroup_vm_check_placed(struct cgroup_vm *vm, pid_t pid)
{
	bool ok = true;

	for (unsigned i = 0; i < vm->ndirs; i++) {
		/* Not there and still running: never placed (a VMM that has
		 * already ended has left its cgroups). */
		if (listed(vm->dirs[i], pid) || !running(pid))
			continue;
		ok = false;
		for (int k = 0; k < NR_CG_LIMITS; k++)
			if (vm->ctrl_dir[limit_ctrl[k]] == (int)i && asked(&vm->limits, k))
				fmt(vm->why[k], sizeof(vm->why[k]),
					 "the VMM is not in %s (vsrvd-monitor could not put it there: see vmm.log)",
					 vm->dirs[i]);
	}
	return ok;
}

/* A process left in the cgroup (the VMM's child, when the VMM was
 * killed) belongs to the VM that ended: it goes too. */
static void kill_procs(const char *dir)
{
	char procs[4096];

	if (cg_read(dir, "cgroup.procs", procs, sizeof(procs)) < 0)
		return;
	for (char *p = procs; *p; p += strcspn(p, "\n"), p += *p == '\n') {
		long pid = strtol(p, NULL, 10);

		if (pid > 1)
			kill((pid_t)pid, SIGKILL);
	}
}

int cgroup_vm_end(struct cgroup_vm *vm, const char *statedir)
{
	char path[4200];
	int ret = 0;

	for (unsigned i = 0; i < vm->ndirs; i++) {
		int tries = 0;

		while (rmdir(vm->dirs[i]) < 0 && errno == EBUSY && tries++ < 100) {
			kill_procs(vm->dirs[i]);
			usleep(10000);
		}
		if (tries > 100)
			ret = -EBUSY;
	}
	snprintf(path, sizeof(path), "%s/cgroups", statedir);
	unlink(path);
	vm_reset(vm);
	return ret;
}

void cgroup_vm_not_enforced(const struct cgroup_vm *vm, char *buf, size_t len)
{
	size_t n = 0;

	buf[0] = 0;
	for (int k = 0; k < NR_CG_LIMITS && n < len; k++)
		if (vm->why[k][0])
			n += (size_t)snprintf(buf + n, len - n, "%s%s: %s", n ? "; " : "",
					      limit_names[k], vm->why[k]);
}

json_t *cgroup_vm_describe(const struct cgroup_vm *vm)
{
	json_t *paths = json_array(), *on = json_array(), *off = json_object();

	for (unsigned i = 0; i < vm->ndirs; i++)
		json_array_append_new(paths, json_string(vm->dirs[i]));
	for (int k = 0; k < NR_CG_LIMITS; k++) {
		if (vm->why[k][0])
			json_object_set_new(off, limit_names[k], json_string(vm->why[k]));
		else if (asked(&vm->limits, k))
			json_array_append_new(on, json_string(limit_names[k]));
	}
	return json_pack("{s:o, s:o, s:o, s:o}", "version",
			 vm->version ? json_integer(vm->version) : json_null(), "paths", paths,
			 "enforced", on, "not_enforced", off);
}
