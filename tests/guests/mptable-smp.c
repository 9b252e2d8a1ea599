// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The SMP micro-guest: finds the MP table the way Linux does
 * (arch/x86/kernel/mpparse.c: the first KiB, the last KiB of base memory,
 * the BIOS area, the EBDA), checks both checksums and reports every entry
 * over the debug port.  Then it proves the table true:
 *  - it starts each application processor the table lists, with
 *    INIT/SIPI to its APIC id; each AP, in real mode, sets its own APIC id
 *    (from CPUID) in a bitmap;
 *  - it programs every IOAPIC pin to its own vector, starts the PIT, and
 *    reports which pin IRQ0 arrives on, which must be the pin the table
 *    gives for ISA IRQ 0.
 * Exit status 0x55 when all holds, 0x66 when not.  Structures are read by
 * the MP specification 1.4's byte offsets, sharing nothing with the VMM.
 */
#include <stdint.h>

#include "boot-print.h"

#define LAPIC		0xfee00000ul
#define IOAPIC		0xfec00000ul
#define TRAMPOLINE	0x8000ul	/* SIPI vector 0x08 */
#define AP_BITMAP	0x8ff0ul
#define PIN_VECTOR	0x30		/* IOAPIC pin p -> vector 0x30 + p */
#define PINS		24

/* Entry: a stack, then smp_main.  The real-mode AP trampoline and the
 * interrupt stubs are here too. */
__asm__(
	".section .text.entry, \"ax\"\n"
	".globl _start\n"
	"_start:\n"
	"	leaq stack_top(%rip), %rsp\n"
	"	call smp_main\n"
	"1:	hlt\n"
	"	jmp 1b\n"
	"\n"
	/* Copied to TRAMPOLINE: APs start here in real mode, CS=0x0800. */
	".section .rodata\n"
	".globl tramp_start, tramp_end\n"
	"tramp_start:\n"
	".code16\n"
	"	cli\n"
	"	xorw %ax, %ax\n"
	"	movw %ax, %ds\n"
	"	movl $1, %eax\n"
	"	cpuid\n"
	"	shrl $24, %ebx\n"
	"	lock btsl %ebx, 0x8ff0\n"
	"2:	hlt\n"
	"	jmp 2b\n"
	".code64\n"
	"tramp_end:\n"
	"\n"
	/* Vector 0x30 + p: record pin p, EOI, return. */
	".text\n"
	".globl pin_stubs\n"
	"pin_stubs:\n"
	".set p, 0\n"
	".rept 24\n"
	"	pushq %rax\n"
	"	movl $p, %eax\n"
	"	jmp pin_common\n"
	"	.balign 16\n"
	".set p, p + 1\n"
	".endr\n"
	"pin_common:\n"
	"	lock btsl %eax, pins_fired(%rip)\n"
	"	movl $0xfee000b0, %eax\n"	/* EOI */
	"	movl $0, (%rax)\n"
	"	popq %rax\n"
	"	iretq\n"
	".bss\n"
	".balign 16\n"
	"stack: .skip 8192\n"
	"stack_top:\n"
	".text\n");

extern const uint8_t tramp_start[], tramp_end[], pin_stubs[];
volatile uint32_t pins_fired;
static uint64_t idt[2 * (PIN_VECTOR + PINS)] __attribute__((aligned(16)));
static uint8_t sum(uint64_t addr, uint64_t len)
{
	uint8_t s = 0;

	for (uint64_t i = 0; i < len; i++)
		s += (uint8_t)rd(addr + i, 1);
	return s;
}

/* mpparse.c's smp_scan_config: "_MP_", length 1, checksum, spec 1 or 4. */
static uint64_t scan(uint64_t base, uint64_t len)
{
	for (uint64_t a = base; a + 16 <= base + len; a += 16)
		if (rd(a, 4) == 0x5f504d5f && rd(a + 8, 1) == 1 && !sum(a, 16) &&
		    (rd(a + 9, 1) == 1 || rd(a + 9, 1) == 4))
			return a;
	return 0;
}

