// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The channel between the supervisor and a boot (control.h): a
 * SOCK_SEQPACKET pair, so that each message arrives whole or not at all,
 * carrying one compact JSON object and, for a file the boot must write, one
 * descriptor (SCM_RIGHTS).  Both ends use it non-blocking from a poll loop.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "control.h"

int ctl_chan_send(int fd, json_t *msg, int pass_fd)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	char *s = json_dumps(msg, JSON_COMPACT);
	struct iovec iov;
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;

	if (!s)
		return -ENOMEM;
	iov = (struct iovec){ .iov_base = s, .iov_len = strlen(s) };
	if (iov.iov_len > CTL_CHAN_MSG_MAX) {
		free(s);
		return -EMSGSIZE;
	}
	if (pass_fd >= 0) {
		struct cmsghdr *c;

		memset(&u, 0, sizeof(u));
		mh.msg_control = u.buf;
		mh.msg_controllen = sizeof(u.buf);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &pass_fd, sizeof(int));
	}
	do
		n = sendmsg(fd, &mh, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	free(s);
	return n < 0 ? -errno : 0;
}

int ctl_chan_recv(int fd, json_t **msg, int *got_fd)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	char *buf = malloc(CTL_CHAN_MSG_MAX);
	struct iovec iov = { .iov_base = buf, .iov_len = CTL_CHAN_MSG_MAX };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = u.buf, .msg_controllen = sizeof(u.buf) };
	ssize_t n;

	*msg = NULL;
	*got_fd = -1;
	if (!buf)
		return -ENOMEM;
	do
		n = recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n <= 0) {
		free(buf);
		return n == 0 ? -EPIPE : errno == EAGAIN ? -EAGAIN : -errno;
	}
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
		    c->cmsg_len >= CMSG_LEN(sizeof(int)) && *got_fd < 0)
			memcpy(got_fd, CMSG_DATA(c), sizeof(int));
	*msg = (mh.msg_flags & MSG_TRUNC) ? NULL : json_loadb(buf, (size_t)n, 0, NULL);
	free(buf);
	if (!json_is_object(*msg)) {
		json_decref(*msg);
		*msg = NULL;
		if (*got_fd >= 0)
			close(*got_fd);
		*got_fd = -1;
		return -EBADMSG;
	}
	return 0;
}
