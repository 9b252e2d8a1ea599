// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The bearer token TCP clients must present: 32 random bytes as hex,
 * generated at first start into the token file (mode 0600), read from it
 * after.  Compared in constant time, so that timing tells a client nothing
 * about how much of a guess was right.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vsrvd.h"

#define TOKEN_BYTES	32

int auth_load_token(const char *path, char **token, struct vsrvd_err *e)
{
	char buf[TOKEN_BYTES * 2 + 2];
	struct stat st;
	int r;

	if (read_small_file(path, buf, sizeof(buf)) == 0) {
		if (stat(path, &st) == 0 && (st.st_mode & 077))
			return vsrvd_fail(e, 0, -EPERM,
					  "%s: readable by others (mode %03o): make it 0600",
					  path, st.st_mode & 0777);
		buf[strcspn(buf, "\r\n")] = 0;
		if (strlen(buf) < 16)
			return vsrvd_fail(e, 0, -EINVAL, "%s: a token of 16 characters at least", path);
		*token = strdup(buf);
		return 0;
	}
	{
		uint8_t raw[TOKEN_BYTES];

		if (getrandom(raw, sizeof(raw), 0) != sizeof(raw))
			return vsrvd_fail(e, 0, -EIO, "getrandom: %s", strerror(errno));
		for (int i = 0; i < TOKEN_BYTES; i++)
			snprintf(buf + 2 * i, 3, "%02x", raw[i]);
	}
	buf[TOKEN_BYTES * 2] = '\n';
	r = write_file_atomic(path, buf, TOKEN_BYTES * 2 + 1, 0600);
	if (r < 0)
		return vsrvd_fail(e, 0, r, "%s: %s", path, strerror(-r));
	buf[TOKEN_BYTES * 2] = 0;
	*token = strdup(buf);
	return 0;
}

bool auth_check(const char *header, const char *token)
{
	size_t n = strlen(token);
	unsigned char diff = 0;

	if (!header || strncmp(header, "Bearer ", 7))
		return false;
	header += 7;
	if (strlen(header) != n)
		return false;
	for (size_t i = 0; i < n; i++)
		diff |= (unsigned char)(header[i] ^ token[i]);
	return diff == 0;
}
