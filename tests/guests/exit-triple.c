// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * A triple fault: with an empty IDT, #UD cannot be delivered, nor the #GP
 * or double fault that follow, and the CPU shuts down.  A PC resets; vsrv
 * run says "guest rebooted (vCPU 0: triple fault)" and exits with 3 under
 * --on-reboot exit, or boots the guest again.
 */
#include "guest.h"

int main(void)
{
	static const struct { uint16_t limit; uint64_t base; } __attribute__((packed))
		empty = { 0, 0 };

	puts_dbg("loading an empty IDT\n");
	__asm__ volatile("lidt %0; ud2" : : "m"(empty));
	return 1;
}
