/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The VMM and its user-mode networking helper, vsrv-net (user.c,
 * net-helper.c): a socket pair (AF_UNIX, SOCK_SEQPACKET), the helper's end
 * its descriptor NET_HELPER_FD.  The NIC's spec is on the helper's command
 * line:
 *
 *   vsrv-net --nic N --parent PID [--hostfwd tcp:0.0.0.0:2222-10.0.2.15:22]...
 *
 * VMM -> helper: each message is one Ethernet frame the guest sent,
 * nothing else.
 * helper -> VMM: each message is a type byte and what it carries:
 *   NET_MSG_STATUS  once, first: empty when slirp and every port forward
 *                   are set up, else the one line saying why not (then the
 *                   helper exits); no frame comes before it
 *   NET_MSG_FRAME   a frame for the guest
 *   NET_MSG_LOG     a line about something the guest did (slirp's
 *                   guest_error), for the NIC's log
 * Either side's end of file ends the other: the helper exits, the NIC has
 * no network left (and says so).
 */
#ifndef VSRV_NET_PROTO_H
#define VSRV_NET_PROTO_H

#include <sys/socket.h>

#define NET_HELPER_NAME		"vsrv-net"
#define NET_HELPER_FD		3
/* Frames in flight either way (SO_SNDBUF, SO_RCVBUF): the kernel caps it
 * at net.core.wmem_max, rmem_max. */
#define NET_HELPER_SOCKBUF	(4 << 20)
/* Both ends' buffers, NET_HELPER_SOCKBUF each way (best effort: below
 * the cap it is what the kernel gives). */
static inline void net_helper_sockbufs(int fd)
{
	int size = NET_HELPER_SOCKBUF;

	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
}

/* Messages taken in one recvmmsg(). */
#define NET_HELPER_BATCH	32

enum net_msg_type {
	NET_MSG_STATUS = 'S',
	NET_MSG_FRAME = 'F',
	NET_MSG_LOG = 'L',
};

#endif
