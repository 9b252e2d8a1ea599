// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vsrv-client: `vsrv vm`, `vsrv net`, `vsrv console` and `vsrv job`, which
 * vsrv runs through this program (client-exec.c says why).  argv:
 * vsrv-client vm|net|console|job ARGS...
 */
#include <string.h>

#include "cli.h"
#include "client.h"

int main(int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "vm"))
		return client_vm_main(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "net"))
		return client_net_main(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "console"))
		return client_console_main(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "job"))
		return client_job_main(argc - 1, argv + 1);
	return cli_usage("vsrv vm|net|console|job ... (vsrv-client is run by vsrv)");
}
