// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The VMM's seccomp allow-list (sandbox.c installs it): which system calls
 * the running VMM may make, and why each.  Compiled at build time, not at
 * each start: sandbox-gen.c runs build() through libseccomp for every set
 * of SANDBOX_* needs and writes the BPF programs into sandbox-filters.h,
 * so the VMM neither links libseccomp nor spends its 0.6 ms generating the
 * same program at every start (docs/benchmarks-vmm.md), as Firecracker
 * compiles its filters ahead of time.
 *
 * Adding a device that needs a call at run time: add it to run_calls
 * with why; an ioctl, to kvm_ioctls or its own table.  Calls that only
 * some configurations need come as a set of their own (SANDBOX_*, vm.h),
 * allowed only when the VMM has such a device.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "sandbox-rules.h"
#include "vm.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZER_BUILD 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SANITIZER_BUILD 1
#endif
#endif

/* What the VMM does after set-up, and why each is needed. */
static const int run_calls[] = {
	SCMP_SYS(read), SCMP_SYS(write),	/* debug port, console, stderr */
	SCMP_SYS(readv), SCMP_SYS(writev),
	SCMP_SYS(close),			/* tearing the VM down */
	SCMP_SYS(poll), SCMP_SYS(ppoll),	/* the console's relay */
	SCMP_SYS(rt_sigtimedwait),		/* the main thread waits for the end */
	SCMP_SYS(futex),			/* locks, pthread_join */
	SCMP_SYS(nanosleep), SCMP_SYS(clock_nanosleep),
	SCMP_SYS(clock_gettime), SCMP_SYS(gettimeofday),
	SCMP_SYS(sched_yield), SCMP_SYS(restart_syscall),
	SCMP_SYS(mmap), SCMP_SYS(munmap),	/* malloc, thread stacks, teardown */
	SCMP_SYS(mprotect), SCMP_SYS(madvise), SCMP_SYS(mremap), SCMP_SYS(brk),
	SCMP_SYS(rt_sigprocmask), SCMP_SYS(rt_sigreturn),
	SCMP_SYS(getpid), SCMP_SYS(gettid),
	SCMP_SYS(tgkill),			/* kicking vCPUs out of KVM_RUN */
	SCMP_SYS(getrandom),			/* virtio-rng's bytes */
	/* virtio-blk's disks (src/disk, docs/disk-layer.md), whose files,
	 * rings and threads are opened before the filter goes in: */
	SCMP_SYS(io_uring_enter),		/* submitting to a queue's ring */
	SCMP_SYS(preadv),			/* the thread engine's data */
	SCMP_SYS(fallocate),			/* its discards and write-zeroes */
	SCMP_SYS(fdatasync),			/* flushes (raw; libvhd's vhd_flush) */
	/* libvhd's metadata (bitmaps, BAT, footer); /proc/self/pagemap
	 * (guestmem.c): */
	SCMP_SYS(pread64),
	/* libvhd's metadata; saved state, to the file sent (snapshot.c): */
	SCMP_SYS(pwrite64),
	/* the thread engine's data; saved state, to the file sent: */
	SCMP_SYS(pwritev),
	SCMP_SYS(sendmsg), SCMP_SYS(recvmsg),	/* the control channel (control-vm.c) */
	/* saved state: the stamps of a disk's open files (disk_layer();
	 * fstat takes no path, unlike newfstatat); a checkpoint's new disk
	 * layer, a file the supervisor sent, opened by libvhd (its size) */
	SCMP_SYS(fstat),
	/* a memfd's pages that hold data (guestmem.c: SEEK_DATA, SEEK_HOLE) */
	SCMP_SYS(lseek),
	SCMP_SYS(set_robust_list), SCMP_SYS(rseq),	/* a new thread's start */
	SCMP_SYS(exit), SCMP_SYS(exit_group),
};

/*
 * SANDBOX_NET_USER: user networking's libslirp runs in vsrv-net, a process
 * of its own under a filter of its own (src/net/net-helper-rules.c), so
 * that the VMM makes no socket.  The VM's process spawned it before the
 * sandbox and exchanges frames with it over a socket pair (src/net/user.c):
 * recvmmsg, batches of them (sendmsg is allowed above); wait4, WNOHANG
 * only, to reap it when the NIC goes.  (A tap or bridge NIC needs nothing
 * here: its descriptor is read and written.)
 */
static const int net_user_calls[] = {
	SCMP_SYS(recvmmsg),
};

/*
 * SANDBOX_CONSOLE_PORTS: a virtio-console's named ports (--port), whose
 * sockets vsrv run listens on before any boot (src/vmm/supervise.c): a
 * boot accepts one client at a time and relays its data, non-blocking
 * (src/devices/virtio/console.c).
 */
static const int console_port_calls[] = {
	SCMP_SYS(accept4),			/* a port's client */
	SCMP_SYS(sendto), SCMP_SYS(recvfrom),	/* send() and recv() are these */
};

/* The KVM ioctls the running VMM issues (vcpu.c, quirks.c, kvm.c,
 * eventfd.c). */
