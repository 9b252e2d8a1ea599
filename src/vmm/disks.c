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
 *
 * Checkpoints (--checkpoints) split the same way: the supervisor makes a
 * checkpoint's differencing children (a boot may create no file) and
 * hands their descriptors to the boot, which switches its disks onto them
 * while the VM is paused (control-vm.c, virtio_blk_snapshot); it makes a
 * revert's children, removes the layers nothing needs, and merges at the
 * run's end, and keeps each disk's chain in the checkpoints' index
 * (checkpoints.c) so that the next run goes on on its top.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <unistd.h>

#include "../devices/virtio/blk.h"
#include "../devices/virtio/virtio.h"
#include "control.h"
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

unsigned vmm_disks_undo_set(struct vmm_config *cfg, enum disk_undo mode)
{
	unsigned n = 0;

	for (unsigned i = 0; i < cfg->nr_disks; i++)
		if (cfg->disks[i].spec.undo != DISK_UNDO_NONE) {
			cfg->disks[i].spec.undo = mode;
			n++;
		}
	return n;
}

/* --- checkpoints: each disk's chain of layers --- */

static bool is_vhd(const struct vmm_disk *d)
{
	return d->spec.format == DISK_FORMAT_VHD ||
	       (d->spec.format == DISK_FORMAT_AUTO &&
		disk_format_guess(d->spec.path) == DISK_FORMAT_VHD);
}

/* The disks a checkpoint freezes: writable VHDs (undo disks refused). */
static bool layered(const struct vmm_disk *d)
{
	return d->base && !d->spec.readonly && d->spec.undo == DISK_UNDO_NONE && is_vhd(d);
}

static const char *top_of(const struct vmm_disk *d)
{
	return d->top ? d->top : d->base;
}

int vmm_disks_checkpoints_begin(struct vmm_config *cfg, struct ckpt_index *c, char *err,
				size_t errlen)
{
	for (unsigned i = 0; c && i < cfg->nr_disks; i++) {
		struct vmm_disk *d = &cfg->disks[i];
		char real[PATH_MAX];
		const char *top;

		/* Not there: the boot says so when it opens it. */
		if (!realpath(d->spec.path, real))
			continue;
		d->base = strdup(real);
		top = ckpt_disk_top(c, real);
		if (!d->base || !top || !strcmp(top, real))
			continue;
		/* A commit into the base would change it under its layers. */
		if (d->spec.undo != DISK_UNDO_NONE) {
			snprintf(err, errlen, "%s: checkpoints' layers stand on it (%s runs on %s): "
				 "no undo= for it", d->spec.path, cfg->checkpoints, top);
			return -EINVAL;
		}
		if (access(top, F_OK) < 0) {
			snprintf(err, errlen, "checkpoints: %s: the layer it runs on, %s: %s",
				 d->spec.path, top, strerror(errno));
			return -ENOENT;
		}
		d->top = strdup(top);
		if (!d->top) {
			snprintf(err, errlen, "checkpoints: out of memory");
			return -ENOMEM;
		}
	}
	return 0;
}

static void write_index(struct ckpt_index *c)
{
	int r = ckpt_write(c);

	if (r < 0)
		fprintf(stderr, "vsrv: checkpoints: writing the index: %s\n", strerror(-r));
}

/* Removes what nothing needs and, with merge, merges the tops down;
 * the files removed into `removed` (if not NULL).  The index is written
 * if anything changed. */
static void tidy(struct vmm_config *cfg, struct ckpt_index *c, bool merge, json_t *removed)
{
	bool changed = false;

	for (unsigned i = 0; i < cfg->nr_disks; i++) {
		struct vmm_disk *d = &cfg->disks[i];
		const char *f, *p;
		enum ckpt_step step;

		while (d->base && (step = ckpt_disk_step(c, d->base, merge, &f, &p)) != CKPT_STEP_NONE) {
			char *file = strdup(f), *parent = strdup(p);
			struct disk_error e = { 0 };
			int r = 0;

			if (!file || !parent) {
				free(file);
				free(parent);
				break;
			}
			if (step == CKPT_STEP_REMOVE) {
				if (unlink(file) < 0 && errno != ENOENT)
					fprintf(stderr, "vsrv: %s: %s\n", file, strerror(errno));
				else if (removed)
					json_array_append_new(removed, json_string(file));
			} else {
				r = disk_merge_down(file, NULL, NULL, &e);
				if (r < 0)
					fprintf(stderr, "vsrv: %s\n", e.msg);
				else if (r)
					fprintf(stderr, "vsrv: %s: %s merged into %s, which no "
						"checkpoint needs as it was\n", d->spec.path, file,
						parent);
				else
					fprintf(stderr, "vsrv: %s: %s removed: it held nothing over "
						"%s\n", d->spec.path, file, parent);
				if (r >= 0) {
					ckpt_disk_set_top(c, d->base, parent);
					free(d->top);
					d->top = strcmp(parent, d->base) ? strdup(parent) : NULL;
				}
			}
			if (r >= 0)
				ckpt_disk_drop(c, d->base, file);
			changed |= r >= 0;
			free(file);
			free(parent);
			if (r < 0)
				break;
		}
	}
	if (changed)
		write_index(c);
}

