// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * What every way of entering Linux shares: the zero page (boot_params)
 * with its e820 map and command line, the initrd, the identity-mapped page
 * tables and the GDT the boot protocol asks for, and the boot CPU's
 * registers.  Documentation/x86/boot.rst and zero-page.rst are the text.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <asm/bootparam.h>

#include "acpi.h"
#include "boot.h"

/* Files larger than this are not a kernel or initrd anyone boots. */
#define BOOT_FILE_MAX	(1ull << 31)

/* Opens a kernel or initrd: the descriptor and its size, or one line in
 * err. */
static int open_file(const char *path, size_t *len, char *err, size_t errlen)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -errno;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > BOOT_FILE_MAX) {
		snprintf(err, errlen, "%s: %s", path, S_ISREG(st.st_mode) ?
			 "larger than 2 GiB" : "not a regular file");
		close(fd);
		return -EINVAL;
	}
	*len = (size_t)st.st_size;
	return fd;
}

/* Reads len bytes of fd from off into dst. */
static int read_all(int fd, const char *path, uint8_t *dst, size_t len, uint64_t off,
		    char *err, size_t errlen)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pread(fd, dst + done, len - done, (off_t)(off + done));

		if (n <= 0) {
			snprintf(err, errlen, "%s: %s", path, n < 0 ? strerror(errno) : "short read");
			return n < 0 ? -errno : -EIO;
		}
		done += (size_t)n;
	}
	return 0;
}

int boot_open_file(const char *path, struct boot_file *f, char *err, size_t errlen)
{
	size_t len = 0;
	int fd = open_file(path, &len, err, errlen);

	*f = (struct boot_file){ .path = path, .fd = fd, .len = len };
	return fd < 0 ? fd : 0;
}

int boot_map_file(const char *path, struct boot_file *f, char *err, size_t errlen)
{
	int r = boot_open_file(path, f, err, errlen);
	uint8_t *buf;
	void *p;

	if (r < 0)
		return r;
	p = f->len ? mmap(NULL, f->len, PROT_READ, MAP_PRIVATE, f->fd, 0) : MAP_FAILED;
	if (p != MAP_FAILED) {
		f->data = p;
		f->data_mapped = true;
		return 0;
	}
	/* Empty, or a file system that cannot map it: read it. */
	buf = malloc(f->len ? f->len : 1);

	if (!buf) {
		snprintf(err, errlen, "%s: out of memory", path);
		r = -ENOMEM;
	} else {
		r = read_all(f->fd, path, buf, f->len, 0, err, errlen);
		if (r < 0)
			free(buf);
		else
			f->data = buf;
	}
	if (r < 0) {
		close(f->fd);
		f->fd = -1;
	}
	return r;
}

void boot_release_file(struct vm *vm, struct boot_file *f)
{
	if (f->data_mapped)
		munmap((void *)f->data, f->len);
	else
		free((void *)f->data);
	f->data = NULL;
	if (f->fd < 0)
		return;
	/* Guest memory maps it: the VM keeps it, and its lease, until the
	 * VM ends or someone writes the file (guestmem_detach()).  Else its
	 * lease, if it was taken, goes with the last reference. */
	if (f->guest_mapped)
		guestmem_keep(vm, f->fd, f->path);
	else
		close(f->fd);
	f->fd = -1;
}

uint8_t boot_checksum(const void *p, size_t len)
{
	const uint8_t *b = p;
	uint8_t sum = 0;

	while (len--)
		sum += *b++;
	return (uint8_t)-sum;
}

int boot_copy(struct vm *vm, uint64_t gpa, const void *src, uint64_t len)
{
	void *dst = vm_gpa(vm, gpa, len);

	if (!dst)
		return -ERANGE;
	memcpy(dst, src, len);
	return 0;
}

void boot_describe(struct boot_info *bi, const char *fmt, ...)
{
	size_t room = sizeof(bi->desc) - bi->desc_len;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(bi->desc + bi->desc_len, room, fmt, ap);
	va_end(ap);
	if (n > 0)
		bi->desc_len += (size_t)n < room ? (size_t)n : room - 1;
}

/* Copies n bytes of the file from off: from its data where it has
 * them, else read. */
static int file_copy(struct boot_file *f, uint8_t *dst, uint64_t off, uint64_t n, char *err,
		     size_t errlen)
{
	if (f->data) {
		memcpy(dst, f->data + off, n);
		return 0;
	}
	return read_all(f->fd, f->path, dst, n, off, err, errlen);
}

/* Whether the file's pages may be mapped into guest memory: its read
 * lease taken at the first place that could be (guestmem.c). */
static bool may_map(struct vm *vm, struct boot_file *f)
{
	if (!f->lease)
		f->lease = f->fd >= 0 && guestmem_lease(vm, f->fd) ? 1 : -1;
	return f->lease > 0;
}

