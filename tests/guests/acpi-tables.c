// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The ACPI tables micro-guest: finds the RSDP by the legacy scan and
 * through the zero page (both must agree), walks RSDP -> XSDT -> FADT ->
 * FACS, DSDT and the MADT and MCFG, checks every checksum and that every
 * table lies in memory the e820 map does not give out as RAM, and prints
 * the fields an OS acts on for tests/integration/test_acpi.py to compare
 * with the spec's values.  Then it drives the fixed hardware the FADT
 * names: PM1 enable and control (SCI_EN set by the hardware), the PM
 * timer (monotonic, 3.579545 MHz measured against the CMOS RTC's seconds),
 * and powers off through PM1a_CNT with the DSDT's \_S5 (exit status 0).
 */
#include "acpi-guest.h"

#define HZ		3579545u

/* Whether [addr, addr + len) lies in one e820 range that is not RAM. */
static int reserved(uint64_t addr, uint64_t len)
{
	uint64_t n = rd(rt_zero_page + ZP_E820_COUNT, 1);

	for (uint64_t i = 0; i < n; i++) {
		uint64_t e = rt_zero_page + ZP_E820 + 20 * i;
		uint64_t a = rd(e, 8), s = rd(e + 8, 8), type = rd(e + 16, 4);

		if (addr >= a && addr + len <= a + s)
			return type != 1;
	}
	return 0;
}

/* The header every table but the FACS has; returns its length. */
static uint64_t table(uint64_t t, const char *sig)
{
	uint64_t len = rd(t + 4, 4);

	check(is_sig(t, sig), "signature");
	check(sum(t, len) == 0, "table checksum");
	check(reserved(t, len), "table in reserved memory");
	check((t & 15) == 0, "table aligned");
	put_text(t, 4);
	rt_printf(" length=%08lx revision=%02lx oem=\"", len, rd(t + 8, 1));
	put_text(t + 10, 6);
	rt_printf("\" oem_table=\"");
	put_text(t + 16, 8);
	rt_printf("\" oem_revision=%08lx creator=\"", rd(t + 24, 4));
	put_text(t + 28, 4);
	rt_printf("\" creator_revision=%08lx\n", rd(t + 32, 4));
	return len;
}

static void gas(const char *name, uint64_t g)
{
	rt_printf(" %s=%02lx:%02lx:%02lx:%02lx:%lx", name, rd(g, 1), rd(g + 1, 1),
		  rd(g + 2, 1), rd(g + 3, 1), rd(g + GAS_ADDRESS, 8));
}

static void fadt(uint64_t f)
{
	table(f, "FACP");
	rt_printf("fadt firmware_ctrl=%08lx dsdt=%08lx profile=%02lx sci_int=%04lx smi_cmd=%08lx"
		  " acpi_enable=%02lx acpi_disable=%02lx\n", rd(f + 36, 4), rd(f + 40, 4),
		  rd(f + 45, 1), rd(f + FADT_SCI_INT, 2), rd(f + FADT_SMI_CMD, 4),
		  rd(f + 52, 1), rd(f + 53, 1));
	rt_printf("fadt pm1a_evt=%08lx pm1b_evt=%08lx pm1a_cnt=%08lx pm1b_cnt=%08lx pm2_cnt=%08lx"
		  " pm_tmr=%08lx gpe0=%08lx gpe1=%08lx\n", rd(f + 56, 4), rd(f + 60, 4),
		  rd(f + 64, 4), rd(f + 68, 4), rd(f + 72, 4), rd(f + 76, 4), rd(f + 80, 4),
		  rd(f + 84, 4));
	rt_printf("fadt pm1_evt_len=%02lx pm1_cnt_len=%02lx pm2_cnt_len=%02lx pm_tmr_len=%02lx"
		  " gpe0_len=%02lx gpe1_len=%02lx c2_lat=%04lx c3_lat=%04lx century=%02lx"
		  " boot_arch=%04lx flags=%08lx\n", rd(f + 88, 1), rd(f + 89, 1),
		  rd(f + 90, 1), rd(f + 91, 1), rd(f + 92, 1), rd(f + 93, 1), rd(f + 96, 2),
		  rd(f + 98, 2), rd(f + 108, 1), rd(f + 109, 2), rd(f + 112, 4));
	rt_printf("fadt");
	gas("reset_reg", f + 116);
	rt_printf(" reset_value=%02lx minor=%02lx x_facs=%lx x_dsdt=%lx\n", rd(f + 128, 1),
		  rd(f + 131, 1), rd(f + FADT_X_FACS, 8), rd(f + FADT_X_DSDT, 8));
	rt_printf("fadt");
	gas("x_pm1a_evt", f + FADT_X_PM1A_EVT);
	gas("x_pm1a_cnt", f + FADT_X_PM1A_CNT);
	gas("x_pm_tmr", f + FADT_X_PM_TMR);
	gas("x_gpe0", f + 220);
	rt_printf("\n");
}

static void facs(uint64_t f)
{
	check(is_sig(f, "FACS"), "FACS signature");
	check((f & 63) == 0, "FACS 64-byte aligned");
	check(reserved(f, 64), "FACS in reserved memory");
	rt_printf("FACS length=%08lx hardware_signature=%08lx waking_vector=%08lx"
		  " global_lock=%08lx flags=%08lx version=%02lx\n", rd(f + 4, 4), rd(f + 8, 4),
		  rd(f + 12, 4), rd(f + 16, 4), rd(f + 20, 4), rd(f + 32, 1));
}

static void madt(uint64_t m)
{
	uint64_t end = m + table(m, "APIC");

	rt_printf("madt lapic_addr=%08lx flags=%08lx\n", rd(m + 36, 4), rd(m + 40, 4));
	for (uint64_t e = m + 44; e < end; e += rd(e + 1, 1)) {
		switch (rd(e, 1)) {
		case 0:
			rt_printf("lapic uid=%02lx apic_id=%02lx flags=%08lx\n", rd(e + 2, 1),
				  rd(e + 3, 1), rd(e + 4, 4));
			break;
		case 1:
			rt_printf("ioapic id=%02lx addr=%08lx gsi_base=%08lx\n", rd(e + 2, 1),
				  rd(e + 4, 4), rd(e + 8, 4));
			break;
		case 2:
			rt_printf("iso bus=%02lx irq=%02lx gsi=%08lx flags=%04lx\n", rd(e + 2, 1),
				  rd(e + 3, 1), rd(e + 4, 4), rd(e + 8, 2));
			break;
		case 4:
			rt_printf("lapic_nmi uid=%02lx flags=%04lx lint=%02lx\n", rd(e + 2, 1),
				  rd(e + 3, 2), rd(e + 5, 1));
			break;
		default:
			rt_printf("madt entry type=%02lx length=%02lx\n", rd(e, 1), rd(e + 1, 1));
		}
		if (rd(e + 1, 1) == 0) {
			check(0, "MADT entry of length 0");
			break;
		}
	}
}

static void mcfg(uint64_t m)
{
	uint64_t end = m + table(m, "MCFG");

	for (uint64_t e = m + 44; e + 16 <= end; e += 16)
		rt_printf("mcfg base=%lx segment=%04lx buses=%02lx-%02lx\n", rd(e, 8),
			  rd(e + 8, 2), rd(e + 10, 1), rd(e + 11, 1));
}

static uint8_t rtc_seconds(void)
{
	outb(0x70, 0);
	return inb(0x71);
}

/* An RTC seconds tick, between two PM timer readings: *lo before the
 * last RTC read that saw the old second, *hi after the first that saw the
 * new one. */
static void rtc_tick(uint16_t port, uint32_t *lo, uint32_t *hi)
{
	uint32_t before = inl(port), t;
	uint8_t s = rtc_seconds();

	for (;;) {
		t = inl(port);
		if (rtc_seconds() != s)
			break;
		before = t;
	}
	*lo = before;
	*hi = inl(port);
}

/* The PM timer: reads that never go back (modulo 2^32), and 3.579545 MHz
 * within 1% against the RTC's seconds: one second lies between the ticks'
 * inner and outer readings.  Register reads are exits, and a busy host
 * can stall the vCPU between two of them, so a measurement whose bracket
 * is wider than 20 ms is taken again. */
static void pm_timer(uint16_t port)
{
	uint32_t prev = inl(port), lo1, hi1, lo2, hi2;
	int monotonic = 1, rate_ok = 0;

	for (int i = 0; i < 1000; i++) {
		uint32_t t = inl(port);

		if (t - prev >= 0x80000000u)
			monotonic = 0;
		prev = t;
	}
	for (int tries = 0; tries < 8; tries++) {
		uint32_t inner, outer;

		rtc_tick(port, &lo1, &hi1);
		rtc_tick(port, &lo2, &hi2);
		inner = lo2 - hi1;
		outer = hi2 - lo1;
		if (outer - inner > HZ / 50)
			continue;
		rate_ok = inner <= HZ + HZ / 100 && outer >= HZ - HZ / 100;
		break;
	}
	check(monotonic, "PM timer monotonic");
	check(rate_ok, "PM timer at 3.579545 MHz");
	rt_printf("pm_tmr monotonic=%d rate_ok=%d\n", monotonic, rate_ok);
}

/* PM1: SCI_EN is the hardware's and reads 1 whatever is written; the
 * enable register keeps the bits that exist. */
static void pm1(uint16_t evt, uint16_t cnt)
{
	uint16_t sts = inw(evt), en, set, clear;

	outw(cnt, PM1_SCI_EN);
	set = inw(cnt);
	outw(cnt, 0);
	clear = inw(cnt);
	outw((uint16_t)(evt + 2), 0xffff);
	en = inw((uint16_t)(evt + 2));
	outw((uint16_t)(evt + 2), 0);
	rt_printf("pm1 sts=%04x cnt_sci_en=%04x cnt_zero=%04x en_all=%04x en_none=%04x\n", sts,
		  set, clear, en, inw((uint16_t)(evt + 2)));
	check(set & clear & PM1_SCI_EN, "SCI_EN set");
}

int main(void)
{
	uint64_t scan = rsdp_scan(), zp = rsdp_zero_page(), rsdp = scan, xsdt, xlen;
	uint64_t f, dsdt;

	rt_printf("rsdp scan=%lx zero_page=%lx\n", scan, zp);
	check(scan && scan == zp, "the scan and the zero page find one RSDP");
	if (!rsdp)
		guest_exit(EXIT_BAD);
	check(sum(rsdp, rd(rsdp + 20, 4)) == 0, "RSDP extended checksum");
	check(reserved(rsdp, 36), "RSDP in reserved memory");
	rt_printf("rsdp oem=\"");
	put_text(rsdp + 9, 6);
	rt_printf("\" revision=%02lx rsdt=%08lx length=%08lx\n", rd(rsdp + 15, 1),
		  rd(rsdp + 16, 4), rd(rsdp + 20, 4));
	xsdt = rd(rsdp + 24, 8);
	xlen = table(xsdt, "XSDT");
	rt_printf("xsdt entries:");
	for (uint64_t off = 36; off + 8 <= xlen; off += 8) {
		rt_printf(" ");
		put_text(rd(xsdt + off, 8), 4);
	}
	rt_printf("\n");
	f = find_table(rsdp, "FACP");
	check(f != 0, "FADT listed");
	if (!f)
		guest_exit(EXIT_BAD);
	fadt(f);
	facs(rd(f + FADT_X_FACS, 8));
	dsdt = rd(f + FADT_X_DSDT, 8);
	table(dsdt, "DSDT");
	rt_printf("dsdt s5_slp_typ=%d\n", s5_slp_typ(dsdt));
	madt(find_table(rsdp, "APIC"));
	mcfg(find_table(rsdp, "MCFG"));
	pm1((uint16_t)rd(f + FADT_X_PM1A_EVT + GAS_ADDRESS, 8),
	    (uint16_t)rd(f + FADT_X_PM1A_CNT + GAS_ADDRESS, 8));
	pm_timer((uint16_t)rd(f + FADT_X_PM_TMR + GAS_ADDRESS, 8));
	s5_power_off(f, dsdt);
}
