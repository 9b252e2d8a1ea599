"""The release build (scripts/build's build/, what a user installs): vsrv is
linked statically (static-pie, src/meson.build says why), so it must not
need what a static glibc program cannot do reliably: load shared objects
(dlopen: libslirp, iconv's gconv modules) or name services.  These cases
run that binary; the rest of the suite runs the sanitizer build, which is
linked dynamically.  scripts/test builds build/ before the tests."""
import os
import struct
import subprocess

from vsrvtest import TmpDirTest, main, release_build

GUESTS = os.environ.get("VSRV_GUESTS", "")


class ReleaseBuildTest(TmpDirTest):
    def setUp(self):
        super().setUp()
        self.vsrv, self.env = release_build()

    def run_release(self, *args):
        return subprocess.run([self.vsrv, *args], capture_output=True, text=True,
                              timeout=120, stdin=subprocess.DEVNULL, env=self.env)

    def test_static_pie(self):
        """Position-independent (ASLR applies), with no program
        interpreter and no shared library."""
        p = subprocess.run(["readelf", "-hldW", self.vsrv], capture_output=True, text=True,
                           check=True)
        self.assertIn("DYN (Position-Independent Executable file)", p.stdout)
        self.assertNotIn("INTERP", p.stdout)
        self.assertNotIn("(NEEDED)", p.stdout)

    def test_boots_a_micro_guest(self):
        p = self.run_release("run", "--kernel", os.path.join(GUESTS, "hello64.elf"),
                             "--test-device", "--memory", "64M")
        self.assertEqual((p.returncode, p.stdout, p.stderr),
                         (42, "hello from a 64-bit micro-guest\n", ""))

    def test_non_ascii_parent_name(self):
        """A differencing disk's parent name is UTF-16 in the file; libvhd
        converts it itself (lib/vhd/utf.c), where glibc's iconv would load
        a gconv module."""
        parent = self.p("b\u00e4se-\U0001f600.vhd")
        child = self.p("child.vhd")
        for args in (["--type", "dynamic", "--size", "16M", parent],
                     ["--type", "diff", "--parent", parent, child]):
            p = self.run_release("disk", "create", *args)
            self.assertEqual((p.returncode, p.stderr), (0, ""))
        p = self.run_release("disk", "info", child)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(f"parent name:       {parent}\n", p.stdout)
        self.assertIn('parent locators:   W2ru ".\\b\u00e4se-\U0001f600.vhd" (26 bytes at ',
                      p.stdout)
        # libvhdi, the peer, reads the same name from the header.
        p = subprocess.run(["vhdiinfo", child], capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("\tParent filename\t\t: " + parent + "\n", p.stdout)

    def test_undecodable_parent_names(self):
        """A lone UTF-16 surrogate in the parent name and in both Windows
        locators: those read as empty, nothing else is lost, and the
        chain opens through the MacX locator; without the parent, one line
        names each locator tried."""
        parent, child = self.p("base.vhd"), self.p("child.vhd")
        for args in (["--type", "dynamic", "--size", "16M", parent],
                     ["--type", "diff", "--parent", parent, child]):
            self.assertEqual(self.run_release("disk", "create", *args).returncode, 0)
        with open(child, "r+b") as f:
            for off in (2048, 2560):            # W2ru, W2ku data (UTF-16LE)
                f.seek(off)
                f.write(b"\x00\xd8A\x00")
            f.seek(512)                         # the dynamic header
            h = bytearray(f.read(1024))
            h[64:68] = b"\xd8\x00\x00A"         # its parent name (UTF-16BE)
            h[36:40] = bytes(4)
            h[36:40] = struct.pack(">I", ~sum(h) & 0xffffffff)
            f.seek(512)
            f.write(h)
        p = self.run_release("disk", "info", child)
        self.assertEqual((p.returncode, p.stderr), (0, ""))
        self.assertIn('parent name:       \n', p.stdout)
        self.assertIn('parent locators:   W2ru "" (20 bytes at 2048)\n'
                      '                   W2ku "" (', p.stdout)
        self.assertIn(f"parent 1:\n  file:              {parent}\n", p.stdout)
        p = self.run_release("disk", "check", child)
        self.assertEqual((p.returncode, p.stdout, p.stderr), (0, f"{child}: clean\n", ""))
        os.rename(parent, self.p("gone.vhd"))
        p = self.run_release("disk", "check", child)
        self.assertEqual((p.returncode, p.stdout), (3, (
            f"{child}: parent '' not found (tried W2ru (unreadable), W2ku (unreadable), "
            f"MacX {parent}: no such file)\n"
            f"{child}: 1 problem, corrupt; run vsrv disk check --repair\n")))


if __name__ == "__main__":
    main()
