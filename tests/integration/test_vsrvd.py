"""vsrvd end to end: a real service on a temporary state directory, real
SQLite, real `vsrv run` processes booting micro-guests, through the API
(Unix socket and TCP with the token) and through `vsrv vm` / `vsrv net`."""
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time

from vsrvdtest import VSRV, VsrvdTest, guest, main, pid_alive


class LifecycleTest(VsrvdTest):
    def test_create_start_power_off_delete(self):
        vm = self.create("web-1", description="a micro-guest", vcpus=1)
        self.assertEqual(vm["state"], "stopped")
        self.assertEqual((vm["name"], vm["vcpus"], vm["memory"], vm["kernel"], vm["cmdline"],
                          vm["description"], vm["restart_policy"], vm["autostart"],
                          vm["disks"], vm["nics"]),
                         ("web-1", 1, 16 << 20, guest("idle-timer"), "hz=10 ticks=0",
                          "a micro-guest", "never", False, [], []))
        self.assertRegex(vm["uuid"], r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-"
                                     r"[0-9a-f]{12}$")
        # By uuid as well as by name.
        self.assertEqual(self.api.ok("GET", f"/v1/vms/{vm['uuid']}")["name"], "web-1")
        self.assertEqual([v["name"] for v in self.api.ok("GET", "/v1/vms")], ["web-1"])

        vm = self.api.ok("POST", "/v1/vms/web-1/start")
        self.assertEqual(vm["state"], "running")
        # The VM's config as written for vsrv run, and its output on disk.
        with open(self.vm_file(vm, "vm.json")) as f:
            conf = json.load(f)
        self.assertEqual(conf, {"version": 1, "console": "socket:console.sock",
                                "on_reboot": "restart", "host_quirks": "auto",
                                "control": "control.sock", "checkpoints": "checkpoints",
                                "name": "web-1", "uuid": vm["uuid"], "vcpus": 1,
                                "memory": 16 << 20, "kernel": guest("idle-timer"),
                                "cmdline": "hz=10 ticks=0", "rng": False, "disks": [],
                                "nics": []})
        self.wait_file_has(self.vm_file(vm, "vmm.log"),
                           "idle: LAPIC timer at 10 Hz, halting between ticks\n")
        vm = self.api.ok("GET", "/v1/vms/web-1")
        self.assertTrue(pid_alive(vm["pid"]))
        with open(f"/proc/{vm['pid']}/cmdline") as f:
            self.assertEqual(f.read().split("\0")[1:5], ["run", "--config", "vm.json",
                                                          "--test-device"])
        s, out = self.api.call("POST", "/v1/vms/web-1/start")
        self.assertEqual((s, out), (409, {"error": "vm 'web-1': running"}))
        s, out = self.api.call("DELETE", "/v1/vms/web-1")
        self.assertEqual((s, out), (409, {"error": "vm 'web-1': running (power it off first)"}))
        s, out = self.api.call("PATCH", "/v1/vms/web-1", {"vcpus": 2})
        self.assertEqual((s, out), (409, {"error": "vm 'web-1': vcpus cannot change while it "
                                                   "runs (power it off first)"}))
        self.assertEqual(self.api.ok("PATCH", "/v1/vms/web-1",
                                     {"description": "renamed"})["description"], "renamed")

        vm = self.api.ok("POST", "/v1/vms/web-1/power-off")
        self.assertIn(vm["state"], ("stopping", "stopped"))
        vm = self.wait_state("web-1", "stopped")
        self.assertEqual(vm["last_exit"], "exited with status 0 (powered off)")
        self.assertNotIn("pid", vm)
        self.assertEqual(self.event_types("web-1"),
                         ["vm.created", "vm.started", "vm.updated", "vm.stopping", "vm.stopped"])
        stopped = self.events("web-1")[-1]
        self.assertEqual(stopped["message"],
                         "powered off on request: exited with status 0 (powered off)")
        s, out = self.api.call("POST", "/v1/vms/web-1/power-off")
        self.assertEqual((s, out), (409, {"error": "vm 'web-1': stopped, not running"}))

        self.assertEqual(self.api.ok("PATCH", "/v1/vms/web-1", {"vcpus": 2})["vcpus"], 2)
        self.assertEqual(self.api.ok("DELETE", "/v1/vms/web-1"), {"deleted": "web-1"})
        self.assertEqual(self.api.call("GET", "/v1/vms/web-1"),
                         (404, {"error": "vm 'web-1': no such VM"}))
        self.assertFalse(os.path.exists(os.path.join(self.state, "vms", str(vm["id"]))))

    def test_guest_exit_status(self):
        # hello64 prints a line on the debug port and exits 42: not a
        # power-off, so the VM is crashed, with the status said.
        self.create("h", "hello64")
        vm = self.api.ok("POST", "/v1/vms/h/start")
        vm = self.wait_state("h", "crashed")
        self.assertEqual(vm["last_exit"], "exited with status 42")
        with open(self.vm_file(vm, "vmm.log")) as f:
            self.assertEqual(f.read(), "hello from a 64-bit micro-guest\n")
        self.assertEqual(self.events("h")[-1]["message"], "exited with status 42")
        # A crashed VM starts again on request.
        self.assertEqual(self.api.ok("POST", "/v1/vms/h/start")["state"], "running")
        self.wait_event("h", "vm.crashed")

    def test_vmm_fails(self):
        # A kernel that is not one passes the API (a file in vm_dirs) but
        # not vsrv run: its refusal is the VM's last exit and in its log.
        with open(os.path.join(self.images, "junk"), "wb") as f:
            f.write(b"not a kernel" * 100)
        self.api.ok("POST", "/v1/vms", {"name": "bad", "kernel": f.name}, 201)
        self.api.ok("POST", "/v1/vms/bad/start")
        vm = self.wait_state("bad", "crashed")
        self.assertEqual(vm["last_exit"], "exited with status 1 (the VMM failed)")
        self.assertEqual(self.event_types("bad")[-1], "vm.crashed")
        with open(self.vm_file(vm, "vmm.log")) as f:
            self.assertRegex(f.read(), r"^vsrv: .*junk")


