// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * MMIO exits: reads and writes of every size to a guest-physical address
 * in the hole below 4 GiB that no memory slot backs.  Nothing answers
 * there, so reads see all ones and writes are dropped.  cpl=3 runs the
 * accesses at CPL3 (the runtime's pages are user-accessible).
 */
#include "guest.h"

static void __attribute__((noreturn)) mmio(void)
{
	volatile uint8_t *p8 = (volatile uint8_t *)(uintptr_t)UNBACKED_MMIO;
	volatile uint16_t *p16 = (volatile uint16_t *)(uintptr_t)(UNBACKED_MMIO + 0x10);
	volatile uint32_t *p32 = (volatile uint32_t *)(uintptr_t)(UNBACKED_MMIO + 0x20);
	volatile uint64_t *p64 = (volatile uint64_t *)(uintptr_t)(UNBACKED_MMIO + 0x30);

	rt_printf("mmio at cpl %u\n", cpl());
	rt_printf("read: %x %x %x %lx\n", *p8, *p16, *p32, *p64);
	*p8 = 0x12;
	*p16 = 0x1234;
	*p32 = 0x12345678;
	*p64 = 0x123456789abcdef0ull;
	rt_printf("after writes: %x %x %x %lx\n", *p8, *p16, *p32, *p64);
	guest_exit(9);
}

int main(void)
{
	if (rt_arg("cpl", 0) == 3)
		rt_enter_user(mmio, RT_USER_STACK_TOP);
	mmio();
}
