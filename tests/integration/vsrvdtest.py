"""Helpers for vsrvd's integration tests (stdlib only): a vsrvd on a
temporary state directory, its API over the Unix socket or TCP, and waits
for states and events.  Each test gets a fresh service; micro-guests from
tests/guests/ are the VMs (idle-timer idles until powered off, hello64
prints a line and exits 42)."""
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

BUILD = os.environ.get("VSRV_BUILD_ROOT", "")
VSRV = os.environ.get("VSRV_BIN", "vsrv")
VSRVD = os.environ.get("VSRVD_BIN", os.path.join(BUILD, "src", "daemon", "vsrvd"))
GUESTS = os.environ.get("VSRV_GUESTS", "")
SRCDIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=60):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


def split_url(url):
    """(scheme, host, port) of http://HOST:PORT or https://HOST:PORT."""
    scheme, rest = url.split("://", 1)
    host, port = rest.rstrip("/").rsplit(":", 1)
    return scheme, host, int(port)


class Api:
    """One keep-alive connection to vsrvd; call() returns (status, body).
    Over https, `context` (an ssl.SSLContext) verifies the service."""

    def __init__(self, sock=None, url=None, token=None, context=None):
        self.sock, self.url, self.token, self.context = sock, url, token, context
        self.conn = None

    def _connect(self):
        if self.sock:
            return UnixHTTPConnection(self.sock)
        scheme, host, port = split_url(self.url)
        if scheme == "https":
            return http.client.HTTPSConnection(host, port, timeout=60, context=self.context)
        return http.client.HTTPConnection(host, port, timeout=60)

    def raw(self, method, path, body=None, headers=None):
        """(status, headers, bytes) for any body, bytes or text."""
        for attempt in range(2):
            if self.conn is None:
                self.conn = self._connect()
            h = dict(headers or {})
            if self.token and "Authorization" not in h:
                h["Authorization"] = f"Bearer {self.token}"
            try:
                self.conn.request(method, path, body=body, headers=h)
                r = self.conn.getresponse()
                data = r.read()
                if r.getheader("Connection", "").lower() == "close":
                    self.conn.close()
                    self.conn = None
                return r.status, r, data
            except (ConnectionError, http.client.HTTPException):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def expect_continue(self, method, path, body, headers=None):
        """(status, headers, bytes) for a request sent as a client that
        waits for "100 Continue" before its body (RFC 9110 10.1.1): a
        service refusing the body early (413) answers before it is sent.
        Without that, the client's body races the service's close, and a
        reset can take the answer with it."""
        conn = self._connect()
        conn.connect()
        sock = conn.sock
        h = {"Host": "localhost", "Content-Length": str(len(body)),
             "Expect": "100-continue", "Connection": "close"}
        h.update(headers or {})
        if self.token:
            h.setdefault("Authorization", f"Bearer {self.token}")
        head = f"{method} {path} HTTP/1.1\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in h.items()) + "\r\n"
        try:
            sock.sendall(head.encode())
            # The status code, looked at and left in the socket for
            # HTTPResponse (which would wait past a 100 for a final answer
            # that needs the body first).
            peek = sock.recv(12, socket.MSG_PEEK | socket.MSG_WAITALL)
            if peek[9:12] == b"100":
                interim = b""
                while not interim.endswith(b"\r\n\r\n"):
                    c = sock.recv(1)
                    if not c:
                        break
                    interim += c
                sock.sendall(body)
            r = http.client.HTTPResponse(sock, method=method)
            r.begin()
            return r.status, r, r.read()
        finally:
            conn.close()

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body)
        status, _, out = self.raw(method, path, data)
        return status, json.loads(out) if out else None

    def ok(self, method, path, body=None, status=200):
        s, out = self.call(method, path, body)
        if s != status:
            raise AssertionError(f"{method} {path}: {s} {out} (expected {status})")
        return out

    def close(self):
        if self.conn:
            self.conn.close()
            self.conn = None


