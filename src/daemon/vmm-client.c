// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * One VMM as the supervisor sees it (vmm-client.h).
 *
 * vsrvd does not run `vsrv run` as its own child: a monitor process
 * (vsrvd-monitor, monitor.c) does, in a session of its own, and records
 * how it ended in DIR/exit-status.  So a VM outlives vsrvd (kill -9
 * included), a later vsrvd still learns its exact exit status, and the
 * pid vsrvd signals is the monitor's, which cannot be reused while vsrvd
 * holds a pidfd on it.
 *
 * Whether a monitor runs in DIR is the lock on DIR/monitor.lock: vsrvd
 * takes it before spawning and hands the locked file to the monitor as fd
 * 3, so there is no moment in which a monitor runs unlocked, and the lock
 * goes with the monitor however it ends.
 *
 * The monitor gets a pipe as fd 4 and closes it once it has started the
 * VMM and written DIR/vmm.pid; its standard error is vsrvd's, for what it
 * cannot put in vmm.log.
 *
 * Files in DIR: vm.json (the VM's config, vmconf.c), vmm.log (vsrv run's
 * standard output and error: its messages and the test device's debug
 * port; the monitor writes and rotates it), console.log (the serial
 * console), monitor.pid, vmm.pid,
 * exit-status, control.sock (the VMM's control socket), checkpoints/,
 * saved.state (a saved VM's state).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vmm-client.h"

/* How long a start waits for the monitor to have started the VMM. */
#define MONITOR_READY_MS	5000

static int pidfd_open(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

static int pidfd_signal(int pidfd, int sig)
{
	return syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0) < 0 ? -errno : 0;
}

static int open_in(const char *dir, const char *name, int flags, mode_t mode)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return open(path, flags | O_CLOEXEC, mode);
}

static pid_t read_pid(const char *dir, const char *name)
{
	char path[4096], buf[32];
	long pid;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (read_small_file(path, buf, sizeof(buf)) < 0)
		return 0;
	pid = strtol(buf, NULL, 10);
	return pid > 0 && pid < (1 << 22) ? (pid_t)pid : 0;
}

pid_t vmm_client_vmm_pid(const char *dir)
{
	return read_pid(dir, "vmm.pid");
}

int vmm_client_start(struct vsrvd *d, const char *dir, bool test_device, const char *restore,
		     struct vmm_handle *h, struct vsrvd_err *e)
{
	char *argv[14], path[4096], log_max[24], log_keep[16];
	posix_spawn_file_actions_t fa;
	int lock, ready[2], r, n = 0;
	pid_t pid;

	lock = open_in(dir, "monitor.lock", O_RDWR | O_CREAT, 0600);
	if (lock < 0)
		return vsrvd_fail(e, 500, -errno, "%s/monitor.lock: %s", dir, strerror(errno));
	if (flock(lock, LOCK_EX | LOCK_NB) < 0) {
		close(lock);
		return vsrvd_fail(e, 409, -EBUSY, "a VMM already runs in %s", dir);
	}
	/* What an earlier run left must not be taken for this one's. */
	for (const char *const *f = (const char *const[]){ "exit-status", "monitor.pid",
							    "vmm.pid", NULL }; *f; f++) {
		snprintf(path, sizeof(path), "%s/%s", dir, *f);
		unlink(path);
	}
	snprintf(log_max, sizeof(log_max), "%llu", (unsigned long long)d->cfg.log_max_bytes);
	snprintf(log_keep, sizeof(log_keep), "%u", d->cfg.log_keep);
	argv[n++] = "vsrvd-monitor";
	argv[n++] = (char *)dir;
	argv[n++] = log_max;
	argv[n++] = log_keep;
	argv[n++] = d->cfg.vsrv_bin;
	argv[n++] = "run";
	argv[n++] = "--config";
	argv[n++] = "vm.json";
	if (test_device)
		argv[n++] = "--test-device";
	if (restore) {
		argv[n++] = "--restore";
		argv[n++] = (char *)restore;
	}
	argv[n] = NULL;

	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, lock, 3);
	if (pipe2(ready, O_CLOEXEC) < 0) {
		r = -errno;
		close(lock);
		posix_spawn_file_actions_destroy(&fa);
		return vsrvd_fail(e, 500, r, "pipe: %s", strerror(-r));
	}
	posix_spawn_file_actions_adddup2(&fa, ready[1], 4);
	/* A session of its own: a terminal's ^C or a signal to vsrvd's
	 * process group never reaches the VMs. */
	r = -spawn_clean(&pid, d->monitor, &fa, argv, true);
	posix_spawn_file_actions_destroy(&fa);
	close(lock);	/* the monitor's fd 3 holds it now */
	close(ready[1]);
	if (r) {
		close(ready[0]);
		return vsrvd_fail(e, 500, -r, "starting the monitor (%s): %s", d->monitor,
				  strerror(r));
	}
	/* The monitor closes fd 4 once vmm.pid is written (or dies): so a
	 * start's answer has the VMM's pid. */
	{
		struct pollfd p = { .fd = ready[0], .events = POLLIN };
		char c;

		if (poll(&p, 1, MONITOR_READY_MS) > 0 && read(ready[0], &c, 1) < 0)
			c = 0;
		close(ready[0]);
	}
	h->monitor = pid;
	h->adopted = false;
	h->pidfd = pidfd_open(pid);
	if (h->pidfd < 0) {
		r = -errno;
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return vsrvd_fail(e, 500, r, "pidfd_open: %s", strerror(-r));
	}
	return 0;
}

