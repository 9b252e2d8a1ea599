// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * An idle guest: the local APIC timer in periodic mode at hz= interrupts a
 * second (default 1000, as a Linux guest's tick with HZ=1000), and the CPU
 * halted between them, as an idle kernel's idle loop is.  Used by
 * bench/vmm-run to measure what an idle VM costs the host, and by
 * tests/integration/test_idle.py.
 *
 *   ticks=N (default 100): the N-th interrupt stops the timer, prints the
 *     count and exits 0.  ticks=0: idles until killed.
 *   eoi=mmio (default): the handler's EOI is a store to the xAPIC's page;
 *     eoi=x2apic: the APIC in x2APIC mode, the EOI a WRMSR; eoi=none: no
 *     EOI at all, which only a host whose KVM ends the interrupt as it
 *     delivers it (kvm_pvm does) keeps ticking: bench/vmm-run's floor.
 *   pad=N (0 to 64): N NOPs before the handler, for the cost of one more
 *     emulated instruction a tick.
 *   cost: instead of idling, time each instruction of the tick at CPL0
 *     (200 in a loop, the best of 16 tries) against the APIC timer's 1 ns
 *     count and print the microseconds each took (bench/vmm-run): the
 *     emulator's price list.
 *
 * Output: "idle: LAPIC timer at 1000 Hz, halting between ticks\n", then
 * "idle: 100 ticks\n".
 *
 * The tick is as cheap as guest code can make it, since a host without
 * VT-x emulates each of its instructions (about 1 us each): the periodic
 * timer needs no re-arming, the handler is four instructions (count down,
 * branch, EOI, IRETQ) and the idle loop two (HLT, JMP), none of them an
 * exit to the VMM.  The EOI is one store with no register to save: the
 * xAPIC's page is mapped again at the top of the address space, where a
 * sign-extended 32-bit address reaches it, as Linux's fixmap does.  KVM's
 * LAPIC timer counts at 1 GHz (its bus cycle is 1 ns), so with the divider
 * at 1 the initial count is 10^9 / hz.
 */
#include "dev-guest.h"

#define TIMER_VEC	0x40
#define APIC_EOI	0x0b0
#define APIC_LVT_TIMER	0x320
#define APIC_TIMER_INIT	0x380
#define APIC_TIMER_CUR	0x390
#define APIC_TIMER_DIV	0x3e0
#define LVT_MASKED	(1u << 16)
#define LVT_PERIODIC	(1u << 17)
#define APIC_BUS_HZ	1000000000ul
#define MSR_APIC_BASE	0x1b
#define APIC_BASE_EXTD	(1ull << 10)
#define MSR_X2APIC(reg)	(0x800 + ((reg) >> 4))
/* The xAPIC's EOI register at -20 MiB, reachable by a sign-extended
 * disp32 (map_lapic_high). */
#define EOI_HIGH	0xfffffffffee000b0
#define MAX_PAD		64

/* Counted down by the handler; from 0 (ticks=0) it wraps and never ends. */
unsigned long ticks_left __attribute__((used));
static unsigned long ticks_total;
static bool x2apic;

static inline void wrmsr(uint32_t msr, uint64_t v)
{
	__asm__ volatile("wrmsr" : : "c"(msr), "a"((uint32_t)v), "d"((uint32_t)(v >> 32)));
}

static inline uint64_t rdmsr(uint32_t msr)
{
	uint32_t lo, hi;

	__asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
	return ((uint64_t)hi << 32) | lo;
}

static void apic_write(unsigned reg, uint32_t v)
{
	if (x2apic)
		wrmsr(MSR_X2APIC(reg), v);
	else
		mmio_write32(LAPIC + reg, v);
}

static uint32_t apic_read(unsigned reg)
{
	return x2apic ? (uint32_t)rdmsr(MSR_X2APIC(reg)) : mmio_read32(LAPIC + reg);
}

/* The last tick: the timer stopped, so the count printed is exact. */
__attribute__((used, noreturn)) void idle_done(void);
__attribute__((used, noreturn)) void idle_done(void)
{
	apic_write(APIC_LVT_TIMER, LVT_MASKED | TIMER_VEC);
	apic_write(APIC_TIMER_INIT, 0);
	puts_dbg("idle: ");
	put_dec(ticks_total, 1);
	puts_dbg(" ticks\n");
	guest_exit(0);
}

/*
 * The handlers, each after MAX_PAD NOPs that pad= enters into.  The last
 * tick calls idle_done() on a stack aligned as C expects (the CPU pushed
 * five words on a 16-byte aligned one); it does not return.  The x2APIC
 * EOI's WRMSR needs three registers, which cost six instructions more.
 */
#define PAD ".rept " __stringify(MAX_PAD) "\n nop\n .endr\n"
#define __stringify_1(x) #x
#define __stringify(x) __stringify_1(x)
__asm__(".pushsection .text\n"
	"tick_last:\n"
	"	and $-16, %rsp\n"
	"	call idle_done\n"
	PAD
	"tick_mmio:\n"
	"	decq ticks_left(%rip)\n"
	"	jz tick_last\n"
	"	movl $0, " __stringify(EOI_HIGH) "\n"
	"	iretq\n"
	PAD
	"tick_x2apic:\n"
	"	decq ticks_left(%rip)\n"
	"	jz tick_last\n"
	"	push %rax\n"
	"	push %rcx\n"
	"	push %rdx\n"
	"	mov $" __stringify(MSR_X2APIC(APIC_EOI)) ", %ecx\n"
	"	xor %eax, %eax\n"
	"	xor %edx, %edx\n"
	"	wrmsr\n"
	"	pop %rdx\n"
	"	pop %rcx\n"
	"	pop %rax\n"
	"	iretq\n"
	PAD
	"tick_none:\n"
	"	decq ticks_left(%rip)\n"
	"	jz tick_last\n"
	"	iretq\n"
	".popsection\n");
extern char tick_mmio[], tick_x2apic[], tick_none[];

/* The idle loop, as small as it can be: the handler ends the guest. */
static void __attribute__((noreturn)) idle(void)
{
	__asm__ volatile("sti\n"
			 "1:	hlt\n"
			 "	jmp 1b\n" ::: "memory");
	__builtin_unreachable();
}

/* The xAPIC's page again at LAPIC_HIGH: the last PML4 entry shares the
 * first's page directory pointer table, whose last entry maps 3-4 GiB. */
static void map_lapic_high(void)
{
	uint64_t cr3, *pml4, *pdpt;

	__asm__ volatile("mov %%cr3, %0" : "=r"(cr3));
	pml4 = (uint64_t *)(cr3 & ~0xfffull);
	pdpt = (uint64_t *)(pml4[0] & ~0xfffull);
	pml4[511] = pml4[0];
	pdpt[511] = pdpt[3];
	__asm__ volatile("mov %0, %%cr3" : : "r"(cr3) : "memory");
}

/*
 * Nanoseconds for COST_N runs of `insn` with the loop's DEC and JNZ, by the
 * APIC timer counting down from its top at 1 GHz, the least of COST_TRIES
 * (a try the host preempted is longer).  Reading the count is itself an
 * emulated access, the same in every try, and so is the loop: put_cost()
 * subtracts an empty loop's time, measured in the same APIC mode.
 */
#define COST_N		200
#define COST_TRIES	16
#define TIME_LOOP(insn, ...) ({						\
	uint32_t best_ = ~0u;						\
	for (int try_ = 0; try_ < COST_TRIES; try_++) {			\
		uint32_t t0_ = apic_read(APIC_TIMER_CUR), t1_;		\
		unsigned long n_ = COST_N;				\
		__asm__ volatile("1: " insn "\n dec %0\n jnz 1b"	\
				 : "+r"(n_) : __VA_ARGS__ : "memory");	\
		t1_ = apic_read(APIC_TIMER_CUR);			\
		if (t0_ - t1_ < best_)					\
			best_ = t0_ - t1_;				\
	}								\
	best_; })

