// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * KVM's eventfd paths, which keep device traffic off the vCPU threads: an
 * ioeventfd turns a guest's write to a doorbell into an eventfd signal
 * inside KVM (no exit to user space), and an irqfd turns an eventfd write
 * from any thread into an interrupt on a GSI.  An MSI reaches the guest
 * through an irqfd on a GSI routed to the message's address and data, or,
 * without irqfds, through KVM_SIGNAL_MSI.
 *
 * GSI routing is one table for the whole VM, replaced whole by
 * KVM_SET_GSI_ROUTING: so the table vsrv sets holds KVM's own default
 * routes for GSIs 0-23 (the PIC and IOAPIC pins that KVM_IRQ_LINE uses,
 * GSI n on IOAPIC pin n) before the MSI routes, which take GSIs from 24.
 * Until a device adds an MSI route the VM keeps KVM's default table.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "vm.h"

#define MSI_GSI_BASE	24	/* after the IOAPIC's 24 pins */
#define MSI_ROUTES_MAX	1024	/* KVM allows 4096 routes; 32 devices need far fewer */
#define LEGACY_ROUTES	(16 * 2 + 8)	/* GSI 0-15 on PIC and IOAPIC, 16-23 IOAPIC */

struct msi_routes {
	pthread_mutex_t lock;
	unsigned nr;		/* MSI routes: GSIs MSI_GSI_BASE .. + nr - 1 */
	struct { uint64_t addr; uint32_t data; } msi[MSI_ROUTES_MAX];
	struct kvm_irq_routing *table;	/* what the last commit sent */
};

/* Whether VSRV_TEST_HIDE_CAPS names the capability. */
static bool hidden(const char *name)
{
	const char *p = getenv("VSRV_TEST_HIDE_CAPS");
	size_t n = strlen(name);

	while (p && *p) {
		if (!strncmp(p, name, n) && (p[n] == ',' || !p[n]))
			return true;
		p = strchr(p, ',');
		if (p)
			p++;
	}
	return false;
}

static bool has_cap(struct vm *vm, int cap, const char *name)
{
	return !hidden(name) && ioctl(vm->vm_fd, KVM_CHECK_EXTENSION, cap) > 0;
}

void vm_caps_probe(struct vm *vm)
{
	vm->caps.ioeventfd = has_cap(vm, KVM_CAP_IOEVENTFD, "IOEVENTFD");
	vm->caps.ioeventfd_any_length = vm->caps.ioeventfd &&
		has_cap(vm, KVM_CAP_IOEVENTFD_ANY_LENGTH, "IOEVENTFD");
	vm->caps.irqfd = has_cap(vm, KVM_CAP_IRQFD, "IRQFD");
	vm->caps.signal_msi = has_cap(vm, KVM_CAP_SIGNAL_MSI, "SIGNAL_MSI");
}

int vm_ioeventfd(struct vm *vm, uint64_t gpa, int fd, bool assign)
{
	struct kvm_ioeventfd io = {
		.addr = gpa,
		/* Length 0 matches writes of any width (a driver's doorbell
		 * write is 16 bits, but a guest may use another). */
		.len = vm->caps.ioeventfd_any_length ? 0 : 2,
		.fd = fd,
		.flags = assign ? 0 : KVM_IOEVENTFD_FLAG_DEASSIGN,
	};

	if (!vm->caps.ioeventfd)
		return -ENOTSUP;
	return ioctl(vm->vm_fd, KVM_IOEVENTFD, &io) < 0 ? -errno : 0;
}

static void route_irqchip(struct kvm_irq_routing_entry *e, unsigned gsi, unsigned chip,
			  unsigned pin)
{
	*e = (struct kvm_irq_routing_entry){
		.gsi = gsi, .type = KVM_IRQ_ROUTING_IRQCHIP,
		.u.irqchip = { .irqchip = chip, .pin = pin },
	};
}

/* Sends the whole table: KVM's defaults, then every MSI route.  Called
 * with the lock held. */
