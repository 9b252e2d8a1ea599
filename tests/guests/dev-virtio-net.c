// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * virtio-net as a guest driver sees it (vsrv run --net ...): the device's
 * PCI function, features and configuration (the MAC, the link), its
 * receive and transmit queues, and a tiny IPv4 host on top (net-guest.h)
 * at 10.0.2.15, enough to talk to libslirp and to the host through a tap.
 * The receive queue interrupts on MSI-X; waits halt between interrupts
 * and the ticks of the local APIC's timer (100 Hz), which bound them.
 *
 * The command line picks the run:
 *   (none)      DHCP: DISCOVER, and the OFFER's address, mask, router,
 *               DNS, server and lease printed; then ARP for the gateway
 *   serve       a host at 10.0.2.15 until told to stop: answers ARP and
 *               ping, echoes UDP on port 7 ("quit" ends the guest, after
 *               a "bye"), and on TCP port 22 answers each connection's
 *               first line with a banner that repeats it, then closes
 *   tcp-to=A.B.C.D port=N
 *               a connection from port 40000: a line sent, the answer read
 *               until the server closes, then closed too
 *   udp-to=A.B.C.D port=N
 *               a datagram from port 1234 to that address (10.0.2.2 is the
 *               host, 10.0.2.3 slirp's DNS forwarder) and its answer printed
 *   drop        70 ARP requests sent with no receive buffer posted; then
 *               64 buffers: the replies that waited come
 *   checkpoint  an ARP exchange, the test device's save and load of every
 *               device (port 0xea), another exchange
 *   case=NAME   a broken driver (or case=all): transmit chains without a
 *               header, too short, too long, asking for offloads, with a
 *               writable buffer; receive chains too small for the header
 *               or the frame, or device-readable; after each, an ARP
 *               exchange proves the device still works
 * Every run first lists the virtio-net functions and their MACs, then
 * drives the first.  Prints what it finds; exits 0, or 1 after FAIL lines.
 */
#include "net-guest.h"

#define RXQ_SIZE	64
#define TXQ_SIZE	128
#define BUF		2048
#define VEC_TICK	0x44
#define HZ		100
#define APIC_LVT_TIMER	0x320
#define APIC_TIMER_INIT	0x380
#define APIC_TIMER_DIV	0x3e0
#define LVT_PERIODIC	(1u << 17)
#define BAD_RX_HEAD	40	/* the hostile cases' receive descriptor */
#define BAD_TX_HEAD	100	/* and transmit chain */

static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
static const uint32_t my_ip = IP(10, 0, 2, 15), gateway = IP(10, 0, 2, 2);

static struct vdev dev;
static struct vq rxq, txq;
static struct vdesc rx_desc[RXQ_SIZE] __attribute__((aligned(4096)));
static uint16_t rx_avail[3 + RXQ_SIZE] __attribute__((aligned(64)));
static uint32_t rx_used[2 + 2 * RXQ_SIZE] __attribute__((aligned(64)));
static struct vdesc tx_desc[TXQ_SIZE] __attribute__((aligned(4096)));
static uint16_t tx_avail[3 + TXQ_SIZE] __attribute__((aligned(64)));
static uint32_t tx_used[2 + 2 * TXQ_SIZE] __attribute__((aligned(64)));
static uint8_t rx_buf[RXQ_SIZE][BUF] __attribute__((aligned(64)));
static uint8_t tx_buf[TXQ_SIZE][BUF] __attribute__((aligned(64)));
static uint8_t big[NET_HDR + 65537] __attribute__((aligned(64)));
static uint8_t mac[6];
static unsigned tx_sent, tx_done;
static volatile unsigned long ticks;

__attribute__((interrupt)) static void on_tick(struct iframe *f)
{
	ticks++;
	lapic_eoi();
}

/* Halts until an interrupt: the receive queue's or a tick. */
static void idle(void)
{
	sti_hlt();
	cli();
}

/* --- transmit --- */

static void tx_reap(void)
{
	uint32_t id, len;

	while (vq_used(&txq, &id, &len))
		tx_done++;
}

/* The next transmit buffer's frame, its header zeroed (no offloads). */
static uint8_t *tx_frame(void)
{
	uint8_t *b;

	tx_reap();
	while (tx_sent - tx_done >= TXQ_SIZE) {
		__asm__ volatile("pause");
		tx_reap();
	}
	b = tx_buf[tx_sent % TXQ_SIZE];
	zero(b, NET_HDR);
	return b + NET_HDR;
}

/* The frame of `len` bytes tx_frame() gave, put in the ring (vq_put). */
static void tx_put(unsigned len)
{
	unsigned slot = tx_sent % TXQ_SIZE;

	txq.desc[slot] = (struct vdesc){ (uint64_t)tx_buf[slot], NET_HDR + len, 0, 0 };
	tx_sent++;
	vq_put(&txq, (uint16_t)slot);
}

static void tx_send(unsigned len, bool kick)
{
	tx_put(len);
	vq_publish(&txq, kick);
}

/* Waits until the device has taken everything sent. */
static void tx_drain(void)
{
	unsigned long end = ticks + 10 * HZ;

	tx_reap();
	while (tx_done != tx_sent && ticks < end) {
		sti();
		__asm__ volatile("pause");
		cli();
		tx_reap();
	}
	expect("transmit chains taken", tx_sent - tx_done, 0);
}

/* --- receive --- */

/* Receive buffer `id` put in the ring (vq_put). */
static void rx_put(uint16_t id)
{
	rxq.desc[id] = (struct vdesc){ (uint64_t)rx_buf[id], BUF, D_WRITE, 0 };
	vq_put(&rxq, id);
}

static void rx_post(uint16_t id, bool kick)
{
	rx_put(id);
	vq_publish(&rxq, kick);
}

/* The next used receive buffer within `seconds`: its id and length. */
static bool rx_wait(uint32_t *id, uint32_t *len, unsigned seconds)
{
	unsigned long end = ticks + seconds * HZ;

	while (!vq_used(&rxq, id, len)) {
		if (ticks >= end)
			return false;
		idle();
	}
	return true;
}

/* --- ARP --- */

/* An ARP request for `who` in the next transmit buffer: its length. */
static unsigned arp_request(uint32_t who)
{
	static const uint8_t none[6];

	return arp_frame(tx_frame(), 1, mac, my_ip, none, who, bcast);
}

/* Whether the frame is an ARP reply telling where `who` is; its MAC. */
static bool is_arp_reply(const uint8_t *f, unsigned len, uint32_t who, uint8_t *where)
{
	if (len < 42 || get16(f + 12) != ETH_ARP || get16(f + 20) != 2 || get32(f + 28) != who)
		return false;
	copy(where, f + 22, 6);
	return true;
}

/* An ARP exchange with the gateway, with receive buffer `id` posted for
 * the reply; prints the reply's length with `what`. */
static bool arp_exchange(const char *what, uint16_t id)
{
	uint8_t where[6];
	uint32_t got, len;

	rx_post(id, true);
	tx_send(arp_request(gateway), true);
	if (!rx_wait(&got, &len, 10)) {
		puts_dbg("FAIL ");
		puts_dbg(what);
		puts_dbg(": no ARP reply\n");
		failures++;
		return false;
	}
	expect("reply buffer", got, id);
	check("the reply is an ARP reply from 10.0.2.2",
	      len > NET_HDR && is_arp_reply(rx_buf[got] + NET_HDR, len - NET_HDR, gateway, where));
	expect("num_buffers", rx_buf[got][10] | rx_buf[got][11] << 8, 1);
	return true;
}

/* Answers an ARP request for our address: true if the frame was one. */
static bool arp_answer(const uint8_t *e, unsigned len)
{
	uint8_t *f;

	if (len < 42 || get16(e + 12) != ETH_ARP || get16(e + 20) != 1 || get32(e + 38) != my_ip)
		return false;
	f = tx_frame();
	tx_send(arp_frame(f, 2, mac, my_ip, e + 22, get32(e + 28), e + 22), true);
	return true;
}

/* --- the default run: DHCP and ARP --- */

static void print_option_ip(const char *name, const uint8_t *o)
{
	puts_dbg(name);
	put_ip(get32(o));
}

static void dhcp(void)
{
	uint32_t id, len, lease = 0;
	const uint8_t *b = NULL;
	uint8_t *f;

	for (uint16_t i = 0; i < 16; i++)
		rx_post(i, i == 15);
	f = tx_frame();
	tx_send(dhcp_discover(f, mac), true);
	puts_dbg("dhcp: DISCOVER sent\n");
	while (rx_wait(&id, &len, 10)) {
		const uint8_t *e = rx_buf[id] + NET_HDR;

		rx_post((uint16_t)id, true);
		/* IPv4, UDP from port 67 to 68, a reply with our xid. */
		if (len >= NET_HDR + 14 + 20 + 8 + 240 && get16(e + 12) == ETH_IP &&
		    e[23] == IP_UDP && get16(e + 34) == 67 && get16(e + 36) == 68 &&
		    e[42] == 2 && get32(e + 46) == DHCP_XID) {
			b = e + 42;
			break;
		}
	}
	if (!b) {
		puts_dbg("FAIL no DHCP OFFER\n");
		failures++;
		return;
	}
	check("the magic cookie", get32(b + 236) == 0x63825363);
	puts_dbg("dhcp: offer ");
	put_ip(get32(b + 16));
	for (unsigned o = 240; o + 1 < BOOTP_LEN && b[o] != 255;) {
		if (b[o] == 0) {
			o++;
			continue;
		}
		switch (b[o]) {
		case 53:
			puts_dbg(b[o + 2] == 2 ? ", type OFFER" : ", type not OFFER");
			break;
		case 1:
			print_option_ip(", mask ", b + o + 2);
			break;
		case 3:
			print_option_ip(", router ", b + o + 2);
			break;
		case 6:
			print_option_ip(", dns ", b + o + 2);
			break;
		case 54:
			print_option_ip(", server ", b + o + 2);
			break;
		case 51:
			lease = get32(b + o + 2);
			break;
		}
		o += 2u + b[o + 1];
	}
	puts_dbg(", lease ");
	put_dec(lease, 1);
	puts_dbg(" s\n");
}

static void arp_gateway(void)
{
	uint8_t where[6];
	uint32_t id, len;

	tx_send(arp_request(gateway), true);
	while (rx_wait(&id, &len, 10)) {
		bool ok = is_arp_reply(rx_buf[id] + NET_HDR, len - NET_HDR, gateway, where);

		rx_post((uint16_t)id, true);
		if (ok) {
			puts_dbg("arp: 10.0.2.2 is at ");
			put_mac(where);
			puts_dbg(", a reply of ");
			put_dec(len - NET_HDR, 1);
			puts_dbg(" bytes\n");
			return;
		}
	}
	puts_dbg("FAIL no ARP reply\n");
	failures++;
}

/* --- serve: ARP, ping, UDP echo, one TCP connection at a time --- */

enum { T_CLOSED, T_SYN_RCVD, T_SYN_SENT, T_OPEN };

/* One connection: the server's on port 22 (serve), or the client's
 * (tcp-to). */
static struct tcb {
	int state;
	bool client;
	uint16_t lport;
	uint8_t peer_mac[6];
	uint32_t peer;
	uint16_t port;
	uint32_t iss, snd_nxt, rcv_nxt;
	bool fin_sent, fin_acked, fin_rcvd;
	char line[64];
	unsigned got, answered;
} tcb;

static bool quit;

static void tcp_send(uint8_t flags, const void *data, unsigned len)
{
	uint8_t *f = tx_frame();

	tx_send(tcp_frame(f, tcb.peer_mac, mac, my_ip, tcb.lport, tcb.peer, tcb.port, tcb.snd_nxt,
			  tcb.rcv_nxt, flags, data, len), true);
}

static void tcp_answer(void)
{
	static const char banner[] = "vsrv micro-guest on port 22, you said: ";
	char out[sizeof(banner) + sizeof(tcb.line)];
	unsigned n = sizeof(banner) - 1;

	copy(out, banner, n);
	copy(out + n, tcb.line, tcb.got);
	n += tcb.got;
	tcp_send(TCP_ACK | TCP_PSH | TCP_FIN, out, n);
	tcb.snd_nxt += n + 1;
	tcb.fin_sent = true;
	tcb.answered = n;
}

static void tcp_input(const uint8_t *e, const uint8_t *ip, const uint8_t *t, unsigned seglen)
{
	unsigned hl = (unsigned)(t[12] >> 4) * 4;
	uint32_t seq = get32(t + 4), ack = get32(t + 8);
	uint8_t flags = t[13];
	unsigned plen = seglen - hl;

	if (hl < 20 || hl > seglen || get16(t + 2) != (tcb.client ? tcb.lport : 22))
		return;
	if (flags & TCP_RST) {
		tcb.state = T_CLOSED;
		return;
	}
	if (tcb.client && tcb.state == T_SYN_SENT) {
		static const char hello[] = "hello from the guest\n";

		if ((flags & (TCP_SYN | TCP_ACK)) != (TCP_SYN | TCP_ACK) || ack != tcb.iss + 1 ||
		    get32(ip + 12) != tcb.peer || get16(t) != tcb.port)
			return;
		tcb.rcv_nxt = seq + 1;
		tcb.state = T_OPEN;
		tcp_send(TCP_ACK | TCP_PSH, hello, sizeof(hello) - 1);
		tcb.snd_nxt += sizeof(hello) - 1;
		return;
	}
	if ((flags & TCP_SYN) && !tcb.client) {
		if (tcb.state != T_CLOSED && !(tcb.state == T_SYN_RCVD && tcb.port == get16(t)))
			return;
		zero(&tcb, sizeof(tcb));
		tcb.lport = 22;
		copy(tcb.peer_mac, e + 6, 6);
		tcb.peer = get32(ip + 12);
		tcb.port = get16(t);
		tcb.iss = 0x1000;
		tcb.snd_nxt = tcb.iss;
		tcb.rcv_nxt = seq + 1;
		tcb.state = T_SYN_RCVD;
		tcp_send(TCP_SYN | TCP_ACK, NULL, 0);
		tcb.snd_nxt = tcb.iss + 1;
		return;
	}
	if (tcb.state == T_CLOSED || get32(ip + 12) != tcb.peer || get16(t) != tcb.port)
		return;
	if (tcb.state == T_SYN_RCVD && (flags & TCP_ACK) && ack == tcb.iss + 1)
		tcb.state = T_OPEN;
	if (tcb.state != T_OPEN)
		return;
	if (tcb.fin_sent && (flags & TCP_ACK) && ack == tcb.snd_nxt)
		tcb.fin_acked = true;
	if (plen && seq == tcb.rcv_nxt) {
		for (unsigned i = 0; i < plen && tcb.got < sizeof(tcb.line); i++)
			tcb.line[tcb.got++] = (char)t[hl + i];
		tcb.rcv_nxt += plen;
		if (!tcb.client && !tcb.fin_sent && tcb.got && tcb.line[tcb.got - 1] == '\n')
			tcp_answer();
		else
			tcp_send(TCP_ACK, NULL, 0);
	} else if (plen) {
		tcp_send(TCP_ACK, NULL, 0);	/* a repeat: ack what we have */
	}
	if ((flags & TCP_FIN) && seq + plen == tcb.rcv_nxt) {
		tcb.rcv_nxt++;
		tcb.fin_rcvd = true;
		/* The client closes when the server has. */
		tcp_send(tcb.client ? TCP_ACK | TCP_FIN : TCP_ACK, NULL, 0);
		if (tcb.client) {
			tcb.snd_nxt++;
			tcb.fin_sent = true;
		}
	}
	if (tcb.fin_sent && tcb.fin_acked && tcb.fin_rcvd && tcb.client) {
		puts_dbg("tcp: connected to ");
		put_ip(tcb.peer);
		puts_dbg(" port ");
		put_dec(tcb.port, 1);
		puts_dbg(", got ");
		put_dec(tcb.got, 1);
		puts_dbg(" bytes: ");
		for (unsigned i = 0; i < tcb.got; i++)
			outb(0xe9, tcb.line[i] >= ' ' && tcb.line[i] < 0x7f ? (uint8_t)tcb.line[i] : '.');
		puts_dbg(", closed\n");
		tcb.state = T_CLOSED;
	} else if (tcb.fin_sent && tcb.fin_acked && tcb.fin_rcvd) {
		puts_dbg("tcp: ");
		put_ip(tcb.peer);
		puts_dbg(" said ");
		put_dec(tcb.got, 1);
		puts_dbg(" bytes, answered ");
		put_dec(tcb.answered, 1);
		puts_dbg(", closed\n");
		tcb.state = T_CLOSED;
	}
}

static void udp_input(const uint8_t *e, const uint8_t *ip, const uint8_t *u, unsigned len)
{
	unsigned n = get16(u + 4);
	uint8_t *f;

	if (get16(u + 2) != 7 || n < 8 || n > len)
		return;
	n -= 8;
	quit = n == 4 && same(u + 8, "quit", 4);
	f = tx_frame();
	tx_send(udp_frame(f, e + 6, mac, my_ip, 7, get32(ip + 12), get16(u), quit ? (const void *)"bye" : u + 8,
			  quit ? 3 : n), true);
	if (quit) {
		puts_dbg("udp: quit\n");
		return;
	}
	puts_dbg("udp: echoed ");
	put_dec(n, 1);
	puts_dbg(" bytes to ");
	put_ip(get32(ip + 12));
	puts_dbg("\n");
}

static void icmp_input(const uint8_t *e, const uint8_t *ip, const uint8_t *c, unsigned len)
{
	uint8_t *f, *r;

	if (len < 8 || c[0] != 8 || len > BUF - NET_HDR - 34)
		return;
	f = tx_frame();
	r = f + eth_header(f, e + 6, mac, ETH_IP);
	r += ip_header(r, IP_ICMP, my_ip, get32(ip + 12), len);
	copy(r, c, len);
	r[0] = 0;	/* echo reply */
	put16(r + 2, 0);
	put16(r + 2, csum_fold(csum_add(0, r, len)));
	tx_send(14 + 20 + len, true);
	puts_dbg("icmp: echo reply to ");
	put_ip(get32(ip + 12));
	puts_dbg(", ");
	put_dec(len, 1);
	puts_dbg(" bytes\n");
}

static void frame_input(const uint8_t *e, unsigned len)
{
	const uint8_t *ip = e + 14;
	unsigned hl, total;

	if (arp_answer(e, len))
		return;
	if (len < 34 || get16(e + 12) != ETH_IP || (ip[0] >> 4) != 4 || get32(ip + 16) != my_ip)
		return;
	hl = (ip[0] & 15u) * 4;
	total = get16(ip + 2);
	if (hl < 20 || total < hl || total > len - 14 || csum_fold(csum_add(0, ip, hl)))
		return;
	if (ip[9] == IP_TCP && total - hl >= 20 &&
	    l4_csum(get32(ip + 12), my_ip, IP_TCP, ip + hl, total - hl) == 0)
		tcp_input(e, ip, ip + hl, total - hl);
	else if (ip[9] == IP_UDP && total - hl >= 8)
		udp_input(e, ip, ip + hl, total - hl);
	else if (ip[9] == IP_ICMP)
		icmp_input(e, ip, ip + hl, total - hl);
}

static void serve(void)
{
	uint32_t id, len;

	for (uint16_t i = 0; i < 32; i++)
		rx_post(i, i == 31);
	puts_dbg("serve: 10.0.2.15 ready\n");
	while (!quit) {
		if (!rx_wait(&id, &len, 3600))
			break;
		if (len > NET_HDR)
			frame_input(rx_buf[id] + NET_HDR, len - NET_HDR);
		rx_post((uint16_t)id, true);
	}
	tx_drain();
}

/* --- udp-to: a datagram out, through slirp's NAT or its DNS forwarder --- */

/* A dotted quad at s, or 0. */
static uint32_t parse_ip(const char *s)
{
	uint32_t a = 0;

	for (int i = 0; i < 4; i++, s++) {
		unsigned v = 0, n = 0;

		for (; *s >= '0' && *s <= '9' && n < 3; s++, n++)
			v = v * 10 + (unsigned)(*s - '0');
		if (!n || v > 255 || *s != (i == 3 ? *s : '.'))
			return 0;
		a = a << 8 | v;
	}
	return a;
}

static void udp_to(uint32_t dst, uint16_t port)
{
	static const char hello[] = "hello from the guest";
	static const uint8_t gw_mac[6] = { 0x52, 0x55, 0x0a, 0x00, 0x02, 0x02 };
	uint32_t id, len;
	uint8_t *f;

	for (uint16_t i = 0; i < 16; i++)
		rx_post(i, i == 15);
	f = tx_frame();
	tx_send(udp_frame(f, gw_mac, mac, my_ip, 1234, dst, port, hello, sizeof(hello) - 1), true);
	while (rx_wait(&id, &len, 20)) {
		const uint8_t *e = rx_buf[id] + NET_HDR, *u = e + 34;

		rx_post((uint16_t)id, true);
		/* slirp asks where we are before it forwards the answer. */
		if (len < NET_HDR + 42 || arp_answer(e, len - NET_HDR) ||
		    get16(e + 12) != ETH_IP || e[23] != IP_UDP ||
		    get16(u + 2) != 1234 || get16(u + 4) < 8 || get16(u + 4) > len - NET_HDR - 34)
			continue;
		puts_dbg("udp: ");
		put_dec(get16(u + 4) - 8u, 1);
		puts_dbg(" bytes back from ");
		put_ip(get32(e + 26));
		puts_dbg(" port ");
		put_dec(get16(u), 1);
		puts_dbg(": ");
		for (unsigned i = 8; i < get16(u + 4); i++)
			outb(0xe9, u[i] >= ' ' && u[i] < 0x7f ? u[i] : '.');
		puts_dbg("\n");
		return;
	}
	puts_dbg("FAIL no answer\n");
	failures++;
}

/* A connection to dst:port through slirp, a line sent, the answer read
 * until the server closes, then closed. */
static void tcp_to(uint32_t dst, uint16_t port)
{
	static const uint8_t gw_mac[6] = { 0x52, 0x55, 0x0a, 0x00, 0x02, 0x02 };
	uint32_t id, len;

	for (uint16_t i = 0; i < 16; i++)
		rx_post(i, i == 15);
	zero(&tcb, sizeof(tcb));
	tcb.client = true;
	tcb.lport = 40000;
	copy(tcb.peer_mac, gw_mac, 6);
	tcb.peer = dst;
	tcb.port = port;
	tcb.iss = 0x2000;
	tcb.snd_nxt = tcb.iss;
	tcb.state = T_SYN_SENT;
	tcp_send(TCP_SYN, NULL, 0);
	tcb.snd_nxt++;
	while (tcb.state != T_CLOSED && rx_wait(&id, &len, 20)) {
		if (len > NET_HDR)
			frame_input(rx_buf[id] + NET_HDR, len - NET_HDR);
		rx_post((uint16_t)id, true);
	}
	if (tcb.state != T_CLOSED) {
		puts_dbg("FAIL the connection did not close\n");
		failures++;
	}
	tx_drain();
}

/* --- drop: frames with nowhere to go --- */

static void drop(void)
{
	unsigned replies = 0;
	uint32_t id, len;
	uint8_t where[6];

	/* Each batch shown to the device at once: its first look at the
	 * queues (DRIVER_OK rings every doorbell) may come at any moment, and
	 * must not split a batch into two (and two interrupts, which the
	 * test counts). */
	for (unsigned i = 0; i < 70; i++)
		tx_put(arp_request(gateway));
	vq_publish(&txq, true);
	tx_drain();
	puts_dbg("drop: 70 ARP requests sent, no receive buffer posted\n");
	for (uint16_t i = 0; i < RXQ_SIZE; i++)
		rx_put(i);
	vq_publish(&rxq, true);
	while (rx_wait(&id, &len, 2))
		replies += is_arp_reply(rx_buf[id] + NET_HDR, len - NET_HDR, gateway, where);
	puts_dbg("drop: ");
	put_dec(replies, 1);
	puts_dbg(" replies once 64 buffers were posted\n");
}

/* --- checkpoint --- */

static void checkpoint(void)
{
	int32_t r;

	if (!arp_exchange("before", 0))
		return;
	outb(0xea, 0);
	r = (int32_t)inl(0xea);
	expect("checkpoint result", (uint32_t)r, 0);
	check("still DRIVER_OK", vdev_status(&dev) == (S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK |
						   S_DRIVER_OK));
	for (unsigned i = 0; i < 6; i++)
		expect("mac after the checkpoint", mmio_read8(dev.device + i), mac[i]);
	if (!arp_exchange("after", 1))
		return;
	puts_dbg("checkpoint: saved and loaded, the MAC kept, ARP again\n");
}

/* --- a broken driver --- */

/* A transmit chain of one buffer of `len` bytes at `buf`, at BAD_TX_HEAD;
 * waits for it back: its used length. */
static uint32_t bad_tx(void *buf, uint32_t len, bool second_writable)
{
	static uint8_t spare[64];
	uint32_t id = 0xffff, used = 0xffff;

	txq.desc[BAD_TX_HEAD] = (struct vdesc){ (uint64_t)buf, len,
						second_writable ? D_NEXT : 0, BAD_TX_HEAD + 1 };
	txq.desc[BAD_TX_HEAD + 1] = (struct vdesc){ (uint64_t)spare, sizeof(spare), D_WRITE, 0 };
	tx_reap();
	vq_add(&txq, BAD_TX_HEAD, true);
	for (unsigned long end = ticks + 10 * HZ; !vq_used(&txq, &id, &used) && ticks < end;)
		idle();
	expect("the refused chain's head", id, BAD_TX_HEAD);
	return used;
}

static void run_case(const char *name)
{
	uint8_t *frame = big + NET_HDR;
	uint32_t id, len, used = 0;
	bool rx = name[0] == 'r';

	zero(big, NET_HDR + 64);
	arp_frame(frame, 1, mac, my_ip, bcast, gateway, bcast);
	if (!str_cmp(name, "tx-no-header")) {
		used = bad_tx(big, 8, false);
	} else if (!str_cmp(name, "tx-runt")) {
		used = bad_tx(big, NET_HDR + 10, false);
	} else if (!str_cmp(name, "tx-oversize")) {
		used = bad_tx(big, NET_HDR + 65537, false);
	} else if (!str_cmp(name, "tx-offload")) {
		big[0] = 1;	/* VIRTIO_NET_HDR_F_NEEDS_CSUM */
		used = bad_tx(big, NET_HDR + 42, false);
	} else if (!str_cmp(name, "tx-writable")) {
		used = bad_tx(big, NET_HDR + 42, true);
	} else if (rx) {
		/* The bad buffer first, then a good one; an ARP request
		 * brings a reply. */
		if (!str_cmp(name, "rx-readable"))
			rxq.desc[BAD_RX_HEAD] = (struct vdesc){ (uint64_t)rx_buf[BAD_RX_HEAD], 64, 0, 0 };
		else
			rxq.desc[BAD_RX_HEAD] = (struct vdesc){
				(uint64_t)rx_buf[BAD_RX_HEAD],
				!str_cmp(name, "rx-no-header") ? 8 : NET_HDR + 20, D_WRITE, 0 };
		vq_add(&rxq, BAD_RX_HEAD, false);
		rx_post(0, true);
		tx_send(arp_request(gateway), true);
		if (!rx_wait(&id, &len, 10)) {
			puts_dbg("FAIL no used receive buffer\n");
			failures++;
			return;
		}
		expect("the bad buffer given back first", id, BAD_RX_HEAD);
		used = len;
		if (str_cmp(name, "rx-too-small")) {
			/* The frame went to the next buffer. */
			if (!rx_wait(&id, &len, 10))
				check("the reply in the next buffer", false);
			else
				expect("the reply in the next buffer", id, 0);
		} else {
			/* That frame was lost: the good buffer is still ours
			 * to wait on, and the next exchange uses it. */
			check("nothing more used", !rx_wait(&id, &len, 1));
		}
	} else {
		puts_dbg("FAIL no such case\n");
		failures++;
		return;
	}
	expect("used length of the refused chain", used, 0);
	check("not NEEDS_RESET", !(vdev_status(&dev) & S_NEEDS_RESET));
	if (!str_cmp(name, "rx-too-small")) {
		/* Buffer 0 is still available: a new request's reply lands there. */
		tx_send(arp_request(gateway), true);
		if (!rx_wait(&id, &len, 10) || id != 0) {
			check("the next reply in buffer 0", false);
			return;
		}
	} else if (!arp_exchange(name, 1)) {
		return;
	}
	puts_dbg(name);
	puts_dbg(rx ? ": refused, receiving still works\n" : ": refused, sending still works\n");
}

static const char *const cases[] = {
	"tx-no-header", "tx-runt", "tx-oversize", "tx-offload", "tx-writable",
	"rx-no-header", "rx-readable", "rx-too-small",
};

/* --- set-up --- */

static void print_features(uint64_t f)
{
	static const struct {
		unsigned bit;
		const char *name;
	} names[] = {
		{ F_VERSION_1, "version_1" }, { F_INDIRECT_DESC, "indirect_desc" },
		{ F_EVENT_IDX, "event_idx" }, { F_NET_MAC, "mac" }, { F_NET_STATUS, "status" },
	};

	puts_dbg("features:");
	for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (f & 1ull << names[i].bit) {
			puts_dbg(" ");
			puts_dbg(names[i].name);
		}
		f &= ~(1ull << names[i].bit);
	}
	if (f) {
		puts_dbg(" and 0x");
		put_hex(f, 16);
	}
	puts_dbg("\n");
}

