"""What the control socket's tests share (test_control.py, test_savestate.py,
bench/ctl-run): a VM of the counting micro-guest (tests/guests/ctl-count.c)
run in the background with its output read as it comes, and a client that
speaks the protocol itself (docs/control.md), sharing nothing with vsrv's
own client."""
import json
import os
import socket
import subprocess
import threading
import time

from vsrvtest import VSRV, children, comm

GUESTS = os.environ.get("VSRV_GUESTS", "")
WAIT = 60           # for what must happen (the machine may be loaded)


def guest(name):
    return os.path.abspath(os.path.join(GUESTS, name + ".elf"))


def vm_process(sock):
    """(vsrv's pid, its running boot's vsrv-vm pid), asked of the control
    socket at sock and /proc."""
    pid = Client(sock).ok("status")["pid"]
    for child in children(pid):
        if comm(child) == "vsrv-vm":
            return pid, child
    raise AssertionError("no vsrv-vm process")


def wait_path(path, proc=None, timeout=WAIT):
    end = time.monotonic() + timeout
    while not os.path.exists(path):
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"vsrv ended ({proc.returncode}) before {path} appeared")
        if time.monotonic() > end:
            raise AssertionError(f"{path} did not appear")
        time.sleep(0.02)


class VM:
    """vsrv run of ctl-count (or `kernel`) with --control, its standard
    output collected line by line as it comes (self.lines)."""

    def __init__(self, sock, *args, cpus=None, append="", kernel=None, control=True,
                 binary=VSRV, env=None):
        self.sock = sock
        self.lines = []
        self.cond = threading.Condition()
        cmd = [binary, "run", "--test-device"] + (["--cpus", str(cpus)] if cpus else [])
        if kernel is not False:
            cmd += ["--kernel", kernel or guest("ctl-count"), "--append", append]
        if control:
            cmd += ["--control", sock]
        self.proc = subprocess.Popen(cmd + list(args), stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                     text=True, env=env)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.err = []
        self.err_reader = threading.Thread(target=self._read_err, daemon=True)
        self.err_reader.start()
        if control:
            try:
                wait_path(sock, self.proc)
            except AssertionError as e:
                self.err_reader.join(5)
                raise AssertionError(f"{e}: {''.join(self.err)!r}") from None

    def _read(self):
        for line in self.proc.stdout:
            with self.cond:
                self.lines.append(line)
                self.cond.notify_all()

    def _read_err(self):
        for line in self.proc.stderr:
            self.err.append(line)

    def wait_for(self, pred, timeout=WAIT, what="output"):
        """Waits until pred(lines) is true; returns the lines then."""
        end = time.monotonic() + timeout
        with self.cond:
            while not pred(self.lines):
                left = end - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self.reader.is_alive()):
                    raise AssertionError(f"waiting for {what}: got {self.lines[-20:]!r}, "
                                         f"stderr {''.join(self.err)!r}")
                self.cond.wait(min(left, 0.1))
            return list(self.lines)

    def wait_line(self, text, timeout=WAIT):
        self.wait_for(lambda ls: text + "\n" in ls, timeout, repr(text))

    def counts(self, lines=None):
        """Each vCPU's numbers, in the order printed: {apic id: [n, ...]}."""
        out = {}
        for line in self.lines if lines is None else lines:
            if line.startswith("cpu") and line.endswith("\n"):
                cpu, n = line[3:].split()
                out.setdefault(int(cpu), []).append(int(n))
        return out

    def wait_counts(self, cpus, at_least, timeout=WAIT):
        """Until each of `cpus` vCPUs printed `at_least` lines more than now."""
        base = {c: len(v) for c, v in self.counts().items()}
        self.wait_for(lambda ls: all(len(self.counts(ls).get(c, [])) >= base.get(c, 0) + at_least
                                     for c in range(cpus)), timeout,
                      f"{at_least} more counts on {cpus} vCPUs")
        return self.counts()

    def finish(self, timeout=WAIT):
        """Waits for vsrv to end: (status, standard error)."""
        self.proc.wait(timeout)
        self.reader.join(timeout)
        self.err_reader.join(timeout)
        self.proc.stdout.close()
        self.proc.stderr.close()
        return self.proc.returncode, "".join(self.err)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        if not self.proc.stdout.closed:
            self.finish()


class Client:
    """One connection to the control socket, speaking the protocol."""

    def __init__(self, path, greet=True):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(WAIT)
        # The path exists from bind(), a moment before listen().
        for _ in range(100):
            try:
                self.s.connect(path)
                break
            except ConnectionRefusedError:
                time.sleep(0.02)
        else:
            self.s.connect(path)
        self.buf = b""
        self.events = []
        self.next_id = 0
        self.greeting = self.read() if greet else None

    def close(self):
        self.s.close()

    def __del__(self):
        self.s.close()

    def send(self, data):
        self.s.sendall(data if isinstance(data, bytes) else data.encode())

    def read(self):
        """The next message; None when the server closed."""
        while b"\n" not in self.buf:
            b = self.s.recv(65536)
            if not b:
                return None
            self.buf += b
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def reply(self):
        """The next message that is not an event (events are kept)."""
        while True:
            m = self.read()
            if m is None or "event" not in m:
                return m
            self.events.append(m)

    def request(self, command, id=None, **arguments):
        if id is None:
            self.next_id += 1
            id = self.next_id
        req = {"id": id, "command": command}
        if arguments:
            req["arguments"] = arguments
        self.send(json.dumps(req) + "\n")
        m = self.reply()
        if m is None or m.get("id") != id:
            raise AssertionError(f"{command}: unexpected reply {m!r}")
        return m

    def ok(self, command, **arguments):
        m = self.request(command, **arguments)
        if "return" not in m:
            raise AssertionError(f"{command}: {m!r}")
        return m["return"]

    def event(self, name, timeout=WAIT):
        """The next event called name (events before it are dropped)."""
        self.s.settimeout(timeout)
        try:
            while True:
                while self.events:
                    e = self.events.pop(0)
                    if e["event"] == name:
                        return e
                m = self.read()
                if m is None:
                    raise AssertionError(f"closed while waiting for event {name}")
                if "event" in m:
                    self.events.append(m)
        finally:
            self.s.settimeout(WAIT)


def ctl(path, *args):
    """vsrv ctl as a person runs it."""
    return subprocess.run([VSRV, "ctl", path, *args], capture_output=True, text=True,
                          timeout=WAIT, stdin=subprocess.DEVNULL)
