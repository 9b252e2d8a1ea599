// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The long operations: convert, commit, rebase, compact, resize.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

/*
 * Ctrl-C or SIGTERM during a long operation cancels it through the progress
 * callback, so that libvhd leaves every file consistent (and removes a
 * half-written conversion) instead of dying mid-write.
 */
static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	interrupted = sig;
}

static void catch_signals(void)
{
	struct sigaction sa = { .sa_handler = on_signal };

	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
}

struct progress {
	bool show;
	int last;
};

/* --progress: a percentage on stderr, redrawn in place on a terminal. */
static int show_progress(void *opaque, uint64_t done, uint64_t total)
{
	struct progress *p = opaque;
	int pct = total ? (int)(done * 100 / total) : 100;

	if (interrupted)
		return 1;
	if (p->show && pct != p->last) {
		p->last = pct;
		fprintf(stderr, isatty(2) ? "\r    (%3d%%)" : "    (%3d%%)\n", pct);
		if (pct == 100 && isatty(2))
			fputc('\n', stderr);
	}
	return 0;
}

/* The progress callback every long operation gets. */
static const struct vhd_progress *progress_init(struct vhd_progress *pr,
						struct progress *p, bool show)
{
	p->show = show;
	p->last = -1;
	pr->fn = show_progress;
	pr->opaque = p;
	catch_signals();
	return pr;
}

enum { OPT_TO = 1, OPT_BS, OPT_PROGRESS, OPT_FORCE, OPT_KEEP, OPT_SYNC };

static int parse(int argc, char **argv, const struct option *extra,
		 int (*take)(int c, void *ctx), void *ctx, unsigned *flags,
		 bool *progress, const char *usage)
{
	struct option opts[16] = {
		{ "progress", no_argument, NULL, OPT_PROGRESS },
		DISK_COMMON_OPTS,
	};
	int n = 4, c;

	for (; extra && extra->name; extra++)
		opts[n++] = *extra;
	while ((c = getopt_long(argc, argv, "p", opts, NULL)) != -1) {
		if (c == OPT_PROGRESS || c == 'p') {
			*progress = true;
		} else if (c == OPT_HELP) {
			printf("usage: %s\n", usage);
			exit(0);
		} else if (!disk_common_opt(c, flags) && (!take || take(c, ctx) < 0)) {
			return -1;
		}
	}
	return 0;
}

struct convert_args {
	const char *to;
	bool sync;
	uint64_t bs;
	int bad;
};

static int take_convert(int c, void *p)
{
	struct convert_args *a = p;

	if (c == OPT_TO) {
		a->to = optarg;
		return 0;
	}
	if (c == OPT_SYNC) {
		a->sync = true;
		return 0;
	}
	if (c == OPT_BS) {
		if (cli_parse_size("--block-size", optarg, &a->bs) < 0 || a->bs > UINT32_MAX) {
			a->bad = 1;
			return -1;
		}
		return 0;
	}
	return -1;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);

	return a >= b && !strcasecmp(s + a - b, suffix);
}

int disk_convert(int argc, char **argv)
{
	static const char usage[] =
		"vsrv disk convert [--to raw|fixed|dynamic] [--block-size SIZE] [--progress] [--sync]\n"
		"                         [--ignore-checksums] [--ignore-parent-id] SRC DST\n"
		"  SRC is a raw image or any VHD (a differencing chain is flattened);\n"
		"  DST must not exist; without --to, a DST ending in .vhd is dynamic, else raw.\n"
		"  --sync waits until DST is on disk (as qemu-img and cp, convert does not).";
	static const struct option extra[] = {
		{ "to", required_argument, NULL, OPT_TO },
		{ "block-size", required_argument, NULL, OPT_BS },
		{ "sync", no_argument, NULL, OPT_SYNC },
		{ NULL, 0, NULL, 0 },
	};
	struct convert_args a = { 0 };
	struct vhd_convert_opts o = { .warn = cli_warn_cb };
	struct vhd_error err = { 0 };
	struct vhd_progress pr;
	bool progress = false;
	struct progress prog;
	int r;

	if (parse(argc, argv, extra, take_convert, &a, &o.open_flags, &progress, usage) < 0)
		return a.bad ? EXIT_USAGE : cli_usage(usage);
	if (optind != argc - 2)
		return cli_usage(usage);
	if (!a.to)
		a.to = ends_with(argv[optind + 1], ".vhd") ? "dynamic" : "raw";
	if (!strcmp(a.to, "raw"))
		o.to = VHD_CONVERT_RAW;
	else if (!strcmp(a.to, "fixed"))
		o.to = VHD_CONVERT_FIXED;
	else if (!strcmp(a.to, "dynamic"))
		o.to = VHD_CONVERT_DYNAMIC;
	else {
		cli_err("--to: '%s' is not raw, fixed or dynamic", a.to);
		return EXIT_USAGE;
	}
	if (a.bs && o.to != VHD_CONVERT_DYNAMIC) {
		cli_err("--block-size applies to dynamic disks only");
		return EXIT_USAGE;
	}
	o.block_size = (uint32_t)a.bs;
	o.sync = a.sync;
	o.progress = progress_init(&pr, &prog, progress);
	r = vhd_convert(argv[optind], argv[optind + 1], &o, &err);
	return r < 0 ? cli_vhd_fail(argv[optind + 1], r, &err) : 0;
}