int boot_place(struct vm *vm, struct boot_info *bi, struct boot_file *f, const char *what,
	       uint64_t off, uint64_t size, uint64_t memsz, uint64_t gpa, char *err,
	       size_t errlen)
{
	uint8_t *dst = vm_gpa(vm, gpa, memsz);
	struct boot_split s = boot_split(off, gpa, size);
	uint64_t mapped = 0;
	int r;

	/* Below 1 MiB are the zero page, page tables, command line and MP
	 * table: a kernel there would be overwritten by them. */
	if (gpa < BOOT_HIGH_START) {
		snprintf(err, errlen, "%s: %s is at 0x%llx, below 1 MiB", f->path, what,
			 (unsigned long long)gpa);
		return -ENOEXEC;
	}
	if (!dst || size > memsz) {
		snprintf(err, errlen,
			 "%s: %s (%llu bytes at 0x%llx) does not fit in guest memory (raise --memory)",
			 f->path, what, (unsigned long long)memsz, (unsigned long long)gpa);
		return -ENOSPC;
	}
	/*
	 * Its whole pages mapped from the file, copy-on-write, where they
	 * can be: a vmlinux's 17 MiB and an initrd are then no longer copied
	 * into new memory before the guest starts, the largest part of its
	 * start-up on a host that is itself a VM (bench/analysis-vmm.md);
	 * the guest reads them from the page cache as it goes.  The price:
	 * guest RAM is on huge pages (MADV_HUGEPAGE, kvm.c) and these are
	 * 4 KiB ones, the file's, so the kernel's text runs on small host
	 * pages (more TLB misses, more of KVM's page table walks) until
	 * the guest writes them; on this project's host the Linux boot took
	 * as long either way (bench/analysis-vmm.md).  dst's region holds
	 * the whole range.
	 */
	if (s.pages && may_map(vm, f)) {
		int m = vm_mem_index(vm, gpa, memsz);
		const struct mem_region *reg = &vm->mem[m];

		r = guestmem_map(vm, (unsigned)m, (gpa + s.head - reg->gpa) / VM_PAGE_SIZE, s.pages, f->fd,
				 off + s.head);
		if (r < 0) {
			snprintf(err, errlen, "%s: mapping %s into guest memory: %s", f->path, what,
				 strerror(-r));
			return r;
		}
		mapped = s.pages * VM_PAGE_SIZE;
		f->guest_mapped += mapped;
		r = file_copy(f, dst, off, s.head, err, errlen);
		if (r >= 0)
			r = file_copy(f, dst + s.head + mapped, off + s.head + mapped, s.tail, err,
				      errlen);
	} else {
		r = file_copy(f, dst, off, size, err, errlen);
	}
	if (r < 0)
		return r;
	/* The rest up to memsz (a .bss) is left as it is: a boot's guest
	 * memory is new and reads as zeros, and writing zeros would only
	 * fault in pages (a huge page, often) the guest may never use. */
	boot_describe(bi, "load 0x%llx %llu mapped %llu\n", (unsigned long long)gpa,
		      (unsigned long long)size, (unsigned long long)mapped);
	return 0;
}

unsigned boot_memory_map(struct vm *vm, struct boot_mem_range *m, unsigned max)
{
	/* The EBDA (MP table) and the BIOS area (ACPI tables) are
	 * reserved, as on a PC; the legacy VGA hole 0xa0000-0xe0000 is
	 * simply not RAM.  So is MMCONFIG, in the hole: Linux uses it only
	 * when the memory map (or the DSDT) reserves it. */
	const struct boot_mem_range map[] = {
		{ 0, BOOT_EBDA_START, BOOT_E820_RAM },
		{ BOOT_EBDA_START, 0xa0000 - BOOT_EBDA_START, BOOT_E820_RESERVED },
		{ BOOT_BIOS_START, BOOT_HIGH_START - BOOT_BIOS_START, BOOT_E820_RESERVED },
		{ BOOT_HIGH_START, vm->ram_below_4g - BOOT_HIGH_START, BOOT_E820_RAM },
		{ VM_PCI_MMCONFIG_BASE, VM_PCI_MMCONFIG_SIZE, BOOT_E820_RESERVED },
		{ VM_HIGH_RAM_START, vm->ram_above_4g, BOOT_E820_RAM },
	};
	unsigned n = 0;

	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]) && n < max; i++)
		if (map[i].size)
			m[n++] = map[i];
	return n;
}