static int commit(struct vm *vm, struct msi_routes *r)
{
	struct kvm_irq_routing *t = r->table;
	unsigned n = 0;

	for (unsigned gsi = 0; gsi < 24; gsi++) {
		if (gsi < 16)
			route_irqchip(&t->entries[n++], gsi,
				      gsi < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE,
				      gsi % 8);
		route_irqchip(&t->entries[n++], gsi, KVM_IRQCHIP_IOAPIC, gsi);
	}
	for (unsigned i = 0; i < r->nr; i++)
		t->entries[n++] = (struct kvm_irq_routing_entry){
			.gsi = MSI_GSI_BASE + i, .type = KVM_IRQ_ROUTING_MSI,
			.u.msi = {
				.address_lo = (uint32_t)r->msi[i].addr,
				.address_hi = (uint32_t)(r->msi[i].addr >> 32),
				.data = r->msi[i].data,
			},
		};
	t->nr = n;
	t->flags = 0;
	return ioctl(vm->vm_fd, KVM_SET_GSI_ROUTING, t) < 0 ? -errno : 0;
}

int vm_msi_route_add(struct vm *vm, unsigned *gsi)
{
	struct msi_routes *r = vm->routes;
	int ret;

	if (!vm->caps.irqfd)
		return -ENOTSUP;
	if (!r) {
		/* Set-up time, single-threaded: allocated once. */
		r = calloc(1, sizeof(*r));
		if (r)
			r->table = calloc(1, sizeof(*r->table) + (LEGACY_ROUTES + MSI_ROUTES_MAX) *
					  sizeof(struct kvm_irq_routing_entry));
		if (!r || !r->table) {
			free(r);
			return -ENOMEM;
		}
		pthread_mutex_init(&r->lock, NULL);
		vm->routes = r;
	}
	pthread_mutex_lock(&r->lock);
	if (r->nr == MSI_ROUTES_MAX) {
		ret = -ENOSPC;
	} else {
		r->msi[r->nr].addr = 0;
		r->msi[r->nr].data = 0;
		*gsi = MSI_GSI_BASE + r->nr++;
		ret = commit(vm, r);
		if (ret < 0)
			r->nr--;
	}
	pthread_mutex_unlock(&r->lock);
	return ret;
}

int vm_msi_route_set(struct vm *vm, unsigned gsi, uint64_t addr, uint32_t data)
{
	struct msi_routes *r = vm->routes;
	unsigned i = gsi - MSI_GSI_BASE;
	int ret = 0;

	if (!r || gsi < MSI_GSI_BASE)
		return -EINVAL;
	pthread_mutex_lock(&r->lock);
	if (i >= r->nr)
		ret = -EINVAL;
	else if (r->msi[i].addr != addr || r->msi[i].data != data) {
		r->msi[i].addr = addr;
		r->msi[i].data = data;
		ret = commit(vm, r);
	}
	pthread_mutex_unlock(&r->lock);
	return ret;
}

int vm_irqfd(struct vm *vm, int fd, unsigned gsi)
{
	struct kvm_irqfd irqfd = { .fd = (uint32_t)fd, .gsi = gsi };

	if (!vm->caps.irqfd)
		return -ENOTSUP;
	return ioctl(vm->vm_fd, KVM_IRQFD, &irqfd) < 0 ? -errno : 0;
}

int vm_signal_msi(struct vm *vm, uint64_t addr, uint32_t data)
{
	struct kvm_msi msi = {
		.address_lo = (uint32_t)addr, .address_hi = (uint32_t)(addr >> 32), .data = data,
	};

	if (!vm->caps.signal_msi)
		return -ENOTSUP;
	/* 0: the guest's APIC ignored it (masked, or no such destination). */
	return ioctl(vm->vm_fd, KVM_SIGNAL_MSI, &msi) < 0 ? -errno : 0;
}

void vm_routes_free(struct vm *vm)
{
	if (!vm->routes)
		return;
	pthread_mutex_destroy(&vm->routes->lock);
	free(vm->routes->table);
	free(vm->routes);
	vm->routes = NULL;
}
