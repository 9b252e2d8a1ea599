"""vsrvd's TCP listener over TLS (tls_cert, tls_key): HTTPS that Python's
ssl module and `vsrv vm` / `vsrv console` verify against a self-signed
certificate made here with the openssl command, the bearer token still
required, plain HTTP to the port unanswered, the Unix socket still plain,
and the configurations vsrvd refuses, each with its one line."""
import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import unittest
import warnings

from vsrvdtest import VSRV, VSRVD, WebSocket, VsrvdTest, guest, main, split_url

TIMEOUT = 60


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=TIMEOUT)


def make_cert(folder, name):
    """A self-signed certificate NAME.crt for 127.0.0.1 and localhost, valid
    two days, with its key NAME.key (mode 0600)."""
    crt, key = os.path.join(folder, name + ".crt"), os.path.join(folder, name + ".key")
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", key, "-out", crt, "-subj", "/CN=" + name, "-days", "2",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost")
    os.chmod(key, 0o600)
    return crt, key


class Certs:
    """One folder of certificates for the whole file: openssl takes a
    while on a loaded host."""
    folder = None

    @classmethod
    def get(cls):
        """(the server's certificate, its key, another certificate, its key)."""
        if cls.folder is None:
            cls.folder = tempfile.mkdtemp(prefix="vsrvd-tls-")
            make_cert(cls.folder, "server")
            make_cert(cls.folder, "other")
        return tuple(os.path.join(cls.folder, f)
                     for f in ("server.crt", "server.key", "other.crt", "other.key"))

    @classmethod
    def remove(cls):
        if cls.folder:
            shutil.rmtree(cls.folder, ignore_errors=True)


def verifying(cafile):
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


