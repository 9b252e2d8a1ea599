"""virtio-net and its backends, driven by a micro-guest
(tests/guests/dev-virtio-net.c): the NIC as a driver sees it (its MAC, the
link, two queues), user networking through libslirp in vsrv-net (DHCP's offer, ARP for
the gateway, port forwards from the host's loopback to the guest's TCP and
UDP, the guest's own TCP connection and datagrams out, the DNS forwarder; the
release build's seccomp filter too), frames dropped and counted when the
driver posts no buffers, saved state, a NIC beside a disk, a hostile driver
case by case with the exact line the VMM logs, and a tap device, alone or on
a Linux bridge, in a network namespace the test makes (root only),
exchanging UDP and TCP with the host's own stack."""
import json
import os
import queue
import signal
import shutil
import socket
import subprocess
import threading
import time
import unittest

from ctltest import Client, wait_path
from vsrvtest import SRCDIR, VSRV, TmpDirTest, children, comm, main, proc_status

GUESTS = os.environ.get("VSRV_GUESTS", "")
TIMEOUT = 120
DEV = "vsrv: virtio-net 00:01.0: "
GUEST = os.path.abspath(os.path.join(GUESTS, "dev-virtio-net.elf"))
# The release build's filter has none of the calls the sanitizers add
# (sandbox.c): what libslirp calls after set-up must be on its own list.
RELEASE = os.path.join(SRCDIR, "build", "src", "cli", "vsrv")


def vsrv_cmd(*args, binary=VSRV):
    return [binary, "run", "--kernel", GUEST, "--test-device", *args]


def environment(binary, hide=""):
    env = dict(os.environ, VSRV_TEST_HIDE_CAPS=hide)
    if binary == RELEASE:
        # Its own libvhd (its rpath), not the sanitizer build's that meson
        # puts on LD_LIBRARY_PATH.
        assert os.access(RELEASE, os.X_OK), f"{RELEASE} is missing: scripts/build makes it"
        env.pop("LD_LIBRARY_PATH", None)
        env.pop("LD_PRELOAD", None)
    return env


def run(*args, hide="", prefix=(), binary=VSRV):
    return subprocess.run([*prefix, *vsrv_cmd(*args, binary=binary)], capture_output=True,
                          text=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL,
                          env=environment(binary, hide))


def udp_answer_once(sock, prefix=b"hello back: "):
    """In a thread: answers the first datagram on sock with prefix + it."""
    def serve():
        data, addr = sock.recvfrom(2048)
        sock.sendto(prefix + data, addr)
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return t


def probe(mac="52:54:00:12:34:56", slot=1):
    return (f"pci 00:{slot:02x}.0 virtio-net, class 020000, 2 queues\n"
            "features: version_1 indirect_desc event_idx mac status\n"
            f"net: mac {mac}, status 0x1 (link up)\n")


DHCP_ARP = """\
dhcp: DISCOVER sent
dhcp: offer 10.0.2.15, type OFFER, server 10.0.2.2, mask 255.255.255.0, router 10.0.2.2, \
dns 10.0.2.3, lease 86400 s
arp: 10.0.2.2 is at 52:55:0a:00:02:02, a reply of 64 bytes
net ok
"""


def maps(pid):
    with open(f"/proc/{pid}/maps") as f:
        return f.read()


