/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Where a device's work runs.  Where KVM has ioeventfds, a device has a
 * thread of its own that polls its eventfds: a queue's doorbell, which
 * KVM signals without the guest's write ever leaving the kernel, and the
 * VMM's own wake-ups.  Without ioeventfds the doorbell write exits to the
 * vCPU thread, which runs the same handlers inline (iothread_kick).
 *
 * Either way one handler runs at a time, and none while the iothread is
 * paused; a signal that arrives meanwhile waits in its eventfd and is
 * handled on resume.  Pausing waits for a running handler to return: a
 * handler must never take a lock that a pauser may hold.
 *
 * A device whose work also comes from outside the guest (a disk queue's
 * completions, a network backend's sockets and timers) adds a poll
 * source: file descriptors that may change between polls, and a timeout.
 * Such an iothread always has a thread of its own, ioeventfds or not:
 * nothing else would wait on them.
 */
#ifndef VSRV_IOTHREAD_H
#define VSRV_IOTHREAD_H

#include <poll.h>
#include <stdbool.h>

#define IOTHREAD_MAX_FDS	40	/* a device's doorbells (up to 32) and its own */
/* What a poll source may watch at once. */
#define IOTHREAD_SOURCE_FDS	256

struct iothread;
typedef void (*iothread_fn)(void *opaque);

/* own_thread: poll on a thread of its own (else handlers run inline). */
int iothread_create(struct iothread **out, const char *name, bool own_thread);
/* Set-up time: fn runs when fd, a non-blocking eventfd the caller owns,
 * has been signalled (the iothread reads it first). */
int iothread_add(struct iothread *io, int fd, iothread_fn fn, void *opaque);
/*
 * Set-up time, one per iothread: before each poll, prepare() fills up to
 * max entries of p and returns how many, and may lower *timeout_ms (-1:
 * none); after the poll (also when it timed out), dispatch() gets the
 * same entries with their revents.  Both run with the iothread's lock
 * held, like the handlers, and never while it is paused: a poll that a
 * pause interrupted is prepared anew.
 */
struct iothread_source {
	unsigned (*prepare)(void *opaque, struct pollfd *p, unsigned max, int *timeout_ms);
	void (*dispatch)(void *opaque, struct pollfd *p, unsigned n);
	void *opaque;
};
int iothread_add_source(struct iothread *io, const struct iothread_source *src);
int iothread_start(struct iothread *io);
/* Signals fd (one of those added); without a thread, runs what is
 * pending before returning. */
void iothread_kick(struct iothread *io, int fd);
/* Nested: each pause needs its resume. */
void iothread_pause(struct iothread *io);
void iothread_resume(struct iothread *io);
bool iothread_own_thread(const struct iothread *io);
void iothread_destroy(struct iothread *io);

#endif
