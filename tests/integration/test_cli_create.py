"""vsrv disk create and info, read back by qemu-img."""
import json
import os

from vsrvtest import TmpDirTest, main, need, run, vsrv, vsrv_json


class CreateTest(TmpDirTest):
    def test_qemu_img_sees_the_size_typed(self):
        need("qemu-img")
        for size, nbytes in (("10G", 10 << 30), ("1000M", 1000 << 20),
                             ("127G", 127 << 30), ("3G", 3 << 30),
                             ("1M", 1 << 20), ("2040G", 2040 << 30)):
            f = self.p(f"d-{size}.vhd")
            vsrv("disk", "create", "--type", "dynamic", "--size", size, f)
            q = json.loads(run("qemu-img", "info", "--output=json", f).stdout)
            self.assertEqual(q["format"], "vpc")
            self.assertEqual(q["virtual-size"], nbytes, size)
            self.assertEqual(vsrv_json("disk", "info", f)["virtual_size"], nbytes)

    def test_fixed_disk_size_and_qemu_quirk(self):
        need("qemu-img")
        f = self.p("f.vhd")
        vsrv("disk", "create", "--type", "fixed", "--size", "1000M", f)
        self.assertEqual(os.path.getsize(f), (1000 << 20) + 512)
        info = vsrv_json("disk", "info", f)
        self.assertEqual(info["type"], "fixed")
        self.assertEqual(info["virtual_size"], 1000 << 20)
        # qemu 7.2 reports fixed VHDs, its own included, with the 512-byte
        # footer counted in; its reads of the data are exact (compare).
        q = json.loads(run("qemu-img", "info", "--output=json", f).stdout)
        self.assertEqual(q["virtual-size"], (1000 << 20) + 512)
        raw = self.p("zero.raw")
        with open(raw, "wb") as r:
            r.truncate(1000 << 20)
        run("qemu-img", "compare", "-f", "raw", "-F", "vpc", raw, f)

    def test_info_fields(self):
        f = self.p("d.vhd")
        vsrv("disk", "create", "--size", "10G", "--block-size", "512K", f)
        i = vsrv_json("disk", "info", f)
        self.assertEqual(i["type"], "dynamic")
        self.assertEqual(i["block_size"], 512 << 10)
        self.assertEqual(i["blocks"], 20480)
        self.assertEqual(i["allocated_blocks"], 0)
        self.assertEqual(i["geometry"], {"cylinders": 20805, "heads": 16,
                                         "sectors_per_track": 63})
        self.assertEqual(i["creator"], "win ")
        self.assertEqual(i["parents"], [])

    def test_differencing_chain_info(self):
        base, mid, top = self.p("base.vhd"), self.p("mid.vhd"), self.p("top.vhd")
        vsrv("disk", "create", "--size", "64M", base)
        vsrv("disk", "create", "--type", "diff", "--parent", base, mid)
        vsrv("disk", "create", "--parent", mid, top)
        i = vsrv_json("disk", "info", top)
        self.assertEqual(i["type"], "differencing")
        self.assertEqual(i["virtual_size"], 64 << 20)
        # Found through the relative W2ru locator, from the child's directory.
        self.assertEqual([p["file"] for p in i["parents"]], [mid, base])
        self.assertEqual(len(i["parents"]), 2)
        self.assertEqual(i["parent_uuid"], i["parents"][0]["uuid"])
        self.assertEqual(i["parents"][0]["parent_uuid"], i["parents"][1]["uuid"])
        locs = {l["code"]: l["path"] for l in i["parent_locators"]}
        self.assertEqual(locs["W2ru"], ".\\mid.vhd")
        self.assertEqual(locs["W2ku"], os.path.realpath(mid))
        self.assertEqual(locs["MacX"], "file://" + os.path.realpath(mid))

    def test_bad_arguments(self):
        cases = [
            (["--size", "10Q", self.p("a.vhd")],
             "vsrv: --size: '10Q' is not a size (a number with an optional K, M, G or T suffix)\n"),
            (["--type", "sparse", "--size", "1G", self.p("a.vhd")],
             "vsrv: --type: 'sparse' is not fixed, dynamic or diff\n"),
            (["--type", "dynamic", self.p("a.vhd")],
             f"vsrv: {self.p('a.vhd')}: --size is required for a dynamic disk\n"),
            (["--type", "diff", self.p("a.vhd")],
             f"vsrv: {self.p('a.vhd')}: a differencing disk needs --parent\n"),
            (["--size", "3000G", self.p("a.vhd")],
             f"vsrv: {self.p('a.vhd')}: size 3221225472000 exceeds the VHD limit of 2040 GiB\n"),
            (["--type", "dynamic", "--size", "1G", "--azure", self.p("a.vhd")],
             f"vsrv: {self.p('a.vhd')}: Azure accepts only fixed VHDs (use --type fixed)\n"),
        ]
        for args, msg in cases:
            p = vsrv("disk", "create", *args, check=False)
            self.assertNotEqual(p.returncode, 0, args)
            self.assertEqual(p.stderr, msg)
            self.assertFalse(os.path.exists(self.p("a.vhd")))
        vsrv("disk", "create", "--size", "1M", self.p("a.vhd"))
        p = vsrv("disk", "create", "--size", "1M", self.p("a.vhd"), check=False)
        self.assertEqual(p.returncode, 1)
        self.assertEqual(p.stderr, f"vsrv: {self.p('a.vhd')}: already exists\n")

    def test_not_a_vhd(self):
        f = self.p("junk.vhd")
        with open(f, "wb") as o:
            o.write(b"x" * 4096)
        p = vsrv("disk", "info", f, check=False)
        self.assertEqual(p.returncode, 1)
        self.assertEqual(p.stderr, f'vsrv: {f}: not a VHD file (no "conectix" footer at its end or start)\n')
        p = vsrv("disk", "info", self.p("missing.vhd"), check=False)
        self.assertEqual(p.stderr, f"vsrv: {self.p('missing.vhd')}: No such file or directory\n")


if __name__ == "__main__":
    main()
