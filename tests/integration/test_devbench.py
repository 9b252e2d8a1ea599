"""The device benchmarks' micro-guests (tests/guests/bench-blk.c,
bench-net.c; bench/devices-run) run briefly, with exact checks: random 4 KiB
writes then reads at queue depth 32 on a raw file and on a dynamic VHD, every
word read checked by the guest and every block checked on the host
afterwards; UDP frames through user networking, every datagram received on
the host's loopback; the count the guest completed equal to the count asked
for and to the device's own; and no exit to the vCPU thread at all between
the start and the end of a phase, which the control socket's stats show
(deterministic: in a phase the guest only polls its rings, writes doorbells
that KVM turns into eventfds, and talks to the host through the mailbox
disk).  Also the guests' PVH entry (how QEMU boots them) and their errors.

The host side of the guests' protocol (bench-guest.h) is here, for
bench/devices-run too: the data's pattern, the xorshift64 sequence of
blocks, the mailbox and the phases."""
import array
import os
import signal
import socket
import struct
import threading
import time
import unittest

from ctltest import VM, WAIT, Client, guest
from vsrvtest import TmpDirTest, children, comm, main, vsrv

HOST_TAG = 0x6864       # "hd": the host's data
WRITE_TAG = 0x7772      # "wr": the guest's writes, by default
SEED = 0x9e3779b97f4a7c15
BLOCK = 4096
MB_SECTORS = 8
MB_GO = 0x6f67 << 48
MB_DONE = 0x6e6f64 << 40
RESULT = ("done", "kind", "completed", "kicks", "errors", "mismatches", "cycles")
M64 = (1 << 64) - 1
SO_RCVBUFFORCE = 33     # socket(7); Python's socket module does not name it


def words(offset, length, tag):
    """bench_word() of every 8 bytes in [offset, offset + length)."""
    base = tag << 48
    return array.array("Q", range(base + offset, base + offset + length, 8)).tobytes()


def write_pattern(path, size, tag=HOST_TAG):
    """The data disk as the guests expect it, written 4 KiB at a time, so
    that the page cache holds it in small folios as it holds what the VMs
    write (bench/README.md, "Images are written 4 KiB at a time")."""
    with open(path, "wb", buffering=0) as f:
        for off in range(0, size, 1 << 20):
            chunk = words(off, min(1 << 20, size - off), tag)
            for i in range(0, len(chunk), BLOCK):
                f.write(chunk[i:i + BLOCK])


def blocks(nblocks, n, seed=SEED):
    """The first n blocks the guest picks: xorshift64 (13, 7, 17) modulo the
    disk's 4 KiB blocks."""
    x, out = seed, []
    for _ in range(n):
        x ^= (x << 13) & M64
        x ^= x >> 7
        x ^= (x << 17) & M64
        out.append(x % nblocks)
    return out


class Mailbox:
    """The mailbox disk's file: the host writes step numbers into sector 0,
    the guest its counts into sector 1."""

    def __init__(self, path):
        self.path = path
        with open(path, "wb") as f:
            f.write(bytes(MB_SECTORS * 512))
        self.fd = os.open(path, os.O_RDWR)

    def close(self):
        os.close(self.fd)

    def go(self, step):
        os.pwrite(self.fd, struct.pack("<Q", MB_GO + step), 0)

    def result(self, phase, alive, timeout=WAIT):
        """Waits for phase's counts: (the time they were seen, {name: n})."""
        end = time.monotonic() + timeout
        while True:
            w = struct.unpack("<7Q", os.pread(self.fd, 8 * len(RESULT), 512))
            if w[0] == MB_DONE + phase:
                return time.monotonic(), dict(zip(RESULT, w))
            if not alive() or time.monotonic() > end:
                raise AssertionError(f"phase {phase}: no counts in the mailbox "
                                     f"({'timed out' if alive() else 'the VM ended'})")
            time.sleep(0.0005)


def run_phases(vm, mailbox, phases, stats=None, timeout=WAIT):
    """Runs the guest's phases (bench-guest.h): for each, after the guest
    says it waits (its "ready" line, or the last phase's), `stats()` if
    given, the go, the guest's counts, `stats()` again, the step that lets
    it go on.  Returns a dict per phase: the counts, `seconds` (from the go
    written to the counts seen, on the host), `before` and `after`."""
    out = []
    for p in range(1, phases + 1):
        last = f"phase {p - 1} "
        vm.wait_for(lambda ls: "ready\n" in ls if p == 1 else
                    any(line.startswith(last) for line in ls), timeout, f"the guest at phase {p}")
        before = stats() if stats else None
        t0 = time.monotonic()
        mailbox.go(2 * p - 1)
        t1, res = mailbox.result(p, lambda: vm.proc.poll() is None, timeout)
        after = stats() if stats else None
        mailbox.go(2 * p)
        res.update(seconds=t1 - t0, before=before, after=after)
        out.append(res)
    return out


