// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The VHD on-disk structures: footer, dynamic disk header, checksums, CHS
 * geometry, timestamps and unique ids.  Everything on disk is big-endian.
 */
#include <endian.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "vhd-private.h"

static uint16_t get16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return be16toh(v); }
static uint32_t get32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return be32toh(v); }
static uint64_t get64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return be64toh(v); }
static void put16(uint8_t *p, uint16_t v) { v = htobe16(v); memcpy(p, &v, 2); }
static void put32(uint8_t *p, uint32_t v) { v = htobe32(v); memcpy(p, &v, 4); }
static void put64(uint8_t *p, uint64_t v) { v = htobe64(v); memcpy(p, &v, 8); }

/* The checksum is the one's complement of the byte sum of the structure
 * with its checksum field counted as zero. */
static uint32_t checksum(const uint8_t *buf, size_t len, size_t field)
{
	uint32_t sum = 0;

	for (size_t i = 0; i < len; i++) {
		if (i >= field && i < field + 4)
			continue;
		sum += buf[i];
	}
	return ~sum;
}

uint32_t vhd_footer_checksum(const uint8_t *buf)
{
	return checksum(buf, VHD_FOOTER_SIZE, 64);
}

uint32_t vhd_header_checksum(const uint8_t *buf)
{
	return checksum(buf, VHD_HEADER_SIZE, 36);
}

void vhd_footer_decode(struct vhd_footer *f, const uint8_t *b)
{
	memcpy(f->cookie, b, 8);
	f->features = get32(b + 8);
	f->version = get32(b + 12);
	f->data_offset = get64(b + 16);
	f->timestamp = get32(b + 24);
	memcpy(f->creator_app, b + 28, 4);
	f->creator_version = get32(b + 32);
	f->creator_os = get32(b + 36);
	f->original_size = get64(b + 40);
	f->current_size = get64(b + 48);
	f->cylinders = get16(b + 56);
	f->heads = b[58];
	f->sectors = b[59];
	f->type = get32(b + 60);
	f->checksum = get32(b + 64);
	memcpy(f->uuid, b + 68, 16);
	f->saved_state = b[84];
}

void vhd_footer_encode(const struct vhd_footer *f, uint8_t *b)
{
	memset(b, 0, VHD_FOOTER_SIZE);
	memcpy(b, f->cookie, 8);
	put32(b + 8, f->features);
	put32(b + 12, f->version);
	put64(b + 16, f->data_offset);
	put32(b + 24, f->timestamp);
	memcpy(b + 28, f->creator_app, 4);
	put32(b + 32, f->creator_version);
	put32(b + 36, f->creator_os);
	put64(b + 40, f->original_size);
	put64(b + 48, f->current_size);
	put16(b + 56, f->cylinders);
	b[58] = f->heads;
	b[59] = f->sectors;
	put32(b + 60, f->type);
	memcpy(b + 68, f->uuid, 16);
	b[84] = f->saved_state;
	put32(b + 64, vhd_footer_checksum(b));
}

void vhd_header_decode(struct vhd_header *h, const uint8_t *b)
{
	memcpy(h->cookie, b, 8);
	h->data_offset = get64(b + 8);
	h->table_offset = get64(b + 16);
	h->version = get32(b + 24);
	h->max_entries = get32(b + 28);
	h->block_size = get32(b + 32);
	h->checksum = get32(b + 36);
	memcpy(h->parent_uuid, b + 40, 16);
	h->parent_timestamp = get32(b + 56);
	memcpy(h->parent_name, b + 64, 512);
	for (int i = 0; i < VHD_NR_LOCATORS; i++) {
		const uint8_t *l = b + 576 + 24 * i;

		h->loc[i].code = get32(l);
		h->loc[i].data_space = get32(l + 4);
		h->loc[i].data_len = get32(l + 8);
		h->loc[i].data_off = get64(l + 16);
	}
}

void vhd_header_encode(const struct vhd_header *h, uint8_t *b)
{
	memset(b, 0, VHD_HEADER_SIZE);
	memcpy(b, h->cookie, 8);
	put64(b + 8, h->data_offset);
	put64(b + 16, h->table_offset);
	put32(b + 24, h->version);
	put32(b + 28, h->max_entries);
	put32(b + 32, h->block_size);
	memcpy(b + 40, h->parent_uuid, 16);
	put32(b + 56, h->parent_timestamp);
	memcpy(b + 64, h->parent_name, 512);
	for (int i = 0; i < VHD_NR_LOCATORS; i++) {
		uint8_t *l = b + 576 + 24 * i;

		put32(l, h->loc[i].code);
		put32(l + 4, h->loc[i].data_space);
		put32(l + 8, h->loc[i].data_len);
		put64(l + 16, h->loc[i].data_off);
	}
	put32(b + 36, vhd_header_checksum(b));
}

