"""vsrvd driving its VMs through their control sockets (docs/vsrvd.md): pause
and resume, ACPI shutdown of a guest that handles the power button and of
one that ignores it, save and restore, checkpoints, reset, the VMM's state
changes in the inventory and the event log, reconnection after vsrvd
restarts, the VMM's counters in /metrics, VMs with disks and NICs, and the
service's stop saving VMs that its next start restores.  The guests are
tests/guests/ctl-count.c (each vCPU prints "cpu0 N", N rising by one, every
tenth tick: a pause is silence, a restore the next number) and
dev-virtio-blk.c's tick run (a read of 4 KiB a tick)."""
import json
import os
import re
import signal
import sqlite3
import subprocess
import time

from vsrvdtest import VSRV, VsrvdTest, guest, main, pid_alive
from vsrvtest import settled

COUNT = re.compile(r"^cpu0 (\d+)$", re.M)


class CtlTest(VsrvdTest):
    config = {"shutdown_timeout_s": 30}

    def counter(self, name, **kw):
        spec = {"name": name, "kernel": guest("ctl-count"), "test_device": True,
                "memory": "16M", "cmdline": "hz=100 every=10"}
        spec.update(kw)
        vm = self.api.ok("POST", "/v1/vms", spec, 201)
        return vm

    def log(self, vm):
        with open(self.vm_file(vm, "vmm.log")) as f:
            return f.read()

    def counts(self, vm):
        return [int(n) for n in COUNT.findall(self.log(vm))]

    def wait_counts(self, vm, more, timeout=60):
        """Until `more` counts beyond those printed now; all of them."""
        base = len(self.counts(vm))
        end = time.monotonic() + timeout
        while len(self.counts(vm)) < base + more:
            self.assertLess(time.monotonic(), end, f"counts: {self.counts(vm)[-5:]}")
            time.sleep(0.05)
        return self.counts(vm)

    def settled(self, vm):
        """The counts once the console stops bringing more (after a pause
        or a save, lines printed before it may still be on their way)."""
        return settled(lambda: self.counts(vm))

    def vsrv(self, *args, check=True):
        env = dict(os.environ, VSRV_CONNECT="unix:" + os.path.join(self.state, "vsrvd.sock"))
        p = subprocess.run([VSRV, *args], capture_output=True, text=True, env=env, timeout=120)
        if check and p.returncode:
            raise AssertionError(f"vsrv {args}: {p.returncode}\n{p.stderr}")
        return p

    def events_after(self, name, first):
        """The VM's event types from the first of type `first` on."""
        types = self.event_types(name)
        return types[types.index(first):]


