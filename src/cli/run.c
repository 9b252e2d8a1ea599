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
	"vsrv run [--config FILE] --kernel FILE [--initrd FILE] [--append STR] [--cpus N]\n"
	"         [--memory SIZE] [--boot auto|linux64|pvh] [--on-reboot restart|exit]\n"
	"         [--console [hvc,]stdio|file:PATH|socket:PATH] [--console-buffer SIZE]\n"
	"         [--port NAME=socket:PATH]... [--host-quirks auto|on|off] [--hugepages]\n"
	"         [--memfd] [--rng] [--halt-poll-ns NS] [--test-device]\n"
	"         [--disk path=FILE[,format=raw|vhd][,readonly=on][,undo=commit|keep|discard]\n"
	"                [,cache=writeback|none|unsafe]]...\n"
	"         [--net user[,hostfwd=tcp:127.0.0.1:2222-:22][,mac=MAC] | tap=NAME[,mac=MAC]\n"
	"                | bridge=NAME[,mac=MAC]]...\n"
	"         [--stats] [--dry-run] [--dump-acpi DIR]\n"
	"         [--control PATH] [--restore FILE] [--checkpoints DIR]\n"
	"--config: a VM described in JSON (docs/vm-config.md); options override it.\n"
	"--boot: the entry into the kernel: auto (a vmlinux's ELF entry; a bzImage's\n"
	"        64-bit entry, else its 32-bit one), linux64, or pvh (a vmlinux's PVH note).\n"
	"--console: where the serial port (COM1) goes; on a terminal, Ctrl-A x quits.\n"
	"        Output nobody reads yet is kept up to --console-buffer (default 1M).\n"
	"        hvc: a virtio-console whose hvc0 shares the console with COM1 and\n"
	"        takes its input (\"hvc\" alone is hvc,stdio).\n"
	"--port: a named port of the virtio-console (the guest's /dev/vport0pN), relayed\n"
	"        to one client at a time of a Unix socket vsrv listens on at PATH.\n"
	"--rng: a virtio-rng device (PCI), fed from the host's getrandom().\n"
	"--halt-poll-ns: how long KVM may spin on a halted vCPU before it sleeps,\n"
	"        0 to 1000000000 (default 0: not at all; spinning spends a host CPU).\n"
	"--disk: a virtio-blk device (PCI) on a raw file or a VHD, once per disk;\n"
	"        undo= runs the VM on an overlay that is merged into the disk, kept\n"
	"        beside it (NAME.undo.vhd) or thrown away when vsrv run ends.\n"
	"--net: a virtio-net NIC (repeatable): user networking (NAT, the guest at\n"
	"        10.0.2.15 by DHCP; hostfwd=[tcp|udp]:[HOSTADDR]:PORT-[GUESTADDR]:PORT,\n"
	"        repeatable), a tap device (made if missing), or a new tap on a bridge.\n"
	"        mac= defaults to 52:54:00:12:34:56 for the first NIC, :57 the next, ...\n"
	"--dry-run: load the kernel, initrd and tables, print where, and exit.\n"
	"--dump-acpi: write the ACPI tables, as the guest finds them, to DIR/*.dat.\n"
	"--control: a control socket at PATH for vsrv ctl (docs/control.md).\n"
	"--checkpoints: where vsrv ctl checkpoint keeps them (created if missing).\n"
	"--restore: start from a state vsrv ctl save wrote (the same vCPUs, memory and\n"
	"        devices; the kernel and the rest default to the saved VM's).\n"
	"SIGTERM, SIGINT or SIGHUP powers the VM off and ends vsrv with status 0.\n"
	"exit status: 0 the guest powered off; 3 it rebooted (--on-reboot exit);\n"
	"             4 it crashed; 1 the VMM failed (or made a system call its\n"
	"             seccomp sandbox forbids); 2 usage.";

enum {
	OPT_KERNEL = 1, OPT_INITRD, OPT_APPEND, OPT_CPUS, OPT_MEMORY,
	OPT_ON_REBOOT, OPT_QUIRKS, OPT_HUGEPAGES, OPT_MEMFD, OPT_TESTDEV, OPT_STATS,
	OPT_CONFIG, OPT_BOOT, OPT_DRY_RUN, OPT_CONSOLE, OPT_CONSOLE_BUFFER, OPT_RNG,
	OPT_DUMP_ACPI, OPT_DISK, OPT_NET, OPT_PORT, OPT_CONTROL, OPT_RESTORE,
	OPT_CHECKPOINTS, OPT_HALT_POLL,
};

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
	{ "rng", no_argument, NULL, OPT_RNG },
	{ "halt-poll-ns", required_argument, NULL, OPT_HALT_POLL },
	{ "disk", required_argument, NULL, OPT_DISK },
	{ "net", required_argument, NULL, OPT_NET },
	{ "test-device", no_argument, NULL, OPT_TESTDEV },
	{ "stats", no_argument, NULL, OPT_STATS },
	{ "config", required_argument, NULL, OPT_CONFIG },
	{ "boot", required_argument, NULL, OPT_BOOT },
	{ "dry-run", no_argument, NULL, OPT_DRY_RUN },
	{ "console", required_argument, NULL, OPT_CONSOLE },
	{ "console-buffer", required_argument, NULL, OPT_CONSOLE_BUFFER },
	{ "dump-acpi", required_argument, NULL, OPT_DUMP_ACPI },
	{ "port", required_argument, NULL, OPT_PORT },
	{ "control", required_argument, NULL, OPT_CONTROL },
	{ "restore", required_argument, NULL, OPT_RESTORE },
	{ "checkpoints", required_argument, NULL, OPT_CHECKPOINTS },
	{ "help", no_argument, NULL, OPT_HELP },
	{ NULL, 0, NULL, 0 },
};

