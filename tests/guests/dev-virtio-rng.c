// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * PCI and virtio-rng as a guest driver sees them (vsrv run --rng): a PCI
 * enumeration through type 1 configuration access that must agree with
 * MMCONFIG, BAR sizing, the capability list, then a virtio 1.x driver
 * for the entropy device that negotiates VIRTIO_F_VERSION_1, sets up its
 * queue and reads random bytes, checking each used length.
 *
 * The default run: a request answered by an MSI-X interrupt, one polled
 * (VRING_AVAIL_F_NO_INTERRUPT), one through an indirect table, BAR 4
 * moved and a request at its new place, the PCI configuration access
 * window.  The command line picks other runs:
 *   intx        MSI-X left off: the interrupt comes on INTx (level, the
 *               IOAPIC pin the Interrupt Line names), the ISR says why
 *   event-idx   VIRTIO_F_EVENT_IDX: interrupts only where used_event asks,
 *               avail_event written back
 *   checkpoint  the test device saves and loads every device's state
 *               between two requests (port 0xea)
 * Without an MSI-X capability (a host with neither irqfds nor
 * KVM_SIGNAL_MSI) every run takes the INTx path.
 * Prints what it finds, then "rng ok"; exits 0, or 1 after FAIL lines.
 */
#include "virtio-guest.h"

#define NBYTES		64
/* A generous wait for what must come, in TSC ticks (seconds: the host
 * may be busy); a short one for what must not. */
#define TICKS		20000000000ull
#define SHORT		(TICKS / 400)
#define NEW_BAR4	0xc0100000ul

static struct vdev dev;
static volatile unsigned n_intx;
static volatile uint8_t intx_isr;
static uint8_t buf[4096] __attribute__((aligned(64)));
static struct vdesc table[2] __attribute__((aligned(16)));

/*
 * Reading the ISR lowers the line before the EOI: level-triggered.  An
 * interrupt with the ISR at 0 is spurious, which a driver must take in its
 * stride (spec).  Hosts without hardware virtualization make one after
 * each INTx: an interrupt whose handler exits to the VMM at once (this
 * ISR read) stays pending in the local APIC's IRR and comes again after
 * the IRET.
 */
__attribute__((interrupt)) static void on_intx(struct iframe *f)
{
	uint8_t isr = mmio_read8(dev.isr);

	if (isr) {
		intx_isr |= isr;
		n_intx++;
	}
	lapic_eoi();
}

/* Interrupts on until *counter moves past `before`, or a while. */
static bool wait_for(volatile unsigned *counter, unsigned before, uint64_t ticks)
{
	uint64_t end = rdtsc() + ticks;

	sti();
	while (*counter == before && rdtsc() < end)
		__asm__ volatile("pause");
	cli();
	return *counter != before;
}

static bool take(uint32_t *id, uint32_t *len)
{
	uint64_t end = rdtsc() + TICKS;

	while (used_idx(&dev) == dev.used_seen)
		if (rdtsc() > end)
			return false;
	vdev_take(&dev, id, len);
	return true;
}

/* One request of NBYTES into buf, as descriptor 0. */
static void request(void)
{
	for (unsigned i = 0; i < NBYTES; i++)
		buf[i] = 0;
	dev.desc[0] = (struct vdesc){ (uint64_t)buf, NBYTES, D_WRITE, 0 };
	vdev_submit(&dev, 0);
}

/* Its answer: the head, the used length, and bytes that are not zeros. */
static void check_used(const char *what)
{
	uint32_t id = 0xffff, len = 0;

	if (!take(&id, &len)) {
		puts_dbg("FAIL ");
		puts_dbg(what);
		puts_dbg(": no used buffer\n");
		failures++;
		return;
	}
	expect("used id", id, 0);
	expect("used length", len, NBYTES);
	check("random bytes (not all zeros)", nonzero(buf, NBYTES));
}

static void enumerate(void)
{
	bool agree = true;

	for (unsigned s = 0; s < 32; s++) {
		uint32_t id = cfg_read32(s, 0);

		for (unsigned r = 0; r < 256; r += 4)
			if (cfg_read32(s, r) != mmio_read32(ecam(s, r)))
				agree = false;
		if (id == 0xffffffff)
			continue;
		puts_dbg("pci 00:");
		put_hex(s, 2);
		puts_dbg(".0 ");
		put_hex(id & 0xffff, 4);
		puts_dbg(":");
		put_hex(id >> 16, 4);
		puts_dbg(" class ");
		put_hex(cfg_read32(s, 8) >> 8, 6);
		if (cfg_read8(s, 0x3d)) {
			puts_dbg(" pin ");
			put_dec(cfg_read8(s, 0x3d), 1);
			puts_dbg(" line ");
			put_dec(cfg_read8(s, 0x3c), 1);
		}
		puts_dbg("\n");
	}
	/* A function that is not there, and a bus that is not. */
	outl(0xcf8, 0x80000100);
	check("00:00.1 reads all ones", inl(0xcfc) == 0xffffffff);
	outl(0xcf8, 0x80010000);
	check("bus 1 reads all ones", inl(0xcfc) == 0xffffffff);
	outl(0xcf8, 0x80000000);
	check("0xcf8 reads back", inl(0xcf8) == 0x80000000);
	check("ECAM past 256 bytes reads 0", mmio_read32(ecam(0, 0x100)) == 0);
	if (agree)
		puts_dbg("type 1 and ECAM agree\n");
	else
		check("type 1 and ECAM agree", false);
}

