/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * cgroups for VMs (cgroup.c): each running VM's VMM in a cgroup of its
 * own under vsrvd's, where its CPU weight, CPU cap and memory limit are
 * enforced; cgroup v1 and v2 behind one ops table.
 */
#ifndef VSRVD_CGROUP_H
#define VSRVD_CGROUP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "vsrvd.h"

enum cg_ctrl { CG_CPU, CG_MEMORY, NR_CG_CTRLS };
/* A cgroup's path: longer ones are refused (a VM's record stays small). */
#define CG_PATH		512
enum cg_limit { CG_WEIGHT, CG_CAP, CG_MEMLIMIT, NR_CG_LIMITS };

/* What a VM asks for (its inventory fields); 0 means no limit. */
struct cgroup_limits {
	unsigned weight;	/* cpu_weight, 1-10000; 100 is everyone's default */
	unsigned cap;		/* cpu_cap, percent of one CPU */
	uint64_t memory;	/* memory_limit in bytes, swap included */
};

/* Where the hierarchies are and which cgroup vsrvd is in: from /proc
 * (cgroup_detect) or, in tests, a directory tree made to look like one. */
struct cgroup_where {
	int version;				/* 1 or 2; 0: none (see why) */
	char mount[NR_CG_CTRLS][CG_PATH];	/* v1: each controller's mount, "" if
						 * none; v2: the one mount in both */
	char own[NR_CG_CTRLS][CG_PATH];	/* vsrvd's cgroup in each, "/..." */
	char why[256];
};

/* The host's side: vsrvd's cgroup ("vsrv" under its own) per hierarchy. */
struct cgroup_host;

/* One VM's cgroup(s): v1 has one per controller, v2 one for all. */
struct cgroup_vm {
	int version;				/* 0: none */
	unsigned ndirs;
	char dirs[NR_CG_CTRLS][CG_PATH];
	int ctrl_dir[NR_CG_CTRLS];		/* index into dirs, -1 if unusable */
	char ctrl_why[NR_CG_CTRLS][256];	/* why it is unusable */
	struct cgroup_limits limits;		/* as last applied */
	char why[NR_CG_LIMITS][320];		/* a limit asked for and not enforced */
};

/* "auto" (v1 if a v1 hierarchy has cpu or memory, else v2), "v1", "v2"
 * or "off".  Fills where; never fails (version 0 and why instead). */
void cgroup_detect(const char *mode, struct cgroup_where *w);
/* Sets vsrvd's cgroups up; a host without them still gets a handle that
 * says why in every VM's cgroup_vm. */
int cgroup_host_open(struct cgroup_host **out, const struct cgroup_where *w);
void cgroup_host_close(struct cgroup_host *h);
/* For /v1/host and vsrvd's first lines: the version, each controller's
 * cgroup or why it has none. */
json_t *cgroup_host_describe(struct cgroup_host *h);

/* The limits in a VM's inventory object. */
void cgroup_limits_of(const json_t *vm, struct cgroup_limits *l);
/* A VM about to start: makes its cgroup(s), named key, writes the limits
 * and writes STATEDIR/cgroups, which the monitor reads to put the VMM in
 * them before it execs (or removes that file when there is no cgroup).
 * Whatever cannot be done is in vm->why.  A VM with no limit set gets no
 * cgroup until a PATCH gives it one (cgroup_vm_update): on cgroup v1 the
 * kernel's first move of a process costs an RCU grace period, tens of
 * milliseconds on a VM's start, not worth paying for nothing. */
void cgroup_vm_start(struct cgroup_host *h, const char *key, const struct cgroup_limits *l,
		     const char *statedir, struct cgroup_vm *vm);
/* A running VM found by a later vsrvd: its cgroups from STATEDIR/cgroups,
 * the limits written again (unless l is NULL: a VM that ended meanwhile,
 * whose cgroups are only to be removed).  0, or -ENOENT when it has none. */
int cgroup_vm_adopt(struct cgroup_host *h, const char *statedir, const struct cgroup_limits *l,
		    struct cgroup_vm *vm);
/* New limits for a running VM (its VMM is pid).  0, or a negative errno
 * and a message when a cgroup refused a value (a memory limit below what
 * the VM uses). */
int cgroup_vm_update(struct cgroup_host *h, struct cgroup_vm *vm, const char *key,
		     const struct cgroup_limits *l, pid_t pid, const char *statedir,
		     struct vsrvd_err *e);
/* Whether pid is in each of the VM's cgroups; records why not in vm. */
bool cgroup_vm_check_placed(struct cgroup_vm *vm, pid_t pid);
/* The VM ended: its cgroups are removed (a process left in one is
 * killed first), and STATEDIR/cgroups.  0, or -EBUSY if one stays. */
int cgroup_vm_end(struct cgroup_vm *vm, const char *statedir);
/* "cpu_cap: why; memory_limit: why", or "" when every limit asked for is
 * enforced. */
void cgroup_vm_not_enforced(const struct cgroup_vm *vm, char *buf, size_t len);
/* {"version", "paths", "enforced": [...], "not_enforced": {limit: why}} */
json_t *cgroup_vm_describe(const struct cgroup_vm *vm);

#endif
