// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The VMs' serial consoles: vsrvd is the client of each running VM's
 * console socket (vm.json says "socket:console.sock", vmconf.c), keeps
 * what the guest prints in console.log, and relays it to WebSocket
 * viewers (GET /v1/vms/{name}/console, api-console.c), whose input goes
 * to the guest.
 *
 * Why a socket, read by vsrvd, rather than file:console.log: the VMM's
 * socket console keeps what no client has taken yet in its ring
 * (console_buffer, 1 MiB), so output is never lost while vsrvd is down or
 * restarting, and it takes input; a file console has no input, and its
 * file can only be rotated by copy-and-truncate, which loses what is
 * written in between.  Here the log is vsrvd's own file (rotlog.c),
 * rotated exactly, whether or not anyone watches.
 *
 * One thread (epoll) serves every VM's socket and every viewer, under one
 * lock that the API's threads take to add viewers and the supervisor to
 * attach and detach VMs.  Nothing here blocks: sockets are non-blocking,
 * and each viewer has bounds:
 *   - output it has not taken yet: at most VIEWER_QUEUE bytes; beyond
 *     that, new output skips it (the guest, the log and other viewers are
 *     never held up).  Output waits in the viewer's buffer while a message
 *     is on its way, and goes as one message (at most MESSAGE_OUT bytes)
 *     when it is gone: a guest that prints a byte at a time costs a
 *     viewer that keeps up a frame per byte, one that does not a frame
 *     per MESSAGE_OUT;
 *   - input on its way to the guest: at most INPUT_MAX bytes for a VM
 *     (plus one message); beyond that its viewers are not read until the
 *     guest takes more, as the VMM itself pulls input;
 *   - a message: MESSAGE_MAX bytes (larger: close 1009).
 * A new viewer first gets the log's tail (HISTORY bytes at most, from
 * console.log and console.log.1), then the output as it comes.  When the
 * VM's VMM ends, its console's last output is read (DRAIN_MS at most) and
 * the viewers get a close (1000, "vm 'NAME' stopped").
 *
 * Objects are freed only in tick(), after a batch of events: a handler
 * marks a viewer dead, or a VM finished, and an event still to come in
 * the same batch finds it whole.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "console.h"
#include "rotlog.h"
#include "websocket.h"

#define CON_SOCKET	"console.sock"
#define CHUNK		16384
#define HISTORY		(64u << 10)
#define VIEWER_QUEUE	(256u << 10)
#define MESSAGE_OUT	(64u << 10)
#define INPUT_MAX	(64u << 10)
#define MESSAGE_MAX	(64u << 10)
/* What one ws_read() can deliver past INPUT_MAX: the message under way
 * and what wslay had already buffered (4 KiB). */
#define INPUT_HARD	(INPUT_MAX + MESSAGE_MAX + 4096)
#define VIEWERS_MAX	32
#define RETRY_MS	20
#define DRAIN_MS	2000
#define CLOSE_MS	5000

enum kind { K_VM = 1, K_VIEWER };

struct vmcon;

struct viewer {
	enum kind kind;
	struct viewer *next;
	struct consoles *cs;
	struct vmcon *vm;
	int fd;
	uint32_t events;		/* registered with epoll */
	struct ws *ws;
	void (*release)(void *handle);
	void *handle;
	uint64_t close_by;		/* told to go: dropped at this time anyway */
	bool dead;			/* freed at the next tick() */
	uint8_t *out;			/* output waiting for the message before it */
	size_t out_len, out_size;
};

struct vmcon {
	enum kind kind;
	struct vmcon *next;
	char name[65];
	char dir[4096];
	int fd;				/* the VMM's console socket, -1 when not connected */
	uint32_t events;
	bool ending;			/* its VMM ended: drain, then finish */
	bool finished;			/* its viewers are told; freed when they are gone */
	uint64_t retry_at, end_by;
	struct rotlog log;		/* console.log */
	uint8_t *in;			/* viewers' input for the guest */
	size_t in_len;
	bool in_full;			/* viewers paused until the guest takes more */
	struct viewer *viewers;
	unsigned nr_viewers;
};

struct consoles {
	pthread_mutex_t lock;
	pthread_t thread;
	int epfd, wake;
	uint64_t log_max;		/* rotlog.c's bounds */
	unsigned log_keep;
	bool stopping;			/* consoles_shutdown(): no more viewers */
	bool quit;
	struct vmcon *vms;
};

/* --- epoll --------------------------------------------------------- */

