"""virtio-blk and --disk, driven by micro-guests (tests/guests/dev-virtio-blk*.c):
the device as a driver uses it (features, configuration, reads of bytes the
test knows, writes, flushes, discards, write-zeroes, GET_ID, several queues,
MSI-X), checked afterwards on the host in the disk's own bytes (raw, a
dynamic VHD, a differencing chain, with qemu-img and vsrv disk check as
peers); the disk's counters, at the end (--stats) and through the control
socket (`stats`); undo disks (commit, keep, discard), across a reboot too; a
hostile driver, case by case, with the exact lines the VMM logs; the disk options'
and the configuration file's errors; and the release build's seccomp filter
with both I/O engines, and beside a NIC on user networking."""
import json
import os
import re
import shutil
import subprocess

from ctltest import VM, Client, ctl
from vsrvtest import fnv1a_hex, VSRV, TmpDirTest, main, need, pattern, release_build, run as run_cmd, vsrv

GUESTS = os.environ.get("VSRV_GUESTS", "")
TIMEOUT = 120
DEV = "vsrv: virtio-blk 00:01.0: "
SECTORS = 2048
SIZE = SECTORS * 512
Q0 = DEV + "queue 0: request at head 0: "


def guest(name):
    return os.path.abspath(os.path.join(GUESTS, name + ".elf"))


def run(name, *args, hide="", binary=VSRV, env=None, **kw):
    env = dict(os.environ if env is None else env)
    env["VSRV_TEST_HIDE_CAPS"] = hide
    return subprocess.run([binary, "run", "--kernel", guest(name), "--test-device", *args],
                          capture_output=True, text=True, timeout=TIMEOUT,
                          stdin=subprocess.DEVNULL, env=env, **kw)


def tick_lines(lines):
    """The tick guest's whole lines (dev-virtio-blk.c, "tick")."""
    return [line for line in lines if line.startswith("tick ") and line.endswith("\n")]



def sectors(data, first, n=1):
    return data[first * 512:(first + n) * 512]


# What dev-virtio-blk.c writes into sectors 16-23.
WRITTEN = bytes((i * 7 + 3 + (i >> 9)) & 0xff for i in range(4096))
ORIGINAL = pattern("virtio-blk", SIZE)
FEATURES = "size_max seg_max blk_size flush topology mq discard write_zeroes"
FEATURES_RO = "size_max seg_max ro blk_size flush topology mq"
LIMITS = ("config: discard 4194304 sectors, 32 segments, alignment 8; "
          "write-zeroes 4194304 sectors, 32 segments, may unmap 1\n")
LIMITS_RO = ("config: discard 0 sectors, 0 segments, alignment 0; "
             "write-zeroes 0 sectors, 0 segments, may unmap 0\n")
PAST_END = Q0 + "a read of 4096 bytes at sector 2044, past the end (2048 sectors): IOERR\n"


def raw_serial(path):
    """The disk layer's serial of a raw file: its device and inode."""
    st = os.stat(path)
    return "raw-%016x" % (((st.st_dev * 0x9e3779b97f4a7c15) & (2 ** 64 - 1)) ^ st.st_ino)


def vhd_serial(path):
    """A VHD chain's bottom layer's unique id, its first 10 bytes in hex."""
    info = json.loads(vsrv("disk", "info", "--json", path).stdout)
    bottom = info["parents"][-1] if info["parents"] else info
    return bottom["uuid"].replace("-", "")[:20]


