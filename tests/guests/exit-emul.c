// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Instructions that hosts without hardware virtualization cannot emulate
 * in guest kernel mode, and exceptions.  mode= on the command line:
 *   int3       INT3 at CPL0: the handler reports #BP and the guest goes on
 *   int3-user  INT3 at CPL3 (native there)
 *   fwait      FWAIT at CPL0: does nothing, the guest goes on
 *   popcnt     POPCNT at CPL0: prints its result
 *   xsave      XSAVE at CPL0: prints the header it wrote
 *   ud2, ud2-user  an unhandled #UD: the runtime's report, status 0x46
 * On a host that cannot emulate one, the VMM handles it (host quirks) or
 * stops the VM with "emulation failure" and the instruction's bytes.
 */
#include "guest.h"

extern const char after_int3[], after_int3_user[];
static uint8_t xsave_area[4096] __attribute__((aligned(64)));

static void on_bp(struct trap_frame *f)
{
	rt_printf("vector %lu at rip=%lx cpl=%lu\n", f->vector, f->rip, f->cs & 3);
	rt_printf("rip is %s\n", f->rip == (uintptr_t)after_int3 ||
		  f->rip == (uintptr_t)after_int3_user ? "after the int3" : "wrong");
}

static void __attribute__((noreturn)) int3_user(void)
{
	__asm__ volatile("int3\n.globl after_int3_user\nafter_int3_user:");
	rt_printf("continued after int3 at cpl %u\n", cpl());
	guest_exit(0);
}

static void __attribute__((noreturn)) ud2(void)
{
	__asm__ volatile("ud2");
	guest_exit(1);
}

int main(void)
{
	char mode[16];

	if (!rt_arg_str("mode", mode, sizeof(mode)))
		return 2;
	rt_set_handler(3, on_bp);
	rt_set_user_gate(3);
	if (rt_streq(mode, "int3")) {
		__asm__ volatile("int3\n.globl after_int3\nafter_int3:");
		rt_printf("continued after int3 at cpl %u\n", cpl());
	} else if (rt_streq(mode, "int3-user")) {
		rt_enter_user(int3_user, RT_USER_STACK_TOP);
	} else if (rt_streq(mode, "fwait")) {
		__asm__ volatile("fwait");
		puts_dbg("continued after fwait\n");
	} else if (rt_streq(mode, "popcnt")) {
		uint64_t v = 0xf0f0f0f0f0f0f0f0ull, n;

		__asm__ volatile("popcnt %1, %0" : "=r"(n) : "r"(v));
		rt_printf("popcnt = %lu\n", n);
	} else if (rt_streq(mode, "xsave")) {
		uint64_t cr4;

		__asm__ volatile("mov %%cr4, %0" : "=r"(cr4));
		__asm__ volatile("mov %0, %%cr4" : : "r"(cr4 | (1ull << 18)));	/* OSXSAVE */
		__asm__ volatile("xsave %0" : "+m"(xsave_area) : "a"(1), "d"(0));
		rt_printf("xsave wrote xstate_bv %lx\n", *(uint64_t *)(xsave_area + 512) & 1);
	} else if (rt_streq(mode, "ud2")) {
		ud2();
	} else if (rt_streq(mode, "ud2-user")) {
		rt_enter_user(ud2, RT_USER_STACK_TOP);
	} else {
		return 2;
	}
	return 0;
}
