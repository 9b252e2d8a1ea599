// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The UART driven by its interrupt, as Linux's 8250 driver drives it: IRQ
 * 4 routed through the IOAPIC, the FIFO on with a trigger of 8, an
 * interrupt handler that serves the IIR until it says "none" (received
 * data, character timeout, THRE), and transmission from a buffer refilled
 * on THRE interrupts, 16 bytes at a time.
 *
 * It prints "ready\n" (polled), then echoes what it receives until a 'q',
 * says "bye\n" and exits 0 if it has seen each kind of interrupt (the
 * test sends a short line, which only the timeout reports, and a long one,
 * which fills the FIFO past the trigger).  Exit 1 with FAIL lines if not.
 */
#include "dev-guest.h"

#define VEC_UART	0x34
#define BUF		4096

static volatile uint8_t rx[BUF], tx[BUF];
static volatile unsigned rx_w, rx_r, tx_w, tx_r;
static volatile unsigned n_data, n_timeout, n_thre, n_irq;

static void drain_rx(void)
{
	while (inb(COM1 + 5) & 0x01)
		rx[rx_w++ % BUF] = inb(COM1);
}

static void fill_tx(void)
{
	for (int i = 0; i < 16 && tx_r != tx_w; i++)
		outb(COM1, tx[tx_r++ % BUF]);
	if (tx_r == tx_w)
		outb(COM1 + 1, 0x01);		/* all sent: THRE off */
}

__attribute__((interrupt)) static void uart_isr(struct iframe *f)
{
	n_irq++;
	for (;;) {
		uint8_t iir = inb(COM1 + 2);

		if ((iir & 0xc0) != 0xc0) {
			puts_dbg("FAIL IIR without the FIFO bits\n");
			failures++;
		}
		switch (iir & 0x0f) {
		case 0x01:
			lapic_eoi();
			return;
		case 0x04:
			n_data++;
			drain_rx();
			break;
		case 0x0c:
			n_timeout++;
			drain_rx();
			break;
		case 0x02:
			n_thre++;
			fill_tx();
			break;
		default:
			puts_dbg("FAIL unexpected IIR 0x");
			put_hex(iir, 2);
			puts_dbg("\n");
			failures++;
			inb(COM1 + 5);
			inb(COM1 + 6);
		}
	}
}

int guest_main(void)
{
	bool quit = false;

	interrupts_init();
	idt_set(VEC_UART, uart_isr);
	ioapic_route(4, VEC_UART);
	outb(COM1 + 3, 0x03);			/* 8N1 */
	outb(COM1 + 2, 0x87);			/* FIFO, cleared, trigger 8 */
	outb(COM1 + 4, 0x0b);			/* DTR RTS OUT2 */
	uart_puts("ready\n");
	outb(COM1 + 1, 0x01);			/* received data interrupts */
	for (;;) {
		cli();
		while (rx_r != rx_w) {
			uint8_t c = rx[rx_r++ % BUF];

			if (c == 'q')
				quit = true;
			else
				tx[tx_w++ % BUF] = c;
		}
		if (tx_r != tx_w)
			outb(COM1 + 1, 0x03);	/* THRE on: its interrupt comes */
		else if (quit)
			break;
		sti_hlt();
	}
	outb(COM1 + 1, 0);
	uart_puts("bye\n");
	check("received-data interrupts", n_data > 0);
	check("character timeout interrupts", n_timeout > 0);
	check("THRE interrupts", n_thre > 0);
	return failures ? 1 : 0;
}
