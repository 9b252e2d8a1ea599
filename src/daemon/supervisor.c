// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The supervisor: one monitored VMM per running VM (vmm-client.c), and
 * what happens when one ends.  What passes through a VMM's control socket
 * (its actions, its events, its counters) is actions.c's.
 *
 * States, as the inventory keeps them so that a later vsrvd knows:
 *   stopped        no VMM; start makes it running
 *   running        a VMM runs (the guest boots, runs, or reboots)
 *   paused         its vCPUs and devices are stopped (pause; resume)
 *   shutting-down  the power button was pressed; the VMM powers it off if
 *                  it has not shut down by the timeout
 *   saving         its state is being written; then it is saved
 *   stopping       power-off sent; the VMM is killed if still there after
 *                  stop_timeout_ms
 *   crashed        the VMM ended other than by a power-off (a crash status,
 *                  a signal); the restart policy may start it again
 *   saved          off, its state in DIR/saved.state: start (or restore)
 *                  goes on from there, power-off throws the state away
 * A VMM that ends by itself with a power-off status leaves its VM stopped
 * (restarted only under "always"); one that ends after a power-off,
 * shutdown or save request leaves it stopped (or saved) whatever its
 * status.  Restarts wait a backoff that doubles from
 * restart_backoff.initial_ms to max_ms, and starts afresh once the VM has
 * run for max_ms.
 *
 * One thread waits on the monitors' pidfds and the control sockets
 * (epoll) and on its deadlines (restarts, kills, reconnections); the
 * VMs' logs are their monitors' (vmm.log) and console.c's (console.log).
 * The API's threads start and stop VMs directly, and wait for a VMM's
 * replies on the supervisor's condition variable with the lock released.
 * One lock over all of it: every step is a few system calls.
 *
 * At start (supervisor_resume) every VM's folder is checked for a live
 * monitor whatever the inventory says (vsrvd may have died between
 * spawning one and recording it): those are adopted (and their control
 * sockets reconnected), those that ended meanwhile are accounted for from
 * their exit-status, and then the autostart VMs are started, or restored
 * if they were saved.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cgroup.h"
#include "console.h"
#include "supervisor-int.h"
#include "vmconf.h"

const char *const run_state_names[] = {
	[RS_STOPPED] = "stopped", [RS_RUNNING] = "running", [RS_PAUSED] = "paused",
	[RS_SHUTTING_DOWN] = "shutting-down", [RS_SAVING] = "saving",
	[RS_STOPPING] = "stopping", [RS_CRASHED] = "crashed", [RS_SAVED] = "saved",
};

static enum run_state state_from_name(const char *s)
{
	for (unsigned i = 0; i < sizeof(run_state_names) / sizeof(run_state_names[0]); i++)
		if (s && !strcmp(s, run_state_names[i]))
			return (enum run_state)i;
	return RS_STOPPED;
}

static struct vm_run *find(struct supervisor *sv, const char *name)
{
	for (struct vm_run *r = sv->runs; r; r = r->next)
		if (!strcmp(r->name, name))
			return r;
	return NULL;
}

