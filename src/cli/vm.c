// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vsrv vm and vsrv net: vsrvd's VMs and networks from the command line,
 * through its API (client.c), as virsh is to libvirtd.  Every subcommand
 * takes --connect, --token-file, --cacert and --json (the API's own JSON,
 * as is); job.c is vsrv job, on the same client.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "client.h"

static const char vm_usage[] =
	"vsrv vm list|show|create|start|shutdown|power-off|reset|pause|resume|save|restore|delete ...\n"
	"  vsrv vm list\n"
	"  vsrv vm show NAME\n"
	"  vsrv vm create NAME --kernel FILE [--initrd FILE] [--cmdline STR] [--vcpus N]\n"
	"                 [--memory SIZE] [--description STR] [--autostart]\n"
	"                 [--restart-policy never|on-crash|always] [--rng] [--test-device]\n"
	"                 [--on-stop leave|power-off|shutdown|save] [--nic NETWORK]...\n"
	"                 [--disk PATH[,undo=commit|keep|discard][,readonly][,cache=MODE]]...\n"
	"  vsrv vm start|power-off|reset|pause|resume|save|restore NAME\n"
	"  vsrv vm shutdown NAME [--timeout S]\n"
	"  vsrv vm checkpoints NAME\n"
	"  vsrv vm checkpoint NAME CHECKPOINT [--running|--paused]\n"
	"  vsrv vm revert|delete-checkpoint NAME CHECKPOINT\n"
	"  vsrv vm delete NAME\n"
	CLIENT_USAGE;

static const char net_usage[] =
	"vsrv net list|show|create|delete ...\n"
	"  vsrv net list\n"
	"  vsrv net show NAME\n"
	"  vsrv net create NAME --type user|internal|bridge [--bridge IFNAME]\n"
	"                  [--dhcp --subnet ADDR/PREFIX]\n"
	"  vsrv net delete NAME\n"
	CLIENT_USAGE;

enum {
	O_KERNEL = 1, O_INITRD, O_CMDLINE, O_VCPUS, O_MEMORY, O_DESC, O_AUTOSTART, O_POLICY,
	O_RNG, O_TESTDEV, O_NIC, O_DISK, O_TYPE, O_BRIDGE, O_DHCP, O_SUBNET, O_ON_STOP,
	O_TIMEOUT, O_RUNNING, O_PAUSED,
};

static const struct option vm_opts[] = {
	CLIENT_OPTS,
	{ "kernel", required_argument, NULL, O_KERNEL },
	{ "initrd", required_argument, NULL, O_INITRD },
	{ "cmdline", required_argument, NULL, O_CMDLINE },
	{ "vcpus", required_argument, NULL, O_VCPUS },
	{ "memory", required_argument, NULL, O_MEMORY },
	{ "description", required_argument, NULL, O_DESC },
	{ "autostart", no_argument, NULL, O_AUTOSTART },
	{ "restart-policy", required_argument, NULL, O_POLICY },
	{ "rng", no_argument, NULL, O_RNG },
	{ "test-device", no_argument, NULL, O_TESTDEV },
	{ "nic", required_argument, NULL, O_NIC },
	{ "disk", required_argument, NULL, O_DISK },
	{ "type", required_argument, NULL, O_TYPE },
	{ "bridge", required_argument, NULL, O_BRIDGE },
	{ "dhcp", no_argument, NULL, O_DHCP },
	{ "subnet", required_argument, NULL, O_SUBNET },
	{ "on-stop", required_argument, NULL, O_ON_STOP },
	{ "timeout", required_argument, NULL, O_TIMEOUT },
	{ "running", no_argument, NULL, O_RUNNING },
	{ "paused", no_argument, NULL, O_PAUSED },
	{ NULL, 0, NULL, 0 },
};

struct args {
	struct client_opts co;
	json_t *body;		/* create's fields */
	long timeout;		/* shutdown's, 0 if not given */
	const char *then;	/* checkpoint's --running, --paused */
	char *pos[2];		/* positional arguments */
	int npos;
};

static void set(json_t *o, const char *key, json_t *v)
{
	json_object_set_new(o, key, v);
}

static json_t *array_of(json_t *o, const char *key)
{
	json_t *a = json_object_get(o, key);

	if (!a) {
		a = json_array();
		json_object_set_new(o, key, a);
	}
	return a;
}

