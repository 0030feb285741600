"""Fuzz targets: one function per attack surface, ``(data: bytes) -> None``.

A target returns normally for every input the code under test handles as documented and
raises for anything else: an exception escaping the code (a crash), or ``InvariantError``
when an output contract is broken (``invariants``). The same functions run under atheris
(``tests.fuzz.runner``), under the pure-Python fallback engine, and in-process in the
regression replay test, so a crash input replays identically everywhere.

Targets (documented exceptions in brackets; everything else is a finding):

* ``decode``: ``Decoder.decode`` over every supported link type; fast path == layered path.
* ``capture``: pcap / pcapng / gzip files through ``open_capture``; the C record walker and
  the Python one give the same frames, warnings and errors [``CaptureError``].
* ``reassembly``: ``TcpReassembler`` on segment lists: true bytes at true offsets, limits.
* ``<parser>``: each registered parser. Stream parsers per direction, split two ways (same
  observations); datagram and frame parsers; every probe on every prefix.
* ``dicom_dataset``: DICOM data sets with group 0010 canaries placed by the harness.
* ``policy``: ``parse_policy``; a loaded policy round-trips through ``to_yaml``
  [``PolicyError``].
* ``fastcore_lane``: ``agent._fastcore.Lane`` against ``agent.fastlane``.
* ``analyze``: frames through the whole ``Analyzer`` and ``build_report``.
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.capture import CaptureError, linktypes
from agent.capture.files import open_capture
from agent.decode import Decoder, PacketMeta, _fast_ethernet_ipv4
from agent.reassembly import DATA, EOF, GAP, ReassemblyBudget, TcpReassembler
from collector.policy import PolicyError, parse_policy
from parsers.base import (
    DatagramParser,
    Direction,
    FlowKey,
    L2Frame,
    Observation,
    Parser,
    StreamParser,
    TcpSyn,
)
from parsers.registry import (
    LLC,
    MAX_PROBE_BYTES,
    FrameSpec,
    ParserSpec,
    Probe,
    SynSpec,
    default_registry,
)
from tests.fuzz import formats
from tests.fuzz.invariants import (
    InvariantError,
    check_bounded,
    check_observations,
    hl7_canaries,
    http_canaries,
    scrub,
)

Target = Callable[[bytes], None]

_REGISTRY = default_registry()
STREAM_SPECS: dict[str, ParserSpec] = {
    s.name: s for s in _REGISTRY if s.name in ("dicom", "hl7", "http", "tls")
}
DATAGRAM_SPECS: dict[str, ParserSpec] = {s.name: s for s in _REGISTRY if s.name not in STREAM_SPECS}
FRAME_SPECS: dict[str, FrameSpec] = {
    spec.name: spec for specs in _REGISTRY.frame_specs.values() for spec in specs
}
SYN_SPECS: dict[str, SynSpec] = {spec.name: spec for spec in _REGISTRY.syn_specs}

CLIENT4, SERVER4 = "10.1.0.5", "10.2.0.9"
CLIENT6, SERVER6 = "fd00::5", "fd00::9"


def _fail(message: str) -> InvariantError:
    return InvariantError(message)


# --- stream and datagram parsers ----------------------------------------------------------------


def _new_parser(spec: ParserSpec, flow: FlowKey) -> Parser:
    """A fresh parser; HL7 parsers get a fresh signature cache per input (determinism)."""
    if spec.name == "hl7":
        from parsers.hl7.parser import Hl7Parser
        from parsers.hl7.signature import SignatureCache

        return Hl7Parser(flow, SignatureCache())
    return spec.factory(flow)


def _prepare(name: str, ops: list[formats.Op]) -> list[formats.Op]:
    """Scrub the fuzzer's canaries; place the harness's own where patient data lives."""
    out: list[formats.Op] = []
    started: set[Direction] = set()
    for op in ops:
        if op.kind != formats.DATA:
            out.append(op)
            continue
        data = scrub(op.data)
        if name == "hl7":
            data = hl7_canaries(data)
        elif name == "http":
            data = http_canaries(data, op.direction not in started)
        started.add(op.direction)
        out.append(formats.Op(formats.DATA, op.direction, data, len(data)))
    return out


def _obs_key(obs: Observation) -> tuple[Any, ...]:
    return (obs.kind, obs.host, obs.value, obs.ts, obs.port, obs.raw, obs.confidence)


def run_stream(
    spec: ParserSpec, ops: list[formats.Op], seed: int | None, parser: Parser | None = None
) -> tuple[Parser, list[Observation]]:
    """Feed ``ops`` to a new parser, each DATA op whole (``seed`` None) or split by ``seed``;
    both directions end at the end. Checks the parser's bounds after every step."""
    flow = FlowKey(CLIENT4, 40000, SERVER4, min(spec.port_hints, default=4242))
    parser = parser if parser is not None else _new_parser(spec, flow)
    out: list[Observation] = []
    for i, op in enumerate(ops):
        ts = 1_700_000_000.0 + i
        if op.kind == formats.DATA:
            pieces = [op.data] if seed is None else formats.splits(seed + i, op.data)
            for piece in pieces:
                out += parser.feed(op.direction, piece, ts)
        elif op.kind == formats.GAP:
            parser.gap(op.direction, op.size)
        else:
            out += parser.eof(op.direction)
        check_bounded(parser)
    for d in Direction:
        out += parser.eof(d)
    check_bounded(parser)
    return parser, out


