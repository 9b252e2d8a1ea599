/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The boot micro-guests' entry state: what the CPU looked like at the
 * instant the VMM entered the guest, saved by the assembly heads
 * (boot-head64.S, boot-head32.S) for boot-guest.c to report.  Each field
 * is 8 bytes, whichever the guest's width.
 */
#ifndef BOOT_ENTRY_H
#define BOOT_ENTRY_H

/* How the guest was entered. */
#define ENTRY_LONG	0	/* 64-bit boot protocol: rsi = zero page */
#define ENTRY_PROT32	1	/* 32-bit boot protocol: esi = zero page */
#define ENTRY_PVH	2	/* PVH: ebx = hvm_start_info */

#define ES_KIND		0
#define ES_PTR		8
#define ES_EAX		16
#define ES_EBX		24
#define ES_ECX		32
#define ES_EDX		40
#define ES_ESI		48
#define ES_EDI		56
#define ES_EBP		64
#define ES_ESP		72
#define ES_EFLAGS	80
#define ES_CR0		88
#define ES_CR4		96
#define ES_EFER		104
#define ES_CS		112
#define ES_DS		120
#define ES_ES		128
#define ES_SS		136
#define ES_CR3		144
#define ES_SIZE		152

#define STACK_SIZE	8192

#ifdef __ASSEMBLER__
/*
 * The two 32-bit entries (flat protected mode, paging off): each records
 * which it is and its boot structure, then jumps to SAVE32.
 */
.macro ENTRIES32
	.code32
	.globl startup_32
startup_32:			/* 32-bit boot protocol: esi = zero page */
	movl	$ENTRY_PROT32, entry_state + ES_KIND
	movl	%esi, entry_state + ES_PTR
	jmp	save32

	.globl pvh_start
pvh_start:			/* PVH: ebx = hvm_start_info */
	movl	$ENTRY_PVH, entry_state + ES_KIND
	movl	%ebx, entry_state + ES_PTR
	jmp	save32
.endm

/* Records the rest of the 32-bit entry state and moves to the guest's
 * own stack (the VMM leaves esp unset: nothing is pushed before). */
.macro SAVE32
	.code32
save32:
	movl	%eax, entry_state + ES_EAX
	movl	%ebx, entry_state + ES_EBX
	movl	%ecx, entry_state + ES_ECX
	movl	%edx, entry_state + ES_EDX
	movl	%esi, entry_state + ES_ESI
	movl	%edi, entry_state + ES_EDI
	movl	%ebp, entry_state + ES_EBP
	movl	%esp, entry_state + ES_ESP
	movl	$stack_top, %esp
	pushfl
	popl	entry_state + ES_EFLAGS
	movl	%cr0, %eax
	movl	%eax, entry_state + ES_CR0
	movl	%cr4, %eax
	movl	%eax, entry_state + ES_CR4
	movl	%cr3, %eax
	movl	%eax, entry_state + ES_CR3
	movl	$0xc0000080, %ecx	/* EFER */
	rdmsr
	movl	%eax, entry_state + ES_EFER
	xorl	%eax, %eax
	movw	%cs, %ax
	movl	%eax, entry_state + ES_CS
	movw	%ds, %ax
	movl	%eax, entry_state + ES_DS
	movw	%es, %ax
	movl	%eax, entry_state + ES_ES
	movw	%ss, %ax
	movl	%eax, entry_state + ES_SS
.endm

/* The stack and the entry state, in .bss. */
.macro ENTRY_DATA
	.section .bss
	.balign 16
	.globl entry_state
entry_state:
	.skip	ES_SIZE
	.balign 16
stack:
	.skip	STACK_SIZE
stack_top:
.endm
#endif

#endif
