// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The channel between the supervisor and a boot (control.h): a
 * SOCK_SEQPACKET pair, so that each message arrives whole or not at all,
 * carrying one compact JSON object and, for files the boot must write,
 * their descriptors (SCM_RIGHTS: a saved state's, a checkpoint's new disk
 * layers).  Both ends use it non-blocking from a poll loop.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "control.h"

union fd_cmsg {
	char buf[CMSG_SPACE(CTL_CHAN_FDS_MAX * sizeof(int))];
	struct cmsghdr align;
};

int ctl_chan_send_fds(int fd, json_t *msg, const int *fds, unsigned nr_fds)
{
	union fd_cmsg u;
	char *s;
	struct iovec iov;
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;

	if (nr_fds > CTL_CHAN_FDS_MAX)
		return -EINVAL;
	s = json_dumps(msg, JSON_COMPACT);
	if (!s)
		return -ENOMEM;
	iov = (struct iovec){ .iov_base = s, .iov_len = strlen(s) };
	if (iov.iov_len > CTL_CHAN_MSG_MAX) {
		free(s);
		return -EMSGSIZE;
	}
	if (nr_fds) {
		struct cmsghdr *c;

		memset(&u, 0, sizeof(u));
		mh.msg_control = u.buf;
		mh.msg_controllen = CMSG_SPACE(nr_fds * sizeof(int));
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(nr_fds * sizeof(int));
		memcpy(CMSG_DATA(c), fds, nr_fds * sizeof(int));
	}
	do
		n = sendmsg(fd, &mh, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	free(s);
	return n < 0 ? -errno : 0;
}

int ctl_chan_send(int fd, json_t *msg, int pass_fd)
{
	return ctl_chan_send_fds(fd, msg, &pass_fd, pass_fd >= 0);
}

int ctl_chan_recv_fds(int fd, json_t **msg, int *fds, unsigned *nr_fds)
{
	union fd_cmsg u;
	char *buf = malloc(CTL_CHAN_MSG_MAX);
	struct iovec iov = { .iov_base = buf, .iov_len = CTL_CHAN_MSG_MAX };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = u.buf, .msg_controllen = sizeof(u.buf) };
	ssize_t n;

	*msg = NULL;
	*nr_fds = 0;
	if (!buf)
		return -ENOMEM;
	do
		n = recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n <= 0) {
		free(buf);
		return n == 0 ? -EPIPE : errno == EAGAIN ? -EAGAIN : -errno;
	}
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		size_t k;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS ||
		    c->cmsg_len < CMSG_LEN(0))
			continue;
		k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < k; i++) {
			int got;

			memcpy(&got, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (*nr_fds < CTL_CHAN_FDS_MAX)
				fds[(*nr_fds)++] = got;
			else
				close(got);
		}
	}
	*msg = (mh.msg_flags & MSG_TRUNC) ? NULL : json_loadb(buf, (size_t)n, 0, NULL);
	free(buf);
	if (!json_is_object(*msg)) {
		json_decref(*msg);
		*msg = NULL;
		ctl_chan_close_fds(fds, nr_fds);
		return -EBADMSG;
	}
	return 0;
}

int ctl_chan_recv(int fd, json_t **msg, int *got_fd)
{
	int fds[CTL_CHAN_FDS_MAX];
	unsigned n;
	int r = ctl_chan_recv_fds(fd, msg, fds, &n);

	*got_fd = n ? fds[0] : -1;
	for (unsigned i = 1; i < n; i++)
		close(fds[i]);
	return r;
}

void ctl_chan_close_fds(int *fds, unsigned *nr_fds)
{
	for (unsigned i = 0; i < *nr_fds; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	*nr_fds = 0;
}
