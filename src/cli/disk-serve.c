// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vsrv disk serve FILE --socket PATH | --port N [--bind ADDR] [--readonly]
 *
 * Exports a disk, its parent chain included, over NBD until SIGINT or
 * SIGTERM.  The server is nbdkit running vsrv's VHD plugin: vsrv checks
 * the disk opens, then becomes nbdkit (exec), so the signals, the exit
 * status and the process id are the server's own.
 *
 * On a signal nbdkit takes no new clients and exits, flushing and closing
 * the disk, once the connected ones have gone: nbdkit 1.32 cannot drop a
 * client, and killing it harder would lose the metadata not yet flushed.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "cli.h"

#define PLUGIN_NAME	"nbdkit-vhd-plugin.so"

static const char usage[] =
	"vsrv disk serve FILE --socket PATH | --port N [--bind ADDR] [--readonly]\n"
	"                       [--ignore-checksums] [--ignore-parent-id]";

/*
 * The plugin: $VSRV_NBDKIT_PLUGIN, else beside a vsrv run from its build
 * tree (src/cli/vsrv and src/nbd/), else where `meson install` put it.
 */
static int serve_find_plugin(char *out, size_t len)
{
	const char *env = getenv("VSRV_NBDKIT_PLUGIN");
	char exe[PATH_MAX];
	ssize_t n;

	if (env && *env) {
		if (access(env, R_OK) < 0) {
			cli_err("VSRV_NBDKIT_PLUGIN: %s: %s", env, strerror(errno));
			return -1;
		}
		snprintf(out, len, "%s", env);
		return 0;
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		char *slash;

		exe[n] = '\0';
		slash = strrchr(exe, '/');
		if (slash) {
			*slash = '\0';
			if ((size_t)snprintf(out, len, "%s/../nbd/%s", exe,
					     PLUGIN_NAME) < len &&
			    access(out, R_OK) == 0)
				return 0;
		}
	}
	snprintf(out, len, "%s/%s", VSRV_PLUGINDIR, PLUGIN_NAME);
	if (access(out, R_OK) < 0) {
		cli_err("%s: %s (set VSRV_NBDKIT_PLUGIN to the plugin's path)",
			out, strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * nbdkit cannot bind over an existing file.  A socket that nobody listens
 * on is what a stopped server leaves behind (nbdkit does not remove it),
 * so it goes; anything else is the user's and stays.
 */
static int serve_clear_socket(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	int fd, r;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		cli_err("%s: socket path is longer than %zu bytes", path,
			sizeof(sa.sun_path) - 1);
		return -1;
	}
	if (lstat(path, &st) < 0)
		return 0;
	if (!S_ISSOCK(st.st_mode)) {
		cli_err("%s: exists and is not a socket", path);
		return -1;
	}
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		cli_err("%s: socket: %s", path, strerror(errno));
		return -1;
	}
	r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	close(fd);
	if (r == 0) {
		cli_err("%s: a server is already listening on this socket", path);
		return -1;
	}
	if (errno != ECONNREFUSED) {
		cli_err("%s: %s", path, strerror(errno));
		return -1;
	}
	if (unlink(path) < 0) {
		cli_err("%s: removing the old socket: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * Opens the disk as the server will, so that a missing, malformed or
 * locked disk gets vsrv's one-line error rather than nbdkit's.  It is
 * closed again: the plugin takes the lock itself.
 */
static int serve_check_disk(const char *path, unsigned flags)
{
	struct vhd_open_opts oo = { .flags = flags, .warn = cli_warn_cb };
	struct vhd_error err = { 0 };
	struct vhd *v;
	int r = vhd_open(path, &oo, &v, &err);

	if (r < 0)
		return cli_vhd_fail(path, r, &err);
	r = vhd_close(v);
	if (r < 0)
		return cli_vhd_fail(path, r, NULL);
	return 0;
}

static int serve_parse_port(const char *s, char *out, size_t len)
{
	char *end;
	long port;

	errno = 0;
	port = strtol(s, &end, 10);
	if (errno || end == s || *end || port < 1 || port > 65535) {
		cli_err("--port: '%s' is not a port number (1 to 65535)", s);
		return -1;
	}
	snprintf(out, len, "%ld", port);
	return 0;
}

int disk_serve(int argc, char **argv)
{
	enum { OPT_SOCKET = 1, OPT_PORT, OPT_BIND, OPT_READONLY, OPT_FOREGROUND };
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, OPT_SOCKET },
		{ "port", required_argument, NULL, OPT_PORT },
		{ "bind", required_argument, NULL, OPT_BIND },
		{ "readonly", no_argument, NULL, OPT_READONLY },
		/* The only mode there is; accepted for scripts that say so. */
		{ "foreground", no_argument, NULL, OPT_FOREGROUND },
		DISK_COMMON_OPTS,
		{ NULL, 0, NULL, 0 },
	};
	const char *socket_path = NULL, *bind_addr = NULL, *file;
	char plugin[PATH_MAX], port[8] = "";
	char file_arg[PATH_MAX + 8];
	bool readonly = false;
	unsigned flags = 0;
	const char *args[20];
	int c, n = 0;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case OPT_SOCKET:
			socket_path = optarg;
			break;
		case OPT_PORT:
			if (serve_parse_port(optarg, port, sizeof(port)) < 0)
				return EXIT_USAGE;
			break;
		case OPT_BIND:
			bind_addr = optarg;
			break;
		case OPT_READONLY:
			readonly = true;
			break;
		case OPT_FOREGROUND:
			break;
		case OPT_HELP:
			printf("usage: %s\n", usage);
			return 0;
		default:
			if (disk_common_opt(c, &flags))
				break;
			return cli_usage(usage);
		}
	}
	if (optind != argc - 1)
		return cli_usage(usage);
	file = argv[optind];
	if (!socket_path == !port[0]) {
		cli_err("%s: give one of --socket PATH or --port N", file);
		return EXIT_USAGE;
	}
	if (bind_addr && socket_path) {
		cli_err("%s: --bind goes with --port, not --socket", file);
		return EXIT_USAGE;
	}
	if (snprintf(file_arg, sizeof(file_arg), "file=%s", file) >=
	    (int)sizeof(file_arg)) {
		cli_err("%s: path too long", file);
		return 1;
	}

	if (serve_check_disk(file, flags | (readonly ? 0 : VHD_OPEN_RDWR)))
		return 1;
	if (serve_find_plugin(plugin, sizeof(plugin)) < 0)
		return 1;
	if (socket_path && serve_clear_socket(socket_path) < 0)
		return 1;

	args[n++] = "nbdkit";
	args[n++] = "--foreground";
	args[n++] = "--newstyle";
	if (readonly)
		args[n++] = "--readonly";
	if (socket_path) {
		args[n++] = "--unix";
		args[n++] = socket_path;
	} else {
		args[n++] = "--port";
		args[n++] = port;
		args[n++] = "--ipaddr";
		args[n++] = bind_addr ? bind_addr : "127.0.0.1";
	}
	args[n++] = plugin;
	args[n++] = file_arg;
	if (readonly)
		args[n++] = "readonly=true";
	if (flags & VHD_OPEN_IGNORE_CHECKSUMS)
		args[n++] = "ignore-checksums=true";
	if (flags & VHD_OPEN_IGNORE_PARENT_ID)
		args[n++] = "ignore-parent-id=true";
	args[n] = NULL;

	if (socket_path)
		printf("serving %s on nbd+unix:///?socket=%s\n", file, socket_path);
	else if (bind_addr && strchr(bind_addr, ':'))
		printf("serving %s on nbd://[%s]:%s/\n", file, bind_addr, port);
	else
		printf("serving %s on nbd://%s:%s/\n", file,
		       bind_addr ? bind_addr : "127.0.0.1", port);
	fflush(stdout);
	cli_flush_warnings();
	execvp(args[0], (char **)args);
	cli_err("cannot run nbdkit: %s (see scripts/install-deps)", strerror(errno));
	return 1;
}
