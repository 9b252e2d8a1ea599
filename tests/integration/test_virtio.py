"""PCI and virtio, driven by micro-guests (tests/guests/dev-virtio-*.c): the
bus as a guest enumerates it, virtio-rng as a driver uses it (MSI-X, INTx,
polling, indirect descriptors, event indices, a moved BAR, saved state), the
same with each optional KVM capability hidden (the fallbacks), and a broken
or hostile driver, case by case, with the exact line the VMM logs."""
import json
import os
import re
import subprocess

from vsrvtest import VSRV, TmpDirTest, main

GUESTS = os.environ.get("VSRV_GUESTS", "")
TIMEOUT = 120
DEV = "vsrv: virtio-rng 00:01.0: "


def guest(name):
    return os.path.abspath(os.path.join(GUESTS, name + ".elf"))


def run(name, *args, hide="", **kw):
    env = dict(os.environ)
    env["VSRV_TEST_HIDE_CAPS"] = hide
    return subprocess.run([VSRV, "run", "--kernel", guest(name), "--test-device", *args],
                          capture_output=True, text=True, timeout=TIMEOUT,
                          stdin=subprocess.DEVNULL, env=env, **kw)


ENUMERATION = """\
pci 00:00.0 1b36:0008 class 060000
pci 00:01.0 1af4:1044 class ff0000 pin 1 line 17
type 1 and ECAM agree
bar1 mem32 4096 bytes at 0xc0000000
bar4 mem64 16384 bytes at 0xc0004000
"""
# Without MSI-X, BAR 1 (its table) is not there and BAR 4 comes first.
ENUMERATION_NO_MSIX = ENUMERATION.replace(
    "bar1 mem32 4096 bytes at 0xc0000000\nbar4 mem64 16384 bytes at 0xc0004000",
    "bar1 none\nbar4 mem64 16384 bytes at 0xc0000000")
CAPS_MSIX = "caps: msix 2 vectors, common, isr, notify (multiplier 4), pci_cfg\n"
CAPS_NO_MSIX = "caps: no msix, common, isr, notify (multiplier 4), pci_cfg\n"
PROBE_END = """\
features: version_1 indirect_desc event_idx
queue 0: 256 entries at most
"""
BY_MSIX = "rng: 64 bytes by MSI-X interrupt\n"
BY_INTX = "rng: 64 bytes by INTx (GSI 17, ISR 0x1)\n"
REST = """\
rng: 64 bytes polled
rng: 64 bytes through an indirect table
bar4 moved to 0xc0100000
rng: 64 bytes at the moved BAR
pci_cfg window: num_queues 1
rng ok
"""


