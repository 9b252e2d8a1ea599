// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vsrv vm, vsrv net, vsrv console: handed to vsrv-client, the program that links
 * libcurl.  vsrv itself does not, because it is also the VMM: libcurl and
 * what it loads (OpenSSL, GSSAPI, LDAP, ...) cost every `vsrv run` tens of
 * milliseconds of dynamic linking at start (git keeps its HTTP transport
 * out of git for the same reason).  vsrv-client is beside vsrv in a build
 * tree, in VSRV_LIBEXECDIR once installed.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

int cmd_client(int argc, char **argv)
{
	char exe[PATH_MAX], path[PATH_MAX + 32];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	char **args = calloc((size_t)argc + 2, sizeof(*args));

	path[0] = 0;
	if (n > 0) {
		exe[n] = 0;
		if (strrchr(exe, '/')) {
			*strrchr(exe, '/') = 0;
			snprintf(path, sizeof(path), "%s/vsrv-client", exe);
		}
	}
	if (!path[0] || access(path, X_OK) < 0)
		snprintf(path, sizeof(path), "%s/vsrv-client", VSRV_LIBEXECDIR);
	if (!args)
		return 1;
	args[0] = "vsrv-client";
	for (int i = 0; i < argc; i++)
		args[i + 1] = argv[i];
	args[argc + 1] = NULL;
	execv(path, args);
	cli_err("%s: %s", path, strerror(errno));
	return 1;
}
