"""Malformed disks: one line naming the file and the problem, exit status 1,
never a crash, hang or unbounded allocation (the test build runs under
AddressSanitizer). Each file is made by vsrv and then damaged here."""
import os
import struct

from vsrvtest import TmpDirTest, main, vsrv, vsrv_json

MiB = 1 << 20


def checksum(buf, field):
    """One's complement of the byte sum, the checksum field counted as 0."""
    total = sum(buf) - sum(buf[field:field + 4])
    return (~total) & 0xFFFFFFFF


class Disk:
    """A VHD file's bytes, with helpers to damage and re-checksum them."""

    def __init__(self, path):
        self.path = path
        with open(path, "rb") as f:
            self.b = bytearray(f.read())

    def save(self):
        with open(self.path, "wb") as f:
            f.write(self.b)

    def footer_at(self):
        return len(self.b) - 512

    def put(self, off, fmt, *vals):
        struct.pack_into(fmt, self.b, off, *vals)

    def get(self, off, fmt):
        return struct.unpack_from(fmt, self.b, off)[0]

    def fix_footer(self, at=None):
        for o in ([at] if at is not None else [0, self.footer_at()]):
            self.put(o + 64, ">I", 0)
            self.put(o + 64, ">I", checksum(self.b[o:o + 512], 64))

    def fix_header(self):
        self.put(512 + 36, ">I", 0)
        self.put(512 + 36, ">I", checksum(self.b[512:1536], 36))

    def bat(self, i):
        return 1536 + 4 * i


