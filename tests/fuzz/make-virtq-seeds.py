#!/usr/bin/env python3
"""Writes the seed inputs of the virtio fuzz corpus (tests/fuzz/corpus/virtq/
seed-*), in the two input formats tests/fuzz/fuzz-virtq.c reads: queue mode
(a byte of parameters, then guest memory holding a split queue) with chains
of each shape a driver makes and each a hostile one might; and transport mode
(a device driven through its registers as a guest driver does, properly and
in the wrong order).  Run again only to change the seeds; the corpus is
committed.

Usage: make-virtq-seeds.py OUTDIR"""
import os
import struct
import sys

MEMSZ = 16 << 10
DESC, AVAIL, USED = 0x0000, 0x2000, 0x3000
BUF = 0x1000                    # buffers from here (queue mode)
F_NEXT, F_WRITE, F_INDIRECT = 1, 2, 4


def desc(addr, length, flags=F_WRITE, nxt=0):
    return struct.pack("<QIHH", addr, length, flags, nxt)


def queue_seed(size_log2, chains, event_idx=False, indirect=False, tables=(),
               avail_idx=None, used_event=0, avail_flags=0):
    """chains: heads made available in order; tables: (gpa, bytes) to place."""
    mem = bytearray(MEMSZ)
    size = 1 << size_log2
    for gpa, data in tables:
        mem[gpa:gpa + len(data)] = data
    for i, head in enumerate(chains):
        struct.pack_into("<H", mem, AVAIL + 4 + 2 * (i % size), head)
    struct.pack_into("<HH", mem, AVAIL, avail_flags,
                     len(chains) if avail_idx is None else avail_idx)
    struct.pack_into("<H", mem, AVAIL + 4 + 2 * size, used_event)
    head = size_log2 << 2 | (1 if event_idx else 0) | (2 if indirect else 0)
    # Trailing zeros add nothing: the target pads memory with them.
    return bytes([head]) + bytes(mem).rstrip(b"\0")


def queue_seeds():
    s = {}
    s["one"] = queue_seed(3, [0], tables=[(DESC, desc(BUF, 64))])
    s["chain"] = queue_seed(3, [0], tables=[(DESC, desc(BUF, 16, F_WRITE | F_NEXT, 1) +
                                             desc(BUF + 16, 48))])
    s["several"] = queue_seed(4, [0, 1, 2], event_idx=True, tables=[
        (DESC, desc(BUF, 32) + desc(BUF + 32, 32) + desc(BUF + 64, 32))], used_event=1)
    s["indirect"] = queue_seed(3, [0], indirect=True, tables=[
        (DESC, desc(0x1800, 32, F_INDIRECT)),
        (0x1800, desc(BUF, 16, F_WRITE | F_NEXT, 1) + desc(BUF + 16, 48))])
    s["direct-then-indirect"] = queue_seed(3, [0], indirect=True, tables=[
        (DESC, desc(BUF, 8, F_WRITE | F_NEXT, 1) + desc(0x1800, 16, F_INDIRECT)),
        (0x1800, desc(BUF + 8, 56))])
    s["readable"] = queue_seed(3, [0], tables=[(DESC, desc(BUF, 64, 0))])
    s["read-then-write"] = queue_seed(3, [0], tables=[
        (DESC, desc(BUF, 16, F_NEXT, 1) + desc(BUF + 16, 48))])
    s["write-then-read"] = queue_seed(3, [0], tables=[
        (DESC, desc(BUF, 16, F_WRITE | F_NEXT, 1) + desc(BUF + 16, 48, 0))])
    s["loop"] = queue_seed(3, [0], tables=[(DESC, desc(BUF, 8, F_WRITE | F_NEXT, 1) +
                                            desc(BUF, 8, F_WRITE | F_NEXT, 0))])
    s["indirect-loop"] = queue_seed(3, [0], indirect=True, tables=[
        (DESC, desc(0x1800, 32, F_INDIRECT)),
        (0x1800, desc(BUF, 8, F_WRITE | F_NEXT, 1) + desc(BUF, 8, F_WRITE | F_NEXT, 0))])
    s["outside"] = queue_seed(3, [0], tables=[(DESC, desc(0x40000000, 64))])
    s["wrap"] = queue_seed(3, [0], tables=[(DESC, desc(0xfffffffffffff000, 0x2000))])
    s["next-range"] = queue_seed(3, [0], tables=[(DESC, desc(BUF, 8, F_WRITE | F_NEXT, 9))])
    s["head-range"] = queue_seed(3, [9], tables=[(DESC, desc(BUF, 8))])
    s["avail-jump"] = queue_seed(3, [0], avail_idx=100, tables=[(DESC, desc(BUF, 8))])
    s["no-interrupt"] = queue_seed(3, [0, 0], avail_flags=1, tables=[(DESC, desc(BUF, 64))])
    s["zero-length"] = queue_seed(3, [0], tables=[(DESC, desc(BUF, 0, F_WRITE | F_NEXT, 1) +
                                                   desc(BUF, 64))])
    return s


