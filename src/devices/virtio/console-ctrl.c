// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * virtio-console's control messages (console-ctrl.h): what the driver
 * says, checked and answered; what the device has to say, queued.
 *
 * A message is struct virtio_console_control, little-endian: the port's
 * id (u32), the event (u16), a value (u16); PORT_NAME's is followed by the
 * name's bytes, without a NUL.  Linux reads one message per buffer, so
 * the device writes one per chain of the control receive queue.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <linux/virtio_console.h>

#include "../state.h"
#include "console-ctrl.h"

static const char *const event_names[] = {
	[VIRTIO_CONSOLE_DEVICE_READY] = "DEVICE_READY",
	[VIRTIO_CONSOLE_PORT_ADD] = "PORT_ADD",
	[VIRTIO_CONSOLE_PORT_REMOVE] = "PORT_REMOVE",
	[VIRTIO_CONSOLE_PORT_READY] = "PORT_READY",
	[VIRTIO_CONSOLE_CONSOLE_PORT] = "CONSOLE_PORT",
	[VIRTIO_CONSOLE_RESIZE] = "RESIZE",
	[VIRTIO_CONSOLE_PORT_OPEN] = "PORT_OPEN",
	[VIRTIO_CONSOLE_PORT_NAME] = "PORT_NAME",
};

static const char *event_name(unsigned e)
{
	return e < sizeof(event_names) / sizeof(event_names[0]) ? event_names[e] : NULL;
}

bool vcon_name_valid(const char *name)
{
	size_t n = strlen(name);

	if (n < 1 || n > VCON_NAME_MAX)
		return false;
	for (; *name; name++)
		if (!((*name >= 'a' && *name <= 'z') || (*name >= 'A' && *name <= 'Z') ||
		      (*name >= '0' && *name <= '9') || *name == '.' || *name == '_' ||
		      *name == '-'))
			return false;
	return true;
}

void vcon_ctrl_init(struct vcon_ctrl *c, unsigned nr_ports, const char *const *names,
		    bool console)
{
	memset(c, 0, sizeof(*c));
	c->nr_ports = nr_ports;
	for (unsigned i = 0; i < nr_ports; i++)
		if (names && names[i])
			snprintf(c->port[i].name, sizeof(c->port[i].name), "%s", names[i]);
	c->port[0].console = console;
}

void vcon_ctrl_reset(struct vcon_ctrl *c)
{
	c->device_ready = false;
	c->head = c->len = 0;
	for (unsigned i = 0; i < c->nr_ports; i++) {
		struct vcon_ctrl_port *p = &c->port[i];

		p->added = p->ready = p->guest_open = p->host_told = p->open_queued = false;
	}
}

/* The queue holds at most three messages a port (console-ctrl.h): full,
 * it would be a bug here, not the driver's doing. */
static void queue(struct vcon_ctrl *c, uint32_t id, uint16_t event, uint16_t value)
{
	if (c->len == VCON_CTRL_QUEUED)
		return;
	c->queue[(c->head + c->len++) % VCON_CTRL_QUEUED] =
		(struct vcon_msg){ .id = id, .event = event, .value = value };
}

static struct vcon_msg *queued_open(struct vcon_ctrl *c, unsigned p)
{
	for (unsigned i = 0; i < c->len; i++) {
		struct vcon_msg *m = &c->queue[(c->head + i) % VCON_CTRL_QUEUED];

		if (m->event == VIRTIO_CONSOLE_PORT_OPEN && m->id == p)
			return m;
	}
	return NULL;
}

/* Tells the driver the host side's state, if it does not know it yet: a
 * PORT_OPEN still queued carries the latest. */
static void tell_host_state(struct vcon_ctrl *c, unsigned p)
{
	struct vcon_ctrl_port *port = &c->port[p];

	if (!port->ready)
		return;
	if (port->open_queued) {
		queued_open(c, p)->value = port->host_open;
	} else if (port->host_open != port->host_told) {
		queue(c, p, VIRTIO_CONSOLE_PORT_OPEN, port->host_open);
		port->open_queued = true;
	}
}

void vcon_ctrl_host_open(struct vcon_ctrl *c, unsigned p, bool open)
{
	if (p >= c->nr_ports)
		return;
	c->port[p].host_open = open;
	tell_host_state(c, p);
}

