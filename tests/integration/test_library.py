"""libvhd as other programs use it: installed with its header and
pkg-config file, compiled against and run."""
import os
import subprocess

from vsrvtest import SRCDIR, TmpDirTest, main, run

BUILD = os.environ.get("VSRV_BUILD_ROOT")
SANITIZE = os.environ.get("VSRV_SANITIZE", "")

PROGRAM = r'''
#include <stdio.h>
#include <string.h>
#include <vhd.h>

int main(int argc, char **argv)
{
	struct vhd_create_opts co = { .type = VHD_TYPE_DYNAMIC, .size = 8 << 20 };
	struct vhd_open_opts oo = { .flags = VHD_OPEN_RDWR };
	struct vhd_error err = { 0 };
	char buf[512], back[512];
	struct vhd *v;

	if (vhd_create(argv[1], &co, &err) < 0 || vhd_open(argv[1], &oo, &v, &err) < 0) {
		fprintf(stderr, "%s\n", err.msg);
		return 1;
	}
	memset(buf, 'L', sizeof(buf));
	if (vhd_pwrite(v, buf, 512, 4096) != 512 || vhd_pread(v, back, 512, 4096) != 512)
		return 1;
	printf("%s %llu %d\n", vhd_type_name(vhd_get_type(v)),
	       (unsigned long long)vhd_size(v), memcmp(buf, back, 512) == 0);
	return vhd_close(v) < 0;
}
'''


class LibraryTest(TmpDirTest):
    def test_install_and_link(self):
        dest = self.p("root")
        run("meson", "install", "-C", BUILD, "--destdir", dest, "--quiet",
            "--no-rebuild")
        found = {}
        for root, _, files in os.walk(dest):
            for f in files:
                found.setdefault(f, []).append(os.path.join(root, f))
        self.assertEqual(len(found["vhd.h"]), 1)
        self.assertEqual(len(found["libvhd.pc"]), 1)
        self.assertIn("vsrv", found)
        env = dict(os.environ, PKG_CONFIG_PATH=os.path.dirname(found["libvhd.pc"][0]),
                   PKG_CONFIG_SYSROOT_DIR=dest)
        flags = subprocess.run(
            ["pkg-config", "--cflags", "--libs", "libvhd"],
            capture_output=True, text=True, env=env, check=True).stdout.split()
        src = self.p("user.c")
        with open(src, "w") as f:
            f.write(PROGRAM)
        exe = self.p("user")
        # A sanitized libvhd needs a sanitized program to load it.
        cflags = [f"-fsanitize={SANITIZE}"] if SANITIZE else []
        run("cc", "-std=c11", "-Wall", "-Werror", *cflags, src, "-o", exe, *flags)
        libdir = [f[2:] for f in flags if f.startswith("-L")][0]
        self.assertTrue(libdir.startswith(dest), libdir)
        p = subprocess.run([exe, self.p("d.vhd")], capture_output=True, text=True,
                           env=dict(os.environ, LD_LIBRARY_PATH=libdir), check=True)
        self.assertEqual(p.stdout, "dynamic 8388608 1\n")


if __name__ == "__main__":
    main()
