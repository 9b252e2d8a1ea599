"""Real Linux under vsrv run: the project's small guest (tools/guest/: Linux
6.1 from tinyconfig, a busybox initramfs) booted on two vCPUs.

A boot takes about two minutes on the development and CI machines, whose KVM
emulates guest kernel code instruction by instruction and cannot run guest
user space at all (docs/test-host-kvm.md in shared/): so there are few boots,
each checking all it can at once, and everything it checks there is what the
kernel printed on its serial console (--console file:PATH).  On a host with
hardware virtualization the same boot goes on into the guest's /init, which
runs a command and powers off; on the others the test prints what it left
out on a line starting "skip:".

Where guest kernel code is emulated, nothing the guest decompresses itself
is booted: the uncompressed vmlinux, and the uncompressed initramfs.cpio (its
gunzip would take minutes there).  The guest is built by tools/guest/build
on first use (about 10 minutes) and cached outside the tree.  VSRV_SLOW_TESTS=1 adds a boot of the bzImage
(minutes of emulated decompression here)."""
import hashlib
import os
import re
import signal
import subprocess
import time
import unittest

from ctltest import Client
from vsrvtest import SRCDIR, VSRV, TmpDirTest, main

GUEST_TOOLS = os.path.join(SRCDIR, "tools", "guest")
# What the kernel needs here; vsrv appends what the host needs (quirks.c).
# earlyprintk puts the kernel's first lines on the UART at once, so a console
# that stays empty means no UART, not a slow boot.  clocksource=jiffies:
# the guest's periodic tick (HZ_PERIODIC, on the local APIC's TSC deadline,
# which only has one-shot mode) catches up each tick it missed, one
# tick_periodic() at a time, once its clocksource is a real one
# (tick_handle_periodic): switched to kvm-clock after minutes of an
# emulated boot whose ticks came late (the jiffies clock it had until then
# lagging the host's by as much), it had tens of thousands of ticks to
# catch up, at a few milliseconds of emulated code each, and on a loaded
# host, more than the 10 ms a tick lasts: it never caught up (both vCPUs
# found in scheduler_tick and RCU's tick work, minutes after "Switched to
# clocksource kvm-clock").  On jiffies the catching up never starts;
# kvm-clock still times printk's stamps (sched_clock) and the TSC deadline
# still drives the tick.
APPEND = ("console=ttyS0 earlyprintk=serial,ttyS0,115200 reboot=t panic=-1 nokaslr "
          "lpj=1000000 clocksource=jiffies")
CPUS = 2
BOOT_TIMEOUT = 600          # seconds; a boot takes 100-160 s here, more under load
QUIET_LIMIT = 60            # seconds without a byte on the console
SLOW = os.environ.get("VSRV_SLOW_TESTS") == "1"

