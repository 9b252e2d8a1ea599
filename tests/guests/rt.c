// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The micro-guest runtime: descriptor tables, page tables, exception
 * reports, printing and the command line.  Everything here runs at CPL0,
 * which this project's test hosts emulate one instruction at a time
 * (about a microsecond each), so it does as little as it can.
 */
#include "guest.h"

#define PTE_P		0x1ull
#define PTE_W		0x2ull
#define PTE_U		0x4ull
#define PTE_PS		0x80ull

uint64_t rt_zero_page;
uint8_t rt_boot_stack[16384] __attribute__((aligned(16)));
uint8_t rt_user_stack[16384] __attribute__((aligned(16)));
/* Interrupts and exceptions from CPL3 switch to this stack (TSS.rsp0). */
static uint8_t rt_kernel_stack[16384] __attribute__((aligned(16)));

uint64_t rt_pml4[512] __attribute__((aligned(4096)));
static uint64_t rt_pdpt[512] __attribute__((aligned(4096)));
static uint64_t rt_pd[4][512] __attribute__((aligned(4096)));

struct tss {
	uint32_t reserved0;
	uint64_t rsp[3];
	uint64_t reserved1;
	uint64_t ist[7];
	uint64_t reserved2;
	uint16_t reserved3, iopb;
	uint8_t bitmap[8192 + 1];	/* I/O permissions: 0 allows */
} __attribute__((packed));

static struct tss rt_tss;

/*
 * null; kernel code and data; user data and code (DPL3); the TSS (two
 * slots); 32-bit code, 16-bit code and data for guests that leave long
 * mode.
 */
static uint64_t rt_gdt[10] __attribute__((aligned(16))) = {
	0,
	0x00af9a000000ffffull,	/* 0x08 kernel code, 64-bit */
	0x00cf92000000ffffull,	/* 0x10 kernel data */
	0x00cff2000000ffffull,	/* 0x18 user data */
	0x00affa000000ffffull,	/* 0x20 user code, 64-bit */
	0, 0,			/* 0x28 TSS */
	0x00cf9a000000ffffull,	/* 0x38 code, 32-bit */
	0x00009a000000ffffull,	/* 0x40 code, 16-bit, 64 KiB */
	0x000092000000ffffull,	/* 0x48 data, 16-bit, 64 KiB */
};

struct idt_gate {
	uint16_t off0, sel;
	uint8_t ist, type;
	uint16_t off1;
	uint32_t off2, reserved;
};

static struct idt_gate rt_idt[256] __attribute__((aligned(16)));
static trap_handler handlers[256];

__typeof__(rt_gdtr) rt_gdtr, rt_idtr;

extern const uint8_t rt_stubs[];
void rt_load_segments(void);
void rt_init(void);
void rt_trap(struct trap_frame *f);
void __attribute__((noreturn)) rt_exit(int status);

static const char *const exc_names[32] = {
	"#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "?",
	"#TS", "#NP", "#SS", "#GP", "#PF", "?", "#MF", "#AC", "#MC", "#XM",
	"#VE", "#CP",
};

void rt_exit(int status)
{
	guest_exit((uint32_t)status);
}

