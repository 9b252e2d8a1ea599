"""vsrvd's cgroups on the real hierarchies: each VM's VMM in a cgroup of its
own whose files hold exactly the VM's limits, changed live by PATCH,
found again by a restarted vsrvd, removed when the VM ends; a CPU cap
that bounds a spinning guest's CPU time.  This host mounts cgroup v1 for
the controllers; its cgroup2 hierarchy has none (they are bound to v1), so
the v2 test places VMMs there and checks what is said about the limits
it cannot enforce, and tests/unit/test-cgroup.c checks the v2 values on a
directory tree made to look like cgroup2."""
import os
import signal
import time
import unittest

from vsrvdtest import VsrvdTest, cgroup_paths, main, pid_alive


def mounts():
    """{fstype or controller: mount point} for cgroup and cgroup2."""
    out = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            pre, post = line.split(" - ")
            mp = pre.split()[4]
            fstype, _, opts = post.split()
            if fstype == "cgroup2":
                out.setdefault("cgroup2", mp)
            elif fstype == "cgroup":
                for c in opts.split(","):
                    out.setdefault(c, mp)
    return out


def v1_reason():
    if os.geteuid() != 0:
        return "vsrvd needs root to write cgroups and the tests run as another user"
    m = mounts()
    missing = [c for c in ("cpu", "memory") if c not in m]
    return f"no cgroup v1 hierarchy with {', '.join(missing)} here" if missing else None


def read(path):
    with open(path) as f:
        return f.read().strip()


def procs(cgroup):
    return {int(p) for p in read(os.path.join(cgroup, "cgroup.procs")).split()}


def cpu_seconds(pids):
    """utime + stime of these processes (their threads, living and dead)."""
    total = 0
    for pid in pids:
        try:
            fields = read(f"/proc/{pid}/stat").rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def tree(pid, least=1):
    """pid and its descendants, once there are at least `least` (a VMM
    starts its VM's process just after it starts)."""
    end = time.monotonic() + 10
    while True:
        out = descendants(pid)
        if len(out) >= least or time.monotonic() > end:
            return out
        time.sleep(0.02)


def descendants(pid):
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for t in os.listdir(f"/proc/{p}/task"):
            try:
                todo += [int(c) for c in read(f"/proc/{p}/task/{t}/children").split()]
            except FileNotFoundError:
                pass
    return out


