/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A virtio-console driver for micro-guests (dev-virtio-console*.c), on
 * virtio-guest.h's PCI and device probing: every queue a console has
 * (port 0's, the control queues, each named port's), each with its own
 * rings and buffers, polled (no interrupts), and the multiport control
 * messages.  Written from the virtio 1.x spec ("Console Device") the way
 * a guest sees the device.
 *
 * Queues: 0 and 1 port 0's receive and transmit, 2 and 3 control receive
 * and transmit, 2 + 2n and 3 + 2n port n's.  A queue's descriptor i is
 * always its buffer i, taken in turn: a chain's head names its buffer.
 */
#ifndef VCON_GUEST_H
#define VCON_GUEST_H

#include "virtio-guest.h"

#define VIRTIO_CONSOLE_DEVICE	0x1043
#define F_MULTIPORT		1
#define VQ_SIZE			8
#define VQ_BUF			4096
#define VQ_COUNT		10	/* port 0, control, ports 1 to 3 */
#define CTRL_RX			2
#define CTRL_TX			3

/* Control events (virtio 1.x, 5.3.6.2). */
#define DEVICE_READY		0
#define PORT_ADD		1
#define PORT_REMOVE		2
#define PORT_READY		3
#define CONSOLE_PORT		4
#define RESIZE			5
#define PORT_OPEN		6
#define PORT_NAME		7
#define BAD_ID			0xffffffffu

/* A generous wait for what the VMM does, in TSC ticks (seconds on a busy
 * host); a long one for what a test's host side does. */
#define TICKS			20000000000ull
#define HOST_TICKS		(8 * TICKS)

struct vq {
	struct vdesc desc[VQ_SIZE];
	uint16_t avail[3 + VQ_SIZE];
	uint32_t used[2 + 2 * VQ_SIZE];
	uint64_t doorbell;
	uint16_t next;			/* descriptors used so far */
	uint16_t avail_idx;		/* chains made available */
	uint16_t seen;			/* used entries taken */
	uint8_t buf[VQ_SIZE][VQ_BUF];
} __attribute__((aligned(4096)));

static struct vdev con;
static struct vq vqs[VQ_COUNT];

static inline unsigned rxq(unsigned port)
{
	return port ? 2 + 2 * port : 0;
}

static inline unsigned txq(unsigned port)
{
	return rxq(port) + 1;
}

/* max_nr_ports, from the device configuration. */
static inline unsigned vcon_max_ports(void)
{
	return mmio_read32(con.device + 4);
}

/* Finds the device; false if it is not there. */
static inline bool vcon_probe(void)
{
	int slot = pci_find(VIRTIO_VENDOR, VIRTIO_CONSOLE_DEVICE);

	if (slot < 0 || !vdev_probe(&con, (unsigned)slot))
		return false;
	/* Bus mastering, as a driver enables it for DMA. */
	cfg_write16(con.slot, 4, cfg_read16(con.slot, 4) | 4);
	return true;
}

static inline void vq_setup(unsigned q)
{
	struct vq *v = &vqs[q];

	for (unsigned i = 0; i < VQ_SIZE; i++)
		v->desc[i] = (struct vdesc){ 0 };
	for (unsigned i = 0; i < 3 + VQ_SIZE; i++)
		v->avail[i] = 0;
	for (unsigned i = 0; i < 2 + 2 * VQ_SIZE; i++)
		v->used[i] = 0;
	v->next = v->avail_idx = v->seen = 0;
	mmio_write16(con.common + C_QSELECT, (uint16_t)q);
	mmio_write16(con.common + C_QSIZE, VQ_SIZE);
	mmio_write16(con.common + C_QMSIX, NO_VECTOR);
	mmio_write64(con.common + C_QDESC, (uint64_t)v->desc);
	mmio_write32(con.common + C_QAVAIL, (uint32_t)(uint64_t)v->avail);
	mmio_write32(con.common + C_QAVAIL + 4, 0);
	mmio_write32(con.common + C_QUSED, (uint32_t)(uint64_t)v->used);
	mmio_write32(con.common + C_QUSED + 4, 0);
	v->doorbell = con.notify + con.notify_mult * mmio_read16(con.common + C_QNOFF);
	mmio_write16(con.common + C_QENABLE, 1);
}

