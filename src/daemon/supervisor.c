// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The supervisor: one monitored VMM per running VM (vmm-client.c), and
 * what happens when one ends.
 *
 * States, as the inventory keeps them so that a later vsrvd knows:
 *   stopped   no VMM; start makes it running
 *   running   a VMM runs; power-off makes it stopping
 *   stopping  SIGTERM sent; the VMM is killed if still there after
 *             stop_timeout_ms
 *   crashed   the VMM ended other than by a power-off (a crash status, a
 *             signal); the restart policy may start it again
 * A VMM that ends by itself with a power-off status leaves its VM stopped
 * (restarted only under "always"); one that ends after a power-off request
 * leaves it stopped whatever its status.  Restarts wait a backoff that
 * doubles from restart_backoff.initial_ms to max_ms, and starts afresh
 * once the VM has run for max_ms.
 *
 * One thread waits on the monitors' pidfds (epoll) and on its deadlines
 * (restarts, kills, log rotation); the API's threads start and stop VMs
 * directly.  One lock over all of it: every action is a few system calls.
 *
 * At start (supervisor_resume) every VM's folder is checked for a live
 * monitor whatever the inventory says (vsrvd may have died between
 * spawning one and recording it): those are adopted, those that ended
 * meanwhile are accounted for from their exit-status, and then the
 * autostart VMs are started.
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
#include <unistd.h>

#include "vmconf.h"
#include "vmm-client.h"

#define ROTATE_EVERY_MS	5000

enum run_state { RS_STOPPED, RS_RUNNING, RS_STOPPING, RS_CRASHED };

static const char *const state_names[] = {
	[RS_STOPPED] = "stopped", [RS_RUNNING] = "running",
	[RS_STOPPING] = "stopping", [RS_CRASHED] = "crashed",
};

struct vm_run {
	struct vm_run *next;
	char name[65];
	char dir[4096];
	enum run_state state;
	struct vmm_handle h;
	bool test_device;
	unsigned restarts;		/* automatic restarts in a row (backoff) */
	unsigned total_restarts;
	uint64_t started;		/* mono_ms at the last start */
	uint64_t started_wall;		/* the same as Unix time in ms, for people */
	pid_t vmm_pid;			/* vsrv run's, while it runs */
	uint64_t restart_at;		/* mono_ms of a pending restart, 0 if none */
	uint64_t restart_wall;
	uint64_t kill_at;		/* mono_ms to kill a VMM that will not stop */
	char last_exit[96];
};

struct supervisor {
	struct vsrvd *d;
	pthread_mutex_t lock;
	pthread_t thread;
	int epfd, wake;
	bool stopping;
	struct vm_run *runs;
	uint64_t next_rotate;
};

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

/* The run record of a VM the inventory has; NULL if it has none. */
static struct vm_run *get_run(struct supervisor *sv, const char *name, json_t **vmp,
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
		r->h.pidfd = -1;
		if (!strcmp(json_string_value(json_object_get(vm, "state")), "crashed"))
			r->state = RS_CRASHED;
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

static void set_state(struct supervisor *sv, struct vm_run *r, enum run_state s)
{
	r->state = s;
	inventory_vm_set_state(sv->d->inv, r->name, state_names[s], (int)r->h.monitor,
			       r->last_exit[0] ? r->last_exit : NULL);
}

static void watch(struct supervisor *sv, struct vm_run *r)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = r };

	epoll_ctl(sv->epfd, EPOLL_CTL_ADD, r->h.pidfd, &ev);
}

static void wake(struct supervisor *sv)
{
	uint64_t one = 1;

	if (write(sv->wake, &one, sizeof(one)) < 0)
		return;
}

static int start_locked(struct supervisor *sv, struct vm_run *r, json_t *vm, struct vsrvd_err *e)
{
	int ret = vmconf_write(vm, r->dir, e);

	if (ret == 0)
		ret = vmm_client_start(sv->d, r->dir, r->test_device, &r->h, e);
	if (ret < 0)
		return ret;
	r->started = mono_ms();
	r->started_wall = now_ms();
	r->vmm_pid = vmm_client_vmm_pid(r->dir);
	r->restart_at = 0;
	r->kill_at = 0;
	watch(sv, r);
	set_state(sv, r, RS_RUNNING);
	return 0;
}

