"""App detection registry: each protocol registers a name, port hints, a probe and a factory.

Detection is by payload first; ports are only hints that order the candidates
(HL7 on 6661 and DICOM on 4242 must still be found). A probe sees the first
in-order payload bytes of one direction of a flow and answers MATCH, NO or
NEED_MORE; it must be cheap and must never raise.
"""

from __future__ import annotations

import enum
import importlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

from parsers.base import Direction, FlowKey, L2Frame, Observation, Parser, TcpSyn

MAX_PROBE_BYTES = 512  # a probe that has not decided after this many bytes is a NO


class Probe(enum.Enum):
    MATCH = "match"
    NO = "no"
    NEED_MORE = "need_more"


ProbeFn = Callable[[Direction, bytes], Probe]
_S = TypeVar("_S")


@dataclass(frozen=True, slots=True)
class ParserSpec:
    name: str
    transport: str  # "tcp" or "udp"
    probe: ProbeFn
    factory: Callable[[FlowKey], Parser]
    port_hints: frozenset[int] = field(default_factory=frozenset)


LLC = 0  # FrameSpec key for 802.3 frames, whose EtherType field holds a length


@dataclass(frozen=True, slots=True)
class FrameSpec:
    """A parser for rare non-IP frames (LLDP, CDP, STP): one call per frame, no state."""

    name: str
    ethertypes: frozenset[int]  # LLC for 802.3/LLC frames
    parse: Callable[[L2Frame], list[Observation]]


@dataclass(frozen=True, slots=True)
class SynSpec:
    """An observer of connection-opening SYNs (passive OS fingerprinting), once per flow."""

    name: str
    observe: Callable[[TcpSyn], list[Observation]]


class Registry:
    """Ordered set of parser specs; the agent asks it which parser a flow needs."""

    def __init__(self, specs: Iterable[ParserSpec] = ()) -> None:
        self._specs: dict[str, ParserSpec] = {}
        # candidates() per (transport, hinted port or -1, hinted port or -1): every new flow
        # asks, and all but the hinted ports give the same order. Cleared by register().
        self._candidates: dict[tuple[str, int, int], list[ParserSpec]] = {}
        self._hinted_ports: dict[str, frozenset[int]] = {}
        self.frame_specs: dict[int, list[FrameSpec]] = {}  # EtherType (or LLC) -> parsers
        self.syn_specs: list[SynSpec] = []
        for spec in specs:
            self.register(spec)

    def register_frame(self, spec: FrameSpec) -> None:
        for ethertype in spec.ethertypes:
            self.frame_specs.setdefault(ethertype, []).append(spec)

    def register_syn(self, spec: SynSpec) -> None:
        self.syn_specs.append(spec)

    def register(self, spec: ParserSpec) -> None:
        if spec.name in self._specs:
            raise ValueError(f"parser {spec.name!r} registered twice")
        if spec.transport not in ("tcp", "udp"):
            raise ValueError(f"parser {spec.name!r}: transport {spec.transport!r}")
        self._specs[spec.name] = spec
        self._candidates.clear()
        self._hinted_ports = {
            transport: frozenset().union(
                *(s.port_hints for s in self._specs.values() if s.transport == transport)
            )
            for transport in ("tcp", "udp")
        }

    def __iter__(self) -> Iterator[ParserSpec]:
        return iter(self._specs.values())

    def __len__(self) -> int:
        return len(self._specs)

    def get(self, name: str) -> ParserSpec | None:
        return self._specs.get(name)

    def candidates(self, transport: str, ports: tuple[int, int]) -> list[ParserSpec]:
        """Specs for ``transport``, port-hinted ones first."""
        hinted_ports = self._hinted_ports.get(transport, frozenset())
        a, b = ports
        key = (transport, a if a in hinted_ports else -1, b if b in hinted_ports else -1)
        cached = self._candidates.get(key)
        if cached is None:
            cached = self._candidates[key] = self._order(transport, ports)
        return list(cached)  # a copy: callers own their list

    def _order(self, transport: str, ports: tuple[int, int]) -> list[ParserSpec]:
        specs = [s for s in self._specs.values() if s.transport == transport]
        hinted = [s for s in specs if s.port_hints.intersection(ports)]
        return hinted + [s for s in specs if s not in hinted]

    def detect(
        self, candidates: list[ParserSpec], direction: Direction, data: bytes
    ) -> tuple[ParserSpec | None, list[ParserSpec]]:
        """Probe ``data`` with each candidate.

        Returns (the matching spec, None if none matched) and the candidates
        that still need more bytes. A probe that raises is a bug in that probe:
        it counts as NO so one broken probe cannot stop detection.
        """
        undecided: list[ParserSpec] = []
        for spec in candidates:
            try:
                verdict = spec.probe(direction, data)
            except Exception:  # a probe bug must not crash the sensor
                verdict = Probe.NO
            if verdict is Probe.MATCH:
                return spec, []
            if verdict is Probe.NEED_MORE and len(data) < MAX_PROBE_BYTES:
                undecided.append(spec)
        return None, undecided


# Every parser shipped with medtap, as "module:attribute" (a spec, or a function making one).
# Order matters where probes overlap: candidates are tried port-hinted first, then in this
# order (NetBIOS, mDNS, DNS are all DNS-format messages).
BUILTIN_STREAM_AND_DATAGRAM = (
    "parsers.dicom:SPEC",
    "parsers.hl7:spec",
    "parsers.dhcp:SPEC",
    "parsers.vendor:INTELLIVUE_SPEC",
    "parsers.vendor:CARESCAPE_SPEC",
    "parsers.http:SPEC",
    "parsers.tls:SPEC",
    "parsers.netbios:SPEC",
    "parsers.mdns:SPEC",
    "parsers.dns:SPEC",
    "parsers.ssdp:SPEC",
    "parsers.snmp:SPEC",
)
BUILTIN_FRAME = ("parsers.lldp:SPEC", "parsers.cdp:SPEC")
BUILTIN_SYN = ("parsers.tcp_fingerprint:SPEC",)


def default_registry() -> Registry:
    """A registry with every parser shipped with medtap."""
    registry = Registry()
    for name in BUILTIN_STREAM_AND_DATAGRAM:
        registry.register(_load(name, ParserSpec))
    for name in BUILTIN_FRAME:
        registry.register_frame(_load(name, FrameSpec))
    for name in BUILTIN_SYN:
        registry.register_syn(_load(name, SynSpec))
    return registry


def _load(name: str, kind: type[_S]) -> _S:
    module_name, attribute = name.split(":")
    value = getattr(importlib.import_module(module_name), attribute)
    spec = value() if callable(value) and not isinstance(value, kind) else value
    if not isinstance(spec, kind):
        raise TypeError(f"{name} is not a {kind.__name__}")
    return spec
