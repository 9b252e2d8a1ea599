// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Confinement: once a VM is set up, before its first KVM_RUN, the VMM
 * gives up every system call it no longer needs.  The guest is untrusted
 * and the device code that parses what it writes is the VMM's largest
 * attack surface; a bug there must not become a shell, a socket or a
 * write to the host's files.
 *
 * no_new_privs, then a seccomp allow-list: sandbox-rules.c lists the
 * calls and why, and the build compiles it to BPF (sandbox-gen.c,
 * sandbox-filters.h), one program for each set of SANDBOX_* needs, which
 * this file loads.  A call outside it raises SIGSYS (SECCOMP_RET_TRAP) and
 * the handler prints one line naming the call, "vsrv: seccomp: forbidden
 * system call 41 (socket)", with async-signal-safe calls only, and ends
 * the process with status 1.  (Killing outright would say nothing unless
 * audit is configured.)
 */
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "sandbox-filters.h"
#include "sandbox-rules.h"
#include "vm.h"

static int test_hook;	/* VSRV_TEST_FORBIDDEN_SYSCALL: 1 main, 2 vCPU */

static size_t put_str(char *buf, size_t n, const char *s)
{
	while (*s && n < 160)
		buf[n++] = *s++;
	return n;
}

static size_t put_num(char *buf, size_t n, unsigned long v, unsigned base)
{
	char tmp[24];
	int k = 0;

	do {
		tmp[k++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v);
	while (k)
		buf[n++] = tmp[--k];
	return n;
}

static void on_sigsys(int sig, siginfo_t *si, void *uc_)
{
	ucontext_t *uc = uc_;
	char buf[200];
	size_t n = 0;
	int nr = si->si_syscall;

	n = put_str(buf, n, "vsrv: seccomp: forbidden system call ");
	n = put_num(buf, n, (unsigned long)(nr < 0 ? 0 : nr), 10);
	n = put_str(buf, n, " (");
	n = put_str(buf, n, nr >= 0 && nr < SANDBOX_NAMES_MAX && sandbox_names[nr][0] ?
		    sandbox_names[nr] : "?");
	if (nr == SYS_ioctl) {
		n = put_str(buf, n, " 0x");
		n = put_num(buf, n, (unsigned long)uc->uc_mcontext.gregs[REG_RSI], 16);
	}
	n = put_str(buf, n, ")\n");
	if (write(STDERR_FILENO, buf, n) < 0)
		n = 0;
	_exit(VM_STATUS_ERROR);
}

int sandbox_enter(unsigned needs, char *err, size_t errlen)
{
	struct sigaction sa = { .sa_sigaction = on_sigsys, .sa_flags = SA_SIGINFO };
	const char *hook = getenv("VSRV_TEST_FORBIDDEN_SYSCALL");
	struct sock_fprog prog;
	long r;

	if (needs & ~SANDBOX_NEEDS_ALL) {
		snprintf(err, errlen, "sandbox: no filter for needs 0x%x", needs);
		return -EINVAL;
	}
	prog.filter = (struct sock_filter *)&sandbox_filter[sandbox_filter_at[needs]];
	prog.len = (unsigned short)(sandbox_filter_at[needs + 1] - sandbox_filter_at[needs]);
	/* What glibc sets up lazily by opening files must be set up now: the
	 * time zone, which the first gmtime_r() or timegm() in the process
	 * (the RTC's, src/devices/rtc.c) would read from /etc/localtime. */
	tzset();
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGSYS, &sa, NULL) < 0 || prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		snprintf(err, errlen, "sandbox: %s", strerror(errno));
		return -errno;
	}
	/* Every thread: the I/O threads run already.  With TSYNC a positive
	 * return is a thread that could not take it. */
	r = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &prog);
	if (r != 0) {
		int e = r < 0 ? errno : EAGAIN;

		snprintf(err, errlen, "sandbox: installing the seccomp filter: %s%s", strerror(e),
			 r > 0 ? " (a thread could not take it)" : "");
		return -e;
	}
	if (hook)
		test_hook = !strcmp(hook, "vcpu") ? 2 : 1;
	sandbox_test_hook(false);
	return 0;
}

void sandbox_test_hook(bool vcpu)
{
	/* A test proving the filter kills: a call no VMM makes. */
	if (test_hook == (vcpu ? 2 : 1))
		socket(AF_UNIX, SOCK_STREAM, 0);
}
