/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * What the device benchmarks' micro-guests (bench-blk.c, bench-net.c)
 * share.  They set their devices up at CPL0 with the micro-guest drivers
 * (virtio-guest.h, virtio-blk-guest.h, net-guest.h), then run their loops
 * at CPL3 through the runtime (rt.c), where hosts without hardware
 * virtualization run guest code natively: every ring access, every
 * doorbell write and every check of the data is the guest's own work at
 * full speed, and nothing in the loop exits to the VMM but what the
 * device design makes exit.
 *
 * - No interrupts: MSI-X is on with every vector NO_VECTOR, and with
 *   VIRTIO_F_EVENT_IDX the driver's used_event is kept far ahead, so the
 *   device does not even try.  Completions are found by polling the used
 *   rings.
 * - Doorbells: written only when the device's avail_event asks for one
 *   (event index), to the notify BAR, which KVM turns into an eventfd
 *   (ioeventfd) without leaving the kernel.
 * - The host and the guest talk through a mailbox, a second virtio-blk
 *   disk of 8 sectors, rather than through ports: the host writes a word
 *   into the file to start a phase, the guest writes its counts into it
 *   when the phase is done, and neither costs an exit, so that the exits
 *   the host counts between the two (the control socket's stats) are the
 *   device's alone.  The debug port (0xe9) gets the same counts, after
 *   the host has read its own.
 * - Boot: the runtime's 64-bit entry (vsrv run's usual one), or a PVH
 *   note's 32-bit entry (vsrv run --boot pvh; QEMU's -kernel), which goes
 *   to long mode on tables of its own and into the runtime's entry with a
 *   zero page that holds PVH's command line, so that one image runs under
 *   both VMMs.
 *
 * Link: dev-guest.h (through virtio-guest.h) defines an entry of its own,
 * _start calling guest_main(); these guests link the runtime first with
 * -z muldefs (tests/guests/meson.build), so that the runtime's _start is
 * the one used; guest_main() below is there for the one left unused.
 */
#ifndef BENCH_GUEST_H
#define BENCH_GUEST_H

#include "net-guest.h"
#include "virtio-blk-guest.h"

int guest_main(void)
{
	return main();
}

/* --- the PVH entry --- */

/* hvm_start_info's cmdline_paddr; boot_params' cmd_line_ptr. */
#define PVH_CMDLINE	24
#define ZP_CMDLINE	0x228
#define STR_(x)		#x
#define STR(x)		STR_(x)

__attribute__((used, aligned(4096))) uint8_t bench_pvh_tables[3][4096];
__attribute__((used, aligned(4096))) uint8_t bench_pvh_zero_page[4096];
__attribute__((used, aligned(8))) const uint64_t bench_pvh_gdt[3] = {
	0, 0x00af9a000000ffffull, 0x00cf92000000ffffull,	/* 0x08 code64, 0x10 data */
};

/*
 * Entered in flat 32-bit protected mode, paging off, ebx = hvm_start_info.
 * The first 1 GiB identity-mapped in 2 MiB pages is enough to reach the
 * runtime, which maps 4 GiB itself.
 */
