// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The MC146818 CMOS RTC and its 128 bytes of RAM: index port 0x70 (bit 7,
 * the NMI mask on a PC, is ignored), data port 0x71.
 *
 * The time is the host's (UTC), read from the host clock at every access,
 * so it never drifts from it; a time the guest sets becomes an offset in
 * whole seconds, for this VM only.  Register B chooses BCD or binary and
 * 24- or 12-hour hours, as on the chip; the century is at 0x32.  With SET
 * in register B the clock stands still and the guest writes the time
 * (writes without SET take effect at once).
 *
 * Update in progress (register A bit 7) is set in the last UIP_WINDOW_NS
 * of each second.  On the chip it is set 244 us before the update and the
 * update itself takes up to 2 ms, so a reader that saw UIP clear has time
 * to read all the registers.  Register accesses here are exits, tens of
 * microseconds each: the window is 2 ms so that the same protocol (Linux's
 * mc146818_get_time) still reads a consistent time.
 *
 * Register C's flags are worked out when it is read, from the time since
 * the last read: UF (a second went by), PF (a period of register A's rate
 * went by), AF (the alarm time went by).  No IRQ 8 is raised yet.
 *
 * The RAM holds what firmware and Linux read about memory: base memory
 * (0x15), memory above 1 MiB in KiB (0x17, 0x30), above 16 MiB in 64 KiB
 * units (0x34), above 4 GiB in 64 KiB units (0x5b-0x5d), and the number of
 * CPUs less one (0x5f), as QEMU and SeaBIOS lay them out.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "devices.h"
#include "state.h"

#define RTC_PORT		0x70
#define RTC_SECONDS		0x00
#define RTC_SECONDS_ALARM	0x01
#define RTC_MINUTES		0x02
#define RTC_MINUTES_ALARM	0x03
#define RTC_HOURS		0x04
#define RTC_HOURS_ALARM		0x05
#define RTC_WEEKDAY		0x06
#define RTC_DAY			0x07
#define RTC_MONTH		0x08
#define RTC_YEAR		0x09
#define RTC_REG_A		0x0a
#define RTC_REG_B		0x0b
#define RTC_REG_C		0x0c
#define RTC_REG_D		0x0d
#define RTC_CENTURY		0x32

#define REG_A_UIP	0x80
#define REG_B_SET	0x80
#define REG_B_PIE	0x40
#define REG_B_AIE	0x20
#define REG_B_UIE	0x10
#define REG_B_DM_BIN	0x04
#define REG_B_24H	0x02
#define REG_C_IRQF	0x80
#define REG_C_PF	0x40
#define REG_C_AF	0x20
#define REG_C_UF	0x10
#define REG_D_VRT	0x80

#define NSEC		1000000000ll
/* The farthest a guest's time can be from the host's: what the time
 * registers can be set to (BCD years to 9999, binary to 25599) is well
 * within it, and so is the host's time plus it in seconds. */
#define OFFSET_MAX	(40000ll * 366 * 86400)
#define UIP_WINDOW_NS	2000000ll
#define DAY		86400ll

struct rtc {
	pthread_mutex_t lock;
	uint8_t index;
	uint8_t ram[128];
	int64_t offset;		/* guest time - host time, seconds */
	uint8_t set_regs[RTC_CENTURY + 1];	/* time registers while SET is on */
	int64_t c_sec, c_ns;	/* guest second and host time of the last C read */
	struct vm *vm;
	struct vm_device vmdev;
};

static int64_t host_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * NSEC + ts.tv_nsec;
}

static bool set_mode(const struct rtc *rtc)
{
	return rtc->ram[RTC_REG_B] & REG_B_SET;
}

/* The guest's time in seconds, given the host's in ns. */
static int64_t guest_sec(const struct rtc *rtc, int64_t now_ns)
{
	return now_ns / NSEC + rtc->offset;
}

static uint8_t encode(const struct rtc *rtc, unsigned v)
{
	if (rtc->ram[RTC_REG_B] & REG_B_DM_BIN)
		return (uint8_t)v;
	return (uint8_t)((v / 10 % 10) << 4 | v % 10);
}

static unsigned decode(const struct rtc *rtc, uint8_t v)
{
	if (rtc->ram[RTC_REG_B] & REG_B_DM_BIN)
		return v;
	return (v >> 4) * 10u + (v & 0x0f);
}

static uint8_t encode_hour(const struct rtc *rtc, unsigned h)
{
	if (rtc->ram[RTC_REG_B] & REG_B_24H)
		return encode(rtc, h);
	/* 12-hour: 12, 1..11 with bit 7 for PM. */
	return encode(rtc, h % 12 ? h % 12 : 12) | (h >= 12 ? 0x80 : 0);
}

