// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * A Unix socket server's listening end (devices.h): the console's
 * socket:PATH, virtio-console's named ports and the control socket.
 *
 * One process per path.  An abstract-namespace socket named after the
 * path is the lock: the kernel drops it when its holder dies, however it
 * dies, so a socket file without it is left over and can go.  (Asking the
 * path itself, by connecting, would make the VMM there see a client: hand
 * it the console's buffered output, or open a port to its guest.)
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "devices.h"

static int lock_path(struct unix_listener *l, const char *what, char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	const char *slash = strrchr(l->path, '/');
	uint64_t h = 0xcbf29ce484222325ull;	/* FNV-1a */
	const char *base;
	char *dir;
	int n;

	if (slash) {
		char *d = strndup(l->path, (size_t)(slash - l->path) + 1);

		dir = d ? realpath(d, NULL) : NULL;
		free(d);
		base = slash + 1;
	} else {
		dir = realpath(".", NULL);
		base = l->path;
	}
	if (!dir) {
		n = -errno;
		snprintf(err, errlen, "%s: %s: %s", what, l->path, strerror(-n));
		return n;
	}
	for (const char *p = dir; *p; p++)
		h = (h ^ (uint8_t)*p) * 0x100000001b3ull;
	h = (h ^ '/') * 0x100000001b3ull;
	for (const char *p = base; *p; p++)
		h = (h ^ (uint8_t)*p) * 0x100000001b3ull;
	free(dir);
	n = snprintf(sa.sun_path + 1, sizeof(sa.sun_path) - 1, "vsrv-console-%016llx",
		     (unsigned long long)h);
	l->lock_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l->lock_fd < 0 ||
	    bind(l->lock_fd, (struct sockaddr *)&sa,
		 (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n)) < 0) {
		n = -errno;
		if (n == -EADDRINUSE)
			snprintf(err, errlen, "%s: %s: in use by another process", what, l->path);
		else
			snprintf(err, errlen, "%s: %s: %s", what, l->path, strerror(-n));
		return n;
	}
	return 0;
}

int unix_listen(struct unix_listener *l, const char *what, const char *path, int backlog,
		char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	int r;

	*l = (struct unix_listener){ .fd = -1, .lock_fd = -1, .path = path };
	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "%s: %s: longer than %zu bytes (a Unix socket's limit)",
			 what, path, sizeof(sa.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, path);
	if (lstat(path, &st) == 0 && !S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen, "%s: %s: exists and is not a socket", what, path);
		return -EEXIST;
	}
	r = lock_path(l, what, err, errlen);
	if (r < 0)
		return r;
	unlink(path);	/* a socket, and nobody's */
	l->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (l->fd < 0)
		goto fail;
	if (bind(l->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		goto fail;
	l->bound = true;
	/* Only the user: what passes through carries whatever the guest
	 * types and prints, or commands the VM (the control socket). */
	if (chmod(path, 0600) < 0 || listen(l->fd, backlog) < 0)
		goto fail;
	return 0;
fail:
	r = -errno;
	snprintf(err, errlen, "%s: %s: %s", what, path, strerror(-r));
	return r;
}

void unix_listen_close(struct unix_listener *l)
{
	if (l->fd >= 0)
		close(l->fd);
	if (l->bound)
		unlink(l->path);
	if (l->lock_fd >= 0)
		close(l->lock_fd);
	*l = (struct unix_listener){ .fd = -1, .lock_fd = -1 };
}
