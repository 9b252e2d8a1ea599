"""Helpers for vsrvd's integration tests (stdlib only): a vsrvd on a
temporary state directory, its API over the Unix socket or TCP, and waits
for states and events.  Each test gets a fresh service; micro-guests from
tests/guests/ are the VMs (idle-timer idles until powered off, hello64
prints a line and exits 42)."""
import http.client
import io
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


class _Prepend(io.RawIOBase):
    """A raw stream giving back a line already read, then the rest."""

    def __init__(self, first, rest):
        self.first, self.rest = first, rest

    def readable(self):
        return True

    def readinto(self, b):
        if self.first:
            n = min(len(b), len(self.first))
            b[:n], self.first = self.first[:n], self.first[n:]
            return n
        return self.rest.readinto(b)


class Api:
    """One keep-alive connection to vsrvd; call() returns (status, body)."""

    def __init__(self, sock=None, url=None, token=None):
        self.sock, self.url, self.token = sock, url, token
        self.conn = None

    def _connect(self):
        if self.sock:
            return UnixHTTPConnection(self.sock)
        host, port = self.url[len("http://"):].split(":")
        return http.client.HTTPConnection(host, int(port), timeout=60)

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
            # Unbuffered, so that nothing past the interim answer is taken
            # from the socket before HTTPResponse reads the final one.
            f = sock.makefile("rb", buffering=0)
            line = f.readline()
            if line.split()[1:2] == [b"100"]:
                while f.readline() not in (b"\r\n", b""):
                    pass
                sock.sendall(body)
                r = http.client.HTTPResponse(sock, method=method)
            else:
                r = http.client.HTTPResponse(sock, method=method)
                r.fp = io.BufferedReader(_Prepend(line, f))
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

    def tcp_api(self, token=True):
        with open(os.path.join(self.state, "vsrvd.url")) as f:
            url = f.read().strip()
        with open(os.path.join(self.state, "token")) as f:
            tok = f.read().strip()
        return Api(url=url, token=tok if token else None)

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
