"""vsrv run's boot paths: the Linux boot protocol (bzImage 64- and 32-bit,
vmlinux ELF 64- and 32-bit), PVH, the MP table, and where each path says
the ACPI tables are (the tables themselves: test_acpi.py).

Fake kernels (tests/guests/boot-*.S, boot-guest.c, mptable-smp.c) report
over the debug port what the VMM handed them; this file computes what the
protocols say they must see, from the byte offsets of boot.rst, Xen's
start_info.h and the MP specification, and compares the whole report.
A real Debian kernel's files check the header reading from the other side:
its setup header as read here, by `file` and by readelf, against what
vsrv --dry-run says it loaded."""
import glob
import lzma
import os
import re
import shutil
import struct
import subprocess
import sys

from vsrvtest import fnv1a, SRCDIR, TmpDirTest, main, pattern, run, vsrv

sys.path.insert(0, os.path.join(SRCDIR, "tests", "guests"))
import mkbzimage  # noqa: E402

GUESTS = os.environ.get("VSRV_GUESTS", "")
OK, BAD = 0x55, 0x66
MIB = 1 << 20
HOLE = 3 << 30                  # RAM below 4 GiB ends here at most
ZERO_PAGE, CMDLINE, START_INFO = 0x7000, 0x20000, 0x6000
RSDP = 0xe0000                  # the ACPI tables' root, in the BIOS area
MMCONFIG = (0xe0000000, 0x100000)
DSDT_LENGTH = 755               # its AML: test_acpi.py's DSDT_ASL
CACHE = os.path.join(os.environ.get("XDG_CACHE_HOME") or
                     os.path.expanduser("~/.cache"), "vsrv")


def guest(name):
    return os.path.join(GUESTS, name)


def read(path):
    with open(path, "rb") as f:
        return f.read()



def memory_map(mem):
    """The e820 map / PVH memmap for --memory mem: (addr, size, type)."""
    low = min(mem, HOLE)
    m = [(0, 0x9fc00, 1), (0x9fc00, 0x400, 2), (0xe0000, 0x20000, 2),
         (0x100000, low - 0x100000, 1), (*MMCONFIG, 2)]
    if mem > low:
        m.append((1 << 32, mem - low, 1))
    return m


def acpi_bytes(cpus):
    """What vsrv's ACPI tables take from RSDP to the DSDT's end: RSDP,
    FACS (64-aligned), XSDT, FADT, MADT, MCFG, DSDT, each 16-aligned
    (test_acpi.py checks the tables themselves)."""
    def up(v):
        return (v + 15) & ~15
    madt = 0x1e0
    mcfg = up(madt + 44 + 8 * cpus + 12 + 2 * 10 + 6)
    dsdt = up(mcfg + 60)
    return dsdt + DSDT_LENGTH


def initrd_at(mem, size, addr_max=0x7fffffff):
    """As high as the kernel allows below the hole, page aligned."""
    top = min(min(mem, HOLE), addr_max + 1)
    return (top - size) & ~0xfff


def h16(v):
    return f"{v:04x}"


def h32(v):
    return f"{v:08x}"


def cpu_lines(kind, bits):
    lines = [f"entry {kind} guest{bits}"]
    if kind == "long":
        lines.append("cpu pe=1 pg=1 lma=1 if=0 cs=0010 ds=0018 es=0018 ss=0018")
    else:
        # 32-bit protected mode, paging off; boot.rst wants ebx, edi,
        # ebp zero for the 32-bit protocol, PVH has ebx = start info.
        lines.append("cpu pe=1 pg=0 lma=0 if=0 cs=0010 ds=0018 es=0018 ss=0018")
        ebx, esi = (START_INFO, 0) if kind == "pvh" else (0, ZERO_PAGE)
        lines.append(f"regs ebx={h32(ebx)} esi={h32(esi)} edi=00000000 ebp=00000000")
    return lines


def tail_lines(cmdline, initrd, initrd_addr):
    c = cmdline.encode()
    lines = [f'cmdline addr={h32(CMDLINE)} len={h16(len(c))} "{cmdline}"']
    if initrd is not None:
        lines.append(f"initrd addr={h32(initrd_addr)} size={h32(len(initrd))} "
                     f"fnv1a={h32(fnv1a(initrd))}")
    return lines


