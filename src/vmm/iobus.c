// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Port I/O and MMIO dispatch: a sorted table of regions per bus, searched
 * by bisection on every exit.  Filled at set-up, read-only afterwards.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vm.h"

static int bus_add(struct io_bus *bus, uint64_t base, uint64_t len,
		   const struct io_ops *ops, void *opaque, const char *name)
{
	unsigned i;

	if (!len || base + len < base)
		return -EINVAL;
	for (i = 0; i < bus->nr; i++) {
		struct io_region *r = &bus->r[i];

		if (base < r->base + r->len && r->base < base + len)
			return -EEXIST;
		if (r->base > base)
			break;
	}
	if (bus->nr == bus->cap) {
		unsigned cap = bus->cap ? bus->cap * 2 : 16;
		struct io_region *n = realloc(bus->r, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		bus->r = n;
		bus->cap = cap;
	}
	memmove(bus->r + i + 1, bus->r + i, (bus->nr - i) * sizeof(*bus->r));
	bus->r[i] = (struct io_region){ base, len, ops, opaque, name };
	bus->nr++;
	return 0;
}

int vm_register_pio(struct vm *vm, uint16_t base, uint16_t len,
		    const struct io_ops *ops, void *opaque, const char *name)
{
	if ((uint32_t)base + len > 0x10000)
		return -EINVAL;
	return bus_add(&vm->pio, base, len, ops, opaque, name);
}

int vm_register_mmio(struct vm *vm, uint64_t base, uint64_t len,
		     const struct io_ops *ops, void *opaque, const char *name)
{
	return bus_add(&vm->mmio, base, len, ops, opaque, name);
}

bool io_bus_access(struct io_bus *bus, uint64_t addr, void *data,
		   unsigned len, bool write)
{
	unsigned lo = 0, hi = bus->nr;

	while (lo < hi) {
		unsigned mid = (lo + hi) / 2;
		struct io_region *r = &bus->r[mid];

		if (addr < r->base) {
			hi = mid;
		} else if (addr - r->base >= r->len) {
			lo = mid + 1;
		} else {
			/* An access straddling the region's end is the
			 * guest's bug: it sees the region's part only. */
			if (write) {
				if (r->ops->write)
					r->ops->write(r->opaque, addr - r->base, data, len);
			} else {
				memset(data, 0, len);
				if (r->ops->read)
					r->ops->read(r->opaque, addr - r->base, data, len);
			}
			return true;
		}
	}
	if (!write)
		memset(data, 0xff, len);
	return false;
}

/* The devices with saved state, in the order they were added (set-up
 * and teardown only). */
void vm_add_device(struct vm *vm, struct vm_device *d)
{
	struct vm_device **p = &vm->devices;

	while (*p)
		p = &(*p)->next;
	d->next = NULL;
	*p = d;
}

void vm_remove_device(struct vm *vm, struct vm_device *d)
{
	for (struct vm_device **p = &vm->devices; *p; p = &(*p)->next)
		if (*p == d) {
			*p = d->next;
			return;
		}
}
