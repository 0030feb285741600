"""bench/txreplay.c, the AF_PACKET TX-ring sender of bench/live_replay.py.

The program is compiled with ``cc -Wall -Wextra`` (no warnings allowed), then sends small
captures from the repository from its own network namespace ``medtap-txr-<pid>`` into a veth
pair (MTU 1500) whose root-namespace end ``medtap-txr-<hex>`` is read with a plain AF_PACKET
socket: every frame must arrive byte-identical and in order, and the JSON report must count
them. Bad input (pcapng, gzip, truncated, not Ethernet, garbage) must give exit status 2 and
one line on stderr.

Needs ``cc``; the sending tests also need root and ``ip netns``. Each skips with the reason
otherwise. The namespace and the veth pair are removed afterwards.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.capture.files import open_capture

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "bench" / "txreplay.c"
PCAPS = ROOT / "pcaps"
ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
SO_RCVBUFFORCE = 33
MTU = 1500


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), check=check, capture_output=True, text=True, timeout=60)


def frames_of(path: Path) -> list[bytes]:
    """The frames of a capture, read with the repository's own reader."""
    source = open_capture(path)
    try:
        return [data for _ts, _lt, data, _wl in source.frames()]
    finally:
        source.close()


def pcap_bytes(frames: list[bytes]) -> bytes:
    """A little-endian microsecond pcap (link type Ethernet) holding ``frames``."""
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for i, frame in enumerate(frames):
        out.append(struct.pack("<IIII", 1_700_000_000 + i, 0, len(frame), len(frame)))
        out.append(frame)
    return b"".join(out)


def ether(size: int, ethertype: int = 0x88B5, fill: int = 0) -> bytes:
    """A broadcast frame of ``size`` bytes (0x88B5: IEEE local experimental ethertype)."""
    head = b"\xff" * 6 + b"\x02\x00\x00\x00\x00\x01" + ethertype.to_bytes(2, "big")
    return head + bytes((fill + i) & 0xFF for i in range(size - len(head)))