static void set_events(struct consoles *cs, int fd, uint32_t *cur, uint32_t want, void *ptr)
{
	struct epoll_event ev = { .events = want, .data.ptr = ptr };

	if (*cur == want)
		return;
	epoll_ctl(cs->epfd, EPOLL_CTL_MOD, fd, &ev);
	*cur = want;
}

static void viewer_update(struct consoles *cs, struct viewer *v)
{
	uint32_t want = 0;

	if (v->dead)
		return;
	if (ws_finished(v->ws)) {
		v->dead = true;
		return;
	}
	if (ws_want_read(v->ws))
		want |= EPOLLIN;
	if (ws_want_write(v->ws))
		want |= EPOLLOUT;
	set_events(cs, v->fd, &v->events, want, v);
}

static void vm_update(struct consoles *cs, struct vmcon *vm)
{
	if (vm->fd >= 0)
		set_events(cs, vm->fd, &vm->events, EPOLLIN | (vm->in_len ? EPOLLOUT : 0), vm);
}

/* Writes what the viewer's socket takes; what waits in its buffer goes
 * as the next message once wslay has sent the last. */
static void viewer_flush(struct consoles *cs, struct viewer *v)
{
	while (!v->dead) {
		size_t n = v->out_len < MESSAGE_OUT ? v->out_len : MESSAGE_OUT;

		if (ws_write(v->ws) < 0) {
			v->dead = true;
			break;
		}
		if (ws_queued(v->ws, NULL) || !n || v->close_by)
			break;
		if (ws_send(v->ws, false, v->out, n) < 0) {
			v->dead = true;
			break;
		}
		memmove(v->out, v->out + n, v->out_len - n);
		v->out_len -= n;
	}
	viewer_update(cs, v);
}

/* --- the VMM's side ------------------------------------------------- */

static void output(struct consoles *cs, struct vmcon *vm, const uint8_t *buf, size_t len)
{
	rotlog_write(&vm->log, buf, len);
	for (struct viewer *v = vm->viewers; v; v = v->next) {
		if (v->dead || v->close_by)
			continue;
		/* A viewer that does not keep up skips output. */
		if (v->out_len + len > VIEWER_QUEUE)
			continue;
		if (v->out_len + len > v->out_size) {
			size_t size = v->out_size ? v->out_size : CHUNK;
			uint8_t *p;

			while (size < v->out_len + len)
				size *= 2;
			if (size > VIEWER_QUEUE)
				size = VIEWER_QUEUE;
			p = realloc(v->out, size);
			if (!p)
				continue;
			v->out = p;
			v->out_size = size;
		}
		memcpy(v->out + v->out_len, buf, len);
		v->out_len += len;
		viewer_flush(cs, v);
	}
}

static void vm_close_socket(struct consoles *cs, struct vmcon *vm)
{
	if (vm->fd < 0)
		return;
	epoll_ctl(cs->epfd, EPOLL_CTL_DEL, vm->fd, NULL);
	close(vm->fd);
	vm->fd = -1;
	vm->events = 0;
	vm->in_len = 0;
}

static void set_input_full(struct consoles *cs, struct vmcon *vm, bool full)
{
	if (vm->in_full == full)
		return;
	vm->in_full = full;
	for (struct viewer *v = vm->viewers; v; v = v->next) {
		ws_pause(v->ws, full);
		viewer_update(cs, v);
	}
}

/* Its viewers are told, its socket and log closed; freed in tick() once
 * the viewers are gone. */
static void vm_finish(struct consoles *cs, struct vmcon *vm)
{
	char reason[100];

	if (vm->finished)
		return;
	vm->finished = true;
	vm_close_socket(cs, vm);
	rotlog_close(&vm->log);
	snprintf(reason, sizeof(reason), "vm '%s' stopped", vm->name);
	set_input_full(cs, vm, false);
	for (struct viewer *v = vm->viewers; v; v = v->next) {
		if (v->close_by)
			continue;
		/* The last output first. */
		if (v->out_len && ws_send(v->ws, false, v->out, v->out_len) == 0)
			v->out_len = 0;
		ws_close(v->ws, WS_CLOSE_NORMAL, reason);
		v->close_by = mono_ms() + CLOSE_MS;
		viewer_flush(cs, v);
	}
}