static unsigned decode_hour(const struct rtc *rtc, uint8_t v)
{
	if (rtc->ram[RTC_REG_B] & REG_B_24H)
		return decode(rtc, v);
	return decode(rtc, v & 0x7f) % 12 + (v & 0x80 ? 12 : 0);
}

/* The time registers' values for guest time t. */
static uint8_t time_reg(const struct rtc *rtc, unsigned reg, time_t t)
{
	struct tm tm;

	if (!gmtime_r(&t, &tm))
		return 0;
	switch (reg) {
	case RTC_SECONDS:
		return encode(rtc, (unsigned)tm.tm_sec);
	case RTC_MINUTES:
		return encode(rtc, (unsigned)tm.tm_min);
	case RTC_HOURS:
		return encode_hour(rtc, (unsigned)tm.tm_hour);
	case RTC_WEEKDAY:
		return encode(rtc, (unsigned)tm.tm_wday + 1);	/* Sunday is 1 */
	case RTC_DAY:
		return encode(rtc, (unsigned)tm.tm_mday);
	case RTC_MONTH:
		return encode(rtc, (unsigned)tm.tm_mon + 1);
	case RTC_YEAR:
		return encode(rtc, (unsigned)((tm.tm_year + 1900) % 100));
	default:	/* RTC_CENTURY */
		return encode(rtc, (unsigned)((tm.tm_year + 1900) / 100));
	}
}

static uint8_t time_read(struct rtc *rtc, unsigned reg)
{
	if (set_mode(rtc))
		return rtc->set_regs[reg];
	return time_reg(rtc, reg, (time_t)guest_sec(rtc, host_ns()));
}

/* Seconds since the epoch from time registers; nonsense (a BCD digit
 * above 9, the 31st of February) is what timegm() makes of it, as a chip
 * would make something of it too.  The weekday follows from the date. */
static int64_t regs_to_time(const struct rtc *rtc, const uint8_t *regs)
{
	struct tm tm = {
		.tm_sec = (int)decode(rtc, regs[RTC_SECONDS]),
		.tm_min = (int)decode(rtc, regs[RTC_MINUTES]),
		.tm_hour = (int)decode_hour(rtc, regs[RTC_HOURS]),
		.tm_mday = (int)decode(rtc, regs[RTC_DAY]),
		.tm_mon = (int)decode(rtc, regs[RTC_MONTH]) - 1,
		.tm_year = (int)decode(rtc, regs[RTC_CENTURY]) * 100 +
			   (int)decode(rtc, regs[RTC_YEAR]) - 1900,
	};

	return (int64_t)timegm(&tm);
}

static const uint8_t time_regs[] = {
	RTC_SECONDS, RTC_MINUTES, RTC_HOURS, RTC_WEEKDAY, RTC_DAY, RTC_MONTH,
	RTC_YEAR, RTC_CENTURY,
};

static void time_to_regs(const struct rtc *rtc, int64_t t, uint8_t *regs)
{
	for (size_t i = 0; i < sizeof(time_regs); i++)
		regs[time_regs[i]] = time_reg(rtc, time_regs[i], (time_t)t);
}

/* With SET the chip holds each register as written, in any order; the
 * clock starts from them when SET is cleared.  Without it, a field takes
 * effect at once. */
static void time_write(struct rtc *rtc, unsigned reg, uint8_t v)
{
	uint8_t regs[RTC_CENTURY + 1];
	int64_t t;

	if (set_mode(rtc)) {
		rtc->set_regs[reg] = v;
		return;
	}
	t = guest_sec(rtc, host_ns());
	time_to_regs(rtc, t, regs);
	regs[reg] = v;
	rtc->offset += regs_to_time(rtc, regs) - t;
}

static bool alarm_field_matches(const struct rtc *rtc, unsigned reg, uint8_t now)
{
	uint8_t a = rtc->ram[reg];

	return (a & 0xc0) == 0xc0 || a == now;	/* 0xc0-0xff: any value */
}

/* Did the alarm time come in the seconds (from, to]? */
static bool alarm_passed(const struct rtc *rtc, int64_t from, int64_t to)
{
	if (to - from > DAY)
		from = to - DAY;
	for (int64_t s = from + 1; s <= to; s++) {
		int64_t sod = ((s % DAY) + DAY) % DAY;

		if (alarm_field_matches(rtc, RTC_SECONDS_ALARM, encode(rtc, (unsigned)(sod % 60))) &&
		    alarm_field_matches(rtc, RTC_MINUTES_ALARM, encode(rtc, (unsigned)(sod / 60 % 60))) &&
		    alarm_field_matches(rtc, RTC_HOURS_ALARM, encode_hour(rtc, (unsigned)(sod / 3600))))
			return true;
	}
	return false;
}

