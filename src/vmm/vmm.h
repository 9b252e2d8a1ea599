/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Running one VM from its configuration to its end. */
#ifndef VSRV_VMM_H
#define VSRV_VMM_H

#include "../devices/virtio/console-ctrl.h"
#include "../disk/disk.h"
#include "../net/net.h"
#include "boot.h"
#include "vm.h"

enum on_reboot { ON_REBOOT_RESTART, ON_REBOOT_EXIT };

/* Below 16 MiB no kernel fits; above 1 TiB is a typo. */
#define VMM_MEMORY_MIN	(16ull << 20)
#define VMM_MEMORY_MAX	(1ull << 40)

/* Disks a VM may have: each is a PCI device (virtio-blk). */
#define VMM_DISKS_MAX	16

/* A disk of the VM (--disk, "disks"): the spec as given, for an undo
 * disk the overlay vsrv run makes once for all its boots, and for a disk
 * with checkpoints the layer of its chain the VM runs on (disks.c). */
struct vmm_disk {
	struct disk_spec spec;
	char *overlay;		/* the supervisor's; NULL until made */
	char *base;		/* with --checkpoints: the path's real path */
	char *top;		/* the checkpoints' top layer; NULL: the path */
};

struct config_file;
struct console;
struct pci_bus;
struct virtio_blk;

/* A named port of the virtio-console (--port NAME=socket:PATH). */
#define VMM_PORTS_MAX	(VCON_PORTS_MAX - 1)
struct vmm_port {
	char name[VCON_NAME_MAX + 1];
	const char *socket;	/* the path vsrv listens on */
	int listen_fd;		/* vmm_supervise()'s, for the boots; -1 before */
};

struct vmm_config {
	struct vm_opts vm;
	struct boot_opts boot;
	enum on_reboot on_reboot;
	bool stats;		/* print exit counts when the VM ends */
	bool rng;		/* a virtio-rng device (--rng) */
	struct net_spec nics[NET_NICS_MAX];	/* virtio-net devices (--net, "nics") */
	unsigned nr_nics;
	const char *name, *uuid;	/* identity, from --config */
	const char *console;	/* stdio, file:PATH, socket:PATH; NULL: stdio */
	bool hvc;		/* the console on a virtio-console's hvc0, not COM1 */
	struct vmm_port ports[VMM_PORTS_MAX];
	unsigned nr_ports;
	struct config_file *file;	/* what --config read; owns the strings */
	uint64_t console_buffer;	/* output kept for a reader; 0: default */
	const char *acpi_dump;	/* --dump-acpi: a directory for the tables */
	struct vmm_disk disks[VMM_DISKS_MAX];
	unsigned nr_disks;
	const char *control;	/* --control: the control socket's path */
	const char *checkpoints;	/* --checkpoints: their folder */
	const char *restore;	/* --restore: the saved state the first boot starts from */
	void *restore_conf;	/* its configuration (a json_t), snapshot.c's */
};

/* config.c: fills cfg from a JSON file (docs/vm-config.md), over what it
 * holds.  On error, one line in err.  vmm_config_free() releases the file
 * either way. */
int vmm_config_load(const char *path, struct vmm_config *cfg, char *err, size_t errlen);
void vmm_config_free(struct vmm_config *cfg);
/* Adds a named port, the name's namelen bytes at name (socket: the
 * caller's); on error, one line in err saying what is wrong. */
int vmm_port_add(struct vmm_config *cfg, const char *name, size_t namelen, const char *socket,
		 char *err, size_t errlen);
/* cfg's disks as "disks" is written (a json_t array), and such an array
 * read back into cfg's disks, their paths as written (saved state's
 * configuration, snapshot.c); `what` names it in the error line. */
struct json_t;
struct json_t *vmm_config_disks_json(const struct vmm_config *cfg);
int vmm_config_disks_from_json(struct json_t *arr, const char *what, struct vmm_config *cfg,
			       char *err, size_t errlen);
