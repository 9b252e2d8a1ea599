// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The console: where the guest's serial port goes (vsrv run --console).
 *
 *   stdio        standard input and output; on a terminal in raw mode, with
 *                Ctrl-A x to quit (Ctrl-C belongs to the guest then)
 *   file:PATH    output appended to PATH; no input
 *   socket:PATH  a Unix socket server: clients get the output and send input
 *
 * Output never blocks a vCPU: console_write() copies into a ring buffer
 * under a mutex and wakes the console's own I/O thread, which does every
 * system call that could block.  A polled console (console_open_polled)
 * has no thread: the single-threaded loop of its owner (vsrv run's
 * supervisor, src/vmm/supervise.c) polls its descriptors with its own
 * (console_poll_fill, console_poll_handle), so that a process that
 * forks has no other thread, and no process of its own is needed.  When nobody reads (no socket client, a
 * stalled pipe) the ring keeps the newest bytes (1 MiB unless
 * --console-buffer says otherwise); a socket client that connects gets
 * what no client has been given yet.
 *
 * Input is pulled: the I/O thread reads only as much as the sink (the UART)
 * accepts, and waits for console_input_ready() when it is full, so a paste
 * longer than the UART's FIFO is delivered whole instead of overrunning.
 *
 * The terminal: raw mode is undone on every way out of the process that
 * runs code: console_close(), exit() (atexit), and the signals that end it
 * (SIGTERM, SIGINT, SIGHUP, SIGQUIT, and the crash signals, after which
 * the previous handler, e.g. the sanitizer's, still runs).  That needs
 * process-wide state: signal handlers reach nothing else.  Only SIGKILL
 * leaves a terminal raw (`stty sane` or `reset` repairs it).
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
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "devices.h"

#define CONSOLE_MAX_CLIENTS	8
#define CONSOLE_CHUNK		4096	/* at most PIPE_BUF: POLLOUT means it fits */
#define CONSOLE_IN_MAX		256
/* At exit, output still buffered gets this long without progress. */
#define CONSOLE_DRAIN_MS	2000
#define CTRL_A			0x01

struct console_client {
	int fd;
	uint64_t pos;		/* the next output byte this client gets */
	bool in_eof;		/* it shut its sending side */
	bool gone;		/* it hung up with input still unread */
};

struct console {
	enum console_kind kind;
	char *path;		/* file: and socket: */
	int out_fd, in_fd, wake_fd;
	struct unix_listener listener;	/* socket: */
	bool tty;		/* stdin is our terminal: raw mode, Ctrl-A escapes */
	bool polled;		/* no thread: its owner polls it */
	pthread_t thread;
	bool thread_started;

	/* Output: written by vCPUs, read by the I/O thread. */
	pthread_mutex_t lock;
	uint8_t *ring;
	size_t ring_size;
	uint64_t head;		/* bytes ever written; the ring holds the last ones */
	atomic_bool kicked;	/* the I/O thread has a wake-up coming */
	_Atomic uint64_t flushed;	/* output every reader there is has had */
	atomic_bool stopping;

	/* Input sink and quit callback: changed while the I/O thread may
	 * be calling them, so both sides hold sink_lock. */
	pthread_mutex_t sink_lock;
	size_t (*rx)(void *opaque, const uint8_t *buf, size_t len);
	void *rx_opaque;
	void (*quit)(void *opaque);
	void *quit_opaque;
	atomic_bool quit_requested;

	/* I/O thread only. */
	uint64_t out_pos;	/* stdio, file: the next byte to write */
	bool out_broken;	/* stdio: the reader went away; output is dropped */
	uint64_t delivered;	/* socket: output some client has been given */
	uint8_t in_buf[CONSOLE_IN_MAX];
	size_t in_off, in_len;
	bool in_eof;
	bool escape;		/* the last terminal byte was Ctrl-A */
	struct console_client clients[CONSOLE_MAX_CLIENTS];
	unsigned nr_clients;
	bool stop_seen;		/* stopping: since when output made progress */
	struct timespec stop_progress;
};

/* --- the terminal --------------------------------------------------- */

static struct termios saved_tio;
static volatile sig_atomic_t tio_active;
static const int tio_signals[] = {
	SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT,
};
static struct sigaction tio_old[sizeof(tio_signals) / sizeof(tio_signals[0])];
static bool tio_installed;

static void tio_restore(void)
{
	if (tio_active) {
		tcsetattr(STDIN_FILENO, TCSANOW, &saved_tio);
		tio_active = 0;
	}
}

/* Restores the terminal, then lets the signal do what it did before. */
static void tio_on_signal(int sig)
{
	int e = errno;

	tio_restore();
	for (size_t i = 0; i < sizeof(tio_signals) / sizeof(tio_signals[0]); i++)
		if (tio_signals[i] == sig)
			sigaction(sig, &tio_old[i], NULL);
	/* Blocked until the handler returns; a fault re-executes and meets
	 * the old handler either way. */
	raise(sig);
	errno = e;
}

static void tio_install_handlers(void)
{
	struct sigaction sa = { .sa_handler = tio_on_signal };

	if (tio_installed)
		return;
	tio_installed = true;
	atexit(tio_restore);
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof(tio_signals) / sizeof(tio_signals[0]); i++) {
		sigaction(tio_signals[i], NULL, &tio_old[i]);
		/* Ignored (nohup): stays ignored, and the VMM runs on. */
		if (tio_old[i].sa_handler == SIG_IGN)
			continue;
		sigaction(tio_signals[i], &sa, NULL);
	}
}

