// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The KVM VM: /dev/kvm, the capabilities vsrv relies on, the in-kernel
 * irqchip and PIT, and guest memory with a hole below 4 GiB for devices.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vm.h"

static const struct {
	int cap;
	const char *name;
} required_caps[] = {
	{ KVM_CAP_IRQCHIP, "IRQCHIP" },
	{ KVM_CAP_USER_MEMORY, "USER_MEMORY" },
	{ KVM_CAP_SET_TSS_ADDR, "SET_TSS_ADDR" },
	{ KVM_CAP_PIT2, "PIT2" },
	{ KVM_CAP_EXT_CPUID, "EXT_CPUID" },
	{ KVM_CAP_IMMEDIATE_EXIT, "IMMEDIATE_EXIT" },
	{ KVM_CAP_MP_STATE, "MP_STATE" },
	{ KVM_CAP_IRQ_ROUTING, "IRQ_ROUTING" },
};

static int fail(char *err, size_t len, int r, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t len, int r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
	return r;
}

/*
 * Anonymous guest memory on 2 MiB boundaries, as transparent huge pages
 * where the host allows them (QEMU does the same): loading a kernel and
 * initrd then faults in a page per 2 MiB rather than per 4 KiB, which on
 * a shadow-paged host is most of a start-up (docs/benchmarks-vmm.md), and
 * KVM maps the guest with large pages.  The cost is the granularity: a
 * guest that touches a byte of a 2 MiB piece has it all resident.  A
 * memfd is left as it is (shmem's huge pages are the host's setting, and
 * its holes are what a save writes by); --hugepages is hugetlbfs.
 */
static void *map_anon_thp(uint64_t size, int flags)
{
	uint64_t align = 2 << 20, lead;
	uint8_t *p = mmap(NULL, size + align, PROT_READ | PROT_WRITE, flags, -1, 0);

	if (p == MAP_FAILED)
		return p;
	lead = (align - (uintptr_t)p % align) % align;
	if (lead)
		munmap(p, lead);
	munmap(p + lead + size, align - lead);
	p += lead;
	/* Not fatal: a host without THP gives small pages. */
	madvise(p, size, MADV_HUGEPAGE);
	return p;
}

static int map_ram(struct vm *vm, uint64_t gpa, uint64_t size, int memfd,
		   uint64_t fd_off, char *err, size_t errlen)
{
	struct kvm_userspace_memory_region region;
	int flags = MAP_NORESERVE;
	void *p;

	if (memfd >= 0)
		flags |= MAP_SHARED;
	else
		flags |= MAP_PRIVATE | MAP_ANONYMOUS |
			 (vm->opts.hugepages ? MAP_HUGETLB : 0);
	if (memfd < 0 && !vm->opts.hugepages)
		p = map_anon_thp(size, flags);
	else
		p = mmap(NULL, size, PROT_READ | PROT_WRITE, flags, memfd, (off_t)fd_off);
	if (p == MAP_FAILED)
		return fail(err, errlen, -errno, "guest memory: mapping %llu MiB%s: %s",
			    (unsigned long long)(size >> 20),
			    vm->opts.hugepages ? " of huge pages" : "", strerror(errno));
	/* Guest memory in a core dump would be the guest's secrets. */
	madvise(p, size, MADV_DONTDUMP);
	region = (struct kvm_userspace_memory_region){
		.slot = vm->nr_mem,
		.guest_phys_addr = gpa,
		.memory_size = size,
		.userspace_addr = (uintptr_t)p,
	};
	if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &region) < 0) {
		int e = errno;

		munmap(p, size);
		return fail(err, errlen, -e, "KVM_SET_USER_MEMORY_REGION: %s", strerror(e));
	}
	vm->mem[vm->nr_mem++] = (struct mem_region){ .gpa = gpa, .size = size, .hva = p,
						     .fd_off = fd_off };
	return 0;
}

static int setup_memory(struct vm *vm, char *err, size_t errlen)
{
	uint64_t size = vm->opts.mem_size;
	int memfd = -1, r;

	vm->ram_below_4g = size < VM_MMIO_HOLE_START ? size : VM_MMIO_HOLE_START;
	vm->ram_above_4g = size - vm->ram_below_4g;
	if (vm->opts.memfd) {
		/* memfd: shareable with another process (saved state, a
		 * vhost-user backend later). */
		memfd = memfd_create("vsrv-guest-ram", MFD_CLOEXEC |
				     (vm->opts.hugepages ? MFD_HUGETLB : 0));
		if (memfd < 0)
			return fail(err, errlen, -errno, "memfd_create: %s", strerror(errno));
		if (ftruncate(memfd, (off_t)size) < 0) {
			r = fail(err, errlen, -errno, "guest memory: %s", strerror(errno));
			close(memfd);
			return r;
		}
	}
	r = map_ram(vm, 0, vm->ram_below_4g, memfd, 0, err, errlen);
	if (r >= 0 && vm->ram_above_4g)
		r = map_ram(vm, VM_HIGH_RAM_START, vm->ram_above_4g, memfd,
			    vm->ram_below_4g, err, errlen);
	/* Kept: which of its pages hold anything, the file says
	 * (guestmem.c). */
	vm->memfd = memfd;
	return r;
}

