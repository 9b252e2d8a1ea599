/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Leaving long mode for 32-bit protected mode, and from there for real
 * mode, the way an OS returning to firmware does.  In each mode the guest
 * does port I/O of every size, string I/O, and checks what it reads from
 * a port (and, in 32-bit mode, an MMIO address) that nothing backs.
 *
 * modes_leave_long(target): target 32 ends the VM from protected mode with
 * status 32; anything else goes on to real mode, which ends it with 16.
 * The real-mode part runs from a copy at 0x8000 (cpu-modes.c makes it).
 */
#define BLOB_BASE	0x8000
#define OFF(x)		((x) - modes_blob_start)

/* Six letters and a newline to the debug port (%dx) in 1, 2 and 4 bytes,
 * then a check that a port nothing backs reads all ones (ZF set). */
.macro out_sizes a, b, c, d, e, f
	mov	$\a, %al
	outb	%al, %dx
	mov	$(\b | \c << 8), %ax
	outw	%ax, %dx
	mov	$(\d | \e << 8 | \f << 16 | '\n' << 24), %eax
	outl	%eax, %dx
	mov	$0x0ed0, %dx			/* UNBACKED_PORT */
	inl	%dx, %eax
	mov	$0xe9, %dx
.endm

	.text
	.code64
	.globl modes_leave_long
modes_leave_long:
	mov	%edi, modes_target
	pushq	$0x38				/* SEL_CODE32 */
	pushq	$prot32
	lretq

	.code32
prot32:
	/* Compatibility mode: paging off leaves long mode (EFER.LMA). */
	mov	%cr0, %eax
	and	$0x7fffffff, %eax
	mov	%eax, %cr0
	mov	$0xc0000080, %ecx
	rdmsr
	and	$~0x100, %eax			/* EFER.LME */
	wrmsr
	mov	$0x10, %ax			/* flat data */
	mov	%ax, %ds
	mov	%ax, %es
	mov	%ax, %ss
	mov	$(rt_boot_stack + 16384), %esp
	mov	$0xe9, %dx
	mov	$msg32, %esi
	mov	$(msg32_end - msg32), %ecx
	rep outsb
	out_sizes 'a', 'b', 'c', 'd', 'e', 'f'
	mov	0xd0000000, %ebx		/* UNBACKED_MMIO: paging is off */
	and	%ebx, %eax
	mov	$ones32, %esi
	mov	$(ones32_end - ones32), %ecx
	cmp	$0xffffffff, %eax
	je	1f
	mov	$wrong32, %esi
	mov	$(wrong32_end - wrong32), %ecx
1:	rep outsb
	cmpl	$32, modes_target
	jne	2f
	mov	$32, %eax
	mov	$0xf4, %dx
	outl	%eax, %dx
	hlt
2:	ljmp	$0x40, $(BLOB_BASE + OFF(real16_pm))	/* SEL_CODE16 */

	.section .rodata, "a"
msg32:	.ascii	"prot32: "
msg32_end:
ones32:	.ascii	"prot32: unbacked port and mmio read all ones\n"
ones32_end:
wrong32: .ascii	"prot32: unbacked reads are wrong\n"
wrong32_end:

	.code16
	.balign 16
	.globl modes_blob_start, modes_blob_end
modes_blob_start:
real16_pm:
	mov	$0x48, %ax			/* SEL_DATA16: real-mode limits */
	mov	%ax, %ds
	mov	%ax, %es
	mov	%ax, %ss
	mov	%cr0, %eax
	and	$~1, %eax			/* PE */
	mov	%eax, %cr0
	ljmp	$(BLOB_BASE >> 4), $OFF(real16)
real16:
	mov	%cs, %ax
	mov	%ax, %ds
	mov	%ax, %ss
	mov	$0x2000, %sp
	lidt	OFF(ivt)
	xor	%ax, %ax
	mov	%ax, %es
	movw	$OFF(int30), %es:0x30 * 4
	movw	$(BLOB_BASE >> 4), %es:0x30 * 4 + 2
	mov	$0xe9, %dx
	mov	$OFF(msg16), %si
	mov	$(msg16_end - msg16), %cx
	rep outsb
	out_sizes 'A', 'B', 'C', 'D', 'E', 'F'
	mov	$OFF(ones16), %si
	mov	$(ones16_end - ones16), %cx
	cmp	$0xffffffff, %eax
	je	1f
	mov	$OFF(wrong16), %si
	mov	$(wrong16_end - wrong16), %cx
1:	rep outsb
	int	$0x30
	mov	$16, %eax
	mov	$0xf4, %dx
	outl	%eax, %dx
	hlt

int30:
	mov	$OFF(msgint), %si
	mov	$(msgint_end - msgint), %cx
	rep outsb
	iret

ivt:	.word	0x3ff
	.long	0
msg16:	.ascii	"real16: "
msg16_end:
ones16:	.ascii	"real16: unbacked port reads all ones\n"
ones16_end:
wrong16: .ascii	"real16: unbacked port read is wrong\n"
wrong16_end:
msgint:	.ascii	"real16: int 0x30 through the IVT\n"
msgint_end:
modes_blob_end:

	.section .note.GNU-stack, "", @progbits
