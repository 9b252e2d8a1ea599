// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Crash consistency: a power loss at any point leaves a disk that check
 * calls clean or repairs, and every write flushed before it is there.
 *
 * Workloads run through libvhd over a recording file that logs every
 * write, truncate, hole punch and flush.  Then, for each flush in the log
 * (and the start), the durable state is rebuilt: every operation before
 * it applied in order, plus a sample of what the writes after it (up to
 * the next flush) could have left: none, all, each prefix, random subsets,
 * all in reverse order, and torn writes (applied in 512-byte granules, any
 * of them).  Each state is checked with repair, checked again (clean), then
 * opened and read whole: a sector must hold the value it had at the last
 * completed vhd_flush, or one written after it, never anything else.
 *
 * Each sector's content is a pure function of a tag and the sector number,
 * so a read sector names the write it came from.  Tag 0 is zeros.
 *
 * Then each workload goes on from one of its torn states, once after check
 * repaired it and once opened directly for writing (open repairs a torn
 * end itself), and the new log is crash-tested the same way.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "memfile.h"
#include "util.h"

#define PARENT_TAG	(1ull << 63)

/* One in this many repaired states has its repair crash-tested too. */
#define REPAIR_SAMPLE	20

static unsigned total_states, total_repaired, total_repair_states;

struct workload {
	const char *name;
	enum vhd_type type;
	uint64_t size;
	uint32_t block_size;
	int ops;
	int flush_every;	/* one flush per this many operations, on average */
	unsigned zero_pct;	/* operations that write zeros */
	uint32_t max_sectors;	/* longest write */
	uint64_t seed;
};

struct write_rec {
	size_t pos;		/* log length when the write started */
	uint64_t sector, n, tag;
};

struct flush_rec {
	size_t pos;		/* log length when vhd_flush returned */
	uint64_t *tags;		/* every sector's tag then */
};

struct run {
	const struct workload *w;
	char name[300];		/* the image's name, in dir (for its parent) */
	uint64_t sectors;
	uint64_t *tags;		/* the model: each sector's latest tag */
	uint64_t next_tag;
	struct write_rec *writes;
	size_t nr_writes;
	struct flush_rec *flushes;
	size_t nr_flushes;
	struct memfile *rec;	/* the recording file */
	struct memfile *init;	/* the image before the log */
	struct memfile *orig;	/* the crash state before check repaired it */
	const char *phase;	/* for messages */
	uint8_t *readbuf;	/* the whole virtual disk */
	uint64_t rng;
	unsigned states, repaired, repair_states;
};

static uint64_t rnd(struct run *r)
{
	r->rng ^= r->rng << 13;
	r->rng ^= r->rng >> 7;
	r->rng ^= r->rng << 17;
	return r->rng;
}

static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size);

	assert_non_null(p);
	return p;
}

static void fill_sector(uint8_t *p, uint64_t tag, uint64_t s)
{
	uint64_t x = tag * 0x9e3779b97f4a7c15ull ^ (s + 1) * 0xbf58476d1ce4e5b9ull;

	if (!tag) {
		memset(p, 0, VHD_SECTOR_SIZE);
		return;
	}
	memcpy(p, &tag, 8);
	memcpy(p + 8, &s, 8);
	for (unsigned i = 16; i < VHD_SECTOR_SIZE; i += 8) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		memcpy(p + i, &x, 8);
	}
}

/* The tag a sector's content came from; false if it is no tag's. */
static bool sector_tag(const uint8_t *p, uint64_t s, uint64_t *tag)
{
	uint8_t want[VHD_SECTOR_SIZE];

	memcpy(tag, p, 8);
	fill_sector(want, *tag, s);
	return memcmp(want, p, VHD_SECTOR_SIZE) == 0;
}

static void add_flush_rec(struct run *r)
{
	struct flush_rec *f;

	r->flushes = realloc(r->flushes, (r->nr_flushes + 1) * sizeof(*f));
	assert_non_null(r->flushes);
	f = &r->flushes[r->nr_flushes++];
	f->pos = r->rec->nr_ops;
	f->tags = xcalloc(r->sectors, sizeof(uint64_t));
	memcpy(f->tags, r->tags, r->sectors * sizeof(uint64_t));
}

