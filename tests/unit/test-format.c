// SPDX-License-Identifier: GPL-2.0-or-later
/* The on-disk codecs: footer and header round trips, checksums, geometry,
 * timestamps, sizes and text conversions. */
#include <errno.h>
#include <iconv.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "vhd-private.h"

static void test_footer_roundtrip(void **state)
{
	struct vhd_footer f, g;
	memset(&f, 0, sizeof(f));
	memset(&g, 0, sizeof(g));
	uint8_t buf[512];

	memcpy(f.cookie, VHD_COOKIE, 8);
	f.features = 2;
	f.version = VHD_VERSION;
	f.data_offset = 512;
	f.timestamp = 0x12345678;
	memcpy(f.creator_app, "win ", 4);
	f.current_size = f.original_size = 10ull << 30;
	f.cylinders = 20805;
	f.heads = 16;
	f.sectors = 63;
	f.type = VHD_TYPE_DYNAMIC;
	memset(f.uuid, 0xab, 16);
	vhd_footer_encode(&f, buf);
	/* Exact bytes at the specification's offsets, big-endian. */
	assert_memory_equal(buf, "conectix", 8);
	assert_int_equal(buf[11], 2);
	assert_int_equal(buf[13], 1);
	assert_int_equal(buf[23], 0x00);
	assert_int_equal(buf[22], 0x02);	/* data offset 512 */
	assert_memory_equal(buf + 24, "\x12\x34\x56\x78", 4);
	assert_memory_equal(buf + 28, "win ", 4);
	assert_memory_equal(buf + 48, "\x00\x00\x00\x02\x80\x00\x00\x00", 8);
	assert_memory_equal(buf + 56, "\x51\x45\x10\x3f", 4);
	assert_int_equal(buf[63], 3);
	vhd_footer_decode(&g, buf);
	assert_int_equal(g.checksum, vhd_footer_checksum(buf));
	g.checksum = 0;
	assert_memory_equal(&f, &g, sizeof(f));
	/* One's complement of the byte sum without the field. */
	uint32_t sum = 0;

	for (int i = 0; i < 512; i++)
		if (i < 64 || i >= 68)
			sum += buf[i];
	assert_int_equal(vhd_footer_checksum(buf), ~sum);
}

static void test_header_roundtrip(void **state)
{
	struct vhd_header h, g;
	memset(&h, 0, sizeof(h));
	memset(&g, 0, sizeof(g));
	uint8_t buf[1024];

	memcpy(h.cookie, VHD_HDR_COOKIE, 8);
	h.data_offset = UINT64_MAX;
	h.table_offset = 1536;
	h.version = VHD_VERSION;
	h.max_entries = 5120;
	h.block_size = 2u << 20;
	h.parent_timestamp = 77;
	h.loc[7].code = VHD_PLAT_W2KU;
	h.loc[7].data_space = 512;
	h.loc[7].data_len = 30;
	h.loc[7].data_off = 0x1234567;
	vhd_header_encode(&h, buf);
	assert_memory_equal(buf + 16, "\0\0\0\0\0\0\x06\x00", 8);
	assert_memory_equal(buf + 576 + 7 * 24, "W2ku", 4);
	vhd_header_decode(&g, buf);
	assert_int_equal(g.checksum, vhd_header_checksum(buf));
	g.checksum = 0;
	assert_memory_equal(&h, &g, sizeof(h));
}

static void test_geometry(void **state)
{
	uint16_t c;
	uint8_t h, s;

	/* Values from the specification's algorithm, as Hyper-V writes. */
	vhd_geometry(10ull << 30, &c, &h, &s);
	assert_int_equal(c, 20805); assert_int_equal(h, 16); assert_int_equal(s, 63);
	vhd_geometry(1000ull << 20, &c, &h, &s);
	assert_int_equal(c, 2031); assert_int_equal(h, 16); assert_int_equal(s, 63);
	vhd_geometry(104448, &c, &h, &s);
	assert_int_equal(c, 3); assert_int_equal(h, 4); assert_int_equal(s, 17);
	vhd_geometry(4194304, &c, &h, &s);	/* fat-differential.vhd */
	assert_int_equal(c, 120); assert_int_equal(h, 4); assert_int_equal(s, 17);
	vhd_geometry(2040ull << 30, &c, &h, &s);
	assert_int_equal(c, 65535); assert_int_equal(h, 16); assert_int_equal(s, 255);
}

