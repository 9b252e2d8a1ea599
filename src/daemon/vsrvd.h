/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vsrvd, the management service: the parts and how they meet.
 *
 *   config.c      the configuration file and the state directory
 *   inventory.c   SQLite: VMs, networks, MACs, disks, the event log
 *   vmspec.c      validating request bodies (no I/O but realpath)
 *   events.c      the event log's writer and its live subscribers (SSE)
 *   supervisor.c  one monitored `vsrv run` per running VM
 *   cgroup.c      VMs' CPU and memory limits, through cgroups v1 or v2
 *   actions.c     what goes through a VMM's control socket (vmm-ctl.c)
 *   jobs.c        disk jobs (convert, commit, compact) on worker threads
 *   vmm-client.c  how the supervisor starts and ends one VMM (monitor.c)
 *   vmconf.c      a VM's vm.json for `vsrv run --config`
 *   network.c     internal networks' bridges and dnsmasq
 *   console*.c    the VMs' serial consoles: console.log, WebSocket viewers
 *   rotlog.c      console.log and vmm.log (the monitor's), rotated as written
 *   api*.c        the REST API on libmicrohttpd; auth.c the token, tls.c
 *                 the TCP listener's certificate
 *   metrics.c     /metrics;  host.c /v1/host
 *
 * Functions return 0 or a negative errno; where a person must read why,
 * they also fill a message buffer (struct vsrvd_err) that the API returns
 * as {"error": "..."} and the command line prints as "vsrvd: ...".
 */
#ifndef VSRVD_H
#define VSRVD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <spawn.h>

#include <jansson.h>

struct vsrvd_err {
	int status;		/* HTTP status that fits, 0 if not yet chosen */
	char msg[512];
};

int vsrvd_fail(struct vsrvd_err *e, int status, int r, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* ---- config.c ---- */

struct vsrvd_config {
	char *state_dir;
	char *socket_path;		/* DIR/vsrvd.sock */
	char *socket_group;		/* group owning the socket, or NULL */
	char *tcp_listen;		/* "ADDR:PORT", or NULL for no TCP */
	char *tls_cert, *tls_key;	/* PEM files: TCP is HTTPS (tls.c) */
	char *token_file;		/* DIR/token */
	char **vm_dirs;			/* kernels and initrds may be under these */
	char **disk_dirs;		/* and disks under these */
	char *vsrv_bin;			/* the `vsrv` that runs VMs */
	uint8_t mac_prefix[3];
	unsigned def_vcpus;
	uint64_t def_memory;
	char *def_restart_policy;
	unsigned backoff_ms, backoff_max_ms;
	unsigned stop_timeout_ms;
	unsigned control_timeout_ms;	/* a VMM's answer on its control socket */
	unsigned save_timeout_ms;	/* a save's or a checkpoint's */
	unsigned shutdown_timeout_s;	/* a shutdown's, unless the request says */
	uint64_t log_max_bytes;
	unsigned log_keep;
	size_t max_body;
	char *on_stop;			/* "leave", "power-off", "shutdown" or "save" */
	unsigned threads_max;		/* connection limit */
	char *cgroups;			/* "auto", "v1", "v2" or "off" (cgroup.c) */
	unsigned max_jobs;		/* disk jobs running at once (jobs.c) */
};

int config_load(struct vsrvd_config *cfg, const char *path, const char *state_dir,
		struct vsrvd_err *e);
void config_free(struct vsrvd_config *cfg);
/* The default state directory: /var/lib/vsrv for root, else
 * $XDG_DATA_HOME/vsrv (~/.local/share/vsrv).  Allocated. */
char *config_default_state_dir(void);
/* 0 if `path` (which must exist) resolves under one of `dirs`; the
 * resolved path in *real (allocated).  -EACCES with a message if not. */
int config_path_allowed(char *const *dirs, const char *what, const char *path,
			char **real, struct vsrvd_err *e);
/* The same for a file to be created: its folder must resolve under one. */
int config_new_path_allowed(char *const *dirs, const char *what, const char *path,
			    char **real, struct vsrvd_err *e);

/* ---- inventory.c ---- */

struct inventory;

int inventory_open(struct inventory **out, const char *path, const uint8_t mac_prefix[3],
		   struct vsrvd_err *e);
void inventory_close(struct inventory *inv);
int inventory_schema_version(struct inventory *inv);
/* A number that moves whenever anything a GET shows changes (every write
 * here, and the supervisor's own changes through inventory_touch()): an
 * answer built at one generation is good until it moves. */
uint64_t inventory_generation(struct inventory *inv);
void inventory_touch(struct inventory *inv);

/* VMs are JSON objects with the fields of vmspec.c, plus "id", "state",
 * "created_at" and, when running, what the supervisor adds. */
int inventory_vm_create(struct inventory *inv, json_t *spec, json_t **out, struct vsrvd_err *e);
int inventory_vm_get(struct inventory *inv, const char *name, json_t **out, struct vsrvd_err *e);
int inventory_vm_list(struct inventory *inv, json_t **out);
int inventory_vm_update(struct inventory *inv, const char *name, json_t *changes,
			json_t **out, struct vsrvd_err *e);
int inventory_vm_delete(struct inventory *inv, const char *name, struct vsrvd_err *e);
/* The runtime columns: state, and the monitor's pid (0 when none). */
int inventory_vm_set_state(struct inventory *inv, const char *name, const char *state,
			   int monitor_pid, const char *last_exit);
int inventory_vm_names(struct inventory *inv, const char *where_state, char ***names);

int inventory_net_create(struct inventory *inv, json_t *spec, json_t **out, struct vsrvd_err *e);
int inventory_net_get(struct inventory *inv, const char *name, json_t **out, struct vsrvd_err *e);
int inventory_net_list(struct inventory *inv, json_t **out);
int inventory_net_delete(struct inventory *inv, const char *name, struct vsrvd_err *e);

int inventory_disk_add(struct inventory *inv, json_t *rec, struct vsrvd_err *e);
int inventory_disk_get(struct inventory *inv, const char *name, json_t **out, struct vsrvd_err *e);
int inventory_disk_list(struct inventory *inv, json_t **out);
int inventory_disk_delete(struct inventory *inv, const char *name, struct vsrvd_err *e);

/* Disk jobs (jobs.c).  A new one is queued, and the oldest finished ones
 * beyond the newest `keep` go. */
int inventory_job_add(struct inventory *inv, const char *type, const json_t *spec,
		      int64_t created_at, int keep, int64_t *id, struct vsrvd_err *e);
int inventory_job_save(struct inventory *inv, int64_t id, const char *state, uint64_t done,
		       uint64_t total, const char *error, const json_t *result,
		       int64_t started_at, int64_t finished_at);
/* The newest `limit` jobs, oldest first, as rows (spec and result parsed). */
int inventory_job_list(struct inventory *inv, int limit, json_t **out);

int inventory_event_add(struct inventory *inv, int64_t time_ms, const char *type,
			const char *vm, const char *msg, int64_t *id);
/* Events after `after_id`, oldest first, at most `limit`. */
int inventory_event_list(struct inventory *inv, int64_t after_id, int limit, const char *vm,
			 json_t **out);

void free_strv(char **v);

/* ---- vmspec.c ---- */

enum spec_kind { SPEC_VM_CREATE, SPEC_VM_UPDATE, SPEC_NET, SPEC_DISK, SPEC_SHUTDOWN,
		 SPEC_CHECKPOINT, SPEC_JOB, NR_SPEC_KINDS };

/* Checks a request body and returns the normalised object (defaults
 * filled, sizes in bytes, paths resolved) in *out. */
int spec_check(enum spec_kind kind, const json_t *body, const struct vsrvd_config *cfg,
	       json_t **out, struct vsrvd_err *e);
/* Parses a body: a JSON object, no duplicate keys, at most max bytes. */
int spec_parse_body(const char *buf, size_t len, json_t **out, struct vsrvd_err *e);
bool spec_valid_name(const char *s);
bool spec_is_vhd(const char *path);
/* Fields a PATCH may change while the VM runs. */
bool spec_field_live(const char *name);

/* ---- events.c ---- */

struct events;

int events_create(struct events **out, struct inventory *inv);
void events_destroy(struct events *ev);
void events_log(struct events *ev, const char *type, const char *vm, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Waits up to timeout_ms for an event after *last; returns them (JSON
 * array, maybe empty), NULL when the service is stopping. */
json_t *events_wait(struct events *ev, int64_t *last, int timeout_ms);
int64_t events_last_id(struct events *ev);
void events_shutdown(struct events *ev);

/* ---- supervisor.c ---- */

struct supervisor;
struct vsrvd;
struct cgroup_host;

int supervisor_create(struct supervisor **out, struct vsrvd *d);
void supervisor_destroy(struct supervisor *sv);
/* Adopts VMMs left running by an earlier vsrvd, then starts autostart VMs. */
int supervisor_resume(struct supervisor *sv);
/* Actions on one VM; 409 and a message if the state does not fit.  A
 * start of a saved VM restores it; `restore` refuses any other. */
int supervisor_start(struct supervisor *sv, const char *name, bool restore,
		     struct vsrvd_err *e);
int supervisor_power_off(struct supervisor *sv, const char *name, struct vsrvd_err *e);
/* Through the VMM's control socket (actions.c): pause, resume, shutdown
 * (args: timeout), reset, save, checkpoint, revert, delete-checkpoint
 * (args: name), checkpoints (its list in *result). */
int supervisor_control(struct supervisor *sv, const char *name, const char *action,
		       json_t *args, json_t **result, struct vsrvd_err *e);
/* Each running VM's `stats`, by name, without waiting long for any. */
json_t *supervisor_stats(struct supervisor *sv);
/* Adds runtime fields (pid, uptime, restarts) to a VM object. */
void supervisor_describe(struct supervisor *sv, json_t *vm);
bool supervisor_is_active(struct supervisor *sv, const char *name);
/* Stops or leaves every VM as config's on_stop says. */
void supervisor_stop_all(struct supervisor *sv);
/* Drops what the supervisor knows of a VM that is deleted or renamed. */
void supervisor_forget(struct supervisor *sv, const char *name);
/* A PATCH's CPU weight, CPU cap or memory limit (in changes, over vm) into
 * the cgroup of a VM that runs; 409 and a message if the cgroup refuses. */
int supervisor_set_limits(struct supervisor *sv, const char *name, const json_t *vm,
			  const json_t *changes, struct vsrvd_err *e);

/* ---- jobs.c ---- */

struct jobs;

/* Loads the record (failing what an earlier vsrvd left unfinished) and
 * starts `workers` threads. */
int jobs_create(struct jobs **out, struct vsrvd *d, unsigned workers);
/* Cancels what runs and waits for it. */
void jobs_destroy(struct jobs *js);
/* Queues a checked spec (vmspec.c's SPEC_JOB, its "source" resolved, a
 * commit's "parent" found); 409 if a job works on one of its files. */
int jobs_submit(struct jobs *js, json_t *spec, json_t **out, struct vsrvd_err *e);
int jobs_get(struct jobs *js, int64_t id, json_t **out, struct vsrvd_err *e);
int jobs_list(struct jobs *js, json_t **out);
/* A queued job is cancelled at once, a running one when libvhd has put
 * its files back (the answer waits for that); 409 for one that is over. */
int jobs_cancel(struct jobs *js, int64_t id, json_t **out, struct vsrvd_err *e);
/* 409 and a message if a queued or running job reads or writes path. */
int jobs_busy(struct jobs *js, const char *path, struct vsrvd_err *e);
/* 409 and a message if a queued or running job writes a file the spec
 * uses, or uses one it writes (jobs_submit checks it again). */
int jobs_conflict(struct jobs *js, const json_t *spec, struct vsrvd_err *e);

/* ---- network.c ---- */

int network_setup(struct vsrvd *d, json_t *net, struct vsrvd_err *e);
int network_teardown(struct vsrvd *d, json_t *net);
int network_restore_all(struct vsrvd *d);

/* ---- auth.c ---- */

int auth_load_token(const char *path, char **token, struct vsrvd_err *e);
bool auth_check(const char *header, const char *token);

/* ---- tls.c ---- */

/* cfg's tls_cert and tls_key, checked (PEM, the key not readable by
 * others and the certificate's, the certificate valid now): their texts
 * (allocated) for libmicrohttpd, or a message naming the file and the
 * problem. */
int tls_load(const struct vsrvd_config *cfg, char **cert, char **key, struct vsrvd_err *e);

/* ---- host.c, metrics.c ---- */

json_t *host_info(void);
char *metrics_render(struct vsrvd *d, size_t *len);

/* ---- api.c ---- */

struct api;

int api_start(struct api **out, struct vsrvd *d, struct vsrvd_err *e);
void api_stop(struct api *api);
void api_print_routes(void);

/* A GET's answer as text, the inventory generation it is of, and what it
 * answered (a VM's name; "" for the list).  api-vms.c. */
struct answer_cache {
	pthread_mutex_t lock;
	uint64_t generation;
	char key[72];
	char *text;
	size_t len;
};

#define VM_CACHE_SLOTS	64

/* The service: what every part may reach. */
struct vsrvd {
	struct answer_cache vm_list;
	struct answer_cache vm_one[VM_CACHE_SLOTS];
	struct vsrvd_config cfg;
	struct inventory *inv;
	struct events *ev;
	struct supervisor *sv;
	struct consoles *con;		/* console.c */
	struct cgroup_host *cgroups;	/* cgroup.h */
	struct jobs *jobs;
	struct api *api;
	char *token;
	char *tls_cert_pem;		/* the files' texts when TCP is HTTPS */
	char *tls_key_pem;
	char *monitor;			/* vsrvd-monitor, beside vsrvd */
	uint64_t started_ms;
};

uint64_t now_ms(void);
uint64_t mono_ms(void);
/* Writes a whole file through a temporary and rename(). */
int write_file_atomic(const char *path, const char *data, size_t len, unsigned mode);
/* Reads a small file (at most max bytes), NUL-terminated. */
int read_small_file(const char *path, char *buf, size_t max);
/* posix_spawn (posix_spawnp for a bare name) with no signal blocked or
 * ignored: vsrvd's threads block the stop signals, and a child must not
 * inherit that (dnsmasq would never end at SIGTERM).  Optionally in a
 * session of its own.  0 or a negative errno. */
int spawn_clean(pid_t *pid, const char *path, const posix_spawn_file_actions_t *fa,
		char *const argv[], bool new_session);
/* A non-blocking connection to the Unix socket NAME in DIR (a VMM's
 * control or console socket).  DIR may be deeper than the 107 bytes a
 * socket's address takes: then the address is the folder through
 * /proc/self/fd, which the kernel resolves like any path.  The fd, or a
 * negative errno (-ECONNREFUSED for a server not ready yet). */
int unix_connect_in(const char *dir, const char *name);

#endif