class TlsTest(VsrvdTest):
    def setUp(self):
        self.crt, self.key, self.other, _ = Certs.get()
        self.config = {"tls_cert": self.crt, "tls_key": self.key}
        super().setUp()
        try:
            with open(os.path.join(self.state, "vsrvd.url")) as f:
                self.url = f.read().strip()
            with open(os.path.join(self.state, "token")) as f:
                self.token = f.read().strip()
        except OSError:
            self.tearDown()		# no vsrvd left behind
            raise

    def vsrv(self, *args, env=None, stdin=subprocess.DEVNULL, input=None):
        e = {k: v for k, v in os.environ.items()
             if k not in ("VSRV_CONNECT", "VSRV_TOKEN", "VSRV_CACERT")}
        e.update(env or {})
        return subprocess.run([VSRV, *args], capture_output=True, env=e, timeout=TIMEOUT,
                              stdin=None if input is not None else stdin, input=input)

    def test_api_over_https(self):
        self.assertRegex(self.url, r"^https://127\.0\.0\.1:\d+$")
        self.assertRegex(self.d.read_log(), r"vsrvd: listening on https://127\.0\.0\.1:\d+\n")
        t = self.d.tcp_api(context=verifying(self.crt))
        self.assertEqual(t.ok("GET", "/v1/vms"), [])
        self.create("h1")
        self.assertEqual(t.ok("GET", "/v1/vms/h1")["name"], "h1")
        self.assertIn(t.conn.sock.version(), ("TLSv1.2", "TLSv1.3"))
        t.close()
        # The token is still required over TLS.
        for hdr in ({}, {"Authorization": "Bearer " + self.token + "x"}):
            bare = self.d.tcp_api(token=False, context=verifying(self.crt))
            s, r, body = bare.raw("GET", "/v1/vms", headers=hdr)
            self.assertEqual((s, r.getheader("WWW-Authenticate"), json.loads(body)),
                             (401, "Bearer", {"error": "a bearer token is required "
                                                       "(Authorization: Bearer TOKEN)"}))
            bare.close()
        # The Unix socket stays plain HTTP.
        self.assertEqual(self.api.ok("GET", "/v1/vms/h1")["name"], "h1")

    def test_clients_that_cannot_verify_or_speak_tls(self):
        # The system's CAs do not vouch for a self-signed certificate.
        t = self.d.tcp_api(context=ssl.create_default_context())
        with self.assertRaises(ssl.SSLCertVerificationError) as cm:
            t.call("GET", "/v1/vms")
        self.assertIn("self-signed certificate", str(cm.exception))
        # Nor does another self-signed certificate.
        t = self.d.tcp_api(context=verifying(self.other))
        with self.assertRaises(ssl.SSLCertVerificationError):
            t.call("GET", "/v1/vms")
        # TLS before 1.2 is refused.
        _, host, port = split_url(self.url)
        old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        old.load_verify_locations(self.crt)
        old.set_ciphers("ALL:@SECLEVEL=0")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            old.minimum_version = old.maximum_version = ssl.TLSVersion.TLSv1_1
        with socket.create_connection((host, port), timeout=TIMEOUT) as s:
            with self.assertRaises(ssl.SSLError):
                old.wrap_socket(s, server_hostname=host)
        # Plain HTTP to the TLS port: no answer, the connection closed.
        with socket.create_connection((host, port), timeout=TIMEOUT) as s:
            s.sendall(b"GET /v1/version HTTP/1.1\r\nHost: localhost\r\n\r\n")
            self.assertEqual(s.recv(4096), b"")
        # And the service goes on serving.
        t = self.d.tcp_api(context=verifying(self.crt))
        self.assertEqual(t.ok("GET", "/v1/vms"), [])
        t.close()

    def test_vsrv_vm_over_https(self):
        self.create("c1")
        env = {"VSRV_TOKEN": self.token}
        p = self.vsrv("vm", "list", "--json", "--connect", self.url, "--cacert", self.crt,
                      env=env)
        self.assertEqual((p.returncode, p.stderr), (0, b""))
        self.assertEqual([v["name"] for v in json.loads(p.stdout)], ["c1"])
        # VSRV_CONNECT and VSRV_CACERT instead.
        p = self.vsrv("vm", "show", "c1", env=dict(env, VSRV_CONNECT=self.url,
                                                   VSRV_CACERT=self.crt))
        self.assertEqual((p.returncode, p.stderr), (0, b""))
        self.assertIn(b"name             c1\n", p.stdout)
        # Without the CA: refused, saying why.
        p = self.vsrv("vm", "list", "--connect", self.url, env=env)
        self.assertEqual((p.returncode, p.stdout, p.stderr.decode()),
                         (1, b"", f"vsrv: {self.url}: SSL certificate problem: "
                                  "self-signed certificate\n"))
        # Without the token: the service's 401.
        p = self.vsrv("vm", "list", "--connect", self.url, "--cacert", self.crt)
        self.assertEqual((p.returncode, p.stderr.decode()),
                         (1, "vsrv: a bearer token is required (Authorization: Bearer TOKEN)\n"))
        # A CA file that is not there.
        nope = os.path.join(self.dir, "nope.crt")
        p = self.vsrv("vm", "list", "--connect", self.url, "--cacert", nope, env=env)
        self.assertEqual((p.returncode, p.stderr.decode()),
                         (1, f"vsrv: {nope}: No such file or directory\n"))
        # Plain HTTP to the TLS port.
        plain = "http://" + self.url[len("https://"):]
        p = self.vsrv("vm", "list", "--connect", plain, env=env)
        self.assertEqual((p.returncode, p.stderr.decode()),
                         (1, f"vsrv: {plain}: Server returned nothing (no headers, no data) "
                             "(is vsrvd running?)\n"))

    def test_console_over_https(self):
        self.create("t1", "dev-console")
        vm = self.api.ok("POST", "/v1/vms/t1/start")
        self.wait_file_has(self.vm_file(vm, "console.log"), "ready\n")
        # The WebSocket through TLS, with and without the token.
        ctx = verifying(self.crt)
        s, _, body = WebSocket.connect(self.url, "/v1/vms/t1/console", context=ctx)
        self.assertEqual((s, body), (401, {"error": "a bearer token is required "
                                                    "(Authorization: Bearer TOKEN)"}))
        s, _, ws = WebSocket.connect(self.url, "/v1/vms/t1/console", token=self.token,
                                     context=ctx)
        self.assertEqual(s, 101)
        self.assertEqual(ws.recv_output(6), b"ready\n")
        ws.send(b"tls\n")
        self.assertEqual(ws.recv_output(4), b"tls\n")
        self.assertEqual(ws.close(), (1000, ""))
        # vsrv console: input as it comes, then the guest's 'Q' stops the
        # VM, which ends the console.
        p = self.vsrv("console", "t1", "--connect", self.url, "--cacert", self.crt,
                      env={"VSRV_TOKEN": self.token}, input=b"hello\nQ")
        self.assertEqual((p.returncode, p.stdout, p.stderr),
                         (0, b"ready\ntls\nhello\nbye\n", b"\nvsrv: console: vm 't1' stopped\n"))
        self.wait_state("t1", "stopped")
        # Without the CA it never gets as far as the upgrade.
        p = self.vsrv("console", "t1", "--connect", self.url, env={"VSRV_TOKEN": self.token})
        self.assertEqual((p.returncode, p.stderr.decode()),
                         (1, f"vsrv: {self.url}: SSL certificate problem: "
                             "self-signed certificate\n"))


