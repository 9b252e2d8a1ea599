"""virtio-console (vsrv run --console hvc,..., --port NAME=socket:PATH), driven
from both sides: tests/guests/dev-virtio-console.c is the guest's driver (the
multiport handshake, hvc0, the named ports), this file the host's side (the
console's socket or file, the ports' clients).  Exact output on each side,
exact log lines, and the device's counters from --stats."""
import fcntl
import json
import os
import re
import socket
import subprocess
import termios
import time

from ctltest import Client
from test_boot import fnv1a
from test_console import connect, read_rest, read_until, recv_all, recv_exact, wait_path
from vsrvtest import VSRV, TmpDirTest, main

GUESTS = os.environ.get("VSRV_GUESTS", "")
TIMEOUT = 120
DEV = "vsrv: virtio-console 00:01.0: "


def guest(name):
    return os.path.abspath(os.path.join(GUESTS, name + ".elf"))


def header(ports):
    return (f"virtio-console 00:01.0 class 078000, features multiport, max_nr_ports {ports}, "
            f"{2 + 2 * ports} queues\n")


# The handshake with the console and two named ports, as the guest prints
# what the device sends: every port added, then (once the guest says each
# is ready) the console announced and open, the names.
HANDSHAKE = """\
ctrl: PORT_ADD 0 0
ctrl: PORT_ADD 1 0
ctrl: PORT_ADD 2 0
ctrl: CONSOLE_PORT 0 1
ctrl: PORT_OPEN 0 1
ctrl: PORT_NAME 1 1 org.vsrv.echo
ctrl: PORT_NAME 2 1 second
"""
CONSOLE_ONLY = "ctrl: PORT_ADD 0 0\nctrl: CONSOLE_PORT 0 1\nctrl: PORT_OPEN 0 1\n"
EARLY = b"uart: the early console\nhvc0: hello from the guest\n"
# What --stats prints before the device's own lines (their counts depend
# on how the guest's polling and the eventfds met).
STATS_HEAD = (r"vsrv: exits: IO \d+\nvsrv: exits: MMIO \d+\n" + re.escape(DEV) +
              r"\d+ notifications, \d+ requests, \d+ bytes to the guest, \d+ interrupts, "
              r"0 refused, 0 resets needed\n")


