// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Text in VHD files: the parent name is UTF-16BE, the Windows locator paths
 * UTF-16LE, MacX locators UTF-8.  Converted here rather than through
 * iconv(3): glibc's iconv loads its UTF-16 converter as a module
 * (gconv/UTF-16.so) with dlopen(), which a statically linked program (vsrv,
 * src/meson.build) can do only beside the very glibc it was linked with,
 * and which needs files a sandboxed VMM cannot open.  Both directions are
 * as strict as iconv's: an unpaired surrogate, an overlong or truncated
 * UTF-8 sequence, or a code point past U+10FFFF is -EILSEQ, and no BOM is
 * read or written (the format fixes the byte order).
 */
#include <errno.h>
#include <string.h>

#include "vhd-private.h"

static unsigned get16(const uint8_t *p, bool big_endian)
{
	return big_endian ? (unsigned)p[0] << 8 | p[1] : (unsigned)p[1] << 8 | p[0];
}

static void put16(uint8_t *p, unsigned v, bool big_endian)
{
	p[big_endian ? 0 : 1] = (uint8_t)(v >> 8);
	p[big_endian ? 1 : 0] = (uint8_t)v;
}

/* The code point at in[*i] (advanced past it), or -1 if not UTF-16. */
static long utf16_next(const uint8_t *in, size_t len, size_t *i, bool big_endian)
{
	unsigned hi = get16(in + *i, big_endian), lo;

	*i += 2;
	if (hi < 0xd800 || hi > 0xdfff)
		return hi;
	if (hi > 0xdbff || *i + 2 > len)
		return -1;
	lo = get16(in + *i, big_endian);
	if (lo < 0xdc00 || lo > 0xdfff)
		return -1;
	*i += 2;
	return 0x10000 + ((long)(hi - 0xd800) << 10) + (lo - 0xdc00);
}

/* The code point at in[*i] (advanced past it), or -1 if not UTF-8. */
static long utf8_next(const uint8_t *in, size_t len, size_t *i)
{
	static const long min[] = { 0, 0x80, 0x800, 0x10000 };
	unsigned c = in[*i], extra;
	long cp;

	if (c < 0x80) {
		(*i)++;
		return c;
	}
	if (c >= 0xc0 && c < 0xe0)
		extra = 1, cp = c & 0x1f;
	else if (c >= 0xe0 && c < 0xf0)
		extra = 2, cp = c & 0x0f;
	else if (c >= 0xf0 && c < 0xf8)
		extra = 3, cp = c & 0x07;
	else
		return -1;
	if (len - *i <= extra)
		return -1;
	for (unsigned k = 1; k <= extra; k++) {
		if ((in[*i + k] & 0xc0) != 0x80)
			return -1;
		cp = cp << 6 | (in[*i + k] & 0x3f);
	}
	if (cp < min[extra] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return -1;
	*i += extra + 1;
	return cp;
}

int vhd_utf16_to_utf8(const uint8_t *in, size_t in_len, bool big_endian,
		      char *out, size_t out_len)
{
	size_t n = 0, i = 0, o = 0;

	/* Stored strings are padded with NULs: stop at the first one. */
	while (n + 1 < in_len && (in[n] || in[n + 1]))
		n += 2;
	if (out_len == 0)
		return -ENAMETOOLONG;
	out[0] = '\0';
	while (i < n) {
		long cp = utf16_next(in, n, &i, big_endian);
		size_t need = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;

		if (cp < 0) {
			out[0] = '\0';
			return -EILSEQ;
		}
		if (o + need > out_len - 1) {
			out[0] = '\0';
			return -ENAMETOOLONG;
		}
		if (need == 1) {
			out[o++] = (char)cp;
			continue;
		}
		out[o++] = (char)((need == 2 ? 0xc0 : need == 3 ? 0xe0 : 0xf0) | cp >> (6 * (need - 1)));
		for (size_t k = need - 1; k > 0; k--)
			out[o++] = (char)(0x80 | ((cp >> (6 * (k - 1))) & 0x3f));
	}
	out[o] = '\0';
	return 0;
}

ssize_t vhd_utf8_to_utf16(const char *in, bool big_endian, uint8_t *out,
			  size_t out_len)
{
	const uint8_t *s = (const uint8_t *)in;
	size_t len = strlen(in), i = 0, o = 0;

	while (i < len) {
		long cp = utf8_next(s, len, &i);

		if (cp < 0)
			return -EILSEQ;
		if (o + (cp >= 0x10000 ? 4 : 2) > out_len)
			return -ENAMETOOLONG;
		if (cp >= 0x10000) {
			put16(out + o, 0xd800 + (unsigned)((cp - 0x10000) >> 10), big_endian);
			put16(out + o + 2, 0xdc00 + (unsigned)((cp - 0x10000) & 0x3ff), big_endian);
			o += 4;
		} else {
			put16(out + o, (unsigned)cp, big_endian);
			o += 2;
		}
	}
	return (ssize_t)o;
}
