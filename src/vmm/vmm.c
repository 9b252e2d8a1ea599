// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * One VM from start to end: create it, attach devices, load the kernel,
 * run the vCPUs, and turn how it ended into an exit status.  A reboot
 * builds the VM anew (the simplest reset that cannot leave state behind);
 * the console outlives the boots, so output and input carry across.
 *
 * Every VM has a PC's legacy devices: the UART on COM1 (the console), the
 * keyboard controller and the reset control register (resets), the CMOS
 * RTC.  A guest powers off through ACPI (to come with the ACPI tables) or,
 * for micro-guests, the test device's exit port with 0.
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

static void devices_destroy(struct uart *uart, struct i8042 *kbc, struct rtc *rtc)
{
	uart_destroy(uart);
	i8042_destroy(kbc);
	rtc_destroy(rtc);
}

/* Ctrl-A x on the console. */
static void console_quit(void *opaque)
{
	vm_request_exit(opaque, VM_EXIT_POWEROFF, 0, NULL);
}

/* One boot of the VM; *reboot says whether it asked to start again. */
static int run_once(const struct vmm_config *cfg, struct console *con, bool *reboot)
{
	struct vm vm;
	struct boot_info bi;
	struct uart *uart = NULL;
	struct i8042 *kbc = NULL;
	struct rtc *rtc = NULL;
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
	if (r >= 0)
		r = uart_init(&vm, con, &uart);
	if (r >= 0)
		r = i8042_init(&vm, &kbc);
	if (r >= 0)
		r = rtc_init(&vm, &rtc);
	if (r >= 0 && cfg->vm.test_device)
		r = testdev_init(&vm);
	if (r < 0) {
		snprintf(err, sizeof(err), "attaching devices: %s", strerror(-r));
		goto fail;
	}
	r = boot_load(&vm, &cfg->boot, &bi, err, sizeof(err));
	for (unsigned i = 0; r >= 0 && i < cfg->vm.nr_cpus; i++)
		r = vcpu_create(&vm, i, err, sizeof(err));
	if (r >= 0)
		r = boot_setup_bsp(&vm.vcpus[0], &bi, err, sizeof(err));
	if (r >= 0)
		r = vcpus_start(&vm, err, sizeof(err));
	if (r < 0)
		goto fail;
	console_set_quit(con, console_quit, &vm);
	vcpus_join(&vm);
	console_set_quit(con, NULL, NULL);
	console_flush(con);

	switch (atomic_load(&vm.exit_kind)) {
	case VM_EXIT_POWEROFF:
		if (console_quit_requested(con))
			fprintf(stderr, "vsrv: quit from the console\n");
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
	devices_destroy(uart, kbc, rtc);
	vm_destroy(&vm);
	return status;
fail:
	vm_request_exit(&vm, VM_EXIT_ERROR, 0, "%s", err);
	vcpus_join(&vm);
	devices_destroy(uart, kbc, rtc);
	vm_destroy(&vm);
	return fail(err);
}

int vmm_run(const struct vmm_config *cfg)
{
	struct console *con;
	char err[1024];
	bool reboot;
	int status;

	if (console_open(&con, cfg->console ? cfg->console : "stdio",
			 (size_t)cfg->console_buffer, err, sizeof(err)) < 0)
		return fail(err);
	do
		status = run_once(cfg, con, &reboot);
	while (reboot && !console_quit_requested(con));
	console_close(con);
	return status;
}