def _check_probe(spec: ParserSpec, direction: Direction, data: bytes, stream: bool) -> None:
    """Every probe answers a Probe and never raises; for a stream, a NO on a prefix stays a NO
    on the longer prefixes (else detection depends on how the first bytes were segmented)."""
    said_no = None
    for cut in sorted({0, 1, 3, 8, 20, len(data) // 2, min(len(data), MAX_PROBE_BYTES)}):
        verdict = spec.probe(direction, data[:cut])  # no try: a raising probe is a bug
        if not isinstance(verdict, Probe):
            raise _fail(f"{spec.name} probe returned {verdict!r}")
        if stream and said_no is not None and verdict is not Probe.NO:
            raise _fail(f"{spec.name} probe: NO at {said_no} bytes, {verdict.value} at {cut}")
        if verdict is Probe.NO and said_no is None and cut:  # nobody probes 0 bytes
            said_no = cut


def stream_target(name: str) -> Target:
    spec = STREAM_SPECS[name]

    def target(data: bytes) -> None:
        seed, ops = formats.stream_ops(data)
        ops = _prepare(name, ops)
        for d in Direction:
            first = b"".join(op.data for op in ops if op.kind == formats.DATA and op.direction is d)
            _check_probe(spec, d, first[:MAX_PROBE_BYTES], stream=True)
        _, whole = run_stream(spec, ops, None)
        check_observations(name, whole)
        _, split = run_stream(spec, ops, seed)
        if [_obs_key(o) for o in split] != [_obs_key(o) for o in whole]:
            raise _fail(f"{name}: observations depend on segmentation (seed {seed})")

    target.__doc__ = f"{name}: stream parser, per direction, split independence, probes"
    return target


def datagram_ops(data: bytes, spec: ParserSpec) -> tuple[FlowKey, list[tuple[Direction, bytes]]]:
    """Byte 0 picks the flow (bits 0-2 a port hint or 40001, bit 3 IPv6); then records."""
    if not data:
        return FlowKey(CLIENT4, 40000, SERVER4, 0, "udp"), []
    ports = sorted(spec.port_hints) + [40001]
    port = ports[(data[0] & 7) % len(ports)]
    v6 = bool(data[0] & 8)
    client, server = (CLIENT6, SERVER6) if v6 else (CLIENT4, SERVER4)
    client_port = 68 if port == 67 else 546 if port == 547 else 40000
    flow = FlowKey(client, client_port, server, port, "udp")
    return flow, [(formats.direction(c), payload) for c, _, payload in formats.records(data, 1)]


def datagram_target(name: str) -> Target:
    spec = DATAGRAM_SPECS[name]

    def target(data: bytes) -> None:
        flow, grams = datagram_ops(data, spec)
        parser = spec.factory(flow)
        if not isinstance(parser, DatagramParser | StreamParser):
            raise _fail(f"{name}: factory made {type(parser).__name__}")
        out: list[Observation] = []
        for i, (direction, payload) in enumerate(grams):
            payload = scrub(payload)
            _check_probe(spec, direction, payload, stream=False)
            out += parser.feed(direction, payload, 1_700_000_000.0 + i)
            check_bounded(parser)
        for d in Direction:
            out += parser.eof(d)
        check_observations(name, out)

    target.__doc__ = f"{name}: datagram parser and probe, one record per datagram"
    return target


def frame_target(name: str) -> Target:
    spec = FRAME_SPECS[name]
    llc = LLC in spec.ethertypes

    def target(data: bytes) -> None:
        payload = scrub(data)
        ethertype = min(len(payload), 1500) if llc else min(spec.ethertypes)
        for vlan in (None, 20):
            frame = L2Frame("00:09:fb:00:00:01", "01:80:c2:00:00:0e", vlan, ethertype,
                            payload, 1_700_000_000.0)
            check_observations(name, spec.parse(frame))

    target.__doc__ = f"{name}: frame parser on one L2 payload"
    return target


def syn_target(name: str) -> Target:
    spec = SYN_SPECS[name]

    def target(data: bytes) -> None:
        if len(data) < 4:
            return
        ttl, window = data[0], int.from_bytes(data[1:3], "big")
        version = 6 if data[3] & 1 else 4
        syn = TcpSyn(CLIENT4, 104, version, ttl, window, data[4:64], 1_700_000_000.0)
        check_observations(name, spec.observe(syn))

    target.__doc__ = f"{name}: SYN observer on TTL, window and raw options"
    return target


# --- DICOM data sets with canaries placed by the harness ----------------------------------------

_DICOM_SYNTAXES = ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2")
_CT = "1.2.840.10008.5.1.4.1.1.2"
_PATIENT_TAGS = (0x00100010, 0x00100020, 0x00100030, 0x00101040, 0x00080080, 0x00080090)
_PATIENT_VRS = (b"PN", b"LO", b"DA", b"LO", b"LO", b"PN")
_LONG = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR",
                   b"UT", b"UV"})


