// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * An uncompressed vmlinux ELF.  x86-64's is entered at e_entry in 64-bit
 * mode (its e_entry is physical: phys_startup_64); i386's at e_entry in
 * flat 32-bit protected mode (phys_startup_32), both with the zero page;
 * either may instead be entered at its PVH note (--boot pvh).  Segments
 * are placed at their physical addresses, their whole pages mapped from
 * the file where they can be (a vmlinux's segments sit at file offsets
 * that agree with their addresses modulo the page size: boot_place()),
 * the rest copied; every size and offset is checked against the file
 * and guest memory first.
 */
#include <elf.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <asm/bootparam.h>

#include "boot.h"

bool boot_is_elf(const uint8_t *data, size_t len)
{
	return len >= SELFMAG && !memcmp(data, ELFMAG, SELFMAG);
}

static bool elf64(const uint8_t *data)
{
	return data[EI_CLASS] == ELFCLASS64;
}

int boot_elf_check(const char *path, const uint8_t *data, size_t len,
		   char *err, size_t errlen)
{
	uint64_t phoff, phnum, phentsize, want;
	uint16_t type, machine;

	if (len < EI_NIDENT || data[EI_DATA] != ELFDATA2LSB ||
	    (data[EI_CLASS] != ELFCLASS32 && data[EI_CLASS] != ELFCLASS64) ||
	    len < (elf64(data) ? sizeof(Elf64_Ehdr) : sizeof(Elf32_Ehdr)))
		goto not_x86;
	if (elf64(data)) {
		const Elf64_Ehdr *eh = (const void *)data;

		type = eh->e_type;
		machine = eh->e_machine;
		phoff = eh->e_phoff;
		phnum = eh->e_phnum;
		phentsize = eh->e_phentsize;
		want = sizeof(Elf64_Phdr);
		if (machine != EM_X86_64)
			goto not_x86;
	} else {
		const Elf32_Ehdr *eh = (const void *)data;

		type = eh->e_type;
		machine = eh->e_machine;
		phoff = eh->e_phoff;
		phnum = eh->e_phnum;
		phentsize = eh->e_phentsize;
		want = sizeof(Elf32_Phdr);
		if (machine != EM_386)
			goto not_x86;
	}
	if (type != ET_EXEC)
		goto not_x86;
	if (phentsize != want || phoff > len || phnum * want > len - phoff) {
		snprintf(err, errlen, "%s: ELF program headers lie outside the file", path);
		return -ENOEXEC;
	}
	return (int)phnum;
not_x86:
	snprintf(err, errlen, "%s: not an x86 executable ELF (64-bit x86-64 or 32-bit i386)",
		 path);
	return -ENOEXEC;
}

void boot_elf_phdr(const uint8_t *data, unsigned i, struct boot_elf_seg *s)
{
	if (elf64(data)) {
		const Elf64_Ehdr *eh = (const void *)data;
		const Elf64_Phdr *ph = (const void *)(data + eh->e_phoff + i * sizeof(*ph));

		*s = (struct boot_elf_seg){ ph->p_type, ph->p_offset, ph->p_paddr,
					    ph->p_filesz, ph->p_memsz, ph->p_align };
	} else {
		const Elf32_Ehdr *eh = (const void *)data;
		const Elf32_Phdr *ph = (const void *)(data + eh->e_phoff + i * sizeof(*ph));

		*s = (struct boot_elf_seg){ ph->p_type, ph->p_offset, ph->p_paddr,
					    ph->p_filesz, ph->p_memsz, ph->p_align };
	}
}

/* Chooses the entry --boot asks for. */
static int choose_entry(const struct boot_opts *o, const uint8_t *data, size_t len,
			struct boot_info *bi, char *err, size_t errlen)
{
	uint64_t pvh_entry;
	int r;

