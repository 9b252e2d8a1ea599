// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vsrv disk: the VHD toolkit's subcommands.
 */
#include <getopt.h>
#include <stdio.h>

#include "cli.h"

bool disk_common_opt(int c, unsigned *flags)
{
	switch (c) {
	case OPT_IGNORE_CHECKSUMS:
		*flags |= VHD_OPEN_IGNORE_CHECKSUMS;
		return true;
	case OPT_IGNORE_PARENT_ID:
		*flags |= VHD_OPEN_IGNORE_PARENT_ID;
		return true;
	}
	return false;
}

static const struct cli_cmd disk_cmds[] = {
	{ "create", disk_create, "create a fixed, dynamic or differencing disk" },
	{ "info", disk_info, "describe a disk and its parent chain" },
	{ "check", disk_check, "check a disk's structures, and repair them" },
	{ "convert", disk_convert, "convert between raw and VHD, flatten chains" },
	{ "commit", disk_commit, "merge a differencing disk into its parent" },
	{ "rebase", disk_rebase, "point a differencing disk at a new parent" },
	{ "compact", disk_compact, "drop all-zero blocks and reclaim space" },
	{ "resize", disk_resize, "grow a disk, or shrink an unallocated tail" },
	{ "map", disk_map, "show which ranges are allocated, and where" },
	{ "serve", disk_serve, "export a disk over NBD" },
	{ NULL, NULL, NULL },
};

int cmd_disk(int argc, char **argv)
{
	return cli_dispatch("vsrv disk", disk_cmds, argc, argv);
}
