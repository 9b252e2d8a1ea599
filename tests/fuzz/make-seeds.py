#!/usr/bin/env python3
"""Writes the seed inputs of the fuzz corpus (tests/fuzz/corpus/vhd/seed-*):
small valid VHDs of every kind, made with vsrv and vhdtool, and a few cut or
edited from them the way old or torn files look.  Run again only to change
the seeds; the corpus is committed.

Usage: make-seeds.py OUTDIR  (VSRV_BIN and VHDTOOL_BIN: the built tools,
default build-test/...)"""
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VSRV = os.environ.get("VSRV_BIN", os.path.join(ROOT, "build-test/src/cli/vsrv"))
VHDTOOL = os.environ.get("VHDTOOL_BIN", os.path.join(ROOT, "build-test/tests/tools/vhdtool"))


def sh(*args):
    subprocess.run([str(a) for a in args], check=True)


def create(path, *args):
    sh(VSRV, "disk", "create", *args, path)


def write(path, off, length, seed):
    sh(VHDTOOL, "write", path, off, length, seed)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    # A short directory: differencing disks store their parent's path.
    tmp = tempfile.mkdtemp(prefix="vs", dir="/tmp")
    p = lambda n: os.path.join(tmp, n)
    try:
        create(p("fixed.vhd"), "--type", "fixed", "--size", "16K")
        write(p("fixed.vhd"), 512, 1024, 1)
        write(p("fixed.vhd"), 16384 - 512, 512, 2)

        create(p("dyn512.vhd"), "--size", "32K", "--block-size", "512")
        write(p("dyn512.vhd"), 0, 1536, 3)
        write(p("dyn512.vhd"), 32768 - 512, 512, 4)

        create(p("dyn4k.vhd"), "--size", "64K", "--block-size", "4K")
        write(p("dyn4k.vhd"), 4096, 8192, 5)
        write(p("dyn4k.vhd"), 65536 - 1024, 1024, 6)

        # 2 MiB blocks: one empty disk, and one whose only block is cut
        # short after 4 KiB of data (a reader zero-fills past the end).
        create(p("dyn2m.vhd"), "--size", "8M")
        shutil.copy(p("dyn2m.vhd"), p("dyn2m-empty.vhd"))
        write(p("dyn2m.vhd"), 2 << 20, 4096, 7)
        with open(p("dyn2m.vhd"), "rb") as f:
            whole = f.read()
        footer = whole[-512:]
        bat_at = 512 + 1024
        entry = int.from_bytes(whole[bat_at + 4:bat_at + 8], "big") * 512
        with open(p("dyn2m-short.vhd"), "wb") as f:
            f.write(whole[:entry + 512 + 4096] + footer)

        # Differencing over a 4 KiB-block base, with the three locators
        # vsrv writes, and sectors here and there so that reads of a block
        # pass through to the parent for the sectors not set.
        create(p("base.vhd"), "--size", "64K", "--block-size", "4K")
        write(p("base.vhd"), 0, 65536, 8)
        create(p("diff.vhd"), "--parent", p("base.vhd"), "--block-size", "4K")
        write(p("diff.vhd"), 512, 512, 9)
        write(p("diff.vhd"), 8192 + 1024, 1536, 10)

        # Before Virtual PC 2004: a 511-byte footer.
        for name in ("fixed", "dyn4k"):
            with open(p(name + ".vhd"), "rb") as f:
                b = f.read()
            with open(p(name + "-511.vhd"), "wb") as f:
                f.write(b[:-1])
        # Torn end: only the copy at offset 0 is left.
        with open(p("dyn512.vhd"), "rb") as f:
            b = f.read()
        with open(p("dyn512-copyonly.vhd"), "wb") as f:
            f.write(b[:-512])

        os.unlink(p("dyn2m.vhd"))    # 2 MiB of zeros: the cut copy will do
        for name in sorted(os.listdir(tmp)):
            shutil.copy(p(name), os.path.join(out, "seed-" + name))
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
