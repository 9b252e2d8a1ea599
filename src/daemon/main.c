// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vsrvd: the management service (docs/vsrvd.md).  Sets the parts up in
 * order (vsrvd.h), then waits for SIGTERM, SIGINT or SIGHUP and takes them
 * down.  Every failure to start is one line "vsrvd: <thing>: <problem>"
 * and exit status 1 (2 for usage).
 *
 *   vsrvd [--state-dir DIR] [--config FILE]
 *   vsrvd routes                 the API's route table (for the tests)
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cgroup.h"
#include "console.h"

static const char usage[] =
	"usage: vsrvd [--state-dir DIR] [--config FILE]\n"
	"--state-dir: the inventory, the socket (DIR/vsrvd.sock), the token and the VMs'\n"
	"             folders; default /var/lib/vsrv for root, else $XDG_DATA_HOME/vsrv.\n"
	"--config:    the configuration file (docs/vsrvd.md); default /etc/vsrv/vsrvd.json\n"
	"             for root, else $XDG_CONFIG_HOME/vsrv/vsrvd.json, if it exists.\n";

static int fail(const char *what, const struct vsrvd_err *e)
{
	fprintf(stderr, "vsrvd: %s%s%s\n", what, e && e->msg[0] ? ": " : "",
		e ? e->msg : "");
	return 1;
}

static char *default_config(void)
{
	const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
	char *p = NULL;

	if (geteuid() == 0)
		p = strdup("/etc/vsrv/vsrvd.json");
	else if (xdg && xdg[0] == '/')
		p = asprintf(&p, "%s/vsrv/vsrvd.json", xdg) < 0 ? NULL : p;
	else if (home)
		p = asprintf(&p, "%s/.config/vsrv/vsrvd.json", home) < 0 ? NULL : p;
	if (p && access(p, F_OK) < 0) {
		free(p);
		p = NULL;
	}
	return p;
}

static int mkdirs(const char *path, mode_t mode)
{
	char buf[PATH_MAX];

	snprintf(buf, sizeof(buf), "%s", path);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	return mkdir(buf, mode) < 0 && errno != EEXIST ? -errno : 0;
}

/* Before any thread starts: on cgroup v2, vsrvd may move itself into a
 * leaf of its own cgroup (cgroup.c says why).  One line says what the
 * VMs' limits will be enforced with. */
static int cgroups_open(struct vsrvd *d)
{
	struct cgroup_where w;
	json_t *desc;
	char *text;

	cgroup_detect(d->cfg.cgroups, &w);
	if (cgroup_host_open(&d->cgroups, &w) < 0)
		return -ENOMEM;
	desc = cgroup_host_describe(d->cgroups);
	text = json_dumps(desc, JSON_COMPACT | JSON_PRESERVE_ORDER);
	fprintf(stderr, "vsrvd: cgroups: %s\n", text ? text : "?");
	free(text);
	json_decref(desc);
	return 0;
}

static int serve(struct vsrvd *d)
{
	struct vsrvd_err e = { 0 };
	char path[PATH_MAX];
	sigset_t stop;
	int lock, sig;

	if (mkdirs(d->cfg.state_dir, 0750) < 0) {
		vsrvd_fail(&e, 0, -errno, "%s", strerror(errno));
		return fail(d->cfg.state_dir, &e);
	}
	snprintf(path, sizeof(path), "%s/vsrvd.lock", d->cfg.state_dir);
	lock = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (lock < 0 || flock(lock, LOCK_EX | LOCK_NB) < 0) {
		fprintf(stderr, "vsrvd: %s: %s\n", d->cfg.state_dir, lock < 0 ? strerror(errno) :
			"another vsrvd serves this state directory");
		return 1;
	}
	if (auth_load_token(d->cfg.token_file, &d->token, &e) < 0)
		return fail("token", &e);
	if (d->cfg.tls_cert && tls_load(&d->cfg, &d->tls_cert_pem, &d->tls_key_pem, &e) < 0)
		return fail(e.msg, NULL);
	snprintf(path, sizeof(path), "%s/inventory.db", d->cfg.state_dir);
	if (inventory_open(&d->inv, path, d->cfg.mac_prefix, &e) < 0)
		return fail("inventory", &e);

	/* Blocked in every thread from here: only sigwait() takes them. */
	sigemptyset(&stop);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &stop, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (cgroups_open(d) < 0 || events_create(&d->ev, d->inv) < 0 ||
	    consoles_create(&d->con, d->cfg.log_max_bytes, d->cfg.log_keep) < 0 ||
	    supervisor_create(&d->sv, d) < 0 ||
	    jobs_create(&d->jobs, d, d->cfg.max_jobs) < 0)
		return fail("starting", NULL);
	network_restore_all(d);
	supervisor_resume(d->sv);
	if (api_start(&d->api, d, &e) < 0) {
		supervisor_destroy(d->sv);
		consoles_destroy(d->con);
		return fail("api", &e);
	}
	events_log(d->ev, "service.started", NULL, "vsrvd %s, state in %s", VSRV_VERSION,
		   d->cfg.state_dir);
	while (sigwait(&stop, &sig) != 0)
		;
	events_log(d->ev, "service.stopping", NULL, "%s: each VM as its on_stop says (default %s)",
		   strsignal(sig), d->cfg.on_stop);
	events_shutdown(d->ev);
	consoles_shutdown(d->con);	/* its viewers are upgraded connections */
	api_stop(d->api);
	jobs_destroy(d->jobs);
	supervisor_stop_all(d->sv);
	supervisor_destroy(d->sv);
	consoles_destroy(d->con);
	events_destroy(d->ev);
	cgroup_host_close(d->cgroups);
	inventory_close(d->inv);
	unlink(d->cfg.socket_path);
	close(lock);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "state-dir", required_argument, NULL, 's' },
		{ "config", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct vsrvd d = { .vm_list.lock = PTHREAD_MUTEX_INITIALIZER };
	struct vsrvd_err e = { 0 };
	const char *state_dir = NULL;
	char *config = NULL, self[PATH_MAX];
	ssize_t n;
	int c, r;

	for (int i = 0; i < VM_CACHE_SLOTS; i++)
		pthread_mutex_init(&d.vm_one[i].lock, NULL);
	if (argc == 2 && !strcmp(argv[1], "routes")) {
		api_print_routes();
		return 0;
	}
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			state_dir = optarg;
			break;
		case 'c':
			free(config);
			config = strdup(optarg);
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		default:
			fputs(usage, stderr);
			return 2;
		}
	}
	if (optind != argc) {
		fputs(usage, stderr);
		return 2;
	}
	if (!config)
		config = default_config();
	if (config_load(&d.cfg, config, state_dir, &e) < 0) {
		free(config);
		config_free(&d.cfg);
		return fail("config", &e);
	}
	free(config);
	/* The monitor is beside vsrvd. */
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	self[n > 0 ? n : 0] = 0;
	if (strrchr(self, '/'))
		strcpy(strrchr(self, '/') + 1, "vsrvd-monitor");
	d.monitor = self;
	d.started_ms = now_ms();
	r = serve(&d);
	free(d.token);
	free(d.tls_cert_pem);
	if (d.tls_key_pem)
		explicit_bzero(d.tls_key_pem, strlen(d.tls_key_pem));
	free(d.tls_key_pem);
	free(d.vm_list.text);
	for (int i = 0; i < VM_CACHE_SLOTS; i++)
		free(d.vm_one[i].text);
	config_free(&d.cfg);
	return r;
}