/* Reads what the VMM's console has, a bounded number of chunks a turn. */
static void vm_read(struct consoles *cs, struct vmcon *vm)
{
	uint8_t buf[CHUNK];

	for (int i = 0; i < 16 && vm->fd >= 0; i++) {
		ssize_t n = recv(vm->fd, buf, sizeof(buf), MSG_DONTWAIT);

		if (n > 0) {
			output(cs, vm, buf, (size_t)n);
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		/* The VMM's console is gone: its VMM ended, or is ending. */
		vm_close_socket(cs, vm);
		if (vm->ending)
			vm_finish(cs, vm);
		else
			vm->retry_at = mono_ms() + RETRY_MS;
	}
}

static void vm_write(struct consoles *cs, struct vmcon *vm)
{
	ssize_t n = send(vm->fd, vm->in, vm->in_len, MSG_DONTWAIT | MSG_NOSIGNAL);

	if (n > 0) {
		memmove(vm->in, vm->in + n, vm->in_len - (size_t)n);
		vm->in_len -= (size_t)n;
		if (vm->in_len <= INPUT_MAX / 2)
			set_input_full(cs, vm, false);
	} else if (n < 0 && errno != EAGAIN && errno != EINTR) {
		vm->in_len = 0;		/* the socket is failing: its read says so */
	}
	vm_update(cs, vm);
}

static void vm_connect(struct consoles *cs, struct vmcon *vm)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = vm };
	int fd = unix_connect_in(vm->dir, CON_SOCKET);

	vm->retry_at = 0;
	if (fd >= 0 && epoll_ctl(cs->epfd, EPOLL_CTL_ADD, fd, &ev) == 0) {
		vm->fd = fd;
		vm->events = EPOLLIN;
	} else {
		/* Not there yet (the VMM is starting), or refused: again soon. */
		if (fd >= 0)
			close(fd);
		vm->retry_at = mono_ms() + RETRY_MS;
	}
}

/* --- viewers --------------------------------------------------------- */

static ssize_t viewer_recv(void *opaque, void *buf, size_t len)
{
	struct viewer *v = opaque;
	ssize_t n = recv(v->fd, buf, len, MSG_DONTWAIT);

	return n < 0 ? -errno : n;
}

static ssize_t viewer_send(void *opaque, const void *buf, size_t len)
{
	struct viewer *v = opaque;
	ssize_t n = send(v->fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);

	return n < 0 ? -errno : n;
}

/* Text or binary, the bytes go to the guest as they are. */
static void viewer_message(void *opaque, bool text, const uint8_t *buf, size_t len)
{
	struct viewer *v = opaque;
	struct vmcon *vm = v->vm;

	if (vm->finished || vm->ending)
		return;
	/* Only VMs that get input have the buffer (a running VM costs
	 * vsrvd little). */
	if (!vm->in && !(vm->in = malloc(INPUT_HARD)))
		return;
	if (len > INPUT_HARD - vm->in_len)
		len = INPUT_HARD - vm->in_len;	/* cannot happen: see INPUT_HARD */
	memcpy(vm->in + vm->in_len, buf, len);
	vm->in_len += len;
	if (vm->in_len >= INPUT_MAX)
		set_input_full(v->cs, vm, true);
}

static const struct ws_ops viewer_ops = {
	.recv = viewer_recv,
	.send = viewer_send,
	.message = viewer_message,
};

static void viewer_event(struct consoles *cs, struct viewer *v, uint32_t events)
{
	struct vmcon *vm = v->vm;

	if (v->dead)
		return;
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
		if (!ws_want_read(v->ws) && (events & (EPOLLHUP | EPOLLERR))) {
			/* Gone while paused or closing: nothing more to do. */
			v->dead = true;
			return;
		}
		if (ws_read(v->ws) < 0)
			v->dead = true;
	}
	if (vm->in_len && vm->fd >= 0)
		vm_write(cs, vm);
	viewer_flush(cs, v);
}

static void viewer_free(struct consoles *cs, struct viewer *v)
{
	epoll_ctl(cs->epfd, EPOLL_CTL_DEL, v->fd, NULL);
	ws_destroy(v->ws);
	/* The socket is libmicrohttpd's to close. */
	v->release(v->handle);
	free(v->out);
	free(v);
}

/* --- the thread ------------------------------------------------------ */

static void vm_free(struct vmcon *vm)
{
	free(vm->in);
	free(vm);
}

/* Deadlines and the dead; how long until the next deadline, in ms. */
static int tick(struct consoles *cs)
{
	uint64_t now = mono_ms(), next = now + 1000;

	for (struct vmcon **pvm = &cs->vms, *vm; (vm = *pvm);) {
		if (!vm->finished && vm->fd < 0 && vm->retry_at && vm->retry_at <= now &&
		    !vm->ending)
			vm_connect(cs, vm);
		if (!vm->finished && vm->ending && (vm->fd < 0 || vm->end_by <= now))
			vm_finish(cs, vm);
		for (struct viewer **pv = &vm->viewers, *v; (v = *pv);) {
			if (v->close_by && v->close_by <= now)
				v->dead = true;
			if (v->dead) {
				*pv = v->next;
				vm->nr_viewers--;
				viewer_free(cs, v);
				continue;
			}
			if (v->close_by && v->close_by < next)
				next = v->close_by;
			pv = &v->next;
		}
		if (vm->finished && !vm->viewers) {
			*pvm = vm->next;
			vm_free(vm);
			continue;
		}
		if (vm->fd < 0 && vm->retry_at && vm->retry_at < next)
			next = vm->retry_at;
		if (vm->ending && !vm->finished && vm->end_by < next)
			next = vm->end_by;
		pvm = &vm->next;
	}
	return next > now ? (int)(next - now) : 0;
}

