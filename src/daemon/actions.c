// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * What vsrvd and a running VM say through its control socket
 * (docs/control.md; vmm-ctl.c is the connection): the API's actions, the
 * VMM's events, which keep the inventory's state, and its counters for
 * /metrics.
 *
 * Every VMM is started with its socket in its folder (vm.json's
 * "control"); the supervisor's thread connects as soon as the VMM has
 * bound it (retrying every 20 ms, then every 500 ms), asks for events and
 * the VMM's status, and reconnects if the connection drops while the VMM
 * lives; an adopted VMM is reconnected the same way.  The sockets are
 * non-blocking and served by that thread alone: an API thread queues its
 * request and waits for the reply on the supervisor's condition variable,
 * the lock released, for at most control_timeout_ms (save_timeout_ms for
 * saves and checkpoints).  A VMM that does not answer costs the request
 * that asked a 504, never the service.
 *
 * Why on the supervisor's thread rather than a thread per VM: the
 * replies, the events and the processes' ends are then seen in one order
 * by one owner of the state, and 100 idle VMs cost 100 file descriptors,
 * not 100 threads.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "supervisor-int.h"

#define CONNECT_FAST_MS		20	/* between tries at first */
#define CONNECT_FAST_TRIES	250	/* 5 s of them */
#define CONNECT_SLOW_MS		500
#define RECONNECT_MS		100
#define STATS_FRESH_MS		1000	/* an answer this young is used again */
#define STATS_WAIT_MS		1000	/* a scrape waits this long for answers */
#define STATS_STALE_MS		10000	/* an older one is not shown */

static void on_msg(void *opaque, struct ctl_call *call, json_t *msg);

/* --- the connection, on the supervisor's thread --- */

static void arm(struct supervisor *sv, struct vm_run *r)
{
	bool out = r->ctl.out_len > 0;
	struct epoll_event ev = { .events = EPOLLIN | (out ? EPOLLOUT : 0),
				  .data.ptr = &r->control_tag };

	if (r->ctl.fd >= 0 && out != r->ctl_out_armed &&
	    epoll_ctl(sv->epfd, EPOLL_CTL_MOD, r->ctl.fd, &ev) == 0)
		r->ctl_out_armed = out;
}

void ctl_start(struct supervisor *sv, struct vm_run *r)
{
	ctl_stop(sv, r);
	r->ctl_retry_at = mono_ms();
	r->ctl_tries = 0;
	json_decref(r->stats);
	r->stats = NULL;
	sv_wake(sv);
}

void ctl_stop(struct supervisor *sv, struct vm_run *r)
{
	if (r->ctl.fd >= 0)
		epoll_ctl(sv->epfd, EPOLL_CTL_DEL, r->ctl.fd, NULL);
	vmm_ctl_close(&r->ctl, on_msg, r);
	r->ctl_retry_at = 0;
	r->ctl_out_armed = false;
}

static void lost(struct supervisor *sv, struct vm_run *r)
{
	ctl_stop(sv, r);
	if (rs_alive(r->state))
		r->ctl_retry_at = mono_ms() + RECONNECT_MS;
}

void ctl_service(struct supervisor *sv, struct vm_run *r, uint32_t events)
{
	if (r->ctl.fd < 0)
		return;
	if (((events & EPOLLOUT) && vmm_ctl_flush(&r->ctl) < 0) ||
	    ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && vmm_ctl_read(&r->ctl, on_msg, r) < 0)) {
		lost(sv, r);
		return;
	}
	arm(sv, r);
}

