// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vsrv ctl: the control socket's command-line client (docs/control.md).
 * One request, its reply printed for a person (or as it came, --json),
 * and an exit status that says whether it worked: 0, or 1 after an error
 * reply with its message on one line.  `events` stays connected and
 * prints each event as it comes until the VM is off.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "../control/protocol.h"

static const char usage[] =
	"vsrv ctl PATH COMMAND [ARGS] [--json]\n"
	"  status                 the VM's state, uptime and configuration\n"
	"  pause | resume         stop the vCPUs and the devices' I/O, or go on\n"
	"  power-off              turn the VM off now (as SIGTERM does)\n"
	"  reset                  reset the VM (as a guest reboot, --on-reboot applies)\n"
	"  shutdown [--timeout S] [--reboot]\n"
	"                         press the power button (--reboot: Ctrl-Alt-Del);\n"
	"                         power off (reset) after S seconds (default 60)\n"
	"  stats                  counters: vCPUs, exits, devices, memory, RSS\n"
	"  events                 print events until the VM is off\n"
	"  save FILE              save the VM's state to FILE, then power off\n"
	"  checkpoint NAME [--running|--paused]\n"
	"                         save the VM's state as NAME (vsrv run --checkpoints), then\n"
	"                         go on as it was, or running or paused\n"
	"  checkpoints            the checkpoints, as a tree\n"
	"  revert NAME            start the VM again from checkpoint NAME\n"
	"  delete-checkpoint NAME forget checkpoint NAME (its disks' layers removed or merged)\n"
	"  undo commit|discard|keep\n"
	"                         what the undo disks' changes come to when the VM ends\n"
	"--json: print the reply (and events) as the socket sent them.\n"
	"PATH is vsrv run's --control.  Exit status: 0, 1 on an error reply, 2 usage.";

enum { OPT_TIMEOUT = 1, OPT_REBOOT, OPT_CJSON, OPT_CHELP, OPT_RUNNING, OPT_PAUSED };

static const struct option opts[] = {
	{ "timeout", required_argument, NULL, OPT_TIMEOUT },
	{ "reboot", no_argument, NULL, OPT_REBOOT },
	{ "running", no_argument, NULL, OPT_RUNNING },
	{ "paused", no_argument, NULL, OPT_PAUSED },
	{ "json", no_argument, NULL, OPT_CJSON },
	{ "help", no_argument, NULL, OPT_CHELP },
	{ NULL, 0, NULL, 0 },
};

struct conn {
	const char *path;
	int fd;
	struct ctl_lines in;
};

/* The next line from the server, parsed; NULL at the end (a message
 * printed when it is an error rather than the server closing). */
static json_t *next_msg(struct conn *c)
{
	for (;;) {
		char *line, *p;
		size_t len, room;
		ssize_t n;
		int r = ctl_lines_next(&c->in, &line, &len);

		if (r > 0) {
			json_t *m = json_loadb(line, len, 0, NULL);

			if (json_is_object(m))
				return m;
			json_decref(m);
			cli_err("ctl: %s: the server sent a line that is not a JSON object", c->path);
			return NULL;
		}
		if (r < 0) {
			cli_err("ctl: %s: the server sent a line of more than %u bytes", c->path,
				CTL_LINE_MAX);
			return NULL;
		}
		p = ctl_lines_space(&c->in, &room);
		do
			n = read(c->fd, p, room);
		while (n < 0 && errno == EINTR);
		if (n <= 0)
			return NULL;
		ctl_lines_added(&c->in, (size_t)n);
	}
}

static int connect_to(struct conn *c)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	json_t *g;
	int v;

	if (strlen(c->path) >= sizeof(sa.sun_path)) {
		cli_err("ctl: %s: longer than a Unix socket's path can be", c->path);
		return -1;
	}
	strcpy(sa.sun_path, c->path);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		cli_err("ctl: %s: %s (is vsrv run --control %s running?)", c->path,
			strerror(errno), c->path);
		return -1;
	}
	if (ctl_lines_init(&c->in) < 0) {
		cli_err("ctl: out of memory");
		return -1;
	}
	g = next_msg(c);
	if (!g || !json_object_get(g, "greeting")) {
		if (g && json_object_get(g, "error"))
			cli_err("ctl: %s: %s", c->path,
				json_string_value(json_object_get(json_object_get(g, "error"),
								  "message")));
		else
			cli_err("ctl: %s: no greeting from the server", c->path);
		json_decref(g);
		return -1;
	}
	v = (int)json_integer_value(json_object_get(json_object_get(g, "greeting"), "protocol"));
	json_decref(g);
	if (v != CTL_PROTOCOL_VERSION) {
		cli_err("ctl: %s speaks control protocol %d; this vsrv speaks %d", c->path, v,
			CTL_PROTOCOL_VERSION);
		return -1;
	}
	return 0;
}

