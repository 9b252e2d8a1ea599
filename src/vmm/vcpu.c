// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vCPUs: one thread each, running KVM_RUN and handling every exit reason.
 *
 * An exit the VMM cannot handle ends the VM with a report (registers and,
 * for emulation failures, the instruction bytes) instead of spinning.
 * KVM_RUN answering EINTR (a kick) or EAGAIN (an AP not yet started on some
 * hosts) is retried.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>

#include "vm.h"

int vcpu_create(struct vm *vm, unsigned id, char *err, size_t errlen)
{
	struct vcpu *c = &vm->vcpus[id];
	int r;

	c->vm = vm;
	c->id = id;
	c->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, (unsigned long)id);
	if (c->fd < 0) {
		snprintf(err, errlen, "KVM_CREATE_VCPU %u: %s", id, strerror(errno));
		return -errno;
	}
	c->run = mmap(NULL, (size_t)vm->run_size, PROT_READ | PROT_WRITE,
		      MAP_SHARED, c->fd, 0);
	if (c->run == MAP_FAILED) {
		c->run = NULL;
		snprintf(err, errlen, "mapping vCPU %u: %s", id, strerror(errno));
		return -errno;
	}
	r = cpuid_setup(c, err, errlen);
	if (r < 0)
		return r;
	if (id > 0) {
		/* Application processors wait for the guest's INIT/SIPI: the
		 * VMM never starts them.  (Left UNINITIALIZED, some hosts run
		 * them from the reset vector at once.) */
		struct kvm_mp_state mp = { .mp_state = KVM_MP_STATE_INIT_RECEIVED };

		if (ioctl(c->fd, KVM_SET_MP_STATE, &mp) < 0) {
			snprintf(err, errlen, "KVM_SET_MP_STATE %u: %s", id, strerror(errno));
			return -errno;
		}
	}
	return 0;
}

void vcpu_dump(struct vcpu *c, char *out, size_t len)
{
	struct kvm_regs r;
	struct kvm_sregs s;
	size_t n = 0;

	if (ioctl(c->fd, KVM_GET_REGS, &r) < 0 || ioctl(c->fd, KVM_GET_SREGS, &s) < 0) {
		snprintf(out, len, "(registers unavailable: %s)", strerror(errno));
		return;
	}
	n += (size_t)snprintf(out + n, len - n,
		"vCPU %u: rip=%016llx rsp=%016llx rflags=%08llx "
		"rax=%016llx rbx=%016llx rcx=%016llx rdx=%016llx "
		"rsi=%016llx rdi=%016llx rbp=%016llx "
		"cs=%04x(%s) cr0=%08llx cr3=%08llx cr4=%08llx efer=%llx",
		c->id, r.rip, r.rsp, r.rflags, r.rax, r.rbx, r.rcx, r.rdx,
		r.rsi, r.rdi, r.rbp, s.cs.selector,
		s.cs.l ? "64-bit" : s.cs.db ? "32-bit" : "16-bit",
		s.cr0, s.cr3, s.cr4, s.efer);
	if (n < len && c->run->exit_reason == KVM_EXIT_INTERNAL_ERROR &&
	    c->run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION &&
	    c->run->internal.ndata >= 2) {
		/* data[1]: byte 0 the instruction's length, its bytes after. */
		uint8_t b[16];
		unsigned ilen;

		memcpy(b, &c->run->internal.data[1], 8);
		if (c->run->internal.ndata >= 3)
			memcpy(b + 8, &c->run->internal.data[2], 8);
		ilen = b[0] > 15 ? 15 : b[0];
		n += (size_t)snprintf(out + n, len - n, " instruction:");
		for (unsigned i = 0; i < ilen && n < len; i++)
			n += (size_t)snprintf(out + n, len - n, " %02x", b[1 + i]);
	}
}

static uint64_t now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

/* Counters only this thread writes: a relaxed load and store, no locked
 * instruction. */
static void count(_Atomic uint64_t *v, uint64_t n)
{
	atomic_store_explicit(v, atomic_load_explicit(v, memory_order_relaxed) + n,
			      memory_order_relaxed);
}

static void handle_io(struct vcpu *c)
{
	struct kvm_run *run = c->run;
	uint8_t *data = (uint8_t *)run + run->io.data_offset;
	bool write = run->io.direction == KVM_EXIT_IO_OUT;

	/* String instructions arrive as `count` accesses back to back. */
	for (uint32_t i = 0; i < run->io.count; i++) {
		io_bus_access(&c->vm->pio, run->io.port, data, run->io.size, write);
		data += run->io.size;
	}
}

