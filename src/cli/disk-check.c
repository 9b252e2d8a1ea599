// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vsrv disk check [--repair] [--json] FILE
 *
 * The exit status tells scripts what they need without parsing: a disk
 * that is clean, one that was repaired, one that is still corrupt, and a
 * file that could not be checked at all.
 */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"

#define EXIT_CHECK_CORRUPT	3
#define EXIT_CHECK_REPAIRED	4

static const char usage[] =
	"vsrv disk check [--repair] [--json] [--ignore-checksums] [--ignore-parent-id] FILE\n"
	"\n"
	"Checks a disk's footer, header, block table, parent locators, leaked\n"
	"space and, for a differencing disk, the link to its parent.\n"
	"  --repair            fix what can be fixed safely (the file is rewritten)\n"
	"  --json              print the result as a JSON object\n"
	"  --ignore-checksums  accept structures whose only fault is the checksum\n"
	"  --ignore-parent-id  accept a parent whose unique id differs\n"
	"\n"
	"exit status: 0 clean, 4 repaired (every problem fixed), 3 corrupt\n"
	"(problems remain), 1 the file could not be checked, 2 usage";

struct check_out {
	bool json;
	json_t *problems;	/* --json */
	json_t *warnings;	/* --json */
};

static void on_problem(void *opaque, const char *msg, bool repaired)
{
	struct check_out *o = opaque;

	if (o->json)
		json_array_append_new(o->problems,
				      json_pack("{s:s, s:b}", "message", msg,
						"repaired", repaired));
	else
		printf("%s\n", msg);
}

static void on_warning(void *opaque, const char *msg)
{
	struct check_out *o = opaque;

	if (o->json)
		json_array_append_new(o->warnings, json_string(msg));
	else
		cli_warn_cb(NULL, msg);
}

static const char *result_name(enum vhd_check_result r)
{
	switch (r) {
	case VHD_CHECK_CLEAN:
		return "clean";
	case VHD_CHECK_REPAIRED:
		return "repaired";
	default:
		return "corrupt";
	}
}

static void print_summary(const char *path, bool repair,
			  const struct vhd_check_report *rep)
{
	unsigned n = rep->nr_problems;
	const char *s = n == 1 ? "" : "s";

	if (rep->result == VHD_CHECK_CLEAN)
		printf("%s: clean\n", path);
	else if (rep->result == VHD_CHECK_REPAIRED)
		printf("%s: %u problem%s, %u repaired\n", path, n, s,
		       rep->nr_repaired);
	else if (!repair)
		printf("%s: %u problem%s, corrupt; run vsrv disk check --repair\n",
		       path, n, s);
	else
		printf("%s: %u problem%s, %u repaired, corrupt\n", path, n, s,
		       rep->nr_repaired);
}

int disk_check(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "repair", no_argument, NULL, 'r' },
		{ "json", no_argument, NULL, OPT_JSON },
		DISK_COMMON_OPTS,
		{ NULL, 0, NULL, 0 },
	};
	struct check_out out = { .json = false };
	struct vhd_check_report rep = { .problem = on_problem, .opaque = &out };
	struct vhd_open_opts oo = { .warn = on_warning, .warn_opaque = &out };
	struct vhd_error err = { 0 };
	bool repair = false;
	const char *path;
	int c, r;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'r') {
			repair = true;
		} else if (c == OPT_JSON) {
			out.json = true;
		} else if (c == OPT_HELP) {
			printf("usage: %s\n", usage);
			return 0;
		} else if (!disk_common_opt(c, &oo.flags)) {
			return cli_usage(usage);
		}
	}
	if (optind != argc - 1)
		return cli_usage(usage);
	path = argv[optind];
	if (out.json) {
		out.problems = json_array();
		out.warnings = json_array();
	}
	r = vhd_check(path, &oo, repair, &rep, &err);
	if (r < 0) {
		/* Problems found before the failure are still worth seeing. */
		if (out.json) {
			json_decref(out.problems);
			json_decref(out.warnings);
		}
		return cli_vhd_fail(path, r, &err);
	}
	if (out.json) {
		json_t *o = json_pack("{s:s, s:s, s:i, s:i, s:I, s:o, s:o}",
				      "file", path,
				      "result", result_name(rep.result),
				      "problems_found", (int)rep.nr_problems,
				      "problems_repaired", (int)rep.nr_repaired,
				      "leaked_bytes", (json_int_t)rep.leaked_bytes,
				      "problems", out.problems,
				      "warnings", out.warnings);

		json_dumpf(o, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		putchar('\n');
		json_decref(o);
	} else {
		print_summary(path, repair, &rep);
	}
	if (rep.result == VHD_CHECK_CLEAN)
		return 0;
	return rep.result == VHD_CHECK_REPAIRED ? EXIT_CHECK_REPAIRED
						: EXIT_CHECK_CORRUPT;
}
