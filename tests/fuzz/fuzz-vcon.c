// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * libFuzzer target for virtio-console's control messages
 * (src/devices/virtio/console-ctrl.c), driven directly: what a hostile
 * driver says, what the host side does, and saved state from anywhere.
 *
 * Byte 0 configures the device: 1 + (bits 0-2) ports, port 0 the console
 * if bit 7.  Then operations, each a byte whose low 3 bits say which:
 *   0  a message from the driver: a length byte (0-15), then the bytes
 *   1  the host side of port (next byte % 8) opens (bit 7) or closes
 *   2  the device hands the driver its next message, if any
 *   3  a device reset
 *   4  save and load into a device configured the same (a round trip)
 *   5  load from the input: a length byte, then up to 255 bytes of state
 * After each the invariants below hold, or bug() says which and aborts:
 * the queue never holds more than three messages a port nor two
 * PORT_OPENs for one, every message is one a device sends for a port
 * that exists (a name only for a named port, CONSOLE_PORT only for the
 * console), and a round trip through saved state changes nothing.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <linux/virtio_console.h>

#include "../../src/devices/state.h"
#include "../../src/devices/virtio/console-ctrl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void bug(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void bug(const char *fmt, ...)
{
	va_list ap;

	fputs("fuzz-vcon: bug: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}

static const char *const names[VCON_PORTS_MAX] = {
	NULL, "org.vsrv.agent", "a", "port-3", "p.4", "p_5",
	"a-name-of-the-longest-length-allowed-which-is-sixty-three-bytes", "7",
};

static void check(const struct vcon_ctrl *c)
{
	unsigned opens[VCON_PORTS_MAX] = { 0 };

	if (c->len > 3 * c->nr_ports || c->head >= VCON_CTRL_QUEUED)
		bug("%u messages queued for %u ports (head %u)", c->len, c->nr_ports, c->head);
	for (unsigned i = 0; i < c->len; i++) {
		const struct vcon_msg *m = &c->queue[(c->head + i) % VCON_CTRL_QUEUED];

		if (m->id >= c->nr_ports)
			bug("a message for port %u of %u", m->id, c->nr_ports);
		switch (m->event) {
		case VIRTIO_CONSOLE_PORT_ADD:
			break;
		case VIRTIO_CONSOLE_CONSOLE_PORT:
			if (!c->port[m->id].console)
				bug("CONSOLE_PORT for port %u, not the console", m->id);
			break;
		case VIRTIO_CONSOLE_PORT_NAME:
			if (!c->port[m->id].name[0])
				bug("PORT_NAME for port %u, which has none", m->id);
			break;
		case VIRTIO_CONSOLE_PORT_OPEN:
			if (++opens[m->id] > 1 || !c->port[m->id].open_queued)
				bug("PORT_OPEN for port %u queued twice, or not flagged", m->id);
			break;
		default:
			bug("event %u queued", m->event);
		}
		if (m->value > 1)
			bug("value %u queued", m->value);
	}
	for (unsigned p = 0; p < c->nr_ports; p++) {
		if (c->port[p].open_queued && !opens[p])
			bug("port %u flagged with no PORT_OPEN queued", p);
		if (c->port[p].ready && !c->device_ready)
			bug("port %u ready before the device", p);
	}
}

/* The next message, checked against what its port is. */
static void deliver(struct vcon_ctrl *c)
{
	uint8_t buf[VCON_MSG_MAX];
	size_t n = vcon_ctrl_next(c, buf);
	uint32_t id;

	if (!n)
		return;
	id = (uint32_t)buf[0] | (uint32_t)buf[1] << 8 | (uint32_t)buf[2] << 16 |
	     (uint32_t)buf[3] << 24;
	if (n < VCON_MSG_LEN || id >= c->nr_ports)
		bug("a message of %zu bytes for port %u", n, id);
	if (buf[4] == VIRTIO_CONSOLE_PORT_NAME) {
		if (n != VCON_MSG_LEN + strlen(c->port[id].name) ||
		    memcmp(buf + VCON_MSG_LEN, c->port[id].name, n - VCON_MSG_LEN))
			bug("port %u's name sent wrong", id);
	} else if (n != VCON_MSG_LEN) {
		bug("event %u sent with %zu bytes", buf[4], n);
	}
	vcon_ctrl_sent(c);
}

static void configure(struct vcon_ctrl *c, uint8_t cfg, const struct vcon_ctrl *host)
{
	vcon_ctrl_init(c, 1 + (cfg & 7u), names, cfg & 0x80);
	for (unsigned p = 0; host && p < c->nr_ports; p++)
		vcon_ctrl_host_open(c, p, host->port[p].host_open);
}

/* Saved and loaded into a device configured alike: the same state. */
static void round_trip(struct vcon_ctrl *c, uint8_t cfg)
{
	static struct vcon_ctrl d;
	struct dev_state s;

	state_init(&s);
	vcon_ctrl_save(c, &s);
	configure(&d, cfg, c);
	state_rewind(&s);
	if (s.err || vcon_ctrl_load(&d, &s) < 0)
		bug("a device's own saved state refused (%d)", s.err);
	state_free(&s);
	if (d.device_ready != c->device_ready || d.len != c->len)
		bug("loaded: %u messages, ready %d; saved %u, %d", d.len, d.device_ready, c->len,
		    c->device_ready);
	for (unsigned i = 0; i < c->len; i++)
		if (memcmp(&d.queue[(d.head + i) % VCON_CTRL_QUEUED],
			   &c->queue[(c->head + i) % VCON_CTRL_QUEUED], sizeof(struct vcon_msg)))
			bug("loaded message %u differs", i);
	for (unsigned p = 0; p < c->nr_ports; p++)
		if (memcmp(&d.port[p], &c->port[p], sizeof(d.port[p])))
			bug("loaded port %u differs", p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct vcon_ctrl c;
	size_t pos = 1;
	char why[200];

	if (!size)
		return 0;
	configure(&c, data[0], NULL);
	while (pos < size) {
		uint8_t op = data[pos++], len;
		struct dev_state s;
		int r;

		switch (op & 7) {
		case 0:
			len = pos < size ? data[pos++] & 15 : 0;
			if (len > size - pos)
				len = (uint8_t)(size - pos);
			why[0] = 0;
			r = vcon_ctrl_receive(&c, data + pos, len, why, sizeof(why));
			if (r < -EINVAL || r > 1 || (r && !why[0]))
				bug("receive: %d, \"%s\"", r, why);
			pos += len;
			break;
		case 1:
			if (pos < size) {
				vcon_ctrl_host_open(&c, data[pos] % 8u, data[pos] & 0x80);
				pos++;
			}
			break;
		case 2:
			deliver(&c);
			break;
		case 3:
			vcon_ctrl_reset(&c);
			break;
		case 4:
			round_trip(&c, data[0]);
			break;
		case 5:
			len = pos < size ? data[pos++] : 0;
			if (len > size - pos)
				len = (uint8_t)(size - pos);
			state_init(&s);
			state_put_bytes(&s, data + pos, len);
			state_rewind(&s);
			if (vcon_ctrl_load(&c, &s) < 0 && (c.device_ready || c.len))
				bug("a refused state left something behind");
			state_free(&s);
			pos += len;
			break;
		}
		check(&c);
	}
	return 0;
}
