// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The Intel MultiProcessor Specification 1.4 tables: how a guest without
 * ACPI learns its processors, its IOAPIC and how ISA interrupts reach it.
 * Linux (arch/x86/kernel/mpparse.c) scans the last KiB of base memory for
 * the floating pointer, so both it and the configuration table go at the
 * start of the EBDA, which the e820 map reserves.  The application
 * processors are started by the guest itself (INIT/SIPI to the in-kernel
 * LAPIC); the table only says which APIC ids exist.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "boot.h"

#define MP_LAPIC_ADDR		0xfee00000u
#define MP_IOAPIC_ADDR		0xfec00000u
#define MP_LAPIC_VERSION	0x14	/* integrated APIC, what KVM's reports */
#define MP_IOAPIC_VERSION	0x11	/* KVM's IOAPIC */
/* Bus ids: ISA is 0, or 1 when PCI interrupts are described: Linux
 * looks a PCI device's interrupt up by its PCI bus number, so PCI bus 0
 * must be MP bus 0. */
#define MP_PCI_BUS		0
#define MP_PCI_GSI(slot)	(16u + (slot) % 8u)	/* src/devices/pci.h's wiring */

enum {
	MP_PROCESSOR = 0, MP_BUS, MP_IOAPIC, MP_INTSRC, MP_LINTSRC,
};
enum {
	MP_INT = 0, MP_NMI = 1, MP_EXTINT = 3,	/* interrupt types */
};
#define MP_CPU_ENABLED		1
#define MP_CPU_BSP		2
#define MP_IOAPIC_USABLE	1

struct mp_floating {
	char signature[4];	/* "_MP_" */
	uint32_t physptr;	/* the configuration table */
	uint8_t length;		/* in 16-byte units: 1 */
	uint8_t spec;		/* 4: version 1.4 */
	uint8_t checksum;
	uint8_t feature[5];	/* all 0: a configuration table is present */
} __attribute__((packed));

struct mp_config {
	char signature[4];	/* "PCMP" */
	uint16_t length;	/* header and entries */
	uint8_t spec;
	uint8_t checksum;
	char oem[8];
	char product[12];
	uint32_t oemptr;
	uint16_t oemsize;
	uint16_t count;		/* entries */
	uint32_t lapic;
	uint16_t ext_length;
	uint8_t ext_checksum;
	uint8_t reserved;
} __attribute__((packed));

struct mp_processor {
	uint8_t type;
	uint8_t apicid;
	uint8_t apicver;
	uint8_t flags;
	uint32_t signature;	/* CPUID 1 EAX */
	uint32_t features;	/* CPUID 1 EDX */
	uint32_t reserved[2];
} __attribute__((packed));

struct mp_bus {
	uint8_t type;
	uint8_t busid;
	char bustype[6];
} __attribute__((packed));

struct mp_ioapic {
	uint8_t type;
	uint8_t apicid;
	uint8_t apicver;
	uint8_t flags;
	uint32_t addr;
} __attribute__((packed));

struct mp_intsrc {		/* I/O and local interrupt entries alike */
	uint8_t type;
	uint8_t irqtype;
	uint16_t irqflag;	/* 0: the bus's polarity and trigger */
	uint8_t srcbus;
	uint8_t srcbusirq;
	uint8_t dstapic;
	uint8_t dstirq;		/* IOAPIC pin, or LINTn */
} __attribute__((packed));

_Static_assert(sizeof(struct mp_floating) == 16, "MP floating pointer");
_Static_assert(sizeof(struct mp_config) == 44, "MP configuration table header");
_Static_assert(sizeof(struct mp_processor) == 20, "MP processor entry");
_Static_assert(sizeof(struct mp_bus) == 8 && sizeof(struct mp_ioapic) == 8 &&
	       sizeof(struct mp_intsrc) == 8, "MP 8-byte entries");

#define MP_TABLE_MAX	(sizeof(struct mp_config) + \
			 VM_MAX_CPUS * sizeof(struct mp_processor) + \
			 2 * sizeof(struct mp_bus) + sizeof(struct mp_ioapic) + \
			 (18 + 32) * sizeof(struct mp_intsrc))
/* The spec asks for the floating pointer in the first KiB of the EBDA. */
_Static_assert(sizeof(struct mp_floating) + MP_TABLE_MAX <= 0x400,
	       "the MP tables fit the EBDA's first KiB");

/* CPUID 1's signature and features, as KVM reports them, for the
 * processor entries (Linux ignores them, other guests may not). */
static void cpu_signature(struct vm *vm, uint32_t *sig, uint32_t *features)
{
	*sig = 0x600;
	*features = 1u << 9 | 1u << 0;		/* APIC, FPU */
	for (uint32_t i = 0; vm->supported_cpuid && i < vm->supported_cpuid->nent; i++) {
		const struct kvm_cpuid_entry2 *e = &vm->supported_cpuid->entries[i];

		if (e->function == 1) {
			*sig = e->eax;
			*features = e->edx;
		}
	}
}

/* Which IOAPIC pin an ISA IRQ reaches.  KVM's default GSI routing,
 * which vsrv keeps, sends GSI n to IOAPIC pin n: the in-kernel PIT raises
 * GSI 0, so IRQ0 is on pin 0 (not the pin 2 of a PC whose firmware
 * reroutes it).  tests/guests/mptable-smp.c checks this against where
 * the PIT's interrupt really arrives. */
