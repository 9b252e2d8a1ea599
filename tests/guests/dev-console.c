// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * A polled serial console for the console backends' tests.  Prints
 * "ready\n", then for each byte received:
 *   Q  prints "bye\n" and exits 0
 *   W  waits a second or two (the RTC ticking twice), then prints 200
 *      numbered lines and "end\n", and "done\n" on the debug port
 *   B  prints 96 KiB in 4 KiB chunks through REP OUTSB ("chunk NNNNNN\n",
 *      dots, "\n"), then "end\n", and "done\n" on the debug port
 *   C  triple-faults (no IDT)
 *   X  executes XSAVE, which this project's test hosts cannot emulate
 *   anything else is echoed.
 */
#include "dev-guest.h"

#define CHUNK		4096
#define BIG_CHUNKS	24

static char chunk[CHUNK] __attribute__((aligned(64)));

static void wait_ticks(int n)
{
	uint8_t s = cmos_read(0);

	while (n) {
		uint8_t t = cmos_read(0);

		if (t != s) {
			s = t;
			n--;
		}
	}
}

static void lines(void)
{
	wait_ticks(2);
	for (unsigned i = 0; i < 200; i++) {
		uart_puts("line ");
		/* Three digits by hand: put_dec prints on the debug port. */
		uart_putc((char)('0' + i / 100));
		uart_putc((char)('0' + i / 10 % 10));
		uart_putc((char)('0' + i % 10));
		uart_putc('\n');
	}
	uart_puts("end\n");
	puts_dbg("done\n");
}

static void big(void)
{
	for (int i = 13; i < CHUNK - 1; i++)
		chunk[i] = '.';
	chunk[CHUNK - 1] = '\n';
	for (unsigned k = 0; k < BIG_CHUNKS; k++) {
		const char *p = chunk;
		uint64_t n = CHUNK;
		unsigned v = k;

		__builtin_memcpy(chunk, "chunk 000000\n", 13);
		for (int d = 11; d >= 6; d--) {
			chunk[d] = (char)('0' + v % 10);
			v /= 10;
		}
		__asm__ volatile("rep outsb" : "+S"(p), "+c"(n) : "d"(COM1) : "memory");
	}
	uart_puts("end\n");
	puts_dbg("done\n");
}

int guest_main(void)
{
	outb(COM1 + 3, 0x03);
	outb(COM1 + 2, 0x07);
	outb(COM1 + 4, 0x03);
	uart_puts("ready\n");
	for (;;) {
		uint8_t c = uart_getc();

		switch (c) {
		case 'Q':
			uart_puts("bye\n");
			return 0;
		case 'W':
			lines();
			break;
		case 'B':
			big();
			break;
		case 'C':
			triple_fault();
		case 'X':
			__asm__ volatile("xsave (%0)" : : "r"(chunk), "a"(1), "d"(0) : "memory");
			break;
		default:
			uart_putc((char)c);
		}
	}
}
