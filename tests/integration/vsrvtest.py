"""Shared helpers for vsrv's integration tests (stdlib only).

Each test file is a unittest module run by meson as its own test, with
VSRV_BIN pointing at the built vsrv and VSRV_SHARED at the shared/ folder
(test data from other programs)."""
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import unittest

VSRV = os.environ.get("VSRV_BIN", "vsrv")
SRCDIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED = os.environ.get("VSRV_SHARED", os.path.join(os.path.dirname(SRCDIR), "shared"))
TESTDATA = os.path.join(SHARED, "testdata", "vhd")


def run(*args, check=True, input=None, timeout=300):
    """Runs a command; returns CompletedProcess with text stdout/stderr."""
    p = subprocess.run([str(a) for a in args], capture_output=True, text=True,
                       input=input, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args))} exited {p.returncode}:\n"
                             f"stdout: {p.stdout}\nstderr: {p.stderr}")
    return p


def vsrv(*args, **kw):
    return run(VSRV, *args, **kw)


def vsrv_json(*args):
    return json.loads(vsrv(*args, "--json").stdout)


def sha256_file(path, length=None):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        left = length
        while True:
            n = 1 << 20 if left is None else min(1 << 20, left)
            if n == 0:
                break
            b = f.read(n)
            if not b:
                break
            h.update(b)
            if left is not None:
                left -= len(b)
    return h.hexdigest()


def fnv1a(data):
    """32-bit FNV-1a, the micro-guests' checksum (tests/guests): as an
    int; the guests print it as 8 hex digits."""
    h = 2166136261
    for b in data:
        h = ((h ^ b) * 16777619) & 0xffffffff
    return h


def fnv1a_hex(data):
    return f"{fnv1a(data):08x}"


def need(*tools):
    """Fails (never skips) when a peer tool is missing: install-deps
    installs them all."""
    for t in tools:
        if shutil.which(t) is None:
            raise AssertionError(f"{t} not found: run scripts/install-deps")


def release_build():
    """The release build (scripts/build's build/, whose seccomp filter
    lacks what the sanitizers call) and an environment for it: its own
    libvhd (its rpath), not the sanitizer build's that meson puts on
    LD_LIBRARY_PATH.  scripts/test builds it before it runs the tests."""
    binary = os.path.join(SRCDIR, "build", "src", "cli", "vsrv")
    if not os.access(binary, os.X_OK):
        raise AssertionError(f"{binary} is missing: scripts/build makes it "
                             "(scripts/test runs it)")
    return binary, {k: v for k, v in os.environ.items()
                    if k not in ("LD_LIBRARY_PATH", "LD_PRELOAD")}


def settled(get, quiet=1.0, timeout=20.0):
    """get()'s value once it stayed the same for `quiet` seconds: what a
    paused or saved guest printed before may still be on its way through
    the console's relay, a process of its own that a loaded host can hold
    back for a while.  Raises if it never settles."""
    import time
    end = time.monotonic() + timeout
    last, since = get(), time.monotonic()
    while time.monotonic() < end:
        time.sleep(0.1)
        now = get()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return now
    raise AssertionError(f"still changing after {timeout} s: {last!r}")


def children(pid):
    """pid's child processes (/proc)."""
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(c) for c in f.read().split()]


def comm(pid):
    with open(f"/proc/{pid}/comm") as f:
        return f.read().strip()


def proc_status(pid):
    """/proc/PID/status as a dict."""
    with open(f"/proc/{pid}/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def pattern(seed, length):
    """Deterministic, incompressible bytes."""
    out = bytearray()
    counter = 0
    while len(out) < length:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:length])


class TmpDirTest(unittest.TestCase):
    """A test case with a fresh temporary directory in self.dir."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="vsrv-it-")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def p(self, name):
        return os.path.join(self.dir, name)


def main():
    unittest.main(verbosity=2)
