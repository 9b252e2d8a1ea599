"""The legacy devices every VM has, driven by micro-guests (tests/guests/dev-*.c):
the UART polled and by interrupt, the CMOS RTC against the host's clock, the
keyboard controller, and each way a PC resets."""
import datetime
import os
import re
import select
import socket
import subprocess
import time

from vsrvtest import VSRV, TmpDirTest, main

GUESTS = os.environ.get("VSRV_GUESTS", "")
TIMEOUT = 60


def guest(name):
    return os.path.join(GUESTS, name + ".elf")


def run(name, *args, **kw):
    return subprocess.run([VSRV, "run", "--kernel", guest(name), "--test-device", *args],
                          capture_output=True, text=True, timeout=TIMEOUT,
                          stdin=subprocess.DEVNULL, **kw)


def start(name, *args, stdin=subprocess.DEVNULL):
    return subprocess.Popen([VSRV, "run", "--kernel", guest(name), "--test-device", *args],
                            stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def read_lines(p, n, timeout=TIMEOUT):
    """n lines of p's stdout, each with the host time it arrived at."""
    out, buf = [], b""
    end = time.monotonic() + timeout
    fd = p.stdout.fileno()
    while len(out) < n:
        while b"\n" in buf and len(out) < n:
            line, buf = buf.split(b"\n", 1)
            out.append((line.decode(), time.time()))
        if len(out) == n:
            break
        left = end - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise AssertionError(f"timed out after {out!r}")
        b = os.read(fd, 4096)
        if not b:
            raise AssertionError(f"EOF after {out!r}")
        buf += b
    return out


class Uart(TmpDirTest):
    def test_registers_and_output(self):
        log = os.path.join(self.dir, "console.log")
        p = run("dev-uart", "--console", "file:" + log)
        self.assertEqual((p.returncode, p.stdout, p.stderr), (0, "uart ok\n", ""))
        with open(log, "rb") as f:
            self.assertEqual(f.read(), b"hello, uart\nA\nrep\n" + bytes(range(256)) +
                             b"\nend\n")

    def test_interrupt_driven_echo(self):
        p = start("dev-uart-irq", stdin=subprocess.PIPE)
        try:
            fd = p.stdout.fileno()

            def read_exact(n):
                buf = b""
                while len(buf) < n:
                    if not select.select([fd], [], [], TIMEOUT)[0]:
                        raise AssertionError(f"timed out after {buf!r}")
                    b = os.read(fd, n - len(buf))
                    self.assertTrue(b, buf)
                    buf += b
                return buf

            self.assertEqual(read_exact(6), b"ready\n")
            # Shorter than the FIFO trigger (8): only the timeout reports it.
            p.stdin.write(b"hello\n")
            p.stdin.flush()
            self.assertEqual(read_exact(6), b"hello\n")
            # Longer than the FIFO: delivered whole as the guest reads.
            data = bytes((i * 7 + 1) % 256 for i in range(1000)).replace(b"Q", b"q")
            data = data.replace(b"q", b"!")
            p.stdin.write(data)
            p.stdin.flush()
            self.assertEqual(read_exact(len(data)), data)
            out, err = p.communicate(b"q", timeout=TIMEOUT)
            self.assertEqual((p.returncode, out, err), (0, b"bye\n", b""))
        finally:
            if p.poll() is None:
                p.kill()
                p.communicate()


class Rtc(TmpDirTest):
    def check_times(self, lines):
        pat = re.compile(r"^(\w+) (\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d) w(\d)$")
        seen = []
        for line, when in lines:
            m = pat.match(line)
            if not m:
                self.assertTrue(line.startswith("mem "), line)
                continue
            tag = m.group(1)
            t = datetime.datetime(*map(int, m.group(2, 3, 4, 5, 6, 7)),
                                  tzinfo=datetime.timezone.utc)
            self.assertLessEqual(abs(t.timestamp() - when), 2, line)
            self.assertEqual(int(m.group(8)), t.isoweekday() % 7 + 1, line)
            seen.append(tag)
        self.assertEqual(seen, ["bcd", "bin", "h12bcd", "h12bin", "bcd"])

    def test_time(self):
        p = start("dev-rtc", "--memory", "64M")
        try:
            lines = read_lines(p, 6)
            out, err = p.communicate(timeout=TIMEOUT)
        finally:
            if p.poll() is None:
                p.kill()
                p.communicate()
        self.assertEqual((p.returncode, out, err), (0, b"rtc ok\n", b""),
                         [line for line, _ in lines])
        self.check_times(lines)

    def test_memory_sizes(self):
        cases = [
            ("64M", "1", "ext=64512 ext2=64512 above16=768 above4g=0 cpus=1"),
            # 3 GiB below the hole (the 16-bit KiB count saturates), 2 GiB above 4 GiB.
            ("5G", "2", "ext=65535 ext2=65535 above16=48896 above4g=32768 cpus=2"),
        ]
        for memory, cpus, want in cases:
            p = run("dev-rtc", "--memory", memory, "--cpus", cpus, "--append", "mem-only")
            self.assertEqual((p.returncode, p.stdout, p.stderr),
                             (0, f"mem base=640 {want}\n", ""), memory)


class KeyboardController(TmpDirTest):
    def test_probe_and_reset(self):
        p = run("dev-i8042", "--on-reboot", "exit")
        self.assertEqual((p.returncode, p.stdout, p.stderr),
                         (3, "i8042 ok\n", "vsrv: guest rebooted (keyboard controller reset)\n"))

    def test_reset_restarts_by_default(self):
        p = start("dev-i8042")
        try:
            lines = read_lines(p, 2)
        finally:
            p.kill()
            p.communicate()
        self.assertEqual([line for line, _ in lines], ["i8042 ok", "i8042 ok"])


class Resets(TmpDirTest):
    def test_each_way(self):
        cases = {
            "kbd": ("", "keyboard controller reset"),
            "outport": ("", "keyboard controller reset"),
            "cf9": ("cf9 0x02: still running\n", "reset control register"),
            "cf9full": ("cf9 0x02: still running\n", "reset control register"),
            "triple": ("", "vCPU 0: triple fault"),
        }
        for way, (more, why) in cases.items():
            p = run("dev-reset", "--append", way, "--on-reboot", "exit")
            self.assertEqual((p.returncode, p.stdout, p.stderr),
                             (3, f"reset: {way}\n{more}", f"vsrv: guest rebooted ({why})\n"),
                             way)

    def test_restart(self):
        for way in ("cf9", "triple"):
            p = start("dev-reset", "--append", way)
            try:
                lines = read_lines(p, 3 if way == "cf9" else 2)
            finally:
                p.kill()
                p.communicate()
            want = [f"reset: {way}"] + (["cf9 0x02: still running"] if way == "cf9" else [])
            self.assertEqual([line for line, _ in lines], (want * 2)[:len(lines)], way)


class Adversary(TmpDirTest):
    def test_random_accesses(self):
        # Console input arrives all the while, into whatever state the
        # guest has left the UART in.  (Through a socket: on stdio the
        # UART's output would share standard output with the debug port.)
        sock = os.path.join(self.dir, "console.sock")
        noise = bytes((i * 37 + 11) % 256 for i in range(4096))
        for seed in range(4):
            p = start("dev-fuzz", "--append", f"seed={seed}", "--console", "socket:" + sock)
            try:
                end = time.monotonic() + TIMEOUT
                while True:
                    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    try:
                        s.connect(sock)
                        break
                    except OSError:
                        s.close()
                        self.assertLess(time.monotonic(), end)
                        time.sleep(0.01)
                with s:
                    s.sendall(noise)
                out, err = p.communicate(timeout=TIMEOUT)
            finally:
                if p.poll() is None:
                    p.kill()
                    p.communicate()
            self.assertEqual((p.returncode, out, err), (0, b"fuzz done\n", b""), seed)


if __name__ == "__main__":
    main()
