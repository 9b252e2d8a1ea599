// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Port I/O exits: every access size in both directions, and string I/O
 * (rep outs/ins with a count above one, which KVM hands the VMM as one
 * exit with `count` accesses).  cpl=3 on the command line runs the same
 * at CPL3 with IOPL=3, natively on hosts that emulate CPL0.
 *
 * Writes go to the debug port, which prints each byte; reads come from a
 * port nothing answers (all ones) and from the debug port (zeros).
 */
#include "guest.h"

static uint8_t buf[64];

static bool all(const uint8_t *p, unsigned n, uint8_t v)
{
	for (unsigned i = 0; i < n; i++)
		if (p[i] != v)
			return false;
	return true;
}

static void __attribute__((noreturn)) pio(void)
{
	static const char msg[] = "string I/O in one exit\n";

	rt_printf("pio at cpl %u\n", cpl());
	outb(DEBUG_PORT, 'A');
	outw(DEBUG_PORT, 'B' | 'C' << 8);
	outl(DEBUG_PORT, 'D' | 'E' << 8 | 'F' << 16 | (uint32_t)'\n' << 24);
	rt_printf("in unbacked: %x %x %x\n", inb(UNBACKED_PORT), inw(UNBACKED_PORT),
		  inl(UNBACKED_PORT));
	rt_printf("in debug: %x %x %x\n", inb(DEBUG_PORT), inw(DEBUG_PORT), inl(DEBUG_PORT));
	outsb(DEBUG_PORT, msg, sizeof(msg) - 1);
	outsw(DEBUG_PORT, "wwxxyyz\n", 4);
	for (unsigned i = 0; i < sizeof(buf); i++)
		buf[i] = 0x55;
	insb(UNBACKED_PORT, buf, 16);
	rt_printf("insb 16 unbacked: %s, next %x\n", all(buf, 16, 0xff) ? "all ff" : "wrong",
		  buf[16]);
	insl(DEBUG_PORT, buf, 4);
	rt_printf("insl 4 debug: %s, next %x\n", all(buf, 16, 0) ? "all 0" : "wrong", buf[16]);
	guest_exit(7);
}

int main(void)
{
	if (rt_arg("cpl", 0) == 3)
		rt_enter_user(pio, RT_USER_STACK_TOP);
	pio();
}