static void add_write_rec(struct run *r, uint64_t s, uint64_t n, uint64_t tag)
{
	struct write_rec *w;

	r->writes = realloc(r->writes, (r->nr_writes + 1) * sizeof(*w));
	assert_non_null(r->writes);
	w = &r->writes[r->nr_writes++];
	w->pos = r->rec->nr_ops;
	w->sector = s;
	w->n = n;
	w->tag = tag;
	for (uint64_t i = 0; i < n; i++)
		r->tags[s + i] = tag;
}

static void do_flush(struct run *r, struct vhd *v)
{
	assert_int_equal(vhd_flush(v), 0);
	memfile_mark(r->rec, 0);
	add_flush_rec(r);
}

/* Runs the workload's operations over r->rec, which holds r->init. */
static void drive(struct run *r, int nr_ops)
{
	const struct workload *w = r->w;
	struct vhd_open_opts o = { .flags = VHD_OPEN_RDWR | VHD_OPEN_NO_LOCK };
	struct vhd_error err = { 0 };
	uint32_t spb = (w->block_size ? w->block_size : VHD_DEFAULT_BLOCK_SIZE) /
		       VHD_SECTOR_SIZE;
	uint8_t *buf = xcalloc(w->max_sectors > spb ? w->max_sectors : spb,
			       VHD_SECTOR_SIZE);
	struct vhd *v;

	r->rec->record = true;
	add_flush_rec(r);
	if (vhd_open_file(&r->rec->base, r->name, &o, &v, &err) < 0)
		fail_msg("%s", err.msg);
	for (int i = 0; i < nr_ops; i++) {
		uint64_t s = rnd(r) % r->sectors, n, tag = 0;
		unsigned kind = (unsigned)(rnd(r) % 100);

		if (rnd(r) % 4 == 0) {
			/* A whole block, or a run crossing into the next. */
			s = s / spb * spb + (rnd(r) % 2 ? 0 : spb - 1);
			n = rnd(r) % 2 ? spb : 2;
		} else {
			n = 1 + rnd(r) % w->max_sectors;
		}
		if (s >= r->sectors)
			s = r->sectors - 1;
		if (n > r->sectors - s)
			n = r->sectors - s;
		if (n > (w->max_sectors > spb ? w->max_sectors : spb))
			n = w->max_sectors;
		if (kind < w->zero_pct / 2) {
			add_write_rec(r, s, n, 0);
			assert_int_equal(vhd_pwrite_zeroes(v, s * VHD_SECTOR_SIZE,
							   n * VHD_SECTOR_SIZE,
							   rnd(r) % 2), 0);
			continue;
		}
		if (kind >= w->zero_pct)
			tag = ++r->next_tag;
		for (uint64_t k = 0; k < n; k++)
			fill_sector(buf + k * VHD_SECTOR_SIZE, tag, s + k);
		add_write_rec(r, s, n, tag);
		assert_int_equal(vhd_pwrite(v, buf, n * VHD_SECTOR_SIZE,
					    s * VHD_SECTOR_SIZE),
				 (ssize_t)(n * VHD_SECTOR_SIZE));
		if (rnd(r) % (unsigned)w->flush_every == 0)
			do_flush(r, v);
	}
	do_flush(r, v);
	assert_int_equal(vhd_close(v), 0);
	r->rec->record = false;
	free(buf);
}

static void note_problem(void *opaque, const char *msg, bool repaired)
{
	char *log = opaque;
	size_t n = strlen(log);

	snprintf(log + n, 4096 - n, "  %s%s\n", msg, repaired ? "" : " [not repaired]");
}

/* What a crash state must read as: the tags at the last vhd_flush that
 * returned before it, or any written from then until the crash. */
struct expect {
	const struct flush_rec *fr;
	size_t end;		/* log position of the crash's next sync */
};

