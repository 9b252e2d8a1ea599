// SPDX-License-Identifier: GPL-2.0-or-later
#include "cli.h"
int disk_convert(int argc, char **argv) { cli_err("convert: not yet"); return 1; }
int disk_commit(int argc, char **argv) { cli_err("commit: not yet"); return 1; }
int disk_rebase(int argc, char **argv) { cli_err("rebase: not yet"); return 1; }
int disk_compact(int argc, char **argv) { cli_err("compact: not yet"); return 1; }
int disk_resize(int argc, char **argv) { cli_err("resize: not yet"); return 1; }
