/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The virtual machine: KVM fds, guest memory, vCPUs, and the buses devices
 * hang on.  One struct vm per process (vsrv run runs one VM).
 *
 * Threads: one per vCPU, running vcpu_run_loop(); device callbacks run on
 * the vCPU thread that exited (port and MMIO accesses).  The bus tables
 * are filled before the first KVM_RUN and read without locks afterwards.
 * A device with state shared between vCPUs locks it itself.
 */
#ifndef VSRV_VM_H
#define VSRV_VM_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>

#include <linux/kvm.h>

#define VM_MAX_CPUS		16
/* Guest-physical layout: RAM from 0, a hole below 4 GiB for devices
 * (PCI MMIO, IOAPIC at 0xfec00000, LAPIC at 0xfee00000), the rest of RAM
 * from 4 GiB. */
#define VM_MMIO_HOLE_START	0xc0000000ull	/* 3 GiB */
#define VM_MMIO_HOLE_END	0x100000000ull
#define VM_HIGH_RAM_START	0x100000000ull
/* The hole's map, shared by the PCI host bridge (src/devices/pci.c) and
 * the ACPI tables that describe it (src/vmm/acpi.c):
 *   0xc0000000-0xdfffffff  32-bit PCI memory BARs
 *   0xe0000000-0xe00fffff  MMCONFIG (ECAM) for bus 0
 *   0xfec00000             IOAPIC;  0xfee00000  LAPIC */
#define VM_PCI_MMIO_START	0xc0000000ull
#define VM_PCI_MMIO_END		0xe0000000ull
#define VM_PCI_MMCONFIG_BASE	0xe0000000ull
#define VM_PCI_MMCONFIG_SIZE	0x100000ull	/* bus 0: 32 devices x 8 functions x 4 KiB */
#define VM_IOAPIC_ADDR		0xfec00000ull
#define VM_LAPIC_ADDR		0xfee00000ull
/* Port I/O: 0xcf8/0xcfc-0xcff PCI configuration (type 1), ACPI PM1 and the
 * PM timer at 0x600-0x60b (PM1a_EVT 0x600, PM1a_CNT 0x604, PM_TMR 0x608),
 * SCI on GSI 9; PCI I/O BARs (if any) from 0xc000. */
#define VM_ACPI_PM_BASE		0x600u
#define VM_ACPI_SCI_GSI		9u
#define VM_PCI_IO_START		0xc000u
#define VM_PCI_IO_END		0x10000u
/* KVM's TSS and identity map pages (Intel), in the hole. */
#define VM_TSS_ADDR		0xfffbd000ull
#define VM_IDENTITY_MAP_ADDR	0xfffbc000ull

/* How a VM ended; vsrv run turns these into exit statuses. */
enum vm_exit_kind {
	VM_RUNNING = 0,
	VM_EXIT_POWEROFF,	/* status 0 */
	VM_EXIT_REBOOT,		/* status 3 with --on-reboot exit */
	VM_EXIT_CRASH,		/* status 4: the guest did what cannot run */
	VM_EXIT_ERROR,		/* status 1: the VMM failed */
	VM_EXIT_TEST,		/* the test device's exit port: its value */
};

/* Sent to the main thread when the VM starts to end (vm_request_exit);
 * blocked everywhere, taken by sigwaitinfo(). */
#define VM_EXIT_SIGNAL		SIGUSR2

#define VM_STATUS_POWEROFF	0
#define VM_STATUS_ERROR		1
#define VM_STATUS_USAGE		2
#define VM_STATUS_REBOOT	3
#define VM_STATUS_CRASH		4

/* Device access callbacks.  `addr` is the offset from the region's base;
 * len is 1, 2, 4 or 8.  A read fills data (the bus zero-fills first). */
struct io_ops {
	void (*read)(void *opaque, uint64_t addr, void *data, unsigned len);
	void (*write)(void *opaque, uint64_t addr, const void *data, unsigned len);
};

struct io_region {
	uint64_t base, len;
	const struct io_ops *ops;
	void *opaque;
	const char *name;
};

