#!/usr/bin/env python3
"""Writes the seed inputs of virtio-blk's fuzz corpus (tests/fuzz/corpus/
virtio-blk/seed-*) in the format tests/fuzz/fuzz-virtio-blk.c reads: a byte
of set-up (read-only disk, features, indirect descriptors, queue size), then
guest memory holding a split queue, with requests of each type a driver
makes and each mistake a hostile one might.  Run again only to change the
seeds; the corpus is committed.

Usage: make-virtio-blk-seeds.py OUTDIR"""
import os
import struct
import sys

MEMSZ = 16 << 10
DESC, AVAIL = 0x0000, 0x2000
HDR, DATA, SEGS, STATUS = 0x1000, 0x1200, 0x1100, 0x1f00
F_NEXT, F_WRITE, F_INDIRECT = 1, 2, 4
T_IN, T_OUT, T_FLUSH, T_GET_ID, T_DISCARD, T_ZEROES = 0, 1, 4, 8, 11, 13
RO, FLUSH, DISCARD, ZEROES, INDIRECT = 1, 2, 4, 8, 16
ALL = FLUSH | DISCARD | ZEROES
SECTORS = 128


def desc(addr, length, flags=0, nxt=0):
    return struct.pack("<QIHH", addr, length, flags, nxt)


def hdr(t, sector=0):
    return struct.pack("<IIQ", t, 0, sector)


def seg(sector, n, flags=0):
    return struct.pack("<QII", sector, n, flags)


def seed(setup, chains, places, size_log2=3):
    """chains: lists of (addr, len, flags) linked in order, one head each;
    places: (gpa, bytes) to put in memory."""
    mem = bytearray(MEMSZ)
    for gpa, data in places:
        mem[gpa:gpa + len(data)] = data
    i = 0
    heads = []
    for c in chains:
        heads.append(i)
        for k, (addr, length, flags) in enumerate(c):
            last = k == len(c) - 1
            mem[DESC + 16 * i:DESC + 16 * i + 16] = desc(
                addr, length, flags | (0 if last else F_NEXT), 0 if last else i + 1)
            i += 1
    size = 1 << size_log2
    for k, h in enumerate(heads):
        struct.pack_into("<H", mem, AVAIL + 4 + 2 * (k % size), h)
    struct.pack_into("<HH", mem, AVAIL, 0, len(heads))
    return bytes([setup | size_log2 << 5]) + bytes(mem).rstrip(b"\0")


def request(t, sector, data_len, data_flags, status=STATUS, hdr_at=HDR):
    c = [(hdr_at, 16, 0)]
    if data_len:
        c.append((DATA, data_len, data_flags))
    c.append((status, 1, F_WRITE))
    return c, [(hdr_at, hdr(t, sector))]


def one(setup, t, sector=0, data_len=0, data_flags=0, extra=()):
    c, places = request(t, sector, data_len, data_flags)
    return seed(setup, [c], places + list(extra))