/* One --disk: its value parsed in place.  The command line's disks
 * replace the file's (first is true for the first --disk). */
static int add_disk(struct vmm_config *cfg, char *arg, bool first)
{
	struct disk_error err = { 0 };
	struct disk_spec spec = { 0 };
	char *given = strdup(arg);
	const char *msg;

	if (first)
		cfg->nr_disks = 0;
	if (!given || cfg->nr_disks == VMM_DISKS_MAX) {
		cli_err("--disk %s: %s", arg, given ? "too many disks (16 at most)" :
			"out of memory");
		free(given);
		return EXIT_USAGE;
	}
	if (disk_spec_parse(arg, &spec, &err) < 0) {
		/* The disk layer's words, after the option that has them. */
		msg = strncmp(err.msg, "disk: ", 6) ? err.msg : err.msg + 6;
		cli_err("--disk %s: %s", given, msg);
		free(given);
		return EXIT_USAGE;
	}
	free(given);
	cfg->disks[cfg->nr_disks++] = (struct vmm_disk){ .spec = spec };
	return 0;
}

/* The options over what cfg holds (defaults, or a --config file):
 * 0, or the exit status to return now. */
static int apply_options(int argc, char **argv, struct vmm_config *cfg)
{
	bool disks = false, net_given = false, ports_given = false;
	char *end, why[300];
	int c;

	optind = 0;	/* a second pass over argv: GNU getopt starts afresh */
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case OPT_KERNEL:
			cfg->boot.kernel = optarg;
			break;
		case OPT_INITRD:
			cfg->boot.initrd = optarg;
			break;
		case OPT_APPEND:
			cfg->boot.cmdline = optarg;
			break;
		case OPT_CPUS: {
			unsigned long n = strtoul(optarg, &end, 10);

			if (*end || end == optarg || n < 1 || n > VM_MAX_CPUS) {
				cli_err("--cpus: '%s' is not a number from 1 to %d", optarg,
					VM_MAX_CPUS);
				return EXIT_USAGE;
			}
			cfg->vm.nr_cpus = (unsigned)n;
			break;
		}
		case OPT_HALT_POLL: {
			unsigned long long n = strtoull(optarg, &end, 10);

			if (*end || end == optarg || *optarg == '-' || n > VM_HALT_POLL_NS_MAX) {
				cli_err("--halt-poll-ns: '%s' is not a number from 0 to %u", optarg,
					VM_HALT_POLL_NS_MAX);
				return EXIT_USAGE;
			}
			cfg->vm.halt_poll_ns = (uint32_t)n;
			cfg->vm.halt_poll_given = true;
			break;
		}
		case OPT_MEMORY:
			if (cli_parse_size("--memory", optarg, &cfg->vm.mem_size) < 0)
				return EXIT_USAGE;
			if (cfg->vm.mem_size < VMM_MEMORY_MIN || cfg->vm.mem_size > VMM_MEMORY_MAX ||
			    cfg->vm.mem_size % 4096) {
				cli_err("--memory: %s is not a whole number of pages from 16M to 1T",
					optarg);
				return EXIT_USAGE;
			}
			break;
		case OPT_ON_REBOOT:
			if (!strcmp(optarg, "restart"))
				cfg->on_reboot = ON_REBOOT_RESTART;
			else if (!strcmp(optarg, "exit"))
				cfg->on_reboot = ON_REBOOT_EXIT;
			else {
				cli_err("--on-reboot: '%s' is not restart or exit", optarg);
				return EXIT_USAGE;
			}
			break;
		case OPT_QUIRKS:
			if (!strcmp(optarg, "auto"))
				cfg->vm.quirks = QUIRKS_AUTO;
			else if (!strcmp(optarg, "on"))
				cfg->vm.quirks = QUIRKS_ON;
			else if (!strcmp(optarg, "off"))
				cfg->vm.quirks = QUIRKS_OFF;
			else {
				cli_err("--host-quirks: '%s' is not auto, on or off", optarg);
				return EXIT_USAGE;
			}
			break;
		case OPT_BOOT:
			if (!strcmp(optarg, "auto"))
				cfg->boot.entry = BOOT_ENTRY_AUTO;
			else if (!strcmp(optarg, "linux64"))
				cfg->boot.entry = BOOT_ENTRY_LINUX64;
			else if (!strcmp(optarg, "pvh"))
				cfg->boot.entry = BOOT_ENTRY_PVH;
			else {
				cli_err("--boot: '%s' is not auto, linux64 or pvh", optarg);
				return EXIT_USAGE;
			}
			break;
		case OPT_DRY_RUN:
			cfg->boot.dry_run = true;
			break;
		case OPT_DUMP_ACPI:
			cfg->acpi_dump = optarg;
			break;
		case OPT_CONTROL:
			cfg->control = optarg;
			break;
		case OPT_CHECKPOINTS:
			cfg->checkpoints = optarg;
			break;
		case OPT_HUGEPAGES:
			cfg->vm.hugepages = true;
			break;
		case OPT_MEMFD:
			cfg->vm.memfd = true;
			break;
		case OPT_RNG:
			cfg->rng = true;
			break;
		case OPT_DISK:
			if (add_disk(cfg, optarg, !disks))
				return EXIT_USAGE;
			disks = true;
			break;
		case OPT_NET:
			/* --net replaces the file's "nics" as a whole. */
			if (!net_given)
				cfg->nr_nics = 0;
			net_given = true;
			if (cfg->nr_nics == NET_NICS_MAX) {
				cli_err("--net: more than %d NICs", NET_NICS_MAX);
				return EXIT_USAGE;
			}
			if (net_spec_parse(optarg, &cfg->nics[cfg->nr_nics], why, sizeof(why)) < 0) {
				cli_err("--net: %s", why);
				return EXIT_USAGE;
			}
			cfg->nr_nics++;
			break;
		case OPT_TESTDEV:
			cfg->vm.test_device = true;
			break;
		case OPT_STATS:
			cfg->stats = true;
			break;
		case OPT_CONFIG:
		case OPT_RESTORE:
			break;		/* read first, by cmd_run */
		case OPT_CONSOLE:
			if (console_parse_hvc(optarg, &cfg->hvc, &cfg->console) < 0) {
				cli_err("--console: '%s' is not stdio, file:PATH, socket:PATH, hvc or "
					"hvc,<one of these>", optarg);
				return EXIT_USAGE;
			}
			break;
		case OPT_PORT: {
			const char *eq = strchr(optarg, '=');

			if (!ports_given) {
				/* The command line's ports replace the file's. */
				cfg->nr_ports = 0;
				ports_given = true;
			}
			if (!eq || strncmp(eq + 1, "socket:", 7) || !eq[8]) {
				cli_err("--port: '%s' is not NAME=socket:PATH", optarg);
				return EXIT_USAGE;
			}
			if (vmm_port_add(cfg, optarg, (size_t)(eq - optarg), eq + 8, why,
					 sizeof(why)) < 0) {
				cli_err("--port: %s", why);
				return EXIT_USAGE;
			}
			break;
		}
		case OPT_CONSOLE_BUFFER:
			if (cli_parse_size("--console-buffer", optarg, &cfg->console_buffer) < 0)
				return EXIT_USAGE;
			if (cfg->console_buffer < CONSOLE_BUFFER_MIN ||
			    cfg->console_buffer > CONSOLE_BUFFER_MAX) {
				cli_err("--console-buffer: %s is not a size from 4K to 1G", optarg);
				return EXIT_USAGE;
			}
			break;
		case OPT_HELP:
			printf("usage: %s\n", usage);
			return -1;
		default:
			return cli_usage(usage);
		}
	}
	if (optind != argc)
		return cli_usage(usage);
	return 0;
}

