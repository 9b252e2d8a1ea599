"""vsrv disk serve: VHDs, differencing chains included, read and written
over NBD by real clients (qemu-img, qemu-io, nbdcopy, nbdinfo, nbdfuse)."""
import errno
import json
import os
import signal
import socket
import subprocess
import time

from vsrvtest import (VSRV, TmpDirTest, main, need, pattern, run,
                      sha256_file, vsrv, vsrv_json)

MiB = 1 << 20
START_TIMEOUT = 30
STOP_TIMEOUT = 30
CLIENT_TIMEOUT = 120


def unix_uri(sock):
    return f"nbd+unix:///?socket={sock}"


def connectable(sock=None, port=None):
    if sock:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        addr = sock
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        addr = ("127.0.0.1", port)
    try:
        s.settimeout(2)
        s.connect(addr)
        return True
    except OSError:
        return False
    finally:
        s.close()


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One `vsrv disk serve`, started, waited for and always stopped."""

    def __init__(self, test, disk, *args, sock=None, port=None):
        self.test = test
        self.sock = sock
        self.port = port
        n = len(test.servers)
        self.out = test.p(f"serve-{n}.out")
        self.err = test.p(f"serve-{n}.err")
        where = ["--socket", sock] if sock else ["--port", str(port)]
        with open(self.out, "wb") as o, open(self.err, "wb") as e:
            self.proc = subprocess.Popen([VSRV, "disk", "serve", disk, *where, *args],
                                         stdout=o, stderr=e,
                                         stdin=subprocess.DEVNULL)
        test.servers.append(self)
        deadline = time.monotonic() + START_TIMEOUT
        while not connectable(sock, port):
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited {self.proc.returncode}: "
                                     f"{self.stderr()}")
            if time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"server not ready in {START_TIMEOUT}s: "
                                     f"{self.stderr()}")
            time.sleep(0.05)
        self.uri = unix_uri(sock) if sock else f"nbd://127.0.0.1:{port}/"

    def stderr(self):
        with open(self.err) as f:
            return f.read()

    def stop(self):
        """SIGTERM, then wait; returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(STOP_TIMEOUT)
                raise AssertionError(f"server ignored SIGTERM for {STOP_TIMEOUT}s")
        return self.proc.returncode


