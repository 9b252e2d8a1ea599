// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The control socket's micro-guest (tests/integration/test_control.py,
 * bench/ctl-run): every vCPU counts the ticks of its own local APIC timer
 * into memory, halting between them, and every `every` ticks prints
 *   "cpu<APIC id> <count / every>\n"
 * so that a pause shows as silence, a resume as the next number, and a
 * restored saved state as the number after the last one printed before
 * the save, on every vCPU.  The boot CPU starts the others with
 * INIT/SIPI (smp-tramp.S).  Halting between ticks keeps the host's CPU
 * free: a paused vCPU is held out of KVM_RUN, so no tick is delivered and
 * nothing is counted.
 *
 * Command line:
 *   hz=N       ticks a second on each vCPU (default 100)
 *   every=N    ticks between lines (default 10)
 *   button=1   handle the ACPI power button as an OS does: the SCI routed
 *              as the tables say, PWRBTN_EN on; a press prints
 *              "power button" and powers off through S5
 *   cad=1      watch the keyboard: Ctrl-Alt-Del prints "ctrl-alt-del" and
 *              resets through the 8042 (command 0xfe)
 *   touch=MiB  first write that much memory from 64 MiB up, a distinct
 *              value in every 8 bytes (at CPL3: natively fast on hosts
 *              that emulate CPL0), then print "touched N MiB"
 * It prints "counting on N cpus" once every vCPU counts.
 */
#include "acpi-guest.h"

#define TRAMP_BASE	0x8000
#define TIMER_VEC	0x40
#define SCI_VEC		0x50
#define TOUCHED_VEC	6		/* #UD: user mode is done (INT n from CPL3
					 * is #UD itself on kvm_pvm) */
#define TOUCH_BASE	(64ul << 20)
#define APIC_ID		0x20
#define APIC_EOI	0xb0
#define APIC_SVR	0xf0
#define APIC_ICR_LO	0x300
#define APIC_ICR_HI	0x310
#define APIC_LVT_TIMER	0x320
#define APIC_TIMER_INIT	0x380
#define APIC_TIMER_DIV	0x3e0
#define LVT_PERIODIC	(1u << 17)
#define APIC_BUS_HZ	1000000000ul	/* KVM's LAPIC timer: 1 ns a count */
#define MAX_CPUS	16

extern const uint8_t smp_tramp_start[], smp_tramp_end[];
extern uint8_t smp_tramp_cr3[], smp_tramp_gdtr[], smp_tramp_count[];
uint8_t smp_ap_stacks[MAX_CPUS * 16384] __attribute__((aligned(16)));
void smp_ap_main(unsigned place);

static volatile uint64_t count[MAX_CPUS];
static volatile uint32_t counting;
static volatile uint32_t print_lock;
static uint64_t every, touch_mib;
static uint32_t hz;
static uint16_t pm1_evt;
static uint64_t fadt;
static bool watch_keys;
static unsigned key_state;

static uint32_t lapic_read(unsigned reg)
{
	return mmio_read32(LAPIC_BASE + reg);
}

static void lapic_write(unsigned reg, uint32_t v)
{
	mmio_write32(LAPIC_BASE + reg, v);
}

static void lock(void)
{
	while (__atomic_exchange_n(&print_lock, 1, __ATOMIC_ACQUIRE))
		__asm__ volatile("pause");
}

static void unlock(void)
{
	__atomic_store_n(&print_lock, 0, __ATOMIC_RELEASE);
}

/* Set 1 (the 8042 translates): Ctrl, Alt, then Delete (0xe0 0x53). */
static void poll_keys(void)
{
	while (inb(0x64) & 1) {
		uint8_t sc = inb(0x60);

		key_state = sc == 0xe0 ? 1 : (key_state == 1 && sc == 0x53) ? 2 : 0;
		if (key_state == 2) {
			lock();
			rt_printf("ctrl-alt-del\n");
			unlock();
			outb(0x64, 0xfe);	/* pulse the reset line */
		}
	}
}

static void on_tick(struct trap_frame *f)
{
	unsigned id = lapic_read(APIC_ID) >> 24;
	uint64_t n = ++count[id % MAX_CPUS];

	if (n % every == 0) {
		lock();
		rt_printf("cpu%u %lu\n", id, n / every);
		unlock();
	}
	if (id == 0 && watch_keys)
		poll_keys();
	lapic_write(APIC_EOI, 0);
}

/* The OS's SCI handler: a press of the power button is a shutdown. */
static void on_sci(struct trap_frame *f)
{
	uint16_t sts = inw(pm1_evt);

	if (sts & inw((uint16_t)(pm1_evt + 2)) & PM1_PWRBTN) {
		outw(pm1_evt, PM1_PWRBTN);
		lock();
		rt_printf("power button\n");
		s5_power_off(fadt, rd(fadt + FADT_X_DSDT, 8));
	}
	lapic_write(APIC_EOI, 0);	/* a repeat with no status bit (kvm_pvm) */
}