/* Raw mode as QEMU's stdio has it: no echo, no line editing, no signals
 * from keys; output processing stays on so a lone "\n" still returns the
 * carriage. */
static int tio_raw(void)
{
	struct termios t;

	if (tcgetattr(STDIN_FILENO, &saved_tio) < 0)
		return -errno;
	t = saved_tio;
	t.c_iflag &= ~(tcflag_t)(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR |
				 ICRNL | IXON);
	t.c_lflag &= ~(tcflag_t)(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
	t.c_cflag &= ~(tcflag_t)(CSIZE | PARENB);
	t.c_cflag |= CS8;
	t.c_cc[VMIN] = 1;
	t.c_cc[VTIME] = 0;
	tio_install_handlers();
	tio_active = 1;
	if (tcsetattr(STDIN_FILENO, TCSANOW, &t) < 0) {
		tio_active = 0;
		return -errno;
	}
	return 0;
}

/* --- the output ring ------------------------------------------------ */

/* Copies up to `max` bytes from *pos on; a position the ring has already
 * overwritten moves to the oldest byte kept.  Under con->lock. */
static size_t ring_copy(struct console *con, uint64_t *pos, uint8_t *out, size_t max)
{
	uint64_t oldest = con->head > con->ring_size ? con->head - con->ring_size : 0;
	size_t n, off, first;

	if (*pos < oldest)
		*pos = oldest;
	n = (size_t)(con->head - *pos);
	if (n > max)
		n = max;
	off = (size_t)(*pos % con->ring_size);
	first = con->ring_size - off < n ? con->ring_size - off : n;
	memcpy(out, con->ring + off, first);
	memcpy(out + first, con->ring, n - first);
	return n;
}

/* ring_copy() for the I/O thread, which copies out to write unlocked. */
static size_t ring_take(struct console *con, uint64_t *pos, uint8_t *out, size_t max)
{
	size_t n;

	pthread_mutex_lock(&con->lock);
	n = ring_copy(con, pos, out, max);
	pthread_mutex_unlock(&con->lock);
	return n;
}

static void console_kick(struct console *con)
{
	uint64_t one = 1;

	/* A polled console is looked at again after every turn of its
	 * owner's loop, the only thread that writes it. */
	if (con->polled)
		return;
	if (!atomic_exchange(&con->kicked, true) &&
	    write(con->wake_fd, &one, sizeof(one)) < 0)
		atomic_store(&con->kicked, false);
}

void console_write(struct console *con, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	if (len > con->ring_size) {
		p += len - con->ring_size;
		len = con->ring_size;
	}
	pthread_mutex_lock(&con->lock);
	while (len) {
		size_t off = (size_t)(con->head % con->ring_size);
		size_t n = con->ring_size - off < len ? con->ring_size - off : len;

		memcpy(con->ring + off, p, n);
		con->head += n;
		p += n;
		len -= n;
	}
	pthread_mutex_unlock(&con->lock);
	console_kick(con);
}

static uint64_t ring_head(struct console *con)
{
	uint64_t h;

	pthread_mutex_lock(&con->lock);
	h = con->head;
	pthread_mutex_unlock(&con->lock);
	return h;
}

/* --- input ---------------------------------------------------------- */

void console_attach_input(struct console *con,
			  size_t (*rx)(void *opaque, const uint8_t *buf, size_t len),
			  void *opaque)
{
	pthread_mutex_lock(&con->sink_lock);
	con->rx = rx;
	con->rx_opaque = opaque;
	pthread_mutex_unlock(&con->sink_lock);
	if (rx)
		console_kick(con);
}

void console_input_ready(struct console *con)
{
	console_kick(con);
}

void console_set_quit(struct console *con, void (*quit)(void *opaque), void *opaque)
{
	pthread_mutex_lock(&con->sink_lock);
	con->quit = quit;
	con->quit_opaque = opaque;
	/* A quit between two boots ends the next one at once. */
	if (quit && atomic_load(&con->quit_requested))
		quit(opaque);
	pthread_mutex_unlock(&con->sink_lock);
}

bool console_quit_requested(struct console *con)
{
	return atomic_load(&con->quit_requested);
}

static void request_quit(struct console *con)
{
	pthread_mutex_lock(&con->sink_lock);
	atomic_store(&con->quit_requested, true);
	if (con->quit)
		con->quit(con->quit_opaque);
	pthread_mutex_unlock(&con->sink_lock);
}

/* Hands buffered input to the sink; false while it has no room. */
static bool input_pump(struct console *con)
{
	while (con->in_off < con->in_len) {
		size_t n = 0;

		pthread_mutex_lock(&con->sink_lock);
		if (con->rx)
			n = con->rx(con->rx_opaque, con->in_buf + con->in_off,
				    con->in_len - con->in_off);
		pthread_mutex_unlock(&con->sink_lock);
		if (!n)
			return false;
		con->in_off += n;
	}
	con->in_off = con->in_len = 0;
	return true;
}

/* Terminal input: Ctrl-A x quits, Ctrl-A Ctrl-A sends one Ctrl-A, Ctrl-A h
 * lists these; any other byte after Ctrl-A goes to the guest with it. */
static void input_terminal(struct console *con, const uint8_t *buf, size_t len)
{
	static const char help[] =
		"\r\nC-a x    quit vsrv\r\nC-a C-a  send C-a to the guest\r\nC-a h    this help\r\n";

	for (size_t i = 0; i < len; i++) {
		uint8_t c = buf[i];

		if (!con->escape) {
			if (c == CTRL_A)
				con->escape = true;
			else
				con->in_buf[con->in_len++] = c;
			continue;
		}
		con->escape = false;
		if (c == 'x' || c == 'X') {
			request_quit(con);
		} else if (c == 'h' || c == 'H' || c == '?') {
			console_write(con, help, sizeof(help) - 1);
		} else if (c == CTRL_A) {
			con->in_buf[con->in_len++] = c;
		} else {
			con->in_buf[con->in_len++] = CTRL_A;
			con->in_buf[con->in_len++] = c;
		}
	}
}

static void input_read_stdin(struct console *con)
{
	uint8_t buf[CONSOLE_IN_MAX / 2];	/* escapes can double a byte */
	ssize_t n = read(con->in_fd, buf, sizeof(buf));

	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		con->in_eof = true;
		return;
	}
	con->in_off = 0;
	con->in_len = 0;
	if (con->tty) {
		input_terminal(con, buf, (size_t)n);
	} else {
		memcpy(con->in_buf, buf, (size_t)n);
		con->in_len = (size_t)n;
	}
}

