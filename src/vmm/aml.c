// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * AML encoding (ACPI 6.3, 20.2): just what vsrv's DSDT needs.  An object
 * with a PkgLength (Scope, Device, Package, Buffer) is opened, filled and
 * closed; closing moves its body up by the bytes its length takes, so
 * every length has its shortest encoding, as iasl writes it.
 */
#include <string.h>

#include "aml.h"

#define AML_ZERO	0x00
#define AML_ONE		0x01
#define AML_NAME	0x08
#define AML_BYTE	0x0a
#define AML_WORD	0x0b
#define AML_DWORD	0x0c
#define AML_STRING	0x0d
#define AML_QWORD	0x0e
#define AML_SCOPE	0x10
#define AML_BUFFER	0x11
#define AML_PACKAGE	0x12
#define AML_EXT		0x5b
#define AML_DEVICE	0x82	/* after AML_EXT */
#define AML_DUAL_NAME	0x2e
#define AML_MULTI_NAME	0x2f

void aml_init(struct aml *a, uint8_t *buf, size_t cap)
{
	memset(a, 0, sizeof(*a));
	a->buf = buf;
	a->cap = cap;
}

static void put(struct aml *a, const void *p, size_t n)
{
	if (a->error || n > a->cap - a->len) {
		a->error = true;
		return;
	}
	memcpy(a->buf + a->len, p, n);
	a->len += n;
}

static void put8(struct aml *a, uint8_t b)
{
	put(a, &b, 1);
}

static void put_le(struct aml *a, uint64_t v, unsigned bytes)
{
	while (bytes--) {
		put8(a, (uint8_t)v);
		v >>= 8;
	}
}

/* One NameSeg: up to four characters, padded with '_'. */
static void name_seg(struct aml *a, const char *s, size_t n)
{
	char seg[4] = { '_', '_', '_', '_' };

	if (n == 0 || n > 4) {
		a->error = true;
		return;
	}
	memcpy(seg, s, n);
	put(a, seg, 4);
}

void aml_name_string(struct aml *a, const char *path)
{
	const char *p = path;
	unsigned segs = 0;

	while (*p == '\\' || *p == '^')
		put8(a, (uint8_t)*p++);
	for (const char *q = p; *q; q++)
		segs += *q == '.';
	segs += *p != 0;
	if (segs == 0) {
		put8(a, 0);		/* NullName */
		return;
	}
	if (segs == 2) {
		put8(a, AML_DUAL_NAME);
	} else if (segs > 2) {
		put8(a, AML_MULTI_NAME);
		put8(a, (uint8_t)segs);
	}
	while (*p) {
		size_t n = strcspn(p, ".");

		name_seg(a, p, n);
		p += n + (p[n] == '.');
	}
}

void aml_integer(struct aml *a, uint64_t v)
{
	if (v == 0) {
		put8(a, AML_ZERO);
	} else if (v == 1) {
		put8(a, AML_ONE);
	} else if (v <= 0xff) {
		put8(a, AML_BYTE);
		put_le(a, v, 1);
	} else if (v <= 0xffff) {
		put8(a, AML_WORD);
		put_le(a, v, 2);
	} else if (v <= 0xffffffff) {
		put8(a, AML_DWORD);
		put_le(a, v, 4);
	} else {
		put8(a, AML_QWORD);
		put_le(a, v, 8);
	}
}

void aml_string(struct aml *a, const char *s)
{
	put8(a, AML_STRING);
	put(a, s, strlen(s) + 1);
}

/* "PNP0A08": three letters of five bits each ('A' is 1), four hex
 * digits; stored so that its bytes read in that order (6.1.5). */