class Guest:
    """vsrv running the guest, its debug port (stdout) read as it comes."""

    def __init__(self, *args):
        self.p = subprocess.Popen([VSRV, "run", "--kernel", guest("dev-virtio-console"),
                                   "--test-device", *args], stdin=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.out = b""

    def wait(self, line):
        """Waits for the guest to print line."""
        while line.encode() not in self.out:
            self.out += read_until(self.p.stdout.fileno(), b"\n")

    def end(self):
        out, err = self.p.communicate(timeout=TIMEOUT)
        return self.p.returncode, (self.out + out).decode(), err.decode()

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
        self.p.communicate()


class VconTest(TmpDirTest):
    def setUp(self):
        super().setUp()
        self.guests = []
        self.socks = []
        self.con = self.p("console.sock")
        self.echo_sock = self.p("echo.sock")
        self.second = self.p("second.sock")

    def tearDown(self):
        for g in self.guests:
            g.kill()
        for c in self.socks:
            c.close()
        super().tearDown()

    def start(self, *args):
        g = Guest(*args)
        self.guests.append(g)
        return g

    def echo(self, line):
        """A client of port 1 sends line and gets the guest's echo, then
        leaves."""
        e = connect(self.echo_sock)
        e.sendall(line)
        self.assertEqual(recv_exact(e, 6 + len(line)), b"echo: " + line)
        e.close()

    def start_ports(self, *args):
        """The console on a socket, port 1 'org.vsrv.echo', port 2 'second';
        connected to the console."""
        g = self.start("--console", "hvc,socket:" + self.con, "--port",
                       "org.vsrv.echo=socket:" + self.echo_sock, "--port",
                       "second=socket:" + self.second, *args)
        wait_path(self.con)
        self.socks.append(connect(self.con))
        return g, self.socks[-1]


class Console(VconTest):
    def test_handshake_console_and_named_port(self):
        """The handshake's exact messages; a line on COM1 and one on hvc0,
        both on the console; a line typed on the console read from hvc0
        (not the UART) and echoed; output on a port nobody connected to,
        dropped; port 1's client seen by the guest as PORT_OPEN 1 1, its
        line echoed back exactly, its leaving as PORT_OPEN 1 0.  The
        counters say the same."""
        g, c = self.start_ports("--stats")
        self.assertEqual(recv_exact(c, len(EARLY)), EARLY)
        g.wait("waiting for input on hvc0")
        c.sendall(b"ping\n")
        self.assertEqual(recv_exact(c, 15), b"hvc0 got: ping\n")
        g.wait("port 1: waiting for the host")
        self.assertEqual(os.stat(self.echo_sock).st_mode & 0o777, 0o600)
        self.echo(b"hello port\n")
        status, out, err = g.end()
        self.assertEqual((status, out), (0, header(3) + HANDSHAKE + (
            "waiting for input on hvc0\nhvc0 got: ping\nport 1: waiting for the host\n"
            "ctrl: PORT_OPEN 1 1\nport 1 got: hello port\nctrl: PORT_OPEN 1 0\n"
            "console ok\n")))
        self.assertRegex(err, "^" + STATS_HEAD + re.escape(
            DEV + "port 0 (console): 42 bytes from the guest, 5 to it, 0 dropped\n" +
            DEV + "port 1 (org.vsrv.echo): 17 bytes from the guest, 11 to it, 0 dropped, "
            "1 client\n" +
            DEV + "port 2 (second): 0 bytes from the guest, 0 to it, 18 dropped, 0 clients\n" +
            DEV + "control: 7 messages from the driver, 9 to it\n") + "$")
        self.assertEqual(recv_all(c), b"")
        for path in (self.con, self.echo_sock, self.second):
            self.assertFalse(os.path.exists(path), f"{path} is removed at exit")

    def test_counters_at_the_control_socket(self):
        """The control socket's `stats` has each port's counters while the
        guest runs, as --stats prints them at its end: read while the guest
        waits for port 1's client (port 0's two lines out and one in, port
        2's line dropped, the handshake's messages), and again with the
        client's line echoed, before it leaves (PORT_OPEN 1 1 sent)."""
        sock = self.p("c.sock")
        g, c = self.start_ports("--control", sock, "--stats")
        self.assertEqual(recv_exact(c, len(EARLY)), EARLY)
        g.wait("waiting for input on hvc0")
        c.sendall(b"ping\n")
        self.assertEqual(recv_exact(c, 15), b"hvc0 got: ping\n")
        g.wait("port 1: waiting for the host")

        def port_counters():
            (dev,) = Client(sock).ok("stats")["devices"]
            self.assertEqual(dev["name"], "virtio-console 00:01.0")
            transport = ("notifications", "requests", "bytes_to_guest", "interrupts",
                         "refused", "needs_reset")
            self.assertEqual(list(dev["counters"])[:6], list(transport))
            return {k: v for k, v in dev["counters"].items() if k not in transport}

        def ports(*each):
            return {f"port{p}_{k}": v for p, counts in enumerate(each)
                    for k, v in zip(("bytes_from_guest", "bytes_to_guest", "bytes_dropped",
                                     "clients"), counts)}

        self.assertEqual(port_counters(), {**ports((42, 5, 0, 0), (0, 0, 0, 0), (0, 0, 18, 0)),
                                           "control_from_driver": 7, "control_to_driver": 7})
        e = connect(self.echo_sock)
        e.sendall(b"hello port\n")
        self.assertEqual(recv_exact(e, 17), b"echo: hello port\n")
        # The device counts what it sent once send() returned: the client
        # may have it a moment before.
        want = {**ports((42, 5, 0, 0), (17, 11, 0, 1), (0, 0, 18, 0)),
                "control_from_driver": 7, "control_to_driver": 8}
        end = time.monotonic() + TIMEOUT
        while (got := port_counters()) != want and time.monotonic() < end:
            time.sleep(0.05)
        self.assertEqual(got, want)
        e.close()
        status, out, err = g.end()
        self.assertEqual((status, out[-11:]), (0, "console ok\n"))
        # --stats at the end: the same, and PORT_OPEN 1 0 sent.
        self.assertIn(DEV + "port 1 (org.vsrv.echo): 17 bytes from the guest, 11 to it, "
                      "0 dropped, 1 client\n" + DEV + "port 2 (second): 0 bytes from the guest, "
                      "0 to it, 18 dropped, 0 clients\n" + DEV + "control: 7 messages from the "
                      "driver, 9 to it\n", err)

    def test_file(self):
        """hvc,file:PATH: COM1's line and hvc0's, in order, appended."""
        log = self.p("console.log")
        with open(log, "wb") as f:
            f.write(b"before\n")
        g = self.start("--console", "hvc,file:" + log, "--append", "noinput")
        self.assertEqual(g.end(), (0, header(1) + CONSOLE_ONLY + "console ok\n", ""))
        with open(log, "rb") as f:
            self.assertEqual(f.read(), b"before\n" + EARLY)

    def test_checkpoint(self):
        """Every device saved and loaded after the handshake: the ports'
        flags and names come back (the named port still opens, reads and
        echoes; nothing is announced again)."""
        g, c = self.start_ports("--append", "checkpoint")
        self.assertEqual(recv_exact(c, len(EARLY)), EARLY)
        g.wait("waiting for input on hvc0")
        c.sendall(b"ping\n")
        g.wait("port 1: waiting for the host")
        self.echo(b"hello port\n")
        status, out, err = g.end()
        self.assertEqual((status, out, err), (0, header(3) + HANDSHAKE + (
            "checkpoint: saved and loaded\nwaiting for input on hvc0\nhvc0 got: ping\n"
            "port 1: waiting for the host\nctrl: PORT_OPEN 1 1\nport 1 got: hello port\n"
            "ctrl: PORT_OPEN 1 0\nconsole ok\n"), ""))

    def test_single_port(self):
        """A driver without VIRTIO_CONSOLE_F_MULTIPORT: port 0 is the console
        with no control messages."""
        g = self.start("--console", "hvc,socket:" + self.con, "--append", "single")
        wait_path(self.con)
        c = connect(self.con)
        self.socks.append(c)
        self.assertEqual(recv_exact(c, 20), b"hvc0: a single port\n")
        g.wait("waiting for input on hvc0")
        c.sendall(b"one line\n")
        self.assertEqual(recv_exact(c, 9), b"one line\n")
        self.assertEqual(g.end(), (0, header(1) + "waiting for input on hvc0\n"
                                   "hvc0 got: one line\nconsole ok\n", ""))

    def test_client_before_the_guest(self):
        """A client already connected when the guest sets the port up: the
        PORT_OPEN 1 1 follows its name in the handshake."""
        g = self.start("--console", "hvc,file:" + self.p("log"), "--port",
                       "org.vsrv.echo=socket:" + self.echo_sock, "--append", "noinput")
        wait_path(self.echo_sock)
        e = connect(self.echo_sock)
        g.wait("port 1: waiting for the host")
        e.sendall(b"early\n")
        self.assertEqual(recv_exact(e, 12), b"echo: early\n")
        e.close()
        self.assertEqual(g.end(), (0, header(2) + (
            "ctrl: PORT_ADD 0 0\nctrl: PORT_ADD 1 0\nctrl: CONSOLE_PORT 0 1\n"
            "ctrl: PORT_OPEN 0 1\nctrl: PORT_NAME 1 1 org.vsrv.echo\n"
            "port 1: waiting for the host\nctrl: PORT_OPEN 1 1\nport 1 got: early\n"
            "ctrl: PORT_OPEN 1 0\n"
            "console ok\n"), ""))


def interleaves(out, a, b):
    """Whether out is a and b interleaved, each in its order: what two
    processes writing to one terminal at once make of it."""
    if len(out) != len(a) + len(b):
        return False
    ways = {0}                  # how much of a the bytes so far can have used
    for k, c in enumerate(out):
        ways = {i + 1 for i in ways if i < len(a) and a[i] == c} | \
               {i for i in ways if k - i < len(b) and b[k - i] == c}
        if not ways:
            return False
    return True


def crlf(text):
    return text.replace("\n", "\r\n").encode()


class Terminal(VconTest):
    """--console hvc on the terminal vsrv runs in (stdio): raw, hvc0 reading
    what is typed, Ctrl-A x quitting.  The guest's debug port writes to the
    same terminal, a byte at a time, from the VM's process, while the
    console in vsrv writes COM1's and hvc0's output: the two interleave."""

    CONSOLE = b"uart: the early console\r\nhvc0: hello from the guest\r\n"
    DEBUG = crlf(header(1) + CONSOLE_ONLY + "waiting for input on hvc0\n")

    def on_pty(self, keys):
        """Types keys once the guest waits for them; its status and all the
        terminal showed."""
        master, slave = os.openpty()
        p = subprocess.Popen([VSRV, "run", "--kernel", guest("dev-virtio-console"),
                              "--test-device", "--console", "hvc"], stdin=slave, stdout=slave,
                             stderr=slave, start_new_session=True,
                             preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))
        try:
            out = b""
            while len(out) < len(self.CONSOLE) + len(self.DEBUG):
                out += read_until(master, b"\n")
            self.assertTrue(interleaves(out, self.CONSOLE, self.DEBUG), out)
            os.write(master, keys)
            status = p.wait(timeout=TIMEOUT)
            out += read_rest(master)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            os.close(master)
            os.close(slave)
        return status, out

    def test_typed_line_reaches_hvc0(self):
        status, out = self.on_pty(b"ping\n")
        self.assertEqual(status, 0, out)
        self.assertTrue(interleaves(out, self.CONSOLE + b"hvc0 got: ping\r\n",
                                    self.DEBUG + b"hvc0 got: ping\r\nconsole ok\r\n"), out)

    def test_ctrl_a_x_quits(self):
        status, out = self.on_pty(b"\x01x")
        self.assertEqual((status, out[len(self.CONSOLE) + len(self.DEBUG):]),
                         (0, b"vsrv: quit from the console\r\n"))


