// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vmm-shim.so: an LD_PRELOAD library that timestamps a VMM's start-up, for
 * bench/vmm-run.  It wraps ioctl() and records, once per process, the first
 * KVM_CREATE_VM and the first KVM_RUN with CLOCK_MONOTONIC, appending one
 * line each to the file named by $VMM_SHIM_OUT:
 *
 *     exec PID SEC.NSEC        taken by bench/vmm-exec right before its
 *                              execve() of the VMM ($VMM_SHIM_EXEC_NS)
 *     load PID SEC.NSEC        this library's constructor (after exec and
 *                              the dynamic loader)
 *     create_vm PID SEC.NSEC   the first ioctl(KVM_CREATE_VM) returned
 *     kvm_run PID SEC.NSEC     the first ioctl(KVM_RUN) is about to enter
 *     ioctl PID REQ COUNT NS   then, one line for each ioctl request made
 *                              before it: how many, and the time in them
 *                              (the host kernel's share of the start-up)
 *
 * The file is opened in the constructor, before the VMM runs any of its
 * own code: vsrv's seccomp sandbox, installed before its first KVM_RUN,
 * forbids open() but allows write(), so the records are made with one
 * write() each (O_APPEND: whole lines, whichever process writes).  The
 * descriptor is close-on-exec and far above the ones a VMM opens.  The
 * same library and the same records serve vsrv and QEMU alike: both call
 * glibc's ioctl(), and both fork or start threads after the constructor
 * (vsrv's first KVM_RUN is in its vsrv-vm child, QEMU's in a vCPU thread).
 */
#include <fcntl.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define SHIM_FD_MIN	900

static int out_fd = -1;
/* Per process: a forked child starts with its parent's flags, but only
 * the vsrv-vm child ever issues KVM_RUN, and the records carry the pid. */
static atomic_int seen_create, seen_run;

/* Time in each ioctl request until the first KVM_RUN. */
#define NR_REQS		64
static struct {
	unsigned long req;
	unsigned long count;
	long long ns;
} reqs[NR_REQS];
static unsigned nr_reqs;
static pthread_mutex_t reqs_lock = PTHREAD_MUTEX_INITIALIZER;

static long long ns_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void account(unsigned long req, long long ns)
{
	unsigned i;

	pthread_mutex_lock(&reqs_lock);
	for (i = 0; i < nr_reqs && reqs[i].req != req; i++)
		;
	if (i < NR_REQS) {
		if (i == nr_reqs)
			reqs[nr_reqs++].req = req;
		reqs[i].count++;
		reqs[i].ns += ns;
	}
	pthread_mutex_unlock(&reqs_lock);
}

static void dump_reqs(void)
{
	char line[96];

	pthread_mutex_lock(&reqs_lock);
	for (unsigned i = 0; i < nr_reqs && out_fd >= 0; i++) {
		int n = snprintf(line, sizeof(line), "ioctl %ld 0x%lx %lu %lld\n",
				 (long)getpid(), reqs[i].req, reqs[i].count, reqs[i].ns);

		if (n > 0 && write(out_fd, line, (size_t)n) < 0)
			out_fd = -1;
	}
	pthread_mutex_unlock(&reqs_lock);
}

static void record(const char *what)
{
	struct timespec ts;
	char line[96];
	int n;

	if (out_fd < 0)
		return;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	n = snprintf(line, sizeof(line), "%s %ld %lld.%09ld\n", what, (long)getpid(),
		     (long long)ts.tv_sec, ts.tv_nsec);
	if (n > 0 && write(out_fd, line, (size_t)n) < 0)
		out_fd = -1;
}

__attribute__((constructor)) static void shim_init(void)
{
	const char *path = getenv("VMM_SHIM_OUT"), *exec_ns;
	int fd;

	if (!path)
		return;
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	out_fd = fcntl(fd, F_DUPFD_CLOEXEC, SHIM_FD_MIN);
	close(fd);
	exec_ns = getenv("VMM_SHIM_EXEC_NS");
	if (exec_ns && out_fd >= 0) {
		long long ns = atoll(exec_ns);
		char line[96];
		int n = snprintf(line, sizeof(line), "exec %ld %lld.%09lld\n", (long)getpid(),
				 ns / 1000000000, ns % 1000000000);

		if (n > 0 && write(out_fd, line, (size_t)n) < 0)
			out_fd = -1;
		/* Not for the processes this one starts. */
		unsetenv("VMM_SHIM_EXEC_NS");
	}
	record("load");
}

/* glibc's prototype: int ioctl(int, unsigned long, ...).  Every KVM ioctl
 * takes at most one argument, a pointer or an integer. */
int ioctl(int fd, unsigned long req, ...)
{
	va_list ap;
	void *arg;
	long long t0 = 0;
	bool timed = out_fd >= 0 && !atomic_load(&seen_run);
	long r;

	va_start(ap, req);
	arg = va_arg(ap, void *);
	va_end(ap);
	/* The kernel reads an unsigned int: callers that pass an int (QEMU)
	 * sign-extend it. */
	req = (unsigned int)req;
	if (req == KVM_RUN && !atomic_exchange(&seen_run, 1)) {
		record("kvm_run");
		dump_reqs();
		timed = false;
	}
	if (timed)
		t0 = ns_now();
	/* The system call itself: no lookup of the next definition (dlsym
	 * allocates), and glibc's wrapper does no more than this. */
	r = syscall(SYS_ioctl, fd, req, arg);
	if (timed)
		account(req, ns_now() - t0);
	if (req == KVM_CREATE_VM && r >= 0 && !atomic_exchange(&seen_create, 1))
		record("create_vm");
	return (int)r;
}