class CrashTest(VsrvdTest):
    def kill_vmm(self, name):
        vm = self.api.ok("GET", f"/v1/vms/{name}")
        self.wait_file_has(self.vm_file(vm, "vmm.log"), "halting between ticks")
        vm = self.api.ok("GET", f"/v1/vms/{name}")
        os.kill(vm["pid"], signal.SIGKILL)
        return vm

    def test_kill9_on_crash_restarts(self):
        self.create("r1", restart_policy="on-crash")
        self.api.ok("POST", "/v1/vms/r1/start")
        old = self.kill_vmm("r1")
        e = self.wait_event("r1", "vm.crashed")
        self.assertEqual(e["message"], "killed by signal 9 (Killed)")
        e = self.wait_event("r1", "vm.restart-scheduled")
        self.assertEqual(e["message"], "restart policy on-crash: starting again in 100 ms")
        self.wait_event("r1", "vm.restarted")
        vm = self.wait_state("r1", "running")
        self.assertEqual(vm["restarts"], 1)
        self.assertEqual(vm["last_exit"], "killed by signal 9 (Killed)")
        self.assertNotEqual(vm["pid"], old["pid"])
        self.assertTrue(pid_alive(vm["pid"]))
        # Again: the backoff doubles.
        self.kill_vmm("r1")
        end = time.monotonic() + 30
        while not any(e["message"].endswith("starting again in 200 ms")
                      for e in self.events("r1")):
            self.assertLess(time.monotonic(), end, self.events("r1"))
            time.sleep(0.05)
        vm = self.wait_state("r1", "running")

    def test_kill9_never_stays_crashed(self):
        self.create("n1")
        self.api.ok("POST", "/v1/vms/n1/start")
        self.kill_vmm("n1")
        vm = self.wait_state("n1", "crashed")
        self.assertEqual(vm["last_exit"], "killed by signal 9 (Killed)")
        time.sleep(0.5)
        self.assertEqual(self.api.ok("GET", "/v1/vms/n1")["state"], "crashed")
        self.assertNotIn("vm.restart-scheduled", self.event_types("n1"))

    def test_always_restarts_after_guest_power_off(self):
        # idle-timer with ticks=3 powers off by itself (exit 0): under
        # "always" it comes back; a power-off request ends that.
        self.create("a1", cmdline="hz=100 ticks=3", restart_policy="always")
        self.api.ok("POST", "/v1/vms/a1/start")
        self.wait_event("a1", "vm.restarted")
        self.assertEqual(self.events("a1")[2]["message"], "exited with status 0 (powered off)")
        s, _ = self.api.call("POST", "/v1/vms/a1/power-off")
        self.assertEqual(s, 200)
        self.wait_state("a1", "stopped")
        time.sleep(0.5)
        self.assertEqual(self.api.ok("GET", "/v1/vms/a1")["state"], "stopped")


