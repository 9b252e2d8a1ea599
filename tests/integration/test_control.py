"""The control socket (docs/control.md) on a running VM: the counting
micro-guest (tests/guests/ctl-count.c) shows pause and resume on every vCPU,
the power-button guest a shutdown without the forced power-off, the guest that
ignores it the timeout, Ctrl-Alt-Del a reboot; a reset, a power-off, the
counters; and clients that send garbage, huge lines, two at once, leave in the
middle of a reply or never read: each gets an error reply or nothing, while the
VM keeps counting and the socket keeps serving."""
import json
import os
import socket
import time

from ctltest import VM, WAIT, Client, ctl, guest, wait_path
from vsrvtest import VSRV, TmpDirTest, main, release_build, run

QUIET = 1.0         # seconds of silence that prove a pause


def consecutive(test, counts):
    """Each vCPU's numbers go 1, 2, 3, ... with neither gap nor repeat."""
    for cpu, ns in counts.items():
        test.assertEqual(ns, list(range(1, len(ns) + 1)), f"cpu{cpu}")


class Control(TmpDirTest):
    def setUp(self):
        super().setUp()
        self.sock = self.p("c.sock")
        self.vm = None

    def tearDown(self):
        if self.vm:
            self.vm.kill()
        super().tearDown()

    def start(self, *args, cpus=1, append="hz=100 every=10", **kw):
        self.vm = VM(self.sock, *args, cpus=cpus, append=append, **kw)
        return self.vm

    def test_greeting_and_status(self):
        vm = self.start("--memory", "64M", cpus=2)
        vm.wait_line("counting on 2 cpus")
        c = Client(self.sock)
        self.assertEqual(c.greeting, {"greeting": {
            "protocol": 1, "vsrv": "0.1.0",
            "commands": ["status", "pause", "resume", "power-off", "reset", "shutdown",
                         "stats", "events", "save", "checkpoint", "checkpoints", "revert",
                         "delete-checkpoint", "undo"]}})
        st = c.ok("status")
        self.assertEqual(st["state"], "running")
        self.assertEqual(st["boots"], 1)
        self.assertEqual(st["pid"], vm.proc.pid)
        self.assertGreater(st["uptime"], 0)
        self.assertEqual(st["config"], {
            "vcpus": 2, "memory": 64 << 20, "kernel": guest("ctl-count"),
            "cmdline": "hz=100 every=10", "console": "stdio", "rng": False, "halt_poll_ns": 0,
            "on_reboot": "restart", "disks": [], "nics": []})
        p = ctl(self.sock, "status")
        self.assertEqual((p.returncode, p.stderr), (0, ""))
        self.assertEqual(p.stdout.splitlines()[0], "state: running")
        self.assertIn("vcpus: 2\nmemory: 64.0 MiB\n", p.stdout)

    def test_pause_and_resume_every_vcpu(self):
        """Pause holds every vCPU: no count moves for a second; resume goes on
        from the next number on each; a second client sees both as events."""
        vm = self.start(cpus=2)
        vm.wait_counts(2, 2)
        watcher = Client(self.sock)
        watcher.ok("events")
        p = ctl(self.sock, "pause")
        self.assertEqual((p.returncode, p.stdout, p.stderr), (0, "the VM is paused\n", ""))
        time.sleep(0.3)         # lines already written are on their way
        before = vm.counts()
        time.sleep(QUIET)
        self.assertEqual(vm.counts(), before)
        self.assertEqual(watcher.event("state")["data"],
                         {"state": "paused", "previous": "running"})
        self.assertEqual(ctl(self.sock, "status").stdout.splitlines()[0], "state: paused")
        p = ctl(self.sock, "pause")
        self.assertEqual((p.returncode, p.stdout, p.stderr),
                         (1, "", "vsrv: pause: the VM is paused already\n"))
        p = ctl(self.sock, "resume")
        self.assertEqual((p.returncode, p.stdout, p.stderr), (0, "the VM runs again\n", ""))
        after = vm.wait_counts(2, 2)
        for cpu in (0, 1):
            self.assertEqual(after[cpu][len(before[cpu])], before[cpu][-1] + 1, f"cpu{cpu}")
        consecutive(self, after)
        self.assertEqual(watcher.event("state")["data"],
                         {"state": "running", "previous": "paused"})
        p = ctl(self.sock, "resume")
        self.assertEqual((p.returncode, p.stderr),
                         (1, "vsrv: resume: the VM is not paused (it is running)\n"))

    def test_shutdown_handled_by_the_guest(self):
        """The guest takes the power button's SCI and powers off through S5:
        status 0 and no line about a forced power-off."""
        vm = self.start(append="button=1")
        vm.wait_line("counting on 1 cpus")
        watcher = Client(self.sock)
        watcher.ok("events")
        p = ctl(self.sock, "shutdown", "--timeout", "30")
        self.assertEqual((p.returncode, p.stderr), (0, ""))
        self.assertEqual(p.stdout, "the power button was pressed; the VM is powered off in "
                         "30 s unless the guest has by then\n")
        self.assertEqual(watcher.event("state")["data"],
                         {"state": "shutting-down", "previous": "running"})
        self.assertEqual(vm.finish(), (0, ""))
        self.assertTrue("".join(vm.lines).endswith("power button\nresult ok\n"), vm.lines)
        self.assertEqual(watcher.event("power-off")["data"], {"reason": "the guest"})
        self.assertEqual(watcher.event("state")["data"],
                         {"state": "off", "previous": "shutting-down"})

    def test_shutdown_timeout(self):
        """A guest that ignores the button is powered off when the time is up."""
        vm = self.start()
        vm.wait_line("counting on 1 cpus")
        watcher = Client(self.sock)
        watcher.ok("events")
        c = Client(self.sock)
        t0 = time.monotonic()
        self.assertEqual(c.ok("shutdown", timeout=1), {"guest_enabled": False, "timeout": 1})
        self.assertEqual(c.request("shutdown")["error"],
                         {"code": "wrong-state", "message": "the VM is shutting down already"})
        self.assertEqual(vm.finish(), (0, "vsrv: the guest did not shut down within 1 s; "
                                          "the VM was powered off\n"))
        self.assertGreaterEqual(time.monotonic() - t0, 1.0)
        self.assertEqual(watcher.event("shutdown-timeout")["data"],
                         {"timeout": 1, "action": "power-off"})
        self.assertEqual(watcher.event("power-off")["data"], {
            "reason": "the guest did not shut down within 1 s; the VM was powered off"})

    def test_shutdown_reboot_sends_ctrl_alt_del(self):
        vm = self.start("--on-reboot", "exit", append="cad=1")
        vm.wait_line("counting on 1 cpus")
        p = ctl(self.sock, "shutdown", "--reboot")
        self.assertEqual((p.returncode, p.stderr), (0, ""))
        self.assertEqual(p.stdout, "Ctrl-Alt-Del was sent; the VM is reset in 60 s unless "
                         "the guest has by then\n")
        self.assertEqual(vm.finish(), (3, "vsrv: guest rebooted (keyboard controller reset)\n"))
        self.assertEqual(vm.lines[-1], "ctrl-alt-del\n")

    def test_reset_restarts_the_vm(self):
        """reset is a guest reboot: with --on-reboot restart the VM boots
        again (the counts start over, boots 2), with exit vsrv ends with 3."""
        vm = self.start()
        vm.wait_counts(1, 2)
        c = Client(self.sock)
        c.ok("events")
        self.assertEqual(c.ok("reset"), {})
        self.assertEqual(c.event("reboot")["data"], {"boot": 2})
        self.assertEqual(c.event("state")["data"], {"state": "starting", "previous": "running"})
        self.assertEqual(c.event("state")["data"], {"state": "running", "previous": "starting"})
        vm.wait_for(lambda ls: ls.count("cpu0 1\n") == 2, what="the count starting over")
        self.assertEqual(c.ok("status")["boots"], 2)
        self.assertEqual(c.ok("power-off"), {})
        self.assertEqual(vm.finish(), (0, "vsrv: powered off through the control socket\n"))

        vm = self.start("--on-reboot", "exit")
        vm.wait_line("counting on 1 cpus")
        p = ctl(self.sock, "reset")
        self.assertEqual((p.returncode, p.stdout, p.stderr), (0, "the VM was reset\n", ""))
        self.assertEqual(vm.finish(),
                         (3, "vsrv: guest rebooted (reset through the control socket)\n"))

    def test_power_off_while_paused(self):
        vm = self.start(cpus=2)
        vm.wait_line("counting on 2 cpus")
        self.assertEqual(ctl(self.sock, "pause").returncode, 0)
        p = ctl(self.sock, "power-off")
        self.assertEqual((p.returncode, p.stdout, p.stderr),
                         (0, "the VM is being powered off\n", ""))
        self.assertEqual(vm.finish(), (0, "vsrv: powered off through the control socket\n"))
        self.assertFalse(os.path.exists(self.sock))

    def test_stats(self):
        """Counters from every side: each vCPU's exits by reason and time, the
        virtio device's, memory touched, the two processes' RSS."""
        vm = self.start("--rng", cpus=2)
        vm.wait_counts(2, 1)
        r = Client(self.sock).ok("stats")
        self.assertEqual([v["id"] for v in r["vcpus"]], [0, 1])
        for v in r["vcpus"]:
            self.assertGreater(v["exits"]["IO"], 0)     # the debug port
            self.assertEqual(v["exits_total"], sum(v["exits"].values()))
            self.assertGreater(v["guest_ns"], 0)
            self.assertGreaterEqual(v["vmm_ns"], 0)
        self.assertEqual(r["devices"], [{"name": "virtio-rng 00:01.0", "counters": {
            "notifications": 0, "requests": 0, "bytes_to_guest": 0, "interrupts": 0,
            "refused": 0, "needs_reset": 0}}])
        self.assertEqual(r["memory"]["size"], 256 << 20)
        self.assertGreater(r["memory"]["touched"], 0)
        self.assertLess(r["memory"]["touched"], 16 << 20)
        self.assertEqual(sorted(r["rss"]), ["total", "vm", "vsrv"])
        for k in ("vsrv", "vm"):
            self.assertGreater(r["rss"][k], 0)
        self.assertEqual(r["rss"]["total"], r["rss"]["vsrv"] + r["rss"]["vm"])
        p = ctl(self.sock, "stats")
        self.assertEqual((p.returncode, p.stderr), (0, ""))
        lines = p.stdout.splitlines()
        self.assertRegex(lines[0], r"^vCPU 0: \d+\.\d{3} s in the guest, \d+\.\d{3} s in the "
                         r"VMM, \d+ exits \(IO \d+.*\)$")
        self.assertEqual(lines[2], "virtio-rng 00:01.0: notifications 0, requests 0, "
                         "bytes_to_guest 0, interrupts 0, refused 0, needs_reset 0")
        self.assertRegex(lines[3], r"^memory: \d+\.\d MiB touched of 256\.0 MiB$")
        p = ctl(self.sock, "stats", "--json")
        self.assertEqual(json.loads(p.stdout)["id"], 1)

    def test_bad_clients(self):
        """Garbage, unknown commands, missing ids, wrong arguments, a line too
        long: one error reply each, on a connection that keeps serving; two
        clients at once; one that leaves mid-reply and one that never reads:
        the VM counts on and the socket serves the others."""
        vm = self.start(cpus=2)
        vm.wait_line("counting on 2 cpus")
        c = Client(self.sock)
        cases = [
            (b"{nope\n", None, "bad-json", "column 5: string or '}' expected near 'nope'"),
            (b"[1, 2]\n", None, "bad-request", "a request is a JSON object"),
            (b'{"command": "status"}\n', None, "bad-request",
             "id: missing (every request has one, which its reply repeats)"),
            (b'{"id": 1.5, "command": "status"}\n', None, "bad-request",
             "id: expected a string of at most 256 bytes or an integer"),
            (b'{"id": 7, "command": "fly"}\n', 7, "unknown-command", "no command 'fly'"),
            (b'{"id": "x", "command": 3}\n', "x", "bad-request", "command: expected a string"),
            (b'{"id": 8, "command": "status", "extra": 1}\n', 8, "bad-request",
             "unknown member 'extra' (a request has id, command, arguments)"),
            (b'{"id": 9, "command": "shutdown", "arguments": {"timeout": 0}}\n', 9,
             "bad-arguments", "timeout: expected an integer from 1 to 86400"),
            (b'{"id": 10, "command": "shutdown", "arguments": {"reboot": "yes"}}\n', 10,
             "bad-arguments", "reboot: expected true or false"),
            (b'{"id": 11, "command": "pause", "arguments": {"now": true}}\n', 11,
             "bad-arguments", "pause takes no argument 'now'"),
            (b'{"id": 12, "command": "save"}\n', 12, "bad-arguments", "file: missing"),
            (b'{"id": 13, "command": "status", "arguments": []}\n', 13, "bad-arguments",
             "arguments: expected an object"),
            (b'{"id": 14, "command": "\xff\xfe"}\n', None, "bad-json",
             "column 23: unable to decode byte 0xff near '\"'"),
            (b"x" * (70 << 10) + b"\n", None, "line-too-long", "a line is at most 65536 bytes"),
        ]
        for line, id, code, msg in cases:
            c.send(line)
            self.assertEqual(c.reply(), {"id": id, "error": {"code": code, "message": msg}},
                             line[:60])
        c.send(b"\n  \n")       # blank lines: nobody's request, no reply
        self.assertEqual(c.ok("status")["state"], "running")

        # Two clients, requests interleaved: each gets its own replies.
        d = Client(self.sock)
        c.send('{"id": "c1", "command": "status"}\n')
        d.send('{"id": "d1", "command": "stats"}\n')
        c.send('{"id": "c2", "command": "stats"}\n')
        self.assertEqual(d.reply()["id"], "d1")
        self.assertEqual([c.reply()["id"], c.reply()["id"]], ["c1", "c2"])

        # A client gone in the middle of its reply, one that never reads.
        gone = Client(self.sock)
        gone.send('{"id": 1, "command": "stats"}\n' * 20)
        gone.s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
        gone.close()
        deaf = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        deaf.connect(self.sock)
        deaf.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        deaf.sendall(b'{"id": 1, "command": "status"}\n' * 4000)
        before = vm.counts()
        self.assertEqual(c.ok("status")["state"], "running")
        vm.wait_counts(2, 2)
        consecutive(self, vm.counts())
        self.assertGreater(len(vm.counts()[0]), len(before.get(0, [])))
        deaf.close()
        p = ctl(self.sock, "status")
        self.assertEqual((p.returncode, p.stderr), (0, ""))
        c.ok("power-off")
        self.assertEqual(vm.finish(), (0, "vsrv: powered off through the control socket\n"))

    def test_half_closed_client_gets_its_reply(self):
        """echo REQUEST | socat - UNIX:PATH: the client closes its sending
        side at once and still reads the replies."""
        vm = self.start()
        vm.wait_line("counting on 1 cpus")
        c = Client(self.sock)
        c.send('{"id": 1, "command": "pause"}\n{"id": 2, "command": "resume"}\n')
        c.s.shutdown(socket.SHUT_WR)
        self.assertEqual([c.read(), c.read(), c.read()],
                         [{"id": 1, "return": {}}, {"id": 2, "return": {}}, None])

    def test_cli_errors(self):
        p = ctl(self.p("none.sock"), "status")
        self.assertEqual((p.returncode, p.stdout), (1, ""))
        self.assertEqual(p.stderr, f"vsrv: ctl: {self.p('none.sock')}: No such file or "
                         f"directory (is vsrv run --control {self.p('none.sock')} running?)\n")
        p = ctl(self.sock, "fly")
        self.assertEqual((p.returncode, p.stderr),
                         (2, "vsrv: ctl: unknown command 'fly' (see 'vsrv ctl --help')\n"))
        p = ctl(self.sock, "shutdown", "--timeout", "0")
        self.assertEqual((p.returncode, p.stderr), (2, "vsrv: ctl: --timeout: '0' is not a "
                                                       "number of seconds from 1 to 86400\n"))

    def test_socket_in_use_and_config(self):
        """One VM per socket path; "control" in the configuration file, its
        path relative to the file."""
        vm = self.start()
        vm.wait_line("counting on 1 cpus")
        p = run(VSRV, "run", "--kernel", guest("ctl-count"), "--test-device", "--control",
                self.sock, check=False, timeout=WAIT)
        self.assertEqual((p.returncode, p.stderr),
                         (1, f"vsrv: control: {self.sock}: in use by another process\n"))
        Client(self.sock).ok("power-off")
        self.assertEqual(vm.finish()[0], 0)

        cfg = self.p("vm.json")
        with open(cfg, "w") as f:
            json.dump({"version": 1, "kernel": guest("ctl-count"), "control": "vm.sock"}, f)
        vm = self.start("--config", cfg, kernel=False, control=False)
        wait_path(self.p("vm.sock"), vm.proc)
        self.assertEqual(Client(self.p("vm.sock")).ok("power-off"), {})
        self.assertEqual(vm.finish()[0], 0)

    def test_release_build(self):
        """The release build's seccomp filter lacks what the sanitizers call
        (open among them): what this suite's build would let through.  The
        control thread's calls after the sandbox, each command once.
        scripts/test builds build/ before it runs the tests."""
        release, env = release_build()
        vm = self.start("--rng", cpus=2, binary=release, env=env)
        vm.wait_counts(2, 1)
        c = Client(self.sock)
        for cmd in ("pause", "stats", "resume", "status"):
            c.ok(cmd)
        self.assertGreater(c.ok("stats")["memory"]["touched"], 0)
        self.assertEqual(c.ok("shutdown", timeout=1)["timeout"], 1)
        self.assertEqual(vm.finish(), (0, "vsrv: the guest did not shut down within 1 s; "
                                          "the VM was powered off\n"))


if __name__ == "__main__":
    main()