static void __attribute__((noreturn)) count_forever(void)
{
	lapic_write(APIC_SVR, 0x1ff);
	lapic_write(APIC_TIMER_DIV, 0xb);			/* divide by 1 */
	lapic_write(APIC_LVT_TIMER, LVT_PERIODIC | TIMER_VEC);
	lapic_write(APIC_TIMER_INIT, (uint32_t)(APIC_BUS_HZ / hz));
	__atomic_fetch_add(&counting, 1, __ATOMIC_SEQ_CST);
	for (;;)
		__asm__ volatile("sti; hlt; cli");
}

void smp_ap_main(unsigned place)
{
	count_forever();
}

static void icr(uint32_t v)
{
	lapic_write(APIC_ICR_HI, 0);
	lapic_write(APIC_ICR_LO, v);
	while (lapic_read(APIC_ICR_LO) & (1u << 12))
		;
}

static unsigned start_aps(void)
{
	uint8_t *tramp = (uint8_t *)TRAMP_BASE;
	uint32_t r[4], n;

	cpuid(1, 0, r);
	n = (r[1] >> 16) & 0xff;
	if (n <= 1)
		return 1;
	for (const uint8_t *p = smp_tramp_start; p < smp_tramp_end; p++)
		*tramp++ = *p;
	*(uint32_t *)(TRAMP_BASE + (smp_tramp_cr3 - smp_tramp_start)) = (uintptr_t)rt_pml4;
	*(uint16_t *)(TRAMP_BASE + (smp_tramp_gdtr - smp_tramp_start)) = rt_gdtr.limit;
	*(uint32_t *)(TRAMP_BASE + (smp_tramp_gdtr - smp_tramp_start) + 2) =
		(uint32_t)rt_gdtr.base;
	lapic_write(APIC_SVR, 0x1ff);
	icr((3u << 18) | (1u << 14) | (5u << 8));			/* INIT, all but self */
	for (volatile unsigned i = 0; i < 1000; i++)
		;
	for (int i = 0; i < 2; i++) {
		icr((3u << 18) | (1u << 14) | (6u << 8) | (TRAMP_BASE >> 12));	/* SIPI */
		for (volatile unsigned k = 0; k < 100; k++)
			;
	}
	return n;
}

/* The SCI as the FADT and the MADT say, PWRBTN_EN on. */
static void button_setup(void)
{
	uint64_t rsdp = rsdp_zero_page(), madt, end, ioapic = 0xfec00000ul;
	unsigned gsi, flags = 0;
	uint32_t low;

	fadt = find_table(rsdp, "FACP");
	madt = find_table(rsdp, "APIC");
	pm1_evt = (uint16_t)rd(fadt + FADT_X_PM1A_EVT + GAS_ADDRESS, 8);
	gsi = (unsigned)rd(fadt + FADT_SCI_INT, 2);
	end = madt + rd(madt + 4, 4);
	for (uint64_t e = madt + 44; e < end && rd(e + 1, 1); e += rd(e + 1, 1)) {
		if (rd(e, 1) == 1)
			ioapic = rd(e + 4, 4);
		if (rd(e, 1) == 2 && rd(e + 3, 1) == gsi) {
			gsi = (unsigned)rd(e + 4, 4);
			flags = (unsigned)rd(e + 8, 2);
		}
	}
	low = SCI_VEC | ((flags >> 2 & 3) == 3 ? 1u << 15 : 0) | ((flags & 3) == 3 ? 1u << 13 : 0);
	mmio_write32(ioapic, 0x11 + 2 * gsi);
	mmio_write32(ioapic + 0x10, 0);
	mmio_write32(ioapic, 0x10 + 2 * gsi);
	mmio_write32(ioapic + 0x10, low);
	rt_set_handler(SCI_VEC, on_sci);
	outw(pm1_evt, 0xffff);
	outw((uint16_t)(pm1_evt + 2), PM1_PWRBTN);
}

static void __attribute__((noreturn)) run(void)
{
	unsigned n;

	rt_set_handler(TIMER_VEC, on_tick);	/* before the APs' timers tick */
	n = start_aps();
	outb(0x21, 0xff);	/* the 8259s masked: the LAPIC and IOAPIC only */
	outb(0xa1, 0xff);
	if (rt_arg("button", 0))
		button_setup();
	while (counting < n - 1)
		__asm__ volatile("pause");
	lock();
	rt_printf("counting on %u cpus\n", n);
	unlock();
	count_forever();
}

/* Back from user mode after touching memory (its UD2). */
static void on_touched(struct trap_frame *f)
{
	rt_printf("touched %lu MiB\n", touch_mib);
	run();
}

static void touch_user(void)
{
	volatile uint64_t *p = (volatile uint64_t *)TOUCH_BASE;

	for (uint64_t i = 0; i < (touch_mib << 20) / 8; i++)
		p[i] = i * 0x9e3779b97f4a7c15ull + 1;
	__asm__ volatile("ud2");
	for (;;)
		;
}

int main(void)
{
	hz = (uint32_t)rt_arg("hz", 100);
	every = rt_arg("every", 10);
	touch_mib = rt_arg("touch", 0);
	watch_keys = rt_arg("cad", 0);
	if (!hz || hz > 10000 || !every)
		return 2;
	if (touch_mib) {
		rt_set_handler(TOUCHED_VEC, on_touched);
		rt_enter_user(touch_user, RT_USER_STACK_TOP);
	}
	run();
}
