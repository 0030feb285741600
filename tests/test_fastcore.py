"""The C hot path (agent/_fastcore.c) changes speed, never results.

Three ways through the same capture must give byte-identical reports (minus timing): the C
record walker running the C lane, pure Python with the Python lane (``MEDTAP_NO_C=1``), and
pure Python without a lane. Below that, the C lane is checked against its specification
(``agent.fastlane``) frame by frame and flow slot by flow slot, and the C walker against the
Python walker record by record, warning by warning, on arbitrary and truncated input.
"""

from __future__ import annotations

import gc
import gzip
import json
import os
import struct
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6
from scapy.layers.l2 import Dot1AD, Dot1Q, Ether

from agent import fastcore
from agent.capture import CaptureError, linktypes
from agent.capture.files import open_capture
from agent.capture.pcapfile import CHUNK_SIZE, MAX_CAPLEN, PcapFileSource
from agent.decode import Decoder
from agent.fastlane import fast_lane as py_fast_lane
from agent.flows import Flow, FlowTable
from agent.pipeline import TICK_EVERY, Analyzer
from agent.report import build_report
from tests.capture_fixtures import pcap_bytes

_fastcore = pytest.importorskip("agent._fastcore", reason="C extension not built")

REPO = Path(__file__).resolve().parents[1]
PUBLIC = REPO.parent / "shared" / "pcaps" / "public"
BENCH = REPO / "bench" / "data" / "hosp_1m.pcap"
CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".gz", ".cap")
CAPTURES = sorted(p for p in (REPO / "pcaps").rglob("*") if p.suffix in CAPTURE_SUFFIXES)
if PUBLIC.is_dir():
    CAPTURES += sorted(p for p in PUBLIC.rglob("*") if p.suffix in CAPTURE_SUFFIXES)
VOLATILE = ("elapsed_seconds", "packets_per_second")
T0 = 1_700_000_000.0


@contextmanager
def no_c(monkeypatch: pytest.MonkeyPatch, off: bool) -> Iterator[None]:
    with monkeypatch.context() as m:
        if off:
            m.setenv("MEDTAP_NO_C", "1")
        else:
            m.delenv("MEDTAP_NO_C", raising=False)
        yield


def report_text(path: Path, mode: str, monkeypatch: pytest.MonkeyPatch,
                core_only: bool = False) -> str:
    """The JSON report of ``path`` read the way ``medtap analyze`` reads it, in one mode:
    "c" (C walker + C lane), "py" (MEDTAP_NO_C=1, Python lane), "none" (no lane)."""
    with no_c(monkeypatch, mode != "c"):
        analyzer = Analyzer(core_only=core_only, use_fast_lane=mode != "none")
        source = open_capture(path)
        frames = source.frames()
        if mode == "c" and isinstance(source, PcapFileSource):
            assert isinstance(frames, _fastcore.PcapWalker)
        with suppress(CaptureError):
            analyzer.run(frames)
        result = build_report(analyzer.finish(), [])
    for key in VOLATILE:
        result["stats"].pop(key)
    result["warnings"] = list(source.warnings)
    return json.dumps(result, sort_keys=True, default=str)


def _id(p: Path) -> str:
    return str(p.relative_to(REPO / "pcaps")) if REPO in p.parents else f"public/{p.name}"


