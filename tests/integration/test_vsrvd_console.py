"""vsrvd's VM consoles: GET /v1/vms/NAME/console as a WebSocket, console.log
and its rotation, and `vsrv console NAME` on a terminal.

The guest is tests/guests/dev-console.c, a polled serial console: it prints
"ready", echoes what it gets, and on single capitals prints more (W: 200
lines after a pause, B: 96 KiB), or quits (Q: "bye", exit 0)."""
import os
import pty
import signal
import socket
import subprocess
import termios
import threading
import time

from vsrvdtest import VSRV, WebSocket, VsrvdTest, guest, main

TIMEOUT = 60


def big_output():
    """What dev-console prints for 'B'."""
    chunks = [b"chunk %06d\n" % k + b"." * 4082 + b"\n" for k in range(24)]
    return b"".join(chunks) + b"end\n"


def lines_output():
    return b"".join(b"line %03d\n" % i for i in range(200)) + b"end\n"


class ConsoleBase(VsrvdTest):
    def start_console_vm(self, name):
        self.create(name, "dev-console")
        vm = self.api.ok("POST", f"/v1/vms/{name}/start")
        self.wait_file_has(self.vm_file(vm, "console.log"), "ready\n")
        return vm

    def sock(self):
        return os.path.join(self.state, "vsrvd.sock")

    def viewer(self, name, **kw):
        status, _, ws = WebSocket.connect(self.sock(), f"/v1/vms/{name}/console", **kw)
        self.assertEqual(status, 101, ws)
        return ws

    def read_file(self, path):
        with open(path, "rb") as f:
            return f.read()

    def wait_file_is(self, path, want, timeout=30):
        end = time.monotonic() + timeout
        got = None
        while time.monotonic() < end:
            try:
                got = self.read_file(path)
            except FileNotFoundError:
                got = None
            if got == want:
                return
            time.sleep(0.05)
        self.assertEqual(got, want, path)


