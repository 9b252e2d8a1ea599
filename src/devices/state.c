// SPDX-License-Identifier: GPL-2.0-or-later
/* Saved device state: the byte stream (state.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "state.h"

/* No device's state comes near this: a stream claiming more is damaged. */
#define STATE_MAX	(16u << 20)

void state_init(struct dev_state *s)
{
	memset(s, 0, sizeof(*s));
}

void state_free(struct dev_state *s)
{
	free(s->buf);
	state_init(s);
}

void state_rewind(struct dev_state *s)
{
	s->pos = 0;
	s->err = 0;
}

void state_put_bytes(struct dev_state *s, const void *p, size_t n)
{
	/* Nothing (an empty name, say), maybe into no buffer yet. */
	if (s->err || !n)
		return;
	if (n > STATE_MAX - s->len) {
		s->err = -E2BIG;
		return;
	}
	if (s->len + n > s->cap) {
		size_t cap = s->cap ? s->cap : 256;
		uint8_t *b;

		while (cap < s->len + n)
			cap *= 2;
		b = realloc(s->buf, cap);
		if (!b) {
			s->err = -ENOMEM;
			return;
		}
		s->buf = b;
		s->cap = cap;
	}
	memcpy(s->buf + s->len, p, n);
	s->len += n;
}

static void put_le(struct dev_state *s, uint64_t v, unsigned n)
{
	uint8_t b[8];

	for (unsigned i = 0; i < n; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	state_put_bytes(s, b, n);
}

void state_put_u8(struct dev_state *s, uint8_t v)
{
	put_le(s, v, 1);
}

void state_put_u16(struct dev_state *s, uint16_t v)
{
	put_le(s, v, 2);
}

void state_put_u32(struct dev_state *s, uint32_t v)
{
	put_le(s, v, 4);
}

void state_put_u64(struct dev_state *s, uint64_t v)
{
	put_le(s, v, 8);
}

void state_put_section(struct dev_state *s, const char *tag, uint32_t version)
{
	state_put_bytes(s, tag, 4);
	state_put_u32(s, version);
}

void state_get_bytes(struct dev_state *s, void *p, size_t n)
{
	if (!n)
		return;
	if (!s->err && n > s->len - s->pos)
		s->err = -EINVAL;
	if (s->err) {
		memset(p, 0, n);
		return;
	}
	memcpy(p, s->buf + s->pos, n);
	s->pos += n;
}

static uint64_t get_le(struct dev_state *s, unsigned n)
{
	uint8_t b[8];
	uint64_t v = 0;

	state_get_bytes(s, b, n);
	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)b[i] << (8 * i);
	return v;
}

uint8_t state_get_u8(struct dev_state *s)
{
	return (uint8_t)get_le(s, 1);
}

uint16_t state_get_u16(struct dev_state *s)
{
	return (uint16_t)get_le(s, 2);
}

uint32_t state_get_u32(struct dev_state *s)
{
	return (uint32_t)get_le(s, 4);
}

uint64_t state_get_u64(struct dev_state *s)
{
	return get_le(s, 8);
}

bool state_get_section(struct dev_state *s, const char *tag, uint32_t version)
{
	char t[4];

	state_get_bytes(s, t, 4);
	if (state_get_u32(s) != version || memcmp(t, tag, 4))
		s->err = s->err ? s->err : -EINVAL;
	return !s->err;
}

char *state_printable(char *s)
{
	for (char *p = s; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
			*p = '?';
	return s;
}

int state_quiesce_none(void *opaque)
{
	return 0;
}

void state_resume_none(void *opaque)
{
}

int devices_checkpoint_cycle(struct vm *vm)
{
	struct vm_device *d, *end;
	int r = 0;

	/* The devices before `end` are quiesced. */
	for (end = vm->devices; end; end = end->next) {
		r = end->ops->quiesce(end->opaque);
		if (r < 0)
			break;
	}
	for (d = vm->devices; d != end && r >= 0; d = d->next) {
		struct dev_state s;

		state_init(&s);
		r = d->ops->save(d->opaque, &s);
		if (r >= 0)
			r = s.err;
		if (r >= 0) {
			state_rewind(&s);
			r = d->ops->load(d->opaque, &s);
		}
		if (r < 0)
			fprintf(stderr, "vsrv: %s: checkpoint: %s\n", d->name, strerror(-r));
		state_free(&s);
	}
	for (d = vm->devices; d != end; d = d->next)
		d->ops->resume(d->opaque);
	return r;
}