def delta(before, after):
    """after - before of two flat {name: count} dicts, without the zeros."""
    keys = set(before) | set(after)
    return {k: after.get(k, 0) - before.get(k, 0) for k in keys
            if after.get(k, 0) != before.get(k, 0)}


def exits(res):
    """The exits to user space of every vCPU during a phase, by reason."""
    out = {}
    for b, a in zip(res["before"]["vcpus"], res["after"]["vcpus"]):
        for k, n in delta(b["exits"], a["exits"]).items():
            out[k] = out.get(k, 0) + n
    return out


def device(res, name):
    """A device's counters during a phase."""
    b = next(d for d in res["before"]["devices"] if d["name"] == name)
    a = next(d for d in res["after"]["devices"] if d["name"] == name)
    return delta(b["counters"], a["counters"])


class Receiver:
    """Counts the UDP datagrams reaching a socket, and those not equal to
    `want`, in a thread, until closed."""

    def __init__(self, addr, want):
        self.s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self.s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 64 << 20)
        except PermissionError:
            self.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 20)
        self.s.bind(addr)
        self.s.settimeout(0.2)
        self.port = self.s.getsockname()[1]
        self.want, self.got, self.other, self.stop = want, 0, 0, False
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        while not self.stop:
            try:
                d = self.s.recv(2048)
            except socket.timeout:
                continue
            self.got += 1
            self.other += d != self.want

    def close(self):
        """Stops once nothing has come for 0.2 s; (received, others)."""
        while not self.stop:
            n = self.got
            time.sleep(0.2)
            if self.got == n:
                self.stop = True
                self.t.join()
                self.s.close()
        return self.got, self.other


def payload(n):
    return bytes(ord("a") + i % 26 for i in range(n))


