"""vsrv disk check: its output lines, its exit statuses, repair, and its
speed on the largest dynamic disk (measured and printed, not asserted)."""
import json
import os
import struct
import time

from vsrvtest import TmpDirTest, main, vsrv

CLEAN, ERROR, USAGE, CORRUPT, REPAIRED = 0, 1, 2, 3, 4


def footer_sum(b):
    """The footer checksum: the one's complement of the byte sum, the
    checksum field (bytes 64-67) counted as zero."""
    return ~(sum(b[:64]) + sum(b[68:512])) & 0xffffffff


class CheckTest(TmpDirTest):
    def check(self, *args, status):
        p = vsrv("disk", "check", *args, check=False)
        self.assertEqual(p.returncode, status, p.stdout + p.stderr)
        return p

    def dynamic(self, name, size="64M", block="2M"):
        f = self.p(name)
        vsrv("disk", "create", "--size", size, "--block-size", block, f)
        return f

    def test_clean_disks(self):
        d = self.dynamic("d.vhd")
        vsrv("disk", "create", "--type", "fixed", "--size", "1M", self.p("f.vhd"))
        vsrv("disk", "create", "--parent", d, self.p("c.vhd"))
        for f in (d, self.p("f.vhd"), self.p("c.vhd")):
            p = self.check(f, status=CLEAN)
            self.assertEqual(p.stdout, f"{f}: clean\n")
            self.assertEqual(p.stderr, "")

    def test_footer_checksum_repaired_from_copy(self):
        f = self.dynamic("d.vhd")
        size = os.path.getsize(f)
        with open(f, "r+b") as fh:
            fh.seek(size - 512)
            good = fh.read(512)
            fh.seek(size - 512 + 64)
            fh.write(b"\0")
        stored = (struct.unpack(">I", good[64:68])[0]) & 0x00ffffff
        want = (f"{f}: the footer at the end is damaged (checksum 0x{stored:08x}, "
                f"computed 0x{footer_sum(good):08x}); using the copy at offset 0")
        p = self.check(f, status=CORRUPT)
        self.assertEqual(p.stdout, f"{want}\n"
                         f"{f}: 1 problem, corrupt; run vsrv disk check --repair\n")
        p = self.check("--repair", f, status=REPAIRED)
        self.assertEqual(p.stdout,
                         f"{want}; repaired: footer written at offset {size - 512}, "
                         f"file now {size} bytes\n{f}: 1 problem, 1 repaired\n")
        with open(f, "rb") as fh:
            fh.seek(size - 512)
            self.assertEqual(fh.read(), good)
        self.check(f, status=CLEAN)

    def test_leaked_tail_truncated(self):
        f = self.dynamic("d.vhd")
        size = os.path.getsize(f)
        with open(f, "r+b") as fh:
            fh.seek(size - 512)
            footer = fh.read(512)
            fh.seek(size - 512)
            fh.write(b"x" * 8192 + footer)
        p = self.check("--json", f, status=CORRUPT)
        j = json.loads(p.stdout)
        self.assertEqual(j["result"], "corrupt")
        self.assertEqual(j["leaked_bytes"], 8192)
        self.assertEqual(j["problems"], [{
            "message": f"{f}: 8192 bytes leaked after the last structure in use "
                       f"(offset {size - 512} to {size - 512 + 8192})",
            "repaired": False}])
        p = self.check("--repair", "--json", f, status=REPAIRED)
        j = json.loads(p.stdout)
        self.assertEqual((j["result"], j["problems_found"], j["problems_repaired"]),
                         ("repaired", 1, 1))
        self.assertTrue(j["problems"][0]["repaired"])
        self.assertEqual(os.path.getsize(f), size)
        self.assertEqual(json.loads(self.check("--json", f, status=CLEAN).stdout),
                         {"file": f, "result": "clean", "problems_found": 0,
                          "problems_repaired": 0, "leaked_bytes": 0,
                          "problems": [], "warnings": []})

    def test_overlap_stays_corrupt(self):
        f = self.dynamic("d.vhd", size="8M", block="64K")
        # Two entries naming one block: which one is right is unknowable.
        with open(f, "r+b") as fh:
            fh.seek(2048)
            footer = fh.read(512)
            fh.seek(1536)
            fh.write(struct.pack(">II", 8, 8))
            fh.seek(4096 + 512 + (64 << 10))
            fh.write(footer)
        p = self.check("--repair", f, status=CORRUPT)
        self.assertEqual(p.stdout,
                         f"{f}: BAT entries 0 and 1 overlap (blocks at offsets 4096 and 4096)\n"
                         f"{f}: 1 problem, 0 repaired, corrupt\n")

    def test_bat_entry_past_end_dropped(self):
        f = self.dynamic("d.vhd", size="8M", block="64K")
        size = os.path.getsize(f)
        with open(f, "r+b") as fh:
            fh.seek(1536 + 4 * 7)
            fh.write(struct.pack(">I", 1 << 20))
        p = self.check("--repair", f, status=REPAIRED)
        self.assertEqual(p.stdout,
                         f"{f}: BAT entry 7 points past the end of the file (offset "
                         f"{512 << 20}, file {size} bytes); repaired: entry dropped, "
                         f"the block is unallocated\n{f}: 1 problem, 1 repaired\n")
        self.check(f, status=CLEAN)

    def test_parent_link(self):
        base = self.dynamic("base.vhd")
        child = self.p("child.vhd")
        vsrv("disk", "create", "--parent", base, child)
        os.unlink(base)
        self.dynamic("base.vhd")
        pu = json.loads(vsrv("disk", "info", "--json", base).stdout)["uuid"]
        cu = json.loads(vsrv("disk", "info", "--json", "--ignore-parent-id",
                             child).stdout)["parent_uuid"]
        p = self.check(child, status=CORRUPT)
        self.assertEqual(p.stdout.splitlines()[0],
                         f"{child}: parent {base} has unique id {pu} but the "
                         f"child expects {cu}")
        p = self.check("--ignore-parent-id", child, status=CLEAN)
        self.assertEqual(p.stdout, f"{child}: clean\n")

    def test_errors_and_usage(self):
        junk = self.p("junk")
        with open(junk, "wb") as fh:
            fh.write(b"j" * 4096)
        p = self.check(junk, status=ERROR)
        self.assertEqual(p.stderr, f"vsrv: {junk}: not a VHD file (no \"conectix\" "
                                   "footer at its end or start)\n")
        self.assertEqual(p.stdout, "")
        p = self.check(self.p("missing.vhd"), status=ERROR)
        self.assertEqual(p.stderr, f"vsrv: {self.p('missing.vhd')}: No such file or directory\n")
        p = self.check(status=USAGE)
        self.assertTrue(p.stderr.startswith("usage: vsrv disk check [--repair] [--json]"))
        self.assertIn("exit status: 0 clean, 4 repaired", p.stderr)
        self.check("--frobnicate", junk, status=USAGE)
        p = self.check("--help", status=CLEAN)
        self.assertIn("3 corrupt", p.stdout)

    def test_largest_disk_speed(self):
        """2040 GiB of 2 MiB blocks: 1,044,480 BAT entries.  Empty, then
        with 10,000 blocks allocated in the file's sparse tail."""
        f = self.dynamic("big.vhd", size="2040G")
        t0 = time.monotonic()
        self.check(f, status=CLEAN)
        empty = time.monotonic() - t0

        table, entries, block = 1536, 1044480, 2 << 20
        footer_off = table + entries * 4
        self.assertEqual(os.path.getsize(f), footer_off + 512)
        with open(f, "r+b") as fh:
            fh.seek(footer_off)
            footer = fh.read(512)
            bat = bytearray(b"\xff" * (entries * 4))
            end = footer_off
            for k in range(10000):
                # Data 4 KiB-aligned, as libvhd places it.
                p = (end + 512 + 4095) // 4096 * 4096 - 512
                i = k * 104
                bat[4 * i:4 * i + 4] = struct.pack(">I", p // 512)
                os.pwrite(fh.fileno(), b"\xff" * 512, p)
                end = p + 512 + block
            os.pwrite(fh.fileno(), bytes(bat), table)
            os.pwrite(fh.fileno(), footer, end)
            fh.truncate(end + 512)
        info = json.loads(vsrv("disk", "info", "--json", f).stdout)
        self.assertEqual(info["allocated_blocks"], 10000)
        t0 = time.monotonic()
        p = self.check(f, status=CLEAN)
        full = time.monotonic() - t0
        self.assertEqual(p.stdout, f"{f}: clean\n")
        print(f"\ncheck of a 2040 GiB dynamic disk: empty {empty:.3f} s, "
              f"10,000 blocks {full:.3f} s (this build)")


if __name__ == "__main__":
    main()
