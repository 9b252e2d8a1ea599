// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * A Unix socket server's path, owned by one process at a time: the
 * console's socket backend and the control socket (devices.h).
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

/* One VMM per socket path: an abstract-namespace socket named after the
 * path is the lock.  The kernel drops it when its holder dies, however it
 * dies, so a socket file without it is left over and can go.  (Asking the
 * path itself, by connecting, would make the VMM there hand its buffered
 * output to the question.) */
static int lock_path(const char *path, const char *what, int *lock_fd, char *err,
		     size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char *slash = strrchr(path, '/'), *dir;
	uint64_t h = 0xcbf29ce484222325ull;	/* FNV-1a */
	const char *base;
	int n;

	if (slash) {
		char *d = strndup(path, (size_t)(slash - path) + 1);

		dir = d ? realpath(d, NULL) : NULL;
		free(d);
		base = slash + 1;
	} else {
		dir = realpath(".", NULL);
		base = path;
	}
	if (!dir) {
		n = -errno;
		snprintf(err, errlen, "%s: %s: %s", what, path, strerror(-n));
		return n;
	}
	for (const char *p = dir; *p; p++)
		h = (h ^ (uint8_t)*p) * 0x100000001b3ull;
	h = (h ^ '/') * 0x100000001b3ull;
	for (const char *p = base; *p; p++)
		h = (h ^ (uint8_t)*p) * 0x100000001b3ull;
	free(dir);
	n = snprintf(sa.sun_path + 1, sizeof(sa.sun_path) - 1, "vsrv-%s-%016llx", what,
		     (unsigned long long)h);
	*lock_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (*lock_fd < 0 ||
	    bind(*lock_fd, (struct sockaddr *)&sa,
		 (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n)) < 0) {
		n = -errno;
		if (n == -EADDRINUSE)
			snprintf(err, errlen, "%s: %s: in use by another process", what, path);
		else
			snprintf(err, errlen, "%s: %s: %s", what, path, strerror(-n));
		return n;
	}
	return 0;
}

int unix_listen(const char *path, const char *what, int *listen_fd, int *lock_fd, bool *bound,
		char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	int r;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "%s: %s: longer than %zu bytes (a Unix socket's limit)", what,
			 path, sizeof(sa.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, path);
	if (lstat(path, &st) == 0 && !S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen, "%s: %s: exists and is not a socket", what, path);
		return -EEXIST;
	}
	r = lock_path(path, what, lock_fd, err, errlen);
	if (r < 0)
		return r;
	unlink(path);	/* a socket, and nobody's */
	*listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (*listen_fd < 0)
		goto fail;
	if (bind(*listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		goto fail;
	*bound = true;
	/* Only the user: a console carries what the guest types and
	 * prints, the control socket commands the VM. */
	if (chmod(path, 0600) < 0 || listen(*listen_fd, 4) < 0)
		goto fail;
	return 0;
fail:
	r = -errno;
	snprintf(err, errlen, "%s: %s: %s", what, path, strerror(-r));
	return r;
}

