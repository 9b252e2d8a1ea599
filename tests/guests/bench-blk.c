// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * virtio-blk at queue depth 32, for bench/devices-run and
 * tests/integration/test_devbench.py: random 4 KiB reads or writes over
 * the whole disk, polled, at CPL3 (bench-guest.h says how, and how the
 * host starts each phase and reads its counts through the mailbox disk).
 *
 * The VM has two virtio-blk disks: the data, whose every 8-byte word the
 * host wrote as bench_word(offset, HOST_TAG), and the mailbox (8 sectors).
 * The command line:
 *   run=rw     the phases, in order: r reads, w writes (default r)
 *   count=N    requests per phase (default 1000)
 *   wcount=N   requests per write phase (default: count)
 *   depth=D    requests in flight, 1 to 64 (default 32)
 *   seed=S     the xorshift64 seed (default 0x9e3779b97f4a7c15); block
 *              i of a phase is the next value modulo the disk's 4 KiB
 *              blocks, the sequence going on from phase to phase
 *   wtag=T     what writes write: bench_word(offset, T) (default "wr")
 * Every read is checked word by word: bench_word(offset, wtag) where this
 * boot wrote, else HOST_TAG.  Each request is a header, 4 KiB and a
 * status byte in three descriptors; each completion must have status OK
 * and the used length 4097 (reads) or 1 (writes).  Prints each phase's
 * counts, then "bench-blk: done"; exits 0, or 1 after an error or a
 * mismatch, 2 when the devices are not as expected.
 */
#include "bench-guest.h"

#define QSIZE		256
#define DEPTH_MAX	64
#define BLOCK		4096
#define BLOCKS_MAX	(1u << 20)	/* 4 GiB of disk: the bitmap below */

static struct vdev disk;
static struct bench_q dq;
static struct vdesc d_desc[QSIZE] __attribute__((aligned(4096)));
static uint16_t d_avail[3 + QSIZE] __attribute__((aligned(4096)));
static uint32_t d_used[2 + 2 * QSIZE + 1] __attribute__((aligned(4096)));

static uint64_t d_buf[DEPTH_MAX][BLOCK / 8] __attribute__((aligned(4096)));
static struct blk_hdr d_hdr[DEPTH_MAX];
static volatile uint8_t d_status[DEPTH_MAX];
static uint64_t d_block[DEPTH_MAX];
static uint8_t written[BLOCKS_MAX / 8];

static uint64_t nblocks, count, wcount, depth, seed, wtag;
static uint64_t n;		/* this phase's requests */
static char phases[16];
static bool writing;

static void issue(unsigned k)
{
	struct vq *q = &dq.q;
	uint64_t b = xorshift64(&seed) % nblocks;
	uint16_t d = (uint16_t)(3 * k);

	d_block[k] = b;
	if (writing) {
		for (unsigned i = 0; i < BLOCK / 8; i++)
			d_buf[k][i] = bench_word(b * BLOCK + 8 * i, wtag);
		written[b / 8] |= (uint8_t)(1 << (b % 8));
	}
	d_hdr[k] = (struct blk_hdr){ writing ? T_OUT : T_IN, 0, b * (BLOCK / 512) };
	d_status[k] = 0xff;
	q->desc[d] = (struct vdesc){ (uint64_t)&d_hdr[k], sizeof(d_hdr[k]), D_NEXT,
				     (uint16_t)(d + 1) };
	q->desc[d + 1] = (struct vdesc){ (uint64_t)d_buf[k], BLOCK,
					 (uint16_t)((writing ? 0 : D_WRITE) | D_NEXT),
					 (uint16_t)(d + 2) };
	q->desc[d + 2] = (struct vdesc){ (uint64_t)&d_status[k], 1, D_WRITE, 0 };
	vq_put(q, d);
}