/* --- the I/O thread ------------------------------------------------- */

static void client_drop(struct console *con, unsigned i)
{
	close(con->clients[i].fd);
	con->clients[i] = con->clients[--con->nr_clients];
}

static void client_accept(struct console *con)
{
	int fd = accept4(con->listener.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	uint64_t head, oldest;

	if (fd < 0)
		return;
	if (con->nr_clients == CONSOLE_MAX_CLIENTS) {
		close(fd);
		return;
	}
	head = ring_head(con);
	oldest = head > con->ring_size ? head - con->ring_size : 0;
	/* What no client has been given yet, as far as the ring kept it. */
	con->clients[con->nr_clients++] = (struct console_client){
		.fd = fd, .pos = con->delivered > oldest ? con->delivered : oldest,
	};
}

/* The client is gone for output; true while input it sent before going is
 * still unread (it stays, unpolled, until there is room for that). */
static bool client_hangup(struct console_client *cl)
{
	int unread = 0;

	cl->gone = true;
	return !cl->in_eof && ioctl(cl->fd, FIONREAD, &unread) == 0 && unread > 0;
}

/* Sends what it can without blocking; false when the client is gone. */
static bool client_send(struct console *con, struct console_client *cl)
{
	uint8_t buf[CONSOLE_CHUNK];

	for (;;) {
		size_t n = ring_take(con, &cl->pos, buf, sizeof(buf));
		ssize_t w;

		if (!n)
			return true;
		w = send(cl->fd, buf, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
		cl->pos += (uint64_t)w;
		if (cl->pos > con->delivered)
			con->delivered = cl->pos;
		if ((size_t)w < n)
			return true;
	}
}

/* stdio and file: one chunk per call (the fd is blocking; poll said it
 * has room).  A reader that went away turns output into a sink. */
static void out_write(struct console *con)
{
	uint8_t buf[CONSOLE_CHUNK];
	size_t n = ring_take(con, &con->out_pos, buf, sizeof(buf));
	ssize_t w;

	if (!n)
		return;
	if (con->out_broken) {
		con->out_pos += n;
		return;
	}
	w = write(con->out_fd, buf, n);
	if (w < 0) {
		if (errno != EINTR && errno != EAGAIN)
			con->out_broken = true;
		return;
	}
	con->out_pos += (uint64_t)w;
}

static long ms_since(const struct timespec *t)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - t->tv_sec) * 1000 + (now.tv_nsec - t->tv_nsec) / 1000000;
}