static void lapic_write(unsigned reg, uint32_t v)
{
	*(volatile uint32_t *)(LAPIC + reg) = v;
}

static uint32_t lapic_read(unsigned reg)
{
	return *(volatile uint32_t *)(LAPIC + reg);
}

static void ipi(unsigned apic, uint32_t icr)
{
	lapic_write(0x310, apic << 24);
	lapic_write(0x300, icr);
	while (lapic_read(0x300) & (1u << 12))	/* delivery pending */
		;
}

static void ioapic_write(unsigned reg, uint32_t v)
{
	*(volatile uint32_t *)IOAPIC = reg;
	*(volatile uint32_t *)(IOAPIC + 0x10) = v;
}

/* Starts each listed AP; returns the bitmap of APIC ids that ran. */
static uint32_t start_aps(uint32_t expect)
{
	volatile uint32_t *bitmap = (volatile uint32_t *)AP_BITMAP;
	uint8_t *t = (uint8_t *)TRAMPOLINE;

	for (const uint8_t *s = tramp_start; s < tramp_end; s++)
		*t++ = *s;
	*bitmap = 0;
	for (unsigned id = 0; id < 32; id++) {
		if (!(expect & (1u << id)))
			continue;
		ipi(id, 0x4500);			/* INIT */
		ipi(id, 0x4600 | (TRAMPOLINE >> 12));	/* STARTUP */
		ipi(id, 0x4600 | (TRAMPOLINE >> 12));
	}
	for (unsigned long i = 0; i < 20000000 && (*bitmap & expect) != expect; i++)
		__asm__ volatile("pause");
	return *bitmap;
}

/* Which IOAPIC pins the PIT's interrupt arrives on. */
static uint32_t pit_pins(void)
{
	struct __attribute__((packed)) {
		uint16_t limit;
		uint64_t base;
	} idtr = { sizeof(idt) - 1, (uint64_t)idt };

	for (unsigned p = 0; p < PINS; p++) {
		uint64_t h = (uint64_t)pin_stubs + 16 * p;

		idt[2 * (PIN_VECTOR + p)] = (h & 0xffff) | 0x10ull << 16 |
					    0x8e00ull << 32 | (h & 0xffff0000ull) << 32;
		idt[2 * (PIN_VECTOR + p) + 1] = h >> 32;
		/* Fixed, physical, edge, active high, unmasked, to APIC 0. */
		ioapic_write(0x10 + 2 * p, PIN_VECTOR + p);
		ioapic_write(0x11 + 2 * p, 0);
	}
	__asm__ volatile("lidt %0" : : "m"(idtr));
	outb(0x21, 0xff);			/* 8259s masked: no ExtINT */
	outb(0xa1, 0xff);
	outb(0x43, 0x34);			/* PIT 0: rate generator */
	outb(0x40, 1193 & 0xff);		/* 1 kHz */
	outb(0x40, 1193 >> 8);
	__asm__ volatile("sti");
	for (unsigned long i = 0; i < 20000000 && !pins_fired; i++)
		__asm__ volatile("pause");
	__asm__ volatile("cli");
	return pins_fired;
}

