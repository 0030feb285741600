"""``medtap sensor`` on a real mirror port: a hub of network namespaces, real peers, a real
collector (docs/sensor.md, "Tests").

The hub is a Linux bridge with ``ageing_time 0`` in its own namespace: it learns no MAC, so
it floods every frame to every port, as a switch does to a SPAN destination. Hosts are
namespaces on bridge ports (vendor MACs, 10.x addresses on one /8) running real peers:
a pynetdicom PACS with a GE implementation UID, a pynetdicom CT storing images, dcmtk
``echoscu`` from a guest laptop, an asyncio MLLP engine and a PCD-01 gateway (the helpers
of pcaps/dicom/make_dicom_pcaps.py and pcaps/hl7/record.py). The sensor captures on the
root-namespace end of a veth pair whose other end is a bridge port, and uploads to
``medtap collector serve`` on 127.0.0.1. Tagged traffic (this kernel has no 802.1Q
sub-interfaces and no bridge VLAN filtering) is the reference capture replayed into a
bridge port with a raw socket. Every namespace is ``medtap-sen-<pid>-*``, every root-side
link ``medtap-sen-<hex>``; all are removed afterwards.

Needs root and ``ip netns``; skips with the reason otherwise.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = [pytest.mark.live, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "pcaps" / "sample" / "hospital-sample.pcapng"
POLICY = ROOT / "pcaps" / "policy" / "policy.yaml"
CANARIES = ("CANARY", "Kanarienweg", "555-0147", "Vogel", "19010101")
PASSWORD = "sensor-test-7c1f"
TAG = f"{os.getpid() % 100000}"

SENDER = """
import socket, sys, time
from pathlib import Path
from agent.capture.files import open_capture
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((sys.argv[1], 0))
n = 0
for _ts, _lt, data, _wl in open_capture(Path(sys.argv[2])).frames():
    s.send(data)
    n += 1
    if n % 20 == 0:
        time.sleep(0.002)  # the hub's port queues are short
print(n)
"""

PACS = """
import sys
sys.path.insert(0, sys.argv[1])
from make_dicom_pcaps import scp_ae
from pynetdicom import evt
from pynetdicom.sop_class import CTImageStorage, Verification
ae = scp_ae("PACS_ARCHIVE", [CTImageStorage, Verification])
ae.start_server(("10.30.0.10", 104), evt_handlers=[(evt.EVT_C_STORE, lambda e: 0x0000)])
"""

CT = """
import sys
sys.path.insert(0, sys.argv[1])
from make_dicom_pcaps import image, store_scu
store_scu("CT", "10.30.1.11", "CT_SCANNER_1", "10.30.0.10", 104, "PACS_ARCHIVE",
          [image("CT", 100 + i) for i in range(2)], impl=("1.2.840.113619.6.374", "REVO_CT_22"))
"""

HIS = """
import asyncio, sys
sys.path.insert(0, sys.argv[1])
from record import mllp_server
async def main():
    server = await mllp_server("10.10.5.20", 2575)
    await server.serve_forever()
asyncio.run(main())
"""

GATEWAY = """
import asyncio, sys
sys.path.insert(0, sys.argv[1])
from record import client, frames, pcd01
asyncio.run(client("10.20.1.10", "10.10.5.20", 2575, frames(pcd01(1), pcd01(2), pcd01(3)),
                   wait_acks=3))
