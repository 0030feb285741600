"""Vendor protocol signatures, loaded from ``parsers/data/vendor_signatures.csv``.

One row per message shape: vendor, product, transport, port(s), a payload
signature, the device type the sender is, whether medtap parses it, what it
means, and the public source it was built from. Rows whose payload layout is not
public (``status`` = ``documented-only``) carry no signature and are never
matched: ports alone never decide what a flow is.

Signature mini-language (terms separated by spaces, all must hold):

``len=N``            the datagram is exactly N bytes
``minlen=N``         at least N bytes
``hex@OFF=HEX``      the bytes at offset OFF are HEX
``has=HEX``          HEX occurs somewhere in the first ``SEARCH_WINDOW`` bytes
``re@START:END=RE``  ``data[START:END]`` fully matches the bytes regex RE (no spaces)

A signature only gates detection; each parser then checks the structure
(length fields, counts) before it believes a message.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache

from parsers.knowledge import data_rows

PARSED = "parsed"
DOCUMENTED_ONLY = "documented-only"
STATUSES = (PARSED, DOCUMENTED_ONLY)
SEARCH_WINDOW = 512  # bytes a ``has=`` term looks through

Term = Callable[[bytes], bool]


@dataclass(frozen=True, slots=True)
class Signature:
    id: str  # "intellivue.connect_indication"
    vendor: str
    product: str
    transport: str  # "udp" or "tcp"
    ports: frozenset[int]
    signature: str  # the mini-language text, "" when the layout is not public
    device_type: str  # what the sender is, "" when the message says nothing about it
    status: str
    meaning: str
    source: str
    terms: tuple[Term, ...] = ()

    def matches(self, data: bytes) -> bool:
        """True when every term holds; a row without a signature never matches."""
        for term in self.terms:  # a loop, not all(<genexpr>): probes run on every datagram
            if not term(data):
                return False
        return bool(self.terms)


def _compile_term(text: str) -> Term:
    key, sep, arg = text.partition("=")
    if not sep:
        raise ValueError(f"signature term {text!r} has no '='")
    if key == "len":
        size = int(arg)
        return lambda data: len(data) == size
    if key == "minlen":
        least = int(arg)
        return lambda data: len(data) >= least
    if key == "has":
        needle = bytes.fromhex(arg)
        return lambda data: needle in data[:SEARCH_WINDOW]
    if key.startswith("hex@"):
        offset = int(key[4:])
        want = bytes.fromhex(arg)
        end = offset + len(want)
        return lambda data: data[offset:end] == want
    if key.startswith("re@"):
        start_text, _, end_text = key[3:].partition(":")
        start, stop = int(start_text), int(end_text)
        pattern = re.compile(arg.encode("ascii"), re.DOTALL)
        return lambda data: len(data) >= stop and pattern.fullmatch(data, start, stop) is not None
    raise ValueError(f"unknown signature term {text!r}")


def _ports(text: str) -> frozenset[int]:
    return frozenset(int(p) for p in text.replace(";", " ").split())


@cache
def load() -> tuple[Signature, ...]:
    """Every row of the table. Raises ValueError on a malformed table (a bug, caught by tests)."""
    rows: list[Signature] = []
    seen: set[str] = set()
    for row in data_rows("vendor_signatures.csv"):
        ident = row["id"]
        if row["status"] not in STATUSES or row["transport"] not in ("udp", "tcp"):
            raise ValueError(f"vendor_signatures.csv: {ident!r} status or transport")
        if ident in seen:
            raise ValueError(f"vendor_signatures.csv: {ident!r} listed twice")
        if row["status"] == PARSED and not row["signature"]:
            raise ValueError(f"vendor_signatures.csv: parsed row {ident!r} without signature")
        seen.add(ident)
        terms = tuple(_compile_term(t) for t in row["signature"].split())
        rows.append(
            Signature(
                id=ident,
                vendor=row["vendor"],
                product=row["product"],
                transport=row["transport"],
                ports=_ports(row["ports"]),
                signature=row["signature"],
                device_type=row["device_type"],
                status=row["status"],
                meaning=row["meaning"],
                source=row["source"],
                terms=terms,
            )
        )
    return tuple(rows)


@cache
def family(prefix: str) -> tuple[Signature, ...]:
    """Rows whose id starts with ``prefix`` (``"intellivue."``), in table order."""
    return tuple(s for s in load() if s.id.startswith(prefix))


@cache
def _parsed(prefix: str) -> tuple[Signature, ...]:
    """The parsed rows of ``family(prefix)``: computed once, not per probed datagram."""
    return tuple(s for s in family(prefix) if s.status == PARSED)


def get(ident: str) -> Signature:
    for sig in load():
        if sig.id == ident:
            return sig
    raise KeyError(ident)


def port_hints(prefix: str) -> frozenset[int]:
    ports: set[int] = set()
    for sig in family(prefix):
        if sig.status == PARSED:
            ports |= sig.ports
    return frozenset(ports)


def matching(prefix: str, data: bytes) -> Iterator[Signature]:
    """The parsed rows of the family whose signature ``data`` satisfies, in table order
    (more specific shapes are listed first)."""
    for sig in _parsed(prefix):
        if sig.matches(data):
            yield sig
