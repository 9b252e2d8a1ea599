// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vsrv job: vsrvd's disk jobs (convert, commit, compact) from the command
 * line, through its API (client.c).  A job runs in the service; --wait
 * (or `vsrv job wait`) follows it with a progress line on standard error
 * and ends with its result: status 0 when it is done, 1 when it failed or
 * was cancelled.  Leaving a wait (^C) leaves the job running.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "client.h"
#include "vhd.h"

#define POLL_MS		200

static const char usage[] =
	"vsrv job list|show|wait|cancel|convert|commit|compact ...\n"
	"  vsrv job list\n"
	"  vsrv job show ID [--wait]\n"
	"  vsrv job wait ID\n"
	"  vsrv job cancel ID\n"
	"  vsrv job convert DISK|--source FILE --path TARGET [--to raw|fixed|dynamic]\n"
	"                   [--name NAME] [--block-size SIZE] [--speed RATE] [--wait]\n"
	"  vsrv job commit DISK|--source FILE [--force] [--speed RATE] [--wait]\n"
	"  vsrv job compact DISK|--source FILE [--speed RATE] [--wait]\n"
	"DISK is one of vsrvd's disks by name, FILE a path in its disk_dirs; RATE is\n"
	"bytes a second (16M); a convert's NAME makes its result one of vsrvd's disks.\n"
	CLIENT_USAGE;

enum { O_SOURCE = 1, O_PATH, O_TO, O_NAME, O_BS, O_SPEED, O_FORCE, O_WAIT };

static const struct option opts[] = {
	CLIENT_OPTS,
	{ "source", required_argument, NULL, O_SOURCE },
	{ "path", required_argument, NULL, O_PATH },
	{ "to", required_argument, NULL, O_TO },
	{ "name", required_argument, NULL, O_NAME },
	{ "block-size", required_argument, NULL, O_BS },
	{ "speed", required_argument, NULL, O_SPEED },
	{ "force", no_argument, NULL, O_FORCE },
	{ "wait", no_argument, NULL, O_WAIT },
	{ NULL, 0, NULL, 0 },
};

struct args {
	struct client_opts co;
	bool wait;
	json_t *body;		/* a new job's fields */
	const char *pos;	/* the one positional argument */
};

static int parse(int argc, char **argv, struct args *a)
{
	int c;

	a->body = json_object();
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		int common = client_opt(c, &a->co, usage);
		const char *key = NULL;
		uint64_t size;

		if (common < 0)
			return -1;
		if (common)
			continue;
		switch (c) {
		case O_WAIT:
			a->wait = true;
			break;
		case O_FORCE:
			json_object_set_new(a->body, "force", json_true());
			break;
		case O_BS:
			if (vhd_parse_size(optarg, &size) < 0) {
				cli_err("--block-size: '%s' is not a size", optarg);
				return EXIT_USAGE;
			}
			json_object_set_new(a->body, "block_size", json_integer((json_int_t)size));
			break;
		case O_SOURCE:
			key = "source";
			break;
		case O_PATH:
			key = "path";
			break;
		case O_TO:
			key = "to";
			break;
		case O_NAME:
			key = "name";
			break;
		case O_SPEED:
			key = "speed";
			break;
		default:
			return cli_usage(usage);
		}
		if (key)
			json_object_set_new(a->body, key, json_string(optarg));
	}
	if (optind < argc)
		a->pos = argv[optind++];
	return optind < argc ? cli_usage(usage) : 0;
}

static const char *str(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	return json_is_string(v) ? json_string_value(v) : "-";
}

static long long num(json_t *o, const char *key)
{
	return (long long)json_integer_value(json_object_get(o, key));
}

static void print_table(json_t *list)
{
	size_t i;
	json_t *j;

	printf("%-6s %-8s %-10s %5s  %s\n", "ID", "TYPE", "STATE", "DONE", "SOURCE");
	json_array_foreach(list, i, j)
		printf("%-6lld %-8s %-10s %4lld%%  %s\n", num(j, "id"), str(j, "type"),
		       str(j, "state"), num(json_object_get(j, "progress"), "percent"),
		       str(j, "source"));
}

static bool over(json_t *job)
{
	const char *s = str(job, "state");

	return strcmp(s, "queued") && strcmp(s, "running");
}

