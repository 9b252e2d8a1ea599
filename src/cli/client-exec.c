// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vsrv vm, vsrv net, vsrv console: handed to vsrv-client, the program that links
 * libcurl.  vsrv itself does not, because it is also the VMM: libcurl and
 * what it loads (OpenSSL, GSSAPI, LDAP, ...) cost every `vsrv run` tens of
 * milliseconds of dynamic linking at start (git keeps its HTTP transport
 * out of git for the same reason).  vsrv-client is beside vsrv in a build
 * tree, in VSRV_LIBEXECDIR once installed (vsrv_libexec_path()).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "../vmm/libexec.h"

int cmd_client(int argc, char **argv)
{
	char path[PATH_MAX + 32];
	char **args = calloc((size_t)argc + 2, sizeof(*args));

	if (!args)
		return 1;
	vsrv_libexec_path("vsrv-client", path, sizeof(path));
	args[0] = "vsrv-client";
	for (int i = 0; i < argc; i++)
		args[i + 1] = argv[i];
	args[argc + 1] = NULL;
	execv(path, args);
	cli_err("%s: %s", path, strerror(errno));
	return 1;
}
