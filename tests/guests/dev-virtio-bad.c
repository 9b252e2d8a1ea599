// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * virtio-rng driven by a broken or hostile driver (vsrv run --rng): the
 * command line's case=NAME picks what it does wrong, or case=all does
 * each in turn (and "twice" all that again).  A case that breaks the queue's or the transport's rules
 * must put the device into NEEDS_RESET (with a configuration interrupt
 * when the driver had set DRIVER_OK); one that breaks a request's or a
 * register's rules is refused and the device goes on.  After each, the
 * guest resets the device, sets it up properly and reads random bytes:
 * the device, and the VMM, must still work.  The VMM's log lines are the
 * test's (tests/integration/test_virtio.py).
 *
 * Prints "NAME: needs reset[, config interrupt], recovered" or
 * "NAME: refused, recovered" per case, then "bad ok"; exits 0, or 1 after
 * FAIL lines.  Guest memory is 256 MiB: 0x40000000 is outside it.
 */
#include "virtio-guest.h"

#define OUTSIDE		0x40000000ul
#define NBYTES		64
#define TICKS		20000000000ull	/* a generous wait, in TSC ticks */

static struct vdev dev;
static uint8_t buf[NBYTES];
static struct vdesc table[2] __attribute__((aligned(16)));

/* Waits, interrupts on, until the status has `bit` (and, if `config`,
 * the configuration interrupt that follows came) or a while passed. */
static bool status_has(uint8_t bit, bool config)
{
	uint64_t end = rdtsc() + TICKS;
	bool seen;

	sti();
	while (!(vdev_status(&dev) & bit) && rdtsc() < end)
		__asm__ volatile("pause");
	seen = vdev_status(&dev) & bit;
	while (config && !n_config && rdtsc() < end)
		__asm__ volatile("pause");
	cli();
	return seen;
}

/* The device set up properly, with or without indirect descriptors. */
static void setup(uint64_t features)
{
	if (!vdev_init(&dev, features, 8, true))
		check("a proper set-up", false);
}

static const uint64_t good = 1ull << F_VERSION_1 | 1ull << F_INDIRECT_DESC;

/* One chain at head 0 made available. */
static void submit(struct vdesc d0, struct vdesc d1)
{
	dev.desc[0] = d0;
	dev.desc[1] = d1;
	vdev_submit(&dev, 0);
}

static struct vdesc w(uint64_t addr, uint32_t len)
{
	return (struct vdesc){ addr, len, D_WRITE, 0 };
}

/* --- the cases: each returns what it leaves the device in --- */

enum outcome { NEEDS_RESET, REFUSED, FEATURES_REFUSED };

static enum outcome desc_outside(void)
{
	setup(good);
	submit(w(OUTSIDE, NBYTES), w(0, 0));
	return NEEDS_RESET;
}

static enum outcome desc_hole(void)
{
	setup(good);
	submit(w(0xd0000000ul, NBYTES), w(0, 0));
	return NEEDS_RESET;
}

static enum outcome desc_wrap(void)
{
	setup(good);
	submit(w(0xfffffffffffff000ul, 0x2000), w(0, 0));
	return NEEDS_RESET;
}

static enum outcome chain_loop(void)
{
	setup(good);
	submit((struct vdesc){ (uint64_t)buf, 8, D_WRITE | D_NEXT, 1 },
	       (struct vdesc){ (uint64_t)buf + 8, 8, D_WRITE | D_NEXT, 0 });
	return NEEDS_RESET;
}

static enum outcome indirect_loop(void)
{
	setup(good);
	table[0] = (struct vdesc){ (uint64_t)buf, 8, D_WRITE | D_NEXT, 1 };
	table[1] = (struct vdesc){ (uint64_t)buf + 8, 8, D_WRITE | D_NEXT, 0 };
	submit((struct vdesc){ (uint64_t)table, sizeof(table), D_INDIRECT, 0 }, w(0, 0));
	return NEEDS_RESET;
}

static enum outcome indirect_nested(void)
{
	setup(good);
	table[0] = (struct vdesc){ (uint64_t)table, sizeof(table), D_INDIRECT, 0 };
	submit((struct vdesc){ (uint64_t)table, 16, D_INDIRECT, 0 }, w(0, 0));
	return NEEDS_RESET;
}

