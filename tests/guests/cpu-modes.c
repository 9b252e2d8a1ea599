// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Guest code in 32-bit protected mode and in real mode.  The VMM enters
 * micro-guests in long mode; cpu-modes.S leaves it for 32-bit protected
 * mode and then for real mode, as firmware-bound code does, and each mode
 * reports on the debug port.  mode=prot32 stops in protected mode (status
 * 32), mode=real (default) goes on to real mode (status 16).
 */
#include "guest.h"

#define BLOB_BASE	0x8000

extern const uint8_t modes_blob_start[], modes_blob_end[];
uint32_t modes_target;
void __attribute__((noreturn)) modes_leave_long(uint32_t target);

int main(void)
{
	char mode[16];
	uint8_t *dst = (uint8_t *)BLOB_BASE;

	if (!rt_arg_str("mode", mode, sizeof(mode)))
		mode[0] = 0;
	for (const uint8_t *p = modes_blob_start; p < modes_blob_end; p++)
		*dst++ = *p;
	rt_printf("long64: cpl %u, leaving for 32-bit protected mode\n", cpl());
	modes_leave_long(rt_streq(mode, "prot32") ? 32 : 16);
}