# Transport mode: records of (kind, width code | write, offset, value).
CFG, ECAM, BAR4, BAR1, MEM = 0, 1, 2, 3, 4
W = 4                            # the write bit of the width code
WIDTH = {1: 0, 2: 1, 4: 2, 8: 3}
SLOT = 1                         # virtio-rng's slot
RING = 0x1000                    # rings (transport mode): desc, avail, used
RBUF = 0x2000


def rec(kind, width, off, value=0, write=True):
    return struct.pack("<BBHI", kind, WIDTH[width] | (W if write else 0), off,
                       value & 0xffffffff)


def common(off, width, value, write=True):
    return rec(BAR4, width, off, value, write)


def proper_init(size=8, vectors=True, features_hi=1, features_lo=1 << 28):
    r = [common(0x14, 1, 0), common(0x14, 1, 1), common(0x14, 1, 3),
         common(0x08, 4, 0), common(0x0c, 4, features_lo),
         common(0x08, 4, 1), common(0x0c, 4, features_hi),
         common(0x14, 1, 0x0b)]
    if vectors:
        # MSI-X table: vector 0 and 1 to the LAPIC, unmasked; enable.
        for v in (0, 1):
            r += [rec(BAR1, 4, 16 * v, 0xfee00000), rec(BAR1, 4, 16 * v + 8, 0x40 + v),
                  rec(BAR1, 4, 16 * v + 12, 0)]
        r += [rec(CFG, 2, SLOT << 8 | 0x42, 0x8000), common(0x10, 2, 0)]
    r += [common(0x16, 2, 0), common(0x18, 2, size), common(0x1a, 2, 1 if vectors else 0xffff),
          common(0x20, 4, RING), common(0x24, 4, 0), common(0x28, 4, RING + 0x400),
          common(0x2c, 4, 0), common(0x30, 4, RING + 0x800), common(0x34, 4, 0),
          common(0x1c, 2, 1), common(0x14, 1, 0x0f)]
    return r


def ring_memory(chains):
    mem = bytearray(RBUF + 256)
    for i, (addr, length, flags, nxt) in enumerate(chains):
        mem[RING + 16 * i:RING + 16 * i + 16] = desc(addr, length, flags, nxt)
    struct.pack_into("<HHH", mem, RING + 0x400, 0, 1, 0)
    return bytes(mem)


def transport_seed(mem, records, device=0x80):
    return bytes([device]) + struct.pack("<H", len(mem)) + mem + b"".join(records)


# The virtio-console (byte 0x40 of the first): its control queues' rings
# and buffers; messages from the driver at CBUF, receive buffers after.
CONSOLE = 0xc0
CRING_RX, CRING_TX, CBUF = 0x1000, 0x2000, 0x3000
F_MULTIPORT = 1


def queue_records(q, ring, size=8):
    return [common(0x16, 2, q), common(0x18, 2, size), common(0x1a, 2, 0xffff),
            common(0x20, 4, ring), common(0x24, 4, 0), common(0x28, 4, ring + 0x400),
            common(0x2c, 4, 0), common(0x30, 4, ring + 0x800), common(0x34, 4, 0),
            common(0x1c, 2, 1)]


def console_init():
    return ([common(0x14, 1, 0), common(0x14, 1, 1), common(0x14, 1, 3),
             common(0x08, 4, 0), common(0x0c, 4, 1 << 28 | 1 << F_MULTIPORT),
             common(0x08, 4, 1), common(0x0c, 4, 1), common(0x14, 1, 0x0b)] +
            queue_records(2, CRING_RX) + queue_records(3, CRING_TX) + [common(0x14, 1, 0x0f)])


