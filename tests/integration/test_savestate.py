"""Saved state (docs/control.md): `vsrv ctl save FILE` and `vsrv run --restore
FILE` on the counting micro-guest (tests/guests/ctl-count.c), whose vCPUs each
print how many ticks they counted: after a restore, every vCPU goes on from
the number after the last it printed before the save.  Files that are not a
saved state, corrupt, truncated, of another format, of another configuration,
or from a host with CPU features this one lacks are refused with one exact
line and nothing runs; a save that cannot be written is an error reply and the
VM goes on."""
import json
import os
import re
import struct
import time

from ctltest import VM, Client, ctl, guest, vm_process
from vsrvtest import fnv1a_hex, VSRV, TmpDirTest, main, pattern, release_build, run, settled, vsrv

HEADER_VERSION = 8      # src/vmm/savefile.c's header offsets
HEADER_TABLE = 24
HEADER_NR = 32
HEADER_VSRV = 48
ENTRY = 40


def sections(path):
    """The table: [(tag, index, offset, length)]."""
    with open(path, "rb") as f:
        data = f.read()
    table, = struct.unpack_from("<Q", data, HEADER_TABLE)
    nr, = struct.unpack_from("<I", data, HEADER_NR)
    out = []
    for i in range(nr):
        tag, index, off, length = struct.unpack_from("<4sIQQ", data, table + i * ENTRY)
        out.append((tag.decode(), index, off, length))
    return out



