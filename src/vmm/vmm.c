// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * One VM from start to end: create it, attach devices, load the kernel,
 * confine the process (sandbox.c), run the vCPUs, and turn how it ended
 * into an exit status.  Each boot runs in a process of its own under a
 * supervisor that holds the console (supervise.c); a reboot builds the VM
 * anew in a new process: the simplest reset that cannot leave state
 * behind, and the only one that can, as the seccomp filter forbids for
 * good what setting up a VM needs.
 *
 * Every VM has a PC's legacy devices: the UART on COM1 (the console), the
 * keyboard controller and the reset control register (resets), the CMOS
 * RTC, ACPI's power management registers (acpi-pm.c: the PM timer, the
 * SCI, the power button); and a PCI host bridge, with virtio devices behind
 * it as the configuration asks (--rng, --disk: disks.c, --net; --console
 * hvc and --port: a virtio-console).  A guest powers off through ACPI
 * (PM1a_CNT's S5) or, for micro-guests, the test device's exit port with 0.
 *
 * SIGTERM, SIGINT and SIGHUP stop the VM: its vCPUs leave KVM_RUN, the
 * devices are torn down in order and the console flushed, and vsrv ends
 * with status 0, as after a power-off.  They are blocked in every thread
 * and taken by the main thread with sigwaitinfo(), so that no handler runs
 * in a vCPU thread in the middle of a device.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../devices/devices.h"
#include "../devices/pci.h"
#include "../devices/virtio/blk.h"
#include "../devices/virtio/console.h"
#include "../devices/virtio/net.h"
#include "../devices/virtio/rng.h"
#include "acpi.h"
#include "control.h"
#include "vmm.h"

static int fail(const char *msg)
{
	fprintf(stderr, "vsrv: %s\n", msg);
	return VM_STATUS_ERROR;
}

/*
 * One line per exit reason: how often the vCPUs came out to user space,
 * which is what an exit costs most on (about 30 us on hosts without
 * hardware virtualization), split by vCPU when there are several.
 */
static void print_stats(const struct vm *vm, const struct vmm_devices *dev)
{
	for (unsigned reason = 0; reason < 64; reason++) {
		uint64_t total = 0;
		char per[VM_MAX_CPUS * 32] = "";
		size_t n = 0;

		for (unsigned i = 0; i < vm->opts.nr_cpus; i++)
			total += vm->vcpus[i].exits[reason];
		if (!total)
			continue;
		for (unsigned i = 0; vm->opts.nr_cpus > 1 && i < vm->opts.nr_cpus; i++)
			n += (size_t)snprintf(per + n, sizeof(per) - n, "%svCPU %u: %llu",
					      i ? ", " : " (", i,
					      (unsigned long long)vm->vcpus[i].exits[reason]);
		fprintf(stderr, "vsrv: exits: %s %llu%s%s\n",
			reason == 63 ? "other" : vcpu_exit_name(reason),
			(unsigned long long)total, per, n ? ")" : "");
	}
	if (dev->rng)
		virtio_rng_print_stats(dev->rng, stderr);
	for (unsigned i = 0; i < VMM_DISKS_MAX && dev->blk[i]; i++)
		virtio_blk_print_stats(dev->blk[i], stderr);
	for (unsigned i = 0; i < NET_NICS_MAX && dev->nics[i]; i++)
		virtio_net_print_stats(dev->nics[i], stderr);
	if (dev->vcon)
		virtio_console_print_stats(dev->vcon, stderr);
}

/* --console hvc and --port: a virtio-console whose port 0 is the console
 * (its input taken over from the UART, whose output still goes there, so
 * that a boot's early lines on ttyS0 are seen too), then the named ports
 * on the sockets vmm_supervise() listens on. */
static int vcon_create(const struct vmm_config *cfg, struct console *con,
		       struct vmm_devices *dev)
{
	struct vcon_port_cfg ports[VMM_PORTS_MAX];

	for (unsigned i = 0; i < cfg->nr_ports; i++)
		ports[i] = (struct vcon_port_cfg){ .name = cfg->ports[i].name,
						   .listen_fd = cfg->ports[i].listen_fd };
	return virtio_console_create(dev->pci, cfg->hvc ? con : NULL, ports, cfg->nr_ports,
				     &dev->vcon);
}

/* The legacy devices every VM has, the PCI bus, and the virtio devices
 * the configuration asks for.  err: a line of the disks' or the NICs'
 * own, if any. */
int vmm_devices_create(struct vm *vm, const struct vmm_config *cfg, struct console *con,
		       struct vmm_devices *dev, char *err, size_t errlen)
{
	int r = port80_init(vm);

	if (r >= 0)
		r = uart_init(vm, con, &dev->uart);
	if (r >= 0)
		r = i8042_init(vm, &dev->kbc);
	if (r >= 0)
		r = rtc_init(vm, &dev->rtc);
	if (r >= 0)
		r = acpi_pm_init(vm, &dev->pm);
	if (r >= 0 && cfg->vm.test_device)
		r = testdev_init(vm, dev->pm);
	if (r >= 0)
		r = pci_bus_create(vm, &dev->pci);
	if (r >= 0 && cfg->rng)
		r = virtio_rng_create(dev->pci, &dev->rng);
	/* In the configuration's order: disks, then NICs. */
	if (r >= 0)
		r = vmm_disks_attach(cfg, dev->pci, dev->blk, err, errlen);
	for (unsigned i = 0; r >= 0 && i < cfg->nr_nics; i++)
		r = virtio_net_create(dev->pci, &cfg->nics[i], i, &dev->nics[i], err, errlen);
	/* After them: the console's device keeps the slots theirs had. */
	if (r >= 0 && (cfg->hvc || cfg->nr_ports))
		r = vcon_create(cfg, con, dev);
	return r;
}

void vmm_devices_destroy(struct vmm_devices *dev)
{
	/* The virtio devices' threads end before the bus goes; the disks
	 * have their last flush. */
	for (unsigned i = 0; i < NET_NICS_MAX; i++)
		virtio_net_destroy(dev->nics[i]);
	virtio_rng_destroy(dev->rng);
	for (unsigned i = 0; i < VMM_DISKS_MAX; i++)
		virtio_blk_destroy(dev->blk[i]);
	virtio_console_destroy(dev->vcon);
	pci_bus_destroy(dev->pci);
	uart_destroy(dev->uart);
	i8042_destroy(dev->kbc);
	rtc_destroy(dev->rtc);
	acpi_pm_destroy(dev->pm);
}

/* The calls the sandbox must allow beyond the VMM's own. */
static unsigned sandbox_needs(const struct vmm_config *cfg)
{
	unsigned needs = 0;

	for (unsigned i = 0; i < cfg->nr_nics; i++)
		if (cfg->nics[i].type == NET_USER)
			needs |= SANDBOX_NET_USER;
	if (cfg->nr_ports)
		needs |= SANDBOX_CONSOLE_PORTS;
	if (cfg->checkpoints && cfg->control)
		needs |= SANDBOX_CHECKPOINTS;
	return needs;
}

/* Ctrl-A x on the console. */
static void console_quit(void *opaque)
{
	vm_request_exit(opaque, VM_EXIT_POWEROFF, 0, NULL);
}

/* Waits for the VM to end, or for a signal that ends it: 0, or the
 * signal. */
static int wait_for_end(struct vm *vm, const sigset_t *set)
{
	siginfo_t si;
	int sig;

	while (atomic_load(&vm->exit_kind) == VM_RUNNING) {
		sig = sigwaitinfo(set, &si);
		/* A file guest memory maps (a restore's saved state, a boot's
		 * kernel or initrd) is about to be written: si_fd says which,
		 * where the signal came with it (POLL_* codes are > 0). */
		if (sig == GUESTMEM_LEASE_SIGNAL) {
			guestmem_detach(vm, si.si_code > 0 ? si.si_fd : -1);
			continue;
		}
		if (sig > 0 && sig != VM_EXIT_SIGNAL) {
			vm_request_exit(vm, VM_EXIT_POWEROFF, 0, "stopped by SIG%s",
					sigabbrev_np(sig));
			return sig;
		}
	}
	return 0;
}

int vmm_run_once(const struct vmm_config *cfg, struct console *con, int control,
		 bool *reboot, bool child)
{
	struct vm_control *vc = NULL;
	struct vm vm;
	struct boot_info bi;
	struct vmm_devices dev = { 0 };
	char err[1024] = "";
	sigset_t wait_set;
	int r, status, sig;

	*reboot = false;
	r = vm_create(&vm, &cfg->vm, err, sizeof(err));
	if (r < 0) {
		vm_destroy(&vm);
		return fail(err);
	}
	vm.quirks = cfg->vm.quirks == QUIRKS_ON ||
		    (cfg->vm.quirks == QUIRKS_AUTO && quirks_detect());
	r = vmm_devices_create(&vm, cfg, con, &dev, err, sizeof(err));
	if (r < 0) {
		if (!err[0])
			snprintf(err, sizeof(err), "attaching devices: %s", strerror(-r));
		goto fail;
	}
	/* A restored VM's memory has its kernel, tables and all in it. */
	r = cfg->restore ? 0 : boot_load(&vm, &cfg->boot, &bi, err, sizeof(err));
	if (r >= 0 && cfg->acpi_dump)
		r = acpi_dump(&vm, cfg->acpi_dump, err, sizeof(err));
	if (r >= 0 && cfg->boot.dry_run) {
		fputs(bi.desc, stdout);
		vmm_devices_destroy(&dev);
		vm_destroy(&vm);
		return VM_STATUS_POWEROFF;
	}
	for (unsigned i = 0; r >= 0 && i < cfg->vm.nr_cpus; i++)
		r = vcpu_create(&vm, i, err, sizeof(err));
	if (r >= 0 && (cfg->restore || control >= 0))
		r = vmstate_init(&vm, err, sizeof(err));
	if (r >= 0 && cfg->restore) {
		struct timespec t0, t1;

		clock_gettime(CLOCK_MONOTONIC, &t0);
		r = vm_restore(&vm, cfg->restore, err, sizeof(err));
		clock_gettime(CLOCK_MONOTONIC, &t1);
		vm.restore_ns = (uint64_t)(t1.tv_sec - t0.tv_sec) * 1000000000ull +
				(uint64_t)t1.tv_nsec - (uint64_t)t0.tv_nsec;
	}
	else if (r >= 0)
		r = boot_setup_bsp(&vm.vcpus[0], &bi, err, sizeof(err));
	if (r >= 0 && control >= 0)
		r = vm_control_open(&vc, &vm, cfg, control, dev.pm, dev.kbc, err, sizeof(err));
	if (r >= 0 && vc)
		vm_control_set_disks(vc, dev.blk);
	/* Before the sandbox, which forbids asking for SIGHUP's disposition. */
	vmm_stop_signals(&wait_set);
	sigaddset(&wait_set, VM_EXIT_SIGNAL);
	sigaddset(&wait_set, GUESTMEM_LEASE_SIGNAL);
	if (r >= 0)
		r = sandbox_enter(sandbox_needs(cfg), err, sizeof(err));
	if (r >= 0)
		r = vcpus_start(&vm, err, sizeof(err));
	if (r >= 0 && vc && (r = vm_control_start(vc)) < 0)
		snprintf(err, sizeof(err), "control: starting its thread: %s", strerror(-r));
	if (r < 0)
		goto fail;
	console_set_quit(con, console_quit, &vm);
	sig = wait_for_end(&vm, &wait_set);
	vm_control_close(vc);
	vcpus_join(&vm);
	console_set_quit(con, NULL, NULL);
	console_flush(con);
	if (cfg->stats)
		print_stats(&vm, &dev);

	switch (atomic_load(&vm.exit_kind)) {
	case VM_EXIT_POWEROFF:
		/* In a boot's process, the supervisor says why it stopped. */
		if (console_quit_requested(con))
			fprintf(stderr, "vsrv: quit from the console\n");
		else if (sig && !child)
			fprintf(stderr, "vsrv: %s; the VM was powered off\n", vm.exit_msg);
		status = VM_STATUS_POWEROFF;
		break;
	case VM_EXIT_REBOOT:
		*reboot = cfg->on_reboot == ON_REBOOT_RESTART;
		if (!*reboot)
			fprintf(stderr, "vsrv: guest rebooted (%s)\n",
				vm.exit_msg[0] ? vm.exit_msg : "reset");
		status = VM_STATUS_REBOOT;
		break;
	case VM_EXIT_TEST:
		status = vm.exit_value & 0xff;
		break;
	case VM_EXIT_CRASH:
		fprintf(stderr, "vsrv: guest crashed: %s\n", vm.exit_msg);
		status = VM_STATUS_CRASH;
		break;
	default:
		fprintf(stderr, "vsrv: %s\n", vm.exit_msg);
		status = VM_STATUS_ERROR;
	}
	vmm_devices_destroy(&dev);
	vm_destroy(&vm);
	return status;
fail:
	vm_request_exit(&vm, VM_EXIT_ERROR, 0, "%s", err);
	vm_control_close(vc);
	vcpus_join(&vm);
	vmm_devices_destroy(&dev);
	vm_destroy(&vm);
	return fail(err);
}

void vmm_stop_signals(sigset_t *set)
{
	struct sigaction sa;

	sigemptyset(set);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	/* Ignored (nohup, or a console that is not the terminal's): stays so. */
	if (sigaction(SIGHUP, NULL, &sa) == 0 && sa.sa_handler != SIG_IGN)
		sigaddset(set, SIGHUP);
}

int vmm_run(const struct vmm_config *cfg)
{
	struct console *con;
	char err[1024];
	sigset_t set;
	bool reboot;
	int status;

	/* Blocked before any thread or process starts: all inherit it. */
	vmm_stop_signals(&set);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, VM_EXIT_SIGNAL);
	sigaddset(&set, GUESTMEM_LEASE_SIGNAL);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	if (!cfg->boot.dry_run)
		return vmm_supervise(cfg);
	/* Nothing runs: the UART needs a console, not the terminal. */
	if (console_open(&con, "file:/dev/null", 0, err, sizeof(err)) < 0)
		return fail(err);
	status = vmm_run_once(cfg, con, -1, &reboot, false);
	console_close(con);
	return status;
}
