// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * PCI bus 0 (pci.h): the host bridge at 00:00.0, configuration access,
 * BARs, capability lists and INTx.
 *
 * Configuration access comes two ways, which see the same bytes:
 *  - type 1: a dword write to 0xcf8 selects bus, device, function and
 *    register (bit 31 enables); 0xcfc-0xcff are that dword's bytes.
 *    Bits 27:24 are register bits 11:8, as on AMD's chipsets (Linux uses
 *    them on AMD processors, "configuration type 1 for extended access"),
 *    so the extended space reads as it does through MMCONFIG.  The
 *    reset control register at 0xcf9 belongs to i8042.c: the bridge
 *    decodes 0xcf8 (dword accesses only, as a PC's does) and 0xcfa-0xcfb
 *    around it, so a byte at 0xcf9 still resets the machine.
 *  - MMCONFIG (ECAM) at VM_PCI_MMCONFIG_BASE: 4 KiB per function, bus 0
 *    only.  The 256 bytes of conventional PCI space are there; the rest
 *    of each 4 KiB reads as zeros (no extended capabilities).
 * A function that is not there reads as all ones (vendor 0xffff), and
 * only function 0 of each slot is.
 *
 * BARs: every device's memory BARs are placed by vsrv in the BAR window
 * (VM_PCI_MMIO_START-VM_PCI_MMIO_END), naturally aligned, with memory
 * decoding on, as firmware leaves them.  The guest may size them (all
 * ones, then read back) and move them: a BAR decodes where its register
 * says while the command register's Memory Space bit is set and the BAR
 * lies wholly inside the window; anywhere else (above 4 GiB, over RAM, in
 * the middle of being sized) it does not decode at all.  The window is one
 * MMIO region on the VM's bus whose accesses this file hands to the BAR
 * that decodes them.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pci.h"
#include "state.h"

#define PCI_CONFIG_ADDRESS	0xcf8
#define PCI_CONFIG_DATA		0xcfc
#define PCI_CONFIG_ENABLE	0x80000000u
/* Red Hat's "QEMU PCIe host bridge" id: a bridge with no chipset behind
 * it, which guests drive with no quirks (an Intel id would make Linux
 * probe that chipset's registers for MMCONFIG). */
#define HOST_BRIDGE_VENDOR	0x1b36
#define HOST_BRIDGE_DEVICE	0x0008
#define PCI_CLASS_HOST_BRIDGE	0x060000

struct pci_bus {
	struct vm *vm;
	pthread_mutex_t lock;
	uint32_t config_address;	/* 0xcf8 */
	struct pci_device *dev[PCI_SLOTS];
	uint64_t bar_next;		/* where the next BAR goes */
	struct pci_device bridge;
	struct vm_device vmdev;
};

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static bool overlaps(unsigned off, unsigned len, unsigned start, unsigned n)
{
	return off < start + n && start < off + len;
}

struct vm *pci_bus_vm(struct pci_bus *bus)
{
	return bus->vm;
}

/* --- BARs --- */

/* Where each BAR decodes after a write to the command register or a BAR
 * (bus lock held); tells the device of every change. */
static void update_bars(struct pci_device *d)
{
	bool mem_on = get16(d->cfg + PCI_COMMAND) & PCI_COMMAND_MEMORY;

	for (unsigned i = 0; i < PCI_NR_BARS; i++) {
		struct pci_bar *b = &d->bar[i];
		uint64_t addr = get32(d->cfg + PCI_BASE_ADDRESS_0 + 4 * i) & ~0xfull;
		uint64_t decode = PCI_BAR_UNMAPPED;

		if (!b->size)
			continue;
		if (b->mem64)
			addr |= (uint64_t)get32(d->cfg + PCI_BASE_ADDRESS_0 + 4 * i + 4) << 32;
		if (mem_on && addr >= VM_PCI_MMIO_START && addr < VM_PCI_MMIO_END &&
		    b->size <= VM_PCI_MMIO_END - addr)
			decode = addr;
		if (atomic_load(&b->addr) == decode)
			continue;
		atomic_store(&b->addr, decode);
		if (d->ops && d->ops->bar_map)
			d->ops->bar_map(d, i, decode);
	}
}

uint64_t pci_bar_addr(struct pci_device *d, unsigned bar)
{
	return bar < PCI_NR_BARS ? atomic_load(&d->bar[bar].addr) : PCI_BAR_UNMAPPED;
}

/* The BAR window: finds the BAR decoding gpa; no lock (see pci.h). */
static struct pci_bar *bar_at(struct pci_bus *bus, uint64_t gpa, uint64_t *off)
{
	for (unsigned s = 0; s < PCI_SLOTS; s++) {
		struct pci_device *d = bus->dev[s];

		for (unsigned i = 0; d && i < PCI_NR_BARS; i++) {
			uint64_t a = atomic_load(&d->bar[i].addr);

			if (a != PCI_BAR_UNMAPPED && gpa - a < d->bar[i].size) {
				*off = gpa - a;
				return &d->bar[i];
			}
		}
	}
	return NULL;
}

static void window_read(void *opaque, uint64_t addr, void *data, unsigned len)
{
	uint64_t off;
	struct pci_bar *b = bar_at(opaque, VM_PCI_MMIO_START + addr, &off);

	if (!b || !b->ops->read)
		memset(data, 0xff, len);
	else
		b->ops->read(b->opaque, off, data, len);
}

static void window_write(void *opaque, uint64_t addr, const void *data, unsigned len)
{
	uint64_t off;
	struct pci_bar *b = bar_at(opaque, VM_PCI_MMIO_START + addr, &off);

	if (b && b->ops->write)
		b->ops->write(b->opaque, off, data, len);
}

static const struct io_ops window_ops = { .read = window_read, .write = window_write };

/* --- configuration space --- */

/* One access to bus 0's configuration space (the bus lock held): reg is
 * below 4096, len at most 4. */
static void config_access(struct pci_bus *bus, unsigned devfn, unsigned reg, uint8_t *data,
			  unsigned len, bool write)
{
	struct pci_device *d = (devfn & 7) ? NULL : bus->dev[devfn >> 3];

	if (!d) {
		if (!write)
			memset(data, 0xff, len);
		return;
	}
	if (reg >= PCI_CFG_SIZE) {
		if (!write)
			memset(data, 0, len);
		return;
	}
	if (reg + len > PCI_CFG_SIZE)
		len = PCI_CFG_SIZE - reg;
	if (!write) {
		if (d->ops && d->ops->config_read)
			d->ops->config_read(d, reg, len);
		memcpy(data, d->cfg + reg, len);
		if (overlaps(reg, len, PCI_STATUS, 1) && atomic_load(&d->intx_level))
			data[PCI_STATUS - reg] |= PCI_STATUS_INTERRUPT;
		return;
	}
	for (unsigned i = 0; i < len; i++)
		d->cfg[reg + i] = (uint8_t)((d->cfg[reg + i] & ~d->wmask[reg + i]) |
					    (data[i] & d->wmask[reg + i]));
	if (overlaps(reg, len, PCI_COMMAND, 2) ||
	    overlaps(reg, len, PCI_BASE_ADDRESS_0, 4 * PCI_NR_BARS))
		update_bars(d);
	if (overlaps(reg, len, PCI_COMMAND, 2)) {
		atomic_store(&d->intx_disabled,
			     get16(d->cfg + PCI_COMMAND) & PCI_COMMAND_INTX_DISABLE);
		pci_intx_update(d);
	}
	if (d->msix)
		pci_msix_control_written(d, reg, len);
	if (d->ops && d->ops->config_write)
		d->ops->config_write(d, reg, len);
}

/* 0xcf8: the address register, dword accesses only. */
static void address_read(void *opaque, uint64_t addr, void *data, unsigned len)
{
	struct pci_bus *bus = opaque;

	if (len != 4) {
		memset(data, 0xff, len);
		return;
	}
	pthread_mutex_lock(&bus->lock);
	put32(data, bus->config_address);
	pthread_mutex_unlock(&bus->lock);
}

static void address_write(void *opaque, uint64_t addr, const void *data, unsigned len)
{
	struct pci_bus *bus = opaque;

	if (len != 4)
		return;
	pthread_mutex_lock(&bus->lock);
	bus->config_address = get32(data);
	pthread_mutex_unlock(&bus->lock);
}

static const struct io_ops address_ops = { .read = address_read, .write = address_write };

/* 0xcfa-0xcfb: bytes of the address register's dword that no one
 * addresses alone (Linux's type 2 probe writes 0xcfb). */
static void unused_read(void *opaque, uint64_t addr, void *data, unsigned len)
{
	memset(data, 0xff, len);
}

static const struct io_ops unused_ops = { .read = unused_read };

/* 0xcfc-0xcff: the selected dword of configuration space. */
static void data_access(struct pci_bus *bus, uint64_t addr, uint8_t *data, unsigned len,
			bool write)
{
	uint32_t ca;

	if (len > 4 - addr)
		len = (unsigned)(4 - addr);
	pthread_mutex_lock(&bus->lock);
	ca = bus->config_address;
	if (!(ca & PCI_CONFIG_ENABLE) || (ca >> 16 & 0xff) != 0) {
		if (!write)
			memset(data, 0xff, len);
	} else {
		config_access(bus, ca >> 8 & 0xff,
			      (ca >> 16 & 0xf00) | ((ca & 0xfc) + (unsigned)addr), data, len, write);
	}
	pthread_mutex_unlock(&bus->lock);
}

static void data_read(void *opaque, uint64_t addr, void *data, unsigned len)
{
	data_access(opaque, addr, data, len, false);
}

static void data_write(void *opaque, uint64_t addr, const void *data, unsigned len)
{
	data_access(opaque, addr, (uint8_t *)data, len, true);
}

static const struct io_ops data_ops = { .read = data_read, .write = data_write };

/* MMCONFIG: offset = device << 15 | function << 12 | register. */
static void ecam_access(struct pci_bus *bus, uint64_t addr, uint8_t *data, unsigned len,
			bool write)
{
	unsigned reg = addr & 0xfff;

	pthread_mutex_lock(&bus->lock);
	/* An 8-byte access is two dword cycles. */
	for (unsigned done = 0; done < len; done += 4) {
		unsigned n = len - done < 4 ? len - done : 4;

		if (reg + done + n > 4096)
			n = 4096 - (reg + done);
		if (!n)
			break;
		config_access(bus, (unsigned)(addr >> 12) & 0xff, reg + done, data + done, n,
			      write);
	}
	pthread_mutex_unlock(&bus->lock);
}

static void ecam_read(void *opaque, uint64_t addr, void *data, unsigned len)
{
	ecam_access(opaque, addr, data, len, false);
}

static void ecam_write(void *opaque, uint64_t addr, const void *data, unsigned len)
{
	ecam_access(opaque, addr, (uint8_t *)data, len, true);
}

static const struct io_ops ecam_ops = { .read = ecam_read, .write = ecam_write };

/* --- devices --- */

int pci_device_add(struct pci_bus *bus, struct pci_device *d, const char *name,
		   const struct pci_id *id, const struct pci_device_ops *ops, void *opaque)
{
	unsigned slot = 0;

	while (slot < PCI_SLOTS && bus->dev[slot])
		slot++;
	if (slot == PCI_SLOTS)
		return -ENOSPC;
	memset(d, 0, sizeof(*d));
	d->bus = bus;
	d->ops = ops;
	d->opaque = opaque;
	d->slot = slot;
	d->gsi = PCI_INTX_GSI(slot);
	snprintf(d->name, sizeof(d->name), "%s 00:%02x.0", name, slot);
	pthread_mutex_init(&d->intx_lock, NULL);
	for (unsigned i = 0; i < PCI_NR_BARS; i++)
		atomic_init(&d->bar[i].addr, PCI_BAR_UNMAPPED);
	put16(d->cfg + PCI_VENDOR_ID, id->vendor);
	put16(d->cfg + PCI_DEVICE_ID, id->device);
	put32(d->cfg + PCI_CLASS_REVISION, id->class << 8 | id->revision);
	d->cfg[PCI_HEADER_TYPE] = PCI_HEADER_TYPE_NORMAL;
	put16(d->cfg + PCI_SUBSYSTEM_VENDOR_ID, id->subsystem_vendor);
	put16(d->cfg + PCI_SUBSYSTEM_ID, id->subsystem);
	put16(d->wmask + PCI_COMMAND, PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER |
	      PCI_COMMAND_PARITY | PCI_COMMAND_SERR | PCI_COMMAND_INTX_DISABLE);
	if (id->int_pin) {
		d->cfg[PCI_INTERRUPT_PIN] = id->int_pin;
		/* What firmware writes: the GSI, for guests that read it;
		 * the MP table describes the wiring too. */
		d->cfg[PCI_INTERRUPT_LINE] = (uint8_t)d->gsi;
		bus->vm->pci_intx_slots |= 1u << slot;
	}
	d->wmask[PCI_INTERRUPT_LINE] = 0xff;
	d->cap_end = 0x40;
	bus->dev[slot] = d;
	return 0;
}

int pci_bar_add(struct pci_device *d, unsigned bar, uint64_t size, bool mem64,
		const struct io_ops *ops, void *opaque)
{
	struct pci_bus *bus = d->bus;
	uint64_t addr = (bus->bar_next + size - 1) & ~(size - 1);
	uint8_t *reg = d->cfg + PCI_BASE_ADDRESS_0 + 4 * bar;
	uint8_t *mask = d->wmask + PCI_BASE_ADDRESS_0 + 4 * bar;

	if (bar + mem64 >= PCI_NR_BARS || d->bar[bar].size || size < 4096 ||
	    (size & (size - 1)) || size > VM_PCI_MMIO_END - VM_PCI_MMIO_START)
		return -EINVAL;
	if (addr + size > VM_PCI_MMIO_END || addr < bus->bar_next)
		return -ENOSPC;
	bus->bar_next = addr + size;
	d->bar[bar] = (struct pci_bar){ .size = size, .mem64 = mem64, .ops = ops,
					.opaque = opaque };
	atomic_init(&d->bar[bar].addr, PCI_BAR_UNMAPPED);
	/* The address bits below the size read back as zeros: sizing. */
	put32(reg, (uint32_t)addr | (mem64 ? PCI_BASE_ADDRESS_MEM_TYPE_64 : 0));
	put32(mask, (uint32_t)~(size - 1));
	if (mem64) {
		put32(reg + 4, (uint32_t)(addr >> 32));
		put32(mask + 4, 0xffffffff);
	}
	return 0;
}

int pci_cap_add(struct pci_device *d, uint8_t id, unsigned len)
{
	unsigned off = d->cap_end;

	if (len < 2 || off + len > PCI_CFG_SIZE)
		return -ENOSPC;
	if (d->cap_last)
		d->cfg[d->cap_last + 1] = (uint8_t)off;
	else
		d->cfg[PCI_CAPABILITY_LIST] = (uint8_t)off;
	put16(d->cfg + PCI_STATUS, get16(d->cfg + PCI_STATUS) | PCI_STATUS_CAP_LIST);
	d->cfg[off] = id;
	d->cfg[off + 1] = 0;
	d->cap_last = (uint8_t)off;
	d->cap_end = (uint8_t)((off + len + 3) & ~3u);
	return (int)off;
}

void pci_device_start(struct pci_device *d)
{
	memcpy(d->power_on, d->cfg, sizeof(d->cfg));
	pthread_mutex_lock(&d->bus->lock);
	put16(d->cfg + PCI_COMMAND, PCI_COMMAND_MEMORY);
	update_bars(d);
	pthread_mutex_unlock(&d->bus->lock);
}

void pci_device_remove(struct pci_device *d)
{
	if (!d->bus)
		return;
	pthread_mutex_lock(&d->bus->lock);
	if (d->bus->dev[d->slot] == d)
		d->bus->dev[d->slot] = NULL;
	pthread_mutex_unlock(&d->bus->lock);
	pthread_mutex_destroy(&d->intx_lock);
	d->bus = NULL;
}

/* --- INTx --- */

void pci_intx_update(struct pci_device *d)
{
	bool line;

	pthread_mutex_lock(&d->intx_lock);
	line = atomic_load(&d->intx_level) && !atomic_load(&d->intx_disabled) &&
	       !pci_msix_enabled(d);
	if (line != d->intx_line) {
		d->intx_line = line;
		vm_irq_line(d->bus->vm, d->gsi, line);
	}
	pthread_mutex_unlock(&d->intx_lock);
}

void pci_intx_set(struct pci_device *d, bool level)
{
	atomic_store(&d->intx_level, level);
	pci_intx_update(d);
}

/* --- saved state --- */

int pci_device_save(struct pci_device *d, struct dev_state *s)
{
	state_put_section(s, "PCID", 1);
	pthread_mutex_lock(&d->bus->lock);
	state_put_bytes(s, d->cfg, sizeof(d->cfg));
	pthread_mutex_unlock(&d->bus->lock);
	state_put_u8(s, atomic_load(&d->intx_level));
	pci_msix_save(d, s);
	return s->err;
}

int pci_device_load(struct pci_device *d, struct dev_state *s)
{
	uint8_t cfg[PCI_CFG_SIZE];
	bool level;
	int r;

	if (!state_get_section(s, "PCID", 1))
		return s->err;
	state_get_bytes(s, cfg, sizeof(cfg));
	level = state_get_u8(s);
	if (s->err)
		return s->err;
	/* The bits no guest can write are the device's identity: a state
	 * whose differ is another device's. */
	for (unsigned i = 0; i < PCI_CFG_SIZE; i++)
		if ((cfg[i] ^ d->power_on[i]) & ~d->wmask[i])
			return -EINVAL;
	pthread_mutex_lock(&d->bus->lock);
	memcpy(d->cfg, cfg, sizeof(cfg));
	update_bars(d);
	atomic_store(&d->intx_disabled, get16(d->cfg + PCI_COMMAND) & PCI_COMMAND_INTX_DISABLE);
	r = pci_msix_load(d, s);
	pthread_mutex_unlock(&d->bus->lock);
	pci_intx_set(d, level);
	return r;
}

/* The bridge's own state: the address register and its header. */
static int bus_quiesce(void *opaque)
{
	return 0;
}

static void bus_resume(void *opaque)
{
}

static int bus_save(void *opaque, struct dev_state *s)
{
	struct pci_bus *bus = opaque;

	state_put_section(s, "PCIB", 1);
	pthread_mutex_lock(&bus->lock);
	state_put_u32(s, bus->config_address);
	pthread_mutex_unlock(&bus->lock);
	return pci_device_save(&bus->bridge, s);
}

static int bus_load(void *opaque, struct dev_state *s)
{
	struct pci_bus *bus = opaque;
	uint32_t ca;

	if (!state_get_section(s, "PCIB", 1))
		return s->err;
	ca = state_get_u32(s);
	if (s->err)
		return s->err;
	pthread_mutex_lock(&bus->lock);
	bus->config_address = ca;
	pthread_mutex_unlock(&bus->lock);
	return pci_device_load(&bus->bridge, s);
}

static const struct vm_device_ops bus_vm_ops = {
	.quiesce = bus_quiesce, .resume = bus_resume, .save = bus_save, .load = bus_load,
};

int pci_bus_create(struct vm *vm, struct pci_bus **out)
{
	static const struct pci_id bridge_id = {
		.vendor = HOST_BRIDGE_VENDOR, .device = HOST_BRIDGE_DEVICE,
		.subsystem_vendor = HOST_BRIDGE_VENDOR, .subsystem = 0x1100,
		.class = PCI_CLASS_HOST_BRIDGE,
	};
	struct pci_bus *bus = calloc(1, sizeof(*bus));
	int r;

	if (!bus)
		return -ENOMEM;
	bus->vm = vm;
	bus->bar_next = VM_PCI_MMIO_START;
	pthread_mutex_init(&bus->lock, NULL);
	r = pci_device_add(bus, &bus->bridge, "host-bridge", &bridge_id, NULL, NULL);
	if (r >= 0)
		r = vm_register_pio(vm, PCI_CONFIG_ADDRESS, 1, &address_ops, bus, "pci-address");
	if (r >= 0)
		r = vm_register_pio(vm, PCI_CONFIG_ADDRESS + 2, 2, &unused_ops, bus, "pci-address");
	if (r >= 0)
		r = vm_register_pio(vm, PCI_CONFIG_DATA, 4, &data_ops, bus, "pci-data");
	if (r >= 0)
		r = vm_register_mmio(vm, VM_PCI_MMCONFIG_BASE, VM_PCI_MMCONFIG_SIZE, &ecam_ops,
				     bus, "pci-mmconfig");
	if (r >= 0)
		r = vm_register_mmio(vm, VM_PCI_MMIO_START, VM_PCI_MMIO_END - VM_PCI_MMIO_START,
				     &window_ops, bus, "pci-bars");
	if (r < 0) {
		pci_bus_destroy(bus);
		return r;
	}
	pci_device_start(&bus->bridge);
	bus->vmdev = (struct vm_device){ .name = "pci", .ops = &bus_vm_ops, .opaque = bus };
	vm_add_device(vm, &bus->vmdev);
	*out = bus;
	return 0;
}

void pci_bus_destroy(struct pci_bus *bus)
{
	if (!bus)
		return;
	vm_remove_device(bus->vm, &bus->vmdev);
	pci_device_remove(&bus->bridge);
	pthread_mutex_destroy(&bus->lock);
	free(bus);
}
