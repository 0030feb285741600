"""Passive OS family guess from the SYN that opens a TCP connection (p0f's idea, RFC 9293).

What is read, from ``TcpSyn`` only (the pipeline hands one per connection): the IP TTL /
hop limit, the TCP window, and the TCP options (RFC 9293 3.2: EOL 0, NOP 1, MSS 2,
window scale 3 (RFC 7323), SACK-permitted 4 (RFC 2018), timestamps 8 (RFC 7323)). No
payload is ever looked at.

What is emitted, about the client (the SYN's sender), no port:

* ``tcp.syn_signature``: a p0f-3-like signature ``ver:ittl:mss:wsize,scale:olayout``. It is
  p0f's ``raw_sig`` without ``olen``, ``quirks`` and ``pclass``, which need IP header flags
  and the payload that a ``TcpSyn`` does not carry. ``ittl`` is the observed TTL rounded up
  to 32, 64, 128 or 255; ``wsize`` is written ``mss*N`` when the window is a multiple of
  the MSS, as p0f does; option names are p0f's (``eol+N`` = EOL followed by N bytes).
* ``tcp.ja4t``: FoxIO's JA4T, ``window_options_mss_wscale`` (``00`` for an absent part).
* ``tcp.os_family`` (``Windows``, ``Linux``, ``macOS/iOS``, ``Windows CE``, ``QNX``...) and
  ``tcp.os_label`` (the signature's own label), when a row of
  ``parsers/data/tcp_syn_fingerprints.csv`` matches (first match wins: specific rows first,
  then p0f's catch-alls). Every row cites p0f 3's ``p0f.fp``, p0f 2.0.8's (as shipped by
  Zeek) or FoxIO's JA4T examples.

Confidence is low (0.1-0.3): a SYN shows the *stack*, not the device. An embedded Linux
in an infusion pump looks like any other Linux, tuning sysctls or a NAT/proxy in the path
change the values, and p0f's data is old (2012-2014; p0f 2: 2006). These are never claims;
the classifier may use them as weak hints (a ``Windows CE`` or ``QNX`` stack is rare on
office PCs). A malformed option list is noted in the signature (``...,bad``) and never
raises.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from parsers.base import Observation, TcpSyn
from parsers.knowledge import data_rows
from parsers.registry import SynSpec

MAX_CACHE = 4096  # distinct (ip version, ittl, window, options) tuples remembered
MAX_OPTIONS = 40  # TCP options are at most 40 bytes (data offset 15 words - 20)
OPTION_NAMES = {2: "mss", 3: "ws", 4: "sok", 5: "sack", 8: "ts"}


@dataclass(frozen=True, slots=True)
class SynShape:
    ip_version: int
    ittl: int
    window: int
    mss: int | None
    scale: int | None
    olayout: tuple[str, ...]  # p0f 3 names
    kinds: tuple[int, ...]  # option kinds in order, for JA4T
    bad: bool  # option list ran past its end or had a bad length

    def signature(self) -> str:
        mss = "*" if self.mss is None else str(self.mss)
        if self.mss and self.window and self.window % self.mss == 0:
            wsize = f"mss*{self.window // self.mss}"
        else:
            wsize = str(self.window)
        layout = ",".join(self.olayout) if self.olayout else "none"
        if self.bad:
            layout += ",bad"
        scale = 0 if self.scale is None else self.scale
        return f"{self.ip_version}:{self.ittl}:{mss}:{wsize},{scale}:{layout}"

    def ja4t(self) -> str:
        kinds = "-".join(str(k) for k in self.kinds) or "00"
        mss = "00" if self.mss is None else str(self.mss)
        scale = "00" if self.scale is None else str(self.scale)
        return f"{self.window}_{kinds}_{mss}_{scale}"


def initial_ttl(ttl: int) -> int:
    """Observed TTL rounded up to the usual initial values (p0f's guess)."""
    for start in (32, 64, 128):
        if ttl <= start:
            return start
    return 255


def parse_options(options: bytes) -> tuple[tuple[str, ...], tuple[int, ...], int | None,
                                           int | None, bool]:
    """(p0f layout, kinds, MSS, window scale, bad) of a raw TCP option list; never raises."""
    data = options[:MAX_OPTIONS]
    layout: list[str] = []
    kinds: list[int] = []
    mss: int | None = None
    scale: int | None = None
    i = 0
    while i < len(data):
        kind = data[i]
        if kind == 0:
            kinds.append(0)
            layout.append(f"eol+{len(data) - i - 1}")
            kinds.extend(0 for b in data[i + 1 :] if b == 0)  # JA4T lists trailing zeros
            return tuple(layout), tuple(kinds), mss, scale, False
        if kind == 1:
            kinds.append(1)
            layout.append("nop")
            i += 1
            continue
        if i + 1 >= len(data) or data[i + 1] < 2 or i + data[i + 1] > len(data):
            return tuple(layout), tuple(kinds), mss, scale, True
        size = data[i + 1]
        body = data[i + 2 : i + size]
        kinds.append(kind)
        layout.append(OPTION_NAMES.get(kind, f"?{kind}"))
        if kind == 2 and size == 4:
            mss = int.from_bytes(body, "big")
        elif kind == 3 and size == 3:
            scale = body[0]
        i += size
    return tuple(layout), tuple(kinds), mss, scale, False


def shape_of(syn: TcpSyn) -> SynShape:
    layout, kinds, mss, scale, bad = parse_options(syn.options)
    return SynShape(syn.ip_version, initial_ttl(syn.ttl), syn.window, mss, scale, layout,
                    kinds, bad)


# ---- the signature table ----------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SynRow:
    label: str
    os_family: str
    specificity: str  # "s" specific, "g" generic (p0f's catch-alls)
    ittl: int
    mss: tuple[str, ...]  # alternatives; "*" any
    window: tuple[str, ...]  # "*", "N", "mss*N", "mtu*N", "%N"
    scale: tuple[str, ...]
    olayout: tuple[str, ...]
    confidence: float

    def matches(self, shape: SynShape) -> bool:
        if shape.ittl != self.ittl or shape.olayout != self.olayout or shape.bad:
            return False
        if not _any(self.mss, shape.mss or 0, shape):
            return False
        scale = 0 if shape.scale is None else shape.scale
        return _any(self.scale, scale, shape) and _any(self.window, shape.window, shape)


def _any(alternatives: tuple[str, ...], value: int, shape: SynShape) -> bool:
    return any(_one(alt, value, shape) for alt in alternatives)


def _one(pattern: str, value: int, shape: SynShape) -> bool:
    if pattern == "*":
        return True
    if pattern.startswith("%"):
        modulus = int(pattern[1:])
        return modulus > 0 and value % modulus == 0
    if pattern.startswith(("mss*", "mtu*")):
        if shape.mss is None:
            return False
        unit = shape.mss if pattern.startswith("mss") else shape.mss + (
            40 if shape.ip_version == 4 else 60
        )
        return value == unit * int(pattern[4:])
    return value == int(pattern)


@cache
def signatures() -> tuple[SynRow, ...]:
    rows: list[SynRow] = []
    for r in data_rows("tcp_syn_fingerprints.csv"):
        olayout = tuple(x for x in r["olayout"].split(",") if x)
        rows.append(
            SynRow(
                label=r["label"],
                os_family=r["os_family"],
                specificity=r["specificity"],
                ittl=int(r["ittl"]),
                mss=tuple(r["mss"].split("|")),
                window=tuple(r["window"].split("|")),
                scale=tuple(r["scale"].split("|")),
                olayout=olayout,
                confidence=float(r["confidence"]),
            )
        )
    return tuple(rows)


def classify(shape: SynShape) -> SynRow | None:
    for row in signatures():
        if row.matches(shape):
            return row
    return None


# ---- the SYN observer ---------------------------------------------------------------------
CONF_SIGNATURE = 0.3  # the signature itself is what was on the wire; its meaning is weak

_Template = tuple[tuple[str, str, float], ...]
_cache: dict[tuple[int, int, int, bytes], _Template] = {}


def _template(syn: TcpSyn) -> _Template:
    key = (syn.ip_version, initial_ttl(syn.ttl), syn.window, bytes(syn.options[:MAX_OPTIONS]))
    found = _cache.get(key)
    if found is not None:
        return found
    shape = shape_of(syn)
    facts: list[tuple[str, str, float]] = [
        ("tcp.syn_signature", shape.signature(), CONF_SIGNATURE),
        ("tcp.ja4t", shape.ja4t(), CONF_SIGNATURE),
    ]
    row = classify(shape)
    if row is not None:
        facts.append(("tcp.os_family", row.os_family, row.confidence))
        facts.append(("tcp.os_label", row.label, row.confidence))
    template = tuple(facts)
    if len(_cache) >= MAX_CACHE:
        _cache.clear()
    _cache[key] = template
    return template


def observe(syn: TcpSyn) -> list[Observation]:
    """Observations about the SYN's sender. Never raises on wire input."""
    if not 0 <= syn.ttl <= 255 or not 0 <= syn.window <= 0xFFFF:
        return []
    return [
        Observation(kind, syn.client, value, syn.ts, None, None, conf)
        for kind, value, conf in _template(syn)
    ]


SPEC = SynSpec(name="tcp_syn", observe=observe)

__all__ = ["SPEC", "SynShape", "classify", "initial_ttl", "observe", "parse_options",
           "shape_of", "signatures"]
