/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * What the device micro-guests (dev-*.c) share: a stack and an entry that
 * calls guest_main() and exits with its value, printing and checking on
 * the debug port, the command line, the COM1 registers, and interrupts
 * (an IDT, the local APIC, the IOAPIC routing an ISA IRQ to a vector).
 *
 * The guest runs at CPL0 in 64-bit mode on the VMM's identity map, so the
 * IOAPIC (0xfec00000) and local APIC (0xfee00000) are at their physical
 * addresses.  The 8259 PICs are masked: interrupts come through the IOAPIC.
 */
#ifndef DEV_GUEST_H
#define DEV_GUEST_H

#include <stdbool.h>
#include <stddef.h>

#include "guest.h"

#define COM1		0x3f8
#define BOOT_CS		0x10	/* the VMM's boot GDT */
#define ZERO_PAGE	0x7000ul

int guest_main(void);

__attribute__((used, aligned(16))) unsigned char guest_stack[16384];

__attribute__((used, noreturn)) void guest_end(int status);
__attribute__((used, noreturn)) void guest_end(int status)
{
	guest_exit((uint32_t)status);
}

__asm__(".pushsection .text.entry, \"ax\"\n"
	".globl _start\n"
	"_start:\n"
	"	lea guest_stack+16384(%rip), %rsp\n"
	"	call guest_main\n"
	"	mov %eax, %edi\n"
	"	call guest_end\n"
	".popsection\n");

static inline void cli(void)
{
	__asm__ volatile("cli" ::: "memory");
}

static inline void sti(void)
{
	__asm__ volatile("sti" ::: "memory");
}

/* Waits for an interrupt with none lost between the check and the halt:
 * STI's shadow covers the HLT. */
static inline void sti_hlt(void)
{
	__asm__ volatile("sti; hlt" ::: "memory");
}

/* --- output on the debug port --- */

