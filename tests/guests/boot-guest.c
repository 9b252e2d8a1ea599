// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The boot micro-guest: a fake kernel that reports, over the debug port,
 * what the VMM handed it, for tests/integration/test_boot.py to compare
 * with what the boot protocols say it must be.  Built 64-bit (behind
 * boot-head64.S) and 32-bit (behind boot-head32.S) from this one file.
 *
 * With "watch" on its command line (the Linux entries), it then reports
 * over and over, until the VM is stopped, the FNV-1a of its own code and
 * constants and of the initrd as it reads them in memory: for tests that
 * change the files they were loaded from under it (test_bootmap.py).
 *
 * It reads every structure by the byte offsets of the protocol documents
 * (Documentation/x86/boot.rst and zero-page.rst; Xen's hvm/start_info.h)
 * and shares no struct with the VMM, so that a misreading on either side
 * shows.  It exits through the test device with 0x55 when its own checks
 * pass (magic numbers, the CPU mode each entry promises), 0x66 when not.
 */
#include <stdint.h>

#include "boot-entry.h"
#include "boot-print.h"

extern volatile uint64_t entry_state[ES_SIZE / 8];

static uint64_t es(unsigned off)
{
	return entry_state[off / 8];
}

static const volatile uint8_t *phys(uint64_t addr)
{
	return (const volatile uint8_t *)(uintptr_t)addr;
}

static void put(const char *s)
{
	puts_dbg(s);
}

/* The CPU at entry: what both boot protocols and PVH promise. */
static void report_cpu(void)
{
	uint64_t kind = es(ES_KIND), cr0 = es(ES_CR0), efer = es(ES_EFER);
	int pe = cr0 & 1, pg = !!(cr0 & 0x80000000u), lma = !!(efer & 0x400);

	put(kind == ENTRY_LONG ? "entry long" : kind == ENTRY_PVH ? "entry pvh" : "entry prot32");
	put(sizeof(void *) == 8 ? " guest64\n" : " guest32\n");
	put("cpu");
	field("pe", pe, 1);
	field("pg", pg, 1);
	field("lma", lma, 1);
	field("if", (es(ES_EFLAGS) >> 9) & 1, 1);
	field("cs", es(ES_CS), 4);
	field("ds", es(ES_DS), 4);
	field("es", es(ES_ES), 4);
	field("ss", es(ES_SS), 4);
	put("\n");
	if (kind == ENTRY_LONG) {
		check(pe && pg && lma, "64-bit entry not in long mode");
	} else {
		check(pe && !pg && !lma, "32-bit entry not in protected mode with paging off");
		/* boot.rst: "%ebp, %edi and %ebx must be zero"; PVH: ebx is
		 * the start info.  Printed for both. */
		put("regs");
		field("ebx", es(ES_EBX), 8);
		field("esi", es(ES_ESI), 8);
		field("edi", es(ES_EDI), 8);
		field("ebp", es(ES_EBP), 8);
		put("\n");
	}
	check(!(es(ES_EFLAGS) & 0x200), "interrupts enabled at entry");
	check(es(ES_CS) == 0x10 || kind == ENTRY_PVH, "CS is not __BOOT_CS (0x10)");
}

static void report_cmdline(uint64_t addr)
{
	unsigned n = 0;

	while (n < 65536 && phys(addr)[n])
		n++;
	put("cmdline");
	field("addr", addr, 8);
	field("len", n, 4);
	put(" \"");
	for (unsigned i = 0; i < n; i++)
		outb(0xe9, phys(addr)[i]);
	put("\"\n");
}

/* FNV-1a, 32 bits: the test computes it over the file it passed. */
static uint32_t fnv1a(uint64_t addr, uint64_t size)
{
	uint32_t h = 2166136261u;

	for (uint64_t i = 0; i < size; i++)
		h = (h ^ phys(addr)[i]) * 16777619u;
	return h;
}

static void report_initrd(uint64_t addr, uint64_t size)
{
	uint32_t h = fnv1a(addr, size);

	put("initrd");
	field("addr", addr, 8);
	field("size", size, 8);
	field("fnv1a", h, 8);
	put("\n");
}

static void report_zero_page(uint64_t zp)
{
	uint64_t n = rd(zp + 0x1e8, 1);

	put("zero_page");
	field("addr", zp, 8);
	put("\n");
	put("hdr");
	field("boot_flag", rd(zp + 0x1fe, 2), 4);
	field("header", rd(zp + 0x202, 4), 8);
	field("version", rd(zp + 0x206, 2), 4);
	field("type_of_loader", rd(zp + 0x210, 1), 2);
	field("loadflags", rd(zp + 0x211, 1), 2);
	field("heap_end_ptr", rd(zp + 0x224, 2), 4);
	field("vid_mode", rd(zp + 0x1fa, 2), 4);
	field("code32_start", rd(zp + 0x214, 4), 8);
	field("cmd_line_ptr", rd(zp + 0x228, 4), 8);
	field("cmdline_size", rd(zp + 0x238, 4), 8);
	field("ramdisk_image", rd(zp + 0x218, 4), 8);
	field("ramdisk_size", rd(zp + 0x21c, 4), 8);
	put("\n");
	put("ext");
	field("ramdisk_image", rd(zp + 0x0c0, 4), 8);
	field("ramdisk_size", rd(zp + 0x0c4, 4), 8);
	field("cmd_line_ptr", rd(zp + 0x0c8, 4), 8);
	put("\n");
	put("acpi");
	field("rsdp_addr", rd(zp + 0x070, 8), 16);
	put("\n");
	/* The whole setup header area, so that the test sees what the
	 * loader copied from the file and what it wrote, byte for byte. */
	put("hdr_bytes ");
	for (unsigned off = 0x1f1; off < 0x290; off++)
		hex(rd(zp + off, 1), 2);
	put("\n");
	put("e820");
	field("entries", n, 2);
	put("\n");
	for (uint64_t i = 0; i < n && i < 128; i++) {
		uint64_t e = zp + 0x2d0 + 20 * i;

		put("e820");
		field("addr", rd(e, 8), 16);
		field("size", rd(e + 8, 8), 16);
		field("type", rd(e + 16, 4), 8);
		put("\n");
	}
	check(rd(zp + 0x1fe, 2) == 0xaa55, "boot_flag");
	check(rd(zp + 0x202, 4) == 0x53726448, "HdrS");
	check(rd(zp + 0x210, 1) == 0xff, "type_of_loader");
	check(rd(zp + 0x228, 4) != 0, "cmd_line_ptr");
	report_cmdline(rd(zp + 0x228, 4));
	report_initrd(rd(zp + 0x218, 4), rd(zp + 0x21c, 4));
}

static void report_start_info(uint64_t si)
{
	uint64_t nmod = rd(si + 12, 4), mods = rd(si + 16, 8);
	uint64_t mm = rd(si + 40, 8), nmm = rd(si + 48, 4);

	put("start_info");
	field("addr", si, 8);
	field("magic", rd(si, 4), 8);
	field("version", rd(si + 4, 4), 8);
	field("flags", rd(si + 8, 4), 8);
	field("nr_modules", nmod, 8);
	put("\n");
	put("start_info");
	field("modlist_paddr", mods, 16);
	field("cmdline_paddr", rd(si + 24, 8), 16);
	field("rsdp_paddr", rd(si + 32, 8), 16);
	field("memmap_paddr", mm, 16);
	field("memmap_entries", nmm, 8);
	field("reserved", rd(si + 52, 4), 8);
	put("\n");
	for (uint64_t i = 0; i < nmod && i < 16; i++) {
		uint64_t m = mods + 32 * i;

		put("module");
		field("paddr", rd(m, 8), 16);
		field("size", rd(m + 8, 8), 16);
		field("cmdline_paddr", rd(m + 16, 8), 16);
		field("reserved", rd(m + 24, 8), 16);
		put("\n");
	}
	for (uint64_t i = 0; i < nmm && i < 128; i++) {
		uint64_t e = mm + 24 * i;

		put("memmap");
		field("addr", rd(e, 8), 16);
		field("size", rd(e + 8, 8), 16);
		field("type", rd(e + 16, 4), 8);
		field("reserved", rd(e + 20, 4), 8);
		put("\n");
	}
	check(rd(si, 4) == 0x336ec578, "hvm_start_info magic");
	check(rd(si + 4, 4) >= 1, "hvm_start_info version");
	report_cmdline(rd(si + 24, 8));
	if (nmod)
		report_initrd(rd(mods, 8), rd(mods + 8, 8));
}

extern const char image_start[], image_ro_end[];

/* Whether the NUL-terminated command line at addr has word w. */
static int has_word(uint64_t addr, const char *w)
{
	for (unsigned i = 0; i < 4096 && phys(addr)[i]; i++) {
		unsigned n = 0;

		if (i && phys(addr)[i - 1] != ' ')
			continue;
		while (w[n] && phys(addr)[i + n] == (uint8_t)w[n])
			n++;
		if (!w[n] && (!phys(addr)[i + n] || phys(addr)[i + n] == ' '))
			return 1;
	}
	return 0;
}

static void __attribute__((noreturn)) watch(uint64_t zp)
{
	uint64_t image = (uintptr_t)image_start, size = image_ro_end - image_start;
	uint64_t initrd = rd(zp + 0x218, 4), initrd_size = rd(zp + 0x21c, 4);

	for (;;) {
		put("watch");
		field("image", image, 8);
		field("size", size, 8);
		field("fnv1a", fnv1a(image, size), 8);
		field("initrd_fnv1a", fnv1a(initrd, initrd_size), 8);
		put("\n");
	}
}

void boot_main(void)
{
	report_cpu();
	if (es(ES_KIND) == ENTRY_PVH) {
		report_start_info(es(ES_PTR));
	} else {
		report_zero_page(es(ES_PTR));
		if (!report_bad && has_word(rd(es(ES_PTR) + 0x228, 4), "watch"))
			watch(es(ES_PTR));
	}
	report_exit();
}
