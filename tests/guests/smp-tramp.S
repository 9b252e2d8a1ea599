/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The application processors' way in.  The boot CPU copies the blob
 * between smp_tramp_start and smp_tramp_end to TRAMP_BASE (0x8000) and
 * fills in its data (page tables, GDT); each AP's SIPI starts it there in
 * real mode, at CS=0x800, IP=0.
 *
 * It goes straight from real mode to long mode (PAE, EFER.LME, then PE
 * and PG together, then a far jump to a 64-bit segment), which the
 * architecture allows, so there is no 32-bit step.  Its place in line,
 * taken with LOCK XADD, picks its stack.
 */
#define TRAMP_BASE	0x8000
#define OFF(x)		((x) - smp_tramp_start)

	.section .rodata, "a"
	.code16
	.globl smp_tramp_start, smp_tramp_end
	.globl smp_tramp_cr3, smp_tramp_gdtr, smp_tramp_count
smp_tramp_start:
	cli
	mov	%cs, %ax
	mov	%ax, %ds
	mov	$1, %ebp
	lock xaddl %ebp, OFF(smp_tramp_count)
	mov	%cr4, %eax
	or	$0x20, %eax			/* PAE */
	mov	%eax, %cr4
	mov	OFF(smp_tramp_cr3), %eax
	mov	%eax, %cr3
	mov	$0xc0000080, %ecx		/* EFER */
	rdmsr
	or	$0x100, %eax			/* LME */
	wrmsr
	lgdtl	OFF(smp_tramp_gdtr)
	mov	%cr0, %eax
	or	$0x80000001, %eax		/* PG, PE */
	mov	%eax, %cr0
	ljmpl	$0x08, $smp_ap_entry64		/* SEL_KCODE */

	.balign 8
smp_tramp_cr3:
	.long	0
smp_tramp_count:
	.long	0
smp_tramp_gdtr:
	.word	0
	.long	0
smp_tramp_end:

	.text
	.code64
/* In long mode, on the runtime's GDT and page tables; %ebp is our place. */
smp_ap_entry64:
	lgdt	rt_gdtr				/* the 64-bit base */
	lidt	rt_idtr
	mov	%ebp, %eax
	inc	%eax
	shl	$14, %rax			/* 16 KiB each */
	add	$smp_ap_stacks, %rax
	mov	%rax, %rsp
	call	rt_load_segments
	mov	%ebp, %edi
	call	smp_ap_main
1:	cli
	hlt
	jmp	1b

	.section .note.GNU-stack, "", @progbits