static void verify_data(struct run *r, struct memfile *m,
			const struct expect *ex, const char *what)
{
	struct vhd_open_opts oo = { .flags = VHD_OPEN_NO_LOCK | VHD_OPEN_RDWR };
	struct vhd_error err = { 0 };
	uint64_t size = r->sectors * VHD_SECTOR_SIZE;
	uint8_t *buf = r->readbuf;
	struct vhd *v;

	if (vhd_open_file(&m->base, r->name, &oo, &v, &err) < 0)
		fail_msg("%s%s, %s: %s", r->w->name, r->phase, what, err.msg);
	assert_int_equal(vhd_pread(v, buf, size, 0), (ssize_t)size);
	for (uint64_t s = 0; s < r->sectors; s++) {
		uint64_t tag;
		bool ok;

		if (!sector_tag(buf + s * VHD_SECTOR_SIZE, s, &tag))
			fail_msg("%s%s, %s: sector %llu holds garbage",
				 r->w->name, r->phase, what, (unsigned long long)s);
		ok = tag == ex->fr->tags[s];
		for (size_t i = 0; i < r->nr_writes && !ok; i++) {
			const struct write_rec *w = &r->writes[i];

			ok = w->pos >= ex->fr->pos && w->pos < ex->end &&
			     w->tag == tag && s >= w->sector &&
			     s < w->sector + w->n;
		}
		if (!ok)
			fail_msg("%s%s, %s: sector %llu has tag %llu, expected %llu (flushed) or a later write",
				 r->w->name, r->phase, what, (unsigned long long)s,
				 (unsigned long long)tag,
				 (unsigned long long)ex->fr->tags[s]);
	}
	assert_int_equal(vhd_close(v), 0);
}

static void repair_crash_test(struct run *r, const struct memfile *img,
			      const struct expect *ex, const char *what);

/* A crash state: check repairs it, then every sector is one it may be.
 * Some of the repairs are crash-tested in turn (nested is then true). */
static void verify(struct run *r, struct memfile *m, const struct expect *ex,
		   const char *what, bool nested)
{
	struct vhd_open_opts co = { .flags = VHD_OPEN_NO_LOCK };
	char log[4096] = "";
	struct vhd_check_report rep = { .problem = note_problem, .opaque = log };
	struct vhd_error err = { 0 };
	bool repaired;
	int ret;

	if (!nested)
		memfile_reset(r->orig, m->data, m->size);
	ret = vhd_check_file(&m->base, r->name, &co, true, &rep, &err);
	if (ret < 0 || rep.result == VHD_CHECK_CORRUPT)
		fail_msg("%s%s, %s: check %s:\n%s%s", r->w->name, r->phase, what,
			 ret < 0 ? "failed" : "left it corrupt", log, err.msg);
	repaired = rep.result == VHD_CHECK_REPAIRED;
	log[0] = '\0';
	ret = vhd_check_file(&m->base, r->name, &co, false, &rep, &err);
	if (ret < 0 || rep.result != VHD_CHECK_CLEAN)
		fail_msg("%s%s, %s: not clean after repair:\n%s%s", r->w->name,
			 r->phase, what, log, err.msg);
	verify_data(r, m, ex, what);
	if (nested) {
		r->repair_states++;
		return;
	}
	r->states++;
	if (repaired && r->repaired++ % REPAIR_SAMPLE == 0)
		repair_crash_test(r, r->orig, ex, what);
}

/* Applies an operation, for torn states only some of its sectors. */
static void apply_torn(struct run *r, struct memfile *m, const struct mem_op *op)
{
	if (op->kind != MEM_WRITE) {
		if (rnd(r) % 2)
			memfile_apply(m, op);
		return;
	}
	for (uint64_t o = op->off; o < op->off + op->len;) {
		uint64_t next = (o / VHD_SECTOR_SIZE + 1) * VHD_SECTOR_SIZE;

		if (next > op->off + op->len)
			next = op->off + op->len;
		if (rnd(r) % 2)
			memfile_write(m, op->data + (o - op->off), next - o, o);
		o = next;
	}
}

enum variant { V_NONE, V_ALL, V_PREFIX, V_SUBSET, V_REVERSE, V_TORN };

static void crash_state(struct run *r, struct memfile *m,
			const struct memfile *base, const struct mem_op *log,
			const size_t *ops, size_t n, enum variant var, size_t k)
{
	memfile_reset(m, base->data, base->size);
	switch (var) {
	case V_NONE:
		break;
	case V_ALL:
	case V_PREFIX:
		for (size_t i = 0; i < k; i++)
			memfile_apply(m, &log[ops[i]]);
		break;
	case V_SUBSET:
		for (size_t i = 0; i < n; i++)
			if (rnd(r) % 2)
				memfile_apply(m, &log[ops[i]]);
		break;
	case V_REVERSE:
		for (size_t i = n; i-- > 0;)
			memfile_apply(m, &log[ops[i]]);
		break;
	case V_TORN:
		for (size_t i = 0; i < n; i++)
			apply_torn(r, m, &log[ops[i]]);
		break;
	}
}

