/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Saved device state: a byte stream of little-endian fields, in sections
 * that each begin with a four-letter tag and a version, so that a reader
 * refuses a stream that is not for it.  A stream read back may come from
 * anywhere (a file, another host): every getter checks the length, and the
 * first error sticks in s->err, so that a loader can read a whole section
 * and test once.
 */
#ifndef VSRV_STATE_H
#define VSRV_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../vmm/vm.h"

struct dev_state {
	uint8_t *buf;
	size_t len, cap;	/* written so far; allocated */
	size_t pos;		/* read so far */
	int err;		/* the first error: -ENOMEM, -EINVAL */
};

void state_init(struct dev_state *s);
void state_free(struct dev_state *s);
/* For reading: a stream that starts again from its first byte. */
void state_rewind(struct dev_state *s);

void state_put_u8(struct dev_state *s, uint8_t v);
void state_put_u16(struct dev_state *s, uint16_t v);
void state_put_u32(struct dev_state *s, uint32_t v);
void state_put_u64(struct dev_state *s, uint64_t v);
void state_put_bytes(struct dev_state *s, const void *p, size_t n);
/* A section: tag (four characters) and version. */
void state_put_section(struct dev_state *s, const char *tag, uint32_t version);

uint8_t state_get_u8(struct dev_state *s);
uint16_t state_get_u16(struct dev_state *s);
uint32_t state_get_u32(struct dev_state *s);
uint64_t state_get_u64(struct dev_state *s);
void state_get_bytes(struct dev_state *s, void *p, size_t n);
/* Reads a section's header: false (and s->err) unless it is tag at version. */
bool state_get_section(struct dev_state *s, const char *tag, uint32_t version);

/* Text from a stream (a name, an id) made fit to quote in a one-line
 * message: each byte that is not printable ASCII becomes '?'.  s is
 * NUL-terminated; returns it. */
char *state_printable(char *s);

/* quiesce and resume for devices with no work of their own in flight
 * (no thread: everything they do happens in a vCPU's access). */
int state_quiesce_none(void *opaque);
void state_resume_none(void *opaque);

/* What test micro-guests use to prove save and load (the test device's
 * port 0xea): every device in vm->devices quiesced, saved, loaded back from
 * what it saved (so from power-on), and resumed.  0, or the first error. */
int devices_checkpoint_cycle(struct vm *vm);

#endif