void aml_eisaid(struct aml *a, const char *id)
{
	uint32_t v = 0;

	if (strlen(id) != 7) {
		a->error = true;
		return;
	}
	for (int i = 0; i < 3; i++)
		v = v << 5 | (uint32_t)((id[i] - 'A' + 1) & 0x1f);
	for (int i = 3; i < 7; i++) {
		char c = id[i];

		v = v << 4 | (uint32_t)(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
	}
	/* v is the id's 31 bits, most significant first under a clear bit
	 * 31; the bytes go in that order, read as a little-endian integer. */
	aml_integer(a, __builtin_bswap32(v));
}

static void open_pkg(struct aml *a)
{
	if (a->depth == AML_DEPTH) {
		a->error = true;
		return;
	}
	a->open[a->depth++] = a->len;
}

void aml_end(struct aml *a)
{
	size_t start, body, total;
	unsigned n;

	if (a->error || a->depth == 0) {
		a->error = true;
		return;
	}
	start = a->open[--a->depth];
	body = a->len - start;
	/* PkgLength counts itself: one byte up to 63, else a lead byte
	 * with the low nibble and up to three more (20.2.4). */
	for (n = 1; n <= 4; n++) {
		total = body + n;
		if (n == 1 ? total <= 0x3f : total < 1ull << (4 + 8 * (n - 1)))
			break;
	}
	if (n > 4 || n > a->cap - a->len) {
		a->error = true;
		return;
	}
	memmove(a->buf + start + n, a->buf + start, body);
	if (n == 1) {
		a->buf[start] = (uint8_t)total;
	} else {
		a->buf[start] = (uint8_t)((n - 1) << 6 | (total & 0x0f));
		for (unsigned i = 1; i < n; i++)
			a->buf[start + i] = (uint8_t)(total >> (4 + 8 * (i - 1)));
	}
	a->len += n;
}

void aml_buffer(struct aml *a, const uint8_t *data, size_t len)
{
	put8(a, AML_BUFFER);
	open_pkg(a);
	aml_integer(a, len);
	put(a, data, len);
	aml_end(a);
}

void aml_name(struct aml *a, const char *name)
{
	put8(a, AML_NAME);
	aml_name_string(a, name);
}

void aml_scope(struct aml *a, const char *path)
{
	put8(a, AML_SCOPE);
	open_pkg(a);
	aml_name_string(a, path);
}

void aml_device(struct aml *a, const char *name)
{
	put8(a, AML_EXT);
	put8(a, AML_DEVICE);
	open_pkg(a);
	aml_name_string(a, name);
}

void aml_package(struct aml *a, unsigned elements)
{
	put8(a, AML_PACKAGE);
	open_pkg(a);
	put8(a, (uint8_t)elements);
}

/* ---- resource descriptors (6.4) ---- */

static void res_put(struct aml_res *r, uint64_t v, unsigned bytes)
{
	if (r->error || bytes > sizeof(r->b) - r->len) {
		r->error = true;
		return;
	}
	while (bytes--) {
		r->b[r->len++] = (uint8_t)v;
		v >>= 8;
	}
}

void aml_res_io(struct aml_res *r, uint16_t port, uint8_t len)
{
	res_put(r, 0x47, 1);		/* small item 0x08, 7 bytes */
	res_put(r, 1, 1);		/* decodes 16 address bits */
	res_put(r, port, 2);		/* _MIN */
	res_put(r, port, 2);		/* _MAX */
	res_put(r, 1, 1);		/* _ALN */
	res_put(r, len, 1);		/* _LEN */
}

void aml_res_irq(struct aml_res *r, unsigned irq)
{
	res_put(r, 0x22, 1);		/* small item 0x04, 2 bytes: no flags */
	res_put(r, irq < 16 ? 1u << irq : 0, 2);
	if (irq >= 16)
		r->error = true;
}

void aml_res_mem32_fixed(struct aml_res *r, uint32_t base, uint32_t len)
{
	res_put(r, 0x86, 1);		/* large item 0x06 */
	res_put(r, 9, 2);
	res_put(r, 1, 1);		/* read/write */
	res_put(r, base, 4);
	res_put(r, len, 4);
}

/* General flags of an address space descriptor: _MAF, _MIF, positive
 * decode, produced (0 in bit 0: the bridge passes it on). */
#define RES_WINDOW	0x0c

static void word_window(struct aml_res *r, uint8_t type, uint8_t type_flags,
			uint16_t min, uint16_t max)
{
	res_put(r, 0x88, 1);		/* large item 0x08: Word Address Space */
	res_put(r, 13, 2);
	res_put(r, type, 1);
	res_put(r, RES_WINDOW, 1);
	res_put(r, type_flags, 1);
	res_put(r, 0, 2);		/* _GRA: 0 for a fixed window */
	res_put(r, min, 2);
	res_put(r, max, 2);
	res_put(r, 0, 2);		/* _TRA */
	res_put(r, (uint32_t)max - min + 1, 2);
}

void aml_res_bus_window(struct aml_res *r, uint16_t min, uint16_t max)
{
	word_window(r, 2, 0, min, max);
}

void aml_res_io_window(struct aml_res *r, uint16_t min, uint16_t max)
{
	word_window(r, 1, 3, min, max);	/* _RNG: ISA and non-ISA ranges */
}

void aml_res_mem_window(struct aml_res *r, uint32_t min, uint32_t max)
{
	res_put(r, 0x87, 1);		/* large item 0x07: DWord Address Space */
	res_put(r, 23, 2);
	res_put(r, 0, 1);		/* memory */
	res_put(r, RES_WINDOW, 1);
	res_put(r, 1, 1);		/* read/write, non-cacheable */
	res_put(r, 0, 4);		/* _GRA */
	res_put(r, min, 4);
	res_put(r, max, 4);
	res_put(r, 0, 4);		/* _TRA */
	res_put(r, (uint64_t)max - min + 1, 4);
}

void aml_res_end(struct aml_res *r)
{
	res_put(r, 0x79, 1);		/* small item 0x0f, 1 byte */
	res_put(r, 0, 1);		/* checksum 0: "treated as correct" */
}