static void put_num(uint64_t v, unsigned base, int width, char pad)
{
	char buf[24];
	int n = 0;

	do {
		buf[n++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v);
	while (n < width--)
		outb(DEBUG_PORT, (uint8_t)pad);
	while (n)
		outb(DEBUG_PORT, (uint8_t)buf[--n]);
}

/* %s %c %d %u %x with l/ll and a zero-padded width: what tests print. */
void rt_printf(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	for (; *fmt; fmt++) {
		int width = 0, longs = 0;
		char pad = ' ';
		uint64_t v;

		if (*fmt != '%') {
			outb(DEBUG_PORT, (uint8_t)*fmt);
			continue;
		}
		fmt++;
		if (*fmt == '0')
			pad = '0';
		while (*fmt >= '0' && *fmt <= '9')
			width = width * 10 + (*fmt++ - '0');
		while (*fmt == 'l') {
			longs++;
			fmt++;
		}
		switch (*fmt) {
		case 's':
			puts_dbg(va_arg(ap, const char *));
			break;
		case 'c':
			outb(DEBUG_PORT, (uint8_t)va_arg(ap, int));
			break;
		case 'd': {
			int64_t s = longs ? va_arg(ap, int64_t) : va_arg(ap, int);

			if (s < 0) {
				outb(DEBUG_PORT, '-');
				s = -s;
			}
			put_num((uint64_t)s, 10, width, pad);
			break;
		}
		case 'u':
		case 'x':
			v = longs ? va_arg(ap, uint64_t) : va_arg(ap, unsigned);
			put_num(v, *fmt == 'u' ? 10 : 16, width, pad);
			break;
		case '%':
			outb(DEBUG_PORT, '%');
			break;
		default:
			return;
		}
	}
	va_end(ap);
}

bool rt_streq(const char *a, const char *b)
{
	while (*a && *a == *b) {
		a++;
		b++;
	}
	return *a == *b;
}

static const char *cmdline(void)
{
	/* boot_params.hdr.cmd_line_ptr, at 0x228 in the zero page. */
	if (!rt_zero_page)
		return "";
	return (const char *)(uintptr_t)*(volatile uint32_t *)(uintptr_t)(rt_zero_page + 0x228);
}

static const char *find_arg(const char *key)
{
	const char *s = cmdline();

	while (s && *s) {
		const char *k = key, *p = s;

		while (*k && *p == *k) {
			k++;
			p++;
		}
		if (!*k && *p == '=')
			return p + 1;
		while (*s && *s != ' ')
			s++;
		while (*s == ' ')
			s++;
	}
	return NULL;
}

const char *rt_arg_str(const char *key, char *buf, unsigned len)
{
	const char *v = find_arg(key);
	unsigned n = 0;

	if (!v)
		return NULL;
	while (v[n] && v[n] != ' ' && n + 1 < len) {
		buf[n] = v[n];
		n++;
	}
	buf[n] = 0;
	return buf;
}

uint64_t rt_arg(const char *key, uint64_t def)
{
	const char *v = find_arg(key);
	uint64_t n = 0;
	unsigned base = 10;

	if (!v)
		return def;
	if (v[0] == '0' && v[1] == 'x') {
		base = 16;
		v += 2;
	}
	for (;; v++) {
		unsigned d;

		if (*v >= '0' && *v <= '9')
			d = (unsigned)(*v - '0');
		else if (base == 16 && *v >= 'a' && *v <= 'f')
			d = (unsigned)(*v - 'a' + 10);
		else
			break;
		n = n * base + d;
	}
	return n;
}

void rt_set_handler(unsigned vector, trap_handler h)
{
	handlers[vector & 255] = h;
}

void rt_set_user_gate(unsigned vector)
{
	rt_idt[vector & 255].type = 0xee;	/* present, DPL3, interrupt gate */
}

void rt_trap(struct trap_frame *f)
{
	trap_handler h = handlers[f->vector & 255];

	if (h) {
		h(f);
		return;
	}
	if (f->vector < 32) {
		rt_printf("exception %lu (%s) at rip=%lx error=%lx cpl=%lu rflags=%lx\n",
			  f->vector, exc_names[f->vector] ? exc_names[f->vector] : "?",
			  f->rip, f->error, f->cs & 3, f->rflags);
		rt_exit(STATUS_EXCEPTION + (int)f->vector);
	}
	rt_printf("unexpected interrupt %lu at rip=%lx\n", f->vector, f->rip);
	rt_exit(STATUS_INTERRUPT);
}

/*
 * 4 GiB identity-mapped in 2 MiB pages, every one user-accessible: code
 * at CPL3 does port I/O (IOPL=3) and MMIO directly.  The hole above 3 GiB
 * is uncached, as device memory is.
 */
static void setup_paging(void)
{
	rt_pml4[0] = (uintptr_t)rt_pdpt | PTE_P | PTE_W | PTE_U;
	for (int i = 0; i < 4; i++)
		rt_pdpt[i] = (uintptr_t)rt_pd[i] | PTE_P | PTE_W | PTE_U;
	for (uint64_t i = 0; i < 4 * 512; i++)
		rt_pd[i / 512][i % 512] = (i << 21) | PTE_P | PTE_W | PTE_U | PTE_PS |
					  (i >= 3 * 512 ? 0x18 : 0);	/* PCD|PWT */
	__asm__ volatile("mov %0, %%cr3" : : "r"((uintptr_t)rt_pml4) : "memory");
}

void rt_init(void)
{
	uint64_t tss = (uintptr_t)&rt_tss;

	setup_paging();
	rt_tss.rsp[0] = (uintptr_t)(rt_kernel_stack + sizeof(rt_kernel_stack));
	/* Every port allowed at CPL3, for hosts that ignore IOPL there; the
	 * bitmap ends with a byte of ones, as the architecture asks. */
	rt_tss.iopb = __builtin_offsetof(struct tss, bitmap);
	rt_tss.bitmap[8192] = 0xff;
	rt_gdt[5] = (sizeof(rt_tss) - 1) | ((tss & 0xffffff) << 16) | (0x89ull << 40) |
		    ((tss >> 24 & 0xff) << 56);
	rt_gdt[6] = tss >> 32;
	rt_gdtr.limit = sizeof(rt_gdt) - 1;
	rt_gdtr.base = (uintptr_t)rt_gdt;
	__asm__ volatile("lgdt %0" : : "m"(rt_gdtr));
	rt_load_segments();
	__asm__ volatile("ltr %w0" : : "r"(SEL_TSS));
	for (int i = 0; i < 256; i++) {
		uint64_t a = (uintptr_t)(rt_stubs + 16 * i);

		rt_idt[i] = (struct idt_gate){
			.off0 = (uint16_t)a, .sel = SEL_KCODE, .type = 0x8e,
			.off1 = (uint16_t)(a >> 16), .off2 = (uint32_t)(a >> 32),
		};
	}
	rt_idtr.limit = sizeof(rt_idt) - 1;
	rt_idtr.base = (uintptr_t)rt_idt;
	__asm__ volatile("lidt %0" : : "m"(rt_idtr));
}