struct io_bus {
	struct io_region *r;	/* sorted by base, not overlapping */
	unsigned nr, cap;
};

struct mem_region {
	uint64_t gpa, size;
	void *hva;
	uint64_t fd_off;	/* where it lies in vm->memfd */
	/* Pages mapped from a file (a restore's saved state, a boot's kernel
	 * and initrd: guestmem.c), a bit each; NULL: none. */
	uint64_t *mapped;
};

/* A restore's saved state, or a boot's kernel and initrd. */
#define VM_MAPPED_FILES_MAX	3

struct vcpu;
struct vm;
struct dev_state;
struct msi_routes;

/*
 * The optional KVM capabilities the devices' fast paths use (eventfd.c),
 * probed at vm_create: each missing one has a slower fallback, and the
 * environment variable VSRV_TEST_HIDE_CAPS (a comma-separated list of
 * IOEVENTFD, IRQFD, SIGNAL_MSI) makes tests take the fallbacks here too.
 */
struct vm_caps {
	bool ioeventfd;		/* guest writes signal an eventfd, no exit */
	bool ioeventfd_any_length;
	bool irqfd;		/* an eventfd write raises a GSI (with MSI routes) */
	bool signal_msi;	/* KVM_SIGNAL_MSI */
};

/*
 * A device with state to save (saved state and checkpoints): quiesce
 * finishes its in-flight work and stops it until resume; save writes its
 * state; load puts the device back to power-on and then into the saved
 * state, which it checks as untrusted input.  Called on a thread that
 * holds no device lock, with the vCPUs stopped or, in tests, from the
 * vCPU thread that asked.
 */
struct vm_device_ops {
	int (*quiesce)(void *opaque);
	void (*resume)(void *opaque);
	int (*save)(void *opaque, struct dev_state *s);
	int (*load)(void *opaque, struct dev_state *s);
	/* Optional, for `stats` (docs/control.md): what the device counted,
	 * name by name, read without its locks (relaxed atomics). */
	void (*counters)(void *opaque, void (*put)(void *ctx, const char *name, uint64_t v),
			 void *ctx);
	/* Optional, for saved state (snapshot.c): what the device stands on
	 * outside the VM (a disk: each VHD's unique id and modification
	 * stamp), saved in a section of its own ("DREF").  check_ref is
	 * called at a restore before anything is loaded into the VM, and
	 * refuses, with one line in err, a state whose references no longer
	 * hold (a disk changed since the save). */
	int (*save_ref)(void *opaque, struct dev_state *s);
	int (*check_ref)(void *opaque, struct dev_state *s, char *err, size_t errlen);
};

struct vm_device {
	const char *name;
	const struct vm_device_ops *ops;
	void *opaque;
	struct vm_device *next;
};

/* Host quirks: see quirks.c.  AUTO detects a host without hardware
 * virtualization (kvm_pvm) and turns them on there only. */
enum quirks_mode { QUIRKS_AUTO, QUIRKS_ON, QUIRKS_OFF };

struct vm_opts {
	unsigned nr_cpus;
	uint64_t mem_size;
	bool hugepages;
	bool memfd;
	enum quirks_mode quirks;
	bool test_device;	/* micro-guest debug (0xe9) and exit (0xf4) ports */
	/* How long KVM polls a halted vCPU before it sleeps (kvm.c); given
	 * by the user, it must take. */
	uint32_t halt_poll_ns;
	bool halt_poll_given;
};

/* --halt-poll-ns, "halt_poll_ns": at most a second. */
#define VM_HALT_POLL_NS_MAX	1000000000u

struct vcpu {
	struct vm *vm;
	unsigned id;
	int fd;
	struct kvm_run *run;
	pthread_t thread;
	atomic_bool started;	/* its thread made (vcpus_start) */
	struct kvm_cpuid2 *cpuid;	/* what KVM_SET_CPUID2 was given */
	/* Counters, written by this vCPU's thread only (relaxed atomics:
	 * `stats` reads them while it runs): exits to user space by
	 * KVM_EXIT_* reason (63 and up share the last), and where its time
	 * went, in KVM_RUN (the guest running or halted) or handling exits. */
	_Atomic uint64_t exits[64];
	_Atomic uint64_t exits_total;
	_Atomic uint64_t run_ns, exit_ns;
};