static int refuse(char *why, size_t whylen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int refuse(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static int device_ready(struct vcon_ctrl *c, uint16_t value, char *why, size_t whylen)
{
	if (c->device_ready)
		return refuse(why, whylen, "control message: DEVICE_READY again");
	if (value > 1)
		return refuse(why, whylen,
			      "control message: DEVICE_READY with value %u (0 or 1 expected)", value);
	if (!value) {
		snprintf(why, whylen, "the driver could not set the device up (DEVICE_READY 0)");
		return 1;
	}
	c->device_ready = true;
	for (unsigned i = 0; i < c->nr_ports; i++)
		queue(c, i, VIRTIO_CONSOLE_PORT_ADD, 0);
	return 0;
}

static int port_ready(struct vcon_ctrl *c, unsigned p, uint16_t value, char *why,
		      size_t whylen)
{
	struct vcon_ctrl_port *port = &c->port[p];

	if (!c->device_ready)
		return refuse(why, whylen, "control message: PORT_READY for port %u before DEVICE_READY",
			      p);
	if (!port->added)
		return refuse(why, whylen, "control message: PORT_READY for port %u before its PORT_ADD",
			      p);
	if (port->ready)
		return refuse(why, whylen, "control message: PORT_READY for port %u again", p);
	if (value > 1)
		return refuse(why, whylen,
			      "control message: PORT_READY with value %u (0 or 1 expected)", value);
	if (!value) {
		snprintf(why, whylen, "port %u: the driver could not set it up (PORT_READY 0)", p);
		return 1;
	}
	port->ready = true;
	if (port->console)
		queue(c, p, VIRTIO_CONSOLE_CONSOLE_PORT, 1);
	if (port->name[0])
		queue(c, p, VIRTIO_CONSOLE_PORT_NAME, 1);
	tell_host_state(c, p);
	return 0;
}

int vcon_ctrl_receive(struct vcon_ctrl *c, const void *msg, size_t len, char *why,
		      size_t whylen)
{
	const uint8_t *b = msg;
	uint32_t id;
	uint16_t event, value;
	const char *name;

	if (len < VCON_MSG_LEN)
		return refuse(why, whylen, "a control message of %zu bytes (%u expected)", len,
			      VCON_MSG_LEN);
	id = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
	event = (uint16_t)(b[4] | b[5] << 8);
	value = (uint16_t)(b[6] | b[7] << 8);
	switch (event) {
	case VIRTIO_CONSOLE_DEVICE_READY:
		/* The id means nothing here (Linux sends VIRTIO_CONSOLE_BAD_ID). */
		return device_ready(c, value, why, whylen);
	case VIRTIO_CONSOLE_PORT_READY:
	case VIRTIO_CONSOLE_PORT_OPEN:
		break;
	default:
		name = event_name(event);
		return refuse(why, whylen, "control message: event %u%s%s%s is not one a driver sends",
			      event, name ? " (" : "", name ? name : "", name ? ")" : "");
	}
	if (id >= c->nr_ports)
		return refuse(why, whylen, "control message: %s for port %u, which does not exist (%u %s)",
			      event_name(event), id, c->nr_ports, c->nr_ports == 1 ? "port" : "ports");
	if (event == VIRTIO_CONSOLE_PORT_READY)
		return port_ready(c, id, value, why, whylen);
	if (!c->port[id].ready)
		return refuse(why, whylen, "control message: PORT_OPEN for port %u before PORT_READY",
			      id);
	if (value > 1)
		return refuse(why, whylen, "control message: PORT_OPEN with value %u (0 or 1 expected)",
			      value);
	c->port[id].guest_open = value;
	return 0;
}

size_t vcon_ctrl_next(const struct vcon_ctrl *c, uint8_t buf[VCON_MSG_MAX])
{
	const struct vcon_msg *m;
	size_t n = VCON_MSG_LEN;

	if (!c->len)
		return 0;
	m = &c->queue[c->head];
	for (unsigned i = 0; i < 4; i++)
		buf[i] = (uint8_t)(m->id >> (8 * i));
	buf[4] = (uint8_t)m->event;
	buf[5] = (uint8_t)(m->event >> 8);
	buf[6] = (uint8_t)m->value;
	buf[7] = (uint8_t)(m->value >> 8);
	if (m->event == VIRTIO_CONSOLE_PORT_NAME) {
		const char *name = c->port[m->id].name;

		memcpy(buf + n, name, strlen(name));
		n += strlen(name);
	}
	return n;
}

void vcon_ctrl_sent(struct vcon_ctrl *c)
{
	const struct vcon_msg *m;

	if (!c->len)
		return;
	m = &c->queue[c->head];
	if (m->event == VIRTIO_CONSOLE_PORT_ADD)
		c->port[m->id].added = true;
	if (m->event == VIRTIO_CONSOLE_PORT_OPEN) {
		c->port[m->id].host_told = m->value;
		c->port[m->id].open_queued = false;
	}
	c->head = (c->head + 1) % VCON_CTRL_QUEUED;
	c->len--;
}

bool vcon_ctrl_takes_input(const struct vcon_ctrl *c, unsigned p)
{
	return p < c->nr_ports && (c->port[p].console || c->port[p].guest_open);
}

/* --- saved state --- */

#define PORT_READY_BIT		0x1
#define PORT_GUEST_OPEN_BIT	0x2
#define PORT_HOST_TOLD_BIT	0x4
#define PORT_ADDED_BIT		0x8

void vcon_ctrl_save(const struct vcon_ctrl *c, struct dev_state *s)
{
	state_put_section(s, "VCCT", 1);
	state_put_u32(s, c->nr_ports);
	state_put_u8(s, c->device_ready);
	for (unsigned i = 0; i < c->nr_ports; i++) {
		const struct vcon_ctrl_port *p = &c->port[i];

		state_put_u8(s, (uint8_t)strlen(p->name));
		state_put_bytes(s, p->name, strlen(p->name));
		state_put_u8(s, (uint8_t)((p->ready ? PORT_READY_BIT : 0) |
					  (p->guest_open ? PORT_GUEST_OPEN_BIT : 0) |
					  (p->host_told ? PORT_HOST_TOLD_BIT : 0) |
					  (p->added ? PORT_ADDED_BIT : 0)));
	}
	state_put_u32(s, c->len);
	for (unsigned i = 0; i < c->len; i++) {
		const struct vcon_msg *m = &c->queue[(c->head + i) % VCON_CTRL_QUEUED];

		state_put_u32(s, m->id);
		state_put_u16(s, m->event);
		state_put_u16(s, m->value);
	}
}

/* A queued message the device could have queued, given the flags loaded
 * and the messages before it: at most one of each kind a port. */
static bool msg_valid(struct vcon_ctrl *c, const struct vcon_msg *m, uint8_t *seen)
{
	struct vcon_ctrl_port *p;
	uint8_t bit;

	if (m->id >= c->nr_ports || m->value > 1 || m->event >= 8)
		return false;
	p = &c->port[m->id];
	bit = (uint8_t)(1u << m->event);
	if (seen[m->id] & bit)
		return false;
	seen[m->id] |= bit;
	switch (m->event) {
	case VIRTIO_CONSOLE_PORT_ADD:
		return c->device_ready && !p->added;
	case VIRTIO_CONSOLE_CONSOLE_PORT:
		return p->ready && p->console;
	case VIRTIO_CONSOLE_PORT_NAME:
		return p->ready && p->name[0];
	case VIRTIO_CONSOLE_PORT_OPEN:
		p->open_queued = true;
		return p->ready;
	}
	return false;
}

static int load(struct vcon_ctrl *c, struct dev_state *s)
{
	uint8_t seen[VCON_PORTS_MAX] = { 0 };
	uint32_t n;

	if (!state_get_section(s, "VCCT", 1))
		return s->err;
	if (state_get_u32(s) != c->nr_ports)
		return -EINVAL;
	c->device_ready = state_get_u8(s);
	for (unsigned i = 0; i < c->nr_ports; i++) {
		struct vcon_ctrl_port *p = &c->port[i];
		char name[VCON_NAME_MAX + 1] = "";
		uint8_t len = state_get_u8(s), f;

		if (len > VCON_NAME_MAX)
			return -EINVAL;
		state_get_bytes(s, name, len);
		f = state_get_u8(s);
		/* Each flag needs the one before: device ready, port added,
		 * port ready, then opened or told. */
		if (s->err || strcmp(name, p->name) || (f & ~0xf) ||
		    (!c->device_ready && (f & PORT_ADDED_BIT)) ||
		    (!(f & PORT_ADDED_BIT) && (f & PORT_READY_BIT)) ||
		    (!(f & PORT_READY_BIT) && (f & (PORT_GUEST_OPEN_BIT | PORT_HOST_TOLD_BIT))))
			return s->err ? s->err : -EINVAL;
		p->added = f & PORT_ADDED_BIT;
		p->ready = f & PORT_READY_BIT;
		p->guest_open = f & PORT_GUEST_OPEN_BIT;
		p->host_told = f & PORT_HOST_TOLD_BIT;
	}
	n = state_get_u32(s);
	if (s->err || n > VCON_CTRL_QUEUED)
		return s->err ? s->err : -EINVAL;
	for (unsigned i = 0; i < n; i++) {
		struct vcon_msg m = { .id = state_get_u32(s) };

		m.event = state_get_u16(s);
		m.value = state_get_u16(s);
		if (s->err || !msg_valid(c, &m, seen))
			return s->err ? s->err : -EINVAL;
		c->queue[c->len++] = m;
	}
	return 0;
}

int vcon_ctrl_load(struct vcon_ctrl *c, struct dev_state *s)
{
	int r;

	vcon_ctrl_reset(c);
	r = load(c, s);
	if (r < 0) {
		vcon_ctrl_reset(c);
		return r;
	}
	for (unsigned i = 0; i < c->nr_ports; i++)
		tell_host_state(c, i);
	return 0;
}