class BlkBench(TmpDirTest):
    """bench-blk on a 16 MiB disk: 300 random 4 KiB writes, then 300 reads,
    32 in flight."""

    COUNT = 300
    SIZE = 16 << 20

    def boot(self, disk, *args, append="run=wr"):
        self.mb = Mailbox(os.path.join(self.dir, "mb.raw"))
        self.addCleanup(self.mb.close)
        vm = VM(os.path.join(self.dir, "c.sock"), "--disk", f"path={disk}", "--disk",
                f"path={self.mb.path}", *args, kernel=guest("bench-blk"),
                append=f"count={self.COUNT} {append}")
        self.addCleanup(vm.kill)
        return vm

    def run_disk(self, disk, *args):
        vm = self.boot(disk, *args)
        c = Client(vm.sock)
        res = run_phases(vm, self.mb, 2, lambda: c.ok("stats"))
        c.close()
        self.assertEqual(vm.finish(), (0, ""))
        lines = "".join(vm.lines)
        self.assertRegex(lines, (
            r"^bench-blk: data at 00:01\.0, 32768 sectors; mailbox at 00:02\.0; "
            r"run wr, 300 requests a phase, depth 32\nready\n"
            r"phase 1 w: 300 completed, \d+ kicks, 0 errors, 0 mismatches, \d+ cycles\n"
            r"phase 2 r: 300 completed, \d+ kicks, 0 errors, 0 mismatches, \d+ cycles\n"
            r"bench-blk: done\n$"))
        for p, kind in zip(res, "wr"):
            self.assertEqual((p["kind"], p["completed"], p["errors"], p["mismatches"]),
                             (ord(kind), self.COUNT, 0, 0))
            # What the guest printed is what it put in the mailbox.
            self.assertIn(f" {p['kicks']} kicks, 0 errors, 0 mismatches, {p['cycles']} cycles",
                          lines)
            self.assertEqual(exits(p), {}, "exits to the vCPU thread during the phase")
            d = device(p, "virtio-blk 00:01.0")
            op = "writes" if kind == "w" else "reads"
            self.assertEqual((d["requests"], d[op], d[op[:-1] + "_bytes"]),
                             (self.COUNT, self.COUNT, self.COUNT * BLOCK))
            self.assertNotIn("errors", d)
            # Each doorbell the guest rang is one KVM signalled: the
            # eventfd may fold several into one wake-up, never more.
            self.assertLessEqual(d["notifications"], p["kicks"])
            self.assertGreater(p["kicks"], 0)
        return res

    def expected(self):
        """The data after the run: the host's, with the guest's words in the
        blocks it wrote."""
        data = bytearray(words(0, self.SIZE, HOST_TAG))
        for b in set(blocks(self.SIZE // BLOCK, self.COUNT)):
            data[b * BLOCK:(b + 1) * BLOCK] = words(b * BLOCK, BLOCK, WRITE_TAG)
        return bytes(data)

    def test_raw(self):
        disk = os.path.join(self.dir, "data.raw")
        write_pattern(disk, self.SIZE)
        self.run_disk(disk)
        with open(disk, "rb") as f:
            self.assertTrue(f.read() == self.expected(), "the disk after the run")

    def test_vhd(self):
        """The same on a dynamic VHD holding the same data (vsrv disk
        convert), read back through vsrv disk convert to raw."""
        raw, disk, back = (os.path.join(self.dir, n) for n in ("d.raw", "data.vhd", "back.raw"))
        write_pattern(raw, self.SIZE)
        vsrv("disk", "convert", raw, disk)
        self.run_disk(disk)
        vsrv("disk", "check", disk)
        vsrv("disk", "convert", disk, back)
        with open(back, "rb") as f:
            self.assertTrue(f.read() == self.expected(), "the disk after the run")

    def test_pvh_entry(self):
        """The PVH note's entry, which QEMU's -kernel takes: the same run."""
        disk = os.path.join(self.dir, "data.raw")
        write_pattern(disk, self.SIZE)
        self.run_disk(disk, "--boot", "pvh")

    def test_wtag_seed_wcount(self):
        """wtag=, seed= and wcount= reach the guest: its 100 writes carry the
        tag, at the first blocks of the seed's sequence, and its 300 reads
        go on from there (no control socket: the mailbox alone)."""
        disk = os.path.join(self.dir, "data.raw")
        write_pattern(disk, self.SIZE)
        vm = self.boot(disk, append="run=wr wtag=0x1234 seed=7 wcount=100")
        res = run_phases(vm, self.mb, 2)
        self.assertEqual(vm.finish(), (0, ""))
        self.assertEqual([(r["completed"], r["errors"], r["mismatches"]) for r in res],
                         [(100, 0, 0), (self.COUNT, 0, 0)])
        self.assertIn("run wr, 300 requests a phase (100 a write phase), depth 32\n",
                      "".join(vm.lines))
        want = set(blocks(self.SIZE // BLOCK, 100, seed=7))
        with open(disk, "rb") as f:
            for b in range(self.SIZE // BLOCK):
                self.assertEqual(f.read(BLOCK), words(b * BLOCK, BLOCK,
                                                      0x1234 if b in want else HOST_TAG), b)

    def test_errors(self):
        """What the guest refuses: one line, status 2."""
        disk = os.path.join(self.dir, "data.raw")
        write_pattern(disk, self.SIZE)
        for args, append, line in [
            ((f"path={disk}",), "run=wx", "FAIL run=wx: phases are r and w"),
            ((f"path={disk}",), "depth=65", "FAIL depth 1-64, seed not 0, wtag 16 bits"),
            ((f"path={disk}",), "",
             "bench-blk: data at 00:01.0, 32768 sectors; FAIL no mailbox (a virtio-blk of 8 "
             "sectors)"),
        ]:
            vm = VM(os.path.join(self.dir, "c.sock"), *(a for d in args for a in ("--disk", d)),
                    kernel=guest("bench-blk"), append=append, control=False)
            self.assertEqual(vm.finish(), (2, ""))
            self.assertEqual("".join(vm.lines), line + "\n")

    def test_corrupt_data(self):
        """A block that is not what the guest expects is found and named."""
        disk = os.path.join(self.dir, "data.raw")
        write_pattern(disk, self.SIZE)
        with open(disk, "r+b") as f:
            f.seek(4096 * 100 + 8 * 5)
            f.write(struct.pack("<Q", 0xbad))
        self.COUNT = 20000      # enough reads to meet block 100 (16 MiB: 4096 blocks)
        self.assertIn(100, blocks(self.SIZE // BLOCK, self.COUNT))
        vm = self.boot(disk, append="run=r")
        res = run_phases(vm, self.mb, 1)
        self.assertEqual(vm.finish(), (1, ""))
        self.assertGreater(res[0]["mismatches"], 0)
        self.assertEqual(res[0]["errors"], 0)
        self.assertIn(f"FAIL block 100 word 5: 0xbad, expected 0x{HOST_TAG << 48 | 409640:x}\n",
                      "".join(vm.lines))


class NetBench(TmpDirTest):
    """bench-net through user networking: 300 UDP datagrams to 10.0.2.2,
    which libslirp sends from the host's 127.0.0.1 to the test's socket."""

    COUNT = 300

    def boot_user(self, count):
        """bench-net sending count datagrams to a Receiver: (receiver,
        mailbox, VM, its control client)."""
        rx = Receiver(("127.0.0.1", 0), payload(18))
        self.addCleanup(rx.close)
        mb = Mailbox(os.path.join(self.dir, "mb.raw"))
        self.addCleanup(mb.close)
        vm = VM(os.path.join(self.dir, "c.sock"), "--net", "user", "--disk", f"path={mb.path}",
                kernel=guest("bench-net"), append=f"count={count} port={rx.port}")
        self.addCleanup(vm.kill)
        return rx, mb, vm, Client(vm.sock)

    def test_user(self):
        rx, mb, vm, c = self.boot_user(self.COUNT)
        res = run_phases(vm, mb, 1, lambda: c.ok("stats"))[0]
        c.close()
        self.assertEqual(vm.finish(), (0, ""))
        self.assertEqual(rx.close(), (self.COUNT, 0))
        self.assertRegex("".join(vm.lines), (
            r"^bench-net: 52:54:00:12:34:56 to 52:55:0a:00:02:02, 10\.0\.2\.15:40000 to "
            rf"10\.0\.2\.2:{rx.port}, 60-byte frames, 300 of them\nready\n"
            r"phase 1 t: 300 completed, \d+ kicks, 0 errors, 0 mismatches, \d+ cycles\n"
            r"bench-net: done\n$"))
        self.assertEqual((res["kind"], res["completed"], res["errors"]),
                         (ord("t"), self.COUNT, 0))
        self.assertEqual(exits(res), {}, "exits to the vCPU thread during the phase")
        d = device(res, "virtio-net 00:02.0")
        self.assertEqual(d["requests"], self.COUNT)
        self.assertLessEqual(d["notifications"], res["kicks"])

    def test_user_backpressure(self):
        """vsrv-net stopped (SIGSTOP) for a second while the guest sends
        more datagrams than its socket holds: none is lost and none counted
        dropped; the transmit queue waits for room (src/net/user.c)."""
        # More than vsrv-net's socket holds (20,000 of these frames pass
        # through it even when it drops what does not fit), fewer than the
        # Receiver's 64 MiB hold unread (a small datagram takes about 800
        # bytes of it), so that a slow reader here cannot lose any.
        count = 50000
        rx, mb, vm, c = self.boot_user(count)
        # The VM's process and its helper, once the helper runs vsrv-net:
        # posix_spawn()'s child is a copy of the VM's process (comm
        # "vsrv-vm") until its exec.
        def helpers():
            try:
                return [h for v in children(vm.proc.pid) for h in children(v)
                        if comm(h) == "vsrv-net"]
            except (FileNotFoundError, ProcessLookupError):
                return []
        end = time.monotonic() + WAIT
        while not (kids := helpers()) and time.monotonic() < end:
            time.sleep(0.02)
        (helper,) = kids
        os.kill(helper, signal.SIGSTOP)
        resume = threading.Timer(1.0, os.kill, (helper, signal.SIGCONT))
        resume.start()
        self.addCleanup(resume.cancel)
        res = run_phases(vm, mb, 1, lambda: c.ok("stats"))[0]
        (nic,) = [{k: v for k, v in d["counters"].items() if k.startswith("tx_")}
                  for d in c.ok("stats")["devices"] if d["name"].startswith("virtio-net")]
        c.close()
        self.assertEqual(vm.finish(), (0, ""))
        self.assertEqual(rx.close(), (count, 0))
        self.assertEqual((res["completed"], res["errors"]), (count, 0))
        self.assertEqual(nic, {"tx_packets": count, "tx_bytes": count * 60, "tx_dropped": 0,
                               "tx_errors": 0})

    def test_errors(self):
        for append, line in [
            ("dst=10.0.2", "FAIL dmac=MAC src=IP dst=IP port=1-65535 len=0-1472"),
            ("dmac=52:55:0A:00:02:02", "FAIL dmac=MAC src=IP dst=IP port=1-65535 len=0-1472"),
            ("len=1473", "FAIL dmac=MAC src=IP dst=IP port=1-65535 len=0-1472"),
            ("", "FAIL no mailbox (a virtio-blk of 8 sectors)"),
        ]:
            vm = VM(os.path.join(self.dir, "c.sock"), "--net", "user",
                    kernel=guest("bench-net"), append=append, control=False)
            self.assertEqual(vm.finish(), (2, ""))
            self.assertEqual("".join(vm.lines), line + "\n")


if __name__ == "__main__":
    main()
