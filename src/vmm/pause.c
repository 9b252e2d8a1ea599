// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Pausing a running VM (`vsrv ctl pause`, and saved state, which needs the
 * vCPUs still): every vCPU thread is taken out of KVM_RUN and held, then
 * every device with state is quiesced, so that a paused VM neither runs
 * guest code nor does I/O for it.  Resuming undoes both, devices first.
 *
 * A vCPU is kicked the way vm_request_exit() kicks it (immediate_exit for
 * one about to enter KVM_RUN, SIGUSR1 for one inside) and parks at the top
 * of its loop (vcpu.c).  Before parking it enters KVM_RUN once more with
 * immediate_exit set: KVM completes the exit just handled (an IN's value
 * into RAX, an MMIO read into its register) and returns at once, so that
 * the registers a saved state reads are whole; a completion that needs
 * user space again (the next piece of a string I/O) is an exit it handles
 * first.
 *
 * The guest's clocks keep running while it is paused (the time of day
 * stays right); KVM_KVMCLOCK_CTRL tells a Linux guest that the stop was
 * the host's, so that its watchdogs do not report soft lockups.
 */
#include <errno.h>
#include <signal.h>
#include <sys/ioctl.h>

#include "vm.h"

void vm_kick_vcpus(struct vm *vm)
{
	for (unsigned i = 0; i < vm->opts.nr_cpus; i++) {
		struct vcpu *c = &vm->vcpus[i];

		if (c->run)
			c->run->immediate_exit = 1;
		if (c->started && !pthread_equal(c->thread, pthread_self()))
			pthread_kill(c->thread, SIGUSR1);
	}
}

void vcpu_park(struct vcpu *c)
{
	struct vm *vm = c->vm;

	pthread_mutex_lock(&vm->pause_lock);
	vm->parked++;
	pthread_cond_broadcast(&vm->pause_cond);
	while (atomic_load(&vm->pause_req) && atomic_load(&vm->exit_kind) == VM_RUNNING)
		pthread_cond_wait(&vm->pause_cond, &vm->pause_lock);
	vm->parked--;
	pthread_mutex_unlock(&vm->pause_lock);
}

static unsigned started(const struct vm *vm)
{
	unsigned n = 0;

	for (unsigned i = 0; i < vm->opts.nr_cpus; i++)
		n += vm->vcpus[i].started;
	return n;
}

/* The vCPUs only: vm_pause()'s failure path, and the end of a resume. */
static void release_vcpus(struct vm *vm)
{
	pthread_mutex_lock(&vm->pause_lock);
	atomic_store(&vm->pause_req, false);
	pthread_cond_broadcast(&vm->pause_cond);
	pthread_mutex_unlock(&vm->pause_lock);
}

static int pause_now(struct vm *vm)
{
	struct vm_device *d, *end;
	unsigned n = started(vm);
	int r = 0;

	atomic_store(&vm->pause_req, true);
	vm_kick_vcpus(vm);
	pthread_mutex_lock(&vm->pause_lock);
	while (vm->parked < n && atomic_load(&vm->exit_kind) == VM_RUNNING)
		pthread_cond_wait(&vm->pause_cond, &vm->pause_lock);
	pthread_mutex_unlock(&vm->pause_lock);
	if (atomic_load(&vm->exit_kind) != VM_RUNNING) {
		atomic_store(&vm->pause_req, false);
		return -ESHUTDOWN;
	}
	/* The devices before `end` are quiesced. */
	for (end = vm->devices; end; end = end->next) {
		r = end->ops->quiesce(end->opaque);
		if (r < 0)
			break;
	}
	if (r < 0) {
		for (d = vm->devices; d != end; d = d->next)
			d->ops->resume(d->opaque);
		release_vcpus(vm);
		return r;
	}
	for (unsigned i = 0; i < vm->opts.nr_cpus; i++)
		if (vm->vcpus[i].started)
			ioctl(vm->vcpus[i].fd, KVM_KVMCLOCK_CTRL, 0);	/* EINVAL: no kvmclock */
	return 0;
}

/* A pause is counted: the control socket's pause and a copy of guest
 * memory (guestmem_detach()) may overlap, and the first to resume must
 * not let the VM run under the other. */
int vm_pause(struct vm *vm)
{
	int r = 0;

	pthread_mutex_lock(&vm->pause_users_lock);
	if (!vm->pause_users)
		r = pause_now(vm);
	if (r >= 0)
		vm->pause_users++;
	pthread_mutex_unlock(&vm->pause_users_lock);
	return r;
}

void vm_resume(struct vm *vm)
{
	pthread_mutex_lock(&vm->pause_users_lock);
	if (vm->pause_users && !--vm->pause_users && atomic_load(&vm->pause_req)) {
		for (struct vm_device *d = vm->devices; d; d = d->next)
			d->ops->resume(d->opaque);
		release_vcpus(vm);
	}
	pthread_mutex_unlock(&vm->pause_users_lock);
}
