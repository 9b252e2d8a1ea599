// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * virtio-blk driven by a broken or hostile driver (vsrv run --disk): the
 * command line's case=NAME picks what it does wrong, case=all each in
 * turn.  A request that breaks a request's rules is answered IOERR or
 * UNSUPP (or, without a status byte to answer in, refused: given back with
 * nothing written) and the device goes on; a chain that breaks the queue's
 * rules puts the device into NEEDS_RESET.  After each case the guest
 * resets the device, sets it up again and reads sector 0: the device, and
 * the VMM, must still work.  The VMM's log lines are the test's
 * (tests/integration/test_virtio_blk.py), and so is the disk, which no
 * refused or failed write may have touched.
 *
 * Prints "NAME: status S, used U, recovered", "NAME: refused, recovered"
 * or "NAME: needs reset, config interrupt, recovered" per case, then
 * "bad ok"; exits 0, or 1 after FAIL lines.  The disk is the test's, of
 * 2048 sectors; guest memory is 256 MiB: 0x40000000 is outside it.
 */
#include "virtio-blk-guest.h"

#define OUTSIDE		0x40000000ul
#define BIG		0x1000000ul	/* 2 MiB of guest memory nothing uses */
#define SECTORS		2048
#define SEG_MAX		32	/* max_discard_seg, max_write_zeroes_seg */

static struct vdev dev;
static uint8_t data[512] __attribute__((aligned(512)));
static struct blk_seg segs[SEG_MAX + 1];
static struct blk_hdr short_hdr;
static volatile uint8_t status_ro = 0xff;

static const uint64_t good = 1ull << F_VERSION_1 | 1ull << F_INDIRECT_DESC |
			     1ull << BLK_F_FLUSH | 1ull << BLK_F_MQ | 1ull << BLK_F_DISCARD |
			     1ull << BLK_F_WRITE_ZEROES;

enum outcome { ANSWERED, REFUSED, NEEDS_RESET };

struct result {
	enum outcome outcome;
	unsigned status;
	uint32_t used;
};

static void setup(void)
{
	if (!blk_init(&dev, good, 1))
		check("a proper set-up", false);
}

/* The chain d0 -> d1 -> d2 (as many as given) at head 0, answered. */
static struct result chain(unsigned n, struct vdesc d0, struct vdesc d1, struct vdesc d2)
{
	struct bq *q = &bqs[0];
	struct result r = { ANSWERED, 0, 0 };
	uint32_t id = 0xffff;

	bq_status[0][0] = 0xff;
	q->desc[0] = d0;
	q->desc[1] = d1;
	q->desc[2] = d2;
	for (unsigned i = 0; i + 1 < n; i++) {
		q->desc[i].flags |= D_NEXT;
		q->desc[i].next = (uint16_t)(i + 1);
	}
	bq_publish(q, 0);
	bq_kick(q);
	if (!bq_take(q, &id, &r.used))
		check("an answer", false);
	expect("used id", id, 0);
	r.status = bq_status[0][0];
	return r;
}

static struct vdesc hdr(uint32_t type, uint64_t sector)
{
	bq_hdr[0][0] = (struct blk_hdr){ type, 0, sector };
	return (struct vdesc){ (uint64_t)&bq_hdr[0][0], 16, 0, 0 };
}

static struct vdesc rd(uint64_t addr, uint32_t len)
{
	return (struct vdesc){ addr, len, 0, 0 };
}

static struct vdesc wr(uint64_t addr, uint32_t len)
{
	return (struct vdesc){ addr, len, D_WRITE, 0 };
}

static struct vdesc status(void)
{
	return wr((uint64_t)&bq_status[0][0], 1);
}

static struct vdesc none(void)
{
	return (struct vdesc){ 0 };
}

/* --- the cases --- */

static struct result no_status(void)
{
	struct result r = chain(1, hdr(T_FLUSH, 0), none(), none());

	r.outcome = REFUSED;
	return r;
}

static struct result status_readonly(void)
{
	struct result r;