int cmd_run(int argc, char **argv)
{
	struct vmm_config cfg = {
		.vm = { .nr_cpus = 1, .mem_size = 256ull << 20, .quirks = QUIRKS_AUTO },
		.on_reboot = ON_REBOOT_RESTART,
	};
	const char *config = NULL;
	char err[1024];
	int c, r;

	/* The files first, whatever the order on the command line: a saved
	 * state's configuration, then --config, then the options. */
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1)
		if (c == OPT_CONFIG)
			config = optarg;
		else if (c == OPT_RESTORE)
			cfg.restore = optarg;
	opterr = 1;
	if (cfg.restore && vm_restore_config(&cfg, err, sizeof(err)) < 0) {
		cli_err("%s", err);
		vmm_config_free(&cfg);
		return 1;
	}
	if (config && vmm_config_load(config, &cfg, err, sizeof(err)) < 0) {
		cli_err("%s", err);
		vmm_config_free(&cfg);
		return EXIT_USAGE;
	}
	r = apply_options(argc, argv, &cfg);
	if (r == 0 && cfg.restore && cfg.boot.dry_run) {
		cli_err("run: --dry-run and --restore do not go together");
		r = EXIT_USAGE;
	}
	if (r == 0 && cfg.restore && vm_restore_config_check(&cfg, err, sizeof(err)) < 0) {
		cli_err("%s", err);
		r = 1;
	}
	if (r == 0 && !cfg.boot.kernel) {
		cli_err(config ? "run: --kernel is required (or \"kernel\" in --config)" :
			"run: --kernel is required");
		r = EXIT_USAGE;
	}
	if (r == 0)
		r = vmm_run(&cfg);
	vmm_config_free(&cfg);
	return r < 0 ? 0 : r;
}
