// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vsrv: the command-line entry point.  Subcommands live in their own files.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/*
 * Warnings are held until the command has succeeded: a command that fails
 * says so in exactly one line, and what led up to it (a footer read from
 * its copy, say) is in that line's problem or irrelevant to it.
 */
static struct {
	char *text;
	size_t len;
} warnings;

void cli_warn_cb(void *opaque, const char *msg)
{
	size_t n = strlen(msg) + sizeof("vsrv: warning: \n");
	char *t = realloc(warnings.text, warnings.len + n);

	if (!t)
		return;
	warnings.text = t;
	warnings.len += (size_t)snprintf(t + warnings.len, n, "vsrv: warning: %s\n", msg);
}

void cli_flush_warnings(void)
{
	if (warnings.len)
		fwrite(warnings.text, 1, warnings.len, stderr);
	free(warnings.text);
	warnings.text = NULL;
	warnings.len = 0;
}

int cli_parse_size(const char *what, const char *s, uint64_t *out)
{
	int r = vhd_parse_size(s, out);

	if (r < 0) {
		cli_err("%s: '%s' is not a size (a number with an optional K, M, G or T suffix)",
			what, s);
		return -1;
	}
	return 0;
}

int cli_vhd_fail(const char *path, int r, const struct vhd_error *err)
{
	if (err && err->code && err->msg[0])
		cli_err("%s", err->msg);
	else
		cli_err("%s: %s", path, strerror(-r));
	return 1;
}

int cli_dispatch(const char *prog, const struct cli_cmd *cmds, int argc,
		 char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "help") || !strcmp(argv[1], "--help") ||
	    !strcmp(argv[1], "-h")) {
		FILE *o = argc < 2 ? stderr : stdout;

		fprintf(o, "usage: %s COMMAND [ARGS]\n\ncommands:\n", prog);
		for (const struct cli_cmd *c = cmds; c->name; c++)
			fprintf(o, "  %-10s %s\n", c->name, c->summary);
		return argc < 2 ? EXIT_USAGE : 0;
	}
	for (const struct cli_cmd *c = cmds; c->name; c++)
		if (!strcmp(argv[1], c->name))
			return c->fn(argc - 1, argv + 1);
	cli_err("unknown command '%s' (see '%s help')", argv[1], prog);
	return EXIT_USAGE;
}

static int cmd_version(int argc, char **argv)
{
	printf("vsrv %s\n", VSRV_VERSION);
	return 0;
}

static const struct cli_cmd commands[] = {
	{ "console", cmd_client, "a vsrvd VM's serial console in the terminal (Ctrl-] leaves)" },
	{ "ctl", cmd_ctl, "control a running VM through its control socket" },
	{ "disk", cmd_disk, "create, inspect, check, convert and serve VHD disks" },
	{ "job", cmd_client, "vsrvd's disk jobs: convert, commit, compact; list, show, wait, cancel" },
	{ "net", cmd_client, "vsrvd's virtual networks: list, show, create, delete" },
	{ "run", cmd_run, "run a virtual machine in this process" },
	{ "version", cmd_version, "print the version" },
	{ "vm", cmd_client, "vsrvd's VMs: list, show, create, start, power-off, delete, ..." },
	{ NULL, NULL, NULL },
};

int main(int argc, char **argv)
{
	int r;

	if (argc == 2 && !strcmp(argv[1], "--version"))
		return cmd_version(argc, argv);
	r = cli_dispatch("vsrv", commands, argc, argv);
	if (r == 0)
		cli_flush_warnings();
	free(warnings.text);
	return r;
}
