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
 * (docs/benchmarks-control.md).  A boot does the same with its kernel's
 * segments and its initrd (boot.c).  Those pages count as holding data
 * whatever the pagemap says (a clean file page that the kernel reclaimed
 * has no entry there, yet it holds the guest's data), by a bitmap of
 * them.  Meanwhile guest memory depends on the files, which must not
 * change: a read lease on each (F_SETLEASE) makes whoever opens one to
 * write or truncates it wait while the kernel tells vsrv (SIGIO, taken by
 * the VM process's main thread), which copies every page mapped from any
 * file into anonymous memory and lets them all go (simpler than a bitmap
 * per file, and a file being written is rare); then the writer goes on.  Without a lease (a file not
 * the user's, NFS, someone writing it already), a memfd or huge pages,
 * the pages are copied.
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

/* --- pages mapped from files: a restore's, a boot's --- */

bool guestmem_lease(struct vm *vm, int fd)
{
	/* A memfd must hold the guest's memory itself (it is there to be
	 * shared), and huge pages are no file's. */
	if (vm->memfd >= 0 || vm->opts.hugepages || vm->nr_files == VM_MAPPED_FILES_MAX)
		return false;
	/* Its own signal number, not 0, has the lease break's siginfo carry
	 * the descriptor (si_fd): the message names the file written to. */
	if (fcntl(fd, F_SETSIG, GUESTMEM_LEASE_SIGNAL) < 0)
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
	/* On failure the range may be left unmapped: the restore or boot
	 * fails, and this VM never runs. */
	if (mmap(at, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED | MAP_NORESERVE, fd,
		 (off_t)off) == MAP_FAILED)
		return -errno;
	madvise(at, len, MADV_DONTDUMP);
	for (uint64_t p = page; p < page + npages; p++)
		r->mapped[p / 64] |= 1ull << (p % 64);
	return 0;
}

void guestmem_keep(struct vm *vm, int fd, const char *path)
{
	/* guestmem_lease() refused a file beyond the last slot. */
	vm->files[vm->nr_files++] = (struct vm_mapped_file){ fd, path };
}

/*
 * A run of pages mapped from a file made anonymous memory with the same
 * bytes.  Writing each page (MADV_POPULATE_WRITE) would copy it, but into
 * the file's mapping still, where a truncation of the file (O_TRUNC)
 * throws away even the copies and the guest would read the file's new
 * bytes, or fault past its end.  So the run is copied into new anonymous
 * memory moved over it (mremap() replaces the mapping there); the VM is
 * paused meanwhile, as a write to the run between the copy and the move
 * would be lost.
 */
static int make_anonymous(uint8_t *at, size_t len)
{
	void *tmp = mmap(NULL, len, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (tmp == MAP_FAILED)
		return -errno;
	memcpy(tmp, at, len);
	if (mremap(tmp, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, at) == MAP_FAILED) {
		int e = errno;

		munmap(tmp, len);
		return -e;
	}
	madvise(at, len, MADV_DONTDUMP);
	return 0;
}

void guestmem_detach(struct vm *vm, int fd)
{
	const char *path;
	int e = 0, paused;

	if (!vm->nr_files)
		return;
	/* The file written to, by the descriptor the signal names; the
	 * first where none matches (a plain SIGIO). */
	path = vm->files[0].path;
	for (unsigned i = 0; i < vm->nr_files; i++)
		if (vm->files[i].fd == fd)
			path = vm->files[i].path;
	/* -ESHUTDOWN: the VM is ending, and runs no more guest code. */
	paused = vm_pause(vm);
	for (unsigned m = 0; m < vm->nr_mem; m++) {
		const struct mem_region *r = &vm->mem[m];
		uint64_t pages = r->size / VM_PAGE_SIZE;

		for (uint64_t p = 0; r->mapped && p < pages;) {
			uint64_t q = p;
			int err;

			while (q < pages && (r->mapped[q / 64] >> (q % 64) & 1))
				q++;
			if (q > p) {
				err = make_anonymous((uint8_t *)r->hva + p * VM_PAGE_SIZE,
						     (size_t)((q - p) * VM_PAGE_SIZE));
				if (err < 0 && !e)
					e = -err;
			}
			p = q > p ? q : p + 1;
		}
		/* The bitmap stays: `stats` may be reading it on the control
		 * thread, and the pages it marks hold data either way. */
	}
	if (paused >= 0)
		vm_resume(vm);
	if (e)
		fprintf(stderr, "vsrv: %s is being written to, and the VM's memory could not be "
			"copied from it first (%s): the VM may see its changes\n", path,
			strerror(e));
	else
		fprintf(stderr, "vsrv: %s is being written to: the VM's memory was copied from "
			"it first\n", path);
	/* Mappings would hold a file open past a close: each lease goes
	 * first, and a writer waiting for it goes on. */
	for (unsigned i = 0; i < vm->nr_files; i++)
		fcntl(vm->files[i].fd, F_SETLEASE, F_UNLCK);
	guestmem_close_files(vm);
}

void guestmem_close_files(struct vm *vm)
{
	for (unsigned i = 0; i < vm->nr_files; i++)
		close(vm->files[i].fd);
	vm->nr_files = 0;
}