def guest(name):
    return os.path.join(GUESTS, name + ".elf")


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is not alive either.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def cgroup_paths(vmdir):
    """The cgroups vsrvd made for a VM's VMM (its folder's `cgroups`)."""
    try:
        with open(os.path.join(vmdir, "cgroups")) as f:
            return [line.split(" ", 1)[1] for line in f.read().splitlines()[1:]]
    except FileNotFoundError:
        return []


def remove_cgroups(vmdir):
    """What a VM whose VMM a test killed after vsrvd left behind: its
    cgroups, and vsrvd's own if nothing else is in them."""
    for path in cgroup_paths(vmdir):
        for _ in range(100):
            try:
                os.rmdir(path)
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.01)
        try:
            os.rmdir(os.path.dirname(path))
        except OSError:
            pass


class Vsrvd:
    """A vsrvd process on state directory `state`."""

    def __init__(self, state, config, wrap=()):
        self.state, self.config, self.wrap = state, config, list(wrap)
        self.proc = None
        self.log = os.path.join(os.path.dirname(state), "vsrvd.log")

    def start(self, wait=True):
        logf = open(self.log, "a")
        self.proc = subprocess.Popen(self.wrap + [VSRVD, "--state-dir", self.state,
                                                  "--config", self.config],
                                     stdin=subprocess.DEVNULL, stdout=logf, stderr=logf)
        logf.close()
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=30):
        sock = os.path.join(self.state, "vsrvd.sock")
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise AssertionError(f"vsrvd exited {self.proc.returncode}:\n{self.read_log()}")
            if os.path.exists(sock):
                a = Api(sock=sock)
                try:
                    a.call("GET", "/v1/version")
                    return
                except OSError:
                    pass
                finally:
                    a.close()
            time.sleep(0.02)
        raise AssertionError("vsrvd did not start:\n" + self.read_log())

    def read_log(self):
        with open(self.log) as f:
            return f.read()

    def api(self):
        return Api(sock=os.path.join(self.state, "vsrvd.sock"))

    def tcp_api(self, token=True, context=None):
        with open(os.path.join(self.state, "vsrvd.url")) as f:
            url = f.read().strip()
        with open(os.path.join(self.state, "token")) as f:
            tok = f.read().strip()
        return Api(url=url, token=tok if token else None, context=context)

    def stop(self, sig=signal.SIGTERM, timeout=60):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout)
        code = self.proc.returncode if self.proc else None
        self.proc = None
        return code


