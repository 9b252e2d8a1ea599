#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Wraps a boot micro-guest ELF in a bzImage: a boot sector carrying the
setup header (Documentation/x86/boot.rst), setup sectors, then the ELF's
loaded bytes as the protected-mode kernel.  The header is written by the
byte offsets of boot.rst, independently of the VMM's C structs.

As a module: make(elf_bytes, **fields) returns the file's bytes; fields
left out take a real kernel's values for the chosen shape.  As a program:
mkbzimage.py ELF OUT [--kernel64] [--relocatable] [--version 0x20f] ..."""
import argparse
import struct

# Where each protocol version's header ends (0x202 + the jump's byte).
HDR_END = [(0x020f, 0x26c), (0x020b, 0x268), (0x020a, 0x264), (0x0209, 0x258),
           (0x0208, 0x250), (0x0207, 0x248), (0x0206, 0x23c), (0x0200, 0x228)]
XLF_KERNEL_64 = 1
XLF_CAN_BE_LOADED_ABOVE_4G = 2
LOADED_HIGH = 1
KERNEL_VERSION_AT = 0x400       # in the setup code, as real kernels have it


def elf_image(elf):
    """(base, bytes from base to the end of the last file-backed byte,
    bytes from base to the end of memory) of an ELF's PT_LOAD segments."""
    assert elf[:4] == b"\x7fELF"
    is64 = elf[4] == 2
    if is64:
        phoff, = struct.unpack_from("<Q", elf, 0x20)
        phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
    else:
        phoff, = struct.unpack_from("<I", elf, 0x1c)
        phentsize, phnum = struct.unpack_from("<HH", elf, 0x2a)
    segs = []
    for i in range(phnum):
        o = phoff + i * phentsize
        if is64:
            ptype, _, off, _, paddr, filesz, memsz, _ = struct.unpack_from("<IIQQQQQQ", elf, o)
        else:
            ptype, off, _, paddr, filesz, memsz, _, _ = struct.unpack_from("<IIIIIIII", elf, o)
        if ptype == 1 and memsz:
            segs.append((paddr, elf[off:off + filesz], memsz))
    base = min(s[0] for s in segs)
    end = max(s[0] + len(s[1]) for s in segs)
    mem_end = max(s[0] + s[2] for s in segs)
    img = bytearray(end - base)
    for paddr, data, _ in segs:
        img[paddr - base:paddr - base + len(data)] = data
    return base, bytes(img), mem_end - base


def make(elf, version=0x020f, kernel64=True, relocatable=None, pref_address=None,
         kernel_alignment=0x200000, min_alignment=21, setup_sects=4,
         setup_sects_field=None, init_size=None, initrd_addr_max=0x7fffffff,
         cmdline_size=2047, xloadflags=None, kernel_version="vsrv fake kernel",
         hdr_end=None, boot_flag=0xaa55, magic=b"HdrS", loadflags=LOADED_HIGH):
    base, img, mem = elf_image(elf)
    if relocatable is None:
        relocatable = base != 0x100000
    if pref_address is None:
        pref_address = base
    if xloadflags is None:
        xloadflags = XLF_KERNEL_64 | XLF_CAN_BE_LOADED_ABOVE_4G if kernel64 else 0
    if init_size is None:
        init_size = (mem + 0xfff) & ~0xfff
    if hdr_end is None:
        hdr_end = next(end for v, end in HDR_END if version >= v)
    syssize = (len(img) + 15) // 16
    kernel = img + bytes(syssize * 16 - len(img))

    setup = bytearray((setup_sects + 1) * 512)
    kv = kernel_version.encode() + b"\0"
    setup[KERNEL_VERSION_AT:KERNEL_VERSION_AT + len(kv)] = kv
    h = bytearray(0x290)        # offsets below are the file's

    def put(off, fmt, v):
        if off + struct.calcsize(fmt) <= hdr_end:
            struct.pack_into("<" + fmt, h, off, v)

    put(0x1f1, "B", setup_sects if setup_sects_field is None else setup_sects_field)
    put(0x1f4, "I", syssize)
    put(0x1fa, "H", 0xffff)               # vid_mode: normal
    put(0x1fe, "H", boot_flag)
    h[0x200] = 0xeb                       # jmp over the header
    h[0x201] = hdr_end - 0x202
    h[0x202:0x206] = magic
    put(0x206, "H", version)
    put(0x20e, "H", KERNEL_VERSION_AT - 0x200)
    put(0x211, "B", loadflags)
    put(0x214, "I", 0x100000)             # code32_start's default
    put(0x22c, "I", initrd_addr_max)
    put(0x230, "I", kernel_alignment)
    put(0x234, "B", 1 if relocatable else 0)
    if version >= 0x020a:
        put(0x235, "B", min_alignment)
    if version >= 0x020c:
        put(0x236, "H", xloadflags)
    put(0x238, "I", cmdline_size)
    if version >= 0x020a:
        put(0x258, "Q", pref_address)
        put(0x260, "I", init_size)
    setup[0x1f1:hdr_end] = h[0x1f1:hdr_end]
    return bytes(setup) + kernel


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("elf")
    ap.add_argument("out")
    ap.add_argument("--kernel32", action="store_true", help="no XLF_KERNEL_64")
    ap.add_argument("--version", type=lambda s: int(s, 0), default=0x020f)
    ap.add_argument("--initrd-addr-max", type=lambda s: int(s, 0), default=0x7fffffff)
    a = ap.parse_args()
    with open(a.elf, "rb") as f:
        elf = f.read()
    data = make(elf, version=a.version, kernel64=not a.kernel32,
                initrd_addr_max=a.initrd_addr_max)
    with open(a.out, "wb") as f:
        f.write(data)


if __name__ == "__main__":
    main()
