"""Hypothesis properties of every registered parser, on the fuzz seeds and arbitrary bytes.

For each parser the registry ships (so a new parser is covered the day it is registered):

* never raises: arbitrary feed/gap/eof sequences, and real conversations with bytes flipped;
* segmentation independence (stream parsers): a real conversation from ``pcaps/`` split at
  points hypothesis chooses gives exactly the observations of the unsplit one;
* bounded memory: after every step the parser's buffers and memo tables are within their
  named limits (``tests.fuzz.invariants.check_bounded``), and a stream that never ends its
  PDU, fed megabytes at a time, neither grows them nor the traced heap;
* output: only allow-listed kinds, no canary patient data.

The per-parser tests (test_dicom.py, test_hl7.py, ...) hold hand-made cases; this file holds
the properties every parser must have.
"""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parsers.base import MAX_BUFFERED, DatagramParser, Direction, FlowKey, StreamParser
from parsers.registry import default_registry
from tests.fuzz import formats
from tests.fuzz.invariants import check_bounded, check_observations
from tests.fuzz.targets import _new_parser, _obs_key, _prepare

CORPUS = Path(__file__).resolve().parent / "fuzz" / "corpus"
REGISTRY = default_registry()
FLOW = FlowKey("10.1.0.5", 40000, "10.2.0.9", 104)


def _kind(spec_name: str) -> type:
    spec = REGISTRY.get(spec_name)
    assert spec is not None
    return type(spec.factory(FlowKey("10.1.0.5", 40000, "10.2.0.9", min(spec.port_hints,
                                                                            default=1))))


STREAM = [s.name for s in REGISTRY if issubclass(_kind(s.name), StreamParser)]
DATAGRAM = [s.name for s in REGISTRY if issubclass(_kind(s.name), DatagramParser)]


def conversations(name: str) -> list[list[formats.Op]]:
    """The seed conversations of a stream parser, canaries placed as the fuzz target does."""
    out = []
    for path in sorted((CORPUS / name).glob("*")):
        _, ops = formats.stream_ops(path.read_bytes())
        if any(op.kind == formats.DATA for op in ops):
            out.append(_prepare(name, ops))
    return out


SEEDS = {name: conversations(name) for name in STREAM}
SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def test_every_parser_is_covered() -> None:
    assert set(STREAM) >= {"dicom", "hl7", "http", "tls"}
    assert set(STREAM) | set(DATAGRAM) == {s.name for s in REGISTRY}
    for name in STREAM:
        assert SEEDS[name], f"no seed conversations for {name}: python -m tests.fuzz corpus"


def _split(data: st.DataObject, ops: list[formats.Op]) -> list[formats.Op]:
    out = []
    for op in ops:
        if op.kind != formats.DATA or len(op.data) < 2:
            out.append(op)
            continue
        cuts = sorted(data.draw(st.sets(st.integers(1, len(op.data) - 1), max_size=6)))
        bounds = [0, *cuts, len(op.data)]
        out += [formats.Op(formats.DATA, op.direction, op.data[a:b], b - a)
                for a, b in zip(bounds, bounds[1:], strict=False)]
    return out


def _same_ts(ops: list[formats.Op], split: list[formats.Op]) -> list[float]:
    """Times for the split ops: each piece gets the time of the op it was cut from."""
    times: list[float] = []
    for i, op in enumerate(ops):
        if op.kind != formats.DATA or len(op.data) < 2:
            times.append(float(i))
        else:
            n = 0
            while n < len(op.data):
                times.append(float(i))
                n += split[len(times) - 1].size
    return times


def _feed(name: str, ops: list[formats.Op], times: list[float] | None = None) -> list[tuple]:  # type: ignore[type-arg]
    spec = REGISTRY.get(name)
    assert spec is not None
    parser = _new_parser(spec, FLOW)
    out = []
    for i, op in enumerate(ops):
        ts = times[i] if times is not None else float(i)
        if op.kind == formats.DATA:
            out += parser.feed(op.direction, op.data, ts)
        elif op.kind == formats.GAP:
            parser.gap(op.direction, op.size)
        else:
            out += parser.eof(op.direction)
        check_bounded(parser)
    for d in Direction:
        out += parser.eof(d)
    check_observations(name, out)
    return [_obs_key(o) for o in out]


