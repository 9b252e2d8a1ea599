// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * SMP start-up as an operating system does it: the boot CPU sends INIT
 * and then SIPI (twice, as the MP specification says) to all the others
 * through KVM's in-kernel LAPIC; each AP runs the trampoline in
 * smp-tramp.S from real mode to long mode, records its APIC ids and
 * counts itself in with LOCK XADD.  The boot CPU waits for as many as
 * CPUID says there are, prints them in APIC id order and exits with the
 * number of CPUs that ran.
 *
 * The VMM leaves APs waiting for INIT/SIPI (KVM_MP_STATE_INIT_RECEIVED):
 * none may run before the boot CPU starts them.
 */
#include "guest.h"

#define TRAMP_BASE	0x8000
#define APIC_SVR	0xf0
#define APIC_ICR_LO	0x300
#define APIC_ICR_HI	0x310
#define ICR_ALL_BUT_SELF	(3u << 18)
#define ICR_ASSERT	(1u << 14)
#define ICR_INIT	(5u << 8)
#define ICR_STARTUP	(6u << 8)
#define ICR_PENDING	(1u << 12)
#define MAX_CPUS	16

extern const uint8_t smp_tramp_start[], smp_tramp_end[];
extern uint8_t smp_tramp_cr3[], smp_tramp_gdtr[], smp_tramp_count[];
uint8_t smp_ap_stacks[MAX_CPUS * 16384] __attribute__((aligned(16)));
void smp_ap_main(unsigned place);

static struct { uint32_t apic, x2apic, lapic; } seen[MAX_CPUS];
static volatile uint32_t arrived;

void smp_ap_main(unsigned place)
{
	uint32_t r[4];

	if (place >= MAX_CPUS)
		return;
	cpuid(1, 0, r);
	seen[place].apic = r[1] >> 24;
	cpuid(0xb, 0, r);
	seen[place].x2apic = r[3];
	seen[place].lapic = mmio_read32(LAPIC_BASE + 0x20) >> 24;
	__atomic_fetch_add(&arrived, 1, __ATOMIC_SEQ_CST);	/* lock xadd */
}

static void icr(uint32_t v)
{
	mmio_write32(LAPIC_BASE + APIC_ICR_HI, 0);
	mmio_write32(LAPIC_BASE + APIC_ICR_LO, v);
	while (mmio_read32(LAPIC_BASE + APIC_ICR_LO) & ICR_PENDING)
		;
}

static void delay(unsigned loops)
{
	for (volatile unsigned i = 0; i < loops; i++)
		;
}

int main(void)
{
	uint8_t *tramp = (uint8_t *)TRAMP_BASE;
	uint32_t r[4], n, aps;
	uint64_t t0;

	cpuid(1, 0, r);
	n = (r[1] >> 16) & 0xff;
	if (n < 1 || n > MAX_CPUS)
		return 0xff;
	rt_printf("bsp: apic id %u, %u cpus; %u running before INIT/SIPI\n", r[1] >> 24, n,
		  1 + arrived);
	for (const uint8_t *p = smp_tramp_start; p < smp_tramp_end; p++)
		*tramp++ = *p;
	*(uint32_t *)(TRAMP_BASE + (smp_tramp_cr3 - smp_tramp_start)) = (uintptr_t)rt_pml4;
	*(uint16_t *)(TRAMP_BASE + (smp_tramp_gdtr - smp_tramp_start)) = rt_gdtr.limit;
	*(uint32_t *)(TRAMP_BASE + (smp_tramp_gdtr - smp_tramp_start) + 2) = (uint32_t)rt_gdtr.base;
	mmio_write32(LAPIC_BASE + APIC_SVR, 0x1ff);
	icr(ICR_ALL_BUT_SELF | ICR_ASSERT | ICR_INIT);
	delay(1000);
	for (int i = 0; i < 2; i++) {
		icr(ICR_ALL_BUT_SELF | ICR_ASSERT | ICR_STARTUP | (TRAMP_BASE >> 12));
		delay(100);
	}
	/* Ten seconds at 1 GHz: generous for emulated real mode. */
	t0 = rdtsc();
	while (arrived < n - 1 && rdtsc() - t0 < 10000000000ull)
		__asm__ volatile("pause");
	aps = arrived;
	for (uint32_t id = 0; id < 256; id++)
		for (uint32_t i = 0; i < aps && i < MAX_CPUS; i++)
			if (seen[i].apic == id)
				rt_printf("ap: apic id %u, x2apic id %u, lapic id %u\n", seen[i].apic,
					  seen[i].x2apic, seen[i].lapic);
	rt_printf("%u cpus running\n", 1 + aps);
	return (int)(1 + aps);
}
