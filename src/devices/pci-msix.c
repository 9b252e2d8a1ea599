// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * MSI-X (PCI Local Bus 3.0, 6.8.2): the capability's control word in
 * configuration space (Enable, Function Mask, the table's size), and the
 * table (16 bytes a vector: address, upper address, data, vector control
 * with its mask bit) and pending bit array in a BAR of their own: table
 * at 0, PBA at 0x800.
 *
 * A vector reaches the guest through KVM: each has an eventfd that KVM
 * turns into an interrupt on a GSI of its own (irqfd), the GSI routed to
 * the vector's address and data; the route is set when the guest unmasks
 * the vector (a driver programs a vector masked, then unmasks it), or at
 * once when it changes an unmasked one.  Without irqfds, KVM_SIGNAL_MSI
 * sends the message itself.  Either way an interrupt costs the device's
 * thread one system call and no lock: the mask state is atomic.
 *
 * Masked (the vector, or the whole function, or MSI-X off), an interrupt
 * sets the vector's pending bit instead, and unmasking delivers it.  The
 * device sets pending and then looks at the mask again, the guest unmasks
 * and then takes pending: with sequentially consistent atomics on both
 * sides no interrupt is lost (one may come twice, which MSI allows).
 *
 * Accesses: aligned dwords and qwords as the spec asks; reads of other
 * widths see the same bytes; other writes are ignored.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "pci.h"
#include "state.h"

#define MSIX_BAR_SIZE	4096u
#define MSIX_PBA	0x800u
#define MSIX_CAP_LEN	12

struct msix_vec {
	_Atomic uint64_t addr;
	_Atomic uint32_t data;
	_Atomic bool masked;
	_Atomic bool pending;
	bool dirty;		/* address or data changed since the route was set */
	unsigned gsi;
	int fd;			/* the irqfd's eventfd, or -1 */
};

struct pci_msix {
	struct pci_device *d;
	unsigned nvec, cap;
	bool irqfd;
	pthread_mutex_t lock;	/* the guest's changes to the table and control */
	_Atomic bool enabled, fmask;
	struct msix_vec v[];
};

static bool deliverable(struct pci_msix *m, unsigned i)
{
	return atomic_load(&m->enabled) && !atomic_load(&m->fmask) &&
	       !atomic_load(&m->v[i].masked);
}

static void fire(struct pci_msix *m, unsigned i)
{
	struct msix_vec *v = &m->v[i];

	if (m->irqfd) {
		uint64_t one = 1;

		/* EAGAIN: the counter is full, the interrupt on its way. */
		if (write(v->fd, &one, sizeof(one)) < 0)
			return;
	} else {
		vm_signal_msi(pci_bus_vm(m->d->bus), atomic_load(&v->addr),
			      atomic_load(&v->data));
	}
}

/* The vector's route, when changed (m->lock held). */
static void set_route(struct pci_msix *m, unsigned i)
{
	struct msix_vec *v = &m->v[i];

	if (!m->irqfd || !v->dirty)
		return;
	v->dirty = false;
	vm_msi_route_set(pci_bus_vm(m->d->bus), v->gsi, atomic_load(&v->addr),
			 atomic_load(&v->data));
}

static void deliver_pending(struct pci_msix *m, unsigned i)
{
	if (deliverable(m, i) && atomic_exchange(&m->v[i].pending, false))
		fire(m, i);
}

bool pci_msix_notify(struct pci_device *d, unsigned vector)
{
	struct pci_msix *m = d->msix;

	if (!m || vector >= m->nvec)
		return false;
	if (deliverable(m, vector)) {
		fire(m, vector);
		return true;
	}
	atomic_store(&m->v[vector].pending, true);
	/* Unmasked meanwhile: whoever takes the pending bit delivers. */
	deliver_pending(m, vector);
	return false;
}

bool pci_msix_enabled(struct pci_device *d)
{
	return d->msix && atomic_load(&d->msix->enabled);
}

unsigned pci_msix_vectors(struct pci_device *d)
{
	return d->msix ? d->msix->nvec : 0;
}

void pci_msix_control_written(struct pci_device *d, unsigned off, unsigned len)
{
	struct pci_msix *m = d->msix;
	unsigned ctl_off = m->cap + PCI_MSIX_FLAGS;
	uint16_t ctl;

	if (off >= ctl_off + 2 || ctl_off >= off + len)
		return;
	ctl = (uint16_t)(d->cfg[ctl_off] | d->cfg[ctl_off + 1] << 8);
	pthread_mutex_lock(&m->lock);
	for (unsigned i = 0; i < m->nvec; i++)
		if (!atomic_load(&m->v[i].masked))
			set_route(m, i);
	atomic_store(&m->enabled, ctl & PCI_MSIX_FLAGS_ENABLE);
	atomic_store(&m->fmask, ctl & PCI_MSIX_FLAGS_MASKALL);
	pthread_mutex_unlock(&m->lock);
	/* MSI-X on turns INTx off. */
	pci_intx_update(d);
	for (unsigned i = 0; i < m->nvec; i++)
		deliver_pending(m, i);
}

/* The dword at off in the BAR. */
static uint32_t dword_at(struct pci_msix *m, uint64_t off)
{
	struct msix_vec *v;

	if (off >= MSIX_PBA) {
		uint64_t first = (off - MSIX_PBA) * 8;
		uint32_t bits = 0;

		for (unsigned b = 0; b < 32; b++)
			if (first + b < m->nvec && atomic_load(&m->v[first + b].pending))
				bits |= 1u << b;
		return bits;
	}
	if (off / PCI_MSIX_ENTRY_SIZE >= m->nvec)
		return 0;
	v = &m->v[off / PCI_MSIX_ENTRY_SIZE];

	switch (off % PCI_MSIX_ENTRY_SIZE) {
	case PCI_MSIX_ENTRY_LOWER_ADDR:
		return (uint32_t)atomic_load(&v->addr);
	case PCI_MSIX_ENTRY_UPPER_ADDR:
		return (uint32_t)(atomic_load(&v->addr) >> 32);
	case PCI_MSIX_ENTRY_DATA:
		return atomic_load(&v->data);
	default:
		return atomic_load(&v->masked) ? PCI_MSIX_ENTRY_CTRL_MASKBIT : 0;
	}
}

static void bar_read(void *opaque, uint64_t addr, void *data, unsigned len)
{
	uint8_t *out = data;

	for (unsigned i = 0; i < len; i++) {
		uint64_t a = addr + i;

		out[i] = a < MSIX_BAR_SIZE ? (uint8_t)(dword_at(opaque, a & ~3ull) >> 8 * (a & 3))
					   : 0xff;
	}
}

static void table_write(struct pci_msix *m, uint64_t off, uint32_t val)
{
	struct msix_vec *v;

	if (off >= MSIX_PBA || off / PCI_MSIX_ENTRY_SIZE >= m->nvec)
		return;		/* the PBA is read-only */
	v = &m->v[off / PCI_MSIX_ENTRY_SIZE];
	pthread_mutex_lock(&m->lock);
	switch (off % PCI_MSIX_ENTRY_SIZE) {
	case PCI_MSIX_ENTRY_LOWER_ADDR:
		/* Bits 1:0 are reserved: a dword-aligned address. */
		atomic_store(&v->addr, (atomic_load(&v->addr) & ~0xffffffffull) | (val & ~3u));
		v->dirty = true;
		break;
	case PCI_MSIX_ENTRY_UPPER_ADDR:
		atomic_store(&v->addr, (atomic_load(&v->addr) & 0xffffffffull) |
			     (uint64_t)val << 32);
		v->dirty = true;
		break;
	case PCI_MSIX_ENTRY_DATA:
		atomic_store(&v->data, val);
		v->dirty = true;
		break;
	default:
		if (val & PCI_MSIX_ENTRY_CTRL_MASKBIT) {
			atomic_store(&v->masked, true);
		} else {
			/* The route first: an interrupt may follow at once. */
			set_route(m, (unsigned)(v - m->v));
			atomic_store(&v->masked, false);
		}
	}
	/* The guest changed a vector it had not masked (a driver should
	 * not): the new message from now on. */
	if (!atomic_load(&v->masked))
		set_route(m, (unsigned)(v - m->v));
	pthread_mutex_unlock(&m->lock);
	deliver_pending(m, (unsigned)(v - m->v));
}

static void bar_write(void *opaque, uint64_t addr, const void *data, unsigned len)
{
	const uint8_t *b = data;

	if ((len != 4 && len != 8) || addr % len || addr >= MSIX_BAR_SIZE)
		return;
	for (unsigned i = 0; i < len; i += 4)
		table_write(opaque, addr + i, (uint32_t)b[i] | (uint32_t)b[i + 1] << 8 |
			    (uint32_t)b[i + 2] << 16 | (uint32_t)b[i + 3] << 24);
}

static const struct io_ops bar_ops = { .read = bar_read, .write = bar_write };

static void reset_vectors(struct pci_msix *m)
{
	for (unsigned i = 0; i < m->nvec; i++) {
		atomic_store(&m->v[i].addr, 0);
		atomic_store(&m->v[i].data, 0);
		atomic_store(&m->v[i].masked, true);
		atomic_store(&m->v[i].pending, false);
		m->v[i].dirty = true;
	}
}

/* An irqfd on a GSI of its own for each vector: false when this host
 * cannot (then KVM_SIGNAL_MSI sends them). */
static bool setup_irqfds(struct pci_msix *m)
{
	struct vm *vm = pci_bus_vm(m->d->bus);

	if (!vm->caps.irqfd)
		return false;
	for (unsigned i = 0; i < m->nvec; i++) {
		struct msix_vec *v = &m->v[i];

		v->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (v->fd < 0 || vm_msi_route_add(vm, &v->gsi) < 0 ||
		    vm_irqfd(vm, v->fd, v->gsi) < 0)
			return false;
	}
	return true;
}

int pci_msix_init(struct pci_device *d, unsigned bar, unsigned nvec)
{
	struct vm *vm = pci_bus_vm(d->bus);
	struct pci_msix *m;
	int cap, r;

	if (!nvec || nvec > PCI_MSIX_MAX_VECTORS)
		return -EINVAL;
	if (!vm->caps.irqfd && !vm->caps.signal_msi)
		return -ENOTSUP;
	m = calloc(1, sizeof(*m) + nvec * sizeof(m->v[0]));
	if (!m)
		return -ENOMEM;
	m->d = d;
	m->nvec = nvec;
	pthread_mutex_init(&m->lock, NULL);
	for (unsigned i = 0; i < nvec; i++)
		m->v[i].fd = -1;
	reset_vectors(m);
	d->msix = m;
	m->irqfd = setup_irqfds(m);
	if (!m->irqfd && !vm->caps.signal_msi) {
		pci_msix_destroy(d);
		return -ENOTSUP;
	}
	r = pci_bar_add(d, bar, MSIX_BAR_SIZE, false, &bar_ops, m);
	cap = r < 0 ? r : pci_cap_add(d, PCI_CAP_ID_MSIX, MSIX_CAP_LEN);
	if (cap < 0) {
		pci_msix_destroy(d);
		return cap;
	}
	m->cap = (unsigned)cap;
	d->cfg[cap + PCI_MSIX_FLAGS] = (uint8_t)(nvec - 1);
	d->cfg[cap + PCI_MSIX_FLAGS + 1] = (uint8_t)((nvec - 1) >> 8);
	d->wmask[cap + PCI_MSIX_FLAGS + 1] = (PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL) >> 8;
	d->cfg[cap + PCI_MSIX_TABLE] = (uint8_t)bar;
	d->cfg[cap + PCI_MSIX_PBA] = (uint8_t)(MSIX_PBA | bar);
	d->cfg[cap + PCI_MSIX_PBA + 1] = MSIX_PBA >> 8;
	return 0;
}

void pci_msix_destroy(struct pci_device *d)
{
	struct pci_msix *m = d->msix;

	if (!m)
		return;
	for (unsigned i = 0; i < m->nvec; i++)
		if (m->v[i].fd >= 0)
			close(m->v[i].fd);
	pthread_mutex_destroy(&m->lock);
	free(m);
	d->msix = NULL;
}

void pci_msix_save(struct pci_device *d, struct dev_state *s)
{
	struct pci_msix *m = d->msix;

	state_put_section(s, "MSIX", 1);
	state_put_u32(s, m ? m->nvec : 0);
	for (unsigned i = 0; m && i < m->nvec; i++) {
		state_put_u64(s, atomic_load(&m->v[i].addr));
		state_put_u32(s, atomic_load(&m->v[i].data));
		state_put_u8(s, atomic_load(&m->v[i].masked));
		state_put_u8(s, atomic_load(&m->v[i].pending));
	}
}

/* With the bus lock held, after the configuration space is loaded. */
int pci_msix_load(struct pci_device *d, struct dev_state *s)
{
	struct pci_msix *m = d->msix;

	if (!state_get_section(s, "MSIX", 1))
		return s->err;
	if (state_get_u32(s) != (m ? m->nvec : 0))
		return s->err ? s->err : -EINVAL;
	if (!m)
		return 0;
	pthread_mutex_lock(&m->lock);
	reset_vectors(m);
	for (unsigned i = 0; i < m->nvec; i++) {
		atomic_store(&m->v[i].addr, state_get_u64(s) & ~3ull);
		atomic_store(&m->v[i].data, state_get_u32(s));
		atomic_store(&m->v[i].masked, state_get_u8(s) & 1);
		atomic_store(&m->v[i].pending, state_get_u8(s) & 1);
	}
	if (s->err)
		reset_vectors(m);
	for (unsigned i = 0; i < m->nvec; i++)
		set_route(m, i);
	pthread_mutex_unlock(&m->lock);
	/* The control word came with the configuration space. */
	pci_msix_control_written(d, m->cap + PCI_MSIX_FLAGS, 2);
	return s->err;
}
