// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * bzImage: the setup header at offset 0x1f1 says where the protected-mode
 * kernel starts in the file, where it wants to be loaded and which
 * entries it has.  vsrv has no BIOS, so it never runs the real-mode setup
 * code: it enters the kernel through the 32-bit or 64-bit boot protocol
 * (Documentation/x86/boot.rst) with a zero page it fills itself.
 *
 * Protocol versions: 2.06 (Linux 2.6.22, 2007) and later.  Below 2.06
 * there is no cmdline_size, and a protected-mode entry without the
 * real-mode code that fills the zero page was not yet something loaders
 * did.  The 64-bit entry needs 2.12+ (xloadflags' XLF_KERNEL_64); older
 * 64-bit kernels are entered at their 32-bit entry, which switches to
 * long mode itself.  Later versions only append fields, so anything
 * newer than 2.15 is read as 2.15.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <asm/bootparam.h>

#include "boot.h"

#define HDR_OFFSET		0x1f1
#define HDR_MAGIC		0x53726448u	/* "HdrS" at 0x202 */
#define HDR_END_MAX		0x290		/* boot_params.hdr's room */
#define HDR_END(field)		(HDR_OFFSET + offsetof(struct setup_header, field) + \
				 sizeof(((struct setup_header *)0)->field))
/* Real-mode code is at most 32 KiB: the boot sector and 63 sectors. */
#define SETUP_SECTS_MAX		63
/* boot.rst's example for 2.02+: the setup heap ends at 0xe000 from the
 * start of the real-mode code.  vsrv runs no real-mode code, but
 * CAN_USE_HEAP with heap_end_ptr is what a complete loader writes. */
#define HEAP_END		0xe000
#define NORMAL_VGA		0xffff

bool boot_is_bzimage(const uint8_t *data, size_t len)
{
	/* Either mark makes it a candidate: the loader then says which part
	 * is missing rather than "not a kernel". */
	return len >= 0x206 && ((data[0x1fe] == 0x55 && data[0x1ff] == 0xaa) ||
				!memcmp(data + 0x202, "HdrS", 4));
}

static uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) & ~(a - 1);
}

/* Reads and checks the setup header into bp->hdr. */
static int read_header(const char *path, const uint8_t *data, size_t len,
		       struct boot_params *bp, char *err, size_t errlen)
{
	struct setup_header *h = &bp->hdr;
	size_t end = 0x202 + (size_t)data[0x201];
	uint16_t v;

	memcpy(&h->boot_flag, data + 0x1fe, 2);
	memcpy(&h->header, data + 0x202, 4);
	if (h->header != HDR_MAGIC) {
		snprintf(err, errlen, "%s: not a bzImage: no \"HdrS\" setup header at offset 0x202",
			 path);
		return -ENOEXEC;
	}
	if (h->boot_flag != 0xaa55) {
		snprintf(err, errlen, "%s: not a bzImage: boot_flag is 0x%04x, not 0xaa55",
			 path, h->boot_flag);
		return -ENOEXEC;
	}
	memcpy(&v, data + 0x206, 2);
	if (v < 0x0206) {
		snprintf(err, errlen,
			 "%s: boot protocol %u.%02u is too old: vsrv enters kernels of protocol 2.06 (Linux 2.6.22) or later",
			 path, v >> 8, v & 0xff);
		return -ENOEXEC;
	}
	/* The jump at 0x200 is the header's length; it must cover the
	 * fields its version has, and fit the file and boot_params. */
	if (end < (v >= 0x020a ? HDR_END(init_size) : HDR_END(cmdline_size)) ||
	    end > HDR_END_MAX || end > len) {
		snprintf(err, errlen, "%s: the setup header ends at 0x%zx, %s", path, end,
			 end > len ? "past the end of the file" :
			 end > HDR_END_MAX ? "past the room boot_params has for it (0x290)" :
			 "before the fields of its protocol version");
		return -ENOEXEC;
	}
	memcpy(h, data + HDR_OFFSET, end - HDR_OFFSET);
	return 0;
}

int boot_load_bzimage(struct vm *vm, const struct boot_opts *o, struct boot_file *f,
		      struct boot_info *bi, char *err, size_t errlen)
{
	struct boot_params *bp = vm_gpa(vm, BOOT_ZERO_PAGE, sizeof(*bp));
	const uint8_t *data = f->data;
	size_t len = f->len;
	struct setup_header *h = &bp->hdr;
	const char *path = o->kernel;
	uint64_t setup, ksize, load, runtime, need, align;
	bool kernel64;
	int r;