/* "idle: cost WHAT 1.23 us": one instruction's share of COST_N runs. */
static void put_cost(const char *what, uint32_t ns, uint32_t base)
{
	unsigned long c = (ns > base ? ns - base : 0) / (COST_N * 10ul);

	puts_dbg("idle: cost ");
	puts_dbg(what);
	puts_dbg(" ");
	put_dec(c / 100, 1);
	puts_dbg(".");
	put_dec(c % 100, 2);
	puts_dbg(" us\n");
}

static void timer_free_running(void)
{
	apic_write(APIC_TIMER_DIV, 0xb);
	apic_write(APIC_LVT_TIMER, LVT_MASKED | TIMER_VEC);
	apic_write(APIC_TIMER_INIT, 0xffffffffu);	/* 4.3 s at 1 GHz */
}

static int cost(void)
{
	static volatile unsigned long mem;
	uint32_t empty, nop, dec, eoi, msr;

	timer_free_running();
	empty = TIME_LOOP("", "r"(0));
	nop = TIME_LOOP("nop", "r"(0));
	dec = TIME_LOOP("decq %1", "m"(mem));
	eoi = TIME_LOOP("movl $0, " __stringify(EOI_HIGH), "r"(0));
	/* The empty loop's DEC and JNZ first, as one instruction's share. */
	put_cost("dec+jnz", empty, 0);
	put_cost("nop", nop, empty);
	put_cost("decq-mem", dec, empty);
	put_cost("eoi-mmio", eoi, empty);
	wrmsr(MSR_APIC_BASE, rdmsr(MSR_APIC_BASE) | APIC_BASE_EXTD);
	x2apic = true;
	timer_free_running();
	empty = TIME_LOOP("", "r"(0));
	msr = TIME_LOOP("wrmsr", "c"(MSR_X2APIC(APIC_EOI)), "a"(0), "d"(0));
	put_cost("eoi-x2apic", msr, empty);
	return 0;
}

