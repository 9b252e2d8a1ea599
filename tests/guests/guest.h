/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * What micro-guests share: port I/O, the test device's two ports (0xe9
 * prints, 0xf4 ends the VM with a status), and the runtime in rt.c and
 * rt-entry.S for guests that want descriptor tables, exception handlers,
 * user mode or a command line.
 *
 * A guest linked with the runtime defines main(); it is entered in 64-bit
 * mode at CPL0 with the runtime's GDT, IDT, TSS and page tables loaded
 * (4 GiB identity-mapped, user-accessible, so code at CPL3 can touch
 * everything), and its return value is the VM's exit status.
 */
#ifndef GUEST_H
#define GUEST_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DEBUG_PORT	0xe9
#define EXIT_PORT	0xf4
/* A port nothing answers: reads see all ones. */
#define UNBACKED_PORT	0x0ed0
/* Guest-physical address in the hole below 4 GiB that no memory backs. */
#define UNBACKED_MMIO	0xd0000000ull
#define LAPIC_BASE	0xfee00000ull

/* An unexpected exception ends the guest with this status plus its
 * vector; an unexpected interrupt (vector 32 and up) with 0x60. */
#define STATUS_EXCEPTION	0x40
#define STATUS_INTERRUPT	0x60

/* Selectors of the runtime's GDT. */
#define SEL_KCODE	0x08
#define SEL_KDATA	0x10
#define SEL_UDATA	0x1b
#define SEL_UCODE	0x23
#define SEL_TSS		0x28
#define SEL_CODE32	0x38
#define SEL_CODE16	0x40
#define SEL_DATA16	0x48

static inline void outb(uint16_t port, uint8_t v)
{
	__asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static inline void outw(uint16_t port, uint16_t v)
{
	__asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port));
}

static inline void outl(uint16_t port, uint32_t v)
{
	__asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port));
}

static inline uint8_t inb(uint16_t port)
{
	uint8_t v;

	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static inline uint16_t inw(uint16_t port)
{
	uint16_t v;

	__asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static inline uint32_t inl(uint16_t port)
{
	uint32_t v;

	__asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

/* String I/O: one instruction, `n` accesses (the VMM sees a count). */
static inline void outsb(uint16_t port, const void *buf, unsigned long n)
{
	__asm__ volatile("rep outsb" : "+S"(buf), "+c"(n) : "d"(port) : "memory");
}

static inline void insb(uint16_t port, void *buf, unsigned long n)
{
	__asm__ volatile("rep insb" : "+D"(buf), "+c"(n) : "d"(port) : "memory");
}

static inline void outsw(uint16_t port, const void *buf, unsigned long n)
{
	__asm__ volatile("rep outsw" : "+S"(buf), "+c"(n) : "d"(port) : "memory");
}

static inline void insl(uint16_t port, void *buf, unsigned long n)
{
	__asm__ volatile("rep insl" : "+D"(buf), "+c"(n) : "d"(port) : "memory");
}

static inline void cpuid(uint32_t leaf, uint32_t sub, uint32_t r[4])
{
	__asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3])
			 : "a"(leaf), "c"(sub));
}

static inline uint64_t rdtsc(void)
{
	uint32_t lo, hi;

	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return ((uint64_t)hi << 32) | lo;
}

static inline void mmio_write32(uint64_t addr, uint32_t v)
{
	*(volatile uint32_t *)(uintptr_t)addr = v;
}

static inline uint32_t mmio_read32(uint64_t addr)
{
	return *(volatile uint32_t *)(uintptr_t)addr;
}

static inline unsigned cpl(void)
{
	uint16_t cs;

	__asm__ volatile("mov %%cs, %0" : "=r"(cs));
	return cs & 3;
}

static inline void puts_dbg(const char *s)
{
	while (*s)
		outb(DEBUG_PORT, (uint8_t)*s++);
}

static inline void __attribute__((noreturn)) guest_exit(uint32_t code)
{
	outl(EXIT_PORT, code);
	for (;;)
		__asm__ volatile("hlt");
}

/* ---- the runtime (rt.c, rt-entry.S) ---- */

/* What the exception stubs push: general registers, then the vector and
 * error code (0 when the CPU pushes none), then the CPU's frame. */
struct trap_frame {
	uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
	uint64_t rbp, rdi, rsi, rdx, rcx, rbx, rax;
	uint64_t vector, error;
	uint64_t rip, cs, rflags, rsp, ss;
};

/* A handler returns to the interrupted code (after changing the frame if
 * it likes). */
typedef void (*trap_handler)(struct trap_frame *f);

int main(void);

void rt_set_handler(unsigned vector, trap_handler h);
/* Lets `int $vector` in user mode reach the handler. */
void rt_set_user_gate(unsigned vector);
void rt_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The command line's value for `key=` (the VMM passes --append through
 * the zero page), or `def` when absent. */
uint64_t rt_arg(const char *key, uint64_t def);
/* The value for `key=` as a string (up to the next space), or NULL. */
const char *rt_arg_str(const char *key, char *buf, unsigned len);
bool rt_streq(const char *a, const char *b);
/* Leaves CPL0 for CPL3 (IOPL=3: port I/O allowed) on `stack`; fn must
 * end the VM rather than return. */
void __attribute__((noreturn)) rt_enter_user(void (*fn)(void), void *stack);
/* The page of stack rt_enter_user callers may use. */
extern uint8_t rt_user_stack[];
#define RT_USER_STACK_TOP	((void *)(rt_user_stack + 16384))
/* Loaded by the runtime; APs load the same. */
extern uint64_t rt_pml4[];
extern struct { uint16_t limit; uint64_t base; } __attribute__((packed)) rt_gdtr, rt_idtr;

#endif
