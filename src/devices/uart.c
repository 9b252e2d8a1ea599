// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * A 16550A UART on COM1 (ports 0x3f8-0x3ff, ISA IRQ 4), on the console.
 *
 * What Linux's 8250 driver looks at decides the details: the IER
 * existence test (bits 0-3 writable, 4-7 zero), the FIFO bits of the IIR
 * (0xc0 with the FIFO on: a 16550A, and no 16650/16750/XScale extras), the
 * loopback test (MSR follows MCR), and the THRE test (enabling the THRE
 * interrupt while the transmitter is empty raises it, again each time it
 * is enabled).
 *
 * Transmission is instant: a byte written to THR goes to the console at
 * once, so THRE and TEMT are always set again by the time the guest looks,
 * and the THRE interrupt, cleared by the write, is raised again after it
 * (the edge an edge-triggered ISA interrupt needs).  The divisor latch is
 * kept but sets no speed.
 *
 * Reception: the console offers bytes and the UART takes what fits in its
 * 16-byte FIFO (one byte without the FIFO); it asks for more as the guest
 * reads.  Input arrives in bursts with idle time after each, so the
 * character timeout (IIR 0xc) is pending whenever the FIFO holds fewer
 * bytes than its trigger level, as a real UART's is four character times
 * after the line goes quiet.
 *
 * The IRQ line follows the IIR: high while an enabled interrupt is
 * pending.  MCR's OUT2, which gates the IRQ on a PC's board, is not
 * modelled: with OUT2 low Linux keeps IER at zero anyway.
 *
 * The guest is untrusted: any register, any value, any order, any access
 * width (each byte is a register access), from any vCPU; one lock.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "devices.h"
#include "state.h"

#define UART_COM1_BASE	0x3f8
#define UART_COM1_IRQ	4
#define UART_FIFO_SIZE	16

/* Register offsets (DLAB = LCR bit 7 maps 0 and 1 to the divisor latch). */
#define UART_RX		0	/* read: receive buffer */
#define UART_TX		0	/* write: transmit holding */
#define UART_IER	1
#define UART_IIR	2	/* read */
#define UART_FCR	2	/* write */
#define UART_LCR	3
#define UART_MCR	4
#define UART_LSR	5
#define UART_MSR	6
#define UART_SCR	7

#define IER_RDI		0x01	/* received data (and timeout) */
#define IER_THRI	0x02	/* transmit holding register empty */
#define IER_RLSI	0x04	/* receiver line status */
#define IER_MSI		0x08	/* modem status */

#define IIR_NO_INT	0x01
#define IIR_MSI		0x00
#define IIR_THRI	0x02
#define IIR_RDI		0x04
#define IIR_RLSI	0x06
#define IIR_TIMEOUT	0x0c
#define IIR_FIFO_ON	0xc0

#define FCR_ENABLE	0x01
#define FCR_CLEAR_RX	0x02
#define FCR_CLEAR_TX	0x04
#define FCR_DMA		0x08
#define FCR_TRIGGER	0xc0

#define LCR_DLAB	0x80

#define MCR_DTR		0x01
#define MCR_RTS		0x02
#define MCR_OUT1	0x04
#define MCR_OUT2	0x08
#define MCR_LOOP	0x10

#define LSR_DR		0x01
#define LSR_OE		0x02
#define LSR_PE		0x04
#define LSR_FE		0x08
#define LSR_BI		0x10
#define LSR_THRE	0x20
#define LSR_TEMT	0x40
#define LSR_ERRORS	(LSR_OE | LSR_PE | LSR_FE | LSR_BI)

#define MSR_DCTS	0x01
#define MSR_DDSR	0x02
#define MSR_TERI	0x04
#define MSR_DDCD	0x08
#define MSR_CTS		0x10
#define MSR_DSR		0x20
#define MSR_RI		0x40
#define MSR_DCD		0x80
#define MSR_DELTAS	0x0f

