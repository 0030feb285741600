"""Per-flow fact memory shared by the datagram parsers (DNS, mDNS, NetBIOS, SSDP, SNMP).

A gateway or resolver says the same thing thousands of times; a parser emits each
(kind, host, value) once per flow, again only when a later sighting is more confident,
and remembers a bounded number of facts.
"""

from __future__ import annotations

from parsers.base import TO_SERVER, Direction, FlowKey, Observation

MAX_FACTS_PER_FLOW = 512  # distinct facts remembered for dedupe; more are dropped, counted


class FactLog:
    """Each (kind, host, value) once per flow, again only at a higher confidence; bounded."""

    __slots__ = ("_seen", "cap", "dropped")

    def __init__(self, cap: int = MAX_FACTS_PER_FLOW) -> None:
        self._seen: dict[tuple[str, str, str], float] = {}
        self.cap = cap
        self.dropped = 0

    def add(
        self,
        out: list[Observation],
        kind: str,
        host: str,
        value: str,
        ts: float,
        port: int | None = None,
        confidence: float = 1.0,
        raw: str | None = None,
    ) -> None:
        if not value:
            return
        key = (kind, host, value)
        known = self._seen.get(key)
        if known is not None and known >= confidence:
            return
        if known is None and len(self._seen) >= self.cap:
            self.dropped += 1
            return
        self._seen[key] = confidence
        out.append(Observation(kind, host, value, ts, port, raw, confidence))


def sender_of(flow: FlowKey, direction: Direction) -> tuple[str, str]:
    """(sender, receiver) of a datagram travelling in ``direction``."""
    if direction is TO_SERVER:
        return flow.client, flow.server
    return flow.server, flow.client