int supervisor_start(struct supervisor *sv, const char *name, struct vsrvd_err *e)
{
	struct vm_run *r;
	json_t *vm = NULL;
	int ret;

	pthread_mutex_lock(&sv->lock);
	r = get_run(sv, name, &vm, e);
	if (!r) {
		ret = -ENOENT;
	} else if (r->state == RS_RUNNING || r->state == RS_STOPPING) {
		ret = vsrvd_fail(e, 409, -EBUSY, "vm '%s': %s", r->name, state_names[r->state]);
	} else {
		r->restarts = 0;
		ret = start_locked(sv, r, vm, e);
		if (ret == 0)
			events_log(sv->d->ev, "vm.started", r->name, "started (monitor %d)",
				   (int)r->h.monitor);
	}
	pthread_mutex_unlock(&sv->lock);
	json_decref(vm);
	return ret;
}

int supervisor_power_off(struct supervisor *sv, const char *name, struct vsrvd_err *e)
{
	struct vm_run *r;
	int ret = 0;

	pthread_mutex_lock(&sv->lock);
	r = get_run(sv, name, NULL, e);
	if (!r) {
		ret = -ENOENT;
	} else if (r->state == RS_CRASHED && r->restart_at) {
		/* A restart pending: powering off cancels it. */
		r->restart_at = 0;
		set_state(sv, r, RS_STOPPED);
		events_log(sv->d->ev, "vm.stopped", r->name, "powered off (its restart cancelled)");
	} else if (r->state != RS_RUNNING) {
		ret = vsrvd_fail(e, 409, -EBUSY, "vm '%s': %s, not running", r->name,
				 state_names[r->state]);
	} else {
		ret = vmm_client_power_off(&r->h);
		if (ret < 0) {
			vsrvd_fail(e, 500, ret, "vm '%s': signalling its monitor: %s", r->name,
				   strerror(-ret));
		} else {
			r->kill_at = mono_ms() + sv->d->cfg.stop_timeout_ms;
			set_state(sv, r, RS_STOPPING);
			events_log(sv->d->ev, "vm.stopping", r->name, "power-off requested");
			wake(sv);
		}
	}
	pthread_mutex_unlock(&sv->lock);
	return ret;
}

int supervisor_control(struct supervisor *sv, const char *name, const char *action,
		       struct vsrvd_err *e)
{
	struct vm_run *r;
	int ret;

	pthread_mutex_lock(&sv->lock);
	r = get_run(sv, name, NULL, e);
	if (!r)
		ret = -ENOENT;
	else if (r->state != RS_RUNNING && strcmp(action, "restore"))
		ret = vsrvd_fail(e, 409, -EBUSY, "vm '%s': %s, not running", r->name,
				 state_names[r->state]);
	else
		ret = vmm_client_control(&r->h, r->dir, action, e);
	pthread_mutex_unlock(&sv->lock);
	return ret;
}

bool supervisor_is_active(struct supervisor *sv, const char *name)
{
	struct vm_run *r;
	bool active;

	pthread_mutex_lock(&sv->lock);
	r = find(sv, name);
	active = r && (r->state == RS_RUNNING || r->state == RS_STOPPING || r->restart_at);
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
	if (r && (r->state == RS_RUNNING || r->state == RS_STOPPING)) {
		json_object_set_new(vm, "pid", r->vmm_pid ? json_integer(r->vmm_pid) : json_null());
		json_object_set_new(vm, "started_at", json_integer((json_int_t)r->started_wall));
	}
	if (r) {
		json_object_set_new(vm, "restarts", json_integer(r->total_restarts));
		if (r->restart_at)
			json_object_set_new(vm, "restart_at",
					    json_integer((json_int_t)r->restart_wall));
	}
	pthread_mutex_unlock(&sv->lock);
}

