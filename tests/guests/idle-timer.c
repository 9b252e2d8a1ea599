// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * An idle guest: the local APIC timer in periodic mode at hz= interrupts a
 * second (default 1000, as a Linux guest's tick with HZ=1000), and the CPU
 * halted between them, as an idle kernel's idle loop is.  Used by
 * bench/vmm-run to measure what an idle VM costs the host, and by
 * tests/integration/test_idle.py.
 *
 *   ticks=N (default 100): after N interrupts the handler stops the timer;
 *     the guest prints the count and exits 0.  ticks=0: idles until killed.
 *
 * Output: "idle: LAPIC timer at 1000 Hz, halting between ticks\n", then
 * "idle: 100 ticks\n".
 *
 * The tick is as cheap as guest code can make it: an interrupt gate
 * straight to a handler that counts and writes the EOI (a few
 * instructions, no exits to the VMM: the LAPIC is KVM's), then back to
 * HLT.  KVM's LAPIC timer counts at 1 GHz (its bus cycle is 1 ns), so with
 * the divider at 1 the initial count is 10^9 / hz.
 */
#include "dev-guest.h"

#define TIMER_VEC	0x40
#define APIC_LVT_TIMER	0x320
#define APIC_TIMER_INIT	0x380
#define APIC_TIMER_DIV	0x3e0
#define LVT_MASKED	(1u << 16)
#define LVT_PERIODIC	(1u << 17)
#define APIC_BUS_HZ	1000000000ul

static volatile unsigned long ticks;
static unsigned long target;

__attribute__((interrupt)) static void on_tick(struct iframe *f)
{
	if (++ticks == target) {
		/* The last one: no more interrupts, so the count is exact. */
		mmio_write32(LAPIC + APIC_LVT_TIMER, LVT_MASKED | TIMER_VEC);
		mmio_write32(LAPIC + APIC_TIMER_INIT, 0);
	}
	lapic_eoi();
}

int guest_main(void)
{
	unsigned long hz = cmdline_num("hz", 1000);

	target = cmdline_num("ticks", 100);
	if (hz < 1 || hz > 100000)
		return 2;
	interrupts_init();
	idt_set(TIMER_VEC, on_tick);
	puts_dbg("idle: LAPIC timer at ");
	put_dec(hz, 1);
	puts_dbg(" Hz, halting between ticks\n");
	mmio_write32(LAPIC + APIC_TIMER_DIV, 0xb);		/* divide by 1 */
	mmio_write32(LAPIC + APIC_LVT_TIMER, LVT_PERIODIC | TIMER_VEC);
	mmio_write32(LAPIC + APIC_TIMER_INIT, (uint32_t)(APIC_BUS_HZ / hz));
	/* Interrupts are off but at the STI;HLT pair, whose shadow keeps a
	 * tick from slipping in between the test and the halt. */
	while (!target || ticks < target) {
		sti_hlt();
		cli();
	}
	puts_dbg("idle: ");
	put_dec(ticks, 1);
	puts_dbg(" ticks\n");
	return 0;
}