class VsrvdTest(unittest.TestCase):
    """A fresh vsrvd per test on a temporary state directory, with the
    micro-guests' folder allowed for kernels and DIR/disks for disks."""

    config = {}
    wrap = ()		# a command vsrvd runs under (it must exec vsrvd)

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="vsrvd-it-")
        self.state = os.path.join(self.dir, "state")
        self.disks = os.path.join(self.dir, "disks")
        self.images = os.path.join(self.dir, "images")
        os.makedirs(self.disks)
        os.makedirs(self.images)
        cfg = {"vm_dirs": [GUESTS, self.images], "disk_dirs": [self.disks], "tcp": "127.0.0.1:0",
               "restart_backoff": {"initial_ms": 100, "max_ms": 2000},
               "stop_timeout_ms": 5000}
        cfg.update(self.config)
        cfg = {k: v for k, v in cfg.items() if v is not None}
        self.cfgfile = os.path.join(self.dir, "vsrvd.json")
        with open(self.cfgfile, "w") as f:
            json.dump(cfg, f)
        self.d = Vsrvd(self.state, self.cfgfile, self.wrap).start()
        self.api = self.d.api()

    def tearDown(self):
        try:
            self.cleanup_vms()
        finally:
            self.api.close()
            code = self.d.stop()
            log = self.d.read_log()
            shutil.rmtree(self.dir, ignore_errors=True)
        self.assertEqual(code, 0, "vsrvd's exit status at SIGTERM; its log:\n" + log)

    def cleanup_vms(self):
        """Power off whatever still runs, so no VMM outlives the test."""
        if not self.d.proc or self.d.proc.poll() is not None:
            self.kill_monitors()
            return
        for vm in self.api.ok("GET", "/v1/vms"):
            if vm["state"] not in ("stopped", "crashed", "saved") or \
                    vm.get("restart_at") is not None:
                self.api.call("POST", f"/v1/vms/{vm['name']}/power-off")
        for vm in self.api.ok("GET", "/v1/vms"):
            self.wait_state(vm["name"], ("stopped", "crashed", "saved"), timeout=30)
        self.kill_monitors()

    def kill_monitors(self):
        vms = os.path.join(self.state, "vms")
        for d in os.listdir(vms) if os.path.isdir(vms) else []:
            for f in ("vmm.pid", "monitor.pid"):
                try:
                    with open(os.path.join(vms, d, f)) as fh:
                        pid = int(fh.read())
                    if pid_alive(pid) and "vsrv" in open(f"/proc/{pid}/comm").read():
                        os.kill(pid, signal.SIGKILL)
                except (OSError, ValueError):
                    pass
            remove_cgroups(os.path.join(vms, d))

    def vm_spec(self, name, guest_name="idle-timer", **kw):
        spec = {"name": name, "kernel": guest(guest_name), "test_device": True,
                "memory": "16M"}
        if guest_name == "idle-timer":
            # Idle until powered off, at 10 ticks a second: nearly free.
            spec["cmdline"] = "hz=10 ticks=0"
        spec.update(kw)
        return spec

    def create(self, name, guest_name="idle-timer", **kw):
        return self.api.ok("POST", "/v1/vms", self.vm_spec(name, guest_name, **kw), 201)

    def wait_state(self, name, states, timeout=30, api=None):
        api = api or self.api
        if isinstance(states, str):
            states = (states,)
        end = time.monotonic() + timeout
        while True:
            vm = api.ok("GET", f"/v1/vms/{name}")
            if vm["state"] in states:
                return vm
            if time.monotonic() > end:
                raise AssertionError(f"vm {name}: state {vm['state']}, not {states}")
            time.sleep(0.02)

    def vm_file(self, vm, name):
        return os.path.join(self.state, "vms", str(vm["id"]), name)

    def wait_file_has(self, path, text, timeout=30):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                with open(path) as f:
                    if text in f.read():
                        return
            except FileNotFoundError:
                pass
            time.sleep(0.02)
        raise AssertionError(f"{path}: no {text!r}")

    def events(self, vm=None, after=0):
        q = f"?after={after}&limit=1000" + (f"&vm={vm}" if vm else "")
        return self.api.ok("GET", "/v1/events" + q)

    def event_types(self, vm):
        return [e["type"] for e in self.events(vm)]

    def wait_event(self, vm, etype, timeout=30):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for e in self.events(vm):
                if e["type"] == etype:
                    return e
            time.sleep(0.02)
        raise AssertionError(f"vm {vm}: no {etype} event in {self.event_types(vm)}")


def main():
    unittest.main(verbosity=2)


def ws_frame(opcode, payload=b"", fin=True, mask=None, rsv=0, length=None):
    """A WebSocket frame: masked with the 4 bytes `mask` if given; `length`
    may claim another payload length than the payload's (for the fuzz
    corpus's seeds, tests/fuzz/make-ws-seeds.py)."""
    import struct
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    m = 0x80 if mask else 0
    if n < 126:
        head = struct.pack("!BB", b0, m | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, m | 126, n)
    else:
        head = struct.pack("!BBQ", b0, m | 127, n)
    if mask:
        head += mask
        payload = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
    return head + payload


