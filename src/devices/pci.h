/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * PCI bus 0: a host bridge at 00:00.0, configuration access through ports
 * 0xcf8/0xcfc (type 1) and MMCONFIG (ECAM) at VM_PCI_MMCONFIG_BASE, the
 * devices' memory BARs in VM_PCI_MMIO_START..VM_PCI_MMIO_END, capability
 * lists, INTx on the IOAPIC (pci.c) and MSI-X (pci-msix.c).
 * docs/vmm-devices.md describes what a guest sees.
 *
 * Locks: the bus lock covers every device's configuration space and the
 * address register at 0xcf8; a device's hooks run under it.  A device's
 * own lock, if it has one, comes after the bus lock, never before.  BAR
 * decoding is read without locks (each BAR's address is atomic): a BAR
 * access does not wait for configuration cycles on other vCPUs.
 */
#ifndef VSRV_PCI_H
#define VSRV_PCI_H

#include <linux/pci_regs.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "../vmm/vm.h"

#define PCI_SLOTS		32
#define PCI_NR_BARS		6
#define PCI_CFG_SIZE		256	/* conventional PCI: no extended space */
#define PCI_BAR_UNMAPPED	UINT64_MAX
/* INTA of the device in slot s raises GSI PCI_INTX_GSI(s) (an IOAPIC pin
 * above the ISA interrupts), level-triggered: high while asserted. */
#define PCI_INTX_GSI(slot)	(16u + (slot) % 8u)

struct pci_bus;
struct pci_device;
struct pci_msix;
struct dev_state;

struct pci_id {
	uint16_t vendor, device, subsystem_vendor, subsystem;
	uint8_t revision;
	uint32_t class;		/* base class, subclass, programming interface */
	uint8_t int_pin;	/* 1: INTA; 0: no INTx */
};

struct pci_device_ops {
	/* Configuration bytes [off, off + len) are about to be read (a live
	 * value goes into d->cfg first), or have been written (after the
	 * write masks applied).  Under the bus lock; either may be NULL. */
	void (*config_read)(struct pci_device *d, unsigned off, unsigned len);
	void (*config_write)(struct pci_device *d, unsigned off, unsigned len);
	/* The BAR now decodes at addr, or no longer decodes
	 * (PCI_BAR_UNMAPPED).  Under the bus lock. */
	void (*bar_map)(struct pci_device *d, unsigned bar, uint64_t addr);
};

struct pci_bar {
	uint64_t size;		/* 0: no BAR */
	bool mem64;
	const struct io_ops *ops;
	void *opaque;
	_Atomic uint64_t addr;	/* where it decodes, or PCI_BAR_UNMAPPED */
};

struct pci_device {
	struct pci_bus *bus;
	const struct pci_device_ops *ops;
	void *opaque;
	char name[40];		/* "virtio-rng 00:01.0", for log lines */
	unsigned slot, gsi;
	uint8_t cfg[PCI_CFG_SIZE];	/* under the bus lock */
	uint8_t wmask[PCI_CFG_SIZE];	/* the bits a guest may write */
	uint8_t power_on[PCI_CFG_SIZE];	/* read-only bytes a saved state must match */
	uint8_t cap_end, cap_last;	/* capability list: free space, last entry */
	struct pci_bar bar[PCI_NR_BARS];
	struct pci_msix *msix;
	/* INTx: the device's level, and what the GSI is set to (masked by
	 * the command register's Interrupt Disable and by MSI-X). */
	pthread_mutex_t intx_lock;
	_Atomic bool intx_level;
	_Atomic bool intx_disabled;
	bool intx_line;
};

/* The bus with its host bridge, ports and MMCONFIG; registered with the VM
 * (vm_add_device) as "pci". */
int pci_bus_create(struct vm *vm, struct pci_bus **out);
void pci_bus_destroy(struct pci_bus *bus);
struct vm *pci_bus_vm(struct pci_bus *bus);

/* A device in the next free slot, with its configuration header; then its
 * BARs and capabilities; then pci_device_start() maps its BARs, as
 * firmware would. */
int pci_device_add(struct pci_bus *bus, struct pci_device *d, const char *name,
		   const struct pci_id *id, const struct pci_device_ops *ops, void *opaque);
/* A memory BAR of `size` bytes (a power of two, 4 KiB at least), placed
 * in the BAR window; a 64-bit one takes `bar` and the next. */
int pci_bar_add(struct pci_device *d, unsigned bar, uint64_t size, bool mem64,
		const struct io_ops *ops, void *opaque);
/* A capability of `len` bytes (header included) at the end of the list:
 * its offset, or -ENOSPC. */
int pci_cap_add(struct pci_device *d, uint8_t id, unsigned len);
void pci_device_start(struct pci_device *d);
/* Off the bus (teardown, or a set-up that failed); no vCPU runs. */
void pci_device_remove(struct pci_device *d);
uint64_t pci_bar_addr(struct pci_device *d, unsigned bar);

/* INTx: the device's interrupt level (any thread). */
void pci_intx_set(struct pci_device *d, bool level);
/* Re-evaluates the GSI after the command register or MSI-X changed. */
void pci_intx_update(struct pci_device *d);

/* The device's configuration space and MSI-X state (the caller holds no
 * lock; pci_device_load takes the bus lock and calls bar_map). */
int pci_device_save(struct pci_device *d, struct dev_state *s);
int pci_device_load(struct pci_device *d, struct dev_state *s);

/* pci-msix.c: an MSI-X capability with `nvec` vectors, its table and PBA
 * filling BAR `bar` (4 KiB).  -ENOTSUP when this host's KVM has neither
 * irqfds nor KVM_SIGNAL_MSI. */
#define PCI_MSIX_MAX_VECTORS	128
int pci_msix_init(struct pci_device *d, unsigned bar, unsigned nvec);
void pci_msix_destroy(struct pci_device *d);
/* Whether MSI-X is on (then INTx is off); any thread, no lock. */
bool pci_msix_enabled(struct pci_device *d);
unsigned pci_msix_vectors(struct pci_device *d);
/* Raises a vector, or marks it pending while masked; any thread, no lock.
 * false when it was not delivered (pending, or no such vector). */
bool pci_msix_notify(struct pci_device *d, unsigned vector);
/* Configuration bytes [off, off + len) were written (pci.c, bus lock
 * held): acts on the capability's Enable and Function Mask bits. */
void pci_msix_control_written(struct pci_device *d, unsigned off, unsigned len);
void pci_msix_save(struct pci_device *d, struct dev_state *s);
int pci_msix_load(struct pci_device *d, struct dev_state *s);

#endif
