// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Resets the machine the way the command line (--append) names, each as
 * Linux does it: "kbd" (reboot=k: command 0xFE to the keyboard controller),
 * "outport" (the controller's output port with the reset line low), "cf9"
 * and "cf9full" (reboot=p: the reset control register, warm 0x06 or cold
 * 0x0e, after the "hard reset" request 0x02, which alone resets nothing),
 * "triple" (reboot=t: a fault with no IDT).  Prints "reset: WORD" first.
 * Exits 1 if it is still running afterwards.
 */
#include "dev-guest.h"

static void cf9(uint8_t code)
{
	uint8_t v = inb(0xcf9) & (uint8_t)~code;

	outb(0xcf9, v | 0x02);
	expect("0xcf9 reads back the reset type", inb(0xcf9), 0x02);
	puts_dbg("cf9 0x02: still running\n");
	outb(0xcf9, v | code);
}

int guest_main(void)
{
	static const char *const words[] = { "kbd", "outport", "cf9", "cf9full", "triple" };
	const char *w = NULL;

	for (unsigned i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (cmdline_has(words[i]))
			w = words[i];
	if (!w) {
		puts_dbg("FAIL no reset method on the command line\n");
		return 1;
	}
	puts_dbg("reset: ");
	puts_dbg(w);
	puts_dbg("\n");
	switch (w[0] == 'c' ? (w[3] ? 'C' : 'c') : w[0]) {
	case 'k':
		while (inb(0x64) & 0x02)
			;
		outb(0x64, 0xfe);
		break;
	case 'o':
		outb(0x64, 0xd1);
		outb(0x60, 0x02);
		break;
	case 'c':
		cf9(0x06);
		break;
	case 'C':
		cf9(0x0e);
		break;
	case 't':
		triple_fault();
	}
	puts_dbg("FAIL still running after the reset\n");
	return 1;
}