class FlowControl(VconTest):
    def flow(self, *extra):
        """Port 1 opened by a guest that posts no receive buffers while its
        client sends all it can: the client's sends block once the device's
        ring and its own socket are full, and stay blocked; then the guest
        reads every byte, in order (FNV-1a of all of them)."""
        g, c = self.start_ports("--stats", "--append", " ".join(("flow",) + extra))
        g.wait("flow: port 1 open, no receive buffers")
        e = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        e.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
        e.connect(self.echo_sock)
        e.setblocking(False)
        data = bytes(i % 251 for i in range(1 << 20))
        sent = 0
        for attempt in range(2):
            while True:
                try:
                    sent += e.send(data[sent:sent + 4096])
                except BlockingIOError:
                    break
            # Blocked for good, not for a moment: nothing more is taken.
            time.sleep(0.5)
        self.assertLess(sent, 128 << 10, "the VMM holds a bounded amount")
        self.assertGreaterEqual(sent, 4096, "the device's ring took its share")
        c.sendall(b"%d\n" % sent)
        g.wait("flow: %d bytes" % sent)
        e.close()
        status, out, err = g.end()
        self.assertEqual(status, 0, out + err)
        self.assertIn("flow: %d bytes, fnv1a %08x\nconsole ok\n" % (sent, fnv1a(data[:sent])), out)
        self.assertIn(DEV + "port 1 (org.vsrv.echo): 0 bytes from the guest, %d to it, "
                      "0 dropped, 1 client\n" % sent, err)
        return out

    def test_no_receive_buffers(self):
        self.flow()

    def test_no_receive_buffers_checkpoint(self):
        """The same with the device saved and loaded while the ring holds
        the input: it comes back whole."""
        self.assertIn("checkpoint: saved and loaded\n", self.flow("checkpoint"))

    def txflow(self, *extra):
        """Port 1's client does not read: the device stops taking the guest's
        output once the client's socket is full (the guest's chunks wait in
        its queue, not in the VMM); then the client reads all 1 MiB, every
        chunk in order."""
        g = self.start("--console", "hvc,file:" + self.p("log"), "--port",
                       "org.vsrv.echo=socket:" + self.echo_sock, "--append",
                       " ".join(("txflow",) + extra))
        wait_path(self.echo_sock)
        e = connect(self.echo_sock)
        g.wait("chunks taken")
        m = re.search(rb"txflow: stalled with (\d+) chunks taken\n", g.out)
        self.assertTrue(m, g.out)
        self.assertLess(int(m.group(1)), 128, "the device holds back the rest")
        want = b"".join(k.to_bytes(4, "little") + b"x" * 4092 for k in range(256))
        got = recv_exact(e, len(want))
        self.assertEqual(len(got), len(want))
        for k in range(256):
            self.assertEqual(got[k * 4096:(k + 1) * 4096], want[k * 4096:(k + 1) * 4096], k)
        g.wait("txflow: 256 chunks taken")
        e.close()
        status, out, err = g.end()
        self.assertEqual((status, err), (0, ""), out)
        self.assertTrue(out.endswith("txflow: 256 chunks taken\nconsole ok\n"), out)
        return out

    def test_client_not_reading(self):
        self.txflow()

    def test_client_not_reading_checkpoint(self):
        """Saved and loaded with a chunk half sent: the rest of it, and the
        chunks after, follow without a byte lost or sent twice."""
        self.assertIn("checkpoint: saved and loaded\n", self.txflow("checkpoint"))


