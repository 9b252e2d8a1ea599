// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * virtio-blk as a guest driver uses it (vsrv run --disk): finds the device
 * on the bus, prints its features and configuration, sets up every queue
 * it offers (up to four) with an MSI-X vector each, and makes requests
 * whose answers it prints, so that the test (tests/integration/
 * test_virtio_blk.py), which made the disk, compares them with the bytes
 * it knows, and afterwards checks on the host what the guest wrote.
 *
 * The default run: reads (sector 0, the last 8 sectors), GET_ID, a write
 * through an indirect table read back, a flush, discards, write-zeroes
 * read back, a read past the end, a read on every queue at once and five
 * reads in flight on one queue.  On a read-only disk (VIRTIO_BLK_F_RO)
 * the write must fail and the discard is not negotiated.  The command
 * line picks other runs:
 *   noflush     VIRTIO_BLK_F_FLUSH not negotiated (and no flush sent): the
 *               device must make each write stable before answering it
 *   checkpoint  the test device saves and loads every device's state
 *               between two reads (port 0xea)
 *   reboot      the first boot marks sector 1 and resets the machine;
 *               the boot that finds the mark writes sector 2 and ends
 *   tick        marks sector 1, then on every tick of the local APIC's
 *               timer (hz=N, default 20) reads 4 KiB and prints it, until
 *               the VM is stopped: for the control socket's stats and for
 *               saved state, whose restore goes on with the next tick
 *   count       on every tick (hz=N) checks that the sector of its last
 *               count holds it, then writes the next count into a sector
 *               of its own (COUNT_SECTOR + n % COUNT_SECTORS: "count N",
 *               zero-padded) and prints "count N: sector S": for
 *               checkpoints, whose revert brings back the disk with the
 *               memory (the count goes on from the checkpoint's, and the
 *               sector it checks holds it)
 * Prints what it finds, then "blk ok"; exits 0, or 1 after FAIL lines.
 */
#include "virtio-blk-guest.h"

static struct vdev dev;
static uint64_t capacity;
static bool ro;
static uint8_t buf[4096] __attribute__((aligned(4096)));
static uint8_t buf2[4096] __attribute__((aligned(4096)));
static uint8_t qbuf[BQ_SLOTS][512] __attribute__((aligned(512)));
static struct vdesc table[3] __attribute__((aligned(16)));
static struct blk_seg segs[2];

static void print_features(uint64_t f)
{
	static const struct {
		unsigned bit;
		const char *name;
	} names[] = {
		{ BLK_F_SIZE_MAX, "size_max" }, { BLK_F_SEG_MAX, "seg_max" },
		{ BLK_F_GEOMETRY, "geometry" }, { BLK_F_RO, "ro" },
		{ BLK_F_BLK_SIZE, "blk_size" }, { BLK_F_FLUSH, "flush" },
		{ BLK_F_TOPOLOGY, "topology" }, { BLK_F_CONFIG_WCE, "config_wce" },
		{ BLK_F_MQ, "mq" }, { BLK_F_DISCARD, "discard" },
		{ BLK_F_WRITE_ZEROES, "write_zeroes" }, { F_INDIRECT_DESC, "indirect_desc" },
		{ F_EVENT_IDX, "event_idx" }, { F_VERSION_1, "version_1" },
	};

	puts_dbg("features:");
	for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (f & 1ull << names[i].bit) {
			puts_dbg(" ");
			puts_dbg(names[i].name);
		}
	}
	puts_dbg("\n");
}

