// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * virtio-console driven by a broken or hostile driver (vsrv run --console
 * hvc,... --port p1=socket:...): the command line's case=NAME picks what
 * it does wrong, case=all does each in turn.  Whatever it is, the device
 * refuses it (the chain given back with nothing written, one log line:
 * tests/integration/test_virtio_console.py has them) or, for a failure
 * the driver reports itself, logs it; and goes on: after each case the
 * handshake completes with exactly the messages it always has, or (for a
 * case after the handshake) nothing more comes.  The device is reset
 * before each case.
 *
 * Prints "NAME: ok" per case, then "bad ok"; exits 0, or 1 after FAIL
 * lines.
 */
#include "vcon-guest.h"

#define QUIET	(TICKS / 100)

/* What the device says in a handshake with the console and port 1 "p1",
 * in order, and what the guest answers. */
static const struct {
	uint32_t id;
	uint16_t event, value;
} expected[] = {
	{ 0, PORT_ADD, 0 }, { 1, PORT_ADD, 0 }, { 0, CONSOLE_PORT, 1 }, { 0, PORT_OPEN, 1 },
	{ 1, PORT_NAME, 1 },
};

static void setup(void)
{
	if (!vcon_init(1ull << F_VERSION_1 | 1ull << F_MULTIPORT, 6))
		check("a proper set-up", false);
}

/* A chain on queue q: buffers of the queue's buffer `slot` onwards. */
static void chain2(unsigned q, uint32_t len0, uint16_t flags0, uint32_t len1, uint16_t flags1)
{
	struct vq *v = &vqs[q];
	struct vdesc d[2] = {
		{ (uint64_t)v->buf[v->next % VQ_SIZE], len0, flags0, 0 },
		{ (uint64_t)v->buf[(v->next + 1) % VQ_SIZE], len1, flags1, 0 },
	};

	vq_chain(q, d, 2);
}

/* The device gives back the last chain made available on q with nothing
 * written. */
static void refused(unsigned q)
{
	uint32_t id, len = 0;

	check("the chain given back", vq_used(q, &id, &len, TICKS));
	expect("its used length", len, 0);
}

/* A control message of len bytes. */
static void ctrl_send_len(uint32_t id, uint16_t event, uint16_t value, uint32_t len)
{
	uint8_t *b = vqs[CTRL_TX].buf[vqs[CTRL_TX].next % VQ_SIZE];

	put_u8(b, 0, id, 4);
	put_u8(b, 4, event, 2);
	put_u8(b, 6, value, 2);
	vq_post(CTRL_TX, len, false);
	refused(CTRL_TX);
}

/* answer: what the guest sends on PORT_ADD 1 before its PORT_READY. */
enum answer { PLAIN, OPEN_EARLY, READY_0 };

/* DEVICE_READY (unless sent already) and the rest of the handshake,
 * each message as expected. */
static void handshake_after(enum answer a, bool ready_sent)
{
	struct ctrl_msg m;

	if (!ready_sent)
		ctrl_send(BAD_ID, DEVICE_READY, 1);
	for (unsigned i = 0; i < sizeof(expected) / sizeof(expected[0]); i++) {
		if (!ctrl_recv(&m, TICKS)) {
			check("the handshake's next message", false);
			return;
		}
		if (m.id != expected[i].id || m.event != expected[i].event ||
		    m.value != expected[i].value) {
			puts_dbg("FAIL unexpected ");
			ctrl_print(&m);
			failures++;
		}
		if (m.event == PORT_ADD && m.id == 1 && a == OPEN_EARLY)
			ctrl_send_len(1, PORT_OPEN, 1, 8);
		if (m.event == PORT_ADD && m.id == 1 && a == READY_0)
			ctrl_send(1, PORT_READY, 0);
		if (m.event == PORT_ADD)
			ctrl_send(m.id, PORT_READY, 1);
		else if (m.event != PORT_OPEN)
			ctrl_send(m.id, PORT_OPEN, 1);
	}
}

static void handshake(enum answer a)
{
	handshake_after(a, false);
}

/* After the handshake, nothing more to say. */
static void quiet(void)
{
	struct ctrl_msg m;

	if (ctrl_recv(&m, QUIET)) {
		puts_dbg("FAIL unexpected ");
		ctrl_print(&m);
		failures++;
	}
}

static void ctrl_short(void)
{
	ctrl_post_all(128);
	ctrl_send_len(BAD_ID, DEVICE_READY, 1, 4);
	handshake(PLAIN);
}

static void ctrl_unknown(void)
{
	ctrl_post_all(128);
	ctrl_send_len(0, 99, 1, 8);
	handshake(PLAIN);
}

static void ctrl_device_event(void)
{
	ctrl_post_all(128);
	ctrl_send_len(0, PORT_ADD, 0, 8);
	handshake(PLAIN);
}

