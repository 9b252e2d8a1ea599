/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The runtime's assembly: the entry point, one stub per interrupt vector,
 * and the way down to user mode.
 *
 * The VMM enters at _start in 64-bit mode with its own GDT and page
 * tables and no stack; rt_init() replaces all of them before main().
 */
	.section .text.entry, "ax"
	.code64
	.globl _start
_start:
	cli
	mov	$(rt_boot_stack + 16384), %rsp
	mov	%rsi, rt_zero_page(%rip)	/* boot_params: the command line */
	call	rt_init
	call	main
	mov	%eax, %edi
	call	rt_exit

	.text
/*
 * Interrupt stubs: vector i's stub is at rt_stubs + 16 * i.  The CPU
 * pushes an error code for these vectors only; the others push a zero so
 * that every frame has the same shape.
 */
	.balign 16
	.globl rt_stubs
rt_stubs:
	vec = 0
	.rept 256
	.balign 16
	.if vec == 8 || (vec >= 10 && vec <= 14) || vec == 17 || vec == 21 || vec == 29 || vec == 30
	.else
	pushq	$0
	.endif
	pushq	$vec
	jmp	rt_trap_common
	vec = vec + 1
	.endr

rt_trap_common:
	push	%rax
	push	%rbx
	push	%rcx
	push	%rdx
	push	%rsi
	push	%rdi
	push	%rbp
	push	%r8
	push	%r9
	push	%r10
	push	%r11
	push	%r12
	push	%r13
	push	%r14
	push	%r15
	mov	%rsp, %rdi
	cld
	call	rt_trap
	pop	%r15
	pop	%r14
	pop	%r13
	pop	%r12
	pop	%r11
	pop	%r10
	pop	%r9
	pop	%r8
	pop	%rbp
	pop	%rdi
	pop	%rsi
	pop	%rdx
	pop	%rcx
	pop	%rbx
	pop	%rax
	add	$16, %rsp		/* vector, error code */
	iretq

/*
 * rt_enter_user(fn, stack): an iretq frame for CPL3 with IOPL=3.  Hosts
 * without hardware virtualization drop the IOPL on the way (kvm_pvm): the
 * TSS's I/O bitmap, which allows every port, is what lets CPL3 reach them
 * there.
 */
	.globl rt_enter_user
rt_enter_user:
	pushq	$0x1b			/* SEL_UDATA */
	pushq	%rsi
	pushq	$0x3202			/* IOPL=3, interrupts on */
	pushq	$0x23			/* SEL_UCODE */
	pushq	%rdi
	mov	$0x1b, %ax
	mov	%ax, %ds
	mov	%ax, %es
	iretq

/* rt_load_segments(): reloads CS through a far return, then the rest. */
	.globl rt_load_segments
rt_load_segments:
	pushq	$0x08			/* SEL_KCODE */
	lea	1f(%rip), %rax
	pushq	%rax
	lretq
1:	mov	$0x10, %ax		/* SEL_KDATA */
	mov	%ax, %ds
	mov	%ax, %es
	mov	%ax, %ss
	xor	%eax, %eax
	mov	%ax, %fs
	mov	%ax, %gs
	ret

	.section .note.GNU-stack, "", @progbits