/* Whether some reader has output to come; records how far all have got. */
static bool output_pending(struct console *con, uint64_t head)
{
	uint64_t low = head;

	if (con->kind != CONSOLE_SOCKET && !con->out_broken)
		low = con->out_pos;
	for (unsigned i = 0; i < con->nr_clients; i++)
		if (con->clients[i].pos < low)
			low = con->clients[i].pos;
	atomic_store(&con->flushed, low);
	return low < head;
}

void console_flush(struct console *con)
{
	uint64_t target = ring_head(con), last = atomic_load(&con->flushed);
	struct timespec progress, pause = { 0, 1000000 };

	/* Only stdio shares its reader with the VMM's messages; a polled
	 * console's owner flushes it by closing it. */
	if (con->kind != CONSOLE_STDIO || con->polled)
		return;
	clock_gettime(CLOCK_MONOTONIC, &progress);
	console_kick(con);
	for (;;) {
		uint64_t now = atomic_load(&con->flushed);

		if (now >= target)
			return;
		if (now != last) {
			last = now;
			clock_gettime(CLOCK_MONOTONIC, &progress);
		} else if (ms_since(&progress) > CONSOLE_DRAIN_MS) {
			return;
		}
		nanosleep(&pause, NULL);
	}
}

/* Reads a socket client's input; false when the client is gone. */
static bool client_recv(struct console *con, struct console_client *cl)
{
	ssize_t n = recv(cl->fd, con->in_buf, sizeof(con->in_buf), MSG_DONTWAIT);

	if (n > 0) {
		con->in_off = 0;
		con->in_len = (size_t)n;
	} else if (n == 0) {
		cl->in_eof = true;	/* it may still read the output */
	} else if (errno != EAGAIN && errno != EINTR) {
		return false;
	}
	return true;
}

enum { PFD_WAKE, PFD_MAIN, PFD_OUT, PFD_CLIENTS };
_Static_assert(PFD_CLIENTS + CONSOLE_MAX_CLIENTS == CONSOLE_POLL_MAX, "CONSOLE_POLL_MAX");