def stamp(ns):
    """A file's modification time as vsrv prints it (virtio/blk.c)."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ns // 10**9)) + \
        f".{ns % 10**9 // 1000:06d} UTC"


def json_uuid(info):
    return json.loads(info)["uuid"]


def patch(path, offset, data):
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


def release():
    """The release build, as VM() runs it: its seccomp filter lacks what
    the sanitizers call."""
    binary, env = release_build()
    return {"binary": binary, "env": env}


class StateTest(TmpDirTest):
    """VMs of the counting guest, or another, on the control socket; saved
    states restored or refused."""

    def setUp(self):
        super().setUp()
        self.sock = self.p("c.sock")
        self.state = self.p("vm.state")
        self.vms = []

    def tearDown(self):
        for vm in self.vms:
            vm.kill()
        super().tearDown()

    def start(self, *args, **kw):
        vm = VM(self.sock, *args, **kw)
        self.vms.append(vm)
        return vm

    def save_running(self, cpus=2, append="hz=100 every=10", *args):
        """A VM counting on every vCPU, saved: its counts before."""
        vm = self.start(*args, cpus=cpus, append=append)
        vm.wait_counts(cpus, 2)
        p = ctl(self.sock, "save", self.state)
        size = os.path.getsize(self.state)
        self.assertEqual((p.returncode, p.stderr), (0, ""))
        self.assertEqual(p.stdout, f"the VM's state is in {self.state} ({size} bytes); "
                         "the VM is off\n")
        self.assertEqual(vm.finish(), (0, f"vsrv: the VM's state was saved to {self.state} "
                                          f"({size} bytes); the VM is off\n"))
        self.assertFalse(os.path.exists(self.state + ".partial"))
        return vm.counts()

    def restore(self, *args, **kw):
        return self.start("--restore", self.state, *args, kernel=False, **kw)

    def refused(self, line, *args, env=None):
        p = run(VSRV, "run", "--restore", self.state, "--test-device", *args, check=False,
                timeout=60)
        self.assertEqual((p.returncode, p.stdout, p.stderr), (1, "", line + "\n"))


class SavedState(StateTest):
    def test_smp_count_goes_on(self):
        """Save, the process gone, restore (no --kernel, no --cpus: the saved
        configuration): every vCPU's next number follows its last one."""
        before = self.save_running()
        # Guest memory is written sparsely: a 256 MiB guest that touched
        # little makes a small file.
        self.assertLess(os.path.getsize(self.state), 2 << 20)
        for _ in range(2):      # the same file twice: the same continuation
            vm = self.restore()
            after = vm.wait_counts(2, 2)
            for cpu in (0, 1):
                self.assertEqual(after[cpu][:2], [before[cpu][-1] + 1, before[cpu][-1] + 2],
                                 f"cpu{cpu}")
            c = Client(self.sock)
            st = c.ok("status")
            self.assertEqual((st["state"], st["config"]["vcpus"], st["config"]["kernel"]),
                             ("running", 2, guest("ctl-count")))
            c.ok("power-off")
            self.assertEqual(vm.finish(), (0, "vsrv: powered off through the control socket\n"))

    def test_save_a_paused_vm_and_reboot_after_restore(self):
        """A paused VM saved: events say saving, then off.  Restored, a reset
        boots the saved kernel afresh: only the first boot restores."""
        vm = self.start(cpus=1)
        vm.wait_counts(1, 2)
        c = Client(self.sock)
        c.ok("events")
        c.ok("pause")
        self.assertEqual(c.event("state")["data"], {"state": "paused", "previous": "running"})
        r = c.ok("save", file=self.state)
        self.assertEqual((r["file"], r["bytes"]), (self.state, os.path.getsize(self.state)))
        self.assertEqual(c.event("state")["data"], {"state": "saving", "previous": "paused"})
        self.assertEqual(c.event("power-off")["data"]["reason"],
                         f"the VM's state was saved to {self.state} ({r['bytes']} bytes); "
                         "the VM is off")
        self.assertEqual(vm.finish()[0], 0)
        last = vm.counts()[0][-1]

        vm = self.restore()
        self.assertEqual(vm.wait_counts(1, 1)[0][0], last + 1)
        Client(self.sock).ok("reset")
        vm.wait_for(lambda ls: "cpu0 1\n" in ls, what="a fresh boot's first count")
        Client(self.sock).ok("power-off")
        self.assertEqual(vm.finish()[0], 0)

    def test_devices_and_irqchip_come_back(self):
        """The power-button guest saved and restored still takes a shutdown:
        its ACPI enable bits, the IOAPIC's routing of the SCI and its LAPIC
        came back with it."""
        before = self.save_running(1, "hz=100 every=10 button=1")
        vm = self.restore()
        self.assertEqual(vm.wait_counts(1, 1)[0][0], before[0][-1] + 1)
        p = ctl(self.sock, "shutdown", "--timeout", "30")
        self.assertEqual((p.returncode, p.stderr), (0, ""))
        self.assertEqual(vm.finish(), (0, ""))
        self.assertTrue("".join(vm.lines).endswith("power button\nresult ok\n"), vm.lines)

    def test_save_errors_leave_the_vm_running(self):
        """A path that cannot be created, a directory: an error reply, no
        file, the VM counting on."""
        vm = self.start(cpus=1)
        vm.wait_counts(1, 1)
        bad = "/nonexistent-dir/vm.state"
        p = ctl(self.sock, "save", bad)
        self.assertEqual((p.returncode, p.stdout, p.stderr),
                         (1, "", f"vsrv: save: {bad}: No such file or directory\n"))
        p = ctl(self.sock, "save", self.dir)
        self.assertEqual((p.returncode, p.stderr), (1, f"vsrv: save: {self.dir}: is a directory\n"))
        self.assertEqual(os.listdir(self.dir), ["c.sock"])
        c = Client(self.sock)
        self.assertEqual(c.ok("status")["state"], "running")
        vm.wait_counts(1, 2)
        self.assertEqual(c.request("save", file="")["error"]["code"], "bad-arguments")
        c.ok("power-off")
        self.assertEqual(vm.finish()[0], 0)

    def memory_saved(self, *args, memory=256, **kw):
        """The counting guest with args (how its memory is held), 8 MiB of
        it written by the guest, saved and restored twice (the restore
        holding it as the saved configuration says): each restore's vCPUs
        go on, and the state is sparse (the 8 MiB and little more) both
        times.  Returns, for each restore, the names of the VM process's
        mappings as large as guest memory."""
        vm = self.start("--memory", f"{memory}M", *args, cpus=2,
                        append="hz=100 every=10 touch=8", **kw)
        vm.wait_line("touched 8 MiB")
        vm.wait_counts(2, 1)
        c = Client(self.sock)
        touched = c.ok("stats")["memory"]["touched"]
        self.assertGreaterEqual(touched, 8 << 20)
        self.assertLess(touched, 16 << 20)
        maps = []
        for _ in range(2):
            r = c.ok("save", file=self.state)
            self.assertEqual(vm.finish()[0], 0)
            before = vm.counts()
            # The guest's 8 MiB, and what its code and tables wrote.
            self.assertEqual(r["bytes"], os.path.getsize(self.state))
            self.assertGreater(r["bytes"], 8 << 20)
            self.assertLess(r["bytes"], touched + (1 << 20))
            vm = self.restore(**kw)
            after = vm.wait_counts(2, 1)
            for cpu in (0, 1):
                self.assertEqual(after[cpu][0], before[cpu][-1] + 1, f"cpu{cpu}")
            c = Client(self.sock)
            # Where the restored VM's memory is: its process's mappings.
            pid = c.ok("status")["pid"]
            with open(f"/proc/{pid}/task/{pid}/children") as f:
                children = f.read().split()
            for child in children:
                with open(f"/proc/{child}/comm") as f:
                    if f.read() != "vsrv-vm\n":
                        continue
                with open(f"/proc/{child}/maps") as f:
                    maps.append({" ".join(line.split()[5:]) for line in f
                                 if int(line.split()[0].split("-")[1], 16) -
                                 int(line.split()[0].split("-")[0], 16) == memory << 20})
            touched = c.ok("stats")["memory"]["touched"]
        c.ok("power-off")
        self.assertEqual(vm.finish()[0], 0)
        return maps

    def test_memfd(self):
        """Guest memory in a memfd (--memfd) is saved as sparsely as
        anonymous memory: which of its pages hold data, its file says
        (SEEK_DATA, SEEK_HOLE, which count shared memory swapped out too),
        and a restore holds it in a memfd again.  The release build too,
        whose seccomp filter has lseek for it."""
        for names in self.memory_saved("--memfd"):
            self.assertIn("/memfd:vsrv-guest-ram (deleted)", names)
        for names in self.memory_saved("--memfd", **release()):
            self.assertIn("/memfd:vsrv-guest-ram (deleted)", names)
        # How memory is held is the run's: anonymous memory's state into a
        # memfd.
        before = self.save_running(cpus=1)
        vm = self.restore("--memfd")
        self.assertEqual(vm.wait_counts(1, 1)[0][0], before[0][-1] + 1)
        Client(self.sock).ok("power-off")
        self.assertEqual(vm.finish()[0], 0)

    def test_halt_polling_comes_back(self):
        """--halt-poll-ns is in the saved configuration: a restore takes it
        unless its own option says otherwise (status shows the VM's)."""
        self.save_running(1, "hz=100 every=10", "--halt-poll-ns", "200000")
        for args, want in (((), 200000), (("--halt-poll-ns", "0"), 0)):
            vm = self.restore(*args)
            vm.wait_counts(1, 1)
            self.assertEqual(Client(self.sock).ok("status")["config"]["halt_poll_ns"], want)
            Client(self.sock).ok("power-off")
            self.assertEqual(vm.finish()[0], 0)

    def vm_maps(self):
        """The paths the VM process maps (/proc/PID/maps)."""
        with open(f"/proc/{vm_process(self.sock)[1]}/maps") as m:
            return {" ".join(line.split()[5:]) for line in m}

    def test_restore_maps_the_file(self):
        """A restore maps the saved state's pages into guest memory
        (copy-on-write) rather than copying them: the VM process maps the
        file.  Opening the file to write it waits (its read lease) until
        the VM's memory was copied from it; the file then truncated and
        zeroed, the VM
        counts on, and its own state saved and restored goes on from its
        next numbers."""
        before = self.save_running(2, "hz=100 every=10 touch=8")
        vm = self.restore()
        after = vm.wait_counts(2, 1)
        for cpu in (0, 1):
            self.assertEqual(after[cpu][0], before[cpu][-1] + 1, f"cpu{cpu}")
        self.assertIn(self.state, self.vm_maps())
        t0 = time.monotonic()
        size = os.path.getsize(self.state)
        # Truncated (O_TRUNC), which would throw away even the pages the
        # guest had written were they still in the file's mapping.
        with open(self.state, "wb") as f:
            took = time.monotonic() - t0
            f.write(b"\0" * size)
        # Not the kernel's lease-break-time (45 s): vsrv let it go.
        self.assertLess(took, 20)
        before = vm.wait_counts(2, 2)
        saved = self.p("again.state")
        Client(self.sock).ok("save", file=saved)
        self.assertEqual(vm.finish(), (0, (
            f"vsrv: {self.state} is being written to: the VM's memory was copied from it "
            f"first\nvsrv: the VM's state was saved to {saved} ({os.path.getsize(saved)} "
            "bytes); the VM is off\n")))
        before = vm.counts()
        vm = self.start("--restore", saved, kernel=False)
        after = vm.wait_counts(2, 1)
        for cpu in (0, 1):
            self.assertEqual(after[cpu][0], before[cpu][-1] + 1, f"cpu{cpu}")
        Client(self.sock).ok("power-off")
        self.assertEqual(vm.finish()[0], 0)

    def test_huge_pages(self):
        """The same with huge pages (--hugepages), anonymous and in a memfd:
        which of them hold data, the pagemap says (hugetlbfs has no
        SEEK_DATA; huge pages never swap)."""
        with open("/proc/meminfo") as f:
            free = int(next(line for line in f if line.startswith("HugePages_Free:")).split()[1])
        if free < 64:
            print(f"skip: huge pages: this host has {free} free (HugePages_Free), the test "
                  "needs 64 of 2 MiB (/proc/sys/vm/nr_hugepages sets how many there are)")
            self.skipTest(f"{free} free huge pages, 64 needed")
        for names in self.memory_saved("--hugepages", memory=128):
            self.assertIn("/anon_hugepage (deleted)", names)
        for names in self.memory_saved("--hugepages", "--memfd", memory=128):
            self.assertIn("/memfd:vsrv-guest-ram (deleted)", names)

    def test_refused_files(self):
        self.save_running(cpus=2)
        good = open(self.state, "rb").read()
        secs = sections(self.state)
        self.assertEqual([(t, i) for t, i, _, _ in secs],
                         [("CONF", 0), ("VCPU", 0), ("VCPU", 1), ("VMST", 0)] +
                         [("DEV ", i) for i in range(5)] + [("MEM ", 0)])
        f = self.state

        def reset():
            with open(f, "wb") as out:
                out.write(good)

        # Memory damaged in the middle of the file.
        mem = [s for s in secs if s[0] == "MEM "][0]
        patch(f, mem[2] + mem[3] // 2, b"\xff\xee")
        self.refused(f"vsrv: {f}: corrupt: section MEM 0's checksum does not match")
        reset()
        # A vCPU's registers.
        vcpu = [s for s in secs if s[:2] == ("VCPU", 1)][0]
        patch(f, vcpu[2] + 100, b"\x55")
        self.refused(f"vsrv: {f}: corrupt: section VCPU 1's checksum does not match")
        reset()
        # Cut short.
        with open(f, "r+b") as out:
            out.truncate(len(good) // 2)
        self.refused(f"vsrv: {f}: truncated: {len(good) // 2} bytes of {len(good)}")
        reset()
        # Another format: refused before anything its layout decides.
        patch(f, HEADER_VERSION, struct.pack("<I", 2))
        self.refused(f"vsrv: {f}: a saved state of format 2; this vsrv reads format 1")
        reset()
        patch(f, HEADER_VSRV, b"9.9.9")
        self.refused(f"vsrv: {f}: corrupt: the header's checksum does not match")
        reset()
        with open(self.p("other"), "wb") as out:
            out.write(b"\0" * 8192)
        p = run(VSRV, "run", "--restore", self.p("other"), check=False)
        self.assertEqual((p.returncode, p.stderr),
                         (1, f"vsrv: {self.p('other')}: not a vsrv saved state\n"))
        # The same vCPUs, memory and devices, or nothing.
        self.refused(f"vsrv: {f}: saved with vCPUs 2, this run has 1 (a restore needs the "
                     "same vCPUs, memory and devices)", "--cpus", "1")
        self.refused(f"vsrv: {f}: saved with memory 256 MiB, this run has 512 MiB (a restore "
                     "needs the same vCPUs, memory and devices)", "--memory", "512M")
        self.refused(f"vsrv: {f}: saved with virtio-rng off, this run has on (a restore "
                     "needs the same vCPUs, memory and devices)", "--rng")

    def test_host_lacking_cpu_features(self):
        """The CPUID the guest was given, against what this host's KVM
        offers (VSRV_TEST_HOST_LACKS makes it seem to lack FPU and SSE2)."""
        self.save_running(cpus=1)
        env = dict(os.environ, VSRV_TEST_HOST_LACKS="1.0.edx:0x4000001")
        import subprocess
        p = subprocess.run([VSRV, "run", "--restore", self.state], capture_output=True,
                           text=True, env=env, timeout=60, stdin=subprocess.DEVNULL)
        self.assertEqual((p.returncode, p.stdout, p.stderr),
                         (1, "", f"vsrv: {self.state}: the guest uses CPU features this "
                                 "host's KVM lacks: CPUID 1.EDX 0x04000001\n"))

    def test_checkpoints(self):
        """Checkpoints without disks: a paused VM's checkpoint leaves it paused,
        a running one's running; revert starts the VM again from one (every
        vCPU from the number after its last before it); the tree, delete."""
        ck = self.p("ck")
        vm = self.start("--checkpoints", ck, cpus=2, append="hz=100 every=10")
        vm.wait_counts(2, 2)
        c = Client(self.sock)
        c.ok("pause")
        r = c.ok("checkpoint", name="A")
        self.assertEqual((r["name"], r["file"], r["bytes"]),
                         ("A", f"{ck}/A.state", os.path.getsize(f"{ck}/A.state")))
        # What the vCPUs printed before the pause may still be on its way
        # through the console: the counts at A are those once it settles.
        at_a = settled(vm.counts)
        self.assertEqual(c.ok("status")["state"], "paused")
        c.ok("resume")
        vm.wait_counts(2, 2)
        self.assertEqual(c.ok("checkpoint", name="B")["name"], "B")
        vm.wait_counts(2, 1)     # B left it running
        self.assertEqual(c.request("checkpoint", name="B")["error"]["message"],
                         "checkpoint B exists (delete-checkpoint it first)")
        self.assertEqual(c.request("checkpoint", name="../x")["error"]["code"], "bad-arguments")
        tree = c.ok("checkpoints")
        self.assertEqual(tree["current"], "B")
        self.assertEqual([(e["name"], e["parent"]) for e in tree["checkpoints"]],
                         [("A", None), ("B", "A")])
        p = ctl(self.sock, "checkpoints")
        self.assertRegex(p.stdout, r"^- A \(\S+Z, \d+ bytes\)\n  \* B \(\S+Z, \d+ bytes\)\n$")

        def revert_split(lines, cpu):
            """cpu's numbers before the revert (rising one by one, the last
            ones maybe printed after the request) and from the revert's
            boot on (from the first that does not follow)."""
            seq = vm.counts(lines).get(cpu, [])
            k = next((k for k in range(1, len(seq)) if seq[k] != seq[k - 1] + 1), len(seq))
            return seq[:k], seq[k:]

        p = ctl(self.sock, "revert", "A")
        self.assertEqual((p.returncode, p.stdout, p.stderr),
                         (0, "the VM starts again from checkpoint A\n", ""))
        vm.wait_for(lambda ls: all(revert_split(ls, i)[1] for i in (0, 1)),
                    what="counts after the revert")
        for cpu in (0, 1):
            old, new = revert_split(vm.lines, cpu)
            self.assertEqual(old, list(range(1, len(old) + 1)), f"cpu{cpu}")
            self.assertEqual(new[0], at_a[cpu][-1] + 1, f"cpu{cpu}")
        st = c.ok("status")
        self.assertEqual((st["boots"], st["restored"]["file"]), (2, f"{ck}/A.state"))
        self.assertEqual(c.ok("checkpoints")["current"], "A")
        self.assertEqual(c.ok("delete-checkpoint", name="A"), {"removed": []})
        tree = c.ok("checkpoints")
        self.assertEqual(([(e["name"], e["parent"]) for e in tree["checkpoints"]],
                          tree["current"]), ([("B", None)], None))
        self.assertEqual(sorted(os.listdir(ck)), ["B.state", "index.json"])
        self.assertEqual(c.request("revert", name="A")["error"]["message"], "no checkpoint A")
        c.ok("power-off")
        self.assertEqual(vm.finish(), (0, "vsrv: powered off through the control socket\n"))

        vm = self.start(cpus=1)
        vm.wait_counts(1, 1)
        self.assertEqual(Client(self.sock).request("checkpoint", name="A")["error"], {
            "code": "not-supported",
            "message": "no checkpoints without a folder for them (vsrv run --checkpoints DIR)"})

    def test_checkpoint_then(self):
        """checkpoint's "then": a running VM left paused (its count stops; the
        events are saving then paused), a paused one resumed (its count goes
        on from the next number), absent as it was; vsrv ctl's --paused and
        --running; a wrong value, both options, or either on another command
        refused with their exact lines, no checkpoint made."""
        ck = self.p("ck")
        vm = self.start("--checkpoints", ck, cpus=1, append="hz=100 every=10")
        vm.wait_counts(1, 2)
        c, ev = Client(self.sock), Client(self.sock)
        ev.ok("events")

        def states():
            """The two state events of a checkpoint: (state, previous) each."""
            return [(e["data"]["state"], e["data"]["previous"])
                    for e in (ev.event("state"), ev.event("state"))]

        def stays_paused():
            """The count settled, and still the same a second later."""
            counts = settled(vm.counts)
            time.sleep(1)
            self.assertEqual(vm.counts(), counts)
            return counts[0]

        def size(name):
            return os.path.getsize(f"{ck}/{name}.state")

        r = c.ok("checkpoint", name="A", then="paused")
        self.assertEqual(r, {"name": "A", "file": f"{ck}/A.state", "bytes": size("A"),
                             "state": "paused"})
        self.assertEqual(states(), [("saving", "running"), ("paused", "saving")])
        self.assertEqual(c.ok("status")["state"], "paused")
        at_a = stays_paused()
        # Paused, no "then": it stays so.
        self.assertEqual(c.ok("checkpoint", name="B")["state"], "paused")
        self.assertEqual(states(), [("saving", "paused"), ("paused", "saving")])
        self.assertEqual(stays_paused(), at_a)
        # Paused, "then": "running": it counts on from the next number.
        p = ctl(self.sock, "checkpoint", "C", "--running")
        self.assertEqual((p.returncode, p.stdout, p.stderr),
                         (0, f"checkpoint C: {size('C')} bytes in {ck}/C.state; "
                             "the VM is running\n", ""))
        self.assertEqual(states(), [("saving", "paused"), ("running", "saving")])
        self.assertEqual(c.ok("status")["state"], "running")
        self.assertEqual(vm.wait_counts(1, 2)[0][len(at_a)], at_a[-1] + 1)
        # Running, "then": "running", and no "then": it runs on.
        self.assertEqual(c.ok("checkpoint", name="D", then="running")["state"], "running")
        self.assertEqual(states(), [("saving", "running"), ("running", "saving")])
        self.assertEqual(c.ok("checkpoint", name="E")["state"], "running")
        self.assertEqual(states(), [("saving", "running"), ("running", "saving")])
        vm.wait_counts(1, 2)
        # Refused: no checkpoint, the VM as it was.
        for then in ("stopped", True, "Paused"):
            self.assertEqual(c.request("checkpoint", name="F", then=then)["error"],
                             {"code": "bad-arguments",
                              "message": "then: expected running or paused"})
        self.assertEqual(ctl(self.sock, "checkpoint", "F", "--paused", "--running").stderr,
                         "vsrv: ctl: --running, --paused: one or the other\n")
        p = ctl(self.sock, "pause", "--paused")
        self.assertEqual((p.returncode, p.stdout, p.stderr),
                         (1, "", "vsrv: pause: pause takes no argument 'then'\n"))
        self.assertFalse(os.path.exists(f"{ck}/F.state"))
        self.assertEqual(c.ok("status")["state"], "running")
        vm.wait_counts(1, 2)
        # Running, --paused: its count stops.
        p = ctl(self.sock, "checkpoint", "F", "--paused")
        self.assertEqual(p.stdout, f"checkpoint F: {size('F')} bytes in {ck}/F.state; "
                                   "the VM is paused\n")
        self.assertEqual(c.ok("status")["state"], "paused")
        stays_paused()
        tree = c.ok("checkpoints")
        self.assertEqual([(e["name"], e["parent"]) for e in tree["checkpoints"]],
                         [("A", None), ("B", "A"), ("C", "B"), ("D", "C"), ("E", "D"),
                          ("F", "E")])
        c.ok("power-off")
        self.assertEqual(vm.finish(), (0, "vsrv: powered off through the control socket\n"))

    def test_release_build(self):
        """Saving runs inside the sandbox: the release build's filter, which
        lacks what the sanitizers call, writes it, and restores it."""
        vm = self.start("--rng", "--memory", "128M", cpus=2, append="hz=100 every=10 touch=8",
                        **release())
        vm.wait_counts(2, 2)
        self.assertEqual(Client(self.sock).ok("save", file=self.state)["file"], self.state)
        self.assertEqual(vm.finish()[0], 0)
        before = vm.counts()
        self.assertGreater(os.path.getsize(self.state), 8 << 20)
        vm = self.restore(**release())
        after = vm.wait_counts(2, 1)
        for cpu in (0, 1):
            self.assertEqual(after[cpu][0], before[cpu][-1] + 1, f"cpu{cpu}")
        Client(self.sock).ok("power-off")
        self.assertEqual(vm.finish(), (0, "vsrv: powered off through the control socket\n"))


# What the tick guest (dev-virtio-blk.c, "tick") writes into sector 1.
MARK = b"vsrv: ticking".ljust(512, b"\0")


class SavedDisks(StateTest):
    """Saved state with a disk: the tick guest writes sector 1 once, then
    reads 4 KiB a tick (tick n: sectors 8(n % 8) to 8(n % 8) + 7) and prints
    its FNV-1a.  A saved VM's DREF sections hold each disk file's unique id
    and modification stamp; the restore is refused, with one line, once
    the disk changed."""

    def make_disk(self, vhd=True):
        data = bytearray(pattern("savestate", 1 << 20))
        raw = self.p("disk.img")
        with open(raw, "wb") as f:
            f.write(data)
        if vhd:
            vsrv("disk", "convert", "--to", "dynamic", raw, self.p("disk.vhd"))
            os.unlink(raw)
        data[512:1024] = MARK
        return self.p("disk.vhd") if vhd else raw, bytes(data)

    def check_ticks(self, text, data):
        """Every whole tick line, numbered 1, 2, ... with no gap, and the
        bytes each read: how many."""
        ticks = re.findall(r"^tick (\d+): read sectors (\d+)-(\d+): status 0, used 4097, "
                           r"fnv1a ([0-9a-f]{8})$", text, re.M)
        for i, (n, first, last, h) in enumerate(ticks, 1):
            s = 8 * (i % 8)
            self.assertEqual((int(n), int(first), int(last), h),
                             (i, s, s + 7, fnv1a_hex(data[s * 512:(s + 8) * 512])))
        return len(ticks)

    def saved_with(self, disk, undo="none", last="", **kw):
        """The tick guest on disk, saved after 3 reads: its output.  last:
        what vsrv says after its save's line (an undo disk's end)."""
        vm = self.start("--disk", f"path={disk}" + ("" if undo == "none" else f",undo={undo}"),
                        "--checkpoints", self.p("ck"), kernel=guest("dev-virtio-blk"),
                        append="tick hz=20", **kw)
        vm.wait_for(lambda ls: len(re.findall(r"^tick \d+: .*\n", "".join(ls), re.M)) >= 3,
                    what="3 ticks")
        c = Client(self.sock)
        self.assertEqual(c.ok("status")["config"]["disks"], [
            {"path": disk, "format": "auto", "readonly": False, "undo": undo,
             "cache": "writeback"}])
        # A raw disk, or an undo disk, can have no checkpoint layer
        # (test_checkpoints.py has the rest).
        if undo != "none" or not disk.endswith(".vhd"):
            self.assertEqual(c.request("checkpoint", name="A")["error"]["code"],
                             "not-supported")
        r = c.ok("save", file=self.state)
        self.assertEqual(vm.finish(), (0, f"vsrv: the VM's state was saved to {self.state} "
                                          f"({r['bytes']} bytes); the VM is off\n" + last))
        return "".join(vm.lines)

    def test_a_vhd_disk(self):
        """Restored with --restore alone (the disk from the saved
        configuration), the guest goes on with the next read, of the
        disk's bytes; the VM's process wrote nothing to the disk after the
        save (a VHD's BAT and bitmaps were flushed before its stamps were
        taken), and a restore that reads only leaves it so.  Saved and
        restored by the release build, whose seccomp filter lacks what the
        sanitizers call (the stamps are taken inside it).  Then the disk
        changed by another run, and another disk at its path: refused."""
        disk, data = self.make_disk()
        before = self.saved_with(disk, **release())
        saved = os.stat(disk).st_mtime_ns
        n = self.check_ticks(before, data)
        self.assertGreaterEqual(n, 3)
        self.assertIn(("DREF", 5), [(t, i) for t, i, _, _ in sections(self.state)])

        vm = self.restore(**release())
        vm.wait_for(lambda ls: self.check_ticks(before + "".join(ls), data) >= n + 3,
                    what="3 more ticks after the restore")
        Client(self.sock).ok("power-off")
        self.assertEqual(vm.finish(), (0, "vsrv: powered off through the control socket\n"))
        self.assertGreaterEqual(self.check_ticks(before + "".join(vm.lines), data), n + 3)
        self.assertEqual(os.stat(disk).st_mtime_ns, saved)

        # Another run on the disk (the guest's default run writes to it).
        p = run(VSRV, "run", "--test-device", "--kernel", guest("dev-virtio-blk"), "--disk",
                disk, check=False, timeout=60)
        self.assertTrue(p.stdout.endswith("blk ok\n"), p.stdout + p.stderr)
        self.refused(f"vsrv: {self.state}: {disk} changed since the save (modified "
                     f"{stamp(os.stat(disk).st_mtime_ns)}, saved at {stamp(saved)})")
        uuid = vsrv("disk", "info", "--json", disk).stdout
        os.unlink(disk)
        self.make_disk()
        self.refused(f"vsrv: {self.state}: {disk} is not the disk saved (unique id "
                     f"{json_uuid(vsrv('disk', 'info', '--json', disk).stdout)}, saved with "
                     f"unique id {json_uuid(uuid)})")
        # What must match before any of that: as many disks.
        self.refused(f"vsrv: {self.state}: saved with disks 1, this run has 0 (a restore needs "
                     "the same vCPUs, memory and devices)", "--config", self.empty_config())

    def test_a_raw_disk(self):
        """A raw file's stamp is its length and modification time: one byte
        written into it after the save, and the restore is refused."""
        disk, data = self.make_disk(vhd=False)
        before = self.saved_with(disk)
        saved = os.stat(disk).st_mtime_ns
        self.assertGreaterEqual(self.check_ticks(before, data), 3)
        with open(disk, "r+b") as f:
            f.seek(4096)
            f.write(b"x")
        self.refused(f"vsrv: {self.state}: {disk} changed since the save (modified "
                     f"{stamp(os.stat(disk).st_mtime_ns)}, saved at {stamp(saved)})")

    def test_undo_disks(self):
        """undo=keep: the restore (its disk from the saved configuration,
        with undo-resume) goes on on the overlay that the saved run kept,
        whose stamps held.  undo=commit: the saved run's overlay was merged
        when it ended, and the restore's new one is not the disk saved."""
        disk, data = self.make_disk()
        overlay = self.p("disk.undo.vhd")
        kept = (f"vsrv: {overlay}: the run's changes are kept here (vsrv disk commit "
                f"{overlay} merges them)\n")
        before = self.saved_with(disk, "keep", kept)
        n = self.check_ticks(before, data)
        vm = self.restore()
        vm.wait_for(lambda ls: self.check_ticks(before + "".join(ls), data) >= n + 2,
                    what="2 more ticks after the restore")
        Client(self.sock).ok("power-off")
        self.assertEqual(vm.finish(),
                         (0, "vsrv: powered off through the control socket\n" + kept))

        os.unlink(overlay)
        merged = f"vsrv: {disk}: the run's changes are merged into it (undo=commit)\n"
        self.saved_with(disk, "commit", merged)
        self.assertFalse(os.path.exists(overlay))
        p = run(VSRV, "run", "--restore", self.state, check=False, timeout=60)
        self.assertEqual((p.returncode, p.stdout), (1, ""))
        self.assertRegex(p.stderr, "^" + re.escape(f"vsrv: {self.state}: {overlay} is not the "
                                                   "disk saved (unique id ") +
                         r"[0-9a-f-]{36}, saved with unique id [0-9a-f-]{36}\)\n" +
                         re.escape(merged) + "$")

    def empty_config(self):
        path = self.p("empty.json")
        with open(path, "w") as f:
            f.write('{"version": 1, "disks": []}\n')
        return path


if __name__ == "__main__":
    main()
