/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The seccomp allow-list as libseccomp rules, for sandbox-gen.c, which
 * compiles it at build time (sandbox-rules.c says why).
 */
#ifndef VSRV_SANDBOX_RULES_H
#define VSRV_SANDBOX_RULES_H

#include <seccomp.h>

/* Every SANDBOX_* bit (vm.h): the generator writes one program for each
 * combination, and sandbox_enter() refuses any other bit. */
#define SANDBOX_NEEDS_ALL	7u

/* The rules the VMM's filter allows for these needs, added to ctx. */
int sandbox_rules_build(scmp_filter_ctx ctx, unsigned needs);

#endif
