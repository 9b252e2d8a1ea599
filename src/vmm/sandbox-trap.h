/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Installing a seccomp program compiled at build time (sandbox-gen.c) in
 * a process of vsrv's: the VM's (sandbox.c) or vsrv-net
 * (src/net/net-helper.c).  no_new_privs, then the program on every thread
 * (TSYNC); a call it does not allow raises SIGSYS, and the handler prints
 * one line naming it, "<who>: seccomp: forbidden system call 41
 * (socket)", with async-signal-safe calls only, and ends the process with
 * status 1.  (Killing outright would say nothing unless audit is
 * configured.)
 */
#ifndef VSRV_SANDBOX_TRAP_H
#define VSRV_SANDBOX_TRAP_H

#include <linux/filter.h>
#include <stddef.h>

/* err: one line.  who is kept (at most 31 bytes). */
int sandbox_install(const char *who, const struct sock_filter *prog, size_t len, char *err,
		    size_t errlen);

#endif