/* Follows a job until it is over: "job 3 convert: 45% (N of M bytes)" on
 * standard error, redrawn in place on a terminal, a line a change
 * otherwise.  The last answer in *job. */
static int follow(struct client *c, json_t **job)
{
	bool tty = isatty(2);
	char path[64], last[160] = "";
	long long id = num(*job, "id");

	snprintf(path, sizeof(path), "/v1/jobs/%lld", id);
	for (;;) {
		json_t *p = json_object_get(*job, "progress"), *next;
		char line[160];

		snprintf(line, sizeof(line), "job %lld %s: %s, %lld%% (%lld of %lld bytes)", id,
			 str(*job, "type"), str(*job, "state"), num(p, "percent"), num(p, "done"),
			 num(p, "total"));
		if (strcmp(line, last)) {
			fprintf(stderr, tty ? "\r%-70s" : "%s\n", line);
			snprintf(last, sizeof(last), "%s", line);
		}
		if (over(*job))
			break;
		nanosleep(&(struct timespec){ .tv_nsec = POLL_MS * 1000000L }, NULL);
		if (client_call(c, "GET", path, NULL, &next) < 0)
			return 1;
		json_decref(*job);
		*job = next;
	}
	if (tty)
		fputc('\n', stderr);
	return 0;
}

int client_job_main(int argc, char **argv)
{
	const char *sub = argc > 1 ? argv[1] : NULL, *method = NULL;
	bool create = false;
	struct args a = { 0 };
	struct client c;
	char path[300];
	json_t *out = NULL;
	int r;

	if (!sub)
		return cli_usage(usage);
	if (!strcmp(sub, "--help") || !strcmp(sub, "help")) {
		printf("usage: %s\n", usage);
		return 0;
	}
	r = parse(argc - 1, argv + 1, &a);
	if (r)
		goto done;
	r = EXIT_USAGE;
	if (!strcmp(sub, "list") && !a.pos) {
		method = "GET";
		snprintf(path, sizeof(path), "/v1/jobs");
	} else if ((!strcmp(sub, "show") || !strcmp(sub, "wait")) && a.pos) {
		method = "GET";
		a.wait |= !strcmp(sub, "wait");
		snprintf(path, sizeof(path), "/v1/jobs/%.64s", a.pos);
	} else if (!strcmp(sub, "cancel") && a.pos) {
		method = "DELETE";
		snprintf(path, sizeof(path), "/v1/jobs/%.64s", a.pos);
	} else if (!strcmp(sub, "convert") || !strcmp(sub, "commit") || !strcmp(sub, "compact")) {
		method = "POST";
		create = true;
		if (a.pos && json_object_get(a.body, "source")) {
			cli_err("job %s: a DISK or --source FILE, not both", sub);
			goto done;
		}
		/* A disk's own route, or /v1/jobs with the file. */
		if (a.pos) {
			snprintf(path, sizeof(path), "/v1/disks/%.64s/%s", a.pos, sub);
		} else {
			snprintf(path, sizeof(path), "/v1/jobs");
			json_object_set_new(a.body, "type", json_string(sub));
		}
	}
	if (!method) {
		cli_err("job %s: unknown command or wrong arguments (see --help)", sub);
		goto done;
	}
	if (!create && json_object_size(a.body)) {
		cli_err("job %s: takes no job options", sub);
		goto done;
	}
	if (a.wait && !strcmp(sub, "list")) {
		cli_err("job list: --wait is for one job");
		goto done;
	}
	r = client_init_opts(&c, &a.co);
	if (r)
		goto done;
	r = client_call(&c, method, path, create ? a.body : NULL, &out) < 0 ? 1 : 0;
	if (r == 0 && a.wait)
		r = follow(&c, &out);
	client_free(&c);
	if (r)
		goto done;
	if (a.co.json)
		client_print_json(out);
	else if (!strcmp(sub, "list"))
		print_table(out);
	else
		client_print_fields(out);
	/* A wait ends with the job's outcome. */
	if (a.wait && strcmp(str(out, "state"), "done")) {
		cli_err("job %lld: %s: %s", num(out, "id"), str(out, "state"), str(out, "error"));
		r = 1;
	}
done:
	json_decref(out);
	json_decref(a.body);
	return r < 0 ? 0 : r;
}
