"""LiveSource on a real veth pair: one end in a network namespace this test creates, frames
sent into it with a raw socket from inside the namespace, captured on the other end."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Dot1Q, Ether

from agent.capture import CaptureError, RawFrame
from agent.capture.live import LiveSource, compile_bpf

pytestmark = pytest.mark.live

SRC = "02:00:00:00:00:01"
DST = "02:00:00:00:00:02"


def _frames() -> dict[str, bytes]:
    def ip(proto: object, sport: int, dport: int) -> bytes:
        return bytes(IP(src="192.0.2.1", dst="192.0.2.2", id=1) / proto(sport=sport, dport=dport)
                     / b"medtap-live")
    udp99 = IP(src="192.0.2.1", dst="192.0.2.2", id=1) / UDP(sport=1234, dport=9999) / b"m"
    return {
        "udp9999": bytes(Ether(src=SRC, dst=DST) / udp99),
        "vlan42_udp9999": bytes(Ether(src=SRC, dst=DST) / Dot1Q(vlan=42, prio=5) / udp99),
        "qinq_udp9999": bytes(Ether(src=SRC, dst=DST, type=0x88A8) / Dot1Q(vlan=100, type=0x8100)
                              / Dot1Q(vlan=7) / udp99),
        "udp8888": bytes(Ether(src=SRC, dst=DST, type=0x0800)) + ip(UDP, 1234, 8888),
        "tcp104": bytes(Ether(src=SRC, dst=DST, type=0x0800)) + ip(TCP, 40000, 104),
    }


SENDER = (
    "import socket, sys\n"
    "s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)\n"
    "s.bind((sys.argv[1], 0))\n"
    "for h in sys.argv[2:]:\n"
    "    s.send(bytes.fromhex(h))\n"
)


def _run(*args: str) -> None:
    subprocess.run(list(args), check=True, capture_output=True, timeout=30)


@pytest.fixture
def veth() -> Iterator[tuple[str, str, str]]:
    if os.geteuid() != 0:
        pytest.skip("live capture test needs root")
    if shutil.which("ip") is None:
        pytest.skip("iproute2 'ip' not installed")
    pid = os.getpid() % 100000
    ns, host_if, ns_if = f"medtap-test-{pid}", f"mtva{pid}", f"mtvb{pid}"
    try:
        _run("ip", "netns", "add", ns)
    except (subprocess.CalledProcessError, OSError) as exc:
        pytest.skip(f"ip netns unavailable: {exc}")
    try:
        _run("ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if)
        _run("ip", "link", "set", ns_if, "netns", ns)
        if os.path.exists(f"/proc/sys/net/ipv6/conf/{host_if}/disable_ipv6"):
            with open(f"/proc/sys/net/ipv6/conf/{host_if}/disable_ipv6", "w") as f:
                f.write("1")  # no router solicitations / MLD noise on our end
        _run("ip", "link", "set", host_if, "up")
        _run("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
        _run("ip", "netns", "exec", ns, "ip", "link", "set", ns_if, "up")
        _run("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
        yield ns, host_if, ns_if
    finally:
        subprocess.run(["ip", "link", "del", host_if], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)


def _send(ns: str, ns_if: str, frames: list[bytes]) -> None:
    _run("ip", "netns", "exec", ns, "python3", "-c", SENDER, ns_if, *(f.hex() for f in frames))


def _capture(src: LiveSource, expect: int, seconds: float = 5.0) -> list[RawFrame]:
    got: list[RawFrame] = []

    def loop() -> None:
        for fr in src.frames():
            if fr[2][6:12] == bytes.fromhex(SRC.replace(":", "")):
                got.append(fr)
                if len(got) >= expect:
                    src.stop()

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    return_after = time.monotonic() + seconds
    while t.is_alive() and time.monotonic() < return_after:
        t.join(0.05)
    src.stop()
    t.join(2)
    assert not t.is_alive(), "frames() did not end after stop()"
    return got


def test_live_receives_frames_with_vlan_tags(veth: tuple[str, str, str]) -> None:
    ns, host_if, ns_if = veth
    frames = _frames()
    with LiveSource(host_if, None) as src:
        t0 = time.time()
        _send(ns, ns_if, list(frames.values()))
        got = _capture(src, expect=len(frames))
        stats = src.stats()
    datas = [g[2] for g in got]
    for name, f in frames.items():
        assert f in datas, f"{name} not captured intact"
    vlan = next(g for g in got if g[2] == frames["vlan42_udp9999"])
    assert vlan[2][12:14] == b"\x81\x00"
    assert int.from_bytes(vlan[2][14:16], "big") & 0x0FFF == 42
    assert vlan[3] == len(frames["vlan42_udp9999"])
    qinq = next(g for g in got if g[2] == frames["qinq_udp9999"])
    assert qinq[2][12:14] == b"\x88\xa8"
    assert all(g[1] == 1 for g in got)
    assert all(abs(g[0] - t0) < 10 for g in got)
    assert stats["received"] >= len(frames)
    assert stats["dropped"] == 0
    assert stats["frames"] >= len(frames)
    assert stats["vlan_restored"] >= 2  # the kernel did strip the tags; we put them back


def test_live_bpf_filter(veth: tuple[str, str, str]) -> None:
    ns, host_if, ns_if = veth
    frames = _frames()
    with LiveSource(host_if, "udp port 9999") as src:
        _send(ns, ns_if, [frames["udp8888"], frames["tcp104"], frames["udp9999"],
                          frames["vlan42_udp9999"]])
        got = _capture(src, expect=2, seconds=3)
    datas = [g[2] for g in got]
    assert frames["udp9999"] in datas
    assert frames["vlan42_udp9999"] in datas  # kernel filter sees the frame untagged
    assert frames["udp8888"] not in datas
    assert frames["tcp104"] not in datas


def test_live_stop_ends_idle_capture(veth: tuple[str, str, str]) -> None:
    _ns, host_if, _ = veth
    with LiveSource(host_if, "udp port 1") as src:
        timer = threading.Timer(0.3, src.stop)
        timer.start()
        t = time.monotonic()
        assert list(src.frames()) == []
        assert time.monotonic() - t < 2


def test_bad_bpf_message() -> None:
    with pytest.raises(CaptureError, match=r"bad capture filter 'udp prot 9': .*syntax error"):
        compile_bpf("udp prot 9")


def test_compile_bpf_program() -> None:
    insns = compile_bpf("udp port 9999")
    assert insns and insns[-1][0] == 6  # BPF_RET


def test_no_such_interface() -> None:
    with pytest.raises(CaptureError, match="nosuchif0: no such network interface"):
        LiveSource("nosuchif0", None)


def test_bad_bpf_on_live_source(veth: tuple[str, str, str]) -> None:
    with pytest.raises(CaptureError, match="bad capture filter"):
        LiveSource(veth[1], "port port")