	if (o->entry == BOOT_ENTRY_PVH) {
		r = boot_pvh_find_entry(o->kernel, data, len, &pvh_entry, err, errlen);
		if (r < 0)
			return r;
		if (!r) {
			snprintf(err, errlen,
				 "%s: --boot pvh: no PVH entry (XEN_ELFNOTE_PHYS32_ENTRY note; Linux needs CONFIG_PVH)",
				 o->kernel);
			return -ENOEXEC;
		}
		bi->mode = BOOT_PROT32;
		bi->entry = pvh_entry;
		bi->pvh = true;
		return 0;
	}
	if (!elf64(data) && o->entry == BOOT_ENTRY_LINUX64) {
		snprintf(err, errlen, "%s: --boot linux64: a 32-bit (i386) ELF has no 64-bit entry",
			 o->kernel);
		return -ENOEXEC;
	}
	bi->mode = elf64(data) ? BOOT_LONG : BOOT_PROT32;
	bi->entry = elf64(data) ? ((const Elf64_Ehdr *)data)->e_entry :
				  ((const Elf32_Ehdr *)data)->e_entry;
	return 0;
}

int boot_load_elf(struct vm *vm, const struct boot_opts *o, struct boot_file *f,
		  struct boot_info *bi, char *err, size_t errlen)
{
	const uint8_t *data = f->data;
	size_t len = f->len;
	struct boot_params *bp;
	uint64_t lo = UINT64_MAX, hi = 0;
	bool entry_ok = false;
	int phnum, r;

	phnum = boot_elf_check(o->kernel, data, len, err, errlen);
	if (phnum < 0)
		return phnum;
	r = choose_entry(o, data, len, bi, err, errlen);
	if (r < 0)
		return r;
	bi->format = elf64(data) ? "vmlinux" : "vmlinux-i386";
	boot_describe(bi, "format %s\n", bi->format);
	for (unsigned i = 0; i < (unsigned)phnum; i++) {
		struct boot_elf_seg ph;
		char what[32];

		boot_elf_phdr(data, i, &ph);
		if (ph.type != PT_LOAD || !ph.memsz)
			continue;
		if (ph.filesz > ph.memsz || ph.offset > len || ph.filesz > len - ph.offset) {
			snprintf(err, errlen, "%s: ELF segment %u lies outside the file",
				 o->kernel, i);
			return -ENOEXEC;
		}
		snprintf(what, sizeof(what), "ELF segment %u", i);
		r = boot_place(vm, bi, f, what, ph.offset, ph.filesz, ph.memsz, ph.paddr, err,
			       errlen);
		if (r < 0)
			return r;
		if (ph.paddr < lo)
			lo = ph.paddr;
		if (ph.paddr + ph.memsz > hi)
			hi = ph.paddr + ph.memsz;
		if (bi->entry >= ph.paddr && bi->entry - ph.paddr < ph.filesz)
			entry_ok = true;
	}
	if (!entry_ok) {
		snprintf(err, errlen, "%s: %s entry 0x%llx is not inside a loaded segment",
			 o->kernel, bi->pvh ? "PVH" : "ELF", (unsigned long long)bi->entry);
		return -ENOEXEC;
	}
	bi->kernel_start = lo;
	bi->kernel_end = hi;
	bi->cmdline_max = BOOT_CMDLINE_LINUX;
	bi->initrd_addr_max = 0x7fffffff;
	if (bi->pvh)
		return 0;
	/* No setup header in an ELF: the loader writes the fields the 32-
	 * and 64-bit protocols read, as a bzImage of the same kernel would
	 * carry them. */
	bp = vm_gpa(vm, BOOT_ZERO_PAGE, sizeof(*bp));
	memset(bp, 0, sizeof(*bp));
	bp->hdr.boot_flag = 0xaa55;
	bp->hdr.header = 0x53726448;		/* "HdrS" */
	bp->hdr.version = 0x020f;
	bp->hdr.loadflags = LOADED_HIGH;
	bp->hdr.kernel_alignment = 0x1000000;
	bp->hdr.cmdline_size = BOOT_CMDLINE_LINUX;
	bp->hdr.initrd_addr_max = (uint32_t)bi->initrd_addr_max;
	return 0;
}
