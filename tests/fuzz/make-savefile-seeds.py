#!/usr/bin/env python3
"""Writes the seed inputs of the saved-state fuzzer's corpus (tests/fuzz/
corpus/savefile/seed-*) from real saved states: it runs micro-guests with
`vsrv run ... --control SOCK` (so it needs /dev/kvm), saves each with
`vsrv ctl SOCK save FILE` once its devices are set up, and turns each file
into the input fuzz-savefile.c reads:

  byte 0      flags: bit 0 keep the checksums (clear here: the target
              computes them), bit 1 --console hvc, bits 2-3 named ports
  bytes 1-96  the header's
  then        the file from offset 4096, made small: the sections one
              after another (no 4 KiB padding), each MEM section down to
              its first page that holds data (its bitmap saying so) but
              for the virtio-blk guest, whose rings
              are kept (the seeds stay under run-fuzz's 128 KiB), each
              disk's DREF naming the target's disk (64 KiB, modified at
              DISK_MTIME)

The guests: the counting guest on one vCPU, and on two with virtio-rng;
virtio-blk's tick run on a 64 KiB raw disk; virtio-net serving (user
networking); virtio-console waiting for its console's input, with two
named ports.  Run again only to change the seeds; the corpus is committed,
with what libFuzzer's -merge added and the inputs that found bugs
(regress-*), which this script does not make.

Usage: make-savefile-seeds.py BUILDDIR OUTDIR   (BUILDDIR: scripts/build's)"""
import os
import struct
import subprocess
import sys
import tempfile
import time

DISK_SIZE = 64 << 10
DISK_MTIME = 1795000000         # fuzz-savefile.c's
HEADER_KEPT = 96
ALIGN = 4096
ENTRY = 40
ID_LEN = 37                     # struct disk_layer's id


def wait_for(pred, what, timeout=60):
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            raise SystemExit(f"make-savefile-seeds: {what} did not happen")
        time.sleep(0.05)


def saved_state(build, tmp, name, args, ready, kernel_args=""):
    """Runs a guest, waits until ready(its output) is true, saves it: the
    file's bytes."""
    sock, state, out = (os.path.join(tmp, name + ext) for ext in (".sock", ".state", ".out"))
    vsrv = os.path.join(build, "src", "cli", "vsrv")
    with open(out, "wb") as f:
        p = subprocess.Popen([vsrv, "run", "--test-device", "--memory", "16M", "--control", sock,
                              "--append", kernel_args] + args,
                             stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        wait_for(lambda: ready(open(out, "rb").read()), f"{name}'s guest")
        subprocess.run([vsrv, "ctl", sock, "save", state], check=True, capture_output=True)
        p.wait(60)
    finally:
        if p.poll() is None:
            p.kill()
    with open(state, "rb") as f:
        return f.read()


def small_mem(data):
    """A MEM section with only its first page that holds data."""
    pages, = struct.unpack_from("<Q", data, len(data) - 8)
    words = (pages + 63) // 64
    bitmap = bytearray(data[len(data) - 16 - words * 8:len(data) - 16])
    trailer = data[len(data) - 16:]
    first = next((i for i in range(pages) if bitmap[i // 8] >> (i % 8) & 1), None)
    bitmap = bytearray(len(bitmap))
    if first is None:
        return bytes(bitmap) + trailer
    bitmap[first // 8] |= 1 << (first % 8)
    return data[:4096] + bytes(bitmap) + trailer


def target_dref(data):
    """A virtio-blk DREF ("VBRF") naming the target's disk: each layer
    64 KiB, modified at DISK_MTIME."""
    tag, version, n = struct.unpack_from("<4sII", data, 0)
    assert (tag, version) == (b"VBRF", 1), tag
    out, pos = bytearray(data[:12]), 12
    for _ in range(n):
        plen, = struct.unpack_from("<H", data, pos)
        pos += 2 + plen
        vhd = data[pos]
        ident = data[pos + 1:pos + 1 + ID_LEN]
        pos += 1 + ID_LEN + 8 + 8 + 4
        out += struct.pack("<H", 4) + b"disk" + bytes([vhd]) + ident + \
            struct.pack("<QQI", DISK_SIZE, DISK_MTIME, 0)
    return bytes(out)


def seed(state, flags, all_pages):
    """The fuzz target's input for a saved state."""
    table, = struct.unpack_from("<Q", state, 24)
    nr, = struct.unpack_from("<I", state, 32)
    body, entries = bytearray(), []
    for i in range(nr):
        tag, index, off, length = struct.unpack_from("<4sIQQ", state, table + i * ENTRY)
        data = state[off:off + length]
        if tag == b"MEM " and not all_pages:
            data = small_mem(data)
        elif tag == b"DREF":
            data = target_dref(data)
        entries.append(struct.pack("<4sIQQQQ", tag, index, ALIGN + len(body), len(data), 0, 0))
        body += data
    header = bytearray(state[:HEADER_KEPT])
    struct.pack_into("<QQI", header, 16, ALIGN + len(body) + nr * ENTRY, ALIGN + len(body), nr)
    return bytes([flags]) + bytes(header) + bytes(body) + b"".join(entries)


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    build, outdir = sys.argv[1:]
    guests = os.path.join(build, "tests", "guests")
    os.makedirs(outdir, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="vsrv-seeds-") as tmp:
        disk = os.path.join(tmp, "disk.img")
        with open(disk, "wb") as f:
            f.write(bytes(range(256)) * (DISK_SIZE // 256))

        def counted(n):
            return lambda out: out.count(b"cpu0 ") >= n

        runs = {
            "count": (0, False, ["--kernel", os.path.join(guests, "ctl-count.elf")], counted(3),
                      "hz=100 every=10"),
            "count-smp-rng": (0, False, ["--kernel", os.path.join(guests, "ctl-count.elf"),
                                  "--cpus", "2", "--rng"], counted(3), "hz=100 every=10"),
            "blk-tick": (0, True, ["--kernel", os.path.join(guests, "dev-virtio-blk.elf"),
                             "--disk", f"path={disk},format=raw"],
                         lambda out: out.count(b"\ntick ") >= 3, "tick hz=20"),
            "net-serve": (0, False, ["--kernel", os.path.join(guests, "dev-virtio-net.elf"),
                              "--net", "user"], lambda out: b"serve: 10.0.2.15 ready" in out, "serve"),
            "vcon-ports": (2 | 2 << 2, False, ["--kernel", os.path.join(guests, "dev-virtio-console.elf"),
                                        "--console", "hvc,socket:" + os.path.join(tmp, "con"),
                                        "--port", "org.vsrv.echo=socket:" + os.path.join(tmp, "p1"),
                                        "--port", "second=socket:" + os.path.join(tmp, "p2")],
                           lambda out: b"waiting for input on hvc0" in out, ""),
        }
        for name, (flags, all_pages, args, ready, kargs) in runs.items():
            state = saved_state(build, tmp, name, args, ready, kargs)
            with open(os.path.join(outdir, "seed-" + name), "wb") as f:
                f.write(seed(state, flags, all_pages))
        # The same file with its checksums as they are (none): the refusals
        # of a damaged file.
        with open(os.path.join(outdir, "seed-count"), "rb") as f:
            data = f.read()
        with open(os.path.join(outdir, "seed-checksums-kept"), "wb") as f:
            f.write(bytes([1]) + data[1:])


if __name__ == "__main__":
    main()
