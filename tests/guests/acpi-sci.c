// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The SCI and the power button micro-guest: from the tables (FADT's
 * SCI_INT and PM1a blocks, the MADT's interrupt source overrides) it
 * routes the SCI through the IOAPIC as the MADT says (level, active
 * high), and has the test device's port 0xf8 press the power button:
 *  1. with PWRBTN_EN clear: no SCI, but PWRBTN_STS is latched;
 *  2. enabling PWRBTN_EN raises the SCI at once; the handler clears
 *     PWRBTN_STS (write 1), which drops the level line: no second event,
 *     and the IOAPIC's remote IRR is clear after the EOI;
 *  3. a press with the event enabled: the SCI wakes the halted CPU, the
 *     handler sees PWRBTN_STS and clears it.
 * On hosts without hardware virtualization (kvm_pvm) a level-triggered
 * vector is delivered a second time after its EOI even when the line
 * has dropped (inside the first handler the local APIC shows it in IRR,
 * not ISR): so deliveries that find no status bit set are counted apart,
 * and at most one per event is allowed.  A line left high would be a
 * storm of them.
 * Then it proves the MADT's IRQ0 override true (the PIT's interrupt
 * arrives on the GSI it names) and powers off through S5 (status 0).
 */
#include "acpi-guest.h"

#define BUTTON_PORT	0xf8
#define IOAPIC_DEFAULT	0xfec00000ul
#define SCI_VECTOR	0x50
#define PIN_VECTOR	0x30		/* IOAPIC pin p -> 0x30 + p */
#define PINS		24

static uint16_t evt;
static volatile unsigned scis, events;
static volatile uint16_t sci_sts, sci_after;
static volatile uint32_t pins_fired;
static uint64_t ioapic = IOAPIC_DEFAULT;

static void lapic_eoi(void)
{
	mmio_write32(LAPIC_BASE + 0xb0, 0);
}

static void ioapic_write(unsigned reg, uint32_t v)
{
	mmio_write32(ioapic, reg);
	mmio_write32(ioapic + 0x10, v);
}

/* The OS's SCI handler: which fixed events are on, clear them. */
static void on_sci(struct trap_frame *f)
{
	uint16_t sts = inw(evt), en = inw((uint16_t)(evt + 2));

	scis++;
	if (sts & en & PM1_PWRBTN) {
		events++;
		sci_sts = sts;
		outw(evt, PM1_PWRBTN);
		sci_after = inw(evt);
	}
	lapic_eoi();
}

static void on_pin(struct trap_frame *f)
{
	pins_fired |= 1u << (f->vector - PIN_VECTOR);
	lapic_eoi();
}

/* Interrupts on for a while: whatever is pending arrives. */
static void window(unsigned long spins)
{
	__asm__ volatile("sti");
	for (unsigned long i = 0; i < spins; i++)
		__asm__ volatile("pause");
	__asm__ volatile("cli");
}

/* The MADT's override for ISA IRQ irq: its GSI and flags (the identity
 * and 0 when there is none). */
static void iso(uint64_t madt, unsigned irq, unsigned *gsi, unsigned *flags)
{
	uint64_t end = madt + rd(madt + 4, 4);

	*gsi = irq;
	*flags = 0;
	for (uint64_t e = madt + 44; e < end && rd(e + 1, 1); e += rd(e + 1, 1)) {
		if (rd(e, 1) == 1)
			ioapic = rd(e + 4, 4);
		if (rd(e, 1) == 2 && rd(e + 2, 1) == 0 && rd(e + 3, 1) == irq) {
			*gsi = (unsigned)rd(e + 4, 4);
			*flags = (unsigned)rd(e + 8, 2);
		}
	}
}

static void press(void)
{
	outb(BUTTON_PORT, 1);
}

/* Bit 14 of a redirection entry: a level interrupt not yet EOIed. */
static unsigned remote_irr(unsigned pin)
{
	mmio_write32(ioapic, 0x10 + 2 * pin);
	return mmio_read32(ioapic + 0x10) >> 14 & 1;
}