class AdoptionTest(VsrvdTest):
    def test_kill9_vsrvd_adopts_running_vms(self):
        for n in ("a", "b"):
            self.create(n)
            self.api.ok("POST", f"/v1/vms/{n}/start")
        self.create("c")
        pids = {n: self.api.ok("GET", f"/v1/vms/{n}")["pid"] for n in ("a", "b")}
        self.api.close()
        self.d.stop(signal.SIGKILL)
        # The VMs do not notice.
        for pid in pids.values():
            self.assertTrue(pid_alive(pid))
        self.d.start()
        for n in ("a", "b"):
            vm = self.api.ok("GET", f"/v1/vms/{n}")
            self.assertEqual((vm["state"], vm["pid"]), ("running", pids[n]))
            self.assertEqual(self.event_types(n)[-1], "vm.adopted")
        self.assertEqual(self.api.ok("GET", "/v1/vms/c")["state"], "stopped")
        # An adopted VM is supervised as any other: power-off, and a
        # kill that it notices.
        self.api.ok("POST", "/v1/vms/a/power-off")
        self.assertEqual(self.wait_state("a", "stopped")["last_exit"],
                         "exited with status 0 (powered off)")
        os.kill(pids["b"], signal.SIGKILL)
        self.assertEqual(self.wait_state("b", "crashed")["last_exit"],
                         "killed by signal 9 (Killed)")

    def test_vm_ends_while_vsrvd_is_down(self):
        self.create("gone")
        self.api.ok("POST", "/v1/vms/gone/start")
        pid = self.api.ok("GET", "/v1/vms/gone")["pid"]
        self.api.close()
        self.d.stop(signal.SIGKILL)
        os.kill(pid, signal.SIGKILL)
        while pid_alive(pid):
            time.sleep(0.01)
        time.sleep(0.2)		# the monitor writes the status and exits
        self.d.start()
        vm = self.wait_state("gone", "crashed")
        self.assertEqual(vm["last_exit"], "killed by signal 9 (Killed)")

    def test_autostart(self):
        self.create("auto", autostart=True)
        self.create("manual")
        self.api.close()
        self.assertEqual(self.d.stop(), 0)
        self.d.start()
        self.assertEqual(self.api.ok("GET", "/v1/vms/auto")["state"], "running")
        self.assertEqual(self.api.ok("GET", "/v1/vms/manual")["state"], "stopped")
        self.assertEqual(self.event_types("auto")[-1], "vm.started")
        self.assertEqual(self.events("auto")[-1]["message"][:9], "autostart")

    def test_second_vsrvd_refused(self):
        p = subprocess.run([self.d.proc.args[0], "--state-dir", self.state, "--config",
                            self.cfgfile], capture_output=True, text=True, timeout=30)
        self.assertEqual((p.returncode, p.stderr),
                         (1, f"vsrvd: {self.state}: another vsrvd serves this state directory\n"))


class TcpTest(VsrvdTest):
    def test_token(self):
        t = self.d.tcp_api()
        self.assertEqual(t.ok("GET", "/v1/vms"), [])
        with open(os.path.join(self.state, "vsrvd.url")) as f:
            self.assertRegex(f.read(), r"^http://127\.0\.0\.1:\d+\n$")
        self.assertEqual(os.stat(os.path.join(self.state, "token")).st_mode & 0o777, 0o600)
        self.assertEqual(os.stat(os.path.join(self.state, "vsrvd.sock")).st_mode & 0o777,
                         0o660)
        for hdr in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"},
                    {"Authorization": "Bearer " + t.token + "x"}):
            bare = self.d.tcp_api(token=False)
            s, r, body = bare.raw("GET", "/v1/vms", headers=hdr)
            self.assertEqual((s, r.getheader("WWW-Authenticate"), json.loads(body)),
                             (401, "Bearer", {"error": "a bearer token is required "
                                                       "(Authorization: Bearer TOKEN)"}))
            bare.close()
        t.close()
        # The token stays across restarts.
        with open(os.path.join(self.state, "token")) as f:
            tok = f.read()
        self.api.close()
        self.d.stop()
        self.d.start()
        with open(os.path.join(self.state, "token")) as f:
            self.assertEqual(f.read(), tok)


