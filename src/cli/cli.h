/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The vsrv command: shared helpers for subcommands.  Every error reaches
 * the user as one line "vsrv: <thing>: <problem>" and a non-zero exit.
 */
#ifndef VSRV_CLI_H
#define VSRV_CLI_H

#include <stdbool.h>
#include <stdint.h>

#include "vhd.h"

/* Exit statuses shared by all subcommands. */
#define EXIT_USAGE	2

struct cli_cmd {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
};

void cli_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void cli_warn_cb(void *opaque, const char *msg);
/* Prints the warnings held so far (main does at a successful exit). */
void cli_flush_warnings(void);
int cli_usage(const char *usage);
int cli_dispatch(const char *prog, const struct cli_cmd *cmds, int argc,
		 char **argv);
int cli_parse_size(const char *what, const char *s, uint64_t *out);
/* Prints a vhd_error (or errno text) as one line and returns 1. */
int cli_vhd_fail(const char *path, int r, const struct vhd_error *err);

/* Options every disk subcommand shares. */
enum {
	OPT_IGNORE_CHECKSUMS = 0x1000,
	OPT_IGNORE_PARENT_ID,
	OPT_JSON,
	OPT_HELP,
};
#define DISK_COMMON_OPTS \
	{ "ignore-checksums", no_argument, NULL, OPT_IGNORE_CHECKSUMS }, \
	{ "ignore-parent-id", no_argument, NULL, OPT_IGNORE_PARENT_ID }, \
	{ "help", no_argument, NULL, OPT_HELP }
/* Applies a common option to open flags; false if `c` is not one. */
bool disk_common_opt(int c, unsigned *flags);

int cmd_disk(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_ctl(int argc, char **argv);
/* vsrv vm, vsrv net: run vsrv-client (client-exec.c). */
int cmd_client(int argc, char **argv);
int disk_create(int argc, char **argv);
int disk_info(int argc, char **argv);
int disk_map(int argc, char **argv);
int disk_check(int argc, char **argv);
int disk_convert(int argc, char **argv);
int disk_commit(int argc, char **argv);
int disk_rebase(int argc, char **argv);
int disk_compact(int argc, char **argv);
int disk_resize(int argc, char **argv);
int disk_serve(int argc, char **argv);

#endif