static void print_config(void)
{
	capacity = mmio_read64(dev.device + CFG_CAPACITY);
	puts_dbg("config: capacity ");
	put_dec(capacity, 1);
	puts_dbg(", size_max ");
	put_dec(cfg32(&dev, CFG_SIZE_MAX), 1);
	puts_dbg(", seg_max ");
	put_dec(cfg32(&dev, CFG_SEG_MAX), 1);
	puts_dbg(", blk_size ");
	put_dec(cfg32(&dev, CFG_BLK_SIZE), 1);
	puts_dbg(", topology ");
	put_dec(mmio_read8(dev.device + CFG_PHYS_EXP), 1);
	puts_dbg(" ");
	put_dec(mmio_read8(dev.device + CFG_ALIGN_OFF), 1);
	puts_dbg(" ");
	put_dec(mmio_read16(dev.device + CFG_MIN_IO), 1);
	puts_dbg(" ");
	put_dec(cfg32(&dev, CFG_OPT_IO), 1);
	puts_dbg(", num_queues ");
	put_dec(mmio_read16(dev.device + CFG_NUM_QUEUES), 1);
	puts_dbg("\nconfig: discard ");
	put_dec(cfg32(&dev, CFG_MAX_DISCARD), 1);
	puts_dbg(" sectors, ");
	put_dec(cfg32(&dev, CFG_DISCARD_SEG), 1);
	puts_dbg(" segments, alignment ");
	put_dec(cfg32(&dev, CFG_DISCARD_ALIGN), 1);
	puts_dbg("; write-zeroes ");
	put_dec(cfg32(&dev, CFG_MAX_ZEROES), 1);
	puts_dbg(" sectors, ");
	put_dec(cfg32(&dev, CFG_ZEROES_SEG), 1);
	puts_dbg(" segments, may unmap ");
	put_dec(mmio_read8(dev.device + CFG_ZEROES_UNMAP), 1);
	puts_dbg("\n");
}

/* "NAME sector A: status S", "NAME sectors A-B: status S" */
static void say(const char *what, uint64_t first, uint64_t n, unsigned status)
{
	puts_dbg(what);
	puts_dbg(n == 1 ? " sector " : " sectors ");
	put_dec(first, 1);
	if (n > 1) {
		puts_dbg("-");
		put_dec(first + n - 1, 1);
	}
	puts_dbg(": status ");
	put_dec(status, 1);
}

static void read_print(uint64_t sector, unsigned n)
{
	uint32_t used = 0;
	unsigned s = bq_do(0, T_IN, sector, buf, n * 512, &used);

	say("read", sector, n, s);
	puts_dbg(", used ");
	put_dec(used, 1);
	puts_dbg(", fnv1a ");
	put_hex(fnv1a(buf, n * 512), 8);
	puts_dbg("\n");
}

static void get_id(void)
{
	uint32_t used = 0;
	char id[21] = "";
	unsigned s;

	for (unsigned i = 0; i < 20; i++)
		buf[i] = 0xee;
	s = bq_do(0, T_GET_ID, 0, buf, 20, &used);
	for (unsigned i = 0; i < 20; i++)
		id[i] = (char)buf[i];
	puts_dbg("get-id: status ");
	put_dec(s, 1);
	puts_dbg(", used ");
	put_dec(used, 1);
	puts_dbg(", \"");
	puts_dbg(id);
	puts_dbg("\"\n");
}

/* The pattern the test expects in sectors 16-23 after a write. */
static uint8_t pattern(unsigned i)
{
	return (uint8_t)(i * 7 + 3 + (i >> 9));
}

/* Sectors 16-23 through an indirect table: header, data, status. */
static void write_indirect(void)
{
	struct bq *q = &bqs[0];
	uint32_t id = 0xffff, used = 0;

	for (unsigned i = 0; i < 4096; i++)
		buf[i] = pattern(i);
	bq_hdr[0][0] = (struct blk_hdr){ T_OUT, 0, 16 };
	bq_status[0][0] = 0xff;
	table[0] = (struct vdesc){ (uint64_t)&bq_hdr[0][0], 16, D_NEXT, 1 };
	table[1] = (struct vdesc){ (uint64_t)buf, 4096, D_NEXT, 2 };
	table[2] = (struct vdesc){ (uint64_t)&bq_status[0][0], 1, D_WRITE, 0 };
	q->desc[0] = (struct vdesc){ (uint64_t)table, sizeof(table), D_INDIRECT, 0 };
	bq_publish(q, 0);
	bq_kick(q);
	if (!bq_take(q, &id, &used))
		check("an answer to the write", false);
	say("write (indirect)", 16, 8, bq_status[0][0]);
	puts_dbg(", used ");
	put_dec(used, 1);
	puts_dbg("\n");
}

static void write_and_read_back(void)
{
	bool same = true;
	unsigned s;

	write_indirect();
	s = bq_do(0, T_IN, 16, buf2, 4096, NULL);
	for (unsigned i = 0; i < 4096; i++)
		same = same && buf2[i] == pattern(i);
	say("read", 16, 8, s);
	if (ro) {
		puts_dbg(", fnv1a ");
		put_hex(fnv1a(buf2, 4096), 8);
		puts_dbg("\n");
		return;
	}
	puts_dbg(same ? ", the bytes written\n" : ", FAIL not the bytes written\n");
	failures += !same;
}