class MalformedTest(TmpDirTest):
    def fails(self, path, message, *args, cmd="info"):
        p = vsrv("disk", cmd, *args, path, check=False)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertEqual(p.stderr, f"vsrv: {message}\n")
        self.assertEqual(p.stdout, "")

    def chain_fails(self, path, message):
        """A broken chain: reading it fails with the message; describing
        it shows the disk alone with the message as a warning."""
        out = self.p("read.raw")
        p = vsrv("disk", "convert", path, out, check=False)
        self.assertEqual((p.returncode, p.stdout, p.stderr), (1, "", f"vsrv: {message}\n"))
        self.assertFalse(os.path.exists(out))
        p = vsrv("disk", "info", path)
        self.assertEqual(p.stderr, f"vsrv: warning: {message}\n"
                                   "vsrv: warning: showing the disk without its parent\n")

    def dynamic(self, name="d.vhd", size="8M", data=True):
        path = self.p(name)
        vsrv("disk", "create", "--size", size, path)
        if data:
            raw = self.p(name + ".raw")
            with open(raw, "wb") as f:
                f.truncate(int(size[:-1]) * MiB)
                f.seek(2 * MiB)
                f.write(b"\xab" * 4096)
            os.unlink(path)
            vsrv("disk", "convert", raw, path)
        return Disk(path)

    def test_truncated(self):
        d = self.dynamic()
        d.b = d.b[:1000]
        d.save()
        # The copy at offset 0 survives; the header after it does not.
        self.fails(d.path, f"{d.path}: dynamic header offset 512 is outside the file")
        d.b = d.b[:100]
        d.save()
        self.fails(d.path, f"{d.path}: not a VHD file (100 bytes is too short for a footer)")

    def test_cut_inside_a_block(self):
        d = self.dynamic()
        d.b = d.b[:len(d.b) - 1 * MiB]   # the footer is gone, the copy remains
        d.save()
        p = vsrv("disk", "info", d.path, check=False)
        self.assertEqual(p.returncode, 0)
        self.assertEqual(p.stderr, f"vsrv: warning: {d.path}: the footer at the end is missing; "
                                   "using the copy at offset 0\n")

    def test_bad_cookies(self):
        d = self.dynamic()
        d.b[0:8] = b"XXXXXXXX"
        d.b[d.footer_at():d.footer_at() + 8] = b"XXXXXXXX"
        d.save()
        self.fails(d.path, f'{d.path}: not a VHD file (no "conectix" footer at its end or start)')
        d = self.dynamic("h.vhd")
        d.b[512:520] = b"cxspars_"
        d.fix_header()
        d.save()
        self.fails(d.path, f'{d.path}: bad dynamic header cookie (expected "cxsparse")')

    def test_footer_checksums(self):
        d = self.dynamic()
        d.b[d.footer_at() + 100] ^= 1        # only the end is damaged
        d.save()
        p = vsrv("disk", "info", d.path)
        self.assertEqual(p.stderr, f"vsrv: warning: {d.path}: the footer at the end is damaged "
                                   "(bad checksum); using the copy at offset 0\n")
        d.b[100] ^= 1                        # now both
        d.save()
        stored = d.get(d.footer_at() + 64, ">I")
        computed = checksum(d.b[d.footer_at():], 64)
        self.fails(d.path, f"{d.path}: footer checksum mismatch (stored 0x{stored:08x}, "
                   f"computed 0x{computed:08x}) and no good copy; use --ignore-checksums "
                   "to read it anyway")
        p = vsrv("disk", "info", "--ignore-checksums", d.path)
        self.assertIn("read anyway as asked", p.stderr)

    def test_header_fields(self):
        cases = [
            (32, ">I", 3000, "block size 3000 is not a power of two between 512 bytes and 1 GiB"),
            (28, ">I", 0xFFFFFFFF,
             "the BAT (4294967295 entries at offset 1536) lies outside the file"),
            (28, ">I", 0, "the BAT has no entries"),
            (28, ">I", 2, "virtual size 8388608 is larger than the 2 blocks of 2097152 bytes the BAT maps"),
            (16, ">Q", 1 << 62, "the BAT (4 entries at offset 4611686018427387904) lies outside the file"),
        ]
        for off, fmt, val, msg in cases:
            d = self.dynamic(data=False)
            d.put(512 + off, fmt, val)
            d.fix_header()
            d.save()
            self.fails(d.path, f"{d.path}: {msg}")
            os.unlink(d.path)

    def test_absurd_sizes(self):
        d = self.dynamic(data=False)
        d.put(48, ">Q", 1 << 62)
        d.put(d.footer_at() + 48, ">Q", 1 << 62)
        d.fix_footer()
        d.save()
        self.fails(d.path, f"{d.path}: virtual size 4611686018427387904 exceeds the 2040 GiB "
                   "limit of dynamic disks")
        f = self.p("f.vhd")
        vsrv("disk", "create", "--type", "fixed", "--size", "1M", f)
        d = Disk(f)
        d.put(d.footer_at() + 48, ">Q", 1 << 40)
        d.fix_footer(d.footer_at())
        d.save()
        self.fails(f, f"{f}: fixed disk of 1099511627776 bytes but only 1048576 bytes of "
                   "data in the file")
        d.put(d.footer_at() + 48, ">Q", 1000)
        d.fix_footer(d.footer_at())
        d.save()
        self.fails(f, f"{f}: virtual size 1000 is not a whole number of sectors")

    def test_bat_entries(self):
        d = self.dynamic()
        d.put(d.bat(0), ">I", 0x7FFFFFFF)
        d.save()
        self.fails(d.path, f"{d.path}: BAT entry 0 points past the end of the file "
                   f"(offset {0x7FFFFFFF * 512}, file {len(d.b)} bytes)")
        d = self.dynamic("m.vhd")
        d.put(d.bat(0), ">I", 3)             # inside the header
        d.save()
        self.fails(d.path, f"{d.path}: BAT entry 0 (offset 1536) overlaps the disk's metadata")
        d = self.dynamic("o.vhd")
        block1 = d.get(d.bat(1), ">I")
        d.put(d.bat(0), ">I", block1 + 1)    # overlaps block 1
        d.save()
        vsrv("disk", "info", d.path)          # reading is harmless
        p = vsrv("disk", "resize", d.path, "16M", check=False)   # writing is not
        self.assertEqual((p.returncode, p.stderr),
                         (1, f"vsrv: {d.path}: blocks at sectors {block1} and {block1 + 1} "
                             "overlap; run check --repair\n"))

    def test_missing_parent(self):
        base, kid = self.p("base.vhd"), self.p("kid.vhd")
        vsrv("disk", "create", "--size", "1M", base)
        vsrv("disk", "create", "--parent", base, kid)
        os.rename(base, self.p("elsewhere.vhd"))
        real = os.path.realpath(base)
        self.chain_fails(kid, f"{kid}: parent '{real}' not found (tried W2ru {base}: no such file, "
                   f"W2ku {real}: no such file, MacX {real}: no such file, "
                   f"name {base}: no such file)")

    def test_parent_uuid_mismatch(self):
        base, kid = self.p("base.vhd"), self.p("kid.vhd")
        vsrv("disk", "create", "--size", "1M", base)
        vsrv("disk", "create", "--parent", base, kid)
        os.unlink(base)
        vsrv("disk", "create", "--size", "1M", base)   # same name, new disk
        p = vsrv("disk", "convert", kid, self.p("x.raw"), check=False)
        self.assertEqual(p.returncode, 1)
        self.assertRegex(p.stderr, rf"^vsrv: {kid}: parent {base} has unique id [0-9a-f-]{{36}} "
                         rf"but the child expects [0-9a-f-]{{36}}; use --ignore-parent-id to "
                         r"open it anyway\n$")
        p = vsrv("disk", "info", "--ignore-parent-id", kid)
        self.assertIn("opened anyway as asked", p.stderr)

    def test_chain_loop(self):
        """a -> b -> a: b's header is edited to name a as its parent."""
        a, b = self.p("a.vhd"), self.p("b.vhd")
        vsrv("disk", "create", "--size", "1M", self.p("root.vhd"))
        vsrv("disk", "create", "--parent", self.p("root.vhd"), a)
        vsrv("disk", "create", "--parent", a, b)
        da, db = Disk(a), Disk(b)
        # a's parent becomes b: uuid, name and locators.
        da.b[512 + 40:512 + 56] = db.b[68:84]
        da.put(512 + 56, ">I", db.get(24, ">I"))
        name = os.path.realpath(b).encode("utf-16-be")
        da.b[512 + 64:512 + 576] = name + bytes(512 - len(name))
        for i in range(8):
            da.put(512 + 576 + 24 * i, ">I", 0)   # no locators: found by name
        da.fix_header()
        da.save()
        self.chain_fails(b, f"{a}: parent chain loops back to {b}")

    def test_chain_too_deep(self):
        prev = self.p("l0.vhd")
        vsrv("disk", "create", "--size", "1M", prev)
        for i in range(1, 65):
            cur = self.p(f"l{i}.vhd")
            vsrv("disk", "create", "--parent", prev, cur)
            prev = cur
        # 63 parents below the top are allowed: l1 opens, l64 does not.
        vsrv("disk", "info", self.p("l1.vhd"))
        self.assertEqual(len(vsrv_json("disk", "info", self.p("l63.vhd"))["parents"]), 63)
        self.chain_fails(self.p("l64.vhd"),
                         f"{self.p('l1.vhd')}: parent chain deeper than 64 (a loop?)")


if __name__ == "__main__":
    main()