class PauseResumeTest(CtlTest):
    def test_pause_resume_api_and_cli(self):
        vm = self.counter("c")
        self.api.ok("POST", "/v1/vms/c/start")
        self.wait_counts(vm, 3)
        vm = self.api.ok("POST", "/v1/vms/c/pause")
        self.assertEqual(vm["state"], "paused")
        before = self.settled(vm)
        time.sleep(1)
        self.assertEqual(self.counts(vm), before)      # nothing counted while paused
        self.assertEqual(self.api.call("POST", "/v1/vms/c/pause"),
                         (409, {"error": "vm 'c': paused already"}))
        self.assertEqual(self.api.call("POST", "/v1/vms/c/start"),
                         (409, {"error": "vm 'c': paused"}))
        self.assertEqual(self.api.ok("GET", "/v1/vms/c")["state"], "paused")
        vm = self.api.ok("POST", "/v1/vms/c/resume")
        self.assertEqual(vm["state"], "running")
        after = self.wait_counts(vm, 2)
        self.assertEqual(after[len(before):len(before) + 2], [before[-1] + 1, before[-1] + 2])
        self.assertEqual(self.api.call("POST", "/v1/vms/c/resume"),
                         (409, {"error": "vm 'c': running, not paused"}))
        # The same through `vsrv vm`.
        p = self.vsrv("vm", "pause", "c")
        self.assertIn("state            paused\n", p.stdout)
        before = self.settled(vm)
        time.sleep(0.5)
        self.assertEqual(self.counts(vm), before)
        p = self.vsrv("vm", "resume", "c")
        self.assertIn("state            running\n", p.stdout)
        self.assertEqual(self.wait_counts(vm, 1)[len(before)], before[-1] + 1)
        p = self.vsrv("vm", "resume", "c", check=False)
        self.assertEqual((p.returncode, p.stderr), (1, "vsrv: vm 'c': running, not paused\n"))
        self.assertEqual(self.events_after("c", "vm.paused"),
                         ["vm.paused", "vm.resumed", "vm.paused", "vm.resumed"])
        m = self.api.raw("GET", "/metrics")[2].decode()
        self.assertIn('vsrv_vm_state{vm="c",state="running"} 1\n', m)

    def test_not_running(self):
        self.counter("s")
        for action in ("pause", "shutdown", "reset", "save", "resume"):
            s, out = self.api.call("POST", f"/v1/vms/s/{action}")
            self.assertEqual((s, out), (409, {"error": "vm 's': stopped, not " +
                                                       ("paused" if action == "resume"
                                                        else "running")}), action)
        self.assertEqual(self.api.call("POST", "/v1/vms/s/restore"),
                         (409, {"error": "vm 's': stopped, no saved state to restore"}))
        self.assertEqual(self.api.call("POST", "/v1/vms/s/checkpoint", {"name": "a"}),
                         (409, {"error": "vm 's': stopped, not running"}))
        self.assertEqual(self.api.call("POST", "/v1/vms/s/pause", {"x": 1}),
                         (400, {"error": "pause: takes no body"}))
        self.assertEqual(self.api.call("POST", "/v1/vms/s/shutdown", {"timeout": 0}),
                         (400, {"error": "timeout: expected an integer from 1 to 86400"}))
        self.assertEqual(self.api.ok("GET", "/v1/vms/s/checkpoints"),
                         {"current": None, "checkpoints": []})

    def test_reset(self):
        vm = self.counter("r")
        self.api.ok("POST", "/v1/vms/r/start")
        self.wait_counts(vm, 3)
        self.assertEqual(self.api.ok("POST", "/v1/vms/r/reset")["state"], "running")
        # The new boot counts from 1 again.
        end = time.monotonic() + 60
        while True:
            c = self.counts(vm)
            k = next((k for k in range(1, len(c)) if c[k] != c[k - 1] + 1), None)
            if k is not None and len(c) > k + 1:
                break
            self.assertLess(time.monotonic(), end)
            time.sleep(0.05)
        self.assertEqual(c[k:k + 2], [1, 2])
        self.wait_event("r", "vm.rebooted")
        self.assertEqual(self.events_after("r", "vm.reset"), ["vm.reset", "vm.rebooted"])
        self.assertEqual(self.events("r")[-1]["message"], "boot 2 begins")


class ShutdownTest(CtlTest):
    def test_guest_handles_the_button(self):
        vm = self.counter("b", cmdline="hz=100 every=10 button=1")
        self.api.ok("POST", "/v1/vms/b/start")
        self.wait_counts(vm, 2)
        vm = self.api.ok("POST", "/v1/vms/b/shutdown")
        self.assertIn(vm["state"], ("shutting-down", "stopped"))
        vm = self.wait_state("b", "stopped")
        self.assertEqual(vm["last_exit"], "exited with status 0 (powered off)")
        self.assertIn("power button\n", self.log(vm))
        self.assertEqual(self.events_after("b", "vm.shutting-down"),
                         ["vm.shutting-down", "vm.stopped"])
        ev = self.events("b")
        self.assertEqual(ev[-2]["message"], "the power button was pressed: the guest has 30 s "
                                            "to shut down")
        self.assertEqual(ev[-1]["message"],
                         "shut down on request: exited with status 0 (powered off)")
        self.assertEqual(self.api.call("POST", "/v1/vms/b/shutdown"),
                         (409, {"error": "vm 'b': stopped, not running"}))

    def test_guest_ignores_the_button(self):
        # restart_policy always: a shutdown is asked for, never restarted.
        vm = self.counter("i", restart_policy="always")
        self.api.ok("POST", "/v1/vms/i/start")
        self.wait_counts(vm, 2)
        t0 = time.monotonic()
        p = self.vsrv("vm", "shutdown", "i", "--timeout", "2")
        self.assertIn("state            shutting-down\n", p.stdout)
        self.assertEqual(self.api.call("POST", "/v1/vms/i/shutdown"),
                         (409, {"error": "vm 'i': shutting-down already"}))
        # Counting on meanwhile: the guest does not care.
        self.wait_counts(vm, 3)
        vm = self.wait_state("i", "stopped")
        self.assertGreaterEqual(time.monotonic() - t0, 1.9)
        self.assertEqual(vm["last_exit"], "exited with status 0 (powered off)")
        self.assertEqual(self.events_after("i", "vm.shutting-down"),
                         ["vm.shutting-down", "vm.shutdown-timeout", "vm.stopped"])
        ev = self.events("i")
        self.assertEqual(ev[-2]["message"],
                         "the guest did not shut down within 2 s: the VMM does a power-off")
        time.sleep(0.5)
        self.assertEqual(self.api.ok("GET", "/v1/vms/i")["state"], "stopped")