static void test_time_and_sizes(void **state)
{
	uint64_t v;

	assert_int_equal(vhd_time_to_unix(0), 946684800);
	assert_int_equal(vhd_time_from_unix(946684800 + 5), 5);
	assert_int_equal(vhd_time_from_unix(5), 0);
	assert_int_equal(vhd_parse_size("10G", &v), 0);
	assert_int_equal(v, 10ull << 30);
	assert_int_equal(vhd_parse_size("1000M", &v), 0);
	assert_int_equal(v, 1000ull << 20);
	assert_int_equal(vhd_parse_size("512", &v), 0);
	assert_int_equal(v, 512);
	assert_int_equal(vhd_parse_size("2TiB", &v), 0);
	assert_int_equal(v, 2ull << 40);
	assert_int_equal(vhd_parse_size("4k", &v), 0);
	assert_int_equal(v, 4096);
	assert_int_equal(vhd_parse_size("10X", &v), -EINVAL);
	assert_int_equal(vhd_parse_size("-1", &v), -EINVAL);
	assert_int_equal(vhd_parse_size("", &v), -EINVAL);
	assert_int_equal(vhd_parse_size("99999999999999999999", &v), -ERANGE);
	assert_int_equal(vhd_parse_size("99999999999T", &v), -ERANGE);
}

static void test_utf16(void **state)
{
	uint8_t buf[64] = { 0 };
	char out[64];
	ssize_t n = vhd_utf8_to_utf16("C:\\d\xc3\xa9.vhd", true, buf, sizeof(buf));

	assert_int_equal(n, 18);
	assert_memory_equal(buf, "\0C\0:\0\\\0d\0\xe9", 10);
	assert_int_equal(vhd_utf16_to_utf8(buf, sizeof(buf), true, out, sizeof(out)), 0);
	assert_string_equal(out, "C:\\d\xc3\xa9.vhd");
	n = vhd_utf8_to_utf16(".\\a", false, buf, sizeof(buf));
	assert_int_equal(n, 6);
	assert_memory_equal(buf, ".\0\\\0a\0", 6);
	assert_int_equal(vhd_utf8_to_utf16("abc", false, buf, 4), -ENAMETOOLONG);
}

/* Beyond the BMP, and what is not text: as strict as iconv (below). */
static void test_utf16_edges(void **state)
{
	uint8_t buf[16] = { 0 };
	char out[8];

	/* U+1F600: a surrogate pair each way. */
	assert_int_equal(vhd_utf8_to_utf16("\xf0\x9f\x98\x80", true, buf, sizeof(buf)), 4);
	assert_memory_equal(buf, "\xd8\x3d\xde\x00", 4);
	assert_int_equal(vhd_utf16_to_utf8(buf, 4, true, out, sizeof(out)), 0);
	assert_string_equal(out, "\xf0\x9f\x98\x80");
	assert_int_equal(vhd_utf8_to_utf16("\xf0\x9f\x98\x80", false, buf, 3), -ENAMETOOLONG);
	/* Exactly room for 4 bytes and the NUL, and one short of it. */
	assert_int_equal(vhd_utf16_to_utf8(buf, 4, true, out, 5), 0);
	assert_int_equal(vhd_utf16_to_utf8(buf, 4, true, out, 4), -ENAMETOOLONG);
	assert_string_equal(out, "");
	/* A lone high surrogate, a lone low one. */
	assert_int_equal(vhd_utf16_to_utf8((const uint8_t *)"\xd8\x3d\x00\x41", 4, true, out,
					   sizeof(out)), -EILSEQ);
	assert_int_equal(vhd_utf16_to_utf8((const uint8_t *)"\x00\xdc", 2, false, out,
					   sizeof(out)), -EILSEQ);
	/* Overlong, truncated, an encoded surrogate, past U+10FFFF, a
	 * stray continuation byte. */
	assert_int_equal(vhd_utf8_to_utf16("\xc0\x80", true, buf, sizeof(buf)), -EILSEQ);
	assert_int_equal(vhd_utf8_to_utf16("a\xe2\x82", true, buf, sizeof(buf)), -EILSEQ);
	assert_int_equal(vhd_utf8_to_utf16("\xed\xa0\x80", true, buf, sizeof(buf)), -EILSEQ);
	assert_int_equal(vhd_utf8_to_utf16("\xf4\x90\x80\x80", true, buf, sizeof(buf)), -EILSEQ);
	assert_int_equal(vhd_utf8_to_utf16("\x80", true, buf, sizeof(buf)), -EILSEQ);
}