def expected_output(data, serial, queues, ro=False, noflush=False):
    """What dev-virtio-blk.c prints on a disk holding `data`."""
    out = ("blk 00:01.0 1af4:1042 class 018000\n"
           f"features: {FEATURES_RO if ro else FEATURES} indirect_desc event_idx version_1\n"
           "config: capacity 2048, size_max 4096, seg_max 254, blk_size 512, "
           f"topology 3 0 8 0, num_queues {queues}\n" + (LIMITS_RO if ro else LIMITS) +
           f"read sector 0: status 0, used 513, fnv1a {fnv1a_hex(sectors(data, 0))}\n"
           f"read sectors 2040-2047: status 0, used 4097, fnv1a {fnv1a_hex(sectors(data, 2040, 8))}\n"
           f'get-id: status 0, used 21, "{serial}"\n')
    if ro:
        out += ("write (indirect) sectors 16-23: status 1, used 1\n"
                f"read sectors 16-23: status 0, fnv1a {fnv1a_hex(sectors(data, 16, 8))}\n"
                "flush: status 0\n"
                "discard sectors 64-71 and 256-263: status 2\n")
    else:
        out += ("write (indirect) sectors 16-23: status 0, used 1\n"
                "read sectors 16-23: status 0, the bytes written\n" +
                ("" if noflush else "flush: status 0\n") +
                "discard sectors 64-71 and 256-263: status 0\n"
                "write-zeroes sectors 128-135, and 136-143 unmapping: status 0\n"
                "read sectors 128-143: zeros\n")
    out += "read sectors 2044-2051: status 1\n"
    for i in range(min(queues, 4)):
        s = 32 + 8 * i
        out += (f"queue {i}: read sector {s}: status 0, used 513, "
                f"fnv1a {fnv1a_hex(sectors(data, s))}\n")
    return out + (f"queues: a read on each of {min(queues, 4)} at once, each queue "
                  "interrupting on its own vector\n"
                  "in flight: 5 reads on queue 0 at once, all answered\nblk ok\n")