/* Whether the command line's value at v is `want`. */
static bool value_is(const char *v, const char *want)
{
	while (*want && *v == *want) {
		v++;
		want++;
	}
	return !*want && (*v == ' ' || !*v);
}

int guest_main(void)
{
	unsigned long hz = cmdline_num("hz", 1000);
	unsigned long pad = cmdline_num("pad", 0);
	const char *eoi = cmdline_find("eoi", true);
	char *tick = tick_mmio;

	if (hz < 1 || hz > 100000 || pad > MAX_PAD)
		return 2;
	if (eoi && value_is(eoi, "x2apic")) {
		tick = tick_x2apic;
		x2apic = true;
	} else if (eoi && value_is(eoi, "none")) {
		tick = tick_none;
	} else if (eoi && !value_is(eoi, "mmio")) {
		return 2;
	}
	ticks_total = ticks_left = cmdline_num("ticks", 100);
	interrupts_init();
	map_lapic_high();
	if (cmdline_has("cost"))
		return cost();
	if (x2apic)
		wrmsr(MSR_APIC_BASE, rdmsr(MSR_APIC_BASE) | APIC_BASE_EXTD);
	idt_set(TIMER_VEC, (void (*)(struct iframe *))(uintptr_t)(tick - pad));
	puts_dbg("idle: LAPIC timer at ");
	put_dec(hz, 1);
	puts_dbg(" Hz, halting between ticks\n");
	apic_write(APIC_TIMER_DIV, 0xb);			/* divide by 1 */
	apic_write(APIC_LVT_TIMER, LVT_PERIODIC | TIMER_VEC);
	apic_write(APIC_TIMER_INIT, (uint32_t)(APIC_BUS_HZ / hz));
	idle();
}