	memset(bp, 0, sizeof(*bp));
	r = read_header(path, data, len, bp, err, errlen);
	if (r < 0)
		return r;
	setup = (h->setup_sects ? h->setup_sects : 4) + 1ull;
	if (setup - 1 > SETUP_SECTS_MAX) {
		snprintf(err, errlen,
			 "%s: setup_sects is %u; real-mode code is at most %u sectors (32 KiB)",
			 path, h->setup_sects, SETUP_SECTS_MAX);
		return -ENOEXEC;
	}
	setup *= 512;
	ksize = (uint64_t)h->syssize * 16;
	if (!(h->loadflags & LOADED_HIGH)) {
		snprintf(err, errlen, "%s: a zImage (LOADED_HIGH clear): only bzImage kernels boot",
			 path);
		return -ENOEXEC;
	}
	if (!ksize || setup > len || ksize > len - setup) {
		snprintf(err, errlen,
			 "%s: truncated: the setup header says %llu bytes of kernel follow %llu bytes of setup, the file has %zu bytes",
			 path, (unsigned long long)ksize, (unsigned long long)setup, len);
		return -ENOEXEC;
	}
	kernel64 = h->version >= 0x020c && (h->xloadflags & XLF_KERNEL_64);
	if (o->entry == BOOT_ENTRY_PVH) {
		snprintf(err, errlen,
			 "%s: --boot pvh: a bzImage has no PVH entry; boot the vmlinux ELF instead",
			 path);
		return -ENOEXEC;
	}
	if (o->entry == BOOT_ENTRY_LINUX64 && !kernel64) {
		snprintf(err, errlen,
			 "%s: --boot linux64: this bzImage has no 64-bit entry (XLF_KERNEL_64 is clear)",
			 path);
		return -ENOEXEC;
	}

	/* Where: a relocatable kernel at its preferred address rounded up
	 * to its alignment; any other at 1 MiB, from where it moves itself
	 * to pref_address (its runtime start) before it decompresses. */
	load = BOOT_HIGH_START;
	runtime = load;
	if (h->version >= 0x020a && h->pref_address > runtime)
		runtime = h->pref_address;
	if (h->relocatable_kernel) {
		align = h->kernel_alignment;
		if (!align || (align & (align - 1))) {
			snprintf(err, errlen, "%s: kernel_alignment 0x%llx is not a power of two",
				 path, (unsigned long long)align);
			return -ENOEXEC;
		}
		if (runtime < VM_MMIO_HOLE_START)
			runtime = align_up(runtime, align);
		load = runtime;
	}
	/* It needs init_size bytes from its runtime start to decompress and
	 * run until it reads the memory map (2.10+; the file's size before). */
	need = h->version >= 0x020a && h->init_size > ksize ? h->init_size : ksize;
	if (runtime >= VM_MMIO_HOLE_START || runtime + need > vm->ram_below_4g ||
	    load + ksize > vm->ram_below_4g) {
		snprintf(err, errlen,
			 "%s: the kernel needs guest memory up to 0x%llx (%llu bytes from 0x%llx) but RAM below 4 GiB ends at 0x%llx (raise --memory)",
			 path, (unsigned long long)(runtime + need), (unsigned long long)need,
			 (unsigned long long)runtime, (unsigned long long)vm->ram_below_4g);
		return -ENOSPC;
	}
	/* The loader's part of the header (boot.rst, "write" fields). */
	h->vid_mode = NORMAL_VGA;
	h->type_of_loader = 0xff;
	h->loadflags |= CAN_USE_HEAP;
	h->heap_end_ptr = HEAP_END - 0x200;
	h->code32_start = (uint32_t)load;
	h->ext_loader_ver = 0;
	h->ext_loader_type = 0;
	h->setup_data = 0;

	bi->mode = kernel64 ? BOOT_LONG : BOOT_PROT32;
	bi->entry = kernel64 ? load + 0x200 : load;
	bi->kernel_start = load;
	bi->kernel_end = runtime + need > load + ksize ? runtime + need : load + ksize;
	bi->initrd_addr_max = h->initrd_addr_max;
	bi->cmdline_max = h->cmdline_size;
	bi->format = "bzImage";
	boot_describe(bi, "format bzImage\nprotocol %u.%02u\nsetup_sects %u\nsyssize 0x%x\n"
		      "relocatable %u\nkernel_alignment 0x%x\npref_address 0x%llx\n"
		      "init_size 0x%x\nxloadflags 0x%x\ninitrd_addr_max 0x%x\ncmdline_size %u\n",
		      h->version >> 8, h->version & 0xff, h->setup_sects, h->syssize,
		      h->relocatable_kernel, h->kernel_alignment,
		      (unsigned long long)h->pref_address, h->init_size, h->xloadflags,
		      h->initrd_addr_max, h->cmdline_size);
	/* kernel_version points (less 0x200) at a string in the setup code. */
	if (h->kernel_version && h->kernel_version + 0x200ull < setup) {
		const char *s = (const char *)data + h->kernel_version + 0x200;
		size_t room = setup - (h->kernel_version + 0x200ull);
		size_t n = strnlen(s, room);

		if (n < room)
			boot_describe(bi, "kernel_version %s\n", s);
	}
	/* Its protected-mode code follows the setup sectors, at (setup_sects
	 * + 1) * 512 in the file: mapped where that agrees with the load
	 * address modulo the page size (boot_split()), copied where not.
	 * Linux's own build pads the setup to whole pages (Debian's 6.1 and
	 * the project's guest have 39 and 31 sectors: 20 and 16 KiB); older
	 * kernels and the tests' fake ones (4 sectors) are copied. */
	return boot_place(vm, bi, f, "the protected-mode kernel", setup, ksize, ksize, load, err,
			  errlen);
}
