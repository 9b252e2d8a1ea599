/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The control socket's two halves (docs/control.md):
 *
 *   client --(Unix socket, protocol.h)--> vsrv supervisor (control.c)
 *                                            | one channel per boot
 *                                            v
 *                                         vsrv-vm's control thread (control-vm.c)
 *
 * The supervisor serves the clients, keeps the VM's state and answers
 * what it knows itself (status, events, power-off); what needs the VM it
 * relays over the boot's channel, a SOCK_SEQPACKET pair the boot inherits
 * as it inherits the console's: one message a JSON object, one request at
 * a time, a reply to each.  Files the confined boot must write come with
 * their request as SCM_RIGHTS: the boot never opens a path.
 *
 *   supervisor -> boot  {"op": "pause"|"resume"|"reset"|"button"|
 *                               "ctrl-alt-del"|"stats"|"save"|"checkpoint"|
 *                               "revert"}
 *                       (save, checkpoint: with the file's descriptor,
 *                       FILE.partial; save: "undo", each disk's undo mode
 *                       now, for the saved configuration; checkpoint:
 *                       "disks": [{"disk": i, "file", "direct": bool}],
 *                       each disk's new layer, whose descriptors follow
 *                       the file's, O_RDWR then, if direct, O_DIRECT)
 *   boot -> supervisor  {"return": {...}} | {"error": {"code", "message"}}
 *                       (checkpoint, either way: "switched": [i, ...], the
 *                       disks that went on in their new layer)
 *                       | {"event": "running", "restore_seconds": S}
 *                         (the vCPUs started; S > 0 after a restore)
 */
#ifndef VSRV_CONTROL_H
#define VSRV_CONTROL_H

#include <poll.h>
#include <stdbool.h>
#include <sys/types.h>

#include <jansson.h>

#include "vmm.h"

/* The channel's largest message (a stats reply is a few KiB). */
#define CTL_CHAN_MSG_MAX	(64u << 10)

/* control-chan.c: one JSON object a message, with its descriptors: a
 * saved state's file, a checkpoint's disk layers (two per disk). */
#define CTL_CHAN_FDS_MAX	(1 + 2 * VMM_DISKS_MAX)
int ctl_chan_send(int fd, json_t *msg, int pass_fd);	/* pass_fd: -1 for none */
int ctl_chan_send_fds(int fd, json_t *msg, const int *fds, unsigned nr_fds);
/* The next message (-EAGAIN when none waits, -EPIPE at the end); *got_fd
 * the fd that came with it, or -1 (more are closed). */
int ctl_chan_recv(int fd, json_t **msg, int *got_fd);
/* The same with every descriptor (at most CTL_CHAN_FDS_MAX; more are
 * closed). */
int ctl_chan_recv_fds(int fd, json_t **msg, int *fds, unsigned *nr_fds);
void ctl_chan_close_fds(int *fds, unsigned *nr_fds);

/* --- the supervisor's side (control.c) --- */
struct ctl_server;

enum ctl_action {
	CTL_ACT_NONE,
	CTL_ACT_POWER_OFF,	/* stop the boot as SIGTERM does, no boot after */
};

/* The socket at cfg->control; on failure, one line in err.  cfg is the
 * run's, whose disks change as clients ask (undo modes, checkpoints'
 * layers); ckpt the checkpoints' index, or NULL (the caller's). */
struct ckpt_index;
int ctl_server_open(struct ctl_server **out, struct vmm_config *cfg, struct ckpt_index *ckpt,
		    char *err, size_t errlen);
/* The VM is off (its last words to the clients), then the socket goes. */
void ctl_server_close(struct ctl_server *s);
/* In a child just forked: closes the server's fds, touching nothing else. */
void ctl_server_forget(struct ctl_server *s);
void ctl_server_boot_started(struct ctl_server *s, pid_t pid, int chan);
/* The boot's process ended; `again`: another boot follows. */
void ctl_server_boot_ended(struct ctl_server *s, bool again);
/* The fds to poll (at most CTL_POLL_MAX) and how long to wait (ms, -1). */
#define CTL_POLL_MAX	20
unsigned ctl_server_poll(struct ctl_server *s, struct pollfd *p, int *timeout);
enum ctl_action ctl_server_handle(struct ctl_server *s, const struct pollfd *p, unsigned n);
/* Why the VM was stopped through the socket, for the supervisor's last
 * line, or NULL. */
const char *ctl_server_stop_reason(const struct ctl_server *s);
/* Whether the VM ended by `save` (its disks as they are are in the file). */
bool ctl_server_saved(const struct ctl_server *s);

/* Between boots: the saved state the next boot starts from (a revert's
 * checkpoint; the server keeps the string until the next call), or NULL
 * for a boot of the kernel. */
const char *ctl_server_take_restore(struct ctl_server *s);

/* checkpoints.c: a VM's checkpoints (--checkpoints DIR): the index, and
 * its disks' chains of layers. */
struct ckpt_index;
bool ckpt_name_ok(const char *name);
int ckpt_open(struct ckpt_index **out, const char *dir, char *err, size_t errlen);
void ckpt_close(struct ckpt_index *c);
char *ckpt_path(const struct ckpt_index *c, const char *name);	/* malloc'd */
bool ckpt_exists(const struct ckpt_index *c, const char *name);
/* A new checkpoint, child of the current one, and now the current; disks:
 * {base: the layer it froze} (copied). */
int ckpt_add(struct ckpt_index *c, const char *name, uint64_t bytes, json_t *disks);
int ckpt_set_current(struct ckpt_index *c, const char *name);
/* Its file goes; its children hang from its parent.  Its layers stay, for
 * ckpt_disk_step to find unneeded. */
int ckpt_delete(struct ckpt_index *c, const char *name);
json_t *ckpt_list(const struct ckpt_index *c);
/* The index written (the disks' changes are made in memory first). */
int ckpt_write(struct ckpt_index *c);
/* The file disk `base` runs on, or NULL when it has no layers. */
const char *ckpt_disk_top(const struct ckpt_index *c, const char *base);
/* The layer of disk `base` that checkpoint `name` froze, or NULL. */
const char *ckpt_layer_of(const struct ckpt_index *c, const char *name, const char *base);
/* A new layer child over parent, which becomes the disk's top. */
int ckpt_disk_push(struct ckpt_index *c, const char *base, const char *child,
		   const char *parent);
int ckpt_disk_set_top(struct ckpt_index *c, const char *base, const char *top);
/* A layer gone (removed, or merged into its parent). */
void ckpt_disk_drop(struct ckpt_index *c, const char *base, const char *file);
/* What tidies disk `base`'s chain next: REMOVE file (no checkpoint froze
 * it, the VM does not run on it, no layer stands on it), or with
 * merge_top (the VM is off) MERGE the top `file` into `parent`, which no
 * checkpoint froze and nothing else stands on.  Strings are the index's,
 * valid until it changes. */
enum ckpt_step { CKPT_STEP_NONE, CKPT_STEP_REMOVE, CKPT_STEP_MERGE };
enum ckpt_step ckpt_disk_step(const struct ckpt_index *c, const char *base, bool merge_top,
			      const char **file, const char **parent);

/* --- the boot's side (control-vm.c) --- */
struct vm_control;
struct acpi_pm;
struct i8042;

/* Before the sandbox: what the thread will need (/proc/self/pagemap). */
int vm_control_open(struct vm_control **out, struct vm *vm, const struct vmm_config *cfg,
		    int chan, struct acpi_pm *pm, struct i8042 *kbc, char *err, size_t errlen);
/* The disks' devices, in cfg's order, for a checkpoint's switch. */
struct virtio_blk;
void vm_control_set_disks(struct vm_control *vc, struct virtio_blk *const *blk);
/* Once the vCPUs run: the thread starts and tells the supervisor. */
int vm_control_start(struct vm_control *vc);
/* Before the VM is torn down: the thread ends (a pause is released). */
void vm_control_close(struct vm_control *vc);

#endif
