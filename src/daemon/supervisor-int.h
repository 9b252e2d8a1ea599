/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The supervisor's insides, shared by its two files: supervisor.c (the
 * VMM processes: start, end, restart, adoption, the service's stop, the
 * thread) and actions.c (what goes through a VMM's control socket: the
 * API's actions, the VMM's events, its counters).  Everything here is
 * under the supervisor's one lock.
 */
#ifndef VSRVD_SUPERVISOR_INT_H
#define VSRVD_SUPERVISOR_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "cgroup.h"
#include "vmm-client.h"
#include "vmm-ctl.h"
#include "vsrvd.h"

/* The inventory's states.  A VMM runs in RUNNING to STOPPING; within
 * those, the VMM's own state (its `state` events) says which. */
enum run_state {
	RS_STOPPED,
	RS_RUNNING,		/* running, or (re)booting */
	RS_PAUSED,
	RS_SHUTTING_DOWN,	/* the power button pressed; the guest has until a timeout */
	RS_SAVING,		/* its state being written, then it is off */
	RS_STOPPING,		/* power-off sent; killed after stop_timeout_ms */
	RS_CRASHED,
	RS_SAVED,		/* off, its state in DIR/saved.state for a restore */
};

extern const char *const run_state_names[];

static inline bool rs_alive(enum run_state s)
{
	return s >= RS_RUNNING && s <= RS_STOPPING;
}

/* What an epoll event is about (the wake eventfd's is NULL). */
struct ep_tag {
	enum { TAG_MONITOR, TAG_CONTROL } kind;
	struct vm_run *r;
};

struct vm_run {
	struct vm_run *next;
	struct supervisor *sv;
	char name[65];
	char dir[4096];
	enum run_state state;
	struct vmm_handle h;
	struct ep_tag monitor_tag, control_tag;
	bool test_device;
	unsigned refs;			/* threads waiting on it: not to be freed */
	unsigned restarts;		/* automatic restarts in a row (backoff) */
	unsigned total_restarts;
	uint64_t started;		/* mono_ms at the last start */
	uint64_t started_wall;		/* the same as Unix time in ms, for people */
	pid_t vmm_pid;			/* vsrv run's, while it runs */
	uint64_t restart_at;		/* mono_ms of a pending restart, 0 if none */
	uint64_t restart_wall;
	uint64_t term_at;		/* mono_ms to SIGTERM a VMM the socket did not stop */
	uint64_t kill_at;		/* mono_ms to kill a VMM that will not stop */
	char last_exit[96];
	/* Its end was asked for (power-off, shutdown, save): not a crash,
	 * and never restarted; how, for the event. */
	const char *stop_how;
	bool saving;			/* a save was asked for */
	enum run_state before_saving;	/* the state a save or checkpoint left */
	bool restoring;			/* started from saved.state, not yet running */
	bool stop_wait;			/* the service's stop waits for its end */
	/* The control socket (DIR/control.sock). */
	struct vmm_ctl ctl;
	uint64_t ctl_retry_at;		/* mono_ms of the next connect, 0: none */
	unsigned ctl_tries;
	bool ctl_out_armed;		/* EPOLLOUT asked for */
	/* The last `stats`, for /metrics. */
	json_t *stats;
	uint64_t stats_at;
	struct ctl_call *stats_call;	/* one in flight, */
	uint64_t stats_asked;		/* asked for then */
	struct cgroup_vm cg;		/* its VMM's cgroups, while it runs (cgroup.c) */
};

struct supervisor {
	struct vsrvd *d;
	pthread_mutex_t lock;
	pthread_cond_t cond;		/* a reply came, a VMM ended */
	pthread_t thread;
	int epfd, wake;
	bool stopping;			/* the service stops: no restarts, no starts */
	bool quit;			/* the thread ends */
	struct vm_run *runs;
};

#define SAVED_STATE	"saved.state"
#define CONTROL_SOCKET	"control.sock"

void sv_wake(struct supervisor *sv);
void sv_set_state(struct supervisor *sv, struct vm_run *r, enum run_state s);
/* The run record of a VM the inventory has, made if new; NULL and a
 * message (404) if the inventory has no such VM. */
struct vm_run *sv_get_run(struct supervisor *sv, const char *name, json_t **vmp,
			  struct vsrvd_err *e);
/* Power off a live VMM: through its socket, SIGTERM if that does not do. */
void sv_power_off(struct supervisor *sv, struct vm_run *r, const char *how);
/* Waits on the supervisor's condition, the lock released meanwhile, until
 * mono_ms() passes `until`: false then. */
bool sv_wait(struct supervisor *sv, uint64_t until);

/* actions.c */
void ctl_start(struct supervisor *sv, struct vm_run *r);
void ctl_stop(struct supervisor *sv, struct vm_run *r);
/* The thread's part: a control socket's epoll event, connecting. */
void ctl_service(struct supervisor *sv, struct vm_run *r, uint32_t events);
void ctl_tick(struct supervisor *sv, struct vm_run *r, uint64_t now, uint64_t *next);
/* Sends COMMAND (ARGS stolen) and forgets it: its reply is handled by
 * the thread.  false if it could not even be queued. */
bool ctl_send(struct supervisor *sv, struct vm_run *r, const char *command, json_t *args);
/* The VM's on_stop, its own or the service's. */
const char *vm_on_stop(struct supervisor *sv, struct vm_run *r);

#endif
