/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * How the supervisor reaches one VMM: the only file that knows what a
 * running VM is made of on the host.  Today a VM is a `vsrv run --config
 * vm.json` under a monitor process (monitor.c), and stopping it means
 * SIGTERM, which vsrv run takes as "power off now".  The VMM's control
 * socket (vsrv run --control PATH, JSON lines) is to replace the signals
 * and bring the actions that need the guest's cooperation or the VMM's
 * state: they all pass through vmm_client_control(), which answers 501
 * until then.
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

/* Starts `vsrv run --config DIR/vm.json` under a monitor in DIR. */
int vmm_client_start(struct vsrvd *d, const char *dir, bool test_device,
		     struct vmm_handle *h, struct vsrvd_err *e);
/* 1 and a handle if a monitor runs in DIR (left by an earlier vsrvd), 0 if
 * none does. */
int vmm_client_adopt(const char *dir, struct vmm_handle *h);
/* Power off now (SIGTERM to vsrv run), or kill (SIGKILL) if it will not. */
int vmm_client_power_off(struct vmm_handle *h);
int vmm_client_kill(struct vmm_handle *h);
/* Actions that need the control socket: pause, resume, shutdown, reset,
 * save, restore, checkpoint.  501 until vsrv run has one. */
int vmm_client_control(struct vmm_handle *h, const char *dir, const char *action,
		       struct vsrvd_err *e);
/* After the monitor's pidfd became readable: how the VMM ended.  Also
 * for a DIR whose monitor was gone before anyone watched it (h NULL). */
void vmm_client_reap(struct vmm_handle *h, const char *dir, struct vmm_exit *x);
/* vsrv run's pid (from DIR/vmm.pid), 0 if not known. */
pid_t vmm_client_vmm_pid(const char *dir);

#endif
