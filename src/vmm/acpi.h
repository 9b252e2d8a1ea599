/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * ACPI: the tables vsrv writes into guest memory at boot (acpi.c, with the
 * DSDT's AML from aml.c) and the fixed hardware they describe, the PM1
 * registers and PM timer (src/devices/acpi-pm.c).  What both sides must
 * agree on lives here; the hole's addresses and the ports are in vm.h.
 * docs/vmm-devices.md (ACPI) and docs/boot.md (memory map) describe them.
 */
#ifndef VSRV_ACPI_H
#define VSRV_ACPI_H

#include <stdint.h>

#include "vm.h"

/* The tables go in the PC's BIOS area, which the memory map reserves:
 * the RSDP first, where both the boot protocols' pointers and the legacy
 * scan of 0xe0000-0xfffff (a kernel entered with neither) find it. */
#define ACPI_TABLES_ADDR	0xe0000ull
#define ACPI_TABLES_SIZE	0x10000u
#define ACPI_RSDP_ADDR		ACPI_TABLES_ADDR

/* The PM1a register blocks at VM_ACPI_PM_BASE: event (status, enable:
 * 16 bits each), control (16 bits), then the 32-bit PM timer. */
#define ACPI_PM1_EVT_ADDR	VM_ACPI_PM_BASE
#define ACPI_PM1_EVT_LEN	4
#define ACPI_PM1_CNT_ADDR	(VM_ACPI_PM_BASE + 4)
#define ACPI_PM1_CNT_LEN	2
#define ACPI_PM_TMR_ADDR	(VM_ACPI_PM_BASE + 8)
#define ACPI_PM_TMR_LEN		4
#define ACPI_PM_TMR_HZ		3579545u

/* PM1 status and enable bits (ACPI 6.3, 4.8.3.1). */
#define ACPI_PM1_TMR		0x0001	/* TMR_STS / TMR_EN */
#define ACPI_PM1_BM		0x0010	/* BM_STS (no enable) */
#define ACPI_PM1_GBL		0x0020	/* GBL_STS / GBL_EN */
#define ACPI_PM1_PWRBTN		0x0100	/* PWRBTN_STS / PWRBTN_EN */
#define ACPI_PM1_SLPBTN		0x0200	/* SLPBTN_STS / SLPBTN_EN */
#define ACPI_PM1_RTC		0x0400	/* RTC_STS / RTC_EN */
#define ACPI_PM1_PCIEXP_WAKE	0x4000	/* PCIEXP_WAKE_STS / _DIS */
#define ACPI_PM1_WAK		0x8000	/* WAK_STS (no enable) */
/* PM1 control bits (4.8.3.2.1). */
#define ACPI_PM1_SCI_EN		0x0001
#define ACPI_PM1_BM_RLD		0x0002
#define ACPI_PM1_GBL_RLS	0x0004
#define ACPI_PM1_SLP_TYP_SHIFT	10
#define ACPI_PM1_SLP_TYP	0x1c00
#define ACPI_PM1_SLP_EN		0x2000

/* The sleep type the DSDT's \_S5 names for soft-off: the only sleep
 * state vsrv has. */
#define ACPI_S5_SLP_TYP		5

/* acpi.c: writes every table for nr_cpus vCPUs (APIC ids 0..N-1, the
 * IOAPIC's id N, as in the MP table) and describes them in bi. */
struct boot_info;
int acpi_write(struct vm *vm, unsigned nr_cpus, struct boot_info *bi,
	       char *err, size_t errlen);
/* acpi-dsdt.c: the DSDT's definition block (what follows its header). */
struct aml;
void acpi_dsdt(struct aml *a);
/* Writes each table a guest finds from the RSDP, as it is in guest memory,
 * to DIR/<signature>.dat ("rsdp.dat", "facp.dat", ...), for iasl -d. */
int acpi_dump(struct vm *vm, const char *dir, char *err, size_t errlen);

#endif
