// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * User networking, the VMM's side: libslirp runs in a helper process,
 * vsrv-net (net-helper.c, slirp.c), and this backend passes it the
 * guest's frames and takes back the guest's, over a socket pair
 * (net-proto.h).  The VMM so parses none of what the guest sends to the
 * network and makes no socket: its seccomp filter allows neither.
 *
 * Start-up is synchronous: the helper is spawned when the NIC is opened,
 * before the VMM's sandbox, and the open waits for its status, so that a
 * port forward that cannot listen stops the VM before it starts, with the
 * helper's line.  The helper is the child of the thread that opens the
 * devices, the boot's main thread, which lives as long as the boot: it
 * dies with it (PR_SET_PDEATHSIG, set by the helper, which checks that
 * its parent is still the one it was given), and exits at its socket's
 * end of file, when the NIC is destroyed.  One helper per NIC and boot: a
 * reboot's or a restore's process spawns its own.
 *
 * Backpressure: this end is non-blocking, as a tap's (tap.c).  A tap
 * takes a write whole into the host's stack, which drops what it cannot
 * queue; this socket has no room when the helper is behind by
 * NET_HELPER_SOCKBUF, which a guest's burst of datagrams outruns (a UDP
 * flood lost two in three frames when they were dropped as a full tap's
 * EAGAIN is): the frame is not taken (NET_SEND_LATER), its chain waits in
 * the ring, and the socket is polled for room (port.writable), as a NIC
 * whose queue is full makes the driver wait.  The other way the helper
 * drops what the VMM has no room for, as a network does (the device
 * counts its own drops past its queue, rx_dropped).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../vmm/libexec.h"
#include "net-proto.h"
#include "net.h"

/* How long the helper may take to set up slirp and its port forwards,
 * and, at the end, to exit once its socket closes. */
#define START_TIMEOUT_MS	10000
#define EXIT_TIMEOUT_MS		1000

extern char **environ;

struct net_user {
	struct net_backend b;
	int fd;			/* this end of the pair */
	pid_t pid;
	int pidfd;		/* the helper, to reap it under the sandbox */
	bool dead;		/* the helper has gone: nothing to poll */
	bool blocked;		/* a send had no room: waiting for POLLOUT */
	struct mmsghdr msgs[NET_HELPER_BATCH];
	struct iovec iov[NET_HELPER_BATCH][2];
	uint8_t type[NET_HELPER_BATCH];
	uint8_t *bufs;		/* NET_HELPER_BATCH frames of NET_FRAME_MAX + 1 */
};

static int user_send(struct net_backend *b, const struct iovec *iov, unsigned nr, size_t len)
{
	struct net_user *u = (struct net_user *)b;
	struct msghdr m = { .msg_iov = (struct iovec *)iov, .msg_iovlen = nr };

	if (u->dead)
		return -EPIPE;
	if (sendmsg(u->fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL) >= 0)
		return 0;
	if (errno != EAGAIN)
		return -errno;
	u->blocked = true;
	return NET_SEND_LATER;
}

static unsigned user_poll_fill(struct net_backend *b, struct pollfd *p, unsigned max,
			       int *timeout_ms)
{
	struct net_user *u = (struct net_user *)b;

	if (u->dead || !max)
		return 0;
	p[0] = (struct pollfd){ .fd = u->fd, .events = POLLIN | (u->blocked ? POLLOUT : 0) };
	return 1;
}

static void user_gone(struct net_user *u, const char *why)
{
	char msg[160];

	snprintf(msg, sizeof(msg), NET_HELPER_NAME " has ended (%s): the NIC has no network", why);
	u->b.port.log(u->b.port.opaque, msg);
	u->dead = true;
	/* The chains that waited for room go now, dropped. */
	if (u->blocked) {
		u->blocked = false;
		u->b.port.writable(u->b.port.opaque);
	}
}

