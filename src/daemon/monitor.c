// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vsrvd-monitor DIR LOG_MAX LOG_KEEP VSRV ARGS...: the parent of one
 * `vsrv run`, so that the VM needs no vsrvd to go on running and its end
 * is never lost.  (conmon plays this part for containers.)  A program of
 * its own, linked with nothing but libc, so that starting it costs a VM's
 * start little.
 *
 * Started by vsrvd (vmm-client.c) with DIR's lock on fd 3, a pipe to close
 * once the VMM is started on fd 4, and vsrvd's standard error as its own.
 * It runs VSRV ARGS in DIR, writes DIR/monitor.pid and DIR/vmm.pid, passes
 * SIGTERM, SIGINT and SIGHUP on to the VMM (a clean power-off), turns
 * SIGUSR1 into a SIGKILL of the VMM, and when the VMM ends writes
 * DIR/exit-status ("exited N" or "killed N") and exits.  Single-threaded;
 * every signal is taken through a signalfd, so none interrupts it
 * half-way through a file.
 *
 * The VMM's standard output and error are a pipe that the monitor reads
 * into DIR/vmm.log, rotated as it is written (rotlog.c: at LOG_MAX bytes,
 * LOG_KEEP rotated files kept, at a line's end), so that rotating loses
 * nothing and a vsrvd that is restarted or killed meanwhile does not
 * matter.  When the VMM ends, what its processes wrote is read to the
 * pipe's end (DRAIN_MS at most, for a child of it that lingers) before
 * exit-status is written: whoever sees the VM's end finds its whole log.
 * The monitor's own messages go to vmm.log too (stderr before it is
 * open).
 *
 * When DIR/cgroups names the VM's cgroups (cgroup.c), the VMM's process
 * enters each of them between fork and exec, so that none of its threads
 * runs outside; the monitor stays where it is.  fd 4 is closed once the
 * exec has happened (a close-on-exec pipe says so).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "rotlog.h"
#include "vsrvd.h"

#define DRAIN_MS	2000

static struct rotlog vmm_log = { .fd = -1 };

static void __attribute__((format(printf, 1, 2))) say(const char *fmt, ...)
{
	char buf[600];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(buf) - 2)
		n = sizeof(buf) - 2;
	buf[n++] = '\n';
	if (vmm_log.fd >= 0)
		rotlog_write(&vmm_log, buf, (size_t)n);
	else
		fwrite(buf, 1, (size_t)n, stderr);
}

static int put_pid(const char *name, pid_t pid)
{
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%d\n", (int)pid);

	return write_file_atomic(name, buf, (size_t)n, 0644);
}

/* Into each cgroup DIR/cgroups lists ("CONTROLLERS PATH" lines after the
 * version), in the VMM's process before its exec (its stderr is the
 * log's pipe): a failure is said in vmm.log, and the VM runs anyway. */
static void enter_cgroups(const char *list)
{
	char pid[24], path[4200];

	snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
	for (const char *p = strchr(list, '\n'); p && p[1]; p = strchr(p + 1, '\n')) {
		const char *dir = strchr(p + 1, ' '), *end = strchr(p + 1, '\n');
		ssize_t n = 0;
		int fd;

		if (!dir || !end || dir > end)
			continue;
		snprintf(path, sizeof(path), "%.*s/cgroup.procs", (int)(end - dir - 1), dir + 1);
		fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
		if (fd >= 0)
			n = write(fd, pid, strlen(pid));
		if (fd < 0 || n != (ssize_t)strlen(pid))
			fprintf(stderr, "vsrvd: monitor: %s: %s\n", path, strerror(errno));
		if (fd >= 0)
			close(fd);
	}
}

/* What the pipe has into the log; false at its end (or an error). */
static bool pump(int fd)
{
	char buf[65536];

	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n > 0) {
			rotlog_write(&vmm_log, buf, (size_t)n);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		return n < 0 && errno == EAGAIN;
	}
}

static uint64_t mono_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Relays signals to the VMM and its output to the log until it has ended
 * and its output is all read; its wait status. */