# Each case of tests/guests/dev-virtio-console-bad.c and the lines the VMM
# logs for it; after each the handshake still completes exactly.
BAD = {
    "ctrl-short": ["refused: a control message of 4 bytes (8 expected)"],
    "ctrl-unknown": ["refused: control message: event 99 is not one a driver sends"],
    "ctrl-device-event": ["refused: control message: event 1 (PORT_ADD) is not one a driver "
                          "sends"],
    "ctrl-bad-port": ["refused: control message: PORT_READY for port 9, which does not exist "
                      "(2 ports)",
                      "refused: control message: PORT_OPEN for port 4294967294, which does "
                      "not exist (2 ports)",
                      "refused: control message: DEVICE_READY again"],
    "ctrl-early": ["refused: control message: PORT_READY for port 1 before DEVICE_READY"],
    "ctrl-open-early": ["refused: control message: PORT_OPEN for port 1 before PORT_READY"],
    "ctrl-again": ["refused: control message: DEVICE_READY again",
                   "refused: control message: PORT_READY for port 1 again"],
    "ctrl-bad-value": ["refused: control message: DEVICE_READY with value 2 (0 or 1 expected)",
                       "refused: control message: PORT_OPEN with value 7 (0 or 1 expected)"],
    "ctrl-writable": ["refused: a control message at head 0 has device-writable buffers "
                      "(8 bytes)"],
    "ctrl-rx-readable": ["refused: control receive buffer at head 0 is device-readable "
                         "(128 bytes)"],
    "ctrl-rx-small": ["refused: control receive buffer at head 0: 4 bytes, the message "
                      "needs 8"],
    "ready-0": ["the driver could not set the device up (DEVICE_READY 0)",
                "port 1: the driver could not set it up (PORT_READY 0)"],
    "rx-readable": ["refused: port 0: receive buffer at head 0 is device-readable "
                    "(256 bytes)"],
    "tx-writable": ["refused: port 0: transmit buffer at head 0 has device-writable buffers "
                    "(16 bytes)"],
}