"""


# ---- the hub ---------------------------------------------------------------------------------
def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), check=check, capture_output=True, text=True, timeout=60)


@dataclass
class Hub:
    name: str
    namespaces: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)  # root-namespace ends
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def sw(self) -> str:
        return f"medtap-sen-{TAG}-{self.name}-sw"

    def ns(self, host: str) -> str:
        return f"medtap-sen-{TAG}-{self.name}-{host}"

    def create(self) -> None:
        sh("ip", "netns", "add", self.sw)
        self.namespaces.append(self.sw)
        self.quiet(self.sw)
        sh("ip", "-n", self.sw, "link", "add", "br0", "type", "bridge", "ageing_time", "0")
        sh("ip", "-n", self.sw, "link", "set", "br0", "up")

    def quiet(self, ns: str) -> None:
        """No IPv6 chatter (router solicitations, MLD) from our namespaces."""
        sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
        sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1")
        sh("ip", "-n", ns, "link", "set", "lo", "up")

    def host(self, host: str, ip: str | None, mac: str, mtu: int = 1500) -> str:
        ns = self.ns(host)
        sh("ip", "netns", "add", ns)
        self.namespaces.append(ns)
        self.quiet(ns)
        port = f"p-{host}"[:15]
        sh("ip", "-n", self.sw, "link", "add", port, "mtu", str(mtu), "type", "veth", "peer",
           "name", "eth0", "mtu", str(mtu), "netns", ns)
        sh("ip", "-n", self.sw, "link", "set", port, "master", "br0", "up")
        sh("ip", "-n", ns, "link", "set", "eth0", "address", mac)
        if ip is not None:
            sh("ip", "-n", ns, "addr", "add", f"{ip}/8", "dev", "eth0")
        sh("ip", "-n", ns, "link", "set", "eth0", "up")
        return ns

    def mirror(self, index: int) -> str:
        """A bridge port whose other end is in the root namespace: the span port."""
        link = f"medtap-sen-{(os.getpid() * 7 + index + hash(self.name)) % 0xFFFF:04x}"
        port = f"m{index}"
        sh("ip", "link", "add", link, "mtu", "9000", "type", "veth", "peer", "name", port,
           "mtu", "9000", "netns", self.sw)
        self.links.append(link)
        disable = Path(f"/proc/sys/net/ipv6/conf/{link}/disable_ipv6")
        if disable.exists():
            disable.write_text("1")
        sh("ip", "link", "set", link, "up")
        sh("ip", "-n", self.sw, "link", "set", port, "master", "br0", "up")
        return link

    def run(self, host: str, *cmd: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ip", "netns", "exec", self.ns(host), *cmd], capture_output=True,
                              text=True, timeout=120, cwd=ROOT, check=False)

    def spawn(self, host: str, *cmd: str) -> None:
        self.procs.append(subprocess.Popen(
            ["ip", "netns", "exec", self.ns(host), *cmd], cwd=ROOT,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ))

    def wait_listen(self, host: str, port: int) -> None:
        for _ in range(300):
            out = self.run(host, "ss", "-ltnH", f"sport = :{port}").stdout
            if out.strip():
                return
            time.sleep(0.1)
        raise AssertionError(f"nothing listens on {host}:{port}")

    def destroy(self) -> None:
        for proc in self.procs:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        for link in self.links:
            sh("ip", "link", "del", link, check=False)
        for ns in reversed(self.namespaces):
            sh("ip", "netns", "del", ns, check=False)


@contextmanager
def hub(name: str) -> Iterator[Hub]:
    if os.geteuid() != 0:
        pytest.skip("the mirror-port tests need root (network namespaces, AF_PACKET)")
    if shutil.which("ip") is None:
        pytest.skip("iproute2 'ip' is not installed")
    h = Hub(name)
    try:
        try:
            h.create()
        except (subprocess.CalledProcessError, OSError) as exc:
            pytest.skip(f"cannot create network namespaces / a bridge here: {exc}")
        yield h
    finally:
        h.destroy()


# ---- collector and sensor ------------------------------------------------------------------
def medtap(*args: str, stdin: str | None = None) -> str:
    out = subprocess.run([sys.executable, "-m", "agent.cli", *args], capture_output=True,
                         text=True, input=stdin, cwd=ROOT, timeout=120, check=False)
    assert out.returncode == 0, f"medtap {args[:2]}: {out.stderr}"
    return out.stdout


@dataclass
class Collector:
    url: str
    database: Path
    token: str
    user_token: str

    def get(self, path: str, **params: Any) -> Any:
        with httpx.Client(base_url=self.url, timeout=30,
                          headers={"Authorization": f"Bearer {self.user_token}"}) as c:
            r = c.get(path, params=params)
            assert r.status_code == 200, (path, r.status_code)
            return r.json()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def collector(tmp: Path, sensor: str) -> Iterator[Collector]:
    db = tmp / "collector.db"
    url_db = f"sqlite:///{db}"
    medtap("collector", "migrate", "--database", url_db)
    token = medtap("collector", "add-sensor", sensor, "--database", url_db).strip()
    medtap("collector", "add-user", "ops", "--password-stdin", "--database", url_db,
           stdin=PASSWORD + "\n")
    port = free_port()
    log = (tmp / "collector.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent.cli", "collector", "serve", "--host", "127.0.0.1",
         "--port", str(port), "--database", url_db], cwd=ROOT, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            assert proc.poll() is None, (tmp / "collector.log").read_text()
            try:
                r = httpx.post(f"{url}/api/v1/login", timeout=5,
                               json={"username": "ops", "password": PASSWORD})
                if r.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        else:
            raise AssertionError("collector did not start")
        yield Collector(url, db, token, r.json()["access_token"])
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


@dataclass
class Sensor:
    proc: subprocess.Popen[str]
    log: Path

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def lines(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                out.append({"msg": line, "level": "raw"})
        return out

    def wait_log(self, what: Callable[[dict[str, Any]], bool], timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(what(rec) for rec in self.lines()):
                return
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            time.sleep(0.2)
        raise AssertionError(f"log line not seen: {self.log.read_text()[-3000:]}")

    def pids(self) -> list[int]:
        kids = sh("pgrep", "-P", str(self.proc.pid), check=False).stdout.split()
        return [self.proc.pid, *map(int, kids)]


def sensor_cmd(interface: str, *options: str, python: str = sys.executable) -> list[str]:
    return [python, "-m", "agent.cli_sensor", "-i", interface, "--log-json", *options]


@contextmanager
def sensor(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> Iterator[Sensor]:
    with log.open("w") as sink:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT, text=True,
                                env={**os.environ, **(env or {})})
    s = Sensor(proc, log)
    try:
        s.wait_log(lambda r: r.get("event") == "started", timeout=90)
        yield s
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def readable_python_prefix(cmd: list[str]) -> list[str]:
    """Run ``cmd`` so that an unprivileged user can still read the interpreter: this
    machine's Python lives under /root (mode 0700). A private mount namespace puts a 0755
    tmpfs over /root with the interpreter's prefix bound back in; nothing outside the
    sensor's process tree sees it."""
    prefix = sys.prefix
    if not prefix.startswith("/root/"):
        return cmd
    keep = f"/tmp/medtap-sen-{TAG}-py"
    script = (f"mount --make-rprivate / && mkdir -p {keep} && mount --bind {prefix} {keep} && "
              f"mount -t tmpfs -o mode=755 tmpfs /root && mkdir -p {prefix} && "
              f"mount --bind {keep} {prefix} && exec \"$@\"")
    python = os.path.join(prefix, "bin", "python")
    return ["unshare", "-m", "sh", "-c", script, "sh", python, *cmd[1:]]