class Rng(TmpDirTest):
    def test_driver(self):
        """MSI-X, polling, an indirect table, BAR 4 moved, the pci_cfg
        window; with every capability, then with ioeventfds hidden (the
        doorbell handled on the vCPU thread) and irqfds hidden
        (KVM_SIGNAL_MSI): the guest sees the same device."""
        for hide in ("", "IOEVENTFD", "IRQFD", "IOEVENTFD,IRQFD"):
            p = run("dev-virtio-rng", "--rng", hide=hide)
            self.assertEqual((p.returncode, p.stdout, p.stderr),
                             (0, ENUMERATION + CAPS_MSIX + PROBE_END + BY_MSIX + REST, ""),
                             hide)

    def test_intx(self):
        p = run("dev-virtio-rng", "--rng", "--append", "intx")
        self.assertEqual((p.returncode, p.stdout, p.stderr),
                         (0, ENUMERATION + CAPS_MSIX + PROBE_END + BY_INTX + REST, ""))

    def test_no_msi_at_all(self):
        """A host with neither irqfds nor KVM_SIGNAL_MSI: no MSI-X capability,
        INTx only."""
        p = run("dev-virtio-rng", "--rng", hide="IOEVENTFD,IRQFD,SIGNAL_MSI")
        self.assertEqual((p.returncode, p.stdout, p.stderr),
                         (0, ENUMERATION_NO_MSIX + CAPS_NO_MSIX + PROBE_END + BY_INTX + REST, ""))

    def test_event_idx(self):
        p = run("dev-virtio-rng", "--rng", "--append", "event-idx")
        self.assertEqual((p.returncode, p.stdout, p.stderr), (0, (
            ENUMERATION + CAPS_MSIX + PROBE_END +
            "event idx: interrupts after requests 1 and 4 of 4, avail_event 4\nrng ok\n"), ""))

    def test_checkpoint(self):
        """Saved state: every device quiesced, saved, loaded back from power-on
        and resumed between two requests; MSI-X and INTx, threads and inline."""
        for mode, by, hide in (("", BY_MSIX, ""), ("intx", BY_INTX, ""),
                               ("", BY_MSIX, "IOEVENTFD,IRQFD")):
            p = run("dev-virtio-rng", "--rng", "--append", f"checkpoint {mode}", hide=hide)
            self.assertEqual((p.returncode, p.stdout, p.stderr), (0, (
                ENUMERATION + CAPS_MSIX + PROBE_END + by + by +
                "checkpoint: saved and loaded, used idx 2\nrng ok\n"), ""), (mode, hide))

    def test_stats(self):
        """--stats counts what the device did (requests, bytes, interrupts):
        4 requests of 64 bytes, one of them polled; the doorbells, with the
        one DRIVER_OK rings.  (Handled on the vCPU thread, each doorbell is
        one notification; an eventfd may fold two into one.)"""
        p = run("dev-virtio-rng", "--rng", "--stats", hide="IOEVENTFD")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(DEV + "5 notifications, 4 requests, 256 bytes to the guest, "
                      "3 interrupts, 0 refused, 0 resets needed\n", p.stderr)

    def test_doorbells_do_not_exit(self):
        """With ioeventfds a doorbell never reaches the VMM: hiding them costs
        exactly one MMIO exit per doorbell (4)."""
        def mmio_exits(hide):
            p = run("dev-virtio-rng", "--rng", "--stats", hide=hide)
            self.assertEqual(p.returncode, 0, p.stderr)
            line = [x for x in p.stderr.splitlines() if x.startswith("vsrv: exits: MMIO ")]
            return int(line[0].split()[-1])
        self.assertEqual(mmio_exits("IOEVENTFD") - mmio_exits(""), 4)

    def test_no_device_without_rng(self):
        """Without --rng the bus has its host bridge only."""
        p = run("dev-virtio-rng")
        self.assertEqual((p.returncode, p.stderr), (1, ""))
        self.assertEqual(p.stdout, "pci 00:00.0 1b36:0008 class 060000\n"
                         "type 1 and ECAM agree\nFAIL no virtio-rng\n")

    def test_config_file(self):
        cfg = os.path.join(self.dir, "vm.json")
        with open(cfg, "w") as f:
            json.dump({"version": 1, "kernel": guest("dev-virtio-rng"), "rng": True}, f)
        p = subprocess.run([VSRV, "run", "--config", cfg, "--test-device"],
                           capture_output=True, text=True, timeout=TIMEOUT,
                           stdin=subprocess.DEVNULL)
        self.assertEqual((p.returncode, p.stderr), (0, ""))
        self.assertTrue(p.stdout.endswith("rng ok\n"), p.stdout)
        with open(cfg, "w") as f:
            json.dump({"version": 1, "kernel": guest("dev-virtio-rng"), "rng": "yes"}, f)
        p = subprocess.run([VSRV, "run", "--config", cfg], capture_output=True, text=True,
                           timeout=TIMEOUT, stdin=subprocess.DEVNULL)
        self.assertEqual((p.returncode, p.stderr),
                         (2, f"vsrv: {cfg}: rng: expected true or false\n"))

    def test_mptable(self):
        """The MP table describes the PCI bus (0) and its device's INTA on
        IOAPIC pin 17; ISA becomes bus 1."""
        p = run("mptable-smp", "--rng", "--cpus", "2")
        self.assertEqual(p.returncode, 0x55, p.stdout + p.stderr)
        self.assertIn('bus id=00 type="PCI   "\nbus id=01 type="ISA   "\n', p.stdout)
        self.assertIn("intsrc type=00 flags=0000 bus=00 irq=04 apic=02 pin=11\n", p.stdout)
        self.assertIn("intsrc type=00 flags=0000 bus=01 irq=00 apic=02 pin=00\n", p.stdout)