class DiskTest(TmpDirTest):
    def make_raw(self, name="disk.img", data=ORIGINAL):
        path = self.p(name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def make_vhd(self, name="disk.vhd", data=ORIGINAL):
        raw = self.make_raw(name + ".raw", data)
        path = self.p(name)
        vsrv("disk", "convert", "--to", "dynamic", raw, path)
        os.unlink(raw)
        return path

    def bytes_of(self, path):
        """A disk's bytes as a guest sees them, through vsrv's own reader
        for VHDs (whole chains)."""
        if path.endswith(".vhd"):
            out = self.p("readback.raw")
            if os.path.exists(out):
                os.unlink(out)
            vsrv("disk", "convert", "--to", "raw", path, out)
            path = out
        with open(path, "rb") as f:
            return f.read()

    def check_written(self, got, before=ORIGINAL):
        """The default run's writes, and nothing else, on top of `before`:
        a discarded range reads as before or as zeros."""
        want = bytearray(before)
        want[16 * 512:24 * 512] = WRITTEN
        want[128 * 512:144 * 512] = bytes(16 * 512)
        for s in (64, 256):
            self.assertIn(sectors(got, s, 8), (sectors(before, s, 8), bytes(4096)), s)
            want[s * 512:(s + 8) * 512] = sectors(got, s, 8)
        self.assertEqual(len(got), len(want))
        self.assertTrue(got == bytes(want), "the disk holds other bytes than the run wrote")
        return bytes(want)


class Driver(DiskTest):
    def test_raw(self):
        """A raw file, four vCPUs so four queues: the reads show the file's
        bytes, and afterwards the file holds exactly what the guest wrote."""
        disk = self.make_raw()
        p = run("dev-virtio-blk", "--cpus", "4", "--disk", f"path={disk},format=raw")
        self.assertEqual((p.returncode, p.stdout, p.stderr),
                         (0, expected_output(ORIGINAL, raw_serial(disk), 4), PAST_END))
        self.check_written(self.bytes_of(disk))

    def test_fallbacks(self):
        """Doorbells exiting to the vCPU (no ioeventfds) and MSIs through
        KVM_SIGNAL_MSI (no irqfds): the same device; its completions still
        come on its own thread."""
        for hide in ("IOEVENTFD", "IOEVENTFD,IRQFD"):
            disk = self.make_raw(f"{hide.lower().replace(',', '-')}.img")
            p = run("dev-virtio-blk", "--cpus", "2", "--disk", disk, hide=hide)
            self.assertEqual((p.returncode, p.stdout, p.stderr),
                             (0, expected_output(ORIGINAL, raw_serial(disk), 2), PAST_END), hide)
            self.check_written(self.bytes_of(disk))

    def test_readonly(self):
        """readonly=on: VIRTIO_BLK_F_RO, no discard or write-zeroes offered; a
        write is answered IOERR and writes nothing."""
        disk = self.make_raw()
        p = run("dev-virtio-blk", "--disk", f"path={disk},readonly=on")
        self.assertEqual((p.returncode, p.stdout, p.stderr), (
            0, expected_output(ORIGINAL, raw_serial(disk), 1, ro=True),
            Q0 + "a write to a read-only disk: IOERR\n" +
            Q0 + "a discard, but VIRTIO_BLK_F_DISCARD was not negotiated: UNSUPP\n" + PAST_END))
        self.assertTrue(self.bytes_of(disk) == ORIGINAL)

    def test_vhd_dynamic(self):
        """A dynamic VHD: after the run qemu-img reads in it exactly what the
        guest left, and vsrv disk check finds it clean.  (qemu-img check has
        no checks for VHD: it answers "This image format does not support
        checks".)"""
        need("qemu-img")
        disk = self.make_vhd()
        p = run("dev-virtio-blk", "--cpus", "2", "--disk", f"path={disk},format=vhd")
        self.assertEqual((p.returncode, p.stdout, p.stderr),
                         (0, expected_output(ORIGINAL, vhd_serial(disk), 2), PAST_END))
        want = self.check_written(self.bytes_of(disk))
        with open(self.p("want.raw"), "wb") as f:
            f.write(want)
        run_cmd("qemu-img", "compare", "-f", "raw", "-F", "vpc", self.p("want.raw"), disk)
        self.assertEqual(vsrv("disk", "check", disk).returncode, 0)

    def test_vhd_chain(self):
        """A differencing disk over a dynamic one: the guest reads the
        parent's bytes through the child, writes land in the child only,
        and GET_ID is the bottom layer's id.  (qemu-img does not follow a
        VHD's parent: the chain is read back through vsrv.)"""
        base = self.make_vhd("base.vhd")
        child = self.p("child.vhd")
        vsrv("disk", "create", "--parent", base, child)
        with open(base, "rb") as f:
            base_bytes = f.read()
        p = run("dev-virtio-blk", "--disk", child)
        self.assertEqual((p.returncode, p.stdout, p.stderr),
                         (0, expected_output(ORIGINAL, vhd_serial(base), 1), PAST_END))
        with open(base, "rb") as f:
            self.assertTrue(f.read() == base_bytes, "the parent was written")
        self.check_written(self.bytes_of(child))
        self.assertEqual(vsrv("disk", "check", child).returncode, 0)

    def test_cache_modes(self):
        for cache in ("none", "unsafe"):
            disk = self.make_vhd(f"{cache}.vhd")
            p = run("dev-virtio-blk", "--disk", f"path={disk},cache={cache}")
            self.assertEqual((p.returncode, p.stdout, p.stderr),
                             (0, expected_output(ORIGINAL, vhd_serial(disk), 1), PAST_END),
                             cache)
            self.check_written(self.bytes_of(disk))

    def test_stats(self):
        """--stats: the transport's counts and the disk's, exact but for
        what timing decides (doorbells an eventfd folds, interrupts a
        batch of completions shares, latencies)."""
        disk = self.make_raw()
        p = run("dev-virtio-blk", "--cpus", "2", "--disk", disk, "--stats")
        self.assertEqual(p.returncode, 0, p.stderr)
        # 18 chains given back; 12 reads of 20480 bytes; 1 error (past the end).
        self.assertRegex(p.stderr, re.escape(DEV) + r"\d+ notifications, 18 requests, "
                         r"20518 bytes to the guest, \d+ interrupts, 0 refused, 0 resets needed\n")
        self.assertIn(DEV + f"{disk}: 12 reads (20480 bytes), 1 writes (4096 bytes), "
                      "1 flushes, 1 discards (8192 bytes), 1 write-zeroes (8192 bytes), "
                      "1 errors\n", p.stderr)
        hist = re.search(re.escape(DEV) + r"latency in microseconds((, [<>=\d-]+: \d+)+)\n",
                         p.stderr)
        self.assertIsNotNone(hist, p.stderr)
        self.assertEqual(sum(int(x) for x in re.findall(r": (\d+)", hist.group(1))), 18)

    def test_stats_through_the_control_socket(self):
        """`stats` (docs/control.md): the disk's counters after the
        transport's, from a paused VM, so with nothing in flight: the tick
        guest's one write of 512 bytes, a read of 4 KiB a tick (the last
        maybe answered and not printed yet), every request in the latency
        histogram; `vsrv ctl stats` prints them for a person."""
        disk = self.make_raw()
        sock = self.p("c.sock")
        vm = VM(sock, "--disk", disk, kernel=guest("dev-virtio-blk"), append="tick hz=50")
        try:
            vm.wait_for(lambda ls: len(tick_lines(ls)) >= 3, what="3 ticks")
            c = Client(sock)
            c.ok("pause")
            ticks = len(tick_lines(vm.lines))
            blk = {d["name"]: d["counters"] for d in c.ok("stats")["devices"]}["virtio-blk 00:01.0"]
            reads = blk["reads"]
            self.assertIn(reads, (ticks, ticks + 1))
            latency = {k: v for k, v in blk.items() if k.startswith("latency_us_")}
            for k in latency:
                self.assertRegex(k, r"^latency_us_(0_1|(\d+)_(\d+)|4194304_up)$")
            self.assertEqual(sum(latency.values()), reads + 1)
            rest = {k: v for k, v in blk.items() if k not in latency}
            self.assertGreaterEqual(rest.pop("notifications"), 1)
            self.assertGreaterEqual(rest.pop("interrupts"), 1)
            self.assertEqual(rest, {
                "requests": reads + 1, "bytes_to_guest": 4097 * reads + 1, "refused": 0,
                "needs_reset": 0, "reads": reads, "read_bytes": 4096 * reads, "writes": 1,
                "write_bytes": 512, "flushes": 0, "discards": 0, "discard_bytes": 0,
                "write_zeroes": 0, "write_zeroes_bytes": 0, "errors": 0})
            p = ctl(sock, "stats")
            self.assertEqual((p.returncode, p.stderr), (0, ""))
            self.assertRegex(p.stdout, r"\nvirtio-blk 00:01\.0: notifications \d+, requests "
                             f"{reads + 1}, .*, reads {reads}, read_bytes {4096 * reads}, "
                             r"writes 1, write_bytes 512, flushes 0, .*, errors 0(, latency_us_"
                             r"\w+ \d+)+\n")
            c.ok("power-off")
            self.assertEqual(vm.finish(), (0, "vsrv: powered off through the control socket\n"))
        finally:
            vm.kill()

    def test_write_through(self):
        """A driver without VIRTIO_BLK_F_FLUSH: the spec makes each completed
        write stable, so the device flushes after each write and
        write-zeroes (2 flushes counted, none asked for)."""
        disk = self.make_raw()
        p = run("dev-virtio-blk", "--disk", disk, "--append", "noflush", "--stats")
        self.assertEqual((p.returncode, p.stdout),
                         (0, expected_output(ORIGINAL, raw_serial(disk), 1, noflush=True)))
        self.assertIn(f"{disk}: 11 reads (19968 bytes), 1 writes (4096 bytes), 2 flushes, ",
                      p.stderr)
        self.check_written(self.bytes_of(disk))

    def test_checkpoint(self):
        """Saved state between two reads: the device quiesced (nothing in
        flight), saved, loaded back from power-on, resumed."""
        disk = self.make_raw()
        p = run("dev-virtio-blk", "--cpus", "2", "--disk", disk, "--append", "checkpoint")
        head = expected_output(ORIGINAL, raw_serial(disk), 2).split("read sector 0")[0]
        line = f"read sector 0: status 0, used 513, fnv1a {fnv1a_hex(sectors(ORIGINAL, 0))}\n"
        self.assertEqual((p.returncode, p.stdout, p.stderr), (
            0, head + line + line + "checkpoint: saved and loaded, used idx 2\nblk ok\n", ""))

    def test_several_disks(self):
        """Two disks, two devices (00:01.0 and 00:02.0); the guest drives the
        first, the second stays as it was."""
        a, b = self.make_raw("a.img"), self.make_raw("b.img", pattern("b", SIZE))
        p = run("dev-virtio-blk", "--disk", a, "--disk", f"path={b}", "--stats")
        self.assertEqual((p.returncode, p.stdout),
                         (0, expected_output(ORIGINAL, raw_serial(a), 1)))
        self.assertIn("vsrv: virtio-blk 00:02.0: 0 notifications, 0 requests", p.stderr)
        self.assertTrue(self.bytes_of(b) == pattern("b", SIZE))


class Undo(DiskTest):
    """undo=: the guest runs on an overlay, BASE.undo.vhd beside the base,
    which vsrv run makes before the first boot and finishes after the last."""

    def undo_run(self, mode, *args, guest_args=()):
        base = self.make_vhd("base.vhd")
        with open(base, "rb") as f:
            before = f.read()
        mtime = os.stat(base).st_mtime_ns
        p = run("dev-virtio-blk", *guest_args, "--disk", f"path={base},undo={mode}", *args)
        return base, self.p("base.undo.vhd"), before, mtime, p

    def assert_base_unchanged(self, base, before, mtime):
        with open(base, "rb") as f:
            self.assertTrue(f.read() == before, "the base was written")
        self.assertEqual(os.stat(base).st_mtime_ns, mtime)

    def test_discard(self):
        base, overlay, before, mtime, p = self.undo_run("discard")
        self.assertEqual((p.returncode, p.stdout, p.stderr), (
            0, expected_output(ORIGINAL, vhd_serial(base), 1),
            PAST_END + f"vsrv: {base}: the run's changes are thrown away (undo=discard)\n"))
        self.assert_base_unchanged(base, before, mtime)
        self.assertEqual(sorted(os.listdir(self.dir)), ["base.vhd"])

    def test_keep(self):
        base, overlay, before, mtime, p = self.undo_run("keep")
        self.assertEqual((p.returncode, p.stdout, p.stderr), (
            0, expected_output(ORIGINAL, vhd_serial(base), 1),
            PAST_END + f"vsrv: {overlay}: the run's changes are kept here "
            f"(vsrv disk commit {overlay} merges them)\n"))
        self.assert_base_unchanged(base, before, mtime)
        self.check_written(self.bytes_of(overlay))
        self.assertEqual(vsrv("disk", "check", overlay).returncode, 0)
        # The next run will not guess what to do with them.
        p = run("dev-virtio-blk", "--disk", f"path={base},undo=keep")
        self.assertEqual((p.returncode, p.stdout, p.stderr), (
            1, "", f"vsrv: {overlay}: exists: the changes of an earlier run (kept, or left by "
            "a run that did not end cleanly); commit them (vsrv disk commit "
            f"{overlay}), delete the file, or resume on them (undo-resume)\n"))

    def test_commit(self):
        need("qemu-img")
        base, overlay, before, mtime, p = self.undo_run("commit")
        self.assertEqual((p.returncode, p.stdout, p.stderr), (
            0, expected_output(ORIGINAL, vhd_serial(base), 1),
            PAST_END + f"vsrv: {base}: the run's changes are merged into it (undo=commit)\n"))
        self.assertFalse(os.path.exists(overlay))
        want = self.check_written(self.bytes_of(base))
        with open(self.p("want.raw"), "wb") as f:
            f.write(want)
        run_cmd("qemu-img", "compare", "-f", "raw", "-F", "vpc", self.p("want.raw"), base)
        self.assertEqual(vsrv("disk", "check", base).returncode, 0)

    def reboot_bytes(self):
        want = bytearray(ORIGINAL)
        mark = b"vsrv: rebooted once\0"
        want[512:1024] = mark + bytes(512 - len(mark))
        want[1024:1536] = b"\x5a" * 512
        return bytes(want)

    def test_across_a_reboot(self):
        """The guest marks sector 1 and resets; --on-reboot restart builds
        the next VM in a new process, which finds the mark in the same
        overlay and writes sector 2; the overlay is finished once, after."""
        reboots = "first boot: sector 1 marked, rebooting\n" \
                  "second boot: sector 1 marked, sector 2 written\n"
        base, overlay, before, mtime, p = self.undo_run(
            "keep", "--on-reboot", "restart", guest_args=("--append", "reboot"))
        self.assertEqual((p.returncode, p.stdout, p.stderr), (
            0, reboots, f"vsrv: {overlay}: the run's changes are kept here "
            f"(vsrv disk commit {overlay} merges them)\n"))
        self.assert_base_unchanged(base, before, mtime)
        self.assertTrue(self.bytes_of(overlay) == self.reboot_bytes())
        shutil.rmtree(self.dir)
        os.mkdir(self.dir)
        base, overlay, before, mtime, p = self.undo_run(
            "commit", "--on-reboot", "restart", guest_args=("--append", "reboot"))
        self.assertEqual((p.returncode, p.stdout, p.stderr), (
            0, reboots, f"vsrv: {base}: the run's changes are merged into it (undo=commit)\n"))
        self.assertTrue(self.bytes_of(base) == self.reboot_bytes())
        self.assertFalse(os.path.exists(overlay))

    def test_stopped_by_sigterm(self):
        """A VM stopped by a signal: the overlay is finished all the same."""
        base = self.make_vhd("base.vhd")
        proc = subprocess.Popen([VSRV, "run", "--kernel", guest("exit-hlt"), "--test-device",
                                 "--append", "mode=forever", "--disk", f"path={base},undo=discard"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.assertEqual(proc.stdout.readline(), "halting with interrupts disabled\n")
        self.assertTrue(os.path.exists(self.p("base.undo.vhd")))
        proc.terminate()
        out, err = proc.communicate(timeout=30)
        self.assertEqual((proc.returncode, err), (
            0, "vsrv: stopped by SIGTERM; the VM was powered off\n"
            f"vsrv: {base}: the run's changes are thrown away (undo=discard)\n"))
        self.assertEqual(sorted(os.listdir(self.dir)), ["base.vhd"])


# Each case of tests/guests/dev-virtio-blk-bad.c: what the guest prints, and
# the line the VMM logs (after DEV).
BAD = {
    "no-status": ("refused", "request at head 0: no device-writable byte for its status: refused"),
    "status-readonly": ("refused",
                        "request at head 0: no device-writable byte for its status: refused"),
    "short-header": ("status 1, used 1", "request at head 0: a header of 8 bytes (16 expected): "
                     "IOERR"),
    "sector-overflow": ("status 1, used 1", "request at head 0: a read of 512 bytes at sector "
                        "18446744073709551615, past the end (2048 sectors): IOERR"),
    "sector-wrap": ("status 1, used 1", "request at head 0: a read of 512 bytes at sector "
                    "36028797018963968, past the end (2048 sectors): IOERR"),
    "past-end": ("status 1, used 1", "request at head 0: a write of 1024 bytes at sector 2047, "
                 "past the end (2048 sectors): IOERR"),
    "huge-length": ("status 1, used 1", "request at head 0: a read of 2097152 bytes, more than "
                    "1040384: IOERR"),
    "odd-length": ("status 1, used 1", "request at head 0: a read of 100 bytes, not a multiple "
                   "of 512: IOERR"),
    "read-direction": ("status 1, used 1", "request at head 0: a read with 512 bytes of "
                       "device-readable data: IOERR"),
    "write-direction": ("status 1, used 1", "request at head 0: a write with 512 bytes of "
                        "device-writable data: IOERR"),
    "unknown-type": ("status 2, used 1", "request at head 0: type 42 is not supported: UNSUPP"),
    "getid-readable": ("status 1, used 1", "request at head 0: a get-id with 20 bytes of "
                       "device-readable data: IOERR"),
    "discard-unmap": ("status 2, used 1", "request at head 0: discard segment 0 has flags 0x1 "
                      "(discard has none): UNSUPP"),
    "zeroes-flags": ("status 2, used 1", "request at head 0: write-zeroes segment 0 has unknown "
                     "flags 0x2: UNSUPP"),
    "segments-odd": ("status 1, used 1", "request at head 0: a discard with 20 bytes of segments "
                     "(16 each, 1 to 32 of them): IOERR"),
    "segments-many": ("status 1, used 1", "request at head 0: a write-zeroes with 528 bytes of "
                      "segments (16 each, 1 to 32 of them): IOERR"),
    "segment-range": ("status 1, used 1", "request at head 0: write-zeroes segment 1: 1024 bytes "
                      "at sector 2047, past the end (2048 sectors): IOERR"),
    "segment-huge": ("status 1, used 1", "request at head 0: discard segment 0: 2199023255040 "
                     "bytes, more than 2147483648: IOERR"),
    "desc-outside": ("needs reset, config interrupt",
                     "needs reset: queue 0: chain at head 0: descriptor 1 (512 bytes at "
                     "0x40000000) is outside guest memory"),
    "same-head": ("status 0, used 513", None),
}


def bad_line(line):
    if line is None:
        return ""
    return DEV + (line if line.startswith("needs reset") else "queue 0: " + line) + "\n"


class HostileDriver(DiskTest):
    def test_all_cases(self):
        """Every case in one VM: its outcome, its one log line, the device
        recovered after a reset each time, the VMM still running, and the
        disk untouched by every refused and failed write."""
        disk = self.make_raw()
        p = run("dev-virtio-blk-bad", "--disk", disk, "--append", "case=all")
        self.assertEqual((p.returncode, p.stdout, p.stderr), (
            0, "".join(f"{c}: {o}, recovered\n" for c, (o, _) in BAD.items()) + "bad ok\n",
            "".join(bad_line(line) for _, line in BAD.values())))
        self.assertTrue(self.bytes_of(disk) == ORIGINAL, "a refused request wrote")

    def test_one_case_inline(self):
        """A case alone, with the doorbells on the vCPU thread."""
        disk = self.make_raw()
        p = run("dev-virtio-blk-bad", "--disk", disk, "--append", "case=write-direction",
                hide="IOEVENTFD")
        self.assertEqual((p.returncode, p.stdout, p.stderr), (
            0, "write-direction: status 1, used 1, recovered\nbad ok\n",
            bad_line(BAD["write-direction"][1])))


class Options(DiskTest):
    def vsrv_run(self, *args):
        return vsrv("run", "--kernel", guest("hello64"), "--test-device", *args, check=False)

    def test_usage_errors(self):
        """What the option parser refuses: one line, status 2."""
        for arg, msg in (("path=x.img,colour=red", "'colour': not an option"),
                         ("path=x.img,readonly=yes", "readonly=yes: not on or off"),
                         ("path=x.img,cache=fast", "cache=fast: not writeback, none or unsafe"),
                         ("path=x.img,undo=maybe", "undo=maybe: not commit, keep or discard"),
                         ("readonly", "no path (path=FILE)")):
            p = self.vsrv_run("--disk", arg)
            self.assertEqual((p.returncode, p.stdout, p.stderr),
                             (2, "", f"vsrv: --disk {arg}: {msg}\n"), arg)
        p = self.vsrv_run(*[a for i in range(17) for a in ("--disk", f"d{i}.img")])
        self.assertEqual((p.returncode, p.stderr),
                         (2, "vsrv: --disk d16.img: too many disks (16 at most)\n"))

    def test_disks_that_cannot_be_used(self):
        """A disk that cannot be opened or used as asked: one line naming it,
        status 1, and nothing left behind."""
        missing = self.p("missing.img")
        junk = self.make_raw("junk.vhd", b"not a VHD" * 100)
        raw = self.make_raw()
        vhd = self.make_vhd("ro.vhd")
        odd = self.make_raw("odd.img", b"x" * 1000)
        for arg, line in (
                (missing, f"{missing}: No such file or directory"),
                (f"path={raw},undo=commit",
                 f"{raw}: undo needs a VHD: a raw disk cannot have a differencing child "
                 "(vsrv disk convert --to dynamic makes one)"),
                (f"path={vhd},undo=keep,readonly=on",
                 f"{vhd}: undo and readonly exclude each other: a read-only disk has "
                 "nothing to undo"),
                (odd, f"{odd}: 1000 bytes, not a whole number of 512-byte sectors")):
            p = self.vsrv_run("--disk", arg)
            self.assertEqual((p.returncode, p.stdout, p.stderr), (1, "", f"vsrv: {line}\n"), arg)
        p = self.vsrv_run("--disk", junk)
        self.assertEqual((p.returncode, p.stdout), (1, ""))
        self.assertRegex(p.stderr, "^vsrv: " + re.escape(junk) + ": [^\n]+\n$")
        self.assertEqual(sorted(os.listdir(self.dir)),
                         ["disk.img", "junk.vhd", "odd.img", "ro.vhd"])

    def test_config_file(self):
        """"disks" in the configuration file: paths from the file's folder;
        --disk on the command line replaces the file's disks."""
        os.mkdir(self.p("vm"))
        disk = self.make_raw(os.path.join("vm", "disk.img"))
        cfg = self.p("vm/vm.json")
        with open(cfg, "w") as f:
            json.dump({"version": 1, "kernel": guest("dev-virtio-blk"), "vcpus": 2,
                       "disks": [{"path": "disk.img", "format": "raw", "readonly": False,
                                  "undo": "none", "cache": "writeback"}]}, f)
        p = subprocess.run([VSRV, "run", "--config", cfg, "--test-device"], capture_output=True,
                           text=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL)
        self.assertEqual((p.returncode, p.stdout, p.stderr),
                         (0, expected_output(ORIGINAL, raw_serial(disk), 2), PAST_END))
        other = self.make_raw("other.img")
        p = subprocess.run([VSRV, "run", "--config", cfg, "--test-device", "--disk",
                            f"path={other},readonly=on"], capture_output=True, text=True,
                           timeout=TIMEOUT, stdin=subprocess.DEVNULL)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(f'get-id: status 0, used 21, "{raw_serial(other)}"\n', p.stdout)

    def test_config_errors(self):
        for disks, msg in (
                (["a.img"], "disks[0]: expected an object"),
                ([{"path": "a.img", "colour": "red"}], "disks[0]: unknown field 'colour'"),
                ([{"readonly": True}], "disks[0]: path: expected a file's path"),
                ([{"path": "a.img"}, {"path": 7}], "disks[1]: path: expected a file's path"),
                ([{"path": "a.img", "format": "qcow2"}],
                 'disks[0]: format: expected "auto", "raw" or "vhd"'),
                ([{"path": "a.img", "readonly": "yes"}],
                 "disks[0]: readonly: expected true or false"),
                ([{"path": "a.img", "undo": True}],
                 'disks[0]: undo: expected "none", "commit", "keep" or "discard"'),
                ([{"path": "a.img", "cache": "fast"}],
                 'disks[0]: cache: expected "writeback", "none" or "unsafe"'),
                ([{"path": "a.img"}] * 17, "disks: 17 disks, more than 16")):
            cfg = self.p("vm.json")
            with open(cfg, "w") as f:
                json.dump({"version": 1, "kernel": guest("hello64"), "disks": disks}, f)
            p = vsrv("run", "--config", cfg, check=False)
            self.assertEqual((p.returncode, p.stdout, p.stderr),
                             (2, "", f"vsrv: {cfg}: {msg}\n"), disks)


class ReleaseFilter(DiskTest):
    def test_both_engines_under_the_release_filter(self):
        """The release build's seccomp filter: a raw disk and a VHD, with
        io_uring and with the thread engine, each making every kind of
        request, and no forbidden call."""
        release, env = release_build()
        for aio in ("uring", "thread"):
            for kind in ("raw", "vhd"):
                disk = self.make_raw(f"{aio}.img") if kind == "raw" else \
                    self.make_vhd(f"{aio}.vhd")
                serial = raw_serial(disk) if kind == "raw" else vhd_serial(disk)
                p = run("dev-virtio-blk", "--cpus", "2", "--disk", f"path={disk},aio={aio}",
                        binary=release, env=env)
                self.assertEqual((p.returncode, p.stdout, p.stderr),
                                 (0, expected_output(ORIGINAL, serial, 2), PAST_END),
                                 (aio, kind))
                self.check_written(self.bytes_of(disk))

    def test_beside_user_networking(self):
        """A disk and a NIC on user networking in one VM, under the release
        build's filter: the disk keeps PCI slot 1 (disks come before NICs),
        the NIC takes slot 2, and every kind of request goes through
        io_uring while libslirp's sockets and timers are polled on the
        NIC's thread, the sandbox allowing the disk layer's calls and the
        user-networking set together."""
        release, env = release_build()
        disk = self.make_raw()
        p = run("dev-virtio-blk", "--cpus", "2", "--disk", f"path={disk},aio=uring",
                "--net", "user", "--stats", binary=release, env=env)
        self.assertEqual((p.returncode, p.stdout),
                         (0, expected_output(ORIGINAL, raw_serial(disk), 2)), p.stderr)
        self.assertTrue(p.stderr.startswith(PAST_END), p.stderr)
        self.assertIn(DEV + f"{disk}: 12 reads (20480 bytes), 1 writes (4096 bytes), "
                      "1 flushes, 1 discards (8192 bytes), 1 write-zeroes (8192 bytes), "
                      "1 errors\n", p.stderr)
        self.assertIn("vsrv: virtio-net 00:02.0: 0 notifications, 0 requests, 0 bytes to the "
                      "guest, 0 interrupts, 0 refused, 0 resets needed\n", p.stderr)
        self.check_written(self.bytes_of(disk))


if __name__ == "__main__":
    main()