static bool init(void)
{
	uint64_t want = 1ull << F_VERSION_1 | 1ull << F_NET_MAC | 1ull << F_NET_STATUS;
	uint16_t status;

	vdev_reset(&dev);
	vdev_set_status(&dev, S_ACKNOWLEDGE);
	vdev_set_status(&dev, S_ACKNOWLEDGE | S_DRIVER);
	print_features(vdev_features(&dev));
	vdev_set_features(&dev, want & vdev_features(&dev));
	vdev_set_status(&dev, S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK);
	if (!(vdev_status(&dev) & S_FEATURES_OK))
		return false;
	msix_set(&dev, 0, VEC_CONFIG);
	msix_set(&dev, 1, VEC_QUEUE);
	msix_enable(&dev, true);
	mmio_write16(dev.common + C_MSIX, 0);
	vq_setup(&dev, &rxq, 0, RXQ_SIZE, rx_desc, rx_avail, rx_used, 1);
	vq_setup(&dev, &txq, 1, TXQ_SIZE, tx_desc, tx_avail, tx_used, NO_VECTOR);
	vdev_set_status(&dev, S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
	for (unsigned i = 0; i < 6; i++)
		mac[i] = mmio_read8(dev.device + i);
	status = mmio_read16(dev.device + 6);
	puts_dbg("net: mac ");
	put_mac(mac);
	puts_dbg(", status 0x");
	put_hex(status, 1);
	puts_dbg(status & 1 ? " (link up)\n" : " (link down)\n");
	return !(vdev_status(&dev) & S_NEEDS_RESET);
}

/* Every virtio-net function on the bus and its MAC (the configuration
 * is readable before any driver set-up). */
static void list_nics(void)
{
	for (unsigned s = 0; s < 32; s++) {
		struct vdev v;

		if (cfg_read32(s, 0) != ((uint32_t)VIRTIO_NET_DEVICE << 16 | VIRTIO_VENDOR) ||
		    !vdev_probe(&v, s) || !v.device)
			continue;
		puts_dbg("nic 00:");
		put_hex(s, 2);
		puts_dbg(".0 mac ");
		for (unsigned i = 0; i < 6; i++) {
			put_hex(mmio_read8(v.device + i), 2);
			if (i < 5)
				puts_dbg(":");
		}
		puts_dbg("\n");
	}
}

int guest_main(void)
{
	const char *c;
	int slot;

	interrupts_init();
	idt_set(VEC_CONFIG, on_config);
	idt_set(VEC_QUEUE, on_queue);
	idt_set(VEC_TICK, on_tick);
	mmio_write32(LAPIC + APIC_TIMER_DIV, 0xb);		/* divide by 1: 1 GHz */
	mmio_write32(LAPIC + APIC_LVT_TIMER, LVT_PERIODIC | VEC_TICK);
	mmio_write32(LAPIC + APIC_TIMER_INIT, 1000000000u / HZ);
	list_nics();
	slot = pci_find(VIRTIO_VENDOR, VIRTIO_NET_DEVICE);
	if (slot < 0 || !vdev_probe(&dev, (unsigned)slot) || !dev.device || !dev.msix_cap) {
		puts_dbg("FAIL no virtio-net\n");
		return 1;
	}
	puts_dbg("pci 00:");
	put_hex((unsigned)slot, 2);
	puts_dbg(".0 virtio-net, class ");
	put_hex(cfg_read32(dev.slot, 8) >> 8, 6);
	puts_dbg(", ");
	put_dec(mmio_read16(dev.common + C_NUMQ), 1);
	puts_dbg(" queues\n");
	cfg_write16(dev.slot, 4, cfg_read16(dev.slot, 4) | 4);	/* bus master */
	if (!init()) {
		puts_dbg("FAIL initialisation, status 0x");
		put_hex(vdev_status(&dev), 2);
		puts_dbg("\n");
		return 1;
	}
	c = cmdline_find("case", true);
	if (cmdline_has("serve")) {
		serve();
	} else if (cmdline_find("tcp-to", true)) {
		tcp_to(parse_ip(cmdline_find("tcp-to", true)), (uint16_t)cmdline_num("port", 7));
	} else if (cmdline_find("udp-to", true)) {
		udp_to(parse_ip(cmdline_find("udp-to", true)), (uint16_t)cmdline_num("port", 7));
	} else if (cmdline_has("drop")) {
		drop();
	} else if (cmdline_has("checkpoint")) {
		checkpoint();
	} else if (c && cmdline_has("case=all")) {
		for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
			run_case(cases[i]);
	} else if (c) {
		char name[32];
		unsigned n = 0;

		while (c[n] && c[n] != ' ' && n < sizeof(name) - 1) {
			name[n] = c[n];
			n++;
		}
		name[n] = '\0';
		run_case(name);
	} else {
		dhcp();
		arp_gateway();
	}
	expect("configuration interrupts", n_config, 0);
	if (failures)
		return 1;
	puts_dbg("net ok\n");
	return 0;
}