# Each case of tests/guests/dev-virtio-bad.c: what the guest prints, and the
# line the VMM logs.
BAD = {
    "desc-outside": ("needs reset, config interrupt",
                     "needs reset: queue 0: chain at head 0: descriptor 0 "
                     "(64 bytes at 0x40000000) is outside guest memory"),
    "desc-hole": ("needs reset, config interrupt",
                  "needs reset: queue 0: chain at head 0: descriptor 0 "
                  "(64 bytes at 0xd0000000) is outside guest memory"),
    "desc-wrap": ("needs reset, config interrupt",
                  "needs reset: queue 0: chain at head 0: descriptor 0 "
                  "(8192 bytes at 0xfffffffffffff000) is outside guest memory"),
    "chain-loop": ("needs reset, config interrupt",
                   "needs reset: queue 0: chain at head 0 is longer than its queue "
                   "of 8 descriptors (a loop?)"),
    "indirect-loop": ("needs reset, config interrupt",
                      "needs reset: queue 0: chain at head 0 is longer than its indirect "
                      "table of 2 descriptors (a loop?)"),
    "indirect-nested": ("needs reset, config interrupt",
                        "needs reset: queue 0: chain at head 0: indirect descriptor 0 is "
                        "indirect again"),
    "indirect-unnegotiated": ("needs reset, config interrupt",
                              "needs reset: queue 0: chain at head 0: descriptor 0 is "
                              "indirect, but VIRTIO_F_INDIRECT_DESC was not negotiated"),
    "next-range": ("needs reset, config interrupt",
                   "needs reset: queue 0: chain at head 0: descriptor 0 links to 200, "
                   "past its queue of 8"),
    "head-range": ("needs reset, config interrupt",
                   "needs reset: queue 0: available entry 0 names descriptor 9, past the "
                   "queue's size (8)"),
    "avail-idx": ("needs reset, config interrupt",
                  "needs reset: queue 0: the available index moved from 0 to 100, more "
                  "than the queue's size (8) ahead"),
    "queue-size": ("needs reset",
                   "needs reset: queue 0: size 100 is not a power of 2 from 1 to 256"),
    "ring-outside": ("needs reset",
                     "needs reset: queue 0: the descriptor table (128 bytes at 0x40000000) "
                     "is outside guest memory"),
    "ring-align": ("needs reset",
                   "needs reset: queue 0: the used ring at 0x200002 is not 4-byte aligned"),
    "status-order": ("needs reset",
                     "needs reset: status 0x05 sets DRIVER_OK before FEATURES_OK"),
    "status-clear": ("needs reset, config interrupt",
                     "needs reset: status 0x03 clears bits of 0x0f (only a reset, 0, may)"),
    "enable-early": ("needs reset", "needs reset: queue 0 enabled before FEATURES_OK"),
    "no-version-1": ("features refused",
                     "refused: FEATURES_OK: the driver did not accept VIRTIO_F_VERSION_1"),
    "readable": ("refused",
                 "refused: request at head 0 has device-readable buffers (64 bytes)"),
    "bad-width": ("refused",
                  "refused: a 1-byte write at offset 0x16 of the common configuration "
                  "(queue_select)\n" + DEV +
                  "refused: a 4-byte write at offset 0x12 of the common configuration "
                  "(num_queues)\n" + DEV +
                  "refused: queue 0: queue_enable written 0 (only a reset disables a queue)\n" +
                  DEV + "refused: queue 0: queue_size written while the queue is enabled"),
}


class HostileDriver(TmpDirTest):
    def test_each_case(self):
        """Each case alone: its outcome, its log line, the device recovered
        after a reset, the VMM still running (the guest exits 0)."""
        for case, (outcome, line) in BAD.items():
            p = run("dev-virtio-bad", "--rng", "--append", f"case={case}")
            self.assertEqual((p.returncode, p.stdout, p.stderr),
                             (0, f"{case}: {outcome}, recovered\nbad ok\n", DEV + line + "\n"),
                             case)

    def test_all_in_one_boot_inline(self):
        """Every case in turn in one VM, its work on the vCPU thread (no
        ioeventfds)."""
        p = run("dev-virtio-bad", "--rng", "--append", "case=all", "--stats",
                hide="IOEVENTFD")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(p.stdout, "".join(f"{case}: {outcome}, recovered\n"
                                           for case, (outcome, _) in BAD.items()) + "bad ok\n")
        want = "".join(DEV + line + "\n" for _, line in BAD.values())
        # (The exit counts depend on how long the guest polled.)
        self.assertRegex(p.stderr, "^" + re.escape(want) + r"vsrv: exits: IO \d+\n"
                         r"vsrv: exits: MMIO \d+\n" + re.escape(
                             DEV + "62 notifications, 20 requests, 1216 bytes to the guest, "
                             "20 interrupts, 6 refused, 16 resets needed\n") + "$")

    def test_log_limit(self):
        """A guest that keeps breaking rules: 32 lines, then one saying the
        rest is not logged."""
        p = run("dev-virtio-bad", "--rng", "--append", "case=all twice")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        lines = "".join(DEV + line + "\n" for _, line in BAD.values()).splitlines(True)
        self.assertEqual(p.stderr, "".join((lines * 2)[:32]) + DEV +
                         "further problems are not logged\n")


if __name__ == "__main__":
    main()
