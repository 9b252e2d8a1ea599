// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * How every vsrv program reports: one line "vsrv: <thing>: <problem>" for
 * an error, the usage on standard error.  Shared by vsrv and vsrv-client.
 */
#include <stdarg.h>
#include <stdio.h>

#include "cli.h"

void cli_err(const char *fmt, ...)
{
	va_list ap;

	fputs("vsrv: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int cli_usage(const char *usage)
{
	fprintf(stderr, "usage: %s\n", usage);
	return EXIT_USAGE;
}