struct vm {
	int kvm_fd, vm_fd;
	int run_size;		/* mmap size of struct kvm_run */
	struct vm_opts opts;
	bool quirks;		/* host quirks active */
	struct mem_region mem[2];
	unsigned nr_mem;
	int memfd;		/* guest RAM's memfd (--memfd), or -1 */
	/* The files whose pages guest RAM maps, each with its read lease
	 * held (guestmem.c): a restore's saved state, or a boot's kernel and
	 * initrd. */
	struct vm_mapped_file {
		int fd;
		const char *path;
	} files[VM_MAPPED_FILES_MAX];
	unsigned nr_files;
	uint64_t ram_below_4g;	/* bytes of RAM from 0 */
	uint64_t ram_above_4g;	/* bytes of RAM from 4 GiB */
	struct io_bus pio, mmio;
	struct vm_caps caps;
	struct msi_routes *routes;	/* eventfd.c: GSI routing with MSI routes */
	struct vm_device *devices;	/* those that save state, in order added */
	/* The PCI slots whose INTA is wired (to GSI 16 + slot % 8), for the
	 * MP table; set by src/devices/pci.c at set-up. */
	uint32_t pci_intx_slots;
	struct vcpu vcpus[VM_MAX_CPUS];
	struct kvm_cpuid2 *supported_cpuid;
	struct vm_state_caps *state_caps;	/* vmstate.c, once asked for */
	uint64_t restore_ns;	/* how long vm_restore() took, 0: not restored */

	/* Pausing (pause.c): while pause_req is set, each vCPU thread parks
	 * outside KVM_RUN; `parked` counts them, pause_cond wakes both sides. */
	atomic_bool pause_req;
	pthread_mutex_t pause_lock;
	pthread_cond_t pause_cond;
	/* Who holds the VM paused (the control thread, guestmem_detach() on
	 * the main thread): it resumes when the last lets go. */
	pthread_mutex_t pause_users_lock;
	unsigned pause_users;
	unsigned parked;

	/* Ending: the first vCPU to see an exit condition records it and
	 * kicks the others. */
	atomic_int exit_kind;
	pthread_t main_thread;	/* told of the exit with VM_EXIT_SIGNAL */
	int exit_value;		/* VM_EXIT_TEST's value */
	char exit_msg[512];	/* for CRASH and ERROR: one line */
};

/* kvm.c */
int vm_create(struct vm *vm, const struct vm_opts *opts, char *err, size_t errlen);
void vm_destroy(struct vm *vm);
/* Host pointer for [gpa, gpa + len) when it is wholly inside one RAM
 * region, else NULL.  The guest is untrusted: check every pointer. */
