// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vmm-exec: the start of bench/vmm-run's start-up measurement.
 *
 *     vmm-exec SET_EVENT_PID OUT PROGRAM [ARG...]
 *
 * Writes its own pid to SET_EVENT_PID (the set_event_pid file of the
 * tracefs instance bench/vmm-run made, with event-fork on: from here the
 * process, whatever it execs, its threads and children are traced), then
 * reads CLOCK_MONOTONIC, writes "exec PID NS" to OUT and execs PROGRAM (an
 * absolute path) at once, with the environment unchanged.  Everything is
 * opened before the clock is read; between the reading and execve() there
 * is the formatting of one line and one write().  The process stays the
 * same: its pid is the VMM's, for the caller to signal.  Nothing is
 * preloaded into the VMM, so a statically linked one is timed as a
 * dynamically linked one is.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	char line[64];
	struct timespec ts;
	int pidfd, out, n;

	if (argc < 4 || argv[3][0] != '/') {
		fprintf(stderr, "usage: vmm-exec SET_EVENT_PID OUT /PATH/TO/PROGRAM [ARG...]\n");
		return 2;
	}
	pidfd = open(argv[1], O_WRONLY | O_CLOEXEC);
	out = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (pidfd < 0 || out < 0) {
		fprintf(stderr, "vmm-exec: %s: %s\n", pidfd < 0 ? argv[1] : argv[2],
			strerror(errno));
		return 1;
	}
	n = snprintf(line, sizeof(line), "%ld\n", (long)getpid());
	if (write(pidfd, line, (size_t)n) != n) {
		fprintf(stderr, "vmm-exec: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	close(pidfd);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	n = snprintf(line, sizeof(line), "exec %ld %lld\n", (long)getpid(),
		     (long long)ts.tv_sec * 1000000000 + ts.tv_nsec);
	if (write(out, line, (size_t)n) != n)
		return 1;
	execv(argv[3], argv + 3);
	fprintf(stderr, "vmm-exec: %s: %s\n", argv[3], strerror(errno));
	return 127;
}