static void print_bar(unsigned slot, unsigned bar)
{
	uint32_t lo = cfg_read32(slot, 0x10 + 4 * bar);

	puts_dbg("bar");
	put_dec(bar, 1);
	if (!bar_size(slot, bar)) {
		puts_dbg(" none\n");
		return;
	}
	puts_dbg((lo & 6) == 4 ? " mem64 " : " mem32 ");
	put_dec(bar_size(slot, bar), 1);
	puts_dbg(" bytes at 0x");
	put_hex(bar_addr(slot, bar), 8);
	puts_dbg("\n");
}

static void print_caps(void)
{
	puts_dbg("caps:");
	if (dev.msix_cap) {
		puts_dbg(" msix ");
		put_dec((cfg_read16(dev.slot, dev.msix_cap + 2) & 0x7ff) + 1, 1);
		puts_dbg(" vectors,");
	} else {
		puts_dbg(" no msix,");
	}
	puts_dbg(" common, isr, notify (multiplier ");
	put_dec(dev.notify_mult, 1);
	puts_dbg(")");
	if (dev.device)
		puts_dbg(", device");
	if (dev.pci_cfg_cap)
		puts_dbg(", pci_cfg");
	puts_dbg("\n");
}

static void print_features(uint64_t f)
{
	puts_dbg("features:");
	if (f & 1ull << F_VERSION_1)
		puts_dbg(" version_1");
	if (f & 1ull << F_INDIRECT_DESC)
		puts_dbg(" indirect_desc");
	if (f & 1ull << F_EVENT_IDX)
		puts_dbg(" event_idx");
	puts_dbg("\n");
}

/* num_queues read through VIRTIO_PCI_CAP_PCI_CFG's window. */
static void pci_cfg_window(void)
{
	unsigned c = dev.pci_cfg_cap;

	if (!c)
		return;
	cfg_write8(dev.slot, c + 4, 4);
	cfg_write32(dev.slot, c + 8, C_NUMQ);
	cfg_write32(dev.slot, c + 12, 2);
	puts_dbg("pci_cfg window: num_queues ");
	put_dec(cfg_read32(dev.slot, c + 16) & 0xffff, 1);
	puts_dbg("\n");
}

static void by_interrupt(bool msix)
{
	unsigned before = msix ? n_queue : n_intx;

	intx_isr = 0;
	request();
	if (!wait_for(msix ? &n_queue : &n_intx, before, TICKS))
		check("an interrupt for the used buffer", false);
	check_used("interrupt");
	if (msix) {
		puts_dbg("rng: 64 bytes by MSI-X interrupt\n");
		return;
	}
	puts_dbg("rng: 64 bytes by INTx (GSI ");
	put_dec(cfg_read8(dev.slot, 0x3c), 1);
	puts_dbg(", ISR 0x");
	put_hex(intx_isr, 1);
	puts_dbg(")\n");
}

static void polled(void)
{
	unsigned before = n_queue + n_intx;

	dev.avail[0] = 1;		/* VRING_AVAIL_F_NO_INTERRUPT */
	request();
	check_used("polled");
	wait_for(&n_queue, n_queue, SHORT);
	expect("interrupts while polling", n_queue + n_intx - before, 0);
	dev.avail[0] = 0;
	puts_dbg("rng: 64 bytes polled\n");
}

static void indirect(bool msix)
{
	unsigned before = msix ? n_queue : n_intx;

	for (unsigned i = 0; i < NBYTES; i++)
		buf[i] = 0;
	table[0] = (struct vdesc){ (uint64_t)buf, 16, D_WRITE | D_NEXT, 1 };
	table[1] = (struct vdesc){ (uint64_t)buf + 16, NBYTES - 16, D_WRITE, 0 };
	dev.desc[0] = (struct vdesc){ (uint64_t)table, sizeof(table), D_INDIRECT, 0 };
	vdev_submit(&dev, 0);
	wait_for(msix ? &n_queue : &n_intx, before, TICKS);
	check_used("indirect");
	check("bytes in both indirect buffers", nonzero(buf, 16) && nonzero(buf + 16, 48));
	puts_dbg("rng: 64 bytes through an indirect table\n");
}

