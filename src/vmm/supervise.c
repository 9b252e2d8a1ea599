// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The processes of one `vsrv run`:
 *
 *   vsrv (this process, single-threaded, unconfined): the console
 *    |   (terminal, file or socket) and its relay to the boots; the
 *    |   control socket
 *    `-- boot process, one per boot: the VM, confined by seccomp
 *
 * A boot runs in a process of its own because the seccomp filter it
 * installs cannot be lifted and a new VM needs what it forbids (open,
 * KVM_CREATE_VM, ...); a fresh process per boot also leaves nothing of the
 * last one behind.  The console lives here so that it outlives the boots
 * (its socket clients stay connected, its buffer keeps what nobody has
 * read, the terminal stays raw).  It has no thread: it is polled in the
 * loop that waits for each boot (a polled console, devices/console.c),
 * because fork() in a threaded process hands the child whatever locks the
 * other threads held.  And the sandboxed boot needs no call of the
 * console's: it writes to a socket pair.
 *
 *   guest output: UART -> boot's console_open_fd() -> socket pair -> console
 *   input:        console -> socket pair -> boot's UART
 *
 * Undo disks' overlays are made here before the first boot and finished
 * after the last (disks.c): they outlive every boot's process.  So do the
 * checkpoints' index and their disks' layers (--checkpoints,
 * checkpoints.c, disks.c), and the control socket (--control, control.c),
 * served in the same loop and relayed to each boot over a channel of its
 * own; it closes after the disks are finished.  What this loop does
 * between two polls (a control request, a boot's fork) is short: the
 * console waits for it, the boot's console buffers meanwhile.
 *
 * Input a boot has not read when it ends stays in the socket pair for the
 * next one.  SIGTERM, SIGINT and SIGHUP here, or Ctrl-A x on the console,
 * reach the boot as SIGTERM: it stops its VM cleanly and no boot follows;
 * a second signal kills it.  The boot dies with this process
 * (PR_SET_PDEATHSIG).  Whether a boot's VM asked to reboot comes back in
 * shared memory: its exit status is the guest's to choose (the test
 * device).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../devices/devices.h"
#include "control.h"
#include "vmm.h"

/* --- the console's relay --------------------------------------------- */

struct relay {
	struct console *con;
	int sock;		/* this end of the socket pair */
	bool in_blocked;	/* the pair is full: wait for POLLOUT */
	bool quit;		/* Ctrl-A x */
	uint8_t buf[65536];
};

/* From the console's input: as much as the socket pair takes. */
static size_t relay_rx(void *opaque, const uint8_t *buf, size_t len)
{
	struct relay *rl = opaque;
	ssize_t n = send(rl->sock, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);

	if (n >= 0 && (size_t)n == len)
		return len;
	rl->in_blocked = true;
	return n > 0 ? (size_t)n : 0;
}

static void relay_quit(void *opaque)
{
	((struct relay *)opaque)->quit = true;
}

static void relay_fill(struct relay *rl, struct pollfd *p)
{
	*p = (struct pollfd){ .fd = rl->sock,
			      .events = (short)(POLLIN | (rl->in_blocked ? POLLOUT : 0)) };
}

/* The boots' output into the console: a buffer's worth, false once
 * there is no more now. */
static bool relay_read(struct relay *rl)
{
	ssize_t n = recv(rl->sock, rl->buf, sizeof(rl->buf), MSG_DONTWAIT);

	if (n <= 0)
		return false;
	console_write(rl->con, rl->buf, (size_t)n);
	return true;
}

/* One read a turn, so that the console's readers get their turn too. */
static void relay_handle(struct relay *rl, const struct pollfd *p)
{
	if (p->revents & POLLOUT) {
		rl->in_blocked = false;
		console_input_ready(rl->con);
	}
	if (p->revents & (POLLIN | POLLHUP))
		relay_read(rl);
}

/* Opens the console on the pair's end; on failure, its one line in err. */
static int relay_open(struct relay *rl, const struct vmm_config *cfg, int sock, char *err,
		      size_t errlen)
{
	int r = console_open_polled(&rl->con, cfg->console ? cfg->console : "stdio",
				    (size_t)cfg->console_buffer, err, errlen);

	if (r < 0)
		return r;
	rl->sock = sock;
	console_attach_input(rl->con, relay_rx, rl);
	console_set_quit(rl->con, relay_quit, rl);
	return 0;
}

/* After the last boot: what it wrote, then the console flushed and
 * closed (the terminal restored, the socket removed). */
static void relay_close(struct relay *rl)
{
	if (!rl->con)
		return;
	while (relay_read(rl))
		;
	console_set_quit(rl->con, NULL, NULL);
	console_attach_input(rl->con, NULL, NULL);
	console_close(rl->con);
	rl->con = NULL;
}

/* --- the boots -------------------------------------------------------- */

/* In a boot's process: the VM, on a console that writes into the pair. */
static void __attribute__((noreturn))
boot_main(const struct vmm_config *cfg, int sock, int chan, pid_t parent, bool *reboot)
{
	struct console *con;
	char err[1024];
	int status;

	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
		_exit(VM_STATUS_ERROR);
	prctl(PR_SET_NAME, "vsrv-vm");
	if (console_open_fd(&con, sock, (size_t)cfg->console_buffer, err, sizeof(err)) < 0) {
		fprintf(stderr, "vsrv: %s\n", err);
		exit(VM_STATUS_ERROR);
	}
	status = vmm_run_once(cfg, con, chan, reboot, true);
	console_close(con);
	exit(status);
}

enum { P_BOOT, P_SIGNAL, P_RELAY, P_NR };

/* A stop through the control socket (power-off, a shutdown's timeout). */
#define STOP_CONTROL	(-3)

/* Waits for a boot to end, passing on stops and serving the console and
 * the control socket; its wait status, or -1.  *stop_sig: the signal, -1
 * for Ctrl-A x, STOP_CONTROL. */
static int wait_boot(pid_t pid, int pidfd, int sigfd, struct relay *rl, struct ctl_server *srv,
		     int *stop_sig)
{
	struct pollfd pfd[P_NR + CONSOLE_POLL_MAX + CTL_POLL_MAX] = {
		[P_BOOT] = { .fd = pidfd, .events = POLLIN },
		[P_SIGNAL] = { .fd = sigfd, .events = POLLIN },
	};
	int status;

	while (!(pfd[P_BOOT].revents & POLLIN)) {
		struct pollfd *cp = pfd + P_NR, *sp;
		int sig = 0, timeout = -1;
		unsigned nc, ns = 0;

		/* A quit before this boot started ends it at once. */
		if (rl->quit && !*stop_sig)
			sig = -1;
		relay_fill(rl, &pfd[P_RELAY]);
		/* Not stopping: it always has its descriptors to poll. */
		nc = (unsigned)console_poll_fill(rl->con, cp, &timeout);
		sp = cp + nc;
		if (srv)
			ns = ctl_server_poll(srv, sp, &timeout);
		if (!sig && poll(pfd, (nfds_t)(sp + ns - pfd), timeout) < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (!sig) {
			relay_handle(rl, &pfd[P_RELAY]);
			if (console_poll_handle(rl->con, cp, nc) < 0)
				return -1;
			if (srv && ctl_server_handle(srv, sp, ns) == CTL_ACT_POWER_OFF)
				sig = STOP_CONTROL;
		}
		if (pfd[P_SIGNAL].revents & POLLIN) {
			struct signalfd_siginfo si;

			if (read(sigfd, &si, sizeof(si)) == sizeof(si))
				sig = (int)si.ssi_signo;
		}
		if (rl->quit && !*stop_sig)
			sig = -1;
		if (!sig)
			continue;
		if (!*stop_sig) {
			*stop_sig = sig;
			kill(pid, SIGTERM);
		} else if (sig > 0 && *stop_sig != STOP_CONTROL) {
			/* A second signal: the VM is not stopping, kill it. */
			fprintf(stderr, "vsrv: SIG%s again: killing the VM's process\n",
				sigabbrev_np(sig));
			kill(pid, SIGKILL);
		}
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return status;
}

/* One boot: its exit status. */
static int boot(const struct vmm_config *cfg, int sock, int sigfd, struct relay *rl,
		struct ctl_server *srv, bool *reboot, int *stop_sig)
{
	pid_t parent = getpid(), pid;
	int pidfd, ws, chan[2] = { -1, -1 };

	*reboot = false;
	/* The boot's control channel (control.h), inherited as the console's
	 * pair is. */
	if (srv && socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, chan) < 0) {
		fprintf(stderr, "vsrv: control: socketpair: %s\n", strerror(errno));
		return VM_STATUS_ERROR;
	}
	fflush(NULL);	/* nothing buffered twice */
	pid = fork();
	if (pid < 0) {
		fprintf(stderr, "vsrv: fork failed: cannot start the VM's process\n");
		if (srv) {
			close(chan[0]);
			close(chan[1]);
		}
		return VM_STATUS_ERROR;
	}
	if (pid == 0) {
		/* The clients' connections are not the VM's to hold open,
		 * nor the console's descriptors and terminal. */
		ctl_server_forget(srv);
		console_forget(rl->con);
		close(rl->sock);
		if (srv)
			close(chan[0]);
		boot_main(cfg, sock, chan[1], parent, reboot);
	}
	if (srv) {
		close(chan[1]);
		ctl_server_boot_started(srv, pid, chan[0]);
	}
	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pidfd < 0) {
		fprintf(stderr, "vsrv: pidfd_open: %s\n", strerror(errno));
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return VM_STATUS_ERROR;
	}
	ws = wait_boot(pid, pidfd, sigfd, rl, srv, stop_sig);
	close(pidfd);
	if (ws >= 0 && WIFEXITED(ws))
		return WEXITSTATUS(ws);
	if (ws >= 0)
		fprintf(stderr, "vsrv: the VM's process was killed by signal %d (%s)\n",
			WTERMSIG(ws), strsignal(WTERMSIG(ws)));
	*reboot = false;
	return VM_STATUS_ERROR;
}

/* The named ports' sockets, listened on for as long as vsrv runs so that
 * clients can wait through a reboot; each boot's process inherits them in
 * the run's configuration. */
static int ports_listen(struct vmm_config *run, struct unix_listener *l)
{
	char what[VCON_NAME_MAX + 8], err[1024];
	int r;

	for (unsigned i = 0; i < run->nr_ports; i++) {
		snprintf(what, sizeof(what), "port %s", run->ports[i].name);
		r = unix_listen(&l[i], what, run->ports[i].socket, 4, err, sizeof(err));
		if (r < 0) {
			fprintf(stderr, "vsrv: %s\n", err);
			return r;
		}
		run->ports[i].listen_fd = l[i].fd;
	}
	return 0;
}

int vmm_supervise(const struct vmm_config *cfg)
{
	struct unix_listener ports[VMM_PORTS_MAX];
	bool *reboot = mmap(NULL, sizeof(*reboot), PROT_READ | PROT_WRITE,
			    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	int sv[2] = { -1, -1 }, sigfd = -1, stop_sig = 0;
	int status = VM_STATUS_ERROR;
	/* This run's configuration: the boots' disks are its undo overlays
	 * and its checkpoints' layers, which change as it runs. */
	struct vmm_config run = *cfg, boot_cfg;
	struct ckpt_index *ckpt = NULL;
	struct ctl_server *srv = NULL;
	const char *restore = cfg->restore;
	struct relay *rl = calloc(1, sizeof(*rl));
	char err[1024];
	sigset_t stop;

	for (unsigned i = 0; i < VMM_PORTS_MAX; i++)
		ports[i] = (struct unix_listener){ .fd = -1, .lock_fd = -1 };
	if (reboot == MAP_FAILED || !rl) {
		fprintf(stderr, "vsrv: out of memory\n");
		if (reboot != MAP_FAILED)
			munmap(reboot, sizeof(*reboot));
		free(rl);
		return VM_STATUS_ERROR;
	}
	/* Before anything starts: a disk refused here stops the run.  A disk
	 * with checkpoints goes on on the top of its layers. */
	if ((cfg->checkpoints && ckpt_open(&ckpt, cfg->checkpoints, err, sizeof(err)) < 0) ||
	    vmm_disks_checkpoints_begin(&run, ckpt, err, sizeof(err)) < 0 ||
	    vmm_disks_undo_begin(&run, err, sizeof(err)) < 0) {
		fprintf(stderr, "vsrv: %s\n", err);
		vmm_disks_checkpoints_end(&run, NULL, false);
		ckpt_close(ckpt);
		munmap(reboot, sizeof(*reboot));
		free(rl);
		return VM_STATUS_ERROR;
	}
	cfg = &run;
	/* A console that is not the terminal: the session that started vsrv
	 * may end, and the VM with it only when asked. */
	if (cfg->console && strcmp(cfg->console, "stdio"))
		signal(SIGHUP, SIG_IGN);
	vmm_stop_signals(&stop);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0 ||
	    (sigfd = signalfd(-1, &stop, SFD_CLOEXEC | SFD_NONBLOCK)) < 0) {
		fprintf(stderr, "vsrv: setting up the VM's processes: %s\n", strerror(errno));
		goto out;
	}
	if (relay_open(rl, cfg, sv[0], err, sizeof(err)) < 0) {
		fprintf(stderr, "vsrv: %s\n", err);
		goto out;
	}
	if (ports_listen(&run, ports) < 0)
		goto out;
	if (cfg->control && ctl_server_open(&srv, &run, ckpt, err, sizeof(err)) < 0) {
		fprintf(stderr, "vsrv: %s\n", err);
		goto out;
	}
	do {
		/* The first boot restores --restore's state; a reboot boots the
		 * kernel, a revert restores its checkpoint; each on the disks'
		 * layers as they are then. */
		boot_cfg = run;
		boot_cfg.restore = restore;
		status = boot(&boot_cfg, sv[1], sigfd, rl, srv, reboot, &stop_sig);
		restore = ctl_server_take_restore(srv);
		if (srv)
			ctl_server_boot_ended(srv, (*reboot || restore) && !stop_sig);
	} while ((*reboot || restore) && !stop_sig);
out:
	/* Every boot has ended: the console's output comes before what is
	 * printed here. */
	if (sv[1] >= 0)
		close(sv[1]);
	for (unsigned i = 0; i < cfg->nr_ports; i++)
		unix_listen_close(&ports[i]);
	relay_close(rl);
	if (stop_sig > 0) {
		fprintf(stderr, "vsrv: stopped by SIG%s; the VM was powered off\n",
			sigabbrev_np(stop_sig));
	} else if (stop_sig == -1) {
		fprintf(stderr, "vsrv: quit from the console\n");
	} else if (ctl_server_stop_reason(srv)) {
		/* A power-off, a shutdown's timeout, a save. */
		fprintf(stderr, "vsrv: %s\n", ctl_server_stop_reason(srv));
	}
	/* The last boot has ended, however: the undo disks are finished,
	 * and the checkpoints' layers (merged down where they can be, unless
	 * the VM's state was saved on them).  Only then is the control
	 * socket's state "off" and the socket gone, so that a client that
	 * starts the VM again on its disks once it sees "off" finds them
	 * merged or discarded already. */
	if (vmm_disks_undo_end(&run) < 0)
		status = VM_STATUS_ERROR;
	vmm_disks_checkpoints_end(&run, ckpt, !ctl_server_saved(srv));
	ctl_server_close(srv);
	ckpt_close(ckpt);
	if (sigfd >= 0)
		close(sigfd);
	if (sv[0] >= 0)
		close(sv[0]);
	munmap(reboot, sizeof(*reboot));
	free(rl);
	return status;
}
