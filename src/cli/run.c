// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vsrv run: one VM in this process.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "../devices/devices.h"
#include "../vmm/vmm.h"

static const char usage[] =
	"vsrv run --kernel FILE [--initrd FILE] [--append STR] [--cpus N] [--memory SIZE]\n"
	"         [--on-reboot restart|exit] [--host-quirks auto|on|off]\n"
	"         [--console stdio|file:PATH|socket:PATH] [--console-buffer SIZE]\n"
	"         [--hugepages] [--memfd] [--test-device]\n"
	"The console is the serial port (COM1); on a terminal, Ctrl-A x quits.\n"
	"Output nobody reads yet is kept up to --console-buffer (default 1M).\n"
	"exit status: 0 the guest powered off; 3 it rebooted (--on-reboot exit);\n"
	"             4 it crashed; 1 the VMM failed; 2 usage.";

enum {
	OPT_KERNEL = 1, OPT_INITRD, OPT_APPEND, OPT_CPUS, OPT_MEMORY,
	OPT_ON_REBOOT, OPT_QUIRKS, OPT_HUGEPAGES, OPT_MEMFD, OPT_TESTDEV,
	OPT_CONSOLE, OPT_CONSOLE_BUFFER,
};

int cmd_run(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "kernel", required_argument, NULL, OPT_KERNEL },
		{ "initrd", required_argument, NULL, OPT_INITRD },
		{ "append", required_argument, NULL, OPT_APPEND },
		{ "cpus", required_argument, NULL, OPT_CPUS },
		{ "memory", required_argument, NULL, OPT_MEMORY },
		{ "on-reboot", required_argument, NULL, OPT_ON_REBOOT },
		{ "host-quirks", required_argument, NULL, OPT_QUIRKS },
		{ "hugepages", no_argument, NULL, OPT_HUGEPAGES },
		{ "memfd", no_argument, NULL, OPT_MEMFD },
		{ "test-device", no_argument, NULL, OPT_TESTDEV },
		{ "console", required_argument, NULL, OPT_CONSOLE },
		{ "console-buffer", required_argument, NULL, OPT_CONSOLE_BUFFER },
		{ "help", no_argument, NULL, OPT_HELP },
		{ NULL, 0, NULL, 0 },
	};
	struct vmm_config cfg = {
		.vm = { .nr_cpus = 1, .mem_size = 256ull << 20, .quirks = QUIRKS_AUTO },
		.on_reboot = ON_REBOOT_RESTART,
		.console = "stdio",
	};
	char *end;
	int c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case OPT_KERNEL:
			cfg.boot.kernel = optarg;
			break;
		case OPT_INITRD:
			cfg.boot.initrd = optarg;
			break;
		case OPT_APPEND:
			cfg.boot.cmdline = optarg;
			break;
		case OPT_CPUS: {
			unsigned long n = strtoul(optarg, &end, 10);

			if (*end || end == optarg || n < 1 || n > VM_MAX_CPUS) {
				cli_err("--cpus: '%s' is not a number from 1 to %d", optarg,
					VM_MAX_CPUS);
				return EXIT_USAGE;
			}
			cfg.vm.nr_cpus = (unsigned)n;
			break;
		}
		case OPT_MEMORY:
			if (cli_parse_size("--memory", optarg, &cfg.vm.mem_size) < 0)
				return EXIT_USAGE;
			/* Below 16 MiB no kernel fits; above 1 TiB is a typo. */
			if (cfg.vm.mem_size < (16ull << 20) || cfg.vm.mem_size > (1ull << 40) ||
			    cfg.vm.mem_size % 4096) {
				cli_err("--memory: %s is not a whole number of pages from 16M to 1T",
					optarg);
				return EXIT_USAGE;
			}
			break;
		case OPT_ON_REBOOT:
			if (!strcmp(optarg, "restart"))
				cfg.on_reboot = ON_REBOOT_RESTART;
			else if (!strcmp(optarg, "exit"))
				cfg.on_reboot = ON_REBOOT_EXIT;
			else {
				cli_err("--on-reboot: '%s' is not restart or exit", optarg);
				return EXIT_USAGE;
			}
			break;
		case OPT_QUIRKS:
			if (!strcmp(optarg, "auto"))
				cfg.vm.quirks = QUIRKS_AUTO;
			else if (!strcmp(optarg, "on"))
				cfg.vm.quirks = QUIRKS_ON;
			else if (!strcmp(optarg, "off"))
				cfg.vm.quirks = QUIRKS_OFF;
			else {
				cli_err("--host-quirks: '%s' is not auto, on or off", optarg);
				return EXIT_USAGE;
			}
			break;
		case OPT_HUGEPAGES:
			cfg.vm.hugepages = true;
			break;
		case OPT_MEMFD:
			cfg.vm.memfd = true;
			break;
		case OPT_TESTDEV:
			cfg.vm.test_device = true;
			break;
		case OPT_CONSOLE: {
			enum console_kind kind;
			const char *path;

			if (console_parse(optarg, &kind, &path) < 0) {
				cli_err("--console: '%s' is not stdio, file:PATH or socket:PATH",
					optarg);
				return EXIT_USAGE;
			}
			cfg.console = optarg;
			break;
		}
		case OPT_CONSOLE_BUFFER:
			if (cli_parse_size("--console-buffer", optarg, &cfg.console_buffer) < 0)
				return EXIT_USAGE;
			if (cfg.console_buffer < CONSOLE_BUFFER_MIN ||
			    cfg.console_buffer > CONSOLE_BUFFER_MAX) {
				cli_err("--console-buffer: %s is not a size from 4K to 1G", optarg);
				return EXIT_USAGE;
			}
			break;
		case OPT_HELP:
			printf("usage: %s\n", usage);
			return 0;
		default:
			return cli_usage(usage);
		}
	}
	if (optind != argc)
		return cli_usage(usage);
	if (!cfg.boot.kernel) {
		cli_err("run: --kernel is required");
		return EXIT_USAGE;
	}
	return vmm_run(&cfg);
}
