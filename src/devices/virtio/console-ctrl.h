/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * virtio-console's multiport protocol (virtio 1.x, "Console Device",
 * VIRTIO_CONSOLE_F_MULTIPORT): the control messages between the device
 * and its driver, as a state machine with no queues and no host side, so
 * that unit tests and the fuzzer drive it directly (console-ctrl.c).
 *
 * The exchange, device (->) and driver (<-):
 *   <- DEVICE_READY 1          the driver takes control messages now
 *   -> PORT_ADD n              each port, in order
 *   <- PORT_READY n 1          the driver has set port n up
 *   -> CONSOLE_PORT n 1        port 0, when it is the VM's console (hvc0)
 *   -> PORT_NAME n + name      a named port (/sys/class/virtio-ports/.../name)
 *   -> PORT_OPEN n 1           the host side is there (console; a socket client)
 *   <- PORT_OPEN n 0|1         the guest opened or closed the port
 *   -> PORT_OPEN n 0|1         later: the host side came or went
 *
 * The driver is not trusted: a message that is too short, names a port
 * that does not exist (or that it has not been told of yet), comes out of
 * order or again, or is one only a device sends is refused with one line
 * saying why.  Repeats being
 * refused bounds what the device has to say: at most a PORT_ADD, a
 * CONSOLE_PORT or PORT_NAME, and one PORT_OPEN (the host's latest state,
 * updated in place) wait for each port, so the queue of messages for the
 * driver never outgrows VCON_CTRL_QUEUED whatever the driver does.
 */
#ifndef VSRV_VIRTIO_CONSOLE_CTRL_H
#define VSRV_VIRTIO_CONSOLE_CTRL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VCON_PORTS_MAX		8	/* port 0 and up to 7 named ones */
#define VCON_NAME_MAX		63
#define VCON_MSG_LEN		8	/* struct virtio_console_control */
#define VCON_MSG_MAX		(VCON_MSG_LEN + VCON_NAME_MAX)
#define VCON_CTRL_QUEUED	(3 * VCON_PORTS_MAX)

struct dev_state;

struct vcon_msg {
	uint32_t id;
	uint16_t event, value;
};

struct vcon_ctrl_port {
	char name[VCON_NAME_MAX + 1];	/* "" for an unnamed port */
	bool console;		/* announced as the console (CONSOLE_PORT) */
	bool added;		/* its PORT_ADD went to the driver */
	bool ready;		/* the driver's PORT_READY 1 came */
	bool guest_open;	/* the driver's last PORT_OPEN */
	bool host_open;		/* the host side is there now */
	bool host_told;		/* what the driver was last told of it */
	bool open_queued;	/* a PORT_OPEN for it waits in the queue */
};

struct vcon_ctrl {
	unsigned nr_ports;
	bool device_ready;	/* the driver's DEVICE_READY 1 came */
	struct vcon_ctrl_port port[VCON_PORTS_MAX];
	struct vcon_msg queue[VCON_CTRL_QUEUED];	/* for the driver, oldest first */
	unsigned head, len;
};

/* nr_ports (1 to VCON_PORTS_MAX) ports, port i named names[i] (NULL or ""
 * for none; valid names, see vcon_name_valid), port 0 the console if
 * console.  Every host side closed. */
void vcon_ctrl_init(struct vcon_ctrl *c, unsigned nr_ports, const char *const *names,
		    bool console);
/* 1 to VCON_NAME_MAX letters, digits, '.', '_', '-'. */
bool vcon_name_valid(const char *name);
/* Back to power-on (a device reset): the driver's side of every port
 * forgotten, nothing queued.  The host sides stay as they are. */
void vcon_ctrl_reset(struct vcon_ctrl *c);
/* A message from the driver, len bytes.  0: taken; 1: taken, and why has
 * a line worth logging (the driver reports a failure of its own);
 * -EINVAL: refused, why says which rule it broke.  What it answers is
 * queued for the driver. */
int vcon_ctrl_receive(struct vcon_ctrl *c, const void *msg, size_t len, char *why,
		      size_t whylen);
/* The host side of port p came or went: the driver hears of it once the
 * port is ready. */
void vcon_ctrl_host_open(struct vcon_ctrl *c, unsigned p, bool open);
/* The next message for the driver, written into buf: its length, 0 when
 * none waits.  It stays first until vcon_ctrl_sent(). */
size_t vcon_ctrl_next(const struct vcon_ctrl *c, uint8_t buf[VCON_MSG_MAX]);
void vcon_ctrl_sent(struct vcon_ctrl *c);
/* Host input may go to port p's receive queue: the console, or a port the
 * guest has opened (Linux throws away what reaches a port nobody opened). */
bool vcon_ctrl_takes_input(const struct vcon_ctrl *c, unsigned p);
/* Saved state: every port's flags and name, the queue.  Loading checks it
 * against the ports c was initialised with (same number, same names) and
 * the protocol's rules; -EINVAL leaves c reset.  The host sides stay as
 * they are now (not as saved): the driver hears of any difference. */
void vcon_ctrl_save(const struct vcon_ctrl *c, struct dev_state *s);
int vcon_ctrl_load(struct vcon_ctrl *c, struct dev_state *s);

#endif