static int64_t period_ns(const struct rtc *rtc)
{
	unsigned rate = rtc->ram[RTC_REG_A] & 0x0f;

	if (!rate)
		return 0;
	if (rate <= 2)
		rate += 7;	/* 256 Hz and 128 Hz, as rates 8 and 9 */
	return (1ll << (rate - 1)) * NSEC / 32768;
}

static uint8_t reg_c_read(struct rtc *rtc)
{
	int64_t now = host_ns(), sec = guest_sec(rtc, now), period = period_ns(rtc);
	uint8_t c = 0;

	if (!set_mode(rtc)) {
		if (sec > rtc->c_sec)
			c |= REG_C_UF;
		if (sec > rtc->c_sec && alarm_passed(rtc, rtc->c_sec, sec))
			c |= REG_C_AF;
	}
	if (period && now / period != rtc->c_ns / period)
		c |= REG_C_PF;
	/* PF, AF and UF sit at the bits of their enables in register B. */
	if (c & rtc->ram[RTC_REG_B] & (REG_B_PIE | REG_B_AIE | REG_B_UIE))
		c |= REG_C_IRQF;
	rtc->c_sec = sec;
	rtc->c_ns = now;
	return c;
}

static uint8_t cmos_read(struct rtc *rtc, unsigned reg)
{
	int64_t now;

	switch (reg) {
	case RTC_SECONDS:
	case RTC_MINUTES:
	case RTC_HOURS:
	case RTC_WEEKDAY:
	case RTC_DAY:
	case RTC_MONTH:
	case RTC_YEAR:
	case RTC_CENTURY:
		return time_read(rtc, reg);
	case RTC_REG_A:
		now = host_ns();
		if (!set_mode(rtc) && now % NSEC >= NSEC - UIP_WINDOW_NS)
			return rtc->ram[RTC_REG_A] | REG_A_UIP;
		return rtc->ram[RTC_REG_A];
	case RTC_REG_C:
		return reg_c_read(rtc);
	case RTC_REG_D:
		return REG_D_VRT;	/* the battery is good */
	default:
		return rtc->ram[reg];
	}
}

static void cmos_write(struct rtc *rtc, unsigned reg, uint8_t v)
{
	switch (reg) {
	case RTC_SECONDS:
	case RTC_MINUTES:
	case RTC_HOURS:
	case RTC_DAY:
	case RTC_MONTH:
	case RTC_YEAR:
	case RTC_CENTURY:
		time_write(rtc, reg, v);
		break;
	case RTC_WEEKDAY:
	case RTC_REG_C:
	case RTC_REG_D:
		break;
	case RTC_REG_A:
		rtc->ram[RTC_REG_A] = v & (uint8_t)~REG_A_UIP;
		break;
	case RTC_REG_B: {
		int64_t now = host_ns();
		uint8_t old = rtc->ram[RTC_REG_B];

		if ((v & REG_B_SET) && !set_mode(rtc))
			time_to_regs(rtc, guest_sec(rtc, now), rtc->set_regs);
		/* SET clears the update interrupt enable. */
		rtc->ram[RTC_REG_B] = v & REG_B_SET ? v & (uint8_t)~REG_B_UIE : v;
		/* Started again: from the registers, as they read in the
		 * mode now chosen. */
		if (!(v & REG_B_SET) && (old & REG_B_SET))
			rtc->offset = regs_to_time(rtc, rtc->set_regs) - now / NSEC;
		break;
	}
	default:
		rtc->ram[reg] = v;
	}
}

static void rtc_read(void *opaque, uint64_t addr, void *data, unsigned len)
{
	struct rtc *rtc = opaque;
	uint8_t *d = data;

	pthread_mutex_lock(&rtc->lock);
	for (unsigned i = 0; i < len && addr + i < 2; i++)
		/* The index port is write-only: it floats. */
		d[i] = addr + i == 0 ? 0xff : cmos_read(rtc, rtc->index);
	pthread_mutex_unlock(&rtc->lock);
}

static void rtc_write(void *opaque, uint64_t addr, const void *data, unsigned len)
{
	struct rtc *rtc = opaque;
	const uint8_t *d = data;

	pthread_mutex_lock(&rtc->lock);
	for (unsigned i = 0; i < len && addr + i < 2; i++) {
		if (addr + i == 0)
			rtc->index = d[i] & 0x7f;	/* bit 7: NMI mask */
		else
			cmos_write(rtc, rtc->index, d[i]);
	}
	pthread_mutex_unlock(&rtc->lock);
}