def _uid(text: str) -> bytes:
    raw = text.encode()
    return raw + b"\0" if len(raw) % 2 else raw


def _item(kind: int, body: bytes) -> bytes:
    return struct.pack(">BBH", kind, 0, len(body)) + body


def _pdu(kind: int, body: bytes) -> bytes:
    return struct.pack(">BBI", kind, 0, len(body)) + body


def _associate(kind: int, syntax: str) -> bytes:
    if kind == 1:
        pc = _item(0x20, b"\x01\0\0\0" + _item(0x30, _uid(_CT)) + _item(0x40, _uid(syntax)))
    else:
        pc = _item(0x21, b"\x01\0\0\0" + _item(0x40, _uid(syntax)))
    user = _item(0x50, _item(0x51, struct.pack(">I", 16384))
                 + _item(0x52, _uid("1.2.840.113619.6.374")) + _item(0x55, b"FUZZ_CT"))
    head = struct.pack(">HH", 1, 0) + b"ANY-SCP".ljust(16) + b"CT_FUZZ".ljust(16) + bytes(32)
    return _pdu(kind, head + _item(0x10, _uid("1.2.840.10008.3.1.1.1")) + pc + user)


def _element(tag: int, vr: bytes, value: bytes, syntax: int, declared: int | None = None) -> bytes:
    big = syntax == 2
    end = ">" if big else "<"
    length = len(value) if declared is None else declared
    head = struct.pack(end + "HH", tag >> 16, tag & 0xFFFF)
    if syntax == 0:
        return head + struct.pack("<I", length & 0xFFFFFFFF) + value
    if vr in _LONG:
        return head + vr + b"\0\0" + struct.pack(end + "I", length & 0xFFFFFFFF) + value
    return head + vr + struct.pack(end + "H", length & 0xFFFF) + value


