// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vsrvd-monitor DIR VSRV ARGS...: the parent of one `vsrv run`, so that
 * the VM needs no vsrvd to go on running and its end is never lost.
 * (conmon plays this part for containers.)  A program of its own, linked
 * with nothing but libc, so that starting it costs a VM's start little.
 *
 * Started by vsrvd (vmm-client.c) with DIR's lock on fd 3, a pipe to close
 * once the VMM is started on fd 4, and vmm.log as standard output and
 * error.  It runs VSRV ARGS in DIR, writes
 * DIR/monitor.pid and DIR/vmm.pid, passes SIGTERM, SIGINT and SIGHUP on
 * to the VMM (a clean power-off), turns SIGUSR1 into a SIGKILL of the
 * VMM, and when the VMM ends writes DIR/exit-status ("exited N" or
 * "killed N") and exits.  Single-threaded; every signal is taken with
 * sigwaitinfo(), so none interrupts it half-way through a file.
 *
 * When DIR/cgroups names the VM's cgroups (cgroup.c), the VMM's process
 * enters each of them between fork and exec, so that none of its threads
 * runs outside; the monitor stays where it is.  fd 4 is closed once the
 * exec has happened (a close-on-exec pipe says so).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vsrvd.h"

static int put_pid(const char *name, pid_t pid)
{
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%d\n", (int)pid);

	return write_file_atomic(name, buf, (size_t)n, 0644);
}

/* Into each cgroup DIR/cgroups lists ("CONTROLLERS PATH" lines after the
 * version): a failure is said in vmm.log, and the VM runs anyway. */
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

int main(int argc, char **argv)
{
	char buf[64], cgroups[2048] = "";
	int status, n, exec_pipe[2];
	sigset_t set;
	pid_t pid;

	if (argc < 4) {
		fprintf(stderr, "usage: vsrvd-monitor DIR VSRV ARGS...\n");
		return 2;
	}
	sigemptyset(&set);
	for (int s = 0, sigs[] = { SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGCHLD }; s < 5; s++)
		sigaddset(&set, sigs[s]);
	sigprocmask(SIG_BLOCK, &set, NULL);
	if (chdir(argv[1]) < 0) {
		fprintf(stderr, "vsrvd: monitor: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	/* The lock stays with the monitor, not the VMM; fd 4 tells vsrvd
	 * that the VMM is started. */
	fcntl(3, F_SETFD, FD_CLOEXEC);
	fcntl(4, F_SETFD, FD_CLOEXEC);
	put_pid("monitor.pid", getpid());
	if (read_small_file("cgroups", cgroups, sizeof(cgroups)) < 0)
		cgroups[0] = 0;
	if (pipe2(exec_pipe, O_CLOEXEC) < 0) {
		fprintf(stderr, "vsrvd: monitor: pipe: %s\n", strerror(errno));
		return 1;
	}
	pid = fork();
	if (pid < 0) {
		fprintf(stderr, "vsrvd: monitor: fork: %s\n", strerror(errno));
		return 1;
	}
	if (pid == 0) {
		close(exec_pipe[0]);
		enter_cgroups(cgroups);
		sigprocmask(SIG_UNBLOCK, &set, NULL);
		execv(argv[2], argv + 2);
		fprintf(stderr, "vsrvd: monitor: %s: %s\n", argv[2], strerror(errno));
		_exit(127);
	}
	put_pid("vmm.pid", pid);
	/* End of file once the child has exec'd (or died): vsrvd then finds
	 * the VMM in its cgroups. */
	close(exec_pipe[1]);
	while (read(exec_pipe[0], buf, sizeof(buf)) < 0 && errno == EINTR)
		;
	close(exec_pipe[0]);
	close(4);
	for (;;) {
		siginfo_t si;
		int sig = sigwaitinfo(&set, &si);

		if (sig == SIGTERM || sig == SIGINT || sig == SIGHUP)
			kill(pid, SIGTERM);
		else if (sig == SIGUSR1)
			kill(pid, SIGKILL);
		else if (sig == SIGCHLD && waitpid(pid, &status, WNOHANG) == pid)
			break;
	}
	if (WIFEXITED(status))
		n = snprintf(buf, sizeof(buf), "exited %d\n", WEXITSTATUS(status));
	else
		n = snprintf(buf, sizeof(buf), "killed %d\n", WTERMSIG(status));
	write_file_atomic("exit-status", buf, (size_t)n, 0644);
	unlink("vmm.pid");
	return 0;
}
