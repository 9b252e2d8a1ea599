// SPDX-License-Identifier: GPL-2.0-or-later
/* Installing a compiled seccomp program, and its SIGSYS line (sandbox-trap.h). */
#include <errno.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#include "sandbox-trap.h"
/* The call names. */
#include "sandbox-filters.h"

static char who_[32];

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

	n = put_str(buf, n, who_);
	n = put_str(buf, n, ": seccomp: forbidden system call ");
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
	_exit(1);
}

int sandbox_install(const char *who, const struct sock_filter *filter, size_t len, char *err,
		    size_t errlen)
{
	struct sigaction sa = { .sa_sigaction = on_sigsys, .sa_flags = SA_SIGINFO };
	struct sock_fprog prog = { .len = (unsigned short)len,
				   .filter = (struct sock_filter *)filter };
	long r;

	snprintf(who_, sizeof(who_), "%s", who);
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGSYS, &sa, NULL) < 0 || prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		snprintf(err, errlen, "sandbox: %s", strerror(errno));
		return -errno;
	}
	/* Every thread: the VMM's I/O threads run already.  With TSYNC a
	 * positive return is a thread that could not take it. */
	r = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &prog);
	if (r != 0) {
		int e = r < 0 ? errno : EAGAIN;

		snprintf(err, errlen, "sandbox: installing the seccomp filter: %s%s", strerror(e),
			 r > 0 ? " (a thread could not take it)" : "");
		return -e;
	}
	return 0;
}