struct uart {
	pthread_mutex_t lock;
	struct vm *vm;
	struct console *con;
	uint8_t ier, lcr, mcr, scr, fcr, dll, dlm;
	uint8_t lsr;		/* error bits, THRE, TEMT; DR comes from the FIFO */
	uint8_t msr;		/* line states (bits 4-7) and deltas (0-3) */
	uint8_t rbr;		/* the last byte received: what an empty RX reads */
	bool thr_ipending;	/* THRE interrupt not yet acknowledged */
	bool irq_level;		/* what the IRQ line was last set to */
	bool rx_waiting;	/* the console holds input that found no room */
	uint8_t rx[UART_FIFO_SIZE];
	unsigned rx_head, rx_count;
	struct vm_device vmdev;
};

static bool fifo_on(const struct uart *u)
{
	return u->fcr & FCR_ENABLE;
}

static unsigned rx_trigger(const struct uart *u)
{
	static const unsigned levels[4] = { 1, 4, 8, 14 };

	return levels[u->fcr >> 6];
}

/* The interrupt the IIR reports, by the 16550's priorities. */
static uint8_t iir_id(const struct uart *u)
{
	if ((u->ier & IER_RLSI) && (u->lsr & LSR_ERRORS))
		return IIR_RLSI;
	if ((u->ier & IER_RDI) && u->rx_count)
		return !fifo_on(u) || u->rx_count >= rx_trigger(u) ? IIR_RDI : IIR_TIMEOUT;
	if ((u->ier & IER_THRI) && u->thr_ipending)
		return IIR_THRI;
	if ((u->ier & IER_MSI) && (u->msr & MSR_DELTAS))
		return IIR_MSI;
	return IIR_NO_INT;
}

static void update_irq(struct uart *u)
{
	bool level = iir_id(u) != IIR_NO_INT;

	if (level != u->irq_level) {
		u->irq_level = level;
		vm_irq_line(u->vm, UART_COM1_IRQ, level);
	}
}

/* Modem lines: a terminal that is there (CTS, DSR, DCD), or in loopback
 * the UART's own outputs.  Changes set the delta bits; RI's is set on its
 * trailing edge only. */
static void update_msr(struct uart *u)
{
	uint8_t lines = MSR_CTS | MSR_DSR | MSR_DCD, changed;

	if (u->mcr & MCR_LOOP)
		lines = (u->mcr & MCR_RTS ? MSR_CTS : 0) | (u->mcr & MCR_DTR ? MSR_DSR : 0) |
			(u->mcr & MCR_OUT1 ? MSR_RI : 0) | (u->mcr & MCR_OUT2 ? MSR_DCD : 0);
	changed = (u->msr ^ lines) & 0xf0;
	u->msr = (u->msr & MSR_DELTAS) | lines;
	if (changed & MSR_CTS)
		u->msr |= MSR_DCTS;
	if (changed & MSR_DSR)
		u->msr |= MSR_DDSR;
	if (changed & MSR_DCD)
		u->msr |= MSR_DDCD;
	if ((changed & MSR_RI) && !(lines & MSR_RI))
		u->msr |= MSR_TERI;
}

static unsigned rx_room(const struct uart *u)
{
	return (fifo_on(u) ? UART_FIFO_SIZE : 1) - u->rx_count;
}

/* A byte off the line (or looped back).  Full: an overrun, which in FIFO
 * mode loses the new byte and without the FIFO overwrites the old one. */
static void rx_push(struct uart *u, uint8_t c)
{
	if (!rx_room(u)) {
		u->lsr |= LSR_OE;
		if (!fifo_on(u))
			u->rx[u->rx_head] = c;
		return;
	}
	u->rx[(u->rx_head + u->rx_count++) % UART_FIFO_SIZE] = c;
}

/* Room appeared: input the console held back can come now. */
static void rx_room_made(struct uart *u)
{
	if (u->rx_waiting && rx_room(u) && !(u->mcr & MCR_LOOP)) {
		u->rx_waiting = false;
		console_input_ready(u->con);
	}
}

static void rx_clear(struct uart *u)
{
	u->rx_head = u->rx_count = 0;
	rx_room_made(u);
}