static const unsigned long kvm_ioctls[] = {
	KVM_RUN,
	KVM_GET_REGS, KVM_SET_REGS, KVM_GET_SREGS,	/* reports, quirks */
	KVM_GET_VCPU_EVENTS, KVM_SET_VCPU_EVENTS,	/* INT3 quirk */
	KVM_IRQ_LINE,					/* devices' interrupts, INTx */
	KVM_IOEVENTFD,			/* virtio doorbells follow a BAR the guest moves */
	KVM_SET_GSI_ROUTING,		/* MSI-X vectors the guest programs */
	KVM_SIGNAL_MSI,			/* MSI-X without irqfds */
	KVM_KVMCLOCK_CTRL,		/* pause.c: the guest was stopped by the host */
	/* Saved state (vmstate.c): a paused VM's state. */
	KVM_GET_FPU, KVM_GET_XSAVE, KVM_GET_XSAVE2, KVM_GET_XCRS,
	KVM_GET_MSRS, KVM_GET_LAPIC, KVM_GET_MP_STATE, KVM_GET_DEBUGREGS,
	KVM_GET_IRQCHIP, KVM_GET_PIT2, KVM_GET_CLOCK,
};

#ifdef SANITIZER_BUILD
/*
 * AddressSanitizer and LeakSanitizer at run time and at exit: alternate
 * signal stacks for new threads, and the leak check, which stops the
 * world with a ptrace()ing helper and reads /proc/self.
 */
static const int sanitizer_calls[] = {
	SCMP_SYS(sigaltstack), SCMP_SYS(rt_sigaction), SCMP_SYS(prctl),
	SCMP_SYS(ptrace), SCMP_SYS(wait4), SCMP_SYS(waitid),
	SCMP_SYS(open), SCMP_SYS(openat), SCMP_SYS(getdents), SCMP_SYS(getdents64),
	SCMP_SYS(lseek),
	SCMP_SYS(newfstatat), SCMP_SYS(fstat), SCMP_SYS(readlink), SCMP_SYS(getppid),
	SCMP_SYS(sched_getaffinity), SCMP_SYS(kill), SCMP_SYS(pipe2),
	SCMP_SYS(process_vm_readv), SCMP_SYS(unshare),
};
#endif

int sandbox_rules_allow(scmp_filter_ctx ctx, const int *calls, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, calls[i], 0);

		if (r < 0)
			return r;
	}
	return 0;
}

int sandbox_rules_sanitizers(scmp_filter_ctx ctx)
{
#ifdef SANITIZER_BUILD
	int r = SANDBOX_ALLOW(ctx, sanitizer_calls);

	/* LeakSanitizer's helper is a process sharing memory, not a thread. */
	if (r >= 0)
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
				     SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_VM, CLONE_VM));
	return r;
#else
	return 0;
#endif
}

/* The set SANDBOX_NET_USER adds (net_user_calls, and the arguments). */
static int build_net_user(scmp_filter_ctx ctx)
{
	int r = SANDBOX_ALLOW(ctx, net_user_calls);

	if (r >= 0)
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(wait4), 1,
				     SCMP_A2(SCMP_CMP_EQ, WNOHANG));
	return r;
}

int sandbox_rules_build(scmp_filter_ctx ctx, unsigned needs)
{
	int r = SANDBOX_ALLOW(ctx, run_calls);

	/* SANDBOX_CHECKPOINTS: a checkpoint's disk layer that it freezes goes
	 * from the writer's lock to a reader's (libvhd's snapshot), so that
	 * the chain may be read: that, and no other lock. */
	if (r >= 0 && (needs & SANDBOX_CHECKPOINTS))
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(flock), 1,
				     SCMP_A1(SCMP_CMP_EQ, LOCK_SH | LOCK_NB));
	if (r >= 0 && (needs & SANDBOX_NET_USER))
		r = build_net_user(ctx);
	if (r >= 0 && (needs & SANDBOX_CONSOLE_PORTS))
		r = SANDBOX_ALLOW(ctx, console_port_calls);

	if (r >= 0)
		r = sandbox_rules_sanitizers(ctx);
#ifndef SANITIZER_BUILD
	/* Threads only: a process could exec what the filter forbids. */
	if (r >= 0)
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
				     SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD));
#endif
	/* glibc installs its own handlers for its internal signals (SIGCANCEL
	 * 32, SIGSETXID 33) at the first pthread_create. */
	for (int sig = 32; r >= 0 && sig <= 33; sig++)
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(rt_sigaction), 1,
				     SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)sig));
	/* clone3's flags sit in memory the filter cannot read: say it is not
	 * there, and glibc falls back to clone. */
	if (r >= 0)
		r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
	for (size_t i = 0; r >= 0 && i < sizeof(kvm_ioctls) / sizeof(kvm_ioctls[0]); i++)
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
				     SCMP_A1(SCMP_CMP_EQ, kvm_ioctls[i]));
	/* Letting go of the files guest memory maps (guestmem.c: a restore's
	 * saved state, a boot's kernel and initrd): their read leases, which
	 * their mappings would hold past a close.  Their pages are copied
	 * with mmap, mremap and madvise, allowed above. */
	if (r >= 0)
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(fcntl), 2,
				     SCMP_A1(SCMP_CMP_EQ, F_SETLEASE), SCMP_A2(SCMP_CMP_EQ, F_UNLCK));
	return r;
}