@pytest.mark.parametrize("path", CAPTURES, ids=_id)
def test_same_report_c_python_and_no_lane(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    c = report_text(path, "c", monkeypatch)
    assert c == report_text(path, "py", monkeypatch)
    assert c == report_text(path, "none", monkeypatch)


@pytest.mark.slow
@pytest.mark.skipif(not BENCH.exists(), reason="bench capture not generated (python bench/run.py)")
def test_same_report_on_the_reference_capture(monkeypatch: pytest.MonkeyPatch) -> None:
    """All 1M packets, parsers off: timeouts, sweeps, VLANs, key-cache collisions at volume."""
    c = report_text(BENCH, "c", monkeypatch, core_only=True)
    assert c == report_text(BENCH, "py", monkeypatch, core_only=True)


def test_env_switch_and_types(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "x.pcap"
    p.write_bytes(pcap_bytes(linktypes.ETHERNET, [(T0, b"\x00" * 60)]))
    table = FlowTable(lambda f, r: None)
    for off in (False, True):
        with no_c(monkeypatch, off):
            source = open_capture(p)
            assert isinstance(source.frames(), _fastcore.PcapWalker) is not off
            assert isinstance(fastcore.fast_lane(table), _fastcore.Lane) is not off
            source.close()  # type: ignore[attr-defined]


# --- the C lane against agent.fastlane ------------------------------------------------------

MAC_A, MAC_B = "00:09:fb:00:00:01", "00:1b:2b:00:00:02"


def _l2(tags: str) -> Any:
    eth = Ether(src=MAC_A, dst=MAC_B)
    if tags == "q":
        return eth / Dot1Q(vlan=20)
    if tags == "q0":
        return eth / Dot1Q(vlan=0)
    if tags == "qinq":
        return eth / Dot1AD(vlan=100) / Dot1Q(vlan=20)
    if tags == "qq0":
        return eth / Dot1Q(vlan=7) / Dot1Q(vlan=0)
    if tags == "9100":
        return Ether(src=MAC_A, dst=MAC_B, type=0x9100) / Dot1Q(vlan=30)
    return eth


def _base_frames() -> list[bytes]:
    out = []
    for tags in ("", "q", "q0", "qinq", "qq0", "9100"):
        for l3 in ("4", "6"):
            ip = IP(src="10.20.0.5", dst="10.10.5.20") if l3 == "4" else IPv6(
                src="fd00::5", dst="fd00::14")
            rip = IP(src="10.10.5.20", dst="10.20.0.5") if l3 == "4" else IPv6(
                src="fd00::14", dst="fd00::5")
            icmp = ICMP() if l3 == "4" else ICMPv6EchoRequest()
            for l4 in (TCP(sport=40000, dport=443, flags="S"),
                       TCP(sport=40000, dport=443, flags="A"),
                       TCP(sport=40000, dport=443, flags="PA") / (b"x" * 30),
                       UDP(sport=5353, dport=53) / (b"q" * 3),
                       icmp / b"ping"):
                out.append(bytes(_l2(tags) / ip / l4))
            out.append(bytes(_l2(tags) / rip / TCP(sport=443, dport=40000, flags="SA")))
            out.append(bytes(_l2(tags) / rip / TCP(sport=443, dport=40000, flags="A")))
            out.append(bytes(_l2(tags) / rip / UDP(sport=53, dport=5353) / b"a"))
    return out


BASE = _base_frames()
GAPS = (0.0, 0.001, 1.0, 1.5, 14.9, 15.5, 59.0, 61.0, 119.0, 121.0, 299.0, 301.0)

GAP = st.sampled_from(GAPS[:4] * 6 + GAPS[4:])  # mostly short gaps, sometimes timeouts


@st.composite
def packet_ops(draw: st.DrawFn) -> list[tuple[int, str, int, int, float, int]]:
    """A few flows' frames, often repeated (so flows exist and get established), mutated."""
    picks = draw(st.lists(st.integers(0, len(BASE) - 1), min_size=1, max_size=4))
    kinds = st.sampled_from(["keep"] * 6 + ["cut", "byte", "pad"])
    return draw(st.lists(
        st.tuples(st.sampled_from(picks), kinds, st.integers(0, 120), st.integers(0, 255),
                  GAP, st.integers(0, 70000)),
        min_size=1, max_size=40,
    ))


def _mutate(frame: bytes, kind: str, n: int, v: int) -> bytes:
    if kind == "cut":
        return frame[:n]
    if kind == "byte" and n < len(frame):
        return frame[:n] + bytes([v]) + frame[n + 1 :]
    if kind == "pad":
        return frame + bytes(n % 16)
    return frame


def _flow_state(table: FlowTable) -> list[tuple[Any, ...]]:
    return sorted(
        (tuple(repr(getattr(f, s)) for s in Flow.__slots__ if s != "app_state")
         for f in table.flows()),
    )


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=packet_ops(), busy=st.sets(st.integers(0, 30), max_size=4))
def test_c_lane_equals_python_lane(ops: list[tuple[int, str, int, int, float, int]],
                                   busy: set[int]) -> None:
    """Both lanes, each in front of its own table and layered path, see the same packets:
    same decisions, same flows, slot for slot. Some flows get app_state (detection work)."""
    ended: list[list[str]] = [[], []]
    tables = [FlowTable(lambda f, r, i=i: ended[i].append(r), max_flows=16) for i in (0, 1)]
    lanes = [py_fast_lane(tables[0]),
             _fastcore.Lane(tables[1], Flow, "syn_sent", 15.0)]
    decoders = [Decoder(), Decoder()]
    ts = T0
    for index, kind, n, v, gap, wirelen in ops:
        frame = _mutate(BASE[index], kind, n, v)
        ts += gap
        took = [lane(frame, ts, wirelen) for lane in lanes]
        assert took[0] == took[1], (frame.hex(), ts)
        event(f"lane took: {took[0]}")
        if not took[0]:
            for i in (0, 1):
                meta = decoders[i].decode(linktypes.ETHERNET, frame, ts, wirelen)
                if meta is not None and meta.ip_version and not (
                    meta.fragment and meta.payload_offset == meta.payload_end
                ):
                    flow, _ = tables[i].update(meta)
                    if tables[i].created in busy:
                        flow.app_state = "busy"  # a parser still wants this flow
        assert _flow_state(tables[0]) == _flow_state(tables[1])
    assert ended[0] == ended[1]
    assert decoders[0].malformed == decoders[1].malformed


@pytest.mark.parametrize("c", [False, True], ids=["python", "c"])
@pytest.mark.parametrize("proto", ["udp", "tcp"])
def test_lane_idle_timeout_between_sweeps(c: bool, proto: str) -> None:
    """Quiet longer than 15 s but within its own timeout: counted. Past its timeout before
    the next sweep is due: left to FlowTable, which ends it and starts a new flow."""
    timeout = 120.0 if proto == "udp" else 300.0
    l4 = UDP(sport=5353, dport=53) if proto == "udp" else TCP(sport=40000, dport=443, flags="A")
    a = bytes(Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / l4 / b"a")
    b = bytes(Ether() / IP(src="10.0.0.3", dst="10.0.0.4") / UDP(sport=1, dport=2) / b"b")
    ends: list[tuple[bytes, str]] = []
    table = FlowTable(lambda f, r: ends.append((f.client_ip, r)))
    lane = (_fastcore.Lane(table, Flow, "syn_sent", 15.0) if c else py_fast_lane(table))
    decoder = Decoder()

    def layered(frame: bytes, ts: float) -> None:
        meta = decoder.decode(linktypes.ETHERNET, frame, ts, len(frame))
        assert meta is not None
        table.update(meta)

    layered(a, T0)  # creates A; the first sweep runs, the next is due at T0 + 5
    layered(b, T0 + timeout - 20)  # a sweep: A is quiet, not yet idle
    assert lane(a, T0 + timeout - 19, 60)  # quiet > 15 s, < its timeout: the lane counts it
    layered(b, T0 + 2 * timeout - 20)  # a sweep: A stays (quiet timeout - 1 s)
    assert not lane(a, T0 + 2 * timeout - 18.5, 60)  # past its timeout, no sweep due
    layered(a, T0 + 2 * timeout - 18.5)
    assert (bytes([10, 0, 0, 1]), "idle") in ends  # and a new flow for the packet:
    assert any(f.client_ip == bytes([10, 0, 0, 1]) and f.packets == 1 for f in table.flows())


@given(frame=st.binary(max_size=200), ts=st.floats(allow_nan=True, allow_infinity=True),
       wirelen=st.integers(-5, 2**70))
def test_c_lane_survives_anything(frame: bytes, ts: float, wirelen: int) -> None:
    table = FlowTable(lambda f, r: None)
    decoder = Decoder()
    for raw in BASE[:8]:  # a few live flows for arbitrary frames to hit
        meta = decoder.decode(linktypes.ETHERNET, raw, T0, 60)
        assert meta is not None
        table.update(meta)
    lane = _fastcore.Lane(table, Flow, "syn_sent", 15.0)
    assert lane(frame, ts, wirelen) in (True, False)
    assert lane(BASE[1][:-1], T0 + 1, wirelen) in (True, False)


def test_c_lane_refuses_foreign_flows() -> None:
    class NotAFlow:
        __slots__ = ("key",)

    with pytest.raises(TypeError, match="not a __slots__ attribute"):
        _fastcore.Lane(FlowTable(lambda f, r: None), NotAFlow, "syn_sent", 15.0)
    with pytest.raises(AttributeError):
        _fastcore.Lane(object(), Flow, "syn_sent", 15.0)  # not a FlowTable


def test_c_lane_counts_without_leaking() -> None:
    table = FlowTable(lambda f, r: None)
    decoder = Decoder()
    syn, ack = BASE[0], BASE[1]  # untagged IPv4 TCP SYN, then ACK of the same flow
    for raw in (syn, ack):
        meta = decoder.decode(linktypes.ETHERNET, raw, T0, 60)
        assert meta is not None
        table.update(meta)
    lane = _fastcore.Lane(table, Flow, "syn_sent", 15.0)
    (flow,) = table.flows()
    ts = T0 + 1.0
    assert lane(ack, ts, 60)  # the flow now holds ts: later calls replace it with itself
    before = (len(gc.get_objects()), sys.getrefcount(ack), sys.getrefcount(ts))
    for _ in range(20000):
        assert lane(ack, ts, 60)
    after = (len(gc.get_objects()), sys.getrefcount(ack), sys.getrefcount(ts))
    assert flow.packets_c2s == 20003 and flow.bytes_c2s == 60 * 20003
    assert after[1:] == before[1:]
    assert after[0] - before[0] <= 1  # the `before` tuple itself


# --- the C walker against the Python walker --------------------------------------------------

def read(path: Path, monkeypatch: pytest.MonkeyPatch, off: bool) -> tuple[Any, ...]:
    with no_c(monkeypatch, off):
        try:
            source = open_capture(path)
        except CaptureError as exc:
            return ("open", str(exc))
        frames = []
        try:
            for f in source.frames():
                frames.append(f)
        except CaptureError as exc:
            source.close()  # type: ignore[attr-defined]
            return ("read", str(exc), frames, source.warnings)
        return ("ok", frames, source.warnings)


records = st.lists(
    st.tuples(
        st.integers(0, 2**32 - 1),  # seconds
        st.integers(0, 2**32 - 1),  # fraction (may exceed the scale, as in the wild)
        st.binary(max_size=80),  # data
        st.integers(0, 2**32 - 1),  # wirelen
        st.sampled_from([None, None, None, 0, 1, 2**31, MAX_CAPLEN, MAX_CAPLEN + 1]),  # caplen lie
    ),
    max_size=12,
)


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(recs=records, big=st.booleans(), ns=st.booleans(), tail=st.binary(max_size=40),
       gz=st.booleans())
def test_c_walker_equals_python_walker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       recs: list[tuple[int, int, bytes, int, int | None]],
                                       big: bool, ns: bool, tail: bytes, gz: bool) -> None:
    o = ">" if big else "<"
    head = struct.pack(o + "IHHiIII", 0xA1B23C4D if ns else 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    body = b"".join(
        struct.pack(o + "IIII", sec, frac, len(data) if lie is None else lie, wl) + data
        for sec, frac, data, wl, lie in recs
    )
    data = head + body + tail
    path = tmp_path / "f.pcap"
    path.write_bytes(gzip.compress(data) if gz else data)
    assert read(path, monkeypatch, False) == read(path, monkeypatch, True)


@pytest.mark.parametrize("gz", [False, True])
def test_c_walker_across_chunks_big_records_and_truncation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gz: bool
) -> None:
    frames = [(T0 + i * 0.001, os.urandom(40 + (i * 37) % 1500)) for i in range(2500)]
    frames.insert(700, (T0 + 0.7, os.urandom(MAX_CAPLEN)))  # a record longer than a chunk
    frames.insert(1500, (T0 + 1.5, os.urandom(CHUNK_SIZE - 5)))
    raw = pcap_bytes(linktypes.ETHERNET, frames, nanosecond=True)
    for cut in (len(raw), len(raw) - 3, len(raw) - 600, len(raw) - 16 - 1000 - 5):
        path = tmp_path / f"f{cut}.pcap"
        path.write_bytes(gzip.compress(raw[:cut]) if gz else raw[:cut])
        c, py = read(path, monkeypatch, False), read(path, monkeypatch, True)
        assert c == py
        assert c[0] == "ok"
        assert len(c[1]) >= 2500 and (cut == len(raw)) == (not c[2])


