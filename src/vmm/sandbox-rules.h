/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The seccomp allow-list as libseccomp rules, for sandbox-gen.c, which
 * compiles it at build time (sandbox-rules.c says why).
 */
#ifndef VSRV_SANDBOX_RULES_H
#define VSRV_SANDBOX_RULES_H

#include <seccomp.h>
#include <stddef.h>

/* Every SANDBOX_* bit (vm.h): the generator writes one program for each
 * combination, and sandbox_enter() refuses any other bit. */
#define SANDBOX_NEEDS_ALL	7u

/* The rules the VMM's filter allows for these needs, added to ctx. */
int sandbox_rules_build(scmp_filter_ctx ctx, unsigned needs);
/* vsrv-net's (src/net/net-helper-rules.c). */
int net_helper_rules_build(scmp_filter_ctx ctx);

/* For both: each call of calls[n] allowed whatever its arguments; what
 * the sanitizers' runtimes call, in a sanitizer build (else nothing). */
int sandbox_rules_allow(scmp_filter_ctx ctx, const int *calls, size_t n);
int sandbox_rules_sanitizers(scmp_filter_ctx ctx);
#define SANDBOX_ALLOW(ctx, calls) \
	sandbox_rules_allow(ctx, calls, sizeof(calls) / sizeof((calls)[0]))

#endif