void vmm_disks_checkpoints_end(struct vmm_config *cfg, struct ckpt_index *c, bool merge)
{
	if (c)
		tidy(cfg, c, merge, NULL);
	for (unsigned i = 0; i < cfg->nr_disks; i++) {
		free(cfg->disks[i].base);
		free(cfg->disks[i].top);
		cfg->disks[i].base = cfg->disks[i].top = NULL;
	}
}

json_t *vmm_disks_tidy(struct vmm_config *cfg, struct ckpt_index *c)
{
	json_t *removed = json_array();

	tidy(cfg, c, false, removed);
	return removed;
}

/* A new empty child over parent, beside disk d's base: DIR/STEM.NAME.avhd
 * (STEM: the base's name less .vhd or .avhd), or STEM.NAME.2.avhd, ...
 * when that is taken. */
static int make_child(const struct vmm_disk *d, const char *name, const char *parent,
		      char **out, char *err, size_t errlen)
{
	const char *dot = strrchr(d->base, '.'), *slash = strrchr(d->base, '/');
	int n = (int)strlen(d->base);

	if (dot && dot > slash && (!strcasecmp(dot, ".vhd") || !strcasecmp(dot, ".avhd")))
		n = (int)(dot - d->base);
	for (unsigned k = 1; k < 100; k++) {
		struct disk_error e = { 0 };
		char *p;
		int r = k == 1 ? asprintf(&p, "%.*s.%s.avhd", n, d->base, name) :
			asprintf(&p, "%.*s.%s.%u.avhd", n, d->base, name, k);

		if (r < 0) {
			snprintf(err, errlen, "%s: out of memory", d->spec.path);
			return -ENOMEM;
		}
		r = disk_child_create(parent, p, &e);
		if (r == -EEXIST) {
			free(p);
			continue;
		}
		if (r < 0) {
			snprintf(err, errlen, "%s", e.msg);
			free(p);
			return r;
		}
		*out = p;
		return 0;
	}
	snprintf(err, errlen, "%s: no free name for a layer of checkpoint %s", d->spec.path, name);
	return -EEXIST;
}

/* A new layer's entry: the disk, its old top, the layer under the child. */
static int new_layer(struct vmm_new_layers *nl, unsigned i, const struct vmm_disk *d,
		     const char *parent)
{
	struct vmm_new_layer *l = &nl->l[nl->n];

	*l = (struct vmm_new_layer){ .disk = i, .fd = -1, .direct_fd = -1,
				     .old_top = strdup(top_of(d)), .parent = strdup(parent) };
	nl->n++;
	return l->old_top && l->parent ? 0 : -ENOMEM;
}

static void free_layers(struct vmm_new_layers *nl)
{
	for (unsigned k = 0; k < nl->n; k++) {
		struct vmm_new_layer *l = &nl->l[k];

		if (l->fd >= 0)
			close(l->fd);
		if (l->direct_fd >= 0)
			close(l->direct_fd);
		free(l->file);
		free(l->parent);
		free(l->old_top);
	}
	nl->n = 0;
}

/* The checkpoint's child for the VM: locked as libvhd locks a file it
 * writes (the lock goes with the descriptor), and its O_DIRECT twin for
 * cache=none. */
static int open_child(struct vmm_new_layer *l, bool direct, char *err, size_t errlen)
{
	l->fd = open(l->file, O_RDWR | O_CLOEXEC);
	if (l->fd >= 0 && flock(l->fd, LOCK_EX | LOCK_NB) < 0) {
		close(l->fd);
		l->fd = -1;
	}
	if (l->fd >= 0 && direct)
		l->direct_fd = open(l->file, O_RDWR | O_DIRECT | O_CLOEXEC);
	if (l->fd < 0 || (direct && l->direct_fd < 0)) {
		snprintf(err, errlen, "%s: %s", l->file, strerror(errno));
		return -errno;
	}
	return 0;
}

int vmm_disks_checkpoint_begin(struct vmm_config *cfg, struct ckpt_index *c, const char *name,
			       struct vmm_new_layers *nl, char *err, size_t errlen)
{
	int r = 0;

