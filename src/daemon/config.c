// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vsrvd's configuration file (docs/vsrvd.md): where it listens, the token,
 * the directories VMs' files and disks may live in, and the defaults.  A
 * JSON object read strictly: an unknown field is an error, so a misspelt
 * setting never silently stays at its default.  Every field is optional.
 *
 * The state directory holds the inventory, the socket, the token and one
 * folder per VM: /var/lib/vsrv for root, $XDG_DATA_HOME/vsrv otherwise,
 * or --state-dir.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vhd.h"
#include "vsrvd.h"

int vsrvd_fail(struct vsrvd_err *e, int status, int r, const char *fmt, ...)
{
	va_list ap;

	if (e) {
		e->status = status;
		va_start(ap, fmt);
		vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
		va_end(ap);
	}
	return r;
}

void free_strv(char **v)
{
	for (char **p = v; p && *p; p++)
		free(*p);
	free(v);
}

char *config_default_state_dir(void)
{
	const char *xdg = getenv("XDG_DATA_HOME"), *home = getenv("HOME");
	char *out = NULL;

	if (geteuid() == 0)
		return strdup("/var/lib/vsrv");
	if (xdg && xdg[0] == '/') {
		if (asprintf(&out, "%s/vsrv", xdg) < 0)
			return NULL;
	} else if (home && home[0] == '/') {
		if (asprintf(&out, "%s/.local/share/vsrv", home) < 0)
			return NULL;
	}
	return out;
}

static char *path_in(const char *dir, const char *name)
{
	char *out;

	return asprintf(&out, "%s/%s", dir, name) < 0 ? NULL : out;
}

static int strv_from_json(json_t *arr, char ***out, const char *what, struct vsrvd_err *e)
{
	size_t i, n = json_array_size(arr);
	char **v = calloc(n + 1, sizeof(*v));
	json_t *s;

	if (!v)
		return -ENOMEM;
	json_array_foreach(arr, i, s) {
		if (!json_is_string(s) || json_string_value(s)[0] != '/') {
			free_strv(v);
			return vsrvd_fail(e, 0, -EINVAL, "%s: expected absolute paths", what);
		}
		v[i] = strdup(json_string_value(s));
	}
	free_strv(*out);
	*out = v;
	return 0;
}

static int size_from_json(json_t *v, uint64_t *out, const char *what, struct vsrvd_err *e)
{
	if (json_is_integer(v) && json_integer_value(v) >= 0) {
		*out = (uint64_t)json_integer_value(v);
		return 0;
	}
	if (json_is_string(v) && vhd_parse_size(json_string_value(v), out) == 0)
		return 0;
	return vsrvd_fail(e, 0, -EINVAL, "%s: expected a size (\"64K\", \"1M\" or bytes)", what);
}