def seeds():
    s = {}
    s["read"] = one(ALL, T_IN, 0, 512, F_WRITE)
    s["read-last"] = one(ALL, T_IN, SECTORS - 8, 4096, F_WRITE)
    s["write"] = one(ALL, T_OUT, 8, 1024, 0)
    s["write-through"] = one(0, T_OUT, 8, 1024, 0)
    s["write-ro"] = one(RO | ALL, T_OUT, 8, 512, 0)
    s["flush"] = one(ALL, T_FLUSH)
    s["get-id"] = one(ALL, T_GET_ID, 0, 20, F_WRITE)
    s["get-id-short"] = one(ALL, T_GET_ID, 0, 4, F_WRITE)
    s["discard"] = one(ALL, T_DISCARD, 0, 32, 0, [(DATA, seg(8, 8) + seg(64, 16))])
    s["zeroes"] = one(ALL, T_ZEROES, 0, 32, 0, [(DATA, seg(8, 8) + seg(64, 16, 1))])
    s["zeroes-through"] = one(DISCARD | ZEROES, T_ZEROES, 0, 16, 0, [(DATA, seg(8, 8))])
    s["discard-unnegotiated"] = one(FLUSH, T_DISCARD, 0, 16, 0, [(DATA, seg(8, 8))])
    s["discard-unmap"] = one(ALL, T_DISCARD, 0, 16, 0, [(DATA, seg(8, 8, 1))])
    s["zeroes-flags"] = one(ALL, T_ZEROES, 0, 16, 0, [(DATA, seg(8, 8, 6))])
    s["segments-odd"] = one(ALL, T_DISCARD, 0, 20, 0, [(DATA, seg(8, 8))])
    s["segments-many"] = one(ALL, T_ZEROES, 0, 33 * 16, 0,
                             [(DATA, b"".join(seg(i, 1) for i in range(33)))])
    s["segment-past-end"] = one(ALL, T_DISCARD, 0, 16, 0, [(DATA, seg(SECTORS - 1, 2))])
    s["segment-huge"] = one(ALL, T_DISCARD, 0, 16, 0, [(DATA, seg(0, 0xffffffff))])
    s["past-end"] = one(ALL, T_IN, SECTORS - 1, 1024, F_WRITE)
    s["sector-overflow"] = one(ALL, T_IN, 2 ** 64 - 1, 512, F_WRITE)
    s["sector-wrap"] = one(ALL, T_IN, 2 ** 55, 512, F_WRITE)
    s["odd-length"] = one(ALL, T_IN, 0, 100, F_WRITE)
    s["read-readable"] = one(ALL, T_IN, 0, 512, 0)
    s["write-writable"] = one(ALL, T_OUT, 0, 512, F_WRITE)
    s["unknown-type"] = one(ALL, 42)
    s["short-header"] = seed(ALL, [[(HDR, 8, 0), (STATUS, 1, F_WRITE)]], [(HDR, hdr(T_IN))])
    s["no-status"] = seed(ALL, [[(HDR, 16, 0)]], [(HDR, hdr(T_FLUSH))])
    s["status-readable"] = seed(ALL, [[(HDR, 16, 0), (DATA, 512, 0), (STATUS, 1, 0)]],
                                [(HDR, hdr(T_OUT))])
    # The header split over two buffers, the status sharing the data's.
    s["split"] = seed(ALL, [[(HDR, 4, 0), (HDR + 4, 12, 0), (DATA, 513, F_WRITE)]],
                      [(HDR, hdr(T_IN, 2))])
    # Several requests, some at one head, one through an indirect table.
    reqs = [request(T_IN, 0, 512, F_WRITE, STATUS),
            request(T_OUT, 4, 512, 0, STATUS + 1, HDR + 16),
            request(T_FLUSH, 0, 0, 0, STATUS + 2, HDR + 32)]
    s["several"] = seed(ALL, [c for c, _ in reqs], [p for _, pl in reqs for p in pl])
    table = b"".join(desc(a, n, f | (F_NEXT if k < 2 else 0), k + 1 if k < 2 else 0)
                     for k, (a, n, f) in enumerate(request(T_IN, 1, 512, F_WRITE)[0]))
    s["indirect"] = seed(ALL | INDIRECT, [[(0x1800, len(table), F_INDIRECT)]],
                         [(0x1800, table), (HDR, hdr(T_IN, 1))])
    # A read into the rings themselves: the device changes what it reads.
    s["read-over-rings"] = seed(ALL, [[(HDR, 16, 0), (0x0000, 512, F_WRITE),
                                       (STATUS, 1, F_WRITE)]], [(HDR, hdr(T_IN, 3))])
    mem = seed(ALL, [request(T_IN, 0, 512, F_WRITE)[0]], [(HDR, hdr(T_IN))], 4)
    same = bytearray(mem + bytes(AVAIL + 64 - len(mem) + 1))
    struct.pack_into("<H", same, 1 + AVAIL + 2, 16)     # 16 entries, all head 0
    s["same-head"] = bytes(same)
    return s


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for name, data in seeds().items():
        with open(os.path.join(out, "seed-" + name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
