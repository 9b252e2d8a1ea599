"""vsrv run's confinement (src/vmm/sandbox.c): no_new_privs and a seccomp
allow-list before the first KVM_RUN; a forbidden call ends the VMM with one
line naming it.  Every micro-guest test (test_cpu.py, test_run.py) runs
under the same filter: it cannot be turned off."""
import os
import signal
import subprocess
import sys
import time

from vsrvtest import (VSRV, TmpDirTest, children, comm, main, proc_status, release_build,
                      vsrv)

GUESTS = os.environ.get("VSRV_GUESTS", "")
SANITIZE = os.environ.get("VSRV_SANITIZE", "")


def guest(name):
    return os.path.join(GUESTS, name + ".elf")


def vm_process(pid):
    """The VM's process: vsrv's one child, "vsrv-vm" (src/vmm/supervise.c;
    the console is vsrv's own)."""
    kids = children(pid)
    assert [comm(k) for k in kids] == ["vsrv-vm"], kids
    return kids[0]


class SandboxTest(TmpDirTest):
    @classmethod
    def setUpClass(cls):
        if SANITIZE:
            sys.stderr.write(f"[sanitizer build ({SANITIZE}): the allow-list also has the calls "
                             "AddressSanitizer and LeakSanitizer make (sandbox-rules.c, "
                             "sanitizer_calls); the filter is on]\n")

    def start_halted(self, *args):
        """A VM that stays up (its vCPU halted for good), and the pid of the
        process running it."""
        proc = subprocess.Popen([VSRV, "run", "--kernel", guest("exit-hlt"), "--test-device",
                                 "--append", "mode=forever", *args],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.assertEqual(proc.stdout.readline(), "halting with interrupts disabled\n")
        return proc

    def test_forbidden_call_ends_the_vmm_with_one_line(self):
        line = "vsrv: seccomp: forbidden system call 41 (socket)\n"
        for where in ("main", "vcpu"):
            for reboot in ("exit", "restart"):
                env = dict(os.environ, VSRV_TEST_FORBIDDEN_SYSCALL=where)
                p = subprocess.run([VSRV, "run", "--kernel", guest("hello64"), "--test-device",
                                    "--cpus", "2", "--on-reboot", reboot],
                                   capture_output=True, text=True, env=env, timeout=60)
                self.assertEqual((p.returncode, p.stdout, p.stderr), (1, "", line),
                                 (where, reboot))

    def test_filter_and_no_new_privs_are_in_place(self):
        # The VM runs in a child of vsrv's, whatever --on-reboot says; vsrv,
        # which has the console, stays unconfined.
        for reboot in ("exit", "restart"):
            proc = self.start_halted("--on-reboot", reboot)
            try:
                vm_pid = vm_process(proc.pid)
                st = proc_status(vm_pid)
                self.assertEqual((st["Seccomp"], st["NoNewPrivs"]), ("2", "1"), reboot)
                for pid in [proc.pid] + [c for c in children(proc.pid) if c != vm_pid]:
                    st = proc_status(pid)
                    self.assertEqual((st["Seccomp"], st["NoNewPrivs"]), ("0", "0"), reboot)
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.communicate(timeout=10)

    def test_killing_vsrv_ends_the_vm_process(self):
        proc = self.start_halted()
        kids = children(proc.pid)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=10)
        for pid in kids:
            for _ in range(100):
                if not os.path.exists(f"/proc/{pid}") or \
                        proc_status(pid).get("State", "").startswith("Z"):
                    break
                time.sleep(0.05)
            else:
                self.fail(f"vsrv's child {pid} (of {kids}) outlived vsrv")

    def test_vm_process_killed_is_reported(self):
        proc = self.start_halted()
        os.kill(vm_process(proc.pid), signal.SIGKILL)
        out, err = proc.communicate(timeout=10)
        self.assertEqual((proc.returncode, out, err),
                         (1, "", "vsrv: the VM's process was killed by signal 9 (Killed)\n"))

    def test_console_is_vsrv_s_alone(self):
        """The console lives in vsrv, which forks the boots: vsrv has no
        other thread (a fork hands the child the locks other threads
        hold), and the VM's process holds none of the console's files:
        neither the file it writes nor the socket clients connect to."""
        for spec in ("file:console.log", "socket:console.sock"):
            path = self.p(spec.split(":")[1])
            proc = self.start_halted("--console", f"{spec.split(':')[0]}:{path}")
            try:
                self.assertEqual(proc_status(proc.pid)["Threads"], "1")
                vm_pid = vm_process(proc.pid)
                own = {os.readlink(f"/proc/{proc.pid}/fd/{fd}")
                       for fd in os.listdir(f"/proc/{proc.pid}/fd")}
                vms = {os.readlink(f"/proc/{vm_pid}/fd/{fd}")
                       for fd in os.listdir(f"/proc/{vm_pid}/fd")}
                if spec.startswith("file:"):
                    self.assertIn(path, own)
                    self.assertNotIn(path, vms)
                else:
                    # The listening socket, by its inode: vsrv's alone.
                    with open("/proc/net/unix") as f:
                        ino = [line.split()[6] for line in f
                               if line.rstrip().endswith(" " + path)]
                    self.assertEqual(len(ino), 1, ino)
                    self.assertIn(f"socket:[{ino[0]}]", own)
                    self.assertNotIn(f"socket:[{ino[0]}]", vms)
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.communicate(timeout=10)

    def test_sigterm_stops_the_vm_cleanly(self):
        # Once to stop; the VM's process tears the VM down and ends with 0.
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            proc = self.start_halted()
            proc.send_signal(sig)
            out, err = proc.communicate(timeout=10)
            self.assertEqual((proc.returncode, out, err),
                             (0, "", f"vsrv: stopped by {sig.name}; the VM was powered off\n"))

    def test_exit_paths_under_the_filter(self):
        # Crash, reboot and error reports are written after the filter is
        # in: each must still come out whole.
        p = vsrv("run", "--kernel", guest("exit-triple"), "--test-device", "--on-reboot", "exit",
                 "--stats", check=False)
        self.assertEqual((p.returncode, p.stderr),
                         (3, "vsrv: exits: IO 21\nvsrv: exits: SHUTDOWN 1\n"
                             "vsrv: guest rebooted (vCPU 0: triple fault)\n"))
        p = vsrv("run", "--kernel", guest("exit-emul"), "--test-device", "--host-quirks", "off",
                 "--append", "mode=popcnt", check=False)
        self.assertIn(p.returncode, (0, 4))
        self.assertNotIn("seccomp", p.stderr)

    def test_release_build_reads_the_rtc(self):
        """The release build's filter, which lacks the calls the sanitizers
        make (open among them): what this suite's sanitizer build would let
        through unnoticed.  The RTC's time registers go through gmtime_r(),
        whose first call in a process reads the time zone from a file
        unless sandbox_enter() has set it up.  scripts/test builds build/
        (the release build) before it runs the tests."""
        release, env = release_build()
        p = subprocess.run([release, "run", "--kernel", guest("dev-rtc"), "--test-device",
                            "--memory", "64M"], capture_output=True, text=True, timeout=60,
                           stdin=subprocess.DEVNULL, env=env)
        self.assertEqual((p.returncode, p.stdout.splitlines()[-1:], p.stderr),
                         (0, ["rtc ok"], ""))


if __name__ == "__main__":
    main()
