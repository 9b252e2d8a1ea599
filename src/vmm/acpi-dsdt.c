// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The DSDT: the devices a guest cannot find by probing, in AML (aml.c).
 *
 *   \_SB.PCI0  the PCI Express root (PNP0A08, compatible with PNP0A03):
 *              bus 0, the configuration ports, all other I/O ports and
 *              the 32-bit BAR window as the bridge's windows; _PRT,
 *              where each slot's INTA arrives
 *   \_SB.MBRD  motherboard resources (PNP0C02): the MMCONFIG area, which
 *              Linux uses only when firmware reserves it so
 *   \_SB.COM1, \_SB.RTC, \_SB.KBD  the UART, the CMOS RTC and the 8042
 *              with their ports and IRQs: Linux's PNP drivers take them
 *              (and the 8042's mouse port is then not probed)
 *   \_S5       soft-off: the sleep type acpi-pm.c powers off on
 *
 * The power button is ACPI's fixed feature (FADT), so it needs no object.
 * Emitted from C rather than compiled from ASL: the addresses come from
 * vm.h, the one place that has them, and the build needs no ASL compiler;
 * the tests disassemble the result with iasl instead (docs/vmm-devices.md).
 */
#include "../devices/pci.h"
#include "acpi.h"
#include "aml.h"

#define PCI_CONFIG_PORT	0xcf8	/* 0xcf8-0xcff: configuration (type 1) */

static void crs(struct aml *a, struct aml_res *r)
{
	aml_res_end(r);
	if (r->error)
		a->error = true;
	aml_name(a, "_CRS");
	aml_buffer(a, r->b, r->len);
}

/* Device(name) { Name(_HID, EisaId(hid)) Name(_UID, uid) (uid >= 0) */
static void device(struct aml *a, const char *name, const char *hid, int uid)
{
	aml_device(a, name);
	aml_name(a, "_HID");
	aml_eisaid(a, hid);
	if (uid >= 0) {
		aml_name(a, "_UID");
		aml_integer(a, (uint64_t)uid);
	}
}

/*
 * _PRT: INTA of slot s is GSI PCI_INTX_GSI(s), an IOAPIC pin, as the MP
 * table says too.  Entries name the GSI itself (source 0), with no link
 * device: the wiring is fixed, so there is nothing for _SRS to route and
 * no AML method is needed.  ACPI takes such a GSI as level-triggered and
 * active-low, where the device drives its line high while asserted: the
 * in-kernel IOAPIC does not model the polarity bit (KVM_IRQ_LINE's level 1
 * is "asserted" either way), so both descriptions work.  Only INTA: no
 * device of vsrv's has another pin.
 */
static void prt(struct aml *a)
{
	aml_name(a, "_PRT");
	aml_package(a, PCI_SLOTS);
	for (unsigned slot = 0; slot < PCI_SLOTS; slot++) {
		aml_package(a, 4);
		aml_integer(a, (uint64_t)slot << 16 | 0xffff);	/* any function */
		aml_integer(a, 0);				/* INTA */
		aml_integer(a, 0);				/* a GSI, no link */
		aml_integer(a, PCI_INTX_GSI(slot));
		aml_end(a);
	}
	aml_end(a);
}

static void pci_root(struct aml *a)
{
	struct aml_res r = { .len = 0 };

	device(a, "PCI0", "PNP0A08", -1);
	aml_name(a, "_CID");
	aml_eisaid(a, "PNP0A03");
	aml_name(a, "_UID");
	aml_integer(a, 0);
	aml_res_bus_window(&r, 0, (uint16_t)((VM_PCI_MMCONFIG_SIZE >> 20) - 1));
	aml_res_io(&r, PCI_CONFIG_PORT, 8);
	/* Every other port: a PC's root bridge passes on what nothing
	 * else claims; the I/O BARs themselves start at VM_PCI_IO_START. */
	aml_res_io_window(&r, 0, PCI_CONFIG_PORT - 1);
	aml_res_io_window(&r, PCI_CONFIG_PORT + 8, 0xffff);
	aml_res_mem_window(&r, (uint32_t)VM_PCI_MMIO_START, (uint32_t)(VM_PCI_MMIO_END - 1));
	crs(a, &r);
	prt(a);
	aml_end(a);
}

static void motherboard(struct aml *a)
{
	struct aml_res r = { .len = 0 };

	device(a, "MBRD", "PNP0C02", 0);
	aml_res_mem32_fixed(&r, (uint32_t)VM_PCI_MMCONFIG_BASE, (uint32_t)VM_PCI_MMCONFIG_SIZE);
	crs(a, &r);
	aml_end(a);
}

/* A legacy device: up to two port ranges and an ISA IRQ. */
static void isa_device(struct aml *a, const char *name, const char *hid, int uid,
		       uint16_t port, uint8_t len, uint16_t port2, unsigned irq)
{
	struct aml_res r = { .len = 0 };

	device(a, name, hid, uid);
	aml_res_io(&r, port, len);
	if (port2)
		aml_res_io(&r, port2, 1);
	aml_res_irq(&r, irq);
	crs(a, &r);
	aml_end(a);
}

void acpi_dsdt(struct aml *a)
{
	aml_scope(a, "\\_SB");
	pci_root(a);
	motherboard(a);
	isa_device(a, "COM1", "PNP0501", 1, 0x3f8, 8, 0, 4);
	isa_device(a, "RTC", "PNP0B00", -1, 0x70, 2, 0, 8);
	isa_device(a, "KBD", "PNP0303", -1, 0x60, 1, 0x64, 1);
	aml_end(a);
	/* SLP_TYPa, SLP_TYPb (there is no PM1b block), two reserved. */
	aml_name(a, "\\_S5");
	aml_package(a, 4);
	aml_integer(a, ACPI_S5_SLP_TYP);
	aml_integer(a, ACPI_S5_SLP_TYP);
	aml_integer(a, 0);
	aml_integer(a, 0);
	aml_end(a);
}