def zero_page_report(kind, bits, hdr, mem, cmdline, initrd, initrd_addr):
    """The whole report of a zero-page entry; hdr is boot_params'
    0x290 bytes as the loader must have left them from 0x1f1."""
    def f(off, n):
        return int.from_bytes(hdr[off:off + n], "little")
    lines = cpu_lines(kind, bits)
    lines.append(f"zero_page addr={h32(ZERO_PAGE)}")
    lines.append(
        f"hdr boot_flag={h16(f(0x1fe, 2))} header={h32(f(0x202, 4))} "
        f"version={h16(f(0x206, 2))} type_of_loader={f(0x210, 1):02x} "
        f"loadflags={f(0x211, 1):02x} heap_end_ptr={h16(f(0x224, 2))} "
        f"vid_mode={h16(f(0x1fa, 2))} code32_start={h32(f(0x214, 4))} "
        f"cmd_line_ptr={h32(f(0x228, 4))} cmdline_size={h32(f(0x238, 4))} "
        f"ramdisk_image={h32(f(0x218, 4))} ramdisk_size={h32(f(0x21c, 4))}")
    lines.append("ext ramdisk_image=00000000 ramdisk_size=00000000 cmd_line_ptr=00000000")
    lines.append(f"acpi rsdp_addr={RSDP:016x}")
    lines.append("hdr_bytes " + hdr[0x1f1:0x290].hex())
    m = memory_map(mem)
    lines.append(f"e820 entries={len(m):02x}")
    for a, s, t in m:
        lines.append(f"e820 addr={a:016x} size={s:016x} type={h32(t)}")
    lines += tail_lines(cmdline, initrd if initrd is not None else b"", initrd_addr)
    lines.append("result ok")
    return "\n".join(lines) + "\n"


def put(h, off, fmt, v):
    struct.pack_into("<" + fmt, h, off, v)


def loader_writes(h, initrd, initrd_addr):
    """boot.rst's obligatory writes, common to every zero-page entry."""
    put(h, 0x210, "B", 0xff)                    # type_of_loader: undefined
    put(h, 0x228, "I", CMDLINE)                 # cmd_line_ptr
    put(h, 0x218, "I", initrd_addr if initrd is not None else 0)
    put(h, 0x21c, "I", len(initrd) if initrd is not None else 0)


def bzimage_hdr(image, load, initrd, initrd_addr):
    """The file's setup header as a loader must leave it in boot_params."""
    h = bytearray(0x290)
    end = 0x202 + image[0x201]
    h[0x1f1:end] = image[0x1f1:end]
    loader_writes(h, initrd, initrd_addr)
    put(h, 0x1fa, "H", 0xffff)                  # vid_mode: normal
    h[0x211] |= 0x80                            # CAN_USE_HEAP
    put(h, 0x224, "H", 0xe000 - 0x200)          # heap_end_ptr
    put(h, 0x214, "I", load)                    # code32_start
    return h


def elf_hdr(initrd, initrd_addr):
    """What vsrv writes for an ELF, which has no setup header."""
    h = bytearray(0x290)
    put(h, 0x1fe, "H", 0xaa55)
    h[0x202:0x206] = b"HdrS"
    put(h, 0x206, "H", 0x020f)
    put(h, 0x211, "B", 1)                       # LOADED_HIGH
    put(h, 0x22c, "I", 0x7fffffff)              # initrd_addr_max
    put(h, 0x230, "I", 0x1000000)               # kernel_alignment
    put(h, 0x238, "I", 2047)                    # cmdline_size
    loader_writes(h, initrd, initrd_addr)
    return h


def pvh_report(bits, mem, cmdline, initrd, initrd_addr):
    lines = cpu_lines("pvh", bits)
    nmod = 1 if initrd is not None else 0
    m = memory_map(mem)
    lines.append(f"start_info addr={h32(START_INFO)} magic=336ec578 version=00000001 "
                 f"flags=00000000 nr_modules={h32(nmod)}")
    lines.append(f"start_info modlist_paddr={(START_INFO + 0x40) * nmod:016x} "
                 f"cmdline_paddr={CMDLINE:016x} rsdp_paddr={RSDP:016x} "
                 f"memmap_paddr={START_INFO + 0x80:016x} memmap_entries={h32(len(m))} "
                 "reserved=00000000")
    if nmod:
        lines.append(f"module paddr={initrd_addr:016x} size={len(initrd):016x} "
                     f"cmdline_paddr={0:016x} reserved={0:016x}")
    for a, s, t in m:
        lines.append(f"memmap addr={a:016x} size={s:016x} type={h32(t)} reserved=00000000")
    lines += tail_lines(cmdline, initrd, initrd_addr)
    lines.append("result ok")
    return "\n".join(lines) + "\n"