static uint8_t reg_read(struct uart *u, unsigned reg)
{
	uint8_t v = 0;

	switch (reg) {
	case UART_RX:
		if (u->lcr & LCR_DLAB)
			return u->dll;
		if (u->rx_count) {
			u->rbr = u->rx[u->rx_head];
			u->rx_head = (u->rx_head + 1) % UART_FIFO_SIZE;
			u->rx_count--;
			rx_room_made(u);
		}
		return u->rbr;
	case UART_IER:
		return u->lcr & LCR_DLAB ? u->dlm : u->ier;
	case UART_IIR:
		v = iir_id(u);
		/* Reading the IIR is what acknowledges a THRE interrupt. */
		if (v == IIR_THRI)
			u->thr_ipending = false;
		return v | (fifo_on(u) ? IIR_FIFO_ON : 0);
	case UART_LCR:
		return u->lcr;
	case UART_MCR:
		return u->mcr;
	case UART_LSR:
		v = u->lsr | (u->rx_count ? LSR_DR : 0);
		u->lsr &= (uint8_t)~LSR_ERRORS;
		return v;
	case UART_MSR:
		v = u->msr;
		u->msr &= (uint8_t)~MSR_DELTAS;
		return v;
	case UART_SCR:
		return u->scr;
	}
	return v;
}

static void fcr_write(struct uart *u, uint8_t v)
{
	/* Turning the FIFO on or off empties it. */
	if ((v ^ u->fcr) & FCR_ENABLE)
		rx_clear(u);
	if (!(v & FCR_ENABLE)) {
		u->fcr = 0;
		return;
	}
	if (v & FCR_CLEAR_RX)
		rx_clear(u);
	/* FCR_CLEAR_TX: the transmitter is always empty. */
	u->fcr = v & (FCR_ENABLE | FCR_DMA | FCR_TRIGGER);
}

static void reg_write(struct uart *u, unsigned reg, uint8_t v)
{
	uint8_t old;

	switch (reg) {
	case UART_TX:
		if (u->lcr & LCR_DLAB) {
			u->dll = v;
			break;
		}
		u->thr_ipending = false;
		update_irq(u);
		if (u->mcr & MCR_LOOP)
			rx_push(u, v);
		else
			console_write(u->con, &v, 1);
		/* Sent: the holding register is empty again. */
		u->thr_ipending = true;
		break;
	case UART_IER:
		if (u->lcr & LCR_DLAB) {
			u->dlm = v;
			break;
		}
		old = u->ier;
		u->ier = v & 0x0f;
		/* Enabling THRI with the transmitter empty raises it, each
		 * time (Linux's THRE test; Windows toggles IER the same way). */
		if ((u->ier ^ old) & IER_THRI)
			u->thr_ipending = (u->ier & IER_THRI) && (u->lsr & LSR_THRE);
		break;
	case UART_FCR:
		fcr_write(u, v);
		break;
	case UART_LCR:
		u->lcr = v;
		break;
	case UART_MCR:
		old = u->mcr;
		u->mcr = v & 0x1f;
		update_msr(u);
		if ((old & MCR_LOOP) && !(u->mcr & MCR_LOOP))
			rx_room_made(u);
		break;
	case UART_SCR:
		u->scr = v;
		break;
	default:
		/* LSR and MSR: writes are factory test features. */
		break;
	}
	update_irq(u);
}

static void uart_read(void *opaque, uint64_t addr, void *data, unsigned len)
{
	struct uart *u = opaque;
	uint8_t *d = data;

	pthread_mutex_lock(&u->lock);
	for (unsigned i = 0; i < len && addr + i < 8; i++) {
		d[i] = reg_read(u, (unsigned)(addr + i));
		update_irq(u);
	}
	pthread_mutex_unlock(&u->lock);
}

static void uart_write(void *opaque, uint64_t addr, const void *data, unsigned len)
{
	struct uart *u = opaque;
	const uint8_t *d = data;

	pthread_mutex_lock(&u->lock);
	for (unsigned i = 0; i < len && addr + i < 8; i++)
		reg_write(u, (unsigned)(addr + i), d[i]);
	pthread_mutex_unlock(&u->lock);
}