/* 1 if some process holds DIR's monitor lock. */
static int lock_held(const char *dir)
{
	int fd = open_in(dir, "monitor.lock", O_RDONLY, 0), held;

	if (fd < 0)
		return 0;
	held = flock(fd, LOCK_EX | LOCK_NB) < 0 && errno == EWOULDBLOCK;
	close(fd);
	return held;
}

int vmm_client_adopt(const char *dir, struct vmm_handle *h)
{
	/* The monitor writes its pid first thing; give a monitor spawned
	 * just before vsrvd died the moment it needs. */
	for (int tries = 0; tries < 100; tries++) {
		pid_t pid;
		int fd;

		if (!lock_held(dir))
			return 0;
		pid = read_pid(dir, "monitor.pid");
		fd = pid ? pidfd_open(pid) : -1;
		if (fd >= 0 && lock_held(dir)) {
			h->monitor = pid;
			h->pidfd = fd;
			h->adopted = true;
			return 1;
		}
		if (fd >= 0)
			close(fd);
		usleep(10000);
	}
	return -ESRCH;
}

int vmm_client_power_off(struct vmm_handle *h)
{
	return pidfd_signal(h->pidfd, SIGTERM);
}

int vmm_client_kill(struct vmm_handle *h)
{
	return pidfd_signal(h->pidfd, SIGUSR1);
}

void vmm_client_reap(struct vmm_handle *h, const char *dir, struct vmm_exit *x)
{
	char path[4096], buf[64];
	int code;

	if (h && h->pidfd >= 0) {
		siginfo_t si;

		/* Our child, unless adopted: reap it (ECHILD otherwise). */
		waitid(P_PIDFD, (id_t)h->pidfd, &si, WEXITED | WNOHANG);
		close(h->pidfd);
		h->pidfd = -1;
		h->monitor = 0;
	}
	snprintf(path, sizeof(path), "%s/exit-status", dir);
	if (read_small_file(path, buf, sizeof(buf)) < 0) {
		/* The monitor itself was killed: its VMM may run on, beyond
		 * anyone's reach.  End it, and say what happened. */
		pid_t vmm = vmm_client_vmm_pid(dir);
		char comm[64] = "";

		if (vmm) {
			snprintf(path, sizeof(path), "/proc/%d/comm", (int)vmm);
			if (read_small_file(path, comm, sizeof(comm)) == 0 && !strncmp(comm, "vsrv", 4))
				kill(vmm, SIGKILL);
		}
		x->crashed = true;
		snprintf(x->desc, sizeof(x->desc), "the VMM's monitor ended without a status");
		return;
	}
	if (sscanf(buf, "exited %d", &code) == 1) {
		/* vsrv run: 0 powered off, 3 rebooted with --on-reboot exit; 4
		 * the guest crashed, 1 the VMM failed, 2 its config was refused;
		 * a micro-guest's test device exits with the guest's value. */
		x->crashed = code != 0 && code != 3;
		snprintf(x->desc, sizeof(x->desc), "exited with status %d%s", code,
			 code == 0 ? " (powered off)" : code == 4 ? " (the guest crashed)" :
			 code == 1 ? " (the VMM failed)" : code == 2 ? " (the VM config was refused)" :
			 "");
	} else if (sscanf(buf, "killed %d", &code) == 1) {
		x->crashed = true;
		snprintf(x->desc, sizeof(x->desc), "killed by signal %d (%s)", code, strsignal(code));
	} else {
		x->crashed = true;
		snprintf(x->desc, sizeof(x->desc), "unreadable exit status");
	}
}