static void complete(uint32_t id, uint32_t len, struct bench_result *r)
{
	unsigned k = id / 3;
	uint64_t b, tag;

	if (id % 3 || k >= depth || d_status[k] != S_OK || len != (writing ? 1 : BLOCK + 1)) {
		if (r->errors++ < 3)
			rt_printf("FAIL request at head %u: status %u, used length %u\n", id,
				  k < depth ? d_status[k] : 0x1ff, len);
		return;
	}
	if (writing)
		return;
	b = d_block[k];
	tag = written[b / 8] & (1 << (b % 8)) ? wtag : HOST_TAG;
	for (unsigned i = 0; i < BLOCK / 8; i++) {
		uint64_t want = bench_word(b * BLOCK + 8 * i, tag);

		if (d_buf[k][i] != want) {
			if (r->mismatches++ < 3)
				rt_printf("FAIL block %lu word %u: 0x%lx, expected 0x%lx\n", b, i,
					  d_buf[k][i], want);
			break;
		}
	}
}

static bool again(uint32_t id)
{
	issue(id / 3);
	return true;
}

/* `n` requests, `depth` of them in flight from the start to the
 * last few. */
static void run(struct bench_result *r)
{
	uint64_t issued = 0;

	for (unsigned k = 0; k < depth && issued < n; k++, issued++)
		issue(k);
	bench_loop(&dq, r, n, issued, complete, again);
}

static void __attribute__((noreturn)) user_main(void)
{
	bool bad = false;

	for (unsigned p = 0; phases[p]; p++) {
		struct bench_result r;

		writing = phases[p] == 'w';
		n = writing ? wcount : count;
		bench_phase(p + 1, phases[p], &r, run);
		bad = bad || r.errors || r.mismatches || r.completed != n;
	}
	rt_printf("bench-blk: done\n");
	guest_exit(bad);
}

static bool data_init(void)
{
	const uint64_t want = 1ull << F_VERSION_1 | 1ull << F_EVENT_IDX | 1ull << BLK_F_FLUSH;

	for (unsigned n = 0;; n++) {
		int slot = bench_find(VIRTIO_BLK_DEVICE, n);
		uint64_t cap;

		if (slot < 0)
			return false;
		if (!vdev_probe(&disk, (unsigned)slot))
			return false;
		cap = mmio_read64(disk.device + CFG_CAPACITY);
		if (cap == MB_SECTORS)
			continue;
		nblocks = cap / (BLOCK / 512);
		/* FLUSH, though none is sent: without it each write would be
		 * made stable before its answer. */
		if ((vdev_features(&disk) & want) != want || !bench_dev_init(&disk, (unsigned)slot, want))
			return false;
		bench_q_setup(&disk, &dq, 0, QSIZE, d_desc, d_avail, d_used);
		rt_printf("bench-blk: data at 00:%02x.0, %lu sectors; ", (unsigned)slot, cap);
		return bench_dev_ok(&disk);
	}
}

int main(void)
{
	bench_quiet();
	count = rt_arg("count", 1000);
	wcount = rt_arg("wcount", count);
	depth = rt_arg("depth", 32);
	seed = rt_arg("seed", 0x9e3779b97f4a7c15ull);
	wtag = rt_arg("wtag", WRITE_TAG);
	if (!rt_arg_str("run", phases, sizeof(phases)))
		phases[0] = 'r';
	for (unsigned p = 0; phases[p]; p++) {
		if (phases[p] != 'r' && phases[p] != 'w') {
			rt_printf("FAIL run=%s: phases are r and w\n", phases);
			return 2;
		}
	}
	if (!depth || depth > DEPTH_MAX || !seed || wtag >> 16) {
		rt_printf("FAIL depth 1-%u, seed not 0, wtag 16 bits\n", DEPTH_MAX);
		return 2;
	}
	if (!data_init() || !nblocks || nblocks > BLOCKS_MAX) {
		rt_printf("FAIL no data disk (a virtio-blk of 4 KiB to 4 GiB, with event_idx and flush)\n");
		return 2;
	}
	if (!mb_init()) {
		rt_printf("FAIL no mailbox (a virtio-blk of %u sectors)\n", MB_SECTORS);
		return 2;
	}
	rt_printf("mailbox at 00:%02x.0; run %s, %lu requests a phase", mb.dev.slot, phases, count);
	if (wcount != count)
		rt_printf(" (%lu a write phase)", wcount);
	rt_printf(", depth %lu\nready\n", depth);
	rt_enter_user(user_main, RT_USER_STACK_TOP);
}
