"""App detection through the real pipeline: payload probes, reassembly, mid-stream, parser bugs.

A toy line protocol ("TOY1 <word>\\n") stands in for DICOM/HL7 so these tests pin the
detection mechanics alone. Frames are built with scapy and fed as raw Ethernet frames.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Dot1Q, Ether

from agent.capture import linktypes
from agent.pipeline import Analyzer
from parsers.base import (
    DatagramParser,
    Direction,
    Frame,
    Malformed,
    Observation,
    StreamParser,
)
from parsers.registry import ParserSpec, Probe, Registry

MAGIC = b"TOY1 "
CLIENT, SERVER = "10.20.0.5", "10.10.5.20"


class ToyParser(StreamParser):
    name = "toy"

    def _frame(self, direction: Direction, buf: bytearray) -> Frame | None:
        end = buf.find(b"\n")
        if end < 0:
            return None
        return Frame(end + 1)

    def _decode(self, direction: Direction, pdu: bytes, ts: float) -> Iterable[Observation]:
        if not pdu.startswith(MAGIC):
            raise Malformed("no magic")
        sender = self.flow.client if direction is Direction.TO_SERVER else self.flow.server
        yield Observation("toy.word", sender, pdu[len(MAGIC) : -1].decode(), ts)


class BuggyParser(ToyParser):
    name = "buggy"

    def _decode(self, direction: Direction, pdu: bytes, ts: float) -> Iterable[Observation]:
        raise RuntimeError("parser bug with CANARY^PATIENT in it")


class ToyDatagram(DatagramParser):
    name = "toyudp"

    def _decode(self, direction: Direction, data: bytes, ts: float) -> Iterable[Observation]:
        if not data.startswith(MAGIC):
            raise Malformed("no magic")
        yield Observation("toyudp.word", self.flow.client, data[len(MAGIC) :].decode(), ts)


def toy_probe(direction: Direction, data: bytes) -> Probe:
    if data.startswith(MAGIC):
        return Probe.MATCH
    return Probe.NEED_MORE if MAGIC.startswith(data) else Probe.NO


def registry(factory: type[StreamParser] = ToyParser) -> Registry:
    reg = Registry()
    reg.register(ParserSpec(factory.name, "tcp", toy_probe, factory, frozenset({7777})))
    reg.register(ParserSpec("toyudp", "udp", toy_probe, ToyDatagram))
    return reg


class Conversation:
    """A TCP conversation as raw Ethernet frames, with sequence numbers tracked per side."""

    def __init__(self, sport: int = 40000, dport: int = 5555, vlan: int = 20) -> None:
        self.sport, self.dport, self.vlan = sport, dport, vlan
        self.seq = {True: 1000, False: 9000}
        self.ts = 1.0

    def packet(self, to_server: bool, flags: str, payload: bytes = b"", seq: int | None = None):
        src, dst = (CLIENT, SERVER) if to_server else (SERVER, CLIENT)
        sport, dport = (self.sport, self.dport) if to_server else (self.dport, self.sport)
        s = self.seq[to_server] if seq is None else seq
        pkt = (
            Ether(src="00:09:fb:00:00:01", dst="00:50:56:00:00:02")
            / Dot1Q(vlan=self.vlan)
            / IP(src=src, dst=dst)
            / TCP(sport=sport, dport=dport, flags=flags, seq=s)
            / payload
        )
        if seq is None:
            self.seq[to_server] += len(payload) + (1 if "S" in flags or "F" in flags else 0)
        self.ts += 0.001
        raw = bytes(pkt)
        return (self.ts, linktypes.ETHERNET, raw, len(raw))

    def handshake(self) -> list:
        return [self.packet(True, "S"), self.packet(False, "SA"), self.packet(True, "A")]


def analyze(frames: list, reg: Registry) -> tuple[Analyzer, set[tuple[str, str, str]]]:
    analyzer = Analyzer(reg)
    analyzer.run(frames)
    analyzer.flows.close_all()
    facts = {(e.kind, e.host, e.value) for e in analyzer.evidence}
    return analyzer, facts


def test_payload_detection_on_unhinted_port() -> None:
    c = Conversation(dport=5555)
    frames = [
        *c.handshake(),
        c.packet(True, "PA", b"TOY1 hello\n"),
        c.packet(False, "PA", b"TOY1 hi\n"),
    ]
    analyzer, facts = analyze(frames, registry())
    assert facts == {("toy.word", CLIENT, "hello"), ("toy.word", SERVER, "hi")}
    assert analyzer.appdetect.detected["toy"] == 1


def test_first_segment_shorter_than_the_signature() -> None:
    """A first segment holding only part of the header must not lose the flow."""
    c = Conversation()
    frames = [*c.handshake(), c.packet(True, "PA", b"TO"), c.packet(True, "PA", b"Y1 split\n")]
    _, facts = analyze(frames, registry())
    assert facts == {("toy.word", CLIENT, "split")}


def test_out_of_order_segments_are_reassembled_before_the_probe() -> None:
    c = Conversation()
    hs = c.handshake()
    first = c.packet(True, "PA", b"TOY1 ")
    second = c.packet(True, "PA", b"reordered\n")
    _, facts = analyze([*hs, second, first], registry())
    assert facts == {("toy.word", CLIENT, "reordered")}


def test_other_protocols_are_left_alone() -> None:
    c = Conversation()
    frames = [*c.handshake(), c.packet(True, "PA", b"GET / HTTP/1.1\r\n\r\n")]
    analyzer, facts = analyze(frames, registry())
    assert not facts and not analyzer.appdetect.detected
    flow = next(iter(analyzer.conversations.records()))
    assert flow.app is None


def test_midstream_flow_is_found_at_a_later_message() -> None:
    """A long-lived link opened before the sensor started: the first bytes seen are mid-message."""
    c = Conversation()
    frames = [
        c.packet(True, "PA", b"tail of an older message\n"),
        c.packet(True, "PA", b"TOY1 late\n"),
    ]
    _, facts = analyze(frames, registry())
    assert facts == {("toy.word", CLIENT, "late")}


def test_parser_bug_is_counted_and_logged_without_bytes(caplog: pytest.LogCaptureFixture) -> None:
    c = Conversation()
    frames = [
        *c.handshake(),
        c.packet(True, "PA", b"TOY1 boom\n"),
        c.packet(True, "PA", b"TOY1 again\n"),
    ]
    with caplog.at_level(logging.WARNING):
        analyzer, facts = analyze(frames, registry(BuggyParser))
    assert analyzer.appdetect.parser_errors["buggy"] == 1
    assert not facts
    assert "RuntimeError" in caplog.text
    assert "CANARY" not in caplog.text and "boom" not in caplog.text


def test_udp_datagram_parser() -> None:
    pkt = (
        Ether(src="00:09:fb:00:00:01", dst="00:50:56:00:00:02")
        / IP(src=CLIENT, dst=SERVER)
        / UDP(sport=24005, dport=24005)
        / b"TOY1 beacon"
    )
    raw = bytes(pkt)
    _, facts = analyze([(1.0, linktypes.ETHERNET, raw, len(raw))], registry())
    assert facts == {("toyudp.word", CLIENT, "beacon")}


def test_same_tuple_in_two_vlans_is_two_flows() -> None:
    a, b = Conversation(vlan=20), Conversation(vlan=30)
    frames = [*a.handshake(), *b.handshake()]
    analyzer, _ = analyze(frames, registry())
    assert sorted(r.vlan for r in analyzer.conversations.records()) == [20, 30]


def test_core_only_runs_no_parser() -> None:
    c = Conversation(dport=7777)
    frames = [*c.handshake(), c.packet(True, "PA", b"TOY1 hello\n")]
    analyzer = Analyzer(registry(), core_only=True)
    analyzer.run(frames)
    analyzer.flows.close_all()
    assert not list(analyzer.evidence) and not analyzer.appdetect.detected


def test_frame_parser_gets_l2_payload_and_its_facts_land_on_the_mac() -> None:
    from parsers.base import L2Frame
    from parsers.registry import FrameSpec

    seen: list[L2Frame] = []

    def parse(frame: L2Frame) -> list[Observation]:
        seen.append(frame)
        return [
            Observation("toyl2.name", f"mac:{frame.src_mac}", frame.payload[:4].decode(), frame.ts)
        ]

    reg = registry()
    reg.register_frame(FrameSpec("toyl2", frozenset({0x88B5}), parse))
    raw = bytes(
        Ether(src="00:09:fb:00:00:07", dst="01:80:c2:00:00:0e", type=0x88B5) / b"SW01" / bytes(50)
    )
    analyzer = Analyzer(reg)
    analyzer.run([(1.0, linktypes.ETHERNET, raw, len(raw))])
    result = analyzer.finish()
    assert seen[0].payload.startswith(b"SW01") and seen[0].src_mac == "00:09:fb:00:00:07"
    (device,) = [d for d in result.devices if d.mac == "00:09:fb:00:00:07"]
    assert {(e["kind"], e["value"]) for e in device.evidence} >= {("toyl2.name", "SW01")}


def test_syn_observer_sees_the_opening_syn_once() -> None:
    from parsers.base import TcpSyn
    from parsers.registry import SynSpec

    syns: list[TcpSyn] = []

    def observe(syn: TcpSyn) -> list[Observation]:
        syns.append(syn)
        return [Observation("toysyn.ttl", syn.client, str(syn.ttl), syn.ts)]

    reg = registry()
    reg.register_syn(SynSpec("toysyn", observe))
    c = Conversation()
    analyzer, facts = analyze([*c.handshake(), c.packet(True, "PA", b"x")], reg)
    assert len(syns) == 1 and syns[0].client == CLIENT and syns[0].server_port == 5555
    assert ("toysyn.ttl", CLIENT, "64") in facts


class OneShotParser(ToyParser):
    """Has learnt all it can after one message."""

    name = "oneshot"

    @property
    def finished(self) -> bool:
        return self.pdus >= 1


def test_finished_parser_releases_the_flow() -> None:
    c = Conversation(dport=7777)
    frames = [
        *c.handshake(),
        c.packet(True, "PA", b"TOY1 first\n"),
        c.packet(True, "PA", b"TOY1 second\n"),
    ]
    analyzer, facts = analyze(frames, registry(OneShotParser))
    assert facts == {("toy.word", CLIENT, "first")}
    assert analyzer.appdetect.parsers_finished["oneshot"] == 1
    (conv,) = analyzer.conversations.records()
    assert conv.app == "oneshot" and conv.packets_c2s == 4  # still counted after release
