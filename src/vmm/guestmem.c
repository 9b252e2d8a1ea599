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
 *
 * A restore maps the saved state's pages over anonymous guest memory,
 * copy-on-write (MAP_PRIVATE), instead of copying them into new memory:
 * the VM starts at once, a page is copied when the guest first writes it,
 * and the pages it only reads stay the file's page cache.  New memory is
 * what a copy costs most, on hosts that are VMs themselves most of all
 * (docs/benchmarks-control.md).  Those pages count as holding data
 * whatever the pagemap says (a clean file page that the kernel reclaimed
 * has no entry there, yet it holds the guest's data), by a bitmap of
 * them.  Meanwhile guest memory depends on the file, which must not
 * change: a read lease on it (F_SETLEASE) makes whoever opens it to write
 * or truncates it wait while the kernel tells vsrv (SIGIO, taken by the
 * VM process's main thread), which copies every page still the file's
 * and lets the file go; then the writer goes on.  Without a lease (a file
 * not the user's, NFS, someone writing it already), a memfd or huge pages,
 * a restore copies.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
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
	const struct mem_region *r = &vm->mem[m];
	uint64_t pages = r->size / VM_PAGE_SIZE, run_start = 0, run_len = 0;
	uintptr_t base = (uintptr_t)r->hva / VM_PAGE_SIZE;
	uint64_t *e;
	int rc = 0;

	if (vm->memfd >= 0 && !vm->opts.hugepages)
		return memfd_runs(vm, m, fn, opaque);
	/* From the heap for each walk: a thread-local array would be in
	 * every thread's static TLS, 32 KiB written at each thread's start
	 * (glibc clears .tbss), in the vCPUs' too. */
	e = malloc(CHUNK * sizeof(*e));
	if (!e)
		return -ENOMEM;
	for (uint64_t p = 0; p < pages; p += CHUNK) {
		uint64_t n = pages - p < CHUNK ? pages - p : CHUNK;
		ssize_t got = pread(pagemap, e, n * 8, (off_t)((base + p) * 8));

		if (got != (ssize_t)(n * 8)) {
			rc = got < 0 ? -errno : -EIO;
			goto out;
		}
		for (uint64_t i = 0; i < n; i++) {
			if (e[i] & (PM_PRESENT | PM_SWAPPED) ||
			    (r->mapped && r->mapped[(p + i) / 64] >> ((p + i) % 64) & 1)) {
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
				goto out;
			run_len = 0;
		}
	}
	rc = run_len ? fn(opaque, r->gpa + run_start * VM_PAGE_SIZE,
			  (uint8_t *)r->hva + run_start * VM_PAGE_SIZE, run_len * VM_PAGE_SIZE) : 0;
out:
	free(e);
	return rc;
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

/* --- a restore's pages, mapped from the saved state --- */

bool guestmem_lease(struct vm *vm, int fd)
{
	/* A memfd must hold the guest's memory itself (it is there to be
	 * shared), and huge pages are no file's. */
	if (vm->memfd >= 0 || vm->opts.hugepages || vm->restore_fd >= 0)
		return false;
	return fcntl(fd, F_SETLEASE, F_RDLCK) == 0;
}

int guestmem_map(struct vm *vm, unsigned m, uint64_t page, uint64_t npages, int fd, uint64_t off)
{
	struct mem_region *r = &vm->mem[m];
	uint8_t *at = (uint8_t *)r->hva + page * VM_PAGE_SIZE;
	size_t len = (size_t)(npages * VM_PAGE_SIZE);

	if (!r->mapped && !(r->mapped = calloc((r->size / VM_PAGE_SIZE + 63) / 64, 8)))
		return -ENOMEM;
	/* On failure the range may be left unmapped: the restore fails, and
	 * this VM never runs. */
	if (mmap(at, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED | MAP_NORESERVE, fd,
		 (off_t)off) == MAP_FAILED)
		return -errno;
	madvise(at, len, MADV_DONTDUMP);
	for (uint64_t p = page; p < page + npages; p++)
		r->mapped[p / 64] |= 1ull << (p % 64);
	return 0;
}

void guestmem_detach(struct vm *vm)
{
	int e = 0;

	if (vm->restore_fd < 0)
		return;
	/* Each run of mapped pages written to, without changing it: the
	 * kernel copies those still the file's (copy-on-write) and leaves
	 * those the guest wrote already. */
	for (unsigned m = 0; m < vm->nr_mem; m++) {
		const struct mem_region *r = &vm->mem[m];
		uint64_t pages = r->size / VM_PAGE_SIZE;

		for (uint64_t p = 0; r->mapped && p < pages;) {
			uint64_t q = p;

			while (q < pages && (r->mapped[q / 64] >> (q % 64) & 1))
				q++;
			if (q > p && madvise((uint8_t *)r->hva + p * VM_PAGE_SIZE,
					     (q - p) * VM_PAGE_SIZE, MADV_POPULATE_WRITE) < 0 && !e)
				e = errno;
			p = q > p ? q : p + 1;
		}
	}
	if (e)
		fprintf(stderr, "vsrv: %s is being written to, and the VM's memory could not be "
			"copied from it first (%s): the VM may see its changes\n", vm->restore_path,
			strerror(e));
	else
		fprintf(stderr, "vsrv: %s is being written to: the VM's memory was copied from "
			"it first\n", vm->restore_path);
	/* Its mappings hold the file open past a close: the lease goes
	 * first, and the writer waiting for it goes on. */
	fcntl(vm->restore_fd, F_SETLEASE, F_UNLCK);
	close(vm->restore_fd);
	vm->restore_fd = -1;
}
