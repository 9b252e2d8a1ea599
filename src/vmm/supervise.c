// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The processes of one `vsrv run`:
 *
 *   vsrv (this process, single-threaded, unconfined)
 *    |-- console process: the console (terminal, file or socket) and its
 *    |   relay to the boots; outlives them all
 *    `-- boot process, one per boot: the VM, confined by seccomp
 *
 * A boot runs in a process of its own because the seccomp filter it
 * installs cannot be lifted and a new VM needs what it forbids (open,
 * KVM_CREATE_VM, ...); a fresh process per boot also leaves nothing of the
 * last one behind.  The console lives in a process of its own so that it
 * outlives the boots (its socket clients stay connected, its buffer keeps
 * what nobody has read, the terminal stays raw) without its thread being
 * in the process that forks the boots: fork() in a threaded process hands
 * the child whatever locks the other threads held.  And the sandboxed boot
 * needs no call of the console's: it writes to a socket pair.
 *
 *   guest output: UART -> boot's console_open_fd() -> socket pair -> console
 *   input:        console -> socket pair -> boot's UART
 *
 * Undo disks' overlays are made here before the first boot and finished
 * after the last (disks.c): they outlive every boot's process.  So do the
 * checkpoints' index and their disks' layers (--checkpoints,
 * checkpoints.c, disks.c), and the control socket (--control, control.c),
 * served in the loop that waits for each boot and relayed to each boot
 * over a channel of its own; it closes after the disks are finished.
 *
 * Input a boot has not read when it ends stays in the socket pair for the
 * next one.  SIGTERM, SIGINT and SIGHUP here, or Ctrl-A x on the console,
 * reach the boot as SIGTERM: it stops its VM cleanly and no boot follows;
 * a second signal kills it.  The boot dies with this process
 * (PR_SET_PDEATHSIG), and the console's process then ends on its own.  Whether a boot's VM asked to reboot comes back in
 * shared memory: its exit status is the guest's to choose (the test
 * device).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
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

#define QUIT_BYTE	'q'	/* console process -> vsrv: Ctrl-A x */

/* --- the console process -------------------------------------------- */

struct relay {
	int sock;		/* the console's end of the socket pair */
	int ctl;		/* to vsrv: the start-up word, then QUIT_BYTE */
	int wake_fd;		/* the console's thread wakes the loop */
	atomic_bool in_blocked;	/* the pair is full: wait for POLLOUT */
};

/* On the console's thread: as much input as the socket pair takes. */
static size_t relay_rx(void *opaque, const uint8_t *buf, size_t len)
{
	struct relay *rl = opaque;
	ssize_t n = send(rl->sock, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
	uint64_t one = 1;

	if (n >= 0 && (size_t)n == len)
		return len;
	atomic_store(&rl->in_blocked, true);
	if (write(rl->wake_fd, &one, sizeof(one)) < 0)
		n = n > 0 ? n : 0;	/* an eventfd counter is not full */
	return n > 0 ? (size_t)n : 0;
}

static void relay_quit(void *opaque)
{
	struct relay *rl = opaque;
	char q = QUIT_BYTE;

	if (write(rl->ctl, &q, 1) < 0)
		return;	/* vsrv is gone, and this process with it */
}

/* Relays until every boot and vsrv have closed their end of the pair. */
static void relay_loop(struct relay *rl, struct console *con)
{
	uint8_t buf[65536];

	for (;;) {
		struct pollfd pfd[2] = {
			{ .fd = rl->sock, .events = POLLIN },
			{ .fd = rl->wake_fd, .events = POLLIN },
		};
		ssize_t n;

		if (atomic_load(&rl->in_blocked))
			pfd[0].events |= POLLOUT;
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		if (pfd[1].revents & POLLIN) {
			uint64_t v;

			if (read(rl->wake_fd, &v, sizeof(v)) < 0)
				v = 0;
		}
		if (pfd[0].revents & POLLOUT) {
			atomic_store(&rl->in_blocked, false);
			console_input_ready(con);
		}
		if (pfd[0].revents & (POLLIN | POLLHUP)) {
			n = recv(rl->sock, buf, sizeof(buf), MSG_DONTWAIT);
			if (n > 0)
				console_write(con, buf, (size_t)n);
			else if (n == 0 || (errno != EAGAIN && errno != EINTR))
				return;
		}
	}
}

static void __attribute__((noreturn))
console_main(const struct vmm_config *cfg, int sock, int ctl)
{
	struct relay rl = { .sock = sock, .ctl = ctl };
	struct console *con;
	char err[1024];
	sigset_t all;

	/* No death signal: when vsrv dies, the boot dies with it, the last
	 * writer of the pair is gone and relay_loop() ends, and the console
	 * closes as always (the terminal restored, the socket removed). */
	prctl(PR_SET_NAME, "vsrv-console");	/* what ps and top show */
	/* It ends when the boots do; signals are vsrv's to act on. */
	sigfillset(&all);
	sigdelset(&all, SIGSEGV);
	sigdelset(&all, SIGBUS);
	sigdelset(&all, SIGILL);
	sigdelset(&all, SIGFPE);
	sigdelset(&all, SIGABRT);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	rl.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (rl.wake_fd < 0) {
		snprintf(err, sizeof(err), "console: eventfd: %s", strerror(errno));
		con = NULL;
	} else if (console_open(&con, cfg->console ? cfg->console : "stdio",
				(size_t)cfg->console_buffer, err, sizeof(err)) < 0) {
		con = NULL;
	}
	if (!con) {
		/* The one line vsrv prints. */
		if (write(ctl, err, strlen(err)) < 0)
			_exit(VM_STATUS_ERROR);
		_exit(VM_STATUS_ERROR);
	}
	console_attach_input(con, relay_rx, &rl);
	console_set_quit(con, relay_quit, &rl);
	if (write(ctl, "", 1) != 1)
		_exit(VM_STATUS_ERROR);
	relay_loop(&rl, con);
	console_set_quit(con, NULL, NULL);
	console_attach_input(con, NULL, NULL);
	console_close(con);
	close(rl.wake_fd);
	exit(0);
}

/* Starts the console process; on failure, its one line in err. */
static int console_start_process(const struct vmm_config *cfg, const int sv[2], int *ctl,
				 pid_t *pid, char *err, size_t errlen)
{
	int p[2];
	ssize_t n;

	if (pipe2(p, O_CLOEXEC) < 0) {
		snprintf(err, errlen, "console: pipe: %s", strerror(errno));
		return -errno;
	}
	fflush(NULL);
	*pid = fork();
	if (*pid < 0) {
		snprintf(err, errlen, "console: fork: %s", strerror(errno));
		close(p[0]);
		close(p[1]);
		return -EAGAIN;
	}
	if (*pid == 0) {
		close(p[0]);
		close(sv[1]);	/* the boots' end: its last close is our EOF */
		console_main(cfg, sv[0], p[1]);
	}
	close(p[1]);
	/* A NUL byte: the console is open; text: why it is not. */
	n = read(p[0], err, errlen - 1);
	if (n == 1 && err[0] == '\0') {
		*ctl = p[0];
		err[0] = '\0';
		return 0;
	}
	err[n > 0 ? n : 0] = '\0';
	if (n <= 0)
		snprintf(err, errlen, "console: its process ended before it opened");
	close(p[0]);
	return -EIO;
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

enum { P_BOOT, P_SIGNAL, P_CTL, P_NR };

/* A stop through the control socket (power-off, a shutdown's timeout). */
#define STOP_CONTROL	(-3)

/* Waits for a boot to end, passing on stops and serving the control
 * socket; its wait status, or -1.  *stop_sig: the signal, -1 for Ctrl-A x,
 * -2 when the console's process ended, STOP_CONTROL. */
static int wait_boot(pid_t pid, int pidfd, int sigfd, int ctl, struct ctl_server *srv,
		     int *stop_sig)
{
	struct pollfd pfd[P_NR + CTL_POLL_MAX] = {
		[P_BOOT] = { .fd = pidfd, .events = POLLIN },
		[P_SIGNAL] = { .fd = sigfd, .events = POLLIN },
		[P_CTL] = { .fd = ctl, .events = POLLIN },
	};
	int status;

	while (!(pfd[P_BOOT].revents & POLLIN)) {
		unsigned n = 0;
		int sig = 0, timeout = -1;

		if (srv)
			n = ctl_server_poll(srv, pfd + P_NR, &timeout);
		if (poll(pfd, P_NR + n, timeout) < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (srv && ctl_server_handle(srv, pfd + P_NR, n) == CTL_ACT_POWER_OFF)
			sig = STOP_CONTROL;
		if (pfd[P_SIGNAL].revents & POLLIN) {
			struct signalfd_siginfo si;

			if (read(sigfd, &si, sizeof(si)) == sizeof(si))
				sig = (int)si.ssi_signo;
		}
		if (pfd[P_CTL].revents) {
			char c;

			/* Ctrl-A x, or the console process ended: without it
			 * the guest's output would be lost, so the VM stops. */
			if (read(ctl, &c, 1) == 1 && c == QUIT_BYTE) {
				sig = -1;
			} else {
				pfd[P_CTL].fd = -1;
				sig = -2;
			}
		}
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
static int boot(const struct vmm_config *cfg, int sock, int sigfd, int ctl,
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
		/* The clients' connections are not the VM's to hold open. */
		ctl_server_forget(srv);
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
	ws = wait_boot(pid, pidfd, sigfd, ctl, srv, stop_sig);
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
	int sv[2] = { -1, -1 }, sigfd = -1, ctl = -1, stop_sig = 0;
	int status = VM_STATUS_ERROR;
	/* This run's configuration: the boots' disks are its undo overlays
	 * and its checkpoints' layers, which change as it runs. */
	struct vmm_config run = *cfg, boot_cfg;
	struct ckpt_index *ckpt = NULL;
	struct ctl_server *srv = NULL;
	const char *restore = cfg->restore;
	pid_t con_pid = -1;
	char err[1024];
	sigset_t stop;

	for (unsigned i = 0; i < VMM_PORTS_MAX; i++)
		ports[i] = (struct unix_listener){ .fd = -1, .lock_fd = -1 };
	if (reboot == MAP_FAILED) {
		fprintf(stderr, "vsrv: mapping shared memory for reboots failed\n");
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
	if (console_start_process(cfg, sv, &ctl, &con_pid, err, sizeof(err)) < 0) {
		fprintf(stderr, "vsrv: %s\n", err);
		goto out;
	}
	close(sv[0]);
	sv[0] = -1;
	if (ports_listen(&run, ports) < 0)
		goto out;
	if (cfg->control &&
	    ctl_server_open(&srv, &run, ckpt, con_pid, err, sizeof(err)) < 0) {
		fprintf(stderr, "vsrv: %s\n", err);
		goto out;
	}
	do {
		/* The first boot restores --restore's state; a reboot boots the
		 * kernel, a revert restores its checkpoint; each on the disks'
		 * layers as they are then. */
		boot_cfg = run;
		boot_cfg.restore = restore;
		status = boot(&boot_cfg, sv[1], sigfd, ctl, srv, reboot, &stop_sig);
		restore = ctl_server_take_restore(srv);
		if (srv)
			ctl_server_boot_ended(srv, (*reboot || restore) && !stop_sig);
	} while ((*reboot || restore) && !stop_sig);
out:
	/* The console process ends once its last writer is gone: its
	 * output comes before what is printed here. */
	if (sv[1] >= 0)
		close(sv[1]);
	for (unsigned i = 0; i < cfg->nr_ports; i++)
		unix_listen_close(&ports[i]);
	if (con_pid > 0)
		while (waitpid(con_pid, NULL, 0) < 0 && errno == EINTR)
			;
	if (stop_sig > 0) {
		fprintf(stderr, "vsrv: stopped by SIG%s; the VM was powered off\n",
			sigabbrev_np(stop_sig));
	} else if (stop_sig == -1) {
		fprintf(stderr, "vsrv: quit from the console\n");
	} else if (stop_sig == -2) {
		fprintf(stderr, "vsrv: the console's process ended; the VM was stopped\n");
		status = VM_STATUS_ERROR;
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
	if (ctl >= 0)
		close(ctl);
	if (sv[0] >= 0)
		close(sv[0]);
	munmap(reboot, sizeof(*reboot));
	return status;
}
