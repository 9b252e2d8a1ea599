// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * virtio-net transmit as fast as the ring allows, for bench/devices-run and
 * tests/integration/test_devbench.py: one UDP datagram a frame, every entry
 * of the 256-entry transmit queue in flight, each completion polled for
 * and the frame made available again at once, at CPL3 (bench-guest.h says
 * how, and how the host starts the phase and reads its counts through the
 * mailbox disk).  Nothing is received: the receive queue is set up with
 * no buffers.
 *
 * The command line:
 *   count=N    frames (default 1000)
 *   dmac=MAC   the frames' destination (default 52:55:0a:00:02:02,
 *              libslirp's gateway)
 *   src=IP     the source address (default 10.0.2.15, user networking's)
 *   dst=IP     the destination (default 10.0.2.2: the host's 127.0.0.1
 *              through user networking)
 *   port=N     the destination port (default 9); the source port is 40000
 *   len=N      payload bytes, 'a' to 'z' over and over (default 18: a
 *              60-byte frame; at most 1472)
 * The frames are valid Ethernet, IPv4 (header checksummed) and UDP
 * (checksum 0: none), all alike.  Each completion must have the used
 * length 0.  Prints the phase's counts, then "bench-net: done"; exits 0,
 * or 1 after an error, 2 when the devices are not as expected.
 */
#include "bench-guest.h"

#define QSIZE		256
#define FRAME_MAX	(14 + 20 + 8 + 1472)
#define SLOT		(NET_HDR + FRAME_MAX + 2)	/* 1528: 8-byte aligned */
#define SPORT		40000

static struct vdev nic;
static struct bench_q rxq, txq;
static struct vdesc rx_desc[QSIZE] __attribute__((aligned(4096)));
static uint16_t rx_avail[3 + QSIZE] __attribute__((aligned(4096)));
static uint32_t rx_used[2 + 2 * QSIZE + 1] __attribute__((aligned(4096)));
static struct vdesc tx_desc[QSIZE] __attribute__((aligned(4096)));
static uint16_t tx_avail[3 + QSIZE] __attribute__((aligned(4096)));
static uint32_t tx_used[2 + 2 * QSIZE + 1] __attribute__((aligned(4096)));

static uint8_t tx_buf[QSIZE][SLOT] __attribute__((aligned(64)));
static uint8_t frame[FRAME_MAX], payload[1472];
static unsigned frame_len;
static uint8_t mac[6], dmac[6] = { 0x52, 0x55, 0x0a, 0x00, 0x02, 0x02 };
static uint64_t count;

/* "a.b.c.d" */
static bool parse_ip(const char *s, uint32_t *ip)
{
	uint32_t v = 0;

	for (int i = 0; i < 4; i++) {
		unsigned n = 0, digits = 0;

		for (; *s >= '0' && *s <= '9' && digits < 3; s++, digits++)
			n = n * 10 + (unsigned)(*s - '0');
		if (!digits || n > 255 || *s != (i < 3 ? '.' : 0))
			return false;
		s += i < 3;
		v = v << 8 | n;
	}
	*ip = v;
	return true;
}

/* "xx:xx:xx:xx:xx:xx", lower-case hex */
static bool parse_mac(const char *s, uint8_t *m)
{
	for (int i = 0; i < 6; i++) {
		unsigned v = 0;

		for (int d = 0; d < 2; d++, s++) {
			if (*s >= '0' && *s <= '9')
				v = v * 16 + (unsigned)(*s - '0');
			else if (*s >= 'a' && *s <= 'f')
				v = v * 16 + (unsigned)(*s - 'a' + 10);
			else
				return false;
		}
		if (*s != (i < 5 ? ':' : 0))
			return false;
		s += i < 5;
		m[i] = (uint8_t)v;
	}
	return true;
}

static void done(uint32_t id, uint32_t len, struct bench_result *r)
{
	if ((id >= QSIZE || len) && r->errors++ < 3)
		rt_printf("FAIL transmit completion: id %u, used length %u\n", id, len);
}

static bool again(uint32_t id)
{
	if (id >= QSIZE)
		return false;
	vq_put(&txq.q, (uint16_t)id);
	return true;
}

static void run(struct bench_result *r)
{
	struct vq *q = &txq.q;
	uint64_t issued = 0;

	for (unsigned k = 0; k < QSIZE; k++) {
		zero(tx_buf[k], NET_HDR);
		copy(tx_buf[k] + NET_HDR, frame, frame_len);
		q->desc[k] = (struct vdesc){ (uint64_t)tx_buf[k], NET_HDR + frame_len, 0, 0 };
	}
	for (unsigned k = 0; k < QSIZE && issued < count; k++, issued++)
		vq_put(q, (uint16_t)k);
	bench_loop(&txq, r, count, issued, done, again);
}

static void __attribute__((noreturn)) user_main(void)
{
	struct bench_result r;

	bench_phase(1, 't', &r, run);
	rt_printf("bench-net: done\n");
	guest_exit(r.errors || r.completed != count);
}

static bool nic_init(void)
{
	const uint64_t want = 1ull << F_VERSION_1 | 1ull << F_EVENT_IDX | 1ull << F_NET_MAC;
	int slot = bench_find(VIRTIO_NET_DEVICE, 0);

	if (slot < 0 || !vdev_probe(&nic, (unsigned)slot) ||
	    (vdev_features(&nic) & want) != want || !bench_dev_init(&nic, (unsigned)slot, want))
		return false;
	bench_q_setup(&nic, &rxq, 0, QSIZE, rx_desc, rx_avail, rx_used);
	bench_q_setup(&nic, &txq, 1, QSIZE, tx_desc, tx_avail, tx_used);
	for (int i = 0; i < 6; i++)
		mac[i] = mmio_read8(nic.device + (unsigned)i);
	return bench_dev_ok(&nic);
}

int main(void)
{
	char s[32];
	uint32_t src = IP(10, 0, 2, 15), dst = IP(10, 0, 2, 2);
	uint64_t port = rt_arg("port", 9), len = rt_arg("len", 18);

	bench_quiet();
	count = rt_arg("count", 1000);
	if ((rt_arg_str("dmac", s, sizeof(s)) && !parse_mac(s, dmac)) ||
	    (rt_arg_str("src", s, sizeof(s)) && !parse_ip(s, &src)) ||
	    (rt_arg_str("dst", s, sizeof(s)) && !parse_ip(s, &dst)) ||
	    !port || port > 65535 || len > sizeof(payload)) {
		rt_printf("FAIL dmac=MAC src=IP dst=IP port=1-65535 len=0-%u\n",
			  (unsigned)sizeof(payload));
		return 2;
	}
	if (!nic_init()) {
		rt_printf("FAIL no virtio-net (with event_idx and mac)\n");
		return 2;
	}
	if (!mb_init()) {
		rt_printf("FAIL no mailbox (a virtio-blk of %u sectors)\n", MB_SECTORS);
		return 2;
	}
	for (unsigned i = 0; i < len; i++)
		payload[i] = (uint8_t)('a' + i % 26);
	frame_len = udp_frame(frame, dmac, mac, src, SPORT, dst, (uint16_t)port, payload,
			      (unsigned)len);
	puts_dbg("bench-net: ");
	put_mac(mac);
	puts_dbg(" to ");
	put_mac(dmac);
	puts_dbg(", ");
	put_ip(src);
	rt_printf(":%u to ", SPORT);
	put_ip(dst);
	rt_printf(":%lu, %u-byte frames, %lu of them\nready\n", port, frame_len, count);
	rt_enter_user(user_main, RT_USER_STACK_TOP);
}
