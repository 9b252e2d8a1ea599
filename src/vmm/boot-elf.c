// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * An uncompressed vmlinux ELF, entered at its 64-bit entry (x86 vmlinux's
 * e_entry is physical: phys_startup_64).  Its segments are copied to their
 * physical addresses; every size and offset is checked against the file
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
	return len >= 4 && !memcmp(data, ELFMAG, SELFMAG);
}

int boot_load_elf(struct vm *vm, const uint8_t *data, size_t len,
		  struct boot_info *bi, char *err, size_t errlen)
{
	const Elf64_Ehdr *eh = (const void *)data;
	struct boot_params *bp;
	uint64_t lo = UINT64_MAX, hi = 0;
	bool entry_ok = false;

	if (len < sizeof(*eh) || eh->e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh->e_ident[EI_DATA] != ELFDATA2LSB || eh->e_machine != EM_X86_64 ||
	    eh->e_type != ET_EXEC) {
		snprintf(err, errlen, "kernel: not a 64-bit x86 executable ELF");
		return -ENOEXEC;
	}
	if (eh->e_phentsize != sizeof(Elf64_Phdr) || eh->e_phoff > len ||
	    (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr) > len - eh->e_phoff) {
		snprintf(err, errlen, "kernel: ELF program headers lie outside the file");
		return -ENOEXEC;
	}
	for (unsigned i = 0; i < eh->e_phnum; i++) {
		const Elf64_Phdr *ph = (const void *)(data + eh->e_phoff + i * sizeof(*ph));

		if (ph->p_type != PT_LOAD || !ph->p_memsz)
			continue;
		if (ph->p_filesz > ph->p_memsz || ph->p_offset > len ||
		    ph->p_filesz > len - ph->p_offset) {
			snprintf(err, errlen, "kernel: ELF segment %u lies outside the file", i);
			return -ENOEXEC;
		}
		uint8_t *dst = vm_gpa(vm, ph->p_paddr, ph->p_memsz);

		if (!dst || ph->p_paddr < BOOT_HIGH_START) {
			snprintf(err, errlen,
				 "kernel: ELF segment %u (%llu bytes at 0x%llx) does not fit in guest memory (raise --memory)",
				 i, (unsigned long long)ph->p_memsz,
				 (unsigned long long)ph->p_paddr);
			return -ENOSPC;
		}
		memcpy(dst, data + ph->p_offset, ph->p_filesz);
		memset(dst + ph->p_filesz, 0, ph->p_memsz - ph->p_filesz);
		if (ph->p_paddr < lo)
			lo = ph->p_paddr;
		if (ph->p_paddr + ph->p_memsz > hi)
			hi = ph->p_paddr + ph->p_memsz;
		if (eh->e_entry >= ph->p_paddr && eh->e_entry - ph->p_paddr < ph->p_filesz)
			entry_ok = true;
	}
	if (!entry_ok) {
		snprintf(err, errlen, "kernel: ELF entry 0x%llx is not inside a loaded segment",
			 (unsigned long long)eh->e_entry);
		return -ENOEXEC;
	}
	bi->mode = BOOT_LONG;
	bi->entry = eh->e_entry;
	bi->kernel_start = lo;
	bi->kernel_end = hi;
	bi->format = "vmlinux";
	/* No setup header in an ELF: the loader writes the fields the 64-bit
	 * protocol reads. */
	bp = vm_gpa(vm, BOOT_ZERO_PAGE, sizeof(*bp));
	memset(bp, 0, sizeof(*bp));
	bp->hdr.boot_flag = 0xaa55;
	bp->hdr.header = 0x53726448;		/* "HdrS" */
	bp->hdr.version = 0x020f;
	bp->hdr.loadflags = LOADED_HIGH;
	bp->hdr.kernel_alignment = 0x1000000;
	bp->hdr.cmdline_size = 2048;
	bp->hdr.initrd_addr_max = 0x7fffffff;
	bi->initrd_addr_max = bp->hdr.initrd_addr_max;
	return 0;
}
