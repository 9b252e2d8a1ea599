/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * What the boot and SMP micro-guests share to report: reading physical
 * memory byte by byte (little-endian, by the protocol documents' offsets,
 * never through the VMM's structs), hex fields on the debug port, and
 * checks that mark the run bad.  One translation unit per guest.
 */
#ifndef BOOT_PRINT_H
#define BOOT_PRINT_H

#include <stdint.h>

#include "guest.h"

#define EXIT_OK		0x55
#define EXIT_BAD	0x66

static int report_bad;

static inline uint64_t rd(uint64_t addr, unsigned bytes)
{
	const volatile uint8_t *p;
	uint64_t v = 0;

	/* Low physical addresses are real here: keep the compiler from
	 * treating them as offsets from a null pointer. */
	__asm__("" : "+r"(addr));
	p = (const volatile uint8_t *)(uintptr_t)addr;
	while (bytes--)
		v = v << 8 | p[bytes];
	return v;
}

static inline void hex(uint64_t v, unsigned digits)
{
	static const char x[] = "0123456789abcdef";

	while (digits--)
		outb(0xe9, (uint8_t)x[(v >> (4 * digits)) & 0xf]);
}

/* " name=value" with the field's width in hex digits. */
static inline void field(const char *name, uint64_t v, unsigned digits)
{
	puts_dbg(" ");
	puts_dbg(name);
	puts_dbg("=");
	hex(v, digits);
}

static inline void check(int ok, const char *what)
{
	if (!ok) {
		puts_dbg("FAIL ");
		puts_dbg(what);
		puts_dbg("\n");
		report_bad = 1;
	}
}

static inline void __attribute__((noreturn)) report_exit(void)
{
	puts_dbg(report_bad ? "result bad\n" : "result ok\n");
	guest_exit(report_bad ? EXIT_BAD : EXIT_OK);
}

#endif
