/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * rotlog.c: a log file rotated as it is written, by its only writer:
 * a VM's console.log (vsrvd, console.c) and its vmm.log (the VM's
 * monitor, monitor.c).  libc only, as the monitor is.
 */
#ifndef VSRVD_ROTLOG_H
#define VSRVD_ROTLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct rotlog {
	char path[4200];
	int fd;
	uint64_t size;
	uint64_t max;		/* bytes a file; 0: never rotated */
	unsigned keep;		/* rotated files kept */
	bool lines;		/* rotated at the end of the line reaching max */
	bool line_ended;	/* the file ends with a whole line */
	bool failed;		/* a write failed (said once) */
};

/* DIR/NAME, appended to; 0 or a negative errno (said on stderr). */
int rotlog_open(struct rotlog *l, const char *dir, const char *name, uint64_t max,
		unsigned keep, bool lines);
void rotlog_write(struct rotlog *l, const void *buf, size_t len);
/* The last `max` bytes of NAME.1 and NAME, in order. */
size_t rotlog_tail(const struct rotlog *l, uint8_t *buf, size_t max);
void rotlog_close(struct rotlog *l);

#endif