/*
 * CHS geometry from a size, as the specification's appendix computes it.
 * The geometry is informational for vsrv (the size is current_size), but
 * BIOSes and Virtual PC read it, so it must be what they expect.
 */
void vhd_geometry(uint64_t size, uint16_t *c, uint8_t *h, uint8_t *s)
{
	uint64_t total = size / VHD_SECTOR_SIZE;
	uint64_t cth, heads, spt;

	if (total > VHD_MAX_CHS_SECTORS)
		total = VHD_MAX_CHS_SECTORS;
	if (total >= 65535ull * 16 * 63) {
		spt = 255;
		heads = 16;
		cth = total / spt;
	} else {
		spt = 17;
		cth = total / spt;
		heads = (cth + 1023) / 1024;
		if (heads < 4)
			heads = 4;
		if (cth >= heads * 1024 || heads > 16) {
			spt = 31;
			heads = 16;
			cth = total / spt;
		}
		if (cth >= heads * 1024) {
			spt = 63;
			heads = 16;
			cth = total / spt;
		}
	}
	*c = (uint16_t)(cth / heads);
	*h = (uint8_t)heads;
	*s = (uint8_t)spt;
}

void vhd_uuid_generate(uint8_t uuid[16])
{
	size_t got = 0;

	while (got < 16) {
		ssize_t n = getrandom(uuid + got, 16 - got, 0);

		if (n > 0)
			got += (size_t)n;
	}
	uuid[6] = (uuid[6] & 0x0f) | 0x40;	/* version 4 */
	uuid[8] = (uuid[8] & 0x3f) | 0x80;	/* RFC 4122 variant */
}

uint32_t vhd_now(void)
{
	return vhd_time_from_unix((uint64_t)time(NULL));
}

uint64_t vhd_time_to_unix(uint32_t t)
{
	return (uint64_t)t + VHD_EPOCH_OFFSET;
}

uint32_t vhd_time_from_unix(uint64_t t)
{
	if (t < VHD_EPOCH_OFFSET)
		return 0;
	t -= VHD_EPOCH_OFFSET;
	return t > UINT32_MAX ? UINT32_MAX : (uint32_t)t;
}

void vhd_uuid_format(const uint8_t u[16], char out[37])
{
	static const char hex[] = "0123456789abcdef";
	char *p = out;

	for (int i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			*p++ = '-';
		*p++ = hex[u[i] >> 4];
		*p++ = hex[u[i] & 15];
	}
	*p = '\0';
}

const char *vhd_plat_name(uint32_t code, char out[5])
{
	for (int i = 0; i < 4; i++) {
		uint8_t c = (uint8_t)(code >> (24 - 8 * i));

		out[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
	}
	out[4] = '\0';
	return out;
}

uint64_t vhd_locator_space_bytes(const struct vhd_locator *l)
{
	/* Windows stores bytes (a multiple of 512 at least as large as the
	 * data); the 2006 specification says sectors.  A space smaller than
	 * the data length can only be sectors. */
	if (l->data_space >= l->data_len && l->data_space % VHD_SECTOR_SIZE == 0
	    && l->data_space >= VHD_SECTOR_SIZE)
		return l->data_space;
	return (uint64_t)l->data_space * VHD_SECTOR_SIZE;
}

bool vhd_plat_known(uint32_t code)
{
	return code == VHD_PLAT_W2KU || code == VHD_PLAT_W2RU ||
	       code == VHD_PLAT_WI2K || code == VHD_PLAT_WI2R ||
	       code == VHD_PLAT_MAC || code == VHD_PLAT_MACX;
}

bool vhd_locator_range(const struct vhd_locator *l, uint64_t file_size,
		       uint64_t *off, uint64_t *len)
{
	uint64_t space = vhd_locator_space_bytes(l);

	if (!vhd_plat_known(l->code) || !l->data_len)
		return false;
	*off = l->data_off;
	*len = space > l->data_len ? space : l->data_len;
	return l->data_off <= file_size && *len <= file_size - l->data_off;
}

const char *vhd_type_name(enum vhd_type t)
{
	switch (t) {
	case VHD_TYPE_FIXED:
		return "fixed";
	case VHD_TYPE_DYNAMIC:
		return "dynamic";
	case VHD_TYPE_DIFF:
		return "differencing";
	default:
		return "unknown";
	}
}
