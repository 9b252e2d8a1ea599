// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The test device micro-guests report through (vsrv run --test-device):
 * bytes written to port 0xe9 go to standard output as they come (QEMU's
 * debugcon port), and a 32-bit value written to port 0xf4 ends the VM with
 * that value as the process's exit status.  A write of any value to port
 * 0xf8 presses the ACPI power button (acpi_pm_press_power_button(), which
 * `vsrv ctl shutdown` is to press from outside): a guest says it is ready
 * for the press by asking for it.  Port 0x80 (POST codes, and Linux's I/O
 * delay) is accepted and ignored, as on a PC.
 *
 * Port 0xea proves saved state: a write quiesces every device that has
 * state, saves it, loads it back (each device from power-on) and resumes
 * them, all on the vCPU thread that wrote; a 32-bit read then gives 0, or
 * the negative errno of the first failure.
 */
#include <stdatomic.h>
#include <unistd.h>

#include "devices.h"
#include "state.h"

#define TESTDEV_DEBUG_PORT	0xe9
#define TESTDEV_EXIT_PORT	0xf4
#define TESTDEV_CHECKPOINT_PORT	0xea
#define TESTDEV_BUTTON_PORT	0xf8

static atomic_int checkpoint_result;

static void debug_write(void *opaque, uint64_t addr, const void *data, unsigned len)
{
	/* One write per access keeps the output in order across vCPUs. */
	if (write(STDOUT_FILENO, data, len) < 0)
		return;
}

static const struct io_ops debug_ops = { .write = debug_write };

static void exit_write(void *opaque, uint64_t addr, const void *data, unsigned len)
{
	struct vm *vm = opaque;
	uint32_t v = 0;

	for (unsigned i = 0; i < len && i < 4; i++)
		v |= (uint32_t)((const uint8_t *)data)[i] << (8 * i);
	vm_request_exit(vm, VM_EXIT_TEST, (int)v, NULL);
}

static const struct io_ops exit_ops = { .write = exit_write };

static void checkpoint_write(void *opaque, uint64_t addr, const void *data, unsigned len)
{
	atomic_store(&checkpoint_result, devices_checkpoint_cycle(opaque));
}

static void checkpoint_read(void *opaque, uint64_t addr, void *data, unsigned len)
{
	int32_t v = atomic_load(&checkpoint_result);
	uint8_t *b = data;

	for (unsigned i = 0; i < len && i < 4; i++)
		b[i] = (uint8_t)((uint32_t)v >> (8 * i));
}

static const struct io_ops checkpoint_ops = { .read = checkpoint_read,
					      .write = checkpoint_write };

static void button_write(void *opaque, uint64_t addr, const void *data, unsigned len)
{
	acpi_pm_press_power_button(opaque);
}

static const struct io_ops button_ops = { .write = button_write };
static const struct io_ops sink_ops = { 0 };

int testdev_init(struct vm *vm, struct acpi_pm *pm)
{
	int r = vm_register_pio(vm, TESTDEV_DEBUG_PORT, 1, &debug_ops, vm, "debugcon");

	if (r >= 0)
		r = vm_register_pio(vm, TESTDEV_EXIT_PORT, 4, &exit_ops, vm, "test-exit");
	if (r >= 0)
		r = vm_register_pio(vm, TESTDEV_CHECKPOINT_PORT, 1, &checkpoint_ops, vm,
				    "test-checkpoint");
	if (r >= 0)
		r = vm_register_pio(vm, TESTDEV_BUTTON_PORT, 1, &button_ops, pm,
				    "test-power-button");
	return r;
}

int port80_init(struct vm *vm)
{
	return vm_register_pio(vm, 0x80, 1, &sink_ops, NULL, "post");
}
