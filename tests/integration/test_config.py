"""vsrv run --config: a VM described by a JSON file (docs/vm-config.md),
its exact error lines, and the command line overriding it."""
import json
import os
import shutil

from vsrvtest import TmpDirTest, main, vsrv

GUESTS = os.environ.get("VSRV_GUESTS", "")


def guest(name):
    return os.path.join(GUESTS, name + ".elf")


class ConfigTest(TmpDirTest):
    def write(self, obj, name="vm.json"):
        path = self.p(name)
        with open(path, "w") as f:
            f.write(obj if isinstance(obj, str) else json.dumps(obj, indent=2))
        return path

    def run_config(self, obj, *args):
        return vsrv("run", "--config", self.write(obj), "--test-device", *args, check=False)

    def test_boots_hello64(self):
        p = self.run_config({"version": 1, "name": "hello", "kernel": guest("hello64"),
                             "vcpus": 2, "memory": "64M", "on_reboot": "exit",
                             "host_quirks": "auto", "disks": [], "nics": []})
        self.assertEqual((p.returncode, p.stdout, p.stderr),
                         (42, "hello from a 64-bit micro-guest\n", ""))

    def test_every_field(self):
        p = self.run_config({
            "version": 1, "name": "every-field_1.0",
            "uuid": "6f1c3c59-8a3e-4b6e-9c1e-2f5d7a0b4c11", "vcpus": 3,
            "memory": 64 << 20, "kernel": guest("cpu-cpuid"), "cmdline": "x=1",
            "console": "stdio", "on_reboot": "restart", "host_quirks": "on",
            "hugepages": False, "memfd": True, "halt_poll_ns": 50000, "disks": [],
            "nics": []})
        self.assertEqual((p.returncode, p.stderr), (0, ""))
        self.assertIn("leaf 1: apic id 0, count 3,", p.stdout)
        self.assertIn("pv_tlb_flush 0, pv_send_ipi 0, pv_sched_yield 0", p.stdout)

    def test_relative_paths_are_from_the_files_folder(self):
        shutil.copy(guest("hello64"), self.p("kernel.elf"))
        cfg = self.write({"version": 1, "kernel": "kernel.elf"})
        p = vsrv("run", "--config", cfg, "--test-device", check=False)
        self.assertEqual((p.returncode, p.stderr), (42, ""))

    def test_command_line_overrides_the_file(self):
        base = {"version": 1, "kernel": self.p("missing"), "vcpus": 1,
                "host_quirks": "off", "cmdline": "mode=fwait"}
        # --kernel, --cpus, --host-quirks and --append all win over the file.
        p = self.run_config(base, "--kernel", guest("cpu-cpuid"), "--cpus", "2",
                            "--host-quirks", "on")
        self.assertEqual((p.returncode, p.stderr), (0, ""))
        self.assertIn("count 2,", p.stdout)
        self.assertIn("pv_tlb_flush 0", p.stdout)
        p = self.run_config(dict(base, kernel=guest("exit-count")), "--append", "n=5",
                            "--stats")
        self.assertEqual((p.returncode, p.stderr), (0, "vsrv: exits: IO 6\n"))
        # The file's on_reboot, and the option's.
        tf = dict(base, kernel=guest("exit-triple"), on_reboot="exit")
        p = self.run_config(tf)
        self.assertEqual((p.returncode, p.stderr),
                         (3, "vsrv: guest rebooted (vCPU 0: triple fault)\n"))

    def test_errors(self):
        k = guest("hello64")
        cases = [
            ("{", "line 1, column 1: string or '}' expected near end of file"),
            ('{"version": 1,\n "vcpus": 1,\n "vcpus": 2}',
             "line 3, column 8: duplicate object key near '\"vcpus\"'"),
            ([1], "expected a JSON object"),
            ({"kernel": k}, "version: missing (this vsrv reads version 1)"),
            ({"version": "1"}, "version: expected an integer from 1"),
            ({"version": 0}, "version: expected an integer from 1"),
            ({"version": 2, "kernel": k, "shiny": True},
             "version 2 is newer than this vsrv reads (1): upgrade vsrv"),
            ({"version": 1, "kernel": k, "vcpu": 2},
             "unknown field 'vcpu' (version 1 has no such field)"),
            ({"version": 1, "kernel": 7}, "kernel: expected a string"),
            ({"version": 1, "vcpus": "2"}, "vcpus: expected an integer"),
            ({"version": 1, "vcpus": 17}, "vcpus: expected an integer from 1 to 16"),
            ({"version": 1, "memory": True},
             'memory: expected a size (a string like "512M" or a number of bytes)'),
            ({"version": 1, "memory": "12Q"},
             'memory: expected a size (a string like "512M" or a number of bytes)'),
            ({"version": 1, "memory": "1M"},
             "memory: expected a whole number of pages from 16M to 1T"),
            ({"version": 1, "hugepages": "yes"}, "hugepages: expected true or false"),
            ({"version": 1, "halt_poll_ns": "0"}, "halt_poll_ns: expected an integer"),
            ({"version": 1, "halt_poll_ns": -1},
             "halt_poll_ns: expected an integer from 0 to 1000000000"),
            ({"version": 1, "halt_poll_ns": 1000000001},
             "halt_poll_ns: expected an integer from 0 to 1000000000"),
            ({"version": 1, "disks": {}}, "disks: expected an array"),
            ({"version": 1, "disks": [{"path": "a.vhd", "shiny": True}]},
             "disks[0]: unknown field 'shiny'"),
            ({"version": 1, "nics": ["x"]}, "nics[0]: expected an object"),
            ({"version": 1, "nics": [{"name": "tap0"}]},
             'nics[0].type: missing ("user", "tap" or "bridge")'),
            ({"version": 1, "nics": [{"type": "slirp"}]},
             "nics[0]: 'slirp' is not user, tap=NAME or bridge=NAME"),
            ({"version": 1, "nics": [{"type": "user"}, {"type": "tap"}]},
             "nics[1]: tap=: not an interface name (1 to 15 characters, no '/', ':' or "
             "spaces)"),
            ({"version": 1, "nics": [{"type": "user", "model": "e1000"}]},
             "nics[0]: unknown field 'model' (type, name, mac, hostfwd)"),
            ({"version": 1, "nics": [{"type": "user", "mac": 5}]},
             "nics[0].mac: expected a string"),
            ({"version": 1, "nics": [{"type": "user", "mac": "52:54:00:12:34"}]},
             "nics[0]: mac=52:54:00:12:34: not a MAC address (six hex bytes like "
             "52:54:00:12:34:56)"),
            ({"version": 1, "nics": [{"type": "user", "hostfwd": "tcp::2222-:22"}]},
             "nics[0].hostfwd: expected an array of strings"),
            ({"version": 1, "nics": [{"type": "user", "hostfwd": ["tcp::99999-:22"]}]},
             "nics[0]: hostfwd=tcp::99999-:22: not [tcp|udp]:[HOSTADDR]:HOSTPORT-"
             "[GUESTADDR]:GUESTPORT with ports 1 to 65535"),
            ({"version": 1, "nics": [{"type": "bridge", "name": "br0",
                                      "hostfwd": ["tcp::2222-:22"]}]},
             "nics[0]: hostfwd=tcp::2222-:22: port forwards are for user networking only"),
            ({"version": 1, "nics": [{"type": "user"}] * 9}, "nics: more than 8"),
            ({"version": 1, "name": "no spaces"},
             "name: expected 1 to 64 letters, digits, '.', '_' or '-'"),
            ({"version": 1, "uuid": "6f1c3c59"},
             "uuid: expected a UUID like 6f1c3c59-8a3e-4b6e-9c1e-2f5d7a0b4c11"),
            ({"version": 1, "on_reboot": "never"},
             'on_reboot: expected "restart" or "exit"'),
            ({"version": 1, "host_quirks": True}, "host_quirks: expected a string"),
            ({"version": 1, "host_quirks": "maybe"},
             'host_quirks: expected "auto", "on" or "off"'),
            ({"version": 1, "console": "serial"},
             'console: expected "stdio", "file:PATH", "socket:PATH", "hvc" or '
             '"hvc,<one of these>"'),
        ]
        for obj, msg in cases:
            path = self.write(obj)
            p = vsrv("run", "--config", path, check=False)
            self.assertEqual((p.returncode, p.stdout, p.stderr),
                             (2, "", f"vsrv: {path}: {msg}\n"), obj)

    def test_missing_file_and_kernel(self):
        p = vsrv("run", "--config", self.p("none.json"), check=False)
        self.assertEqual((p.returncode, p.stderr),
                         (2, f"vsrv: {self.p('none.json')}: unable to open "
                             f"{self.p('none.json')}: No such file or directory\n"))
        p = vsrv("run", "--config", self.write({"version": 1}), check=False)
        self.assertEqual((p.returncode, p.stderr),
                         (2, "vsrv: run: --kernel is required (or \"kernel\" in --config)\n"))


if __name__ == "__main__":
    main()
