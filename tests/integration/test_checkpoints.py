"""Checkpoints with disks and undo at run time (docs/control.md, "Checkpoints").

The count guest (tests/guests/dev-virtio-blk.c, "count") writes its count n
into sector 64 + n % 64 on every tick, after checking that the sector of the
count before holds it, and prints "count N: sector S".  A checkpoint saves
the VM and puts every writable VHD on a new differencing layer over its top;
a revert brings back the memory and the disk together (the count goes on
from the checkpoint's, and what the guest reads back holds); the layers are
checked in the files themselves (vsrv disk info --json for the chains, vsrv
disk convert for the bytes).  Deleting checkpoints removes the layers
nothing needs and merges the rest down when the run ends.  An undo disk's
mode changed while it runs decides its end."""
import hashlib
import json
import os
import re
import time

from ctltest import VM, Client, ctl, guest
from vsrvtest import VSRV, TmpDirTest, main, pattern, release_build, run, settled, vsrv

SIZE = 1 << 20
COUNT_SECTOR = 64
COUNT_SECTORS = 64


def count_text(n):
    return f"count {n}".encode().ljust(512, b"\0")


def image(base, last):
    """The disk the guest leaves after counting 1..last over base."""
    out = bytearray(base)
    for k in range(max(1, last - COUNT_SECTORS + 1), last + 1):
        s = COUNT_SECTOR + k % COUNT_SECTORS
        out[s * 512:(s + 1) * 512] = count_text(k)
    return bytes(out)


