"""A boot's kernel segments and initrd mapped into guest memory from their
files (copy-on-write, under a read lease) instead of copied, and copied
where they cannot be.

The fake kernel (tests/guests/boot-guest.c) with "watch" on its command
line reports, round after round, the FNV-1a of its own code and constants
and of the initrd as it reads them in guest memory; this file computes
both from the files it passed.  Where the files are mapped, the VM
process's /proc/PID/maps shows them inside guest RAM, /proc/locks its
leases; rewriting a file makes the writer wait until vsrv copied, and the
guest goes on seeing the original bytes."""
import os
import shutil
import struct
import time

from ctltest import VM, Client, guest, vm_process
from vsrvtest import fnv1a, TmpDirTest, main, pattern, release_build, vsrv

MIB = 1 << 20
MEM = 256 * MIB
BASE = 0x100000                 # boot-guest64's load address



def loads(elf):
    """An ELF64's PT_LOAD segments: (offset, paddr, filesz)."""
    phoff, = struct.unpack_from("<Q", elf, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
    out = []
    for i in range(phnum):
        p = phoff + i * phentsize
        typ, = struct.unpack_from("<I", elf, p)
        off, _, paddr, filesz = struct.unpack_from("<QQQQ", elf, p + 8)
        if typ == 1:
            out.append((off, paddr, filesz))
    return out


def image_bytes(elf, addr, size):
    """The file's bytes that a loader puts at guest addresses
    [addr, addr + size), from the segment that holds them."""
    for off, paddr, filesz in loads(elf):
        if paddr <= addr and addr + size <= paddr + filesz:
            return elf[off + addr - paddr:off + addr - paddr + size]
    raise AssertionError(f"{addr:#x}+{size:#x} is in no segment")


def maps(pid):
    """/proc/PID/maps: (start, end, offset, path) each."""
    out = []
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            w = line.split()
            lo, hi = (int(x, 16) for x in w[0].split("-"))
            out.append((lo, hi, int(w[2], 16), " ".join(w[5:])))
    return out


def leases(pid):
    """The inodes pid holds leases on (/proc/locks)."""
    out = set()
    with open("/proc/locks") as f:
        for line in f:
            w = line.split()
            if w[1] == "LEASE" and w[4] == str(pid):
                out.add(int(w[5].split(":")[2]))
    return out


class BootMap(TmpDirTest):
    def setUp(self):
        super().setUp()
        self.sock = self.p("c.sock")
        self.kernel = self.p("vmlinux")
        shutil.copy(guest("boot-guest64"), self.kernel)
        with open(self.kernel, "rb") as f:
            self.elf = f.read()
        self.initrd = self.p("initrd")
        # Four whole pages and a part: the part is copied.
        self.initrd_data = pattern("initrd", 20011)
        with open(self.initrd, "wb") as f:
            f.write(self.initrd_data)
        self.at = (MEM - len(self.initrd_data)) & ~0xfff
        self.vms = []

    def tearDown(self):
        for vm in self.vms:
            vm.kill()
        super().tearDown()

    def start(self, *args, kernel=None, **kw):
        vm = VM(self.sock, "--initrd", self.initrd, "--host-quirks", "off", *args,
                kernel=kernel or self.kernel, append="console=ttyS0 watch", **kw)
        self.vms.append(vm)
        return vm

    def want(self, line):
        """The watch line for what the files held at the start."""
        w = dict(f.split("=") for f in line.split()[1:])
        addr, size = int(w["image"], 16), int(w["size"], 16)
        self.assertEqual(addr, BASE)
        self.assertGreater(size, 4096)      # a whole page of it to map
        return (f"watch image={addr:08x} size={size:08x} "
                f"fnv1a={fnv1a(image_bytes(self.elf, addr, size)):08x} "
                f"initrd_fnv1a={fnv1a(self.initrd_data):08x}\n")

    def watches(self, vm, more):
        """Waits for `more` watch lines after those already there."""
        n = sum(line.startswith("watch ") for line in vm.lines)
        lines = vm.wait_for(lambda ls: sum(x.startswith("watch ") for x in ls) >= n + more,
                            what=f"{more} more watch lines")
        return [x for x in lines if x.startswith("watch ")]

    def assertMapped(self, pid, kernel, initrd):
        """The files mapped into guest RAM where they are said to be: the
        kernel's first segment's whole pages, the initrd's four; not at all
        where not."""
        m = maps(pid)
        k = [e for e in m if e[3] == self.kernel]
        i = [e for e in m if e[3] == self.initrd]
        off, paddr, filesz = loads(self.elf)[0]
        pages = (filesz // 4096) * 4096
        if kernel:
            self.assertEqual([(hi - lo, o) for lo, hi, o, _ in k], [(pages, off)])
            base = k[0][0] - paddr
        else:
            self.assertEqual(k, [])
        if initrd:
            self.assertEqual([(hi - lo, o) for lo, hi, o, _ in i], [(4 * 4096, 0)])
            if kernel:
                self.assertEqual(i[0][0] - base, self.at)
            base = i[0][0] - self.at
        else:
            self.assertEqual(i, [])
        if kernel or initrd:
            # Guest RAM is whole around them: [base, base + MEM) covered by
            # mappings without a gap (the anonymous memory split by them).
            pos = base
            for lo, hi, _, _ in sorted(m):
                if lo <= pos < hi:
                    pos = hi
            self.assertGreaterEqual(pos, base + MEM)
        held = leases(pid)
        self.assertEqual(os.stat(self.kernel).st_ino in held, kernel)
        self.assertEqual(os.stat(self.initrd).st_ino in held, initrd)

    def test_mapped_then_rewritten(self):
        """Both files mapped (and leased) by the VM's process, not by vsrv
        around it, and again by a reset's new one.  Opening the initrd to
        write it waits until vsrv copied every mapped page (one line,
        naming the initrd), after which the kernel is no longer leased
        either; the guest, asked after both were rewritten, still reads
        the original bytes."""
        vm = self.start()
        first = self.watches(vm, 1)[0]
        want = self.want(first)
        self.assertEqual(first, want)
        monitor, pid = vm_process(self.sock)
        self.assertMapped(pid, True, True)
        self.assertEqual([e for e in maps(monitor) if e[3] in (self.kernel, self.initrd)], [])
        self.assertEqual(leases(monitor), set())
        # A reset: a new process, which maps and leases again.
        Client(self.sock).ok("reset")
        vm.wait_for(lambda ls: ls.count("cmdline addr=00020000 len=0013 "
                                        "\"console=ttyS0 watch\"\n") == 2, what="the reboot")
        self.assertEqual(self.watches(vm, 1)[-1], want)
        monitor, pid2 = vm_process(self.sock)
        self.assertNotEqual(pid2, pid)
        self.assertMapped(pid2, True, True)
        # The initrd first: the line names it, though the kernel was
        # leased first.
        t0 = time.monotonic()
        fd = os.open(self.initrd, os.O_WRONLY | os.O_TRUNC)
        took = time.monotonic() - t0
        os.write(fd, b"\xff" * len(self.initrd_data))
        os.close(fd)
        # Not the kernel's lease-break-time (45 s): vsrv let it go.
        self.assertLess(took, 20)
        self.assertMapped(pid2, False, False)
        t0 = time.monotonic()
        fd = os.open(self.kernel, os.O_WRONLY | os.O_TRUNC)
        self.assertLess(time.monotonic() - t0, 1)
        os.write(fd, b"\xee" * len(self.elf))
        os.close(fd)
        self.assertEqual(self.watches(vm, 2)[-1], want)
        Client(self.sock).ok("power-off")
        self.assertEqual(vm.finish(), (0, (
            f"vsrv: {self.initrd} is being written to: the VM's memory was copied from it "
            "first\nvsrv: powered off through the control socket\n")))

    def test_release_build(self):
        """The same rewrite in the release build, whose seccomp filter is
        in force when vsrv copies (and lacks what the sanitizers call):
        the kernel written first, the line names it."""
        binary, env = release_build()
        vm = self.start(binary=binary, env=env)
        want = self.want(self.watches(vm, 1)[0])
        fd = os.open(self.kernel, os.O_WRONLY | os.O_TRUNC)
        os.write(fd, b"\xee" * len(self.elf))
        os.close(fd)
        self.assertEqual(self.watches(vm, 2)[-1], want)
        Client(self.sock).ok("power-off")
        self.assertEqual(vm.finish(), (0, (
            f"vsrv: {self.kernel} is being written to: the VM's memory was copied from it "
            "first\nvsrv: powered off through the control socket\n")))

    def test_saved_and_restored(self):
        """A save after the boot holds the pages still the files': the
        files rewritten, the restored guest reads the original bytes."""
        vm = self.start()
        want = self.want(self.watches(vm, 1)[0])
        state = self.p("vm.state")
        Client(self.sock).ok("save", file=state)
        self.assertEqual(vm.finish()[0], 0)
        for path in (self.kernel, self.initrd):
            with open(path, "r+b") as f:
                f.write(b"\0" * os.path.getsize(path))
        vm = VM(self.sock, "--restore", state, kernel=False)
        self.vms.append(vm)
        self.assertEqual(self.watches(vm, 2)[-1], want)
        Client(self.sock).ok("power-off")
        self.assertEqual(vm.finish()[0], 0)

    def check_copied(self, *args, kernel=True, initrd=True, path=None):
        """A boot whose files are copied (kernel, initrd: whether each is
        mapped): same bytes for the guest, and the files not mapped."""
        vm = self.start(*args, kernel=path)
        line = self.watches(vm, 1)[0]
        self.assertEqual(line, self.want(line))
        _, pid = vm_process(self.sock)
        self.assertMapped(pid, kernel, initrd)
        Client(self.sock).ok("power-off")
        self.assertEqual(vm.finish(), (0, "vsrv: powered off through the control socket\n"))

    def test_memfd(self):
        self.check_copied("--memfd", kernel=False, initrd=False)

    def test_huge_pages(self):
        with open("/proc/meminfo") as f:
            free = int(next(line for line in f if line.startswith("HugePages_Free:")).split()[1])
        if free < MEM // (2 * MIB):
            print(f"skip: huge pages: this host has {free} free (HugePages_Free), the test "
                  f"needs {MEM // (2 * MIB)} of 2 MiB")
            self.skipTest(f"{free} free huge pages")
        self.check_copied("--hugepages", kernel=False, initrd=False)

    def test_segment_not_page_congruent(self):
        """An ELF whose first segment lies 0x800 further into the file than
        a page boundary: copied (and the initrd still mapped), which
        --dry-run says too."""
        elf = bytearray(self.elf)
        off = loads(elf)[0][0]
        elf[off:off] = b"\0" * 0x800
        phoff, = struct.unpack_from("<Q", elf, 0x20)
        phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
        for i in range(phnum):
            p = phoff + i * phentsize + 8
            o, = struct.unpack_from("<Q", elf, p)
            if o >= off:
                struct.pack_into("<Q", elf, p, o + 0x800)
        shoff, = struct.unpack_from("<Q", elf, 0x28)
        struct.pack_into("<Q", elf, 0x28, shoff + 0x800)
        self.elf = bytes(elf)
        with open(self.kernel, "wb") as f:
            f.write(self.elf)
        _, paddr, filesz = loads(self.elf)[0]
        p = vsrv("run", "--kernel", self.kernel, "--initrd", self.initrd, "--host-quirks", "off",
                 "--dry-run")
        self.assertEqual([x for x in p.stdout.splitlines() if x.startswith("load ")], [
            f"load {paddr:#x} {filesz} mapped 0", "load 0x102000 0 mapped 0",
            f"load {self.at:#x} {len(self.initrd_data)} mapped 16384"])
        self.check_copied(kernel=False)

    def test_no_lease(self):
        """The kernel open for writing (by this test) cannot be leased: it
        is copied, the initrd mapped."""
        fd = os.open(self.kernel, os.O_WRONLY)
        try:
            self.check_copied(kernel=False)
        finally:
            os.close(fd)


if __name__ == "__main__":
    main()