class BootTest(TmpDirTest):
    def setUp(self):
        super().setUp()
        self.initrd = self.p("initrd")
        # An odd size: the initrd's length must be passed exactly.
        self.initrd_data = pattern("initrd", 20011)
        with open(self.initrd, "wb") as f:
            f.write(self.initrd_data)

    def boot(self, kernel, *args, mem=256 * MIB, initrd=True, cmdline="console=ttyS0 x=1"):
        cmd = ["run", "--kernel", kernel, "--test-device", "--host-quirks", "off",
               "--memory", str(mem)]
        if initrd:
            cmd += ["--initrd", self.initrd]
        if cmdline is not None:
            cmd += ["--append", cmdline]
        return vsrv(*cmd, *args, check=False, timeout=60)

    def assertReport(self, p, want):
        self.assertEqual(p.stderr, "")
        self.assertEqual(p.stdout, want)
        self.assertEqual(p.returncode, OK)

    def write(self, name, data):
        with open(self.p(name), "wb") as f:
            f.write(data)
        return self.p(name)

    def check_bzimage(self, image, load, kind, bits, mem=256 * MIB, cmdline="console=ttyS0 x=1",
                      initrd=True, addr_max=0x7fffffff):
        path = self.write("bzImage", image)
        data = self.initrd_data if initrd else None
        at = initrd_at(mem, len(self.initrd_data), addr_max) if initrd else 0
        p = self.boot(path, mem=mem, cmdline=cmdline, initrd=initrd)
        self.assertReport(p, zero_page_report(kind, bits, bzimage_hdr(image, load, data, at),
                                              mem, cmdline, data, at))

    def test_bzimage64_relocatable(self):
        # Loaded at pref_address (16 MiB), entered at load + 0x200 in
        # long mode: the file built by meson.
        self.check_bzimage(read(guest("boot-bz64.bzImage")), 0x1000000, "long", 64)

    def test_bzimage64_alignment(self):
        # pref_address 14 MiB rounded up to the 16 MiB kernel_alignment.
        elf = read(guest("boot-guest64-reloc.elf"))
        image = mkbzimage.make(elf, pref_address=0xe00000, kernel_alignment=0x1000000,
                               min_alignment=24)
        self.check_bzimage(image, 0x1000000, "long", 64)
        p = vsrv("run", "--kernel", self.p("bzImage"), "--dry-run")
        self.assertIn("\nkernel 0x1000000-", p.stdout)
        self.assertIn("\nentry 0x1000200 long linux\n", p.stdout)

    def test_bzimage64_not_relocatable(self):
        # A kernel that is not relocatable goes to 1 MiB.
        image = mkbzimage.make(read(guest("boot-guest64.elf")), relocatable=False)
        self.check_bzimage(image, 0x100000, "long", 64)

    def test_bzimage64_setup_sects_zero(self):
        # setup_sects 0 means 4.
        image = mkbzimage.make(read(guest("boot-guest64-reloc.elf")), setup_sects=4,
                               setup_sects_field=0)
        self.check_bzimage(image, 0x1000000, "long", 64)

    def test_bzimage64_more_setup(self):
        image = mkbzimage.make(read(guest("boot-guest64-reloc.elf")), setup_sects=27)
        self.check_bzimage(image, 0x1000000, "long", 64)

    def test_bzimage64_old_protocol_enters_32bit(self):
        # Before 2.12 there is no XLF_KERNEL_64: a 64-bit kernel is entered
        # at its 32-bit entry, as old loaders did; the fake's startup_32
        # then switches to long mode itself, like Linux's.
        for version in (0x020a, 0x020b):
            image = mkbzimage.make(read(guest("boot-guest64-reloc.elf")), version=version)
            self.check_bzimage(image, 0x1000000, "prot32", 64)
        # 2.06 has no pref_address: relocatable kernels go to 1 MiB
        # rounded up to kernel_alignment.
        image = mkbzimage.make(read(guest("boot-guest64.elf")), version=0x0206,
                               relocatable=True, kernel_alignment=0x100000)
        self.check_bzimage(image, 0x100000, "prot32", 64)

    def test_bzimage64_initrd_addr_max(self):
        # The initrd ends at or below initrd_addr_max.
        image = mkbzimage.make(read(guest("boot-guest64-reloc.elf")),
                               initrd_addr_max=0x1ffffff)
        self.check_bzimage(image, 0x1000000, "long", 64, addr_max=0x1ffffff)

    def test_bzimage64_no_initrd_empty_cmdline(self):
        self.check_bzimage(read(guest("boot-bz64.bzImage")), 0x1000000, "long", 64,
                           cmdline="", initrd=False)

    def test_bzimage32(self):
        # An i386 bzImage (protocol 2.10, no xloadflags): 32-bit protected
        # mode at code32_start, paging off, esi = zero page.
        self.check_bzimage(read(guest("boot-bz32.bzImage")), 0x100000, "prot32", 32)

    def test_bzimage32_low_memory(self):
        self.check_bzimage(read(guest("boot-bz32.bzImage")), 0x100000, "prot32", 32,
                           mem=16 * MIB)

    def test_vmlinux64(self):
        for mem in (256 * MIB, 5 << 30):    # the second with RAM above 4 GiB
            at = initrd_at(mem, len(self.initrd_data))
            p = self.boot(guest("boot-guest64.elf"), mem=mem)
            self.assertReport(p, zero_page_report(
                "long", 64, elf_hdr(self.initrd_data, at), mem, "console=ttyS0 x=1",
                self.initrd_data, at))

    def test_vmlinux64_linux64_is_auto(self):
        at = initrd_at(256 * MIB, len(self.initrd_data))
        want = zero_page_report("long", 64, elf_hdr(self.initrd_data, at), 256 * MIB,
                                "console=ttyS0 x=1", self.initrd_data, at)
        for entry in ("auto", "linux64"):
            self.assertReport(self.boot(guest("boot-guest64.elf"), "--boot", entry), want)

    def test_vmlinux32(self):
        at = initrd_at(256 * MIB, len(self.initrd_data))
        p = self.boot(guest("boot-guest32.elf"))
        self.assertReport(p, zero_page_report("prot32", 32, elf_hdr(self.initrd_data, at),
                                              256 * MIB, "console=ttyS0 x=1",
                                              self.initrd_data, at))

    def test_pvh(self):
        for name, bits in (("boot-guest64.elf", 64), ("boot-guest32.elf", 32)):
            for mem in (256 * MIB, 5 << 30):
                at = initrd_at(mem, len(self.initrd_data))
                p = self.boot(guest(name), "--boot", "pvh", mem=mem)
                self.assertReport(p, pvh_report(bits, mem, "console=ttyS0 x=1",
                                                self.initrd_data, at))

    def test_pvh_without_initrd(self):
        p = self.boot(guest("boot-guest64.elf"), "--boot", "pvh", initrd=False,
                      cmdline="root=/dev/vda")
        self.assertReport(p, pvh_report(64, 256 * MIB, "root=/dev/vda", None, 0))

    def test_cmdline_limits(self):
        # 2047 bytes without the NUL for an ELF (Linux's COMMAND_LINE_SIZE
        # - 1); a bzImage's own cmdline_size otherwise.
        longest = "x" * 2047
        at = initrd_at(256 * MIB, len(self.initrd_data))
        p = self.boot(guest("boot-guest64.elf"), cmdline=longest)
        self.assertReport(p, zero_page_report("long", 64, elf_hdr(self.initrd_data, at),
                                              256 * MIB, longest, self.initrd_data, at))
        for kernel, extra in ((guest("boot-guest64.elf"), []),
                              (guest("boot-guest32.elf"), ["--boot", "pvh"])):
            p = self.boot(kernel, *extra, cmdline=longest + "x")
            self.assertEqual((p.returncode, p.stdout, p.stderr), (1, "", (
                "vsrv: --append: the command line is 2048 bytes; "
                "this kernel takes at most 2047\n")))
        image = self.write("short", mkbzimage.make(read(guest("boot-guest64-reloc.elf")),
                                                   cmdline_size=100))
        p = self.boot(image, cmdline="y" * 101)
        self.assertEqual((p.returncode, p.stderr), (1, (
            "vsrv: --append: the command line is 101 bytes; this kernel takes at most 100\n")))
        self.check_bzimage(read(image), 0x1000000, "long", 64, cmdline="y" * 100)

    def test_dry_run(self):
        bz = guest("boot-bz64.bzImage")
        image = read(bz)
        init = struct.unpack_from("<I", image, 0x260)[0]
        syssize = struct.unpack_from("<I", image, 0x1f4)[0]
        at = initrd_at(256 * MIB, len(self.initrd_data))
        p = vsrv("run", "--kernel", bz, "--initrd", self.initrd, "--append", "a b",
                 "--host-quirks", "off", "--cpus", "3", "--dry-run")
        self.assertEqual(p.stdout, (
            "format bzImage\nprotocol 2.15\nsetup_sects 4\n"
            f"syssize {syssize:#x}\nrelocatable 1\nkernel_alignment 0x200000\n"
            f"pref_address 0x1000000\ninit_size {init:#x}\nxloadflags 0x3\n"
            "initrd_addr_max 0x7fffffff\ncmdline_size 2047\n"
            "kernel_version vsrv fake kernel\n"
            # Its 4 setup sectors: the kernel at 2.5 KiB in the file, not
            # at a page as at 0x1000000 in memory: copied.
            f"load 0x1000000 {syssize * 16} mapped 0\n"
            f"kernel 0x1000000-{0x1000000 + init:#x}\n"
            "entry 0x1000200 long linux\n"
            "cmdline 0x20000 3\n"
            # The initrd at a page: its 4 whole pages mapped, the rest
            # copied.
            f"load {at:#x} {len(self.initrd_data)} mapped 16384\n"
            f"initrd {at:#x} {len(self.initrd_data)}\n"
            "zero_page 0x7000\ne820 5\n"
            f"mptable 0x9fc00 3 cpus {16 + 44 + 3 * 20 + 8 + 8 + 18 * 8} bytes\n"
            f"acpi 0xe0000 3 cpus {acpi_bytes(3)} bytes\n"))
        self.assertEqual((p.returncode, p.stderr), (0, ""))
        p = vsrv("run", "--kernel", guest("boot-guest32.elf"), "--boot", "pvh",
                 "--host-quirks", "off", "--dry-run")
        pvh = re.search(r"^(\w+) \w pvh_start$", run("nm", guest("boot-guest32.elf")).stdout,
                        re.M)
        self.assertIsNotNone(pvh)
        self.assertIn(f"\nentry 0x{int(pvh.group(1), 16):x} prot32 pvh\n", p.stdout)
        self.assertIn("\nstart_info 0x6000\nmemmap 5\n", p.stdout)

    def test_mptable(self):
        for cpus in (1, 2, 4, 16):
            p = vsrv("run", "--kernel", guest("mptable-smp.elf"), "--test-device",
                     "--cpus", str(cpus), check=False, timeout=120)
            ioapic = f"{cpus:02x}"
            length = 44 + 20 * cpus + 8 + 8 + 18 * 8
            want = [
                "mpf addr=0009fc00 physptr=0009fc10 length=01 spec=04 features=0000000000",
                f"mpc length={length:04x} spec=04 count={cpus + 2 + 18:04x} lapic=fee00000 "
                'oem="VSRV    VSRV VMM    "']
            want += [f"cpu apic={i:02x} ver=14 flags={3 if i == 0 else 1:02x}"
                     for i in range(cpus)]
            want += ['bus id=00 type="ISA   "',
                     f"ioapic id={ioapic} ver=11 flags=01 addr=fec00000"]
            # ISA IRQ n on IOAPIC pin n: KVM's default GSI routing, which
            # the guest confirms for IRQ0 with the PIT below.
            want += [f"intsrc type=00 flags=0000 bus=00 irq={i:02x} apic={ioapic} pin={i:02x}"
                     for i in range(16)]
            want += ["lintsrc type=03 flags=0000 bus=00 irq=00 apic=00 lint=00",
                     "lintsrc type=01 flags=0000 bus=00 irq=00 apic=ff lint=01",
                     f"processors count={cpus:02x} bsp=01",
                     f"aps expected={(1 << cpus) - 2:08x} started={(1 << cpus) - 2:08x}",
                     "pit pins=00000001 table_pin=00",
                     "result ok"]
            self.assertEqual((p.returncode, p.stdout, p.stderr),
                             (OK, "\n".join(want) + "\n", ""), cpus)

    def test_mptable_every_path(self):
        # Written for every boot path, PVH too (Linux scans for it there),
        # and so are the ACPI tables.
        for args in (["--kernel", guest("boot-bz32.bzImage")],
                     ["--kernel", guest("boot-guest64.elf"), "--boot", "pvh"]):
            p = vsrv("run", *args, "--cpus", "2", "--dry-run")
            self.assertIn("\nmptable 0x9fc00 2 cpus 260 bytes\n"
                          f"acpi 0xe0000 2 cpus {acpi_bytes(2)} bytes\n", p.stdout)

    def test_bad_bzimage(self):
        good = read(guest("boot-bz64.bzImage"))
        elf64 = read(guest("boot-guest64-reloc.elf"))

        def patched(off, fmt, v, base=good):
            b = bytearray(base)
            struct.pack_into("<" + fmt, b, off, v)
            return bytes(b)
        syssize = struct.unpack_from("<I", good, 0x1f4)[0]
        half = len(good) // 2
        cases = [
            ("truncated", good[:half],
             f"truncated: the setup header says {syssize * 16} bytes of kernel follow "
             f"2560 bytes of setup, the file has {half} bytes"),
            ("header-cut", good[:0x230],
             "the setup header ends at 0x26c, past the end of the file"),
            ("magic", patched(0x202, "4s", b"HdrX"),
             'not a bzImage: no "HdrS" setup header at offset 0x202'),
            ("bootflag", patched(0x1fe, "H", 0x1234),
             "not a bzImage: boot_flag is 0x1234, not 0xaa55"),
            ("setup-sects", patched(0x1f1, "B", 200),
             "setup_sects is 200; real-mode code is at most 63 sectors (32 KiB)"),
            ("setup-sects-past-end", patched(0x1f1, "B", 63),
             "truncated: the setup header says "
             f"{syssize * 16} bytes of kernel follow 32768 bytes of setup, "
             f"the file has {len(good)} bytes"),
            ("old", mkbzimage.make(elf64, version=0x0205),
             "boot protocol 2.05 is too old: vsrv enters kernels of protocol 2.06 "
             "(Linux 2.6.22) or later"),
            ("old-2.01", patched(0x206, "H", 0x0201),
             "boot protocol 2.01 is too old: vsrv enters kernels of protocol 2.06 "
             "(Linux 2.6.22) or later"),
            ("short-header", mkbzimage.make(elf64, hdr_end=0x250),
             "the setup header ends at 0x250, before the fields of its protocol version"),
            ("zimage", mkbzimage.make(elf64, loadflags=0),
             "a zImage (LOADED_HIGH clear): only bzImage kernels boot"),
            ("syssize0", patched(0x1f4, "I", 0),
             f"truncated: the setup header says 0 bytes of kernel follow 2560 bytes of setup, "
             f"the file has {len(good)} bytes"),
            ("alignment", mkbzimage.make(elf64, kernel_alignment=0x300000),
             "kernel_alignment 0x300000 is not a power of two"),
        ]
        for name, data, msg in cases:
            path = self.write(name, data)
            p = vsrv("run", "--kernel", path, "--test-device", check=False)
            self.assertEqual((p.returncode, p.stdout, p.stderr), (1, "", f"vsrv: {path}: {msg}\n"),
                             name)

    def test_too_little_memory(self):
        # The kernel alone: init_size from 16 MiB past the end of RAM.
        image = mkbzimage.make(read(guest("boot-guest64-reloc.elf")), init_size=0x1800000)
        path = self.write("big", image)
        p = vsrv("run", "--kernel", path, "--memory", "32M", check=False)
        self.assertEqual((p.returncode, p.stderr), (1, (
            f"vsrv: {path}: the kernel needs guest memory up to 0x2800000 (25165824 bytes from "
            "0x1000000) but RAM below 4 GiB ends at 0x2000000 (raise --memory)\n")))
        # The kernel fits, its initrd does not.
        big = self.write("initrd-big", bytes(15 * MIB))
        for kernel, extra in ((guest("boot-bz32.bzImage"), []),
                              (guest("boot-guest64.elf"), []),
                              (guest("boot-guest64.elf"), ["--boot", "pvh"])):
            p = vsrv("run", "--kernel", kernel, "--initrd", big, "--memory", "16M", *extra,
                     check=False)
            self.assertEqual((p.returncode, p.stderr), (1, (
                f"vsrv: {big}: {15 * MIB} bytes do not fit in guest memory above the kernel "
                "(raise --memory)\n")), kernel)
        # A segment of an ELF beyond RAM.
        p = vsrv("run", "--kernel", guest("boot-guest64-reloc.elf"), "--memory", "16M",
                 check=False)
        self.assertRegex(p.stderr, r"^vsrv: .*boot-guest64-reloc.elf: ELF segment 0 \(\d+ bytes "
                         r"at 0x1000000\) does not fit in guest memory \(raise --memory\)\n$")
        self.assertEqual(p.returncode, 1)

    def test_bad_entry_choice(self):
        bz32 = guest("boot-bz32.bzImage")
        bz64 = guest("boot-bz64.bzImage")
        hello = guest("hello64.elf")
        elf32 = guest("boot-guest32.elf")
        cases = [
            (["--kernel", bz32, "--boot", "linux64"], 1,
             f"vsrv: {bz32}: --boot linux64: this bzImage has no 64-bit entry "
             "(XLF_KERNEL_64 is clear)\n"),
            (["--kernel", bz64, "--boot", "pvh"], 1,
             f"vsrv: {bz64}: --boot pvh: a bzImage has no PVH entry; boot the vmlinux ELF "
             "instead\n"),
            (["--kernel", hello, "--boot", "pvh"], 1,
             f"vsrv: {hello}: --boot pvh: no PVH entry (XEN_ELFNOTE_PHYS32_ENTRY note; "
             "Linux needs CONFIG_PVH)\n"),
            (["--kernel", elf32, "--boot", "linux64"], 1,
             f"vsrv: {elf32}: --boot linux64: a 32-bit (i386) ELF has no 64-bit entry\n"),
            (["--kernel", hello, "--boot", "bios"], 2,
             "vsrv: --boot: 'bios' is not auto, linux64 or pvh\n"),
        ]
        for args, status, msg in cases:
            p = vsrv("run", *args, "--test-device", check=False)
            self.assertEqual((p.returncode, p.stdout, p.stderr), (status, "", msg), args)

    def test_bad_pvh_note(self):
        elf = read(guest("boot-guest64.elf"))
        # The note: namesz 4, descsz 8, type 18, "Xen\0", then at +16 the
        # entry's 8 bytes.
        at = elf.index(struct.pack("<III", 4, 8, 18) + b"Xen\0")
        cases = [
            (struct.pack("<I", 6), "the PVH entry note holds 6 bytes, not 4 or 8"),
            (struct.pack("<I", 0x1000), f"an ELF note at offset {at:#x} runs past its segment"),
        ]
        for descsz, msg in cases:
            b = bytearray(elf)
            b[at + 4:at + 8] = descsz
            path = self.write("note", bytes(b))
            p = vsrv("run", "--kernel", path, "--boot", "pvh", "--test-device", check=False,
                     timeout=60)
            self.assertEqual((p.returncode, p.stderr), (1, f"vsrv: {path}: {msg}\n"), msg)
        b = bytearray(elf)
        b[at + 16:at + 24] = struct.pack("<Q", 1 << 32)
        path = self.write("note", bytes(b))
        p = vsrv("run", "--kernel", path, "--boot", "pvh", "--test-device", check=False,
                 timeout=60)
        self.assertEqual((p.returncode, p.stderr), (1, (
            f"vsrv: {path}: the PVH entry 0x100000000 is not a 32-bit address\n")))
        # Inside the file but outside every loaded segment.
        b[at + 16:at + 24] = struct.pack("<Q", 0x900000)
        path = self.write("note", bytes(b))
        p = vsrv("run", "--kernel", path, "--boot", "pvh", "--test-device", check=False,
                 timeout=60)
        self.assertEqual((p.returncode, p.stderr), (1, (
            f"vsrv: {path}: PVH entry 0x900000 is not inside a loaded segment\n")))


