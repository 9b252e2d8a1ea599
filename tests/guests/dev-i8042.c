// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The keyboard controller as Linux's i8042 driver and atkbd probe it:
 * status, self test, interface tests, the command byte, port enables, the
 * AUX loopback and an empty mouse port, the keyboard's answers, IRQ 1
 * through the IOAPIC for each byte; then "i8042 ok" on the debug port and
 * a reset through command 0xFE.  FAIL lines and exit 1 on a difference.
 */
#include "dev-guest.h"

#define DATA		0x60
#define CMD		0x64
#define VEC_KBD		0x31

static volatile uint8_t got[16];
static volatile unsigned n_got;

__attribute__((interrupt)) static void kbd_isr(struct iframe *f)
{
	uint8_t v = inb(DATA);

	if (n_got < 16)
		got[n_got] = v;
	n_got++;
	lapic_eoi();
}

/* Reads one byte the controller has, checking the status that goes with
 * it (OBF and whether it came from the mouse port). */
static void expect_byte(const char *what, uint8_t want, uint8_t want_status)
{
	expect(what, inb(CMD) & 0x61, want_status);
	expect(what, inb(DATA), want);
}

static void command(uint8_t c)
{
	outb(CMD, c);
}

static void controller(void)
{
	expect("status at start", inb(CMD), 0x14);
	command(0xaa);
	expect("status with the self test answer", inb(CMD), 0x1d);
	expect("self test", inb(DATA), 0x55);
	expect("status after", inb(CMD), 0x1c);
	command(0xab);
	expect_byte("keyboard port test", 0x00, 0x01);
	command(0xa9);
	expect_byte("mouse port test", 0x00, 0x01);
	command(0x20);
	expect_byte("command byte as firmware leaves it", 0x65, 0x01);
	command(0x60);
	outb(DATA, 0x44);
	expect("status after a data write", inb(CMD) & 0x08, 0x00);
	command(0x20);
	expect_byte("command byte written", 0x44, 0x01);
	command(0xad);
	command(0x20);
	expect_byte("keyboard port disabled", 0x54, 0x01);
	command(0xae);
	command(0xa8);
	command(0x20);
	expect_byte("mouse port enabled", 0x44, 0x01);
	command(0xa7);
	command(0x20);
	expect_byte("mouse port disabled", 0x64, 0x01);
	command(0xd0);
	expect_byte("output port", 0x03, 0x01);
	command(0xd2);
	outb(DATA, 0x42);
	expect_byte("write keyboard output buffer", 0x42, 0x01);
	command(0xd3);
	outb(DATA, 0x5a);
	expect_byte("AUX loopback", 0x5a, 0x21);
	command(0xd4);
	outb(DATA, 0xf2);
	expect_byte("nothing on the mouse port: timeout", 0xfe, 0x61);
	expect("timeout cleared by the read", inb(CMD) & 0x40, 0);
	command(0x12);		/* unknown: ignored */
	expect("unknown command: no answer", inb(CMD) & 0x01, 0);
}

static void keyboard(void)
{
	outb(DATA, 0xff);
	expect_byte("keyboard reset ack", 0xfa, 0x01);
	expect_byte("keyboard self test", 0xaa, 0x01);
	outb(DATA, 0xf2);
	expect_byte("identify ack", 0xfa, 0x01);
	expect_byte("identify 1", 0xab, 0x01);
	expect_byte("identify 2 (translated)", 0x41, 0x01);
	outb(DATA, 0xed);
	expect_byte("set LEDs ack", 0xfa, 0x01);
	outb(DATA, 0x07);
	expect_byte("LEDs ack", 0xfa, 0x01);
	outb(DATA, 0xf0);
	expect_byte("scan code set ack", 0xfa, 0x01);
	outb(DATA, 0x00);
	expect_byte("get set ack", 0xfa, 0x01);
	expect_byte("scan code set 2", 0x02, 0x01);
	outb(DATA, 0xee);
	expect_byte("echo", 0xee, 0x01);
	outb(DATA, 0x01);
	expect_byte("unknown keyboard command", 0xfe, 0x01);
	expect("nothing left", inb(CMD) & 0x01, 0);
}

/* IRQ 1 for each byte, once the command byte enables it. */
static void interrupts(void)
{
	interrupts_init();
	idt_set(VEC_KBD, kbd_isr);
	ioapic_route(1, VEC_KBD);
	command(0x60);
	outb(DATA, 0x45);		/* keyboard interrupt, translation, SYS */
	sti();
	command(0xd2);
	outb(DATA, 0x99);
	for (int i = 0; i < 100000 && n_got < 1; i++)
		;
	outb(DATA, 0xff);		/* two bytes: two interrupts */
	for (int i = 0; i < 100000 && n_got < 3; i++)
		;
	/* The mouse port's interrupt is off: no IRQ 1 for its byte. */
	command(0xd3);
	outb(DATA, 0x77);
	for (int i = 0; i < 1000; i++)
		;
	cli();
	expect("IRQ 1 count", n_got, 3);
	expect("byte 1 by interrupt", got[0], 0x99);
	expect("byte 2 by interrupt", got[1], 0xfa);
	expect("byte 3 by interrupt", got[2], 0xaa);
	expect_byte("mouse byte polled", 0x77, 0x21);
}

int guest_main(void)
{
	controller();
	keyboard();
	interrupts();
	if (failures)
		return 1;
	puts_dbg("i8042 ok\n");
	command(0xfe);
	for (;;)
		__asm__ volatile("hlt");
}