static void print_json(json_t *m)
{
	char *s = json_dumps(m, JSON_COMPACT);

	if (s)
		printf("%s\n", s);
	free(s);
}

static const char *mib(uint64_t bytes, char buf[32])
{
	snprintf(buf, 32, "%.1f MiB", (double)bytes / 1048576.0);
	return buf;
}

static uint64_t num(json_t *o, const char *key)
{
	return (uint64_t)json_integer_value(json_object_get(o, key));
}

static void print_status(json_t *r)
{
	json_t *c = json_object_get(r, "config"), *d;
	char b[32];
	size_t i;

	printf("state: %s\nuptime: %.1f s\nboots: %llu\n",
	       json_string_value(json_object_get(r, "state")),
	       json_real_value(json_object_get(r, "uptime")), (unsigned long long)num(r, "boots"));
	if (json_object_get(c, "name"))
		printf("name: %s\n", json_string_value(json_object_get(c, "name")));
	printf("vcpus: %llu\nmemory: %s\n", (unsigned long long)num(c, "vcpus"),
	       mib(num(c, "memory"), b));
	if (json_object_get(c, "kernel"))
		printf("kernel: %s\n", json_string_value(json_object_get(c, "kernel")));
	json_array_foreach(json_object_get(c, "disks"), i, d) {
		const char *undo = json_string_value(json_object_get(d, "undo"));

		printf("disk: %s%s", json_string_value(json_object_get(d, "path")),
		       json_is_true(json_object_get(d, "readonly")) ? " (read-only)" : "");
		if (undo && strcmp(undo, "none"))
			printf(" (undo=%s)", undo);
		printf("\n");
	}
}

static void print_stats(json_t *r)
{
	json_t *v, *m = json_object_get(r, "memory"), *rs = json_object_get(r, "rss");
	size_t i;
	char b1[32], b2[32], b3[32], b4[32];

	json_array_foreach(json_object_get(r, "vcpus"), i, v) {
		const char *key;
		json_t *n;
		int k = 0;

		printf("vCPU %llu: %.3f s in the guest, %.3f s in the VMM, %llu exits",
		       (unsigned long long)num(v, "id"), (double)num(v, "guest_ns") / 1e9,
		       (double)num(v, "vmm_ns") / 1e9, (unsigned long long)num(v, "exits_total"));
		json_object_foreach(json_object_get(v, "exits"), key, n)
			printf("%s%s %llu", k++ ? ", " : " (", key,
			       (unsigned long long)json_integer_value(n));
		printf("%s\n", k ? ")" : "");
	}
	json_array_foreach(json_object_get(r, "devices"), i, v) {
		const char *key;
		json_t *n;
		int k = 0;

		printf("%s:", json_string_value(json_object_get(v, "name")));
		json_object_foreach(json_object_get(v, "counters"), key, n)
			printf("%s %s %llu", k++ ? "," : "", key,
			       (unsigned long long)json_integer_value(n));
		printf("\n");
	}
	printf("memory: %s touched of %s\n", mib(num(m, "touched"), b1), mib(num(m, "size"), b2));
	printf("rss: vsrv %s, vm %s", mib(num(rs, "vsrv"), b1), mib(num(rs, "vm"), b3));
	printf(" (total %s)\n", mib(num(rs, "total"), b4));
}