void ctl_tick(struct supervisor *sv, struct vm_run *r, uint64_t now, uint64_t *next)
{
	if (r->ctl.fd >= 0) {
		if (vmm_ctl_flush(&r->ctl) < 0)
			lost(sv, r);
		else
			arm(sv, r);
	}
	if (r->ctl.fd < 0 && r->ctl_retry_at && r->ctl_retry_at <= now && rs_alive(r->state)) {
		struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT,
					  .data.ptr = &r->control_tag };

		if (vmm_ctl_connect(&r->ctl, r->dir, CONTROL_SOCKET) == 0) {
			epoll_ctl(sv->epfd, EPOLL_CTL_ADD, r->ctl.fd, &ev);
			r->ctl_out_armed = true;
			r->ctl_retry_at = 0;
			/* Its events from now on, and where it stands. */
			ctl_send(sv, r, "events", NULL);
			ctl_send(sv, r, "status", NULL);
		} else {
			r->ctl_retry_at = now + (++r->ctl_tries < CONNECT_FAST_TRIES ?
						 CONNECT_FAST_MS : CONNECT_SLOW_MS);
		}
	}
	if (r->ctl_retry_at && r->ctl_retry_at < *next)
		*next = r->ctl_retry_at;
}

static struct ctl_call *queue(struct supervisor *sv, struct vm_run *r, const char *command,
			      json_t *args)
{
	struct ctl_call *call = vmm_ctl_call(&r->ctl, command, args);

	if (call && r->ctl.fd >= 0 && vmm_ctl_flush(&r->ctl) == 0 && !r->ctl.out_len)
		return call;
	sv_wake(sv);	/* the thread writes the rest, or connects */
	return call;
}

bool ctl_send(struct supervisor *sv, struct vm_run *r, const char *command, json_t *args)
{
	return queue(sv, r, command, args) != NULL;
}

/* --- what the VMM says --- */

const char *vm_on_stop(struct supervisor *sv, struct vm_run *r)
{
	static __thread char buf[16];
	json_t *vm;

	snprintf(buf, sizeof(buf), "%s", sv->d->cfg.on_stop);
	if (inventory_vm_get(sv->d->inv, r->name, &vm, NULL) == 0) {
		if (json_is_string(json_object_get(vm, "on_stop")))
			snprintf(buf, sizeof(buf), "%s",
				 json_string_value(json_object_get(vm, "on_stop")));
		json_decref(vm);
	}
	return buf;
}

/* The VMM's state (docs/control.md) as the inventory's. */
static void vmm_state(struct supervisor *sv, struct vm_run *r, const char *state)
{
	enum run_state to, from = r->state;

	if (!rs_alive(from) || from == RS_STOPPING || !state)
		return;
	if (!strcmp(state, "running"))
		to = RS_RUNNING;
	else if (!strcmp(state, "paused"))
		to = RS_PAUSED;
	else if (!strcmp(state, "shutting-down"))
		to = RS_SHUTTING_DOWN;
	else if (!strcmp(state, "saving"))
		to = RS_SAVING;
	else
		return;		/* starting, off: the process tells the rest */
	if (to == RS_RUNNING && r->restoring) {
		char saved[4200];

		/* It runs on from its state: the file is spent. */
		r->restoring = false;
		snprintf(saved, sizeof(saved), "%s/%s", r->dir, SAVED_STATE);
		unlink(saved);
		events_log(sv->d->ev, "vm.restored", r->name, "running on from its saved state");
	}
	if (to == from)
		return;
	if (from == RS_SHUTTING_DOWN && to == RS_RUNNING) {
		/* The guest rebooted instead: the shutdown is over. */
		r->stop_how = NULL;
		r->term_at = r->kill_at = 0;
	}
	if (from == RS_SAVING)
		r->saving = false;	/* the save failed: the VM goes on */
	if (to == RS_SAVING)
		r->before_saving = from;
	sv_set_state(sv, r, to);
	/* A checkpoint passes through saving: paused or resumed only when
	 * it left the VM otherwise than it found it ("then"). */
	if (from == RS_SAVING)
		from = r->before_saving;
	if (to == RS_PAUSED && from != RS_PAUSED)
		events_log(sv->d->ev, "vm.paused", r->name, "paused");
	else if (to == RS_RUNNING && from == RS_PAUSED)
		events_log(sv->d->ev, "vm.resumed", r->name, "resumed");
}