class HostileDriver(VconTest):
    def bad(self, case, *args):
        log = self.p("console.log")
        p = subprocess.run([VSRV, "run", "--kernel", guest("dev-virtio-console-bad"),
                            "--test-device", "--console", "hvc,file:" + log, "--port",
                            "p1=socket:" + self.echo_sock, "--append", f"case={case}", *args],
                           capture_output=True, text=True, timeout=TIMEOUT,
                           stdin=subprocess.DEVNULL)
        with open(log, "rb") as f:
            self.assertEqual(f.read(), b"", "nothing refused reaches the console")
        os.unlink(log)
        return p

    def test_each_case(self):
        """Each case alone: its log lines exactly, the device going on, the VM
        still running (the guest exits 0)."""
        for case, lines in BAD.items():
            p = self.bad(case)
            self.assertEqual((p.returncode, p.stdout, p.stderr),
                             (0, f"{case}: ok\nbad ok\n", "".join(DEV + x + "\n" for x in lines)),
                             case)

    def test_all_in_one_boot_inline(self):
        """Every case in turn in one VM, its doorbells exiting to the VMM (no
        ioeventfds): the same lines, and the refusals counted."""
        env = dict(os.environ, VSRV_TEST_HIDE_CAPS="IOEVENTFD")
        p = subprocess.run([VSRV, "run", "--kernel", guest("dev-virtio-console-bad"),
                            "--test-device", "--console", "hvc,file:" + self.p("log"),
                            "--port", "p1=socket:" + self.echo_sock, "--append", "case=all",
                            "--stats"], capture_output=True, text=True, timeout=TIMEOUT,
                           stdin=subprocess.DEVNULL, env=env)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(p.stdout, "".join(f"{case}: ok\n" for case in BAD) + "bad ok\n")
        want = "".join(DEV + x + "\n" for lines in BAD.values() for x in lines)
        self.assertRegex(p.stderr, "^" + re.escape(want) + r"vsrv: exits: IO \d+\n"
                         r"vsrv: exits: MMIO \d+\n" + re.escape(DEV) +
                         r"\d+ notifications, \d+ requests, \d+ bytes to the guest, "
                         r"\d+ interrupts, 17 refused, 0 resets needed\n" + re.escape(
                             DEV + "port 0 (console): 0 bytes from the guest, 0 to it, "
                             "0 dropped\n" +
                             DEV + "port 1 (p1): 0 bytes from the guest, 0 to it, 0 dropped, "
                             "0 clients\n") +
                         re.escape(DEV) + r"control: \d+ messages from the driver, "
                         r"70 to it\n$")


