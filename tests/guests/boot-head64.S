/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The 64-bit boot micro-guest's head: an x86-64 kernel's shape.  The image
 * starts with startup_32 (the 32-bit boot protocol) and has startup_64 at
 * offset 0x200 (the 64-bit boot protocol, and the ELF entry); a PVH note
 * names pvh_start.  The 32-bit entries record their state, then switch
 * to long mode through their own identity map of the first 4 GiB, as
 * Linux does, and all three call boot_main() in 64-bit mode.
 */
#include "boot-entry.h"

	.section .text.head, "ax"
	ENTRIES32

	.org	0x200
	.code64
	.globl startup_64
startup_64:			/* 64-bit boot protocol: rsi = zero page */
	movq	$ENTRY_LONG, entry_state + ES_KIND(%rip)
	movq	%rsi, entry_state + ES_PTR(%rip)
	movq	%rax, entry_state + ES_EAX(%rip)
	movq	%rbx, entry_state + ES_EBX(%rip)
	movq	%rcx, entry_state + ES_ECX(%rip)
	movq	%rdx, entry_state + ES_EDX(%rip)
	movq	%rsi, entry_state + ES_ESI(%rip)
	movq	%rdi, entry_state + ES_EDI(%rip)
	movq	%rbp, entry_state + ES_EBP(%rip)
	movq	%rsp, entry_state + ES_ESP(%rip)
	leaq	stack_top(%rip), %rsp
	pushfq
	popq	entry_state + ES_EFLAGS(%rip)
	movq	%cr0, %rax
	movq	%rax, entry_state + ES_CR0(%rip)
	movq	%cr4, %rax
	movq	%rax, entry_state + ES_CR4(%rip)
	movq	%cr3, %rax
	movq	%rax, entry_state + ES_CR3(%rip)
	movl	$0xc0000080, %ecx
	rdmsr
	movl	%eax, entry_state + ES_EFER(%rip)
	movl	%cs, %eax
	movq	%rax, entry_state + ES_CS(%rip)
	movl	%ds, %eax
	movq	%rax, entry_state + ES_DS(%rip)
	movl	%es, %eax
	movq	%rax, entry_state + ES_ES(%rip)
	movl	%ss, %eax
	movq	%rax, entry_state + ES_SS(%rip)
	call	boot_main
1:	hlt
	jmp	1b

	SAVE32
	/* Page tables: PML4[0] -> PDPT, PDPT[0..3] -> four PDs of 2 MiB
	 * pages, identity. */
	movl	$pdpt + 3, pml4
	movl	$pd + 3, %eax
	xorl	%ecx, %ecx
1:	movl	%eax, pdpt(, %ecx, 8)
	addl	$4096, %eax
	incl	%ecx
	cmpl	$4, %ecx
	jne	1b
	xorl	%ecx, %ecx
2:	movl	%ecx, %eax
	shll	$21, %eax
	orl	$0x83, %eax		/* present, writable, 2 MiB */
	movl	%eax, pd(, %ecx, 8)
	movl	%ecx, %eax
	shrl	$11, %eax
	movl	%eax, pd + 4(, %ecx, 8)
	incl	%ecx
	cmpl	$2048, %ecx
	jne	2b
	movl	%cr4, %eax
	orl	$0x20, %eax		/* PAE */
	movl	%eax, %cr4
	movl	$pml4, %eax
	movl	%eax, %cr3
	movl	$0xc0000080, %ecx
	rdmsr
	orl	$0x100, %eax		/* LME */
	wrmsr
	lgdt	gdt_desc
	movl	%cr0, %eax
	orl	$0x80000000, %eax	/* PG */
	movl	%eax, %cr0
	ljmp	$0x08, $long_mode

	.code64
long_mode:
	movl	$0x10, %eax
	movl	%eax, %ds
	movl	%eax, %es
	movl	%eax, %ss
	call	boot_main
1:	hlt
	jmp	1b

	.section .rodata
	.balign 8
gdt:
	.quad	0
	.quad	0x00af9a000000ffff	/* 0x08: 64-bit code */
	.quad	0x00cf92000000ffff	/* 0x10: data */
gdt_desc:
	.word	gdt_desc - gdt - 1
	.long	gdt

	/* Xen's PHYS32_ENTRY note: 8 bytes in a 64-bit ELF, as Linux's
	 * _ASM_PTR writes it. */
	.section .note.Xen, "a", @note
	.balign 4
	.long	4, 8, 18
	.asciz	"Xen"
	.balign 4
	.quad	pvh_start
	.balign 4

	.section .bss
	.balign 4096
pml4:	.skip	4096
pdpt:	.skip	4096
pd:	.skip	4 * 4096

	ENTRY_DATA
