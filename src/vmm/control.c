// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The control socket's server, in the supervisor (control.h,
 * docs/control.md): clients, their lines, the VM's state, and the
 * requests relayed to the current boot.  It lives in `vsrv`'s poll loop
 * (supervise.c), so that it outlives reboots and holds no thread.
 *
 * Clients are untrusted and may be slow or gone: every socket is
 * non-blocking, a line is bounded (protocol.h), each client's unsent
 * output is bounded (CLIENT_OUT_MAX; past it the client is dropped, never
 * waited for), and so are the clients (CLIENTS_MAX) and the requests
 * waiting for the VM (QUEUE_MAX; past it, "busy").  Requests for the VM
 * go to the boot one at a time, in order; their replies go back to the
 * client that asked, if it is still there.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../control/protocol.h"
#include "../devices/devices.h"
#include "control.h"
#include "savefile.h"

#define CLIENTS_MAX		16
#define CLIENT_OUT_MAX		(1u << 20)
#define QUEUE_MAX		32
#define SHUTDOWN_TIMEOUT	60

_Static_assert(CTL_POLL_MAX >= CLIENTS_MAX + 2, "a pollfd for each client, the listener, the boot");

struct client {
	int fd;
	uint64_t serial;	/* replies find their client by it */
	struct ctl_lines in;
	char *out;
	size_t out_len;
	bool events;
	bool eof;		/* it sent all it will: it stays for its replies */
	bool dead;		/* to be dropped (not at once: callers hold it) */
	unsigned pending;	/* its requests waiting for the VM */
};

struct queued {
	struct ctl_request req;
	uint64_t client;	/* 0: the server's own (a shutdown's reset) */
};

struct ctl_server {
	/* The run's configuration: its disks' undo modes and checkpoint
	 * layers change as the clients ask (disks.c). */
	struct vmm_config *cfg;
	struct unix_listener listener;	/* listen.c: the socket's path */
	struct client *clients[CLIENTS_MAX];
	unsigned nr_clients;
	uint64_t next_serial;
	enum ctl_state state;
	struct timespec started;
	unsigned boots;
	pid_t boot_pid;
	int chan;		/* the boot's channel, -1 between boots */
	bool boot_running;	/* it said so: requests may go */
	struct queued queue[QUEUE_MAX];
	unsigned q_head, q_len;
	bool in_flight;		/* the queue's head is at the boot */
	bool shutdown;		/* a shutdown's timeout is running */
	bool shutdown_reboot;
	uint64_t shutdown_timeout;
	struct timespec deadline;
	const char *stop_reason;
	char stop_msg[4200];
	/* A save in progress: the file the boot writes (path.partial until
	 * it is whole), and the state to go back to if it fails. */
	int save_fd;
	char *save_path, *save_tmp;
	enum ctl_state before_save;
	double restore_seconds;	/* the boot's restore, if it was one */
	/* Checkpoints (--checkpoints): the index (vmm_supervise's); a
	 * revert's state file, for the next boot (pending until the VM said
	 * yes, then next); the current boot's; the disks' new layers a
	 * checkpoint or revert in flight made. */
	struct ckpt_index *ckpt;
	char *revert_pending, *revert_next, *boot_restore;
	struct vmm_new_layers layers;
	bool saved;		/* the VM ended by `save` */
};

static double since(const struct timespec *t)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t->tv_sec) + (double)(now.tv_nsec - t->tv_nsec) / 1e9;
}

/* --- clients --- */

static void client_drop(struct ctl_server *s, unsigned i)
{
	struct client *c = s->clients[i];

	close(c->fd);
	ctl_lines_free(&c->in);
	free(c->out);
	free(c);
	s->clients[i] = s->clients[--s->nr_clients];
}