def _command(syntax: int) -> bytes:
    body = _element(0x00000002, b"UI", _uid(_CT), 0)
    body += _element(0x00000100, b"US", struct.pack("<H", 1), 0)  # C-STORE-RQ
    body += _element(0x00000110, b"US", struct.pack("<H", 7), 0)
    body += _element(0x00000800, b"US", struct.pack("<H", 0), 0)
    return _element(0x00000000, b"UL", struct.pack("<I", len(body)), 0) + body


def dicom_dataset_conversation(data: bytes) -> tuple[int, list[formats.Op]]:
    """Byte 0: syntax (bits 0-1) and split seed; records: ``ctrl`` bit 0 puts a canary patient
    element before this element, bit 1 lies about its length (declared = the record's length
    field), bit 2 puts it in a sequence item; data = tag(4, little endian) VR(2) value."""
    if not data:
        return 0, []
    syntax_index = (data[0] & 3) % 3
    syntax = _DICOM_SYNTAXES[syntax_index]
    body = b""
    patient = 0
    for ctrl, length, raw in formats.records(data, 1):
        if ctrl & 1:
            i = patient % len(_PATIENT_TAGS)
            value = b"CANARY^PATIENT^" + str(patient).encode()
            body += _element(_PATIENT_TAGS[i], _PATIENT_VRS[i], value + b" " * (len(value) % 2),
                             syntax_index)
            patient += 1
        if len(raw) < 6:
            body += scrub(raw)
            continue
        tag = int.from_bytes(raw[:4], "little")
        vr, value = raw[4:6], scrub(raw[6:])
        declared = length if ctrl & 2 else None
        element = _element(tag, vr, value, syntax_index, declared)
        if ctrl & 4:  # inside one item of (0040,0100) Scheduled Procedure Step Sequence
            item = struct.pack("<HHI", 0xFFFE, 0xE000, len(element)) + element
            element = _element(0x00400100, b"SQ", item, syntax_index)
        body += element
    messages = [(0x03, _command(syntax_index))]  # command, last fragment
    pieces = [body[i : i + 4000] for i in range(0, len(body), 4000)] or [b""]
    for n, piece in enumerate(pieces):
        messages.append((0x02 if n == len(pieces) - 1 else 0x00, piece))
    pdata = [_pdu(4, struct.pack(">IBB", len(d) + 2, 1, mch) + d) for mch, d in messages]
    ts, tc = Direction.TO_SERVER, Direction.TO_CLIENT
    ops = [formats.Op(formats.DATA, ts, _associate(1, syntax)),
           formats.Op(formats.DATA, tc, _associate(2, syntax))]
    ops += [formats.Op(formats.DATA, ts, p) for p in pdata]
    return data[0] >> 2, ops


def dicom_dataset(data: bytes) -> None:
    """DICOM data sets built from fuzzer elements, patient elements placed by the harness."""
    seed, ops = dicom_dataset_conversation(data)
    if not ops:
        return
    spec = STREAM_SPECS["dicom"]
    _, whole = run_stream(spec, ops, None)
    check_observations("dicom", whole)
    _, split = run_stream(spec, ops, seed)
    if [_obs_key(o) for o in split] != [_obs_key(o) for o in whole]:
        raise _fail("dicom: data set observations depend on segmentation")


# --- frame decode -------------------------------------------------------------------------------

LINKTYPES = sorted(linktypes.SUPPORTED)


def _slots(meta: PacketMeta) -> tuple[Any, ...]:
    return tuple(getattr(meta, s) for s in PacketMeta.__slots__)


