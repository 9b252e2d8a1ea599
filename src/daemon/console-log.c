// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * A VM's console.log (console.h): what its guest printed, written by
 * vsrvd (console.c) and rotated as it is written.  When the file has
 * log.max_size bytes, console.log becomes console.log.1, .1 becomes .2,
 * and so on up to log.keep (the oldest goes), and a new console.log
 * starts: every rotated file holds exactly max_size bytes, and nothing
 * is lost between a copy and a truncation as in vmm.log's rotation
 * (supervisor.c), which vsrvd cannot reopen.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "console.h"

#define CON_LOG	"console.log"

int console_log_open(struct console_log *l, const char *dir, uint64_t max, unsigned keep)
{
	struct stat st;

	*l = (struct console_log){ .fd = -1, .max = max, .keep = keep };
	snprintf(l->path, sizeof(l->path), "%s/%s", dir, CON_LOG);
	l->fd = open(l->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (l->fd < 0) {
		fprintf(stderr, "vsrvd: %s: %s\n", l->path, strerror(errno));
		return -errno;
	}
	l->size = fstat(l->fd, &st) == 0 ? (uint64_t)st.st_size : 0;
	return 0;
}

void console_log_close(struct console_log *l)
{
	if (l->fd >= 0)
		close(l->fd);
	l->fd = -1;
}

static void rotate(struct console_log *l)
{
	char from[4300], to[4300];

	close(l->fd);
	for (unsigned i = l->keep; i > 1; i--) {
		snprintf(from, sizeof(from), "%s.%u", l->path, i - 1);
		snprintf(to, sizeof(to), "%s.%u", l->path, i);
		rename(from, to);
	}
	snprintf(to, sizeof(to), "%s.1", l->path);
	if (l->keep ? rename(l->path, to) : unlink(l->path))
		fprintf(stderr, "vsrvd: %s: %s\n", l->path, strerror(errno));
	l->fd = open(l->path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0640);
	l->size = 0;
}

void console_log_write(struct console_log *l, const uint8_t *buf, size_t len)
{
	while (len && l->fd >= 0) {
		size_t n = len;
		ssize_t w;

		if (l->max) {
			if (l->size >= l->max) {
				rotate(l);
				continue;
			}
			if (n > l->max - l->size)
				n = (size_t)(l->max - l->size);
		}
		w = write(l->fd, buf, n);
		if (w <= 0) {
			if (w < 0 && errno == EINTR)
				continue;
			/* Once: a full disk must not fill the journal too. */
			if (!l->failed)
				fprintf(stderr, "vsrvd: %s: %s\n", l->path,
					w < 0 ? strerror(errno) : "short write");
			l->failed = true;
			return;
		}
		l->size += (uint64_t)w;
		buf += w;
		len -= (size_t)w;
	}
}

size_t console_log_tail(const struct console_log *l, uint8_t *buf, size_t max)
{
	char path[4300];
	int fd[2];
	uint64_t size[2] = { 0, 0 }, take[2];
	size_t got = 0;

	for (int i = 0; i < 2; i++) {
		struct stat st;

		snprintf(path, sizeof(path), "%s%s", l->path, i ? ".1" : "");
		fd[i] = open(path, O_RDONLY | O_CLOEXEC);
		if (fd[i] >= 0 && fstat(fd[i], &st) == 0)
			size[i] = (uint64_t)st.st_size;
	}
	take[0] = size[0] < max ? size[0] : max;
	take[1] = size[1] < max - take[0] ? size[1] : max - take[0];
	for (int i = 1; i >= 0; i--) {
		ssize_t n = take[i] ? pread(fd[i], buf + got, (size_t)take[i],
					    (off_t)(size[i] - take[i])) : 0;

		if (n > 0)
			got += (size_t)n;
		if (fd[i] >= 0)
			close(fd[i]);
	}
	return got;
}
