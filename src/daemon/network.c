// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Virtual networks on the host.
 *
 *   user      the VMM's own user-mode NAT: nothing on the host to set up
 *   internal  a bridge vsrvd creates with no uplink, so that VMs on it
 *             reach each other and nothing else (Virtual Server's internal
 *             networks); with "dhcp", the bridge gets the subnet's address
 *             and Debian's dnsmasq hands out the rest
 *   bridge    an existing host bridge, which must be there
 *
 * A bridge is two ioctls (SIOCBRADDBR, then the interface up), an address
 * two more; dnsmasq runs as its own daemon with a pid file, so it outlives
 * a vsrvd restart as the VMs do, and is started again only if it is gone.
 * Files: STATE/networks/NAME.pid, NAME.leases.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vsrvd.h"

/* An internal network's bridge: "vsrv" and a hash of its name, so that it
 * is the same at every start and fits IFNAMSIZ. */
static void bridge_name(const char *net, char out[IFNAMSIZ])
{
	uint32_t h = 2166136261u;	/* FNV-1a */

	for (const char *p = net; *p; p++)
		h = (h ^ (uint8_t)*p) * 16777619u;
	snprintf(out, IFNAMSIZ, "vsrv%08x", h);
}

static int ifreq_ioctl(unsigned long req, struct ifreq *ifr)
{
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), r = 0;

	if (fd < 0)
		return -errno;
	if (ioctl(fd, req, ifr) < 0)
		r = -errno;
	close(fd);
	return r;
}

static bool is_bridge(const char *ifname)
{
	char path[96];

	snprintf(path, sizeof(path), "/sys/class/net/%s/bridge", ifname);
	return access(path, F_OK) == 0;
}

static int bridge_create(const char *br, const char *cidr, struct vsrvd_err *e)
{
	struct ifreq ifr = { 0 };
	int fd, r = 0;

	if (!is_bridge(br)) {
		fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (fd < 0 || ioctl(fd, SIOCBRADDBR, br) < 0)
			r = -errno;
		if (fd >= 0)
			close(fd);
		if (r < 0)
			return vsrvd_fail(e, 500, r, "bridge %s: %s", br, strerror(-r));
	}
	if (cidr) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ifr.ifr_addr;
		char addr[20];
		unsigned prefix;

		sscanf(cidr, "%19[0-9.]/%u", addr, &prefix);
		snprintf(ifr.ifr_name, IFNAMSIZ, "%s", br);
		sin->sin_family = AF_INET;
		inet_pton(AF_INET, addr, &sin->sin_addr);
		r = ifreq_ioctl(SIOCSIFADDR, &ifr);
		sin->sin_addr.s_addr = htonl(~0u << (32 - prefix));
		if (r == 0)
			r = ifreq_ioctl(SIOCSIFNETMASK, &ifr);
		if (r < 0)
			return vsrvd_fail(e, 500, r, "bridge %s: address %s: %s", br, cidr,
					  strerror(-r));
	}
	snprintf(ifr.ifr_name, IFNAMSIZ, "%s", br);
	r = ifreq_ioctl(SIOCGIFFLAGS, &ifr);
	ifr.ifr_flags |= IFF_UP;
	if (r == 0)
		r = ifreq_ioctl(SIOCSIFFLAGS, &ifr);
	if (r < 0)
		return vsrvd_fail(e, 500, r, "bridge %s: up: %s", br, strerror(-r));
	return 0;
}

static void bridge_delete(const char *br)
{
	struct ifreq ifr = { 0 };
	int fd;

	snprintf(ifr.ifr_name, IFNAMSIZ, "%s", br);
	if (ifreq_ioctl(SIOCGIFFLAGS, &ifr) == 0) {
		ifr.ifr_flags &= ~IFF_UP;
		ifreq_ioctl(SIOCSIFFLAGS, &ifr);
	}
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd >= 0) {
		ioctl(fd, SIOCBRDELBR, br);
		close(fd);
	}
}

static void net_file(struct vsrvd *d, const char *net, const char *ext, char *out, size_t len)
{
	snprintf(out, len, "%s/networks/%s.%s", d->cfg.state_dir, net, ext);
}

/* dnsmasq's pid from its pid file, if that process is dnsmasq. */
static pid_t dnsmasq_pid(struct vsrvd *d, const char *net)
{
	char path[4096], buf[32], comm[32];
	pid_t pid;

	net_file(d, net, "pid", path, sizeof(path));
	if (read_small_file(path, buf, sizeof(buf)) < 0 || (pid = atoi(buf)) <= 0)
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	if (read_small_file(path, comm, sizeof(comm)) < 0 || strncmp(comm, "dnsmasq", 7))
		return 0;
	return pid;
}