# ---- reading what the sensor produced ------------------------------------------------------
def spooled_batches(spool: Path) -> list[dict[str, Any]]:
    db = sqlite3.connect(spool / "spool.sqlite3")
    try:
        rows = db.execute("SELECT body FROM batches ORDER BY seq").fetchall()
    finally:
        db.close()
    return [json.loads(gzip.decompress(body)) for (body,) in rows]


def latest_devices(batches: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    devices: dict[str, dict[str, Any]] = {}
    for b in batches:
        for d in b["devices"]:
            devices[d["id"]] = d
    return devices


def summary(devices: dict[str, dict[str, Any]]) -> dict[str, tuple[Any, ...]]:
    return {k: (d["device_type"], d["vendor"], d["model"], tuple(d["vlans"]), tuple(d["ips"]))
            for k, d in devices.items()}


def no_canaries(*texts: str | bytes) -> None:
    for text in texts:
        data = text.encode("utf-8", "replace") if isinstance(text, str) else text
        for canary in CANARIES:
            assert canary.encode() not in data, f"patient canary {canary!r} leaked"


def offline(path: Path) -> dict[str, Any]:
    out = medtap("analyze", str(path), "--policy", str(POLICY), "-f", "json", "--no-progress")
    report: dict[str, Any] = json.loads(out)
    return report


# ---- the tests -------------------------------------------------------------------------------
def test_sensor_on_a_span_port_uploads_inventory_and_violations(tmp_path: Path) -> None:
    """Real DICOM and HL7 peers on the hub; two workers; policy reload on SIGHUP (a bad
    policy keeps the old one); SIGTERM sends the last snapshot; the collector has it all."""
    dicom_dir, hl7_dir = str(ROOT / "pcaps" / "dicom"), str(ROOT / "pcaps" / "hl7")
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY.read_text())
    with hub("a") as h, collector(tmp_path, "span-a") as col:
        h.host("pacs", "10.30.0.10", "b8:ca:3a:1e:00:0a")
        h.host("ct", "10.30.1.11", "44:4b:5d:30:01:11")
        h.host("laptop", "10.99.0.57", "a0:02:a5:63:00:39")
        h.host("his", "10.10.5.20", "3c:d9:2b:0a:05:14")
        h.host("piic", "10.20.1.10", "00:09:fb:1c:2d:3e")
        span = h.mirror(0)
        h.spawn("pacs", sys.executable, "-c", PACS, dicom_dir)
        h.spawn("his", sys.executable, "-c", HIS, hl7_dir)
        h.wait_listen("pacs", 104)
        h.wait_listen("his", 2575)
        metrics_port = free_port()
        cmd = sensor_cmd(span, "--workers", "2", "--collector", col.url, "--sensor-name",
                         "span-a", "--spool", str(tmp_path / "spool"), "--policy", str(policy),
                         "--report-interval", "3", "--metrics-port", str(metrics_port))
        with sensor(cmd, tmp_path / "sensor.log", {"MEDTAP_TOKEN": col.token}) as sen:
            assert h.run("ct", sys.executable, "-c", CT, dicom_dir).returncode == 0
            assert h.run("piic", sys.executable, "-c", GATEWAY, hl7_dir).returncode == 0
            echo = h.run("laptop", "/usr/bin/echoscu", "-aet", "GUEST_LAPTOP", "-aec",
                         "PACS_ARCHIVE", "10.30.0.10", "104")
            assert echo.returncode == 0, echo.stderr
            # a periodic snapshot reaches the collector while the sensor runs (the laptop's
            # echo waits for device types: "pending", decided at the end or after 15 min)
            deadline = time.monotonic() + 60
            while not any(d["device_type"] == "ct"
                          for d in col.get("/api/v1/devices", limit=500)["data"]):
                assert time.monotonic() < deadline, "no periodic snapshot reached the collector"
                time.sleep(0.5)
            scrape = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
            assert 'medtap_sensor_packets_total{worker="1"}' in scrape
            assert "medtap_sensor_kernel_drops_total 0" in scrape

            policy.write_text("zones: {broken")  # a bad policy keeps the old one
            sen.signal(signal.SIGHUP)
            sen.wait_log(lambda r: r.get("event") == "policy_error")
            policy.write_text(POLICY.read_text().replace("rules:\n", (
                "rules:\n  - name: no-ct-store\n    from: {hosts: [10.30.1.11]}\n"
                "    to: {hosts: [10.30.0.10]}\n    services: [dicom]\n    action: deny\n"
                "    severity: low\n"), 1))
            sen.signal(signal.SIGHUP)
            sen.wait_log(lambda r: r.get("event") == "policy_loaded" and r.get("trigger")
                         == "SIGHUP")
            assert h.run("ct", sys.executable, "-c", CT, dicom_dir).returncode == 0
            assert sen.stop() == 0  # the CT's second store travels in the final snapshot
        log_text = (tmp_path / "sensor.log").read_text()
        assert '"final": true' in log_text and "everything sent" in log_text

        devices = {d["key"]: d for d in col.get("/api/v1/devices", limit=500)["data"]}
        kinds = {(d["mac"], d["device_type"], d["vendor"]) for d in devices.values()}
        assert ("44:4b:5d:30:01:11", "ct", "GE Healthcare") in kinds
        assert ("b8:ca:3a:1e:00:0a", "pacs", "GE Healthcare") in kinds
        assert ("00:09:fb:1c:2d:3e", "medical-gateway", "Philips") in kinds
        assert all(d["sensors"] == ["span-a"] for d in devices.values())
        violations = {(v["rule"], v["client"]["ip"], v["server"]["ip"], v["service"])
                      for v in col.get("/api/v1/violations")["data"]}
        assert violations == {
            ("default", "10.99.0.57", "10.30.0.10", "tcp/104"),
            ("no-ct-store", "10.30.1.11", "10.30.0.10", "tcp/104"),
        }
        sensors = col.get("/api/v1/sensors")["data"]
        assert sensors[0]["packets"] > 0 and sensors[0]["kernel_drops"] == 0
        api = json.dumps([devices, col.get("/api/v1/violations"), sensors])
        no_canaries(log_text, api, col.database.read_bytes(),
                    (tmp_path / "spool" / "spool.sqlite3").read_bytes())