static inline void put_dec(unsigned long v, int width)
{
	char b[24];
	int n = 0;

	do {
		b[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n < width)
		b[n++] = '0';
	while (n)
		outb(0xe9, (uint8_t)b[--n]);
}

static inline void put_hex(unsigned long v, int digits)
{
	while (digits--)
		outb(0xe9, (uint8_t)"0123456789abcdef"[(v >> (4 * digits)) & 0xf]);
}

static unsigned failures __attribute__((unused));

/* One line per failed check: "FAIL what: 0xgot, expected 0xwant". */
static inline void expect(const char *what, unsigned long got, unsigned long want)
{
	if (got == want)
		return;
	failures++;
	puts_dbg("FAIL ");
	puts_dbg(what);
	puts_dbg(": 0x");
	put_hex(got, 2);
	puts_dbg(", expected 0x");
	put_hex(want, 2);
	puts_dbg("\n");
}

static inline void check(const char *what, bool ok)
{
	if (ok)
		return;
	failures++;
	puts_dbg("FAIL ");
	puts_dbg(what);
	puts_dbg("\n");
}

/* --- the command line (--append, with the host quirks' words after) --- */

static inline const char *cmdline(void)
{
	return (const char *)(uint64_t)*(volatile uint32_t *)(ZERO_PAGE + 0x228);
}

/* Where the command line has `word` as a whole word (value: as `word=`,
 * the value's start), or NULL. */
static inline const char *cmdline_find(const char *word, bool value)
{
	const char *s = cmdline();

	while (*s) {
		const char *w = word;

		while (*s == ' ')
			s++;
		while (*w && *s == *w) {
			s++;
			w++;
		}
		if (!*w && (value ? *s == '=' : (*s == ' ' || !*s)))
			return value ? s + 1 : s;
		while (*s && *s != ' ')
			s++;
	}
	return NULL;
}

/* Whether `word` is one of the command line's words. */
static inline bool cmdline_has(const char *word)
{
	return cmdline_find(word, false) != NULL;
}

/* The decimal value of `key=` on the command line, or def. */
static inline unsigned long cmdline_num(const char *key, unsigned long def)
{
	const char *s = cmdline_find(key, true);
	unsigned long v = 0;

	if (!s)
		return def;
	for (; *s >= '0' && *s <= '9'; s++)
		v = v * 10 + (unsigned long)(*s - '0');
	return v;
}

/* --- COM1, polled --- */

static inline void uart_putc(char c)
{
	while (!(inb(COM1 + 5) & 0x20))
		;
	outb(COM1, (uint8_t)c);
}

static inline void uart_puts(const char *s)
{
	while (*s)
		uart_putc(*s++);
}

static inline uint8_t uart_getc(void)
{
	while (!(inb(COM1 + 5) & 0x01))
		;
	return inb(COM1);
}

/* --- the CMOS RTC --- */

static inline uint8_t cmos_read(uint8_t reg)
{
	outb(0x70, reg);
	return inb(0x71);
}

static inline void cmos_write(uint8_t reg, uint8_t v)
{
	outb(0x70, reg);
	outb(0x71, v);
}

/* --- interrupts --- */

struct iframe;

struct idt_gate {
	uint16_t off0, sel;
	uint8_t ist, type;
	uint16_t off1;
	uint32_t off2, zero;
} __attribute__((packed));

static struct idt_gate idt[256] __attribute__((aligned(16), unused));

static inline void idt_set(unsigned vec, void (*fn)(struct iframe *))
{
	uint64_t a = (uint64_t)fn;

	idt[vec] = (struct idt_gate){
		.off0 = (uint16_t)a, .sel = BOOT_CS, .type = 0x8e,	/* interrupt gate */
		.off1 = (uint16_t)(a >> 16), .off2 = (uint32_t)(a >> 32),
	};
}

__attribute__((interrupt, unused)) static void unexpected(struct iframe *f)
{
	puts_dbg("FAIL unexpected exception or interrupt\n");
	guest_exit(99);
}

__attribute__((interrupt, unused)) static void spurious(struct iframe *f)
{
}

/* A fault with no IDT to deliver it through: a triple fault. */
static inline void __attribute__((noreturn)) triple_fault(void)
{
	static const struct {
		uint16_t limit;
		uint64_t base;
	} __attribute__((packed)) none;

	__asm__ volatile("lidt %0; ud2" : : "m"(none));
	__builtin_unreachable();
}

#define LAPIC		0xfee00000ul
#define IOAPIC		0xfec00000ul
#define SPURIOUS_VEC	0xff

static inline void lapic_eoi(void)
{
	mmio_write32(LAPIC + 0xb0, 0);
}

/* An IDT whose every vector reports itself as unexpected; the local
 * APIC on; the PICs masked. */
static inline void interrupts_init(void)
{
	struct {
		uint16_t limit;
		uint64_t base;
	} __attribute__((packed)) idtr = { sizeof(idt) - 1, (uint64_t)idt };

	for (unsigned v = 0; v < 256; v++)
		idt_set(v, unexpected);
	idt_set(SPURIOUS_VEC, spurious);
	__asm__ volatile("lidt %0" : : "m"(idtr));
	outb(0x21, 0xff);
	outb(0xa1, 0xff);
	mmio_write32(LAPIC + 0x80, 0);				/* TPR: take all */
	mmio_write32(LAPIC + 0xf0, 0x100 | SPURIOUS_VEC);	/* enabled */
}

/* ISA IRQ `pin` to `vector` on the boot CPU: edge, active high. */
static inline void ioapic_route(unsigned pin, unsigned vector)
{
	mmio_write32(IOAPIC, 0x10 + 2 * pin);
	mmio_write32(IOAPIC + 0x10, vector);
	mmio_write32(IOAPIC, 0x11 + 2 * pin);
	mmio_write32(IOAPIC + 0x10, 0);
}

#endif