class SaveRestoreTest(CtlTest):
    def test_save_and_restore(self):
        vm = self.counter("s")
        self.api.ok("POST", "/v1/vms/s/start")
        self.wait_counts(vm, 3)
        vm = self.api.ok("POST", "/v1/vms/s/save")
        self.assertEqual(vm["state"], "saved")
        self.assertNotIn("pid", vm)
        saved = self.vm_file(vm, "saved.state")
        with open(saved, "rb") as f:
            self.assertEqual(f.read(8), b"VSRVSAVE")
        before = self.settled(vm)
        e = self.events("s")[-1]
        self.assertEqual((e["type"], e["message"]),
                         ("vm.saved", f"its state is in {saved} ({os.path.getsize(saved)} bytes)"))
        # Its machine cannot change under its state; how vsrvd treats it can.
        self.assertEqual(self.api.call("PATCH", "/v1/vms/s", {"vcpus": 2}),
                         (409, {"error": "vm 's': vcpus cannot change while it is saved (its "
                                         "state needs the VM as it was; power-off discards "
                                         "the state)"}))
        self.api.ok("PATCH", "/v1/vms/s", {"description": "saved"})
        self.assertEqual(self.api.call("POST", "/v1/vms/s/pause"),
                         (409, {"error": "vm 's': saved, not running"}))
        # Restore: the count goes on from the next number.
        vm = self.api.ok("POST", "/v1/vms/s/restore")
        self.assertEqual(vm["state"], "running")
        after = self.wait_counts(vm, 2)
        self.assertEqual(after[len(before):len(before) + 2], [before[-1] + 1, before[-1] + 2])
        self.wait_event("s", "vm.restored")
        self.assertFalse(os.path.exists(saved))
        with open(f"/proc/{vm['pid']}/cmdline") as f:
            self.assertEqual(f.read().split("\0")[1:7], ["run", "--config", "vm.json",
                                                          "--test-device", "--restore",
                                                          "saved.state"])
        # Saved again, then powered off: the state is thrown away.
        self.vsrv("vm", "save", "s")
        self.assertTrue(os.path.exists(saved))
        vm = self.api.ok("POST", "/v1/vms/s/power-off")
        self.assertEqual(vm["state"], "stopped")
        self.assertFalse(os.path.exists(saved))
        self.assertEqual(self.events("s")[-1]["message"],
                         "powered off: its saved state is discarded")
        # A start boots afresh: counting from 1.
        n = len(self.counts(vm))
        self.api.ok("POST", "/v1/vms/s/start")
        self.assertEqual(self.wait_counts(vm, 1)[n], 1)

    def test_restore_refused(self):
        vm = self.counter("f")
        self.api.ok("POST", "/v1/vms/f/start")
        self.wait_counts(vm, 1)
        self.api.ok("POST", "/v1/vms/f/save")
        # A state that does not restore: the VM stays saved, the VMM's
        # line in its log.
        saved = self.vm_file(vm, "saved.state")
        with open(saved, "r+b") as f:
            f.write(b"NOTSAVED")
        self.api.ok("POST", "/v1/vms/f/start")
        vm = self.wait_state("f", "saved")
        self.assertEqual(vm["last_exit"], "exited with status 1 (the VMM failed)")
        self.assertEqual(self.events("f")[-1]["message"],
                         "exited with status 1 (the VMM failed) (see vmm.log)")
        self.assertIn("vsrv: saved.state: not a vsrv saved state\n", self.log(vm))
        self.assertTrue(os.path.exists(saved))

    def test_checkpoints(self):
        vm = self.counter("k")
        self.api.ok("POST", "/v1/vms/k/start")
        self.wait_counts(vm, 2)
        self.api.ok("POST", "/v1/vms/k/pause")
        at_a = self.settled(vm)
        ck = self.api.ok("POST", "/v1/vms/k/checkpoint", {"name": "a"}, 201)
        path = self.vm_file(vm, "checkpoints/a.state")
        self.assertEqual(ck, {"name": "a", "file": path, "bytes": os.path.getsize(path),
                              "state": "paused"})
        self.assertEqual(self.api.ok("GET", "/v1/vms/k")["state"], "paused")
        self.api.ok("POST", "/v1/vms/k/resume")
        self.wait_counts(vm, 2)
        self.assertEqual(self.api.call("POST", "/v1/vms/k/checkpoint", {"name": "a"}),
                         (409, {"error": "vm 'k': checkpoint a exists"}))
        self.assertEqual(self.api.call("POST", "/v1/vms/k/checkpoint", {}),
                         (400, {"error": "name: required"}))
        self.vsrv("vm", "checkpoint", "k", "b")
        tree = self.api.ok("GET", "/v1/vms/k/checkpoints")
        self.assertEqual((tree["current"], [(c["name"], c["parent"]) for c in tree["checkpoints"]]),
                         ("b", [("a", None), ("b", "a")]))
        p = self.vsrv("vm", "checkpoints", "k")
        self.assertRegex(p.stdout, r"^- a \(\d+ bytes\)\n  \* b \(\d+ bytes\)\n$")
        n = len(self.counts(vm))
        self.assertEqual(self.api.call("POST", "/v1/vms/k/checkpoints/z/revert"),
                         (404, {"error": "vm 'k': no checkpoint z"}))
        vm = self.api.ok("POST", "/v1/vms/k/checkpoints/a/revert")
        # From a: the number after its last one, after the old boot's.
        end = time.monotonic() + 60
        while True:
            c = self.counts(vm)[n - 1:]
            k = next((k for k in range(1, len(c)) if c[k] != c[k - 1] + 1), None)
            if k is not None:
                break
            self.assertLess(time.monotonic(), end)
            time.sleep(0.05)
        self.assertEqual(c[k], at_a[-1] + 1)
        self.assertEqual(self.api.ok("DELETE", "/v1/vms/k/checkpoints/a"), {"deleted": "a"})
        self.assertEqual(self.api.call("DELETE", "/v1/vms/k/checkpoints/a"),
                         (404, {"error": "vm 'k': no checkpoint a"}))
        types = self.event_types("k")
        for t in ("vm.checkpoint-created", "vm.reverted", "vm.checkpoint-deleted"):
            self.assertIn(t, types)
        self.api.ok("POST", "/v1/vms/k/power-off")
        self.wait_state("k", "stopped")
        # Off, its checkpoints are read from its folder.
        self.assertEqual([c["name"] for c in
                          self.api.ok("GET", "/v1/vms/k/checkpoints")["checkpoints"]], ["b"])

    def test_checkpoint_then(self):
        """A checkpoint's "then": a running VM left paused (vm.paused, its
        count stopped), a paused one resumed (vm.resumed, its count going on
        from the next number); a wrong value refused (400, no checkpoint)."""
        vm = self.counter("t")
        self.api.ok("POST", "/v1/vms/t/start")
        self.wait_counts(vm, 2)
        ck = self.api.ok("POST", "/v1/vms/t/checkpoint", {"name": "a", "then": "paused"}, 201)
        self.assertEqual(ck["state"], "paused")
        self.assertEqual(self.api.ok("GET", "/v1/vms/t")["state"], "paused")
        at_a = self.settled(vm)
        time.sleep(1)
        self.assertEqual(self.counts(vm), at_a)
        self.assertEqual(self.api.call("POST", "/v1/vms/t/checkpoint",
                                       {"name": "b", "then": "off"}),
                         (400, {"error": "then: expected running or paused"}))
        p = self.vsrv("vm", "checkpoint", "t", "b", "--running")
        self.assertRegex(p.stdout, r"(?m)^state +running$")
        self.assertEqual(self.api.ok("GET", "/v1/vms/t")["state"], "running")
        self.assertEqual(self.wait_counts(vm, 2)[len(at_a)], at_a[-1] + 1)
        p = self.vsrv("vm", "pause", "t", "--paused", check=False)
        self.assertEqual((p.returncode, p.stderr), (2, "vsrv: vm pause: takes no --paused\n"))
        self.assertEqual(self.events_after("t", "vm.paused"),
                         ["vm.paused", "vm.checkpoint-created", "vm.resumed",
                          "vm.checkpoint-created"])
        self.assertEqual([c["name"] for c in
                          self.api.ok("GET", "/v1/vms/t/checkpoints")["checkpoints"]], ["a", "b"])