static const struct io_ops rtc_ops = { .read = rtc_read, .write = rtc_write };

static void put16(uint8_t *p, uint64_t v)
{
	if (v > 0xffff)
		v = 0xffff;
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void memory_sizes(struct rtc *rtc, const struct vm *vm)
{
	uint64_t low = vm->ram_below_4g, high = vm->ram_above_4g;

	put16(&rtc->ram[0x15], 640);
	put16(&rtc->ram[0x17], low > (1ull << 20) ? (low - (1ull << 20)) >> 10 : 0);
	put16(&rtc->ram[0x30], low > (1ull << 20) ? (low - (1ull << 20)) >> 10 : 0);
	put16(&rtc->ram[0x34], low > (16ull << 20) ? (low - (16ull << 20)) >> 16 : 0);
	high >>= 16;
	if (high > 0xffffff)
		high = 0xffffff;
	rtc->ram[0x5b] = (uint8_t)high;
	rtc->ram[0x5c] = (uint8_t)(high >> 8);
	rtc->ram[0x5d] = (uint8_t)(high >> 16);
	rtc->ram[0x5f] = (uint8_t)(vm->opts.nr_cpus - 1);
}

/* --- saved state: the registers and RAM, and the guest's time as an
 * offset from the host's, so that it goes on while the VM is off, as a
 * battery-backed clock does --- */

static int rtc_save(void *opaque, struct dev_state *s)
{
	struct rtc *rtc = opaque;

	pthread_mutex_lock(&rtc->lock);
	state_put_section(s, "RTC ", 1);
	state_put_u8(s, rtc->index);
	state_put_bytes(s, rtc->ram, sizeof(rtc->ram));
	state_put_u64(s, (uint64_t)rtc->offset);
	state_put_bytes(s, rtc->set_regs, sizeof(rtc->set_regs));
	pthread_mutex_unlock(&rtc->lock);
	return s->err;
}

static int rtc_load(void *opaque, struct dev_state *s)
{
	struct rtc *rtc = opaque;
	uint8_t index, ram[128], set[RTC_CENTURY + 1];
	int64_t offset, now = host_ns();

	if (!state_get_section(s, "RTC ", 1))
		return s->err;
	index = state_get_u8(s);
	state_get_bytes(s, ram, sizeof(ram));
	offset = (int64_t)state_get_u64(s);
	state_get_bytes(s, set, sizeof(set));
	if (s->err)
		return s->err;
	/* Not a time this device can have had. */
	if (offset > OFFSET_MAX || offset < -OFFSET_MAX)
		return -EINVAL;
	pthread_mutex_lock(&rtc->lock);
	rtc->index = index & 0x7f;
	memcpy(rtc->ram, ram, sizeof(ram));
	rtc->offset = offset;
	memcpy(rtc->set_regs, set, sizeof(set));
	/* The flags' clock starts again now (the time between is no tick). */
	rtc->c_ns = now;
	rtc->c_sec = guest_sec(rtc, now);
	pthread_mutex_unlock(&rtc->lock);
	return 0;
}

static const struct vm_device_ops rtc_vm_ops = {
	.quiesce = state_quiesce_none, .resume = state_resume_none,
	.save = rtc_save, .load = rtc_load,
};

int rtc_init(struct vm *vm, struct rtc **out)
{
	struct rtc *rtc = calloc(1, sizeof(*rtc));
	int64_t now = host_ns();
	int r;

	*out = NULL;
	if (!rtc)
		return -ENOMEM;
	pthread_mutex_init(&rtc->lock, NULL);
	rtc->ram[RTC_REG_A] = 0x26;		/* 32.768 kHz time base, 1024 Hz */
	rtc->ram[RTC_REG_B] = REG_B_24H;	/* BCD, 24-hour */
	rtc->c_ns = now;
	rtc->c_sec = guest_sec(rtc, now);
	memory_sizes(rtc, vm);
	r = vm_register_pio(vm, RTC_PORT, 2, &rtc_ops, rtc, "rtc");
	if (r < 0) {
		pthread_mutex_destroy(&rtc->lock);
		free(rtc);
		return r;
	}
	rtc->vm = vm;
	rtc->vmdev = (struct vm_device){ .name = "rtc", .ops = &rtc_vm_ops, .opaque = rtc };
	vm_add_device(vm, &rtc->vmdev);
	*out = rtc;
	return 0;
}

void rtc_destroy(struct rtc *rtc)
{
	if (!rtc)
		return;
	vm_remove_device(rtc->vm, &rtc->vmdev);
	pthread_mutex_destroy(&rtc->lock);
	free(rtc);
}