def console_memory(messages, rx=4):
    mem = bytearray(CBUF + 0x800)
    for i in range(rx):
        mem[CRING_RX + 16 * i:CRING_RX + 16 * i + 16] = desc(CBUF + 0x400 + 128 * i, 128)
        struct.pack_into("<H", mem, CRING_RX + 0x404 + 2 * i, i)
    struct.pack_into("<HH", mem, CRING_RX + 0x400, 0, rx)
    for i, m in enumerate(messages):
        mem[CBUF + 16 * i:CBUF + 16 * i + len(m)] = m
        mem[CRING_TX + 16 * i:CRING_TX + 16 * i + 16] = desc(CBUF + 16 * i, len(m), 0)
        struct.pack_into("<H", mem, CRING_TX + 0x404 + 2 * i, i)
    struct.pack_into("<HH", mem, CRING_TX + 0x400, 0, len(messages))
    return bytes(mem)


def cmsg(id, event, value):
    return struct.pack("<IHH", id, event, value)


def console_seeds():
    kicks = [common(0x3008, 2, 0), common(0x300c, 2, 0)]
    s = {}
    s["t-console-handshake"] = transport_seed(console_memory(
        [cmsg(0xffffffff, 0, 1)] + [cmsg(p, 3, 1) for p in range(3)] +
        [cmsg(p, 6, 1) for p in range(3)]), console_init() + kicks + kicks, CONSOLE)
    s["t-console-hostile"] = transport_seed(console_memory(
        [cmsg(0, 0, 1)[:4], cmsg(9, 3, 1), cmsg(0, 99, 0), cmsg(0, 1, 0), cmsg(1, 6, 1),
         cmsg(0xffffffff, 0, 1), cmsg(0xffffffff, 0, 1), cmsg(1, 6, 7)]),
        console_init() + kicks + kicks, CONSOLE)
    return s


def transport_seeds():
    one = ring_memory([(RBUF, 64, F_WRITE, 0)])
    kick = common(0x3000, 2, 0)
    s = {}
    s["t-proper"] = transport_seed(one, proper_init() + [kick])
    s["t-intx"] = transport_seed(one, proper_init(vectors=False) +
                                 [kick, common(0x1000, 1, 0, False)])
    s["t-status-order"] = transport_seed(one, [common(0x14, 1, 1), common(0x14, 1, 5), kick])
    s["t-queue-size"] = transport_seed(one, proper_init(size=100) + [kick])
    s["t-no-version-1"] = transport_seed(one, proper_init(features_hi=0) + [kick])
    s["t-reset-again"] = transport_seed(one, proper_init() + [kick, common(0x14, 1, 0)] +
                                        proper_init() + [kick])
    s["t-move-bar"] = transport_seed(one, proper_init() + [
        rec(CFG, 2, SLOT << 8 | 0x04, 0), rec(CFG, 4, SLOT << 8 | 0x20, 0xc0100004),
        rec(CFG, 2, SLOT << 8 | 0x04, 6), kick])
    s["t-sizing"] = transport_seed(one, [rec(CFG, 4, SLOT << 8 | r, 0xffffffff)
                                         for r in (0x10, 0x14, 0x20, 0x24)] +
                                   [rec(CFG, 4, SLOT << 8 | r, 0, False) for r in (0x14, 0x20)])
    s["t-ecam"] = transport_seed(b"", [rec(ECAM, 4, SLOT << 8 | r, 0, False)
                                       for r in range(0, 256, 4)])
    s["t-pci-cfg"] = transport_seed(b"", [rec(CFG, 1, SLOT << 8 | 0x84, 4),
                                          rec(CFG, 4, SLOT << 8 | 0x88, 0x12),
                                          rec(CFG, 4, SLOT << 8 | 0x8c, 2),
                                          rec(CFG, 4, SLOT << 8 | 0x90, 0, False)])
    s["t-ring-changes"] = transport_seed(one, proper_init() + [
        kick, rec(MEM, 4, RING + 0x402, 5), rec(MEM, 4, RING, 0x40000000), kick])
    return s


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for name, data in {**queue_seeds(), **transport_seeds(), **console_seeds()}.items():
        with open(os.path.join(out, "seed-" + name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
