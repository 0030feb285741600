"""Seed corpus for every fuzz target, extracted from ``pcaps/`` (``python -m tests.fuzz corpus``).

Every capture runs through the real ``Analyzer`` with each parser wrapped in a recorder, so
a stream parser's seed is exactly what app detection and reassembly fed it (data per
direction, gaps, ends), a datagram parser's seed the datagrams of one flow, a frame
parser's seed one L2 payload. Raw frames seed ``decode``, ``analyze`` and
``fastcore_lane``; heads of the capture files seed ``capture``; segment lists of TCP flows
seed ``reassembly``; the policies in ``pcaps/``, ``deploy/`` and ``docs/policy.md`` seed
``policy``; a few hand-made data sets seed ``dicom_dataset``.

The corpus is committed and kept small: at most ``PER_TARGET`` files of at most the
target's ``max_len`` each (the whole corpus stays well under 2 MB). Rebuilding it replaces
each ``corpus/<target>/`` folder.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import struct
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.capture import CaptureError, linktypes
from agent.capture.files import open_capture
from agent.decode import Decoder
from agent.pipeline import Analyzer
from parsers.base import Direction, FlowKey, L2Frame, Observation, Parser, TcpSyn
from parsers.registry import FrameSpec, ParserSpec, Registry, SynSpec, default_registry
from tests.fuzz import formats
from tests.fuzz.targets import _GAPS, STREAM_SPECS, TARGETS

FUZZ_DIR = Path(__file__).resolve().parent
REPO = FUZZ_DIR.parents[1]
PCAPS = REPO / "pcaps"
CORPUS = FUZZ_DIR / "corpus"
PER_TARGET = 40
SUFFIXES = (".pcap", ".pcapng", ".gz")


class Recorder:
    """Stands in for a parser: records what it is fed, passes everything on."""

    def __init__(self, inner: Parser, log: list[tuple[str, Direction, bytes, int]]) -> None:
        self._inner = inner
        self._log = log

    def feed(self, direction: Direction, data: bytes, ts: float) -> list[Observation]:
        self._log.append((formats.DATA, direction, bytes(data), len(data)))
        return self._inner.feed(direction, data, ts)

    def gap(self, direction: Direction, size: int) -> None:
        self._log.append((formats.GAP, direction, b"", size))
        self._inner.gap(direction, size)

    def eof(self, direction: Direction) -> list[Observation]:
        self._log.append((formats.EOF, direction, b"", 0))
        return self._inner.eof(direction)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class Harvest:
    def __init__(self) -> None:
        self.flows: dict[str, list[list[tuple[str, Direction, bytes, int]]]] = defaultdict(list)
        self.l2: dict[str, list[bytes]] = defaultdict(list)
        self.syns: list[TcpSyn] = []

    def registry(self) -> Registry:
        base = default_registry()
        reg = Registry()
        for spec in base:
            reg.register(ParserSpec(spec.name, spec.transport, spec.probe,
                                    self._factory(spec), spec.port_hints))
        for specs in base.frame_specs.values():
            for fspec in specs:
                if fspec not in [s for v in reg.frame_specs.values() for s in v]:
                    reg.register_frame(FrameSpec(fspec.name, fspec.ethertypes,
                                                 self._frame(fspec)))
        for sspec in base.syn_specs:
            reg.register_syn(SynSpec(sspec.name, self._syn(sspec)))
        return reg

    def _factory(self, spec: ParserSpec) -> Callable[[FlowKey], Parser]:
        def make(flow: FlowKey) -> Parser:
            log: list[tuple[str, Direction, bytes, int]] = []
            self.flows[spec.name].append(log)
            return Recorder(spec.factory(flow), log)  # type: ignore[return-value]

        return make

    def _frame(self, spec: FrameSpec) -> Callable[[L2Frame], list[Observation]]:
        def parse(frame: L2Frame) -> list[Observation]:
            self.l2[spec.name].append(frame.payload)
            return spec.parse(frame)

        return parse

    def _syn(self, spec: SynSpec) -> Callable[[TcpSyn], list[Observation]]:
        def observe(syn: TcpSyn) -> list[Observation]:
            self.syns.append(syn)
            return spec.observe(syn)

        return observe


def captures() -> list[Path]:
    return sorted(p for p in PCAPS.rglob("*") if p.suffix in SUFFIXES)


def frames_of(path: Path) -> list[tuple[float, int, bytes, int]]:
    try:
        return list(open_capture(path).frames())
    except CaptureError:
        return []


def _gap_index(delta: float) -> int:
    best = min(range(len(_GAPS)), key=lambda i: abs(_GAPS[i] - delta))
    return best


def frame_records(frames: list[tuple[float, int, bytes, int]], limit: int) -> bytes:
    out = []
    size = 0
    last = frames[0][0] if frames else 0.0
    for ts, link, data, _ in frames:
        ctrl = _gap_index(ts - last) | (0x80 if link == linktypes.RAW else 0)
        last = ts
        rec = formats.record(ctrl, data[:0xFFFF])
        if size + len(rec) > limit:
            break
        out.append(rec)
        size += len(rec)
    return b"".join(out)


def flow_groups(frames: list[tuple[float, int, bytes, int]]) -> list[list[Any]]:
    """Frames grouped per conversation (unordered host/port pair); non-IP frames alone."""
    decoder = Decoder()
    groups: dict[Any, list[Any]] = defaultdict(list)
    for i, f in enumerate(frames):
        meta = decoder.decode(f[1], f[2], f[0], f[3])
        if meta is None or not meta.ip_version:
            key: Any = ("l2", i // 8)
        else:
            ends = sorted([(meta.src_ip, meta.sport), (meta.dst_ip, meta.dport)])
            key = (meta.proto, *ends)
        groups[key].append(f)
    return list(groups.values())


def stream_seed(log: list[tuple[str, Direction, bytes, int]], limit: int, seed: int) -> bytes:
    ops = [formats.Op(kind, d, data, size) for kind, d, data, size in log]
    out = formats.encode_stream(seed, [])
    for op in ops:
        piece = formats.encode_stream(0, [op])[1:]
        if len(out) + len(piece) > limit:
            break
        out += piece
    return out


def datagram_seed(log: list[tuple[str, Direction, bytes, int]], spec: ParserSpec,
                  limit: int) -> bytes:
    out = bytes([0])
    for kind, d, data, _ in log:
        if kind != formats.DATA:
            continue
        rec = formats.record(1 if d is Direction.TO_CLIENT else 0, data)
        if len(out) + len(rec) > limit:
            break
        out += rec
    return out


def reassembly_seeds(frames: list[tuple[float, int, bytes, int]]) -> list[bytes]:
    decoder = Decoder()
    per_flow: dict[Any, list[bytes]] = defaultdict(list)
    client: dict[Any, Any] = {}
    for ts, link, data, wirelen in frames:
        meta = decoder.decode(link, data, ts, wirelen)
        if meta is None or meta.proto != 6:
            continue
        ends = tuple(sorted([(meta.src_ip, meta.sport), (meta.dst_ip, meta.dport)]))
        client.setdefault(ends, (meta.src_ip, meta.sport))
        to_client = (meta.src_ip, meta.sport) != client[ends]
        flags = meta.tcp_flags
        ctrl = (1 if to_client else 0) | (2 if flags & 0x02 else 0) | (4 if flags & 0x01 else 0)
        ctrl |= 0x18 if flags & 0x04 else 0
        per_flow[ends].append(formats.record(ctrl, struct.pack(">I", meta.seq) + meta.payload))
    seeds = []
    for recs in per_flow.values():
        body = bytes([6]) + bytes(8)
        for rec in recs:
            if len(body) + len(rec) > 8192:
                break
            body += rec
        seeds.append(body)
    return seeds


def synthetic_reassembly() -> list[bytes]:
    """Truthful-mode seeds: in order, reordered, overlapping, with FIN; ISNs near 2^32."""
    def seg(ctrl: int, start: int, length: int) -> bytes:
        return formats.record(ctrl, struct.pack(">IH", start, length))

    isn = struct.pack(">II", 0xFFFFFF00, 0x7FFFFFF0)
    in_order = b"".join(seg(0, i * 100, 100) for i in range(10))
    shuffled = b"".join(seg(0, i * 100, 100) for i in (3, 1, 0, 2, 5, 4))
    overlap = seg(0, 0, 300) + seg(0, 100, 300) + seg(1, 0, 50) + seg(4, 400, 10)
    return [bytes([7]) + isn + in_order, bytes([3]) + isn + shuffled,
            bytes([1 | 8]) + isn + overlap, bytes([7 | 16]) + isn + shuffled]


def dicom_dataset_seeds() -> list[bytes]:
    def el(ctrl: int, tag: int, vr: bytes, value: bytes) -> bytes:
        return formats.record(ctrl, struct.pack("<I", tag) + vr + value)

    device = [
        el(0, 0x00080016, b"UI", b"1.2.840.10008.5.1.4.1.1.2\0"),
        el(0, 0x00080060, b"CS", b"CT"),
        el(1, 0x00080070, b"LO", b"GE MEDICAL SYSTEMS"),
        el(0, 0x00081010, b"SH", b"CTSTATION01 "),
        el(1, 0x00081090, b"LO", b"Revolution CT "),
        el(0, 0x00181000, b"LO", b"CT-SN-0001"),
        el(1, 0x00181020, b"LO", b"revo_ct_22.1"),
    ]
    worklist = [el(4, 0x00400001, b"AE", b"CT_SCANNER_3"), el(5, 0x00080060, b"CS", b"MR")]
    lie = [el(3, 0x00080070, b"LO", b"GE MEDICAL SYSTEMS"), el(1, 0x00181020, b"LO", b"x1")]
    return [bytes([syntax | (seed << 2)]) + b"".join(body)
            for syntax, seed, body in ((0, 1, device), (1, 2, device), (2, 3, device),
                                       (1, 4, worklist + device), (0, 5, lie + device))]


def policy_seeds() -> list[bytes]:
    texts = [p.read_bytes() for p in sorted(PCAPS.rglob("*.yaml"))]
    texts += [p.read_bytes() for p in sorted((REPO / "deploy").glob("*.yaml"))]
    doc = (REPO / "docs" / "policy.md").read_text()
    texts += [m.encode() for m in re.findall(r"```yaml\n(.*?)```", doc, re.S)]
    return texts


def write(target: str, seeds: list[bytes]) -> int:
    folder = CORPUS / target
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    limit = TARGETS[target].max_len
    kept: dict[str, bytes] = {}
    for seed in seeds:
        seed = seed[:limit]
        if seed:
            kept.setdefault(hashlib.sha1(seed).hexdigest()[:16], seed)
    # spread the picks over the list (captures are in folder order) rather than the head
    items = list(kept.items())
    if len(items) > PER_TARGET:
        step = len(items) / PER_TARGET
        items = [items[int(i * step)] for i in range(PER_TARGET)]
    for name, seed in items:
        (folder / name).write_bytes(seed)
    return len(items)


def main() -> None:
    harvest = Harvest()
    seeds: dict[str, list[bytes]] = defaultdict(list)
    for path in captures():
        frames = frames_of(path)
        if not frames:
            continue
        analyzer = Analyzer(registry=harvest.registry(), use_fast_lane=False)
        analyzer.run(frames)
        analyzer.finish()
        raw = path.read_bytes()
        seeds["capture"].append(b"\x00" + raw[:8000])
        if path.suffix != ".gz":
            seeds["capture"].append(b"\x01\xff" + raw[:8000])
        links = sorted(linktypes.SUPPORTED)
        seen_shapes: set[bytes] = set()
        for _, link, data, _ in frames:
            shape = link.to_bytes(2, "big") + data[:54]
            if shape not in seen_shapes and len(seen_shapes) < 6:
                seen_shapes.add(shape)
                seeds["decode"].append(bytes([links.index(link)]) + data)
        groups = flow_groups(frames)
        for group in groups[:6]:
            seeds["analyze"].append(frame_records(group, 16000))
            if group[0][1] == linktypes.ETHERNET:
                seeds["fastcore_lane"].append(frame_records(group, 4000))
        seeds["reassembly"] += reassembly_seeds(frames)[:3]
    for name, logs in harvest.flows.items():
        for i, log in enumerate(logs):
            if name in STREAM_SPECS:
                seeds[name].append(stream_seed(log, TARGETS[name].max_len, i))
            else:
                spec = next(s for s in default_registry() if s.name == name)
                seeds[name].append(datagram_seed(log, spec, TARGETS[name].max_len))
    for name, payloads in harvest.l2.items():
        seeds[name] += payloads
    for syn in harvest.syns:
        seeds["tcp_syn"].append(bytes([syn.ttl]) + syn.window.to_bytes(2, "big")
                                + bytes([syn.ip_version == 6]) + syn.options)
    seeds["reassembly"] += synthetic_reassembly()
    seeds["dicom_dataset"] = dicom_dataset_seeds()
    seeds["policy"] = policy_seeds()
    total = 0
    for target in TARGETS:
        n = write(target, seeds.get(target, []))
        size = sum(p.stat().st_size for p in (CORPUS / target).iterdir())
        total += size
        print(f"{target:15} {n:3} seeds {size:8} bytes")
    print(f"{'total':15}     {total:8} bytes")


if __name__ == "__main__":
    main()