def decode(data: bytes) -> None:
    """Byte 0 picks the link type; the rest is the frame."""
    if not data:
        return
    linktype = LINKTYPES[data[0] % len(LINKTYPES)]
    frame = data[1:]
    decoder = Decoder()
    meta = decoder.decode(linktype, frame, 1.0, len(frame))
    if meta is None:
        if sum(decoder.malformed.values()) != 1:
            raise _fail("decode: None without exactly one malformed count")
        return
    if not 0 <= meta.payload_offset <= meta.payload_end <= len(frame):
        raise _fail(f"decode: payload {meta.payload_offset}..{meta.payload_end} of {len(frame)}")
    if meta.ip_version and not 0 <= meta.l4_offset <= meta.payload_offset:
        raise _fail("decode: l4 offset outside the frame")
    for vid in (meta.vlan, meta.inner_vlan):
        if vid is not None and not 0 <= vid <= 4095:
            raise _fail(f"decode: VLAN id {vid}")
    if meta.ip_version == 4 and len(meta.src_ip) != 4 or meta.ip_version == 6 and len(
        meta.src_ip) != 16:
        raise _fail("decode: address length does not match the IP version")
    if linktype == linktypes.ETHERNET and _fast_ethernet_ipv4(frame, 1.0, len(frame)) is not None:
        layered = Decoder()._ethernet(frame, 1.0, len(frame))
        if layered is None or _slots(layered) != _slots(meta):
            raise _fail("decode: fast path and layered path disagree")


# --- capture files ------------------------------------------------------------------------------

_TMP = Path(tempfile.gettempdir()) / f"medtap-fuzz-{os.getpid()}"


@contextlib.contextmanager
def _env(no_c: bool) -> Iterator[None]:
    old = os.environ.get("MEDTAP_NO_C")
    if no_c:
        os.environ["MEDTAP_NO_C"] = "1"
    else:
        os.environ.pop("MEDTAP_NO_C", None)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("MEDTAP_NO_C", None)
        else:
            os.environ["MEDTAP_NO_C"] = old


def _read_capture(path: Path, no_c: bool) -> tuple[Any, ...]:
    with _env(no_c):
        try:
            source = open_capture(path)
        except CaptureError as exc:
            return ("open", str(exc))
        frames = []
        try:
            for ts, linktype, frame, wirelen in source.frames():
                if not isinstance(frame, bytes) or len(frame) > 256 * 1024:
                    raise _fail(f"capture: frame of {type(frame).__name__} {len(frame)}")
                frames.append((ts, linktype, frame, wirelen))
        except CaptureError as exc:
            with contextlib.suppress(Exception):
                source.close()  # type: ignore[attr-defined]
            return ("read", str(exc), frames, list(source.warnings))
        return ("ok", frames, list(source.warnings))


