// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Exactly n=N port writes (to port 0x80, which the VMM ignores) and m=M
 * MMIO reads (of an unbacked address), then the exit port: vsrv run
 * --stats must count N + 1 port I/O exits and M MMIO exits.  Nothing is
 * printed, since every printed byte is an exit too.
 */
#include "guest.h"

static void __attribute__((noreturn)) count(void)
{
	uint64_t n = rt_arg("n", 100), m = rt_arg("m", 0);

	for (uint64_t i = 0; i < n; i++)
		outb(0x80, (uint8_t)i);
	for (uint64_t i = 0; i < m; i++)
		(void)mmio_read32(UNBACKED_MMIO);
	guest_exit(0);
}

int main(void)
{
	if (rt_arg("cpl", 0) == 3)
		rt_enter_user(count, RT_USER_STACK_TOP);
	count();
}