/* Options into a; 0, or an exit status. */
static int parse(int argc, char **argv, const char *usage, struct args *a)
{
	int c;

	a->body = json_object();
	optind = 1;
	while ((c = getopt_long(argc, argv, "", vm_opts, NULL)) != -1) {
		int common = client_opt(c, &a->co, usage);

		if (common < 0)
			return -1;
		if (common)
			continue;
		switch (c) {
		case O_KERNEL:
			set(a->body, "kernel", json_string(optarg));
			break;
		case O_INITRD:
			set(a->body, "initrd", json_string(optarg));
			break;
		case O_CMDLINE:
			set(a->body, "cmdline", json_string(optarg));
			break;
		case O_VCPUS: {
			char *end;
			long n = strtol(optarg, &end, 10);

			if (*end || end == optarg) {
				cli_err("--vcpus: '%s' is not a number", optarg);
				return EXIT_USAGE;
			}
			set(a->body, "vcpus", json_integer(n));
			break;
		}
		case O_MEMORY:
			set(a->body, "memory", json_string(optarg));
			break;
		case O_DESC:
			set(a->body, "description", json_string(optarg));
			break;
		case O_AUTOSTART:
			set(a->body, "autostart", json_true());
			break;
		case O_POLICY:
			set(a->body, "restart_policy", json_string(optarg));
			break;
		case O_RNG:
			set(a->body, "rng", json_true());
			break;
		case O_TESTDEV:
			set(a->body, "test_device", json_true());
			break;
		case O_NIC:
			json_array_append_new(array_of(a->body, "nics"),
					      json_pack("{s:s}", "network", optarg));
			break;
		case O_DISK: {
			char *path = strdup(optarg), *opt = strchr(path, ',');
			json_t *d;

			if (opt)
				*opt++ = 0;
			d = json_pack("{s:s}", "path", path);
			for (char *o = opt ? strtok(opt, ",") : NULL; o; o = strtok(NULL, ",")) {
				char *eq = strchr(o, '=');

				if (eq && (!strncmp(o, "undo=", 5) || !strncmp(o, "cache=", 6))) {
					*eq = 0;
					set(d, o, json_string(eq + 1));
				} else if (!strcmp(o, "readonly")) {
					set(d, o, json_true());
				} else {
					cli_err("--disk: '%s' is not undo=MODE, cache=MODE or readonly", o);
					json_decref(d);
					free(path);
					return EXIT_USAGE;
				}
			}
			json_array_append_new(array_of(a->body, "disks"), d);
			free(path);
			break;
		}
		case O_TYPE:
			set(a->body, "type", json_string(optarg));
			break;
		case O_BRIDGE:
			set(a->body, "bridge", json_string(optarg));
			break;
		case O_DHCP:
			set(a->body, "dhcp", json_true());
			break;
		case O_SUBNET:
			set(a->body, "subnet", json_string(optarg));
			break;
		case O_ON_STOP:
			set(a->body, "on_stop", json_string(optarg));
			break;
		case O_TIMEOUT: {
			char *end;

			a->timeout = strtol(optarg, &end, 10);
			if (*end || end == optarg || a->timeout < 1) {
				cli_err("--timeout: '%s' is not a number of seconds", optarg);
				return EXIT_USAGE;
			}
			break;
		}
		case O_RUNNING:
		case O_PAUSED:
			if (a->then) {
				cli_err("--running, --paused: one or the other");
				return EXIT_USAGE;
			}
			a->then = c == O_RUNNING ? "running" : "paused";
			break;
		default:
			return cli_usage(usage);
		}
	}
	for (; optind < argc; optind++) {
		if (a->npos == 2)
			return cli_usage(usage);
		a->pos[a->npos++] = argv[optind];
	}
	return 0;
}

static const char *str(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	return json_is_string(v) ? json_string_value(v) : "-";
}

static void print_vm_table(json_t *list)
{
	size_t i;
	json_t *vm;

	printf("%-24s %-9s %5s %10s %s\n", "NAME", "STATE", "VCPUS", "MEMORY", "UUID");
	json_array_foreach(list, i, vm)
		printf("%-24s %-9s %5lld %9lldM %s\n", str(vm, "name"), str(vm, "state"),
		       (long long)json_integer_value(json_object_get(vm, "vcpus")),
		       (long long)json_integer_value(json_object_get(vm, "memory")) >> 20,
		       str(vm, "uuid"));
}

static void print_net_table(json_t *list)
{
	size_t i;
	json_t *n;

	printf("%-24s %-9s %-16s %-5s %s\n", "NAME", "TYPE", "BRIDGE", "NICS", "SUBNET");
	json_array_foreach(list, i, n)
		printf("%-24s %-9s %-16s %-5lld %s\n", str(n, "name"), str(n, "type"),
		       str(n, "bridge"), (long long)json_integer_value(json_object_get(n, "nics")),
		       str(n, "subnet"));
}

static const char *const vm_actions[] = {
	"start", "shutdown", "power-off", "reset", "pause", "resume", "save", "restore", NULL,
};

/* The checkpoints as a tree, the current one marked with '*'. */
static void print_tree(json_t *all, const char *parent, const char *current, int depth)
{
	json_t *c;
	size_t i;

	json_array_foreach(all, i, c) {
		const char *name = str(c, "name"), *p = json_string_value(json_object_get(c, "parent"));

		if (parent ? !p || strcmp(p, parent) : p != NULL)
			continue;
		printf("%*s%s %s (%lld bytes)\n", depth * 2, "",
		       current && !strcmp(current, name) ? "*" : "-", name,
		       (long long)json_integer_value(json_object_get(c, "bytes")));
		print_tree(all, name, current, depth + 1);
	}
}

