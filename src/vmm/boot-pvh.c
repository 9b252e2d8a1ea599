// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * PVH entry: a vmlinux that carries Xen's XEN_ELFNOTE_PHYS32_ENTRY note
 * (Linux with CONFIG_PVH) can be entered there, in flat 32-bit protected
 * mode with paging off and EBX pointing at an hvm_start_info, instead of
 * through the zero page.  The layouts are Xen's public ABI
 * (xen/include/public/arch-x86/hvm/start_info.h), version 1.
 */
#include <elf.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "acpi.h"
#include "boot.h"

#define XEN_ELFNOTE_PHYS32_ENTRY	18
#define HVM_START_MAGIC			0x336ec578u

struct hvm_start_info {
	uint32_t magic;
	uint32_t version;
	uint32_t flags;
	uint32_t nr_modules;
	uint64_t modlist_paddr;
	uint64_t cmdline_paddr;
	uint64_t rsdp_paddr;
	/* version 1 */
	uint64_t memmap_paddr;
	uint32_t memmap_entries;
	uint32_t reserved;
};

struct hvm_modlist_entry {
	uint64_t paddr;
	uint64_t size;
	uint64_t cmdline_paddr;
	uint64_t reserved;
};

struct hvm_memmap_table_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;		/* e820 types */
	uint32_t reserved;
};

_Static_assert(sizeof(struct hvm_start_info) == 56, "hvm_start_info is 56 bytes");
_Static_assert(sizeof(struct hvm_modlist_entry) == 32, "hvm_modlist_entry is 32 bytes");
_Static_assert(sizeof(struct hvm_memmap_table_entry) == 24, "memmap entry is 24 bytes");

/* All three in the page at BOOT_PVH_START_INFO. */
#define PVH_MODLIST	(BOOT_PVH_START_INFO + 0x40)
#define PVH_MEMMAP	(BOOT_PVH_START_INFO + 0x80)
#define PVH_MEMMAP_MAX	((0x1000 - 0x80) / sizeof(struct hvm_memmap_table_entry))

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

/* Looks through one PT_NOTE segment [off, end) of the file. */
static int find_in_notes(const char *path, const uint8_t *data, uint64_t off,
			 uint64_t end, uint64_t align, uint64_t *entry, char *err,
			 size_t errlen)
{
	while (end - off >= 12) {
		uint64_t namesz = le32(data + off), descsz = le32(data + off + 4);
		uint32_t type = le32(data + off + 8);
		uint64_t name = off + 12;
		uint64_t desc = name + ((namesz + align - 1) & ~(align - 1));
		uint64_t next = desc + ((descsz + align - 1) & ~(align - 1));

		if (next > end) {
			snprintf(err, errlen, "%s: an ELF note at offset 0x%llx runs past its segment",
				 path, (unsigned long long)off);
			return -ENOEXEC;
		}
		if (namesz == 4 && !memcmp(data + name, "Xen", 4) &&
		    type == XEN_ELFNOTE_PHYS32_ENTRY) {
			/* Linux writes it with _ASM_PTR: 8 bytes on x86-64,
			 * 4 on i386; a 32-bit entry either way. */
			uint64_t v;

			if (descsz == 4) {
				v = le32(data + desc);
			} else if (descsz == 8) {
				v = le32(data + desc) | (uint64_t)le32(data + desc + 4) << 32;
			} else {
				snprintf(err, errlen, "%s: the PVH entry note holds %llu bytes, not 4 or 8",
					 path, (unsigned long long)descsz);
				return -ENOEXEC;
			}
			if (v >> 32) {
				snprintf(err, errlen, "%s: the PVH entry 0x%llx is not a 32-bit address",
					 path, (unsigned long long)v);
				return -ENOEXEC;
			}
			*entry = v;
			return 1;
		}
		off = next;
	}
	return 0;
}

int boot_pvh_find_entry(const char *path, const uint8_t *data, size_t len,
			uint64_t *entry, char *err, size_t errlen)
{
	int phnum = boot_elf_check(path, data, len, err, errlen);

	if (phnum < 0)
		return phnum;
	for (unsigned i = 0; i < (unsigned)phnum; i++) {
		struct boot_elf_seg ph;
		int r;

		boot_elf_phdr(data, i, &ph);
		if (ph.type != PT_NOTE)
			continue;
		if (ph.offset > len || ph.filesz > len - ph.offset) {
			snprintf(err, errlen, "%s: ELF note segment %u lies outside the file",
				 path, i);
			return -ENOEXEC;
		}
		r = find_in_notes(path, data, ph.offset, ph.offset + ph.filesz,
				  ph.align == 8 ? 8 : 4, entry, err, errlen);
		if (r)
			return r;
	}
	return 0;
}

int boot_pvh_start_info(struct vm *vm, const struct boot_opts *o,
			struct boot_info *bi, char *err, size_t errlen)
{
	struct hvm_start_info *si = vm_gpa(vm, BOOT_PVH_START_INFO, 0x1000);
	struct hvm_modlist_entry *mod = vm_gpa(vm, PVH_MODLIST, sizeof(*mod));
	struct hvm_memmap_table_entry *mm = vm_gpa(vm, PVH_MEMMAP,
						   PVH_MEMMAP_MAX * sizeof(*mm));
	struct boot_mem_range m[PVH_MEMMAP_MAX];
	uint64_t addr, size;
	unsigned n;
	int r;

	memset(si, 0, 0x1000);
	r = boot_cmdline(vm, o, bi, err, errlen);
	if (r < 0)
		return r;
	r = boot_initrd(vm, o, bi, &addr, &size, err, errlen);
	if (r < 0)
		return r;
	n = boot_memory_map(vm, m, PVH_MEMMAP_MAX);
	for (unsigned i = 0; i < n; i++)
		mm[i] = (struct hvm_memmap_table_entry){ m[i].addr, m[i].size, m[i].type, 0 };
	si->magic = HVM_START_MAGIC;
	si->version = 1;
	si->cmdline_paddr = BOOT_CMDLINE;
	si->rsdp_paddr = ACPI_RSDP_ADDR;
	si->memmap_paddr = PVH_MEMMAP;
	si->memmap_entries = n;
	if (size) {
		*mod = (struct hvm_modlist_entry){ .paddr = addr, .size = size };
		si->nr_modules = 1;
		si->modlist_paddr = PVH_MODLIST;
	}
	boot_describe(bi, "start_info 0x%llx\nmemmap %u\n",
		      (unsigned long long)BOOT_PVH_START_INFO, n);
	return 0;
}
