"""An idle guest (tests/guests/idle-timer.c): the LAPIC timer in periodic
mode, the vCPU halted between its interrupts.  The workload of bench/vmm-run's
idle-cost case: here, that it counts exactly the ticks it was asked for, at
the rate it was asked for, and that none of them brings the vCPU out to the
VMM (KVM's LAPIC takes the timer, the EOI and the HLT in the kernel); its
EOI by x2APIC and its cost lines."""
import os
import re
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


if __name__ == "__main__":
    main()
