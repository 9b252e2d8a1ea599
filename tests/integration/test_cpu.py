"""vsrv run: the micro-guest suite (tests/guests/), one exit path of the
VMM's vCPU loop, CPU mode or feature at a time, with exact outcomes.

Some outcomes depend on the host: on a host whose KVM has no hardware
virtualization (the kvm_pvm module, see shared/docs/test-host-kvm.md) guest
kernel code is emulated and some instructions are not; on a host with
VT-x/AMD-V they run.  host_kind() decides which, in one place, and each
such test prints the host it ran on."""
import os
import re
import signal
import subprocess
import sys
import time

from vsrvtest import VSRV, TmpDirTest, main, vsrv

GUESTS = os.environ.get("VSRV_GUESTS", "")


def guest(name):
    return os.path.join(GUESTS, name + ".elf")


def host_kind():
    """'kvm_pvm' (no hardware virtualization: CPL0 emulated) or 'hardware'."""
    return "kvm_pvm" if os.path.exists("/sys/module/kvm_pvm") else "hardware"


def say(msg):
    sys.stderr.write(f"[{host_kind()}] {msg}\n")


def run_guest(name, *args, append=None, timeout=60):
    cmd = ["run", "--kernel", guest(name), "--test-device", *args]
    if append is not None:
        cmd += ["--append", append]
    return vsrv(*cmd, check=False, timeout=timeout)


def crash_re(first_bytes):
    """The one line vsrv prints for an instruction the host cannot emulate."""
    return re.compile(
        r"vsrv: guest crashed: emulation failure \(suberror 1\): vCPU 0: "
        r"rip=[0-9a-f]{16} rsp=[0-9a-f]{16} rflags=[0-9a-f]{8} rax=[0-9a-f]{16} .*"
        r"cs=0008\(64-bit\) cr0=[0-9a-f]{8} cr3=[0-9a-f]{8} cr4=[0-9a-f]{8} efer=500 "
        r"instruction: " + re.escape(first_bytes) + r"( [0-9a-f]{2})*\n\Z")


def tree_cpu_seconds(pid):
    """User + system CPU time of a process and its live descendants."""
    total = 0.0
    todo = [pid]
    tick = os.sysconf("SC_CLK_TCK")
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for t in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{t}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except FileNotFoundError:
            pass
    return total


class PortIOTest(TmpDirTest):
    def test_every_size_and_string_io(self):
        for cpl in ("0", "3"):
            p = run_guest("exit-pio", append=f"cpl={cpl}")
            self.assertEqual(
                (p.returncode, p.stdout, p.stderr),
                (7, f"pio at cpl {cpl}\n"
                    "ABCDEF\n"
                    "in unbacked: ff ffff ffffffff\n"
                    "in debug: 0 0 0\n"
                    "string I/O in one exit\n"
                    "wwxxyyz\n"
                    "insb 16 unbacked: all ff, next 55\n"
                    "insl 4 debug: all 0, next 55\n", ""), cpl)


class MMIOTest(TmpDirTest):
    def test_unbacked_reads_ones_writes_ignored(self):
        for cpl in ("0", "3"):
            p = run_guest("exit-mmio", append=f"cpl={cpl}")
            self.assertEqual(
                (p.returncode, p.stdout, p.stderr),
                (9, f"mmio at cpl {cpl}\n"
                    "read: ff ffff ffffffff ffffffffffffffff\n"
                    "after writes: ff ffff ffffffff ffffffffffffffff\n", ""), cpl)


class StatsTest(TmpDirTest):
    def test_exact_exit_counts(self):
        for cpl in ("0", "3"):
            p = run_guest("exit-count", "--stats", append=f"n=1000 m=7 cpl={cpl}")
            self.assertEqual((p.returncode, p.stdout, p.stderr),
                             (0, "", "vsrv: exits: IO 1001\nvsrv: exits: MMIO 7\n"), cpl)

    def test_per_vcpu_counts(self):
        p = run_guest("exit-count", "--stats", "--cpus", "2", append="n=10")
        self.assertEqual((p.returncode, p.stderr),
                         (0, "vsrv: exits: IO 11 (vCPU 0: 11, vCPU 1: 0)\n"))

    def test_no_stats_without_option(self):
        p = run_guest("exit-count", append="n=10")
        self.assertEqual((p.returncode, p.stderr), (0, ""))