def test_tagged_replay_two_workers_dropped_privileges_equal_one_worker(tmp_path: Path) -> None:
    """The tagged reference capture replayed onto the hub reaches two sensors on two span
    ports: one worker as root, two workers dropped to ``nobody``. Both spool the inventory of
    ``medtap analyze`` on the same file: VLANs, zones and violations included."""
    if shutil.which("unshare") is None:
        pytest.skip("util-linux 'unshare' is needed to run the sensor as nobody here")
    shared = Path(f"/tmp/medtap-sen-{TAG}-b")  # reachable by nobody (pytest's tmp is 0700)
    shutil.rmtree(shared, ignore_errors=True)
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    policy = shared / "policy.yaml"
    policy.write_text(POLICY.read_text())
    policy.chmod(0o644)
    try:
        with hub("b") as h:
            h.host("replay", None, "02:00:00:00:00:99", mtu=9000)
            one, two = h.mirror(0), h.mirror(1)
            cmd1 = sensor_cmd(one, "--workers", "1", "--spool", str(shared / "spool1"),
                              "--policy", str(policy), "--report-interval", "2",
                              "--sensor-name", "one")
            metrics_port = free_port()
            cmd2 = readable_python_prefix(sensor_cmd(
                two, "--workers", "2", "--spool", str(shared / "spool2"), "--policy",
                str(policy), "--report-interval", "2", "--sensor-name", "two", "--user",
                "nobody", "--metrics-port", str(metrics_port)))
            with sensor(cmd1, tmp_path / "one.log") as s1, \
                    sensor(cmd2, tmp_path / "two.log") as s2:
                sent = h.run("replay", sys.executable, "-c", SENDER, "eth0", str(SAMPLE))
                assert sent.returncode == 0, sent.stderr
                # both sensors are unprivileged where it matters: the second entirely
                time.sleep(1)
                statuses = [Path(f"/proc/{pid}/status").read_text() for pid in s2.pids()]
                assert len(statuses) == 3  # sensor process + two workers
                for status in statuses:
                    fields = dict(line.split(":", 1) for line in status.splitlines())
                    assert fields["Uid"].split()[:4] == ["65534"] * 4
                    assert fields["Groups"].strip() == ""
                    for cap in ("CapPrm", "CapEff", "CapAmb"):
                        assert int(fields[cap], 16) == 0, (cap, fields[cap])
                s2.wait_log(lambda r: r.get("event") == "snapshot" and r.get("packets", 0)
                            >= int(sent.stdout))
                scrape = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10)
                assert "medtap_sensor_devices 14" in scrape.text
                assert s1.stop() == 0
                assert s2.stop() == 0
        want = offline(SAMPLE)
        got1 = spooled_batches(shared / "spool1")
        got2 = spooled_batches(shared / "spool2")
        for got in (got1, got2):
            assert summary(latest_devices(got)) == summary(
                {d["id"]: d for d in want["devices"]})
            zones = {d["id"]: d.get("zone") for d in latest_devices(got).values()}
            assert zones == {d["id"]: d["zone"] for d in want["devices"]}
            vlans = {v for d in latest_devices(got).values() for v in d["vlans"]}
            assert vlans == {10, 20, 30, 99}
            violations = {(v["rule"], v["client"]["ip"], v["server"]["ip"], v["service"])
                          for b in got for v in b["violations"]}
            assert violations == {(v["rule"], v["client"]["ip"], v["server"]["ip"],
                                   v["service"]) for v in want["violations"]}
            heartbeat = got[-1]["heartbeat"]
            # Every replayed frame is counted; the bridge may add a stray frame of its own
            # (seen once in CI: 348 for 347 sent), which the inventory checks above absorb.
            assert int(sent.stdout) <= heartbeat["packets"] <= int(sent.stdout) + 4
            assert heartbeat["kernel_drops"] == 0
        no_canaries((tmp_path / "one.log").read_text(), (tmp_path / "two.log").read_text(),
                    (shared / "spool1" / "spool.sqlite3").read_bytes(),
                    json.dumps(got1), json.dumps(got2))
    finally:
        shutil.rmtree(shared, ignore_errors=True)
        py = Path(f"/tmp/medtap-sen-{TAG}-py")  # the mount point readable_python_prefix made
        if py.is_dir() and not any(py.iterdir()):
            py.rmdir()