static const struct io_ops uart_ops = { .read = uart_read, .write = uart_write };

/* The console's input thread offering bytes. */
static size_t uart_rx(void *opaque, const uint8_t *buf, size_t len)
{
	struct uart *u = opaque;
	size_t n = 0;

	pthread_mutex_lock(&u->lock);
	/* In loopback the serial input is disconnected: input waits. */
	if (!(u->mcr & MCR_LOOP))
		while (n < len && rx_room(u))
			rx_push(u, buf[n++]);
	if (n < len)
		u->rx_waiting = true;
	update_irq(u);
	pthread_mutex_unlock(&u->lock);
	return n;
}

/* --- saved state: the registers and what waits in the receive FIFO --- */

static int uart_save(void *opaque, struct dev_state *s)
{
	struct uart *u = opaque;

	pthread_mutex_lock(&u->lock);
	state_put_section(s, "UART", 1);
	state_put_bytes(s, (uint8_t[]){ u->ier, u->lcr, u->mcr, u->scr, u->fcr, u->dll, u->dlm,
					u->lsr, u->msr, u->rbr, u->thr_ipending }, 11);
	state_put_u8(s, (uint8_t)u->rx_count);
	for (unsigned i = 0; i < u->rx_count; i++)
		state_put_u8(s, u->rx[(u->rx_head + i) % UART_FIFO_SIZE]);
	pthread_mutex_unlock(&u->lock);
	return s->err;
}

static int uart_load(void *opaque, struct dev_state *s)
{
	struct uart *u = opaque;
	uint8_t r[11], rx[UART_FIFO_SIZE], n;

	if (!state_get_section(s, "UART", 1))
		return s->err;
	state_get_bytes(s, r, sizeof(r));
	n = state_get_u8(s);
	if (n > UART_FIFO_SIZE)
		return -EINVAL;
	state_get_bytes(s, rx, n);
	if (s->err)
		return s->err;
	pthread_mutex_lock(&u->lock);
	u->ier = r[0] & 0x0f;
	u->lcr = r[1];
	u->mcr = r[2] & 0x1f;
	u->scr = r[3];
	u->fcr = r[4];
	u->dll = r[5];
	u->dlm = r[6];
	u->lsr = r[7] & (uint8_t)~LSR_DR;
	u->msr = r[8];
	u->rbr = r[9];
	u->thr_ipending = r[10];
	memcpy(u->rx, rx, n);
	u->rx_head = 0;
	u->rx_count = n;
	update_irq(u);
	pthread_mutex_unlock(&u->lock);
	/* Input the console held for want of room may fit now. */
	console_input_ready(u->con);
	return 0;
}

static const struct vm_device_ops uart_vm_ops = {
	.quiesce = state_quiesce_none, .resume = state_resume_none,
	.save = uart_save, .load = uart_load,
};

int uart_init(struct vm *vm, struct console *con, struct uart **out)
{
	struct uart *u = calloc(1, sizeof(*u));
	int r;

	*out = NULL;
	if (!u)
		return -ENOMEM;
	pthread_mutex_init(&u->lock, NULL);
	u->vm = vm;
	u->con = con;
	u->lsr = LSR_THRE | LSR_TEMT;
	update_msr(u);
	u->msr &= (uint8_t)~MSR_DELTAS;
	r = vm_register_pio(vm, UART_COM1_BASE, 8, &uart_ops, u, "uart-com1");
	if (r < 0) {
		pthread_mutex_destroy(&u->lock);
		free(u);
		return r;
	}
	console_attach_input(con, uart_rx, u);
	u->vmdev = (struct vm_device){ .name = "uart-com1", .ops = &uart_vm_ops, .opaque = u };
	vm_add_device(vm, &u->vmdev);
	*out = u;
	return 0;
}

void uart_destroy(struct uart *u)
{
	if (!u)
		return;
	console_attach_input(u->con, NULL, NULL);
	vm_remove_device(u->vm, &u->vmdev);
	pthread_mutex_destroy(&u->lock);
	free(u);
}