class ConsoleTest(ConsoleBase):
    def test_history_then_live_input_echo_and_stop(self):
        vm = self.start_console_vm("c1")
        ws = self.viewer("c1")
        # What the guest printed before anyone watched, then the echo of
        # binary input, and of text input (UTF-8, as it is).
        self.assertEqual(ws.recv_output(6), b"ready\n")
        ws.send(b"hello, guest\n")
        self.assertEqual(ws.recv_output(13), b"hello, guest\n")
        ws.send("h\u00e9llo\n")
        self.assertEqual(ws.recv_output(7), "h\u00e9llo\n".encode())
        # A ping is answered with its payload; a message in fragments
        # arrives whole; control frames may come between fragments.
        ws.send_frame(0x9, b"are you there")
        self.assertEqual(ws.recv_frame(), (True, 0xA, b"are you there"))
        ws.send_frame(0x2, b"fra", fin=False)
        ws.send_frame(0x9, b"p")
        ws.send_frame(0x0, b"gments\n", fin=True)
        self.assertEqual(ws.recv_frame(), (True, 0xA, b"p"))
        self.assertEqual(ws.recv_output(10), b"fragments\n")
        # The log has it all, whoever watched.
        log = self.vm_file(vm, "console.log")
        self.wait_file_is(log, "ready\nhello, guest\nh\u00e9llo\nfragments\n".encode())
        # The guest quits: the viewer gets the rest, then a close.
        ws.send(b"Q")
        self.assertEqual(ws.recv_output(4), b"bye\n")
        self.assertEqual(ws.recv_close(), (1000, "vm 'c1' stopped"))
        ws.sock.close()
        self.wait_state("c1", "stopped")
        self.wait_file_is(log, "ready\nhello, guest\nh\u00e9llo\nfragments\nbye\n".encode())

    def test_two_viewers_and_one_that_never_reads(self):
        self.start_console_vm("c2")
        # The stalled viewer reads nothing, with a small receive buffer.
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(30)
        s.connect(self.sock())
        key = "dGhlIHNhbXBsZSBub25jZQ=="
        s.sendall(("GET /v1/vms/c2/console HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Key: " + key +
                   "\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        # Its upgrade done before the output starts, so that what it holds
        # starts with the history (it reads no frame until later).
        st = WebSocket(s)
        head = st._read_until(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 101 "), head)
        a = self.viewer("c2")
        b = self.viewer("c2")
        self.assertEqual(a.recv_output(6), b"ready\n")
        self.assertEqual(b.recv_output(6), b"ready\n")
        # 6 x 96 KiB: more than the stalled viewer's socket and its queue
        # in vsrvd hold.  The two that read get every byte.
        want = big_output() * 6
        got = {}
        readers = [threading.Thread(target=lambda ws=ws: got.setdefault(ws, ws.recv_output(len(want))))
                   for ws in (a, b)]
        for t in readers:
            t.start()
        for _ in range(6):
            a.send(b"B")
        for t in readers:
            t.join(TIMEOUT)
        self.assertEqual(got.get(a), want)
        self.assertEqual(got.get(b), want)
        a.send(b"still here\n")
        self.assertEqual(a.recv_output(11), b"still here\n")
        self.assertEqual(b.recv_output(11), b"still here\n")
        # The stalled one skipped what did not fit: it has the history and
        # the start of the stream, as much as its socket and its buffer in
        # vsrvd held, and less than all of it.
        st.sock.settimeout(2)
        got = b""
        try:
            while True:
                fin, op, data = st.recv_frame()
                self.assertEqual(op, 0x2)
                got += data
        except (socket.timeout, TimeoutError):
            pass
        full = b"ready\n" + want + b"still here\n"
        self.assertLess(len(got), len(full))
        self.assertGreater(len(got), 256 << 10)
        self.assertEqual(got[:256 << 10], full[:256 << 10])
        # Now that it reads, it gets what comes.
        st.sock.settimeout(30)
        a.send(b"again\n")
        for ws in (a, b, st):
            self.assertEqual(ws.recv_output(6), b"again\n")
        for ws in (a, b, st):
            self.assertEqual(ws.close(1000, b"bye"), (1000, "bye"))

    def test_bad_upgrades(self):
        self.start_console_vm("c3")
        self.create("idle")
        path = "/v1/vms/c3/console"
        cases = [
            ({"Sec-WebSocket-Key": None}, 400, "vm 'c3': console: Sec-WebSocket-Key missing"),
            ({"Sec-WebSocket-Key": "c2hvcnQ="}, 400,
             "vm 'c3': console: Sec-WebSocket-Key is not the base64 of 16 bytes"),
            ({"Sec-WebSocket-Version": "8"}, 400,
             "vm 'c3': console: Sec-WebSocket-Version 8: this service speaks version 13"),
            ({"Sec-WebSocket-Version": None}, 400,
             "vm 'c3': console: Sec-WebSocket-Version missing: this service speaks version 13"),
            ({"Upgrade": None}, 400,
             "vm 'c3': console: a WebSocket upgrade is expected (Upgrade: websocket, Connection: Upgrade)"),
            ({"Connection": "keep-alive"}, 400,
             "vm 'c3': console: a WebSocket upgrade is expected (Upgrade: websocket, Connection: Upgrade)"),
        ]
        for headers, status, msg in cases:
            s, rh, body = WebSocket.connect(self.sock(), path, headers=headers)
            self.assertEqual((s, body), (status, {"error": msg}), headers)
            if "Sec-WebSocket-Version" in headers:
                self.assertEqual(rh["sec-websocket-version"], "13")
        s, _, body = WebSocket.connect(self.sock(), "/v1/vms/nosuch/console")
        self.assertEqual((s, body), (404, {"error": "vm 'nosuch': no such VM"}))
        s, _, body = WebSocket.connect(self.sock(), "/v1/vms/idle/console")
        self.assertEqual((s, body), (409, {"error": "vm 'idle': stopped, not running"}))
        s, body = self.api.call("POST", path)
        self.assertEqual((s, body), (405, {"error": f"{path}: no POST here"}))
        # A browser's "Connection: keep-alive, Upgrade" is an upgrade too.
        ws = self.viewer("c3", headers={"Connection": "keep-alive, Upgrade"})
        self.assertEqual(ws.recv_output(6), b"ready\n")
        ws.close()

    def test_protocol_errors_close_the_connection(self):
        self.start_console_vm("c4")
        # A client's frames must be masked.
        ws = self.viewer("c4")
        self.assertEqual(ws.recv_output(6), b"ready\n")
        ws.send_frame(0x2, b"x", mask=False)
        self.assertEqual(ws.recv_close(), (1002, ""))
        # Messages are bounded (64 KiB).
        ws = self.viewer("c4")
        ws.send_frame(0x2, b"y" * (65 << 10))
        self.assertEqual(ws.recv_close(), (1009, ""))
        # Text must be UTF-8.
        ws = self.viewer("c4")
        ws.send_frame(0x1, b"\xff\xfe")
        self.assertEqual(ws.recv_close(), (1007, ""))
        # None of it reached the guest, which still echoes.
        ws = self.viewer("c4")
        ws.send(b"ok\n")
        self.assertEqual(ws.recv_output(9), b"ready\nok\n")
        ws.close()

    def test_tcp_needs_the_token(self):
        self.start_console_vm("c5")
        with open(os.path.join(self.state, "vsrvd.url")) as f:
            url = f.read().strip()
        with open(os.path.join(self.state, "token")) as f:
            token = f.read().strip()
        s, _, body = WebSocket.connect(url, "/v1/vms/c5/console")
        self.assertEqual(s, 401)
        s, _, ws = WebSocket.connect(url, "/v1/vms/c5/console", token=token)
        self.assertEqual(s, 101)
        self.assertEqual(ws.recv_output(6), b"ready\n")
        ws.send(b"tcp\n")
        self.assertEqual(ws.recv_output(4), b"tcp\n")
        ws.close()

    def test_output_while_vsrvd_is_down_is_kept(self):
        vm = self.start_console_vm("c6")
        ws = self.viewer("c6")
        self.assertEqual(ws.recv_output(6), b"ready\n")
        ws.send(b"W")		# a second or two, then 200 lines
        time.sleep(0.3)
        self.d.proc.kill()
        self.d.proc.wait()
        ws.sock.close()
        self.wait_file_has(self.vm_file(vm, "vmm.log"), "done\n")
        self.d.start()
        self.api.close()
        self.api = self.d.api()
        self.wait_file_is(self.vm_file(vm, "console.log"), b"ready\n" + lines_output())
        ws = self.viewer("c6")
        self.assertEqual(ws.recv_output(6 + len(lines_output())), b"ready\n" + lines_output())
        ws.close()


class ConsoleLogRotationTest(ConsoleBase):
    config = {"log": {"max_size": 16384, "keep": 2}}

    def test_rotation_is_exact(self):
        self.create("r1", "dev-console")
        vm = self.api.ok("POST", "/v1/vms/r1/start")
        log = self.vm_file(vm, "console.log")
        self.wait_file_has(log, "ready\n")
        _, _, ws = WebSocket.connect(os.path.join(self.state, "vsrvd.sock"),
                                     "/v1/vms/r1/console")
        ws.send(b"B")
        stream = b"ready\n" + big_output()	# 98,314 bytes: 6 x 16 KiB + 10
        self.assertEqual(ws.recv_output(len(stream)), stream)
        # Every rotated file holds exactly max_size bytes, keep of them.
        end = time.monotonic() + 30
        while time.monotonic() < end and os.path.getsize(log) != 10:
            time.sleep(0.05)
        with open(log, "rb") as f:
            self.assertEqual(f.read(), stream[6 * 16384:])
        with open(log + ".1", "rb") as f:
            self.assertEqual(f.read(), stream[5 * 16384:6 * 16384])
        with open(log + ".2", "rb") as f:
            self.assertEqual(f.read(), stream[4 * 16384:5 * 16384])
        files = sorted(f for f in os.listdir(os.path.dirname(log)) if f.startswith("console.log"))
        self.assertEqual(files, ["console.log", "console.log.1", "console.log.2"])
        # A new viewer's history is the log's tail: console.log.1, then
        # console.log.
        _, _, ws2 = WebSocket.connect(os.path.join(self.state, "vsrvd.sock"),
                                      "/v1/vms/r1/console")
        self.assertEqual(ws2.recv_output(16384 + 10), stream[5 * 16384:])
        ws2.close()
        ws.close()


class ConsoleCliTest(ConsoleBase):
    def run_console(self, *args, env=None):
        """`vsrv console` on a new terminal: (pid, master fd, the
        terminal's settings before)."""
        master, slave = pty.openpty()
        before = termios.tcgetattr(slave)
        p = subprocess.Popen([VSRV, "console", *args], stdin=slave, stdout=slave,
                             stderr=slave, env=env, start_new_session=True)
        self.slave = slave
        return p, master, before

    def read_until(self, fd, text, timeout=TIMEOUT):
        """The terminal's output up to and including `text`; what came
        after it is kept for the next call."""
        import select
        got = getattr(self, "pending", b"")
        end = time.monotonic() + timeout
        while text not in got:
            left = end - time.monotonic()
            self.assertGreater(left, 0, f"no {text!r} in {got!r}")
            r, _, _ = select.select([fd], [], [], left)
            if r:
                try:
                    b = os.read(fd, 4096)
                except OSError:
                    break
                if not b:
                    break
                got += b
        self.assertIn(text, got)
        i = got.index(text) + len(text)
        self.pending = got[i:]
        return got[:i]

    def test_console_on_a_terminal(self):
        vm = self.start_console_vm("t1")
        p, m, before = self.run_console("t1", "--connect", "unix:" + os.path.join(
            self.state, "vsrvd.sock"))
        self.read_until(m, b"Connected to vm 't1' (Ctrl-] leaves)\r\n")
        self.read_until(m, b"ready\r\n")
        # Raw: no echo from the terminal, no line editing, Ctrl-C is the
        # guest's (which echoes it).
        os.write(m, b"abc\x03\r")
        self.read_until(m, b"abc\x03\r")
        os.write(m, b"\x1d")
        self.assertEqual(p.wait(TIMEOUT), 0)
        self.assertEqual(termios.tcgetattr(self.slave), before)
        os.close(m)
        os.close(self.slave)
        # The guest saw the input, not the escape.
        self.wait_file_is(self.vm_file(vm, "console.log"), b"ready\nabc\x03\r")

    def test_console_over_tcp_until_the_vm_stops(self):
        vm = self.start_console_vm("t2")
        with open(os.path.join(self.state, "vsrvd.url")) as f:
            url = f.read().strip()
        env = dict(os.environ, VSRV_TOKEN=open(os.path.join(self.state, "token")).read().strip())
        p, m, before = self.run_console("t2", "--connect", url, env=env)
        self.read_until(m, b"ready\r\n")
        os.write(m, b"Q")
        out = self.read_until(m, b"vsrv: console: vm 't2' stopped")
        self.assertIn(b"bye\r\n", out)
        self.assertEqual(p.wait(TIMEOUT), 0)
        self.assertEqual(termios.tcgetattr(self.slave), before)
        os.close(m)
        os.close(self.slave)

    def test_signal_restores_the_terminal(self):
        vm = self.start_console_vm("t3")
        p, m, before = self.run_console("t3", "--connect", "unix:" + os.path.join(
            self.state, "vsrvd.sock"))
        self.read_until(m, b"ready\r\n")
        self.assertNotEqual(termios.tcgetattr(self.slave), before)
        p.send_signal(signal.SIGTERM)
        self.assertEqual(p.wait(TIMEOUT), -signal.SIGTERM)
        self.assertEqual(termios.tcgetattr(self.slave), before)
        os.close(m)
        os.close(self.slave)

    def test_errors(self):
        self.create("t4")
        sock = "unix:" + os.path.join(self.state, "vsrvd.sock")
        for args, code, msg in [
            (["t4"], 1, "vsrv: vm 't4': stopped, not running\n"),
            (["nosuch"], 1, "vsrv: vm 'nosuch': no such VM\n"),
            (["a/b"], 1, "vsrv: console: 'a/b' is not a VM's name or uuid\n"),
        ]:
            r = subprocess.run([VSRV, "console", *args, "--connect", sock],
                               capture_output=True, text=True, stdin=subprocess.DEVNULL)
            self.assertEqual((r.returncode, r.stderr), (code, msg), args)
        r = subprocess.run([VSRV, "console"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 2)


if __name__ == "__main__":
    main()