class Configuration(VconTest):
    def test_config_file(self):
        """"console": "hvc,socket:..." and "ports", paths relative to the
        file's folder; the command line's --port replaces the file's."""
        cfg = self.p("vm.json")
        with open(cfg, "w") as f:
            json.dump({"version": 1, "kernel": guest("dev-virtio-console"),
                       "console": "hvc,file:console.log",
                       "ports": [{"name": "org.vsrv.echo", "socket": "echo.sock"}]}, f)
        g = Guest("--config", cfg, "--append", "noinput")
        self.guests.append(g)
        wait_path(self.echo_sock)
        g.wait("port 1: waiting for the host")
        self.echo(b"from json\n")
        status, out, err = g.end()
        self.assertEqual((status, err), (0, ""))
        self.assertTrue(out.startswith(header(2)), out)
        with open(self.p("console.log"), "rb") as f:
            self.assertEqual(f.read(), EARLY)
        p = subprocess.run([VSRV, "run", "--config", cfg, "--port", "a=socket:" + self.p("a"),
                            "--port", "b=socket:" + self.p("b"), "--dry-run"],
                           capture_output=True, text=True, timeout=TIMEOUT)
        self.assertEqual((p.returncode, p.stderr), (0, ""))

    def test_errors(self):
        long = "n" * 64
        cases = [
            (["--console", "hvc:x"], "vsrv: --console: 'hvc:x' is not stdio, file:PATH, "
             "socket:PATH, hvc or hvc,<one of these>\n"),
            (["--console", "hvc,tcp:1"], "vsrv: --console: 'hvc,tcp:1' is not stdio, "
             "file:PATH, socket:PATH, hvc or hvc,<one of these>\n"),
            (["--port", "agent"], "vsrv: --port: 'agent' is not NAME=socket:PATH\n"),
            (["--port", "agent=file:x"], "vsrv: --port: 'agent=file:x' is not "
             "NAME=socket:PATH\n"),
            (["--port", "agent=socket:"], "vsrv: --port: 'agent=socket:' is not "
             "NAME=socket:PATH\n"),
            (["--port", "a b=socket:x"], "vsrv: --port: 'a b' is not a port name (1 to 63 "
             "letters, digits, '.', '_' or '-')\n"),
            (["--port", "=socket:x"], "vsrv: --port: '' is not a port name (1 to 63 "
             "letters, digits, '.', '_' or '-')\n"),
            (["--port", long + "=socket:x"], f"vsrv: --port: '{long}' is not a port name "
             "(1 to 63 letters, digits, '.', '_' or '-')\n"),
            (["--port", "a=socket:x", "--port", "a=socket:y"],
             "vsrv: --port: a second port named 'a'\n"),
            ([a for i in range(8) for a in ("--port", f"p{i}=socket:x{i}")],
             "vsrv: --port: more than 7 ports\n"),
        ]
        for args, msg in cases:
            p = subprocess.run([VSRV, "run", "--kernel", guest("dev-virtio-console"), *args],
                               capture_output=True, text=True, timeout=TIMEOUT,
                               stdin=subprocess.DEVNULL)
            self.assertEqual((p.returncode, p.stdout, p.stderr), (2, "", msg), args)

    def test_config_errors(self):
        cfg = self.p("vm.json")
        cases = [
            ({"console": "hvc,"}, 'console: expected "stdio", "file:PATH", "socket:PATH", '
             '"hvc" or "hvc,<one of these>"'),
            ({"ports": {"name": "a"}}, "ports: expected an array"),
            ({"ports": [{"name": "a"}]}, 'ports[0]: expected {"name": NAME, "socket": PATH} '
             "and nothing else"),
            ({"ports": [{"name": "a", "socket": "s", "mode": 1}]},
             'ports[0]: expected {"name": NAME, "socket": PATH} and nothing else'),
            ({"ports": [{"name": "a", "socket": "s"}, {"name": "a", "socket": "t"}]},
             "ports[1]: a second port named 'a'"),
            ({"ports": [{"name": "a/b", "socket": "s"}]},
             "ports[0]: 'a/b' is not a port name (1 to 63 letters, digits, '.', '_' or '-')"),
            ({"ports": [{"name": "a", "socket": ""}]}, "ports[0]: port 'a': an empty socket path"),
            ({"ports": [{"name": f"p{i}", "socket": f"s{i}"} for i in range(8)]},
             "ports[7]: more than 7 ports"),
        ]
        for fields, msg in cases:
            with open(cfg, "w") as f:
                json.dump({"version": 1, "kernel": "k", **fields}, f)
            p = subprocess.run([VSRV, "run", "--config", cfg], capture_output=True, text=True,
                               timeout=TIMEOUT, stdin=subprocess.DEVNULL)
            self.assertEqual((p.returncode, p.stderr), (2, f"vsrv: {cfg}: {msg}\n"), fields)

    def test_port_socket_in_use(self):
        """One VMM per path, as for the console's socket; a file that is not
        a socket is left alone."""
        def second_vmm(path, problem):
            p = subprocess.run([VSRV, "run", "--kernel", guest("dev-virtio-console"),
                                "--port", "x=socket:" + path], capture_output=True, text=True,
                               timeout=TIMEOUT, stdin=subprocess.DEVNULL)
            self.assertEqual((p.returncode, p.stderr), (1, f"vsrv: port x: {path}: {problem}\n"))

        g = self.start("--console", "hvc,file:" + self.p("log"), "--port",
                       "org.vsrv.echo=socket:" + self.echo_sock, "--append", "noinput")
        g.wait("port 1: waiting for the host")
        second_vmm(self.echo_sock, "in use by another process")
        self.echo(b"still mine\n")
        self.assertEqual(g.end()[0], 0)
        with open(self.second, "w") as f:
            f.write("mine\n")
        second_vmm(self.second, "exists and is not a socket")
        with open(self.second) as f:
            self.assertEqual(f.read(), "mine\n")

if __name__ == "__main__":
    main()
