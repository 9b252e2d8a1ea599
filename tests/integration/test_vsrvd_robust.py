"""vsrvd under abuse: a corpus of malformed requests, each answered with a
4xx and a message (and a mutated corpus that never gets a 5xx or kills the
service); and kill -9 of vsrvd in the middle of operations, round after
round (VSRVD_KILL_ROUNDS, default 20), after which the inventory is intact
and every VMM that runs is adopted, none lost and none duplicated."""
import json
import os
import random
import signal
import sqlite3
import threading
import time

from vsrvdtest import VsrvdTest, guest, main, pid_alive

ROUNDS = int(os.environ.get("VSRVD_KILL_ROUNDS", "20"))


def is_monitor(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return pid_alive(pid) and f.read() == "vsrvd-monitor\n"
    except FileNotFoundError:
        return False


class MalformedTest(VsrvdTest):
    def corpus(self):
        k = guest("idle-timer")
        ok = {"name": "m", "kernel": k}

        def vm(**kw):
            d = dict(ok)
            d.update(kw)
            return json.dumps(d)

        os.symlink("/etc/passwd", os.path.join(self.images, "link"))
        P, G = "POST", "GET"
        return [
            # (method, path, body, headers, status, message or None)
            (P, "/v1/vms", "", None, 400, "body: expected a JSON object, got nothing"),
            (P, "/v1/vms", "[]", None, 400, "body: expected a JSON object"),
            (P, "/v1/vms", "{", None, 400, None),
            (P, "/v1/vms", '{"name":"a","name":"b"}', None, 400, None),
            (P, "/v1/vms", "\xff\xfe", None, 400, None),
            (P, "/v1/vms", "[" * 5000 + "]" * 5000, None, 400, None),
            (P, "/v1/vms", '{"name":"a"}', None, 400, "kernel: required"),
            (P, "/v1/vms", vm(bogus=1), None, 400, "unknown field 'bogus'"),
            (P, "/v1/vms", vm(name=1), None, 400, "name: expected a string"),
            (P, "/v1/vms", vm(name=""), None, 400, None),
            (P, "/v1/vms", vm(name="a" * 65), None, 400, None),
            (P, "/v1/vms", vm(name="../x"), None, 400, None),
            (P, "/v1/vms", vm(name="a b"), None, 400, None),
            (P, "/v1/vms", vm(name="a\u0000b"), None, 400, None),
            (P, "/v1/vms", vm(vcpus=0), None, 400, "vcpus: expected an integer from 1 to 16"),
            (P, "/v1/vms", vm(vcpus=17), None, 400, None),
            (P, "/v1/vms", vm(vcpus="2"), None, 400, None),
            (P, "/v1/vms", vm(vcpus=1.5), None, 400, None),
            (P, "/v1/vms", vm(vcpus=None), None, 400, "vcpus: may not be null"),
            (P, "/v1/vms", vm(memory="1X"), None, 400, None),
            (P, "/v1/vms", vm(memory=-1), None, 400, None),
            (P, "/v1/vms", vm(memory="15M"), None, 400, None),
            (P, "/v1/vms", vm(memory=16777217), None, 400, None),
            (P, "/v1/vms", vm(memory="99999999999999999999T"), None, 400, None),
            (P, "/v1/vms", vm(kernel="idle-timer.elf"), None, 400, None),
            (P, "/v1/vms", vm(kernel="/etc/passwd"), None, 403,
             "kernel: /etc/passwd is outside the directories the configuration allows"),
            (P, "/v1/vms", vm(kernel=os.path.dirname(k) + "/../../../../../../etc/passwd"),
             None, 403, None),
            (P, "/v1/vms", vm(kernel=os.path.join(self.images, "link")), None, 403, None),
            (P, "/v1/vms", vm(kernel=k + ".nope"), None, 400, None),
            (P, "/v1/vms", vm(initrd="/etc/shadow"), None, 403, None),
            (P, "/v1/vms", vm(uuid="not-a-uuid"), None, 400, None),
            (P, "/v1/vms", vm(restart_policy="sometimes"), None, 400,
             "restart_policy: expected never, on-crash or always"),
            (P, "/v1/vms", vm(description="x" * 1025), None, 400, None),
            (P, "/v1/vms", vm(disks={}), None, 400, None),
            (P, "/v1/vms", vm(disks=[1]), None, 400, "disks[0]: expected a JSON object"),
            (P, "/v1/vms", vm(disks=[{"path": "/etc/passwd"}]), None, 403, None),
            (P, "/v1/vms", vm(disks=[{"pth": "x"}]), None, 400, "disks[0].unknown field 'pth'"),
            (P, "/v1/vms", vm(disks=[{}] * 17), None, 400, None),
            (P, "/v1/vms", vm(nics=[{"network": "n", "mac": "03:00:00:00:00:01"}]), None, 400,
             None),
            (P, "/v1/vms", vm(nics=[{"network": "n", "mac": "02:00:00:00:00:0G"}]), None, 400,
             None),
            (P, "/v1/vms", vm(nics=[{}]), None, 400, "nics[0].network: required"),
            (P, "/v1/vms", vm(cpu_cap=0), None, 400, None),
            (P, "/v1/vms", "x" * 70000, {"Expect": "100-continue"}, 413,
             "body larger than the service accepts (max_body)"),
            ("PUT", "/v1/vms", "{}", None, 405, "/v1/vms: no PUT here"),
            (G, "/v1/nope", None, None, 404, "/v1/nope: no such route"),
            (G, "/v1/vms/a/b/c", None, None, 404, None),
            (G, "/v1/vms/nope", None, None, 404, "vm 'nope': no such VM"),
            (P, "/v1/vms/nope/start", None, None, 404, None),
            (P, "/v1/vms/nope/start", "{}", None, 400, "start: takes no body"),
            ("PATCH", "/v1/vms/nope", "{}", None, 404, None),
            ("PATCH", "/v1/vms/nope", '{"kernel":"/etc/passwd"}', None, 403, None),
            ("DELETE", "/v1/vms/nope", None, None, 404, None),
            (P, "/v1/networks", '{"name":"n","type":"bridge"}', None, 400,
             "bridge: required for a network of type bridge"),
            (P, "/v1/networks", '{"name":"n","type":"bridge","bridge":"nosuchbr0"}', None, 400,
             "bridge: nosuchbr0 is not a bridge on this host"),
            (P, "/v1/networks", '{"name":"n","type":"internal","dhcp":true}', None, 400,
             "subnet: required with dhcp"),
            (P, "/v1/networks", '{"name":"n","type":"internal","subnet":"10.0.0.1/33"}', None,
             400, None),
            (P, "/v1/networks", '{"name":"n","type":"internal","bridge":"a/b"}', None, 400, None),
            (P, "/v1/networks", '{"name":"n","type":"user","dhcp":true}', None, 400, None),
            (P, "/v1/networks", '{"name":"n","type":"wan"}', None, 400, None),
            ("DELETE", "/v1/networks/nope", None, None, 404, "network 'nope': not found"),
            (P, "/v1/disks", '{"name":"d"}', None, 400, "size: required for a dynamic disk"),
            (P, "/v1/disks", '{"name":"d","size":"1K"}', None, 400, None),
            (P, "/v1/disks", '{"name":"d","type":"diff"}', None, 400,
             "parent: required for a diff disk"),
            (P, "/v1/disks", '{"name":"d","type":"diff","parent":"/etc/passwd"}', None, 403,
             None),
            (P, "/v1/disks", '{"name":"d","size":"1M","path":"/root/d.vhd"}', None, 403, None),
            (P, "/v1/disks", '{"name":"d","size":"1M","path":"relative.vhd"}', None, 400, None),
            (G, "/v1/disks/nope", None, None, 404, None),
            (G, "/v1/events?after=x", None, None, 400, None),
            (G, "/v1/events?limit=5000", None, None, 400, None),
            (G, "/v1/events?vm=../x", None, None, 400, "vm: not a VM name"),
            (G, "/v1/events/stream", None, {"Last-Event-ID": "abc"}, 400,
             "Last-Event-ID: expected an event id"),
        ]

    def test_corpus(self):
        for method, path, body, headers, status, msg in self.corpus():
            data = body.encode("utf-8", "surrogateescape") if isinstance(body, str) else body
            if body == "\xff\xfe":
                data = b"\xff\xfe"
            if headers and "Expect" in headers:
                s, r, out = self.api.expect_continue(method, path, data, headers)
            else:
                s, r, out = self.api.raw(method, path, data, headers)
            with self.subTest(method=method, path=path, body=(body or "")[:80]):
                self.assertEqual(s, status, out)
                self.assertEqual(r.getheader("Content-Type"), "application/json")
                err = json.loads(out)
                self.assertEqual(list(err), ["error"])
                self.assertTrue(err["error"])
                if msg:
                    self.assertEqual(err["error"], msg)
        self.assertEqual(self.api.ok("GET", "/v1/vms"), [])
        self.assertEqual(self.api.ok("GET", "/v1/networks"), [])
        self.assertEqual(self.api.ok("GET", "/v1/disks"), [])

    def test_mutations(self):
        # Valid bodies, bytes flipped, cut, duplicated: never a 5xx, and
        # every refusal says why.
        rng = random.Random(1)
        seeds = [json.dumps(self.vm_spec("m", nics=[], disks=[])),
                 json.dumps({"name": "n", "type": "internal", "bridge": "br0"}),
                 json.dumps({"name": "d", "size": "1M", "type": "dynamic"})]
        paths = ["/v1/vms", "/v1/networks", "/v1/disks"]
        for i in range(600):
            k = rng.randrange(3)
            b = bytearray(seeds[k].encode())
            for _ in range(rng.randint(1, 4)):
                op, pos = rng.randrange(4), rng.randrange(len(b))
                if op == 0:
                    b[pos] = rng.randrange(256)
                elif op == 1:
                    del b[pos:pos + rng.randint(1, 8)]
                elif op == 2:
                    b[pos:pos] = b[rng.randrange(len(b)):][:rng.randint(1, 16)]
                else:
                    b[pos:pos] = bytes([rng.choice(b'{}[]",:\\0')])
            s, _, out = self.api.raw("POST", paths[k], bytes(b))
            with self.subTest(i=i, body=bytes(b)):
                self.assertLess(s, 500, out)
                if s >= 400:
                    self.assertTrue(json.loads(out)["error"])
        for vm in self.api.ok("GET", "/v1/vms"):
            self.api.ok("DELETE", f"/v1/vms/{vm['name']}")
        for n in self.api.ok("GET", "/v1/networks"):
            self.api.call("DELETE", f"/v1/networks/{n['name']}")


class KillTest(VsrvdTest):
    def worker(self, api, stop, seq):
        """Creates, starts, powers off and deletes VMs until stopped or
        vsrvd is gone; at most 4 of its VMs at a time."""
        rng = random.Random(seq)
        mine = []
        try:
            while not stop.is_set():
                op = rng.randrange(4)
                if op == 0 and len(mine) < 4:
                    name = f"k{seq}-{len(mine)}-{rng.randrange(1 << 20)}"
                    api.call("POST", "/v1/vms", self.vm_spec(name))
                    mine.append(name)
                elif op == 1 and mine:
                    api.call("POST", f"/v1/vms/{rng.choice(mine)}/start")
                elif op == 2 and mine:
                    api.call("POST", f"/v1/vms/{rng.choice(mine)}/power-off")
                elif op == 3 and mine:
                    name = rng.choice(mine)
                    s, _ = api.call("DELETE", f"/v1/vms/{name}")
                    if s == 200:
                        mine.remove(name)
        except (OSError, ValueError):
            pass	# vsrvd killed under it

    def check_adopted(self):
        """Every VM's folder with a live monitor is a running VM of the
        inventory and the reverse; the database is intact."""
        db = sqlite3.connect(os.path.join(self.state, "inventory.db"))
        self.assertEqual(db.execute("PRAGMA integrity_check").fetchall(), [("ok",)])
        self.assertEqual(db.execute("PRAGMA foreign_key_check").fetchall(), [])
        db.close()
        # A VM found stopping (its power-off was asked for before the kill)
        # may end at any moment: wait for those to settle first.
        for v in self.api.ok("GET", "/v1/vms"):
            if v["state"] == "stopping":
                self.wait_state(v["name"], ("stopped", "crashed"))
        vms = {v["name"]: v for v in self.api.ok("GET", "/v1/vms")}
        for v in vms.values():
            vm = self.api.ok("GET", f"/v1/vms/{v['name']}")
            mpid = os.path.join(self.state, "vms", str(vm["id"]), "monitor.pid")
            alive = False
            if os.path.exists(mpid):
                with open(mpid) as f:
                    pid = int(f.read() or 0)
                alive = pid > 0 and is_monitor(pid)
            running = vm["state"] in ("running", "stopping")
            self.assertEqual(alive, running, vm)
            if vm["state"] == "running":
                self.assertTrue(vm["pid"] and pid_alive(vm["pid"]), vm)
        # No monitor outside the inventory: one per VM folder at most, and
        # only in folders of VMs that exist.
        ids = {str(v["id"]) for v in vms.values()}
        for d in os.listdir(os.path.join(self.state, "vms")):
            mpid = os.path.join(self.state, "vms", d, "monitor.pid")
            if d not in ids and os.path.exists(mpid):
                with open(mpid) as f:
                    pid = int(f.read() or 0)
                self.assertFalse(is_monitor(pid), f"a monitor in deleted VM folder {d}")
        return vms

    def test_kill9_rounds(self):
        rng = random.Random(6)
        seen = 0
        for rnd in range(ROUNDS):
            stop = threading.Event()
            api = self.d.api()
            t = threading.Thread(target=self.worker, args=(api, stop, rnd))
            t.start()
            time.sleep(rng.uniform(0.05, 0.5))
            self.d.stop(signal.SIGKILL)
            stop.set()
            t.join(60)
            api.close()
            self.api.close()
            self.d.start()
            vms = self.check_adopted()
            seen = max(seen, len(vms))
            # Keep the host's load bounded: power off half of what runs.
            for v in list(vms.values())[::2]:
                if v["state"] == "running":
                    self.api.call("POST", f"/v1/vms/{v['name']}/power-off")
        self.assertGreater(seen, 0, "the worker never got a VM created")
        db = sqlite3.connect(os.path.join(self.state, "inventory.db"))
        count = dict(db.execute("SELECT type, count(*) FROM events GROUP BY type").fetchall())
        db.close()
        self.assertEqual(count["service.started"], ROUNDS + 1)
        # The rounds did catch VMs running, and adopted them.
        self.assertGreater(count.get("vm.adopted", 0), 0, count)
        print(f"{ROUNDS} rounds: events {count}")


if __name__ == "__main__":
    main()
