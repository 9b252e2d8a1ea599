// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Which pages of guest memory hold anything: for `stats` (memory touched)
 * and for saved state, which writes only those.  Guest RAM is mapped with
 * MAP_NORESERVE, so a page the guest never touched has no page behind it;
 * /proc/self/pagemap says so, 8 bytes a page, without faulting anything
 * in (reading the pages themselves would map the zero page under each).
 * A page counts when it is present or swapped out; mincore() would miss
 * the swapped ones.  The pagemap is opened before the sandbox and read
 * with pread() after.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "vm.h"

#define PM_PRESENT	(1ull << 63)
#define PM_SWAPPED	(1ull << 62)
#define CHUNK		4096	/* entries read at a time: 16 MiB of memory */

int guestmem_open_pagemap(void)
{
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);

	return fd < 0 ? -errno : fd;
}

int guestmem_region_runs(struct vm *vm, int pagemap, unsigned m, guestmem_fn fn, void *opaque)
{
	static _Thread_local uint64_t e[CHUNK];
	const struct mem_region *r = &vm->mem[m];
	uint64_t pages = r->size / VM_PAGE_SIZE, run_start = 0, run_len = 0;
	uintptr_t base = (uintptr_t)r->hva / VM_PAGE_SIZE;
	int rc;

	for (uint64_t p = 0; p < pages; p += CHUNK) {
		uint64_t n = pages - p < CHUNK ? pages - p : CHUNK;
		ssize_t got = pread(pagemap, e, n * 8, (off_t)((base + p) * 8));

		if (got != (ssize_t)(n * 8))
			return got < 0 ? -errno : -EIO;
		for (uint64_t i = 0; i < n; i++) {
			if (e[i] & (PM_PRESENT | PM_SWAPPED)) {
				if (!run_len)
					run_start = p + i;
				run_len++;
				continue;
			}
			if (!run_len)
				continue;
			rc = fn(opaque, r->gpa + run_start * VM_PAGE_SIZE,
				(uint8_t *)r->hva + run_start * VM_PAGE_SIZE, run_len * VM_PAGE_SIZE);
			if (rc < 0)
				return rc;
			run_len = 0;
		}
	}
	if (!run_len)
		return 0;
	return fn(opaque, r->gpa + run_start * VM_PAGE_SIZE,
		  (uint8_t *)r->hva + run_start * VM_PAGE_SIZE, run_len * VM_PAGE_SIZE);
}

int guestmem_runs(struct vm *vm, int pagemap, guestmem_fn fn, void *opaque)
{
	for (unsigned m = 0; m < vm->nr_mem; m++) {
		int rc = guestmem_region_runs(vm, pagemap, m, fn, opaque);

		if (rc < 0)
			return rc;
	}
	return 0;
}

static int add(void *opaque, uint64_t gpa, void *hva, uint64_t len)
{
	*(uint64_t *)opaque += len;
	return 0;
}

int guestmem_touched(struct vm *vm, int pagemap, uint64_t *bytes)
{
	*bytes = 0;
	return guestmem_runs(vm, pagemap, add, bytes);
}
