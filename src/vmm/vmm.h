/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Running one VM from its configuration to its end. */
#ifndef VSRV_VMM_H
#define VSRV_VMM_H

#include "boot.h"
#include "vm.h"

enum on_reboot { ON_REBOOT_RESTART, ON_REBOOT_EXIT };

struct vmm_config {
	struct vm_opts vm;
	struct boot_opts boot;
	enum on_reboot on_reboot;
	const char *console;	/* --console: stdio, file:PATH, socket:PATH */
	uint64_t console_buffer;	/* output kept for a reader; 0: default */
};

/* Runs the VM until it ends; returns the process exit status and prints
 * one line for anything but a clean power-off. */
int vmm_run(const struct vmm_config *cfg);

#endif
