"""The release build (scripts/build's build/, what a user installs): vsrv is
linked statically (static-pie, src/meson.build says why), so it must not
need what a static glibc program cannot do reliably: load shared objects
(dlopen: libslirp, iconv's gconv modules) or name services.  These cases
run that binary; the rest of the suite runs the sanitizer build, which is
linked dynamically.  scripts/test builds build/ before the tests."""
import os
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


if __name__ == "__main__":
    main()