static unsigned isa_irq_pin(unsigned irq)
{
	return irq;
}

int mptable_write(struct vm *vm, unsigned nr_cpus, struct boot_info *bi,
		  char *err, size_t errlen)
{
	uint8_t *base = vm_gpa(vm, BOOT_EBDA_START, 0x400);
	struct mp_floating *mpf = (void *)base;
	struct mp_config *mpc = (void *)(base + sizeof(*mpf));
	uint8_t *p = (uint8_t *)(mpc + 1);
	uint8_t ioapic_id = (uint8_t)nr_cpus;
	uint8_t isa_bus = vm->pci_intx_slots ? 1 : 0;
	uint32_t sig, features;

	if (!base || nr_cpus < 1 || nr_cpus > VM_MAX_CPUS) {
		snprintf(err, errlen, "MP table: %u vCPUs do not fit", nr_cpus);
		return -EINVAL;
	}
	memset(base, 0, 0x400);
	cpu_signature(vm, &sig, &features);
	memcpy(mpc->signature, "PCMP", 4);
	mpc->spec = 4;
	memcpy(mpc->oem, "VSRV    ", 8);
	memcpy(mpc->product, "VSRV VMM    ", 12);
	mpc->lapic = MP_LAPIC_ADDR;
	for (unsigned i = 0; i < nr_cpus; i++, mpc->count++) {
		struct mp_processor *e = (void *)p;

		*e = (struct mp_processor){
			.type = MP_PROCESSOR, .apicid = (uint8_t)i,
			.apicver = MP_LAPIC_VERSION,
			.flags = MP_CPU_ENABLED | (i == 0 ? MP_CPU_BSP : 0),
			.signature = sig, .features = features,
		};
		p += sizeof(*e);
	}
	if (vm->pci_intx_slots) {
		*(struct mp_bus *)p = (struct mp_bus){ .type = MP_BUS, .busid = MP_PCI_BUS,
						       .bustype = "PCI   " };
		p += sizeof(struct mp_bus);
		mpc->count++;
	}
	*(struct mp_bus *)p = (struct mp_bus){ .type = MP_BUS, .busid = isa_bus,
					       .bustype = "ISA   " };
	p += sizeof(struct mp_bus);
	mpc->count++;
	*(struct mp_ioapic *)p = (struct mp_ioapic){
		.type = MP_IOAPIC, .apicid = ioapic_id, .apicver = MP_IOAPIC_VERSION,
		.flags = MP_IOAPIC_USABLE, .addr = MP_IOAPIC_ADDR,
	};
	p += sizeof(struct mp_ioapic);
	mpc->count++;
	for (unsigned irq = 0; irq < 16; irq++, mpc->count++) {
		*(struct mp_intsrc *)p = (struct mp_intsrc){
			.type = MP_INTSRC, .irqtype = MP_INT, .srcbus = isa_bus,
			.srcbusirq = (uint8_t)irq, .dstapic = ioapic_id,
			.dstirq = (uint8_t)isa_irq_pin(irq),
		};
		p += sizeof(struct mp_intsrc);
	}
	/* PCI INTA of each slot that has a device using it: level-triggered,
	 * active low, as the PCI bus's interrupts are (irqflag 0). */
	for (unsigned slot = 0; slot < 32; slot++) {
		if (!(vm->pci_intx_slots & 1u << slot))
			continue;
		*(struct mp_intsrc *)p = (struct mp_intsrc){
			.type = MP_INTSRC, .irqtype = MP_INT, .srcbus = MP_PCI_BUS,
			.srcbusirq = (uint8_t)(slot << 2), .dstapic = ioapic_id,
			.dstirq = (uint8_t)MP_PCI_GSI(slot),
		};
		p += sizeof(struct mp_intsrc);
		mpc->count++;
	}
	/* The 8259's output reaches the BSP's LINT0 (virtual wire mode);
	 * NMI reaches every CPU's LINT1. */
	*(struct mp_intsrc *)p = (struct mp_intsrc){
		.type = MP_LINTSRC, .irqtype = MP_EXTINT, .srcbus = isa_bus,
		.dstapic = 0, .dstirq = 0,
	};
	p += sizeof(struct mp_intsrc);
	*(struct mp_intsrc *)p = (struct mp_intsrc){
		.type = MP_LINTSRC, .irqtype = MP_NMI, .srcbus = isa_bus,
		.dstapic = 0xff, .dstirq = 1,
	};
	p += sizeof(struct mp_intsrc);
	mpc->count += 2;
	mpc->length = (uint16_t)(p - (uint8_t *)mpc);
	mpc->checksum = boot_checksum(mpc, mpc->length);

	memcpy(mpf->signature, "_MP_", 4);
	mpf->physptr = (uint32_t)(BOOT_EBDA_START + sizeof(*mpf));
	mpf->length = 1;
	mpf->spec = 4;
	mpf->checksum = boot_checksum(mpf, sizeof(*mpf));
	boot_describe(bi, "mptable 0x%llx %u cpus %u bytes\n",
		      (unsigned long long)BOOT_EBDA_START, nr_cpus,
		      (unsigned)(sizeof(*mpf) + mpc->length));
	return 0;
}
