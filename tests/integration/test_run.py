"""vsrv run: micro-guests booted by the VMM, and its bad-input lines."""
import os

from vsrvtest import TmpDirTest, main, vsrv

GUESTS = os.environ.get("VSRV_GUESTS", "")


def guest(name):
    return os.path.join(GUESTS, name + ".elf")


class RunTest(TmpDirTest):
    def test_hello64(self):
        for quirks in ("auto", "on", "off"):
            for cpus in ("1", "2"):
                p = vsrv("run", "--kernel", guest("hello64"), "--test-device",
                         "--host-quirks", quirks, "--cpus", cpus, check=False)
                self.assertEqual((p.returncode, p.stdout, p.stderr),
                                 (42, "hello from a 64-bit micro-guest\n", ""),
                                 (quirks, cpus))

    def test_bad_input(self):
        junk = self.p("junk")
        with open(junk, "wb") as f:
            f.write(b"\x7fELF" + b"\0" * 100)
        text = self.p("text")
        with open(text, "w") as f:
            f.write("not a kernel\n")
        cases = [
            (["--kernel", self.p("none")], 1,
             f"vsrv: {self.p('none')}: No such file or directory\n"),
            (["--kernel", text], 1,
             f"vsrv: {text}: not a kernel (neither an ELF vmlinux nor a bzImage)\n"),
            (["--kernel", junk], 1,
             f"vsrv: {junk}: not an x86 executable ELF (64-bit x86-64 or 32-bit i386)\n"),
            (["--kernel", guest("hello64"), "--cpus", "0"], 2,
             "vsrv: --cpus: '0' is not a number from 1 to 16\n"),
            (["--kernel", guest("hello64"), "--cpus", "lots"], 2,
             "vsrv: --cpus: 'lots' is not a number from 1 to 16\n"),
            (["--kernel", guest("hello64"), "--memory", "1M"], 2,
             "vsrv: --memory: 1M is not a whole number of pages from 16M to 1T\n"),
            (["--kernel", guest("hello64"), "--on-reboot", "sometimes"], 2,
             "vsrv: --on-reboot: 'sometimes' is not restart or exit\n"),
            ([], 2, "vsrv: run: --kernel is required\n"),
            (["--kernel", guest("hello64"), "--initrd", self.p("none")], 1,
             f"vsrv: {self.p('none')}: No such file or directory\n"),
        ]
        for args, status, msg in cases:
            p = vsrv("run", *args, check=False)
            self.assertEqual((p.returncode, p.stderr), (status, msg), args)


if __name__ == "__main__":
    main()