/* What it can without blocking; false when the client is gone. */
static bool client_flush(struct client *c)
{
	while (c->out_len) {
		ssize_t n = send(c->fd, c->out, c->out_len, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
		memmove(c->out, c->out + n, c->out_len - (size_t)n);
		c->out_len -= (size_t)n;
	}
	return true;
}

/* Queues msg (consumed) for c; false when c must go (it reads too little
 * or left). */
static bool client_send(struct client *c, json_t *msg)
{
	size_t len;
	char *line = ctl_encode(msg, &len), *out;

	json_decref(msg);
	if (!line)
		return true;	/* out of memory: this message is lost, not the client */
	if (c->out_len + len > CLIENT_OUT_MAX) {
		free(line);
		return false;
	}
	out = realloc(c->out, c->out_len + len);
	if (!out) {
		free(line);
		return true;
	}
	memcpy(out + c->out_len, line, len);
	c->out = out;
	c->out_len += len;
	free(line);
	return client_flush(c);
}

static struct client *client_find(struct ctl_server *s, uint64_t serial, unsigned *index)
{
	for (unsigned i = 0; i < s->nr_clients; i++)
		if (s->clients[i]->serial == serial) {
			if (index)
				*index = i;
			return s->clients[i];
		}
	return NULL;
}

/* A client that has said all it will, been answered and taken it all. */
static bool client_done(const struct client *c)
{
	return c->eof && !c->pending && !c->out_len;
}

static void send_to(struct ctl_server *s, uint64_t serial, json_t *msg)
{
	struct client *c = client_find(s, serial, NULL);

	if (!c || c->dead) {
		json_decref(msg);
		return;
	}
	if (!client_send(c, msg))
		c->dead = true;
}

/* Drops the clients that are gone or done, once nobody holds them. */
static void sweep(struct ctl_server *s)
{
	for (unsigned i = 0; i < s->nr_clients; i++)
		if (s->clients[i]->dead || client_done(s->clients[i]))
			client_drop(s, i--);
}

static void broadcast(struct ctl_server *s, const char *name, json_t *data)
{
	json_t *ev = ctl_event(name, data);

	for (unsigned i = 0; i < s->nr_clients; i++)
		if (s->clients[i]->events && !s->clients[i]->dead &&
		    !client_send(s->clients[i], json_incref(ev)))
			s->clients[i]->dead = true;
	json_decref(ev);
}

static void set_state(struct ctl_server *s, enum ctl_state st)
{
	enum ctl_state old = s->state;

	if (old == st)
		return;
	s->state = st;
	broadcast(s, "state", json_pack("{s:s,s:s}", "state", ctl_state_name(st), "previous",
					 ctl_state_name(old)));
}

/* --- status and stats --- */

static json_t *config_summary(const struct vmm_config *cfg)
{
	return json_pack("{s:s*,s:s*,s:i,s:I,s:s*,s:s*,s:s*,s:s,s:b,s:I,s:s,s:o,s:o}",
			 "name", cfg->name, "uuid", cfg->uuid, "vcpus", (int)cfg->vm.nr_cpus,
			 "memory", (json_int_t)cfg->vm.mem_size, "kernel", cfg->boot.kernel,
			 "initrd", cfg->boot.initrd, "cmdline", cfg->boot.cmdline,
			 "console", cfg->console ? cfg->console : "stdio", "rng", cfg->rng,
			 "halt_poll_ns", (json_int_t)cfg->vm.halt_poll_ns,
			 "on_reboot", cfg->on_reboot == ON_REBOOT_EXIT ? "exit" : "restart",
			 "disks", vmm_config_disks_json(cfg), "nics", vmm_config_nics_json(cfg));
}

static json_t *status(struct ctl_server *s)
{
	json_t *st = json_pack("{s:s,s:f,s:i,s:i,s:o}", "state", ctl_state_name(s->state),
			       "uptime", since(&s->started), "boots", (int)s->boots,
			       "pid", (int)getpid(), "config", config_summary(s->cfg));

	if (st && s->boot_restore)
		json_object_set_new(st, "restored", json_pack("{s:s,s:f}", "file", s->boot_restore,
							      "seconds", s->restore_seconds));
	return st;
}

/* A process's resident memory in bytes (/proc/PID/status), or 0. */
static uint64_t rss(pid_t pid)
{
	char path[64], line[256];
	unsigned long long kb = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %llu kB", &kb) == 1)
			break;
	fclose(f);
	return kb * 1024;
}

/* The boot's counters, with what only the supervisor sees: the two
 * processes' resident memory (the console is vsrv's). */
static json_t *add_rss(struct ctl_server *s, json_t *ret)
{
	uint64_t self = rss(getpid()), vm = rss(s->boot_pid);

	json_object_set_new(ret, "rss", json_pack("{s:I,s:I,s:I}", "vsrv", (json_int_t)self,
						  "vm", (json_int_t)vm,
						  "total", (json_int_t)(self + vm)));
	return ret;
}

/* --- requests --- */

static void queue_pop(struct ctl_server *s)
{
	ctl_request_free(&s->queue[s->q_head].req);
	s->q_head = (s->q_head + 1) % QUEUE_MAX;
	s->q_len--;
	s->in_flight = false;
}

static void reply_head(struct ctl_server *s, json_t *msg)
{
	uint64_t serial = s->queue[s->q_head].client;
	struct client *c = client_find(s, serial, NULL);

	if (c)
		c->pending--;
	queue_pop(s);
	send_to(s, serial, msg);
}

static bool is(const struct ctl_request *req, const char *name)
{
	return !strcmp(req->cmd->name, name);
}

/* A state in which the VM can take the command, or an error. */
static json_t *check_state(struct ctl_server *s, const struct ctl_request *req)
{
	enum ctl_state st = s->state;

	/* Saved, or being saved: the VM must not go on from there. */
	if (st == CTL_STATE_SAVING && !is(req, "stats"))
		return ctl_error(req->id, CTL_E_WRONG_STATE, "the VM is being saved");
	if (is(req, "pause") && st == CTL_STATE_PAUSED)
		return ctl_error(req->id, CTL_E_WRONG_STATE, "the VM is paused already");
	if (is(req, "resume") && st != CTL_STATE_PAUSED)
		return ctl_error(req->id, CTL_E_WRONG_STATE, "the VM is not paused (it is %s)",
				 ctl_state_name(st));
	if (is(req, "shutdown") && s->shutdown)
		return ctl_error(req->id, CTL_E_WRONG_STATE, "the VM is shutting down already");
	return NULL;
}

/* The boot's op for a relayed request. */
static const char *op_of(const struct ctl_request *req)
{
	if (is(req, "shutdown"))
		return ctl_arg_bool(req, "reboot", false) ? "ctrl-alt-del" : "button";
	return req->cmd->name;
}

/* --- save: the supervisor opens the file, the boot writes it --- */

static void save_done(struct ctl_server *s, bool keep)
{
	if (s->save_fd >= 0)
		close(s->save_fd);
	if (!keep && s->save_tmp)
		unlink(s->save_tmp);
	free(s->save_path);
	free(s->save_tmp);
	s->save_fd = -1;
	s->save_path = s->save_tmp = NULL;
}

/* The file the VM's state goes to, as FILE.partial until it is whole:
 * an error reply, or NULL and s->save_fd. */
static json_t *save_open(struct ctl_server *s, const struct ctl_request *req, const char *path)
{
	struct stat st;

	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
		return ctl_error(req->id, CTL_E_FAILED, "%s: is a directory", path);
	s->save_path = strdup(path);
	if (!s->save_path || asprintf(&s->save_tmp, "%s.partial", path) < 0) {
		s->save_tmp = NULL;
		save_done(s, false);
		return ctl_error(req->id, CTL_E_FAILED, "out of memory");
	}
	s->save_fd = open(s->save_tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (s->save_fd < 0) {
		json_t *e = ctl_error(req->id, CTL_E_FAILED, "%s: %s", path, strerror(errno));

		free(s->save_tmp);	/* not ours to unlink */
		s->save_tmp = NULL;
		save_done(s, false);
		return e;
	}
	return NULL;
}

/* The state a checkpoint left the VM in, as its process says: paused
 * (it stayed so, or "then" asked for it), or running, which is
 * shutting-down while a shutdown's timeout runs (as after a resume). */
static enum ctl_state after_checkpoint(const struct ctl_server *s, json_t *ret)
{
	json_t *paused = json_object_get(ret, "paused");

	if (!json_is_boolean(paused))
		return s->before_save;
	if (json_is_true(paused))
		return CTL_STATE_PAUSED;
	return s->shutdown ? CTL_STATE_SHUTTING_DOWN : CTL_STATE_RUNNING;
}

/* The boot wrote it: durable, then under its name.  frozen: a
 * checkpoint's disks' layers (consumed). */
static json_t *save_finish(struct ctl_server *s, const struct ctl_request *req, json_t *ret,
			   json_t *frozen)
{
	uint64_t bytes = (uint64_t)json_integer_value(json_object_get(ret, "bytes"));
	struct timespec t0;
	json_t *reply;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (fsync(s->save_fd) < 0 || rename(s->save_tmp, s->save_path) < 0) {
		reply = ctl_error(req->id, CTL_E_FAILED, "%s: %s (the state is in %s)",
				  s->save_path, strerror(errno), s->save_tmp);
		save_done(s, true);
		json_decref(frozen);
		/* A checkpoint's VM went on all the same (a save's is off). */
		if (is(req, "checkpoint"))
			set_state(s, after_checkpoint(s, ret));
		return reply;
	}
	if (is(req, "checkpoint")) {
		const char *name = ctl_arg_str(req, "name");
		int r = ckpt_add(s->ckpt, name, bytes, frozen);

		set_state(s, after_checkpoint(s, ret));
		reply = r < 0 ? ctl_error(req->id, CTL_E_FAILED, "checkpoint %s: its index: %s",
					  name, strerror(-r)) :
			ctl_reply(req->id, json_pack("{s:s,s:s,s:I,s:s}", "name", name, "file",
						     s->save_path, "bytes", (json_int_t)bytes,
						     "state", ctl_state_name(s->state)));
		save_done(s, true);
		json_decref(frozen);
		return reply;
	}
	json_decref(frozen);
	/* Its disks' stamps are in it: the run's end merges none of them. */
	s->saved = true;
	snprintf(s->stop_msg, sizeof(s->stop_msg),
		 "the VM's state was saved to %s (%llu bytes); the VM is off", s->save_path,
		 (unsigned long long)bytes);
	s->stop_reason = s->stop_msg;
	/* How long the VM took to write it (to the page cache), and the
	 * sync after: bench/ctl-run's figures. */
	reply = ctl_reply(req->id, json_pack("{s:s,s:I,s:O,s:f}", "file", s->save_path, "bytes",
					     (json_int_t)bytes, "write_seconds",
					     json_object_get(ret, "write_seconds"), "sync_seconds",
					     since(&t0)));
	save_done(s, true);
	return reply;
}

/* --- checkpoints (checkpoints.c keeps the index) --- */

/* A checkpoint's or revert's file, checked before the VM is asked: an
 * error reply, or NULL. */
static json_t *checkpoint_prepare(struct ctl_server *s, const struct ctl_request *req)
{
	const char *name = ctl_arg_str(req, "name");
	char *path, err[1200];
	struct sf_reader r;
	json_t *e = NULL;
	int rc;

	if (!s->ckpt)
		return ctl_error(req->id, CTL_E_NOT_SUPPORTED,
				 "no checkpoints without a folder for them (vsrv run --checkpoints DIR)");
	if (!ckpt_name_ok(name))
		return ctl_error(req->id, CTL_E_BAD_ARGUMENTS,
				 "name: 1 to 64 letters, digits, '.', '_' or '-', not starting with '.'");
	if (is(req, "checkpoint") == ckpt_exists(s->ckpt, name))
		return ctl_error(req->id, CTL_E_FAILED, is(req, "checkpoint") ?
				 "checkpoint %s exists (delete-checkpoint it first)" :
				 "no checkpoint %s", name);
	path = ckpt_path(s->ckpt, name);
	if (!path)
		return ctl_error(req->id, CTL_E_FAILED, "out of memory");
	if (is(req, "checkpoint")) {
		e = save_open(s, req, path);
		free(path);
		/* Each writable disk's new layer, over its top, for the VM to
		 * go on in once the state is written. */
		if (!e && (rc = vmm_disks_checkpoint_begin(s->cfg, s->ckpt, name, &s->layers, err,
							   sizeof(err))) < 0) {
			save_done(s, false);
			e = ctl_error(req->id, rc == -EOPNOTSUPP ? CTL_E_NOT_SUPPORTED : CTL_E_FAILED,
				      "%s", err);
		}
		return e;
	}
	/* A revert stops the VM: what will not restore must not get so far,
	 * nor a disk that could not go back with it. */
	if (sf_open(&r, path, err, sizeof(err)) < 0) {
		free(path);
		return ctl_error(req->id, CTL_E_FAILED, "%s", err);
	}
	sf_close(&r);
	if (vmm_disks_revert_begin(s->cfg, s->ckpt, name, &s->layers, err, sizeof(err)) < 0) {
		free(path);
		return ctl_error(req->id, CTL_E_FAILED, "%s", err);
	}
	free(s->revert_pending);
	s->revert_pending = path;
	return NULL;
}

/* checkpoints and delete-checkpoint: the supervisor's alone. */
static json_t *checkpoint_local(struct ctl_server *s, const struct ctl_request *req)
{
	const char *name = ctl_arg_str(req, "name");
	char *path;
	bool busy;
	int r;

	if (!s->ckpt)
		return ctl_error(req->id, CTL_E_NOT_SUPPORTED,
				 "no checkpoints without a folder for them (vsrv run --checkpoints DIR)");
	if (is(req, "checkpoints"))
		return ctl_reply(req->id, ckpt_list(s->ckpt));
	if (!ckpt_name_ok(name) || !ckpt_exists(s->ckpt, name))
		return ctl_error(req->id, CTL_E_FAILED, "no checkpoint %s", ckpt_name_ok(name) ?
				 name : "of that name");
	/* The next boot needs its file and its layers. */
	path = ckpt_path(s->ckpt, name);
	busy = path && ((s->revert_pending && !strcmp(path, s->revert_pending)) ||
			(s->revert_next && !strcmp(path, s->revert_next)));
	free(path);
	if (busy)
		return ctl_error(req->id, CTL_E_WRONG_STATE, "the VM is being reverted to checkpoint %s",
				 name);
	r = ckpt_delete(s->ckpt, name);
	if (r < 0)
		return ctl_error(req->id, CTL_E_FAILED, "delete-checkpoint %s: %s", name,
				 strerror(-r));
	/* Its disks' layers that nothing needs now go (the one the VM runs
	 * over stays until the run ends: docs/control.md). */
	return ctl_reply(req->id, json_pack("{s:o}", "removed", vmm_disks_tidy(s->cfg, s->ckpt)));
}

/* undo MODE: what every undo disk's run comes to at its end. */
static json_t *undo(struct ctl_server *s, const struct ctl_request *req)
{
	enum disk_undo mode = disk_undo_parse(ctl_arg_str(req, "mode"));
	json_t *disks;

	if (mode == DISK_UNDO_NONE)
		return ctl_error(req->id, CTL_E_BAD_ARGUMENTS, "mode: commit, discard or keep");
	if (!vmm_disks_undo_set(s->cfg, mode))
		return ctl_error(req->id, CTL_E_NOT_SUPPORTED,
				 "the VM has no undo disk (--disk ...,undo=commit|keep|discard)");
	disks = vmm_config_disks_json(s->cfg);
	return ctl_reply(req->id, json_pack("{s:o}", "disks", disks));
}

/* What goes to the boot with a request: the op, and for a save the undo
 * modes now, for a checkpoint its disks' new layers (their descriptors
 * after the file's, in *fds). */
static json_t *boot_request(struct ctl_server *s, const struct ctl_request *req, int *fds,
			    unsigned *nr_fds)
{
	json_t *msg = json_pack("{s:s}", "op", op_of(req)), *a;

	*nr_fds = 0;
	if (is(req, "save") || is(req, "checkpoint"))
		fds[(*nr_fds)++] = s->save_fd;
	if (is(req, "save")) {
		json_t *disks = vmm_config_disks_json(s->cfg), *d;
		size_t i;

		a = json_array();
		json_array_foreach(disks, i, d)
			json_array_append(a, json_object_get(d, "undo"));
		json_decref(disks);
		json_object_set_new(msg, "undo", a);
	}
	if (is(req, "checkpoint")) {
		if (ctl_arg_str(req, "then"))
			json_object_set_new(msg, "then", json_string(ctl_arg_str(req, "then")));
		a = json_array();
		for (unsigned k = 0; k < s->layers.n; k++) {
			const struct vmm_new_layer *l = &s->layers.l[k];

			json_array_append_new(a, json_pack("{s:i,s:s,s:b}", "disk", (int)l->disk,
							   "file", l->file, "direct",
							   l->direct_fd >= 0));
			fds[(*nr_fds)++] = l->fd;
			if (l->direct_fd >= 0)
				fds[(*nr_fds)++] = l->direct_fd;
		}
		json_object_set_new(msg, "disks", a);
	}
	return msg;
}

/* The layers a checkpoint or revert made, when the VM does not take
 * them (it failed, or never answered: a checkpoint's children stay the
 * tops then, as the index has them already, since the VM may have
 * switched to them before it ended: an empty child reads as its
 * parent). */
static void layers_abandon(struct ctl_server *s, const struct ctl_request *req)
{
	if (is(req, "checkpoint"))
		json_decref(vmm_disks_checkpoint_end(s->cfg, s->ckpt, &s->layers, 0));
	else if (is(req, "revert"))
		vmm_disks_revert_end(s->cfg, s->ckpt, &s->layers, false);
}

/* Once sent, the descriptors are the VM's: the supervisor's go (a lock
 * stays with the VM's). */
static void layers_sent(struct ctl_server *s)
{
	for (unsigned k = 0; k < s->layers.n; k++) {
		struct vmm_new_layer *l = &s->layers.l[k];

		if (l->fd >= 0)
			close(l->fd);
		if (l->direct_fd >= 0)
			close(l->direct_fd);
		l->fd = l->direct_fd = -1;
	}
}

/* Sends the queue's head to the boot when it can take it. */
static void queue_run(struct ctl_server *s)
{
	while (s->q_len && !s->in_flight && s->chan >= 0 && s->boot_running) {
		struct queued *q = &s->queue[s->q_head];
		json_t *err = q->client ? check_state(s, &q->req) : NULL, *msg;
		bool saving = is(&q->req, "save") || is(&q->req, "checkpoint");
		int fds[CTL_CHAN_FDS_MAX], r;
		unsigned nr_fds;

		if (!err && is(&q->req, "save"))
			err = save_open(s, &q->req, ctl_arg_str(&q->req, "file"));
		else if (!err && (is(&q->req, "checkpoint") || is(&q->req, "revert")))
			err = checkpoint_prepare(s, &q->req);
		if (err) {
			reply_head(s, err);
			continue;
		}
		msg = boot_request(s, &q->req, fds, &nr_fds);
		r = msg ? ctl_chan_send_fds(s->chan, msg, fds, nr_fds) : -ENOMEM;
		json_decref(msg);
		if (r < 0) {
			if (saving)
				save_done(s, false);
			layers_abandon(s, &q->req);
			reply_head(s, ctl_error(q->req.id, CTL_E_FAILED, "relaying to the VM: %s",
						strerror(-r)));
			continue;
		}
		layers_sent(s);
		s->in_flight = true;
		if (saving) {
			s->before_save = s->state;
			set_state(s, CTL_STATE_SAVING);
		}
	}
}

static void enqueue(struct ctl_server *s, struct ctl_request *req, uint64_t client)
{
	struct client *c;

	if (s->q_len == QUEUE_MAX) {
		send_to(s, client, ctl_error(req->id, CTL_E_BUSY,
					     "%d requests wait for the VM already", QUEUE_MAX));
		ctl_request_free(req);
		return;
	}
	c = client_find(s, client, NULL);
	if (c)
		c->pending++;
	s->queue[(s->q_head + s->q_len++) % QUEUE_MAX] = (struct queued){ .req = *req,
									  .client = client };
	queue_run(s);
}

static void timespec_add(struct timespec *t, uint64_t sec)
{
	clock_gettime(CLOCK_MONOTONIC, t);
	t->tv_sec += (time_t)sec;
}

/* A checkpoint's "switched": a bit per disk index. */
static uint32_t switched(json_t *list)
{
	uint32_t bits = 0;
	json_t *v;
	size_t i;

	json_array_foreach(list, i, v)
		if (json_integer_value(v) >= 0 && json_integer_value(v) < VMM_DISKS_MAX)
			bits |= 1u << json_integer_value(v);
	return bits;
}

/* The boot answered the head of the queue. */
static void boot_replied(struct ctl_server *s, json_t *msg)
{
	struct queued *q = &s->queue[s->q_head];
	json_t *ret = json_object_get(msg, "return"), *err = json_object_get(msg, "error");
	const struct ctl_request *req = &q->req;
	json_t *frozen = NULL;

	if (!s->in_flight || !s->q_len)
		return;	/* a reply to nothing: ignored */
	/* The disks that went on in a checkpoint's new layers, whether or
	 * not the checkpoint as a whole was made. */
	if (is(req, "checkpoint"))
		frozen = vmm_disks_checkpoint_end(s->cfg, s->ckpt, &s->layers,
						  switched(json_object_get(msg, "switched")));
	else if (is(req, "revert"))
		vmm_disks_revert_end(s->cfg, s->ckpt, &s->layers, ret != NULL);
	if (!ret) {
		const char *code = json_string_value(json_object_get(err, "code"));
		const char *m = json_string_value(json_object_get(err, "message"));

		json_decref(frozen);
		if (is(req, "save") || is(req, "checkpoint")) {
			save_done(s, false);
			set_state(s, s->before_save);
		}
		free(s->revert_pending);
		s->revert_pending = NULL;
		reply_head(s, ctl_error(req->id, code ? code : CTL_E_FAILED, "%s",
					m ? m : "the VM could not do it"));
		return;
	}
	if (is(req, "save") || is(req, "checkpoint")) {
		reply_head(s, save_finish(s, req, ret, frozen));
		return;
	}
	if (is(req, "revert")) {
		/* The VM powers off; the next boot starts from the checkpoint,
		 * on its disks' new layers. */
		free(s->revert_next);
		s->revert_next = s->revert_pending;
		s->revert_pending = NULL;
		ckpt_set_current(s->ckpt, ctl_arg_str(req, "name"));
	}
	json_incref(ret);
	if (is(req, "pause")) {
		set_state(s, CTL_STATE_PAUSED);
	} else if (is(req, "resume")) {
		set_state(s, s->shutdown ? CTL_STATE_SHUTTING_DOWN : CTL_STATE_RUNNING);
	} else if (is(req, "stats")) {
		ret = add_rss(s, ret);
	} else if (is(req, "shutdown") && q->client) {
		s->shutdown = true;
		s->shutdown_reboot = ctl_arg_bool(req, "reboot", false);
		s->shutdown_timeout = ctl_arg_uint(req, "timeout", SHUTDOWN_TIMEOUT);
		timespec_add(&s->deadline, s->shutdown_timeout);
		if (s->state != CTL_STATE_PAUSED)
			set_state(s, CTL_STATE_SHUTTING_DOWN);
		json_object_set_new(ret, "timeout", json_integer((json_int_t)s->shutdown_timeout));
	}
	reply_head(s, ctl_reply(req->id, ret));
}

/* A request the server answers itself, or relays. */
static enum ctl_action request(struct ctl_server *s, struct client *c, struct ctl_request *req)
{
	if (is(req, "status")) {
		send_to(s, c->serial, ctl_reply(req->id, status(s)));
	} else if (is(req, "events")) {
		c->events = ctl_arg_bool(req, "enable", true);
		send_to(s, c->serial, ctl_reply(req->id, NULL));
	} else if (is(req, "checkpoints") || is(req, "delete-checkpoint")) {
		send_to(s, c->serial, checkpoint_local(s, req));
	} else if (is(req, "undo")) {
		send_to(s, c->serial, undo(s, req));
	} else if (is(req, "power-off")) {
		send_to(s, c->serial, ctl_reply(req->id, NULL));
		ctl_request_free(req);
		if (s->stop_reason)
			return CTL_ACT_NONE;
		s->stop_reason = "powered off through the control socket";
		return CTL_ACT_POWER_OFF;
	} else {
		enqueue(s, req, c->serial);
		return CTL_ACT_NONE;
	}
	ctl_request_free(req);
	return CTL_ACT_NONE;
}

/* Reads what the client sent and answers each whole line; false when it
 * is gone. */
static bool client_read(struct ctl_server *s, struct client *c, enum ctl_action *act)
{
	size_t room;
	char *p = ctl_lines_space(&c->in, &room), *line;
	ssize_t n = recv(c->fd, p, room, MSG_DONTWAIT);
	size_t len;
	int r;

	if (n < 0)
		return errno == EAGAIN || errno == EINTR;
	if (n == 0) {
		/* Half-closed after its requests (echo ... | socat): it
		 * gets its replies first. */
		c->eof = true;
		return !client_done(c);
	}
	ctl_lines_added(&c->in, (size_t)n);
	while ((r = ctl_lines_next(&c->in, &line, &len)) != 0) {
		struct ctl_request req;
		json_t *err;
		enum ctl_action a;

		if (r < 0) {
			if (!client_send(c, ctl_error(json_null(), CTL_E_LINE_TOO_LONG,
						      "a line is at most %u bytes", CTL_LINE_MAX)))
				return false;
			continue;
		}
		if (strspn(line, " \t\r") == len)
			continue;	/* blank lines are nobody's request */
		if (ctl_request_parse(line, len, &req, &err) < 0) {
			if (!client_send(c, err))
				return false;
			continue;
		}
		a = request(s, c, &req);
		if (a != CTL_ACT_NONE)
			*act = a;
		if (c->dead)
			return false;
	}
	return true;
}

static void client_accept(struct ctl_server *s)
{
	int fd = accept4(s->listener.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	struct client *c;

	if (fd < 0)
		return;
	c = s->nr_clients < CLIENTS_MAX ? calloc(1, sizeof(*c)) : NULL;
	if (!c || ctl_lines_init(&c->in) < 0) {
		json_t *e = ctl_error(json_null(), CTL_E_BUSY, "%d clients are connected already",
				      CLIENTS_MAX);
		size_t len;
		char *line = ctl_encode(e, &len);

		if (line && send(fd, line, len, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
			len = 0;
		free(line);
		json_decref(e);
		free(c);
		close(fd);
		return;
	}
	c->fd = fd;
	c->serial = ++s->next_serial;
	s->clients[s->nr_clients++] = c;
	if (!client_send(c, ctl_greeting(VSRV_VERSION)))
		c->dead = true;
}

/* --- the boot --- */

static void fail_queue(struct ctl_server *s, const char *why)
{
	while (s->q_len) {
		struct queued *q = &s->queue[s->q_head];

		reply_head(s, ctl_error(q->req.id, CTL_E_VM_ENDED, "%s", why));
	}
}

static void boot_message(struct ctl_server *s)
{
	json_t *msg;
	int fd, r;

	while ((r = ctl_chan_recv(s->chan, &msg, &fd)) != -EAGAIN) {
		if (fd >= 0)
			close(fd);
		if (r < 0) {
			/* The boot's end closed: its process is ending. */
			if (r == -EPIPE) {
				close(s->chan);
				s->chan = -1;
			}
			return;
		}
		if (json_object_get(msg, "event")) {
			if (!strcmp(json_string_value(json_object_get(msg, "event")) ?: "",
				    "running")) {
				s->boot_running = true;
				s->restore_seconds = json_real_value(
					json_object_get(msg, "restore_seconds"));
				set_state(s, s->shutdown ? CTL_STATE_SHUTTING_DOWN : CTL_STATE_RUNNING);
			}
		} else {
			boot_replied(s, msg);
		}
		json_decref(msg);
		queue_run(s);
	}
}

/* The shutdown's time is up: power off, or reset for a reboot. */
static enum ctl_action shutdown_expired(struct ctl_server *s)
{
	struct ctl_request req = { .cmd = ctl_command_find("reset") };

	s->shutdown = false;
	broadcast(s, "shutdown-timeout", json_pack("{s:I,s:s}", "timeout",
						   (json_int_t)s->shutdown_timeout, "action",
						   s->shutdown_reboot ? "reset" : "power-off"));
	if (s->shutdown_reboot) {
		enqueue(s, &req, 0);
		return CTL_ACT_NONE;
	}
	if (s->stop_reason)
		return CTL_ACT_NONE;
	snprintf(s->stop_msg, sizeof(s->stop_msg),
		 "the guest did not shut down within %llu s; the VM was powered off",
		 (unsigned long long)s->shutdown_timeout);
	s->stop_reason = s->stop_msg;
	return CTL_ACT_POWER_OFF;
}

/* --- the supervisor's interface --- */

int ctl_server_open(struct ctl_server **out, struct vmm_config *cfg, struct ckpt_index *ckpt,
		    char *err, size_t errlen)
{
	struct ctl_server *s = calloc(1, sizeof(*s));
	int r;

	if (!s) {
		snprintf(err, errlen, "control: out of memory");
		return -ENOMEM;
	}
	s->cfg = cfg;
	s->listener = (struct unix_listener){ .fd = -1, .lock_fd = -1 };
	s->chan = s->save_fd = -1;
	s->state = CTL_STATE_STARTING;
	clock_gettime(CLOCK_MONOTONIC, &s->started);
	s->boot_restore = cfg->restore ? strdup(cfg->restore) : NULL;
	s->ckpt = ckpt;
	r = unix_listen(&s->listener, "control", cfg->control, 4, err, errlen);
	if (r < 0) {
		ctl_server_forget(s);
		free(s->boot_restore);
		free(s);
		return r;
	}
	*out = s;
	return 0;
}

void ctl_server_forget(struct ctl_server *s)
{
	if (!s)
		return;
	for (unsigned i = 0; i < s->nr_clients; i++)
		close(s->clients[i]->fd);
	if (s->listener.fd >= 0)
		close(s->listener.fd);
	if (s->listener.lock_fd >= 0)
		close(s->listener.lock_fd);
	if (s->chan >= 0)
		close(s->chan);
}

void ctl_server_close(struct ctl_server *s)
{
	if (!s)
		return;
	fail_queue(s, "the VM is off");
	set_state(s, CTL_STATE_OFF);
	/* Last words, as far as each client takes them now. */
	for (unsigned i = 0; i < s->nr_clients; i++)
		client_flush(s->clients[i]);
	if (s->listener.bound)
		unlink(s->cfg->control);
	ctl_server_forget(s);
	s->listener = (struct unix_listener){ .fd = -1, .lock_fd = -1 };
	s->chan = -1;
	while (s->nr_clients) {
		s->clients[0]->fd = -1;
		ctl_lines_free(&s->clients[0]->in);
		free(s->clients[0]->out);
		free(s->clients[0]);
		s->clients[0] = s->clients[--s->nr_clients];
	}
	free(s->revert_pending);
	free(s->revert_next);
	free(s->boot_restore);
	free(s);
}

const char *ctl_server_take_restore(struct ctl_server *s)
{
	if (!s)
		return NULL;
	free(s->boot_restore);
	s->boot_restore = s->revert_next;
	s->revert_next = NULL;
	return s->boot_restore;
}

void ctl_server_boot_started(struct ctl_server *s, pid_t pid, int chan)
{
	if (s->boots)
		broadcast(s, "reboot", json_pack("{s:i}", "boot", (int)s->boots + 1));
	s->boots++;
	s->boot_pid = pid;
	s->chan = chan;
	s->boot_running = false;
	set_state(s, CTL_STATE_STARTING);
	sweep(s);
}

void ctl_server_boot_ended(struct ctl_server *s, bool again)
{
	if (s->chan >= 0)
		close(s->chan);
	s->chan = -1;
	s->boot_running = false;
	s->boot_pid = 0;
	s->shutdown = false;
	if (s->save_fd >= 0)
		save_done(s, false);	/* the boot ended in the middle */
	/* A checkpoint's layers are the tops from here (the VM may have
	 * switched before it ended, and an empty one reads as its parent);
	 * a revert's go. */
	if (s->in_flight && s->q_len && is(&s->queue[s->q_head].req, "checkpoint"))
		json_decref(vmm_disks_checkpoint_end(s->cfg, s->ckpt, &s->layers, UINT32_MAX));
	else if (s->in_flight && s->q_len)
		layers_abandon(s, &s->queue[s->q_head].req);
	fail_queue(s, again ? "the VM reset before it answered" : "the VM is off");
	if (!again)
		broadcast(s, "power-off", json_pack("{s:s}", "reason",
						    s->stop_reason ? s->stop_reason : "the guest"));
	sweep(s);
}

unsigned ctl_server_poll(struct ctl_server *s, struct pollfd *p, int *timeout)
{
	unsigned n = 0;

	p[n++] = (struct pollfd){ .fd = s->listener.fd, .events = POLLIN };
	p[n++] = (struct pollfd){ .fd = s->chan, .events = POLLIN };
	for (unsigned i = 0; i < s->nr_clients; i++)
		p[n++] = (struct pollfd){ .fd = s->clients[i]->fd,
					  .events = (s->clients[i]->eof ? 0 : POLLIN) |
						    (s->clients[i]->out_len ? POLLOUT : 0) };
	*timeout = -1;
	if (s->shutdown) {
		double left = -since(&s->deadline);

		*timeout = left <= 0 ? 0 : (int)(left * 1000) + 1;
	}
	return n;
}

enum ctl_action ctl_server_handle(struct ctl_server *s, const struct pollfd *p, unsigned n)
{
	enum ctl_action act = CTL_ACT_NONE;

	if (s->chan >= 0 && p[1].fd == s->chan && p[1].revents)
		boot_message(s);
	/* The pollfds are in the clients' order: none is dropped before
	 * the sweep. */
	for (unsigned i = 0; i < s->nr_clients && 2 + i < n; i++) {
		struct client *c = s->clients[i];
		short ev = p[2 + i].revents;

		if (!ev || c->dead || p[2 + i].fd != c->fd)
			continue;
		if ((ev & POLLOUT) && !client_flush(c))
			c->dead = true;
		else if ((ev & (POLLIN | POLLHUP | POLLERR)) && !c->eof &&
			 !client_read(s, c, &act))
			c->dead = true;
		else if (c->eof && (ev & (POLLERR | POLLHUP)))
			c->dead = true;
	}
	if (p[0].revents & POLLIN)
		client_accept(s);
	if (s->shutdown && since(&s->deadline) >= 0) {
		enum ctl_action a = shutdown_expired(s);

		if (a != CTL_ACT_NONE)
			act = a;
	}
	sweep(s);
	return act;
}

const char *ctl_server_stop_reason(const struct ctl_server *s)
{
	return s ? s->stop_reason : NULL;
}

bool ctl_server_saved(const struct ctl_server *s)
{
	return s && s->saved;
}