/* The spec's order: reset, ACKNOWLEDGE, DRIVER, features, FEATURES_OK
 * (read back), queues 0 to nq - 1, DRIVER_OK.  false if the device
 * refused something. */
static inline bool vcon_init(uint64_t features, unsigned nq)
{
	vdev_reset(&con);
	vdev_set_status(&con, S_ACKNOWLEDGE);
	vdev_set_status(&con, S_ACKNOWLEDGE | S_DRIVER);
	vdev_set_features(&con, features & vdev_features(&con));
	vdev_set_status(&con, S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK);
	if (!(vdev_status(&con) & S_FEATURES_OK))
		return false;
	for (unsigned q = 0; q < nq; q++)
		vq_setup(q);
	vdev_set_status(&con, S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
	return !(vdev_status(&con) & S_NEEDS_RESET);
}

/* Makes a chain of n descriptors available (each d[i] goes into the
 * queue's descriptor slots from the next one on, linked) and rings. */
static inline void vq_chain(unsigned q, const struct vdesc *d, unsigned n)
{
	struct vq *v = &vqs[q];
	uint16_t head = v->next % VQ_SIZE;

	for (unsigned i = 0; i < n; i++) {
		uint16_t slot = (uint16_t)((head + i) % VQ_SIZE);

		v->desc[slot] = d[i];
		if (i + 1 < n) {
			v->desc[slot].flags |= D_NEXT;
			v->desc[slot].next = (uint16_t)((slot + 1) % VQ_SIZE);
		}
	}
	v->next = (uint16_t)(v->next + n);
	v->avail[2 + v->avail_idx % VQ_SIZE] = head;
	__asm__ volatile("" ::: "memory");
	v->avail[1] = ++v->avail_idx;
	__asm__ volatile("mfence" ::: "memory");
	mmio_write16(v->doorbell, 0);
}

/* One buffer: buffer `slot` of the queue with len bytes of it. */
static inline void vq_post(unsigned q, uint32_t len, bool writable)
{
	struct vq *v = &vqs[q];
	struct vdesc d = { (uint64_t)v->buf[v->next % VQ_SIZE], len, writable ? D_WRITE : 0, 0 };

	vq_chain(q, &d, 1);
}

/* The next used entry within `ticks`: its id and length; false if none. */
static inline bool vq_used(unsigned q, uint32_t *id, uint32_t *len, uint64_t ticks)
{
	struct vq *v = &vqs[q];
	uint64_t end = rdtsc() + ticks;

	/* The device writes the used ring: read it again each time. */
	while ((uint16_t)(*(volatile uint32_t *)&v->used[0] >> 16) == v->seen) {
		if (rdtsc() > end)
			return false;
		__asm__ volatile("pause" ::: "memory");
	}
	__asm__ volatile("" ::: "memory");
	*id = v->used[1 + 2 * (v->seen % VQ_SIZE)];
	*len = v->used[2 + 2 * (v->seen % VQ_SIZE)];
	v->seen++;
	return true;
}

/* Whether a used entry is there now (without taking it). */
static inline bool vq_has_used(unsigned q)
{
	return (uint16_t)(*(volatile uint32_t *)&vqs[q].used[0] >> 16) != vqs[q].seen;
}

static inline void put_u8(uint8_t *b, unsigned off, uint32_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		b[off + i] = (uint8_t)(v >> (8 * i));
}

/* A control message from the driver, taken back by the device. */
static inline void ctrl_send(uint32_t id, uint16_t event, uint16_t value)
{
	struct vq *v = &vqs[CTRL_TX];
	uint8_t *b = v->buf[v->next % VQ_SIZE];
	uint32_t uid, ulen;

	put_u8(b, 0, id, 4);
	put_u8(b, 4, event, 2);
	put_u8(b, 6, value, 2);
	vq_post(CTRL_TX, 8, false);
	check("control message taken", vq_used(CTRL_TX, &uid, &ulen, TICKS));
}

struct ctrl_msg {
	uint32_t id;
	uint16_t event, value;
	char name[72];
	uint32_t len;
};

/* The control receive queue's buffers: all of them, `len` bytes each. */
static inline void ctrl_post_all(uint32_t len)
{
	for (unsigned i = 0; i < VQ_SIZE; i++)
		vq_post(CTRL_RX, len, true);
}

/* The next control message within `ticks`; its buffer goes back. */
static inline bool ctrl_recv(struct ctrl_msg *m, uint64_t ticks)
{
	uint32_t id, len;
	const uint8_t *b;

	if (!vq_used(CTRL_RX, &id, &len, ticks))
		return false;
	b = vqs[CTRL_RX].buf[id % VQ_SIZE];
	m->len = len;
	m->id = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
	m->event = (uint16_t)(b[4] | b[5] << 8);
	m->value = (uint16_t)(b[6] | b[7] << 8);
	for (unsigned i = 0; i < sizeof(m->name); i++)
		m->name[i] = i + 8 < len && i + 1 < sizeof(m->name) ? (char)b[8 + i] : 0;
	vq_post(CTRL_RX, 128, true);
	return true;
}

static inline const char *event_name(uint16_t e)
{
	static const char *const names[] = {
		"DEVICE_READY", "PORT_ADD", "PORT_REMOVE", "PORT_READY", "CONSOLE_PORT",
		"RESIZE", "PORT_OPEN", "PORT_NAME",
	};

	return e < 8 ? names[e] : "?";
}

/* "ctrl: PORT_NAME 1 1 org.vsrv.echo" */
static inline void ctrl_print(const struct ctrl_msg *m)
{
	puts_dbg("ctrl: ");
	puts_dbg(event_name(m->event));
	puts_dbg(" ");
	put_dec(m->id, 1);
	puts_dbg(" ");
	put_dec(m->value, 1);
	if (m->event == PORT_NAME) {
		puts_dbg(" ");
		puts_dbg(m->name);
	}
	puts_dbg("\n");
}

/* Writes len bytes on a port and waits for the device to take them. */
static inline bool port_write(unsigned port, const void *data, uint32_t len)
{
	struct vq *v = &vqs[txq(port)];
	uint8_t *b = v->buf[v->next % VQ_SIZE];
	uint32_t id, ulen;

	for (uint32_t i = 0; i < len; i++)
		b[i] = ((const uint8_t *)data)[i];
	vq_post(txq(port), len, false);
	return vq_used(txq(port), &id, &ulen, TICKS);
}

static inline void port_puts(unsigned port, const char *s)
{
	uint32_t n = 0;

	while (s[n])
		n++;
	check("output taken", port_write(port, s, n));
}

/* Receive buffers for a port: n of them, len bytes each. */
static inline void port_post_rx(unsigned port, unsigned n, uint32_t len)
{
	for (unsigned i = 0; i < n; i++)
		vq_post(rxq(port), len, true);
}

/* Input from a port up to and with '\n' (or max - 1 bytes), into line
 * (NUL-terminated); each buffer goes back as it is emptied. */
static inline bool port_read_line(unsigned port, char *line, unsigned max, uint64_t ticks)
{
	unsigned n = 0;

	while (n + 1 < max) {
		uint32_t id, len;
		const uint8_t *b;
		bool end = false;

		if (!vq_used(rxq(port), &id, &len, ticks))
			break;
		b = vqs[rxq(port)].buf[id % VQ_SIZE];
		for (uint32_t i = 0; i < len && n + 1 < max; i++) {
			line[n++] = (char)b[i];
			end |= b[i] == '\n';
		}
		vq_post(rxq(port), 256, true);
		if (end)
			break;
	}
	line[n] = 0;
	return n && line[n - 1] == '\n';
}

#endif