static int vm_dir(struct supervisor *sv, const json_t *vm, char *out, size_t len)
{
	snprintf(out, len, "%s/vms/%lld", sv->d->cfg.state_dir,
		 (long long)json_integer_value(json_object_get(vm, "id")));
	if (mkdir(out, 0750) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

struct vm_run *sv_get_run(struct supervisor *sv, const char *name, json_t **vmp,
			  struct vsrvd_err *e)
{
	struct vm_run *r;
	json_t *vm;

	if (inventory_vm_get(sv->d->inv, name, &vm, e) < 0)
		return NULL;
	name = json_string_value(json_object_get(vm, "name"));	/* a uuid may have named it */
	r = find(sv, name);
	if (!r) {
		r = calloc(1, sizeof(*r));
		if (!r) {
			json_decref(vm);
			vsrvd_fail(e, 500, -ENOMEM, "out of memory");
			return NULL;
		}
		snprintf(r->name, sizeof(r->name), "%s", name);
		r->sv = sv;
		r->h.pidfd = -1;
		r->monitor_tag = (struct ep_tag){ TAG_MONITOR, r };
		r->control_tag = (struct ep_tag){ TAG_CONTROL, r };
		vmm_ctl_init(&r->ctl);
		/* Until a VMM is found: what the inventory last knew. */
		r->state = state_from_name(json_string_value(json_object_get(vm, "state")));
		if (rs_alive(r->state))
			r->state = RS_STOPPED;
		r->next = sv->runs;
		sv->runs = r;
	}
	if (vm_dir(sv, vm, r->dir, sizeof(r->dir)) < 0) {
		json_decref(vm);
		vsrvd_fail(e, 500, -EIO, "%s: %s", r->dir, strerror(errno));
		return NULL;
	}
	r->test_device = json_is_true(json_object_get(vm, "test_device"));
	if (vmp)
		*vmp = vm;
	else
		json_decref(vm);
	return r;
}

void sv_set_state(struct supervisor *sv, struct vm_run *r, enum run_state s)
{
	r->state = s;
	inventory_vm_set_state(sv->d->inv, r->name, run_state_names[s], (int)r->h.monitor,
			       r->last_exit[0] ? r->last_exit : NULL);
	pthread_cond_broadcast(&sv->cond);
}

static void watch(struct supervisor *sv, struct vm_run *r)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &r->monitor_tag };

	epoll_ctl(sv->epfd, EPOLL_CTL_ADD, r->h.pidfd, &ev);
}

void sv_wake(struct supervisor *sv)
{
	uint64_t one = 1;

	if (write(sv->wake, &one, sizeof(one)) < 0)
		return;
}

