// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * virtio-console as a driver sees it (vsrv run --console hvc,... and
 * --port NAME=socket:PATH; tests/integration/test_vcon.py drives the host
 * side).  The default run: the multiport handshake, printing each control
 * message the device sends and answering as Linux does; a line on the
 * UART and one on port 0 (hvc0), which the test finds on the console; a
 * line typed on the console read from hvc0 and echoed; output on port 2,
 * which nobody takes; then port 1: the host connecting (PORT_OPEN 1 1), a
 * line from it echoed back, the host leaving (PORT_OPEN 1 0).
 *
 * Words on the command line change the run:
 *   noinput     the console has no input (file:): no echo on hvc0
 *   checkpoint  the test device saves and loads every device's state
 *               after the handshake (and in flow and txflow, while data
 *               waits in the device)
 *   flow        port 1 is opened with no receive buffers while the host
 *               sends; then a count typed on the console, and the guest
 *               reads that many bytes from port 1 and prints their FNV-1a
 *   txflow      256 chunks of 4 KiB written on port 1, whose client does
 *               not read at first: the device stops taking them ("stalled
 *               with N chunks taken"), then takes them all
 *   single      VIRTIO_CONSOLE_F_MULTIPORT not negotiated: port 0 alone,
 *               a line out and one echoed
 * Prints what it sees on the debug port, then "console ok"; exits 0, or
 * 1 after FAIL lines.
 */
#include "vcon-guest.h"

#define TX_CHUNKS	256
#define STALL		(TICKS / 20)

static unsigned nports;
static bool host_open[VQ_COUNT / 2];

static void checkpoint(void)
{
	if (!cmdline_has("checkpoint"))
		return;
	outb(0xea, 0);
	expect("checkpoint result", inl(0xea), 0);
	puts_dbg("checkpoint: saved and loaded\n");
}

/* A control message the device sends (within `ticks`), printed. */
static bool ctrl_expect(struct ctrl_msg *m, uint64_t ticks)
{
	if (!ctrl_recv(m, ticks)) {
		check("a control message from the device", false);
		return false;
	}
	ctrl_print(m);
	if (m->event == PORT_OPEN && m->id < nports)
		host_open[m->id] = m->value;
	return true;
}

/* DEVICE_READY, then each message answered as Linux's driver does: a
 * port added gets its receive buffers and PORT_READY, the console and a
 * named port are opened (PORT_OPEN 1).  Done when every port is added,
 * the console announced and open, each named port named. */
static void handshake(bool rx_on_port1)
{
	unsigned want = 2 * nports + 1;
	struct ctrl_msg m;

	ctrl_post_all(128);
	ctrl_send(BAD_ID, DEVICE_READY, 1);
	for (unsigned got = 0; got < want; got++) {
		if (!ctrl_expect(&m, TICKS))
			return;
		switch (m.event) {
		case PORT_ADD:
			if (m.id != 1 || rx_on_port1)
				port_post_rx(m.id, VQ_SIZE, 256);
			ctrl_send(m.id, PORT_READY, 1);
			break;
		case CONSOLE_PORT:
		case PORT_NAME:
			ctrl_send(m.id, PORT_OPEN, 1);
			break;
		}
	}
}

static void wait_host(unsigned port, bool open)
{
	struct ctrl_msg m;

	while (host_open[port] != open)
		if (!ctrl_expect(&m, HOST_TICKS))
			return;
}

/* A line from the host on port (what: where from, for a FAIL line). */
static bool read_line(unsigned port, char *line, unsigned max, const char *what)
{
	bool ok = port_read_line(port, line, max, HOST_TICKS);

	check(what, ok);
	return ok;
}

static void console_echo(void)
{
	char line[128];

	puts_dbg("waiting for input on hvc0\n");
	if (!read_line(0, line, sizeof(line), "a line from the console"))
		return;
	check("no input on the UART", !(inb(COM1 + 5) & 1));
	puts_dbg("hvc0 got: ");
	puts_dbg(line);
	port_puts(0, "hvc0 got: ");
	port_puts(0, line);
}

static void port_echo(void)
{
	char line[128];

	puts_dbg("port 1: waiting for the host\n");
	wait_host(1, true);
	if (!read_line(1, line, sizeof(line), "a line from port 1's client"))
		return;
	puts_dbg("port 1 got: ");
	puts_dbg(line);
	port_puts(1, "echo: ");
	port_puts(1, line);
	wait_host(1, false);
}

static unsigned long parse_dec(const char *s)
{
	unsigned long v = 0;

	for (; *s >= '0' && *s <= '9'; s++)
		v = v * 10 + (unsigned long)(*s - '0');
	return v;
}

/* Port 1 had no receive buffers while the host sent: the count comes on
 * the console, then the bytes, in order. */
static void flow(void)
{
	uint32_t fnv = 0x811c9dc5, id, len;
	unsigned long want, got = 0;
	char line[32];

	puts_dbg("flow: port 1 open, no receive buffers\n");
	wait_host(1, true);
	if (!read_line(0, line, sizeof(line), "a count from the console"))
		return;
	want = parse_dec(line);
	checkpoint();
	port_post_rx(1, VQ_SIZE, VQ_BUF);
	while (got < want && vq_used(rxq(1), &id, &len, TICKS)) {
		const uint8_t *b = vqs[rxq(1)].buf[id % VQ_SIZE];

		for (uint32_t i = 0; i < len; i++)
			fnv = (fnv ^ b[i]) * 0x01000193u;
		got += len;
		vq_post(rxq(1), VQ_BUF, true);
	}
	puts_dbg("flow: ");
	put_dec(got, 1);
	puts_dbg(" bytes, fnv1a ");
	put_hex(fnv, 8);
	puts_dbg("\n");
}

/* 256 chunks on port 1, 8 in flight: chunk k is k (4 bytes, little-endian)
 * and 4092 'x's. */
static void txflow(void)
{
	struct vq *v = &vqs[txq(1)];
	unsigned sent = 0, taken = 0;
	bool stalled = false;

	wait_host(1, true);
	for (unsigned i = 0; i < VQ_SIZE; i++)
		for (unsigned k = 4; k < VQ_BUF; k++)
			v->buf[i][k] = 'x';
	while (taken < TX_CHUNKS) {
		uint32_t id, len;

		while (sent < TX_CHUNKS && sent - taken < VQ_SIZE) {
			put_u8(v->buf[v->next % VQ_SIZE], 0, sent, 4);
			vq_post(txq(1), VQ_BUF, false);
			sent++;
		}
		if (vq_used(txq(1), &id, &len, stalled ? HOST_TICKS : STALL)) {
			taken++;
			continue;
		}
		if (stalled) {
			check("the device takes the rest", false);
			return;
		}
		stalled = true;
		puts_dbg("txflow: stalled with ");
		put_dec(taken, 1);
		puts_dbg(" chunks taken\n");
		checkpoint();
	}
	puts_dbg("txflow: 256 chunks taken\n");
}

static void single(void)
{
	char line[128];

	if (!vcon_init(1ull << F_VERSION_1, 2)) {
		check("set-up without multiport", false);
		return;
	}
	port_post_rx(0, VQ_SIZE, 256);
	port_puts(0, "hvc0: a single port\n");
	puts_dbg("waiting for input on hvc0\n");
	if (read_line(0, line, sizeof(line), "a line from the console")) {
		puts_dbg("hvc0 got: ");
		puts_dbg(line);
		port_puts(0, line);
	}
}

int guest_main(void)
{
	bool flowing = cmdline_has("flow"), tx = cmdline_has("txflow");

	if (!vcon_probe()) {
		puts_dbg("FAIL no virtio-console\n");
		return 1;
	}
	puts_dbg("virtio-console 00:");
	put_hex(con.slot, 2);
	puts_dbg(".0 class ");
	put_hex(cfg_read32(con.slot, 8) >> 8, 6);
	puts_dbg(", features");
	if (vdev_features(&con) & 1ull << F_MULTIPORT)
		puts_dbg(" multiport");
	nports = vcon_max_ports();
	puts_dbg(", max_nr_ports ");
	put_dec(nports, 1);
	puts_dbg(", ");
	put_dec(mmio_read16(con.common + C_NUMQ), 1);
	puts_dbg(" queues\n");
	if (cmdline_has("single")) {
		single();
	} else if (nports > VQ_COUNT / 2 ||
		   !vcon_init(1ull << F_VERSION_1 | 1ull << F_MULTIPORT, 2 + 2 * nports)) {
		check("set-up with multiport", false);
	} else {
		handshake(!flowing);
		if (!flowing && !tx)
			checkpoint();
		uart_puts("uart: the early console\n");
		port_puts(0, "hvc0: hello from the guest\n");
		if (flowing)
			flow();
		else if (tx)
			txflow();
		else if (!cmdline_has("noinput"))
			console_echo();
		if (nports > 2 && !flowing && !tx)
			port_puts(2, "nobody hears this\n");
		if (nports > 1 && !flowing && !tx)
			port_echo();
	}
	if (failures)
		return 1;
	puts_dbg("console ok\n");
	return 0;
}