def debian_kernel():
    """Debian's generic amd64 kernel image: its vmlinuz from the package
    (downloaded with apt-get into CACHE when missing, never installed)
    and the vmlinux decompressed from it."""
    os.makedirs(CACHE, exist_ok=True)
    found = sorted(glob.glob(os.path.join(CACHE, "vmlinuz-6.1.0-*-amd64")))
    if not found:
        dep = run("apt-cache", "depends", "linux-image-amd64", check=False).stdout
        m = re.search(r"Depends: (linux-image-6\.1\.0-\d+-amd64)\b", dep)
        if not m and os.geteuid() == 0:
            run("apt-get", "update", "-qq", check=False, timeout=600)
            dep = run("apt-cache", "depends", "linux-image-amd64", check=False).stdout
            m = re.search(r"Depends: (linux-image-6\.1\.0-\d+-amd64)\b", dep)
        if not m:
            raise AssertionError("no linux-image-6.1.0-*-amd64 package known to apt "
                                 "(run apt-get update)")
        tmp = os.path.join(CACHE, "download")
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        subprocess.run(["apt-get", "download", m.group(1)], cwd=tmp, check=True,
                       capture_output=True, timeout=600)
        deb, = glob.glob(os.path.join(tmp, "*.deb"))
        # Only the kernel: the package's modules are not needed.
        subprocess.run(f"dpkg-deb --fsys-tarfile '{deb}' | tar -x -C '{tmp}' "
                       "--wildcards './boot/vmlinuz-*'", shell=True, check=True)
        vmlinuz, = glob.glob(os.path.join(tmp, "boot", "vmlinuz-*"))
        shutil.move(vmlinuz, os.path.join(CACHE, os.path.basename(vmlinuz)))
        shutil.rmtree(tmp)
        found = sorted(glob.glob(os.path.join(CACHE, "vmlinuz-6.1.0-*-amd64")))
    vmlinuz = found[-1]
    vmlinux = vmlinuz.replace("vmlinuz-", "vmlinux-")
    if not os.path.exists(vmlinux):
        data = read(vmlinuz)
        setup = (data[0x1f1] or 4) * 512 + 512
        off, length = struct.unpack_from("<II", data, 0x248)
        payload = data[setup + off:setup + off + length]
        if payload[:6] != b"\xfd7zXZ\0":
            raise AssertionError(f"{vmlinuz}: payload is not xz ({payload[:6].hex()})")
        out = lzma.LZMADecompressor().decompress(payload)
        with open(vmlinux + ".tmp", "wb") as f:
            f.write(out)
        os.rename(vmlinux + ".tmp", vmlinux)
    return vmlinuz, vmlinux