static void power_button(unsigned gsi, unsigned flags)
{
	/* Level when the trigger bits say 3, active low when polarity is 3;
	 * fixed delivery to APIC 0. */
	uint32_t low = SCI_VECTOR | ((flags >> 2 & 3) == 3 ? 1u << 15 : 0) |
		       ((flags & 3) == 3 ? 1u << 13 : 0);
	uint16_t en = (uint16_t)(evt + 2);
	unsigned before;
	int quiet;

	ioapic_write(0x11 + 2 * gsi, 0);
	ioapic_write(0x10 + 2 * gsi, low);
	outw(evt, 0xffff);		/* clear every status bit */
	outw(en, 0);

	press();
	window(2000);
	rt_printf("disabled: scis=%u sts=%04x\n", scis, inw(evt));
	check(scis == 0 && (inw(evt) & PM1_PWRBTN), "a press without PWRBTN_EN latches only");

	outw(en, PM1_PWRBTN);
	window(20000);
	quiet = scis <= 2 * events;
	rt_printf("enabled: events=%u sts=%04x after=%04x quiet=%d remote_irr=%u\n", events,
		  sci_sts, sci_after, quiet, remote_irr(gsi));
	check(events == 1 && (sci_sts & PM1_PWRBTN) && !(sci_after & PM1_PWRBTN) && quiet &&
	      !remote_irr(gsi), "enabling raises the SCI; clearing the status ends it");

	before = events;
	rt_printf("ready\n");
	press();
	while (events == before)
		__asm__ volatile("sti; hlt; cli");
	window(20000);
	quiet = scis <= 2 * events;
	rt_printf("pressed: events=%u sts=%04x after=%04x quiet=%d remote_irr=%u\n", events,
		  sci_sts, sci_after, quiet, remote_irr(gsi));
	check(events == 2 && (sci_sts & PM1_PWRBTN) && !(sci_after & PM1_PWRBTN) && quiet &&
	      !remote_irr(gsi), "the press raises the SCI; clearing the status ends it");
	ioapic_write(0x10 + 2 * gsi, 1u << 16);	/* masked */
}

/* Which pins the PIT's interrupt arrives on. */
static uint32_t pit_pins(void)
{
	for (unsigned p = 0; p < PINS; p++) {
		rt_set_handler(PIN_VECTOR + p, on_pin);
		ioapic_write(0x11 + 2 * p, 0);
		ioapic_write(0x10 + 2 * p, PIN_VECTOR + p);	/* edge, high */
	}
	outb(0x43, 0x34);			/* PIT 0: rate generator */
	outb(0x40, 1193 & 0xff);		/* 1 kHz */
	outb(0x40, 1193 >> 8);
	for (unsigned long i = 0; i < 20000000 && !pins_fired; i++)
		window(1);
	window(20000);
	for (unsigned p = 0; p < PINS; p++)
		ioapic_write(0x10 + 2 * p, 1u << 16);
	return pins_fired;
}

int main(void)
{
	uint64_t rsdp = rsdp_zero_page(), f, madt;
	unsigned sci_irq, sci_gsi, sci_flags, irq0_gsi, irq0_flags;
	uint32_t pins;

	f = find_table(rsdp, "FACP");
	madt = find_table(rsdp, "APIC");
	if (!f || !madt) {
		rt_printf("FAIL no FADT or MADT\n");
		return EXIT_BAD;
	}
	evt = (uint16_t)rd(f + FADT_X_PM1A_EVT + GAS_ADDRESS, 8);
	sci_irq = (unsigned)rd(f + FADT_SCI_INT, 2);
	iso(madt, sci_irq, &sci_gsi, &sci_flags);
	iso(madt, 0, &irq0_gsi, &irq0_flags);
	rt_printf("sci irq=%u gsi=%u flags=%04x pm1a_evt=%04x\n", sci_irq, sci_gsi, sci_flags,
		  evt);

	outb(0x21, 0xff);			/* 8259s masked */
	outb(0xa1, 0xff);
	mmio_write32(LAPIC_BASE + 0x80, 0);	/* TPR: take all */
	mmio_write32(LAPIC_BASE + 0xf0, 0x1ff);	/* enabled, spurious 0xff */
	rt_set_handler(SCI_VECTOR, on_sci);
	power_button(sci_gsi, sci_flags);

	pins = pit_pins();
	rt_printf("pit pins=%08x irq0_gsi=%u\n", pins, irq0_gsi);
	check(pins == 1u << irq0_gsi, "IRQ0 arrives on the MADT's GSI");
	s5_power_off(f, rd(f + FADT_X_DSDT, 8));
}