typedef void (*state_fn)(struct run *r, struct memfile *state, size_t epoch,
			 size_t end, enum variant var, const char *what,
			 void *arg);

/* Every flush point of a log over init, with a sample of its crash
 * states: the operations before the flush, and some of those after it up
 * to the next. */
static void for_each_crash_state(struct run *r, const struct memfile *log,
				 const struct memfile *init, state_fn fn,
				 void *arg)
{
	static const char *const names[] = {
		"none", "all", "prefix", "subset", "reverse", "torn"
	};
	struct memfile *base = memfile_new(init->data, init->size);
	struct memfile *m = memfile_new(NULL, 0);
	size_t *ops = xcalloc(log->nr_ops, sizeof(size_t));
	size_t applied = 0, start = 0, epoch = 0;

	while (start <= log->nr_ops) {
		struct { enum variant var; size_t k; } plan[32];
		size_t end = start, n = 0, np = 0;
		char what[160];

		while (end < log->nr_ops && log->ops[end].kind != MEM_FLUSH)
			end++;
		for (; applied < start; applied++)
			memfile_apply(base, &log->ops[applied]);
		for (size_t i = start; i < end; i++)
			if (log->ops[i].kind != MEM_MARK)
				ops[n++] = i;
		plan[np++].var = V_NONE;
		if (n) {
			plan[np].var = V_ALL;
			plan[np++].k = n;
		}
		for (size_t k = 1; k < n && np < 8; k++) {
			plan[np].var = V_PREFIX;
			plan[np++].k = n <= 7 ? k : 1 + rnd(r) % (n - 1);
		}
		for (int i = 0; n >= 2 && i < 4; i++)
			plan[np++].var = V_SUBSET;
		if (n >= 2)
			plan[np++].var = V_REVERSE;
		for (int i = 0; n && i < 4; i++)
			plan[np++].var = V_TORN;
		for (size_t i = 0; i < np; i++) {
			crash_state(r, m, base, log->ops, ops, n, plan[i].var,
				    plan[i].k);
			snprintf(what, sizeof(what),
				 "flush point %zu (log %zu..%zu), %s %zu of %zu writes",
				 epoch, start, end, names[plan[i].var],
				 plan[i].var == V_PREFIX ? plan[i].k : n, n);
			fn(r, m, epoch, end, plan[i].var, what, arg);
		}
		start = end + 1;
		epoch++;
	}
	free(ops);
	memfile_free(m);
	memfile_free(base);
}

struct repair_ctx {
	const struct expect *ex;
	const char *what;
};

static void repair_state(struct run *r, struct memfile *m, size_t epoch,
			 size_t end, enum variant var, const char *what,
			 void *arg)
{
	const struct repair_ctx *c = arg;
	char both[400];

	snprintf(both, sizeof(both), "%s, then a crash repairing it at %s",
		 c->what, what);
	verify(r, m, c->ex, both, true);
}

/* Check's own repairs, crashed at every point: each state is repaired
 * again and holds what the unrepaired state had to hold. */
static void repair_crash_test(struct run *r, const struct memfile *img,
			      const struct expect *ex, const char *what)
{
	struct vhd_open_opts co = { .flags = VHD_OPEN_NO_LOCK };
	struct repair_ctx c = { .ex = ex, .what = what };
	struct memfile *rec = memfile_new(img->data, img->size);
	struct vhd_check_report rep = { 0 };
	struct vhd_error err = { 0 };

	rec->record = true;
	assert_int_equal(vhd_check_file(&rec->base, r->name, &co, true, &rep, &err), 0);
	rec->record = false;
	for_each_crash_state(r, rec, img, repair_state, &c);
	memfile_free(rec);
}

struct main_ctx {
	size_t keep_at;		/* flush point whose torn state to keep */
	struct memfile *kept;
};

