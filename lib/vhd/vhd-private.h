/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libvhd internals: the on-disk structures decoded into host order, and the
 * state of an open image.  Nothing here is part of the public ABI.
 */
#ifndef VHD_PRIVATE_H
#define VHD_PRIVATE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

#include "vhd.h"

#define VHD_FOOTER_SIZE		512u
#define VHD_HEADER_SIZE		1024u
#define VHD_COOKIE		"conectix"
#define VHD_HDR_COOKIE		"cxsparse"
#define VHD_VERSION		0x00010000u
#define VHD_FEATURES_RESERVED	0x00000002u
#define VHD_NO_OFFSET		UINT64_MAX
#define VHD_BAT_UNUSED		UINT32_MAX
#define VHD_NR_LOCATORS		8
/* Seconds from the Unix epoch to 2000-01-01 00:00:00 UTC. */
#define VHD_EPOCH_OFFSET	946684800ull
/* The largest CHS geometry the footer can hold: 65535 x 16 x 255. */
#define VHD_MAX_CHS_SECTORS	(65535ull * 16 * 255)

#define VHD_PLAT_NONE	0x00000000u
#define VHD_PLAT_WI2R	0x57693272u	/* "Wi2r", deprecated */
#define VHD_PLAT_WI2K	0x5769326bu	/* "Wi2k", deprecated */
#define VHD_PLAT_W2RU	0x57327275u	/* "W2ru" */
#define VHD_PLAT_W2KU	0x57326b75u	/* "W2ku" */
#define VHD_PLAT_MAC	0x4d616320u	/* "Mac " alias blob */
#define VHD_PLAT_MACX	0x4d616358u	/* "MacX" file URL */

#define VHD_OS_WI2K	0x5769326bu	/* "Wi2k" */

struct vhd_footer {
	char cookie[8];
	uint32_t features;
	uint32_t version;
	uint64_t data_offset;
	uint32_t timestamp;
	char creator_app[4];
	uint32_t creator_version;
	uint32_t creator_os;
	uint64_t original_size;
	uint64_t current_size;
	uint16_t cylinders;
	uint8_t heads;
	uint8_t sectors;
	uint32_t type;
	uint32_t checksum;
	uint8_t uuid[16];
	uint8_t saved_state;
};

struct vhd_locator {
	uint32_t code;
	uint32_t data_space;
	uint32_t data_len;
	uint64_t data_off;
};

struct vhd_header {
	char cookie[8];
	uint64_t data_offset;
	uint64_t table_offset;
	uint32_t version;
	uint32_t max_entries;
	uint32_t block_size;
	uint32_t checksum;
	uint8_t parent_uuid[16];
	uint32_t parent_timestamp;
	uint8_t parent_name[512];	/* UTF-16BE, as stored */
	struct vhd_locator loc[VHD_NR_LOCATORS];
};

/* format.c: codecs; the checksum covers the buffer with its field zeroed */
void vhd_footer_decode(struct vhd_footer *f, const uint8_t *buf);
void vhd_footer_encode(const struct vhd_footer *f, uint8_t *buf);
uint32_t vhd_footer_checksum(const uint8_t *buf);
void vhd_header_decode(struct vhd_header *h, const uint8_t *buf);
void vhd_header_encode(const struct vhd_header *h, uint8_t *buf);
uint32_t vhd_header_checksum(const uint8_t *buf);
void vhd_geometry(uint64_t size, uint16_t *c, uint8_t *h, uint8_t *s);
void vhd_uuid_generate(uint8_t uuid[16]);
uint32_t vhd_now(void);
const char *vhd_plat_name(uint32_t code, char out[5]);
/* Bytes a locator's data occupies: the stored space is in sectors in the
 * 2006 specification and in bytes in files Windows writes. */
uint64_t vhd_locator_space_bytes(const struct vhd_locator *l);
/* The bytes a parent locator occupies, [*off, *off + *len): its declared
 * space, or its data if longer.  False when no reader would use it (an
 * unknown code, no data) or it does not lie wholly inside the file: such a
 * locator is not metadata.  open and check share this one definition. */
bool vhd_locator_range(const struct vhd_locator *l, uint64_t file_size,
		       uint64_t *off, uint64_t *len);
/* True for the platform codes a reader knows. */
bool vhd_plat_known(uint32_t code);

/* utf.c: conversions for parent names and locator paths (iconv). */
int vhd_utf16_to_utf8(const uint8_t *in, size_t in_len, bool big_endian,
		      char *out, size_t out_len);
/* Returns the number of bytes written, or negative errno. */
ssize_t vhd_utf8_to_utf16(const char *in, bool big_endian, uint8_t *out,
			  size_t out_len);

/* Bitmap cache entry for one block of a dynamic or differencing disk. */
struct vhd_bitmap {
	bool dirty;		/* not yet written to the file */
	uint8_t bits[];		/* bitmap_size bytes, in the same allocation */
};

struct vhd {
	char *name;		/* as opened, for messages */
	char *dir;		/* directory of name, for relative locators */
	struct vhd_file *file;
	unsigned flags;		/* VHD_OPEN_* */
	vhd_warn_fn warn;
	void *warn_opaque;

