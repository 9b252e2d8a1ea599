/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * What the ACPI micro-guests (acpi-tables.c, acpi-sci.c) share: finding
 * the tables as an OS does (the RSDP by the legacy scan of 0xe0000-0xfffff
 * or through the zero page's acpi_rsdp_addr, then the XSDT), reading them
 * by the byte offsets of the ACPI 6.3 specification (never through the
 * VMM's structs; boot-print.h's rd() and check()), and powering off through
 * PM1a_CNT with the DSDT's \_S5 sleep type.  Linked with the runtime
 * (guest.h): they print with rt_printf.
 */
#ifndef ACPI_GUEST_H
#define ACPI_GUEST_H

#include "boot-print.h"

#define BIOS_AREA	0xe0000ul
#define ZP_RSDP		0x070		/* boot_params.acpi_rsdp_addr */
#define ZP_E820_COUNT	0x1e8
#define ZP_E820		0x2d0

/* FADT offsets (ACPI 6.3, table 5.9). */
#define FADT_SCI_INT	46
#define FADT_SMI_CMD	48
#define FADT_X_FACS	132
#define FADT_X_DSDT	140
#define FADT_X_PM1A_EVT	148
#define FADT_X_PM1A_CNT	172
#define FADT_X_PM_TMR	208
#define GAS_ADDRESS	4

#define PM1_PWRBTN	0x0100
#define PM1_SCI_EN	0x0001
#define PM1_SLP_EN	0x2000

extern uint64_t rt_zero_page;	/* rt.c: rsi at entry */

#define UNUSED __attribute__((unused))

static uint8_t sum(uint64_t addr, uint64_t len)
{
	uint8_t s = 0;

	for (uint64_t i = 0; i < len; i++)
		s += (uint8_t)rd(addr + i, 1);
	return s;
}

static int is_sig(uint64_t addr, const char *sig)
{
	for (unsigned i = 0; sig[i]; i++)
		if (rd(addr + i, 1) != (uint8_t)sig[i])
			return 0;
	return 1;
}

/* Prints n bytes at addr as text. */
static UNUSED void put_text(uint64_t addr, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		rt_printf("%c", (int)rd(addr + i, 1));
}

/* ACPICA's legacy scan: 16-byte boundaries, "RSD PTR " and the ACPI 1.0
 * checksum over the first 20 bytes. */
static UNUSED uint64_t rsdp_scan(void)
{
	for (uint64_t a = BIOS_AREA; a < 0x100000; a += 16)
		if (is_sig(a, "RSD PTR ") && sum(a, 20) == 0)
			return a;
	return 0;
}

static uint64_t rsdp_zero_page(void)
{
	return rt_zero_page ? rd(rt_zero_page + ZP_RSDP, 8) : 0;
}

/* The XSDT's table with this signature, or 0. */
static uint64_t find_table(uint64_t rsdp, const char *sig)
{
	uint64_t xsdt = rd(rsdp + 24, 8), len = rd(xsdt + 4, 4);

	for (uint64_t off = 36; off + 8 <= len; off += 8) {
		uint64_t t = rd(xsdt + off, 8);

		if (is_sig(t, sig))
			return t;
	}
	return 0;
}

/* The DSDT's \_S5 package's first element (SLP_TYPa), or -1: finds
 * NameOp, "\_S5_", PackageOp, skips the PkgLength and NumElements, and
 * reads an integer (ZeroOp, OneOp, BytePrefix). */
static int s5_slp_typ(uint64_t dsdt)
{
	uint64_t len = rd(dsdt + 4, 4);

	for (uint64_t p = dsdt + 36; p + 10 < dsdt + len; p++) {
		uint64_t q = p + 1;

		if (rd(p, 1) != 0x08)
			continue;
		if (rd(q, 1) == '\\')
			q++;
		if (!is_sig(q, "_S5_") || rd(q + 4, 1) != 0x12)
			continue;
		q += 5;
		q += 1 + (rd(q, 1) >> 6);	/* PkgLength */
		q += 1;				/* NumElements */
		switch (rd(q, 1)) {
		case 0x00:
			return 0;
		case 0x01:
			return 1;
		case 0x0a:
			return (int)rd(q + 1, 1);
		default:
			return -1;
		}
	}
	return -1;
}

/* The way an OS powers off: SLP_TYP first, then SLP_TYP with SLP_EN. */
static void __attribute__((noreturn)) s5_power_off(uint64_t fadt, uint64_t dsdt)
{
	uint16_t cnt = (uint16_t)rd(fadt + FADT_X_PM1A_CNT + GAS_ADDRESS, 8);
	int typ = s5_slp_typ(dsdt);
	uint16_t v;

	rt_printf("result %s\n", report_bad ? "bad" : "ok");
	if (report_bad || typ < 0)
		guest_exit(EXIT_BAD);
	v = (uint16_t)((inw(cnt) & ~0x3c00) | (unsigned)typ << 10);
	outw(cnt, v);
	outw(cnt, v | PM1_SLP_EN);
	rt_printf("FAIL still running after S5\n");
	guest_exit(EXIT_BAD);
}

#endif