int console_poll_fill(struct console *con, struct pollfd *pfd, int *timeout_ms)
{
	bool stopping = atomic_load(&con->stopping);
	bool want_in = input_pump(con) && !stopping;
	uint64_t head = ring_head(con);
	bool pending = output_pending(con, head);
	unsigned nfd = PFD_CLIENTS;

	if (stopping) {
		/* Output still buffered gets its chance, as long as it
		 * makes progress. */
		if (!con->stop_seen) {
			con->stop_seen = true;
			clock_gettime(CLOCK_MONOTONIC, &con->stop_progress);
		}
		if (!pending || con->out_broken ||
		    ms_since(&con->stop_progress) > CONSOLE_DRAIN_MS)
			return -1;
		if (*timeout_ms < 0 || *timeout_ms > 100)
			*timeout_ms = 100;
	}
	pfd[PFD_WAKE] = (struct pollfd){ .fd = con->polled ? -1 : con->wake_fd,
					 .events = POLLIN };
	pfd[PFD_MAIN] = (struct pollfd){ .fd = -1 };
	pfd[PFD_OUT] = (struct pollfd){ .fd = -1 };
	if (con->kind == CONSOLE_STDIO && want_in && !con->in_eof && con->in_fd >= 0)
		pfd[PFD_MAIN] = (struct pollfd){ .fd = con->in_fd, .events = POLLIN };
	if (con->kind == CONSOLE_SOCKET && !stopping)
		pfd[PFD_MAIN] = (struct pollfd){ .fd = con->listener.fd, .events = POLLIN };
	/* stdio and file: blocking fds, written a chunk at a time once poll
	 * says there is room (a regular file always has). */
	if (con->kind != CONSOLE_SOCKET && pending && !con->out_broken)
		pfd[PFD_OUT] = (struct pollfd){ .fd = con->out_fd, .events = POLLOUT };
	for (unsigned i = 0; i < con->nr_clients; i++) {
		struct console_client *cl = &con->clients[i];

		pfd[nfd++] = (struct pollfd){
			/* Gone: only its last input is left, when there is
			 * room for it (its hangup would wake us). */
			.fd = cl->gone && !want_in ? -1 : cl->fd,
			.events = (short)((want_in && !cl->in_eof ? POLLIN : 0) |
					  (cl->pos < head && !cl->gone ? POLLOUT : 0)),
		};
	}
	return (int)nfd;
}