class CliTest(VsrvdTest):
    def vsrv(self, *args, env=None, check=True):
        e = dict(os.environ)
        e.pop("VSRV_CONNECT", None)
        e.update(env or {})
        p = subprocess.run([VSRV, *args], capture_output=True, text=True, env=e, timeout=60)
        if check and p.returncode:
            raise AssertionError(f"vsrv {args}: {p.returncode}\n{p.stderr}")
        return p

    def test_vm_commands(self):
        c = "unix:" + os.path.join(self.state, "vsrvd.sock")
        p = self.vsrv("vm", "create", "cli-1", "--kernel", guest("idle-timer"), "--memory",
                      "16M", "--test-device", "--cmdline", "hz=10 ticks=0", "--restart-policy",
                      "on-crash", "--connect", c)
        self.assertIn("name             cli-1\n", p.stdout)
        self.assertIn("state            stopped\n", p.stdout)
        p = self.vsrv("vm", "list", "--connect", c)
        lines = p.stdout.splitlines()
        self.assertEqual(lines[0].split(), ["NAME", "STATE", "VCPUS", "MEMORY", "UUID"])
        self.assertEqual(lines[1].split()[:4], ["cli-1", "stopped", "1", "16M"])
        # VSRV_CONNECT instead of --connect, and --json.
        env = {"VSRV_CONNECT": c}
        self.vsrv("vm", "start", "cli-1", env=env)
        vm = json.loads(self.vsrv("vm", "show", "cli-1", "--json", env=env).stdout)
        self.assertEqual((vm["name"], vm["state"], vm["restart_policy"]),
                         ("cli-1", "running", "on-crash"))
        # Over TCP with the token from VSRV_TOKEN.
        with open(os.path.join(self.state, "vsrvd.url")) as f:
            url = f.read().strip()
        with open(os.path.join(self.state, "token")) as f:
            tok = f.read().strip()
        vms = json.loads(self.vsrv("vm", "list", "--json", "--connect", url,
                                   env={"VSRV_TOKEN": tok}).stdout)
        self.assertEqual([v["name"] for v in vms], ["cli-1"])
        p = self.vsrv("vm", "list", "--connect", url, check=False)
        self.assertEqual((p.returncode, p.stdout, p.stderr),
                         (1, "", "vsrv: a bearer token is required (Authorization: Bearer TOKEN)\n"))
        p = self.vsrv("vm", "pause", "cli-1", env=env)
        self.assertIn("state            paused\n", p.stdout)
        p = self.vsrv("vm", "pause", "cli-1", env=env, check=False)
        self.assertEqual((p.returncode, p.stderr), (1, "vsrv: vm 'cli-1': paused already\n"))
        self.vsrv("vm", "power-off", "cli-1", env=env)
        self.wait_state("cli-1", "stopped")
        p = self.vsrv("vm", "delete", "cli-1", env=env)
        self.assertEqual(p.stdout, "deleted cli-1\n")
        p = self.vsrv("vm", "show", "cli-1", env=env, check=False)
        self.assertEqual((p.returncode, p.stderr), (1, "vsrv: vm 'cli-1': no such VM\n"))

    def test_errors(self):
        p = self.vsrv("vm", "list", "--connect", "unix:" + self.dir + "/nope.sock", check=False)
        self.assertEqual(p.returncode, 1)
        self.assertRegex(p.stderr, r"^vsrv: unix:.*/nope\.sock: Couldn't connect to server "
                                   r"\(is vsrvd running\?\)\n$")
        p = self.vsrv("vm", "list", "--connect", "ftp://x", check=False)
        self.assertEqual((p.returncode, p.stderr),
                         (2, "vsrv: --connect: 'ftp://x' is not unix:PATH, http://HOST:PORT or "
                             "https://HOST:PORT\n"))
        c = "unix:" + os.path.join(self.state, "vsrvd.sock")
        p = self.vsrv("vm", "create", "x", "--kernel", "/etc/passwd", "--connect", c,
                      check=False)
        self.assertEqual((p.returncode, p.stderr),
                         (1, "vsrv: kernel: /etc/passwd is outside the directories the "
                             "configuration allows\n"))

    def test_net_commands(self):
        env = {"VSRV_CONNECT": "unix:" + os.path.join(self.state, "vsrvd.sock")}
        self.vsrv("net", "create", "lan", "--type", "user", env=env)
        p = self.vsrv("net", "list", env=env)
        self.assertEqual(p.stdout.splitlines()[1].split(), ["lan", "user", "-", "0", "-"])
        n = json.loads(self.vsrv("net", "show", "lan", "--json", env=env).stdout)
        self.assertEqual((n["name"], n["type"], n["dhcp"]), ("lan", "user", False))
        self.assertEqual(self.vsrv("net", "delete", "lan", env=env).stdout, "deleted lan\n")


