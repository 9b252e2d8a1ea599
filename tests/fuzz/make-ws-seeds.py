#!/usr/bin/env python3
"""Writes the seed inputs of the WebSocket fuzz corpus (tests/fuzz/corpus/
ws/seed-*), in the format tests/fuzz/fuzz-ws.c reads: a byte choosing how
the bytes arrive (bits 0-6: recv() size / 2; bit 7: a server socket that
takes 3 bytes at a time), then what a client sends.  The seeds are what a
console viewer sends (input in binary and text messages, fragments with a
ping between them, a close) and what a hostile one might (unmasked frames,
lengths beyond the bound in 16 and 64 bits, invalid UTF-8, fragmented and
oversized control frames, reserved bits and opcodes, a continuation with
nothing before it, a close with a bad code).  Run again only to change the
seeds; the corpus is committed.

Usage: make-ws-seeds.py OUTDIR"""
import os
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from vsrvdtest import ws_frame  # noqa: E402

MASK = b"\x11\x22\x33\x44"


def frame(op, payload=b"", fin=True, mask=True, rsv=0, length=None):
    return ws_frame(op, payload, fin, MASK if mask else None, rsv, length)


def close(code, reason=b""):
    return frame(0x8, struct.pack("!H", code) + reason)


SEEDS = {
    "input": frame(0x2, b"hello, guest\n") + frame(0x1, "h\u00e9llo\n".encode()),
    "fragments-ping": frame(0x2, b"fra", fin=False) + frame(0x9, b"p") +
                      frame(0x0, b"gm", fin=False) + frame(0x0, b"ents\n"),
    "close": frame(0x2, b"Q") + close(1000, b"left"),
    "close-empty": frame(0x8),
    "pong-unasked": frame(0xA, b"x") + frame(0x2, b"y"),
    "unmasked": frame(0x2, b"x", mask=False),
    "too-big-16": frame(0x2, b"z" * 5000),
    "too-big-64": frame(0x2, b"", length=1 << 40),
    "bad-utf8": frame(0x1, b"\xc3"),
    "bad-utf8-split": frame(0x1, b"\xe2\x82", fin=False) + frame(0x0, b"\xac"),
    "ctrl-fragmented": frame(0x9, b"p", fin=False),
    "ctrl-too-long": frame(0x9, b"p" * 126),
    "rsv": frame(0x2, b"x", rsv=4),
    "opcode-reserved": frame(0x3, b"x"),
    "continuation-first": frame(0x0, b"x"),
    "data-inside-fragments": frame(0x2, b"a", fin=False) + frame(0x2, b"b"),
    "close-bad-code": close(1005),
    "close-long-reason": close(1000, b"r" * 123),
    "after-close": close(1000) + frame(0x2, b"late"),
    "truncated-head": frame(0x2, b"x" * 300)[:3],
    "big-message-ok": frame(0x2, b"m" * 4096) + frame(0x9, b""),
}


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for i, (name, data) in enumerate(sorted(SEEDS.items())):
        for j, mode in enumerate((0x7f, 0x00, 0x83)):
            with open(os.path.join(out, f"seed-{name}-{j}"), "wb") as f:
                f.write(bytes([mode]) + data)


if __name__ == "__main__":
    main()