class CheckpointTest(TmpDirTest):
    def setUp(self):
        super().setUp()
        self.sock = self.p("c.sock")
        self.ck = self.p("ck")
        self.vms = []

    def tearDown(self):
        for vm in self.vms:
            vm.kill()
        super().tearDown()

    def start(self, *disks, args=(), release=False, **kw):
        args = list(args)
        for d in disks:
            args += ["--disk", d]
        if release:
            # The release build's seccomp filter: the VM switches its disks
            # inside it.
            kw["binary"], kw["env"] = release_build()
        kw.setdefault("kernel", guest("dev-virtio-blk"))
        vm = VM(self.sock, *args, "--checkpoints", self.ck, append="count hz=20", **kw)
        self.vms.append(vm)
        return vm

    def make_disk(self, name, seed):
        """A 1 MiB dynamic VHD full of seed's bytes: (path, bytes)."""
        data = pattern(seed, SIZE)
        raw = self.p(name + ".img")
        with open(raw, "wb") as f:
            f.write(data)
        vsrv("disk", "convert", "--to", "dynamic", raw, self.p(name + ".vhd"))
        os.unlink(raw)
        return self.p(name + ".vhd"), data

    def counts(self, vm, lines=None):
        return [int(m) for m in re.findall(r"^count (\d+): sector \d+$",
                                           "".join(vm.lines if lines is None else lines), re.M)]

    def wait_counts(self, vm, more):
        n = len(self.counts(vm))
        vm.wait_for(lambda ls: len(self.counts(vm, ls)) >= n + more, what=f"{more} more counts")

    def settled(self, vm):
        """The counts once the console has passed on all of them (the VM is
        paused): the last one."""
        seen = settled(lambda: self.counts(vm))
        return seen[-1]

    def chain(self, top):
        """The files of top's chain, from the top down."""
        info = json.loads(vsrv("disk", "info", "--json", top).stdout)
        return [os.path.normpath(os.path.join(os.path.dirname(top), p["file"]))
                for p in [info] + info.get("parents", [])]

    def read(self, top):
        out = self.p("read.raw")
        vsrv("disk", "convert", "--to", "raw", top, out)
        with open(out, "rb") as f:
            data = f.read()
        os.unlink(out)
        return data

    def assert_image(self, top, base, last, what):
        """top's chain reads as base after counts 1..last, exactly; the
        sector of count last + 1 may hold it too (a pause does not wait for
        the guest to print the count its write is for)."""
        got, want, alt = self.read(top), image(base, last), image(base, last + 1)
        if got not in (want, alt):
            bad = next(s for s in range(SIZE // 512)
                       if got[s * 512:(s + 1) * 512] != want[s * 512:(s + 1) * 512])
            self.fail(f"{what}: sector {bad} holds {got[bad * 512:bad * 512 + 16]!r}, "
                      f"expected {want[bad * 512:bad * 512 + 16]!r}")

    def files(self):
        return sorted(f for f in os.listdir(self.dir) if f.endswith("hd"))

    def no_failures(self, vm):
        self.assertEqual([ln for ln in vm.lines if "FAIL" in ln], [])


class Checkpoints(CheckpointTest):
    def test_revert_brings_the_disk_back(self):
        """Checkpoint A of a paused VM, B of a running one, revert to A: the
        count goes on from A's, the disk reads what it held at A (the guest
        checks its last sector; the files hold A's bytes, B's writes gone),
        A's layer was never written again; the VM's two disks (one with
        cache=none, through O_DIRECT descriptors) each went on in a new layer
        that the supervisor made, switched inside the release build's
        sandbox.  delete-checkpoint B removes its layers, which nothing
        needs once the revert left them."""
        disk, data = self.make_disk("disk", "ckpt")
        other, other_data = self.make_disk("d2", "ckpt2")
        vm = self.start(f"path={disk}", f"path={other},cache=none", release=True)
        self.wait_counts(vm, 3)
        c = Client(self.sock)
        c.ok("pause")
        r = c.ok("checkpoint", name="A")
        self.assertEqual(r, {"name": "A", "file": f"{self.ck}/A.state",
                             "bytes": os.path.getsize(f"{self.ck}/A.state"), "state": "paused"})
        a = self.settled(vm)
        self.assertEqual(c.ok("status")["state"], "paused")
        base_stamp = os.stat(disk).st_mtime_ns
        da, d2a = self.p("disk.A.avhd"), self.p("d2.A.avhd")
        self.assertEqual(self.files(), ["d2.A.avhd", "d2.vhd", "disk.A.avhd", "disk.vhd"])
        c.ok("resume")
        self.wait_counts(vm, 3)
        self.assertEqual(c.ok("checkpoint", name="B")["name"], "B")
        self.wait_counts(vm, 3)
        tree = c.ok("checkpoints")
        self.assertEqual(tree["disks"], [
            {"base": disk, "top": self.p("disk.B.avhd")},
            {"base": other, "top": self.p("d2.B.avhd")}])
        self.assertEqual([(e["name"], e["parent"], e["disks"]) for e in tree["checkpoints"]], [
            ("A", None, {disk: disk, other: other}),
            ("B", "A", {disk: da, other: d2a})])

        p = ctl(self.sock, "revert", "A")
        self.assertEqual((p.returncode, p.stdout, p.stderr),
                         (0, "the VM starts again from checkpoint A\n", ""))

        def after(lines):
            seq = self.counts(vm, lines)
            k = next((k for k in range(1, len(seq)) if seq[k] != seq[k - 1] + 1), None)
            return seq[k:] if k else []
        vm.wait_for(lambda ls: len(after(ls)) >= 3, what="3 counts after the revert")
        self.assertEqual(after(vm.lines)[0], a + 1)
        self.no_failures(vm)
        st = c.ok("status")
        self.assertEqual((st["boots"], st["restored"]["file"]), (2, f"{self.ck}/A.state"))
        top, top2 = self.p("disk.A.2.avhd"), self.p("d2.A.2.avhd")
        self.assertEqual(c.ok("checkpoints")["disks"], [{"base": disk, "top": top},
                                                        {"base": other, "top": top2}])
        # The layers after A's (B's running layer) went; B's own stays.
        self.assertEqual(self.files(), ["d2.A.2.avhd", "d2.A.avhd", "d2.vhd", "disk.A.2.avhd",
                                        "disk.A.avhd", "disk.vhd"])
        self.assertEqual(c.ok("delete-checkpoint", name="B"), {"removed": [da, d2a]})
        self.assertEqual(self.files(), ["d2.A.2.avhd", "d2.vhd", "disk.A.2.avhd", "disk.vhd"])
        self.wait_counts(vm, 2)
        c.ok("pause")
        last = self.settled(vm)
        c.ok("power-off")
        # A stands on the base: nothing to merge at the end.
        self.assertEqual(vm.finish(), (0, "vsrv: powered off through the control socket\n"))
        self.no_failures(vm)

        self.assertEqual(self.chain(top), [top, disk])
        self.assertEqual(self.chain(top2), [top2, other])
        self.assertEqual(os.stat(disk).st_mtime_ns, base_stamp)
        self.assert_image(disk, data, a, "the base, A's layer")
        self.assert_image(top, data, last, "the disk after the revert")
        self.assertEqual(self.read(top2), other_data)
        self.assertEqual(self.read(other), other_data)

    def test_delete_merges_at_the_end(self):
        """A, B, then both deleted while the VM runs: nothing is removed (the
        running layer stands on B's, B's on the base), and when the VM ends
        the layers are merged down into the base, one line each: one file
        again, holding exactly what the guest wrote.  The next run with the
        folder finds the disk without layers."""
        disk, data = self.make_disk("disk", "merge")
        vm = self.start(f"path={disk}")
        self.wait_counts(vm, 2)
        c = Client(self.sock)
        c.ok("checkpoint", name="A")
        self.wait_counts(vm, 2)
        c.ok("checkpoint", name="B")
        self.wait_counts(vm, 2)
        da, db = self.p("disk.A.avhd"), self.p("disk.B.avhd")
        self.assertEqual(self.files(), ["disk.A.avhd", "disk.B.avhd", "disk.vhd"])
        p = ctl(self.sock, "checkpoints")
        self.assertRegex(p.stdout, r"^- A \(\S+Z, \d+ bytes\)\n  \* B \(\S+Z, \d+ bytes\)\n" +
                         re.escape(f"disk {disk}: on {db}\n") + "$")
        self.assertEqual(c.ok("delete-checkpoint", name="A"), {"removed": []})
        p = ctl(self.sock, "delete-checkpoint", "B")
        self.assertEqual((p.returncode, p.stdout, p.stderr), (0, "checkpoint B deleted\n", ""))
        self.assertEqual(self.files(), ["disk.A.avhd", "disk.B.avhd", "disk.vhd"])
        self.assertEqual(c.ok("checkpoints"), {"current": None, "checkpoints": [],
                                               "disks": [{"base": disk, "top": db}]})
        c.ok("pause")
        last = self.settled(vm)
        c.ok("power-off")
        self.assertEqual(vm.finish(), (0, (
            "vsrv: powered off through the control socket\n"
            f"vsrv: {disk}: {db} merged into {da}, which no checkpoint needs as it was\n"
            f"vsrv: {disk}: {da} merged into {disk}, which no checkpoint needs as it was\n")))
        self.no_failures(vm)
        self.assertEqual(self.files(), ["disk.vhd"])
        self.assert_image(disk, data, last, "the merged disk")
        with open(f"{self.ck}/index.json") as f:
            self.assertEqual(json.load(f)["disks"], [])

    def test_refusals(self):
        """What cannot have a checkpoint, or go back to one, says so; a disk
        with layers is not run as an undo disk."""
        disk, _ = self.make_disk("disk", "refuse")
        raw = self.p("raw.img")
        with open(raw, "wb") as f:
            f.write(b"\0" * SIZE)
        vm = self.start(f"path={raw}")
        c = Client(self.sock)
        self.assertEqual(c.request("checkpoint", name="A")["error"], {
            "code": "not-supported",
            "message": f"{raw} is a raw disk, which cannot have a differencing child: no "
                       "checkpoints of a VM with a writable raw disk (readonly=on, or vsrv "
                       "disk convert --to dynamic)"})
        c.ok("power-off")
        vm.finish()
        vm = self.start(f"path={disk},undo=discard")
        c = Client(self.sock)
        self.assertEqual(c.request("checkpoint", name="A")["error"], {
            "code": "not-supported",
            "message": f"{disk} is an undo disk (undo=discard), whose run's changes are a "
                       "layer of their own: no checkpoints of a VM with one"})
        self.assertEqual(os.listdir(self.ck), [])
        c.ok("power-off")
        vm.finish()

        # A checkpoint of the disk read-only: nothing of it to go back to
        # once it is writable.
        vm = self.start(f"path={disk},readonly=on")
        Client(self.sock).ok("checkpoint", name="A")
        Client(self.sock).ok("power-off")
        vm.finish()
        vm = self.start(f"path={disk}")
        c = Client(self.sock)
        self.assertEqual(c.request("revert", name="A")["error"], {
            "code": "failed",
            "message": f"checkpoint A has no layer of {disk} (it was taken without it)"})
        c.ok("checkpoint", name="B")
        c.ok("power-off")
        self.assertEqual(vm.finish()[0], 0)
        p = run(VSRV, "run", "--test-device", "--kernel", guest("dev-virtio-blk"), "--disk",
                f"path={disk},undo=commit", "--checkpoints", self.ck, check=False, timeout=60)
        self.assertEqual((p.returncode, p.stdout, p.stderr), (1, "", (
            f"vsrv: {disk}: checkpoints' layers stand on it ({self.ck} runs on "
            f"{self.p('disk.B.avhd')}): no undo= for it\n")))


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


class UndoAtRunTime(CheckpointTest):
    """undo commit|discard|keep while an undo disk runs: status shows it, and
    the run ends as it says."""

    def run_with(self, start, then):
        disk, data = self.make_disk("disk", "undo-" + start)
        vm = self.start(f"path={disk},undo={start}")
        self.wait_counts(vm, 2)
        p = ctl(self.sock, "undo", then)
        self.assertEqual((p.returncode, p.stdout, p.stderr), (0, f"{disk}: undo={then}\n", ""))
        c = Client(self.sock)
        self.assertEqual(c.ok("undo", mode=then)["disks"], [
            {"path": disk, "format": "auto", "readonly": False, "undo": then,
             "cache": "writeback"}])
        self.assertEqual(c.ok("status")["config"]["disks"][0]["undo"], then)
        p = ctl(self.sock, "status")
        self.assertIn(f"disk: {disk} (undo={then})\n", p.stdout)
        c.ok("pause")
        last = self.settled(vm)
        c.ok("power-off")
        status, err = vm.finish()
        self.assertEqual(status, 0)
        self.no_failures(vm)
        return disk, data, last, err

    def test_discard_to_commit(self):
        disk, data, last, err = self.run_with("discard", "commit")
        self.assertEqual(err, "vsrv: powered off through the control socket\n"
                              f"vsrv: {disk}: the run's changes are merged into it "
                              "(undo=commit)\n")
        self.assertEqual(self.files(), ["disk.vhd"])
        self.assert_image(disk, data, last, "the base")

    def test_commit_to_discard(self):
        disk, data, last, err = self.run_with("commit", "discard")
        self.assertEqual(err, "vsrv: powered off through the control socket\n"
                              f"vsrv: {disk}: the run's changes are thrown away "
                              "(undo=discard)\n")
        self.assertEqual(self.files(), ["disk.vhd"])
        self.assertEqual(self.read(disk), data)

    def test_discard_to_keep(self):
        disk, data, last, err = self.run_with("discard", "keep")
        overlay = self.p("disk.undo.vhd")
        self.assertEqual(err, "vsrv: powered off through the control socket\n"
                              f"vsrv: {overlay}: the run's changes are kept here (vsrv disk "
                              f"commit {overlay} merges them)\n")
        self.assertEqual(self.files(), ["disk.undo.vhd", "disk.vhd"])
        self.assertEqual(self.read(disk), data)
        self.assert_image(overlay, data, last, "the kept overlay")

    def test_saved_with_the_mode_it_has(self):
        """A save after undo keep: its configuration has undo=keep, so that
        its restore goes on on the overlay the run kept (with discard, as
        started, the overlay would be gone and the restore refused)."""
        disk, data = self.make_disk("disk", "undo-save")
        overlay = self.p("disk.undo.vhd")
        kept = (f"vsrv: {overlay}: the run's changes are kept here (vsrv disk commit "
                f"{overlay} merges them)\n")
        vm = self.start(f"path={disk},undo=discard")
        self.wait_counts(vm, 2)
        c = Client(self.sock)
        c.ok("undo", mode="keep")
        state = self.p("vm.state")
        r = c.ok("save", file=state)
        self.assertEqual(vm.finish(), (0, f"vsrv: the VM's state was saved to {state} "
                                          f"({r['bytes']} bytes); the VM is off\n" + kept))
        last = self.counts(vm)[-1]
        vm = self.start(args=("--restore", state), kernel=False)
        vm.wait_for(lambda ls: len(self.counts(vm, ls)) >= 2, what="2 counts after the restore")
        self.assertEqual(self.counts(vm)[0], last + 1)
        self.assertEqual(Client(self.sock).ok("status")["config"]["disks"][0]["undo"], "keep")
        Client(self.sock).ok("power-off")
        self.assertEqual(vm.finish(), (0, "vsrv: powered off through the control socket\n" +
                                       kept))
        self.no_failures(vm)

    def test_errors(self):
        """A VM without an undo disk, a mode that is none of the three; vsrv
        ctl's own line."""
        disk, _ = self.make_disk("disk", "undo-none")
        vm = self.start(f"path={disk}")
        c = Client(self.sock)
        self.assertEqual(c.request("undo", mode="commit")["error"], {
            "code": "not-supported",
            "message": "the VM has no undo disk (--disk ...,undo=commit|keep|discard)"})
        self.assertEqual(c.request("undo", mode="merge")["error"], {
            "code": "bad-arguments", "message": "mode: commit, discard or keep"})
        self.assertEqual(c.request("undo")["error"]["code"], "bad-arguments")
        p = ctl(self.sock, "undo", "keep")
        self.assertEqual((p.returncode, p.stdout, p.stderr), (1, "", (
            "vsrv: undo: the VM has no undo disk (--disk ...,undo=commit|keep|discard)\n")))
        c.ok("power-off")
        self.assertEqual(vm.finish()[0], 0)


if __name__ == "__main__":
    main()
