/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The few ACPI Machine Language objects vsrv's DSDT is made of, encoded in
 * C (ACPI 6.3, chapter 20): names, scopes, devices, integers, strings,
 * packages, buffers, and the resource descriptors of _CRS (chapter 6.4).
 * Writes go into a caller's buffer; running out of room sets `error` and
 * writes nothing more, so a builder checks once at the end.
 */
#ifndef VSRV_AML_H
#define VSRV_AML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AML_DEPTH	8	/* open scopes, devices, packages */

struct aml {
	uint8_t *buf;
	size_t len, cap;
	size_t open[AML_DEPTH];	/* where each open object's body starts */
	unsigned depth;
	bool error;
};

void aml_init(struct aml *a, uint8_t *buf, size_t cap);
/* A name path: "\\_SB.PCI0", "^KBD", "_HID"; segments shorter than four
 * characters are padded with '_'. */
void aml_name_string(struct aml *a, const char *path);
/* The shortest encoding: ZeroOp, OneOp, or a Byte/Word/DWord/QWord const. */
void aml_integer(struct aml *a, uint64_t v);
void aml_string(struct aml *a, const char *s);
/* EisaId("PNP0A08"): the compressed 32-bit id, as an integer. */
void aml_eisaid(struct aml *a, const char *id);
void aml_buffer(struct aml *a, const uint8_t *data, size_t len);
/* Name(name, ...): the value is what is written next. */
void aml_name(struct aml *a, const char *name);
/* Scope(path) {, Device(name) {, Package(n) {: open until aml_end(). */
void aml_scope(struct aml *a, const char *path);
void aml_device(struct aml *a, const char *name);
void aml_package(struct aml *a, unsigned elements);
void aml_end(struct aml *a);

/* A resource template, for Name(_CRS, Buffer). */
struct aml_res {
	uint8_t b[256];
	size_t len;
	bool error;
};

/* IO(Decode16, port, port, 1, len) */
void aml_res_io(struct aml_res *r, uint16_t port, uint8_t len);
/* IRQNoFlags() {irq}: edge, active high, exclusive (ISA) */
void aml_res_irq(struct aml_res *r, unsigned irq);
/* Memory32Fixed(ReadWrite, base, len) */
void aml_res_mem32_fixed(struct aml_res *r, uint32_t base, uint32_t len);
/* Windows a bridge forwards (ResourceProducer, MinFixed, MaxFixed,
 * PosDecode): WordBusNumber, WordIO (EntireRange), DWordMemory
 * (NonCacheable, ReadWrite). */
void aml_res_bus_window(struct aml_res *r, uint16_t min, uint16_t max);
void aml_res_io_window(struct aml_res *r, uint16_t min, uint16_t max);
void aml_res_mem_window(struct aml_res *r, uint32_t min, uint32_t max);
/* EndTag; the template is then r->b[0..r->len). */
void aml_res_end(struct aml_res *r);

#endif