@pytest.mark.parametrize("linktype", [linktypes.ETHERNET, linktypes.RAW])
def test_c_walker_progress_and_ticks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     linktype: int) -> None:
    """The reader ticks for the analyzer, lane or not (no lane for other link types)."""
    n = 3 * TICK_EVERY + 5
    frame = BASE[1] if linktype == linktypes.ETHERNET else BASE[1][14:]
    raw = pcap_bytes(linktype, [(T0 + i * 0.001, frame) for i in range(n)])
    path = tmp_path / "ticks.pcap"
    path.write_bytes(raw)
    seen: list[int] = []
    with no_c(monkeypatch, False):
        source = open_capture(path)
        analyzer = Analyzer(core_only=True)
        assert analyzer.run(source.frames(), lambda: seen.append(source.bytes_read)) == n
    assert len(seen) == n // TICK_EVERY
    assert seen == sorted(seen) and seen[0] > 0 and source.bytes_read == len(raw)
    assert analyzer.packets == n and analyzer.bytes == n * len(frame)


def test_c_walker_refill_contract() -> None:
    calls: list[tuple[int, int]] = []

    def refill(buf: Any, pos: int, count: int) -> Any:
        calls.append((pos, count))
        return [b"", 0] if len(calls) == 1 else (b"\x00" * 4, 9)

    w = _fastcore.PcapWalker(b"", 0, False, 1e6, 1, MAX_CAPLEN, refill)
    with pytest.raises(TypeError, match="refill must return"):
        next(w)
    with pytest.raises(ValueError, match="outside the buffer"):
        next(w)
    with pytest.raises(ValueError):
        _fastcore.PcapWalker(b"abc", 4, False, 1e6, 1, MAX_CAPLEN, refill)


