// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The CMOS RTC: reads the time as Linux does (waiting out update in
 * progress, reading until two reads agree) in BCD, binary and 12-hour
 * modes and prints each ("bcd YYYY-MM-DD HH:MM:SS wN", N = 1 for Sunday)
 * for the test to compare with the host's clock; checks the registers,
 * UIP against the seconds ticking, register C's flags, the alarm, setting
 * the time with SET (into a century rollover), and the RAM; prints the
 * memory sizes the RAM holds ("mem ...", alone with --append mem-only).
 * Exits 0, or 1 after FAIL lines.
 */
#include "dev-guest.h"

#define REG_A	0x0a
#define REG_B	0x0b
#define REG_C	0x0c
#define REG_D	0x0d
#define UIP	0x80

/* seconds, minutes, hours, weekday, day, month, year, century */
static const uint8_t time_regs[8] = { 0x00, 0x02, 0x04, 0x06, 0x07, 0x08, 0x09, 0x32 };

static void read_raw(uint8_t r[8])
{
	for (int i = 0; i < 8; i++)
		r[i] = cmos_read(time_regs[i]);
}

static void read_time(uint8_t r[8])
{
	uint8_t b[8];

	for (;;) {
		bool same = true;

		while (cmos_read(REG_A) & UIP)
			;
		read_raw(r);
		if (cmos_read(REG_A) & UIP)
			continue;
		read_raw(b);
		for (int i = 0; i < 8; i++)
			same = same && r[i] == b[i];
		if (same)
			return;
	}
}

static unsigned dec(uint8_t v, bool bcd)
{
	return bcd ? (v >> 4) * 10u + (v & 0x0fu) : v;
}

static unsigned hour24(uint8_t v, bool bcd, bool h12)
{
	if (!h12)
		return dec(v, bcd);
	return dec(v & 0x7f, bcd) % 12 + (v & 0x80 ? 12 : 0);
}

static void print_time(const char *tag, uint8_t b)
{
	bool bcd = !(b & 0x04), h12 = !(b & 0x02);
	uint8_t r[8];

	cmos_write(REG_B, b);
	read_time(r);
	puts_dbg(tag);
	puts_dbg(" ");
	put_dec(dec(r[7], bcd), 2);
	put_dec(dec(r[6], bcd), 2);
	puts_dbg("-");
	put_dec(dec(r[5], bcd), 2);
	puts_dbg("-");
	put_dec(dec(r[4], bcd), 2);
	puts_dbg(" ");
	put_dec(hour24(r[2], bcd, h12), 2);
	puts_dbg(":");
	put_dec(dec(r[1], bcd), 2);
	puts_dbg(":");
	put_dec(dec(r[0], bcd), 2);
	puts_dbg(" w");
	put_dec(dec(r[3], bcd), 1);
	puts_dbg("\n");
}

static void wait_tick(void)
{
	uint8_t s = cmos_read(0);

	while (cmos_read(0) == s)
		;
}

static void registers(void)
{
	expect("register A", cmos_read(REG_A) & 0x7f, 0x26);
	expect("register B", cmos_read(REG_B), 0x02);
	expect("register D: valid RAM", cmos_read(REG_D), 0x80);
	/* Bit 7 of the index is the NMI mask, not part of the index. */
	outb(0x70, 0x80 | REG_D);
	expect("index with the NMI bit", inb(0x71), 0x80);
	cmos_write(0x40, 0x5a);
	cmos_write(0x7f, 0xa5);
	expect("RAM 0x40", cmos_read(0x40), 0x5a);
	expect("RAM 0x7f", cmos_read(0x7f), 0xa5);
	expect("RAM 0xff is 0x7f", cmos_read(0xff), 0xa5);
	/* A word access is the index, then the data. */
	outw(0x70, 0x3c40);
	expect("outw index+data", cmos_read(0x40), 0x3c);
	cmos_write(REG_D, 0);
	expect("register D is read-only", cmos_read(REG_D), 0x80);
	cmos_write(REG_A, 0xa6);
	expect("UIP is read-only", cmos_read(REG_A) & 0x7f, 0x26);
}

/* UIP rises before the seconds change and falls after: a seconds value
 * read just before UIP is seen set is the old second, one read after it
 * falls the new one. */
static void update_in_progress(void)
{
	uint8_t s0, s1;

	for (;;) {
		s0 = cmos_read(0);
		if (cmos_read(REG_A) & UIP)
			break;
	}
	while (cmos_read(REG_A) & UIP)
		;
	s1 = cmos_read(0);
	expect("the second after UIP", dec(s1, true), (dec(s0, true) + 1) % 60);
}

