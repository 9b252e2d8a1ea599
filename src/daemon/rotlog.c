// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * A log file rotated as it is written (rotlog.h).  Its writer is the only
 * one, so it can rotate exactly: when the file has max bytes, NAME
 * becomes NAME.1, .1 becomes .2, and so on up to keep (the oldest goes),
 * and a new NAME starts.  Nothing is lost or written twice, as it would
 * be by copy-and-truncate rotation behind the back of a writer that
 * cannot reopen its file (logrotate's copytruncate): NAME.keep ... NAME.1
 * and NAME, read in that order, are what was written since the oldest.
 *
 * A console's log (console.c) is a terminal's stream: each rotated file
 * holds exactly max bytes.  A log of lines (vmm.log, monitor.c) is rotated
 * at the end of the line that reaches max bytes, however its writer cut it
 * into writes (the test device's port writes a byte at a time), so that
 * no line is cut in two unless one goes LINE_SLACK bytes past max.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rotlog.h"

#define LINE_SLACK	4096

int rotlog_open(struct rotlog *l, const char *dir, const char *name, uint64_t max,
		unsigned keep, bool lines)
{
	struct stat st;
	char last = '\n';

	*l = (struct rotlog){ .fd = -1, .max = max, .keep = keep, .lines = lines };
	snprintf(l->path, sizeof(l->path), "%s/%s", dir, name);
	l->fd = open(l->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (l->fd < 0) {
		int r = -errno;

		fprintf(stderr, "vsrvd: %s: %s\n", l->path, strerror(-r));
		return r;
	}
	l->size = fstat(l->fd, &st) == 0 ? (uint64_t)st.st_size : 0;
	if (l->size) {
		int rd = open(l->path, O_RDONLY | O_CLOEXEC);

		if (rd >= 0 && pread(rd, &last, 1, (off_t)l->size - 1) != 1)
			last = 0;
		if (rd >= 0)
			close(rd);
	}
	l->line_ended = last == '\n';
	return 0;
}

void rotlog_close(struct rotlog *l)
{
	if (l->fd >= 0)
		close(l->fd);
	l->fd = -1;
}

static void rotate(struct rotlog *l)
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
	l->line_ended = true;
}

/* Whether the file is full: at max bytes, and for a log of lines at the
 * end of a line (or LINE_SLACK bytes past max in one). */
static bool full(const struct rotlog *l)
{
	return l->size >= l->max &&
	       (!l->lines || l->line_ended || l->size >= l->max + LINE_SLACK);
}

/* How much of buf goes into the file before it is full. */
static size_t fitting(const struct rotlog *l, const char *buf, size_t len)
{
	size_t left;
	const char *nl;

	if (l->size < l->max)
		return len < l->max - l->size ? len : (size_t)(l->max - l->size);
	/* A line's rest, past max. */
	left = (size_t)(l->max + LINE_SLACK - l->size);
	if (left > len)
		left = len;
	nl = memchr(buf, '\n', left);
	return nl ? (size_t)(nl - buf) + 1 : left;
}

void rotlog_write(struct rotlog *l, const void *data, size_t len)
{
	const char *buf = data;

	while (len && l->fd >= 0) {
		size_t n = len;
		ssize_t w;

		if (l->max) {
			if (full(l)) {
				rotate(l);
				continue;
			}
			n = fitting(l, buf, len);
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
		l->line_ended = buf[w - 1] == '\n';
		buf += w;
		len -= (size_t)w;
	}
}

size_t rotlog_tail(const struct rotlog *l, uint8_t *buf, size_t max)
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