	nl->n = 0;
	for (unsigned i = 0; i < cfg->nr_disks; i++) {
		const struct vmm_disk *d = &cfg->disks[i];

		if (d->spec.readonly)
			continue;
		if (!d->base) {
			snprintf(err, errlen, "%s: no real path for it when the run started",
				 d->spec.path);
			return -ENOENT;
		}
		if (d->spec.undo != DISK_UNDO_NONE) {
			snprintf(err, errlen, "%s is an undo disk (undo=%s), whose run's changes are a "
				 "layer of their own: no checkpoints of a VM with one", d->spec.path,
				 disk_undo_name(d->spec.undo));
			return -EOPNOTSUPP;
		}
		if (!is_vhd(d)) {
			snprintf(err, errlen, "%s is a raw disk, which cannot have a differencing "
				 "child: no checkpoints of a VM with a writable raw disk (readonly=on, "
				 "or vsrv disk convert --to dynamic)", d->spec.path);
			return -EOPNOTSUPP;
		}
	}
	for (unsigned i = 0; r >= 0 && i < cfg->nr_disks; i++) {
		const struct vmm_disk *d = &cfg->disks[i];
		struct vmm_new_layer *l = &nl->l[nl->n];

		if (!layered(d))
			continue;
		r = new_layer(nl, i, d, top_of(d));
		if (r < 0)
			snprintf(err, errlen, "%s: out of memory", d->spec.path);
		if (r >= 0)
			r = make_child(d, name, l->parent, &l->file, err, errlen);
		if (r >= 0)
			r = open_child(l, d->spec.cache == DISK_CACHE_NONE, err, errlen);
		if (r >= 0 && ckpt_disk_push(c, d->base, l->file, l->parent) < 0) {
			snprintf(err, errlen, "checkpoints: out of memory");
			r = -ENOMEM;
		}
	}
	if (r >= 0 && nl->n && (r = ckpt_write(c)) < 0)
		snprintf(err, errlen, "checkpoints: writing the index: %s", strerror(-r));
	if (r < 0)
		json_decref(vmm_disks_checkpoint_end(cfg, c, nl, 0));
	return r;
}

json_t *vmm_disks_checkpoint_end(struct vmm_config *cfg, struct ckpt_index *c,
				 struct vmm_new_layers *nl, uint32_t switched)
{
	json_t *frozen = json_object();

	for (unsigned k = 0; k < nl->n; k++) {
		struct vmm_new_layer *l = &nl->l[k];
		struct vmm_disk *d = &cfg->disks[l->disk];

		if (!l->file)
			continue;
		if (switched & 1u << l->disk) {
			free(d->top);
			d->top = strdup(l->file);
			json_object_set_new(frozen, d->base, json_string(l->parent));
			continue;
		}
		/* The VM goes on where it was. */
		ckpt_disk_set_top(c, d->base, l->old_top);
		ckpt_disk_drop(c, d->base, l->file);
		unlink(l->file);
	}
	if (nl->n)
		write_index(c);
	free_layers(nl);
	return frozen;
}

int vmm_disks_revert_begin(struct vmm_config *cfg, struct ckpt_index *c, const char *name,
			   struct vmm_new_layers *nl, char *err, size_t errlen)
{
	int r = 0;

	nl->n = 0;
	/* Every disk the VM writes must go back with it. */
	for (unsigned i = 0; i < cfg->nr_disks; i++) {
		const struct vmm_disk *d = &cfg->disks[i];

		if (!d->spec.readonly && (!d->base || !ckpt_layer_of(c, name, d->base))) {
			snprintf(err, errlen, "checkpoint %s has no layer of %s (it was taken "
				 "without it)", name, d->spec.path);
			return -ENOENT;
		}
	}
	for (unsigned i = 0; r >= 0 && i < cfg->nr_disks; i++) {
		const struct vmm_disk *d = &cfg->disks[i];
		struct vmm_new_layer *l = &nl->l[nl->n];

		if (d->spec.readonly)
			continue;
		r = new_layer(nl, i, d, ckpt_layer_of(c, name, d->base));
		if (r < 0)
			snprintf(err, errlen, "%s: out of memory", d->spec.path);
		if (r >= 0)
			r = make_child(d, name, l->parent, &l->file, err, errlen);
	}
	if (r < 0)
		vmm_disks_revert_end(cfg, c, nl, false);
	return r;
}

void vmm_disks_revert_end(struct vmm_config *cfg, struct ckpt_index *c,
			  struct vmm_new_layers *nl, bool taken)
{
	for (unsigned k = 0; k < nl->n; k++) {
		struct vmm_new_layer *l = &nl->l[k];
		struct vmm_disk *d = &cfg->disks[l->disk];

		if (!l->file)
			continue;
		if (!taken || ckpt_disk_push(c, d->base, l->file, l->parent) < 0) {
			unlink(l->file);
			continue;
		}
		free(d->top);
		d->top = strdup(l->file);
	}
	/* The old tops, which nothing stands on, go. */
	if (taken && nl->n) {
		write_index(c);
		tidy(cfg, c, false, NULL);
	}
	free_layers(nl);
}

/* What a boot opens for disk d. */
static int boot_spec(const struct vmm_disk *d, struct disk_spec *spec, struct disk_error *e)
{
	*spec = d->spec;
	if (d->top) {
		spec->path = d->top;
		spec->format = DISK_FORMAT_VHD;
		return 0;
	}
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
