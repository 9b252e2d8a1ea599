// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * A boot's end of the control channel (control.h): a thread of its own in
 * vsrv-vm that takes the supervisor's requests one at a time and does
 * them: pause and resume (pause.c), a reset, the power button, Ctrl-Alt-Del,
 * the counters for `stats`.  It runs inside the sandbox: it polls, reads
 * and writes its socket (recvmsg/sendmsg), reads /proc/self/pagemap
 * through the fd opened before (pread64), and issues the KVM ioctls
 * pause.c does; sandbox.c allows exactly those.
 *
 * A request never waits for the guest: pausing waits only for the vCPU
 * threads to leave KVM_RUN, which a kick makes them do at once.
 *
 * Saving pauses the VM (if it is not paused) and writes its state to the
 * file the supervisor opened and sent (snapshot.c, with pwritev and
 * pwrite64); then the VM powers off without running again.  A save that
 * fails resumes a VM it paused: the VM goes on.  A checkpoint is a save
 * after which, still paused, each writable disk goes on in the new layer
 * the supervisor made over its top and sent (virtio_blk_snapshot: pread64,
 * pwrite64, fdatasync, fstat and flock on those descriptors), and the VM
 * then goes on as it was, or running or paused as the request's "then"
 * asks.
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "../control/protocol.h"
#include "../devices/devices.h"
#include "../devices/virtio/blk.h"
#include "control.h"

struct vm_control {
	struct vm *vm;
	/* The boot's configuration, whose disks' undo modes a save brings
	 * up to date (the saved configuration has them as they are then). */
	struct vmm_config cfg;
	struct virtio_blk *const *blk;	/* cfg's disks' devices */
	int chan, pagemap, wake;
	struct acpi_pm *pm;
	struct i8042 *kbc;
	pthread_t thread;
	bool started, paused;
};

int vm_control_open(struct vm_control **out, struct vm *vm, const struct vmm_config *cfg,
		    int chan, struct acpi_pm *pm, struct i8042 *kbc, char *err, size_t errlen)
{
	struct vm_control *vc = calloc(1, sizeof(*vc));

	if (!vc) {
		snprintf(err, errlen, "control: out of memory");
		return -ENOMEM;
	}
	*vc = (struct vm_control){ .vm = vm, .cfg = *cfg, .chan = chan, .pm = pm, .kbc = kbc };
	/* jansson seeds its hash function from /dev/urandom at its first
	 * object: now, while files may still be opened. */
	json_object_seed(0);
	vc->pagemap = guestmem_open_pagemap();
	vc->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (vc->pagemap < 0 || vc->wake < 0) {
		snprintf(err, errlen, "control: %s: %s",
			 vc->pagemap < 0 ? "/proc/self/pagemap" : "eventfd",
			 strerror(vc->pagemap < 0 ? -vc->pagemap : errno));
		if (vc->pagemap >= 0)
			close(vc->pagemap);
		if (vc->wake >= 0)
			close(vc->wake);
		free(vc);
		return -EIO;
	}
	*out = vc;
	return 0;
}

void vm_control_set_disks(struct vm_control *vc, struct virtio_blk *const *blk)
{
	vc->blk = blk;
}