/* The same for "nics" (type, name, mac, hostfwd as the file has them). */
struct json_t *vmm_config_nics_json(const struct vmm_config *cfg);
int vmm_config_nics_from_json(struct json_t *arr, const char *what, struct vmm_config *cfg,
			      char *err, size_t errlen);

/* vmm.c: the devices of a VM as its configuration asks, in the order a
 * saved state has them (also the saved-state fuzzer's); err: one line of
 * a disk's or a NIC's, if any. */
struct uart;
struct i8042;
struct rtc;
struct acpi_pm;
struct virtio_rng;
struct virtio_net;
struct virtio_console;
struct vmm_devices {
	struct uart *uart;
	struct i8042 *kbc;
	struct rtc *rtc;
	struct acpi_pm *pm;
	struct pci_bus *pci;
	struct virtio_rng *rng;
	struct virtio_blk *blk[VMM_DISKS_MAX];
	struct virtio_net *nics[NET_NICS_MAX];
	struct virtio_console *vcon;
};
int vmm_devices_create(struct vm *vm, const struct vmm_config *cfg, struct console *con,
		       struct vmm_devices *dev, char *err, size_t errlen);
void vmm_devices_destroy(struct vmm_devices *dev);

/* vmm.c: one boot of the VM on the console; *reboot says whether it asked
 * to start again.  control: the boot's end of its control channel, or -1
 * (control.h).  child: a boot's process under vmm_supervise(), which
 * reports the stop signals itself. */
int vmm_run_once(const struct vmm_config *cfg, struct console *con, int control,
		 bool *reboot, bool child);
/* The signals that stop the VM (SIGTERM, SIGINT and, unless ignored, SIGHUP). */
void vmm_stop_signals(sigset_t *set);
/* supervise.c: the console in a process of its own, and the boots, each
 * in a child process, until one does not reboot. */
int vmm_supervise(const struct vmm_config *cfg);

/*
 * disks.c.  Undo disks span every boot of one vsrv run: the supervisor
 * makes their overlays before the first boot (undo_begin, which fills
 * each disk's overlay) and finishes them, as each disk's undo= says,
 * after the last (undo_end, one line each saying what it did).  Each
 * boot opens every disk, an undo disk's overlay as a plain VHD, and puts
 * a virtio-blk device on the bus for it (attach), before the sandbox.
 * Each prints or fills one line on failure; undo_end returns -EIO when
 * any overlay could not be finished.
 */
int vmm_disks_undo_begin(struct vmm_config *cfg, char *err, size_t errlen);
int vmm_disks_undo_end(struct vmm_config *cfg);
/* `undo MODE` through the control socket: what every undo disk's run
 * comes to at its end; how many disks that is (0: none has undo=). */
unsigned vmm_disks_undo_set(struct vmm_config *cfg, enum disk_undo mode);

/*
 * disks.c.  Checkpoints' disks (docs/control.md): each writable VHD disk
 * of a VM with --checkpoints runs on the top of a chain of differencing
 * layers that the supervisor makes (a checkpoint freezes the top and the
 * VM goes on in a new child; a revert goes on in a new child over the
 * checkpoint's layer) and tidies (layers nothing needs removed; at the
 * end of the run, the top merged into a layer only it needs).  The index
 * (checkpoints.c) remembers the chains across runs.
 */
struct ckpt_index;
/* Before the first boot: each disk's base, and the top it runs on. */
int vmm_disks_checkpoints_begin(struct vmm_config *cfg, struct ckpt_index *c, char *err,
				size_t errlen);
/* After the last: tidied, with the top merged down where it can be
 * unless the VM's state was saved on it (merge false); one line for each
 * merge. */
void vmm_disks_checkpoints_end(struct vmm_config *cfg, struct ckpt_index *c, bool merge);

