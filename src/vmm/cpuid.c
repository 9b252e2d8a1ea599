// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * CPUID for each vCPU: what KVM supports, with this vCPU's APIC id and a
 * topology of N single-threaded cores in one package, and KVM's own
 * leaves as the host quirks need them.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "vm.h"

#define CPUID_1_ECX_HYPERVISOR	(1u << 31)
#define CPUID_1_EDX_HTT		(1u << 28)

static unsigned order(unsigned n)
{
	unsigned s = 0;

	while ((1u << s) < n)
		s++;
	return s;
}

static void patch(struct kvm_cpuid_entry2 *e, unsigned id, unsigned n)
{
	switch (e->function) {
	case 1:
		e->ebx = (e->ebx & 0x0000ffff) | (id << 24) | (n << 16);
		e->ecx |= CPUID_1_ECX_HYPERVISOR;
		if (n > 1)
			e->edx |= CPUID_1_EDX_HTT;
		break;
	case 4:
		/* Cores per package - 1; one thread shares each cache level
		 * below the package. */
		e->eax = (e->eax & 0x03ffffff) | ((n - 1) << 26);
		if ((e->eax & 0xe0) >> 5 <= 2)
			e->eax &= ~(0xfffu << 14);
		else
			e->eax = (e->eax & ~(0xfffu << 14)) | ((n - 1) << 14);
		break;
	case 0xb:
	case 0x1f:
		/* x2APIC topology: level 0 threads (1 each), level 1 cores. */
		if (e->index == 0) {
			e->eax = 0;
			e->ebx = 1;
			e->ecx = 0 | (1u << 8);
		} else if (e->index == 1) {
			e->eax = order(n);
			e->ebx = n;
			e->ecx = 1 | (2u << 8);
		} else {
			e->eax = e->ebx = 0;
			e->ecx = e->index;
		}
		e->edx = id;
		break;
	}
}

/*
 * KVM lists only the sub-leaves of leaf 0xB the host has: one (0xB.0) on
 * AMD hosts.  A guest reading level 1 (cores) would see zeros and count
 * one CPU, so levels 1 and 2 (the terminator) are added when missing;
 * patch() fills them in.
 */
static void add_topology_levels(struct kvm_cpuid2 *cpuid)
{
	bool has_b = false, has[3] = { false };

	for (uint32_t i = 0; i < cpuid->nent; i++)
		if (cpuid->entries[i].function == 0xb) {
			has_b = true;
			if (cpuid->entries[i].index < 3)
				has[cpuid->entries[i].index] = true;
		}
	for (uint32_t level = 1; has_b && level < 3; level++)
		if (!has[level])
			cpuid->entries[cpuid->nent++] = (struct kvm_cpuid_entry2){
				.function = 0xb, .index = level,
				.flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
			};
}

int cpuid_setup(struct vcpu *c, char *err, size_t errlen)
{
	struct kvm_cpuid2 *sup = c->vm->supported_cpuid;
	size_t bytes = sizeof(*sup) + sup->nent * sizeof(sup->entries[0]);
	/* Room for the topology levels add_topology_levels() may add. */
	struct kvm_cpuid2 *cpuid = malloc(bytes + 2 * sizeof(sup->entries[0]));
	int r;

	if (!cpuid) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	memcpy(cpuid, sup, bytes);
	add_topology_levels(cpuid);
	for (uint32_t i = 0; i < cpuid->nent; i++)
		patch(&cpuid->entries[i], c->id, c->vm->opts.nr_cpus);
	if (c->vm->quirks)
		quirks_cpuid(c->vm, cpuid);
	if (ioctl(c->fd, KVM_SET_CPUID2, cpuid) < 0) {
		r = -errno;
		snprintf(err, errlen, "KVM_SET_CPUID2 on vCPU %u: %s", c->id, strerror(errno));
		free(cpuid);
		return r;
	}
	/* Kept: saved state records what the guest was given. */
	free(c->cpuid);
	c->cpuid = cpuid;
	return 0;
}