static void *consoles_thread(void *opaque)
{
	struct consoles *cs = opaque;
	int timeout = 0;

	for (;;) {
		struct epoll_event evs[32];
		int n = epoll_wait(cs->epfd, evs, 32, timeout);

		pthread_mutex_lock(&cs->lock);
		if (cs->quit) {
			pthread_mutex_unlock(&cs->lock);
			break;
		}
		for (int i = 0; i < n; i++) {
			enum kind *k = evs[i].data.ptr;

			if (!k) {
				uint64_t v;

				if (read(cs->wake, &v, sizeof(v)) < 0)
					v = 0;
			} else if (*k == K_VM) {
				struct vmcon *vm = (struct vmcon *)k;

				if ((evs[i].events & EPOLLOUT) && vm->fd >= 0 && vm->in_len)
					vm_write(cs, vm);
				if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
					vm_read(cs, vm);
			} else {
				viewer_event(cs, (struct viewer *)k, evs[i].events);
			}
		}
		timeout = tick(cs);
		pthread_mutex_unlock(&cs->lock);
	}
	return NULL;
}

static void wake(struct consoles *cs)
{
	uint64_t one = 1;

	if (write(cs->wake, &one, sizeof(one)) < 0)
		return;
}

/* The VM's live console (not one whose VMM ended). */
static struct vmcon *find(struct consoles *cs, const char *name)
{
	for (struct vmcon *vm = cs->vms; vm; vm = vm->next)
		if (!vm->ending && !vm->finished && !strcmp(vm->name, name))
			return vm;
	return NULL;
}

/* --- the interface ------------------------------------------------- */

int consoles_create(struct consoles **out, uint64_t log_max, unsigned log_keep)
{
	struct consoles *cs = calloc(1, sizeof(*cs));
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };

	if (!cs)
		return -ENOMEM;
	pthread_mutex_init(&cs->lock, NULL);
	cs->log_max = log_max;
	cs->log_keep = log_keep;
	cs->epfd = epoll_create1(EPOLL_CLOEXEC);
	cs->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (cs->epfd < 0 || cs->wake < 0 || epoll_ctl(cs->epfd, EPOLL_CTL_ADD, cs->wake, &ev) < 0 ||
	    pthread_create(&cs->thread, NULL, consoles_thread, cs)) {
		if (cs->epfd >= 0)
			close(cs->epfd);
		if (cs->wake >= 0)
			close(cs->wake);
		free(cs);
		return -EIO;
	}
	*out = cs;
	return 0;
}

void consoles_attach(struct consoles *cs, const char *name, const char *dir)
{
	struct vmcon *vm;

	pthread_mutex_lock(&cs->lock);
	if (find(cs, name))
		goto out;
	/* A console of an earlier run still draining: its VMM is gone, so
	 * what is left is in its socket now. */
	for (struct vmcon *old = cs->vms; old; old = old->next) {
		if (!old->finished && !strcmp(old->name, name)) {
			vm_read(cs, old);
			vm_finish(cs, old);
		}
	}
	vm = calloc(1, sizeof(*vm));
	if (!vm) {
		fprintf(stderr, "vsrvd: vm '%s': console: out of memory\n", name);
		goto out;
	}
	vm->kind = K_VM;
	vm->fd = -1;
	snprintf(vm->name, sizeof(vm->name), "%s", name);
	snprintf(vm->dir, sizeof(vm->dir), "%s", dir);
	rotlog_open(&vm->log, dir, "console.log", cs->log_max, cs->log_keep, false);
	vm->retry_at = mono_ms();
	vm->next = cs->vms;
	cs->vms = vm;
	wake(cs);
out:
	pthread_mutex_unlock(&cs->lock);
}

void consoles_detach(struct consoles *cs, const char *name)
{
	struct vmcon *vm;

	pthread_mutex_lock(&cs->lock);
	vm = find(cs, name);
	if (vm) {
		vm->ending = true;
		vm->end_by = mono_ms() + DRAIN_MS;
		wake(cs);
	}
	pthread_mutex_unlock(&cs->lock);
}

