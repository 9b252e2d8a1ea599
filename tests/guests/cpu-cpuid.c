// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * CPUID as the VMM sets it: leaf 1's APIC id and logical processor count,
 * the x2APIC topology of leaf 0xB, and KVM's leaves, whose paravirtual
 * feature bits 9, 11 and 13 (TLB flush, send IPI, sched yield) the host
 * quirks clear.  Run at CPL0, where KVM answers from the VMM's table.
 */
#include "guest.h"

int main(void)
{
	uint32_t r[4];
	char sig[13];

	cpuid(1, 0, r);
	rt_printf("leaf 1: apic id %u, count %u, htt %u, hypervisor %u\n", r[1] >> 24,
		  (r[1] >> 16) & 0xff, (r[3] >> 28) & 1, r[2] >> 31);
	for (uint32_t i = 0; i < 3; i++) {
		cpuid(0xb, i, r);
		rt_printf("leaf 0xb.%u: shift %u, count %u, level %u type %u, x2apic id %u\n",
			  i, r[0] & 0x1f, r[1] & 0xffff, r[2] & 0xff, (r[2] >> 8) & 0xff, r[3]);
	}
	cpuid(0x40000000, 0, r);
	for (int i = 0; i < 4; i++) {
		sig[i] = (char)(r[1] >> (8 * i));
		sig[4 + i] = (char)(r[2] >> (8 * i));
		sig[8 + i] = (char)(r[3] >> (8 * i));
	}
	sig[12] = 0;
	rt_printf("leaf 0x40000000: %s\n", sig);
	cpuid(0x40000001, 0, r);
	rt_printf("leaf 0x40000001: pv_tlb_flush %u, pv_send_ipi %u, pv_sched_yield %u\n",
		  (r[0] >> 9) & 1, (r[0] >> 11) & 1, (r[0] >> 13) & 1);
	return 0;
}