# What a boot proves, in the order the kernel prints it.
KERNEL_LINES = [
    ("the kernel's banner", r"Linux version 6\.1\.\d+"),
    # ACPI (src/vmm/acpi.c, docs/vmm-devices.md): the tables found through
    # the zero page, the CPUs and interrupts from the MADT, the DSDT loaded.
    ("the ACPI tables at the RSDP", r"ACPI: RSDP 0x00000000000E0000 000024 \(v02 VSRV  \)"),
    ("the PM timer from the FADT", r"ACPI: PM-Timer IO Port: 0x608"),
    ("the SCI's override, level and active high",
     r"ACPI: INT_SRC_OVR \(bus 0 bus_irq 9 global_irq 9 high level\)"),
    ("the CPUs from the MADT", r"ACPI: Using ACPI \(MADT\) for SMP configuration information"),
    (f"{CPUS} CPUs brought up", rf"smp: Brought up 1 node, {CPUS} CPUs"),
    ("the DSDT loaded", r"ACPI: 1 ACPI AML tables successfully acquired and loaded"),
    ("soft-off (S5) found", r"ACPI: PM: \(supports S0 S5\)"),
    ("the PCI root bridge from the DSDT", r"ACPI: PCI Root Bridge \[PCI0\] \(domain 0000 \[bus 00\]\)"),
    ("its memory window", r"pci_bus 0000:00: root bus resource \[mem 0xc0000000-0xdfffffff window\]"),
    ("MMCONFIG from the MCFG", r"PCI: MMCONFIG for domain 0000 \[bus 00-00\] at "
     r"\[mem 0xe0000000-0xe00fffff\] \(base 0xe0000000\)"),
    ("the legacy devices from the DSDT", r"pnp: PnP ACPI: found 4 devices"),
    ("the power button (fixed feature)", r"ACPI: button: Power Button \[PWRF\]"),
    ("the 8250 UART found as ttyS0 on IRQ 4",
     r"ttyS0 at I/O 0x3f8 \(irq = 4, base_baud = \d+\) is a \w+"),
    ("the PCI host bridge at 00:00.0", r"pci 0000:00:00\.0: \[1b36:0008\] type 00 class 0x060000"),
    ("virtio-rng at 00:01.0 with its two BARs",
     r"pci 0000:00:01\.0: \[1af4:1044\] type 00 class 0xff0000(?s:.*)"
     r"pci 0000:00:01\.0: BAR 4 \[mem 0xc0004000-0xc0007fff 64bit\]"),
    ("the 8042 from the DSDT", r"i8042: PNP: PS/2 Controller \[PNP0303:KBD\] at 0x60,0x64 irq 1"),
    ("the CMOS RTC from the DSDT", r"rtc_cmos 00:0\d: registered as rtc0"),
    ("the initramfs unpacked", r"Unpacking initramfs\.\.\.|Trying to unpack rootfs image"),
    ("the initrd's memory freed after unpacking", r"Freeing initrd memory: \d+K"),
    ("/init run from the initramfs", r"Run /init as init process"),
]
KERNEL_TROUBLE = (r"Initramfs unpacking failed|Kernel panic|Call Trace:|BUG:|Oops|"
                  r"can't find IRQ for PCI|virtio_pci.*(?:failed|error)")
# What the virtio-rng device did (vsrv's --stats): Linux's driver asks for
# 64 bytes at a time as its hwrng thread reads them, each answered by an
# interrupt.
RNG_STATS = re.compile(r"^vsrv: virtio-rng 00:01\.0: (\d+) notifications, (\d+) requests, "
                       r"(\d+) bytes to the guest, (\d+) interrupts, 0 refused, "
                       r"0 resets needed$", re.M)
RUN_INIT = re.compile(r"(?:\[\s*(\d+\.\d+)\] )?Run /init as init process")
# tools/guest/init
INIT_LINES = [
    ("the init script's marker", r"vsrv-guest: init started"),
    ("the command's output", rf"vsrv-guest: Linux 6\.1\.\S+, {CPUS} CPUs"),
    ("the power-off", r"vsrv-guest: powering off"),
]


def guest_user_space_runs():
    """False on a host whose KVM emulates guest kernel code (the kvm_pvm
    module, or no VT-x/AMD-V flag): guest system calls fail there.  The same
    test as vsrv's own (src/vmm/quirks.c)."""
    if os.path.exists("/sys/module/kvm_pvm"):
        return False
    with open("/proc/cpuinfo") as f:
        flags = [line for line in f if line.startswith("flags")]
    return any(" vmx" in line or " svm" in line for line in flags)


_guest = None


def guest():
    """The guest's directory, built on first use (tools/guest/build prints
    its progress on this test's standard error)."""
    global _guest
    if _guest is None:
        start = time.monotonic()
        p = subprocess.run([os.path.join(GUEST_TOOLS, "build")], stdout=subprocess.PIPE,
                           stdin=subprocess.DEVNULL, text=True, timeout=3000)
        took = time.monotonic() - start
        if p.returncode != 0 or not p.stdout.strip():
            raise AssertionError(f"tools/guest/build failed (exit status {p.returncode}): "
                                 "its output is above")
        _guest = p.stdout.strip().splitlines()[-1]
        with open(os.path.join(_guest, "build-info")) as f:
            info = f.read().split("\n")
        built = next((line for line in info if line.startswith("built ")), "built ?")
        print(f"guest: {_guest} ({built}; this run took {took:.0f} s to find or build it)")
    return _guest