	for (unsigned i = 0; i < 512; i++)
		data[i] = 0xbd;
	r = chain(3, hdr(T_OUT, 0), rd((uint64_t)data, 512), rd((uint64_t)&status_ro, 1));
	expect("a read-only status untouched", status_ro, 0xff);
	r.outcome = REFUSED;
	return r;
}

static struct result short_header(void)
{
	short_hdr = (struct blk_hdr){ T_IN, 0, 0 };
	return chain(2, rd((uint64_t)&short_hdr, 8), status(), none());
}

static struct result sector_overflow(void)
{
	return chain(3, hdr(T_IN, ~0ull), wr((uint64_t)data, 512), status());
}

static struct result sector_wrap(void)
{
	/* sector * 512 is 2^64: 0 if it were computed in 64 bits. */
	return chain(3, hdr(T_IN, 1ull << 55), wr((uint64_t)data, 512), status());
}

static struct result past_end(void)
{
	return chain(3, hdr(T_OUT, SECTORS - 1), rd(BIG, 1024), status());
}

static struct result huge_length(void)
{
	return chain(3, hdr(T_IN, 0), wr(BIG, 2u << 20), status());
}

static struct result odd_length(void)
{
	return chain(3, hdr(T_IN, 0), wr((uint64_t)data, 100), status());
}

static struct result read_direction(void)
{
	return chain(3, hdr(T_IN, 0), rd((uint64_t)data, 512), status());
}

static struct result write_direction(void)
{
	return chain(3, hdr(T_OUT, 0), wr((uint64_t)data, 512), status());
}

static struct result unknown_type(void)
{
	return chain(2, hdr(42, 0), status(), none());
}

static struct result getid_readable(void)
{
	return chain(3, hdr(T_GET_ID, 0), rd((uint64_t)data, 20), status());
}

static struct result ranges(uint32_t type, unsigned n, uint32_t bytes)
{
	return chain(3, hdr(type, 0), rd((uint64_t)segs, bytes ? bytes : n * 16), status());
}

static struct result discard_unmap(void)
{
	segs[0] = (struct blk_seg){ 0, 8, 1 };
	return ranges(T_DISCARD, 1, 0);
}

static struct result zeroes_flags(void)
{
	segs[0] = (struct blk_seg){ 0, 8, 2 };
	return ranges(T_WRITE_ZEROES, 1, 0);
}

static struct result segments_odd(void)
{
	segs[0] = (struct blk_seg){ 0, 8, 0 };
	return ranges(T_DISCARD, 1, 20);
}

static struct result segments_many(void)
{
	for (unsigned i = 0; i <= SEG_MAX; i++)
		segs[i] = (struct blk_seg){ 8 * i, 8, 0 };
	return ranges(T_WRITE_ZEROES, SEG_MAX + 1, 0);
}

static struct result segment_range(void)
{
	segs[0] = (struct blk_seg){ 0, 8, 0 };
	segs[1] = (struct blk_seg){ SECTORS - 1, 2, 0 };
	return ranges(T_WRITE_ZEROES, 2, 0);
}

static struct result segment_huge(void)
{
	segs[0] = (struct blk_seg){ 0, 0xffffffffu, 0 };
	return ranges(T_DISCARD, 1, 0);
}

static struct result desc_outside(void)
{
	struct bq *q = &bqs[0];

	q->desc[0] = (struct vdesc){ (uint64_t)&bq_hdr[0][0], 16, D_NEXT, 1 };
	q->desc[1] = (struct vdesc){ OUTSIDE, 512, D_WRITE | D_NEXT, 2 };
	q->desc[2] = status();
	bq_hdr[0][0] = (struct blk_hdr){ T_IN, 0, 0 };
	bq_publish(q, 0);
	bq_kick(q);
	return (struct result){ NEEDS_RESET, 0, 0 };
}

/* The same head made available again and again, a queue's worth at a
 * time: the device takes each as a request of its own. */
static struct result same_head(void)
{
	struct bq *q = &bqs[0];
	uint32_t id = 0xffff, len = 0;
	unsigned ok = 0;

