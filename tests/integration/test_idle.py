"""An idle guest (tests/guests/idle-timer.c): the LAPIC timer in periodic
mode, the vCPU halted between its interrupts.  The workload of bench/vmm-run's
idle-cost case: here, that it counts exactly the ticks it was asked for, at
the rate it was asked for, and that none of them brings the vCPU out to the
VMM (KVM's LAPIC takes the timer, the EOI and the HLT in the kernel)."""
import os
import subprocess
import time

from vsrvtest import VSRV, TmpDirTest, main

GUEST = os.path.join(os.environ.get("VSRV_GUESTS", ""), "idle-timer.elf")


def run(*args):
    start = time.monotonic()
    p = subprocess.run([VSRV, "run", "--kernel", GUEST, "--test-device", "--stats", *args],
                       capture_output=True, text=True, timeout=120,
                       stdin=subprocess.DEVNULL)
    return p, time.monotonic() - start


class IdleTest(TmpDirTest):
    def check(self, hz, ticks):
        p, took = run("--append", f"hz={hz} ticks={ticks}")
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

    def test_usage(self):
        p, _ = run("--append", "hz=0")
        self.assertEqual((p.returncode, p.stdout), (2, ""))


if __name__ == "__main__":
    main()