@unittest.skipIf(v1_reason(), v1_reason())
class CgroupV1Test(VsrvdTest):
    def by_ctrl(self, vm):
        cg = vm["cgroup"]
        self.assertEqual(cg["version"], 1)
        m = mounts()
        cpu = [p for p in cg["paths"] if p.startswith(m["cpu"] + "/")]
        mem = [p for p in cg["paths"] if p.startswith(m["memory"] + "/")]
        self.assertEqual((len(cpu), len(mem), len(cg["paths"])), (1, 1, 2), cg)
        return cpu[0], mem[0]

    def test_limits_exact_values_live_and_removed(self):
        self.create("lim", cpu_weight=250, cpu_cap=35, memory_limit="48M")
        vm = self.api.ok("POST", "/v1/vms/lim/start")
        cpu, mem = self.by_ctrl(vm)
        for p in (cpu, mem):
            self.assertEqual(os.path.basename(p), vm["uuid"])
            self.assertEqual(os.path.basename(os.path.dirname(p)), "vsrv")
        self.assertEqual(vm["cgroup"]["enforced"], ["cpu_weight", "cpu_cap", "memory_limit"])
        self.assertEqual(vm["cgroup"]["not_enforced"], {})
        self.assertEqual(read(f"{cpu}/cpu.shares"), "2560")
        self.assertEqual(read(f"{cpu}/cpu.cfs_period_us"), "100000")
        self.assertEqual(read(f"{cpu}/cpu.cfs_quota_us"), "35000")
        self.assertEqual(read(f"{mem}/memory.limit_in_bytes"), str(48 << 20))
        if os.path.exists(f"{mem}/memory.memsw.limit_in_bytes"):
            self.assertEqual(read(f"{mem}/memory.memsw.limit_in_bytes"), str(48 << 20))
        # The VMM and every process it started are in both; its monitor
        # stays with vsrvd.
        vmm = tree(vm["pid"], 2)	# vsrv run (and its console), vsrv-vm
        self.assertEqual(len(vmm), 2)
        self.assertEqual(procs(cpu), set(vmm))
        self.assertEqual(procs(mem), set(vmm))
        self.assertNotIn(vm["monitor_pid"], procs(cpu))
        own = read(f"/proc/{vm['pid']}/cgroup").splitlines()
        self.assertIn(f"cpu:{cpu[len(mounts()['cpu']):]}", [line.split(":", 1)[1] for line in own])
        # Changed while it runs: the files follow, null lifts a limit.
        vm = self.api.ok("PATCH", "/v1/vms/lim", {"cpu_cap": 60, "memory_limit": None,
                                                  "cpu_weight": 7})
        self.assertEqual(vm["cgroup"]["enforced"], ["cpu_weight", "cpu_cap"])
        self.assertEqual(read(f"{cpu}/cpu.cfs_quota_us"), "60000")
        self.assertEqual(read(f"{cpu}/cpu.shares"), "71")
        self.assertEqual(int(read(f"{mem}/memory.limit_in_bytes")), 0x7ffffffffffff000)
        vm = self.api.ok("PATCH", "/v1/vms/lim", {"cpu_weight": None, "memory_limit": "40M"})
        self.assertEqual(read(f"{cpu}/cpu.shares"), "1024")
        self.assertEqual(read(f"{mem}/memory.limit_in_bytes"), str(40 << 20))
        self.assertEqual(self.api.ok("GET", "/v1/vms/lim")["memory_limit"], 40 << 20)
        # Other fields still wait for a power-off.
        s, out = self.api.call("PATCH", "/v1/vms/lim", {"vcpus": 2})
        self.assertEqual((s, out["error"]),
                         (409, "vm 'lim': vcpus cannot change while it runs (power it off first)"))
        self.assertTrue(os.path.exists(self.vm_file(vm, "cgroups")))
        self.api.ok("POST", "/v1/vms/lim/power-off")
        self.wait_state("lim", "stopped")
        self.assertFalse(os.path.exists(cpu))
        self.assertFalse(os.path.exists(mem))
        self.assertFalse(os.path.exists(self.vm_file(vm, "cgroups")))
        self.assertNotIn("vm.limits-not-enforced", self.event_types("lim"))
        # Started again: a fresh cgroup with the stored limits.
        vm = self.api.ok("POST", "/v1/vms/lim/start")
        cpu2, mem2 = self.by_ctrl(vm)
        self.assertEqual((cpu2, mem2), (cpu, mem))
        self.assertEqual(read(f"{cpu}/cpu.cfs_quota_us"), "60000")
        # A VMM killed: crashed, and its cgroups go all the same.
        os.kill(vm["pid"], signal.SIGKILL)
        self.wait_state("lim", "crashed")
        self.assertFalse(os.path.exists(cpu))
        self.assertFalse(os.path.exists(mem))

    def test_first_limit_while_running(self):
        # No limits, no cgroup (placing a process costs a start an RCU
        # grace period on v1); the first limit makes it and moves the VMM in.
        self.create("late")
        vm = self.api.ok("POST", "/v1/vms/late/start")
        self.assertEqual(vm["cgroup"], {"version": 1, "paths": [], "enforced": [],
                                        "not_enforced": {}})
        self.assertFalse(os.path.exists(self.vm_file(vm, "cgroups")))
        vmm = tree(vm["pid"], 3)
        vm = self.api.ok("PATCH", "/v1/vms/late", {"cpu_cap": 25})
        cpu, mem = self.by_ctrl(vm)
        self.assertEqual(vm["cgroup"]["enforced"], ["cpu_cap"])
        self.assertEqual(read(f"{cpu}/cpu.cfs_quota_us"), "25000")
        self.assertEqual(procs(cpu), set(vmm))
        self.assertEqual(procs(mem), set(vmm))
        self.assertTrue(os.path.exists(self.vm_file(vm, "cgroups")))
        self.api.ok("POST", "/v1/vms/late/power-off")
        self.wait_state("late", "stopped")
        self.assertFalse(os.path.exists(cpu))
        self.assertFalse(os.path.exists(mem))

    def test_cpu_cap_bounds_a_spinning_guest(self):
        # cpu-user spins at CPL3, which runs natively here: uncapped it
        # takes all of a CPU it is given.
        self.create("spin", guest_name="cpu-user", cmdline="n=10000000000000 cpl=3",
                    cpu_cap=20)
        vm = self.api.ok("POST", "/v1/vms/spin/start")
        cpu, _ = self.by_ctrl(vm)
        time.sleep(0.5)		# past the start, into the loop
        pids = procs(cpu)
        t0, w0 = cpu_seconds(pids), time.monotonic()
        time.sleep(2)
        used, wall = cpu_seconds(pids) - t0, time.monotonic() - w0
        stat = dict(line.split() for line in read(f"{cpu}/cpu.stat").splitlines())
        print(f"cpu_cap 20: {used:.2f} s of CPU in {wall:.2f} s, "
              f"throttled in {stat['nr_throttled']} of {stat['nr_periods']} periods")
        # 20% of 2 s is 0.4 s; the bound is generous (a period's slack and
        # the tick's accounting), and the guest did run.
        self.assertLess(used, 0.3 * wall)
        self.assertGreater(used, 0.05)
        self.assertGreater(int(stat["nr_throttled"]), 0)

    def test_adopted_after_restart(self):
        self.create("ad", cpu_cap=30, memory_limit="64M")
        vm = self.api.ok("POST", "/v1/vms/ad/start")
        cpu, mem = self.by_ctrl(vm)
        self.api.close()
        self.d.stop(signal.SIGKILL)
        self.assertTrue(pid_alive(vm["pid"]))
        self.d.start()
        again = self.api.ok("GET", "/v1/vms/ad")
        self.assertEqual((again["state"], again["pid"]), ("running", vm["pid"]))
        self.assertEqual(again["cgroup"], vm["cgroup"])
        self.api.ok("PATCH", "/v1/vms/ad", {"cpu_cap": 45})
        self.assertEqual(read(f"{cpu}/cpu.cfs_quota_us"), "45000")
        vmm = tree(vm["pid"], 3)
        self.assertEqual(procs(cpu), set(vmm))
        self.api.ok("POST", "/v1/vms/ad/power-off")
        self.wait_state("ad", "stopped")
        self.assertFalse(os.path.exists(cpu))
        self.assertFalse(os.path.exists(mem))

    def test_host_shows_the_cgroups(self):
        cg = self.api.ok("GET", "/v1/host")["cgroups"]
        m = mounts()
        self.assertEqual(cg["version"], 1)
        self.assertTrue(cg["cpu"]["cgroup"].startswith(m["cpu"] + "/"))
        self.assertTrue(cg["cpu"]["cgroup"].endswith("/vsrv"))
        self.assertTrue(cg["memory"]["cgroup"].startswith(m["memory"] + "/"))