class AdoptionTest(CtlTest):
    def test_reconnects_after_vsrvd_restarts(self):
        vm = self.counter("a")
        self.api.ok("POST", "/v1/vms/a/start")
        self.wait_counts(vm, 2)
        self.api.ok("POST", "/v1/vms/a/pause")
        pid = self.api.ok("GET", "/v1/vms/a")["pid"]
        self.api.close()
        self.d.stop(signal.SIGKILL)
        self.d.start()
        vm = self.api.ok("GET", "/v1/vms/a")
        self.assertEqual((vm["state"], vm["pid"]), ("paused", pid))
        before = self.settled(vm)
        # Through the socket the new vsrvd connected to.
        self.assertEqual(self.api.ok("POST", "/v1/vms/a/resume")["state"], "running")
        self.assertEqual(self.wait_counts(vm, 1)[len(before)], before[-1] + 1)
        # State changes the VMM pushes reach the inventory.
        subprocess.run([VSRV, "ctl", self.vm_file(vm, "control.sock"), "pause"], check=True,
                       capture_output=True)
        self.wait_state("a", "paused")
        self.assertEqual(self.event_types("a")[-1], "vm.paused")


class DevicesTest(CtlTest):
    def test_disk_and_nic(self):
        disk = self.api.ok("POST", "/v1/disks", {"name": "d0", "size": "16M"}, 201)
        self.api.ok("POST", "/v1/networks", {"name": "nat", "type": "user"}, 201)
        vm = self.api.ok("POST", "/v1/vms", {
            "name": "dn", "kernel": guest("dev-virtio-blk"), "test_device": True,
            "memory": "16M", "cmdline": "tick hz=20",
            "disks": [{"path": disk["path"], "undo": "keep", "cache": "none"}],
            "nics": [{"network": "nat"}]}, 201)
        self.assertEqual(vm["disks"], [{"path": disk["path"], "undo": "keep",
                                        "readonly": False, "cache": "none"}])
        mac = vm["nics"][0]["mac"]
        vm = self.api.ok("POST", "/v1/vms/dn/start")
        self.assertEqual(vm["state"], "running")
        with open(self.vm_file(vm, "vm.json")) as f:
            conf = json.load(f)
        self.assertEqual(conf, {
            "version": 1, "console": "socket:console.sock", "on_reboot": "restart",
            "host_quirks": "auto", "control": "control.sock", "checkpoints": "checkpoints",
            "name": "dn", "uuid": vm["uuid"], "vcpus": 1, "memory": 16 << 20,
            "cmdline": "tick hz=20", "rng": False, "kernel": guest("dev-virtio-blk"),
            "disks": [{"path": disk["path"], "readonly": False, "undo": "keep",
                       "cache": "none"}],
            "nics": [{"type": "user", "mac": mac}]})
        log = self.vm_file(vm, "vmm.log")
        self.wait_file_has(log, "tick 3:")
        self.api.ok("POST", "/v1/vms/dn/pause")
        time.sleep(0.5)
        with open(log) as f:
            ticks = f.read().count("\ntick ")
        m = self.api.raw("GET", "/metrics")[2].decode()
        reads = int(re.search(r'^vsrv_vm_disk_requests_total\{vm="dn",disk="0",op="read"\} (\d+)$',
                              m, re.M).group(1))
        # A read may have been on its way when the pause came.
        self.assertIn(reads, (ticks, ticks + 1))
        for line in (f'vsrv_vm_disk_info{{vm="dn",disk="0",path="{disk["path"]}"}} 1',
                     'vsrv_vm_disk_requests_total{vm="dn",disk="0",op="write"} 1',
                     'vsrv_vm_disk_requests_total{vm="dn",disk="0",op="flush"} 0',
                     f'vsrv_vm_disk_bytes_total{{vm="dn",disk="0",op="read"}} {4096 * reads}',
                     'vsrv_vm_disk_bytes_total{vm="dn",disk="0",op="write"} 512',
                     'vsrv_vm_disk_errors_total{vm="dn",disk="0"} 0',
                     'vsrv_vm_disk_latency_seconds_bucket{vm="dn",disk="0",le="+Inf"} '
                     f'{reads + 1}',
                     f'vsrv_vm_disk_latency_seconds_count{{vm="dn",disk="0"}} {reads + 1}',
                     f'vsrv_vm_nic_info{{vm="dn",nic="0",network="nat",mac="{mac}"}} 1',
                     'vsrv_vm_vmm_resident_bytes{vm="dn",process="vm"}'):
            self.assertIn("\n" + line, m)
        # The guest sends nothing: if the VMM counts its NIC, it counts 0.
        for sample in re.findall(r'^vsrv_vm_nic_\w+_total\{vm="dn",nic="0",direction="tx"\} (\d+)$',
                                 m, re.M):
            self.assertEqual(sample, "0")
        # Undo keep: the overlay beside the disk, in disk_dirs.
        self.assertTrue(os.path.exists(os.path.join(self.disks, "d0.undo.vhd")))
        # A saved state with an undo disk that is merged at the end would
        # not restore: refused.
        self.api.ok("POST", "/v1/vms/dn/power-off")
        self.wait_state("dn", "stopped")
        self.api.ok("PATCH", "/v1/vms/dn", {"disks": [{"path": disk["path"],
                                                       "undo": "commit"}]})
        self.api.ok("POST", "/v1/vms/dn/start")
        self.wait_file_has(log, "ticking: sector 1 marked")
        self.assertEqual(self.api.call("POST", "/v1/vms/dn/save"),
                         (409, {"error": "vm 'dn': disks[0] has undo commit, whose changes go "
                                         "at the VM's end: its saved state would not restore "
                                         "(undo keep would)"}))

    def test_disk_checks(self):
        d = self.api.ok("POST", "/v1/disks", {"name": "p", "size": "16M"}, 201)
        raw = os.path.join(self.disks, "r.img")
        with open(raw, "wb") as f:
            f.truncate(1 << 20)
        for disk, err in (({"path": d["path"], "undo": "keep", "readonly": True},
                           "disks[0].undo: not on a read-only disk"),
                          ({"path": raw, "undo": "discard"},
                           "disks[0].undo: only on a VHD (.vhd or .avhd)"),
                          ({"path": raw, "cache": "fast"},
                           "disks[0].cache: expected writeback, none or unsafe")):
            self.assertEqual(self.api.call("POST", "/v1/vms", self.vm_spec("x", disks=[disk])),
                             (400, {"error": err}))
        # A differencing disk whose parent is outside disk_dirs: refused at
        # start, whatever the request named.
        outside = os.path.join(self.images, "base.vhd")
        subprocess.run([VSRV, "disk", "create", "--size", "16M", outside], check=True)
        child = os.path.join(self.disks, "child.vhd")
        subprocess.run([VSRV, "disk", "create", "--parent", outside, child], check=True)
        self.create("x", disks=[{"path": child}])
        self.assertEqual(self.api.call("POST", "/v1/vms/x/start"),
                         (403, {"error": f"disks[0]: {child}'s parent {outside} is outside the "
                                         "directories the configuration allows"}))
        self.assertEqual(self.api.ok("GET", "/v1/vms/x")["state"], "stopped")

    def test_metrics_shape(self):
        vm = self.counter("m")
        self.api.ok("POST", "/v1/vms/m/start")
        self.wait_counts(vm, 1)
        m = self.api.raw("GET", "/metrics")[2].decode()
        self.assertTrue(m.endswith("\n"))
        typed = {}
        sample = re.compile(r'^([a-z_]+)(\{([a-z_]+="[^"\\]*",)*[a-z_]+="[^"\\]*"\})? '
                            r'(-?[0-9.e+-]+|\+Inf)$')
        for line in m.splitlines():
            if line.startswith("# HELP "):
                continue
            if line.startswith("# TYPE "):
                _, _, name, kind = line.split()
                self.assertIn(kind, ("gauge", "counter", "histogram"))
                self.assertNotIn(name, typed)
                typed[name] = kind
                continue
            s = sample.match(line)
            self.assertIsNotNone(s, line)
            name = s.group(1)
            base = re.sub(r"_(bucket|count)$", "", name)
            self.assertTrue(name in typed or typed.get(base) == "histogram", line)
        self.assertRegex(m, r'\nvsrv_vm_vcpu_seconds_total\{vm="m",vcpu="0",mode="guest"\} '
                            r'[0-9.]+\n')
        self.assertRegex(m, r'\nvsrv_vm_exits_total\{vm="m",vcpu="0",reason="IO"\} \d+\n')
        self.assertRegex(m, r'\nvsrv_vm_memory_touched_bytes\{vm="m"\} \d+\n')
        # A VMM that does not answer does not hold the scrape: stopped
        # (SIGSTOP), it is left out after a second.
        pid = self.api.ok("GET", "/v1/vms/m")["pid"]
        time.sleep(1.2)     # the last answer is no longer fresh
        os.kill(pid, signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            m = self.api.raw("GET", "/metrics")[2].decode()
            self.assertLess(time.monotonic() - t0, 3)
            self.assertIn('vsrv_vm_state{vm="m",state="running"} 1\n', m)
            s, out = self.api.call("POST", "/v1/vms/m/pause")
        finally:
            os.kill(pid, signal.SIGCONT)
        self.assertEqual((s, out), (504, {"error": "vm 'm': pause: the VMM did not answer "
                                                   "within 2000 ms"}))

    config = {"control_timeout_ms": 2000, "shutdown_timeout_s": 30}


class ServiceStopTest(CtlTest):
    config = {"on_stop": "save", "shutdown_timeout_s": 30}

    def test_stop_saves_and_start_restores(self):
        sv = self.counter("sv", autostart=True)
        self.counter("po", on_stop="power-off")
        self.counter("sd", on_stop="shutdown", cmdline="hz=100 every=10 button=1")
        lv = self.counter("lv", on_stop="leave")
        for n in ("sv", "po", "sd", "lv"):
            self.api.ok("POST", f"/v1/vms/{n}/start")
        self.wait_counts(sv, 3)
        self.wait_counts(lv, 1)
        left = self.api.ok("GET", "/v1/vms/lv")["pid"]
        self.api.close()
        self.assertEqual(self.d.stop(), 0)
        before = self.settled(sv)
        con = sqlite3.connect(os.path.join(self.state, "inventory.db"))
        states = dict(con.execute("SELECT name, state FROM vms"))
        con.close()
        self.assertEqual(states, {"sv": "saved", "po": "stopped", "sd": "stopped",
                                  "lv": "running"})
        self.assertTrue(os.path.exists(self.vm_file(sv, "saved.state")))
        self.assertTrue(pid_alive(left))
        self.d.start()
        # Autostart restores the saved one; the one left running is adopted.
        vm = self.wait_state("sv", "running")
        after = self.wait_counts(sv, 2)
        self.assertEqual(after[len(before):len(before) + 2], [before[-1] + 1, before[-1] + 2])
        self.assertEqual(self.api.ok("GET", "/v1/vms/lv")["pid"], left)
        self.assertEqual(self.api.ok("GET", "/v1/vms/po")["state"], "stopped")
        types = self.event_types("sd")
        self.assertIn("vm.shutting-down", types)
        self.assertEqual(self.events("sd")[-1]["message"],
                         "shut down at the service's stop: exited with status 0 (powered off)")
        self.assertIn("power button\n", self.log(self.api.ok("GET", "/v1/vms/sd")))
        started = [e for e in self.events("sv") if e["type"] == "vm.started"][-1]
        self.assertEqual(started["message"][:40], "autostart, restoring its saved state (mo")
        self.wait_event("sv", "vm.restored")
        self.assertEqual(vm["state"], "running")


if __name__ == "__main__":
    main()