class InventoryTest(VsrvdTest):
    def test_networks_and_macs(self):
        self.api.ok("POST", "/v1/networks", {"name": "lan", "type": "user"}, 201)
        vm = self.create("n1", nics=[{"network": "lan"}, {"network": "lan",
                                                          "mac": "02:00:00:00:00:01"}])
        macs = [n["mac"] for n in vm["nics"]]
        self.assertRegex(macs[0], r"^02:76:73(:[0-9a-f]{2}){3}$")
        self.assertEqual(macs[1], "02:00:00:00:00:01")
        s, out = self.api.call("POST", "/v1/vms", self.vm_spec(
            "n2", nics=[{"network": "lan", "mac": "02:00:00:00:00:01"}]))
        self.assertEqual((s, out), (409, {"error": "nics[0]: MAC 02:00:00:00:00:01 is in use"}))
        s, out = self.api.call("POST", "/v1/vms", self.vm_spec("n3", nics=[{"network": "wan"}]))
        self.assertEqual((s, out), (404, {"error": "nics[0]: no network 'wan'"}))
        self.assertEqual(self.api.call("GET", "/v1/vms/n3")[0], 404)
        s, out = self.api.call("DELETE", "/v1/networks/lan")
        self.assertEqual((s, out), (409, {"error": "network 'lan': VMs have NICs on it"}))
        self.assertEqual(self.api.ok("GET", "/v1/networks/lan")["nics"], 2)
        # Its NICs in vm.json: user NAT, each with its MAC.
        vm = self.api.ok("POST", "/v1/vms/n1/start")
        with open(self.vm_file(vm, "vm.json")) as f:
            self.assertEqual(json.load(f)["nics"], [{"type": "user", "mac": macs[0]},
                                                    {"type": "user", "mac": macs[1]}])
        self.api.ok("POST", "/v1/vms/n1/power-off")
        self.wait_state("n1", "stopped")
        # 200 VMs' worth of MACs, all different.
        for i in range(20):
            self.create(f"m{i}", nics=[{"network": "lan"}] * 8)
        macs = [n["mac"] for v in self.api.ok("GET", "/v1/vms") for n in v["nics"]]
        self.assertEqual(len(macs), 162)
        self.assertEqual(len(set(macs)), 162)
        self.api.ok("DELETE", "/v1/vms/n1")
        for i in range(20):
            self.api.ok("DELETE", f"/v1/vms/m{i}")
        self.assertEqual(self.api.ok("DELETE", "/v1/networks/lan"), {"deleted": "lan"})

    def test_schema(self):
        db = sqlite3.connect(os.path.join(self.state, "inventory.db"))
        self.assertEqual(db.execute("PRAGMA journal_mode").fetchone()[0], "wal")
        self.assertEqual(db.execute("SELECT version FROM schema_version").fetchall(), [(4,)])
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        self.assertTrue({"vms", "networks", "nics", "vm_disks", "disks", "events", "jobs",
                         "schema_version"} <= tables, tables)
        db.close()
        self.assertEqual(self.api.ok("GET", "/v1/version")["inventory_schema"], 4)

    def test_newer_schema_refused(self):
        self.api.close()
        self.d.stop()
        db = sqlite3.connect(os.path.join(self.state, "inventory.db"))
        current = db.execute("SELECT version FROM schema_version").fetchone()[0]
        db.execute("UPDATE schema_version SET version = 99")
        db.commit()
        db.close()
        p = subprocess.run([self.d.proc.args[0] if self.d.proc else
                            os.environ.get("VSRVD_BIN") or
                            os.path.join(os.environ["VSRV_BUILD_ROOT"], "src/daemon/vsrvd"),
                            "--state-dir", self.state, "--config", self.cfgfile],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual((p.returncode, p.stderr),
                         (1, "vsrvd: inventory: inventory: schema version 99 is newer than this "
                             f"vsrvd's ({current}): upgrade vsrvd\n"))
        db = sqlite3.connect(os.path.join(self.state, "inventory.db"))
        db.execute("UPDATE schema_version SET version = ?", (current,))
        db.commit()
        db.close()
        self.d.start()

    def test_disks(self):
        d = self.api.ok("POST", "/v1/disks", {"name": "root", "size": "64M"}, 201)
        self.assertEqual((d["name"], d["path"], d["type"], d["size"]),
                         ("root", os.path.join(self.disks, "root.vhd"), "dynamic", 64 << 20))
        self.assertEqual((d["info"]["type"], d["info"]["virtual_size"],
                          d["info"]["allocated_blocks"]), ("dynamic", 64 << 20, 0))
        c = self.api.ok("POST", "/v1/disks", {"name": "child", "type": "diff",
                                              "parent": d["path"]}, 201)
        self.assertEqual((c["size"], c["info"]["type"], c["info"]["parent"]),
                         (64 << 20, "differencing", d["path"]))
        # `vsrv disk info` agrees.
        p = subprocess.run([VSRV, "disk", "info", "--json", c["path"]], capture_output=True,
                           text=True, check=True)
        self.assertEqual(json.loads(p.stdout)["type"], "differencing")
        s, out = self.api.call("POST", "/v1/disks", {"name": "x", "size": "64M",
                                                     "path": "/tmp/x.vhd"})
        self.assertEqual((s, out), (403, {"error": "path: /tmp/x.vhd is outside the directories "
                                                   "the configuration allows"}))
        s, out = self.api.call("POST", "/v1/disks", {"name": "x", "size": "64M", "path":
                                                     self.disks + "/../x.vhd"})
        self.assertEqual(s, 403, out)
        s, out = self.api.call("POST", "/v1/disks", {"name": "root", "size": "64M"})
        self.assertEqual((s, out), (409, {"error": "disk 'root': exists"}))
        self.assertEqual([x["name"] for x in self.api.ok("GET", "/v1/disks")], ["child", "root"])
        self.api.ok("DELETE", "/v1/disks/child")
        self.assertFalse(os.path.exists(c["path"]))
        # A VM's disk must be in disk_dirs too.
        s, out = self.api.call("POST", "/v1/vms", self.vm_spec(
            "dv", disks=[{"path": guest("hello64")}]))
        self.assertEqual(s, 403, out)
        # undo true, from before there were modes, is keep.
        vm = self.create("dv", disks=[{"path": d["path"], "undo": True}])
        self.assertEqual(vm["disks"], [{"path": d["path"], "undo": "keep", "readonly": False,
                                        "cache": "writeback"}])


class InternalNetworkTest(VsrvdTest):
    """An internal network's bridge and dnsmasq, in a network namespace of
    the test's own (vsrvd runs under unshare --net), so the host's network
    is never touched."""
    config = {"tcp": None}
    # A mount namespace too, for a /sys that shows the new network
    # namespace's interfaces (vsrvd looks for bridges there).
    wrap = ("unshare", "--net", "--mount", "sh", "-c",
            'mount -t sysfs sysfs /sys && ip link set lo up && exec "$@"', "vsrvd")

    def netns(self, *cmd):
        return subprocess.run(["nsenter", f"--net=/proc/{self.d.proc.pid}/ns/net", *cmd],
                              capture_output=True, text=True, timeout=30)

    def test_internal_with_dhcp(self):
        n = self.api.ok("POST", "/v1/networks", {"name": "lab", "type": "internal",
                                                 "dhcp": True, "subnet": "10.77.0.1/24"}, 201)
        self.assertRegex(n["bridge"], r"^vsrv[0-9a-f]{8}$")
        self.assertEqual((n["type"], n["dhcp"], n["subnet"], n["nics"]),
                         ("internal", True, "10.77.0.1/24", 0))
        p = self.netns("ip", "-o", "-4", "addr", "show", "dev", n["bridge"])
        self.assertIn("inet 10.77.0.1/24", p.stdout, p.stderr)
        self.assertIn(",UP,", self.netns("ip", "-o", "link", "show", n["bridge"]).stdout)
        with open(os.path.join(self.state, "networks", "lab.pid")) as f:
            dpid = int(f.read())
        with open(f"/proc/{dpid}/cmdline") as f:
            args = f.read().split("\0")
        self.assertIn(f"--interface={n['bridge']}", args)
        self.assertIn("--dhcp-range=10.77.0.2,10.77.0.254,1h", args)
        # Without DHCP: a bridge with no address.
        m = self.api.ok("POST", "/v1/networks", {"name": "quiet", "type": "internal"}, 201)
        p = self.netns("ip", "-o", "-4", "addr", "show", "dev", m["bridge"])
        self.assertEqual((p.returncode, p.stdout), (0, ""))
        s, out = self.api.call("POST", "/v1/networks", {"name": "lab", "type": "internal"})
        self.assertEqual((s, out), (409, {"error": "network 'lab': exists"}))
        # The existing bridge is still there after the refused duplicate.
        self.assertEqual(self.netns("ip", "link", "show", n["bridge"]).returncode, 0)
        # A host bridge network needs the bridge to exist: now it does.
        h = self.api.ok("POST", "/v1/networks", {"name": "host", "type": "bridge",
                                                 "bridge": n["bridge"]}, 201)
        self.assertEqual(h["bridge"], n["bridge"])
        # A VM on it: a tap of its own on the bridge, with its MAC.
        vm = self.create("br", nics=[{"network": "host"}])
        mac = vm["nics"][0]["mac"]
        vm = self.api.ok("POST", "/v1/vms/br/start")
        with open(self.vm_file(vm, "vm.json")) as f:
            self.assertEqual(json.load(f)["nics"], [{"type": "bridge", "name": n["bridge"],
                                                     "mac": mac}])
        end = time.monotonic() + 30
        while not self.netns("ip", "-o", "link", "show", "master", n["bridge"]).stdout:
            self.assertLess(time.monotonic(), end, self.d.read_log())
            time.sleep(0.05)
        self.api.ok("POST", "/v1/vms/br/power-off")
        self.wait_state("br", "stopped")
        self.api.ok("DELETE", "/v1/vms/br")
        self.api.ok("DELETE", "/v1/networks/host")
        self.api.ok("DELETE", "/v1/networks/lab")
        self.api.ok("DELETE", "/v1/networks/quiet")
        self.assertNotEqual(self.netns("ip", "link", "show", n["bridge"]).returncode, 0)
        end = time.monotonic() + 10
        while pid_alive(dpid):
            self.assertLess(time.monotonic(), end, "dnsmasq still runs")
            time.sleep(0.05)


class EventsTest(VsrvdTest):
    def test_stream_and_metrics(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(30)
        s.connect(os.path.join(self.state, "vsrvd.sock"))
        s.sendall(b"GET /v1/events/stream HTTP/1.1\r\nHost: x\r\n\r\n")
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += s.recv(4096)
        head, buf = buf.split(b"\r\n\r\n", 1)
        self.assertIn(b"HTTP/1.1 200", head)
        self.assertIn(b"Content-Type: text/event-stream", head)
        self.create("ev")
        self.api.ok("POST", "/v1/vms/ev/start")
        while buf.count(b"event: vm.started") == 0:
            buf += s.recv(4096)
        s.close()
        text = buf.decode()
        # Chunked framing around the events: take the SSE lines.
        lines = [ln for ln in text.split("\r\n") if ln.startswith(("id:", "event:"))]
        joined = "\n".join(text.split("\r\n"))
        self.assertIn("event: vm.created\ndata: {", joined)
        ids = [int(ln.split()[1].split("\n")[0]) for ln in lines if ln.startswith("id:")]
        self.assertEqual(ids, sorted(ids))
        created = [e for e in self.events("ev") if e["type"] == "vm.created"][0]
        self.assertIn(f'id: {created["id"]}\nevent: vm.created\ndata: ', joined)

        _, r, body = self.api.raw("GET", "/metrics")
        self.assertEqual(r.getheader("Content-Type"), "text/plain; version=0.0.4")
        m = body.decode()
        self.assertIn('vsrv_vm_state{vm="ev",state="running"} 1\n', m)
        self.assertIn('vsrv_vms{state="running"} 1\n', m)
        self.assertIn('vsrv_vm_memory_bytes{vm="ev"} 16777216\n', m)
        self.assertIn("# TYPE vsrv_vm_restarts_total counter\n", m)
        self.assertRegex(m, r"\nvsrvd_resident_memory_bytes \d+\n")

    def test_host(self):
        h = self.api.ok("GET", "/v1/host")
        self.assertEqual(h["cpus"]["online"], os.cpu_count())
        self.assertTrue(h["kvm"]["available"])
        self.assertEqual(h["kvm"]["api_version"], 12)
        self.assertGreaterEqual(h["kvm"]["capabilities"]["irqfd"], 1)
        self.assertGreater(h["memory"]["total"], h["memory"]["free"])


def read_rotated(log):
    """vmm.log's rotated files, oldest first, then vmm.log: [(name, bytes)]."""
    folder, base = os.path.split(log)
    rotated = sorted((int(f[len(base) + 1:]), f) for f in os.listdir(folder)
                     if f.startswith(base + "."))
    out = []
    for _, f in reversed(rotated):
        with open(os.path.join(folder, f), "rb") as fh:
            out.append((f, fh.read()))
    with open(log, "rb") as fh:
        out.append((base, fh.read()))
    return out


class LogRotationTest(VsrvdTest):
    """vmm.log is written by the VM's monitor from a pipe and rotated as
    it is written: nothing is lost or doubled, across vsrvd's own death."""
    config = {"log": {"max_size": 4096, "keep": 200}}

    def check_files(self, files, max_size, line_max):
        """Each rotated file is rotated at the end of the line that
        reached max_size."""
        for name, data in files[:-1]:
            self.assertTrue(max_size <= len(data) < max_size + line_max, (name, len(data)))
            self.assertTrue(data.endswith(b"\n"), name)
            self.assertNotIn(b"\n", data[max_size - 1:-1], name)

    def test_counting_guest_across_a_vsrvd_kill(self):
        # ctl-count prints "cpu0 N" 500 times a second: a rotation about
        # every second, while vsrvd is killed and started again.
        self.create("lr", "ctl-count", cmdline="hz=500 every=1")
        vm = self.api.ok("POST", "/v1/vms/lr/start")
        log = self.vm_file(vm, "vmm.log")
        self.wait_file_has(log + ".2", "cpu0 ")
        self.d.proc.kill()
        self.d.proc.wait()
        self.api.close()
        time.sleep(1.5)
        self.d.start()
        self.api = self.d.api()
        self.wait_file_has(log + ".5", "cpu0 ", timeout=60)
        self.api.ok("POST", "/v1/vms/lr/power-off")
        self.wait_state("lr", "stopped")
        files = read_rotated(log)
        self.assertGreaterEqual(len(files), 6)
        self.check_files(files, 4096, 16)
        text = b"".join(d for _, d in files).decode()
        counts = [int(n) for n in re.findall(r"^cpu0 (\d+)$", text, re.M)]
        self.assertGreater(len(counts), 2000)
        self.assertEqual(counts, list(range(1, len(counts) + 1)))
        self.assertTrue(text.startswith("counting on 1 cpus\ncpu0 1\n"), text[:100])

    def test_fast_writer_every_line_once(self):
        # A VMM that writes 20,000 lines as fast as it can, on stdout and
        # stderr by turns, and exits: its whole output is in the files by
        # the time the VM is stopped, in order, rotated at line ends.
        fake = os.path.join(self.dir, "fake-vsrv")
        with open(fake, "w") as f:
            f.write(f"#!{sys.executable}\nimport os\n"
                    "for i in range(20000):\n"
                    "    os.write(1 + i % 2, b'line %06d\\n' % i)\n")
        os.chmod(fake, 0o755)
        self.restart_with({"vsrv": fake})
        self.create("fw")
        vm = self.api.ok("POST", "/v1/vms/fw/start")
        vm = self.wait_state("fw", "stopped")
        self.assertEqual(vm["last_exit"], "exited with status 0 (powered off)")
        files = read_rotated(self.vm_file(vm, "vmm.log"))
        self.check_files(files, 4096, 12)
        # 12-byte lines: 342 of them (4104 bytes) in every rotated file.
        self.assertEqual({len(d) for _, d in files[:-1]}, {4104})
        self.assertEqual(b"".join(d for _, d in files),
                         b"".join(b"line %06d\n" % i for i in range(20000)))

    def restart_with(self, changes):
        with open(self.cfgfile) as f:
            cfg = json.load(f)
        cfg.update(changes)
        with open(self.cfgfile, "w") as f:
            json.dump(cfg, f)
        self.api.close()
        self.d.stop()
        self.d.start()
        self.api = self.d.api()


if __name__ == "__main__":
    main()
