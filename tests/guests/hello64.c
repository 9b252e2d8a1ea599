// SPDX-License-Identifier: GPL-2.0-or-later
/* The smallest micro-guest: entered in 64-bit mode at CPL0, it prints a
 * line on the debug port and leaves through the exit port with 42. */
#include "guest.h"

__attribute__((section(".text.entry"), noreturn)) void _start(void)
{
	puts_dbg("hello from a 64-bit micro-guest\n");
	guest_exit(42);
}
