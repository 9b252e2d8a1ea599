"""VHD files made by other programs (shared/testdata/vhd, see its README.md):
each line of the README as a test, with its exact result.

The shared folder is read-only in CI, so every file is copied into a
temporary directory before anything opens it (opening takes a lock)."""
import json
import os
import shutil

from vhdmodel import vhdtool
from vsrvtest import TESTDATA, TmpDirTest, main, sha256_file, vsrv, vsrv_json

SHA = {
    "ext2.vhd": "870be7ae16c1fa8faab05c6eb9205dc9a7ae35c5f552c5cf8a267c0bc6a5cb99",
    "image-good-checksum.vhd": "84c172cd6e864e2a2ca00b60b531a3c7b1376e5257174bfdc4987f3f6312ad3c",
    # image.vhd, read with --ignore-checksums, as libvhdi reads it; the
    # differencing disk over it has every bit set and reads the same.
    "image.vhd": "c6db12a7db548e193c29420c1b4533e4708b20c5033db5cc29ef075d48316d25",
    "image-differential.vhd": "c6db12a7db548e193c29420c1b4533e4708b20c5033db5cc29ef075d48316d25",
}
IMAGE_UUID = "d49c5c80-350a-4a89-898a-5ad6d10f6578"


class RealFilesTest(TmpDirTest):
    def copy(self, *names):
        for n in names:
            src = os.path.join(TESTDATA, n)
            if not os.path.exists(src):
                raise AssertionError(f"{src} missing: shared/ must sit beside the checkout "
                                     "(or set VSRV_SHARED)")
            shutil.copy(src, self.p(n))
            os.chmod(self.p(n), 0o644)
        return self.p(names[0])

    def dump_sha(self, f, *opts):
        raw = self.p(os.path.basename(f) + ".raw")
        vhdtool(*opts, "dump", f, raw)
        return sha256_file(raw), os.path.getsize(raw)

    def test_ext2_dynamic_by_qemu(self):
        f = self.copy("ext2.vhd")
        i = vsrv_json("disk", "info", f)
        self.assertEqual((i["type"], i["virtual_size"], i["current_size"]),
                         ("dynamic", 4212736, 4212736))
        self.assertEqual(i["creator"], "qemu")
        self.assertEqual(self.dump_sha(f), (SHA["ext2.vhd"], 4212736))
        m = json.loads(vsrv("disk", "map", "--json", f).stdout)
        self.assertEqual(m, [
            {"offset": 0, "length": 2097152, "kind": "data", "depth": 0,
             "file": f, "file_offset": 2560},
            {"offset": 2097152, "length": 2115584, "kind": "zero"},
        ])

    def test_image_good_checksum(self):
        f = self.copy("image-good-checksum.vhd")
        i = vsrv_json("disk", "info", f)
        self.assertEqual((i["type"], i["virtual_size"]), ("dynamic", 104448))
        self.assertEqual(self.dump_sha(f), (SHA["image-good-checksum.vhd"], 104448))

    def test_image_bad_checksum_is_refused(self):
        f = self.copy("image.vhd")
        msg = (f"vsrv: {f}: footer checksum mismatch (stored 0xfffff683, "
               "computed 0xffffef25) and no good copy; use --ignore-checksums "
               "to read it anyway\n")
        for cmd in ("info", "map"):
            p = vsrv("disk", cmd, f, check=False)
            self.assertEqual((p.returncode, p.stdout, p.stderr), (1, "", msg), cmd)
        p = vhdtool("dump", f, self.p("x.raw"), check=False)
        self.assertEqual(p.returncode, 1)
        self.assertEqual(p.stderr, msg.replace("vsrv:", "vhdtool:", 1))

    def test_image_bad_checksum_read_anyway(self):
        f = self.copy("image.vhd")
        p = vsrv("disk", "info", "--json", "--ignore-checksums", f)
        self.assertEqual(p.stderr,
                         f"vsrv: warning: {f}: footer checksum is wrong (stored "
                         "0xfffff683, computed 0xffffef25); read anyway as asked\n")
        i = json.loads(p.stdout)
        self.assertEqual((i["type"], i["virtual_size"], i["uuid"]),
                         ("dynamic", 104448, IMAGE_UUID))
        self.assertEqual(self.dump_sha(f, "--ignore-checksums"),
                         (SHA["image.vhd"], 104448))

    def test_image_differential_parent_by_name(self):
        f = self.copy("image-differential.vhd", "image.vhd")
        parent = self.p("image.vhd")
        p = vsrv("disk", "info", "--json", "--ignore-checksums", f)
        i = json.loads(p.stdout)
        self.assertEqual((i["type"], i["virtual_size"]), ("differencing", 104448))
        self.assertEqual(i["parent_name"], "image.vhd")
        self.assertEqual(i["parent_uuid"], IMAGE_UUID)
        self.assertEqual(i["parent_locators"], [])
        self.assertEqual([x["file"] for x in i["parents"]], [parent])
        self.assertEqual(i["parents"][0]["uuid"], IMAGE_UUID)
        # Checksums are warned about, and so is the time stamp: the child
        # says 0, image.vhd's footer says 439972842 (2013-12-10).
        self.assertEqual(p.stderr.splitlines(), [
            f"vsrv: warning: {f}: footer checksum is wrong (stored 0xfffff683, "
            "computed 0xffffeeb6); read anyway as asked",
            f"vsrv: warning: {f}: dynamic header checksum is wrong (stored "
            "0xfffff476, computed 0xffffe9a5); read anyway as asked",
            f"vsrv: warning: {parent}: footer checksum is wrong (stored "
            "0xfffff683, computed 0xffffef25); read anyway as asked",
            f"vsrv: warning: {f}: parent {parent} was modified after this disk "
            "was made (time stamp 439972842, expected 0)",
        ])
        self.assertEqual(self.dump_sha(f, "--ignore-checksums"),
                         (SHA["image-differential.vhd"], 104448))
        # Every bitmap bit is set: the map never reaches the parent.
        m = json.loads(vsrv("disk", "map", "--json", "--ignore-checksums", f).stdout)
        self.assertEqual(m, [{"offset": 0, "length": 104448, "kind": "data",
                              "depth": 0, "file": f, "file_offset": 2560}])

    def test_image_differential_without_parent(self):
        f = self.copy("image-differential.vhd")
        p = vhdtool("--ignore-checksums", "dump", f, self.p("x.raw"), check=False)
        self.assertEqual(p.returncode, 1)
        self.assertEqual(p.stderr.splitlines()[-1],
                         f"vhdtool: {f}: parent 'image.vhd' not found (tried name "
                         f"{self.p('image.vhd')}: no such file)")

    def test_fat_differential_by_windows(self):
        f = self.copy("fat-differential.vhd")
        i = vsrv_json("disk", "info", "--no-parent", f)
        self.assertEqual(i["type"], "differencing")
        # CHS 120/4/17 is 4,177,920 bytes: Windows means current_size.
        self.assertEqual(i["geometry"], {"cylinders": 120, "heads": 4,
                                         "sectors_per_track": 17})
        self.assertEqual((i["virtual_size"], i["current_size"]), (4194304, 4194304))
        self.assertEqual((i["creator"], i["creator_os"]), ("win ", "Wi2k"))
        self.assertEqual(i["parent_name"], "C:\\Projects\\dfvfs\\test_data\\fat-parent.vhd")
        self.assertEqual(i["parent_uuid"], "5fa21a55-f394-aa4d-9958-1951a67d5540")
        self.assertEqual(i["parents"], [])
        # Windows stores the locators' data space in bytes.
        self.assertEqual(i["parent_locators"], [
            {"code": "W2ku", "path": "C:\\Projects\\dfvfs\\test_data\\fat-parent.vhd",
             "data_space": 4096, "data_length": 84, "data_offset": 4096},
            {"code": "W2ru", "path": ".\\fat-parent.vhd",
             "data_space": 65536, "data_length": 32, "data_offset": 12288},
        ])
        m = json.loads(vsrv("disk", "map", "--json", "--no-parent", f).stdout)
        self.assertEqual(sum(e["length"] for e in m), 4194304)
        self.assertEqual({e["kind"] for e in m}, {"data", "parent"})
        self.assertEqual([e["offset"] for e in m[1:]],
                         [e["offset"] + e["length"] for e in m[:-1]])
        data = [(e["offset"], e["length"], e["file_offset"]) for e in m if e["kind"] == "data"]
        self.assertEqual(data, [(68608, 512, 150528), (73216, 512, 155136),
                                (77824, 4096, 159744), (94208, 1024, 176128),
                                (96256, 512, 178176), (97280, 1536, 179200),
                                (99328, 512, 181248), (100352, 512, 182272)])

    def test_fat_differential_parent_not_found(self):
        f = self.copy("fat-differential.vhd")
        msg = (f"{f}: parent 'C:\\Projects\\dfvfs\\test_data\\fat-parent.vhd' not "
               f"found (tried W2ru {self.p('fat-parent.vhd')}: no such file, "
               "W2ku 'C:\\Projects\\dfvfs\\test_data\\fat-parent.vhd': not a path "
               f"on this host, name {self.p('fat-parent.vhd')}: no such file)\n")
        p = vhdtool("dump", f, self.p("x.raw"), check=False)
        self.assertEqual((p.returncode, p.stderr), (1, "vhdtool: " + msg))
        p = vsrv("disk", "convert", f, self.p("x.raw"), check=False)
        self.assertEqual((p.returncode, p.stdout, p.stderr), (1, "", "vsrv: " + msg))
        # Describing it needs no parent: info and map show the disk alone,
        # the missing parent as a warning.
        warning = ("vsrv: warning: " + msg +
                   "vsrv: warning: showing the disk without its parent\n")
        p = vsrv("disk", "info", "--json", f)
        self.assertEqual(p.stderr, warning)
        self.assertEqual(json.loads(p.stdout)["parent_uuid"],
                         "5fa21a55-f394-aa4d-9958-1951a67d5540")
        p = vsrv("disk", "map", "--json", f)
        self.assertEqual(p.stderr, warning)
        self.assertEqual(json.loads(p.stdout),
                         json.loads(vsrv("disk", "map", "--json", "--no-parent", f).stdout))


if __name__ == "__main__":
    main()
