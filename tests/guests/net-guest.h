/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * What dev-virtio-net.c needs beyond virtio-guest.h: a driver for a
 * device with several queues (each on rings of its own, its doorbell at
 * its queue_notify_off), and just enough Ethernet, ARP, IPv4, UDP, TCP,
 * ICMP and DHCP to talk to libslirp and to a host's network stack.
 * Written from the specs and RFCs (791, 768, 793, 792, 826, 2131/2132).
 */
#ifndef NET_GUEST_H
#define NET_GUEST_H

#include "virtio-guest.h"

#define VIRTIO_NET_DEVICE	0x1041
#define F_NET_MAC		5
#define F_NET_STATUS		16
#define NET_HDR			12	/* struct virtio_net_hdr_v1 */

#define ETH_ARP			0x0806
#define ETH_IP			0x0800
#define IP_ICMP			1
#define IP_TCP			6
#define IP_UDP			17

/* --- a queue of the device's --- */

struct vq {
	unsigned index;
	uint16_t size;
	volatile struct vdesc *desc;
	volatile uint16_t *avail;	/* flags, idx, ring[], used_event */
	volatile uint32_t *used;	/* flags|idx, {id, len}[], avail_event */
	uint16_t avail_idx, used_seen;
	uint64_t doorbell;
};

/* Queue `index` on the caller's rings (desc 16-byte, avail 2-byte, used
 * 4-byte aligned, zeroed here), interrupts on MSI-X entry `vector`
 * (NO_VECTOR: none), enabled. */
static inline void vq_setup(struct vdev *v, struct vq *q, unsigned index, uint16_t size,
			    void *desc, void *avail, void *used, uint16_t vector)
{
	uint8_t *d = desc, *a = avail, *u = used;

	for (unsigned i = 0; i < 16u * size; i++)
		d[i] = 0;
	for (unsigned i = 0; i < 6u + 2u * size; i++)
		a[i] = 0;
	for (unsigned i = 0; i < 6u + 8u * size; i++)
		u[i] = 0;
	q->index = index;
	q->size = size;
	q->desc = desc;
	q->avail = avail;
	q->used = used;
	q->avail_idx = q->used_seen = 0;
	mmio_write16(v->common + C_QSELECT, (uint16_t)index);
	mmio_write16(v->common + C_QSIZE, size);
	mmio_write16(v->common + C_QMSIX, vector);
	mmio_write64(v->common + C_QDESC, (uint64_t)desc);
	mmio_write64(v->common + C_QAVAIL, (uint64_t)avail);
	mmio_write64(v->common + C_QUSED, (uint64_t)used);
	q->doorbell = v->notify + v->notify_mult * mmio_read16(v->common + C_QNOFF);
	mmio_write16(v->common + C_QENABLE, 1);
}

/* Puts the chain at `head` in the available ring, not yet shown to the
 * device: vq_publish() shows every chain put so far at once. */
static inline void vq_put(struct vq *q, uint16_t head)
{
	q->avail[2 + q->avail_idx++ % q->size] = head;
}

/* The available index past every chain put; kick: ring the doorbell too. */
static inline void vq_publish(struct vq *q, bool kick)
{
	__asm__ volatile("" ::: "memory");
	q->avail[1] = q->avail_idx;
	__asm__ volatile("mfence" ::: "memory");
	if (kick)
		mmio_write16(q->doorbell, (uint16_t)q->index);
}

/* Makes the chain at `head` available; kick: ring the doorbell too. */
static inline void vq_add(struct vq *q, uint16_t head, bool kick)
{
	vq_put(q, head);
	vq_publish(q, kick);
}

static inline void vq_kick(struct vq *q)
{
	mmio_write16(q->doorbell, (uint16_t)q->index);
}

/* The next used entry, if there is one. */
static inline bool vq_used(struct vq *q, uint32_t *id, uint32_t *len)
{
	if ((uint16_t)(q->used[0] >> 16) == q->used_seen)
		return false;
	__asm__ volatile("" ::: "memory");
	*id = q->used[1 + 2 * (q->used_seen % q->size)];
	*len = q->used[2 + 2 * (q->used_seen % q->size)];
	q->used_seen++;
	return true;
}

/* --- bytes on the wire: big-endian --- */

static inline void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)(v >> 16));
	put16(p + 2, (uint16_t)v);
}

static inline uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static inline uint32_t get32(const uint8_t *p)
{
	return (uint32_t)get16(p) << 16 | get16(p + 2);
}

static inline void copy(void *dst, const void *src, unsigned n)
{
	uint8_t *d = dst;
	const uint8_t *s = src;

	while (n--)
		*d++ = *s++;
}

static inline bool same(const void *a, const void *b, unsigned n)
{
	const uint8_t *x = a, *y = b;

	while (n--)
		if (*x++ != *y++)
			return false;
	return true;
}

static inline int str_cmp(const char *a, const char *b)
{
	while (*a && *a == *b) {
		a++;
		b++;
	}
	return (unsigned char)*a - (unsigned char)*b;
}

static inline void zero(void *p, unsigned n)
{
	uint8_t *d = p;

	while (n--)
		*d++ = 0;
}

/* The Internet checksum's running sum (RFC 1071). */
static inline uint32_t csum_add(uint32_t sum, const uint8_t *p, unsigned n)
{
	for (unsigned i = 0; i + 1 < n; i += 2)
		sum += get16(p + i);
	if (n & 1)
		sum += (uint32_t)p[n - 1] << 8;
	return sum;
}

static inline uint16_t csum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

