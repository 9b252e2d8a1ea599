// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Text in VHD files: the parent name is UTF-16BE, the Windows locator paths
 * UTF-16LE, MacX locators UTF-8.  Conversions go through glibc's iconv.
 */
#include <errno.h>
#include <iconv.h>
#include <string.h>

#include "vhd-private.h"

static ssize_t convert(const char *to, const char *from, const void *in,
		       size_t in_len, void *out, size_t out_len)
{
	iconv_t cd = iconv_open(to, from);
	char *ip = (char *)in, *op = out;
	size_t il = in_len, ol = out_len;
	size_t r;

	if (cd == (iconv_t)-1)
		return -errno;
	r = iconv(cd, &ip, &il, &op, &ol);
	iconv_close(cd);
	if (r == (size_t)-1)
		return errno == E2BIG ? -ENAMETOOLONG : -EILSEQ;
	return (ssize_t)(out_len - ol);
}

int vhd_utf16_to_utf8(const uint8_t *in, size_t in_len, bool big_endian,
		      char *out, size_t out_len)
{
	size_t n = 0;
	ssize_t r;

	/* Stored strings are padded with NULs: stop at the first one. */
	while (n + 1 < in_len && (in[n] || in[n + 1]))
		n += 2;
	if (out_len == 0)
		return -ENAMETOOLONG;
	r = convert("UTF-8", big_endian ? "UTF-16BE" : "UTF-16LE", in, n, out,
		    out_len - 1);
	if (r < 0) {
		out[0] = '\0';
		return (int)r;
	}
	out[r] = '\0';
	return 0;
}

ssize_t vhd_utf8_to_utf16(const char *in, bool big_endian, uint8_t *out,
			  size_t out_len)
{
	return convert(big_endian ? "UTF-16BE" : "UTF-16LE", "UTF-8", in,
		       strlen(in), out, out_len);
}
