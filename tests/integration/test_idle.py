"""An idle guest (tests/guests/idle-timer.c): the LAPIC timer in periodic
mode, the vCPU halted between its interrupts.  The workload of bench/vmm-run's
idle-cost case: here, that it counts exactly the ticks it was asked for, at
the rate it was asked for, and that none of them brings the vCPU out to the
VMM (KVM's LAPIC takes the timer, the EOI and the HLT in the kernel); its
EOI by x2APIC and its cost lines; and vsrv's halt polling (--halt-poll-ns),
by KVM's kvm_halt_poll_ns tracepoint, which fires as KVM changes how long it
polls a vCPU and never when a VM's limit is 0."""
import os
import re
import shutil
import subprocess
import time

from vsrvtest import VSRV, TmpDirTest, main

GUEST = os.path.join(os.environ.get("VSRV_GUESTS", ""), "idle-timer.elf")
# This host's KVM ends an interrupt as it delivers it (see idle-timer.c).
EMULATING_HOST = os.path.isdir("/sys/module/kvm_pvm")


def run(*args):
    start = time.monotonic()
    p = subprocess.run([VSRV, "run", "--kernel", GUEST, "--test-device", "--stats", *args],
                       capture_output=True, text=True, timeout=120,
                       stdin=subprocess.DEVNULL)
    return p, time.monotonic() - start


class IdleTest(TmpDirTest):
    def check(self, hz, ticks, extra=""):
        p, took = run("--append", f"hz={hz} ticks={ticks} {extra}")
        out = f"idle: LAPIC timer at {hz} Hz, halting between ticks\nidle: {ticks} ticks\n"
        # One exit to the VMM per byte on the debug port and one for the
        # exit port: none for the ticks.
        self.assertEqual((p.returncode, p.stdout, p.stderr),
                         (0, out, f"vsrv: exits: IO {len(out) + 1}\n"))
        # The timer cannot run fast; it may run late on a loaded host (and
        # on hosts that emulate the guest's handler, a late tick waits for
        # the next period), so the bound above is loose.
        self.assertGreaterEqual(took, ticks / hz * 0.98, (hz, ticks))
        self.assertLess(took, ticks / hz * 3 + 5, (hz, ticks))

    def test_1000hz(self):
        self.check(1000, 300)

    def test_100hz(self):
        self.check(100, 20)

    def test_x2apic_eoi(self):
        self.check(1000, 300, "eoi=x2apic")

    def test_padded_handler(self):
        self.check(100, 20, "pad=64")

    def test_no_eoi(self):
        if not EMULATING_HOST:
            self.skipTest("eoi=none ticks on only where KVM ends the interrupt itself "
                          "(kvm_pvm); here the first tick would be the last")
        self.check(1000, 300, "eoi=none")

    def test_cost(self):
        p, _ = run("--append", "cost")
        names = ["dec+jnz", "nop", "decq-mem", "eoi-mmio", "eoi-x2apic"]
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual([m.group(1) for m in
                          re.finditer(r"^idle: cost (\S+) \d+\.\d\d us$", p.stdout, re.M)],
                         names, p.stdout)
        self.assertEqual(len(p.stdout.splitlines()), len(names), p.stdout)

    def test_usage(self):
        for bad in ("hz=0", "eoi=lapic", "pad=65"):
            p, _ = run("--append", bad)
            self.assertEqual((p.returncode, p.stdout), (2, ""), bad)
        p, _ = run("--halt-poll-ns", "1000000001")
        self.assertEqual((p.returncode, p.stdout, p.stderr),
                         (2, "", "vsrv: --halt-poll-ns: '1000000001' is not a number from 0 "
                          "to 1000000000\n"))


class HaltPollTest(TmpDirTest):
    """At 5000 Hz the vCPU halts for less than KVM's 200 us: with polling
    allowed KVM grows and shrinks its poll (the tracepoint fires), with
    vsrv's default or 0 it never polls."""

    def polls(self, *args):
        out = self.p("perf.txt")
        p = subprocess.run(["perf", "stat", "-x,", "-o", out, "-e", "kvm:kvm_halt_poll_ns",
                            "--", VSRV, "run", "--kernel", GUEST, "--test-device",
                            "--append", "hz=5000 ticks=3000", *args],
                           capture_output=True, text=True, timeout=120,
                           stdin=subprocess.DEVNULL)
        self.assertEqual((p.returncode, p.stdout),
                         (0, "idle: LAPIC timer at 5000 Hz, halting between ticks\n"
                          "idle: 3000 ticks\n"), p.stderr)
        with open(out) as f:
            counts = [l.split(",") for l in f if "kvm_halt_poll_ns" in l]
        self.assertEqual(len(counts), 1, counts)
        return int(counts[0][0])

    def test_halt_poll(self):
        if not shutil.which("perf"):
            self.skipTest("no perf on this host to count kvm:kvm_halt_poll_ns")
        probe = subprocess.run(["perf", "stat", "-e", "kvm:kvm_halt_poll_ns", "true"],
                               capture_output=True, text=True)
        if probe.returncode != 0:
            self.skipTest(f"perf cannot count kvm:kvm_halt_poll_ns here: "
                          f"{probe.stderr.strip()[-200:]}")
        self.assertEqual(self.polls(), 0)
        self.assertEqual(self.polls("--halt-poll-ns", "0"), 0)
        self.assertGreater(self.polls("--halt-poll-ns", "200000"), 0)


if __name__ == "__main__":
    main()