static enum outcome indirect_unnegotiated(void)
{
	setup(1ull << F_VERSION_1);
	table[0] = w((uint64_t)buf, NBYTES);
	submit((struct vdesc){ (uint64_t)table, 16, D_INDIRECT, 0 }, w(0, 0));
	return NEEDS_RESET;
}

static enum outcome next_range(void)
{
	setup(good);
	submit((struct vdesc){ (uint64_t)buf, 8, D_WRITE | D_NEXT, 200 }, w(0, 0));
	return NEEDS_RESET;
}

static enum outcome head_range(void)
{
	setup(good);
	dev.avail[2] = 9;
	dev.avail[1] = ++dev.avail_idx;
	vdev_kick(&dev);
	return NEEDS_RESET;
}

static enum outcome avail_idx(void)
{
	setup(good);
	dev.avail[1] = 100;
	vdev_kick(&dev);
	return NEEDS_RESET;
}

static enum outcome queue_size(void)
{
	vdev_reset(&dev);
	vdev_set_status(&dev, S_ACKNOWLEDGE);
	vdev_set_status(&dev, S_ACKNOWLEDGE | S_DRIVER);
	vdev_set_features(&dev, good);
	vdev_set_status(&dev, S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK);
	mmio_write16(dev.common + C_QSELECT, 0);
	mmio_write16(dev.common + C_QSIZE, 100);
	return NEEDS_RESET;
}

/* Up to FEATURES_OK, the queue's rings where `desc` and `used` say. */
static void rings_at(uint64_t desc, uint64_t used)
{
	vdev_reset(&dev);
	vdev_set_status(&dev, S_ACKNOWLEDGE);
	vdev_set_status(&dev, S_ACKNOWLEDGE | S_DRIVER);
	vdev_set_features(&dev, good);
	vdev_set_status(&dev, S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK);
	vdev_queue(&dev, 8, NO_VECTOR);
	mmio_write64(dev.common + C_QDESC, desc);
	mmio_write64(dev.common + C_QUSED, used);
	mmio_write16(dev.common + C_QENABLE, 1);
}

static enum outcome ring_outside(void)
{
	rings_at(OUTSIDE, (uint64_t)ring_used);
	return NEEDS_RESET;
}

static enum outcome ring_align(void)
{
	rings_at((uint64_t)ring_desc, 0x200002);
	return NEEDS_RESET;
}

static enum outcome status_order(void)
{
	vdev_reset(&dev);
	vdev_set_status(&dev, S_ACKNOWLEDGE);
	vdev_set_status(&dev, S_ACKNOWLEDGE | S_DRIVER_OK);
	return NEEDS_RESET;
}

static enum outcome status_clear(void)
{
	setup(good);
	vdev_set_status(&dev, S_ACKNOWLEDGE | S_DRIVER);
	return NEEDS_RESET;
}

static enum outcome enable_early(void)
{
	vdev_reset(&dev);
	vdev_set_status(&dev, S_ACKNOWLEDGE);
	vdev_set_status(&dev, S_ACKNOWLEDGE | S_DRIVER);
	vdev_queue(&dev, 8, NO_VECTOR);
	mmio_write16(dev.common + C_QENABLE, 1);
	return NEEDS_RESET;
}

static enum outcome no_version_1(void)
{
	vdev_reset(&dev);
	vdev_set_status(&dev, S_ACKNOWLEDGE);
	vdev_set_status(&dev, S_ACKNOWLEDGE | S_DRIVER);
	vdev_set_features(&dev, 1ull << F_INDIRECT_DESC);
	vdev_set_status(&dev, S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK);
	return FEATURES_REFUSED;
}

static enum outcome readable(void)
{
	uint32_t id = 0, len = 1;

	setup(good);
	submit((struct vdesc){ (uint64_t)buf, NBYTES, 0, 0 }, w(0, 0));
	vdev_take(&dev, &id, &len);
	expect("used length of a refused request", len, 0);
	return REFUSED;
}