# The boot with its root file system on a VHD (test_vhd_root).
VHD_ROOT_LINES = [
    ("Linux's virtio-blk driver found the 64 MiB disk",
     r"virtio_blk virtio\d+: \[vda\] 131072 512-byte logical blocks \(67\.1 MB/64\.0 MiB\)"),
    ("ext4 mounted it", r"EXT4-fs \(vda\): mounted filesystem"),
    ("as the root file system", r"VFS: Mounted root \(ext4 filesystem\) on device \d+:\d+\."),
    ("/init run from the disk", r"Run /init as init process"),
]
DHCP_LINES = [
    # virtio-net on libslirp: Linux's driver, then its DHCP client.
    ("the kernel's DHCP answered by user networking",
     r"IP-Config: Got DHCP answer from 10\.0\.2\.2, my address is 10\.0\.2\.15"),
    ("eth0 configured with vsrv's default MAC",
     r"device=eth0, hwaddr=52:54:00:12:34:56, ipaddr=10\.0\.2\.15, "
     r"mask=255\.255\.255\.0, gw=10\.0\.2\.2"),
    ("the DNS forwarder", r"nameserver0=10\.0\.2\.3"),
]
# Where test_vhd_root saves its VM: the disk found by Linux's driver.
SAVE_AT = VHD_ROOT_LINES[0][1]
# The guest's clock across a restore: the first line after it is at most
# this much later (guest seconds) than the last before it.
CLOCK_GAP_MAX = 30
HVC_STATS = re.compile(r"^vsrv: virtio-console 00:0\d\.0: port 0 \(console\): "
                       r"(\d+) bytes from the guest, \d+ to it, 0 dropped$", re.M)
BLK_STATS = re.compile(r"^vsrv: virtio-blk 00:0\d\.0: .*$", re.M)
NET_STATS = re.compile(r"^vsrv: virtio-net 00:0\d\.0: rx (\d+) packets, \d+ bytes, "
                       r"(\d+) dropped, 0 errors; tx (\d+) packets, .*$", re.M)


def make_root_vhd(g, stem):
    """STEM.vhd: a dynamic VHD holding an ext4 file system with the
    initramfs's files."""
    tree = stem + ".tree"
    os.mkdir(tree)
    with open(os.path.join(g, "initramfs.cpio"), "rb") as f:
        subprocess.run(["cpio", "-idm", "--quiet", "-D", tree], stdin=f, check=True)
    raw = stem + ".img"
    subprocess.run(["mke2fs", "-q", "-F", "-t", "ext4", "-d", tree, "-L", "vsrv-root",
                    raw, "64M"], check=True, stdout=subprocess.DEVNULL)
    vhd = stem + ".vhd"
    subprocess.run([VSRV, "disk", "convert", raw, vhd], check=True)
    os.unlink(raw)
    return vhd


def superblock(vhd, raw, keep=False):
    """The ext4 superblock (1024 bytes at 1024) of the file system on vhd,
    read by qemu-img (its vpc driver) into raw, which stays with keep."""
    subprocess.run(["qemu-img", "convert", "-f", "vpc", "-O", "raw", vhd, raw], check=True)
    with open(raw, "rb") as f:
        f.seek(1024)
        sb = f.read(1024)
    if not keep:
        os.unlink(raw)
    return sb


def tail(text, n=40):
    return "\n".join(text.splitlines()[-n:])


