/* SPDX-License-Identifier: GPL-2.0-or-later */
/* What micro-guests share: port I/O and the test device's two ports. */
#ifndef GUEST_H
#define GUEST_H

#include <stdint.h>

static inline void outb(uint16_t port, uint8_t v)
{
	__asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static inline void outl(uint16_t port, uint32_t v)
{
	__asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port));
}

static inline uint8_t inb(uint16_t port)
{
	uint8_t v;

	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static inline void puts_dbg(const char *s)
{
	while (*s)
		outb(0xe9, (uint8_t)*s++);
}

static inline void __attribute__((noreturn)) guest_exit(uint32_t code)
{
	outl(0xf4, code);
	for (;;)
		__asm__ volatile("hlt");
}

#endif