static void vmm_event(struct supervisor *sv, struct vm_run *r, json_t *msg)
{
	const char *name = json_string_value(json_object_get(msg, "event"));
	json_t *data = json_object_get(msg, "data");

	if (!name)
		return;
	if (!strcmp(name, "state"))
		vmm_state(sv, r, json_string_value(json_object_get(data, "state")));
	else if (!strcmp(name, "reboot"))
		events_log(sv->d->ev, "vm.rebooted", r->name, "boot %lld begins",
			   (long long)json_integer_value(json_object_get(data, "boot")));
	else if (!strcmp(name, "shutdown-timeout"))
		events_log(sv->d->ev, "vm.shutdown-timeout", r->name,
			   "the guest did not shut down within %lld s: the VMM does a %s",
			   (long long)json_integer_value(json_object_get(data, "timeout")),
			   json_string_value(json_object_get(data, "action")) ?: "power-off");
}

static void log_shutdown(struct supervisor *sv, struct vm_run *r, json_t *ret)
{
	bool enabled = json_is_true(json_object_get(ret, "guest_enabled"));

	events_log(sv->d->ev, "vm.shutting-down", r->name,
		   "the power button was pressed: the guest has %lld s to shut down%s",
		   (long long)json_integer_value(json_object_get(ret, "timeout")),
		   enabled ? "" : " (it has not enabled the button yet)");
}

/* A reply (or the connection's end: msg NULL) or an event (call NULL). */
static void on_msg(void *opaque, struct ctl_call *call, json_t *msg)
{
	struct vm_run *r = opaque;
	struct supervisor *sv = r->sv;
	json_t *ret = json_object_get(msg, "return");
	bool mine = call && (!call->waited || call->abandoned);

	if (!call) {
		vmm_event(sv, r, msg);
		return;
	}
	if (call == r->stats_call) {
		r->stats_call = NULL;
		if (json_is_object(ret)) {
			json_decref(r->stats);
			r->stats = json_incref(ret);
			r->stats_at = mono_ms();
		}
	} else if (!strcmp(call->command, "status")) {
		vmm_state(sv, r, json_string_value(json_object_get(ret, "state")));
	} else if (!strcmp(call->command, "save") && !ret && r->saving) {
		const char *m = "the VMM ended";

		r->saving = false;
		r->stop_how = NULL;
		if (mine) {
			vmm_ctl_error(msg, &m);
			events_log(sv->d->ev, "vm.save-failed", r->name, "%s", m);
		}
	} else if (!strcmp(call->command, "shutdown") && ret && mine) {
		log_shutdown(sv, r, ret);
	}
	pthread_cond_broadcast(&sv->cond);
	if (mine)
		vmm_ctl_call_free(call);
}

/* --- the API's actions --- */

#define B(s)	(1u << (s))
#define LIVE	(B(RS_RUNNING) | B(RS_PAUSED) | B(RS_SHUTTING_DOWN))

struct action {
	const char *name;		/* the API's, and the socket's command */
	unsigned states;		/* the states it fits */
	bool slow;			/* writes a state: save_timeout_ms */
};

static const struct action actions[] = {
	{ "pause", B(RS_RUNNING) | B(RS_SHUTTING_DOWN), false },
	{ "resume", B(RS_PAUSED), false },
	{ "shutdown", B(RS_RUNNING) | B(RS_PAUSED), false },
	{ "reset", LIVE, false },
	{ "save", B(RS_RUNNING) | B(RS_PAUSED), true },
	{ "checkpoint", B(RS_RUNNING) | B(RS_PAUSED), true },
	{ "revert", LIVE, false },
	{ "delete-checkpoint", LIVE, false },
	{ "checkpoints", LIVE | B(RS_SAVING), false },
	{ NULL, 0, false },
};