void smp_main(void)
{
	uint64_t mpf = scan(0, 0x400), mpc, end, e;
	unsigned cpus = 0, bsps = 0, irq0_pin = 0xff;
	uint32_t expect = 0, started;

	if (!mpf)
		mpf = scan(639 * 0x400, 0x400);
	if (!mpf)
		mpf = scan(0xf0000, 0x10000);
	if (!mpf && rd(0x40e, 2))
		mpf = scan(rd(0x40e, 2) << 4, 0x400);
	if (!mpf) {
		puts_dbg("FAIL no MP floating pointer\n");
		guest_exit(EXIT_BAD);
	}
	mpc = rd(mpf + 4, 4);
	puts_dbg("mpf");
	field("addr", mpf, 8);
	field("physptr", mpc, 8);
	field("length", rd(mpf + 8, 1), 2);
	field("spec", rd(mpf + 9, 1), 2);
	field("features", rd(mpf + 11, 5), 10);
	puts_dbg("\n");
	/* check_mpc: "PCMP", checksum over its length, spec, LAPIC address. */
	check(rd(mpc, 4) == 0x504d4350, "PCMP signature");
	end = mpc + rd(mpc + 4, 2);
	check(!sum(mpc, end - mpc), "configuration table checksum");
	puts_dbg("mpc");
	field("length", end - mpc, 4);
	field("spec", rd(mpc + 6, 1), 2);
	field("count", rd(mpc + 34, 2), 4);
	field("lapic", rd(mpc + 36, 4), 8);
	puts_dbg(" oem=\"");
	for (unsigned i = 0; i < 20; i++)
		outb(0xe9, (uint8_t)rd(mpc + 8 + i, 1));
	puts_dbg("\"\n");
	for (e = mpc + 44; e < end;) {
		switch (rd(e, 1)) {
		case 0:
			puts_dbg("cpu");
			field("apic", rd(e + 1, 1), 2);
			field("ver", rd(e + 2, 1), 2);
			field("flags", rd(e + 3, 1), 2);
			puts_dbg("\n");
			if (rd(e + 3, 1) & 1) {
				cpus++;
				if (rd(e + 3, 1) & 2)
					bsps++;
				else if (rd(e + 1, 1) < 32)
					expect |= 1u << rd(e + 1, 1);
			}
			e += 20;
			break;
		case 1:
			puts_dbg("bus");
			field("id", rd(e + 1, 1), 2);
			puts_dbg(" type=\"");
			for (unsigned i = 0; i < 6; i++)
				outb(0xe9, (uint8_t)rd(e + 2 + i, 1));
			puts_dbg("\"\n");
			e += 8;
			break;
		case 2:
			puts_dbg("ioapic");
			field("id", rd(e + 1, 1), 2);
			field("ver", rd(e + 2, 1), 2);
			field("flags", rd(e + 3, 1), 2);
			field("addr", rd(e + 4, 4), 8);
			puts_dbg("\n");
			e += 8;
			break;
		case 3:
		case 4:
			puts_dbg(rd(e, 1) == 3 ? "intsrc" : "lintsrc");
			field("type", rd(e + 1, 1), 2);
			field("flags", rd(e + 2, 2), 4);
			field("bus", rd(e + 4, 1), 2);
			field("irq", rd(e + 5, 1), 2);
			field("apic", rd(e + 6, 1), 2);
			field(rd(e, 1) == 3 ? "pin" : "lint", rd(e + 7, 1), 2);
			puts_dbg("\n");
			if (rd(e, 1) == 3 && rd(e + 1, 1) == 0 && rd(e + 5, 1) == 0)
				irq0_pin = (unsigned)rd(e + 7, 1);
			e += 8;
			break;
		default:
			puts_dbg("FAIL unknown entry type\n");
			guest_exit(EXIT_BAD);
		}
	}
	puts_dbg("processors");
	field("count", cpus, 2);
	field("bsp", bsps, 2);
	puts_dbg("\n");
	check(bsps == 1, "exactly one BSP");

	lapic_write(0xf0, 0x1ff);			/* software-enable */
	started = start_aps(expect);
	puts_dbg("aps");
	field("expected", expect, 8);
	field("started", started, 8);
	puts_dbg("\n");
	check(started == expect, "every listed AP started");

	uint32_t pins = pit_pins();

	puts_dbg("pit");
	field("pins", pins, 8);
	field("table_pin", irq0_pin, 2);
	puts_dbg("\n");
	check(pins == 1u << irq0_pin, "IRQ0 arrives on the MP table's pin");
	report_exit();
}
