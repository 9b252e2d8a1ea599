// SPDX-License-Identifier: GPL-2.0-or-later
#include "cli.h"
int disk_serve(int argc, char **argv) { cli_err("serve: not yet"); return 1; }
