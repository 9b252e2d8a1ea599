// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * KVM's part of a saved state: each vCPU's registers, special registers,
 * FPU/SSE/AVX (XSAVE, or the legacy FPU area), XCRs, the MSRs KVM lists
 * (KVM_GET_MSR_INDEX_LIST), local APIC, pending events, MP state, debug
 * registers and the CPUID vsrv gave it (cpuid.c's: what KVM_GET_CPUID2
 * answers is the host's on some hosts); and the VM's clock (kvmclock), PICs, IOAPIC and
 * PIT.  The kernel's structures are stored as they are (their layouts
 * are KVM's stable ABI) inside the tagged stream of state.h, each with
 * its length, which loading checks before it trusts one.
 *
 * A restore reads and checks every stream before it sets any (*_read,
 * which make no KVM call: the saved-state fuzzer drives them), then sets
 * them (*_set) in the order KVM needs: registers, XSAVE, XCRs, special
 * registers (the APIC base), MSRs but the TSC deadline, events, MP state,
 * the local APIC (its timer rearmed from its registers), then the TSC
 * deadline, which the LAPIC's mode decides, and the debug registers.
 *
 * What saving issues runs inside the sandbox (sandbox.c lists the GET
 * ioctls); what it needs to ask /dev/kvm (the MSR list, XSAVE's size) is
 * asked before, by vmstate_init().
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "../devices/state.h"
#include "vm.h"

#define MSR_IA32_TSC_DEADLINE	0x6e0
#define CPUID_MAX		512
#define MSRS_MAX		4096

struct vm_state_caps {
	struct kvm_msr_list *msrs;
	int xsave_size;		/* KVM_GET_XSAVE2's, or 0 for KVM_GET_XSAVE */
	bool xsave, xcrs, debugregs;
};

int vmstate_init_host(struct vm *vm, const struct vm_state_host *h, char *err, size_t errlen)
{
	struct vm_state_caps *sc = calloc(1, sizeof(*sc));

	if (h->nr_msrs > MSRS_MAX) {
		snprintf(err, errlen, "KVM_GET_MSR_INDEX_LIST: %u MSRs", h->nr_msrs);
		free(sc);
		return -E2BIG;
	}
	if (sc)
		sc->msrs = calloc(1, sizeof(*sc->msrs) + h->nr_msrs * sizeof(uint32_t));
	if (!sc || !sc->msrs) {
		free(sc);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	sc->xsave = h->xsave;
	sc->xsave_size = h->xsave_size < (int)sizeof(struct kvm_xsave) ? 0 : h->xsave_size;
	sc->xcrs = h->xcrs;
	sc->debugregs = h->debugregs;
	sc->msrs->nmsrs = h->nr_msrs;
	if (h->nr_msrs)
		memcpy(sc->msrs->indices, h->msrs, h->nr_msrs * sizeof(uint32_t));
	vm->state_caps = sc;
	return 0;
}

int vmstate_init(struct vm *vm, char *err, size_t errlen)
{
	struct vm_state_host h = {
		.xsave = ioctl(vm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE) > 0,
		.xsave_size = ioctl(vm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2),
		.xcrs = ioctl(vm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XCRS) > 0,
		.debugregs = ioctl(vm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_DEBUGREGS) > 0,
	};
	struct kvm_msr_list probe = { .nmsrs = 0 }, *list;
	int r;

	/* E2BIG, with the count. */
	ioctl(vm->kvm_fd, KVM_GET_MSR_INDEX_LIST, &probe);
	if (probe.nmsrs > MSRS_MAX) {
		snprintf(err, errlen, "KVM_GET_MSR_INDEX_LIST: %u MSRs", probe.nmsrs);
		return -E2BIG;
	}
	list = calloc(1, sizeof(*list) + probe.nmsrs * sizeof(uint32_t));
	if (!list) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	list->nmsrs = probe.nmsrs;
	if (ioctl(vm->kvm_fd, KVM_GET_MSR_INDEX_LIST, list) < 0) {
		snprintf(err, errlen, "KVM_GET_MSR_INDEX_LIST: %s", strerror(errno));
		free(list);
		return -EIO;
	}
	h.msrs = list->indices;
	h.nr_msrs = list->nmsrs;
	r = vmstate_init_host(vm, &h, err, errlen);
	free(list);
	return r;
}

void vmstate_free(struct vm *vm)
{
	if (!vm->state_caps)
		return;
	free(vm->state_caps->msrs);
	free(vm->state_caps);
	vm->state_caps = NULL;
}

/* --- the stream's blobs: a length, then the bytes --- */

static void put_blob(struct dev_state *s, const void *p, size_t n)
{
	state_put_u32(s, (uint32_t)n);
	state_put_bytes(s, p, n);
}

/* Reads a blob of exactly n bytes into p. */
static bool get_blob(struct dev_state *s, void *p, size_t n)
{
	if (state_get_u32(s) != n && !s->err)
		s->err = -EINVAL;
	state_get_bytes(s, p, n);
	return !s->err;
}

static int fail(char *err, size_t errlen, int r, const char *what, unsigned id)
{
	snprintf(err, errlen, "vCPU %u: %s: %s", id, what, strerror(-r));
	return r;
}

/* --- vCPUs --- */

/* A vCPU's fixed-size structures. */
struct kstate {
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_lapic_state lapic;
	struct kvm_vcpu_events ev;
	struct kvm_mp_state mp;
	struct kvm_debugregs dr;
	struct kvm_xcrs xcrs;
};

/* The FPU's form on this host: 2 XSAVE2 (its size), 1 XSAVE, 0 legacy. */
static unsigned fpu_kind(const struct vm_state_caps *sc, size_t *len)
{
	*len = sc->xsave_size ? (size_t)sc->xsave_size :
	       sc->xsave ? sizeof(struct kvm_xsave) : sizeof(struct kvm_fpu);
	return sc->xsave_size ? 2 : sc->xsave ? 1 : 0;
}

/* Every MSR KVM lists that reads; those that do not are left out (KVM
 * lists some that depend on features the vCPU lacks). */
static int save_msrs(struct vcpu *c, struct dev_state *s)
{
	const struct kvm_msr_list *l = c->vm->state_caps->msrs;
	struct kvm_msrs *m = calloc(1, sizeof(*m) + l->nmsrs * sizeof(struct kvm_msr_entry));
	uint32_t got = 0;

	if (!m)
		return -ENOMEM;
	for (uint32_t i = 0; i < l->nmsrs;) {
		int n;

		m->nmsrs = l->nmsrs - i;
		for (uint32_t k = 0; k < m->nmsrs; k++)
			m->entries[k] = (struct kvm_msr_entry){ .index = l->indices[i + k] };
		n = ioctl(c->fd, KVM_GET_MSRS, m);
		if (n < 0) {
			free(m);
			return -errno;
		}
		for (int k = 0; k < n; k++) {
			state_put_u32(s, m->entries[k].index);
			state_put_u64(s, m->entries[k].data);
			got++;
		}
		i += (uint32_t)n + 1;	/* past the one that did not read */
	}
	free(m);
	state_put_u32(s, UINT32_MAX);	/* the end */
	return got ? 0 : -EIO;
}

int vcpu_state_save(struct vcpu *c, struct dev_state *s)
{
	const struct vm_state_caps *sc = c->vm->state_caps;
	const struct kvm_cpuid2 *cpuid = c->cpuid;
	struct kstate k;
	size_t xlen;
	unsigned kind = fpu_kind(sc, &xlen);
	void *x = calloc(1, xlen);
	int r = 0;

	if (!x) {
		r = -ENOMEM;
		goto out;
	}
	if (!cpuid || cpuid->nent > CPUID_MAX) {
		r = -EINVAL;
		goto out;
	}
	if (ioctl(c->fd, KVM_GET_REGS, &k.regs) < 0 ||
	    ioctl(c->fd, KVM_GET_SREGS, &k.sregs) < 0 ||
	    ioctl(c->fd, kind == 2 ? KVM_GET_XSAVE2 : kind == 1 ? KVM_GET_XSAVE : KVM_GET_FPU,
		  x) < 0 ||
	    (sc->xcrs && ioctl(c->fd, KVM_GET_XCRS, &k.xcrs) < 0) ||
	    ioctl(c->fd, KVM_GET_LAPIC, &k.lapic) < 0 ||
	    ioctl(c->fd, KVM_GET_VCPU_EVENTS, &k.ev) < 0 ||
	    ioctl(c->fd, KVM_GET_MP_STATE, &k.mp) < 0 ||
	    (sc->debugregs && ioctl(c->fd, KVM_GET_DEBUGREGS, &k.dr) < 0)) {
		r = -errno;
		goto out;
	}
	state_put_section(s, "VCPU", 1);
	state_put_u32(s, c->id);
	state_put_u32(s, cpuid->nent);
	state_put_bytes(s, cpuid->entries, cpuid->nent * sizeof(cpuid->entries[0]));
	put_blob(s, &k.regs, sizeof(k.regs));
	put_blob(s, &k.sregs, sizeof(k.sregs));
	state_put_u8(s, (uint8_t)kind);
	put_blob(s, x, xlen);
	state_put_u8(s, sc->xcrs);
	if (sc->xcrs)
		put_blob(s, &k.xcrs, sizeof(k.xcrs));
	r = save_msrs(c, s);
	put_blob(s, &k.lapic, sizeof(k.lapic));
	put_blob(s, &k.ev, sizeof(k.ev));
	put_blob(s, &k.mp, sizeof(k.mp));
	state_put_u8(s, sc->debugregs);
	if (sc->debugregs)
		put_blob(s, &k.dr, sizeof(k.dr));
	if (r >= 0)
		r = s->err;
out:
	free(x);
	return r;
}

/* The saved CPUID (the stream at its start): a malloc'd kvm_cpuid2. */
static struct kvm_cpuid2 *get_cpuid(struct dev_state *s)
{
	uint32_t n = state_get_u32(s);
	struct kvm_cpuid2 *cpuid;

	if (s->err || n > CPUID_MAX) {
		s->err = -EINVAL;
		return NULL;
	}
	cpuid = calloc(1, sizeof(*cpuid) + n * sizeof(cpuid->entries[0]));
	if (!cpuid) {
		s->err = -ENOMEM;
		return NULL;
	}
	cpuid->nent = n;
	state_get_bytes(s, cpuid->entries, n * sizeof(cpuid->entries[0]));
	return cpuid;
}

static int set_msrs(struct vcpu *c, struct kvm_msrs *m, bool deadline)
{
	struct kvm_msrs *one = calloc(1, sizeof(*one) + sizeof(one->entries[0]));
	int r = 0;

	if (!one)
		return -ENOMEM;
	/* One at a time: a refused one is named, not the batch. */
	for (uint32_t i = 0; i < m->nmsrs && r >= 0; i++) {
		if ((m->entries[i].index == MSR_IA32_TSC_DEADLINE) != deadline)
			continue;
		one->nmsrs = 1;
		one->entries[0] = m->entries[i];
		if (ioctl(c->fd, KVM_SET_MSRS, one) != 1)
			r = -EINVAL;
	}
	free(one);
	return r;
}

/* A vCPU's saved state, read and checked, not yet set. */
struct vcpu_saved {
	struct kstate k;
	struct kvm_cpuid2 *cpuid;
	struct kvm_msrs *msrs;
	void *x;		/* the FPU's, in this host's form */
	uint8_t kind;
	bool has_xcrs, has_dr;
};

void vcpu_saved_free(struct vcpu_saved *v)
{
	if (!v)
		return;
	free(v->cpuid);
	free(v->msrs);
	free(v->x);
	free(v);
}

int vcpu_state_read(struct vcpu *c, struct dev_state *s, struct vcpu_saved **out, char *err,
		    size_t errlen)
{
	const struct vm_state_caps *sc = c->vm->state_caps;
	struct vcpu_saved *v = calloc(1, sizeof(*v));
	size_t xlen;
	unsigned host_kind = fpu_kind(sc, &xlen);

	*out = NULL;
	if (v) {
		v->x = calloc(1, xlen);
		v->msrs = calloc(1, sizeof(*v->msrs) + MSRS_MAX * sizeof(v->msrs->entries[0]));
	}
	if (!v || !v->x || !v->msrs) {
		vcpu_saved_free(v);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	if (!state_get_section(s, "VCPU", 1) || state_get_u32(s) != c->id)
		goto bad;
	v->cpuid = get_cpuid(s);
	if (!v->cpuid)
		goto bad;
	get_blob(s, &v->k.regs, sizeof(v->k.regs));
	get_blob(s, &v->k.sregs, sizeof(v->k.sregs));
	v->kind = state_get_u8(s);
	/* The FPU's form must be this host's: KVM_CAP_XSAVE2's size too. */
	if (!s->err && v->kind != host_kind) {
		snprintf(err, errlen, "vCPU %u: its FPU state is in a form this host's KVM does "
			 "not take", c->id);
		vcpu_saved_free(v);
		return -EINVAL;
	}
	get_blob(s, v->x, xlen);
	v->has_xcrs = state_get_u8(s);
	if (v->has_xcrs)
		get_blob(s, &v->k.xcrs, sizeof(v->k.xcrs));
	for (;;) {
		uint32_t index = state_get_u32(s);

		if (s->err || index == UINT32_MAX)
			break;
		if (v->msrs->nmsrs == MSRS_MAX) {
			s->err = -EINVAL;
			break;
		}
		v->msrs->entries[v->msrs->nmsrs++] =
			(struct kvm_msr_entry){ .index = index, .data = state_get_u64(s) };
	}
	get_blob(s, &v->k.lapic, sizeof(v->k.lapic));
	get_blob(s, &v->k.ev, sizeof(v->k.ev));
	get_blob(s, &v->k.mp, sizeof(v->k.mp));
	v->has_dr = state_get_u8(s);
	if (v->has_dr)
		get_blob(s, &v->k.dr, sizeof(v->k.dr));
	if (s->err || s->pos != s->len || (v->has_xcrs && !sc->xcrs) ||
	    (v->has_dr && !sc->debugregs))
		goto bad;
	*out = v;
	return 0;
bad:
	snprintf(err, errlen, "vCPU %u: its saved state does not read", c->id);
	vcpu_saved_free(v);
	return -EINVAL;
}

int vcpu_state_set(struct vcpu *c, struct vcpu_saved *v, char *err, size_t errlen)
{
	int r;

	if (ioctl(c->fd, KVM_SET_CPUID2, v->cpuid) < 0) {
		r = fail(err, errlen, -errno, "KVM_SET_CPUID2", c->id);
	} else if (ioctl(c->fd, KVM_SET_REGS, &v->k.regs) < 0) {
		r = fail(err, errlen, -errno, "KVM_SET_REGS", c->id);
	} else if (ioctl(c->fd, v->kind ? KVM_SET_XSAVE : KVM_SET_FPU, v->x) < 0) {
		r = fail(err, errlen, -errno, v->kind ? "KVM_SET_XSAVE" : "KVM_SET_FPU", c->id);
	} else if (v->has_xcrs && ioctl(c->fd, KVM_SET_XCRS, &v->k.xcrs) < 0) {
		r = fail(err, errlen, -errno, "KVM_SET_XCRS", c->id);
	} else if (ioctl(c->fd, KVM_SET_SREGS, &v->k.sregs) < 0) {
		r = fail(err, errlen, -errno, "KVM_SET_SREGS", c->id);
	} else if ((r = set_msrs(c, v->msrs, false)) < 0) {
		r = fail(err, errlen, r, "KVM_SET_MSRS", c->id);
	} else if (ioctl(c->fd, KVM_SET_VCPU_EVENTS, &v->k.ev) < 0) {
		r = fail(err, errlen, -errno, "KVM_SET_VCPU_EVENTS", c->id);
	} else if (ioctl(c->fd, KVM_SET_MP_STATE, &v->k.mp) < 0) {
		r = fail(err, errlen, -errno, "KVM_SET_MP_STATE", c->id);
	} else if (ioctl(c->fd, KVM_SET_LAPIC, &v->k.lapic) < 0) {
		r = fail(err, errlen, -errno, "KVM_SET_LAPIC", c->id);
	} else if ((r = set_msrs(c, v->msrs, true)) < 0) {
		r = fail(err, errlen, r, "KVM_SET_MSRS (TSC deadline)", c->id);
	} else if (v->has_dr && ioctl(c->fd, KVM_SET_DEBUGREGS, &v->k.dr) < 0) {
		r = fail(err, errlen, -errno, "KVM_SET_DEBUGREGS", c->id);
	} else {
		/* The vCPU's CPUID now, to be saved again. */
		free(c->cpuid);
		c->cpuid = v->cpuid;
		v->cpuid = NULL;
		r = 0;
	}
	return r;
}

/* --- what the saved CPUID needs of the host --- */

enum { EAX, EBX, ECX, EDX };

static const struct {
	uint32_t leaf, sub;
	int reg;
	uint32_t vmm;		/* bits the VMM sets itself, or the guest's OS */
	const char *name;
} feature_regs[] = {
	{ 1, 0, ECX, 1u << 27 | 1u << 31, "1.ECX" },	/* OSXSAVE, HYPERVISOR */
	{ 1, 0, EDX, 1u << 28, "1.EDX" },		/* HTT */
	{ 7, 0, EBX, 0, "7.0.EBX" },
	{ 7, 0, ECX, 1u << 4, "7.0.ECX" },		/* OSPKE */
	{ 7, 0, EDX, 0, "7.0.EDX" },
	{ 7, 1, EAX, 0, "7.1.EAX" },
	{ 0xd, 1, EAX, 0, "0xD.1.EAX" },
	{ 0x80000001, 0, ECX, 0, "0x80000001.ECX" },
	{ 0x80000001, 0, EDX, 0, "0x80000001.EDX" },
};

static uint32_t cpuid_reg(const struct kvm_cpuid2 *c, uint32_t leaf, uint32_t sub, int reg)
{
	for (uint32_t i = 0; i < c->nent; i++) {
		const struct kvm_cpuid_entry2 *e = &c->entries[i];

		if (e->function == leaf &&
		    (!(e->flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) || e->index == sub)) {
			uint32_t v[4] = { e->eax, e->ebx, e->ecx, e->edx };

			return v[reg];
		}
	}
	return 0;
}

/* VSRV_TEST_HOST_LACKS=LEAF.SUB.REG:MASK (e.g. 7.0.ebx:0x1): the host
 * seems to lack those bits, so that tests see the refusal. */
static uint32_t test_lacks(uint32_t leaf, uint32_t sub, int reg)
{
	const char *env = getenv("VSRV_TEST_HOST_LACKS");
	static const char *const names[] = { "eax", "ebx", "ecx", "edx" };
	unsigned long l, s, mask;
	char r[4];

	if (!env || sscanf(env, "%li.%li.%3[abcdex]:%li", &l, &s, r, &mask) != 4)
		return 0;
	return l == leaf && s == sub && !strcmp(r, names[reg]) ? (uint32_t)mask : 0;
}

int vmstate_check_cpuid(struct vm *vm, struct dev_state *vcpu0, char *err, size_t errlen)
{
	struct kvm_cpuid2 *saved;
	size_t n = 0;
	int r = 0;

	state_rewind(vcpu0);
	if (!state_get_section(vcpu0, "VCPU", 1) || state_get_u32(vcpu0) != 0)
		return -EINVAL;
	saved = get_cpuid(vcpu0);
	state_rewind(vcpu0);
	if (!saved)
		return -EINVAL;
	n = (size_t)snprintf(err, errlen, "the guest uses CPU features this host's KVM lacks:");
	for (size_t i = 0; i < sizeof(feature_regs) / sizeof(feature_regs[0]); i++) {
		uint32_t leaf = feature_regs[i].leaf, sub = feature_regs[i].sub;
		int reg = feature_regs[i].reg;
		uint32_t host = cpuid_reg(vm->supported_cpuid, leaf, sub, reg) &
				~test_lacks(leaf, sub, reg);
		uint32_t missing = cpuid_reg(saved, leaf, sub, reg) & ~host & ~feature_regs[i].vmm;

		if (!missing)
			continue;
		if (n < errlen)
			n += (size_t)snprintf(err + n, errlen - n, "%s CPUID %s 0x%08x", r ? "," : "",
					      feature_regs[i].name, missing);
		r = -ENOTSUP;
	}
	free(saved);
	if (!r)
		err[0] = '\0';
	return r;
}

/* --- the VM --- */

int vm_state_save(struct vm *vm, struct dev_state *s)
{
	struct kvm_clock_data clock = { 0 };
	struct kvm_pit_state2 pit;
	struct kvm_irqchip chip[3];

	for (unsigned i = 0; i < 3; i++) {
		chip[i] = (struct kvm_irqchip){ .chip_id = i };
		if (ioctl(vm->vm_fd, KVM_GET_IRQCHIP, &chip[i]) < 0)
			return -errno;
	}
	if (ioctl(vm->vm_fd, KVM_GET_PIT2, &pit) < 0 || ioctl(vm->vm_fd, KVM_GET_CLOCK, &clock) < 0)
		return -errno;
	state_put_section(s, "VMST", 1);
	for (unsigned i = 0; i < 3; i++)
		put_blob(s, &chip[i], sizeof(chip[i]));
	put_blob(s, &pit, sizeof(pit));
	put_blob(s, &clock, sizeof(clock));
	return s->err;
}

int vm_state_read(struct vm *vm, struct dev_state *s, struct vm_saved *v, char *err,
		  size_t errlen)
{
	state_get_section(s, "VMST", 1);
	for (unsigned i = 0; i < 3; i++)
		get_blob(s, &v->chip[i], sizeof(v->chip[i]));
	get_blob(s, &v->pit, sizeof(v->pit));
	get_blob(s, &v->clock, sizeof(v->clock));
	if (s->err || s->pos != s->len || v->chip[0].chip_id != 0 || v->chip[1].chip_id != 1 ||
	    v->chip[2].chip_id != 2) {
		snprintf(err, errlen, "the VM's saved state does not read");
		return -EINVAL;
	}
	return 0;
}

int vm_state_set(struct vm *vm, const struct vm_saved *v, char *err, size_t errlen)
{
	struct kvm_clock_data clock = v->clock;
	const char *what = NULL;

	for (unsigned i = 0; i < 3 && !what; i++)
		if (ioctl(vm->vm_fd, KVM_SET_IRQCHIP, &v->chip[i]) < 0)
			what = "KVM_SET_IRQCHIP";
	if (!what && ioctl(vm->vm_fd, KVM_SET_PIT2, &v->pit) < 0)
		what = "KVM_SET_PIT2";
	/* The guest's clock goes on from where it was saved: the time in
	 * between did not pass for it (flags other than the value's are
	 * the host's of then). */
	clock.flags = 0;
	if (!what && ioctl(vm->vm_fd, KVM_SET_CLOCK, &clock) < 0)
		what = "KVM_SET_CLOCK";
	if (what) {
		snprintf(err, errlen, "%s: %s", what, strerror(errno));
		return -errno;
	}
	return 0;
}