# ---- the binary ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def txreplay(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cc = shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler (cc) to build bench/txreplay.c")
    binary = tmp_path_factory.mktemp("txreplay") / "txreplay"
    out = subprocess.run([cc, "-O2", "-Wall", "-Wextra", "-o", str(binary), str(SOURCE)],
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stderr.strip() == "", f"compiler warnings:\n{out.stderr}"
    return binary


def report_of(out: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 1, out.stdout
    report: dict[str, Any] = json.loads(lines[0])
    assert set(report) == {"sent", "skipped", "errors", "seconds", "pps", "bytes"}
    return report


# ---- the link ----------------------------------------------------------------------------------
class Link:
    """A veth pair: ``tx`` in our own namespace (the sender's side), ``rx`` in the root
    namespace, read by a plain AF_PACKET socket."""

    def __init__(self) -> None:
        self.ns = f"medtap-txr-{os.getpid()}"
        self.rx = f"medtap-txr-{(os.getpid() * 17) % 0xFFFF:04x}"  # IFNAMSIZ: 15 chars
        self.tx = "tx0"
        self.made_ns = self.made_link = False
        self.sock: socket.socket | None = None

    def create(self) -> None:
        sh("ip", "netns", "add", self.ns)
        self.made_ns = True
        sh("ip", "link", "add", self.rx, "mtu", str(MTU), "type", "veth", "peer", "name",
           self.tx, "mtu", str(MTU), "netns", self.ns)
        self.made_link = True
        # no IPv6 chatter (router solicitations, MLD) on either end
        disable = Path(f"/proc/sys/net/ipv6/conf/{self.rx}/disable_ipv6")
        if disable.exists():
            disable.write_text("1")
        sh("ip", "netns", "exec", self.ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
        sh("ip", "link", "set", self.rx, "up")
        sh("ip", "-n", self.ns, "link", "set", self.tx, "up")
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 32 << 20)
        self.sock.bind((self.rx, ETH_P_ALL))

    def destroy(self) -> None:
        if self.sock is not None:
            self.sock.close()
        if self.made_link:
            sh("ip", "link", "del", self.rx, check=False)
        if self.made_ns:
            sh("ip", "netns", "del", self.ns, check=False)

    def drain(self) -> None:
        """Forget whatever arrived before the sender starts."""
        assert self.sock is not None
        self.sock.setblocking(False)
        try:
            while True:
                self.sock.recv(65536)
        except BlockingIOError:
            pass

    def receive(self, count: int, timeout: float = 10.0) -> list[bytes]:
        """Frames arriving on ``rx`` until ``count`` came (and a short quiet moment after, so
        extra frames are seen too) or ``timeout``."""
        assert self.sock is not None
        got: list[bytes] = []
        deadline = time.monotonic() + timeout
        quiet_until = None
        self.sock.settimeout(0.05)
        while time.monotonic() < deadline:
            if len(got) >= count:
                quiet_until = quiet_until or time.monotonic() + 0.2
                if time.monotonic() > quiet_until:
                    break
            try:
                data, addr = self.sock.recvfrom(65536)
            except TimeoutError:
                continue
            if addr[2] != PACKET_OUTGOING:
                got.append(data)
        return got

    def send(self, binary: Path, path: Path, *args: str) -> subprocess.CompletedProcess[str]:
        self.drain()
        return subprocess.run(["ip", "netns", "exec", self.ns, str(binary), *args, self.tx,
                               str(path)], capture_output=True, text=True, timeout=60,
                              check=False)


@pytest.fixture(scope="module")
def link() -> Iterator[Link]:
    if os.geteuid() != 0:
        pytest.skip("sending needs root (network namespaces, AF_PACKET)")
    if shutil.which("ip") is None:
        pytest.skip("iproute2 'ip' is not installed")
    lk = Link()
    try:
        try:
            lk.create()
        except (subprocess.CalledProcessError, OSError) as exc:
            detail = exc.stderr.strip() if isinstance(exc, subprocess.CalledProcessError) else exc
            pytest.skip(f"cannot create a network namespace / veth pair here: {detail}")
        yield lk
    finally:
        lk.destroy()


def assert_same(received: list[bytes], expected: list[bytes]) -> None:
    """``received`` is ``expected``, frame for frame, in order. A frame that is none of the
    expected ones is a stray the kernel sent on its own (tolerated, at most two); a corrupted
    frame would also look like a stray, and then one expected frame is missing."""
    wanted = set(expected)
    stray = [f for f in received if f not in wanted]
    got = [f for f in received if f in wanted]
    assert len(stray) <= 2, f"{len(stray)} unexpected frames, first: {stray[0][:64].hex()}"
    assert len(got) == len(expected), f"received {len(got)} of {len(expected)} frames"
    for i, (a, b) in enumerate(zip(got, expected, strict=True)):
        assert a == b, f"frame {i} differs: got {a[:32].hex()}..., sent {b[:32].hex()}..."


# ---- sending -----------------------------------------------------------------------------------
@pytest.mark.live
@pytest.mark.parametrize("name", [
    "linktypes/ethernet.pcap",      # little-endian, microseconds
    "linktypes/ethernet_be.pcap",   # big-endian
    "linktypes/ethernet_ns.pcap",   # nanosecond magic
    "dicom/echo.pcap",
    "hl7/hl7_his_lis_ris.pcap",
    "discovery/mdns.pcap",          # multicast destinations
])
def test_every_frame_arrives_in_order(txreplay: Path, link: Link, name: str) -> None:
    path = PCAPS / name
    expected = frames_of(path)
    out = link.send(txreplay, path)
    report = report_of(out)
    assert report["sent"] == len(expected)
    assert report["skipped"] == 0 and report["errors"] == 0
    assert report["bytes"] == sum(map(len, expected))
    assert_same(link.receive(len(expected)), expected)


@pytest.mark.live
def test_top_speed_wraps_the_ring(txreplay: Path, link: Link) -> None:
    """1000 frames through a 64-slot ring in batches of 16: slots are reused many times."""
    path = PCAPS / "linktypes" / "ethernet.pcap"
    expected = frames_of(path) * 50
    report = report_of(link.send(txreplay, path, "--loop", "50", "--batch", "16",
                                 "--ring-frames", "64"))
    assert report["sent"] == 1000 and report["errors"] == 0
    assert report["pps"] > 0
    assert_same(link.receive(len(expected)), expected)


@pytest.mark.live
def test_paced_rate(txreplay: Path, link: Link) -> None:
    """--pps 1000: 200 frames take 0.2 s (frame i leaves no earlier than i ms after the
    first), arrive complete and in order."""
    path = PCAPS / "linktypes" / "ethernet.pcap"
    expected = frames_of(path) * 10
    report = report_of(link.send(txreplay, path, "--pps", "1000", "--loop", "10"))
    assert report["sent"] == 200 and report["errors"] == 0
    assert 0.19 <= report["seconds"] < 2.0, report
    assert report["pps"] == pytest.approx(200 / report["seconds"], rel=1e-3)
    assert_same(link.receive(len(expected)), expected)


@pytest.mark.live
def test_paced_rate_in_bursts(txreplay: Path, link: Link) -> None:
    """--pps 20000 --count 3000 (bursts of 10 frames): 0.15 s, never faster than asked."""
    path = PCAPS / "dicom" / "echo.pcap"
    frames = frames_of(path)
    expected = (frames * (3000 // len(frames) + 1))[:3000]
    report = report_of(link.send(txreplay, path, "--pps", "20000", "--count", "3000",
                                 "--loop", "0"))
    assert report["sent"] == 3000 and report["errors"] == 0
    assert report["pps"] <= 20000 * 1.02, report
    assert report["pps"] >= 20000 * 0.25, report  # a very busy machine is slower, not faster
    assert_same(link.receive(len(expected)), expected)


@pytest.mark.live
def test_duration(txreplay: Path, link: Link) -> None:
    path = PCAPS / "linktypes" / "ethernet.pcap"
    frames = frames_of(path)
    report = report_of(link.send(txreplay, path, "--pps", "1000", "--loop", "0",
                                 "--duration", "0.3"))
    assert 100 <= report["sent"] <= 302, report
    assert 0.29 <= report["seconds"] < 1.5, report
    expected = (frames * (report["sent"] // len(frames) + 1))[:report["sent"]]
    assert_same(link.receive(len(expected)), expected)


@pytest.mark.live
def test_count_stops_mid_file(txreplay: Path, link: Link) -> None:
    path = PCAPS / "linktypes" / "ethernet.pcap"
    expected = (frames_of(path) * 3)[:45]
    report = report_of(link.send(txreplay, path, "--count", "45", "--loop", "0"))
    assert report["sent"] == 45
    assert_same(link.receive(len(expected)), expected)


@pytest.mark.live
def test_oversized_and_runt_frames_are_skipped(txreplay: Path, link: Link,
                                               tmp_path: Path) -> None:
    """MTU 1500: a 1514-byte frame goes, 1515 bytes does not; neither does a frame shorter
    than an Ethernet header, nor one larger than the ring slot (--frame-size)."""
    frames = [ether(60, fill=1), ether(MTU + 15, fill=2), ether(MTU + 14, fill=3),
              b"\xff" * 10, ether(1000, fill=4)]
    path = tmp_path / "sizes.pcap"
    path.write_bytes(pcap_bytes(frames))
    report = report_of(link.send(txreplay, path))
    assert (report["sent"], report["skipped"], report["errors"]) == (3, 2, 0)
    assert report["bytes"] == 60 + MTU + 14 + 1000
    assert_same(link.receive(3), [frames[0], frames[2], frames[4]])
    # a 1024-byte slot holds 1024 - 32 (TPACKET_V2 header) = 992 bytes of frame
    report = report_of(link.send(txreplay, path, "--frame-size", "1024"))
    assert (report["sent"], report["skipped"]) == (1, 4)
    assert_same(link.receive(1), [frames[0]])


@pytest.mark.live
def test_real_capture_with_jumbo_frames(txreplay: Path, link: Link) -> None:
    """store_modalities.pcap was captured on loopback (frames up to 47 kB): the ones above
    MTU + 14 are skipped and counted, the others arrive."""
    path = PCAPS / "dicom" / "store_modalities.pcap"
    frames = frames_of(path)
    expected = [f for f in frames if len(f) <= MTU + 14]
    assert 0 < len(expected) < len(frames)
    report = report_of(link.send(txreplay, path))
    assert report["sent"] == len(expected)
    assert report["skipped"] == len(frames) - len(expected)
    assert_same(link.receive(len(expected)), expected)


@pytest.mark.live
def test_sigterm_stops_with_a_report(txreplay: Path, link: Link) -> None:
    """--loop 0 without a limit runs until SIGTERM, then reports what it sent."""
    path = PCAPS / "linktypes" / "ethernet.pcap"
    link.drain()
    proc = subprocess.Popen(["ip", "netns", "exec", link.ns, str(txreplay), "--pps", "2000",
                             "--loop", "0", "-v", link.tx, str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(0.5)
        proc.terminate()  # ip netns exec execs the program: this is txreplay's own pid
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    report = report_of(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    assert 200 <= report["sent"] <= 2000, report
    assert "ring 1024 slots of 2048 bytes" in err, err
    frames = frames_of(path)
    expected = (frames * (report["sent"] // len(frames) + 1))[:report["sent"]]
    assert_same(link.receive(len(expected)), expected)


# ---- refusing --------------------------------------------------------------------------------
def bad_inputs(tmp: Path) -> dict[str, Path]:
    good = (PCAPS / "linktypes" / "ethernet.pcap").read_bytes()
    files = {
        "pcapng": PCAPS / "linktypes" / "pcapng_two_interfaces.pcapng",
        "truncated record": PCAPS / "linktypes" / "truncated.pcap",
        "not Ethernet": PCAPS / "linktypes" / "sll.pcap",
    }
    made = {
        "gzip": gzip.compress(good, mtime=0),
        "empty": b"",
        "short header": good[:20],
        "garbage": b"this is not a capture file at all, just text\n",
        "cut record header": good[:24 + 8],
        "absurd length": good[:32] + struct.pack("<II", 10_000_000, 10_000_000) + good[40:],
        "version 1": good[:4] + struct.pack("<H", 1) + good[6:],
    }
    for name, data in made.items():
        path = tmp / (name.replace(" ", "_") + ".pcap")
        path.write_bytes(data)
        files[name] = path
    return files


def test_bad_input_exit_2_one_line(txreplay: Path, tmp_path: Path) -> None:
    """The file is checked before the interface: no root or namespace needed."""
    for what, path in bad_inputs(tmp_path).items():
        out = subprocess.run([str(txreplay), "lo", str(path)], capture_output=True, text=True,
                             timeout=30, check=False)
        assert out.returncode == 2, (what, out)
        assert out.stdout == "", (what, out.stdout)
        lines = out.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("txreplay: "), (what, out.stderr)
        assert str(path) in lines[0], (what, lines[0])
    pcapng = subprocess.run([str(txreplay), "lo", str(PCAPS / "sample" /
                                                      "hospital-sample.pcapng")],
                            capture_output=True, text=True, timeout=30, check=False)
    assert pcapng.returncode == 2 and "pcapng" in pcapng.stderr


def test_bad_usage_exit_2(txreplay: Path) -> None:
    path = str(PCAPS / "linktypes" / "ethernet.pcap")
    for args in ([], ["lo"], ["--pps", "fast", "lo", path], ["--batch", "0", "lo", path],
                 ["--count", "-1", "lo", path], ["--no-such-option", "lo", path]):
        out = subprocess.run([str(txreplay), *args], capture_output=True, text=True,
                             timeout=30, check=False)
        assert out.returncode == 2, (args, out)
        assert out.stdout == ""


def test_no_such_interface(txreplay: Path) -> None:
    out = subprocess.run([str(txreplay), "medtap-nosuch0", str(PCAPS / "linktypes" /
                                                                "ethernet.pcap")],
                         capture_output=True, text=True, timeout=30, check=False)
    assert out.returncode == 1
    assert out.stderr.strip() == "txreplay: medtap-nosuch0: no such interface"
    assert out.stdout == ""


def test_not_root(txreplay: Path) -> None:
    """As an unprivileged user: a clear message, nothing sent (``lo`` exists everywhere)."""
    if os.geteuid() != 0:
        user_run: list[str] = []
    elif shutil.which("setpriv"):
        user_run = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                    "--inh-caps=-all"]
    else:
        pytest.skip("running as root and no setpriv to drop privileges")
    with tempfile.TemporaryDirectory(prefix="medtap-txr-") as tmp:
        os.chmod(tmp, 0o755)
        binary = Path(tmp) / "txreplay"
        shutil.copy2(txreplay, binary)
        pcap = Path(tmp) / "ethernet.pcap"
        shutil.copy2(PCAPS / "linktypes" / "ethernet.pcap", pcap)
        pcap.chmod(0o644)
        out = subprocess.run([*user_run, str(binary), "lo", str(pcap)], capture_output=True,
                             text=True, timeout=30, check=False)
    if out.returncode == 0:
        pytest.skip("this user may open AF_PACKET sockets (CAP_NET_RAW)")
    assert out.returncode == 1, out
    assert len(out.stderr.splitlines()) == 1
    assert "run as root" in out.stderr