def capture_file(data: bytes) -> bytes:
    """The file a ``capture`` input stands for."""
    body = data[2:] if data[0] & 1 else data[1:]
    if data[0] & 1 and len(data) > 1:
        import gzip

        packed = gzip.compress(body, mtime=0)
        body = packed[: max(1, len(packed) * (data[1] + 1) // 256)]
    return body


def capture(data: bytes) -> None:
    """The input is a capture file; byte 0 bit 0 set: gzip the rest (cut at byte 1 of 256ths).

    Read with the C record walker and with the Python one: same frames, warnings and errors.
    """
    if not data:
        return
    _TMP.mkdir(exist_ok=True)
    path = _TMP / "capture"
    path.write_bytes(capture_file(data))
    c = _read_capture(path, no_c=False)
    py = _read_capture(path, no_c=True)
    if c != py:
        raise _fail(f"capture: C and Python readers disagree: {c[0]} vs {py[0]}")


# --- TCP reassembly -----------------------------------------------------------------------------

_TRUTH = bytes((i * 197 + (i >> 8) * 31 + (i >> 16) * 7) & 0xFF for i in range(1 << 17))


def reassembly(data: bytes) -> None:
    """Byte 0: mode (bit 0: segments are true slices of a known stream, else raw), window
    and segment limits (bits 1-3); bytes 1-8: ISNs. Records: ``ctrl`` bit 0 direction, bit 1
    SYN, bit 2 FIN, bit 3 RST (rare: only with bit 4 too); data = offset/seq (4) + payload
    (raw mode) or offset (4) + length (2) (true mode)."""
    if len(data) < 9:
        return
    truthful = bool(data[0] & 1)
    window = (512, 4096, 65536, 1 << 18)[(data[0] >> 1) & 3]
    max_segments = 4 if data[0] & 8 else 256
    budget = ReassemblyBudget(8192 if data[0] & 16 else 1 << 24)
    isn = (int.from_bytes(data[1:5], "big"), int.from_bytes(data[5:9], "big"))
    reasm = TcpReassembler(window=window, max_segments=max_segments, budget=budget)
    offset = {True: 0, False: 0}  # next stream offset expected per direction (data + gaps)
    ended = {True: False, False: False}
    if truthful:  # a SYN first, so stream offset 0 is offset 0 of _TRUTH
        for to_server in (True, False):
            reasm.segment(to_server, isn[0 if to_server else 1], 0x02, b"", 0.0)
    last_ts = 0.0
    for n, (ctrl, _, raw) in enumerate(formats.records(data, 9)):
        to_server = not ctrl & 1
        flags = (0x02 if ctrl & 2 else 0) | (0x01 if ctrl & 4 else 0)
        if ctrl & 8 and ctrl & 16:
            flags |= 0x04
        if len(raw) < 4:
            continue
        where = int.from_bytes(raw[:4], "big")
        if truthful:
            start = where % (1 << 16)
            length = int.from_bytes(raw[4:6], "big") % 2048 if len(raw) >= 6 else 0
            payload = _TRUTH[start : start + length]
            seq = (isn[0 if to_server else 1] + 1 + start) & 0xFFFFFFFF
            if flags & 0x02:
                seq, payload = isn[0 if to_server else 1], b""  # SYN: the ISN, no data
        else:
            seq, payload = where, raw[4:]
        last_ts = float(n)
        events = reasm.segment(to_server, seq, flags, payload, last_ts)
        _check_events(events, offset, ended, truthful)
        if reasm.held_bytes > 2 * window or reasm.held_segments > 2 * max_segments:
            raise _fail(f"reassembly: holds {reasm.held_bytes} bytes "
                        f"in {reasm.held_segments} segments")
        if budget.used < 0 or budget.used > budget.max_bytes:
            raise _fail(f"reassembly: budget used {budget.used}")
    _check_events(reasm.flush(), offset, ended, truthful)
    if budget.used != 0:
        raise _fail(f"reassembly: {budget.used} budget bytes not released after flush")
    for to_server in (True, False):
        if reasm.delivered(to_server) != offset[to_server]:
            raise _fail("reassembly: delivered() disagrees with the events")


def _check_events(events: list[Any], offset: dict[bool, int], ended: dict[bool, bool],
                  truthful: bool) -> None:
    for ev in events:
        d = ev.to_server
        if ended[d]:
            raise _fail(f"reassembly: {ev.kind} after eof")
        if ev.kind == DATA:
            if ev.size != len(ev.data) or not ev.data:
                raise _fail(f"reassembly: data event of size {ev.size} with {len(ev.data)} bytes")
            if truthful and ev.data != _TRUTH[offset[d] : offset[d] + ev.size]:
                raise _fail(f"reassembly: wrong bytes at stream offset {offset[d]}")
            offset[d] += ev.size
        elif ev.kind == GAP:
            if ev.size <= 0 or ev.data:
                raise _fail(f"reassembly: gap of {ev.size}")
            offset[d] += ev.size
        elif ev.kind == EOF:
            ended[d] = True
        else:
            raise _fail(f"reassembly: event kind {ev.kind!r}")


# --- policy loader ------------------------------------------------------------------------------


def policy(data: bytes) -> None:
    """``parse_policy`` raises only PolicyError; a loaded policy reads back equal."""
    text = data.decode("utf-8", errors="replace")
    try:
        loaded = parse_policy(text, "fuzz.yaml")
    except PolicyError as exc:
        if "\n" in str(exc):
            raise _fail("policy: error message spans lines") from exc
        return
    again = parse_policy(loaded.to_yaml(), "roundtrip.yaml")
    if again.to_dict() != loaded.to_dict():
        raise _fail("policy: to_yaml does not read back equal")


# --- the C fast lane ----------------------------------------------------------------------------

_GAPS = (0.0, 0.001, 1.0, 1.5, 14.9, 15.5, 59.0, 61.0, 119.0, 121.0, 299.0, 301.0, 0.0, 0.5,
         2.0, 5.1)


def fastcore_lane(data: bytes) -> None:
    """Records: ``ctrl`` bits 0-3 the time gap (``_GAPS``), bit 4 "a parser wants this
    flow"; data = one Ethernet frame. The C lane and agent.fastlane, each in front of its own
    table, must take the same frames and leave the same flows."""
    from agent import fastcore
    from agent.fastlane import fast_lane as py_fast_lane
    from agent.flows import Flow, FlowTable, TcpState

    c = fastcore.c_core()
    if c is None:
        return
    ended: list[list[str]] = [[], []]
    def on_end(i: int) -> Callable[[Flow, str], None]:
        return lambda flow, reason: ended[i].append(reason)

    tables = [FlowTable(on_end(i), max_flows=16) for i in (0, 1)]
    lanes = [py_fast_lane(tables[0]), c.Lane(tables[1], Flow, TcpState.SYN_SENT, 15.0)]
    decoders = [Decoder(), Decoder()]
    ts = 1_700_000_000.0
    for ctrl, _, frame in formats.records(data):
        ts += _GAPS[ctrl & 15]
        took = [lane(frame, ts, len(frame) + 4) for lane in lanes]
        if took[0] != took[1]:
            raise _fail(f"fastcore: lanes disagree on a frame ({took})")
        if not took[0]:
            for i in (0, 1):
                meta = decoders[i].decode(linktypes.ETHERNET, frame, ts, len(frame) + 4)
                if meta is not None and meta.ip_version and not (
                    meta.fragment and meta.payload_offset == meta.payload_end
                ):
                    flow, _ = tables[i].update(meta)
                    if ctrl & 16:
                        flow.app_state = "busy"
    states = [sorted(tuple(repr(getattr(f, s)) for s in Flow.__slots__ if s != "app_state")
                     for f in t.flows()) for t in tables]
    if states[0] != states[1] or ended[0] != ended[1]:
        raise _fail("fastcore: flow tables differ after the same frames")


# --- the whole pipeline -------------------------------------------------------------------------


def analyze(data: bytes) -> None:
    """Records: ``ctrl`` bits 0-3 the time gap (``_GAPS``), bit 7 raw IP link type instead of
    Ethernet; data = one frame. No parser may raise (``stats.parser_errors``), every evidence
    kind is allow-listed and canary-free, and the report serialises."""
    from agent.pipeline import Analyzer
    from agent.report import build_report

    analyzer = Analyzer()
    ts = 1_700_000_000.0
    frames = []
    for ctrl, _, frame in formats.records(data):
        ts += _GAPS[ctrl & 15]
        link = linktypes.RAW if ctrl & 0x80 else linktypes.ETHERNET
        frames.append((ts, link, scrub(frame), len(frame)))
    analyzer.run(frames)
    results = analyzer.finish()
    errors = results.stats["parser_errors"]
    if errors:
        raise _fail(f"analyze: parser errors {errors}")
    for ev in analyzer.evidence:
        source = ev.source.split()[0]
        check_observations(source, [Observation(ev.kind, ev.host, ev.value, 0.0)])
    text = json.dumps(build_report(results, []), default=str)
    if "canary" in text.lower():
        raise _fail("analyze: canary in the report")


# --- the table ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TargetInfo:
    name: str
    fn: Target
    max_len: int = 4096  # libFuzzer -max_len


def _all() -> dict[str, TargetInfo]:
    table = [
        TargetInfo("decode", decode, 2048),
        TargetInfo("capture", capture, 16384),
        TargetInfo("reassembly", reassembly, 8192),
    ]
    table += [TargetInfo(n, stream_target(n), 16384) for n in STREAM_SPECS]
    table.append(TargetInfo("dicom_dataset", dicom_dataset, 8192))
    table += [TargetInfo(n, datagram_target(n), 4096) for n in DATAGRAM_SPECS]
    table += [TargetInfo(n, frame_target(n), 2048) for n in FRAME_SPECS]
    table += [TargetInfo(n, syn_target(n), 128) for n in SYN_SPECS]
    table += [
        TargetInfo("policy", policy, 8192),
        TargetInfo("analyze", analyze, 16384),
        TargetInfo("fastcore_lane", fastcore_lane, 4096),  # last: the C extension
    ]
    return {t.name: t for t in table}


TARGETS = _all()
