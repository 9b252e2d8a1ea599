// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * A loop of n=N iterations (default 10 million) at cpl=3 (default) or
 * cpl=0.  On a host that emulates guest kernel code, CPL3 runs natively
 * and CPL0 about a thousand times slower; the guest prints the sum (so
 * the loop cannot be skipped) and the TSC cycles it took.
 */
#include "guest.h"

static uint64_t n;

static void __attribute__((noreturn)) loop(void)
{
	uint64_t sum = 0, left = n, t0 = rdtsc(), t1;

	__asm__ volatile("1: add %1, %0\n\tdec %1\n\tjnz 1b" : "+r"(sum), "+r"(left));
	t1 = rdtsc();
	rt_printf("cpl %u: %lu iterations, sum %lu, %lu cycles\n", cpl(), n, sum, t1 - t0);
	guest_exit(0);
}

int main(void)
{
	n = rt_arg("n", 10000000);
	if (!n)
		return 2;
	if (rt_arg("cpl", 3) == 3)
		rt_enter_user(loop, RT_USER_STACK_TOP);
	loop();
}