__asm__(".pushsection .text, \"ax\"\n"
	".code32\n"
	"bench_pvh_start:\n"
	"	cli\n"
	"	movl " STR(PVH_CMDLINE) "(%ebx), %eax\n"
	"	movl %eax, bench_pvh_zero_page + " STR(ZP_CMDLINE) "\n"
	"	movl $bench_pvh_tables + 4096 + 3, bench_pvh_tables\n"
	"	movl $bench_pvh_tables + 8192 + 3, bench_pvh_tables + 4096\n"
	"	xorl %ecx, %ecx\n"
	"1:	movl %ecx, %eax\n"
	"	shll $21, %eax\n"
	"	orl $0x83, %eax\n"		/* present, writable, 2 MiB */
	"	movl %eax, bench_pvh_tables + 8192(, %ecx, 8)\n"
	"	incl %ecx\n"
	"	cmpl $512, %ecx\n"
	"	jne 1b\n"
	"	movl %cr4, %eax\n"
	"	orl $0x20, %eax\n"		/* PAE */
	"	movl %eax, %cr4\n"
	"	movl $bench_pvh_tables, %eax\n"
	"	movl %eax, %cr3\n"
	"	movl $0xc0000080, %ecx\n"
	"	rdmsr\n"
	"	orl $0x100, %eax\n"		/* EFER.LME */
	"	wrmsr\n"
	"	lgdt bench_pvh_gdtr\n"
	"	movl %cr0, %eax\n"
	"	orl $0x80000001, %eax\n"	/* PG, PE */
	"	movl %eax, %cr0\n"
	"	ljmp $0x08, $2f\n"
	".code64\n"
	"2:	movl $0x10, %eax\n"
	"	movl %eax, %ds\n"
	"	movl %eax, %es\n"
	"	movl %eax, %ss\n"
	"	movl $bench_pvh_zero_page, %esi\n"
	"	jmp _start\n"
	".popsection\n"
	".pushsection .rodata\n"
	".balign 8\n"
	"bench_pvh_gdtr:\n"
	"	.word 23\n"
	"	.long bench_pvh_gdt\n"
	".popsection\n"
	/* Xen's PHYS32_ENTRY note, 8 bytes as in a 64-bit Linux.  Not
	 * called .note*: guest.ld discards those. */
	".pushsection .pvhnote, \"a\", @note\n"
	".balign 4\n"
	".long 4, 8, 18\n"
	".asciz \"Xen\"\n"
	".balign 4\n"
	".quad bench_pvh_start\n"
	".balign 4\n"
	".popsection\n");

/* --- the machine --- */

/* The 8259s masked: QEMU's firmware leaves the timer's IRQ 0 on, which
 * would reach the runtime as an unexpected interrupt at CPL3. */
static inline void bench_quiet(void)
{
	outb(0x21, 0xff);
	outb(0xa1, 0xff);
}

/* The slot of the `nth` (from 0) virtio function of this device id on bus
 * 0, or -1. */
static inline int bench_find(uint16_t device, unsigned nth)
{
	for (unsigned s = 0; s < 32; s++)
		if (cfg_read32(s, 0) == ((uint32_t)device << 16 | VIRTIO_VENDOR) && !nth--)
			return (int)s;
	return -1;
}

/* The spec's initialisation up to FEATURES_OK, with MSI-X on and the
 * configuration vector NO_VECTOR; the caller sets its queues up, then
 * calls bench_dev_ok(). */
static inline bool bench_dev_init(struct vdev *v, unsigned slot, uint64_t features)
{
	if (!vdev_probe(v, slot) || !v->msix_cap)
		return false;
	vdev_reset(v);
	vdev_set_status(v, S_ACKNOWLEDGE);
	vdev_set_status(v, S_ACKNOWLEDGE | S_DRIVER);
	vdev_set_features(v, features);
	vdev_set_status(v, S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK);
	if (!(vdev_status(v) & S_FEATURES_OK))
		return false;
	msix_enable(v, true);
	mmio_write16(v->common + C_MSIX, NO_VECTOR);
	return true;
}