class HaltTest(TmpDirTest):
    def test_halt_woken_by_lapic_timer(self):
        # HLT never reaches the VMM (in-kernel LAPIC): the vCPU sleeps in
        # KVM and the LAPIC timer's interrupt wakes it.
        p = run_guest("exit-hlt", "--stats")
        self.assertEqual((p.returncode, p.stdout),
                         (0, "halting with interrupts enabled\n"
                             "woken by vector 0x40, 1 tick\n"))
        self.assertNotIn("HLT", p.stderr)

    def test_halt_with_interrupts_off_sleeps_until_killed(self):
        # The documented behaviour: nothing can wake the vCPU, vsrv waits
        # (without using CPU) until it is stopped; it does not exit itself.
        proc = subprocess.Popen([VSRV, "run", "--kernel", guest("exit-hlt"), "--test-device",
                                 "--append", "mode=forever"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            self.assertEqual(proc.stdout.readline(), "halting with interrupts disabled\n")
            before = tree_cpu_seconds(proc.pid)
            time.sleep(1.5)
            used = tree_cpu_seconds(proc.pid) - before
            self.assertIsNone(proc.poll())
            self.assertLess(used, 0.3, "a halted guest must not spin")
        finally:
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=10)
        self.assertEqual((proc.returncode, out, err),
                         (0, "", "vsrv: stopped by SIGTERM; the VM was powered off\n"))


class TripleFaultTest(TmpDirTest):
    def test_triple_fault_exits_with_reboot_status(self):
        p = run_guest("exit-triple", "--on-reboot", "exit")
        self.assertEqual((p.returncode, p.stdout, p.stderr),
                         (3, "loading an empty IDT\n",
                          "vsrv: guest rebooted (vCPU 0: triple fault)\n"))

    def test_triple_fault_restarts_by_default(self):
        proc = subprocess.Popen([VSRV, "run", "--kernel", guest("exit-triple"), "--test-device"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            for _ in range(3):
                self.assertEqual(proc.stdout.readline(), "loading an empty IDT\n")
        finally:
            proc.kill()
            proc.communicate(timeout=10)


class EmulationTest(TmpDirTest):
    """Instructions hosts without hardware virtualization cannot emulate at
    CPL0, with the host quirks on and off."""

    def test_int3(self):
        ok = ("vector 3 at rip=", "rip is after the int3\ncontinued after int3 at cpl 0\n")
        for quirks in ("on", "off"):
            p = run_guest("exit-emul", "--host-quirks", quirks, append="mode=int3")
            if quirks == "on" or host_kind() == "hardware":
                say(f"INT3 at CPL0, quirks {quirks}: delivered as #BP")
                self.assertEqual((p.returncode, p.stderr), (0, ""), quirks)
                self.assertTrue(p.stdout.startswith(ok[0]) and p.stdout.endswith(ok[1]), p.stdout)
                self.assertIn(" cpl=0\n", p.stdout)
            else:
                say("INT3 at CPL0, quirks off: the host cannot emulate it")
                self.assertEqual((p.returncode, p.stdout), (4, ""))
                self.assertRegex(p.stderr, crash_re("cc"))

    def test_int3_user_mode_runs_natively(self):
        for quirks in ("on", "off"):
            p = run_guest("exit-emul", "--host-quirks", quirks, append="mode=int3-user")
            self.assertEqual((p.returncode, p.stderr), (0, ""))
            self.assertRegex(p.stdout, r"\Avector 3 at rip=[0-9a-f]+ cpl=3\n"
                             r"rip is after the int3\ncontinued after int3 at cpl 3\n\Z")

    def test_fwait(self):
        for quirks in ("on", "off"):
            p = run_guest("exit-emul", "--host-quirks", quirks, append="mode=fwait")
            if quirks == "on" or host_kind() == "hardware":
                say(f"FWAIT at CPL0, quirks {quirks}: runs (stepped over on kvm_pvm)")
                self.assertEqual((p.returncode, p.stdout, p.stderr),
                                 (0, "continued after fwait\n", ""))
            else:
                say("FWAIT at CPL0, quirks off: the host cannot emulate it")
                self.assertEqual((p.returncode, p.stdout), (4, ""))
                self.assertRegex(p.stderr, crash_re("9b"))

    def test_popcnt_and_xsave(self):
        # No quirk covers these: the guest must not use them (Linux is told
        # clearcpuid=popcnt and noxsave); on this host they end the VM.
        for mode, insn, out in (("popcnt", "f3 48 0f b8", "popcnt = 32\n"),
                                ("xsave", "0f ae", "xsave wrote xstate_bv 1\n")):
            p = run_guest("exit-emul", "--host-quirks", "on", append=f"mode={mode}")
            if host_kind() == "hardware":
                say(f"{mode} at CPL0 runs")
                self.assertEqual((p.returncode, p.stdout, p.stderr), (0, out, ""))
            else:
                say(f"{mode} at CPL0: emulation failure, status 4")
                self.assertEqual((p.returncode, p.stdout), (4, ""))
                self.assertRegex(p.stderr, crash_re(insn))


class ExceptionTest(TmpDirTest):
    def test_unhandled_exception_reports_vector_and_rip(self):
        for mode, cpl in (("ud2", 0), ("ud2-user", 3)):
            p = run_guest("exit-emul", append=f"mode={mode}")
            self.assertEqual((p.returncode, p.stderr), (0x46, ""))
            self.assertRegex(p.stdout, r"\Aexception 6 \(#UD\) at rip=[0-9a-f]+ error=0 "
                             rf"cpl={cpl} rflags=[0-9a-f]+\n\Z")


class CpuidTest(TmpDirTest):
    def test_topology_and_kvm_leaves(self):
        for cpus in (1, 2, 4):
            for quirks in ("on", "off"):
                p = run_guest("cpu-cpuid", "--cpus", str(cpus), "--host-quirks", quirks)
                # HTT is the host's with one CPU, set with more.
                out = p.stdout.replace("htt 0", "htt 1") if cpus == 1 else p.stdout
                pv = "0" if quirks == "on" else "1"
                shift = (cpus - 1).bit_length()
                self.assertEqual(
                    (p.returncode, out, p.stderr),
                    (0, f"leaf 1: apic id 0, count {cpus}, htt 1, hypervisor 1\n"
                        "leaf 0xb.0: shift 0, count 1, level 0 type 1, x2apic id 0\n"
                        f"leaf 0xb.1: shift {shift}, count {cpus}, level 1 type 2, x2apic id 0\n"
                        "leaf 0xb.2: shift 0, count 0, level 2 type 0, x2apic id 0\n"
                        "leaf 0x40000000: KVMKVMKVM\n"
                        f"leaf 0x40000001: pv_tlb_flush {pv}, pv_send_ipi {pv}, "
                        f"pv_sched_yield {pv}\n", ""), (cpus, quirks))


class UserModeSpeedTest(TmpDirTest):
    LINE = re.compile(r"\Acpl (\d): (\d+) iterations, sum (\d+), (\d+) cycles\n\Z")

    def loop(self, cpl, n):
        t0 = time.monotonic()
        p = run_guest("cpu-user", append=f"cpl={cpl} n={n}")
        wall = time.monotonic() - t0
        m = self.LINE.match(p.stdout)
        self.assertTrue(m, p.stdout)
        self.assertEqual((p.returncode, m.group(1), int(m.group(2)), int(m.group(3))),
                         (0, str(cpl), n, n * (n + 1) // 2))
        return wall, int(m.group(4)) / n

    def test_cpl3_loop_runs_natively(self):
        wall3, per3 = self.loop(3, 10_000_000)
        wall0, per0 = self.loop(0, 10_000)
        say(f"10M iterations at CPL3: {wall3:.3f} s ({per3:.1f} cycles each); "
            f"10k at CPL0: {wall0:.3f} s ({per0:.0f} cycles each)")
        self.assertLess(wall3, 1.0)
        if host_kind() == "kvm_pvm":
            self.assertGreater(per0, 20 * per3, "CPL0 is emulated here")


class SmpTest(TmpDirTest):
    def test_guest_starts_every_vcpu_with_init_sipi(self):
        for cpus in (1, 2, 4):
            p = run_guest("smp-start", "--cpus", str(cpus))
            aps = "".join(f"ap: apic id {i}, x2apic id {i}, lapic id {i}\n"
                          for i in range(1, cpus))
            self.assertEqual(
                (p.returncode, p.stdout, p.stderr),
                (cpus, f"bsp: apic id 0, {cpus} cpus; 1 running before INIT/SIPI\n"
                       f"{aps}{cpus} cpus running\n", ""), cpus)


class ModesTest(TmpDirTest):
    LONG = "long64: cpl 0, leaving for 32-bit protected mode\n"
    PROT = "prot32: abcdef\nprot32: unbacked port and mmio read all ones\n"

    def test_protected_mode(self):
        p = run_guest("cpu-modes", append="mode=prot32")
        self.assertEqual((p.returncode, p.stdout, p.stderr), (32, self.LONG + self.PROT, ""))

    def test_real_mode(self):
        p = run_guest("cpu-modes", append="mode=real")
        self.assertEqual((p.returncode, p.stdout, p.stderr),
                         (16, self.LONG + self.PROT +
                          "real16: ABCDEF\nreal16: unbacked port reads all ones\n"
                          "real16: int 0x30 through the IVT\n", ""))


if __name__ == "__main__":
    main()