def dry_run(*args):
    p = vsrv("run", "--host-quirks", "off", "--dry-run", *args)
    return dict(line.split(" ", 1) for line in p.stdout.splitlines())


class RealKernelTest(TmpDirTest):
    """The loaders against a real kernel's files, read independently."""

    @classmethod
    def setUpClass(cls):
        cls.vmlinuz, cls.vmlinux = debian_kernel()

    def test_bzimage_header(self):
        data = read(self.vmlinuz)

        def u8(off):
            return data[off]

        def u16(off):
            return struct.unpack_from("<H", data, off)[0]

        def u32(off):
            return struct.unpack_from("<I", data, off)[0]

        def u64(off):
            return struct.unpack_from("<Q", data, off)[0]
        self.assertEqual(data[0x202:0x206], b"HdrS")
        version = u16(0x206)
        self.assertGreaterEqual(version, 0x020c)
        kv = data[u16(0x20e) + 0x200:].split(b"\0", 1)[0].decode()
        d = dry_run("--kernel", self.vmlinuz)
        init = u32(0x260)
        load = (u64(0x258) + u32(0x230) - 1) & ~(u32(0x230) - 1)
        setup, ksize = (u8(0x1f1) + 1) * 512, u32(0x1f4) * 16
        # Its whole pages mapped where the file offset agrees with the
        # address (Linux pads its setup to pages), the rest copied.
        mapped = 0 if (setup - load) % 4096 else (ksize - (-load % 4096)) // 4096 * 4096
        self.assertEqual(d, {
            "format": "bzImage",
            "protocol": f"{version >> 8}.{version & 0xff:02d}",
            "setup_sects": str(u8(0x1f1)),
            "syssize": hex(u32(0x1f4)),
            "relocatable": str(u8(0x234)),
            "kernel_alignment": hex(u32(0x230)),
            "pref_address": hex(u64(0x258)),
            "init_size": hex(init),
            "xloadflags": hex(u16(0x236)),
            "initrd_addr_max": hex(u32(0x22c)),
            "cmdline_size": str(u32(0x238)),
            "kernel_version": kv,
            "load": f"{load:#x} {ksize} mapped {mapped}",
            "kernel": f"{load:#x}-{load + init:#x}",
            "entry": f"{load + 0x200:#x} long linux",
            "cmdline": "0x20000 0",
            "zero_page": "0x7000",
            "e820": "5",
            "mptable": "0x9fc00 1 cpus 240 bytes",
            "acpi": f"0xe0000 1 cpus {acpi_bytes(1)} bytes",
        })
        # file(1) reads the version string through its own magic.
        f = run("file", "-b", self.vmlinuz).stdout
        self.assertIn(f"Linux kernel x86 boot executable bzImage, version {kv}, ", f)
        # The file holds the setup and syssize * 16 bytes of kernel
        # (a signed image has its signature after them).
        self.assertGreaterEqual(len(data), (u8(0x1f1) + 1) * 512 + u32(0x1f4) * 16)
        # Too little memory for init_size: one line naming the file.
        p = vsrv("run", "--kernel", self.vmlinuz, "--memory", "64M", check=False)
        self.assertEqual((p.returncode, p.stderr), (1, (
            f"vsrv: {self.vmlinuz}: the kernel needs guest memory up to {load + init:#x} "
            f"({init} bytes from {load:#x}) but RAM below 4 GiB ends at 0x4000000 "
            "(raise --memory)\n")))

    def test_vmlinux_entries(self):
        h = run("readelf", "-hlW", self.vmlinux).stdout
        entry = int(re.search(r"Entry point address:\s+(0x[0-9a-f]+)", h).group(1), 16)
        loads = [(int(m.group(1), 16), int(m.group(2), 16))
                 for m in re.finditer(r"^\s+LOAD\s+\S+\s+\S+\s+(0x[0-9a-f]+)\s+\S+\s+(0x[0-9a-f]+)",
                                      h, re.M)]
        lo = min(a for a, _ in loads)
        hi = max(a + s for a, s in loads)
        d = dry_run("--kernel", self.vmlinux)
        self.assertEqual((d["format"], d["kernel"], d["entry"]),
                         ("vmlinux", f"{lo:#x}-{hi:#x}", f"{entry:#x} long linux"))
        # readelf -n: the Xen note of type 0x12, its 8 bytes little-endian.
        n = run("readelf", "-nW", self.vmlinux).stdout
        m = re.search(r"Xen\s+0x00000008\s+Unknown note type: \(0x00000012\)\s+"
                      r"description data: ((?:[0-9a-f]{2} ){8})", n)
        self.assertIsNotNone(m, n)
        pvh = int.from_bytes(bytes.fromhex(m.group(1).replace(" ", "")), "little")
        d = dry_run("--kernel", self.vmlinux, "--boot", "pvh", "--cpus", "2")
        self.assertEqual((d["entry"], d["start_info"], d["memmap"], d["mptable"], d["acpi"]),
                         (f"{pvh:#x} prot32 pvh", "0x6000", "5", "0x9fc00 2 cpus 260 bytes",
                          f"0xe0000 2 cpus {acpi_bytes(2)} bytes"))


if __name__ == "__main__":
    main()