int boot_cmdline(struct vm *vm, const struct boot_opts *o, struct boot_info *bi,
		 char *err, size_t errlen)
{
	const char *q = quirks_cmdline(vm);
	char *cmd = vm_gpa(vm, BOOT_CMDLINE, BOOT_CMDLINE_MAX);
	uint64_t max = bi->cmdline_max;
	int n;

	if (max > BOOT_CMDLINE_MAX - 1)
		max = BOOT_CMDLINE_MAX - 1;
	n = snprintf(cmd, max + 1, "%s%s%s", o->cmdline ? o->cmdline : "",
		     o->cmdline && o->cmdline[0] && q[0] ? " " : "", q);
	if (n < 0 || (uint64_t)n > max) {
		snprintf(err, errlen, "--append: the command line is %d bytes; this kernel takes at most %llu",
			 n, (unsigned long long)max);
		return -E2BIG;
	}
	boot_describe(bi, "cmdline 0x%llx %d\n", (unsigned long long)BOOT_CMDLINE, n);
	return n;
}

/* Places the initrd as high as the kernel allows, below the hole, page-
 * aligned: mapped from the file where it can be (boot_place()), else
 * read straight into guest memory, no copy in between. */
int boot_initrd(struct vm *vm, const struct boot_opts *o, struct boot_info *bi,
		uint64_t *addr, uint64_t *size, char *err, size_t errlen)
{
	uint64_t top = vm->ram_below_4g, at;
	struct boot_file f;
	size_t len;
	int r;

	*addr = *size = 0;
	if (!o->initrd)
		return 0;
	r = boot_open_file(o->initrd, &f, err, errlen);
	if (r < 0)
		return r;
	len = f.len;
	/* initrd_addr_max is the highest byte the initrd may occupy. */
	if (bi->initrd_addr_max && top > bi->initrd_addr_max + 1)
		top = bi->initrd_addr_max + 1;
	at = (top - len) & ~0xfffull;
	if (len > top || at < bi->kernel_end || at < BOOT_HIGH_START || !vm_gpa(vm, at, len)) {
		boot_release_file(vm, &f);
		snprintf(err, errlen,
			 "%s: %zu bytes do not fit in guest memory above the kernel (raise --memory)",
			 o->initrd, len);
		return -ENOSPC;
	}
	r = boot_place(vm, bi, &f, "the initrd", 0, len, len, at, err, errlen);
	boot_release_file(vm, &f);
	if (r < 0)
		return r;
	*addr = at;
	*size = len;
	boot_describe(bi, "initrd 0x%llx %zu\n", (unsigned long long)at, len);
	return 0;
}

int boot_zero_page(struct vm *vm, const struct boot_opts *o,
		   struct boot_info *bi, char *err, size_t errlen)
{
	struct boot_params *bp = vm_gpa(vm, BOOT_ZERO_PAGE, sizeof(*bp));
	struct boot_mem_range m[E820_MAX_ENTRIES_ZEROPAGE];
	uint64_t addr, size;
	unsigned n;
	int r;

	r = boot_cmdline(vm, o, bi, err, errlen);
	if (r < 0)
		return r;
	bp->hdr.cmd_line_ptr = (uint32_t)BOOT_CMDLINE;
	bp->ext_cmd_line_ptr = 0;
	bp->hdr.type_of_loader = 0xff;		/* undefined loader */
	/* zero-page.rst's acpi_rsdp_addr (at 0x070, not in the setup header:
	 * protocol 2.14's was withdrawn); kernels that predate it scan. */
	bp->acpi_rsdp_addr = ACPI_RSDP_ADDR;
	n = boot_memory_map(vm, m, E820_MAX_ENTRIES_ZEROPAGE);
	bp->e820_entries = (uint8_t)n;
	for (unsigned i = 0; i < n; i++) {
		bp->e820_table[i].addr = m[i].addr;
		bp->e820_table[i].size = m[i].size;
		bp->e820_table[i].type = m[i].type;
	}
	r = boot_initrd(vm, o, bi, &addr, &size, err, errlen);
	if (r < 0)
		return r;
	/* Below 4 GiB, so the ext_ halves stay zero. */
	bp->hdr.ramdisk_image = (uint32_t)addr;
	bp->hdr.ramdisk_size = (uint32_t)size;
	boot_describe(bi, "zero_page 0x%llx\ne820 %u\n",
		      (unsigned long long)BOOT_ZERO_PAGE, n);
	return 0;
}

/* The boot GDT: null, null, code (0x10), data (0x18), as boot.rst asks. */
static void write_gdt(struct vm *vm, bool long_mode)
{
	uint64_t gdt[4] = {
		0, 0,
		long_mode ? 0x00af9b000000ffffull : 0x00cf9b000000ffffull,
		0x00cf93000000ffffull,
	};

	boot_copy(vm, BOOT_GDT_ADDR, gdt, sizeof(gdt));
}

