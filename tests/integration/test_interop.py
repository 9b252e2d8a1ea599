"""Byte-for-byte interoperability with qemu-img and libvhdi (vhdimount).

  (a) disks vsrv writes, qemu-img reads;
  (b) differencing chains vsrv writes, libvhdi's vhdimount reads (qemu
      reads a child as if it had no parent, so it is no judge there);
  (c) disks qemu-img creates and qemu-io writes, vsrv reads.

Every expectation is a Python model built from the writes themselves
(vhdmodel.vhdpattern mirrors vhdtool's pattern), never vsrv's own output.

How vhdimount (libvhdi 20210425) finds a parent: not through the locators
but through the parent *name* in the dynamic header.  It drops everything
up to the name's last backslash and, when the image path it was given has a
directory part, joins the rest to that directory; otherwise it opens the
rest as it is.  vsrv stores the parent's absolute path as the name (as
Hyper-V does, but with slashes), so vhdimount is run from the chain's
directory with the top's bare file name: the absolute name is then used as
is.  It exposes one file per layer, vhdi1 the base ... vhdiN the top."""
import json
import os
import shutil
import subprocess
import time

from vhdmodel import VHDTOOL, Model, vhdpattern, vhdtool
from vsrvtest import TmpDirTest, main, need, run, vsrv, vsrv_json

K, M, G = 1 << 10, 1 << 20, 1 << 30


def qemu_size(path):
    return json.loads(run("qemu-img", "info", "--output=json", path).stdout)["virtual-size"]