static void ranges(void)
{
	bool zero = true;
	unsigned s;

	segs[0] = (struct blk_seg){ 64, 8, 0 };
	segs[1] = (struct blk_seg){ 256, 8, 0 };
	s = bq_do(0, T_DISCARD, 0, segs, sizeof(segs), NULL);
	puts_dbg("discard sectors 64-71 and 256-263: status ");
	put_dec(s, 1);
	puts_dbg("\n");
	if (ro)
		return;
	segs[0] = (struct blk_seg){ 128, 8, 0 };
	segs[1] = (struct blk_seg){ 136, 8, 1 };	/* VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP */
	s = bq_do(0, T_WRITE_ZEROES, 0, segs, sizeof(segs), NULL);
	puts_dbg("write-zeroes sectors 128-135, and 136-143 unmapping: status ");
	put_dec(s, 1);
	puts_dbg("\n");
	for (unsigned half = 0; half < 2; half++) {
		s = bq_do(0, T_IN, 128 + 8 * half, buf, 4096, NULL);
		zero = zero && s == S_OK && !nonzero(buf, 4096);
	}
	puts_dbg(zero ? "read sectors 128-143: zeros\n" : "read sectors 128-143: FAIL not zeros\n");
	failures += !zero;
}

/* A read on each queue, all rung before any is waited for: each answered
 * and interrupting on its own queue's vector. */
static void all_queues(unsigned nq)
{
	unsigned before[NQ];
	bool each = true;

	for (unsigned i = 0; i < nq; i++) {
		before[i] = n_bq[i];
		bq_request(&bqs[i], 0, T_IN, 32 + 8 * i, qbuf[i], 512);
	}
	for (unsigned i = 0; i < nq; i++)
		bq_kick(&bqs[i]);
	for (unsigned i = 0; i < nq; i++) {
		uint32_t id, len;
		uint64_t end = rdtsc() + TICKS;

		if (!bq_take(&bqs[i], &id, &len)) {
			check("an answer on every queue", false);
			continue;
		}
		sti();
		while (n_bq[i] == before[i] && rdtsc() < end)
			__asm__ volatile("pause");
		cli();
		each = each && n_bq[i] != before[i];
		puts_dbg("queue ");
		put_dec(i, 1);
		say(": read", 32 + 8 * i, 1, bq_status[i][0]);
		puts_dbg(", used ");
		put_dec(len, 1);
		puts_dbg(", fnv1a ");
		put_hex(fnv1a(qbuf[i], 512), 8);
		puts_dbg("\n");
	}
	check("an interrupt on each queue's vector", each);
	puts_dbg("queues: a read on each of ");
	put_dec(nq, 1);
	puts_dbg(" at once, each queue interrupting on its own vector\n");
}

/* BQ_SLOTS reads in flight on queue 0 at once, one doorbell. */
static void in_flight(void)
{
	struct bq *q = &bqs[0];
	unsigned seen = 0;

	for (unsigned k = 0; k < BQ_SLOTS; k++)
		bq_request(q, k, T_IN, 40 + k, qbuf[k], 512);
	bq_kick(q);
	for (unsigned k = 0; k < BQ_SLOTS; k++) {
		uint32_t id = 0xffff, len = 0;

		if (!bq_take(q, &id, &len) || id % 3 || id / 3 >= BQ_SLOTS) {
			check("an answer for each slot", false);
			continue;
		}
		seen |= 1u << (id / 3);
		expect("status in flight", bq_status[0][id / 3], S_OK);
		expect("used length in flight", len, 513);
	}
	expect("slots answered", seen, (1u << BQ_SLOTS) - 1);
	puts_dbg("in flight: 5 reads on queue 0 at once, all answered\n");
}

static void checkpoint(void)
{
	read_print(0, 1);
	outb(0xea, 0);
	expect("checkpoint result", inl(0xea), 0);
	check("still DRIVER_OK", vdev_status(&dev) == (S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK |
						   S_DRIVER_OK));
	read_print(0, 1);
	puts_dbg("checkpoint: saved and loaded, used idx ");
	put_dec(bq_used_idx(&bqs[0]), 1);
	puts_dbg("\n");
}