/*
 * KVM's halt polling: a vCPU that halts spins in the kernel for up to this
 * long before its thread sleeps, the time growing and shrinking as the
 * guest's wake-ups come within it or not (KVM's module parameter
 * halt_poll_ns is the limit for every VM otherwise: 200 us by default).
 * It saves a wake-up's latency when the next interrupt comes that soon,
 * and spends a host CPU on a guest doing nothing when it does not; on a
 * host of many mostly idle VMs that CPU is another VM's, so vsrv's default
 * is 0, no polling (bench/analysis-vmm.md, section 3).  Kernels before
 * 5.17 cannot set it per VM: there the host's stays, unless it was asked.
 */
static int set_halt_poll(struct vm *vm, char *err, size_t errlen)
{
	struct kvm_enable_cap cap = {
		.cap = KVM_CAP_HALT_POLL, .args = { vm->opts.halt_poll_ns },
	};

	if (ioctl(vm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_HALT_POLL) <= 0) {
		if (!vm->opts.halt_poll_given)
			return 0;
		return fail(err, errlen, -ENOTSUP,
			    "halt_poll_ns: this host's KVM cannot set it per VM (no KVM_CAP_HALT_POLL)");
	}
	if (ioctl(vm->vm_fd, KVM_ENABLE_CAP, &cap) < 0)
		return fail(err, errlen, -errno, "KVM_ENABLE_CAP(KVM_CAP_HALT_POLL, %u): %s",
			    vm->opts.halt_poll_ns, strerror(errno));
	return 0;
}

static void on_kick(int sig)
{
	(void)sig;	/* only interrupts KVM_RUN */
}

int vm_create(struct vm *vm, const struct vm_opts *opts, char *err, size_t errlen)
{
	struct kvm_pit_config pit = { .flags = KVM_PIT_SPEAKER_DUMMY };
	struct sigaction sa = { .sa_handler = on_kick };
	uint64_t ident = VM_IDENTITY_MAP_ADDR;
	int r, n = 128;

	memset(vm, 0, sizeof(*vm));
	vm->kvm_fd = vm->vm_fd = vm->memfd = -1;
	vm->opts = *opts;
	vm->main_thread = pthread_self();
	pthread_mutex_init(&vm->pause_lock, NULL);
	pthread_mutex_init(&vm->pause_users_lock, NULL);
	pthread_cond_init(&vm->pause_cond, NULL);
	vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (vm->kvm_fd < 0) {
		int e = errno;

		if (e == ENOENT)
			return fail(err, errlen, -e,
				    "/dev/kvm: no such device (is the kvm module loaded, and does the CPU have VT-x/AMD-V?)");
		if (e == EACCES || e == EPERM)
			return fail(err, errlen, -e,
				    "/dev/kvm: permission denied (add the user to the kvm group)");
		return fail(err, errlen, -e, "/dev/kvm: %s", strerror(e));
	}
	r = ioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0);
	if (r != KVM_API_VERSION)
		return fail(err, errlen, -EINVAL, "/dev/kvm: API version %d, expected %d",
			    r, KVM_API_VERSION);
	for (size_t i = 0; i < sizeof(required_caps) / sizeof(required_caps[0]); i++)
		if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, required_caps[i].cap) <= 0)
			return fail(err, errlen, -ENOTSUP,
				    "/dev/kvm: the KVM capability %s is missing",
				    required_caps[i].name);
	r = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
	if (r > 0 && (int)opts->nr_cpus > r)
		return fail(err, errlen, -EINVAL, "--cpus %u: this host's KVM allows %d",
			    opts->nr_cpus, r);
	vm->run_size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (vm->run_size <= 0)
		return fail(err, errlen, -errno, "KVM_GET_VCPU_MMAP_SIZE: %s", strerror(errno));
	for (;;) {
		vm->supported_cpuid = calloc(1, sizeof(*vm->supported_cpuid) +
					     (size_t)n * sizeof(struct kvm_cpuid_entry2));
		if (!vm->supported_cpuid)
			return fail(err, errlen, -ENOMEM, "out of memory");
		vm->supported_cpuid->nent = (uint32_t)n;
		if (ioctl(vm->kvm_fd, KVM_GET_SUPPORTED_CPUID, vm->supported_cpuid) == 0)
			break;
		free(vm->supported_cpuid);
		vm->supported_cpuid = NULL;
		if (errno != E2BIG || n > 4096)
			return fail(err, errlen, -errno, "KVM_GET_SUPPORTED_CPUID: %s",
				    strerror(errno));
		n *= 2;
	}
	vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0)
		return fail(err, errlen, -errno, "KVM_CREATE_VM: %s", strerror(errno));
	if (ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, (unsigned long)VM_TSS_ADDR) < 0 ||
	    ioctl(vm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &ident) < 0)
		return fail(err, errlen, -errno, "KVM_SET_TSS_ADDR: %s", strerror(errno));
	r = set_halt_poll(vm, err, errlen);
	if (r < 0)
		return r;
	/*
	 * Memory before the irqchip and the PIT: it starts faster.  Adding a
	 * memory slot waits in the kernel for a grace period of the VM's SRCU
	 * (kvm_swap_active_memslots), and so does putting devices on KVM's
	 * I/O buses, which the irqchip and the PIT do.  With the slot added
	 * after them, its wait took 4-10 ms on the project's test hosts; first,
	 * the three took 0.6-3 ms together (bench/vmm-run, docs/benchmarks-vmm.md).
	 */
	r = setup_memory(vm, err, errlen);
	if (r < 0)
		return r;
	if (ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0)
		return fail(err, errlen, -errno, "KVM_CREATE_IRQCHIP: %s", strerror(errno));
	if (ioctl(vm->vm_fd, KVM_CREATE_PIT2, &pit) < 0)
		return fail(err, errlen, -errno, "KVM_CREATE_PIT2: %s", strerror(errno));
	vm_caps_probe(vm);
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	return 0;
}

