// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vsrv-net: one user-mode NIC's libslirp (slirp.c), in a process of its
 * own, spawned by the VM's process (user.c), which it serves over a
 * socket pair on NET_HELPER_FD (net-proto.h).
 *
 * It sets up slirp and every port forward, confines itself, and only then
 * says so (NET_MSG_STATUS); a port forward that cannot listen is the
 * status's line instead, and the end.  Its loop is the I/O thread slirp.c
 * expects: a poll of slirp's sockets, its timers and the VMM's socket.
 * It ends at that socket's end of file, and with the VM's process
 * (PR_SET_PDEATHSIG): it never outlives the VM.
 *
 * Confinement: no_new_privs and a seccomp allow-list of what libslirp
 * calls to be the guest's TCP/IP stack (sockets, connections,
 * /etc/resolv.conf read again when it changes) and what this loop calls
 * (net-helper-rules.c, compiled at build time as the VMM's is);
 * a forbidden call ends it with one line, "vsrv-net: net0: seccomp:
 * forbidden system call ...", and the NIC is without network.  It makes
 * no new process and writes no file.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../vmm/sandbox-trap.h"
/* net_helper_filter, compiled from net-helper-rules.c. */
#include "sandbox-filters.h"
#include "net-proto.h"
#include "net.h"

/* Sockets of slirp's watched in one poll. */
#define POLL_MAX	512

struct helper {
	int fd;			/* NET_HELPER_FD */
	char who[32];		/* "vsrv-net: net0" */
	struct net_backend *slirp;
	struct mmsghdr msgs[NET_HELPER_BATCH];
	struct iovec iov[NET_HELPER_BATCH];
	uint8_t *bufs;		/* NET_HELPER_BATCH frames of NET_FRAME_MAX + 1 */
};

/* One message to the VMM, dropped if it has no room (net-proto.h). */
static void put_msg(struct helper *h, uint8_t type, const void *data, size_t len)
{
	struct iovec iov[2] = { { &type, 1 }, { (void *)data, len } };
	struct msghdr m = { .msg_iov = iov, .msg_iovlen = 2 };

	sendmsg(h->fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
}

static void port_receive(void *opaque, const void *frame, size_t len)
{
	put_msg(opaque, NET_MSG_FRAME, frame, len);
}

static void port_log(void *opaque, const char *msg)
{
	put_msg(opaque, NET_MSG_LOG, msg, strlen(msg));
}

/* Frames from the VMM, up to TAKE_BATCHES batches while they come, so
 * that a burst costs a poll and a slirp poll per batches rather than per
 * frame: false at its end of file. */
#define TAKE_BATCHES	8
static bool take_frames(struct helper *h)
{
	for (unsigned b = 0; b < TAKE_BATCHES; b++) {
		int got;

		for (unsigned i = 0; i < NET_HELPER_BATCH; i++)
			h->msgs[i].msg_hdr.msg_flags = 0;
		got = recvmmsg(h->fd, h->msgs, NET_HELPER_BATCH, MSG_DONTWAIT, NULL);
		if (got < 0)
			return errno == EAGAIN || errno == EINTR;
		if (!got)
			return false;
		for (int i = 0; i < got; i++) {
			struct iovec iov = { h->iov[i].iov_base, h->msgs[i].msg_len };

			if (!h->msgs[i].msg_len)
				return false;
			if (h->msgs[i].msg_hdr.msg_flags & MSG_TRUNC ||
			    iov.iov_len < NET_FRAME_MIN || iov.iov_len > NET_FRAME_MAX)
				continue;
			h->slirp->ops->send(h->slirp, &iov, 1, iov.iov_len);
		}
		if (got < NET_HELPER_BATCH)
			break;
	}
	return true;
}

static int serve(struct helper *h)
{
	static struct pollfd p[1 + POLL_MAX];

	/* slirp reads its clock when it handles its sockets: once before the
	 * first frame, whose socket would else expire at time 0. */
	h->slirp->ops->poll_handle(h->slirp, p, 0);
	for (;;) {
		int timeout = -1;
		unsigned n;

		p[0] = (struct pollfd){ .fd = h->fd, .events = POLLIN };
		n = h->slirp->ops->poll_fill(h->slirp, p + 1, POLL_MAX, &timeout);
		if (poll(p, 1 + n, timeout) < 0 && errno != EINTR) {
			fprintf(stderr, "%s: poll: %s\n", h->who, strerror(errno));
			return 1;
		}
		/* The guest's frames, then slirp's sockets and timers, and what
		 * waited for the frames (a datagram for an ARP reply). */
		if (p[0].revents & (POLLIN | POLLHUP | POLLERR) && !take_frames(h)) {
			h->slirp->ops->destroy(h->slirp);
			free(h->bufs);
			return 0;
		}
		h->slirp->ops->poll_handle(h->slirp, p + 1, n);
	}
}

static void usage(void)
{
	fprintf(stderr, "usage: vsrv-net --nic N --parent PID [--hostfwd SPEC]...\n"
		"  (vsrv run starts it for each --net user; not to be run by hand)\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "nic", required_argument, NULL, 'n' },
		{ "parent", required_argument, NULL, 'p' },
		{ "hostfwd", required_argument, NULL, 'f' },
		{ NULL, 0, NULL, 0 },
	};
	struct net_spec spec = { .type = NET_USER };
	struct helper h = { .fd = NET_HELPER_FD };
	char err[400];
	const char *hook = getenv("VSRV_TEST_NET_FORBIDDEN_SYSCALL");
	long parent = 0;
	int c;
	unsigned nic = 0;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'n':
			nic = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'p':
			parent = strtol(optarg, NULL, 10);
			break;
		case 'f':
			if (net_spec_add_hostfwd(&spec, optarg, err, sizeof(err)) < 0) {
				fprintf(stderr, "vsrv-net: %s\n", err);
				return 2;
			}
			break;
		default:
			usage();
		}
	}
	if (optind != argc || parent <= 0 || fcntl(NET_HELPER_FD, F_GETFD) < 0)
		usage();
	snprintf(h.who, sizeof(h.who), "vsrv-net: net%u", nic);
	/* Never outliving the VM's process: if it has already gone, its
	 * child is init's or a subreaper's now. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != (pid_t)parent)
		return 1;
	prctl(PR_SET_NAME, "vsrv-net");
	/* A peer that went away is an EPIPE; the terminal's Ctrl-C and
	 * hang-up are the VMM's to act on (vsrv stops the VM, and this
	 * helper ends with it). */
	signal(SIGPIPE, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	net_helper_sockbufs(h.fd);
	h.bufs = malloc((size_t)NET_HELPER_BATCH * (NET_FRAME_MAX + 1));
	if (!h.bufs) {
		fprintf(stderr, "%s: out of memory\n", h.who);
		return 1;
	}
	for (unsigned i = 0; i < NET_HELPER_BATCH; i++) {
		h.iov[i] = (struct iovec){ h.bufs + (size_t)i * (NET_FRAME_MAX + 1),
					   NET_FRAME_MAX + 1 };
		h.msgs[i].msg_hdr = (struct msghdr){ .msg_iov = &h.iov[i], .msg_iovlen = 1 };
	}
	if (net_slirp_open(&spec, &h.slirp, err, sizeof(err)) < 0) {
		put_msg(&h, NET_MSG_STATUS, err, strlen(err));
		free(h.bufs);
		return 1;
	}
	h.slirp->port = (struct net_port){ .receive = port_receive, .log = port_log,
					   .opaque = &h };
	if (sandbox_install(h.who, net_helper_filter,
			    sizeof(net_helper_filter) / sizeof(net_helper_filter[0]), err,
			    sizeof(err)) < 0) {
		put_msg(&h, NET_MSG_STATUS, err, strlen(err));
		return 1;
	}
	/* A test proving the filter kills: a call this helper never makes. */
	if (hook) {
		int sv[2];

		socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
	}
	put_msg(&h, NET_MSG_STATUS, "", 0);
	return serve(&h);
}
