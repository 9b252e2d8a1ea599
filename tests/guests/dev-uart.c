// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The UART's registers, polled: reset values, the divisor latch, the
 * sequences Linux's 8250 autoconfig and startup run (IER test, FIFO bits,
 * EFR and 16750 probes, loopback, THRE test), the interrupt identification
 * in every state, overruns, FIFO trigger levels, 16450 mode; then output
 * the test compares byte for byte on the console.  Prints "uart ok" and
 * exits 0, or a FAIL line per difference and exits 1.
 */
#include "dev-guest.h"

#define IER	(COM1 + 1)
#define IIR	(COM1 + 2)
#define FCR	(COM1 + 2)
#define LCR	(COM1 + 3)
#define MCR	(COM1 + 4)
#define LSR	(COM1 + 5)
#define MSR	(COM1 + 6)
#define SCR	(COM1 + 7)

static void reset_values(void)
{
	expect("IER at reset", inb(IER), 0x00);
	expect("IIR at reset", inb(IIR), 0x01);
	expect("LCR at reset", inb(LCR), 0x00);
	expect("MCR at reset", inb(MCR), 0x00);
	expect("LSR at reset", inb(LSR), 0x60);
	expect("MSR at reset", inb(MSR), 0xb0);
	expect("SCR at reset", inb(SCR), 0x00);
	outb(SCR, 0xa5);
	expect("SCR", inb(SCR), 0xa5);
	/* A word access is two registers: MSR, then SCR. */
	expect("inw MSR+SCR", inw(MSR), 0xa5b0);
}

static void divisor_latch(void)
{
	outb(IER, 0x05);
	outb(LCR, 0x83);
	outb(COM1, 0x01);
	outb(IER, 0x02);
	expect("DLL", inb(COM1), 0x01);
	expect("DLM", inb(IER), 0x02);
	expect("LCR with DLAB", inb(LCR), 0x83);
	outb(LCR, 0x03);
	expect("IER kept under DLAB", inb(IER), 0x05);
	expect("LCR", inb(LCR), 0x03);
	outb(IER, 0);
	outb(LCR, 0);
}

/* autoconfig(): the IER existence test and the type probes. */
static void autoconfig(void)
{
	outb(IER, 0);
	expect("IER test 0", inb(IER) & 0x0f, 0);
	outb(IER, 0x0f);
	expect("IER test 0x0f", inb(IER), 0x0f);
	outb(IER, 0xff);
	expect("IER bits 4-7 (UUE) read 0", inb(IER), 0x0f);
	outb(IER, 0);
	outb(FCR, 0x01);
	expect("IIR FIFO bits: a 16550A", inb(IIR), 0xc1);
	outb(LCR, 0xbf);
	check("EFR probe reads non-zero (no EFR)", inb(IIR) != 0);
	outb(LCR, 0);
	outb(FCR, 0x21);
	expect("IIR bit 5 (no 64-byte FIFO)", inb(IIR), 0xc1);
	outb(FCR, 0x00);
	expect("IIR with the FIFO off", inb(IIR), 0x01);
}

static void loopback_msr(void)
{
	outb(MCR, 0x1a);			/* LOOP | OUT2 | RTS */
	expect("MCR", inb(MCR), 0x1a);
	expect("loopback MSR: CTS DCD, DSR delta", inb(MSR), 0x92);
	expect("MSR deltas cleared by reading", inb(MSR), 0x90);
	outb(MCR, 0x15);			/* LOOP | OUT1 | DTR */
	expect("loopback MSR: DSR RI", inb(MSR), 0x6b);
	outb(MCR, 0x10);
	expect("loopback MSR: RI trailing edge", inb(MSR), 0x06);
	outb(MCR, 0x00);
	expect("MSR after loopback", inb(MSR), 0xbb);
	expect("MSR", inb(MSR), 0xb0);
}

static void thre(void)
{
	outb(FCR, 0x07);
	outb(IER, 0x02);
	expect("THRE raised by enabling it", inb(IIR), 0xc2);
	expect("THRE cleared by reading IIR", inb(IIR), 0xc1);
	outb(IER, 0);
	expect("IIR with IER 0", inb(IIR), 0xc1);
	outb(IER, 0x02);
	expect("THRE raised again", inb(IIR), 0xc2);
	outb(IER, 0);
	/* serial8250_startup's TXEN test */
	outb(IER, 0x02);
	expect("TXEN test LSR", inb(LSR), 0x60);
	expect("TXEN test IIR", inb(IIR), 0xc2);
	outb(IER, 0);
	outb(MCR, 0x10);
	expect("MSR entering loopback", inb(MSR), 0x0b);
	outb(IER, 0x02);
	expect("THRE", inb(IIR), 0xc2);
	expect("THRE read", inb(IIR), 0xc1);
	outb(COM1, 'x');
	expect("THRE again after a byte is sent", inb(IIR), 0xc2);
	outb(IER, 0);
	expect("LSR with a looped byte", inb(LSR), 0x61);
	expect("looped byte", inb(COM1), 'x');
	expect("LSR empty", inb(LSR), 0x60);
}

