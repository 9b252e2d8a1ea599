// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * boot_split() (src/vmm/boot.h): which bytes of a kernel segment or an
 * initrd are mapped from the file and which copied.  No mapped page may
 * show the guest a byte outside the range, and every byte of it is placed
 * once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../src/vmm/boot.h"

#define P	VM_PAGE_SIZE

static void expect(uint64_t off, uint64_t gpa, uint64_t size, uint64_t head, uint64_t pages,
		   uint64_t tail)
{
	struct boot_split s = boot_split(off, gpa, size);

	assert_int_equal(s.head, head);
	assert_int_equal(s.pages, pages);
	assert_int_equal(s.tail, tail);
	assert_int_equal(s.head + s.pages * P + s.tail, size);
}

static void test_congruent(void **state)
{
	/* A vmlinux's segment: both at pages, a part page at the end. */
	expect(0x200000, 0x1000000, 0x8aca90, 0, 0x8ac, 0xa90);
	/* Whole pages only. */
	expect(0x1000, 0x100000, 3 * P, 0, 3, 0);
	/* Both 0x234 into a page: the head up to the next page copied. */
	expect(0x1234, 0x100234, 2 * P, P - 0x234, 1, 0x234);
	/* An initrd at a page, 20011 bytes: four pages and 3627 bytes. */
	expect(0, 0xfffb000, 20011, 0, 4, 3627);
	/* Offsets far apart, still congruent. */
	expect(0x5000, 0x7fff0000, P + 1, 0, 1, 1);
}

static void test_copied(void **state)
{
	/* Not congruent: a bzImage's 4 setup sectors (2.5 KiB). */
	expect(0xa00, 0x1000000, 0x2000, 0x2000, 0, 0);
	expect(0x1800, 0x100000, 10 * P, 10 * P, 0, 0);
	/* No whole page inside: less than a page, or a page's worth that
	 * straddles two. */
	expect(0x1000, 0x100000, P - 1, P - 1, 0, 0);
	expect(0x1010, 0x100010, P, P, 0, 0);
	expect(0x1010, 0x100010, 2 * P - 0x11, 2 * P - 0x11, 0, 0);
	expect(0, 0x100000, 0, 0, 0, 0);
	/* Offset below the address (wraps in the subtraction): still right. */
	expect(0x10, 0x100010, 2 * P, P - 0x10, 1, 0x10);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_congruent),
		cmocka_unit_test(test_copied),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