void supervisor_forget(struct supervisor *sv, const char *name)
{
	struct vm_run **pp, *r;

	pthread_mutex_lock(&sv->lock);
	for (pp = &sv->runs; (r = *pp); pp = &r->next) {
		if (strcmp(r->name, name))
			continue;
		if (r->state == RS_RUNNING || r->state == RS_STOPPING)
			break;
		*pp = r->next;
		free(r);
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

/* A VMM ended (or was found ended): record it, apply the restart policy. */
static void ended(struct supervisor *sv, struct vm_run *r, struct vmm_exit *x)
{
	bool requested = r->state == RS_STOPPING;
	const char *policy = restart_policy(sv, r);
	bool restart;

	if (epoll_ctl(sv->epfd, EPOLL_CTL_DEL, r->h.pidfd, NULL) < 0 && r->h.pidfd >= 0)
		errno = 0;
	vmm_client_reap(&r->h, r->dir, x);
	r->vmm_pid = 0;
	snprintf(r->last_exit, sizeof(r->last_exit), "%s", x->desc);
	r->kill_at = 0;
	if (requested || !x->crashed) {
		set_state(sv, r, RS_STOPPED);
		events_log(sv->d->ev, "vm.stopped", r->name, "%s%s", requested ?
			   "powered off on request: " : "", x->desc);
		restart = !requested && !strcmp(policy, "always");
	} else {
		set_state(sv, r, RS_CRASHED);
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
	if (start_locked(sv, r, vm, &e) == 0) {
		r->total_restarts++;
		events_log(sv->d->ev, "vm.restarted", r->name, "restarted (attempt %u)",
			   r->restarts);
	} else {
		events_log(sv->d->ev, "vm.restart-failed", r->name, "%s", e.msg);
	}
	json_decref(vm);
}

/* Copy-and-truncate: vsrv run keeps its O_APPEND descriptors and goes on
 * writing at the new end.  What is written between the copy and the
 * truncation is lost: the price of not having to reopen the VMM's files. */
static void rotate(const char *dir, const char *name, uint64_t max, unsigned keep)
{
	char path[4200], from[4300], to[4300];
	struct stat st;
	int in, out;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (stat(path, &st) < 0 || (uint64_t)st.st_size <= max)
		return;
	for (unsigned i = keep; i > 1; i--) {
		snprintf(from, sizeof(from), "%s.%u", path, i - 1);
		snprintf(to, sizeof(to), "%s.%u", path, i);
		rename(from, to);
	}
	snprintf(to, sizeof(to), "%s.1", path);
	in = open(path, O_RDWR | O_CLOEXEC);
	out = keep ? open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640) : -1;
	if (in >= 0 && out >= 0) {
		char buf[65536];
		ssize_t n;

		while ((n = read(in, buf, sizeof(buf))) > 0)
			if (write(out, buf, (size_t)n) != n)
				break;
	}
	if (in >= 0 && ftruncate(in, 0) < 0)
		fprintf(stderr, "vsrvd: %s: %s\n", path, strerror(errno));
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
}

/* Deadlines due now; how long until the next, in ms. */
static int tick(struct supervisor *sv)
{
	uint64_t now = mono_ms(), next = now + 1000;

	for (struct vm_run *r = sv->runs; r; r = r->next) {
		if (r->restart_at && r->restart_at <= now && !sv->stopping)
			do_restart(sv, r);
		if (r->restart_at && r->restart_at < next)
			next = r->restart_at;
		if (r->kill_at && r->kill_at <= now && r->state == RS_STOPPING) {
			vmm_client_kill(&r->h);
			events_log(sv->d->ev, "vm.killed", r->name,
				   "did not power off within %u ms: killed", sv->d->cfg.stop_timeout_ms);
			r->kill_at = 0;
		}
		if (r->kill_at && r->kill_at < next)
			next = r->kill_at;
	}
	if (now >= sv->next_rotate) {
		for (struct vm_run *r = sv->runs; r; r = r->next) {
			if (r->state != RS_RUNNING && r->state != RS_STOPPING)
				continue;
			rotate(r->dir, "vmm.log", sv->d->cfg.log_max_bytes, sv->d->cfg.log_keep);
			rotate(r->dir, "console.log", sv->d->cfg.log_max_bytes, sv->d->cfg.log_keep);
		}
		sv->next_rotate = now + ROTATE_EVERY_MS;
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
			struct vm_run *r = evs[i].data.ptr;
			struct vmm_exit x;

			if (!r) {
				uint64_t v;

				if (read(sv->wake, &v, sizeof(v)) < 0)
					v = 0;
				continue;
			}
			if (r->h.pidfd >= 0)
				ended(sv, r, &x);
		}
		if (sv->stopping) {
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
	char path[4096];

	if (!sv)
		return -ENOMEM;
	sv->d = d;
	pthread_mutex_init(&sv->lock, NULL);
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

		r = get_run(sv, names[i], &vm, &e);
		if (!r)
			continue;
		state = json_string_value(json_object_get(vm, "state"));
		a = vmm_client_adopt(r->dir, &r->h);
		if (a > 0) {
			struct stat st;
			char path[4200];

			r->started = mono_ms();
			r->vmm_pid = vmm_client_vmm_pid(r->dir);
			/* When it started: when its monitor wrote vmm.pid. */
			snprintf(path, sizeof(path), "%s/vmm.pid", r->dir);
			r->started_wall = stat(path, &st) == 0 ?
				(uint64_t)st.st_mtim.tv_sec * 1000 + (uint64_t)st.st_mtim.tv_nsec / 1000000 :
				now_ms();
			watch(sv, r);
			if (!strcmp(state, "stopping")) {
				/* The power-off was asked for: see it through. */
				r->state = RS_STOPPING;
				vmm_client_power_off(&r->h);
				r->kill_at = mono_ms() + sv->d->cfg.stop_timeout_ms;
			}
			set_state(sv, r, r->state == RS_STOPPING ? RS_STOPPING : RS_RUNNING);
			events_log(sv->d->ev, "vm.adopted", r->name,
				   "adopted its running VMM (monitor %d)", (int)r->h.monitor);
		} else if (!strcmp(state, "running") || !strcmp(state, "stopping")) {
			/* It ended while nobody watched. */
			struct vmm_exit x;

			r->state = !strcmp(state, "running") ? RS_RUNNING : RS_STOPPING;
			r->started = mono_ms();
			ended(sv, r, &x);
		} else if (!strcmp(state, "crashed")) {
			const char *policy = json_string_value(json_object_get(vm, "restart_policy"));

			if (strcmp(policy, "never"))
				schedule_restart(sv, r, sv->d->cfg.backoff_ms);
		}
		if (r->state != RS_RUNNING && r->state != RS_STOPPING && !r->restart_at &&
		    json_is_true(json_object_get(vm, "autostart"))) {
			r->restarts = 0;
			if (start_locked(sv, r, vm, &e) == 0)
				events_log(sv->d->ev, "vm.started", r->name, "autostart (monitor %d)",
					   (int)r->h.monitor);
			else
				events_log(sv->d->ev, "vm.start-failed", r->name, "autostart: %s",
					   e.msg);
		}
		json_decref(vm);
	}
	pthread_mutex_unlock(&sv->lock);
	free_strv(names);
	wake(sv);
	return 0;
}

void supervisor_stop_all(struct supervisor *sv)
{
	bool power_off = !strcmp(sv->d->cfg.on_stop, "power-off");
	uint64_t until = mono_ms() + sv->d->cfg.stop_timeout_ms;

	pthread_mutex_lock(&sv->lock);
	sv->stopping = true;
	for (struct vm_run *r = sv->runs; r; r = r->next) {
		r->restart_at = 0;
		if (power_off && r->state == RS_RUNNING) {
			vmm_client_power_off(&r->h);
			set_state(sv, r, RS_STOPPING);
		}
	}
	pthread_mutex_unlock(&sv->lock);
	wake(sv);
	pthread_join(sv->thread, NULL);
	if (!power_off)
		return;
	/* Wait for them here: the supervisor's thread is gone. */
	for (struct vm_run *r = sv->runs; r; r = r->next) {
		struct pollfd p = { .fd = r->h.pidfd, .events = POLLIN };
		struct vmm_exit x;
		uint64_t now = mono_ms();

		if (r->state != RS_STOPPING || r->h.pidfd < 0)
			continue;
		if (poll(&p, 1, now < until ? (int)(until - now) : 0) == 0) {
			vmm_client_kill(&r->h);
			poll(&p, 1, 2000);
		}
		ended(sv, r, &x);
	}
}

void supervisor_destroy(struct supervisor *sv)
{
	if (!sv)
		return;
	if (!sv->stopping) {
		pthread_mutex_lock(&sv->lock);
		sv->stopping = true;
		pthread_mutex_unlock(&sv->lock);
		wake(sv);
		pthread_join(sv->thread, NULL);
	}
	while (sv->runs) {
		struct vm_run *r = sv->runs;

		sv->runs = r->next;
		if (r->h.pidfd >= 0)
			close(r->h.pidfd);
		free(r);
	}
	close(sv->epfd);
	close(sv->wake);
	pthread_mutex_destroy(&sv->lock);
	free(sv);
}
