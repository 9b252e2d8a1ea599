// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * A device's work: on a thread of its own polling eventfds, or inline on
 * the vCPU thread that rang (iothread.h).  One lock serialises handlers
 * against each other and against pausing; it is uncontended but for those.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "../vmm/vm.h"
#include "iothread.h"

struct iothread {
	const char *name;
	bool own_thread, started, stop;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t resumed;
	unsigned paused;
	unsigned pauses;	/* pauses so far: a poll prepared before one is stale */
	int wake_fd;		/* stop and resume reach the thread through it */
	unsigned nr;
	struct {
		int fd;
		iothread_fn fn;
		void *opaque;
	} h[IOTHREAD_MAX_FDS];
	struct iothread_source src;	/* prepare NULL: none */
};

int iothread_create(struct iothread **out, const char *name, bool own_thread)
{
	struct iothread *io = calloc(1, sizeof(*io));

	if (!io)
		return -ENOMEM;
	io->name = name;
	io->own_thread = own_thread;
	io->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (io->wake_fd < 0) {
		int e = errno;

		free(io);
		return -e;
	}
	pthread_mutex_init(&io->lock, NULL);
	pthread_cond_init(&io->resumed, NULL);
	*out = io;
	return 0;
}

int iothread_add(struct iothread *io, int fd, iothread_fn fn, void *opaque)
{
	if (io->nr == IOTHREAD_MAX_FDS || io->started)
		return -EINVAL;
	io->h[io->nr].fd = fd;
	io->h[io->nr].fn = fn;
	io->h[io->nr].opaque = opaque;
	io->nr++;
	return 0;
}

int iothread_add_source(struct iothread *io, const struct iothread_source *src)
{
	if (io->started || io->src.prepare || !src->prepare || !src->dispatch)
		return -EINVAL;
	io->src = *src;
	io->own_thread = true;
	return 0;
}

/* Runs the handler of each signalled eventfd; with the lock held and the
 * iothread not paused. */
static void dispatch(struct iothread *io)
{
	for (unsigned i = 0; i < io->nr; i++) {
		uint64_t n;

		if (read(io->h[i].fd, &n, sizeof(n)) == sizeof(n))
			io->h[i].fn(io->h[i].opaque);
	}
}

static void *run(void *arg)
{
	struct iothread *io = arg;
	struct pollfd p[IOTHREAD_MAX_FDS + 1 + IOTHREAD_SOURCE_FDS];
	unsigned nr = io->nr + 1, extra = 0, pauses;
	int timeout;
	uint64_t n;

	/* The main thread takes the signals; a vCPU's kick is not for us. */
	vm_thread_signals(0);
	for (unsigned i = 0; i < io->nr; i++)
		p[i] = (struct pollfd){ .fd = io->h[i].fd, .events = POLLIN };
	p[io->nr] = (struct pollfd){ .fd = io->wake_fd, .events = POLLIN };
	for (;;) {
		pthread_mutex_lock(&io->lock);
		/* Paused: the signals wait in their eventfds, not in a loop
		 * of polls. */
		while (io->paused && !io->stop)
			pthread_cond_wait(&io->resumed, &io->lock);
		if (io->stop) {
			pthread_mutex_unlock(&io->lock);
			break;
		}
		timeout = -1;
		if (io->src.prepare)
			extra = io->src.prepare(io->src.opaque, p + nr, IOTHREAD_SOURCE_FDS,
						&timeout);
		pauses = io->pauses;
		pthread_mutex_unlock(&io->lock);
		if (poll(p, nr + extra, timeout) < 0 && errno != EINTR)
			break;
		pthread_mutex_lock(&io->lock);
		/* Paused meanwhile: what the source asked for may be gone
		 * (a reset, a state loaded); the eventfds keep their signals. */
		if (io->paused || io->stop || pauses != io->pauses) {
			pthread_mutex_unlock(&io->lock);
			continue;
		}
		if (read(io->wake_fd, &n, sizeof(n)) < 0)
			n = 0;
		dispatch(io);
		if (io->src.dispatch)
			io->src.dispatch(io->src.opaque, p + nr, extra);
		pthread_mutex_unlock(&io->lock);
	}
	return NULL;
}

int iothread_start(struct iothread *io)
{
	int r;

	io->started = true;
	if (!io->own_thread)
		return 0;
	r = pthread_create(&io->thread, NULL, run, io);
	if (r) {
		io->started = false;
		return -r;
	}
	return 0;
}

static void signal_fd(int fd)
{
	uint64_t one = 1;

	/* EAGAIN: the counter is full, so it is signalled already. */
	if (write(fd, &one, sizeof(one)) < 0)
		return;
}

void iothread_kick(struct iothread *io, int fd)
{
	signal_fd(fd);
	if (io->own_thread)
		return;
	pthread_mutex_lock(&io->lock);
	if (!io->paused)
		dispatch(io);
	pthread_mutex_unlock(&io->lock);
}

void iothread_pause(struct iothread *io)
{
	/* Taking the lock waits for a handler in progress. */
	pthread_mutex_lock(&io->lock);
	io->paused++;
	io->pauses++;
	pthread_mutex_unlock(&io->lock);
	/* A thread asleep in poll() with a source's timeout notices at once. */
	if (io->own_thread && io->src.prepare)
		signal_fd(io->wake_fd);
}

void iothread_resume(struct iothread *io)
{
	pthread_mutex_lock(&io->lock);
	if (io->paused && !--io->paused) {
		if (io->own_thread)
			pthread_cond_broadcast(&io->resumed);
		else
			dispatch(io);	/* what was signalled while paused */
	}
	pthread_mutex_unlock(&io->lock);
}

bool iothread_own_thread(const struct iothread *io)
{
	return io->own_thread;
}

void iothread_destroy(struct iothread *io)
{
	if (!io)
		return;
	if (io->started && io->own_thread) {
		pthread_mutex_lock(&io->lock);
		io->stop = true;
		pthread_cond_broadcast(&io->resumed);
		pthread_mutex_unlock(&io->lock);
		signal_fd(io->wake_fd);
		pthread_join(io->thread, NULL);
	}
	close(io->wake_fd);
	pthread_cond_destroy(&io->resumed);
	pthread_mutex_destroy(&io->lock);
	free(io);
}