/* The VMM's error codes (docs/control.md) as HTTP's. */
static int status_of(const char *code)
{
	static const struct { const char *code; int status; } map[] = {
		{ CTL_E_WRONG_STATE, 409 }, { CTL_E_VM_ENDED, 409 }, { CTL_E_BAD_ARGUMENTS, 400 },
		{ CTL_E_BUSY, 503 }, { CTL_E_NOT_SUPPORTED, 501 }, { CTL_E_FAILED, 500 },
	};

	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (!strcmp(code, map[i].code))
			return map[i].status;
	return 502;
}

/* COMMAND through the socket, waited for: 0 and its return (new
 * reference) in *ret, or a message for the API. */
static int call(struct supervisor *sv, struct vm_run *r, const char *command, json_t *args,
		unsigned timeout_ms, json_t **ret, struct vsrvd_err *e)
{
	struct ctl_call *c = queue(sv, r, command, args);
	uint64_t until = mono_ms() + timeout_ms;
	const char *code, *m;
	int status;

	if (!c)
		return vsrvd_fail(e, 500, -ENOMEM, "vm '%s': %s: out of memory", r->name, command);
	c->waited = true;
	r->refs++;
	while (!c->done && sv_wait(sv, until))
		;
	r->refs--;
	if (!c->done) {
		c->abandoned = true;	/* the reader frees it, if it ever comes */
		return vsrvd_fail(e, 504, -ETIMEDOUT,
				  "vm '%s': %s: the VMM did not answer within %u ms", r->name,
				  command, timeout_ms);
	}
	if (!c->reply) {
		vmm_ctl_call_free(c);
		return vsrvd_fail(e, 409, -EPIPE, "vm '%s': %s: the VMM ended before it answered",
				  r->name, command);
	}
	if (json_object_get(c->reply, "return")) {
		*ret = json_incref(json_object_get(c->reply, "return"));
		vmm_ctl_call_free(c);
		return 0;
	}
	code = vmm_ctl_error(c->reply, &m);
	status = status_of(code);
	vsrvd_fail(e, status, -EIO, "vm '%s': %s: %s", r->name, command, m);
	vmm_ctl_call_free(c);
	return -EIO;
}

static int wrong_state(struct vm_run *r, const char *action, struct vsrvd_err *e)
{
	const char *s = run_state_names[r->state];

	if ((!strcmp(action, "pause") && r->state == RS_PAUSED) ||
	    (!strcmp(action, "shutdown") && r->state == RS_SHUTTING_DOWN))
		return vsrvd_fail(e, 409, -EBUSY, "vm '%s': %s already", r->name, s);
	return vsrvd_fail(e, 409, -EBUSY, "vm '%s': %s, not %s", r->name, s,
			  !strcmp(action, "resume") ? "paused" : "running");
}

/* A VM whose undo disks are merged or thrown away at its end would not
 * restore (docs/control.md, "Disks"): no save of it. */
static int save_fits(struct supervisor *sv, struct vm_run *r, struct vsrvd_err *e)
{
	json_t *vm, *disk;
	size_t i;
	int ret = 0;

	if (inventory_vm_get(sv->d->inv, r->name, &vm, e) < 0)
		return -ENOENT;
	json_array_foreach(json_object_get(vm, "disks"), i, disk) {
		const char *undo = json_string_value(json_object_get(disk, "undo"));

		if (undo && strcmp(undo, "none") && strcmp(undo, "keep")) {
			ret = vsrvd_fail(e, 409, -EBUSY,
					 "vm '%s': disks[%zu] has undo %s, whose changes go at the VM's end: its saved state would not restore (undo keep would)",
					 r->name, i, undo);
			break;
		}
	}
	json_decref(vm);
	return ret;
}

/* Whether checkpoint NAME exists, from the VMM's own list. */
static int checkpoint_exists(struct supervisor *sv, struct vm_run *r, const char *name,
			     struct vsrvd_err *e)
{
	json_t *list, *c;
	size_t i;
	int found = 0, ret = call(sv, r, "checkpoints", NULL, sv->d->cfg.control_timeout_ms,
				  &list, e);

