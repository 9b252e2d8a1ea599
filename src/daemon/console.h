/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The VMs' serial consoles (console.c): each running VM's console socket,
 * its console.log, and the WebSocket viewers of GET /v1/vms/{name}/console.
 */
#ifndef VSRVD_CONSOLE_H
#define VSRVD_CONSOLE_H

#include "vsrvd.h"

/* console-log.c: DIR/console.log, rotated as it is written. */
struct console_log {
	char path[4200];
	int fd;
	uint64_t size;
	uint64_t max;		/* bytes a file; 0: never rotated */
	unsigned keep;		/* rotated files kept */
	bool failed;		/* a write failed (said once) */
};

int console_log_open(struct console_log *l, const char *dir, uint64_t max, unsigned keep);
void console_log_write(struct console_log *l, const uint8_t *buf, size_t len);
/* The last `max` bytes of console.log.1 and console.log, in order. */
size_t console_log_tail(const struct console_log *l, uint8_t *buf, size_t max);
void console_log_close(struct console_log *l);

struct consoles;

/* console.log is rotated when it reaches log_max bytes (0: never), and
 * log_keep rotated files are kept. */
int consoles_create(struct consoles **out, uint64_t log_max, unsigned log_keep);
/* Closes every viewer (1001) and takes no more: before the API stops. */
void consoles_shutdown(struct consoles *cs);
void consoles_destroy(struct consoles *cs);
/* A VMM was started or adopted in DIR: connect to its console (as soon as
 * it listens) and log it.  Its VMM ended: read what is left, then tell
 * the viewers. */
void consoles_attach(struct consoles *cs, const char *name, const char *dir);
void consoles_detach(struct consoles *cs, const char *name);
/* Whether NAME has a console a viewer may join. */
bool consoles_running(struct consoles *cs, const char *name);
/* A viewer's connection after the 101: its socket, bytes read past the
 * request, and how to close it (release(handle); the socket is not ours
 * to close).  Always taken: a viewer that cannot join gets a close. */
void consoles_add_viewer(struct consoles *cs, const char *name, int fd, const void *early,
			 size_t early_len, void (*release)(void *), void *handle);

#endif