/* The layers a checkpoint or a revert makes: one per writable VHD disk. */
struct vmm_new_layer {
	unsigned disk;		/* in cfg->disks */
	char *file;		/* the child made */
	char *parent;		/* the layer under it */
	char *old_top;		/* what the disk ran on */
	int fd, direct_fd;	/* a checkpoint's, for the VM: O_RDWR (and
				 * O_DIRECT for cache=none, else -1) */
};
struct vmm_new_layers {
	struct vmm_new_layer l[VMM_DISKS_MAX];
	unsigned n;
};
/* A checkpoint's children over each disk's top, with their descriptors,
 * recorded as the tops before the VM is told (a crash then leaves the
 * index on an empty child, which reads as its parent).  An error
 * (-EOPNOTSUPP: a raw or undo disk, with nothing made) is one line. */
int vmm_disks_checkpoint_begin(struct vmm_config *cfg, struct ckpt_index *c, const char *name,
			       struct vmm_new_layers *nl, char *err, size_t errlen);
/* The VM answered: the disks in `switched` (a bit each) run on their new
 * child, the others' children go again.  Returns what the checkpoint
 * froze, {base: layer}, for ckpt_add. */
struct json_t *vmm_disks_checkpoint_end(struct vmm_config *cfg, struct ckpt_index *c,
				 struct vmm_new_layers *nl, uint32_t switched);
/* A revert's children over the checkpoint's layers, made while the VM
 * still runs; refused (nothing made) when a disk has no layer in it. */
int vmm_disks_revert_begin(struct vmm_config *cfg, struct ckpt_index *c, const char *name,
			   struct vmm_new_layers *nl, char *err, size_t errlen);
/* taken: the VM stops, the next boot runs on the children and the old
 * tops go; else the children go. */
void vmm_disks_revert_end(struct vmm_config *cfg, struct ckpt_index *c,
			  struct vmm_new_layers *nl, bool taken);
/* Layers nothing needs any more removed (a checkpoint deleted): the
 * files removed, as a JSON array. */
struct json_t *vmm_disks_tidy(struct vmm_config *cfg, struct ckpt_index *c);
int vmm_disks_attach(const struct vmm_config *cfg, struct pci_bus *bus,
		     struct virtio_blk **blk, char *err, size_t errlen);

/* snapshot.c: saved state (docs/control.md).  vm_save writes a paused
 * VM's state to fd; pagemap: guestmem_open_pagemap()'s.  *bytes: the
 * file's length. */
int vm_save(struct vm *vm, const struct vmm_config *cfg, int pagemap, int fd, uint64_t *bytes,
	    char *err, size_t errlen);
/* Before the VM exists: the saved configuration as cfg's defaults
 * (cfg->restore names the file), then, once options and --config have
 * had their say, whether what must match does. */
int vm_restore_config(struct vmm_config *cfg, char *err, size_t errlen);
int vm_restore_config_check(const struct vmm_config *cfg, char *err, size_t errlen);
/* In the boot's process, before the sandbox, with the vCPUs created:
 * the whole state read, checked, and only then set.  One line in err. */
int vm_restore(struct vm *vm, const char *path, char *err, size_t errlen);
/* vm_restore() in its steps: everything read and checked, guest memory
 * filled (the file's decoders: the VM has not run); KVM's part set (the
 * vCPUs, the irqchip, the PIT, the clock); the devices loaded.  The
 * saved-state fuzzer (tests/fuzz/fuzz-savefile.c), which has no KVM, runs
 * the first and the last. */
struct vm_restore;
int vm_restore_read(struct vm *vm, const char *path, struct vm_restore **out, char *err,
		    size_t errlen);
int vm_restore_set(struct vm *vm, struct vm_restore *rs, const char *path, char *err,
		   size_t errlen);
int vm_restore_devices(struct vm *vm, struct vm_restore *rs, const char *path, char *err,
		       size_t errlen);
void vm_restore_free(struct vm_restore *rs);

/* Runs the VM until it ends; returns the process exit status and prints
 * one line for anything but a clean power-off. */
int vmm_run(const struct vmm_config *cfg);

#endif