static inline void put_ip(uint32_t a)
{
	for (int i = 3; i >= 0; i--) {
		put_dec(a >> (8 * i) & 0xff, 1);
		if (i)
			puts_dbg(".");
	}
}

static inline void put_mac(const uint8_t *m)
{
	for (int i = 0; i < 6; i++) {
		put_hex(m[i], 2);
		if (i < 5)
			puts_dbg(":");
	}
}

#define IP(a, b, c, d)	((uint32_t)(a) << 24 | (b) << 16 | (c) << 8 | (d))

/* --- building frames: each returns its length --- */

static inline unsigned eth_header(uint8_t *f, const uint8_t *dst, const uint8_t *src,
				  uint16_t type)
{
	copy(f, dst, 6);
	copy(f + 6, src, 6);
	put16(f + 12, type);
	return 14;
}

/* op 1 request, 2 reply. */
static inline unsigned arp_frame(uint8_t *f, uint16_t op, const uint8_t *sha, uint32_t spa,
				 const uint8_t *tha, uint32_t tpa, const uint8_t *eth_dst)
{
	uint8_t *a = f + eth_header(f, eth_dst, sha, ETH_ARP);

	put16(a, 1);		/* Ethernet */
	put16(a + 2, ETH_IP);
	a[4] = 6;
	a[5] = 4;
	put16(a + 6, op);
	copy(a + 8, sha, 6);
	put32(a + 14, spa);
	copy(a + 18, tha, 6);
	put32(a + 24, tpa);
	return 14 + 28;
}

/* An IPv4 header (20 bytes, checksummed) for `len` bytes of payload. */
static inline unsigned ip_header(uint8_t *p, uint8_t proto, uint32_t src, uint32_t dst,
				 unsigned len)
{
	static uint16_t id;

	p[0] = 0x45;
	p[1] = 0;
	put16(p + 2, (uint16_t)(20 + len));
	put16(p + 4, ++id);
	put16(p + 6, 0x4000);	/* don't fragment */
	p[8] = 64;
	p[9] = proto;
	put16(p + 10, 0);
	put32(p + 12, src);
	put32(p + 16, dst);
	put16(p + 10, csum_fold(csum_add(0, p, 20)));
	return 20;
}

/* TCP's and UDP's checksum over the pseudo-header and the segment. */
static inline uint16_t l4_csum(uint32_t src, uint32_t dst, uint8_t proto, const uint8_t *seg,
			       unsigned len)
{
	uint8_t ph[12];

	put32(ph, src);
	put32(ph + 4, dst);
	ph[8] = 0;
	ph[9] = proto;
	put16(ph + 10, (uint16_t)len);
	return csum_fold(csum_add(csum_add(0, ph, 12), seg, len));
}

/* A UDP datagram in an IPv4 packet in a frame; checksum 0 (none: IPv4
 * allows it). */
static inline unsigned udp_frame(uint8_t *f, const uint8_t *dst_mac, const uint8_t *src_mac,
				 uint32_t src, uint16_t sport, uint32_t dst, uint16_t dport,
				 const void *data, unsigned len)
{
	uint8_t *ip = f + eth_header(f, dst_mac, src_mac, ETH_IP);
	uint8_t *u = ip + ip_header(ip, IP_UDP, src, dst, 8 + len);

	put16(u, sport);
	put16(u + 2, dport);
	put16(u + 4, (uint16_t)(8 + len));
	put16(u + 6, 0);
	copy(u + 8, data, len);
	return 14 + 20 + 8 + len;
}

#define TCP_FIN		0x01
#define TCP_SYN		0x02
#define TCP_RST		0x04
#define TCP_PSH		0x08
#define TCP_ACK		0x10

static inline unsigned tcp_frame(uint8_t *f, const uint8_t *dst_mac, const uint8_t *src_mac,
				 uint32_t src, uint16_t sport, uint32_t dst, uint16_t dport,
				 uint32_t seq, uint32_t ack, uint8_t flags, const void *data,
				 unsigned len)
{
	uint8_t *ip = f + eth_header(f, dst_mac, src_mac, ETH_IP);
	uint8_t *t = ip + ip_header(ip, IP_TCP, src, dst, 20 + len);

	put16(t, sport);
	put16(t + 2, dport);
	put32(t + 4, seq);
	put32(t + 8, ack);
	t[12] = 5 << 4;		/* 20 bytes, no options */
	t[13] = flags;
	put16(t + 14, 8192);	/* window */
	put16(t + 16, 0);
	put16(t + 18, 0);
	copy(t + 20, data, len);
	put16(t + 16, l4_csum(src, dst, IP_TCP, t, 20 + len));
	return 14 + 20 + 20 + len;
}

/* --- DHCP (a BOOTP message of 548 bytes: 236 fixed, 312 of options) --- */

#define BOOTP_LEN	548
#define DHCP_XID	0x76737276	/* "vsrv" */

static inline unsigned dhcp_discover(uint8_t *f, const uint8_t *mac)
{
	static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
	static uint8_t b[BOOTP_LEN];

	zero(b, sizeof(b));
	b[0] = 1;		/* BOOTREQUEST */
	b[1] = 1;		/* Ethernet */
	b[2] = 6;
	put32(b + 4, DHCP_XID);
	put16(b + 10, 0x8000);	/* broadcast replies */
	copy(b + 28, mac, 6);
	put32(b + 236, 0x63825363);	/* the magic cookie */
	b[240] = 53;		/* message type: DISCOVER */
	b[241] = 1;
	b[242] = 1;
	b[243] = 255;
	return udp_frame(f, bcast, mac, 0, 68, 0xffffffffu, 67, b, sizeof(b));
}

#endif
