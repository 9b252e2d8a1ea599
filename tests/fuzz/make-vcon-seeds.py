#!/usr/bin/env python3
"""Writes the seed inputs of virtio-console's control-message fuzz corpus
(tests/fuzz/corpus/vcon/seed-*), in the format tests/fuzz/fuzz-vcon.c reads:
a configuration byte, then operations.  The seeds are the exchanges a driver
makes (Linux's handshake, a port opened and closed, the host side coming and
going, saved state) and those a hostile one might (messages too short, for
ports that do not exist, out of order, again, of events only a device sends;
saved state cut short or changed).  Run again only to change the seeds; the
corpus is committed.

Usage: make-vcon-seeds.py OUTDIR"""
import os
import struct
import sys

DEVICE_READY, PORT_ADD, PORT_REMOVE, PORT_READY = 0, 1, 2, 3
CONSOLE_PORT, RESIZE, PORT_OPEN, PORT_NAME = 4, 5, 6, 7
BAD_ID = 0xffffffff
RECEIVE, HOST, DELIVER, RESET, ROUND_TRIP, LOAD = range(6)


def msg(id, event, value, length=8):
    m = struct.pack("<IHH", id, event, value)[:length]
    return bytes([RECEIVE, length]) + m


def host(port, open_):
    return bytes([HOST, port | (0x80 if open_ else 0)])


def deliver(n=1):
    return bytes([DELIVER]) * n


def handshake(ports):
    """Linux's: DEVICE_READY, each PORT_ADD answered with PORT_READY, the
    console and the named ports opened."""
    s = msg(BAD_ID, DEVICE_READY, 1) + deliver(ports)
    for p in range(ports):
        s += msg(p, PORT_READY, 1)
    s += deliver(2 * ports + 1)
    for p in range(ports):
        s += msg(p, PORT_OPEN, 1)
    return s


def load(state):
    return bytes([LOAD, len(state)]) + state


def saved(ports, device_ready, flags, queue, names=None):
    """A vcon_ctrl_save() stream: flags per port, queue of (id, event, value)."""
    names = names or [b""] + [n.encode() for n in ("org.vsrv.agent", "a", "port-3", "p.4",
                                                      "p_5")][:ports - 1]
    s = b"VCCT" + struct.pack("<IIB", 1, ports, device_ready)
    for i in range(ports):
        s += bytes([len(names[i])]) + names[i] + bytes([flags[i]])
    s += struct.pack("<I", len(queue))
    for id, event, value in queue:
        s += struct.pack("<IHH", id, event, value)
    return s


def seeds():
    s = {}
    s["handshake-1"] = bytes([0x80]) + handshake(1)
    s["handshake-3"] = bytes([0x82]) + handshake(3)
    s["handshake-8"] = bytes([0x87]) + handshake(8)
    s["no-console"] = bytes([0x02]) + handshake(3)
    s["host-comes-and-goes"] = bytes([0x82]) + host(1, True) + handshake(3) + host(1, False) + \
        host(1, True) + host(2, True) + deliver(3) + host(2, False) + deliver(2)
    s["guest-opens-and-closes"] = bytes([0x81]) + handshake(2) + msg(1, PORT_OPEN, 0) + \
        msg(1, PORT_OPEN, 1)
    s["reset-midway"] = bytes([0x82]) + msg(BAD_ID, DEVICE_READY, 1) + deliver(1) + \
        bytes([RESET]) + handshake(3)
    s["round-trip"] = bytes([0x82]) + host(2, True) + msg(BAD_ID, DEVICE_READY, 1) + \
        deliver(2) + bytes([ROUND_TRIP]) + msg(1, PORT_READY, 1) + bytes([ROUND_TRIP]) + \
        deliver(5) + bytes([ROUND_TRIP])
    s["failures"] = bytes([0x81]) + msg(BAD_ID, DEVICE_READY, 0) + \
        msg(BAD_ID, DEVICE_READY, 1) + deliver(2) + msg(1, PORT_READY, 0) + \
        msg(1, PORT_READY, 1) + deliver(2)
    bad = msg(0, DEVICE_READY, 1, 4) + msg(9, PORT_READY, 1) + msg(BAD_ID, PORT_OPEN, 1) + \
        msg(0, 99, 0) + msg(0, PORT_ADD, 0) + msg(0, PORT_NAME, 1) + msg(0, RESIZE, 0) + \
        msg(1, PORT_READY, 1) + msg(BAD_ID, DEVICE_READY, 2)
    s["hostile"] = bytes([0x82]) + bad + handshake(3) + bad + msg(1, PORT_OPEN, 7) + \
        msg(BAD_ID, DEVICE_READY, 1) + msg(2, PORT_READY, 1)
    s["load-good"] = bytes([0x82]) + load(saved(3, 1, [9, 11, 0], [
        (2, PORT_ADD, 0), (0, CONSOLE_PORT, 1), (1, PORT_NAME, 1), (1, PORT_OPEN, 1)])) + \
        deliver(4) + msg(2, PORT_READY, 1) + deliver(2)
    s["load-bad"] = bytes([0x82]) + load(saved(3, 1, [9, 11, 13], [
        (1, PORT_OPEN, 1), (1, PORT_OPEN, 0)])) + load(saved(3, 0, [8, 0, 0], [])) + \
        load(saved(3, 1, [16, 0, 0], [])) + load(saved(2, 1, [9, 9], [])) + \
        load(saved(3, 1, [9, 9, 9], [], [b"", b"other", b"a"])) + \
        load(saved(3, 1, [9, 0, 0], [(0, PORT_NAME, 1)])) + \
        load(saved(3, 1, [9, 0, 0], [(7, PORT_ADD, 0)])) + \
        load(saved(3, 1, [9, 0, 0], [(0, PORT_ADD, 0)] * 25)) + \
        load(saved(3, 1, [9, 0, 0], [])[:-3]) + load(saved(3, 1, [1, 0, 0], [])) + handshake(3)
    return s


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for name, data in seeds().items():
        with open(os.path.join(out, "seed-" + name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
