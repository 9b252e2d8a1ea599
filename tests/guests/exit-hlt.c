// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * HLT.  vsrv always has KVM's in-kernel LAPIC, so HLT never reaches the
 * VMM: the vCPU sleeps in the kernel until an interrupt arrives.
 *   mode=timer (default): arms the LAPIC timer, halts with interrupts on,
 *     is woken by the timer's interrupt and exits with 0.
 *   mode=forever: halts with interrupts off.  Nothing can wake it: the
 *     VMM sleeps too (using no CPU) until it is killed.
 */
#include "guest.h"

#define TIMER_VECTOR	0x40
#define APIC_EOI	0xb0
#define APIC_SVR	0xf0
#define APIC_LVT_TIMER	0x320
#define APIC_TIMER_INIT	0x380
#define APIC_TIMER_DIV	0x3e0

static volatile unsigned ticks;

static void on_timer(struct trap_frame *f)
{
	ticks++;
	mmio_write32(LAPIC_BASE + APIC_EOI, 0);
}

int main(void)
{
	char mode[16];

	if (rt_arg_str("mode", mode, sizeof(mode)) && rt_streq(mode, "forever")) {
		puts_dbg("halting with interrupts disabled\n");
		for (;;)
			__asm__ volatile("cli; hlt");
	}
	/* The legacy PICs stay quiet: only the LAPIC timer may wake us. */
	outb(0x21, 0xff);
	outb(0xa1, 0xff);
	rt_set_handler(TIMER_VECTOR, on_timer);
	mmio_write32(LAPIC_BASE + APIC_SVR, 0x1ff);
	mmio_write32(LAPIC_BASE + APIC_TIMER_DIV, 0xb);		/* divide by 1 */
	mmio_write32(LAPIC_BASE + APIC_LVT_TIMER, TIMER_VECTOR);	/* one-shot */
	mmio_write32(LAPIC_BASE + APIC_TIMER_INIT, 1000000);
	puts_dbg("halting with interrupts enabled\n");
	/* sti's shadow covers hlt: the interrupt cannot slip in between. */
	while (!ticks)
		__asm__ volatile("sti; hlt; cli");
	rt_printf("woken by vector 0x%x, %u tick\n", TIMER_VECTOR, ticks);
	return 0;
}
