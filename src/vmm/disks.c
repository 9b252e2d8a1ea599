// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * A VM's disks (--disk, "disks") across the processes of one vsrv run.
 *
 * Each boot runs in a process of its own (supervise.c), confined once its
 * VM is set up; it opens every disk, creates its disk queues and puts a
 * virtio-blk device on the bus for it before the sandbox, which forbids
 * what that takes (open, io_uring_setup, eventfd2).  Its last flush
 * happens when the boot's devices are torn down, however the boot ends.
 *
 * An undo disk (undo=commit|keep|discard) must outlive the boots: a
 * reboot is a new process, and the guest's changes must carry over it.
 * So the supervisor, unconfined, makes the overlay once before the first
 * boot, every boot opens it as a plain VHD (whose bottom layer, the base,
 * gives it the same serial), and the supervisor finishes it after the
 * last boot, whatever ended it: merged into the base, kept beside it, or
 * deleted, with one line saying which.  The confined process then needs
 * none of the calls a commit makes (open, unlink, ...).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../devices/virtio/blk.h"
#include "../devices/virtio/virtio.h"
#include "vmm.h"

static void print_notice(void *opaque, const char *msg)
{
	fprintf(stderr, "vsrv: %s\n", msg);
}

/* Overlays made for disks before `upto`, removed again: the run never
 * started.  Those resumed on were an earlier run's, and stay. */
static void unmake(struct vmm_config *cfg, unsigned upto)
{
	for (unsigned i = 0; i < upto; i++) {
		struct vmm_disk *d = &cfg->disks[i];

		if (d->overlay && !d->spec.undo_resume)
			unlink(d->overlay);
		free(d->overlay);
		d->overlay = NULL;
	}
}

int vmm_disks_undo_begin(struct vmm_config *cfg, char *err, size_t errlen)
{
	for (unsigned i = 0; i < cfg->nr_disks; i++) {
		struct vmm_disk *d = &cfg->disks[i];
		struct disk_error e = { 0 };
		char child[PATH_MAX];
		int r;

		if (d->spec.undo == DISK_UNDO_NONE)
			continue;
		r = disk_undo_check(&d->spec, &e);
		if (r >= 0)
			r = disk_undo_create(d->spec.path, d->spec.undo_resume, child,
					     sizeof(child), &e);
		if (r >= 0) {
			d->overlay = strdup(child);
			if (!d->overlay) {
				if (!d->spec.undo_resume)
					unlink(child);
				snprintf(e.msg, sizeof(e.msg), "%s: out of memory", d->spec.path);
				r = -ENOMEM;
			}
		}
		if (r < 0) {
			snprintf(err, errlen, "%s", e.msg);
			unmake(cfg, i);
			return r;
		}
	}
	return 0;
}

int vmm_disks_undo_end(struct vmm_config *cfg)
{
	int status = 0;

	for (unsigned i = 0; i < cfg->nr_disks; i++) {
		struct vmm_disk *d = &cfg->disks[i];
		struct disk_error e = { 0 };

		if (!d->overlay)
			continue;
		/* One line says what was done: keep's own notice says where the
		 * changes are; commit's warning that other differencing disks
		 * of the base become invalid is for commits by hand (one beside
		 * the base would have the commit refused). */
		if (disk_undo_finish(d->overlay, d->spec.undo,
				     d->spec.undo == DISK_UNDO_KEEP ? print_notice : NULL, NULL,
				     &e) < 0) {
			fprintf(stderr, "vsrv: %s\n", e.msg);
			status = -EIO;
		} else if (d->spec.undo == DISK_UNDO_COMMIT) {
			fprintf(stderr, "vsrv: %s: the run's changes are merged into it (undo=commit)\n",
				d->spec.path);
		} else if (d->spec.undo == DISK_UNDO_DISCARD) {
			fprintf(stderr, "vsrv: %s: the run's changes are thrown away (undo=discard)\n",
				d->spec.path);
		}
		free(d->overlay);
		d->overlay = NULL;
	}
	return status;
}

/* What a boot opens for disk d. */
static int boot_spec(const struct vmm_disk *d, struct disk_spec *spec, struct disk_error *e)
{
	*spec = d->spec;
	if (d->overlay) {
		spec->path = d->overlay;
		spec->format = DISK_FORMAT_VHD;
		spec->undo = DISK_UNDO_NONE;
		spec->undo_resume = false;
		return 0;
	}
	if (spec->undo == DISK_UNDO_NONE)
		return 0;
	/* No supervisor made an overlay (--dry-run): the base is checked
	 * and opened read-only, and nothing is made. */
	spec->undo = DISK_UNDO_NONE;
	spec->readonly = true;
	return disk_undo_check(&d->spec, e);
}

int vmm_disks_attach(const struct vmm_config *cfg, struct pci_bus *bus,
		     struct virtio_blk **blk, char *err, size_t errlen)
{
	/* A queue a vCPU, as Linux's driver maps them. */
	unsigned queues = cfg->vm.nr_cpus < VIRTIO_QUEUES_MAX ? cfg->vm.nr_cpus :
			  VIRTIO_QUEUES_MAX;

	for (unsigned i = 0; i < cfg->nr_disks; i++) {
		const struct vmm_disk *d = &cfg->disks[i];
		struct disk_error e = { 0 };
		struct disk_spec spec;
		struct disk *disk;
		int r = boot_spec(d, &spec, &e);

		if (r >= 0)
			r = disk_open(&spec, &disk, &e);
		if (r < 0) {
			snprintf(err, errlen, "%s", e.msg);
			return r;
		}
		r = virtio_blk_create(bus, disk, d->spec.path, queues, &blk[i]);
		if (r < 0) {
			snprintf(err, errlen, "%s: attaching its virtio-blk device: %s",
				 d->spec.path, strerror(-r));
			return r;
		}
	}
	return 0;
}