class VsrvWritesQemuReads(TmpDirTest):
    """(a) vsrv's fixed and dynamic disks, read by qemu-img."""

    def fill(self, f, size, block):
        m = Model(size)
        m.write(f, 0, 4096, 1)
        m.write(f, 512 * 7, 1000, 2)                # odd bytes in a sector
        m.write(f, block - 512, 1024, 3)            # across a block boundary
        m.write(f, 3 * block + 12345, 70000, 4)     # unaligned both ends
        m.write(f, size // 2, 2 * block + 512, 5)   # several whole blocks
        m.zero(f, size // 2 + 4096, block)          # zeros over data
        m.zero(f, 5 * block, 8192)                  # zeros where nothing was
        m.write(f, size - 512, 512, 6)              # the last sector
        return m

    def check(self, f, m, qemu_virtual_size):
        model = self.p("model.raw")
        m.save(model)
        run("qemu-img", "compare", "-f", "raw", "-F", "vpc", model, f)
        self.assertEqual(qemu_size(f), qemu_virtual_size)
        # vsrv reads back the same, through its own reader.
        vhdtool("dump", f, self.p("dump.raw"))
        with open(self.p("dump.raw"), "rb") as d:
            self.assertEqual(d.read(), m.bytes())

    def test_dynamic(self):
        need("qemu-img")
        for size, block in ((8 * M, 512 * K), (100 * M, 2 * M), (17 * M + 512, 4 * K)):
            f = self.p(f"d{size}.vhd")
            vsrv("disk", "create", "--size", str(size), "--block-size", str(block), f)
            self.check(f, self.fill(f, size, block), size)
            os.unlink(f)

    def test_fixed(self):
        need("qemu-img")
        size = 24 * M
        f = self.p("f.vhd")
        vsrv("disk", "create", "--type", "fixed", "--size", str(size), f)
        # qemu 7.2 counts a fixed disk's footer into its size (see
        # test_cli_create); its reads of the data are exact.
        self.check(f, self.fill(f, size, 2 * M), size + 512)


class VhdimountTest(TmpDirTest):
    """(b) differencing chains vsrv writes, read by libvhdi."""

    def mount_read(self, top, layers):
        """Mounts the chain whose top is `top` and returns its bytes."""
        need("vhdimount")
        mnt = self.p("mnt")
        os.makedirs(mnt, exist_ok=True)
        p = subprocess.run(["vhdimount", os.path.basename(top), mnt],
                           cwd=os.path.dirname(top), capture_output=True,
                           text=True, timeout=60)
        if p.returncode != 0:
            raise AssertionError(f"vhdimount exited {p.returncode}: {p.stdout}{p.stderr}")
        try:
            path = os.path.join(mnt, f"vhdi{layers}")
            for _ in range(100):
                if os.path.exists(path):
                    break
                time.sleep(0.1)
            self.assertEqual(sorted(os.listdir(mnt)),
                             [f"vhdi{i}" for i in range(1, layers + 1)])
            with open(path, "rb") as f:
                return f.read()
        finally:
            if shutil.which("fusermount3"):
                run("fusermount3", "-u", mnt)
            else:
                run("umount", mnt)

    def vhdiinfo(self, f):
        need("vhdiinfo")
        out = run("vhdiinfo", f).stdout
        fields = {}
        for line in out.splitlines():
            if ":" in line and line.startswith("\t"):
                k, v = line.strip().split(":", 1)
                fields[k.strip()] = v.strip()
        return fields

    def chain(self, size, block, writes):
        """base (dynamic), child, grandchild; writes[i] is a list of
        (offset, length, seed) for layer i.  Returns the layers' models."""
        names = [self.p("base.vhd"), self.p("child.vhd"), self.p("grandchild.vhd")]
        vsrv("disk", "create", "--size", str(size), "--block-size", str(block), names[0])
        models = []
        for i, name in enumerate(names):
            if i:
                vsrv("disk", "create", "--parent", names[i - 1], "--block-size",
                     str(block), name)
            m = Model(size, models[-1] if models else None)
            for off, length, seed in writes[i]:
                if seed is None:
                    m.zero(name, off, length)
                else:
                    m.write(name, off, length, seed)
            models.append(m)
        return names, models

    def test_chain_read_by_vhdimount(self):
        size, block = 8 * M, 512 * K
        # Whole 4 KiB groups of sectors: each bitmap byte is 0x00 or 0xff,
        # but blocks are partly set, so reads pass through to the parent
        # inside a block, at every depth.
        writes = [
            [(0, 3 * M, 1), (5 * M, 512 * K, 2), (size - 4 * K, 4 * K, 3)],
            [(4 * K, 4 * K, 11), (block + 12 * K, 20 * K, 12),
             (2 * M - 8 * K, 16 * K, 13), (4 * M, 4 * K, 14), (6 * M, 8 * K, None)],
            [(8 * K, 4 * K, 21), (block + 16 * K, 4 * K, 22), (4 * M + 8 * K, 4 * K, 23),
             (5 * M + 256 * K, 12 * K, None), (size - 4 * K, 4 * K, 24)],
        ]
        names, models = self.chain(size, block, writes)
        for depth, (name, m) in enumerate(zip(names, models)):
            got = self.mount_read(name, depth + 1)
            self.assertEqual(len(got), size)
            self.assertTrue(got == m.bytes(),
                            f"{os.path.basename(name)}: vhdimount differs from the "
                            f"model at {self.first_diff(got, m.bytes())}")
            vhdtool("dump", name, self.p("dump.raw"))
            with open(self.p("dump.raw"), "rb") as d:
                self.assertEqual(d.read(), m.bytes())
        info = self.vhdiinfo(names[2])
        self.assertEqual(info["Disk type"], "Differential")
        self.assertEqual(info["Media size"], f"8.0 MiB ({size} bytes)")
        self.assertEqual(info["Parent filename"], os.path.realpath(names[1]))
        ours = vsrv_json("disk", "info", names[2])
        self.assertEqual(info["Identifier"], ours["uuid"])
        self.assertEqual(info["Parent identifier"], ours["parent_uuid"])
        self.assertEqual(self.vhdiinfo(names[0])["Disk type"], "Dynamic")

    def test_single_sectors(self):
        """Single sectors and odd byte ranges set bitmap bits one at a time.
        vsrv must read them exactly.  libvhdi 20210425 misreads a bitmap
        byte that is only partly set (after the first set bit it reads the
        rest of that byte's eight sectors from the child, even where the
        bits are clear), so vhdimount is held to the model only on sectors
        whose 4 KiB group is wholly set or wholly clear in every layer."""
        size, block = 4 * M, 64 * K
        writes = [
            [(0, 2 * M, 1), (3 * M, 64 * K, 2)],
            [(512, 512, 11), (block + 7 * 512, 1000, 12), (2 * block + 300, 5000, 13),
             (3 * M + 512 * 3, 512 * 9, 14), (size - 512, 512, 15)],
            [(1024, 512, 21), (block + 8 * 512, 4096, 22), (3 * M + 4 * K, 3 * 512, None),
             (size - 2048, 700, 23)],
        ]
        names, models = self.chain(size, block, writes)
        top = models[2]
        vhdtool("dump", names[2], self.p("dump.raw"))
        with open(self.p("dump.raw"), "rb") as d:
            self.assertEqual(d.read(), top.bytes())
        partial = set()
        for layer in writes[1:]:
            for off, length, _ in layer:
                first, last = off // 512, (off + length - 1) // 512
                for g in range(first // 8, last // 8 + 1):
                    s0, s1 = max(first, g * 8), min(last, g * 8 + 7)
                    if s1 - s0 + 1 < 8:
                        partial.add(g)
        got = self.mount_read(names[2], 3)
        step = 4096
        for g in range(size // step):
            if g not in partial:
                self.assertEqual(got[g * step:(g + 1) * step],
                                 top.get(g * step, step), f"group {g}")
        self.assertGreater(size // step - len(partial), 1000)

    @staticmethod
    def first_diff(a, b):
        for i in range(min(len(a), len(b))):
            if a[i] != b[i]:
                return i
        return min(len(a), len(b))


class QemuWritesVsrvReads(TmpDirTest):
    """(c) disks qemu-img creates and qemu-io fills, read by vsrv."""

    def one(self, sub, size_arg, force):
        f = self.p(f"q-{sub}-{size_arg}-{force}.vhd")
        run("qemu-img", "create", "-q", "-f", "vpc", "-o",
            f"subformat={sub},force_size={force}", f, size_arg)
        qsize = qemu_size(f)
        ours = vsrv_json("disk", "info", f)
        # Without force_size, qemu ("qemu" creator) rounds the size up to
        # its CHS geometry and stores that as current_size; with it
        # ("qem2") the size is as typed.  qemu counts a fixed disk's footer.
        size = qsize - 512 if sub == "fixed" else qsize
        self.assertEqual(ours["virtual_size"], size, f)
        self.assertEqual(ours["current_size"], size, f)
        self.assertEqual(ours["creator"], "qem2" if force == "on" else "qemu")
        self.assertEqual(ours["type"], sub)
        m = Model(size)
        for off, length in ((0, 4096), (size // 3 // 512 * 512, 64 * K + 512),
                            (size // 2 // 512 * 512 + 512, 3 * M if size > 16 * M else 8 * K),
                            (size - 512, 512)):
            run("qemu-io", "-f", "vpc", "-c", f"write -P 0x5a {off} {length}", f)
            m.put(off, b"\x5a" * length)
        dump, conv = self.p("dump.raw"), self.p("conv.raw")
        vhdtool("dump", f, dump)
        run("qemu-img", "convert", "-f", "vpc", "-O", "raw", f, conv)
        # Its info counts a fixed disk's footer, its convert does not.
        self.assertEqual(os.path.getsize(conv), size)
        self.assertEqual(os.path.getsize(dump), size)
        run("qemu-img", "compare", "-f", "raw", "-F", "raw", dump, conv)
        m.save(self.p("model.raw"))
        run("qemu-img", "compare", "-f", "raw", "-F", "raw", self.p("model.raw"), dump)
        for p in (f, dump, conv, self.p("model.raw")):
            os.unlink(p)

    def test_dynamic(self):
        need("qemu-img", "qemu-io")
        for size in ("1M", "100M", "1000M", "10G"):
            for force in ("off", "on"):
                with self.subTest(size=size, force_size=force):
                    self.one("dynamic", size, force)

    def test_fixed(self):
        need("qemu-img", "qemu-io")
        # Not 10G: a fixed disk is read whole, and 10 GiB through the
        # sanitizer build takes minutes.
        for size in ("1M", "100M", "1000M"):
            for force in ("off", "on"):
                with self.subTest(size=size, force_size=force):
                    self.one("fixed", size, force)

    def test_pattern_matches_vhdtool(self):
        """The Python mirror of vhdtool's pattern, checked once directly."""
        f = self.p("p.vhd")
        vsrv("disk", "create", "--size", "1M", f)
        vhdtool("write", f, 1000, 3000, 42)
        got = subprocess.run([VHDTOOL, "read", f, "1000", "3000"], check=True,
                             capture_output=True).stdout
        self.assertEqual(got, vhdpattern(42, 3000))


if __name__ == "__main__":
    main()
