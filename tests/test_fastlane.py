"""The fast lane changes speed, never results: reports with and without it are identical."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6
from scapy.layers.l2 import Dot1AD, Dot1Q, Ether

from agent import fastcore
from agent.capture import linktypes
from agent.capture.files import open_capture
from agent.decode import Decoder
from agent.fastlane import fast_lane
from agent.flows import FlowTable
from agent.pipeline import Analyzer
from agent.report import build_report

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench" / "data" / "hosp_1m.pcap"
CAPTURES = sorted(p for p in (REPO / "pcaps").rglob("*") if p.suffix in (".pcap", ".pcapng", ".gz"))


def report(frames: list, fast: bool, core_only: bool = False) -> dict:
    analyzer = Analyzer(use_fast_lane=fast, core_only=core_only)
    analyzer.run(frames)
    result = build_report(analyzer.finish(), [])
    for volatile in ("elapsed_seconds", "packets_per_second"):
        result["stats"].pop(volatile)
    return result


def frames_of(path: Path, limit: int | None = None) -> list:
    return list(itertools.islice(open_capture(path).frames(), limit))


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: str(p.relative_to(REPO / "pcaps")))
def test_same_report_with_and_without_fast_lane(path: Path) -> None:
    frames = frames_of(path)
    assert report(frames, fast=True) == report(frames, fast=False)


@pytest.mark.skipif(not BENCH.exists(), reason="bench capture not generated (python bench/run.py)")
def test_same_report_on_hospital_traffic() -> None:
    """Parsers off, so the lane meets every flow: timeouts, sweeps and VLANs at volume."""
    frames = frames_of(BENCH, 200_000)
    assert report(frames, True, core_only=True) == report(frames, False, core_only=True)


def frame(flags: str, ts_vlan: int | None = 20, sport: int = 40000, payload: bytes = b"") -> bytes:
    l2 = Ether(src="00:09:fb:00:00:01", dst="00:1b:2b:00:00:02")
    if ts_vlan is not None:
        l2 = l2 / Dot1Q(vlan=ts_vlan)
    return bytes(
        l2
        / IP(src="10.20.0.5", dst="10.10.5.20")
        / TCP(sport=sport, dport=443, flags=flags)
        / payload
    )


def test_lane_takes_only_established_counting_work() -> None:
    ends: list = []
    table = FlowTable(lambda f, r: ends.append(r))
    lane = fast_lane(table)
    assert not lane(frame("A"), 1.0, 60)  # no flow yet: FlowTable creates it
    from agent.decode import Decoder

    decoder = Decoder()
    syn_ack = bytes(
        Ether()
        / Dot1Q(vlan=20)
        / IP(src="10.10.5.20", dst="10.20.0.5")
        / TCP(sport=443, dport=40000, flags="SA")
    )
    for raw, ts in ((frame("S"), 1.0), (syn_ack, 1.1), (frame("A"), 1.2)):
        meta = decoder.decode(linktypes.ETHERNET, raw, ts, 60)
        assert meta is not None
        table.update(meta)
    (flow,) = table.flows()
    assert lane(frame("PA", payload=b"x" * 100), 1.3, 160)
    assert flow.packets_c2s == 3 and flow.bytes_c2s == 60 + 60 + 160 and flow.last_seen == 1.3
    assert not lane(frame("FA"), 1.4, 60)  # FIN: state change, the table's job
    assert not lane(frame("A", ts_vlan=30), 1.4, 60)  # another VLAN is another flow
    assert not lane(frame("A"), 1.3 + 400, 60)  # stale: must end before a new one starts


@pytest.mark.parametrize("c", [False, True], ids=["python", "c"])
@pytest.mark.parametrize(
    "layers",
    [
        lambda: Ether() / Dot1Q(vlan=20) / IP(src="10.20.0.5", dst="10.10.5.20"),
        lambda: Ether() / Dot1AD(vlan=100) / Dot1Q(vlan=20) / IP(src="10.20.0.5", dst="10.10.5.20"),
        lambda: Ether() / IPv6(src="fd00::5", dst="fd00::20"),
    ],
    ids=["one-unpack", "qinq", "ipv6"],
)
def test_bare_ack_of_a_parsed_flow_is_lane_work(c: bool, layers: Any) -> None:
    """A flow still in detection/parsing: its bare ACKs (no payload) are only counted, so
    the lane takes them; a segment with payload, or padding mistaken for one, is not."""
    if c and fastcore.c_core() is None:
        pytest.skip("C extension not built")
    base = layers()
    table = FlowTable(lambda f, r: None)
    raw = bytes(base / TCP(sport=40000, dport=104, flags="A"))
    meta = Decoder().decode(linktypes.ETHERNET, raw, 1.0, len(raw))
    assert meta is not None
    table.update(meta)
    (flow,) = table.flows()
    flow.app_state = "parser at work"
    lane = fastcore.fast_lane(table) if c else fast_lane(table)
    padded = raw + bytes(6)  # Ethernet padding after the IP datagram: still no payload
    assert lane(raw, 2.0, 60) and lane(padded, 2.5, 66)
    assert (flow.packets, flow.bytes, flow.last_seen) == (3, len(raw) + 60 + 66, 2.5)
    assert not lane(bytes(base / TCP(sport=40000, dport=104, flags="PA") / b"x"), 3.0, 61)
    assert not lane(bytes(base / TCP(sport=40000, dport=104, flags="FA")), 3.0, 60)
    assert flow.packets == 3


def test_short_frames_never_raise() -> None:
    """Frames shorter than an Ethernet header once raised IndexError out of the lane."""
    lane = fast_lane(FlowTable(lambda f, r: None))
    for n in range(0, 64):
        assert not lane(b"\x81" * n, 1.0, n)
    frames = [(1.0 + n, linktypes.ETHERNET, b"\x81\x00" * (n // 2), n) for n in range(64)]
    for fast in (True, False):
        analyzer = Analyzer(use_fast_lane=fast, core_only=True)
        assert analyzer.run(frames) == 64


@pytest.mark.parametrize(
    "layers",
    [
        lambda: Ether() / Dot1AD(vlan=100) / Dot1Q(vlan=20) / IP(src="10.0.0.1", dst="10.0.0.2"),
        lambda: Ether() / IPv6(src="fd00::1", dst="fd00::2"),
        lambda: Ether() / Dot1Q(vlan=5) / IPv6(src="fd00::1", dst="fd00::2"),
    ],
    ids=["qinq-ipv4", "ipv6", "vlan-ipv6"],
)
@pytest.mark.parametrize("l4", ["tcp", "udp", "icmp"])
def test_lane_takes_qinq_ipv6_and_icmp(layers: Any, l4: str) -> None:
    """Established flows beyond the one-unpack case: counted by the lane, same as layered."""
    base = layers()
    v6 = IPv6 in base
    proto: Any = {
        "tcp": TCP(sport=40000, dport=443, flags="A"),
        "udp": UDP(sport=40000, dport=53),
        "icmp": ICMPv6EchoRequest() if v6 else ICMP(),
    }[l4]
    raw = bytes(base / proto / b"payload")
    table = FlowTable(lambda f, r: None)
    meta = Decoder().decode(linktypes.ETHERNET, raw, 1.0, len(raw))
    assert meta is not None
    table.update(meta)
    lane = fast_lane(table)
    assert lane(raw, 2.0, 99)
    (flow,) = table.flows()
    assert (flow.packets, flow.bytes, flow.last_seen) == (2, len(raw) + 99, 2.0)
    if l4 == "tcp":
        syn = bytes(base / TCP(sport=40000, dport=443, flags="S"))
        assert not lane(syn, 3.0, 60)  # state change: the table's job