def gone(pid, timeout=10):
    """Whether pid ends (or is a zombie) within timeout seconds."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if proc_status(pid)["State"].startswith("Z"):
                return True
        except (FileNotFoundError, ProcessLookupError):
            return True
        time.sleep(0.05)
    return False


def free_port(kind):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Guest:
    """vsrv run in the background, its standard output read line by line."""

    def __init__(self, args, prefix=(), binary=VSRV):
        self.p = subprocess.Popen([*prefix, *vsrv_cmd(*args, binary=binary)],
                                  stdin=subprocess.DEVNULL, env=environment(binary),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines = queue.Queue()
        self.out = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.p.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def wait_for(self, text, timeout=60):
        while True:
            line = self.lines.get(timeout=timeout)
            if line is None:
                raise AssertionError(f"vsrv ended before '{text}': {''.join(self.out)}"
                                     f"{self.p.stderr.read()}")
            self.out.append(line)
            if text in line:
                return

    def finish(self, timeout=60):
        """Waits for the end: (status, all of stdout, stderr)."""
        try:
            self.p.wait(timeout=timeout)
        finally:
            if self.p.poll() is None:
                self.p.kill()
                self.p.wait()
        while True:
            line = self.lines.get(timeout=10)
            if line is None:
                break
            self.out.append(line)
        err = self.p.stderr.read()
        self.p.stdout.close()
        self.p.stderr.close()
        return self.p.returncode, "".join(self.out), err


def talk(udp_addr, tcp_addr):
    """A UDP echo, then a TCP connection read to its end: what came back,
    and the UDP socket (for "quit")."""
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.settimeout(30)
    u.sendto(b"hello udp", udp_addr)
    echo = u.recvfrom(2048)[0]
    with socket.create_connection(tcp_addr, timeout=30) as s:
        s.sendall(b"hello vsrv\n")
        reply = b""
        while True:
            d = s.recv(4096)
            if not d:
                break
            reply += d
    return echo, reply, u


def quit_guest(u, addr):
    u.sendto(b"quit", addr)
    return u.recvfrom(2048)[0]


BANNER = b"vsrv micro-guest on port 22, you said: hello vsrv\n"


class UserNet(TmpDirTest):
    def test_mac_and_dhcp(self):
        """The MAC given is the NIC's; DHCP from libslirp offers 10.0.2.15
        with slirp's router and DNS; ARP finds the gateway.  With every KVM
        capability and with ioeventfds hidden (the backend's poll needs the
        device's thread either way)."""
        for hide in ("", "IOEVENTFD"):
            p = run("--net", "user,mac=52:54:00:ab:cd:ef", hide=hide)
            self.assertEqual((p.returncode, p.stdout, p.stderr),
                             (0, "nic 00:01.0 mac 52:54:00:ab:cd:ef\n" +
                              probe("52:54:00:ab:cd:ef") + DHCP_ARP, ""), hide)

    def test_helper_missing(self):
        """libslirp runs in vsrv-net, found beside vsrv or where it is
        installed (src/vmm/libexec.c): without it, one line naming it and
        status 1, and a VM without a user-mode NIC still runs.  vsrv is
        copied where there is no vsrv-net beside it."""
        installed = "/usr/local/libexec/vsrv/vsrv-net"
        if os.path.exists(installed):
            print(f"skipped: {installed} is installed, which vsrv would run")
            return
        vsrv = os.path.join(self.dir, "vsrv")
        shutil.copy(VSRV, vsrv)
        env = dict(os.environ)
        env["LD_LIBRARY_PATH"] = ":".join(
            [os.path.join(os.path.dirname(VSRV), "..", "..", "lib", "vhd")] +
            [d for d in env.get("LD_LIBRARY_PATH", "").split(":") if d])
        p = subprocess.run(vsrv_cmd("--net", "user", binary=vsrv), capture_output=True,
                           text=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL, env=env)
        self.assertEqual((p.returncode, p.stdout), (1, ""), p.stderr)
        self.assertRegex(p.stderr, r"\Avsrv: net0: user: /\S*/libexec/vsrv/vsrv-net: "
                         r"No such file or directory\n\Z")
        p = subprocess.run([vsrv, "run", "--kernel", os.path.join(GUESTS, "exit-hlt.elf"),
                            "--test-device"], capture_output=True, text=True,
                           timeout=TIMEOUT, stdin=subprocess.DEVNULL, env=env)
        self.assertEqual((p.returncode, p.stdout, p.stderr),
                         (0, "halting with interrupts enabled\nwoken by vector 0x40, 1 tick\n",
                          ""))

    def test_helper_processes(self):
        """Each user-mode NIC has a vsrv-net of its own, a child of the
        VM's process, confined (seccomp, no_new_privs), holding libslirp,
        which the VM's process does not map; SIGKILL of the VM's process
        (then of vsrv) leaves no vsrv-net behind."""
        for victim in ("vm", "vsrv"):
            proc = subprocess.Popen([VSRV, "run", "--kernel", os.path.join(GUESTS, "exit-hlt.elf"),
                                     "--test-device", "--append", "mode=forever",
                                     "--net", "user", "--net",
                                     f"user,hostfwd=udp:127.0.0.1:{free_port(socket.SOCK_DGRAM)}-:7"],
                                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
            try:
                self.assertEqual(proc.stdout.readline(), "halting with interrupts disabled\n")
                (vm,) = children(proc.pid)
                helpers = children(vm)
                self.assertEqual([comm(h) for h in helpers], ["vsrv-net", "vsrv-net"])
                for h in helpers:
                    st = proc_status(h)
                    self.assertEqual((st["Seccomp"], st["NoNewPrivs"], st["PPid"]),
                                     ("2", "1", str(vm)))
                    self.assertIn("libslirp", maps(h))
                self.assertNotIn("libslirp", maps(vm))
                os.kill(vm if victim == "vm" else proc.pid, signal.SIGKILL)
                for h in helpers:
                    self.assertTrue(gone(h), f"vsrv-net {h} outlived the VM's process")
            finally:
                proc.kill()
                proc.communicate(timeout=30)

    def test_vmm_makes_no_socket(self):
        """The VM's filter allows no socket(), a user-mode NIC or not: a
        call of it after the sandbox (the test hook) ends the VMM."""
        env = dict(os.environ, VSRV_TEST_FORBIDDEN_SYSCALL="main")
        p = subprocess.run(vsrv_cmd("--net", "user"), capture_output=True, text=True,
                           timeout=TIMEOUT, stdin=subprocess.DEVNULL, env=env)
        self.assertEqual((p.returncode, p.stdout, p.stderr),
                         (1, "", "vsrv: seccomp: forbidden system call 41 (socket)\n"))

    def test_helper_sandbox_kills(self):
        """vsrv-net's own filter: a call it does not allow (its test hook
        makes one, socketpair, once confined) ends it with one line, and
        the VM does not start."""
        env = dict(os.environ, VSRV_TEST_NET_FORBIDDEN_SYSCALL="1")
        p = subprocess.run(vsrv_cmd("--net", "user", "--net", "user"), capture_output=True,
                           text=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL, env=env)
        self.assertEqual((p.returncode, p.stdout, p.stderr), (1, "", (
            "vsrv-net: net0: seccomp: forbidden system call 53 (socketpair)\n"
            "vsrv: net0: user: vsrv-net ended before it was ready (exit status 1)\n")))

    def test_several_nics_default_macs(self):
        """Repeatable: each NIC a PCI function of its own; the default MACs
        are 52:54:00:12:34:56 and up, in order; --stats has each NIC's lines."""
        p = run("--net", "user", "--net", "user", "--net", "user,mac=02:00:00:00:00:01",
                "--stats")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout, "nic 00:01.0 mac 52:54:00:12:34:56\n"
                         "nic 00:02.0 mac 52:54:00:12:34:57\n"
                         "nic 00:03.0 mac 02:00:00:00:00:01\n" + probe() + DHCP_ARP)
        for slot in (2, 3):
            self.assertIn(f"vsrv: virtio-net 00:0{slot}.0: rx 0 packets, 0 bytes, 0 dropped, "
                          "0 errors; tx 0 packets, 0 bytes, 0 dropped, 0 errors\n", p.stderr)

    def test_port_forwards(self):
        """hostfwd=tcp and hostfwd=udp on 127.0.0.1: a datagram echoed, a
        connection answered with the exact banner and closed by the guest,
        then "quit"; the guest saw them come from 10.0.2.2, slirp's host.
        The release build too (its seccomp filter)."""
        self.port_forwards(VSRV)
        self.port_forwards(RELEASE)

    def port_forwards(self, binary):
        tport, uport = free_port(socket.SOCK_STREAM), free_port(socket.SOCK_DGRAM)
        g = Guest(["--net", f"user,hostfwd=tcp:127.0.0.1:{tport}-:22,"
                   f"hostfwd=udp:127.0.0.1:{uport}-10.0.2.15:7", "--append", "serve"],
                  binary=binary)
        g.wait_for("serve: 10.0.2.15 ready")
        echo, reply, u = talk(("127.0.0.1", uport), ("127.0.0.1", tport))
        self.assertEqual((echo, reply), (b"hello udp", BANNER))
        g.wait_for("tcp: 10.0.2.2 said 11 bytes, answered 50, closed")
        self.assertEqual(quit_guest(u, ("127.0.0.1", uport)), b"bye")
        u.close()
        self.assertEqual(g.finish(), (0, "nic 00:01.0 mac 52:54:00:12:34:56\n" + probe() +
                                      "serve: 10.0.2.15 ready\n"
                                      "udp: echoed 9 bytes to 10.0.2.2\n"
                                      "tcp: 10.0.2.2 said 11 bytes, answered 50, closed\n"
                                      "udp: quit\nnet ok\n", ""))

    def test_counters_at_the_control_socket(self):
        """The control socket's `stats` has the NIC's counters while the
        guest runs, as --stats prints them at its end: none while the guest
        waits; after a datagram echoed through a port forward, slirp's ARP
        request for the guest (42 bytes) and the datagram in (51 bytes:
        Ethernet, IPv4, UDP and 9), the guest's ARP reply (42) and its echo
        (51) out."""
        sock, uport = self.p("c.sock"), free_port(socket.SOCK_DGRAM)
        g = Guest(["--net", f"user,hostfwd=udp:127.0.0.1:{uport}-:7", "--append", "serve",
                   "--control", sock, "--stats"])
        self.addCleanup(lambda: g.p.poll() is None and g.p.kill())
        g.wait_for("serve: 10.0.2.15 ready")

        def nic():
            (dev,) = Client(sock).ok("stats")["devices"]
            self.assertEqual(dev["name"], "virtio-net 00:01.0")
            return {k: v for k, v in dev["counters"].items() if k[:3] in ("rx_", "tx_")}

        def counts(rx, rx_bytes, tx, tx_bytes):
            return {"rx_packets": rx, "rx_bytes": rx_bytes, "rx_dropped": 0, "rx_errors": 0,
                    "tx_packets": tx, "tx_bytes": tx_bytes, "tx_dropped": 0, "tx_errors": 0}

        self.assertEqual(nic(), counts(0, 0, 0, 0))
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.settimeout(30)
        u.sendto(b"hello udp", ("127.0.0.1", uport))
        self.assertEqual(u.recvfrom(2048)[0], b"hello udp")
        g.wait_for("udp: echoed 9 bytes to 10.0.2.2")
        # The device counts a frame once the backend took it: the echo may
        # be here a moment before.
        end = time.monotonic() + 30
        while (got := nic()) != counts(2, 42 + 51, 2, 42 + 51) and time.monotonic() < end:
            time.sleep(0.05)
        self.assertEqual(got, counts(2, 42 + 51, 2, 42 + 51))
        self.assertEqual(quit_guest(u, ("127.0.0.1", uport)), b"bye")
        u.close()
        status, out, err = g.finish()
        self.assertEqual((status, out[-7:]), (0, "net ok\n"))
        # "quit" in, "bye" out.
        self.assertIn(DEV + f"rx 3 packets, {42 + 51 + 46} bytes, 0 dropped, 0 errors; "
                      f"tx 3 packets, {42 + 51 + 45} bytes, 0 dropped, 0 errors\n", err)

    def test_saved_state(self):
        """A VM serving on a port forward, saved and restored with --restore
        alone: its NIC comes back from the saved configuration (its MAC and
        port forward; status shows them), with the receive buffers the
        guest had posted before the save, and a datagram through the
        forward, bound again, is echoed.  As many NICs, or refused."""
        sock, state = self.p("c.sock"), self.p("vm.state")
        uport = free_port(socket.SOCK_DGRAM)
        fwd = f"udp:127.0.0.1:{uport}-10.0.2.15:7"
        g = Guest(["--net", f"user,mac=52:54:00:00:00:42,hostfwd={fwd}", "--append", "serve",
                   "--control", sock])
        self.addCleanup(lambda: g.p.poll() is None and g.p.kill())
        g.wait_for("serve: 10.0.2.15 ready")
        nics = [{"type": "user", "mac": "52:54:00:00:00:42", "hostfwd": [fwd]}]
        c = Client(sock)
        self.assertEqual(c.ok("status")["config"]["nics"], nics)
        c.ok("save", file=state)
        status, out, _ = g.finish()
        self.assertEqual((status, out), (0, "nic 00:01.0 mac 52:54:00:00:00:42\n" +
                                         probe("52:54:00:00:00:42") + "serve: 10.0.2.15 ready\n"))
        g = Guest(["--restore", state, "--control", sock])
        self.addCleanup(lambda: g.p.poll() is None and g.p.kill())
        wait_path(sock, g.p)
        c = Client(sock)
        # The socket is the supervisor's, there before the VM's process
        # (and its port forward): the datagram once the VM runs.
        end = time.monotonic() + TIMEOUT
        while (st := c.ok("status"))["state"] != "running" and time.monotonic() < end:
            time.sleep(0.02)
        self.assertEqual((st["state"], st["config"]["nics"]), ("running", nics))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.settimeout(30)
            u.sendto(b"hello again", ("127.0.0.1", uport))
            self.assertEqual(u.recvfrom(2048)[0], b"hello again")
            self.assertEqual(quit_guest(u, ("127.0.0.1", uport)), b"bye")
        self.assertEqual(g.finish(), (0, "udp: echoed 11 bytes to 10.0.2.2\nudp: quit\n"
                                      "net ok\n", ""))
        cfg = self.p("vm.json")
        with open(cfg, "w") as f:
            f.write('{"version": 1, "nics": []}\n')
        p = subprocess.run([VSRV, "run", "--restore", state, "--config", cfg],
                           capture_output=True, text=True, timeout=TIMEOUT,
                           stdin=subprocess.DEVNULL)
        self.assertEqual((p.returncode, p.stdout, p.stderr), (1, "", (
            f"vsrv: {state}: saved with NICs 1, this run has 0 (a restore needs the same "
            "vCPUs, memory and devices)\n")))

    def test_udp_out(self):
        """The guest's datagram to 10.0.2.2 (the host's loopback, through
        slirp's NAT: a socket of its own made after the sandbox) and the
        answer back; in the release build too."""
        for binary in (VSRV, RELEASE):
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind(("127.0.0.1", 0))
                s.settimeout(60)
                port = s.getsockname()[1]
                t = udp_answer_once(s)
                p = run("--net", "user", "--append", f"udp-to=10.0.2.2 port={port}",
                        binary=binary)
                t.join(5)
            self.assertEqual((p.returncode, p.stdout, p.stderr), (0, (
                "nic 00:01.0 mac 52:54:00:12:34:56\n" + probe() +
                f"udp: 32 bytes back from 10.0.2.2 port {port}: "
                "hello back: hello from the guest\nnet ok\n"), ""), binary)

    def test_tcp_out(self):
        """The guest's connection to 10.0.2.2 (slirp connects a socket of its
        own to the host's loopback, after the sandbox): a line each way, the
        server closes, then the guest; in the release build too."""
        for binary in (VSRV, RELEASE):
            with socket.socket() as srv:
                srv.bind(("127.0.0.1", 0))
                srv.listen()
                srv.settimeout(60)
                port = srv.getsockname()[1]
                got = []

                def serve():
                    c, _ = srv.accept()
                    with c:
                        c.settimeout(60)
                        line = b""
                        while not line.endswith(b"\n"):
                            line += c.recv(100)
                        got.append(line)
                        c.sendall(b"hello back: " + line)
                t = threading.Thread(target=serve, daemon=True)
                t.start()
                p = run("--net", "user", "--append", f"tcp-to=10.0.2.2 port={port}",
                        binary=binary)
                t.join(5)
            self.assertEqual(got, [b"hello from the guest\n"])
            self.assertEqual((p.returncode, p.stdout, p.stderr), (0, (
                "nic 00:01.0 mac 52:54:00:12:34:56\n" + probe() +
                f"tcp: connected to 10.0.2.2 port {port}, got 33 bytes: "
                "hello back: hello from the guest., closed\nnet ok\n"), ""), binary)

    def test_drop_accounting(self):
        """70 ARP requests with no receive buffer posted: slirp's 70 replies,
        64 wait (the bound), 6 are dropped and counted; 64 buffers then get
        the 64 that waited.  --stats says so, and the transport's counts."""
        for hide in ("", "IOEVENTFD,IRQFD"):
            p = run("--net", "user", "--append", "drop", "--stats", hide=hide)
            self.assertEqual((p.returncode, p.stdout), (0, (
                "nic 00:01.0 mac 52:54:00:12:34:56\n" + probe() +
                "drop: 70 ARP requests sent, no receive buffer posted\n"
                "drop: 64 replies once 64 buffers were posted\nnet ok\n")), p.stderr)
            self.assertIn(DEV + "rx 64 packets, 4096 bytes, 6 dropped, 0 errors; "
                          "tx 70 packets, 2940 bytes, 0 dropped, 0 errors\n", p.stderr)
            self.assertIn(DEV + "4 notifications, 134 requests, 4864 bytes to the guest, "
                          "2 interrupts, 0 refused, 0 resets needed\n", p.stderr)

    def test_checkpoint(self):
        """Saved state (port 0xea) between two ARP exchanges: the MAC and the
        queues come back as they were."""
        p = run("--net", "user,mac=52:54:00:00:00:42", "--append", "checkpoint")
        self.assertEqual((p.returncode, p.stdout, p.stderr), (0, (
            "nic 00:01.0 mac 52:54:00:00:00:42\n" + probe("52:54:00:00:00:42") +
            "checkpoint: saved and loaded, the MAC kept, ARP again\nnet ok\n"), ""))

    def test_config_file(self):
        """"nics" in the configuration file; --net replaces them as a whole."""
        cfg = os.path.join(self.dir, "vm.json")
        with open(cfg, "w") as f:
            json.dump({"version": 1, "kernel": GUEST, "nics": [
                {"type": "user", "mac": "52:54:00:00:00:01", "hostfwd": ["tcp::0-:22"]},
                {"type": "user", "mac": "52:54:00:00:00:02"}]}, f)
        p = subprocess.run([VSRV, "run", "--config", cfg, "--test-device"],
                           capture_output=True, text=True, timeout=TIMEOUT,
                           stdin=subprocess.DEVNULL)
        self.assertEqual((p.returncode, p.stdout, p.stderr), (2, "", (
            f"vsrv: {cfg}: nics[0]: hostfwd=tcp::0-:22: not [tcp|udp]:[HOSTADDR]:HOSTPORT-"
            "[GUESTADDR]:GUESTPORT with ports 1 to 65535\n")))
        with open(cfg, "w") as f:
            json.dump({"version": 1, "kernel": GUEST, "nics": [
                {"type": "user", "mac": "52:54:00:00:00:01",
                 "hostfwd": [f"tcp:127.0.0.1:{free_port(socket.SOCK_STREAM)}-:22"]},
                {"type": "user", "mac": "52:54:00:00:00:02"}]}, f)
        p = subprocess.run([VSRV, "run", "--config", cfg, "--test-device"],
                           capture_output=True, text=True, timeout=TIMEOUT,
                           stdin=subprocess.DEVNULL)
        self.assertEqual((p.returncode, p.stderr), (0, ""))
        self.assertEqual(p.stdout, "nic 00:01.0 mac 52:54:00:00:00:01\n"
                         "nic 00:02.0 mac 52:54:00:00:00:02\n" +
                         probe("52:54:00:00:00:01") + DHCP_ARP)
        p = subprocess.run([VSRV, "run", "--config", cfg, "--test-device", "--net",
                            "user,mac=52:54:00:00:00:03"], capture_output=True, text=True,
                           timeout=TIMEOUT, stdin=subprocess.DEVNULL)
        self.assertEqual((p.returncode, p.stderr), (0, ""))
        self.assertEqual(p.stdout, "nic 00:01.0 mac 52:54:00:00:00:03\n" +
                         probe("52:54:00:00:00:03") + DHCP_ARP)

    def test_beside_a_disk(self):
        """"disks" and "nics" in one configuration file: the disk takes PCI
        slot 1 and the NIC slot 2 (the file's order), and DHCP and ARP go
        through libslirp while the disk's device polls its own completions
        on a thread beside the NIC's."""
        with open(self.p("disk.img"), "wb") as f:
            f.truncate(1 << 20)
        cfg = self.p("vm.json")
        with open(cfg, "w") as f:
            json.dump({"version": 1, "kernel": GUEST, "disks": [{"path": "disk.img"}],
                       "nics": [{"type": "user"}]}, f)
        p = subprocess.run([VSRV, "run", "--config", cfg, "--test-device", "--stats"],
                           capture_output=True, text=True, timeout=TIMEOUT,
                           stdin=subprocess.DEVNULL)
        self.assertEqual((p.returncode, p.stdout), (0, "nic 00:02.0 mac 52:54:00:12:34:56\n" +
                                                    probe(slot=2) + DHCP_ARP), p.stderr)
        self.assertIn("vsrv: virtio-blk 00:01.0: 0 notifications, 0 requests, 0 bytes to the "
                      "guest, 0 interrupts, 0 refused, 0 resets needed\n", p.stderr)
        # The DHCP offer and the ARP reply in; the DISCOVER and the request out.
        self.assertIn("vsrv: virtio-net 00:02.0: rx 2 packets, 654 bytes, 0 dropped, 0 errors; "
                      "tx 2 packets, 632 bytes, 0 dropped, 0 errors\n", p.stderr)

    def test_bad_options(self):
        """Each mistake on the command line: one line, status 2, no VM."""
        cases = {
            "user,mac=52:54:00:12:34": "mac=52:54:00:12:34: not a MAC address (six hex "
                                       "bytes like 52:54:00:12:34:56)",
            "user,mac=52:54:00:12:34:5g": "mac=52:54:00:12:34:5g: not a MAC address (six hex "
                                          "bytes like 52:54:00:12:34:56)",
            "user,mac=01:00:5e:00:00:01": "mac=01:00:5e:00:00:01: a multicast address (a "
                                          "NIC's has the first byte's low bit clear)",
            "user,mac=00:00:00:00:00:00": "mac=00:00:00:00:00:00: not a NIC's address",
            "user,mac=52:54:00:12:34:56,mac=52:54:00:12:34:57": "mac given twice",
            "user,hostfwd=tcp:127.0.0.1:2222": "hostfwd=tcp:127.0.0.1:2222: not [tcp|udp]:"
                                               "[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT "
                                               "with ports 1 to 65535",
            "user,hostfwd=sctp::2222-:22": "hostfwd=sctp::2222-:22: not [tcp|udp]:[HOSTADDR]:"
                                           "HOSTPORT-[GUESTADDR]:GUESTPORT with ports 1 to "
                                           "65535",
            "user,hostfwd=tcp:1.2.3:2222-:22": "hostfwd=tcp:1.2.3:2222-:22: not [tcp|udp]:"
                                               "[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT "
                                               "with ports 1 to 65535",
            "user,hostfwd=tcp::2222-192.168.1.2:22": "hostfwd=tcp::2222-192.168.1.2:22: the "
                                                     "guest address is not one slirp gives "
                                                     "out (10.0.2.15 to 10.0.2.254)",
            "tap=tap0,hostfwd=tcp::2222-:22": "hostfwd=tcp::2222-:22: port forwards are for "
                                              "user networking only",
            "user,model=e1000": "'model=e1000' is not mac=MAC or hostfwd=FORWARD",
            "slirp": "'slirp' is not user, tap=NAME or bridge=NAME",
            "bridge": "bridge=: not an interface name (1 to 15 characters, no '/', ':' or "
                      "spaces)",
            "tap=a-name-far-too-long": "tap=a-name-far-too-long: not an interface name (1 to "
                                       "15 characters, no '/', ':' or spaces)",
            "user=x": "user takes no interface name",
        }
        for arg, msg in cases.items():
            p = run("--net", arg)
            self.assertEqual((p.returncode, p.stdout, p.stderr), (2, "", f"vsrv: --net: {msg}\n"),
                             arg)
        p = run(*["--net", "user"] * 9)
        self.assertEqual((p.returncode, p.stderr), (2, "vsrv: --net: more than 8 NICs\n"))

    def test_hostfwd_port_in_use(self):
        """A port forward that cannot listen stops the VM before it starts."""
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen()
            port = s.getsockname()[1]
            p = run("--net", "user", "--net", f"user,hostfwd=tcp:127.0.0.1:{port}-:22")
        self.assertEqual((p.returncode, p.stdout, p.stderr), (1, "", (
            f"vsrv: net1: user: hostfwd: cannot listen on 127.0.0.1:{port} (TCP): "
            "Address already in use\n")))


# Each case of dev-virtio-net.c's case=: the line the VMM logs.
BAD = {
    "tx-no-header": "transmit chain at head 100 has 8 bytes, less than the 12-byte header",
    "tx-runt": "transmit chain at head 100 has a frame of 10 bytes (14 to 65536 allowed)",
    "tx-oversize": "transmit chain at head 100 has a frame of 65537 bytes (14 to 65536 "
                   "allowed)",
    "tx-offload": "transmit chain at head 100 asks for offloads not negotiated (flags 0x1, "
                  "gso_type 0)",
    "tx-writable": "transmit chain at head 100 has device-writable buffers (64 bytes)",
    "rx-no-header": "receive chain at head 40 has 8 bytes, less than the 12-byte header",
    "rx-readable": "receive chain at head 40 has device-readable buffers (64 bytes)",
    "rx-too-small": "receive chain at head 40 has 32 bytes, too few for a frame of 64 bytes "
                    "and the header",
}


def outcome(case):
    return f"{case}: refused, {'receiving' if case[0] == 'r' else 'sending'} still works\n"


class HostileDriver(TmpDirTest):
    def test_each_case(self):
        """Each case alone: refused with its line, nothing written, the
        device still running (an ARP exchange after it), the VM too."""
        for case, line in BAD.items():
            p = run("--net", "user", "--append", f"case={case}")
            self.assertEqual((p.returncode, p.stdout, p.stderr), (
                0, "nic 00:01.0 mac 52:54:00:12:34:56\n" + probe() + outcome(case) +
                "net ok\n", DEV + "refused: " + line + "\n"), case)

    def test_all_in_one_boot_inline(self):
        """Every case in turn in one VM, doorbells exiting to the VMM (no
        ioeventfds): the counters add up (5 transmit and 3 receive errors,
        8 chains refused, no reset needed)."""
        p = run("--net", "user", "--append", "case=all", "--stats", hide="IOEVENTFD")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(p.stdout, "nic 00:01.0 mac 52:54:00:12:34:56\n" + probe() +
                         "".join(outcome(c) for c in BAD) + "net ok\n")
        want = "".join(DEV + "refused: " + line + "\n" for line in BAD.values())
        self.assertTrue(p.stderr.startswith(want), p.stderr)
        self.assertIn(DEV + "rx 10 packets, 640 bytes, 0 dropped, 3 errors; "
                      "tx 11 packets, 462 bytes, 0 dropped, 5 errors\n", p.stderr)
        self.assertIn(" 8 refused, 0 resets needed\n", p.stderr)


def why_no_tap():
    if os.geteuid() != 0:
        return "not root: making network namespaces, bridges and taps needs it"
    if not os.path.exists("/dev/net/tun"):
        return "no /dev/net/tun (the tun module)"
    if not shutil.which("ip"):
        return "no ip command (iproute2)"
    return None


def ip(*args, check=True):
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


@unittest.skipIf(why_no_tap(), why_no_tap())
class TapNet(TmpDirTest):
    """The host end is the test's own network namespace (vsrvtestN), so that
    nothing reaches the host's real networks: 10.0.2.1/24 on a bridge or the
    tap there, the guest at 10.0.2.15; and a DNS server of the test's."""

    def setUp(self):
        super().setUp()
        self.ns = f"vsrvtest{os.getpid()}"
        ip("netns", "add", self.ns)
        ip("-n", self.ns, "link", "set", "lo", "up")

    def tearDown(self):
        ip("netns", "del", self.ns, check=False)
        super().tearDown()

    def in_ns(self, *cmd, **kw):
        return subprocess.run(["ip", "netns", "exec", self.ns, *cmd], capture_output=True,
                              text=True, timeout=TIMEOUT, **kw)

    def exchange(self, g):
        """UDP and TCP between the namespace's stack and the guest."""
        script = (
            "import socket\n"
            "u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(30)\n"
            "u.sendto(b'hello tap', ('10.0.2.15', 7)); print(u.recvfrom(99)[0])\n"
            "s = socket.create_connection(('10.0.2.15', 22), timeout=30)\n"
            "s.sendall(b'hello vsrv\\n'); r = b''\n"
            "while True:\n"
            "    d = s.recv(999)\n"
            "    if not d: break\n"
            "    r += d\n"
            "print(r)\n")
        p = self.in_ns("python3", "-c", script)
        self.assertEqual((p.returncode, p.stdout, p.stderr),
                         (0, f"b'hello tap'\n{BANNER!r}\n", ""))
        g.wait_for("tcp: 10.0.2.1 said 11 bytes, answered 50, closed")
        p = self.in_ns("python3", "-c",
                       "import socket\n"
                       "u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                       "u.settimeout(30); u.sendto(b'quit', ('10.0.2.15', 7))\n"
                       "print(u.recvfrom(99)[0])\n")
        self.assertEqual(p.stdout, "b'bye'\n")
        self.assertEqual(g.finish(), (0, (
            "nic 00:01.0 mac 52:54:00:ab:cd:ef\n" + probe("52:54:00:ab:cd:ef") +
            "serve: 10.0.2.15 ready\nudp: echoed 9 bytes to 10.0.2.1\n"
            "tcp: 10.0.2.1 said 11 bytes, answered 50, closed\nudp: quit\nnet ok\n"), ""))

    def test_bridge(self):
        """bridge=: a new tap, up and on the bridge while the VM runs, gone
        (off the bridge) once it ends."""
        br = "vsrvtestbr0"
        ip("-n", self.ns, "link", "add", br, "type", "bridge")
        ip("-n", self.ns, "addr", "add", "10.0.2.1/24", "dev", br)
        ip("-n", self.ns, "link", "set", br, "up")
        g = Guest(["--net", f"bridge={br},mac=52:54:00:ab:cd:ef", "--append", "serve"],
                  prefix=("ip", "netns", "exec", self.ns))
        g.wait_for("serve: 10.0.2.15 ready")
        ports = ip("-n", self.ns, "-o", "link", "show", "master", br).stdout
        self.assertRegex(ports, r"^\d+: vsrv\d+: <BROADCAST,MULTICAST,UP,LOWER_UP>")
        self.exchange(g)
        self.assertEqual(ip("-n", self.ns, "-o", "link", "show", "master", br).stdout, "")

    def test_tap(self):
        """tap=NAME made by vsrv (up, no address: the test gives the host end
        one), and removed when the VM ends."""
        tap = "vsrvtesttap0"
        g = Guest(["--net", f"tap={tap},mac=52:54:00:ab:cd:ef", "--append", "serve"],
                  prefix=("ip", "netns", "exec", self.ns))
        g.wait_for("serve: 10.0.2.15 ready")
        ip("-n", self.ns, "addr", "add", "10.0.2.1/24", "dev", tap)
        self.exchange(g)
        self.assertNotEqual(ip("-n", self.ns, "link", "show", tap, check=False).returncode, 0)

    def test_dns_forwarder(self):
        """10.0.2.3 forwards DNS to the resolver /etc/resolv.conf names,
        which libslirp reads once the sandbox is in (release build): here
        the namespace's own (ip netns exec puts /etc/netns/NAME/resolv.conf
        there), naming a server the test runs on its loopback."""
        made = not os.path.isdir("/etc/netns")
        conf = f"/etc/netns/{self.ns}"
        os.makedirs(conf)
        try:
            with open(f"{conf}/resolv.conf", "w") as f:
                f.write("nameserver 127.0.0.1\n")
            server = subprocess.Popen(
                ["ip", "netns", "exec", self.ns, "python3", "-c",
                 "import socket, sys\n"
                 "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                 "s.bind(('127.0.0.1', 53)); s.settimeout(60); print('up', flush=True)\n"
                 "d, a = s.recvfrom(512); s.sendto(b'an answer to: ' + d, a)\n"],
                stdout=subprocess.PIPE, text=True)
            self.assertEqual(server.stdout.readline(), "up\n")
            p = run("--net", "user", "--append", "udp-to=10.0.2.3 port=53", binary=RELEASE,
                    prefix=("ip", "netns", "exec", self.ns))
            server.wait(10)
            server.stdout.close()
        finally:
            shutil.rmtree(conf)
            if made:
                os.rmdir("/etc/netns")
        self.assertEqual((p.returncode, p.stdout, p.stderr), (0, (
            "nic 00:01.0 mac 52:54:00:12:34:56\n" + probe() +
            "udp: 34 bytes back from 10.0.2.3 port 53: an answer to: hello from the guest\n"
            "net ok\n"), ""))

    def test_errors(self):
        """A bridge that is not there, an interface that is not a bridge, a tap
        without CAP_NET_ADMIN: one line each, status 1."""
        ns = ("ip", "netns", "exec", self.ns)
        p = run("--net", "bridge=vsrvnobr", prefix=ns)
        self.assertEqual((p.returncode, p.stdout, p.stderr), (1, "", (
            "vsrv: net0: bridge=vsrvnobr: there is no interface vsrvnobr (make the bridge "
            "first: ip link add vsrvnobr type bridge)\n")))
        p = run("--net", "user", "--net", "bridge=lo", prefix=ns)
        self.assertEqual((p.returncode, p.stdout, p.stderr),
                         (1, "", "vsrv: net1: bridge=lo: lo is not a bridge\n"))
        p = run("--net", "tap=vsrvtesttap1",
                prefix=ns + ("setpriv", "--bounding-set", "-net_admin", "--inh-caps",
                             "-net_admin"))
        self.assertEqual((p.returncode, p.stdout, p.stderr), (1, "", (
            "vsrv: net0: tap=vsrvtesttap1: no permission to make tap vsrvtesttap1 (it needs "
            "CAP_NET_ADMIN, or a tap made for this user: ip tuntap add vsrvtesttap1 mode tap "
            "user USER)\n")))


if __name__ == "__main__":
    main()