/* One call for a (sub)command of `kind` ("vms" or "networks"). */
static int run(int argc, char **argv, const char *kind, const char *usage)
{
	const char *sub = argc > 1 ? argv[1] : NULL, *method = NULL;
	bool is_vm = !strcmp(kind, "vms");
	struct args a = { 0 };
	struct client c;
	char path[256];
	json_t *body = NULL, *out = NULL;
	int r;

	if (!sub)
		return cli_usage(usage);
	r = parse(argc - 1, argv + 1, usage, &a);
	if (r)
		goto done;
	r = EXIT_USAGE;
	if (!strcmp(sub, "list") && a.npos == 0) {
		method = "GET";
		snprintf(path, sizeof(path), "/v1/%s", kind);
	} else if (!strcmp(sub, "show") && a.npos == 1) {
		method = "GET";
		snprintf(path, sizeof(path), "/v1/%s/%s", kind, a.pos[0]);
	} else if (!strcmp(sub, "delete") && a.npos == 1) {
		method = "DELETE";
		snprintf(path, sizeof(path), "/v1/%s/%s", kind, a.pos[0]);
	} else if (!strcmp(sub, "create") && a.npos == 1) {
		method = "POST";
		snprintf(path, sizeof(path), "/v1/%s", kind);
		set(a.body, "name", json_string(a.pos[0]));
		body = a.body;
	} else if (is_vm && !strcmp(sub, "checkpoints") && a.npos == 1) {
		method = "GET";
		snprintf(path, sizeof(path), "/v1/vms/%s/checkpoints", a.pos[0]);
	} else if (is_vm && !strcmp(sub, "checkpoint") && a.npos == 2) {
		method = "POST";
		snprintf(path, sizeof(path), "/v1/vms/%s/checkpoint", a.pos[0]);
		body = json_pack("{s:s}", "name", a.pos[1]);
		if (a.then)
			set(body, "then", json_string(a.then));
	} else if (is_vm && !strcmp(sub, "revert") && a.npos == 2) {
		method = "POST";
		snprintf(path, sizeof(path), "/v1/vms/%s/checkpoints/%s/revert", a.pos[0], a.pos[1]);
	} else if (is_vm && !strcmp(sub, "delete-checkpoint") && a.npos == 2) {
		method = "DELETE";
		snprintf(path, sizeof(path), "/v1/vms/%s/checkpoints/%s", a.pos[0], a.pos[1]);
	} else if (is_vm && a.npos == 1) {
		for (const char *const *act = vm_actions; *act; act++)
			if (!strcmp(sub, *act))
				method = "POST";
		snprintf(path, sizeof(path), "/v1/vms/%s/%s", a.pos[0], sub);
		if (a.timeout && !strcmp(sub, "shutdown"))
			body = json_pack("{s:i}", "timeout", (int)a.timeout);
	}
	if (a.timeout && strcmp(sub, "shutdown")) {
		cli_err("vm %s: takes no --timeout", sub);
		goto done;
	}
	if (a.then && strcmp(sub, "checkpoint")) {
		cli_err("vm %s: takes no --%s", sub, a.then);
		goto done;
	}
	if (!method) {
		cli_err("%s %s: unknown command or wrong arguments (see --help)",
			is_vm ? "vm" : "net", sub);
		goto done;
	}
	if (strcmp(sub, "create") && json_object_size(a.body)) {
		cli_err("%s %s: takes no creation options", is_vm ? "vm" : "net", sub);
		goto done;
	}
	r = client_init_opts(&c, &a.co);
	if (r)
		goto done;
	r = client_call(&c, method, path, body, &out) < 0 ? 1 : 0;
	client_free(&c);
	if (r == 0) {
		if (a.co.json)
			client_print_json(out);
		else if (!strcmp(sub, "list"))
			(is_vm ? print_vm_table : print_net_table)(out);
		else if (!strcmp(sub, "delete") || !strcmp(sub, "delete-checkpoint"))
			printf("deleted %s\n", a.pos[a.npos - 1]);
		else if (!strcmp(sub, "checkpoints"))
			print_tree(json_object_get(out, "checkpoints"), NULL,
				   json_string_value(json_object_get(out, "current")), 0);
		else
			client_print_fields(out);
	}
done:
	if (body != a.body)
		json_decref(body);
	json_decref(out);
	json_decref(a.body);
	return r < 0 ? 0 : r;
}

int client_vm_main(int argc, char **argv)
{
	return run(argc, argv, "vms", vm_usage);
}

int client_net_main(int argc, char **argv)
{
	return run(argc, argv, "networks", net_usage);
}
