/* SPDX-License-Identifier: GPL-2.0-or-later */
/* virtio-console (console.c): vsrv run --console hvc, --port NAME=socket:PATH. */
#ifndef VSRV_VIRTIO_CONSOLE_H
#define VSRV_VIRTIO_CONSOLE_H

#include <stdio.h>

#include "../pci.h"
#include "console-ctrl.h"

struct console;
struct virtio_console;

/* A named port: its name (vcon_name_valid) and the listening end of its
 * socket (-1: none, output is dropped).  The caller keeps both. */
struct vcon_port_cfg {
	const char *name;
	int listen_fd;
};

/* A virtio-console in the bus's next slot: port 0, the VM's console (hvc0)
 * on con, or a port with nothing behind it when con is NULL; then port
 * i + 1 for each of the nr_named (up to VCON_PORTS_MAX - 1) named ports.
 * Port 0 takes over con's input (from the UART). */
int virtio_console_create(struct pci_bus *bus, struct console *con,
			  const struct vcon_port_cfg *named, unsigned nr_named,
			  struct virtio_console **out);
void virtio_console_destroy(struct virtio_console *vc);
/* The transport's line, then one per port and one for control messages. */
void virtio_console_print_stats(struct virtio_console *vc, FILE *f);

#endif
