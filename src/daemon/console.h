/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The VMs' serial consoles (console.c): each running VM's console socket,
 * its console.log, and the WebSocket viewers of GET /v1/vms/{name}/console.
 */
#ifndef VSRVD_CONSOLE_H
#define VSRVD_CONSOLE_H

#include "vsrvd.h"

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
