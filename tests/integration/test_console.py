"""vsrv run --console: the file, socket and stdio backends seen from the host.

The guest is tests/guests/dev-console.c, a polled serial console: it prints
"ready", echoes, and on single capitals prints more (W: 200 lines after a
pause, B: 96 KiB), quits (Q), triple-faults (C) or hits an instruction this
project's hosts cannot emulate (X)."""
import fcntl
import os
import select
import signal
import socket
import subprocess
import termios
import time

from vsrvtest import VSRV, TmpDirTest, main

GUESTS = os.environ.get("VSRV_GUESTS", "")
# Hosts whose KVM emulates guest kernel code (docs/test-host-kvm.md): XSAVE
# there is an emulation failure, elsewhere it is a #UD.
EMULATING_HOST = os.path.isdir("/sys/module/kvm_pvm")
TIMEOUT = 60


def guest(name):
    return os.path.join(GUESTS, name + ".elf")


def big_output():
    """What dev-console prints for 'B'."""
    chunks = [b"chunk %06d\n" % k + b"." * 4082 + b"\n" for k in range(24)]
    return b"".join(chunks) + b"end\n"


def lines_output():
    return b"".join(b"line %03d\n" % i for i in range(200)) + b"end\n"


def start(*args, stdin=subprocess.DEVNULL, **kw):
    return subprocess.Popen([VSRV, "run", "--test-device", *args], stdin=stdin,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def read_until(fd, marker, timeout=TIMEOUT):
    """Reads a file descriptor until `marker` has come (or EOF)."""
    buf = b""
    end = time.monotonic() + timeout
    while marker not in buf:
        left = end - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise AssertionError(f"timed out waiting for {marker!r}; got {buf[-200:]!r}")
        try:
            b = os.read(fd, 65536)
        except OSError:		# a pty master after the last slave closed
            b = b""
        if not b:
            break
        buf += b
    return buf


def read_rest(fd):
    """What a pseudo-terminal's master still has to read, once its process
    has ended."""
    out = b""
    while select.select([fd], [], [], 0.2)[0]:
        try:
            b = os.read(fd, 65536)
        except OSError:
            break
        if not b:
            break
        out += b
    return out


def wait_path(path, timeout=TIMEOUT):
    end = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > end:
            raise AssertionError(f"{path} did not appear")
        time.sleep(0.01)


def connect(path):
    """Connects, waiting for a VMM still starting (a stale socket file can
    be there before it)."""
    end = time.monotonic() + TIMEOUT
    while True:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(TIMEOUT)
        try:
            s.connect(path)
            return s
        except (ConnectionRefusedError, FileNotFoundError):
            s.close()
            if time.monotonic() > end:
                raise
            time.sleep(0.01)


def send_and_leave(s, data):
    """Sends input and disconnects, taking none of the output: what the
    guest answers is for the next client."""
    s.shutdown(socket.SHUT_RD)
    s.sendall(data)
    s.close()


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        b = s.recv(n - len(buf))
        if not b:
            break
        buf += b
    return buf


def recv_all(s):
    buf = b""
    while True:
        b = s.recv(65536)
        if not b:
            return buf
        buf += b


class FileConsole(TmpDirTest):
    def test_output_appended_exactly(self):
        path = self.p("console.log")
        with open(path, "wb") as f:
            f.write(b"before\n")
        p = subprocess.run([VSRV, "run", "--kernel", guest("dev-uart"), "--test-device",
                            "--console", "file:" + path], capture_output=True,
                           timeout=TIMEOUT, stdin=subprocess.DEVNULL)
        self.assertEqual((p.returncode, p.stdout, p.stderr), (0, b"uart ok\n", b""))
        with open(path, "rb") as f:
            self.assertEqual(f.read(), b"before\nhello, uart\nA\nrep\n" + bytes(range(256)) +
                             b"\nend\n")
        # A file vsrv creates is the user's alone: the console can carry secrets.
        new = os.path.join(self.dir, "new.log")
        p = subprocess.run([VSRV, "run", "--kernel", guest("dev-uart"), "--test-device",
                            "--console", "file:" + new], capture_output=True,
                           timeout=TIMEOUT, stdin=subprocess.DEVNULL)
        self.assertEqual(p.returncode, 0)
        self.assertEqual(os.stat(new).st_mode & 0o777, 0o600)

    def test_errors(self):
        none = os.path.join(self.dir, "none", "x")
        long = os.path.join(self.dir, "s" * 120)
        cases = [
            (["--console", "file:" + none], 1,
             f"vsrv: console: {none}: No such file or directory\n"),
            (["--console", "tcp:1234"], 2,
             "vsrv: --console: 'tcp:1234' is not stdio, file:PATH, socket:PATH, hvc or "
             "hvc,<one of these>\n"),
            (["--console-buffer", "1K"], 2,
             "vsrv: --console-buffer: 1K is not a size from 4K to 1G\n"),
            (["--console", "file:"], 2,
             "vsrv: --console: 'file:' is not stdio, file:PATH, socket:PATH, hvc or "
             "hvc,<one of these>\n"),
            (["--console", "socket:" + long], 1,
             f"vsrv: console: {long}: longer than 107 bytes (a Unix socket's limit)\n"),
        ]
        for args, status, msg in cases:
            p = subprocess.run([VSRV, "run", "--kernel", guest("dev-uart"), *args],
                               capture_output=True, text=True, timeout=TIMEOUT,
                               stdin=subprocess.DEVNULL)
            self.assertEqual((p.returncode, p.stdout, p.stderr), (status, "", msg), args)


class SocketConsole(TmpDirTest):
    def setUp(self):
        super().setUp()
        self.sock = os.path.join(self.dir, "console.sock")
        self.procs = []

    def tearDown(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.communicate()
        super().tearDown()

    def start(self, *args):
        p = start("--kernel", guest("dev-console"), "--console", "socket:" + self.sock, *args)
        self.procs.append(p)
        wait_path(self.sock)
        return p

    def finish(self, p, client):
        client.sendall(b"Q")
        self.assertEqual(recv_all(client), b"bye\n")
        client.close()
        out, err = p.communicate(timeout=TIMEOUT)
        self.assertEqual((p.returncode, err), (0, b""))
        self.assertFalse(os.path.exists(self.sock), "the socket is removed at exit")
        return out

    def test_late_client_gets_buffered_output_and_sends_input(self):
        p = self.start()
        time.sleep(0.5)		# "ready" is printed with nobody connected
        c = connect(self.sock)
        self.assertEqual(recv_exact(c, 6), b"ready\n")
        self.assertEqual(os.stat(self.sock).st_mode & 0o777, 0o600)
        c.sendall(b"hello, guest\n")
        self.assertEqual(recv_exact(c, 13), b"hello, guest\n")
        self.finish(p, c)

    def test_output_while_disconnected_is_replayed(self):
        p = self.start()
        c = connect(self.sock)
        self.assertEqual(recv_exact(c, 6), b"ready\n")
        send_and_leave(c, b"W")	# the guest waits a second, then prints
        self.assertEqual(read_until(p.stdout.fileno(), b"done\n"), b"done\n")
        c = connect(self.sock)
        want = lines_output()
        self.assertEqual(recv_exact(c, len(want)), want)
        self.finish(p, c)

    def test_input_sent_before_hanging_up(self):
        # Far more than the UART's FIFO: most of it is still in the socket
        # when the client has gone, and is delivered all the same.
        p = self.start()
        c = connect(self.sock)
        self.assertEqual(recv_exact(c, 6), b"ready\n")
        text = b"".join(b"input line %03d\n" % i for i in range(40))
        send_and_leave(c, text)
        c = connect(self.sock)
        self.assertEqual(recv_exact(c, len(text)), text)
        self.finish(p, c)

    def test_buffer_keeps_the_newest_output(self):
        p = self.start("--console-buffer", "64K")
        c = connect(self.sock)
        self.assertEqual(recv_exact(c, 6), b"ready\n")
        send_and_leave(c, b"B")	# 96 KiB
        self.assertEqual(read_until(p.stdout.fileno(), b"done\n"), b"done\n")
        # The output passes the VM's process and a socket pair on its way
        # to the console in vsrv (src/vmm/supervise.c), which "done" on
        # the debug port does not wait for: a moment for the last of it.
        time.sleep(1)
        c = connect(self.sock)
        want = big_output()[-(64 << 10):]
        self.assertEqual(recv_exact(c, len(want)), want)
        self.finish(p, c)

    def test_two_clients_and_a_slow_one(self):
        p = self.start("--console-buffer", "64K")
        fast = connect(self.sock)
        self.assertEqual(recv_exact(fast, 6), b"ready\n")
        slow = connect(self.sock)	# reads nothing until the fast one has all
        fast.sendall(b"B")
        full = big_output()
        self.assertEqual(recv_exact(fast, len(full)), full)
        # The slow reader held nobody up.  It has what its socket took
        # before it stalled, then the newest 64 KiB the ring kept for it
        # (or all of it, if its socket took that much).
        got = b""
        while not got.endswith(b"end\n"):
            b = slow.recv(65536)
            self.assertTrue(b)
            got += b
        if got != full:
            self.assertGreater(len(got), 64 << 10)
            self.assertEqual(got[-(64 << 10):], full[-(64 << 10):])
            self.assertTrue(full.startswith(got[:-(64 << 10)]))
        fast.sendall(b"Q")
        self.assertEqual(recv_all(fast), b"bye\n")
        self.assertEqual(recv_all(slow), b"bye\n")
        fast.close()
        slow.close()
        out, err = p.communicate(timeout=TIMEOUT)
        self.assertEqual((p.returncode, err), (0, b""))

    def test_in_use_stale_and_not_a_socket(self):
        p = self.start()
        q = subprocess.run([VSRV, "run", "--kernel", guest("dev-console"), "--console",
                            "socket:" + self.sock], capture_output=True, text=True,
                           timeout=TIMEOUT)
        self.assertEqual((q.returncode, q.stderr),
                         (1, f"vsrv: console: {self.sock}: in use by another process\n"))
        c = connect(self.sock)
        self.assertEqual(recv_exact(c, 6), b"ready\n")
        self.finish(p, c)
        # Left behind by a VMM that was killed: taken over.
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(self.sock)
        s.close()
        p = self.start()
        c = connect(self.sock)
        self.assertEqual(recv_exact(c, 6), b"ready\n")
        self.finish(p, c)
        with open(self.sock, "w") as f:
            f.write("mine\n")
        q = subprocess.run([VSRV, "run", "--kernel", guest("dev-console"), "--console",
                            "socket:" + self.sock], capture_output=True, text=True,
                           timeout=TIMEOUT)
        self.assertEqual((q.returncode, q.stderr),
                         (1, f"vsrv: console: {self.sock}: exists and is not a socket\n"))
        with open(self.sock) as f:
            self.assertEqual(f.read(), "mine\n")

    def test_survives_hangup_and_its_starter(self):
        p = self.start()
        p.send_signal(signal.SIGHUP)
        time.sleep(0.2)
        self.assertIsNone(p.poll(), "SIGHUP does not end a VMM on a socket console")
        c = connect(self.sock)
        self.assertEqual(recv_exact(c, 6), b"ready\n")
        self.finish(p, c)


class StdioPipes(TmpDirTest):
    def test_pipe_io(self):
        p = start("--kernel", guest("dev-console"), stdin=subprocess.PIPE)
        # Input before the guest has set its UART up would meet the FIFO
        # reset, as on hardware: wait for it.
        self.assertEqual(read_until(p.stdout.fileno(), b"ready\n"), b"ready\n")
        out, err = p.communicate(b"hi\x01x\x03\nQ", timeout=TIMEOUT)
        # Not a terminal: no escapes, every byte is the guest's.
        self.assertEqual((p.returncode, out, err), (0, b"hi\x01x\x03\nbye\n", b""))

    def test_reader_gone(self):
        # Output to a closed pipe is dropped; the VM runs on to its end.
        r, w = os.pipe()
        p = subprocess.Popen([VSRV, "run", "--kernel", guest("dev-uart"), "--test-device"],
                             stdin=subprocess.DEVNULL, stdout=w, stderr=subprocess.PIPE)
        os.close(w)
        os.close(r)
        self.assertEqual(p.wait(timeout=TIMEOUT), 0)
        self.assertEqual(p.stderr.read(), b"")
        p.stderr.close()


class StdioTerminal(TmpDirTest):
    """vsrv on a pseudo-terminal as its controlling terminal, in the
    foreground: raw mode while it runs, the old settings back after."""

    def run_on_pty(self, guest_args, action, controlling=True):
        master, slave = os.openpty()
        try:
            attrs = termios.tcgetattr(slave)
            attrs[3] |= termios.ICANON | termios.ECHO | termios.ISIG
            termios.tcsetattr(slave, termios.TCSANOW, attrs)
            before = termios.tcgetattr(slave)

            def ctty():
                fcntl.ioctl(0, termios.TIOCSCTTY, 0)

            p = subprocess.Popen([VSRV, "run", "--test-device", *guest_args],
                                 stdin=slave, stdout=slave, stderr=slave,
                                 start_new_session=True,
                                 preexec_fn=ctty if controlling else None)
            try:
                out = read_until(master, b"ready\r\n")
                during = termios.tcgetattr(slave)
                action(p, master)
                status = p.wait(timeout=TIMEOUT)
                time.sleep(0.05)
                out += read_rest(master)
            finally:
                if p.poll() is None:
                    p.kill()
                    p.wait()
            after = termios.tcgetattr(slave)
        finally:
            os.close(master)
            os.close(slave)
        return status, out, before, during, after

    def raw_then_restored(self, action, *extra):
        """Runs dev-console on the terminal; checks raw mode while it ran
        and the old settings after; returns its status and output."""
        status, out, before, during, after = self.run_on_pty(
            ["--kernel", guest("dev-console"), *extra], action)
        self.assertEqual(during[3] & (termios.ICANON | termios.ECHO | termios.ISIG), 0)
        self.assertEqual(after, before)
        return status, out

    def typing(self, keys, *extra):
        return self.raw_then_restored(lambda p, m: os.write(m, keys), *extra)

    def test_normal_exit(self):
        def act(p, m):
            # Ctrl-A Ctrl-A is one Ctrl-A for the guest.
            os.write(m, b"abc\x01\x01d")
            self.assertIn(b"abc\x01d", read_until(m, b"d"))
            os.write(m, b"Q")
        status, out = self.raw_then_restored(act)
        self.assertEqual(status, 0)
        self.assertTrue(out.endswith(b"bye\r\n"), out)

    def test_ctrl_a_x_quits(self):
        status, out = self.typing(b"\x01x")
        self.assertEqual(status, 0)
        self.assertIn(b"vsrv: quit from the console", out)

    def test_guest_triple_fault(self):
        status, out = self.typing(b"C", "--on-reboot", "exit")
        self.assertEqual(status, 3)
        self.assertIn(b"vsrv: guest rebooted (vCPU 0: triple fault)", out)

    def test_guest_crash(self):
        status, out = self.typing(b"X", "--on-reboot", "exit")
        if EMULATING_HOST:
            self.assertEqual(status, 4, out)
            self.assertIn(b"vsrv: guest crashed: emulation failure", out)
        else:
            # With hardware virtualization XSAVE without OSXSAVE is a #UD,
            # and with no IDT a triple fault: the crash path is not reached.
            print("skipped: the emulation-failure crash needs an emulating KVM host")
            self.assertEqual(status, 3, out)

    def test_signals(self):
        # The stop signals stop the VM cleanly; a crash of vsrv itself
        # restores the terminal (its handler, then the crash goes on).
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            status, out = self.raw_then_restored(lambda p, m: p.send_signal(sig))
            self.assertEqual(status, 0, (sig, out))
            self.assertTrue(out.endswith(
                f"vsrv: stopped by {sig.name}; the VM was powered off\r\n".encode()), out)
        status, out = self.raw_then_restored(lambda p, m: p.send_signal(signal.SIGSEGV))
        # Killed by it, or with a sanitizer, its report and an abort or exit 1.
        self.assertIn(status, (-signal.SIGSEGV, -signal.SIGABRT, 1), out)

    def test_not_in_the_foreground(self):
        # A terminal that is not vsrv's controlling one (started with
        # setsid, as by a service manager) is left alone and not read.
        def act(p, m):
            p.send_signal(signal.SIGTERM)
        status, out, before, during, after = self.run_on_pty(
            ["--kernel", guest("dev-console")], act, controlling=False)
        self.assertEqual(during, before)
        self.assertEqual(after, before)


if __name__ == "__main__":
    main()
