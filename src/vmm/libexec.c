// SPDX-License-Identifier: GPL-2.0-or-later
/* Finding vsrv's helper programs (libexec.h). */
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "libexec.h"

void vsrv_libexec_path(const char *name, char *path, size_t len)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	if (n > 0) {
		exe[n] = 0;
		if (strrchr(exe, '/')) {
			*strrchr(exe, '/') = 0;
			snprintf(path, len, "%s/%s", exe, name);
			if (access(path, X_OK) == 0)
				return;
		}
	}
	snprintf(path, len, "%s/%s", VSRV_LIBEXECDIR, name);
}
