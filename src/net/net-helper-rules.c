// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vsrv-net's seccomp allow-list (net-helper.c installs it), compiled at
 * build time with the VMM's (src/vmm/sandbox-gen.c, sandbox-filters.h:
 * net_helper_filter): what libslirp calls to be the guest's TCP/IP stack,
 * and what the helper's loop calls.  No new process, no file written.
 */
#include <fcntl.h>
#include <sys/ioctl.h>

#include "../vmm/sandbox-rules.h"

/*
 * libslirp 4.7's calls, seen with strace, and why; with the loop's own.
 */
static const int helper_calls[] = {
	SCMP_SYS(socket),			/* the guest's TCP, UDP and ping sockets */
	SCMP_SYS(connect),			/* its TCP connections out, */
	SCMP_SYS(getpeername),			/* and whether one has been made */
	SCMP_SYS(accept),			/* a connection to a port forward */
	SCMP_SYS(setsockopt), SCMP_SYS(getsockopt),	/* TCP_NODELAY, IP_TTL; SO_ERROR */
	SCMP_SYS(sendto), SCMP_SYS(recvfrom),	/* send() and recv() are these */
	SCMP_SYS(recvmsg),			/* MSG_ERRQUEUE: ICMP errors for UDP */
	SCMP_SYS(shutdown),			/* a half-closed TCP connection */
	SCMP_SYS(fcntl),			/* O_NONBLOCK on each new socket */
	SCMP_SYS(close),
	/* The DNS forwarder at 10.0.2.3 finds the host's resolver in
	 * /etc/resolv.conf (openat below), and looks again when the file
	 * changes: stat, and fopen's fstat; read. */
	SCMP_SYS(newfstatat), SCMP_SYS(fstat), SCMP_SYS(read),
	/* The loop: frames from the VMM, to it; slirp's timers. */
	SCMP_SYS(poll), SCMP_SYS(recvmmsg), SCMP_SYS(sendmsg),
	SCMP_SYS(clock_gettime),
	SCMP_SYS(write),			/* standard error */
	SCMP_SYS(mmap), SCMP_SYS(munmap),	/* malloc (GLib's too) */
	SCMP_SYS(mprotect), SCMP_SYS(madvise), SCMP_SYS(mremap), SCMP_SYS(brk),
	SCMP_SYS(getrandom),			/* GLib's random numbers (TCP's ISNs) */
	SCMP_SYS(futex), SCMP_SYS(sched_yield),	/* GLib's locks; the sanitizers' at exit */
	SCMP_SYS(rt_sigreturn), SCMP_SYS(rt_sigprocmask),
	/* A poll() stopped by SIGSTOP (Ctrl-Z on vsrv run's terminal stops
	 * its process group, this helper too) resumes through this call at
	 * SIGCONT. */
	SCMP_SYS(restart_syscall),
	SCMP_SYS(getpid), SCMP_SYS(gettid),	/* GLib's, sanitizers' messages */
	SCMP_SYS(exit), SCMP_SYS(exit_group),
};

int net_helper_rules_build(scmp_filter_ctx ctx)
{
	int r = SANDBOX_ALLOW(ctx, helper_calls);

	/* Reading only (/etc/resolv.conf): no file is made or written.  The
	 * path is beyond a filter: a helper taken over could read what its
	 * user may, but not write it. */
	if (r >= 0)
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(openat), 1,
				     SCMP_A2(SCMP_CMP_MASKED_EQ,
					     O_ACCMODE | O_CREAT | O_TRUNC | O_APPEND | O_TMPFILE,
					     O_RDONLY));
	/* FIONREAD: the size of a UDP datagram waiting. */
	if (r >= 0)
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
				     SCMP_A1(SCMP_CMP_EQ, FIONREAD));
	if (r >= 0)
		r = sandbox_rules_sanitizers(ctx);
	return r;
}
