"""vsrv disk convert, commit, rebase, compact and resize from the command
line, with qemu-img and qemu-io as the peers that read and write the same
files."""
import json
import os
import signal
import subprocess

from test_serve import ServeTest
from vsrvtest import VSRV, main, pattern, run, vsrv, vsrv_json

MiB = 1 << 20


class OpsTest(ServeTest):
    def qemu_write(self, disk, off, length, byte):
        """qemu-io writing straight into a plain (fixed or dynamic) VHD."""
        run("qemu-io", "-f", "vpc", "-c", f"write -P {byte} {off} {length}", disk)

    def nbd_write(self, disk, off, length, byte):
        """Any VHD, chains included, written through vsrv disk serve."""
        s = self.serve(disk)
        run("qemu-io", "-f", "raw", "-c", f"write -P {byte} {off} {length}", s.uri)
        self.assertEqual(s.stop(), 0)
        self.servers.remove(s)

    def contents(self, disk):
        out = self.p("contents.raw")
        if os.path.exists(out):
            os.unlink(out)
        vsrv("disk", "convert", "--to", "raw", disk, out)
        with open(out, "rb") as f:
            return f.read()

    def make_raw(self, name, size, pieces):
        path = self.p(name)
        with open(path, "wb") as f:
            f.truncate(size)
            for off, data in pieces:
                f.seek(off)
                f.write(data)
        return path

    def test_convert_raw_dynamic_raw(self):
        size = 64 * MiB
        raw = self.make_raw("src.raw", size, [
            (0, pattern("a", 3 * MiB)),              # blocks 0, 1
            (10 * MiB, bytes(2 * MiB)),              # zeros written out
            (20 * MiB + 512, pattern("b", 512)),     # one sector of block 10
            (size - 4096, pattern("c", 4096)),       # the last block
        ])
        vsrv("disk", "convert", raw, self.p("d.vhd"))
        run("qemu-img", "compare", "-f", "raw", "-F", "vpc", raw, self.p("d.vhd"))
        info = vsrv_json("disk", "info", self.p("d.vhd"))
        self.assertEqual(info["virtual_size"], size)
        self.assertEqual(info["allocated_blocks"], 4)
        vsrv("disk", "convert", self.p("d.vhd"), self.p("back.raw"))
        with open(raw, "rb") as a, open(self.p("back.raw"), "rb") as b:
            self.assertEqual(a.read(), b.read())
        # Sparse: only the data is allocated (3 MiB + 2 x 4 KiB grains).
        self.assertLessEqual(os.stat(self.p("back.raw")).st_blocks * 512,
                             3 * MiB + 8192)

    def test_convert_fixed_and_qemu_written(self):
        size = 32 * MiB
        raw = self.make_raw("src.raw", size, [(5 * MiB, pattern("f", MiB))])
        vsrv("disk", "convert", "--to", "fixed", raw, self.p("f.vhd"))
        self.assertEqual(os.path.getsize(self.p("f.vhd")), size + 512)
        run("qemu-img", "compare", "-f", "raw", "-F", "vpc", raw, self.p("f.vhd"))
        # qemu-img's own dynamic VHD, converted by vsrv.
        run("qemu-img", "convert", "-f", "raw", "-O", "vpc", "-o",
            "subformat=dynamic,force_size=on", raw, self.p("q.vhd"))
        self.assertEqual(self.contents(self.p("q.vhd")), open(raw, "rb").read())
        # qemu-io writing into a vsrv dynamic disk; vsrv reads it back.
        vsrv("disk", "create", "--size", "32M", self.p("w.vhd"))
        self.qemu_write(self.p("w.vhd"), 3 * MiB + 512, 1536, 0x5a)
        data = self.contents(self.p("w.vhd"))
        self.assertEqual(data[3 * MiB + 512:3 * MiB + 2048], b"\x5a" * 1536)
        self.assertEqual(data.count(0), size - 1536)

    def test_convert_flattens_chain_and_progress(self):
        base, top = self.p("base.vhd"), self.p("top.vhd")
        vsrv("disk", "create", "--size", "16M", base)
        self.qemu_write(base, 0, 4 * MiB, 0x11)
        vsrv("disk", "create", "--parent", base, top)
        self.nbd_write(top, 512, 512, 0x22)
        self.nbd_write(top, 8 * MiB, 4096, 0x33)
        p = vsrv("disk", "convert", "--progress", top, self.p("flat.vhd"))
        self.assertTrue(p.stderr.endswith("    (100%)\n"), p.stderr)
        expect = bytearray(b"\x11" * 4 * MiB + bytes(12 * MiB))
        expect[512:1024] = b"\x22" * 512
        expect[8 * MiB:8 * MiB + 4096] = b"\x33" * 4096
        flat = vsrv_json("disk", "info", self.p("flat.vhd"))
        self.assertEqual(flat["type"], "dynamic")
        self.assertEqual(flat["parents"], [])
        self.assertEqual(self.contents(self.p("flat.vhd")), bytes(expect))
        self.assertEqual(self.contents(top), bytes(expect))

    def test_commit(self):
        base, kid, sib = self.p("base.vhd"), self.p("kid.vhd"), self.p("sib.vhd")
        vsrv("disk", "create", "--size", "8M", base)
        self.qemu_write(base, 0, 2 * MiB, 0x01)
        vsrv("disk", "create", "--parent", base, kid)
        self.nbd_write(kid, 4096, 1024, 0x02)
        self.nbd_write(kid, 6 * MiB, 512, 0x03)
        want = self.contents(kid)
        vsrv("disk", "create", "--parent", base, sib)
        p = vsrv("disk", "commit", kid, check=False)
        self.assertEqual(p.returncode, 1)
        self.assertEqual(p.stderr,
                         f"vsrv: {kid}: {base} has 1 other differencing disk (sib.vhd) "
                         "that committing would invalidate; use --force\n")
        self.assertTrue(os.path.exists(kid))
        p = vsrv("disk", "commit", "--force", kid)
        self.assertEqual(p.stderr,
                         f"vsrv: warning: {kid}: committing into {base}; any other "
                         f"differencing disk of {base} becomes invalid: sib.vhd\n")
        self.assertFalse(os.path.exists(kid))
        self.assertEqual(self.contents(base), want)
        # The sibling's parent changed under it: opening it warns.
        p = vsrv("disk", "info", sib)
        self.assertIn(f"vsrv: warning: {sib}: parent {base} was modified after this disk was made",
                      p.stderr)
        p = vsrv("disk", "commit", base, check=False)
        self.assertEqual(p.stderr, f"vsrv: {base}: not a differencing disk\n")

    def test_rebase(self):
        a, b, kid = self.p("a.vhd"), self.p("b.vhd"), self.p("kid.vhd")
        for d in (a, b):
            vsrv("disk", "create", "--size", "8M", d)
        self.qemu_write(a, 0, MiB, 0x0a)
        self.qemu_write(b, 0, MiB, 0x0a)
        self.qemu_write(b, 4096, 512, 0x0b)        # b differs here
        self.qemu_write(b, 5 * MiB, 512, 0x0c)     # and where a is empty
        vsrv("disk", "create", "--parent", a, kid)
        self.nbd_write(kid, 2 * MiB, 512, 0x0d)
        want = self.contents(kid)
        vsrv("disk", "rebase", kid, b)
        info = vsrv_json("disk", "info", kid)
        self.assertEqual(info["parents"][0]["file"], b)
        self.assertEqual(info["parent_uuid"], vsrv_json("disk", "info", b)["uuid"])
        locs = {l["code"]: l["path"] for l in info["parent_locators"]}
        self.assertEqual(locs["W2ru"], ".\\b.vhd")
        self.assertEqual(self.contents(kid), want)

    def test_compact(self):
        d = self.p("c.vhd")
        vsrv("disk", "create", "--size", "16M", d)
        self.qemu_write(d, 0, 8 * MiB, 0x44)
        self.qemu_write(d, 2 * MiB, 4 * MiB, 0x00)   # blocks 1 and 2 now zeros
        before = os.path.getsize(d)
        want = self.contents(d)
        p = vsrv("disk", "compact", d)
        after = os.path.getsize(d)
        self.assertEqual(p.stdout, f"{d}: {before - after} bytes freed\n")
        self.assertGreaterEqual(before - after, 4 * MiB)
        self.assertEqual(vsrv_json("disk", "info", d)["allocated_blocks"], 2)
        self.assertEqual(self.contents(d), want)
        run("qemu-img", "compare", "-f", "raw", "-F", "vpc", self.p("contents.raw"), d)

    def test_resize(self):
        d = self.p("r.vhd")
        vsrv("disk", "create", "--size", "64M", d)
        self.qemu_write(d, 60 * MiB, MiB, 0x77)
        vsrv("disk", "resize", d, "10G")
        q = json.loads(run("qemu-img", "info", "--output=json", d).stdout)
        self.assertEqual(q["virtual-size"], 10 << 30)
        self.qemu_write(d, (10 << 30) - 512, 512, 0x78)
        vsrv("disk", "resize", d, "+1G")
        self.assertEqual(vsrv_json("disk", "info", d)["virtual_size"], 11 << 30)
        p = vsrv("disk", "resize", d, "-10G", check=False)
        self.assertEqual(p.returncode, 1)
        self.assertEqual(p.stderr, f"vsrv: {d}: cannot shrink: block 5119 (offset 10735321088) "
                                   "past the new size is allocated; compact or zero it first\n")
        vsrv("disk", "resize", d, "-1G")
        data = self.contents(d)
        self.assertEqual(len(data), 10 << 30)
        self.assertEqual(data[60 * MiB:61 * MiB], b"\x77" * MiB)
        self.assertEqual(data[-512:], b"\x78" * 512)

    def test_interrupt_cancels_cleanly(self):
        """SIGINT mid-conversion: one line, exit 1, no output file left."""
        raw = self.make_raw("big.raw", 256 * MiB,
                            [(i * MiB, os.urandom(MiB)) for i in range(0, 256, 2)])
        out = self.p("big.vhd")
        proc = subprocess.Popen([VSRV, "disk", "convert", "--progress", "--sync", raw, out],
                                stderr=subprocess.PIPE, text=True)
        first = proc.stderr.readline()
        self.assertEqual(first, "    (  0%)\n")
        proc.send_signal(signal.SIGINT)
        rest = proc.stderr.read()
        self.assertEqual(proc.wait(60), 1)
        self.assertTrue(rest.endswith(f"vsrv: {out}: conversion cancelled\n"), rest)
        self.assertFalse(os.path.exists(out))

    def test_bad_input(self):
        raw = self.make_raw("x.raw", MiB, [])
        vsrv("disk", "create", "--size", "1M", self.p("exists.vhd"))
        cases = [
            (["convert", self.p("missing.raw"), self.p("o.vhd")],
             f"vsrv: {self.p('missing.raw')}: No such file or directory\n", 1),
            (["convert", raw, self.p("exists.vhd")],
             f"vsrv: {self.p('exists.vhd')}: already exists\n", 1),
            (["convert", "--to", "qcow2", raw, self.p("o.vhd")],
             "vsrv: --to: 'qcow2' is not raw, fixed or dynamic\n", 2),
            (["resize", self.p("exists.vhd"), "lots"],
             "vsrv: SIZE: 'lots' is not a size (a number with an optional K, M, G or T suffix)\n", 2),
            (["resize", self.p("exists.vhd"), "3T"],
             f"vsrv: {self.p('exists.vhd')}: size 3298534883328 exceeds the VHD limit of 2040 GiB\n", 1),
            (["compact", raw],
             f'vsrv: {raw}: not a VHD file (no "conectix" footer at its end or start)\n', 1),
        ]
        for args, msg, status in cases:
            p = vsrv("disk", *args, check=False)
            self.assertEqual((p.returncode, p.stderr), (status, msg), args)
        self.assertFalse(os.path.exists(self.p("o.vhd")))


if __name__ == "__main__":
    main()