struct commit_args {
	bool force, keep;
};

static int take_commit(int c, void *p)
{
	struct commit_args *a = p;

	if (c == OPT_FORCE)
		a->force = true;
	else if (c == OPT_KEEP)
		a->keep = true;
	else
		return -1;
	return 0;
}

int disk_commit(int argc, char **argv)
{
	static const char usage[] =
		"vsrv disk commit [--keep] [--force] [--progress] CHILD\n"
		"  merges CHILD into its parent, then removes CHILD (--keep keeps it).\n"
		"  Other differencing disks of that parent become invalid: commit refuses\n"
		"  without --force when it sees them beside the parent.";
	static const struct option extra[] = {
		{ "force", no_argument, NULL, OPT_FORCE },
		{ "keep", no_argument, NULL, OPT_KEEP },
		{ NULL, 0, NULL, 0 },
	};
	struct commit_args a = { 0 };
	struct vhd_error err = { 0 };
	struct vhd_progress pr;
	unsigned flags = 0;
	bool progress = false;
	struct progress prog;
	int r;

	if (parse(argc, argv, extra, take_commit, &a, &flags, &progress, usage) < 0 ||
	    optind != argc - 1)
		return cli_usage(usage);
	r = vhd_commit(argv[optind], flags, a.keep, a.force, cli_warn_cb, NULL,
		       progress_init(&pr, &prog, progress), &err);
	return r < 0 ? cli_vhd_fail(argv[optind], r, &err) : 0;
}

int disk_rebase(int argc, char **argv)
{
	static const char usage[] =
		"vsrv disk rebase [--progress] CHILD NEWPARENT\n"
		"  points CHILD at NEWPARENT, first copying into CHILD whatever it reads\n"
		"  through to its old parent that NEWPARENT holds differently.";
	struct vhd_error err = { 0 };
	struct vhd_progress pr;
	unsigned flags = 0;
	bool progress = false;
	struct progress prog;
	int r;

	if (parse(argc, argv, NULL, NULL, NULL, &flags, &progress, usage) < 0 ||
	    optind != argc - 2)
		return cli_usage(usage);
	r = vhd_rebase(argv[optind], argv[optind + 1], flags,
		       progress_init(&pr, &prog, progress), &err);
	return r < 0 ? cli_vhd_fail(argv[optind], r, &err) : 0;
}

int disk_compact(int argc, char **argv)
{
	static const char usage[] = "vsrv disk compact [--progress] FILE";
	struct vhd_error err = { 0 };
	struct vhd_progress pr;
	unsigned flags = 0;
	bool progress = false;
	uint64_t freed = 0;
	struct progress prog;
	int r;

	if (parse(argc, argv, NULL, NULL, NULL, &flags, &progress, usage) < 0 ||
	    optind != argc - 1)
		return cli_usage(usage);
	r = vhd_compact(argv[optind], flags, progress_init(&pr, &prog, progress),
			&freed, &err);
	if (r < 0)
		return cli_vhd_fail(argv[optind], r, &err);
	printf("%s: %" PRIu64 " bytes freed\n", argv[optind], freed);
	return 0;
}

int disk_resize(int argc, char **argv)
{
	static const char usage[] = "vsrv disk resize FILE SIZE   (SIZE, +SIZE or -SIZE)";
	struct vhd_error err = { 0 };
	unsigned flags = 0;
	bool progress = false;
	uint64_t size;
	const char *s;
	int r;

	/* "-1G" is a size, not options: take it out before getopt sees it. */
	s = NULL;
	for (int i = 1; i < argc; i++) {
		if (argv[i][0] == '-' && argv[i][1] >= '0' && argv[i][1] <= '9' && !s) {
			s = argv[i];
			memmove(argv + i, argv + i + 1, (size_t)(argc - i) * sizeof(*argv));
			argc--;
			break;
		}
	}
	if (parse(argc, argv, NULL, NULL, NULL, &flags, &progress, usage) < 0 ||
	    optind != argc - (s ? 1 : 2))
		return cli_usage(usage);
	if (!s)
		s = argv[optind + 1];
	if (*s == '+' || *s == '-') {
		struct vhd_open_opts oo = { .flags = flags | VHD_OPEN_NO_PARENT };
		uint64_t delta, cur;
		struct vhd *v;

		if (cli_parse_size("SIZE", s + 1, &delta) < 0)
			return EXIT_USAGE;
		r = vhd_open(argv[optind], &oo, &v, &err);
		if (r < 0)
			return cli_vhd_fail(argv[optind], r, &err);
		cur = vhd_size(v);
		vhd_close(v);
		if (*s == '-' && delta >= cur) {
			cli_err("%s: cannot shrink %" PRIu64 " bytes by %" PRIu64,
				argv[optind], cur, delta);
			return 1;
		}
		size = *s == '+' ? cur + delta : cur - delta;
	} else if (cli_parse_size("SIZE", s, &size) < 0) {
		return EXIT_USAGE;
	}
	r = vhd_resize(argv[optind], size, flags, &err);
	return r < 0 ? cli_vhd_fail(argv[optind], r, &err) : 0;
}
