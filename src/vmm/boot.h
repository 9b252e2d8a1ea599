/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Entering Linux: the three ways (bzImage through its setup header, an
 * uncompressed vmlinux ELF at its entry, the PVH note's 32-bit entry) and
 * what they share: the zero page, e820, command line, initrd, MP table,
 * page tables and the boot GDT.
 */
#ifndef VSRV_BOOT_H
#define VSRV_BOOT_H

#include <stdbool.h>
#include <stdint.h>

#include "vm.h"

/* Guest-physical places the loaders use, all in the first MiB. */
#define BOOT_GDT_ADDR		0x500ull
#define BOOT_PVH_START_INFO	0x6000ull	/* hvm_start_info, modlist, memmap */
#define BOOT_ZERO_PAGE		0x7000ull
#define BOOT_PML4		0x9000ull
#define BOOT_PDPT		0xa000ull
#define BOOT_PD			0xb000ull	/* 4 pages: 4 GiB of 2 MiB pages */
#define BOOT_CMDLINE		0x20000ull
#define BOOT_CMDLINE_MAX	0x10000u
#define BOOT_EBDA_START		0x9fc00ull	/* MP table lives here */
#define BOOT_BIOS_START		0xe0000ull	/* the BIOS area: ACPI tables */
#define BOOT_HIGH_START		0x100000ull

/* The longest command line x86 Linux takes without the terminating NUL
 * (COMMAND_LINE_SIZE - 1), for entries that have no setup header. */
#define BOOT_CMDLINE_LINUX	2047u

enum boot_mode {
	BOOT_LONG,	/* 64-bit, paging on, identity mapped: vmlinux, bzImage */
	BOOT_PROT32,	/* 32-bit flat protected mode, paging off: PVH, i386 */
};

/* --boot: which entry of a kernel that has several. */
enum boot_entry {
	BOOT_ENTRY_AUTO,	/* vmlinux: its ELF entry; bzImage: 64-bit if it has one */
	BOOT_ENTRY_LINUX64,	/* the Linux 64-bit boot protocol */
	BOOT_ENTRY_PVH,		/* the PVH note's 32-bit entry with hvm_start_info */
};

struct boot_opts {
	const char *kernel;
	const char *initrd;
	const char *cmdline;	/* as given; host quirks are appended */
	enum boot_entry entry;
	bool dry_run;		/* load and describe, but do not run */
};

struct boot_info {
	enum boot_mode mode;
	uint64_t entry;
	/* Register the entry expects the boot structure in: rsi = zero page
	 * (Linux boot protocol), or ebx = hvm_start_info (PVH). */
	bool pvh;
	uint64_t kernel_start, kernel_end;	/* guest-physical */
	uint64_t initrd_addr_max;		/* from the setup header */
	uint64_t cmdline_max;			/* bytes, without the NUL */
	const char *format;			/* "vmlinux", "bzImage", ... */
	/* What was loaded where, one "key value" line each (--dry-run). */
	char desc[2048];
	size_t desc_len;
};

int boot_load(struct vm *vm, const struct boot_opts *o, struct boot_info *bi,
	      char *err, size_t errlen);
int boot_setup_bsp(struct vcpu *c, const struct boot_info *bi, char *err,
		   size_t errlen);

/* boot.c helpers for the loaders */
/* A kernel or initrd being loaded. */
struct boot_file {
	const char *path;
	/* O_RDONLY, open while it loads; the VM's (guestmem_keep()) once
	 * guest memory maps any of it. */
	int fd;
	const uint8_t *data;	/* the whole file (boot_map_file()), or NULL */
	size_t len;
	bool data_mapped;	/* data is an mmap() of it, not a copy */
	int lease;		/* its read lease: 0 not asked yet, 1 held, -1 refused */
	uint64_t guest_mapped;	/* bytes of guest memory mapped from it */
};
/* The file open (data NULL: boot_place() reads it), or one line in err. */
int boot_open_file(const char *path, struct boot_file *f, char *err, size_t errlen);
/* The whole file, mapped read-only (read into memory where it cannot be
 * mapped): a loader then touches only the parts it uses, a vmlinux's
 * loadable segments and not its symbols, straight from the page cache.
 * A file that shrinks while it is mapped raises SIGBUS, which ends the
 * process before its VM starts. */
int boot_map_file(const char *path, struct boot_file *f, char *err, size_t errlen);
/* Done loading: its data let go, its descriptor handed to the VM where
 * guest memory maps the file, else closed. */
void boot_release_file(struct vm *vm, struct boot_file *f);
/* The byte that makes len bytes sum to 0 (MP and ACPI tables). */
uint8_t boot_checksum(const void *p, size_t len);
int boot_copy(struct vm *vm, uint64_t gpa, const void *src, uint64_t len);
void boot_describe(struct boot_info *bi, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * How the bytes [off, off + size) of a file placed at guest address gpa
 * are loaded: the whole guest pages among them are mapped from the file
 * (copy-on-write) where the file offset and the address agree modulo the
 * page size, as mmap() needs; the partial pages before and after them
 * (head and tail bytes) are copied, so that no mapped page shows the
 * guest a byte beyond the range, past the end of a segment's file bytes
 * or of the file.  Where they do not agree, or no whole page is there,
 * all of it is copied (head is size).
 */
struct boot_split {
	uint64_t head;		/* bytes copied from off */
	uint64_t pages;		/* pages mapped from off + head */
	uint64_t tail;		/* bytes copied after them */
};

static inline struct boot_split boot_split(uint64_t off, uint64_t gpa, uint64_t size)
{
	uint64_t head = (VM_PAGE_SIZE - gpa % VM_PAGE_SIZE) % VM_PAGE_SIZE, pages;

	if ((off - gpa) % VM_PAGE_SIZE || size < head + VM_PAGE_SIZE)
		return (struct boot_split){ size, 0, 0 };
	pages = (size - head) / VM_PAGE_SIZE;
	return (struct boot_split){ head, pages, size - head - pages * VM_PAGE_SIZE };
}

/* Places size bytes at offset off of a file (`what` of it) at gpa in
 * guest memory, whose new memory holds zeros up to memsz: mapped or
 * copied as boot_split() says, mapped only where the VM may (its memory
 * anonymous) and the file's read lease could be taken; says which in bi's
 * description.  Fails with one line naming the file unless memsz fits in
 * RAM above 1 MiB. */
int boot_place(struct vm *vm, struct boot_info *bi, struct boot_file *f, const char *what,
	       uint64_t off, uint64_t size, uint64_t memsz, uint64_t gpa, char *err,
	       size_t errlen);

/* The guest's memory map, for the zero page's e820 table and PVH's
 * memmap alike; returns the number of entries (at most max). */
#define BOOT_E820_RAM		1
#define BOOT_E820_RESERVED	2	/* the BIOS area, MMCONFIG */
struct boot_mem_range {
	uint64_t addr, size;
	uint32_t type;
};
unsigned boot_memory_map(struct vm *vm, struct boot_mem_range *m, unsigned max);
/* Writes the command line (with host quirks) at BOOT_CMDLINE; returns
 * its length. */
int boot_cmdline(struct vm *vm, const struct boot_opts *o, struct boot_info *bi,
		 char *err, size_t errlen);
/* Loads the initrd, if any, as high as the kernel allows; *addr and *size
 * are 0 without one. */
int boot_initrd(struct vm *vm, const struct boot_opts *o, struct boot_info *bi,
		uint64_t *addr, uint64_t *size, char *err, size_t errlen);
/* Fills the zero page's e820 table, command line and initrd fields;
 * the setup header is the loader's. */
int boot_zero_page(struct vm *vm, const struct boot_opts *o,
		   struct boot_info *bi, char *err, size_t errlen);

/* boot-elf.c: an ELF vmlinux, 64-bit (x86-64) or 32-bit (i386) */
bool boot_is_elf(const uint8_t *data, size_t len);
/* Checks the ELF header and that the program headers lie in the file;
 * returns their number. */
int boot_elf_check(const char *path, const uint8_t *data, size_t len,
		   char *err, size_t errlen);
/* Program header i of a checked ELF, 32- or 64-bit read alike. */
struct boot_elf_seg {
	uint32_t type;
	uint64_t offset, paddr, filesz, memsz, align;
};
void boot_elf_phdr(const uint8_t *data, unsigned i, struct boot_elf_seg *s);
int boot_load_elf(struct vm *vm, const struct boot_opts *o, struct boot_file *f,
		  struct boot_info *bi, char *err, size_t errlen);

/* boot-bzimage.c */
bool boot_is_bzimage(const uint8_t *data, size_t len);
int boot_load_bzimage(struct vm *vm, const struct boot_opts *o, struct boot_file *f,
		      struct boot_info *bi, char *err, size_t errlen);

/* boot-pvh.c */
/* Finds the XEN_ELFNOTE_PHYS32_ENTRY note of an ELF whose program headers
 * the caller has checked: 1 and *entry when there is one, 0 when not, a
 * negative errno (and err) when a note is malformed. */
int boot_pvh_find_entry(const char *path, const uint8_t *data, size_t len,
			uint64_t *entry, char *err, size_t errlen);
/* Writes hvm_start_info, its module list and memory map, the command line
 * and the initrd. */
int boot_pvh_start_info(struct vm *vm, const struct boot_opts *o,
			struct boot_info *bi, char *err, size_t errlen);

/* mptable.c: the MultiProcessor Specification 1.4 tables for nr_cpus
 * vCPUs, in the EBDA. */
int mptable_write(struct vm *vm, unsigned nr_cpus, struct boot_info *bi,
		  char *err, size_t errlen);

#endif