/* libvhd converts by itself (utf.c says why); iconv is the reference:
 * random UTF-16 with surrogates in odd places, and random bytes as
 * UTF-8, converted by both, agree on success and on every byte. */
static void test_utf16_against_iconv(void **state)
{
	uint32_t seed = 12345;

	for (int round = 0; round < 20000; round++) {
		uint8_t in[16], ours16[64], ref16[64];
		char ours[64], ref[64], in8[9];
		unsigned units = 1 + round % 8;
		iconv_t cd;
		char *ip, *op;
		size_t il, ol, r;
		ssize_t n;
		int rc;

		for (unsigned k = 0; k < units; k++) {
			unsigned v;

			seed = seed * 1103515245 + 12345;
			v = seed >> 8;
			/* Mostly surrogates and small code points. */
			v = (v & 3) == 0 ? 0xd800 + (v >> 2) % 0x800 :
			    (v & 3) == 1 ? 1 + (v >> 2) % 0x7f : 1 + (v >> 2) % 0xffff;
			in[2 * k] = (uint8_t)v;
			in[2 * k + 1] = (uint8_t)(v >> 8);
			if (!in[2 * k] && !in[2 * k + 1])
				in[2 * k] = 1;
		}
		rc = vhd_utf16_to_utf8(in, 2 * units, false, ours, sizeof(ours));
		cd = iconv_open("UTF-8", "UTF-16LE");
		assert_true(cd != (iconv_t)-1);
		ip = (char *)in, il = 2 * units, op = ref, ol = sizeof(ref) - 1;
		r = iconv(cd, &ip, &il, &op, &ol);
		iconv_close(cd);
		if (r == (size_t)-1) {
			assert_int_equal(rc, -EILSEQ);
		} else {
			*op = 0;
			assert_int_equal(rc, 0);
			assert_string_equal(ours, ref);
		}

		for (unsigned k = 0; k < 8; k++) {
			seed = seed * 1103515245 + 12345;
			in8[k] = (char)((seed >> 16) | 1);
		}
		in8[1 + round % 8] = 0;
		n = vhd_utf8_to_utf16(in8, true, ours16, sizeof(ours16));
		cd = iconv_open("UTF-16BE", "UTF-8");
		assert_true(cd != (iconv_t)-1);
		ip = in8, il = strlen(in8), op = (char *)ref16, ol = sizeof(ref16);
		r = iconv(cd, &ip, &il, &op, &ol);
		iconv_close(cd);
		if (r == (size_t)-1) {
			assert_int_equal(n, -EILSEQ);
		} else {
			assert_int_equal(n, (ssize_t)(sizeof(ref16) - ol));
			assert_memory_equal(ours16, ref16, (size_t)n);
		}
	}
}

static void test_locator_space(void **state)
{
	struct vhd_locator l = { .data_space = 1, .data_len = 30 };

	assert_int_equal(vhd_locator_space_bytes(&l), 512);	/* sectors */
	l.data_space = 512;
	assert_int_equal(vhd_locator_space_bytes(&l), 512);	/* bytes */
	l.data_space = 2;
	l.data_len = 600;
	assert_int_equal(vhd_locator_space_bytes(&l), 1024);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_footer_roundtrip),
		cmocka_unit_test(test_header_roundtrip),
		cmocka_unit_test(test_geometry),
		cmocka_unit_test(test_time_and_sizes),
		cmocka_unit_test(test_utf16),
		cmocka_unit_test(test_utf16_edges),
		cmocka_unit_test(test_utf16_against_iconv),
		cmocka_unit_test(test_locator_space),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