class WebSocket:
    """A minimal RFC 6455 client for the console tests (Python's standard
    library has none): the opening handshake by hand, frames built and
    parsed here, so that a test can also send what a correct client never
    would (unmasked, oversized, fragmented frames).  `sock` is a connected
    socket (the API's Unix socket, TCP, or TLS over TCP)."""

    GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    @staticmethod
    def connect(where, path, headers=None, token=None, key=None, timeout=30, context=None):
        """(status, response headers, WebSocket or the error body); over
        https, `context` verifies the service."""
        import base64
        import hashlib
        if where.startswith(("http://", "https://")):
            scheme, host, port = split_url(where)
            s = socket.create_connection((host, port), timeout=timeout)
            if scheme == "https":
                s = context.wrap_socket(s, server_hostname=host)
            hosthdr = f"{host}:{port}"
        else:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(timeout)
            s.connect(where)
            hosthdr = "localhost"
        if key is None:
            key = base64.b64encode(os.urandom(16)).decode()
        h = {"Host": hosthdr, "Upgrade": "websocket", "Connection": "Upgrade",
             "Sec-WebSocket-Key": key, "Sec-WebSocket-Version": "13"}
        if token:
            h["Authorization"] = f"Bearer {token}"
        h.update(headers or {})
        req = f"GET {path} HTTP/1.1\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in h.items() if v is not None) + "\r\n"
        s.sendall(req.encode())
        ws = WebSocket(s)
        head = ws._read_until(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        status = int(lines[0].split()[1])
        rh = {}
        for ln in lines[1:]:
            if ln:
                k, v = ln.split(":", 1)
                rh[k.strip().lower()] = v.strip()
        if status != 101:
            n = int(rh.get("content-length", "0"))
            body = ws._read_exact(n)
            s.close()
            return status, rh, json.loads(body) if body else None
        want = base64.b64encode(hashlib.sha1(key.encode() + WebSocket.GUID).digest()).decode()
        assert rh.get("sec-websocket-accept") == want, rh
        return status, rh, ws

    def _fill(self):
        b = self.sock.recv(65536)
        if not b:
            raise EOFError("the server closed the connection")
        self.buf += b

    def _read_until(self, sep):
        while sep not in self.buf:
            self._fill()
        i = self.buf.index(sep) + len(sep)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def _read_exact(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def send_frame(self, opcode, payload=b"", fin=True, mask=True, rsv=0):
        self.sock.sendall(ws_frame(opcode, payload, fin, os.urandom(4) if mask else None, rsv))

    def send(self, data):
        """Input for the guest: a binary message (text for a str)."""
        if isinstance(data, str):
            self.send_frame(0x1, data.encode())
        else:
            self.send_frame(0x2, data)

    def recv_frame(self):
        """(fin, opcode, payload); server frames are never masked."""
        import struct
        b0, b1 = self._read_exact(2)
        assert not b1 & 0x80, "a masked frame from the server"
        n = b1 & 0x7f
        if n == 126:
            n = struct.unpack("!H", self._read_exact(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._read_exact(8))[0]
        return bool(b0 & 0x80), b0 & 0x0f, self._read_exact(n)

    def recv_output(self, n=None, until=None):
        """Console output (binary messages) until n bytes or a suffix
        `until`; a close before that is an error."""
        out = b""
        while (n is None or len(out) < n) and (until is None or not out.endswith(until)):
            fin, op, data = self.recv_frame()
            if op == 0x8:
                raise AssertionError(f"closed ({self.close_of(data)}) after {out[-200:]!r}")
            assert op == 0x2 and fin, (op, fin)
            out += data
        return out

    def recv_close(self):
        """Skips output until the server's close: (code, reason)."""
        while True:
            fin, op, data = self.recv_frame()
            if op == 0x8:
                return self.close_of(data)

    @staticmethod
    def close_of(data):
        import struct
        if len(data) < 2:
            return (None, "")
        return (struct.unpack("!H", data[:2])[0], data[2:].decode())

    def close(self, code=1000, reason=b""):
        import struct
        self.send_frame(0x8, struct.pack("!H", code) + reason)
        got = self.recv_close()
        self.sock.close()
        return got