bool consoles_running(struct consoles *cs, const char *name)
{
	bool r;

	pthread_mutex_lock(&cs->lock);
	r = find(cs, name) != NULL;
	pthread_mutex_unlock(&cs->lock);
	return r;
}

/* Refuses a viewer on its own socket: the close is all it gets. */
static void refuse(int fd, uint16_t code, const char *reason, void (*release)(void *),
		   void *handle)
{
	struct viewer v = { .fd = fd };
	struct ws *w;

	if (ws_create(&w, false, MESSAGE_MAX, &viewer_ops, &v) == 0) {
		v.ws = w;
		ws_close(w, code, reason);
		ws_write(w);
		ws_destroy(w);
	}
	release(handle);
}

void consoles_add_viewer(struct consoles *cs, const char *name, int fd, const void *early,
			 size_t early_len, void (*release)(void *), void *handle)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT };
	struct viewer *v = NULL;
	struct vmcon *vm;
	uint8_t *hist = NULL;
	char reason[120];
	size_t n;

	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	pthread_mutex_lock(&cs->lock);
	vm = cs->stopping ? NULL : find(cs, name);
	if (!vm || vm->nr_viewers >= VIEWERS_MAX) {
		pthread_mutex_unlock(&cs->lock);
		snprintf(reason, sizeof(reason), cs->stopping ? "vsrvd is stopping" : !vm ?
			 "vm '%s' is not running" : "vm '%s': %d viewers already", name, VIEWERS_MAX);
		return refuse(fd, vm ? 1008 : cs->stopping ? WS_CLOSE_GOING_AWAY : WS_CLOSE_NORMAL,
			      reason, release, handle);
	}
	v = calloc(1, sizeof(*v));
	hist = malloc(HISTORY);
	if (!v || !hist || ws_create(&v->ws, false, MESSAGE_MAX, &viewer_ops, v) < 0 ||
	    ws_preload(v->ws, early, early_len) < 0) {
		pthread_mutex_unlock(&cs->lock);
		if (v && v->ws)
			ws_destroy(v->ws);
		free(v);
		free(hist);
		return refuse(fd, WS_CLOSE_ERROR, "out of memory", release, handle);
	}
	v->kind = K_VIEWER;
	v->cs = cs;
	v->vm = vm;
	v->fd = fd;
	v->release = release;
	v->handle = handle;
	/* What the log has, then what comes: the thread adds to the log
	 * and to viewers under the lock we hold, so nothing falls between. */
	n = rotlog_tail(&vm->log, hist, HISTORY);
	if (n)
		ws_send(v->ws, false, hist, n);
	free(hist);
	ws_pause(v->ws, vm->in_full);
	ev.data.ptr = v;
	v->events = ev.events;
	if (epoll_ctl(cs->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		pthread_mutex_unlock(&cs->lock);
		ws_destroy(v->ws);
		free(v);
		return refuse(fd, WS_CLOSE_ERROR, "cannot watch the connection", release, handle);
	}
	v->next = vm->viewers;
	vm->viewers = v;
	vm->nr_viewers++;
	pthread_mutex_unlock(&cs->lock);
}

void consoles_shutdown(struct consoles *cs)
{
	pthread_mutex_lock(&cs->lock);
	cs->stopping = true;
	for (struct vmcon *vm = cs->vms; vm; vm = vm->next) {
		for (struct viewer *v = vm->viewers; v; v = v->next) {
			if (!v->close_by)
				ws_close(v->ws, WS_CLOSE_GOING_AWAY, "vsrvd is stopping");
			ws_write(v->ws);
			v->dead = true;
		}
	}
	tick(cs);
	pthread_mutex_unlock(&cs->lock);
}

void consoles_destroy(struct consoles *cs)
{
	if (!cs)
		return;
	pthread_mutex_lock(&cs->lock);
	cs->quit = true;
	pthread_mutex_unlock(&cs->lock);
	wake(cs);
	pthread_join(cs->thread, NULL);
	while (cs->vms) {
		struct vmcon *vm = cs->vms;

		cs->vms = vm->next;
		/* VMs left running: what their consoles already sent goes to
		 * the log; the rest waits in the VMM for the next vsrvd. */
		vm_read(cs, vm);
		for (struct viewer *v = vm->viewers; v; v = vm->viewers) {
			vm->viewers = v->next;
			viewer_free(cs, v);
		}
		vm_close_socket(cs, vm);
		rotlog_close(&vm->log);
		vm_free(vm);
	}
	close(cs->epfd);
	close(cs->wake);
	pthread_mutex_destroy(&cs->lock);
	free(cs);
}
