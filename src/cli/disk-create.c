// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vsrv disk create --type fixed|dynamic|diff --size SIZE [--block-size B]
 *                  [--parent P] [--azure] [--preallocate] FILE
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char usage[] =
	"vsrv disk create --type fixed|dynamic|diff [--size SIZE] [--block-size SIZE]\n"
	"                        [--parent FILE] [--azure] [--preallocate] FILE";

int disk_create(int argc, char **argv)
{
	enum { OPT_TYPE = 1, OPT_SIZE, OPT_BS, OPT_PARENT, OPT_AZURE, OPT_PREALLOC };
	static const struct option opts[] = {
		{ "type", required_argument, NULL, OPT_TYPE },
		{ "size", required_argument, NULL, OPT_SIZE },
		{ "block-size", required_argument, NULL, OPT_BS },
		{ "parent", required_argument, NULL, OPT_PARENT },
		{ "azure", no_argument, NULL, OPT_AZURE },
		{ "preallocate", no_argument, NULL, OPT_PREALLOC },
		DISK_COMMON_OPTS,
		{ NULL, 0, NULL, 0 },
	};
	struct vhd_create_opts o = { .type = VHD_TYPE_NONE, .warn = cli_warn_cb };
	struct vhd_error err = { 0 };
	bool have_size = false;
	uint64_t bs = 0;
	int c, r;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case OPT_TYPE:
			if (!strcmp(optarg, "fixed"))
				o.type = VHD_TYPE_FIXED;
			else if (!strcmp(optarg, "dynamic"))
				o.type = VHD_TYPE_DYNAMIC;
			else if (!strcmp(optarg, "diff") ||
				 !strcmp(optarg, "differencing"))
				o.type = VHD_TYPE_DIFF;
			else {
				cli_err("--type: '%s' is not fixed, dynamic or diff",
					optarg);
				return EXIT_USAGE;
			}
			break;
		case OPT_SIZE:
			if (cli_parse_size("--size", optarg, &o.size) < 0)
				return EXIT_USAGE;
			have_size = true;
			break;
		case OPT_BS:
			if (cli_parse_size("--block-size", optarg, &bs) < 0)
				return EXIT_USAGE;
			if (bs > UINT32_MAX) {
				cli_err("--block-size: %s is too large", optarg);
				return EXIT_USAGE;
			}
			o.block_size = (uint32_t)bs;
			break;
		case OPT_PARENT:
			o.parent = optarg;
			break;
		case OPT_AZURE:
			o.azure = true;
			break;
		case OPT_PREALLOC:
			o.preallocate = true;
			break;
		case OPT_HELP:
			printf("usage: %s\n", usage);
			return 0;
		default:
			if (disk_common_opt(c, &o.open_flags))
				break;
			return cli_usage(usage);
		}
	}
	if (optind != argc - 1)
		return cli_usage(usage);
	if (o.type == VHD_TYPE_NONE)
		o.type = o.parent ? VHD_TYPE_DIFF : VHD_TYPE_DYNAMIC;
	if (o.type == VHD_TYPE_DIFF) {
		if (!o.parent) {
			cli_err("%s: a differencing disk needs --parent", argv[optind]);
			return EXIT_USAGE;
		}
		if (have_size) {
			cli_err("%s: a differencing disk takes its size from its parent; drop --size",
				argv[optind]);
			return EXIT_USAGE;
		}
	} else {
		if (o.parent) {
			cli_err("%s: --parent needs --type diff", argv[optind]);
			return EXIT_USAGE;
		}
		if (!have_size) {
			cli_err("%s: --size is required for a %s disk", argv[optind],
				vhd_type_name(o.type));
			return EXIT_USAGE;
		}
	}
	if (bs && o.type == VHD_TYPE_FIXED) {
		cli_err("%s: fixed disks have no blocks; drop --block-size", argv[optind]);
		return EXIT_USAGE;
	}
	r = vhd_create(argv[optind], &o, &err);
	if (r < 0)
		return cli_vhd_fail(argv[optind], r, &err);
	return 0;
}