static void receive(void)
{
	outb(FCR, 0x47);			/* trigger 4 */
	outb(IER, 0x01);
	outb(COM1, 'a');
	expect("1 byte under the trigger: timeout", inb(IIR), 0xcc);
	outb(COM1, 'b');
	outb(COM1, 'c');
	outb(COM1, 'd');
	expect("4 bytes: data available", inb(IIR), 0xc4);
	expect("RBR a", inb(COM1), 'a');
	expect("3 bytes: timeout", inb(IIR), 0xcc);
	expect("RBR b", inb(COM1), 'b');
	expect("RBR c", inb(COM1), 'c');
	expect("RBR d", inb(COM1), 'd');
	expect("IIR drained", inb(IIR), 0xc1);
	expect("LSR drained", inb(LSR), 0x60);

	/* Overrun: the 17th byte is lost, OE raises a line status interrupt. */
	outb(IER, 0x05);
	for (int i = 0; i < 17; i++)
		outb(COM1, (uint8_t)(0x30 + i));
	expect("overrun: line status", inb(IIR), 0xc6);
	expect("overrun LSR", inb(LSR), 0x63);
	expect("OE cleared by reading LSR", inb(IIR), 0xc4);
	expect("LSR after", inb(LSR), 0x61);
	for (int i = 0; i < 16; i++)
		expect("FIFO byte", inb(COM1), (uint8_t)(0x30 + i));
	expect("LSR drained", inb(LSR), 0x60);
	expect("IIR drained", inb(IIR), 0xc1);

	outb(COM1, 'p');
	outb(COM1, 'q');
	expect("LSR before clearing", inb(LSR), 0x61);
	outb(FCR, 0x43);
	expect("LSR after FCR clears RX", inb(LSR), 0x60);
	expect("IIR after FCR clears RX", inb(IIR), 0xc1);

	outb(FCR, 0xc1);			/* trigger 14 */
	for (int i = 0; i < 13; i++)
		outb(COM1, 'z');
	expect("13 bytes under trigger 14", inb(IIR), 0xcc);
	outb(COM1, 'z');
	expect("14 bytes at trigger 14", inb(IIR), 0xc4);
	outb(FCR, 0xc3);
	expect("cleared", inb(IIR), 0xc1);

	/* 16450 mode: one byte, an overrun overwrites it. */
	outb(FCR, 0x00);
	expect("16450 IIR", inb(IIR), 0x01);
	outb(COM1, 'p');
	expect("16450 data", inb(IIR), 0x04);
	outb(COM1, 'q');
	expect("16450 overrun", inb(IIR), 0x06);
	expect("16450 overrun LSR", inb(LSR), 0x63);
	expect("16450 data after LSR", inb(IIR), 0x04);
	expect("16450 overwritten byte", inb(COM1), 'q');
	expect("16450 drained", inb(IIR), 0x01);
	expect("empty RBR reads the last byte", inb(COM1), 'q');
	expect("LSR", inb(LSR), 0x60);
}

static void modem_status(void)
{
	outb(IER, 0x08);
	expect("MSR, no deltas", inb(MSR), 0x00);
	outb(MCR, 0x12);			/* RTS: CTS rises */
	expect("modem status interrupt", inb(IIR), 0x00);
	expect("MSR DCTS", inb(MSR), 0x11);
	expect("modem status cleared", inb(IIR), 0x01);
}

/* Every source at once: served in the 16550's order. */
static void priorities(void)
{
	outb(FCR, 0x07);
	outb(IER, 0x0f);
	outb(MCR, 0x10);			/* CTS falls: DCTS */
	for (int i = 0; i < 17; i++)
		outb(COM1, (uint8_t)i);
	expect("first: line status", inb(IIR), 0xc6);
	expect("LSR", inb(LSR), 0x63);
	expect("second: data", inb(IIR), 0xc4);
	for (int i = 0; i < 16; i++)
		inb(COM1);
	expect("third: THRE", inb(IIR), 0xc2);
	expect("fourth: modem status", inb(IIR), 0xc0);
	expect("MSR", inb(MSR), 0x01);
	expect("none", inb(IIR), 0xc1);
	outb(IER, 0);
	outb(MCR, 0x03);
	expect("MSR out of loopback", inb(MSR), 0xbb);
}

static void output(void)
{
	const char *rep = "rep\n";
	uint64_t n = 4;

	outb(FCR, 0x07);
	uart_puts("hello, uart\n");
	outw(COM1, 0x0041);			/* THR 'A', IER 0 */
	uart_putc('\n');
	__asm__ volatile("rep outsb" : "+S"(rep), "+c"(n) : "d"(COM1) : "memory");
	for (int i = 0; i < 256; i++)
		uart_putc((char)i);
	uart_puts("\nend\n");
}

int guest_main(void)
{
	reset_values();
	divisor_latch();
	autoconfig();
	loopback_msr();
	thre();
	receive();
	modem_status();
	priorities();
	output();
	if (failures)
		return 1;
	puts_dbg("uart ok\n");
	return 0;
}
