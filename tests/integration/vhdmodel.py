"""vhdtool (tests/tools/vhdtool.c) from Python, and an in-memory model of
what a disk must read as after the writes a test makes through it.

vhdpattern() computes the same bytes as vhdtool's `write ... SEED`, so a
test knows what every byte of the disk must be without trusting vsrv."""
import os

from vsrvtest import run

VHDTOOL = os.environ.get("VHDTOOL_BIN", "vhdtool")

_M64 = (1 << 64) - 1


def vhdpattern(seed, length):
    """splitmix64 as a stream, each output little-endian: vhdtool's bytes."""
    out = bytearray()
    s = seed & _M64
    for _ in range((length + 7) // 8):
        s = (s + 0x9E3779B97F4A7C15) & _M64
        z = s
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
        out += (z ^ (z >> 31)).to_bytes(8, "little")
    return bytes(out[:length])


def vhdtool(*args, check=True):
    return run(VHDTOOL, *args, check=check)


CHUNK = 1 << 20


class Model:
    """The bytes a disk must hold: starts as zeros (or as a copy of a
    parent's model) and follows each write made through vhdtool.  Sparse,
    in 1 MiB chunks, so that a 10 GiB disk costs only what is written."""

    def __init__(self, size, parent=None):
        self.size = size
        self.chunks = {k: bytearray(v) for k, v in parent.chunks.items()} if parent else {}

    def put(self, off, data):
        while data:
            k, at = divmod(off, CHUNK)
            n = min(len(data), CHUNK - at)
            c = self.chunks.setdefault(k, bytearray(CHUNK))
            c[at:at + n] = data[:n]
            off, data = off + n, data[n:]

    def get(self, off, length):
        out = bytearray()
        while length:
            k, at = divmod(off, CHUNK)
            n = min(length, CHUNK - at)
            c = self.chunks.get(k)
            out += c[at:at + n] if c is not None else bytes(n)
            off, length = off + n, length - n
        return bytes(out)

    def bytes(self):
        return self.get(0, self.size)

    def write(self, disk, off, length, seed, *opts):
        vhdtool(*opts, "write", disk, off, length, seed)
        self.put(off, vhdpattern(seed, length))

    def zero(self, disk, off, length, *opts):
        vhdtool(*opts, "zero", disk, off, length)
        self.put(off, bytes(length))

    def save(self, path):
        """Writes the model as a sparse raw file, for qemu-img compare."""
        with open(path, "wb") as f:
            for k in sorted(self.chunks):
                f.seek(k * CHUNK)
                f.write(self.chunks[k][:max(0, min(CHUNK, self.size - k * CHUNK))])
            f.truncate(self.size)