/* Across a reboot: --on-reboot restart builds the next VM in a new
 * process, on the same disks.  Returns on the second boot only. */
static void reboot_run(void)
{
	static const char mark[] = "vsrv: rebooted once";
	bool marked = true;

	bq_do(0, T_IN, 1, buf, 512, NULL);
	for (unsigned i = 0; i < sizeof(mark); i++)
		marked = marked && buf[i] == (uint8_t)mark[i];
	for (unsigned i = 0; i < 512; i++)
		buf[i] = i < sizeof(mark) ? (uint8_t)mark[i] : 0;
	if (!marked) {
		expect("write sector 1", bq_do(0, T_OUT, 1, buf, 512, NULL), S_OK);
		expect("flush", bq_do(0, T_FLUSH, 0, NULL, 0, NULL), S_OK);
		puts_dbg("first boot: sector 1 marked, rebooting\n");
		outb(0xcf9, 0x06);
		for (;;)
			__asm__ volatile("hlt");
	}
	for (unsigned i = 0; i < 512; i++)
		buf[i] = 0x5a;
	expect("write sector 2", bq_do(0, T_OUT, 2, buf, 512, NULL), S_OK);
	expect("flush", bq_do(0, T_FLUSH, 0, NULL, 0, NULL), S_OK);
	puts_dbg("second boot: sector 1 marked, sector 2 written\n");
}

#define TICK_VEC	0x60
#define LAPIC_LVT_TIMER	0x320
#define LAPIC_TIMER_INIT 0x380
#define LAPIC_TIMER_DIV	0x3e0
#define LAPIC_HZ	1000000000ul	/* KVM's LAPIC timer: 1 ns a count */

static volatile unsigned long ticks;

__attribute__((interrupt)) static void on_tick(struct iframe *f)
{
	ticks++;
	lapic_eoi();
}

/* The local APIC's timer, periodic at hz=N (default 20), on on_tick. */
static void tick_start(void)
{
	unsigned long hz = cmdline_num("hz", 20);

	idt_set(TICK_VEC, on_tick);
	mmio_write32(LAPIC + LAPIC_TIMER_DIV, 0xb);			/* divide by 1 */
	mmio_write32(LAPIC + LAPIC_LVT_TIMER, 1u << 17 | TICK_VEC);	/* periodic */
	mmio_write32(LAPIC + LAPIC_TIMER_INIT, (uint32_t)(LAPIC_HZ / hz));
}

/* Halts until the timer ticked since *seen. */
static void tick_wait(unsigned long *seen)
{
	for (;;) {
		sti_hlt();
		cli();
		if (ticks != *seen)
			break;
	}
	*seen = ticks;
}

/* Marks sector 1, then, once per timer tick, reads 4 KiB from sector
 * 8 * (n % 8) and prints "tick N: read sectors S-E: status 0, used 4097,
 * fnv1a X", halting in between.  Numbered by reads, not ticks: a restored
 * state goes on with the number after the last one printed before the
 * save, read through the restored queue. */
static void __attribute__((noreturn)) tick_run(void)
{
	static const char mark[] = "vsrv: ticking";
	unsigned long seen = 0, n = 0;

	for (unsigned i = 0; i < 512; i++)
		buf[i] = i < sizeof(mark) ? (uint8_t)mark[i] : 0;
	expect("write sector 1", bq_do(0, T_OUT, 1, buf, 512, NULL), S_OK);
	puts_dbg("ticking: sector 1 marked\n");
	tick_start();
	for (;;) {
		tick_wait(&seen);
		puts_dbg("tick ");
		put_dec(++n, 1);
		puts_dbg(": ");
		read_print(8 * (n % 8), 8);
	}
}

#define COUNT_SECTOR	64
#define COUNT_SECTORS	64

/* Count n's sector as the guest writes it: "count N", zeros after. */
static void count_text(unsigned long n, uint8_t *b)
{
	static const char word[] = "count ";
	char digits[24];
	unsigned k = 0, at = 0;

	do
		digits[k++] = (char)('0' + n % 10);
	while ((n /= 10));
	for (unsigned i = 0; i < 512; i++)
		b[i] = 0;
	for (unsigned i = 0; word[i]; i++)
		b[at++] = (uint8_t)word[i];
	while (k)
		b[at++] = (uint8_t)digits[--k];
}