static void handle_mmio(struct vcpu *c)
{
	struct kvm_run *run = c->run;

	io_bus_access(&c->vm->mmio, run->mmio.phys_addr, run->mmio.data,
		      run->mmio.len, run->mmio.is_write);
}

const char *vcpu_exit_name(uint32_t reason)
{
	static const char *names[] = {
		[KVM_EXIT_UNKNOWN] = "UNKNOWN", [KVM_EXIT_EXCEPTION] = "EXCEPTION",
		[KVM_EXIT_IO] = "IO", [KVM_EXIT_HYPERCALL] = "HYPERCALL",
		[KVM_EXIT_DEBUG] = "DEBUG", [KVM_EXIT_HLT] = "HLT", [KVM_EXIT_MMIO] = "MMIO",
		[KVM_EXIT_IRQ_WINDOW_OPEN] = "IRQ_WINDOW_OPEN",
		[KVM_EXIT_SHUTDOWN] = "SHUTDOWN", [KVM_EXIT_FAIL_ENTRY] = "FAIL_ENTRY",
		[KVM_EXIT_INTR] = "INTR", [KVM_EXIT_SET_TPR] = "SET_TPR",
		[KVM_EXIT_TPR_ACCESS] = "TPR_ACCESS", [KVM_EXIT_NMI] = "NMI",
		[KVM_EXIT_INTERNAL_ERROR] = "INTERNAL_ERROR", [KVM_EXIT_OSI] = "OSI",
		[KVM_EXIT_WATCHDOG] = "WATCHDOG", [KVM_EXIT_EPR] = "EPR",
		[KVM_EXIT_SYSTEM_EVENT] = "SYSTEM_EVENT", [KVM_EXIT_IOAPIC_EOI] = "IOAPIC_EOI",
		[KVM_EXIT_HYPERV] = "HYPERV", [KVM_EXIT_X86_RDMSR] = "X86_RDMSR",
		[KVM_EXIT_X86_WRMSR] = "X86_WRMSR", [KVM_EXIT_DIRTY_RING_FULL] = "DIRTY_RING_FULL",
		[KVM_EXIT_AP_RESET_HOLD] = "AP_RESET_HOLD", [KVM_EXIT_X86_BUS_LOCK] = "X86_BUS_LOCK",
		[KVM_EXIT_XEN] = "XEN", [KVM_EXIT_NOTIFY] = "NOTIFY",
	};

	if (reason < sizeof(names) / sizeof(names[0]) && names[reason])
		return names[reason];
	return "?";
}

/* Handles one exit; false when the vCPU must stop. */
static bool handle_exit(struct vcpu *c)
{
	struct kvm_run *run = c->run;
	struct vm *vm = c->vm;
	char regs[1024];

	count(&c->exits[run->exit_reason < 64 ? run->exit_reason : 63], 1);
	count(&c->exits_total, 1);
	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		handle_io(c);
		return true;
	case KVM_EXIT_MMIO:
		handle_mmio(c);
		return true;
	case KVM_EXIT_HLT:
		/* Only without an in-kernel LAPIC; vsrv always has one, so a
		 * halt reaching here is the guest halting for good. */
		vm_request_exit(vm, VM_EXIT_POWEROFF, 0, "vCPU %u halted", c->id);
		return false;
	case KVM_EXIT_SHUTDOWN:
		/* A triple fault: what a PC does is reset. */
		vm_request_exit(vm, VM_EXIT_REBOOT, 0, "vCPU %u: triple fault", c->id);
		return false;
	case KVM_EXIT_SYSTEM_EVENT:
		switch (run->system_event.type) {
		case KVM_SYSTEM_EVENT_SHUTDOWN:
			vm_request_exit(vm, VM_EXIT_POWEROFF, 0, NULL);
			break;
		case KVM_SYSTEM_EVENT_RESET:
			vm_request_exit(vm, VM_EXIT_REBOOT, 0, "guest reset");
			break;
		default:
			vm_request_exit(vm, VM_EXIT_CRASH, 0, "guest crashed (system event %u)",
					run->system_event.type);
		}
		return false;
	case KVM_EXIT_INTERNAL_ERROR:
		if (run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION &&
		    vm->quirks && quirks_emulation_failure(c))
			return true;
		vcpu_dump(c, regs, sizeof(regs));
		vm_request_exit(vm, VM_EXIT_CRASH, 0, "%s (suberror %u): %s",
				run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION ?
				"emulation failure" : "KVM internal error",
				run->internal.suberror, regs);
		return false;
	case KVM_EXIT_FAIL_ENTRY:
		vcpu_dump(c, regs, sizeof(regs));
		vm_request_exit(vm, VM_EXIT_CRASH, 0,
				"entry failed (hardware reason 0x%llx): %s",
				(unsigned long long)run->fail_entry.hardware_entry_failure_reason,
				regs);
		return false;
	case KVM_EXIT_INTR:
		return true;
	default:
		vcpu_dump(c, regs, sizeof(regs));
		vm_request_exit(vm, VM_EXIT_CRASH, 0, "unhandled exit %s (%u): %s",
				vcpu_exit_name(run->exit_reason), run->exit_reason, regs);
		return false;
	}
}

