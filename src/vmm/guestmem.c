// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Which pages of guest memory hold anything: for `stats` (memory touched)
 * and for saved state, which writes only those.  Guest RAM is mapped with
 * MAP_NORESERVE, so a page the guest never touched has no page behind it.
 * A page counts when it is present or swapped out, and nothing is faulted
 * in to ask (reading the pages themselves would map the zero page under
 * each); mincore() is not used, as it misses the swapped ones.
 *
 * Anonymous memory (and huge pages, which never swap): /proc/self/pagemap,
 * 8 bytes a page, present or swapped.  A memfd (--memfd): its file, with
 * lseek()'s SEEK_DATA and SEEK_HOLE, which for shared memory (shmem) count
 * pages swapped out too, whereas the pagemap drops those (shmem's swapping
 * clears the page table entry rather than leaving a swap entry in it).
 * hugetlbfs has no SEEK_DATA (every offset is data there), so a memfd of
 * huge pages goes by the pagemap too.  The pagemap is opened before the
 * sandbox and read with pread() after.
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

/* A memfd's region: its file's data, extent by extent. */
static int memfd_runs(struct vm *vm, unsigned m, guestmem_fn fn, void *opaque)
{
	const struct mem_region *r = &vm->mem[m];
	uint64_t end = r->fd_off + r->size, off = r->fd_off;

	while (off < end) {
		off_t data = lseek(vm->memfd, (off_t)off, SEEK_DATA), hole;
		uint64_t from, to;
		int rc;

		if (data < 0)
			return errno == ENXIO ? 0 : -errno;	/* no data past off */
		hole = lseek(vm->memfd, data, SEEK_HOLE);
		if (hole < 0)
			return -errno;
		/* Whole pages of this region. */
		from = (uint64_t)data / VM_PAGE_SIZE * VM_PAGE_SIZE;
		to = ((uint64_t)hole + VM_PAGE_SIZE - 1) / VM_PAGE_SIZE * VM_PAGE_SIZE;
		if (from >= end)
			return 0;
		if (to > end)
			to = end;
		rc = fn(opaque, r->gpa + (from - r->fd_off),
			(uint8_t *)r->hva + (from - r->fd_off), to - from);
		if (rc < 0)
			return rc;
		off = to;
	}
	return 0;
}

int guestmem_region_runs(struct vm *vm, int pagemap, unsigned m, guestmem_fn fn, void *opaque)
{
	static _Thread_local uint64_t e[CHUNK];
	const struct mem_region *r = &vm->mem[m];
	uint64_t pages = r->size / VM_PAGE_SIZE, run_start = 0, run_len = 0;
	uintptr_t base = (uintptr_t)r->hva / VM_PAGE_SIZE;
	int rc;

	if (vm->memfd >= 0 && !vm->opts.hugepages)
		return memfd_runs(vm, m, fn, opaque);
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