static int parse_mac_prefix(const char *s, uint8_t out[3])
{
	unsigned b[3];
	char tail;

	if (sscanf(s, "%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &tail) != 3 || strlen(s) != 8)
		return -EINVAL;
	/* Locally administered (bit 1) and unicast (bit 0 clear): never a
	 * vendor's address, never a multicast one. */
	if ((b[0] & 3) != 2)
		return -EINVAL;
	for (int i = 0; i < 3; i++)
		out[i] = (uint8_t)b[i];
	return 0;
}

static int apply_file(struct vsrvd_config *cfg, const char *path, struct vsrvd_err *e)
{
	json_t *root, *vm_dirs = NULL, *disk_dirs = NULL, *dmem = NULL, *lmax = NULL,
	       *body = NULL;
	const char *sock = NULL, *group = NULL, *tcp = NULL, *token = NULL, *vsrv = NULL,
		   *mac = NULL, *policy = NULL, *on_stop = NULL, *cgroups = NULL,
		   *tls_cert = NULL, *tls_key = NULL;
	int dvcpus = -1, binit = -1, bmax = -1, stop_ms = -1, keep = -1, conns = -1, jobs = -1;
	int ctl_ms = -1, save_ms = -1, shut_s = -1;
	json_error_t je;
	int r = -EINVAL;

	root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
	if (!root) {
		if (je.position == 0 && access(path, F_OK) < 0)
			return vsrvd_fail(e, 0, -ENOENT, "%s: %s", path, strerror(errno));
		return vsrvd_fail(e, 0, -EINVAL, "%s: line %d, column %d: %s", path, je.line,
				  je.column, je.text);
	}
	if (json_unpack_ex(root, &je, JSON_STRICT,
			   "{s?s, s?s, s?s, s?s, s?o, s?o, s?s, s?s, s?{s?i, s?o, s?s},"
			   " s?{s?i, s?i}, s?i, s?i, s?i, s?i, s?{s?o, s?i}, s?o, s?s, s?i, s?s, s?i,"
			   " s?s, s?s}",
			   "socket", &sock, "socket_group", &group, "tcp", &tcp,
			   "token_file", &token, "vm_dirs", &vm_dirs, "disk_dirs", &disk_dirs,
			   "vsrv", &vsrv, "mac_prefix", &mac,
			   "defaults", "vcpus", &dvcpus, "memory", &dmem, "restart_policy", &policy,
			   "restart_backoff", "initial_ms", &binit, "max_ms", &bmax,
			   "stop_timeout_ms", &stop_ms, "control_timeout_ms", &ctl_ms,
			   "save_timeout_ms", &save_ms, "shutdown_timeout_s", &shut_s,
			   "log", "max_size", &lmax, "keep", &keep,
			   "max_body", &body, "on_stop", &on_stop, "max_connections", &conns,
			   "cgroups", &cgroups, "max_jobs", &jobs,
			   "tls_cert", &tls_cert, "tls_key", &tls_key) < 0) {
		vsrvd_fail(e, 0, -EINVAL, "%s: %s", path, je.text);
		goto out;
	}
#define SETSTR(field, v) do { if (v) { free(cfg->field); cfg->field = strdup(v); } } while (0)
	SETSTR(socket_path, sock);
	SETSTR(socket_group, group);
	SETSTR(tcp_listen, tcp);
	SETSTR(token_file, token);
	SETSTR(vsrv_bin, vsrv);
	SETSTR(tls_cert, tls_cert);
	SETSTR(tls_key, tls_key);
#undef SETSTR
	/* TLS is the TCP listener's (the Unix socket's peers are local). */
	if (!cfg->tls_cert != !cfg->tls_key) {
		vsrvd_fail(e, 0, -EINVAL, "%s: %s without %s: TLS needs both", path,
			   cfg->tls_cert ? "tls_cert" : "tls_key",
			   cfg->tls_cert ? "tls_key" : "tls_cert");
		goto out;
	}
	if (cfg->tls_cert && !cfg->tcp_listen) {
		vsrvd_fail(e, 0, -EINVAL, "%s: tls_cert and tls_key are for the TCP listener: set tcp",
			   path);
		goto out;
	}
	if (vm_dirs && (!json_is_array(vm_dirs) ||
			strv_from_json(vm_dirs, &cfg->vm_dirs, "vm_dirs", e) < 0)) {
		vsrvd_fail(e, 0, -EINVAL, "%s: vm_dirs: expected an array of absolute paths", path);
		goto out;
	}
	if (disk_dirs && (!json_is_array(disk_dirs) ||
			  strv_from_json(disk_dirs, &cfg->disk_dirs, "disk_dirs", e) < 0)) {
		vsrvd_fail(e, 0, -EINVAL, "%s: disk_dirs: expected an array of absolute paths",
			   path);
		goto out;
	}
	if (mac && parse_mac_prefix(mac, cfg->mac_prefix) < 0) {
		vsrvd_fail(e, 0, -EINVAL,
			   "%s: mac_prefix: expected three bytes \"x2:xx:xx\" (locally administered, unicast)",
			   path);
		goto out;
	}
	if (dvcpus != -1) {
		if (dvcpus < 1 || dvcpus > 16) {
			vsrvd_fail(e, 0, -EINVAL, "%s: defaults.vcpus: expected 1 to 16", path);
			goto out;
		}
		cfg->def_vcpus = (unsigned)dvcpus;
	}
	if (dmem && size_from_json(dmem, &cfg->def_memory, "defaults.memory", e) < 0)
		goto out;
	if (policy) {
		if (strcmp(policy, "never") && strcmp(policy, "on-crash") && strcmp(policy, "always")) {
			vsrvd_fail(e, 0, -EINVAL,
				   "%s: defaults.restart_policy: expected never, on-crash or always", path);
			goto out;
		}
		free(cfg->def_restart_policy);
		cfg->def_restart_policy = strdup(policy);
	}
	if (on_stop) {
		if (strcmp(on_stop, "leave") && strcmp(on_stop, "power-off") &&
		    strcmp(on_stop, "shutdown") && strcmp(on_stop, "save")) {
			vsrvd_fail(e, 0, -EINVAL,
				   "%s: on_stop: expected leave, power-off, shutdown or save", path);
			goto out;
		}
		free(cfg->on_stop);
		cfg->on_stop = strdup(on_stop);
	}
	if (cgroups) {
		if (strcmp(cgroups, "auto") && strcmp(cgroups, "v1") && strcmp(cgroups, "v2") &&
		    strcmp(cgroups, "off")) {
			vsrvd_fail(e, 0, -EINVAL, "%s: cgroups: expected auto, v1, v2 or off", path);
			goto out;
		}
		free(cfg->cgroups);
		cfg->cgroups = strdup(cgroups);
	}
	if (jobs != -1) {
		if (jobs < 1 || jobs > 16) {
			vsrvd_fail(e, 0, -EINVAL, "%s: max_jobs: expected 1 to 16", path);
			goto out;
		}
		cfg->max_jobs = (unsigned)jobs;
	}
	if (binit > 0)
		cfg->backoff_ms = (unsigned)binit;
	if (bmax > 0)
		cfg->backoff_max_ms = (unsigned)bmax;
	if (stop_ms > 0)
		cfg->stop_timeout_ms = (unsigned)stop_ms;
	if (ctl_ms > 0)
		cfg->control_timeout_ms = (unsigned)ctl_ms;
	if (save_ms > 0)
		cfg->save_timeout_ms = (unsigned)save_ms;
	if (shut_s != -1) {
		if (shut_s < 1 || shut_s > 86400) {
			vsrvd_fail(e, 0, -EINVAL, "%s: shutdown_timeout_s: expected 1 to 86400", path);
			goto out;
		}
		cfg->shutdown_timeout_s = (unsigned)shut_s;
	}
	if (keep >= 0)
		cfg->log_keep = (unsigned)keep;
	if (conns > 0)
		cfg->threads_max = (unsigned)conns;
	if (lmax && size_from_json(lmax, &cfg->log_max_bytes, "log.max_size", e) < 0)
		goto out;
	if (body) {
		uint64_t b;

		if (size_from_json(body, &b, "max_body", e) < 0)
			goto out;
		cfg->max_body = (size_t)b;
	}
	r = 0;
out:
	json_decref(root);
	return r;
}

/* vsrv beside vsrvd (an installed prefix), or where a build tree has it. */
static char *find_vsrv(void)
{
	static const char *const rel[] = { "vsrv", "../cli/vsrv" };
	char self[PATH_MAX], *slash, *out;
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (n > 0) {
		self[n] = 0;
		slash = strrchr(self, '/');
		*slash = 0;
		for (size_t i = 0; i < 2; i++) {
			if (asprintf(&out, "%s/%s", self, rel[i]) < 0)
				break;
			if (access(out, X_OK) == 0)
				return out;
			free(out);
		}
	}
	return strdup("vsrv");
}

int config_load(struct vsrvd_config *cfg, const char *path, const char *state_dir,
		struct vsrvd_err *e)
{
	char *sd = state_dir ? strdup(state_dir) : config_default_state_dir();
	int r;

	memset(cfg, 0, sizeof(*cfg));
	if (!sd)
		return vsrvd_fail(e, 0, -EINVAL,
				  "state directory: no HOME or XDG_DATA_HOME (use --state-dir)");
	cfg->state_dir = sd;
	cfg->def_vcpus = 1;
	cfg->def_memory = 256ull << 20;
	cfg->def_restart_policy = strdup("never");
	cfg->backoff_ms = 1000;
	cfg->backoff_max_ms = 60000;
	cfg->stop_timeout_ms = 10000;
	cfg->control_timeout_ms = 10000;
	cfg->save_timeout_ms = 600000;
	cfg->shutdown_timeout_s = 60;
	cfg->log_max_bytes = 1 << 20;
	cfg->log_keep = 3;
	cfg->max_body = 64 << 10;
	cfg->on_stop = strdup("leave");
	cfg->threads_max = 256;
	cfg->cgroups = strdup("auto");
	cfg->max_jobs = 2;
	memcpy(cfg->mac_prefix, "\x02\x76\x73", 3);	/* 02:'v':'s' */
	cfg->vm_dirs = calloc(2, sizeof(char *));
	cfg->disk_dirs = calloc(2, sizeof(char *));
	if (cfg->vm_dirs)
		cfg->vm_dirs[0] = path_in(sd, "images");
	if (cfg->disk_dirs)
		cfg->disk_dirs[0] = path_in(sd, "disks");
	if (path) {
		r = apply_file(cfg, path, e);
		if (r < 0)
			return r;
	}
	if (!cfg->socket_path)
		cfg->socket_path = path_in(sd, "vsrvd.sock");
	if (!cfg->token_file)
		cfg->token_file = path_in(sd, "token");
	if (!cfg->vsrv_bin)
		cfg->vsrv_bin = find_vsrv();
	return 0;
}

void config_free(struct vsrvd_config *cfg)
{
	free(cfg->state_dir);
	free(cfg->socket_path);
	free(cfg->socket_group);
	free(cfg->tcp_listen);
	free(cfg->token_file);
	free_strv(cfg->vm_dirs);
	free_strv(cfg->disk_dirs);
	free(cfg->vsrv_bin);
	free(cfg->def_restart_policy);
	free(cfg->on_stop);
	free(cfg->cgroups);
	free(cfg->tls_cert);
	free(cfg->tls_key);
}

static bool under(char *const *dirs, const char *real)
{
	for (char *const *d = dirs; d && *d; d++) {
		char dreal[PATH_MAX];
		size_t n;

		if (!realpath(*d, dreal))
			continue;
		n = strlen(dreal);
		if (!strncmp(real, dreal, n) && (real[n] == '/' || (n == 1 && dreal[0] == '/')))
			return true;
	}
	return false;
}

int config_path_allowed(char *const *dirs, const char *what, const char *path,
			char **real, struct vsrvd_err *e)
{
	char buf[PATH_MAX];

	if (path[0] != '/')
		return vsrvd_fail(e, 400, -EINVAL, "%s: '%s' is not an absolute path", what, path);
	if (!realpath(path, buf))
		return vsrvd_fail(e, 400, -errno, "%s: %s: %s", what, path, strerror(errno));
	if (!under(dirs, buf))
		return vsrvd_fail(e, 403, -EACCES,
				  "%s: %s is outside the directories the configuration allows", what,
				  path);
	*real = strdup(buf);
	return *real ? 0 : -ENOMEM;
}

int config_new_path_allowed(char *const *dirs, const char *what, const char *path,
			    char **real, struct vsrvd_err *e)
{
	const char *slash = strrchr(path, '/');
	char *dir, buf[PATH_MAX];

	if (path[0] != '/' || !slash || !slash[1] || !strcmp(slash, "/.") || !strcmp(slash, "/.."))
		return vsrvd_fail(e, 400, -EINVAL, "%s: '%s' is not an absolute file path", what,
				  path);
	dir = strndup(path, (size_t)(slash - path) + (slash == path));
	if (!dir)
		return -ENOMEM;
	if (!realpath(dir, buf)) {
		int r = -errno;

		free(dir);
		return vsrvd_fail(e, 400, r, "%s: %s: %s", what, path, strerror(-r));
	}
	free(dir);
	if (strlen(buf) + strlen(slash) >= sizeof(buf))
		return vsrvd_fail(e, 400, -ENAMETOOLONG, "%s: path too long", what);
	strcat(buf, slash);
	if (!under(dirs, buf))
		return vsrvd_fail(e, 403, -EACCES,
				  "%s: %s is outside the directories the configuration allows", what,
				  path);
	*real = strdup(buf);
	return *real ? 0 : -ENOMEM;
}