static void main_state(struct run *r, struct memfile *m, size_t epoch,
		       size_t end, enum variant var, const char *what, void *arg)
{
	struct main_ctx *c = arg;
	struct expect ex = { .fr = &r->flushes[0], .end = end };

	/* The last vhd_flush that returned before the next sync. */
	for (size_t i = 0; i < r->nr_flushes; i++)
		if (r->flushes[i].pos <= end)
			ex.fr = &r->flushes[i];
	if (epoch == c->keep_at && var == V_TORN && !c->kept)
		c->kept = memfile_new(m->data, m->size);
	verify(r, m, &ex, what, false);
}

/* Crash-tests r's log; returns a torn state of flush point keep_at. */
static struct memfile *crash_test(struct run *r, size_t keep_at)
{
	struct main_ctx c = { .keep_at = keep_at };

	if (!r->orig)
		r->orig = memfile_new(NULL, 0);
	if (!r->readbuf)
		r->readbuf = xcalloc(r->sectors, VHD_SECTOR_SIZE);
	for_each_crash_state(r, r->rec, r->init, main_state, &c);
	return c.kept;
}

static void run_free(struct run *r)
{
	for (size_t i = 0; i < r->nr_flushes; i++)
		free(r->flushes[i].tags);
	free(r->flushes);
	free(r->writes);
	free(r->tags);
	free(r->readbuf);
	memfile_free(r->orig);
	memfile_free(r->rec);
	memfile_free(r->init);
	memset(r, 0, sizeof(*r));
}

static void run_report(const struct run *r)
{
	printf("crash: %s%s: %zu log ops, %zu flushes, %u states (%u repaired, %u more while repairing)\n",
	       r->w->name, r->phase, r->rec->nr_ops, r->nr_flushes, r->states,
	       r->repaired, r->repair_states);
	total_states += r->states;
	total_repaired += r->repaired;
	total_repair_states += r->repair_states;
}

/* The parent of a differencing workload: a real file with some data. */
static void make_parent(struct run *r, const char *path)
{
	struct vhd_create_opts co = { .type = VHD_TYPE_DYNAMIC, .size = r->w->size,
				      .block_size = 64 << 10 };
	struct vhd_open_opts o = { .flags = VHD_OPEN_RDWR };
	struct vhd_error err = { 0 };
	uint8_t buf[64 * VHD_SECTOR_SIZE];
	struct vhd *v;

	unlink(path);
	if (vhd_create(path, &co, &err) < 0 || vhd_open(path, &o, &v, &err) < 0)
		fail_msg("%s", err.msg);
	for (int i = 0; i < 40; i++) {
		uint64_t s = rnd(r) % r->sectors, n = 1 + rnd(r) % 64;
		uint64_t tag = PARENT_TAG | (uint64_t)i;

		if (n > r->sectors - s)
			n = r->sectors - s;
		for (uint64_t k = 0; k < n; k++) {
			fill_sector(buf + k * VHD_SECTOR_SIZE, tag, s + k);
			r->tags[s + k] = tag;
		}
		assert_int_equal(vhd_pwrite(v, buf, n * VHD_SECTOR_SIZE,
					    s * VHD_SECTOR_SIZE),
				 (ssize_t)(n * VHD_SECTOR_SIZE));
	}
	assert_int_equal(vhd_close(v), 0);
}

/* Goes on writing from a crash state, repaired by check or by open. */
static void continue_from(struct run *first, struct memfile *img, bool by_check)
{
	struct run r = { .w = first->w, .sectors = first->sectors,
			 .rng = first->rng ^ 0x5555, .next_tag = first->next_tag + 1000000 };
	struct vhd_open_opts o = { .flags = VHD_OPEN_NO_LOCK };
	struct vhd_check_report rep = { 0 };
	struct vhd_error err = { 0 };
	uint64_t size = r.sectors * VHD_SECTOR_SIZE;
	uint8_t *buf = malloc(size);
	struct vhd *v;

	assert_non_null(buf);
	snprintf(r.name, sizeof(r.name), "%s", first->name);
	r.phase = by_check ? " (going on after check)" : " (going on after open)";
	if (by_check) {
		assert_int_equal(vhd_check_file(&img->base, r.name, &o, true, &rep, &err), 0);
		assert_int_not_equal(rep.result, VHD_CHECK_CORRUPT);
	}
	/* The model starts from what the state holds (verified already). */
	r.tags = xcalloc(r.sectors, sizeof(uint64_t));
	assert_int_equal(vhd_open_file(&img->base, r.name, &o, &v, &err), 0);
	assert_int_equal(vhd_pread(v, buf, size, 0), (ssize_t)size);
	for (uint64_t s = 0; s < r.sectors; s++)
		assert_true(sector_tag(buf + s * VHD_SECTOR_SIZE, s, &r.tags[s]));
	vhd_close(v);
	free(buf);
	r.init = memfile_new(img->data, img->size);
	r.rec = img;
	drive(&r, r.w->ops / 2);
	memfile_free(crash_test(&r, SIZE_MAX));
	run_report(&r);
	run_free(&r);
}