static void print_event(json_t *e)
{
	json_t *d = json_object_get(e, "data"), *ts = json_object_get(e, "timestamp");
	time_t t = (time_t)num(ts, "seconds");
	const char *name = json_string_value(json_object_get(e, "event"));
	struct tm tm;
	char when[32];

	gmtime_r(&t, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	printf("%s.%06lluZ %s", when, (unsigned long long)num(ts, "microseconds"), name);
	if (!strcmp(name, "state"))
		printf(" %s (was %s)", json_string_value(json_object_get(d, "state")),
		       json_string_value(json_object_get(d, "previous")));
	else if (!strcmp(name, "power-off"))
		printf(": %s", json_string_value(json_object_get(d, "reason")));
	else if (!strcmp(name, "reboot"))
		printf(": boot %llu", (unsigned long long)num(d, "boot"));
	else if (!strcmp(name, "shutdown-timeout"))
		printf(": %llu s passed, %s", (unsigned long long)num(d, "timeout"),
		       json_string_value(json_object_get(d, "action")));
	printf("\n");
	fflush(stdout);
}

/* The checkpoints under parent, indented by depth; "*" marks the current. */
static void print_tree(json_t *r, json_t *parent, int depth)
{
	json_t *e;
	size_t i;

	json_array_foreach(json_object_get(r, "checkpoints"), i, e) {
		time_t t = (time_t)num(e, "time");
		struct tm tm;
		char when[32];

		if (!json_equal(json_object_get(e, "parent"), parent))
			continue;
		gmtime_r(&t, &tm);
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
		printf("%*s%s %s (%s, %llu bytes)\n", 2 * depth, "",
		       json_equal(json_object_get(e, "name"), json_object_get(r, "current")) ? "*" : "-",
		       json_string_value(json_object_get(e, "name")), when,
		       (unsigned long long)num(e, "bytes"));
		print_tree(r, json_object_get(e, "name"), depth + 1);
	}
}

static void print_reply(const char *cmd, json_t *args, json_t *r)
{
	if (!strcmp(cmd, "status")) {
		print_status(r);
	} else if (!strcmp(cmd, "stats")) {
		print_stats(r);
	} else if (!strcmp(cmd, "pause")) {
		printf("the VM is paused\n");
	} else if (!strcmp(cmd, "resume")) {
		printf("the VM runs again\n");
	} else if (!strcmp(cmd, "reset")) {
		printf("the VM was reset\n");
	} else if (!strcmp(cmd, "power-off")) {
		printf("the VM is being powered off\n");
	} else if (!strcmp(cmd, "shutdown")) {
		bool cad = json_is_true(json_object_get(args, "reboot"));

		printf("%s; the VM is %s in %llu s unless the guest has by then%s\n",
		       cad ? "Ctrl-Alt-Del was sent" : "the power button was pressed",
		       cad ? "reset" : "powered off", (unsigned long long)num(r, "timeout"),
		       json_is_false(json_object_get(r, "guest_enabled")) ?
		       " (its press waits for the guest to enable the power button)" : "");
	} else if (!strcmp(cmd, "checkpoint")) {
		const char *st = json_string_value(json_object_get(r, "state"));

		printf("checkpoint %s: %llu bytes in %s", json_string_value(json_object_get(r, "name")),
		       (unsigned long long)num(r, "bytes"), json_string_value(json_object_get(r, "file")));
		if (st)
			printf("; the VM is %s", st);
		putchar('\n');
	} else if (!strcmp(cmd, "revert")) {
		printf("the VM starts again from checkpoint %s\n",
		       json_string_value(json_object_get(args, "name")));
	} else if (!strcmp(cmd, "delete-checkpoint")) {
		json_t *f;
		size_t i;

		printf("checkpoint %s deleted\n", json_string_value(json_object_get(args, "name")));
		json_array_foreach(json_object_get(r, "removed"), i, f)
			printf("removed %s\n", json_string_value(f));
	} else if (!strcmp(cmd, "undo")) {
		json_t *d;
		size_t i;

		json_array_foreach(json_object_get(r, "disks"), i, d)
			if (strcmp(json_string_value(json_object_get(d, "undo")) ?: "none", "none"))
				printf("%s: undo=%s\n", json_string_value(json_object_get(d, "path")),
				       json_string_value(json_object_get(d, "undo")));
	} else if (!strcmp(cmd, "checkpoints")) {
		json_t *d;
		size_t i;

		print_tree(r, json_null(), 0);
		json_array_foreach(json_object_get(r, "disks"), i, d)
			printf("disk %s: on %s\n", json_string_value(json_object_get(d, "base")),
			       json_string_value(json_object_get(d, "top")));
	} else if (!strcmp(cmd, "save")) {
		printf("the VM's state is in %s (%llu bytes); the VM is off\n",
		       json_string_value(json_object_get(r, "file")),
		       (unsigned long long)num(r, "bytes"));
	}
}

int cmd_ctl(int argc, char **argv)
{
	struct conn c = { .fd = -1 };
	json_t *args = json_object(), *req, *m;
	bool json_out = false;
	const char *cmd;
	char *line, *end;
	size_t len;
	int o, status = 1;

	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case OPT_TIMEOUT: {
			unsigned long v = strtoul(optarg, &end, 10);

			if (*end || end == optarg || v < 1 || v > 86400) {
				cli_err("ctl: --timeout: '%s' is not a number of seconds from 1 to 86400",
					optarg);
				status = EXIT_USAGE;
				goto out;
			}
			json_object_set_new(args, "timeout", json_integer((json_int_t)v));
			break;
		}
		case OPT_REBOOT:
			json_object_set_new(args, "reboot", json_true());
			break;
		case OPT_RUNNING:
		case OPT_PAUSED:
			/* What a checkpoint leaves the VM as: one or the other. */
			if (json_object_get(args, "then")) {
				cli_err("ctl: --running, --paused: one or the other");
				status = EXIT_USAGE;
				goto out;
			}
			json_object_set_new(args, "then", json_string(o == OPT_RUNNING ? "running" :
								      "paused"));
			break;
		case OPT_CJSON:
			json_out = true;
			break;
		case OPT_CHELP:
			printf("usage: %s\n", usage);
			status = 0;
			goto out;
		default:
			status = cli_usage(usage);
			goto out;
		}
	}
	if (argc - optind < 2) {
		status = cli_usage(usage);
		goto out;
	}
	c.path = argv[optind];
	cmd = argv[optind + 1];
	if (!ctl_command_find(cmd)) {
		cli_err("ctl: unknown command '%s' (see 'vsrv ctl --help')", cmd);
		status = EXIT_USAGE;
		goto out;
	}
	if (argc - optind != (ctl_command_find(cmd)->args[0].required ? 3 : 2)) {
		status = cli_usage(usage);
		goto out;
	}
	if (!strcmp(cmd, "checkpoint") || !strcmp(cmd, "revert") ||
	    !strcmp(cmd, "delete-checkpoint"))
		json_object_set_new(args, "name", json_string(argv[optind + 2]));
	if (!strcmp(cmd, "undo"))
		json_object_set_new(args, "mode", json_string(argv[optind + 2]));
	if (!strcmp(cmd, "save")) {
		/* The server's working directory is not ours. */
		const char *f = argv[optind + 2];
		char *cwd = f[0] == '/' ? NULL : getcwd(NULL, 0), *abs = NULL;

		if (cwd && asprintf(&abs, "%s/%s", cwd, f) < 0)
			abs = NULL;
		json_object_set_new(args, "file", json_string(abs ? abs : f));
		free(abs);
		free(cwd);
	}
	if (connect_to(&c) < 0)
		goto out;
	req = json_pack("{s:i,s:s,s:O}", "id", 1, "command", cmd, "arguments", args);
	line = ctl_encode(req, &len);
	json_decref(req);
	if (!line || write(c.fd, line, len) != (ssize_t)len) {
		cli_err("ctl: %s: sending the request: %s", c.path, strerror(errno));
		free(line);
		goto out;
	}
	free(line);
	while ((m = next_msg(&c))) {
		json_t *err = json_object_get(m, "error");

		if (json_object_get(m, "event")) {
			json_decref(m);
			continue;	/* not asked for yet */
		}
		if (json_out)
			print_json(m);
		if (err) {
			cli_err("%s: %s", cmd, json_string_value(json_object_get(err, "message")));
		} else {
			if (!json_out)
				print_reply(cmd, args, json_object_get(m, "return"));
			status = 0;
		}
		json_decref(m);
		break;
	}
	if (!m && status) {
		cli_err("ctl: %s: the server closed the connection before it replied", c.path);
		goto out;
	}
	if (!strcmp(cmd, "events") && status == 0) {
		fflush(stdout);
		while ((m = next_msg(&c))) {
			if (json_object_get(m, "event")) {
				if (json_out) {
					print_json(m);
					fflush(stdout);
				} else {
					print_event(m);
				}
			}
			json_decref(m);
		}
	}
out:
	json_decref(args);
	if (c.fd >= 0)
		close(c.fd);
	ctl_lines_free(&c.in);
	return status;
}