void vm_destroy(struct vm *vm)
{
	for (unsigned i = 0; i < VM_MAX_CPUS; i++) {
		struct vcpu *c = &vm->vcpus[i];

		if (c->run)
			munmap(c->run, (size_t)vm->run_size);
		free(c->cpuid);
		if (c->fd > 0)
			close(c->fd);
	}
	for (unsigned i = 0; i < vm->nr_mem; i++) {
		munmap(vm->mem[i].hva, vm->mem[i].size);
		free(vm->mem[i].mapped);
	}
	if (vm->memfd >= 0)
		close(vm->memfd);
	guestmem_close_files(vm);
	vm_routes_free(vm);
	free(vm->pio.r);
	free(vm->mmio.r);
	free(vm->supported_cpuid);
	vmstate_free(vm);
	pthread_cond_destroy(&vm->pause_cond);
	pthread_mutex_destroy(&vm->pause_lock);
	pthread_mutex_destroy(&vm->pause_users_lock);
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
}

int vm_mem_index(struct vm *vm, uint64_t gpa, uint64_t len)
{
	for (unsigned i = 0; i < vm->nr_mem; i++) {
		struct mem_region *m = &vm->mem[i];

		if (gpa >= m->gpa && gpa - m->gpa <= m->size &&
		    len <= m->size - (gpa - m->gpa))
			return (int)i;
	}
	return -1;
}

void *vm_gpa(struct vm *vm, uint64_t gpa, uint64_t len)
{
	int i = vm_mem_index(vm, gpa, len);

	return i < 0 ? NULL : (uint8_t *)vm->mem[i].hva + (gpa - vm->mem[i].gpa);
}

int vm_irq_line(struct vm *vm, unsigned gsi, bool level)
{
	struct kvm_irq_level irq = { .irq = gsi, .level = level };

	return ioctl(vm->vm_fd, KVM_IRQ_LINE, &irq) < 0 ? -errno : 0;
}

void vm_request_exit(struct vm *vm, enum vm_exit_kind kind, int value,
		     const char *fmt, ...)
{
	int expected = VM_RUNNING;
	va_list ap;

	if (!atomic_compare_exchange_strong(&vm->exit_kind, &expected, (int)kind))
		return;
	vm->exit_value = value;
	if (fmt) {
		va_start(ap, fmt);
		vsnprintf(vm->exit_msg, sizeof(vm->exit_msg), fmt, ap);
		va_end(ap);
	}
	vm_kick_vcpus(vm);
	/* Parked ones (pause.c) too. */
	pthread_mutex_lock(&vm->pause_lock);
	pthread_cond_broadcast(&vm->pause_cond);
	pthread_mutex_unlock(&vm->pause_lock);
	if (!pthread_equal(vm->main_thread, pthread_self()))
		pthread_kill(vm->main_thread, VM_EXIT_SIGNAL);
}
