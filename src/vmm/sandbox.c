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
 * this file loads (sandbox-trap.c).  A call outside it raises SIGSYS
 * (SECCOMP_RET_TRAP) and the handler prints one line naming the call,
 * "vsrv: seccomp: forbidden system call 41 (socket)", and ends the process
 * with status 1.
 *
 * The VMM makes no socket: user networking's libslirp, which does, runs
 * in vsrv-net under a filter of its own (src/net/net-helper-rules.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "sandbox-filters.h"
#include "sandbox-rules.h"
#include "sandbox-trap.h"
#include "vm.h"

static int test_hook;	/* VSRV_TEST_FORBIDDEN_SYSCALL: 1 main, 2 vCPU */

int sandbox_enter(unsigned needs, char *err, size_t errlen)
{
	const char *hook = getenv("VSRV_TEST_FORBIDDEN_SYSCALL");
	int r;

	if (needs & ~SANDBOX_NEEDS_ALL) {
		snprintf(err, errlen, "sandbox: no filter for needs 0x%x", needs);
		return -EINVAL;
	}
	/* What glibc sets up lazily by opening files must be set up now: the
	 * time zone, which the first gmtime_r() or timegm() in the process
	 * (the RTC's, src/devices/rtc.c) would read from /etc/localtime. */
	tzset();
	r = sandbox_install("vsrv", &sandbox_filter[sandbox_filter_at[needs]],
			    sandbox_filter_at[needs + 1] - sandbox_filter_at[needs], err, errlen);
	if (r < 0)
		return r;
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