bool sv_wait(struct supervisor *sv, uint64_t until)
{
	uint64_t now = mono_ms();
	struct timespec ts;

	if (now >= until)
		return false;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += (time_t)((until - now) / 1000);
	ts.tv_nsec += (long)((until - now) % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_cond_timedwait(&sv->cond, &sv->lock, &ts);
	return true;
}

static void saved_path(struct vm_run *r, char *out, size_t len)
{
	snprintf(out, len, "%s/%s", r->dir, SAVED_STATE);
}

/* The limits asked for that are not enforced, said once as an event. */
static void limits_event(struct supervisor *sv, struct vm_run *r)
{
	char text[1024];

	cgroup_vm_not_enforced(&r->cg, text, sizeof(text));
	if (text[0])
		events_log(sv->d->ev, "vm.limits-not-enforced", r->name, "%s", text);
}

/* Starts the VM's VMM: booting, or (restore) from its saved state. */
static int start_locked(struct supervisor *sv, struct vm_run *r, json_t *vm, bool restore,
			struct vsrvd_err *e)
{
	struct cgroup_limits l;
	char saved[4200];
	int ret;

	saved_path(r, saved, sizeof(saved));
	if (restore && access(saved, R_OK) < 0)
		return vsrvd_fail(e, 409, -ENOENT, "vm '%s': %s: %s", r->name, saved,
				  strerror(errno));
	if (!restore)
		unlink(saved);	/* a state left behind is not this boot's */
	ret = vmconf_write(sv->d, vm, r->dir, e);
	if (ret == 0) {
		cgroup_limits_of(vm, &l);
		cgroup_vm_start(sv->d->cgroups, json_string_value(json_object_get(vm, "uuid")), &l,
				r->dir, &r->cg);
		ret = vmm_client_start(sv->d, r->dir, r->test_device,
				       restore ? SAVED_STATE : NULL, &r->h, e);
		if (ret < 0)
			cgroup_vm_end(&r->cg, r->dir);
	}
	if (ret < 0)
		return ret;
	r->started = mono_ms();
	r->started_wall = now_ms();
	r->vmm_pid = vmm_client_vmm_pid(r->dir);
	if (r->vmm_pid)
		cgroup_vm_check_placed(&r->cg, r->vmm_pid);
	limits_event(sv, r);
	r->restart_at = r->term_at = r->kill_at = 0;
	r->stop_how = NULL;
	r->saving = false;
	r->restoring = restore;
	watch(sv, r);
	consoles_attach(sv->d->con, r->name, r->dir);
	sv_set_state(sv, r, RS_RUNNING);
	ctl_start(sv, r);
	return 0;
}

int supervisor_start(struct supervisor *sv, const char *name, bool restore,
		     struct vsrvd_err *e)
{
	struct vm_run *r;
	json_t *vm = NULL;
	int ret;

	pthread_mutex_lock(&sv->lock);
	r = sv_get_run(sv, name, &vm, e);
	if (!r) {
		ret = -ENOENT;
	} else if (rs_alive(r->state)) {
		ret = vsrvd_fail(e, 409, -EBUSY, "vm '%s': %s", r->name, run_state_names[r->state]);
	} else if (restore && r->state != RS_SAVED) {
		ret = vsrvd_fail(e, 409, -ENOENT, "vm '%s': %s, no saved state to restore",
				 r->name, run_state_names[r->state]);
	} else if (sv->stopping) {
		ret = vsrvd_fail(e, 409, -ESHUTDOWN, "vm '%s': the service is stopping", r->name);
	} else {
		restore = r->state == RS_SAVED;
		r->restarts = 0;
		ret = start_locked(sv, r, vm, restore, e);
		if (ret == 0)
			events_log(sv->d->ev, "vm.started", r->name, "%s (monitor %d)",
				   restore ? "restoring its saved state" : "started",
				   (int)r->h.monitor);
	}
	pthread_mutex_unlock(&sv->lock);
	json_decref(vm);
	return ret;
}

void sv_power_off(struct supervisor *sv, struct vm_run *r, const char *how)
{
	uint64_t now = mono_ms();

	/* The socket's power-off is the VMM's clean stop; SIGTERM is the
	 * same stop for a VMM whose socket does not answer. */
	if (!ctl_send(sv, r, "power-off", NULL) || !r->ctl.ready)
		vmm_client_power_off(&r->h);
	else
		r->term_at = now + (sv->d->cfg.stop_timeout_ms + 1) / 2;
	r->kill_at = now + sv->d->cfg.stop_timeout_ms;
	r->stop_how = how;
	sv_set_state(sv, r, RS_STOPPING);
	sv_wake(sv);
}

int supervisor_power_off(struct supervisor *sv, const char *name, struct vsrvd_err *e)
{
	struct vm_run *r;
	int ret = 0;

	pthread_mutex_lock(&sv->lock);
	r = sv_get_run(sv, name, NULL, e);
	if (!r) {
		ret = -ENOENT;
	} else if (r->state == RS_CRASHED && r->restart_at) {
		/* A restart pending: powering off cancels it. */
		r->restart_at = 0;
		sv_set_state(sv, r, RS_STOPPED);
		events_log(sv->d->ev, "vm.stopped", r->name, "powered off (its restart cancelled)");
	} else if (r->state == RS_SAVED) {
		char saved[4200];

		saved_path(r, saved, sizeof(saved));
		unlink(saved);
		sv_set_state(sv, r, RS_STOPPED);
		events_log(sv->d->ev, "vm.stopped", r->name,
			   "powered off: its saved state is discarded");
	} else if (!rs_alive(r->state) || r->state == RS_STOPPING) {
		ret = vsrvd_fail(e, 409, -EBUSY, "vm '%s': %s, not running", r->name,
				 run_state_names[r->state]);
	} else {
		sv_power_off(sv, r, "powered off on request");
		events_log(sv->d->ev, "vm.stopping", r->name, "power-off requested");
	}
	pthread_mutex_unlock(&sv->lock);
	return ret;
}

bool supervisor_is_active(struct supervisor *sv, const char *name)
{
	struct vm_run *r;
	bool active;

	pthread_mutex_lock(&sv->lock);
	r = find(sv, name);
	active = r && (rs_alive(r->state) || r->restart_at);
	pthread_mutex_unlock(&sv->lock);
	return active;
}

void supervisor_describe(struct supervisor *sv, json_t *vm)
{
	struct vm_run *r;

	pthread_mutex_lock(&sv->lock);
	r = find(sv, json_string_value(json_object_get(vm, "name")));
	/* Only what changes with the inventory's generation (see
	 * inventory_touch()): answers may be cached until it moves. */
	if (r && rs_alive(r->state)) {
		json_object_set_new(vm, "pid", r->vmm_pid ? json_integer(r->vmm_pid) : json_null());
		json_object_set_new(vm, "started_at", json_integer((json_int_t)r->started_wall));
		json_object_set_new(vm, "cgroup", cgroup_vm_describe(&r->cg));
	}
	if (r) {
		json_object_set_new(vm, "restarts", json_integer(r->total_restarts));
		if (r->restart_at)
			json_object_set_new(vm, "restart_at",
					    json_integer((json_int_t)r->restart_wall));
	}
	pthread_mutex_unlock(&sv->lock);
}

static void run_free(struct vm_run *r)
{
	if (r->h.pidfd >= 0)
		close(r->h.pidfd);
	json_decref(r->stats);
	free(r);
}

int supervisor_set_limits(struct supervisor *sv, const char *name, const json_t *vm,
			  const json_t *changes, struct vsrvd_err *e)
{
	json_t *merged;
	struct vm_run *r;
	struct cgroup_limits l;
	int ret = 0;

	if (!json_object_get(changes, "cpu_weight") && !json_object_get(changes, "cpu_cap") &&
	    !json_object_get(changes, "memory_limit"))
		return 0;
	merged = json_deep_copy(vm);
	json_object_update(merged, (json_t *)changes);
	cgroup_limits_of(merged, &l);
	pthread_mutex_lock(&sv->lock);
	r = find(sv, name);
	if (r && rs_alive(r->state)) {
		ret = cgroup_vm_update(sv->d->cgroups, &r->cg,
				       json_string_value(json_object_get(merged, "uuid")), &l,
				       r->vmm_pid, r->dir, e);
		if (ret == 0)
			limits_event(sv, r);
		inventory_touch(sv->d->inv);
	}
	pthread_mutex_unlock(&sv->lock);
	json_decref(merged);
	return ret;
}

void supervisor_forget(struct supervisor *sv, const char *name)
{
	struct vm_run **pp, *r;

	pthread_mutex_lock(&sv->lock);
	for (pp = &sv->runs; (r = *pp); pp = &r->next) {
		if (strcmp(r->name, name))
			continue;
		if (rs_alive(r->state) || r->refs)
			break;
		*pp = r->next;
		run_free(r);
		break;
	}
	pthread_mutex_unlock(&sv->lock);
}

static const char *restart_policy(struct supervisor *sv, struct vm_run *r)
{
	static __thread char buf[16];
	json_t *vm;

	buf[0] = 0;
	if (inventory_vm_get(sv->d->inv, r->name, &vm, NULL) == 0) {
		snprintf(buf, sizeof(buf), "%s",
			 json_string_value(json_object_get(vm, "restart_policy")));
		json_decref(vm);
	}
	return buf;
}

static void schedule_restart(struct supervisor *sv, struct vm_run *r, uint64_t delay)
{
	r->restart_at = mono_ms() + delay;
	r->restart_wall = now_ms() + delay;
	inventory_touch(sv->d->inv);	/* it shows in the VM's answers */
}

/* A save that ended with the VMM's clean exit: its state is on disk. */
static bool saved_whole(struct vm_run *r, const char *desc)
{
	char saved[4200];
	struct stat st;

	saved_path(r, saved, sizeof(saved));
	/* A fresh start removes an old one, a restore once it runs. */
	return !strcmp(desc, "exited with status 0 (powered off)") && stat(saved, &st) == 0;
}

/* A VMM ended (or was found ended): record it, apply the restart policy. */
static void ended(struct supervisor *sv, struct vm_run *r, struct vmm_exit *x)
{
	bool requested = r->state == RS_STOPPING || r->stop_how;
	bool saving = r->saving || r->state == RS_SAVING, restoring = r->restoring;
	const char *policy = restart_policy(sv, r), *how = r->stop_how;
	bool restart = false;

	if (r->h.pidfd >= 0)
		epoll_ctl(sv->epfd, EPOLL_CTL_DEL, r->h.pidfd, NULL);
	ctl_stop(sv, r);
	vmm_client_reap(&r->h, r->dir, x);
	consoles_detach(sv->d->con, r->name);
	if (cgroup_vm_end(&r->cg, r->dir) < 0)
		fprintf(stderr, "vsrvd: vm %s: a cgroup of its VMM could not be removed\n", r->name);
	r->vmm_pid = 0;
	snprintf(r->last_exit, sizeof(r->last_exit), "%s", x->desc);
	r->term_at = r->kill_at = 0;
	r->stop_how = NULL;
	r->saving = r->restoring = false;
	if (saving && saved_whole(r, x->desc)) {
		char saved[4200];
		struct stat st;

		saved_path(r, saved, sizeof(saved));
		sv_set_state(sv, r, RS_SAVED);
		events_log(sv->d->ev, "vm.saved", r->name, "its state is in %s (%lld bytes)", saved,
			   stat(saved, &st) == 0 ? (long long)st.st_size : -1ll);
	} else if (restoring && x->crashed) {
		/* The state did not restore (the VMM's line is in vmm.log):
		 * it stays, for another try or a power-off. */
		sv_set_state(sv, r, RS_SAVED);
		events_log(sv->d->ev, "vm.restore-failed", r->name, "%s (see vmm.log)", x->desc);
	} else if (requested || !x->crashed) {
		sv_set_state(sv, r, RS_STOPPED);
		events_log(sv->d->ev, "vm.stopped", r->name, "%s%s%s", how ? how : "",
			   how ? ": " : "", x->desc);
		restart = !requested && !strcmp(policy, "always");
	} else {
		sv_set_state(sv, r, RS_CRASHED);
		events_log(sv->d->ev, "vm.crashed", r->name, "%s", x->desc);
		restart = !strcmp(policy, "on-crash") || !strcmp(policy, "always");
	}
	if (restart && !sv->stopping) {
		const struct vsrvd_config *c = &sv->d->cfg;
		uint64_t delay = c->backoff_ms;

		if (mono_ms() - r->started >= c->backoff_max_ms)
			r->restarts = 0;
		for (unsigned i = 0; i < r->restarts && delay < c->backoff_max_ms; i++)
			delay *= 2;
		if (delay > c->backoff_max_ms)
			delay = c->backoff_max_ms;
		r->restarts++;
		schedule_restart(sv, r, delay);
		events_log(sv->d->ev, "vm.restart-scheduled", r->name,
			   "restart policy %s: starting again in %llu ms", policy,
			   (unsigned long long)delay);
	}
}

static void do_restart(struct supervisor *sv, struct vm_run *r)
{
	struct vsrvd_err e = { 0 };
	json_t *vm;

	r->restart_at = 0;
	if (inventory_vm_get(sv->d->inv, r->name, &vm, &e) < 0)
		return;
	if (start_locked(sv, r, vm, false, &e) == 0) {
		r->total_restarts++;
		events_log(sv->d->ev, "vm.restarted", r->name, "restarted (attempt %u)",
			   r->restarts);
	} else {
		events_log(sv->d->ev, "vm.restart-failed", r->name, "%s", e.msg);
	}
	json_decref(vm);
}

static void earliest(uint64_t *next, uint64_t t)
{
	if (t && t < *next)
		*next = t;
}

/* Deadlines due now; how long until the next, in ms. */
static int tick(struct supervisor *sv)
{
	uint64_t now = mono_ms(), next = now + 1000;

	for (struct vm_run *r = sv->runs; r; r = r->next) {
		if (r->restart_at && r->restart_at <= now && !sv->stopping)
			do_restart(sv, r);
		earliest(&next, r->restart_at);
		if (r->term_at && r->term_at <= now && rs_alive(r->state)) {
			vmm_client_power_off(&r->h);
			r->term_at = 0;
		}
		earliest(&next, r->term_at);
		if (r->kill_at && r->kill_at <= now && rs_alive(r->state)) {
			vmm_client_kill(&r->h);
			events_log(sv->d->ev, "vm.killed", r->name,
				   "did not power off in time: killed");
			r->kill_at = 0;
		}
		earliest(&next, r->kill_at);
		ctl_tick(sv, r, now, &next);
	}
	return next > now ? (int)(next - now) : 0;
}

static void *supervisor_thread(void *opaque)
{
	struct supervisor *sv = opaque;
	int timeout = 0;

	for (;;) {
		struct epoll_event evs[16];
		int n = epoll_wait(sv->epfd, evs, 16, timeout);

		pthread_mutex_lock(&sv->lock);
		for (int i = 0; i < n; i++) {
			struct ep_tag *t = evs[i].data.ptr;
			struct vmm_exit x;

			if (!t) {
				uint64_t v;

				if (read(sv->wake, &v, sizeof(v)) < 0)
					v = 0;
			} else if (t->kind == TAG_CONTROL) {
				ctl_service(sv, t->r, evs[i].events);
			} else if (t->r->h.pidfd >= 0) {
				ended(sv, t->r, &x);
			}
		}
		if (sv->quit) {
			pthread_mutex_unlock(&sv->lock);
			break;
		}
		timeout = tick(sv);
		pthread_mutex_unlock(&sv->lock);
	}
	return NULL;
}

int supervisor_create(struct supervisor **out, struct vsrvd *d)
{
	struct supervisor *sv = calloc(1, sizeof(*sv));
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
	pthread_condattr_t ca;
	char path[4096];

	if (!sv)
		return -ENOMEM;
	sv->d = d;
	pthread_mutex_init(&sv->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&sv->cond, &ca);
	pthread_condattr_destroy(&ca);
	snprintf(path, sizeof(path), "%s/vms", d->cfg.state_dir);
	if (mkdir(path, 0750) < 0 && errno != EEXIST) {
		free(sv);
		return -errno;
	}
	sv->epfd = epoll_create1(EPOLL_CLOEXEC);
	sv->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (sv->epfd < 0 || sv->wake < 0 || epoll_ctl(sv->epfd, EPOLL_CTL_ADD, sv->wake, &ev) < 0 ||
	    pthread_create(&sv->thread, NULL, supervisor_thread, sv)) {
		if (sv->epfd >= 0)
			close(sv->epfd);
		if (sv->wake >= 0)
			close(sv->wake);
		free(sv);
		return -EIO;
	}
	*out = sv;
	return 0;
}

/* A VMM left running by an earlier vsrvd: watched again, its socket
 * reconnected (which tells its state), a power-off asked for seen through. */
static void adopt(struct supervisor *sv, struct vm_run *r, const char *state)
{
	struct stat st;
	char path[4200];

	r->started = mono_ms();
	/* A monitor spawned just before the earlier vsrvd died writes
	 * vmm.pid as soon as it has forked: give it the moment (a second at
	 * most; a VMM that has ended meanwhile is seen ending at once). */
	for (int i = 0; i < 100 && !(r->vmm_pid = vmm_client_vmm_pid(r->dir)); i++)
		usleep(10000);
	/* When it started: when its monitor wrote vmm.pid. */
	snprintf(path, sizeof(path), "%s/vmm.pid", r->dir);
	r->started_wall = stat(path, &st) == 0 ?
		(uint64_t)st.st_mtim.tv_sec * 1000 + (uint64_t)st.st_mtim.tv_nsec / 1000000 :
		now_ms();
	watch(sv, r);
	consoles_attach(sv->d->con, r->name, r->dir);
	r->state = state_from_name(state);
	if (!rs_alive(r->state))
		r->state = RS_RUNNING;
	r->saving = r->state == RS_SAVING;
	sv_set_state(sv, r, r->state);
	ctl_start(sv, r);
	if (r->state == RS_STOPPING)
		sv_power_off(sv, r, "powered off on request");
	events_log(sv->d->ev, "vm.adopted", r->name, "adopted its running VMM (monitor %d)",
		   (int)r->h.monitor);
}

int supervisor_resume(struct supervisor *sv)
{
	char **names;
	int n = inventory_vm_names(sv->d->inv, NULL, &names);

	pthread_mutex_lock(&sv->lock);
	for (int i = 0; i < n; i++) {
		struct vsrvd_err e = { 0 };
		struct vm_run *r;
		json_t *vm;
		const char *state;
		int a;

		r = sv_get_run(sv, names[i], &vm, &e);
		if (!r)
			continue;
		state = json_string_value(json_object_get(vm, "state"));
		a = vmm_client_adopt(r->dir, &r->h);
		if (a > 0) {
			struct cgroup_limits l;

			adopt(sv, r, state);
			cgroup_limits_of(vm, &l);
			if (cgroup_vm_adopt(sv->d->cgroups, r->dir, &l, &r->cg) == 0)
				limits_event(sv, r);
		} else if (rs_alive(state_from_name(state))) {
			/* It ended while nobody watched. */
			struct vmm_exit x;

			r->state = state_from_name(state);
			r->saving = r->state == RS_SAVING;
			r->started = mono_ms();
			cgroup_vm_adopt(sv->d->cgroups, r->dir, NULL, &r->cg);
			ended(sv, r, &x);
		} else if (!strcmp(state, "crashed")) {
			const char *policy = json_string_value(json_object_get(vm, "restart_policy"));

			if (strcmp(policy, "never"))
				schedule_restart(sv, r, sv->d->cfg.backoff_ms);
		}
		if (!rs_alive(r->state) && !r->restart_at &&
		    json_is_true(json_object_get(vm, "autostart"))) {
			bool restore = r->state == RS_SAVED;

			r->restarts = 0;
			if (start_locked(sv, r, vm, restore, &e) == 0)
				events_log(sv->d->ev, "vm.started", r->name, "autostart%s (monitor %d)",
					   restore ? ", restoring its saved state" : "",
					   (int)r->h.monitor);
			else
				events_log(sv->d->ev, "vm.start-failed", r->name, "autostart: %s",
					   e.msg);
		}
		json_decref(vm);
	}
	pthread_mutex_unlock(&sv->lock);
	free_strv(names);
	sv_wake(sv);
	return 0;
}

/* One VM at the service's stop, as its on_stop says; true if the stop
 * waits for it to end, by `*until`. */
static bool stop_one(struct supervisor *sv, struct vm_run *r, uint64_t *until)
{
	const struct vsrvd_config *c = &sv->d->cfg;
	const char *how = vm_on_stop(sv, r);
	uint64_t now = mono_ms(), t;

	if (!strcmp(how, "leave") || r->state == RS_STOPPING || r->state == RS_SAVING)
		return r->state == RS_STOPPING || r->state == RS_SAVING;
	if (!strcmp(how, "power-off")) {
		sv_power_off(sv, r, "powered off at the service's stop");
		t = now + c->stop_timeout_ms + 2000;
	} else if (!strcmp(how, "shutdown")) {
		r->stop_how = "shut down at the service's stop";
		if (!ctl_send(sv, r, "shutdown",
			      json_pack("{s:I}", "timeout", (json_int_t)c->shutdown_timeout_s)))
			r->term_at = now;
		/* The VMM powers it off at the timeout; if it cannot, we do. */
		r->term_at = r->term_at ? r->term_at : now + c->shutdown_timeout_s * 1000ull + 1000;
		r->kill_at = r->term_at + c->stop_timeout_ms;
		t = r->kill_at + 2000;
	} else {	/* save */
		char saved[4200];

		saved_path(r, saved, sizeof(saved));
		r->saving = true;
		r->stop_how = "saved at the service's stop";
		if (!ctl_send(sv, r, "save", json_pack("{s:s}", "file", saved)))
			r->saving = false;
		t = now + c->save_timeout_ms;
	}
	if (t > *until)
		*until = t;
	return true;
}

void supervisor_stop_all(struct supervisor *sv)
{
	uint64_t until = mono_ms() + sv->d->cfg.stop_timeout_ms;
	bool waiting;

	pthread_mutex_lock(&sv->lock);
	sv->stopping = true;
	for (struct vm_run *r = sv->runs; r; r = r->next) {
		r->restart_at = 0;
		r->stop_wait = rs_alive(r->state) && stop_one(sv, r, &until);
	}
	sv_wake(sv);
	/* The thread sees them end (and the sockets answer) meanwhile. */
	do {
		waiting = false;
		for (struct vm_run *r = sv->runs; r; r = r->next)
			waiting |= r->stop_wait && rs_alive(r->state);
	} while (waiting && sv_wait(sv, until));
	sv->quit = true;
	pthread_mutex_unlock(&sv->lock);
	sv_wake(sv);
	pthread_join(sv->thread, NULL);
}

void supervisor_destroy(struct supervisor *sv)
{
	if (!sv)
		return;
	if (!sv->quit) {
		pthread_mutex_lock(&sv->lock);
		sv->stopping = sv->quit = true;
		pthread_mutex_unlock(&sv->lock);
		sv_wake(sv);
		pthread_join(sv->thread, NULL);
	}
	while (sv->runs) {
		struct vm_run *r = sv->runs;

		sv->runs = r->next;
		ctl_stop(sv, r);
		run_free(r);
	}
	close(sv->epfd);
	close(sv->wake);
	pthread_cond_destroy(&sv->cond);
	pthread_mutex_destroy(&sv->lock);
	free(sv);
}
