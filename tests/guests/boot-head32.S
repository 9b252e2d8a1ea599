/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The 32-bit boot micro-guest's head: an i386 kernel's shape.  Its image
 * starts with startup_32 (the 32-bit boot protocol's entry, and an i386
 * bzImage's code32_start), and a PVH note names pvh_start.  Both record
 * the entry state and call boot_main() in 32-bit protected mode.
 */
#include "boot-entry.h"

	.section .text.head, "ax"
	ENTRIES32
	SAVE32
	call	boot_main
1:	hlt
	jmp	1b

	/* Xen's PHYS32_ENTRY note: 4 bytes in a 32-bit ELF, as Linux's
	 * _ASM_PTR writes it. */
	.section .note.Xen, "a", @note
	.balign 4
	.long	4, 4, 18
	.asciz	"Xen"
	.balign 4
	.long	pvh_start
	.balign 4

	ENTRY_DATA
