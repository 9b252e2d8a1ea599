#!/usr/bin/env python3
"""Writes the seed inputs of the virtio-net fuzz corpus (tests/fuzz/corpus/net/
seed-*), in the two input formats tests/fuzz/fuzz-net.c reads: chain mode (a
byte of parameters, then guest memory holding a split queue) with the chains a
driver makes for each queue and those a hostile one might; and device mode (a
NIC set up by the harness, then guest memory with buffers posted on its rings,
then events: doorbells, frames from the network, checkpoints, resets).  Run
again only to change the seeds; the corpus is committed.

Usage: make-net-seeds.py OUTDIR"""
import os
import struct
import sys

MEMSZ = 64 << 10
F_NEXT, F_WRITE, F_INDIRECT = 1, 2, 4
HDR = bytes(12)
ARP = (b"\xff" * 6 + bytes.fromhex("525400123456") + b"\x08\x06" +
       bytes.fromhex("0001080006040001525400123456") + bytes([10, 0, 2, 15]) + bytes(6) +
       bytes([10, 0, 2, 2]))


def desc(addr, length, flags=0, nxt=0):
    return struct.pack("<QIHH", addr, length, flags, nxt)


def place(mem, gpa, data):
    mem[gpa:gpa + len(data)] = data


def chain_seed(chains, tables, size_log2=3, event_idx=False, indirect=False):
    """chains: heads made available in order; tables: (gpa, bytes)."""
    mem = bytearray(MEMSZ)
    size = 1 << size_log2
    for gpa, data in tables:
        place(mem, gpa, data)
    for i, head in enumerate(chains):
        struct.pack_into("<H", mem, 0x2000 + 4 + 2 * (i % size), head)
    struct.pack_into("<HH", mem, 0x2000, 0, len(chains))
    head = size_log2 << 2 | (1 if event_idx else 0) | (2 if indirect else 0)
    return bytes([head]) + bytes(mem).rstrip(b"\0")


def chain_seeds():
    s = {}
    buf = 0x4000
    s["tx-arp"] = chain_seed([0], [(0, desc(buf, 12 + len(ARP))), (buf, HDR + ARP)])
    s["tx-split-header"] = chain_seed([0], [
        (0, desc(buf, 6, F_NEXT, 1) + desc(buf + 6, 6 + len(ARP))), (buf, HDR + ARP)])
    s["tx-indirect"] = chain_seed([0], indirect=True, tables=[
        (0, desc(0x3800, 32, F_INDIRECT)),
        (0x3800, desc(buf, 12, F_NEXT, 1) + desc(buf + 12, len(ARP))), (buf, HDR + ARP)])
    s["tx-offload"] = chain_seed([0], [(0, desc(buf, 12 + len(ARP))),
                                       (buf, b"\x01" + bytes(11) + ARP)])
    s["tx-short"] = chain_seed([0], [(0, desc(buf, 8))])
    s["tx-big"] = chain_seed([0], [(0, desc(0x4000, 12 + 65537 - 0x4000))])
    s["rx-one"] = chain_seed([0], [(0, desc(buf, 1526, F_WRITE))])
    s["rx-split"] = chain_seed([0, 2], [(0, desc(buf, 12, F_WRITE | F_NEXT, 1) +
                                         desc(buf + 12, 1514, F_WRITE) +
                                         desc(buf + 2048, 20, F_WRITE))])
    s["rx-overlap"] = chain_seed([0], [(0, desc(buf, 64, F_WRITE | F_NEXT, 1) +
                                        desc(buf + 8, 2000, F_WRITE))])
    return s


def device_seed(mem_parts, records, flags=0):
    mem = bytearray(0x6000)
    for gpa, data in mem_parts:
        place(mem, gpa, data)
    mem = bytes(mem).rstrip(b"\0")
    return bytes([0x80 | flags]) + struct.pack("<H", len(mem)) + mem + b"".join(records)


def rec(op, v=0, b3=0):
    return bytes([op]) + struct.pack("<H", v) + bytes([b3])


def rx_posted(n, size=1526, flags=F_WRITE):
    """n receive buffers of `size` at 0x8000 up, posted on queue 0."""
    parts = [(0x0000, b"".join(desc(0x8000 + 2048 * i, size, flags) for i in range(n))),
             (0x1000, struct.pack("<HH", 0, n) + b"".join(struct.pack("<H", i)
                                                          for i in range(n)))]
    return parts


def tx_posted(frames):
    parts = [(0x3000, b"".join(desc(0x5100 + 128 * i, len(f)) for i, f in enumerate(frames))),
             (0x4000, struct.pack("<HH", 0, len(frames)) +
              b"".join(struct.pack("<H", i) for i in range(len(frames))))]
    parts += [(0x5100 + 128 * i, f) for i, f in enumerate(frames)]
    return parts


def device_seeds():
    s = {}
    frame_at = [(0x5800, ARP)]
    s["dev-rx"] = device_seed(rx_posted(4) + frame_at, [rec(1), rec(2, 28, 0x58)] * 3)
    s["dev-rx-none-posted"] = device_seed(frame_at, [rec(2, 28, 0x58)] * 70 + [rec(1)])
    s["dev-rx-bad"] = device_seed(rx_posted(2, 8) + frame_at, [rec(2, 28, 0x58), rec(1)])
    s["dev-rx-readable"] = device_seed(rx_posted(2, 64, 0) + frame_at, [rec(2, 28, 0x58)])
    s["dev-tx"] = device_seed(tx_posted([HDR + ARP, bytes(8), b"\x01" + bytes(11) + ARP]),
                              [rec(0)])
    s["dev-checkpoint"] = device_seed(rx_posted(4) + frame_at + tx_posted([HDR + ARP]),
                                      [rec(2, 28, 0x58), rec(4), rec(0), rec(2, 28, 0x58),
                                       rec(5, 1), rec(1)], flags=1)
    s["dev-ring-change"] = device_seed(rx_posted(4) + frame_at,
                                       [rec(3, 0x1002, 200), rec(2, 28, 0x58), rec(5, 1),
                                        rec(2, 28, 0x58)], flags=3)
    return s


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for name, data in {**chain_seeds(), **device_seeds()}.items():
        with open(os.path.join(out, "seed-" + name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