def v2_reason():
    if os.geteuid() != 0:
        return "vsrvd needs root to write cgroups and the tests run as another user"
    if "cgroup2" not in mounts():
        return "no cgroup2 hierarchy is mounted here"
    return None


@unittest.skipIf(v2_reason(), v2_reason())
class CgroupV2Test(VsrvdTest):
    config = {"cgroups": "v2"}

    def test_v2(self):
        mount = mounts()["cgroup2"]
        with open(os.path.join(mount, "cgroup.controllers")) as f:
            have = f.read().split()
        self.create("v2", cpu_weight=300, cpu_cap=25, memory_limit="64M")
        vm = self.api.ok("POST", "/v1/vms/v2/start")
        cg = vm["cgroup"]
        self.assertEqual(cg["version"], 2)
        self.assertEqual(len(cg["paths"]), 1)
        path = cg["paths"][0]
        self.assertTrue(path.startswith(mount + "/") and path.endswith("/vsrv/" + vm["uuid"]))
        # Placed before it exec'd, with everything it started.
        vmm = tree(vm["pid"], 3)
        self.assertEqual(procs(path), set(vmm))
        self.assertIn("0::" + path[len(mount):], read(f"/proc/{vm['pid']}/cgroup").splitlines())
        if "cpu" in have and "memory" in have:
            print(f"cgroup2 at {mount} has cpu and memory: values checked there")
            self.assertEqual(read(f"{path}/cpu.weight"), "300")
            self.assertEqual(read(f"{path}/cpu.max"), "25000 100000")
            self.assertEqual(read(f"{path}/memory.max"), str(64 << 20))
        else:
            print(f"cgroup2 at {mount} has no cpu or memory controller (cgroup.controllers: "
                  f"{have}; bound to cgroup v1 here): placement, removal and the reasons "
                  "given are checked; the v2 values in tests/unit/test-cgroup.c")
            why = {k: (f"cgroup2 at {mount}: no {c} controller for / (cgroup.controllers: "
                       f"\"{' '.join(have)}\"; bound to a cgroup v1 hierarchy, or not delegated)")
                   for k, c in (("cpu_weight", "cpu"), ("cpu_cap", "cpu"),
                                ("memory_limit", "memory"))}
            self.assertEqual(cg["enforced"], [])
            self.assertEqual(cg["not_enforced"], why)
            ev = self.wait_event("v2", "vm.limits-not-enforced")
            self.assertTrue(ev["message"].startswith("cpu_weight: " + why["cpu_weight"]))
            host = self.api.ok("GET", "/v1/host")["cgroups"]
            self.assertEqual(host["version"], 2)
            self.assertEqual(host["cpu"], {"error": why["cpu_cap"]})
        self.api.ok("POST", "/v1/vms/v2/power-off")
        self.wait_state("v2", "stopped")
        self.assertFalse(os.path.exists(path))


class CgroupOffTest(VsrvdTest):
    config = {"cgroups": "off"}

    def test_off_still_starts(self):
        self.create("off", cpu_cap=50)
        vm = self.api.ok("POST", "/v1/vms/off/start")
        self.assertEqual(vm["state"], "running")
        self.assertEqual(vm["cgroup"], {
            "version": None, "paths": [], "enforced": [],
            "not_enforced": {"cpu_cap": "cgroups are off in vsrvd's configuration"}})
        self.assertEqual(self.wait_event("off", "vm.limits-not-enforced")["message"],
                         "cpu_cap: cgroups are off in vsrvd's configuration")
        self.assertEqual(cgroup_paths(os.path.dirname(self.vm_file(vm, "x"))), [])
        # A PATCH is stored; there is still nothing to enforce it with.
        vm = self.api.ok("PATCH", "/v1/vms/off", {"cpu_cap": 70})
        self.assertEqual((vm["cpu_cap"], list(vm["cgroup"]["not_enforced"])), (70, ["cpu_cap"]))


if __name__ == "__main__":
    main()