def test_c_walker_refuses_reentry(tmp_path: Path) -> None:
    walker: Any = None

    def refill(buf: Any, pos: int, count: int) -> Any:
        return next(walker)  # a refill that iterates the walker it serves

    walker = _fastcore.PcapWalker(b"", 0, False, 1e6, 1, MAX_CAPLEN, refill)
    with pytest.raises(ValueError, match="already executing"):
        next(walker)


def test_c_walker_survives_a_tick_that_detaches_its_lane() -> None:
    """A tick that detaches (and so releases) the lane the walker is running: the walker
    held only a borrowed pointer to it before, a use after free once the last other
    reference went."""
    n = 3 * TICK_EVERY
    raw = pcap_bytes(linktypes.ETHERNET, [(T0 + i * 0.001, BASE[1]) for i in range(n)])
    walker = _fastcore.PcapWalker(raw, 24, False, 1e6, linktypes.ETHERNET, MAX_CAPLEN,
                                  lambda buf, pos, count: None)
    table = FlowTable(lambda f, r: None)
    walker.attach(_fastcore.Lane(table, Flow, "syn_sent", 15.0),
                  lambda: walker.detach(), TICK_EVERY)
    gc.collect()
    assert sum(1 for _ in walker) <= n  # runs to the end, no crash