static int dnsmasq_start(struct vsrvd *d, const char *net, const char *br, const char *cidr,
			 struct vsrvd_err *e)
{
	char range[80], iface[32], pidf[4200], leases[4200], addr[20], first[20], last[20];
	char pidarg[4300], leasearg[4300];
	struct in_addr a;
	unsigned prefix;
	uint32_t host, mask;
	int status, r;
	pid_t pid;

	if (dnsmasq_pid(d, net))
		return 0;
	sscanf(cidr, "%19[0-9.]/%u", addr, &prefix);
	inet_pton(AF_INET, addr, &a);
	host = ntohl(a.s_addr);
	mask = ~0u << (32 - prefix);
	/* The subnet's addresses after the bridge's own, up to the last one
	 * before broadcast. */
	a.s_addr = htonl(host + 1);
	inet_ntop(AF_INET, &a, first, sizeof(first));
	a.s_addr = htonl((host | ~mask) - 1);
	inet_ntop(AF_INET, &a, last, sizeof(last));
	snprintf(range, sizeof(range), "--dhcp-range=%s,%s,1h", first, last);
	snprintf(iface, sizeof(iface), "--interface=%s", br);
	net_file(d, net, "pid", pidf, sizeof(pidf));
	net_file(d, net, "leases", leases, sizeof(leases));
	snprintf(pidarg, sizeof(pidarg), "--pid-file=%s", pidf);
	snprintf(leasearg, sizeof(leasearg), "--dhcp-leasefile=%s", leases);
	char *argv[] = { "dnsmasq", "--conf-file=/dev/null", "--port=0", "--bind-interfaces",
			 "--except-interface=lo", iface, range, pidarg, leasearg, NULL };
	r = spawn_clean(&pid, "dnsmasq", NULL, argv, false);
	if (r)
		return vsrvd_fail(e, 500, r, "dnsmasq: %s (install dnsmasq-base)", strerror(-r));
	/* It forks its daemon and exits: 0 once it listens. */
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		return vsrvd_fail(e, 500, -EIO, "dnsmasq for network '%s' failed (status %d)", net,
				  WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	return 0;
}

int network_setup(struct vsrvd *d, json_t *net, struct vsrvd_err *e)
{
	const char *name = json_string_value(json_object_get(net, "name"));
	const char *type = json_string_value(json_object_get(net, "type"));
	const char *subnet = json_string_value(json_object_get(net, "subnet"));
	bool dhcp = json_is_true(json_object_get(net, "dhcp"));
	char br[IFNAMSIZ], dir[4096];
	int r;

	if (!strcmp(type, "bridge")) {
		const char *host_br = json_string_value(json_object_get(net, "bridge"));

		if (!is_bridge(host_br))
			return vsrvd_fail(e, 400, -ENODEV, "bridge: %s is not a bridge on this host",
					  host_br);
		return 0;
	}
	if (strcmp(type, "internal"))
		return 0;
	if (!json_object_get(net, "bridge") || json_is_null(json_object_get(net, "bridge"))) {
		bridge_name(name, br);
		json_object_set_new(net, "bridge", json_string(br));
	}
	snprintf(br, sizeof(br), "%s", json_string_value(json_object_get(net, "bridge")));
	r = bridge_create(br, dhcp ? subnet : NULL, e);
	if (r < 0 || !dhcp)
		return r;
	snprintf(dir, sizeof(dir), "%s/networks", d->cfg.state_dir);
	mkdir(dir, 0750);
	return dnsmasq_start(d, name, br, subnet, e);
}

int network_teardown(struct vsrvd *d, json_t *net)
{
	const char *name = json_string_value(json_object_get(net, "name"));
	pid_t pid;
	char path[4096];

	if (strcmp(json_string_value(json_object_get(net, "type")), "internal"))
		return 0;
	pid = dnsmasq_pid(d, name);
	if (pid)
		kill(pid, SIGTERM);
	net_file(d, name, "pid", path, sizeof(path));
	unlink(path);
	net_file(d, name, "leases", path, sizeof(path));
	unlink(path);
	bridge_delete(json_string_value(json_object_get(net, "bridge")));
	return 0;
}

int network_restore_all(struct vsrvd *d)
{
	json_t *list, *net;
	size_t i;

	inventory_net_list(d->inv, &list);
	json_array_foreach(list, i, net) {
		struct vsrvd_err e = { 0 };

		if (strcmp(json_string_value(json_object_get(net, "type")), "internal"))
			continue;
		if (network_setup(d, net, &e) < 0)
			events_log(d->ev, "network.failed", NULL, "network %s: %s",
				   json_string_value(json_object_get(net, "name")), e.msg);
	}
	json_decref(list);
	return 0;
}