static void run_workload(const struct workload *w)
{
	struct vhd_create_opts co = { .type = w->type, .size = w->size,
				      .block_size = w->block_size };
	struct vhd_error err = { 0 };
	struct run r = { .w = w, .rng = w->seed, .sectors = w->size / VHD_SECTOR_SIZE,
			 .phase = "" };
	char parent[300];
	struct memfile *kept, *again;

	r.tags = xcalloc(r.sectors, sizeof(uint64_t));
	snprintf(r.name, sizeof(r.name), "%s.vhd", tpath(w->name));
	if (w->type == VHD_TYPE_DIFF) {
		snprintf(parent, sizeof(parent), "%s-parent.vhd", tpath(w->name));
		make_parent(&r, parent);
		co.parent = parent;
	}
	r.rec = memfile_new(NULL, 0);
	if (vhd_create_file(&r.rec->base, r.name, &co, &err) < 0)
		fail_msg("%s", err.msg);
	r.init = memfile_new(r.rec->data, r.rec->size);
	drive(&r, w->ops);
	kept = crash_test(&r, r.nr_flushes / 2);
	run_report(&r);
	assert_non_null(kept);
	again = memfile_new(kept->data, kept->size);
	continue_from(&r, kept, true);
	continue_from(&r, again, false);
	run_free(&r);
}

static const struct workload workloads[] = {
	{ "dynamic-4k-blocks", VHD_TYPE_DYNAMIC, 2 << 20, 4096, 120, 6, 20, 24, 1 },
	{ "dynamic-512-blocks", VHD_TYPE_DYNAMIC, 256 << 10, 512, 100, 5, 20, 6, 2 },
	{ "dynamic-2m-blocks", VHD_TYPE_DYNAMIC, 6 << 20, 0, 60, 5, 20, 64, 3 },
	{ "dynamic-64k-zeroes", VHD_TYPE_DYNAMIC, 2 << 20, 64 << 10, 100, 6, 50, 160, 4 },
	{ "diff-64k-blocks", VHD_TYPE_DIFF, 2 << 20, 64 << 10, 100, 6, 20, 40, 5 },
	{ "diff-2m-blocks", VHD_TYPE_DIFF, 6 << 20, 0, 60, 5, 30, 64, 6 },
	/* Over 4096 dirty bitmaps: a write flushes them in the middle. */
	{ "diff-512-blocks-many", VHD_TYPE_DIFF, 3 << 20, 512, 10, 4, 10, 4200, 8 },
	/* Four-sector bitmaps, which a crash can tear. */
	{ "diff-8m-blocks", VHD_TYPE_DIFF, 16 << 20, 8 << 20, 40, 4, 20, 64, 7 },
};

static void test_crash(void **state)
{
	const struct workload *w = *state;

	run_workload(w);
}

int main(void)
{
	struct CMUnitTest tests[sizeof(workloads) / sizeof(workloads[0])];
	struct timespec t0, t1;
	int r;

	for (size_t i = 0; i < sizeof(workloads) / sizeof(workloads[0]); i++) {
		struct CMUnitTest t = {
			.name = workloads[i].name,
			.test_func = test_crash,
			.initial_state = (void *)&workloads[i],
		};

		tests[i] = t;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	r = TRUN(tests);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("crash: %u crash states checked (%u repaired, and %u more crashing those repairs) in %.1f s\n",
	       total_states, total_repaired, total_repair_states,
	       (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
	return r;
}
