// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * One VM from start to end: create it, attach devices, load the kernel,
 * confine the process (sandbox.c), run the vCPUs, and turn how it ended
 * into an exit status.  A reboot builds the VM anew, in a new process (the
 * simplest reset that cannot leave state behind, and the only one that
 * can: the seccomp filter forbids, for good, what setting up a VM needs).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../devices/devices.h"
#include "vmm.h"

static int fail(const char *msg)
{
	fprintf(stderr, "vsrv: %s\n", msg);
	return VM_STATUS_ERROR;
}

/*
 * One line per exit reason: how often the vCPUs came out to user space,
 * which is what an exit costs most on (about 30 us on hosts without
 * hardware virtualization), split by vCPU when there are several.
 */
static void print_stats(const struct vm *vm)
{
	for (unsigned reason = 0; reason < 64; reason++) {
		uint64_t total = 0;
		char per[VM_MAX_CPUS * 32] = "";
		size_t n = 0;

		for (unsigned i = 0; i < vm->opts.nr_cpus; i++)
			total += vm->vcpus[i].exits[reason];
		if (!total)
			continue;
		for (unsigned i = 0; vm->opts.nr_cpus > 1 && i < vm->opts.nr_cpus; i++)
			n += (size_t)snprintf(per + n, sizeof(per) - n, "%svCPU %u: %llu",
					      i ? ", " : " (", i,
					      (unsigned long long)vm->vcpus[i].exits[reason]);
		fprintf(stderr, "vsrv: exits: %s %llu%s%s\n",
			reason == 63 ? "other" : vcpu_exit_name(reason),
			(unsigned long long)total, per, n ? ")" : "");
	}
}

/* One boot of the VM; *reboot says whether it asked to start again. */
static int run_once(const struct vmm_config *cfg, bool *reboot)
{
	struct vm vm;
	struct boot_info bi;
	char err[1024] = "";
	int r, status;

	*reboot = false;
	r = vm_create(&vm, &cfg->vm, err, sizeof(err));
	if (r < 0) {
		vm_destroy(&vm);
		return fail(err);
	}
	vm.quirks = cfg->vm.quirks == QUIRKS_ON ||
		    (cfg->vm.quirks == QUIRKS_AUTO && quirks_detect());
	r = port80_init(&vm);
	if (r >= 0 && cfg->vm.test_device)
		r = testdev_init(&vm);
	if (r < 0) {
		snprintf(err, sizeof(err), "attaching devices: %s", strerror(-r));
		goto fail;
	}
	r = boot_load(&vm, &cfg->boot, &bi, err, sizeof(err));
	if (r >= 0 && cfg->boot.dry_run) {
		fputs(bi.desc, stdout);
		vm_destroy(&vm);
		return VM_STATUS_POWEROFF;
	}
	for (unsigned i = 0; r >= 0 && i < cfg->vm.nr_cpus; i++)
		r = vcpu_create(&vm, i, err, sizeof(err));
	if (r >= 0)
		r = boot_setup_bsp(&vm.vcpus[0], &bi, err, sizeof(err));
	if (r >= 0)
		r = sandbox_enter(err, sizeof(err));
	if (r >= 0)
		r = vcpus_start(&vm, err, sizeof(err));
	if (r < 0)
		goto fail;
	vcpus_join(&vm);
	if (cfg->stats)
		print_stats(&vm);

	switch (atomic_load(&vm.exit_kind)) {
	case VM_EXIT_POWEROFF:
		status = VM_STATUS_POWEROFF;
		break;
	case VM_EXIT_REBOOT:
		*reboot = cfg->on_reboot == ON_REBOOT_RESTART;
		if (!*reboot)
			fprintf(stderr, "vsrv: guest rebooted (%s)\n",
				vm.exit_msg[0] ? vm.exit_msg : "reset");
		status = VM_STATUS_REBOOT;
		break;
	case VM_EXIT_TEST:
		status = vm.exit_value & 0xff;
		break;
	case VM_EXIT_CRASH:
		fprintf(stderr, "vsrv: guest crashed: %s\n", vm.exit_msg);
		status = VM_STATUS_CRASH;
		break;
	default:
		fprintf(stderr, "vsrv: %s\n", vm.exit_msg);
		status = VM_STATUS_ERROR;
	}
	vm_destroy(&vm);
	return status;
fail:
	vm_request_exit(&vm, VM_EXIT_ERROR, 0, "%s", err);
	vcpus_join(&vm);
	vm_destroy(&vm);
	return fail(err);
}

/*
 * With --on-reboot restart, each boot runs in a child process; this one
 * only waits, unconfined, and starts the next.  The child dies with it
 * (PR_SET_PDEATHSIG), so killing vsrv ends the VM.  Whether the child's
 * VM asked to reboot comes back in shared memory: its exit status is the
 * guest's to choose (the test device).
 */
static int run_supervised(const struct vmm_config *cfg)
{
	bool *reboot = mmap(NULL, sizeof(*reboot), PROT_READ | PROT_WRITE,
			    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	pid_t parent = getpid();
	int status;

	if (reboot == MAP_FAILED)
		return fail("mapping shared memory for reboots failed");
	do {
		pid_t pid, w;

		*reboot = false;
		fflush(NULL);	/* nothing buffered twice */
		pid = fork();
		if (pid < 0) {
			munmap(reboot, sizeof(*reboot));
			return fail("fork failed: cannot start the VM's process");
		}
		if (pid == 0) {
			if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
				_exit(VM_STATUS_ERROR);
			status = run_once(cfg, reboot);
			exit(status);
		}
		do
			w = waitpid(pid, &status, 0);
		while (w < 0 && errno == EINTR);
		if (w < 0 || !WIFEXITED(status)) {
			if (w >= 0)
				fprintf(stderr, "vsrv: the VM's process was killed by signal %d (%s)\n",
					WTERMSIG(status), strsignal(WTERMSIG(status)));
			munmap(reboot, sizeof(*reboot));
			return VM_STATUS_ERROR;
		}
		status = WEXITSTATUS(status);
	} while (*reboot);
	munmap(reboot, sizeof(*reboot));
	return status;
}

int vmm_run(const struct vmm_config *cfg)
{
	bool reboot;

	if (cfg->on_reboot == ON_REBOOT_RESTART)
		return run_supervised(cfg);
	return run_once(cfg, &reboot);
}
