// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The guest as an adversary: random reads and writes, of random widths, of
 * random values, in random order, to every port of the UART, the keyboard
 * controller, the reset control register, the RTC and ACPI's PM1 blocks
 * and PM timer (the VMM must stay up, under the sanitizers too).  The seed is the command line's "seed=N";
 * the writes that would reset the machine or power it off (SLP_EN) are
 * left out so that every run
 * does all its accesses.  Prints "fuzz done" and exits 0.
 */
#include "dev-guest.h"

#define ACCESSES	20000

static const uint16_t ports[] = {
	0x3f8, 0x3f9, 0x3fa, 0x3fb, 0x3fc, 0x3fd, 0x3fe, 0x3ff,
	0x60, 0x64, 0x70, 0x71, 0xcf9,
	0x600, 0x601, 0x602, 0x603, 0x604, 0x605, 0x608, 0x609, 0x60a, 0x60b,
};

static uint64_t state;

static uint64_t rnd(void)
{
	state ^= state << 13;
	state ^= state >> 7;
	state ^= state << 17;
	return state;
}

static uint64_t seed(void)
{
	const char *s = cmdline();
	uint64_t v = 0;

	for (; *s; s++)
		if (s[0] == 's' && s[1] == 'e' && s[2] == 'e' && s[3] == 'd' && s[4] == '=') {
			for (s += 5; *s >= '0' && *s <= '9'; s++)
				v = v * 10 + (uint64_t)(*s - '0');
			break;
		}
	return v * 0x9e3779b97f4a7c15ull + 1;
}

/* Whether a write resets the machine or powers it off: the keyboard
 * controller's pulse commands and output port (whose command it also
 * leaves out), the reset control register (only the first byte of a wider
 * access reaches these one-port devices), PM1a_CNT's SLP_EN (bit 13: bit
 * 5 of the byte at 0x605, whichever access carries it). */
static bool resets(uint16_t port, uint32_t v, unsigned width)
{
	uint8_t b = (uint8_t)v;

	if (port <= 0x605 && port + width > 0x605 && (v >> (8 * (0x605 - port)) & 0x20))
		return true;
	return (port == 0x64 && (b >= 0xf0 || b == 0xd1)) || (port == 0xcf9 && (b & 0x04));
}

int guest_main(void)
{
	state = seed();
	for (unsigned i = 0; i < ACCESSES; i++) {
		uint64_t r = rnd();
		uint16_t port = ports[r % (sizeof(ports) / sizeof(ports[0]))];
		unsigned width = 1u << ((r >> 8) % 3);
		uint32_t v = (uint32_t)(r >> 32);

		if ((r >> 16) & 1) {
			if (width == 1)
				inb(port);
			else if (width == 2)
				inw(port);
			else
				__asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
			continue;
		}
		/* Mostly small values, where the registers' meanings are. */
		if ((r >> 17) & 1)
			v &= 0x1f;
		if (resets(port, v, width))
			continue;
		if (width == 1)
			outb(port, (uint8_t)v);
		else if (width == 2)
			outw(port, (uint16_t)v);
		else
			outl(port, v);
	}
	puts_dbg("fuzz done\n");
	return 0;
}
