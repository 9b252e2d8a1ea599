// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vmm-exec: the start of bench/vmm-run's start-up measurement.
 *
 *     vmm-exec SHIM PROGRAM [ARG...]
 *
 * Reads CLOCK_MONOTONIC and execs PROGRAM (an absolute path) at once, with
 * LD_PRELOAD=SHIM (vmm-shim.so) and the reading as VMM_SHIM_EXEC_NS in its
 * environment, where the shim finds it and writes it beside its own
 * records (to $VMM_SHIM_OUT).  vmm-exec itself runs without the shim.
 * Everything else is prepared before the clock is read: the environment
 * array, the number's buffer; between the reading and execve() there is
 * only the formatting of one number.  The process stays the same: its pid
 * is the VMM's, for the caller to signal.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

int main(int argc, char **argv)
{
	static char var[64] = "VMM_SHIM_EXEC_NS=";
	const size_t prefix = strlen(var);
	size_t n = 0, k = 0;
	struct timespec ts;
	char **envp, *preload;

	if (argc < 3 || argv[1][0] != '/' || argv[2][0] != '/') {
		fprintf(stderr, "usage: vmm-exec /PATH/TO/vmm-shim.so /PATH/TO/PROGRAM [ARG...]\n");
		return 2;
	}
	if (asprintf(&preload, "LD_PRELOAD=%s", argv[1]) < 0)
		return 1;
	while (environ[n])
		n++;
	envp = calloc(n + 3, sizeof(*envp));
	if (!envp)
		return 1;
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], "LD_PRELOAD=", 11))
			envp[k++] = environ[i];
	envp[k++] = preload;
	envp[k++] = var;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	snprintf(var + prefix, sizeof(var) - prefix, "%lld",
		 (long long)ts.tv_sec * 1000000000 + ts.tv_nsec);
	execve(argv[2], argv + 2, envp);
	fprintf(stderr, "vmm-exec: %s: %s\n", argv[2], strerror(errno));
	return 127;
}
