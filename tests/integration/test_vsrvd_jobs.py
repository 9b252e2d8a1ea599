"""vsrvd's disk jobs end to end: convert, commit and compact through the
API and `vsrv job`, their results compared byte for byte with what
qemu-img makes and reads, their progress (GET and the event stream),
cancellation, what is refused (409 for a disk in use, paths outside
disk_dirs), and jobs a stopped or killed vsrvd left behind."""
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time

from vsrvdtest import VSRV, VsrvdTest, main
from vsrvtest import need, run, sha256_file

JOB_TIMEOUT = 120


def nbd_uri(sock):
    return f"nbd+unix:///?socket={sock}"


def pattern_raw(path, size, chunks):
    """A raw image of `size` bytes with (offset, length, byte) filled."""
    with open(path, "wb") as f:
        f.truncate(size)
        for off, length, byte in chunks:
            f.seek(off)
            f.write(bytes([byte]) * length)


def info(path):
    return json.loads(run(VSRV, "disk", "info", "--json", path).stdout)


class JobsTest(VsrvdTest):
    def setUp(self):
        need("qemu-img", "qemu-io", "nbdkit")
        super().setUp()

    def path(self, name):
        return os.path.join(self.disks, name)

    def write_nbd(self, vhd, *cmds):
        """qemu-io's writes into a VHD (a child's too) through `vsrv disk
        serve`, which is then stopped (its lock goes with it)."""
        sock = os.path.join(self.dir, "nbd.sock")
        srv = self.serve(vhd, sock)
        try:
            for c in cmds:
                run("qemu-io", "-f", "raw", nbd_uri(sock), "-c", c)
        finally:
            srv.send_signal(signal.SIGTERM)
            srv.wait(30)

    def serve(self, vhd, sock):
        srv = subprocess.Popen([VSRV, "disk", "serve", vhd, "--socket", sock],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        end = time.monotonic() + 30
        while time.monotonic() < end:
            s = socket.socket(socket.AF_UNIX)
            try:
                s.connect(sock)
                return srv
            except OSError:
                time.sleep(0.05)
            finally:
                s.close()
        srv.kill()
        raise AssertionError(f"vsrv disk serve {vhd}: not ready")

    def vhd_with_data(self, name, size=64 << 20, chunks=((1 << 20, 3 << 20, 0x5a),
                                                           (40 << 20, 512 << 10, 0xa5))):
        """A dynamic VHD in disk_dirs with data in places (made by vsrv disk
        convert from a raw file, which is kept as NAME.src.raw)."""
        raw = self.path(name + ".src.raw")
        pattern_raw(raw, size, chunks)
        run(VSRV, "disk", "convert", "--to", "dynamic", raw, self.path(name + ".vhd"))
        return self.path(name + ".vhd"), raw

    def wait_job(self, job, states=("done", "failed", "cancelled"), timeout=JOB_TIMEOUT):
        end = time.monotonic() + timeout
        while True:
            j = self.api.ok("GET", f"/v1/jobs/{job['id']}")
            if j["state"] in states:
                return j
            if time.monotonic() > end:
                raise AssertionError(f"job {job['id']}: {j['state']}, not {states}: {j}")
            time.sleep(0.02)

    def assertSameFile(self, a, b):
        self.assertEqual(os.path.getsize(a), os.path.getsize(b))
        self.assertEqual(sha256_file(a), sha256_file(b), f"{a} and {b} differ")


class ConvertTest(JobsTest):
    def test_vhd_to_raw_equals_qemu_img(self):
        src, _ = self.vhd_with_data("data")
        job = self.api.ok("POST", "/v1/jobs", {"type": "convert", "source": src,
                                                "path": self.path("api.raw")}, 202)
        self.assertEqual((job["state"], job["type"], job["to"], job["source"], job["path"]),
                         ("queued", "convert", "raw", src, self.path("api.raw")))
        self.assertEqual(job["progress"], {"done": 0, "total": 0, "percent": 0})
        done = self.wait_job(job)
        self.assertEqual(done["state"], "done", done)
        self.assertEqual(done["progress"], {"done": 64 << 20, "total": 64 << 20, "percent": 100})
        self.assertEqual(done["result"], {"path": self.path("api.raw"), "file_size": 64 << 20})
        self.assertIsNone(done["error"])
        self.assertTrue(done["created_at"] <= done["started_at"] <= done["finished_at"])
        run("qemu-img", "convert", "-f", "vpc", "-O", "raw", src, self.path("qemu.raw"))
        self.assertSameFile(self.path("api.raw"), self.path("qemu.raw"))
        types = [e["type"] for e in self.events() if e["type"].startswith("job.")]
        self.assertEqual((types[0], types[1], types[-1]), ("job.queued", "job.started", "job.done"))

    def test_raw_to_dynamic_and_fixed_registered(self):
        raw = self.path("in.raw")
        pattern_raw(raw, 32 << 20, ((0, 1 << 20, 0x11), (9 << 20, 4 << 20, 0x22),
                                    ((32 << 20) - 4096, 4096, 0x33)))
        dyn = self.api.ok("POST", "/v1/jobs", {"type": "convert", "source": raw,
                                                "path": self.path("dyn.vhd"), "name": "dyn",
                                                "block_size": 1 << 20}, 202)
        fixed = self.api.ok("POST", "/v1/jobs", {"type": "convert", "source": raw, "to": "fixed",
                                                  "path": self.path("fixed.img")}, 202)
        self.assertEqual((dyn["to"], fixed["to"]), ("dynamic", "fixed"))
        self.assertEqual(self.wait_job(dyn)["result"]["disk"], "dyn")
        self.assertEqual(self.wait_job(fixed)["state"], "done")
        for path, kind in ((self.path("dyn.vhd"), "dynamic"), (self.path("fixed.img"), "fixed")):
            i = info(path)
            self.assertEqual((i["type"], i["virtual_size"]), (kind, 32 << 20))
            run("qemu-img", "compare", "-f", "vpc", "-F", "raw", path, raw)
        # Sparse: only the 1 MiB blocks with data.
        self.assertEqual(info(self.path("dyn.vhd"))["allocated_blocks"], 1 + 4 + 1)
        d = self.api.ok("GET", "/v1/disks/dyn")
        self.assertEqual((d["path"], d["type"], d["size"], d["info"]["allocated_blocks"]),
                         (self.path("dyn.vhd"), "dynamic", 32 << 20, 6))
        # A disk back to raw through its own route: the same bytes.
        j = self.api.ok("POST", "/v1/disks/dyn/convert", {"path": self.path("back.raw")}, 202)
        self.assertEqual((j["disk"], j["source"]), ("dyn", self.path("dyn.vhd")))
        self.assertEqual(self.wait_job(j)["state"], "done")
        self.assertSameFile(self.path("back.raw"), raw)


class CommitTest(JobsTest):
    def test_commit_child_into_parent(self):
        base, _ = self.vhd_with_data("base", 32 << 20, ((0, 6 << 20, 0x41),))
        # The parent as one of vsrvd's disks is not needed: a file in
        # disk_dirs is enough; the child is one.
        child = self.api.ok("POST", "/v1/disks", {"name": "child", "type": "diff",
                                                   "parent": base}, 201)
        self.write_nbd(child["path"], "write -P 0x42 2M 1M", "write -P 0x43 20M 512k")
        # What the chain reads, flattened by a job: the merged parent must
        # read the same.
        flat = self.api.ok("POST", "/v1/disks/child/convert", {"path": self.path("flat.raw"),
                                                                "speed": "16M"}, 202)
        # A disk a job works on stays.
        s, out = self.api.call("DELETE", "/v1/disks/child")
        self.assertEqual(s, 409, out)
        self.assertRegex(out["error"], rf"^{re.escape(child['path'])}: job {flat['id']} "
                                       r"\(convert\) is (queued|running) on it$")
        self.assertEqual(self.wait_job(flat)["state"], "done")
        run("qemu-img", "convert", "-f", "vpc", "-O", "raw", base, self.path("before.raw"))
        with open(self.path("flat.raw"), "rb") as f:
            f.seek(2 << 20)
            self.assertEqual(f.read(1 << 20), b"\x42" * (1 << 20))

        job = self.api.ok("POST", "/v1/disks/child/commit", None, 202)
        self.assertEqual((job["source"], job["parent"]), (child["path"], base))
        done = self.wait_job(job)
        self.assertEqual(done["state"], "done", done)
        self.assertEqual(done["progress"]["percent"], 100)
        self.assertEqual(done["result"]["path"], base)
        run("qemu-img", "convert", "-f", "vpc", "-O", "raw", base, self.path("after.raw"))
        self.assertSameFile(self.path("after.raw"), self.path("flat.raw"))
        # The child is merged: its file and its record are gone.
        self.assertFalse(os.path.exists(child["path"]))
        self.assertEqual(self.api.call("GET", "/v1/disks/child")[0], 404)
        self.assertIn("disk.deleted", [e["type"] for e in self.events()])

    def test_refused(self):
        base, _ = self.vhd_with_data("b2", 16 << 20, ((0, 1 << 20, 1),))
        # Not a differencing disk.
        s, out = self.api.call("POST", "/v1/jobs", {"type": "commit", "source": base})
        self.assertEqual((s, out["error"]), (400, f"{base}: not a differencing disk"))
        # A parent outside disk_dirs: committing would write it.
        outside = os.path.join(self.images, "base.vhd")
        run(VSRV, "disk", "create", "--size", "8M", outside)
        run(VSRV, "disk", "create", "--parent", outside, self.path("c.vhd"))
        s, out = self.api.call("POST", "/v1/jobs", {"type": "commit", "source": self.path("c.vhd")})
        self.assertEqual(s, 403)
        self.assertTrue(out["error"].startswith("parent: "), out)
        # Options that are not a commit's.
        s, out = self.api.call("POST", "/v1/jobs", {"type": "commit", "source": base,
                                                     "to": "raw"})
        self.assertEqual((s, out["error"]), (400, "to: only a convert takes it"))


class CompactTest(JobsTest):
    def test_compact_drops_zeroed_blocks(self):
        d = self.api.ok("POST", "/v1/disks", {"name": "c", "size": "32M"}, 201)
        self.write_nbd(d["path"], "write -P 0x11 0 16M", "write -P 0 4M 8M")
        before = info(d["path"])
        self.assertEqual(before["allocated_blocks"], 8)	# 2 MiB blocks 0-7
        run("qemu-img", "convert", "-f", "vpc", "-O", "raw", d["path"], self.path("c.raw"))
        job = self.api.ok("POST", "/v1/disks/c/compact", None, 202)
        done = self.wait_job(job)
        self.assertEqual(done["state"], "done", done)
        after = info(d["path"])
        # Blocks 2-5 were zeros: gone; the file shrank by what they took.
        self.assertEqual(after["allocated_blocks"], 4)
        self.assertEqual(self.api.ok("GET", "/v1/disks/c")["info"]["allocated_blocks"], 4)
        self.assertEqual(done["result"], {"path": d["path"], "file_size": after["file_size"],
                                          "freed": before["file_size"] - after["file_size"]})
        self.assertGreaterEqual(done["result"]["freed"], 4 * (2 << 20))
        # One rising scale: the virtual size, then a block per allocated one.
        self.assertEqual(done["progress"]["total"], (32 << 20) + 8 * (2 << 20))
        run("qemu-img", "compare", "-f", "vpc", "-F", "raw", d["path"], self.path("c.raw"))

    def test_fixed_refused(self):
        d = self.api.ok("POST", "/v1/disks", {"name": "f", "type": "fixed", "size": "4M"}, 201)
        s, out = self.api.call("POST", "/v1/disks/f/compact")
        self.assertEqual((s, out["error"]), (400, f"{d['path']}: a fixed disk has no blocks to "
                                                  "drop; convert it to dynamic"))


class ProgressCancelTest(JobsTest):
    def test_progress_rises_to_100_in_gets_and_the_stream(self):
        src, _ = self.vhd_with_data("p", 32 << 20, ((0, 32 << 20, 0x7e),))
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(60)
        s.connect(os.path.join(self.state, "vsrvd.sock"))
        s.sendall(b"GET /v1/events/stream HTTP/1.1\r\nHost: x\r\n\r\n")
        got = []

        def read_stream():
            buf = b""
            while b"event: job.done" not in buf and b"event: job.failed" not in buf:
                try:
                    data = s.recv(4096)
                except OSError:
                    break
                if not data:
                    break
                buf += data
            got.append(buf.decode())

        t = threading.Thread(target=read_stream)
        t.start()
        # 32 MiB at 8 MiB a second: four seconds of reports to watch.
        job = self.api.ok("POST", "/v1/jobs", {"type": "convert", "source": src,
                                                "path": self.path("p.raw"), "speed": "8M"}, 202)
        seen = []
        while True:
            j = self.api.ok("GET", f"/v1/jobs/{job['id']}")
            seen.append((j["progress"]["done"], j["progress"]["percent"], j["state"]))
            if j["state"] not in ("queued", "running"):
                break
            time.sleep(0.05)
        t.join(60)
        s.close()
        self.assertEqual(j["state"], "done", j)
        self.assertEqual(seen, sorted(seen, key=lambda x: (x[0], x[1])))
        self.assertEqual(seen[-1][:2], (32 << 20, 100))
        self.assertGreater(len({p for _, p, st in seen if st == "running"}), 3, seen)
        # The stream's job.progress events: rising, the last 100%, then done.
        text = "\n".join(got[0].split("\r\n"))
        events = re.findall(r"event: (job\.\w+)\ndata: (\{.*?\})\n", text)
        msgs = [(kind, json.loads(data)["message"]) for kind, data in events]
        pcts = [int(re.search(r": (\d+)% \(", m).group(1)) for k, m in msgs
                if k == "job.progress"]
        self.assertEqual(pcts, sorted(pcts))
        self.assertGreaterEqual(len(pcts), 4, msgs)
        self.assertEqual(pcts[-1], 100)
        self.assertEqual([k for k, _ in msgs][-2:], ["job.progress", "job.done"])
        self.assertEqual(msgs[-2][1], f"job {job['id']} (convert of {src}): 100% "
                                      f"({32 << 20} of {32 << 20} bytes)")

    def test_cancel_leaves_no_target_and_the_source_untouched(self):
        src, _ = self.vhd_with_data("big", 128 << 20, ((0, 96 << 20, 0x3c),))
        digest = sha256_file(src)
        job = self.api.ok("POST", "/v1/jobs", {"type": "convert", "source": src,
                                                "path": self.path("big.vhd2"), "to": "dynamic",
                                                "speed": "16M"}, 202)
        j = self.wait_job(job, ("running",))
        while j["progress"]["done"] == 0:
            j = self.api.ok("GET", f"/v1/jobs/{job['id']}")
        self.assertTrue(os.path.exists(self.path("big.vhd2")))
        # Other work on its files waits its turn; its disk cannot go.
        s, out = self.api.call("POST", "/v1/jobs", {"type": "compact", "source": src})
        self.assertEqual((s, out["error"]),
                         (409, f"{src}: job {job['id']} (convert) is running on it"))
        self.create("busy", disks=[{"path": src}])
        s, out = self.api.call("POST", "/v1/vms/busy/start")
        self.assertEqual((s, out["error"]),
                         (409, f"{src}: job {job['id']} (convert) is running on it"))
        c = self.api.ok("DELETE", f"/v1/jobs/{job['id']}")
        self.assertEqual((c["state"], c["error"]),
                         ("cancelled", f"{self.path('big.vhd2')}: conversion cancelled"))
        self.assertLess(c["progress"]["done"], 128 << 20)
        self.assertFalse(os.path.exists(self.path("big.vhd2")))
        self.assertEqual(sha256_file(src), digest)
        self.assertEqual(self.events()[-1]["type"], "job.cancelled")
        # Over: nothing to cancel; unknown ids.
        s, out = self.api.call("DELETE", f"/v1/jobs/{job['id']}")
        self.assertEqual((s, out["error"]), (409, f"job {job['id']}: cancelled, not running"))
        for bad in ("999", "abc", "-1"):
            s, out = self.api.call("GET", f"/v1/jobs/{bad}")
            self.assertEqual(s, 404, out)
        # A queued job is cancelled at once.
        jobs = [self.api.ok("POST", "/v1/jobs", {"type": "convert", "source": src,
                                                  "path": self.path(f"q{i}.raw"), "speed": "1M"},
                            202) for i in range(3)]
        queued = self.wait_job(jobs[2], ("queued",))
        self.assertEqual(self.api.ok("DELETE", f"/v1/jobs/{queued['id']}")["error"],
                         "cancelled before it started")
        for x in jobs[:2]:
            self.api.ok("DELETE", f"/v1/jobs/{x['id']}")
        self.assertEqual([j["state"] for j in self.api.ok("GET", "/v1/jobs")][-3:],
                         ["cancelled"] * 3)
        self.assertEqual([f for f in os.listdir(self.disks) if f.startswith("q")], [])


class InUseTest(JobsTest):
    def test_disk_in_use_is_409(self):
        base, _ = self.vhd_with_data("u", 16 << 20, ((0, 1 << 20, 9),))
        child = self.api.ok("POST", "/v1/disks", {"name": "uc", "type": "diff", "parent": base},
                            201)
        sock = os.path.join(self.dir, "nbd.sock")
        srv = self.serve(child["path"], sock)
        try:
            for action in ("commit", "compact"):
                s, out = self.api.call("POST", f"/v1/disks/uc/{action}")
                self.assertEqual(s, 409, out)
                # libvhd names the holder (vsrv disk serve runs nbdkit).
                self.assertRegex(out["error"], rf"^{re.escape(child['path'])}: in use by pid "
                                               rf"{srv.pid} \([\w-]+\) \(needed for writing\)$")
            # The served child's parent is shared: compacting it would
            # write under a reader.
            s, out = self.api.call("POST", "/v1/jobs", {"type": "compact", "source": base})
            self.assertEqual(s, 409, out)
            self.assertIn(f"in use by pid {srv.pid}", out["error"])
        finally:
            srv.send_signal(signal.SIGTERM)
            srv.wait(30)
        # A VM that runs on the disk (once vsrv run can attach disks).
        self.create("user", disks=[{"path": child["path"]}])
        s, out = self.api.call("POST", "/v1/vms/user/start")
        if s == 501:
            print(f"a VM with a disk cannot start yet ({out['error']}): the VM case of "
                  "409 is not exercised")
        else:
            self.assertEqual(s, 200, out)
            s, out = self.api.call("POST", "/v1/disks/uc/commit")
            self.assertEqual((s, out["error"]),
                             (409, f"{child['path']}: in use by VM 'user', which runs"))
            self.api.ok("POST", "/v1/vms/user/power-off")
            self.wait_state("user", ("stopped", "crashed"))
        self.assertEqual(self.wait_job(self.api.ok("POST", "/v1/disks/uc/compact", None, 202))
                         ["state"], "done")
        # Free again; committed by its path, it leaves the inventory too.
        self.api.ok("DELETE", "/v1/vms/user")
        j = self.api.ok("POST", "/v1/jobs", {"type": "commit", "source": child["path"]}, 202)
        self.assertEqual(self.wait_job(j)["state"], "done")
        self.assertEqual(self.api.call("GET", "/v1/disks/uc")[0], 404)

    def test_bad_requests(self):
        src, _ = self.vhd_with_data("x", 8 << 20, ((0, 4096, 1),))
        cases = [
            ({"type": "convert", "source": src}, 400, "path: required (the file a convert makes)"),
            ({"type": "convert", "source": src, "disk": "x", "path": self.path("y.raw")}, 400,
             "disk, source: give one, a disk's name or a file's path"),
            ({"type": "convert", "source": src, "path": self.path("y.raw"), "name": "y"}, 400,
             "name: a raw image is not one of vsrvd's disks"),
            ({"type": "convert", "source": src, "path": self.path("y.vhd"), "block_size": 3000},
             400, "block_size: a power of two, for a dynamic target only"),
            ({"type": "convert", "source": src, "path": src}, 409, f"path: {src} exists"),
            ({"type": "convert", "disk": "nope", "path": self.path("y.raw")}, 404,
             "disk 'nope': not found"),
            ({"type": "resize", "source": src}, 400, "type: expected convert, commit or compact"),
            ({"type": "compact", "source": src, "force": True}, 400,
             "force: only a commit takes it"),
        ]
        for body, status, msg in cases:
            s, out = self.api.call("POST", "/v1/jobs", body)
            self.assertEqual((s, out), (status, {"error": msg}), body)
        s, out = self.api.call("POST", "/v1/jobs", {"type": "convert", "source": "/etc/passwd",
                                                     "path": self.path("y.raw")})
        self.assertEqual(s, 403, out)
        s, out = self.api.call("POST", "/v1/jobs", {"type": "convert", "source": src,
                                                     "path": "/tmp/y.raw"})
        self.assertEqual(s, 403, out)
        self.api.ok("POST", "/v1/disks", {"name": "r", "size": "4M"}, 201)
        s, out = self.api.call("POST", "/v1/disks/r/compact", {"type": "convert"})
        self.assertEqual((s, out), (400, {"error": "type: given by the route "
                                                    "(/v1/disks/NAME/compact)"}))
        self.assertEqual(self.api.ok("GET", "/v1/jobs"), [])
        self.assertFalse(os.path.exists(self.path("y.raw")))


class RestartTest(JobsTest):
    def start_slow(self, name):
        src, _ = self.vhd_with_data(name, 64 << 20, ((0, 48 << 20, 0x21),))
        job = self.api.ok("POST", "/v1/jobs", {"type": "convert", "source": src,
                                                "path": self.path(name + ".raw"), "speed": "4M"},
                          202)
        j = self.wait_job(job, ("running",))
        # Past a tenth: the progress is in the inventory too.
        while j["progress"]["percent"] < 10:
            time.sleep(0.05)
            j = self.api.ok("GET", f"/v1/jobs/{job['id']}")
        self.assertTrue(os.path.exists(self.path(name + ".raw")))
        return job

    def test_killed_vsrvd_fails_its_jobs(self):
        job = self.start_slow("k")
        self.api.close()
        self.d.stop(signal.SIGKILL)
        self.assertTrue(os.path.exists(self.path("k.raw")))	# half-written
        self.d.start()
        j = self.api.ok("GET", f"/v1/jobs/{job['id']}")
        self.assertEqual((j["state"], j["error"]),
                         ("failed", "vsrvd stopped during the job; its partial target is removed"))
        self.assertFalse(os.path.exists(self.path("k.raw")))
        self.assertGreaterEqual(j["progress"]["percent"], 10)

    def test_stopped_vsrvd_cancels_its_jobs(self):
        job = self.start_slow("s")
        self.api.close()
        self.assertEqual(self.d.stop(), 0)
        self.assertFalse(os.path.exists(self.path("s.raw")))
        self.d.start()
        j = self.api.ok("GET", f"/v1/jobs/{job['id']}")
        self.assertEqual((j["state"], j["error"]),
                         ("cancelled", f"{self.path('s.raw')}: conversion cancelled "
                                       "(vsrvd is stopping)"))


class CommandLineTest(JobsTest):
    def vsrv(self, *args, check=True):
        return run(VSRV, *args, "--connect", "unix:" + os.path.join(self.state, "vsrvd.sock"),
                   check=check)

    def test_job_commands(self):
        src, _ = self.vhd_with_data("cli", 16 << 20, ((0, 8 << 20, 0x66),))
        self.api.ok("POST", "/v1/disks", {"name": "cd", "size": "8M"}, 201)
        p = self.vsrv("job", "convert", "--source", src, "--path", self.path("cli.raw"),
                      "--speed", "8M", "--wait")
        fields = dict(line.split(None, 1) for line in p.stdout.splitlines())
        self.assertEqual((fields["state"], fields["type"], fields["path"]),
                         ("done", "convert", self.path("cli.raw")))
        lines = p.stderr.splitlines()
        self.assertEqual(lines[-1], f"job 1 convert: done, 100% ({16 << 20} of {16 << 20} bytes)")
        pcts = [int(re.search(r", (\d+)%", ln).group(1)) for ln in lines]
        self.assertEqual(pcts, sorted(pcts))
        self.assertSameFile(self.path("cli.raw"), self.path("cli.src.raw"))
        # A disk by name, its job shown and listed.
        p = self.vsrv("job", "compact", "cd", "--json")
        j = json.loads(p.stdout)
        self.assertEqual((j["id"], j["type"], j["disk"]), (2, "compact", "cd"))
        p = self.vsrv("job", "wait", "2")
        self.assertIn("state            done\n", p.stdout)
        p = self.vsrv("job", "list")
        self.assertEqual(p.stdout.splitlines()[0].split(), ["ID", "TYPE", "STATE", "DONE",
                                                            "SOURCE"])
        self.assertEqual(p.stdout.splitlines()[1].split(), ["1", "convert", "done", "100%", src])
        p = self.vsrv("job", "cancel", "1", check=False)
        self.assertEqual((p.returncode, p.stderr), (1, "vsrv: job 1: done, not running\n"))
        # A job refused says why, with status 1.
        p = self.vsrv("job", "commit", "cd", "--wait", check=False)
        self.assertEqual(p.returncode, 1)
        self.assertEqual(p.stderr, f"vsrv: {self.path('cd.vhd')}: not a differencing disk\n")
        p = self.vsrv("job", "frob", check=False)
        self.assertEqual((p.returncode, p.stderr),
                         (2, "vsrv: job frob: unknown command or wrong arguments (see --help)\n"))


if __name__ == "__main__":
    main()
