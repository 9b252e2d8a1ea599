// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * One VM from start to end: create it, attach devices, load the kernel,
 * run the vCPUs, and turn how it ended into an exit status.  A reboot
 * builds the VM anew (the simplest reset that cannot leave state behind).
 */
#include <stdio.h>
#include <string.h>

#include "../devices/devices.h"
#include "vmm.h"

static int fail(const char *msg)
{
	fprintf(stderr, "vsrv: %s\n", msg);
	return VM_STATUS_ERROR;
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
		r = vcpus_start(&vm, err, sizeof(err));
	if (r < 0)
		goto fail;
	vcpus_join(&vm);

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

int vmm_run(const struct vmm_config *cfg)
{
	bool reboot;
	int status;

	do
		status = run_once(cfg, &reboot);
	while (reboot);
	return status;
}