void *vm_gpa(struct vm *vm, uint64_t gpa, uint64_t len);
/* The index in vm->mem of that region, or -1. */
int vm_mem_index(struct vm *vm, uint64_t gpa, uint64_t len);
int vm_irq_line(struct vm *vm, unsigned gsi, bool level);
/* Records how the VM ends (first caller wins) and stops every vCPU. */
void vm_request_exit(struct vm *vm, enum vm_exit_kind kind, int value,
		     const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* eventfd.c: the optional capabilities (struct vm_caps), ioeventfds, and
 * MSIs through irqfds on GSI routes or KVM_SIGNAL_MSI.  Each returns 0 or
 * a negative errno. */
void vm_caps_probe(struct vm *vm);
/* A guest write to gpa (of any length where the host allows, else 2
 * bytes) signals fd instead of exiting. */
int vm_ioeventfd(struct vm *vm, uint64_t gpa, int fd, bool assign);
/* A GSI of its own for one MSI vector, routed nowhere until set. */
int vm_msi_route_add(struct vm *vm, unsigned *gsi);
int vm_msi_route_set(struct vm *vm, unsigned gsi, uint64_t addr, uint32_t data);
int vm_irqfd(struct vm *vm, int fd, unsigned gsi);
int vm_signal_msi(struct vm *vm, uint64_t addr, uint32_t data);
void vm_routes_free(struct vm *vm);

/* iobus.c: registration is for set-up time, before vcpu threads start. */
int vm_register_pio(struct vm *vm, uint16_t base, uint16_t len,
		    const struct io_ops *ops, void *opaque, const char *name);
int vm_register_mmio(struct vm *vm, uint64_t base, uint64_t len,
		     const struct io_ops *ops, void *opaque, const char *name);
/* Set-up and teardown: a device whose state can be saved (struct
 * vm_device_ops); removing one that is not there does nothing. */
void vm_add_device(struct vm *vm, struct vm_device *d);
void vm_remove_device(struct vm *vm, struct vm_device *d);
/* Returns false when nothing is there (reads then see all ones). */
bool io_bus_access(struct io_bus *bus, uint64_t addr, void *data,
		   unsigned len, bool write);

/* guestmem.c: the pages of guest RAM that may hold data (present or
 * swapped out: in the VMM's pagemap, or in a memfd's file), in runs;
 * never-touched ones are skipped.  pagemap: guestmem_open_pagemap()'s fd
 * (before the sandbox). */
#define VM_PAGE_SIZE	4096ull
typedef int (*guestmem_fn)(void *opaque, uint64_t gpa, void *hva, uint64_t len);
int guestmem_open_pagemap(void);
int guestmem_runs(struct vm *vm, int pagemap, guestmem_fn fn, void *opaque);
int guestmem_region_runs(struct vm *vm, int pagemap, unsigned m, guestmem_fn fn, void *opaque);
int guestmem_touched(struct vm *vm, int pagemap, uint64_t *bytes);
/* Pages of a file (fd, O_RDONLY) mapped into guest RAM, copy-on-write: a
 * restore's saved state, a boot's kernel and initrd.  guestmem_lease()
 * says whether this VM may (and takes a read lease on the file);
 * guestmem_map() maps npages of region m from page `page` on at file
 * offset off: 0, or a negative errno with guest RAM there unusable (the
 * restore or boot fails).  Once it mapped any, the caller hands fd to the
 * VM with guestmem_keep() (path: the file's name, kept as given) for as
 * long as the VM runs; one that mapped none closes it.  When a lease is
 * broken (GUESTMEM_LEASE_SIGNAL, its siginfo's si_fd the file's: someone
 * opens it to write it), guestmem_detach() copies every page still any
 * file's and lets them all go. */
bool guestmem_lease(struct vm *vm, int fd);
int guestmem_map(struct vm *vm, unsigned m, uint64_t page, uint64_t npages, int fd, uint64_t off);
void guestmem_keep(struct vm *vm, int fd, const char *path);
#define GUESTMEM_LEASE_SIGNAL	SIGIO
void guestmem_detach(struct vm *vm, int fd);
/* At the VM's end, after guest RAM is unmapped: closes the files. */
void guestmem_close_files(struct vm *vm);

/* vmstate.c: KVM's part of saved state (vCPUs, irqchip, PIT, clock), in
 * state.h's streams.  vmstate_init() asks /dev/kvm what saving needs
 * (before the sandbox) and hands it to vmstate_init_host(), which the
 * saved-state fuzzer calls itself (it has no KVM); the rest take a
 * paused VM.  A restore reads and checks each stream first (*_read: no
 * KVM call) and sets it later (*_set: the ioctls). */
struct vm_state_caps;
struct vm_state_host {
	int xsave_size;		/* KVM_CAP_XSAVE2's; 0: none */
	bool xsave, xcrs, debugregs;	/* KVM_CAP_XSAVE, _XCRS, _DEBUGREGS */
	const uint32_t *msrs;	/* KVM_GET_MSR_INDEX_LIST's */
	uint32_t nr_msrs;
};
int vmstate_init(struct vm *vm, char *err, size_t errlen);
int vmstate_init_host(struct vm *vm, const struct vm_state_host *h, char *err, size_t errlen);
void vmstate_free(struct vm *vm);
int vcpu_state_save(struct vcpu *c, struct dev_state *s);
struct vcpu_saved;
int vcpu_state_read(struct vcpu *c, struct dev_state *s, struct vcpu_saved **out, char *err,
		    size_t errlen);
int vcpu_state_set(struct vcpu *c, struct vcpu_saved *v, char *err, size_t errlen);
void vcpu_saved_free(struct vcpu_saved *v);
struct vm_saved {
	struct kvm_irqchip chip[3];	/* both PICs, the IOAPIC */
	struct kvm_pit_state2 pit;
	struct kvm_clock_data clock;
};
int vm_state_save(struct vm *vm, struct dev_state *s);
int vm_state_read(struct vm *vm, struct dev_state *s, struct vm_saved *v, char *err,
		  size_t errlen);
int vm_state_set(struct vm *vm, const struct vm_saved *v, char *err, size_t errlen);
/* Refuses a state whose CPUID (vCPU 0's stream) has features this host's
 * KVM does not offer; err names them. */
int vmstate_check_cpuid(struct vm *vm, struct dev_state *vcpu0, char *err, size_t errlen);

/* pause.c: every vCPU out of KVM_RUN and held, then every device
 * quiesced (its I/O thread stopped); and the way back.  From a thread that
 * is not a vCPU's; a VM paused already stays paused until each vm_pause()
 * has had its vm_resume().  -ESHUTDOWN when the VM is ending. */
int vm_pause(struct vm *vm);
void vm_resume(struct vm *vm);
/* On a vCPU's thread, when it sees pause_req: parks until released. */
void vcpu_park(struct vcpu *c);
/* Stops every vCPU that is in or about to enter KVM_RUN. */
void vm_kick_vcpus(struct vm *vm);

/* vcpu.c */
int vcpu_create(struct vm *vm, unsigned id, char *err, size_t errlen);
int vcpus_start(struct vm *vm, char *err, size_t errlen);
/* Waits for every vCPU thread to end. */
void vcpus_join(struct vm *vm);
/* Dumps registers and, for emulation failures, the instruction bytes. */
void vcpu_dump(struct vcpu *c, char *out, size_t len);
/* KVM_EXIT_* as text ("IO", "MMIO", ...); "?" for one vsrv does not know. */
const char *vcpu_exit_name(uint32_t reason);

/* sandbox.c: no_new_privs and the seccomp allow-list, for every thread
 * (called once set-up is done, before the first KVM_RUN).  needs: the
 * SANDBOX_* sets of calls some devices add. */
#define SANDBOX_NET_USER	(1u << 0)	/* reaping vsrv-net (--net user) */
#define SANDBOX_CONSOLE_PORTS	(1u << 1)	/* virtio-console's named ports (--port) */
#define SANDBOX_CHECKPOINTS	(1u << 2)	/* checkpoints' disk layers (--checkpoints) */
int sandbox_enter(unsigned needs, char *err, size_t errlen);
/* With VSRV_TEST_FORBIDDEN_SYSCALL=main or vcpu, makes a forbidden call in
 * the main thread (at sandbox_enter) or vCPU 0's thread (here). */
void sandbox_test_hook(bool vcpu);
/* For a thread of the VMM's own: blocks every signal but `allow` (0 for
 * none) and the faults, so that the main thread handles them. */
void vm_thread_signals(int allow);

/* cpuid.c */
int cpuid_setup(struct vcpu *c, char *err, size_t errlen);

/* quirks.c */
bool quirks_detect(void);
/* Handles an emulation failure the host cannot run (INT3, FWAIT): true
 * when the vCPU can continue. */
bool quirks_emulation_failure(struct vcpu *c);
/* The kernel parameters that keep Linux off what the host cannot emulate;
 * "" when quirks are off. */
const char *quirks_cmdline(struct vm *vm);
/* Clears the KVM paravirtual features whose hypercalls hang on the host. */
void quirks_cpuid(struct vm *vm, struct kvm_cpuid2 *cpuid);

#endif