static void flags(void)
{
	uint8_t c, hour;

	cmos_read(REG_C);
	wait_tick();
	c = cmos_read(REG_C);
	expect("C after a second: UF and PF, no IRQF", c & 0xf0, 0x50);
	expect("C read again: no UF", cmos_read(REG_C) & 0x10, 0x00);

	/* An alarm of "any time" comes every second, and with AIE sets IRQF. */
	cmos_write(0x01, 0xc0);
	cmos_write(0x03, 0xc0);
	cmos_write(0x05, 0xc0);
	cmos_write(REG_B, 0x22);
	cmos_read(REG_C);
	wait_tick();
	expect("C: alarm with AIE", cmos_read(REG_C) & 0xa0, 0xa0);
	/* Twelve hours from now it does not come. */
	hour = (uint8_t)((dec(cmos_read(0x04), true) + 12) % 24);
	cmos_write(0x05, (uint8_t)((hour / 10) << 4 | hour % 10));
	cmos_read(REG_C);
	wait_tick();
	expect("C: no alarm", cmos_read(REG_C) & 0xa0, 0x00);
	cmos_write(REG_B, 0x02);
}

static void set_time(void)
{
	static const uint8_t t[8] = { 0x58, 0x59, 0x23, 0, 0x31, 0x12, 0x99, 0x20 };
	uint8_t r[8];

	/* With SET, registers hold what is written, in any order (the 31st
	 * before the month is December); 12-hour writes: 12 PM is noon, 12 AM
	 * midnight. */
	cmos_write(REG_B, 0x80);
	cmos_write(0x02, 0x00);
	cmos_write(0x04, 0x92);
	cmos_write(REG_B, 0x00);
	cmos_write(REG_B, 0x02);
	expect("12 PM written in 12-hour mode", cmos_read(0x04), 0x12);
	cmos_write(REG_B, 0x80);
	cmos_write(0x04, 0x12);
	cmos_write(REG_B, 0x00);
	cmos_write(REG_B, 0x02);
	expect("12 AM written in 12-hour mode", cmos_read(0x04), 0x00);
	/* Without SET a write takes effect at once. */
	cmos_write(REG_B, 0x00);
	cmos_write(0x04, 0x81);
	cmos_write(REG_B, 0x02);
	expect("1 PM written without SET", cmos_read(0x04), 0x13);
	/* SET holds raw bytes: a mode change does not convert them. */
	cmos_write(REG_B, 0x82);
	cmos_write(REG_B, 0x80);
	expect("hours under SET, 12-hour mode", cmos_read(0x04), 0x13);
	cmos_write(REG_B, 0x82);
	for (int i = 0; i < 8; i++)
		if (i != 3)
			cmos_write(time_regs[i], t[i]);
	for (int i = 0; i < 100; i++)
		if (cmos_read(REG_A) & UIP)
			check("no UIP while SET", false);
	read_raw(r);
	for (int i = 0; i < 8; i++)
		if (i != 3)
			expect("the time set", r[i], t[i]);
	cmos_write(REG_B, 0x02);
	/* 23:59:58 now runs: two ticks later it is a new century. */
	wait_tick();
	wait_tick();
	read_time(r);
	expect("seconds into 2100", r[0] <= 1, 1);
	expect("minutes", r[1], 0);
	expect("hours", r[2], 0);
	expect("weekday: 2100-01-01 is a Friday", r[3], 6);
	expect("day", r[4], 1);
	expect("month", r[5], 1);
	expect("year", r[6], 0);
	expect("century", r[7], 0x21);
}

static unsigned cmos16(uint8_t reg)
{
	return cmos_read(reg) | (unsigned)cmos_read(reg + 1) << 8;
}

static void memory_sizes(void)
{
	puts_dbg("mem base=");
	put_dec(cmos16(0x15), 1);
	puts_dbg(" ext=");
	put_dec(cmos16(0x17), 1);
	puts_dbg(" ext2=");
	put_dec(cmos16(0x30), 1);
	puts_dbg(" above16=");
	put_dec(cmos16(0x34), 1);
	puts_dbg(" above4g=");
	put_dec(cmos16(0x5b) | (unsigned)cmos_read(0x5d) << 16, 1);
	puts_dbg(" cpus=");
	put_dec(cmos_read(0x5f) + 1u, 1);
	puts_dbg("\n");
}

int guest_main(void)
{
	if (cmdline_has("mem-only")) {
		memory_sizes();
		return 0;
	}
	registers();
	print_time("bcd", 0x02);
	print_time("bin", 0x06);
	print_time("h12bcd", 0x00);
	print_time("h12bin", 0x04);
	cmos_write(REG_B, 0x02);
	update_in_progress();
	flags();
	print_time("bcd", 0x02);
	memory_sizes();
	set_time();
	if (failures)
		return 1;
	puts_dbg("rtc ok\n");
	return 0;
}