class Boot:
    """One boot's outcome: the console text, how long the VMM ran, the
    seconds at which 'Run /init' appeared (None if it did not), the exit
    status (None if it was stopped), the VMM's standard error, and what
    went wrong, if anything, in one line."""

    def __init__(self):
        self.console = ""
        self.seconds = 0.0
        self.init_at = None
        self.status = None
        self.stderr = ""
        self.problem = None
        self.klog = ""
        self.stopped = False
        self.saved = None       # with a save: the run that was saved

    def report(self):
        parts = [f"--- vsrv's standard error ---\n{self.stderr}" if self.stderr else "",
                 f"--- console, last lines ---\n{tail(self.console)}" if self.console else
                 "--- console: empty ---"]
        if self.klog:
            parts.append(f"--- the guest's kernel log, read from its memory "
                         f"(tools/guest/klog) ---\n{self.klog}")
        return "\n".join(p for p in parts if p)


def initrd(g):
    """The initramfs: uncompressed where the kernel's gunzip would be
    emulated code (minutes for its 1 MiB), else gzipped (RD_GZIP)."""
    name = "initramfs.cpio.gz" if guest_user_space_runs() else "initramfs.cpio"
    return os.path.join(g, name)


class LinuxBootTest(TmpDirTest):
    def setUp(self):
        super().setUp()
        usage = subprocess.run([VSRV, "run", "--help"], capture_output=True,
                               text=True).stdout
        if "--console" not in usage:
            self.fail("vsrv run has no --console option: without the serial console "
                      "(the 8250 UART and --console file:PATH) this test cannot see the "
                      "guest boot")

    def boot(self, kernel, stop_at_init, timeout, root=None, hvc=False, net=False,
             save_at=None):
        """Boots kernel with the guest's initramfs, or with root (a disk
        option for --disk) as its root file system, and reads the console:
        until 'Run /init' with stop_at_init (then stops the VM with SIGTERM,
        which must end vsrv cleanly), else until the VM ends.  With hvc,
        the console is also a virtio-console's hvc0, the kernel's console
        once its driver is up (console=hvc0).  With save_at (a regular
        expression), the VM is saved through its control socket once the
        console shows it, which must end that run, and restored by another
        (vsrv run --restore with its own console file), which the rest of
        the boot is read from (b.saved has the first run's outcome, b.state
        the file).  --stats reports the exits to user space, printed for
        comparison between runs."""
        g = guest()
        b = Boot()
        cmd = [VSRV, "run", "--kernel", kernel]
        if root:
            # With net, a NIC on user networking: the kernel configures it
            # by DHCP itself (ip=dhcp) before it mounts the root.
            cmd += ["--disk", root] + (["--net", "user"] if net else [])
            cmd += ["--append", APPEND + " root=/dev/vda rw init=/init" +
                    (" ip=dhcp" if net else "")]
        else:
            # console=hvc0 instead of ttyS0: with both, the kernel keeps
            # its early console too and writes every line twice to ttyS0
            # (emulated port writes here); hvc0 alone takes over from the
            # early console once its driver is up.
            append = APPEND.replace("console=ttyS0", "console=hvc0") if hvc else APPEND
            cmd += ["--initrd", initrd(g), "--append", append]
        cmd += ["--cpus", str(CPUS), "--memory", "256M", "--rng"]
        if save_at:
            b.saved = Boot()
            b.state = self.p("vm.state")
            self.run_vm(b.saved, cmd + ["--control", self.p("c.sock")], "console.saved",
                        False, timeout, hvc, save_at)
            if b.saved.problem:
                self.fail(f"{os.path.basename(kernel)}: {b.saved.problem}\n{b.saved.report()}")
            # The saved configuration has the kernel, the disk, the NIC,
            # virtio-rng: only what is this run's own.
            cmd = [VSRV, "run", "--restore", b.state, "--control", self.p("c.sock")]
            timeout -= b.saved.seconds
        self.run_vm(b, cmd, "console", stop_at_init, timeout, hvc)
        if b.problem:
            self.fail(f"{os.path.basename(kernel)}: {b.problem}\n{b.report()}")
        exits = [line for line in b.stderr.splitlines() if line.startswith("vsrv: exits: ")]
        print(f"boot: exits to user space in {b.seconds:.0f} s:",
              ", ".join(line[len("vsrv: exits: "):] for line in exits))
        self.assertTrue(exits, f"no exit counts (--stats)\n{b.report()}")
        if b.stopped:
            self.assertEqual(b.status, 0, f"SIGTERM must stop the VM cleanly\n{b.report()}")
            self.assertIn("vsrv: stopped by SIGTERM; the VM was powered off",
                          b.stderr.splitlines(), f"no stop line\n{b.report()}")
        return b

    def run_vm(self, b, cmd, console_name, stop_at_init, timeout, hvc, save_at=None):
        """One vsrv run of a boot, its outcome in b (see boot)."""
        g = guest()
        console = self.p(console_name)
        cmd = cmd + ["--on-reboot", "exit", "--console", ("hvc," if hvc else "") + "file:" +
                     console, "--stats"]
        print("boot:", " ".join(cmd))
        with open(self.p(console_name + ".stderr"), "w+") as err:
            start = time.monotonic()
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=err, stderr=err)
            try:
                while True:
                    time.sleep(0.5)
                    b.status = proc.poll()
                    b.seconds = time.monotonic() - start
                    try:
                        with open(console, "rb") as f:
                            raw = f.read()
                    except FileNotFoundError:
                        raw = b""
                    b.console = raw.decode("utf-8", "replace").replace("\r\n", "\n")
                    if b.init_at is None and RUN_INIT.search(b.console):
                        b.init_at = b.seconds
                    if save_at and b.status is None and re.search(save_at, b.console):
                        self.save(b, proc, console)
                        break
                    if stop_at_init and b.init_at is not None:
                        break
                    if b.status is not None:
                        if stop_at_init or save_at:
                            b.problem = (f"the VM ended (exit status {b.status}) after "
                                         f"{b.seconds:.0f} s, before " +
                                         (f"/{save_at}/" if save_at else "'Run /init'"))
                        break
                    # (A restored run starts where its kernel was: it may
                    # have nothing to say for a while.)
                    if not raw and b.seconds > QUIET_LIMIT and "--restore" not in cmd:
                        b.problem = (f"nothing on the console in {QUIET_LIMIT} s (the kernel "
                                     "writes to its UART in its first seconds with "
                                     "earlyprintk): is the 8250 UART at 0x3f8 missing, or "
                                     "--console not writing the file?")
                        break
                    if b.seconds > timeout:
                        b.problem = (f"{'Run /init' if stop_at_init else 'the VM end'} "
                                     f"not reached in {timeout:.0f} s")
                        break
                if b.problem and proc.poll() is None:
                    # How far did it get?  Read the kernel's log from its memory.
                    k = subprocess.run([os.path.join(GUEST_TOOLS, "klog"), str(proc.pid), g,
                                        "--tail", "30"], capture_output=True, text=True)
                    b.klog = (k.stdout + k.stderr).strip()
                if stop_at_init and not b.problem:
                    proc.send_signal(signal.SIGTERM)
                    b.status = proc.wait(timeout=30)
                    b.stopped = True
            finally:
                if proc.poll() is None:
                    proc.terminate()
                    try:
                        proc.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()
            err.seek(0)
            b.stderr = err.read()
        return b

    def save(self, b, proc, console):
        """`save` through the control socket: the run ends."""
        state = self.p("vm.state")
        c = Client(self.p("c.sock"))
        r = c.ok("save", file=state)
        c.close()
        b.status = proc.wait(timeout=60)
        b.save_reply = r
        # What the console had when the VM was paused for the save: the
        # rest may still have been on its way to the file.
        time.sleep(1)
        with open(console, "rb") as f:
            b.console = f.read().decode("utf-8", "replace").replace("\r\n", "\n")
        print(f"boot: saved after {b.seconds:.1f} s ({r['bytes']} bytes, written in "
              f"{r['write_seconds']:.3f} s, synced in {r['sync_seconds']:.3f} s)")

    def check_kernel(self, b, what):
        """Prints how long the boot took to reach /init, and asserts
        everything the kernel's own lines prove."""
        run_init = RUN_INIT.search(b.console)
        if run_init:
            print(f"boot: {what} reached 'Run /init as init process' in {b.init_at:.1f} s "
                  f"(guest clock {run_init.group(1) or '?'} s), "
                  f"{len(b.console.splitlines())} console lines")
        else:
            print(f"boot: {what} ran {b.seconds:.1f} s without reaching 'Run /init'")
        missing = [name for name, rx in KERNEL_LINES if not re.search(rx, b.console)]
        self.assertFalse(missing, f"{what}: the console lacks {', '.join(missing)}\n"
                         f"{b.report()}")
        trouble = re.search(KERNEL_TROUBLE, b.console[:run_init.end()])
        self.assertIsNone(trouble, f"{what}: the kernel reported trouble\n{b.report()}")
        rng = RNG_STATS.search(b.stderr)
        self.assertTrue(rng, f"{what}: no virtio-rng counters from --stats\n{b.report()}")
        kicks, requests, nbytes, irqs = map(int, rng.groups())
        print(f"boot: virtio-rng served {requests} requests ({nbytes} bytes), "
              f"{kicks} notifications, {irqs} interrupts")
        self.assertTrue(requests >= 1 and irqs >= 1 and nbytes == 64 * requests,
                        f"{what}: Linux's virtio-rng driver did not get its bytes\n{b.report()}")

    def check_hvc(self, b):
        """The kernel's console moved to hvc0 (virtio-console's port 0),
        which wrote into vsrv's console."""
        self.assertRegex(b.console, r"printk: console \[hvc0\] enabled",
                         f"the kernel did not take hvc0 as its console\n{b.report()}")
        port = HVC_STATS.search(b.stderr)
        self.assertTrue(port, f"no virtio-console counters from --stats\n{b.report()}")
        print("boot: " + port.group(0)[len("vsrv: "):])
        # hvc0 takes over from the early console (earlyprintk on ttyS0) and
        # prints what comes after it; the early lines are not repeated.
        # From the virtio_console driver's start to 'Run /init' that is
        # some 600 bytes.
        self.assertGreater(int(port.group(1)), 200,
                           f"too little from hvc0 for the kernel's last lines\n{b.report()}")

    def test_vmlinux(self):
        """The uncompressed vmlinux through vsrv's ELF loader, on 2 vCPUs
        with the busybox initramfs: the boot protocol (zero page, e820,
        command line, initrd), the ACPI tables (CPUs, interrupts, PCI root,
        power button, the legacy devices), the UART and its IRQ, the
        keyboard, PCI, virtio-rng (--rng) and virtio-console (--console hvc,
        console=hvc0) with Linux's own drivers; where user space runs, the
        power-off through ACPI S5."""
        g = guest()
        if guest_user_space_runs():
            b = self.boot(os.path.join(g, "vmlinux"), False, BOOT_TIMEOUT, hvc=True)
            self.check_kernel(b, "vmlinux")
            self.check_hvc(b)
            missing = [name for name, rx in INIT_LINES if not re.search(rx, b.console)]
            self.assertFalse(missing, f"the console lacks {', '.join(missing)}\n{b.report()}")
            self.assertEqual(b.status, 0, f"the guest powered off with exit status "
                             f"{b.status}, not 0\n{b.report()}")
            print(f"boot: vmlinux ran /init and powered off in {b.seconds:.1f} s")
        else:
            b = self.boot(os.path.join(g, "vmlinux"), True, BOOT_TIMEOUT, hvc=True)
            self.check_kernel(b, "vmlinux")
            self.check_hvc(b)
            print("skip: vmlinux: the init script's command and the power-off with exit "
                  "status 0: this host's KVM emulates guest kernel code (no VT-x/AMD-V) and "
                  "cannot run guest system calls; the VM was stopped at 'Run /init'")

    def check_root_boot(self, b):
        """What every boot with its root on the VHD shows (on both runs'
        consoles, with a save)."""
        console = (b.saved.console if b.saved else "") + b.console
        missing = [name for name, rx in VHD_ROOT_LINES if not re.search(rx, console)]
        self.assertFalse(missing, f"the console lacks {', '.join(missing)}\n{b.report()}")
        trouble = re.search(KERNEL_TROUBLE, console)
        self.assertIsNone(trouble, f"the kernel reported trouble\n{b.report()}")
        print(f"boot: root on a VHD reached 'Run /init as init process' in "
              f"{b.init_at + (b.saved.seconds if b.saved else 0):.1f} s")
        blk = BLK_STATS.search(b.stderr)
        self.assertTrue(blk, f"no virtio-blk counters from --stats\n{b.report()}")
        print("boot: " + blk.group(0)[len("vsrv: "):])

    def check_saved(self, b, save_at, after):
        """A boot saved at save_at and restored: the saved run ended at the
        save, saying so; what the kernel printed after (each of after,
        (name, expression)) is on the restored run's console only; its
        clock went on from where it was (no jump: the time the VM was off
        did not pass for it); neither run's devices refused anything."""
        s = b.saved
        print(f"boot: the restored run went on for {b.seconds:.1f} s")
        self.assertEqual(s.status, 0, f"the saved run's exit status\n{s.report()}")
        self.assertIn(f"vsrv: the VM's state was saved to {b.state} ({s.save_reply['bytes']} "
                      "bytes); the VM is off", s.stderr.splitlines(), s.report())
        self.assertEqual(s.save_reply["bytes"], os.path.getsize(b.state))
        self.assertRegex(s.console, save_at, s.report())
        self.assertNotRegex(b.console, save_at, "the save point's line again after the "
                            f"restore\n{b.report()}")
        for name, rx in after:
            self.assertNotRegex(s.console, rx, f"{name}: before the save\n{s.report()}")
            self.assertRegex(b.console, rx, f"{name}: not after the restore\n{b.report()}")
        stamps = [float(t) for t in re.findall(r"^\[\s*(\d+\.\d+)\]", s.console, re.M)]
        after_stamps = [float(t) for t in re.findall(r"^\[\s*(\d+\.\d+)\]", b.console, re.M)]
        self.assertTrue(stamps and after_stamps, "no printk times on the consoles")
        print(f"boot: the guest's clock: {stamps[-1]:.3f} s at the last line before the save, "
              f"{after_stamps[0]:.3f} s at the first after the restore")
        self.assertGreaterEqual(after_stamps[0], stamps[-1], "the guest's clock went back")
        self.assertLess(after_stamps[0] - stamps[-1], CLOCK_GAP_MAX,
                        "the guest's clock jumped over the restore")
        for run in (s, b):
            bad = [line for line in run.stderr.splitlines()
                   if re.search(r": (refused|needs reset): |does not load", line)]
            self.assertFalse(bad, f"a device complained\n{run.report()}")

    def test_vhd_root(self):
        """The same kernel with no initramfs: its root file system is ext4
        on a dynamic VHD (the initramfs's files, mke2fs -d, vsrv disk
        convert) through virtio-blk.  Linux's virtio_blk driver finds the
        disk, ext4 mounts it read-write and runs /init from it; SIGTERM
        stops the VM (here the guest cannot unmount: its first system call
        is as far as it goes).  Then qemu-img, not vsrv, reads the VHD: the
        mount count is one up, e2fsck replays the journal and then finds
        the file system consistent (e2fsck -fn clean).  A virtio-net NIC on
        user networking (libslirp) beside it: the kernel's own DHCP client
        (ip=dhcp) configures eth0 from slirp's answer.

        In the middle of it the VM is saved (saved state, docs/control.md):
        as soon as the console shows the disk found (the driver's first
        reads of it then in flight), `save` through the control socket ends
        that run, and vsrv run --restore FILE alone (the kernel, the disk,
        the NIC and virtio-rng from the saved configuration) goes on: DHCP
        over a new user network, the root mounted and written, /init, all
        on the restored run's console only, its devices' counters its own
        (virtio-blk read and wrote, DHCP's frames went both ways), and the
        file system on the disk as consistent as after a boot in one run."""
        g = guest()
        base = make_root_vhd(g, self.p("root"))
        before = superblock(base, self.p("before.img"))
        b = self.boot(os.path.join(g, "vmlinux"), True, BOOT_TIMEOUT,
                      root=f"path={base}", net=True, save_at=SAVE_AT)
        self.check_saved(b, SAVE_AT, DHCP_LINES + VHD_ROOT_LINES[1:])
        self.check_root_boot(b)
        missing = [name for name, rx in DHCP_LINES if not re.search(rx, b.console)]
        self.assertFalse(missing, f"the console lacks {', '.join(missing)}\n{b.report()}")
        net = NET_STATS.search(b.stderr)
        self.assertTrue(net, f"no virtio-net counters from --stats\n{b.report()}")
        print("boot: " + net.group(0)[len("vsrv: "):])
        rx, _, tx = map(int, net.groups())
        # DHCP: at least a discover and a request out, an offer and an ack in.
        self.assertTrue(rx >= 2 and tx >= 2, f"too few frames for DHCP\n{b.report()}")
        raw = self.p("after.img")
        after = superblock(base, raw, keep=True)
        # s_mnt_count (le16 at 52): ext4 wrote its superblock when it
        # mounted the disk read-write.
        self.assertEqual(after[56:58], b"\x53\xef", "not an ext4 superblock after the run")
        self.assertEqual(int.from_bytes(after[52:54], "little"),
                         int.from_bytes(before[52:54], "little") + 1,
                         "the mount count did not move: the guest's superblock write is not "
                         "in the VHD")
        fix = subprocess.run(["e2fsck", "-fy", raw], capture_output=True, text=True)
        self.assertIn(fix.returncode, (0, 1), f"e2fsck -fy: {fix.stdout}{fix.stderr}")
        check = subprocess.run(["e2fsck", "-fn", raw], capture_output=True, text=True)
        self.assertEqual(check.returncode, 0, f"e2fsck -fn after the journal's replay: "
                                              f"{check.stdout}{check.stderr}")
        print("boot: e2fsck: " + " / ".join(
            line for line in (fix.stdout + check.stdout).splitlines()
            if "recovering journal" in line or "files," in line))
        c = subprocess.run([VSRV, "disk", "check", base], capture_output=True, text=True)
        self.assertEqual(c.returncode, 0, c.stdout + c.stderr)

    def test_undo_root(self):
        """The root file system on an undo disk (undo=discard): the guest
        mounts it read-write and writes, all into the overlay; after
        SIGTERM the overlay is thrown away and the base VHD is byte for byte
        what it was."""
        g = guest()
        base = make_root_vhd(g, self.p("root"))
        with open(base, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        b = self.boot(os.path.join(g, "vmlinux"), True, BOOT_TIMEOUT,
                      root=f"path={base},undo=discard")
        self.check_root_boot(b)
        self.assertEqual(b.stderr.splitlines()[-1],
                         f"vsrv: {base}: the run's changes are thrown away (undo=discard)",
                         b.report())
        self.assertFalse(os.path.exists(self.p("root.undo.vhd")), "the overlay is left behind")
        with open(base, "rb") as f:
            self.assertEqual(hashlib.sha256(f.read()).hexdigest(), digest,
                             "the base VHD changed under an undo disk")

    @unittest.skipUnless(SLOW, "VSRV_SLOW_TESTS=1 runs it")
    def test_bzimage(self):
        """The compressed bzImage through its setup header and 64-bit entry:
        the kernel decompresses itself (minutes of emulated code here)."""
        g = guest()
        b = self.boot(os.path.join(g, "bzImage"), True, 1800)
        self.check_kernel(b, "bzImage")


if __name__ == "__main__":
    if not SLOW:
        print("skip: bzImage boot (minutes of emulated decompression on hosts without "
              "hardware virtualization): VSRV_SLOW_TESTS=1 runs it")
    main()