void vm_thread_signals(int allow)
{
	sigset_t set;

	/* Faults stay deliverable: blocked, a crash in this thread would
	 * kill the process without its handlers (the terminal's restore,
	 * the sanitizers' reports). */
	sigfillset(&set);
	sigdelset(&set, SIGSEGV);
	sigdelset(&set, SIGBUS);
	sigdelset(&set, SIGILL);
	sigdelset(&set, SIGFPE);
	sigdelset(&set, SIGSYS);	/* the sandbox reports on the calling thread */
	if (allow)
		sigdelset(&set, allow);
	pthread_sigmask(SIG_SETMASK, &set, NULL);
}

static void *vcpu_thread(void *arg)
{
	struct vcpu *c = arg;
	struct vm *vm = c->vm;
	uint64_t t0, t1;

	/* Only the kick reaches vCPU threads; everything else the main
	 * thread handles.  Except SIGSYS (vm_thread_signals() leaves it): the
	 * sandbox's report of a forbidden call comes on the thread that made
	 * it. */
	vm_thread_signals(SIGUSR1);
	if (c->id == 0)
		sandbox_test_hook(true);
	t1 = now_ns();
	while (atomic_load(&vm->exit_kind) == VM_RUNNING) {
		/* Pausing (pause.c): this KVM_RUN completes the last exit and
		 * comes back at once; then the thread parks. */
		bool parking = atomic_load(&vm->pause_req);
		int r;

		if (parking)
			c->run->immediate_exit = 1;
		t0 = now_ns();
		count(&c->exit_ns, t0 - t1);
		r = ioctl(c->fd, KVM_RUN, 0);
		t1 = now_ns();
		count(&c->run_ns, t1 - t0);
		if (r < 0) {
			if (errno == EINTR || errno == EAGAIN) {
				c->run->immediate_exit = 0;
				if (parking) {
					vcpu_park(c);
					t1 = now_ns();
				}
				continue;
			}
			vm_request_exit(vm, VM_EXIT_ERROR, 0, "vCPU %u: KVM_RUN: %s",
					c->id, strerror(errno));
			break;
		}
		if (!handle_exit(c))
			break;
	}
	return NULL;
}

int vcpus_start(struct vm *vm, char *err, size_t errlen)
{
	for (unsigned i = 0; i < vm->opts.nr_cpus; i++) {
		struct vcpu *c = &vm->vcpus[i];
		int r = pthread_create(&c->thread, NULL, vcpu_thread, c);

		if (r) {
			snprintf(err, errlen, "starting vCPU %u: %s", i, strerror(r));
			vm_request_exit(vm, VM_EXIT_ERROR, 0, "%s", err);
			return -r;
		}
		c->started = true;
		/*
		 * The thread may already be in KVM_RUN, and another vCPU may
		 * have ended the VM before it was marked started, when
		 * vm_kick_vcpus() passed it by: kicked then, it would sleep
		 * in KVM_RUN for good (an AP the guest never started) and
		 * vcpus_join() with it.  Either the exit sees it started or
		 * this sees the exit (both sequentially consistent).
		 */
		if (atomic_load(&vm->exit_kind) != VM_RUNNING)
			vm_kick_vcpus(vm);
	}
	return 0;
}

void vcpus_join(struct vm *vm)
{
	for (unsigned i = 0; i < vm->opts.nr_cpus; i++)
		if (vm->vcpus[i].started)
			pthread_join(vm->vcpus[i].thread, NULL);
}
