"""Byte formats of the fuzz inputs: how one flat byte string becomes a conversation.

Every multi-part input is a run of records ``ctrl:u8 len:u16be data[len]``; a record cut by
the end of the input keeps what is there. libFuzzer mutates these bytes directly, so the
format is deliberately dumb: any byte string decodes to *something*, and the seed corpus
(``make_corpus``) writes real conversations from ``pcaps/`` in it.

``ctrl`` per target (bit 0 is always the direction: 0 to the server, 1 to the client):

* stream parsers: bits 1-2 = 0 or 1 data, 2 gap of ``len`` bytes (no data follows),
  3 end of the direction (no data follows). The first input byte seeds the splitter.
* datagram parsers: each record is one datagram.
* reassembly / fast lane / analyze: see the target's docstring.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Iterator
from dataclasses import dataclass

from parsers.base import Direction

_HEAD = struct.Struct(">BH")
DATA, GAP, EOF = "data", "gap", "eof"


def records(data: bytes, start: int = 0) -> Iterator[tuple[int, int, bytes]]:
    """``(ctrl, length field, data)`` records from ``data[start:]``."""
    pos, n = start, len(data)
    while pos + 3 <= n:
        ctrl, length = _HEAD.unpack_from(data, pos)
        pos += 3
        yield ctrl, length, data[pos : pos + length]
        pos += length


def record(ctrl: int, payload: bytes) -> bytes:
    if len(payload) > 0xFFFF:
        raise ValueError("record payload over 65535 bytes")
    return _HEAD.pack(ctrl, len(payload)) + payload


def direction(ctrl: int) -> Direction:
    return Direction.TO_CLIENT if ctrl & 1 else Direction.TO_SERVER


@dataclass(frozen=True, slots=True)
class Op:
    kind: str  # DATA, GAP or EOF
    direction: Direction
    data: bytes = b""
    size: int = 0


def stream_ops(data: bytes) -> tuple[int, list[Op]]:
    """(split seed, operations) of a stream-parser input."""
    if not data:
        return 0, []
    ops: list[Op] = []
    for ctrl, length, payload in records(data, 1):
        kind = (ctrl >> 1) & 3
        d = direction(ctrl)
        if kind == 2:
            ops.append(Op(GAP, d, size=max(1, length)))
        elif kind == 3:
            ops.append(Op(EOF, d))
        else:
            ops.append(Op(DATA, d, payload, len(payload)))
    return data[0], ops


def encode_stream(seed: int, ops: list[Op]) -> bytes:
    out = [bytes([seed & 0xFF])]
    for op in ops:
        bit = 1 if op.direction is Direction.TO_CLIENT else 0
        if op.kind == DATA:
            out.append(record(bit, op.data))
        elif op.kind == GAP:
            out.append(_HEAD.pack(bit | 4, min(op.size, 0xFFFF)))
        else:
            out.append(_HEAD.pack(bit | 6, 0))
    return b"".join(out)


def splits(seed: int, payload: bytes) -> list[bytes]:
    """``payload`` cut into 1..8 pieces at points chosen by ``seed`` (deterministic)."""
    if len(payload) < 2:
        return [payload]
    rng = random.Random(seed * 1_000_003 + len(payload))
    cuts = sorted({rng.randrange(1, len(payload)) for _ in range(rng.randrange(0, 8))})
    bounds = [0, *cuts, len(payload)]
    return [payload[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