static void move_bar(bool msix)
{
	uint64_t old = dev.common;
	uint16_t cmd = cfg_read16(dev.slot, 4);

	cfg_write16(dev.slot, 4, cmd & ~2);
	cfg_write32(dev.slot, 0x20, NEW_BAR4 | 4);
	cfg_write32(dev.slot, 0x24, 0);
	cfg_write16(dev.slot, 4, cmd);
	vdev_probe(&dev, dev.slot);
	expect("the old place reads all ones", mmio_read16(old + C_NUMQ), 0xffff);
	expect("num_queues at the new place", mmio_read16(dev.common + C_NUMQ), 1);
	puts_dbg("bar4 moved to 0x");
	put_hex(bar_addr(dev.slot, 4), 8);
	puts_dbg("\n");
	request();
	wait_for(msix ? &n_queue : &n_intx, msix ? n_queue : n_intx, TICKS);
	check_used("moved");
	puts_dbg("rng: 64 bytes at the moved BAR\n");
}

static void event_idx(void)
{
	volatile uint16_t *used_event = &dev.avail[2 + dev.qsize];
	unsigned got[4];

	for (unsigned i = 0; i < 4; i++) {
		unsigned before = n_queue;

		/* Interrupt me when the first is used, then not before the
		 * fourth. */
		*used_event = i == 0 ? 0 : 3;
		request();
		check_used("event idx");
		got[i] = wait_for(&n_queue, before, i == 0 || i == 3 ? TICKS : SHORT);
	}
	expect("interrupts after requests 1-4", got[0] | got[1] << 1 | got[2] << 2 | got[3] << 3,
	       0x9);
	puts_dbg("event idx: interrupts after requests 1 and 4 of 4, avail_event ");
	put_dec(dev.used[1 + 2 * dev.qsize] & 0xffff, 1);
	puts_dbg("\n");
}

static void checkpoint(bool msix)
{
	int32_t r;

	by_interrupt(msix);
	outb(0xea, 0);
	r = (int32_t)inl(0xea);
	expect("checkpoint result", (uint32_t)r, 0);
	check("still DRIVER_OK", vdev_status(&dev) == (S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK |
						   S_DRIVER_OK));
	by_interrupt(msix);
	puts_dbg("checkpoint: saved and loaded, used idx ");
	put_dec(used_idx(&dev), 1);
	puts_dbg("\n");
}

int guest_main(void)
{
	uint64_t want = 1ull << F_VERSION_1 | 1ull << F_INDIRECT_DESC;
	bool msix;
	int slot;

	interrupts_init();
	idt_set(VEC_CONFIG, on_config);
	idt_set(VEC_QUEUE, on_queue);
	idt_set(VEC_INTX, on_intx);
	enumerate();
	slot = pci_find(VIRTIO_VENDOR, VIRTIO_RNG_DEVICE);
	if (slot < 0 || !vdev_probe(&dev, (unsigned)slot)) {
		puts_dbg("FAIL no virtio-rng\n");
		return 1;
	}
	print_bar(dev.slot, 1);
	print_bar(dev.slot, 4);
	print_caps();
	print_features(vdev_features(&dev));
	msix = dev.msix_cap && !cmdline_has("intx");
	if (!msix)
		ioapic_route_level(cfg_read8(dev.slot, 0x3c), VEC_INTX);
	/* Bus mastering, as a driver enables it for DMA. */
	cfg_write16(dev.slot, 4, cfg_read16(dev.slot, 4) | 4);
	if (cmdline_has("event-idx"))
		want |= 1ull << F_EVENT_IDX;
	mmio_write16(dev.common + C_QSELECT, 0);
	puts_dbg("queue 0: ");
	put_dec(mmio_read16(dev.common + C_QSIZE), 1);
	puts_dbg(" entries at most\n");
	if (!vdev_init(&dev, want, 8, msix)) {
		puts_dbg("FAIL initialisation, status 0x");
		put_hex(vdev_status(&dev), 2);
		puts_dbg("\n");
		return 1;
	}
	if (cmdline_has("event-idx")) {
		event_idx();
	} else if (cmdline_has("checkpoint")) {
		checkpoint(msix);
	} else {
		by_interrupt(msix);
		polled();
		indirect(msix);
		move_bar(msix);
		pci_cfg_window();
	}
	expect("configuration interrupts", n_config, 0);
	if (failures)
		return 1;
	puts_dbg("rng ok\n");
	return 0;
}
