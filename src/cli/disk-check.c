// SPDX-License-Identifier: GPL-2.0-or-later
#include "cli.h"
int disk_check(int argc, char **argv) { cli_err("check: not yet"); return 1; }