	struct vhd_footer footer;
	struct vhd_header header;
	enum vhd_type type;
	uint64_t size;		/* virtual size in bytes */
	uint64_t file_size;	/* as last known */

	/* dynamic and differencing */
	uint32_t block_size;
	uint32_t sectors_per_block;
	uint32_t bitmap_size;	/* bytes, whole sectors */
	uint32_t max_entries;
	uint32_t *bat;		/* host order, VHD_BAT_UNUSED when free */
	uint8_t *bat_dirty;	/* one flag per BAT sector (128 entries) */
	uint32_t bat_sectors;
	bool meta_dirty;	/* BAT or bitmaps to write at flush */
	bool data_dirty;	/* writes since the last sync */
	/* End of every structure in use; the footer sits here (or after a
	 * stale tail), and the next block goes after it. */
	uint64_t data_end;
	uint64_t footer_off;	/* where the footer lives now */
	struct vhd_bitmap **bitmaps;	/* per block, NULL: not cached */
	uint8_t *full;		/* per block bit: bitmap all ones */
	uint32_t nr_cached;	/* bitmaps held */
	uint32_t nr_dirty_bitmaps;

	/* rmap.c: the chain resolved per block, for a differencing top. */
	struct vhd_rmap *rmap;
	size_t rmap_limit;	/* bytes; 0: vhd_map() walks the chain */

	struct vhd *parent;
	/* While this layer is being opened as a parent: the layer that asked
	 * for it, so that a loop is seen before it is followed. */
	const struct vhd *below;
	unsigned depth;
	char *parent_path;
};

/* vhd.c helpers shared across the library */
int vhd_set_error(struct vhd_error *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void vhd_warnf(vhd_warn_fn warn, void *opaque, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int vhd_read_exact(struct vhd_file *f, void *buf, size_t len, uint64_t off);
int vhd_write_exact(struct vhd_file *f, const void *buf, size_t len,
		    uint64_t off);
bool vhd_is_zero(const void *buf, size_t len);
char *vhd_dirname(const char *path);
/* Writes the footer at `off` and, for dynamic disks, its copy at 0. */
int vhd_write_footer(struct vhd *v, uint64_t off, bool copy);

/* io.c */
int vhd_load_bitmap(struct vhd *v, uint32_t block, struct vhd_bitmap **out);
void vhd_drop_bitmaps(struct vhd *v);
void vhd_unmap_block(struct vhd *v, uint32_t b);
static inline bool vhd_block_full(const struct vhd *v, uint32_t b)
{
	return v->full[b >> 3] & (1u << (b & 7));
}
static inline uint64_t vhd_block_off(const struct vhd *v, uint32_t b)
{
	return (uint64_t)v->bat[b] * VHD_SECTOR_SIZE;
}
/* Appends e to ext when it continues it (the same backing, contiguous);
 * false when it does not, and ext is left as it was. */
bool vhd_extent_join(struct vhd_extent *ext, const struct vhd_extent *e);

/* rmap.c */
/* Bytes of resolved blocks a chain keeps by default.  A 2 MiB block takes
 * about 600 bytes when its layers hold whole 4 KiB granules (what a VM
 * writes): this holds some 28,000 of them (56 GiB of disk).  Cut finer, it
 * takes 4.7 KiB (3,500 blocks); served by one layer, under 100 bytes. */
#define VHD_RMAP_BYTES	(16u << 20)
/* 1 when answered from the resolved blocks, 0 when the caller must walk. */
int vhd_rmap_map(struct vhd *v, uint64_t off, uint64_t len,
		 struct vhd_extent *ext);
/* Block b of v changed its mapping. */
void vhd_rmap_forget(struct vhd *v, uint32_t b);
/* Sectors [s, s + n) of v's block b are now written in v. */
void vhd_rmap_written(struct vhd *v, uint32_t b, uint32_t s, uint32_t n);
/* v changed its size, parent or block placement; or is freed. */
void vhd_rmap_free(struct vhd *v);
size_t vhd_rmap_bytes(const struct vhd *v);

/* The end of the metadata (header, BAT, locator data), wherever it lies. */
uint64_t vhd_meta_end(const struct vhd *v);
/* The end of a metadata structure [off, off + len) overlaps, else 0. */
uint64_t vhd_meta_overlap(const struct vhd *v, uint64_t off, uint64_t len);

/* create.c: the W2ru form of parent_abs relative to child_dir. */
void vhd_relative_path(const char *child_dir, const char *parent_abs,
		       char *out, size_t len);
/* ops.c */
int vhd_report(const struct vhd_progress *p, uint64_t done, uint64_t total);
int vhd_write_header(struct vhd *v);
int vhd_update_footer(struct vhd *v);

/* open.c */
/* The virtual size a footer describes (current_size, or the CHS product
 * for old Virtual PC disks); check validates the BAT against it. */
uint64_t vhd_footer_size(const struct vhd_footer *f);
void vhd_locator_text(struct vhd *v, int i, char *out, size_t len);
int vhd_open_layer(struct vhd_file *f, const char *name,
		   const struct vhd_open_opts *opts, const struct vhd *below,
		   struct vhd **out, struct vhd_error *err);
void vhd_free(struct vhd *v);

static inline uint64_t vhd_round_up(uint64_t x, uint64_t a)
{
	return (x + a - 1) / a * a;
}

#endif