static void user_poll_handle(struct net_backend *b, struct pollfd *p, unsigned n)
{
	struct net_user *u = (struct net_user *)b;
	int got;

	if (!n || !p[0].revents)
		return;
	if (u->blocked && p[0].revents & (POLLOUT | POLLERR | POLLHUP)) {
		u->blocked = false;
		u->b.port.writable(u->b.port.opaque);
	}
	if (!(p[0].revents & (POLLIN | POLLERR | POLLHUP)))
		return;
	for (unsigned i = 0; i < NET_HELPER_BATCH; i++)
		u->msgs[i].msg_hdr.msg_flags = 0;
	got = recvmmsg(u->fd, u->msgs, NET_HELPER_BATCH, MSG_DONTWAIT, NULL);
	if (got < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (got < 0) {
		user_gone(u, strerror(errno));
		return;
	}
	if (!got || (got > 0 && !u->msgs[got - 1].msg_len)) {
		/* Its end of file (a zero-length message is the last). */
		user_gone(u, "end of file");
		got = got ? got - 1 : 0;
	}
	for (int i = 0; i < got; i++) {
		size_t len = u->msgs[i].msg_len ? u->msgs[i].msg_len - 1 : 0;
		uint8_t *data = u->bufs + (size_t)i * (NET_FRAME_MAX + 1);

		if (u->msgs[i].msg_hdr.msg_flags & MSG_TRUNC || !u->msgs[i].msg_len)
			continue;
		if (u->type[i] == NET_MSG_FRAME && len >= NET_FRAME_MIN && len <= NET_FRAME_MAX) {
			u->b.port.receive(u->b.port.opaque, data, len);
		} else if (u->type[i] == NET_MSG_LOG) {
			char line[256];

			snprintf(line, sizeof(line), "%.*s", (int)(len < 255 ? len : 255), data);
			u->b.port.log(u->b.port.opaque, line);
		}
	}
}

/* Reaps the helper once its socket has closed; under the sandbox only
 * WNOHANG.  One that does not exit in time dies with this thread. */
static void user_reap(struct net_user *u)
{
	struct pollfd p = { .fd = u->pidfd, .events = POLLIN };

	if (u->pid <= 0)
		return;
	if (u->pidfd >= 0) {
		while (poll(&p, 1, EXIT_TIMEOUT_MS) < 0 && errno == EINTR)
			;
		close(u->pidfd);
	}
	waitpid(u->pid, NULL, WNOHANG);
}

static void user_destroy(struct net_backend *b)
{
	struct net_user *u = (struct net_user *)b;

	if (u->fd >= 0)
		close(u->fd);
	user_reap(u);
	free(u->bufs);
	free(u);
}

static const struct net_backend_ops user_ops = {
	.name = "user",
	.send = user_send,
	.poll_fill = user_poll_fill,
	.poll_handle = user_poll_handle,
	.destroy = user_destroy,
};

/* The helper's command line (net-proto.h). */
static char **helper_args(const struct net_spec *spec, unsigned index, char *nic, size_t niclen,
			  char *parent, size_t parentlen,
			  char fwd[NET_HOSTFWD_MAX][64])
{
	char **argv = calloc(6 + 2 * NET_HOSTFWD_MAX + 1, sizeof(*argv));
	unsigned n = 0;

	if (!argv)
		return NULL;
	snprintf(nic, niclen, "%u", index);
	snprintf(parent, parentlen, "%d", (int)getpid());
	argv[n++] = NET_HELPER_NAME;
	argv[n++] = "--nic";
	argv[n++] = nic;
	argv[n++] = "--parent";
	argv[n++] = parent;
	for (unsigned i = 0; i < spec->nr_fwd; i++) {
		argv[n++] = "--hostfwd";
		argv[n++] = (char *)net_hostfwd_format(&spec->fwd[i], fwd[i], 64);
	}
	return argv;
}

/* The helper, its end of the pair its NET_HELPER_FD, its standard input
 * and output /dev/null, its standard error ours (a forbidden call's
 * line), no other descriptor of the VMM's, signals as at a fresh start. */
static int helper_spawn(struct net_user *u, int theirs, const struct net_spec *spec,
			unsigned index, char *err, size_t errlen)
{
	char path[4096], nic[16], parent[16], fwd[NET_HOSTFWD_MAX][64];
	char **argv = helper_args(spec, index, nic, sizeof(nic), parent, sizeof(parent), fwd);
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none, all;
	int r;

	if (!argv)
		return -ENOMEM;
	vsrv_libexec_path(NET_HELPER_NAME, path, sizeof(path));
	sigemptyset(&none);
	sigfillset(&all);
	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&attr);
	r = posix_spawn_file_actions_adddup2(&fa, theirs, NET_HELPER_FD);
	if (!r)
		r = posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
	if (!r)
		r = posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
	if (!r)
		r = posix_spawn_file_actions_addclosefrom_np(&fa, NET_HELPER_FD + 1);
	if (!r)
		r = posix_spawnattr_setsigmask(&attr, &none);
	if (!r)
		r = posix_spawnattr_setsigdefault(&attr, &all);
	if (!r)
		r = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	if (!r)
		r = posix_spawn(&u->pid, path, &fa, &attr, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	free(argv);
	if (r) {
		u->pid = 0;
		snprintf(err, errlen, "%s: %s", path, strerror(r));
		return -r;
	}
	u->pidfd = (int)syscall(SYS_pidfd_open, u->pid, 0);
	return 0;
}

/* The helper's status: 0 once it is ready, else its line (or what became
 * of it) in err. */
static int helper_status(struct net_user *u, char *err, size_t errlen)
{
	struct pollfd p = { .fd = u->fd, .events = POLLIN };
	uint8_t msg[512];
	ssize_t n;
	int r, ws;

	do
		r = poll(&p, 1, START_TIMEOUT_MS);
	while (r < 0 && errno == EINTR);
	if (r == 0) {
		snprintf(err, errlen, NET_HELPER_NAME " did not start in %d s",
			 START_TIMEOUT_MS / 1000);
		kill(u->pid, SIGKILL);
		return -ETIMEDOUT;
	}
	n = recv(u->fd, msg, sizeof(msg) - 1, 0);
	if (n > 0 && msg[0] == NET_MSG_STATUS && n == 1)
		return 0;
	if (n > 1 && msg[0] == NET_MSG_STATUS) {
		msg[n] = 0;
		snprintf(err, errlen, "%s", (char *)msg + 1);
		return -EADDRINUSE;
	}
	/* It ended first: how. */
	close(u->fd);
	u->fd = -1;
	if (waitpid(u->pid, &ws, 0) == u->pid) {
		u->pid = 0;
		if (WIFSIGNALED(ws))
			snprintf(err, errlen, NET_HELPER_NAME " was killed by signal %d (%s)",
				 WTERMSIG(ws), strsignal(WTERMSIG(ws)));
		else
			snprintf(err, errlen, NET_HELPER_NAME " ended before it was ready (exit status %d)",
				 WEXITSTATUS(ws));
	} else {
		snprintf(err, errlen, NET_HELPER_NAME " ended before it was ready");
	}
	return -EPIPE;
}

int net_user_open(const struct net_spec *spec, unsigned index, struct net_backend **out,
		  char *err, size_t errlen)
{
	struct net_user *u = calloc(1, sizeof(*u));
	int sv[2], r;

	if (!u)
		return -ENOMEM;
	u->b.ops = &user_ops;
	u->fd = -1;
	u->pidfd = -1;
	u->bufs = malloc((size_t)NET_HELPER_BATCH * (NET_FRAME_MAX + 1));
	if (!u->bufs) {
		free(u);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < NET_HELPER_BATCH; i++) {
		u->iov[i][0] = (struct iovec){ &u->type[i], 1 };
		u->iov[i][1] = (struct iovec){ u->bufs + (size_t)i * (NET_FRAME_MAX + 1),
					       NET_FRAME_MAX + 1 };
		u->msgs[i].msg_hdr = (struct msghdr){ .msg_iov = u->iov[i], .msg_iovlen = 2 };
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		r = -errno;
		snprintf(err, errlen, "socketpair: %s", strerror(errno));
		goto fail;
	}
	u->fd = sv[0];
	net_helper_sockbufs(u->fd);
	r = helper_spawn(u, sv[1], spec, index, err, errlen);
	close(sv[1]);
	if (r < 0)
		goto fail;
	r = helper_status(u, err, errlen);
	if (r < 0)
		goto fail;
	/* Only now: the status above waits. */
	if (fcntl(u->fd, F_SETFL, O_NONBLOCK) < 0) {
		r = -errno;
		snprintf(err, errlen, "O_NONBLOCK: %s", strerror(errno));
		goto fail;
	}
	*out = &u->b;
	return 0;
fail:
	user_destroy(&u->b);
	return r;
}
