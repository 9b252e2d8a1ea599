/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Entering Linux: the three ways (bzImage through its setup header, an
 * uncompressed vmlinux ELF at its 64-bit entry, the PVH note's 32-bit
 * entry) and what they share: the zero page, e820, command line, initrd,
 * page tables and the boot GDT.
 */
#ifndef VSRV_BOOT_H
#define VSRV_BOOT_H

#include <stdbool.h>
#include <stdint.h>

#include "vm.h"

/* Guest-physical places the loaders use, all in the first MiB. */
#define BOOT_GDT_ADDR		0x500ull
#define BOOT_ZERO_PAGE		0x7000ull
#define BOOT_PML4		0x9000ull
#define BOOT_PDPT		0xa000ull
#define BOOT_PD			0xb000ull	/* 4 pages: 4 GiB of 2 MiB pages */
#define BOOT_PVH_START_INFO	0x6000ull
#define BOOT_CMDLINE		0x20000ull
#define BOOT_CMDLINE_MAX	0x10000u
#define BOOT_EBDA_START		0x9fc00ull	/* MP table lives here */
#define BOOT_BIOS_START		0xf0000ull
#define BOOT_HIGH_START		0x100000ull

enum boot_mode {
	BOOT_LONG,	/* 64-bit, paging on, identity mapped: vmlinux, bzImage */
	BOOT_PROT32,	/* 32-bit flat protected mode, paging off: PVH, i386 */
};

struct boot_opts {
	const char *kernel;
	const char *initrd;
	const char *cmdline;	/* as given; host quirks are appended */
};

struct boot_info {
	enum boot_mode mode;
	uint64_t entry;
	/* Register the entry expects the boot structure in: rsi = zero page
	 * (Linux boot protocol), or ebx = hvm_start_info (PVH). */
	bool pvh;
	uint64_t kernel_start, kernel_end;	/* guest-physical */
	uint64_t initrd_addr_max;		/* from the setup header */
	const char *format;			/* "vmlinux", "bzImage", ... */
};

int boot_load(struct vm *vm, const struct boot_opts *o, struct boot_info *bi,
	      char *err, size_t errlen);
int boot_setup_bsp(struct vcpu *c, const struct boot_info *bi, char *err,
		   size_t errlen);

/* boot.c helpers for the loaders */
int boot_read_file(const char *path, uint8_t **data, size_t *len, char *err,
		   size_t errlen);
int boot_copy(struct vm *vm, uint64_t gpa, const void *src, uint64_t len);
/* Fills the zero page's e820 table, command line and initrd fields;
 * the setup header is the loader's. */
int boot_zero_page(struct vm *vm, const struct boot_opts *o,
		   struct boot_info *bi, char *err, size_t errlen);

/* boot-elf.c */
bool boot_is_elf(const uint8_t *data, size_t len);
int boot_load_elf(struct vm *vm, const uint8_t *data, size_t len,
		  struct boot_info *bi, char *err, size_t errlen);

#endif
