// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * sandbox-gen OUT: the VMM's seccomp filters, compiled at build time
 * (sandbox-rules.c says why), written as C to OUT (sandbox-filters.h):
 *
 *   sandbox_filter[]           every program's instructions, one after another
 *   sandbox_filter_at[N + 1]   where the program for needs N starts, and the end
 *   sandbox_names[NR]          each system call's name by number, for the
 *                              SIGSYS handler's line (it may not allocate)
 *   net_helper_filter[]        vsrv-net's program (src/net/net-helper-rules.c)
 *
 * Each is marked unused: the VMM and vsrv-net each take what is theirs.
 *
 * Each program is what libseccomp would have loaded at run time: default
 * action SECCOMP_RET_TRAP, another architecture's calls killing the
 * process.  Thread synchronisation (TSYNC) is a flag of the seccomp() call,
 * not of the program: sandbox-trap.c passes it.  libseccomp's API level is
 * pinned (3: SECCOMP_RET_KILL_PROCESS, Linux 4.14) so that the programs do
 * not depend on the kernel of the machine that builds them.
 */
#include <errno.h>
#include <linux/filter.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sandbox-rules.h"

#define NAMES_MAX	512

static int fail(const char *what, int r)
{
	fprintf(stderr, "sandbox-gen: %s: %s\n", what, strerror(r < 0 ? -r : r));
	return 1;
}

/* The program rules() makes for needs, exported by libseccomp through a
 * file (it writes to a descriptor); *len instructions in *out, malloc'ed. */
static int compile(int (*rules)(scmp_filter_ctx ctx, unsigned needs), unsigned needs,
		   struct sock_filter **out, size_t *len)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_TRAP);
	size_t cap = 4096, got = 0;
	uint8_t *buf = malloc(cap);
	FILE *tmp = tmpfile();
	int r;

	if (!ctx || !buf || !tmp)
		return -ENOMEM;
	r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
	if (r >= 0)
		r = rules(ctx, needs);
	if (r >= 0)
		r = seccomp_export_bpf(ctx, fileno(tmp));
	seccomp_release(ctx);
	if (r < 0)
		return r;
	rewind(tmp);
	for (size_t n; (n = fread(buf + got, 1, cap - got, tmp)) > 0;) {
		got += n;
		if (got == cap && !(buf = realloc(buf, cap *= 2)))
			return -ENOMEM;
	}
	fclose(tmp);
	if (!got || got % sizeof(struct sock_filter))
		return -EINVAL;
	*out = (struct sock_filter *)buf;
	*len = got / sizeof(struct sock_filter);
	return 0;
}

static int net_helper_rules(scmp_filter_ctx ctx, unsigned needs)
{
	return net_helper_rules_build(ctx);
}

static void put_prog(FILE *f, const struct sock_filter *prog, size_t len)
{
	for (size_t i = 0; i < len; i++)
		fprintf(f, "\t{ 0x%04x, %u, %u, 0x%08x },\n", prog[i].code, prog[i].jt,
			prog[i].jf, prog[i].k);
}

int main(int argc, char **argv)
{
	size_t at[SANDBOX_NEEDS_ALL + 2] = { 0 };
	FILE *f;
	int r;

	if (argc != 2) {
		fprintf(stderr, "usage: sandbox-gen OUT\n");
		return 2;
	}
	r = seccomp_api_set(3);
	if (r < 0)
		return fail("seccomp_api_set(3)", r);
	f = fopen(argv[1], "w");
	if (!f)
		return fail(argv[1], errno);
	fprintf(f, "/* Written by sandbox-gen (src/vmm/sandbox-gen.c) from sandbox-rules.c. */\n"
		   "#include <linux/filter.h>\n\n"
		   "#define SANDBOX_UNUSED __attribute__((unused))\n"
		   "static const struct sock_filter sandbox_filter[] SANDBOX_UNUSED = {\n");
	for (unsigned needs = 0; needs <= SANDBOX_NEEDS_ALL; needs++) {
		struct sock_filter *prog;
		size_t len;

		r = compile(sandbox_rules_build, needs, &prog, &len);
		if (r < 0)
			return fail("compiling the filter", r);
		fprintf(f, "\t/* needs %u: %zu instructions */\n", needs, len);
		put_prog(f, prog, len);
		at[needs + 1] = at[needs] + len;
		free(prog);
	}
	fprintf(f, "};\n\nstatic const unsigned short sandbox_filter_at[] SANDBOX_UNUSED = {");
	for (unsigned i = 0; i <= SANDBOX_NEEDS_ALL + 1; i++)
		fprintf(f, "%s%zu", i ? ", " : " ", at[i]);
	fprintf(f, " };\n\n#define SANDBOX_NAMES_MAX %d\n"
		   "static const char sandbox_names[SANDBOX_NAMES_MAX][24] SANDBOX_UNUSED = {\n",
		NAMES_MAX);
	for (int i = 0; i < NAMES_MAX; i++) {
		char *s = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, i);

		if (s && strlen(s) < 24)
			fprintf(f, "\t[%d] = \"%s\",\n", i, s);
		free(s);
	}
	fprintf(f, "};\n\nstatic const struct sock_filter net_helper_filter[] SANDBOX_UNUSED = {\n");
	{
		struct sock_filter *prog;
		size_t len;

		r = compile(net_helper_rules, 0, &prog, &len);
		if (r < 0)
			return fail("compiling vsrv-net's filter", r);
		put_prog(f, prog, len);
		free(prog);
	}
	fprintf(f, "};\n");
	if (fclose(f) != 0)
		return fail(argv[1], errno);
	return 0;
}