	if (ret < 0)
		return ret;
	json_array_foreach(json_object_get(list, "checkpoints"), i, c)
		found |= !strcmp(json_string_value(json_object_get(c, "name")) ?: "", name);
	json_decref(list);
	return found;
}

/* The checkpoints of a VM that is not running: its folder's index. */
static json_t *checkpoints_on_disk(struct vm_run *r)
{
	char path[4200];
	json_t *idx;

	snprintf(path, sizeof(path), "%s/checkpoints/index.json", r->dir);
	idx = json_load_file(path, 0, NULL);
	if (!json_is_object(idx)) {
		json_decref(idx);
		return json_pack("{s:n, s:[]}", "current", "checkpoints");
	}
	json_object_del(idx, "version");
	return idx;
}

/* The socket's arguments for a checkpoint's action: its name, and for a
 * checkpoint what it leaves the VM as, if the body said. */
static json_t *ckpt_args(const struct action *a, json_t *args)
{
	json_t *name = json_object_get(args, "name"), *then = json_object_get(args, "then");

	if (!name)
		return NULL;
	return !strcmp(a->name, "checkpoint") && then ?
	       json_pack("{s:O,s:O}", "name", name, "then", then) : json_pack("{s:O}", "name", name);
}

static int act(struct supervisor *sv, struct vm_run *r, const struct action *a, json_t *args,
	       json_t **result, struct vsrvd_err *e)
{
	const struct vsrvd_config *c = &sv->d->cfg;
	unsigned timeout = a->slow ? c->save_timeout_ms : c->control_timeout_ms;
	const char *ckpt = json_string_value(json_object_get(args, "name"));
	json_t *ret = NULL;
	uint64_t until;
	int ex, rc;

	if (!strcmp(a->name, "save")) {
		char saved[4200];

		rc = save_fits(sv, r, e);
		if (rc < 0)
			return rc;
		snprintf(saved, sizeof(saved), "%s/%s", r->dir, SAVED_STATE);
		r->saving = true;
		r->stop_how = "saved on request";
		rc = call(sv, r, "save", json_pack("{s:s}", "file", saved), timeout, &ret, e);
		if (rc < 0) {
			/* One that did not answer in time may still end saved. */
			if (e->status != 504) {
				r->saving = false;
				r->stop_how = NULL;
			}
			events_log(sv->d->ev, "vm.save-failed", r->name, "%s", e->msg);
			return rc;
		}
		json_decref(ret);
		/* The VMM ends once the state is written: the answer says saved. */
		until = mono_ms() + c->stop_timeout_ms;
		while (rs_alive(r->state) && sv_wait(sv, until))
			;
		return 0;
	}
	if (!strcmp(a->name, "shutdown")) {
		uint64_t t = json_integer_value(json_object_get(args, "timeout"));

		rc = call(sv, r, "shutdown", json_pack("{s:I}", "timeout",
						       (json_int_t)(t ? t : c->shutdown_timeout_s)),
			  timeout, &ret, e);
		if (rc < 0)
			return rc;
		/* The VMM powers it off at the timeout; if it does not, we do. */
		r->stop_how = "shut down on request";
		r->term_at = mono_ms() + (uint64_t)json_integer_value(json_object_get(ret, "timeout")) *
			     1000 + 1000;
		r->kill_at = r->term_at + c->stop_timeout_ms;
		log_shutdown(sv, r, ret);
		json_decref(ret);
		return 0;
	}
	if (ckpt && strcmp(a->name, "checkpoints")) {
		ex = checkpoint_exists(sv, r, ckpt, e);
		if (ex < 0)
			return ex;
		if (ex && !strcmp(a->name, "checkpoint"))
			return vsrvd_fail(e, 409, -EEXIST, "vm '%s': checkpoint %s exists", r->name,
					  ckpt);
		if (!ex && strcmp(a->name, "checkpoint"))
			return vsrvd_fail(e, 404, -ENOENT, "vm '%s': no checkpoint %s", r->name, ckpt);
		if (!rs_alive(r->state) || !(a->states & B(r->state)))
			return wrong_state(r, a->name, e);
	}
	rc = call(sv, r, a->name, ckpt_args(a, args), timeout, &ret, e);
	if (rc < 0)
		return rc;
	if (!strcmp(a->name, "checkpoint")) {
		const char *file = json_string_value(json_object_get(ret, "file"));
		char full[4300];

		/* The VMM's is from its folder (vm.json's "checkpoints"). */
		if (file && file[0] != '/') {
			snprintf(full, sizeof(full), "%s/%s", r->dir, file);
			json_object_set_new(ret, "file", json_string(full));
		}
	}
	if (!strcmp(a->name, "reset"))
		events_log(sv->d->ev, "vm.reset", r->name, "reset");
	else if (!strcmp(a->name, "checkpoint"))
		events_log(sv->d->ev, "vm.checkpoint-created", r->name, "checkpoint %s (%lld bytes)",
			   ckpt, (long long)json_integer_value(json_object_get(ret, "bytes")));
	else if (!strcmp(a->name, "revert"))
		events_log(sv->d->ev, "vm.reverted", r->name, "reverted to checkpoint %s", ckpt);
	else if (!strcmp(a->name, "delete-checkpoint"))
		events_log(sv->d->ev, "vm.checkpoint-deleted", r->name, "checkpoint %s deleted", ckpt);
	/* A checkpoint's answer is its own; the rest answer with the VM. */
	if (result && (!strcmp(a->name, "checkpoint") || !strcmp(a->name, "checkpoints")))
		*result = ret;
	else
		json_decref(ret);
	return 0;
}