/* Identity map of the first 4 GiB in 2 MiB pages. */
static void write_page_tables(struct vm *vm)
{
	uint64_t *pml4 = vm_gpa(vm, BOOT_PML4, 4096);
	uint64_t *pdpt = vm_gpa(vm, BOOT_PDPT, 4096);
	uint64_t *pd = vm_gpa(vm, BOOT_PD, 4 * 4096);

	memset(pml4, 0, 4096);
	memset(pdpt, 0, 4096);
	pml4[0] = BOOT_PDPT | 0x3;			/* present, writable */
	for (int i = 0; i < 4; i++)
		pdpt[i] = (BOOT_PD + 4096ull * (uint64_t)i) | 0x3;
	for (uint64_t i = 0; i < 4 * 512; i++)
		pd[i] = (i << 21) | 0x83;		/* present, writable, 2 MiB */
}

static void seg(struct kvm_segment *s, uint16_t sel, bool code, bool l)
{
	*s = (struct kvm_segment){
		.base = 0, .limit = 0xffffffff, .selector = sel,
		.type = code ? 0xb : 0x3, .present = 1, .dpl = 0,
		.db = l ? 0 : 1, .s = 1, .l = l, .g = 1,
	};
}

int boot_setup_bsp(struct vcpu *c, const struct boot_info *bi, char *err,
		   size_t errlen)
{
	bool lm = bi->mode == BOOT_LONG;
	struct kvm_sregs s;
	struct kvm_regs r = { .rflags = 0x2, .rip = bi->entry };

	if (ioctl(c->fd, KVM_GET_SREGS, &s) < 0) {
		snprintf(err, errlen, "KVM_GET_SREGS: %s", strerror(errno));
		return -errno;
	}
	write_gdt(c->vm, lm);
	s.gdt.base = BOOT_GDT_ADDR;
	s.gdt.limit = 4 * 8 - 1;
	seg(&s.cs, 0x10, true, lm);
	seg(&s.ds, 0x18, false, false);
	s.es = s.fs = s.gs = s.ss = s.ds;
	s.cr0 = 0x1 | 0x10;				/* PE, ET */
	if (lm) {
		write_page_tables(c->vm);
		s.cr3 = BOOT_PML4;
		s.cr4 = 0x20;				/* PAE */
		s.cr0 |= 0x80000000u;			/* PG */
		s.efer = 0x500;				/* LME, LMA */
	} else {
		s.cr4 = 0;
		s.efer = 0;
	}
	if (bi->pvh)
		r.rbx = BOOT_PVH_START_INFO;
	else
		r.rsi = BOOT_ZERO_PAGE;
	if (ioctl(c->fd, KVM_SET_SREGS, &s) < 0 || ioctl(c->fd, KVM_SET_REGS, &r) < 0) {
		snprintf(err, errlen, "setting the boot CPU's registers: %s", strerror(errno));
		return -errno;
	}
	return 0;
}

int boot_load(struct vm *vm, const struct boot_opts *o, struct boot_info *bi,
	      char *err, size_t errlen)
{
	struct boot_file f;
	int r;

	memset(bi, 0, sizeof(*bi));
	r = boot_map_file(o->kernel, &f, err, errlen);
	if (r < 0)
		return r;
	if (boot_is_elf(f.data, f.len)) {
		r = boot_load_elf(vm, o, &f, bi, err, errlen);
	} else if (boot_is_bzimage(f.data, f.len)) {
		r = boot_load_bzimage(vm, o, &f, bi, err, errlen);
	} else {
		snprintf(err, errlen, "%s: not a kernel (neither an ELF vmlinux nor a bzImage)",
			 o->kernel);
		r = -ENOEXEC;
	}
	boot_release_file(vm, &f);
	if (r < 0)
		return r;
	boot_describe(bi, "kernel 0x%llx-0x%llx\nentry 0x%llx %s %s\n",
		      (unsigned long long)bi->kernel_start,
		      (unsigned long long)bi->kernel_end, (unsigned long long)bi->entry,
		      bi->mode == BOOT_LONG ? "long" : "prot32", bi->pvh ? "pvh" : "linux");
	if (bi->pvh)
		r = boot_pvh_start_info(vm, o, bi, err, errlen);
	else
		r = boot_zero_page(vm, o, bi, err, errlen);
	if (r < 0)
		return r;
	/* Linux finds it by scanning the EBDA whichever way it was entered
	 * (PVH included), so every boot gets one.  Both it and the ACPI
	 * tables: a kernel without ACPI (or booted with acpi=off) reads the
	 * MP table, one with ACPI prefers the MADT, and the two agree. */
	r = mptable_write(vm, vm->opts.nr_cpus, bi, err, errlen);
	if (r < 0)
		return r;
	return acpi_write(vm, vm->opts.nr_cpus, bi, err, errlen);
}