static enum outcome bad_width(void)
{
	setup(good);
	mmio_write8(dev.common + C_QSELECT, 0);
	mmio_write32(dev.common + C_NUMQ, 7);
	mmio_write16(dev.common + C_QENABLE, 0);
	mmio_write16(dev.common + C_QSIZE, 4);
	expect("queue size after refused writes", mmio_read16(dev.common + C_QSIZE), 8);
	return REFUSED;
}

static const struct {
	const char *name;
	enum outcome (*run)(void);
} cases[] = {
	{ "desc-outside", desc_outside },
	{ "desc-hole", desc_hole },
	{ "desc-wrap", desc_wrap },
	{ "chain-loop", chain_loop },
	{ "indirect-loop", indirect_loop },
	{ "indirect-nested", indirect_nested },
	{ "indirect-unnegotiated", indirect_unnegotiated },
	{ "next-range", next_range },
	{ "head-range", head_range },
	{ "avail-idx", avail_idx },
	{ "queue-size", queue_size },
	{ "ring-outside", ring_outside },
	{ "ring-align", ring_align },
	{ "status-order", status_order },
	{ "status-clear", status_clear },
	{ "enable-early", enable_early },
	{ "no-version-1", no_version_1 },
	{ "readable", readable },
	{ "bad-width", bad_width },
};

/* After a case: a reset, a proper set-up, 64 random bytes. */
static void recover(const char *name)
{
	uint32_t id = 0, len = 0;

	for (unsigned i = 0; i < NBYTES; i++)
		buf[i] = 0;
	setup(good);
	submit(w((uint64_t)buf, NBYTES), w(0, 0));
	vdev_take(&dev, &id, &len);
	expect("used length after recovery", len, NBYTES);
	check("random bytes after recovery", nonzero(buf, NBYTES));
	puts_dbg(", recovered\n");
}

static void run_case(unsigned i)
{
	bool driver_ok;
	enum outcome o;

	n_config = 0;
	o = cases[i].run();
	driver_ok = vdev_status(&dev) & S_DRIVER_OK;
	puts_dbg(cases[i].name);
	switch (o) {
	case NEEDS_RESET:
		check("NEEDS_RESET", status_has(S_NEEDS_RESET, driver_ok));
		puts_dbg(": needs reset");
		if (driver_ok) {
			check("a configuration interrupt", n_config == 1);
			puts_dbg(", config interrupt");
		}
		break;
	case REFUSED:
		check("no NEEDS_RESET", !(vdev_status(&dev) & S_NEEDS_RESET));
		puts_dbg(": refused");
		break;
	case FEATURES_REFUSED:
		check("FEATURES_OK refused", !(vdev_status(&dev) & S_FEATURES_OK));
		puts_dbg(": features refused");
		break;
	}
	recover(cases[i].name);
}

/* Whether the command line has case=name. */
static bool case_is(const char *name)
{
	char word[40] = "case=";
	unsigned n = 5;

	while (*name && n < sizeof(word) - 1)
		word[n++] = *name++;
	word[n] = 0;
	return cmdline_has(word);
}

int guest_main(void)
{
	bool all, found = false;
	int slot;

	interrupts_init();
	idt_set(VEC_CONFIG, on_config);
	idt_set(VEC_QUEUE, on_queue);
	slot = pci_find(VIRTIO_VENDOR, VIRTIO_RNG_DEVICE);
	if (slot < 0 || !vdev_probe(&dev, (unsigned)slot) || !dev.msix_cap) {
		puts_dbg("FAIL no virtio-rng with MSI-X\n");
		return 1;
	}
	cfg_write16(dev.slot, 4, cfg_read16(dev.slot, 4) | 4);
	all = case_is("all");
	/* "twice": the cases again, for the VMM's limit on log lines. */
	for (unsigned round = 0; round < (cmdline_has("twice") ? 2u : 1u); round++)
		for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
			if (all || case_is(cases[i].name)) {
				run_case(i);
				found = true;
			}
	check("a known case (case=NAME on the command line)", found);
	if (failures)
		return 1;
	puts_dbg("bad ok\n");
	return 0;
}
