// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * A whole VM's saved state (docs/control.md, "Saved state"): `vsrv ctl
 * save FILE` writes it from a paused VM, `vsrv run --restore FILE` starts
 * the VM again from it.  The file is savefile.h's container with these
 * sections:
 *
 *   CONF 0   the configuration that must match, and the rest as defaults
 *            for the restore (JSON)
 *   VCPU i   vCPU i's KVM state (vmstate.c), with its CPUID
 *   VMST 0   the PICs, the IOAPIC, the PIT, the KVM clock
 *   DEV  k   the k-th device of the registry: its name, then its state
 *   DREF k   what the k-th device stands on outside the VM (a disk's
 *            VHD ids and stamps; the device's save_ref/check_ref)
 *   MEM  m   RAM region m: its pages that hold anything but zeros, in
 *            order, then a bitmap of which they are, then the region's
 *            address and page count.  Pages the guest never touched
 *            (pagemap) or left all zeros are not written.
 *
 * Restoring reads and checks every section before it sets anything: the
 * whole file's checksums, the vCPUs and devices it names against this
 * VM's, the CPU features the guest was given against what this host's
 * KVM offers, every DREF.  Guest memory is mapped from the file into the
 * new VM's RAM, copy-on-write, where the file's lease allows (guestmem.c),
 * else read into it, and checked as it comes; the VM has not run, and a
 * refusal ends its process.  Only then do the vCPUs, the irqchip, the
 * clock and the devices get their state.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <jansson.h>

#include "../devices/state.h"
#include "savefile.h"
#include "vmm.h"

#define IOV_BATCH	512
#define READ_CHUNK	(64ull << 20)
#define MAP_PAGES_MIN	16	/* 64 KiB: smaller runs are copied */
#define MAPS_MAX	4096

/* --- saving --- */

static json_t *saved_config(const struct vmm_config *cfg)
{
	json_t *conf = json_pack("{s:i,s:I,s:b,s:b,s:s*,s:s*,s:s*,s:s*,s:s*,s:o,s:o,s:b,s:b}",
			 "vcpus", (int)cfg->vm.nr_cpus, "memory", (json_int_t)cfg->vm.mem_size,
			 "rng", cfg->rng, "test_device", cfg->vm.test_device,
			 "kernel", cfg->boot.kernel, "initrd", cfg->boot.initrd,
			 "cmdline", cfg->boot.cmdline, "name", cfg->name, "uuid", cfg->uuid,
			 "disks", vmm_config_disks_json(cfg), "nics", vmm_config_nics_json(cfg),
			 "memfd", cfg->vm.memfd, "hugepages", cfg->vm.hugepages);

	/* Only when it was asked for: a restore otherwise keeps the default
	 * of the vsrv that restores. */
	if (conf && cfg->vm.halt_poll_given)
		json_object_set_new(conf, "halt_poll_ns", json_integer(cfg->vm.halt_poll_ns));
	return conf;
}

static int write_stream(struct sf_writer *w, const char *tag, uint32_t index,
			const struct dev_state *st)
{
	int r = sf_begin(w, tag, index);

	if (r >= 0)
		r = sf_write(w, st->buf, st->len);
	if (r >= 0)
		r = sf_end(w);
	return r;
}

struct mem_writer {
	struct sf_writer *w;
	uint64_t *bitmap, base;
	struct iovec iov[IOV_BATCH];
	int n;
};

static int mem_flush(struct mem_writer *mw)
{
	int r = mw->n ? sf_writev(mw->w, mw->iov, mw->n) : 0;

	mw->n = 0;
	return r;
}

static bool zero_page(const void *p)
{
	const uint64_t *q = p;
	uint64_t acc = 0;

	/* A page with data mostly says so in its first bytes: the whole
	 * page is read only for those that may be zeros (a second pass over
	 * every page cost a quarter of a save). */
	if (q[0] | q[1])
		return false;
	for (unsigned i = 2; i < VM_PAGE_SIZE / 8; i++)
		acc |= q[i];
	return !acc;
}

/* A run of touched pages: the ones not all zeros go to the file. */
static int mem_run(void *opaque, uint64_t gpa, void *hva, uint64_t len)
{
	struct mem_writer *mw = opaque;

	for (uint64_t off = 0; off < len; off += VM_PAGE_SIZE) {
		uint8_t *p = (uint8_t *)hva + off;
		uint64_t page = (gpa + off - mw->base) / VM_PAGE_SIZE;
		struct iovec *last = mw->n ? &mw->iov[mw->n - 1] : NULL;
		int r;

		if (zero_page(p))
			continue;
		mw->bitmap[page / 64] |= 1ull << (page % 64);
		if (last && (uint8_t *)last->iov_base + last->iov_len == p &&
		    last->iov_len < READ_CHUNK) {
			last->iov_len += VM_PAGE_SIZE;
			continue;
		}
		if (mw->n == IOV_BATCH && (r = mem_flush(mw)) < 0)
			return r;
		mw->iov[mw->n++] = (struct iovec){ p, VM_PAGE_SIZE };
	}
	return 0;
}

static int save_region(struct sf_writer *w, struct vm *vm, int pagemap, unsigned m)
{
	const struct mem_region *reg = &vm->mem[m];
	uint64_t pages = reg->size / VM_PAGE_SIZE, words = (pages + 63) / 64;
	struct mem_writer *mw = calloc(1, sizeof(*mw));
	uint8_t trailer[16];
	int r;

	if (!mw || !(mw->bitmap = calloc(words ? words : 1, 8))) {
		free(mw);
		return -ENOMEM;
	}
	mw->w = w;
	mw->base = reg->gpa;
	r = sf_begin(w, "MEM ", m);
	if (r >= 0)
		r = guestmem_region_runs(vm, pagemap, m, mem_run, mw);
	if (r >= 0)
		r = mem_flush(mw);
	for (unsigned i = 0; i < 8; i++) {
		trailer[i] = (uint8_t)(reg->gpa >> (8 * i));
		trailer[8 + i] = (uint8_t)(pages >> (8 * i));
	}
	/* The bitmap as little-endian words. */
	for (uint64_t i = 0; i < words; i++) {
		uint64_t v = mw->bitmap[i];
		uint8_t *b = (uint8_t *)&mw->bitmap[i];

		for (unsigned k = 0; k < 8; k++)
			b[k] = (uint8_t)(v >> (8 * k));
	}
	if (r >= 0)
		r = sf_write(w, mw->bitmap, words * 8);
	if (r >= 0)
		r = sf_write(w, trailer, sizeof(trailer));
	if (r >= 0)
		r = sf_end(w);
	free(mw->bitmap);
	free(mw);
	return r;
}

int vm_save(struct vm *vm, const struct vmm_config *cfg, int pagemap, int fd, uint64_t *bytes,
	    char *err, size_t errlen)
{
	struct sf_writer w;
	json_t *conf = saved_config(cfg);
	char *text = conf ? json_dumps(conf, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	struct dev_state st;
	unsigned k = 0;
	int r;

	json_decref(conf);
	state_init(&st);
	r = text ? sf_writer_init(&w, fd) : -ENOMEM;
	if (r < 0) {
		free(text);
		snprintf(err, errlen, "out of memory");
		return r;
	}
	r = sf_begin(&w, "CONF", 0);
	if (r >= 0)
		r = sf_write(&w, text, strlen(text));
	if (r >= 0)
		r = sf_end(&w);
	free(text);
	for (unsigned i = 0; r >= 0 && i < vm->opts.nr_cpus; i++) {
		state_free(&st);
		r = vcpu_state_save(&vm->vcpus[i], &st);
		if (r < 0) {
			snprintf(err, errlen, "vCPU %u's state: %s", i, strerror(-r));
			goto out;
		}
		r = write_stream(&w, "VCPU", i, &st);
	}
	if (r >= 0) {
		state_free(&st);
		r = vm_state_save(vm, &st);
		if (r < 0) {
			snprintf(err, errlen, "the irqchip, PIT or clock: %s", strerror(-r));
			goto out;
		}
		r = write_stream(&w, "VMST", 0, &st);
	}
	for (struct vm_device *d = vm->devices; r >= 0 && d; d = d->next, k++) {
		state_free(&st);
		state_put_u16(&st, (uint16_t)strlen(d->name));
		state_put_bytes(&st, d->name, strlen(d->name));
		r = d->ops->save(d->opaque, &st);
		if (r >= 0)
			r = st.err;
		if (r < 0) {
			snprintf(err, errlen, "%s's state: %s", d->name, strerror(-r));
			goto out;
		}
		r = write_stream(&w, "DEV ", k, &st);
		if (r >= 0 && d->ops->save_ref) {
			state_free(&st);
			r = d->ops->save_ref(d->opaque, &st);
			if (r >= 0)
				r = write_stream(&w, "DREF", k, &st);
		}
	}
	for (unsigned m = 0; r >= 0 && m < vm->nr_mem; m++)
		r = save_region(&w, vm, pagemap, m);
	if (r >= 0)
		r = sf_finish(&w, VSRV_VERSION, bytes);
	if (r < 0)
		snprintf(err, errlen, "writing: %s", strerror(-r));
out:
	state_free(&st);
	sf_writer_free(&w);
	return r;
}

/* --- the configuration, before the VM is made --- */

/*
 * What the saved configuration must hold to be taken as this run's:
 * what a VM can be made with (its checksum says only that the file is as
 * written, not who wrote it), as --cpus, --memory and --config check
 * theirs.  The disks and NICs are checked as "disks" and "nics" are.
 */
static int conf_check(json_t *conf, const char *path, char *err, size_t errlen)
{
	static const char *const strings[] = { "kernel", "initrd", "cmdline", "name", "uuid", NULL };
	static const char *const bools[] = { "rng", "test_device", "memfd", "hugepages", NULL };
	json_t *cpus = json_object_get(conf, "vcpus"), *mem = json_object_get(conf, "memory"), *hp;
	const char *why = NULL;
	char what[64];

	if (!json_is_object(conf)) {
		why = "";
	} else if (!json_is_integer(cpus) || json_integer_value(cpus) < 1 ||
		   json_integer_value(cpus) > VM_MAX_CPUS) {
		snprintf(what, sizeof(what), " (vcpus: expected 1 to %d)", VM_MAX_CPUS);
		why = what;
	} else if (!json_is_integer(mem) || json_integer_value(mem) < (json_int_t)VMM_MEMORY_MIN ||
		   (uint64_t)json_integer_value(mem) > VMM_MEMORY_MAX ||
		   json_integer_value(mem) % VM_PAGE_SIZE) {
		why = " (memory: expected whole pages from 16 MiB to 1 TiB)";
	}
	for (const char *const *k = strings; !why && *k; k++) {
		json_t *v = json_object_get(conf, *k);

		if (v && !json_is_null(v) && !json_is_string(v)) {
			snprintf(what, sizeof(what), " (%s: expected a string)", *k);
			why = what;
		}
	}
	for (const char *const *k = bools; !why && *k; k++) {
		json_t *v = json_object_get(conf, *k);

		if (v && !json_is_boolean(v)) {
			snprintf(what, sizeof(what), " (%s: expected true or false)", *k);
			why = what;
		}
	}
	hp = json_object_get(conf, "halt_poll_ns");
	if (!why && hp && (!json_is_integer(hp) || json_integer_value(hp) < 0 ||
			   json_integer_value(hp) > VM_HALT_POLL_NS_MAX)) {
		snprintf(what, sizeof(what), " (halt_poll_ns: expected 0 to %u)",
			 VM_HALT_POLL_NS_MAX);
		why = what;
	}
	if (!why)
		return 0;
	snprintf(err, errlen, "%s: corrupt: its configuration does not read%s", path, why);
	return -EINVAL;
}

int vm_restore_config(struct vmm_config *cfg, char *err, size_t errlen)
{
	struct sf_reader r;
	const struct sf_section *s;
	uint8_t *buf = NULL;
	json_t *conf, *v;
	uint64_t len;
	int e = sf_open(&r, cfg->restore, err, errlen);

	if (e < 0)
		return e;
	s = sf_find(&r, "CONF", 0);
	if (!s) {
		sf_close(&r);
		snprintf(err, errlen, "%s: corrupt: it has no configuration", cfg->restore);
		return -EINVAL;
	}
	len = s->length;
	e = sf_read(&r, s, &buf, err, errlen);
	sf_close(&r);
	if (e < 0)
		return e;
	conf = json_loadb((char *)buf, len, 0, NULL);
	free(buf);
	e = conf_check(conf, cfg->restore, err, errlen);
	if (e < 0) {
		json_decref(conf);
		return e;
	}
	cfg->restore_conf = conf;
	/* Defaults for this run, which options and --config may change; what
	 * must match is checked once they have (vm_restore_config_check). */
	cfg->vm.nr_cpus = (unsigned)json_integer_value(json_object_get(conf, "vcpus"));
	cfg->vm.mem_size = (uint64_t)json_integer_value(json_object_get(conf, "memory"));
	cfg->rng = json_is_true(json_object_get(conf, "rng"));
	cfg->vm.test_device = json_is_true(json_object_get(conf, "test_device"));
	/* How guest memory is held is this run's to choose; the saved one is
	 * its default. */
	cfg->vm.memfd = json_is_true(json_object_get(conf, "memfd"));
	cfg->vm.hugepages = json_is_true(json_object_get(conf, "hugepages"));
	/* KVM's halt polling, as the saved run had it, unless this run's
	 * options say otherwise. */
	if ((v = json_object_get(conf, "halt_poll_ns"))) {
		cfg->vm.halt_poll_ns = (uint32_t)json_integer_value(v);
		cfg->vm.halt_poll_given = true;
	}
	if ((v = json_object_get(conf, "kernel")))
		cfg->boot.kernel = json_string_value(v);
	if ((v = json_object_get(conf, "initrd")))
		cfg->boot.initrd = json_string_value(v);
	if ((v = json_object_get(conf, "cmdline")))
		cfg->boot.cmdline = json_string_value(v);
	if ((v = json_object_get(conf, "name")))
		cfg->name = json_string_value(v);
	if ((v = json_object_get(conf, "uuid")))
		cfg->uuid = json_string_value(v);
	/* The disks as "disks" has them; an undo=keep disk's run goes on on
	 * the overlay that the saved run kept, whose stamps the DREF has. */
	if ((v = json_object_get(conf, "disks")) &&
	    vmm_config_disks_from_json(v, cfg->restore, cfg, err, errlen) < 0)
		return -EINVAL;
	for (unsigned i = 0; i < cfg->nr_disks; i++)
		cfg->disks[i].spec.undo_resume = cfg->disks[i].spec.undo == DISK_UNDO_KEEP;
	/* The NICs too (their backends are new: a network may lose frames). */
	if ((v = json_object_get(conf, "nics")) &&
	    vmm_config_nics_from_json(v, cfg->restore, cfg, err, errlen) < 0)
		return -EINVAL;
	return 0;
}

int vm_restore_config_check(const struct vmm_config *cfg, char *err, size_t errlen)
{
	json_t *conf = cfg->restore_conf;
	unsigned cpus = (unsigned)json_integer_value(json_object_get(conf, "vcpus"));
	uint64_t mem = (uint64_t)json_integer_value(json_object_get(conf, "memory"));
	bool rng = json_is_true(json_object_get(conf, "rng"));
	bool testdev = json_is_true(json_object_get(conf, "test_device"));
	unsigned disks = (unsigned)json_array_size(json_object_get(conf, "disks"));
	unsigned nics = (unsigned)json_array_size(json_object_get(conf, "nics"));
	const char *what = NULL;
	char saved[64], now[64];

	if (cfg->vm.nr_cpus != cpus) {
		what = "vCPUs";
		snprintf(saved, sizeof(saved), "%u", cpus);
		snprintf(now, sizeof(now), "%u", cfg->vm.nr_cpus);
	} else if (cfg->vm.mem_size != mem) {
		what = "memory";
		snprintf(saved, sizeof(saved), "%llu MiB", (unsigned long long)(mem >> 20));
		snprintf(now, sizeof(now), "%llu MiB", (unsigned long long)(cfg->vm.mem_size >> 20));
	} else if (cfg->rng != rng || cfg->vm.test_device != testdev) {
		what = cfg->rng != rng ? "virtio-rng" : "test device";
		snprintf(saved, sizeof(saved), "%s", (cfg->rng != rng ? rng : testdev) ? "on" : "off");
		snprintf(now, sizeof(now), "%s", (cfg->rng != rng ? cfg->rng : cfg->vm.test_device) ?
			 "on" : "off");
	} else if (cfg->nr_disks != disks) {
		/* Which disk is which, and whether it changed, the DREFs say. */
		what = "disks";
		snprintf(saved, sizeof(saved), "%u", disks);
		snprintf(now, sizeof(now), "%u", cfg->nr_disks);
	} else if (cfg->nr_nics != nics) {
		what = "NICs";
		snprintf(saved, sizeof(saved), "%u", nics);
		snprintf(now, sizeof(now), "%u", cfg->nr_nics);
	}
	if (!what)
		return 0;
	snprintf(err, errlen, "%s: saved with %s %s, this run has %s (a restore needs the same "
		 "vCPUs, memory and devices)", cfg->restore, what, saved, now);
	return -EINVAL;
}

/* --- restoring, in the boot's process --- */

/* A run of the file's pages into guest memory at page p: mapped (*maps
 * counts the mappings), or copied.  Hashed either way. */
static int load_run(struct sf_reader *r, struct vm *vm, unsigned m, uint64_t p, uint64_t n,
		    uint64_t off, unsigned *maps, XXH3_state_t *h, char *err, size_t errlen)
{
	uint8_t *at = (uint8_t *)vm->mem[m].hva + p * VM_PAGE_SIZE;
	int e;

	/* Mapped where the lease allows it, but not tiny runs, nor without
	 * bound: each mapping is the process's (vm.max_map_count). */
	if (maps && n >= MAP_PAGES_MIN && *maps < MAPS_MAX) {
		e = guestmem_map(vm, m, p, n, r->fd, off);
		if (e < 0) {
			snprintf(err, errlen, "%s: mapping its memory: %s", r->path, strerror(-e));
			return e;
		}
		(*maps)++;
		XXH3_64bits_update(h, at, n * VM_PAGE_SIZE);
		return 0;
	}
	/* Copied straight into guest memory (the VM has not run), a piece at
	 * a time: its pages made first, in one call (a fault per page costs
	 * more, most of all where the host is itself a VM), then read, then
	 * hashed while the CPU's caches still hold them. */
	for (uint64_t done = 0; done < n * VM_PAGE_SIZE;) {
		uint64_t len = n * VM_PAGE_SIZE - done < SF_PIECE ? n * VM_PAGE_SIZE - done :
			       SF_PIECE;

		madvise(at + done, len, MADV_POPULATE_WRITE);
		e = sf_pread(r, at + done, len, off + done, err, errlen);
		if (e < 0)
			return e;
		XXH3_64bits_update(h, at + done, len);
		done += len;
	}
	return 0;
}

static int load_region(struct sf_reader *r, struct vm *vm, unsigned m, unsigned *maps,
		       char *err, size_t errlen)
{
	const struct mem_region *reg = &vm->mem[m];
	uint64_t pages = reg->size / VM_PAGE_SIZE, words = (pages + 63) / 64, count = 0, gpa, n;
	const struct sf_section *s = sf_find(r, "MEM ", m);
	uint8_t trailer[16], *bm;
	XXH3_state_t *h;
	uint64_t off;
	int e;

	if (!s || s->length < words * 8 + sizeof(trailer)) {
		snprintf(err, errlen, "%s: corrupt: the memory at 0x%llx is %s", r->path,
			 (unsigned long long)reg->gpa, s ? "cut short" : "missing");
		return -EINVAL;
	}
	bm = malloc(words * 8 + 1);
	h = XXH3_createState();
	if (!bm || !h) {
		free(bm);
		XXH3_freeState(h);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	off = s->offset + s->length - sizeof(trailer) - words * 8;
	e = sf_pread(r, bm, words * 8, off, err, errlen);
	if (e >= 0)
		e = sf_pread(r, trailer, sizeof(trailer), off + words * 8, err, errlen);
	if (e < 0)
		goto out;
	gpa = n = 0;
	for (int i = 7; i >= 0; i--) {
		gpa = gpa << 8 | trailer[i];
		n = n << 8 | trailer[8 + i];
	}
	for (uint64_t i = 0; i < words * 8; i++)
		count += (uint64_t)__builtin_popcount(bm[i]);
	/* Bits past the region's end would be pages nobody can hold. */
	if (gpa != reg->gpa || n != pages || (pages % 8 && bm[pages / 8] >> (pages % 8)) ||
	    count * VM_PAGE_SIZE != s->length - sizeof(trailer) - words * 8) {
		snprintf(err, errlen, "%s: corrupt: the memory at 0x%llx does not fit this VM's",
			 r->path, (unsigned long long)reg->gpa);
		e = -EINVAL;
		goto out;
	}
	/* Huge pages where the host has them (THP "madvise") for what is
	 * copied: populating 2 MiB at a time is most of what a copying
	 * restore saves; the restored guest runs on them too. */
	madvise(reg->hva, reg->size, MADV_HUGEPAGE);
	XXH3_64bits_reset(h);
	off = s->offset;
	for (uint64_t p = 0; p < pages && e >= 0;) {
		uint64_t q = p;

		if (!(bm[p / 8] >> (p % 8) & 1)) {
			p++;
			continue;
		}
		while (q < pages && (bm[q / 8] >> (q % 8) & 1) &&
		       (q - p) * VM_PAGE_SIZE < READ_CHUNK)
			q++;
		e = load_run(r, vm, m, p, q - p, off, maps, h, err, errlen);
		off += (q - p) * VM_PAGE_SIZE;
		p = q;
	}
	XXH3_64bits_update(h, bm, words * 8);
	XXH3_64bits_update(h, trailer, sizeof(trailer));
	if (e >= 0 && XXH3_64bits_digest(h) != s->checksum)
		e = sf_corrupt(r, s, err, errlen);
out:
	free(bm);
	XXH3_freeState(h);
	return e;
}

/* A section read whole into a stream. */
static int read_stream(struct sf_reader *r, const char *tag, uint32_t index,
		       struct dev_state *st, char *err, size_t errlen)
{
	const struct sf_section *s = sf_find(r, tag, index);
	uint8_t *buf;
	int e;

	state_init(st);
	if (!s) {
		snprintf(err, errlen, "%s: corrupt: section %s %u is missing", r->path, tag, index);
		return -EINVAL;
	}
	e = sf_read(r, s, &buf, err, errlen);
	if (e < 0)
		return e;
	st->buf = buf;
	st->len = st->cap = s->length;
	return 0;
}

struct vm_restore {
	struct dev_state vcpu[VM_MAX_CPUS], vmst, *dev, *ref;
	struct vcpu_saved *cpu[VM_MAX_CPUS];	/* vcpu[i] read */
	struct vm_saved chips;			/* vmst read */
	unsigned nr_dev;
};

void vm_restore_free(struct vm_restore *rs)
{
	if (!rs)
		return;
	for (unsigned i = 0; i < VM_MAX_CPUS; i++) {
		state_free(&rs->vcpu[i]);
		vcpu_saved_free(rs->cpu[i]);
	}
	state_free(&rs->vmst);
	for (unsigned k = 0; k < rs->nr_dev; k++) {
		state_free(&rs->dev[k]);
		state_free(&rs->ref[k]);
	}
	free(rs->dev);
	free(rs->ref);
	free(rs);
}

/* Everything but memory read and checked; nothing set. */
static int restore_check(struct sf_reader *r, struct vm *vm, struct vm_restore *rs, char *err,
			 size_t errlen)
{
	char why[512];
	unsigned k = 0;
	int e = 0;

	if (sf_find(r, "VCPU", vm->opts.nr_cpus) || sf_find(r, "MEM ", vm->nr_mem)) {
		snprintf(err, errlen, "%s: corrupt: more vCPUs or memory than its configuration",
			 r->path);
		return -EINVAL;
	}
	for (unsigned i = 0; e >= 0 && i < vm->opts.nr_cpus; i++) {
		e = read_stream(r, "VCPU", i, &rs->vcpu[i], err, errlen);
		if (e >= 0 && (e = vcpu_state_read(&vm->vcpus[i], &rs->vcpu[i], &rs->cpu[i], why,
						   sizeof(why))) < 0)
			snprintf(err, errlen, "%s: %s", r->path, why);
	}
	if (e >= 0)
		e = read_stream(r, "VMST", 0, &rs->vmst, err, errlen);
	if (e >= 0 && (e = vm_state_read(vm, &rs->vmst, &rs->chips, why, sizeof(why))) < 0)
		snprintf(err, errlen, "%s: %s", r->path, why);
	if (e < 0)
		return e;
	for (struct vm_device *d = vm->devices; d; d = d->next)
		rs->nr_dev++;
	rs->dev = calloc(rs->nr_dev + 1, sizeof(*rs->dev));
	rs->ref = calloc(rs->nr_dev + 1, sizeof(*rs->ref));
	if (!rs->dev || !rs->ref) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	if (sf_find(r, "DEV ", rs->nr_dev)) {
		snprintf(err, errlen, "%s: saved with more devices than this VM has (a restore "
			 "needs the same devices)", r->path);
		return -EINVAL;
	}
	for (struct vm_device *d = vm->devices; d; d = d->next, k++) {
		struct dev_state *st = &rs->dev[k];
		char name[256];
		uint16_t n;

		e = read_stream(r, "DEV ", k, st, err, errlen);
		if (e < 0) {
			snprintf(err, errlen, "%s: saved without %s (a restore needs the same "
				 "devices)", r->path, d->name);
			return e;
		}
		n = state_get_u16(st);
		state_get_bytes(st, name, n < sizeof(name) ? n : sizeof(name));
		if (st->err || n >= sizeof(name) || strncmp(name, d->name, n) || d->name[n]) {
			/* The file's name, quoted: at most 64 bytes, printable. */
			name[n < 64 ? n : 64] = '\0';
			snprintf(err, errlen, "%s: saved with %s where this VM has %s (a restore "
				 "needs the same devices)", r->path, state_printable(name), d->name);
			return -EINVAL;
		}
		/* What the device stands on must be as it was. */
		if (d->ops->check_ref) {
			why[0] = '\0';
			e = read_stream(r, "DREF", k, &rs->ref[k], err, errlen);
			if (e >= 0)
				e = d->ops->check_ref(d->opaque, &rs->ref[k], why, sizeof(why));
			if (e < 0) {
				if (why[0])
					snprintf(err, errlen, "%s: %s", r->path, why);
				return e;
			}
		}
	}
	e = vmstate_check_cpuid(vm, &rs->vcpu[0], why, sizeof(why));
	if (e < 0)
		snprintf(err, errlen, "%s: %s", r->path, why);
	return e;
}

int vm_restore_read(struct vm *vm, const char *path, struct vm_restore **out, char *err,
		    size_t errlen)
{
	struct vm_restore *rs = calloc(1, sizeof(*rs));
	struct sf_reader r;
	unsigned maps = 0;
	bool map;
	int e;

	*out = NULL;
	if (!rs) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	e = sf_open(&r, path, err, errlen);
	if (e < 0) {
		free(rs);
		return e;
	}
	e = restore_check(&r, vm, rs, err, errlen);
	/* The file's pages mapped into guest memory where its lease allows
	 * (guestmem.c), else copied. */
	map = e >= 0 && guestmem_lease(vm, r.fd);
	for (unsigned m = 0; e >= 0 && m < vm->nr_mem; m++)
		e = load_region(&r, vm, m, map ? &maps : NULL, err, errlen);
	if (e >= 0 && maps) {
		/* Kept open, its lease held, as long as guest memory maps it. */
		guestmem_keep(vm, r.fd, path);
		r.fd = -1;
	}
	sf_close(&r);
	if (e < 0) {
		vm_restore_free(rs);
		return e;
	}
	*out = rs;
	return 0;
}

int vm_restore_set(struct vm *vm, struct vm_restore *rs, const char *path, char *err,
		   size_t errlen)
{
	char why[512] = "";
	int e = 0;

	for (unsigned i = 0; e >= 0 && i < vm->opts.nr_cpus; i++)
		if ((e = vcpu_state_set(&vm->vcpus[i], rs->cpu[i], why, sizeof(why))) < 0)
			snprintf(err, errlen, "%s: %s", path, why);
	if (e >= 0 && (e = vm_state_set(vm, &rs->chips, why, sizeof(why))) < 0)
		snprintf(err, errlen, "%s: %s", path, why);
	return e;
}

int vm_restore_devices(struct vm *vm, struct vm_restore *rs, const char *path, char *err,
		       size_t errlen)
{
	struct vm_device *d, *end;
	unsigned k = 0;
	int e = 0;

	for (end = vm->devices; e >= 0 && end; end = end->next)
		if ((e = end->ops->quiesce(end->opaque)) < 0)
			snprintf(err, errlen, "%s: %s: %s", path, end->name, strerror(-e));
	for (d = vm->devices; e >= 0 && d != end; d = d->next, k++) {
		/* After its name (checked). */
		e = d->ops->load(d->opaque, &rs->dev[k]);
		if (e < 0)
			snprintf(err, errlen, "%s: %s's saved state does not load (%s)", path,
				 d->name, strerror(-e));
	}
	for (d = vm->devices; d != end; d = d->next)
		d->ops->resume(d->opaque);
	return e;
}

int vm_restore(struct vm *vm, const char *path, char *err, size_t errlen)
{
	struct vm_restore *rs;
	int e = vm_restore_read(vm, path, &rs, err, errlen);

	/* All read and checked: now the VM's state. */
	if (e >= 0)
		e = vm_restore_set(vm, rs, path, err, errlen);
	if (e >= 0)
		e = vm_restore_devices(vm, rs, path, err, errlen);
	vm_restore_free(rs);
	return e;
}