	bq_hdr[0][0] = (struct blk_hdr){ T_IN, 0, 0 };
	q->desc[0] = (struct vdesc){ (uint64_t)&bq_hdr[0][0], 16, D_NEXT, 1 };
	q->desc[1] = (struct vdesc){ (uint64_t)data, 512, D_WRITE | D_NEXT, 2 };
	q->desc[2] = status();
	for (unsigned round = 0; round < 4; round++) {
		for (unsigned i = 0; i < BQ_SIZE; i++)
			bq_publish(q, 0);
		bq_kick(q);
		for (unsigned i = 0; i < BQ_SIZE; i++)
			ok += bq_take(q, &id, &len) && id == 0 && len == 513;
	}
	expect("answers at one head", ok, 4 * BQ_SIZE);
	return (struct result){ ANSWERED, bq_status[0][0], len };
}

static const struct {
	const char *name;
	struct result (*run)(void);
} cases[] = {
	{ "no-status", no_status },
	{ "status-readonly", status_readonly },
	{ "short-header", short_header },
	{ "sector-overflow", sector_overflow },
	{ "sector-wrap", sector_wrap },
	{ "past-end", past_end },
	{ "huge-length", huge_length },
	{ "odd-length", odd_length },
	{ "read-direction", read_direction },
	{ "write-direction", write_direction },
	{ "unknown-type", unknown_type },
	{ "getid-readable", getid_readable },
	{ "discard-unmap", discard_unmap },
	{ "zeroes-flags", zeroes_flags },
	{ "segments-odd", segments_odd },
	{ "segments-many", segments_many },
	{ "segment-range", segment_range },
	{ "segment-huge", segment_huge },
	{ "desc-outside", desc_outside },
	{ "same-head", same_head },
};

/* Waits, interrupts on, for NEEDS_RESET and the configuration interrupt
 * that follows it. */
static bool needs_reset(void)
{
	uint64_t end = rdtsc() + TICKS;

	sti();
	while ((!(vdev_status(&dev) & S_NEEDS_RESET) || !n_config) && rdtsc() < end)
		__asm__ volatile("pause");
	cli();
	return (vdev_status(&dev) & S_NEEDS_RESET) && n_config == 1;
}

/* After a case: a reset, a proper set-up, sector 0 read. */
static void recover(void)
{
	uint32_t used = 0;

	setup();
	expect("status of a read after recovery", bq_do(0, T_IN, 0, data, 512, &used), S_OK);
	expect("used length after recovery", used, 513);
	puts_dbg(", recovered\n");
}

static void run_case(unsigned i)
{
	struct result r;

	n_config = 0;
	setup();
	r = cases[i].run();
	puts_dbg(cases[i].name);
	switch (r.outcome) {
	case ANSWERED:
		check("no NEEDS_RESET", !(vdev_status(&dev) & S_NEEDS_RESET));
		puts_dbg(": status ");
		put_dec(r.status, 1);
		puts_dbg(", used ");
		put_dec(r.used, 1);
		break;
	case REFUSED:
		check("refused: nothing written", r.used == 0 && r.status == 0xff);
		puts_dbg(": refused");
		break;
	case NEEDS_RESET:
		check("NEEDS_RESET and a configuration interrupt", needs_reset());
		puts_dbg(": needs reset, config interrupt");
		break;
	}
	recover();
}

/* Whether the command line's case= names this case (or all). */
static bool case_is(const char *name)
{
	const char *v = cmdline_find("case", true);

	while (v && *name && *v == *name) {
		v++;
		name++;
	}
	return v && !*name && (*v == ' ' || !*v);
}

int guest_main(void)
{
	bool all, found = false;
	int slot;

	blk_interrupts();
	slot = pci_find(VIRTIO_VENDOR, VIRTIO_BLK_DEVICE);
	if (slot < 0 || !vdev_probe(&dev, (unsigned)slot) || !dev.msix_cap) {
		puts_dbg("FAIL no virtio-blk with MSI-X\n");
		return 1;
	}
	cfg_write16(dev.slot, 4, cfg_read16(dev.slot, 4) | 4);
	all = case_is("all");
	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (all || case_is(cases[i].name)) {
			run_case(i);
			found = true;
		}
	}
	check("a known case (case=NAME on the command line)", found);
	if (failures)
		return 1;
	puts_dbg("bad ok\n");
	return 0;
}
