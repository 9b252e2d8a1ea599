/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The legacy devices a PC has, each in its own file, and the console. */
#ifndef VSRV_DEVICES_H
#define VSRV_DEVICES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../vmm/vm.h"

struct acpi_pm;

/* testdev.c: micro-guests' ports (--test-device); a write to its power
 * button port presses pm's button. */
int testdev_init(struct vm *vm, struct acpi_pm *pm);
int port80_init(struct vm *vm);

/* console.c: the backend behind the serial port (vsrv run --console).
 * One console lives as long as the process; the VMs of successive boots
 * attach their UART to it in turn. */
enum console_kind { CONSOLE_STDIO, CONSOLE_FILE, CONSOLE_SOCKET };
struct console;

/* Splits "stdio", "file:PATH" or "socket:PATH"; -EINVAL for anything else. */
int console_parse(const char *spec, enum console_kind *kind, const char **path);
/* --console's whole value: one of those, or "hvc" (the console on a
 * virtio-console's hvc0: "hvc" alone is "hvc,stdio") before one:
 * *backend is what console_open() takes.  -EINVAL for anything else. */
int console_parse_hvc(const char *spec, bool *hvc, const char **backend);
#define CONSOLE_BUFFER_DEFAULT	(1u << 20)
#define CONSOLE_BUFFER_MIN	4096u
#define CONSOLE_BUFFER_MAX	(1u << 30)
/* buffer: bytes of output kept for a reader (0: the default). */
int console_open(struct console **con, const char *spec, size_t buffer, char *err,
		 size_t errlen);
/* The same with no thread of its own, for a single-threaded loop that
 * polls it: each turn console_poll_fill() fills up to CONSOLE_POLL_MAX
 * entries (and may lower *timeout_ms; -1 after console_close() began and
 * it has nothing left to write), console_poll_handle() takes poll()'s
 * answer.  Its input sink and quit callback are called from there. */
int console_open_polled(struct console **con, const char *spec, size_t buffer, char *err,
			size_t errlen);
#define CONSOLE_POLL_MAX	11
struct pollfd;
int console_poll_fill(struct console *con, struct pollfd *pfd, int *timeout_ms);
int console_poll_handle(struct console *con, const struct pollfd *pfd, unsigned nfd);
/* In a child forked from the process of a polled console: closes its
 * descriptors and leaves the terminal to the parent; nothing else. */
void console_forget(struct console *con);
/* A console on a stream descriptor the caller keeps (output written to
 * it, input read from it): a boot's process under the supervisor. */
int console_open_fd(struct console **con, int fd, size_t buffer, char *err, size_t errlen);
/* Flushes buffered output (for a while, if nobody reads), restores the
 * terminal, removes the socket. */
void console_close(struct console *con);
/* Never blocks: output nobody takes stays in a ring buffer. */
void console_write(struct console *con, const void *buf, size_t len);
/* stdio: waits until standard output has had what was written, or makes
 * no progress for two seconds, so that what the VMM prints on standard
 * error next comes after the guest's last words. */
void console_flush(struct console *con);
/* The input sink: rx() returns how many bytes it took; when fewer than
 * offered, the console waits for console_input_ready().  NULL detaches
 * (and waits for a call in progress to return). */
void console_attach_input(struct console *con,
			  size_t (*rx)(void *opaque, const uint8_t *buf, size_t len),
			  void *opaque);
void console_input_ready(struct console *con);
/* Called on the console's thread when the user quits (Ctrl-A x). */
void console_set_quit(struct console *con, void (*quit)(void *opaque), void *opaque);
bool console_quit_requested(struct console *con);

/* listen.c: a Unix socket server's listening end at path (0600, non-blocking),
 * one process per path: a socket file no process holds is taken over, one
 * that another holds is refused ("WHAT: PATH: in use by another process").
 * what names it in err's line ("console", "port NAME", "control"). */
struct unix_listener {
	int fd;
	int lock_fd;		/* held while the path is ours */
	const char *path;	/* the caller's */
	bool bound;		/* the path is ours to unlink */
};
int unix_listen(struct unix_listener *l, const char *what, const char *path, int backlog,
		char *err, size_t errlen);
/* Closes it and removes the socket file (a no-op on one never opened). */
void unix_listen_close(struct unix_listener *l);

/* uart.c: a 16550A on COM1 (0x3f8-0x3ff, IRQ 4), on the console. */
struct uart;
int uart_init(struct vm *vm, struct console *con, struct uart **out);
void uart_destroy(struct uart *u);

/* i8042.c: the keyboard controller (0x60, 0x64) with a keyboard and no
 * mouse, and the PC's other reset path, the reset control register at
 * 0xcf9 (one byte: a PCI host bridge later decodes 0xcf8 and 0xcfc-0xcff
 * around it). */
struct i8042;
int i8042_init(struct vm *vm, struct i8042 **out);
void i8042_destroy(struct i8042 *k);
/* Presses and releases Ctrl-Alt-Del on the keyboard (IRQ 1); -EBUSY when
 * the keyboard's buffer is full or it is not scanning. */
int i8042_ctrl_alt_del(struct i8042 *k);

/* rtc.c: the MC146818 CMOS RTC and its RAM (0x70, 0x71). */
struct rtc;
int rtc_init(struct vm *vm, struct rtc **out);
void rtc_destroy(struct rtc *rtc);

/* acpi-pm.c: ACPI's PM1 registers and PM timer (VM_ACPI_PM_BASE), the
 * SCI (GSI VM_ACPI_SCI_GSI), and S5 soft-off. */
int acpi_pm_init(struct vm *vm, struct acpi_pm **out);
void acpi_pm_destroy(struct acpi_pm *pm);
/* Presses the power button (callable from any thread): sets PWRBTN_STS,
 * raising the SCI if the guest enabled the event.  0 when it did;
 * -EAGAIN when the guest has not enabled the power button (the status
 * stays set, so a guest that enables it later sees the press). */
int acpi_pm_press_power_button(struct acpi_pm *pm);

#endif