static json_t *fail(const char *code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static json_t *fail(const char *code, const char *fmt, ...)
{
	char msg[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg);
}

static json_t *ok(json_t *ret)
{
	return json_pack("{s:o}", "return", ret ? ret : json_object());
}

static void put_counter(void *ctx, const char *name, uint64_t v)
{
	json_object_set_new(ctx, name, json_integer((json_int_t)v));
}

static json_t *stats(struct vm_control *vc)
{
	struct vm *vm = vc->vm;
	json_t *vcpus = json_array(), *devs = json_array();
	uint64_t touched = 0, size = 0;

	for (unsigned i = 0; i < vm->opts.nr_cpus; i++) {
		struct vcpu *c = &vm->vcpus[i];
		json_t *exits = json_object();

		for (unsigned r = 0; r < 64; r++) {
			uint64_t n = atomic_load_explicit(&c->exits[r], memory_order_relaxed);

			if (n)
				json_object_set_new(exits, r == 63 ? "other" : vcpu_exit_name(r),
						    json_integer((json_int_t)n));
		}
		json_array_append_new(vcpus, json_pack("{s:i,s:I,s:I,s:I,s:o}", "id", (int)i,
			"guest_ns", (json_int_t)atomic_load_explicit(&c->run_ns, memory_order_relaxed),
			"vmm_ns", (json_int_t)atomic_load_explicit(&c->exit_ns, memory_order_relaxed),
			"exits_total",
			(json_int_t)atomic_load_explicit(&c->exits_total, memory_order_relaxed),
			"exits", exits));
	}
	for (struct vm_device *d = vm->devices; d; d = d->next) {
		json_t *counters;

		if (!d->ops->counters)
			continue;
		counters = json_object();
		d->ops->counters(d->opaque, put_counter, counters);
		json_array_append_new(devs, json_pack("{s:s,s:o}", "name", d->name,
						      "counters", counters));
	}
	for (unsigned m = 0; m < vm->nr_mem; m++)
		size += vm->mem[m].size;
	if (guestmem_touched(vm, vc->pagemap, &touched) < 0)
		touched = 0;
	return ok(json_pack("{s:o,s:o,s:{s:I,s:I}}", "vcpus", vcpus, "devices", devs,
			    "memory", "size", (json_int_t)size, "touched", (json_int_t)touched));
}

/* The undo modes the supervisor has now, for the saved configuration. */
static void take_undo(struct vm_control *vc, json_t *modes)
{
	json_t *m;
	size_t i;

	json_array_foreach(modes, i, m) {
		const char *v = json_string_value(m);

		if (i >= vc->cfg.nr_disks || !v || vc->cfg.disks[i].spec.undo == DISK_UNDO_NONE)
			continue;
		if (disk_undo_parse(v) != DISK_UNDO_NONE)
			vc->cfg.disks[i].spec.undo = disk_undo_parse(v);
	}
}

/* A checkpoint's disks onto their new layers, the VM paused: each
 * "disks" entry takes the next descriptor (and the one after for
 * "direct"), which are then the disk's.  A bit per disk that switched;
 * *err set at the first that did not. */
static uint32_t switch_disks(struct vm_control *vc, json_t *disks, int *fds, unsigned nr_fds,
			     char *err, size_t errlen)
{
	unsigned next = 1;	/* fds[0]: the state's file */
	uint32_t done = 0;
	json_t *e;
	size_t i;

	json_array_foreach(disks, i, e) {
		json_int_t k = json_integer_value(json_object_get(e, "disk"));
		const char *file = json_string_value(json_object_get(e, "file"));
		bool direct = json_is_true(json_object_get(e, "direct"));
		int fd, dfd;

		if (k < 0 || (size_t)k >= vc->cfg.nr_disks || !vc->blk || !vc->blk[k] || !file ||
		    next + direct >= nr_fds) {
			snprintf(err, errlen, "a checkpoint's disk %zu the VM does not have", i);
			break;
		}
		fd = fds[next];
		dfd = direct ? fds[next + 1] : -1;
		fds[next++] = -1;	/* the disk's from here, either way */
		if (direct)
			fds[next++] = -1;
		if (virtio_blk_snapshot(vc->blk[k], fd, dfd, file, err, errlen) < 0)
			break;
		done |= 1u << k;
	}
	return done;
}

static json_t *switched_list(uint32_t done)
{
	json_t *a = json_array();

	for (unsigned k = 0; k < 32; k++)
		if (done & 1u << k)
			json_array_append_new(a, json_integer(k));
	return a;
}

/* A save (off: then the VM powers off) or a checkpoint (the VM goes on,
 * on its disks' new layers, as "then" says: running, paused, or absent
 * as it was; a checkpoint that failed leaves it as it was). */
static json_t *save(struct vm_control *vc, json_t *msg, int *fds, unsigned nr_fds, bool off,
		    bool *then_off)
{
	json_t *disks = json_object_get(msg, "disks"), *reply;
	const char *then = json_string_value(json_object_get(msg, "then"));
	bool was_paused = vc->paused, stay_paused;
	struct timespec t0, t1;
	uint64_t bytes = 0;
	uint32_t done = 0;
	char err[600] = "";
	int r;

	if (!nr_fds || fds[0] < 0)
		return fail(CTL_E_FAILED, "saving: no file came with the request");
	take_undo(vc, json_object_get(msg, "undo"));
	if (!was_paused) {
		r = vm_pause(vc->vm);
		if (r < 0)
			return fail(r == -ESHUTDOWN ? CTL_E_VM_ENDED : CTL_E_FAILED, "pausing: %s",
				    strerror(-r));
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	r = vm_save(vc->vm, &vc->cfg, vc->pagemap, fds[0], &bytes, err, sizeof(err));
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (r >= 0 && !off) {
		/* The state names each disk's chain as it is; the VM writes
		 * a new layer from now on. */
		done = switch_disks(vc, disks, fds, nr_fds, err, sizeof(err));
		if (err[0])
			r = -EIO;
	}
	if (r < 0 || !off) {
		stay_paused = r >= 0 && then ? !strcmp(then, "paused") : was_paused;
		/* Paused only for the saving, or asked to run on. */
		if (!stay_paused)
			vm_resume(vc->vm);
		vc->paused = stay_paused;
		reply = r < 0 ? fail(CTL_E_FAILED, "%s", err) :
			ok(json_pack("{s:I,s:b}", "bytes", (json_int_t)bytes, "paused",
				     stay_paused));
		if (!off)
			json_object_set_new(reply, "switched", switched_list(done));
		return reply;
	}
	/* Paused for good: the VM must not run past its saved state. */
	vc->paused = true;
	*then_off = true;
	return ok(json_pack("{s:I,s:f}", "bytes", (json_int_t)bytes, "write_seconds",
			    (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9));
}

/* One request: its reply.  *then_reset, *then_off: end the VM so once the
 * reply is sent. */
static json_t *handle(struct vm_control *vc, json_t *msg, int *fds, unsigned nr_fds,
		      bool *then_reset, bool *then_off)
{
	const char *op = json_string_value(json_object_get(msg, "op")) ?: "";
	int r;

	if (!strcmp(op, "save"))
		return save(vc, msg, fds, nr_fds, true, then_off);
	if (!strcmp(op, "checkpoint"))
		return save(vc, msg, fds, nr_fds, false, then_off);
	if (!strcmp(op, "revert")) {
		/* The supervisor starts the next boot from the checkpoint. */
		*then_off = true;
		return ok(NULL);
	}
	if (!strcmp(op, "pause")) {
		if (vc->paused)
			return fail(CTL_E_WRONG_STATE, "the VM is paused already");
		r = vm_pause(vc->vm);
		if (r < 0)
			return fail(r == -ESHUTDOWN ? CTL_E_VM_ENDED : CTL_E_FAILED, "pausing: %s",
				    r == -ESHUTDOWN ? "the VM is ending" : strerror(-r));
		vc->paused = true;
		return ok(NULL);
	}
	if (!strcmp(op, "resume")) {
		if (!vc->paused)
			return fail(CTL_E_WRONG_STATE, "the VM is not paused");
		vm_resume(vc->vm);
		vc->paused = false;
		return ok(NULL);
	}
	if (!strcmp(op, "reset")) {
		*then_reset = true;
		return ok(NULL);
	}
	if (!strcmp(op, "button")) {
		r = acpi_pm_press_power_button(vc->pm);
		/* -EAGAIN: latched until the guest enables the event. */
		return ok(json_pack("{s:b}", "guest_enabled", r == 0));
	}
	if (!strcmp(op, "ctrl-alt-del")) {
		r = i8042_ctrl_alt_del(vc->kbc);
		if (r < 0)
			return fail(CTL_E_FAILED, "the guest's keyboard takes no keys now "
				    "(not enabled, or its buffer is full)");
		return ok(NULL);
	}
	if (!strcmp(op, "stats"))
		return stats(vc);
	return fail(CTL_E_NOT_SUPPORTED, "the VM's process does not know '%s'", op);
}

static void *control_thread(void *arg)
{
	struct vm_control *vc = arg;
	/* With how long a restore took, for status (and bench/ctl-run). */
	json_t *ev = json_pack("{s:s,s:f}", "event", "running", "restore_seconds",
			       (double)vc->vm->restore_ns / 1e9);

	vm_thread_signals(0);
	if (ctl_chan_send(vc->chan, ev, -1) < 0) {
		json_decref(ev);
		return NULL;
	}
	json_decref(ev);
	for (;;) {
		struct pollfd p[2] = { { .fd = vc->chan, .events = POLLIN },
				       { .fd = vc->wake, .events = POLLIN } };
		bool then_reset = false, then_off = false;
		int fds[CTL_CHAN_FDS_MAX];
		json_t *msg, *reply;
		unsigned nr_fds;
		int r;

		if (poll(p, 2, -1) < 0 && errno != EINTR)
			break;
		if (p[1].revents)
			break;
		r = ctl_chan_recv_fds(vc->chan, &msg, fds, &nr_fds);
		if (r == -EAGAIN)
			continue;
		if (r == -EPIPE)
			break;	/* the supervisor is gone: so is this process, soon */
		reply = r < 0 ? fail(CTL_E_FAILED, "a message the VM could not read") :
			handle(vc, msg, fds, nr_fds, &then_reset, &then_off);
		ctl_chan_close_fds(fds, &nr_fds);
		json_decref(msg);
		if (reply)
			ctl_chan_send(vc->chan, reply, -1);
		json_decref(reply);
		if (then_reset)
			vm_request_exit(vc->vm, VM_EXIT_REBOOT, 0, "reset through the control socket");
		if (then_off)
			vm_request_exit(vc->vm, VM_EXIT_POWEROFF, 0, "saved, or reverted");
	}
	return NULL;
}

int vm_control_start(struct vm_control *vc)
{
	int r = pthread_create(&vc->thread, NULL, control_thread, vc);

	if (r)
		return -r;
	vc->started = true;
	return 0;
}

void vm_control_close(struct vm_control *vc)
{
	uint64_t one = 1;

	if (!vc)
		return;
	if (vc->started) {
		if (write(vc->wake, &one, sizeof(one)) < 0)
			one = 0;
		pthread_join(vc->thread, NULL);
	}
	/* A VM that ends paused: its devices run down as usual. */
	if (vc->paused)
		vm_resume(vc->vm);
	close(vc->pagemap);
	close(vc->wake);
	free(vc);
}