class RefusedTest(unittest.TestCase):
    """Configurations vsrvd refuses to start with: one line each."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="vsrvd-tls-")
        self.crt, self.key, _, self.other_key = Certs.get()

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def p(self, name):
        return os.path.join(self.dir, name)

    def refused(self, cfg):
        with open(self.p("vsrvd.json"), "w") as f:
            json.dump(cfg, f)
        r = subprocess.run([VSRVD, "--state-dir", self.p("state"), "--config",
                            self.p("vsrvd.json")], capture_output=True, text=True,
                           timeout=TIMEOUT, stdin=subprocess.DEVNULL)
        self.assertFalse(os.path.exists(self.p("state/vsrvd.sock")))
        return r.returncode, r.stderr

    def tls(self, crt, key):
        return self.refused({"tcp": "127.0.0.1:0", "tls_cert": crt, "tls_key": key})

    def write(self, name, text, mode=0o600):
        with open(self.p(name), "w") as f:
            f.write(text)
        os.chmod(self.p(name), mode)
        return self.p(name)

    def test_refused(self):
        cfg = self.p("vsrvd.json")
        junk = self.write("junk.pem", "not a certificate\n")
        with open(self.key) as f:
            key = f.read()
        loose = self.write("loose.key", key, 0o644)
        group = self.write("group.key", key, 0o640)
        nope = self.p("nope.crt")
        old_key = self.p("old.key")
        old = self.p("old.crt")
        # notAfter a day before notBefore (now): expired.
        openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                "-out", old_key)
        openssl("req", "-new", "-key", old_key, "-subj", "/CN=old", "-out", self.p("old.csr"))
        openssl("x509", "-req", "-in", self.p("old.csr"), "-signkey", old_key, "-days", "-1",
                "-out", old)
        os.chmod(old_key, 0o600)
        enc = self.p("enc.key")
        openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                "-aes-128-cbc", "-pass", "pass:secret", "-out", enc)
        with open(enc) as f:
            self.assertIn("-----BEGIN ENCRYPTED PRIVATE KEY-----", f.read())
        expired = subprocess.run(["openssl", "x509", "-in", old, "-noout", "-enddate",
                                  "-dateopt", "iso_8601"], capture_output=True, text=True,
                                 check=True).stdout.strip()[len("notAfter="):]
        for (crt, key), line in [
            ((nope, self.key), f"vsrvd: tls_cert: {nope}: No such file or directory\n"),
            ((junk, self.key), f"vsrvd: tls_cert: {junk}: no PEM certificate in it\n"),
            ((self.key, self.key), f"vsrvd: tls_cert: {self.key}: no PEM certificate in it\n"),
            ((self.dir, self.key), f"vsrvd: tls_cert: {self.dir}: not a file\n"),
            ((old, old_key), f"vsrvd: tls_cert: {old}: expired on "
                             f"{expired.replace('Z', ' UTC')}\n"),
            ((self.crt, nope), f"vsrvd: tls_key: {nope}: No such file or directory\n"),
            ((self.crt, loose), f"vsrvd: tls_key: {loose}: readable by others (mode 0644): "
                                "make it 0600 or 0640\n"),
            ((self.crt, junk), f"vsrvd: tls_key: {junk}: no PEM private key in it\n"),
            ((self.crt, self.other_key), f"vsrvd: tls_key: {self.other_key}: not the key "
                                         f"of the certificate in {self.crt}\n"),
            ((self.crt, enc), f"vsrvd: tls_key: {enc}: encrypted with a passphrase, which "
                              "vsrvd cannot be given\n"),
        ]:
            self.assertEqual(self.tls(crt, key), (1, line), (crt, key))
        for extra, line in [
            ({"tcp": "0", "tls_cert": self.crt},
             f"vsrvd: config: {cfg}: tls_cert without tls_key: TLS needs both\n"),
            ({"tcp": "0", "tls_key": self.key},
             f"vsrvd: config: {cfg}: tls_key without tls_cert: TLS needs both\n"),
            ({"tls_cert": self.crt, "tls_key": self.key},
             f"vsrvd: config: {cfg}: tls_cert and tls_key are for the TCP listener: set tcp\n"),
        ]:
            self.assertEqual(self.refused(extra), (1, line), extra)
        # A key its group may read (Debian's ssl-cert) is fine.
        with open(self.p("vsrvd.json"), "w") as f:
            json.dump({"tcp": "127.0.0.1:0", "tls_cert": self.crt, "tls_key": group}, f)
        d = subprocess.Popen([VSRVD, "--state-dir", self.p("state"), "--config",
                              self.p("vsrvd.json")], stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            line = d.stderr.readline()
            while line and "listening on https://" not in line:
                line = d.stderr.readline()
            self.assertRegex(line, r"^vsrvd: listening on https://127\.0\.0\.1:\d+\n$")
        finally:
            d.terminate()
            d.wait(TIMEOUT)
            d.stderr.close()


def tearDownModule():
    Certs.remove()


if __name__ == "__main__":
    main()