static void ctrl_bad_port(void)
{
	ctrl_post_all(128);
	ctrl_send(BAD_ID, DEVICE_READY, 1);
	ctrl_send_len(9, PORT_READY, 1, 8);
	ctrl_send_len(0xfffffffeu, PORT_OPEN, 1, 8);
	/* The handshake's DEVICE_READY is the second: refused too, and the
	 * messages come all the same. */
	handshake(PLAIN);
}

static void ctrl_early(void)
{
	ctrl_post_all(128);
	ctrl_send_len(1, PORT_READY, 1, 8);
	handshake(PLAIN);
}

static void ctrl_open_early(void)
{
	ctrl_post_all(128);
	handshake(OPEN_EARLY);
}

static void ctrl_again(void)
{
	ctrl_post_all(128);
	handshake(PLAIN);
	ctrl_send_len(BAD_ID, DEVICE_READY, 1, 8);
	ctrl_send_len(1, PORT_READY, 1, 8);
	quiet();
}

static void ctrl_bad_value(void)
{
	ctrl_post_all(128);
	ctrl_send_len(BAD_ID, DEVICE_READY, 2, 8);
	handshake(PLAIN);
	ctrl_send_len(1, PORT_OPEN, 7, 8);
	quiet();
}

static void ctrl_writable(void)
{
	ctrl_post_all(128);
	chain2(CTRL_TX, 8, 0, 8, D_WRITE);
	refused(CTRL_TX);
	handshake(PLAIN);
}

static void ctrl_rx_readable(void)
{
	vq_post(CTRL_RX, 128, false);
	for (unsigned i = 1; i < VQ_SIZE; i++)
		vq_post(CTRL_RX, 128, true);
	refused(CTRL_RX);
	vq_post(CTRL_RX, 128, true);
	handshake(PLAIN);
}

static void ctrl_rx_small(void)
{
	vq_post(CTRL_RX, 4, true);
	for (unsigned i = 1; i < VQ_SIZE; i++)
		vq_post(CTRL_RX, 128, true);
	/* Refused when the first message is there to go in it, which waits
	 * for the next buffer. */
	ctrl_send(BAD_ID, DEVICE_READY, 1);
	refused(CTRL_RX);
	vq_post(CTRL_RX, 128, true);
	handshake_after(PLAIN, true);
}

static void ready_0(void)
{
	ctrl_post_all(128);
	ctrl_send(BAD_ID, DEVICE_READY, 0);
	handshake(READY_0);
}

static void rx_readable(void)
{
	ctrl_post_all(128);
	vq_post(rxq(0), 256, false);
	refused(rxq(0));
	handshake(PLAIN);
}

static void tx_writable(void)
{
	struct vq *v = &vqs[txq(0)];

	ctrl_post_all(128);
	for (unsigned i = 0; i < 16; i++)
		v->buf[v->next % VQ_SIZE][i] = 'w';
	chain2(txq(0), 16, 0, 16, D_WRITE);
	refused(txq(0));
	handshake(PLAIN);
}

static const struct {
	const char *name;
	void (*run)(void);
} cases[] = {
	{ "ctrl-short", ctrl_short },
	{ "ctrl-unknown", ctrl_unknown },
	{ "ctrl-device-event", ctrl_device_event },
	{ "ctrl-bad-port", ctrl_bad_port },
	{ "ctrl-early", ctrl_early },
	{ "ctrl-open-early", ctrl_open_early },
	{ "ctrl-again", ctrl_again },
	{ "ctrl-bad-value", ctrl_bad_value },
	{ "ctrl-writable", ctrl_writable },
	{ "ctrl-rx-readable", ctrl_rx_readable },
	{ "ctrl-rx-small", ctrl_rx_small },
	{ "ready-0", ready_0 },
	{ "rx-readable", rx_readable },
	{ "tx-writable", tx_writable },
};

static bool case_is(const char *name)
{
	char word[40] = "case=";
	unsigned n = 5;

	while (*name && n + 1 < sizeof(word))
		word[n++] = *name++;
	word[n] = 0;
	return cmdline_has(word);
}

int guest_main(void)
{
	bool all = case_is("all"), found = false;

	if (!vcon_probe()) {
		puts_dbg("FAIL no virtio-console\n");
		return 1;
	}
	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		unsigned before = failures;

		if (!all && !case_is(cases[i].name))
			continue;
		found = true;
		setup();
		cases[i].run();
		puts_dbg(cases[i].name);
		puts_dbg(failures == before ? ": ok\n" : ": failed\n");
	}
	check("a known case (case=NAME on the command line)", found);
	if (failures)
		return 1;
	puts_dbg("bad ok\n");
	return 0;
}
