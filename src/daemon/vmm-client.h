/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * How the supervisor starts and ends one VMM: the only file that knows
 * what a running VM is made of on the host's side.  A VM is a `vsrv run
 * --config vm.json` under a monitor process (monitor.c); what it is asked
 * while it runs goes through its control socket (vmm-ctl.c, actions.c);
 * SIGTERM, which vsrv run takes as "power off now", is the fallback for a
 * VMM whose socket does not answer, SIGKILL the last resort.
 */
#ifndef VSRVD_VMM_CLIENT_H
#define VSRVD_VMM_CLIENT_H

#include <stdbool.h>
#include <sys/types.h>

#include "vsrvd.h"

struct vmm_handle {
	pid_t monitor;		/* the monitor's pid, 0 when none */
	int pidfd;		/* the monitor's pidfd, -1 when none */
	bool adopted;		/* started by an earlier vsrvd */
};

/* How a VMM ended, from the monitor's exit-status file. */
struct vmm_exit {
	bool crashed;		/* not a power-off: a crash status, a signal, lost */
	char desc[96];		/* "exited 0", "killed by signal 9", ... */
};

/* Starts `vsrv run --config DIR/vm.json` under a monitor in DIR; with
 * `restore` (a file in DIR), `--restore` it. */
int vmm_client_start(struct vsrvd *d, const char *dir, bool test_device, const char *restore,
		     struct vmm_handle *h, struct vsrvd_err *e);
/* 1 and a handle if a monitor runs in DIR (left by an earlier vsrvd), 0 if
 * none does. */
int vmm_client_adopt(const char *dir, struct vmm_handle *h);
/* Power off now (SIGTERM to vsrv run), or kill (SIGKILL) if it will not. */
int vmm_client_power_off(struct vmm_handle *h);
int vmm_client_kill(struct vmm_handle *h);
/* After the monitor's pidfd became readable: how the VMM ended.  Also
 * for a DIR whose monitor was gone before anyone watched it (h NULL). */
void vmm_client_reap(struct vmm_handle *h, const char *dir, struct vmm_exit *x);
/* vsrv run's pid (from DIR/vmm.pid), 0 if not known. */
pid_t vmm_client_vmm_pid(const char *dir);

#endif