int console_poll_handle(struct console *con, const struct pollfd *pfd, unsigned nfd)
{
	if (pfd[PFD_WAKE].revents & POLLIN) {
		uint64_t v;

		/* Read, then re-arm: a kick in between finds the flag still
		 * set, and its data is looked at on the next turn anyway. */
		if (read(con->wake_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
			return -1;
		atomic_store(&con->kicked, false);
	}
	if (pfd[PFD_OUT].revents) {
		uint64_t before = con->out_pos;

		out_write(con);
		if (con->out_pos != before)
			clock_gettime(CLOCK_MONOTONIC, &con->stop_progress);
	}
	if (con->kind == CONSOLE_STDIO && pfd[PFD_MAIN].revents)
		input_read_stdin(con);
	for (unsigned i = con->nr_clients; i-- > 0;) {
		const struct pollfd *p = &pfd[PFD_CLIENTS + i];
		struct console_client *cl = &con->clients[i];
		bool alive = true;

		if (i + PFD_CLIENTS >= nfd || p->fd != cl->fd)
			continue;	/* moved, or not polled */
		if (p->revents & POLLIN) {
			/* Another client's input came first this turn. */
			if (con->in_len == 0)
				alive = client_recv(con, cl);
		} else if (p->revents & (POLLERR | POLLHUP)) {
			alive = client_hangup(cl);
		}
		if (alive && !cl->gone && (p->revents & POLLOUT)) {
			if (!client_send(con, cl))
				alive = client_hangup(cl);
			clock_gettime(CLOCK_MONOTONIC, &con->stop_progress);
		}
		if (!alive)
			client_drop(con, i);
	}
	if (con->kind == CONSOLE_SOCKET && (pfd[PFD_MAIN].revents & POLLIN))
		client_accept(con);
	return 0;
}

/* The console's own loop, until it is stopped and has drained: on its
 * thread, or in console_close() for a polled console. */
static void console_run(struct console *con)
{
	struct pollfd pfd[CONSOLE_POLL_MAX];

	for (;;) {
		int timeout = -1, n = console_poll_fill(con, pfd, &timeout), r;

		if (n < 0)
			return;
		r = poll(pfd, (nfds_t)n, timeout);
		if (r < 0 && errno != EINTR)
			return;
		if (r > 0 && console_poll_handle(con, pfd, (unsigned)n) < 0)
			return;
	}
}

static void *console_thread(void *arg)
{
	/* Signals are the main thread's: it restores the terminal. */
	vm_thread_signals(0);
	console_run(arg);
	return NULL;
}

/* --- opening and closing -------------------------------------------- */

int console_parse(const char *spec, enum console_kind *kind, const char **path)
{
	if (!strcmp(spec, "stdio")) {
		*kind = CONSOLE_STDIO;
		*path = NULL;
	} else if (!strncmp(spec, "file:", 5) && spec[5]) {
		*kind = CONSOLE_FILE;
		*path = spec + 5;
	} else if (!strncmp(spec, "socket:", 7) && spec[7]) {
		*kind = CONSOLE_SOCKET;
		*path = spec + 7;
	} else {
		return -EINVAL;
	}
	return 0;
}

int console_parse_hvc(const char *spec, bool *hvc, const char **backend)
{
	enum console_kind kind;
	const char *path;

	*hvc = !strcmp(spec, "hvc") || !strncmp(spec, "hvc,", 4);
	*backend = !strcmp(spec, "hvc") ? "stdio" : *hvc ? spec + 4 : spec;
	return console_parse(*backend, &kind, &path);
}

/* stdin is ours to read when it is not a terminal, or is the terminal we
 * are in the foreground of (a background or setsid'd vsrv must neither
 * steal the keyboard nor stop on SIGTTIN). */
static void open_stdio(struct console *con)
{
	con->out_fd = STDOUT_FILENO;
	con->in_fd = STDIN_FILENO;
	if (!isatty(STDIN_FILENO))
		return;
	if (tcgetpgrp(STDIN_FILENO) != getpgrp() || tio_raw() < 0) {
		con->in_fd = -1;
		return;
	}
	con->tty = true;
}

/* The ring, the locks and the wake-up; no backend yet. */
static int console_alloc(struct console **out, enum console_kind kind, size_t buffer,
			 char *err, size_t errlen)
{
	struct console *con;

	if (!buffer)
		buffer = CONSOLE_BUFFER_DEFAULT;
	con = calloc(1, sizeof(*con));
	if (con) {
		con->ring_size = buffer;
		/* Not the boots' to inherit: a polled console's process forks
		 * them, and output it buffered would be theirs too until
		 * written, counted in their memory. */
		con->ring = mmap(NULL, buffer, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (con->ring == MAP_FAILED)
			con->ring = NULL;
		else
			madvise(con->ring, buffer, MADV_DONTFORK);
	}
	if (!con || !con->ring) {
		free(con);
		snprintf(err, errlen, "console: out of memory");
		return -ENOMEM;
	}
	con->kind = kind;
	con->out_fd = con->in_fd = -1;
	con->listener = (struct unix_listener){ .fd = -1, .lock_fd = -1 };
	pthread_mutex_init(&con->lock, NULL);
	pthread_mutex_init(&con->sink_lock, NULL);
	*out = con;
	con->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (con->wake_fd < 0) {
		snprintf(err, errlen, "console: eventfd: %s", strerror(errno));
		return -errno;
	}
	/* A reader that goes away must not kill the VM with SIGPIPE. */
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

static int console_start(struct console *con, char *err, size_t errlen)
{
	int r = -pthread_create(&con->thread, NULL, console_thread, con);

	if (r < 0) {
		snprintf(err, errlen, "console: starting its thread: %s", strerror(-r));
		return r;
	}
	con->thread_started = true;
	return 0;
}

static int open_spec(struct console **out, const char *spec, size_t buffer, bool polled,
		     char *err, size_t errlen)
{
	enum console_kind kind;
	struct console *con = NULL;
	const char *path;
	int r;

	*out = NULL;
	if (console_parse(spec, &kind, &path) < 0) {
		snprintf(err, errlen, "--console: '%s' is not stdio, file:PATH or socket:PATH", spec);
		return -EINVAL;
	}
	r = console_alloc(&con, kind, buffer, err, errlen);
	if (r < 0)
		goto fail;
	con->polled = polled;
	if (path) {
		con->path = strdup(path);
		if (!con->path) {
			r = -ENOMEM;
			snprintf(err, errlen, "console: out of memory");
			goto fail;
		}
		/* Not a terminal's: the VMM outlives the session that started it. */
		signal(SIGHUP, SIG_IGN);
	}
	switch (con->kind) {
	case CONSOLE_STDIO:
		open_stdio(con);
		break;
	case CONSOLE_FILE:
		/* 0600: the console carries whatever the guest prints. */
		con->out_fd = open(con->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		r = con->out_fd < 0 ? -errno : 0;
		if (r < 0)
			snprintf(err, errlen, "console: %s: %s", con->path, strerror(-r));
		break;
	case CONSOLE_SOCKET:
		r = unix_listen(&con->listener, "console", con->path, 4, err, errlen);
		break;
	}
	if (r >= 0 && !polled)
		r = console_start(con, err, errlen);
	if (r < 0)
		goto fail;
	*out = con;
	return 0;
fail:
	console_close(con);
	return r;
}

int console_open(struct console **out, const char *spec, size_t buffer, char *err,
		 size_t errlen)
{
	return open_spec(out, spec, buffer, false, err, errlen);
}

int console_open_polled(struct console **out, const char *spec, size_t buffer, char *err,
			size_t errlen)
{
	return open_spec(out, spec, buffer, true, err, errlen);
}

int console_open_fd(struct console **out, int fd, size_t buffer, char *err, size_t errlen)
{
	struct console *con = NULL;
	int r;

	*out = NULL;
	r = console_alloc(&con, CONSOLE_STDIO, buffer, err, errlen);
	if (r >= 0) {
		/* Like stdio on a pipe: no terminal, which the supervisor has. */
		con->in_fd = con->out_fd = fd;
		r = console_start(con, err, errlen);
	}
	if (r < 0) {
		console_close(con);
		return r;
	}
	*out = con;
	return 0;
}

void console_forget(struct console *con)
{
	if (!con)
		return;
	for (unsigned i = 0; i < con->nr_clients; i++)
		close(con->clients[i].fd);
	if (con->listener.fd >= 0)
		close(con->listener.fd);
	if (con->listener.lock_fd >= 0)
		close(con->listener.lock_fd);
	if (con->kind == CONSOLE_FILE && con->out_fd >= 0)
		close(con->out_fd);
	if (con->wake_fd >= 0)
		close(con->wake_fd);
	/* The terminal is the parent's to restore: not at this process's
	 * exit, nor by a handler whose calls its sandbox may forbid. */
	tio_active = 0;
	if (tio_installed)
		for (size_t i = 0; i < sizeof(tio_signals) / sizeof(tio_signals[0]); i++)
			if (tio_old[i].sa_handler != SIG_IGN)
				sigaction(tio_signals[i], &tio_old[i], NULL);
	tio_installed = false;
}

void console_close(struct console *con)
{
	if (!con)
		return;
	if (con->thread_started) {
		atomic_store(&con->stopping, true);
		console_kick(con);
		pthread_join(con->thread, NULL);
	} else if (con->polled && con->ring) {
		atomic_store(&con->stopping, true);
		console_run(con);
	}
	if (con->tty)
		tio_restore();
	for (unsigned i = 0; i < con->nr_clients; i++)
		close(con->clients[i].fd);
	unix_listen_close(&con->listener);
	if (con->kind == CONSOLE_FILE && con->out_fd >= 0)
		close(con->out_fd);
	if (con->wake_fd >= 0)
		close(con->wake_fd);
	pthread_mutex_destroy(&con->lock);
	pthread_mutex_destroy(&con->sink_lock);

	free(con->path);
	munmap(con->ring, con->ring_size);
	free(con);
}