static inline bool bench_dev_ok(struct vdev *v)
{
	vdev_set_status(v, S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
	return !(vdev_status(v) & S_NEEDS_RESET);
}

/* --- a polled queue with event indices --- */

struct bench_q {
	struct vq q;
	uint16_t shown;		/* the available index the device has seen */
	uint64_t kicks;
};

/* Queue `index` of `size` entries on the caller's rings, no vector. */
static inline void bench_q_setup(struct vdev *v, struct bench_q *b, unsigned index,
				 uint16_t size, void *desc, void *avail, void *used)
{
	vq_setup(v, &b->q, index, size, desc, avail, used, NO_VECTOR);
	b->shown = 0;
	b->kicks = 0;
}

static inline uint16_t bench_avail_event(struct bench_q *b)
{
	return ((volatile uint16_t *)b->q.used)[2 + 4 * b->q.size];
}

/* The device's test (virtio 1.x, 2.7.7.2): whether moving an index from
 * `old` to `now` passes `event`. */
static inline bool bench_need_event(uint16_t event, uint16_t now, uint16_t old)
{
	return (uint16_t)(now - event - 1) < (uint16_t)(now - old);
}

/*
 * Shows the device every chain put so far, ringing its doorbell only if
 * its avail_event asks for it; and keeps used_event half the index space
 * ahead, where the device never reaches it: no interrupts.
 */
static inline void bench_q_publish(struct bench_q *b)
{
	struct vq *q = &b->q;
	uint16_t old = b->shown;

	q->avail[2 + q->size] = (uint16_t)(q->used_seen + 0x8000);
	vq_publish(q, false);	/* ends with a full fence: index out, then the event read */
	b->shown = q->avail_idx;
	if (bench_need_event(bench_avail_event(b), q->avail_idx, old)) {
		vq_kick(q);
		b->kicks++;
	}
}

/* --- the host's data and the guest's --- */

/*
 * The 8-byte word at byte offset `off` of a disk: the offset with a tag in
 * its top 16 bits.  The host writes its disks with HOST_TAG; the guest's
 * writes carry the tag the command line gives (wtag=).  A read at the
 * wrong offset, from the wrong layer or of stale data shows as a wrong
 * word.
 */
#define HOST_TAG	0x6864ull	/* "hd" */
#define WRITE_TAG	0x7772ull	/* "wr" */

static inline uint64_t bench_word(uint64_t off, uint64_t tag)
{
	return tag << 48 | off;
}

/* Marsaglia's xorshift64 (13, 7, 17): the offsets, from a fixed seed. */
static inline uint64_t xorshift64(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

/* --- a phase --- */

/* What the guest writes into sector 1 at the end of a phase (and prints):
 * little-endian words. */
struct bench_result {
	uint64_t done;		/* MB_DONE + phase */
	uint64_t kind;		/* 'r', 'w', 't' */
	uint64_t completed;
	uint64_t kicks;
	uint64_t errors;	/* a status not OK, a used length not the one expected */
	uint64_t mismatches;	/* reads whose data was not the expected */
	uint64_t cycles;	/* TSC, from the start word seen to the last completion */
};

/*
 * The loop both guests time: `issued` requests are in the ring already
 * (put, not yet shown); each completion is checked by done(), and while
 * fewer than `count` were issued, again() puts its chain back (false: it
 * could not).  The ring is shown to the device after each batch of
 * completions; the loop ends when `count` have completed.
 */
static inline void bench_loop(struct bench_q *b, struct bench_result *r, uint64_t count,
			      uint64_t issued,
			      void (*done)(uint32_t id, uint32_t len, struct bench_result *r),
			      bool (*again)(uint32_t id))
{
	uint64_t kicks = b->kicks;

	bench_q_publish(b);
	while (r->completed < count) {
		uint32_t id, len;
		bool any = false;

		while (vq_used(&b->q, &id, &len)) {
			done(id, len, r);
			r->completed++;
			if (issued < count && again(id))
				issued++;
			any = true;
		}
		if (any)
			bench_q_publish(b);
		else
			__asm__ volatile("pause" ::: "memory");
	}
	r->kicks = b->kicks - kicks;
}

/* --- the mailbox --- */

#define MB_SECTORS	8
#define MB_GO		0x6f67000000000000ull	/* "go": the host's word, + step */
#define MB_DONE		0x6e6f640000000000ull	/* "don": the guest's, + phase */
#define MB_QSIZE	4

struct mailbox {
	struct vdev dev;
	struct bench_q bq;
	struct blk_hdr hdr;
	uint8_t status;
	uint64_t step;
};

static struct mailbox mb;
static struct vdesc mb_desc[MB_QSIZE] __attribute__((aligned(16)));
static uint16_t mb_avail[3 + MB_QSIZE] __attribute__((aligned(2)));
static uint32_t mb_used[2 + 2 * MB_QSIZE] __attribute__((aligned(4)));
static uint64_t mb_buf[512 / 8] __attribute__((aligned(512)));

/* The mailbox: the virtio-blk disk of MB_SECTORS sectors. */
static inline bool mb_init(void)
{
	for (unsigned n = 0;; n++) {
		int slot = bench_find(VIRTIO_BLK_DEVICE, n);

		if (slot < 0)
			return false;
		if (!vdev_probe(&mb.dev, (unsigned)slot) ||
		    mmio_read64(mb.dev.device + CFG_CAPACITY) != MB_SECTORS)
			continue;
		if (!bench_dev_init(&mb.dev, (unsigned)slot, 1ull << F_VERSION_1 | 1ull << F_EVENT_IDX))
			return false;
		bench_q_setup(&mb.dev, &mb.bq, 0, MB_QSIZE, mb_desc, mb_avail, mb_used);
		return bench_dev_ok(&mb.dev);
	}
}

/* One request of one sector, waited for by polling: its status. */
static inline unsigned mb_io(uint32_t type, uint64_t sector)
{
	struct vq *q = &mb.bq.q;
	uint32_t id, len;

	mb.hdr = (struct blk_hdr){ type, 0, sector };
	mb.status = 0xff;
	q->desc[0] = (struct vdesc){ (uint64_t)&mb.hdr, sizeof(mb.hdr), D_NEXT, 1 };
	q->desc[1] = (struct vdesc){ (uint64_t)mb_buf, 512,
				     (uint16_t)((type == T_IN ? D_WRITE : 0) | D_NEXT), 2 };
	q->desc[2] = (struct vdesc){ (uint64_t)&mb.status, 1, D_WRITE, 0 };
	vq_put(q, 0);
	bench_q_publish(&mb.bq);
	while (!vq_used(q, &id, &len))
		__asm__ volatile("pause" ::: "memory");
	return mb.status;
}

/* Waits for the host's next step in sector 0, reading it every few
 * microseconds (a later step will do: the host went on). */
static inline void mb_wait(void)
{
	mb.step++;
	for (;;) {
		if (mb_io(T_IN, 0) == S_OK && mb_buf[0] >> 32 == MB_GO >> 32 &&
		    (uint32_t)mb_buf[0] >= mb.step)
			return;
		for (unsigned i = 0; i < 2000; i++)
			__asm__ volatile("pause");
	}
}

static inline void mb_put(const struct bench_result *r)
{
	const uint64_t *w = (const uint64_t *)r;

	for (unsigned i = 0; i < 512 / 8; i++)
		mb_buf[i] = i < sizeof(*r) / 8 ? w[i] : 0;
	mb_io(T_OUT, 1);
}

/*
 * A phase as the host sees it: it writes step 2p-1 (go), the guest runs
 * `run`, writes its counts, waits for step 2p (the host has read its
 * counters), prints the counts and returns them.
 */
static inline void bench_phase(unsigned phase, char kind, struct bench_result *r,
			       void (*run)(struct bench_result *r))
{
	uint64_t t0;

	*r = (struct bench_result){ .done = MB_DONE + phase, .kind = (uint64_t)kind };
	mb_wait();
	t0 = rdtsc();
	run(r);
	r->cycles = rdtsc() - t0;
	mb_put(r);
	mb_wait();
	rt_printf("phase %u %c: %lu completed, %lu kicks, %lu errors, %lu mismatches, %lu cycles\n",
		  phase, kind, r->completed, r->kicks, r->errors, r->mismatches, r->cycles);
}

#endif