static uint64_t count_sector(unsigned long n)
{
	return COUNT_SECTOR + n % COUNT_SECTORS;
}

static void __attribute__((noreturn)) count_run(void)
{
	unsigned long seen = 0, n = 0;

	tick_start();
	for (;;) {
		tick_wait(&seen);
		if (n) {
			unsigned s = bq_do(0, T_IN, count_sector(n), buf, 512, NULL);
			bool same = s == S_OK;

			count_text(n, buf2);
			for (unsigned i = 0; same && i < 512; i++)
				same = buf[i] == buf2[i];
			if (!same) {
				puts_dbg("FAIL count ");
				put_dec(n, 1);
				puts_dbg(": sector ");
				put_dec(count_sector(n), 1);
				puts_dbg(" does not hold it\n");
			}
		}
		count_text(n + 1, buf);
		expect("write", bq_do(0, T_OUT, count_sector(n + 1), buf, 512, NULL), S_OK);
		n++;
		puts_dbg("count ");
		put_dec(n, 1);
		puts_dbg(": sector ");
		put_dec(count_sector(n), 1);
		puts_dbg("\n");
	}
}

int guest_main(void)
{
	uint64_t want = 1ull << F_VERSION_1 | 1ull << F_INDIRECT_DESC | 1ull << BLK_F_SIZE_MAX |
			1ull << BLK_F_SEG_MAX | 1ull << BLK_F_RO | 1ull << BLK_F_BLK_SIZE |
			1ull << BLK_F_FLUSH | 1ull << BLK_F_TOPOLOGY | 1ull << BLK_F_MQ |
			1ull << BLK_F_DISCARD | 1ull << BLK_F_WRITE_ZEROES;
	bool noflush = cmdline_has("noflush");
	unsigned nq;
	uint64_t f;
	int slot;

	blk_interrupts();
	slot = pci_find(VIRTIO_VENDOR, VIRTIO_BLK_DEVICE);
	if (slot < 0 || !vdev_probe(&dev, (unsigned)slot) || !dev.device || !dev.msix_cap) {
		puts_dbg("FAIL no virtio-blk with a device configuration and MSI-X\n");
		return 1;
	}
	cfg_write16(dev.slot, 4, cfg_read16(dev.slot, 4) | 4);
	if (cmdline_has("reboot")) {
		if (!blk_init(&dev, want, 1))
			return 1;
		reboot_run();
		return failures ? 1 : 0;
	}
	if (cmdline_has("tick")) {
		if (!blk_init(&dev, want, 1))
			return 1;
		tick_run();
	}
	if (cmdline_has("count")) {
		if (!blk_init(&dev, want, 1))
			return 1;
		count_run();
	}
	puts_dbg("blk 00:");
	put_hex((unsigned)slot, 2);
	puts_dbg(".0 1af4:1042 class ");
	put_hex(cfg_read32(dev.slot, 8) >> 8, 6);
	puts_dbg("\n");
	f = vdev_features(&dev);
	print_features(f);
	print_config();
	ro = f & 1ull << BLK_F_RO;
	nq = mmio_read16(dev.device + CFG_NUM_QUEUES);
	nq = nq < NQ ? nq : NQ;
	if (noflush)
		want &= ~(1ull << BLK_F_FLUSH);
	if (!blk_init(&dev, want, nq)) {
		puts_dbg("FAIL initialisation, status 0x");
		put_hex(vdev_status(&dev), 2);
		puts_dbg("\n");
		return 1;
	}
	if (cmdline_has("checkpoint")) {
		checkpoint();
	} else {
		read_print(0, 1);
		read_print(capacity - 8, 8);
		get_id();
		write_and_read_back();
		if (!noflush) {
			puts_dbg("flush: status ");
			put_dec(bq_do(0, T_FLUSH, 0, NULL, 0, NULL), 1);
			puts_dbg("\n");
		}
		ranges();
		say("read", capacity - 4, 8, bq_do(0, T_IN, capacity - 4, buf, 4096, NULL));
		puts_dbg("\n");
		all_queues(nq);
		in_flight();
	}
	expect("configuration interrupts", n_config, 0);
	if (failures)
		return 1;
	puts_dbg("blk ok\n");
	return 0;
}
