/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * What the device fuzz targets (fuzz-virtq.c, fuzz-virtio-blk.c,
 * fuzz-net.c) share: bug(), for a broken invariant (says which, under the
 * target's FUZZ_NAME, and aborts), and a VM that is guest memory and
 * nothing else: no KVM behind it, so doorbells are handled inline and
 * interrupts go nowhere.
 */
#ifndef VSRV_FUZZ_VM_H
#define VSRV_FUZZ_VM_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/vmm/vm.h"

static void bug(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void bug(const char *fmt, ...)
{
	va_list ap;

	fputs(FUZZ_NAME ": bug: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}

static void fake_vm(struct vm *vm, uint8_t *mem, uint64_t size)
{
	memset(vm, 0, sizeof(*vm));
	vm->kvm_fd = vm->vm_fd = -1;
	vm->mem[0] = (struct mem_region){ .gpa = 0, .size = size, .hva = mem };
	vm->nr_mem = 1;
}

/* After the devices are gone: the I/O maps their BARs grew. */
static inline void fake_vm_release(struct vm *vm)
{
	free(vm->pio.r);
	free(vm->mmio.r);
}

#endif
