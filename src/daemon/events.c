// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The event log: what happened to VMs and the service ("vm.started",
 * "vm.crashed", ...), kept in the inventory so that it survives restarts,
 * and announced to the live readers of GET /v1/events/stream.  A reader
 * waits on a condition variable for the log's last id to pass its own,
 * then reads what it missed from the inventory: a slow reader costs
 * nothing here and misses nothing the log still holds.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "vsrvd.h"

struct events {
	struct inventory *inv;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int64_t last;
	bool stopping;
};

int events_create(struct events **out, struct inventory *inv)
{
	struct events *ev = calloc(1, sizeof(*ev));
	pthread_condattr_t ca;
	json_t *tail;

	if (!ev)
		return -ENOMEM;
	ev->inv = inv;
	pthread_mutex_init(&ev->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&ev->cond, &ca);
	pthread_condattr_destroy(&ca);
	/* The newest id: readers that start now begin after it. */
	inventory_event_list(inv, -1, -1, NULL, &tail);
	ev->last = json_integer_value(json_object_get(json_array_get(tail,
			json_array_size(tail) - 1), "id"));
	json_decref(tail);
	*out = ev;
	return 0;
}

void events_destroy(struct events *ev)
{
	if (!ev)
		return;
	pthread_cond_destroy(&ev->cond);
	pthread_mutex_destroy(&ev->lock);
	free(ev);
}

void events_log(struct events *ev, const char *type, const char *vm, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	int64_t id;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* Also on standard error (the journal, under systemd). */
	fprintf(stderr, "vsrvd: %s%s%s: %s\n", type, vm ? " " : "", vm ? vm : "", msg);
	/* Under the lock, so that ids reach readers in order. */
	pthread_mutex_lock(&ev->lock);
	if (inventory_event_add(ev->inv, (int64_t)now_ms(), type, vm, msg, &id) == 0 &&
	    id > ev->last) {
		ev->last = id;
		pthread_cond_broadcast(&ev->cond);
	}
	pthread_mutex_unlock(&ev->lock);
}

int64_t events_last_id(struct events *ev)
{
	int64_t id;

	pthread_mutex_lock(&ev->lock);
	id = ev->last;
	pthread_mutex_unlock(&ev->lock);
	return id;
}

json_t *events_wait(struct events *ev, int64_t *last, int timeout_ms)
{
	struct timespec until;
	json_t *out;

	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += timeout_ms / 1000;
	until.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&ev->lock);
	while (!ev->stopping && ev->last <= *last)
		if (pthread_cond_timedwait(&ev->cond, &ev->lock, &until) == ETIMEDOUT)
			break;
	if (ev->stopping) {
		pthread_mutex_unlock(&ev->lock);
		return NULL;
	}
	pthread_mutex_unlock(&ev->lock);
	inventory_event_list(ev->inv, *last, 100, NULL, &out);
	if (json_array_size(out))
		*last = json_integer_value(json_object_get(json_array_get(out,
				json_array_size(out) - 1), "id"));
	return out;
}

void events_shutdown(struct events *ev)
{
	pthread_mutex_lock(&ev->lock);
	ev->stopping = true;
	pthread_cond_broadcast(&ev->cond);
	pthread_mutex_unlock(&ev->lock);
}