@pytest.mark.parametrize("name", STREAM)
@SETTINGS
@given(data=st.data())
def test_stream_parsers_do_not_depend_on_segmentation(name: str, data: st.DataObject) -> None:
    ops = data.draw(st.sampled_from(SEEDS[name]))
    split = _split(data, ops)
    assert _feed(name, split, _same_ts(ops, split)) == _feed(name, ops)


@pytest.mark.parametrize("name", STREAM)
@SETTINGS
@given(data=st.data())
def test_mutated_conversations_never_raise_and_stay_split_independent(
    name: str, data: st.DataObject
) -> None:
    ops = list(data.draw(st.sampled_from(SEEDS[name])))
    for _ in range(data.draw(st.integers(1, 6))):
        i = data.draw(st.integers(0, len(ops) - 1))
        op = ops[i]
        if op.kind == formats.DATA and op.data:
            buf = bytearray(op.data)
            buf[data.draw(st.integers(0, len(buf) - 1))] = data.draw(st.integers(0, 255))
            ops[i] = formats.Op(formats.DATA, op.direction, bytes(buf), len(buf))
    split = _split(data, ops)
    assert _feed(name, split, _same_ts(ops, split)) == _feed(name, ops)


OPS = st.lists(
    st.one_of(
        st.tuples(st.just(formats.DATA), st.sampled_from(Direction), st.binary(max_size=400)),
        st.tuples(st.just(formats.GAP), st.sampled_from(Direction), st.integers(1, 70_000)),
        st.tuples(st.just(formats.EOF), st.sampled_from(Direction), st.just(0)),
    ),
    max_size=16,
)


@pytest.mark.parametrize("name", STREAM + DATAGRAM)
@SETTINGS
@given(raw=OPS)
def test_arbitrary_input_never_raises_and_stays_bounded(name: str, raw: list) -> None:  # type: ignore[type-arg]
    ops = []
    for kind, direction, value in raw:
        if kind == formats.DATA:
            ops.append(formats.Op(kind, direction, value, len(value)))
        elif kind == formats.GAP:
            ops.append(formats.Op(kind, direction, size=value))
        else:
            ops.append(formats.Op(kind, direction))
    _feed(name, _prepare(name, ops))


# Streams that never finish their PDU, for the bounded-memory property: (first bytes, filler).
ENDLESS = {
    "hl7": (b"\x0bMSH|^~\\&|A|B|C|D|20240101||ADT^A01|1|P|2.5\rPID|", b"X" * 65536),
    "dicom": (b"\x04\x00\x00\xff\xff\xf0\x00\x00\xff\xe8\x01\x00", b"\x00" * 65536),
    "http": (b"GET / HTTP/1.1\r\nHost: a\r\nX-Pad: ", b"a" * 65536),
    "tls": (b"\x16\x03\x01\x40\x00\x01\x00\x3f\xfc\x03\x03", b"\x00" * 65536),
}


@pytest.mark.parametrize("name", STREAM)
def test_endless_pdu_keeps_memory_bounded(name: str) -> None:
    """Megabytes of one PDU that never ends: buffers stay within MAX_BUFFERED (or the parser
    gives up), and the traced heap does not grow with the bytes fed."""
    head, filler = ENDLESS.get(name, (b"", b"\x00" * 65536))
    spec = REGISTRY.get(name)
    assert spec is not None
    parser = _new_parser(spec, FLOW)
    parser.feed(Direction.TO_SERVER, head, 0.0)
    tracemalloc.start()
    try:
        for i in range(64):  # 4 MiB
            parser.feed(Direction.TO_SERVER, filler, float(i))
            check_bounded(parser)
            if i == 8:
                base = tracemalloc.get_traced_memory()[0]
        grown = tracemalloc.get_traced_memory()[0] - base
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert grown < 256 * 1024, grown
    assert peak < 4 * MAX_BUFFERED + 1024 * 1024, peak