class ServeTest(TmpDirTest):
    def setUp(self):
        super().setUp()
        need("nbdkit", "qemu-img", "qemu-io", "nbdcopy", "nbdinfo")
        self.servers = []
        self.sock = self.p("nbd.sock")

    def tearDown(self):
        for s in self.servers:
            try:
                s.stop()
            except AssertionError:
                pass
        super().tearDown()

    def serve(self, disk, *args, **kw):
        if "port" not in kw:
            kw.setdefault("sock", self.sock)
        return Server(self, disk, *args, **kw)

    def write_file(self, name, data):
        path = self.p(name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def read_export(self, uri, name="out.raw"):
        """The whole export, as qemu-img reads it."""
        out = self.p(name)
        if os.path.exists(out):
            os.unlink(out)
        run("qemu-img", "convert", "-f", "raw", "-O", "raw", uri, out,
            timeout=CLIENT_TIMEOUT)
        with open(out, "rb") as f:
            return f.read()

    def read_disk(self, disk, *args):
        """A VHD's content, through a fresh read-only server."""
        srv = self.serve(disk, "--readonly", *args)
        out = self.p("copy.raw")
        if os.path.exists(out):
            os.unlink(out)
        run("nbdcopy", srv.uri, out, timeout=CLIENT_TIMEOUT)
        self.assertEqual(srv.stop(), 0, srv.stderr())
        with open(out, "rb") as f:
            return f.read()

    def qemu_io(self, uri, *cmds, check=True):
        args = []
        for c in cmds:
            args += ["-c", c]
        return run("qemu-io", "-f", "raw", *args, uri, check=check,
                   timeout=CLIENT_TIMEOUT)

    def nbd_map(self, uri):
        return [(e["offset"], e["length"], e["type"]) for e in
                json.loads(run("nbdinfo", "--map", "--json", uri,
                               timeout=CLIENT_TIMEOUT).stdout)]

    def test_qemu_written_dynamic_disk_reads_exactly(self):
        # qemu writes the VHD, vsrv serves it, qemu reads it over NBD.
        size = 24 * MiB
        want = bytearray(size)
        want[0:MiB] = pattern("a", MiB)
        want[5 * MiB + 512:7 * MiB] = pattern("b", 2 * MiB - 512)
        want[size - 4096:] = pattern("c", 4096)
        raw = self.write_file("src.raw", want)
        disk = self.p("q.vhd")
        run("qemu-img", "convert", "-f", "raw", "-O", "vpc",
            "-o", "subformat=dynamic,force_size=on", raw, disk)
        srv = self.serve(disk)
        self.assertEqual(self.read_export(srv.uri), bytes(want))
        info = run("nbdinfo", "--json", srv.uri).stdout
        self.assertEqual(json.loads(info)["exports"][0]["export-size"], size)
        self.assertEqual(srv.stop(), 0, srv.stderr())

    def test_writes_from_every_client_land_byte_for_byte(self):
        size = 16 * MiB
        disk = self.p("d.vhd")
        vsrv("disk", "create", "--size", "16M", disk)
        want = bytearray(size)
        srv = self.serve(disk)
        pat = pattern("copy", 3 * MiB + 4096)
        run("nbdcopy", self.write_file("pat.raw", pat), srv.uri,
            timeout=CLIENT_TIMEOUT)
        want[0:len(pat)] = pat
        self.qemu_io(srv.uri, "write -P 0xab 1M 64k")
        want[MiB:MiB + 65536] = b"\xab" * 65536
        # Byte-granular: qemu's client asks for no alignment.
        self.qemu_io(srv.uri, "write -P 0xcd 77 1000")
        want[77:1077] = b"\xcd" * 1000
        self.qemu_io(srv.uri, "write -P 0xef 8388607 3")
        want[8388607:8388610] = b"\xef" * 3
        self.qemu_io(srv.uri, "write -f -P 0x42 10M 4k")   # FUA
        want[10 * MiB:10 * MiB + 4096] = b"\x42" * 4096
        self.qemu_io(srv.uri, "write -z 2M 512k")
        want[2 * MiB:2 * MiB + 512 * 1024] = bytes(512 * 1024)
        self.qemu_io(srv.uri, "write -z 2097000 700")      # unaligned zero
        want[2097000:2097700] = bytes(700)
        self.qemu_io(srv.uri, "read -P 0xcd 77 1000", "read -P 0xef 8388607 3",
                     "read -P 0 8388610 509")
        self.assertEqual(self.read_export(srv.uri), bytes(want))
        self.assertEqual(srv.stop(), 0, srv.stderr())
        # What the file holds, through a second server and through qemu's
        # own VHD driver.
        self.assertEqual(self.read_disk(disk), bytes(want))
        expect = self.write_file("want.raw", want)
        run("qemu-img", "compare", "-f", "raw", "-F", "vpc", expect, disk)

    def test_fixed_disk(self):
        disk = self.p("f.vhd")
        vsrv("disk", "create", "--type", "fixed", "--size", "4M", disk)
        srv = self.serve(disk)
        pat = pattern("fixed", 4 * MiB)
        run("nbdcopy", self.write_file("pat.raw", pat), srv.uri,
            timeout=CLIENT_TIMEOUT)
        self.qemu_io(srv.uri, "write -P 0x01 4000 200")
        want = bytearray(pat)
        want[4000:4200] = b"\x01" * 200
        self.assertEqual(srv.stop(), 0, srv.stderr())
        # A fixed disk is its data followed by the footer.
        with open(disk, "rb") as f:
            self.assertEqual(f.read(4 * MiB), bytes(want))
        self.assertEqual(os.path.getsize(disk), 4 * MiB + 512)
        self.assertEqual(vsrv_json("disk", "info", disk)["type"], "fixed")

    def test_differencing_chain(self):
        base, child = self.p("base.vhd"), self.p("child.vhd")
        size = 8 * MiB
        vsrv("disk", "create", "--size", "8M", "--block-size", "1M", base)
        srv = self.serve(base)
        want = bytearray(size)
        pat = pattern("base", 5 * MiB)
        run("nbdcopy", self.write_file("pat.raw", pat), srv.uri,
            timeout=CLIENT_TIMEOUT)
        want[0:len(pat)] = pat
        self.assertEqual(srv.stop(), 0, srv.stderr())
        vsrv("disk", "create", "--type", "diff", "--parent", base, child)
        base_sum = sha256_file(base)

        srv = self.serve(child)
        # Reads go through the child to the parent's data.
        self.assertEqual(self.read_export(srv.uri), bytes(want))
        self.qemu_io(srv.uri, "write -P 0x5a 1M 4k")
        want[MiB:MiB + 4096] = b"\x5a" * 4096
        self.qemu_io(srv.uri, "write -P 0x6b 3145828 33")  # mid-sector
        want[3145828:3145861] = b"\x6b" * 33
        self.qemu_io(srv.uri, "write -P 0x7c 6M 8k")       # past the parent's data
        want[6 * MiB:6 * MiB + 8192] = b"\x7c" * 8192
        # Zeros must hide the parent's data, not fall through to it.
        self.qemu_io(srv.uri, "write -z -u 2M 64k")
        want[2 * MiB:2 * MiB + 65536] = bytes(65536)
        self.qemu_io(srv.uri, "write -z 4194000 1000")
        want[4194000:4195000] = bytes(1000)
        self.assertEqual(self.read_export(srv.uri), bytes(want))
        self.assertEqual(srv.stop(), 0, srv.stderr())

        self.assertEqual(sha256_file(base), base_sum)
        self.assertEqual(self.read_disk(child), bytes(want))
        # The base alone still holds only what was copied into it.
        self.assertEqual(self.read_disk(base)[:len(pat)], pat)
        # The writes are in the child's own layer.
        m = vsrv_json("disk", "map", child)
        top = [(e["offset"], e["length"]) for e in m
               if e["kind"] == "data" and e["depth"] == 0]
        for off, n in ((MiB, 4096), (3145728, 512), (6 * MiB, 8192),
                       (2 * MiB, 65536)):
            self.assertTrue(any(o <= off and off + n <= o + ln for o, ln in top),
                            f"{off}+{n} not in the child: {top}")

    def test_map_shows_holes(self):
        disk = self.p("sparse.vhd")
        vsrv("disk", "create", "--size", "64M", disk)
        srv = self.serve(disk)
        self.assertEqual(self.nbd_map(srv.uri), [(0, 64 * MiB, 3)])
        self.qemu_io(srv.uri, "write -P 0x33 2M 64k", "write -P 0x44 40M 512")
        # Allocation is per 2 MiB block: a written block is data.
        self.assertEqual(self.nbd_map(srv.uri), [
            (0, 2 * MiB, 3), (2 * MiB, 2 * MiB, 0), (4 * MiB, 36 * MiB, 3),
            (40 * MiB, 2 * MiB, 0), (42 * MiB, 22 * MiB, 3)])
        self.assertEqual(srv.stop(), 0, srv.stderr())

    def test_map_of_a_chain(self):
        base, child = self.p("base.vhd"), self.p("child.vhd")
        vsrv("disk", "create", "--size", "8M", "--block-size", "1M", base)
        srv = self.serve(base)
        self.qemu_io(srv.uri, "write -P 0x11 0 4k")
        srv.stop()
        vsrv("disk", "create", "--parent", base, child)
        srv = self.serve(child)
        self.qemu_io(srv.uri, "write -P 0x22 4M 4k")
        # The child's block holds only its own sectors; the rest of it
        # falls through to the (unallocated) parent.
        self.assertEqual(self.nbd_map(srv.uri), [
            (0, MiB, 0), (MiB, 3 * MiB, 3), (4 * MiB, 4096, 0),
            (4 * MiB + 4096, 4 * MiB - 4096, 3)])
        self.assertEqual(srv.stop(), 0, srv.stderr())

    def test_readonly_refuses_writes(self):
        disk = self.p("ro.vhd")
        vsrv("disk", "create", "--size", "8M", disk)
        before = sha256_file(disk)
        srv = self.serve(disk, "--readonly")
        info = json.loads(run("nbdinfo", "--json", srv.uri).stdout)
        self.assertTrue(info["exports"][0]["is_read_only"])
        p = self.qemu_io(srv.uri, "write -P 0x01 0 4k", check=False)
        self.assertNotIn("wrote", p.stdout)
        self.assertTrue(p.returncode != 0 or "rror" in p.stdout + p.stderr,
                        p.stdout + p.stderr)
        p = run("nbdcopy", self.write_file("x.raw", b"\x01" * 4096), srv.uri,
                check=False, timeout=CLIENT_TIMEOUT)
        self.assertNotEqual(p.returncode, 0)
        # A read-only export shares the disk with another reader.
        other = self.serve(disk, "--readonly", sock=self.p("other.sock"))
        self.assertEqual(self.read_export(other.uri), bytes(8 * MiB))
        self.assertEqual(other.stop(), 0, other.stderr())
        self.assertEqual(srv.stop(), 0, srv.stderr())
        self.assertEqual(sha256_file(disk), before)

    def test_port(self):
        disk = self.p("p.vhd")
        vsrv("disk", "create", "--size", "4M", disk)
        srv = self.serve(disk, port=free_port())
        self.qemu_io(srv.uri, "write -P 0x99 512 512")
        want = bytearray(4 * MiB)
        want[512:1024] = b"\x99" * 512
        self.assertEqual(self.read_export(srv.uri), bytes(want))
        with open(srv.out) as f:
            self.assertEqual(f.read(), f"serving {disk} on nbd://127.0.0.1:{srv.port}/\n")
        self.assertEqual(srv.stop(), 0, srv.stderr())

    def test_stale_socket_is_replaced(self):
        disk = self.p("s.vhd")
        vsrv("disk", "create", "--size", "4M", disk)
        srv = self.serve(disk)
        srv.stop()
        self.assertTrue(os.path.exists(self.sock))   # nbdkit leaves it
        srv = self.serve(disk)
        self.assertEqual(self.read_export(srv.uri), bytes(4 * MiB))
        self.assertEqual(srv.stop(), 0, srv.stderr())

    def expect_refusal(self, args, line, code=1, env=None):
        p = subprocess.run([VSRV, "disk", "serve", *args], capture_output=True,
                           text=True, timeout=60, env=env)
        self.assertEqual((p.returncode, p.stderr), (code, line + "\n"))
        self.assertEqual(p.stdout, "")
        # nbdkit never started: it would have made the socket.
        self.assertFalse(os.path.exists(self.sock))

    def test_bad_inputs(self):
        missing = self.p("missing.vhd")
        self.expect_refusal([missing, "--socket", self.sock],
                            f"vsrv: {missing}: No such file or directory")
        junk = self.write_file("junk.vhd", b"not a disk\n" * 100)
        p = subprocess.run([VSRV, "disk", "serve", junk, "--socket", self.sock],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 1)
        self.assertEqual(len(p.stderr.splitlines()), 1, p.stderr)
        self.assertTrue(p.stderr.startswith(f"vsrv: {junk}: "), p.stderr)
        self.assertFalse(os.path.exists(self.sock))

        disk = self.p("busy.vhd")
        vsrv("disk", "create", "--size", "4M", disk)
        srv = self.serve(disk, sock=self.p("first.sock"))
        pid = srv.proc.pid  # vsrv became nbdkit: same process
        for extra in ([], ["--readonly"]):
            p = subprocess.run([VSRV, "disk", "serve", disk, "--socket", self.sock,
                                *extra], capture_output=True, text=True, timeout=60)
            self.assertEqual(p.returncode, 1)
            self.assertRegex(p.stderr, rf"^vsrv: {disk}: in use by pid {pid} "
                             r"\(nbdkit\)[^\n]*\n$")
            self.assertFalse(os.path.exists(self.sock))
        self.assertEqual(srv.stop(), 0, srv.stderr())

        self.expect_refusal([disk], f"vsrv: {disk}: give one of --socket PATH or --port N", 2)
        self.expect_refusal([disk, "--socket", self.sock, "--port", "1"],
                            f"vsrv: {disk}: give one of --socket PATH or --port N", 2)
        self.expect_refusal([disk, "--port", "0"],
                            "vsrv: --port: '0' is not a port number (1 to 65535)", 2)
        self.expect_refusal([disk, "--socket", self.sock, "--bind", "::1"],
                            f"vsrv: {disk}: --bind goes with --port, not --socket", 2)
        notsock = self.write_file("file.sock", b"mine")
        p = subprocess.run([VSRV, "disk", "serve", disk, "--socket", notsock],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual((p.returncode, p.stderr),
                         (1, f"vsrv: {notsock}: exists and is not a socket\n"))
        with open(notsock, "rb") as f:
            self.assertEqual(f.read(), b"mine")
        env = dict(os.environ, VSRV_NBDKIT_PLUGIN=self.p("nope.so"))
        self.expect_refusal([disk, "--socket", self.sock],
                            f"vsrv: VSRV_NBDKIT_PLUGIN: {self.p('nope.so')}: "
                            "No such file or directory", env=env)

    def test_nbdfuse(self):
        need("nbdfuse", "fusermount3")
        why = fuse_unusable()
        if why:
            print(f"nbdfuse not exercised: {why}")
            self.skipTest(f"FUSE unusable here: {why}")
        disk = self.p("fuse.vhd")
        vsrv("disk", "create", "--size", "8M", disk)
        srv = self.serve(disk)
        mnt = self.p("mnt")
        os.mkdir(mnt)
        fuse = subprocess.Popen(["nbdfuse", mnt, "--unix", self.sock],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
        try:
            img = os.path.join(mnt, "nbd")
            deadline = time.monotonic() + START_TIMEOUT
            while not (os.path.ismount(mnt) and os.path.exists(img)):
                if fuse.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError("nbdfuse did not mount: " +
                                         fuse_output(fuse))
                time.sleep(0.05)
            self.assertEqual(os.path.getsize(img), 8 * MiB)
            data = pattern("fuse", 3000)
            with open(img, "r+b") as f:
                f.seek(12345)
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            with open(img, "rb") as f:
                f.seek(12345 - 5)
                self.assertEqual(f.read(3010), bytes(5) + data + bytes(5))
        finally:
            run("fusermount3", "-u", mnt, check=False, timeout=60)
            try:
                fuse.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                fuse.kill()
                fuse.wait(STOP_TIMEOUT)
            fuse.stdout.close()
        self.assertEqual(srv.stop(), 0, srv.stderr())
        got = self.read_disk(disk)
        self.assertEqual(got[12345:12345 + 3000], data)
        self.assertEqual(got.count(0), 8 * MiB - 3000 + data.count(0))


def fuse_output(proc):
    if proc.poll() is None:
        return "(still running)"
    return proc.stdout.read().decode(errors="replace")


def fuse_unusable():
    """Why FUSE cannot work here, or None when /dev/fuse opens."""
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse does not exist"
    try:
        fd = os.open("/dev/fuse", os.O_RDWR)
    except OSError as e:
        return f"/dev/fuse cannot be opened: {errno.errorcode.get(e.errno, e.errno)} " \
               f"({e.strerror})"
    os.close(fd)
    return None


if __name__ == "__main__":
    main()