int supervisor_control(struct supervisor *sv, const char *name, const char *action,
		       json_t *args, json_t **result, struct vsrvd_err *e)
{
	const struct action *a;
	struct vm_run *r;
	int ret;

	for (a = actions; a->name && strcmp(a->name, action); a++)
		;
	if (!a->name)
		return vsrvd_fail(e, 404, -ENOENT, "%s: no such action", action);
	pthread_mutex_lock(&sv->lock);
	r = sv_get_run(sv, name, NULL, e);
	if (!r) {
		ret = -ENOENT;
	} else if (!strcmp(action, "checkpoints") && !(a->states & B(r->state))) {
		*result = checkpoints_on_disk(r);
		ret = 0;
	} else if (!(a->states & B(r->state))) {
		ret = wrong_state(r, action, e);
	} else {
		r->refs++;
		ret = act(sv, r, a, args, result, e);
		r->refs--;
	}
	pthread_mutex_unlock(&sv->lock);
	return ret;
}

/* --- counters --- */

json_t *supervisor_stats(struct supervisor *sv)
{
	uint64_t now = mono_ms(), until = now + STATS_WAIT_MS;
	json_t *out = json_object();
	bool waiting;

	pthread_mutex_lock(&sv->lock);
	for (struct vm_run *r = sv->runs; r; r = r->next) {
		if (!rs_alive(r->state) || r->state == RS_STOPPING || !r->ctl.ready ||
		    r->stats_call || (r->stats && now - r->stats_at < STATS_FRESH_MS))
			continue;
		r->stats_call = queue(sv, r, "stats", NULL);
		r->stats_asked = now;
	}
	/* For the answers asked for now or a moment ago: a VMM that has not
	 * answered one for longer is not waited for again. */
	do {
		waiting = false;
		for (struct vm_run *r = sv->runs; r; r = r->next)
			waiting |= r->stats_call && r->stats_asked + STATS_WAIT_MS > now;
	} while (waiting && sv_wait(sv, until));
	now = mono_ms();
	for (struct vm_run *r = sv->runs; r; r = r->next)
		if (rs_alive(r->state) && r->stats && now - r->stats_at <= STATS_STALE_MS)
			json_object_set(out, r->name, r->stats);
	pthread_mutex_unlock(&sv->lock);
	return out;
}