static int watch(pid_t pid, int sfd, int out)
{
	uint64_t drain_by = 0;
	int status = 0;
	bool ended = false;

	while (out >= 0 || !ended) {
		struct pollfd p[2] = { { .fd = ended ? -1 : sfd, .events = POLLIN },
				       { .fd = out, .events = POLLIN } };
		int timeout = -1;

		if (ended) {
			uint64_t now = mono_now_ms();

			if (now >= drain_by)
				break;
			timeout = (int)(drain_by - now);
		}
		if (poll(p, 2, timeout) < 0 && errno != EINTR)
			break;
		if (p[1].revents && !pump(out)) {
			close(out);
			out = -1;
		}
		if (p[0].revents & POLLIN) {
			struct signalfd_siginfo si;

			if (read(sfd, &si, sizeof(si)) != sizeof(si))
				continue;
			if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT || si.ssi_signo == SIGHUP)
				kill(pid, SIGTERM);
			else if (si.ssi_signo == SIGUSR1)
				kill(pid, SIGKILL);
			else if (si.ssi_signo == SIGCHLD && waitpid(pid, &status, WNOHANG) == pid) {
				ended = true;
				drain_by = mono_now_ms() + DRAIN_MS;
			}
		}
	}
	if (out >= 0) {
		pump(out);
		close(out);
	}
	return status;
}

int main(int argc, char **argv)
{
	char buf[64], cgroups[2048] = "", *end;
	int status, n, exec_pipe[2], out[2], sfd;
	unsigned long long log_max;
	unsigned long log_keep;
	sigset_t set;
	pid_t pid;

	if (argc < 6) {
		fprintf(stderr, "usage: vsrvd-monitor DIR LOG_MAX LOG_KEEP VSRV ARGS...\n");
		return 2;
	}
	log_max = strtoull(argv[2], &end, 10);
	if (*end || end == argv[2] || (log_keep = strtoul(argv[3], &end, 10), *end)) {
		fprintf(stderr, "vsrvd: monitor: '%s %s': not a log's size and count\n",
			argv[2], argv[3]);
		return 2;
	}
	sigemptyset(&set);
	for (int s = 0, sigs[] = { SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGCHLD }; s < 5; s++)
		sigaddset(&set, sigs[s]);
	sigprocmask(SIG_BLOCK, &set, NULL);
	/* A log that cannot be written must not end the monitor. */
	signal(SIGPIPE, SIG_IGN);
	if (chdir(argv[1]) < 0) {
		fprintf(stderr, "vsrvd: monitor: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	/* The lock stays with the monitor, not the VMM; fd 4 tells vsrvd
	 * that the VMM is started. */
	fcntl(3, F_SETFD, FD_CLOEXEC);
	fcntl(4, F_SETFD, FD_CLOEXEC);
	put_pid("monitor.pid", getpid());
	/* Said on stderr if it fails; the VM runs all the same. */
	rotlog_open(&vmm_log, argv[1], "vmm.log", log_max, (unsigned)log_keep, true);
	if (read_small_file("cgroups", cgroups, sizeof(cgroups)) < 0)
		cgroups[0] = 0;
	sfd = signalfd(-1, &set, SFD_CLOEXEC);
	if (sfd < 0 || pipe2(exec_pipe, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0) {
		say("vsrvd: monitor: %s: %s", sfd < 0 ? "signalfd" : "pipe", strerror(errno));
		return 1;
	}
	pid = fork();
	if (pid < 0) {
		say("vsrvd: monitor: fork: %s", strerror(errno));
		return 1;
	}
	if (pid == 0) {
		close(exec_pipe[0]);
		/* dup2 clears close-on-exec on 1 and 2. */
		if (dup2(out[1], STDOUT_FILENO) < 0 || dup2(out[1], STDERR_FILENO) < 0)
			_exit(127);
		enter_cgroups(cgroups);
		signal(SIGPIPE, SIG_DFL);
		sigprocmask(SIG_UNBLOCK, &set, NULL);
		execv(argv[4], argv + 4);
		fprintf(stderr, "vsrvd: monitor: %s: %s\n", argv[4], strerror(errno));
		_exit(127);
	}
	/* The VMM's processes hold the pipe's writing end: its end of file
	 * says they are all gone. */
	close(out[1]);
	fcntl(out[0], F_SETFL, O_NONBLOCK);
	put_pid("vmm.pid", pid);
	/* End of file once the child has exec'd (or died): vsrvd then finds
	 * the VMM in its cgroups. */
	close(exec_pipe[1]);
	while (read(exec_pipe[0], buf, sizeof(buf)) < 0 && errno == EINTR)
		;
	close(exec_pipe[0]);
	close(4);
	status = watch(pid, sfd, out[0]);
	rotlog_close(&vmm_log);
	if (WIFEXITED(status))
		n = snprintf(buf, sizeof(buf), "exited %d\n", WEXITSTATUS(status));
	else
		n = snprintf(buf, sizeof(buf), "killed %d\n", WTERMSIG(status));
	write_file_atomic("exit-status", buf, (size_t)n, 0644);
	unlink("vmm.pid");
	return 0;
}
